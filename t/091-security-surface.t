#!/usr/bin/perl
# What a worker, or another local process, can do to corrald: the checks
# the attack run relied on that no other test holds (t/031 has READY=1
# from outsiders and MAINPID= of another pool's worker, t/042 the control
# socket's users and groups, t/033 an exec'd worker's fds):
#
# - notify: READY=1 with MAINPID= of a worker's own child, sent by a
#   process in no worker's cgroup (the test), is ignored whole; MAINPID=
#   naming a worker of the SAME pool (another id) is refused;
# - control socket: "root" of a user namespace (uid nobody outside) is
#   not root to corrald's SO_PEERCRED check;
# - workers running as user = "nobody", exec'd and Lua: cannot write
#   their own cgroup's files (cgroup.procs, cgroup.subtree_control,
#   memory.max if there, cgroup.kill), cannot move to the pool's cgroup,
#   cannot read corrald's /proc/PID/environ nor list its fds, nor signal
#   corrald or the prototype;
# - their fds: exactly 0-2 (stdin /dev/null), the pool's listen socket
#   (fd 3, corrald's, inherited across exec) and for a Lua worker its
#   channel to the prototype (fd 4, close-on-exec); a file the config left
#   open in corrald does not reach them.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive find_program);
use CorralProc qw(cgroup_mount);
use File::Copy ();
use Test::More;

plan skip_all => 'needs root (workers as another user)' if $> != 0;
my $NOBODY = getpwnam('nobody');
plan skip_all => 'no user nobody' unless defined $NOBODY;
my $PERL = find_program('perl') or plan skip_all => 'no perl in /usr/bin or /bin';

my $t = CorralTest->new(
    env => { CORRALD_PID => sub { $$ }, CG_MOUNT => cgroup_mount() },
    config => <<"EOF");
local inherit = { "CORRAL_TEST_DIR", "CORRALD_PID", "CG_MOUNT" }
-- a file the config opens and keeps: corrald's, never a worker's
local kept = assert(io.open("%TMP%/kept-open.txt", "w"))

-- what a Lua worker as nobody may do: one line per attempt in
-- probe.out.lua ("KEY RESULT", RESULT an error text or what was done)
local function probe()
  local out = "%TMP%/probe.out.lua"
  local function say(k, v)
    local f = assert(io.open(out, "a"))
    f:write(k, " ", v, "\\n")
    f:close()
  end
  local function why(err) return (tostring(err):gsub("^.*: ", "")) end
  local function try_write(path, value)
    local f, err = io.open(path, "w")
    if not f then return why(err) end
    f:write(value)
    local ok, cerr = f:close()
    return ok and "written" or why(cerr)
  end
  local function read1(path)
    local f = assert(io.open(path))
    local s = f:read("*a")
    f:close()
    return s
  end
  local pid = read1("/proc/self/stat"):match("^(%d+)")
  local dir = os.getenv("CG_MOUNT") .. read1("/proc/self/cgroup"):match("0::(%S+)")
  local corrald = os.getenv("CORRALD_PID")
  say("pid", pid)
  say("cgroup.procs", try_write(dir .. "/cgroup.procs", pid))
  say("cgroup.subtree_control", try_write(dir .. "/cgroup.subtree_control", "+pids"))
  local m = io.open(dir .. "/memory.max")
  if m then m:close() end
  say("memory.max", m and try_write(dir .. "/memory.max", "max") or "absent")
  say("parent", try_write(dir .. "/../cgroup.procs", pid))
  local e, err = io.open("/proc/" .. corrald .. "/environ")
  say("environ", e and "read" or why(err))
  if e then e:close() end
  say("cgroup.kill", try_write(dir .. "/cgroup.kill", "1"))
  say("done", "1")
end

pool "exec" {
  command = { "$PERL", "%TMP%/probe.pl" },
  user = "nobody",
  listen = { web = "unix:%TMP%/exec.sock" },
  worker_limits = { memory_max = "1G" },    -- memory.max, where the kernel offers it
  env_inherit = inherit,
}
pool "lua" {
  user = "nobody",
  listen = { web = "unix:%TMP%/lua.sock" },
  worker_limits = { memory_max = "1G" },
  env_inherit = inherit,
  start = function(w)
    local _ = kept
    probe()
    while not w:sleep(100) do end
  end,
}
pool "twins" {
  command = { "$PERL", "%TMP%/twins.pl" },
  workers = 2, ready = "notify", env_inherit = inherit,
}
pool "quiet" {
  command = { "$PERL", "%TMP%/quiet.pl" },
  ready = "notify", env_inherit = inherit,
}
EOF

# An exec'd worker as nobody: the same attempts, and signals.
$t->write_file('probe.pl', <<'EOF');
use strict;
my $out = "$ENV{CORRAL_TEST_DIR}/probe.out.exec";
sub say { open my $f, '>>', $out or die "$out: $!"; print $f "@_\n"; close $f }
sub slurp { open my $f, '<', $_[0] or die "$_[0]: $!"; local $/; my $s = <$f>; close $f; $s }
sub try_write {
    my ($path, $value) = @_;
    open my $f, '>', $path or return "$!";
    print $f $value;
    close $f or return "$!";
    return 'written';
}
my ($cg) = slurp('/proc/self/cgroup') =~ /^0::(\S+)/m;
my $dir = "$ENV{CG_MOUNT}$cg";
my $corrald = $ENV{CORRALD_PID};
say('pid', $$);
say('cgroup.procs', try_write("$dir/cgroup.procs", $$));
say('cgroup.subtree_control', try_write("$dir/cgroup.subtree_control", '+pids'));
say('memory.max', -e "$dir/memory.max" ? try_write("$dir/memory.max", 'max') : 'absent');
say('parent', try_write("$dir/../cgroup.procs", $$));
say('environ', open(my $e, '<', "/proc/$corrald/environ") ? 'read' : "$!");
say('fds', opendir(my $d, "/proc/$corrald/fd") ? 'listed' : "$!");
closedir $d if $d;
say('kill-corrald', kill(0, $corrald) ? 'signalled' : "$!");
say('kill-prototype', kill(0, getppid()) ? 'signalled' : "$!");
say('cgroup.kill', try_write("$dir/cgroup.kill", '1'));
say('done', 1);
sleep 1 while 1;
EOF

# twins: each writes its pid; worker 1 then names worker 2 as its main
# process (with READY=1), worker 2 says READY=1.
$t->write_file('twins.pl', <<'EOF');
use strict;
use Socket;
my $d = $ENV{CORRAL_TEST_DIR};
my $id = $ENV{CORRAL_WORKER};
open my $f, '>', "$d/twin.$id.new" or die; print $f $$; close $f;
rename "$d/twin.$id.new", "$d/twin.$id" or die;
my $msg = 'READY=1';
if ($id == 1) {
    select undef, undef, undef, 0.05 until -e "$d/twin.2";
    open my $o, '<', "$d/twin.2" or die; my $other = <$o>; close $o;
    $msg = "MAINPID=$other\n$msg";
}
(my $addr = $ENV{NOTIFY_SOCKET}) =~ s/^\@/\0/;
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
send($s, $msg, 0, pack_sockaddr_un($addr)) or die "send: $!";
sleep 1 while 1;
EOF

# quiet: a child of its own, and never a word
$t->write_file('quiet.pl', <<'EOF');
use strict;
my $d = $ENV{CORRAL_TEST_DIR};
my $child = fork // die;
if (!$child) { sleep 1 while 1 }
open my $f, '>', "$d/quiet.child.new" or die; print $f $child; close $f;
rename "$d/quiet.child.new", "$d/quiet.child" or die;
sleep 1 while 1;
EOF

# nobody: may pass through the temp dir, read the scripts, append to the
# result files
chmod 0711, $t->dir or die "chmod: $!";
for my $tag (qw(exec lua)) {
    $t->write_file("probe.out.$tag", '', 0666);
}

my $corrald = $t->start;
$t->wait_control;

# --- workers as nobody: their cgroup, corrald's /proc, signals ---------------

# KEY => RESULT from a probe file, once its "done" line is there.
sub results {
    my ($tag) = @_;
    my %r = map { /^(\S+) (.*)$/ ? ($1 => $2) : () } $t->file_lines("probe.out.$tag");
    return $r{done} ? \%r : undef;
}

my $EACCES = do { local $! = 13; "$!" };
my $EPERM = do { local $! = 1; "$!" };
for my $tag (qw(exec lua)) {
    my $r;
    $t->wait_for(sub { $r = results($tag) }, 15, "$tag: the worker (user nobody) ran its probes") or next;
    my ($w) = $t->workers($tag);
    ok($w && $r->{pid} == $w, "$tag: the probes ran in the worker itself");
    my ($uids) = (CorralTest::slurp("/proc/$w/status") // '') =~ /^Uid:\s+(.*)$/m;
    is(join(' ', split ' ', $uids // ''), "$NOBODY $NOBODY $NOBODY $NOBODY", "$tag: the worker runs as nobody (all four uids)");
    for my $key (qw(cgroup.procs cgroup.subtree_control cgroup.kill)) {
        is($r->{$key}, $EACCES, "$tag: cannot write its cgroup's $key");
    }
    like($r->{'memory.max'}, qr/^(\Q$EACCES\E|absent)$/, "$tag: cannot write its cgroup's memory.max ($r->{'memory.max'})");
    is($r->{parent}, $EACCES, "$tag: cannot move itself to the pool's cgroup");
    is($r->{environ}, $EACCES, "$tag: cannot read corrald's /proc/PID/environ");
    if ($tag eq 'exec') {
        is($r->{fds}, $EACCES, "$tag: cannot list corrald's /proc/PID/fd");
        is($r->{'kill-corrald'}, $EPERM, "$tag: cannot signal corrald");
        is($r->{'kill-prototype'}, $EPERM, "$tag: cannot signal its prototype");
    }
    ok(pid_alive($w), "$tag: the worker lives on (its cgroup.kill was not written)");
    is(CorralTest::cgroup_of($w), $t->cgroup_rel("$tag/1"), "$tag: still in its cgroup");
    is_deeply([ $t->cgroup_procs($tag) ], [], "$tag: the pool's cgroup holds no process");
}

# --- workers' fds --------------------------------------------------------------

sub fd_map {
    my ($pid) = @_;
    opendir my $dh, "/proc/$pid/fd" or return {};
    return { map { $_ => readlink("/proc/$pid/fd/$_") // '?' } grep { /^\d+$/ } readdir $dh };
}

sub fd_flags {
    my ($pid, $fd) = @_;
    my $info = CorralTest::slurp("/proc/$pid/fdinfo/$fd") // '';
    return $info =~ /^flags:\s*([0-7]+)/m ? oct $1 : undef;
}

my $O_CLOEXEC = 02000000;
my %corrald_fds = reverse %{ fd_map($corrald) };
ok(grep({ m{kept-open\.txt$} } keys %corrald_fds), 'corrald holds the file its config left open');
for my $tag (qw(exec lua)) {
    my ($w) = $t->workers($tag) or next;
    my $want = $tag eq 'lua' ? '0 1 2 3 4 5' : '0 1 2 3';
    my $fds;
    # perl may still hold its script for a moment: wait for it to settle
    $t->wait_for(sub { $fds = fd_map($w); join(' ', sort { $a <=> $b } keys %$fds) eq $want }, 5,
                 "$tag: fds $want only") or diag(join "\n", map { "  $_ -> $fds->{$_}" } sort keys %$fds);
    is($fds->{0}, '/dev/null', "$tag: stdin is /dev/null");
    like($fds->{3} // '', qr/^socket:/, "$tag: fd 3 is a socket");
    ok(defined $fds->{3} && $corrald_fds{ $fds->{3} }, "$tag: fd 3 is corrald's listen socket");
    ok(!((fd_flags($w, 3) // $O_CLOEXEC) & $O_CLOEXEC), "$tag: fd 3 is passed on across exec");
    if ($tag eq 'lua') {
        like($fds->{4} // '', qr/^socket:/, "$tag: fd 4 is a socket (its channel)");
        ok(defined $fds->{4} && !$corrald_fds{ $fds->{4} }, "$tag: fd 4 is not one of corrald's (the prototype's channel)");
        ok((fd_flags($w, 4) // 0) & $O_CLOEXEC, "$tag: fd 4 is close-on-exec");
        # corral.log's lines go to corrald's stderr as they are, not
        # through the pipe of the worker's output
        is($fds->{5}, $t->path('log'), "$tag: fd 5 is corrald's stderr, for corral.log");
        ok((fd_flags($w, 5) // 0) & $O_CLOEXEC, "$tag: fd 5 is close-on-exec");
    }
    like($fds->{1} // '', qr/^pipe:/, "$tag: stdout is a pipe to corrald");
    ok(!grep({ m{kept-open\.txt$} } values %$fds), "$tag: the config's open file is not the worker's");
}
$t->checkpoint('workers as nobody');

# --- notify: MAINPID= of a worker of the same pool -----------------------------------

$t->wait_for(sub { -e $t->path('twin.1') && -e $t->path('twin.2') }, 10, 'twins: both workers wrote their pid');
my ($p1, $p2) = map { CorralTest::slurp($t->path("twin.$_")) } 1, 2;
$t->wait_log(qr/ warn notify: ignored MAINPID=$p2: not a process of this worker pool=twins worker=1 pid=$p1$/,
             name => 'MAINPID= naming worker 2 of the same pool: refused for worker 1');
$t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=twins$/, name => 'twins: the READY=1s still count');
is_deeply([ $t->workers('twins') ], [ sort { $a <=> $b } $p1, $p2 ], 'twins: each worker still its own process');
ok(!$t->log_lines(qr/main process is now .* pool=twins /), 'twins: no main process change');
$t->checkpoint('MAINPID= of another worker of the pool');

# --- notify: READY=1 and MAINPID= from a process outside every worker ----------------

$t->wait_for(sub { -e $t->path('quiet.child') }, 10, 'quiet: its child is there');
my $child = CorralTest::slurp($t->path('quiet.child'));
my ($quiet) = $t->workers('quiet');
my ($me, $mark) = ($$, $t->mark);
$t->notify_send("MAINPID=$child\nREADY=1\nSTATUS=outsider");
$t->wait_log(qr/ debug notify: ignored a message from a process that is in no worker's cgroup pid=$me$/, since => $mark,
             name => 'a datagram from the test process: ignored, with its pid');
$t->stays(sub { !$t->log_lines(qr/ info pool ready .* pool=quiet$/) }, 1, 'quiet: not made ready from outside');
ok(!$t->log_lines(qr/main process is now .* pool=quiet |STATUS=outsider/), 'quiet: no MAINPID, no STATUS taken');
is_deeply([ $t->workers('quiet') ], [ $quiet ], 'quiet: the worker is still its first process');
$t->checkpoint('datagrams from outside');

# --- control socket: root in a user namespace is not root --------------------------

SKIP: {
    my $setpriv = find_program('setpriv');
    my $unshare = find_program('unshare');
    skip 'setpriv or unshare not installed (util-linux)', 4 unless $setpriv && $unshare;
    my @AS_NS_ROOT = ($setpriv, '--reuid=nobody', '--regid=' . ((getpwnam 'nobody')[3]), '--clear-groups',
                      $unshare, '--user', '--map-root-user', '--');
    my $probe = `@AS_NS_ROOT /usr/bin/id -u 2>&1`;
    skip "no user namespaces for nobody here: $probe", 4 unless $? == 0 && $probe =~ /^0$/m;
    my $prog = $t->path('corralctl');
    File::Copy::copy($CorralTest::CORRALCTL, $prog) or die "copy: $!";
    chmod 0755, $prog;
    chmod 0666, $t->socket_path or die "chmod: $!";    # the file's mode lets it in: corrald decides
    for my $cmd ([ 'ping' ], [ 'scale', 'quiet', 2 ]) {
        my $r = $t->ctl(@$cmd, { wrap => \@AS_NS_ROOT, program => $prog });
        is($r->{code}, 4, "uid 0 of a user namespace (nobody outside): @$cmd: exit 4") or diag($r->{err});
        like($r->{err}, qr/permission denied: uid $NOBODY is not allowed to control corrald/,
             "uid 0 of a user namespace: @$cmd: refused as uid $NOBODY");
    }
    chmod 0600, $t->socket_path;
}
$t->stays(sub { $t->workers('quiet') == 1 }, 0.5, 'quiet: still one worker (scale refused)');
$t->checkpoint('control socket from a user namespace');

$t->done;
