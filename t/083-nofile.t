#!/usr/bin/perl
# The open files limit: corrald, started with 1024:HARD, raises its own
# soft limit to HARD (a pool of a thousand workers needs more than 1024
# fds in corrald) and gives its prototypes and workers 1024 back, with a
# prefork hook, without one and with Lua hooks in the worker. The units set
# LimitNOFILE=.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(find_program);
use Test::More;

my $prlimit = find_program('prlimit') or plan skip_all => 'no prlimit';
# the hard limit handed on: 65536, or less when this process's own is
# lower (raising it needs CAP_SYS_RESOURCE, which a container may lack)
my ($hard) = CorralTest::slurp("/proc/$$/limits") =~ /^Max open files\s+\S+\s+(\S+)/m;
my $H = $hard eq 'unlimited' || $hard > 65536 ? 65536 : $hard;
plan skip_all => "hard open files limit $hard: too low" if $H <= 1024;

# "soft hard" of a process's open files limit.
sub nofile {
    my ($pid) = @_;
    my ($s, $h) = CorralTest::slurp("/proc/$pid/limits") =~ /^Max open files\s+(\S+)\s+(\S+)/m;
    return defined $s ? "$s $h" : '';
}

my $t = CorralTest->new(wrap => [ $prlimit, "--nofile=1024:$H", '--' ], config => <<'EOF');
pool "proto" { command = "/bin/sleep 1000", workers = 2, prefork = function() end }
pool "plain" { command = "/bin/sleep 1000", workers = 1 }
pool "lua" { command = "/bin/sleep 1000", workers = 1, setup = function() end }
EOF
$t->start;
$t->wait_for(sub { $t->workers('proto') == 2 && $t->workers('plain') == 1 && $t->workers('lua') == 1 },
             10, 'workers up');
is(nofile($t->pid), "$H $H", 'corrald: soft limit raised to the hard one');
$t->wait_log(qr/ debug open files limit raised from 1024 to $H \(children get 1024\)$/);
for my $pool (qw(proto plain lua)) {
    is(nofile($_), "1024 $H", "$pool: worker $_ has the original soft limit") for $t->workers($pool);
}
my %proto = $t->prototypes;
is(scalar(keys %proto), 3, 'three prototypes to look at');
is(nofile($proto{$_}), "1024 $H", "prototype of $_ has the original soft limit") for sort keys %proto;
is($t->stop, 0, 'corrald stops');

# Soft already at the hard limit: nothing to do, nothing logged.
my $u = CorralTest->new(wrap => [ $prlimit, '--nofile=4096:4096', '--' ], config => <<'EOF');
pool "plain" { command = "/bin/sleep 1000", workers = 1 }
EOF
$u->start;
$u->wait_for(sub { $u->workers('plain') == 1 }, 10, 'worker up');
is(nofile($u->pid), '4096 4096', 'corrald: 4096:4096 left alone');
is(nofile(($u->workers('plain'))[0]), '4096 4096', 'worker: 4096:4096');
ok(!$u->log_lines(qr/open files limit/), 'nothing logged');
is($u->stop, 0, 'corrald stops');

# The units.
my $root = "$FindBin::Bin/..";
for my $unit (qw(corral.service.in corral@.service.in)) {
    like(CorralTest::slurp("$root/contrib/$unit"), qr/^LimitNOFILE=1024:\d+$/m, "$unit: LimitNOFILE=1024:HARD");
}
CorralTest::done();
