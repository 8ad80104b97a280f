#!/usr/bin/perl
# MAINPID= naming a process the prototype does not reap: a worker forks a
# child, names it with MAINPID= and reaps it itself, staying alive. When
# that child dies, corrald learns it from its pidfd: the worker is
# replaced (it was ready past its start window), `signal` reaches the new
# one, and stopping corrald (whose stop signal goes to such a main
# process) completes and leaves nothing.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive);
use Test::More;

my $t = CorralTest->new(config => <<'EOF');
pool "keeper" {
  command = { "/usr/bin/perl", "%TMP%/keeper.pl" },
  ready = "notify", start_window = "1s", env_inherit = { "CORRAL_TEST_DIR" },
}
pool "leaver" {
  command = { "/usr/bin/perl", "%TMP%/keeper.pl", "leave" },
  ready = "notify", env_inherit = { "CORRAL_TEST_DIR" },
}
EOF

# The worker: a child that records USR1, MAINPID=child and READY=1 in one
# datagram, then it waits for (reaps) the child and lives on; with
# "leave", it exits then (its cgroup is empty).
$t->write_file('keeper.pl', <<'EOF');
use strict;
use Socket;
my $d = $ENV{CORRAL_TEST_DIR};
my $child = fork // die "fork: $!";
if (!$child) {
    $SIG{USR1} = sub { open my $f, '>', "$d/usr1.$$"; close $f };
    sleep 1 while 1;
}
my $addr = $ENV{NOTIFY_SOCKET};
$addr =~ s/^\@/\0/;
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
send($s, "MAINPID=$child\nREADY=1", 0, pack_sockaddr_un($addr)) or die "send: $!";
open my $f, '>', "$d/main.$$" or die; print $f $child; close $f;
waitpid $child, 0;
exit 0 if @ARGV;
sleep 1 while 1;
EOF

$t->start;
my $main = sub {
    my ($parent) = @_;
    my $p = $t->path("main.$parent");
    return -e $p ? CorralTest::slurp($p) : undef;
};
my $first;
$t->wait_for(sub { ($first) = $t->workers('keeper'); $first && $t->workers('leaver') == 1 && defined $main->($first) }, 10, 'worker up, MAINPID sent');
my $child = $main->($first);
$t->wait_log(qr/ info worker's main process is now pid $child \(MAINPID\) pool=keeper worker=1 pid=$first$/);
$t->wait_log(qr/ info pool ready \(1\/1 workers\) pool=keeper$/);
select undef, undef, undef, 1.5;    # past its start window: replaced at once

# the main process dies; its parent (the worker's first process) reaps
# it, unless corrald's cleanup of the cgroup kills that parent first
my $mark = $t->mark;
kill 'KILL', $child;
$t->wait_log(qr/ warn worker exited \(status unknown: not corrald's child\) pool=keeper worker=1 pid=$child$/,
             since => $mark, timeout => 3, name => 'the main process\'s death is noticed from its pidfd');
$t->wait_log(qr/ info replacing the worker now pool=keeper worker=1 pid=$child$/, since => $mark, timeout => 3);
$t->wait_for(sub { !pid_alive($first) }, 5, 'what it left (the first process) is killed');
my $second;
$t->wait_for(sub { ($second) = $t->workers('keeper'); $second && $second != $first && defined $main->($second) },
             10, 'a new worker');
my $child2 = $main->($second);
# its id: 1, or 2 while worker 1's record waits for its cgroup to empty
my %ids = reverse $t->worker_map('keeper');
my $id = $ids{$second} // '?';
$t->wait_log(qr/ info worker's main process is now pid $child2 \(MAINPID\) pool=keeper worker=$id pid=$second$/);

# signal: the new main process
my $r = $t->ctl('signal', "keeper/$id", 'USR1');
is($r->{code}, 0, "corralctl signal keeper/$id USR1 succeeds") or diag($r->{err});
$t->wait_for(sub { -e $t->path("usr1.$child2") }, 5, 'the new main process got USR1');

# leaver: its stop signal goes to the main process, then its parent exits
# too; either way it is seen, and `corralctl stop` completes
my %leaver = $t->worker_map('leaver');
$mark = $t->mark;
$r = $t->ctl('stop', 'leaver', { timeout => 5 });
is($r->{code}, 0, 'corralctl stop leaver succeeds') or diag($r->{err});
$t->wait_for(sub { !$t->workers('leaver') }, 5, 'leaver: stopped');
$t->wait_log(qr/ info worker stopped \(.*\) pool=leaver worker=1 pid=\d+$/, since => $mark);
$t->wait_for(sub { !grep { pid_alive($_) } values %leaver }, 5, 'leaver: its processes are gone');

# stop: its stop signal goes to the main process; nothing waits forever
my $t0 = time;
is($t->stop(5), 0, 'corrald stops (SIGTERM) and exits 0');
cmp_ok(time - $t0, '<=', 5, 'within a few seconds');
$t->wait_for(sub { !$t->leftovers }, 5, 'nothing left behind');
done_testing();
