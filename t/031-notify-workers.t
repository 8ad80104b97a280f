#!/usr/bin/perl
# Workers speak to corrald's own notify socket with the real libsystemd:
# `systemd-notify --ready` run by a shell (a helper process counts for its
# worker), sd_notify() from C, a Python worker; READY=1 makes a ready =
# "notify" pool ready and nothing else does; a process outside every
# worker (the test itself, a worker of another corrald) is ignored; STATUS=
# is kept per worker; STOPPING=1 and ERRNO= are logged; MAINPID= moves the
# worker to another process of its cgroup, and only to one. READY=1 sent at
# once after exec counts too (the burst case: 30 workers that do so).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_environ proc_cmdline pid_alive find_program);
use Test::More;

my $PY = find_program('python3');
my $SDNOTIFY = find_program('systemd-notify');
my $CC = find_program('cc');
plan skip_all => 'python3 not installed (Debian package python3)' unless $PY;
plan skip_all => 'systemd-notify not installed (Debian package systemd)' unless $SDNOTIFY;

my $inherit = 'env_inherit = { "CORRAL_TEST_DIR" }';

# Python: send(msg) to the worker's NOTIFY_SOCKET, as libsystemd does.
my $PYLIB = <<'EOF';
import os, socket, sys, time
def send(msg):
    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(msg.encode() if isinstance(msg, str) else msg, addr)
    s.close()
def wait_file(path):
    while not os.path.exists(path):
        time.sleep(0.02)
EOF

my $t = CorralTest->new(config => <<"EOF");
pool "shell" {
  command = { "/bin/sh", "-c", "while [ ! -e %TMP%/go.shell ]; do sleep 0.05; done; $SDNOTIFY --ready --status=\\"serving \$CORRAL_WORKER\\"; exec sleep 1000" },
  workers = 2, ready = "notify", $inherit,
}
pool "py" {
  command = { "$PY", "%TMP%/py.py" },
  ready = "notify", $inherit,
}
pool "started" {
  command = { "$PY", "%TMP%/started.py" },
  $inherit,
}
pool "silent" { command = "/bin/sleep 1000", ready = "notify", $inherit }
pool "override" {
  command = "/bin/sleep 1000", $inherit,
  env = { NOTIFY_SOCKET = "/run/elsewhere", WATCHDOG_USEC = "1000", WATCHDOG_PID = "1", LISTEN_FDS = "3", LISTEN_PID = "1", LISTEN_FDNAMES = "x" },
}
pool "forking" {
  command = { "/bin/sh", "-c", "/bin/sleep 1000 & echo \$! > %TMP%/forking.main.\$\$; sleep 0.2; $SDNOTIFY --ready --pid=\$!; exit 0" },
  ready = "notify", $inherit,
}
pool "badmain" {
  command = { "$PY", "%TMP%/badmain.py" },
  ready = "notify", $inherit,
}
EOF

$t->write_file('py.py', $PYLIB . <<'EOF');
wait_file(os.environ["CORRAL_TEST_DIR"] + "/go.py")
send("STATUS=python starting")
send("READY=1\nSTATUS=python ready")
wait_file(os.environ["CORRAL_TEST_DIR"] + "/go.py2")
send("STOPPING=1")
send("ERRNO=2")
send("X_CORRAL_UNKNOWN=1\nSTATUS=after unknown")
time.sleep(1000)
EOF
$t->write_file('started.py', $PYLIB . <<'EOF');
time.sleep(0.2)  # READY=1 at once: see the burst case
send("READY=1")
time.sleep(1000)
EOF
$t->write_file('badmain.py', $PYLIB . <<'EOF');
d = os.environ["CORRAL_TEST_DIR"]
for i in (1, 2, 3):
    wait_file(d + "/target.%d" % i)
    with open(d + "/target.%d" % i) as f:
        send("MAINPID=" + f.read().strip())
send("READY=1")
time.sleep(1000)
EOF

$t->start;
my $pid = $t->pid;
$t->wait_for(sub { $t->workers('shell') == 2 && $t->workers('py') == 1 && $t->workers('silent') == 1 },
             10, 'workers started');

# corrald's socket: abstract, a random name, in every worker's env
my $name = $t->worker_notify_socket;
like($name, qr{^\@corral/[0-9a-f]{32}/notify$}, 'corrald listens on @corral/RANDOM/notify');
(my $addr = $name) =~ s/^\@/\\0/;
for my $pool (qw(shell py silent)) {
    my ($w) = $t->workers($pool);
    is(proc_environ($w)->{NOTIFY_SOCKET}, $name, "$pool: NOTIFY_SOCKET=$name");
}

# the protocol variables are corrald's to set, whatever the pool's env says
$t->wait_for(sub { $t->workers('override') == 1 }, 10, 'override: worker up');
my ($ov) = $t->workers('override');
my $ovenv = proc_environ($ov);
is($ovenv->{NOTIFY_SOCKET}, $name, 'env NOTIFY_SOCKET = ...: the worker still gets corrald\'s');
is_deeply([ grep { exists $ovenv->{$_} } qw(WATCHDOG_USEC WATCHDOG_PID LISTEN_FDS LISTEN_PID LISTEN_FDNAMES) ], [],
          'env WATCHDOG_* and LISTEN_* from the pool are dropped');

# "started": its READY=1 is noted, not needed
my ($st) = $t->workers('started');
$t->wait_log(qr/ debug notify: READY=1 \(the pool's ready rule is not "notify"\) pool=started worker=1 pid=$st$/);
$t->checkpoint('start-up');

# Nobody but a worker's own process is heard: the test process...
my $me = $$;
$t->notify_send("READY=1\nSTATUS=from outside");
$t->wait_log(qr/ debug notify: ignored a message from a process that is in no worker's cgroup pid=$me$/,
             name => 'READY=1 from the test process is ignored (logged with its pid)');

# ... and a worker of another corrald, in a pool of the same name and id
my $other = CorralTest->new(config => <<"EOF");
pool "silent" { command = { "$PY", "%TMP%/intruder.py" }, $inherit }
EOF
$other->write_file('intruder.py', $PYLIB . <<"EOF");
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1\\nSTATUS=intruder", "$addr")
open(os.environ["CORRAL_TEST_DIR"] + "/sent", "w").close()
time.sleep(1000)
EOF
$other->start;
$other->wait_for(sub { -e $other->path('sent') }, 10, 'a worker of another corrald sent READY=1 to this one');
my ($intruder) = $other->workers('silent');
$t->wait_log(qr/ debug notify: ignored a message from a process that is in no worker's cgroup pid=$intruder$/,
             name => 'READY=1 from another corrald\'s worker "silent" 1 is ignored');
$other->check_invariants;

$t->stays(sub { !$t->log_lines(qr/ info pool ready .* pool=(shell|py|silent|badmain)$/) }, 1,
          'notify pools not ready before their workers say so');
ok(!$t->log_lines(qr/STATUS=(from outside|intruder)/), 'no STATUS taken from outsiders');
$t->checkpoint('messages from outsiders');

# systemd-notify from a shell: the helper's message counts for the worker,
# and it returns (its BARRIER=1 is answered by corrald closing the fd)
my %shell = $t->worker_map('shell');
$t->write_file('go.shell', '');
$t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=shell$/);
for my $id (1, 2) {
    $t->wait_log(qr/ debug notify: STATUS=serving $id pool=shell worker=$id pid=$shell{$id}$/,
                 name => "shell worker $id: STATUS=serving $id kept (pid of the worker, not of the helper)");
    $t->wait_log(qr/ debug worker ready pool=shell worker=$id pid=$shell{$id}$/);
}
$t->wait_for(sub { !grep { proc_cmdline($shell{$_}) ne "sleep\0" . "1000\0" } keys %shell }, 10,
             'systemd-notify returned (barrier released): the shells went on to exec sleep');
$t->checkpoint('systemd-notify from a shell');

# Python
my ($py) = $t->workers('py');
$t->write_file('go.py', '');
$t->wait_log(qr/ info pool ready \(1\/1 workers\) pool=py$/);
my @status = $t->wait_log(qr/ debug notify: STATUS=python (starting|ready) pool=py worker=1 pid=$py$/, count => 2);
like($status[0] // '', qr/STATUS=python starting/, 'py: STATUS lines in the order sent');
like($status[1] // '', qr/STATUS=python ready/, 'py: STATUS in the READY=1 datagram kept');
my $mark = $t->mark;
$t->write_file('go.py2', '');
$t->wait_log(qr/ info worker says it is stopping \(STOPPING=1\) pool=py worker=1 pid=$py$/, since => $mark);
$t->wait_log(qr/ info worker reports errno 2 \(No such file or directory\) pool=py worker=1 pid=$py$/, since => $mark);
$t->wait_log(qr/ debug notify: STATUS=after unknown pool=py worker=1 pid=$py$/, since => $mark,
             name => 'an unknown assignment does not spoil the datagram');
ok(pid_alive($py), 'py: STOPPING=1 alone does not stop the worker');
$t->checkpoint('a Python worker');

# sd_notify() from C
SKIP: {
    skip 'no C compiler', 5 unless $CC;
    $t->write_file('sdn.c', <<'EOF');
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
/* sdn [DELAY_MS]: READY=1 and a STATUS, after the delay (none: at once) */
int main(int argc, char **argv)
{
	int rc;

	if (argc > 1)
		usleep((useconds_t)atoi(argv[1]) * 1000);
	rc = sd_notifyf(0, "READY=1\nSTATUS=c worker %d ready", (int)getpid());
	if (rc <= 0) {
		fprintf(stderr, "sd_notify: %d\n", rc);
		return 1;
	}
	for (;;)
		pause();
}
EOF
    my $out = `$CC -o ${\$t->path('sdn')} ${\$t->path('sdn.c')} -lsystemd 2>&1`;
    skip "cannot build against libsystemd: $out", 5 if $?;
    open my $fh, '>>', $t->conf or die;
    # (after 200 ms: READY=1 at once is the burst case below)
    print $fh qq{pool "c" { command = { "${\$t->path('sdn')}", "200" }, workers = 2, ready = "notify", $inherit }\n};
    close $fh;
    $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=c$/, since => $mark);
    my %c = $t->worker_map('c');
    for my $id (1, 2) {
        $t->wait_log(qr/ debug notify: STATUS=c worker $c{$id} ready pool=c worker=$id pid=$c{$id}$/, since => $mark,
                     name => "c worker $id: sd_notify READY=1 and STATUS");
    }
    # many at once, each saying READY=1 as soon as it runs: possibly before
    # corrald has heard from the prototype which pid the worker has
    open $fh, '>>', $t->conf or die;
    print $fh qq{pool "burst" { command = "${\$t->path('sdn')}", workers = 30, ready = "notify", $inherit }\n};
    close $fh;
    $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/ info pool ready \(30\/30 workers\) pool=burst$/, since => $mark, timeout => 15,
                 name => '30 workers that send READY=1 at once all become ready');
    my %burst = map { $_ => 1 } $t->workers('burst');
    my @lost = grep { /pid=(\d+)$/ && $burst{$1} } $t->log_lines(qr/notify: ignored a message/, $mark);
    is_deeply(\@lost, [], 'no READY=1 of theirs ignored') or diag(join "\n", @lost);
}
# (two pools more)
$t->checkpoint('sd_notify() from C', fds => 0);

# MAINPID=: a shell starts the real program and names it with
# systemd-notify --pid; the shell's exit is not the worker's
$t->wait_log(qr/ info pool ready \(1\/1 workers\) pool=forking$/);
my ($shpid) = map { /forking\.main\.(\d+)$/ ? $1 : () } glob($t->path('forking.main.*'));
my $main = $shpid ? CorralTest::slurp($t->path("forking.main.$shpid")) : '';
chomp $main;
ok($shpid && $main, 'forking: the shell recorded its child');
$t->wait_log(qr/ info worker's main process is now pid $main \(MAINPID\) pool=forking worker=1 pid=$shpid$/);
$t->wait_for(sub { !pid_alive($shpid) }, 10, 'forking: the first process (the shell) exited');
$t->wait_log(qr/ debug prototype reaped a process that is no worker's main one pool=forking pid=$shpid$/);
$t->stays(sub { pid_alive($main) && !$t->log_lines(qr/ worker (exited|killed|stopped).* pool=forking /) }, 1,
          'forking: the worker goes on in its main process');
is_deeply([ $t->workers('forking') ], [ $main ], 'forking: the worker is now the MAINPID process');
ok(!$t->log_lines(qr/ info worker started pool=forking worker=1 pid=(?!$shpid)/), 'forking: not replaced');
$mark = $t->mark;
kill 'TERM', $main;
$t->wait_log(qr/ warn worker killed by signal 15 \(TERM\) pool=forking worker=1 pid=$main$/, since => $mark,
             name => 'forking: the main process\'s death is the worker\'s exit');
$t->wait_log(qr/ info worker started pool=forking worker=1 pid=\d+$/, since => $mark, name => 'forking: restarted');
$t->checkpoint('MAINPID=');

# MAINPID= naming a process that is not the worker's is ignored
my ($badmain) = $t->workers('badmain');
my ($silent) = $t->workers('silent');
my %target = (1 => $pid, 2 => $silent, 3 => 0x3fffffff);
my %what = (1 => 'corrald', 2 => 'a worker of another pool', 3 => 'a pid no process has');
for my $i (1 .. 3) {
    $t->write_file("target.$i", $target{$i});
    $t->wait_log(qr/ warn notify: ignored MAINPID=$target{$i}: not a process of this worker pool=badmain worker=1 pid=$badmain$/,
                 name => "MAINPID of $what{$i} ignored");
}
$t->wait_log(qr/ info pool ready \(1\/1 workers\) pool=badmain$/);
is_deeply([ $t->workers('badmain') ], [ $badmain ], 'badmain: still its own process');
ok(!$t->log_lines(qr/main process is now pid .* pool=badmain /), 'badmain: no main process change');
ok(!$t->log_lines(qr/ info pool ready .* pool=silent$/), 'silent: never ready');
is_deeply([ $t->workers('silent') ], [ $silent ], 'silent: untouched');
$t->checkpoint('MAINPID= of a process not the worker\'s');

$t->done;
