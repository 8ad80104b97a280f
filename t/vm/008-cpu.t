#!/usr/bin/perl
# cpu_max throttles: a pool with limits cpu_max = "20%" and two busy
# workers, and a pool with worker_limits cpu_max = "10%" and one: the
# kernel throttles them (cpu.stat nr_throttled and throttled_usec grow)
# and their CPU time over a few seconds stays near the limit.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;
use Time::HiRes qw(time);

my $UNIT = $CorralVM::UNIT;
my $CG = $CorralVM::UNIT_CG;

my $BUSY = [ '/bin/sh', '-c', 'while :; do :; done' ];
my $config = corral_lua(
    [ pool => 'busy', command => $BUSY, workers => 2, limits => { cpu_max => '20%' } ],
    [ pool => 'each', command => $BUSY, workers => 1, worker_limits => { cpu_max => '10%' } ],
);

my ($rc, $out) = corral_start($config);
is($rc, 0, 'systemctl start corral') or diag($out);
ok(wait_until(sub { pool_workers('busy') == 2 && pool_workers('each') == 1 }, 60), 'busy: 2 workers, each: 1');
is(cg_read("$CG/busy", 'cpu.max'), '20000 100000', 'busy/cpu.max "20000 100000"');
is(cg_read("$CG/each/1", 'cpu.max'), '10000 100000', 'each/1/cpu.max "10000 100000"');
my %cg = (busy => "$CG/busy", each => "$CG/each/1");
my %limit = (busy => 0.20, each => 0.10);
wait_for(sub { !grep { (cg_keys($cg{$_}, 'cpu.stat')->{nr_throttled} // 0) == 0 } keys %cg }, 20,
         'the busy workers run into their limits (nr_throttled > 0)');

# usage and throttling over at least 4 s: until both were throttled again
my %s0 = map { $_ => cg_keys($cg{$_}, 'cpu.stat') } keys %cg;
my $t0 = time;
my (%s1, $wall);
wait_for(sub {
    %s1 = map { $_ => cg_keys($cg{$_}, 'cpu.stat') } keys %cg;
    $wall = time - $t0;
    $wall >= 4 && !grep { ($s1{$_}{nr_throttled} // 0) <= ($s0{$_}{nr_throttled} // 0) } keys %cg;
}, 30, 'measured over 4 s or more, both throttled again meanwhile');
for my $name (sort keys %cg) {
    my ($x, $y) = ($s0{$name}, $s1{$name});
    my $share = ($y->{usage_usec} - $x->{usage_usec}) / 1e6 / $wall;
    note(sprintf "%s: %.1f%% of one CPU over %.1f s; nr_throttled %d -> %d, throttled_usec %d -> %d",
         $name, $share * 100, $wall, $x->{nr_throttled}, $y->{nr_throttled}, $x->{throttled_usec}, $y->{throttled_usec});
    cmp_ok($y->{nr_throttled}, '>', 0, "$name: cpu.stat nr_throttled > 0");
    cmp_ok($y->{nr_throttled}, '>', $x->{nr_throttled}, "$name: nr_throttled grows");
    cmp_ok($y->{throttled_usec}, '>', $x->{throttled_usec}, "$name: throttled_usec grows");
    cmp_ok($share, '<=', $limit{$name} + 0.10, sprintf("%s: used %.0f%% of one CPU, at most %.0f%%", $name, $share * 100, ($limit{$name} + 0.10) * 100));
    cmp_ok($share, '>=', $limit{$name} / 4, sprintf("%s: but it did run (%.0f%%)", $name, $share * 100));
}

($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'systemctl stop') or diag($out);

done();
