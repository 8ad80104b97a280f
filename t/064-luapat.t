#!/usr/bin/perl
# daemon/luapat.c, the pattern functions corrald gives Lua, against
# LuaJIT's own: the same results and the same errors on random subjects,
# valid and broken patterns, start positions and replacements (several
# seeds), checked by t/luapat/diff.lua in the luapat-diff program the
# Makefile builds.

use strict;
use warnings;
use FindBin;
use Test::More;

my $diff = $ENV{CORRAL_LUAPAT_DIFF} // "$FindBin::Bin/../build/luapat-diff";
plan skip_all => "luapat-diff not built ($diff): run it through make test-host" unless -x $diff;

for my $seed (1 .. 4) {
    my $out = `SEED=$seed N=25000 $diff $FindBin::Bin/luapat/diff.lua 2>&1`;
    is($?, 0, "seed $seed: luapat agrees with LuaJIT on 25000 cases") or diag($out);
}
done_testing;
