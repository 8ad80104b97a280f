-- The unit test of plugins/metrics.lua, through the plugin kit.
-- Run from the top of the source tree: make test-plugins, or
--   LUA_PATH="lua/?.lua;;" luajit t/kit/metrics_test.lua
local testing = require "corral.testing"
local test, eq, raises = testing.test, testing.eq, testing.raises

local PLUGIN = os.getenv("CORRAL_KIT_PLUGIN") or "plugins/metrics.lua"

local function setup(options)
  local kit = testing.new { pools = { { name = "web", workers = 2 }, "batch" } }
  kit:load(PLUGIN, options or { listen = "127.0.0.1:0" })
  return kit:start()
end

-- the server the plugin started last (the kit's fake gives port 0 a number)
local function server(kit)
  local id
  for _, c in ipairs(kit.calls) do
    if c.name == "http_serve" and c.ret then id = c.ret[1] end
  end
  return id
end

local function value(body, sample)
  for line in body:gmatch("[^\n]+") do
    if line:sub(1, #sample + 1) == sample .. " " then return tonumber(line:sub(#sample + 2)) end
  end
end

test("options: listen, textfile, textfile_interval, nothing else", function()
  eq(testing.new():load_error(PLUGIN, { bogus = 1 }),
     'plugin "metrics": unknown option "bogus" (listen, textfile, textfile_interval)')
  eq(testing.new():load_error(PLUGIN, { listen = 42 }),
     'plugin "metrics": listen: expected "HOST:PORT", "unix:/PATH" or false')
  eq(testing.new():load_error(PLUGIN, { listen = false }),
     'plugin "metrics": nothing to do: listen is false and there is no textfile')
  eq(testing.new():load_error(PLUGIN, { textfile = "relative.prom" }), 'plugin "metrics": textfile: expected an absolute path')
  eq(testing.new():load_error(PLUGIN, {}), nil, "no options: the default address")
end)

test("it serves /metrics in the text format, and 404 elsewhere", function()
  local kit = setup()
  local id = server(kit)
  assert(id, "a server was started")
  local status, body, ctype = kit:http(id, { path = "/metrics" })
  eq(status, 200, "status")
  eq(ctype, "text/plain; version=0.0.4; charset=utf-8", "content type")
  assert(body:find("# TYPE corral_pool_workers gauge\n", 1, true), "a TYPE line")
  eq((kit:http(id, { path = "/" })), 404, "another path")
  eq((kit:http(id, { path = "/metrics", method = "POST" })), 405, "another method")
end)

test("pools, workers by state, exits by reason, the spawn histogram", function()
  local kit = setup()
  local id = server(kit)
  kit:emit("worker_started", { pool = "web", worker = 1 })
  kit:advance(0.02)
  kit:emit("worker_ready", { pool = "web", worker = 1 })
  kit:emit("worker_exited", { pool = "web", worker = 2, signal = 9, reason = "crashed" })
  kit:emit("worker_exited", { pool = "batch", worker = 1, code = 0, reason = "requested" })
  local _, body = kit:http(id, { path = "/metrics" })
  eq(value(body, 'corral_pool_target_workers{pool="web"}'), 2, "target")
  eq(value(body, 'corral_worker_exits_total{pool="web",reason="crashed"}'), 1, "crashed")
  eq(value(body, 'corral_worker_exits_total{pool="batch",reason="requested"}'), 1, "requested")
  eq(value(body, 'corral_worker_exits_total{pool="web",reason="oom"}'), 0, "a reason never seen is 0")
  kit:emit("worker_exited", { pool = "web", worker = 1, signal = 15, reason = "unhealthy" })
  _, body = kit:http(id, { path = "/metrics" })
  eq(value(body, 'corral_worker_exits_total{pool="web",reason="unhealthy"}'), 1, "unhealthy (plugin healthcheck)")
  eq(value(body, 'corral_spawn_ready_seconds_count{pool="web"}'), 1, "one spawn")
  eq(value(body, 'corral_spawn_ready_seconds_bucket{pool="web",le="0.01"}'), 0, "20 ms is over 10 ms")
  eq(value(body, 'corral_spawn_ready_seconds_bucket{pool="web",le="0.025"}'), 1, "and under 25 ms")
  eq(value(body, "corral_corrald_open_fds"), 12, "corrald's fds")
end)

test("label values are escaped", function()
  local kit = testing.new { pools = { 'we"b\\x' } }
  kit:load(PLUGIN, { listen = "127.0.0.1:0" })
  kit:start()
  local _, body = kit:http(server(kit), { path = "/metrics" })
  assert(body:find('corral_pool_target_workers{pool="we\\"b\\\\x"}', 1, true), "escaped: " .. body:sub(1, 300))
end)

test("a reload starts from zero, with one server", function()
  local kit = setup()
  kit:emit("worker_exited", { pool = "web", worker = 2, signal = 9, reason = "crashed" })
  kit:reload()
  local n = 0
  for _, c in ipairs(kit.calls) do n = n + (c.name == "http_serve" and 1 or 0) end
  eq(n, 2, "a server per config")
  local _, body = kit:http(server(kit), { path = "/metrics" })
  eq(value(body, 'corral_worker_exits_total{pool="web",reason="crashed"}'), 0, "counters reset")
end)

test("corral_worker_healthy: from the workers' health notes", function()
  local kit = setup()
  kit:load(function()
    corral.on("config", function()
      corral.note("web", 1, "health", "healthy")
      corral.note("web", 2, "health", "failing 1/3: timed out after 2s")
      corral.note("batch", 1, "health", "unhealthy: HTTP status 500")
    end)
  end, {}, "notes")
  kit:reload()
  local _, body = kit:http(server(kit), { path = "/metrics" })
  eq(value(body, 'corral_worker_healthy{pool="web",worker="1"}'), 1, "healthy")
  eq(value(body, 'corral_worker_healthy{pool="web",worker="2"}'), 1, "failing below the threshold")
  eq(value(body, 'corral_worker_healthy{pool="batch",worker="1"}'), 0, "unhealthy")
  assert(body:find("# TYPE corral_worker_healthy gauge\n", 1, true), "its TYPE")
  kit:load(function() corral.on("config", function() corral.note("web", 1, "health", "starting") end) end, {}, "notes2")
  kit:reload()
  _, body = kit:http(server(kit), { path = "/metrics" })
  eq(value(body, 'corral_worker_healthy{pool="web",worker="1"}'), 0, "starting")
  local plain = setup()
  _, body = plain:http(server(plain), { path = "/metrics" })
  assert(not body:find("corral_worker_healthy{", 1, true), "no note, no sample")
end)

testing.done()
