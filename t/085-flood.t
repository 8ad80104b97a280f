#!/usr/bin/perl
# A worker cannot flood corrald. A Lua worker that writes garbage on its
# channel to corrald (corral's private protocol) is aborted at its first
# message, said in one line, and replaced; one that ignores SIGABRT and
# SIGPIPE and goes on writing is KILLed after stop_timeout. Two workers
# sending notifications as fast as they can do not keep a third one's
# READY=1 from being seen, nor make corrald log without bound (a flood of
# ERRNO= lines, one info line each before). A STATUS= with an escape
# sequence and a newline is logged with them escaped (\n, \e, \xNN: as corralctl status shows them).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive);
use Test::More;
use Time::HiRes qw(time);

# A Lua worker's channel to corrald is fd 3 (no listening sockets): it
# checks that fd 3 is a socket, writes it garbage (hostile: ignoring
# SIGABRT and SIGPIPE first, and on after write errors).
sub garbage_start {
    my ($hostile) = @_;
    my $ignore = $hostile ? 'C.signal(6, ffi.cast("void *", 1)); C.signal(13, ffi.cast("void *", 1))' : '';
    my $lua = <<"LUA";
function(w)
    local ffi = require("ffi")
    pcall(ffi.cdef, [[
        long write(int fd, const void *buf, unsigned long n);
        long readlink(const char *path, char *buf, unsigned long n);
        void *signal(int sig, void *handler);
    ]])
    local C = ffi.C
    local link = ffi.new("char[64]")
    local n = C.readlink("/proc/self/fd/3", link, 63)
    assert(n > 0 and ffi.string(link, n):match("^socket:"), "fd 3 is not the channel")
    $ignore
    local f = assert(io.open("%TMP%/writing." .. w.pool.name .. "." .. w.pid, "w"))
    f:close()
    for i = 1, 1e9 do
      C.write(3, "not corral's", 12)
    end
  end
LUA
    chomp $lua;
    return $lua;
}
my ($garbage, $hostile) = (garbage_start(0), garbage_start(1));

my $t = CorralTest->new(config => <<"EOF");
pool "garbage" { command = "/bin/sleep 1000", start = $garbage, backoff = { initial = "0.2s", max = "1s" }, crash_limit = { failures = 0 } }
pool "hostile" { command = "/bin/sleep 1000", start = $hostile, stop_timeout = "1s",
                 backoff = { initial = "0.2s", max = "1s" }, crash_limit = { failures = 0 } }
pool "flood" { command = { "$^X", "%TMP%/flood.pl" }, workers = 0, env_inherit = { "CORRAL_TEST_DIR" } }
pool "good" { command = { "$^X", "%TMP%/good.pl" }, workers = 0, ready = "notify", ready_timeout = "20s" }
pool "esc" { command = { "$^X", "%TMP%/esc.pl" }, ready = "notify",
              setup = function(w) w:log("info", "line one\\nwarn forged line\\027[31m") end }
EOF
my $notify_sub = <<'EOF';
use strict; use warnings; use Socket;
sub notify_sock {
    (my $a = $ENV{NOTIFY_SOCKET}) =~ s/^\@/\0/;
    socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
    connect($s, pack_sockaddr_un($a)) or die "connect: $!";
    return $s;
}
EOF
# Sends "ERRNO=5\nSTATUS=flood" and junk, in turn, to its NOTIFY_SOCKET as
# fast as it can (blocking while corrald's queue is full); says how many
# it sent every 1000.
$t->write_file('flood.pl', $notify_sub . <<'EOF');
my $s = notify_sock();
my $n = 0;
my $f = "$ENV{CORRAL_TEST_DIR}/flood.$$";
while (1) {
    defined send($s, $n % 2 ? "ERRNO=5\nSTATUS=flood $n" : "junk $n", 0) or next;
    $n++;
    if ($n % 1000 == 0) {
        open my $fh, '>', "$f.tmp" or die; print $fh $n; close $fh;
        rename "$f.tmp", "$f.sent";
    }
}
EOF
$t->write_file('good.pl', $notify_sub . <<'EOF');
send(notify_sock(), "READY=1\nSTATUS=good", 0) or die "send: $!";
sleep 1000;
EOF
$t->write_file('esc.pl', $notify_sub . <<'EOF');
send(notify_sock(), "STATUS=a\e]0;pwned\a\tb\x7fc\x01d", 0) or die "send: $!";
send(notify_sock(), "READY=1", 0) or die "send: $!";
sleep 1000;
EOF
$t->start;
$t->wait_control;

# ---- escaping ---------------------------------------------------------------

$t->wait_log(qr/ info pool ready \(1\/1 workers\) pool=esc$/, name => 'esc: ready');
my ($status) = $t->log_lines(qr/ debug notify: STATUS=a.* pool=esc /);
is(($status // '') =~ s/^\S+ //r =~ s/ worker=.*//r,
   "debug notify: STATUS=a\\e]0;pwned\\x07\tb\\x7fc\\x01d pool=esc",
   'STATUS= logged with its control characters escaped (but tab)');
ok(scalar $t->log_lines(qr/ info line one\\nwarn forged line\\e\[31m pool=esc worker=1 pid=\d+$/),
   'a worker\'s log line with a newline and an escape: one line, escaped');
ok(!$t->log_lines(qr/^warn forged/), 'no forged line');

# ---- garbage on the channel ------------------------------------------------

# each worker is aborted at its first message (it lives a few ms): the
# log says which, once
my $abort = qr/ warn worker sent a message of 12 bytes on its channel that is not corral's, aborting the worker pool=(\w+) worker=1 pid=(\d+)$/;
for my $pool (qw(garbage hostile)) {
    my @pids;
    $t->wait_for(sub { @pids = map { /$abort/ && $1 eq $pool ? $2 : () } $t->log_lines($abort); @pids >= 2 },
                 15, "$pool: a worker that writes garbage on its channel is aborted, and so is its replacement");
    ok(-e $t->path("writing.$pool.$pids[0]"), "$pool: it was writing garbage");
    $t->wait_for(sub { !pid_alive($pids[0]) }, 10, "$pool: the worker is gone");
    $t->wait_log(qr/ warn worker did not stop within 1s, sending KILL pool=hostile worker=1 pid=$pids[0]$/,
                 name => 'hostile: one that ignores SIGABRT is KILLed after stop_timeout') if $pool eq 'hostile';
}
is($t->ctl('ping')->{code}, 0, 'corrald answers');
$t->ctl('stop', 'garbage');
$t->ctl('stop', 'hostile');
my %per;
for ($t->log_lines($abort)) { $per{$2}++ if /$abort/ }
my @chan = $t->log_lines(qr/not corral's/);
note(scalar(@chan) . " lines about the channel, for " . scalar(keys %per) . " workers");
is(scalar(@chan), scalar(keys %per), 'one line about the garbage for each worker');

# ---- a notify flood ---------------------------------------------------------

my $sent = sub {
    my $n = 0;
    $n += CorralTest::slurp($_) // 0 for glob $t->path('flood.*.sent');
    return $n;
};
$t->ctl('scale', 'flood', '2');
$t->wait_for(sub { $sent->() >= 20000 }, 30, 'the two flooders sent 20000 datagrams');
my $mark = $t->mark;
my $t0 = time;
$t->ctl('scale', 'good', '1');
$t->wait_log(qr/ info pool ready \(1\/1 workers\) pool=good$/, since => $mark, timeout => 20,
             name => 'a well-behaved worker\'s READY=1 gets through the flood');
note(sprintf 'ready after %.2fs', time - $t0);
my $ping0 = time;
is($t->ctl('ping')->{code}, 0, 'corrald answers during the flood');
note(sprintf 'ping took %.3fs', time - $ping0);
$t->wait_log(qr/ warn \d+ similar lines suppressed in 5s \(more than 20\), the last: worker reports errno 5 \(Input\/output error\) pool=flood$/,
             timeout => 20, name => 'the number of lines held back is said, once the interval is over');
my $text = substr $t->log, $mark;
my $errno = () = $text =~ / worker reports errno 5 /g;
my $nlines = () = $text =~ /\n/g;
my $dur = time - $t0;
note(sprintf "during %.1fs of a flood of %d datagrams: %d lines, %d of ERRNO=5", $dur, $sent->(), $nlines, $errno);
cmp_ok($errno, '<=', 2 * 20 * (2 + int($dur / 5)), 'the ERRNO= lines of the flood: at most 20 a worker every 5s');
cmp_ok($nlines, '<', 1000 * $dur + 5000, 'the log is bounded (debug lines too: the notify socket is)');
$t->ctl('stop', 'flood');
ok($t->log !~ /[\x00-\x08\x0b-\x1f\x7f]/, 'no control character in the log at all');
$t->done;
