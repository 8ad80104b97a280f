-- A plugin that tries the API, right and wrong, and logs what each call
-- gave, one line each ("probe: WHAT: OUTCOME"). t/115-plugin-kit.t runs
-- it in a real corrald and in the kit, and the lines must be the same:
-- the kit's fake corral.core answers and fails as corrald's does. Paths
-- in messages are cut to the file's name (the plugin's differs).
-- plugin "probe" {}  with a pool "web" of 2 workers.
local out = {}

local function show(v)
  if type(v) == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    return "{" .. table.concat(keys, ",") .. "}"
  end
  if type(v) == "string" then return (v:gsub("[^%s:]*/", "")) end
  return tostring(v)
end

local function try(what, f, ...)
  local res = { pcall(f, ...) }
  local n = table.maxn(res)
  local shown = {}
  for i = 2, math.max(n, 2) do shown[#shown + 1] = show(res[i]) end
  out[#out + 1] = ("%s: %s %s"):format(what, res[1] and "ok" or "error", table.concat(shown, " | "))
end

local function keys(t, skip)
  local list = {}
  for k in pairs(t) do if not (skip and skip[k]) then list[#list + 1] = tostring(k) end end
  table.sort(list)
  return table.concat(list, ",")
end

local core = require "corral.core"
local loadtime = {
  "core at load: " .. keys(core),
  "corral at load: " .. keys(corral, { _owner = true }),	-- (who registers: the kit keeps it on the module)
}
try("core.scale at load", core.scale, "web", 1)
try("after at load", corral.after, 1, print)
for _, l in ipairs(loadtime) do out[#out + 1] = l end

-- members that are null (absent) or machine-dependent in some states
local NULLABLE = { restart_in = true, failure = true, last_failure = true, memory_current = true,
  cpu_usage_usec = true, populated = true, prototype = true, last_exit = true, status = true }

local done = false
corral.on("pool_ready", function(ev)
  if done then return end
  done = true
  local f = function() end
  try("pools", function() return table.concat(corral.pools(), ",") end)
  try("stats bad worker", corral.stats, "web", "one")
  try("stats unknown pool", corral.stats, "nope")
  try("stats unknown worker", corral.stats, "web", 99)
  try("stats no name", corral.stats, 7)
  try("status table", corral.status, {})
  try("status unknown", corral.status, "nope")
  try("status keys", function()
    local p = corral.status("web")[1]
    return keys(p, NULLABLE) .. " ; " .. keys(p.workers[1], NULLABLE) .. " ; " .. #p.workers
  end)
  try("scale unknown", corral.scale, "nope", 1)
  try("scale negative", corral.scale, "web", -1)
  try("scale fraction", corral.scale, "web", 1.5)
  try("scale no name", corral.scale, 1, 1)
  try("restart unknown worker", corral.restart, "web", 99)
  try("restart bad worker", corral.restart, "web", {})
  try("restart unknown", corral.restart, "nope")
  try("stop_pool unknown", corral.stop_pool, "nope")
  try("start_pool unknown", corral.start_pool, "nope")
  try("start_pool no name", corral.start_pool, nil)
  try("signal bad name", corral.signal, "web", nil, "NOPE")
  try("signal digits", corral.signal, "web", nil, "15")
  try("signal table", corral.signal, "web", nil, {})
  try("signal 99", corral.signal, "web", nil, 99)
  try("signal unknown worker", corral.signal, "web", 99, "HUP")
  try("signal unknown", corral.signal, "nope", nil, 1)
  try("signal bad worker", corral.signal, "web", "x", 1)
  try("signal all", corral.signal, "web", nil, "sigcont")
  try("signal one", corral.signal, "web", 2, 18)
  try("freeze unknown", corral.freeze, "nope")
  try("thaw no name", corral.thaw, {})
  try("pressure resource", corral.pressure, "web", "disk")
  try("pressure unknown", corral.pressure, "nope", "cpu")
  try("psi unknown", corral.psi_trigger, "nope", "cpu", "some 150000 2000000", f)
  try("psi spec", corral.psi_trigger, "web", "cpu", "some 1", f)
  try("psi fn", corral.psi_trigger, "web", "cpu", "some 1 2", "f")
  try("after 0", corral.after, 0, f)
  try("after inf", corral.after, math.huge, f)
  try("every no fn", corral.every, 1, "f")
  try("cancel string", corral.cancel, "x")
  try("cancel nil", corral.cancel, nil)
  try("cancel unknown", corral.cancel, 12345)
  try("on in a handler", corral.on, "stop", f)
  try("log level", corral.log, "loud", "x")
  try("sleep", corral.sleep, 1)
  try("ready", corral.ready)
  try("setenv", corral.setenv, "A", "b")
  try("phase", corral.phase)
  try("core.exec", core.exec, { "/bin/true" })
  try("core.getpwnam", core.getpwnam, "root")
  try("core.signum", core.signum, "SIGusr1")
  try("core.duration", function() return core.duration(0.25) .. " " .. core.duration(1.5) .. " " .. core.duration(123456) end)
  for _, l in ipairs(out) do corral.info("probe: " .. l) end
  corral.info("probe: done")
end)
