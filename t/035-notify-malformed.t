#!/usr/bin/perl
# Malformed notifications are dropped whole, with a debug line saying why:
# not KEY=VALUE, a NUL byte, bad numbers (REQUESTS= too), empty, over 4096 bytes. None of
# them makes a worker ready, even with READY=1 in it; fds sent along
# (SCM_RIGHTS) are closed at once, whatever the datagram; a flood does not
# stop corrald; a datagram of exactly 4096 bytes is still taken, its STATUS
# cut to 255 bytes. Outsiders' datagrams are parsed (and dropped) the same.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(find_program pid_alive);
use Test::More;

my $PY = find_program('python3');
plan skip_all => 'python3 not installed (Debian package python3)' unless $PY;

my $inherit = 'env_inherit = { "CORRAL_TEST_DIR" }';

# [ datagram (python bytes literal), why it is dropped ]
my @bad = (
    [ q{b""},                                      'empty datagram' ],
    [ q{b"READY=1\0"},                             'NUL byte in datagram' ],
    [ q{b"READY=1\nSTATUS=a\0b"},                  'NUL byte in datagram' ],
    [ q{b"\0"},                                    'NUL byte in datagram' ],
    [ q{b"READY=1\nfoo"},                          'a line that is not KEY=VALUE' ],
    [ q{b"READY"},                                 'a line that is not KEY=VALUE' ],
    [ q{b"READY=1\n=1"},                           'a line that is not KEY=VALUE' ],
    [ q{b"\xff\xfe=1\nREADY=1"},                   'a key that is not [A-Z0-9_]' ],
    [ q{b"ready=1"},                               'a key that is not [A-Z0-9_]' ],
    [ q{b"READY =1"},                              'a key that is not [A-Z0-9_]' ],
    [ q{b"READY=1\nEXTEND_TIMEOUT_USEC=abc"},      'EXTEND_TIMEOUT_USEC is not a number' ],
    [ q{b"READY=1\nEXTEND_TIMEOUT_USEC="},         'EXTEND_TIMEOUT_USEC is not a number' ],
    [ q{b"READY=1\nEXTEND_TIMEOUT_USEC=-1"},       'EXTEND_TIMEOUT_USEC is not a number' ],
    [ q{b"READY=1\nEXTEND_TIMEOUT_USEC=18446744073709551616"}, 'EXTEND_TIMEOUT_USEC is not a number' ],
    [ q{b"READY=1\nEXTEND_TIMEOUT_USEC=1e6"},      'EXTEND_TIMEOUT_USEC is not a number' ],
    [ q{b"READY=1\nWATCHDOG_USEC=0"},              'WATCHDOG_USEC is not a positive number' ],
    [ q{b"READY=1\nWATCHDOG_USEC=x"},              'WATCHDOG_USEC is not a positive number' ],
    [ q{b"READY=1\nMAINPID=1"},                    'MAINPID is not a pid' ],
    [ q{b"READY=1\nMAINPID=0"},                    'MAINPID is not a pid' ],
    [ q{b"READY=1\nMAINPID=-5"},                   'MAINPID is not a pid' ],
    [ q{b"READY=1\nMAINPID=99999999999"},          'MAINPID is not a pid' ],
    [ q{b"READY=1\nERRNO=99999"},                  'ERRNO is not an errno' ],
    [ q{b"READY=1\nERRNO=x"},                      'ERRNO is not an errno' ],
    [ q{b"READY=1\nREQUESTS=x"},                   'REQUESTS is not a count' ],
    [ q{b"READY=1\nBUSY=1\nREQUESTS=-1"},          'REQUESTS is not a count' ],
    [ q{b"READY=1\nREQUESTS=4294967296"},          'REQUESTS is not a count' ],
    [ q{b"READY=1\nREQUESTS="},                    'REQUESTS is not a count' ],
);
# well-formed, but none of them makes the worker ready
my @harmless = (
    q{b"READY=2"}, q{b"READY=1 "}, q{b"READY=0"}, q{b"\n\n\n"}, q{b"X_UNKNOWN=1\n" * 400},
    q{b"WATCHDOG=sometimes"}, q{b"BUSY=0\nREQUESTS=0"}, q{b"STATUS=" + b"s" * 4000}, q{b"BARRIER=1"},
);

my $cases = join '', map { "    ($_->[0]),\n" } @bad;
my $harmless = join '', map { "    ($_),\n" } @harmless;

my $t = CorralTest->new(config => <<"EOF");
pool "mal" { command = { "$PY", "%TMP%/mal.py" }, ready = "notify", $inherit }
EOF
$t->write_file('mal.py', <<"EOF");
import os, select, socket, time
D = os.environ["CORRAL_TEST_DIR"]
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(addr)
for c in [
$cases]:
    s.send(c)
for c in [
$harmless]:
    s.send(c)

# fds sent along are closed by corrald at once: our read ends see EOF
def fds_closed(msg, n):
    pipes = [os.pipe() for _ in range(n)]
    socket.send_fds(s, [msg], [w for r, w in pipes])
    for r, w in pipes:
        os.close(w)
    ok = True
    for r, w in pipes:
        ready, _, _ = select.select([r], [], [], 10)
        ok = ok and bool(ready) and os.read(r, 1) == b""
        os.close(r)
    return "closed" if ok else "open"

res = []
res.append("well-formed " + fds_closed(b"FDSTORE=1\\nFDNAME=x", 1))
res.append("malformed " + fds_closed(b"not a key value", 3))
res.append("oversized " + fds_closed(b"READY=1\\nSTATUS=" + b"z" * 5000, 1))
with open(D + "/fds", "w") as f:
    f.write("\\n".join(res) + "\\n")

big = b"READY=1\\nSTATUS=" + b"x" * 6000
s.send(big)
for i in range(1000):
    s.send(b"junk %d" % i)
with open(D + "/sent", "w") as f:
    f.write(str(len(big)))
while not os.path.exists(D + "/go"):
    time.sleep(0.02)
exact = b"READY=1\\nSTATUS=" + b"y" * (4096 - 15)
assert len(exact) == 4096
s.send(exact)
time.sleep(1000)
EOF
$t->start;

$t->wait_for(sub { $t->workers('mal') == 1 }, 10, 'worker up');
my ($w) = $t->workers('mal');
$t->wait_for(sub { -s $t->path('sent') }, 20, 'the worker sent everything');
my $biglen = CorralTest::slurp($t->path('sent'));

my %count;
$count{$_->[1]}++ for @bad;
$count{'a line that is not KEY=VALUE'} += 1;    # the 3 fds' datagram
for my $why (sort keys %count) {
    $t->wait_log(qr/ debug notify: dropped a malformed datagram: \Q$why\E pid=$w$/, count => $count{$why},
                 name => "$count{$why} x dropped: $why");
}
$t->wait_log(qr/ debug notify: dropped a truncated datagram \($biglen bytes\) pid=$w$/, name => "dropped: $biglen bytes");
$t->wait_log(qr/ debug notify: dropped a truncated datagram \(5015 bytes\) pid=$w$/, name => 'dropped: 5015 bytes with an fd');
$t->wait_log(qr/ debug notify: dropped a malformed datagram: a line that is not KEY=VALUE pid=$w$/,
             count => $count{'a line that is not KEY=VALUE'} + 1000, timeout => 20, name => 'a flood of 1000 junk datagrams: each dropped');

is(CorralTest::slurp($t->path('fds')), "well-formed closed\nmalformed closed\noversized closed\n",
   'fds sent along are closed at once: with a well-formed, a malformed (3 fds) and an oversized datagram');
ok(!$t->log_lines(qr/ debug worker ready pool=mal /), 'nothing made the worker ready');
ok(!$t->log_lines(qr/notify: STATUS=(a|z+|x+) pool=/), 'no STATUS taken from a dropped datagram');
ok(scalar $t->log_lines(qr/ debug notify: STATUS=s{255} pool=mal worker=1 pid=$w$/), 'a long STATUS is cut to 255 bytes');
ok(pid_alive($w), 'the worker is still there');
my $mal = $t->status('mal')->{mal};
is_deeply([ $mal->{busy}, $mal->{requests}, $mal->{workers}[0]{load} ], [ 0, 0, undef ],
          'no BUSY=1 or REQUESTS taken from a dropped datagram');
$t->stays(sub { !$t->log_lines(qr/ debug worker ready pool=mal /) }, 0.5, 'still not ready');

# outsiders' datagrams go through the same checks
my $me = $$;
$t->notify_send("READY=1\0");
$t->wait_log(qr/ debug notify: dropped a malformed datagram: NUL byte in datagram pid=$me$/, name => 'outsider: NUL dropped');
$t->notify_send('x' x 5000);
$t->wait_log(qr/ debug notify: dropped a truncated datagram \(5000 bytes\) pid=$me$/, name => 'outsider: oversized dropped');
$t->notify_send("READY=1");
$t->wait_log(qr/ debug notify: ignored a message from a process that is in no worker's cgroup pid=$me$/,
             name => 'outsider: a well-formed one is ignored');

# exactly 4096 bytes: taken
$t->write_file('go', '');
$t->wait_log(qr/ debug notify: STATUS=y{255} pool=mal worker=1 pid=$w$/, name => 'a 4096-byte datagram is taken, STATUS cut to 255');
$t->wait_log(qr/ info pool ready \(1\/1 workers\) pool=mal$/, name => 'and its READY=1 makes the worker ready');

$t->done;
