-- contrib/examples/lua-workers.lua: workers written in Lua, and a command
-- pool prepared by a Lua setup hook.
--
-- It needs nothing but /bin/sh and coreutils.  Two pools:
--   primes   4 Lua workers.  The prototype builds a table of primes once
--            (prefork); every worker shares it, copy-on-write, and does
--            "jobs" with it until it is asked to stop (start).
--   shell    2 workers running a shell loop, each given variables of its
--            own by a setup hook before the command is executed.
--
-- Run it from the top of the source tree:
--   build/corrald -c contrib/examples/lua-workers.lua
-- Ctrl-C stops it.  The hooks are described in doc/lua-api.md; every pool
-- key in corral.lua(5) and doc/config.md.

settings { log_level = "info" }

-- Keep the values the hooks use in locals: a hook's upvalues are part of
-- its pool's definition, so a reload notices when one changes.  (A hook
-- that reads a global would not be compared on that global's value.)
local LIMIT = 2000000     -- the table of primes covers 1 .. LIMIT
local BATCH = 5000        -- numbers tested per job

pool "primes" {
  workers = 4,

  -- Runs once, in the pool's prototype, before it forks any worker.  What
  -- it builds is shared by every worker until one writes to it.  A table
  -- of numbers (its array part) stays shared even when a worker's garbage
  -- collector runs: LuaJIT does not mark numbers one by one.
  prefork = function(pool)
    local t0 = corral.now()
    local sieve = {}              -- sieve[n] is 1 when n is prime, else 0
    for n = 1, LIMIT do sieve[n] = 1 end
    sieve[1] = 0
    for p = 2, math.floor(math.sqrt(LIMIT)) do
      if sieve[p] == 1 then
        for m = p * p, LIMIT, p do sieve[m] = 0 end
      end
    end
    local count = 0
    for n = 1, LIMIT do count = count + sieve[n] end
    corral.info(("prefork: %d primes up to %d in %.0f ms"):format(
      count, LIMIT, (corral.now() - t0) * 1000))
    -- what prefork returns is pool.state (worker.pool.state in workers)
    return { sieve = sieve, limit = LIMIT, count = count }
  end,

  -- Runs in each new worker, before start.  Workers are forked from the
  -- same prototype, so they would all draw the same "random" numbers:
  -- reseed per worker.
  setup = function(worker)
    math.randomseed(corral.pid() * 1000 + worker.id)
  end,

  -- The worker's body.  Returning ends the worker with status 0; an error
  -- ends it with status 1 and is logged with a traceback.
  start = function(worker)
    local state = worker.pool.state
    local sieve, limit = state.sieve, state.limit
    -- ready = "lua" below: the worker counts as ready only from here on
    corral.ready()
    local jobs, tested, found = 0, 0, 0
    repeat
      -- one job: test BATCH random numbers against the shared table
      for _ = 1, BATCH do
        if sieve[math.random(limit)] == 1 then found = found + 1 end
      end
      jobs, tested = jobs + 1, tested + BATCH
      if jobs % 5 == 0 then
        worker:log("info", ("%d jobs, %d of %d numbers prime (%.2f%%)"):format(
          jobs, found, tested, 100 * found / tested))
      end
      -- sleep returns true, at once, when corrald asks the worker to stop
    until worker:sleep(0.5)
    worker:log("info", ("asked to stop after %d jobs, bye"):format(jobs))
  end,

  ready = "lua",

  -- The stop signal never interrupts Lua code: start sees it through
  -- worker:sleep() and worker:stopping().  A worker that has not returned
  -- 5s after it is asked to stop is killed.
  stop_timeout = "5s",

  -- A prototype whose prefork has not returned after this is killed and
  -- retried with the pool's backoff.
  prefork_timeout = "20s",
}

-- The shell loop: says hello every few seconds until TERM (see hello.lua).
local shell_script = [[
trap 'kill "$pid" 2>/dev/null; echo "shell worker $CORRAL_WORKER ($WORKER_NAME): got TERM, bye" >&2; exit 0' TERM
while :; do
  echo "shell worker $CORRAL_WORKER ($WORKER_NAME): lucky number $LUCKY" >&2
  sleep 3 & pid=$!
  wait "$pid"
done
]]

local names = { "ada", "brian", "carol", "dennis", "edsger" }

pool "shell" {
  command = { "/bin/sh", "-c", shell_script, "shell" },
  workers = 2,
  directory = "/tmp",

  -- With a command and no start, setup runs first, in the worker, with
  -- the pool's user, directory and environment; then the command is
  -- executed with the environment setup left behind.
  setup = function(worker)
    math.randomseed(corral.pid())
    corral.setenv("WORKER_NAME", names[(worker.id - 1) % #names + 1])
    corral.setenv("LUCKY", math.random(100))
  end,

  stop_timeout = "2s",
}
