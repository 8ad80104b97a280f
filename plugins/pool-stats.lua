-- pool-stats: a plugin shipped with corral. Every `interval` seconds it
-- logs one line per pool: the memory its cgroup uses, the CPU time it has
-- used and the number of processes in it, each where the kernel offers it
-- (memory and pids need their controllers; see "cgroups" in the README),
-- and, once its workers report their load (BUSY=1, IDLE=1, REQUESTS=N:
-- doc/systemd.md, Load reports), how many are busy and idle and the
-- requests they served.
-- It also logs each OOM kill, with the pool's memory at that moment.
--
--   plugin "pool-stats" { interval = 60 }   -- seconds, or a duration: "5m"
--
-- Lines, at level info (OOM kills at warn):
--
--   pool-stats: memory_current=182.4M cpu=73.25s pids_current=9 pool=web
--   pool-stats: memory_current=90.1M cpu=12.50s pids_current=3 busy=1 idle=2 requests=1542 pool=api
--   pool-stats: OOM kill: worker 3 pid 4711; pool oom_kills=1 memory_current=250.1M memory_peak=256.0M pool=web
--
-- Reference of the API it uses: doc/plugins.md.

local units = require "corral.units"

local options = ...
local WHO = 'plugin "pool-stats"'

for k in pairs(options) do
  if k ~= "interval" then
    local shown = type(k) == "string" and ("%q"):format(k) or tostring(k)
    error(("%s: unknown option %s (interval)"):format(WHO, shown), 0)
  end
end

local interval = 60
if options.interval ~= nil then
  local s, err = units.duration(options.interval)
  if not s then error(("%s: interval: %s"):format(WHO, err), 0) end
  if s < 1 then error(("%s: interval: must be at least 1 second"):format(WHO), 0) end
  interval = s
end

-- 191283200 -> "182.4M"
local function size(bytes)
  if bytes >= 2^30 then return ("%.1fG"):format(bytes / 2^30) end
  if bytes >= 2^20 then return ("%.1fM"):format(bytes / 2^20) end
  if bytes >= 2^10 then return ("%.1fK"):format(bytes / 2^10) end
  return ("%d"):format(bytes)
end

-- "key=value" for each field the kernel gave; nil fields are left out.
local function fields(st, list)
  local out = {}
  for _, f in ipairs(list) do
    local v = st[f[1]]
    if v then out[#out + 1] = f[2] .. "=" .. f[3](v) end
  end
  return out
end

local seconds = function(usec) return ("%.2fs"):format(usec / 1e6) end
local count = function(n) return ("%d"):format(n) end

local PERIODIC = {
  { "memory_current", "memory_current", size },
  { "cpu_usage_usec", "cpu", seconds },
  { "pids_current", "pids_current", count },
}

local function report()
  for _, pool in ipairs(corral.pools()) do
    local st = corral.stats(pool)
    if st then	-- nil when the pool's cgroup is gone
      local out = fields(st, PERIODIC)
      if (st.busy or 0) + (st.idle or 0) > 0 or (st.requests or 0) > 0 then
        out[#out + 1] = ("busy=%d idle=%d requests=%d"):format(st.busy, st.idle, st.requests)
      end
      if #out == 0 then out[1] = "no statistics available" end
      corral.info("pool-stats: " .. table.concat(out, " ") .. " pool=" .. pool)
    end
  end
end

-- Timers belong to one loaded config and end with it: start ours again
-- after every load (startup and each reload).
corral.on("config", function()
  corral.every(interval, report)
end)

local AT_OOM = {
  { "oom_kills", "oom_kills", count },
  { "memory_current", "memory_current", size },
  { "memory_peak", "memory_peak", size },
}

corral.on("oom", function(ev)
  local st = corral.stats(ev.pool)
  local out = st and fields(st, AT_OOM) or {}
  corral.warn(("pool-stats: OOM kill: worker %d pid %d%s pool=%s"):format(
    ev.worker, ev.pid, #out > 0 and "; pool " .. table.concat(out, " ") or "", ev.pool))
end)
