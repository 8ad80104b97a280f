#!/usr/bin/perl
# Restarting is not failing (start_window): an exit before ready or within
# start_window after ready is a start failure (backoff, crash_limit); any
# later exit is replaced at once and counts nowhere but in restarts. The
# backoff starts over once a worker gets through its window, and status
# tells when the next attempt is and why a pool failed.
#
# The backoffs here are long (seconds) and the windows short, so that what
# the test asserts (a log line that must or must not appear, a count) does
# not depend on how fast the machine is.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;

my $t = CorralTest->new(config => <<'EOF');
local inherit = { "CORRAL_TEST_DIR" }
-- long-lived workers: killing them is no failure
pool "long" { command = "/bin/sleep 1000", workers = 4, start_window = "300ms",
              backoff = { initial = "5s", max = "5s" },
              crash_limit = { failures = 2, interval = "10m" } }
-- exits 300 ms after exec (ready = "started"): a start failure with a 5 s
-- window, a routine restart with a 100 ms one
pool "flap_long" { command = { "/bin/sh", "-c", "sleep 0.3; exit 1" }, start_window = "5s",
                   backoff = { initial = "1s", max = "1s" },
                   crash_limit = { failures = 3, interval = "10m" } }
pool "flap_short" { command = { "/bin/sh", "-c", "sleep 0.3; exit 1" }, start_window = "100ms",
                    backoff = { initial = "5s", max = "5s" },
                    crash_limit = { failures = 2, interval = "10m" } }
-- fails at start while the file "fail" exists
pool "toggle" { command = { "/bin/sh", "-c", "[ -e \"$CORRAL_TEST_DIR/fail\" ] && exit 1; exec /bin/sleep 1000" },
                env_inherit = inherit, start_window = "200ms",
                backoff = { initial = "300ms", max = "1m" }, crash_limit = { failures = 0 } }
-- worker 2 always fails at start (a long backoff); worker 1 is healthy
pool "mixed" { command = { "/bin/sh", "-c", "[ \"$CORRAL_WORKER\" = 2 ] && exit 1; exec /bin/sleep 1000" },
               workers = 2, start_window = "200ms",
               backoff = { initial = "30s", max = "30s" }, crash_limit = { failures = 0 } }
EOF
$t->start;

sub pool_status { my $s = $t->status; $s && $s->{$_[0]} }
sub uptimes_over {
    my ($pool, $min, $n) = @_;
    my $p = pool_status($pool) or return 0;
    my @up = grep { $_->{state} eq 'ready' && $_->{uptime} >= $min } @{ $p->{workers} };
    return @up >= $n;
}

# --- long: 12 kills of workers past their window -------------------------
$t->wait_for(sub { uptimes_over('long', 0.5, 4) }, 20, 'long: 4 workers ready past their start window');
my $kills = 0;
for my $round (1 .. 3) {
    my @pids = $t->workers('long');
    for my $pid (@pids) {
        kill 'KILL', $pid;
        $kills++;
    }
    $t->wait_for(sub { my @now = $t->workers('long');
                       @now == 4 && !grep { my $p = $_; grep { $_ == $p } @pids } @now },
                 10, "long: round $round: all 4 replaced (5s backoff would be too slow)");
    $t->wait_for(sub { uptimes_over('long', 0.5, 4) }, 20, "long: round $round: past the window again");
}
my $long = pool_status('long');
is($long->{state}, 'running', 'long: running after 12 kills (crash_limit 2 not reached)');
is($long->{start_failures}, 0, 'long: no start failures');
is($long->{restarts}, $kills, "long: $kills restarts counted");
ok(!defined $long->{restart_in}, 'long: not waiting');
is(scalar $t->log_lines(qr/ restarting worker in \S+ pool=long$/), 0, 'long: no backoff in the log');
is(scalar $t->log_lines(qr/ info replacing the worker now pool=long worker=\d+ pid=\d+$/), $kills,
   'long: each replacement logged as immediate');

# --- flap_long: start failures, visible backoff, then failed ---------------
$t->wait_for(sub { my $p = pool_status('flap_long'); $p && defined $p->{restart_in} && $p->{restart_in} > 0 },
             10, 'flap_long: status shows restart_in while backing off');
my $p = pool_status('flap_long');
like($p->{last_failure}, qr/^worker 1 exited with status 1 within its start_window$/, 'flap_long: last_failure says why');
$t->wait_log(qr/ error pool failed: 3 start failures within 600s, last: worker 1 exited with status 1 within its start_window; staying down until start, restart or reload pool=flap_long$/, 15);
$p = pool_status('flap_long');
is($p->{state}, 'failed', 'flap_long: failed at its crash limit');
like($p->{failure}, qr/^3 start failures within 600s, last: worker 1 exited/, 'flap_long: status gives the reason');
ok(!defined $p->{restart_in}, 'flap_long: a failed pool does not wait');
like($t->ctl('status', 'flap_long')->{out}, qr/^  failed: 3 start failures within 600s/m, 'flap_long: the text status says why');

# --- flap_short: the same exits after its 100 ms window do not count -------
$t->wait_log(qr/ info replacing the worker now pool=flap_short /, count => 4, timeout => 15);
$p = pool_status('flap_short');
isnt($p->{state}, 'failed', 'flap_short: 4 exits after the window, not failed');
is($p->{start_failures}, 0, 'flap_short: no start failures');
is(scalar $t->log_lines(qr/ restarting worker in \S+ pool=flap_short$/), 0, 'flap_short: no backoff');

# --- toggle: the backoff starts over once a worker got through its window --
my $mark = $t->mark;
$t->wait_for(sub { uptimes_over('toggle', 0.3, 1) }, 10, 'toggle: up past its window');
$t->write_file('fail', '');
my ($tpid) = $t->workers('toggle');
kill 'KILL', $tpid;
$t->wait_log(qr/ info replacing the worker now pool=toggle worker=1 pid=$tpid$/);
$t->wait_log(qr/ info restarting worker in 300ms pool=toggle$/, since => $mark);
$t->wait_log(qr/ info restarting worker in 600ms pool=toggle$/, since => $mark);
$t->wait_log(qr/ info restarting worker in 1.2s pool=toggle$/, since => $mark);
unlink $t->path('fail');
$t->wait_for(sub { uptimes_over('toggle', 0.3, 1) }, 15, 'toggle: up again past its window');
$mark = $t->mark;
$t->write_file('fail', '');
($tpid) = $t->workers('toggle');
kill 'KILL', $tpid;
my ($first) = $t->wait_log(qr/ info restarting worker in \S+ pool=toggle$/, since => $mark);
like($first, qr/ in 300ms /, 'toggle: the first start failure after a good run waits the initial backoff again');
unlink $t->path('fail');

# --- mixed: a healthy worker is replaced at once while the pool backs off ---
$t->wait_for(sub { my $p = pool_status('mixed'); $p && defined $p->{restart_in} && $p->{restart_in} > 5
                   && uptimes_over('mixed', 0.4, 1) }, 20, 'mixed: worker 2 backing off 30s, worker 1 up');
my %m = $t->worker_map('mixed');
kill 'KILL', $m{1};
$t->wait_for(sub { my %n = $t->worker_map('mixed'); $n{1} && $n{1} != $m{1} }, 10,
             'mixed: worker 1 replaced at once');
$p = pool_status('mixed');
ok(defined $p->{restart_in} && $p->{restart_in} > 0, 'mixed: ... while the pool still waits to retry worker 2');

$t->done;
