#!/usr/bin/perl
# Stable worker ids: a pool with target N runs ids 1..N once settled,
# after any sequence of kills, restarts, scale changes, reloads (rolling
# replacement) and prototype deaths; a replacement takes the id of the
# worker it replaces, and CORRAL_WORKER is that id.
#
# Two pools of 3: "ex", exec'd workers that leave a child behind (so a
# killed worker's cgroup is still emptying when its exit is known: the
# window where an id used to drift), and "lua", Lua workers. A seeded
# random sequence of 40 actions; after each, once the pools have settled
# (every worker ready, as many as the target), the ids must be exactly
# 1..target and each worker's CORRAL_WORKER its id. Then worker 2 of "ex"
# is killed 10 times in a row: its replacement is worker 2 each time.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_environ pid_alive);
use Test::More;

my $SEED = $ENV{CORRAL_TEST_SEED} // 9913;
srand($SEED);
note("seed $SEED (CORRAL_TEST_SEED)");

sub config {
    my ($gen) = @_;
    return <<"EOF";
%LUA_HELPERS%
local common = {
  env_inherit = { "CORRAL_TEST_DIR" },
  backoff = { initial = "10ms", max = "50ms" },
  crash_limit = { failures = 0 },
  start_window = "0s", stop_timeout = "5s",
}
pool "ex" {
  -- a child left in its cgroup; the generation in the command
  command = { "/bin/sh", "-c", "/bin/sleep 100$gen & exec /bin/sleep 200$gen" },
  workers = 3, env_inherit = common.env_inherit, backoff = common.backoff,
  crash_limit = common.crash_limit, start_window = common.start_window,
}
pool "lua" {
  workers = 3, env = { GEN = "$gen" }, env_inherit = common.env_inherit,
  backoff = common.backoff, crash_limit = common.crash_limit, start_window = common.start_window,
  start = function(worker)
    rec("lua", corral.pid(), os.getenv("CORRAL_WORKER"))
    idle()
  end,
}
EOF
}

my $gen = 0;
my $t = CorralTest->new(config => config($gen));
$t->start;
$t->wait_control;

# pid => CORRAL_WORKER of a Lua worker, from what it wrote (its
# /proc/PID/environ is the prototype's).
sub lua_ids {
    my %id;
    for ($t->file_lines('hooks.log')) {
        $id{$1} = $2 if /^lua (\d+) (\S+)/;
    }
    return \%id;
}

sub corral_worker {
    my ($pool, $pid) = @_;
    return lua_ids()->{$pid} if $pool eq 'lua';
    my $env = proc_environ($pid) or return undef;
    return $env->{CORRAL_WORKER};
}

# The pool settled: running, every worker listed ready, as many as its
# target, with ids 1..target (a worker above the target may still be
# waiting for a lower id to come back from a backoff); then [ target,
# [ id, pid ]... ] by id. undef when it does not get there in 30s.
sub settled {
    my ($pool) = @_;
    my $got;
    $t->poll(sub {
        my $st = $t->status or return 0;
        my $p = $st->{$pool} or return 0;
        my @w = @{ $p->{workers} || [] };
        return 0 unless $p->{state} eq 'running' && @w == $p->{target} && !grep { $_->{state} ne 'ready' } @w;
        return 0 unless join(' ', sort { $a <=> $b } map { $_->{id} } @w) eq join(' ', 1 .. $p->{target});
        $got = [ $p->{target}, map { [ $_->{id}, $_->{pid} ] } sort { $a->{id} <=> $b->{id} } @w ];
        return 1;
    }, 30);
    return $got;
}

# The ids are 1..target and each worker's CORRAL_WORKER is its id.
sub check_ids {
    my ($what) = @_;
    my $ok = 1;
    for my $pool (qw(ex lua)) {
        my $s = settled($pool);
        if (!$s) {
            $ok = fail("$what: $pool settles with ids 1..target");
            my $p = ($t->status || {})->{$pool} || {};
            diag("$pool: $p->{state}, target $p->{target}, workers "
                 . join(' ', map { "$_->{id}:$_->{state}" } @{ $p->{workers} || [] }));
            next;
        }
        my ($target, @w) = @$s;
        $ok &&= is(join(' ', map { $_->[0] } @w), join(' ', 1 .. $target), "$what: $pool runs ids 1..$target");
        for my $w (@w) {
            my ($id, $pid) = @$w;
            my $env;
            $t->poll(sub { defined($env = corral_worker($pool, $pid)) || !pid_alive($pid) }, 10);
            next unless pid_alive($pid);
            $ok &&= is($env, $id, "$what: $pool worker $id has CORRAL_WORKER=$id");
        }
    }
    return $ok;
}

sub ctl_ok {
    my $r = $t->ctl(@_);
    is($r->{code}, 0, "corralctl @_") or diag("out: $r->{out}\nerr: $r->{err}");
}

sub pick { $_[int rand @_] }

sub live_ids {
    my ($pool) = @_;
    my $p = ($t->status || {})->{$pool} or return ();
    return map { [ $_->{id}, $_->{pid} ] } grep { $_->{pid} } @{ $p->{workers} || [] };
}

my $KILL;
my @ACTIONS = (
    [ 'kill -9 a worker' => $KILL = sub {
        my $pool = pick(qw(ex lua));
        my $w = pick(live_ids($pool)) or return "$pool: none";
        kill 'KILL', $w->[1];
        return "$pool worker $w->[0]";
    } ],
    [ 'kill -9 a worker' => sub { $KILL->() } ],
    [ 'restart a worker' => sub {
        my $pool = pick(qw(ex lua));
        my $w = pick(live_ids($pool)) or return "$pool: none";
        ctl_ok('restart', "$pool/$w->[0]");
        return "$pool/$w->[0]";
    } ],
    [ 'restart a pool' => sub {
        my $pool = pick(qw(ex lua));
        ctl_ok('restart', $pool);
        return $pool;
    } ],
    [ 'scale' => sub {
        my $pool = pick(qw(ex lua));
        my $n = 1 + int rand 6;
        ctl_ok('scale', $pool, $n);
        return "$pool to $n";
    } ],
    [ 'reload a changed definition' => sub {
        $t->write_config(config(++$gen));
        $t->reload;
        return "generation $gen";
    } ],
    [ 'kill the prototype' => sub {
        my $pool = pick(qw(ex lua));
        my $p = $t->prototype_pid($pool) or return "$pool: none";
        kill 'KILL', $p;
        return $pool;
    } ],
);

ok(check_ids('start'), 'ids 1..3 at start');
for my $i (1 .. 40) {
    my $a = pick(@ACTIONS);
    my $what = "$i: $a->[0] (" . $a->[1]->() . ")";
    note($what);
    last unless check_ids($what);
}

# the same id killed again and again, each time as soon as it is back
my $settled = Test::More->builder->is_passing;
ctl_ok('scale', 'ex', 3);
$settled &&= check_ids('before the kills');
for my $i (1 .. ($settled ? 10 : 0)) {
    my %w = map { @$_ } live_ids('ex');
    my $old = $w{2} or last;
    kill 'KILL', $old;
    my $new = $t->poll(sub {
        my ($w) = grep { $_->[0] == 2 && $_->[1] != $old } live_ids('ex');
        return $w && $w->[1];
    }, 10);
    ok($new, "kill $i: worker 2 replaced by a worker 2") or last;
    my %ids = map { $_->[0] => 1 } live_ids('ex');
    ok(!grep({ $_ > 3 } keys %ids), "kill $i: no id above 3") or diag(join ' ', sort keys %ids);
}
check_ids('after the kills');

$t->done;
