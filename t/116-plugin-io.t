#!/usr/bin/perl
# Plugins' network I/O, driven by corrald's loop: an HTTP server
# (corral.http_serve) answering real clients, many at once, while corrald
# answers its control socket; a handler that fails or loops answered 500
# within the plugin budget; a body too large refused; HTTP requests
# (corral.http_request) to the plugin's own server and to a server that
# never answers (timed out, nothing stalled); TCP connects
# (corral.tcp_connect) to a port that listens and one that does not; a
# reload takes the old server down; wrong calls refused with a clear error.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use IO::Select;
use IO::Socket::INET;
use POSIX qw(_exit);
use Test::More;
use Time::HiRes qw(time sleep);

# One HTTP/1.0 exchange: (status, body) or (undef, why).
sub http {
    my ($addr, $method, $path, $body) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $addr, Timeout => 10) or return (undef, "connect: $!");
    $body //= '';
    print $s "$method $path HTTP/1.0\r\nHost: x\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
    my $sel = IO::Select->new($s);
    my $in = '';
    my $deadline = time + 15;
    while (time < $deadline && $sel->can_read($deadline - time)) {
        my $n = sysread $s, $in, 65536, length $in;
        last unless $n;
    }
    return (undef, "no answer") unless $in =~ m{^HTTP/1\.\d (\d+)[^\n]*\r\n(.*?)\r\n\r\n(.*)}s;
    return ($1, $3);
}

# A server that accepts and never answers: a request to it must time out.
my $mute = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16, ReuseAddr => 1) or die "listen: $!";
my $mute_port = $mute->sockport;
my $mute_pid = fork // die "fork: $!";
if (!$mute_pid) {
    my @keep;
    while (my $c = $mute->accept) { push @keep, $c }
    _exit(0);
}
close $mute;
# A port nothing listens on.
my $closed = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1) or die;
my $closed_port = $closed->sockport;
close $closed;

my $plugin = <<"EOF";
local served = 0
corral.on("config", function()
  local id = corral.http_serve("127.0.0.1:0", function(req)
    served = served + 1
    if req.path == "/fail" then error("on purpose") end
    if req.path == "/loop" then while true do end end
    if req.path == "/none" then return nil end
    if req.path == "/alloc" then local t = {} while true do t[#t + 1] = ("x"):rep(65536) .. #t end end
    return 200, ("%s %s %d %s"):format(req.method, req.path, #req.body, req.query), "text/plain"
  end)
  corral.log("info", "test: serving on " .. corral.http_address(id))
  corral.http_request({ url = "http://" .. corral.http_address(id) .. "/self?x=1", method = "POST", body = "hello",
                        headers = { ["X-Test"] = "1" } }, function(res, err)
    corral.log("info", ("test: self %s %s %s"):format(tostring(res and res.status), tostring(res and res.body), tostring(err)))
  end)
  corral.http_request({ url = "http://127.0.0.1:$mute_port/", timeout = 1.5 }, function(res, err)
    corral.log("info", "test: mute " .. tostring(res) .. " " .. tostring(err))
  end)
  corral.tcp_connect("127.0.0.1", $mute_port, 2, function(ok, x)
    corral.log("info", "test: connect open " .. tostring(ok))
  end)
  corral.tcp_connect("127.0.0.1", $closed_port, 2, function(ok, why)
    corral.log("info", "test: connect closed " .. tostring(ok) .. " " .. tostring(why))
  end)
  for _, bad in ipairs {
    function() corral.http_serve(42, function() end) end,
    function() corral.http_serve("nowhere", function() end) end,
    function() corral.http_request({ url = "http://x/", timeout = 0 }, function() end) end,
    function() corral.http_request({ url = "http://x/", headers = { ["Bad Name"] = "v" } }, function() end) end,
    function() corral.tcp_connect("127.0.0.1", 70000, 1, function() end) end,
    function() corral.http_request({ url = "file:///etc/passwd" }, function(res, err)
      corral.log("info", "test: file url " .. tostring(res) .. " " .. tostring(err)) end) end,
  } do
    local ok, err = pcall(bad)
    corral.log("info", "test: refused " .. tostring(not ok) .. " " .. tostring(err))
  end
end)
EOF

my $t = CorralTest->new;
$t->write_config(qq{pool "p" { command = "/bin/sleep 1000", env_inherit = { "CORRAL_TEST_DIR" } }\n} . $plugin);
$t->start;
my ($line) = $t->wait_log(qr/ info test: serving on (127\.0\.0\.1:\d+)$/);
my ($addr) = ($line // '') =~ /serving on (\S+)$/;
ok($addr, "the plugin serves on $addr");

# real clients, many at once, while corrald answers ping
my ($st, $body) = http($addr, 'GET', '/hello?a=b');
is($st, 200, 'GET answered 200');
is($body, 'GET /hello 0 a=b', 'the handler saw the method, path, body and query');
($st, $body) = http($addr, 'POST', '/up', 'x' x 1000);
is("$st $body", '200 POST /up 1000 ', 'a POST body reaches the handler');
my @kids;
for my $i (1 .. 40) {
    my $pid = fork // die;
    if (!$pid) { my ($s, $b) = http($addr, 'GET', "/n$i"); _exit(($s // 0) == 200 && $b eq "GET /n$i 0 " ? 0 : 1) }
    push @kids, $pid;
}
my $ping_ok = 1;
for (1 .. 5) { $ping_ok &&= $t->ctl('ping')->{code} == 0 }
my $bad = 0;
for (@kids) { waitpid $_, 0; $bad++ if $? }
is($bad, 0, '40 clients at once: all answered right');
ok($ping_ok, 'corrald answered ping meanwhile');

($st) = http($addr, 'GET', '/fail');
is($st, 500, 'a handler that fails: 500');
$t->wait_log(qr/ error config: HTTP server handler failed: \S+:\d+: on purpose$/, name => 'the failure is logged');
my $t0 = time;
($st) = http($addr, 'GET', '/loop');
is($st, 500, 'a handler that loops: 500, once its budget is spent');
cmp_ok(time - $t0, '<', 5, 'within the plugin budget');
is($t->ctl('ping')->{code}, 0, 'corrald answers after the loop');
($st) = http($addr, 'GET', '/alloc');
is($st, 500, 'a handler that allocates without end: 500');
is($t->ctl('ping')->{code}, 0, 'corrald answers after it');
($st, $body) = http($addr, 'GET', '/after');
is("${\ ($st // '')} ${\ ($body // '')}", '200 GET /after 0 ', 'the server still answers');
cmp_ok(scalar $t->workers('p'), '==', 1, 'the pool is untouched');
($st) = http($addr, 'GET', '/none');
is($st, 500, 'a handler that gives no status: 500');
($st) = http($addr, 'POST', '/big', 'y' x (2 * 1024 * 1024));
is($st, 413, 'a body over 1 MiB: 413');

# client requests
$t->wait_log(qr/ info test: self 200 POST \/self 5 x=1 nil$/, name => 'a request to its own server: 200, the body');
$t->wait_log(qr/ info test: connect open true$/, name => 'a TCP connect to a listening port');
$t->wait_log(qr/ info test: connect closed false .*(refused|Couldn't connect)/i, name => 'a TCP connect to a closed port fails, with why');
$t->wait_log(qr/ info test: mute nil timed out after 1\.5s$/, name => 'a server that never answers: timed out');
is($t->ctl('ping')->{code}, 0, 'nothing stalled');
my @refused = $t->log_lines(qr/ info test: refused true \S+:\d+: corral\.(http_serve|http_request|tcp_connect): /);
is(scalar @refused, 5, 'wrong calls refused with an error naming the function') or diag(join "\n", $t->log_lines(qr/test: refused/));
$t->wait_log(qr/ info test: (refused true corral\.http_request: .*[Pp]rotocol|file url nil .*[Pp]rotocol)/,
             name => 'file:// is not a protocol plugins may use');

# a reload: the old state's server goes with it
$t->write_config(qq{pool "p" { command = "/bin/sleep 1000", env_inherit = { "CORRAL_TEST_DIR" } }\n});
my $mark = $t->mark;
$t->reload;
$t->wait_log(qr/ info reload done: /, since => $mark);
$t->wait_for(sub { !IO::Socket::INET->new(PeerAddr => $addr, Timeout => 2) }, 10, 'after a reload, the old server is gone');

kill 'KILL', $mute_pid;
waitpid $mute_pid, 0;
$t->done;
