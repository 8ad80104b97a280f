#!/usr/bin/perl
# The autoscale plugin (plugins/autoscale.lua, doc/policies.md) on real
# workers:
#   - load: Lua workers that report busy/idle as a file in the test dir
#     says; the pool goes up as they get busy (to max, not beyond), down
#     once idle, only after down.cooldown, one step at a time, to min;
#     a reload puts the config's workers back and autoscale climbs again;
#     corralctl scale is held for `hold`; a stopped pool is left alone;
#   - on demand: a pool at 0 workers with a TCP listen socket; a client's
#     connection wakes it (the kernel holds it in the backlog) and gets its
#     answer; 100 concurrent first connections are all answered, none
#     refused or reset; back to 0 after idle_timeout; status shows the
#     note; the first-request latency from zero with keep_prototype true
#     and false (median of several, as diag);
#   - bad options: FILE:LINE of the key, with corrald -t.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(free_port);
use Errno qw(ECONNREFUSED ECONNRESET);
use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time sleep);


my ($PORT_WARM, $PORT_COLD) = (free_port(), free_port());

# The on-demand worker: accepts on fd 3 (LISTEN_FDS, as under systemd's
# socket activation), answers a line per connection, and reports each
# request (REQUESTS=1) on its NOTIFY_SOCKET.
my $SERVER = <<'EOF';
use strict; use warnings; use Socket; use IO::Handle;
die "no LISTEN_FDS\n" unless ($ENV{LISTEN_FDS} // 0) >= 1;
my $l = IO::Handle->new_from_fd(3, "r") or die "fd 3: $!";
(my $ns = $ENV{NOTIFY_SOCKET} // '') =~ s/^\@/\0/;
socket(my $note, PF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
my $to = pack_sockaddr_un($ns);
while (1) {
    accept(my $c, $l) or next;
    my $req = <$c>;
    syswrite $c, "hello $$\n";
    close $c;
    send($note, "REQUESTS=1", 0, $to);
}
EOF

# CORRAL_LATENCY_PREFORK=SECONDS: the on-demand pools' prefork takes that
# long (an application's load), for the latency figures of doc/policies.md
my $PREFORK = ($ENV{CORRAL_LATENCY_PREFORK} // 0) + 0;
my $prefork = $PREFORK > 0 ? "prefork = function() corral.sleep($PREFORK) end," : '';

sub config {
    my (%o) = @_;
    my $cold = $o{no_cold} ? '' : <<"EOF";
pool "cold" {
  command = { "perl", "%TMP%/server.pl" }, workers = 0, $prefork
  listen = { http = "tcp:127.0.0.1:$PORT_COLD" }, env_inherit = inherit,
}
EOF
    my $cold_opts = $o{no_cold} ? '' : 'cold = { min = 0, max = 2, idle_timeout = 1, sockets = "http", interval = 0.2 },';
    return <<"EOF";
local inherit = { "CORRAL_TEST_DIR" }
pool "load" {
  workers = 1, env_inherit = inherit,
  start = function()
    local id, last = tonumber(os.getenv("CORRAL_WORKER")), nil
    repeat
      local f = io.open("%TMP%/busy")
      local n = f and tonumber(f:read("*l")) or 0
      if f then f:close() end
      local busy = id <= n
      if busy ~= last then
        if busy then corral.busy() else corral.idle() end
        last = busy
      end
    until corral.sleep(0.05)
  end,
}
pool "web" {
  command = { "perl", "%TMP%/server.pl" }, workers = 0, keep_prototype = true, $prefork
  listen = { http = "tcp:127.0.0.1:$PORT_WARM" }, env_inherit = inherit,
}
$cold
plugin "autoscale" {
  load = { min = 1, max = 4, spare = { min = 1, max = 1 }, up = { step = 1 },
           down = { step = 1, cooldown = "2s" }, interval = 0.2, hold = "6s" },
  web = { min = 0, max = 4, idle_timeout = "2s", sockets = "http", interval = 0.2 },
  $cold_opts
}
EOF
}

my $t = CorralTest->new;
$t->write_file('server.pl', $SERVER);
$t->write_file('busy', "0\n");
$t->write_config(config());
$t->start;

sub pool { my $s = $t->status($_[0]); $s ? $s->{$_[0]} : undef }
sub target { my $p = pool($_[0]); $p ? $p->{target} : -1 }
sub ready { my $p = pool($_[0]); $p ? $p->{ready} : -1 }
sub busy { $t->write_file('busy', "$_[0]\n") }

$t->wait_for(sub { ready('load') == 1 }, 20, 'load: 1 worker ready');

# ---- up under load, to max -------------------------------------------------------

busy(1);
$t->wait_for(sub { target('load') >= 2 }, 10, 'load: 1 of 1 busy -> a second worker');
$t->wait_log(qr/ info autoscale: up from 1 to 2 workers: 0 of 1 idle < spare\.min 1 pool=load$/);
busy(4);
$t->wait_for(sub { target('load') == 4 && ready('load') == 4 }, 20, 'load: all busy -> up to max 4');
$t->stays(sub { target('load') == 4 }, 1, 'load: never above max 4');
{
    my $p = pool('load');
    like($p->{notes}{autoscale} // '', qr/^4 workers \(1\.\.4\): up from 3 at \d\d:\d\d:\d\d, 0 of 3 idle < spare\.min 1$/,
        'status JSON: the autoscale note');
    like($t->ctl('status', 'load')->{out}, qr/^  autoscale: 4 workers \(1\.\.4\): up from 3 at /m,
        'corralctl status: the note under the pool');
    my $show = $t->ctl('--json', 'plugin', 'autoscale', 'show', 'pool=load');
    like($show->{out}, qr/"decisions":\[[^\]]*up from 1 to 2 workers/, 'corralctl plugin autoscale show: the decisions');
}

# ---- a reload: autoscale's target is kept (corral.scale with keep) ---------------------

{
    my %before = $t->worker_map('load');
    my $m = $t->mark;
    $t->reload;
    $t->wait_log(qr/ info reload done: /, since => $m);
    $t->wait_for(sub { pool('load')->{notes}{autoscale} }, 20, 'reload: the plugin ran again');
    is(target('load'), 4, 'reload: the target autoscale set is kept');
    $t->stays(sub { ready('load') == 4 }, 1, 'reload: the 4 busy workers keep running');
    is_deeply({ $t->worker_map('load') }, \%before, 'reload: the same workers');
    my @down = $t->log_lines(qr/ stopp/, $m);
    is(scalar(grep { /pool=load/ } @down), 0, 'reload: no worker of load stopped') or diag(@down);
    like(pool('load')->{notes}{autoscale} // '', qr/^4 workers/, 'reload: noted again');
}

# ---- down: after the cooldown, one at a time, to min ------------------------------

{
    my $m = $t->mark;
    busy(0);
    my $t0 = time;
    $t->wait_for(sub { target('load') == 3 }, 10, 'load: all idle -> down by one');
    my $took = time - $t0;
    cmp_ok($took, '>=', 1.8, sprintf('... not before down.cooldown 2s (%.2fs)', $took));
    $t->wait_for(sub { target('load') == 1 }, 20, 'load: down to min 1');
    my @down = $t->log_lines(qr/ info autoscale: down from \d to \d workers: \d of \d idle > spare\.max 1 for \S+s pool=load$/, $m);
    is(scalar @down, 3, 'three steps down, 4 -> 3 -> 2 -> 1') or diag(join "\n", @down);
    $t->stays(sub { target('load') == 1 }, 1, 'load: never below min 1');
}

# ---- corralctl scale by hand: held for `hold`, then autoscale again ----------------

{
    my $m = $t->mark;
    $t->ctl('scale', 'load', '3');
    $t->wait_log(qr/ info autoscale: scaled from 1 to 3 by hand \(corralctl scale\?\): held for 6s pool=load$/, since => $m);
    $t->stays(sub { target('load') == 3 }, 1.2, 'held: the operator\'s 3 stays');
    $t->wait_for(sub { target('load') == 1 }, 20, 'after the hold: back down to 1');
}

# ---- a stopped pool is left alone --------------------------------------------------

{
    my $m = $t->mark;
    busy(1);
    $t->ctl('stop', 'load');
    $t->wait_log(qr/ info autoscale: left alone: the pool is stopped pool=load$/, since => $m);
    $t->stays(sub { my $p = pool('load'); $p->{state} eq 'stopped' && $p->{target} == 1 }, 1, 'stopped: not started, not scaled');
    busy(0);
    $t->ctl('start', 'load');
    $t->wait_for(sub { ready('load') == 1 }, 20, 'started again');
}

# ---- on demand ---------------------------------------------------------------------

# connect, send a line, read the answer: (answer, seconds) or (undef, why)
sub ask {
    my ($port) = @_;
    my $t0 = time;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Proto => 'tcp', Timeout => 15)
        or return (undef, $! == ECONNREFUSED ? 'refused' : "connect: $!");
    syswrite $s, "GET\n";
    my $buf = '';
    my $sel = IO::Select->new($s);
    while ($buf !~ /\n/) {
        return (undef, 'no answer') unless $sel->can_read(15);
        my $n = sysread $s, $buf, 256, length $buf;
        return (undef, $! == ECONNRESET ? 'reset' : "read: $!") unless defined $n;
        last unless $n;
    }
    return $buf =~ /^hello \d+\n/ ? ($buf, time - $t0) : (undef, "bad answer '$buf'");
}

sub at_zero {
    my ($name, $warm) = @_;
    my $p = pool($name) or return 0;
    return $p->{target} == 0 && !@{ $p->{workers} }
        && ($warm ? ($p->{prototype} && $p->{prototype}{state} eq 'running') : !$p->{prototype});
}

$t->wait_for(sub { at_zero('web', 1) }, 20, 'web: 0 workers, its prototype warm');
like(pool('web')->{notes}{autoscale} // '', qr/^0 workers \(0\.\.4\)/, 'web: noted at 0');

{
    my $m = $t->mark;
    my ($answer, $why) = ask($PORT_WARM);
    ok($answer, 'the first client from zero gets its answer') or diag($why);
    $t->wait_log(qr/ info autoscale: up from 0 to 1 workers: a client waits on the listen socket pool=web$/, since => $m);
    $t->wait_log(qr/ info autoscale: down from 1 to 0 workers: no activity for \S+s \(idle_timeout 2s\) pool=web$/,
        since => $m, timeout => 15);
    $t->wait_for(sub { at_zero('web', 1) }, 15, 'web: back to 0 after idle_timeout');
    like(pool('web')->{notes}{autoscale} // '', qr/^0 workers \(0\.\.4\): down from 1 at .*no activity/, 'web: the note says why');
}

# 100 clients at once, the pool at 0: every one answered
{
    my (@socks, $refused, $reset, $failed);
    ($refused, $reset, $failed) = (0, 0, 0);
    for (1 .. 100) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$PORT_WARM", Proto => 'tcp', Timeout => 15);
        if (!$s) { $! == ECONNREFUSED ? $refused++ : $failed++; next }
        syswrite $s, "GET\n";
        push @socks, $s;
    }
    my %buf;
    my $sel = IO::Select->new(@socks);
    my $deadline = time + 30;
    my $answered = 0;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(1)) {
            my $n = sysread $s, $buf{$s}, 256, length($buf{$s} // '');
            if (!defined $n) { $! == ECONNRESET ? $reset++ : $failed++; $sel->remove($s); next }
            if (!$n || $buf{$s} =~ /\n/) {
                $answered++ if ($buf{$s} // '') =~ /^hello \d+\n/;
                $sel->remove($s);
            }
        }
    }
    is($refused, 0, '100 concurrent first connections: none refused');
    is($reset, 0, '... none reset');
    is($answered, 100, '... all 100 answered') or diag("failed $failed, unanswered " . $sel->count);
    $t->wait_for(sub { at_zero('web', 1) }, 20, 'web: back to 0 again');
}

# First-request latency from zero: connect -> answer, keep_prototype true
# (web) and false (cold), interleaved, each from a pool at 0.
{
    my (%lat, @fail);
    for my $try (1 .. ($ENV{CORRAL_LATENCY_TRIES} || 5)) {
        for my $case ([ web => $PORT_WARM, 1 ], [ cold => $PORT_COLD, 0 ]) {
            my ($name, $port, $warm) = @$case;
            $t->poll(sub { at_zero($name, $warm) }, 20) or do { push @fail, "$name: not at 0 before try $try"; next };
            my ($answer, $secs) = ask($port);
            if ($answer) { push @{ $lat{$name} }, $secs } else { push @fail, "$name try $try: $secs" }
        }
    }
    ok(!@fail, 'every first request from zero was answered') or diag(join "\n", @fail);
    my $median = sub { my @s = sort { $a <=> $b } @_; @s ? $s[$#s / 2] : -1 };
    for my $name (qw(web cold)) {
        my @l = @{ $lat{$name} || [] };
        diag(sprintf "first request from zero, keep_prototype %s%s: median %.1f ms (%s ms)",
            $name eq 'web' ? 'true ' : 'false', $PREFORK ? ", prefork ${PREFORK}s" : '',
            1000 * $median->(@l), join ' ', map { sprintf '%.1f', 1000 * $_ } @l);
    }
}

# ---- a pool removed by a reload -----------------------------------------------------

{
    my $m = $t->mark;
    $t->write_config(config(no_cold => 1));
    $t->reload;
    $t->wait_log(qr/ info reload done: .*1 removed/, since => $m);
    $t->wait_for(sub { !defined pool('cold') }, 10, 'cold removed');
    $t->stays(sub { !grep { / error / } $t->log_lines(qr/autoscale/, $m) }, 1, 'no error of autoscale after the removal');
    my ($answer, $why) = ask($PORT_WARM);
    ok($answer, 'web still wakes on a client after the reload') or diag($why);
}

# ---- bad options: FILE:LINE of the key -----------------------------------------------

{
    my $c = CorralTest->new;
    $c->write_config(<<'EOF');
pool "web" { command = "/bin/true", workers = 1 }
plugin "autoscale" {
  web = { min = 4,
          max = 2,
          spare = { min = 2, mx = 3 },
          down = { cooldown = "soon" } },
}
EOF
    my $r = $c->run_check;
    isnt($r->{code}, 0, 'corrald -t: bad autoscale options refused');
    my $out = $r->{out} . $r->{err};
    like($out, qr{corral\.lua:4: plugin "autoscale": web\.max: must be at least min \(4\), got 2}, '... max at its line');
    like($out, qr{corral\.lua:5: plugin "autoscale": web\.spare: unknown key "mx" \(did you mean "max"\?\)}, '... a misspelt key at its line');
    like($out, qr{corral\.lua:6: plugin "autoscale": web\.down\.cooldown: }, '... a bad duration at its line');
}

$t->done;
