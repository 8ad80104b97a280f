#!/usr/bin/perl
# Fuzzes the notify parser: builds t/fuzz/notify-fuzz.c (which includes
# daemon/notify.c) with AddressSanitizer and UBSan where the compiler has
# them, and runs it on a few hundred thousand generated datagrams, bounded
# in time. FUZZ_ITERATIONS, FUZZ_SEED and FUZZ_SECONDS override the
# defaults; a failure prints the seed to run it again.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(find_program);
use File::Temp qw(tempdir);
use Test::More;

my $root = "$FindBin::Bin/..";
my $cc = $ENV{CC} // find_program('cc') // find_program('gcc');
plan skip_all => 'no C compiler' unless $cc;
my $dir = tempdir('corral-fuzz-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $bin = "$dir/notify-fuzz";

my $pkg = `pkg-config --cflags --libs libsystemd 2>/dev/null`;
chomp $pkg;
$pkg = '-lsystemd' if $? || $pkg eq '';
my @base = ($cc, '-std=gnu11', '-D_GNU_SOURCE', '-Wall', '-Wextra', '-g', '-O1', "-I$root/daemon",
            '-o', $bin, "$root/t/fuzz/notify-fuzz.c", split(' ', $pkg), '-lev');
my $san = '-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer';

sub build {
    my (@flags) = @_;
    my $cmd = join ' ', map { "'$_'" } @base[0 .. $#base], @flags;
    my $out = `$cmd 2>&1`;
    return ($? == 0, $out);
}

my ($ok, $out) = build(split ' ', $san);
my $sanitized = $ok;
if (!$ok) {
    diag("no sanitizers here, building without them:\n$out");
    ($ok, $out) = build();
}
ok($ok, 'the fuzzer builds' . ($sanitized ? ' with ASan and UBSan' : ' (no sanitizers)')) or do {
    diag($out);
    done_testing();
    exit;
};
is($out, '', 'no compiler warnings') or diag($out);

my $iterations = $ENV{FUZZ_ITERATIONS} // 300000;
my $seed = $ENV{FUZZ_SEED} // (time ^ $$);
my $seconds = $ENV{FUZZ_SECONDS} // 18;
my $report = `ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 '$bin' $iterations $seed $seconds 2>&1`;
my $status = $?;
is($status, 0, "every check held (seed $seed)") or diag($report);
my ($n, $checks, $failures) = $report =~ /: (\d+) datagrams .*, (\d+) checks, (\d+) failures$/m;
ok(defined $n, 'the fuzzer reported') or diag($report);
note($report);
is($failures, 0, "no failure in $checks checks");
my $floor = $ENV{FUZZ_ITERATIONS} ? $iterations : 100000;
cmp_ok($n // 0, '>=', $floor, "at least $floor datagrams within ${seconds}s");
unlike($report, qr/ERROR: AddressSanitizer|runtime error:|LeakSanitizer/, 'no sanitizer report');

done_testing();
