-- units.lua (t/fuzz): the checks of the units fuzz target. Each takes the
-- input (a string, or a number made of it) and returns nil when the
-- parser behaved: a value of the promised kind, or a clean refusal (nil
-- and a reason, or a validation error). Anything else is returned as a
-- description of what broke, and the target aborts with it.
local units = require "corral.units"
local config = require "corral.config"
local core = require "corral.core"

-- The field checkers are locals of corral.config; load() closes over the
-- schemas that hold them.
local function upvalue(f, want)
  for i = 1, 255 do
    local name, v = debug.getupvalue(f, i)
    if not name then break end
    if name == want then return v end
  end
  error("corral.config.load has no upvalue " .. want)
end
local pool_schema = upvalue(config.load, "pool_schema")
local settings_schema = upvalue(config.load, "settings_schema")

local function finite(x)
  return type(x) == "number" and x == x and x > -math.huge and x < math.huge
end

local function refusal(v, err)
  if v == nil and type(err) ~= "string" then return "nil without a reason" end
end

-- A checker's error must be corral.config's validation error (a table
-- with key and msg); a string is a Lua runtime error inside it.
local function checked(f, value, key, post)
  local ok, res = pcall(f, value, key)
  if not ok then
    if type(res) == "table" and type(res.msg) == "string" then return nil end
    return "runtime error in the checker: " .. tostring(res)
  end
  return post(res)
end

local function duration_ok(d)
  if not finite(d) or d < 0 then return "duration " .. tostring(d) end
end

local limit_value = { "^%d+$", "^max$", "^max 100000$", "^%d+ %d+$", "^default %d+$" }
local function limits_ok(list)
  for _, l in ipairs(list) do
    if type(l.value) ~= "string" then return "limit value " .. tostring(l.value) end
    local good = false
    for _, p in ipairs(limit_value) do good = good or l.value:match(p) ~= nil end
    if not good then return ("%s = %q"):format(l.file, l.value) end
  end
end

local function limit(kind)
  return function(v)
    return checked(pool_schema.limits[1], { [kind] = v }, "limits", limits_ok)
  end
end

local checks = {
  function(v)
    local d, err = units.duration(v)
    if d == nil then return refusal(d, err) end
    return duration_ok(d)
  end,
  function(v)
    local n, err = units.size(v)
    if n == nil then return refusal(n, err) end
    if not finite(n) or n < 0 or n % 1 ~= 0 then return "size " .. tostring(n) end
  end,
  function(v)
    local n = core.signum(v)
    if n ~= nil and (n % 1 ~= 0 or n < 1 or n > 64) then return "signal " .. tostring(n) end
  end,
  function(v)
    return checked(pool_schema.stop_signal[1], v, "stop_signal", function(n)
      if type(n) ~= "number" or n % 1 ~= 0 or n < 1 or n > 64 then return "signal " .. tostring(n) end
    end)
  end,
  function(v) return checked(pool_schema.stop_timeout[1], v, "stop_timeout", duration_ok) end,
  limit("cpu_max"),
  limit("memory_max"),
  limit("memory_swap_max"),
  limit("pids_max"),
  limit("cpu_weight"),
  function(v)
    return checked(pool_schema.listen[1], { s = v }, "listen", function(list)
      if #list ~= 1 or list[1].spec ~= v then return "listen spec changed" end
    end)
  end,
  function(v)
    return checked(settings_schema.cgroup[1], v, "cgroup", function(path)
      if path ~= "auto" and (path:find("//") or path:find("/%.%.?/") or path:find("/%.%.?$")) then
        return ("cgroup %q"):format(path)
      end
    end)
  end,
}

-- (selector, text): the selector picks the check, and whether the text
-- is given as it is or as the number Lua reads in it.
return function(sel, text)
  local check = checks[sel % #checks + 1]
  local v = text
  if sel >= 128 then
    v = tonumber(text)
    if v == nil then return nil end
  end
  return check(v)
end
