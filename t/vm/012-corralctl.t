#!/usr/bin/perl
# corralctl against corral.service (socket /run/corral/control.sock):
# status with memory and CPU figures from the cgroups, scale, restart of
# a worker and of a pool, stop and start of a pool, freeze and thaw.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;

my $UNIT = $CorralVM::UNIT;
my $CG = $CorralVM::UNIT_CG;
my $SOCK = '/run/corral/control.sock';
my $DIR = test_dir('ctl');

# web's workers beat: a file per worker, rewritten every 0.2 s
my $config = corral_lua(
    [ pool => 'web', command => [ '/bin/sh', '-c', "while :; do date +%s.%N > $DIR/beat.\$CORRAL_WORKER; sleep 0.2; done" ],
      workers => 2 ],
    [ pool => 'db', command => '/bin/sleep 8001', workers => 1 ],
);

my ($rc, $out) = corral_start($config);
is($rc, 0, 'systemctl start corral') or diag($out);
ok(wait_until(sub { pool_workers('web') == 2 && pool_workers('db') == 1 }, 60), 'web: 2 workers, db: 1');
ok(-S $SOCK, "$SOCK is a socket");

# --- status ------------------------------------------------------------------

# (a worker's figures come from its cgroup: every one has them once ready)
wait_for(sub {
    (undef, my $text) = corralctl('status');
    my $n = () = $text =~ /^\s+\d+\s+\d+\s+ready\s+\S+\s+0\s+\d+(?:\.\d)?[KMG]\s+\d+\.\d\ds/mg;
    $n == 3;
}, 20, 'corralctl status: the 3 workers ready, with memory and CPU figures');
($rc, $out) = corralctl('status');
is($rc, 0, 'corralctl status') or diag($out);
note($out);
like($out, qr/^POOL\s+STATE\s+READY\s+WORKERS\s+TARGET\s+RESTARTS$/m, 'status: the pools header');
like($out, qr/^web\s+running\s+2\/2\s+2\s+2\s+0$/m, 'status: web running 2/2');
like($out, qr/^db\s+running\s+1\/1\s+1\s+1\s+0$/m, 'status: db running 1/1');
my %web = worker_pids_by_id('web');
for my $id (1, 2) {
    my ($mem, $cpu) = $out =~ /^\s+$id\s+$web{$id}\s+ready\s+\S+\s+0\s+(\S+)\s+(\S+)/m;
    ok(defined $mem, "status: web worker $id, pid $web{$id}, ready") or next;
    like($mem, qr/^\d+(?:\.\d)?[KMG]$/, "status: web worker $id has a memory figure ($mem), not \"-\"");
    like($cpu, qr/^\d+\.\d\ds$/, "status: web worker $id has a CPU figure ($cpu)");
}
($rc, $out) = corralctl('--json', 'status', 'web');
is($rc, 0, 'corralctl --json status web') or diag($out);
require JSON::PP;
my $st = eval { JSON::PP::decode_json($out) } // {};
my ($pool) = @{ $st->{pools} // [] };
ok($pool && $pool->{name} eq 'web', 'json: the pool web') or diag($out);
cmp_ok($pool->{memory_current} // 0, '>', 0, 'json: the pool\'s memory_current (memory controller)');
cmp_ok($pool->{cpu_usage_usec} // 0, '>', 0, 'json: the pool\'s cpu_usage_usec');
for my $w (@{ $pool->{workers} // [] }) {
    cmp_ok($w->{memory_current} // 0, '>', 0, "json: worker $w->{id} memory_current");
    ok(defined $w->{cpu_usage_usec}, "json: worker $w->{id} cpu_usage_usec");
}

# --- scale ----------------------------------------------------------------------

($rc, $out) = corralctl('scale', 'web', 3);
is($rc, 0, 'corralctl scale web 3') or diag($out);
ok(wait_until(sub { pool_workers('web') == 3 }, 30), 'web has 3 workers');
is(cgroup_of({ worker_pids_by_id('web') }->{3}), "$CG/web/3", 'the third is in web/3');
($rc, $out) = corralctl('scale', 'web', 2);
is($rc, 0, 'corralctl scale web 2') or diag($out);
ok(wait_until(sub { pool_workers('web') == 2 && !-d "$CorralVM::CGROOT$CG/web/3" }, 30), 'back to 2, web/3 removed');
($rc, $out) = corralctl('scale', 'nosuch', 2);
is($rc, 3, 'corralctl scale of an unknown pool: exit 3 (not found)');

# --- restart -----------------------------------------------------------------------

%web = worker_pids_by_id('web');
($rc, $out) = corralctl('restart', 'web/1');
is($rc, 0, 'corralctl restart web/1') or diag($out);
my %now;
ok(wait_until(sub { %now = worker_pids_by_id('web'); keys(%now) == 2 && !grep { $_ == $web{1} } values %now }, 30),
   'worker 1 is replaced');
ok((grep { $_ == $web{2} } values %now), 'worker 2 is not');

my %proto = prototypes();
%web = %now;
($rc, $out) = corralctl('restart', 'web');
is($rc, 0, 'corralctl restart web') or diag($out);
ok(wait_until(sub {
    my @n = pool_workers('web');
    @n == 2 && !grep { my $n = $_; grep { $_ == $n } values %web } @n;
}, 60), 'a rolling restart: both workers are new');
my %proto2 = prototypes();
ok($proto2{web} && $proto2{web} != $proto{web}, 'with a new prototype');
is($proto2{db}, $proto{db}, "db's prototype is untouched");
ok(wait_until(sub { (corralctl('status', 'web'))[1] =~ /^web\s+running\s+2\/2\s/m }, 30), 'web is running 2/2 again');

# --- stop and start a pool -----------------------------------------------------------

($rc, $out) = corralctl('stop', 'web');
is($rc, 0, 'corralctl stop web') or diag($out);
ok(wait_until(sub { pool_workers('web') == 0 }, 30), 'web has no worker');
like((corralctl('status', 'web'))[1], qr/^web\s+stopped\s+0\/2\s/m, 'status: web stopped');
is(scalar(pool_workers('db')), 1, 'db still runs');
($rc, $out) = corralctl('start', 'web');
is($rc, 0, 'corralctl start web') or diag($out);
ok(wait_until(sub { pool_workers('web') == 2 }, 30), 'web has 2 workers again');

# --- freeze and thaw ----------------------------------------------------------------

%web = worker_pids_by_id('web');
ok(wait_until(sub { -e "$DIR/beat.1" && -e "$DIR/beat.2" }, 10), 'the workers beat');
($rc, $out) = corralctl('freeze', 'web');
is($rc, 0, 'corralctl freeze web') or diag($out);
ok(wait_until(sub { (cg_keys("$CG/web", 'cgroup.events')->{frozen} // '') eq '1' }, 10), 'web/cgroup.events: frozen 1');
is(cg_read("$CG/web", 'cgroup.freeze'), 1, 'web/cgroup.freeze 1');
ok(wait_until(sub { (corralctl('status', 'web'))[1] =~ /^web\s+frozen\s/m }, 10), 'status: web frozen');
my %beat = map { $_ => slurp("$DIR/beat.$_") } 1, 2;
stays(sub { !grep { slurp("$DIR/beat.$_") ne $beat{$_} } 1, 2 }, 1.5, 'frozen: the workers do not beat (1.5 s)');
($rc, $out) = corralctl('thaw', 'web');
is($rc, 0, 'corralctl thaw web') or diag($out);
ok(wait_until(sub { (cg_keys("$CG/web", 'cgroup.events')->{frozen} // '') eq '0' }, 10), 'web/cgroup.events: frozen 0');
ok(wait_until(sub { slurp("$DIR/beat.1") ne $beat{1} && slurp("$DIR/beat.2") ne $beat{2} }, 10), 'thawed: the workers beat again');
is_deeply({ worker_pids_by_id('web') }, \%web, 'the same workers, frozen and thawed');
ok(wait_until(sub { (corralctl('status', 'web'))[1] =~ /^web\s+running\s+2\/2\s/m }, 10), 'status: web running');

($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'systemctl stop') or diag($out);
($rc, $out) = corralctl('status');
is($rc, 5, 'corralctl status with corrald stopped: exit 5 (not running)') or diag($out);

done();
