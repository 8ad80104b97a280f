#!/usr/bin/perl
# RLIMIT_NPROC exhausted. corrald runs as root, which the limit does not
# stop; a pool whose workers run as another user ("irc", which nothing
# else here runs as) meets it when a worker takes that user: the kernel
# then fails its exec with EAGAIN. corrald says so (pool, worker, errno
# text), the pool backs off and retries (spaced, not a tight loop),
# corrald keeps answering, the other pool is untouched, and once the
# limit is raised (on corrald and the pool's prototype, which its workers
# inherit it from) the pool reaches its target.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(find_program);
use Test::More;
use Time::HiRes qw(time);

my $USER = 'irc';
my $uid = getpwnam($USER);
plan skip_all => "needs root and a user \"$USER\"" unless $> == 0 && defined $uid;
my $prlimit = find_program('prlimit') or plan skip_all => 'needs prlimit (util-linux)';

# Processes whose real uid is $uid: what RLIMIT_NPROC counts for it.
sub nproc_of {
    my $n = 0;
    opendir my $dh, '/proc' or die "/proc: $!";
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my $st = CorralTest::slurp("/proc/$pid/status") // next;
        $n++ if $st =~ /^Uid:\s+(\d+)/m && $1 == $uid;
    }
    return $n;
}

# Room for two of the pool's four workers.
my $limit = nproc_of() + 2;
# the soft limit only: raising it back up to the hard one needs no
# CAP_SYS_RESOURCE (which a container may lack)
my $t = CorralTest->new(wrap => [ $prlimit, "--nproc=$limit:" ], config => <<"EOF");
local inherit = { "CORRAL_TEST_DIR" }
pool "capped" {
  command = "/bin/sleep 1000",
  workers = 4,
  user = "$USER",
  backoff = { initial = "100ms", max = "800ms" },
  crash_limit = { failures = 0 },
  env_inherit = inherit,
}
pool "other" { command = "/bin/sleep 1000", workers = 2, env_inherit = inherit }
EOF
$t->start;
$t->wait_control;
$t->wait_for(sub { $t->workers('other') == 2 }, 10, 'the other pool is up');
my %other = $t->worker_map('other');

# Says why: pool, worker and the errno text.
$t->wait_log(qr/ error unable to exec "\/bin\/sleep": Resource temporarily unavailable pool=capped worker=\d+ pid=\d+$/,
             name => 'the log names the pool, the worker and EAGAIN');
$t->wait_log(qr/ info restarting worker in \S+ pool=capped$/, name => 'the pool retries');
cmp_ok(scalar $t->workers('capped'), '<', 4, 'the pool is short of its four workers at the limit');

# Backs off: attempts over 3 s are few, and the delays grow to the max.
my $mark = $t->mark;
my $t0 = time;
$t->stays(sub {
    my $r = $t->request({ command => 'ping' }, timeout => 2);
    $r && $r->{ok};
}, 3, 'corrald answers ping meanwhile');
my $secs = time - $t0;
my @tries = $t->log_lines(qr/ unable to exec .* pool=capped /, $mark);
ok(@tries >= 2, sprintf('the pool kept retrying (%d attempts in %.1f s)', scalar @tries, $secs));
# at least 800ms apart once grown, two failing slots: about 2.5 a second
cmp_ok(scalar @tries, '<=', 4 * $secs + 4, 'retries are spaced by the backoff, not a tight loop');
my @delays = map { /restarting worker in (\S+) / } $t->log_lines(qr/ restarting worker in .* pool=capped$/);
ok(grep({ $_ eq '800ms' } @delays), 'the backoff grew to its max (800ms)') or diag("delays: @delays");

my $st = $t->status;
ok($st && $st->{capped} && $st->{other}, 'status answers with both pools');
is_deeply({ $t->worker_map('other') }, \%other, 'the other pool is untouched (same workers)');

# The resource comes back: the pool reaches its target.
my $proto = $t->prototype_pid('capped');
ok($proto, 'the capped pool has its prototype');
for my $pid ($t->pid, $proto) {
    my ($hard) = (CorralTest::slurp("/proc/$pid/limits") // '') =~ /^Max processes\s+\S+\s+(\S+)/m;
    $hard = 'unlimited' if !defined $hard || $hard !~ /^\d+$/;
    is(system($prlimit, '--pid', $pid, "--nproc=$hard:"), 0, "raise RLIMIT_NPROC of $pid to its hard limit ($hard)");
}
$t->wait_for(sub { $t->workers('capped') == 4 }, 10, 'the pool reaches its target of 4 once the limit is raised');
$mark = $t->mark;
$t->stays(sub { $t->workers('capped') == 4 }, 1, 'and stays there');
is(scalar $t->log_lines(qr/ unable to exec /, $mark), 0, 'no more failures');
is_deeply({ $t->worker_map('other') }, \%other, 'the other pool is still untouched');

# --- cgroup.max.descendants reached: the worker's cgroup cannot be made -------

# The pool's cgroup may hold its prototype's and two workers' cgroups.
# Scaling to 3 fails at mkdir (EAGAIN): corrald names the cgroup and the
# error and backs off; once the limit is lifted the pool gets its third
# worker at the next retry (a failed spawn arms one, whichever step
# failed).
SKIP: {
    my $max = $t->cgroup_dir('other') . '/cgroup.max.descendants';
    skip 'no cgroup.max.descendants here', 6 unless -e $max;
    my %o = $t->worker_map('other');
    ok(CorralTest::slurp($max) =~ /^max$/m, 'other: no descendants limit to begin with');
    open my $fh, '>', $max or die "$max: $!";
    print $fh "3\n";
    close $fh or die "$max: $!";
    $mark = $t->mark;
    is($t->ctl('scale', 'other', '3')->{code}, 0, 'scale other to 3 with room for 2 workers\' cgroups');
    $t->wait_log(qr{ error cgroup: unable to create the worker's cgroup \S+/other/3: Resource temporarily unavailable pool=other worker=3$},
                 since => $mark, name => 'corrald names the cgroup and EAGAIN');
    is_deeply({ $t->worker_map('other') }, \%o, 'the two workers run on');
    open $fh, '>', $max or die "$max: $!";
    print $fh "max\n";
    close $fh or die "$max: $!";
    # the failed spawn armed a retry: the pool gets going by itself
    $t->wait_for(sub { $t->workers('other') == 3 }, 10, 'limit lifted: the pool gets its third worker');
}

$t->done;
