#!/usr/bin/perl
# prefork_timeout: a prototype whose prefork hook does not return in time
# (a busy loop, compiled by the JIT; a long corral.sleep) is killed and
# retried after the pool's backoff; other pools are not affected; a reload
# with a prefork that returns brings the pool up, and a prototype that is
# ready in time is not killed later.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive log_time);
use Test::More;

sub config {
    my ($fixed) = @_;
    my $text = <<'EOF';
%LUA_HELPERS%

pool "healthy" {
  command = "/bin/sleep 1000",
  workers = 2,
  env_inherit = { "CORRAL_TEST_DIR" },
}

pool "busy" {
  workers = 2,
  directory = "%TMP%",
  prefork_timeout = "1s",
  prefork = function(pool)
    rec("busy-prefork", corral.pid())
    -- BROKEN: while true do end
    -- FIXED: return { fixed = true }
  end,
  start = function(worker)
    rec("busy-start", worker.id, corral.pid())
    idle()
  end,
}

pool "sleepy" {
  workers = 2,
  directory = "%TMP%",
  prefork_timeout = "1s",
  prefork = function(pool)
    rec("sleepy-prefork", corral.pid())
    -- BROKEN: corral.sleep(3600)
    -- FIXED: corral.sleep(0.1)
  end,
  start = function(worker)
    rec("sleepy-start", worker.id, corral.pid())
    idle()
  end,
}

pool "slowok" {
  directory = "%TMP%",
  prefork_timeout = "5s",
  prefork = function(pool)
    corral.sleep(0.3)
    rec("slowok-prefork", corral.pid())
  end,
  start = function(worker) idle() end,
}
EOF
    my $on = $fixed ? 'FIXED' : 'BROKEN';
    $text =~ s/-- $on: //g;
    return $text;
}

my $t = CorralTest->new(config => config(0));
sub recs {
    my ($what) = @_;
    return map { [ split / / ] } $t->file_lines('hooks.log', qr/^\Q$what\E /);
}
my $corrald = $t->start;

$t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=healthy$/);
my @healthy = $t->workers('healthy');
my $healthy_proto = $t->prototype_pid('healthy');
$t->wait_log(qr/ info pool ready \(1\/1 workers\) pool=slowok$/, name => 'slowok: a prefork of 0.3s within prefork_timeout = 5s is fine');

for my $pool (qw(busy sleepy)) {
    my @started = $t->wait_log(qr/ info prototype started pool=$pool pid=\d+$/, count => 2, timeout => 10,
                               name => "$pool: the prototype was started a second time");
    my @pids = map { / pid=(\d+)$/ ? $1 : () } @started;
    next unless @pids >= 2;
    my ($p1, $p2) = @pids;
    isnt($p1, $p2, "$pool: the second prototype is a new process");
    my ($killed) = $t->wait_log(qr/ error prototype not ready within 1s \(prefork_timeout\), killing it pool=$pool pid=$p1$/,
                                name => "$pool: 'prototype not ready within 1s' logged for the first prototype");
    if ($killed) {
        my $after = log_time($killed) - log_time($started[0]);
        cmp_ok($after, '>=', 0.9, sprintf("$pool: killed %.3fs after its start, not before prefork_timeout", $after));
        cmp_ok($after, '<', 3, "$pool: and not much later");
        my $retry = log_time($started[1]) - log_time($killed);
        cmp_ok($retry, '>=', 0.09, sprintf("$pool: retried %.3fs after the kill, after the backoff", $retry));
    }
    $t->wait_log(qr/ info restarting prototype in 100ms pool=$pool$/, name => "$pool: restart with the pool's backoff");
    $t->wait_log(qr/ warn prototype exited unexpectedly \(killed by signal 9 \(KILL\)\) pool=$pool pid=$p1$/,
                 name => "$pool: the first prototype died of the KILL");
    $t->wait_for(sub { !pid_alive($p1) }, 5, "$pool: the first prototype is gone");
    $t->wait_for(sub { grep { $_->[1] == $p2 } recs("$pool-prefork") }, 5, "$pool: the second prototype ran prefork too");
    ok(scalar(grep { $_->[1] == $p1 } recs("$pool-prefork")), "$pool: the first prototype had entered prefork");
    is(scalar $t->workers($pool), 0, "$pool: no worker");
    ok(!recs("$pool-start"), "$pool: no worker ever started");
}
my ($busy_proto) = map { / pid=(\d+)$/ ? $1 : () } ($t->log_lines(qr/ info prototype started pool=busy pid=/))[-1];
ok(!$t->log_lines(qr/ not ready within .* pool=(?:healthy|slowok)/), 'healthy and slowok: never timed out');
ok(pid_alive($corrald), 'corrald still running');
is_deeply([ $t->workers('healthy') ], \@healthy, 'healthy: same workers');
is($t->prototype_pid('healthy'), $healthy_proto, 'healthy: same prototype');

# --- a reload with a prefork that returns -----------------------------------

my $mark = $t->mark;
$t->write_config(config(1));
$t->reload;
$t->wait_log(qr/ info reload done: 0 added, 2 changed, 0 removed, 2 unchanged$/, since => $mark);
for my $pool (qw(busy sleepy)) {
    $t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=$pool$/, since => $mark, name => "$pool: up after the reload");
    $t->wait_for(sub { recs("$pool-start") == 2 }, 10, "$pool: both workers ran start");
}
is_deeply([ sort map { $_->[1] } recs('busy-start') ], [ 1, 2 ], 'busy: workers 1 and 2');
my %proto = map { $_ => $t->prototype_pid($_) } qw(busy sleepy);
ok(!grep({ !$_ } values %proto), 'busy and sleepy: prototypes running');
isnt($proto{busy}, $busy_proto, 'busy: a new prototype after the reload');
$t->stays(sub { ($t->prototype_pid('busy') // 0) == $proto{busy} && ($t->prototype_pid('sleepy') // 0) == $proto{sleepy} }, 1.5,
          'a prototype ready in time is not killed at prefork_timeout');
ok(!$t->log_lines(qr/ not ready within .* pid=(?:$proto{busy}|$proto{sleepy})$/), 'the new prototypes never timed out');
is_deeply([ $t->workers('healthy') ], \@healthy, 'healthy: same workers after the reload');
is($t->prototype_pid('healthy'), $healthy_proto, 'healthy: same prototype after the reload');

$t->done;
