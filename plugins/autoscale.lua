-- autoscale: a plugin shipped with corral. Keeps each configured pool
-- between `min` and `max` workers, from what its workers report of their
-- load (busy/idle), the pool's PSI and/or a function of the config; and,
-- with min = 0 and idle_timeout, runs a pool on demand: zero workers until
-- a client waits on its listen socket, back to zero after idle_timeout.
--
--   plugin "autoscale" {
--     web = { min = 2, max = 16, spare = { min = 1, max = 4 },
--             up = { step = 4, cooldown = 0 }, down = { step = 1, cooldown = "30s" },
--             pressure = { cpu = 80 } },
--     api = { min = 0, max = 4, idle_timeout = "5m", sockets = { "http" } },
--   }
--
-- Every decision is logged at info ("autoscale: up from 2 to 4 workers:
-- 0 of 2 idle < spare.min 1 pool=web") and shown under the pool in
-- corralctl status (corral.note); `corralctl plugin autoscale show` lists
-- the last decisions. Reference: doc/policies.md, section autoscale.

local options = require "corral.options"
local check = options.check

local NAME = "autoscale"

-- A listen socket's name, or a list of them.
local function sockets(v, key)
  if type(v) == "string" then v = { v } end
  if type(v) ~= "table" or #v == 0 then
    options.invalid(key, "expected the name of a listen socket of the pool, or a list of them, got %s", options.show(v))
  end
  for i, s in ipairs(v) do
    if type(s) ~= "string" or not s:match("^[A-Za-z0-9_-]+$") then
      options.invalid(key, "item %d: expected a listen socket's name, got %s", i, options.show(s))
    end
  end
  return v
end

local SCHEMA = check.pools {
  min = { check.integer(0, 10000), 1 },
  max = { check.integer(1, 10000) },
  spare = { check.record {
    min = { check.integer(0, 10000), 1 },
    max = { check.integer(0, 10000) },
  } },
  up = { check.record {
    step = { check.integer(1, 10000), 4 },
    cooldown = { check.duration, 0 },
  } },
  down = { check.record {
    step = { check.integer(1, 10000), 1 },
    cooldown = { check.duration, 30 },
  } },
  interval = { check.duration, 1 },
  pressure = { check.record {
    cpu = { check.number(0, 100) },
    memory = { check.number(0, 100) },
    io = { check.number(0, 100) },
  } },
  decide = { check.func },
  idle_timeout = { check.duration },
  sockets = { sockets },
  hold = { check.duration, 300 },
}

-- The checks of one key against another, on what the schema let through
-- (a key it refused is left to its error): all errors at once, with the
-- schema's.
local function cross(raw, errs)
  local function bad(key, fmt, ...) errs[#errs + 1] = { key = key, msg = fmt:format(...) } end
  local function num(v, default)
    if v == nil then return default end
    if type(v) == "number" then return v end
    local ok, d = pcall(check.duration, v, "")
    return ok and d or nil
  end
  if type(raw) ~= "table" then return end
  for _, pool in ipairs(options.sorted_keys(raw)) do
    local c = raw[pool]
    if type(pool) == "string" and type(c) == "table" then
      local function k(s) return pool .. "." .. s end
      local min, max = num(c.min, 1), c.max
      if max == nil then
        bad(k("max"), "missing: the most workers the pool may run (PHP-FPM pm.max_children)")
      elseif type(min) == "number" and type(max) == "number" and max < min then
        bad(k("max"), "must be at least min (%d), got %d", min, max)
      end
      local spare = type(c.spare) == "table" and c.spare or {}
      local smin, smax = num(spare.min, 1), spare.max
      if type(smin) == "number" and type(smax) == "number" and smax < smin then
        bad(k("spare.max"), "must be at least spare.min (%d), got %d", smin, smax)
      end
      local interval = num(c.interval, 1)
      if interval and interval < 0.1 then bad(k("interval"), "must be at least 0.1 second") end
      if c.idle_timeout ~= nil then
        if min ~= 0 then bad(k("idle_timeout"), "needs min = 0 (a pool that goes down to zero workers)") end
        if c.sockets == nil then
          bad(k("idle_timeout"), "needs sockets: the pool's listen socket(s) to watch while it has no worker")
        end
        local it = num(c.idle_timeout)
        if it and it < 1 then bad(k("idle_timeout"), "must be at least 1 second") end
      elseif c.sockets ~= nil then
        bad(k("sockets"), "only with idle_timeout (on demand: min = 0, idle_timeout = ...)")
      end
    end
  end
end

local raw = ...
local ok, conf = pcall(options.validate, NAME, raw, SCHEMA)
local errs = {}
if not ok then
  if getmetatable(conf) ~= options.Errors then error(conf, 0) end
  errs = conf.errors
end
cross(raw, errs)
if #errs > 0 then options.fail(NAME, errs) end

-- Defaults of the records left out.
for _, c in pairs(conf) do
  c.spare = c.spare or {}
  c.spare.min = c.spare.min or 1
  c.spare.max = c.spare.max or math.max(c.spare.min, 4)
  c.up = c.up or { step = 4, cooldown = 0 }
  c.down = c.down or { step = 1, cooldown = 30 }
  c.pressure = c.pressure or {}
end

-- ---- state: per pool, this load's only (a reload starts again from status) ----

local state = {}     -- pool -> { target (the last we set or saw), last_up, last_down,
                     --   surplus_since, hold_until, active_at, requests, watch (ids of
                     --   the on_connection watches: kept while the pool has workers,
                     --   wake() looks first), timer, left (a state left alone), held_psi, log }
local HISTORY = 10   -- decisions kept per pool for `show`

-- UTC, as corralctl status prints its times
local function clock() return os.date("!%H:%M:%S") end

local function range(c) return ("%d..%d"):format(c.min, c.max) end

-- Remember and show a decision: the log line at info, the status note,
-- the history of `show`.
local function record(pool, s, level, text, note)
  corral.log(level, ("autoscale: %s pool=%s"):format(text, pool))
  s.log[#s.log + 1] = (clock() .. " " .. text):sub(1, 250)   -- a control string's limit
  if #s.log > HISTORY then table.remove(s.log, 1) end
  if note then corral.note(pool, nil, "autoscale", note:sub(1, 200)) end
end

local function set_note(pool, text)
  corral.note(pool, nil, "autoscale", text:sub(1, 200))
end

-- Scale to n, with why; remembered as ours.
local function scale(pool, s, c, from, n, verb, why)
  local ok, err = corral.scale(pool, n, { keep = true })   -- outlives reloads
  if not ok then
    corral.warn(("autoscale: cannot scale to %d: %s pool=%s"):format(n, tostring(err), pool))
    return false
  end
  s.target = n
  local at = clock()
  record(pool, s, "info", ("%s from %d to %d workers: %s"):format(verb, from, n, why),
    ("%d workers (%s): %s from %d at %s, %s"):format(n, range(c), verb, from, at, why))
  return true
end

-- The pool's figures from its status: ready workers busy or idle (idle: ready
-- and not busy), workers on their way (spawning, starting).
local function view_of(pool, p, c, now)
  local v = { name = pool, state = p.state, target = p.target, ready = 0, busy = 0, idle = 0,
    starting = 0, requests = p.requests or 0, last_request_ago = p.last_request_ago,
    min = c.min, max = c.max, now = now, pressure = {} }
  for _, w in ipairs(p.workers) do
    if w.state == "ready" then
      v.ready = v.ready + 1
      if w.load == "busy" then v.busy = v.busy + 1 else v.idle = v.idle + 1 end
    end
  end
  -- on their way: every wanted worker not ready yet (spawning, starting,
  -- an id not started yet): counted as spare, so a scale-up is not repeated
  -- while its workers start
  v.starting = math.max(0, v.target - v.ready)
  return v
end

local function pressure_of(pool, res)
  local pr = corral.pressure(pool, res)
  return pr and pr.some and pr.some.avg10
end

local function ondemand(c) return c.idle_timeout ~= nil end

local STILL = { stopped = "stopped", failed = "failed", stopping = "stopping", frozen = "frozen" }

-- A waiting client on an on-demand pool: one worker at once if it has none.
local function wake(pool, s, c)
  local list = corral.status(pool)
  if not list then return end
  local p = list[1]
  s.active_at = corral.now()
  if p.target == 0 and not STILL[p.state] then
    scale(pool, s, c, 0, 1, "up", "a client waits on the listen socket")
    s.last_up = corral.now()
  end
end

local function watch(pool, s, c)
  if s.watch then return end
  s.watch = {}
  for _, name in ipairs(c.sockets) do
    local id, err = corral.on_connection(pool, name, function() wake(pool, s, c) end, 0.5)
    if id then
      s.watch[#s.watch + 1] = id
    else
      corral.warn(("autoscale: cannot watch listen socket %s: %s pool=%s"):format(name, tostring(err), pool))
    end
  end
end

-- What the pool should run: the decide function's, or the spare rule's.
local function wanted(pool, s, c, v)
  if c.decide then
    for _, res in ipairs { "cpu", "memory", "io" } do v.pressure[res] = pressure_of(pool, res) end
    local ok, n, why = pcall(c.decide, v)
    if not ok then
      corral.error(("autoscale: decide failed: %s pool=%s"):format(tostring(n):gsub("\n.*", ""), pool))
      return nil
    end
    if n == nil then return nil end
    if type(n) ~= "number" or n ~= n or n % 1 ~= 0 then
      corral.error(("autoscale: decide returned %s, not a whole number pool=%s"):format(options.show(n), pool))
      return nil
    end
    return n, "decide: " .. (why ~= nil and tostring(why) or ("%d wanted"):format(n))
  end
  local spare = v.idle + v.starting
  if spare < c.spare.min then
    return v.target + (c.spare.min - spare),
      ("%d of %d idle < spare.min %d"):format(v.idle, v.ready, c.spare.min)
  elseif v.idle > c.spare.max then
    return v.target - (v.idle - c.spare.max),
      ("%d of %d idle > spare.max %d"):format(v.idle, v.ready, c.spare.max)
  end
  return v.target
end

local function decide(pool)
  local c, s = conf[pool], state[pool]
  local now = corral.now()
  local list = corral.status(pool)
  if not list then return end        -- removed by a reload: its timer goes with this load
  local p = list[1]

  -- a pool the operator stopped (or that failed, or is frozen) is left alone
  if STILL[p.state] then
    if s.left ~= p.state then
      s.left = p.state
      record(pool, s, "info", ("left alone: the pool is %s"):format(p.state),
        ("left alone while %s (%s)"):format(p.state, range(c)))
    end
    s.target = p.target
    return
  end
  if s.left then
    s.left = nil
    record(pool, s, "info", "the pool runs again: deciding again",
      ("%d workers (%s): running again at %s"):format(p.target, range(c), clock()))
  end

  local v = view_of(pool, p, c, now)
  local T = p.target

  -- a target changed by someone else (corralctl scale): held for `hold`
  if s.target and T ~= s.target then
    s.hold_until = now + c.hold
    s.surplus_since = nil
    record(pool, s, "info", ("scaled from %d to %d by hand (corralctl scale?): held for %gs"):format(s.target, T, c.hold),
      ("%d workers (%s): scaled by hand at %s, held until %s"):format(T, range(c), clock(),
        os.date("!%H:%M:%S", os.time() + math.floor(c.hold + 0.5))))
  end
  s.target = T

  -- on demand: activity is requests reported, a busy worker, one starting
  if ondemand(c) then
    if v.requests > (s.requests or 0) or v.busy > 0 or v.starting > 0 then s.active_at = now end
    s.requests = v.requests
    watch(pool, s, c)
  end

  if s.hold_until then
    if now < s.hold_until then return end
    s.hold_until = nil
    record(pool, s, "info", "the hold is over: deciding again")
  end

  -- out of min..max (a reload set the config's workers): at once
  if T < c.min or T > c.max then
    local n = T < c.min and c.min or c.max
    scale(pool, s, c, T, n, n > T and "up" or "down",
      ("%d is %s %s %d"):format(T, n > T and "below" or "above", n > T and "min" or "max", n))
    return
  end

  if ondemand(c) then
    if T == 0 then return end        -- waiting for a client (the watch wakes it)
    local quiet = now - s.active_at
    if quiet >= c.idle_timeout and v.busy == 0 then
      scale(pool, s, c, T, 0, "down", ("no activity for %gs (idle_timeout %gs)"):format(
        math.floor(quiet * 10 + 0.5) / 10, c.idle_timeout))
      s.last_down, s.surplus_since = now, nil
      return
    end
  end

  local want, why = wanted(pool, s, c, v)
  if want == nil then return end
  want = math.max(c.min, math.min(c.max, want))
  if ondemand(c) and want < 1 then want = 1 end   -- only idle_timeout takes it to 0

  if want > T then
    s.surplus_since = nil
    for _, res in ipairs { "cpu", "memory", "io" } do
      local limit = c.pressure[res]
      local avg = limit and pressure_of(pool, res)
      if avg and avg > limit then
        if s.held_psi ~= res then
          s.held_psi = res
          record(pool, s, "info", ("up held: %s pressure %.1f%% > %g%% (%s)"):format(res, avg, limit, why),
            ("%d workers (%s): up held at %s, %s pressure %.1f%% > %g%%"):format(T, range(c), clock(), res, avg, limit))
        end
        return
      end
    end
    if s.held_psi then
      s.held_psi = nil
      corral.info(("autoscale: pressure below its limits again pool=%s"):format(pool))
    end
    if s.last_up and now - s.last_up < c.up.cooldown then return end
    local n = math.min(want, T + c.up.step)
    if scale(pool, s, c, T, n, "up", why) then s.last_up = now end
  elseif want < T then
    s.held_psi = nil
    s.surplus_since = s.surplus_since or now
    if now - s.surplus_since < c.down.cooldown then return end
    local n = math.max(want, T - c.down.step)
    if scale(pool, s, c, T, n, "down", ("%s for %gs"):format(why,
        math.floor((now - s.surplus_since) * 10 + 0.5) / 10)) then
      s.last_down, s.surplus_since = now, now    -- the next step waits a cooldown again
    end
  else
    s.surplus_since, s.held_psi = nil, nil
  end
end

-- ---- each load: state from the pools as they are ------------------------------

corral.on("config", function()
  local now = corral.now()
  local present = {}
  for _, name in ipairs(corral.pools()) do present[name] = true end
  for _, pool in ipairs(options.sorted_keys(conf)) do
    local c = conf[pool]
    local s = { log = {} }
    state[pool] = s
    if not present[pool] then
      corral.warn(("autoscale: no such pool: its options wait for a reload that adds it pool=%s"):format(pool))
    else
      local p = corral.status(pool)[1]
      -- activity, as far as status tells: the last request, the youngest worker
      local ago = p.last_request_ago
      for _, w in ipairs(p.workers) do
        if w.state ~= "exited" and w.state ~= "stopping" and (not ago or w.uptime < ago) then ago = w.uptime end
      end
      s.active_at = now - (ago or 0)
      s.requests = p.requests
      -- claim the target (the config's, or the one kept across a reload):
      -- corrald gives a kept target back to the config unless claimed
      if not STILL[p.state] and p.target >= c.min and p.target <= c.max then
        corral.scale(pool, p.target, { keep = true })
        s.target = p.target
      end
      set_note(pool, ("%d workers (%s): %d at the load, %s"):format(p.target, range(c), p.target, clock()))
      if ondemand(c) and not STILL[p.state] then watch(pool, s, c) end
      decide(pool)
      s.timer = corral.every(c.interval, function() decide(pool) end)
    end
  end
end)

corral.command("show", { read_only = true, args = { pool = "string?" },
  help = "each pool's target, range and last decisions" }, function(args)
  local out = {}
  for _, pool in ipairs(options.sorted_keys(conf)) do
    if not args.pool or args.pool == pool then
      local c, s = conf[pool], state[pool] or { log = {} }
      local list = corral.status(pool)
      out[pool] = { target = list and list[1].target or nil, min = c.min, max = c.max,
        state = list and list[1].state or "no such pool", decisions = s.log }
      if #s.log == 0 then out[pool].decisions = { "(none yet)" } end
    end
  end
  if args.pool and not out[args.pool] then error(("no pool %s in autoscale's options"):format(args.pool), 0) end
  return out
end)
