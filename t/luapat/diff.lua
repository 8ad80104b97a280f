-- Differential check of luapat.c (string.*) against LuaJIT's own (N.*):
-- random subjects, patterns (valid and broken), start positions and
-- replacements; results and error messages must be the same. SEED and N
-- come from the environment. Prints "mismatches K" and exits 1 if K > 0.
local seed = tonumber(os.getenv("SEED") or "1")
math.randomseed(seed)
local atoms = { "a", "b", ".", "%a", "%d", "%s", "%w", "%x", "%z", "%g", "%p", "%u", "%l", "%c",
  "%A", "%S", "[ab]", "[^a]", "[a-c]", "[%a%d]", "[]a]", "[^]]", "[a-%%]", "%%", "%.", "%b()",
  "%bab", "%f[%w]", "%f[%W]", "(", ")", "()", "%1", "%2", "^", "$", "*", "+", "-", "?", "[", "]",
  "%", "\0", "[a-", "%b", "%f", "-" }
local chars = { "a", "b", "c", "(", ")", " ", "1", "2", ".", "%", "\0", "]", "[", "^", "$", "-", "x", "A", "\t" }
local function pick(t, n)
  local r = {}
  for i = 1, math.random(0, n) do r[i] = t[math.random(#t)] end
  return table.concat(r)
end
local function show(...)
  local t = { select("#", ...), ... }
  for i = 2, #t do t[i] = type(t[i]) == "string" and ("%q"):format(t[i]) or tostring(t[i]) end
  return table.concat(t, ",")
end
local function result(ok, ...)
  if not ok then return "ERR:" .. tostring((...)):gsub("^[^:]*:%d+: ", "") end
  return show(...)
end
local function iterate(gmatch, s, p)
  local ok, it = pcall(gmatch, s, p)
  if not ok then return "ERR:" .. it end
  local out = {}
  for _ = 1, 50 do
    local r = { pcall(it) }
    if not r[1] then out[#out + 1] = "ERR:" .. tostring(r[2]) break end
    if r[2] == nil then break end
    out[#out + 1] = show(unpack(r, 2))
  end
  return table.concat(out, "|")
end
local repls = { "x", "%0", "%1", "<%1%2>", "%%", "%", "%x", function(a) return a end,
  { a = "A", b = false }, function() return false end, 12, function() return {} end, true }
local bad = 0
local function check(what, a, b, ...)
  if a ~= b then
    bad = bad + 1
    if bad <= 20 then print(what, show(...), "\n  luajit:  " .. a .. "\n  luapat:  " .. b) end
  end
end
for _ = 1, tonumber(os.getenv("N") or "20000") do
  local p, s = pick(atoms, 6), pick(chars, 10)
  local init = math.random(4) == 1 and math.random(-12, 14) or nil
  local repl, max = repls[math.random(#repls)], math.random(3) == 1 and math.random(0, 3) or nil
  for _, c in ipairs { { "find", s, p, init }, { "find", s, p, init, true }, { "match", s, p, init },
                       { "gsub", s, p, repl, max } } do
    check(c[1], result(pcall(N[c[1]], unpack(c, 2, 5))), result(pcall(string[c[1]], unpack(c, 2, 5))), s, p, c[4], c[5])
  end
  check("gmatch", iterate(N.gmatch, s, p), iterate(string.gmatch, s, p), s, p)
end
print("mismatches " .. bad)
os.exit(bad == 0 and 0 or 1)
