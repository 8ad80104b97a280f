#!/usr/bin/perl
# Placement: corrald in <base>/corrald, each prototype in <pool>/prototype,
# each worker in <pool>/<id> from its first instruction on (exec'd, Lua
# prefork/setup/start), its children with it; every pid of a worker's
# cgroup is that worker's. The prototype places workers with clone3
# (CLONE_INTO_CGROUP), seen with strace when it can attach.
#
# 021-cgroup-fallback.t runs this file again with $main::PIPE set:
# CORRAL_PIPE_PLACEMENT=1, the fork-then-write-cgroup.procs fallback.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_stat proc_environ proc_cmdline pid_alive cgroup_of);
use POSIX qw(:sys_wait_h _exit setpgid);
use Test::More;

our $PIPE;
my $pipe = $PIPE ? 1 : 0;
my $mode = $pipe ? 'pipe fallback' : 'clone3';

my $t = CorralTest->new(
    env => { CORRAL_PIPE_PLACEMENT => $pipe ? 1 : undef },
    config => <<'EOF');
local inherit = { "CORRAL_TEST_DIR" }
-- the first thing a hook does: write where it runs
local function report(name)
  local f = assert(io.open("/proc/self/cgroup"))
  local s = f:read("*a")
  f:close()
  local o = assert(io.open("%TMP%/" .. name, "w"))
  o:write(s)
  o:close()
end
pool "sh" {
  command = { "/bin/sh", "-c", "cat /proc/self/cgroup > %TMP%/cg.sh.$CORRAL_WORKER; /bin/sleep 1001 & exec /bin/sleep 1000" },
  workers = 3,
  env_inherit = inherit,
}
pool "lua" {
  workers = 2,
  env_inherit = inherit,
  prefork = function(pool) report("cg.prefork.lua") end,
  setup = function(w) report("cg.setup.lua." .. w.id) end,
  start = function(w)
    report("cg.start.lua." .. w.id)
    while not w:sleep(100) do end
  end,
}
EOF
my $corrald = $t->start;

# A report: the cgroup v2 line of /proc/self/cgroup as a hook or worker
# wrote it (complete once its final newline is there), or undef.
sub report {
    my ($name) = @_;
    my $text = CorralTest::slurp($t->path($name)) // return undef;
    return $text =~ /^0::(\S*)\n/m ? $1 : undef;
}

my $base = $t->cgroup_dir;
$t->wait_log(qr/ info cgroup: base \Q$base\E$/);
my %want = (sh => 3, lua => 2);
for my $pool (sort keys %want) {
    $t->wait_log(qr/ info pool ready \($want{$pool}\/$want{$pool} workers\) pool=$pool$/);
}

# corrald itself: alone in <base>/corrald; <base> and the pools' own
# cgroups hold no process (no internal processes).
is(cgroup_of($corrald), $t->cgroup_rel('corrald'), "$mode: corrald runs in <base>/corrald");
is_deeply([ $t->cgroup_procs('corrald') ], [ $corrald ], "$mode: <base>/corrald holds corrald only");
is_deeply([ $t->cgroup_procs ], [], "$mode: <base> itself holds no process");
is_deeply([ $t->cgroup_children ], [ sort 'corrald', keys %want ], "$mode: <base> holds corrald/ and one cgroup per pool");

for my $pool (sort keys %want) {
    is_deeply([ $t->cgroup_procs($pool) ], [], "$mode: $pool: the pool's cgroup itself holds no process");
    my $proto = $t->prototype_pid($pool);
    ok($proto, "$mode: $pool: prototype found") or next;
    is(cgroup_of($proto), $t->cgroup_rel("$pool/prototype"), "$mode: $pool: prototype runs in <pool>/prototype");
    is_deeply([ $t->cgroup_procs("$pool/prototype") ], [ $proto ], "$mode: $pool: <pool>/prototype holds the prototype only");
    my %ids = $t->started_workers($pool);
    is(scalar keys %ids, $want{$pool}, "$mode: $pool: $want{$pool} workers");
    is_deeply([ $t->cgroup_children($pool) ], [ sort { $a cmp $b } 'prototype', keys %ids ],
              "$mode: $pool: one cgroup per worker id, and prototype/");
}
$t->wait_for(sub { report('cg.prefork.lua') }, 10, "$mode: lua: prefork reported its cgroup");
is(report('cg.prefork.lua'), $t->cgroup_rel('lua/prototype'), "$mode: lua: prefork runs in <pool>/prototype");

# Each worker: its first action already sees <pool>/<id>, and so do its
# children; every process in its cgroup is the worker or one of its own.
sub check_worker {
    my ($pool, $id, $pid, $children) = @_;
    my $cg = $t->cgroup_rel("$pool/$id");
    is(cgroup_of($pid), $cg, "$mode: $pool worker $id (pid $pid) runs in <pool>/$id");
    my @procs;
    $t->wait_for(sub { @procs = $t->cgroup_procs("$pool/$id"); @procs == 1 + $children }, 10,
                 "$mode: $pool worker $id: its cgroup holds it and its $children child(ren)")
        or diag("cgroup.procs: @procs");
    ok(scalar(grep { $_ == $pid } @procs), "$mode: $pool worker $id: its pid is in its cgroup.procs");
    for my $p (@procs) {
        # a Lua worker's /proc/PID/environ is the prototype's: only what it
        # exec's or forks carries the pool's environment
        # (polled: a child caught in its execve shows no environment yet)
        if ($pool ne 'lua') {
            my $seen = '';
            $t->wait_for(sub {
                my $env = proc_environ($p);
                $seen = ($env->{CORRAL_POOL} // '') . '/' . ($env->{CORRAL_WORKER} // '');
                $seen eq "$pool/$id";
            }, 5, "$mode: $pool worker $id: pid $p in its cgroup has CORRAL_POOL=$pool CORRAL_WORKER=$id")
                or diag("it has $seen");
        }
        my ($q, $ok) = ($p, 0);
        for (1 .. 32) {
            if ($q == $pid) { $ok = 1; last }
            my $st = proc_stat($q) or last;
            $q = $st->{ppid};
        }
        ok($ok, "$mode: $pool worker $id: pid $p in its cgroup is the worker or descends from it");
        is(cgroup_of($p), $cg, "$mode: $pool worker $id: pid $p reports the same cgroup");
    }
}

my %sh = $t->started_workers('sh');
for my $id (sort keys %sh) {
    $t->wait_for(sub { report("cg.sh.$id") }, 10, "$mode: sh worker $id reported its cgroup");
    is(report("cg.sh.$id"), $t->cgroup_rel("sh/$id"), "$mode: sh worker $id: first action sees <pool>/$id");
    check_worker('sh', $id, $sh{$id}, 1);
    # the child forks, then execs: its command line is sh's until the exec
    my @kids;
    my $kid_cmd = sub {
        @kids = grep { $_ != $sh{$id} } $t->cgroup_procs("sh/$id");
        return scalar(@kids) && proc_cmdline($kids[0]);
    };
    $t->poll(sub { ($kid_cmd->() // '') eq "/bin/sleep\0" . "1001\0" }, 10);
    is($kid_cmd->(), "/bin/sleep\0" . "1001\0", "$mode: sh worker $id: its child is sleep 1001");
    is(scalar(@kids) && proc_stat($kids[0])->{ppid}, $sh{$id}, "$mode: sh worker $id: the child's parent is the worker");
}
my %lua = $t->started_workers('lua');
for my $id (sort keys %lua) {
    $t->wait_for(sub { report("cg.start.lua.$id") }, 10, "$mode: lua worker $id: start reported its cgroup");
    is(report("cg.setup.lua.$id"), $t->cgroup_rel("lua/$id"), "$mode: lua worker $id: setup runs in <pool>/$id");
    is(report("cg.start.lua.$id"), $t->cgroup_rel("lua/$id"), "$mode: lua worker $id: start runs in <pool>/$id");
    check_worker('lua', $id, $lua{$id}, 0);
}

# How the prototype places a worker: strace it while it makes a
# replacement for worker 2 of "sh".
my $proto = $t->prototype_pid('sh');
my $strace = -x '/usr/bin/strace' ? '/usr/bin/strace' : undef;
my ($st_pid, $attached);
if ($strace && $proto) {
    $st_pid = fork // die "fork: $!";
    if ($st_pid == 0) {
        setpgid(0, 0);
        open STDIN, '<', '/dev/null' or _exit(126);
        open STDOUT, '>', $t->path('strace.err') or _exit(126);
        open STDERR, '>&', \*STDOUT or _exit(126);
        { no warnings q(exec); exec $strace, '-qq', '-y', '-e', 'trace=clone,clone3,fork,vfork,write', '-o', $t->path('strace.out'), '-p', $proto; }
        _exit(127);
    }
    $attached = $t->poll(sub {
        (CorralTest::slurp("/proc/$proto/status") // '') =~ /^TracerPid:\s*(\d+)/m && $1 == $st_pid
    }, 5);
}
my $old2 = $sh{2};
my $ino2 = $t->cgroup_ino('sh/2');
unlink $t->path('cg.sh.2');
my $mark = $t->mark;
kill 'KILL', $old2;
my ($line) = $t->wait_log(qr/ info worker started pool=sh worker=2 pid=\d+$/, since => $mark,
                          name => "$mode: sh worker 2 replaced");
my ($new2) = ($line // '') =~ /pid=(\d+)$/;
if ($st_pid) {
    kill 'TERM', $st_pid;
    waitpid $st_pid, 0;
}
if ($new2) {
    $t->wait_for(sub { report('cg.sh.2') }, 10, "$mode: the replacement reported its cgroup");
    is(report('cg.sh.2'), $t->cgroup_rel('sh/2'), "$mode: the replacement's first action sees <pool>/2");
    isnt($t->cgroup_ino('sh/2'), $ino2, "$mode: the replacement has a new cgroup (the old one was removed)");
    check_worker('sh', 2, $new2, 1);
}
SKIP: {
    skip "strace cannot trace the prototype here (no /usr/bin/strace or ptrace refused)", 3
        unless $attached && $new2;
    my @lines = grep { !/^\s*$/ } split /\n/, CorralTest::slurp($t->path('strace.out')) // '';
    my $dir = $t->cgroup_dir('sh/2');
    my @into = grep { /^clone3\(\{[^}]*CLONE_INTO_CGROUP/ && /= \Q$new2\E$/ } @lines;
    my @forks = grep { /^(?:clone|fork|vfork)\(/ && /= \Q$new2\E$/ } @lines;
    my @writes = grep { /^write\(\d+<\Q$dir\E\/cgroup\.procs>, "\Q$new2\E", \d+\) = \d+$/ } @lines;
    my @anyprocs = grep { /^write\(\d+<[^>]*\/cgroup\.procs>/ } @lines;
    if ($pipe) {
        ok(!@into, 'pipe fallback: the prototype did not use clone3 with CLONE_INTO_CGROUP')
            or diag(join "\n", @lines);
        is(scalar @forks, 1, 'pipe fallback: the prototype forked the worker') or diag(join "\n", @lines);
        is(scalar @writes, 1, 'pipe fallback: the prototype wrote its pid into <pool>/2/cgroup.procs')
            or diag(join "\n", @lines);
    } else {
        is(scalar @into, 1, 'clone3: the prototype made the worker with clone3(CLONE_INTO_CGROUP)')
            or diag(join "\n", @lines);
        ok(!@forks, 'clone3: no plain fork') or diag(join "\n", @lines);
        ok(!@anyprocs, 'clone3: no cgroup.procs write needed') or diag(join "\n", @lines);
    }
}
$t->wait_for(sub { !pid_alive($old2) }, 5, "$mode: the killed worker is gone");

$t->done;
