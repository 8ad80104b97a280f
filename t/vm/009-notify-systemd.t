#!/usr/bin/perl
# corral.service as a Type=notify service: `systemctl start` returns once
# every pool is ready (a ready = "notify" pool whose workers say READY=1
# with systemd-notify after 3 s); STATUS= as StatusText; `systemctl
# reload` with a good config (a pool added) and a bad one (nothing
# changes, the journal says file:line); the journal has corrald's entries
# with CORRAL_POOL/CORRAL_WORKER fields and the workers' output under
# their pool's name; a pool that fails before it is ready fails the start.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;

my $UNIT = $CorralVM::UNIT;
my $CG = $CorralVM::UNIT_CG;

my $pools = <<'EOF';
pool "slow" {
  command = { "/bin/sh", "-c", "sleep 3; systemd-notify --ready --status='warmed up'; exec sleep 5001" },
  workers = 2,
  ready = "notify",
  stop_timeout = "5s",
}
pool "talker" {
  command = { "/bin/sh", "-c", "echo hello from worker $CORRAL_WORKER; echo complaint from worker $CORRAL_WORKER >&2; exec sleep 5002" },
  workers = 1,
  stop_timeout = "5s",
}
pool "tagged" {
  command = { "/bin/sh", "-c", "echo tagged output; exec sleep 5003" },
  syslog_identifier = "custom-tag",
  stop_timeout = "5s",
}
EOF
my $extra = qq{pool "extra" { command = "/bin/sleep 5004", workers = 1, stop_timeout = "5s" }\n};
my $settings = qq{settings { log_level = "info" }\n};

# --- start: returns once the pools are ready ---------------------------------

my $cursor = journal_cursor();
my ($rc, $out, $took) = corral_start($settings . $pools);
is($rc, 0, 'systemctl start corral') or diag($out);
my $p = unit_props($UNIT, qw(ActiveState SubState StatusText MainPID Type NotifyAccess));
note(sprintf 'systemctl start took %.1f s', $took);
cmp_ok($took, '>=', 3, 'systemctl start waited for the workers that need 3 s to be ready');
is($p->{Type}, 'notify', 'Type=notify');
is($p->{ActiveState}, 'active', 'active as soon as start returns');
is($p->{StatusText}, '3 pools, 4/4 workers ready', 'StatusText right after start: 3 pools, 4/4 workers ready');
my $main = $p->{MainPID};
($rc, $out) = corralctl('status', 'slow');
like($out, qr/^slow\s+running\s+2\/2\s/m, 'corralctl status: slow is running, 2/2 ready') or diag($out);
my @lines = grep { /^\s+\d+\s+\d+\s+ready\s/ } split /\n/, $out;
is(scalar @lines, 2, 'both slow workers are ready');
is(scalar(grep { /warmed up$/ } @lines), 2, "corralctl status shows each worker's STATUS= (warmed up)") or diag($out);

my @j = journal_entries($UNIT, $cursor);
my ($ready_i) = grep { ($j[$_]{MESSAGE} // '') eq 'ready: 3 pools, 4/4 workers ready' } 0 .. $#j;
my ($started_i) = grep { ($j[$_]{MESSAGE} // '') =~ /^Started corral\.service/ } 0 .. $#j;
ok(defined $ready_i, 'journal: corrald says "ready: 3 pools, 4/4 workers ready"');
ok(defined $started_i && defined $ready_i && $ready_i < $started_i, 'systemd says Started only after that');
my ($first_ready) = grep { ($_->{MESSAGE} // '') eq 'pool ready (2/2 workers)' && ($_->{CORRAL_POOL} // '') eq 'slow' } @j;
ok($first_ready, 'journal: pool ready (2/2 workers), CORRAL_POOL=slow');

# --- the journal: fields and the workers' output ------------------------------------

my @started;
ok(wait_until(sub {
    @started = journal_find($UNIT, $cursor, MESSAGE => 'worker started', CORRAL_POOL => 'slow');
    @started == 2;
}, 10), 'journal: 2 "worker started" entries with CORRAL_POOL=slow');
my %slow = worker_pids_by_id('slow');
is_deeply([ sort map { $_->{CORRAL_WORKER} // '' } @started ], [ 1, 2 ], 'with CORRAL_WORKER=1 and 2');
is_deeply({ map { (($_->{CORRAL_WORKER} // '') => ($_->{CORRAL_PID} // '')) } @started }, \%slow,
          "with CORRAL_PID=the worker's pid");
is(scalar(grep { ($_->{SYSLOG_IDENTIFIER} // '') eq 'corrald' && ($_->{_PID} // '') eq $main && ($_->{PRIORITY} // '') eq '6' } @started),
   2, 'logged by corrald (SYSLOG_IDENTIFIER=corrald, _PID=MainPID) at priority info');
my ($hello, $complaint, $tagged);
ok(wait_until(sub {
    ($hello) = journal_find($UNIT, $cursor, MESSAGE => 'hello from worker 1');
    ($complaint) = journal_find($UNIT, $cursor, MESSAGE => 'complaint from worker 1');
    ($tagged) = journal_find($UNIT, $cursor, MESSAGE => 'tagged output');
    $hello && $complaint && $tagged;
}, 20), "journal: the workers' stdout and stderr");
is($hello->{SYSLOG_IDENTIFIER}, 'talker', 'stdout under SYSLOG_IDENTIFIER=talker (the pool)');
is($hello->{_SYSTEMD_UNIT}, $UNIT, "in the unit's journal (_SYSTEMD_UNIT=$UNIT)");
is($complaint->{SYSLOG_IDENTIFIER}, 'talker', 'stderr too');
is($tagged->{SYSLOG_IDENTIFIER}, 'custom-tag', 'syslog_identifier = "custom-tag" names the stream');
($rc, $out) = run_cmd('journalctl', '-b', '-u', $UNIT, '-o', 'cat', '--no-pager', 'SYSLOG_IDENTIFIER=talker');
like($out, qr/^hello from worker 1$/m, 'journalctl -u corral SYSLOG_IDENTIFIER=talker shows the output');

# --- reload: a good config ---------------------------------------------------------

my %before = map { $_ => { worker_pids_by_id($_) } } qw(slow talker tagged);
my $mark = journal_cursor();
spew($CorralVM::CONF, $settings . $pools . $extra);
($rc, $out) = systemctl('reload', $UNIT);
is($rc, 0, 'systemctl reload (a pool added)') or diag($out);
my $done_at_return = journal_find($UNIT, $mark, MESSAGE => qr/^reload done/) ? 1 : 0;
note("the reload was " . ($done_at_return ? '' : 'not yet ') . 'done when systemctl reload returned');
ok(wait_until(sub { journal_find($UNIT, $mark, MESSAGE => 'reload done: 1 added, 0 changed, 0 removed, 3 unchanged') }, 30),
   'journal: reload done: 1 added, 0 changed, 0 removed, 3 unchanged');
ok(wait_until(sub { pool_workers('extra') == 1 }, 30), 'the new pool extra runs');
ok(wait_until(sub { (unit_props($UNIT, 'StatusText')->{StatusText} // '') eq '4 pools, 5/5 workers ready' }, 20),
   'StatusText: 4 pools, 5/5 workers ready');
$p = unit_props($UNIT, qw(ActiveState MainPID));
is($p->{ActiveState}, 'active', 'active after the reload');
is($p->{MainPID}, $main, 'same MainPID');
is_deeply({ worker_pids_by_id($_) }, $before{$_}, "pool $_ keeps its workers") for sort keys %before;

# --- reload: a bad config ----------------------------------------------------------

my $bad = $settings . $pools . qq{pool "extra" { command = "/bin/sleep 5004", wrokers = 1 }\n};
my $bad_line = () = ($settings . $pools) =~ /\n/g;
$bad_line++;
%before = map { $_ => { worker_pids_by_id($_) } } qw(slow talker tagged extra);
$mark = journal_cursor();
spew($CorralVM::CONF, $bad);
($rc, $out) = systemctl('reload', $UNIT);
note("systemctl reload with a bad config: exit $rc");
my @failed;
ok(wait_until(sub { @failed = journal_find($UNIT, $mark, MESSAGE => qr/^reload failed/) }, 30),
   'journal: reload failed');
is($failed[0]{MESSAGE},
   qq{reload failed, keeping the running configuration: $CorralVM::CONF:$bad_line: pool "extra": unknown key "wrokers" (did you mean "workers"?)},
   'the message has file:line and the key');
is($failed[0]{PRIORITY}, 3, 'at priority err');
stays(sub {
    my $q = unit_props($UNIT, qw(ActiveState MainPID StatusText));
    $q->{ActiveState} eq 'active' && $q->{MainPID} == $main && $q->{StatusText} eq '4 pools, 5/5 workers ready';
}, 1, 'after the failed reload: still active, same MainPID and StatusText, for 1 s');
$p = unit_props($UNIT, qw(ActiveState MainPID StatusText));
is($p->{ActiveState}, 'active', 'still active');
is($p->{MainPID}, $main, 'same MainPID');
is($p->{StatusText}, '4 pools, 5/5 workers ready', 'same StatusText');
is_deeply({ worker_pids_by_id($_) }, $before{$_}, "pool $_: the same workers") for sort keys %before;

($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'systemctl stop') or diag($out);
is(unit_props($UNIT, 'ActiveState')->{ActiveState}, 'inactive', 'inactive');

# --- a pool that fails before it is ready fails the start ---------------------------

my $failing = $settings . <<'EOF';
pool "fine" { command = "/bin/sleep 5005", workers = 1, stop_timeout = "5s" }
pool "broken" {
  command = "/bin/false",
  workers = 1,
  ready = "notify",
  backoff = { initial = "10ms", max = "50ms" },
  crash_limit = { failures = 3, interval = "1m" },
}
EOF
$mark = journal_cursor();
($rc, $out, $took) = corral_start($failing);
isnt($rc, 0, 'systemctl start fails when a pool fails before it is ready');
note(sprintf "systemctl start: exit %d after %.1f s: %s", $rc, $took, $out);
$p = unit_props($UNIT, qw(ActiveState Result ExecMainCode ExecMainStatus NRestarts StatusText));
is($p->{ActiveState}, 'failed', 'the unit is failed');
is($p->{Result}, 'exit-code', 'Result=exit-code');
is($p->{ExecMainStatus}, 1, 'corrald exited with status 1');
is($p->{NRestarts}, 0, 'not restarted');
like($p->{StatusText} // '', qr/\bbroken\b/, 'StatusText names the pool that failed') or diag("StatusText=" . ($p->{StatusText} // ''));
ok(scalar(journal_find($UNIT, $mark, MESSAGE => qr/^pool failed: 3 start failures within /, CORRAL_POOL => 'broken')),
   'journal: pool failed, CORRAL_POOL=broken');
ok(scalar(journal_find($UNIT, $mark, MESSAGE => 'stopping (pool broken failed before it was ready)')),
   'journal: stopping (pool broken failed before it was ready)');
is(scalar(pool_workers('fine')), 0, 'no worker left');
ok(!-d "$CorralVM::CGROOT$CG", 'no cgroup left');
systemctl('reset-failed', $UNIT);

done();
