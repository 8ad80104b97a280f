#!/usr/bin/perl
# corrald killed with SIGKILL under systemd: Restart=on-failure starts a
# new corrald (a new MainPID, the unit active again), the pools come back,
# no process of the old run survives (its prototypes die with corrald by
# PR_SET_PDEATHSIG; its workers are killed by systemd, KillMode=mixed
# sends SIGKILL to the whole cgroup once the main process is gone, or else
# by the new corrald's cleanup of leftovers), and no stale cgroup stays.
# Twice: once with the pools settled, once in the middle of a burst of
# spawns (corralctl scale).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use JSON::PP ();
use Test::More;

my $UNIT = $CorralVM::UNIT;
my $CG = $CorralVM::UNIT_CG;
my %want = (web => 3, lw => 2);

my $config = corral_lua(
    [ pool => 'web', command => [ '/bin/sh', '-c', '/bin/sleep 1001 & exec /bin/sleep 1000' ], workers => 3 ],
    [ pool => 'lw', workers => 2, start => \'function() while not corral.sleep(3600) do end end' ],
);

my $p = unit_props($UNIT, qw(Restart KillMode Delegate));
is($p->{Restart}, 'on-failure', 'Restart=on-failure');
is($p->{KillMode}, 'mixed', 'KillMode=mixed');

my $cursor = journal_cursor();
my ($rc, $out) = corral_start($config);
is($rc, 0, 'systemctl start corral') or diag($out);

# The pools have their workers, corrald answers, and the unit's cgroup
# tree is the run's own: corrald/, one cgroup per pool with prototype/ and
# one per live worker, every process in it under corrald.
sub pools_back {
    my ($what, $main) = @_;
    ok(wait_until(sub { !grep { pool_workers($_) != $want{$_} } keys %want }, 60),
       "$what: every pool has its workers (" . join(', ', map { "$_ $want{$_}" } sort keys %want) . ')')
        or diag(join "\n", map { "$_: " . join(' ', pool_workers($_)) } sort keys %want);
    my $st;
    ok(wait_until(sub {
        my ($rc, $out) = corralctl('--json', 'status');
        $st = $out;
        return 0 if $rc;
        my $j = eval { JSON::PP::decode_json($out) } or return 0;
        my %s = map { $_->{name} => "$_->{state} $_->{ready}" } @{ $j->{pools} || [] };
        return !grep { ($s{$_} // '') ne "running $want{$_}" } keys %want;
    }, 60), "$what: corralctl status: every pool running, all ready") or diag($st);
    my ($prc) = corralctl('ping');
    is($prc, 0, "$what: corralctl ping");
    my $tree_ok = wait_until(sub {
        return 0 unless join(' ', cgroup_dirs($CG)) eq join(' ', sort 'corrald', keys %want);
        for my $pool (keys %want) {
            my %ids = worker_pids_by_id($pool);
            return 0 unless join(' ', cgroup_dirs("$CG/$pool")) eq join(' ', sort 'prototype', keys %ids);
        }
        return 1;
    }, 30);
    ok($tree_ok, "$what: no stale cgroup (corrald/, the pools, prototype/ and live workers' cgroups only)")
        or diag(join "\n", map { s/^\Q$CorralVM::CGROOT\E//r } split /\n/, `find $CorralVM::CGROOT$CG -mindepth 1 -type d`);
    my @stray = grep { !descends($_, $main) } cgroup_pids($CG);
    ok(!@stray, "$what: every process in the unit's cgroup is under corrald $main")
        or diag(describe_pids(@stray));
}

sub descends { CorralProc::descends_from(@_) }

my $main = unit_props($UNIT, 'MainPID')->{MainPID};
pools_back('started', $main);

for my $round ('settled', 'mid spawn burst') {
    my $props = unit_props($UNIT, qw(MainPID NRestarts));
    my ($old_main, $restarts) = @$props{qw(MainPID NRestarts)};
    if ($round eq 'mid spawn burst') {
        my ($src, $sout) = corralctl('--no-wait', 'scale', 'web', '30');    # mid burst: not once all are ready
        is($src, 0, "$round: corralctl scale web 30") or diag($sout);
        ok(wait_until(sub { pool_workers('web') >= 8 }, 30), "$round: web workers coming");
    }
    # the old run: corrald's prototypes, everything in the unit's cgroup
    my %proto = prototypes();
    my @old = grep { $_ != $old_main } cgroup_pids($CG);
    note("$round: corrald $old_main, " . scalar(@old) . ' other processes in the unit, web has '
         . scalar(pool_workers('web')) . ' workers');
    my $mark = journal_cursor();
    ok(kill('KILL', $old_main), "$round: kill -9 corrald ($old_main)");

    my $new;
    ok(wait_until(sub {
        my $q = unit_props($UNIT, qw(MainPID ActiveState SubState));
        $new = $q->{MainPID};
        return $new && $new != $old_main && $q->{ActiveState} eq 'active' && $q->{SubState} eq 'running';
    }, 90), "$round: systemd restarted corrald (MainPID $old_main -> " . ($new // '?') . ', active, running)');
    is(unit_props($UNIT, 'NRestarts')->{NRestarts}, $restarts + 1, "$round: NRestarts went up by 1");
    like(proc_cmdline($new) // '', qr{^/usr/sbin/corrald\0}, "$round: the new MainPID is corrald");
    ok(scalar(journal_find($UNIT, $mark, MESSAGE => qr/Main process exited, code=killed, status=9\/KILL/)),
       "$round: systemd logged the main process killed by SIGKILL");
    ok(!grep({ pid_alive($_) } values %proto), "$round: the old prototypes are gone");
    ok(wait_until(sub { !grep { pid_alive($_) } @old }, 30),
       "$round: no process of the old run survives (" . scalar(@old) . ')')
        or diag(describe_pids(grep { pid_alive($_) } @old));
    # who ended the old workers: systemd (the cgroup was emptied and
    # removed before the restart) or the new corrald (its leftover cleanup
    # says so)
    my @cleanup = journal_find($UNIT, $mark, SYSLOG_IDENTIFIER => 'corrald', MESSAGE => qr/left under .* by an earlier corrald/);
    note("$round: " . (@cleanup ? "the new corrald removed leftovers: $cleanup[0]{MESSAGE}"
                                 : 'systemd had killed the old run and removed its cgroups before the restart'));
    pools_back("$round, after the restart", $new);
}

is(scalar(journal_find($UNIT, $cursor, SYSLOG_IDENTIFIER => 'corrald', PRIORITY => qr/^[0-3]$/)), 0,
   'journal: no error from corrald');

done();
