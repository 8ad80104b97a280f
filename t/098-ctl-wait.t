#!/usr/bin/perl
# Commands that wait: corralctl stop returns once the pool's workers are
# gone and its cgroups empty (a worker that ignores TERM: after its
# stop_timeout of 2 s, and what it left behind killed too); start once
# the workers are ready (READY=1 after 1 s), scale once the count is
# reached, restart once all workers are new and ready and the old ones
# gone, reload once the pools it changed are running; --no-wait returns
# at once; a pool that fails while waited on ends the wait (exit 7, the
# reason on stderr); --timeout ends a wait that does not end (exit 6),
# and a stopped (SIGSTOP) corrald makes corralctl fail after it, not
# hang; --timeout takes systemd's spellings ("1min 30s"), as the config.
# On a terminal (script(1)'s pty), the progress is one line redrawn.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive descends_from);
use CorralProc ();
use POSIX ();
use Test::More;

my $inherit = 'env_inherit = { "CORRAL_TEST_DIR" }';
my $t = CorralTest->new(config => <<"EOF");
-- ignores TERM, and leaves a child in its cgroup
pool "stubborn" {
  command = { "/bin/sh", "-c", "trap '' TERM; /bin/sleep 1000 & while :; do /bin/sleep 0.05; done" },
  workers = 2, stop_timeout = "2s",
}
-- READY=1 one second after it starts
pool "slow" { command = { "$^X", "%TMP%/notify.pl", "1" }, ready = "notify", workers = 2, $inherit }
-- READY=1 once TMP/go exists
pool "gated" { command = { "$^X", "%TMP%/notify.pl", "go" }, ready = "notify", $inherit }
-- READY=1 once TMP/go-ID exists, ID its worker's
pool "paced" { command = { "$^X", "%TMP%/notify.pl", "go-each" }, ready = "notify", workers = 2, $inherit }
pool "crash" {
  -- never ready: a worker ready (and running) for a moment could end
  -- the wait before it exits within its start_window
  command = { "/bin/sh", "-c", "exit 1" }, ready = "notify",
  crash_limit = { failures = 2, interval = "60s" }, backoff = { initial = "50ms", max = "50ms" },
}
EOF
$t->write_file('notify.pl', <<'EOF');
use Socket;
use Time::HiRes qw(sleep);
my $what = shift;
if ($what eq 'go') { sleep 0.02 until -e "$ENV{CORRAL_TEST_DIR}/go" }
elsif ($what eq 'go-each') { sleep 0.02 until -e "$ENV{CORRAL_TEST_DIR}/go-$ENV{CORRAL_WORKER}" }
else { sleep $what }
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
(my $addr = $ENV{NOTIFY_SOCKET}) =~ s/^@/\0/;
send($s, "READY=1", 0, pack_sockaddr_un($addr)) or die "send: $!";
exec '/bin/sleep', '1000';
EOF
$t->write_file("go-$_", '') for 1, 2;	# paced: ready at once, until its scenario
$t->start;
$t->wait_control;

# corralctl waiting (no --no-wait), killed after 30 s
sub ctl_waits { $t->ctl(@_, { wait => 1, timeout => 30 }) }

sub pool_status { my $s = $t->status($_[0]); $s && $s->{$_[0]} }

sub ready_workers {
    my ($pool) = @_;
    my $p = pool_status($pool) or return ();
    return map { $_->{pid} } grep { $_->{state} eq 'ready' } @{ $p->{workers} };
}

sub all_ready {
    my ($pool, $n) = @_;
    my $p = pool_status($pool) or return 0;
    return $p->{state} eq 'running' && @{ $p->{workers} } == $n && ready_workers($pool) == $n;
}

$t->wait_for(sub { all_ready('stubborn', 2) && all_ready('slow', 2) }, 15, 'stubborn and slow ready');
$t->wait_log(qr/ error pool failed: 2 start failures within 60s, .* pool=crash$/, 15);

$t->scenario('stop returns once the cgroups are empty', { fds => 0 }, sub {
    my @workers = $t->workers('stubborn');
    my @left;
    $t->wait_for(sub {
        my %w = map { $_ => 1 } @workers;
        @left = grep { my $p = $_; !$w{$p} && grep { descends_from($p, $_) } @workers } CorralProc::all_pids();
        @left >= 2;
    }, 10, 'the workers started children');
    my $r = ctl_waits('stop', 'stubborn');
    is($r->{code}, 0, 'stop: exit 0') or diag($r->{err});
    is($r->{err}, '', 'stop: nothing on stderr (not a terminal)');
    # right after it returned
    my @alive = grep { pid_alive($_) } @workers, @left;
    is("@alive", '', 'stop: no worker, nor what it started, is alive when it returns');
    is($t->cgroup_key('stubborn', 'cgroup.events', 'populated'), '0', "stop: the pool's cgroup is empty");
    is(join(' ', grep { /^\d+$/ } $t->cgroup_children('stubborn')), '', 'stop: no worker cgroup left');
    my $p = pool_status('stubborn');
    is($p && $p->{state}, 'stopped', 'stop: the pool is stopped');
    ok($p && !@{ $p->{workers} } && !$p->{prototype}, 'stop: no worker, no prototype');
    cmp_ok($r->{elapsed}, '>=', 1.8, sprintf('stop: it took the stop_timeout, 2 s (%.2fs)', $r->{elapsed}));
    ok(@left, 'the workers had started children (' . scalar(@left) . ')');
});

$t->scenario('start returns once the workers are ready', { fds => 0 }, sub {
    is(ctl_waits('stop', 'slow')->{code}, 0, 'stop slow');
    my $r = ctl_waits('start', 'slow');
    is($r->{code}, 0, 'start: exit 0') or diag($r->{err});
    is($r->{err}, '', 'start: nothing on stderr');
    ok(all_ready('slow', 2), 'start: when it returns, both workers are ready');
    cmp_ok($r->{elapsed}, '>=', 0.9, sprintf('start: not before READY=1 (%.2fs)', $r->{elapsed}));

    # a worker the test holds back: start is still waiting
    is(ctl_waits('stop', 'gated')->{code}, 0, 'stop gated');
    my $h = $t->ctl_spawn('start', 'gated', { wait => 1 });
    $t->wait_for(sub { my $p = pool_status('gated'); $p && @{ $p->{workers} } }, 10, 'gated: a worker starts');
    $t->stays(sub { waitpid($h->{pid}, POSIX::WNOHANG()) == 0 }, 0.5, 'start: still waiting while the worker is not ready');
    $t->write_file('go', '');
    $r = $t->ctl_wait($h, 15);
    is($r->{code}, 0, 'start: exit 0 once it is ready') or diag($r->{err});
    ok(all_ready('gated', 1), 'start: gated ready');
});

$t->scenario('scale returns once the count is reached', { fds => 0 }, sub {
    my $r = ctl_waits('scale', 'slow', 5);
    is($r->{code}, 0, 'scale up: exit 0') or diag($r->{err});
    ok(all_ready('slow', 5), 'scale up: 5 ready when it returns');
    my @five = ready_workers('slow');
    $r = ctl_waits('scale', 'slow', 2);
    is($r->{code}, 0, 'scale down: exit 0') or diag($r->{err});
    ok(all_ready('slow', 2), 'scale down: 2 workers when it returns, no other listed');
    my %kept = map { $_ => 1 } ready_workers('slow');
    my @alive = grep { !$kept{$_} && pid_alive($_) } @five;
    is("@alive", '', 'scale down: the 3 stopped are gone');
});

$t->scenario('restart returns once all workers are new and ready', { fds => 0 }, sub {
    my @old = ready_workers('slow');
    my $r = ctl_waits('restart', 'slow');
    is($r->{code}, 0, 'restart: exit 0') or diag($r->{err});
    ok(all_ready('slow', 2), 'restart: 2 ready when it returns');
    my %old = map { $_ => 1 } @old;
    is(join(' ', grep { $old{$_} } ready_workers('slow')), '', 'restart: all of them new');
    is(join(' ', grep { pid_alive($_) } @old), '', 'restart: the old ones gone');

    my ($one) = grep { $_->{pid} } @{ pool_status('slow')->{workers} };
    $r = ctl_waits('restart', "slow/$one->{id}");
    is($r->{code}, 0, 'restart of one worker: exit 0') or diag($r->{err});
    ok(!pid_alive($one->{pid}), 'restart of one worker: it is gone');
    ok(all_ready('slow', 2), 'restart of one worker: its replacement is ready');
});

$t->scenario('a pool that fails while waited on', { fds => 0 }, sub {
    my $r = ctl_waits('start', 'crash');
    is($r->{code}, 7, 'start of a pool that fails: exit 7') or diag($r->{err});
    like($r->{err}, qr/^corralctl: crash failed: 2 start failures within 60s, last: worker \d+ exited with status 1 before it was ready\n\z/,
         'start: stderr says why, in one line');
    is(ctl_waits('stop', 'crash')->{code}, 0, 'stop crash (a reload would start it again)');
});

$t->scenario('reload returns once the pools it changed are running', { fds => 0 }, sub {
    open my $fh, '>>', $t->conf or die;
    print $fh qq{pool "late" { command = { "$^X", "${\$t->path('notify.pl')}", "1" }, ready = "notify", $inherit }\n};
    close $fh;
    my $r = ctl_waits('reload');
    is($r->{code}, 0, 'reload: exit 0') or diag($r->{err});
    like($r->{out}, qr/^1 added/, 'reload: prints the outcome');
    ok(all_ready('late', 1), 'reload: the added pool is ready when it returns');
});

$t->scenario('--no-wait returns at once', { fds => 0 }, sub {
    unlink $t->path('go');
    my $r = $t->ctl('--no-wait', 'restart', 'gated', { wait => 1 });
    is($r->{code}, 0, 'restart --no-wait: exit 0') or diag($r->{err});
    my $p = pool_status('gated');
    ok($p && $p->{state} ne 'running', "restart --no-wait: it returned before the new worker was ready ($p->{state})");
    $r = $t->ctl('stop', 'stubborn', '--no-wait', { wait => 1 });
    $r = $t->ctl('start', 'stubborn', '--no-wait', { wait => 1 });
    is($r->{code}, 0, 'start --no-wait (after the command): exit 0');
    $t->write_file('go', '');
    $t->wait_for(sub { all_ready('gated', 1) && all_ready('stubborn', 2) }, 15, 'gated and stubborn ready again');
});

# On a terminal (a pty of script(1), util-linux): the wait's progress on
# one line redrawn in place ("\r", the text, erase to the end), its count
# going up as workers get ready, and erased at the end.
$t->scenario('progress on a terminal', { fds => 0 }, sub {
    my $script = CorralTest::find_program('script') or return fail('script(1) is installed (util-linux)');
    is(ctl_waits('stop', 'paced')->{code}, 0, 'stop paced');
    unlink map { $t->path("go-$_") } 1, 2;
    my $log = $t->path('pty.log');
    unlink $log;
    my $h = $t->command_spawn([ $script, '-qfec',
        "'$CorralTest::CORRALCTL' -s '${\$t->socket_path}' start paced", $log ]);
    my $seen = sub { my $l = CorralTest::slurp($log) // ''; index($l, $_[0]) >= 0 };
    $t->wait_for(sub { $seen->("\rpaced: 0/2 ready\e[K") }, 15, 'the line: 0/2 ready');
    $t->write_file('go-1', '');
    $t->wait_for(sub { $seen->("\rpaced: 1/2 ready\e[K") }, 15, 'redrawn: 1/2 ready');
    $t->write_file('go-2', '');
    my $r = $t->command_wait($h, 30);
    is($r->{code}, 0, 'start paced on a terminal: exit 0') or diag($r->{err});
    # what corralctl wrote, without script's first and last lines
    (my $l = CorralTest::slurp($log) // '') =~ s/\AScript started [^\n]*\n//;
    $l =~ s/\n?Script done [^\n]*\n?\z//;
    like($l, qr/\rpaced: 0\/2 ready\e\[K\rpaced: 1\/2 ready\e\[K/, 'the same line rewritten, not a new one')
        or diag(explain($l));
    like($l, qr/\r\e\[K\z/, 'it ends with the line erased: nothing left of it') or diag(explain($l));
    unlike($l, qr/\n/, 'no line break: nothing else printed') or diag(explain($l));
    ok(all_ready('paced', 2), 'paced ready when it returned');
});

$t->scenario('--timeout', { fds => 0 }, sub {
    unlink $t->path('go');
    is(ctl_waits('stop', 'gated')->{code}, 0, 'stop gated');
    my $r = $t->ctl('start', 'gated', '--timeout', '1s', { wait => 1 });
    is($r->{code}, 6, 'a wait that does not end: exit 6') or diag($r->{err});
    like($r->{err}, qr/^corralctl: not done within 1s \(--timeout\): gated: 0\/1 ready\n\z/, 'it says what it waited for');
    cmp_ok($r->{elapsed}, '>=', 0.9, sprintf('after the timeout (%.2fs)', $r->{elapsed}));
    $t->write_file('go', '');
    $t->wait_for(sub { all_ready('gated', 1) }, 15, 'gated ready');

    $t->signal('STOP');
    my @r = map { $t->ctl('--timeout', '1s', @$_, { wait => 1 }) } [ 'status' ], [ 'stop', 'slow' ];
    $t->signal('CONT');
    for my $r (@r) {
        is($r->{code}, 6, 'a stopped corrald: exit 6') or diag($r->{err});
        is($r->{err}, "corralctl: corrald did not answer within 1s (--timeout)\n", 'a stopped corrald: it says so');
        cmp_ok($r->{elapsed}, '>=', 0.9, sprintf('a stopped corrald: after the timeout (%.2fs)', $r->{elapsed}));
        cmp_ok($r->{elapsed}, '<', 5, 'a stopped corrald: not much later');
    }
    $r = $t->ctl('--timeout', 'soon', 'status');
    is($r->{code}, 2, '--timeout soon: exit 2');
    like($r->{err}, qr/^corralctl: --timeout: invalid duration "soon"/, '--timeout soon: says so');

    # systemd's spellings, as the configuration takes them
    for my $d ('1min 30s', '5 seconds', '1min', '2 minutes 5sec', ' 1 h ') {
        $r = $t->ctl('--timeout', $d, 'ping');
        is($r->{code}, 0, "--timeout '$d' ping: exit 0") or diag($r->{err});
    }
    unlink $t->path('go');
    is(ctl_waits('stop', 'gated')->{code}, 0, 'stop gated');
    $r = $t->ctl('start', 'gated', '--timeout', '0.5 sec 500ms', { wait => 1 });
    is($r->{code}, 6, "--timeout '0.5 sec 500ms': a wait that does not end, exit 6") or diag($r->{err});
    like($r->{err}, qr/^corralctl: not done within 1s \(--timeout\)/, '... after the parts summed, 1s');
    $t->write_file('go', '');
    $t->wait_for(sub { all_ready('gated', 1) }, 15, 'gated ready');
    for (['5parsecs', qr/unknown unit "parsecs"/], ['1min 30', qr/missing unit/], ['', qr/empty/]) {
        my ($d, $why) = @$_;
        $r = $t->ctl('--timeout', $d, 'ping');
        is($r->{code}, 2, "--timeout '$d': exit 2");
        like($r->{err}, qr/^corralctl: --timeout: invalid duration "\Q$d\E": $why \(seconds, or as /,
             "--timeout '$d': says why");
    }
});

$t->done;
