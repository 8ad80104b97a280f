#!/usr/bin/perl
# corral as a systemd service: installed by `make install`, corral.service
# enabled and started, pools up inside the unit's cgroup, `systemctl
# status`, a worker replaced inside the cgroup, `systemctl reload` applying
# a changed config, the log in the journal, and `systemctl stop` leaving no
# process and no cgroup behind.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;

my $UNIT = 'corral.service';
my $CONF = '/etc/corral/corral.lua';

sub config {
    my (%pools) = @_;
    return qq{settings { log_level = "info" }\n}
        . join '', map { qq{pool "$_" { command = "$pools{$_}[0]", workers = $pools{$_}[1], stop_timeout = "5s" }\n} }
        sort keys %pools;
}
my %pools = (web => [ '/bin/sleep 1000', 3 ], jobs => [ '/bin/sleep 1001', 2 ]);

# --- installed ---------------------------------------------------------

ok(-x '/usr/sbin/corrald', '/usr/sbin/corrald installed');
ok(-f '/usr/share/corral/lua/corral/config.lua', 'Lua modules installed under /usr/share/corral');
my $unit_file = unit_props($UNIT, 'FragmentPath')->{FragmentPath} // '';
ok($unit_file ne '', "systemd knows $UNIT") or BAIL_OUT("no $UNIT: nothing to test");
note("unit file: $unit_file");

my $p = unit_props($UNIT, qw(Type Delegate KillMode ExecStart ExecReload));
is($p->{Delegate}, 'yes', 'Delegate=yes');
is($p->{KillMode}, 'mixed', 'KillMode=mixed');
like($p->{ExecStart}, qr{path=/usr/sbin/corrald .*argv\[\]=/usr/sbin/corrald -c /etc/corral/corral\.lua }, 'ExecStart runs /usr/sbin/corrald -c /etc/corral/corral.lua');
note("Type=$p->{Type}");

spew($CONF, config(%pools));
my ($rc, $out) = run_cmd('/usr/sbin/corrald', '-t', '-c', $CONF);
is($rc, 0, 'corrald -t accepts the test config') or diag($out);

# --- enable, start -----------------------------------------------------

($rc, $out) = systemctl('enable', $UNIT);
is($rc, 0, 'systemctl enable corral') or diag($out);
is((systemctl('is-enabled', $UNIT))[1], "enabled\n", 'is-enabled: enabled');

my $cursor = journal_cursor();
($rc, $out) = systemctl('start', $UNIT);
is($rc, 0, 'systemctl start corral') or diag($out);
$p = unit_props($UNIT, qw(ActiveState SubState MainPID ControlGroup));
is($p->{ActiveState}, 'active', 'unit active');
is($p->{SubState}, 'running', 'unit running');
my $main = $p->{MainPID};
my $cg = $p->{ControlGroup};
ok($main && $main > 0, "MainPID $main");
is($cg, '/system.slice/corral.service', 'ControlGroup /system.slice/corral.service');
like(slurp("/proc/$main/cmdline") // '', qr{^/usr/sbin/corrald\0}, 'MainPID is corrald');

for my $pool (sort keys %pools) {
    my $n = $pools{$pool}[1];
    ok(wait_until(sub { pool_workers($pool) == $n }, 60), "pool $pool: $n workers")
        or diag(describe_pids(pool_workers($pool)));
}
my %proto = prototypes();
ok($proto{$_}, "pool $_ has a prototype") for sort keys %pools;

# Everything corrald started is in the unit's cgroup tree, and the tree
# holds nothing else: corrald in corrald/, each pool's prototype in
# POOL/prototype, each worker in POOL/ID (t/vm/004 checks that layout;
# here, that nothing is missing or extra).
my %expect = map { $_ => 1 } $main, @proto{sort keys %pools}, map { pool_workers($_) } sort keys %pools;
my @in_cg = cgroup_pids($cg);
is_deeply([ sort { $a <=> $b } @in_cg ], [ sort { $a <=> $b } keys %expect ],
          'the unit cgroup holds corrald, its prototypes and workers, nothing else')
    or diag("in the cgroup:\n" . describe_pids(@in_cg) . "\nexpected:\n" . describe_pids(keys %expect));
for my $pid (sort { $a <=> $b } keys %expect) {
    my $pcg = cgroup_of($pid) // '';
    ok($pcg eq $cg || index($pcg, "$cg/") == 0, "pid $pid is in $cg") or diag("it is in $pcg");
}

# --- systemctl status --------------------------------------------------

($rc, $out) = systemctl('status', '-l', '-n', '0', $UNIT);
is($rc, 0, 'systemctl status: exit 0 (active)');
like($out, qr/^\s*Loaded: loaded \(\Q$unit_file\E; enabled/m, 'status: loaded, enabled');
like($out, qr/^\s*Active: active \(running\)/m, 'status: active (running)');
like($out, qr/^\s*Main PID: $main \(corrald\)/m, "status: Main PID $main (corrald)");
like($out, qr/^\s*CGroup: \Q$cg\E$/m, "status: CGroup $cg");
my @tree = grep { /^\s*[│├└]/ } split /\n/, $out;
like(join("\n", @tree), qr/\b$main \/usr\/sbin\/corrald -c /, 'status tree: corrald');
for my $pool (sort keys %pools) {
    like(join("\n", @tree), qr/\b$proto{$pool} "?corral: prototype $pool\b/, "status tree: prototype $pool");
    for my $w (pool_workers($pool)) {
        ok(scalar(grep { /\b$w \Q$pools{$pool}[0]\E$/ } @tree), "status tree: $pool worker $w");
    }
}
note($out);

# --- a killed worker is replaced, inside the unit's cgroup --------------

my @web = pool_workers('web');
kill 'KILL', $web[0];
my @new;
ok(wait_until(sub {
    @new = pool_workers('web');
    @new == 3 && !grep { $_ == $web[0] } @new
}, 60), 'a killed web worker is replaced');
for my $pid (grep { my $n = $_; !grep { $_ == $n } @web } @new) {
    like(cgroup_of($pid) // '', qr{^\Q$cg\E/web/\d+$}, "the new worker $pid is in $cg (its own cgroup web/ID)");
}

# --- reload ------------------------------------------------------------

my %before = map { $_ => [ pool_workers($_) ] } sort keys %pools;
my %pools2 = (%pools, extra => [ '/bin/sleep 1002', 2 ]);
spew($CONF, config(%pools2));
($rc, $out) = systemctl('reload', $UNIT);
is($rc, 0, 'systemctl reload corral') or diag($out);
ok(wait_until(sub { pool_workers('extra') == 2 }, 60), 'reload: the new pool "extra" has 2 workers');
ok(wait_until(sub { journal_find($UNIT, $cursor, MESSAGE => 'reload done: 1 added, 0 changed, 0 removed, 2 unchanged') }, 20),
   'journal: reload done: 1 added, 0 changed, 0 removed, 2 unchanged');
is(unit_props($UNIT, 'MainPID')->{MainPID}, $main, 'reload: same main process');
is_deeply([ pool_workers($_) ], $before{$_}, "reload: pool $_ keeps its workers") for sort keys %pools;
is(unit_props($UNIT, 'ActiveState')->{ActiveState}, 'active', 'still active after the reload');
for my $pid (pool_workers('extra')) {
    like(cgroup_of($pid) // '', qr{^\Q$cg\E/extra/\d+$}, "extra worker $pid is in $cg (extra/ID)");
}

# --- the journal -------------------------------------------------------
# corrald logs to the journal with fields (CORRAL_POOL, CORRAL_WORKER,
# PRIORITY), the message alone in MESSAGE.

my @entries;
ok(wait_until(sub {
    @entries = journal_find($UNIT, $cursor, MESSAGE => 'worker started', CORRAL_POOL => 'extra', CORRAL_WORKER => 2);
}, 20), 'journal has the log up to the reload');
ok(scalar(journal_find($UNIT, $cursor, MESSAGE => qr/^corrald \S+ starting \(config \Q$CONF\E\)$/, PRIORITY => 6)),
   'journal: corrald starting');
for my $pool (sort keys %pools2) {
    ok(scalar(journal_find($UNIT, $cursor, MESSAGE => qr/^pool ready \(\d+\/$pools2{$pool}[1] workers\)$/, CORRAL_POOL => $pool)),
       "journal: pool $pool ready");
}
ok(scalar(journal_find($UNIT, $cursor, MESSAGE => 'reload requested')), 'journal: reload requested');
is(scalar(journal_find($UNIT, $cursor, SYSLOG_IDENTIFIER => 'corrald', PRIORITY => qr/^[0-3]$/)), 0,
   'journal: no error, no alert');

# --- stop --------------------------------------------------------------

my @all = cgroup_pids($cg);
my $nworkers = map { pool_workers($_) } sort keys %pools2;
($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'systemctl stop corral') or diag($out);
$p = unit_props($UNIT, qw(ActiveState Result ExecMainCode ExecMainStatus ControlGroup));
is($p->{ActiveState}, 'inactive', 'unit inactive');
is($p->{Result}, 'success', 'Result=success (no timeout, no SIGKILL needed)');
is($p->{ExecMainCode}, 1, 'corrald exited (was not killed)');
is($p->{ExecMainStatus}, 0, 'corrald exit status 0');
ok(!grep({ -e "/proc/$_" && (cgroup_of($_) // '') =~ /^\Q$cg\E/ } @all), 'no process of the unit left');
ok(!grep({ scalar pool_workers($_) } sort keys %pools2), 'no worker left anywhere');
ok(wait_until(sub { !-d "$CorralVM::CGROOT$cg" || !cgroup_pids($cg) }, 10),
   "cgroup $cg removed or empty");
ok(!-d "$CorralVM::CGROOT$cg", "cgroup $cg removed");

my @after_stop = journal_entries($UNIT, $cursor);
my ($stop_i) = grep { ($after_stop[$_]{MESSAGE} // '') eq 'stopping (TERM)' } 0 .. $#after_stop;
ok(defined $stop_i, 'journal: stopping (TERM)');
ok(scalar(grep { ($_->{MESSAGE} // '') eq 'stopped' } @after_stop), 'journal: stopped');
# corrald stopped every worker itself: systemd had nothing left to kill.
my @stopped = grep { ($_->{MESSAGE} // '') =~ /^worker stopped / } @after_stop[($stop_i // $#after_stop) .. $#after_stop];
is(scalar @stopped, $nworkers, "journal: $nworkers workers stopped by corrald");

($rc, $out) = systemctl('disable', $UNIT);
is($rc, 0, 'systemctl disable corral') or diag($out);

done();
