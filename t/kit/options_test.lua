-- corral.options, the checks plugins use for their options: the checked
-- table with defaults, every error at once with its key path, "did you
-- mean", and what the kit's load_error shows of them.
-- Run from the top of the source tree: make test-plugins, or
--   LUA_PATH="lua/?.lua;;" luajit t/kit/options_test.lua
local testing = require "corral.testing"
local options = require "corral.options"
local test, eq, raises = testing.test, testing.eq, testing.raises
local check = options.check

local SCHEMA = check.pools {
  min = { check.integer(0, 100), 1 },
  every = { check.duration, 60 },
  limit = { check.size },
  share = { check.number(0, 1), 0.5 },
  mode = { check.enum("warn", "restart"), "warn" },
  on = { check.boolean, true },
  url = { check.string },
  fn = { check.func },
  up = { check.record { step = { check.integer(1, 10), 2 } }, {} },
}

local function errors(opts)
  local ok, err = pcall(options.validate, "mine", opts, SCHEMA)
  if ok then return nil end
  eq(getmetatable(err), options.Errors, "raises corral.options' errors")
  local out = {}
  for i, e in ipairs(err.errors) do out[i] = (e.key and e.key .. ": " or "") .. e.msg end
  return out
end

test("a good table: checked, defaults filled in", function()
  local f = function() end
  local c = options.validate("mine", { web = { every = "1min 30s", limit = "512M", fn = f, up = { step = 3 } },
    api = {} }, SCHEMA)
  eq(c.web.every, 90, "duration in seconds")
  eq(c.web.limit, 512 * 2^20, "size in bytes")
  eq(c.web.min, 1, "default")
  eq(c.web.up.step, 3, "record")
  eq(c.web.fn, f, "function")
  eq(c.api, { min = 1, every = 60, share = 0.5, mode = "warn", on = true, up = {} }, "all defaults")
end)

test("every error at once, each with its key, did you mean", function()
  eq(errors({ web = { mni = 1, every = "5 parsecs", mode = "restrat", share = 2, on = "yes", url = "",
      up = { stpe = 1 } }, ["bad name"] = {} }), {
    'expected pool names as keys (POOL = { ... }), got "bad name"',
    'web: unknown key "mni" (did you mean "min"?)',
    'web.every: invalid duration "5 parsecs": unknown unit "parsecs" (us, ms, s, min, h, d, w, or seconds, minutes...)',
    'web.mode: expected one of "warn", "restart", got "restrat" (did you mean "restart"?)',
    'web.on: expected true or false, got "yes"',
    'web.share: expected a number from 0 to 1, got 2',
    'web.up: unknown key "stpe" (did you mean "step"?)',
    'web.url: expected a string (not empty, no NUL byte), got ""',
  })
  eq(errors({ web = { up = { stpe = 1, step = "x" } } }), {
    'web.up: unknown key "stpe" (did you mean "step"?)',
    'web.up.step: expected an integer from 1 to 10, got "x"',
  }, "a nested record: all its errors too")
  eq(errors("no"), { "expected a table of options, got \"no\"" })
  eq(errors({ web = 3 }), { "web: expected a table, got 3" })
end)

test("options.fail, and what the kit shows", function()
  local plugin = function(...)
    local o = require("corral.options")
    local c = o.validate("mine", ..., o.check.pools { min = { o.check.integer(0, 9), 0 }, max = { o.check.integer(1, 9), 1 } })
    for pool, x in pairs(c) do
      if x.max < x.min then o.fail("mine", { { key = pool .. ".max", msg = "must be at least min" } }) end
    end
  end
  local kit = testing.new { pools = { "web" } }
  eq(kit:load_error(plugin, { web = { min = 5, max = 2 } }, "mine"), 'plugin "mine": web.max: must be at least min')
  eq(testing.new():load_error(plugin, { web = { mxa = 2, min = "x" } }, "mine"),
    'plugin "mine": web: unknown key "mxa" (did you mean "max"?)\n'
    .. 'plugin "mine": web.min: expected an integer from 0 to 9, got "x"')
  eq(testing.new():load_error(plugin, { web = { min = 1, max = 2 } }, "mine"), nil, "good options load")
  local ok, e = pcall(options.invalid, "k", "bad %d", 3)
  eq({ ok, e.key, e.msg, getmetatable(e) == options.Invalid }, { false, "k", "bad 3", true }, "options.invalid")
end)

testing.done()
