#!/usr/bin/perl
# A journal that takes no more does not stop corrald. With stderr "the
# journal" (JOURNAL_STREAM), corrald sends its lines in the journal's
# native protocol to CORRAL_JOURNAL_SOCKET (tests only): here a datagram
# socket the test does not read, full after a few lines. corrald goes on
# answering and restarting a crash-looping pool's worker; the lines it
# could not send are counted, and once the socket is read again a line
# says how many. The fields are the ones corrald always sent: PRIORITY,
# MESSAGE, SYSLOG_IDENTIFIER, CORRAL_POOL, CORRAL_WORKER, CORRAL_PID.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use IO::Socket::UNIX;
use Socket qw(SOCK_DGRAM MSG_DONTWAIT);
use Test::More;
use Time::HiRes qw(time);

my $t = CorralTest->new(
    config => <<'EOF',
pool "crash" { command = { "/bin/sh", "-c", "exit 3" }, output = "inherit",
               backoff = { initial = "20ms", max = "50ms" }, crash_limit = { failures = 0 } }
pool "calm" { command = "/bin/sleep 1000", output = "inherit" }
EOF
);
my $path = $t->path('journal.sock');
my $journal = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $path) or die "bind $path: $!";
$t->{env}{CORRAL_JOURNAL_SOCKET} = $path;
# stderr's device and inode, as systemd sets it when stderr is the journal
$t->{env}{JOURNAL_STREAM} = sub { my @s = stat STDERR; "$s[0]:$s[1]" };
$t->start;
$t->wait_control;

my $restarts = sub { ((($t->status('crash') // {})->{crash} // {})->{restarts}) // -1 };
$t->wait_for(sub { $restarts->() >= 30 }, 20, 'the crash-looping worker is restarted 30 times (some 100 lines)');
my $t0 = time;
my $r = $t->request({ command => 'ping' }, timeout => 2);
ok($r && $r->{ok}, sprintf 'corrald answers while the journal is full (%.3fs)', time - $t0);
my $before = $restarts->();
$t->wait_for(sub { $restarts->() >= $before + 10 }, 10, 'and goes on restarting the worker');
ok(scalar $t->workers('calm'), 'the calm pool\'s worker runs');
is($t->log =~ /starting \(config/ ? 'stderr' : 'journal', 'journal', 'corrald\'s lines do not go to stderr');

# The journal's native protocol: NAME=value lines, or NAME\n, a 64-bit
# little-endian length, the value, \n.
sub fields {
    my ($d) = @_;
    my %f;
    while (length $d) {
        $d =~ s/^([A-Z0-9_]+)([=\n])// or return { BAD => $d };
        my ($name, $how) = ($1, $2);
        if ($how eq '=') {
            $d =~ s/^([^\n]*)\n?// or return { BAD => $d };
            $f{$name} = $1;
        } else {
            my $len = unpack 'Q<', substr($d, 0, 8, '');
            $f{$name} = substr($d, 0, $len, '');
            $d =~ s/^\n//;
        }
    }
    return \%f;
}

# The datagrams the socket holds now, parsed.
sub drain {
    my @got;
    while (defined $journal->recv(my $d, 65536, MSG_DONTWAIT)) {
        push @got, fields($d);
    }
    return @got;
}

my @first = drain();
note(scalar(@first) . ' datagrams were waiting');
ok(@first >= 1, 'the journal socket got lines');
my ($start) = grep { ($_->{MESSAGE} // '') =~ /^corrald .* starting \(config / } @first;
ok($start, 'the first line: corrald starting');
is_deeply([ map { $start->{$_} } qw(PRIORITY SYSLOG_IDENTIFIER) ], [ 6, 'corrald' ], '... PRIORITY=6 (info), SYSLOG_IDENTIFIER=corrald')
    if $start;

# read from now on: the next lines get through, the first says how many
# were dropped
my (@later, $dropped, $exit);
$t->wait_for(sub {
    push @later, drain();
    ($dropped) = grep { ($_->{MESSAGE} // '') =~ /^\d+ log lines dropped: the journal took no more$/ } @later;
    ($exit) = grep { ($_->{MESSAGE} // '') =~ /^worker exited with status 3$/ && $_->{CORRAL_PID} } @later;
    return $dropped && $exit;
}, 10, 'once read, the journal gets a line on how many were dropped, and the lines again');
if ($dropped) {
    my ($n) = $dropped->{MESSAGE} =~ /^(\d+)/;
    cmp_ok($n, '>=', 50, "$n lines were dropped");
    is($dropped->{PRIORITY}, 4, '... said at warning priority');
}
if ($exit) {
    is($exit->{CORRAL_POOL}, 'crash', 'CORRAL_POOL=crash');
    is($exit->{CORRAL_WORKER}, 1, 'CORRAL_WORKER=1');
    like($exit->{CORRAL_PID}, qr/^\d+$/, 'CORRAL_PID=');
    is($exit->{PRIORITY}, 4, 'PRIORITY=4 (warning)');
}
ok(!grep({ $_->{BAD} } @first, @later), 'every datagram is in the native protocol');
$t->ctl('stop', 'crash');
$t->done;
