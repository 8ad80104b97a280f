#!/usr/bin/perl
# The workers' notify socket is an abstract name, which anyone may bind
# first: when @corral/PID/notify is taken (by a local user squatting the
# pids to come, or a leftover of an earlier corrald), corrald says so,
# takes a random name instead, and its workers' notifications still work.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_environ);
use Test::More;

my $t = CorralTest->new(config => <<'EOF2');
pool "n" { command = { "/bin/sh", "-c", "systemd-notify --ready --pid=$$ 2>/dev/null || true; exec /bin/sleep 1000" },
           ready = "notify", ready_timeout = "20s" }
EOF2
# the wrapper becomes corrald (exec keeps the pid); a child of its binds
# the name corrald would take, and holds it
# (a grandchild, so that it is no process of corrald's)
my $squat = $t->write_file('squat.pl', <<'EOF2', 0755);
use strict;
use POSIX qw(setsid _exit);
use Socket;
my $pid = $$;
pipe(my $r, my $w) or die "pipe: $!";
my $kid = fork // die "fork: $!";
if ($kid == 0) {
    setsid();
    fork and _exit(0);
    close $r;
    socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
    bind($s, pack_sockaddr_un("\0corral/$pid/notify")) or die "bind: $!";
    syswrite $w, "$$\n";
    open STDIN, '<', '/dev/null'; open STDOUT, '>', '/dev/null'; open STDERR, '>', '/dev/null';
    sleep 600;
    _exit(0);
}
close $w;
waitpid $kid, 0;
my $line = <$r>;
open my $f, '>', "$ARGV[0]" or die "$ARGV[0]: $!";
print $f $line;
close $f;
shift @ARGV;
exec @ARGV or die "exec: $!";
EOF2
$t->{wrap} = [ $^X, $squat, $t->path('squatter') ];
$t->start;
$t->wait_log(qr/ warn notify: \@corral\/\d+\/notify is taken by another process; using a random name$/);
my ($squatter) = $t->file_lines('squatter');
END { kill 'KILL', $squatter if $squatter }
ok($squatter, 'the squatter holds @corral/PID/notify');
$t->wait_log(qr/ info pool ready \(1\/1 workers\) pool=n$/, 30);
my ($w) = $t->workers('n');
like(proc_environ($w)->{NOTIFY_SOCKET} // '', qr{^\@corral/\d+\.[0-9a-f]{8}/notify$},
     'the worker was given the random name');
kill 'KILL', $squatter if $squatter;
$t->done;
