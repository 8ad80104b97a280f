#!/usr/bin/perl
# The chaos test, short: t/chaos/chaos.pl for $CORRAL_CHAOS_SECONDS
# seconds (default 30; $CORRAL_CHAOS_SEED repeats a run). One test per
# invariant family (no zombie, every process in its cgroup, no cgroup
# left, no pool stuck, every pool back at target, no fd or memory leak, no
# alert, ping answered in time, control answers right, a clean exit),
# the run's counts as a diag. `make chaos DURATION=300` is the long run.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;

my @FAMILIES = qw(zombie placement cgroup stuck recovery leak log ping control exit);
my %WHAT = (
    zombie    => 'no zombie child of corrald or of a prototype',
    placement => 'every process in its cgroup',
    cgroup    => 'no cgroup left without its pool, worker or prototype',
    stuck     => 'no pool stuck (at target, waiting, failed with a reason, or moving)',
    recovery  => 'every pool back at target after the chaos',
    leak      => 'corrald\'s fds and memory flat',
    log       => 'no alert and no sanitizer report in the log',
    ping      => 'ping answered within 50 ms (p99) and 1 s (max), twice that under ASan',
    control   => 'every control command answered as expected',
    exit      => 'corrald stops with exit 0 and leaves nothing',
);

my $secs = $ENV{CORRAL_CHAOS_SECONDS} // 30;
my @cmd = ($^X, "$FindBin::Bin/chaos/chaos.pl", '--quiet', '--duration', $secs);
push @cmd, '--seed', $ENV{CORRAL_CHAOS_SEED} if defined $ENV{CORRAL_CHAOS_SEED};
# (CORRALD and CORRALCTL pass through the environment)
open my $out, '-|', @cmd or BAIL_OUT("cannot run chaos.pl: $!");
my @lines;
while (my $line = <$out>) {
    chomp $line;
    push @lines, $line;
    note($line) if $line =~ /^chaos: seed /;
}
close $out;
my $status = $?;

my ($summary) = grep { /^chaos summary: / } @lines;
for my $fam (@FAMILIES) {
    my ($n) = map { /^family \Q$fam\E: (\d+) violations?$/ ? $1 : () } @lines;
    ok(defined $n && $n == 0, "chaos: $WHAT{$fam}")
        or diag(join "\n", defined $n ? () : 'no result for this family', grep { /^VIOLATION .*\[\Q$fam\E\]/ } @lines);
}
is($status, 0, 'chaos.pl exits 0') or diag(join "\n", grep { !/^family / } @lines);
ok($summary, 'chaos.pl prints its summary');
diag($_) for grep { /^chaos: (seed|slowest|pools seen|pools failed|status fields|corrald.s log)/ } @lines;
diag($summary // 'no summary');

done_testing;
