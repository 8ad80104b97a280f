-- corral.config: runs a config file and turns it into plain, validated
-- data for corrald's C side. Every error is one line, "FILE:LINE: what".
--
-- load(path) -> config | nil, message
--   config.settings = { log_level = "info" }
--   config.pools    = { { name, file, line, argv, env, ... }, ... } in file order
local units = require "corral.units"
local core = require "corral.core"

local M = {}

local DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
local MAX_WORKERS = 10000

-- systemd protocol variables meant for corrald itself: env_inherit = true
-- never passes them on (a worker would talk to systemd as if it were us).
local PROTOCOL_VARS = {
  NOTIFY_SOCKET = true, WATCHDOG_PID = true, WATCHDOG_USEC = true,
  LISTEN_FDS = true, LISTEN_PID = true, LISTEN_FDNAMES = true,
  JOURNAL_STREAM = true, INVOCATION_ID = true, MAINPID = true,
}
-- (NOTIFY_SOCKET, WATCHDOG_*, LISTEN_* are set per worker by corrald.)

-- Validation errors carry the key path; the pool() caller adds file:line
-- (corral.options, shared with plugins' options).
local options_lib = require "corral.options"
local Invalid, invalid, invalid_at = options_lib.Invalid, options_lib.invalid, options_lib.invalid_at
local suggest, show, sorted_keys = options_lib.suggest, options_lib.show, options_lib.sorted_keys

-- Field checkers: check(value, key) -> normalized value, or invalid().
local check = {}
for k, f in pairs(options_lib.check) do check[k] = f end

-- Strings go to C as NUL-terminated copies: one with a NUL byte would
-- arrive cut short (an argument, a path), so none is accepted.
local function no_nul(s, key)
  if type(s) == "string" and s:find("\0", 1, true) then invalid(key, "contains a NUL byte") end
  return s
end

function check.signal(v, key)
  local n = (type(v) == "string" or type(v) == "number") and core.signum(v)
  if not n then invalid(key, "expected a signal name (\"TERM\", \"SIGINT\") or number, got %s", show(v)) end
  return n
end

function check.absolute_path(v, key)
  if type(v) ~= "string" or v:sub(1, 1) ~= "/" then
    invalid(key, "expected an absolute path, got %s", show(v))
  end
  return no_nul(v, key)
end

function check.argv(v, key)
  local argv = {}
  if type(v) == "string" then
    if v:find("[\"'\\]") then
      invalid(key, "a command string is split on spaces only; use a table such as { \"prog\", \"arg with spaces\" } for quoting")
    end
    no_nul(v, key)
    for word in v:gmatch("%S+") do argv[#argv + 1] = word end
  elseif type(v) == "table" then
    for i = 1, #v do
      local a = v[i]
      if type(a) ~= "string" and type(a) ~= "number" then
        invalid(key, "element %d: expected a string, got %s", i, show(a))
      end
      argv[i] = no_nul(tostring(a), ("%s[%d]"):format(key, i))
    end
    for k in pairs(v) do
      if type(k) ~= "number" or k % 1 ~= 0 or k < 1 or k > #v then
        invalid(key, "expected a list of strings, found key %s", show(k))
      end
    end
  else
    invalid(key, "expected a table of strings (argv) or a string, got %s", show(v))
  end
  if #argv == 0 then invalid(key, "empty command") end
  return argv
end

local function env_name_ok(k)
  return type(k) == "string" and k:match("^[A-Za-z_][A-Za-z0-9_]*$")
end

function check.env(v, key)
  if type(v) ~= "table" then invalid(key, "expected a table of NAME = value, got %s", show(v)) end
  local out = {}
  for k, val in pairs(v) do
    if not env_name_ok(k) then invalid(key, "invalid variable name %s", show(k)) end
    if val == false then
      out[k] = false
    elseif type(val) == "string" or type(val) == "number" then
      out[k] = tostring(val)
      if out[k]:find("\0", 1, true) then invalid(key .. "." .. k, "value contains a NUL byte") end
    else
      invalid(key .. "." .. k, "expected a string, a number or false (unset), got %s", show(val))
    end
  end
  return out
end

function check.env_inherit(v, key)
  if v == true or v == false then return v end
  if type(v) ~= "table" then invalid(key, "expected true or a list of variable names, got %s", show(v)) end
  local out = {}
  for i, name in ipairs(v) do
    if not env_name_ok(name) then invalid(key, "element %d: invalid variable name %s", i, show(name)) end
    out[#out + 1] = name
  end
  return out
end

function check.user(v, key)
  if type(v) ~= "string" and type(v) ~= "number" then
    invalid(key, "expected a user name or uid, got %s", show(v))
  end
  local pw = core.getpwnam(no_nul(v, key))
  if not pw then invalid(key, "unknown user %s", show(v)) end
  return pw
end

function check.group(v, key)
  if type(v) ~= "string" and type(v) ~= "number" then
    invalid(key, "expected a group name or gid, got %s", show(v))
  end
  local gid = core.getgrnam(no_nul(v, key))
  if not gid then invalid(key, "unknown group %s", show(v)) end
  return gid
end

-- Resource limits: the names operators know, translated to cgroup v2
-- files. Each returns the file's value as a string.
local function size_or_max(v, key)
  if v == "max" or v == "infinity" then return "max" end
  local n, err = units.size(v)
  if not n then invalid(key, "%s (or \"max\")", err) end
  return ("%d"):format(n)
end

local function weight(v, key)
  if type(v) ~= "number" or v % 1 ~= 0 or v < 1 or v > 10000 then
    invalid(key, "expected an integer from 1 to 10000, got %s", show(v))
  end
  return tostring(v)
end

local CPU_PERIOD = 100000
local limit_kinds = {
  memory_max = { "memory.max", size_or_max },
  memory_high = { "memory.high", size_or_max },
  memory_low = { "memory.low", size_or_max },
  memory_swap_max = { "memory.swap.max", size_or_max },
  cpu_weight = { "cpu.weight", weight },
  io_weight = { "io.weight", function(v, key) return "default " .. weight(v, key) end },
  pids_max = { "pids.max", function(v, key)
    if v == "max" then return "max" end
    -- past 2^53 tostring() writes "1e+20", which no cgroup file takes
    if type(v) ~= "number" or v % 1 ~= 0 or v < 1 or v > 2^53 then
      invalid(key, "expected a positive integer or \"max\", got %s", show(v))
    end
    return ("%d"):format(v)
  end },
  cpu_max = { "cpu.max", function(v, key)
    if v == "max" then return "max " .. CPU_PERIOD end
    if type(v) == "string" then
      local pct = v:match("^%s*(%d+%.?%d*)%%%s*$")
      if pct then
        local quota = math.floor(tonumber(pct) / 100 * CPU_PERIOD + 0.5)
        if quota < 1000 then invalid(key, "%s is below the kernel's minimum of 1%%", v) end
        -- ("%d") writes math.huge and other doubles past 2^63 as negative
        if quota > 2^53 then invalid(key, "%s is too large", v) end
        return ("%d %d"):format(quota, CPU_PERIOD)
      end
      local q, per = v:match("^%s*(%d+)%s+(%d+)%s*$")
      if q and tonumber(q) >= 1000 and tonumber(q) <= 2^53 and tonumber(per) >= 1000 and tonumber(per) <= 1000000 then
        return ("%d %d"):format(q, per)
      end
    end
    invalid(key, "expected a percentage of one CPU (\"150%%\"), \"QUOTA PERIOD\" in microseconds, or \"max\", got %s", show(v))
  end },
}

-- Files that corral itself manages: no config may write them.
local reserved_files = {
  ["cgroup.procs"] = true, ["cgroup.threads"] = true, ["cgroup.kill"] = true,
  ["cgroup.freeze"] = true, ["cgroup.subtree_control"] = true, ["cgroup.type"] = true,
  ["memory.oom.group"] = true,
}

-- limits = { memory_max = "1G", cgroup = { ["memory.low"] = "64M" } }
-- -> { { key = "memory_max", file = "memory.max", value = "1073741824" }, ... }
function check.limits(v, key)
  if type(v) ~= "table" then invalid(key, "expected a table, got %s", show(v)) end
  local out = {}
  for _, k in ipairs(sorted_keys(v)) do
    local val = v[k]
    if k == "cgroup" then
      if type(val) ~= "table" then invalid(key .. ".cgroup", "expected a table of file = value, got %s", show(val)) end
      for _, file in ipairs(sorted_keys(val)) do
        local fv = val[file]
        local at = type(file) == "string" and key .. ".cgroup." .. file or key .. ".cgroup"
        if type(file) ~= "string" or not file:match("^[a-z]+%.[a-zA-Z0-9_.]+$") then
          invalid_at(at, key .. ".cgroup", "invalid cgroup file name %s", show(file))
        end
        if reserved_files[file] then
          invalid_at(at, key .. ".cgroup", "%s is managed by corral", file)
        end
        if type(fv) ~= "string" and type(fv) ~= "number" then
          invalid(key .. ".cgroup." .. file, "expected a string or a number, got %s", show(fv))
        end
        out[#out + 1] = { key = key .. ".cgroup." .. file, file = file,
          value = no_nul(tostring(fv), key .. ".cgroup." .. file) }
      end
    else
      local kind = limit_kinds[k]
      if not kind then
        local names = sorted_keys(limit_kinds)
        names[#names + 1] = "cgroup"
        local hint = suggest(k, names)
        invalid_at(type(k) == "string" and key .. "." .. k or key, key, "unknown limit %s%s",
          show(k), hint ~= "" and hint or " (" .. table.concat(names, ", ") .. ")")
      end
      out[#out + 1] = { key = key .. "." .. k, file = kind[1], value = kind[2](val, key .. "." .. k) }
    end
  end
  return out
end

-- isolation = { ... } (doc/isolation.md): namespaces, maps, a root of its
-- own, credentials and process limits, applied in the prototype. Checked
-- here as far as the config alone shows; corrald checks the rest on the
-- system (isolcheck.c) and the kernel at the prototype's start.
local NAMESPACES = { "user", "pid", "mount", "net", "uts", "ipc", "cgroup" }
local NAMESPACE_SET = {}
for _, ns in ipairs(NAMESPACES) do NAMESPACE_SET[ns] = true end

-- setrlimit(2)'s resources: "size" ones take "1G", the others counts
-- ({ min, max } where the kernel gives the number a meaning).
local RLIMITS = {
  as = "size", core = "size", data = "size", fsize = "size", memlock = "size",
  msgqueue = "size", rss = "size", stack = "size",
  cpu = "count", locks = "count", nofile = "count", nproc = "count",
  rttime = "count", sigpending = "count", nice = { 0, 40 }, rtprio = { 0, 99 },
}

-- A list: keys 1..n only.
local function list_of(v, key, what)
  if type(v) ~= "table" then invalid(key, "expected a list of %s, got %s", what, show(v)) end
  for k in pairs(v) do
    if type(k) ~= "number" or k % 1 ~= 0 or k < 1 or k > #v then
      invalid(key, "expected a list of %s, found key %s", what, show(k))
    end
  end
  return v
end

local iso = {}

function iso.namespaces(v, key)
  list_of(v, key, "namespace names")
  local seen = {}
  for i, ns in ipairs(v) do
    if not NAMESPACE_SET[ns] then
      local hint = suggest(ns, NAMESPACE_SET)
      invalid(key, "element %d: unknown namespace %s%s", i, show(ns),
        hint ~= "" and hint or " (" .. table.concat(NAMESPACES, ", ") .. ")")
    end
    if seen[ns] then invalid(key, "%q given twice", ns) end
    seen[ns] = true
  end
  -- in one order, so that a reordered list is the same pool
  local out = {}
  for _, ns in ipairs(NAMESPACES) do
    if seen[ns] then out[#out + 1] = ns end
  end
  return out
end

-- uidmap = { { inside, outside, count }, ... }: lines of uid_map(5).
function iso.idmap(v, key)
  list_of(v, key, "{ inside, outside, count } ranges")
  -- the kernel takes at most 340 lines
  if #v > 340 then invalid(key, "at most 340 ranges, got %d", #v) end
  local out = {}
  for i, m in ipairs(v) do
    local at = ("%s[%d]"):format(key, i)
    if type(m) ~= "table" then invalid(at, "expected { inside, outside, count }, got %s", show(m)) end
    list_of(m, at, "three integers { inside, outside, count }")
    if #m ~= 3 then invalid(at, "expected { inside, outside, count }, got %d elements", #m) end
    local r = {}
    for j, name in ipairs { "inside", "outside", "count" } do
      local x, max = m[j], j == 3 and 4294967295 or 4294967294
      if type(x) ~= "number" or x % 1 ~= 0 or x < (j == 3 and 1 or 0) or x > max then
        invalid(at, "%s: expected an integer from %d to %d, got %s", name, j == 3 and 1 or 0, max, show(x))
      end
      r[name] = x
    end
    for _, side in ipairs { "inside", "outside" } do
      if r[side] + r.count > 2^32 then
        invalid(at, "%s + count = %d: ids end at 4294967295", side, r[side] + r.count)
      end
    end
    out[i] = r
  end
  return out
end

-- a host name as sethostname(2) takes it and resolvers read it
function iso.hostname(v, key)
  if type(v) ~= "string" or #v < 1 or #v > 64 then
    invalid(key, "expected a host name of 1 to 64 characters, got %s", show(v))
  end
  for label in (v .. "."):gmatch("([^.]*)%.") do
    if not label:match("^[A-Za-z0-9]$") and not label:match("^[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]$") then
      invalid(key, "invalid host name %s (letters, digits and \"-\" in labels separated by \".\")", show(v))
    end
  end
  return v
end

-- a target inside the pool's root: nothing that climbs out of it
local function mount_target(v, key)
  check.absolute_path(v, key)
  if v:match("^/+$") then invalid(key, "target: \"/\" is the root (give rootfs instead)") end
  for part in v:gmatch("[^/]+") do
    if part == "." or part == ".." then invalid(key, "target: %s: no \".\" or \"..\" parts", show(v)) end
  end
  return v
end

function iso.mounts(v, key)
  list_of(v, key, "{ source, target, \"ro\" | \"rw\" } mounts")
  local out = {}
  for i, m in ipairs(v) do
    local at = ("%s[%d]"):format(key, i)
    if type(m) ~= "table" then invalid(at, "expected { source, target, \"ro\" | \"rw\" }, got %s", show(m)) end
    list_of(m, at, "{ source, target, \"ro\" | \"rw\" }")
    if #m ~= 3 then invalid(at, "expected { source, target, \"ro\" | \"rw\" }, got %d elements", #m) end
    if type(m[1]) ~= "string" or m[1]:sub(1, 1) ~= "/" then
      invalid(at, "source: expected an absolute path, got %s", show(m[1]))
    end
    if type(m[2]) ~= "string" or m[2]:sub(1, 1) ~= "/" then
      invalid(at, "target: expected an absolute path, got %s", show(m[2]))
    end
    if m[3] ~= "ro" and m[3] ~= "rw" then invalid(at, "expected \"ro\" or \"rw\", got %s", show(m[3])) end
    out[i] = { source = no_nul(m[1], at), target = mount_target(m[2], at), readonly = m[3] == "ro" }
  end
  return out
end


-- "CAP_NET_BIND_SERVICE", "net_bind_service", "cap_net_bind_service"
-- -> capability numbers, in order
function iso.capabilities(v, key)
  list_of(v, key, "capability names")
  local seen, out = {}, {}
  for i, name in ipairs(v) do
    local n = type(name) == "string" and name:match("^[%a_]+$")
      and core.capability("cap_" .. name:lower():gsub("^cap_", ""))
    if not n then
      local known = {}
      for c = 0, 63 do
        local cname = core.capability(c)
        if cname then known[#known + 1] = cname:upper() end
      end
      local word = type(name) == "string" and name:upper():gsub("^CAP_", "") or name
      invalid(key, "element %d: unknown capability %s%s", i, show(name),
        suggest(type(word) == "string" and "CAP_" .. word or word, known))
    end
    if seen[n] then invalid(key, "%s given twice", show(name)) end
    seen[n] = true
    out[#out + 1] = n
  end
  table.sort(out)
  return out
end

local function rlimit_value(v, key, kind, what)
  if v == "infinity" or v == "unlimited" then return -1 end
  if kind == "size" then
    local n, err = units.size(v)
    if not n then invalid(key, "%s%s (or \"infinity\")", what, err) end
    return n
  end
  local min, max = 0, 2^53
  if type(kind) == "table" then min, max = kind[1], kind[2] end
  if type(v) ~= "number" or v % 1 ~= 0 or v < min or v > max then
    invalid(key, "%sexpected an integer from %d to %d or \"infinity\", got %s", what, min, max, show(v))
  end
  return v
end

-- rlimits = { nofile = 4096, nproc = { 100, 200 } } -> { { resource =
-- "nofile", soft = 4096, hard = 4096 }, ... } by name; -1: infinity
function iso.rlimits(v, key)
  if type(v) ~= "table" then invalid(key, "expected a table of NAME = value, got %s", show(v)) end
  local out = {}
  for _, k in ipairs(sorted_keys(v)) do
    local kind, val, at = RLIMITS[k], v[k], type(k) == "string" and key .. "." .. k or key
    if not kind then
      local names = sorted_keys(RLIMITS)
      local hint = suggest(k, RLIMITS)
      invalid_at(at, key, "unknown resource limit %s%s", show(k),
        hint ~= "" and hint or " (" .. table.concat(names, ", ") .. ")")
    end
    local soft, hard
    if type(val) == "table" then
      list_of(val, at, "{ soft, hard }")
      if #val ~= 2 then invalid(at, "expected a value or { soft, hard }, got %d elements", #val) end
      soft = rlimit_value(val[1], at, kind, "soft: ")
      hard = rlimit_value(val[2], at, kind, "hard: ")
      if hard ~= -1 and (soft == -1 or soft > hard) then
        invalid(at, "the soft limit (%s) is above the hard limit (%s)", show(val[1]), show(val[2]))
      end
    else
      soft = rlimit_value(val, at, kind, "")
      hard = soft
    end
    out[#out + 1] = { resource = k, soft = soft, hard = hard }
  end
  return out
end

-- "0027" -> 23: a string, as 0027 in Lua is the number 27
function iso.umask(v, key)
  if type(v) ~= "string" or not v:match("^[0-7]+$") or #v > 4 or tonumber(v, 8) > 511 then
    invalid(key, "expected an octal string from \"0000\" to \"0777\" (such as \"0027\"), got %s", show(v))
  end
  return tonumber(v, 8)
end

function iso.groups(v, key)
  list_of(v, key, "group names or gids")
  local out = {}
  for i, g in ipairs(v) do out[i] = check.group(g, ("%s[%d]"):format(key, i)) end
  return out
end

-- In the order they are checked in (the first error is reported).
local ISOLATION_KEYS = {
  { "namespaces", iso.namespaces },
  { "uidmap", iso.idmap, needs = "user" },
  { "gidmap", iso.idmap, needs = "user" },
  { "hostname", iso.hostname, needs = "uts" },
  { "network", check.enum("none", "loopback"), needs = "net" },
  { "rootfs", check.absolute_path },
  { "mounts", iso.mounts },
  { "no_new_privs", check.boolean },
  { "capabilities", iso.capabilities },
  { "rlimits", iso.rlimits },
  { "umask", iso.umask },
  { "nice", check.integer(-20, 19) },
  { "oom_score_adjust", check.integer(-1000, 1000) },
  { "supplementary_groups", iso.groups },
}

-- The isolation of a pool that has no table (no_new_privs for all).
local function isolation_default()
  return { namespaces = {}, uidmap = {}, gidmap = {}, mounts = {}, rlimits = {}, no_new_privs = true }
end

function check.isolation(v, key)
  if type(v) ~= "table" then invalid(key, "expected a table, got %s", show(v)) end
  local known = {}
  for _, f in ipairs(ISOLATION_KEYS) do known[f[1]] = true end
  for _, k in ipairs(sorted_keys(v)) do
    if not known[k] then
      invalid_at(type(k) == "string" and key .. "." .. k or key, key, "unknown key %s%s", show(k), suggest(k, known))
    end
  end
  local out = isolation_default()
  for _, f in ipairs(ISOLATION_KEYS) do
    local k = f[1]
    if v[k] ~= nil then out[k] = f[2](v[k], key .. "." .. k) end
  end
  local asked = {}
  for _, ns in ipairs(out.namespaces) do asked[ns] = true end
  for _, f in ipairs(ISOLATION_KEYS) do
    if f.needs and v[f[1]] ~= nil and not asked[f.needs] then
      invalid(key .. "." .. f[1], "needs %q in %s.namespaces", f.needs, key)
    end
  end
  return out
end

local pool_schema = {
  command = { check.argv },
  workers = { check.integer(0, MAX_WORKERS), 1 },
  env = { check.env, {} },
  env_inherit = { check.env_inherit, {} },
  directory = { check.absolute_path, "/" },
  user = { check.user },
  group = { check.group },
  stop_signal = { check.signal, core.signum("TERM") },
  stop_timeout = { check.duration, 10 },
  restart = { check.enum("always", "on-failure", "never"), "always" },
  backoff = { check.record {
    initial = { check.duration }, max = { check.duration }, reset = { check.duration },
  }, {} },
  crash_limit = { check.record {
    failures = { check.integer(0, 1000000) }, interval = { check.duration },
  }, {} },
  ready = { check.enum("started", "lua", "notify"), "started" },
  watchdog = { check.duration, 0 },
  output = { function(v, key)
    if v == "auto" or v == "journal" or v == "inherit" or v == "null" then return v end
    if type(v) == "string" and v:sub(1, 1) == "/" then return no_nul(v, key) end
    invalid(key, "expected \"auto\", \"journal\", \"inherit\", \"null\" or an absolute file path, got %s", show(v))
  end, "auto" },
  listen = { function(v, key)
    if type(v) ~= "table" then invalid(key, "expected a table of NAME = \"tcp:HOST:PORT\" | \"unix:/PATH\" | \"systemd\", got %s", show(v)) end
    local out = {}
    for _, name in ipairs(sorted_keys(v)) do
      local spec = v[name]
      if type(name) ~= "string" or not name:match("^[A-Za-z0-9_.-]+$") or #name > 64 then
        invalid(key, "invalid socket name %s (letters, digits, _ . -)", show(name))
      end
      local host = type(spec) == "string" and spec:match("^tcp:(.*):%d+$")
      local numeric = host and (host == "" or host:match("^%d+%.%d+%.%d+%.%d+$") or host:match("^%[[%x:.]+%]$"))
      if type(spec) ~= "string" or not (spec == "systemd" or numeric or spec:match("^unix:/.+")) then
        invalid(key .. "." .. name, "expected \"tcp:ADDRESS:PORT\" (numeric, [v6] in brackets), \"unix:/PATH\" or \"systemd\", got %s", show(spec))
      end
      out[#out + 1] = { name = name, spec = no_nul(spec, key .. "." .. name) }
    end
    return out
  end, {} },
  syslog_identifier = { function(v, key)
    if type(v) ~= "string" or v == "" or #v > 64 or v:find("[%c%s]") then
      invalid(key, "expected a short name without spaces, got %s", show(v))
    end
    return v
  end },
  ready_timeout = { check.duration, 0 },
  start_window = { check.duration, 1 },
  prefork = { check.func },
  setup = { check.func },
  start = { check.func },
  prefork_timeout = { check.duration, 30 },
  keep_prototype = { check.boolean, false },
  limits = { check.limits, {} },
  worker_limits = { check.limits, {} },
  isolation = { check.isolation },
}

local settings_schema = {
  log_level = { check.enum("debug", "info", "notice", "warn", "error"), "info" },
  cgroup = { function(v, key)
    if v == "auto" then return v end
    if type(v) ~= "string" or v:sub(1, 1) ~= "/" or v:find("/%.%.?/") or v:find("/%.%.?$") or v:find("//") then
      invalid(key, "expected \"auto\" or an absolute path inside the cgroup2 hierarchy, got %s", show(v))
    end
    return (no_nul(v, key):gsub("/+$", ""))
  end, "auto" },
  control = { check.absolute_path, "/run/corral/control.sock" },
  control_group = { check.group },
  monitor_group = { check.group },
  limits_required = { check.boolean, false },
}

local apply = options_lib.apply

-- The worker's environment: a clean default, then inherited, then set.
local function build_env(p, name, environ)
  local env = { PATH = DEFAULT_PATH }
  if p.user then
    env.HOME, env.USER, env.LOGNAME, env.SHELL = p.user.dir, p.user.name, p.user.name, p.user.shell
  end
  if p.env_inherit == true then
    for k, v in pairs(environ) do
      if not PROTOCOL_VARS[k] then env[k] = v end
    end
  elseif p.env_inherit then
    for _, k in ipairs(p.env_inherit) do env[k] = environ[k] end
  end
  for k, v in pairs(p.env) do env[k] = v or nil end
  -- corrald sets these itself for each worker: never two of them
  for k in pairs(PROTOCOL_VARS) do env[k] = nil end
  env.CORRAL_POOL = name
  env.CORRAL_WORKER = nil	-- set per worker
  local list = {}
  for _, k in ipairs(sorted_keys(env)) do list[#list + 1] = k .. "=" .. env[k] end
  return list
end

-- Everything that defines how a worker is made, except the count (and
-- keep_prototype, which reconcile reads from the pool's definition). A
-- function counts by its code (line numbers aside) and the values it
-- captures, so editing a hook changes the pool, moving it does not.
local SKIP = { workers = true, line = true, file = true, object = true,
  limits = true, worker_limits = true, keep_prototype = true }
local function fingerprint(p)
  local parts, seen = {}, {}
  local function add(v)
    local t = type(v)
    if t == "table" or t == "function" then
      if seen[v] then parts[#parts + 1] = "@" .. seen[v]; return end
      seen[v] = #parts + 1
    end
    if t == "table" then
      parts[#parts + 1] = "{"
      for _, k in ipairs(sorted_keys(v)) do
        if not SKIP[k] then add(k); add(v[k]) end
      end
      parts[#parts + 1] = "}"
    elseif t == "function" then
      local ok, code = pcall(string.dump, v, true)
      if not ok then
        -- a C function: its address differs in every state, so only
        -- that it is one counts
        parts[#parts + 1] = "cfunction"
        return
      end
      parts[#parts + 1] = "f" .. #code .. ":" .. code
      for i = 1, 255 do
        local name, val = debug.getupvalue(v, i)
        if not name then break end
        add(name); add(val)
      end
    elseif t == "userdata" or t == "cdata" or t == "thread" then
      parts[#parts + 1] = t	-- identity differs at every load
    else
      parts[#parts + 1] = t:sub(1, 1) .. #tostring(v) .. ":" .. tostring(v)
    end
  end
  add(p)
  return table.concat(parts)
end

local function normalize_pool(name, p, raw, environ)
  local b, c = p.backoff, p.crash_limit
  local n = {
    name = name,
    argv = p.command,
    workers = p.workers,
    env = build_env(p, name, environ),
    directory = p.directory,
    stop_signal = p.stop_signal,
    stop_timeout = p.stop_timeout,
    restart = p.restart,
    backoff_initial = b.initial or 0.1,
    backoff_max = b.max or 30,
    backoff_reset = b.reset or 10,
    crash_failures = c.failures or 10,
    crash_interval = c.interval or 60,
    ready = p.ready,
    watchdog = p.watchdog,
    ready_timeout = p.ready_timeout,
    start_window = p.start_window,
    output = p.output,
    listen = p.listen,
    syslog_identifier = p.syslog_identifier or name,
    prefork_timeout = p.prefork_timeout,
    keep_prototype = p.keep_prototype,
    prefork = p.prefork,
    setup = p.setup,
    start = p.start,
    limits = p.limits,
    worker_limits = p.worker_limits,
  }
  if p.ready == "lua" and not p.start then
    invalid("ready", "\"lua\" needs a start function that calls corral.ready()")
  end
  if p.watchdog > 0 then
    n.env[#n.env + 1] = ("WATCHDOG_USEC=%d"):format(math.floor(p.watchdog * 1e6 + 0.5))
    table.sort(n.env)
  end
  if p.prefork_timeout <= 0 then
    invalid("prefork_timeout", "must be greater than 0")
  end
  if n.backoff_max < n.backoff_initial then
    invalid("backoff.max", "must not be less than backoff.initial (%s)", units.format_duration(n.backoff_initial))
  end
  if c.failures ~= 0 and c.interval == 0 then
    invalid("crash_limit.interval", "must be greater than 0")
  end
  if p.user then
    n.uid, n.gid, n.groups = p.user.uid, p.user.gid, p.user.groups
  end
  if p.group then
    n.gid = p.group
    if not p.user then n.groups = { p.group } end
  end
  n.isolation = p.isolation or isolation_default()
  local sgroups = n.isolation.supplementary_groups
  if sgroups then
    -- the workers' groups, in place of the user's (C keeps them in groups)
    if not p.user and not p.group then
      invalid("isolation.supplementary_groups", "needs user or group (without them the workers keep corrald's credentials)")
    end
    for _, ns in ipairs(n.isolation.namespaces) do
      if ns == "user" then
        invalid("isolation.supplementary_groups", "not with \"user\": the workers of a user namespace have no supplementary groups")
      end
    end
    n.groups, n.isolation.supplementary_groups = sgroups, nil
  end
  n.fingerprint = fingerprint(n)
  -- what prefork(pool) receives, and worker.pool: the pool as written.
  -- corrald copies the normalized pool into C; functions stay in Lua, so
  -- the object is handed over as one that returns it.
  local options = {}
  for k, v in pairs(raw) do options[k] = v end
  local object = { name = name, options = options, workers = n.workers, command = n.argv }
  n.object = function() return object end
  return n
end

-- Config and plugin code runs inside corrald (phases "config" and
-- "plugin"); hooks run in the prototype and workers. What would end
-- corrald (leaving every worker running) or block its loop for as long as
-- a command runs is refused there, wherever it is reached from (os, require
-- "os", require "_G", package.loaded): the library tables are changed in
-- place. The hooks keep them whole. Trusted code can still do anything
-- through ffi; this is against a careless call, not a jail.
local function refused_in_corrald(lib, name, why)
  local real = lib[name]
  if type(real) ~= "function" then return end
  local full = (lib == os and "os." or "io.") .. name
  lib[name] = function(...)
    local phase = core.phase()
    if phase == "config" or phase == "plugin" then
      error(("%s: not allowed in %s code, which runs inside corrald: %s (it is allowed in "
        .. "the hooks prefork, setup and start)"):format(full, phase, why), 2)
    end
    return real(...)
  end
end
if not package.loaded["corral.config.refused"] then
  package.loaded["corral.config.refused"] = true
  refused_in_corrald(os, "exit", "it would end corrald and leave every worker running")
  refused_in_corrald(os, "execute", "it would block corrald until the command ends")
  refused_in_corrald(io, "popen", "reading from it or closing it would block corrald")
end

-- The environment config files run in: the config API over safe globals.
local function base_globals()
  local g = {}
  for _, k in ipairs { "assert", "error", "ipairs", "next", "pairs", "pcall",
    "select", "tonumber", "tostring", "type", "unpack", "xpcall", "rawget",
    "rawset", "rawequal", "setmetatable", "getmetatable", "require" } do
    g[k] = _G[k]
  end
  g.string, g.table, g.math, g.bit = string, table, math, bit
  -- rename and remove: a file written atomically (a temporary, renamed)
  g.os = { getenv = os.getenv, time = os.time, date = os.date, clock = os.clock, difftime = os.difftime,
    exit = os.exit, rename = os.rename, remove = os.remove }
  g.io = { open = io.open, lines = io.lines }
  g._VERSION = _VERSION
  g.corral = require "corral"
  return g
end

local function where(level)
  local info = debug.getinfo(level + 1, "Sl")
  if info and info.currentline and info.currentline > 0 then
    return info.short_src, info.currentline, info.source
  end
  return "?", 0
end

-- The tokens of Lua source text, each { t = "name" | "string" | "other",
-- v = text, line = N }, comments and spaces skipped as Lua skips them;
-- first[N] is the index of line N's first token.
-- Only as exact as key_lines needs: string escapes are kept loosely and
-- a number may come out as several tokens.
local function tokenize(src)
  local toks, pos, line, n = { first = {} }, 1, 1, #src
  local function add(t, v)
    toks[#toks + 1] = { t = t, v = v, line = line }
    toks.first[line] = toks.first[line] or #toks
  end
  local function newlines(a, b) line = line + select(2, src:sub(a, b):gsub("\n", "")) end
  -- a long bracket at pos ("[[", "[==["): its end and body, or nil
  local function long(at)
    local eq = src:match("^%[(=*)%[", at)
    if not eq then return nil end
    local first = at + #eq + 2
    local e = src:find("]" .. eq .. "]", first, true)
    if not e then return n, src:sub(first) end
    return e + #eq + 1, src:sub(first, e - 1)
  end
  while pos <= n do
    local c = src:sub(pos, pos)
    if c == "\n" then
      line, pos = line + 1, pos + 1
    elseif c:find("^%s") then
      pos = src:match("^[ \t\r\f\v]*()", pos + 1)
    elseif src:sub(pos, pos + 1) == "--" then
      local stop = long(pos + 2) or (src:find("\n", pos, true) or n + 1) - 1
      newlines(pos, stop)
      pos = stop + 1
    elseif c == "[" and src:find("^%[=*%[", pos) then
      local stop, body = long(pos)
      add("string", body)
      newlines(pos, stop)
      pos = stop + 1
    elseif c == '"' or c == "'" then
      local i, buf = pos + 1, {}
      while i <= n do
        local e = src:find(c == '"' and '["\n\\]' or "['\n\\]", i) or n + 1
        buf[#buf + 1] = src:sub(i, e - 1)
        i = e
        local d = src:sub(i, i)
        if d ~= "\\" then break end
        buf[#buf + 1] = src:sub(i + 1, i + 1)
        i = i + 2
      end
      add("string", table.concat(buf))
      newlines(pos, i - 1)
      pos = i + 1
    elseif c:find("^[%a_]") then
      local w = src:match("^[%w_]+", pos)
      add("name", w)
      pos = pos + #w
    else
      local op = src:match("^%.%.%.?", pos) or src:match("^[=~<>]=", pos) or src:match("^::", pos)
        or src:match("^%d[%w_.]*", pos) or c
      add("other", op)
      pos = pos + #op
    end
  end
  return toks
end

-- The lines of the keys in a table constructor: { ["backoff.initial"] =
-- 5, ... } for the constructor that starts at toks[i] ("{"). Keys are
-- "name =" or "["string"] =" right after "{", "," or ";"; nested tables
-- under a key add to its path, others (lists, code) hide theirs.
local function constructor_lines(toks, i)
  local lines, path, depth, pending = {}, {}, 0, false
  for j = i, #toks do
    local tk, prev = toks[j], toks[j - 1]
    if tk.t == "other" and tk.v == "{" then
      depth = depth + 1
      path[depth] = pending
      pending = false
    elseif tk.t == "other" and tk.v == "}" then
      path[depth] = nil
      depth = depth - 1
      if depth == 0 then break end
    elseif depth > 0 and prev and prev.t == "other" and (prev.v == "{" or prev.v == "," or prev.v == ";") then
      local key, value
      if tk.t == "name" and toks[j + 1] and toks[j + 1].v == "=" then
        key, value = tk.v, toks[j + 2]
      elseif tk.v == "[" and toks[j + 1] and toks[j + 1].t == "string" and toks[j + 2]
          and toks[j + 2].v == "]" and toks[j + 3] and toks[j + 3].v == "=" then
        key, value = toks[j + 1].v, toks[j + 4]
      end
      local prefix = ""
      for d = 2, depth do
        if not path[d] then key = nil; break end
        prefix = prefix .. path[d] .. "."
      end
      if key then
        if not lines[prefix .. key] then lines[prefix .. key] = tk.line end
        if value and value.t == "other" and value.v == "{" then pending = key end
      end
    end
  end
  return lines
end

-- The line of key (or of the nearest key above it: "env.A" -> "env") in
-- lines, or default.
local function line_of(lines, key, default)
  while key and key ~= "" do
    if lines[key] then return lines[key] end
    local shorter = key:gsub("%[%d+%]$", "")
    if shorter == key then shorter = key:match("^(.*)%.[^.]*$") end
    key = shorter
  end
  return default
end

-- How many errors one load reports; the rest are counted.
local MAX_ERRORS = 20

-- Strip the chunk name prefix luajit puts on file errors, keep file:line.
local function clean_message(msg)
  msg = tostring(msg)
  msg = msg:gsub("^cannot open ([^:]+): (.*)$", "%1: unable to open: %2")
  msg = msg:gsub("\n.*", "")
  return msg
end

function M.load(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, clean_message(err) end

  local environ = core.environ()
  local conf = { settings = nil, pools = {} }
  local by_name, pending = {}, {}

  local env = setmetatable({}, { __index = base_globals() })

  -- Errors are gathered, each { file, line, seq, text }, and reported
  -- together at the end; a Lua error in the config ends the run at once.
  local errors = {}
  local function report(file, line, what, key, msg)
    local parts = {}
    if what then parts[#parts + 1] = what .. ": " end
    if key then parts[#parts + 1] = key .. ": " end
    errors[#errors + 1] = { file = file, line = line, seq = #errors + 1,
      text = ("%s:%d: %s%s"):format(file, line, table.concat(parts), msg) }
  end
  -- what: 'pool "web"', "settings" or nil; key: the offending key or nil.
  local function fail(level, what, key, msg)
    local file, line = where(level + 1)
    report(file, line, what, key, msg)
  end
  local function ignore() end

  -- The lines of the keys of the constructor in `fname "name" { ... }`
  -- (or `settings { ... }`) called at line: read from the file's text
  -- only when an error needs them.
  local toks
  local function key_lines(source, fname, name, line)
    if source ~= "@" .. path then return {} end
    if not toks then
      local h = io.open(path)
      toks = h and tokenize(h:read("*a") or "") or {}
      if h then h:close() end
    end
    for i = toks.first[line] or #toks + 1, #toks do
      local tk = toks[i]
      if tk.line > line then break end
      if tk.t == "name" and tk.v == fname then
        -- fname "name" {, fname("name") {, fname(expression) { ...
        local j = i + 1
        if name and toks[j] and toks[j].t == "string" then
          if toks[j].v ~= name then j = nil else j = j + 1 end
        elseif name and toks[j] and toks[j].v == "(" then
          local depth = 0
          repeat
            local v = toks[j] and toks[j].v
            if v == "(" then depth = depth + 1 elseif v == ")" then depth = depth - 1 end
            if toks[j] and toks[j].t == "string" and depth == 1 and toks[j].v ~= name
                and toks[j + 1] and toks[j + 1].v == ")" and toks[j - 1].v == "(" then
              depth, j = -1, nil	-- another pool's literal name
            else
              j = j + 1
            end
          until not j or depth <= 0 or j > #toks
        end
        if j and toks[j] and toks[j].v == "(" then j = j + 1 end
        if j and toks[j] and toks[j].v == "{" then return constructor_lines(toks, j) end
      end
    end
    return {}
  end

  -- Report a checker's errors at the lines of their keys.
  local function report_all(errs, what, fname, name, level)
    local file, line, source = where(level + 1)
    local lines = key_lines(source, fname, name, line)
    for _, e in ipairs(errs) do
      report(file, line_of(lines, e.at or e.key, line), what, e.key, e.msg)
    end
  end

  local schema_of_pools, sources = pool_schema, {}
  env.pool = function(name)
    if type(name) ~= "string" then
      fail(2, "pool", nil, ("expected a name string, got %s"):format(show(name)))
      return ignore
    end
    local what = ("pool %q"):format(name)
    if not name:match("^[A-Za-z0-9_-]+$") or #name > 64 then
      fail(2, what, nil, "invalid pool name (letters, digits, \"_\" and \"-\", 1 to 64 characters)")
      return ignore
    end
    local _, line = where(2)
    if by_name[name] then
      fail(2, what, nil, ("duplicate pool (first defined at line %d)"):format(by_name[name].line))
      return ignore
    end
    local token = { line = line }
    by_name[name] = token
    pending[#pending + 1] = { name = name, token = token, file = (where(2)) }
    return function(t)
      if type(t) ~= "table" then
        fail(2, what, nil, ("expected a table of options, got %s"):format(show(t)))
        return
      end
      token.done = true
      local errs = {}
      local p = apply(schema_of_pools, t, errs)
      if #errs == 0 and not p.command and not p.start then
        errs[1] = { key = "command", msg = "missing (give the program the workers run, or a start function)" }
      end
      local n
      if #errs == 0 then
        local ok, res = pcall(normalize_pool, name, p, t, environ)
        if ok then n = res
        elseif getmetatable(res) == Invalid then errs[1] = res
        else error(res, 0) end
      end
      if #errs > 0 then
        report_all(errs, what, "pool", name, 2)
        -- corrald -t checks the rest on the system all the same (its
        -- program, directory): the pool with defaults for its bad keys,
        -- if that makes one. conf.pools goes no further than -t then.
        for k, f in pairs(schema_of_pools) do
          if p[k] == nil and type(f) == "table" then p[k] = f[2] end
        end
        local ok, res = pcall(normalize_pool, name, p, t, environ)
        if not ok or type(res) ~= "table" then return end
        n = res
      end
      local source
      n.file, n.line, source = where(2)
      conf.pools[#conf.pools + 1] = n
      sources[n] = source
    end
  end

  env.settings = function(t)
    -- (no tail calls: where() counts this function's frame)
    if type(t) ~= "table" then fail(2, "settings", nil, ("expected a table, got %s"):format(show(t))); return end
    if conf.settings then fail(2, "settings", nil, "given twice"); return end
    local errs = {}
    conf.settings = apply(settings_schema, t, errs)
    if #errs > 0 then report_all(errs, "settings", "settings", nil, 2) end
  end

  -- plugin "name" { options }: runs plugins/name.lua in an environment of
  -- its own, with the options as its argument (...).
  local plugins_seen = {}
  env.plugin = function(name)
    if type(name) ~= "string" or not name:match("^[A-Za-z0-9_-]+$") then
      fail(2, "plugin", nil, ("expected a plugin name (letters, digits, _ and -), got %s"):format(show(name)))
      return ignore
    end
    local what = ("plugin %q"):format(name)
    if plugins_seen[name] then fail(2, what, nil, "enabled twice"); return ignore end
    plugins_seen[name] = true
    return function(options)
      if type(options) ~= "table" then
        fail(2, what, nil, ("expected a table of options, got %s"):format(show(options)))
        return
      end
      local search, file = core.plugin_path(path), nil
      for pattern in search:gmatch("[^;]+") do
        local candidate = pattern:gsub("%?", name)
        local h = io.open(candidate)
        if h then h:close(); file = candidate; break end
      end
      if not file then fail(2, what, nil, ("not found in %s"):format(search)); return end
      -- its code runs inside corrald: only root (or corrald's user) may write it
      local chunk, err = core.loadfile(file)
      if not chunk then error(clean_message(err), 0) end
      local penv = setmetatable({}, {
        __index = base_globals(),
        __newindex = function(_, k)
          error(("plugin %s: assignment to undeclared global %s (use local)"):format(name, tostring(k)), 2)
        end,
      })
      setfenv(chunk, penv)
      local corral_api = require "corral"
      local previous = corral_api._owner
      corral_api._owner = "plugin " .. name
      local ok, perr = pcall(chunk, options)
      corral_api._owner = previous
      if not ok and getmetatable(perr) == options_lib.Errors then
        -- corral.options: each at the line of its key in the plugin's table
        local file, line, source = where(2)
        local lines = key_lines(source, "plugin", name, line)
        for _, e in ipairs(perr.errors) do
          report(file, line_of(lines, e.at or e.key, line), what, e.key, e.msg)
        end
        return
      end
      if not ok then error(clean_message(perr), 0) end
    end
  end

  env.print = function(...)
    local out = {}
    for i = 1, select("#", ...) do out[i] = tostring((select(i, ...))) end
    local prefix = core.phase() == "config" and "config: " or ""
    core.log("info", prefix .. table.concat(out, "\t"))
  end

  setfenv(chunk, env)
  local ok, res = core.budget_call(chunk)
  if not ok then
    -- the one error that stops the run, after those found before it
    local text = clean_message(res)
    errors[#errors + 1] = { line = tonumber(text:match("^[^:]*:(%d+):")) or math.huge,
      seq = #errors + 1, text = text }
  else
    for _, p in ipairs(pending) do
      if not p.token.done then
        errors[#errors + 1] = { line = p.token.line, seq = #errors + 1,
          text = ("%s:%d: pool %q: missing its table of options (pool %q { ... })"):format(p.file, p.token.line, p.name, p.name) }
      end
    end
  end
  -- where corrald -t reports what it checks on the system
  for _, n in ipairs(conf.pools) do
    local lines = key_lines(sources[n], "pool", n.name, n.line)
    n.command_line = line_of(lines, "command", n.line)
    n.directory_line = line_of(lines, "directory", n.line)
    -- what corrald checks of isolation on the system (isolcheck.c)
    for _, k in ipairs { "namespaces", "rootfs", "mounts", "capabilities" } do
      n["isolation_" .. k .. "_line"] = line_of(lines, "isolation." .. k, n.line)
    end
    for _, l in ipairs(n.limits) do l.line = line_of(lines, l.key, n.line) end
    for _, l in ipairs(n.worker_limits) do l.line = line_of(lines, l.key, n.line) end
  end
  if #errors > 0 then
    -- in file order
    table.sort(errors, function(a, b)
      if a.line ~= b.line then return a.line < b.line end
      return a.seq < b.seq
    end)
    local out = {}
    for i = 1, math.min(#errors, MAX_ERRORS) do out[i] = errors[i].text end
    if #errors > MAX_ERRORS then
      out[#out + 1] = ("%s: and %d more errors"):format(path, #errors - MAX_ERRORS)
    end
    -- and the pools that parsed, with default settings: corrald -t
    -- checks them on the system too (confcheck.c), in the same run
    conf.settings = apply(settings_schema, {})
    return nil, table.concat(out, "\n"), conf
  end
  conf.settings = conf.settings or apply(settings_schema, {})
  return conf
end

return M
