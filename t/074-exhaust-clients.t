#!/usr/bin/perl
# Thousands of control clients. 3,000 connections opened as fast as the
# socket takes them and held: a third idle, a third with half a request,
# a third asking ping. corrald keeps its 128 connections, and for each
# newcomer closes the oldest that has not sent a request, so that: every
# client that asked is answered, a corralctl ping in the middle of it is
# answered within 3 s (it waits behind at most the listen backlog, 128
# connections accepted in microseconds each; 3 s is for a busy machine,
# against the 5 s per 128 that waiting for idle clients to time out would
# take), corrald does not spin while they are held, its pools are
# untouched, it says once that it is crowded, and its fds come back.
# Then corrald out of fds (RLIMIT_NOFILE): accept() fails with EMFILE;
# corrald says so once, rests instead of spinning, and accepts again once
# fds are free.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_stat find_program);
use IO::Select;
use POSIX qw(:errno_h);
use Socket qw(AF_UNIX SOCK_STREAM SOCK_NONBLOCK pack_sockaddr_un);
use Test::More;
use Time::HiRes qw(time sleep);

my $prlimit = find_program('prlimit') or plan skip_all => 'needs prlimit (util-linux)';
my $N = 3000;

# Our own RLIMIT_NOFILE: the soft limit up to the hard one (no privilege).
my ($soft, $hard) = (CorralTest::slurp("/proc/$$/limits") // '') =~ /^Max open files\s+(\S+)\s+(\S+)/m;
system($prlimit, '--pid', $$, "--nofile=$hard:") == 0 or diag("unable to raise RLIMIT_NOFILE to $hard");
($soft) = (CorralTest::slurp("/proc/$$/limits") // '') =~ /^Max open files\s+(\S+)/m;
plan skip_all => "RLIMIT_NOFILE of $soft is too low for $N clients" if $soft ne 'unlimited' && $soft < $N + 200;

my $config = <<'EOF';
local inherit = { "CORRAL_TEST_DIR" }
pool "web" { command = "/bin/sleep 1000", workers = 2, env_inherit = inherit }
pool "other" { command = "/bin/sleep 1000", workers = 1, env_inherit = inherit }
EOF

# corrald's CPU time (utime + stime) in seconds.
sub cpu {
    my $st = proc_stat($_[0]) or return 0;
    return ($st->{utime} + $st->{stime}) / 100;
}

# A non-blocking connection, or undef with $! (EAGAIN: the backlog is full).
sub nb_connect {
    my ($path) = @_;
    socket(my $s, AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0) or die "socket: $!";
    return $s if connect($s, pack_sockaddr_un($path));
    return undef;
}

# Reads what has come on each client; notes when corrald closed it.
sub look {
    my ($c) = @_;
    return 1 if $c->{closed};
    while (1) {
        my $n = sysread $c->{sock}, my $buf, 4096;
        if (defined $n && $n > 0) { $c->{reply} .= $buf; next }
        return 0 if !defined $n && $! == EAGAIN;
        return $c->{closed} = 1;
    }
}

my $t = CorralTest->new(config => $config);
$t->start;
$t->wait_control;
$t->wait_for(sub { $t->workers('web') == 2 && $t->workers('other') == 1 }, 10, 'pools up');
my %web = $t->worker_map('web');
my %other = $t->worker_map('other');

$t->scenario("$N clients at once", sub {
    local $SIG{PIPE} = 'IGNORE';
    my $path = $t->socket_path;
    my (@c, $ping, $full);
    my $deadline = time + 60;
    my $t0 = time;
    while (@c < $N && time < $deadline) {
        my $s = nb_connect($path);
        if (!$s) {
            die "connect: $!" unless $! == EAGAIN;
            $full++;
            sleep 0.001;    # the backlog is full: corrald is catching up
            next;
        }
        my $kind = @c % 3;
        syswrite $s, '{"command":"pi' if $kind == 1;
        syswrite $s, qq({"command":"ping"}\n) if $kind == 2;
        push @c, { sock => $s, kind => $kind, reply => '' };
        $ping = $t->ctl_spawn('ping') if @c == $N / 2;
    }
    is(scalar @c, $N, sprintf('%d connections made in %.1f s (the backlog was full %d times)',
                               scalar @c, time - $t0, $full // 0));
    my $r = $t->ctl_wait($ping, 30);
    is($r->{out}, "pong\n", 'a corralctl ping amid them is answered');
    cmp_ok($r->{elapsed}, '<', 3, sprintf('within 3 s (%.2f s)', $r->{elapsed}));

    # every client that asked gets its answer
    my @askers = grep { $_->{kind} == 2 } @c;
    $t->wait_for(sub { !grep { !look($_) } @askers }, 30, 'every client that asked ping was answered and closed');
    my @unanswered = grep { $_->{reply} !~ /"pong":true/ } @askers;
    is(scalar @unanswered, 0, scalar(@askers) . ' clients asked ping: all got pong');

    # held: corrald rests, answers, keeps its pools
    look($_) for @c;
    my $cpu0 = cpu($t->pid);
    my $w0 = time;
    $r = $t->ctl('ping');
    is($r->{out}, "pong\n", 'a ping while they are held is answered');
    cmp_ok($r->{elapsed}, '<', 3, sprintf('within 3 s (%.2f s)', $r->{elapsed}));
    sleep 0.1 while time - $w0 < 2;
    my $used = cpu($t->pid) - $cpu0;
    cmp_ok($used, '<', 0.5, sprintf('corrald does not spin while they are held (%.2f s CPU in %.1f s)', $used, time - $w0));
    my $st = $t->status;
    ok($st && $st->{web} && $st->{other}, 'status answers with both pools');
    is(scalar(grep { / warn control: 128 connections open, the most there may be/ } split /\n/, $t->log), 1,
       'corrald says once that it is crowded');

    close $_->{sock} for @c;
    $t->wait_log(qr/ info control: \d+ connections open, no longer crowded$/, timeout => 15,
                 name => 'and that it is no longer, once they go');
    is($t->ctl('ping')->{out}, "pong\n", 'ping once they have gone');
    is_deeply({ $t->worker_map('web') }, \%web, 'web untouched');
    is_deeply({ $t->worker_map('other') }, \%other, 'other untouched');
});

# --- out of fds: accept() fails with EMFILE -------------------------------------

# The hard limit too, as corrald raises its soft limit to the hard one.
# It cannot be low enough for a few clients to use up (corrald refuses a
# config whose pools it could not hold within it, counting 128 control
# connections), so the config itself takes most of them: about 40 are
# left for connections.
my $t2 = CorralTest->new(wrap => [ $prlimit, '--nofile=256:256' ], config => $config . <<'EOF');
local hog = {}
for i = 1, 196 do hog[i] = assert(io.open("/dev/null")) end
pool "hog" { command = "/bin/sleep 1000", workers = 0, prefork = function() return #hog end }
EOF
$t2->start;
$t2->wait_control;
$t2->wait_for(sub { $t2->workers('web') == 2 && $t2->workers('other') == 1 }, 10, 'EMFILE: pools up');
my %web2 = $t2->worker_map('web');
my %other2 = $t2->worker_map('other');

$t2->scenario('out of fds', sub {
    local $SIG{PIPE} = 'IGNORE';
    my @c;
    for (1 .. 80) {
        my $s = nb_connect($t2->socket_path) or last;
        # a request begun: held for 5 s (one that sends nothing goes after 1 s)
        syswrite $s, '{"command":"pi';
        push @c, { sock => $s, reply => '' };
    }
    cmp_ok(scalar @c, '>=', 60, scalar(@c) . ' clients with half a request connected');
    # at once: they are closed after 5 s, and fds are free again
    my $cpu0 = cpu($t2->pid);
    my $w0 = time;
    sleep 0.1 while time - $w0 < 2;
    my $used = cpu($t2->pid) - $cpu0;
    cmp_ok($used, '<', 0.5, sprintf('corrald does not spin (%.2f s CPU in %.1f s)', $used, time - $w0));
    $t2->wait_log(qr/ error control: unable to accept a connection: Too many open files; retrying every 250 ms$/,
                  name => 'corrald says accept() fails with EMFILE');
    is(scalar(grep { /unable to accept/ } split /\n/, $t2->log), 1, 'it says so once');
    ok(kill(0, $t2->pid), 'corrald is running');
    # a worker to replace while corrald has no fd to spare (its cgroup's,
    # or the pidfd and channel the prototype sends): it says why and
    # retries; the replacement comes once fds are free
    my $mark = $t2->mark;
    kill 'KILL', $web2{1};
    my ($why) = $t2->wait_log(qr/ error .*(Too many open files|out of file descriptors).* pool=web worker=\d+/, since => $mark,
                              name => 'a worker cannot be replaced: corrald says why');
    note($why // '');
    close $_->{sock} for @c;
    $t2->wait_log(qr/ info control: accepting connections again$/, timeout => 10,
                  name => 'it accepts again once fds are free');
    my $r = $t2->ctl('ping');
    is($r->{out}, "pong\n", 'ping is answered again');
    cmp_ok($r->{elapsed}, '<', 3, sprintf('at once (%.2f s)', $r->{elapsed}));
    # a spawn that failed (whichever way) armed a retry
    $t2->wait_for(sub { $t2->workers('web') == 2 }, 10, 'web is back to 2 workers');
    my %now = $t2->worker_map('web');
    is($now{2}, $web2{2}, 'its other worker is untouched');
    is_deeply({ $t2->worker_map('other') }, \%other2, 'the other pool is untouched');
});

$t->done;
