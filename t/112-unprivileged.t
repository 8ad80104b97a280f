#!/usr/bin/perl
# corrald without root: run as nobody inside a cgroup delegated to it
# (what systemd gives a user service with Delegate=yes), it runs a plain
# pool as itself and a pool in every namespace, root inside a user
# namespace of its own while nobody outside; what needs root (another
# user, capabilities or namespaces without a user namespace, a map of
# other ids) is refused at load with the key and the reason.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(find_program);
use File::Path qw(make_path);
use Test::More;

plan skip_all => 'needs root (to drop to nobody)' unless $> == 0;
my $SETPRIV = find_program('setpriv') or plan skip_all => 'needs setpriv (util-linux)';
my $NOBODY = getpwnam('nobody') // plan skip_all => 'needs the user nobody';
my $NOGROUP = getgrnam('nogroup') // plan skip_all => 'needs the group nogroup';
my $unshare = `$SETPRIV --reuid=$NOBODY --regid=$NOGROUP --clear-groups unshare -U -r -p -f -m -n true 2>&1`;
plan skip_all => "user namespaces are not allowed to unprivileged users here: $unshare" if $?;

sub slurp { CorralTest::slurp($_[0]) // '' }
sub status_field {
    my ($pid, $key) = @_;
    return slurp("/proc/$pid/status") =~ /^\Q$key\E:\s*(.*?)\s*$/m ? $1 : undef;
}
sub norm { my $s = shift; $s =~ s/\s+/ /g; $s =~ s/^ | $//g; $s }

my $t;
# the cgroup base, made by root and given to nobody; corrald is put in it
# before it drops root, as systemd puts a service in its delegated cgroup
my $wrap = sub {
    my ($base) = @_;
    return [ '/bin/sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', $base,
             $SETPRIV, "--reuid=$NOBODY", "--regid=$NOGROUP", '--clear-groups', '--' ];
};
$t = CorralTest->new(control => undef);
my $dir = $t->dir;
my $base = $t->cgroup_dir;
$t->{wrap} = $wrap->($base);
$t->{control} = "$dir/run/control.sock";
chmod 0711, $dir or die "chmod: $!";
mkdir "$dir/run" or die "mkdir: $!";
chown $NOBODY, $NOGROUP, "$dir/run" or die "chown: $!";
make_path($base);
chown $NOBODY, $NOGROUP, $base, map { "$base/$_" } qw(cgroup.procs cgroup.subtree_control cgroup.threads);

$t->write_config(<<'EOF');
local inherit = { "CORRAL_TEST_DIR" }
pool "plain" { command = "/bin/sleep 1000", workers = 2, env_inherit = inherit }
pool "self" { command = "/bin/sleep 1000", user = "nobody", env_inherit = inherit,
  prefork = function() end }
pool "boxed" {
  command = "/bin/sleep 1000", workers = 2, env_inherit = inherit,
  isolation = { namespaces = { "user", "pid", "mount", "net", "uts", "ipc", "cgroup" }, hostname = "box" },
}
EOF
chmod 0644, $t->conf;
my $corrald = $t->start;
$t->wait_for(sub { $t->workers('plain') == 2 && $t->workers('boxed') == 2 && $t->workers('self') == 1 }, 15,
             'every pool up (user = corrald\'s own user, with a prefork, too)')
    or diag($t->log);
is((split ' ', status_field($corrald, 'Uid'))[0], $NOBODY, 'corrald runs as nobody');
is(status_field($corrald, 'CapEff'), '0000000000000000', 'with no capability');
for my $w ($t->workers('plain')) {
    is((split ' ', status_field($w, 'Uid'))[0], $NOBODY, "plain: worker $w runs as nobody");
}
my @boxed = $t->workers('boxed');
for my $w (@boxed) {
    is((split ' ', status_field($w, 'Uid'))[0], $NOBODY, "boxed: worker $w is nobody outside");
    is(norm(slurp("/proc/$w/uid_map")), "0 $NOBODY 1", "boxed: worker $w is root inside (uid_map)");
    like(status_field($w, 'NSpid'), qr/^$w\s+\d+$/, "boxed: worker $w in a pid namespace");
    is(readlink("/proc/$w/ns/net"), readlink("/proc/$boxed[0]/ns/net"), "boxed: worker $w in the pool's net namespace");
    isnt(readlink("/proc/$w/ns/net"), readlink("/proc/$corrald/ns/net"), "boxed: worker $w not in corrald's");
}
is(slurp("/proc/$boxed[0]/setgroups"), "deny\n", 'boxed: setgroups denied, as the kernel requires without root');
my $st = $t->status;
is($st->{boxed}{state}, 'running', 'boxed: running');
is(scalar(grep { $_->{state} eq 'ready' } @{ $st->{boxed}{workers} }), 2, 'boxed: 2 ready');

# restart and a killed worker, signalled without root
my $r = $t->ctl('restart', 'boxed');
is($r->{code}, 0, 'boxed: restarted') or diag($r->{err});
kill 'KILL', ($t->workers('plain'))[0];
$t->wait_for(sub { $t->workers('plain') == 2 && $t->workers('boxed') == 2 }, 15, 'both pools whole again');

# what needs root, refused at load (corrald -t as nobody)
my @refused = (
    [ 'another user', 'pool "p" { command = "/bin/sleep 1", user = "www-data" }',
      qr/pool "p": user: .*without root/ ],
    [ 'capabilities without a user namespace',
      'pool "p" { command = "/bin/sleep 1", isolation = { capabilities = { "CAP_NET_BIND_SERVICE" } } }',
      qr/pool "p": isolation\.capabilities: .*without root/ ],
    [ 'namespaces without a user namespace',
      'pool "p" { command = "/bin/sleep 1", isolation = { namespaces = { "pid" } } }',
      qr/pool "p": isolation\.namespaces: .*without root.*"user"/ ],
    [ 'a map of other ids', 'pool "p" { command = "/bin/sleep 1", isolation = { namespaces = { "user" }, uidmap = { { 0, 0, 1 } } } }',
      qr/pool "p": isolation\.uidmap: .*without root/ ],
);
for my $c (@refused) {
    my ($name, $line, $re) = @$c;
    $t->write_file('refused.lua', "$line\n");
    chmod 0644, $t->path('refused.lua');
    my $res = $t->command_wait($t->command_spawn([ $SETPRIV, "--reuid=$NOBODY", "--regid=$NOGROUP", '--clear-groups',
                                                   '--', $CorralTest::CORRALD, '-t', '-c', $t->path('refused.lua') ]));
    is($res->{code}, 1, "refused without root: $name: exit 1");
    like($res->{out} . $res->{err}, $re, "refused without root: $name: the key and why") or diag($res->{out} . $res->{err});
}

$t->check_tree('at the end');
is($t->stop, 0, 'corrald stops with exit 0');
# the delegated base was ours (root's) to make, and is ours to remove
ok(rmdir($base), 'the delegated base is empty once corrald is gone') or diag("rmdir $base: $!");
$t->done;
