#!/usr/bin/perl
# The chaos test: one corrald (its own cgroup base and control socket, as
# the tests in t/ have), several pools of different kinds, and for
# DURATION seconds, at random: SIGKILL and SIGSTOP/SIGCONT of workers,
# prototypes and the processes workers leave behind, reloads with good
# and bad configs, scale, restart, stop/start, freeze/thaw, signals and
# bursts of control clients, while a plugin acts on events. Invariants
# are checked every CHECK_EVERY seconds throughout and once more at the
# end, when every pool must be back at its target.
#
#   perl t/chaos/chaos.pl [--duration SECONDS] [--seed N] [--quiet] [--inject FAULT] [--log FILE]
#
# --log FILE keeps a copy of corrald's log (with a violation, it is kept
# anyway, in $TMPDIR or /tmp).
# --inject makes a fault of the test's own, 2 s into the chaos, to show
# that the checks see it: "cgroup" (an empty cgroup nobody claims),
# "placement" (a worker moved into its pool's prototype cgroup), "ping"
# (corrald stopped for 1.2 s), "stuck" (a notify pool whose worker never
# says READY=1, without ready_timeout).
#
# corrald and corralctl: $CORRALD and $CORRALCTL, as for the tests.
# Prints the seed first (a run is repeated with --seed, as far as timing
# allows), each violation as it is found ("VIOLATION +12.3s [family]
# ..."), one line per invariant family ("family NAME: N violations") and
# a summary line of counts ("chaos summary: ..."). Exit status 0 when
# there was no violation, 1 otherwise, 2 when the run could not be set up.
#
# t/071-chaos.t runs it for 30 seconds; `make chaos DURATION=300` for
# longer.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use CorralTest;
use CorralProc qw(slurp all_pids proc_stat proc_environ proc_cmdline lua_worker_title
                  cgroup_of cgroup_procs cgroup_dirs cg_read);
use Getopt::Long qw(GetOptions);
use IO::Select;
use IO::Socket::UNIX;
use JSON::PP ();
use POSIX qw(:sys_wait_h _exit strftime);
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time sleep);

my $duration = 300;
my $seed = int(rand(2**31));
my $quiet = 0;
my $inject = '';
my $keep_log;
GetOptions('duration=f' => \$duration, 'seed=i' => \$seed, 'quiet' => \$quiet, 'inject=s' => \$inject,
           'log=s' => \$keep_log)
    or die "usage: $0 [--duration SECONDS] [--seed N] [--quiet] [--inject FAULT] [--log FILE]\n";
srand($seed);
$| = 1;
print "chaos: seed $seed, duration ${duration}s, corrald $CorralTest::CORRALD\n";

# --- bounds ---------------------------------------------------------------
#
# Under the sanitizers everything is slower: the time bounds are
# multiplied by $SLOW, the ping bounds too (the 50 ms the issue asks of
# corrald hold for the build that is shipped; the sanitized one runs the
# same code two to three times slower, a reload's Lua included).

my $ASAN = (`nm -D $CorralTest::CORRALD 2>/dev/null` // '') =~ /__asan_init/ ? 1 : 0;
my $SLOW = $ASAN ? 2 : 1;
my $CHECK_EVERY = 0.3;       # seconds between two rounds of checks
my $ZOMBIE_MAX = 2 * $SLOW;  # a zombie child of corrald or a prototype, while its parent runs
my $PLACE_MAX = 3 * $SLOW;   # a process in the wrong cgroup (a new worker takes its title a moment after the fork)
my $CGROUP_MAX = 5 * $SLOW;  # a cgroup no pool, worker or prototype of the status claims
# A pool may be short of its target with no visible reason and no change
# for this long. What can hold one up that long without a change in its
# workers: a worker SIGSTOPped while starting (at most 4 s here), a worker
# that does not stop on TERM (stop_timeout 2 s), a frozen prototype (3 s
# at most, and the pool says "frozen"), a notify worker that takes its
# time (1 s, 2 s at most: ready_timeout). 15 s leaves room for a slow,
# shared machine.
my $STUCK_MAX = 15 * $SLOW;
my $PROGRESS = 3;            # a change within this many seconds is progress
my $WAIT_SLACK = 2 * $SLOW;  # a backoff's end may be this late
my $RECOVER_MAX = 30 * $SLOW;    # back at target after the chaos
my $PING_P99 = 0.050 * $SLOW;    # (both less the waits for a CPU: see the pinger)
my $PING_MAX = 1.0 * $SLOW;
my $FD_SLACK = 2;
my $RSS_SLACK = 2 * 1024;    # KiB

# --- pools ----------------------------------------------------------------

my %WORKERS = (sleepers => 3, lua => 2, notify => 2, daemon => 1, forker => 2, crashy => 1, extra => 1);
# (crashy: its workers exit 1 at once; it is expected to fail, and to be
# given another chance by reloads, start and the plugin)
my $CRASHY = 'crashy';

my $t = CorralTest->new;
my $TMP = $t->dir;
my $BASE = $t->cgroup_rel;
my $FLAG = "$TMP/chaos.on";    # while it exists, the plugin acts

$t->write_file('notify.pl', <<'EOF');
# A ready = "notify" worker: READY=1 after a moment, then sleep.
use Socket;
select undef, undef, undef, 0.05 + rand 1;
(my $addr = $ENV{NOTIFY_SOCKET}) =~ s/^\@/\0/;
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
send($s, "READY=1\nSTATUS=serving", 0, pack_sockaddr_un($addr)) or die "send: $!";
exec '/bin/sleep', '1000';
EOF
$t->write_file('daemon.pl', <<'EOF');
# A forking daemon: double-forks into a session of its own, names the
# daemon with MAINPID= (and READY=1), and exits.
use Socket;
use POSIX qw(setsid _exit);
pipe my $r, my $w or die "pipe: $!";
my $pid = fork // die "fork: $!";
if (!$pid) {
    close $r;
    setsid();
    my $g = fork // _exit(1);
    _exit(0) if $g;
    print $w "$$\n";
    close $w;
    exec '/bin/sleep', '1000';
    _exit(127);
}
close $w;
waitpid $pid, 0;
chomp(my $main = <$r> // '');
die "no daemon\n" unless $main;
select undef, undef, undef, 0.05;
(my $addr = $ENV{NOTIFY_SOCKET}) =~ s/^\@/\0/;
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
send($s, "MAINPID=$main\nREADY=1", 0, pack_sockaddr_un($addr)) or die "send: $!";
exit 0;
EOF
$t->write_file('forker.pl', <<'EOF');
# A worker that forks a child and exits after a while, leaving the child
# in its cgroup: corrald must kill it.
my $c = fork // die "fork: $!";
exec '/bin/sleep', '1000' if !$c;
select undef, undef, undef, 1.5 + rand 2;
exit 0;
EOF
$t->write_file('plugins/chaosplug.lua', <<'EOF');
-- plugin "chaosplug" { flag = PATH }: while PATH exists, acts on events:
-- restarts and scales pools and reloads on worker exits, and starts the
-- crashy pool again 2 s after it failed.
local opts = ...
for k in pairs(opts) do
  if k ~= "flag" then error(('plugin "chaosplug": unknown option %q'):format(tostring(k)), 0) end
end
local exits = 0
local function on()
  local f = io.open(opts.flag)
  if f then f:close() end
  return f ~= nil
end
local function act(what, ok, err)
  corral.info(("chaosplug: action %s -> %s %s"):format(what, tostring(ok), tostring(err)))
end
corral.on("worker_exited", function(ev)
  exits = exits + 1
  if not on() then return end
  if exits % 9 == 0 then
    act("restart lua", corral.restart("lua", nil, exits % 2 == 0))
  elseif exits % 13 == 0 then
    act("scale sleepers", corral.scale("sleepers", 2 + exits % 3))
  elseif exits % 31 == 0 then
    act("reload", corral.reload())
  end
end)
corral.on("pool_failed", function(ev)
  corral.info(("chaosplug: event pool_failed pool=%s"):format(ev.pool))
  if ev.pool == "crashy" and on() then
    corral.after(2, function()
      if on() then act("start crashy", corral.start_pool("crashy")) end
    end)
  end
end)
EOF

# The config: %$gen (pool => a number in its env: a new number is a
# changed definition), %$workers, $extra (the pool "extra" is there), and
# $bad, a kind of mistake (undef: none).
sub config_text {
    my (%c) = @_;
    my %gen = %{ $c{gen} || {} };
    my %n = (%WORKERS, %{ $c{workers} || {} });
    my $bad = $c{bad} // '';
    my $common = sub {
        my ($p) = @_;
        return qq{stop_timeout = "2s", workers = $n{$p}, env_inherit = { "CORRAL_TEST_DIR" }, }
            . qq{env = { CHAOS_GEN = ${\($gen{$p} // 0)} }, }
            . qq{backoff = { initial = "100ms", max = "2s", reset = "3s" }, crash_limit = { failures = 30, interval = "10s" }};
    };
    my $text = <<"EOF";
plugin "chaosplug" { flag = "$FLAG"${\($bad eq 'plugin' ? ', bogus = 1' : '')} }
pool "sleepers" { command = "/bin/sleep 1000", ${\$common->('sleepers')} }
pool "lua" {
  ready = "lua", ${\$common->('lua')},
  prefork = function(pool) return { born = os.time() } end,
  start = function(worker)
    corral.ready()
    repeat until worker:sleep(0.2)
  end,
}
pool "notify" { command = { "/usr/bin/perl", "$TMP/notify.pl" }, ready = "notify", ready_timeout = "2s", ${\$common->('notify')} }
pool "daemon" { command = { "/usr/bin/perl", "$TMP/daemon.pl" }, ready = "notify", ready_timeout = "10s", ${\$common->('daemon')} }
pool "forker" { command = { "/usr/bin/perl", "$TMP/forker.pl" }, ${\$common->('forker')} }
pool "crashy" {
  command = { "/bin/sh", "-c", "exit 1" }, workers = $n{crashy}, env = { CHAOS_GEN = ${\($gen{crashy} // 0)} },
  backoff = { initial = "100ms", max = "1s" }, crash_limit = { failures = 4, interval = "10s" },
}
EOF
    $text .= qq{pool "silent" { command = "/bin/sleep 1000", ready = "notify" }\n} if $inject eq 'stuck';
    $text .= qq{pool "extra" { command = "/bin/sleep 1000", ${\$common->('extra')} }\n} if $c{extra};
    $text .= {
        syntax  => qq|pool "broken" {\n|,
        key     => qq{pool "broken" { command = "/bin/true", wrokers = 2 }\n},
        value   => qq{pool "broken" { command = "/bin/true", workers = -1 }\n},
        runtime => qq{error("chaos: a deliberate error")\n},
        twice   => qq{pool "sleepers" { command = "/bin/true" }\n},
        plugin  => '',
        ''      => '',
    }->{$bad};
    return $text;
}
my @BAD = qw(syntax key value runtime twice plugin);

# --- reporting ------------------------------------------------------------

my $T0 = time;
my (%count, @violations, %family, %reported);
my @FAMILIES = qw(zombie placement cgroup stuck recovery leak log ping control exit);
$family{$_} = 0 for @FAMILIES;

sub stamp { sprintf '+%.1fs %s', time - $T0, strftime('%H:%M:%S', localtime) . sprintf('.%03d', (time * 1000) % 1000) }

sub violation {
    my ($fam, $detail) = @_;
    die "unknown family $fam" unless exists $family{$fam};
    $family{$fam}++;
    my $line = "VIOLATION ${\stamp()} [$fam] $detail";
    push @violations, $line;
    print "$line\n";
}

sub say_ { print "chaos: ${\stamp()} @_\n" unless $quiet }

# --- the control socket ---------------------------------------------------

sub request {
    my ($req, $timeout) = @_;
    return $t->request($req, timeout => $timeout // 10);
}

# The pools of a status answer by name, or undef.
sub status {
    my $r = request({ command => 'status' }, 5);
    return undef unless $r && $r->{ok};
    return { map { $_->{name} => $_ } @{ $r->{pools} } };
}

# --- the pinger: a process of its own, ~10 Hz, a new connection each time --
#
# Each ping's latency, and its latency less the time corrald and the
# pinger spent waiting for a CPU meanwhile (run_delay of
# /proc/PID/schedstat): on a shared, busy machine that wait is the
# scheduler's, not corrald's. The bounds apply to the second; time that
# corrald spends working (a fork, a reload) counts in full.

my %children;    # pid => what
sub run_delay {
    my ($pid) = @_;
    my ($ns) = (slurp("/proc/$pid/schedstat") // '') =~ /^\d+ (\d+)/;
    return ($ns // 0) / 1e9;
}
sub start_pinger {
    my $file = "$TMP/pings";
    my $top = $t->pid;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP PIPE);
        open my $out, '>>', $file or _exit(1);
        $out->autoflush(1);
        my $sock = $t->socket_path;
        while (getppid() != 1) {
            my ($c0, $s0) = (run_delay($top), run_delay($$));
            my $t0 = time;
            my ($ok, $line) = (0, '');
            if (my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock)) {
                syswrite $s, qq{{"command":"ping"}\n};
                my $sel = IO::Select->new($s);
                while ($line !~ /\n/ && $sel->can_read(5)) {
                    sysread($s, $line, 4096, length $line) or last;
                }
                $ok = $line =~ /"pong":true/ ? 1 : 0;
            }
            my $t1 = time;
            my $waited = run_delay($top) - $c0 + run_delay($$) - $s0;
            my $net = $t1 - $t0 - $waited;
            printf $out "%.3f %.6f %.6f %d\n", $t0, $t1 - $t0, $net < 0 ? 0 : $net, $ok;
            sleep(0.1 - ($t1 - $t0)) if $t1 - $t0 < 0.1;
        }
        _exit(0);
    }
    $children{$pid} = 'pinger';
    return $pid;
}

my $ping_off = 0;
my @pings;    # [ time, seconds, seconds less the waits for a CPU, ok ]
sub read_pings {
    my $text = slurp("$TMP/pings") // return;
    my $new = substr $text, $ping_off;
    $new =~ s/[^\n]*\z//;
    $ping_off += length $new;
    for (split /\n/, $new) {
        my ($when, $lat, $net, $ok) = split ' ';
        push @pings, [ $when, $lat, $net, $ok ];
        violation('ping', sprintf('ping at +%.1fs took %.0f ms (%.0f ms less waits for a CPU)', $when - $T0, $lat * 1000, $net * 1000))
            if $net > $PING_MAX;
        violation('ping', sprintf('ping at +%.1fs got no pong', $when - $T0)) if !$ok && !$count{stopping};
    }
}

# --- a burst of control clients: a process that opens many connections --

my @BURST = (
    [ '{"command":"status"}',                          qr/^\{"ok":true,"code":"ok","pools":\[/ ],
    [ '{"command":"status","format":"text"}',          qr/^\{"ok":true,"code":"ok",.*"text":/ ],
    [ '{"command":"ping"}',                            qr/^\{"ok":true,"code":"ok","pong":true\}$/ ],
    [ '{"command":"version"}',                         qr/^\{"ok":true,"code":"ok","version":/ ],
    [ '{"command":"status","pool":"nosuch"}',          qr/^\{"ok":false,"code":"not-found"/ ],
    [ '{"command":"scale","pool":"sleepers"}',         qr/^\{"ok":false,"code":"bad-request"/ ],
    [ '{"command":',                                   qr/^\{"ok":false,"code":"bad-request"/ ],
    [ '{"command":"restart","pool":"sleepers","worker":999}', qr/^\{"ok":false,"code":"not-found"/ ],
    [ 'half',                                          undef ],    # a request never finished: closed early
);
sub burst {
    my $n = 10 + int rand 20;
    my $file = "$TMP/burst.$$." . ++$count{bursts};
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP PIPE);
        $SIG{PIPE} = 'IGNORE';
        srand($seed + $count{bursts});
        my (@conns, @bad, %ctl);
        # a few corralctl too
        for my $args ([ '--json', 'status' ], [ 'ping' ], [ 'status', 'sleepers' ]) {
            my $c = fork // next;
            if (!$c) {
                open STDOUT, '>', '/dev/null';
                { no warnings 'exec'; exec $CorralTest::CORRALCTL, '-s', $t->socket_path, @$args; }
                _exit(127);
            }
            $ctl{$c} = "corralctl @$args";
        }
        for (1 .. $n) {
            my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $t->socket_path);
            if (!$s) { push @bad, "connect: $!"; next }
            my ($req, $re) = @{ $BURST[ int rand @BURST ] };
            if ($req eq 'half') { syswrite $s, '{"command":"sta'; close $s; next }
            syswrite $s, "$req\n";
            push @conns, [ $s, $req, $re, '' ];
        }
        my $deadline = time + 10;
        for my $c (@conns) {
            my $sel = IO::Select->new($c->[0]);
            while ($c->[3] !~ /\n/ && time < $deadline && $sel->can_read($deadline - time)) {
                sysread($c->[0], $c->[3], 65536, length $c->[3]) or last;
            }
            chomp(my $answer = $c->[3]);
            push @bad, "$c->[1] -> '" . substr($answer, 0, 200) . "'" if $answer !~ $c->[2];
        }
        for my $c (keys %ctl) {
            waitpid $c, 0;
            push @bad, "$ctl{$c} exited with status " . ($? >> 8) . ($? & 127 ? " (signal " . ($? & 127) . ")" : '') if $?;
        }
        open my $out, '>', $file or _exit(1);
        print $out map { "$_\n" } @bad;
        close $out;
        _exit(0);
    }
    $children{$pid} = "burst $file";
    $count{clients} += $n;
}

# Reaps the children of ours that have exited (only those: corrald is
# CorralTest's to reap); with $wait, until no burst is left (20 s at most).
sub reap_children {
    my ($wait) = @_;
    my $deadline = time + 20;
    while (1) {
        for my $pid (sort keys %children) {
            next unless waitpid($pid, WNOHANG) == $pid;
            my $what = delete $children{$pid};
            next unless $what =~ /^burst (\S+)/;
            my $file = $1;
            for (split /\n/, slurp($file) // "no result file\n") {
                violation('control', "burst of control clients: $_");
            }
            unlink $file;
        }
        return if !$wait || !grep({ /^burst/ } values %children) || time > $deadline;
        sleep 0.05;
    }
}

# --- processes and cgroups --------------------------------------------------

# A look at every process: pid => { stat..., cg, cmd }, and the tree.
sub scan {
    my %p;
    for my $pid (all_pids()) {
        my $st = proc_stat($pid) or next;
        $st->{cg} = cgroup_of($pid) // next;
        $p{$pid} = $st;
    }
    return \%p;
}

sub in_base { my ($cg) = @_; return defined $cg && index($cg, "$BASE/") == 0 }

# Descendants of corrald (but corrald), from a scan.
sub descendants_of {
    my ($p, $top) = @_;
    my %kids;
    push @{ $kids{ $p->{$_}{ppid} } }, $_ for keys %$p;
    my @todo = @{ $kids{$top} || [] };
    my @all;
    while (defined(my $pid = shift @todo)) {
        push @all, $pid;
        push @todo, @{ $kids{$pid} || [] };
    }
    return @all;
}

# Which cgroup a process should be in: "corrald", "POOL/prototype",
# "POOL/ID", or "POOL/*" (some worker's or prototype's, for a process
# that names none), relative to the base.
sub expected_cgroup {
    my ($pid) = @_;
    return 'corrald' if $pid == $t->pid;
    my $cmd = proc_cmdline($pid);
    return "$1/prototype" if $cmd =~ /^corral: prototype (\S+?)(?:[\s\0]|$)/;
    if (my ($pool, $id) = lua_worker_title($pid)) { return "$pool/$id" }
    my $env = proc_environ($pid);
    return "$env->{CORRAL_POOL}/$env->{CORRAL_WORKER}" if defined $env->{CORRAL_POOL} && defined $env->{CORRAL_WORKER};
    return '*/*';
}

my (%zombie_since, %misplaced_since, %cgroup_since, %stuck, %progress, %waiting);
my $last_status;
my $log_off = 0;
my %backoff_until;    # pool => when the backoff the log announced ends (fallback for restart_in)
my %failed_reason;    # pool => the log's "pool failed" reason (fallback for failure)
my %fallback;         # status fields missing, replaced by the log
my %failed_pools;     # pool => how many times it failed

# The new lines of corrald's log: alerts and sanitizer reports are
# violations; backoffs and failures noted.
sub read_log {
    my $text = slurp($t->path('log')) // return;
    my $new = substr $text, $log_off;
    $new =~ s/[^\n]*\z//;
    $log_off += length $new;
    for my $line (split /\n/, $new) {
        violation('log', "alert: $line") if $line =~ /^\S+ alert /;
        violation('log', "sanitizer: $line") if $line =~ /ERROR: AddressSanitizer|runtime error:|LeakSanitizer/;
        $count{log_reload_failed}++ if $line =~ / reload failed/;
        $count{plugin_actions}++ if $line =~ / chaosplug: action /;
        $count{worker_starts}++ if $line =~ / info worker started /;
        $count{pool_failures}++ if $line =~ / pool failed: /;
        if ($line =~ / restarting (?:worker|prototype) in (\d+(?:\.\d+)?)(ms|s) pool=(\S+)$/) {
            $backoff_until{$3} = time + $1 * ($2 eq 'ms' ? 0.001 : 1);
        }
        if ($line =~ / pool failed: (.*) pool=(\S+)$/) { $failed_reason{$2} = $1; $failed_pools{$2}++ }
    }
}

# One round of checks: control, zombies, placement, cgroups, stuck pools
# (and the new lines of the log and of the pinger).
sub check {
    my $now = time;
    read_log();
    read_pings();
    my $status = status();
    if (!$status) {
        violation('control', 'no answer to status within 5 s');
        return;
    }
    $last_status = $status;
    my $p = scan();
    my $top = $t->pid;

    # zombies: children of corrald or of a prototype, counted while their
    # parent runs (a stopped or frozen parent cannot reap)
    my %protos = map { $_ => 1 } grep { proc_cmdline($_) =~ /^corral: prototype / } grep { $p->{$_}{ppid} == $top } keys %$p;
    my %z;
    for my $pid (keys %$p) {
        my $st = $p->{$pid};
        next unless $st->{state} eq 'Z' && ($st->{ppid} == $top || $protos{ $st->{ppid} });
        my $key = "$pid/$st->{starttime}";
        $z{$key} = 1;
        my $parent = $p->{ $st->{ppid} } || {};
        my $held = ($parent->{state} // '') =~ /^[tT]$/ || (pool_frozen($parent->{cg}));
        $zombie_since{$key} = $now if $held || !$zombie_since{$key};
        if ($now - $zombie_since{$key} > $ZOMBIE_MAX && !$reported{"z$key"}++) {
            violation('zombie', sprintf('pid %d (parent %d %s) a zombie for over %.0f s',
                                        $pid, $st->{ppid}, $st->{ppid} == $top ? 'corrald' : 'a prototype', $ZOMBIE_MAX));
        }
    }
    delete @zombie_since{ grep { !$z{$_} } keys %zombie_since };

    # placement: every descendant of corrald in the base; every process in
    # the base where it belongs; no worker of this test outside the base
    my %bad;
    for my $pid ($top, descendants_of($p, $top)) {
        my $cg = $p->{$pid}{cg};
        $bad{$pid} = "outside the base ($cg)" unless in_base($cg) || $p->{$pid}{state} eq 'Z';
    }
    for my $pid (grep { in_base($p->{$_}{cg}) && $p->{$_}{state} ne 'Z' } keys %$p) {
        # stopped or frozen mid-way (a new worker still titled as its
        # prototype): judged once it runs
        next if $p->{$pid}{state} =~ /^[tT]$/ || pool_frozen($p->{$pid}{cg});
        my $want = expected_cgroup($pid);
        my $have = substr $p->{$pid}{cg}, length("$BASE/");
        my $re = join '/', map { $_ eq '*' ? '[^/]+' : quotemeta } split m{/}, $want;
        $bad{$pid} = "in $have, expected $want" unless $have =~ m{^$re$} && $have !~ m{^[^/]+/[^/]+/};
    }
    my $born = $p->{$top} ? $p->{$top}{starttime} : 0;
    for my $pid (keys %$p) {
        next if in_base($p->{$pid}{cg}) || $p->{$pid}{state} eq 'Z' || $p->{$pid}{starttime} < $born;
        my $env = proc_environ($pid);
        next unless ($env->{CORRAL_TEST_DIR} // '') eq $TMP && defined $env->{CORRAL_POOL};
        $bad{$pid} = "a worker's process ($env->{CORRAL_POOL}/" . ($env->{CORRAL_WORKER} // '?') . ") outside the base: $p->{$pid}{cg}";
    }
    for my $pid (keys %bad) {
        my $key = "$pid/$p->{$pid}{starttime}/$bad{$pid}";
        $misplaced_since{$key} //= $now;
        if ($now - $misplaced_since{$key} > $PLACE_MAX && !$reported{"p$key"}++) {
            (my $cmd = proc_cmdline($pid)) =~ tr/\0/ /;
            violation('placement', "pid $pid ($cmd) $bad{$pid}");
        }
    }
    for my $key (keys %misplaced_since) {
        my ($pid) = split m{/}, $key;
        delete $misplaced_since{$key} unless $bad{$pid} && $key eq "$pid/$p->{$pid}{starttime}/$bad{$pid}";
    }

    # cgroups: each one below the base claimed by the status (a pool, its
    # prototype, one of its workers) or by corrald; none left over
    my %claimed = (corrald => 1);
    for my $pool (values %$status) {
        $claimed{$pool->{name}} = $claimed{"$pool->{name}/prototype"} = 1;
        $claimed{"$pool->{name}/$_->{id}"} = 1 for @{ $pool->{workers} || [] };
    }
    my %left;
    for my $pool (cgroup_dirs($BASE)) {
        for my $sub (map { "$pool/$_" } cgroup_dirs("$BASE/$pool")) {
            next if $claimed{$sub} || !$claimed{$pool};
            $left{$sub} = cgroup_procs("$BASE/$sub") ? 'with processes' : 'empty';
        }
        $left{$pool} = 'left' unless $claimed{$pool};
    }
    # a worker's cgroup holds nothing older than the worker (a process of
    # an earlier worker with the same id that survived it)
    my ($up) = (slurp('/proc/uptime') // '0') =~ /^([\d.]+)/;
    my $hz = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
    for my $pool (values %$status) {
        for my $w (@{ $pool->{workers} || [] }) {
            next unless defined $w->{uptime} && defined $w->{pid};
            for my $pid (cgroup_procs("$BASE/$pool->{name}/$w->{id}")) {
                my $st = $p->{$pid} or next;
                my $age = $up - $st->{starttime} / $hz;
                $left{"$pool->{name}/$w->{id}"} = sprintf('holding pid %d, %.1f s old, older than its worker (%.1f s)', $pid, $age, $w->{uptime})
                    if $age > $w->{uptime} + 1 && $st->{state} ne 'Z';
            }
        }
    }
    for my $cg (keys %left) {
        my $key = "$cg/" . ((stat $t->cgroup_dir($cg))[1] // 0);
        $cgroup_since{$key} //= $now;
        if ($now - $cgroup_since{$key} > $CGROUP_MAX && !$reported{"c$key"}++) {
            violation('cgroup', "$BASE/$cg ($left{$cg}) belongs to no pool, worker or prototype of the status for over ${CGROUP_MAX}s"
                      . ': ' . join(' ', map { my $c = proc_cmdline($_); $c =~ tr/\0/ /; "$_($c)" } CorralProc::cgroup_pids("$BASE/$cg")));
        }
    }
    for my $key (keys %cgroup_since) {
        (my $cg = $key) =~ s{/\d+$}{};
        delete $cgroup_since{$key} unless $left{$cg};
    }

    check_stuck($status, $now);
}

sub pool_frozen {
    my ($cg) = @_;
    return 0 unless in_base($cg);
    my ($pool) = substr($cg, length("$BASE/")) =~ m{^([^/]+)};
    return (cg_read("$BASE/$pool", 'cgroup.freeze') // '0') eq '1';
}

# Why a pool is fine as it is, or undef (see the never-stuck rule).
sub explained {
    my ($pool, $now) = @_;
    my $name = $pool->{name};
    my $state = $pool->{state} // '';
    return $state if $state eq 'stopped' || $state eq 'frozen';
    if ($state eq 'failed') {
        return "failed: $pool->{failure}" if defined $pool->{failure};
        if (!exists $pool->{failure} && defined $failed_reason{$name}) {
            $fallback{failure} = 1;
            return "failed: $failed_reason{$name} (from the log)";
        }
        return undef;
    }
    return 'at target' if ($pool->{ready} // -1) == ($pool->{target} // -2);
    # waiting out a backoff, but not past its end (a deadline that passes
    # and passes is no explanation)
    return "waiting $pool->{restart_in}s"
        if defined $pool->{restart_in} && $now <= ($waiting{$name} // $now + $pool->{restart_in}) + $WAIT_SLACK;
    if (!exists $pool->{restart_in} && ($backoff_until{$name} // 0) + 1 > $now) {
        $fallback{restart_in} = 1;
        return 'waiting (from the log)';
    }
    return 'progress' if $now - ($progress{$name}{at} // $now) < $PROGRESS;
    return undef;
}

sub check_stuck {
    my ($status, $now) = @_;
    for my $pool (values %$status) {
        my $name = $pool->{name};
        my $sig = join ' ', $pool->{state}, map { "$_->{id}:" . ($_->{pid} // '-') . ":$_->{state}" }
                                             sort { $a->{id} <=> $b->{id} } @{ $pool->{workers} || [] };
        if (($progress{$name}{sig} // '') ne $sig) { $progress{$name} = { sig => $sig, at => $now } }
        if (defined $pool->{restart_in}) {
            # the end of this wait; a later one is a new wait
            my $end = $now + $pool->{restart_in};
            $waiting{$name} = $end if !defined $waiting{$name} || $end > $waiting{$name} + 0.5;
        }
        else { delete $waiting{$name} }
        my $why = explained($pool, $now);
        $count{ 'why ' . ($why ? $why =~ s/^(\w+).*/$1/r : 'unexplained') }++;
        if ($why) { delete $stuck{$name}; next }
        my $s = $stuck{$name} //= { since => $now };
        if ($now - $s->{since} > $STUCK_MAX && !$s->{reported}++) {
            violation('stuck', sprintf('pool %s unexplained for over %.0f s: state %s, %d/%d ready, %d total, restart_in %s, failure %s, workers: %s',
                                       $name, $STUCK_MAX, $pool->{state}, $pool->{ready}, $pool->{target}, $pool->{total},
                                       $pool->{restart_in} // 'null', $pool->{failure} // 'null', $sig));
        }
    }
}

# --- the chaos --------------------------------------------------------------

my %gen = map { $_ => 0 } keys %WORKERS;
my %conf_workers;
my $extra = 0;
my (@undo, %stopped_pids, %frozen, %stopped_pools);

sub pick { return @_ ? $_[ int rand @_ ] : undef }
sub pools { return sort keys %{ $last_status || {} } }

# Live worker main pids of a pool (or all), from the last status; only
# those still in the base (a pid is signalled only if it is corrald's).
sub worker_pids {
    my ($pool) = @_;
    return grep { in_base(cgroup_of($_)) }
           map { $_->{pid} // () } map { @{ $_->{workers} || [] } }
           grep { !defined $pool || $_->{name} eq $pool } values %{ $last_status || {} };
}
# Workers not ready yet (a stop there runs into ready_timeout).
sub starting_pids {
    return grep { in_base(cgroup_of($_)) }
           map { $_->{pid} // () } grep { ($_->{state} // '') eq 'starting' }
           map { @{ $_->{workers} || [] } } values %{ $last_status || {} };
}
sub prototype_pids { my %p = $t->prototypes; return grep { in_base(cgroup_of($_)) } values %p }
# Processes in worker cgroups that are not main processes: children,
# daemons.
sub other_pids {
    my %main = map { $_ => 1 } worker_pids();
    return grep { !$main{$_} && proc_cmdline($_) !~ /^corral: / }
           map { my $pool = $_; map { CorralProc::cgroup_procs("$BASE/$pool/$_") } grep { /^\d+$/ } cgroup_dirs("$BASE/$pool") }
           cgroup_dirs($BASE);
}

sub sig {
    my ($name, $what, @pids) = @_;
    my $pid = pick(@pids) // return;
    kill $name, $pid or return;
    $count{"$name $what"}++;
    if ($name eq 'STOP') {
        $stopped_pids{$pid} = 1;
        # (up to 4 s: past a stop_timeout or a ready_timeout of 2 s)
        push @undo, [ time + 0.2 + rand 3.8, sub { kill 'CONT', $pid if delete $stopped_pids{$pid} } ];
    }
    say_("$name $what $pid");
}

# Sends a request; its answer's code must be $want, or not-found for
# the pool "extra" when a reload may have removed it.
sub ctl_action {
    my ($what, $req, $want) = @_;
    my $r = request($req, 15);
    $count{$what}++;
    my $code = $r ? $r->{code} : 'no answer';
    $code = $want if $code eq 'not-found' && ($req->{pool} // '') eq 'extra';
    say_("$what " . JSON::PP->new->canonical->encode($req) . " -> $code");
    violation('control', JSON::PP->new->canonical->encode($req) . " answered $code" . ($r && $r->{error} ? " ($r->{error})" : '') . ", expected $want")
        unless $code eq $want;
    return $r;
}

sub reload_good {
    my ($how) = @_;
    $gen{$_}++ for grep { rand() < 0.2 } sort keys %gen;
    if (rand() < 0.3) { my $p = pick(sort keys %WORKERS); $conf_workers{$p} = 1 + int rand 4 }
    $extra = !$extra if rand() < 0.3;
    $t->write_config(config_text(gen => \%gen, workers => \%conf_workers, extra => $extra));
    if ($how eq 'hup') { $t->reload; $count{'reload sighup'}++; say_('reload by SIGHUP') }
    else { ctl_action('reload good', { command => 'reload' }, 'ok') }
}

sub reload_bad {
    my $kind = pick(@BAD);
    $t->write_config(config_text(gen => \%gen, workers => \%conf_workers, extra => $extra, bad => $kind));
    ctl_action("reload bad", { command => 'reload' }, 'failed');
    $t->write_config(config_text(gen => \%gen, workers => \%conf_workers, extra => $extra));
}

my @ACTIONS = (
    [ 8, 'kill worker',    sub { sig('KILL', 'worker', worker_pids()) } ],
    [ 2, 'kill prototype', sub { sig('KILL', 'prototype', prototype_pids()) } ],
    [ 1, 'kill other',     sub { sig('KILL', 'other', other_pids()) } ],
    [ 3, 'stop worker',    sub { sig('STOP', 'worker', rand() < 0.5 ? starting_pids() : worker_pids()) } ],
    [ 1, 'stop prototype', sub { sig('STOP', 'prototype', prototype_pids()) } ],
    [ 3, 'reload good',    sub { reload_good('control') } ],
    [ 1, 'reload hup',     sub { reload_good('hup') } ],
    [ 2, 'reload bad',     \&reload_bad ],
    [ 3, 'scale',          sub { my $p = pick(pools()) // return;
                                 # (now and then many: a burst of spawns)
                                 my $n = rand() < 0.15 ? 10 + int rand 20 : int rand 5;
                                 ctl_action('scale', { command => 'scale', pool => $p, count => $n }, 'ok') } ],
    [ 2, 'restart pool',   sub { my $p = pick(pools()) // return;
                                 ctl_action('restart pool', { command => 'restart', pool => $p, rand() < 0.3 ? (all_at_once => JSON::PP::true()) : () }, 'ok') } ],
    [ 2, 'restart worker', sub {
          my $p = pick(grep { grep { ($_->{state} // '') =~ /^(starting|ready)$/ } @{ $last_status->{$_}{workers} || [] } } pools()) // return;
          my $w = pick(grep { ($_->{state} // '') =~ /^(starting|ready)$/ } @{ $last_status->{$p}{workers} || [] });
          # (the worker may have gone since the status: not-found is fine)
          my $r = request({ command => 'restart', pool => $p, worker => $w->{id} }, 15);
          $count{'restart worker'}++;
          violation('control', "restart $p/$w->{id} answered " . ($r ? $r->{code} : 'nothing'))
              unless $r && ($r->{code} eq 'ok' || $r->{code} eq 'not-found');
      } ],
    [ 1, 'freeze',         sub {
          my $p = pick(grep { !$frozen{$_} } pools()) // return;
          ctl_action('freeze', { command => 'freeze', pool => $p }, 'ok');
          $frozen{$p} = 1;
          push @undo, [ time + 0.3 + rand 2.7, sub { delete $frozen{$p} and ctl_action('thaw', { command => 'thaw', pool => $p }, 'ok') } ];
      } ],
    [ 1, 'stop pool',      sub {
          my $p = pick(grep { !$stopped_pools{$_} } pools()) // return;
          ctl_action('stop pool', { command => 'stop', pool => $p }, 'ok');
          $stopped_pools{$p} = 1;
          push @undo, [ time + 0.5 + rand 2.5, sub { delete $stopped_pools{$p} and ctl_action('start pool', { command => 'start', pool => $p }, 'ok') } ];
      } ],
    [ 1, 'start failed',   sub {
          my $p = pick(grep { $last_status->{$_}{state} eq 'failed' } pools()) // return;
          ctl_action('start failed', { command => 'start', pool => $p }, 'ok');
      } ],
    [ 1, 'signal',         sub { my $p = pick(pools()) // return;
                                 ctl_action('signal', { command => 'signal', pool => $p, signal => pick(qw(TERM HUP USR1)) }, 'ok') } ],
    [ 1, 'burst',          \&burst ],
    [ 1, 'massacre',       sub {
          # every worker of a pool and its prototype at once
          my $p = pick(pools()) // return;
          my @pids = (worker_pids($p), grep { proc_cmdline($_) =~ /^corral: prototype \Q$p\E\0/ } prototype_pids());
          kill 'KILL', @pids;
          $count{'KILL worker'} += @pids;
          say_("massacre of $p: @pids");
      } ],
    [ 1, 'reload storm',   sub {
          # reloads back to back, by signal and by request
          $t->reload for 1 .. 3;
          $count{'reload sighup'} += 3;
          reload_good('control');
      } ],
);
my $WEIGHTS = 0;
$WEIGHTS += $_->[0] for @ACTIONS;

sub act {
    my $r = rand $WEIGHTS;
    for my $action (@ACTIONS) {
        next if ($r -= $action->[0]) >= 0;
        $action->[2]->();
        return;
    }
}

sub run_undo {
    my ($all) = @_;
    my $now = time;
    my @due = grep { $all || $_->[0] <= $now } @undo;
    @undo = grep { !$all && $_->[0] > $now } @undo;
    $_->[1]->() for @due;
}

# Polls check() until $cond (given the status) holds or $timeout passes:
# true if it held.
sub settle {
    my ($cond, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        check();
        return 1 if $last_status && $cond->($last_status);
        return 0 if time >= $deadline;
        reap_children();
        sleep $CHECK_EVERY;
    }
}

# Every pool at its target (running, ready == target, nothing more), the
# crashy one failed.
sub all_back {
    my ($st) = @_;
    for my $pool (values %$st) {
        next if $pool->{name} eq 'silent';    # (--inject stuck)
        if ($pool->{name} eq $CRASHY) { return 0 unless $pool->{state} eq 'failed'; next }
        return 0 unless $pool->{state} eq 'running' && $pool->{ready} == $pool->{target} && $pool->{total} == $pool->{target};
    }
    return 1;
}
sub describe_pools {
    my ($st) = @_;
    return join '; ', map { my $p = $st->{$_}; "$_ $p->{state} $p->{ready}/$p->{target} (total $p->{total}, restart_in "
                                                . ($p->{restart_in} // 'null') . ', failure ' . ($p->{failure} // 'null') . ')' } sort keys %$st;
}

sub inject {
    my ($fault) = @_;
    say_("injecting a fault: $fault");
    if ($fault eq 'cgroup') { mkdir $t->cgroup_dir('sleepers/999') or die "mkdir: $!" }
    elsif ($fault eq 'placement') {
        # a worker moved out of its cgroup (chaos may kill it soon), and a
        # process that looks like a worker of this test outside the base
        my ($pid) = worker_pids('sleepers') or die 'no worker';
        open my $fh, '>', $t->cgroup_dir('sleepers/prototype') . '/cgroup.procs' or die "open: $!";
        print $fh $pid;
        close $fh or die "move $pid: $!";
        my $fake = fork // die "fork: $!";
        if (!$fake) {
            @ENV{qw(CORRAL_TEST_DIR CORRAL_POOL CORRAL_WORKER)} = ($TMP, 'sleepers', 1);
            { no warnings 'exec'; exec '/bin/sleep', '1000'; }
            _exit(127);
        }
        $children{$fake} = 'fake worker';
    }
    elsif ($fault eq 'ping') { kill 'STOP', $t->pid; sleep 1.2; kill 'CONT', $t->pid }
    elsif ($fault ne 'stuck') { die "unknown fault $fault\n" }
}

sub rss_kib { return (slurp('/proc/' . $t->pid . '/status') // '') =~ /^VmRSS:\s+(\d+)/m ? $1 : 0 }

# --- the run ------------------------------------------------------------------

$t->write_config(config_text(gen => \%gen));
my $check = $t->run_check;
if (($check->{code} // -1) != 0) { print "chaos: the config does not check: $check->{err}\n"; exit 2 }
$t->start;
if (!CorralWait::poll_until(sub { my $r = request({ command => 'ping' }, 2); $r && $r->{ok} }, 10 * $SLOW)) {
    print "chaos: corrald does not answer on its control socket\n";
    $t->diag_tail;
    exit 2;
}
start_pinger();
if (!settle(\&all_back, $RECOVER_MAX)) {
    print "chaos: the pools did not start: ${\describe_pools($last_status || {})}\n";
    $t->diag_tail;
    exit 2;
}
# warm-up: a reload and a burst, then the baseline for fds and memory
ctl_action('reload good', { command => 'reload' }, 'ok');
burst();
reap_children(1);
settle(\&all_back, $RECOVER_MAX) or violation('recovery', "after the warm-up: ${\describe_pools($last_status)}");
my $fds0 = $t->settled_fds(undef, 5);
my $rss0 = rss_kib();
say_(sprintf 'baseline: %d fds, RSS %d KiB', scalar(keys %$fds0), $rss0);

# the chaos
$t->write_file('chaos.on', '');
my $t_chaos = time;
my $end = $t_chaos + $duration;
my ($next_check, $next_act) = (0, 0);
while ((my $now = time) < $end) {
    run_undo(0);
    if ($now >= $next_check) { check(); $next_check = time + $CHECK_EVERY }
    if ($now >= $next_act) { act(); $next_act = time + rand 0.3 }
    inject($inject) if $inject && $now > $t_chaos + 2 && !$count{injected}++;
    reap_children();
    sleep 0.01;
}
say_('chaos over');

# after the chaos: everything undone, the pools of the start, and every
# pool back at its target within $RECOVER_MAX
unlink $FLAG;
run_undo(1);
kill 'CONT', keys %stopped_pids;
reap_children(1);
# (the same pools and workers as at the start, for the fd count; the
# generations as they are: a reload that changes every pool at once is
# not needed here)
$t->write_config(config_text(gen => \%gen));
ctl_action('reload good', { command => 'reload' }, 'ok');
my $t_recover = time;
settle(sub {
    my ($st) = @_;
    # a pool that failed in the chaos is started again
    for my $p (grep { $_ ne $CRASHY && $st->{$_}{state} eq 'failed' } keys %$st) {
        ctl_action('start failed', { command => 'start', pool => $p }, 'ok');
    }
    return all_back($st);
}, $RECOVER_MAX) or violation('recovery', sprintf('not back at target %.0f s after the chaos: %s', $RECOVER_MAX, describe_pools($last_status)));
my $recovered = time - $t_recover;

# leaks: the same pools and workers as at the baseline
my $fds1 = $t->settled_fds(scalar keys %$fds0, 10);
my $rss1 = rss_kib();
my ($nfd0, $nfd1) = (scalar keys %$fds0, scalar keys %$fds1);
if (abs($nfd1 - $nfd0) > $FD_SLACK) {
    violation('leak', "corrald had $nfd0 fds after the warm-up, $nfd1 now: "
              . join(' ', map { "+$_=$fds1->{$_}" } grep { ($fds0->{$_} // '') ne $fds1->{$_} } sort { $a <=> $b } keys %$fds1));
}
if (!$ASAN && $rss1 - $rss0 > $RSS_SLACK) {
    violation('leak', "corrald's RSS grew from $rss0 KiB to $rss1 KiB");
}

# the final look: the invariants once more, everything settled
my $left_ok = settle(sub { !%zombie_since && !%misplaced_since && !%cgroup_since }, 10);
check();
for my $pool (values %$last_status) {
    violation('stuck', "at the end, pool $pool->{name} is unexplained: ${\describe_pools({ $pool->{name} => $pool })}")
        unless explained($pool, time);
}
if (!$left_ok) {
    violation('zombie', 'at the end, zombies: ' . join(', ', sort keys %zombie_since)) if %zombie_since;
    violation('placement', 'at the end, not in place: ' . join(', ', sort keys %misplaced_since)) if %misplaced_since;
    violation('cgroup', 'at the end, cgroups left: ' . join(', ', sort keys %cgroup_since)) if %cgroup_since;
}

# corrald stops cleanly and leaves nothing
$count{stopping} = 1;
kill 'TERM', $t->pid;
my $exit = $t->reap($t->pid, 30 * $SLOW);
if (!defined $exit) { violation('exit', 'corrald did not exit within ' . 30 * $SLOW . ' s of SIGTERM'); $t->kill_all }
else {
    $t->{pid} = undef;
    violation('exit', "corrald exited with status $exit") if $exit != 0;
}
for my $pid (keys %children) { kill 'TERM', $pid; waitpid $pid, 0 }
read_log();
read_pings();
my @left = $t->leftovers;
violation('exit', 'processes left: ' . join(', ', map { CorralProc::describe($_) } @left)) if @left;
violation('exit', "cgroup base left: ${\$t->cgroup_dir}") if -e $t->cgroup_dir;

# --- the report ---------------------------------------------------------------

my @lat = sort { $a <=> $b } map { $_->[1] } @pings;
my @net = sort { $a <=> $b } map { $_->[2] } @pings;
my $p99 = @net ? $net[ int(0.99 * $#net) ] : 0;
my $pmax = @net ? $net[-1] : 0;
my $raw99 = @lat ? $lat[ int(0.99 * $#lat) ] : 0;
my $rawmax = @lat ? $lat[-1] : 0;
violation('ping', sprintf('p99 %.1f ms over %d pings (less waits for a CPU), over %.0f ms', $p99 * 1000, scalar @net, $PING_P99 * 1000))
    if $p99 > $PING_P99;
violation('ping', 'no ping measured') unless @lat;
my @slow = (sort { $b->[2] <=> $a->[2] } @pings)[0 .. 4];
print 'chaos: slowest pings: ' . join(', ', map { sprintf '%.0f ms (%.0f ms in all) at +%.1fs', $_->[2] * 1000, $_->[1] * 1000, $_->[0] - $T0 }
                                     grep { defined } @slow) . "\n";
print 'chaos: pools seen (pool x check): ' . join(', ', map { s/^why //r . " $count{$_}" } sort grep { /^why / } keys %count) . "\n";
print 'chaos: pools failed: ' . join(', ', map { "$_ $failed_pools{$_}x" } sort keys %failed_pools) . "\n" if %failed_pools;
print "chaos: status fields missing, the log used instead: " . join(', ', sort keys %fallback) . "\n" if %fallback;
printf "family %s: %d violation%s\n", $_, $family{$_}, $family{$_} == 1 ? '' : 's' for @FAMILIES;
my $kills = ($count{'KILL worker'} // 0) + ($count{'KILL prototype'} // 0) + ($count{'KILL other'} // 0);
my %c = map { $_ => $count{$_} // 0 } keys %count;
printf "chaos summary: seed=%d duration=%.0fs kills=%d (workers %d, prototypes %d, others %d) stops=%d reloads=%d (good %d, sighup %d, bad %d) "
    . "scales=%d restarts=%d (pools %d, workers %d) freezes=%d stop_start=%d signals=%d bursts=%d clients=%d plugin_actions=%d "
    . "worker_starts=%d pool_failures=%d recovered_in=%.1fs fds=%d->%d rss=%d->%dKiB%s pings=%d p99=%.1fms max=%.1fms (in all: p99=%.1fms max=%.1fms) violations=%d\n",
    $seed, $duration, $kills, $c{'KILL worker'} // 0, $c{'KILL prototype'} // 0, $c{'KILL other'} // 0,
    ($c{'STOP worker'} // 0) + ($c{'STOP prototype'} // 0),
    ($c{'reload good'} // 0) + ($c{'reload sighup'} // 0) + ($c{'reload bad'} // 0), $c{'reload good'} // 0, $c{'reload sighup'} // 0, $c{'reload bad'} // 0,
    $c{scale} // 0, ($c{'restart pool'} // 0) + ($c{'restart worker'} // 0), $c{'restart pool'} // 0, $c{'restart worker'} // 0,
    $c{freeze} // 0, $c{'stop pool'} // 0, $c{signal} // 0, $c{bursts} // 0, $c{clients} // 0, $c{plugin_actions} // 0,
    $c{worker_starts} // 0, $c{pool_failures} // 0, $recovered, $nfd0, $nfd1, $rss0, $rss1, $ASAN ? ' (asan: not judged)' : '',
    scalar @lat, $p99 * 1000, $pmax * 1000, $raw99 * 1000, $rawmax * 1000, scalar @violations;
if (@violations || $keep_log) {
    my $keep = $keep_log // ($ENV{TMPDIR} || '/tmp') . "/corral-chaos-$seed-$$.log";
    system('cp', $t->path('log'), $keep);
    print "chaos: corrald's log kept in $keep\n";
}
exit(@violations ? 1 : 0);
