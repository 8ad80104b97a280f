#!/usr/bin/perl
# Stopping: graceful stop, KILL after stop_timeout, SIGINT, a second TERM,
# and the configured stop_signal is the one delivered.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;
use Time::HiRes qw(time);

# Both scripts touch %TMP%/ready.POOL.ID once their traps are set.
# The recorder writes the first signal it gets in %TMP%/got.POOL.ID, then
# exits 0; the stubborn one ignores TERM.
my $recorder = <<'EOF';
for sig in TERM INT HUP QUIT USR1 USR2; do
  trap "echo $sig > %TMP%/got.$CORRAL_POOL.$CORRAL_WORKER; exit 0" $sig
done
touch %TMP%/ready.$CORRAL_POOL.$CORRAL_WORKER
while :; do /bin/sleep 0.05; done
EOF
my $stubborn = <<'EOF';
trap "" TERM
touch %TMP%/ready.$CORRAL_POOL.$CORRAL_WORKER
while :; do /bin/sleep 0.05; done
EOF

# Waits until workers 1..$n of each pool have set their traps.
sub wait_ready {
    my ($t, $n, @pools) = @_;
    my @files = map { my $p = $_; map { $t->path("ready.$p.$_") } 1 .. $n } @pools;
    $t->wait_for(sub { !grep { !-e } @files }, 10, "@pools: $n worker(s) each with traps set");
}

sub last_line {
    my ($t) = @_;
    my @lines = grep { length } split /\n/, $t->log;
    return $lines[-1] // '';
}

# Graceful: workers that exit on TERM; corrald exits 0 with "stopped" last.
{
    my $t = CorralTest->new(config => <<'EOF');
local inherit = { "CORRAL_TEST_DIR" }
pool "trap" { command = { "/bin/sh", "%TMP%/recorder.sh" }, workers = 2, env_inherit = inherit }
pool "plain" { command = "/bin/sleep 1000", workers = 2, env_inherit = inherit }
EOF
    $t->write_file('recorder.sh', $recorder);
    $t->start;
    $t->wait_for(sub { $t->workers('trap') == 2 && $t->workers('plain') == 2 }, 10, 'graceful: workers up');
    wait_ready($t, 2, 'trap');
    my %trap = $t->worker_map('trap');
    my %plain = $t->worker_map('plain');
    is($t->stop, 0, 'graceful: exit 0');
    ok(scalar $t->log_lines(qr/ info stopping(?: \(.*\))?$/), 'graceful: "stopping" logged');
    for my $id (sort keys %trap) {
        is(CorralTest::slurp($t->path("got.trap.$id")), "TERM\n", "graceful: trap worker $id got TERM");
        ok(scalar $t->log_lines(qr/ info worker stopped(?: \(.*\))? pool=trap worker=$id pid=$trap{$id}$/),
           "graceful: worker stopped pool=trap worker=$id logged");
    }
    for my $id (sort keys %plain) {
        ok(scalar $t->log_lines(qr/ info worker stopped(?: \(.*\))? pool=plain worker=$id pid=$plain{$id}$/),
           "graceful: worker stopped pool=plain worker=$id logged");
    }
    like(last_line($t), qr/ info stopped$/, 'graceful: "stopped" is the last line');
    ok(!$t->log_lines(qr/sending KILL/), 'graceful: no KILL needed');
}

# A worker that ignores TERM gets KILL after stop_timeout.
{
    my $t = CorralTest->new(config => <<'EOF');
pool "stubborn" { command = { "/bin/sh", "%TMP%/stubborn.sh" }, stop_timeout = "1s", env_inherit = { "CORRAL_TEST_DIR" } }
EOF
    $t->write_file('stubborn.sh', $stubborn);
    $t->start;
    $t->wait_for(sub { $t->workers('stubborn') == 1 }, 10, 'stubborn: worker up');
    wait_ready($t, 1, 'stubborn');
    my ($w) = $t->workers('stubborn');
    my $t0 = time;
    is($t->stop, 0, 'stubborn: exit 0');
    my $took = time - $t0;
    cmp_ok($took, '>=', 0.9, 'stubborn: corrald waited stop_timeout before KILL');
    cmp_ok($took, '<', 5, 'stubborn: and not much longer');
    ok(scalar $t->log_lines(qr/ warn worker did not stop within 1s, sending KILL pool=stubborn worker=1 pid=$w$/),
       'stubborn: KILL logged');
    ok(!CorralTest::pid_alive($w), 'stubborn: worker gone');
    like(last_line($t), qr/ info stopped$/, 'stubborn: "stopped" is the last line');
}

# A second TERM while stopping kills every worker at once.
{
    my $t = CorralTest->new(config => <<'EOF');
pool "stubborn" { command = { "/bin/sh", "%TMP%/stubborn.sh" }, workers = 2, stop_timeout = "60s", env_inherit = { "CORRAL_TEST_DIR" } }
EOF
    $t->write_file('stubborn.sh', $stubborn);
    $t->start;
    $t->wait_for(sub { $t->workers('stubborn') == 2 }, 10, 'second TERM: workers up');
    wait_ready($t, 2, 'stubborn');
    my $t0 = time;
    $t->signal('TERM');
    $t->wait_log(qr/ info stopping(?: \(.*\))?$/);
    $t->signal('TERM');
    is($t->wait_exit(10), 0, 'second TERM: exit 0 long before stop_timeout');
    cmp_ok(time - $t0, '<', 10, 'second TERM: did not wait for the 60s stop_timeout');
}

# SIGINT stops like SIGTERM.
{
    my $t = CorralTest->new(config => <<'EOF');
pool "plain" { command = "/bin/sleep 1000", workers = 2, env_inherit = { "CORRAL_TEST_DIR" } }
EOF
    $t->start;
    $t->wait_for(sub { $t->workers('plain') == 2 }, 10, 'SIGINT: workers up');
    $t->signal('INT');
    is($t->wait_exit(10), 0, 'SIGINT: exit 0');
    like(last_line($t), qr/ info stopped$/, 'SIGINT: "stopped" is the last line');
}

# stop_signal: by name, with SIG, by number; default TERM.
{
    my $t = CorralTest->new(config => <<'EOF');
local function rec(sig) return { command = { "/bin/sh", "%TMP%/recorder.sh" }, stop_signal = sig, env_inherit = { "CORRAL_TEST_DIR" } } end
pool "sig_int" (rec("INT"))
pool "sig_usr1" (rec("SIGUSR1"))
pool "sig_num" (rec(12))
pool "sig_default" (rec(nil))
EOF
    $t->write_file('recorder.sh', $recorder);
    $t->start;
    my %want = (sig_int => 'INT', sig_usr1 => 'USR1', sig_num => 'USR2', sig_default => 'TERM');
    $t->wait_for(sub { !grep { $t->workers($_) != 1 } keys %want }, 10, 'stop_signal: workers up');
    wait_ready($t, 1, sort keys %want);
    is($t->stop, 0, 'stop_signal: exit 0');
    for my $pool (sort keys %want) {
        is(CorralTest::slurp($t->path("got.$pool.1")), "$want{$pool}\n", "$pool: got SIG$want{$pool}");
    }
}

CorralTest->done;
