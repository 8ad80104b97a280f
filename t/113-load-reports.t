#!/usr/bin/perl
# Load reports: workers say BUSY=1, IDLE=1 and REQUESTS=N (N more served)
# on their NOTIFY_SOCKET, with sd_notify() from C and with systemd-notify
# from a shell (its own process, in the worker's cgroup, counts for the
# worker), or call corral.busy(), corral.idle(), corral.request_done([n])
# in a Lua worker. corrald keeps each worker's state and count and the
# pool's sums: status --json and the table show them, corral.stats() gives
# them to plugins (and the shipped pool-stats logs them). A worker that stops leaves the pool's busy/idle sums,
# not its request total. A flood of BUSY/IDLE does not stop corrald from
# answering, nor does a Lua worker's on its channel; what the dropped
# datagrams said is held and passed on, so every REQUESTS=1 counts and
# the last state is right.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(find_program);
use Time::HiRes qw(time);
use Test::More;

my $PY = find_program('python3');
my $SDNOTIFY = find_program('systemd-notify');
my $CC = find_program('cc');
plan skip_all => 'python3 not installed (Debian package python3)' unless $PY;
plan skip_all => 'systemd-notify not installed (Debian package systemd)' unless $SDNOTIFY;
plan skip_all => 'no C compiler' unless $CC;

my $inherit = 'env_inherit = { "CORRAL_TEST_DIR" }';

my $t = CorralTest->new(config => <<"EOF");
plugin "load" {}
plugin "pool-stats" { interval = 1 }
pool "c" {
  command = { "/bin/sh", "-c", "exec %TMP%/sdn BUSY=1 REQUESTS=3 REQUESTS=4,IDLE=1 \$( [ \$CORRAL_WORKER = 1 ] && echo BUSY=1 )" },
  workers = 2, $inherit,
}
pool "sh" {
  command = { "/bin/sh", "-c", "$SDNOTIFY BUSY=1 REQUESTS=2 && $SDNOTIFY REQUESTS=3 && $SDNOTIFY IDLE=1 && touch %TMP%/sh.done && exec sleep 1000" },
  $inherit,
}
pool "lua" {
  ready = "lua", $inherit,
  start = function(w)
    corral.busy()
    corral.request_done()
    w:request_done(4)
    corral.request_done(0)
    local ok, err = pcall(corral.request_done, -1)
    corral.info("request_done(-1): " .. tostring(err))
    corral.idle()
    w:busy()
    corral.ready()
    while not corral.sleep(1000) do end
  end,
}
pool "flood" { command = { "$PY", "%TMP%/flood.py" }, $inherit }
pool "lflood" {
  $inherit,
  start = function(w)
    local d = os.getenv("CORRAL_TEST_DIR")
    while not io.open(d .. "/flood.go") do corral.sleep(0.02) end
    local n, stop = 0, corral.now() + 3
    while corral.now() < stop do
      corral.busy(); corral.idle(); corral.request_done()
      n = n + 1
    end
    local f = io.open(d .. "/lflood.sent", "w"); f:write(n); f:close()
    while not corral.sleep(1000) do end
  end,
}
EOF

# sd_notify() from C: each argument one datagram, ',' a newline
$t->write_file('sdn.c', <<'EOF');
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		for (char *p = argv[i]; *p; p++)
			if (*p == ',')
				*p = '\n';
		if (sd_notify(0, argv[i]) <= 0) {
			fprintf(stderr, "sd_notify failed\n");
			return 1;
		}
	}
	sd_notify(0, "STATUS=sent");
	for (;;)
		pause();
}
EOF
my $out = `$CC -o ${\$t->path('sdn')} ${\$t->path('sdn.c')} -lsystemd 2>&1`;
BAIL_OUT("cannot build against libsystemd: $out") if $?;

# a flood of BUSY/IDLE; then, until told to stop, its last word
$t->write_file('flood.py', <<'EOF');
import os, socket, time
D = os.environ["CORRAL_TEST_DIR"]
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(addr)
while not os.path.exists(D + "/flood.go"):
    time.sleep(0.02)
end = time.time() + 3
n = 0
while time.time() < end:
    s.send(b"BUSY=1" if n % 2 == 0 else b"IDLE=1\nREQUESTS=1")
    n += 1
open(D + "/flood.sent", "w").write("%d %d" % (n, n // 2))
while True:
    s.send(b"IDLE=1\nSTATUS=flood over")
    time.sleep(0.2)
EOF

# a plugin reads the load through corral.stats
$t->write_file('plugins/load.lua', <<'EOF');
local function dump(t)
  local keys, out = {}, {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "number" and v % 1 ~= 0 then v = "F" end  -- a duration
    out[#out + 1] = k .. "=" .. tostring(v)
  end
  return table.concat(out, " ")
end
corral.on("config", function()
  corral.every(0.1, function()
    local f = io.open(os.getenv("CORRAL_TEST_DIR") .. "/stats.go")
    if not f then return end
    f:close()
    local keep = { busy = 1, idle = 1, requests = 1, last_request_ago = 1, load = 1, load_for = 1 }
    local function only(t)
      local o = {}
      for k, v in pairs(t) do if keep[k] then o[k] = v end end
      return o
    end
    for _, p in ipairs { "c", "lua" } do
      corral.info("stats " .. p .. ": " .. dump(only(corral.stats(p))))
      corral.info("stats " .. p .. " 1: " .. dump(only(corral.stats(p, 1))))
    end
    os.remove(os.getenv("CORRAL_TEST_DIR") .. "/stats.go")
  end)
end)
EOF

$t->start;

sub pool_is {
    my ($st, $pool, $want, $name) = @_;
    my $p = $st->{$pool};
    is_deeply({ map { $_ => $p->{$_} } keys %$want }, $want, $name);
}
sub worker_of {
    my ($p, $id) = @_;
    my ($w) = grep { $_->{id} == $id } @{ $p->{workers} };
    return $w;
}
sub load_of {
    my ($w) = @_;
    return { map { $_ => $w->{$_} } qw(load requests) };
}

# ---- C, sd_notify() ----
$t->wait_for(sub {
    my $st = $t->status('c');
    my @w = @{ $st->{c}{workers} // [] };
    @w == 2 && !grep { ($_->{status} // '') ne 'sent' } @w;
}, 20, 'c: both workers sent their reports');
my $st = $t->status;
pool_is($st, 'c', { busy => 1, idle => 1, requests => 14 }, 'c: 1 busy, 1 idle, 3 + 4 requests each');
is_deeply(load_of(worker_of($st->{c}, 1)), { load => 'busy', requests => 7 }, 'c worker 1: busy (its last word), 7 requests');
is_deeply(load_of(worker_of($st->{c}, 2)), { load => 'idle', requests => 7 }, 'c worker 2: idle, 7 requests');
my $w1 = worker_of($st->{c}, 1);
ok(defined $w1->{load_for} && $w1->{load_for} >= 0 && $w1->{load_for} < 60, 'c worker 1: load_for in seconds');
ok(defined $w1->{last_request_ago} && $w1->{last_request_ago} >= 0, 'c worker 1: last_request_ago in seconds');
ok(defined $st->{c}{last_request_ago} && $st->{c}{last_request_ago} >= 0, 'c: the pool\'s last_request_ago');

# the table
my $r = $t->ctl('status', 'c');
like($r->{out}, qr/^  load: 1 busy, 1 idle, 14 requests, the last \S+ ago$/m, 'status c: the pool\'s load line');
like($r->{out}, qr/^\s+1 +\d+ ready .*  busy \S+, 7 requests; sent$/m, 'status c: worker 1\'s load before its STATUS');
like($r->{out}, qr/^\s+2 +\d+ ready .*  idle \S+, 7 requests; sent$/m, 'status c: worker 2\'s');

# ---- a shell, systemd-notify (its own pid, the worker's cgroup) ----
$t->wait_for(sub { -e $t->path('sh.done') }, 20, 'sh: systemd-notify sent');
$t->wait_for(sub { ($t->status('sh')->{sh}{requests} // 0) == 5 }, 10, 'sh: 2 + 3 requests counted');
$st = $t->status('sh');
pool_is($st, 'sh', { busy => 0, idle => 1, requests => 5 }, 'sh: idle, 5 requests');
is_deeply(load_of(worker_of($st->{sh}, 1)), { load => 'idle', requests => 5 }, 'sh worker 1: idle, 5 requests');

# ---- Lua ----
$t->wait_for(sub { ($t->status('lua')->{lua}{workers}[0]{state} // '') eq 'ready' }, 20, 'lua: ready');
$st = $t->status('lua');
pool_is($st, 'lua', { busy => 1, idle => 0, requests => 5 }, 'lua: busy, 1 + 4 requests');
is_deeply(load_of(worker_of($st->{lua}, 1)), { load => 'busy', requests => 5 }, 'lua worker 1: busy, 5 requests');
$t->wait_log(qr/ info request_done\(-1\): .*corral\.request_done: expected a whole number of requests/,
             name => 'corral.request_done(-1) is an error');

# ---- plugins: corral.stats ----
$t->write_file('stats.go', '');
$t->wait_for(sub { !-e $t->path('stats.go') }, 10, 'the plugin read the stats');
$t->wait_log(qr/ info stats c: busy=1 idle=1 last_request_ago=F requests=14$/, name => 'corral.stats(c): busy, idle, requests, last_request_ago');
$t->wait_log(qr/ info stats c 1: last_request_ago=F load=busy load_for=F requests=7$/, name => 'corral.stats(c, 1): load, load_for, requests, last_request_ago');
$t->wait_log(qr/ info stats lua 1: last_request_ago=F load=busy load_for=F requests=5$/, name => 'corral.stats(lua, 1)');

# ---- the shipped pool-stats logs it ----
$t->wait_log(qr/ info pool-stats: .*\bbusy=1 idle=1 requests=14 pool=c$/, name => 'pool-stats: busy, idle, requests of c');

# ---- a worker stopped: out of busy/idle, its requests stay counted ----
is($t->ctl('scale', 'c', '1')->{code}, 0, 'scale c 1');
$t->wait_for(sub { my $p = $t->status('c')->{c}; @{ $p->{workers} } == 1 }, 20, 'c: worker 2 gone');
pool_is($t->status, 'c', { busy => 1, idle => 0, requests => 14 }, 'c: worker 2 no longer idle; the total stays');

# ---- a flood ----
$t->write_file('flood.go', '');
my ($pings, $slow, $worst) = (0, 0, 0);
while (!-e $t->path('flood.sent') || !-e $t->path('lflood.sent')) {
    my $t0 = time;
    my $a = $t->request({ command => 'ping' }, timeout => 5);
    my $dt = time - $t0;
    $pings++;
    $worst = $dt if $dt > $worst;
    $slow++ if !$a || !$a->{ok} || $dt > 1;
    select undef, undef, undef, 0.05;
}
my ($sent, $served) = split ' ', CorralTest::slurp($t->path('flood.sent'));
note("flood: $sent datagrams in 3s; $pings pings, the slowest ${worst}s");
cmp_ok($sent, '>', 3000, 'the flood sent thousands of BUSY/IDLE');
cmp_ok($pings, '>=', 10, 'pinged during the flood');
is($slow, 0, 'every ping answered within 1s during the flood');
$t->wait_for(sub {
    my $w = $t->status('flood')->{flood}{workers}[0];
    ($w->{status} // '') eq 'flood over' && ($w->{load} // '') eq 'idle';
}, 20, 'flood: its last word (IDLE=1) heard after the flood');
$t->wait_log(qr/ warn notify: dropped \d+ datagrams of a process that sends more than 200 a second pid=\d+$/,
             name => 'the flood was over the rate: datagrams dropped');
$t->wait_for(sub { ($t->status('flood')->{flood}{requests} // 0) >= $served }, 10, 'flood: every request counted');
pool_is($t->status, 'flood', { busy => 0, idle => 1, requests => $served },
        "flood: the pool sums are right: $served requests, though most of the datagrams were dropped");

# a Lua worker's flood on its channel: every call counted
my $lsent = CorralTest::slurp($t->path('lflood.sent'));
note("lflood: $lsent times busy, idle, request_done in 3s");
cmp_ok($lsent, '>', 1000, 'lflood: thousands of corral.busy(), idle(), request_done()');
$t->wait_for(sub { ($t->status('lflood')->{lflood}{requests} // 0) >= $lsent }, 10, 'lflood: every request_done counted');
pool_is($t->status, 'lflood', { busy => 0, idle => 1, requests => $lsent }, "lflood: idle, $lsent requests");

$t->done;
