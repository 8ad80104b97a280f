#!/usr/bin/perl
# A full disk. What corrald itself writes is its control socket (and the
# pools' unix listen sockets) and its log on stderr; workers may write an
# output file. Each on a small tmpfs of this test's own, in a private
# mount namespace (the test re-runs itself under unshare -m):
# - the control socket's directory out of inodes: corrald says so and
#   exits 1 at startup, and starts once there is room;
# - a reload that needs a new unix socket there: refused with the reason,
#   corrald keeps running with its pools, and the reload works later;
# - a pool whose output file cannot be created: the pool names the error,
#   backs off, and reaches its target once there is room;
# - corrald's own log on a full filesystem (its writes fail with ENOSPC):
#   corrald neither blocks nor dies; it serves, scales, reloads and stops,
#   and its log resumes once there is room.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(find_program);
use CorralWait ();
use Fcntl ();
use Test::More;

if (!$ENV{CORRAL_TEST_PRIVATE_MOUNTS}) {
    plan skip_all => 'needs root (mounts a tmpfs)' unless $> == 0;
    my $unshare = find_program('unshare') or plan skip_all => 'needs unshare (util-linux)';
    $ENV{CORRAL_TEST_PRIVATE_MOUNTS} = 1;
    exec $unshare, '-m', '--propagation', 'private', $^X, $0, @ARGV;
    die "exec $unshare: $!";
}

my @mounts;
END { system('umount', '-l', $_) for reverse @mounts }

# A tmpfs at $dir with these options.
sub tmpfs {
    my ($dir, $opts) = @_;
    mkdir $dir;
    system('mount', '-t', 'tmpfs', '-o', $opts, 'corral-test-full', $dir) == 0 or BAIL_OUT("mount tmpfs on $dir failed");
    push @mounts, $dir;
}

# Fills $dir's blocks: a file written until ENOSPC.
sub fill_blocks {
    my ($file) = @_;
    open my $fh, '>', $file or die "$file: $!";
    my $chunk = 'x' x 4096;
    1 while syswrite $fh, $chunk;
    close $fh;
}

my $inherit = 'local inherit = { "CORRAL_TEST_DIR" }';

# --- the control socket's directory out of inodes ---------------------------------------

my $t = CorralTest->new(control => undef);
my $full = $t->dir . '/run';
tmpfs($full, 'size=1m,nr_inodes=3');    # its root and two files
for my $f ("$full/filler1", "$full/filler2") { open my $fh, '>', $f or die "$f: $!" }
$t->write_config(<<"EOF");
$inherit
settings { control = "$full/control.sock" }
pool "web" { command = "/bin/sleep 1000", workers = 2, env_inherit = inherit }
EOF
$t->start;
is($t->wait_exit(15), 1, 'control socket directory full: corrald exits 1');
$t->wait_log(qr{ error control: unable to listen on \Q$full\E/control\.sock: No space left on device$},
             name => 'it says why: no space for the control socket');

unlink "$full/filler1";
$t->{control} = "$full/control.sock";
$t->start;
$t->wait_control;
$t->wait_for(sub { $t->workers('web') == 2 }, 10, 'room again: corrald starts with its pool');
$t->checkpoint('startup');

# --- a reload that needs a socket there ------------------------------------------------

my %web = $t->worker_map('web');
# the socket took filler1's inode: the directory is full again
my $with_app = <<"EOF";
$inherit
settings { control = "$full/control.sock" }
pool "web" { command = "/bin/sleep 1000", workers = 2, env_inherit = inherit }
pool "app" { command = "/bin/sleep 1000", listen = { app = "unix:$full/app.sock" }, env_inherit = inherit }
EOF
$t->write_config($with_app);
my $r = $t->ctl('reload');
isnt($r->{code}, 0, 'reload needing a socket in the full directory: refused');
like($r->{err} . $r->{out}, qr/No space left on device/, 'corralctl says why') or diag("$r->{out}$r->{err}");
$t->wait_log(qr/ error reload failed, keeping the running configuration: .*No space left on device/,
             name => 'so does the log');
is($t->ctl('ping')->{out}, "pong\n", 'corrald keeps running');
is_deeply({ $t->worker_map('web') }, \%web, 'web keeps its workers');
ok(!$t->workers('app'), 'app is not started');
unlink "$full/filler2";
$r = $t->ctl('reload');
is($r->{code}, 0, 'room again: the reload works') or diag($r->{err});
$t->wait_for(sub { $t->workers('app') == 1 }, 10, 'app comes up');
$t->checkpoint('reload', fds => 0);

# --- a pool's output file cannot be created -------------------------------------------

my $out = $t->dir . '/out';
tmpfs($out, 'size=1m,nr_inodes=2');
{ open my $fh, '>', "$out/filler" or die "$out/filler: $!" }
$t->write_config(<<"EOF");
$with_app
pool "logged" {
  command = "/bin/sleep 1000",
  workers = 2,
  output = "$out/logged.log",
  backoff = { initial = "100ms", max = "500ms" },
  crash_limit = { failures = 0 },
  env_inherit = inherit,
}
EOF
my $mark = $t->mark;
is($t->ctl('reload')->{code}, 0, 'reload adds a pool whose output file cannot be created');
$t->wait_log(qr/ error unable to open the output: No space left on device pool=logged worker=\d+ pid=\d+$/, since => $mark,
             name => 'the pool names the worker and the error');
$t->wait_log(qr/ info restarting worker in 500ms pool=logged$/, since => $mark, timeout => 15,
             name => 'and backs off up to its max');
is($t->ctl('ping')->{out}, "pong\n", 'corrald answers');
is_deeply({ $t->worker_map('web') }, \%web, 'web keeps its workers');
unlink "$out/filler";
$t->wait_for(sub { $t->workers('logged') == 2 }, 10, 'room again: the pool reaches its target');
is($t->stop, 0, 'corrald stops with exit 0');

# --- corrald's own log on a full filesystem ------------------------------------------

my $t2 = CorralTest->new(config => <<"EOF");
$inherit
pool "web" { command = "/bin/sleep 1000", workers = 2, env_inherit = inherit }
pool "chatty" {
  command = { "/bin/sh", "-c", "while :; do echo chatter; sleep 0.05; done" },
  output = "inherit",
  env_inherit = inherit,
}
EOF
my $logs = $t2->dir . '/logs';
tmpfs($logs, 'size=64k');
fill_blocks("$logs/filler");
$t2->{wrap} = [ '/bin/sh', '-c', qq(exec "\$@" >>$logs/corrald.log 2>&1), 'sh' ];
$t2->start;
$t2->wait_control;
$t2->wait_for(sub { $t2->workers('web') == 2 && $t2->workers('chatty') == 1 }, 10, 'log full: pools up');
is(-s "$logs/corrald.log" // 0, 0, 'nothing of the log could be written');
is($t2->ctl('scale', 'web', '3')->{code}, 0, 'scale answers');
$t2->wait_for(sub { $t2->workers('web') == 3 }, 10, 'and web scales to 3');
is($t2->ctl('reload')->{code}, 0, 'reload answers');
is($t2->ctl('restart', 'chatty')->{code}, 0, 'restart answers');
my $st = $t2->status;
ok($st && $st->{web} && $st->{chatty}, 'status answers');
truncate "$logs/filler", 0;
is($t2->ctl('scale', 'web', '4')->{code}, 0, 'room again: scale up');
my $resumed = $t2->poll(sub {
    my $log = CorralTest::slurp("$logs/corrald.log") // '';
    $log =~ / warn \d+ log lines dropped: stderr took no more$/m && $log =~ / info worker started pool=web worker=4 /m;
}, 10);
ok($resumed, "the log resumes once there is room, saying how many lines were lost") or diag(CorralTest::slurp("$logs/corrald.log"));
is($t2->stop, 0, 'log full: corrald stops with exit 0');

# --- corrald's log into a pipe nobody reads -----------------------------------------

# A reader that lags (a logger, a terminal paused) fills the pipe; corrald
# must not block on it: it drops lines, counts them, and says how many
# once the pipe takes lines again.
my $t3 = CorralTest->new(config => <<"EOF");
$inherit
pool "web" { command = "/bin/sleep 1000", workers = 2, env_inherit = inherit }
pool "churn" {
  command = { "/bin/sh", "-c", "exit 0" },
  workers = 2,
  output = "null",
  backoff = { initial = "10ms", max = "10ms" },
  crash_limit = { failures = 0 },
  env_inherit = inherit,
}
EOF
my $fifo = $t3->path('log.fifo');
system('mkfifo', $fifo) == 0 or die "mkfifo: $!";
sysopen(my $rd, $fifo, Fcntl::O_RDONLY() | Fcntl::O_NONBLOCK()) or die "$fifo: $!";
$t3->{wrap} = [ '/bin/sh', '-c', qq(exec "\$@" >$fifo 2>&1), 'sh' ];
sub queued { my $b = pack 'i', 0; ioctl($rd, 0x541B, $b) ? unpack('i', $b) : -1 }    # FIONREAD
$t3->start;
$t3->wait_for(sub { queued() >= 60000 }, 30, 'the pipe fills up (nobody reads it)');
$t3->stays(sub { my $r = $t3->request({ command => 'ping' }, timeout => 2); $r && $r->{ok} }, 2,
           'pipe full: corrald answers ping all along');
is($t3->ctl('stop', 'churn')->{code}, 0, 'pipe full: stop churn answers');
$t3->wait_for(sub { $t3->workers('web') == 2 && !$t3->workers('churn') }, 10, 'pipe full: web runs, churn stopped');
my ($text, $buf) = ('', '');
$text .= $buf while sysread($rd, $buf, 65536);    # what is there
is($t3->ctl('scale', 'web', '3')->{code}, 0, 'pipe read: scale web');
my $got = CorralWait::poll_until(sub {
    $text .= $buf while sysread($rd, $buf, 65536);
    $text =~ / warn \d+ log lines dropped: stderr took no more\n/ && $text =~ / info worker started pool=web worker=3 /;
}, 10);
ok($got, 'corrald says how many lines it dropped, and logs on') or diag(substr($text, -2000));
$t3->signal('TERM');
is($t3->wait_exit(10), 0, 'pipe: corrald stops with exit 0');
close $rd;

$t->done;
