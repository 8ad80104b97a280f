package CorralTest;

# Test helper for corrald. Start reading at new(), start(), scenario()
# and done().
#
# A CorralTest owns one temporary directory (config, log, scripts) and at
# most one running corrald. It waits on conditions with deadlines (never a
# fixed sleep), finds workers and prototypes through /proc (t/lib/
# CorralProc.pm), and checks invariants: after every scenario of a file
# that reuses one corrald (scenario(), checkpoint(): no zombie, every
# process of corrald's in its cgroup base, no cgroup left without its
# worker, no alert, no sanitizer report, corrald's fds back to where they
# were), and after every test (done(): the same, then corrald stops with
# exit 0, no process and no cgroup left behind). Whatever happens, the END
# block kills everything a test started.

use strict;
use warnings;

use Cwd ();
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h _exit setpgid);
use Socket qw(SOCK_DGRAM);
use IO::Select;
use IO::Socket::UNIX;
use Test::More;
use Time::HiRes qw(sleep time);
use Time::Local ();

use CorralProc qw(slurp all_pids proc_stat proc_environ proc_cmdline pid_alive proc_age lua_worker_title
                  worker_identity find_workers find_prototypes descends_from describe fd_targets
                  unix_sockets cgroup_of cgroup_mount);
use CorralWait ();

our @EXPORT_OK = qw(proc_stat proc_environ proc_cmdline pid_alive proc_age log_time cgroup_of lua_worker_title
                    find_program descends_from free_port http_get);

my $ROOT = Cwd::abs_path(dirname(__FILE__) . '/../..');
our $CORRALD = defined $ENV{CORRALD}
    ? File::Spec->rel2abs($ENV{CORRALD})
    : "$ROOT/build/corrald";

# corralctl: $CORRALCTL, else the one beside corrald
our $CORRALCTL = defined $ENV{CORRALCTL}
    ? File::Spec->rel2abs($ENV{CORRALCTL})
    : dirname($CORRALD) . '/corralctl';

my @instances;       # every CorralTest made, for done() and END

# --- helpers ------------------------------------------------------------
#
# The /proc and cgroup readers (slurp, proc_stat, proc_environ,
# proc_cmdline, pid_alive, cgroup_of, describe, ...) are CorralProc's,
# imported here: CorralTest::slurp and the exports below still work.

# The time of a log line "2026-12-05T14:45:01.123+01:00 LEVEL ..." (RFC
# 3339, local with its offset) in seconds since the epoch.
sub log_time {
    my ($line) = @_;
    $line =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|([+-])(\d\d):(\d\d)) / or return undef;
    my $off = $8 eq 'Z' ? 0 : ($9 eq '-' ? -1 : 1) * ($10 * 3600 + $11 * 60);
    return Time::Local::timegm($6, $5, $4, $3, $2 - 1, $1) + ($7 // 0) - $off;
}

# A free loopback port (the kernel's pick, released at once).
sub free_port {
    require IO::Socket::INET;
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1, ReuseAddr => 1)
        or die "free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# GET http://$addr$path (HTTP/1.0): (status, body, headers), or (undef, why).
sub http_get {
    my ($addr, $path) = @_;
    require IO::Socket::INET;
    require IO::Select;
    my $s = IO::Socket::INET->new(PeerAddr => $addr, Timeout => 10) or return (undef, "connect: $!");
    print $s "GET $path HTTP/1.0\r\nHost: x\r\n\r\n";
    my ($in, $sel) = ('', IO::Select->new($s));
    while ($sel->can_read(10)) { last unless sysread $s, $in, 65536, length $in }
    return $in =~ m{^HTTP/1\.\d (\d+)[^\n]*\r\n(.*?)\r\n\r\n(.*)}s ? ($1, $3, $2) : (undef, 'no answer');
}

# The full path of an executable found in the standard PATH, or undef.
sub find_program {
    my ($name) = @_;
    for my $dir (qw(/usr/local/bin /usr/bin /bin /usr/sbin /sbin)) {
        return "$dir/$name" if -x "$dir/$name" && !-d _;
    }
    return undef;
}

# --- setup -------------------------------------------------------------

# new(config => LUA_TEXT, env => { NAME => value or undef or CODE },
#     control => PATH or undef, wrap => [ PROGRAM, ARGS ])
# control: the control socket start() gives corrald with -s (default
# TMP/control.sock; undef: no -s, the config's settings.control decides).
# An env value that is a CODE ref is called in corrald's process, just
# before the exec (so $$ there is corrald's pid). wrap runs corrald through
# PROGRAM ARGS (e.g. systemd-socket-activate), which must exec it.
sub new {
    my ($class, %opt) = @_;
    -x $CORRALD or BAIL_OUT("corrald binary not found or not executable: $CORRALD");
    my $dir = tempdir('corral-test-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $self = bless {
        dir  => $dir,
        conf => "$dir/corral.lua",
        env  => $opt{env} || {},
        pid  => undef,
        runs => '',
        wrap => $opt{wrap} || [],
    }, $class;
    # each test its own cgroup base, so that tests (and a corrald the
    # machine runs) never share one; cgroup => undef leaves it to corrald
    $self->{cgroup} = exists $opt{cgroup} ? $opt{cgroup} : '/' . ($dir =~ s{.*/}{}r);
    $self->{control} = exists $opt{control} ? $opt{control} : "$dir/control.sock";
    push @instances, $self;
    $self->write_config($opt{config}) if defined $opt{config};
    return $self;
}

sub dir  { $_[0]{dir} }
# The filesystem path of this corrald's cgroup base (or of PATH below it).
sub cgroup_dir {
    my ($self, $sub) = @_;
    my $base = cgroup_mount() . ($self->{cgroup} // '/corral');
    return defined $sub ? "$base/$sub" : $base;
}
# This corrald's cgroup base (or PATH below it) as /proc/PID/cgroup names
# it: relative to the cgroup2 mount.
sub cgroup_rel {
    my ($self, $sub) = @_;
    my $base = $self->{cgroup} // '/corral';
    return defined $sub ? "$base/$sub" : $base;
}

# The content of FILE in the cgroup SUB (below the base), without the
# final newline; undef if it cannot be read.
sub cgroup_read {
    my ($self, $sub, $file) = @_;
    return CorralProc::cg_read($self->cgroup_rel($sub), $file);
}

# The value of KEY in a flat-keyed cgroup file ("populated 1"), or undef.
sub cgroup_key {
    my ($self, $sub, $file, $key) = @_;
    return CorralProc::cg_keys($self->cgroup_rel($sub), $file)->{$key};
}

# The pids in the cgroup SUB's cgroup.procs, sorted (empty if none or gone).
sub cgroup_procs {
    my ($self, $sub) = @_;
    return CorralProc::cgroup_procs($self->cgroup_rel($sub));
}

# The names of the cgroups directly below SUB (below the base if undef),
# sorted.
sub cgroup_children {
    my ($self, $sub) = @_;
    return CorralProc::cgroup_dirs($self->cgroup_rel($sub));
}

# The inode of the cgroup SUB (its cgroup id: a cgroup removed and made
# again has a new one), or undef if it does not exist.
sub cgroup_ino {
    my ($self, $sub) = @_;
    my @st = stat $self->cgroup_dir($sub) or return undef;
    return $st[1];
}

sub conf { $_[0]{conf} }
# The control socket corrald was (or will be) given with -s, or undef.
sub socket_path { $_[0]{control} }
sub pid  { $_[0]{pid} }
sub path { "$_[0]{dir}/$_[1]" }

# Lua that %LUA_HELPERS% (a line of its own) stands for in a config:
# rec(...) appends one line, its arguments joined by spaces, to
# TMP/hooks.log (O_APPEND, one small write: lines from concurrent workers
# do not mix); idle() sleeps until the worker is told to stop.
my $LUA_HELPERS = <<'EOF';
local function rec(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  local f = assert(io.open("%TMP%/hooks.log", "a"))
  f:write(table.concat(parts, " "), "\n")
  f:close()
end
local function idle()
  while not corral.sleep(3600) do end
end
EOF

sub subst {
    my ($self, $text) = @_;
    $text =~ s/%LUA_HELPERS%\n/$LUA_HELPERS/g;
    $text =~ s/%TMP%/$self->{dir}/g;
    return $text;
}

# Writes NAME in the temp dir (%LUA_HELPERS% and %TMP% substituted),
# atomically.
sub write_file {
    my ($self, $name, $text, $mode) = @_;
    my $path = $self->path($name);
    make_path(dirname($path));
    open my $fh, '>', "$path.new" or die "$path.new: $!";
    print $fh $self->subst($text);
    close $fh or die "$path.new: $!";
    chmod $mode, "$path.new" if defined $mode;
    rename "$path.new", $path or die "rename $path: $!";
    return $path;
}

sub write_config {
    my ($self, $text) = @_;
    return $self->write_file('corral.lua', $text);
}

# --- child processes ---------------------------------------------------

# Sets the environment of a child, in the child: CORRAL_TEST_DIR, then
# new()'s env, then %$extra (a value: a string; undef to remove the
# variable; a CODE ref, called here, its result as the value).
sub child_env {
    my ($self, $extra) = @_;
    $ENV{CORRAL_TEST_DIR} = $self->{dir};
    for my $env ($self->{env}, $extra || {}) {
        for my $k (keys %$env) {
            my $v = $env->{$k};
            $v = $v->() if ref $v eq 'CODE';
            if (defined $v) { $ENV{$k} = $v }
            else { delete $ENV{$k} }
        }
    }
}

# The one place that starts a child process (corrald, corrald -t,
# corralctl, ...): forks; the child gets its own process group, cwd the
# temp dir, stdin from $io{stdin} (a file handle, or a path; default
# /dev/null), stdout to the file $io{stdout} (appended to with append =>
# 1), stderr to the file $io{stderr} or, when that is undef, to stdout;
# its environment from child_env($io{env}); then it execs @$cmd (exit 127
# if it cannot; 126 if the set-up failed). Returns the pid.
sub spawn {
    my ($self, $cmd, %io) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        setpgid(0, 0);
        chdir $self->{dir} or _exit(126);
        my $in = $io{stdin} // '/dev/null';
        (ref $in ? open(STDIN, '<&', $in) : open(STDIN, '<', $in)) or _exit(126);
        open(STDOUT, $io{append} ? '>>' : '>', $io{stdout}) or _exit(126);
        (defined $io{stderr} ? open(STDERR, '>', $io{stderr}) : open(STDERR, '>&', \*STDOUT)) or _exit(126);
        $self->child_env($io{env});
        { no warnings q(exec); exec { $cmd->[0] } @$cmd; }
        _exit(127);
    }
    setpgid($pid, $pid);
    return $pid;
}

# Waits up to $timeout seconds (default 10) for the child $pid to exit,
# reading the notify socket meanwhile (a full one would block corrald):
# its wait status, or undef when it did not exit in time (or was not a
# child).
sub reap {
    my ($self, $pid, $timeout) = @_;
    my $status;
    $self->poll(sub {
        $self->notify_keep;
        my $r = waitpid $pid, WNOHANG;
        $status = $? if $r == $pid;
        return $r == $pid || $r < 0;
    }, $timeout);
    $self->notify_keep;
    return $status;
}

# Starts @$cmd with spawn() (stdin /dev/null, stdout and stderr to files
# of their own; %$env added to its environment) without waiting: a handle
# for command_wait.
sub command_spawn {
    my ($self, $cmd, $env) = @_;
    my $n = ++$self->{ncmd};
    my ($out, $err) = ($self->path("cmd.$n.out"), $self->path("cmd.$n.err"));
    my $pid = $self->spawn($cmd, stdout => $out, stderr => $err, env => $env);
    return { pid => $pid, out => $out, err => $err, started => time };
}

# Waits for a command_spawn (its process group killed after $timeout
# seconds, default 15): { code, out, err, timeout, elapsed } (code undef
# if killed). Its output counts for the sanitizer and alert checks.
sub command_wait {
    my ($self, $h, $timeout) = @_;
    my $status = $self->reap($h->{pid}, $timeout // 15);
    my $in_time = defined $status;
    if (!$in_time) {
        kill 'KILL', -$h->{pid};
        $status = waitpid($h->{pid}, 0) == $h->{pid} ? $? : undef;
    }
    my %res = (out => slurp($h->{out}) // '', err => slurp($h->{err}) // '',
               timeout => !$in_time, elapsed => time - $h->{started});
    $res{code} = defined $status && WIFEXITED($status) ? WEXITSTATUS($status) : undef;
    unlink $h->{out}, $h->{err};
    $self->{runs} .= $res{out} . $res{err};
    return \%res;
}

# --- running corrald ---------------------------------------------------

# Starts `corrald -v -c FILE [-g CGROUP] [-s SOCKET] @args` in its own
# process group, cwd the temp dir, output to TMP/log (-s unless @args has
# one or new() was given control => undef). Its stdin is a pipe kept open
# here (not /dev/null), so that a worker's /dev/null stdin is corrald's
# doing.
sub start {
    my ($self, @args) = @_;
    die "corrald already running" if $self->{pid};
    pipe my $r, my $w or die "pipe: $!";
    my @g = $self->{cgroup} ? ('-g', $self->{cgroup}) : ();
    my @s = $self->{control} && !grep({ $_ eq '-s' } @args) ? ('-s', $self->{control}) : ();
    my @cmd = (@{ $self->{wrap} }, $CORRALD, '-v', '-c', $self->{conf}, @g, @s, @args);
    my $pid = $self->spawn(\@cmd, stdin => $r, stdout => $self->path('log'), append => 1);
    $self->{ran} = 1;
    close $r;
    $self->{stdin} = $w;
    $self->{pid} = $pid;
    $self->{started_at} = time;
    $self->{since} = $self->since_now(0);
    return $pid;
}

sub signal {
    my ($self, $sig) = @_;
    kill $sig, $self->{pid} or die "kill $sig $self->{pid}: $!";
}

sub reload { $_[0]->signal('HUP') }

# Waits for corrald to exit; returns its exit code (undef when killed by a
# signal or on timeout, with a failed test).
sub wait_exit {
    my ($self, $timeout) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $pid = $self->{pid} or die "corrald not running";
    my $status = $self->reap($pid, $timeout // 10);
    if (!defined $status) {
        fail("corrald exits within ${\($timeout // 10)}s");
        $self->diag_tail;
        diag(join "\n", 'still running under corrald:', map { describe($_, 1) } $self->descendants);
        $self->kill_all;
        return undef;
    }
    $self->{pid} = undef;
    close $self->{stdin} if $self->{stdin};
    $self->{stdin} = undef;
    $self->{status} = $status;
    if (WIFSIGNALED($status)) {
        diag("corrald killed by signal " . WTERMSIG($status));
        return undef;
    }
    return WEXITSTATUS($status);
}

sub stop {
    my ($self, $timeout) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $self->signal('TERM');
    return $self->wait_exit($timeout // 10);
}

# Runs `corrald @args` to completion (config checks, usage): returns
# { code, out, err, timeout, elapsed } (code undef if killed; killed after
# the timeout, a last argument { timeout => SECONDS }, default 10).
sub run {
    my ($self, @args) = @_;
    my $timeout = ref $args[-1] eq 'HASH' ? pop(@args)->{timeout} : undef;
    return $self->command_wait($self->command_spawn([ $CORRALD, @args ]), $timeout // 10);
}

# `corrald -t -c FILE @args`
sub run_check {
    my ($self, @args) = @_;
    return $self->run('-t', '-c', $self->{conf}, @args);
}

# --- the control socket ------------------------------------------------

# Starts `corralctl -s SOCKET --no-wait @args` without waiting; a last
# hash argument: socket => PATH (undef: no -s), env => { NAME => value or
# undef }, wrap => [ argv before corralctl, e.g. setpriv ... ], program =>
# another corralctl binary, wait => 1 (no --no-wait: stop, start, restart,
# scale and reload wait until done, as they do by default; the tests
# that do not ask for it wait on conditions of their own). Returns a
# handle for ctl_wait.
sub ctl_spawn {
    my ($self, @args) = @_;
    my %opt = ref $args[-1] eq 'HASH' ? %{ pop @args } : ();
    my $sock = exists $opt{socket} ? $opt{socket} : $self->{control};
    my @s = defined $sock ? ('-s', $sock) : ();
    my @w = $opt{wait} ? () : ('--no-wait');
    return $self->command_spawn([ @{ $opt{wrap} || [] }, $opt{program} // $CORRALCTL, @s, @w, @args ], $opt{env});
}

# Waits for a ctl_spawn (killed after $timeout seconds, default 15):
# { code, out, err, timeout, elapsed } (code undef if killed).
sub ctl_wait {
    my ($self, $h, $timeout) = @_;
    return $self->command_wait($h, $timeout);
}

# Runs `corralctl -s SOCKET @args` (options as ctl_spawn, and timeout):
# { code, out, err, timeout, elapsed }.
sub ctl {
    my ($self, @args) = @_;
    my $timeout = ref $args[-1] eq 'HASH' ? $args[-1]{timeout} : undef;
    return $self->ctl_wait($self->ctl_spawn(@args), $timeout);
}

# A connected IO::Socket::UNIX to the control socket (or PATH), or undef.
sub connect_control {
    my ($self, $path) = @_;
    require IO::Socket::UNIX;
    return IO::Socket::UNIX->new(Type => Socket::SOCK_STREAM(), Peer => $path // $self->{control});
}

# Sends $bytes as they are on a new connection, then reads until corrald
# closes it (or $opt{timeout}, default 10 s): { reply => TEXT (undef if the
# connection failed), closed => 1 if corrald closed it, elapsed, error }.
sub raw_request {
    my ($self, $bytes, %opt) = @_;
    require IO::Select;
    my $start = time;
    my $s = $self->connect_control($opt{socket}) or return { error => "connect: $!" };
    local $SIG{PIPE} = 'IGNORE';
    my $off = 0;
    my $sel = IO::Select->new($s);
    my $deadline = $start + ($opt{timeout} // 10);
    my ($reply, $closed, $error) = ('', 0);
    $s->blocking(0);
    while (1) {
        my $left = $deadline - time;
        last if $left <= 0;
        my $want_write = $off < length $bytes;
        my ($r, $w) = IO::Select->select($sel, $want_write ? $sel : undef, undef, $left);
        if ($w && @$w) {
            my $n = syswrite $s, $bytes, 65536, $off;
            if (defined $n) { $off += $n }
            elsif (!$!{EAGAIN}) { $error = "write: $!"; $bytes = substr $bytes, 0, $off }
        }
        if ($r && @$r) {
            my $n = sysread $s, my $buf, 65536;
            if (!defined $n) {
                next if $!{EAGAIN};
                $error = "read: $!";    # ECONNRESET after a too large request
                $closed = 1;
                last;
            }
            if ($n == 0) { $closed = 1; last }
            $reply .= $buf;
        }
    }
    close $s;
    return { reply => $reply, closed => $closed, error => $error, elapsed => time - $start };
}

# Sends one request (a hash, encoded as one JSON line) and returns the
# decoded answer, or undef when there is none.
sub request {
    my ($self, $req, %opt) = @_;
    require JSON::PP;
    my $r = $self->raw_request(JSON::PP->new->canonical->encode($req) . "\n", %opt);
    return undef unless defined $r->{reply} && $r->{reply} =~ /\n\z/;
    return eval { JSON::PP->new->utf8->decode($r->{reply}) };
}

# The "pools" of a status request, as hashes by name (undef on failure).
sub status {
    my ($self, $pool) = @_;
    my $r = $self->request({ command => 'status', defined $pool ? (pool => $pool) : () });
    return undef unless $r && $r->{ok};
    return { map { $_->{name} => $_ } @{ $r->{pools} } };
}

# A test: the control socket answers a ping within $timeout seconds.
sub wait_control {
    my ($self, $timeout) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return $self->wait_for(sub {
        my $r = -S $self->{control} && $self->request({ command => 'ping' }, timeout => 2);
        return $r && $r->{ok};
    }, $timeout // 10, "control socket $self->{control} answers");
}

# --- the service manager's notify socket ---------------------------------

# Plays systemd's part: a datagram socket TMP/notify.sock that corrald
# finds in NOTIFY_SOCKET. Call before start(). Messages are read with
# notify_next/notify_until/notify_during/notify_drain (read them while
# corrald is busy: see notify_drain); every message read is kept in
# notify_log as [ time, text ]. Messages matching notify_skip (a regex,
# e.g. qr/^WATCHDOG=1$/) are logged but not returned.
sub notify_listen {
    my ($self, %opt) = @_;
    my $path = $self->path('notify.sock');
    unlink $path;
    $self->{notify} = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $path)
        or die "notify socket $path: $!";
    $self->{notify_log} = [];
    $self->{notify_queue} = [];
    $self->{notify_skip} = $opt{skip};
    $self->{env}{NOTIFY_SOCKET} = $path;
    return $path;
}

sub notify_log { @{ $_[0]{notify_log} || [] } }

# The next message (text), or undef when none comes within $timeout.
sub notify_next {
    my ($self, $timeout) = @_;
    my $sock = $self->{notify} or die "notify_listen first";
    my $sel = IO::Select->new($sock);
    my $deadline = time + ($timeout // 10);
    while (1) {
        my $buf = shift @{ $self->{notify_queue} };
        if (!defined $buf) {
            my $left = $deadline - time;
            $left = 0 if $left < 0;
            return undef unless $sel->can_read($left);
            defined $sock->recv($buf, 65536) or die "recv: $!";
            push @{ $self->{notify_log} }, [ time, $buf ];
        }
        next if $self->{notify_skip} && $buf =~ $self->{notify_skip};
        return $buf;
    }
}

# Reads what is waiting on the socket into the queue notify_next takes
# from first: keeps corrald from blocking while the test waits on
# something else (wait_exit does it).
sub notify_keep {
    my ($self) = @_;
    my $sock = $self->{notify} or return;
    my $sel = IO::Select->new($sock);
    while ($sel->can_read(0)) {
        my $buf;
        defined $sock->recv($buf, 65536) or last;
        push @{ $self->{notify_log} }, [ time, $buf ];
        push @{ $self->{notify_queue} }, $buf;
    }
}

# Messages up to and including the first that matches $re, read within
# $timeout; all of them read (without a match) when it does not come.
sub notify_until {
    my ($self, $re, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    my @got;
    while (defined(my $m = $self->notify_next($deadline - time))) {
        push @got, $m;
        last if $m =~ $re;
    }
    return @got;
}

# The messages already waiting, without waiting for more. A test must read
# while corrald works: like systemd's, this socket has a short queue
# (net.unix.max_dgram_qlen), and corrald's sd_notify() blocks when it is full.
sub notify_drain {
    my ($self) = @_;
    my @got;
    while (defined(my $m = $self->notify_next(0))) {
        push @got, $m;
    }
    return @got;
}

# Every message that arrives within the next $duration seconds.
sub notify_during {
    my ($self, $duration) = @_;
    my $deadline = time + $duration;
    my @got;
    while (time < $deadline) {
        my $m = $self->notify_next($deadline - time);
        push @got, $m if defined $m;
    }
    return @got;
}

# corrald's own notify socket, as workers see it in NOTIFY_SOCKET: the
# name is random, so it is looked up (cached per corrald pid) among the
# abstract sockets in /proc/net/unix whose inode is one of corrald's fds.
sub worker_notify_socket {
    my ($self) = @_;
    my $pid = $self->{pid} or die 'corrald is not running';
    return $self->{notify_name}{$pid} if $self->{notify_name}{$pid};
    my %ino;
    opendir(my $dh, "/proc/$pid/fd") or die "/proc/$pid/fd: $!";
    for my $fd (readdir $dh) {
        my $l = readlink("/proc/$pid/fd/$fd") // next;
        $ino{$1} = 1 if $l =~ /^socket:\[(\d+)\]$/;
    }
    closedir $dh;
    for my $line (split /\n/, slurp('/proc/net/unix')) {
        my @f = split ' ', $line;
        next unless @f >= 8 && $ino{ $f[6] } && $f[7] =~ m{^\@corral/[0-9a-f]+/notify$};
        return $self->{notify_name}{$pid} = $f[7];
    }
    die "corrald (pid $pid) has no notify socket";
}

# Sends a datagram to corrald's own notify socket from this (the test)
# process, which is in no worker's cgroup.
sub notify_send {
    my ($self, $text) = @_;
    (my $addr = $self->worker_notify_socket) =~ s/^\@/\0/;
    my $sock = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Peer => $addr)
        or die "connect to corrald's notify socket: $!";
    defined $sock->send($text) or die "send: $!";
    close $sock;
}

# --- waiting -----------------------------------------------------------

# Polls $cond until it returns true or $timeout seconds pass; returns the
# last value of $cond. Not a test by itself.
sub poll {
    my ($self, $cond, $timeout) = @_;
    return CorralWait::poll_until($cond, $timeout);
}

# A test: $cond becomes true within $timeout seconds (the log's tail if
# not).
sub wait_for {
    my ($self, $cond, $timeout, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return CorralWait::wait_for($cond, $timeout, $name, sub { $self->diag_tail });
}

# A test: $cond stays true for all of $duration seconds (for things that
# must not happen).
sub stays {
    my ($self, $cond, $duration, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return CorralWait::stays($cond, $duration, $name, sub { $self->diag_tail });
}

# --- the log -----------------------------------------------------------

sub log {
    my ($self) = @_;
    return slurp($self->path('log')) // '';
}

# The complete lines (a last one without its newline is still being
# written) of file NAME in the temp dir; none if it does not exist. With
# $re, only the matching ones.
sub file_lines {
    my ($self, $name, $re) = @_;
    my $text = slurp($self->path($name)) // return ();
    $text =~ s/[^\n]*\z//;
    my @lines = split /\n/, $text;
    @lines = grep { $_ =~ $re } @lines if $re;
    return @lines;
}

# Offset to pass as `since` to wait_log and log_lines.
sub mark { length $_[0]->log }

sub log_lines {
    my ($self, $re, $since) = @_;
    my $text = substr $self->log, $since // 0;
    return grep { $_ =~ $re } split /\n/, $text;
}

# A test: the log has a line matching $re (count => N: N such lines) within
# the timeout. wait_log($re, 5) or wait_log($re, timeout => 5, count => 2,
# since => $mark, name => '...'). Returns the matching lines.
sub wait_log {
    my ($self, $re, @opt) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my %opt = @opt == 1 ? (timeout => $opt[0]) : @opt;
    my $count = $opt{count} // 1;
    my @lines;
    my $ok = $self->poll(sub {
        @lines = $self->log_lines($re, $opt{since});
        return @lines >= $count;
    }, $opt{timeout} // 10);
    my $name = $opt{name} // "log has " . ($count > 1 ? "$count lines" : "a line") . " matching $re";
    ok($ok, $name) or do {
        diag("found " . scalar(@lines) . " of $count");
        $self->diag_tail;
    };
    return @lines;
}

sub diag_tail {
    my ($self, $n) = @_;
    my @lines = split /\n/, $self->log;
    $n //= 30;
    @lines = @lines[-$n .. -1] if @lines > $n;
    diag("log tail ($self->{dir}/log):\n" . join("\n", map { "  | $_" } @lines));
}

# --- processes ---------------------------------------------------------

# Is $pid corrald or one of its descendants?
sub descends {
    my ($self, $pid) = @_;
    my $top = $self->{pid} or return 0;
    return descends_from($pid, $top);
}

# Live workers of $pool: processes under corrald that are the pool's
# workers, exec'd (CORRAL_POOL=$pool in their environment) or Lua ones
# (titled "corral: worker $pool/ID"), whose parent is not one (a worker's
# own children are not workers). Sorted pids.
sub workers {
    my ($self, $pool) = @_;
    return find_workers($pool, sub {
        my ($pid, $st) = @_;
        $self->descends($pid) or return 0;
        $self->seen($pid, $st);
        return 1;
    });    # a count in scalar context
}

# Worker ids of $pool, sorted.
sub worker_ids {
    my ($self, $pool) = @_;
    my %ids = $self->worker_map($pool);
    my @sorted = sort { $a <=> $b } keys %ids;
    return @sorted;
}

# True when the live workers of $pool have ids 1..$n exactly: settled, with
# no surge worker of a rolling replacement (a temporary id) left.
sub ids_settled {
    my ($self, $pool, $n) = @_;
    return join(' ', $self->worker_ids($pool)) eq join(' ', 1 .. $n);
}

# id => pid for the live workers of $pool.
sub worker_map {
    my ($self, $pool) = @_;
    return map { ((worker_identity($_))[1] // '?') => $_ } $self->workers($pool);
}

# Remembers a process found under corrald (pid and start time), so that
# leftovers() finds it even when nothing else ties it to the temp dir
# (a Lua worker's environment is not visible, its cwd may be /).
sub seen {
    my ($self, $pid, $st) = @_;
    $st //= proc_stat($pid) or return;
    $self->{seen}{$pid} = $st->{starttime};
}

# id => pid of $pool's live workers as the log names them ("worker
# started"): the latest per id. Finds Lua workers too, whose
# /proc/PID/environ (the one they were born with) has no CORRAL_POOL.
sub started_workers {
    my ($self, $pool) = @_;
    my %ids;
    for ($self->log_lines(qr/ info worker started pool=\Q$pool\E worker=\d+ pid=\d+$/)) {
        /worker=(\d+) pid=(\d+)$/ and $ids{$1} = $2;
    }
    return map { pid_alive($ids{$_}) ? ($_ => $ids{$_}) : () } keys %ids;
}

# pool => pid of the live prototypes of this corrald (its children).
sub prototypes {
    my ($self) = @_;
    my $top = $self->{pid} or return ();
    return find_prototypes(sub {
        my ($pid, $st) = @_;
        $st->{ppid} == $top or return 0;
        $self->seen($pid, $st);
        return 1;
    });
}

sub prototype_pid {
    my ($self, $pool) = @_;
    my %p = $self->prototypes;
    return $p{$pool};
}

sub zombies {
    my ($self) = @_;
    my $top = $self->{pid} or return ();
    return grep {
        my $st = proc_stat($_);
        $st && $st->{ppid} == $top && $st->{state} eq 'Z';
    } all_pids();
}

sub descendants {
    my ($self) = @_;
    return grep { $_ != $self->{pid} && $self->descends($_) } all_pids();
}

# Processes that belong to this test: command line naming the temp dir,
# cwd inside it, CORRAL_TEST_DIR=<dir> in the environment, in a cgroup
# below this instance's base, or a worker or prototype seen under this
# test's corrald (same pid and start time).
sub leftovers {
    my ($self) = @_;
    my $dir = $self->{dir};
    my $cg = $self->{cgroup} ? "$self->{cgroup}/" : undef;
    my @found;
    for my $pid (all_pids()) {
        next if $pid == $$ || ($self->{pid} && $pid == $self->{pid});
        my $cwd = readlink("/proc/$pid/cwd") // '';
        if (index(proc_cmdline($pid), $dir) >= 0
            || $cwd eq $dir || index($cwd, "$dir/") == 0
            || (proc_environ($pid)->{CORRAL_TEST_DIR} // '') eq $dir
            || ($cg && index(cgroup_of($pid) // '', $cg) == 0)) {
            push @found, $pid if pid_alive($pid);
        }
    }
    # workers and prototypes seen under corrald, if still the same process
    my %found = map { $_ => 1 } @found;
    for my $pid (sort { $a <=> $b } keys %{ $self->{seen} || {} }) {
        next if $found{$pid} || ($self->{pid} && $pid == $self->{pid});
        my $st = proc_stat($pid) or next;
        push @found, $pid if $st->{state} ne 'Z' && $st->{starttime} == $self->{seen}{$pid};
    }
    return @found;
}

# Kills corrald, everything under it and everything left: SIGKILL.
sub kill_all {
    my ($self) = @_;
    if (my $pid = $self->{pid}) {
        kill 'STOP', $pid;
        my @tree = $self->descendants;
        kill 'KILL', $pid, @tree;
        kill 'KILL', -$pid;
        waitpid $pid, 0;
        $self->{pid} = undef;
    }
    for (1 .. 20) {
        my @left = $self->leftovers or last;
        kill 'KILL', @left;
        sleep $CorralWait::POLL;
    }
    # a corrald killed here leaves its cgroups: remove them, deepest first
    if ($self->{cgroup} && -d (my $cg = $self->cgroup_dir)) {
        for my $d (reverse sort split /\n/, `find $cg -mindepth 1 -type d 2>/dev/null`) {
            if (open my $fh, '>', "$d/cgroup.kill") { print $fh "1"; close $fh }
            rmdir $d;
        }
        rmdir $cg;
    }
}

# --- invariants --------------------------------------------------------
#
# Files that reuse one corrald for many scenarios check the invariants
# after each one, without stopping corrald:
#
#   $t->scenario('scale up and down', sub { ... });
#   $t->scenario('reload adds a pool', { fds => 0 }, sub { ... });
#
# or, in a file read from top to bottom, $t->checkpoint('NAME') at the end
# of each part (the invariants since the last checkpoint, or since
# start()). done() checks the same, then stops corrald.

# Runs CODE (no arguments), then checkpoint(NAME, %opt) for all that
# happened since CODE began: see checkpoint. Options, a hash ref before
# CODE: fds => 0 when the scenario does not end where it started (more or
# fewer pools or workers than at its start), to leave out the fd count.
# Returns what checkpoint returns.
sub scenario {
    my ($self, $name, @rest) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $code = pop @rest;
    my %opt = %{ $rest[0] || {} };
    note("scenario: $name");
    $self->{since} = $self->since_now(1);
    $code->();
    return $self->checkpoint($name, %opt);
}

# Tests, named "after NAME: ...", that since the last checkpoint (or the
# start of the scenario, or start()):
#   - no zombie child of corrald stays (polled: it may be reaped late);
#   - corrald and every process under it are in its cgroup base;
#   - no worker cgroup POOL/ID is left without its live worker ID of
#     POOL (polled: corrald removes an emptied cgroup asynchronously);
#   - no alert line and no sanitizer report in corrald's log, nor in the
#     output of what run() and ctl() ran;
#   - corrald has as many open fds as at the start (polled, once no
#     control connection is open: a finished control connection's or an
#     exited worker's fds close asynchronously); left out with fds => 0,
#     after start() (no settled count to compare with) and when corrald
#     is not the one that ran at the start.
# The process and cgroup checks need corrald running; the cgroup ones a
# cgroup base that exists (not the fallback without cgroups). Returns true
# when all held. The next checkpoint starts from here.
sub checkpoint {
    my ($self, $name, %opt) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $since = $self->{since} || $self->since_now(0);
    my $label = "after $name";
    my $ok = 1;
    if ($self->{pid}) {
        $ok = $self->check_tree($label) && $ok;
        if (($opt{fds} // 1) && defined $since->{fds} && $since->{pid} == $self->{pid}) {
            $ok = $self->check_fds($label, $since->{fds}) && $ok;
        }
    }
    $ok = $self->check_output($label, $since->{log}, $since->{runs}) && $ok;
    $self->{since} = $self->since_now(1);
    return $ok;
}

# Where the next checkpoint starts from: the log's length, what run() and
# ctl() have printed so far, and (with $fds, corrald running) corrald's
# open fds once no control connection is open.
sub since_now {
    my ($self, $fds) = @_;
    my %since = (log => $self->mark, runs => length $self->{runs}, pid => $self->{pid} // 0);
    $since{fds} = $self->settled_fds(undef, 5) if $fds && $self->{pid};
    return \%since;
}

# corrald's open fds (fd => target), polled for up to $timeout seconds
# until no control connection is open and, when $count is given, there are
# $count of them; the last look either way.
sub settled_fds {
    my ($self, $count, $timeout) = @_;
    my ($fds, $seen, $since) = ({}, '', 0);
    $self->poll(sub {
        $fds = fd_targets($self->{pid});
        return 0 if $self->control_connections($fds);
        # the same fds for a while: a worker's channel closes when it
        # execs, a moment after it was counted ready
        my $now = join ' ', map { "$_=$fds->{$_}" } sort { $a <=> $b } keys %$fds;
        ($seen, $since) = ($now, time) if $now ne $seen;
        return time - $since >= 0.3 && (!defined $count || keys %$fds == $count);
    }, $timeout);
    return $fds;
}

# The control connections among $fds (fd => target): sockets connected to
# the control socket's path.
sub control_connections {
    my ($self, $fds) = @_;
    my $path = $self->{control} // return ();
    my $socks = unix_sockets();
    return grep {
        my $s = $fds->{$_} =~ /^socket:\[(\d+)\]$/ ? $socks->{$1} : undef;
        $s && $s->{state} eq '03' && ($s->{path} // '') eq $path;
    } keys %$fds;
}

# A test: corrald's fd count comes back to that of $before (fd =>
# target); shows what was opened and closed if not.
sub check_fds {
    my ($self, $label, $before) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $n = keys %$before;
    my $now = $self->settled_fds($n, 10);
    my $ok = ok(keys %$now == $n, "$label: corrald has $n open fds, as before");
    if (!$ok) {
        my @diff = ((map { "  opened: fd $_ -> $now->{$_}" }
                     grep { ($before->{$_} // '') ne $now->{$_} } sort { $a <=> $b } keys %$now),
                    (map { "  closed: fd $_ -> $before->{$_}" }
                     grep { ($now->{$_} // '') ne $before->{$_} } sort { $a <=> $b } keys %$before));
        diag(join "\n", "corrald had $n open fds, now " . scalar(keys %$now) . ':', @diff);
    }
    return $ok;
}

# Processes of corrald's (corrald itself and all under it) that are not in
# its cgroup base; none when the base does not exist.
sub misplaced {
    my ($self) = @_;
    my $top = $self->{pid} or return ();
    return () unless -d $self->cgroup_dir;
    my $base = $self->cgroup_rel;
    return grep {
        my $cg = cgroup_of($_);
        defined $cg && index($cg, "$base/") != 0 && pid_alive($_);
    } $top, $self->descendants;
}

# The worker cgroups below the base that should be gone: POOL/ID with no
# live worker ID of POOL. (POOL/prototype is not one: corrald keeps it,
# empty, while the pool has no prototype.)
sub stray_cgroups {
    my ($self) = @_;
    return () unless $self->{cgroup} && -d $self->cgroup_dir;
    my @stray;
    for my $pool (grep { $_ ne 'corrald' } $self->cgroup_children) {
        my %ids = $self->worker_map($pool);
        push @stray, map { "$pool/$_" } grep { /^\d+$/ && !$ids{$_} } $self->cgroup_children($pool);
    }
    return @stray;
}

# Tests: no zombie child of corrald, no process of its outside its cgroup
# base, no stray cgroup (see checkpoint). True when all held.
sub check_tree {
    my ($self, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = $self->wait_for(sub { !$self->zombies }, 5, "$label: no zombie child of corrald");
    my $in = $self->poll(sub { !$self->misplaced }, 5);
    ok($in, "$label: corrald and its processes are in its cgroup base")
        or diag(join "\n", map { describe($_) } $self->misplaced);
    my $clean = $self->poll(sub { !$self->stray_cgroups }, 10);
    ok($clean, "$label: no worker cgroup left without its worker")
        or diag(join "\n", 'left:', map({ '  ' . $self->cgroup_rel($_) . ': ' . join(' ', $self->cgroup_procs($_)) } $self->stray_cgroups),
                'processes under corrald:', map { '  ' . describe($_) } $self->descendants);
    return $ok && $in && $clean;
}

# Tests: no alert and no sanitizer report in the log from offset $log on,
# nor in what run() and ctl() printed from offset $runs on.
sub check_output {
    my ($self, $label, $log, $runs) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @lines = split /\n/, substr($self->log, $log // 0) . "\n" . substr($self->{runs}, $runs // 0);
    my @alerts = grep { /^\S+ alert / } @lines;
    my $ok = ok(!@alerts, "$label: no alert in the log") or diag(join "\n", @alerts);
    my @san = grep { /ERROR: AddressSanitizer|runtime error:|LeakSanitizer/ } @lines;
    ok(!@san, "$label: no sanitizer report") or diag(join "\n", @san);
    return $ok && !@san;
}

# Checks the invariants of this instance once: those of a checkpoint
# over the whole test (but the fd count), then corrald stops with exit 0
# (if still running), no process left, no cgroup left.
sub check_invariants {
    my ($self) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return if $self->{checked}++;
    if ($self->{pid}) {
        $self->check_tree('at the end');
        is($self->stop, 0, 'corrald stops with exit 0');
    }
    $self->check_output('the whole test', 0, 0);
    my $clean = $self->poll(sub { !$self->leftovers }, 3);
    ok($clean, 'no process left') or diag(join "\n", map { describe($_) } $self->leftovers);
    if ($self->{cgroup} && $self->{ran}) {
        my $cg = $self->cgroup_dir;
        ok(!-e $cg, 'no cgroup left') or diag(`find $cg -name cgroup.procs 2>&1`);
    }
    $self->kill_all;
}

# Every test file ends with $t->done: invariants of every instance, then
# done_testing.
sub done {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $_->check_invariants for @instances;
    done_testing();
}

# A test killed by a signal (^C, prove gone) still runs the END block;
# once output has nowhere to go, writing more must not stop the cleanup.
$SIG{$_} = sub { $SIG{PIPE} = 'IGNORE'; die "test killed by SIG$_[0]\n" } for qw(INT TERM HUP PIPE);

END {
    local $?;
    $_->kill_all for @instances;
}

1;
