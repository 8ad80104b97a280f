package CorralWait;

# Waiting on a condition with a deadline, never a fixed sleep: shared by
# t/lib/CorralTest.pm (as methods, which show corrald's log tail when a
# wait fails) and t/vm/lib/CorralVM.pm (as functions, which show the
# unit's journal).

use strict;
use warnings;

use Exporter qw(import);
use Test::More ();
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(poll_until wait_for stays);

our $POLL = 0.03;    # seconds between two looks at a condition (default)

# Calls $cond until it returns true or $timeout seconds (default 10) pass,
# every $interval seconds (default $POLL); returns its last value. Not a
# test by itself.
sub poll_until {
    my ($cond, $timeout, $interval) = @_;
    my $deadline = time + ($timeout // 10);
    while (1) {
        my $v = $cond->();
        return $v if $v || time >= $deadline;
        sleep($interval // $POLL);
    }
}

# A test: $cond becomes true within $timeout seconds. $on_fail, when
# given, is called after the failed test (to show what went on). Returns
# the last value of $cond.
sub wait_for {
    my ($cond, $timeout, $name, $on_fail) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $v = poll_until($cond, $timeout);
    Test::More::ok($v, $name // 'condition met') or ($on_fail && $on_fail->());
    return $v;
}

# A test: $cond stays true for all of $duration seconds (for things that
# must not happen); looked at every $POLL seconds and once more at the
# end. $on_fail as for wait_for.
sub stays {
    my ($cond, $duration, $name, $on_fail) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $deadline = time + $duration;
    my $held = 1;
    while (time < $deadline) {
        $held = $cond->() or last;
        sleep $POLL;
    }
    $held &&= $cond->();
    Test::More::ok($held, $name // "condition holds for ${duration}s") or ($on_fail && $on_fail->());
    return $held;
}

1;
