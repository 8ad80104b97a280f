#!/usr/bin/perl
# Reload and hooks: a pool whose hook code changed is restarted (new
# prototype, new workers running the new code, generation + 1); pools
# whose hooks are the same keep their processes, even when the hooks
# moved to other lines or were reformatted; a changed value that a hook
# captures (an upvalue) counts as a change.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive);
use Test::More;

sub config {
    my (%o) = @_;
    my $cv = $o{cv} // 'v1';
    my $version = $o{version} // 1;
    my $top = $o{moved} ? "\n\n\n-- three blank lines above, and this comment\n\n" : '';
    my $in = $o{moved} ? "\n\n  -- moved down and reformatted\n" : '';
    my $steady_start = $o{moved}
        ? <<'EOF'
  start = function( worker )
    rec( "steady",
         worker.id, corral.pid(),   -- same code, other layout
         worker.generation )
    idle( )
  end,
EOF
        : <<'EOF';
  start = function(worker)
    rec("steady", worker.id, corral.pid(), worker.generation)
    idle()
  end,
EOF
    return <<"EOF";
${top}%LUA_HELPERS%
local version = $version

pool "changing" {
  workers = 2,
  directory = "%TMP%",
  prefork = function(pool) rec("proto", pool.name, corral.pid()) end,
  start = function(worker)
    rec("changing", worker.id, corral.pid(), worker.generation, "$cv")
    idle()
  end,
}

pool "steady" {
  workers = 2,
  directory = "%TMP%",
  prefork = function(pool) rec("proto", pool.name, corral.pid()) end,
$in$steady_start}

pool "upv" {
  workers = 2,
  directory = "%TMP%",
  prefork = function(pool) rec("proto", pool.name, corral.pid()) end,
  start = function(worker)
    rec("upv", worker.id, corral.pid(), worker.generation, version)
    idle()
  end,
}

pool "plain" {
  command = "/bin/sleep 1000",
  env_inherit = { "CORRAL_TEST_DIR" },
}
EOF
}

my @POOLS = qw(changing steady upv plain);
my $t = CorralTest->new(config => config());
sub recs {
    my ($what) = @_;
    return map { [ split / / ] } $t->file_lines('hooks.log', qr/^\Q$what\E /);
}
sub snapshot {
    my ($pool) = @_;
    return { proto => $t->prototype_pid($pool), workers => [ $t->workers($pool) ] };
}
sub reload_with {
    my ($re, %o) = @_;
    my $mark = $t->mark;
    $t->write_config(config(%o));
    $t->reload;
    $t->wait_log($re, since => $mark, name => "reload: $re");
}
# A restarted pool: a new prototype, $n workers all new, all gone of the old.
sub restarted {
    my ($pool, $old, $n) = @_;
    my $new;
    $t->wait_for(sub {
        # one reading of the workers (id => pid): ids 1..n, the surge
        # worker of the rolling replacement gone, none of the old
        my %map = $t->worker_map($pool);
        $new = { proto => $t->prototype_pid($pool), workers => [ sort { $a <=> $b } values %map ] };
        my %was = map { $_ => 1 } @{ $old->{workers} };
        $new->{proto} && $new->{proto} != $old->{proto}
            && join(' ', sort { $a <=> $b } keys %map) eq join(' ', 1 .. $n)
            && !grep({ $was{$_} } @{ $new->{workers} });
    }, 10, "$pool: restarted (new prototype, $n new workers)");
    $t->wait_for(sub { !pid_alive($old->{proto}) }, 5, "$pool: the old prototype is gone");
    $t->wait_for(sub { !grep { pid_alive($_) } @{ $old->{workers} } }, 10, "$pool: the old workers are gone");
    return $new;
}

$t->start;
for (@POOLS) {
    my $n = $_ eq 'plain' ? 1 : 2;
    $t->wait_log(qr/ info pool ready \($n\/$n workers\) pool=$_$/);
}
$t->wait_for(sub { recs('changing') == 2 && recs('steady') == 2 && recs('upv') == 2 }, 10, 'all Lua workers ran start');
my %snap = map { $_ => snapshot($_) } @POOLS;
is_deeply([ sort map { "$_->[3] $_->[4]" } recs('changing') ], [ '1 v1', '1 v1' ], 'changing: generation 1 runs v1');

# --- the code of a hook changed ----------------------------------------------

reload_with(qr/ info reload done: 0 added, 1 changed, 0 removed, 3 unchanged$/, cv => 'v2');
my $new = restarted('changing', $snap{changing}, 2);
# the two new workers ran the new code (and a surge worker, gone since, may have)
$t->wait_for(sub { my %r = map { $_->[2] => 1 } grep { $_->[4] eq 'v2' } recs('changing'); !grep { !$r{$_} } @{ $new->{workers} } },
             10, 'changing: the two new workers ran the new code');
my %v2 = map { $_->[2] => $_ } grep { $_->[4] eq 'v2' } recs('changing');
ok(keys %v2 <= 3, 'changing: the v2 records come from the new workers and at most one surge worker');
ok(!grep({ $_->[3] != 2 } values %v2), 'changing: the new workers are generation 2');
ok(scalar(grep { $_->[1] eq 'changing' && $_->[2] == $new->{proto} } recs('proto')), 'changing: the new prototype ran prefork');
for my $pool (qw(steady upv plain)) {
    is_deeply(snapshot($pool), $snap{$pool}, "$pool: same prototype and workers");
}
is(scalar recs('steady'), 2, 'steady: no worker started again');
$snap{changing} = $new;

# --- the same hooks, moved and reformatted ----------------------------------

my $lines = () = $t->file_lines('hooks.log');
reload_with(qr/ info reload done: 0 added, 0 changed, 0 removed, 4 unchanged$/, cv => 'v2', moved => 1);
$t->stays(sub { !grep { my $s = snapshot($_); $s->{proto} != $snap{$_}{proto} || "@{$s->{workers}}" ne "@{$snap{$_}{workers}}" } @POOLS }, 1,
          'moved hooks: every prototype and worker kept');
is(scalar(() = $t->file_lines('hooks.log')), $lines, 'moved hooks: no hook ran again');

# --- a captured value (upvalue) changed -------------------------------------

reload_with(qr/ info reload done: 0 added, 1 changed, 0 removed, 3 unchanged$/, cv => 'v2', moved => 1, version => 2);
$new = restarted('upv', $snap{upv}, 2);
$t->wait_for(sub { my %r = map { $_->[2] => 1 } grep { $_->[4] eq '2' } recs('upv'); !grep { !$r{$_} } @{ $new->{workers} } },
             10, 'upv: the two new workers see version = 2');
my %u2 = map { $_->[2] => $_ } grep { $_->[4] eq '2' } recs('upv');
ok(keys %u2 <= 3, 'upv: the version-2 records come from the new workers and at most one surge worker');
ok(!grep({ $_->[3] != 2 } values %u2), 'upv: the new workers are generation 2');
for my $pool (qw(changing steady plain)) {
    is_deeply(snapshot($pool), $snap{$pool}, "$pool: same prototype and workers");
}

$t->done;
