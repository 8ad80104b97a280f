#!/usr/bin/perl
# `make bench QUICK=1` works: t/bench/bench.pl --quick runs every figure
# and writes JSON in which each has a number for corral and for its
# baseline, and it leaves no cgroup behind. A check of the driver, never a
# timed pass/fail: a figure that misses its target does not fail this.
# make test-host builds bench-bare and bench-ready beside corrald; run
# alone, the test compiles them if they are missing.

use strict;
use warnings;
use FindBin;
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use JSON::PP ();
use Test::More;
use Time::HiRes qw(time);
use lib "$FindBin::Bin/lib";
use CorralTest ();
use CorralProc qw(cgroup_mount);

my $root = "$FindBin::Bin/..";
my $tmp = tempdir('corral-benchq-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $bin = dirname($CorralTest::CORRALD);
my %tool;
for my $t (qw(bare ready)) {
    $tool{$t} = "$bin/bench-$t";
    next if -x $tool{$t};
    $tool{$t} = "$tmp/bench-$t";
    system('cc', '-std=gnu11', '-O2', '-Wall', '-Wextra', '-Werror', '-o', $tool{$t}, "$root/t/bench/$t.c") == 0
        or BAIL_OUT("cannot build t/bench/$t.c");
}

# the figures of a QUICK run
my @ids = qw(spawn.notify.100 spawn.lua.100
             respawn.notify.nodelay.p50 respawn.notify.nodelay.p99 respawn.notify.default.p50 respawn.notify.default.p99
             respawn.lua.nodelay.p50 respawn.lua.nodelay.p99 respawn.lua.default.p50 respawn.lua.default.p99
             idle.rss idle.pss idle.rss_per_worker idle.cpu idle.ctxsw idle.wakeups
             control.status.p50 control.status.p99 cow.copies churn.rate churn.cpu growth.spawn growth.status
             isolation.spawn.50);

my $cg = cgroup_mount();
my %before = map { $_ => 1 } glob "$cg/corral-bench-*";
my $json = "$tmp/bench.json";
my $t0 = time;
my $out = `perl '$root/t/bench/bench.pl' --quick --json '$json' --corrald '$CorralTest::CORRALD' --corralctl '$CorralTest::CORRALCTL' --bare '$tool{bare}' --ready '$tool{ready}' 2>&1`;
my $status = $?;
diag(sprintf 'bench.pl --quick took %.0f s', time - $t0);
is($status, 0, 'bench.pl --quick exits 0') or diag($out);
like($out, qr/^\| figure \| unit \| corral \| baseline \| ratio \| target \| result \|$/m, 'it prints the markdown table');

my $report = eval { JSON::PP->new->decode(do { local (@ARGV, $/) = $json; <> }) };
ok($report && ref $report->{figures} eq 'ARRAY', 'it writes the JSON report') or diag($@);
my %fig = map { $_->{id} => $_ } @{ $report->{figures} || [] };
my $num = qr/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;
for my $id (@ids) {
    my $f = $fig{$id};
    ok($f && defined $f->{corral} && $f->{corral} =~ $num && defined $f->{baseline} && $f->{baseline} =~ $num
        && exists $f->{pass}, "$id: corral and baseline measured")
        or diag(JSON::PP->new->canonical->encode($f // {}));
}
is_deeply([grep { !$before{$_} } glob "$cg/corral-bench-*"], [], 'no cgroup left behind');

done_testing();
