-- config-check.lua (t/fuzz): what a config that corral.config.load
-- accepted must look like for corrald's C side (config.c reads it
-- without checking again). Returns nil, or what is wrong.
local function finite(x)
  return type(x) == "number" and x == x and x > -math.huge and x < math.huge
end

local durations = { "stop_timeout", "backoff_initial", "backoff_max", "backoff_reset",
  "crash_interval", "watchdog", "ready_timeout", "prefork_timeout" }

local function strings(list, what)
  if type(list) ~= "table" then return what .. " is not a list" end
  for i, s in ipairs(list) do
    if type(s) ~= "string" or s:find("\0", 1, true) then return ("%s[%d] = %s"):format(what, i, tostring(s)) end
  end
end

local NAMESPACES = { user = true, pid = true, mount = true, net = true, uts = true, ipc = true, cgroup = true }
local RLIMITS = { as = true, core = true, cpu = true, data = true, fsize = true, locks = true, memlock = true,
  msgqueue = true, nice = true, nofile = true, nproc = true, rss = true, rtprio = true, rttime = true,
  sigpending = true, stack = true }

local function int(x, min, max)
  return type(x) == "number" and x % 1 == 0 and x >= min and x <= max
end

local function path(s)
  return type(s) == "string" and s:sub(1, 1) == "/" and not s:find("\0", 1, true)
end

-- isolation as config.c reads it (names it knows, numbers that fit)
local function isolation(iso)
  if type(iso) ~= "table" or type(iso.no_new_privs) ~= "boolean" then return "not normalised" end
  for _, ns in ipairs(iso.namespaces) do
    if not NAMESPACES[ns] then return "namespace " .. tostring(ns) end
  end
  for _, which in ipairs { "uidmap", "gidmap" } do
    for _, m in ipairs(iso[which]) do
      if not (int(m.inside, 0, 2^32 - 2) and int(m.outside, 0, 2^32 - 2) and int(m.count, 1, 2^32 - 1)
          and m.inside + m.count <= 2^32 and m.outside + m.count <= 2^32) then return which end
    end
  end
  for _, m in ipairs(iso.mounts) do
    if not path(m.source) or not path(m.target) or m.target == "/" then return "mounts" end
  end
  if iso.rootfs ~= nil and not path(iso.rootfs) then return "rootfs" end
  if iso.hostname ~= nil and (type(iso.hostname) ~= "string" or #iso.hostname > 64) then return "hostname" end
  for _, c in ipairs(iso.capabilities or {}) do
    if not int(c, 0, 63) then return "capability " .. tostring(c) end
  end
  for _, r in ipairs(iso.rlimits) do
    if not RLIMITS[r.resource] or not int(r.soft, -1, 2^53) or not int(r.hard, -1, 2^53)
        or (r.hard ~= -1 and (r.soft == -1 or r.soft > r.hard)) then return "rlimit " .. tostring(r.resource) end
  end
  if iso.umask ~= nil and not int(iso.umask, 0, 511) then return "umask" end
  if iso.nice ~= nil and not int(iso.nice, -20, 19) then return "nice" end
  if iso.oom_score_adjust ~= nil and not int(iso.oom_score_adjust, -1000, 1000) then return "oom_score_adjust" end
end

return function(conf)
  if type(conf.settings) ~= "table" then return "no settings" end
  for _, p in ipairs(conf.pools) do
    local name = ("pool %s: "):format(tostring(p.name))
    for _, k in ipairs(durations) do
      if not finite(p[k]) or p[k] < 0 then return name .. k .. " = " .. tostring(p[k]) end
    end
    if p.workers % 1 ~= 0 or p.workers < 0 or p.workers > 10000 then return name .. "workers" end
    if p.crash_failures % 1 ~= 0 or p.crash_failures < 0 then return name .. "crash_failures" end
    if p.backoff_max < p.backoff_initial then return name .. "backoff" end
    if p.prefork_timeout <= 0 then return name .. "prefork_timeout" end
    if p.stop_signal % 1 ~= 0 or p.stop_signal < 1 or p.stop_signal > 64 then return name .. "stop_signal" end
    local bad = (p.argv and strings(p.argv, "argv")) or strings(p.env, "env")
    if bad then return name .. bad end
    if p.argv and #p.argv == 0 then return name .. "empty argv" end
    if not p.argv and type(p.start) ~= "function" then return name .. "neither argv nor start" end
    for _, which in ipairs { "limits", "worker_limits" } do
      for _, l in ipairs(p[which]) do
        if type(l.file) ~= "string" or type(l.value) ~= "string" then return name .. which end
        local named = not l.key:find(".cgroup.", 1, true)	-- memory_max = ...: corral writes it
        if l.value:find("\0", 1, true) or (named and not (l.value:match("^%d+$") or
            l.value:match("^max") or l.value:match("^%d+ %d+$") or l.value:match("^default %d+$"))) then
          return ("%s%s %s = %q"):format(name, which, l.file, l.value)
        end
      end
    end
    if type(p.fingerprint) ~= "string" then return name .. "fingerprint" end
    for _, k in ipairs { "directory", "output", "syslog_identifier" } do
      if p[k]:find("\0", 1, true) then return name .. k .. " holds a NUL byte" end
    end
    local bad_iso = isolation(p.isolation)
    if bad_iso then return name .. "isolation: " .. bad_iso end
    for _, l in ipairs(p.listen) do
      if l.spec:find("\0", 1, true) then return name .. "listen " .. l.name .. " holds a NUL byte" end
    end
  end
  for _, k in ipairs { "cgroup", "control" } do
    if conf.settings[k]:find("\0", 1, true) then return "settings " .. k .. " holds a NUL byte" end
  end
end
