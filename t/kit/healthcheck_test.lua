-- The unit test of plugins/healthcheck.lua, through the plugin kit.
-- Run from the top of the source tree: make test-plugins, or
--   LUA_PATH="lua/?.lua;;" luajit t/kit/healthcheck_test.lua
local testing = require "corral.testing"
local test, eq, raises = testing.test, testing.eq, testing.raises

local PLUGIN = os.getenv("CORRAL_KIT_PLUGIN") or "plugins/healthcheck.lua"

-- web has workers 1..3 (ready, pids from the kit); probes every 10 s
local function setup(web, world)
  local kit = testing.new(world or { pools = { { name = "web", workers = 3 } } })
  local o = { http = "http://127.0.0.1:{port}/health", port_base = 8000, interval = 10, timeout = 2 }
  for k, v in pairs(web or {}) do o[k] = v end
  for k, v in pairs(o) do if v == false then o[k] = nil end end
  kit:load(PLUGIN, { web = o })
  return kit:start()
end

-- the open probe of worker id (by its port, 8000 + id), or nil; and how many are open for it
local function probe_of(kit, id)
  local found, n
  n = 0
  for rid, r in pairs(kit:requests()) do
    if r.url:find(":" .. (8000 + id) .. "[/]?") or r.url:match(":" .. (8000 + id) .. "$") then
      found, n = rid, n + 1
    end
  end
  return found, n
end

local function answer(kit, id, status)
  local rid = assert(probe_of(kit, id), "no open probe of worker " .. id)
  kit:respond(rid, { status = status })
end

local function fail(kit, id, why)
  local rid = assert(probe_of(kit, id), "no open probe of worker " .. id)
  kit:respond(rid, nil, why or "timed out after 2s")
end

-- worker id replaced by a new process, as corrald would after a restart
local function replace(kit, id, reason)
  kit:emit("worker_exited", { pool = "web", worker = id, signal = 15, reason = reason or "unhealthy" })
  kit:emit("worker_started", { pool = "web", worker = id })
  kit:emit("worker_ready", { pool = "web", worker = id })
end

local function health(kit, id) return kit:notes("web", id).health end

test("options: errors name the pool and the key", function()
  local function err(web, extra)
    local o = { web = web }
    for k, v in pairs(extra or {}) do o[k] = v end
    return testing.new():load_error(PLUGIN, o)
  end
  local function has(msg, text)
    assert(msg and msg:find(text, 1, true), ("%q lacks %q"):format(tostring(msg), text))
  end
  has(err { interval = 5 }, 'plugin "healthcheck": web: nothing to probe: give one of http, tcp or check')
  has(err { http = "http://x/", tcp = "x:1" }, "web.tcp: only one of http, tcp and check (http is given too)")
  has(err { http = "http://127.0.0.1:{port}/" }, "web.http: {port} needs port_base")
  has(err { http = "http://127.0.0.1:{prot}/", port_base = 1 }, "web.http: unknown placeholder {prot} ({port}, {worker}, {pid})")
  has(err { http = "127.0.0.1:80/health" }, "web.http: expected an http:// or https:// URL")
  has(err { tcp = "127.0.0.1" }, 'web.tcp: expected "HOST:PORT"')
  has(err { tcp = "127.0.0.1:80", port_base = 8000 }, "web.port_base: not used: no {port} in http or tcp")
  has(err { tcp = "127.0.0.1:80", expect = 200 }, "web.expect: only for http probes")
  has(err { http = "http://x/", expect = "2xx" }, "web.expect: expected an HTTP status or ranges")
  has(err { http = "http://x/", retries = 0 }, "web.retries:")
  has(err { http = "http://x/", interval = "soon" }, "web.interval:")
  has(err { http = "http://x/", timeout = "10m" }, "web.timeout: must be from 1ms to 300s")
  has(err { http = "http://x/", intervall = 5 }, 'web: unknown key "intervall" (did you mean "interval"?)')
  has(err { check = "yes" }, "web.check:")
  eq(err { http = "http://x/", expect = "200,204,300-399" }, nil, "expect ranges")
  eq(err { tcp = "[::1]:{port}", port_base = 9000 }, nil, "an IPv6 address")
  eq(err { check = function() return true end, interval = "1m", start_period = "2m" }, nil, "a function, durations")
end)

test("at a load, a big pool's first probes: 16 at once, the rest spread over an interval", function()
  local kit = setup(nil, { pools = { { name = "web", workers = 40 } } })
  local function probes() return #kit:calls_of("http_request") end
  eq(probes(), 16, "16 probes at the load")
  kit:advance(5)
  local half = probes()
  assert(half > 16 and half < 40, "half an interval later, some more: " .. half)
  kit:advance(5)
  eq(probes(), 40, "within the interval, every worker probed once")
end)

test("a worker that answers is healthy, probed every interval, one probe at a time", function()
  local kit = setup()
  -- at a load, the workers already ready are probed at once
  for id = 1, 3 do eq(select(2, probe_of(kit, id)), 1, "one probe of worker " .. id) end
  eq(health(kit, 1), "starting", "before the first answer")
  eq(kit:requests()[(probe_of(kit, 1))].timeout, 2, "the timeout")
  for id = 1, 3 do answer(kit, id, 200) end
  eq(health(kit, 1), "healthy", "after a 200")
  eq(next(kit:requests()), nil, "nothing in flight after the answers")
  kit:advance(9.9)
  eq(next(kit:requests()), nil, "the next probe waits for the interval")
  kit:advance(0.1)
  for id = 1, 3 do eq(select(2, probe_of(kit, id)), 1, "probed again: worker " .. id) end
  answer(kit, 2, 302)
  eq(health(kit, 2), "healthy", "3xx is healthy by default")
  eq(kit:actions(), {}, "no action")
  for _ = 1, 40 do      -- unanswered: never two in flight for a worker
    kit:advance(0.5)
    for id = 1, 3 do assert(select(2, probe_of(kit, id)) <= 1, "at most one probe of worker " .. id) end
  end
end)

test("failures below the threshold: noted, not acted on; a success clears them", function()
  local kit = setup()
  answer(kit, 1, 200)
  kit:advance(10)
  fail(kit, 1)
  eq(health(kit, 1), "failing 1/3: timed out after 2s")
  kit:advance(10)
  answer(kit, 1, 500)
  eq(health(kit, 1), "failing 2/3: HTTP status 500")
  assert(kit:logged("info", "healthcheck: worker 1 failed its probe (2/3): HTTP status 500 pool=web"))
  kit:advance(10)
  answer(kit, 1, 204)
  eq(health(kit, 1), "healthy", "healthy again")
  assert(kit:logged("info", "worker 1 is healthy again after 2 failed probes pool=web"))
  kit:advance(10)
  fail(kit, 1, "Failed to connect to 127.0.0.1 port 8001: Connection refused")
  eq(health(kit, 1), "failing 1/3: Failed to connect to 127.0.0.1 port 8001: Connection refused", "counted from 0")
  eq(kit:count("restart", "web", 1), 0, "worker 1 not restarted")
end)

test("retries failures in a row: restarted with the reason unhealthy, then the new worker is probed", function()
  local kit = setup()
  for id = 1, 3 do answer(kit, id, 200) end
  for i = 1, 3 do
    kit:advance(10)
    answer(kit, 1, 200)
    answer(kit, 3, 200)
    answer(kit, 2, 503)
  end
  eq(kit:calls_of("restart"), { { "web", 2, { reason = "unhealthy" } } }, "worker 2 restarted, unhealthy")
  eq(health(kit, 2), "unhealthy: HTTP status 503")
  assert(kit:logged("info", "healthcheck: worker 2 (pid "), "logged")
  assert(kit:logged("info", "is unhealthy, 3 probes failed in a row (last: HTTP status 503): restarting it pool=web"))
  kit:advance(30)
  eq(select(2, probe_of(kit, 2)), 0, "no more probes of the worker being restarted")
  eq(#kit:calls_of("restart"), 1, "restarted once")
  -- corrald replaces it: the new process starts over
  replace(kit, 2)
  eq(health(kit, 2), "starting", "the new worker is starting")
  kit:advance(9.9)
  eq(select(2, probe_of(kit, 2)), 0, "first probe an interval after ready")
  kit:advance(0.1)
  answer(kit, 2, 200)
  eq(health(kit, 2), "healthy")
end)

test("start_period: failures inside it do not count; after it they do", function()
  local kit = setup { start_period = 30, interval = 5 }
  replace(kit, 1, "crashed")
  for t = 5, 25, 5 do
    kit:advance(5)
    fail(kit, 1, "connection refused")
    eq(health(kit, 1), "starting: connection refused", "at " .. t .. " s")
  end
  kit:advance(5)	-- 30 s: the start period is over
  fail(kit, 1)
  eq(health(kit, 1), "failing 1/3: timed out after 2s", "counted from the end of the start period")
  kit:advance(5); fail(kit, 1)
  eq(kit:calls_of("restart"), {}, "not yet")
  kit:advance(5); fail(kit, 1)
  eq(kit:calls_of("restart"), { { "web", 1, { reason = "unhealthy" } } }, "restarted at the third")
end)

test("start_period: a success ends it early (Docker's rule)", function()
  local kit = setup { start_period = 60, interval = 5 }
  replace(kit, 1, "crashed")
  kit:advance(5); fail(kit, 1)
  kit:advance(5); answer(kit, 1, 200)
  eq(health(kit, 1), "healthy")
  for _ = 1, 3 do kit:advance(5); fail(kit, 1) end
  eq(kit:calls_of("restart"), { { "web", 1, { reason = "unhealthy" } } }, "restarted inside the 60 s, after its first success")
end)

test("a slow starter is not killed inside its start period", function()
  local kit = setup { start_period = 40, interval = 2, retries = 2 }
  replace(kit, 3, "crashed")
  for _ = 1, 19 do kit:advance(2); fail(kit, 3, "Connection refused") end   -- 38 s of refusals
  eq(kit:count("restart", "web", 3), 0, "not restarted")
  kit:advance(2); answer(kit, 3, 200)       -- up at 40 s
  eq(health(kit, 3), "healthy")
  for _ = 1, 10 do kit:advance(2); answer(kit, 3, 200) end
  eq(kit:count("restart", "web", 3), 0, "still not")
end)

test("start_period of workers found at a load counts from their start", function()
  local kit = testing.new { pools = { { name = "web", workers = 1 } } }
  kit:set_worker("web", 1, { state = "ready" })
  kit.pool.web.workers[1].started = kit:now() - 100	-- up for 100 s
  kit:load(PLUGIN, { web = { http = "http://127.0.0.1:{port}/", port_base = 8000, start_period = 30, retries = 1 } })
  kit:start()
  fail(kit, 1)
  eq(kit:calls_of("restart"), { { "web", 1, { reason = "unhealthy" } } }, "past its start period: counted")
end)

test("a Lua check function: w = { pool, worker, pid }, ok or not and why", function()
  local seen = {}
  local kit = setup { http = false, port_base = false, retries = 2,
    check = function(w)
      seen[#seen + 1] = w
      if w.worker == 2 then return false, "queue stuck" end
      if w.worker == 3 then error("boom") end
      return true
    end }
  eq(#seen, 3, "checked at the load")
  eq(seen[1].pool, "web")
  assert(seen[1].pid and seen[1].worker, "pid and worker")
  eq(health(kit, 1), "healthy")
  eq(health(kit, 2), "failing 1/2: queue stuck")
  assert(health(kit, 3):find("^failing 1/2: check failed: .*boom"), health(kit, 3))
  kit:advance(10)
  eq(kit:calls_of("restart"), { { "web", 2, { reason = "unhealthy" } }, { "web", 3, { reason = "unhealthy" } } })
  eq(next(kit:requests()), nil, "no network")
end)

test("placeholders: {port} = port_base + id, {worker}, {pid}; TCP probes", function()
  local kit = setup { http = "http://127.0.0.1:{port}/h?w={worker}&p={pid}" }
  local urls = {}
  for _, r in pairs(kit:requests()) do urls[#urls + 1] = r.url end
  table.sort(urls)
  local pids = {}
  for id = 1, 3 do pids[id] = kit.pool.web.workers[id].pid end
  eq(urls, {
    ("http://127.0.0.1:8001/h?w=1&p=%d"):format(pids[1]),
    ("http://127.0.0.1:8002/h?w=2&p=%d"):format(pids[2]),
    ("http://127.0.0.1:8003/h?w=3&p=%d"):format(pids[3]) })
  local tk = setup { http = false, tcp = "127.0.0.1:{port}", port_base = 9000, retries = 1 }
  local reqs = {}
  for rid, r in pairs(tk:requests()) do reqs[r.url] = rid; eq(r.kind, "tcp_connect") end
  assert(reqs["telnet://127.0.0.1:9002"], "worker 2's connect")
  tk:respond(reqs["telnet://127.0.0.1:9001"], { seconds = 0.01 })
  eq(tk:notes("web", 1).health, "healthy")
  tk:respond(reqs["telnet://127.0.0.1:9002"], nil, "Connection refused")
  eq(tk:calls_of("restart"), { { "web", 2, { reason = "unhealthy" } } })
  eq(tk:notes("web", 2).health, "unhealthy: Connection refused")
end)

test("expect: the statuses that count as healthy", function()
  local kit = setup { expect = "200,204", retries = 1 }
  answer(kit, 1, 204)
  answer(kit, 2, 302)
  eq(health(kit, 1), "healthy")
  eq(kit:calls_of("restart"), { { "web", 2, { reason = "unhealthy" } } }, "302 is not expected")
end)

test("a probe of a worker that exits is cancelled; a late answer for a replaced worker is ignored", function()
  local kit = setup { retries = 1 }
  local old = probe_of(kit, 1)
  local old_pid = kit.pool.web.workers[1].pid
  kit:emit("worker_exited", { pool = "web", worker = 1, signal = 9, reason = "crashed" })
  eq(kit:requests()[old], nil, "the probe of the gone worker is cancelled")
  kit:emit("worker_started", { pool = "web", worker = 1 })
  assert(kit.pool.web.workers[1].pid ~= old_pid, "a new pid")
  kit:emit("worker_ready", { pool = "web", worker = 1 })
  eq(health(kit, 1), "starting")
  -- a worker_started for the id without the exit first (as after a missed
  -- event): the old probe is dropped too, its answer would not count
  local other = probe_of(kit, 2)
  kit:emit("worker_started", { pool = "web", worker = 2, pid = 99999 })
  eq(kit:requests()[other], nil, "the old process's probe is dropped")
  kit:advance(10)
  fail(kit, 1)
  eq(kit:count("restart", "web", 1), 1, "the new worker 1's own failure counts")
  eq(kit:count("restart", "web", 2), 0, "worker 2's new process is not ready: not probed")
end)

test("a probe whose answer never comes is given up after its timeout", function()
  local kit = setup { retries = 2 }
  local first = probe_of(kit, 1)
  kit:advance(2.9)
  assert(kit:requests()[first], "still waiting at 2.9 s")
  kit:advance(0.1)
  eq(kit:requests()[first], nil, "cancelled at timeout + 1 s")
  eq(health(kit, 1), "failing 1/2: no answer within 2s")
end)

test("a frozen pool is not probed; after the thaw, failures count from zero", function()
  local kit = setup { retries = 2 }
  for id = 1, 3 do fail(kit, id) end
  kit:emit("frozen", { pool = "web" })
  eq(next(kit:requests()), nil, "probes in flight dropped")
  kit:advance(100)
  eq(next(kit:requests()), nil, "none while frozen")
  kit:emit("thawed", { pool = "web" })
  kit:advance(10)
  fail(kit, 1)
  eq(kit:actions(), {}, "the failure before the freeze is forgotten")
end)

test("a pool being frozen (status says frozen, the event has not come): no restart", function()
  local kit = setup { retries = 1 }
  kit.pool.web.state = "frozen"
  fail(kit, 1)
  eq(kit:actions(), {}, "not restarted")
  kit:advance(100)
  eq(next(kit:requests()), nil, "no more probes")
  kit.pool.web.state = nil
  kit:emit("thawed", { pool = "web" })
  kit:advance(10)
  answer(kit, 1, 200)
  eq(health(kit, 1), "healthy", "probed again after the thaw")
end)

test("a worker that is being stopped fails on its way out: not restarted", function()
  local kit = setup { retries = 1 }
  kit:set_worker("web", 2, { state = "stopping" })
  fail(kit, 2)
  eq(kit:actions(), {}, "no restart")
  eq(health(kit, 2), "starting", "no unhealthy note")
  kit:advance(100)
  eq(select(2, probe_of(kit, 2)), 0, "no more probes of it")
end)

test("corrald stopping: no more probes", function()
  local kit = setup()
  kit:emit("stop")
  eq(next(kit:requests()), nil, "dropped")
  kit:advance(100)
  eq(next(kit:requests()), nil, "none")
end)

test("a reload: notes set again, one probe per worker; other pools are left alone", function()
  local kit = setup(nil, { pools = { { name = "web", workers = 2 }, { name = "batch", workers = 2 } } })
  for id = 1, 2 do answer(kit, id, 200) end
  kit:reload()
  eq(health(kit, 1), "starting", "noted again")
  for id = 1, 2 do eq(select(2, probe_of(kit, id)), 1, "one probe of worker " .. id) end
  eq(kit:notes("batch", 1), {}, "batch has no note")
  kit:emit("worker_started", { pool = "batch", worker = 1 })
  eq(kit:notes("batch", 1), {}, "nor its new workers")
end)

test("a pool of the options that is not in the config: a warning", function()
  local kit = testing.new { pools = { "batch" } }
  kit:load(PLUGIN, { web = { tcp = "127.0.0.1:80" } })
  kit:start()
  assert(kit:logged("warn", "healthcheck: no such pool, nothing to probe pool=web"))
end)

testing.done()
