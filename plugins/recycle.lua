-- recycle: a plugin shipped with corral. Replaces a worker before it goes
-- bad: after a number of requests (gunicorn's max_requests), after a
-- maximum lifetime (uWSGI's max-worker-lifetime), or once its cgroup uses
-- more memory than a threshold (uWSGI's reload-on-rss, PM2's
-- max_memory_restart). One worker at a time per pool, with a rolling
-- restart: its replacement is ready before it is stopped, so the pool
-- never has fewer ready workers than its target.
--
--   plugin "recycle" {
--     web = { max_requests = 1000, max_requests_jitter = 50,
--             max_lifetime = "6h", lifetime_jitter = "30m",
--             max_memory = "512M", interval = "5s" },
--   }
--
-- Each worker's thresholds are drawn once, from its pid (and the pool's
-- name and seed): max_requests + 0..max_requests_jitter requests,
-- max_lifetime + 0..lifetime_jitter seconds; so the workers of a pool
-- started together do not all reach them together, and the same worker
-- keeps its thresholds across reloads.
--
-- Lines, at level info:
--
--   recycle: worker 3 served 1024 requests (limit 1000+24) pool=web
--   recycle: worker 2 lived 6h12m (limit 6h+11m32s) pool=web
--   recycle: worker 1 uses 530.2 MiB (limit 512.0 MiB) pool=web
--   recycle: worker 3 replaced in 1.2s pool=web
--
-- Status: a note on the pool ("recycle: 3 recycled, last: worker 2
-- (lifetime) 5m ago"); `corralctl plugin recycle show [pool=NAME]`.
-- Reference of the API it uses: doc/plugins.md; the options:
-- doc/policies.md, "recycle".

local options = require "corral.options"
local check = options.check

-- a duration of at least min seconds
local function duration_min(min)
  return function(v, key)
    local d = check.duration(v, key)
    if d < min then options.invalid(key, "must be at least %gs, got %s", min, options.show(v)) end
    return d
  end
end

local BIG = 2^31 - 1
local conf = options.validate("recycle", ..., check.pools {
  max_requests = { check.integer(0, BIG) },             -- 0 or absent: off
  max_requests_jitter = { check.integer(0, BIG), 0 },
  max_lifetime = { check.duration },                    -- 0 or absent: off
  lifetime_jitter = { check.duration, 0 },
  max_memory = { check.size },                          -- 0 or absent: off
  interval = { duration_min(0.1), 5 },
  seed = { check.integer(0, BIG), 0 },
})

-- what no single key can say
do
  local errs = {}
  for _, name in ipairs(options.sorted_keys(conf)) do
    local c = conf[name]
    for _, k in ipairs { "max_requests", "max_lifetime", "max_memory" } do
      if c[k] == 0 then c[k] = nil end
    end
    if not (c.max_requests or c.max_lifetime or c.max_memory) then
      errs[#errs + 1] = { key = name, at = name,
        msg = "nothing to recycle on: give max_requests, max_lifetime or max_memory" }
    end
    if c.max_requests_jitter > 0 and not c.max_requests then
      local k = name .. ".max_requests_jitter"
      errs[#errs + 1] = { key = k, at = k, msg = "needs max_requests" }
    end
    if c.lifetime_jitter > 0 and not c.max_lifetime then
      local k = name .. ".lifetime_jitter"
      errs[#errs + 1] = { key = k, at = k, msg = "needs max_lifetime" }
    end
  end
  if #errs > 0 then options.fail("recycle", errs) end
end

-- ---- thresholds: drawn once per worker, from its pid --------------------------

-- a * b mod 2^32, exact in doubles (a < 2^32, b < 2^32)
local function mul32(a, b)
  local hi, lo = math.floor(b / 65536), b % 65536
  return ((a * hi) % 65536 * 65536 + a * lo) % 2^32
end

local function u32(x) return x % 2^32 end   -- bit ops give signed results

-- A number in [0, 1) from the text: FNV-1a, then murmur3's finalizer
-- (consecutive pids must not give neighbouring numbers).
local function unit(text)
  local h = 2166136261
  for i = 1, #text do h = mul32(u32(bit.bxor(h, text:byte(i))), 16777619) end
  h = mul32(u32(bit.bxor(h, bit.rshift(h, 16))), 0x85ebca6b)
  h = mul32(u32(bit.bxor(h, bit.rshift(h, 13))), 0xc2b2ae35)
  h = u32(bit.bxor(h, bit.rshift(h, 16)))
  return h / 2^32
end

-- The thresholds of the worker pid of pool name: { requests, requests_extra,
-- lifetime, lifetime_extra } (the limits nil where off).
local function thresholds(name, c, pid)
  local t = {}
  if c.max_requests then
    local key = ("%d:%s:%d:requests"):format(c.seed, name, pid)
    t.requests_extra = math.floor(unit(key) * (c.max_requests_jitter + 1))
    t.requests = c.max_requests + t.requests_extra
  end
  if c.max_lifetime then
    local key = ("%d:%s:%d:lifetime"):format(c.seed, name, pid)
    t.lifetime_extra = math.floor(unit(key) * c.lifetime_jitter * 1000) / 1000
    t.lifetime = c.max_lifetime + t.lifetime_extra
  end
  return t
end

-- ---- formatting -------------------------------------------------------------------

-- 4325 -> "1h12m5s", 2.5 -> "2.5s"
local function dur(s)
  if s < 60 then
    local text = ("%.1f"):format(s):gsub("%.0$", "")
    return text .. "s"
  end
  s = math.floor(s + 0.5)
  local d, h, m, sec = math.floor(s / 86400), math.floor(s % 86400 / 3600), math.floor(s % 3600 / 60), s % 60
  local out = {}
  if d > 0 then out[#out + 1] = d .. "d" end
  if h > 0 then out[#out + 1] = h .. "h" end
  if m > 0 then out[#out + 1] = m .. "m" end
  if sec > 0 then out[#out + 1] = sec .. "s" end
  return table.concat(out)
end

local function ms(s) return math.floor(s * 1000 + 0.5) / 1000 end

local function mib(bytes) return ("%.1f MiB"):format(bytes / 2^20) end

-- ---- the state of each pool (for this load of the config) --------------------------

local state = {}   -- pool -> { count, by = { requests, lifetime, memory }, pending, last, warned }

local function state_of(name)
  local s = state[name]
  if not s then
    s = { count = 0, by = { requests = 0, lifetime = 0, memory = 0 }, warned = {} }
    state[name] = s
  end
  return s
end

local function warn_once(s, what, msg)
  if s.warned[what] then return end
  s.warned[what] = true
  corral.warn(msg)
end

-- A pool at rest: running, its target ready, no worker above it, none
-- starting, stopping or being replaced.
local function settled(p)
  if p.state ~= "running" or p.target == 0 or p.ready ~= p.target or #p.workers ~= p.target then return false end
  for _, w in ipairs(p.workers) do
    if w.state ~= "ready" or w.replacing or w.id > p.target then return false end
  end
  return true
end

-- Why worker w is due: kind, how far over (>= 1), the log's words.
local function due(name, c, w, s)
  local t = thresholds(name, c, w.pid)
  local kind, over, words
  local function consider(k, ratio, text)
    if ratio >= 1 and (not over or ratio > over) then kind, over, words = k, ratio, text end
  end
  if t.requests then
    consider("requests", (w.requests or 0) / t.requests,
      ("served %d requests (limit %d+%d)"):format(w.requests or 0, c.max_requests, t.requests_extra))
  end
  if t.lifetime then
    consider("lifetime", w.uptime / t.lifetime,
      ("lived %s (limit %s+%s)"):format(dur(w.uptime), dur(c.max_lifetime), dur(t.lifetime_extra)))
  end
  if c.max_memory then
    if w.memory_current then
      -- over, not at: a ratio of exactly 1 is not past the threshold
      if w.memory_current > c.max_memory then
        consider("memory", w.memory_current / c.max_memory,
          ("uses %s (limit %s)"):format(mib(w.memory_current), mib(c.max_memory)))
      end
    else
      warn_once(s, "memory", ("recycle: max_memory needs the memory controller, and worker %d has no memory figure:"
        .. " not recycling on memory pool=%s"):format(w.id, name))
    end
  end
  return kind, over, words
end

local function ago(s, now)
  if not s.last then return "none recycled yet" end
  return ("%d recycled, last: worker %d (%s) %s ago"):format(s.count, s.last.id, s.last.kind, dur(now - s.last.at))
end

local function note(name, s, now)
  local text
  if s.pending then
    text = ("replacing worker %d (%s); %d recycled"):format(s.pending.id, s.pending.kind, s.count)
  else
    text = ago(s, now)
  end
  corral.note(name, nil, "recycle", text)
end

local STUCK = 120   -- seconds: a replacement this long is worth a warning

-- One check of pool name: finish the replacement under way, or start one.
local function check_pool(name, c)
  local s = state_of(name)
  local st, err = corral.status(name)
  if not st then
    warn_once(s, "pool", ("recycle: %s: its options are unused pool=%s"):format(err, name))
    return
  end
  s.warned.pool = nil
  local p, now = st[1], corral.now()
  if s.pending then
    local still = false
    for _, w in ipairs(p.workers) do if w.pid == s.pending.pid then still = true end end
    if still or not settled(p) then
      -- a surge worker that cannot start, a pool gone failed: say so once
      if not s.pending.late and now - s.pending.at >= STUCK then
        s.pending.late = true
        corral.warn(("recycle: worker %d's replacement not done after %s (%s, %d/%d ready), waiting pool=%s")
          :format(s.pending.id, dur(now - s.pending.at), p.state, p.ready, p.target, name))
      end
      return note(name, s, now)
    end
    corral.info(("recycle: worker %d replaced in %s pool=%s"):format(s.pending.id, dur(now - s.pending.at), name))
    s.pending = nil
  end
  if not settled(p) then return note(name, s, now) end
  local pick, pick_over, pick_kind, pick_words
  for _, w in ipairs(p.workers) do
    local kind, over, words = due(name, c, w, s)
    if kind and (not pick or over > pick_over) then pick, pick_over, pick_kind, pick_words = w, over, kind, words end
  end
  if pick then
    local ok, why = corral.restart(name, pick.id, { rolling = true, reason = "recycled" })
    if ok then
      corral.info(("recycle: worker %d %s pool=%s"):format(pick.id, pick_words, name))
      s.pending = { id = pick.id, pid = pick.pid, kind = pick_kind, at = now }
      s.last = s.pending
      s.count = s.count + 1
      s.by[pick_kind] = s.by[pick_kind] + 1
    else
      corral.debug(("recycle: worker %d: %s pool=%s"):format(pick.id, tostring(why), name))
    end
  end
  note(name, s, now)
end

corral.on("config", function()
  for _, name in ipairs(options.sorted_keys(conf)) do
    local c = conf[name]
    corral.every(c.interval, function() check_pool(name, c) end)
  end
end)

-- The old worker's exit (reason recycled): half of the end of a
-- replacement; the other half, the pool back at rest, check_pool sees.
corral.on("worker_exited", function(ev)
  local s = state[ev.pool]
  if s and s.pending and ev.pid == s.pending.pid then
    corral.debug(("recycle: worker %d (pid %d) exited (%s) pool=%s"):format(ev.worker, ev.pid, ev.reason, ev.pool))
  end
end)

-- ---- corralctl plugin recycle show [pool=NAME] ----------------------------------------

corral.command("show", { read_only = true, args = { pool = "string?" },
    help = "what recycle did and each worker's thresholds" }, function(args)
  local out, now = {}, corral.now()
  for _, name in ipairs(options.sorted_keys(conf)) do
    if not args.pool or args.pool == name then
      local c, s = conf[name], state_of(name)
      local r = { recycled = s.count, requests = s.by.requests, lifetime = s.by.lifetime, memory = s.by.memory,
        last = ago(s, now), replacing = s.pending and s.pending.id or nil, workers = {} }
      local st = corral.status(name)
      for _, w in ipairs(st and st[1].workers or {}) do
        local t = thresholds(name, c, w.pid)
        r.workers[#r.workers + 1] = { id = w.id, pid = w.pid, requests = w.requests, max_requests = t.requests,
          uptime = ms(w.uptime), max_lifetime = t.lifetime and ms(t.lifetime), memory = w.memory_current,
          max_memory = c.max_memory }
      end
      out[name] = r
    end
  end
  if args.pool and not out[args.pool] then error(("no pool %s in recycle's options"):format(args.pool), 0) end
  return out
end)
