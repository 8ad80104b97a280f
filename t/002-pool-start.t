#!/usr/bin/perl
# Pools start with their worker counts and ids, a clean environment, their
# directory, /dev/null stdin, their own session, under their prototype.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_stat proc_environ proc_cmdline);
use Test::More;

my $DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

my $t = CorralTest->new(
    env => { CORRAL_LEAK => '1', PATH => '/usr/bin:/bin:/corral-test-path' },
    config => <<'EOF');
pool "alpha" {
  command = "/bin/sleep 1000",
  workers = 3,
  env = { FOO = "bar", NUM = 3 },
  env_inherit = { "CORRAL_TEST_DIR", "CORRAL_UNSET_VAR" },
  directory = "%TMP%",
}
pool "beta" {
  command = { "/bin/sleep", "1001" },
  workers = 2,
  env_inherit = { "CORRAL_TEST_DIR", "CORRAL_LEAK" },
}
pool "nopath" {
  command = "/bin/sleep 1002",
  env = { PATH = false },
  env_inherit = { "CORRAL_TEST_DIR" },
}
pool "all" {
  command = "/bin/sleep 1003",
  env_inherit = true,
}
pool "script" {
  command = { "/bin/sh", "-c", "env > %TMP%/env.$CORRAL_WORKER; pwd > %TMP%/pwd.$CORRAL_WORKER; exec /bin/sleep 1004" },
  directory = "%TMP%",
  env = { FOO = "bar" },
  env_inherit = { "CORRAL_TEST_DIR" },
}
EOF
my $corrald = $t->start;

$t->wait_log(qr/ info corrald 0\.1\.0 starting \(config \Q${\$t->conf}\E\)$/);
my %want = (alpha => 3, beta => 2, nopath => 1, all => 1, script => 1);
for my $pool (sort keys %want) {
    $t->wait_for(sub { $t->workers($pool) == $want{$pool} }, 10, "$pool has $want{$pool} workers");
    $t->wait_log(qr/ info pool ready \($want{$pool}\/$want{$pool} workers\) pool=$pool$/);
}
is_deeply([ $t->worker_ids('alpha') ], [ 1, 2, 3 ], 'alpha worker ids 1..3');
is_deeply([ $t->worker_ids('beta') ], [ 1, 2 ], 'beta worker ids 1..2');

# Each worker was logged with its id and pid.
my %alpha = $t->worker_map('alpha');
for my $id (sort keys %alpha) {
    ok(scalar $t->log_lines(qr/ info worker started pool=alpha worker=$id pid=$alpha{$id}$/),
       "log: worker started pool=alpha worker=$id pid=$alpha{$id}");
}

# Command lines: the string form split on whitespace, the table form as is.
my ($a1) = $t->workers('alpha');
my ($b1) = $t->workers('beta');
is(proc_cmdline($a1), "/bin/sleep\0" . "1000\0", 'string command split into argv');
is(proc_cmdline($b1), "/bin/sleep\0" . "1001\0", 'table command is the argv');

# Environment: exactly the defaults (with corrald's own NOTIFY_SOCKET),
# env and env_inherit.
my $notify = $t->worker_notify_socket;
is_deeply(proc_environ($a1), {
    PATH => $DEFAULT_PATH, CORRAL_POOL => 'alpha', CORRAL_WORKER => proc_environ($a1)->{CORRAL_WORKER},
    FOO => 'bar', NUM => '3', CORRAL_TEST_DIR => $t->dir, NOTIFY_SOCKET => $notify,
}, 'alpha: environment is the default one plus env and env_inherit');
like(proc_environ($a1)->{CORRAL_WORKER}, qr/^[123]$/, 'CORRAL_WORKER is the worker id');
is_deeply(proc_environ($b1), {
    PATH => $DEFAULT_PATH, CORRAL_POOL => 'beta', CORRAL_WORKER => proc_environ($b1)->{CORRAL_WORKER},
    CORRAL_LEAK => '1', CORRAL_TEST_DIR => $t->dir, NOTIFY_SOCKET => $notify,
}, 'beta: env_inherit copies CORRAL_LEAK');
my ($n1) = $t->workers('nopath');
ok(!exists proc_environ($n1)->{PATH}, 'env PATH = false removes PATH');
my ($all1) = $t->workers('all');
my $allenv = proc_environ($all1);
is($allenv->{CORRAL_LEAK}, '1', 'env_inherit = true inherits CORRAL_LEAK');
is($allenv->{CORRAL_POOL}, 'all', 'env_inherit = true still sets CORRAL_POOL');
is($allenv->{CORRAL_WORKER}, '1', 'env_inherit = true still sets CORRAL_WORKER');

# The shell worker sees the same through `env`.
$t->wait_for(sub { -s $t->path('env.1') && -s $t->path('pwd.1') }, 10, 'script worker wrote env and pwd');
my $env = CorralTest::slurp($t->path('env.1'));
like($env, qr/^PATH=\Q$DEFAULT_PATH\E$/m, 'script: PATH is the default');
like($env, qr/^CORRAL_POOL=script$/m, 'script: CORRAL_POOL');
like($env, qr/^CORRAL_WORKER=1$/m, 'script: CORRAL_WORKER');
like($env, qr/^FOO=bar$/m, 'script: env key set');
unlike($env, qr/^CORRAL_LEAK=/m, 'script: CORRAL_LEAK not leaked');
is(CorralTest::slurp($t->path('pwd.1')), $t->dir . "\n", 'script: directory honoured');

# Working directory.
is(readlink("/proc/$a1/cwd"), $t->dir, 'alpha: directory honoured');
is(readlink("/proc/$b1/cwd"), '/', 'beta: default directory is /');

# Prototypes and the process tree.
for my $pool (qw(alpha beta)) {
    my $proto = $t->prototype_pid($pool);
    ok($proto, "$pool: prototype titled 'corral: prototype $pool', child of corrald");
    next unless $proto;
    ok(scalar $t->log_lines(qr/ info prototype started pool=$pool pid=$proto$/), "$pool: prototype logged with its pid");
    is(proc_stat($proto)->{session}, $proto, "$pool: prototype in its own session");
    for my $w ($t->workers($pool)) {
        my $st = proc_stat($w);
        is($st->{ppid}, $proto, "$pool: worker $w is a child of the prototype");
        is($st->{session}, $w, "$pool: worker $w in its own session");
        is(readlink("/proc/$w/fd/0"), '/dev/null', "$pool: worker $w stdin is /dev/null");
        like(readlink("/proc/$w/fd/1"), qr/^pipe:/, "$pool: worker $w stdout is a pipe to corrald");
        is(readlink("/proc/$w/fd/2"), readlink("/proc/$w/fd/1"), "$pool: worker $w stderr is the same pipe");
        opendir my $dh, "/proc/$w/fd";
        my @fds = sort { $a <=> $b } grep { /^\d+$/ } readdir $dh;
        is("@fds", '0 1 2', "$pool: worker $w has only fds 0 1 2");
    }
}

$t->done;
