#!/usr/bin/perl
# Spawn speed: how long corrald takes to bring a Lua pool from 1 to N+1
# workers (forked by the pool's prototype), against forking N children
# from a small C process (forkbench), measured in the same run.
# Prints medians over ROUNDS rounds and their ratio.
# Usage: spawn.pl CORRALD FORKBENCH [N] [ROUNDS]
use strict;
use warnings;
use File::Temp qw(tempdir);
use FindBin;
use lib $FindBin::Bin;
use Bench qw(median ms_of wait_log write_config start_corrald stop_corrald);

my ($corrald, $forkbench, $n, $rounds) = @ARGV;
$n ||= 1000;
$rounds ||= 5;
die "usage: spawn.pl CORRALD FORKBENCH [N] [ROUNDS]\n" unless $corrald && $forkbench;

sub config {
    my ($workers) = @_;
    return qq{pool "bench" {
  workers = $workers,
  start = function(worker)
    while not corral.sleep(3600) do end
  end,
}
};
}

sub corral_round {
    my $dir = tempdir(CLEANUP => 1);
    my ($conf, $log) = ("$dir/corral.lua", "$dir/log");
    write_config($conf, config(1));
    my $pid = start_corrald($log, $corrald, '-c', $conf);
    wait_log($log, qr/pool ready \(1\/1 workers\)/, 30);
    write_config($conf, config($n + 1));
    kill 'HUP', $pid;
    my $all = $n + 1;
    my $done = wait_log($log, qr/reload done/, 30);
    my $ready = wait_log($log, qr/pool ready \($all\/$all workers\)/, 120);
    stop_corrald($pid);
    return ms_of($ready) - ms_of($done);
}

sub fork_round {
    my $out = `$forkbench $n`;
    die "forkbench failed\n" if $? || $out !~ /^[\d.]+$/;
    return $out + 0;
}

my (@fork, @corral);
for (1 .. $rounds) {
    push @fork, fork_round();
    push @corral, corral_round();
}
my ($f, $c) = (median(@fork), median(@corral));
printf "spawn %d workers: bare fork() median %.1f ms (%s)\n", $n, $f,
    join(' ', map { sprintf '%.1f', $_ } @fork);
printf "spawn %d workers: corral Lua pool median %.1f ms (%s)\n", $n, $c,
    join(' ', map { sprintf '%.0f', $_ } @corral);
printf "spawn ratio corral/fork: %.2f\n", $c / $f;
