#!/usr/bin/perl
# Copy-on-write: a pool whose prefork hook builds a table of MIB MiB and
# whose WORKERS workers only read it, against the same table built in each
# worker's setup hook. Prints the pool's memory as the sum of PSS
# (/proc/PID/smaps_rollup) over the prototype and its workers, and the
# ratio to one copy of the data.
# Usage: cow.pl CORRALD [MIB] [WORKERS] [ROUNDS]
use strict;
use warnings;
use File::Temp qw(tempdir);
use FindBin;
use lib $FindBin::Bin;
use Bench qw(median wait_log write_config start_corrald stop_corrald);

my ($corrald, $mib, $workers, $rounds) = @ARGV;
$mib ||= 200;
$workers ||= 8;
$rounds ||= 3;
die "usage: cow.pl CORRALD [MIB] [WORKERS] [ROUNDS]\n" unless $corrald;

sub pss_kib {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/smaps_rollup" or return 0;
    while (<$fh>) { return $1 if /^Pss:\s+(\d+) kB/ }
    return 0;
}

# The table: MIB MiB of numbers (8 bytes each) in the array part.
sub config {
    my ($where) = @_;
    my $n = $mib * 1024 * 1024 / 8;
    my $build = "local t = {}; for i = 1, $n do t[i] = i end; return t";
    my $hooks = $where eq 'prefork'
        ? "prefork = function(pool) return { data = (function() $build end)() } end,
  setup = function(worker) worker.data = worker.pool.state.data end,"
        : "setup = function(worker) worker.data = (function() $build end)() end,";
    return qq{pool "cow" {
  workers = $workers,
  ready = "lua",
  prefork_timeout = "120s",
  $hooks
  start = function(worker)
    -- read the whole table, then say so and idle
    local t, sum = worker.data, 0
    for i = 1, #t, 64 do sum = sum + t[i] end
    corral.ready()
    while not corral.sleep(3600) do end
  end,
}
};
}

sub round {
    my ($where) = @_;
    my $dir = tempdir(CLEANUP => 1);
    my ($conf, $log) = ("$dir/corral.lua", "$dir/log");
    write_config($conf, config($where));
    my $pid = start_corrald($log, $corrald, '-v', '-c', $conf);
    wait_log($log, qr/pool ready \($workers\/$workers workers\)/, 300);
    my ($proto) = (`cat $log` =~ /prototype started pool=cow pid=(\d+)/);
    my @pids = ($proto, map { /worker started pool=cow worker=\d+ pid=(\d+)/ ? $1 : () } split /\n/, `cat $log`);
    my $kib = 0;
    $kib += pss_kib($_) for @pids;
    stop_corrald($pid);
    return $kib / 1024;
}

my (@pre, @setup);
for (1 .. $rounds) {
    push @pre, round('prefork');
    push @setup, round('setup');
}
my ($p, $s) = (median(@pre), median(@setup));
printf "cow %d MiB x %d workers: data in prefork: pool PSS median %.0f MiB (%.2f copies)\n", $mib, $workers, $p, $p / $mib;
printf "cow %d MiB x %d workers: data in setup:   pool PSS median %.0f MiB (%.2f copies)\n", $mib, $workers, $s, $s / $mib;
printf "cow ratio setup/prefork: %.2f\n", $s / $p;
