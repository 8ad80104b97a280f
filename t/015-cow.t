#!/usr/bin/perl
# Copy-on-write: 64 MiB of numbers built in prefork are in memory once for
# the prototype and its 4 workers, which read all of it; built in setup,
# once per worker. Memory is the sum of the proportional set sizes (Pss in
# /proc/PID/smaps_rollup) of the prototype and the workers.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;

my $MIB = 64;
my $N = $MIB * 1024 * 1024 / 8;    # numbers in the table's array part
my $WORKERS = 4;
# what each worker computes: t[i] = i summed over i = 1, 65, 129, ...
my $SUM = 0;
for (my $i = 1; $i <= $N; $i += 64) { $SUM += $i }

-r '/proc/self/smaps_rollup' or plan skip_all => 'no /proc/PID/smaps_rollup';

sub pss_kib {
    my ($pid) = @_;
    my $text = CorralTest::slurp("/proc/$pid/smaps_rollup") // return undef;
    return $text =~ /^Pss:\s+(\d+) kB/m ? $1 : undef;
}

sub config {
    my ($where) = @_;
    my $build = "local t = {}; for i = 1, $N do t[i] = i end; return t";
    my $hooks = $where eq 'prefork'
        ? "prefork = function(pool) return { data = (function() $build end)() } end,\n"
          . "  setup = function(worker) worker.data = worker.pool.state.data end,"
        : "setup = function(worker) worker.data = (function() $build end)() end,";
    return <<"EOF";
pool "cow" {
  workers = $WORKERS,
  ready = "lua",
  prefork_timeout = "60s",
  directory = "%TMP%",
  $hooks
  start = function(worker)
    local t, sum = worker.data, 0
    for i = 1, #t, 64 do sum = sum + t[i] end
    local f = assert(io.open("%TMP%/sums", "a"))
    f:write(worker.id, " ", corral.pid(), " ", #t, " ", string.format("%.0f", sum), "\\n")
    f:close()
    corral.ready()
    while not corral.sleep(3600) do end
  end,
}
EOF
}

# Runs the pool with the data built in $where; returns the pool's Pss in MiB.
sub measure {
    my ($where) = @_;
    my $t = CorralTest->new(config => config($where));
    $t->start;
    $t->wait_log(qr/ info pool ready \($WORKERS\/$WORKERS workers\) pool=cow$/, timeout => 120,
                 name => "$where: pool ready (every worker read the table)");
    my $proto = $t->prototype_pid('cow');
    my @workers = $t->workers('cow');
    ok($proto, "$where: prototype found");
    is(scalar @workers, $WORKERS, "$where: $WORKERS workers found");
    my @sums = $t->file_lines('sums');
    is(scalar @sums, $WORKERS, "$where: every worker summed the table");
    is_deeply([ sort map { (split / /)[3] } @sums ], [ ($SUM) x $WORKERS ], "$where: every worker read all $N numbers (sum $SUM)");
    is_deeply([ sort map { (split / /)[2] } @sums ], [ ($N) x $WORKERS ], "$where: #t is $N in every worker");
    my ($total, @each) = (0);
    for my $pid (grep { $_ } $proto, @workers) {
        my $kib = pss_kib($pid);
        ok(defined $kib, "$where: Pss of $pid readable") or next;
        $total += $kib;
        push @each, sprintf('%d:%.1f', $pid, $kib / 1024);
    }
    my $mib = $total / 1024;
    diag(sprintf("cow, data built in %-7s: pool Pss %.1f MiB = %.2f x %d MiB (prototype %d, %s)",
                 $where, $mib, $mib / $MIB, $MIB, $proto // 0, join(' ', @each)));
    is($t->stop(30), 0, "$where: corrald stops with exit 0");
    $t->check_invariants;
    return $mib;
}

my $pre = measure('prefork');
cmp_ok($pre, '<', 1.6 * $MIB, sprintf('built in prefork: %.1f MiB < 1.6 x %d MiB (shared by the workers)', $pre, $MIB));
my $setup = measure('setup');
cmp_ok($setup, '>', 3 * $MIB, sprintf('built in setup: %.1f MiB > 3 x %d MiB (one copy per worker)', $setup, $MIB));
note(sprintf('setup / prefork: %.2f', $setup / $pre)) if $pre;

CorralTest::done();
