#!/usr/bin/perl
# A pool's watchdog: workers get WATCHDOG_USEC and WATCHDOG_PID (their own
# pid); one that pings with WATCHDOG=1 lives on, one that stops pinging or
# never pings is aborted (SIGABRT) after the interval and restarted per
# policy, one that ignores SIGABRT is killed with its cgroup after
# stop_timeout, WATCHDOG=trigger aborts at once. ready_timeout: a worker
# not ready in time is aborted; EXTEND_TIMEOUT_USEC buys it time.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_environ pid_alive log_time find_program);
use Test::More;

my $PY = find_program('python3');
plan skip_all => 'python3 not installed (Debian package python3)' unless $PY;

my $inherit = 'env_inherit = { "CORRAL_TEST_DIR" }';
# failures would otherwise end the start (a pool failed before ready)
my $nolimit = 'crash_limit = { failures = 0 }, backoff = { initial = "50ms", max = "200ms" }';

my $PYLIB = <<'EOF';
import os, signal, socket, sys, time
D = os.environ["CORRAL_TEST_DIR"]
# a message sent at once after exec is t/031's burst case; here the first
# one comes a little later, well within every interval below
time.sleep(0.2)
def send(msg):
    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(msg.encode(), addr)
    s.close()
EOF

my $t = CorralTest->new(config => <<"EOF");
pool "pinger" {
  command = { "$PY", "%TMP%/pinger.py" },
  watchdog = "500ms", ready = "notify", $inherit, $nolimit,
}
pool "silent" {
  command = "/bin/sleep 1000",
  watchdog = "500ms", $inherit, $nolimit,
}
pool "stubborn" {
  command = { "$PY", "%TMP%/stubborn.py" },
  watchdog = "500ms", stop_timeout = "1s", $inherit, $nolimit,
}
pool "trigger" {
  command = { "$PY", "%TMP%/trigger.py" },
  watchdog = "10s", $inherit, $nolimit,
}
pool "once" {
  command = "/bin/sleep 1000",
  watchdog = "300ms", restart = "never", $inherit, $nolimit,
}
pool "plain" { command = "/bin/sleep 1000", $inherit }
EOF

# pings every 100 ms until TMP/stop.<pid> exists
$t->write_file('pinger.py', $PYLIB . <<'EOF');
send("READY=1")
while not os.path.exists(D + "/stop.%d" % os.getpid()):
    send("WATCHDOG=1")
    time.sleep(0.1)
time.sleep(1000)
EOF
# ignores SIGABRT, and has a child that would outlive it
$t->write_file('stubborn.py', $PYLIB . <<'EOF');
signal.signal(signal.SIGABRT, signal.SIG_IGN)
pid = os.fork()
if pid == 0:
    os.execv("/bin/sleep", ["/bin/sleep", "999"])
with open(D + "/stubborn.child.%d" % os.getpid(), "w") as f:
    f.write(str(pid))
time.sleep(1000)
EOF
# pings, then triggers the watchdog when TMP/trigger.go exists
$t->write_file('trigger.py', $PYLIB . <<'EOF');
while not os.path.exists(D + "/trigger.go"):
    send("WATCHDOG=1")
    time.sleep(0.1)
send("WATCHDOG=trigger")
time.sleep(1000)
EOF

$t->start;

# the environment
$t->wait_for(sub { $t->workers('pinger') == 1 && $t->workers('plain') == 1 }, 10, 'workers up');
my ($pinger) = $t->workers('pinger');
my $env = proc_environ($pinger);
is($env->{WATCHDOG_USEC}, '500000', 'watchdog = "500ms": WATCHDOG_USEC=500000');
is($env->{WATCHDOG_PID}, $pinger, 'WATCHDOG_PID is the worker\'s own pid');
my ($plain) = $t->workers('plain');
$env = proc_environ($plain);
ok(!exists $env->{WATCHDOG_USEC} && !exists $env->{WATCHDOG_PID}, 'no watchdog: no WATCHDOG_USEC, WATCHDOG_PID');

# a worker that never pings: aborted after 500 ms, restarted
my ($started) = $t->wait_log(qr/ info worker started pool=silent worker=1 pid=\d+$/);
my ($silent) = ($started // '') =~ /pid=(\d+)$/;
my ($abort) = $t->wait_log(qr/ warn watchdog timeout: no WATCHDOG=1 within 500ms, aborting the worker pool=silent worker=1 pid=$silent$/);
my $late = (log_time($abort // '') // 0) - (log_time($started // '') // 0);
ok($late >= 0.45 && $late < 2, 'silent: aborted about 500 ms after it started') or diag("after ${late}s");
$t->wait_log(qr/ warn worker killed by signal 6 \(ABRT\)(?: \(core dumped\))? pool=silent worker=1 pid=$silent$/);
$t->wait_log(qr/ info restarting worker in \S+ pool=silent$/);
$t->wait_for(sub { my @w = $t->workers('silent'); @w == 1 && $w[0] != $silent }, 10, 'silent: restarted');
# and the new one is watched too
$t->wait_log(qr/ warn watchdog timeout: no WATCHDOG=1 within 500ms, aborting the worker pool=silent worker=1 pid=(?!$silent\b)\d+$/,
             name => 'silent: its replacement is aborted too');

# restart = "never": aborted and not replaced
my ($once) = map { /pid=(\d+)$/ } $t->wait_log(qr/ info worker started pool=once worker=1 pid=\d+$/);
$t->wait_log(qr/ warn watchdog timeout: no WATCHDOG=1 within 300ms, aborting the worker pool=once worker=1 pid=$once$/);
$t->wait_log(qr/ info worker not restarted \(restart = never\) pool=once worker=1 pid=$once$/);
$t->stays(sub { !$t->workers('once') }, 1, 'once: not replaced');

# a worker that pings lives on; when it stops pinging it is aborted
$t->stays(sub { pid_alive($pinger) && !$t->log_lines(qr/ watchdog .* pool=pinger /) }, 2,
          'pinger: pinging every 100 ms, not aborted in 2 s (4 intervals)');
$t->wait_log(qr/ info pool ready \(1\/1 workers\) pool=pinger$/);
my $mark = $t->mark;
$t->write_file("stop.$pinger", '');
my $stopped = Time::HiRes::time();
my ($pabort) = $t->wait_log(qr/ warn watchdog timeout: no WATCHDOG=1 within 500ms, aborting the worker pool=pinger worker=1 pid=$pinger$/, since => $mark);
cmp_ok(Time::HiRes::time() - $stopped, '>=', 0.35, 'pinger: not aborted before the interval after the last ping');
$t->wait_log(qr/ warn worker killed by signal 6 \(ABRT\)(?: \(core dumped\))? pool=pinger worker=1 pid=$pinger$/, since => $mark);
$t->wait_for(sub { my @w = $t->workers('pinger'); @w == 1 && $w[0] != $pinger }, 10, 'pinger: restarted');

# ignoring SIGABRT: killed, with its child, after stop_timeout
my ($stub) = map { /pid=(\d+)$/ } $t->wait_log(qr/ info worker started pool=stubborn worker=1 pid=\d+$/);
$t->wait_for(sub { -s $t->path("stubborn.child.$stub") }, 10, 'stubborn: forked its child');
my $child = CorralTest::slurp($t->path("stubborn.child.$stub"));
my ($sab) = $t->wait_log(qr/ warn watchdog timeout: no WATCHDOG=1 within 500ms, aborting the worker pool=stubborn worker=1 pid=$stub$/);
my ($skill) = $t->wait_log(qr/ warn worker did not stop within 1s, sending KILL pool=stubborn worker=1 pid=$stub$/);
my $gap = (log_time($skill // '') // 0) - (log_time($sab // '') // 0);
ok($gap >= 0.95 && $gap < 3, 'stubborn: KILL about stop_timeout (1s) after the abort') or diag("after ${gap}s");
$t->wait_log(qr/ warn worker killed by signal 9 \(KILL\) pool=stubborn worker=1 pid=$stub$/);
$t->wait_for(sub { !pid_alive($stub) && !pid_alive($child) }, 10, 'stubborn: the worker and its child are gone');

# WATCHDOG=trigger: aborted at once
my ($trig) = $t->workers('trigger');
$t->stays(sub { pid_alive($trig) && !$t->log_lines(qr/ watchdog .* pool=trigger /) }, 0.5, 'trigger: running');
$mark = $t->mark;
my $go = Time::HiRes::time();
$t->write_file('trigger.go', '');
$t->wait_log(qr/ warn watchdog triggered by the worker \(WATCHDOG=trigger\), aborting the worker pool=trigger worker=1 pid=$trig$/, since => $mark);
cmp_ok(Time::HiRes::time() - $go, '<', 5, 'trigger: aborted at once, not after its 10 s interval');
$t->wait_log(qr/ warn worker killed by signal 6 \(ABRT\)(?: \(core dumped\))? pool=trigger worker=1 pid=$trig$/, since => $mark);
$t->wait_for(sub { my @w = $t->workers('trigger'); @w == 1 && $w[0] != $trig }, 10, 'trigger: restarted');

is_deeply([ $t->workers('plain') ], [ $plain ], 'plain: untouched');
$t->check_invariants;

# ---- ready_timeout -------------------------------------------------------

{
    my $r = CorralTest->new(config => <<"EOF");
pool "never" {
  command = "/bin/sleep 1000",
  ready = "notify", ready_timeout = "1s", $inherit, $nolimit,
}
pool "extended" {
  command = { "$PY", "%TMP%/extended.py" },
  ready = "notify", ready_timeout = "1s", $inherit, $nolimit,
}
pool "prompt" {
  command = { "$PY", "%TMP%/prompt.py" },
  ready = "notify", ready_timeout = "1s", $inherit, $nolimit,
}
EOF
    # asks for 3 s more at once, is ready after 2 s
    $r->write_file('extended.py', $PYLIB . <<'EOF');
send("EXTEND_TIMEOUT_USEC=3000000")
time.sleep(2)
send("READY=1")
time.sleep(1000)
EOF
    # ready at once, then stays: ready_timeout no longer applies
    $r->write_file('prompt.py', $PYLIB . <<'EOF');
send("READY=1")
time.sleep(1000)
EOF
    $r->start;
    my ($s) = $r->wait_log(qr/ info worker started pool=never worker=1 pid=\d+$/);
    my ($never) = ($s // '') =~ /pid=(\d+)$/;
    my ($a) = $r->wait_log(qr/ warn not ready within ready_timeout \(1s\), aborting the worker pool=never worker=1 pid=$never$/);
    my $after = (log_time($a // '') // 0) - (log_time($s // '') // 0);
    ok($after >= 0.95 && $after < 3, 'never: aborted about 1 s after it started') or diag("after ${after}s");
    $r->wait_log(qr/ warn worker killed by signal 6 \(ABRT\)(?: \(core dumped\))? pool=never worker=1 pid=$never$/);
    $r->wait_for(sub { my @w = $r->workers('never'); @w == 1 && $w[0] != $never }, 10, 'never: restarted');

    my ($ext) = map { /pid=(\d+)$/ } $r->wait_log(qr/ info worker started pool=extended worker=1 pid=\d+$/);
    $r->wait_log(qr/ debug notify: ready_timeout extended by 3\.000s pool=extended worker=1 pid=$ext$/);
    $r->wait_log(qr/ info pool ready \(1\/1 workers\) pool=extended$/, 10);
    ok(!$r->log_lines(qr/ ready_timeout .* aborting .* pool=extended /), 'extended: not aborted after 1 s');
    is_deeply([ $r->workers('extended') ], [ $ext ], 'extended: the same worker became ready');

    $r->wait_log(qr/ info pool ready \(1\/1 workers\) pool=prompt$/);
    my ($prompt) = $r->workers('prompt');
    $r->stays(sub { pid_alive($prompt) && !$r->log_lines(qr/ aborting .* pool=prompt /) }, 1.5,
              'prompt: ready in time, never aborted');
}

CorralTest->done;
