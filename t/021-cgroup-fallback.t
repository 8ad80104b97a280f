#!/usr/bin/perl
# Placement with the fallback (CORRAL_PIPE_PLACEMENT=1): the child is
# forked, waits on a pipe until its parent wrote it into the cgroup's
# cgroup.procs, and only then runs. The same checks as
# 020-cgroup-placement.t, which this runs with $PIPE set.

use strict;
use warnings;
use FindBin;

our $PIPE = 1;
my $file = "$FindBin::Bin/020-cgroup-placement.t";
unless (defined do $file) {
    die "$file: $@" if $@;
    die "$file: $!" if $!;
}
