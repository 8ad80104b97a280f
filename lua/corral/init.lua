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

function corral.scale(pool, n)
  need_phase("scale", "plugin")
  pool_arg("scale", pool)
  if type(n) ~= "number" or n % 1 ~= 0 or n < 0 or n > 10000 then
    error("corral.scale: expected a number of workers from 0 to 10000", 2)
  end
  return core.scale(pool, n)
end

-- corral.restart(pool [, worker_id [, all_at_once]])
function corral.restart(pool, id, all_at_once)
  need_phase("restart", "plugin")
  pool_arg("restart", pool)
  return core.restart(pool, id or 0, all_at_once)
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

-- Called by corrald's C side in a new worker.
function corral._new_worker(pool, id, generation, pid)
  local w = setmetatable({ id = id, generation = generation, pid = pid, pool = pool }, Worker)
  corral.worker = w
  return w
end

return corral
