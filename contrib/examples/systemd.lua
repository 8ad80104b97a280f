-- contrib/examples/systemd.lua: corral's systemd side, by example.
--
-- Needs /bin/sh, coreutils and systemd-notify (Debian package systemd);
-- the web pool is Lua (LuaJIT's FFI), so nothing else.  Two pools:
--   notified  2 shell workers written for systemd: each tells corrald it
--             is ready with `systemd-notify --ready` and pings the pool's
--             watchdog with `systemd-notify WATCHDOG=1`
--   web       2 Lua workers serving HTTP on 127.0.0.1:8089, a socket that
--             corrald opens and holds (listen = { ... }) and hands to
--             each worker as fd 3, with LISTEN_FDS=1
--
-- Run it by hand (corrald has no service manager then: it only logs):
--   build/corrald -c contrib/examples/systemd.lua -g /corral-example
--   curl http://127.0.0.1:8089/          hello from a web worker
-- or as the configuration of the corral service (doc/systemd.md).
-- Things to try while it runs:
--   build/corralctl status            the pools, each worker with its pid
--   build/corralctl signal notified STOP
--                                     the shells stop pinging: 6s later
--                                     the watchdog aborts those workers
--                                     (SIGABRT, then SIGKILL) and the
--                                     pool starts new ones
--   build/corralctl reload            reload: the socket stays open, and
--                                     a changed web pool is replaced
--                                     without a refused connection
--
-- See doc/systemd.md for the protocol, and corral.lua(5) for every key.

settings { log_level = "info" }

-- A worker that follows systemd's protocol, as a service would.  corrald
-- gives every worker NOTIFY_SOCKET (its own socket, not systemd's); a
-- pool with watchdog also gets WATCHDOG_USEC and WATCHDOG_PID.
-- systemd-notify is a separate process: corrald knows which worker sent
-- a message from the cgroup the sender runs in, so the helper counts for
-- the worker that ran it.
local notified_script = [[
echo "worker $CORRAL_WORKER: starting up" >&2
sleep 1                          # pretend to load something
systemd-notify --ready --status="worker $CORRAL_WORKER serving"
trap 'kill "$pid" 2>/dev/null; exit 0' TERM
# ping at half the interval: WATCHDOG_USEC is in microseconds
half_ms=$(( WATCHDOG_USEC / 2000 ))
while :; do
  systemd-notify WATCHDOG=1
  sleep "$(( half_ms / 1000 )).$(printf %03d $(( half_ms % 1000 )))" & pid=$!
  wait "$pid"
done
]]

pool "notified" {
  command = { "/bin/sh", "-c", notified_script, "notified-worker" },
  workers = 2,
  -- ready when the worker sends READY=1, not when its command starts
  ready = "notify",
  -- a worker not ready within 20s is aborted (SIGABRT) and replaced
  ready_timeout = "20s",
  -- a worker that sends no WATCHDOG=1 for 6s is aborted and replaced
  watchdog = "6s",
  stop_timeout = "3s",
  -- its stdout and stderr: the journal under systemd (tagged "notified",
  -- the default syslog_identifier is the pool's name), else corrald's
  output = "auto",
}

-- The web pool's body, in Lua: accept on the socket corrald passed.  The
-- FFI is required inside the function, so that a reload does not see a
-- changed pool (corral.lua(5), doc/lua-api.md, "Reloading").
local function serve(worker)
  local ffi = require "ffi"
  ffi.cdef [[
    struct pollfd { int fd; short events; short revents; };
    int poll(struct pollfd *fds, unsigned long nfds, int timeout);
    int fcntl(int fd, int cmd, ...);
    int accept4(int fd, void *addr, void *addrlen, int flags);
    long read(int fd, void *buf, unsigned long n);
    long write(int fd, const void *buf, unsigned long n);
    int close(int fd);
  ]]
  local C = ffi.C
  local F_GETFL, F_SETFL, O_NONBLOCK, POLLIN = 3, 4, 0x800, 1

  -- LISTEN_FDNAMES lists the pool's sockets in the order of their fds,
  -- from 3 on; this pool has one, "http"
  local fd, i = nil, 0
  for name in (os.getenv("LISTEN_FDNAMES") or ""):gmatch("[^:]+") do
    if name == "http" then fd = 3 + i end
    i = i + 1
  end
  assert(fd, "no socket named http in LISTEN_FDNAMES")
  -- non-blocking, so that a worker that loses the race for a connection
  -- goes back to poll instead of hanging in accept (the flag is shared
  -- by every process holding the socket: here, this pool's workers)
  C.fcntl(fd, F_SETFL, ffi.new("int", bit.bor(C.fcntl(fd, F_GETFL), O_NONBLOCK)))

  corral.ready()                        -- ready = "lua"
  local pfd = ffi.new("struct pollfd[1]", { { fd = fd, events = POLLIN } })
  local buf = ffi.new("char[4096]")
  local body = ("hello from web worker %d (pid %d)\n"):format(worker.id, corral.pid())
  local reply = ("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s")
                :format(#body, body)
  -- poll for a second at a time, so that a stop is seen within a second
  while not worker:stopping() do
    if C.poll(pfd, 1, 1000) > 0 then
      local c = C.accept4(fd, nil, nil, 0x80000)  -- SOCK_CLOEXEC
      if c >= 0 then
        local cp = ffi.new("struct pollfd[1]", { { fd = c, events = POLLIN } })
        if C.poll(cp, 1, 1000) > 0 then C.read(c, buf, 4096) end
        C.write(c, reply, #reply)
        C.close(c)
      end
    end
  end
end

pool "web" {
  workers = 2,
  -- NAME = SPEC: corrald binds 127.0.0.1:8089 itself and keeps it open
  -- across worker restarts and reloads.  Under systemd, a socket from a
  -- .socket unit is taken instead with http = "systemd" (its
  -- FileDescriptorName=http).
  listen = { http = "tcp:127.0.0.1:8089" },
  ready = "lua",
  start = serve,
  stop_timeout = "3s",
}
