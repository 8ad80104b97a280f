#!/usr/bin/perl
# Nothing a prototype starts outlives it, and a stop that leaves anything
# behind says so. 1. What prefork forks (a background sleep, and a daemon
# double-forked into a session of its own) lives in <pool>/prototype; it
# dies with the prototype: on corralctl restart, on a kill -9 of the
# prototype, and on corrald's stop, and the next prototype runs. 2. A
# cgroup corrald cannot remove (one the test makes inside a pool's) makes
# the stop log what is left (path, pids) and exit 3. 3. os.exit (however
# reached) and os.execute are refused in config and plugin code, which
# runs inside corrald, with errors naming them; corrald and its workers
# go on. The hooks keep them.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_stat proc_cmdline pid_alive cgroup_of);
use POSIX ();
use Test::More;

sub cmd_of { (my $c = proc_cmdline($_[0]) // '') =~ tr/\0/ /; $c =~ s/ $//; return $c }

# prefork leaves sleep 1087 in the background, and a daemon (sleep 1088)
# double-forked into its own session
my $t = CorralTest->new(config => <<'EOF');
pool "pf" { command = "/bin/sleep 1000", workers = 2, env_inherit = { "CORRAL_TEST_DIR" },
            prefork = function()
              require("os").execute("sleep 1087 & (setsid sh -c 'sleep 1088 &' &)")
            end }
EOF
$t->start;
$t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=pf$/);

# { command => pid } of what the prototype's cgroup holds once it has
# both sleeps and its prototype
sub proto_tree {
    my ($name) = @_;
    my %by;
    $t->wait_for(sub {
        %by = map { cmd_of($_) => $_ } $t->cgroup_procs('pf/prototype');
        $by{'sleep 1087'} && $by{'sleep 1088'} && $t->prototype_pid('pf');
    }, 10, $name) or diag(join "\n", map { "$_: $by{$_}" } sort keys %by);
    return \%by;
}

my $tree = proto_tree('prefork: both sleeps in the prototype cgroup');
my $proto = $t->prototype_pid('pf');
if (my $d = $tree->{'sleep 1088'}) {
    isnt(proc_stat($d)->{session}, proc_stat($proto)->{session}, "the daemon has a session of its own");
    is(cgroup_of($d), $t->cgroup_rel('pf/prototype'), 'the daemon is in the prototype cgroup');
}
my @workers = sort { $a <=> $b } $t->workers('pf');

# restart: a new prototype; what the old one's prefork left is gone
my $mark = $t->mark;
is($t->ctl('restart', 'pf')->{code}, 0, 'corralctl restart pf');
$t->wait_for(sub { !grep { pid_alive($_) } values %$tree }, 5,
             'restart: the old prefork sleeps are gone');
my $new = $t->wait_for(sub { my $p = $t->prototype_pid('pf'); $p && $p != $proto && $p }, 10,
                       'restart: a new prototype');
$t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=pf$/, since => $mark);
my $tree2 = proto_tree('restart: the new prefork sleeps run in the prototype cgroup');
ok(!grep({ $tree->{$_} == $tree2->{$_} } keys %$tree2), 'restart: they are new ones');

# kill -9 of the prototype: what it left dies; a new one comes
$mark = $t->mark;
my $killed = $t->prototype_pid('pf');
kill 'KILL', $killed;
$t->wait_log(qr/ warn prototype exited unexpectedly .* pool=pf pid=$killed$/, since => $mark);
$t->wait_for(sub { !grep { pid_alive($_) } values %$tree2 }, 5,
             'kill -9: the prefork sleeps are gone');
$t->wait_for(sub { my $p = $t->prototype_pid('pf'); $p && $p != $killed }, 10,
             'kill -9: a new prototype');
my $tree3 = proto_tree('kill -9: the new prefork sleeps run');

# stop: nothing is left, the base goes, exit 0
is($t->stop, 0, 'stop: corrald exits 0');
ok(!grep({ pid_alive($_) } values %$tree3), 'stop: the prefork sleeps are gone');
ok(!-e $t->cgroup_dir, 'stop: the cgroup base is gone');

# --- a cgroup corrald cannot remove ---------------------------------------

my $u = CorralTest->new(config => <<'EOF');
pool "p" { command = "/bin/sleep 1000", env_inherit = { "CORRAL_TEST_DIR" } }
EOF
$u->start;
$u->wait_log(qr/ info pool ready \(1\/1 workers\) pool=p$/);
my $extra = $u->cgroup_dir('p/extra');
mkdir $extra or die "mkdir $extra: $!";
my $held = fork // die "fork: $!";
if (!$held) { exec('/bin/sleep', '1089') or POSIX::_exit(127) }
{
    open my $fh, '>', "$extra/cgroup.procs" or die "$extra/cgroup.procs: $!";
    print $fh "$held\n";
    close $fh or die "moving $held into $extra: $!";
}
$mark = $u->mark;
is($u->stop, 3, 'left behind: corrald exits 3');
my $base = $u->cgroup_dir;
ok(scalar $u->log_lines(qr/ error cgroup: unable to remove the pool's cgroup \Q$base\E\/p: .* pool=p$/),
   "left behind: the pool's cgroup is named");
ok(scalar $u->log_lines(qr/ error cgroup: left behind: \Q$extra\E \(pids: (?:[\d ]+|none)\) pool=p$/),
   'left behind: so is the cgroup inside it, with its pids');
ok(scalar $u->log_lines(qr/ error stopped, but left processes or cgroups behind .*: exit status 3$/),
   'left behind: the exit status is explained');
ok($u->wait_for(sub { waitpid($held, POSIX::WNOHANG()) == $held }, 5, 'left behind: the process in it was killed at exit'),
   'left behind: reaped');
kill 'KILL', $held;
waitpid $held, 0;
rmdir $extra;
rmdir $u->cgroup_dir('p');
rmdir $base;

# --- os.exit and os.execute inside corrald --------------------------------

my $v = CorralTest->new(config => <<'EOF');
pool "w" { command = "/bin/sleep 1000", workers = 2, env_inherit = { "CORRAL_TEST_DIR" } }
pool "hook" { command = "/bin/sleep 1000", restart = "never", env_inherit = { "CORRAL_TEST_DIR" },
              setup = function() os.exit(5) end }
plugin "exiter" {}
EOF
$v->write_file('plugins/exiter.lua', <<'EOF');
corral.on("config", function()
  corral.after(0.1, function() require("os").exit(9) end)
  corral.after(0.2, function() os.exit(8) end)
  corral.after(0.3, function() require("_G").os.execute("sleep 1000") end)
end)
EOF
$v->start;
$v->wait_log(qr/ info pool ready \(2\/2 workers\) pool=w$/);
my @w = sort { $a <=> $b } $v->workers('w');
my $pl = $v->path('plugins/exiter.lua');
for ([ 2, 'exit' ], [ 3, 'exit' ], [ 4, 'execute' ]) {
    my ($line, $fn) = @$_;
    $v->wait_log(qr/ error plugin exiter: .*\Q$pl\E:$line: os\.$fn: not allowed in plugin code, which runs inside corrald/);
}
$v->wait_log(qr/ warn worker exited with status 5 pool=hook worker=1 pid=\d+$/);
pass('a setup hook may call os.exit: the worker exits with its status');
ok(pid_alive($v->pid), 'corrald still runs');
is($v->ctl('ping')->{code}, 0, 'and answers');
is_deeply([ sort { $a <=> $b } $v->workers('w') ], \@w, 'its workers are the same');

# the config: refused at reload, with corrald going on, and at a check
my $file = $v->conf;
for my $case ([ 'require("os").exit(7)', 'exit' ], [ 'require("_G").os.exit(7)', 'exit' ],
              [ 'require("package").loaded.os.execute("true")', 'execute' ],
              [ 'require("io").popen("true")', 'popen' ]) {
    my ($code, $fn) = @$case;
    my $lib = $fn eq 'popen' ? 'io' : 'os';
    $v->write_config(qq{pool "w" { command = "/bin/sleep 1000", workers = 2 }\n$code\n});
    my $r = $v->ctl('reload');
    isnt($r->{code}, 0, "reload with $code: refused");
    like($r->{out} . $r->{err}, qr/\Q$file\E:2: \Q$lib.$fn\E: not allowed in config code/, "reload with $code: the error names $lib.$fn");
    my $c = $v->run_check;
    is($c->{code}, 1, "corrald -t with $code: exit 1");
    like($c->{err}, qr/^corrald: \Q$file\E:2: \Q$lib.$fn\E: not allowed in config code, which runs inside corrald/,
         "corrald -t with $code: the error names $lib.$fn");
}
ok(pid_alive($v->pid), 'corrald still runs after the refused reloads');
is_deeply([ sort { $a <=> $b } $v->workers('w') ], \@w, 'with the same workers');
$v->write_config(qq{pool "w" { command = "/bin/sleep 1000", workers = 2, env_inherit = { "CORRAL_TEST_DIR" } }\n});
is($v->ctl('reload')->{code}, 0, 'a good config reloads');

$t->done;
