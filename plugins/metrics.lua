-- metrics: a plugin shipped with corral. Serves Prometheus metrics (text
-- exposition format 0.0.4) of every pool and worker and of corrald itself
-- at http://LISTEN/metrics, and can write the same to a node_exporter
-- textfile (written to a temporary file, then renamed over it).
--
--   plugin "metrics" {
--     listen = "127.0.0.1:9180",          -- "HOST:PORT" (numeric) or "unix:/PATH"; false: no server
--     textfile = "/var/lib/prometheus/node-exporter/corral.prom",   -- optional
--     textfile_interval = "15s",
--   }
--
-- Names follow Prometheus' conventions: the corral_ prefix, base units
-- (bytes, seconds), _total for counters. Counters kept by the plugin
-- (exits by reason, spawn latency) start at zero when corrald starts or
-- reloads its config, which Prometheus takes as a counter reset.
-- Reference of the API it uses: doc/plugins.md; the metrics: the
-- "metrics" section there.

local units = require "corral.units"

local options = ...
local WHO = 'plugin "metrics"'
local KNOWN = { listen = true, textfile = true, textfile_interval = true }

for k in pairs(options) do
  if not KNOWN[k] then
    local shown = type(k) == "string" and ("%q"):format(k) or tostring(k)
    error(("%s: unknown option %s (listen, textfile, textfile_interval)"):format(WHO, shown), 0)
  end
end
local listen = options.listen
if listen == nil then listen = "127.0.0.1:9180" end
if listen ~= false and type(listen) ~= "string" then
  error(("%s: listen: expected \"HOST:PORT\", \"unix:/PATH\" or false"):format(WHO), 0)
end
local textfile = options.textfile
if textfile ~= nil and (type(textfile) ~= "string" or textfile:sub(1, 1) ~= "/") then
  error(("%s: textfile: expected an absolute path"):format(WHO), 0)
end
local textfile_interval = 15
if options.textfile_interval ~= nil then
  local s, err = units.duration(options.textfile_interval)
  if not s then error(("%s: textfile_interval: %s"):format(WHO, err), 0) end
  if s < 1 then error(("%s: textfile_interval: must be at least 1 second"):format(WHO), 0) end
  textfile_interval = s
end
if listen == false and not textfile then
  error(("%s: nothing to do: listen is false and there is no textfile"):format(WHO), 0)
end

-- ---- what the plugin counts itself ---------------------------------------------

local exits = {}        -- pool -> reason -> count
local ooms = {}         -- pool -> count
local started_at = {}   -- "pool/worker" -> corral.now() at worker_started
-- spawn to ready, seconds
local BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
local spawn = {}        -- pool -> { counts = {...}, sum, n }
local lag = { max = 0, last = 0 }

corral.on("worker_started", function(ev)
  started_at[ev.pool .. "/" .. ev.worker] = corral.now()
end)

corral.on("worker_ready", function(ev)
  local key = ev.pool .. "/" .. ev.worker
  local t0 = started_at[key]
  if not t0 then return end
  started_at[key] = nil
  local d = corral.now() - t0
  local h = spawn[ev.pool]
  if not h then
    h = { counts = {}, sum = 0, n = 0 }
    for i = 1, #BUCKETS do h.counts[i] = 0 end
    spawn[ev.pool] = h
  end
  for i, le in ipairs(BUCKETS) do
    if d <= le then h.counts[i] = h.counts[i] + 1 end
  end
  h.sum, h.n = h.sum + d, h.n + 1
end)

corral.on("worker_exited", function(ev)
  started_at[ev.pool .. "/" .. ev.worker] = nil
  local byreason = exits[ev.pool] or {}
  exits[ev.pool] = byreason
  local reason = ev.reason or "exited"
  byreason[reason] = (byreason[reason] or 0) + 1
end)

corral.on("oom", function(ev)
  ooms[ev.pool] = (ooms[ev.pool] or 0) + 1
end)

-- The loop's lateness: a timer every 0.5 s, and how late it fires.
local TICK = 0.5
local last_tick
corral.on("config", function()
  last_tick = corral.now()
  corral.every(TICK, function()
    local now = corral.now()
    local late = math.max(0, now - last_tick - TICK)
    last_tick = now
    lag.last = late
    if late > lag.max then lag.max = late end
  end)
end)

-- ---- the exposition ------------------------------------------------------------

local function esc(v)
  return (tostring(v):gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"'))
end

local function num(v)
  if v == math.huge then return "+Inf" end
  if v ~= v then return "NaN" end
  if v % 1 == 0 and math.abs(v) < 2^53 then return ("%d"):format(v) end
  return ("%.9g"):format(v)
end

local STATES = { "spawning", "starting", "ready", "stopping", "exited" }
local POOL_STATES = { "starting", "running", "reloading", "frozen", "failed", "stopped", "stopping" }
local REASONS = { "crashed", "exited", "oom", "watchdog", "requested", "reload", "stopping", "recycled", "unhealthy" }

local function render()
  local out = {}
  local families = {}
  local function family(name, kind, help)
    if families[name] then return end
    families[name] = true
    out[#out + 1] = ("# HELP %s %s\n# TYPE %s %s\n"):format(name, help, name, kind)
  end
  local function sample(name, labels, v)
    if v == nil then return end
    local l = {}
    for _, kv in ipairs(labels) do l[#l + 1] = ('%s="%s"'):format(kv[1], esc(kv[2])) end
    out[#out + 1] = ("%s%s %s\n"):format(name, #l > 0 and "{" .. table.concat(l, ",") .. "}" or "", num(v))
  end

  local pools = corral.status() or {}
  -- one family at a time, every pool in it: the format wants a family's
  -- samples together
  family("corral_pool_state", "gauge", "1 for the pool's current state, 0 for the others")
  for _, p in ipairs(pools) do
    for _, s in ipairs(POOL_STATES) do sample("corral_pool_state", { { "pool", p.name }, { "state", s } }, p.state == s and 1 or 0) end
  end
  family("corral_pool_target_workers", "gauge", "workers the pool should have")
  for _, p in ipairs(pools) do sample("corral_pool_target_workers", { { "pool", p.name } }, p.target) end
  family("corral_pool_workers", "gauge", "the pool's workers, by state")
  for _, p in ipairs(pools) do
    local n = {}
    for _, w in ipairs(p.workers or {}) do n[w.state] = (n[w.state] or 0) + 1 end
    for _, s in ipairs(STATES) do sample("corral_pool_workers", { { "pool", p.name }, { "state", s } }, n[s] or 0) end
  end
  family("corral_pool_restarts_total", "counter", "workers replaced after they exited unasked, since the pool was created")
  for _, p in ipairs(pools) do sample("corral_pool_restarts_total", { { "pool", p.name } }, p.restarts) end
  family("corral_pool_start_failures_total", "counter", "workers or prototypes that failed to start, since the pool was created")
  for _, p in ipairs(pools) do sample("corral_pool_start_failures_total", { { "pool", p.name } }, p.start_failures) end
  family("corral_worker_exits_total", "counter", "worker exits seen by the plugin, by reason")
  for _, p in ipairs(pools) do
    for _, r in ipairs(REASONS) do
      sample("corral_worker_exits_total", { { "pool", p.name }, { "reason", r } }, (exits[p.name] or {})[r] or 0)
    end
  end
  family("corral_pool_oom_kills_total", "counter", "OOM kills in the pool's cgroup (memory.events), since it was made")
  for _, p in ipairs(pools) do
    local s = corral.stats(p.name)
    sample("corral_pool_oom_kills_total", { { "pool", p.name } }, s and s.oom_kills or ooms[p.name] or 0)
  end
  family("corral_pool_memory_bytes", "gauge", "memory in use by the pool's cgroup (memory.current)")
  for _, p in ipairs(pools) do
    if p.memory_current ~= nil then sample("corral_pool_memory_bytes", { { "pool", p.name } }, p.memory_current) end
  end
  family("corral_pool_cpu_seconds_total", "counter", "CPU time used in the pool's cgroup")
  for _, p in ipairs(pools) do
    if p.cpu_usage_usec ~= nil then sample("corral_pool_cpu_seconds_total", { { "pool", p.name } }, p.cpu_usage_usec / 1e6) end
  end
  family("corral_worker_memory_bytes", "gauge", "memory in use by a worker's cgroup")
  for _, p in ipairs(pools) do
    for _, w in ipairs(p.workers or {}) do
      if w.memory_current ~= nil then
        sample("corral_worker_memory_bytes", { { "pool", p.name }, { "worker", w.id } }, w.memory_current)
      end
    end
  end
  family("corral_worker_cpu_seconds_total", "counter", "CPU time used in a worker's cgroup")
  for _, p in ipairs(pools) do
    for _, w in ipairs(p.workers or {}) do
      if w.cpu_usage_usec ~= nil then
        sample("corral_worker_cpu_seconds_total", { { "pool", p.name }, { "worker", w.id } }, w.cpu_usage_usec / 1e6)
      end
    end
  end
  -- the note "health" that a health checker (plugin "healthcheck") keeps on
  -- a worker: 1 while healthy (failing probes below the threshold count as
  -- healthy, as in Docker), 0 while starting or unhealthy
  family("corral_worker_healthy", "gauge", "1 if the worker's health note says healthy, 0 if starting or unhealthy")
  for _, p in ipairs(pools) do
    for _, w in ipairs(p.workers or {}) do
      local h = w.notes and w.notes.health
      if type(h) == "string" then
        local up = h == "healthy" or h:sub(1, 8) == "failing "
        sample("corral_worker_healthy", { { "pool", p.name }, { "worker", w.id } }, up and 1 or 0)
      end
    end
  end
  -- load reports, where corrald keeps them (workers that send BUSY=1 / IDLE=1 / REQUESTS=N)
  family("corral_pool_workers_busy", "gauge", "workers whose last load report was BUSY=1")
  family("corral_pool_requests_total", "counter", "requests the pool's workers reported served (REQUESTS=N)")
  for _, p in ipairs(pools) do
    if p.busy ~= nil then sample("corral_pool_workers_busy", { { "pool", p.name } }, p.busy) end
    if p.requests ~= nil then sample("corral_pool_requests_total", { { "pool", p.name } }, p.requests) end
  end
  family("corral_pool_pressure_stalled_seconds_total", "counter", "time the pool's tasks stalled on a resource (PSI total)")
  for _, p in ipairs(pools) do
    for _, res in ipairs { "cpu", "memory", "io" } do
      local pr = corral.pressure(p.name, res)
      if pr then
        for _, kind in ipairs { "some", "full" } do
          if pr[kind] and pr[kind].total then
            sample("corral_pool_pressure_stalled_seconds_total",
              { { "pool", p.name }, { "resource", res }, { "kind", kind } }, pr[kind].total / 1e6)
          end
        end
      end
    end
  end
  family("corral_spawn_ready_seconds", "histogram", "from a worker's start to its readiness")
  for _, p in ipairs(pools) do
    local h = spawn[p.name]
    if h then
      for i, le in ipairs(BUCKETS) do
        sample("corral_spawn_ready_seconds_bucket", { { "pool", p.name }, { "le", num(le) } }, h.counts[i])
      end
      sample("corral_spawn_ready_seconds_bucket", { { "pool", p.name }, { "le", "+Inf" } }, h.n)
      sample("corral_spawn_ready_seconds_sum", { { "pool", p.name } }, h.sum)
      sample("corral_spawn_ready_seconds_count", { { "pool", p.name } }, h.n)
    end
  end
  local me = corral.corrald_stats()
  family("corral_corrald_resident_memory_bytes", "gauge", "corrald's resident memory")
  sample("corral_corrald_resident_memory_bytes", {}, me.rss_bytes)
  family("corral_corrald_open_fds", "gauge", "file descriptors corrald has open")
  sample("corral_corrald_open_fds", {}, me.open_fds)
  family("corral_corrald_max_fds", "gauge", "corrald's open files limit")
  sample("corral_corrald_max_fds", {}, me.max_fds)
  family("corral_event_loop_lag_seconds", "gauge", "how late corrald's loop ran a 0.5 s timer, the last time")
  sample("corral_event_loop_lag_seconds", {}, lag.last)
  family("corral_event_loop_lag_max_seconds", "gauge", "the most it was late since the plugin started")
  sample("corral_event_loop_lag_max_seconds", {}, lag.max)
  return table.concat(out)
end

local function write_textfile()
  local tmp = textfile .. ".tmp"
  local f, err = io.open(tmp, "w")
  if not f then
    corral.warn(("%s: unable to write %s: %s"):format(WHO, tmp, tostring(err)))
    return
  end
  f:write(render())
  f:close()
  local ok, rerr = os.rename(tmp, textfile)
  if not ok then corral.warn(("%s: unable to rename %s: %s"):format(WHO, tmp, tostring(rerr))) end
end

corral.on("config", function()
  if listen then
    local ok, id = pcall(corral.http_serve, listen, function(req)
      if req.path ~= "/metrics" then return 404, "not found: the metrics are at /metrics\n" end
      if req.method ~= "GET" and req.method ~= "HEAD" then return 405, "GET only\n" end
      return 200, render(), "text/plain; version=0.0.4; charset=utf-8"
    end)
    if ok then
      corral.info(("%s: serving metrics on http://%s/metrics"):format(WHO, corral.http_address(id)))
    else
      corral.error(("%s: %s"):format(WHO, tostring(id)))
    end
  end
  if textfile then
    write_textfile()
    corral.every(textfile_interval, write_textfile)
  end
end)
