#!/usr/bin/perl
# Lua hooks: prefork runs once per prototype, in the prototype; setup and
# start once per worker, in the worker, setup first; prefork's return value
# reaches every worker as worker.pool.state. Hooks see the pool object,
# the worker object, the pool's environment; Lua workers carry the title
# "corral: worker POOL/ID"; setup followed by the pool's command execs it
# with what setup put in the environment.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_stat proc_environ proc_cmdline pid_alive lua_worker_title);
use Test::More;

my $DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

# Every hook appends one line "WHAT field..." to hooks.log (O_APPEND, one
# small write each: lines from concurrent workers do not mix).
sub config {
    my (%o) = @_;
    my $workers = $o{workers} // 3;
    my $foo = $o{foo} // 'bar';
    return <<"EOF";
%LUA_HELPERS%

pool "lw" {
  workers = $workers,
  env = { FOO = "$foo" },
  env_inherit = { "CORRAL_TEST_DIR" },
  directory = "%TMP%",
  prefork = function(pool)
    rec("prefork", corral.pid(), corral.phase(), pool.name, pool.options.workers,
        pool.workers, pool.command, pool.state)
    corral.info("hello from prefork")
    return { token = "abc" .. corral.pid() }
  end,
  setup = function(worker)
    rec("setup", corral.pid(), worker.pid, worker.id, worker.generation, corral.phase(),
        worker.pool.name, worker.pool.options.workers, worker.pool.state.token)
  end,
  start = function(worker)
    rec("start", corral.pid(), worker.pid, worker.id, worker.generation, corral.phase(),
        worker.pool.state.token, os.getenv("CORRAL_POOL"), os.getenv("CORRAL_WORKER"),
        os.getenv("FOO"), os.getenv("HOME"), os.getenv("PATH"))
    worker:log("notice", "hello from start", worker.id)
    while not corral.sleep(3600) do end
  end,
}

pool "sc" {
  workers = 2,
  env = { DROPME = "1", KEEP = "2" },
  env_inherit = { "CORRAL_TEST_DIR" },
  setup = function(worker)
    corral.setenv("FROM_SETUP", "yes" .. worker.id)
    corral.setenv("DROPME", nil)
    rec("sc-setup", corral.pid(), worker.id, corral.phase(), os.getenv("FROM_SETUP"))
  end,
  command = { "/bin/sh", "-c", "echo sc-cmd \$\$ \$CORRAL_WORKER \$FROM_SETUP >> %TMP%/hooks.log; exec /bin/sleep 1001" },
}

pool "se" {
  command = "/bin/sleep 1002",
  env_inherit = { "CORRAL_TEST_DIR" },
  start = function(worker)
    rec("se-start", corral.pid(), worker.id, worker.pool.command[1], worker.pool.command[2])
    worker:exec()
  end,
}
EOF
}

my $t = CorralTest->new(env => { HOME => '/corral-test-home' }, config => config());
my $corrald = $t->start;

for ([ lw => 3 ], [ sc => 2 ], [ se => 1 ]) {
    my ($pool, $n) = @$_;
    $t->wait_log(qr/ info pool ready \($n\/$n workers\) pool=$pool$/);
}
# records, as lists of fields, and their order in the file
sub recs {
    my ($what) = @_;
    return map { [ split / / ] } $t->file_lines('hooks.log', qr/^\Q$what\E /);
}
sub position {
    my ($line_re) = @_;
    my @lines = $t->file_lines('hooks.log');
    for my $i (0 .. $#lines) { return $i if $lines[$i] =~ $line_re }
    return undef;
}
$t->wait_for(sub { recs('start') == 3 && recs('sc-cmd') == 2 && recs('se-start') == 1 }, 10,
             'every hook has written its record');

# --- prefork: once, in the prototype, a child of corrald -------------------

my $proto = $t->prototype_pid('lw');
ok($proto, 'prototype of lw found');
my @pre = recs('prefork');
is(scalar @pre, 1, 'prefork ran once');
my (undef, $ppid, $pphase, $pname, $popt, $pworkers, $pcmd, $pstate) = @{ $pre[0] };
is($ppid, $proto, 'prefork ran in the prototype (corral.pid() is its pid)');
is(proc_stat($proto)->{ppid}, $corrald, "the prototype's parent is corrald");
is($pphase, 'prefork', 'corral.phase() is "prefork" in prefork');
is($pname, 'lw', 'prefork: pool.name');
is($popt, 3, 'prefork: pool.options.workers as written');
is($pworkers, 3, 'prefork: pool.workers');
is($pcmd, 'nil', 'prefork: pool.command is nil for a pool without command');
is($pstate, 'nil', 'prefork: pool.state is nil before prefork returns');
$t->wait_log(qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d info hello from prefork pool=lw pid=$proto$/,
             name => 'corral.info in prefork logs with pool and the prototype pid');

# --- setup and start: once per worker, in the worker, in order -------------

my %w = $t->worker_map('lw');
is_deeply([ sort keys %w ], [ 1, 2, 3 ], 'lw: worker ids 1..3');
my @setup = recs('setup');
my @start = recs('start');
is(scalar @setup, 3, 'setup ran 3 times');
is(scalar @start, 3, 'start ran 3 times');
is_deeply([ sort map { $_->[3] } @setup ], [ 1, 2, 3 ], 'setup: once per worker id');
is_deeply([ sort map { $_->[3] } @start ], [ 1, 2, 3 ], 'start: once per worker id');
my $prefork_at = position(qr/^prefork /);
for my $r (@setup) {
    my (undef, $pid, $wpid, $id, $gen, $phase, $name, $opt, $token) = @$r;
    is($pid, $w{$id}, "setup of worker $id ran in worker $id (corral.pid())");
    is($wpid, $pid, "setup: worker.pid is the worker's pid");
    is(proc_stat($pid)->{ppid}, $proto, "setup: worker $id is a child of the prototype");
    is($gen, 1, "setup: worker $id generation 1");
    is($phase, 'setup', 'corral.phase() is "setup" in setup');
    is($name, 'lw', 'setup: worker.pool.name');
    is($opt, 3, 'setup: worker.pool.options.workers');
    is($token, "abc$proto", "setup: worker.pool.state.token from prefork, in worker $id");
    my $s_at = position(qr/^setup $pid /);
    my $st_at = position(qr/^start $pid /);
    ok(defined $s_at && defined $st_at && $s_at < $st_at, "worker $id: setup before start");
    ok(defined $s_at && $prefork_at < $s_at, "worker $id: prefork before setup");
}
for my $r (@start) {
    my (undef, $pid, $wpid, $id, $gen, $phase, $token, $cpool, $cworker, $foo, $home, $path) = @$r;
    is($pid, $w{$id}, "start of worker $id ran in worker $id");
    is($wpid, $pid, "start: worker.pid");
    is($gen, 1, "start: worker $id generation 1");
    is($phase, 'start', 'corral.phase() is "start" in start');
    is($token, "abc$proto", "start: state reached worker $id");
    is($cpool, 'lw', 'os.getenv CORRAL_POOL in a Lua worker');
    is($cworker, $id, 'os.getenv CORRAL_WORKER is the worker id');
    is($foo, 'bar', 'os.getenv sees the pool env');
    is($home, 'nil', "os.getenv does not see corrald's HOME");
    is($path, $DEFAULT_PATH, 'os.getenv PATH is the default one');
}
for my $id (sort keys %w) {
    my $pid = $w{$id};
    like(proc_cmdline($pid), qr{^corral: worker lw/$id\0*$}, "worker $id titled 'corral: worker lw/$id'");
    is_deeply([ lua_worker_title($pid) ], [ 'lw', $id ], "title names pool and id of worker $id");
    $t->wait_log(qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d notice hello from start $id pool=lw worker=$id pid=$pid$/,
                 name => "worker:log in worker $id logs with pool, worker and pid");
}

# --- setup, then the command ----------------------------------------------

my %sc = $t->worker_map('sc');
is_deeply([ sort keys %sc ], [ 1, 2 ], 'sc: worker ids 1..2 (found by their environment)');
my $sc_proto = $t->prototype_pid('sc');
for my $r (recs('sc-setup')) {
    my (undef, $pid, $id, $phase, $from) = @$r;
    is($pid, $sc{$id}, "sc: setup of worker $id ran in the process that became the worker");
    is($phase, 'setup', 'sc: phase setup');
    is($from, "yes$id", 'sc: corral.setenv is seen by os.getenv at once');
    my ($cmd) = grep { $_->[1] == $pid } recs('sc-cmd');
    ok($cmd, "sc: the command ran in the same process ($pid)") or next;
    is($cmd->[2], $id, 'sc: the command sees CORRAL_WORKER');
    is($cmd->[3], "yes$id", 'sc: the command sees what setup set with corral.setenv');
    ok(position(qr/^sc-setup $pid /) < position(qr/^sc-cmd $pid /), "sc: setup before the command");
    $t->wait_for(sub { proc_cmdline($pid) eq "/bin/sleep\0" . "1001\0" }, 5,
                 "sc: worker $id exec'd the command (cmdline /bin/sleep 1001)");
    my $env = proc_environ($pid);
    is($env->{FROM_SETUP}, "yes$id", 'sc: the exec\'d command has FROM_SETUP');
    ok(!exists $env->{DROPME}, 'sc: corral.setenv(name, nil) removed DROPME');
    is($env->{KEEP}, '2', 'sc: the rest of the pool env is there');
    is(proc_stat($pid)->{ppid}, $sc_proto, 'sc: worker is a child of its prototype');
}
is(scalar recs('sc-setup'), 2, 'sc: setup ran twice');

# --- start calling worker:exec() ---------------------------------------------

my ($se) = $t->workers('se');
my ($se_rec) = recs('se-start');
ok($se && $se_rec, 'se: worker and its start record');
is($se_rec->[1], $se, 'se: start ran in the worker that exec\'d');
is("$se_rec->[3] $se_rec->[4]", '/bin/sleep 1002', 'se: worker.pool.command is the argv');
$t->wait_for(sub { proc_cmdline($se) eq "/bin/sleep\0" . "1002\0" }, 5, 'se: worker:exec() runs the pool command');

# --- a replaced worker runs setup and start; prefork does not run again ----

my $victim = $w{2};
kill 'KILL', $victim;
my %w2;
$t->wait_for(sub { %w2 = $t->worker_map('lw'); keys %w2 == 3 && $w2{2} && $w2{2} != $victim }, 10,
             'lw: worker 2 replaced');
$t->wait_for(sub { grep { $_->[1] == ($w2{2} // 0) } recs('start') }, 10, 'the new worker 2 ran start');
is(scalar recs('prefork'), 1, 'prefork did not run again for a new worker');
my @s2 = grep { $_->[1] == ($w2{2} // 0) } recs('setup');
is(scalar @s2, 1, 'the new worker 2 ran setup once');
is($s2[0][8], "abc$proto", 'the new worker 2 got the same state') if @s2;

# --- a new prototype runs prefork again; its workers get its state ---------

kill 'KILL', $proto;
my $proto2 = $t->wait_for(sub { my $p = $t->prototype_pid('lw'); $p && $p != $proto && $p }, 10,
                          'lw: a new prototype');
$t->wait_for(sub { recs('prefork') == 2 }, 10, 'prefork ran for the new prototype');
is((recs('prefork'))[1][1], $proto2, 'the second prefork ran in the new prototype') if $proto2;
my $victim3 = $w{3};
kill 'KILL', $victim3;
my $new3;
$t->wait_for(sub { my %m = $t->worker_map('lw'); $new3 = $m{3}; $new3 && $new3 != $victim3 && grep { $_->[1] == $new3 } recs('start') }, 10,
             'lw: worker 3 replaced by the new prototype');
my ($st3) = grep { $_->[1] == ($new3 // 0) } recs('start');
is($st3->[6], "abc$proto2", "the new worker 3 has the new prototype's state") if $st3 && $proto2;
is(proc_stat($new3)->{ppid}, $proto2, 'the new worker 3 is a child of the new prototype') if $new3 && $proto2;

# --- generation: unchanged by a rescale, +1 by a changed definition --------

my $mark = $t->mark;
$t->write_config(config(workers => 4));
$t->reload;
$t->wait_log(qr/ info reload done: 0 added, 0 changed, 0 removed, 3 unchanged/, since => $mark);
$t->wait_for(sub { grep { $_->[3] == 4 } recs('start') }, 10, 'a 4th worker started after the rescale');
my ($st4) = grep { $_->[3] == 4 } recs('start');
is($st4->[4], 1, 'a worker added by a rescale is still generation 1') if $st4;
is(scalar recs('prefork'), 2, 'a rescale does not run prefork again');

$mark = $t->mark;
$t->write_config(config(workers => 4, foo => 'qux'));
$t->reload;
$t->wait_log(qr/ info reload done: 0 added, 1 changed, 0 removed, 2 unchanged/, since => $mark);
# ids 1..4 replaced one by one, beside a surge worker (id 5) that then goes
$t->wait_for(sub { my %i = map { $_->[3] => 1 } grep { $_->[4] == 2 } recs('start'); 4 == grep { $i{$_} } 1 .. 4 },
             10, 'generation-2 workers 1..4 started');
my @gen2 = grep { $_->[4] == 2 } recs('start');
my %gen2_ids = map { $_->[3] => 1 } @gen2;
is(join(' ', grep { $gen2_ids{$_} } 1 .. 4), '1 2 3 4', 'generation 2: worker ids 1..4');
ok(!grep({ $_->[9] ne 'qux' } @gen2), 'generation 2 workers see the new env');
ok(!grep({ $_->[9] ne 'bar' } grep { $_->[4] == 1 } recs('start')), 'generation 1 workers saw the old env');
$t->wait_for(sub { recs('prefork') == 3 }, 10, 'the changed pool ran prefork in a new prototype');
my %w3;
$t->wait_for(sub { %w3 = $t->worker_map('lw'); my %g2 = map { $_->[1] => 1 } @gen2;
                   keys %w3 == 4 && !grep { !$g2{$_} } values %w3 }, 10,
             'lw runs only the generation-2 workers');

$t->done;
