#!/usr/bin/perl
# corral's performance figures, each against a baseline measured in the
# same run (the machine is shared and noisy: compare ratios, not times).
# See doc/performance.md for what each figure measures and how.
#
# Usage: bench.pl [--quick] [--json FILE] [--only 1,2,...] --corrald PATH
#                 --corralctl PATH --bare PATH --ready PATH
#
# Prints a line per figure (corral, baseline, ratio, target, pass) and a
# markdown table at the end; writes the same as JSON to FILE. Exits 0
# when every figure was measured, whatever the pass/fail of each: a
# figure that fails its target is a result, not an error of the driver.
use strict;
use warnings;
use Fcntl qw(O_RDWR O_NONBLOCK);
use File::Spec;
use File::Temp qw(tempdir);
use Getopt::Long;
use JSON::PP ();
use POSIX qw(mkfifo ceil :sys_wait_h);
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC sleep);

$| = 1;
my %opt = (json => 'build/bench.json');
GetOptions(\%opt, 'quick!', 'json=s', 'only=s', 'corrald=s', 'corralctl=s', 'bare=s', 'ready=s')
    && $opt{corrald} && $opt{corralctl} && $opt{bare} && $opt{ready}
    or die "usage: bench.pl [--quick] [--json FILE] [--only 1,2] --corrald P --corralctl P --bare P --ready P\n";
$opt{$_} = File::Spec->rel2abs($opt{$_}) for qw(corrald corralctl bare ready);
my $Q = $opt{quick};
my $READY = $opt{ready};    # replaced by a copy in $pub below
my %only = map { $_ => 1 } split /,/, $opt{only} // '1,2,3,4,5,6,7,8';

# The sizes of a full run and of a QUICK one.
my %P = $Q ? (
    growth_n => [10, 100], spawn_n => [100], rounds => { 10 => 3, 100 => 3 },
    idle_n => 100, idle_s => 3, status_calls => 50, growth_calls => 20,
    respawn_trials => 30, respawn_workers => 10, cow_mib => 20, cow_workers => 10,
    churn_workers => 10, churn_s => 2, iso_n => 50, iso_rounds => 3,
) : (
    growth_n => [10, 100, 1000, 5000], spawn_n => [100, 1000],
    rounds => { 10 => 5, 100 => 5, 1000 => 3, 5000 => 1 },
    idle_n => 1000, idle_s => 30, status_calls => 50, growth_calls => 20,
    respawn_trials => 200, respawn_workers => 20, cow_mib => 200, cow_workers => 50,
    churn_workers => 10, churn_s => 10, iso_n => 200, iso_rounds => 5,
);
my $START_WINDOW = 1.2;     # default start_window (1s) and a margin
my $GAP = 0.01;             # between respawn trials, for the dust to settle

my $dir = tempdir('corral-bench-XXXXXX', TMPDIR => 1, CLEANUP => 1);
# The FIFO, and a copy of the ready program, where a pool's user other
# than root reaches them (figure 8 runs its pools as nobody): below /tmp
# itself, whatever TMPDIR is, in a directory anyone may pass through.
my $pub = tempdir('corral-bench-pub-XXXXXX', DIR => '/tmp', CLEANUP => 1);
chmod 0711, $pub or die "chmod $pub: $!";
my $FIFO = "$pub/fifo";
mkfifo($FIFO, 0600) or die "mkfifo $FIFO: $!";
chmod 0666, $FIFO or die "chmod $FIFO: $!";
# Read and write: never an EOF, and a worker's open never blocks.
sysopen(my $fifo, $FIFO, O_RDWR | O_NONBLOCK) or die "open $FIFO: $!";
system('cp', $opt{ready}, "$pub/bench-ready") == 0 && chmod(0755, "$pub/bench-ready")
    or die "copy $opt{ready} to $pub: $!";
$READY = "$pub/bench-ready";
my $fifo_buf = '';

my @rows;                   # the figures, in order
my (@corralds, @bares);     # what is running, for the END block

sub now { clock_gettime(CLOCK_MONOTONIC) }

# The P-th percentile (nearest rank) of a list.
sub pct {
    my ($p, @v) = @_;
    my @s = sort { $a <=> $b } @v;
    return $s[ceil($p / 100 * @s) - 1];
}

sub median { my @s = sort { $a <=> $b } @_; return $s[int(@s / 2)] }

sub note { print STDERR "bench: @_\n" }

# Writes TEXT to PATH (whole, by a rename).
sub write_config {
    my ($path, $text) = @_;
    open my $fh, '>', "$path.new" or die "$path.new: $!";
    print $fh $text;
    close $fh or die "$path.new: $!";
    rename "$path.new", $path or die "rename $path: $!";
}

# --- the FIFO: every worker writes "PID\n" once it is ready ---------------

# Pids read within TIMEOUT seconds, up to COUNT of them, each with the
# time it was read: ([pid, time], ...). Dies on a shortfall.
sub fifo_read {
    my ($count, $timeout) = @_;
    my $end = now() + $timeout;
    my @got;
    while (@got < $count) {
        while (@got < $count && $fifo_buf =~ s/^(\d+)\n//) { push @got, [$1, now()] }
        last if @got >= $count;
        my $left = $end - now();
        die sprintf("only %d of %d workers ready within %ds\n", scalar @got, $count, $timeout) if $left <= 0;
        my $rin = '';
        vec($rin, fileno($fifo), 1) = 1;
        next unless select(my $rout = $rin, undef, undef, $left) > 0;
        my $n = sysread($fifo, my $chunk, 65536);
        $fifo_buf .= $chunk if $n;
    }
    return @got;
}

# Lines read until now: how many.
sub fifo_drain {
    my $n = 0;
    while (sysread($fifo, my $chunk, 65536)) { $fifo_buf .= $chunk }
    $n++ while $fifo_buf =~ s/^\d+\n//;
    return $n;
}

# Counts lines for SECONDS seconds.
sub fifo_count {
    my ($seconds) = @_;
    my ($end, $n) = (now() + $seconds, fifo_drain());
    while ((my $left = $end - now()) > 0) {
        my $rin = '';
        vec($rin, fileno($fifo), 1) = 1;
        select(my $rout = $rin, undef, undef, $left < 0.05 ? $left : 0.05);
        $n += fifo_drain();
    }
    return $n;
}

# --- /proc --------------------------------------------------------------

sub slurp { open my $fh, '<', $_[0] or return ''; local $/; return scalar <$fh> }

# RSS and PSS in KiB, CPU in clock ticks, context switches and wakeups
# (times scheduled in, /proc/PID/task/*/schedstat) summed over threads.
sub proc_sample {
    my ($pid) = @_;
    my $roll = slurp("/proc/$pid/smaps_rollup");
    my ($rss) = $roll =~ /^Rss:\s+(\d+)/m;
    my ($pss) = $roll =~ /^Pss:\s+(\d+)/m;
    my $stat = slurp("/proc/$pid/stat") =~ s/.*\) //sr;
    my @f = split ' ', $stat;
    my ($ctx, $wake) = (0, 0);
    for my $t (glob "/proc/$pid/task/*") {
        my $st = slurp("$t/status");
        $ctx += $1 while $st =~ /ctxt_switches:\s+(\d+)/g;
        my @s = split ' ', slurp("$t/schedstat");
        $wake += $s[2] // 0;
    }
    return { rss => ($rss // 0) + 0, pss => ($pss // 0) + 0, cpu => $f[11] + $f[12], ctx => $ctx, wake => $wake };
}

# --- corrald ------------------------------------------------------------

my $ncorrald = 0;

# A corrald on CONFIG with its own cgroup base and control socket.
sub corrald_start {
    my ($config) = @_;
    my $k = ++$ncorrald;
    my $c = { k => $k, cg => "/corral-bench-$$-$k", sock => "$dir/ctl-$k.sock",
              conf => "$dir/corral-$k.lua", log => "$dir/corrald-$k.log" };
    write_config($c->{conf}, $config);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $c->{log} or die;
        open STDERR, '>&', \*STDOUT or die;
        exec $opt{corrald}, '-c', $c->{conf}, '-g', $c->{cg}, '-s', $c->{sock} or die "exec: $!";
    }
    $c->{pid} = $pid;
    push @corralds, $c;
    my $end = now() + 30;
    until (ctl($c, 'ping')->{code} == 0) {
        die "corrald $k did not answer within 30s:\n" . slurp($c->{log}) if now() > $end || waitpid($pid, WNOHANG);
        sleep 0.05;
    }
    return $c;
}

# corralctl ARGS on corrald C: { code, out, ms }.
sub ctl {
    my ($c, @args) = @_;
    my $t0 = now();
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT or die;
        exec $opt{corralctl}, '-s', $c->{sock}, @args or die "exec corralctl: $!";
    }
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    return { code => $? >> 8, out => $out, ms => (now() - $t0) * 1000 };
}

sub ctl_ok {
    my ($c, @args) = @_;
    my $r = ctl($c, @args);
    die "corralctl @args failed ($r->{code}): $r->{out}\n" . tail($c) if $r->{code};
    return $r;
}

sub tail { my @l = split /\n/, slurp($_[0]{log}); return join("\n", @l[ ($#l > 20 ? $#l - 20 : 0) .. $#l ]) . "\n" }

sub cg_dir { my ($c, $sub) = @_; return cgroup_mount() . $c->{cg} . (defined $sub ? "/$sub" : '') }

# Every pid in the cgroups below DIR.
sub cg_pids {
    my ($d) = @_;
    my @pids;
    for my $p (split /\n/, `find $d -name cgroup.procs 2>/dev/null`) {
        push @pids, grep { /^\d+$/ } split /\n/, slurp($p);
    }
    return @pids;
}

my $mount;
sub cgroup_mount {
    return $mount if $mount;
    for (split /\n/, slurp('/proc/self/mounts')) {
        my (undef, $dir, $type) = split;
        return $mount = $dir if $type eq 'cgroup2';
    }
    die "no cgroup2 mount\n";
}

# Stops corrald C; removes what is left of its cgroup base (empty dirs).
sub corrald_stop {
    my ($c) = @_;
    kill 'TERM', $c->{pid};
    my $end = now() + 60;
    sleep 0.02 until waitpid($c->{pid}, WNOHANG) || now() > $end;
    my $status = $?;
    if (kill 0, $c->{pid}) { kill 'KILL', $c->{pid}; waitpid $c->{pid}, 0; $status = $? }
    @corralds = grep { $_ != $c } @corralds;
    my $bad = $status ? "corrald $c->{k} exited with status $status" : '';
    $bad ||= 'a sanitizer report in corrald\'s log' if slurp($c->{log}) =~ /ERROR: AddressSanitizer|runtime error:/;
    my $base = cg_dir($c);
    system("find $base -depth -type d -exec rmdir {} + 2>/dev/null") if -d $base;
    fifo_drain();
    die "$bad:\n" . tail($c) if $bad && !$c->{ending};
}

# --- bare.c -------------------------------------------------------------

my $nbare = 0;
sub bare_cg { return "/corral-bench-$$-bare" . ++$nbare }

# One `bare spawn N`: milliseconds until N ready.
sub bare_spawn {
    my ($n) = @_;
    local $ENV{BENCH_FIFO} = $FIFO;
    my $out = `$opt{bare} -g ${\ bare_cg()} spawn $n $READY`;
    die "bare spawn $n failed: $out\n" if $? || $out !~ /^([\d.]+)$/;
    fifo_drain();   # bare kills its children once ready: some never write
    return $1 + 0;
}

# `bare serve N ARGS` in the background: { pid, up (ms) }.
sub bare_serve {
    my ($n, @args) = @_;
    my $b = {};
    local $ENV{BENCH_FIFO} = $FIFO;
    $b->{pid} = open($b->{out}, '-|', $opt{bare}, '-g', bare_cg(), 'serve', $n, $READY, @args)
        // die "bare: $!";
    push @bares, $b;
    my $line = readline($b->{out}) // die "bare serve $n: no output\n";
    $line =~ /^up ([\d.]+)/ or die "bare serve $n: $line";
    $b->{up} = $1;
    return $b;
}

sub bare_stop {
    my ($b) = @_;
    kill 'TERM', $b->{pid};
    close $b->{out};
    @bares = grep { $_ != $b } @bares;
    fifo_drain();
}

# On an error: each corrald stopped (killed if it must be, then whatever
# is left in its cgroups), each bare told to clean up after itself.
$SIG{INT} = $SIG{TERM} = sub { die "bench: interrupted\n" };
END {
    my $rc = $?;
    kill 'TERM', $_->{pid} for @bares;
    for my $c (@{ [@corralds] }) {
        $c->{ending} = 1;
        corrald_stop($c);
        my @left = cg_pids(cg_dir($c));
        next unless @left;
        kill 'KILL', @left;
        my $end = now() + 10;
        sleep 0.05 while cg_pids(cg_dir($c)) && now() < $end;
        system("find ${\ cg_dir($c)} -depth -type d -exec rmdir {} + 2>/dev/null");
    }
    waitpid $_->{pid}, 0 for @bares;
    $? = $rc;
}

# --- configs ------------------------------------------------------------

my $NODELAY = 'backoff = { initial = 0 }, crash_limit = { failures = 0 },';

sub exec_pool {
    my ($name, $workers, $extra, @args) = @_;
    my $cmd = join ', ', map { qq{"$_"} } $READY, @args;
    return qq{pool "$name" {
  command = { $cmd }, workers = $workers, ready = "notify",
  env = { BENCH_FIFO = "$FIFO" }, $extra
}
};
}

sub lua_pool {
    my ($name, $workers, $extra) = @_;
    return qq{pool "$name" {
  workers = $workers, ready = "lua", $extra
  start = function(worker)
    corral.ready()
    local f = io.open("$FIFO", "w")
    if f then f:write(corral.pid() .. "\\n"); f:close() end
    while not corral.sleep(3600) do end
  end,
}
};
}

# --- figures ------------------------------------------------------------

# A figure: ID, NAME, UNIT, corral, baseline, TARGET text, PASS (1, 0, or
# undef for an informational figure), EXTRA (hash of detail for the JSON).
sub row {
    my (%r) = @_;
    $r{ratio} = defined $r{baseline} && $r{baseline} > 0 && defined $r{corral} ? $r{corral} / $r{baseline} : undef;
    $r{pass} = !$r{check} ? undef : $r{check}->(\%r) ? JSON::PP::true : JSON::PP::false;
    delete $r{check};
    push @rows, \%r;
    printf "%-28s %10s %10s %7s  %-22s %s\n", $r{id}, num($r{corral}), num($r{baseline}),
        defined $r{ratio} ? sprintf('%.2f', $r{ratio}) : '-', $r{target} // 'info', verdict(\%r);
}

sub num { my ($v) = @_; return '-' unless defined $v; return abs($v) >= 100 || $v == int($v) ? sprintf('%.0f', $v) : sprintf('%.3g', $v) }
sub verdict { my ($r) = @_; return !defined $r->{pass} ? 'info' : $r->{pass} ? 'pass' : 'FAIL' }

my (%spawn_bare, %growth);

# Figures 1 (exec'd), 3, 4 and 7: one corrald, its "exec" pool taken from
# 1 to N+1 workers and back by `corralctl scale`, N ascending; at each N
# the status latency and corrald's memory; at idle_n the idle window.
sub fig_scale {
    my $c = corrald_start(exec_pool('exec', 1, '') . lua_pool('lua', 1, ''));
    fifo_read(2, 30);
    my (%mem, %bare_mem);
    for my $n (@{ $P{growth_n} }) {
        my (@b, @co);
        for my $r (1 .. $P{rounds}{$n}) {
            push @b, bare_spawn($n);
            push @co, ctl_ok($c, '--timeout', '10m', 'scale', 'exec', $n + 1)->{ms};
            fifo_read($n, 60);
            ctl_ok($c, '--timeout', '10m', 'scale', 'exec', 1) if $r < $P{rounds}{$n};
            fifo_drain();
        }
        $spawn_bare{$n} = median(@b);
        my %g = (n => $n, corral_ms => median(@co), bare_ms => median(@b), corral_rounds => \@co, bare_rounds => \@b);
        note sprintf("spawn %d exec'd: corral %.1f ms, bare %.1f ms", $n, $g{corral_ms}, $g{bare_ms});
        # the pool is at N+1: corrald's RSS before any status call
        sleep 0.2;
        my $pre = proc_sample($c->{pid});
        $g{rss_before_status_kib} = $pre->{rss};
        # status and ping, interleaved
        my $calls = $n <= 1000 ? $P{status_calls} : $P{growth_calls};
        my (@st, @ping);
        for (1 .. $calls) {
            push @st, ctl_ok($c, '--json', 'status')->{ms};
            push @ping, ctl_ok($c, 'ping')->{ms};
        }
        @g{qw(status_p50 status_p99 ping_p50 ping_p99)} = (median(@st), pct(99, @st), median(@ping), pct(99, @ping));
        $growth{$n} = \%g;
        sleep 0.5;
        $mem{$n} = proc_sample($c->{pid});
        if ($n == $P{idle_n}) {
            fig_control(\%g) if $only{4};
            fig_idle($c, $n, \%mem) if $only{3};
        }
        ctl_ok($c, '--timeout', '10m', 'scale', 'exec', 1);
        fifo_drain();
    }
    if ($only{1}) {
        for my $n (@{ $P{spawn_n} }) {
            my $g = $growth{$n};
            row(id => "spawn.notify.$n", figure => 1, unit => 'ms', corral => $g->{corral_ms}, baseline => $g->{bare_ms},
                target => 'ratio <= 1.5', check => sub { $_[0]{ratio} <= 1.5 },
                extra => { corral_rounds => $g->{corral_rounds}, bare_rounds => $g->{bare_rounds} });
        }
        fig_spawn_lua($c);
    }
    fig_growth() if $only{7};
    corrald_stop($c);
}

# Figure 1 (Lua): the "lua" pool from 1 to N+1; baseline bare's at N.
sub fig_spawn_lua {
    my ($c) = @_;
    for my $n (@{ $P{spawn_n} }) {
        my @co;
        for my $r (1 .. $P{rounds}{$n}) {
            push @co, ctl_ok($c, '--timeout', '10m', 'scale', 'lua', $n + 1)->{ms};
            fifo_read($n, 60);
            ctl_ok($c, '--timeout', '10m', 'scale', 'lua', 1);
            fifo_drain();
        }
        row(id => "spawn.lua.$n", figure => 1, unit => 'ms', corral => median(@co), baseline => $spawn_bare{$n},
            target => 'ratio <= 1.5', check => sub { $_[0]{ratio} <= 1.5 }, extra => { corral_rounds => \@co });
    }
}

# Figure 4: status --json against ping, at idle_n workers.
sub fig_control {
    my ($g) = @_;
    my $n = $g->{n};
    row(id => 'control.status.p50', figure => 4, unit => 'ms', corral => $g->{status_p50}, baseline => $g->{ping_p50},
        target => undef, extra => { workers => $n, calls => $P{status_calls} });
    row(id => 'control.status.p99', figure => 4, unit => 'ms', corral => $g->{status_p99}, baseline => $g->{ping_p99},
        target => 'corral < 20 ms', check => sub { $_[0]{corral} < 20 }, extra => { workers => $n });
}

# Figure 3: corrald idle with N workers beside bare serving N.
sub fig_idle {
    my ($c, $n, $mem) = @_;
    my $small = $P{growth_n}[0];
    my $bs = bare_serve($small);
    fifo_read($small, 30);
    sleep 0.5;
    my $bare_small = proc_sample($bs->{pid});
    bare_stop($bs);
    my $b = bare_serve($n);
    fifo_read($n, 60);
    sleep 1;
    my ($c0, $b0) = (proc_sample($c->{pid}), proc_sample($b->{pid}));
    sleep $P{idle_s};
    my ($c1, $b1) = (proc_sample($c->{pid}), proc_sample($b->{pid}));
    bare_stop($b);
    my $mib = sub { $_[0] / 1024 };
    my $ex = { workers => $n, seconds => $P{idle_s} };
    my $pre = { %$ex, rss_before_status_mib => $growth{$n}{rss_before_status_kib} / 1024 };
    row(id => 'idle.rss', figure => 3, unit => 'MiB', corral => $mib->($c1->{rss}), baseline => $mib->($b1->{rss}),
        target => 'corral < 8 MiB', check => sub { $_[0]{corral} < 8 }, extra => $pre);
    row(id => 'idle.pss', figure => 3, unit => 'MiB', corral => $mib->($c1->{pss}), baseline => $mib->($b1->{pss}),
        target => undef, extra => $ex);
    row(id => 'idle.rss_per_worker', figure => 3, unit => 'KiB', corral => ($mem->{$n}{rss} - $mem->{$small}{rss}) / ($n - $small),
        baseline => ($b0->{rss} - $bare_small->{rss}) / ($n - $small), target => 'corral < 2 KiB',
        check => sub { $_[0]{corral} < 2 }, extra => { from => $small, to => $n, corral_rss_kib => { map { $_ => $mem->{$_}{rss} } keys %$mem } });
    row(id => 'idle.cpu', figure => 3, unit => 'ticks', corral => $c1->{cpu} - $c0->{cpu}, baseline => $b1->{cpu} - $b0->{cpu},
        target => 'corral 0', check => sub { $_[0]{corral} == 0 }, extra => $ex);
    row(id => 'idle.ctxsw', figure => 3, unit => 'count', corral => $c1->{ctx} - $c0->{ctx}, baseline => $b1->{ctx} - $b0->{ctx},
        target => undef, extra => $ex);
    row(id => 'idle.wakeups', figure => 3, unit => 'count', corral => $c1->{wake} - $c0->{wake}, baseline => $b1->{wake} - $b0->{wake},
        target => 'corral 0', check => sub { $_[0]{corral} == 0 }, extra => $ex);
}

# Figure 7: per-worker spawn and status cost at the largest N against
# 100 (QUICK, whose largest is 100: against 10).
sub fig_growth {
    my $hi = $P{growth_n}[-1];
    my $lo = $hi > 100 ? 100 : $P{growth_n}[0];
    my %per = map {
        my $g = $growth{$_};
        ($_ => { spawn => $g->{corral_ms} / $_, bare => $g->{bare_ms} / $_,
                 status => ($g->{status_p50} - $g->{ping_p50}) / $_, ping => $g->{ping_p50} })
    } keys %growth;
    my $table = { map { $_ => { %{ $per{$_} }, status_p50 => $growth{$_}{status_p50} } } keys %per };
    row(id => 'growth.spawn', figure => 7, unit => 'x', corral => $per{$hi}{spawn} / $per{$lo}{spawn},
        baseline => $per{$hi}{bare} / $per{$lo}{bare}, target => 'corral <= 1.5',
        check => sub { $_[0]{corral} <= 1.5 }, extra => { from => $lo, to => $hi, per_n => $table });
    row(id => 'growth.status', figure => 7, unit => 'x', corral => $per{$hi}{status} / ($per{$lo}{status} || 1e-9),
        baseline => $per{$hi}{ping} / $per{$lo}{ping}, target => 'corral <= 1.5',
        check => sub { $_[0]{corral} <= 1.5 }, extra => { from => $lo, to => $hi });
    for my $n (sort { $a <=> $b } keys %per) {
        note sprintf("growth N=%d: spawn %.3f ms/worker (bare %.3f), status p50 %.1f ms, net %.4f ms/worker, ping %.1f ms",
            $n, $per{$n}{spawn}, $per{$n}{bare}, $growth{$n}{status_p50}, $per{$n}{status}, $per{$n}{ping});
    }
}

# Kill -9 of the oldest ready worker to its replacement's pid on the FIFO,
# TRIALS times over QUEUE ([pid, ready time], ...); a worker is killed
# only once ready for MIN_AGE seconds. Milliseconds.
sub respawn_trials {
    my ($queue, $min_age) = @_;
    my @ms;
    for (1 .. $P{respawn_trials}) {
        fifo_drain() && die "a worker came back unasked\n";
        my ($pid, $t) = @{ shift @$queue };
        my $wait = $t + $min_age - now();
        sleep $wait if $wait > 0;
        my $t0 = now();
        kill 'KILL', $pid or die "kill $pid: $!";
        my ($new) = fifo_read(1, 10);
        push @ms, ($new->[1] - $t0) * 1000;
        push @$queue, $new;
        sleep $GAP;
    }
    return @ms;
}

# Figure 2: exec'd and Lua workers, default and no-delay settings.
sub fig_respawn {
    my $w = $P{respawn_workers};
    my $b = bare_serve($w);
    my @bare = respawn_trials([fifo_read($w, 30)], 0);
    bare_stop($b);
    my $c = corrald_start(exec_pool('exec', 0, '') . exec_pool('exec_nd', 0, $NODELAY)
        . lua_pool('lua', 0, '') . lua_pool('lua_nd', 0, $NODELAY));
    for my $kind (qw(notify lua)) {
        for my $delay (qw(nodelay default)) {
            my $pool = ($kind eq 'notify' ? 'exec' : 'lua') . ($delay eq 'nodelay' ? '_nd' : '');
            ctl_ok($c, 'scale', $pool, $w);
            my @ms = respawn_trials([fifo_read($w, 30)], $delay eq 'default' ? $START_WINDOW : 0);
            ctl_ok($c, 'scale', $pool, 0);
            fifo_drain();
            my $nd = $delay eq 'nodelay';
            my $ex = { trials => scalar @ms, workers => $w };
            row(id => "respawn.$kind.$delay.p50", figure => 2, unit => 'ms', corral => median(@ms), baseline => median(@bare),
                target => $nd ? 'ratio <= 2' : undef, ($nd ? (check => sub { $_[0]{ratio} <= 2 }) : ()), extra => $ex);
            row(id => "respawn.$kind.$delay.p99", figure => 2, unit => 'ms', corral => pct(99, @ms), baseline => pct(99, @bare),
                target => $nd ? 'corral < 2 ms' : undef, ($nd ? (check => sub { $_[0]{corral} < 2 }) : ()), extra => $ex);
        }
    }
    corrald_stop($c);
}

# Figure 5: MIB MiB built in prefork and read by W workers, against one
# copy (the same data built in setup by one worker): pool PSS / one copy.
sub fig_cow {
    my ($mib, $w) = ($P{cow_mib}, $P{cow_workers});
    my $n = $mib * 1024 * 1024 / 8;
    my $build = "local t = {}; for i = 1, $n do t[i] = i end; return t";
    my $pool = sub {
        my ($where, $workers) = @_;
        my $hooks = $where eq 'prefork'
            ? "prefork = function(pool) return { data = (function() $build end)() } end,
  setup = function(worker) worker.data = worker.pool.state.data end,"
            : "setup = function(worker) worker.data = (function() $build end)() end,";
        return qq{pool "cow" {
  workers = $workers, ready = "lua", prefork_timeout = "300s",
  $hooks
  start = function(worker)
    local t, sum = worker.data, 0
    for i = 1, #t, 64 do sum = sum + t[i] end
    corral.ready()
    while not corral.sleep(3600) do end
  end,
}
};
    };
    my %pss;
    for my $v (['setup', 1], ['prefork', $w]) {
        my $c = corrald_start($pool->(@$v));
        my $end = now() + 600;
        until (ctl($c, '-q', 'is-ready', 'cow')->{code} == 0) {
            die "cow pool not ready in time\n" . tail($c) if now() > $end;
            sleep 0.2;
        }
        sleep 0.5;
        my @pids = cg_pids(cg_dir($c, 'cow'));
        die "cow: no processes in " . cg_dir($c, 'cow') . "\n" unless @pids > $v->[1];
        $pss{$v->[0]} += proc_sample($_)->{pss} / 1024 for @pids;
        corrald_stop($c);
    }
    row(id => 'cow.copies', figure => 5, unit => 'MiB', corral => $pss{prefork}, baseline => $pss{setup},
        target => 'ratio <= 1.3', check => sub { $_[0]{ratio} <= 1.3 },
        extra => { mib => $mib, workers => $w, prefork_pss_mib => $pss{prefork}, one_copy_pss_mib => $pss{setup} });
}

# Figure 6: workers that exit at once, refilled without delay.
sub fig_churn {
    my ($w, $s) = ($P{churn_workers}, $P{churn_s});
    my $hz = POSIX::sysconf(POSIX::_SC_CLK_TCK());
    # restarts per second, and the CPU share of each of PIDS (percent)
    my $measure = sub {
        my (@pids) = @_;
        fifo_count(1);
        my ($t0, @a) = (now(), map { proc_sample($_)->{cpu} } @pids);
        my $n = fifo_count($s);
        my ($t1, @b) = (now(), map { proc_sample($_)->{cpu} } @pids);
        return ($n / ($t1 - $t0), map { ($b[$_] - $a[$_]) / $hz / ($t1 - $t0) * 100 } 0 .. $#pids);
    };
    my $b = bare_serve_churn($w);
    my ($brate, $bcpu) = $measure->($b->{pid});
    bare_stop($b);
    # corral's side: corrald and the pool's prototype, which forks workers
    my $c = corrald_start(exec_pool('churn', $w, "restart = \"always\", $NODELAY", 'exit'));
    fifo_count(1);
    my ($proto) = slurp($c->{log}) =~ /prototype started pool=churn pid=(\d+)/ or die "churn: no prototype in the log\n";
    my ($crate, $cd, $cp) = $measure->($c->{pid}, $proto);
    my $ccpu = $cd + $cp;
    corrald_stop($c);
    my $ex = { workers => $w, seconds => $s, corrald_cpu_pct => $cd, prototype_cpu_pct => $cp };
    row(id => 'churn.rate', figure => 6, unit => 'per s', corral => $crate, baseline => $brate, target => undef, extra => $ex);
    row(id => 'churn.cpu', figure => 6, unit => '% CPU', corral => $ccpu, baseline => $bcpu, target => undef, extra => $ex);
}

# bare serving children that exit at once: it never reports "up".
sub bare_serve_churn {
    my ($n) = @_;
    my $b = {};
    local $ENV{BENCH_FIFO} = $FIFO;
    $b->{pid} = open($b->{out}, '-|', $opt{bare}, '-g', bare_cg(), 'serve', $n, $READY, 'exit') // die "bare: $!";
    push @bares, $b;
    return $b;
}

# Figure 8: isolation is paid once, in the prototype. Two pools in one
# corrald, alike but for isolation = every namespace; each taken from 1
# to N+1 workers and back, in turn.
sub fig_isolation {
    my ($n, $rounds) = @P{qw(iso_n iso_rounds)};
    # both as nobody (a user namespace may not map root), who reaches the
    # FIFO and the program in $pub; bound into the isolated pool's /tmp
    my $iso = qq{user = "nobody", isolation = { namespaces = { "user", "pid", "mount", "net", "uts", "ipc", "cgroup" },
    mounts = { { "$pub", "$pub", "rw" } } },};
    my $c = corrald_start(exec_pool('plain', 1, 'user = "nobody",') . exec_pool('isolated', 1, $iso));
    fifo_read(2, 30);
    my (%ms);
    for my $r (1 .. $rounds) {
        for my $pool (qw(plain isolated)) {
            push @{ $ms{$pool} }, ctl_ok($c, '--timeout', '10m', 'scale', $pool, $n + 1)->{ms};
            fifo_read($n, 60);
            ctl_ok($c, '--timeout', '10m', 'scale', $pool, 1);
            fifo_drain();
        }
    }
    corrald_stop($c);
    row(id => "isolation.spawn.$n", figure => 8, unit => 'ms', corral => median(@{ $ms{isolated} }),
        baseline => median(@{ $ms{plain} }), target => 'ratio <= 1.2', check => sub { $_[0]{ratio} <= 1.2 },
        extra => { isolated_rounds => $ms{isolated}, plain_rounds => $ms{plain}, workers => $n });
}

# --- main ---------------------------------------------------------------

my $t_start = now();
my $uname = `uname -r`; chomp $uname;
my $cpus = () = slurp('/proc/cpuinfo') =~ /^processor\s/mg;
my $date = POSIX::strftime('%Y-%m-%d %H:%M UTC', gmtime);
print "corral bench ", ($Q ? 'QUICK' : 'full'), ": $date, Linux $uname, $cpus CPUs\n";
printf "%-28s %10s %10s %7s  %-22s %s\n", qw(figure corral baseline ratio target result);

fig_scale() if $only{1} || $only{3} || $only{4} || $only{7};
fig_respawn() if $only{2};
fig_cow() if $only{5};
fig_churn() if $only{6};
fig_isolation() if $only{8};

my $elapsed = now() - $t_start;
@rows = sort { $a->{figure} <=> $b->{figure} } @rows;     # stable: in figure order
my $report = { date => $date, kernel => $uname, cpus => $cpus, quick => $Q ? JSON::PP::true : JSON::PP::false,
               seconds => $elapsed, figures => \@rows };
if ($opt{json}) {
    open my $fh, '>', $opt{json} or die "$opt{json}: $!";
    print $fh JSON::PP->new->canonical->pretty->encode($report);
    close $fh or die "$opt{json}: $!";
}

print "\n| figure | unit | corral | baseline | ratio | target | result |\n| --- | --- | --- | --- | --- | --- | --- |\n";
for my $r (@rows) {
    printf "| %s | %s | %s | %s | %s | %s | %s |\n", $r->{id}, $r->{unit}, num($r->{corral}), num($r->{baseline}),
        defined $r->{ratio} ? sprintf('%.2f', $r->{ratio}) : '-', $r->{target} // 'info', verdict($r);
}
printf "\n%s run: %s, Linux %s, %d CPUs, %.0f s; JSON in %s\n", ($Q ? 'QUICK' : 'full'), $date, $uname, $cpus,
    $elapsed, $opt{json} // '-';
