#!/usr/bin/perl
# corral as a systemd user service, without root: a test user's manager
# (user@UID.service, as lingering starts it), the installed user unit (corral.service in systemd's user
# unit directory) started with `systemctl --user`; corrald runs as the
# user in the unit's delegated cgroup under user@UID.service; a plain
# pool runs as the user, a pool in every namespace is root inside its
# user namespace and the user outside; corralctl answers on the socket in
# $XDG_RUNTIME_DIR; a pool asking for another user is refused at load;
# `systemctl --user stop` leaves nothing behind.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;

my $USER = 'corraltest';
system('id', '-u', $USER) == 0 || system('useradd', '--create-home', '--shell', '/bin/sh', $USER) == 0
    or BAIL_OUT("useradd $USER failed");
my ($uid, $gid, $home) = (getpwnam($USER))[2, 3, 7];
my $run = "/run/user/$uid";

# the user's manager, as user@UID.service would start it (the image has
# neither logind nor pam_systemd): its runtime directory, then systemd
# --user as the user, in a delegated cgroup of its own
my $MANAGER = 'corraltest-manager.service';
system('mkdir', '-p', $run) == 0 && system('chown', "$uid:$gid", $run) == 0 && chmod(0700, $run) or die "$run: $!";
my ($rc, $out) = run_cmd('systemd-run', "--unit=$MANAGER", "--uid=$uid", "--gid=$gid", '-p', 'Delegate=yes',
                         '-p', 'Type=notify', '-E', "XDG_RUNTIME_DIR=$run", '-E', "HOME=$home", '-E', "USER=$USER",
                         '/lib/systemd/systemd', '--user');
is($rc, 0, "the user's manager started (systemd --user)") or diag($out);
ok(wait_until(sub { -S "$run/systemd/private" }, 60), "the user's manager runs ($run/systemd/private)")
    or BAIL_OUT('no user manager: ' . `journalctl --no-pager -n 20 -u $MANAGER 2>&1`);

# systemctl --user as the user, through its manager's private socket
sub user_systemctl {
    return run_cmd('setpriv', "--reuid=$uid", "--regid=$gid", '--init-groups', '--',
                   'env', "XDG_RUNTIME_DIR=$run", "HOME=$home", 'systemctl', '--user', '--no-pager', @_);
}
sub user_prop {
    my ($prop) = @_;
    my (undef, $o) = user_systemctl('show', 'corral.service', '-p', $prop);
    return $o =~ /^\Q$prop\E=(.*)$/m ? $1 : '';
}

ok(-f '/usr/lib/systemd/user/corral.service', 'the user unit is installed');
my $conf_dir = "$home/.config/corral";
system('mkdir', '-p', $conf_dir) == 0 or die;
spew("$conf_dir/corral.lua", <<'EOF');
pool "plain" { command = "/bin/sleep 1000", workers = 2, stop_timeout = "5s" }
pool "boxed" {
  command = "/bin/sleep 1001", workers = 2, stop_timeout = "5s",
  isolation = { namespaces = { "user", "pid", "mount", "net", "uts", "ipc", "cgroup" }, hostname = "box" },
}
EOF
system('chown', '-R', "$uid:$gid", "$home/.config") == 0 or die;

($rc, $out) = user_systemctl('start', 'corral.service');
is($rc, 0, 'systemctl --user start corral')
    or diag($out . `journalctl --no-pager -n 40 _UID=$uid 2>&1` . `journalctl --no-pager -n 20 -u $MANAGER 2>&1`);
is(user_prop('ActiveState'), 'active', 'the user unit is active');
my $main = user_prop('MainPID');
my $cg = user_prop('ControlGroup');
like($cg, qr{^/system\.slice/\Q$MANAGER\E/.*corral\.service$}, "in the user's manager's tree: $cg");
my $status = slurp("/proc/$main/status") // '';
like($status, qr/^Uid:\s+$uid\s/m, 'corrald runs as the user');
like($status, qr/^CapEff:\s+0+$/m, 'with no capability');

ok(wait_until(sub { pool_workers('plain') == 2 && pool_workers('boxed') == 2 }, 60), 'both pools up')
    or diag(`journalctl --no-pager -n 30 _UID=$uid 2>&1`);
for my $w (pool_workers('plain'), pool_workers('boxed')) {
    like(slurp("/proc/$w/status") // '', qr/^Uid:\s+$uid\s/m, "worker $w runs as the user outside");
    like(cgroup_of($w) // '', qr{^\Q$cg\E/(plain|boxed)/\d+$}, "worker $w in the unit's delegated cgroup");
}
for my $w (pool_workers('boxed')) {
    my $map = slurp("/proc/$w/uid_map") // '';
    $map =~ s/\s+/ /g;
    is($map, " 0 $uid 1 ", "boxed worker $w: root inside, the user outside");
    isnt(readlink("/proc/$w/ns/pid"), readlink("/proc/$main/ns/pid"), "boxed worker $w: a pid namespace of its own");
}

($rc, $out) = run_cmd('/usr/bin/corralctl', '-s', "$run/corral/control.sock", 'status');
is($rc, 0, "corralctl status on $run/corral/control.sock") or diag($out);
like($out, qr/^boxed\s+running\s+2\/2/m, 'boxed: running 2/2');

# what needs root: refused at load, the running pools untouched
my @before = sort { $a <=> $b } (pool_workers('plain'), pool_workers('boxed'));
spew("$conf_dir/corral.lua", qq{pool "p" { command = "/bin/sleep 1000", user = "root" }\n});
($rc, $out) = run_cmd('setpriv', "--reuid=$uid", "--regid=$gid", '--init-groups', '--',
                      '/usr/sbin/corrald', '-t', '-c', "$conf_dir/corral.lua");
is($rc, 1, 'corrald -t as the user refuses another user');
like($out, qr/pool "p": user: corrald runs without root/, '... naming the key and why') or diag($out);
($rc, $out) = user_systemctl('reload', 'corral.service');
stays(sub { join(' ', sort { $a <=> $b } (pool_workers('plain'), pool_workers('boxed'))) eq join(' ', @before) }, 2,
      'a refused reload leaves the pools running');

($rc, $out) = user_systemctl('stop', 'corral.service');
is($rc, 0, 'systemctl --user stop corral') or diag($out);
is(user_prop('Result'), 'success', 'it stopped cleanly');
ok(wait_until(sub { !pool_workers('plain') && !pool_workers('boxed') }, 20), 'no worker left');
ok(wait_until(sub { !-d "$CorralVM::CGROOT$cg" }, 20), 'no cgroup left');

systemctl('stop', $MANAGER);
system('rm', '-rf', $run);
done();
