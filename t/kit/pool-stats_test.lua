-- The unit test of plugins/pool-stats.lua, through the plugin kit.
-- Run from the top of the source tree: make test-plugins, or
--   LUA_PATH="lua/?.lua;;" luajit t/kit/pool-stats_test.lua
local testing = require "corral.testing"
local test, eq, raises = testing.test, testing.eq, testing.raises

local PLUGIN = os.getenv("CORRAL_KIT_PLUGIN") or "plugins/pool-stats.lua"

local function setup(options)
  local kit = testing.new { pools = { { name = "web", workers = 2 }, "batch" } }
  kit:load(PLUGIN, options or { interval = 10 })
  return kit:start()
end

test("options: interval in seconds or a duration, nothing else", function()
  local kit = testing.new()
  eq(kit:load_error(PLUGIN, { intervall = 5 }), 'plugin "pool-stats": unknown option "intervall" (interval)')
  eq(kit:load_error(PLUGIN, { interval = 0.5 }), 'plugin "pool-stats": interval: must be at least 1 second')
  raises(function() kit:load(PLUGIN, { interval = "soon" }) end, 'plugin "pool-stats": interval: ')
  eq(testing.new():load_error(PLUGIN, { interval = "5m" }), nil, "a duration")
  eq(testing.new():load_error(PLUGIN, {}), nil, "no options")
end)

test("one line per pool every interval, in the pools' order", function()
  local kit = setup()
  kit:set_stats("web", { memory_current = 191283200, cpu_usage_usec = 73250000, pids_current = 9 })
  kit:set_stats("batch", { memory_current = 512, cpu_usage_usec = 0, pids_current = 1 })
  kit:advance(9)
  eq(kit:messages("info"), {}, "before the interval")
  kit:advance(1)
  eq(kit:messages("info"), {
    "pool-stats: memory_current=182.4M cpu=73.25s pids_current=9 pool=web",
    "pool-stats: memory_current=512 cpu=0.00s pids_current=1 pool=batch",
  }, "lines")
  kit:clear()
  kit:advance(30)
  eq(#kit:messages("info"), 6, "lines in 30 s")
end)

test("the default interval is a minute", function()
  local kit = setup({})
  eq(kit:timers()[1].period, 60, "period")
end)

test("fields the kernel does not give are left out", function()
  local kit = setup()
  kit:set_stats("web", { cpu_usage_usec = 1500000 })	-- no memory nor pids controller
  kit:set_stats("batch", {})
  kit:advance(10)
  eq(kit:messages("info"), { "pool-stats: cpu=1.50s pool=web", "pool-stats: no statistics available pool=batch" })
end)

test("a pool whose cgroup is gone is skipped, a removed pool no longer listed", function()
  local kit = setup()
  kit:set_stats("web", nil)
  kit:remove_pool("batch")
  kit:advance(10)
  eq(kit:messages("info"), {}, "lines")
  assert(kit:called("stats", "web"))
end)

test("an OOM kill is logged at warn, with the pool's figures", function()
  local kit = setup()
  kit:set_stats("web", { oom_kills = 1, memory_current = 262248038, memory_peak = 268435456 })
  kit:emit("oom", { pool = "web", worker = 2, pid = 4711, signal = 9 })
  eq(kit:messages("warn"), {
    "pool-stats: OOM kill: worker 2 pid 4711; pool oom_kills=1 memory_current=250.1M memory_peak=256.0M pool=web" })
  kit:set_stats("batch", nil)
  kit:emit("oom", { pool = "batch", worker = 1, signal = 9 })
  assert(kit:logged("warn", "OOM kill: worker 1 pid "), "without figures")
  assert(kit:messages("warn")[2]:match("^pool%-stats: OOM kill: worker 1 pid %d+ pool=batch$"))
end)

test("its timer comes back after a reload, once", function()
  local kit = setup()
  kit:reload()
  kit:reload()
  eq(#kit:timers(), 1, "timers")
  kit:advance(10)
  eq(#kit:messages("info"), 2, "lines")
end)

test("it changes nothing: no control command", function()
  local kit = setup()
  kit:advance(600)
  kit:emit("oom", { pool = "web", worker = 1, signal = 9 })
  eq(kit:actions(), {}, "actions")
end)

testing.done()
