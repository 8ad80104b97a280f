#!/usr/bin/perl
# Control commands called from inside an event handler: a plugin that, in
# worker_started, worker_ready, worker_exited, pool_ready, pool_failed or
# oom, restarts a worker or the pool, stops, starts, scales or reloads,
# gets what it asked for, and nothing is counted as a failure.
#
# (Issue 10, item 2.) The supervisor used to call Lua in the middle of a
# state change: worker_started came before the worker's state was set, so
# corral.restart(pool, id) there marked the worker stopping and the
# supervisor then set it back to starting; its stop became an unexpected
# exit (a warning, a restart counted, the backoff grown). worker_exited had
# the same shape: what the handler set was overwritten once it returned.
#
# Each row of @ROWS is a scenario, with a corrald of its own:
#   event    the event whose handler acts
#   trigger  what the test does to bring the event about, once the pool p
#            (2 workers) is ready and the plugin armed:
#              stop-2   `corralctl restart p/2`: worker 2 is stopped and a
#                       new one started (worker_started, worker_ready and
#                       pool_ready of the new one, worker_exited of 2)
#              exit-2   worker 2 exits on its own, status 0, in a pool with
#                       restart = "never" (not replaced, not a failure)
#              crash    from now on workers exit with 1 at once, then
#                       `corralctl restart p/2`: its replacement fails
#                       twice, crash_limit = 2, the pool fails; the
#                       handler heals the command before it acts
#              oom      worker 2 allocates past worker_limits.memory_max
#   action   what the handler calls, once (a file marks it done, across
#            reloads): restart-worker (the event's worker, or worker 1 for
#            pool events and worker_exited), restart-pool (rolling),
#            restart-all (all at once), stop-pool, start-pool, scale=N,
#            reload (the config on disk changed before: workers = 3 and
#            GEN=2 in the environment)
#   end      the state corrald must reach and keep:
#              ready=N   running, N ready workers, as many processes and
#                        worker cgroups, nothing else
#              replaced  the worker restarted is gone, stopped as asked
#              renewed   a new generation and prototype; every worker
#                        there at the call stopped as asked
#              stopped   the pool stopped: no worker process, no worker
#                        cgroup, no prototype
#              reloaded  the reload came after the call, changed the pool
#                        (a new generation, every worker GEN=2)
# and in every row: the pool's restarts grew by what the trigger costs and
# no more, no "restarting ... in" line and no warn, error or alert line
# beyond the trigger's own, and every exit a "worker stopped (...)".

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive proc_environ);
use Test::More;

my @ROWS = map { [ split ' ' ] } grep { /\S/ && !/^\s*#/ } split /\n/, <<'EOF';
# event          trigger  action          end
worker_started   stop-2   restart-worker  ready=2 replaced
worker_started   stop-2   restart-pool    ready=2 renewed
worker_started   stop-2   restart-all     ready=2 renewed
worker_started   stop-2   stop-pool       stopped
worker_started   stop-2   scale=1         ready=1
worker_started   stop-2   reload          ready=3 reloaded
worker_ready     stop-2   restart-worker  ready=2 replaced
worker_ready     stop-2   restart-pool    ready=2 renewed
worker_ready     stop-2   restart-all     ready=2 renewed
worker_ready     stop-2   stop-pool       stopped
worker_ready     stop-2   scale=3         ready=3
worker_ready     stop-2   reload          ready=3 reloaded
worker_exited    stop-2   restart-worker  ready=2 replaced
worker_exited    stop-2   restart-pool    ready=2 renewed
worker_exited    stop-2   restart-all     ready=2 renewed
worker_exited    stop-2   stop-pool       stopped
worker_exited    stop-2   scale=3         ready=3
worker_exited    stop-2   reload          ready=3 reloaded
worker_exited    exit-2   scale=3         ready=3
worker_exited    exit-2   stop-pool       stopped
pool_ready       stop-2   restart-worker  ready=2 replaced
pool_ready       stop-2   restart-pool    ready=2 renewed
pool_ready       stop-2   restart-all     ready=2 renewed
pool_ready       stop-2   stop-pool       stopped
pool_ready       stop-2   scale=1         ready=1
pool_ready       stop-2   reload          ready=3 reloaded
pool_failed      crash    start-pool      ready=2
pool_failed      crash    restart-pool    ready=2 renewed
pool_failed      crash    stop-pool       stopped
pool_failed      crash    reload          ready=3 reloaded
oom              oom      restart-all     ready=2 renewed
oom              oom      stop-pool       stopped
oom              oom      scale=3         ready=3
EOF

# What a trigger costs by itself: restarts counted, "restarting ... in"
# lines, and the warn/error lines and unexpected exits it logs (each
# [ regex, count ], since the trigger).
my %COST = (
    'stop-2' => { restarts => 0, backoff => 0, lines => [] },
    'exit-2' => { restarts => 0, backoff => 0,
                  lines => [ [ qr/ info worker exited with status 0 pool=p worker=2 /, 1 ] ] },
    'crash'  => { restarts => 2, backoff => 1,
                  lines => [ [ qr/ warn worker exited with status 1 pool=p /, 2 ],
                             [ qr/ error pool failed: 2 start failures within 60s, last: .+; staying down until start, restart or reload pool=p$/, 1 ] ] },
    'oom'    => { restarts => 1, backoff => 1,
                  lines => [ [ qr/ warn worker killed by the kernel's OOM killer .* pool=p worker=2 /, 1 ] ] },
);

# The plugin: armed by TMP/arm, acts once (TMP/acted) and logs what it saw
# and did: "act: EVENT ACTION worker= pid= restarts= target= live=ID:PID,..."
# (live: the workers running at the call, not the one whose exit this is),
# then "act: CALL returned VALUE ERROR".
my $PLUGIN = <<'EOF';
local o = ...
local dir = o.dir

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function put(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- action -> function(worker id) returning the call's results, and the call as text
local actions = {
  ["restart-worker"] = { function(id) return corral.restart(o.pool, id) end, 'corral.restart("%s", %s)' },
  ["restart-pool"] = { function() return corral.restart(o.pool) end, 'corral.restart("%s")' },
  ["restart-all"] = { function() return corral.restart(o.pool, nil, true) end, 'corral.restart("%s", nil, true)' },
  ["stop-pool"] = { function() return corral.stop_pool(o.pool) end, 'corral.stop_pool("%s")' },
  ["start-pool"] = { function() return corral.start_pool(o.pool) end, 'corral.start_pool("%s")' },
  ["scale"] = { function() return corral.scale(o.pool, o.n) end, 'corral.scale("%s", ' .. tostring(o.n) .. ')' },
  ["reload"] = { function() return corral.reload() end, 'corral.reload()' },
}
local act, call = unpack(assert(actions[o.action], "unknown action"), 1, 2)

corral.on(o.event, function(ev)
  if ev.pool ~= o.pool or not exists(dir .. "/arm") or exists(dir .. "/acted") then return end
  put(dir .. "/acted", "")
  if o.heal then put(dir .. "/crash", "") end     -- workers start fine again
  local id = o.worker or ev.worker
  local st = corral.status(o.pool)
  local p = st and st[1] or { workers = {} }
  local live, target = {}, nil
  for _, w in ipairs(p.workers) do
    local this_one_exited = (ev.event == "worker_exited" or ev.event == "oom") and w.pid == ev.pid
    if w.pid > 0 and w.state ~= "stopping" and w.state ~= "exited" and not this_one_exited then
      live[#live + 1] = w.id .. ":" .. w.pid
      if o.action == "restart-worker" and w.id == id then target = w.pid end
    end
  end
  corral.info(("act: %s %s worker=%s pid=%s restarts=%s target=%s live=%s"):format(ev.event, o.action,
    tostring(ev.worker), tostring(ev.pid), tostring(p.restarts), tostring(target), table.concat(live, ",")))
  local r, err = act(id)
  corral.info(("act: %s returned %s %s"):format(call:format(o.pool, tostring(id)), tostring(r), tostring(err)))
end)

corral.info("act: loaded")
EOF

# The workers' command. GATE=exit: wait for TMP/exit.PID, then exit 0;
# GATE=oom: wait for TMP/oom.PID, then allocate (tail keeps a whole line,
# and /dev/zero has no newline).
my $SCRIPT = <<'EOF';
[ -s %TMP%/crash ] && exit 1
case "$GATE" in
exit)
  while [ ! -e %TMP%/exit.$$ ]; do /bin/sleep 0.05; done
  exit 0 ;;
oom)
  while [ ! -e %TMP%/oom.$$ ]; do /bin/sleep 0.05; done
  /usr/bin/head -c 300M /dev/zero | /usr/bin/tail > /dev/null ;;
esac
exec /bin/sleep 1000
EOF

sub config {
    my (%c) = @_;
    my $o = $c{opts};
    my $opts = join ', ', map { "$_ = " . ($o->{$_} =~ /^\d+$|^true$/ ? $o->{$_} : "\"$o->{$_}\"") } sort keys %$o;
    my $limits = $c{gate} eq 'oom' ? qq{\n  worker_limits = { memory_max = "32M", memory_swap_max = 0 },} : '';
    return <<"EOF";
plugin "act" { $opts, dir = "%TMP%" }
pool "p" {
  command = { "/bin/sh", "%TMP%/p.sh" }, workers = $c{workers}, restart = "$c{restart}",
  env = { GEN = "$c{gen}", GATE = "$c{gate}" }, env_inherit = { "CORRAL_TEST_DIR" },
  backoff = { initial = "50ms", max = "1s" }, crash_limit = { failures = 2, interval = "1m" },
  stop_timeout = "5s",$limits
}
EOF
}

# the memory controller, for the oom rows
my $mount = CorralTest::cgroup_mount() // '?';
my $controllers = CorralTest::slurp("$mount/cgroup.controllers") // '';
chomp $controllers;
my $have_memory = grep { $_ eq 'memory' } split ' ', $controllers;

sub by_pid { my %h; for (split /,/, $_[0] // '') { my ($id, $pid) = split /:/; $h{$pid} = $id } return \%h }

# The problems with the end state (none: reached).
sub end_problems {
    my ($t, $want, $ctx) = @_;
    my @bad;
    my $st = ($t->status('p') // {})->{p} or return ('no status for p');
    my @ws = @{ $st->{workers} || [] };
    my %numeric = map { $_ => 1 } grep { /^\d+$/ } $t->cgroup_children('p');
    if ($want->{stopped}) {
        push @bad, "state $st->{state}, not stopped" if $st->{state} ne 'stopped';
        push @bad, scalar(@ws) . " workers in status" if @ws;
        my @procs = $t->workers('p');
        push @bad, "worker processes: @procs" if @procs;
        push @bad, 'a prototype runs' if $t->prototype_pid('p');
        push @bad, 'worker cgroups left: ' . join(' ', sort keys %numeric) if %numeric;
    }
    if (defined(my $n = $want->{ready})) {
        push @bad, "state $st->{state}, not running" if $st->{state} ne 'running';
        push @bad, "ready $st->{ready}, total $st->{total}, target $st->{target}, not $n"
            if $st->{ready} != $n || $st->{total} != $n || $st->{target} != $n;
        push @bad, 'workers in status: ' . join(' ', map { "$_->{id}:$_->{pid}:$_->{state}" } @ws)
            if @ws != $n || grep { $_->{state} ne 'ready' } @ws;
        my @procs = $t->workers('p');
        my @status_pids = sort { $a <=> $b } map { $_->{pid} } @ws;
        push @bad, "worker processes @procs, status says @status_pids" if "@procs" ne "@status_pids";
        my $ids = join ' ', sort { $a <=> $b } map { $_->{id} } @ws;
        my $cgs = join ' ', sort { $a <=> $b } keys %numeric;
        push @bad, "worker cgroups $cgs, workers $ids" if $cgs ne $ids;
    }
    if ($want->{replaced}) {
        my $pid = $ctx->{target};
        if (!$pid) { push @bad, 'the handler named no worker to restart' }
        elsif (pid_alive($pid) || grep { $_->{pid} == $pid } @ws) { push @bad, "the worker restarted, pid $pid, still there" }
    }
    if ($want->{renewed} || $want->{reloaded}) {
        my $gen = $ctx->{generation} + 1;
        push @bad, "generation $st->{generation}, not $gen" if $st->{generation} != $gen;
        push @bad, 'workers of another generation' if grep { $_->{generation} != $gen } @ws;
        my @old = grep { pid_alive($_) } keys %{ $ctx->{live} };
        push @bad, "workers of the call still there: @old" if @old;
        my $proto = $t->prototype_pid('p');
        push @bad, 'no new prototype' if !$proto || $proto == ($ctx->{proto} // 0);
    }
    if ($want->{reloaded}) {
        my @old = grep { (proc_environ($_->{pid})->{GEN} // '') ne '2' } @ws;
        push @bad, 'workers without GEN=2: ' . join(' ', map { $_->{pid} } @old) if @old;
    }
    return @bad;
}

sub scenario {
    my ($event, $trigger, $action, @end) = @_;
    my ($act, $n) = split /=/, $action;
    my %want = map { my ($k, $v) = split /=/; ($k => $v // 1) } @end;
    my $gate = $trigger eq 'exit-2' ? 'exit' : $trigger eq 'oom' ? 'oom' : '';
    my %opts = (event => $event, action => $act, pool => 'p');
    $opts{n} = $n if defined $n;
    $opts{worker} = 1 if $act eq 'restart-worker' && $event !~ /^worker_(?:started|ready)$/;
    $opts{heal} = 'true' if $trigger eq 'crash';
    my %conf = (opts => \%opts, gate => $gate, restart => $gate eq 'exit' ? 'never' : 'always');

    my $t = CorralTest->new(config => config(%conf, workers => 2, gen => 1));
    $t->write_file('plugins/act.lua', $PLUGIN);
    $t->write_file('p.sh', $SCRIPT);
    $t->start;
    my $up = sub { my $s = ($t->status('p') // {})->{p}; $s && $s->{state} eq 'running' && $s->{ready} == 2 };
    $t->poll(sub { $up->() || !pid_alive($t->pid) }, 10);    # (a config error ends corrald at once)
    ok($up->(), 'pool p ready with 2 workers') or do { $t->diag_tail; return };
    $t->wait_log(qr/ info act: loaded$/);
    $t->write_config(config(%conf, workers => 3, gen => 2)) if $act eq 'reload';

    my $before = $t->status('p')->{p};
    my %w = map { $_->{id} => $_->{pid} } @{ $before->{workers} };
    my %ctx = (generation => $before->{generation}, proto => $t->prototype_pid('p'));
    my $cost = $COST{$trigger};
    my $mark = $t->mark;
    $t->write_file('arm', '');
    if ($trigger eq 'stop-2' || $trigger eq 'crash') {
        $t->write_file('crash', "1\n") if $trigger eq 'crash';
        my $r = $t->ctl('restart', 'p/2');
        is($r->{code}, 0, 'trigger: corralctl restart p/2') or diag($r->{err});
    } else {
        $t->write_file("$gate.$w{2}", '');    # exit.PID, oom.PID
    }

    my ($line) = $t->wait_log(qr/ info act: \Q$event $act\E /, since => $mark, name => "the $event handler acts");
    my ($ret) = $t->wait_log(qr/ info act: corral\.\S.* returned /, since => $mark, name => 'the call returns');
    return unless $line && $ret;
    note($line);
    my ($call) = $ret =~ / act: (\S.*) returned /;
    unlike($ret, qr/ returned nil /, "$call returns a true value") or diag($ret);
    my ($target) = $line =~ / target=(\d+) /;
    my ($live) = $line =~ / live=(\S*)$/;
    $ctx{target} = $target;
    $ctx{live} = by_pid($live);
    my $act_at = index $t->log, $line;

    my @problems;
    my $reached = $t->poll(sub { !(@problems = end_problems($t, \%want, \%ctx)) }, 10);
    ok($reached, "end state reached: @end") or do { diag("still: $_") for @problems; $t->diag_tail(40) };
    my $expect_restarts = $before->{restarts} + $cost->{restarts};
    my $restarts = sub { (($t->status('p') // {})->{p} // {})->{restarts} // -1 };
    if ($reached) {
        $t->stays(sub { !(@problems = end_problems($t, \%want, \%ctx)) }, 0.5, 'and stays')
            or diag(join "\n", map { "then: $_" } @problems);
    }
    is($restarts->(), $expect_restarts, "no failure counted: restarts $before->{restarts} + $cost->{restarts} (the trigger's)");

    # the log since the trigger
    my @lines = $t->log_lines(qr/./, $mark);
    my %allowed;
    for my $c (@{ $cost->{lines} }) {
        my ($re, $count) = @$c;
        my @m = grep { $_ =~ $re } @lines;
        is(scalar @m, $count, "the trigger logs $count line(s) like $re") or diag(join "\n", @m);
        $allowed{$_} = 1 for @m;
    }
    my @backoff = grep { / restarting (?:worker|prototype) in / } @lines;
    is(scalar @backoff, $cost->{backoff}, "$cost->{backoff} \"restarting ... in\" line(s): the trigger's only")
        or diag(join "\n", @backoff);
    my @loud = grep { /^\S+ (?:warn|error|alert) / && !$allowed{$_} } @lines;
    ok(!@loud, 'no warn, error or alert line but the trigger\'s') or diag(join "\n", @loud);
    my @unexpected = grep { / worker (?:exited with|killed by|ended with) .*pool=p / && !$allowed{$_} } @lines;
    ok(!@unexpected, 'every exit but the trigger\'s is "worker stopped"') or diag(join "\n", @unexpected);
    my @must_stop = $want{replaced} ? ($target // ()) : ($want{renewed} || $want{stopped} || $want{reloaded}) ? keys %{ $ctx{live} } : ();
    for my $pid (sort { $a <=> $b } @must_stop) {
        ok(grep({ / info worker stopped \(.*\) pool=p worker=\d+ pid=$pid$/ } @lines), "pid $pid (at the call): \"worker stopped (...)\"")
            or diag(join "\n", grep { / pid=$pid$/ } @lines);
    }
    if ($act eq 'reload') {
        my $after = substr $t->log, $act_at;
        like($after, qr/ info reload requested\n(?:.*\n)*?.* info reload done: 0 added, 1 changed, 0 removed, 0 unchanged$/m,
             'the reload comes after the call and changes the pool');
    }
    $t->check_invariants;
}

for my $row (@ROWS) {
    my ($event, $trigger, $action, @end) = @$row;
    my $name = "$event: $action ($trigger) -> @end";
    if ($trigger eq 'oom' && !$have_memory) {
        SKIP: {
            skip "$name: no OOM kill can be provoked here: the cgroup v2 hierarchy at $mount offers no memory "
               . "controller (cgroup.controllers: " . ($controllers || 'none') . "); the VM suite (t/vm/006-oom.t) covers OOM", 1;
        }
        next;
    }
    subtest $name => sub { scenario($event, $trigger, $action, @end) };
}

CorralTest->done;
