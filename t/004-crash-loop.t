#!/usr/bin/perl
# A crash loop: restart delays double from backoff.initial up to
# backoff.max, the pool fails after crash_limit.failures, stays down, and a
# reload brings it back. A healthy pool next to it is unaffected.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(log_time);
use Test::More;

my $config = <<'EOF';
pool "crash" {
  command = %CRASH%,
  backoff = { initial = "50ms", max = "400ms" },
  crash_limit = { failures = 5, interval = "30s" },
  env_inherit = { "CORRAL_TEST_DIR" },
}
pool "healthy" { command = "/bin/sleep 1000", workers = 2, env_inherit = { "CORRAL_TEST_DIR" } }
EOF
(my $bad = $config) =~ s/%CRASH%/{ "\/bin\/sh", "-c", "exit 1" }/;
(my $good = $config) =~ s/%CRASH%/"\/bin\/sleep 1000"/;

my $t = CorralTest->new(config => $bad);
$t->start;
$t->wait_for(sub { $t->workers('healthy') == 2 }, 10, 'healthy pool up');
my @healthy = $t->workers('healthy');

my ($failed) = $t->wait_log(qr/ error pool failed: 5 start failures within 30s, last: .+; staying down until start, restart or reload pool=crash$/);
my @delays = map { /restarting worker in (\d+ms)/ } $t->log_lines(qr/ info restarting worker in \S+ pool=crash$/);
is_deeply(\@delays, [ qw(50ms 100ms 200ms 400ms) ], 'restart delays double from 50ms up to 400ms');
is(scalar $t->log_lines(qr/ worker started pool=crash /), 5, 'five spawns before the pool failed');
is(scalar $t->log_lines(qr/ warn worker exited with status 1 pool=crash worker=1 pid=\d+$/), 5,
   'five exits with status 1 logged');

# Each delay is honoured: the next spawn comes no sooner.
my @events = $t->log_lines(qr/ (restarting worker in \S+|worker started) pool=crash/);
for my $i (0 .. $#events - 1) {
    my ($ms) = $events[$i] =~ /restarting worker in (\d+)ms/ or next;
    my $gap = log_time($events[$i + 1]) - log_time($events[$i]);
    $gap += 86400 if $gap < 0;
    cmp_ok($gap, '>=', $ms / 1000 - 0.002, "spawn waited ${ms}ms after the restart line");
}

# Failed: stays down.
my $mark = $t->mark;
$t->stays(sub { !$t->workers('crash') && !$t->log_lines(qr/ worker started pool=crash /, $mark) },
          1.5, 'failed pool stays down: no spawn for 1.5s');
is_deeply([ $t->workers('healthy') ], \@healthy, 'healthy pool unaffected (same pids)');

# A reload with a good command brings it back.
$t->write_config($good);
$mark = $t->mark;
$t->reload;
$t->wait_log(qr/ info reload done: /, since => $mark);
$t->wait_for(sub { $t->workers('crash') == 1 }, 10, 'crash pool back after reload');
$t->wait_log(qr/ info worker started pool=crash worker=1 pid=\d+$/, since => $mark);
$t->stays(sub { $t->workers('crash') == 1 }, 0.5, 'and it stays up');
is_deeply([ $t->workers('healthy') ], \@healthy, 'healthy pool still unaffected');

$t->done;
