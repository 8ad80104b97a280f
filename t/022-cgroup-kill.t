#!/usr/bin/perl
# Nothing a worker starts outlives it: grandchildren and a double-forked
# daemon (its own session, reparented away from the worker) die with the
# worker's cgroup when the worker's main process is killed, when corrald
# stops, and when a worker ignoring TERM is killed after stop_timeout.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_stat proc_cmdline pid_alive cgroup_of descends_from);
use Test::More;
use Time::HiRes qw(time);

# Worker main: sleep 1000 (exec'd); a grandchild sleep 1003; a daemon,
# double-forked into its own session: sleep 1001 and 1002.
my $tree = q{(setsid sh -c "sleep 1001 & sleep 1002" &); sleep 1003 & exec sleep 1000};

sub cmd_of { (my $c = proc_cmdline($_[0])) =~ tr/\0/ /; $c =~ s/ $//; return $c }

# Waits until worker $id of $pool has all of @want (commands) in its
# cgroup; returns { command => pid } of what its cgroup holds then, minus
# the transient commands matching $skip.
sub wait_tree {
    my ($t, $pool, $id, $want, $skip, $name) = @_;
    my %by;
    $t->wait_for(sub {
        %by = ();
        for my $p ($t->cgroup_procs("$pool/$id")) {
            my $c = cmd_of($p);
            next if $skip && $c =~ $skip;
            $by{$c} = $p;
        }
        !grep { !$by{$_} } @$want;
    }, 10, $name) or diag(join "\n", map { "$_: $by{$_}" } sort keys %by);
    return \%by;
}

my @sleeps = map { "sleep $_" } 1000 .. 1003;

# 1. kill -9 of a worker's main process: the rest of its cgroup dies, the
# cgroup is made anew and the worker replaced; the other worker is
# untouched. 2. corrald stop: nothing of any worker stays.
{
    my $t = CorralTest->new(config => <<"EOF");
pool "tree" { command = { "/bin/sh", "-c", [[$tree]] }, workers = 2, env_inherit = { "CORRAL_TEST_DIR" } }
EOF
    $t->start;
    $t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=tree$/);
    my %w = $t->started_workers('tree');
    my %procs = map { $_ => wait_tree($t, 'tree', $_, \@sleeps, undef, "kill: worker $_ has its whole tree in its cgroup") } 1, 2;
    my $one = $procs{1};
    is($one->{'sleep 1000'}, $w{1}, 'kill: sleep 1000 is worker 1 itself');
    for my $c ('sleep 1001', 'sleep 1002') {
        my $p = $one->{$c} or next;
        isnt(proc_stat($p)->{session}, proc_stat($w{1})->{session}, "kill: the daemon's $c is in a session of its own");
        ok(!descends_from($p, $w{1}), "kill: the daemon's $c does not descend from the worker");
        is(cgroup_of($p), $t->cgroup_rel('tree/1'), "kill: the daemon's $c is in the worker's cgroup");
    }
    ok(descends_from($one->{'sleep 1003'}, $w{1}), 'kill: sleep 1003 is a child of the worker');

    my $ino = $t->cgroup_ino('tree/1');
    my @two = sort { $a <=> $b } values %{ $procs{2} };
    my $mark = $t->mark;
    my $w1 = $w{1};
    kill 'KILL', $w1;
    $t->wait_log(qr/ warn worker killed by signal 9 \(KILL\) pool=tree worker=1 pid=$w1$/, since => $mark);
    for my $c (sort keys %$one) {
        my $p = $one->{$c};
        $t->wait_for(sub { !pid_alive($p) }, 5, "kill: worker 1's $c (pid $p) is killed with it");
    }
    my ($line) = $t->wait_log(qr/ info worker started pool=tree worker=1 pid=\d+$/, since => $mark,
                              name => 'kill: worker 1 is replaced, with the same id');
    my ($new) = ($line // '') =~ /pid=(\d+)$/;
    isnt($t->cgroup_ino('tree/1'), $ino, 'kill: the replacement has a new cgroup: the old one was removed');
    if ($new) {
        my $again = wait_tree($t, 'tree', 1, \@sleeps, undef, 'kill: the replacement has its whole tree');
        is($again->{'sleep 1000'}, $new, 'kill: the replacement runs in <pool>/1');
        ok(!grep({ my $p = $_; grep { $_ == $p } values %$one } values %$again), 'kill: none of the old tree in the new cgroup');
    }
    is_deeply([ $t->cgroup_procs('tree/2') ], \@two, 'kill: worker 2 and its tree untouched');
    is_deeply([ $t->cgroup_children('tree') ], [ 1, 2, 'prototype' ], 'kill: the pool has cgroups 1, 2 and prototype');

    # 2. stop
    my @all = map { $t->cgroup_procs("tree/$_") } 1, 2;
    is($t->stop, 0, 'stop: corrald exits 0');
    ok(!grep({ pid_alive($_) } @all), 'stop: no process of any worker is left, daemons included')
        or diag(join "\n", map { CorralTest::describe($_) } grep { pid_alive($_) } @all);
    ok(!-e $t->cgroup_dir, 'stop: the base is gone');
}

# 3. A worker (and all it started) ignoring TERM: after stop_timeout the
# whole cgroup is killed, the daemon too.
{
    my $t = CorralTest->new(config => <<'EOF');
pool "stubborn" { command = { "/bin/sh", "%TMP%/stubborn.sh" }, stop_timeout = "1s", env_inherit = { "CORRAL_TEST_DIR" } }
EOF
    $t->write_file('stubborn.sh', <<'EOF');
trap '' TERM
(setsid sh -c "sleep 1001 & sleep 1002" &)
sleep 1003 &
touch %TMP%/ready
while :; do sleep 0.05; done
EOF
    $t->start;
    $t->wait_log(qr/ info pool ready \(1\/1 workers\) pool=stubborn$/);
    my %w = $t->started_workers('stubborn');
    my $w1 = $w{1} // 0;
    $t->wait_for(sub { -e $t->path('ready') }, 10, 'stubborn: worker ready');
    my $procs = wait_tree($t, 'stubborn', 1, [ 'sleep 1001', 'sleep 1002', 'sleep 1003', "/bin/sh ${\$t->path('stubborn.sh')}" ],
                          qr/^sleep 0\.05$/, 'stubborn: the whole tree is in the cgroup');
    my @pids = values %$procs;
    for my $p (@pids) {
        my $ign = (CorralTest::slurp("/proc/$p/status") // '') =~ /^SigIgn:\s*([0-9a-f]+)/m ? hex($1) : 0;
        ok($ign & (1 << 14), "stubborn: ${\cmd_of($p)} ignores TERM");
    }
    my $t0 = time;
    is($t->stop, 0, 'stubborn: corrald exits 0');
    my $took = time - $t0;
    cmp_ok($took, '>=', 0.9, 'stubborn: corrald waited stop_timeout');
    cmp_ok($took, '<', 5, 'stubborn: and then killed the cgroup');
    ok(scalar $t->log_lines(qr/ warn worker did not stop within 1s, sending KILL pool=stubborn worker=1 pid=$w1$/),
       'stubborn: KILL logged');
    ok(scalar $t->log_lines(qr/ info worker stopped \(killed by signal 9 \(KILL\)\) pool=stubborn worker=1 pid=$w1$/),
       'stubborn: the worker was killed');
    ok(!grep({ pid_alive($_) } @pids), 'stubborn: its whole tree, daemon included, is gone')
        or diag(join "\n", map { CorralTest::describe($_) } grep { pid_alive($_) } @pids);
}

CorralTest->done;
