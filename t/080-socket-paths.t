#!/usr/bin/perl
# Socket paths against the other users of the machine (issue 12). corrald
# runs as root; `nobody` plays the local attacker (through setpriv).
# corrald refuses a socket directory that another user owns or may write
# (unless it is sticky, like /tmp), for the control socket and for a
# pool's unix listen socket alike; in a directory it accepts, another user
# can put nothing at the path (so no symlink can be swapped in between
# bind and anything corrald does after: the race is closed by
# construction), and in a sticky one what another user put there first (a
# symlink, a file, a live socket) is refused and left alone, never
# removed and never followed. The modes come with the bind, whatever
# corrald's umask: the control socket 0600 (0660 and its group with
# control_group), listen sockets 0666, all owned by root; a missing
# socket directory is made 0755.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use IO::Socket::UNIX;
use POSIX ();
use Test::More;

plan skip_all => 'needs root' if $> != 0;
my $SETPRIV = CorralTest::find_program('setpriv') or plan skip_all => 'setpriv not found';
my ($NOBODY, $NOGROUP) = (getpwnam('nobody'))[2, 3];
plan skip_all => 'no user nobody' unless defined $NOBODY;

my @AS_NOBODY = ($SETPRIV, "--reuid=$NOBODY", "--regid=$NOGROUP", '--clear-groups', '--');

sub as_nobody {
    open my $save, '>&', \*STDERR or die;
    open STDERR, '>', '/dev/null' or die;
    my $ok = system(@AS_NOBODY, @_) == 0;
    open STDERR, '>&', $save or die;
    return $ok;
}

sub mode_of {
    my @st = lstat $_[0] or return ('none', -1, -1);
    return (sprintf('%04o', $st[2] & 07777), $st[4], $st[5]);
}

my $CONFIG = <<'EOF';
settings { %SETTINGS% }
pool "web" { command = "/bin/sleep 1000", workers = 1, %LISTEN% }
EOF

sub config {
    my ($t, %o) = @_;
    my $text = $CONFIG;
    $text =~ s/%SETTINGS%/$o{settings} \/\/ ''/e;
    $text =~ s/%LISTEN%/defined $o{listen} ? qq{listen = { s = "unix:$o{listen}" }} : ''/e;
    $t->write_config($text);
}

# corrald that must not start: exit 1, its error matching $re.
sub refused {
    my ($t, $control, $re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = $t->run('-c', $t->conf, '-g', $t->{cgroup}, '-s', $control);
    is($r->{code}, 1, "$name: exit 1");
    like($r->{err} . $r->{out}, $re, "$name: says why") or diag($r->{err} . $r->{out});
    ok(!-e $t->cgroup_dir, "$name: no cgroup left");
}

# A root-only file a symlink of nobody's points at: it must stay as it is.
sub target {
    my ($t) = @_;
    my $f = $t->path('secret');
    $t->write_file('secret', "root's\n", 0600);
    return $f;
}

sub target_intact {
    my ($f, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is(join(' ', mode_of($f)), '0600 0 0', "$name: the symlink's target keeps mode 0600, root:root");
    is(CorralTest::slurp($f), "root's\n", "$name: and its content");
}

my $uid_re = qr/owned by uid $NOBODY/;

# --- a socket directory owned by another user: refused -----------------------

{
    my $t = CorralTest->new;
    chmod 0711, $t->dir;
    my $dir = $t->path('nobodys');
    mkdir $dir, 0755 or die;
    chown $NOBODY, $NOGROUP, $dir or die;
    config($t);
    refused($t, "$dir/control.sock",
            qr{control: unable to listen on \Q$dir\E/control\.sock: \Q$dir\E is owned by uid $NOBODY with mode 0755},
            'control socket in a directory nobody owns');
    ok(!-e "$dir/control.sock", 'and no socket made there');

    config($t, listen => "$dir/web.sock");
    refused($t, $t->path('control.sock'),
            qr{pool "web": listen\.s: unable to listen on unix:\Q$dir\E/web\.sock: \Q$dir\E is owned by uid $NOBODY with mode 0755},
            'listen socket in a directory nobody owns');
    ok(!-e "$dir/web.sock", 'and no socket made there');

    # a directory of root's that others may write, not sticky
    my $open = $t->path('open');
    mkdir $open or die;
    chmod 0777, $open or die;
    config($t);
    refused($t, "$open/control.sock", qr{\Q$open\E is owned by uid 0 with mode 0777}, 'control socket in a 0777 directory');
    config($t, listen => "$open/web.sock");
    refused($t, $t->path('control.sock'), qr{\Q$open\E is owned by uid 0 with mode 0777}, 'listen socket in a 0777 directory');

    # the attack this stops: nobody's symlink, put in place of the socket
    # (while corrald binds) to a file of root's
    my $f = target($t);
    ok(as_nobody('ln', '-s', $f, "$dir/control.sock"), 'nobody may put a symlink in its directory');
    config($t, settings => "control_group = $NOGROUP");
    refused($t, "$dir/control.sock", $uid_re, 'control socket: nobody\'s directory with a symlink');
    target_intact($f, 'control socket in nobody\'s directory');
    ok(-l "$dir/control.sock", 'and nobody\'s symlink is left alone');
}

# --- a safe directory: others cannot put anything at the path -----------------

{
    my $t = CorralTest->new;
    chmod 0711, $t->dir;
    my $dir = $t->path('run');     # missing: corrald makes it
    config($t, settings => "control_group = $NOGROUP", listen => "$dir/web.sock");
    my $old = umask 077;
    $t->start('-s', "$dir/control.sock");
    umask $old;
    $t->{control} = "$dir/control.sock";
    $t->wait_control;
    $t->wait_for(sub { $t->workers('web') == 1 }, 10, 'web up');
    is(join(' ', mode_of($dir)), '0755 0 0', 'the missing socket directory made 0755, root:root');
    ok(!-l $dir && -d _, 'and a directory');
    is(join(' ', mode_of("$dir/control.sock")), "0660 0 $NOGROUP",
       'control socket with control_group: 0660, root and the group (corrald\'s umask 077)');
    ok(-S "$dir/control.sock", 'and a socket');
    is(join(' ', mode_of("$dir/web.sock")), '0666 0 0', 'listen socket: 0666, root:root (corrald\'s umask 077)');
    ok(-S "$dir/web.sock", 'and a socket');

    # nobody cannot swap the path: the directory is root's alone
    ok(!as_nobody('ln', '-sf', '/etc/hostname', "$dir/web.sock"), 'nobody cannot replace the listen socket');
    ok(!as_nobody('ln', '-s', '/etc/hostname', "$dir/x"), 'nobody cannot add anything there');
    ok(-S "$dir/web.sock" && -S "$dir/control.sock", 'the sockets are still there');
    is($t->stop, 0, 'corrald stops: exit 0');
    ok(!-e "$dir/control.sock" && !-e "$dir/web.sock", 'and removes its sockets');

    # no control_group: 0600
    config($t);
    $t->start('-s', "$dir/control.sock");
    $t->wait_control;
    is(join(' ', mode_of("$dir/control.sock")), '0600 0 0', 'control socket without control_group: 0600, root:root');
    is($t->stop, 0, 'corrald stops: exit 0');
}

# --- a sticky directory (like /tmp): what another user put there stays --------

{
    my $t = CorralTest->new;
    chmod 0711, $t->dir;
    my $dir = $t->path('sticky');
    mkdir $dir or die;
    chmod 01777, $dir or die;
    my $f = target($t);

    ok(as_nobody('ln', '-s', $f, "$dir/control.sock"), 'nobody puts a symlink at the control socket\'s path');
    config($t, settings => "control_group = $NOGROUP");
    refused($t, "$dir/control.sock",
            qr{control: unable to listen on \Q$dir\E/control\.sock: \Q$dir\E/control\.sock is owned by uid $NOBODY, not corrald's user: not removing it},
            'nobody\'s symlink at the control socket');
    ok(-l "$dir/control.sock", 'the symlink is left alone');
    target_intact($f, 'nobody\'s symlink at the control socket');

    ok(as_nobody('ln', '-s', $f, "$dir/web.sock"), 'nobody puts a symlink at the listen socket\'s path');
    config($t, listen => "$dir/web.sock");
    refused($t, $t->path('control.sock'), qr{pool "web": listen\.s: unable to listen on unix:\Q$dir\E/web\.sock: .*$uid_re},
            'nobody\'s symlink at the listen socket');
    ok(-l "$dir/web.sock", 'the symlink is left alone');
    target_intact($f, 'nobody\'s symlink at the listen socket');
    unlink "$dir/control.sock", "$dir/web.sock";

    ok(as_nobody('sh', '-c', "echo nobody\\'s > $dir/control.sock"), 'nobody puts a file at the control socket\'s path');
    config($t);
    refused($t, "$dir/control.sock", qr{\Q$dir\E/control\.sock is owned by uid $NOBODY, not corrald's user: not removing it},
            'nobody\'s file at the control socket');
    is(CorralTest::slurp("$dir/control.sock"), "nobody's\n", 'the file is not deleted');
    ok(as_nobody('sh', '-c', "echo nobody\\'s > $dir/web.sock"), 'nobody puts a file at the listen socket\'s path');
    config($t, listen => "$dir/web.sock");
    refused($t, $t->path('control.sock'), qr{\Q$dir\E/web\.sock is owned by uid $NOBODY, not corrald's user: not removing it},
            'nobody\'s file at the listen socket');
    is(CorralTest::slurp("$dir/web.sock"), "nobody's\n", 'the file is not deleted');
    unlink "$dir/control.sock", "$dir/web.sock";

    # nobody's live socket: refused, not removed
    my $PY = CorralTest::find_program('python3');
    SKIP: {
        skip 'python3 not installed', 6 unless $PY;
        my $sock = "$dir/control.sock";
        my $pid = fork // die;
        if (!$pid) {
            { no warnings 'exec'; exec @AS_NOBODY, $PY, '-c',
                  "import socket,time\ns=socket.socket(socket.AF_UNIX)\ns.bind('$sock')\ns.listen(5)\ntime.sleep(60)"; }
            POSIX::_exit(127);
        }
        $t->wait_for(sub { -S $sock }, 10, 'nobody listens at the control socket\'s path');
        config($t);
        refused($t, $sock, qr{\Q$sock\E is owned by uid $NOBODY, not corrald's user: not removing it},
                'nobody\'s live socket at the control socket');
        is((lstat $sock)[4], $NOBODY, 'nobody\'s socket is left alone');
        ok(IO::Socket::UNIX->new(Peer => $sock), 'and still answers');
        kill 'TERM', $pid;
        waitpid $pid, 0;
        unlink $sock;
    }

    # corrald's own sockets there: nobody cannot remove or rename them
    config($t, listen => "$dir/web.sock");
    $t->start('-s', "$dir/control.sock");
    $t->{control} = "$dir/control.sock";
    $t->wait_control;
    $t->wait_for(sub { $t->workers('web') == 1 }, 10, 'web up');
    is(join(' ', mode_of("$dir/web.sock")), '0666 0 0', 'in the sticky directory: listen socket 0666, root:root');
    ok(as_nobody('ln', '-s', $f, "$dir/evil"), 'nobody may still add its own entries');
    ok(!as_nobody('mv', '-f', "$dir/evil", "$dir/web.sock"), 'but cannot replace corrald\'s socket with one');
    ok(!as_nobody('rm', '-f', "$dir/control.sock"), 'nor remove it');
    ok(-S "$dir/web.sock" && -S "$dir/control.sock", 'the sockets are still there');
    is($t->stop, 0, 'corrald stops: exit 0');
}

CorralTest::done();
