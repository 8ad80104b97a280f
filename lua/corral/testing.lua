-- corral.testing: the plugin kit. Runs a plugin in plain LuaJIT, without
-- root, corrald or a cgroup, so that its behaviour is unit-tested in
-- milliseconds (doc/plugins.md, "Testing a plugin").
--
--   local testing = require "corral.testing"
--   local kit = testing.new { pools = { web = 2 } }
--   kit:load("plugins/pool-stats.lua", { interval = 10 })
--   kit:start()                          -- the "config" event
--   kit:set_stats("web", { memory_current = 2^20 })
--   kit:advance(10)                      -- timers due fire, in order
--   assert(kit:logged("info", "memory_current=1.0M"))
--
-- The plugin gets the real API: lua/corral/init.lua, loaded afresh for
-- each kit over a fake corral.core (the C side, daemon/bindings.c), so
-- the argument checks, phases, events and error handling are corrald's
-- own. What is fake is the world under it: the pools, their workers,
-- statistics and pressure (set by the test), the monotonic clock
-- (advanced by the test), and the control commands, which are recorded
-- (kit.calls) and change the fake pools as little as the test needs.
local json = require "corral.json"

local M = {}

-- The directory of corral's Lua modules: init.lua is loaded from there.
local LUA_DIR = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

-- A wildcard for kit:called() and kit:count().
M.ANY = setmetatable({}, { __tostring = function() return "ANY" end })

local function show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if v == M.ANY then return "ANY" end
  if type(v) == "table" then
    local out = {}
    for i = 1, #v do out[i] = show(v[i]) end
    for k, x in pairs(v) do
      if type(k) ~= "number" or k < 1 or k > #v or k % 1 ~= 0 then out[#out + 1] = tostring(k) .. "=" .. show(x) end
    end
    return "{" .. table.concat(out, ", ") .. "}"
  end
  return tostring(v)
end
M.show = show

local function deep_equal(a, b)
  if a == M.ANY or b == M.ANY then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
M.deep_equal = deep_equal

local function kit_error(fmt, ...)
  error("corral.testing: " .. fmt:format(...), 3)
end

-- ---- what corrald gives: phases, statistics, events ------------------------

-- The phases each function of corral.core may be called in, as the
-- cr_lua_fn tables of daemon/*.c have them (t/kit/kit_test.lua compares
-- the two, and t/115-plugin-kit.t the answers with a real corrald's). "any" is every phase; "worker" is setup and start.
-- A function the kit has no fake of (the config's and the workers' own)
-- says so when called.
M.CORE = {
  log = "any", phase = "any", now = "any", getpid = "any", signum = "any", duration = "any",
  setenv = "worker", stopping = "worker", ready = "worker", exec = "worker",
  sleep = "prefork worker",
  getpwnam = "config", getgrnam = "config", capability = "config", environ = "config",
  plugin_path = "config", loadfile = "config", budget_call = "config",
  scale = "plugin", restart = "plugin", pool_stop = "plugin", pool_start = "plugin",
  signal = "plugin", status_json = "plugin", reload = "plugin", timer = "plugin",
  cancel = "plugin", freeze = "plugin", pools = "plugin", stats = "plugin",
  read_pressure = "plugin", psi_trigger = "plugin", budget_used = "plugin",
  renew_budget = "plugin",
  http_serve = "plugin", http_address = "plugin", http_request = "plugin", http_reply = "plugin",
  self_stats = "plugin", listen_watch = "plugin", load = "worker", requests = "worker",
  note = "plugin",
}

-- corral.stats() fields (daemon/bindings.c l_stats).
M.STATS = { "busy", "idle", "memory_current", "memory_peak", "cpu_usage_usec", "cpu_user_usec",
  "cpu_system_usec", "pids_current", "oom_kills" }
local STAT_SET = {}
for _, f in ipairs(M.STATS) do STAT_SET[f] = "number" end
-- the load reports' other fields (a pool's requests, last_request_ago; a
-- worker's load, load_for, requests, last_request_ago)
STAT_SET.requests, STAT_SET.last_request_ago, STAT_SET.load_for = "number", "number", "number"
STAT_SET.load = "string"

-- The events and their fields (doc/plugins.md, "Events"; t/kit/kit_test.lua
-- checks this table against the doc and against init.lua's list).
local POOL, WORKER = { "pool" }, { "pool", "worker", "pid" }
local EXIT = { "pool", "worker", "pid", "code", "signal", "oom", "reason" }
M.EVENTS = {
  config = {}, reload = {}, stop = {},
  pool_ready = POOL, pool_failed = POOL, frozen = POOL, thawed = POOL,
  worker_started = WORKER, worker_ready = WORKER, worker_exited = EXIT, oom = EXIT,
}
local FIELD_TYPES = { pool = "string", worker = "integer", pid = "integer", code = "integer",
  signal = "integer", oom = "boolean", reason = "string" }
M.REASONS = { crashed = true, exited = true, oom = true, watchdog = true, requested = true,
  reload = true, stopping = true, recycled = true, unhealthy = true }

-- Linux's signal names (sigabbrev_np), for core.signum.
local SIGNALS = { "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1",
  "SEGV", "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN",
  "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "POLL", "PWR", "SYS" }
local NSIG = 65

-- ---- the C side's argument errors -------------------------------------------

-- luaL_argerror's message: the function's name as it was called, for the
-- gate frame 3 levels up (helper, fake, gate), and where it was called
-- from; a tail call has neither ('?', as corrald's message has then).
local function argerror(n, expected, v, given)
  local info = debug.getinfo(4, "n")
  local got = given < n and "no value" or type(v)
  local msg = ("bad argument #%d to '%s' (%s expected, got %s)"):format(n, info and info.name or "?", expected, got)
  local caller = info and info.name and debug.getinfo(5, "Sl")
  if caller and caller.currentline > 0 then msg = ("%s:%d: %s"):format(caller.short_src, caller.currentline, msg) end
  error(msg, 0)
end

-- luaL_checkinteger / luaL_optinteger: a number or a numeric string, truncated.
local function checkinteger(v, n, given, opt)
  if opt and v == nil then return opt end
  local x = tonumber(v)
  if type(v) ~= "number" and not (type(v) == "string" and x) then argerror(n, "number", v, given) end
  return x >= 0 and math.floor(x) or -math.floor(-x)
end

local function checkstring(v, n, given, opt)
  if opt and v == nil then return nil end
  if type(v) == "number" then return tostring(v) end
  if type(v) ~= "string" then argerror(n, "string", v, given) end
  return v
end

-- ---- JSON, for the fake status_json (corral.status decodes it) -------------

local function encode(v, out)
  local t = type(v)
  if v == nil or v == json.null then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "number" then out[#out + 1] = v % 1 == 0 and ("%d"):format(v) or ("%.17g"):format(v)
  elseif t == "string" then
    out[#out + 1] = '"' .. v:gsub('[%c"\\]', function(c) return ("\\u%04x"):format(c:byte()) end) .. '"'
  elseif v[1] ~= nil or next(v) == nil and getmetatable(v) == "array" then
    out[#out + 1] = "["
    for i, x in ipairs(v) do
      if i > 1 then out[#out + 1] = "," end
      encode(x, out)
    end
    out[#out + 1] = "]"
  else
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      encode(k, out)
      out[#out + 1] = ":"
      encode(v[k], out)
    end
    out[#out + 1] = "}"
  end
  return out
end
local function array(t) return setmetatable(t, { __metatable = "array" }) end

-- ---- the kit ------------------------------------------------------------------

local Kit = {}
Kit.__index = Kit

-- A pool of the fake world: spec is a number of workers, or a table
-- { workers = N, state = "running", ... }. Its workers 1..N are ready.
function Kit:add_pool(name, spec)
  if type(name) ~= "string" then kit_error("add_pool: expected a pool name, got %s", show(name)) end
  if self.pool[name] then kit_error("add_pool: pool %q already exists", name) end
  spec = type(spec) == "number" and { workers = spec } or spec or {}
  local n = spec.workers or 1
  local p = { name = name, configured = n, target = n, generation = 1, restarts = 0,
    state = spec.state, workers = {}, recent_exits = {}, listen = spec.listen,
    stats = { memory_current = 0, memory_peak = 0, cpu_usage_usec = 0, cpu_user_usec = 0,
      cpu_system_usec = 0, pids_current = 0, oom_kills = 0 },
    pressure = {} }
  self.pool[name] = p
  self.order[#self.order + 1] = name
  for id = 1, n do self:set_worker(name, id, { state = "ready" }) end
  return p
end

-- A reload that removed it: no longer listed, nor found.
function Kit:remove_pool(name)
  if not self.pool[name] then kit_error("remove_pool: no pool %q", tostring(name)) end
  self.pool[name] = nil
  for i, n in ipairs(self.order) do if n == name then table.remove(self.order, i) break end end
end

local function the_pool(self, fname, name)
  local p = self.pool[name]
  if not p then kit_error("%s: no pool %s in the fake world", fname, show(name)) end
  return p
end

-- Sets (or with fields nil, removes) a worker: fields pid, state,
-- generation, restarts, status, stats.
function Kit:set_worker(pool, id, fields)
  local p = the_pool(self, "set_worker", pool)
  if fields == nil then p.workers[id] = nil; return end
  local w = p.workers[id]
  if not w then
    self.next_pid = self.next_pid + 1
    w = { id = id, pid = self.next_pid, state = "ready", generation = p.generation, restarts = 0,
      started = self.clock, stats = { memory_current = 0, memory_peak = 0, cpu_usage_usec = 0,
        cpu_user_usec = 0, cpu_system_usec = 0, pids_current = 1, oom_kills = 0 } }
    p.workers[id] = w
  end
  for k, v in pairs(fields) do w[k] = v end
  return w
end

-- The pool's statistics (or a worker's, with id), as the kernel gives
-- them: exactly the fields given (one left out is absent, as without its
-- controller); nil: the cgroup is gone ("no such pool or worker").
function Kit:set_stats(pool, id, st)
  if type(id) ~= "number" then id, st = nil, id end
  local p = the_pool(self, "set_stats", pool)
  if st ~= nil then
    if type(st) ~= "table" then kit_error("set_stats: expected a table of fields, got %s", show(st)) end
    for k, v in pairs(st) do
      if not STAT_SET[k] then kit_error("set_stats: unknown field %s (%s)", show(k), table.concat(M.STATS, ", ")) end
      if type(v) ~= STAT_SET[k] then kit_error("set_stats: %s: expected a %s, got %s", k, STAT_SET[k], show(v)) end
    end
  end
  if id then
    if not p.workers[id] then kit_error("set_stats: pool %q has no worker %d", pool, id) end
    p.workers[id].stats = st
  else
    p.stats = st
  end
end

-- The pool's PSI for resource: { some = { avg10=, avg60=, avg300=, total= },
-- full = {...} } (missing numbers are 0), or nil and the kernel's message.
function Kit:set_pressure(pool, resource, t, err)
  local p = the_pool(self, "set_pressure", pool)
  if resource ~= "cpu" and resource ~= "memory" and resource ~= "io" then
    kit_error("set_pressure: resource must be cpu, memory or io")
  end
  p.pressure[resource] = t or { error = err or "Operation not supported" }
end

function Kit:now() return self.clock end

-- What the plugin noted (corral.note) on the pool, or on worker id: a
-- table key -> value (empty for none).
function Kit:notes(pool, id)
  local p = the_pool(self, "notes", pool)
  local holder = p
  if id then
    holder = p.workers[id]
    if not holder then kit_error("notes: pool %q has no worker %s", pool, show(id)) end
  end
  local out = {}
  for k, v in pairs(holder.notes or {}) do out[k] = v end
  return out
end

-- The live timers and triggers: { id, kind = "after" | "every" | "psi_trigger",
-- due, period, pool, resource, spec }, in the order they fire.
function Kit:timers()
  local out = {}
  for _, t in pairs(self.live) do out[#out + 1] = t end
  table.sort(out, function(a, b)
    if (a.due or math.huge) ~= (b.due or math.huge) then return (a.due or math.huge) < (b.due or math.huge) end
    return a.id < b.id
  end)
  return out
end

-- ---- the fake corral.core ------------------------------------------------------

local function pressure_text(pr)
  local out = {}
  for _, kind in ipairs { "some", "full" } do
    local t = pr[kind] or {}
    out[#out + 1] = ("%s avg10=%.2f avg60=%.2f avg300=%.2f total=%d"):format(kind,
      t.avg10 or 0, t.avg60 or 0, t.avg300 or 0, t.total or 0)
  end
  return table.concat(out, "\n") .. "\n"
end

local function pool_state(p)
  if p.state then return p.state end
  local ready = 0
  for _, w in pairs(p.workers) do if w.state == "ready" then ready = ready + 1 end end
  return ready >= p.target and "running" or "starting"
end

-- The pool as corralctl status --json has it (doc/control.md).
local function status_of(self, p)
  local ids, ready, total, workers = {}, 0, 0, {}
  for id in pairs(p.workers) do ids[#ids + 1] = id end
  table.sort(ids)
  local held, busy, idle, requests = {}, 0, 0, 0
  for _, id in ipairs(ids) do
    local w = p.workers[id]
    local ld = w.stats or {}
    held[id] = true
    busy = busy + (ld.load == "busy" and 1 or 0)
    idle = idle + (ld.load == "idle" and 1 or 0)
    requests = requests + (ld.requests or 0)
    if w.state == "ready" then ready = ready + 1 end
    if w.state == "spawning" or w.state == "starting" or w.state == "ready" then total = total + 1 end
    local st = w.stats or {}
    workers[#workers + 1] = { id = id, pid = w.pid, state = w.state, generation = w.generation,
      uptime = self.clock - w.started, restarts = w.restarts, last_exit = w.last_exit,
      status = w.status, memory_current = st.memory_current, cpu_usage_usec = st.cpu_usage_usec,
      load = st.load, load_for = st.load_for, requests = st.requests or 0, last_request_ago = st.last_request_ago,
      replacing = w.replacing, notes = w.notes or {} }
  end
  local vacant = {}
  for id = 1, p.target do
    if not held[id] then vacant[#vacant + 1] = { id = id, state = "waiting", restarts = 0 } end
  end
  local st = p.stats or {}
  local moment = { iso = os.date("!%Y-%m-%dT%H:%M:%S.000Z", math.floor(self.epoch)), mono = self.clock }
  return { name = p.name, state = pool_state(p), since = moment, ready = ready, total = total,
    target = p.target, restarts = p.restarts, generation = p.generation, start_failures = 0,
    restart_in = nil, failure = nil, last_failure = nil, memory_current = st.memory_current,
    cpu_usage_usec = st.cpu_usage_usec, populated = total > 0,
    prototype = { pid = 1, state = "running" }, recent_exits = array({ unpack(p.recent_exits) }),
    busy = busy, idle = idle, requests = requests + ((p.stats or {}).requests or 0),
    last_request_ago = (p.stats or {}).last_request_ago, notes = p.notes or {},
    vacant = array(vacant), workers = array(workers) }
end

local function make_core(self)
  local fake = {}

  function fake.log(level, msg)
    local entry = { level = level, message = msg, at = self.clock }
    self.logs[#self.logs + 1] = entry
    if self.verbose then io.stderr:write(("# %8.3f %s %s\n"):format(self.clock, level, msg)) end
    -- how init.lua reports a handler that failed or overran its budget
    if level == "error" and (msg:find(" handler failed: ", 1, true) or msg:find(" over its ", 1, true)) then
      self.errors[#self.errors + 1] = msg
    end
  end
  function fake.phase() return self.phase end
  function fake.now() return self.clock end
  function fake.getpid() return self.corrald_pid end

  function fake.signum(v, ...)
    local given = select("#", ...) + 1
    if type(v) == "number" then
      return (v >= 1 and v < NSIG and v % 1 == 0) and v or nil
    end
    local s = checkstring(v, 1, given)
    if s:match("^%d") then return nil end
    local name = s:upper():gsub("^SIG", "")
    for i, n in ipairs(SIGNALS) do if n == name then return i end end
    return nil
  end

  -- daemon/text.c cr_text_duration: "250ms", "1.5s", "100000s"
  function fake.duration(s, ...)
    s = checkinteger(s, 1, select("#", ...) + 1) and tonumber(s)
    if s < 1 then return ("%.0fms"):format(s * 1e3) end
    if s < 100000 then return ("%gs"):format(math.floor(s * 1000 + 0.5) / 1000) end
    return ("%.0fs"):format(s)
  end

  function fake.renew_budget()
    local deadline = os.clock() + self.budget
    self.budget_start = os.clock()
    debug.sethook(function()
      if os.clock() > deadline then
        debug.sethook()
        local info = debug.getinfo(2, "Sl")
        error(("%s:%d: took longer than %gs, stopped"):format(info.short_src, info.currentline, self.budget), 0)
      end
    end, "", 1000)
  end
  function fake.budget_used()
    debug.sethook()
    return os.clock() - (self.budget_start or os.clock()), self.budget
  end

  local function add_timer(t)
    self.next_id = self.next_id + 1
    t.id = self.next_id
    self.live[t.id] = t
    return t.id
  end

  function fake.timer(seconds, rep)
    return add_timer({ kind = rep and "every" or "after", due = self.clock + seconds,
      period = rep and seconds or nil })
  end

  function fake.cancel(id, ...)
    id = checkinteger(id, 1, select("#", ...) + 1)
    self.live[id] = nil
  end

  -- network I/O (daemon/plugio.c): servers and requests are ids like
  -- timers; the test plays the other end (kit:http, kit:respond)
  local function io_id()
    self.next_id = math.max(self.next_id, 999999999) + 1
    return self.next_id
  end

  function fake.http_serve(address)
    if type(address) ~= "string" then error("bad argument #1 to 'http_serve' (string expected)", 0) end
    if not address:match("^unix:/") and not address:match("^[%d.]*:%d+$") and not address:match("^%[[%x:.]+%]:%d+$") then
      return nil, ('expected "HOST:PORT" (numeric) or "unix:/PATH", got "%s"'):format(address)
    end
    local id = io_id()
    local port = address:match(":(%d+)$")
    if port == "0" then address = address:gsub(":0$", ":" .. (40000 + id % 1000)) end
    self.live[id] = { kind = "http_serve", address = address }
    return id
  end

  function fake.http_address(id)
    local s = self.live[id]
    return s and s.kind == "http_serve" and s.address or nil
  end

  function fake.http_request(method, url, body, headers, timeout, connect_only)
    local id = io_id()
    self.live[id] = { kind = connect_only and "tcp_connect" or "http_request", method = method, url = url,
      body = body, headers = headers, timeout = timeout }
    return id
  end

  function fake.http_reply(status, body, ctype)
    if not self.reply then error("corral: an answer outside of an HTTP handler", 0) end
    self.reply.status, self.reply.body, self.reply.content_type = status, body or "", ctype
  end

  -- corral.on_connection: a watch on a pool's listen socket NAME (the
  -- test says which sockets a pool has: pools = { { name, listen = { "http" } } })
  function fake.listen_watch(pool, name, pause)
    local p = self.pool[pool]
    if not p then return nil, "no such pool" end
    local has = false
    for _, l in ipairs(p.listen or {}) do has = has or l == name end
    if not has then return nil, ("pool %s has no listen socket %s"):format(pool, name) end
    local id = io_id()
    self.live[id] = { kind = "listen_watch", pool = pool, name = name, pause = pause }
    return id
  end

  function fake.self_stats()
    local s = self.corrald or {}
    return { rss_bytes = s.rss_bytes or 6 * 2^20, open_fds = s.open_fds or 12, max_fds = s.max_fds or 1024 }
  end

  function fake.freeze(pool, on)
    local p = self.pool[pool]
    if not p then return nil, "no such pool" end
    p.freezing = on and true or false
    return true
  end

  function fake.pools()
    local out = {}
    for i, name in ipairs(self.order) do out[i] = name end
    return out
  end

  function fake.stats(pool, id, ...)
    local given = select("#", ...) + 2
    local p = self.pool[pool]
    if id ~= nil then id = checkinteger(id, 2, given) end
    if not p then return nil, "no such pool or worker" end
    local st
    if id then
      local w = p.workers[id]
      st = w and w.stats
    else
      st = p.stats
    end
    if not st then return nil, "no such pool or worker" end
    local out = {}
    for k, v in pairs(st) do out[k] = v end
    return out
  end

  function fake.read_pressure(pool, resource)
    local p = self.pool[pool]
    if not p then return nil, "no such pool or worker" end
    local pr = p.pressure[resource] or {}
    if pr.error then return nil, pr.error end
    return pressure_text(pr)
  end

  -- What the kernel takes (see "PSI triggers" in doc/plugins.md).
  function fake.psi_trigger(pool, resource, spec)
    local p = self.pool[pool]
    if not p then return nil, "no such pool or worker" end
    local pr = p.pressure[resource] or {}
    if pr.error then return nil, pr.error end
    local kind, stall, window = spec:match("^(%a+) (%d+) (%d+)$")
    stall, window = tonumber(stall), tonumber(window)
    if (kind ~= "some" and kind ~= "full") or stall == 0 or stall > window
      or window < 500000 or window > 10000000
      or (self.psi_unprivileged and window % 2000000 ~= 0) then
      return nil, "Invalid argument"
    end
    return add_timer({ kind = "psi_trigger", pool = pool, resource = resource, spec = spec })
  end

  local function control(pool, id)
    local p = self.pool[pool]
    if not p then return nil, -1 end
    if id ~= 0 then
      local w = p.workers[id]
      if not w or (w.state ~= "starting" and w.state ~= "ready") then return p, -2 end
    end
    return p, 0
  end
  local function result(rc, n)
    if rc == -1 then return nil, "no such pool" end
    if rc == -2 then return nil, "no such worker" end
    return n or 0
  end

  function fake.scale(pool, n, keep)
    local p = self.pool[pool]
    if not p then return nil, "no such pool" end
    p.target, p.keep_target, p.keep_pending = n, keep and true or nil, nil
    return 0
  end

  local REASON = { requested = true, recycled = true, unhealthy = true }
  function fake.restart(pool, id, all, reason, rolling, ...)
    id = checkinteger(id, 2, select("#", ...) + 5, 0)
    if reason ~= nil and not REASON[reason] then
      error("corral.restart: reason must be requested, recycled or unhealthy, not " .. tostring(reason), 0)
    end
    local p, rc = control(pool, id)
    if rc == 0 and id ~= 0 and rolling then p.workers[id].replacing = reason or "requested" end
    return result(rc)
  end

  -- corral.note: kept on the fake pool or worker, shown by status_json
  function fake.note(pool, id, key, value, ...)
    local given = select("#", ...) + 4
    id = checkinteger(id, 2, given)
    checkstring(key, 3, given)
    local p = self.pool[pool]
    if not p then return nil, "no such pool" end
    local holder = p
    if id ~= 0 then
      holder = p.workers[id]
      if not holder or holder.state == "exited" then return nil, "no such worker" end
    end
    holder.notes = holder.notes or {}
    if value ~= nil and holder.notes[key] == nil then
      local n = 0
      for _ in pairs(holder.notes) do n = n + 1 end
      if n >= 16 then return nil, "too many notes (at most 16 a pool or worker)" end
    end
    holder.notes[key] = value
    return 0
  end

  function fake.pool_stop(pool)
    local p = self.pool[pool]
    if not p then return nil, "no such pool" end
    p.state = "stopped"
    return 0
  end

  function fake.pool_start(pool)
    local p = self.pool[pool]
    if not p then return nil, "no such pool" end
    if p.state == "stopped" or p.state == "failed" then p.state = nil end
    return 0
  end

  function fake.signal(pool, id, sig, ...)
    local given = select("#", ...) + 3
    id = checkinteger(id, 2, given, 0)
    checkinteger(sig, 3, given)
    local p, rc = control(pool, id)
    if rc ~= 0 then return result(rc) end
    local n = 0
    for wid, w in pairs(p.workers) do
      if (id == 0 or wid == id) and w.pid > 0 and w.state ~= "exited" then n = n + 1 end
    end
    return n
  end

  function fake.status_json(pool, ...)
    pool = checkstring(pool, 1, select("#", ...) + 1, true)
    local list = {}
    for _, name in ipairs(self.order) do
      if not pool or name == pool then list[#list + 1] = status_of(self, self.pool[name]) end
    end
    if pool and #list == 0 then return nil, "no such pool" end
    return table.concat(encode(array(list), {}))
  end

  function fake.reload()
    self.reload_requested = true
  end

  -- The real gate (daemon/lua.c): each function checks its phase.
  local core = { version = "testing" }
  local PHASES = { config = "config", plugin = "plugin", prefork = "prefork", setup = "worker", start = "worker" }
  local function pass(...) return ... end
  for name, phases in pairs(M.CORE) do
    local f = fake[name]
    core[name] = function(...)
      if phases ~= "any" and not (" " .. phases .. " "):find(" " .. PHASES[self.phase] .. " ", 1, true) then
        error(("corral.core.%s: not available in %s"):format(name, self.phase), 0)
      end
      if not f then error(("corral.testing: corral.core.%s has no fake in the kit"):format(name), 2) end
      return pass(f(...))
    end
  end
  return core
end

-- A fresh corral API: init.lua over the fake core, with the calls of
-- the plugin recorded on the way in.
local function make_api(self)
  local chunk = assert(loadfile(LUA_DIR .. "/init.lua"))
  local core = self.core
  local env = setmetatable({
    require = function(name)
      if name == "corral.core" then return core end
      return require(name)
    end,
  }, { __index = _G })
  setfenv(chunk, env)
  local api = chunk()
  self.api = api
  -- the plugin's corral: the module's members, its functions recorded
  local proxy = {}
  for k, v in pairs(api) do
    if type(v) == "function" and type(k) == "string" and k:sub(1, 1) ~= "_" then
      proxy[k] = function(...)
        local rec = { name = k, args = { ... }, n = select("#", ...), at = self.clock, owner = api._owner }
        self.calls[#self.calls + 1] = rec
        local res = { n = 0 }
        local function keep(ok, ...)
          res.n = select("#", ...)
          for i = 1, res.n do res[i] = select(i, ...) end
          return ok
        end
        if not keep(pcall(v, ...)) then
          rec.error = res[1]
          error(res[1], 0)
        end
        rec.ret = res
        return unpack(res, 1, res.n)
      end
    elseif k ~= "_owner" then
      proxy[k] = v
    end
  end
  setmetatable(proxy, { __index = api })
  self.corral = proxy
end

-- The globals of a plugin (lua/corral/config.lua, base_globals), with
-- os.time and os.date on the kit's clock.
local function refused(self, name, why)
  return function()
    error(("%s: not allowed in %s code, which runs inside corrald: %s (it is allowed in "
      .. "the hooks prefork, setup and start)"):format(name, self.phase, why), 2)
  end
end

function M.globals(self)
  local g = {}
  for _, k in ipairs { "assert", "error", "ipairs", "next", "pairs", "pcall",
    "select", "tonumber", "tostring", "type", "unpack", "xpcall", "rawget",
    "rawset", "rawequal", "setmetatable", "getmetatable", "require" } do
    g[k] = _G[k]
  end
  g.string, g.table, g.math, g.bit = string, table, math, bit
  local function time(t)
    if t == nil then return math.floor(self.epoch + self.clock) end
    return os.time(t)
  end
  g.os = { getenv = os.getenv, time = time, clock = os.clock, difftime = os.difftime,
    date = function(fmt, t) return os.date(fmt, t or time()) end,
    exit = refused(self, "os.exit", "it would end corrald and leave every worker running"),
    rename = os.rename, remove = os.remove }
  g.io = { open = io.open, lines = io.lines }
  g._VERSION = _VERSION
  g.require = function(name)
    if name == "corral" then return self.corral end
    if name == "corral.core" then return self.core end
    return require(name)
  end
  g.corral = self.corral
  return g
end

local function raise_errors(self, before, what)
  if self.strict and #self.errors > before then
    error(("corral.testing: %s: %s"):format(what, self.errors[#self.errors]), 3)
  end
end

local function run_plugin(self, p)
  local chunk = p.fn
  local penv = setmetatable({}, {
    __index = M.globals(self),
    __newindex = function(_, k)
      error(("plugin %s: assignment to undeclared global %s (use local)"):format(p.name, tostring(k)), 2)
    end,
  })
  setfenv(chunk, penv)
  self.phase = "config"
  local previous = self.api._owner
  self.api._owner = "plugin " .. p.name
  local ok, err = pcall(chunk, p.options)
  self.api._owner = previous
  self.phase = "plugin"
  if not ok then
    -- corral.options' errors, all of them (a line each); others' first line
    if getmetatable(err) == require("corral.options").Errors then error(tostring(err), 0) end
    error(tostring(err):gsub("\n.*", ""), 0)
  end
end

-- Runs a plugin: plugin is a file's path or a function (given the options
-- as its ...); options its table (default {}); name its name (default: the
-- file's, without .lua). Raises what corrald would report as the config's
-- error. Several plugins may be loaded, as a config enables several.
function Kit:load(plugin, options, name)
  local fn, err
  if type(plugin) == "function" then
    fn, name = plugin, name or "test"
  elseif type(plugin) == "string" then
    fn, err = loadfile(plugin)
    if not fn then error(err, 2) end
    name = name or plugin:match("([^/]*)%.lua$") or plugin
  else
    kit_error("load: expected a plugin file or a function, got %s", show(plugin))
  end
  for _, q in ipairs(self.loaded) do
    if q.name == name then kit_error("load: plugin %q loaded twice (a config enables a plugin once)", name) end
  end
  if options == nil then options = {} end
  local p = { fn = fn, options = options, name = name }
  run_plugin(self, p)
  self.loaded[#self.loaded + 1] = p
  return self
end

-- The message load() raises, or nil when it loads.
function Kit:load_error(plugin, options, name)
  local ok, err = pcall(self.load, self, plugin, options, name)
  if ok then return nil end
  return err
end

-- Sends an event, with the real field names. The fake world changes first,
-- as corrald's has by the time a handler runs: worker_started adds the
-- worker, worker_ready makes it ready, worker_exited removes it, frozen,
-- thawed, pool_failed and stop set the pool's state. Defaults: pid is the
-- worker's; worker_exited and oom get code 0 unless signal is given, oom
-- (true for oom), and reason from those. A handler's error is raised
-- here once every handler has run (kit.strict, the default).
function Kit:emit(event, fields)
  local spec = M.EVENTS[event]
  if not spec or not self.api._events[event] then
    kit_error("emit: unknown event %s", show(event))
  end
  fields = fields or {}
  local allowed, ev = {}, { event = event }
  for _, f in ipairs(spec) do allowed[f] = true end
  for k, v in pairs(fields) do
    if not allowed[k] then kit_error("emit %s: unknown field %s (%s)", event, show(k), table.concat(spec, ", ")) end
    local want = FIELD_TYPES[k]
    if (want == "integer" and (type(v) ~= "number" or v % 1 ~= 0)) or (want ~= "integer" and type(v) ~= want) then
      kit_error("emit %s: %s: expected %s, got %s", event, k, want, show(v))
    end
    ev[k] = v
  end
  local p
  if allowed.pool then
    if not ev.pool then kit_error("emit %s: pool is missing", event) end
    p = self.pool[ev.pool]
    if not p then kit_error("emit %s: no pool %q in the fake world", event, ev.pool) end
  end
  if allowed.worker then
    if not ev.worker then kit_error("emit %s: worker is missing", event) end
    local w = p.workers[ev.worker]
    if event == "worker_started" then
      w = self:set_worker(ev.pool, ev.worker, { state = "starting", pid = ev.pid, started = self.clock,
        generation = p.generation })
    elseif not w then
      kit_error("emit %s: pool %q has no worker %d", event, ev.pool, ev.worker)
    end
    ev.pid = ev.pid or w.pid
  end
  if allowed.reason then
    if ev.code == nil and ev.signal == nil then ev.code = 0 end
    if ev.oom == nil then ev.oom = event == "oom" or ev.reason == "oom" end
    ev.reason = ev.reason or (ev.oom and "oom") or ((ev.signal or ev.code ~= 0) and "crashed") or "exited"
    if not M.REASONS[ev.reason] then kit_error("emit %s: unknown reason %s", event, show(ev.reason)) end
  end
  -- the world, as corrald has changed it
  if event == "worker_ready" then p.workers[ev.worker].state = "ready"
  elseif event == "worker_exited" then
    local w = p.workers[ev.worker]
    local exit = { code = ev.code, signal = ev.signal, oom = ev.oom, reason = ev.reason,
      at = { iso = os.date("!%Y-%m-%dT%H:%M:%S.000Z", math.floor(self.epoch + self.clock)), mono = self.clock } }
    p.workers[ev.worker] = nil
    local rec = { id = ev.worker }
    for k, v in pairs(exit) do rec[k] = v end
    p.recent_exits[#p.recent_exits + 1] = rec
    if #p.recent_exits > 10 then table.remove(p.recent_exits, 1) end
    self.exits[ev.pool .. "/" .. ev.worker] = { restarts = w.restarts, last_exit = exit }
  elseif event == "worker_started" then
    local gone = self.exits[ev.pool .. "/" .. ev.worker]
    if gone then
      local w = p.workers[ev.worker]
      w.last_exit, w.restarts = gone.last_exit, gone.restarts
    end
  elseif event == "frozen" then p.state = "frozen"
  elseif event == "thawed" then if p.state == "frozen" then p.state = nil end
  elseif event == "pool_failed" then p.state = "failed"
  elseif event == "stop" then for _, q in pairs(self.pool) do q.state = "stopping" end
  end
  local before = #self.errors
  self.phase = "plugin"
  self.api._emit(event, ev)
  raise_errors(self, before, event .. " handler")
  return ev
end

-- The startup: the "config" event, after every plugin has loaded.
function Kit:start()
  self:emit("config")
  return self
end

-- A reload (corralctl reload, or corral.reload()): a new Lua state runs
-- the plugins again with their options, the old timers and triggers are
-- gone, each pool's target is its config's again; then "config" and
-- "reload". The pools stay as the test set them.
function Kit:reload()
  self.reload_requested = false
  self.live = {}
  make_api(self)
  for _, p in ipairs(self.loaded) do run_plugin(self, p) end
  for _, name in ipairs(self.order) do
    local p = self.pool[name]
    -- a reload: the configured target again, unless a plugin scaled with keep;
    -- corrald drops every note
    if not p.keep_target then p.target = p.configured end
    p.keep_pending = p.keep_target
    p.notes = nil
    for _, w in pairs(p.workers) do w.notes = nil end
  end
  self:emit("config")
  -- a kept target no plugin claimed again in its config handler goes back
  for _, name in ipairs(self.order) do
    local p = self.pool[name]
    if p.keep_pending then p.target, p.keep_target, p.keep_pending = p.configured, nil, nil end
  end
  self:emit("reload")
  return self
end

-- Moves the clock on by seconds, firing the timers that fall due on the
-- way, earliest first (a tie: the one started first), each at its time:
-- corral.now() inside is its due time. An `every` timer comes back
-- `period` after its due time (libev's repeat), so none drifts.
function Kit:advance(seconds)
  if type(seconds) ~= "number" or seconds < 0 or seconds ~= seconds then
    kit_error("advance: expected a number of seconds >= 0, got %s", show(seconds))
  end
  local target = self.clock + seconds
  local before = #self.errors
  while true do
    local next_t
    for _, t in pairs(self.live) do
      if t.due and t.due <= target and (not next_t or t.due < next_t.due
        or (t.due == next_t.due and t.id < next_t.id)) then
        next_t = t
      end
    end
    if not next_t then break end
    self.clock = next_t.due
    if next_t.period then next_t.due = next_t.due + next_t.period else self.live[next_t.id] = nil end
    self.phase = "plugin"
    self.api._fire(next_t.id)
  end
  self.clock = target
  raise_errors(self, before, "timer")
  return self
end

-- A request to a plugin's HTTP server (by its id or address): req =
-- { method = "GET", path = "/", query = "", body = "" }. Returns status,
-- body, content_type as corrald would answer (500 when the handler gave
-- none).
function Kit:http(server, req)
  local id
  for sid, t in pairs(self.live) do
    if t.kind == "http_serve" and (sid == server or t.address == server) then id = sid end
  end
  if not id then kit_error("http: no server %s", show(server)) end
  req = req or {}
  local r = { method = req.method or "GET", path = req.path or "/", query = req.query or "",
    body = req.body or "", peer = req.peer or "127.0.0.1:50000" }
  self.reply = {}
  local before = #self.errors
  self.phase = "plugin"
  self.api._fire(id, r)
  local reply = self.reply
  self.reply = nil
  if #self.errors > before or not reply.status then
    return 500, "the plugin's handler gave no answer\n", nil
  end
  return reply.status, reply.body, reply.content_type
end

-- A client waits on pool's listen socket name: the plugin's on_connection
-- handlers for it run (the pause between calls is corrald's: each call
-- here is one). Returns how many ran.
function Kit:connect(pool, name)
  local ids = {}
  for id, t in pairs(self.live) do
    if t.kind == "listen_watch" and t.pool == pool and t.name == name then ids[#ids + 1] = id end
  end
  table.sort(ids)
  local before = #self.errors
  self.phase = "plugin"
  for _, id in ipairs(ids) do self.api._fire(id) end
  raise_errors(self, before, "on_connection")
  return #ids
end

-- A control client runs `corralctl plugin PLUGIN NAME args`: the answer
-- as corrald would send it, decoded ({ ok, code, result | error }).
-- read_only_client: a member of settings.monitor_group.
function Kit:command(plugin, name, args, read_only_client)
  local json = require "corral.json"
  local before = #self.errors
  self.phase = "plugin"
  local text = self.api._command(plugin, name, json.encode(args or {}), false, read_only_client and 1000 or nil)
  raise_errors(self, before, "command")
  return json.decode(text)
end

-- The open requests and connects: { id = { kind, method, url, ... } }.
function Kit:requests()
  local out = {}
  for id, t in pairs(self.live) do
    if t.kind == "http_request" or t.kind == "tcp_connect" then out[id] = t end
  end
  return out
end

-- Ends request id: res = { status, body, content_type, seconds } or nil
-- and why (a tcp_connect: res = { seconds = ... } for a connect).
function Kit:respond(id, res, why)
  local t = self.live[id]
  if not t or (t.kind ~= "http_request" and t.kind ~= "tcp_connect") then kit_error("respond: no request %s", show(id)) end
  self.live[id] = nil
  local before = #self.errors
  self.phase = "plugin"
  if res then
    res.seconds = res.seconds or 0.001
    self.api._fire(id, res)
  else
    self.api._fire(id, nil, why or "failed")
  end
  raise_errors(self, before, t.kind)
  return self
end

-- Fires the PSI triggers set on pool and resource (as the kernel would
-- when the pool stalls); returns how many.
function Kit:fire_psi(pool, resource)
  local ids = {}
  for id, t in pairs(self.live) do
    if t.kind == "psi_trigger" and t.pool == pool and t.resource == resource then ids[#ids + 1] = id end
  end
  table.sort(ids)
  local before = #self.errors
  for _, id in ipairs(ids) do self.api._fire(id) end
  raise_errors(self, before, "psi_trigger")
  return #ids
end

-- ---- what the plugin did ---------------------------------------------------------

local function matches(rec, name, args, n)
  if rec.name ~= name then return false end
  for i = 1, n do
    if not deep_equal(args[i], rec.args[i]) then return false end
  end
  return true
end

-- How many calls of corral.NAME the plugin made whose first arguments are
-- those given (M.ANY matches anything; arguments not given are not compared).
function Kit:count(name, ...)
  local n, args = 0, { ... }
  for _, rec in ipairs(self.calls) do
    if matches(rec, name, args, select("#", ...)) then n = n + 1 end
  end
  return n
end

function Kit:called(name, ...)
  return self:count(name, ...) > 0
end

-- The argument lists of the calls of corral.NAME, in order.
function Kit:calls_of(name)
  local out = {}
  for _, rec in ipairs(self.calls) do
    if rec.name == name then out[#out + 1] = rec.args end
  end
  return out
end

-- The control commands made (scale, restart, stop_pool, start_pool, signal,
-- freeze, thaw, reload), as strings "scale(\"web\", 3)": for messages.
local CONTROL = { scale = true, restart = true, stop_pool = true, start_pool = true, signal = true,
  freeze = true, thaw = true, reload = true }
function Kit:actions()
  local out = {}
  for _, rec in ipairs(self.calls) do
    if CONTROL[rec.name] then
      local a = {}
      for i = 1, rec.n do a[i] = show(rec.args[i]) end
      out[#out + 1] = ("%s(%s)"):format(rec.name, table.concat(a, ", "))
    end
  end
  return out
end

-- The first message logged at level (nil: any) that contains text
-- (plain, not a pattern), or nil.
function Kit:logged(level, text)
  for _, e in ipairs(self.logs) do
    if (level == nil or e.level == level) and e.message:find(text, 1, true) then return e.message end
  end
  return nil
end

-- The messages logged, at level or all.
function Kit:messages(level)
  local out = {}
  for _, e in ipairs(self.logs) do
    if level == nil or e.level == level then out[#out + 1] = e.message end
  end
  return out
end

-- Forgets the calls, logs and handler errors seen so far.
function Kit:clear()
  self.calls, self.logs, self.errors = {}, {}, {}
  return self
end

-- A new kit. world: { pools = { web = 2, batch = { workers = 1 } } or a
-- list { "web", { name = "batch", workers = 1 } } (config order), time =
-- the monotonic clock's start (default 1000), epoch = the wall clock at
-- time 0 (default 2026-01-01), budget = a handler's budget in seconds (1),
-- strict = false to log handler errors without raising them,
-- psi_unprivileged = true for the kernel's rule of 2 s windows, verbose =
-- true (or CORRAL_KIT_VERBOSE set) to print the log on stderr }.
function M.new(world)
  world = world or {}
  local self = setmetatable({
    pool = {}, order = {}, calls = {}, logs = {}, errors = {}, live = {}, loaded = {}, exits = {},
    clock = world.time or 1000, epoch = world.epoch or 1767225600 - (world.time or 1000),
    budget = world.budget or 1, strict = world.strict ~= false,
    psi_unprivileged = world.psi_unprivileged, next_id = 0, next_pid = 4000, corrald_pid = 4000,
    verbose = world.verbose or os.getenv("CORRAL_KIT_VERBOSE") ~= nil,
    phase = "plugin", reload_requested = false,
  }, Kit)
  self.core = make_core(self)
  make_api(self)
  local pools = world.pools or {}
  if pools[1] ~= nil or next(pools) == nil then
    for _, spec in ipairs(pools) do
      if type(spec) == "string" then self:add_pool(spec) else self:add_pool(spec.name, spec) end
    end
  else
    local names = {}
    for name in pairs(pools) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do self:add_pool(name, pools[name]) end
  end
  -- as in corrald: handlers run interpreted, where the budget's hook reaches
  if jit then jit.off() end
  return self
end

-- new(world), load(plugin, options), start(): the usual beginning.
function M.start(plugin, options, world)
  return M.new(world):load(plugin, options):start()
end

-- ---- a small TAP runner for test files ---------------------------------------------

local tests = { n = 0, failed = 0 }

-- test(name, fn): runs fn, "ok N - name" or "not ok N - name" with the error.
function M.test(name, fn)
  tests.n = tests.n + 1
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    io.write(("ok %d - %s\n"):format(tests.n, name))
  else
    tests.failed = tests.failed + 1
    io.write(("not ok %d - %s\n"):format(tests.n, name))
    -- the message, and the traceback's lines in the test and the plugin
    for line in tostring(err):gmatch("[^\n]+") do
      if not line:find("^%s") or not (line:find("[C]", 1, true) or line:find("corral/testing.lua", 1, true)
        or line:find("stack traceback", 1, true)) then
        io.write("# ", line, "\n")
      end
    end
  end
  io.flush()
end

-- eq(got, want, what): deep comparison, with both shown when they differ.
function M.eq(got, want, what)
  if not deep_equal(got, want) then
    error(("%s: got %s, want %s"):format(what or "value", show(got), show(want)), 2)
  end
end

-- raises(fn, text): fn must raise an error containing text (plain).
function M.raises(fn, text)
  local ok, err = pcall(fn)
  if ok then error(("expected an error containing %q, got none"):format(text), 2) end
  if not tostring(err):find(text, 1, true) then
    error(("expected an error containing %q, got: %s"):format(text, tostring(err)), 2)
  end
  return err
end

-- done(): the plan, and the exit status (1 if a test failed).
function M.done()
  io.write(("1..%d\n"):format(tests.n))
  io.flush()
  os.exit(tests.failed > 0 and 1 or 0)
end

return M
