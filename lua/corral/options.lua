-- corral.options: checking a table of options against a schema, with
-- errors that name the key, for the config (config.lua) and for plugins.
--
-- A schema is { key = { checker, default }, ... }; a checker is
-- checker(value, key) -> the normalized value, or options.invalid(key, ...).
-- Errors carry the key path ("web.max"); the config reports each at the
-- line of that key in the file: FILE:LINE: plugin "NAME": web.max: ...
local units = require "corral.units"

local M = {}

-- ---- small helpers ---------------------------------------------------------------

function M.show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) == "table" or type(v) == "function" then return "a " .. type(v) end
  return tostring(v)
end
local show = M.show

-- The keys of t, sorted (numbers and strings alike, by their text).
function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end
local sorted_keys = M.sorted_keys

-- Optimal string alignment distance (Damerau-Levenshtein without
-- repeated edits of a substring): a typo is one or two of these.
local function distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[#a][#b]
end

-- " (did you mean \"workers\"?)" for a word within two edits of one of
-- candidates (a list or the keys of a table), else "".
function M.suggest(word, candidates)
  if type(word) ~= "string" or #word > 64 then return "" end
  local best, bestd = nil, 3
  local list = candidates[1] and candidates or {}
  if not candidates[1] then for k in pairs(candidates) do list[#list + 1] = k end end
  table.sort(list)
  for _, c in ipairs(list) do
    local d = distance(word:lower(), c:lower())
    if d < bestd and d < #c then best, bestd = c, d end
  end
  return best and (" (did you mean %q?)"):format(best) or ""
end
local suggest = M.suggest

-- ---- errors ----------------------------------------------------------------------

-- One error: { key = path, at = the key whose line it is reported at, msg }.
M.Invalid = {}
local Invalid = M.Invalid

function M.invalid_at(at, key, fmt, ...)
  error(setmetatable({ key = key, at = at, msg = fmt:format(...) }, Invalid), 0)
end
function M.invalid(key, fmt, ...)
  M.invalid_at(key, key, fmt, ...)
end
local invalid, invalid_at = M.invalid, M.invalid_at

-- All the errors of a plugin's options: { plugin = NAME, errors = { Invalid... } }.
-- The config reports each at its key's line; elsewhere (the plugin kit)
-- it reads as the lines `plugin "NAME": KEY: MSG`.
M.Errors = {
  __tostring = function(e)
    local out = {}
    for i, x in ipairs(e.errors) do
      out[i] = ("plugin %q: %s%s"):format(e.plugin, x.key and x.key .. ": " or "", x.msg)
    end
    return table.concat(out, "\n")
  end,
}

-- Raises the errors (a list of { key, msg [, at] }) of plugin NAME's options.
function M.fail(plugin, errs)
  error(setmetatable({ plugin = plugin, errors = errs }, M.Errors), 0)
end

-- ---- applying a schema ------------------------------------------------------------

-- The checked table: unknown keys, then each key's checker (or its
-- default). With errs, every error is added to it and the rest still
-- checked; without, the first is raised. prefix: the key path above.
function M.apply(schema, t, errs, prefix)
  local function path(k) return prefix and prefix .. "." .. k or k end
  local function add(e)
    if not errs then error(e, 0) end
    errs[#errs + 1] = e
  end
  for _, k in ipairs(sorted_keys(t)) do
    if type(k) ~= "string" or not schema[k] then
      add(setmetatable({ at = type(k) == "string" and path(k) or prefix, key = prefix,
        msg = ("unknown key %s%s"):format(show(k), suggest(k, schema)) }, Invalid))
    end
  end
  local out = {}
  for _, k in ipairs(sorted_keys(schema)) do
    local f = schema[k]
    if t[k] ~= nil then
      local ok, res = pcall(f[1], t[k], path(k), errs)
      if ok then out[k] = res
      elseif getmetatable(res) == Invalid then add(res)
      else error(res, 0) end
    else
      out[k] = f[2]
    end
  end
  return out
end

-- A plugin's options (its ...) against schema (a schema, or one checker
-- for the whole table such as check.pools): the normalized table, or every
-- error raised at once (M.fail).
function M.validate(plugin, opts, schema)
  local errs = {}
  local out
  if type(opts) ~= "table" then
    errs[1] = { msg = ("expected a table of options, got %s"):format(show(opts)) }
  elseif type(schema) == "function" then
    local ok, res = pcall(schema, opts, nil, errs)
    if ok then out = res
    elseif getmetatable(res) == Invalid then errs[#errs + 1] = res
    else error(res, 0) end
  else
    out = M.apply(schema, opts, errs)
  end
  if #errs > 0 then M.fail(plugin, errs) end
  return out
end

-- ---- checkers ------------------------------------------------------------------------

local check = {}
M.check = check

function check.integer(min, max)
  return function(v, key)
    if type(v) ~= "number" or v % 1 ~= 0 or v < min or v > max then
      invalid(key, "expected an integer from %d to %d, got %s", min, max, show(v))
    end
    return v
  end
end

function check.number(min, max)
  return function(v, key)
    if type(v) ~= "number" or v ~= v or v < min or v > max then
      invalid(key, "expected a number from %g to %g, got %s", min, max, show(v))
    end
    return v
  end
end

-- A checker from one of corral.units' parsers (value, or nil and why).
local function parsed(parse)
  return function(v, key)
    local n, err = parse(v)
    if not n then invalid(key, "%s", type(v) == "string" and err or err .. ", got " .. show(v)) end
    return n
  end
end
check.duration = parsed(units.duration)   -- seconds
check.size = parsed(units.size)           -- bytes

function check.boolean(v, key)
  if type(v) ~= "boolean" then invalid(key, "expected true or false, got %s", show(v)) end
  return v
end

function check.string(v, key)
  if type(v) ~= "string" or v == "" or v:find("\0", 1, true) then
    invalid(key, "expected a string (not empty, no NUL byte), got %s", show(v))
  end
  return v
end

function check.enum(...)
  local allowed, list = {}, {}
  for _, a in ipairs { ... } do allowed[a] = true; list[#list + 1] = ("%q"):format(a) end
  local expect = table.concat(list, ", ")
  return function(v, key)
    if not allowed[v] then invalid(key, "expected one of %s, got %s%s", expect, show(v), suggest(v, allowed)) end
    return v
  end
end

function check.func(v, key)
  if type(v) ~= "function" then invalid(key, "expected a function, got %s", show(v)) end
  return v
end

-- A table of sub-keys, each with its own checker and default. With errs
-- (from validate or pools) every error of it is gathered; else the first
-- is raised.
function check.record(fields)
  return function(v, key, errs)
    if type(v) ~= "table" then invalid(key, "expected a table, got %s", show(v)) end
    return M.apply(fields, v, errs, key)
  end
end

-- Options per pool: { POOL = { ... }, ... }, each checked as a record of
-- fields. Pool names are not checked against the config's pools: a
-- plugin is loaded before all of them are known, and a reload may add
-- one later; the plugin warns of a pool it does not find.
function check.pools(fields)
  local rec = check.record(fields)
  return function(v, key, errs)
    if type(v) ~= "table" then invalid(key, "expected a table of pools, got %s", show(v)) end
    local out = {}
    for _, name in ipairs(sorted_keys(v)) do
      if type(name) ~= "string" or not name:match("^[A-Za-z0-9_-]+$") or #name > 64 then
        local e = setmetatable({ key = key, msg = ("expected pool names as keys (POOL = { ... }), got %s"):format(show(name)) }, Invalid)
        if not errs then error(e, 0) end
        errs[#errs + 1] = e
      else
        local ok, res = pcall(rec, v[name], key and key .. "." .. name or name, errs)
        if ok then out[name] = res
        elseif getmetatable(res) == Invalid then
          if not errs then error(res, 0) end
          errs[#errs + 1] = res
        else error(res, 0) end
      end
    end
    return out
  end
end

return M
