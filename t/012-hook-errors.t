#!/usr/bin/perl
# A Lua error in prefork, setup or start is logged with the hook's name,
# the file and line of the error and a traceback; the prototype or worker
# exits 1 and the pool restarts it with backoff, then fails at its crash
# limit; a reload with fixed hooks brings the pool up. corrald and the
# other pools are never disturbed. A start hook that returns ends the
# worker with status 0, restarted with restart = "always".

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive);
use Test::More;

sub config {
    my ($fixed) = @_;
    my $text = <<'EOF';
%LUA_HELPERS%

pool "healthy" {
  command = "/bin/sleep 1000",
  workers = 2,
  env_inherit = { "CORRAL_TEST_DIR" },
}

pool "lhealthy" {
  workers = 2,
  directory = "%TMP%",
  start = function(worker) idle() end,
}

pool "epre" {
  workers = 2,
  directory = "%TMP%",
  crash_limit = { failures = 3, interval = "1m" },
  prefork = function(pool)
    -- BROKEN: error("prefork broke") -- PREFORK-ERROR
    -- FIXED: return { fixed = true }
  end,
  start = function(worker)
    rec("epre", worker.id, corral.pid(), worker.pool.state.fixed)
    idle()
  end,
}

pool "eset" {
  workers = 2,
  directory = "%TMP%",
  crash_limit = { failures = 3, interval = "1m" },
  setup = function(worker)
    local function inner()
      -- BROKEN: error("setup broke") -- SETUP-ERROR
    end
    inner() -- SETUP-CALL
  end,
  start = function(worker)
    rec("eset", worker.id, corral.pid())
    idle()
  end,
}

pool "esta" {
  workers = 2,
  directory = "%TMP%",
  crash_limit = { failures = 3, interval = "1m" },
  start = function(worker)
    local t = nil
    -- BROKEN: local v = t.field -- START-ERROR
    rec("esta", worker.id, corral.pid())
    idle()
  end,
}

pool "oneshot" {
  restart = "always",
  directory = "%TMP%",
  start = function(worker)
    rec("oneshot", worker.id, corral.pid())
  end,
}

pool "oncefail" {
  restart = "on-failure",
  directory = "%TMP%",
  start = function(worker)
    rec("oncefail", worker.id, corral.pid())
  end,
}
EOF
    my $on = $fixed ? 'FIXED' : 'BROKEN';
    $text =~ s/-- $on: //g;
    return $text;
}

my $t = CorralTest->new(config => config(0));
my $conf = $t->conf;
my @conf_lines = split /\n/, CorralTest::slurp($conf);
sub line_of {
    my ($tag) = @_;
    for my $i (0 .. $#conf_lines) { return $i + 1 if index($conf_lines[$i], $tag) >= 0 }
    die "no line $tag";
}
sub recs {
    my ($what) = @_;
    return map { [ split / / ] } $t->file_lines('hooks.log', qr/^\Q$what\E /);
}

my $corrald = $t->start;
$t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=healthy$/);
$t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=lhealthy$/);
my %healthy = (healthy => [ $t->workers('healthy') ], lhealthy => [ $t->workers('lhealthy') ]);
my %healthy_proto = map { $_ => $t->prototype_pid($_) } keys %healthy;
is(scalar @{ $healthy{lhealthy} }, 2, 'lhealthy: two Lua workers found');

# --- the errors are logged: hook, file:line, message, traceback ------------

my %case = (
    epre => [ 'prefork', line_of('PREFORK-ERROR'), qr/prefork broke/ ],
    eset => [ 'setup',   line_of('SETUP-ERROR'),   qr/setup broke/ ],
    esta => [ 'start',   line_of('START-ERROR'),   qr/attempt to index local 't' \(a nil value\)/ ],
);
for my $pool (sort keys %case) {
    my ($hook, $line, $msg) = @{ $case{$pool} };
    my ($first) = $t->wait_log(qr/ error \Q$hook\E hook failed: \Q$conf\E:$line: $msg pool=$pool (?:worker=\d+ )?pid=\d+$/,
                               name => "$pool: '$hook hook failed: $conf:$line: ...' logged");
    next unless $first;
    my ($who) = $first =~ / (pool=\S+ (?:worker=\d+ )?pid=(\d+))$/;
    my $pid = $2;
    if ($hook eq 'prefork') {
        ok(scalar $t->log_lines(qr/ info prototype started pool=$pool pid=$pid$/), "$pool: logged with the prototype's pid");
        unlike($first, qr/ worker=/, "$pool: a prefork error names no worker");
    } else {
        ok(scalar $t->log_lines(qr/ info worker started pool=$pool worker=\d+ pid=$pid$/), "$pool: logged with the worker's pid");
    }
    $t->wait_log(qr/ error   stack traceback: \Q$who\E$/, timeout => 5,
                 name => "$pool: 'stack traceback:' line with the same pool and pid");
    $t->wait_log(qr/ error   \t\Q$conf\E:\d+: in function .* \Q$who\E$/, timeout => 5,
                 name => "$pool: traceback line naming $conf and a line");
    if ($hook eq 'setup') {
        my $call = line_of('SETUP-CALL');
        $t->wait_log(qr/ error   \t\Q$conf\E:$line: in function .* \Q$who\E$/, timeout => 5,
                     name => "$pool: traceback has the erroring function ($line)");
        $t->wait_log(qr/ error   \t\Q$conf\E:$call: in function .* \Q$who\E$/, timeout => 5,
                     name => "$pool: traceback has its caller ($call)");
    }
    if ($hook eq 'prefork') {
        $t->wait_log(qr/ warn prototype exited unexpectedly \(exited with status 1\) pool=$pool pid=$pid$/,
                     name => "$pool: the prototype exited with status 1");
        $t->wait_log(qr/ info restarting prototype in 100ms pool=$pool$/, name => "$pool: prototype restarted after backoff");
    } else {
        $t->wait_log(qr/ warn worker exited with status 1 \Q$who\E$/, name => "$pool: the worker exited with status 1");
        $t->wait_log(qr/ info restarting worker in \d+ms pool=$pool$/, name => "$pool: worker restarted after backoff");
    }
    $t->wait_log(qr/ error pool failed: 3 start failures within 60s, last: .+; staying down until start, restart or reload pool=$pool$/,
                 name => "$pool: pool failed at its crash limit");
}
ok(!recs('epre') && !recs('eset') && !recs('esta'), 'no broken pool ever reached its start record');
ok(!$t->log_lines(qr/ pool ready .* pool=epre$/), 'epre: never ready (no worker without a prototype)');
ok(!$t->log_lines(qr/ (?:worker ready|pool ready .*) pool=eset(?: |$)/), 'eset: a worker whose setup failed never counted as ready');
for my $pool (qw(epre eset esta)) {
    $t->wait_for(sub { !$t->workers($pool) && !$t->prototype_pid($pool) }, 5, "$pool: nothing left running once failed");
}

# --- start returning: status 0; restart = "always" restarts it --------------

my ($ex) = $t->wait_log(qr/ info worker exited with status 0 pool=oneshot worker=1 pid=\d+$/,
                        name => 'oneshot: a start hook that returns exits with status 0');
$t->wait_for(sub { recs('oneshot') >= 2 }, 10, 'oneshot: restarted (restart = "always") and ran again');
my @one = recs('oneshot');
isnt($one[0][2], $one[1][2], 'oneshot: the second run is a new process') if @one >= 2;
$t->wait_log(qr/ info worker exited with status 0 pool=oncefail worker=1 pid=\d+$/,
             name => 'oncefail: exits with status 0');
$t->wait_log(qr/ info worker not restarted \(restart = on-failure\) pool=oncefail worker=1 pid=\d+$/,
             name => 'oncefail: not restarted with restart = "on-failure"');
ok(!$t->log_lines(qr/ (?:warn|error) .* pool=(?:oneshot|oncefail)/), 'a start hook that returns is no error');

# --- the healthy pools never noticed ------------------------------------------

ok(pid_alive($corrald), 'corrald still running');
for my $pool (sort keys %healthy) {
    is_deeply([ $t->workers($pool) ], $healthy{$pool}, "$pool: same workers");
    is($t->prototype_pid($pool), $healthy_proto{$pool}, "$pool: same prototype");
}

# --- a reload with the hooks fixed brings the pools up ----------------------

my $mark = $t->mark;
$t->write_config(config(1));
$t->reload;
$t->wait_log(qr/ info reload done: 0 added, 3 changed, 0 removed, 4 unchanged\b/, since => $mark);
for my $pool (qw(epre eset esta)) {
    $t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=$pool$/, since => $mark, name => "$pool: up after the reload");
    $t->wait_for(sub { recs($pool) == 2 }, 10, "$pool: both workers reached start");
    is_deeply([ $t->worker_ids($pool) ], [ 1, 2 ], "$pool: workers 1 and 2 running");
}
is_deeply([ map { $_->[3] } recs('epre') ], [ 'true', 'true' ], 'epre: the fixed prefork state reached the workers');
ok(!$t->log_lines(qr/ hook failed: /, $mark), 'no hook error after the reload');
ok(pid_alive($corrald), 'corrald still running');
for my $pool (sort keys %healthy) {
    is_deeply([ $t->workers($pool) ], $healthy{$pool}, "$pool: same workers after the reload");
    is($t->prototype_pid($pool), $healthy_proto{$pool}, "$pool: same prototype after the reload");
}

$t->done;
