-- The plugin kit's own tests: its clock, its record of calls, the real
-- API's argument and phase checks through it, events, and that it keeps
-- in step with corrald (daemon/bindings.c, lua.c, init.lua, config.lua,
-- doc/plugins.md). Run from the top of the source tree.
local testing = require "corral.testing"
local test, eq, raises = testing.test, testing.eq, testing.raises

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("*a")
  f:close()
  return s
end

-- a plugin given as a function; it gets the options as ...
local function kit_with(fn, world)
  return testing.new(world or { pools = { web = 2 } }):load(fn, {}, "probe")
end

-- ---- the clock -----------------------------------------------------------------

test("timers fire in the order of their due times, each at its time", function()
  local seen = {}
  local kit = kit_with(function()
    corral.on("config", function()
      local function at(name) return function() seen[#seen + 1] = ("%s@%g"):format(name, corral.now()) end end
      corral.after(5, at("a"))
      corral.after(2, at("b"))
      corral.every(3, at("c"))
      corral.after(3, at("d"))	-- same time as c's first: started after it
    end)
  end, { time = 0 })
  kit:start()
  kit:advance(7)
  eq(seen, { "b@2", "c@3", "d@3", "a@5", "c@6" }, "order")
  eq(kit:now(), 7, "the clock after")
  kit:advance(2)
  eq(seen[#seen], "c@9", "an every timer comes back period after its due time")
end)

test("a timer started or cancelled by a timer counts at once", function()
  local seen = {}
  local kit = kit_with(function()
    local late
    corral.on("config", function()
      corral.after(1, function()
        corral.after(1, function() seen[#seen + 1] = corral.now() end)	-- due within the advance
        corral.cancel(late)
      end)
      late = corral.after(1.5, function() seen[#seen + 1] = "late" end)
    end)
  end, { time = 0 })
  kit:start():advance(10)
  eq(seen, { 2 }, "fired")
  eq(#kit:timers(), 0, "none left")
end)

test("advance checks its argument", function()
  local kit = testing.new()
  raises(function() kit:advance(-1) end, "advance: expected a number of seconds >= 0, got -1")
end)

-- ---- recorded calls ----------------------------------------------------------------

test("every call is recorded, with its arguments and results", function()
  local kit = kit_with(function()
    corral.on("worker_exited", function(ev)
      corral.scale(ev.pool, 3)
      corral.scale("nope", 1)
      corral.signal(ev.pool, nil, "HUP")
      corral.info("scaled", ev.pool)
    end)
  end)
  kit:emit("worker_exited", { pool = "web", worker = 1, code = 1 })
  assert(kit:called("scale", "web", 3))
  assert(kit:called("scale", "web"), "a prefix of the arguments")
  assert(kit:called("scale", testing.ANY, 1), "ANY")
  assert(not kit:called("scale", "web", 4))
  eq(kit:count("scale"), 2, "scale calls")
  eq(kit:calls_of("signal"), { { "web", nil, "HUP" } }, "signal's arguments")
  eq(kit:actions(), { 'scale("web", 3)', 'scale("nope", 1)', 'signal("web", nil, "HUP")' }, "actions")
  local rec
  for _, r in ipairs(kit.calls) do if r.name == "scale" and r.args[1] == "nope" then rec = r end end
  eq({ rec.name, rec.ret[1], rec.ret[2], rec.owner }, { "scale", nil, "no such pool", "plugin probe" }, "a result")
  eq(kit.calls[#kit.calls - 1].ret[1], 1, "signal's count: worker 1 has gone, 2 is left")
  eq(kit:logged("info", "scaled web"), "scaled web")
  kit:clear()
  eq(#kit.calls, 0, "cleared")
end)

test("a raised error is recorded with its call", function()
  local kit = kit_with(function() end)
  pcall(kit.corral.stats, "web", "one")
  eq(kit.calls[1].error, "bad argument #2 to '?' (number expected, got string)")
end)

-- ---- the real API's checks, through the kit ------------------------------------------

test("arguments are checked as corrald checks them", function()
  local c = kit_with(function() end).corral
  raises(function() c.scale("web", -1) end, "corral.scale: expected a number of workers from 0 to 10000")
  raises(function() c.scale(7, 1) end, "corral.scale: expected a pool name")
  raises(function() c.stats("web", "one") end, "bad argument #2 to '?' (number expected, got string)")
  raises(function() c.status({}) end, "bad argument #1 to 'status_json' (string expected, got table)")
  raises(function() c.restart("web", {}) end, "bad argument #2 to '?' (number expected, got table)")
  raises(function() c.signal("web", nil, "NOPE") end, "corral.signal: expected a signal name or number")
  raises(function() c.pressure("web", "disk") end, "corral.pressure: resource must be cpu, memory or io")
  raises(function() c.psi_trigger("web", "cpu", "some 1", print) end, 'corral.psi_trigger: expected "some|full STALL_US WINDOW_US"')
  raises(function() c.after(0, print) end, "corral.after: expected a number of seconds >= 0.001")
  raises(function() c.every(1, "f") end, "corral.every: expected a function")
  raises(function() c.log("loud", "x") end, "corral.log: unknown level loud")
  raises(function() c.sleep(1) end, "corral.sleep: not available in plugin (only in prefork, setup, start)")
end)

test("unknown pools and workers are answers, not errors", function()
  local c = kit_with(function() end).corral
  eq({ c.scale("nope", 1) }, { nil, "no such pool" })
  eq({ c.restart("web", 9) }, { nil, "no such worker" })
  eq({ c.restart("web", 2) }, { 0 })
  eq({ c.stats("nope") }, { nil, "no such pool or worker" })
  eq({ c.stats("web", 9) }, { nil, "no such pool or worker" })
  eq({ c.status("nope") }, { nil, "no such pool" })
  eq({ c.freeze("nope") }, { nil, "no such pool" })
  eq({ c.signal("web", nil, "term") }, { 2 })
  eq({ c.signal("web", 5, 15) }, { nil, "no such worker" })
  eq(c.reload(), true)
end)

test("phases: handlers registered at load, timers and commands in handlers", function()
  local kit = testing.new { pools = { web = 1 } }
  eq(kit:load_error(function() corral.every(10, print) end, {}, "early"),
    "corral.every: not available in config (only in plugin)")
  raises(function()
    testing.new():load(function() corral.on("config", function() corral.on("stop", print) end) end):start()
  end, "corral.on: not available in plugin (only in config)")
  eq(kit:load_error(function() corral.on("worker_exitted", print) end, {}, "typo"):match("^[^(]*"),
    "corral.on: unknown event worker_exitted ")
end)

test("a plugin's globals: no assignment, no os.exit, os.time on the kit's clock", function()
  local kit = testing.new()
  raises(function() kit:load(function() count = 1 end, {}, "leaky") end,	-- luacheck: ignore
    "kit_test.lua:142: plugin leaky: assignment to undeclared global count (use local)")
  raises(function() kit:load(function() os.exit(1) end, {}, "quitter") end,
    "os.exit: not allowed in config code, which runs inside corrald")
  local t0, t1
  testing.new({ time = 0, epoch = 1000000 }):load(function()
    t0 = os.time()
    corral.on("config", function() corral.after(60, function() t1 = os.time() end) end)
  end):start():advance(60)
  eq({ t0, t1 }, { 1000000, 1000060 })
  eq(kit:load_error(function() assert(print == nil and io.write == nil and corral.pools) end, {}, "env"), nil)
end)

-- ---- handler errors and the budget ------------------------------------------------------

test("a handler's error is raised by emit, after the other handlers ran", function()
  local ran = false
  local kit = kit_with(function()
    corral.on("pool_ready", function(ev) return ev.nothing.there end)
    corral.on("pool_ready", function() ran = true end)
  end)
  raises(function() kit:emit("pool_ready", { pool = "web" }) end,
    "pool_ready handler: plugin probe: pool_ready handler failed: ")
  assert(ran, "the second handler ran")
  local lenient = testing.new({ pools = { web = 1 }, strict = false })
  lenient:load(function() corral.on("pool_ready", function() error("boom") end) end, {}, "p")
  lenient:emit("pool_ready", { pool = "web" })
  assert(lenient.errors[1]:find("plugin p: pool_ready handler failed: .*boom"))
end)

test("a handler past its budget is stopped", function()
  local kit = testing.new({ pools = { web = 1 }, budget = 0.05, strict = false })
  kit:load(function() corral.on("pool_ready", function() while true do end end) end, {}, "spin")
  kit:emit("pool_ready", { pool = "web" })
  assert(kit.errors[1]:find("took longer than 0.05s, stopped", 1, true), kit.errors[1])
end)

-- ---- events and the fake world ---------------------------------------------------------

test("events carry the real field names, checked", function()
  local got
  local kit = kit_with(function() corral.on("worker_exited", function(ev) got = ev end) end)
  kit:emit("worker_exited", { pool = "web", worker = 2, signal = 9 })
  eq(got, { event = "worker_exited", pool = "web", worker = 2, pid = got.pid, signal = 9, oom = false, reason = "crashed" })
  assert(type(got.pid) == "number")
  raises(function() kit:emit("worker_exitted", {}) end, "emit: unknown event")
  raises(function() kit:emit("pool_ready", { pool = "web", id = 1 }) end, "emit pool_ready: unknown field \"id\" (pool)")
  raises(function() kit:emit("pool_ready", { pool = "nope" }) end, "no pool \"nope\" in the fake world")
  raises(function() kit:emit("worker_ready", { pool = "web", worker = "1" }) end, "worker: expected integer")
  raises(function() kit:emit("worker_ready", { pool = "web", worker = 2 }) end, "pool \"web\" has no worker 2")
  raises(function() kit:emit("oom", { pool = "web", worker = 1, reason = "bored" }) end, "unknown reason")
end)

test("events change the fake world first, as corrald's has changed", function()
  local kit = kit_with(function() end)
  local c = kit.corral
  kit:emit("worker_exited", { pool = "web", worker = 1, code = 1 })
  eq(c.status("web")[1].ready, 1, "ready after an exit")
  eq(c.status("web")[1].recent_exits[1].reason, "crashed")
  kit:emit("worker_started", { pool = "web", worker = 1, pid = 777 })
  local w = c.status("web")[1].workers[1]
  eq({ w.pid, w.state, w.last_exit.code }, { 777, "starting", 1 })
  eq(c.status("web")[1].state, "starting")
  kit:emit("worker_ready", { pool = "web", worker = 1 })
  eq(c.status("web")[1].state, "running")
  kit:emit("frozen", { pool = "web" })
  eq(c.status("web")[1].state, "frozen")
  c.scale("web", 5)
  eq(c.status("web")[1].target, 5)
  kit:reload()
  eq(c.status("web")[1].target, 2, "a reload sets the config's workers again")
end)

test("stats, pressure and PSI triggers from the fake world", function()
  local fired = 0
  local kit = kit_with(function()
    corral.on("config", function()
      assert(corral.psi_trigger("web", "memory", "some 150000 2000000", function() fired = fired + 1 end))
      assert(corral.psi_trigger("web", "cpu", "some 150000 2000000", function() fired = fired + 100 end))
    end)
  end):start()
  local c = kit.corral
  kit:set_stats("web", { memory_current = 5 })
  eq(c.stats("web"), { memory_current = 5 })
  kit:set_stats("web", 1, { cpu_usage_usec = 7 })
  eq(c.stats("web", 1), { cpu_usage_usec = 7 })
  raises(function() kit:set_stats("web", { memory = 5 }) end, "set_stats: unknown field \"memory\"")
  kit:set_pressure("web", "memory", { some = { avg10 = 2.5, total = 99 } })
  eq(c.pressure("web", "memory"), { some = { avg10 = 2.5, avg60 = 0, avg300 = 0, total = 99 },
    full = { avg10 = 0, avg60 = 0, avg300 = 0, total = 0 } })
  eq(kit:fire_psi("web", "memory"), 1)
  eq(fired, 1)
  eq({ c.psi_trigger("web", "io", "some 3000000 2000000", print) }, { nil, "Invalid argument" })
  kit:set_pressure("web", "io", nil, "Operation not supported")
  eq({ c.pressure("web", "io") }, { nil, "Operation not supported" })
end)

-- ---- in step with corrald -----------------------------------------------------------------

-- { name = "phases" } of every C table of corral.core's functions
-- (struct cr_lua_fn NAME[] in daemon/*.c)
local function c_tables()
  local out, files = {}, 0
  local ls = assert(io.popen("ls daemon/*.c"))
  for path in ls:lines() do
    for src in read(path):gmatch("struct cr_lua_fn [%w_]+%[%] = {(.-)\n};") do
      files = files + 1
      for name, expr in src:gmatch('{ "([%w_]+)", l_[%w_]+, ([^}]-) }') do
        local p = {}
        if expr:find("CR_IN_ANY") then p[#p + 1] = "any" end
        if expr:find("PREFORK") then p[#p + 1] = "prefork" end
        if expr:find("CR_IN_WORKER") then p[#p + 1] = "worker" end
        if expr:find("CONFIG") then p[#p + 1] = "config" end
        if expr:find("PLUGIN") then p[#p + 1] = "plugin" end
        out[name] = table.concat(p, " ")
      end
    end
  end
  ls:close()
  assert(files >= 2, "the C tables were found")
  return out
end

test("the fake corral.core has corrald's functions, in the same phases", function()
  local real = c_tables()
  assert(real.scale and real.budget_used, "the C tables were read")
  local wrong = {}
  for name, phases in pairs(real) do
    if testing.CORE[name] ~= phases then
      wrong[#wrong + 1] = ("%s: corrald has it in %q, the kit in %s"):format(name, phases, testing.show(testing.CORE[name]))
    end
  end
  for name in pairs(testing.CORE) do
    if not real[name] then wrong[#wrong + 1] = name .. ": the kit has it, corrald no longer" end
  end
  table.sort(wrong)
  assert(#wrong == 0, "corral.core, kit vs the cr_lua_fn tables of daemon/*.c (lua/corral/testing.lua, CORE): "
    .. table.concat(wrong, "; "))
  for name in read("lua/corral/init.lua"):gmatch("core%.([%w_]+)") do
    assert(testing.CORE[name] or name == "version", "init.lua uses core." .. name)
  end
end)

test("every function corral.core has for plugins is faked", function()
  local kit = testing.new({ pools = { web = 1 } })
  for name, phases in pairs(testing.CORE) do
    if phases == "any" or phases:find("plugin") then
      local ok, err = pcall(kit.core[name])
      assert(ok or not tostring(err):find("has no fake"), "corral.core." .. name .. " has no fake")
    end
  end
end)

test("the events: init.lua's, the doc's table, and their fields", function()
  local kit = testing.new()
  local names = {}
  for k in pairs(kit.api._events) do names[k] = true end
  local mine = {}
  for k in pairs(testing.EVENTS) do mine[k] = true end
  eq(mine, names, "events (kit vs init.lua)")
  local doc = read("doc/plugins.md"):match("\n## Events\n(.-)\n\n| field |")
  local documented = {}
  for name, row in doc:gmatch("\n| `([%w_]+)` |([^\n]*)") do
    local fields = row:match("|([^|]*)|%s*$")
    local list = {}
    for f in fields:gmatch("`([%w_]+)`") do list[#list + 1] = f end
    documented[name] = list
  end
  eq(testing.EVENTS, documented, "events and fields (kit vs doc/plugins.md)")
end)

test("stats fields are bindings.c's", function()
  local fields = {}
  for f in read("daemon/bindings.c"):gmatch('set_stat%(L, "([%w_]+)"') do fields[#fields + 1] = f end
  eq(testing.STATS, fields)
end)

test("a plugin's globals are config.lua's", function()
  local src = read("lua/corral/config.lua"):match("local function base_globals%(%)(.-)\nend\n")
  local want, want_os = {}, {}
  for list in src:gmatch("for _, k in ipairs (%b{})") do
    for k in list:gmatch('"([%w_]+)"') do want[k] = true end
  end
  for k in src:gmatch("g%.([%w_]+)") do want[k] = true end
  for k in src:gsub("^.-g%.os = ", ""):match("%b{}"):gmatch("([%w_]+) = ") do want_os[k] = true end
  local g = testing.globals(testing.new())
  local have, have_os = {}, {}
  for k in pairs(g) do have[k] = true end
  for k in pairs(g.os) do have_os[k] = true end
  eq(have, want, "globals")
  eq(have_os, want_os, "os")
end)

testing.done()
