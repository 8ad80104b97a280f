#!/usr/bin/perl
# Replays the fuzz targets' seed corpus and regression cases
# (t/fuzz/corpus/TARGET, t/fuzz/regress/TARGET) through the replay
# programs make builds with the ordinary compiler (t/fuzz/replay.c): one
# ok per target, which fails if any input crashes or breaks the target's
# property. make test-host passes their directory in CORRAL_FUZZ_REPLAY;
# run alone, the test takes CORRALD's directory and has make (re)build
# them there.

use strict;
use warnings;
use FindBin;
use File::Basename qw(dirname);
use Test::More;

my $root = "$FindBin::Bin/..";
my @targets = qw(json control notify units config luapat);
my $dir = $ENV{CORRAL_FUZZ_REPLAY} // ($ENV{CORRALD} ? dirname($ENV{CORRALD}) : "$root/build");

if (!$ENV{CORRAL_FUZZ_REPLAY}) {
    # build/ or build/asan (make SANITIZE=1), as make test-host would
    my $san = $dir =~ m{/asan/?$} ? 'SANITIZE=1' : '';
    my $out = `make -C '$root' --no-print-directory $san fuzz-replay 2>&1`;
    is($?, 0, "make $san fuzz-replay") or diag($out);
}

for my $t (@targets) {
    my @inputs = grep { -d } map { "$root/t/fuzz/$_/$t" } qw(corpus regress);
    my $out = `'$dir/fuzz-replay-$t' @inputs 2>&1`;
    my $status = $?;
    my ($n) = $out =~ /^replayed (\d+) inputs$/m;
    my ($last) = reverse($out =~ /^replay: (.*)$/mg);
    ok($status == 0 && $n && $out !~ /ERROR: AddressSanitizer|runtime error:|property broken/,
       "$t: " . ($n // 0) . ' inputs replayed') or diag("last input: " . ($last // '(none)') . "\n$out");
}

done_testing();
