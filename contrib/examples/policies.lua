-- contrib/examples/policies.lua: the three policy plugins at work
-- (doc/policies.md). It needs python3 and curl to try it.
--
--   web    workers share one listening socket (127.0.0.1:8080); autoscale
--          keeps 2 to 8 of them from their busy/idle reports, and recycle
--          replaces each after about 1,000 requests, its replacement
--          ready first.
--   api    on demand: no worker until a client connects to 127.0.0.1:8081;
--          the prototype stays warm meanwhile (keep_prototype); back to
--          none after 2 idle minutes.
--   site   one HTTP server per worker on 127.0.0.1:(8100 + its id);
--          healthcheck probes each, and restarts one that stops
--          answering; recycle replaces each after about an hour.
--
-- From the top of the source tree, as root:
--   build/corrald -c contrib/examples/policies.lua -g /corral-policies -s /tmp/policies.sock
--   curl http://127.0.0.1:8081/          (api starts a worker for it)
--   build/corralctl -s /tmp/policies.sock status
--   build/corralctl -s /tmp/policies.sock plugin autoscale show

settings { log_level = "info" }

-- A small HTTP worker in Python: it takes the pool's listening socket
-- (fd 3, as systemd's socket activation gives it: LISTEN_FDS) and tells
-- corrald when it is ready, busy or idle, and each request it served
-- (NOTIFY_SOCKET, sd_notify's protocol).
local APP = [[
import os, socket
where = os.environ.get("NOTIFY_SOCKET", "")
where = "\0" + where[1:] if where.startswith("@") else where
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
def say(text):
    if where:
        notify.sendto(text.encode(), where)
server = socket.socket(fileno=3)
say("READY=1\nIDLE=1")
while True:
    conn, _ = server.accept()
    say("BUSY=1")
    conn.recv(65536)
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n")
    conn.close()
    say("IDLE=1\nREQUESTS=1")
]]

pool "web" {
  command = { "python3", "-c", APP },
  listen = { http = "tcp:127.0.0.1:8080" },
  ready = "notify",
  workers = 2,                            -- where it starts (PHP-FPM pm.start_servers)
}

pool "api" {
  command = { "python3", "-c", APP },
  listen = { http = "tcp:127.0.0.1:8081" },
  ready = "notify",
  workers = 0,                            -- none until a client connects
  keep_prototype = true,                  -- the prototype waits, prefork done
}

pool "site" {
  command = { "/bin/sh", "-c", 'cd /tmp && exec python3 -m http.server --bind 127.0.0.1 $((8100 + CORRAL_WORKER))' },
  workers = 3,
}

-- How many workers: web between 2 and 8, one idle at least and at most
-- four (PHP-FPM pm = dynamic); api from zero on demand (pm = ondemand).
plugin "autoscale" {
  web = { min = 2, max = 8, spare = { min = 1, max = 4 },
          up = { step = 2 }, down = { step = 1, cooldown = "30s" } },
  api = { min = 0, max = 4, idle_timeout = "2m", sockets = "http" },
}

-- Each site worker probed every 5 s on its own port; 3 failures in a row
-- restart it (reason "unhealthy"); its first 15 s do not count (Docker's
-- HEALTHCHECK --interval --timeout --retries --start-period).
plugin "healthcheck" {
  site = {
    http = "http://127.0.0.1:{port}/",    -- {port} = port_base + the worker's id
    port_base = 8100,
    interval = "5s", timeout = "2s", retries = 3, start_period = "15s",
  },
}

-- Replaced before they go bad, one at a time, the replacement ready
-- first: web after about 1,000 requests (gunicorn max_requests and
-- max_requests_jitter), site after about an hour (uWSGI
-- max-worker-lifetime).
plugin "recycle" {
  web = { max_requests = 1000, max_requests_jitter = 50 },
  site = { max_lifetime = "1h", lifetime_jitter = "10m" },
}
