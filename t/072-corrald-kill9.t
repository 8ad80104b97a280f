#!/usr/bin/perl
# corrald killed with SIGKILL at awkward moments (in the middle of a
# reload, of a burst of 50 spawns, of a stop, and at random delays after
# its start), then a new corrald on the same config and cgroup base:
#
#   - the old prototypes die with the old corrald (PR_SET_PDEATHSIG), before
#     the new one starts;
#   - the old workers (and their children) outlive it, in their cgroups,
#     until the new corrald's startup cleanup of the base kills them and
#     removes their cgroups;
#   - no cgroup is left under the base but the new run's: corrald/, one per
#     pool, POOL/prototype and POOL/ID of its live workers;
#   - the pools reach their targets, corralctl ping and status work, and the
#     new corrald stops cleanly, leaving nothing.
#
# Then the state a kill between a pool cgroup's two mkdirs (or rmdirs)
# leaves, made by hand: an empty POOL/ without prototype/.
#
# The moments are drawn from a seed, printed: CORRAL_TEST_SEED=N repeats a
# run.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive cgroup_of descends_from);
use CorralProc ();
use POSIX qw(WIFSIGNALED WTERMSIG);
use Test::More;
use Time::HiRes qw(sleep time);

my $seed = $ENV{CORRAL_TEST_SEED} // (time() ^ ($$ << 8)) % 1_000_000;
srand($seed);
diag("seed $seed (CORRAL_TEST_SEED=$seed repeats these moments)");

# Pools by name: [ lua source, target ].
my %POOL = (
    # a worker that leaves a child behind in its cgroup
    plain => [ q{{ command = { "/bin/sh", "-c", "/bin/sleep 1001 & exec /bin/sleep 1000" }, workers = 3,
                   env_inherit = inherit }}, 3 ],
    # ignores TERM: a stop or a removal waits stop_timeout for it
    stubborn => [ q{{ command = { "/bin/sh", "-c", "trap '' TERM; /bin/sleep 1002 & exec /bin/sleep 1000" },
                      workers = 2, stop_timeout = "4s", env_inherit = inherit }}, 2 ],
    # Lua workers, forked from a prototype that ran prefork
    luaw => [ q{{ workers = 2, env_inherit = inherit,
                  prefork = function() return { t = corral.now() } end,
                  start = function() while not corral.sleep(3600) do end end }}, 2 ],
    # reload: plain changed and grown, stubborn removed, added added
    plain2 => [ q{{ command = { "/bin/sh", "-c", "/bin/sleep 1001 & exec /bin/sleep 2000" }, workers = 4,
                    env_inherit = inherit }}, 4 ],
    added => [ q{{ command = "/bin/sleep 1004", workers = 5, env_inherit = inherit }}, 5 ],
    burst => [ q{{ command = "/bin/sleep 1005", workers = 50, env_inherit = inherit }}, 50 ],
);

# The config text of pools NAME => KEY (of %POOL); the target of each.
sub config {
    my (%pools) = @_;
    my $text = qq{local inherit = { "CORRAL_TEST_DIR" }\n};
    $text .= qq{pool "$_" $POOL{$pools{$_}}[0]\n} for sort keys %pools;
    return ($text, { map { $_ => $POOL{$pools{$_}}[1] } keys %pools });
}

my ($CONF_A, $WANT_A) = config(plain => 'plain', stubborn => 'stubborn', luaw => 'luaw');
my ($CONF_B, $WANT_B) = config(plain => 'plain2', luaw => 'luaw', added => 'added');
my ($CONF_C, $WANT_C) = config(plain => 'plain', burst => 'burst');

# A test: every pool of %$want is running with all its workers ready.
sub pools_up {
    my ($t, $want, $what, $timeout) = @_;
    my $st;
    my $ok = $t->poll(sub {
        $st = $t->status or return 0;
        return !grep {
            my $p = $st->{$_};
            !$p || $p->{state} ne 'running' || $p->{ready} != $want->{$_}
        } keys %$want;
    }, $timeout // 30);
    ok($ok, "$what: every pool reaches its target (" .
       join(', ', map { "$_ $want->{$_}" } sort keys %$want) . ')') or do {
        diag('status: ' . join(', ', map { "$_ $st->{$_}{state} $st->{$_}{ready}/$st->{$_}{target}" } sort keys %{ $st || {} }));
        $t->diag_tail;
    };
    return $ok;
}

# The log lines of $t that match $re, counted.
sub count_log { my ($t, $re) = @_; return scalar $t->log_lines($re) }

# Each moment starts corrald on a config, brings it to the moment, and
# returns [ its name, the config the new corrald runs on ]; the caller
# kills corrald right then.
my @moments = (
    [ 'mid reload', sub {
        my ($t) = @_;
        $t->write_config($CONF_A);
        $t->start;
        pools_up($t, $WANT_A, 'mid reload, before it');
        $t->write_config($CONF_B);
        my $mark = $t->mark;
        $t->reload;
        # the moment: within 20 ms of the HUP (before corrald read the new
        # file, or while it applies it), as soon as the log says the reload
        # began, or up to 0.3 s later, while the added pool's workers come
        # and the removed stubborn pool waits for its workers (4 s)
        my $how = rand 3;
        if ($how < 1) {
            my $d = rand 0.02;
            sleep $d;    # the moment itself, not a wait for something
            note(sprintf 'mid reload: killed %.3f s after the HUP', $d);
        } else {
            $t->poll(sub { $t->log_lines(qr/ info reload requested$/, $mark) }, 10)
                or fail('mid reload: corrald took the reload');
            my $extra = $how < 2 ? 0 : rand(0.3);
            sleep $extra if $extra;
            note(sprintf 'mid reload: killed %.3f s after "reload requested"', $extra);
        }
        note('mid reload: ' . ($t->log_lines(qr/ info reload done: /, $mark) ? 'after' : 'before')
             . ' "reload done"');
        return $WANT_B;
    } ],
    [ 'mid spawn burst of 50', sub {
        my ($t) = @_;
        $t->write_config($CONF_C);
        $t->start;
        my $k = 5 + int rand 30;
        $t->poll(sub { count_log($t, qr/ info worker started pool=burst /) >= $k }, 30);
        my $n = count_log($t, qr/ info worker started pool=burst /);
        note("mid spawn burst: killed with $n of 50 burst workers started (aimed at $k)");
        ok($n < 50, "mid spawn burst: killed before all 50 burst workers started ($n)");
        return $WANT_C;
    } ],
    [ 'mid stop', sub {
        my ($t) = @_;
        $t->write_config($CONF_A);
        $t->start;
        pools_up($t, $WANT_A, 'mid stop, before it');
        my %plain = $t->worker_map('plain');
        my $mark = $t->mark;
        $t->signal('TERM');
        $t->poll(sub { $t->log_lines(qr/ info stopping \(TERM\)$/, $mark) }, 10)
            or fail('mid stop: corrald began to stop');
        # then: right away, or once the plain workers went (stubborn ones
        # wait out their 4 s)
        if (rand() < 0.5) {
            $t->wait_for(sub { !grep { pid_alive($_) } values %plain }, 10, 'mid stop: the plain workers went');
            sleep rand(0.2);
        }
        ok(scalar($t->workers('stubborn')), 'mid stop: the stubborn workers still run');
        ok(pid_alive($t->pid), 'mid stop: corrald has not finished stopping');
        return $WANT_A;
    } ],
    # one early in the start (config, cgroups, prototypes), one while the
    # workers come, one at any time in the first second and a half
    map({
        my $delay = $_->[0] + rand($_->[1]);
        [ sprintf('%.3f s after start', $delay), sub {
            my ($t) = @_;
            $t->write_config($CONF_A);
            $t->start;
            sleep $delay;    # the moment itself, not a wait for something
            return $WANT_A;
        } ]
    } [ 0, 0.05 ], [ 0.05, 0.25 ], [ 0, 1.5 ]),
);

for my $m (@moments) {
    my ($name, $code) = @$m;
    subtest "kill -9 $name" => sub {
        kill9_then_restart($name, $code);
    };
}

sub kill9_then_restart {
    my ($name, $code) = @_;
    my $first = CorralTest->new;
    my $want = $code->($first);
    my $base = $first->cgroup_rel;
    my $pid = $first->pid;

    # The moment: SIGSTOP holds corrald where it is while its processes
    # are listed (a walk of /proc takes a while), then SIGKILL. corrald
    # never runs again after the STOP: its state is that of a kill -9 at
    # that moment. What runs of the first run: corrald's descendants then,
    # and, once it is dead, everything in its cgroup base (forked
    # meanwhile, or reparented).
    $first->signal('STOP');
    note(sprintf 'stopped %.3f s after corrald started', time - $first->{started_at});
    my %proto = $first->prototypes;
    my %old = map { $_ => 1 } $first->descendants;
    $first->signal('KILL');
    is($first->wait_exit, undef, 'the first corrald is gone');
    ok(WIFSIGNALED($first->{status}) && WTERMSIG($first->{status}) == 9, 'killed by SIGKILL');
    $old{$_} = 1 for CorralProc::cgroup_pids($base);
    my @old = sort { $a <=> $b } grep { $_ != $pid } keys %old;
    # PR_SET_PDEATHSIG ends the prototypes; nothing else does, yet
    $first->wait_for(sub { !grep { pid_alive($_) } values %proto }, 5,
                     'its prototypes die with it (' . scalar(keys %proto) . ')')
        or diag(join "\n", map { CorralTest::describe($_) } grep { pid_alive($_) } values %proto);
    my @survivors = grep { pid_alive($_) } @old;
    note(scalar(@old) . ' processes of the first run, ' . scalar(@survivors) .
         ' still running before the second corrald starts (workers and their children)');
    my @stale = -d $first->cgroup_dir ? $first->cgroup_children : ();
    note("cgroups under the base before the second corrald: @stale");

    # the second corrald, on the same config and base
    my $second = CorralTest->new(cgroup => $first->{cgroup});
    $second->write_config(CorralTest::slurp($first->conf));
    $second->start;
    $second->wait_control(10);
    $second->wait_for(sub { !grep { pid_alive($_) } @old }, 10,
                      'no process of the first run is left (' . scalar(@old) . ')')
        or diag(join "\n", map { CorralTest::describe($_) } grep { pid_alive($_) } @old);
    if (grep { $_ ne 'corrald' } @stale) {
        $second->wait_log(qr/ notice cgroup: removed \d+ cgroups left under \S+ by an earlier corrald$/,
                          name => 'the second corrald removed the leftover cgroups, and said so');
    }
    ok(!$second->log_lines(qr/ warn cgroup: .* left alone$/), 'the second corrald left no cgroup alone')
        or diag(join "\n", $second->log_lines(qr/ left alone$/));
    pools_up($second, $want, 'the second corrald');

    # the base holds the second run's cgroups only, and only its processes
    my @want_dirs = sort('corrald', keys %$want);
    $second->wait_for(sub {
        join(' ', $second->cgroup_children) eq join(' ', @want_dirs) && !$second->stray_cgroups
            && !grep { my $p = $_; grep { $_ ne 'prototype' && !/^\d+$/ } $second->cgroup_children($p) } keys %$want
    }, 10, 'no stale cgroup: corrald/, the pools, their prototype/ and live workers\' cgroups only')
        or diag(join "\n", map { "  $_" } split /\n/, `find ${\$second->cgroup_dir} -mindepth 1 -type d`);
    my @foreign = grep { !descends_from($_, $second->pid) } CorralProc::cgroup_pids($base);
    ok(!@foreign, 'every process under the base is the second corrald\'s')
        or diag(join "\n", map { CorralTest::describe($_) } @foreign);

    my $r = $second->ctl('ping');
    is($r->{code}, 0, 'corralctl ping') or diag($r->{out} . $r->{err});
    $r = $second->ctl('status');
    is($r->{code}, 0, 'corralctl status') or diag($r->{err});
    like($r->{out}, qr/^\Q$_\E\s+running/m, "corralctl status: $_ running") for sort keys %$want;

    # the second one stops cleanly and leaves nothing; the first left
    # nothing either
    $second->check_invariants;
    $first->check_invariants;
}

# A pool's cgroup is made in two steps, POOL/ then POOL/prototype, and
# removed in two, POOL/prototype then POOL/: a kill -9 between them leaves
# an empty POOL/ without prototype/. Too narrow a window to hit by chance,
# so it is made here: an empty "ghost" (a removed pool's) and an empty
# "plain" (a pool of the config, caught being added). The new corrald
# removes ghost and uses plain; a cgroup there that holds something and is
# not a pool's ("foreign", with a child cgroup) is left alone, as before.
subtest 'a pool cgroup caught between its two mkdirs or rmdirs' => sub {
    my $t = CorralTest->new(config => $CONF_A);
    my $base = $t->cgroup_dir;
    mkdir $_ or die "mkdir $_: $!" for $base, "$base/ghost", "$base/plain", "$base/foreign", "$base/foreign/x";
    $t->start;
    pools_up($t, $WANT_A, 'corrald on that base');
    ok(!-e "$base/ghost", 'the empty ghost cgroup is removed');
    ok(-d "$base/plain/prototype", 'plain has its prototype/ again');
    $t->wait_log(qr/ notice cgroup: removed 2 cgroups left under \Q$base\E by an earlier corrald$/,
                 name => 'corrald says it removed 2 cgroups (ghost, and plain, made again)');
    ok(!$t->log_lines(qr/ warn cgroup: \Q$base\E\/(?:ghost|plain) /), 'no warning about ghost or plain');
    $t->wait_log(qr/ warn cgroup: \Q$base\E\/foreign is not a pool of corral's, left alone$/);
    ok(-d "$base/foreign/x", 'foreign, which holds a cgroup, is left alone');
    is(scalar($t->workers('plain')), 3, 'plain has its 3 workers');
    is($t->stop, 0, 'corrald stops with exit 0');
    ok(-d "$base/foreign/x", 'foreign is still there after the stop');
    # it could not remove the base, which held foreign
    rmdir $_ for "$base/foreign/x", "$base/foreign", $base;
    $t->check_invariants;
};

CorralTest->done;
