#!/usr/bin/perl
# Status explains everything, read as a user reads it (corralctl's output
# and exit status, and the JSON):
#   - a pool waiting out its backoff shows a row per id with "restart in"
#     and how its last worker ended; a worker that could not exec shows
#     the step that failed (JSON: step, error);
#   - a pool failed by its crash limit shows why and since when (text and
#     JSON), `corralctl status POOL` exits 8, is-ready says "failed";
#   - last_exit is an object: {"code":3,...} for an exit, {"signal":9,
#     "name":"KILL",...} for a kill, with its reason and a timestamp;
#   - rows are sorted by id after restarts, in the table and the JSON;
#   - recent_exits has the kill (crashed) and `restart POOL` (requested);
#   - every pool says since when it is in its state;
#   - is-ready on ready, starting and failed pools, -q, every pool;
#   - reload answers with an object (added, changed, ... or errors).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use JSON::PP ();
use POSIX ();
use Test::More;
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);

my $JSON = JSON::PP->new->utf8->canonical;
my $ISO = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

sub config {
    my ($extra) = @_;
    return <<"EOF" . ($extra // '');
local inherit = { "CORRAL_TEST_DIR" }
local quick = { initial = "10ms", max = "50ms" }
pool "web" { command = "/bin/sleep 1000", workers = 3, backoff = quick, start_window = "0s" }
pool "coded" {
  command = { "/bin/sh", "-c", "while [ ! -e %TMP%/exit.\$\$ ]; do /bin/sleep 0.05; done; exit 3" },
  backoff = quick, start_window = "0s",
}
pool "flap" {
  command = { "/bin/sh", "-c", "exit 1" }, workers = 2,
  backoff = { initial = "60s", max = "60s" }, crash_limit = { failures = 0 },
}
pool "noexec" {
  command = "%TMP%/no-such-program", backoff = { initial = "60s", max = "60s" }, crash_limit = { failures = 0 },
}
pool "doomed" {
  command = { "/bin/sh", "-c", "exit 1" }, backoff = quick, crash_limit = { failures = 3, interval = "60s" },
}
pool "gated" { command = "/bin/sleep 1000", ready = "notify" }
pool "once" {
  command = { "/bin/sh", "-c", "while [ ! -e %TMP%/done.\$CORRAL_WORKER ]; do /bin/sleep 0.05; done; exit 0" },
  workers = 2, restart = "never", start_window = "0s",
}
EOF
}

my $t = CorralTest->new(config => config());
my $t0 = clock_gettime(CLOCK_MONOTONIC);
$t->start;
$t->wait_control;

sub pool_json {
    my ($pool) = @_;
    my $r = $t->ctl('--json', 'status', $pool);
    return eval { $JSON->decode($r->{out})->{pools}[0] };
}

sub wait_pool {
    my ($pool, $what, $cond) = @_;
    my $p;
    $t->wait_for(sub { $p = pool_json($pool); $p && $cond->($p) }, 15, "$pool: $what");
    return $p || {};
}

# A member that should be an object ({} when it is not: the test goes on).
sub obj { ref $_[0] eq 'HASH' ? $_[0] : {} }

sub stamp_ok {
    my ($s, $name, $lo) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok(ref $s eq 'HASH' && ($s->{iso} // '') =~ $ISO, "$name: iso is UTC with ms") or diag($JSON->encode([$s]));
    my $now = clock_gettime(CLOCK_MONOTONIC);
    ok(ref $s eq 'HASH' && defined $s->{mono} && $s->{mono} >= ($lo // $t0) - 0.01 && $s->{mono} <= $now + 0.01,
       "$name: mono is on the monotonic clock, in range") or diag($JSON->encode([$s]));
}

# --- backoff: a row per id, with restart in ------------------------------------

my $flap = wait_pool('flap', 'both ids have exited and wait out the backoff', sub {
    my $p = shift;
    my @v = @{ $p->{vacant} || [] };
    @v == 2 && !grep { $_->{state} ne 'backoff' || !$_->{last_exit} } @v;
});
is_deeply([ map { $_->{id} } @{ $flap->{vacant} || [] } ], [ 1, 2 ], 'flap: vacant ids 1 and 2, sorted');
for my $v (@{ $flap->{vacant} || [] }) {
    cmp_ok($v->{restart_in} // 0, '>', 1, "flap/$v->{id}: restart_in of the backoff");
    is($v->{last_exit}{code}, 1, "flap/$v->{id}: last_exit code 1");
    is($v->{last_exit}{reason}, 'crashed', "flap/$v->{id}: reason crashed");
    stamp_ok($v->{last_exit}{at}, "flap/$v->{id}: last_exit at");
}
my $r = $t->ctl('status', 'flap');
is($r->{code}, 0, 'status flap: exit 0 (backing off is not failed)');
like($r->{out}, qr/^\s+1\s+-\s+backoff\s.*\brestart in \d[\d.]*s; last: crashed: exited with status 1$/m,
     'status flap: row 1 says backoff, restart in, and the last exit') or diag($r->{out});
like($r->{out}, qr/^\s+2\s+-\s+backoff\s.*\brestart in /m, 'status flap: row 2 too');

# --- a start that failed before exec: the step -----------------------------------

my $noexec = wait_pool('noexec', 'its worker failed to exec', sub { (($_[0]{vacant} || [])->[0] || {})->{last_exit} });
my $ne = obj((($noexec->{vacant} || [])->[0] || {})->{last_exit});
is($ne->{step}, 'exec', 'noexec: last_exit step is exec');
is($ne->{error}, 'No such file or directory', 'noexec: last_exit error is the errno text');
is($ne->{code}, 127, 'noexec: code 127');
like($t->ctl('status', 'noexec')->{out}, qr/^\s+1\s+-\s+backoff\s.*\(unable to exec: No such file or directory\)$/m,
     'status noexec: the row names the failed step');

# --- crash limit: failed, why, since when; status POOL exits 8 ---------------------

my $doomed = wait_pool('doomed', 'failed by its crash limit', sub { $_[0]{state} eq 'failed' });
like($doomed->{failure} // '', qr/^3 start failures within 60s, last: worker 1 exited with status 1/, 'doomed: failure says why');
stamp_ok($doomed->{since}, 'doomed: since');
is((($doomed->{vacant} || [])->[0] || {})->{state}, 'failed', 'doomed: its id 1 row is failed');
$r = $t->ctl('status', 'doomed');
is($r->{code}, 8, 'status doomed: exit 8, the pool is failed');
like($r->{out}, qr/^  failed since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC; \d+(?:ms|s) ago$/m, 'status doomed: failed since when');
like($r->{out}, qr/^  failed: 3 start failures within 60s, last: /m, 'status doomed: why');
is($t->ctl('--json', 'status', 'doomed')->{code}, 8, 'status --json doomed: exit 8 too');
is($t->ctl('status')->{code}, 0, 'status of all pools: exit 0');

# --- last_exit objects: code and signal ---------------------------------------------

$t->wait_for(sub { my $p = pool_json('web'); $p && $p->{state} eq 'running' }, 15, 'web: running');
$t->wait_for(sub { my $p = pool_json('coded'); $p && $p->{state} eq 'running' }, 15, 'coded: running');
my ($cw) = @{ pool_json('coded')->{workers} };
$t->write_file("exit.$cw->{pid}", '');
my $coded = wait_pool('coded', 'its worker exited with 3 and was replaced', sub {
    my ($w) = @{ $_[0]{workers} };
    $_[0]{state} eq 'running' && $w && $w->{last_exit};
});
my $ce = obj($coded->{workers}[0]{last_exit});
is($ce->{code}, 3, 'coded: last_exit code 3');
ok(!exists $ce->{signal}, 'coded: no signal');
is($ce->{reason}, 'crashed', 'coded: reason crashed');
ok(!exists $coded->{workers}[0]{last_exit_reason}, 'last_exit_reason is folded into last_exit');

my $kill_at = clock_gettime(CLOCK_MONOTONIC);
my ($victim) = grep { $_->{id} == 1 } @{ pool_json('web')->{workers} };
kill 'KILL', $victim->{pid};
my $web = wait_pool('web', 'worker 1 killed and replaced', sub {
    my ($w) = grep { $_->{id} == 1 } @{ $_[0]{workers} };
    $_[0]{state} eq 'running' && $w && $w->{last_exit} && $w->{pid} != $victim->{pid};
});
my ($w1) = grep { $_->{id} == 1 } @{ $web->{workers} };
my $ke = obj($w1->{last_exit});
is_deeply([ @$ke{qw(signal name core oom reason)} ], [ 9, 'KILL', JSON::PP::false, JSON::PP::false, 'crashed' ],
          'web/1: last_exit {signal 9, name KILL, core false, oom false, reason crashed}') or diag($JSON->encode($ke));
ok(!exists $ke->{code}, 'web/1: no code for a signal');
stamp_ok($ke->{at}, 'web/1: last_exit at', $kill_at);

# --- sorted by id after restarts ------------------------------------------------------

is_deeply([ map { $_->{id} } @{ $web->{workers} } ], [ 1, 2, 3 ], 'web: workers sorted by id after a restart of id 1');
my @rows = $t->ctl('status', 'web')->{out} =~ /^\s+(\d+)\s+\d+\s+(?:ready|starting)\s/mg;
is_deeply(\@rows, [ 1, 2, 3 ], 'status web: rows sorted by id');

# --- recent exits: crashed, then requested ----------------------------------------------

$r = $t->ctl('restart', 'web');
is($r->{code}, 0, 'restart web') or diag($r->{err});
$web = wait_pool('web', 'the restart is in recent_exits', sub { 4 <= @{ $_[0]{recent_exits} || [] } });
my @rec = map { obj($_) } @{ $web->{recent_exits} || [] }[0..3];
is_deeply([ @{ $rec[0] }{qw(id signal name reason)} ], [ 1, 9, 'KILL', 'crashed' ], 'recent_exits: the kill first, crashed');
is_deeply([ map { $_->{reason} } @rec[1..3] ], [ ('requested') x 3 ], 'recent_exits: then 3 requested by the restart');
is_deeply([ sort map { $_->{id} } @rec[1..3] ], [ 1, 2, 3 ], 'recent_exits: of ids 1, 2, 3');
stamp_ok($_->{at}, "recent_exits: web/" . ($_->{id} // '?') . " at", $kill_at) for @rec;
like($t->ctl('status', 'web')->{out}, qr{^  recent: \d\d:\d\d:\d\d web/\d requested \(}m, 'status web: the recent line');
my $all = $t->ctl('status', 'web')->{out};
like($all, qr/^  (?:running|reloading) since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC; \d+(?:ms|s|min \d+s) ago$/m,
     'status web: its state since when');
stamp_ok(pool_json('web')->{since}, 'web: since');

# --- an id not restarted (restart = "never"): retired ------------------------------

$t->wait_for(sub { my $p = pool_json('once'); $p && $p->{state} eq 'running' }, 15, 'once: running');
$t->write_file('done.1', '');
my $once = wait_pool('once', 'worker 1 exited, not restarted', sub { @{ $_[0]{vacant} || [] } == 1 });
is_deeply([ @{ obj($once->{vacant}[0]) }{qw(id state)} ], [ 1, 'retired' ], 'once: id 1 is a retired row');
is(obj(obj($once->{vacant}[0])->{last_exit})->{reason}, 'exited', 'once: its last exit: exited');
like($t->ctl('status', 'once')->{out}, qr/^\s+1\s+-\s+retired\s.*not restarted \(restart policy\); last: exited: exited with status 0$/m,
     'status once: row 1 says why it has no worker');
unlink $t->path('done.1');    # its next worker 1 (after the reload) stays

# --- is-ready ------------------------------------------------------------------------------

$t->wait_for(sub { my $p = pool_json('web'); $p && $p->{state} eq 'running' }, 15, 'web: running after the restart');
$r = $t->ctl('is-ready', 'web');
is_deeply([ $r->{code}, $r->{out} ], [ 0, "ready\n" ], 'is-ready web: exit 0, "ready"');
$r = $t->ctl('is-ready', 'gated');
is_deeply([ $r->{code}, $r->{out} ], [ 9, "starting\n" ], 'is-ready gated (never ready): exit 9, "starting"');
$r = $t->ctl('is-ready', 'doomed');
is_deeply([ $r->{code}, $r->{out} ], [ 8, "failed\n" ], 'is-ready doomed: exit 8, "failed"');
$r = $t->ctl('-q', 'is-ready', 'gated');
is_deeply([ $r->{code}, $r->{out} ], [ 9, '' ], 'is-ready -q gated: exit 9, nothing printed');
$r = $t->ctl('is-ready');
is($r->{code}, 8, 'is-ready of every pool: exit 8 (one is failed)');
like($r->{out}, qr/^web ready\ngated starting\n|^web ready\n(?:.*\n)*gated starting\n/m, 'is-ready: a line per pool, name and word');
is($t->ctl('is-ready', 'nope')->{code}, 3, 'is-ready of an unknown pool: exit 3');

# --- reload: an object --------------------------------------------------------------------

$t->write_config(config(qq(pool "extra" { command = "/bin/sleep 1000" }\n)));
$r = $t->ctl('--json', '--no-wait', 'reload');
is($r->{code}, 0, '--json reload: exit 0');
my $ans = eval { $JSON->decode($r->{out}) } || {};
is_deeply(obj($ans->{reload}), { added => ['extra'], changed => [], removed => [],
                            unchanged => [qw(web coded flap noexec doomed gated once)], rescaled => ['once'] },
          '--json reload: the object says what happened to each pool') or diag($r->{out});
like($ans->{message} // '', qr/^1 added, 0 changed, 0 removed, 7 unchanged \(some rescaled\)$/, '--json reload: the message still there');
$t->write_config(config());
$r = $t->ctl('--no-wait', 'reload');
like($r->{out}, qr/^0 added, 0 changed, 1 removed, 7 unchanged\n  removed: extra\n\z/, 'reload: the pools removed, by name');
$t->write_config(config(qq(pool "broken" { wrokers = 1 }\n)));
$r = $t->ctl('--json', 'reload');
is($r->{code}, 1, '--json reload of a bad config: exit 1');
$ans = eval { $JSON->decode($r->{out}) } || {};
my $errors = obj($ans->{reload})->{errors};
ok(ref $errors eq 'ARRAY' && @$errors >= 1 && $errors->[0] =~ /wrokers/,
   '--json reload of a bad config: reload.errors names it') or diag($r->{out});
$t->write_config(config());

$t->done;
