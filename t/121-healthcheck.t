#!/usr/bin/perl
# The healthcheck plugin on real workers (plugins/healthcheck.lua):
#   - HTTP probes of workers that each serve 127.0.0.1:(BASE + id): all
#     healthy, in status (text and JSON) and in the metrics plugin's
#     corral_worker_healthy;
#   - a worker that stops answering (the test creates sick.PID, which it
#     reads) is restarted with the reason unhealthy (status recent_exits,
#     the log), and its replacement, a new pid, is healthy; the others are
#     untouched;
#   - a slow starter (it listens only after 3 s) is not restarted inside
#     its start period, then healthy;
#   - TCP probes: a worker that closes its listening socket is replaced;
#   - bad options: FILE:LINE at the key's line with corrald -t.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(http_get);
use IO::Select;
use IO::Socket::INET;
use Test::More;

# A base for the pools' ports: random, and all of BASE+1 .. BASE+40 free now
# (the machine is shared). Pools: web BASE+1.., tcp BASE+11.., slow BASE+21..
sub free_base {
    for (1 .. 50) {
        my $base = 20000 + 10 * int(rand(3500));
        my @held;
        my $all = 1;
        for my $p ($base + 1 .. $base + 40) {
            my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$p", Listen => 1) or do { $all = 0; last };
            push @held, $s;
        }
        return $base if $all;
    }
    BAIL_OUT('no 40 free ports in a row found on 127.0.0.1');
}
my $BASE = free_base();


my $t = CorralTest->new;

# The worker: MODE (http or tcp), its port's base, a delay before it listens.
# With the file sick.PID in the test's directory, an HTTP worker accepts and
# never answers, a TCP worker closes its listening socket.
$t->write_file('worker.pl', <<'EOF');
use strict;
use warnings;
use IO::Socket::INET;
my ($mode, $base, $delay) = @ARGV;
my $dir = $ENV{CORRAL_TEST_DIR};
$SIG{TERM} = sub { exit 0 };
sleep $delay if $delay;
my $port = $base + $ENV{CORRAL_WORKER};
my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port", Listen => 64, ReuseAddr => 1)
    or die "worker: listen on $port: $!\n";
my @held;
while (1) {
    my $c = $l->accept or next;
    if (-e "$dir/sick.$$") {
        if ($mode eq 'tcp') { close $c; close $l; sleep 1 while 1 }
        push @held, $c;     # never answered
        next;
    }
    if ($mode eq 'http') {
        my $req = '';
        while ($req !~ /\r\n\r\n/) { sysread($c, $req, 4096, length $req) or last }
        print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";
    }
    close $c;
}
EOF

my $WEB = $BASE;
my $TCP = $BASE + 10;
my $SLOW = $BASE + 20;
$t->write_config(<<"EOF");
local inherit = { "CORRAL_TEST_DIR" }
local perl = "/usr/bin/perl %TMP%/worker.pl "
pool "web" { command = perl .. "http $WEB", workers = 3, env_inherit = inherit }
pool "tcp" { command = perl .. "tcp $TCP", workers = 2, env_inherit = inherit }
pool "slow" { command = perl .. "http $SLOW 3", workers = 1, env_inherit = inherit }
pool "other" { command = "/bin/sleep 1000", workers = 1, env_inherit = inherit }
plugin "healthcheck" {
  web = { http = "http://127.0.0.1:{port}/health?w={worker}", port_base = $WEB,
          interval = "0.5s", timeout = "3s", retries = 2 },
  tcp = { tcp = "127.0.0.1:{port}", port_base = $TCP, interval = "0.5s", timeout = "3s", retries = 2 },
  slow = { http = "http://127.0.0.1:{port}/", port_base = $SLOW, interval = "0.5s", timeout = "1s",
           retries = 2, start_period = "10s" },
}
plugin "metrics" { listen = "127.0.0.1:0" }
EOF

$t->start;
my ($line) = $t->wait_log(qr/ info plugin "metrics": serving metrics on http:\/\/(\S+)\/metrics$/);
my ($maddr) = ($line // '') =~ m{http://(\S+)/metrics};

sub healths {
    my ($pool) = @_;
    my $s = $t->status($pool) or return {};
    return { map { $_->{id} => ($_->{notes}{health} // '') } @{ $s->{$pool}{workers} } };
}
sub all_healthy {
    my ($pool, $n) = @_;
    my $h = healths($pool);
    return keys(%$h) == $n && !grep { $_ ne 'healthy' } values %$h;
}

$t->wait_for(sub { all_healthy('web', 3) && all_healthy('tcp', 2) }, 20, 'web and tcp: every worker healthy');

# ---- status and metrics ---------------------------------------------------------

{
    my $text = $t->ctl('status', 'web')->{out};
    my @rows = grep { /^\s+\d+\s+\d+\s+ready\s/ } split /\n/, $text;
    is(scalar(grep { /\bhealth: healthy\b/ } @rows), 3, 'status text: health: healthy in each row') or diag($text);
    is_deeply(healths('other'), { 1 => '' }, 'a pool without probes has no note');
    my ($code, $body) = http_get($maddr, '/metrics');
    is($code, 200, 'metrics scraped');
    for my $id (1 .. 3) {
        like($body, qr/^corral_worker_healthy\{pool="web",worker="$id"\} 1$/m, "metrics: web/$id healthy");
    }
    unlike($body, qr/corral_worker_healthy\{pool="other"/, 'metrics: nothing for a pool without probes');
}

# ---- the slow starter: inside its start period, then healthy ----------------------

{
    my %slow = $t->worker_map('slow');
    my $pid = $slow{1};
    ok($pid, "slow/1 runs (pid $pid)");
    $t->wait_for(sub { (healths('slow')->{1} // '') =~ /^starting: / }, 10,
                 'slow/1: its probes fail while it is starting (noted, not counted)');
    $t->wait_for(sub { (healths('slow')->{1} // '') eq 'healthy' }, 20, 'slow/1: healthy once it listens');
    my %now = $t->worker_map('slow');
    is($now{1}, $pid, 'slow/1: not restarted inside its start period');
    is(scalar($t->log_lines(qr/healthcheck: worker \d+ (failed|.*unhealthy).*pool=slow$/)), 0, 'slow: no failure logged');
}

# ---- an HTTP worker that stops answering --------------------------------------------

{
    my %before = $t->worker_map('web');
    my $mark = $t->mark;
    my $sick = $before{2};
    $t->write_file("sick.$sick", '');
    my ($l) = $t->wait_log(qr/ info healthcheck: worker 2 \(pid $sick\) is unhealthy, 2 probes failed in a row \(last: timed out after 3s\): restarting it pool=web$/,
                          timeout => 20, since => $mark, name => 'web/2: unhealthy, restarted (the log)');
    $t->wait_for(sub { my %w = $t->worker_map('web'); $w{2} && $w{2} != $before{2} && all_healthy('web', 3) }, 20,
                 'web/2: replaced by a new process, healthy');
    my $st = $t->status('web')->{web};
    my ($exit) = grep { $_->{id} == 2 } @{ $st->{recent_exits} };
    is($exit && $exit->{reason}, 'unhealthy', 'status: the recent exit of web/2 is unhealthy');
    like($t->ctl('status', 'web')->{out}, qr/unhealthy/, 'status text: the exit says unhealthy');
    my ($code, $body) = http_get($maddr, '/metrics');
    like($body, qr/^corral_worker_exits_total\{pool="web",reason="unhealthy"\} 1$/m, 'metrics: one unhealthy exit');
    my %after = $t->worker_map('web');
    is($after{$_}, $before{$_}, "web/$_: untouched") for 1, 3;
    ok(!$t->log_lines(qr/healthcheck: worker [13] .*pool=web$/, $mark), 'web/1 and web/3: no failure logged');
}

# ---- a TCP worker that stops listening -----------------------------------------------

{
    my %before = $t->worker_map('tcp');
    my $mark = $t->mark;
    my $sick = $before{1};
    $t->write_file("sick.$sick", '');
    $t->wait_log(qr/healthcheck: worker 1 \(pid $sick\) is unhealthy, 2 probes failed in a row \(last: Failed to connect to 127\.0\.0\.1 port \d+.*\): restarting it pool=tcp$/,
                 timeout => 20, since => $mark, name => 'tcp/1: unhealthy (no connection), restarted');
    $t->wait_for(sub { my %w = $t->worker_map('tcp'); $w{1} && $w{1} != $before{1} && all_healthy('tcp', 2) }, 20,
                 'tcp/1: replaced, healthy');
    my %after = $t->worker_map('tcp');
    is($after{2}, $before{2}, 'tcp/2: untouched');
}

# ---- a reload: notes back, no restart -------------------------------------------------

{
    my %before = $t->worker_map('web');
    my $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/reload done/, timeout => 20, since => $mark);
    $t->wait_for(sub { all_healthy('web', 3) }, 20, 'after a reload: healthy again');
    my %after = $t->worker_map('web');
    is_deeply(\%after, \%before, 'after a reload: the same workers');
}

# ---- bad options: FILE:LINE at the key ------------------------------------------------

{
    $t->write_file('bad.lua', <<'EOF');
pool "web" { command = "/bin/sleep 1000" }
plugin "healthcheck" {
  web = {
    http = "http://127.0.0.1:{port}/",
    port_base = 8000,
    retries = 0,
  },
}
EOF
    my $r = $t->run('-t', '-c', $t->path('bad.lua'));
    is($r->{code}, 1, 'bad options: refused by corrald -t');
    like($r->{out} . $r->{err}, qr{bad\.lua:6: plugin "healthcheck": web\.retries: }, 'at the line of the key')
        or diag($r->{out} . $r->{err});
    $t->write_file('bad2.lua', <<'EOF');
pool "web" { command = "/bin/sleep 1000" }
plugin "healthcheck" {
  web = { tcp = "127.0.0.1:{prot}", port_base = 8000 },
}
EOF
    $r = $t->run('-t', '-c', $t->path('bad2.lua'));
    like($r->{out} . $r->{err}, qr{bad2\.lua:3: plugin "healthcheck": web\.tcp: unknown placeholder \{prot\}},
         'an unknown placeholder') or diag($r->{out} . $r->{err});
}

$t->done;
