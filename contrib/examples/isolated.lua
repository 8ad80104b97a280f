-- contrib/examples/isolated.lua: pools in a sandbox of their own, with
-- most keys of `isolation` (doc/isolation.md has them all, one by one).
--
-- It needs nothing but what a Debian system has: /bin/sh, coreutils,
-- the users www-data and nobody, the group users.  Two pools:
--   boxed   2 workers as www-data in their own pid, mount, network, uts,
--           ipc and cgroup namespaces, with bind mounts, one capability,
--           rlimits, a umask, a nice value and an OOM score.
--   rooted  1 worker in a user namespace too: root inside, nobody outside.
-- Each worker prints once what it sees from inside, then sleeps.
--
-- Run it from the top of the source tree, as root:
--   build/corrald -c contrib/examples/isolated.lua
-- and compare with what the host sees:
--   build/corralctl status              the workers' pids, as the host knows them
--   grep NSpid /proc/PID/status         the same worker, outside and inside
--   ls -l /proc/PID/ns/                 its namespaces, against /proc/self/ns/
-- Ctrl-C stops it.

settings {
  log_level = "info",
}

-- What a worker prints: its ids, groups and capabilities as the kernel
-- has them, its hostname, the network interfaces and processes it can
-- see, its cgroup, its limits and umask, and some of its mounts (mount
-- point and options: ro or rw).
local look = [[
trap 'kill "$pid" 2>/dev/null; exit 0' TERM
say() { echo "$CORRAL_POOL/$CORRAL_WORKER: $*" >&2; }
say "id: $(id)"
say "$(grep -E '^(NSpid|Groups|NoNewPrivs|CapEff|CapAmb)' /proc/self/status | tr '\t\n' '  ')"
say "hostname: $(cat /proc/sys/kernel/hostname)"
say "interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
say "processes: $(ls /proc | grep -c '^[0-9]')"
say "cgroup: $(grep '^0::' /proc/self/cgroup)"
say "nofile: $(ulimit -n), core: $(ulimit -c), umask: $(umask), nice: $(cut -d' ' -f19 /proc/self/stat)"
say "/tmp: $(ls -A /tmp | wc -l) entries; /mnt: $(ls /mnt | head -3 | tr '\n' ' ')..."
say "mounts: $(grep -E ' /(etc|mnt|srv|tmp|proc) ' /proc/self/mountinfo | cut -d' ' -f5,6 | tr '\n' ';')"
while :; do sleep 3600 & pid=$!; wait "$pid"; done
]]

pool "boxed" {
  command = { "/bin/sh", "-c", look, "boxed" },
  workers = 2,
  user = "www-data",
  stop_timeout = "2s",

  isolation = {
    -- Any subset.  "pid" makes the prototype PID 1 of the pool and mounts
    -- a /proc that shows the pool's processes only; "mount" gives a
    -- private tmpfs on /tmp; "cgroup" roots each worker's view of the
    -- cgroup tree at its own cgroup.
    namespaces = { "pid", "mount", "net", "uts", "ipc", "cgroup" },

    hostname = "boxed",           -- needs "uts"
    network = "loopback",         -- needs "net": lo up, nothing else

    -- { source on the host, target as the workers see it, "ro" | "rw" }.
    -- Without a rootfs, a mount covers part of the host's tree, for this
    -- pool only.
    mounts = {
      { "/usr/share/doc", "/mnt", "ro" },   -- the docs, seen at /mnt
      { "/etc", "/etc", "ro" },             -- /etc, read-only
      { "/var/tmp", "/srv", "rw" },         -- /var/tmp, writable, at /srv
    },

    -- A root of the pool's own, moved to with pivot_root.  It needs a
    -- prepared tree: see doc/isolation.md, "A hardening recipe", for one
    -- made of a few links, /dev nodes and read-only bind mounts of /usr
    -- and /etc (the mounts above are then inside it).
    -- rootfs = "/srv/boxed-root",

    -- The default, and the default of every pool: setuid bits and file
    -- capabilities give nothing.  false for a pool that runs sudo & co.
    no_new_privs = true,

    -- Kept (effective, permitted, bounding, and ambient so that what the
    -- worker executes keeps them too); every other one is dropped.
    capabilities = { "CAP_NET_BIND_SERVICE" },

    -- setrlimit(2), by the name after RLIMIT_: a number, a size, "infinity",
    -- or { soft, hard }.
    rlimits = {
      nofile = { 1024, 4096 },
      core = 0,
      nproc = 500,
      stack = "8M",
      as = "2G",
    },

    umask = "0027",               -- an octal string
    nice = 10,                    -- -20 to 19
    oom_score_adjust = 500,       -- -1000 to 1000: picked first when memory runs out

    -- Replaces the user's groups from the group database.
    supplementary_groups = { "users" },
  },
}

pool "rooted" {
  command = { "/bin/sh", "-c", look, "rooted" },
  workers = 1,
  user = "nobody",
  stop_timeout = "2s",

  isolation = {
    -- With "user", the prototype and the workers are root inside and
    -- nobody outside: they have no privilege on the host at all.
    namespaces = { "user", "pid", "mount", "uts" },
    hostname = "rooted",

    -- { inside, outside, count }.  This is the default for a pool whose
    -- user is nobody (65534, group nogroup 65534), written out.
    uidmap = { { 0, 65534, 1 } },
    gidmap = { { 0, 65534, 1 } },

    -- Root inside, with no capability but this one (none without a
    -- list).  A capability in a user namespace counts only for what the
    -- namespace owns: this one lets the workers override the permissions
    -- of files whose owners are mapped (here, nobody's), no one else's.
    capabilities = { "CAP_DAC_OVERRIDE" },
  },
}
