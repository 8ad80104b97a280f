-- healthcheck: a plugin shipped with corral. Probes each worker of the
-- pools it is given, by HTTP, by a TCP connect or with a Lua function,
-- and restarts a worker whose probes fail `retries` times in a row
-- (corral.restart with the reason "unhealthy"). Docker's HEALTHCHECK
-- semantics: interval, timeout, retries, start_period.
--
--   plugin "healthcheck" {
--     web = { http = "http://127.0.0.1:{port}/health", port_base = 8000,
--             interval = "10s", timeout = "2s", retries = 3, start_period = "30s" },
--     api = { tcp = "127.0.0.1:{port}", port_base = 9000 },
--     jobs = { check = function(w) return io.open("/run/jobs/" .. w.worker .. ".ok") ~= nil, "no ok file" end },
--   }
--
-- What a worker goes through, shown as its note "health" in corralctl
-- status: "starting" (from its start; probes begin once it is ready, and
-- failures inside start_period do not count, until a first success ends
-- it), "healthy", "failing N/RETRIES: why", "unhealthy: why" (restarted).
-- Reference: doc/policies.md, section healthcheck.


-- ---- options ------------------------------------------------------------------

local options = require "corral.options"
local check = options.check

local PLACEHOLDERS = { port = true, worker = true, pid = true }

-- "200-399", "200", "200,204,300-399" or 200 -> { {lo, hi}, ... }
local function parse_expect(v)
  if type(v) == "number" then v = tostring(v) end
  if type(v) ~= "string" then return nil end
  local ranges = {}
  for part in (v .. ","):gmatch("([^,]*),") do
    part = part:gsub("^%s+", ""):gsub("%s+$", "")
    local lo, hi = part:match("^(%d%d%d)%-(%d%d%d)$")
    if not lo then lo = part:match("^(%d%d%d)$"); hi = lo end
    lo, hi = tonumber(lo), tonumber(hi)
    if not lo or lo < 100 or hi > 599 or lo > hi then return nil end
    ranges[#ranges + 1] = { lo, hi }
  end
  return ranges
end

local function expect_check(v, key)
  if not parse_expect(v) then
    options.invalid(key, 'expected an HTTP status or ranges: 200, "200-299", "200,204,300-399", got %s', options.show(v))
  end
  return v
end

-- {port} -> port_base + id, {worker} -> id, {pid} -> pid
local function expand(s, w)
  return (s:gsub("{(%a+)}", function(name)
    if name == "port" then return tostring((w.port_base or 0) + w.id) end
    if name == "worker" then return tostring(w.id) end
    if name == "pid" then return tostring(w.pid) end
  end))
end

-- "HOST:PORT", "[V6]:PORT" -> host, port
local function split_hostport(s)
  local host, port = s:match("^%[([%x:.]+)%]:(%d+)$")
  if not host then host, port = s:match("^([^:%s/@%[%]]+):(%d+)$") end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then return nil end
  return host, port
end

local function template(v, key)
  check.string(v, key)
  for name in v:gmatch("{([^}]*)}") do
    if not PLACEHOLDERS[name] then
      options.invalid(key, "unknown placeholder {%s} ({port}, {worker}, {pid})", name)
    end
  end
  return v
end

local function http_check(v, key)
  template(v, key)
  if not v:match("^https?://[^/%s]+") then
    options.invalid(key, 'expected an http:// or https:// URL, such as "http://127.0.0.1:{port}/health"')
  end
  return v
end

local function tcp_check(v, key)
  template(v, key)
  if not split_hostport(expand(v, { id = 1, pid = 1, port_base = 1 })) then
    options.invalid(key, 'expected "HOST:PORT", such as "127.0.0.1:{port}"')
  end
  return v
end

local function seconds(min, max, default_text)
  return function(v, key)
    local d = check.duration(v, key)
    if d < min or d > max then options.invalid(key, "must be from %s, got %s", default_text, options.show(v)) end
    return d
  end
end

local raw = ...
local errs = {}
local ok, conf = pcall(options.validate, "healthcheck", raw, check.pools {
  http = { http_check },
  tcp = { tcp_check },
  check = { check.func },
  port_base = { check.integer(0, 65535) },
  expect = { expect_check },
  interval = { seconds(0.1, 86400, "100ms to 1d"), 10 },
  timeout = { seconds(0.001, 300, "1ms to 300s"), 2 },
  retries = { check.integer(1, 1000), 3 },
  start_period = { check.duration, 0 },
})
if not ok then
  if getmetatable(conf) ~= options.Errors then error(conf, 0) end
  for _, e in ipairs(conf.errors) do errs[#errs + 1] = e end
end

-- the checks that look at several keys of a pool, on the options as given
-- (so that they come with the errors of single keys)
local function bad(pool, key, fmt, ...)
  local k = pool .. (key and "." .. key or "")
  errs[#errs + 1] = { key = k, at = k, msg = fmt:format(...) }
end
for _, pool in ipairs(type(raw) == "table" and options.sorted_keys(raw) or {}) do
  local r = raw[pool]
  if type(pool) == "string" and type(r) == "table" then
    local kinds = {}
    for _, k in ipairs { "http", "tcp", "check" } do
      if r[k] ~= nil then kinds[#kinds + 1] = k end
    end
    if #kinds == 0 then
      bad(pool, nil, "nothing to probe: give one of http, tcp or check")
    elseif #kinds > 1 then
      bad(pool, kinds[2], "only one of http, tcp and check (%s is given too)", kinds[1])
    end
    local t = type(r.http) == "string" and r.http or type(r.tcp) == "string" and r.tcp
    local uses_port = t and t:find("{port}", 1, true)
    if uses_port and r.port_base == nil then
      bad(pool, r.http and "http" or "tcp", "{port} needs port_base (the port of worker 1 is port_base + 1)")
    elseif r.port_base ~= nil and t and not uses_port then
      bad(pool, "port_base", "not used: no {port} in http or tcp")
    end
    if r.expect ~= nil and r.http == nil then bad(pool, "expect", "only for http probes") end
  end
end
if #errs > 0 then options.fail("healthcheck", errs) end

local pool_names = {}
for pool, c in pairs(conf) do
  pool_names[#pool_names + 1] = pool
  c.ranges = parse_expect(c.expect or "200-399")
  for _, k in ipairs { "http", "tcp", "check" } do
    if c[k] ~= nil then c.kind = k; break end
  end
end
table.sort(pool_names)

-- ---- the workers ------------------------------------------------------------------

-- "pool/id" -> the worker being followed:
--   { pool, id, pid, c (its pool's options), since (ready at), started
--     (start period over), fails, probe (token of the probe in flight),
--     req (its request id), timer, note, done (restart asked) }
local workers = {}
local frozen = {}       -- pool -> true while frozen: no probe counts
local stopping = false  -- corrald stops: no more probes

local function key(pool, id) return pool .. "/" .. id end

local function fmt_s(s) return (("%.3f"):format(s):gsub("%.?0+$", "")) .. "s" end

local function set_note(w, text)
  if #text > 200 then text = text:sub(1, 197) .. "..." end
  if w.note == text then return end
  w.note = text
  corral.note(w.pool, w.id, "health", text)
end

-- Forgets the probe in flight and the timer (the answer, if it comes, is ignored).
local function quiet(w)
  if w.req then corral.cancel(w.req) end
  if w.timer then corral.cancel(w.timer) end
  w.req, w.timer, w.probe = nil, nil, nil
end

local function forget(w)
  quiet(w)
  w.done = true
  if workers[key(w.pool, w.id)] == w then workers[key(w.pool, w.id)] = nil end
end

-- At a load, workers ready already past this many are probed spread
-- over an interval rather than all at once.
local SPREAD_AFTER = 16

local probe

local function schedule(w, delay)
  if w.timer then corral.cancel(w.timer) end
  w.timer = corral.after(math.max(delay, 0.001), function()
    w.timer = nil
    probe(w)
  end)
end

local function unhealthy(w, why)
  -- a pool being frozen answers nothing: not the workers' fault (the
  -- frozen event, which pauses the probes, comes once the kernel is done)
  local st = corral.status(w.pool)
  if st and st[1].state == "frozen" then
    frozen[w.pool] = true
    quiet(w)
    return
  end
  -- a worker being stopped (a scale down, a rolling replacement, a stop)
  -- fails its probes on its way out: nothing to restart
  local alive = false
  for _, sw in ipairs(st and st[1].workers or {}) do
    if sw.id == w.id and sw.pid == w.pid then alive = sw.state == "ready" or sw.state == "starting" end
  end
  if st and not alive then
    corral.debug(("healthcheck: worker %d (pid %d) failed its probes while it stops pool=%s"):format(w.id, w.pid, w.pool))
    return forget(w)
  end
  set_note(w, "unhealthy: " .. why)
  corral.info(("healthcheck: worker %d (pid %d) is unhealthy, %d probes failed in a row (last: %s): restarting it pool=%s")
    :format(w.id, w.pid, w.fails, why, w.pool))
  forget(w)
  local ok, err = corral.restart(w.pool, w.id, { reason = "unhealthy" })
  if not ok then
    corral.info(("healthcheck: worker %d not restarted: %s pool=%s"):format(w.id, tostring(err), w.pool))
  end
end

-- The end of a probe: ok, or not and why.
local function result(w, token, ok, why)
  if w.probe ~= token or w.done then return end     -- an answer for a probe given up
  w.probe, w.req = nil, nil
  if w.timer then corral.cancel(w.timer); w.timer = nil end
  local c = w.c
  if ok then
    if w.fails > 0 then
      corral.info(("healthcheck: worker %d is healthy again after %d failed probes pool=%s"):format(w.id, w.fails, w.pool))
    elseif not w.started then
      corral.debug(("healthcheck: worker %d is healthy pool=%s"):format(w.id, w.pool))
    end
    w.fails, w.started = 0, true
    set_note(w, "healthy")
  else
    why = tostring(why or "failed")
    if not w.started and corral.now() - w.since < c.start_period then
      -- inside the start period: not counted (Docker's start-period)
      set_note(w, "starting: " .. why)
    else
      w.fails = w.fails + 1
      if w.fails >= c.retries then return unhealthy(w, why) end
      set_note(w, ("failing %d/%d: %s"):format(w.fails, c.retries, why))
      corral.info(("healthcheck: worker %d failed its probe (%d/%d): %s pool=%s")
        :format(w.id, w.fails, c.retries, why, w.pool))
    end
  end
  schedule(w, c.interval)
end

function probe(w)
  if w.done or stopping or frozen[w.pool] or w.probe then return end
  local c = w.c
  local token = {}
  w.probe = token
  if c.kind == "check" then
    local ok, good, why = pcall(c.check, { pool = w.pool, worker = w.id, pid = w.pid })
    if not ok then return result(w, token, false, "check failed: " .. tostring(good):match("[^\n]*")) end
    return result(w, token, good and true or false, good and nil or (why or "check returned " .. tostring(good)))
  end
  local function answer(ok, why)
    -- a callback may come inside the call that starts it (never with
    -- plugio, but cheap to allow): result() checks the token
    result(w, token, ok, why)
  end
  local started, id = pcall(function()
    if c.kind == "http" then
      local url = expand(c.http, w)
      return corral.http_request({ url = url, timeout = c.timeout }, function(res, why)
        if not res then return answer(false, why) end
        for _, r in ipairs(c.ranges) do
          if res.status >= r[1] and res.status <= r[2] then return answer(true) end
        end
        return answer(false, ("HTTP status %d"):format(res.status))
      end)
    end
    local host, port = split_hostport(expand(c.tcp, w))
    if not host then error(("not HOST:PORT: %s"):format(expand(c.tcp, w)), 0) end
    return corral.tcp_connect(host, port, c.timeout, function(ok, why)
      return answer(ok, not ok and why or nil)
    end)
  end)
  if not started then return result(w, token, false, (tostring(id):gsub("^corral%.[%w_]+: ", ""))) end
  if w.probe ~= token then return end       -- answered already
  w.req = id
  -- a guard, should the answer never come: given up a second after the timeout
  w.timer = corral.after(c.timeout + 1, function()
    w.timer = nil
    if w.probe ~= token then return end
    if w.req then corral.cancel(w.req); w.req = nil end
    result(w, token, false, ("no answer within %s"):format(fmt_s(c.timeout)))
  end)
end

-- A worker to follow, from its start (or, at a load, as status shows it).
local function follow(pool, id, pid)
  local c = conf[pool]
  local old = workers[key(pool, id)]
  if old then forget(old) end
  local w = { pool = pool, id = id, pid = pid, c = c, port_base = c.port_base, fails = 0, started = false }
  workers[key(pool, id)] = w
  set_note(w, "starting")
  return w
end

-- Probes begin once the worker is ready: before, its pool's ready rule
-- and ready_timeout are in charge of it.
local function ready(w)
  w.since = corral.now()
  schedule(w, w.c.interval)
end

corral.on("worker_started", function(ev)
  if conf[ev.pool] and not stopping then follow(ev.pool, ev.worker, ev.pid) end
end)

corral.on("worker_ready", function(ev)
  if not conf[ev.pool] or stopping then return end
  local w = workers[key(ev.pool, ev.worker)]
  if not w or w.pid ~= ev.pid then w = follow(ev.pool, ev.worker, ev.pid) end
  ready(w)
end)

corral.on("worker_exited", function(ev)
  local w = workers[key(ev.pool, ev.worker)]
  if w and w.pid == ev.pid then forget(w) end
end)

-- A frozen pool answers nothing: its probes are off until it is thawed,
-- and then count from zero.
corral.on("frozen", function(ev)
  if not conf[ev.pool] then return end
  frozen[ev.pool] = true
  for _, w in pairs(workers) do
    if w.pool == ev.pool then quiet(w) end
  end
  corral.info(("healthcheck: pool frozen, probes paused pool=%s"):format(ev.pool))
end)

corral.on("thawed", function(ev)
  if not frozen[ev.pool] then return end
  frozen[ev.pool] = nil
  for _, w in pairs(workers) do
    if w.pool == ev.pool and w.since then
      w.fails = 0
      schedule(w, w.c.interval)
    end
  end
end)

corral.on("stop", function()
  stopping = true
  for _, w in pairs(workers) do quiet(w) end
end)

-- At every load (startup, reload): the workers already there. A reload
-- drops the notes and this plugin's state; a worker already ready is
-- probed at once, its start period counted from its start.
corral.on("config", function()
  for _, pool in ipairs(pool_names) do
    local st, err = corral.status(pool)
    if not st then
      corral.warn(("healthcheck: %s, nothing to probe pool=%s"):format(tostring(err), pool))
    else
      if st[1].state == "frozen" then frozen[pool] = true end
      local list, n = st[1].workers or {}, 0
      for _, sw in ipairs(list) do
        if sw.pid and (sw.state == "starting" or sw.state == "ready") then
          local w = follow(pool, sw.id, sw.pid)
          if sw.state == "ready" then
            w.since = corral.now() - (sw.uptime or 0)
            n = n + 1
            -- the first ones at once; past them, spread over an interval
            -- (a big pool's probes neither all in one call nor all in flight)
            if frozen[pool] then schedule(w, w.c.interval)
            elseif n <= SPREAD_AFTER then probe(w)
            else schedule(w, w.c.interval * (n - SPREAD_AFTER) / #list) end
          end
        end
      end
    end
  end
end)
