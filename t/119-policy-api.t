#!/usr/bin/perl
# What the policy plugins (autoscale, healthcheck, recycle) need of the
# plugin API, tested through a real corrald:
#   - corral.note(pool, worker, key, value): a line in `corralctl status`
#     (the pool's under it, a worker's in its row) and "notes" in the
#     JSON; removed with nil; gone with its worker and at a reload;
#     errors for a bad key or value, an unknown pool or worker, too many;
#   - corral.restart(pool, id, { reason = "unhealthy" }): the worker is
#     restarted, and its worker_exited event and status say "unhealthy";
#   - corral.restart(pool, id, { rolling = true, reason = "recycled" }):
#     a surge worker is ready before the old one is asked to stop, the
#     ready count never drops below the target, ids end 1..N, the old
#     worker's reason is "recycled";
#   - keep_prototype = true: a pool at 0 workers keeps its prototype,
#     and the first worker is its child; without it, none runs;
#   - corral.options: a plugin's option errors, all at once, each at the
#     line of its key in the config.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use CorralProc ();
use JSON::PP ();
use Test::More;

my $CONFIG = <<'EOF';
local events = {}
local function keep(s) events[#events + 1] = s end
corral.on("worker_ready", function(ev) keep(("ready %d %d"):format(ev.worker, ev.pid)) end)
corral.on("worker_exited", function(ev) keep(("exited %d %d %s"):format(ev.worker, ev.pid, ev.reason)) end)
corral.command("events", { read_only = true }, function() return { list = table.concat(events, ",") } end)
corral.command("note", { args = { pool = "string", worker = "integer?", key = "string", value = "string?" } },
  function(a)
    local ok, err = corral.note(a.pool, a.worker, a.key, a.value)
    return { ok = ok == true, err = err }
  end)
corral.command("many", { args = { pool = "string", n = "integer" } }, function(a)
  local last
  for i = 1, a.n do
    local ok, err = corral.note(a.pool, nil, "k" .. i, "v")
    if not ok then return { failed_at = i, err = err } end
  end
  return { failed_at = 0 }
end)
corral.command("bad", { args = { what = "string" } }, function(a)
  local calls = {
    key = function() return corral.note("web", nil, "Bad Key", "x") end,
    value = function() return corral.note("web", nil, "k", {}) end,
    long = function() return corral.note("web", nil, "k", ("x"):rep(201)) end,
    worker = function() return corral.note("web", 1.5, "k", "x") end,
    reason = function() return corral.restart("web", 1, { reason = "bored" }) end,
    option = function() return corral.restart("web", 1, { gently = true }) end,
    rolling = function() return corral.restart("web", nil, { rolling = true }) end,
    all = function() return corral.restart("web", 2, { all_at_once = true }) end,
    keep = function() return corral.scale("web", 3, { kep = true }) end,
  }
  local ok, err = pcall(calls[a.what])
  return { raised = not ok, err = tostring(err) }
end)
corral.command("restart", { args = { pool = "string", worker = "integer", reason = "string?", rolling = "boolean?" } },
  function(a)
    local ok, err = corral.restart(a.pool, a.worker, { reason = a.reason, rolling = a.rolling })
    return { ok = ok ~= nil, err = err }
  end)

-- a plugin that manages cold's count claims it at every load (while the
-- file "claim" exists): what autoscale does
local claim = io.open((os.getenv("CORRAL_TEST_DIR") or "/nonexistent") .. "/claim")
if claim then claim:close() end
corral.on("config", function()
  local st = corral.status("cold")
  if claim and st then corral.scale("cold", st[1].target, { keep = true }) end
end)
corral.command("scale", { args = { pool = "string", n = "integer", keep = "boolean?" } }, function(a)
  return { ok = corral.scale(a.pool, a.n, a.keep and { keep = true } or nil) ~= nil }
end)

pool "web" { command = "/bin/sleep 1000", workers = 3, env_inherit = { "CORRAL_TEST_DIR" } }
pool "slow" {
  workers = 3, ready = "lua",
  start = function() corral.sleep(0.4); corral.ready(); while not corral.stopping() do corral.sleep(0.2) end end,
}
pool "warm" { command = "/bin/sleep 1000", workers = 0, keep_prototype = true, env_inherit = { "CORRAL_TEST_DIR" } }
pool "cold" { command = "/bin/sleep 1000", workers = 0, env_inherit = { "CORRAL_TEST_DIR" } }
EOF

my $t = CorralTest->new(config => $CONFIG);
$t->start;

sub cmd {
    my ($name, %args) = @_;
    my $r = $t->request({ command => 'plugin', plugin => 'config', name => $name, args => \%args });
    return $r && $r->{ok} ? $r->{result} : { error => $r ? $r->{error} : 'no answer' };
}
sub events { split /,/, (cmd('events')->{list} // '') }
sub ready_count { my $s = $t->status($_[0]); $s ? $s->{$_[0]}{ready} : -1 }

$t->wait_for(sub { ready_count('web') == 3 && ready_count('slow') == 3 }, 20, 'web and slow ready');

# ---- notes ---------------------------------------------------------------------

{
    my $r = cmd('note', pool => 'web', key => 'autoscale', value => '3 workers (1..8): steady');
    ok($r->{ok}, 'a pool note is taken') or diag(explain $r);
    $r = cmd('note', pool => 'web', worker => 2, key => 'health', value => 'healthy');
    ok($r->{ok}, 'a worker note is taken') or diag(explain $r);

    my $st = $t->status('web')->{web};
    is_deeply($st->{notes}, { autoscale => '3 workers (1..8): steady' }, 'JSON: the pool\'s notes');
    my ($w2) = grep { $_->{id} == 2 } @{ $st->{workers} };
    is_deeply($w2->{notes}, { health => 'healthy' }, 'JSON: worker 2\'s notes');
    my ($w1) = grep { $_->{id} == 1 } @{ $st->{workers} };
    is_deeply($w1->{notes}, {}, 'JSON: worker 1 has none');

    my $text = $t->ctl('status', 'web')->{out};
    like($text, qr/^  autoscale: 3 workers \(1\.\.8\): steady$/m, 'text: the pool note under the pool');
    like($text, qr/^\s+2\s+\d+\s+ready\s.*\bhealth: healthy\b/m, 'text: the worker note in its row');

    $r = cmd('note', pool => 'web', worker => 2, key => 'health', value => "bad\e[31m");
    like($t->ctl('status', 'web')->{out}, qr/health: bad\\e\[31m/, 'text: a note is escaped for the terminal');

    cmd('note', pool => 'web', worker => 2, key => 'health');
    $st = $t->status('web')->{web};
    ($w2) = grep { $_->{id} == 2 } @{ $st->{workers} };
    is_deeply($w2->{notes}, {}, 'a note set to nil is gone');

    $r = cmd('note', pool => 'web', worker => 9, key => 'health', value => 'x');
    is($r->{err}, 'no such worker', 'a note on a worker that does not exist: no such worker');
    $r = cmd('note', pool => 'nope', key => 'health', value => 'x');
    is($r->{err}, 'no such pool', 'a note on a pool that does not exist: no such pool');

    $r = cmd('many', pool => 'cold', n => 17);
    is($r->{failed_at}, 17, 'the 17th note of a pool is refused');
    like($r->{err} // '', qr/too many notes/, '... as too many notes');

    for my $case (
        [ key => qr/corral\.note: expected a key/ ],
        [ value => qr/corral\.note: the value must be a string/ ],
        [ long => qr/at most 200 bytes/ ],
        [ worker => qr/corral\.note: expected a worker id/ ],
        [ reason => qr/corral\.restart: reason must be requested, recycled or unhealthy, not bored/ ],
        [ option => qr/corral\.restart: unknown option gently/ ],
        [ rolling => qr/corral\.restart: rolling replaces one worker/ ],
        [ all => qr/all_at_once is for a whole pool/ ],
    ) {
        my $b = cmd('bad', what => $case->[0]);
        ok($b->{raised}, "bad $case->[0]: raises") && like($b->{err}, $case->[1], "bad $case->[0]: says what");
    }

    # a worker's notes go with it: its replacement starts with none
    cmd('note', pool => 'web', worker => 3, key => 'health', value => 'healthy');
    my %before = $t->worker_map('web');
    kill 'KILL', $before{3};
    $t->wait_for(sub {
        my $s = $t->status('web') or return 0;
        my ($w) = grep { $_->{id} == 3 } @{ $s->{web}{workers} };
        $w && $w->{pid} != $before{3} && $w->{state} eq 'ready';
    }, 20, 'worker 3 replaced');
    ($w2) = grep { $_->{id} == 3 } @{ $t->status('web')->{web}{workers} };
    is_deeply($w2->{notes}, {}, 'the new worker 3 has no notes');
}

# ---- a restart for a reason --------------------------------------------------------

{
    my %before = $t->worker_map('web');
    my $r = cmd('restart', pool => 'web', worker => 1, reason => 'unhealthy');
    ok($r->{ok}, 'restart web/1 for unhealthy: done');
    $t->wait_for(sub { grep { $_ eq "exited 1 $before{1} unhealthy" } events() }, 20,
                 'worker_exited says unhealthy');
    $t->wait_for(sub { ready_count('web') == 3 }, 20, 'web back to 3');
    my $st = $t->status('web')->{web};
    my ($last) = grep { $_->{id} == 1 } @{ $st->{recent_exits} };
    is($last && $last->{reason}, 'unhealthy', 'status: the recent exit of worker 1 is unhealthy');
    my $log = $t->log;
    like($log, qr/restarting the worker \(unhealthy\)/, 'the log says why');
}

# ---- a rolling replacement of one worker ---------------------------------------------

{
    my %before = $t->worker_map('slow');
    my $n0 = scalar events();
    my $r = cmd('restart', pool => 'slow', worker => 2, reason => 'recycled', rolling => JSON::PP::true());
    ok($r->{ok}, 'rolling restart of slow/2: done');
    my $min = 3;
    my ($seen_replacing, %states);
    my $rmark = $t->mark;
    my $done = $t->poll(sub {
        my $s = $t->status('slow') or return 0;
        my $p = $s->{slow};
        $min = $p->{ready} if $p->{ready} < $min;
        $states{$p->{state}}++;
        $seen_replacing ||= grep { ($_->{replacing} // '') eq 'recycled' } @{ $p->{workers} };
        return 0 unless grep { $_ eq "exited 2 $before{2} recycled" } events();
        return $p->{ready} == 3 && $t->ids_settled('slow', 3);
    }, 30);
    ok($done, 'slow/2 replaced, ids 1..3 again');
    is($min, 3, 'never fewer than 3 ready during the replacement');
    ok($seen_replacing, 'status showed the worker being replaced (recycled)');
    is_deeply([ sort keys %states ], [ 'running' ], 'the pool stayed running throughout') or diag(explain \%states);
    unlike(substr($t->log, $rmark), qr/pool ready .*pool=slow/, 'no second pool_ready for it');
    my @ev = (events())[$n0 .. scalar(events()) - 1];
    my ($surge_ready) = grep { $ev[$_] =~ /^ready (\d+) / && $1 > 3 } 0 .. $#ev;
    my ($old_exit) = grep { $ev[$_] eq "exited 2 $before{2} recycled" } 0 .. $#ev;
    ok(defined $surge_ready && defined $old_exit && $surge_ready < $old_exit,
       'a surge worker was ready before the old worker 2 exited') or diag("@ev");
    my %after = $t->worker_map('slow');
    isnt($after{2}, $before{2}, 'worker 2 is new');
    is($after{1}, $before{1}, 'worker 1 untouched');
    is($after{3}, $before{3}, 'worker 3 untouched');
    unlike(join(' ', grep { /^exited/ } @ev), qr/crashed/, 'nothing counted as a crash');
}

# ---- keep_prototype -------------------------------------------------------------------

{
    my $s = $t->status;
    ok($s->{warm}{prototype} && $s->{warm}{prototype}{pid}, 'warm: a prototype at 0 workers')
        or diag(explain $s->{warm});
    is($s->{cold}{prototype}, undef, 'cold: no prototype at 0 workers');
    is($s->{warm}{state}, 'running', 'warm at 0 workers is running');
    my $proto = $s->{warm}{prototype}{pid};

    is($t->ctl('scale', 'warm', 1)->{code}, 0, 'scale warm 1');
    $t->wait_for(sub { ready_count('warm') == 1 }, 20, 'warm has a worker');
    my ($pid) = values %{ { $t->worker_map('warm') } };
    my ($ppid) = (CorralProc::slurp("/proc/$pid/stat") // '') =~ /^\d+ \(.*\) \S (\d+)/s;
    is($ppid, $proto, 'its worker is a child of the prototype that waited');
    is($t->ctl('--no-wait', 'scale', 'warm', 0)->{code}, 0, 'scale warm 0');
    $t->wait_for(sub { ready_count('warm') == 0 && !$t->workers('warm') }, 20, 'warm back to 0');
    $s = $t->status;
    is($s->{warm}{prototype}{pid}, $proto, 'the same prototype stays');

    is($t->ctl('stop', 'warm')->{code}, 0, 'stop warm');
    $t->wait_for(sub { !defined $t->status->{warm}{prototype} }, 20, 'a stopped pool keeps no prototype');
    is($t->ctl('start', 'warm')->{code}, 0, 'start warm');
    $t->wait_for(sub { my $p = $t->status->{warm}{prototype}; $p && $p->{pid} }, 20, 'started: a prototype again');
}

# ---- corral.scale with keep: the target outlives a reload, while claimed --------------------

{
    $t->write_file('claim', '');
    ok(cmd('scale', pool => 'cold', n => 2, keep => JSON::PP::true())->{ok}, 'a plugin scales cold to 2, kept');
    ok(cmd('scale', pool => 'warm', n => 1)->{ok}, 'and warm to 1, not kept');
    $t->wait_for(sub { ready_count('cold') == 2 && ready_count('warm') == 1 }, 20, 'cold at 2, warm at 1');
    my %before = $t->worker_map('cold');
    my $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/reload done/, since => $mark, name => 'reloaded');
    $t->wait_for(sub { !$t->workers('warm') }, 20, 'warm: back to its configured 0 workers');
    my $s = $t->status;
    is($s->{cold}{target}, 2, 'cold: the kept target 2 after the reload (claimed again)');
    $t->stays(sub { ready_count('cold') == 2 }, 1, 'cold keeps its 2 workers');
    my %after = $t->worker_map('cold');
    is_deeply(\%after, \%before, 'the same two workers, untouched');
    unlike(substr($t->log, $mark), qr/pool=cold.*stopping|stopp.*pool=cold/, 'no worker of cold asked to stop');

    # the plugin that kept it no longer claims it (gone from the config)
    unlink $t->path('claim');
    $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/ info reload: no plugin claimed the target of 2 workers again: back to the config's 0 pool=cold$/,
                 since => $mark, name => 'unclaimed: logged');
    $t->wait_for(sub { my $x = $t->status; $x && $x->{cold}{target} == 0 && !$t->workers('cold') }, 20,
                 'unclaimed: cold back to its configured 0');

    # corralctl scale: until the next reload
    ok(cmd('scale', pool => 'cold', n => 2, keep => JSON::PP::true())->{ok}, 'kept again');
    is($t->ctl('--no-wait', 'scale', 'cold', 1)->{code}, 0, 'the operator scales cold to 1');
    $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/reload done/, since => $mark, name => 'reloaded again');
    $t->wait_for(sub { my $x = $t->status; $x && $x->{cold}{target} == 0 }, 20,
                 'corralctl scale lasts until the next reload: cold back to 0');
    my $b = cmd('bad', what => 'keep');
    ok($b->{raised}, 'corral.scale with a bad option raises') && like($b->{err}, qr/corral\.scale: unknown option kep \(keep\)/, '... naming it');
}

# ---- a reload drops the notes ------------------------------------------------------------

{
    cmd('note', pool => 'web', key => 'autoscale', value => 'before the reload');
    my $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/reload/i, since => $mark, name => 'reloaded');
    $t->wait_for(sub { my $s = $t->status('web'); $s && !%{ $s->{web}{notes} } }, 20, 'the reload dropped the notes');
}

# ---- keep_prototype is not part of a pool's definition: a reload that changes it replaces nothing ----

{
    $t->wait_for(sub { ready_count('web') == 3 }, 20, 'web at 3');
    my %before = $t->worker_map('web');
    my $mark = $t->mark;
    $t->write_config($CONFIG =~ s/pool "web" \{ command/pool "web" { keep_prototype = true, command/r);
    $t->reload;
    my ($done) = $t->wait_log(qr/ info reload done: (.*)$/, since => $mark, name => 'reloaded with keep_prototype on web');
    like($done // '', qr/0 changed/, 'the reload changed no pool');
    $t->stays(sub { ready_count('web') == 3 }, 1, 'web keeps its 3 workers');
    is_deeply({ $t->worker_map('web') }, \%before, 'the same workers: none replaced');
}

# ---- config: keep_prototype must be a boolean ------------------------------------------------

{
    my $bad = CorralTest->new(config => qq{pool "x" {\n  command = "/bin/true",\n  keep_prototype = "yes",\n}\n});
    my $r = $bad->run_check;
    is($r->{code}, 1, 'keep_prototype = "yes": corrald -t exits 1');
    like($r->{err}, qr/:3: pool "x": keep_prototype: expected true or false, got "yes"/, '... at its line')
        or diag($r->{err});
}

# ---- corral.options: a plugin's errors at the lines of their keys -----------------------------

{
    my $p = CorralTest->new(config => <<'EOF');
pool "web" { command = "/bin/true" }
plugin "opts" {
  web = {
    min = 3,
    mx = 2,
    every = "5 parsecs",
  },
  api = { min = 9, max = 2 },
}
EOF
    $p->write_file('plugins/opts.lua', <<'EOF');
local options = require "corral.options"
local check = options.check
local conf = options.validate("opts", ..., check.pools {
  min = { check.integer(0, 100), 1 }, max = { check.integer(1, 100), 4 }, every = { check.duration, 1 },
})
for pool, c in pairs(conf) do
  if c.max < c.min then options.fail("opts", { { key = pool .. ".max", msg = "must be at least min" } }) end
end
EOF
    my $r = $p->run_check;
    my $conf = $p->conf;
    is($r->{code}, 1, 'plugin options: corrald -t exits 1');
    like($r->{err}, qr/^corrald: \Q$conf\E:5: plugin "opts": web: unknown key "mx" \(did you mean "max"\?\)$/m,
         'an unknown key at its line, with did you mean') or diag($r->{err});
    like($r->{err}, qr/^corrald: \Q$conf\E:6: plugin "opts": web\.every: invalid duration "5 parsecs"/m,
         'a bad value at its line, in the same run');
    $p->write_file('corral.lua', qq{pool "web" { command = "/bin/true" }\nplugin "opts" {\n  web = { min = 1 },\n  api = {\n    min = 9,\n    max = 2,\n  },\n}\n});
    $r = $p->run_check;
    like($r->{err}, qr/^corrald: \Q$conf\E:6: plugin "opts": api\.max: must be at least min$/m,
         'options.fail: at the line of its key') or diag($r->{err});
}

$t->done;
