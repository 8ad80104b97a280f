-- corral: the Lua API that configs, hooks and Lua worker bodies use.
--
-- The same module is loaded in corrald (where the config runs) and is
-- inherited by every prototype and worker forked from it. What a function
-- may do depends on where it runs, its phase:
--   "config"   the config file, inside corrald
--   "prefork"  a pool's prefork hook, in the prototype
--   "setup"    a worker's setup hook, in the worker
--   "start"    a worker's body, in the worker
-- Functions that only make sense in some phases say so in their error.
local core = require "corral.core"

local corral = { version = core.version }

local function need_phase(fname, ...)
  local phase = core.phase()
  for i = 1, select("#", ...) do
    if phase == select(i, ...) then return phase end
  end
  error(("corral.%s: not available in %s (only in %s)"):format(
    fname, phase, table.concat({ ... }, ", ")), 3)
end

-- The phase the caller runs in: "config", "prefork", "setup" or "start".
function corral.phase()
  return core.phase()
end

-- Declares this worker ready (for pools with ready = "lua").
function corral.ready()
  need_phase("ready", "setup", "start")
  core.ready()
end

-- Load reports: this worker is busy, or idle (shown by status, read by
-- plugins); request_done([n]) adds n (default 1) requests served. Each
-- call is one message to corrald.
function corral.busy()
  need_phase("busy", "setup", "start")
  core.load(true)
end

function corral.idle()
  need_phase("idle", "setup", "start")
  core.load(false)
end

function corral.request_done(n)
  need_phase("request_done", "setup", "start")
  if n == nil then n = 1 end
  if type(n) ~= "number" or n ~= n or n < 0 or n > 4294967295 or n % 1 ~= 0 then
    error("corral.request_done: expected a whole number of requests from 0 to 4294967295", 2)
  end
  if n > 0 then core.requests(n) end
end

-- True once corrald has asked this worker to stop (its stop signal came).
function corral.stopping()
  need_phase("stopping", "setup", "start")
  return core.stopping()
end

-- Sleeps without spinning. In a worker it returns early, with true, when
-- the worker is asked to stop; otherwise it returns false.
function corral.sleep(seconds)
  need_phase("sleep", "prefork", "setup", "start")
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
    error("corral.sleep: expected a number of seconds >= 0", 2)
  end
  return core.sleep(seconds)
end

-- Sets (or, with nil, removes) a variable in this worker's environment,
-- for os.getenv and for a program it execs.
function corral.setenv(name, value)
  need_phase("setenv", "setup", "start")
  if type(name) ~= "string" or not name:match("^[A-Za-z_][A-Za-z0-9_]*$") then
    error(("corral.setenv: invalid variable name %s"):format(tostring(name)), 2)
  end
  if value ~= nil and type(value) ~= "string" and type(value) ~= "number" then
    error("corral.setenv: expected a string, a number or nil", 2)
  end
  core.setenv(name, value ~= nil and tostring(value) or nil)
end

-- The pid of the calling process (prototype or worker).
function corral.pid()
  return core.getpid()
end

-- Seconds on a monotonic clock, with sub-millisecond precision.
function corral.now()
  return core.now()
end

local function concat(...)
  local out = {}
  for i = 1, select("#", ...) do out[i] = tostring((select(i, ...))) end
  return table.concat(out, " ")
end

-- corral.log(level, ...) writes one line to corrald's log, with the pool
-- and worker it comes from. Levels: debug, info, notice, warn, error.
local levels = { debug = true, info = true, notice = true, warn = true, error = true }
function corral.log(level, ...)
  if not levels[level] then
    error(("corral.log: unknown level %s (debug, info, notice, warn, error)"):format(tostring(level)), 2)
  end
  core.log(level, concat(...))
end
for level in pairs(levels) do
  corral[level] = function(...) core.log(level, concat(...)) end
end

-- The worker object that setup(worker) and start(worker) receive.
local Worker = {}
Worker.__index = Worker

function Worker:stopping() return corral.stopping() end
function Worker:ready() return corral.ready() end
function Worker:busy() return corral.busy() end
function Worker:idle() return corral.idle() end
function Worker:request_done(n) return corral.request_done(n) end
function Worker:sleep(seconds) return corral.sleep(seconds) end
function Worker:log(level, ...) return corral.log(level, ...) end

-- Replaces the worker with the pool's command, or with argv if given; the
-- environment is the pool's. Does not return (errors if exec fails).
function Worker:exec(argv)
  need_phase("exec", "setup", "start")
  argv = argv or self.pool.command
  if type(argv) ~= "table" or #argv == 0 then
    error("worker:exec: no command (give argv, or set the pool's command)", 2)
  end
  local list = {}
  for i, a in ipairs(argv) do
    if type(a) ~= "string" and type(a) ~= "number" then
      error(("worker:exec: argv[%d] is a %s, not a string"):format(i, type(a)), 2)
    end
    list[i] = tostring(a)
  end
  local ok, err = core.exec(list)
  error(("worker:exec: unable to exec %q: %s"):format(list[1], err), 2)
end

-- ---- plugins: Lua inside corrald at run time --------------------------------
--
-- Handlers run inside corrald ("plugin" phase) with a time budget; an
-- error in one is logged with the plugin's name and changes nothing else.

local handlers = {}        -- event -> { { fn = f, owner = name }, ... }
local callbacks = {}       -- timer / PSI trigger id -> { fn = f, owner = name, every = bool }
corral._owner = "config"   -- who is registering: "config" or "plugin NAME"

-- worker_exited and oom carry `reason` (crashed, exited, oom, watchdog,
-- requested, reload, stopping; recycled is for plugins): see plugins.md.
local events = {
  config = true, stop = true, reload = true,
  pool_ready = true, pool_failed = true, frozen = true, thawed = true,
  worker_started = true, worker_ready = true, worker_exited = true, oom = true,
}
corral._events = events	-- read by corral.testing, whose fake events follow it

-- corral.on(event, function(ev) ... end): call fn on a supervisor event.
function corral.on(event, fn)
  need_phase("on", "config")
  if not events[event] then
    local names = {}
    for k in pairs(events) do names[#names + 1] = k end
    table.sort(names)
    error(("corral.on: unknown event %s (%s)"):format(tostring(event), table.concat(names, ", ")), 2)
  end
  if type(fn) ~= "function" then error("corral.on: expected a function", 2) end
  local list = handlers[event] or {}
  handlers[event] = list
  list[#list + 1] = { fn = fn, owner = corral._owner }
end

-- Owners whose handler overran its budget where the budget could not stop
-- it (a system call that blocked, say): none of their handlers runs again
-- until a reload makes a new state.
local disabled = {}

local function run(owner, what, fn, ...)
  if disabled[owner] then return end
  core.renew_budget()
  local previous = corral._owner
  corral._owner = owner	-- timers it starts are its own
  local ok, err = xpcall(fn, debug.traceback, ...)
  corral._owner = previous
  local used, budget = core.budget_used()
  if used > 2 * budget then
    disabled[owner] = true
    core.log("error", ("%s: %s handler ran %.1fs, over its %gs budget, in code that cannot be stopped "
      .. "(a blocking system call?): its handlers are off until the next reload"):format(owner, what, used, budget))
  end
  if not ok then
    core.log("error", ("%s: %s handler failed: %s"):format(owner, what, tostring(err):gsub("\n.*", "")))
    collectgarbage()	-- what it built, up to the memory cap, goes now
  end
end

-- Called by corrald for every event.
function corral._emit(event, ev)
  for _, h in ipairs(handlers[event] or {}) do run(h.owner, event, h.fn, ev) end
end

-- Called by corrald when a timer or a PSI trigger fires.
function corral._fire(id, ...)
  local c = callbacks[id]
  if not c then return end
  if not c.every then callbacks[id] = nil end
  run(c.owner, c.what, c.fn, ...)
end

local function add_callback(id, fn, what, every)
  callbacks[id] = { fn = fn, owner = corral._owner, what = what, every = every }
  return id
end

local function check_timer(fname, s, fn)
  if type(s) ~= "number" or s ~= s or s < 0.001 or s == math.huge then
    error(("corral.%s: expected a number of seconds >= 0.001"):format(fname), 3)
  end
  if type(fn) ~= "function" then error(("corral.%s: expected a function"):format(fname), 3) end
end

-- corral.after(seconds, fn) / corral.every(seconds, fn): timers in corrald.
function corral.after(seconds, fn)
  need_phase("after", "plugin")
  check_timer("after", seconds, fn)
  return add_callback(core.timer(seconds, false), fn, "timer", false)
end

function corral.every(seconds, fn)
  need_phase("every", "plugin")
  check_timer("every", seconds, fn)
  return add_callback(core.timer(seconds, true), fn, "timer", true)
end

-- Stops a timer or a PSI trigger.
function corral.cancel(id)
  need_phase("cancel", "plugin")
  callbacks[id] = nil
  core.cancel(id)
end

-- Network I/O (plugio.c): nothing here waits; results come to callbacks,
-- which run like timers, under the plugin budget.

-- corral.http_serve(address, fn) -> id: an HTTP server on "HOST:PORT"
-- (numeric; port 0: any, see corral.http_address) or "unix:/PATH";
-- fn(req) -> status, body [, content_type] for each request, req =
-- { method, path, query, body, peer }. A handler that fails or gives no
-- status answers 500. corral.cancel(id) stops it.
function corral.http_serve(address, fn)
  need_phase("http_serve", "plugin")
  if type(address) ~= "string" then error("corral.http_serve: expected an address string", 2) end
  if type(fn) ~= "function" then error("corral.http_serve: expected a function", 2) end
  local id, err = core.http_serve(address)
  if not id then error("corral.http_serve: " .. err, 2) end
  return add_callback(id, function(req)
    local status, body, ctype = fn(req)
    if status == nil then error("the handler returned no status", 0) end
    if type(status) ~= "number" then error("the handler's status must be a number", 0) end
    if body ~= nil and type(body) ~= "string" then error("the handler's body must be a string", 0) end
    core.http_reply(status, body, ctype)
  end, "HTTP server", true)
end

-- corrald's own figures: { rss_bytes, open_fds, max_fds }.
function corral.corrald_stats()
  need_phase("corrald_stats", "plugin")
  return core.self_stats()
end

-- The address a server listens on ("127.0.0.1:40123").
function corral.http_address(id)
  need_phase("http_address", "plugin")
  return core.http_address(id)
end

local function check_timeout(fname, t)
  if t == nil then return 10 end
  if type(t) ~= "number" or t ~= t or t < 0.001 or t > 300 then
    error(("corral.%s: timeout: expected seconds, 0.001 to 300"):format(fname), 3)
  end
  return t
end

-- corral.http_request({ url, method = "GET", body, headers = { Name = value },
-- timeout = 10 }, fn) -> id; fn(res) with res = { status, body,
-- content_type, seconds }, or fn(nil, why) when it failed or timed out.
function corral.http_request(opts, fn)
  need_phase("http_request", "plugin")
  if type(opts) == "string" then opts = { url = opts } end
  if type(opts) ~= "table" or type(opts.url) ~= "string" then
    error("corral.http_request: expected { url = ..., ... } or a URL", 2)
  end
  if type(fn) ~= "function" then error("corral.http_request: expected a function", 2) end
  local method = opts.method or "GET"
  if type(method) ~= "string" or not method:match("^%u+$") then
    error("corral.http_request: method: expected a word in capitals (GET, POST, ...)", 2)
  end
  if opts.body ~= nil and type(opts.body) ~= "string" then error("corral.http_request: body: expected a string", 2) end
  local headers = {}
  for k, v in pairs(opts.headers or {}) do
    if type(k) ~= "string" or not k:match("^[%w-]+$") or (type(v) ~= "string" and type(v) ~= "number")
      or tostring(v):find("[\r\n]") then
      error("corral.http_request: headers: expected Name = value", 2)
    end
    headers[#headers + 1] = k .. ": " .. tostring(v)
  end
  local id, err = core.http_request(method, opts.url, opts.body, headers, check_timeout("http_request", opts.timeout), false)
  if not id then error("corral.http_request: " .. err, 2) end
  return add_callback(id, fn, "HTTP request", false)
end

-- corral.tcp_connect(host, port, timeout, fn) -> id; fn(true, seconds)
-- once connected (the connection is closed at once), fn(false, why).
function corral.tcp_connect(host, port, timeout, fn)
  need_phase("tcp_connect", "plugin")
  if type(host) ~= "string" or host:find("[%s/@]") then error("corral.tcp_connect: expected a host", 2) end
  if type(port) ~= "number" or port % 1 ~= 0 or port < 1 or port > 65535 then
    error("corral.tcp_connect: expected a port number", 2)
  end
  if type(fn) ~= "function" then error("corral.tcp_connect: expected a function", 2) end
  local url = ("telnet://%s:%d"):format(host:find(":") and "[" .. host .. "]" or host, port)
  local id, err = core.http_request("GET", url, nil, {}, check_timeout("tcp_connect", timeout), true)
  if not id then error("corral.tcp_connect: " .. err, 2) end
  return add_callback(id, function(res, why)
    if res then return fn(true, res.seconds) end
    return fn(false, why)
  end, "TCP connect", false)
end

local function pool_arg(fname, pool)
  if type(pool) ~= "string" then error(("corral.%s: expected a pool name"):format(fname), 3) end
end

-- corral.freeze(pool) / corral.thaw(pool): cgroup.freeze; the frozen and
-- thawed events follow once the kernel confirms. true, or nil and why.
function corral.freeze(pool)
  need_phase("freeze", "plugin")
  pool_arg("freeze", pool)
  return core.freeze(pool, true)
end

function corral.thaw(pool)
  need_phase("thaw", "plugin")
  pool_arg("thaw", pool)
  return core.freeze(pool, false)
end

-- The control commands, as corralctl has them (see doc/control.md).
-- Each returns a true value, or nil and why ("no such pool", ...).

-- corral.status([pool]) -> the pools as corralctl status --json shows them
function corral.status(pool)
  need_phase("status", "plugin")
  local text, err = core.status_json(pool)
  if not text then return nil, err end
  return require("corral.json").decode(text)
end

-- corral.scale(pool, n [, { keep = true }]): keep, the target outlives
-- reloads that leave the pool's configured workers as they were
function corral.scale(pool, n, how)
  need_phase("scale", "plugin")
  pool_arg("scale", pool)
  if type(n) ~= "number" or n % 1 ~= 0 or n < 0 or n > 10000 then
    error("corral.scale: expected a number of workers from 0 to 10000", 2)
  end
  local keep = false
  if how ~= nil then
    if type(how) ~= "table" then error("corral.scale: expected a table of options ({ keep = true }) as the third argument", 2) end
    for k in pairs(how) do
      if k ~= "keep" then error(("corral.scale: unknown option %s (keep)"):format(tostring(k)), 2) end
    end
    keep = how.keep and true or false
  end
  return core.scale(pool, n, keep)
end

local restart_keys = { all_at_once = true, reason = true, rolling = true }
local restart_reasons = { requested = true, recycled = true, unhealthy = true }

-- corral.restart(pool [, worker_id [, all_at_once | { all_at_once = bool,
-- rolling = bool, reason = "requested" | "recycled" | "unhealthy" }]])
function corral.restart(pool, id, how)
  need_phase("restart", "plugin")
  pool_arg("restart", pool)
  local all, rolling, reason = how, nil, nil
  if type(how) == "table" then
    for k in pairs(how) do
      if not restart_keys[k] then
        error(("corral.restart: unknown option %s (all_at_once, reason, rolling)"):format(tostring(k)), 2)
      end
    end
    all, rolling, reason = how.all_at_once, how.rolling, how.reason
    if reason ~= nil and not restart_reasons[reason] then
      error(("corral.restart: reason must be requested, recycled or unhealthy, not %s"):format(tostring(reason)), 2)
    end
    if rolling and (id == nil or id == 0) then
      error("corral.restart: rolling replaces one worker: give its id", 2)
    end
    if all and id ~= nil and id ~= 0 then
      error("corral.restart: all_at_once is for a whole pool, not worker " .. tostring(id), 2)
    end
  end
  return core.restart(pool, id or 0, all, reason, rolling)
end

-- corral.note(pool, worker_id | nil, key, value | nil): a line for status
local note_key = "^[a-z][a-z0-9_-]*$"
function corral.note(pool, id, key, value)
  need_phase("note", "plugin")
  pool_arg("note", pool)
  if id ~= nil and (type(id) ~= "number" or id < 1 or id % 1 ~= 0) then
    error("corral.note: expected a worker id, or nil for the pool", 2)
  end
  if type(key) ~= "string" or #key > 31 or not key:find(note_key) then
    error("corral.note: expected a key: a lowercase letter, then lowercase letters, digits, _ and -, at most 31 bytes", 2)
  end
  if type(value) == "number" or type(value) == "boolean" then value = tostring(value) end
  if value ~= nil and type(value) ~= "string" then
    error("corral.note: the value must be a string, a number, a boolean or nil", 2)
  end
  if value and (#value > 200 or value:find("%z")) then
    error("corral.note: the value must be at most 200 bytes, without NUL", 2)
  end
  local ok, err = core.note(pool, id or 0, key, value)
  if not ok then return nil, err end
  return true
end

function corral.stop_pool(pool)
  need_phase("stop_pool", "plugin")
  pool_arg("stop_pool", pool)
  return core.pool_stop(pool)
end

function corral.start_pool(pool)
  need_phase("start_pool", "plugin")
  pool_arg("start_pool", pool)
  return core.pool_start(pool)
end

-- corral.signal(pool, worker_id | nil, "HUP" | 1) -> number signalled
function corral.signal(pool, id, sig)
  need_phase("signal", "plugin")
  pool_arg("signal", pool)
  local n = core.signum(sig)
  if not n then error("corral.signal: expected a signal name or number", 2) end
  return core.signal(pool, id or 0, n)
end

-- Reloads the config once the running handler has returned (the reload
-- replaces the Lua state the handler runs in).
function corral.reload()
  need_phase("reload", "plugin")
  core.reload()
  return true
end

-- The running pools' names.
function corral.pools()
  need_phase("pools", "plugin")
  return core.pools()
end

-- corral.stats(pool [, worker_id]) -> { memory_current, memory_peak,
-- cpu_usage_usec, cpu_user_usec, cpu_system_usec, pids_current,
-- oom_kills } from the cgroup; fields the kernel does not offer are nil.
-- And the workers' load reports: a pool's busy, idle, requests,
-- last_request_ago; a worker's load ("busy", "idle"), load_for, requests,
-- last_request_ago (nil: not reported).
function corral.stats(pool, id)
  need_phase("stats", "plugin")
  pool_arg("stats", pool)
  return core.stats(pool, id)
end

local resources = { cpu = true, memory = true, io = true }

-- corral.pressure(pool, "cpu" | "memory" | "io") -> { some = { avg10, avg60,
-- avg300, total }, full = { ... } } from the pool's PSI file.
function corral.pressure(pool, resource)
  need_phase("pressure", "plugin")
  pool_arg("pressure", pool)
  if not resources[resource] then error("corral.pressure: resource must be cpu, memory or io", 2) end
  local text, err = core.read_pressure(pool, resource)
  if not text then return nil, err end
  local out = {}
  for kind, rest in text:gmatch("(%a+) ([^\n]*)") do
    local t = {}
    for k, v in rest:gmatch("(%w+)=([%d.]+)") do t[k] = tonumber(v) end
    out[kind] = t
  end
  return out
end

-- corral.psi_trigger(pool, resource, "some 150000 2000000", fn): fn() when
-- the pool stalls on resource for 150 ms within a 2 s window (the kernel's
-- PSI trigger, at most once per window; without CAP_SYS_RESOURCE the
-- kernel wants windows of whole multiples of 2 s). Returns an id for
-- corral.cancel.
function corral.psi_trigger(pool, resource, spec, fn)
  need_phase("psi_trigger", "plugin")
  pool_arg("psi_trigger", pool)
  if not resources[resource] then error("corral.psi_trigger: resource must be cpu, memory or io", 2) end
  if type(spec) ~= "string" or not spec:match("^(%a+) (%d+) (%d+)$") then
    error("corral.psi_trigger: expected \"some|full STALL_US WINDOW_US\"", 2)
  end
  if type(fn) ~= "function" then error("corral.psi_trigger: expected a function", 2) end
  local id, err = core.psi_trigger(pool, resource, spec)
  if not id then return nil, err end
  return add_callback(id, fn, "psi_trigger", true)
end

-- corral.on_connection(pool, name, fn [, pause]): fn({ pool =, name = })
-- when a connection waits, not yet accepted, on the pool's listen socket
-- NAME (what on-demand start needs: scale up from 0). corrald does not
-- accept it. The socket stays readable while the connection waits, so
-- after each call the watch rests `pause` seconds (default 1) before it
-- looks again. Returns an id for corral.cancel.
function corral.on_connection(pool, name, fn, pause)
  need_phase("on_connection", "plugin")
  pool_arg("on_connection", pool)
  if type(name) ~= "string" then error("corral.on_connection: expected the name of a listen socket", 2) end
  if type(fn) ~= "function" then error("corral.on_connection: expected a function", 2) end
  pause = pause == nil and 1 or pause
  if type(pause) ~= "number" or pause ~= pause or pause < 0.01 or pause > 86400 then
    error("corral.on_connection: pause must be a number of seconds from 0.01 to 86400", 2)
  end
  local id, err = core.listen_watch(pool, name, pause)
  if not id then return nil, err end
  return add_callback(id, function() return fn({ pool = pool, name = name }) end, "on_connection", true)
end

-- ---- plugin commands: corralctl plugin NAME CMD [ARG=VALUE ...] ------------
--
-- corral.command(name, { args = { ARG = "TYPE" | "TYPE?" }, read_only = bool,
-- help = "..." }, fn): fn(args) runs in the plugin phase, with the plugin
-- budget, when a control client asks; what it returns (a table, a string
-- or nil) is the answer's "result". See doc/plugins.md.

local commands = {}        -- plugin name -> command name -> spec
local arg_types = { string = true, number = true, integer = true, boolean = true }
local command_keys = { args = true, read_only = true, help = true }
local name_pattern = "^[a-z][a-z0-9_-]*$"

function corral.command(name, spec, fn)
  need_phase("command", "config")
  if type(name) ~= "string" or #name > 31 or not name:match(name_pattern) then
    error(("corral.command: expected a command name (a lowercase letter, then letters, digits, _ and -; "
      .. "at most 31), got %s"):format(type(name) == "string" and ("%q"):format(name) or type(name)), 2)
  end
  local what = ("corral.command %q"):format(name)
  if type(spec) ~= "table" then error(what .. ": expected a table { args = ..., read_only = ..., help = ... }", 2) end
  for k in pairs(spec) do
    if not command_keys[k] then error(("%s: unknown key %s (args, read_only, help)"):format(what, tostring(k)), 2) end
  end
  if spec.read_only ~= nil and type(spec.read_only) ~= "boolean" then error(what .. ": read_only must be true or false", 2) end
  if spec.help ~= nil and type(spec.help) ~= "string" then error(what .. ": help must be a string", 2) end
  if spec.args ~= nil and type(spec.args) ~= "table" then error(what .. ": args must be a table { NAME = \"TYPE\" }", 2) end
  local args, count = {}, 0
  for k, v in pairs(spec.args or {}) do
    if type(k) ~= "string" or #k > 31 or not k:match(name_pattern) then
      error(("%s: argument name %s: a lowercase letter, then letters, digits, _ and -; at most 31"):format(what, tostring(k)), 2)
    end
    local t, optional = tostring(v):match("^(%a+)(%??)$")
    if type(v) ~= "string" or not arg_types[t] then
      error(("%s: argument %s: type must be string, number, integer or boolean (with ? if optional), not %s"):format(
        what, k, tostring(v)), 2)
    end
    args[k] = { type = t, optional = optional == "?" }
    count = count + 1
  end
  if count > 16 then error(what .. ": at most 16 arguments", 2) end
  if type(fn) ~= "function" then error(what .. ": expected a function", 2) end
  local plugin = corral._owner:match("^plugin (.+)$") or corral._owner
  local list = commands[plugin] or {}
  commands[plugin] = list
  if list[name] then error(("%s: registered twice by %s"):format(what, corral._owner), 2) end
  list[name] = { args = args, read_only = spec.read_only or false, help = spec.help or "", fn = fn, owner = corral._owner }
end

-- "a=string b=integer?" for listings
local function args_usage(args)
  local names, out = {}, {}
  for k in pairs(args) do names[#names + 1] = k end
  table.sort(names)
  for i, k in ipairs(names) do
    out[i] = ("%s=%s%s"):format(k, args[k].type, args[k].optional and "?" or "")
  end
  return table.concat(out, " ")
end

local sorted_keys = require("corral.options").sorted_keys

-- answers as corrald's own are written: ok and code first
local function answer(members)
  local json = require "corral.json"
  local out = { '{"ok":true,"code":"ok"' }
  for i = 1, #members, 2 do
    if members[i + 1] ~= nil then out[#out + 1] = ("%s:%s"):format(json.encode(members[i]), json.encode(members[i + 1])) end
  end
  return table.concat(out, ",") .. "}"
end

local function failure(code, fmt, ...)
  local json = require "corral.json"
  return ('{"ok":false,"code":%s,"error":%s}'):format(json.encode(code), json.encode(fmt:format(...)))
end

local truth = { ["true"] = true, yes = true, on = true, ["1"] = true, ["false"] = false, no = false, off = false, ["0"] = false }

-- args from the client, by the command's schema: the table fn gets, or
-- nil and why. Values may come as strings (corralctl's ARG=VALUE).
local function check_args(c, given)
  local out = {}
  for k, v in pairs(given) do
    local a = c.args[k]
    if not a then
      local names = sorted_keys(c.args)
      return nil, ("unknown argument %q (%s)"):format(k, #names > 0 and table.concat(names, ", ") or "it takes none")
    end
    local x
    if a.type == "string" then
      x = (type(v) == "string" or type(v) == "number") and tostring(v) or nil
    elseif a.type == "boolean" then
      if type(v) == "boolean" then x = v elseif type(v) == "string" then x = truth[v:lower()] end
    else
      x = tonumber(v)
      if x and (x ~= x or x == math.huge or x == -math.huge) then x = nil end
      if x and a.type == "integer" and x % 1 ~= 0 then x = nil end
    end
    if x == nil then return nil, ("argument %s: expected %s %s, got %s"):format(k,
      a.type == "integer" and "an" or "a", a.type, type(v) == "string" and ("%q"):format(v) or tostring(v)) end
    out[k] = x
  end
  for _, k in ipairs(sorted_keys(c.args)) do
    if out[k] == nil and not c.args[k].optional then return nil, ("missing argument %s (%s)"):format(k, c.args[k].type) end
  end
  return out
end

-- What corralctl prints of a result: a string as it is; a table as
-- "key: value" lines (tables inside as JSON).
local function result_text(r)
  local json = require "corral.json"
  if r == nil then return "" end
  if type(r) ~= "table" then return tostring(r) end
  local lines = {}
  for _, k in ipairs(sorted_keys(r)) do
    local v = r[k]
    lines[#lines + 1] = ("%s: %s"):format(tostring(k), type(v) == "table" and json.encode(v) or tostring(v))
  end
  return table.concat(lines, "\n")
end

local function list_commands(want_text)
  local json = require "corral.json"
  local list, lines = setmetatable({}, json.array), {}
  for _, p in ipairs(sorted_keys(commands)) do
    for _, n in ipairs(sorted_keys(commands[p])) do
      local c = commands[p][n]
      local args = {}
      for k, a in pairs(c.args) do args[k] = a.type .. (a.optional and "?" or "") end
      list[#list + 1] = { plugin = p, name = n, read_only = c.read_only, help = c.help, args = args }
      lines[#lines + 1] = ("%s %s%s%s%s%s"):format(p, n, next(c.args) and " " or "", args_usage(c.args),
        c.read_only and "  (read-only)" or "", c.help ~= "" and "  -- " .. c.help or "")
    end
  end
  return answer({ "commands", list, "text", want_text and table.concat(lines, "\n") or nil })
end

-- Called by corrald for a control request: plugin nil lists the
-- commands. refused_uid: the client may only read (its uid, for the
-- message). Returns the answer, JSON text.
function corral._command(plugin, name, args_text, want_text, refused_uid)
  local json = require "corral.json"
  if plugin == nil then return list_commands(want_text) end
  local cmds = commands[plugin]
  if not cmds then return failure("not-found", "no plugin %s with commands (corralctl plugins lists them)", plugin) end
  local c = cmds[name]
  if not c then
    return failure("not-found", "plugin %s has no command %s (it has: %s)", plugin, name, table.concat(sorted_keys(cmds), ", "))
  end
  if refused_uid and not c.read_only then
    return failure("refused", "permission denied: uid %d, of settings.monitor_group, may only run read-only "
      .. "commands, and %s %s changes things", refused_uid, plugin, name)
  end
  local ok, given = pcall(json.decode, args_text or "{}")
  if not ok or type(given) ~= "table" then return failure("bad-request", "%s %s: args must be an object", plugin, name) end
  local args, why = check_args(c, given)
  if not args then return failure("bad-request", "%s %s: %s", plugin, name, why) end
  if disabled[c.owner] then
    return failure("failed", "%s: its handlers are off until the next reload (one ran over its budget)", c.owner)
  end
  core.renew_budget()
  local previous = corral._owner
  corral._owner = c.owner
  local result
  ok, result = xpcall(c.fn, debug.traceback, args)
  corral._owner = previous
  local used, budget = core.budget_used()
  core.renew_budget()	-- what is left to do here is corral's, not the plugin's
  if used > 2 * budget then
    disabled[c.owner] = true
    core.log("error", ("%s: command %s ran %.1fs, over its %gs budget, in code that cannot be stopped "
      .. "(a blocking system call?): its handlers are off until the next reload"):format(c.owner, name, used, budget))
  end
  if not ok then
    local msg = tostring(result):gsub("\n.*", "")
    core.log("error", ("%s: command %s failed: %s"):format(c.owner, name, msg))
    collectgarbage()
    return failure("failed", "%s %s failed: %s", plugin, name, msg)
  end
  if result ~= nil and type(result) ~= "table" and type(result) ~= "string" then
    return failure("failed", "%s %s returned a %s, not a table or a string", plugin, name, type(result))
  end
  local text
  ok, text = pcall(answer, { "result", result == nil and {} or result, "text", want_text and result_text(result) or nil })
  if not ok then return failure("failed", "%s %s returned what JSON cannot hold: %s", plugin, name, text) end
  return text
end

-- Called by corrald's C side in a new worker.
function corral._new_worker(pool, id, generation, pid)
  local w = setmetatable({ id = id, generation = generation, pid = pid, pool = pool }, Worker)
  corral.worker = w
  return w
end

return corral
