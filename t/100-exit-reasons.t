#!/usr/bin/perl
# Exit reasons: every worker_exited event carries `reason`, and status
# gives the last exit's as last_exit's reason. A plugin records each
# worker_exited (pool, worker, reason) to a file; each reason is brought
# about and seen:
#   crashed    a worker killed with KILL by someone else than corral
#   requested  `corralctl restart POOL/ID`, `corralctl signal POOL/ID KILL`,
#              a scale down, `corralctl stop POOL`
#   exited     a worker exits with status 0 on its own
#   watchdog   a worker that never sends WATCHDOG=1
#   reload     a reload with a changed definition replaces the workers
#   oom        a worker past its memory_max (needs the memory controller)
#   stopping   corrald stops

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;

my $mount = CorralTest::cgroup_mount() // '?';
my $have_memory = grep { $_ eq 'memory' } split ' ', (CorralTest::slurp("$mount/cgroup.controllers") // '');

sub config {
    my ($gen) = @_;
    my $oom = !$have_memory ? '' : <<'EOF';
pool "m" {
  command = { "/bin/sh", "-c", "while [ ! -e %TMP%/oom.$$ ]; do /bin/sleep 0.05; done; /usr/bin/head -c 300M /dev/zero | /usr/bin/tail > /dev/null" },
  worker_limits = { memory_max = "32M", memory_swap_max = 0 },
  backoff = { initial = "10ms", max = "50ms" }, crash_limit = { failures = 0 }, start_window = "0s",
}
EOF
    return <<"EOF" . $oom;
plugin "rec" { file = "%TMP%/events" }
local quick = { initial = "10ms", max = "50ms" }
pool "c" { command = "/bin/sleep 1000", workers = 3, backoff = quick, start_window = "0s" }
pool "x" {
  command = { "/bin/sh", "-c", "while [ ! -e %TMP%/exit.\$\$ ]; do /bin/sleep 0.05; done; exit 0" },
  backoff = quick, start_window = "0s",
}
pool "r" { command = "/bin/sleep 100$gen", backoff = quick, start_window = "0s" }
EOF
}

my $t = CorralTest->new(config => config(1));
$t->write_file('plugins/rec.lua', <<'EOF');
local o = ...
corral.on("worker_exited", function(ev)
  local f = assert(io.open(o.file, "a"))
  f:write(("%s %d %s\n"):format(ev.pool, ev.worker, tostring(ev.reason)))
  f:close()
end)
EOF
$t->start;
$t->wait_control;

sub ready {
    my ($pool, $n) = @_;
    $t->wait_for(sub { my $p = ($t->status || {})->{$pool}; $p && $p->{state} eq 'running' && $p->{ready} == $n },
                 15, "$pool: $n ready");
}

sub pid_of {
    my ($pool, $id) = @_;
    my ($w) = grep { $_->{id} == $id } @{ (($t->status || {})->{$pool} || {})->{workers} || [] };
    return $w && $w->{pid};
}

# Waits for a "POOL ID REASON" line in the events file.
sub seen {
    my ($pool, $id, $reason, $what) = @_;
    $t->wait_for(sub { grep { $_ eq "$pool $id $reason" } $t->file_lines('events') }, 15,
                 "$what: worker_exited of $pool/$id with reason $reason");
}

sub ctl_ok {
    my $r = $t->ctl(@_);
    is($r->{code}, 0, "corralctl @_") or diag("out: $r->{out}\nerr: $r->{err}");
}

ready('c', 3);
ready('x', 1);
ready('r', 1);

kill 'KILL', pid_of('c', 1);
seen('c', 1, 'crashed', 'kill -9 from outside');
ready('c', 3);
my ($w1) = grep { $_->{id} == 1 } @{ $t->status->{c}{workers} };
is($w1->{last_exit}{reason}, 'crashed', 'status: last_exit reason of c/1 is crashed');
like($t->ctl('status', 'c')->{out}, qr/ crashed: killed by signal 9 \(KILL\)/, 'status text: the reason before the last exit');

ctl_ok('restart', 'c/2');
seen('c', 2, 'requested', 'restart POOL/ID');
ready('c', 3);
ctl_ok('signal', 'c/3', 'KILL');
seen('c', 3, 'requested', 'signal POOL/ID KILL');
ready('c', 3);
ctl_ok('scale', 'c', 2);
$t->wait_for(sub { 2 == grep { $_ eq 'c 3 requested' } $t->file_lines('events') }, 15, 'scale down: c/3 requested');

my $x = pid_of('x', 1);
$t->write_file("exit.$x", '');
seen('x', 1, 'exited', 'a clean exit nobody asked for');

# the watchdog: a pool added by the reload, never sending WATCHDOG=1
$t->write_config(config(2) . <<'EOF');
pool "w" { command = "/bin/sleep 1000", watchdog = "200ms", backoff = { initial = "1s" }, start_window = "0s" }
EOF
$t->reload;
seen('r', 1, 'reload', 'reload with a changed definition');
seen('w', 1, 'watchdog', 'no WATCHDOG=1');

SKIP: {
    skip "no memory controller at $mount: no OOM kill can be provoked", 1 unless $have_memory;
    ready('m', 1);
    my $m = pid_of('m', 1);
    $t->write_file("oom.$m", '');
    seen('m', 1, 'oom', 'past memory_max');
}

ctl_ok('stop', 'x');
seen('x', 1, 'requested', 'stop POOL');

ready('c', 3);    # the reload undid the scale
is($t->stop, 0, 'corrald stops');
seen('c', $_, 'stopping', 'corrald stopping') for 1 .. 3;
my %reasons = map { (split ' ')[2] => 1 } $t->file_lines('events');
ok(!$reasons{nil}, 'every worker_exited had a reason');

$t->done;
