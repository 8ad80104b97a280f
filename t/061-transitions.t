#!/usr/bin/perl
# Every move of a worker's and a pool's state goes through one function
# that checks it against a table and logs it (debug): this test provokes
# each allowed move at least once and finds its line. An illegal move
# would be an alert, which the invariants check.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;

my @worker_moves = ('spawning -> starting', 'spawning -> stopping', 'spawning -> exited',
                    'starting -> ready', 'starting -> stopping', 'starting -> exited',
                    'ready -> stopping', 'ready -> exited', 'stopping -> exited');
my @pool_moves = ('starting -> running', 'starting -> failed', 'starting -> stopped', 'starting -> removed',
                  'running -> starting', 'running -> failed', 'running -> stopped', 'running -> removed',
                  'failed -> starting', 'failed -> stopped', 'failed -> removed',
                  'stopped -> starting', 'stopped -> removed', 'removed -> starting');

my $t = CorralTest->new;
my $keep = 'pool "keep" { command = { "/bin/sleep", "1000" }, workers = 1 }';
my %pools = (
    # ready when %TMP%/go-ID or go-all exists
    n => 'pool "n" { command = { "/bin/sh", "-c", "while [ ! -e %TMP%/go-$CORRAL_WORKER ] && [ ! -e %TMP%/go-all ]; do sleep 0.02; done; '
       . 'systemd-notify --ready; exec /bin/sleep 1000" }, env_inherit = { "CORRAL_TEST_DIR" }, ready = "notify", '
       . 'workers = 2, backoff = { initial = "10ms" }, crash_limit = { failures = 2, interval = "1m" } }',
    # never starts
    e => 'pool "e" { command = { "/bin/sh", "-c", "exit 3" }, ready = "notify", '
       . 'backoff = { initial = "10ms" }, crash_limit = { failures = 2, interval = "1m" } }',
    # for unanswered spawns
    q => 'pool "q" { command = { "/bin/sleep", "1000" }, workers = 1 }',
    # drains slowly: its worker ignores TERM
    p => 'pool "p" { command = { "/bin/sh", "-c", "trap \'\' TERM; exec /bin/sleep 1000" }, stop_timeout = "60s" }',
    # never ready
    r => 'pool "r" { command = { "/bin/sleep", "1000" }, ready = "notify" }',
);
sub config { $t->write_config(join("\n", $keep, map { $pools{$_} } @_) . "\n") }
sub ctl_ok {
    my $res = $t->ctl(@_);
    is($res->{code}, 0, "corralctl @_") or diag($res->{err});
}
sub seen {
    my ($what, $move, $pool) = @_;
    my ($from, $to) = split / -> /, $move;
    return $t->log_lines(qr/ debug transition: $what \Q$from\E -> \Q$to\E pool=\Q$pool\E(?: |$)/);
}
sub wait_move {
    my ($what, $move, $pool) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok($t->poll(sub { seen($what, $move, $pool) }, 15), "$what $move (pool $pool)") or $t->diag_tail;
}

config(qw(n e q p r));
$t->start;

# n: starting -> stopped -> starting, then its workers become ready
wait_move(worker => 'spawning -> starting', 'n');
ctl_ok('stop', 'n');
wait_move(pool => 'starting -> stopped', 'n');
ctl_ok('start', 'n');
wait_move(pool => 'stopped -> starting', 'n');
$t->wait_for(sub { $t->workers('n') == 2 }, 10, 'n: two workers');
$t->write_file('go-1', '');
wait_move(worker => 'starting -> ready', 'n');
ctl_ok('restart', 'n/2');                        # not ready yet
wait_move(worker => 'starting -> stopping', 'n');
wait_move(worker => 'stopping -> exited', 'n');
$t->write_file('go-all', '');    # its replacement may have another id
wait_move(pool => 'starting -> running', 'n');
ctl_ok('scale', 'n', '1');
wait_move(worker => 'ready -> stopping', 'n');
$t->wait_for(sub { $t->workers('n') == 1 }, 10, 'n: one worker');
# a ready worker killed: the pool is short of one, then fails on the second
my ($w) = $t->workers('n');
kill 'KILL', $w;
wait_move(worker => 'ready -> exited', 'n');
wait_move(pool => 'running -> starting', 'n');
$t->wait_for(sub { my @l = seen(pool => 'starting -> running', 'n'); @l >= 2 },
             10, 'n: running again with its replacement');
($w) = $t->workers('n');
kill 'KILL', $w;
wait_move(pool => 'running -> failed', 'n');
ctl_ok('stop', 'n');
wait_move(pool => 'failed -> stopped', 'n');

# e: never starts
wait_move(worker => 'starting -> exited', 'e');
wait_move(pool => 'starting -> failed', 'e');
ctl_ok('start', 'e');
wait_move(pool => 'failed -> starting', 'e');
$t->wait_for(sub { my @l = seen(pool => 'starting -> failed', 'e'); @l >= 2 }, 10, 'e: failed again');

# q: spawn requests its prototype does not answer
my $proto = $t->prototype_pid('q');
ok($proto, 'q: its prototype');
kill 'STOP', $proto;
ctl_ok('scale', 'q', '3');
$t->wait_log(qr/ debug transition: worker \(new\) -> spawning pool=q worker=3/, name => 'q: two more asked for');
ctl_ok('scale', 'q', '1');
wait_move(worker => 'spawning -> stopping', 'q');
kill 'CONT', $proto;
$t->wait_for(sub { my @l = seen(worker => 'stopping -> exited', 'q'); @l >= 2 }, 10, 'q: born and stopped at once');
kill 'STOP', $proto;
ctl_ok('scale', 'q', '2');
$t->wait_log(qr/ debug transition: worker \(new\) -> spawning pool=q worker=2/, count => 2,
             name => 'q: another asked for');
kill 'KILL', $proto;
wait_move(worker => 'spawning -> exited', 'q');
$t->wait_for(sub { $t->workers('q') == 2 }, 10, 'q: a new prototype serves it');
wait_move(pool => 'starting -> running', 'q');
ctl_ok('stop', 'q');
wait_move(pool => 'running -> stopped', 'q');

# reloads: e failed, n and q stopped, p running, r starting, all removed;
# p drains slowly, so it comes back before it is gone
wait_move(pool => 'starting -> running', 'p');
config();
ctl_ok('reload');
wait_move(pool => 'failed -> removed', 'e');
wait_move(pool => 'stopped -> removed', 'n');
wait_move(pool => 'running -> removed', 'p');
wait_move(pool => 'starting -> removed', 'r');
config('p');
ctl_ok('reload');
wait_move(pool => 'removed -> starting', 'p');
kill 'KILL', $t->workers('p');    # it ignores TERM

my @missing = ((grep { !$t->log_lines(qr/ debug transition: worker \Q$_\E /) } @worker_moves),
               (map { "pool $_" } grep { !$t->log_lines(qr/ debug transition: pool \Q$_\E /) } @pool_moves));
ok(!@missing, 'every allowed move was made at least once') or diag("missing: @missing");
$t->done;
