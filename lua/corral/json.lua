-- corral.json: decode the JSON that corrald itself writes (status), for
-- plugins, and encode what plugin commands answer. Strict enough for
-- that; not a general-purpose library.
local M = {}

local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

function M.decode(s)
  local pos = 1
  local value

  local function fail(what)
    error(("json: %s at byte %d"):format(what, pos), 0)
  end
  local function ws()
    pos = s:find("[^ \t\r\n]", pos) or #s + 1
  end
  local function str()
    local out, i = {}, pos + 1
    while true do
      local c = s:sub(i, i)
      if c == "" then fail("unfinished string") end
      if c == '"' then pos = i + 1; return table.concat(out) end
      if c == "\\" then
        local e = s:sub(i + 1, i + 1)
        if e == "u" then
          local hex = s:sub(i + 2, i + 5)
          local n = tonumber(hex, 16)
          if not n then fail("bad \\u escape") end
          out[#out + 1] = n < 128 and string.char(n) or "?"
          i = i + 6
        else
          out[#out + 1] = escapes[e] or fail("bad escape")
          i = i + 2
        end
      else
        out[#out + 1] = c
        i = i + 1
      end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1; ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1; return t end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then fail("expected a key") end
        local k = str(); ws()
        if s:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        t[k] = value(); ws()
        local d = s:sub(pos, pos); pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      local t = {}
      pos = pos + 1; ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1; return t end
      while true do
        t[#t + 1] = value(); ws()
        local d = s:sub(pos, pos); pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return str()
    elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4; return nil
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not num or num == "" then fail("unexpected character") end
      pos = pos + #num
      return tonumber(num)
    end
  end
  local v = value(); ws()
  if pos <= #s then fail("text after the value") end
  return v
end

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local e = ({ ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r" })[c]
    return e or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

-- M.encode(v): nil, booleans, finite numbers, strings, and tables of
-- them: a table with items 1..n (and nothing else) is an array, any other
-- an object (keys as strings, sorted: the same value, the same text).
-- Errors on functions, cycles and other values.
function M.encode(v, seen)
  local t = type(v)
  if v == nil then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then error("json: cannot encode " .. tostring(v), 0) end
    if v % 1 == 0 and v >= -2^53 and v <= 2^53 then return ("%d"):format(v) end
    return ("%.17g"):format(v)
  end
  if t == "string" then return encode_string(v) end
  if t ~= "table" then error("json: cannot encode a " .. t, 0) end
  seen = seen or {}
  if seen[v] then error("json: cannot encode a table that contains itself", 0) end
  seen[v] = true
  local n, count, out = #v, 0, {}
  for _ in pairs(v) do count = count + 1 end
  if count == n and (n > 0 or next(v) == nil and getmetatable(v) == M.array) then
    for i = 1, n do out[i] = M.encode(v[i], seen) end
    seen[v] = nil
    return "[" .. table.concat(out, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do
    if type(k) ~= "string" and type(k) ~= "number" then error("json: cannot encode a " .. type(k) .. " key", 0) end
    keys[#keys + 1] = tostring(k)
  end
  table.sort(keys)
  for i, k in ipairs(keys) do
    local x = v[k]
    if x == nil then x = v[tonumber(k)] end
    out[i] = encode_string(k) .. ":" .. M.encode(x, seen)
  end
  seen[v] = nil
  return "{" .. table.concat(out, ",") .. "}"
end

-- setmetatable({}, json.array) encodes as [] rather than {}.
M.array = {}

return M
