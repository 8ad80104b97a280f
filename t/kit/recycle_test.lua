-- The unit test of plugins/recycle.lua: its decisions, with the plugin
-- kit (doc/plugins.md, "The plugin kit"). Run from the top of the source
-- tree: make test-plugins, or
--   LUA_PATH="lua/?.lua;;" luajit t/kit/recycle_test.lua
-- The kit does not replace workers by itself: replace() below sends the
-- events of corrald's rolling restart of one worker.
local testing = require "corral.testing"
local test, eq, raises = testing.test, testing.eq, testing.raises

local PLUGIN = os.getenv("CORRAL_KIT_PLUGIN") or "plugins/recycle.lua"
local MiB = 2^20
local ROLLING = { rolling = true, reason = "recycled" }

-- web has workers 1..3, api 1..2; the plugin checks each pool every 5 s
local function setup(options, pools)
  local kit = testing.new { pools = pools or { { name = "web", workers = 3 }, { name = "api", workers = 2 } } }
  kit:load(PLUGIN, options)
  return kit:start()
end

local function requests(kit, pool, id, n) kit:set_stats(pool, id, { requests = n }) end

-- corrald's rolling replacement of pool/id, as events: a surge worker
-- (id target+1) ready, the old worker exits (recycled), a new one with its
-- id ready, the surge worker goes. Steps from..upto (default all).
local function replace(kit, pool, id, from, upto)
  local surge = kit.pool[pool].target + 1	-- a temporary id above the target
  local steps = {
    function() kit:emit("worker_started", { pool = pool, worker = surge }) end,
    function() kit:emit("worker_ready", { pool = pool, worker = surge }) end,
    function() kit:emit("worker_exited", { pool = pool, worker = id, signal = 15, reason = "recycled" }) end,
    function() kit:emit("worker_started", { pool = pool, worker = id }) end,
    function() kit:emit("worker_ready", { pool = pool, worker = id }) end,
    -- (corrald gives the surge worker's exit the reason of the replacement)
    function() kit:emit("worker_exited", { pool = pool, worker = surge, signal = 15, reason = "recycled" }) end,
  }
  for i = from or 1, upto or #steps do steps[i]() end
end

local kit_of = setup

local function limits(kit, pool)
  local r = kit:command("recycle", "show", { pool = pool })
  assert(r.ok, r.error)
  local out = {}
  for _, w in ipairs(r.result[pool].workers) do out[w.id] = w end
  return out, r.result[pool]
end

-- ---- options ----------------------------------------------------------------------

test("options: each error names its key, all at once", function()
  local kit = testing.new()
  eq(kit:load_error(PLUGIN, { web = { max_request = 10 } }),
    'plugin "recycle": web: unknown key "max_request" (did you mean "max_requests"?)')
  eq(kit:load_error(PLUGIN, { web = { max_requests = -1, max_lifetime = "soon", max_memory = "lots", interval = 0.01 } }),
    'plugin "recycle": web.interval: must be at least 0.1s, got 0.01\n'
    .. 'plugin "recycle": web.max_lifetime: invalid duration "soon"\n'
    .. 'plugin "recycle": web.max_memory: invalid size "lots"\n'
    .. 'plugin "recycle": web.max_requests: expected an integer from 0 to 2147483647, got -1')
  eq(kit:load_error(PLUGIN, { web = { interval = 5 } }),
    'plugin "recycle": web: nothing to recycle on: give max_requests, max_lifetime or max_memory')
  eq(kit:load_error(PLUGIN, { web = { max_memory = "1G", max_requests_jitter = 5, lifetime_jitter = "1m" } }),
    'plugin "recycle": web.max_requests_jitter: needs max_requests\n'
    .. 'plugin "recycle": web.lifetime_jitter: needs max_lifetime')
  eq(kit:load_error(PLUGIN, { web = { max_requests = 0 } }),
    'plugin "recycle": web: nothing to recycle on: give max_requests, max_lifetime or max_memory', "0 is off")
  eq(kit:load_error(PLUGIN, { web = 5 }), 'plugin "recycle": web: expected a table, got 5')
  eq(kit:load_error(PLUGIN, { web = { max_requests = 10, max_lifetime = "1h", max_memory = "512M",
    max_requests_jitter = 5, lifetime_jitter = "5m", interval = "2s", seed = 7 } }), nil, "every option")
  eq(testing.new():load_error(PLUGIN, {}), nil, "no pools: nothing to do")
end)

-- ---- requests ---------------------------------------------------------------------

test("requests: a worker that served max_requests is replaced, rolling, with the reason recycled", function()
  local kit = kit_of { web = { max_requests = 1000 } }
  requests(kit, "web", 2, 999)
  kit:advance(5)
  eq(kit:count("restart"), 0, "999 of 1000")
  requests(kit, "web", 2, 1000)
  kit:advance(4.9)
  eq(kit:count("restart"), 0, "not before the next check")
  kit:advance(0.1)
  eq(kit:calls_of("restart"), { { "web", 2, ROLLING } }, "worker 2, rolling, recycled")
  assert(kit:logged("info", "recycle: worker 2 served 1000 requests (limit 1000+0) pool=web"), "the log says why")
  eq(kit:notes("web"), { recycle = "replacing worker 2 (requests); 1 recycled" }, "the note while it goes")
end)

test("requests: the jitter spreads the limits, deterministically for a seed and pids", function()
  local opts = { web = { max_requests = 1000, max_requests_jitter = 100, seed = 42 } }
  local kit = kit_of(opts, { { name = "web", workers = 8 } })
  local got, seen = {}, {}
  for id, w in pairs(limits(kit, "web")) do
    assert(w.max_requests >= 1000 and w.max_requests <= 1100, "in 1000..1100: " .. w.max_requests)
    got[id] = w.max_requests
    seen[w.max_requests] = true
  end
  local distinct = 0
  for _ in pairs(seen) do distinct = distinct + 1 end
  assert(distinct >= 6, "8 workers, " .. distinct .. " distinct limits")
  local again = {}
  for id, w in pairs(limits(kit_of(opts, { { name = "web", workers = 8 } }), "web")) do again[id] = w.max_requests end
  eq(again, got, "the same seed and pids: the same limits")
  local other = {}
  opts.web.seed = 43
  for id, w in pairs(limits(kit_of(opts, { { name = "web", workers = 8 } }), "web")) do other[id] = w.max_requests end
  local same = 0
  for id in pairs(got) do if got[id] == other[id] then same = same + 1 end end
  assert(same <= 2, "another seed: other limits (" .. same .. " of 8 equal)")
  -- and the decision follows the worker's own limit
  local w3 = got[3]
  requests(kit, "web", 3, w3 - 1)
  kit:advance(5)
  eq(kit:count("restart"), 0, "one below worker 3's limit")
  requests(kit, "web", 3, w3)
  kit:advance(5)
  eq(kit:calls_of("restart"), { { "web", 3, ROLLING } }, "at worker 3's limit")
  assert(kit:logged("info", ("served %d requests (limit 1000+%d) pool=web"):format(w3, w3 - 1000)))
end)

-- ---- lifetime --------------------------------------------------------------------

test("lifetime: each worker at its own limit, max_lifetime + jitter, one at a time", function()
  local kit = kit_of({ web = { max_lifetime = "1h", lifetime_jitter = "10m", interval = 1 } },
    { { name = "web", workers = 4 } })
  local lim = limits(kit, "web")
  local order = { 1, 2, 3, 4 }
  table.sort(order, function(a, b) return lim[a].max_lifetime < lim[b].max_lifetime end)
  for _, id in ipairs(order) do
    local l = lim[id].max_lifetime
    assert(l >= 3600 and l <= 4200, "in 1h..1h10m: " .. l)
  end
  kit:advance(3599)
  eq(kit:count("restart"), 0, "nobody before 1h")
  local times = {}
  for n, id in ipairs(order) do
    -- on to its limit (a check each second), then its replacement
    local t = lim[id].max_lifetime
    if kit:now() - 1000 < t then kit:advance(math.ceil(t - (kit:now() - 1000))) end
    eq(kit:count("restart"), n, "worker " .. id .. " at its limit")
    eq(kit:calls_of("restart")[n], { "web", id, ROLLING })
    times[n] = kit:now()
    kit:advance(1)
    eq(kit:count("restart"), n, "one at a time")
    replace(kit, "web", id)
    kit:advance(1)	-- the check that sees it done
  end
  assert(times[4] - times[1] >= 60, "spread over more than a minute: " .. (times[4] - times[1]))
  assert(kit:logged("info", "recycle: worker " .. order[1] .. " lived 1h"), "the log says why")
end)

-- ---- memory --------------------------------------------------------------------------

test("memory: past max_memory, not at it; the most over first", function()
  local kit = kit_of { web = { max_memory = "100M" } }
  kit:set_stats("web", 1, { memory_current = 100 * MiB })
  kit:set_stats("web", 2, { memory_current = 120 * MiB })
  kit:set_stats("web", 3, { memory_current = 150 * MiB })
  kit:advance(5)
  eq(kit:calls_of("restart"), { { "web", 3, ROLLING } }, "worker 3, the most over")
  assert(kit:logged("info", "recycle: worker 3 uses 150.0 MiB (limit 100.0 MiB) pool=web"))
  replace(kit, "web", 3)
  kit:advance(5)
  eq(kit:calls_of("restart")[2], { "web", 2, ROLLING }, "then worker 2")
  replace(kit, "web", 2)
  kit:advance(10)
  eq(kit:count("restart"), 2, "worker 1, at the limit, stays")
end)

test("memory: without the memory controller, a warning, once, and nothing else", function()
  local kit = kit_of { web = { max_memory = "100M", max_requests = 10 } }
  for id = 1, 3 do kit:set_stats("web", id, { requests = 1 }) end   -- no memory_current
  kit:advance(30)
  eq(kit:count("restart"), 0)
  eq(#kit:messages("warn"), 1, "one warning")
  assert(kit:logged("warn", "max_memory needs the memory controller"))
  requests(kit, "web", 1, 10)
  kit:advance(5)
  eq(kit:calls_of("restart"), { { "web", 1, ROLLING } }, "requests still count")
end)

-- ---- one at a time ---------------------------------------------------------------------

test("one at a time per pool: the next only once the replacement is done", function()
  local kit = kit_of { web = { max_requests = 10 } }
  for id = 1, 3 do requests(kit, "web", id, 50) end
  kit:advance(5)
  eq(kit:count("restart"), 1, "one")
  for step = 1, 6 do
    replace(kit, "web", 1, step, step)   -- each step of the replacement
    kit:advance(5)
    eq(kit:count("restart"), step < 6 and 1 or 2, "after step " .. step)
  end
  assert(kit:logged("info", "recycle: worker 1 replaced in "), "the end is logged")
  -- a worker being replaced by someone else, or missing: wait too
  kit:set_worker("web", 3, { replacing = "recycled" })
  replace(kit, "web", kit:calls_of("restart")[2][2])
  kit:advance(5)
  eq(kit:count("restart"), 2, "a worker with replacing set: the pool is not at rest")
  kit:set_worker("web", 3, { replacing = false })
  kit:set_worker("web", 3, nil)
  kit:advance(5)
  eq(kit:count("restart"), 2, "a worker missing: not at rest")
end)

test("a replacement that does not end: one warning after 2 minutes, and still one at a time", function()
  local kit = kit_of { web = { max_requests = 10 } }
  requests(kit, "web", 1, 10)
  requests(kit, "web", 2, 10)
  kit:advance(5)
  replace(kit, "web", 1, 1, 1)   -- the surge worker starts, never ready
  kit:advance(110)
  eq(#kit:messages("warn"), 0, "not before")
  kit:advance(10)
  eq(kit:messages("warn"), { "recycle: worker 1's replacement not done after 2m (running, 3/3 ready), waiting pool=web" })
  kit:advance(600)
  eq(#kit:messages("warn"), 1, "once")
  eq(kit:count("restart"), 1, "still one")
end)

test("a restart that fails leaves nothing pending", function()
  local kit = kit_of { web = { max_requests = 10 } }
  requests(kit, "web", 2, 10)
  kit:set_worker("web", 2, { state = "stopping" })   -- the kit's restart says no such worker
  kit:advance(5)
  eq(kit:count("restart"), 0, "not at rest: a worker stopping")
  kit:set_worker("web", 2, { state = "ready" })
  kit:advance(5)
  eq(kit:count("restart"), 1)
end)

test("two pools are independent", function()
  local kit = kit_of { web = { max_requests = 10 }, api = { max_requests = 5, interval = 2 } }
  requests(kit, "web", 1, 10)
  requests(kit, "web", 2, 10)
  requests(kit, "api", 2, 5)
  kit:advance(2)
  eq(kit:calls_of("restart"), { { "api", 2, ROLLING } }, "api checks every 2 s")
  kit:advance(3)
  eq(kit:calls_of("restart")[2], { "web", 1, ROLLING }, "web's own, while api's goes on")
  replace(kit, "api", 2)
  requests(kit, "api", 1, 6)
  kit:advance(2)
  eq(kit:calls_of("restart")[3], { "api", 1, ROLLING }, "api again, web still pending")
  kit:advance(20)
  eq(kit:count("restart"), 3, "web waits for its own")
end)

-- ---- status, command, reload ---------------------------------------------------------

test("the note and the command count what was done", function()
  local kit = kit_of { web = { max_requests = 10, max_memory = "1G" } }
  kit:advance(5)
  eq(kit:notes("web"), { recycle = "none recycled yet" })
  kit:set_stats("web", 2, { requests = 10, memory_current = MiB })
  kit:advance(5)
  replace(kit, "web", 2)
  kit:advance(65)
  eq(kit:notes("web"), { recycle = "1 recycled, last: worker 2 (requests) 1m5s ago" })
  local _, r = limits(kit, "web")
  eq({ r.recycled, r.requests, r.lifetime, r.memory }, { 1, 1, 0, 0 }, "counts")
  eq(#r.workers, 3)
  local bad = kit:command("recycle", "show", { pool = "nope" })
  assert(not bad.ok and bad.error:find("no pool nope"), bad.error)
  assert(kit:command("recycle", "show", {}, true).ok, "read-only")
end)

test("a pool that is not there: a warning, once", function()
  local kit = kit_of { nope = { max_requests = 10 } }
  kit:advance(20)
  eq(#kit:messages("warn"), 1)
  assert(kit:logged("warn", "recycle: no such pool: its options are unused pool=nope"))
end)

test("reload: one timer per pool again, the same limits, a replacement under way waited for", function()
  local kit = kit_of { web = { max_requests = 100, max_requests_jitter = 50 } }
  local before = limits(kit, "web")
  requests(kit, "web", 1, 1000)   -- the most over: first
  requests(kit, "web", 2, 200)
  kit:advance(5)
  eq(kit:calls_of("restart"), { { "web", 1, ROLLING } })
  replace(kit, "web", 1, 1, 3)   -- the old worker gone, its new one not started
  kit:reload()
  eq(#kit:timers(), 2 - 1, "one timer (one pool)")
  kit:advance(10)
  eq(kit:count("restart"), 1, "the pool is not at rest: the new load waits too")
  kit:emit("worker_started", { pool = "web", worker = 1 })
  kit:emit("worker_ready", { pool = "web", worker = 1 })
  kit:emit("worker_exited", { pool = "web", worker = 4, signal = 15, reason = "recycled" })
  kit:advance(5)
  eq(kit:calls_of("restart")[2], { "web", 2, ROLLING }, "then the next")
  local after = limits(kit, "web")
  eq(after[3].max_requests, before[3].max_requests, "worker 3 keeps its limit across the reload")
end)

testing.done()
