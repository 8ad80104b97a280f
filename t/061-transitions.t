#!/usr/bin/perl
# State transitions: every allowed transition of a worker and of a pool is
# provoked at least once on a real corrald (run with -v), and each is
# checked for its debug line:
#
#   TIME debug transition: worker FROM -> TO pool=P worker=N pid=N
#   TIME debug transition: pool FROM -> TO pool=P
#
# (pid= is left out while a worker has none). An illegal transition is an
# alert, which the invariants after the test catch.
#
# It is data-driven: @SCENARIOS run in order on one corrald, each provoking
# state changes and checking through `corralctl status` (or, where a state
# passes too fast to be seen, the log) that they happened; @EXPECT says
# which scenario provokes which transition in which pool; each row is a
# test for its line. At the end, a summary: every transition in the allowed
# table was logged at least once, and nothing outside it was.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive find_program);
use Test::More;
use Time::HiRes qw(time);

my $PY = find_program('python3');
plan skip_all => 'python3 not installed (Debian package python3)' unless $PY;

# The contract: what may follow what.
my %ALLOWED = (
    worker => {
        spawning => [qw(starting stopping exited)],
        starting => [qw(ready stopping exited)],
        ready    => [qw(stopping exited)],
        stopping => [qw(exited)],
    },
    pool => {
        starting => [qw(running failed stopped removed)],
        running  => [qw(starting failed stopped removed)],
        failed   => [qw(starting stopped removed)],
        stopped  => [qw(starting removed)],
        removed  => [qw(starting)],
    },
);
my @ALLOWED;    # "worker spawning -> starting", ...
for my $kind (qw(worker pool)) {
    for my $from (sort keys %{ $ALLOWED{$kind} }) {
        push @ALLOWED, map { "$kind $from -> $_" } @{ $ALLOWED{$kind}{$from} };
    }
}

# Which scenario provokes which transition, in which pool.
my @EXPECT = (
    # kind, from, to, pool, scenario
    [ worker => spawning => starting => 'run',     'start' ],
    [ worker => starting => ready    => 'run',     'start' ],
    [ pool   => starting => running  => 'run',     'start' ],
    [ worker => starting => exited   => 'crash',   'start' ],
    [ pool   => starting => failed   => 'crash',   'start' ],
    [ worker => ready    => exited   => 'run',     'kill a ready worker' ],
    [ pool   => running  => starting => 'run',     'kill a ready worker' ],
    [ worker => ready    => stopping => 'run',     'stop a running pool' ],
    [ worker => stopping => exited   => 'run',     'stop a running pool' ],
    [ pool   => running  => stopped  => 'run',     'stop a running pool' ],
    [ pool   => stopped  => starting => 'run',     'start a stopped pool' ],
    [ worker => starting => stopping => 'slow',    'stop a starting pool' ],
    [ pool   => starting => stopped  => 'slow',    'stop a starting pool' ],
    [ worker => starting => stopping => 'note',    'restart a starting worker' ],
    [ worker => starting => ready    => 'note',    'READY=1' ],
    [ pool   => failed   => starting => 'crash',   'start a failed pool' ],
    [ pool   => starting => failed   => 'crash',   'start a failed pool' ],
    [ pool   => failed   => stopped  => 'crash',   'stop a failed pool' ],
    [ pool   => running  => failed   => 'fragile', 'kill the prototype of a running pool' ],
    [ worker => spawning => stopping => 'spawn',   'scale down while spawns are unanswered' ],
    [ worker => stopping => exited   => 'spawn',   'scale down while spawns are unanswered' ],
    [ worker => spawning => exited   => 'spawn',   'kill the prototype with a spawn unanswered' ],
    [ pool   => running  => removed  => 'run',     'reload without six pools' ],
    [ pool   => running  => removed  => 'drain',   'reload without six pools' ],
    [ pool   => starting => removed  => 'gone',    'reload without six pools' ],
    [ pool   => stopped  => removed  => 'slow',    'reload without six pools' ],
    [ pool   => failed   => removed  => 'crash',   'reload without six pools' ],
    [ pool   => removed  => starting => 'drain',   'reload with a draining pool back' ],
);

my $COMMON = <<'EOF';
local inherit = { "CORRAL_TEST_DIR" }
pool "note" {
  -- ready = "notify": READY=1 once TMP/go.note exists
  command = { "%PY%", "%TMP%/note.py" }, ready = "notify", env_inherit = inherit,
}
pool "spawn" { command = "/bin/sleep 1000", env_inherit = inherit }
EOF
my $REMOVED = <<'EOF';
pool "run" { command = "/bin/sleep 1000", env_inherit = inherit }
-- never ready
pool "slow" { command = "/bin/sleep 1000", ready = "notify", env_inherit = inherit }
pool "gone" { command = "/bin/sleep 1000", ready = "notify", env_inherit = inherit }
-- exits before it is ready: fails at the second exit
pool "crash" {
  command = { "/bin/sh", "-c", "exit 1" }, ready = "notify",
  backoff = { initial = "10ms", max = "10ms" },
  crash_limit = { failures = 2, interval = "60s" },
  env_inherit = inherit,
}
-- fails at the first start failure: its prototype's death, within a
-- start window that does not end while the test runs
pool "fragile" {
  command = "/bin/sleep 1000",
  start_window = "1h",
  crash_limit = { failures = 1, interval = "60s" },
  env_inherit = inherit,
}
EOF
my $DRAIN = <<'EOF';
-- ignores its stop signal: drains until killed
pool "drain" {
  command = { "/bin/sh", "-c", "trap '' TERM; exec /bin/sleep 1000" },
  stop_timeout = "60s", env_inherit = inherit,
}
EOF
my $DRAIN_BACK = <<'EOF';
pool "drain" { command = "/bin/sleep 1000", env_inherit = inherit }
EOF
s/%PY%/$PY/g for $COMMON;

my $t = CorralTest->new(config => $COMMON . $REMOVED . $DRAIN, env => { NOTIFY_SOCKET => undef });
$t->write_file('note.py', <<'EOF');
import os, socket, time
go = os.environ["CORRAL_TEST_DIR"] + "/go.note"
while not os.path.exists(go):
    time.sleep(0.02)
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1", addr)
s.close()
time.sleep(1000)
EOF

# --- looking at states ---------------------------------------------------------

# "ID:STATE ..." of a pool's workers in a status answer, by id.
sub wstates {
    my ($st, $pool) = @_;
    my $p = $st && $st->{$pool} or return '';
    return join ' ', map { "$_->{id}:$_->{state}" } sort { $a->{id} <=> $b->{id} } @{ $p->{workers} };
}

# A test: within 10 s, `status` says $pool is $state ('(absent)': not
# listed) and, unless undef, its workers are $workers ("ID:STATE ...").
sub wait_pool {
    my ($pool, $state, $workers, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $seen = '';
    my $ok = $t->poll(sub {
        my $st = $t->status;
        my $ps = !$st ? '(no answer)' : $st->{$pool} ? $st->{$pool}{state} : '(absent)';
        my $ws = wstates($st, $pool);
        $seen = "$ps [$ws]";
        return $ps eq $state && (!defined $workers || $ws eq $workers);
    }, 10);
    ok($ok, "$pool: $state" . (defined $workers ? " [$workers]" : '') . ($name ? ": $name" : ''))
        or do { diag("last seen: $pool $seen"); $t->diag_tail };
    return $ok;
}

# The pid of worker $id of $pool in a status answer.
sub worker_pid {
    my ($pool, $id) = @_;
    my $st = $t->status or return undef;
    my ($w) = grep { $_->{id} == $id } @{ $st->{$pool}{workers} || [] };
    return $w ? $w->{pid} : undef;
}

sub ctl_ok {
    my (@args) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = $t->ctl(@args);
    is($r->{code}, 0, "corralctl @args") or diag("out: $r->{out}\nerr: $r->{err}");
    return $r;
}

# --- the scenarios, in order ------------------------------------------------------

my $drain_pid;    # drain's first worker
my %mark;    # scenario => log offset where it began
my @SCENARIOS = (
    [ 'start' => sub {
        $t->start;
        $t->wait_control;
        wait_pool('run', 'running', '1:ready');
        wait_pool('note', 'starting', '1:starting', 'waits for READY=1');
        wait_pool('slow', 'starting', '1:starting', 'never ready');
        wait_pool('gone', 'starting', '1:starting', 'never ready');
        wait_pool('fragile', 'running', '1:ready');
        wait_pool('drain', 'running', '1:ready');
        wait_pool('spawn', 'running', '1:ready');
        $t->wait_log(qr/ error pool failed: 2 start failures within 60s, .* pool=crash$/,
                     name => 'crash: its worker exits before ready, twice: failed');
        wait_pool('crash', 'failed', '');
    } ],
    [ 'kill a ready worker' => sub {
        my $pid = worker_pid('run', 1) or return fail('run: worker 1 has a pid');
        kill 'KILL', $pid;
        $t->wait_log(qr/ warn worker killed by signal 9 \(KILL\) pool=run worker=1 pid=$pid$/,
                     since => $mark{$_[0]}, name => 'run: the ready worker exits (KILL)');
        $t->wait_log(qr/ info pool ready \(1\/1 workers\) pool=run$/, since => $mark{$_[0]},
                     name => 'run: its pool was not ready, then ready again with the replacement');
        wait_pool('run', 'running', '1:ready');
    } ],
    [ 'stop a running pool' => sub {
        ctl_ok('stop', 'run');
        wait_pool('run', 'stopped', '', 'its ready worker stopped and gone');
        $t->wait_log(qr/ info worker stopped \(killed by signal 15 \(TERM\)\) pool=run worker=1 pid=\d+$/,
                     since => $mark{$_[0]});
    } ],
    [ 'start a stopped pool' => sub {
        ctl_ok('start', 'run');
        wait_pool('run', 'running', '1:ready');
    } ],
    [ 'stop a starting pool' => sub {
        ctl_ok('stop', 'slow');
        wait_pool('slow', 'stopped', '', 'its starting worker stopped and gone');
        $t->wait_log(qr/ info worker stopped \(killed by signal 15 \(TERM\)\) pool=slow worker=1 pid=\d+$/,
                     since => $mark{$_[0]});
    } ],
    [ 'restart a starting worker' => sub {
        ctl_ok('restart', 'note/1');
        $t->wait_log(qr/ info worker stopped \(killed by signal 15 \(TERM\)\) pool=note worker=1 pid=\d+$/,
                     since => $mark{$_[0]}, name => 'note: worker 1 stopped before it was ready');
        wait_pool('note', 'starting', '1:starting', 'its replacement, with its id, waits for READY=1');
    } ],
    [ 'READY=1' => sub {
        $t->write_file('go.note', '');
        wait_pool('note', 'running', '1:ready');
    } ],
    [ 'start a failed pool' => sub {
        ctl_ok('start', 'crash');
        $t->wait_log(qr/ error pool failed: 2 start failures within 60s, .* pool=crash$/,
                     since => $mark{$_[0]}, name => 'crash: started, failed again');
        wait_pool('crash', 'failed', '');
    } ],
    [ 'stop a failed pool' => sub {
        ctl_ok('stop', 'crash');
        wait_pool('crash', 'stopped', '');
    } ],
    [ 'start it again, failed again' => sub {
        ctl_ok('start', 'crash');
        $t->wait_log(qr/ error pool failed: 2 start failures within 60s, .* pool=crash$/,
                     since => $mark{$_[0]}, name => 'crash: started from stopped, failed again');
        wait_pool('crash', 'failed', '');
    } ],
    [ 'kill the prototype of a running pool' => sub {
        my $proto = $t->prototype_pid('fragile') or return fail('fragile: prototype found');
        kill 'KILL', $proto;
        $t->wait_log(qr/ error pool failed: 1 start failure within 60s, .* pool=fragile$/,
                     since => $mark{$_[0]}, name => 'fragile: its prototype\'s death fails it at once');
        wait_pool('fragile', 'failed', '1:ready', 'its worker runs on, still ready');
    } ],
    [ 'scale down while spawns are unanswered' => sub {
        my $proto = $t->prototype_pid('spawn') or return fail('spawn: prototype found');
        kill 'STOP', $proto;
        ctl_ok('scale', 'spawn', 3);
        wait_pool('spawn', 'starting', '1:ready 2:spawning 3:spawning', 'the prototype answers no spawn');
        ctl_ok('scale', 'spawn', 2);
        wait_pool('spawn', 'starting', '1:ready 2:spawning 3:stopping', 'the newest, unborn, is to stop');
        kill 'CONT', $proto;
        $t->wait_log(qr/ info worker stopped \(.*\) pool=spawn worker=3 pid=\d+$/, since => $mark{$_[0]},
                     name => 'spawn: worker 3, born to a prototype woken up, is stopped at once');
        wait_pool('spawn', 'running', '1:ready 2:ready');
    } ],
    [ 'kill the prototype with a spawn unanswered' => sub {
        my $m = $t->mark;
        my $proto = $t->prototype_pid('spawn') or return fail('spawn: prototype found');
        kill 'STOP', $proto;
        ctl_ok('scale', 'spawn', 3);
        wait_pool('spawn', 'starting', '1:ready 2:ready 3:spawning', 'the prototype answers no spawn');
        kill 'KILL', $proto;
        my ($died) = $t->wait_log(qr/ warn prototype exited unexpectedly \(killed by signal 9 \(KILL\)\) pool=spawn pid=$proto$/,
                                  since => $m);
        wait_pool('spawn', 'running', '1:ready 2:ready 3:ready', 'a new prototype, a new worker 3');
        my @events = $t->log_lines(qr/ (worker started pool=spawn worker=3|prototype exited unexpectedly .* pool=spawn) /, $m);
        like($events[0] // '', qr/prototype exited/,
             'spawn: the first worker 3 was never born: given up when its prototype died')
            or diag(join "\n", @events);
    } ],
    [ 'reload without six pools' => sub {
        my $drain = worker_pid('drain', 1) or return fail('drain: worker 1 has a pid');
        $drain_pid = $drain;
        $t->write_config($COMMON);
        ctl_ok('reload');
        $t->wait_log(qr/ info reload done: 0 added, 0 changed, 6 removed, 2 unchanged/, since => $mark{$_[0]});
        wait_pool($_, '(absent)', undef, 'removed') for qw(run slow gone crash fragile drain);
        $t->wait_log(qr/ info pool removed pool=$_$/, since => $mark{$_[0]}) for qw(run slow gone crash fragile);
        ok(pid_alive($drain), 'drain: its worker ignores TERM: the pool is still draining');
    } ],
    [ 'reload with a draining pool back' => sub {
        my $drain = $drain_pid or return fail('drain: worker known');
        $t->write_config($COMMON . $DRAIN_BACK);
        ctl_ok('reload');
        $t->wait_log(qr/ info reload done: 0 added, 1 changed, 0 removed, 2 unchanged/, since => $mark{$_[0]},
                     name => 'drain: back while it drained: the same pool, changed, not a new one');
        ok(!$t->log_lines(qr/ info pool removed pool=drain$/), 'drain: it was never done removing');
        ok(pid_alive($drain), 'drain: the old worker still drains');
        wait_pool('drain', 'running', '1:stopping 2:ready', 'a surge worker (id 2) beside the draining one');
        kill 'KILL', $drain;
        wait_pool('drain', 'running', '1:ready', 'the draining worker killed: id 1 back, the surge worker gone');
    } ],
);

for my $s (@SCENARIOS) {
    my ($name, $code) = @$s;
    $mark{$name} = $t->mark;
    note("--- $name");
    $code->($name);
}

# --- the lines -------------------------------------------------------------------

my $TS = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d /;
my $WHO = qr/ pool=([A-Za-z0-9_-]+)(?: worker=\d+)?(?: pid=\d+)?$/;

# A transition's debug line for $pool since $since.
sub transition_re {
    my ($kind, $from, $to, $pool) = @_;
    return $kind eq 'worker'
        ? qr/${TS}debug transition: worker \Q$from\E -> \Q$to\E pool=\Q$pool\E worker=\d+(?: pid=\d+)?$/
        : qr/${TS}debug transition: pool \Q$from\E -> \Q$to\E pool=\Q$pool\E$/;
}

my %known = map { $_ => 1 } @ALLOWED;
my %scen = map { $_->[0] => 1 } @SCENARIOS;
for my $e (@EXPECT) {
    my ($kind, $from, $to, $pool, $scenario) = @$e;
    die "test bug: $kind $from -> $to is not in the allowed table\n" unless $known{"$kind $from -> $to"};
    die "test bug: no scenario '$scenario'\n" unless $scen{$scenario};
}
my %provoked = map { ("$_->[0] $_->[1] -> $_->[2]" => 1) } @EXPECT;
is_deeply([ grep { !$provoked{$_} } @ALLOWED ], [], 'every allowed transition has a scenario here');

# Every line is in the log by now, if the daemon logs it: it logs a
# transition as it makes it, before `status` can show the new state. A few
# seconds for all of them at most, in case some come just after.
my $deadline = time + 3;
for my $e (@EXPECT) {
    my ($kind, $from, $to, $pool, $scenario) = @$e;
    my $re = transition_re($kind, $from, $to, $pool);
    my $left = $deadline - time;
    my $found = $t->poll(sub { scalar $t->log_lines($re, $mark{$scenario}) }, $left > 0 ? $left : 0);
    ok($found, "$kind $from -> $to logged in pool $pool ($scenario)")
        or diag("no line matching $re after the scenario began");
}

# The summary: every allowed transition seen at least once, and none else.
my (%seen, @unknown);
for my $line ($t->log_lines(qr/ debug transition: /)) {
    if ($line =~ /${TS}debug transition: (worker|pool) (\S+) -> (\S+)$WHO/) {
        my $tr = "$1 $2 -> $3";
        $seen{$tr}++;
        push @unknown, $line unless $known{$tr};
    } else {
        push @unknown, $line;
    }
}
my @missing = grep { !$seen{$_} } @ALLOWED;
ok(!@missing, sprintf('every allowed transition was logged at least once (%d of %d)',
                      scalar(@ALLOWED) - @missing, scalar @ALLOWED))
    or diag(join "\n", 'never logged:', map { "  $_" } @missing);
ok(!@unknown, 'every transition line logged is well formed and allowed')
    or diag(join "\n", 'not in the allowed table, or malformed:', map { "  $_" } @unknown);
note(join "\n", 'transitions logged (count):', map { "  $_: " . ($seen{$_} // 0) } @ALLOWED);

$t->done;
