#!/usr/bin/perl
# A corrald killed with SIGKILL leaves its workers running in their
# cgroups; the next corrald on the same base kills them, removes their
# cgroups (and says how many), and starts its own. A second corrald on a
# base whose corrald/ holds a live corrald is refused.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive cgroup_of);
use POSIX qw(WIFSIGNALED WTERMSIG);
use Test::More;

my $config = <<'EOF';
local function pool_of(n)
  return { command = { "/bin/sh", "-c", "/bin/sleep 1001 & exec /bin/sleep 1000" }, workers = n,
           env_inherit = { "CORRAL_TEST_DIR" } }
end
pool "a" (pool_of(2))
pool "b" (pool_of(1))
EOF
my %want = (a => 2, b => 1);

sub up {
    my ($t, $what) = @_;
    for my $pool (sort keys %want) {
        $t->wait_log(qr/ info pool ready \($want{$pool}\/$want{$pool} workers\) pool=$pool$/,
                     name => "$what: pool $pool ready");
    }
    # each worker with its child
    $t->wait_for(sub {
        !grep { my $p = $_; grep { $t->cgroup_procs("$p/$_") != 2 } 1 .. $want{$p} } keys %want
    }, 10, "$what: every worker and its child in its cgroup");
    # pool/id => [ pids ]
    return { map { my $p = $_; map { ("$p/$_" => [ $t->cgroup_procs("$p/$_") ]) } 1 .. $want{$p} } keys %want };
}

my $first = CorralTest->new(config => $config);
my $base = $first->cgroup_dir;
$first->start;
my $old = up($first, 'first corrald');
my @old = map { @$_ } values %$old;
my %old_proto = map { $_ => $first->prototype_pid($_) } keys %want;

# kill -9 corrald: its prototypes die with it, its workers do not
$first->signal('KILL');
is($first->wait_exit, undef, 'first corrald: gone');
ok(WIFSIGNALED($first->{status}) && WTERMSIG($first->{status}) == 9, 'first corrald: killed by SIGKILL');
for my $pool (sort keys %want) {
    my $proto = $old_proto{$pool} or next;
    $first->wait_for(sub { !pid_alive($proto) }, 5, "first corrald: prototype of $pool died with it");
}
for my $cg (sort keys %$old) {
    for my $pid (@{ $old->{$cg} }) {
        ok(pid_alive($pid), "after SIGKILL: pid $pid of $cg still runs");
        is(cgroup_of($pid), $first->cgroup_rel($cg), "after SIGKILL: pid $pid still in <base>/$cg");
    }
}
is_deeply([ $first->cgroup_children ], [ qw(a b corrald) ], 'after SIGKILL: the cgroups stay');
is_deeply([ $first->cgroup_procs('corrald') ], [], 'after SIGKILL: <base>/corrald is empty');

# a new corrald on the same base: the leftovers go, its own workers come
my $second = CorralTest->new(cgroup => $first->{cgroup}, config => $config);
is($second->cgroup_dir, $base, 'second corrald: same base');
$second->start;
my $count = 0;
$count += $want{$_} + 2 for keys %want;    # workers, prototype/, the pool
$second->wait_log(qr/ notice cgroup: removed $count cgroups left under \Q$base\E by an earlier corrald$/);
ok(!grep({ pid_alive($_) } @old), 'second corrald: every old worker and child is dead')
    or diag(join "\n", map { CorralTest::describe($_) } grep { pid_alive($_) } @old);
my $new = up($second, 'second corrald');
my %old_pid = map { $_ => 1 } @old;
ok(!grep({ $old_pid{$_} } map { @$_ } values %$new), 'second corrald: its workers are new ones');
is(cgroup_of($second->pid), $second->cgroup_rel('corrald'), 'second corrald: in <base>/corrald');
is_deeply([ $second->cgroup_procs('corrald') ], [ $second->pid ], 'second corrald: alone there');
my $before = $second->log;
ok(!$second->log_lines(qr/ (?:error|warn) /), 'second corrald: no error or warning');

# a third corrald on that base is refused, and disturbs nothing
my $third = CorralTest->new(cgroup => $first->{cgroup}, config => $config);
$third->write_file('corral.lua', $config);
my $res = $third->run('-c', $third->conf, '-g', $first->{cgroup}, { timeout => 10 });
is($res->{code}, 1, 'third corrald on a base in use: exit 1');
my $pid2 = $second->pid;
like($res->{err}, qr/ error cgroup: \Q$base\E is in use by another corrald \(pid $pid2\)/,
     'third corrald: names the base and the corrald using it');
is_deeply(up($second, 'after the refused one'), $new, 'second corrald: workers untouched');
is_deeply([ $second->cgroup_procs('corrald') ], [ $second->pid ], 'second corrald: still alone in <base>/corrald');
is($second->log, $before, 'second corrald: nothing happened to it');

is($second->stop, 0, 'second corrald: stops with exit 0');
ok(!grep({ pid_alive($_) } map { @$_ } values %$new), 'second corrald: its workers are gone');
# it did not create the base (the first one did): it leaves the base,
# empty
is_deeply([ $second->cgroup_children ], [], 'second corrald: no cgroup left below the base');
rmdir $base;

CorralTest->done;
