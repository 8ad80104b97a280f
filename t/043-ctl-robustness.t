#!/usr/bin/perl
# The control socket against bad and slow clients: malformed requests
# are answered with bad-request naming the problem, an oversized one with
# "request too large"; a half-sent request and a trickling one are
# disconnected after 5 s, a silent client after 1 s, while others are
# answered;
# at most 128 connections are open at once and the others wait; 100
# concurrent clients are all answered while workers churn; corralctl
# without a corrald exits 5. The churning pool is stopped but for its own
# scenario: the others count corrald's fds before and after.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use IO::Select;
use IO::Socket::UNIX;
use JSON::PP ();
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(time);

my $JSON = JSON::PP->new->utf8;

my $t = CorralTest->new(config => <<'EOF');
local inherit = { "CORRAL_TEST_DIR" }
pool "web" { command = "/bin/sleep 1000", workers = 2, env_inherit = inherit }
pool "spare" { command = "/bin/sleep 1000", workers = 1, env_inherit = inherit }
-- workers that live 0.1 s and are replaced at once, forever
pool "churn" {
  command = { "/bin/sh", "-c", "/bin/sleep 0.1" },
  workers = 4,
  backoff = { initial = "10ms", max = "10ms", reset = "1s" },
  crash_limit = { failures = 0 },
  env_inherit = inherit,
}
EOF
my $sock = $t->socket_path;
$t->start;
$t->wait_control;
$t->wait_for(sub { $t->workers('web') == 2 && $t->workers('spare') == 1 }, 10, 'pools up');
my %web = $t->worker_map('web');
is($t->ctl('stop', 'churn')->{code}, 0, 'stop churn until its scenario');
$t->wait_for(sub { !$t->workers('churn') && !$t->prototype_pid('churn') }, 10, 'churn stopped');

# --- malformed requests ----------------------------------------------------------

sub bad_request {
    my ($bytes, $re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = $t->raw_request($bytes);
    my $ans = defined $r->{reply} && $r->{reply} =~ /\A[^\n]*\n\z/ ? eval { $JSON->decode($r->{reply}) } : undef;
    ok($ans, "$name: one JSON line back") or diag("got: " . ($r->{reply} // "nothing: $r->{error}"));
    $ans ||= {};
    is($ans->{code}, 'bad-request', "$name: code bad-request") or diag("got: $r->{reply}");
    is($ans->{ok}, JSON::PP::false, "$name: ok false");
    like($ans->{error} // '', $re, "$name: error names the problem");
    ok($r->{closed}, "$name: connection closed after the answer");
}

$t->scenario('malformed requests', sub {
    my $many_keys = '{' . join(',', map { qq("k$_":$_) } 1 .. 17) . ',"command":"ping"}';
    my @malformed = (
        [ "not json\n", qr/^not a request: expected a JSON object at byte 0$/, 'not JSON' ],
        [ "\n", qr/^not a request: expected a JSON object at byte 0$/, 'an empty line' ],
        [ qq(["ping"]\n), qr/^not a request: expected a JSON object/, 'an array' ],
        [ qq({"command":"status","pool":{"name":"web"}}\n), qr/^"pool" must be a string$/, 'an object for a string' ],
        [ qq({"command":"status","pool":{"name":{"x":1}}}\n), qr/^not a request: nested values are not understood at byte \d+$/, 'a nested object' ],
        [ qq({"command":["ping"]}\n), qr/^not a request: nested values are not understood/, 'a nested array' ],
        [ qq({"command":"ping"\n), qr/^not a request: expected ',' or '\}'/, 'an unfinished object' ],
        [ qq({"command":"ping} \n), qr/^not a request: unfinished string/, 'an unfinished string' ],
        [ qq({"command":"ping"} x\n), qr/^not a request: text after the object/, 'text after the object' ],
        [ qq({"command":"ping","command":"ping"}\n), qr/^not a request: duplicate key/, 'a duplicate key' ],
        [ qq({"command":"pi\x01ng"}\n), qr/^not a request: control character in a string/, 'a control character' ],
        [ qq({"command":"\\u00e9"}\n), qr/^not a request: \\u escape outside ASCII or NUL/, 'a \u escape outside ASCII' ],
        [ qq({"command":"p\\qing"}\n), qr/^not a request: bad escape/, 'a bad escape' ],
        [ qq({"command":"ping","x":1.2.3}\n), qr/^not a request: bad number/, 'a bad number' ],
        [ qq({"command":"ping","x":nope}\n), qr/^not a request: expected a value/, 'a bare word' ],
        [ "$many_keys\n", qr/^not a request: too many keys/, '18 keys' ],
        [ qq({"command":"status","pool":") . ('w' x 300) . qq("}\n), qr/^not a request: string too long/, 'a 300-byte string' ],
        [ qq({}\n), qr/^missing "command" \(a string\)$/, 'no command' ],
        [ qq({"pool":"web"}\n), qr/^missing "command" \(a string\)$/, 'a pool but no command' ],
        [ qq({"command":5}\n), qr/^"command" must be a string$/, 'a command that is a number' ],
        [ qq({"command":"frobnicate","pool":"web"}\n), qr/^unknown command "frobnicate"$/, 'an unknown command' ],
        [ qq({"command":"scale","count":1}\n), qr/^scale: missing "pool"$/, 'scale without a pool' ],
        [ qq({"command":"scale","pool":"web"}\n), qr/^scale: "count" must be an integer from 0 to 10000$/, 'scale without a count' ],
        [ qq({"command":"scale","pool":"web","count":"3"}\n), qr/"count" must be an integer/, 'a count that is a string' ],
        [ qq({"command":"scale","pool":"web","count":-1}\n), qr/"count" must be an integer/, 'a negative count' ],
        [ qq({"command":"scale","pool":"web","count":2.5}\n), qr/"count" must be an integer/, 'a fractional count' ],
        [ qq({"command":"scale","pool":"web","count":10001}\n), qr/"count" must be an integer from 0 to 10000/, 'a count above 10000' ],
        [ qq({"command":"restart","pool":"web","worker":"1"}\n), qr/^"worker" must be a worker id \(a positive integer\)$/, 'a worker that is a string' ],
        [ qq({"command":"restart","pool":"web","worker":0}\n), qr/^"worker" must be a worker id/, 'worker 0' ],
        [ qq({"command":"restart","pool":"web","worker":1.5}\n), qr/^"worker" must be a worker id/, 'a fractional worker' ],
        [ qq({"command":"signal","pool":"web"}\n), qr/^signal: "signal" must be a signal name or number$/, 'signal without a signal' ],
        [ qq({"command":"signal","pool":"web","signal":"NOPE"}\n), qr/^signal: "signal" must be a signal name or number$/, 'an unknown signal' ],
        [ qq({"command":"signal","pool":"web","signal":"0"}\n), qr/^signal: "signal" must be a signal name or number$/, 'signal 0' ],
    );
    bad_request(@$_) for @malformed;

    # Wrong types the contract says are refused, not taken as absent ("spare"
    # takes the restart should all_at_once be ignored).
    bad_request(qq({"command":"frobnicate"}\n), qr/unknown command "frobnicate"/, 'an unknown command without a pool');
    bad_request(qq({"command":"status","pool":5}\n), qr/"pool"/, 'status with a pool that is a number');
    bad_request(qq({"command":"restart","pool":"spare","all_at_once":"yes"}\n), qr/"all_at_once"/,
                'restart with all_at_once a string');

    $t->stays(sub { my %w = $t->worker_map('web'); join(',', sort %w) eq join(',', sort %web) }, 0.5,
              'malformed requests: no web worker was touched');
    is_deeply($t->request({ command => 'ping' }), { ok => JSON::PP::true, code => 'ok', pong => JSON::PP::true },
              'malformed requests: corrald still answers');
});

# --- the size limit ------------------------------------------------------------------

$t->scenario('the size limit', sub {
    my $r = $t->raw_request('x' x 70000);
    like($r->{reply} // '', qr/^\{"ok":false,"code":"bad-request","error":"request too large \(at most 65536 bytes\)"\}\n\z/,
         '70000 bytes without a newline: request too large');
    ok($r->{closed}, '70000 bytes: then closed');
    cmp_ok($r->{elapsed}, '<', 4, '70000 bytes: answered at once, not after the timeout');

    my $ping = '{"command":"ping"}';
    $r = $t->raw_request($ping . (' ' x (65535 - length $ping)) . "\n");
    like($r->{reply} // '', qr/"pong":true/, 'a request of exactly 65536 bytes with its newline: answered');
    $r = $t->raw_request($ping . (' ' x (65536 - length $ping)) . "\n");
    like($r->{reply} // '', qr/request too large/, 'a request of 65537 bytes with its newline: request too large');
    $r = $t->raw_request(('{"command":"status","x":"' . ('y' x 200) . '"}') x 400 . "\n");
    like($r->{reply} // '', qr/request too large/, 'a long line of many objects: request too large');
    is($t->request({ command => 'ping' })->{pong}, JSON::PP::true, 'after large requests: corrald still answers');
});

# --- slow clients: half-sent, silent, trickling -------------------------------------------

# Non-blocking client connections and what happens to them.
sub client {
    my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock) or die "connect $sock: $!";
    $s->blocking(0);
    return { sock => $s, at => time, reply => '', closed => undef };
}

# Reads what has come; notes when corrald closed the connection.
sub look {
    my ($c) = @_;
    return 1 if defined $c->{closed};
    while (1) {
        my $n = sysread $c->{sock}, my $buf, 65536;
        if (defined $n && $n > 0) { $c->{reply} .= $buf; next }
        return 0 if !defined $n && $!{EAGAIN};
        $c->{closed} = time - $c->{at};
        return 1;
    }
}

$t->scenario('slow clients', sub {
    local $SIG{PIPE} = 'IGNORE';
    my $half = client();
    syswrite $half->{sock}, '{"command":"ping"';
    my $silent = client();
    my $trickle = client();
    my @bytes = split //, qq({"command":"ping", "x":"........................"}\n);
    my $next_byte = time;

    # others are answered meanwhile, promptly
    my (@slow, $asked);
    my $r = $t->ctl('status');
    push @slow, "status: $r->{elapsed}s exit " . ($r->{code} // 'none') if ($r->{code} // -1) != 0 || $r->{elapsed} > 3;
    my $done = $t->poll(sub {
        if (@bytes && time >= $next_byte) {
            syswrite $trickle->{sock}, shift @bytes;    # one byte every 0.2 s: 10 s in all
            $next_byte = time + 0.2;
        }
        if (time - $half->{at} < 4) {
            my $r = $t->ctl('ping');
            $asked++;
            push @slow, "ping: $r->{elapsed}s exit " . ($r->{code} // 'none') if ($r->{code} // -1) != 0 || $r->{elapsed} > 3;
        }
        my $all = 1;
        look($_) or $all = 0 for $half, $silent, $trickle;
        return $all;
    }, 15);
    ok($done, 'half-sent, silent and trickling clients are all disconnected');
    ok(!@slow, "while they hung on, $asked other clients were answered at once") or diag(join "\n", @slow);
    cmp_ok($asked, '>=', 5, 'several clients came meanwhile');
    for ([ 'half-sent request', $half, 5 ], [ 'silent client', $silent, 1 ], [ 'trickling client', $trickle, 5 ]) {
        my ($name, $c, $limit) = @$_;
        my $after = $c->{closed} // 99;
        ok($after >= $limit - 0.5 && $after <= $limit + 4,
           sprintf('%s: closed after about %d s (%.2f s)', $name, $limit, $after));
        is($c->{reply}, '', "$name: no answer");
    }
});

# --- at most 128 connections; the others wait ------------------------------------

sub socket_fds {
    my $pid = $t->pid;
    opendir my $dh, "/proc/$pid/fd" or return -1;
    return scalar grep { (readlink("/proc/$pid/fd/$_") // '') =~ /^socket:/ } readdir $dh;
}

$t->scenario('at most 128 connections', sub {
    # (no churn meanwhile: corrald's own sockets stay put)
    my $base;
    $t->wait_for(sub { my $n = socket_fds(); my $same = defined $base && $n == $base; $base = $n; $same }, 5,
                 'corrald\'s sockets are steady');
    my @idle = map { client() } 1 .. 150;
    my $max = 0;
    $t->wait_for(sub { my $n = socket_fds() - $base; $max = $n if $n > $max; $n >= 128 }, 10,
                 '128 idle connections accepted');
    my $h = $t->ctl_spawn('ping');
    $t->stays(sub { my $n = socket_fds() - $base; $max = $n if $n > $max; $n <= 128 }, 1,
              'no more than 128 connections open at once');
    is($max, 128, 'at most 128 connections accepted (150 idle clients)');
    my $r = $t->ctl_wait($h, 20);
    is($r->{code}, 0, 'a client beyond the 128 is answered once they time out') or diag($r->{err});
    is($r->{out}, "pong\n", 'and gets its pong');
    $t->wait_for(sub { !grep { !look($_) } @idle }, 20, 'all 150 idle connections closed in the end');
    close $_->{sock} for @idle;
});

# --- 100 concurrent clients while workers churn --------------------------------------

$t->scenario('100 concurrent clients while workers churn', sub {
    is($t->ctl('start', 'churn')->{code}, 0, 'start churn');
    my $restarts = sub { my $s = $t->status('churn'); $s ? $s->{churn}{restarts} : -1 };
    my $r0 = $restarts->();
    $t->wait_for(sub { $restarts->() >= $r0 + 8 }, 10, 'churn: workers are being replaced');
    my $r1 = $restarts->();

    my @h = map { $t->ctl_spawn('status') } 1 .. 100;
    my @r = map { $t->ctl_wait($_, 60) } @h;
    my @bad = grep { ($r[$_]{code} // -1) != 0 || $r[$_]{out} !~ /^churn\s/m } 0 .. $#r;
    ok(!@bad, '100 concurrent corralctl status: all exit 0 with the table')
        or diag(join "\n", map { "client $_: exit " . ($r[$_]{code} // 'none') . ": $r[$_]{err}" } @bad[0 .. ($#bad < 4 ? $#bad : 4)]);

    local $SIG{PIPE} = 'IGNORE';
    my @c = map { client() } 1 .. 100;
    syswrite $_->{sock}, qq({"command":"status","pool":"churn"}\n) for @c;
    $t->wait_for(sub { !grep { !look($_) } @c }, 30, '100 concurrent raw clients: all done');
    my @answers = map { $_->{reply} =~ /\A[^\n]+\n\z/ ? eval { $JSON->decode($_->{reply}) } : undef } @c;
    my $good = grep { $_ && $_->{ok} && $_->{pools}[0]{name} eq 'churn' } @answers;
    is($good, 100, '100 concurrent raw clients: all answered with the status');
    close $_->{sock} for @c;
    cmp_ok($restarts->(), '>', $r1, 'churn went on meanwhile');
    # (the invariants need a moment without churn)
    is($t->ctl('stop', 'churn')->{code}, 0, 'stop churn');
    $t->wait_for(sub { !$t->workers('churn') && !$t->prototype_pid('churn') }, 10, 'churn stopped');
});

# --- a second corrald on the same socket; a stale socket file ----------------------

$t->scenario('a second corrald on the same socket', sub {
    my $t2 = CorralTest->new(config => qq{pool "x" { command = "/bin/sleep 1000", env_inherit = { "CORRAL_TEST_DIR" } }\n},
                             control => $sock);
    $t2->start;
    is($t2->wait_exit(10), 1, 'a second corrald on a socket in use exits 1');
    like($t2->log, qr/ error control: \Q$sock\E is in use by a running corrald$/m, 'and says so');
    is($t->request({ command => 'ping' })->{pong}, JSON::PP::true, 'the first corrald still answers');
});

{
    my $t3 = CorralTest->new(config => qq{pool "x" { command = "/bin/sleep 1000", env_inherit = { "CORRAL_TEST_DIR" } }\n});
    my $stale = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $t3->socket_path, Listen => 1) or die "bind: $!";
    close $stale;
    ok(-S $t3->socket_path, 'a stale socket file');
    my $r = $t3->ctl('ping');
    is($r->{code}, 5, 'corralctl and a stale socket file: exit 5');
    like($r->{err}, qr/^corralctl: corrald is not running \(unable to connect to \Q${\ $t3->socket_path}\E: Connection refused\)\n\z/,
         'corralctl and a stale socket file: one line, not running');
    $t3->start;
    $t3->wait_control;
    $t3->wait_for(sub { $t3->workers('x') == 1 }, 10, 'corrald replaces a stale socket file');
    is($t3->stop, 0, 'corrald stops');
    ok(!-e $t3->socket_path, 'corrald removes its socket file when it exits');
    $r = $t3->ctl('ping');
    is($r->{code}, 5, 'corralctl after corrald exited: exit 5');
    like($r->{err}, qr/^corralctl: corrald is not running \(unable to connect to \Q${\ $t3->socket_path}\E: No such file or directory\)\n\z/,
         'corralctl after corrald exited: one line, not running');
    $r = $t3->ctl('status', 'web');
    is($r->{code}, 5, 'corralctl status without corrald: exit 5');
}

$t->done;
