#!/usr/bin/perl
# The test VM itself: systemd is PID 1 and the cgroup v2 hierarchy offers
# the controllers that corral's cgroup tests rely on. When this fails,
# every later VM test is suspect, not corral.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;

like(readlink('/proc/1/exe') // '', qr{/systemd$}, 'PID 1 is systemd');
my ($rc, $version) = run_cmd('systemctl', '--version');
like($version, qr/^systemd (\d+)/, 'systemctl --version') and note((split /\n/, $version)[0]);

my ($state) = (systemctl('is-system-running'))[1] =~ /(\S+)/;
ok(($state // '') eq 'running' || ($state // '') eq 'degraded', "system state: running or degraded")
    or diag("is-system-running: " . ($state // '?'));
if (($state // '') eq 'degraded') {
    diag((systemctl('list-units', '--failed', '--plain', '--no-legend'))[1]);
}

# cgroup v2, mounted at /sys/fs/cgroup, alone (no hybrid v1 hierarchies).
my $mountinfo = slurp('/proc/self/mountinfo');
like($mountinfo, qr{^\S+ \S+ \S+ \S+ /sys/fs/cgroup \S+.* - cgroup2 }m, 'cgroup2 is mounted at /sys/fs/cgroup');
unlike($mountinfo, qr{ - cgroup }, 'no cgroup v1 hierarchy is mounted');

my $controllers = slurp('/sys/fs/cgroup/cgroup.controllers') // '';
chomp $controllers;
note("/sys/fs/cgroup/cgroup.controllers: $controllers");
my %have = map { $_ => 1 } split ' ', $controllers;
ok($have{$_}, "controller $_ is available") for qw(memory cpu pids io cpuset);

# What a unit gets: system.slice passes the controllers down.
my $sub = slurp('/sys/fs/cgroup/system.slice/cgroup.subtree_control') // '';
chomp $sub;
note("system.slice/cgroup.subtree_control: $sub");
ok(-e '/sys/fs/cgroup/cgroup.kill' || -e '/sys/fs/cgroup/system.slice/cgroup.kill',
   'the kernel has cgroup.kill');

# The runtime libraries of corrald are there and it runs.
($rc, my $out) = run_cmd('/usr/sbin/corrald', '-V');
is($rc, 0, 'corrald -V runs in the guest') or diag($out);
note($out);

done();
