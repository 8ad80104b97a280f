#!/usr/bin/perl
# limits (the pool's cgroup) and worker_limits (each worker's), read back
# from the cgroup files as the kernel shows them; memory.oom.group = 1 in
# worker cgroups; a reload that changes only limits applies them in place
# (same workers); a raw cgroup file name that does not exist is an error
# in the log; a controller that the unit's cgroup does not offer is
# reported, or refuses the start with limits_required = true.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;

my $UNIT = $CorralVM::UNIT;
my $CG = $CorralVM::UNIT_CG;
my $M = 1024 * 1024;

sub config {
    my (%o) = @_;
    return <<"EOF";
settings { log_level = "info"$o{settings} }
pool "lim" {
  command = "/bin/sleep 3001",
  workers = 2,
  stop_timeout = "5s",
  limits = {
    memory_max = "$o{pool_mem}", memory_high = "400M", cpu_max = "$o{pool_cpu}",
    cpu_weight = 200, io_weight = 300, pids_max = 100,
    cgroup = { ["memory.low"] = "$o{pool_low}"$o{raw} },
  },
  worker_limits = {
    memory_max = "128M", memory_high = "100M", memory_swap_max = 0,
    cpu_max = "50%", cpu_weight = 50, io_weight = 20, pids_max = $o{worker_pids},
    cgroup = { ["memory.low"] = "16M" },
  },
}
EOF
}
my %first = (settings => '', pool_mem => '512M', pool_cpu => '150%', pool_low => '64M', raw => '', worker_pids => 30);

# The first line of a file ("default 300" of io.weight; per-device lines
# may follow).
sub first_line { my $v = cg_read(@_); return defined $v ? (split /\n/, $v)[0] : undef }

sub check_pool {
    my ($what, %v) = @_;
    my $pcg = "$CG/lim";
    is(cg_read($pcg, 'memory.max'), $v{memory_max}, "$what: lim/memory.max $v{memory_max}");
    is(cg_read($pcg, 'memory.high'), 400 * $M, "$what: lim/memory.high 400M in bytes");
    is(cg_read($pcg, 'memory.low'), $v{memory_low}, "$what: lim/memory.low (raw) $v{memory_low}");
    is(cg_read($pcg, 'cpu.max'), $v{cpu_max}, "$what: lim/cpu.max \"$v{cpu_max}\"");
    is(cg_read($pcg, 'cpu.weight'), 200, "$what: lim/cpu.weight 200");
    is(first_line($pcg, 'io.weight'), 'default 300', "$what: lim/io.weight \"default 300\"");
    is(cg_read($pcg, 'pids.max'), 100, "$what: lim/pids.max 100");
}

sub check_worker {
    my ($what, $id, %v) = @_;
    my $wcg = "$CG/lim/$id";
    is(cg_read($wcg, 'memory.max'), 128 * $M, "$what: lim/$id/memory.max 128M in bytes");
    is(cg_read($wcg, 'memory.high'), 100 * $M, "$what: lim/$id/memory.high 100M in bytes");
    is(cg_read($wcg, 'memory.swap.max'), 0, "$what: lim/$id/memory.swap.max 0");
    is(cg_read($wcg, 'memory.low'), 16 * $M, "$what: lim/$id/memory.low (raw) 16M");
    is(cg_read($wcg, 'cpu.max'), '50000 100000', "$what: lim/$id/cpu.max \"50000 100000\"");
    is(cg_read($wcg, 'cpu.weight'), 50, "$what: lim/$id/cpu.weight 50");
    is(first_line($wcg, 'io.weight'), 'default 20', "$what: lim/$id/io.weight \"default 20\"");
    is(cg_read($wcg, 'pids.max'), $v{pids_max}, "$what: lim/$id/pids.max $v{pids_max}");
    is(cg_read($wcg, 'memory.oom.group'), 1, "$what: lim/$id/memory.oom.group 1");
}

# --- at start ----------------------------------------------------------------

my $cursor = journal_cursor();
my ($rc, $out) = corral_start(config(%first));
is($rc, 0, 'systemctl start corral') or diag($out);
ok(wait_until(sub { pool_workers('lim') == 2 }, 60), 'pool lim: 2 workers');
my %w = worker_pids_by_id('lim');
my %sub = map { $_ => 1 } split ' ', cg_read($CG, 'cgroup.subtree_control') // '';
ok($sub{$_}, "the base enables the $_ controller for the pool") for qw(memory cpu io pids);
%sub = map { $_ => 1 } split ' ', cg_read("$CG/lim", 'cgroup.subtree_control') // '';
ok($sub{$_}, "lim/ enables the $_ controller for its workers") for qw(memory cpu io pids);
check_pool('start', memory_max => 512 * $M, memory_low => 64 * $M, cpu_max => '150000 100000');
check_worker('start', $_, pids_max => 30) for sort keys %w;
is(cg_read("$CG/lim/prototype", 'memory.max'), 'max', 'the prototype has no worker limit (memory.max max)');
isnt(cg_read("$CG/lim", 'memory.oom.group'), 1, 'the pool itself is not one OOM group');

# --- a reload that changes only limits ------------------------------------------

my $mark = journal_cursor();
spew($CorralVM::CONF, config(%first, pool_mem => '256M', pool_cpu => '75%', pool_low => '32M', worker_pids => 40));
($rc, $out) = systemctl('reload', $UNIT);
is($rc, 0, 'systemctl reload with new limits') or diag($out);
ok(wait_until(sub { journal_find($UNIT, $mark, MESSAGE => qr/^reload done: /) }, 30), 'journal: reload done');
my ($done) = journal_find($UNIT, $mark, MESSAGE => qr/^reload done: /);
is($done->{MESSAGE}, 'reload done: 0 added, 0 changed, 0 removed, 1 unchanged',
   'reload: the pool counts as unchanged (only limits changed)');
check_pool('reload', memory_max => 256 * $M, memory_low => 32 * $M, cpu_max => '75000 100000');
check_worker('reload', $_, pids_max => 40) for sort keys %w;
is_deeply({ worker_pids_by_id('lim') }, \%w, 'the same workers run: not restarted for a limit change');

# a worker that comes after the reload gets the new worker limits
kill 'KILL', $w{1};
my %now;
ok(wait_until(sub { %now = worker_pids_by_id('lim'); $now{1} && $now{1} != $w{1} }, 30), 'a killed worker 1 is replaced');
check_worker('replacement', 1, pids_max => 40);

# --- a raw cgroup file that does not exist ------------------------------------------

$mark = journal_cursor();
spew($CorralVM::CONF, config(%first, raw => ', ["memory.lwo"] = "1M"'));
($rc, $out) = systemctl('reload', $UNIT);
is($rc, 0, 'systemctl reload with a raw cgroup file name typo') or diag($out);
my @err;
ok(wait_until(sub { @err = journal_find($UNIT, $mark, MESSAGE => qr/memory\.lwo/) }, 30),
   'journal: an error names memory.lwo');
like($err[0]{MESSAGE} // '', qr/^cgroup: unable to set limits\.cgroup\.memory\.lwo \(memory\.lwo = 1M\): No such file or directory$/,
     'the message names the key, the file, the value and why');
is($err[0]{PRIORITY}, 3, 'at priority err');
is($err[0]{CORRAL_POOL}, 'lim', 'with CORRAL_POOL=lim');
check_pool('after the typo', memory_max => 512 * $M, memory_low => 64 * $M, cpu_max => '150000 100000');
is(unit_props($UNIT, 'ActiveState')->{ActiveState}, 'active', 'still active');
($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'systemctl stop') or diag($out);

# --- a controller the unit's cgroup does not offer ---------------------------------
# systemd delegates cpu, io, memory and pids (and cpuset), not hugetlb.

my $huge = -d "/sys/kernel/mm/hugepages/hugepages-2048kB" && (cg_read("", "cgroup.controllers") // "") =~ /\bhugetlb\b/
    ? "hugetlb.2MB.max" : undef;
SKIP: {
    skip("the kernel has no hugetlb controller", 11) unless $huge;
    ok(wait_until(sub { !-d "$CorralVM::CGROOT$CG" }, 10), 'the unit cgroup is gone after stop');
    $mark = journal_cursor();
    ($rc, $out) = corral_start(config(%first, raw => qq{, ["$huge"] = 0}));
    is($rc, 0, "without limits_required: starts although $huge cannot be applied") or diag($out);
    unlike(cg_read($CG, "cgroup.controllers") // "", qr/hugetlb/, "the unit's cgroup does not offer hugetlb");
    my @warn;
    ok(wait_until(sub { @warn = journal_find($UNIT, $mark, MESSAGE => qr/\Q$huge\E cannot be applied/) }, 20),
       'journal: the limit that cannot be applied');
    like($warn[0]{MESSAGE} // '', qr/^cgroup: limits\.cgroup\.\Q$huge\E cannot be applied: the hugetlb controller is not available in \/sys\/fs\/cgroup\Q$CG\E$/,
         'the warning names the limit, the controller and the cgroup');
    is($warn[0]{PRIORITY}, 4, 'at priority warning');
    is(scalar @warn, 1, 'reported once');
    ($rc, $out) = systemctl('stop', $UNIT);

    $mark = journal_cursor();
    ($rc, $out) = corral_start(config(%first, raw => qq{, ["$huge"] = 0}, settings => ', limits_required = true'));
    isnt($rc, 0, 'with limits_required = true: systemctl start fails');
    my $p = unit_props($UNIT, qw(ActiveState ExecMainStatus));
    is($p->{ActiveState}, 'failed', 'the unit failed');
    is($p->{ExecMainStatus}, 1, "corrald exited with status 1");
    ok(wait_until(sub { journal_find($UNIT, $mark, MESSAGE => qr/\Q$huge\E cannot be applied: the hugetlb controller is not available in .* \(limits_required = true\)/) }, 20),
       'journal: why (limits_required = true)');
}
is(scalar(pool_workers('lim')), 0, 'no worker left');

done();
