#!/usr/bin/perl
# The control socket's limits hold up no one (issue 12):
# - a request too large (100 KiB, 10 MiB) from a client that writes it all
#   and then reads: every time, the write completes, the answer is the
#   JSON error, and the connection ends cleanly (no ECONNRESET, no EPIPE);
#   a client that never stops writing is answered and cut off in bounded
#   time;
# - a client that sends nothing is closed after about 1 s (the first-byte
#   deadline), one that has begun its request is not;
# - a user in control_group (nobody, group nogroup) that opens 200
#   connections keeps 16: the 184 others are answered "busy" and closed
#   at once, root's corralctl ping is answered while the 16 are still
#   open, and that user's own corralctl says why it is turned away;
# - users other than root together hold at most 96 connections: root
#   gets its own connections and its answer beside them.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use File::Copy ();
use IO::Select;
use IO::Socket::UNIX;
use JSON::PP ();
use POSIX qw(:errno_h);
use Socket qw(AF_UNIX SOCK_STREAM SOCK_NONBLOCK pack_sockaddr_un);
use Test::More;
use Time::HiRes qw(time sleep);

plan skip_all => 'needs root (to connect as other users)' if $> != 0;
my ($NOBODY, $NOGROUP) = (scalar getpwnam('nobody'), scalar getgrnam('nogroup'));
plan skip_all => 'needs the user nobody and the group nogroup' unless defined $NOBODY && defined $NOGROUP;
my $SETPRIV = CorralTest::find_program('setpriv') or plan skip_all => 'needs setpriv (util-linux)';

my $t = CorralTest->new(config => <<'EOF');
settings { control_group = "nogroup" }
pool "web" { command = "/bin/sleep 1000", workers = 1, env_inherit = { "CORRAL_TEST_DIR" } }
EOF
chmod 0711, $t->dir or die "chmod: $!";
my $prog = $t->path('corralctl');    # a copy other users can run
File::Copy::copy($CorralTest::CORRALCTL, $prog) or die "copy: $!";
chmod 0755, $prog;
$t->start;
$t->wait_control;
$t->wait_for(sub { $t->workers('web') == 1 }, 10, 'web up');
my $sock = $t->socket_path;
my $PARTIAL = '{"command":"ping"';    # a request begun, not finished
my $BUSY = qr/\A\{"ok":false,"code":"busy","error":"[^"]+"\}\n\z/;

# --- clients -----------------------------------------------------------------

# A non-blocking connection; retried while the backlog is full (EAGAIN).
sub nb_connect {
    my $deadline = time + 10;
    while (1) {
        socket(my $s, AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0) or die "socket: $!";
        return $s if connect($s, pack_sockaddr_un($sock));
        return undef if $! != EAGAIN || time > $deadline;
        sleep 0.005;
    }
}

# Reads what has come; notes when the connection ended (EOF or error).
sub look {
    my ($c) = @_;
    return 1 if defined $c->{closed};
    while (1) {
        my $n = sysread $c->{sock}, my $buf, 65536;
        if (defined $n && $n > 0) { $c->{reply} .= $buf; next }
        return 0 if !defined $n && $! == EAGAIN;
        $c->{closed} = time - $c->{at};
        return 1;
    }
}

# $n connections, each sending $bytes at once: [ { sock, at, reply, closed } ].
sub open_clients {
    my ($n, $bytes) = @_;
    my @c;
    local $SIG{PIPE} = 'IGNORE';
    for (1 .. $n) {
        my $s = nb_connect() or last;
        syswrite $s, $bytes if length $bytes;
        push @c, { sock => $s, at => time, reply => '' };
    }
    return @c;
}

# "closed=N busy=N open=N": ended, of them answered busy, still open.
sub counts {
    my @c = @_;
    look($_) for @c;
    my $closed = grep { defined $_->{closed} } @c;
    my $busy = grep { defined $_->{closed} && $_->{reply} =~ $BUSY } @c;
    my $answered = grep { length $_->{reply} } @c;
    return { closed => $closed, busy => $busy, open => @c - $closed, answered => $answered };
}

# A process of another user that holds connections for us: commands on a
# pipe ("open N partial|none", "wait CLOSED TIMEOUT", "look", "quit"),
# one line of counts back as JSON.
sub farm {
    my ($uid, $gid) = @_;
    pipe(my $cr, my $cw) or die "pipe: $!";
    pipe(my $rr, my $rw) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        close $cw;
        close $rr;
        $rw->autoflush(1);
        POSIX::setgid($gid);
        $) = "$gid $gid";
        POSIX::setuid($uid);
        POSIX::_exit(3) unless $< == $uid && $> == $uid;
        my @c;
        while (my $cmd = <$cr>) {
            my ($op, @a) = split ' ', $cmd;
            if ($op eq 'open') {
                push @c, open_clients($a[0], $a[1] eq 'partial' ? $PARTIAL : '');
            } elsif ($op eq 'wait') {
                my $deadline = time + $a[1];
                sleep 0.01 while counts(@c)->{closed} < $a[0] && time < $deadline;
            } elsif ($op eq 'quit') {
                last;
            }
            print $rw JSON::PP->new->canonical->encode({ %{ counts(@c) }, made => scalar @c }), "\n";
        }
        POSIX::_exit(0);
    }
    close $cr;
    close $rw;
    $cw->autoflush(1);
    return { pid => $pid, in => $cw, out => $rr };
}

sub ask {
    my ($f, $cmd) = @_;
    print { $f->{in} } "$cmd\n";
    my $line = readline $f->{out};
    return $line ? JSON::PP->new->decode($line) : { error => 'the farm is gone' };
}

sub farm_end {
    my ($f) = @_;
    ask($f, 'quit');
    waitpid $f->{pid}, 0;
}

# --- too large requests ---------------------------------------------------------

# Writes all of $bytes (blocking), then reads to the end: what happened.
sub big_request {
    my ($bytes) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock) or return { werr => "connect: $!" };
    $s->timeout(20);
    my ($off, $werr, $rerr, $reply) = (0, '', '', '');
    while ($off < length $bytes) {
        my $n = syswrite $s, $bytes, length($bytes) - $off, $off;
        if (!defined $n) { $werr = "$!"; last }
        $off += $n;
    }
    while (1) {
        my $n = sysread $s, my $buf, 65536;
        if (!defined $n) { $rerr = "$!"; last }
        last if $n == 0;
        $reply .= $buf;
    }
    return { werr => $werr, rerr => $rerr, reply => $reply };
}

$t->scenario('too large requests', sub {
    my $want = qq({"ok":false,"code":"bad-request","error":"request too large (at most 65536 bytes)"}\n);
    for my $size ([ '100 KiB', 100 << 10 ], [ '10 MiB', 10 << 20 ]) {
        my ($name, $n) = @$size;
        my $data = 'x' x $n;
        my @bad;
        for my $i (1 .. 20) {
            my $r = big_request($data);
            push @bad, "try $i: write: '$r->{werr}', read: '$r->{rerr}', answer: '$r->{reply}'"
                if $r->{werr} || $r->{rerr} || $r->{reply} ne $want;
        }
        ok(!@bad, "$name without a newline, 20 times: the whole request is written, the answer is "
                  . "request too large, then a clean end (no reset)") or diag(join "\n", @bad[0 .. ($#bad < 3 ? $#bad : 3)]);
    }

    # one that never stops: answered, then cut off (at most 5 s after)
    local $SIG{PIPE} = 'IGNORE';
    my $s = nb_connect() or die "connect: $!";
    my $chunk = 'x' x 65536;
    my ($reply, $werr, $t0) = ('', '', time);
    my $sel = IO::Select->new($s);
    while (time - $t0 < 20) {
        my ($r, $w) = IO::Select->select($sel, $sel, undef, 1);
        if ($r && @$r) {
            my $n = sysread $s, my $buf, 65536;
            $reply .= $buf if $n;
        }
        if ($w && @$w && !defined syswrite $s, $chunk) {
            next if $! == EAGAIN;
            $werr = "$!";
            last;
        }
    }
    my $cut = time - $t0;
    while (defined(my $n = sysread $s, my $buf, 65536)) { last unless $n; $reply .= $buf }
    close $s;
    like($werr, qr/Broken pipe|Connection reset/, sprintf('a client that never stops writing is cut off (after %.2f s: %s)', $cut, $werr));
    cmp_ok($cut, '<', 10, 'within 10 s');
    is($reply, $want, 'and has its answer');
    is($t->ctl('ping')->{out}, "pong\n", 'corrald answers on');
});

# --- the first byte -------------------------------------------------------------

$t->scenario('the first byte', sub {
    my ($silent) = open_clients(1, '');
    my ($begun) = open_clients(1, $PARTIAL);
    $t->wait_for(sub { look($silent) }, 10, 'a client that sends nothing is closed');
    my $after = $silent->{closed} // 99;
    ok($after >= 0.5 && $after < 3.5, sprintf('after about 1 s, well before the 5 s a request has (%.2f s)', $after));
    is($silent->{reply}, '', 'without an answer');
    ok(!look($begun), 'one that began its request at once is still open then');
    $t->wait_for(sub { look($begun) }, 10, 'and is closed at its 5 s');
    cmp_ok($begun->{closed} // 0, '>=', 4.5, sprintf('at %.2f s', $begun->{closed} // 0));
});

# --- one user's share -------------------------------------------------------------

$t->scenario("a user's share", sub {
    my $mark = $t->mark;
    my $f = farm($NOBODY, $NOGROUP);
    my $r = ask($f, 'open 200 partial');
    is($r->{made}, 200, 'nobody (group nogroup, the control_group) opened 200 connections');
    $r = ask($f, 'wait 184 4');
    is($r->{busy}, 184, '184 of them were answered "busy" and closed at once') or diag(JSON::PP->new->encode($r));
    is($r->{open}, 16, '16 are open');

    my $ping = $t->ctl('ping');
    is($ping->{out}, "pong\n", "root's corralctl ping is answered");
    cmp_ok($ping->{elapsed}, '<', 1.5, sprintf('at once (%.2f s)', $ping->{elapsed}));
    $r = ask($f, 'look');
    is($r->{open}, 16, "the user's 16 connections are still open after root's answer");

    # the user's own corralctl, while it holds its 16
    my $own = $t->ctl('ping', { wrap => [ $SETPRIV, "--reuid=$NOBODY", "--regid=$NOGROUP", '--clear-groups', '--' ],
                                program => $prog });
    is($own->{code}, 1, "the user's own corralctl ping: exit 1");
    is($own->{err}, "corralctl: too many connections from uid $NOBODY (at most 16 at once)\n", 'saying why');

    $r = ask($f, 'wait 200 10');
    is($r->{open}, 0, 'the 16 are closed by corrald in the end');
    is($r->{answered}, 184, 'those without an answer (their requests never ended)');
    my @said = $t->log_lines(qr/ warn control: too many connections from uid $NOBODY \(at most 16 at once\): client turned away/, $mark);
    ok(@said >= 1 && @said <= 3, scalar(@said) . ' log line(s) for 185 clients turned away');
    farm_end($f);
});

# --- all other users together ---------------------------------------------------

$t->scenario('users other than root together', sub {
    my @farms = map { farm(60000 + $_, $NOGROUP) } 1 .. 7;
    my @r = map { ask($_, 'open 16 partial') } @farms;
    is(eval { my $n = 0; $n += $_->{made} for @r; $n }, 112, '7 users in control_group opened 16 connections each');
    my $sum;
    my $settled = $t->poll(sub {
        $sum = { open => 0, closed => 0, answered => 0 };
        for my $f (@farms) { my $c = ask($f, 'look'); $sum->{$_} += $c->{$_} for keys %$sum }
        return $sum->{closed} >= 16;
    }, 4);
    is($sum->{open}, 96, 'at most 96 of them are open at once') or diag(JSON::PP->new->encode($sum));
    is($sum->{answered}, 0, 'the others were closed without an answer (each newcomer took the place of the oldest)');

    my @root = open_clients(32, $PARTIAL);
    my $ping = $t->ctl('ping');
    is($ping->{out}, "pong\n", "root's corralctl ping is answered beside 32 connections of root's own");
    cmp_ok($ping->{elapsed}, '<', 1.5, sprintf('at once (%.2f s)', $ping->{elapsed}));
    is(counts(@root)->{open}, 32, "root's 32 connections are all open");
    $t->wait_for(sub { counts(@root)->{open} == 0 }, 10, "root's are closed at their 5 s");
    close $_->{sock} for @root;
    farm_end($_) for @farms;
});

$t->done;
