#!/usr/bin/perl
# Restart policies: always, on-failure, never.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;

# "once_N" pools exit with status N the first time and sleep afterwards.
my $t = CorralTest->new(config => <<'EOF');
local function once(status, marker)
  return { "/bin/sh", "-c", "if [ -e %TMP%/" .. marker .. " ]; then exec /bin/sleep 1000; fi; touch %TMP%/" .. marker .. "; exit " .. status }
end
local inherit = { "CORRAL_TEST_DIR" }
pool "always"      { command = "/bin/sleep 1000", workers = 3, env_inherit = inherit }
pool "always_exit0" { command = once(0, "a0"), env_inherit = inherit }
pool "never"       { command = "/bin/sleep 1000", workers = 2, restart = "never", env_inherit = inherit }
pool "never_exit3" { command = { "/bin/sh", "-c", "exit 3" }, restart = "never", env_inherit = inherit }
pool "onfail_kill" { command = "/bin/sleep 1000", restart = "on-failure", env_inherit = inherit }
pool "onfail_exit0" { command = { "/bin/sh", "-c", "exit 0" }, restart = "on-failure", env_inherit = inherit }
pool "onfail_exit1" { command = once(1, "f1"), restart = "on-failure", env_inherit = inherit }
EOF
$t->start;

$t->wait_for(sub { $t->workers('always') == 3 && $t->workers('never') == 2
                   && $t->workers('onfail_kill') == 1 }, 10, 'sleeping pools are up');

sub started { scalar $t->log_lines(qr/ worker started pool=$_[0] /) }

# always: a killed worker is replaced, with the same (lowest free) id.
my %before = $t->worker_map('always');
my $victim = $before{2};
kill 'KILL', $victim;
$t->wait_log(qr/ warn worker killed by signal 9 \(KILL\) pool=always worker=2 pid=$victim$/);
$t->wait_log(qr/ info restarting worker in \d+ms pool=always$/);
$t->wait_for(sub { $t->workers('always') == 3 && !grep { $_ == $victim } $t->workers('always') },
             10, 'always: back to 3 workers, the killed one gone');
my %after = $t->worker_map('always');
is_deeply([ sort keys %after ], [ 1, 2, 3 ], 'always: ids 1..3 again');
isnt($after{2}, $victim, 'always: worker 2 has a new pid');
is($after{1}, $before{1}, 'always: worker 1 untouched');
is($after{3}, $before{3}, 'always: worker 3 untouched');
my $new2 = $after{2};
$t->wait_log(qr/ info worker started pool=always worker=2 pid=$new2$/);

# always: a clean exit is restarted too.
$t->wait_log(qr/ info worker exited with status 0 pool=always_exit0 worker=1 pid=\d+$/);
$t->wait_for(sub { $t->workers('always_exit0') == 1 && started('always_exit0') == 2 }, 10,
             'always: a worker that exited 0 is restarted');

# on-failure: killed by a signal is a failure, restarted.
my ($ok_victim) = $t->workers('onfail_kill');
kill 'KILL', $ok_victim;
$t->wait_log(qr/ warn worker killed by signal 9 \(KILL\) pool=onfail_kill worker=1 pid=$ok_victim$/);
$t->wait_for(sub { my @w = $t->workers('onfail_kill'); @w == 1 && $w[0] != $ok_victim }, 10,
             'on-failure: a killed worker is restarted');

# on-failure: exit 1 is restarted.
$t->wait_log(qr/ warn worker exited with status 1 pool=onfail_exit1 worker=1 pid=\d+$/);
$t->wait_for(sub { $t->workers('onfail_exit1') == 1 && started('onfail_exit1') == 2 }, 10,
             'on-failure: a worker that exited 1 is restarted');

# never: a killed worker stays dead.
my ($never_victim) = $t->workers('never');
kill 'KILL', $never_victim;
$t->wait_log(qr/ warn worker killed by signal 9 \(KILL\) pool=never worker=\d+ pid=$never_victim$/);

# on-failure with exit 0, and never with exit 3: not restarted.
$t->wait_log(qr/ info worker exited with status 0 pool=onfail_exit0 worker=1 pid=\d+$/);
$t->wait_log(qr/ warn worker exited with status 3 pool=never_exit3 worker=1 pid=\d+$/);

$t->stays(sub {
    $t->workers('never') == 1 && started('never') == 2
    && !$t->workers('onfail_exit0') && started('onfail_exit0') == 1
    && !$t->workers('never_exit3') && started('never_exit3') == 1
}, 1.5, 'never / on-failure with exit 0: nothing restarted for 1.5s');
is(scalar $t->workers('never'), 1, 'never: one worker left');
is(started('onfail_exit0'), 1, 'on-failure: exit 0 started once');
is(started('never_exit3'), 1, 'never: exit 3 started once');
is(scalar $t->workers('always'), 3, 'always: still 3 workers');

$t->done;
