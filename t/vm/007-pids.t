#!/usr/bin/perl
# worker_limits pids_max = 20 stops a fork bomb inside one worker: its
# forks fail at the limit, while the pool's other workers keep their pids
# and go on forking (a heartbeat loop that runs a process every beat) and
# corrald keeps answering.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;

my $UNIT = $CorralVM::UNIT;
my $CG = $CorralVM::UNIT_CG;
my $DIR = test_dir('pids');

# Worker 1: a fork bomb (perl: a failed fork is an error value, not the
# end of the shell) that forks sleeping children until fork fails, writes
# how far it got and keeps them; at most 300, so that a missing limit
# fails the test without taking the machine down. Workers 2 and 3: a
# shell loop that runs date(1) and sleep(1) each beat.
my $bomb = q{my $n = 0; while ($n < 300) { my $p = fork; if (!defined $p) { my $e = "$!"; open my $f, ">", "DIR/bomb.tmp"; print $f "$n $e\n"; close $f; rename "DIR/bomb.tmp", "DIR/bomb"; last } if (!$p) { sleep 1000; exit 0 } $n++ } if ($n >= 300) { open my $f, ">", "DIR/bomb"; print $f "$n no limit\n"; close $f } sleep 1000 while 1;};
$bomb =~ s/DIR/$DIR/g;
my $script = <<"EOF";
[ "\$CORRAL_WORKER" = 1 ] && exec perl -e '$bomb'
while :; do date +%s.%N > $DIR/beat.\$CORRAL_WORKER.tmp && mv $DIR/beat.\$CORRAL_WORKER.tmp $DIR/beat.\$CORRAL_WORKER; sleep 0.2; done
EOF
my $config = corral_lua(
    [ pool => 'bomb', command => [ '/bin/sh', '-c', $script ], workers => 3, worker_limits => { pids_max => 20 } ],
);

my ($rc, $out) = corral_start($config);
is($rc, 0, 'systemctl start corral') or diag($out);
ok(wait_until(sub { pool_workers('bomb') == 3 }, 60), 'pool bomb: 3 workers');
is(cg_read("$CG/bomb/$_", 'pids.max'), 20, "bomb/$_/pids.max 20") for 1 .. 3;
my %before = worker_pids_by_id('bomb');

my $result;
ok(wait_until(sub { $result = slurp("$DIR/bomb") }, 60), 'the bomb in worker 1 stopped forking')
    or diag(slurp("$DIR/bomb.tmp"));
chomp($result //= '');
my ($forked, $why) = $result =~ /^(\d+) (.*)$/;
note("the bomb: $result");
ok(defined $forked && $forked < 20, 'it forked fewer than 20 children') or diag($result);
is($why, 'Resource temporarily unavailable', 'its fork failed with EAGAIN');
stays(sub { my %w = worker_pids_by_id('bomb'); ($w{1} // 0) == $before{1} }, 1,
      'worker 1, the bomb, stays the same process');
my %w = worker_pids_by_id('bomb');
like(slurp("/proc/$w{1}/cmdline") // '', qr/^perl\0-e\0/, 'and it is the perl bomb');

my @in = cgroup_pids("$CG/bomb/1");
ok(@in >= 19 && @in <= 20, 'bomb/1 holds the bomb and its children, 20 at most') or diag(scalar @in);
cmp_ok(cg_read("$CG/bomb/1", 'pids.current'), '<=', 20, 'bomb/1/pids.current <= 20');
cmp_ok(cg_keys("$CG/bomb/1", 'pids.events')->{max} // 0, '>', 0, 'bomb/1/pids.events: max > 0');
is(cgroup_of($_), "$CG/bomb/1", "the bomb's process $_ is in bomb/1") for grep { defined } @in[0 .. 2];

# the others: same pids, still forking
is($w{$_}, $before{$_}, "worker $_ keeps its pid") for 2, 3;
my %beat = map { $_ => slurp("$DIR/beat.$_") // 0 } 2, 3;
for my $id (2, 3) {
    wait_for(sub { (slurp("$DIR/beat.$id") // 0) > $beat{$id} }, 10, "worker $id still beats (it can fork)");
    cmp_ok(cg_keys("$CG/bomb/$id", 'pids.events')->{max} // 0, '==', 0, "bomb/$id never hit its limit");
}
my $unit_tasks = unit_props($UNIT, 'TasksCurrent')->{TasksCurrent};
cmp_ok($unit_tasks, '<', 40, "the whole unit runs fewer than 40 tasks ($unit_tasks)");
($rc, $out) = corralctl('status', 'bomb');
is($rc, 0, 'corrald answers corralctl status') or diag($out);
like($out, qr/^bomb\s+running\s+3\/3\s/m, 'the pool is running, 3/3 ready') or diag($out);

# stopping kills the bomb's whole cgroup
($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'systemctl stop') or diag($out);
ok(!grep({ pid_alive($_) } @in), "nothing of the bomb's is left");

done();
