-- contrib/examples/memory-restart.lua: the example plugin of
-- doc/plugins.md ("Writing and testing a plugin") at work.
--
-- The workers of "leaky" grow by about 1 MiB every 2 seconds, as a
-- worker with a leak does; the plugin memory-restart (plugins/ beside
-- this file) restarts one that is over 32 MiB, at most one per minute.
-- Worker memory is figured from the cgroup: corrald needs the memory
-- controller (see "cgroups" in the README).
--
--   build/corrald -c contrib/examples/memory-restart.lua
--
-- and watch for "memory-restart: worker N uses ..." in the log, then
-- "corralctl status leaky" for its new worker.

pool "leaky" {
  command = { "/bin/sh", "-c",
    'mib=$(head -c 1048576 /dev/zero | tr "\\0" x); all=; '
    .. 'while :; do all="$all$mib"; sleep 2; done' },
  workers = 2,
}

plugin "memory-restart" { limit = "32M", interval = 5, hold = "1m" }
