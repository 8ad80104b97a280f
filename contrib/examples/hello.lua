-- contrib/examples/hello.lua: the configuration that `make run` starts.
--
-- It needs nothing but /bin/sh and coreutils.  Two pools:
--   greeter  3 workers, each a shell loop that greets on stderr every
--            few seconds and exits cleanly on SIGTERM
--   ticker   2 workers running sleep 3600, restarted only on failure
--
-- Things to try while it runs (see README, "Try it"):
--   build/corralctl status               the pools, each worker with its pid
--   build/corralctl signal ticker/2 KILL kill ticker worker 2; it comes back
--   build/corralctl reload               reload this file after editing it
--
-- The file is Lua.  `pool "greeter" { ... }` is a call of pool("greeter")
-- with a table; see corral.lua(5) or doc/config.md for every key.

-- Optional, at most once.  Levels: "debug", "info", "notice", "warn", "error".
settings {
  log_level = "info",
}

-- The worker's body.  Sleeping in the background and waiting for it lets
-- the TERM trap run at once instead of after the current sleep; the trap
-- kills that sleep so that nothing is left behind.
local greeter_script = [[
trap 'kill "$pid" 2>/dev/null; echo "worker $CORRAL_WORKER: got TERM, bye" >&2; exit 0' TERM
while :; do
  echo "$GREETING from worker $CORRAL_WORKER" >&2
  sleep "$INTERVAL" & pid=$!
  wait "$pid"
done
]]

pool "greeter" {
  -- argv as a table: no shell quoting rules to worry about.  The fourth
  -- element becomes $0 of the script.
  command = { "/bin/sh", "-c", greeter_script, "greeter" },

  -- How many workers to keep running (0 to 10000).  Their ids are 1, 2, 3,
  -- passed to each worker as CORRAL_WORKER.
  workers = 3,

  -- Variables set for the workers, on top of PATH, CORRAL_POOL and
  -- CORRAL_WORKER.  Numbers are turned into strings; false unsets.
  env = { GREETING = "hello", INTERVAL = 3 },

  -- Copy these from corrald's own environment when they are set there.
  env_inherit = { "LANG", "TZ" },

  -- Working directory of the workers (absolute; the default is "/").
  directory = "/tmp",

  -- How a worker is asked to stop, and how long it has before SIGKILL.
  stop_signal = "TERM",
  stop_timeout = "5s",

  -- Replace every worker that exits, whatever its status (the default).
  restart = "always",

  -- A worker that exits before it is ready, or within 2s after, failed
  -- to start.  Any later exit is replaced at once: restarting is not
  -- failing.
  start_window = "2s",

  -- Delay after a start failure: 200ms after the first, doubling for
  -- each further one of the pool in a row, at most 10s.  A worker that
  -- gets through its start window starts the count again.
  backoff = { initial = "200ms", max = "10s" },
}

pool "ticker" {
  -- A string command is split on whitespace; it cannot contain quotes.
  command = "/bin/sleep 3600",
  workers = 2,

  -- Replace a worker only when it fails: a non-zero exit status or death
  -- by a signal.  A worker that exits with status 0 is not replaced.
  restart = "on-failure",

  backoff = { initial = "100ms", max = "5s" },

  -- 5 start failures of this pool within 10s mark it failed: it stays
  -- down until `corralctl start ticker` or a reload.  failures = 0 would
  -- turn this off.
  crash_limit = { failures = 5, interval = "10s" },

  -- sleep dies at once on SIGTERM; it never needs the full timeout.
  stop_timeout = "2s",
}
