-- metrics.lua: a pool watched by Prometheus. corrald serves the metrics
-- of its pools, workers and itself at http://127.0.0.1:9180/metrics and
-- writes them for node_exporter's textfile collector too.
--
--   corrald -c contrib/examples/metrics.lua -s /tmp/corral.sock -g /corral-metrics
--   curl -s http://127.0.0.1:9180/metrics | grep corral_pool_workers
--
-- A Prometheus scrape config for it:
--
--   scrape_configs:
--     - job_name: corral
--       scrape_interval: 15s
--       static_configs: [ { targets: [ "127.0.0.1:9180" ] } ]

pool "web" {
  command = { "/bin/sh", "-c", "while :; do sleep 3600; done" },
  workers = 3,
}

plugin "metrics" {
  listen = "127.0.0.1:9180",
  textfile = "/tmp/corral.prom",   -- node_exporter's --collector.textfile.directory, in real use
  textfile_interval = "15s",
}
