#!/usr/bin/perl
# Socket activation: a pool's `listen = { NAME = SPEC }`. corrald binds
# tcp: and unix: sockets itself and takes "systemd" ones from LISTEN_FDS
# (here from systemd-socket-activate in front of it); workers get them as
# fds 3.. with LISTEN_FDS, LISTEN_FDNAMES (sorted by name) and LISTEN_PID.
# corrald holds the sockets, so a client that keeps connecting while the
# config is reloaded (replacing the workers) and workers are killed is
# never refused. Sockets corrald bound go to the fd store (FDSTORE=1) and
# come back from it; a "systemd" socket that was not passed is an error.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_environ pid_alive find_program free_port);
use Errno qw(ECONNREFUSED);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(time sleep);

my $PY = find_program('python3');
plan skip_all => 'python3 not installed (Debian package python3)' unless $PY;
my $SSA = find_program('systemd-socket-activate');

my $inherit = 'env_inherit = { "CORRAL_TEST_DIR" }';


# The inode of the socket listening on 127.0.0.1:$port, from /proc/net/tcp.
sub tcp_listen_inode {
    my ($port) = @_;
    my $hex = sprintf '0100007F:%04X', $port;
    for (split /\n/, CorralTest::slurp('/proc/net/tcp') // '') {
        my @f = split ' ';
        return $f[9] if @f > 9 && $f[1] eq $hex && $f[3] eq '0A';
    }
    return undef;
}

sub socket_inode {
    my ($pid, $fd) = @_;
    my $l = readlink("/proc/$pid/fd/$fd") // '';
    return $l =~ /^socket:\[(\d+)\]$/ ? $1 : undef;
}

# A process's fds, but for epoll instances (python's selectors make one).
sub fds {
    my ($pid) = @_;
    opendir my $dh, "/proc/$pid/fd" or return '';
    return join ' ', sort { $a <=> $b }
        grep { /^\d+$/ && (readlink("/proc/$pid/fd/$_") // '') ne 'anon_inode:[eventpoll]' } readdir $dh;
}

# One request: connect, read the one-line answer. Returns (answer) or
# (undef, 'refused' | 'connect: ...' | 'no answer' | 'empty').
sub request {
    my ($addr) = @_;
    my $s = $addr =~ m{^/}
        ? IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $addr)
        : IO::Socket::INET->new(PeerAddr => $addr, Proto => 'tcp', Timeout => 15);
    return (undef, $! == ECONNREFUSED ? 'refused' : "connect: $!") unless $s;
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $deadline = time + 15;
    while ($buf !~ /\n/) {
        my $left = $deadline - time;
        return (undef, 'no answer') if $left <= 0 || !$sel->can_read($left);
        my $n = sysread $s, $buf, 256, length $buf;
        last if !$n;
    }
    close $s;
    return $buf =~ /^(\d+ \S+ \S*)\n/ ? ($1) : (undef, 'empty');
}

# Keeps requesting $addr while running @actions one after the other
# ({ name, start => sub, done => sub }), at least $min requests in all and
# 20 after the last action is done.
# Returns { n, refused, failed => [ why... ], answers => { "pid name gen" => count } }.
sub client_loop {
    my ($t, $addr, $min, @actions) = @_;
    my %r = (n => 0, refused => 0, failed => [], answers => {});
    my ($cur, $checked, $after) = (undef, 0, 0);
    my $deadline = time + 90;
    while ($r{n} < 5000 && time < $deadline) {
        if (!$cur && @actions) {
            $cur = shift @actions;
            $cur->{start}->();
        } elsif ($cur && time - $checked > 0.05) {
            $checked = time;
            if ($cur->{done}->()) {
                pass("under load: $cur->{name}");
                $cur = undef;
            }
        }
        # and some more once the last action is done
        last if !$cur && !@actions && $r{n} >= $min && $after++ >= 20;
        $t->notify_drain if $t->{notify};    # as systemd would
        my ($answer, $why) = request($addr);
        $r{n}++;
        if (defined $answer) { $r{answers}{$answer}++ }
        elsif ($why eq 'refused') { $r{refused}++ }
        else { push @{ $r{failed} }, $why }
    }
    fail("under load: $cur->{name}") if $cur;
    fail("under load: $_->{name} (not reached)") for @actions;
    $t->diag_tail(60) if $cur || @actions;
    return \%r;
}

# The python worker: serves every socket it was given, answering each
# connection with "PID NAME GEN".
my $SERVER = <<'EOF';
import os, selectors, socket, sys
n = int(os.environ["LISTEN_FDS"])
names = os.environ["LISTEN_FDNAMES"].split(":")
if os.environ.get("LISTEN_PID") != str(os.getpid()) or len(names) != n:
    sys.exit("bad LISTEN_* environment")
sel = selectors.DefaultSelector()
for i in range(n):
    s = socket.socket(fileno=3 + i)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, names[i])
gen = os.environ.get("GEN", "")
while True:
    for key, _ in sel.select():
        try:
            c, _ = key.fileobj.accept()
        except BlockingIOError:
            continue
        c.setblocking(True)
        c.sendall(("%d %s %s\n" % (os.getpid(), key.data, gen)).encode())
        c.close()
EOF

# Runs the load test against $t's pool "web" at $addr: reloads with a new
# GEN (replacing every worker), kills one worker, kills all, reloads again.
# True when web runs exactly its 2 workers, ids 1 and 2 (no surge worker of
# the rolling replacement left, which would go next), all with GEN=$g.
sub web_all_gen {
    my ($t, $g) = @_;
    return 0 unless $t->ids_settled('web', 2);
    my @w = $t->workers('web');
    return @w == 2 && !grep { (proc_environ($_)->{GEN} // '') ne $g } @w;
}

sub under_load {
    my ($t, $addr, $conf) = @_;
    my $gen = 1;
    my @gone;
    my $reload = sub {
        my ($g) = @_;
        return {
            name => "reload to GEN $g replaced both workers",
            start => sub { $t->write_config($conf->($g)); $t->reload },
            done => sub { web_all_gen($t, $g) },
        };
    };
    my @killed;
    my $r = client_loop($t, $addr, 300,
        $reload->(2),
        { name => 'a killed worker was replaced',
          start => sub { @killed = ($t->workers('web'))[0]; kill 'KILL', @killed },
          done => sub { my @w = $t->workers('web'); @w == 2 && !grep { $_ == $killed[0] } @w } },
        { name => 'both workers killed at once were replaced',
          start => sub { @killed = $t->workers('web'); kill 'KILL', @killed },
          done => sub { my %k = map { $_ => 1 } @killed; my @w = $t->workers('web'); @w == 2 && !grep { $k{$_} } @w } },
        $reload->(3),
    );
    note("$addr: answers by worker: " . join ', ', map { "$_ x$r->{answers}{$_}" } sort keys %{ $r->{answers} });
    is($r->{refused}, 0, "$addr: no connection refused in $r->{n} requests");
    cmp_ok(scalar @{ $r->{failed} }, '<=', 3, "$addr: (almost) every connection answered")
        or diag(join ', ', @{ $r->{failed} });
    my %gens = map { (split / /)[2] => 1 } keys %{ $r->{answers} };
    ok($gens{1} && $gens{2} && $gens{3}, "$addr: answers came from workers of GEN 1, 2 and 3")
        or diag(explain($r->{answers}));
    cmp_ok($r->{n}, '>=', 300, "$addr: at least 300 requests");
}

# ---- corrald's own sockets: tcp and unix --------------------------------

{
    my $port = free_port();
    my $t = CorralTest->new;
    my $unix = $t->path('ctl.sock');
    my $conf = sub {
        my ($gen) = @_;
        return <<"EOF";
pool "web" {
  command = { "$PY", "%TMP%/server.py" },
  workers = 2, env = { GEN = "$gen" }, $inherit,
  listen = { http = "tcp:127.0.0.1:$port", ctl = "unix:$unix" },
}
pool "plain" { command = "/bin/sleep 1000", env_inherit = true }
EOF
    };
    $t->write_config($conf->(1));
    $t->write_file('server.py', $SERVER);
    $t->notify_listen;
    $t->start;
    my @m = $t->notify_until(qr/^STATUS=/, 10);
    is_deeply([ sort @m[0 .. $#m - 1] ],
              [ sort "FDSTORE=1\nFDNAME=corral\@tcp\@127.0.0.1\@$port", "FDSTORE=1\nFDNAME=corral\@unix\@$unix" ],
              'own sockets offered to the fd store (FDSTORE=1, FDNAME=corral@SPEC with : as @) before the first STATUS')
        or diag(explain(\@m));
    $t->wait_log(qr/ info sockets: listening on tcp:127\.0\.0\.1:$port$/);
    $t->wait_log(qr/ info sockets: listening on unix:\Q$unix\E$/);
    $t->wait_for(sub { $t->workers('web') == 2 }, 10, 'web: 2 workers');
    ok(-S $unix, 'unix: the socket file is there');
    is((stat $unix)[2] & 07777, 0666, 'unix: socket file mode 0666 (the directory decides who connects)');

    my $corrald = $t->pid;
    my $tcp_ino = tcp_listen_inode($port);
    ok($tcp_ino, 'something listens on the tcp port');
    my %corrald_socks = map { (socket_inode($corrald, $_) // 0) => 1 } split / /, fds($corrald);
    ok($tcp_ino && $corrald_socks{$tcp_ino}, 'corrald itself holds the tcp listener');
    for my $w ($t->workers('web')) {
        my $env = proc_environ($w);
        is($env->{LISTEN_FDS}, 2, "worker $w: LISTEN_FDS=2");
        is($env->{LISTEN_FDNAMES}, 'ctl:http', "worker $w: LISTEN_FDNAMES=ctl:http (sorted by name)");
        is($env->{LISTEN_PID}, $w, "worker $w: LISTEN_PID is its pid");
        # python may still hold a file it is loading: wait for it to settle;
        # an fd leaked from corrald or the prototype would stay
        $t->wait_for(sub { fds($w) eq '0 1 2 3 4' }, 5,
                     "worker $w: fds 0-2 and the two sockets only (and its own epoll)")
            or diag 'fds: ' . fds($w);
        is(socket_inode($w, 4), $tcp_ino, "worker $w: fd 4 (http) is corrald's tcp listener");
        ok(socket_inode($w, 3) && $corrald_socks{ socket_inode($w, 3) }, "worker $w: fd 3 (ctl) is a socket corrald holds");
    }
    my ($plain) = $t->workers('plain');
    my $penv = proc_environ($plain);
    ok(!grep({ exists $penv->{$_} } qw(LISTEN_FDS LISTEN_FDNAMES LISTEN_PID)), 'a pool without listen gets no LISTEN_*');
    is(fds($plain), '0 1 2', 'a pool without listen gets no socket fds');

    my ($a) = request("127.0.0.1:$port");
    like($a // '', qr/^\d+ http 1$/, 'tcp: a worker answers on the socket named http');
    ($a) = request($unix);
    like($a // '', qr/^\d+ ctl 1$/, 'unix: a worker answers on the socket named ctl');

    under_load($t, "127.0.0.1:$port", $conf);
    is(tcp_listen_inode($port), $tcp_ino, 'the tcp listener is the same socket after reloads and restarts');

    # the unix socket under load too
    {
        my $r = client_loop($t, $unix, 200,
            { name => 'reload replaced both workers (unix)',
              start => sub { $t->write_config($conf->(20)); $t->reload },
              done => sub { web_all_gen($t, '20') } });
        is($r->{refused}, 0, "unix: no connection refused in $r->{n} requests across a reload");
        cmp_ok(scalar @{ $r->{failed} }, '<=', 3, 'unix: (almost) every connection answered')
            or diag(join ', ', @{ $r->{failed} });
    }
    @m = $t->notify_during(0.5);
    ok(!grep({ /^FDSTORE/ } @m), 'reloads keep the sockets: nothing more offered to the fd store');

    # a reload that cannot bind changes nothing
    my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1) or die $!;
    my $busy_port = $busy->sockport;
    my $good = CorralTest::slurp($t->conf);
    (my $bad = $good) =~ s/listen = \{/listen = { extra = "tcp:127.0.0.1:$busy_port",/;
    $t->write_config($bad);
    my $mark = $t->mark;
    my @before = $t->workers('web');
    $t->reload;
    $t->wait_log(qr/ error reload failed, keeping the running configuration: pool "web": listen\.extra: unable to listen on tcp:127\.0\.0\.1:$busy_port: Address already in use$/,
                 since => $mark);
    is_deeply([ $t->workers('web') ], \@before, 'failed reload: same workers');
    is(tcp_listen_inode($port), $tcp_ino, 'failed reload: same listener');
    close $busy;

    # a reload that drops the sockets closes them (and leaves the store)
    $t->write_config(qq{pool "plain" { command = "/bin/sleep 1000", env_inherit = true }\n});
    $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/ info sockets: closed tcp:127\.0\.0\.1:$port, no pool uses it$/, since => $mark);
    $t->wait_log(qr/ info sockets: closed unix:\Q$unix\E, no pool uses it$/, since => $mark);
    @m = grep { /^FDSTORE/ } $t->notify_during(0.5);
    is_deeply([ sort @m ], [ sort "FDSTOREREMOVE=1\nFDNAME=corral\@tcp\@127.0.0.1\@$port", "FDSTOREREMOVE=1\nFDNAME=corral\@unix\@$unix" ],
              'dropped sockets removed from the fd store');
    ok(!defined tcp_listen_inode($port), 'tcp: no longer listening');
    ok(!-e $unix, 'unix: socket file removed');
    my (undef, $why) = request("127.0.0.1:$port");
    is($why, 'refused', 'tcp: now refused');
    $t->check_invariants;
}

# ---- systemd-socket-activate in front of corrald -------------------------

SKIP: {
    skip 'systemd-socket-activate not installed (Debian package systemd)', 1 unless $SSA;
    my $port = free_port();
    my $t = CorralTest->new(
        wrap => [ $SSA, '-l', "127.0.0.1:$port", '--fdname=web', '-E', 'CORRAL_TEST_DIR' ]);
    my $admin = $t->path('admin.sock');
    my $conf = sub {
        my ($gen) = @_;
        return <<"EOF";
pool "web" {
  command = { "$PY", "%TMP%/server.py" },
  workers = 2, env = { GEN = "$gen" }, $inherit,
  listen = { web = "systemd", admin = "unix:$admin" },
}
pool "plain" { command = "/bin/sleep 1000", env_inherit = true }
EOF
    };
    $t->write_config($conf->(1));
    $t->write_file('server.py', $SERVER);
    $t->start;
    $t->wait_for(sub { defined tcp_listen_inode($port) }, 10, 'systemd-socket-activate listens');
    ok(!$t->log_lines(qr/corrald .* starting/), 'corrald not started before the first connection');
    my ($a, $why) = request("127.0.0.1:$port");
    like($a // $why, qr/^\d+ web 1$/, 'the first connection starts corrald and a worker answers it');
    $t->wait_log(qr/ info sockets: took fd 3 from systemd \(web\)$/);
    ok(!$t->log_lines(qr/ sockets: listening on tcp/), 'corrald did not bind the systemd socket itself');
    is(CorralTest::proc_cmdline($t->pid) =~ /corrald/ ? 1 : 0, 1, 'systemd-socket-activate exec\'d corrald in place');
    $t->wait_for(sub { $t->workers('web') == 2 }, 10, 'web: 2 workers');
    for my $w ($t->workers('web')) {
        my $env = proc_environ($w);
        is("$env->{LISTEN_FDS} $env->{LISTEN_FDNAMES} $env->{LISTEN_PID}", "2 admin:web $w",
           "worker $w: LISTEN_FDS=2 LISTEN_FDNAMES=admin:web LISTEN_PID=$w");
        is(socket_inode($w, 4), tcp_listen_inode($port), "worker $w: fd 4 is systemd's socket");
    }
    my ($plain) = $t->workers('plain');
    my $penv = proc_environ($plain);
    ok(!grep({ exists $penv->{$_} } qw(LISTEN_FDS LISTEN_FDNAMES LISTEN_PID)),
       'corrald\'s own LISTEN_* are not passed on (env_inherit = true)');
    is(fds($plain), '0 1 2', 'systemd\'s fd is not leaked to other pools');
    ($a) = request($admin);
    like($a // '', qr/^\d+ admin 1$/, 'the unix socket corrald bound answers too');

    my $ino = tcp_listen_inode($port);
    under_load($t, "127.0.0.1:$port", $conf);
    is(tcp_listen_inode($port), $ino, 'systemd\'s socket is the same after reloads and restarts');

    # a reload that does not name systemd's socket keeps it all the same
    (my $without = $conf->(4)) =~ s/web = "systemd", //;
    $t->write_config($without);
    my $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/ info reload done: /, since => $mark);
    $t->wait_for(sub { web_all_gen($t, '4') },
                 10, 'reload without the systemd socket: new workers');
    is((proc_environ(($t->workers('web'))[0])->{LISTEN_FDNAMES} // ''), 'admin', 'the new workers get only admin');
    ok(!$t->log_lines(qr/ sockets: closed /, $mark), 'systemd\'s socket not closed');
    is(tcp_listen_inode($port), $ino, 'systemd\'s socket still open, the same');
    $t->write_config($conf->(5));
    $mark = $t->mark;
    $t->reload;
    $t->wait_for(sub { web_all_gen($t, '5') },
                 10, 'reload naming it again: new workers');
    ($a, $why) = request("127.0.0.1:$port");
    like($a // $why, qr/^\d+ web 5$/, 'named again: served through systemd\'s socket');
    $t->check_invariants;
}

# ---- the fd store gives corrald its own socket back ----------------------

SKIP: {
    skip 'systemd-socket-activate not installed (Debian package systemd)', 1 unless $SSA;
    my $port = free_port();
    my $t = CorralTest->new(
        wrap => [ $SSA, '-l', "127.0.0.1:$port", "--fdname=corral\@tcp\@127.0.0.1\@$port", '-E', 'CORRAL_TEST_DIR' ],
        config => <<"EOF");
pool "web" {
  command = { "$PY", "%TMP%/server.py" }, $inherit,
  listen = { http = "tcp:127.0.0.1:$port" },
}
EOF
    $t->write_file('server.py', $SERVER);
    $t->start;
    $t->wait_for(sub { defined tcp_listen_inode($port) }, 10, 'systemd-socket-activate listens');
    my ($a, $why) = request("127.0.0.1:$port");
    like($a // $why, qr/^\d+ http $/, 'a stored socket (FDNAME=corral@tcp@...) is taken back: the worker answers');
    $t->wait_log(qr/ info sockets: took fd 3 from systemd \(corral\@tcp\@127\.0\.0\.1\@$port\)$/);
    ok(!$t->log_lines(qr/ sockets: listening on /), 'not bound again (it would fail: the port is taken)');
    ok(!$t->log_lines(qr/ error /), 'no error');
    $t->check_invariants;
}

# ---- a stored socket no pool names any more leaves the store ------------

SKIP: {
    skip 'systemd-socket-activate not installed (Debian package systemd)', 1 unless $SSA;
    my $port = free_port();
    my $t = CorralTest->new(
        wrap => [ $SSA, '-l', "127.0.0.1:$port", "--fdname=corral\@tcp\@127.0.0.1\@$port",
                  '-E', 'CORRAL_TEST_DIR', '-E', 'NOTIFY_SOCKET' ],
        config => qq{pool "plain" { command = "/bin/sleep 1000", $inherit }\n});
    $t->notify_listen;
    $t->start;
    $t->wait_for(sub { defined tcp_listen_inode($port) }, 10, 'systemd-socket-activate listens');
    request("127.0.0.1:$port");    # starts corrald; nobody will answer it
    my @m = $t->notify_until(qr/^STATUS=/, 10);
    is($m[0], "FDSTOREREMOVE=1\nFDNAME=corral\@tcp\@127.0.0.1\@$port", 'an unused stored socket: FDSTOREREMOVE=1 with its name')
        or diag(explain(\@m));
    $t->wait_log(qr/ info sockets: closed stored:corral\@tcp\@127\.0\.0\.1\@$port, no pool uses it$/);
    ok(!defined tcp_listen_inode($port), 'and closed: the port is free');
    $t->check_invariants;
}

# ---- unix sockets: stale ones replaced, others refused, removed at exit --

{
    my $t = CorralTest->new;
    my ($stale, $file) = ($t->path('stale.sock'), $t->path('file.sock'));
    # a socket file nobody listens on any more
    my $old = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $stale, Listen => 1) or die "$stale: $!";
    close $old;
    ok(-S $stale, 'a stale socket file');
    $t->write_file('file.sock', "not a socket\n");
    $t->write_config(<<"EOF");
pool "web" { command = { "$PY", "%TMP%/server.py" }, $inherit, listen = { s = "unix:$file" } }
EOF
    $t->write_file('server.py', $SERVER);
    my $r = $t->run('-c', $t->conf, '-g', $t->{cgroup});
    is($r->{code}, 1, 'a file that is not a socket at the path: exit 1');
    like($r->{err} . $r->{out}, qr/pool "web": listen\.s: unable to listen on unix:\Q$file\E: something that is not a socket is at that path/,
         '... saying so');
    is(CorralTest::slurp($file), "not a socket\n", '... and the file is left alone');
    ok(!-e $t->cgroup_dir, '... and no cgroup left');

    $t->write_config(<<"EOF");
pool "web" { command = { "$PY", "%TMP%/server.py" }, $inherit, listen = { s = "unix:$stale" } }
EOF
    $t->start;
    $t->wait_log(qr/ info sockets: listening on unix:\Q$stale\E$/, name => 'a stale socket file is replaced');
    my ($a) = request($stale);
    like($a // '', qr/^\d+ s $/, 'and served');
    is($t->stop, 0, 'stop: exit 0');
    ok(!-e $stale, 'the socket file is removed at exit');
    $t->check_invariants;

    for my $spec ('tcp:localhost:80', 'tcp:127.0.0.1', 'udp:127.0.0.1:80', 'unix:relative') {
        $t->write_config(qq{pool "web" { command = "/bin/sleep 1", listen = { s = "$spec" } }\n});
        my $c = $t->run_check;
        is($c->{code}, 1, "config: listen $spec: exit 1");
        like($c->{err}, qr/listen\.s: expected "tcp:ADDRESS:PORT" \(numeric, \[v6\] in brackets\), "unix:\/PATH" or "systemd", got "\Q$spec\E"/,
             "config: listen $spec: says what is expected");
    }
}

# ---- a "systemd" socket that systemd did not pass ------------------------

{
    my $t = CorralTest->new(config => <<"EOF");
pool "web" {
  command = { "$PY", "%TMP%/server.py" }, $inherit,
  listen = { http = "systemd" },
}
EOF
    local $ENV{LISTEN_FDS};
    local $ENV{LISTEN_PID};
    local $ENV{LISTEN_FDNAMES};
    delete @ENV{qw(LISTEN_FDS LISTEN_PID LISTEN_FDNAMES)};
    my $r = $t->run('-c', $t->conf, '-g', $t->{cgroup});
    is($r->{code}, 1, 'missing systemd socket: exit 1');
    like($r->{err} . $r->{out}, qr/pool "web": listen\.http: systemd passed no socket named http/,
         'missing systemd socket: the error names the pool and the socket');
    ok(!-e $t->cgroup_dir, 'missing systemd socket: no cgroup left');
    my @left = grep { CorralTest::proc_cmdline($_) =~ /\Q${\$t->dir}\E/ } CorralTest::all_pids();
    is_deeply(\@left, [], 'missing systemd socket: no process left');
}

CorralTest->done;
