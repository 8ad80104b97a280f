-- memory-restart: the example plugin of doc/plugins.md ("Writing and
-- testing a plugin"). Every `interval` it looks at each pool's workers and
-- restarts one whose memory is over `limit`; a pool gets at most one such
-- restart per `hold` (a minute), so that a pool whose every worker grows
-- is not restarted all at once.
--
--   plugin "memory-restart" { limit = "512M", interval = 10, hold = 60 }
--
-- Its test: t/kit/memory-restart_test.lua (make test-plugins).
local units = require "corral.units"

local options = ...
local WHO = 'plugin "memory-restart"'
local KNOWN = { limit = true, interval = true, hold = true }

for k in pairs(options) do
  if not KNOWN[k] then
    error(("%s: unknown option %s (limit, interval, hold)"):format(WHO, tostring(k)), 0)
  end
end

if options.limit == nil then error(WHO .. ": limit: missing (a size: \"512M\")", 0) end
local limit, err = units.size(options.limit)
if not limit then error(("%s: limit: %s"):format(WHO, err), 0) end

local function duration(key, default)
  if options[key] == nil then return default end
  local s, why = units.duration(options[key])
  if not s then error(("%s: %s: %s"):format(WHO, key, why), 0) end
  if s < 1 then error(("%s: %s: must be at least 1 second"):format(WHO, key), 0) end
  return s
end
local interval = duration("interval", 10)
local hold = duration("hold", 60)

local last = {}	-- pool -> corral.now() of its last restart by us

local function check()
  for _, pool in ipairs(corral.status()) do
    local since = last[pool.name] and corral.now() - last[pool.name]
    if not since or since >= hold then
      for _, w in ipairs(pool.workers) do
        if w.state == "ready" and w.memory_current and w.memory_current > limit then
          corral.warn(("memory-restart: worker %d uses %.1f MiB, over %.1f MiB: restarting it pool=%s")
            :format(w.id, w.memory_current / 2^20, limit / 2^20, pool.name))
          if corral.restart(pool.name, w.id) then
            last[pool.name] = corral.now()
            break	-- one per pool per hold
          end
        end
      end
    end
  end
end

corral.on("config", function()
  corral.every(interval, check)
end)
