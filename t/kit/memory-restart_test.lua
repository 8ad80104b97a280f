-- The unit test of contrib/examples/plugins/memory-restart.lua, the
-- example of doc/plugins.md ("Writing and testing a plugin").
-- Run from the top of the source tree: make test-plugins, or
--   LUA_PATH="lua/?.lua;;" luajit t/kit/memory-restart_test.lua
-- (t/115-plugin-kit.t also runs it on broken copies of the plugin, named
-- by CORRAL_KIT_PLUGIN, and checks that it fails.)
local testing = require "corral.testing"
local test, eq, raises = testing.test, testing.eq, testing.raises

-- (CORRAL_KIT_PLUGIN: a broken copy of the plugin, for t/115-plugin-kit.t)
local PLUGIN = os.getenv("CORRAL_KIT_PLUGIN") or "contrib/examples/plugins/memory-restart.lua"
local MiB = 2^20

-- web has workers 1..3, batch 1..2; the plugin checks every 10 s
local function setup(options)
  local kit = testing.new { pools = { { name = "web", workers = 3 }, { name = "batch", workers = 2 } } }
  kit:load(PLUGIN, options or { limit = "100M", interval = 10 })
  return kit:start()	-- the "config" event: the plugin starts its timer
end

test("a bad option is an error of the config", function()
  local kit = testing.new()
  eq(kit:load_error(PLUGIN, { limit = "100M", intervall = 5 }),
    'plugin "memory-restart": unknown option intervall (limit, interval, hold)')
  eq(kit:load_error(PLUGIN, {}), 'plugin "memory-restart": limit: missing (a size: "512M")')
  raises(function() kit:load(PLUGIN, { limit = "lots" }) end, 'plugin "memory-restart": limit: ')
  raises(function() kit:load(PLUGIN, { limit = "1G", hold = 0.5 }) end, "hold: must be at least 1 second")
end)

test("nothing is restarted while every worker is under the limit", function()
  local kit = setup()
  kit:set_stats("web", 2, { memory_current = 99 * MiB })
  kit:advance(60)
  eq(kit:count("restart"), 0, "restarts")
  eq(kit:count("status"), 6, "checks in 60 s")
end)

test("the worker over the limit is restarted, not its pool nor another", function()
  local kit = setup()
  kit:set_stats("web", 2, { memory_current = 150 * MiB })
  kit:advance(9.9)
  eq(kit:actions(), {}, "before the first check")
  kit:advance(0.1)
  eq(kit:actions(), { 'restart("web", 2)' }, "actions")
  assert(kit:logged("warn", "worker 2 uses 150.0 MiB, over 100.0 MiB: restarting it pool=web"))
end)

test("at most one restart per pool per hold", function()
  local kit = setup()
  kit:set_stats("web", 1, { memory_current = 150 * MiB })
  kit:set_stats("web", 3, { memory_current = 150 * MiB })
  kit:advance(10)
  eq(kit:actions(), { 'restart("web", 1)' }, "first check")
  kit:advance(50)	-- to 60 s: 50 s since the restart
  eq(kit:actions(), { 'restart("web", 1)' }, "within the hold")
  kit:advance(10)
  eq(kit:calls_of("restart"), { { "web", 1 }, { "web", 1 } }, "after the hold")
end)

test("each pool has its own hold", function()
  local kit = setup()
  kit:set_stats("web", 1, { memory_current = 150 * MiB })
  kit:set_stats("batch", 2, { memory_current = 150 * MiB })
  kit:advance(10)
  eq(kit:actions(), { 'restart("web", 1)', 'restart("batch", 2)' }, "actions")
end)

test("a worker not ready, or without the memory figure, is left alone", function()
  local kit = setup()
  kit:set_worker("web", 1, { state = "starting" })
  kit:set_stats("web", 1, { memory_current = 150 * MiB })
  kit:set_stats("web", 2, { cpu_usage_usec = 5 })	-- no memory controller
  kit:advance(30)
  eq(kit:count("restart"), 0, "restarts")
end)

test("its timer is started again after a reload, and only one runs", function()
  local kit = setup()
  eq(#kit:timers(), 1, "timers after the start")
  kit:reload()
  eq(#kit:timers(), 1, "timers after a reload")
  kit:advance(10)
  eq(kit:count("status"), 1, "checks in 10 s")
end)

testing.done()	-- the plan; exit status 1 if a test failed
