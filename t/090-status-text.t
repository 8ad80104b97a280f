#!/usr/bin/perl
# What status shows is true and safe to print (issue 12):
# - a worker's STATUS= with escape sequences, DEL, a C1 CSI and a byte
#   that is not UTF-8: `corralctl status` prints it escaped (no control
#   character reaches the terminal), `corralctl --json status` stays valid
#   JSON with every control character escaped, and its value is the text
#   the worker sent;
# - corralctl escapes what it prints whatever the other end of the socket
#   sends (a fake corrald here);
# - a pool whose prototype is stopped (SIGSTOP) and whose worker then dies:
#   the worker shows as exited, not ready, the pool as starting 1/2, the
#   prototype as stopped (JSON "prototype", and a line in the table);
#   after SIGCONT all is as before;
# - a prototype that does not answer a spawn request (its cgroup frozen)
#   shows as "not answering".

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(find_program);
use IO::Socket::UNIX;
use JSON::PP ();
use Socket qw(SOCK_STREAM);
use Test::More;

my $PY = find_program('python3') or plan skip_all => 'python3 not installed (Debian package python3)';

my $t = CorralTest->new(config => <<"EOF");
pool "talk" { command = { "$PY", "%TMP%/talk.py" }, ready = "notify", env_inherit = { "CORRAL_TEST_DIR" } }
pool "web" { command = "/bin/sleep 1000", workers = 2, env_inherit = { "CORRAL_TEST_DIR" } }
EOF
# STATUS= with what a terminal would act on: clear screen, set title, a
# colour, DEL, CSI as a C1 character (UTF-8), a byte that is not UTF-8,
# a tab, a carriage return
$t->write_file('talk.py', <<'EOF');
import os, socket, time
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1\nSTATUS=\x1b[2J\x1b]0;owned\x07red\x1b[0m del\x7f csi\xc2\x9b1m bad\xff tab\tend\rcr", addr)
time.sleep(1000)
EOF
my $ESCAPED = '\e[2J\e]0;owned\x07red\e[0m del\x7f csi\u009b1m bad\xff tab\tend\rcr';
my $DECODED = "\e[2J\e]0;owned\x07red\e[0m del\x7f csi\x{9b}1m bad\x{fffd} tab\tend\rcr";

# Bytes a terminal acts on: C0 but newline, DEL, C1 as UTF-8, and the
# single byte 0x9b.
sub unsafe { my ($s) = @_; return $s =~ /[\x00-\x09\x0b-\x1f\x7f\x9b]|\xc2[\x80-\x9f]/ }

$t->start;
$t->wait_control;

$t->scenario("a worker's STATUS=", sub {
    $t->wait_for(sub { my $s = $t->status('talk'); $s && defined $s->{talk}{workers}[0]{status} }, 10,
                 'talk: its STATUS= arrived');
    my $r = $t->ctl('status', 'talk');
    is($r->{code}, 0, 'corralctl status talk: exit 0');
    ok(!unsafe($r->{out}), 'the table holds no control character but newlines')
        or diag(join ' ', map { sprintf '%02x', ord } split //, $r->{out});
    my ($line) = grep { /^\s+1\s/ } split /\n/, $r->{out};
    like($line // '', qr/\Q$ESCAPED\E\z/, 'the STATUS= is shown escaped') or diag($line);

    $r = $t->ctl('--json', 'status', 'talk');
    ok(!unsafe($r->{out}), 'corralctl --json status: no control character either');
    my $a = eval { JSON::PP->new->utf8->decode($r->{out}) };
    ok($a, 'and it is valid JSON');
    is($a && $a->{pools}[0]{workers}[0]{status}, $DECODED, 'whose status is what the worker sent (U+FFFD for the bad byte)');
    like($r->{out}, qr/\\u001b\[2J.*\\u007f.*\\u009b1m/, 'DEL and the C1 CSI as \\u escapes');
});

# --- corralctl on its own -------------------------------------------------------

$t->scenario('corralctl escapes what it is sent', sub {
    my $path = $t->path('fake.sock');
    for my $case ([ 'status', '{"ok":true,"code":"ok","pools":[],"text":"a\u001b[2Jb\u009bc\u007fd\n"}',
                    'out', "a\\e[2Jb\\u009bc\\x7fd\n" ],
                  [ 'reload', '{"ok":false,"code":"failed","error":"x\u001b]0;t\u0007y"}',
                    'err', "corralctl: x\\e]0;t\\x07y\n" ]) {
        my ($cmd, $answer, $stream, $want) = @$case;
        unlink $path;
        my $srv = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $path, Listen => 1) or die "listen: $!";
        my $h = $t->ctl_spawn($cmd, { socket => $path });
        my $c = $srv->accept or die "accept: $!";
        my $req = <$c>;
        print $c "$answer\n";
        close $c;
        my $r = $t->ctl_wait($h, 10);
        is($r->{$stream}, $want, "$cmd: a fake corrald's control characters are printed escaped");
        close $srv;
    }
    unlink $path;
});

# --- a stopped prototype --------------------------------------------------------

$t->scenario('a stopped prototype', sub {
    $t->wait_for(sub { my $s = $t->status('web'); $s && $s->{web}{state} eq 'running' }, 10, 'web running');
    my $pp = $t->prototype_pid('web');
    my %w = $t->worker_map('web');
    my $s = $t->status('web')->{web};
    is_deeply($s->{prototype}, { pid => $pp, state => 'running' }, 'web: its prototype running');

    kill 'STOP', $pp or die "kill: $!";
    kill 'KILL', $w{1};
    $t->wait_for(sub { !CorralTest::pid_alive($w{1}) || (CorralTest::proc_stat($w{1}) // {})->{state} eq 'Z' }, 10,
                 'worker 1 is dead (a zombie of the stopped prototype)');
    $s = $t->status('web')->{web};
    my %by_id = map { $_->{id} => $_ } @{ $s->{workers} };
    is($by_id{1}{state}, 'exited', 'worker 1 shows exited, not ready');
    is($by_id{2}{state}, 'ready', 'worker 2 ready');
    is($s->{ready}, 1, 'the pool has 1 ready');
    is($s->{total}, 1, 'and 1 in all');
    is($s->{state}, 'starting', 'the pool is starting, not running');
    is_deeply($s->{prototype}, { pid => $pp, state => 'stopped' }, 'the prototype shows stopped');
    my $r = $t->ctl('status', 'web');
    like($r->{out}, qr/^web\s+starting\s+1\/2\s+1\s+2\s/m, 'the table: web starting 1/2');
    like($r->{out}, qr/^  prototype $pp not answering: stopped \(SIGSTOP or a debugger\)/m, 'the table: the prototype not answering');
    my $w1 = $w{1};
    like($r->{out}, qr/^\s+1\s+$w1\s+exited\s.*its exit is not reported yet: the prototype is not answering$/m,
         'the table: worker 1 exited, not reported');

    kill 'CONT', $pp;
    $t->wait_for(sub { my $s = $t->status('web'); $s && $s->{web}{state} eq 'running' && $s->{web}{restarts} == 1 }, 10,
                 'after SIGCONT: worker 1 replaced, web running');
    is_deeply($t->status('web')->{web}{prototype}, { pid => $pp, state => 'running' }, 'its prototype running');
    unlike($t->ctl('status', 'web')->{out}, qr/not answering|not reported/, 'the table says nothing of it any more');
});

# --- a prototype that does not answer ----------------------------------------------

$t->scenario('a prototype that does not answer', sub {
    my $freeze = $t->cgroup_dir('web/prototype') . '/cgroup.freeze';
    if (!-e $freeze) {
        pass("skipped: no $freeze");
        return;
    }
    my $pp = $t->prototype_pid('web');
    open my $fh, '>', $freeze or die "$freeze: $!";
    print $fh "1\n";
    close $fh;
    is($t->ctl('scale', 'web', 3)->{code}, 0, 'scale web 3 while its prototype is frozen');
    $t->wait_for(sub { my $s = $t->status('web'); $s && ($s->{web}{prototype}{state} // '') eq 'not answering' }, 10,
                 'the prototype shows not answering');
    like($t->ctl('status', 'web')->{out}, qr/^  prototype $pp not answering: 1 worker asked of it, no answer for \d/m,
         'the table says so');
    open $fh, '>', $freeze or die "$freeze: $!";
    print $fh "0\n";
    close $fh;
    $t->wait_for(sub { my $s = $t->status('web'); $s && $s->{web}{ready} == 3 && $s->{web}{prototype}{state} eq 'running' }, 10,
                 'thawed: 3 ready, the prototype running');
    is($t->ctl('scale', 'web', 2)->{code}, 0, 'scale web 2');
    $t->wait_for(sub { $t->workers('web') == 2 }, 10, 'web back to 2');
});

$t->done;
