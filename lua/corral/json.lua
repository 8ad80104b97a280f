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

-- What the control protocol promises of its answers: valid UTF-8 (a
-- byte that is not becomes U+FFFD, as corrald's C side writes it), and
-- the C1 controls escaped, like every control character.
local function utf8_clean(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local j = s:find("[\128-\255]", i)
    if not j then out[#out + 1] = s:sub(i); break end
    out[#out + 1] = s:sub(i, j - 1)
    local c = s:byte(j)
    local len = (c >= 0xC2 and c <= 0xDF) and 2 or (c >= 0xE0 and c <= 0xEF) and 3 or (c >= 0xF0 and c <= 0xF4) and 4 or 0
    local cp = len > 0 and j + len - 1 <= n and bit.band(c, bit.rshift(0x7f, len)) or nil
    for k = 1, cp and len - 1 or 0 do
      local b = s:byte(j + k)
      if bit.band(b, 0xC0) ~= 0x80 then cp = nil; break end
      cp = cp * 64 + bit.band(b, 0x3f)
    end
    if cp and ((len == 3 and cp < 0x800) or (len == 4 and (cp < 0x10000 or cp > 0x10FFFF)) or (cp >= 0xD800 and cp <= 0xDFFF)) then
      cp = nil
    end
    if not cp then
      out[#out + 1] = "\239\191\189"
      i = j + 1
    else
      out[#out + 1] = cp <= 0x9F and ("\\u%04x"):format(cp) or s:sub(j, j + len - 1)
      i = j + len
    end
  end
  return table.concat(out)
end

local function encode_string(s)
  s = s:gsub('[%c"\\]', function(c)
    local e = ({ ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r" })[c]
    return e or ("\\u%04x"):format(c:byte())
  end)
  return '"' .. (s:find("[\128-\255]") and utf8_clean(s) or s) .. '"'
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
