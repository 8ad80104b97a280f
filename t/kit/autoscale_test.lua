-- The unit test of plugins/autoscale.lua, through the plugin kit.
-- Run from the top of the source tree: make test-plugins, or
--   LUA_PATH="lua/?.lua;;" luajit t/kit/autoscale_test.lua
local testing = require "corral.testing"
local test, eq, raises = testing.test, testing.eq, testing.raises

local PLUGIN = os.getenv("CORRAL_KIT_PLUGIN") or "plugins/autoscale.lua"

-- The fake world does not start or stop workers: make the pool's workers
-- 1..target, ready, as corrald would have them a moment after a scale,
-- each idle unless listed busy.
local function settle(kit, pool, busy)
  local p = kit.pool[pool]
  local is_busy = {}
  for _, id in ipairs(busy or {}) do is_busy[id] = true end
  for id in pairs(p.workers) do if id > p.target then kit:set_worker(pool, id, nil) end end
  for id = 1, p.target do
    kit:set_worker(pool, id, { state = "ready" })
    kit:set_stats(pool, id, { load = is_busy[id] and "busy" or "idle", load_for = 1 })
  end
end

local function all_busy(kit, pool)
  local ids = {}
  for id = 1, kit.pool[pool].target do ids[#ids + 1] = id end
  settle(kit, pool, ids)
end

local function target(kit, pool) return kit.pool[pool].target end

-- At each load the plugin claims each pool's target (corral.scale with
-- keep, the same number: corrald keeps it across the reload only then);
-- the tests look at the decisions after that.
local function claimed(kit)
  local left, seen = {}, {}
  for _, c in ipairs(kit.calls) do
    local pool = c.args[1]
    if c.name == "scale" and not seen[pool] and c.args[2] == kit.pool[pool].configured then
      seen[pool] = true       -- the claim: the first scale of the pool, to its own number
    else
      if c.name == "scale" then seen[pool] = true end
      left[#left + 1] = c
    end
  end
  kit.calls = left
  return kit
end

local function setup(opts, pools)
  local kit = testing.new { pools = pools or { { name = "web", workers = 2 } } }
  kit:load(PLUGIN, opts or { web = { min = 2, max = 16 } }, "autoscale")
  settle(kit, "web")
  return claimed(kit:start())
end

test("options: errors name the pool and key, all at once", function()
  local function err(opts) return testing.new():load_error(PLUGIN, opts) end
  eq(err({ web = { min = 2 } }),
    'plugin "autoscale": web.max: missing: the most workers the pool may run (PHP-FPM pm.max_children)')
  eq(err({ web = { min = 4, max = 2 } }), 'plugin "autoscale": web.max: must be at least min (4), got 2')
  local e = err({ web = { max = 4, mx = 5, up = { step = 0 } }, api = { max = 2, interval = "soon" } })
  assert(e:find('api.interval: ', 1, true), e)
  assert(e:find('web: unknown key "mx" (did you mean "max"?)', 1, true), e)
  assert(e:find('web.up.step: expected an integer from 1 to 10000, got 0', 1, true), e)
  e = err({ web = { min = 4, max = 2, mx = 1 } })
  assert(e:find('web.max: must be at least min (4), got 2', 1, true) and e:find('unknown key "mx"', 1, true),
    "a key against another and the schema's errors, at once: " .. e)
  eq(err({ web = { max = 4, spare = { min = 3, max = 2 } } }),
    'plugin "autoscale": web.spare.max: must be at least spare.min (3), got 2')
  eq(err({ web = { max = 4, idle_timeout = "1m", sockets = "http" } }),
    'plugin "autoscale": web.idle_timeout: needs min = 0 (a pool that goes down to zero workers)')
  eq(err({ web = { min = 0, max = 4, idle_timeout = "1m" } }),
    'plugin "autoscale": web.idle_timeout: needs sockets: the pool\'s listen socket(s) to watch while it has no worker')
  eq(err({ web = { max = 4, sockets = "http" } }),
    'plugin "autoscale": web.sockets: only with idle_timeout (on demand: min = 0, idle_timeout = ...)')
  eq(err({ web = { max = 4, decide = 3 } }), 'plugin "autoscale": web.decide: expected a function, got 3')
  eq(err({ web = { max = 4, pressure = { cpu = 120 } } }),
    'plugin "autoscale": web.pressure.cpu: expected a number from 0 to 100, got 120')
  eq(err({ web = { min = 0, max = 4, idle_timeout = "5m", sockets = { "http", "admin" } } }), nil)
end)

test("nothing happens while the spare is within spare.min..spare.max", function()
  local kit = setup()
  settle(kit, "web", { 1 })         -- 1 busy, 1 idle
  kit:advance(10)
  eq(kit:actions(), {})
  assert(kit:notes("web").autoscale:find("^2 workers %(2%.%.16%): 2 at the load"), kit:notes("web").autoscale)
end)

test("up at once when no worker is idle, by up.step, logged and noted", function()
  local kit = setup({ web = { min = 2, max = 16, up = { step = 3 } } })
  all_busy(kit, "web")
  kit:advance(1)
  eq(kit:actions(), { 'scale("web", 3, {keep=true})' }, "0 of 2 idle < spare.min 1: one more")
  assert(kit:logged("info", "autoscale: up from 2 to 3 workers: 0 of 2 idle < spare.min 1 pool=web"))
  eq(kit:notes("web").autoscale, "3 workers (2..16): up from 2 at 00:00:01, 0 of 2 idle < spare.min 1")
  -- a bigger shortfall is limited to the step (decided at the config event)
  local kit2 = setup({ web = { min = 2, max = 16, up = { step = 3 }, spare = { min = 8, max = 10 } } })
  eq(kit2:actions(), { 'scale("web", 5, {keep=true})' }, "2 idle of 8 wanted, 3 a step")
end)

test("workers still starting count as spare: no double scale-up", function()
  local kit = setup()
  all_busy(kit, "web")
  kit:advance(1)
  eq(target(kit, "web"), 3)
  kit:set_worker("web", 3, { state = "starting" })
  kit:advance(3)
  eq(kit:actions(), { 'scale("web", 3, {keep=true})' })
end)

test("up.cooldown: no second scale-up within it", function()
  local kit = setup({ web = { min = 2, max = 16, up = { step = 1, cooldown = "5s" } } })
  all_busy(kit, "web")
  kit:advance(1)
  all_busy(kit, "web")
  kit:advance(4)
  eq(kit:actions(), { 'scale("web", 3, {keep=true})' }, "within the cooldown")
  kit:advance(1)
  eq(kit:actions(), { 'scale("web", 3, {keep=true})', 'scale("web", 4, {keep=true})' }, "after it")
end)

test("down slowly: only after the surplus lasted down.cooldown, one step at a time", function()
  local kit = setup({ web = { min = 2, max = 16, spare = { min = 1, max = 2 }, down = { step = 2, cooldown = "10s" } } },
    { { name = "web", workers = 8 } })
  settle(kit, "web")                -- 8 idle > spare.max 2
  kit:advance(9)
  eq(kit:actions(), {}, "the surplus is 9 s old")
  kit:advance(2)
  eq(kit:actions(), { 'scale("web", 6, {keep=true})' }, "after 10 s: a step of 2")
  assert(kit:logged("info", "autoscale: down from 8 to 6 workers: 8 of 8 idle > spare.max 2 for 10s pool=web"))
  settle(kit, "web")
  kit:advance(8)
  eq(kit:actions(), { 'scale("web", 6, {keep=true})' }, "the next step waits a cooldown again")
  kit:advance(1)
  eq(kit:actions(), { 'scale("web", 6, {keep=true})', 'scale("web", 4, {keep=true})' })
end)

test("a surplus that goes away restarts the down cooldown", function()
  local kit = setup({ web = { min = 1, max = 16, spare = { min = 1, max = 1 }, down = { cooldown = "10s" } } },
    { { name = "web", workers = 3 } })
  settle(kit, "web")
  kit:advance(8)
  settle(kit, "web", { 1, 2 })      -- load comes back: 1 idle
  kit:advance(1)
  settle(kit, "web")
  kit:advance(9)
  eq(kit:actions(), {}, "9 s of surplus since it came back")
  kit:advance(2)
  eq(kit:actions(), { 'scale("web", 2, {keep=true})' })
end)

test("min and max: the target is brought into min..max at once, and never leaves it", function()
  local kit = setup({ web = { min = 3, max = 4, spare = { min = 4, max = 5 } } })
  kit:advance(1)
  eq(kit:actions()[1], 'scale("web", 3, {keep=true})', "2 is below min 3")
  assert(kit:logged("info", "autoscale: up from 2 to 3 workers: 2 is below min 3 pool=web"))
  all_busy(kit, "web")
  for _ = 1, 5 do kit:advance(1); all_busy(kit, "web") end
  eq(target(kit, "web"), 4, "max 4")
  local kit2 = setup({ web = { min = 1, max = 3 } }, { { name = "web", workers = 6 } })
  eq(kit2:actions(), { 'scale("web", 3, {keep=true})' }, "6 above max 3, at the config event")
end)

test("decide: its number, clamped, with its reason; steps and cooldowns still apply", function()
  local seen
  local kit = setup({ web = { min = 2, max = 10, up = { step = 100 }, down = { cooldown = "5s", step = 100 },
    decide = function(v) seen = v; return v.busy * 20, "queue long" end } })
  settle(kit, "web", { 1 })
  kit:set_pressure("web", "cpu", { some = { avg10 = 12.5 } })
  kit:advance(1)
  eq(kit:actions(), { 'scale("web", 10, {keep=true})' }, "20 clamped to max 10")
  eq(seen.pressure, { cpu = 12.5, memory = 0, io = 0 }, "the pool's PSI, some avg10")
  assert(kit:logged("info", "up from 2 to 10 workers: decide: queue long pool=web"))
  eq({ seen.name, seen.target, seen.ready, seen.busy, seen.idle, seen.min, seen.max }, { "web", 2, 2, 1, 1, 2, 10 })
  settle(kit, "web")                -- nobody busy: decide says 0 -> min 2
  kit:advance(5)
  eq(#kit:actions(), 1, "down waits its cooldown")
  kit:advance(1)
  eq(kit:actions()[2], 'scale("web", 2, {keep=true})')
end)

test("decide: nil keeps the target, an error or a bad value is logged and changes nothing", function()
  local answer = {}
  local kit = setup({ web = { min = 1, max = 10, decide = function() return answer[1], answer[2] end } })
  kit:advance(3)
  eq(kit:actions(), {})
  answer = { "many" }
  kit:advance(1)
  assert(kit:logged("error", 'autoscale: decide returned "many", not a whole number pool=web'))
  local kit2 = setup({ web = { min = 1, max = 10, decide = function() error("boom") end } })
  kit2:advance(1)
  assert(kit2:logged("error", "autoscale: decide failed: "))
  eq(kit2:actions(), {})
end)

test("PSI: no scale-up while the pool's pressure is over its limit; logged once", function()
  local kit = setup({ web = { min = 2, max = 16, pressure = { cpu = 80 } } })
  kit:set_pressure("web", "cpu", { some = { avg10 = 91.5 } })
  all_busy(kit, "web")
  kit:advance(5)
  eq(kit:actions(), {}, "held")
  eq(#kit:messages("info"), 1, "one line for the hold")
  assert(kit:logged("info", "autoscale: up held: cpu pressure 91.5% > 80% (0 of 2 idle < spare.min 1) pool=web"))
  assert(kit:notes("web").autoscale:find("up held at 00:00:01, cpu pressure 91.5% > 80%", 1, true))
  kit:set_pressure("web", "cpu", { some = { avg10 = 10 } })
  kit:advance(1)
  eq(kit:actions(), { 'scale("web", 3, {keep=true})' }, "once it is below")
end)

test("a pool without PSI is scaled as if the guard were not there", function()
  local kit = setup({ web = { min = 2, max = 16, pressure = { memory = 50 } } })
  kit:set_pressure("web", "memory", nil, "Operation not supported")
  all_busy(kit, "web")
  kit:advance(1)
  eq(kit:actions(), { 'scale("web", 3, {keep=true})' })
end)

local ONDEMAND = { web = { min = 0, max = 4, idle_timeout = "30s", sockets = "http" } }
local function ondemand()
  local kit = testing.new { pools = { { name = "web", workers = 0, listen = { "http" } } } }
  kit:load(PLUGIN, ONDEMAND, "autoscale")
  return claimed(kit:start())
end

test("on demand: a client waiting at 0 workers scales to 1 at once", function()
  local kit = ondemand()
  kit:advance(5)
  eq(kit:actions(), {}, "nothing without a client")
  eq(kit:connect("web", "http"), 1, "one watch on the socket")
  eq(kit:actions(), { 'scale("web", 1, {keep=true})' })
  assert(kit:logged("info", "autoscale: up from 0 to 1 workers: a client waits on the listen socket pool=web"))
  settle(kit, "web", { 1 })
  kit:connect("web", "http")        -- a client while it has a worker: no second scale
  kit:advance(2)
  eq(kit:actions(), { 'scale("web", 1, {keep=true})', 'scale("web", 2, {keep=true})' }, "the spare rule on top: 0 idle")
end)

test("on demand: back to 0 after idle_timeout without activity, not before", function()
  local kit = ondemand()
  kit:connect("web", "http")
  settle(kit, "web")
  kit:advance(20)
  kit:set_stats("web", 1, { load = "idle", requests = 5 })   -- a request, seen at 21 s
  kit:advance(30)
  eq(kit:actions(), { 'scale("web", 1, {keep=true})' }, "29 s after the last request")
  kit:advance(1)
  eq(kit:actions(), { 'scale("web", 1, {keep=true})', 'scale("web", 0, {keep=true})' })
  assert(kit:logged("info", "autoscale: down from 1 to 0 workers: no activity for 30s (idle_timeout 30s) pool=web"))
  settle(kit, "web")
  kit:connect("web", "http")
  eq(target(kit, "web"), 1, "and up again at the next client")
end)

test("on demand: a busy worker is activity, the spare rule never takes it to 0", function()
  local kit = ondemand()
  kit:connect("web", "http")
  settle(kit, "web", { 1 })
  kit:advance(1)
  settle(kit, "web", { 1 })
  kit:advance(100)
  eq(target(kit, "web") > 0, true, "busy: stays up")
end)

test("reload: state from status, the target back in min..max, one timer per pool", function()
  local kit = setup({ web = { min = 2, max = 16 } }, { { name = "web", workers = 2 }, { name = "api", workers = 1 } })
  all_busy(kit, "web")
  kit:advance(1)
  eq(target(kit, "web"), 3)
  settle(kit, "web")
  kit:reload()                      -- scaled with keep: the target stays 3
  eq(target(kit, "web"), 3, "kept across the reload")
  assert(kit:notes("web").autoscale:find("^3 workers %(2%.%.16%)"), kit:notes("web").autoscale)
  local every = 0
  for _, t in ipairs(kit:timers()) do if t.kind == "every" then every = every + 1 end end
  eq(every, 1, "one timer")
  kit:clear()
  all_busy(kit, "web")
  kit:advance(1)
  eq(kit:actions(), { 'scale("web", 4, {keep=true})' }, "not taken as a hand scale")
end)

test("reload: on demand keeps counting idle time from the last request", function()
  local kit = ondemand()
  kit:connect("web", "http")
  settle(kit, "web")
  kit:set_stats("web", 1, { requests = 3, last_request_ago = 0 })
  kit.pool.web.configured = 1
  kit:advance(10)
  kit:set_stats("web", { last_request_ago = 10 })
  kit:reload()
  kit:clear()
  kit:advance(19)
  eq(kit:actions(), {}, "29 s since the request")
  kit:advance(1)
  eq(kit:actions(), { 'scale("web", 0, {keep=true})' }, "30 s: not 30 s after the reload")
end)

test("a pool removed by a reload, and a pool not there, are left out", function()
  local kit = setup({ web = { min = 2, max = 16 }, gone = { max = 3 } })
  assert(kit:logged("warn", "autoscale: no such pool: its options wait for a reload that adds it pool=gone"))
  kit:remove_pool("web")
  kit:advance(5)
  eq(kit:actions(), {})
  eq(#kit.errors, 0)
end)

test("a stopped or failed pool is left alone, and taken up again once it runs", function()
  local kit = setup()
  all_busy(kit, "web")
  kit.pool.web.state = "stopped"
  kit:advance(5)
  eq(kit:actions(), {}, "stopped")
  assert(kit:logged("info", "autoscale: left alone: the pool is stopped pool=web"))
  eq(kit:notes("web").autoscale, "left alone while stopped (2..16)")
  kit.pool.web.state = nil
  kit:advance(1)
  eq(kit:actions(), { 'scale("web", 3, {keep=true})' }, "running again")
end)

test("a failed or frozen pool is left alone too", function()
  for _, st in ipairs { "failed", "frozen" } do
    local kit = setup()
    all_busy(kit, "web")
    kit.pool.web.state = st
    kit:advance(3)
    eq(kit:actions(), {}, st)
    assert(kit:logged("info", "autoscale: left alone: the pool is " .. st .. " pool=web"), st)
  end
end)

test("on demand: a stopped pool at 0 is not woken by a client", function()
  local kit = ondemand()
  kit.pool.web.state = "stopped"
  kit:connect("web", "http")
  kit:advance(2)
  eq(kit:actions(), {})
end)

test("corralctl scale by hand is held for `hold`, then autoscale decides again", function()
  local kit = setup({ web = { min = 2, max = 16, hold = "1m" } })
  kit:advance(1)
  kit.pool.web.target = 12          -- corralctl scale web 12
  settle(kit, "web")
  kit:advance(1)
  assert(kit:logged("info", "autoscale: scaled from 2 to 12 by hand (corralctl scale?): held for 60s pool=web"))
  kit:advance(58)
  eq(kit:actions(), {}, "held")
  kit:advance(32)                   -- the hold ends at 61 s, then 30 s of surplus
  eq(kit:actions(), { 'scale("web", 11, {keep=true})' }, "then down slowly")
end)

test("show: the last decisions per pool, read-only", function()
  local kit = setup()
  all_busy(kit, "web")
  kit:advance(1)
  local r = kit:command("autoscale", "show", {}, true)
  eq(r.ok, true)
  eq(r.result.web.target, 3)
  eq(r.result.web.decisions, { "00:00:01 up from 2 to 3 workers: 0 of 2 idle < spare.min 1" })
  eq(kit:command("autoscale", "show", { pool = "nope" }).ok, false)
end)

testing.done()
