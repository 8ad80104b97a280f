#!/usr/bin/perl
# Stopping Lua workers: a loop on worker:stopping() ends cleanly when the
# stop signal comes (exit status 0, quickly); corral.sleep returns true at
# once on stop, false after its time otherwise, without spinning; a loop
# that ignores stopping is killed after stop_timeout.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_stat pid_alive);
use Test::More;
use Time::HiRes qw(time sleep clock_gettime CLOCK_MONOTONIC);

my $t = CorralTest->new(config => <<'EOF');
%LUA_HELPERS%
pool "loop" {
  workers = 3,
  stop_timeout = "10s",
  directory = "%TMP%",
  start = function(worker)
    rec("up", worker.id, corral.pid())
    while not worker:stopping() do corral.sleep(0.05) end
    rec("done", worker.id, corral.pid())
  end,
}

pool "spin" {
  stop_timeout = "10s",
  directory = "%TMP%",
  start = function(worker)
    rec("spin-up", worker.id, corral.pid())
    local x = 0
    while not corral.stopping() do
      for i = 1, 100000 do x = x + i end
    end
    rec("spin-done", worker.id, corral.pid())
  end,
}

pool "sleeper" {
  workers = 2,
  stop_timeout = "10s",
  directory = "%TMP%",
  start = function(worker)
    rec("sleep-start", worker.id, corral.pid())
    local r = worker:sleep(3600)
    rec("sleep-ret", worker.id, corral.pid(), r, string.format("%.3f", corral.now()))
  end,
}

pool "short" {
  directory = "%TMP%",
  start = function(worker)
    local t0 = corral.now()
    local r = corral.sleep(0.3)
    rec("short", worker.id, corral.pid(), r, string.format("%.3f", corral.now() - t0))
    while not corral.sleep(3600) do end
  end,
}
EOF
my $corrald = $t->start;

sub recs {
    my ($tt, $what) = @_;
    return map { [ split / / ] } $tt->file_lines('hooks.log', qr/^\Q$what\E /);
}

$t->wait_for(sub { recs($t, 'up') == 3 && recs($t, 'spin-up') == 1 && recs($t, 'sleep-start') == 2 }, 10,
             'every Lua worker runs');
my %loop = $t->worker_map('loop');
my %sleeper = $t->worker_map('sleeper');
my ($spin) = $t->workers('spin');
is_deeply([ sort keys %loop ], [ 1, 2, 3 ], 'loop: 3 workers');

# corral.sleep(0.3): false, after 0.3s
$t->wait_for(sub { recs($t, 'short') == 1 }, 10, 'short: corral.sleep(0.3) returned');
my ($short) = recs($t, 'short');
is($short->[3], 'false', 'corral.sleep returns false when its time is up');
cmp_ok($short->[4], '>=', 0.29, 'corral.sleep(0.3) slept at least 0.3s');
cmp_ok($short->[4], '<', 2, 'corral.sleep(0.3) slept less than 2s');

# corral.sleep does not spin: a sleeping worker uses no CPU
my %cpu = map { my $st = proc_stat($_); ($_ => $st->{utime} + $st->{stime}) } values %sleeper;
my $t0 = time;
sleep 1;    # a measuring window, not a synchronisation
for my $pid (values %sleeper) {
    my $st = proc_stat($pid);
    my $used = $st->{utime} + $st->{stime} - $cpu{$pid};
    cmp_ok($used, '<=', 5, "sleeper $pid used $used CPU ticks in " . sprintf('%.1f', time - $t0) . 's of corral.sleep');
}
ok(!recs($t, 'sleep-ret'), 'corral.sleep(3600) has not returned before the stop');

# --- graceful stop ----------------------------------------------------------

my $term_at = time;
my $term_mono = clock_gettime(CLOCK_MONOTONIC);
is($t->stop(9), 0, 'corrald exits 0');
my $took = time - $term_at;
cmp_ok($took, '<', 3, sprintf('stopped in %.2fs, well before stop_timeout = 10s', $took));

my @done = recs($t, 'done');
is_deeply([ sort map { $_->[1] } @done ], [ 1, 2, 3 ], 'loop: every worker left its loop and wrote "done"');
for my $d (@done) {
    is($d->[2], $loop{ $d->[1] }, "loop: done written by worker $d->[1] itself");
}
for my $id (sort keys %loop) {
    ok(scalar $t->log_lines(qr/ info worker stopped \(exited with status 0\) pool=loop worker=$id pid=$loop{$id}$/),
       "log: loop worker $id stopped (exited with status 0)");
}
is(scalar recs($t, 'spin-done'), 1, 'spin: a busy loop on corral.stopping() ended');
ok(scalar $t->log_lines(qr/ info worker stopped \(exited with status 0\) pool=spin worker=1 pid=$spin$/),
   'log: spin worker stopped (exited with status 0)');

my @ret = recs($t, 'sleep-ret');
is(scalar @ret, 2, 'sleeper: both corral.sleep(3600) returned');
for my $r (@ret) {
    my (undef, $id, $pid, $val, $now) = @$r;
    is($val, 'true', "sleeper $id: corral.sleep returned true on stop");
    cmp_ok($now - $term_mono, '<', 1.5, "sleeper $id: returned promptly after TERM");
    ok(scalar $t->log_lines(qr/ info worker stopped \(exited with status 0\) pool=sleeper worker=$id pid=$pid$/),
       "log: sleeper $id stopped (exited with status 0)");
}
ok(!$t->log_lines(qr/did not stop within/), 'no worker needed a KILL');

# --- a loop that ignores stopping is killed after stop_timeout --------------

my $s = CorralTest->new(config => <<'EOF');
%LUA_HELPERS%
pool "busy" {
  stop_timeout = "1s",
  directory = "%TMP%",
  start = function(worker)
    rec("busy-up", worker.id, corral.pid())
    local x = 0
    while true do x = x + 1 end
  end,
}

pool "deaf" {
  stop_timeout = "1s",
  directory = "%TMP%",
  start = function(worker)
    rec("deaf-up", worker.id, corral.pid())
    while true do corral.sleep(0.05) end
  end,
}
EOF
$s->start;
$s->wait_for(sub { recs($s, 'busy-up') && recs($s, 'deaf-up') }, 10, 'busy and deaf workers run');
my ($busy) = $s->workers('busy');
my ($deaf) = $s->workers('deaf');
ok($busy && $deaf, 'busy and deaf workers found');
$term_at = time;
$s->signal('TERM');
$s->stays(sub { pid_alive($busy) && pid_alive($deaf) }, 0.6, 'workers that ignore stopping are still running after TERM');
is($s->wait_exit(8), 0, 'corrald exits 0');
$took = time - $term_at;
cmp_ok($took, '>=', 0.9, sprintf('stopping took %.2fs: not before stop_timeout = 1s', $took));
cmp_ok($took, '<', 4, 'and not much longer');
for ([ busy => $busy ], [ deaf => $deaf ]) {
    my ($pool, $pid) = @$_;
    ok(scalar $s->log_lines(qr/ warn worker did not stop within 1s, sending KILL pool=$pool worker=1 pid=$pid$/),
       "log: $pool worker did not stop within 1s, KILL sent");
    ok(scalar $s->log_lines(qr/ info worker stopped \(killed by signal 9 \(KILL\)\) pool=$pool worker=1 pid=$pid$/),
       "log: $pool worker stopped (killed by signal 9)");
    ok(!pid_alive($pid), "$pool worker is gone");
}

$t->done;
