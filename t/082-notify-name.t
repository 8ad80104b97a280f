#!/usr/bin/perl
# The workers' notify socket has a random name: not made of corrald's pid
# (which any local user could bind first, so that corrald would not start),
# different for every corrald, and the one workers find in NOTIFY_SOCKET.
# Squatting: the test binds the old-style names of the next pids to come,
# and corrald still starts; two corralds started at once both come up; a
# random name that is taken (getrandom forced to zeros by an LD_PRELOAD
# shim) is replaced by another.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_environ);
use Socket qw(AF_UNIX SOCK_DGRAM pack_sockaddr_un);
use Test::More;

my $config = <<'EOF2';
pool "p" { command = "/bin/sleep 1000", workers = 1 }
EOF2

# The NOTIFY_SOCKET a worker of $t sees, once it is up.
sub worker_socket {
    my ($t) = @_;
    $t->wait_for(sub { $t->workers('p') == 1 }, 10, 'worker up') or return '';
    my ($w) = $t->workers('p');
    return proc_environ($w)->{NOTIFY_SOCKET} // '';
}

# Squat the pid-derived names of the pids the next corrald may get.
my @squat;
my $last = CorralTest::slurp('/proc/sys/kernel/ns_last_pid') + 0;
my $max = CorralTest::slurp('/proc/sys/kernel/pid_max') + 0;
for my $p (map { ($last + $_) % $max } 1 .. 400) {
    next if $p < 2;
    socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
    bind($s, pack_sockaddr_un("\0corral/$p/notify")) or next;
    push @squat, $s;
}
note(scalar(@squat) . " names squatted from pid " . ($last + 1));

# Two corralds at once.
my @t = map { CorralTest->new(config => $config) } 1 .. 2;
$_->start for @t;
my @name = map { worker_socket($_) } @t;
for my $i (0, 1) {
    my $pid = $t[$i]->pid;
    like($name[$i], qr{^\@corral/[0-9a-f]{32}/notify$}, "corrald $i: NOTIFY_SOCKET is \@corral/RANDOM/notify");
    unlike($name[$i], qr{/$pid/}, "corrald $i: the name is not made of its pid ($pid)");
    is($name[$i], $t[$i]->worker_notify_socket, "corrald $i: it is the socket corrald listens on");
    ok($t[$i]->log_lines(qr/ info notify: workers' socket is \Q$name[$i]\E$/), "corrald $i: logs the name");
}
isnt($name[0], $name[1], 'two corralds, two names');
close $_ for @squat;

# A second run of the first: a new name.
is($t[0]->stop, 0, 'corrald 0 stops');
$t[0]->start;
my $again = worker_socket($t[0]);
like($again, qr{^\@corral/[0-9a-f]{32}/notify$}, 'second run: random name');
isnt($again, $name[0], 'second run: another name than the first');

# Workers' messages still arrive there.
my $me = $$;
$t[1]->notify_send("READY=1");
$t[1]->wait_log(qr/ debug notify: ignored a message from a process that is in no worker's cgroup pid=$me$/,
                name => 'a datagram to the name arrives');

is($_->stop, 0, 'corrald stops') for @t;

# A collision: getrandom() made to give zeros to corrald's first two
# 16-byte requests (an LD_PRELOAD shim), and the all-zero name taken by
# the test: corrald warns, tries again (zeros again: taken again) and
# binds a third name.
SKIP: {
    my $cc = CorralTest::find_program('cc') // CorralTest::find_program('gcc');
    skip 'no C compiler', 4 unless $cc;
    my $dir = $t[0]->dir;
    open(my $c, '>', "$dir/zeros.c") or die $!;
    print $c <<'C';
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <sys/types.h>
static int zeros = 2;
ssize_t getrandom(void *buf, size_t n, unsigned flags)
{
	ssize_t (*real)(void *, size_t, unsigned) = (ssize_t (*)(void *, size_t, unsigned))dlsym(RTLD_NEXT, "getrandom");
	if (n == 16 && zeros > 0) {
		zeros--;
		memset(buf, 0, n);
		return (ssize_t)n;
	}
	return real(buf, n, flags);
}
C
    close $c;
    system($cc, '-shared', '-fPIC', '-o', "$dir/zeros.so", "$dir/zeros.c", '-ldl') == 0
        or skip 'unable to build the shim', 4;
    my $zero = '@corral/' . ('0' x 32) . '/notify';
    socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
    bind($s, pack_sockaddr_un("\0" . substr($zero, 1))) or die "bind $zero: $!";
    my $z = CorralTest->new(config => $config, env => {
        LD_PRELOAD => "$dir/zeros.so",
        ASAN_OPTIONS => join(':', grep { defined && length } $ENV{ASAN_OPTIONS}, 'verify_asan_link_order=0'),
    });
    $z->start;
    my $got = worker_socket($z);
    like($got, qr{^\@corral/[0-9a-f]{32}/notify$}, 'collision: corrald comes up with a random name');
    isnt($got, $zero, 'collision: not the taken one');
    is(scalar(() = $z->log_lines(qr/ warn notify: \Q$zero\E is taken already, trying another name$/)), 2,
       'collision: two warnings, one per try');
    is($z->stop, 0, 'collision: corrald stops');
    close $s;
}
CorralTest::done();
