#!/usr/bin/perl
# Waiting connections: corral.on_connection(pool, name, fn, pause) calls
# fn when a connection waits, not accepted, in the backlog of a pool's
# listen socket. A pool of 0 workers starts one from the handler
# (corral.scale), and that worker accepts the waiting connection and
# answers it. A connection that nobody accepts keeps the socket
# readable: the handler runs once per pause, not in a loop, and
# corrald's CPU time stays low meanwhile. corral.cancel stops it, and a
# reload replaces it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(find_program);
use IO::Select;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use JSON::PP ();
use Test::More;
use Time::HiRes qw(time sleep);

my $PY = find_program('python3');
plan skip_all => 'python3 not installed (Debian package python3)' unless $PY;

my $t = CorralTest->new(config => <<"EOF");
pool "lazy" { command = { "$PY", "%TMP%/server.py" }, workers = 0, env_inherit = { "CORRAL_TEST_DIR" },
              listen = { http = "unix:%TMP%/lazy.sock" } }
pool "idle" { command = { "$PY", "%TMP%/server.py" }, workers = 0, env_inherit = { "CORRAL_TEST_DIR" },
              listen = { http = "unix:%TMP%/idle.sock" } }
plugin "ondemand" {}
EOF
# fd 3: the socket; each connection gets a line and is closed
$t->write_file('server.py', <<'EOF');
import os, socket
s = socket.socket(fileno=3)
s.setblocking(True)
while True:
    c, _ = s.accept()
    c.sendall(b"hello from %d\n" % os.getpid())
    c.close()
EOF
$t->write_file('plugins/ondemand.lua', <<'EOF');
local calls = 0
corral.on("config", function()
  -- on demand: the first connection starts a worker
  assert(corral.on_connection("lazy", "http", function(ev)
    corral.info(("ondemand: a connection waits on %s pool=%s"):format(ev.name, ev.pool))
    corral.scale(ev.pool, 1)
  end, 0.2))
  -- nobody accepts here: the handler only counts
  local id
  id = assert(corral.on_connection("idle", "http", function(ev)
    calls = calls + 1
    corral.info(("ondemand: idle call %d"):format(calls))
    if calls == 8 then corral.cancel(id) end
  end, 0.5))
  local ok, err = corral.on_connection("lazy", "nope", function() end)
  corral.info(("ondemand: unknown socket: %s %s"):format(tostring(ok), tostring(err)))
  ok, err = pcall(corral.on_connection, "lazy", "http", function() end, 0)
  corral.info(("ondemand: pause 0: %s"):format(tostring(err)))
end)
EOF
$t->start;
$t->wait_control;
$t->wait_log(qr/ondemand: unknown socket: nil pool lazy has no listen socket nope/, timeout => 10,
             name => 'an unknown listen socket: nil and why');
$t->wait_log(qr/ondemand: pause 0: .*pause must be a number of seconds from 0\.01 to 86400/, timeout => 10,
             name => 'a pause out of range: an error');
is($t->workers('lazy'), 0, 'lazy: no worker before a connection');
my @calls = $t->log_lines(qr/ondemand: (a connection waits|idle call)/);
is(scalar @calls, 0, 'no handler runs without a connection');

# corrald's CPU time (user + system), in seconds
sub cpu_time {
    my @f = split ' ', (CorralTest::slurp("/proc/$_[0]/stat") // '') =~ s/^.*\) //sr;
    return ($f[11] + $f[12]) / 100;    # utime, stime after the comm field, in ticks
}

# ---- on demand: the connection waits, a worker starts and answers it ---------------

my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $t->path('lazy.sock'));
ok($c, 'connected to lazy (the backlog takes it)') or diag("connect: $!");
$t->wait_log(qr/ondemand: a connection waits on http pool=lazy/, timeout => 10, name => 'the handler ran');
$t->wait_for(sub { $t->workers('lazy') == 1 }, 10, 'the handler scaled lazy to 1');
my $sel = IO::Select->new($c);
my $line = $sel->can_read(10) ? <$c> : undef;
like($line // '', qr/^hello from (\d+)$/, 'the new worker accepted the waiting connection and answered');
close $c;
# with the worker accepting, the next connection is answered too
$c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $t->path('lazy.sock'));
$sel = IO::Select->new($c);
like(($sel->can_read(10) ? <$c> : undef) // '', qr/^hello from \d+$/, 'a second connection answered');
close $c;

# ---- nobody accepts: one call per pause, no spinning ------------------------------------

my $cpu0 = cpu_time($t->pid);
my $mark = $t->mark;
my $w = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $t->path('idle.sock'));
ok($w, 'connected to idle, where nobody accepts');
my $start = time;
sleep 1.2;
my $n1 = () = $t->log_lines(qr/ondemand: idle call/, $mark);
my $e1 = time - $start;
cmp_ok($n1, '>=', 1, 'the handler ran for the waiting connection');
cmp_ok($n1, '<=', int($e1 / 0.5) + 1, sprintf('and not again before its pause: %d calls in %.1fs', $n1, $e1));
sleep 1.8;
my $elapsed = time - $start;
my $cpu = cpu_time($t->pid) - $cpu0;
my $n = () = $t->log_lines(qr/ondemand: idle call/, $mark);
cmp_ok($n, '>=', 2, "the handler ran again while the connection waited ($n calls in ${\ sprintf '%.1f', $elapsed}s)");
cmp_ok($n, '<=', int($elapsed / 0.5) + 2, 'at most once per pause (0.5s)');
cmp_ok($cpu, '<', 0.5, sprintf('corrald used %.2fs of CPU in %.1fs while the connection waited', $cpu, $elapsed));
is($t->request({ command => 'ping' })->{pong}, JSON::PP::true(), 'corrald answers meanwhile');
# the plugin cancels its watch at its 8th call (a client that closed its
# side stays in the backlog too, until a worker accepts it)
$t->wait_log(qr/ondemand: idle call 8$/, timeout => 10, name => 'the 8th call');
$mark = $t->mark;
sleep 1.5;
is(scalar $t->log_lines(qr/ondemand: idle call/, $mark), 0, 'corral.cancel: no more calls');
close $w;

# ---- a reload: the old watches go with the old state, the new ones work -------------------

$t->ctl('scale', 'lazy', '0', { wait => 1 });
$t->wait_for(sub { $t->workers('lazy') == 0 }, 10, 'lazy back to 0');
$mark = $t->mark;
$t->reload;
$t->wait_log(qr/ondemand: pause 0/, since => $mark, timeout => 10, name => 'reloaded');
$mark = $t->mark;
$c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $t->path('lazy.sock'));
$sel = IO::Select->new($c);
like(($sel->can_read(10) ? <$c> : undef) // '', qr/^hello from \d+$/, 'after a reload: on demand again');
close $c;
my @after = $t->log_lines(qr/ondemand: a connection waits/, $mark);
cmp_ok(scalar @after, '>=', 1, 'after a reload: the new state\'s handler ran');
cmp_ok(scalar @after, '<=', 2, 'after a reload: the old state\'s watch is gone (no double calls)');

$t->stop;
done_testing;
