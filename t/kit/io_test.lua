-- The kit's fakes of the network I/O, plugin commands and waiting
-- connections, exercised as a plugin uses them.
-- Run from the top of the source tree: LUA_PATH="lua/?.lua;;" luajit t/kit/io_test.lua
local testing = require "corral.testing"
local test, eq, raises = testing.test, testing.eq, testing.raises

local function plugin()
  local n = 0
  corral.command("count", { args = { by = "integer?" }, read_only = false, help = "add" }, function(args)
    n = n + (args.by or 1)
    return { n = n }
  end)
  corral.command("peek", { read_only = true }, function() return "n=" .. tostring(n) end)
  corral.on("config", function()
    corral.http_serve("127.0.0.1:0", function(req) return 200, "hi " .. req.path end)
    corral.http_request("http://127.0.0.1:8080/ping", function(res, why)
      corral.info("ping:", res and res.status or why)
    end)
    corral.on_connection("web", "http", function(ev) corral.scale(ev.pool, 1) end)
  end)
end

test("a server answers the kit's requests", function()
  local kit = testing.new { pools = { { name = "web", workers = 0, listen = { "http" } } } }
  kit:load(plugin, {}, "io")
  kit:start()
  local id = kit.calls[#kit.calls - 2].ret[1]
  local status, body = kit:http(id, { path = "/x" })
  eq({ status, body }, { 200, "hi /x" })
end)

test("requests end when the kit says", function()
  local kit = testing.new { pools = { { name = "web", workers = 0, listen = { "http" } } } }
  kit:load(plugin, {}, "io")
  kit:start()
  local id = next(kit:requests())
  kit:respond(id, { status = 204, body = "" })
  assert(kit:logged("info", "ping: 204"), "the callback ran")
  eq(next(kit:requests()), nil, "none left")
end)

test("a waiting connection starts a worker", function()
  local kit = testing.new { pools = { { name = "web", workers = 0, listen = { "http" } } } }
  kit:load(plugin, {}, "io")
  kit:start()
  eq(kit:connect("web", "http"), 1, "one handler ran")
  assert(kit:called("scale", "web", 1), "scaled to 1")
end)

test("commands: answers, bad arguments, read-only clients", function()
  local kit = testing.new { pools = { { name = "web", workers = 0, listen = { "http" } } } }
  kit:load(plugin, {}, "io")
  kit:start()
  eq(kit:command("io", "count", { by = 2 }).result, { n = 2 })
  eq(kit:command("io", "peek", {}, true).result, "n=2")
  eq(kit:command("io", "count", { by = "x" }).code, "bad-request")
  eq(kit:command("io", "count", {}, true).code, "refused")
  eq(kit:command("io", "nope", {}).code, "not-found")
end)

testing.done()
