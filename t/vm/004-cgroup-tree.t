#!/usr/bin/perl
# corral's cgroup tree under systemd (Delegate=yes): the unit's cgroup
# holds corrald/ (corrald alone), one cgroup per pool, <pool>/prototype
# and <pool>/<id> per worker, each process in its own from birth; the base
# itself holds no process; `systemctl status` shows the STATUS= line and
# that tree; worker and pool cgroups go when their processes do (a killed
# worker, a scale-down, a removed pool); `systemctl stop` leaves no cgroup
# and no process.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;

my $UNIT = $CorralVM::UNIT;
my $CG = $CorralVM::UNIT_CG;

sub config {
    my ($alpha, $with_beta) = @_;
    return qq{settings { log_level = "info" }\n}
        . qq{pool "alpha" { command = "/bin/sleep 2001", workers = $alpha, stop_timeout = "5s" }\n}
        . ($with_beta
           ? qq{pool "beta" { command = { "/bin/sh", "-c", "/bin/sleep 2002 & exec /bin/sleep 2003" }, workers = 2, stop_timeout = "5s" }\n}
           : '');
}
my %n = (alpha => 3, beta => 2);
my $cursor = journal_cursor();

my ($rc, $out, $took) = corral_start(config(3, 1));
is($rc, 0, 'systemctl start corral') or diag($out);
my $main = unit_props($UNIT, 'MainPID')->{MainPID};
ok($main > 0, "MainPID $main");
is(unit_props($UNIT, 'ControlGroup')->{ControlGroup}, $CG, "ControlGroup $CG");
for my $pool (sort keys %n) {
    ok(wait_until(sub { pool_workers($pool) == $n{$pool} }, 60), "pool $pool: $n{$pool} workers")
        or diag(describe_pids(pool_workers($pool)));
}
my %proto = prototypes();

# --- the tree ------------------------------------------------------------

is_deeply([ cgroup_dirs($CG) ], [qw(alpha beta corrald)], "$CG holds corrald/, alpha/, beta/");
is(cg_read($CG, 'cgroup.procs'), '', 'no process in the base cgroup itself (no internal processes)');
is(cg_read("$CG/corrald", 'cgroup.procs'), $main, 'corrald/ holds corrald and nothing else');
is(cgroup_of($main), "$CG/corrald", "corrald's /proc/PID/cgroup is $CG/corrald");
my %sub = map { $_ => 1 } split ' ', cg_read($CG, 'cgroup.subtree_control') // '';
ok($sub{memory} && $sub{pids}, 'the base enables memory and pids for the pools')
    or diag('cgroup.subtree_control: ' . join(' ', sort keys %sub));

my %workers;    # pool => { id => pid }
for my $pool (sort keys %n) {
    my $pcg = "$CG/$pool";
    my %by_id = worker_pids_by_id($pool);
    $workers{$pool} = \%by_id;
    is_deeply([ sort { $a <=> $b } keys %by_id ], [ 1 .. $n{$pool} ], "pool $pool: worker ids 1..$n{$pool}");
    is_deeply([ cgroup_dirs($pcg) ], [ (1 .. $n{$pool}), 'prototype' ],
              "$pool/ holds prototype/ and one cgroup per worker");
    is(cg_read($pcg, 'cgroup.procs'), '', "no process in $pool/ itself");
    ok($proto{$pool}, "pool $pool has a prototype");
    is(cg_read("$pcg/prototype", 'cgroup.procs'), $proto{$pool}, "$pool/prototype holds the prototype alone");
    my %psub = map { $_ => 1 } split ' ', cg_read($pcg, 'cgroup.subtree_control') // '';
    ok($psub{memory} && $psub{pids}, "$pool/ enables memory and pids for its workers");
    for my $id (sort keys %by_id) {
        my $pid = $by_id{$id};
        is(cgroup_of($pid), "$pcg/$id", "$pool worker $id (pid $pid) is in $pool/$id");
        my @in = cgroup_pids("$pcg/$id");
        # beta's workers run a child: it is in the worker's cgroup too
        is(scalar @in, $pool eq 'beta' ? 2 : 1, "$pool/$id holds the worker" . ($pool eq 'beta' ? ' and its child' : ''))
            or diag(describe_pids(@in));
        ok((grep { $_ == $pid } @in), "$pool/$id: the worker's pid is in its cgroup.procs");
        is(cg_read("$pcg/$id", 'memory.oom.group'), 1, "$pool/$id: memory.oom.group = 1");
    }
}
my @every = cgroup_pids($CG);
my %expect = map { $_ => 1 } $main, values %proto, map { values %$_ } values %workers;
is(scalar(grep { !$expect{$_} } @every), 2, "nothing else in the unit's cgroup than corrald, prototypes, workers (and beta's 2 children)")
    or diag(describe_pids(@every));

# --- systemctl status: the STATUS= line and the tree -------------------------

is(unit_props($UNIT, 'StatusText')->{StatusText}, '2 pools, 5/5 workers ready', 'StatusText: 2 pools, 5/5 workers ready');
($rc, $out) = systemctl('status', '-l', '-n', '0', $UNIT);
is($rc, 0, 'systemctl status: exit 0');
like($out, qr/^\s*Status: "2 pools, 5\/5 workers ready"$/m, 'status shows Status: "2 pools, 5/5 workers ready"');
my ($tree, $cmd) = status_tree($out);
my %want = ('' => [], corrald => [$main]);
for my $pool (sort keys %n) {
    $want{$pool} = [];
    $want{"$pool/prototype"} = [ $proto{$pool} ];
    $want{"$pool/$_"} = [ $workers{$pool}{$_} ] for keys %{ $workers{$pool} };
}
# beta's children are shown beside their worker: compare the workers only
my %shown = map { my $k = $_; ($k => [ grep { !/^\d+$/ || $expect{$_} } @{ $tree->{$k} } ]) } keys %$tree;
is_deeply(\%shown, \%want, 'status tree: corrald/, POOL/prototype, POOL/ID with their processes')
    or diag($out);
like($cmd->{$main} // '', qr{^/usr/sbin/corrald }, 'status tree: corrald/ runs /usr/sbin/corrald');
like($cmd->{ $proto{alpha} } // '', qr/corral: prototype alpha/, 'status tree: alpha/prototype is "corral: prototype alpha"');
is(scalar @{ $tree->{'beta/1'} // [] }, 2, 'status tree: beta/1 shows the worker and its child');
note($out);

# --- cgroups follow their processes ----------------------------------------

my $victim = $workers{alpha}{2};
kill 'KILL', $victim;
my %now;
ok(wait_until(sub {
    %now = worker_pids_by_id('alpha');
    keys(%now) == 3 && $now{2} && $now{2} != $victim;
}, 30), 'a killed alpha worker 2 is replaced by a new worker 2');
is(cgroup_of($now{2}), "$CG/alpha/2", 'the new worker 2 is born in alpha/2');
is_deeply([ cgroup_pids("$CG/alpha/2") ], [ $now{2} ], 'alpha/2 holds only the new worker');
is($now{$_}, $workers{alpha}{$_}, "alpha worker $_ untouched") for 1, 3;

# scale alpha down to 1 and remove beta: their cgroups go
my $mark = journal_cursor();
spew($CorralVM::CONF, config(1, 0));
($rc, $out) = systemctl('reload', $UNIT);
is($rc, 0, 'systemctl reload (alpha: 1 worker, beta removed)') or diag($out);
ok(wait_until(sub { !-d "$CorralVM::CGROOT$CG/beta" }, 30), 'the removed pool beta: beta/ is gone')
    or diag(join ' ', cgroup_dirs("$CG/beta"));
ok(wait_until(sub { join(' ', cgroup_dirs("$CG/alpha")) eq '1 prototype' }, 30),
   'alpha scaled to 1: alpha/2 and alpha/3 are gone, alpha/1 stays')
    or diag(join ' ', cgroup_dirs("$CG/alpha"));
is_deeply([ cgroup_dirs($CG) ], [qw(alpha corrald)], "$CG holds alpha/ and corrald/");
is(cg_read("$CG/alpha/1", 'cgroup.procs'), $workers{alpha}{1}, 'alpha/1 still holds worker 1');
ok(!grep({ pid_alive($_) } values %{ $workers{beta} }), "beta's workers are gone");
ok(wait_until(sub { (unit_props($UNIT, 'StatusText')->{StatusText} // '') eq '1 pool, 1/1 workers ready' }, 20),
   'StatusText: 1 pool, 1/1 workers ready')
    or diag(unit_props($UNIT, 'StatusText')->{StatusText});

# --- stop: nothing left ------------------------------------------------------

my @all = cgroup_pids($CG);
($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'systemctl stop corral') or diag($out);
my $p = unit_props($UNIT, qw(ActiveState Result));
is($p->{ActiveState}, 'inactive', 'inactive');
is($p->{Result}, 'success', 'Result=success');
ok(!grep({ pid_alive($_) } @all, @every), 'no process of the unit is left');
ok(!-d "$CorralVM::CGROOT$CG", "$CG is gone");
ok(!grep({ scalar pool_workers($_) } qw(alpha beta)), 'no worker anywhere');

my @complaints = grep { ($_->{PRIORITY} // 6) <= 4 && ($_->{MESSAGE} // '') =~ /cgroup/ }
    journal_entries($UNIT, $cursor);
is(scalar @complaints, 0, 'journal: no warning or error about cgroups')
    or diag(join "\n", map { $_->{MESSAGE} } @complaints);

done();
