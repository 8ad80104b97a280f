#!/usr/bin/perl
# Reload: pools added, changed, removed, scaled; unchanged pools keep their
# workers; a broken config changes nothing and says where it broke.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive);
use Test::More;

sub config {
    my (%p) = @_;
    return join '', 'local inherit = { "CORRAL_TEST_DIR" }', "\n", map {
        my ($name, $cmd, $n) = @{ $p{$_} };
        qq{pool "$name" { command = "$cmd", workers = $n, env_inherit = inherit }\n}
    } sort keys %p;
}

my %old = (
    keep   => [ 'keep',   '/bin/sleep 1000', 2 ],
    change => [ 'change', '/bin/sleep 1000', 2 ],
    remove => [ 'remove', '/bin/sleep 1000', 2 ],
    grow   => [ 'grow',   '/bin/sleep 1000', 2 ],
    shrink => [ 'shrink', '/bin/sleep 1000', 3 ],
);
my %new = (
    %old,
    change => [ 'change', '/bin/sleep 2000', 2 ],
    grow   => [ 'grow',   '/bin/sleep 1000', 4 ],
    shrink => [ 'shrink', '/bin/sleep 1000', 1 ],
    added  => [ 'added',  '/bin/sleep 1000', 2 ],
);
delete $new{remove};

my $t = CorralTest->new(config => config(%old));
my $file = $t->conf;
$t->start;
$t->wait_for(sub { !grep { $t->workers($_) != $old{$_}[2] } keys %old }, 10, 'all pools up');
my %pids = map { $_ => [ $t->workers($_) ] } keys %old;
my %proto = map { $_ => $t->prototype_pid($_) } keys %old;

$t->write_config(config(%new));
my $mark = $t->mark;
$t->reload;
$t->wait_log(qr/ info reload requested$/, since => $mark);
my ($done) = $t->wait_log(qr/ info reload done: /, since => $mark);
my ($added, $changed, $removed, $unchanged) =
    ($done // '') =~ /reload done: (\d+) added, (\d+) changed, (\d+) removed, (\d+) unchanged(?: \(.*\))?$/;
is($added, 1, 'reload done: 1 added');
is($removed, 1, 'reload done: 1 removed');
is(($changed // 0) + ($unchanged // 0), 4, 'reload done: changed + unchanged = 4');
cmp_ok($changed // 0, '>=', 1, 'reload done: the command change counts as changed');

$t->wait_for(sub { $t->workers('added') == 2 }, 10, 'added pool: 2 workers');
$t->wait_for(sub {
    my @w = $t->workers('change');
    # ids 1 and 2: a surge worker (id 3) of the rolling replacement may
    # still be listed, on its way out
    @w == 2 && !grep({ my $p = $_; grep { $_ == $p } @{ $pids{change} } } @w)
        && join(' ', sort { $a <=> $b } $t->worker_ids('change')) eq '1 2'
}, 10, 'changed pool: 2 workers, all new, ids 1 and 2');
ok(!grep({ pid_alive($_) } @{ $pids{change} }), 'changed pool: old workers gone');
$t->wait_for(sub { !grep { (CorralTest::proc_cmdline($_) // '') !~ /^\/bin\/sleep\x{0}2000\x{0}$/ } $t->workers('change') },
             10, 'changed pool: new workers run the new command (once exec\'d)');
$t->wait_for(sub { !$t->workers('remove') && !$t->prototype_pid('remove') }, 10,
             'removed pool: workers and prototype gone');
ok(!grep({ pid_alive($_) } @{ $pids{remove} }), 'removed pool: old pids dead');

is_deeply([ $t->workers('keep') ], $pids{keep}, 'unchanged pool: same pids');
is($t->prototype_pid('keep'), $proto{keep}, 'unchanged pool: same prototype');

$t->wait_for(sub { $t->workers('grow') == 4 }, 10, 'grown pool: 4 workers');
my %grow = map { $_ => 1 } $t->workers('grow');
ok(!grep({ !$grow{$_} } @{ $pids{grow} }), 'grown pool: existing workers kept');
is_deeply([ $t->worker_ids('grow') ], [ 1 .. 4 ], 'grown pool: ids 1..4');

$t->wait_for(sub { $t->workers('shrink') == 1 }, 10, 'shrunk pool: 1 worker');
my ($kept) = $t->workers('shrink');
ok(scalar grep({ $_ == ($kept // 0) } @{ $pids{shrink} }), 'shrunk pool: the remaining worker is an old one');

# Broken configs: nothing changes, the error names FILE:LINE.
sub snapshot { return { map { $_ => [ $t->workers($_) ] } keys %new } }
my $before = snapshot();
my @broken = (
    [ 'syntax error', config(%new, keep => [ 'keep', '/bin/sleep 3000', 2 ]) . "pool \"x\" { command = \"/bin/true\",, }\n",
      7, qr/./ ],
    [ 'validation error', config(%new, keep => [ 'keep', '/bin/sleep 3000', 2 ], change => [ 'change', '/bin/sleep 2000', '"x"' ]),
      3, qr/pool "change": workers: / ],
    [ 'runtime error', config(%new, added => [ 'added', '/bin/sleep 3000', 5 ]) . "error(\"boom\")\n",
      7, qr/boom/ ],
);
for my $case (@broken) {
    my ($name, $text, $line, $re) = @$case;
    $t->write_config($text);
    $mark = $t->mark;
    $t->reload;
    my ($failed) = $t->wait_log(qr/ error reload failed, keeping the running configuration: /, since => $mark,
                                name => "$name: reload failed logged");
    like($failed // '', qr/keeping the running configuration: \Q$file\E:$line: /, "$name: names FILE:LINE");
    like($failed // '', $re, "$name: says what is wrong");
    $t->stays(sub { !$t->log_lines(qr/ worker started /, $mark) }, 0.5, "$name: nothing started");
    is_deeply(snapshot(), $before, "$name: every pid kept");
}

# The running configuration still reloads.
$t->write_config(config(%new));
$mark = $t->mark;
$t->reload;
$t->wait_log(qr/ info reload done: 0 added, 0 changed, 0 removed, 5 unchanged$/, since => $mark);
is_deeply(snapshot(), $before, 'same config again: every pid kept');

$t->done;
