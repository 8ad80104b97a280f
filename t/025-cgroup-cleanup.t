#!/usr/bin/perl
# Cgroups go when what they held goes: a worker's when it exits (before
# its id is used again), scaled-down workers', a changed pool's old
# workers', a removed pool's whole <base>/<pool>; the base at stop.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive);
use Test::More;

sub config {
    my (%o) = @_;
    my $text = <<'EOF';
local inherit = { "CORRAL_TEST_DIR" }
pool "scale" { command = "/bin/sleep 1000", workers = SCALE, env_inherit = inherit }
pool "crash" {
  command = { "/bin/sh", "%TMP%/crash.sh" }, workers = 2, env_inherit = inherit,
  env = { GEN = "CRASHGEN" },
  backoff = { initial = "1s" },
}
EOF
    $text .= qq{pool "gone" { command = "/bin/sleep 1000", workers = 2, env_inherit = inherit }\n} if $o{gone};
    $text =~ s/SCALE/$o{scale}/;
    $text =~ s/CRASHGEN/$o{gen}/;
    return $text;
}

my $t = CorralTest->new(config => config(scale => 4, gen => 1, gone => 1));
# exits 3 once %TMP%/crash.ID exists, leaving a child behind
$t->write_file('crash.sh', <<'EOF');
/bin/sleep 1001 &
while [ ! -e %TMP%/crash.$CORRAL_WORKER ]; do /bin/sleep 0.05; done
rm -f %TMP%/crash.$CORRAL_WORKER
exit 3
EOF
$t->start;
my %want = (scale => 4, crash => 2, gone => 2);
for my $pool (sort keys %want) {
    $t->wait_log(qr/ info pool ready \($want{$pool}\/$want{$pool} workers\) pool=$pool$/);
}

# The cgroups below a pool are its prototype's and its live workers'.
sub dirs_match {
    my ($pool, $n) = @_;
    my %w = $t->started_workers($pool);
    return 0 if defined $n && keys %w != $n;
    my @want = sort { $a cmp $b } 'prototype', keys %w;
    return join(' ', $t->cgroup_children($pool)) eq join(' ', @want);
}
for my $pool (sort keys %want) {
    ok(dirs_match($pool, $want{$pool}), "$pool: one cgroup per worker, and prototype/")
        or diag(join ' ', $t->cgroup_children($pool));
}

# A crashed worker: its cgroup (emptied of its child) is removed, and
# made again for the replacement with the same id.
{
    my %w = $t->started_workers('crash');
    my $w1 = $w{1} // 0;
    my $ino = $t->cgroup_ino('crash/1');
    my @procs = $t->cgroup_procs('crash/1');
    ok(scalar(grep { $_ == $w1 } @procs), 'crash: worker 1 in its cgroup');
    my ($child) = grep { CorralTest::proc_cmdline($_) eq "/bin/sleep\0" . "1001\0" } @procs;
    ok($child, 'crash: its child in its cgroup');
    my $mark = $t->mark;
    $t->write_file('crash.1', '');
    $t->wait_log(qr/ warn worker exited with status 3 pool=crash worker=1 pid=$w1$/, since => $mark);
    $t->wait_for(sub { !-e $t->cgroup_dir('crash/1') }, 5, 'crash: its cgroup is removed (backoff 1s before the replacement)');
    ok(!grep({ pid_alive($_) } @procs), 'crash: its child is gone too');
    my ($line) = $t->wait_log(qr/ info worker started pool=crash worker=1 pid=\d+$/, since => $mark,
                              name => 'crash: replaced, with id 1 again');
    my ($new) = ($line // '') =~ /pid=(\d+)$/;
    ok(-d $t->cgroup_dir('crash/1'), 'crash: the replacement has <pool>/1 again');
    isnt($t->cgroup_ino('crash/1'), $ino, 'crash: a new cgroup');
    $t->wait_for(sub { grep { $_ == ($new // 0) } $t->cgroup_procs('crash/1') }, 5, 'crash: the replacement is in it');
    $t->wait_for(sub { dirs_match('crash', 2) }, 5, 'crash: cgroups 1, 2 and prototype');
}

# Reload: scale down, change a pool, remove a pool.
my %scale = $t->started_workers('scale');
my %crash = $t->started_workers('crash');
my $mark = $t->mark;
$t->write_config(config(scale => 2, gen => 2));
$t->reload;
$t->wait_log(qr/ info reload done: 0 added, 1 changed, 1 removed, 1 unchanged \(some rescaled\)$/, since => $mark);

# scale down
my @stopped = map { /worker=(\d+)/ ? $1 : () }
    $t->wait_log(qr/ info worker stopped \(.*\) pool=scale worker=\d+ pid=\d+$/, since => $mark, count => 2,
                 name => 'scale: two workers stopped');
is(scalar @stopped, 2, 'scale: two workers stopped');
for my $id (@stopped) {
    $t->wait_for(sub { !-e $t->cgroup_dir("scale/$id") }, 5, "scale: stopped worker $id: its cgroup is removed");
}
$t->wait_for(sub { dirs_match('scale', 2) }, 5, 'scale: the cgroups of the 2 remaining workers, and prototype/')
    or diag(join ' ', $t->cgroup_children('scale'));
my %kept = $t->started_workers('scale');
ok(!grep({ $scale{$_} != $kept{$_} } keys %kept), 'scale: the remaining workers are old ones');

# changed: old workers replaced, their cgroups gone
$t->wait_for(sub {
    my %now = $t->started_workers('crash');
    keys %now == 2 && !grep { my $p = $_; grep { $_ == $p } values %crash } values %now
}, 10, 'changed: both crash workers replaced');
$t->wait_for(sub { dirs_match('crash', 2) }, 5, 'changed: only the new workers\' cgroups, and prototype/')
    or diag(join ' ', $t->cgroup_children('crash'));

# removed
$t->wait_log(qr/ info pool removed pool=gone$/, since => $mark);
ok(!-e $t->cgroup_dir('gone'), 'removed: <base>/gone is gone');
is_deeply([ $t->cgroup_children ], [ qw(corrald crash scale) ], 'the base holds corrald/ and the two pools');

# A pool added again comes with its cgroups.
$mark = $t->mark;
$t->write_config(config(scale => 2, gen => 2, gone => 1));
$t->reload;
$t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=gone$/, since => $mark);
ok(dirs_match('gone', 2), 'added again: <base>/gone with its workers\' cgroups');

is($t->stop, 0, 'corrald stops with exit 0');
ok(!-e $t->cgroup_dir, 'after stop: the base is gone');

$t->done;
