#!/usr/bin/perl
# corralctl's wait asks for the status at a pace that follows how long
# corrald takes to answer: never more than a fifth of corrald's time on
# its status calls (a status of thousands of workers takes a while).
# A stand-in corrald here answers every status in 0.3 s, "starting"
# until 3 s have passed, then "running": corralctl start waits for it
# with at most one status call per 4 x 0.3 s after the first few (not
# every 0.1 s, which would be 7 or more calls), and still sees the end.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use IO::Socket::UNIX;
use JSON::PP ();
use POSIX qw(_exit);
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(time sleep);

my $t = CorralTest->new;
my $sock = $t->path('fake.sock');
my $count = $t->path('status-calls');
my ($SLOW, $UNTIL) = (0.3, 3.0);

my $server = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $sock, Listen => 16) or die "listen: $!";
my $pid = fork // die "fork: $!";
if (!$pid) {
    my $t0;
    my $calls = 0;
    while (my $c = $server->accept) {
        my $line = <$c> // next;
        my $req = eval { JSON::PP::decode_json($line) } || {};
        my $answer;
        if (($req->{command} // '') eq 'start') {
            $t0 = time;
            $answer = { code => 'ok' };
        } else {
            sleep $SLOW;
            $calls++;
            open my $fh, '>', $count; print $fh $calls; close $fh;
            my $done = defined $t0 && time - $t0 >= $UNTIL;
            $answer = { code => 'ok', pools => [ { name => 'p', state => $done ? 'running' : 'starting',
                target => 1, generation => 1,
                workers => [ { id => 1, state => $done ? 'ready' : 'starting', generation => 1 } ] } ] };
        }
        print $c JSON::PP::encode_json($answer), "\n";
        close $c;
    }
    _exit(0);
}
close $server;

my $t1 = time;
my $r = $t->command_wait($t->command_spawn([ $CorralTest::CORRALCTL, '-s', $sock, '--timeout', '20s', 'start', 'p' ]), 30);
my $took = time - $t1;
kill 'KILL', $pid;
waitpid $pid, 0;
is($r->{code}, 0, 'start waited until the pool was running') or diag($r->{err});
cmp_ok($took, '>=', $UNTIL, 'it did wait');
my $calls = CorralTest::slurp($count) // 0;
note("status calls: $calls in ${took}s");
# each call takes 0.3 s; paced at 4 x that, about 4 calls fit in 3 s; at a
# flat 0.1 s, 8 would
cmp_ok($calls, '<=', 6, 'status asked at the pace corrald answers, not every 0.1 s');
cmp_ok($calls, '>=', 2, 'but asked again');
done_testing;
