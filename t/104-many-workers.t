#!/usr/bin/perl
# A pool of a few hundred workers through the moves that used to walk
# every worker per event (issue 14): corrald now keeps counts by state,
# a table of workers by pid and a slot per id, and this checks that they
# stay right. In the sanitized build (make test-host SANITIZE=1) every
# reconcile also compares the kept counts with a full pass and raises an
# alert on any difference, which done() reports.
#
# 300 exec'd workers: kill 30 at once (each replaced under its own id),
# scale down to 120 and up to 250 (ids 1..N each time), a reload that
# replaces them all (a rolling replacement: one surge worker, then 1..N
# again). (MAINPID=, which moves a worker to a new pid in the table, is
# t/031 and t/081.) Also: corrald and corralctl are linked with -z now, so that the
# workers forked from the prototype bind no symbol of their own.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive);
use Test::More;

# the dynamic section says BIND_NOW (or FLAGS_1 NOW)
for my $bin ($CorralTest::CORRALD, $CorralTest::CORRALCTL) {
    my $d = `readelf -d '$bin' 2>&1`;
    SKIP: {
        skip "readelf is not installed (binutils)", 1 if $? == -1 || $d =~ /not found/;
        like($d, qr/\(FLAGS\)\s+BIND_NOW|\(FLAGS_1\)\s+Flags:.*\bNOW\b/, "$bin: linked with -z now");
    }
}

sub config {
    my ($n, $gen) = @_;
    return <<"EOF";
pool "many" {
  command = { "/bin/sleep", "100$gen" },
  workers = $n,
  backoff = { initial = 0 },
  crash_limit = { failures = 0 },
  start_window = "0s",
  stop_timeout = "5s",
}
EOF
}

my $t = CorralTest->new(config => config(300, 0));
$t->start;
$t->wait_control;

sub settled {
    my ($n, $name) = @_;
    $t->wait_for(sub { $t->workers('many') == $n && $t->ids_settled('many', $n) }, 60, "$name: ids 1..$n");
    $t->wait_for(sub { my $st = $t->status('many')->{many};
                       ($st->{ready} // -1) == $n && $st->{state} eq 'running' },
                 30, "$name: $n ready, the pool running");
}

settled(300, 'start');

# 30 killed at once: each replaced under its own id
my %m = $t->worker_map('many');
my @victims = grep { $_ % 10 == 3 } 1 .. 300;
kill 'KILL', map { $m{$_} } @victims;
$t->wait_for(sub { !grep { pid_alive($m{$_}) } @victims }, 20, 'the 30 killed workers are gone');
settled(300, 'after 30 kills');
my %now = $t->worker_map('many');
is(scalar(grep { $now{$_} == $m{$_} } @victims), 0, 'each killed id has a new worker');
is(scalar(grep { $now{$_} != $m{$_} } grep { $_ % 10 != 3 } 1 .. 300), 0, 'the others are the same processes');

# scale down and up
is($t->ctl('scale', 'many', 120)->{code}, 0, 'scale to 120');
settled(120, 'scaled down');
is($t->ctl('scale', 'many', 250)->{code}, 0, 'scale to 250');
settled(250, 'scaled up');

# a reload that changes the command: all replaced, one at a time
my @old = $t->workers('many');
$t->write_config(config(250, 1));
$t->reload;
$t->wait_for(sub { my %o = map { $_ => 1 } @old; !grep { $o{$_} } $t->workers('many') }, 120,
             'reload: every old worker replaced');
settled(250, 'after the reload');
my $st = $t->status('many')->{many};
is(scalar(grep { ($_->{generation} // 0) != $st->{generation} } @{ $st->{workers} }), 0,
   'every worker of the new generation');

$t->done;
