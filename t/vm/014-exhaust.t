#!/usr/bin/perl
# Exhaustion inside the guest (its sysctls and mounts only):
# - pids.max of a pool reached: the prototype's clone3 fails with EAGAIN;
#   corrald names the pool and the errno, the pool backs off and retries,
#   and reaches its target once pids.max is raised;
# - inotify watches exhausted (fs.inotify.max_user_watches): corrald says
#   so once and polls cgroup.events instead, so an emptying worker is still
#   freed and a freeze still completes; it says when watches come back;
# - no inotify instance to be had at startup (max_user_instances): corrald
#   runs all the same, polling;
# - /run/corral full (a tmpfs out of inodes): corrald cannot make its
#   control socket, says so and exits 1; it starts once there is room.
# Meanwhile corrald answers and the other pool keeps its workers.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;
use Time::HiRes qw(time sleep);

my $UNIT = $CorralVM::UNIT;
my $CG = $CorralVM::UNIT_CG;
my $CGROOT = $CorralVM::CGROOT;
my $SYS = '/proc/sys/fs/inotify';
my %saved = map { $_ => slurp("$SYS/$_") } qw(max_user_watches max_user_instances);
chomp %saved;
my $mounted;
# Writes a /proc/sys or cgroup file in place (spew's rename would not do).
sub put {
    my ($file, $text) = @_;
    open my $fh, '>', $file or return 0;
    my $ok = print $fh $text;
    return close($fh) && $ok;
}
END {
    # the guest's own settings back, whatever happened
    put("$SYS/$_", "$saved{$_}\n") for grep { defined $saved{$_} } keys %saved;
    if ($mounted) { system('systemctl', 'stop', $UNIT); system('umount', '/run/corral') }
}

sub entries { journal_find($UNIT, @_) }
# Starts corral.service without waiting for READY=1, which a pool kept
# short of its target holds back.
sub start_nb {
    corral_config($_[0]);
    systemctl('reset-failed', $UNIT);
    return systemctl('start', '--no-block', $UNIT);
}
sub pong { my ($rc, $out) = corralctl('ping'); $rc == 0 && $out eq "pong\n" }

# --- pids.max: clone3 fails with EAGAIN ------------------------------------------

my $cur = journal_cursor();
my ($rc, $out) = start_nb(corral_lua(
    [ pool => 'capped', command => '/bin/sleep 1000', workers => 4, limits => { pids_max => 3 },
      backoff => { initial => '100ms', max => '800ms' }, crash_limit => { failures => 0 } ],
    [ pool => 'other', command => '/bin/sleep 1000', workers => 2 ],
));
ok(wait_until(sub { pool_workers('other') == 2 }, 60), 'pids: the other pool is up') or diag($out);
is(cg_read("$CG/capped", 'pids.max'), 3, 'capped/pids.max 3: the prototype and two workers');
ok(wait_until(sub { entries($cur, CORRAL_POOL => 'capped',
                            MESSAGE => qr/^prototype: unable to fork a worker: Resource temporarily unavailable$/) }, 30),
   'the journal names the pool and EAGAIN') or diag_journal();
my %other = worker_pids_by_id('other');
my $t0 = time;
my $c1 = journal_cursor();
stays(sub { pong() }, 3, 'corrald answers ping meanwhile');
my $secs = time - $t0;
my @tries = entries($c1, CORRAL_POOL => 'capped', MESSAGE => qr/unable to fork a worker/);
ok(@tries >= 1, sprintf('the pool keeps retrying (%d attempts in %.1f s)', scalar @tries, $secs));
# two workers short of the target, so two tries a round; the rounds come
# after 100, 200, 400 ms, then every 800 ms: a tight loop would be hundreds
cmp_ok(scalar @tries, '<=', 2 * ($secs / 0.8 + 4), 'spaced by the backoff (800ms at most), not a tight loop');
cmp_ok(scalar pool_workers('capped'), '<=', 2, 'two workers of capped at most');
($rc, $out) = corralctl('status');
is($rc, 0, 'corralctl status answers') or diag($out);
like($out, qr/^other\s+running\s+2\/2\s/m, 'other: running, 2/2') or diag($out);
ok(put("$CGROOT$CG/capped/pids.max", "max\n"), 'capped/pids.max raised to max');
ok(wait_until(sub { pool_workers('capped') == 4 }, 30), 'pids.max raised: capped reaches its target of 4');
is_deeply({ worker_pids_by_id('other') }, \%other, 'the other pool kept its workers');
($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'pids: systemctl stop') or diag($out);

# --- inotify watches exhausted -------------------------------------------------------

# leaky's workers leave two processes behind when they exit: corrald must
# wait for the cgroup to empty (an inotify watch, or the poll without one)
my $config = corral_lua(
    [ pool => 'leaky', command => [ '/bin/sh', '-c', 'sleep 1000 & sleep 1000 & exec sleep 0.3' ], workers => 2,
      backoff => { initial => '100ms', max => '200ms' }, crash_limit => { failures => 0 } ],
    [ pool => 'other', command => '/bin/sleep 1000', workers => 2 ],
);
sub worker_cgroups { grep { $_ ne 'prototype' } cgroup_dirs("$CG/$_[0]") }

$cur = journal_cursor();
($rc, $out) = start_nb($config);
ok(wait_until(sub { pool_workers('other') == 2 && entries($cur, CORRAL_POOL => 'leaky', MESSAGE => 'worker started') >= 4 }, 60),
   'watches: pools up, leaky churning') or diag($out);
%other = worker_pids_by_id('other');
$cur = journal_cursor();
ok(put("$SYS/max_user_watches", "1\n"), "max_user_watches set to 1");
ok(wait_until(sub { entries($cur, PRIORITY => '4',
                            MESSAGE => qr{^cgroup: unable to watch \S+/leaky/\d+/cgroup\.events: No space left on device; polling it every 100 ms}) }, 30),
   'corrald says it cannot watch (ENOSPC) and polls') or diag_journal();
my $started = entries($cur, CORRAL_POOL => 'leaky', MESSAGE => 'worker started');
ok(wait_until(sub { entries($cur, CORRAL_POOL => 'leaky', MESSAGE => 'worker started') >= $started + 4 }, 30),
   'leaky goes on being replaced');
is(scalar(entries($cur, MESSAGE => qr/^cgroup: unable to watch/)), 1, 'it says so once');
($rc, $out) = corralctl('freeze', 'other');
is($rc, 0, 'corralctl freeze other') or diag($out);
ok(wait_until(sub { entries($cur, CORRAL_POOL => 'other', MESSAGE => 'pool frozen') }, 10), 'the freeze completes without a watch');
($rc, $out) = corralctl('thaw', 'other');
ok(wait_until(sub { entries($cur, CORRAL_POOL => 'other', MESSAGE => 'pool thawed') }, 10), 'and so does the thaw');
($rc, $out) = corralctl('stop', 'leaky');
is($rc, 0, 'corralctl stop leaky') or diag($out);
ok(wait_until(sub { !worker_cgroups('leaky') }, 15), 'every emptied worker of leaky was freed (no cgroup left)')
    or diag(join ' ', worker_cgroups('leaky'));
ok(pong(), 'watches: corrald answers ping');
is_deeply({ worker_pids_by_id('other') }, \%other, 'watches: the other pool kept its workers');
ok(put("$SYS/max_user_watches", "$saved{max_user_watches}\n"), "max_user_watches set to $saved{max_user_watches}");
($rc, $out) = corralctl('--no-wait', 'start', 'leaky');    # its workers never stay ready
ok(wait_until(sub { entries($cur, MESSAGE => qr/^cgroup: inotify watches can be had again/) }, 30),
   'watches back: corrald says so');
($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'watches: systemctl stop') or diag($out);

# --- no inotify instance at startup -----------------------------------------------

$cur = journal_cursor();
ok(put("$SYS/max_user_instances", "1\n"), "max_user_instances set to 1");
($rc, $out) = start_nb($config);
ok(wait_until(sub { pool_workers('other') == 2 && pong() }, 60), 'instances: corrald starts and answers') or diag($out);
ok(entries($cur, MESSAGE => qr/^cgroup: unable to create an inotify instance: Too many open files; polling/),
   'it says it has no inotify instance and polls') or diag_journal();
($rc, $out) = corralctl('stop', 'leaky');
ok(wait_until(sub { !worker_cgroups('leaky') }, 15), 'instances: emptied workers are still freed');
ok(put("$SYS/max_user_instances", "$saved{max_user_instances}\n"), "max_user_instances set to $saved{max_user_instances}");
($rc, $out) = corralctl('--no-wait', 'start', 'leaky');    # its workers never stay ready
ok(wait_until(sub { entries($cur, MESSAGE => qr/^cgroup: inotify watches can be had again/) }, 30),
   'instances back: corrald watches again');
($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'instances: systemctl stop') or diag($out);

# --- /run/corral full ----------------------------------------------------------------

mkdir '/run/corral';
is(system('mount', '-t', 'tmpfs', '-o', 'size=1m,nr_inodes=2', 'corral-test-full', '/run/corral'), 0, 'a tmpfs of 2 inodes on /run/corral');
$mounted = 1;
ok(put('/run/corral/filler', "x\n"), 'a file takes the last inode');
$cur = journal_cursor();
($rc, $out) = start_nb($config);
my $p;
ok(wait_until(sub { $p = unit_props($UNIT, qw(ActiveState ExecMainStatus)); $p->{ActiveState} eq 'failed' }, 60),
   '/run full: corral.service fails to start') or diag("ActiveState=$p->{ActiveState}");
is($p->{ExecMainStatus}, 1, 'corrald exits 1');
ok(entries($cur, MESSAGE => qr{^control: unable to listen on /run/corral/control\.sock: No space left on device$}),
   'it says why: no space for the control socket') or diag_journal();
ok(wait_until(sub { !pool_workers('other') && !pool_workers('leaky') }, 10), 'and leaves no worker behind');
unlink '/run/corral/filler';
($rc, $out) = start_nb($config);
ok(wait_until(sub { pong() }, 30), 'room again: corrald starts and answers ping');
($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, '/run: systemctl stop') or diag($out);
is(system('umount', '/run/corral'), 0, 'umount /run/corral');
$mounted = 0;

done();
