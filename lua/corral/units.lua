-- corral.units: parse the sizes, durations and signals that configs are
-- written with. Each parser returns the value, or nil and a reason.
local M = {}

-- systemd.time(7)'s spellings, lowercased (no months or years: "M"
-- would read as minutes here).
local duration_units = {
  us = 1e-6, usec = 1e-6, ms = 1e-3, msec = 1e-3,
  s = 1, sec = 1, second = 1, seconds = 1,
  m = 60, min = 60, minute = 60, minutes = 60,
  h = 3600, hr = 3600, hour = 3600, hours = 3600,
  d = 86400, day = 86400, days = 86400,
  w = 604800, week = 604800, weeks = 604800,
}

-- A duration in seconds: a number (seconds) or a string of one or more
-- NUMBER UNIT parts, summed: "250ms", "1.5s", "1m30s", "1min 30s",
-- "5 seconds", "2h 5min". A lone number is seconds.
function M.duration(v)
  if type(v) == "number" then
    if v ~= v or v < 0 or v == math.huge then return nil, "expected a duration >= 0" end
    return v
  end
  if type(v) ~= "string" then
    return nil, "expected a duration (number of seconds or a string like \"250ms\" or \"1min 30s\")"
  end
  if not v:find("%S") then return nil, "empty duration" end
  local total, pos, parts = 0, v:match("^%s*()"), 0
  while pos <= #v do
    local num, nxt = v:match("^(%d+%.?%d*)()", pos)
    if not num then num, nxt = v:match("^(%.%d+)()", pos) end
    if not num then return nil, ("invalid duration %q"):format(v) end
    local unit, after = v:match("^%s*(%a*)()", nxt)
    parts = parts + 1
    if unit == "" then
      if parts ~= 1 or v:find("%S", after) then return nil, ("invalid duration %q: missing unit"):format(v) end
      unit = "s"
    end
    local mult = duration_units[unit:lower()]
    if not mult then
      return nil, ("invalid duration %q: unknown unit %q (us, ms, s, min, h, d, w, or seconds, minutes...)"):format(v, unit)
    end
    total = total + tonumber(num) * mult
    pos = v:match("^%s*()", after)
  end
  -- enough digits make math.huge, which no timer can take
  if total == math.huge then return nil, ("invalid duration %q: too large"):format(v) end
  return total
end

local size_units = { [""] = 1, k = 2^10, m = 2^20, g = 2^30, t = 2^40, p = 2^50 }

-- A size in bytes: a number or "512M", "1.5G", "64KiB" (1024-based).
function M.size(v)
  if type(v) == "number" then
    if v ~= v or v < 0 or v == math.huge or v % 1 ~= 0 then return nil, "expected a whole number of bytes" end
    if v > 2^53 then return nil, "expected a whole number of bytes, at most 8P" end	-- as below
    return v
  end
  if type(v) ~= "string" then return nil, "expected a size (bytes, or a string like \"512M\")" end
  local num, unit = v:match("^%s*(%d+%.?%d*)%s*(%a*)%s*$")
  if not num then return nil, ("invalid size %q"):format(v) end
  local u = unit:lower():gsub("i?b$", "")
  if unit:lower() == "b" then u = "" end
  local mult = size_units[u]
  if not mult then return nil, ("invalid size %q: unknown unit %q (K, M, G, T)"):format(v, unit) end
  local n = math.floor(tonumber(num) * mult)
  -- beyond 2^53 bytes (8P) a double is no exact count, and math.huge
  -- would be written as a negative number ("%d")
  if n > 2^53 then return nil, ("invalid size %q: too large (at most 8P)"):format(v) end
  return n
end

-- Format seconds for log lines and messages: 0.25 -> "250ms", as
-- corrald's own lines and `corralctl status` write them (one formatter, in C).
function M.format_duration(s)
  return require("corral.core").duration(s)
end

return M
