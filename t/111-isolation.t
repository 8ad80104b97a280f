#!/usr/bin/perl
# Isolation, read from the kernel: a pool in every namespace (user with
# its default map, pid with the prototype as PID 1 reaping an orphan,
# mount with its own /proc and /tmp, net with lo up, uts with its
# hostname, ipc, and a cgroup namespace per worker); a pool with
# capabilities, rlimits, umask, nice, oom_score_adj and supplementary
# groups; no_new_privs by default and off when asked; a pool in a root of
# its own (pivot_root) with read-only and writable binds, still reaching
# corrald's notify socket; a limit the kernel refuses at prototype start,
# named in the log. corrald still reports and signals outside pids.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_stat pid_alive find_program);
use Test::More;

plan skip_all => 'needs root' unless $> == 0;
my $NSENTER = find_program('nsenter') or plan skip_all => 'needs nsenter (util-linux)';
my $IP = find_program('ip') or plan skip_all => 'needs ip (iproute2)';
my $PY = find_program('python3') or plan skip_all => 'needs python3';
my $NOTIFY = find_program('systemd-notify') or plan skip_all => 'needs systemd-notify (systemd)';
for my $ns (qw(user pid mnt net uts ipc cgroup)) {
    plan skip_all => "this kernel has no $ns namespaces" unless -e "/proc/self/ns/$ns";
}
my $unshare = `unshare -U -p -f -m -n -u -i -C true 2>&1`;
plan skip_all => "namespaces cannot be made here: $unshare" if $?;

my $WWW = getpwnam('www-data') // plan skip_all => 'needs the user www-data';
my $NOBODY = getpwnam('nobody') // plan skip_all => 'needs the user nobody';
my ($AUDIO, $VIDEO) = (scalar getgrnam('audio'), scalar getgrnam('video'));
plan skip_all => 'needs the groups audio and video' unless defined $AUDIO && defined $VIDEO;

sub slurp { CorralTest::slurp($_[0]) // '' }
sub status_field {
    my ($pid, $key) = @_;
    return slurp("/proc/$pid/status") =~ /^\Q$key\E:\s*(.*?)\s*$/m ? $1 : undef;
}
sub ns_of { readlink("/proc/$_[0]/ns/$_[1]") // '' }
sub mounts_of {    # mount point => fs type, from mountinfo
    my ($pid) = @_;
    my %m;
    for (split /\n/, slurp("/proc/$pid/mountinfo")) {
        my ($pre, $post) = split / - /;
        my @f = split ' ', $pre;
        $m{ $f[4] } = (split ' ', $post)[0];
    }
    return \%m;
}
sub limit_of {     # [soft, hard] of a line of /proc/PID/limits
    my ($pid, $name) = @_;
    return slurp("/proc/$pid/limits") =~ /^\Q$name\E\s+(\S+)\s+(\S+)/m ? "$1 $2" : '';
}
sub norm { my $s = shift; $s =~ s/\s+/ /g; $s =~ s/^ | $//g; $s }

# a low port nobody may bind without CAP_NET_BIND_SERVICE, free now
my $PORT;
for my $p (map { 900 + int rand 100 } 1 .. 50) {
    my $hex = sprintf ':%04X ', $p;
    next if slurp('/proc/net/tcp') =~ /\Q$hex\E/;
    $PORT = $p;
    last;
}
my $t = CorralTest->new;
my $dir = $t->dir;
chmod 0711, $dir or die "chmod: $!";
mkdir "$dir/$_" for qw(pre root data ro);
chmod 0777, "$dir/pre";
symlink "usr/$_", "$dir/root/$_" for qw(bin lib lib64 sbin);
# a link in a rootfs that leads out of it: no mount may go through it
mkdir "$dir/root2";
symlink '/etc', "$dir/root2/evil";
# a tree with a mount inside, bound read-only: the inner mount read-only too
mkdir "$dir/ro/sub";
system('mount', '-t', 'tmpfs', 'tmpfs', "$dir/ro/sub") == 0 or die "mount tmpfs on $dir/ro/sub failed";
END { system('umount', '-l', "$dir/ro/sub") if $dir }
$t->write_file('ro/file', "read-only\n");

my $corrald_hard = (split ' ', limit_of($$, 'Max open files'))[1];
my $too_high = $corrald_hard eq 'unlimited' ? 1 << 40 : $corrald_hard + 1;

$t->write_config(<<"EOF");
local inherit = { "CORRAL_TEST_DIR" }
pool "ns" {
  command = { "/bin/sh", "-c", "(env -u CORRAL_POOL /bin/sleep 300 &); exec /bin/sleep 1000" },
  workers = 2, user = "www-data", env_inherit = inherit,
  isolation = {
    namespaces = { "user", "pid", "mount", "net", "uts", "ipc", "cgroup" },
    hostname = "corral-ns", network = "loopback", oom_score_adjust = 300,
  },
}
pool "caps" {
  command = { "$PY", "-c", "import socket, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', $PORT)); s.listen(); time.sleep(1000)" },
  user = "nobody", env_inherit = inherit,
  prefork = function() local f = assert(io.open("$dir/pre/owner", "w")); f:write("x"); f:close() end,
  isolation = {
    capabilities = { "CAP_NET_BIND_SERVICE" },
    rlimits = { nofile = 4096, core = 0, nproc = { 1000, 2000 } },
    umask = "0027", nice = 5, oom_score_adjust = 500,
    supplementary_groups = { "audio", "video" },
  },
}
pool "plain" { command = "/bin/sleep 1000", env_inherit = inherit }
pool "nnp" { command = "/bin/sleep 1000", env_inherit = inherit, isolation = { no_new_privs = false } }
pool "rootfs" {
  command = { "/bin/sh", "-c", "$NOTIFY --ready && exec /bin/sleep 1000" },
  ready = "notify", env_inherit = inherit,
  isolation = {
    rootfs = "$dir/root",
    mounts = { { "/usr", "/usr", "ro" }, { "$dir/data", "/data", "rw" }, { "$dir/ro", "/ro", "ro" } },
  },
}
pool "link" {
  command = "/bin/sleep 1000", env_inherit = inherit,
  crash_limit = { failures = 2, interval = "1m" }, backoff = { initial = "100ms" },
  isolation = { rootfs = "$dir/root2", mounts = { { "$dir/data", "/evil/x", "rw" } } },
}
pool "bad" {
  command = "/bin/sleep 1000", env_inherit = inherit, user = "nobody",
  crash_limit = { failures = 2, interval = "1m" }, backoff = { initial = "100ms" },
  isolation = { namespaces = { "user" }, rlimits = { nofile = { 1024, $too_high } } },
}
EOF
my $corrald = $t->start;
$t->wait_for(sub { $t->workers('ns') == 2 && $t->workers('caps') == 1 && $t->workers('plain') == 1
                   && $t->workers('nnp') == 1 && $t->workers('rootfs') == 1 }, 20, 'every pool up');

# ---- every namespace --------------------------------------------------------
{
    my @w = $t->workers('ns');
    my $proto = $t->prototype_pid('ns');
    ok($proto, 'ns: its prototype found');
    for my $ns (qw(user pid mnt net uts ipc cgroup)) {
        ok(!grep({ ns_of($_, $ns) eq ns_of($corrald, $ns) } @w), "ns: workers are not in corrald's $ns namespace");
    }
    for my $ns (qw(user pid mnt net uts ipc)) {
        ok(!grep({ ns_of($_, $ns) ne ns_of($proto, $ns) } @w), "ns: workers share their prototype's $ns namespace");
    }
    isnt(ns_of($w[0], 'cgroup'), ns_of($w[1], 'cgroup'), 'ns: each worker has a cgroup namespace of its own');
    for my $w (@w) {
        like(`$NSENTER -t $w -C cat /proc/$w/cgroup`, qr{^0::/$}m, "ns: worker $w sees its own cgroup as /");
    }
    like(status_field($proto, 'NSpid'), qr/^$proto\s+1$/, 'ns: the prototype is PID 1 inside');
    for my $w (@w) {
        like(status_field($w, 'NSpid'), qr/^$w\s+(\d+)$/, "ns: worker $w has an inside pid");
    }
    is(norm(slurp("/proc/$w[0]/uid_map")), "0 $WWW 1", 'ns: uid_map: the pool\'s user is root inside');
    my $wgid = (getpwnam('www-data'))[3];
    is(norm(slurp("/proc/$w[0]/gid_map")), "0 $wgid 1", 'ns: gid_map: the pool\'s group is root inside');
    is((split ' ', status_field($w[0], 'Uid'))[0], $WWW, 'ns: outside, the worker is www-data');
    is(status_field($w[0], 'CapEff'), '0000000000000000', 'ns: root inside, with no capability');
    is(status_field($w[0], 'CapBnd'), '0000000000000000', 'ns: and none to gain back');
    is(status_field($w[0], 'NoNewPrivs'), '1', 'ns: no_new_privs');
    is(norm(slurp("/proc/$w[0]/oom_score_adj")), '300', 'ns: oom_score_adj, set before root inside the user namespace');
    is(norm(`$NSENTER -t $w[0] -u hostname`), 'corral-ns', 'ns: its hostname');
    my @links = grep { /\S/ } split /\n/, `$NSENTER -t $w[0] -n $IP -o link`;
    is(scalar @links, 1, 'ns: one interface') or diag(@links);
    like($links[0] // '', qr/^\d+: lo: <[^>]*\bUP\b/, 'ns: lo, up');
    my $m = mounts_of($w[0]);
    is($m->{'/proc'}, 'proc', 'ns: a /proc of its own');
    is($m->{'/tmp'}, 'tmpfs', 'ns: a /tmp of its own');
    like(slurp("/proc/$w[0]/root/proc/1/cmdline"), qr/^corral: prototype ns/, 'ns: its /proc shows the prototype as 1');
    ok(!-e "/proc/$w[0]/root/proc/$corrald" || $corrald < 50, 'ns: its /proc does not show corrald');

    # corrald knows the outside pids and signals them
    my $st = $t->status('ns');
    is_deeply([ sort { $a <=> $b } map { $_->{pid} } @{ $st->{ns}{workers} } ], [ @w ],
              'ns: status reports the outside pids');
    kill 'KILL', $w[0];
    $t->wait_log(qr/ warn worker killed by signal 9 \(KILL\) pool=ns worker=\d+ pid=$w[0]$/);
    $t->wait_for(sub { my @n = $t->workers('ns'); @n == 2 && !grep { $_ == $w[0] } @n }, 10,
                 'ns: a killed worker is replaced');

    # PID 1 reaps an orphan
    my ($orphan) = grep { slurp("/proc/$_/cmdline") eq "/bin/sleep\0" . "300\0" && (proc_stat($_) // {})->{ppid} == $proto }
        CorralProc::all_pids();
    ok($orphan, 'ns: an orphan of a worker is the prototype\'s child');
    if ($orphan) {
        kill 'TERM', $orphan;
        $t->wait_for(sub { !proc_stat($orphan) }, 10, 'ns: the prototype reaped it (no zombie)');
    }

    my $r = $t->ctl('restart', 'ns');
    is($r->{code}, 0, 'ns: restart through pidfds') or diag($r->{err});
    $t->wait_for(sub { my @n = $t->workers('ns'); @n == 2 && !grep { my $x = $_; grep { $_ == $x } @w } @n }, 15,
                 'ns: restarted');

    # the prototype dies: the kernel ends the namespace, the pool starts again
    my @before = $t->workers('ns');
    $proto = $t->prototype_pid('ns');
    kill 'KILL', $proto;
    $t->wait_log(qr/ warn prototype exited unexpectedly .* pool=ns pid=$proto$/);
    $t->wait_for(sub { !grep { pid_alive($_) } @before }, 10, 'ns: its workers died with its pid namespace');
    $t->wait_for(sub { my $p = $t->prototype_pid('ns'); $p && $p != $proto && $t->workers('ns') == 2 }, 20,
                 'ns: a new prototype, and workers again');
}

# ---- credentials, capabilities, limits -----------------------------------------
{
    my ($w) = $t->workers('caps');
    my $proto = $t->prototype_pid('caps');
    is((split ' ', status_field($w, 'Uid'))[0], $NOBODY, 'caps: the worker runs as nobody');
    for my $set (qw(CapEff CapPrm CapAmb CapBnd)) {
        is(status_field($w, $set), '0000000000000400', "caps: $set is CAP_NET_BIND_SERVICE alone");
    }
    $t->wait_for(sub { slurp('/proc/net/tcp') =~ /:\Q@{[sprintf '%04X', $PORT]}\E 00000000:0000 0A/ }, 10,
                 "caps: nobody listens on port $PORT (an exec'd program kept the capability)");
    is(status_field($w, 'NoNewPrivs'), '1', 'caps: no_new_privs');
    is(status_field($w, 'Umask'), '0027', 'caps: umask');
    is(join(' ', sort { $a <=> $b } split ' ', status_field($w, 'Groups')), join(' ', sort { $a <=> $b } $AUDIO, $VIDEO),
       'caps: supplementary_groups');
    is(limit_of($w, 'Max open files'), '4096 4096', 'caps: rlimits.nofile');
    is(limit_of($w, 'Max core file size'), '0 0', 'caps: rlimits.core');
    is(limit_of($w, 'Max processes'), '1000 2000', 'caps: rlimits.nproc as { soft, hard }');
    is((split ' ', (slurp("/proc/$w/stat") =~ /\) (.*)/)[0])[16], 5, 'caps: nice');
    is(norm(slurp("/proc/$w/oom_score_adj")), '500', 'caps: oom_score_adj');
    is(limit_of($proto, 'Max open files'), '4096 4096', 'caps: set once, in the prototype');
    is((split ' ', status_field($proto, 'Uid'))[0], 0, 'caps: the prototype keeps root (to place workers)');
    is((stat "$dir/pre/owner")[4], $NOBODY, 'caps: prefork ran as the pool\'s user');
}

# ---- no_new_privs ---------------------------------------------------------------
is(status_field(($t->workers('plain'))[0], 'NoNewPrivs'), '1', 'no_new_privs is on by default');
is(status_field(($t->workers('nnp'))[0], 'NoNewPrivs'), '0', 'no_new_privs = false');

# ---- a root of its own ------------------------------------------------------------
{
    $t->wait_for(sub { my $s = $t->status('rootfs'); $s && ($s->{rootfs}{ready} // 0) == 1 }, 10,
                 'rootfs: ready through the notify socket bound inside');
    my ($w) = $t->workers('rootfs');
    isnt(readlink("/proc/$w/root"), "$dir/root", 'rootfs: pivot_root, not chroot');
    ok(!-e "/proc/$w/root/etc/passwd", 'rootfs: the host\'s files are hidden');
    ok(-x "/proc/$w/root/usr/bin/sh", 'rootfs: /usr bound in');
    ok(!open(my $fh, '>', "/proc/$w/root/ro/new"), 'rootfs: a read-only bind refuses a write');
    like("$!", qr/Read-only file system/, 'rootfs: EROFS');
    ok(!open($fh, '>', "/proc/$w/root/ro/sub/new"), 'rootfs: a mount inside a read-only bind is read-only too');
    like("$!", qr/Read-only file system/, 'rootfs: EROFS there too');
    ok(open($fh, '>', "/proc/$w/root/data/new"), 'rootfs: a writable bind takes one');
    close $fh if $fh;
    ok(-e "$dir/data/new", 'rootfs: and it is the host\'s directory');
    my $m = mounts_of($w);
    is($m->{'/tmp'}, 'tmpfs', 'rootfs: a /tmp of its own');
    is($m->{'/proc'}, 'proc', 'rootfs: /proc');
    is((CorralProc::proc_environ($w))->{NOTIFY_SOCKET}, '/run/corral/notify', 'rootfs: NOTIFY_SOCKET inside');
}

# ---- what a worker inherits: nothing of corrald's -------------------------------
{
    # PWD: /bin/sh's own (ns and rootfs run one); caps's python holds its
    # own listening socket, so it is left out
    my %allowed = map { $_ => 1 } qw(PATH HOME USER LOGNAME SHELL CORRAL_POOL CORRAL_WORKER NOTIFY_SOCKET
                                     CORRAL_TEST_DIR PWD);
    for my $pool (qw(ns rootfs plain nnp)) {
        my ($w) = $t->workers($pool);
        my @fds = sort { $a <=> $b } map { s{.*/}{}r } glob("/proc/$w/fd/*");
        is("@fds", '0 1 2', "$pool: the worker has fds 0, 1, 2 and no other");
        is(readlink("/proc/$w/fd/0"), '/dev/null', "$pool: stdin is /dev/null");
        my @extra = grep { !$allowed{$_} } sort keys %{ CorralProc::proc_environ($w) };
        is("@extra", '', "$pool: nothing in its environment but the pool's and corral's own");
    }
    my $proto = $t->prototype_pid('ns');
    my @fds = sort { $a <=> $b } map { s{.*/}{}r } glob("/proc/$proto/fd/*");
    is("@fds", '0 1 2 3 4', 'ns: the prototype holds its socket to corrald and its signalfd, nothing else');
}

# ---- a mount through a symbolic link out of the rootfs: refused --------------------
$t->wait_log(qr{ error prototype: isolation\.mounts\[1\]: /evil/x goes through a symbolic link in the rootfs.* pool=link});
ok(!-e '/etc/x', 'link: nothing was made on the host through the link');

# ---- refused by the kernel at prototype start ------------------------------------
$t->wait_log(qr/ error prototype: isolation\.rlimits\.nofile: Operation not permitted.* pool=bad/);
$t->wait_for(sub { my $s = $t->status('bad'); $s && $s->{bad}{state} eq 'failed' }, 20,
             'bad: the pool fails through its crash limit');
is(scalar $t->workers('bad'), 0, 'bad: no worker');

$t->check_invariants;

# ---- corrald -t does not look for a rootfs pool's program on the host -------------
{
    $t->write_file('inside.lua', qq{pool "r" { command = "/opt/only-inside/app", isolation = { rootfs = "$dir/root" } }\n});
    my $r = $t->run('-t', '-c', $t->path('inside.lua'));
    is($r->{code}, 0, '-t: a program only inside the rootfs is no error');
    like($r->{out} . $r->{err}, qr/pool "r": command: warning: not checked: it runs inside isolation\.rootfs/,
         '-t: it says the program was not checked');
}

# ---- placement without clone3 (older kernels): every namespace still -------------
{
    my $u = CorralTest->new(env => { CORRAL_PIPE_PLACEMENT => 1 }, config => <<'EOF');
pool "ns" {
  command = "/bin/sleep 1000", workers = 2, user = "www-data", env_inherit = { "CORRAL_TEST_DIR" },
  isolation = { namespaces = { "user", "pid", "mount", "net", "uts", "ipc", "cgroup" } },
}
EOF
    my $c = $u->start;
    $u->wait_for(sub { $u->workers('ns') == 2 }, 15, 'pipe placement: 2 workers in every namespace');
    for my $w ($u->workers('ns')) {
        like(CorralProc::cgroup_of($w) // '', qr{/ns/[12]$}, "pipe placement: worker $w in its own cgroup");
        isnt(ns_of($w, 'pid'), ns_of($c, 'pid'), "pipe placement: worker $w in a pid namespace");
    }
    $u->check_invariants;
}
$t->done;
