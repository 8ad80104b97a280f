#!/usr/bin/perl
# corrald to its service manager: the test owns the NOTIFY_SOCKET and
# checks the exact messages of a start (STATUS as workers come up, then
# READY=1); a reload (RELOADING=1 with MONOTONIC_USEC, READY=1) with an
# unchanged, a bad and a changing config; a stop (STOPPING=1, then
# STATUS=stopping: N workers left); a start that fails (no READY=1, exit 1)
# and a failure after READY=1 (corrald goes on); EXTEND_TIMEOUT_USEC while
# a slow start progresses (and no READY=1 for a reload before the start is
# done); WATCHDOG=1 pings at half of WATCHDOG_USEC, only for WATCHDOG_PID.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_environ find_program);
use Test::More;
use Time::HiRes qw(time clock_gettime CLOCK_MONOTONIC);

sub mono_usec { int(clock_gettime(CLOCK_MONOTONIC) * 1e6) }

# The STATUS line corrald sends while running.
sub status_re {
    my ($pools) = @_;
    return qr/^STATUS=$pools pools?, (\d+)\/(\d+) workers ready$/;
}

# Checks that @msgs are STATUS lines for $pools pools and $want workers,
# ready counts never going down, the last one all ready.
sub status_climb {
    my ($msgs, $pools, $want, $name) = @_;
    my $re = status_re($pools);
    my ($prev, @bad) = (-1);
    for my $m (@$msgs) {
        my ($r, $w) = $m =~ $re or do { push @bad, $m; next };
        push @bad, $m if $w != $want || $r < $prev || $r > $want;
        $prev = $r;
    }
    ok(!@bad && @$msgs && $prev == $want, $name) or diag(show(@$msgs));
}

sub show { join "\n", map { "  [$_]" } @_ }

# After TERM (or a failed start): reads every message until corrald has
# exited; checks they are STOPPING=1 (unless $seen_stopping) and then only
# "STATUS=stopping: N workers left" lines, N never growing and at most
# $max. Returns corrald's exit code.
sub stop_sequence {
    my ($t, $max, $name, $seen_stopping) = @_;
    my $code = $t->wait_exit(10);    # reads the socket meanwhile
    my @m = $t->notify_drain;
    unless ($seen_stopping) {
        is($m[0], 'STOPPING=1', "$name: STOPPING=1 first") or diag(show(@m));
        shift @m;
    }
    my ($prev, @bad) = ($max);
    for (@m) {
        # a failed start keeps its reason in front
        my ($n, $s) = /^STATUS=(?:failed: [^;]+; )?stopping: (\d+) worker(s?) left$/ or do { push @bad, $_; next };
        push @bad, $_ if $n > $prev || ($n == 1) != ($s eq '');
        $prev = $n;
    }
    ok(@m && !@bad, "$name: then only STATUS=stopping: N workers left, N going down from at most $max")
        or diag(show(@m));
    like($m[-1] // '', qr/^STATUS=(?:failed: [^;]+; )?stopping: 0 workers left$/,
         "$name: the last one says 0 workers left");
    return $code;
}

my $inherit = 'env_inherit = { "CORRAL_TEST_DIR" }';

# ---- start, reloads, stop ------------------------------------------------

{
    my $t = CorralTest->new(config => <<"EOF");
pool "alpha" { command = "/bin/sleep 1000", workers = 2, $inherit }
pool "beta" { command = "/bin/sleep 1001", workers = 1, env_inherit = true }
EOF
    $t->notify_listen;
    $t->start;

    my @start = $t->notify_until(qr/^READY=1$/, 15);
    is($start[0], 'STATUS=2 pools, 0/3 workers ready', 'start: first message is STATUS with 0/3 ready');
    is($start[-1], 'READY=1', 'start: READY=1 comes') or diag(show(@start));
    status_climb([ @start[0 .. $#start - 1] ], 2, 3, 'start: then only STATUS lines, ready count climbing to 3/3');
    is($start[-2], 'STATUS=2 pools, 3/3 workers ready', 'start: READY=1 right after STATUS 3/3');
    is(scalar(grep { $_ eq 'READY=1' } @start), 1, 'start: READY=1 once');
    $t->wait_log(qr/ info ready: 2 pools, 3\/3 workers ready$/);
    is(scalar $t->workers('alpha') + $t->workers('beta'), 3, 'all 3 workers run when READY=1 is sent');
    my @quiet = $t->notify_during(1);
    is_deeply(\@quiet, [], 'nothing more once ready') or diag(show(@quiet));

    # workers see corrald's own socket, never the manager's, and nothing
    # of the manager's protocol even with env_inherit = true
    my ($b) = $t->workers('beta');
    my $env = proc_environ($b);
    is($env->{NOTIFY_SOCKET}, $t->worker_notify_socket, 'worker NOTIFY_SOCKET is corrald\'s own (env_inherit = true)');
    ok(!exists $env->{WATCHDOG_USEC} && !exists $env->{WATCHDOG_PID}, 'worker has no WATCHDOG_* without a pool watchdog');

    # reload, nothing changed: RELOADING=1 + MONOTONIC_USEC, READY=1, no STATUS
    my %pids = map { $_ => [ $t->workers($_) ] } qw(alpha beta);
    my $before = mono_usec();
    $t->reload;
    my $m1 = $t->notify_next(10);
    my $after = mono_usec();
    my ($mono) = ($m1 // '') =~ /^RELOADING=1\nMONOTONIC_USEC=(\d+)$/;
    ok(defined $mono, 'reload: "RELOADING=1\nMONOTONIC_USEC=N" first') or diag("got [" . ($m1 // 'nothing') . "]");
    ok(defined $mono && $mono >= $before && $mono <= $after, 'reload: MONOTONIC_USEC is CLOCK_MONOTONIC at the reload')
        or diag("before $before, got " . ($mono // '-') . ", after $after");
    is($t->notify_next(10), 'READY=1', 'reload: then READY=1');
    $t->wait_log(qr/ info reload done: 0 added, 0 changed, 0 removed, 2 unchanged$/);
    @quiet = $t->notify_during(1);
    is_deeply(\@quiet, [], 'unchanged reload: nothing after READY=1') or diag(show(@quiet));
    is_deeply({ map { $_ => [ $t->workers($_) ] } qw(alpha beta) }, \%pids, 'unchanged reload: same workers');

    # reload with a bad config: the same two messages, nothing else
    $t->write_config("pool \"alpha\" { command = \n");
    my $mark = $t->mark;
    $before = mono_usec();
    $t->reload;
    my @bad = ($t->notify_next(10), $t->notify_next(10));
    $after = mono_usec();
    like($bad[0] // '', qr/^RELOADING=1\nMONOTONIC_USEC=\d+$/, 'bad reload: RELOADING=1 with MONOTONIC_USEC');
    ($mono) = ($bad[0] // '') =~ /MONOTONIC_USEC=(\d+)/;
    ok(defined $mono && $mono >= $before && $mono <= $after, 'bad reload: MONOTONIC_USEC in range');
    is($bad[1], 'READY=1', 'bad reload: READY=1 all the same (the running config is whole)');
    $t->wait_log(qr/ error reload failed, keeping the running configuration: /, since => $mark);
    @quiet = $t->notify_during(1);
    is_deeply(\@quiet, [], 'bad reload: nothing after READY=1') or diag(show(@quiet));
    is_deeply({ map { $_ => [ $t->workers($_) ] } qw(alpha beta) }, \%pids, 'bad reload: same workers');

    # reload that replaces alpha's workers and adds a pool: RELOADING,
    # READY=1, then STATUS lines as the new workers come up
    $t->write_config(<<"EOF");
pool "alpha" { command = "/bin/sleep 1000", workers = 2, env = { GEN = "2" }, $inherit }
pool "beta" { command = "/bin/sleep 1001", workers = 1, env_inherit = true }
pool "gamma" { command = "/bin/sleep 1002", workers = 2, $inherit }
EOF
    $mark = $t->mark;
    $t->reload;
    my @r = $t->notify_until(qr/^STATUS=3 pools, 5\/5 workers ready$/, 15);
    like($r[0] // '', qr/^RELOADING=1\nMONOTONIC_USEC=\d+$/, 'changing reload: RELOADING=1 first');
    is($r[1], 'READY=1', 'changing reload: READY=1 second');
    status_climb([ @r[2 .. $#r] ], 3, 5, 'changing reload: then STATUS lines climbing to 3 pools, 5/5');
    like($r[2] // '', qr/^STATUS=3 pools, [01]\/5 workers ready$/,
         'changing reload: the replaced and added workers do not count as ready at first');
    $t->wait_log(qr/ info reload done: 1 added, 1 changed, 0 removed, 1 unchanged$/, since => $mark);
    $t->wait_for(sub { $t->workers('alpha') == 2 && !grep { my $p = $_; grep { $_ == $p } @{ $pids{alpha} } } $t->workers('alpha') },
                 10, 'changing reload: alpha runs 2 new workers');
    @quiet = $t->notify_during(1);
    is_deeply(\@quiet, [], 'changing reload: no second READY=1, nothing more') or diag(show(@quiet));

    # stop: STOPPING=1, then STATUS=stopping: ... as workers go, then nothing
    $t->signal('TERM');
    is(stop_sequence($t, 5, 'stop'), 0, 'stop: corrald exits 0');
    $t->check_invariants;
}

# ---- a pool that fails before it is ready: no READY=1, exit 1 ------------

{
    my $t = CorralTest->new(config => <<"EOF");
pool "good" { command = "/bin/sleep 1000", $inherit }
pool "bad" {
  command = "/bin/false", ready = "notify",
  backoff = { initial = "20ms", max = "50ms" },
  crash_limit = { failures = 3, interval = "30s" },
  $inherit,
}
EOF
    $t->notify_listen;
    $t->start;
    my @m = $t->notify_until(qr/^STOPPING=1$/, 15);
    is($m[0], 'STATUS=2 pools, 0/2 workers ready', 'failed start: first STATUS');
    is($m[-1], 'STOPPING=1', 'failed start: STOPPING=1') or diag(show(@m));
    like($m[-2] // '', qr/^STATUS=2 pools, [01]\/2 workers ready, failed: bad$/,
         'failed start: the STATUS before it names the failed pool');
    ok(!grep({ $_ eq 'READY=1' } @m), 'failed start: no READY=1');
    my @bad = grep { !/^STATUS=2 pools, [01]\/2 workers ready(, failed: bad)?$/ } @m[0 .. $#m - 1];
    is_deeply(\@bad, [], 'failed start: only STATUS lines before STOPPING=1');
    is(stop_sequence($t, 2, 'failed start', 1), 1, 'failed start: corrald exits 1');
    $t->wait_log(qr/ info stopping \(pool bad failed before it was ready\)$/);
    $t->check_invariants;
}

# ---- a pool that fails after READY=1: corrald goes on, STATUS says so ----

{
    my $t = CorralTest->new(config => <<"EOF");
pool "good" { command = "/bin/sleep 1000", $inherit }
pool "bad" {
  command = { "/bin/sh", "-c", "while [ ! -e %TMP%/go ]; do sleep 0.05; done; exit 1" },
  backoff = { initial = "20ms", max = "50ms" },
  crash_limit = { failures = 3, interval = "30s" },
  $inherit,
}
EOF
    $t->notify_listen;
    $t->start;
    my @m = $t->notify_until(qr/^READY=1$/, 10);
    is($m[-1], 'READY=1', 'failure after ready: READY=1 first') or diag(show(@m));
    $t->write_file('go', '');
    $t->wait_log(qr/ error pool failed: 3 start failures within 30s, last: .+; staying down until start, restart or reload pool=bad$/);
    @m = $t->notify_until(qr/failed: bad/, 10);
    like($m[-1] // '', qr/^STATUS=2 pools, 1\/2 workers ready, failed: bad$/, 'failure after ready: STATUS names the failed pool');
    my @bad = grep { !/^STATUS=2 pools, [12]\/2 workers ready$/ } @m[0 .. $#m - 1];
    is_deeply(\@bad, [], 'failure after ready: only STATUS lines before it');
    my @rest = $t->notify_during(1);
    is_deeply(\@rest, [], 'failure after ready: no STOPPING=1, nothing more') or diag(show(@rest));
    ok($t->pid && CorralTest::pid_alive($t->pid), 'failure after ready: corrald goes on');
    is(scalar $t->workers('good'), 1, 'failure after ready: the good pool still runs');
    $t->signal('TERM');
    is(stop_sequence($t, 1, 'failure after ready'), 0, 'failure after ready: exit 0');
    $t->check_invariants;
}

# ---- EXTEND_TIMEOUT_USEC while a slow start progresses -------------------

SKIP: {
    my $sdnotify = find_program('systemd-notify')
        or skip 'systemd-notify not installed (Debian package systemd)', 1;
    # two workers, each ready when the test creates its go file
    my $t = CorralTest->new(config => <<"EOF");
pool "slow" {
  command = { "/bin/sh", "-c", "while [ ! -e %TMP%/go.\$CORRAL_WORKER ]; do sleep 0.05; done; $sdnotify --ready; exec sleep 1000" },
  workers = 2, ready = "notify", $inherit,
}
EOF
    $t->notify_listen;
    $t->start;
    is($t->notify_next(10), 'STATUS=1 pool, 0/2 workers ready', 'slow start: STATUS 0/2');
    # a reload while starting: RELOADING=1, and READY=1 waits for the pools
    $t->reload;
    like($t->notify_next(10) // '', qr/^RELOADING=1\nMONOTONIC_USEC=\d+$/, 'reload while starting: RELOADING=1');
    # corrald's 5 s tick came and went with no worker ready: no extension
    my @m = $t->notify_during(6.5);
    is_deeply(\@m, [], 'slow start: no EXTEND_TIMEOUT_USEC while nothing progresses; no READY=1 after the reload while starting')
        or diag(show(@m));
    $t->write_file('go.1', '');
    is($t->notify_next(10), 'STATUS=1 pool, 1/2 workers ready', 'slow start: STATUS 1/2');
    my $t1 = time;
    is($t->notify_next(12), 'EXTEND_TIMEOUT_USEC=15000000', 'slow start: EXTEND_TIMEOUT_USEC=15000000 at the next tick');
    cmp_ok(time - $t1, '<=', 6, 'slow start: ... within one tick (5 s) of the progress');
    @m = $t->notify_during(6.5);
    is_deeply(\@m, [], 'slow start: no extension at the tick after, with no progress since') or diag(show(@m));
    $t->write_file('go.2', '');
    is_deeply([ $t->notify_next(10), $t->notify_next(10) ],
              [ 'STATUS=1 pool, 2/2 workers ready', 'READY=1' ], 'slow start: STATUS 2/2, READY=1');
    @m = $t->notify_during(5.5);
    is_deeply(\@m, [], 'slow start: no extension once ready') or diag(show(@m));
    $t->check_invariants;
}

# ---- WATCHDOG=1 at half of WATCHDOG_USEC ---------------------------------

{
    my $t = CorralTest->new(
        env => { WATCHDOG_USEC => 200000, WATCHDOG_PID => sub { $$ } },
        config => qq{pool "w" { command = "/bin/sleep 1000", env_inherit = true }\n});
    $t->notify_listen(skip => qr/^WATCHDOG=1$/);
    $t->start;
    is_deeply([ $t->notify_until(qr/^READY=1$/, 10) ],
              [ 'STATUS=1 pool, 0/1 workers ready', 'STATUS=1 pool, 1/1 workers ready', 'READY=1' ],
              'watchdog: start messages unchanged by the pings');
    $t->wait_log(qr/ info notify: pinging the service manager's watchdog every 0\.1s$/);
    my $from = time;
    my @other = $t->notify_during(2);
    my $to = time;
    is_deeply(\@other, [], 'watchdog: nothing but pings while running') or diag(show(@other));
    my @pings = map { $_->[0] } grep { $_->[1] eq 'WATCHDOG=1' && $_->[0] >= $from && $_->[0] <= $to } $t->notify_log;
    cmp_ok(scalar @pings, '>=', 12, 'watchdog: about 20 pings in 2 s (at least 12)');
    cmp_ok(scalar @pings, '<=', 22, 'watchdog: not more often than every 100 ms');
    my @gaps = sort { $a <=> $b } map { $pings[$_] - $pings[$_ - 1] } 1 .. $#pings;
    my $median = @gaps ? $gaps[@gaps / 2] : 0;
    ok($median > 0.07 && $median < 0.15, 'watchdog: median interval about 100 ms')
        or diag("median gap $median");
    my ($w) = $t->workers('w');
    my $env = proc_environ($w);
    ok(!exists $env->{WATCHDOG_USEC} && !exists $env->{WATCHDOG_PID},
       'watchdog: corrald\'s WATCHDOG_USEC/PID not passed to workers (env_inherit = true)');
    $t->signal('TERM');
    is(stop_sequence($t, 1, 'watchdog'), 0, 'watchdog: exit 0');
    $t->check_invariants;
}

# WATCHDOG_PID naming another process: the watchdog is not corrald's
{
    my $t = CorralTest->new(
        env => { WATCHDOG_USEC => 200000, WATCHDOG_PID => 1 },
        config => qq{pool "w" { command = "/bin/sleep 1000", $inherit }\n});
    $t->notify_listen;
    $t->start;
    is_deeply([ $t->notify_until(qr/^READY=1$/, 10) ],
              [ 'STATUS=1 pool, 0/1 workers ready', 'STATUS=1 pool, 1/1 workers ready', 'READY=1' ],
              'WATCHDOG_PID of another process: start messages');
    my @m = $t->notify_during(1);
    is_deeply(\@m, [], 'WATCHDOG_PID of another process: no pings') or diag(show(@m));
    ok(!$t->log_lines(qr/pinging the service manager's watchdog/), 'WATCHDOG_PID of another process: no watchdog logged');
}

CorralTest->done;
