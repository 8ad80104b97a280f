#!/usr/bin/perl
# Resource limits: validated at load (FILE:LINE and the key); a limit
# whose controller is missing is a warning naming it, or with
# limits_required = true a startup error; the values land in the pool's
# and each worker's cgroup files; a reload that changes only limits
# applies them in place, workers kept.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;

# ---- validation ---------------------------------------------------------

{
    my $t = CorralTest->new;
    my $file = $t->conf;
    my $head = <<'EOF';
pool "ok" { command = { "/bin/sh", "-c", "touch %TMP%/started; exec /bin/sleep 1000" }, env_inherit = { "CORRAL_TEST_DIR" } }
-- the faulty line follows
EOF
    my $p = 'pool "p" { command = "/bin/sleep 1000", ';
    my @cases = (
        [ 'limits not a table', "${p}limits = 5 }", qr/^pool "p": limits: expected a table/ ],
        [ 'worker_limits not a table', "${p}worker_limits = \"1G\" }", qr/^pool "p": worker_limits: expected a table/ ],
        [ 'unknown limit', "${p}limits = { memory_maxx = \"1G\" } }", qr/^pool "p": limits: unknown limit "memory_maxx"/ ],
        [ 'bad size', "${p}limits = { memory_max = \"lots\" } }", qr/^pool "p": limits\.memory_max: invalid size "lots"/ ],
        [ 'bad size unit', "${p}worker_limits = { memory_high = \"3X\" } }", qr/^pool "p": worker_limits\.memory_high: / ],
        [ 'negative size', "${p}limits = { memory_low = -1 } }", qr/^pool "p": limits\.memory_low: / ],
        [ 'size of a wrong type', "${p}limits = { memory_swap_max = true } }", qr/^pool "p": limits\.memory_swap_max: / ],
        [ 'cpu_max below 1%', "${p}worker_limits = { cpu_max = \"0.5%\" } }", qr/^pool "p": worker_limits\.cpu_max: .*minimum/ ],
        [ 'cpu_max nonsense', "${p}limits = { cpu_max = \"fast\" } }", qr/^pool "p": limits\.cpu_max: expected a percentage/ ],
        [ 'cpu_max period too long', "${p}limits = { cpu_max = \"100000 2000000\" } }", qr/^pool "p": limits\.cpu_max: / ],
        [ 'cpu_max number', "${p}limits = { cpu_max = 150 } }", qr/^pool "p": limits\.cpu_max: / ],
        [ 'cpu_weight 0', "${p}limits = { cpu_weight = 0 } }", qr/^pool "p": limits\.cpu_weight: expected an integer from 1 to 10000, got 0/ ],
        [ 'cpu_weight 10001', "${p}worker_limits = { cpu_weight = 10001 } }", qr/^pool "p": worker_limits\.cpu_weight: / ],
        [ 'io_weight string', "${p}limits = { io_weight = \"high\" } }", qr/^pool "p": limits\.io_weight: / ],
        [ 'pids_max 0', "${p}limits = { pids_max = 0 } }", qr/^pool "p": limits\.pids_max: expected a positive integer or "max"/ ],
        [ 'pids_max fraction', "${p}worker_limits = { pids_max = 2.5 } }", qr/^pool "p": worker_limits\.pids_max: / ],
        [ 'raw not a table', "${p}limits = { cgroup = 3 } }", qr/^pool "p": limits\.cgroup: expected a table/ ],
        [ 'raw bad file name', "${p}limits = { cgroup = { [\"../../x\"] = 1 } } }", qr/^pool "p": limits\.cgroup: invalid cgroup file name "\.\.\/\.\.\/x"/ ],
        [ 'raw bad value', "${p}worker_limits = { cgroup = { [\"cgroup.max.depth\"] = {} } } }",
          qr/^pool "p": worker_limits\.cgroup\.cgroup\.max\.depth: expected a string or a number/ ],
        (map { [ "raw $_ refused", "${p}limits = { cgroup = { [\"$_\"] = 1 } } }", qr/^pool "p": limits\.cgroup: \Q$_\E is managed by corral/ ] }
             qw(cgroup.procs cgroup.threads cgroup.kill cgroup.freeze cgroup.subtree_control cgroup.type memory.oom.group)),
        [ 'raw managed file in worker_limits', "${p}worker_limits = { cgroup = { [\"cgroup.kill\"] = 1 } } }",
          qr/^pool "p": worker_limits\.cgroup: cgroup\.kill is managed by corral/ ],
        [ 'limits_required not a boolean', 'settings { limits_required = "yes" }', qr/^settings: limits_required: expected true or false/ ],
    );
    for my $case (@cases) {
        my ($name, $line, $re) = @$case;
        $t->write_config($head . $line . "\n");
        for my $how ([ '-t', $t->run_check ], [ 'startup', $t->run('-c', $file, '-g', $t->{cgroup}, { timeout => 5 }) ]) {
            my ($mode, $res) = @$how;
            is($res->{code}, 1, "$name ($mode): exit 1");
            like($res->{err}, qr/\A[^\n]+\n?\z/, "$name ($mode): one line on stderr") or diag($res->{err});
            my ($rest) = $res->{err} =~ /^corrald: \Q$file\E:3: (.*)$/m;
            ok(defined $rest, "$name ($mode): names FILE:3") or diag($res->{err});
            like($rest // '', $re, "$name ($mode): names the key and the problem");
        }
        ok(!-e $t->path('started'), "$name: nothing started");
    }
    ok(!-e $t->cgroup_dir, 'no cgroup made for a config error');
}

# ---- a full set of limits -----------------------------------------------

my $limits = <<'EOF';
  limits = {
    memory_max = "256M", memory_high = "200M", memory_low = "16M", memory_swap_max = 0,
    cpu_max = "150%", cpu_weight = 200, io_weight = 50, pids_max = 100,
    cgroup = { ["cgroup.max.descendants"] = DESC },
  },
  worker_limits = {
    memory_max = "64M", cpu_max = "50000 100000", pids_max = 20,
    cgroup = { ["cgroup.max.depth"] = DEPTH },
  },
EOF
sub limits_config {
    my ($desc, $depth, $workers, $required) = @_;
    (my $l = $limits) =~ s/DESC/$desc/;
    $l =~ s/DEPTH/$depth/;
    my $settings = $required ? "settings { limits_required = true }\n" : '';
    return $settings . <<"EOF";
pool "p" {
  command = { "/bin/sh", "-c", "touch %TMP%/started; exec /bin/sleep 1000" }, workers = $workers,
  env_inherit = { "CORRAL_TEST_DIR" },
$l}
EOF
}
# key => [ file, value written, controller ]
my %pool_limits = (
    'limits.memory_max' => [ 'memory.max', '268435456', 'memory' ],
    'limits.memory_high' => [ 'memory.high', '209715200', 'memory' ],
    'limits.memory_low' => [ 'memory.low', '16777216', 'memory' ],
    'limits.memory_swap_max' => [ 'memory.swap.max', '0', 'memory' ],
    'limits.cpu_max' => [ 'cpu.max', '150000 100000', 'cpu' ],
    'limits.cpu_weight' => [ 'cpu.weight', '200', 'cpu' ],
    'limits.io_weight' => [ 'io.weight', 'default 50', 'io' ],
    'limits.pids_max' => [ 'pids.max', '100', 'pids' ],
);
my %worker_limits = (
    'worker_limits.memory_max' => [ 'memory.max', '67108864', 'memory' ],
    'worker_limits.cpu_max' => [ 'cpu.max', '50000 100000', 'cpu' ],
    'worker_limits.pids_max' => [ 'pids.max', '20', 'pids' ],
);

my $t = CorralTest->new(config => limits_config(50, 3, 2));
my $res = $t->run_check;
is($res->{code}, 0, 'every limit kind: -t accepts the config') or diag($res->{err});
my $base = $t->cgroup_dir;
$t->start;
$t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=p$/, name => 'the pool starts despite missing controllers');
my %avail = map { $_ => 1 } split ' ', $t->cgroup_read(undef, 'cgroup.controllers') // '';
note('controllers in the base: ' . join(' ', sort keys %avail));
my %w = $t->started_workers('p');
is(scalar keys %w, 2, '2 workers');

for my $key (sort(keys %pool_limits), sort(keys %worker_limits)) {
    my ($file, $value, $ctl) = @{ $pool_limits{$key} // $worker_limits{$key} };
    my @warn = $t->log_lines(qr/ warn cgroup: \Q$key\E cannot be applied: the \Q$ctl\E controller is not available in \Q$base\E pool=p$/);
    if ($avail{$ctl}) {
        ok(!@warn, "$key: $ctl is available: no warning");
        my @where = $pool_limits{$key} ? ('p') : map { "p/$_" } sort keys %w;
        is($t->cgroup_read($_, $file), $value, "$key: $_/$file is $value") for @where;
    } else {
        is(scalar @warn, 1, "$key: $ctl controller missing: one warning naming the limit, the controller and the base");
        ok(!-e $t->cgroup_dir("p/$file"), "$key: no $file in the pool's cgroup here");
    }
}
ok(!$t->log_lines(qr/ warn cgroup: \S+\.cgroup\./), 'raw cgroup.* files: no warning');
ok(!$t->log_lines(qr/ error /), 'no error logged');

# raw files: the pool's in <pool>, the workers' in each <pool>/<id>
is($t->cgroup_read('p', 'cgroup.max.descendants'), '50', 'limits.cgroup: <pool>/cgroup.max.descendants is 50');
is($t->cgroup_read('p', 'cgroup.max.depth'), 'max', 'worker_limits are not written to the pool\'s cgroup');
is($t->cgroup_read('p/prototype', 'cgroup.max.depth'), 'max', 'nor to the prototype\'s');
for my $id (sort keys %w) {
    is($t->cgroup_read("p/$id", 'cgroup.max.depth'), '3', "worker_limits.cgroup: <pool>/$id/cgroup.max.depth is 3");
    is($t->cgroup_read("p/$id", 'cgroup.max.descendants'), 'max', "limits are not written to the cgroup of worker $id");
}

# a reload that changes only limits: applied in place
my $proto = $t->prototype_pid('p');
my $mark = $t->mark;
$t->write_config(limits_config(60, 4, 2));
$t->reload;
$t->wait_log(qr/ info reload done: 0 added, 0 changed, 0 removed, 1 unchanged$/, since => $mark,
             name => 'limits only: the pool counts as unchanged');
$t->wait_for(sub { ($t->cgroup_read('p', 'cgroup.max.descendants') // '') eq '60' }, 5,
             'limits only: <pool>/cgroup.max.descendants is 60 now');
for my $id (sort keys %w) {
    $t->wait_for(sub { ($t->cgroup_read("p/$id", 'cgroup.max.depth') // '') eq '4' }, 5,
                 "limits only: <pool>/$id/cgroup.max.depth is 4 now");
}
$t->stays(sub { !$t->log_lines(qr/ (?:worker started|worker stopped|prototype started) /, $mark) }, 0.5,
          'limits only: no worker or prototype stopped or started');
is_deeply({ $t->started_workers('p') }, \%w, 'limits only: the same worker pids');
is($t->prototype_pid('p'), $proto, 'limits only: the same prototype');
ok(!$t->log_lines(qr/ error /, $mark), 'limits only: no error logged');

# workers made after the reload get the new values
$mark = $t->mark;
kill 'KILL', $w{1};
my ($line) = $t->wait_log(qr/ info worker started pool=p worker=1 pid=\d+$/, since => $mark,
                          name => 'worker 1 replaced');
is($t->cgroup_read('p/1', 'cgroup.max.depth'), '4', 'the replacement\'s cgroup has the new worker limit');
$mark = $t->mark;
$t->write_config(limits_config(60, 4, 3));
$t->reload;
$t->wait_log(qr/ info pool ready \(3\/3 workers\) pool=p$/, since => $mark, name => 'scaled up to 3');
is($t->cgroup_read('p/3', 'cgroup.max.depth'), '4', 'a worker added by a reload has the new worker limit');

# ---- limits_required ------------------------------------------------------

# Only raw cgroup.* files: nothing is missing, corrald starts.
{
    my $r = CorralTest->new(config => <<'EOF');
settings { limits_required = true }
pool "raw" {
  command = "/bin/sleep 1000", env_inherit = { "CORRAL_TEST_DIR" },
  limits = { cgroup = { ["cgroup.max.descendants"] = 10 } },
  worker_limits = { cgroup = { ["cgroup.max.depth"] = 2 } },
}
EOF
    $r->start;
    $r->wait_log(qr/ info pool ready \(1\/1 workers\) pool=raw$/, name => 'limits_required with raw files only: starts');
    is($r->cgroup_read('raw/1', 'cgroup.max.depth'), '2', 'limits_required with raw files only: applied');
}

# A limit whose controller is missing: startup error naming both.
for my $case ([ 'limits', 'memory_max = "64M"', 'memory' ], [ 'worker_limits', 'pids_max = 10', 'pids' ]) {
    my ($where, $limit, $ctl) = @$case;
    my ($key) = $limit =~ /^(\w+)/;
    my $r = CorralTest->new(config => <<"EOF");
settings { limits_required = true }
pool "q" {
  command = { "/bin/sh", "-c", "touch %TMP%/started; exec /bin/sleep 1000" }, env_inherit = { "CORRAL_TEST_DIR" },
  $where = { $limit, cgroup = { ["cgroup.max.depth"] = 5 } },
}
EOF
    SKIP: {
        skip "the $ctl controller is available here", 6 if $avail{$ctl};
        my $rbase = $r->cgroup_dir;
        my $res = $r->run('-c', $r->conf, '-g', $r->{cgroup}, { timeout => 10 });
        is($res->{code}, 1, "limits_required, $where.$key: exit 1");
        like($res->{err}, qr/ error pool "q": \Q$where.$key\E cannot be applied: the $ctl controller is not available in \Q$rbase\E \(limits_required = true\)$/m,
             "limits_required, $where.$key: names the pool, the limit, the controller and the base")
            or diag($res->{err});
        ok(!-e $r->path('started'), "limits_required, $where.$key: nothing started");
        ok(!$r->leftovers, "limits_required, $where.$key: no process left");
        ok(!-e "$rbase/q", "limits_required, $where.$key: no pool cgroup made");
        ok(!-e $rbase, "limits_required, $where.$key: no cgroup left (base and corrald/ removed)")
            or diag(`find $rbase -type d 2>&1`);
        # whatever was left, take it away
        rmdir "$rbase/corrald";
        rmdir $rbase;
    }
}

CorralTest->done;
