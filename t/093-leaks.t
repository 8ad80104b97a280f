#!/usr/bin/perl
# LeakSanitizer over a whole life of corrald: start with three pools
# (exec'd, Lua, notify) and two plugins (the shipped pool-stats, and one
# of the test's with event handlers and a timer); 10 reloads that add and
# remove a pool and change worker counts, plus one that fails; churn: 30
# workers killed with SIGKILL, scale up and down, restart, stop and start
# a pool, status; then stop. corrald must exit 0 with no LeakSanitizer or
# AddressSanitizer report.
#
# Only meaningful with the sanitized build (make SANITIZE=1:
# build/asan/corrald), which `make test-host SANITIZE=1` (CI) runs; the
# plain build skips. detect_leaks=1 is set explicitly (it is LSan's
# default on x86_64 Linux, but not everywhere).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive find_program);
use Test::More;

# Whether corrald is built with AddressSanitizer: its runtime's entry
# point is in the binary (linked statically or not).
sub sanitized {
    open my $fh, '<:raw', $CorralTest::CORRALD or return 0;
    local $/ = \(1 << 20);
    my $tail = '';
    while (my $chunk = <$fh>) {
        return 1 if index($tail . $chunk, '__asan_init') >= 0;
        $tail = substr($chunk, -16);
    }
    return 0;
}
plan skip_all => "needs the SANITIZE=1 build ($CorralTest::CORRALD is not sanitized): CI runs it"
    unless sanitized();
my $PERL = find_program('perl') or plan skip_all => 'no perl';

$ENV{ASAN_OPTIONS} = join ':', grep { defined && length } $ENV{ASAN_OPTIONS}, 'detect_leaks=1';

my $t = CorralTest->new;

# %EX% workers of "ex"; pool "extra" when %EXTRA% is 1
my $CONFIG = <<"EOF";
local inherit = { "CORRAL_TEST_DIR" }
plugin "pool-stats" { interval = 1 }
plugin "watch" { every = 0.2 }
pool "ex" { command = "/bin/sleep 1000", workers = %EX%, stop_timeout = "2s" }
pool "lw" {
  workers = 2, env_inherit = inherit,
  prefork = function(pool) local t = {} for i = 1, 100 do t[i] = ("x"):rep(i) end end,
  setup = function(w) w:log("info", "setup", w.id) end,
  start = function(w) while not w:sleep(100) do end end,
}
pool "nt" {
  command = { "$PERL", "%TMP%/nt.pl" }, ready = "notify", workers = 2, env_inherit = inherit,
}
if %EXTRA% == 1 then
  pool "extra" { command = { "/bin/sh", "-c", "exec /bin/sleep 1000" }, workers = 1 }
end
EOF

$t->write_file('nt.pl', <<'EOF');
use strict;
use Socket;
(my $addr = $ENV{NOTIFY_SOCKET}) =~ s/^\@/\0/;
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
send($s, "READY=1\nSTATUS=serving $$", 0, pack_sockaddr_un($addr)) or die "send: $!";
sleep 1 while 1;
EOF

$t->write_file('plugins/watch.lua', <<'EOF');
local opts = ...
local seen = {}
corral.on("worker_exited", function(ev) seen[#seen % 50 + 1] = ev end)
corral.on("worker_started", function(ev) seen[#seen % 50 + 1] = ev end)
corral.on("reload", function() seen = {} end)
corral.on("config", function()
  corral.every(opts.every, function()
    local s = corral.status()
    for _, name in ipairs(corral.pools()) do corral.stats(name) end
    return s
  end)
  corral.after(0.5, function() corral.log("info", "watch: still here") end)
end)
EOF

sub config {
    my (%o) = @_;
    $t->write_config($CONFIG =~ s/%EX%/$o{ex}/r =~ s/%EXTRA%/$o{extra}/r);
}

sub settled {
    my (%want) = @_;
    return !grep { $t->workers($_) != $want{$_} } keys %want;
}

config(ex => 2, extra => 0);
$t->start;
$t->wait_control(30) or BAIL_OUT('corrald did not start: ' . $t->log);
$t->wait_for(sub { settled(ex => 2, lw => 2, nt => 2) }, 30, 'started: ex 2, lw 2, nt 2');
$t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=nt$/, timeout => 30);

# --- 10 reloads, and one that fails ---------------------------------------------------

for my $i (1 .. 10) {
    my %o = (ex => 1 + $i % 3, extra => $i % 2);
    config(%o);
    my $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/ info reload done: /, since => $mark, timeout => 30, name => "reload $i (ex $o{ex}, extra $o{extra})");
    $t->wait_for(sub { settled(ex => $o{ex}, $o{extra} ? (extra => 1) : (extra => 0)) }, 30, "reload $i: pools settled");
}
$t->write_config("pool \"broken\" {\n");
my $mark = $t->mark;
$t->reload;
$t->wait_log(qr/ error reload failed, keeping the running configuration: /, since => $mark, timeout => 30,
             name => 'a reload that fails');
config(ex => 2, extra => 0);
$mark = $t->mark;
$t->reload;
$t->wait_log(qr/ info reload done: /, since => $mark, timeout => 30);
$t->wait_for(sub { settled(ex => 2, lw => 2, nt => 2, extra => 0) }, 30, 'back to ex 2, lw 2, nt 2');

# --- churn -------------------------------------------------------------------------------

my @pools = qw(ex lw nt);
for my $i (1 .. 30) {
    my $pool = $pools[$i % 3];
    my ($victim) = $t->workers($pool);
    $victim or next;
    kill 'KILL', $victim;
    $t->poll(sub { !pid_alive($victim) && $t->workers($pool) == 2 }, 20);
}
$t->wait_for(sub { settled(ex => 2, lw => 2, nt => 2) }, 30, 'after 30 SIGKILLs: every pool back to 2');
cmp_ok(scalar $t->log_lines(qr/ warn worker killed by signal 9 \(KILL\) /), '>=', 30, '30 workers were killed');
ok(scalar $t->log_lines(qr/ info pool-stats: .* pool=ex$/), 'pool-stats ran');
ok(scalar $t->log_lines(qr/ info watch: still here$/), 'the watch plugin ran its timers');

for my $step ([ 'scale', 'ex', 5 ], [ 'scale', 'lw', 4 ], [ 'scale', 'ex', 1 ], [ 'scale', 'lw', 1 ],
              [ 'restart', 'nt' ], [ 'stop', 'lw' ], [ 'start', 'lw' ], [ 'scale', 'ex', 2 ], [ 'scale', 'lw', 2 ]) {
    my $r = $t->ctl(@$step, { timeout => 30 });
    is($r->{code}, 0, "corralctl @$step") or diag($r->{err});
}
$t->wait_for(sub { settled(ex => 2, lw => 2, nt => 2) }, 30, 'after scale, restart, stop and start: every pool at 2');
for my $args ([ 'status' ], [ '--json', 'status' ], [ 'status', 'nt' ], [ 'ping' ]) {
    my $r = $t->ctl(@$args);
    is($r->{code}, 0, "corralctl @$args") or diag($r->{err});
}

# --- stop: exit 0, and LSan has nothing to say -------------------------------------

is($t->stop(30), 0, 'corrald stops with exit 0');
my @reports = grep { /LeakSanitizer|ERROR: AddressSanitizer|runtime error:/ } split /\n/, $t->log;
ok(!@reports, 'no LeakSanitizer or AddressSanitizer report') or diag(join "\n", @reports);
if (@reports) {
    my $log = $t->log;
    diag($1) if $log =~ /(=+\n==\d+==ERROR: LeakSanitizer.*?SUMMARY:[^\n]*)/s;
}

$t->done;
