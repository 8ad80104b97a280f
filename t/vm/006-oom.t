#!/usr/bin/perl
# A worker that allocates past worker_limits memory_max = "64M" is killed
# by the kernel's OOM killer inside its own cgroup (memory.oom.group: with
# everything it started), corrald says so as its own event (log line,
# on("oom") in a plugin, the status' last exit, in --json an object with
# oom = true and reason "oom"), the worker is replaced,
# and the pool's other worker is untouched.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;

my $UNIT = $CorralVM::UNIT;
my $CG = $CorralVM::UNIT_CG;
my $DIR = test_dir('oom');

# Worker 1 allocates once (tail keeps all of a line: /dev/zero has no
# newline) and, as its replacement, just sleeps; worker 2 sleeps.
my $script = <<"EOF";
if [ "\$CORRAL_WORKER" = 1 ] && [ ! -e $DIR/allocated ]; then
  : > $DIR/allocated
  sleep 1
  echo \$\$ > $DIR/hog.pid
  head -c 300M /dev/zero | tail > /dev/null
  echo survived > $DIR/survived
fi
exec sleep 4001
EOF
my $config = corral_lua(
    [ pool => 'hog', command => [ '/bin/sh', '-c', $script ], workers => 2,
      worker_limits => { memory_max => '64M', memory_swap_max => 0 } ],
    [ plugin => 'oomwatch', file => "$DIR/events" ],
);
my $plugin = <<'EOF';
local options = ...
local function record(kind, ev)
  local f = assert(io.open(options.file, "a"))
  f:write(("%s pool=%s worker=%s pid=%s oom=%s reason=%s\n"):format(kind, ev.pool, tostring(ev.worker),
    tostring(ev.pid), tostring(ev.oom), tostring(ev.reason)))
  f:close()
end
corral.on("oom", function(ev) record("oom", ev) end)
corral.on("worker_exited", function(ev) record("exited", ev) end)
EOF

my $cursor = journal_cursor();
my ($rc, $out) = corral_start($config, oomwatch => $plugin);
is($rc, 0, 'systemctl start corral') or diag($out);
ok(wait_until(sub { -s "$DIR/hog.pid" }, 30), 'worker 1 starts allocating');
chomp(my $hog = slurp("$DIR/hog.pid") // '');
my %w = worker_pids_by_id('hog');
note("worker 1 pid $hog; pids: " . join(' ', map { "$_=$w{$_}" } sort keys %w));

my $main = unit_props($UNIT, 'MainPID')->{MainPID};
my @oom;
ok(wait_until(sub {
    @oom = journal_find($UNIT, $cursor, SYSLOG_IDENTIFIER => 'corrald', MESSAGE => qr/OOM killer/);
}, 60), 'journal: corrald reports an OOM kill');
like($oom[0]{MESSAGE} // '', qr/^worker killed by the kernel's OOM killer \(killed by signal 9 \(KILL\)\): its cgroup ran out of memory$/,
     "the message: worker killed by the kernel's OOM killer");
is($oom[0]{CORRAL_POOL}, 'hog', 'CORRAL_POOL=hog');
is($oom[0]{CORRAL_WORKER}, 1, 'CORRAL_WORKER=1');
is($oom[0]{CORRAL_PID}, $hog, "CORRAL_PID=$hog (the worker's main process)");
is($oom[0]{PRIORITY}, 4, 'at priority warning');
ok(!-e "$DIR/survived", 'the allocation did not finish');
ok(!pid_alive($hog), 'the worker is dead');

my $events;
ok(wait_until(sub { ($events = slurp("$DIR/events") // '') =~ /^oom / }, 20), 'the plugin\'s on("oom") ran')
    or diag($events);
like($events, qr/^oom pool=hog worker=1 pid=$hog oom=true reason=oom$/m, 'on("oom"): pool, worker, pid, oom = true, reason oom');
like($events, qr/^exited pool=hog worker=1 pid=$hog oom=true reason=oom$/m, 'on("worker_exited") says oom = true and reason oom too');
unlike($events, qr/worker=2/, 'no event for worker 2');

# The replacement may get another id: worker 1's id stays taken until its
# cgroup is empty, and an OOM-killed cgroup can take seconds to empty.
my (%now, $new, $new_id);
ok(wait_until(sub {
    %now = worker_pids_by_id('hog');
    ($new_id) = grep { $now{$_} != $hog && $now{$_} != $w{2} } keys %now;
    $new = defined $new_id ? $now{$new_id} : undef;
    $new && keys(%now) == 2;
}, 30), 'worker 1 is replaced (a new pid)') or diag(describe_pids(pool_workers('hog')));
$new_id //= 0;
note("the replacement: worker $new_id, pid " . ($new // '?'));
is($now{2}, $w{2}, 'worker 2 keeps running: the OOM kill stayed in worker 1\'s cgroup');
is(cgroup_of($new // 0), "$CG/hog/$new_id", "the replacement is in hog/$new_id");
is(cg_read("$CG/hog/$new_id", 'memory.max'), 64 * 1024 * 1024, 'with memory.max 64M');
is(cg_read("$CG/hog/$new_id", 'memory.oom.group'), 1, 'and memory.oom.group 1');
ok(wait_until(sub { !-d "$CorralVM::CGROOT$CG/hog/1" || $new_id == 1 }, 30), 'the OOM-killed cgroup hog/1 is removed once empty')
    or diag(describe_pids(cgroup_pids("$CG/hog/1")));
ok(wait_until(sub { (unit_props($UNIT, 'StatusText')->{StatusText} // '') eq '1 pool, 2/2 workers ready' }, 20),
   'StatusText: 1 pool, 2/2 workers ready');

# the pool's cgroup counts the kill; corralctl shows how worker 1 last ended
my $ev = cg_keys("$CG/hog", 'memory.events');
ok(($ev->{oom_kill} // 0) >= 1 || ($ev->{oom_group_kill} // 0) >= 1, 'hog/memory.events counts the OOM kill')
    or diag(cg_read("$CG/hog", 'memory.events'));
($rc, $out) = corralctl('status', 'hog');
is($rc, 0, 'corralctl status hog') or diag($out);
like($out, qr/^hog\s+running\s+2\/2\s+2\s+2\s+1$/m, 'corralctl status: hog running 2/2, 1 restart') or diag($out);
SKIP: {
    skip('the replacement has another id: its line shows no last exit', 1) unless $new_id == 1;
    like($out, qr/^\s+1\s+$new\s+ready\s.*OOM-killed, killed by signal 9 \(KILL\)\s*$/m,
         'corralctl status: worker 1 last ended OOM-killed') or diag($out);
}
# --json: the exit is an object that says oom, with the reason
($rc, $out) = corralctl('--json', 'status', 'hog');
is($rc, 0, 'corralctl --json status hog') or diag($out);
require JSON::PP;
my $st = eval { JSON::PP::decode_json($out) } // {};
my ($hogst) = grep { $_->{name} eq 'hog' } @{ $st->{pools} // [] };
my ($recent) = grep { ($_->{id} // 0) == 1 } @{ $hogst->{recent_exits} // [] };
ok($recent && JSON::PP::is_bool($recent->{oom}) && $recent->{oom}, 'JSON recent_exits: worker 1, oom true')
    or diag($out);
is($recent && $recent->{reason}, 'oom', 'JSON recent_exits: reason "oom"');
is($recent && $recent->{signal}, 9, 'JSON recent_exits: signal 9');
# worker 1's last_exit: on the replacement's row when it took id 1, on a
# vacant row while id 1 is still taken by the OOM-killed cgroup
my ($row) = grep { ($_->{id} // 0) == 1 } @{ $hogst->{workers} // [] }, @{ $hogst->{vacant} // [] };
SKIP: {
    skip('no row for id 1 (the replacement has another id, and id 1 is free)', 2) unless $row;
    ok(ref $row->{last_exit} eq 'HASH' && $row->{last_exit}{oom}, 'JSON: worker 1\'s last_exit.oom is true')
        or diag($out);
    is(ref $row->{last_exit} eq 'HASH' && $row->{last_exit}{reason}, 'oom', 'JSON: worker 1\'s last_exit.reason is "oom"');
}
# systemd sees the OOM kill in its unit too: it must not stop corral for it
note('OOMPolicy=' . (unit_props($UNIT, 'OOMPolicy')->{OOMPolicy} // '?'));
stays(sub {
    my $p = unit_props($UNIT, qw(ActiveState MainPID));
    $p->{ActiveState} eq 'active' && $p->{MainPID} == $main;
}, 2, 'corral.service stays active, with the same corrald');

($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'systemctl stop') or diag($out);

done();
