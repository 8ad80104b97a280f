#!/usr/bin/perl
# isolation = { ... } (issue 15), the config side: each mistake refused at
# load and by -t with one line naming FILE:LINE, the pool and the key
# (isolation.KEY); what the system shows (a root or a mount source that
# is not there, a capability corrald lacks, user namespaces disabled)
# refused the same way, and by a reload, which keeps the running pool;
# a whole valid table accepted.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;

my $t = CorralTest->new;
my $file = $t->conf;
my $dir = $t->dir;
mkdir "$dir/root" or die "$dir/root: $!";
$t->write_file('a-file', "not a directory\n");

# A pool that would leave a marker if it ever ran, then the pool under
# test: its isolation table from line 6, namespaces on line 7, the key of
# the case from line 8.
sub config_of {
    my (%c) = @_;
    my $user = $c{user} // 'user = "nobody",';
    my $ns = $c{ns} // 'namespaces = { "pid" },';
    my $key = $c{key} // '';
    return <<"EOF";
pool "ok" { command = { "/bin/sh", "-c", "touch %TMP%/started; exec /bin/sleep 1000" }, env_inherit = { "CORRAL_TEST_DIR" } }
-- the pool under test follows
pool "web" {
  command = "/bin/sleep 1000",
  $user
  isolation = {
    $ns
    $key
  },
}
EOF
}

my $long = 'h' x 65;
my @cases = (
    # [ description, { ns => line 7, key => line 8 on, user => line 5 }, line, message after "FILE:LINE: " ]
    [ 'unknown key', { key => 'hostnme = "x",' }, 8,
      qr/^pool "web": isolation: unknown key "hostnme" \(did you mean "hostname"\?\)$/ ],
    [ 'namespaces not a list', { ns => 'namespaces = "pid",' }, 7,
      qr/^pool "web": isolation\.namespaces: expected a list of namespace names, got "pid"$/ ],
    [ 'unknown namespace', { ns => 'namespaces = { "pid", "uzer" },' }, 7,
      qr/^pool "web": isolation\.namespaces: element 2: unknown namespace "uzer" \(did you mean "user"\?\)$/ ],
    [ 'namespace given twice', { ns => 'namespaces = { "pid", "net", "pid" },' }, 7,
      qr/^pool "web": isolation\.namespaces: "pid" given twice$/ ],
    [ 'uidmap without user', { key => 'uidmap = { { 0, 1000, 1 } },' }, 8,
      qr/^pool "web": isolation\.uidmap: needs "user" in isolation\.namespaces$/ ],
    [ 'gidmap without user', { key => 'gidmap = { { 0, 1000, 1 } },' }, 8,
      qr/^pool "web": isolation\.gidmap: needs "user" in isolation\.namespaces$/ ],
    [ 'uidmap outside past 2^32-2', { ns => 'namespaces = { "user" },', key => 'uidmap = { { 0, 4294967295, 1 } },' }, 8,
      qr/^pool "web": isolation\.uidmap\[1\]: outside: expected an integer from 0 to 4294967294, got 4294967295$/ ],
    [ 'uidmap negative', { ns => 'namespaces = { "user" },', key => 'uidmap = { { -1, 1000, 1 } },' }, 8,
      qr/^pool "web": isolation\.uidmap\[1\]: inside: expected an integer from 0 to 4294967294, got -1$/ ],
    [ 'uidmap count 0', { ns => 'namespaces = { "user" },', key => 'uidmap = { { 0, 1000, 0 } },' }, 8,
      qr/^pool "web": isolation\.uidmap\[1\]: count: expected an integer from 1 to 4294967295, got 0$/ ],
    [ 'gidmap range past 2^32', { ns => 'namespaces = { "user" },', key => 'gidmap = { { 0, 1000, 1 }, { 4294967290, 0, 10 } },' }, 8,
      qr/^pool "web": isolation\.gidmap\[2\]: inside \+ count = 4294967300: ids end at 4294967295$/ ],
    [ 'uidmap line of two', { ns => 'namespaces = { "user" },', key => 'uidmap = { { 0, 1000 } },' }, 8,
      qr/^pool "web": isolation\.uidmap\[1\]: expected \{ inside, outside, count \}, got 2 elements$/ ],
    [ 'hostname without uts', { key => 'hostname = "sandbox",' }, 8,
      qr/^pool "web": isolation\.hostname: needs "uts" in isolation\.namespaces$/ ],
    [ 'hostname invalid', { ns => 'namespaces = { "uts" },', key => 'hostname = "bad_name",' }, 8,
      qr/^pool "web": isolation\.hostname: invalid host name "bad_name"/ ],
    [ 'hostname too long', { ns => 'namespaces = { "uts" },', key => "hostname = \"$long\"," }, 8,
      qr/^pool "web": isolation\.hostname: expected a host name of 1 to 64 characters/ ],
    [ 'network without net', { key => 'network = "loopback",' }, 8,
      qr/^pool "web": isolation\.network: needs "net" in isolation\.namespaces$/ ],
    [ 'network unknown', { ns => 'namespaces = { "net" },', key => 'network = "bridge",' }, 8,
      qr/^pool "web": isolation\.network: expected one of "none", "loopback", got "bridge"$/ ],
    [ 'rootfs relative', { key => 'rootfs = "srv/root",' }, 8,
      qr/^pool "web": isolation\.rootfs: expected an absolute path, got "srv\/root"$/ ],
    [ 'mount mode', { key => 'mounts = { { "/usr", "/usr", "rx" } },' }, 8,
      qr/^pool "web": isolation\.mounts\[1\]: expected "ro" or "rw", got "rx"$/ ],
    [ 'mount over the root', { key => 'mounts = { { "/usr", "/usr", "ro" }, { "/srv", "/", "rw" } },' }, 8,
      qr/^pool "web": isolation\.mounts\[2\]: target: "\/" is the root/ ],
    [ 'mount target climbing out', { key => 'mounts = { { "/usr", "/x/../../usr", "ro" } },' }, 8,
      qr/^pool "web": isolation\.mounts\[1\]: target: "\/x\/\.\.\/\.\.\/usr": no "\." or "\.\." parts$/ ],
    [ 'mount source relative', { key => 'mounts = { { "usr", "/usr", "ro" } },' }, 8,
      qr/^pool "web": isolation\.mounts\[1\]: source: expected an absolute path, got "usr"$/ ],
    [ 'no_new_privs not a boolean', { key => 'no_new_privs = "yes",' }, 8,
      qr/^pool "web": isolation\.no_new_privs: expected true or false, got "yes"$/ ],
    [ 'unknown capability', { key => 'capabilities = { "CAP_KILL", "CAP_NET_BIND_SERVIC" },' }, 8,
      qr/^pool "web": isolation\.capabilities: element 2: unknown capability "CAP_NET_BIND_SERVIC" \(did you mean "CAP_NET_BIND_SERVICE"\?\)$/ ],
    [ 'capability by number', { key => 'capabilities = { 10 },' }, 8,
      qr/^pool "web": isolation\.capabilities: element 1: unknown capability 10$/ ],
    [ 'capability twice', { key => 'capabilities = { "CAP_KILL", "kill" },' }, 8,
      qr/^pool "web": isolation\.capabilities: "kill" given twice$/ ],
    [ 'unknown rlimit', { key => 'rlimits = { nofiles = 10 },' }, 8,
      qr/^pool "web": isolation\.rlimits: unknown resource limit "nofiles" \(did you mean "nofile"\?\)$/ ],
    [ 'rlimit negative', { key => 'rlimits = { nofile = -1 },' }, 8,
      qr/^pool "web": isolation\.rlimits\.nofile: expected an integer from 0 to \d+ or "infinity", got -1$/ ],
    [ 'rlimit bad size', { key => 'rlimits = { as = "1X" },' }, 8,
      qr/^pool "web": isolation\.rlimits\.as: invalid size "1X"/ ],
    [ 'rlimit soft above hard, on its own line', { key => "rlimits = {\n      core = 0,\n      nproc = { 200, 100 },\n    }," }, 10,
      qr/^pool "web": isolation\.rlimits\.nproc: the soft limit \(200\) is above the hard limit \(100\)$/ ],
    [ 'rlimit soft infinity, hard not', { key => 'rlimits = { memlock = { "infinity", "64M" } },' }, 8,
      qr/^pool "web": isolation\.rlimits\.memlock: the soft limit \("infinity"\) is above the hard limit \("64M"\)$/ ],
    [ 'rlimit of three', { key => 'rlimits = { nproc = { 1, 2, 3 } },' }, 8,
      qr/^pool "web": isolation\.rlimits\.nproc: expected a value or \{ soft, hard \}, got 3 elements$/ ],
    [ 'rlimit nice past 40', { key => 'rlimits = { nice = 41 },' }, 8,
      qr/^pool "web": isolation\.rlimits\.nice: expected an integer from 0 to 40 or "infinity", got 41$/ ],
    [ 'umask not octal', { key => 'umask = "0999",' }, 8,
      qr/^pool "web": isolation\.umask: expected an octal string from "0000" to "0777" \(such as "0027"\), got "0999"$/ ],
    [ 'umask a number', { key => 'umask = 27,' }, 8, qr/^pool "web": isolation\.umask: .*got 27$/ ],
    [ 'umask past 0777', { key => 'umask = "1000",' }, 8, qr/^pool "web": isolation\.umask: .*got "1000"$/ ],
    [ 'nice 20', { key => 'nice = 20,' }, 8,
      qr/^pool "web": isolation\.nice: expected an integer from -20 to 19, got 20$/ ],
    [ 'nice -21', { key => 'nice = -21,' }, 8, qr/^pool "web": isolation\.nice: .*got -21$/ ],
    [ 'nice 1.5', { key => 'nice = 1.5,' }, 8, qr/^pool "web": isolation\.nice: .*got 1\.5$/ ],
    [ 'oom_score_adjust 1001', { key => 'oom_score_adjust = 1001,' }, 8,
      qr/^pool "web": isolation\.oom_score_adjust: expected an integer from -1000 to 1000, got 1001$/ ],
    [ 'unknown supplementary group', { key => 'supplementary_groups = { 0, "no-such-group-x" },' }, 8,
      qr/^pool "web": isolation\.supplementary_groups\[2\]: unknown group "no-such-group-x"$/ ],
    [ 'supplementary groups without user', { user => '-- no user', key => 'supplementary_groups = { 0 },' }, 8,
      qr/^pool "web": isolation\.supplementary_groups: needs user or group/ ],
    # what the system shows
    [ 'rootfs missing', { key => 'rootfs = "%TMP%/no-root",' }, 8,
      qr/^pool "web": isolation\.rootfs: \Q$dir\E\/no-root: No such file or directory$/ ],
    [ 'rootfs a file', { key => 'rootfs = "%TMP%/a-file",' }, 8,
      qr/^pool "web": isolation\.rootfs: \Q$dir\E\/a-file: not a directory$/ ],
    [ 'mount source missing', { key => "mounts = {\n      { \"/usr\", \"/usr\", \"ro\" },\n      { \"%TMP%/no-src\", \"/data\", \"rw\" },\n    }," }, 8,
      qr/^pool "web": isolation\.mounts\[2\]: source \Q$dir\E\/no-src: No such file or directory$/ ],
);

sub check_error {
    my ($name, $res, $prefix, $re) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $err = $res->{err};
    is($res->{code}, 1, "$name: exit 1");
    like($err, qr/\A[^\n]+\n?\z/, "$name: exactly one line on stderr")
        or diag("stderr:\n$err");
    my ($rest) = $err =~ /^\Q$prefix\E(.*)$/m;
    ok(defined $rest, "$name: line starts with '$prefix'") or diag("stderr:\n$err");
    like($rest // '', $re, "$name: message names the key and the problem");
    ok(!-e $t->path('started'), "$name: nothing started");
}

for my $case (@cases) {
    my ($name, $c, $line, $re) = @$case;
    $t->write_config(config_of(%$c));
    check_error("$name (-t)", $t->run_check, "corrald: $file:$line: ", $re);
    check_error("$name (startup)", $t->run('-c', $file, { timeout => 5 }), "corrald: $file:$line: ", $re);
}

# A capability corrald's bounding set lacks: it cannot give it.
SKIP: {
    my $setpriv = CorralTest::find_program('setpriv');
    skip 'no setpriv', 5 unless $setpriv;
    $t->write_config(config_of(key => 'capabilities = { "CAP_KILL", "net_bind_service" },'));
    my $res = $t->command_wait($t->command_spawn([ $setpriv, '--bounding-set=-net_bind_service',
                                                   $CorralTest::CORRALD, '-t', '-c', $file ]), 10);
    check_error('capability outside the bounding set (-t)', $res, "corrald: $file:8: ",
                qr/^pool "web": isolation\.capabilities: CAP_NET_BIND_SERVICE: not in corrald's capability bounding set$/);
}

# User namespaces disabled (max_user_namespaces 0): made so inside a user
# namespace of the test's own, where the limit is its own to set.
SKIP: {
    my $unshare = CorralTest::find_program('unshare');
    skip 'no unshare', 5 unless $unshare && system("$unshare -U -r true 2>/dev/null") == 0;
    $t->write_config(config_of(ns => 'namespaces = { "user", "pid" },', key => ''));
    my $res = $t->command_wait($t->command_spawn([ $unshare, '-U', '-r', '/bin/sh', '-c',
        'echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" -t -c "$1"', $CorralTest::CORRALD, $file ]), 10);
    check_error('user namespaces disabled (-t)', $res, "corrald: $file:7: ",
                qr/^pool "web": isolation\.namespaces: "user": user namespaces are disabled on this system \(\/proc\/sys\/user\/max_user_namespaces is 0\)$/);
}

# Errors of several pools: each its own line, in file order.
$t->write_config(<<'EOF');
pool "a" { command = "/bin/sleep 1", isolation = { rootfs = "%TMP%/gone" } }
pool "b" { command = "/bin/sleep 1", isolation = { nice = 99 } }
EOF
my $res = $t->run_check;
is($res->{code}, 1, 'a config error: -t exits 1');
# -t: the config's own error and what the system shows, in one run, in
# file order
my $want = join '', map { "corrald: \Q$file\E:$_\\n" }
    '1: pool "a": isolation\.rootfs: [^\n]*No such file or directory',
    '1: pool "a": command: warning: not checked: [^\n]*',
    '2: pool "b": isolation\.nice: [^\n]*';
like($res->{err}, qr/\A$want\z/, 'the config\'s own error and the system\'s, together in file order')
    or diag($res->{err});
$t->write_config(<<'EOF');
pool "a" { command = "/bin/sleep 1", isolation = { rootfs = "%TMP%/gone" } }
pool "b" { command = "/bin/sleep 1", isolation = { mounts = { { "%TMP%/gone-too", "/x", "ro" } } } }
EOF
$res = $t->run_check;
is($res->{err}, "corrald: $file:1: pool \"a\": isolation.rootfs: $dir/gone: No such file or directory\n"
              . "corrald: $file:2: pool \"b\": isolation.mounts[1]: source $dir/gone-too: No such file or directory\n",
   'two pools\' system errors: both, in file order');

# Everything at once, and valid: -t says ok and starts nothing.
my $userns = (CorralTest::slurp('/proc/sys/user/max_user_namespaces') // 0) > 0;
my $ns = join ', ', map { "\"$_\"" } ($userns ? 'user' : ()), qw(pid mount net uts ipc cgroup);
my $maps = $userns ? 'uidmap = { { 0, 65534, 1 } }, gidmap = { { 0, 65534, 1 }, { 1, 100000, 65536 } },' : '';
$t->write_config(<<"EOF");
pool "ok" { command = { "/bin/sh", "-c", "touch %TMP%/started; exec /bin/sleep 1000" }, env_inherit = { "CORRAL_TEST_DIR" } }
pool "web" {
  command = "/bin/sleep 1000",
  user = "nobody",
  isolation = {
    namespaces = { $ns },
    $maps
    hostname = "web-sandbox.example",
    network = "loopback",
    rootfs = "%TMP%/root",
    mounts = { { "/usr", "/usr", "ro" }, { "%TMP%", "/data", "rw" } },
    no_new_privs = false,
    capabilities = { "CAP_NET_BIND_SERVICE", "kill", "Cap_Chown" },
    rlimits = { nofile = 4096, core = 0, nproc = { 100, 200 }, as = "1G", memlock = "infinity",
                stack = { "8M", "unlimited" }, nice = 10, rtprio = 0 },
    umask = "0027",
    nice = 5,
    oom_score_adjust = -500,
    @{[ $userns ? '' : 'supplementary_groups = { 0 },' ]}
  },
}
pool "bare" { command = "/bin/sleep 1000", isolation = {} }
EOF
$res = $t->run_check;
is($res->{code}, 0, 'a valid isolation table: -t exits 0') or diag($res->{err});
is($res->{err}, "corrald: $file:3: pool \"web\": command: warning: not checked: it runs inside isolation.rootfs, "
    . "which -t does not enter\ncorrald: $file: configuration ok (3 pools)\n",
   'a valid isolation table: configuration ok (the rootfs pool\'s program not looked for on the host)');
ok(!-e $t->path('started'), 'a valid isolation table: -t starts nothing');

# Root's ids into a user namespace, and groups that a user namespace drops.
SKIP: {
    skip 'user namespaces are disabled here', 6 unless $userns;
    for my $c ([ 'no user: uid 0 by default', 'pool "p" { command = "/bin/sleep 1", isolation = { namespaces = { "user" } } }',
                 qr/^corrald: \Q$file\E:1: pool "p": isolation\.uidmap: the host's root \(uid 0\) would be mapped/ ],
               [ 'a map of uid 0', 'pool "p" { command = "/bin/sleep 1", user = "nobody", isolation = { namespaces = { "user" }, uidmap = { { 0, 0, 1 } } } }',
                 qr/^corrald: \Q$file\E:1: pool "p": isolation\.uidmap: the host's root/ ],
               [ 'supplementary_groups in a user namespace',
                 'pool "p" { command = "/bin/sleep 1", user = "nobody", isolation = { namespaces = { "user" }, supplementary_groups = { "audio" } } }',
                 qr/^corrald: \Q$file\E:1: pool "p": isolation\.supplementary_groups: not with "user"/ ]) {
        my ($name, $line, $re) = @$c;
        $t->write_config("$line\n");
        my $r = $t->run_check;
        is($r->{code}, 1, "refused: $name");
        like($r->{err}, $re, "refused: $name: the key and why") or diag($r->{err});
    }
}

# A reload asking for a root that is not there: refused, with the line;
# the running pool keeps its workers. A valid isolation table changes the
# pool (its workers are replaced).
my $r = CorralTest->new;
my $rfile = $r->conf;
my $plain = <<'EOF';
pool "web" {
  command = "/bin/sleep 1000",
  workers = 2,
}
EOF
$r->write_config($plain);
$r->start;
$r->wait_for(sub { $r->ids_settled('web', 2) }, 10, 'reload: web runs 2 workers');
my %before = $r->worker_map('web');
$r->write_config(<<'EOF');
pool "web" {
  command = "/bin/sleep 1000",
  workers = 2,
  isolation = {
    namespaces = { "mount" },
    rootfs = "%TMP%/no-root",
  },
}
EOF
my $mark = $r->mark;
my $rr = $r->ctl('reload');
isnt($rr->{code}, 0, 'reload to a missing rootfs: refused');
my $want = qr/\Q$rfile\E:6: pool "web": isolation\.rootfs: \Q${\ $r->dir}\E\/no-root: No such file or directory/;
like($rr->{err} . $rr->{out}, $want, 'corralctl names FILE:LINE, the key and the reason') or diag("$rr->{out}$rr->{err}");
$r->wait_log(qr/ error reload failed, keeping the running configuration: $want$/, since => $mark,
             name => 'the log says so');
$r->stays(sub { !$r->log_lines(qr/ worker started /, $mark) }, 0.5, 'reload refused: nothing started');
is_deeply({ $r->worker_map('web') }, \%before, 'reload refused: web keeps its workers');

$r->write_config(<<'EOF');
pool "web" {
  command = "/bin/sleep 1000",
  workers = 2,
  isolation = { umask = "0027" },
}
EOF
$mark = $r->mark;
$rr = $r->ctl('reload');
is($rr->{code}, 0, 'reload to a valid isolation table: done') or diag($rr->{err});
$r->wait_log(qr/ info reload done: 0 added, 1 changed, 0 removed, 0 unchanged/, since => $mark,
             name => 'isolation counts in the pool\'s definition: changed');
$r->wait_for(sub {
    my %now = $r->worker_map('web');
    $r->ids_settled('web', 2) && !grep { $now{$_} == ($before{$_} // 0) } keys %now
}, 15, 'reload: web\'s workers replaced');

$t->done;
