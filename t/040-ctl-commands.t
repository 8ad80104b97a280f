#!/usr/bin/perl
# corralctl: every command over the real control socket, each checked on
# the real processes and cgroups: status, scale, restart (rolling, one
# worker, all at once), stop and start (a failed pool too), signal,
# freeze and thaw, reload (good and bad), ping, version; the exit codes;
# where corralctl finds its socket; help and usage errors.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive);
use POSIX ();
use Test::More;

my $CONFIG = <<'EOF';
local inherit = { "CORRAL_TEST_DIR" }
-- ready 0.3 s after it starts, then it becomes the command
pool "web" {
  command = "/bin/sleep 1000",
  workers = 3,
  ready = "lua",
  start = function(worker)
    if worker:sleep(0.3) then return end
    corral.ready()
    worker:exec()
  end,
  env_inherit = inherit,
}
pool "sig" { command = { "/bin/sh", "%TMP%/sig.sh" }, workers = 2, env_inherit = inherit }
pool "ticker" {
  command = { "/bin/sh", "-c", "while :; do echo x >> %TMP%/tick; /bin/sleep 0.02; done" },
  env_inherit = inherit,
}
pool "flaky" {
  command = { "/bin/sh", "-c", "test -e %TMP%/flaky.ok || exit 1; exec /bin/sleep 1000" },
  crash_limit = { failures = 2, interval = "60s" },
  backoff = { initial = "50ms", max = "50ms" },
  env_inherit = inherit,
}
EOF
my $ADDED = qq{pool "added" { command = "/bin/sleep 1000", workers = 2, env_inherit = inherit }\n};

my $t = CorralTest->new(config => $CONFIG);
$t->write_file('sig.sh', <<'EOF');
trap 'echo USR1 >> %TMP%/usr1.$CORRAL_WORKER' USR1
touch %TMP%/sigready.$CORRAL_WORKER
while :; do /bin/sleep 0.02; done
EOF
$t->write_file('flaky.ok', '');
my $sock = $t->socket_path;
$t->start;
$t->wait_log(qr/ info control: listening on \Q$sock\E$/);
ok(-S $sock, 'the control socket exists');
is((stat $sock)[2] & 07777, 0600, 'the control socket is mode 0600 without control_group');
$t->wait_control;
$t->wait_for(sub {
    $t->workers('web') == 3 && $t->workers('sig') == 2 && $t->workers('ticker') == 1 && $t->workers('flaky') == 1
}, 15, 'all pools up');
$t->wait_log(qr/ info ready: /, 15);

sub ctl_ok {
    my ($name, @args) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = $t->ctl(@args);
    is($r->{code}, 0, "$name: exit 0") or diag("stdout: $r->{out}\nstderr: $r->{err}");
    is($r->{err}, '', "$name: nothing on stderr");
    return $r;
}

sub ctl_fails {
    my ($name, $code, $err_re, @args) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = $t->ctl(@args);
    is($r->{code}, $code, "$name: exit $code") or diag("stdout: $r->{out}\nstderr: $r->{err}");
    like($r->{err}, $err_re, "$name: stderr says why");
    is(scalar(() = $r->{err} =~ /\n/g), 1, "$name: one line on stderr");
    is($r->{out}, '', "$name: nothing on stdout");
    return $r;
}

sub pool_status {
    my ($pool) = @_;
    my $s = $t->status($pool) or return undef;
    return $s->{$pool};
}

# Workers of a status answer that are not on their way out.
sub live { grep { $_->{state} ne 'stopping' && $_->{state} ne 'exited' } @{ $_[0]{workers} } }

sub disjoint { my %a = map { $_ => 1 } @{ $_[0] }; !grep { $a{$_} } @{ $_[1] } }
sub subset { my %b = map { $_ => 1 } @{ $_[1] }; !grep { !$b{$_} } @{ $_[0] } }

sub lines_of { my $text = CorralTest::slurp($t->path($_[0])) // ''; scalar(() = $text =~ /\n/g) }

# Waits until $pool has $n ready workers, all of its newest generation.
sub wait_settled {
    my ($pool, $n, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $t->wait_for(sub {
        my $p = pool_status($pool) or return 0;
        my @live = live($p);
        $p->{ready} == $n && $p->{total} == $n && @live == $n
            && !grep({ $_->{generation} != $p->{generation} } @live) && $t->workers($pool) == $n;
    }, 15, $name // "$pool: $n ready workers");
}

# Follows a pool restart until $n new workers are ready: the lowest ready
# count seen meanwhile and how many looks that took.
sub follow_restart {
    my ($pool, $n, $old, $gen) = @_;
    my ($min, $looks) = (1e9, 0);
    my $done = $t->poll(sub {
        my $p = pool_status($pool) or return 0;
        $looks++;
        $min = $p->{ready} if $p->{ready} < $min;
        my @live = live($p);
        my @w = $t->workers($pool);
        return $p->{generation} > $gen && $p->{ready} == $n && @live == $n
            && !grep({ $_->{generation} != $p->{generation} } @live)
            && @w == $n && disjoint($old, \@w);
    }, 20);
    return ($done, $min, $looks);
}

# --- ping, version ---------------------------------------------------------

$t->scenario('ping and version', sub {
    my $r = ctl_ok('ping', 'ping');
    is($r->{out}, "pong\n", 'ping prints pong');
    $r = ctl_ok('version', 'version');
    my ($want_version) = $t->run('-V')->{out} =~ /^corrald (\S+)$/m;
    ok($want_version, 'corrald -V prints a version');
    is($r->{out}, ($want_version // '?') . "\n", "version prints the running corrald's version");
});

# --- status ----------------------------------------------------------------

# The worker rows below a pool's line of the status table: id => row.
sub worker_rows {
    my ($text, $pool) = @_;
    my ($block) = $text =~ /^\Q$pool\E\s+\S+\s+\d+\/\d+[^\n]*\n((?:[ \t][^\n]*\n)*)/m;
    my %rows;
    for (split /\n/, $block // '') {
        $rows{$1} = { pid => $2, state => $3, rest => $4 } if /^\s+(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/;
    }
    return \%rows;
}

$t->scenario('status', sub {
    my $r = ctl_ok('status', 'status');
    my @lines = split /\n/, $r->{out};
    like($lines[0] // '', qr/^POOL\s+STATE\s+READY\s+WORKERS\s+TARGET\s+RESTARTS\s*$/, 'status: header line');
    for my $p ([ web => 3 ], [ sig => 2 ], [ ticker => 1 ], [ flaky => 1 ]) {
        my ($name, $n) = @$p;
        like($r->{out}, qr{^\Q$name\E\s+running\s+$n/$n\s+$n\s+$n\s+0\s*$}m,
             "status: $name running, $n/$n ready, $n workers, target $n, 0 restarts");
    }
    like($r->{out}, qr/^\s+ID\s+PID\s+STATE\s+UPTIME\s+RESTARTS\s+MEMORY\s+CPU\s+STATUS/m, 'status: worker header line');
    for my $pool (qw(web sig)) {
        my %real = $t->worker_map($pool);
        my $rows = worker_rows($r->{out}, $pool);
        is_deeply({ map { $_ => $rows->{$_}{pid} } keys %$rows }, \%real,
                  "status: $pool rows have the ids and pids of the real workers");
        ok(%$rows && !grep({ $_->{state} ne 'ready' } values %$rows), "status: $pool workers are ready");
    }

    $r = ctl_ok('status sig', 'status', 'sig');
    like($r->{out}, qr{^sig\s+running\s+2/2\s}m, 'status POOL: that pool');
    unlike($r->{out}, qr/^(?:web|ticker|flaky)\s/m, 'status POOL: no other pool');
});

# --- unknown pools and workers: exit 3, nothing changes ----------------------

$t->scenario('unknown pools and workers', sub {
    my %web_before = $t->worker_map('web');
    ctl_fails('status of an unknown pool', 3, qr/^corralctl: no such pool: nope$/, 'status', 'nope');
    ctl_fails('scale of an unknown pool', 3, qr/^corralctl: no such pool: nope$/, 'scale', 'nope', 2);
    for my $cmd (qw(restart stop start freeze thaw)) {
        ctl_fails("$cmd of an unknown pool", 3, qr/^corralctl: no such pool: nope$/, $cmd, 'nope');
    }
    ctl_fails('signal to an unknown pool', 3, qr/^corralctl: no such pool: nope$/, 'signal', 'nope', 'USR1');
    ctl_fails('restart of an unknown worker', 3, qr{^corralctl: no such worker: web/9$}, 'restart', 'web/9');
    ctl_fails('signal to an unknown worker', 3, qr{^corralctl: no such worker: sig/9$}, 'signal', 'sig/9', 'USR1');
    is_deeply({ $t->worker_map('web') }, \%web_before, 'unknown pools and workers: web untouched');
});

# --- scale -----------------------------------------------------------------

$t->scenario('scale up, down and back', sub {
    my @before = $t->workers('web');
    ctl_ok('scale web 5', 'scale', 'web', 5);
    wait_settled('web', 5, 'scale up: 5 ready web workers');
    my @after = $t->workers('web');
    is(scalar @after, 5, 'scale up: 5 web worker processes');
    ok(subset(\@before, \@after), 'scale up: the 3 workers there before are kept');
    is_deeply([ $t->worker_ids('web') ], [ 1 .. 5 ], 'scale up: ids 1..5');
    is(pool_status('web')->{target}, 5, 'scale up: status target 5');

    ctl_ok('scale web 1', 'scale', 'web', 1);
    wait_settled('web', 1, 'scale down: 1 ready web worker');
    my @down = $t->workers('web');
    is(scalar @down, 1, 'scale down: 1 web worker process');
    ok(subset(\@down, \@after), 'scale down: the one left was running before');
    $t->wait_for(sub { !grep { pid_alive($_) } grep { $_ != $down[0] } @after }, 10,
                 'scale down: the other 4 processes are gone');
    like(ctl_ok('status web', 'status', 'web')->{out}, qr{^web\s+running\s+1/1\s+1\s+1\s}m,
         'scale down: the status table says 1/1');

    ctl_ok('scale web 3', 'scale', 'web', 3);
    wait_settled('web', 3, 'scale up again: 3 ready web workers');
});

# --- restart: rolling --------------------------------------------------------

$t->scenario('rolling restart', sub {
    my @old = $t->workers('web');
    my $old_proto = $t->prototype_pid('web');
    my $gen = pool_status('web')->{generation};
    my $mark = $t->mark;
    ctl_ok('restart web', 'restart', 'web');
    my ($done, $min, $looks) = follow_restart('web', 3, \@old, $gen);
    ok($done, 'rolling restart: 3 new workers ready, all of the new generation') or $t->diag_tail;
    cmp_ok($min, '>=', 3, 'rolling restart: never fewer than 3 ready workers meanwhile');
    cmp_ok($looks, '>=', 5, "rolling restart: watched while it ran ($looks looks)");
    my $proto = $t->prototype_pid('web');
    ok($proto && $old_proto && $proto != $old_proto, 'rolling restart: a new prototype');
    $t->wait_for(sub { !pid_alive($old_proto) }, 10, 'rolling restart: the old prototype is gone');
    $t->wait_for(sub { !grep { pid_alive($_) } @old }, 10, 'rolling restart: the old workers are gone');
    # in the log: an old worker stops only once a new one is ready
    my %old = map { $_ => 1 } @old;
    my @events = $t->log_lines(qr/ (?:worker ready|worker stopped .*) pool=web worker=\d+ pid=\d+$/, $mark);
    my ($first_stop) = grep { $events[$_] =~ /worker stopped/ && $events[$_] =~ /pid=(\d+)$/ && $old{$1} } 0 .. $#events;
    my ($first_ready) = grep { $events[$_] =~ /worker ready/ && $events[$_] =~ /pid=(\d+)$/ && !$old{$1} } 0 .. $#events;
    ok(defined $first_stop && defined $first_ready && $first_ready < $first_stop,
       'rolling restart: the log has a new worker ready before the first old one stopped')
        or diag(join "\n", @events);
});

# --- restart: one worker -----------------------------------------------------

$t->scenario('restart of one worker', sub {
    my %m = $t->worker_map('web');
    my ($id, @others) = sort { $a <=> $b } keys %m;
    my $proto = $t->prototype_pid('web');
    ctl_ok("restart web/$id", 'restart', "web/$id");
    # (the replacement may get another id: the old one's is held until
    # its cgroup is empty)
    my %n;
    $t->wait_for(sub {
        %n = $t->worker_map('web');
        my $p = pool_status('web');
        keys %n == 3 && !grep({ $_ == $m{$id} } values %n) && $p && $p->{ready} == 3 && $p->{total} == 3;
    }, 15, "restart POOL/ID: worker $id replaced, 3 ready");
    is($n{$_}, $m{$_}, "restart POOL/ID: worker $_ untouched") for @others;
    $t->wait_for(sub { !pid_alive($m{$id}) }, 10, "restart POOL/ID: the old worker $id is gone");
    is($t->prototype_pid('web'), $proto, 'restart POOL/ID: same prototype');
});

# --- restart: all at once ----------------------------------------------------

# From the log since $mark: whether every one of @$old stopped before any
# worker was ready (the log's order is corrald's; polling could miss the
# gap on a loaded machine).
sub all_stopped_first {
    my ($old, $mark) = @_;
    my %old = map { $_ => 1 } @$old;
    my @events = $t->log_lines(qr/ (?:worker ready|worker stopped .*) pool=web worker=\d+ pid=\d+$/, $mark);
    my @stops = grep { $events[$_] =~ /worker stopped/ && $events[$_] =~ /pid=(\d+)$/ && $old{$1} } 0 .. $#events;
    my ($first_ready) = grep { $events[$_] =~ /worker ready/ } 0 .. $#events;
    my $ok = @stops == @$old && defined $first_ready && !grep({ $_ > $first_ready } @stops);
    diag(join "\n", 'the log:', @events) unless $ok;
    return $ok;
}

for my $args ([ 'restart', 'web', '--all-at-once' ], [ '--all-at-once', 'restart', 'web' ]) {
    $t->scenario("@$args", sub {
        my @old = $t->workers('web');
        my $old_proto = $t->prototype_pid('web');
        my $gen = pool_status('web')->{generation};
        my $mark = $t->mark;
        ctl_ok("@$args", @$args);
        my ($done) = follow_restart('web', 3, \@old, $gen);
        ok($done, "@$args: 3 new workers ready") or $t->diag_tail;
        $t->wait_log(qr/ info restarting the pool, all workers at once pool=web$/, since => $mark);
        my $proto = $t->prototype_pid('web');
        ok($proto && $proto != $old_proto, "@$args: a new prototype");
        $t->wait_for(sub { !grep { pid_alive($_) } @old }, 10, "@$args: the old workers are gone");
        ok(all_stopped_first(\@old, $mark), "@$args: all 3 old workers stopped before a new one was ready");
    });
}

# --- stop and start ----------------------------------------------------------

$t->scenario('stop and start', sub {
    ctl_ok('stop web', 'stop', 'web');
    $t->wait_for(sub { !$t->workers('web') && !$t->prototype_pid('web') }, 15,
                 'stop: no web worker and no prototype left');
    my $p = pool_status('web');
    is($p && $p->{state}, 'stopped', 'stop: status says stopped');
    is($p && $p->{total}, 0, 'stop: status says 0 workers');
    like(ctl_ok('status web', 'status', 'web')->{out}, qr{^web\s+stopped\s+0/3\s+0\s+3\s}m,
         'stop: the status table says stopped, 0/3');
    my $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/ info reload done: /, since => $mark);
    $t->stays(sub { !$t->workers('web') && !$t->log_lines(qr/ worker started pool=web /, $mark) }, 1,
              'stop: the pool stays stopped, across a reload too');
    ctl_ok('stop web again', 'stop', 'web');
    ctl_ok('scale of a stopped pool', 'scale', 'web', 2);
    $t->stays(sub { !$t->workers('web') }, 0.5, 'scale of a stopped pool: it stays stopped');
    is((pool_status('web') // {})->{target}, 2, 'scale of a stopped pool: the target is set');
    ctl_ok('start web', 'start', 'web');
    wait_settled('web', 2, 'start: 2 ready web workers (the target set while stopped)');
    $t->wait_for(sub { (pool_status('web') // {})->{state} eq 'running' }, 10, 'start: status says running');
    ctl_ok('scale web 3', 'scale', 'web', 3);
    wait_settled('web', 3, 'start: 3 ready web workers again');
    ctl_ok('start web again', 'start', 'web');
    is(scalar $t->workers('web'), 3, 'start of a running pool: still 3 workers');
});

# --- start of a failed pool --------------------------------------------------

$t->scenario('start of a failed pool', sub {
    unlink $t->path('flaky.ok');
    my ($f) = $t->workers('flaky');
    kill 'KILL', $f;
    $t->wait_log(qr/ error pool failed: .* pool=flaky$/);
    $t->wait_for(sub { (pool_status('flaky') // {})->{state} eq 'failed' }, 10, 'flaky: status says failed');
    $t->stays(sub { !$t->workers('flaky') }, 0.5, 'flaky: stays down');
    $t->write_file('flaky.ok', '');
    ctl_ok('start of a failed pool', 'start', 'flaky');
    $t->wait_for(sub { $t->workers('flaky') == 1 && (pool_status('flaky') // {})->{state} eq 'running' }, 10,
                 'start: the failed pool runs again');
});

# --- signal ----------------------------------------------------------------

$t->scenario('signal', sub {
    $t->wait_for(sub { -e $t->path('sigready.1') && -e $t->path('sigready.2') }, 10, 'sig: traps set');
    my @sig = $t->workers('sig');
    ctl_ok('signal sig USR1', 'signal', 'sig', 'USR1');
    $t->wait_for(sub { lines_of('usr1.1') == 1 && lines_of('usr1.2') == 1 }, 10,
                 'signal POOL: USR1 reached both workers');
    ctl_ok('signal sig/2 SIGUSR1', 'signal', 'sig/2', 'SIGUSR1');
    $t->wait_for(sub { lines_of('usr1.2') == 2 }, 10, 'signal POOL/ID: USR1 reached worker 2');
    $t->stays(sub { lines_of('usr1.1') == 1 }, 0.5, 'signal POOL/ID: not worker 1');
    my $num = POSIX::SIGUSR1();
    ctl_ok("signal sig/1 $num", 'signal', 'sig/1', $num);
    $t->wait_for(sub { lines_of('usr1.1') == 2 }, 10, 'signal by number: USR1 reached worker 1');
    is_deeply([ $t->workers('sig') ], \@sig, 'signal: the workers live on');
    ctl_fails('signal with an unknown signal name', 2, qr/^corralctl: .*signal/, 'signal', 'sig', 'NOSUCHSIG');
    ctl_fails('signal with signal number 0', 2, qr/^corralctl: .*signal/, 'signal', 'sig', '0');
});

# --- freeze and thaw ---------------------------------------------------------

$t->scenario('freeze and thaw', sub {
    my $events = $t->cgroup_dir('ticker') . '/cgroup.events';
    my $frozen = sub {
        my ($path) = @_;
        (CorralTest::slurp($path // $events) // '') =~ /^frozen (\d)$/m ? $1 : -1;
    };
    is($frozen->(), 0, 'ticker: cgroup.events says frozen 0');
    $t->wait_for(sub { -s $t->path('tick') }, 10, 'ticker: ticking');
    ctl_ok('freeze ticker', 'freeze', 'ticker');
    $t->wait_for(sub { $frozen->() == 1 }, 10, 'freeze: cgroup.events says frozen 1');
    $t->wait_for(sub { (pool_status('ticker') // {})->{state} eq 'frozen' }, 10, 'freeze: status says frozen');
    my $size = -s $t->path('tick');
    $t->stays(sub { -s $t->path('tick') == $size }, 0.5, 'freeze: the worker does not run');
    is($frozen->($t->cgroup_dir('sig') . '/cgroup.events'), 0, 'freeze: other pools are not frozen');
    ctl_ok('thaw ticker', 'thaw', 'ticker');
    $t->wait_for(sub { $frozen->() == 0 }, 10, 'thaw: cgroup.events says frozen 0');
    $t->wait_for(sub { -s $t->path('tick') > $size }, 10, 'thaw: the worker runs again');
    $t->wait_for(sub { (pool_status('ticker') // {})->{state} eq 'running' }, 10, 'thaw: status says running');
});

# --- reload ----------------------------------------------------------------

# (a pool more at the end: not where it started)
$t->scenario('reload adds a pool', { fds => 0 }, sub {
    ctl_ok('scale web 2 before the reload', 'scale', 'web', 2);
    wait_settled('web', 2);
    my %sig = $t->worker_map('sig');
    $t->write_config($CONFIG . $ADDED);
    my $mark = $t->mark;
    my $r = ctl_ok('reload', 'reload');
    like($r->{out}, qr/^1 added, 0 changed, 0 removed, 4 unchanged(?: \(some rescaled\))?\n  added: added\n(?:  rescaled: web\n)?\z/,
         'reload: prints what changed');
    $t->wait_log(qr/ info reload done: 1 added, /, since => $mark);
    $t->wait_for(sub { $t->workers('added') == 2 }, 10, 'reload: the added pool runs');
    is_deeply({ $t->worker_map('sig') }, \%sig, 'reload: sig keeps its workers');
    wait_settled('web', 3, 'reload: web has the count of the config again (the scale lasted until the reload)');
});

$t->scenario('reload of a broken config', sub {
    my $snapshot = sub { return { map { $_ => [ $t->workers($_) ] } qw(web sig ticker flaky added) } };
    my $before = $snapshot->();
    my $text = $CONFIG . $ADDED . qq{pool "broken" { command = "/bin/sleep 1000" }\nerror("broken on purpose")\n};
    my $line = () = $text =~ /\n/g;
    $t->write_config($text);
    my $mark = $t->mark;
    my $file = $t->conf;
    ctl_fails('reload of a broken config', 1, qr/^corralctl: \Q$file\E:$line: broken on purpose$/, 'reload');
    $t->wait_log(qr/ error reload failed, keeping the running configuration: /, since => $mark);
    $t->stays(sub { !$t->log_lines(qr/ worker started /, $mark) }, 0.5, 'broken reload: nothing started');
    is_deeply($snapshot->(), $before, 'broken reload: every pid kept');
    ok(!pool_status('broken'), 'broken reload: no pool "broken"');
    ctl_fails('status broken', 3, qr/no such pool: broken/, 'status', 'broken');
});

# --- where corralctl finds the socket ----------------------------------------

$t->scenario('where corralctl finds the socket', sub {
    my $r = $t->ctl('ping', { socket => undef, env => { CORRAL_SOCKET => $sock } });
    is($r->{code}, 0, 'CORRAL_SOCKET: used without -s');
    is($r->{out}, "pong\n", 'CORRAL_SOCKET: pong');
    $r = $t->ctl('ping', { socket => undef, env => { CORRAL_SOCKET => $t->path('nothing.sock') } });
    is($r->{code}, 5, 'CORRAL_SOCKET naming no socket: exit 5');
    like($r->{err}, qr/^corralctl: corrald is not running .*\Q${\ $t->path('nothing.sock')}\E/,
         'CORRAL_SOCKET naming no socket: says so, with the path');
    $r = $t->ctl('ping', { env => { CORRAL_SOCKET => $t->path('nothing.sock') } });
    is($r->{code}, 0, '-s wins over CORRAL_SOCKET');
    $r = $t->ctl('--socket', $sock, 'ping', { socket => undef, env => { CORRAL_SOCKET => undef } });
    is($r->{code}, 0, '--socket PATH');
    SKIP: {
        skip 'a socket exists at the default path /run/corral/control.sock', 2 if -e '/run/corral/control.sock';
        $r = $t->ctl('ping', { socket => undef, env => { CORRAL_SOCKET => undef } });
        is($r->{code}, 5, 'no -s, no CORRAL_SOCKET: the default path, nothing there: exit 5');
        like($r->{err}, qr{/run/corral/control\.sock}, 'no -s, no CORRAL_SOCKET: names the default path');
    }
});

# --- help and usage ----------------------------------------------------------

$t->scenario('help and usage', sub {
    my $r = $t->ctl('--help');
    is($r->{code}, 0, '--help: exit 0');
    for my $cmd (qw(status scale restart stop start signal freeze thaw reload ping version)) {
        like($r->{out}, qr/^\s+\Q$cmd\E\s/m, "--help lists $cmd");
    }
    $r = $t->ctl('help', 'restart');
    is($r->{code}, 0, 'help restart: exit 0');
    like($r->{out}, qr/^usage: corralctl restart .*--all-at-once/m, 'help restart: its usage');
    $r = $t->ctl('help', 'frobnicate');
    is($r->{code}, 2, 'help of an unknown command: exit 2');
    for my $case ([ 'no command', [], qr/^usage: corralctl / ],
                  [ 'unknown command', [ 'frobnicate' ], qr/^corralctl: unknown command "frobnicate"/ ],
                  [ 'scale without a count', [ 'scale', 'web' ], qr/^corralctl: wrong arguments for scale/ ],
                  [ 'scale with a bad count', [ 'scale', 'web', 'x' ], qr/^corralctl: wrong arguments for scale/ ],
                  [ 'restart with a bad worker id', [ 'restart', 'web/x' ], qr/^corralctl: wrong arguments for restart/ ],
                  [ 'signal without a signal', [ 'signal', 'web' ], qr/^corralctl: wrong arguments for signal/ ],
                  [ 'status of two pools', [ 'status', 'web', 'sig' ], qr/^corralctl: wrong arguments for status/ ],
                  [ 'unknown option', [ '--frobnicate', 'ping' ], qr/unrecognized option '--frobnicate'/ ]) {
        my ($name, $args, $re) = @$case;
        $r = $t->ctl(@$args);
        is($r->{code}, 2, "usage error, $name: exit 2");
        like($r->{err}, $re, "usage error, $name: says so on stderr");
        is($r->{out}, '', "usage error, $name: nothing on stdout");
    }
    is(scalar $t->workers('web'), 3, 'usage errors: web untouched');
});

$t->done;
