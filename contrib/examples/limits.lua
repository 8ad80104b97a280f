-- contrib/examples/limits.lua: resource limits for a pool and for each of
-- its workers, the raw cgroup escape hatch, and a plugin.
--
-- It needs nothing but /bin/sh and coreutils.  Two pools:
--   web    4 workers, each a shell loop standing in for a server.  The
--          pool as a whole may use 1 GiB and two CPUs; each worker 256 MiB
--          and 64 processes.
--   batch  2 workers at a low CPU and IO weight, so that web wins when
--          both want the machine.
-- and the pool-stats plugin, which logs each pool's memory, CPU time and
-- process count every 30 seconds, and each OOM kill.
--
-- Run it from the top of the source tree, as root (corrald creates
-- cgroups under the cgroup2 mount):
--   build/corrald -c contrib/examples/limits.lua
-- Ctrl-C stops it.  Each limit needs its controller: where the kernel
-- does not offer one (see cgroup.controllers in the base cgroup that
-- corrald logs at startup), corrald logs that the limit cannot be applied
-- and runs without it.  Every limit is described in corral.lua(5) and
-- doc/config.md; the cgroup layout in the README, "cgroups".

settings {
  log_level = "info",
  -- "auto" (the default): the unit's cgroup when systemd delegated it
  -- (Delegate=yes), else <cgroup2 mount>/corral.  `corrald -g PATH`
  -- overrides it.
  cgroup = "auto",
  -- true would make corrald refuse to start when a limit below cannot be
  -- applied, instead of running without it.
  limits_required = false,
}

local server = [[
trap 'exit 0' TERM
while :; do sleep 1 & wait $!; done
]]

pool "web" {
  command = { "/bin/sh", "-c", server, "web" },
  workers = 4,

  -- The pool's cgroup, <base>/web: its prototype and all its workers
  -- together.
  limits = {
    memory_max = "1G",        -- memory.max: above it, the OOM killer
    memory_high = "900M",     -- memory.high: above it, reclaim and slow down
    cpu_max = "200%",         -- cpu.max "200000 100000": two CPUs' worth
    pids_max = 512,           -- pids.max: processes and threads
  },

  -- Each worker's own cgroup, <base>/web/<id>: a worker that goes over
  -- memory_max is killed by the OOM killer with everything it started,
  -- and the others go on.
  worker_limits = {
    memory_max = "256M",
    memory_swap_max = 0,      -- memory.swap.max: no swap
    pids_max = 64,            -- a fork bomb stays inside one worker
  },
}

pool "batch" {
  command = { "/bin/sh", "-c", server, "batch" },
  workers = 2,
  restart = "on-failure",
  limits = {
    cpu_weight = 20,          -- cpu.weight, 1 to 10000 (default 100)
    io_weight = 20,           -- io.weight "default 20"
    -- Any other file of a cgroup, written as it is: file name = value.
    -- corral's own files (cgroup.procs, cgroup.kill, cgroup.freeze,
    -- memory.oom.group, ...) are refused.
    -- Here memory.min, which no named limit writes: memory this pool
    -- keeps even when the machine runs short.
    cgroup = {
      ["memory.min"] = "32M",
    },
  },
}

-- plugins/pool-stats.lua, shipped with corral; see doc/plugins.md.
plugin "pool-stats" { interval = 30 }
