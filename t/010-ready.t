#!/usr/bin/perl
# Readiness of Lua workers: ready = "lua" waits for corral.ready() (or
# worker:ready()) from every worker; ready = "started" (the default) is
# ready once start runs. A function called in a phase that does not allow
# it raises an error naming the function and the phase.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive);
use Test::More;

my $t = CorralTest->new(config => <<'EOF');
%LUA_HELPERS%
local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

pool "gated" {
  workers = 2,
  ready = "lua",
  directory = "%TMP%",
  env_inherit = { "CORRAL_TEST_DIR" },
  start = function(worker)
    rec("waiting", worker.id, corral.pid())
    while not exists("%TMP%/go." .. worker.id) do
      if corral.sleep(0.02) then return end
    end
    if worker.id == 1 then corral.ready() else worker:ready() end
    rec("ready", worker.id, corral.pid())
    while not corral.sleep(3600) do end
  end,
}

pool "auto" {
  workers = 2,
  directory = "%TMP%",
  env_inherit = { "CORRAL_TEST_DIR" },
  start = function(worker)
    rec("auto", worker.id, corral.pid())
    while not corral.sleep(3600) do end
  end,
}

pool "early" {
  command = "/bin/sleep 1000",
  env_inherit = { "CORRAL_TEST_DIR" },
  crash_limit = { failures = 2, interval = "1m" },
  prefork = function(pool)
    corral.ready() -- READY-IN-PREFORK
  end,
}

pool "early2" {
  command = "/bin/sleep 1000",
  env_inherit = { "CORRAL_TEST_DIR" },
  crash_limit = { failures = 2, interval = "1m" },
  prefork = function(pool)
    corral.setenv("X", "1") -- SETENV-IN-PREFORK
  end,
}
EOF
my @conf_lines = split /\n/, CorralTest::slurp($t->conf);
sub line_of {
    my ($tag) = @_;
    for my $i (0 .. $#conf_lines) { return $i + 1 if index($conf_lines[$i], $tag) >= 0 }
    die "no line $tag";
}
my $conf = $t->conf;
my $corrald = $t->start;

# --- ready = "started": ready without any call -----------------------------

$t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=auto$/, name => 'ready = "started": pool ready without corral.ready()');
$t->wait_for(sub { $t->file_lines('hooks.log', qr/^auto /) == 2 }, 10, 'auto: both workers run start');

# --- ready = "lua": not ready until every worker says so -------------------

$t->wait_for(sub { $t->workers('gated') == 2 && $t->file_lines('hooks.log', qr/^waiting /) == 2 }, 10,
             'gated: both workers run start');
$t->stays(sub { !$t->log_lines(qr/ pool ready .* pool=gated$/) }, 1,
          'gated: no "pool ready" while no worker called corral.ready()');
is(scalar $t->workers('gated'), 2, 'gated: workers still running meanwhile');

$t->write_file('go.1', '');
$t->wait_for(sub { $t->file_lines('hooks.log', qr/^ready 1 /) }, 10, 'gated: worker 1 called corral.ready()');
$t->stays(sub { !$t->log_lines(qr/ pool ready .* pool=gated$/) }, 0.7,
          'gated: no "pool ready" with 1 of 2 workers ready');

$t->write_file('go.2', '');
$t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=gated$/,
             name => 'gated: pool ready once both workers called ready (corral.ready, worker:ready)');
my @ready = $t->file_lines('hooks.log', qr/^ready /);
is(scalar @ready, 2, 'gated: two ready records');
my %gated = $t->worker_map('gated');
for my $r (@ready) {
    my (undef, $id, $pid) = split / /, $r;
    is($pid, $gated{$id}, "gated: worker $id is the one that called ready");
}
is(scalar $t->log_lines(qr/ pool ready .* pool=gated$/), 1, 'gated: "pool ready" logged once');

# --- a function in the wrong phase ------------------------------------------

my %hook = (
    early  => [ 'READY-IN-PREFORK',  'corral.ready: not available in prefork (only in setup, start)' ],
    early2 => [ 'SETENV-IN-PREFORK', 'corral.setenv: not available in prefork (only in setup, start)' ],
);
for my $pool (sort keys %hook) {
    my ($tag, $msg) = @{ $hook{$pool} };
    my $line = line_of($tag);
    my @started = $t->wait_log(qr/ info prototype started pool=$pool pid=\d+$/, count => 2,
                               name => "$pool: prototype retried (started twice)");
    my @pids = map { / pid=(\d+)$/ ? $1 : () } @started;
    isnt($pids[0], $pids[1], "$pool: the retry is a new prototype") if @pids == 2;
    my $first = $pids[0] // 0;
    $t->wait_log(qr/ error prefork hook failed: \Q$conf\E:$line: \Q$msg\E pool=$pool pid=$first$/,
                 name => "$pool: error names the function, the phase and $conf:$line");
    $t->wait_log(qr/ error   stack traceback: pool=$pool pid=$first$/, name => "$pool: traceback logged");
    $t->wait_log(qr/ warn prototype exited unexpectedly \(exited with status 1\) pool=$pool pid=$first$/,
                 name => "$pool: prototype exited with status 1");
    $t->wait_log(qr/ info restarting prototype in 100ms pool=$pool$/, name => "$pool: restarted after the backoff");
    $t->wait_log(qr/ error pool failed: 2 start failures within 60s, last: .+; staying down until start, restart or reload pool=$pool$/,
                 name => "$pool: crash limit reached");
    ok(!pid_alive($_), "$pool: prototype $_ gone") for @pids;
    is(scalar $t->workers($pool), 0, "$pool: no worker");
}
ok(pid_alive($corrald), 'corrald still running');

# --- the same checks at config time -----------------------------------------

my $c = CorralTest->new(config => <<'EOF');
pool "x" { command = "/bin/sleep 1", ready = "lua" }
EOF
my $r = $c->run_check;
is($r->{code}, 1, 'ready = "lua" without start: config error');
like($r->{err}, qr/:1: pool "x": ready: "lua" needs a start function/, 'ready = "lua" without start: message');

$c->write_config(<<'EOF');
settings { log_level = "info" }
corral.ready()
EOF
$r = $c->run_check;
is($r->{code}, 1, 'corral.ready() in the config: config error');
like($r->{err}, qr/\Q${\$c->conf}\E:2: corral\.ready: not available in config \(only in setup, start\)/,
     'corral.ready() in the config: names the function, the phase and the line');

$t->done;
