#!/usr/bin/perl
# A prototype that dies is replaced; the pool keeps its workers; later
# workers come from the new prototype; nothing is left a zombie.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_stat pid_alive);
use Test::More;

my $t = CorralTest->new(config => <<'EOF');
pool "p" { command = "/bin/sleep 1000", workers = 3, env_inherit = { "CORRAL_TEST_DIR" } }
pool "other" { command = "/bin/sleep 1000", workers = 1, env_inherit = { "CORRAL_TEST_DIR" } }
EOF
my $corrald = $t->start;
$t->wait_for(sub { $t->workers('p') == 3 && $t->workers('other') == 1 }, 10, 'pools up');
my $old = $t->prototype_pid('p');
ok($old, 'prototype of p found');
my $other_proto = $t->prototype_pid('other');
my @other = $t->workers('other');

kill 'KILL', $old;
$t->wait_log(qr/ warn prototype exited unexpectedly .* pool=p pid=$old$/);
my $new = $t->wait_for(sub { my $p = $t->prototype_pid('p'); $p && $p != $old && $p }, 10,
                       'a new prototype is started');
$t->wait_log(qr/ info prototype started pool=p pid=$new$/) if $new;
$t->wait_for(sub { !proc_stat($old) }, 5, 'the old prototype is reaped');
is(scalar $t->workers('p'), 3, 'pool p still has 3 workers');
is_deeply([ $t->worker_ids('p') ], [ 1, 2, 3 ], 'ids 1..3');
is($t->prototype_pid('other'), $other_proto, 'other pool: prototype untouched');
is_deeply([ $t->workers('other') ], \@other, 'other pool: workers untouched');

# A worker killed now is replaced by the new prototype.
my %before = $t->worker_map('p');
my $victim = $before{1};
kill 'KILL', $victim;
$t->wait_log(qr/ warn worker killed by signal 9 \(KILL\) pool=p worker=1 pid=$victim$/);
my %after;
$t->wait_for(sub { %after = $t->worker_map('p'); keys %after == 3 && $after{1} && $after{1} != $victim }, 10,
             'worker 1 replaced');
is(proc_stat($after{1})->{ppid}, $new, 'the replacement is a child of the new prototype') if $after{1} && $new;
$t->wait_for(sub { !proc_stat($victim) }, 5, 'the killed worker is reaped');

# Kill the remaining workers of the old prototype too, then the new
# prototype: still no zombie, still 3 workers.
kill 'KILL', grep { $_ != $after{1} } values %after;
$t->wait_for(sub { my @w = $t->workers('p'); @w == 3 && !grep { $_ == $before{2} || $_ == $before{3} } @w }, 10,
             'all workers replaced');
kill 'KILL', $new if $new;
$t->wait_for(sub { my $p = $t->prototype_pid('p'); $p && $p != $new }, 10, 'prototype replaced again');
$t->wait_for(sub { !$t->zombies }, 5, 'no zombie child of corrald');
is(scalar $t->workers('p'), 3, 'pool p still has 3 workers');

$t->done;
