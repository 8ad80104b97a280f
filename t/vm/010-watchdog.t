#!/usr/bin/perl
# Watchdogs. systemd's over corrald: with WatchdogSec=2s a healthy corrald
# pings in time (no restart), and a corrald stopped with SIGSTOP is killed
# and restarted by systemd. corrald's over its workers: a pool with
# watchdog = "1s" whose worker never sends WATCHDOG=1 has it aborted and
# replaced; one that pings (systemd-notify WATCHDOG=1) keeps running past
# its watchdog (5 s).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;
use Time::HiRes qw(time);

my $UNIT = $CorralVM::UNIT;
my $CG = $CorralVM::UNIT_CG;

# --- systemd's watchdog ----------------------------------------------------------

unit_drop_in('watchdog', "[Service]\nWatchdogSec=2s\n");
my $cursor = journal_cursor();
my ($rc, $out) = corral_start(qq{pool "plain" { command = "/bin/sleep 6001", workers = 2, stop_timeout = "5s" }\n});
is($rc, 0, 'systemctl start corral') or diag($out);
ok(wait_until(sub { pool_workers('plain') == 2 }, 30), 'pool plain: 2 workers');
my $p = unit_props($UNIT, qw(MainPID NRestarts));
my $main = $p->{MainPID};
is($p->{NRestarts}, 0, 'NRestarts=0');
ok(scalar(journal_find($UNIT, $cursor, MESSAGE => "notify: pinging the service manager's watchdog every 1s")),
   "journal: corrald pings systemd's watchdog every 1s");

# what the workers get: corrald's own notify socket, not systemd's, and
# none of systemd's watchdog variables
my %env = %{ proc_environ((pool_workers('plain'))[0]) };
like($env{NOTIFY_SOCKET} // '', qr{^\@corral/[0-9a-f]{32}/notify$}, "workers' NOTIFY_SOCKET is corrald's (\@corral/RANDOM/notify)");
ok(!exists $env{WATCHDOG_PID} && !exists $env{WATCHDOG_USEC}, 'no WATCHDOG_PID or WATCHDOG_USEC from systemd in a worker');

stays(sub {
    my $q = unit_props($UNIT, qw(MainPID NRestarts));
    $q->{MainPID} == $main && $q->{NRestarts} == 0;
}, 5, 'healthy for 5 s (2.5 watchdog periods): same MainPID, no restart');

my @old = pool_workers('plain');
my $t0 = time;
kill 'STOP', $main;
my $restarted = wait_until(sub {
    my $q = unit_props($UNIT, qw(MainPID NRestarts ActiveState SubState));
    $q->{MainPID} && $q->{MainPID} != $main && $q->{ActiveState} eq 'active' && $q->{SubState} eq 'running' && $q;
}, 30);
my $after = time - $t0;
ok($restarted, sprintf('kill -STOP corrald: systemd restarted it (after %.1f s)', $after))
    or do { kill 'CONT', $main; diag((systemctl('status', '-l', '-n', '20', $UNIT))[1]) };
cmp_ok($after, '<=', 15, 'within 15 s');
is($restarted && $restarted->{NRestarts}, 1, 'NRestarts=1');
ok(!pid_alive($main), 'the stopped corrald is gone');
ok(scalar(journal_find($UNIT, $cursor, MESSAGE => qr/^corral\.service: Watchdog timeout/)),
   'journal: systemd says "Watchdog timeout"');
ok(wait_until(sub { pool_workers('plain') == 2 }, 30), 'the new corrald runs pool plain again');
ok(!grep({ pid_alive($_) } @old), 'the old workers are gone');
my $new_main = unit_props($UNIT, 'MainPID')->{MainPID};
is(cg_read("$CG/corrald", 'cgroup.procs'), $new_main, 'the new corrald is in corrald/');
($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'systemctl stop') or diag($out);
unit_drop_in('watchdog', undef);

# --- corrald's watchdog over workers ------------------------------------------------

# Under load (a busy host slows the VM down), a worker watchdog of 1 s
# may have aborted the mute worker before the test looks for it: the
# workers' pids come from the journal ("worker started"), and each worker
# writes its WATCHDOG_USEC to a file when it starts. The pinging worker
# runs systemd-notify (a fork and an exec) every 0.3 s; its watchdog of 5 s
# leaves a busy VM room for that.
my $WD = test_dir('wd');
my $config = <<"EOF";
settings { log_level = "debug" }
pool "mute" {
  command = { "/bin/sh", "-c", "echo \$WATCHDOG_USEC > $WD/mute.\$\$; exec /bin/sleep 6002" },
  workers = 1, watchdog = "1s", stop_timeout = "5s",
}
pool "chatty" {
  command = { "/bin/sh", "-c", "echo \$WATCHDOG_USEC > $WD/chatty.\$\$; while :; do systemd-notify WATCHDOG=1; sleep 0.3; done" },
  workers = 1,
  watchdog = "5s",
  stop_timeout = "5s",
}
EOF
$cursor = journal_cursor();
($rc, $out) = corral_start($config);
is($rc, 0, 'systemctl start corral with watchdog pools') or diag($out);
sub first_started {
    my ($pool) = @_;
    my ($e) = journal_find($UNIT, $cursor, CORRAL_POOL => $pool, MESSAGE => 'worker started');
    return $e ? $e->{CORRAL_PID} : undef;
}
my ($mute, $chatty);
ok(wait_until(sub { ($mute, $chatty) = (first_started('mute'), first_started('chatty')); $mute && $chatty }, 30),
   'journal: the workers started: mute ' . ($mute // '?') . ', chatty ' . ($chatty // '?'));
$mute //= 0;
$chatty //= 0;
my ($mute_usec, $chatty_usec);
wait_until(sub { ($mute_usec, $chatty_usec) = (slurp("$WD/mute.$mute"), slurp("$WD/chatty.$chatty")); $mute_usec && $chatty_usec }, 30);
is($mute_usec, "1000000\n", 'mute worker: WATCHDOG_USEC=1000000');
is($chatty_usec, "5000000\n", 'chatty worker: WATCHDOG_USEC=5000000');

my @abort;
ok(wait_until(sub { @abort = journal_find($UNIT, $cursor, MESSAGE => qr/^watchdog timeout/, CORRAL_POOL => 'mute') }, 20),
   'journal: the mute worker timed out');
is($abort[0]{MESSAGE}, 'watchdog timeout: no WATCHDOG=1 within 1s, aborting the worker', 'the message');
is($abort[0]{CORRAL_PID}, $mute, 'for the mute worker\'s pid');
ok(wait_until(sub { journal_find($UNIT, $cursor, MESSAGE => qr/^worker killed by signal 6 \(ABRT\)/, CORRAL_PID => $mute) }, 20),
   'journal: the worker was killed by SIGABRT');
my $new;
ok(wait_until(sub { ($new) = pool_workers('mute'); $new && $new != $mute }, 20), 'the mute worker is replaced');
ok(!pid_alive($mute), 'the old one is gone');

stays(sub { ((pool_workers('chatty'))[0] // 0) == $chatty }, 7,
      'the worker that pings keeps running (7 s, more than its watchdog)');
is(scalar(journal_find($UNIT, $cursor, CORRAL_POOL => 'chatty', MESSAGE => qr/watchdog/)), 0,
   'no watchdog message for chatty')
    or diag(join "\n", map { "$_->{__REALTIME_TIMESTAMP} $_->{MESSAGE}" } grep {
        ($_->{CORRAL_POOL} // '') eq 'chatty' || ($_->{MESSAGE} // '') =~ /notify/ } journal_entries($UNIT, $cursor));
($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'systemctl stop') or diag($out);

done();
