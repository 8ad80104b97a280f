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

-- Called by corrald's C side in a new worker.
function corral._new_worker(pool, id, generation, pid)
  local w = setmetatable({ id = id, generation = generation, pid = pid, pool = pool }, Worker)
  corral.worker = w
  return w
end

return corral
