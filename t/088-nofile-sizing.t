#!/usr/bin/perl
# corrald sizes what its workers need in open files against its limit: a
# config whose workers would not fit (at start, at reload) and a scale
# past it are refused with an error naming the pool, the fds it needs,
# the limit and how to raise it; what fits runs.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(find_program pid_alive);
use Test::More;

my $prlimit = find_program('prlimit') or plan skip_all => 'no prlimit';
my $how = qr/above its limit of 1024 \(RLIMIT_NOFILE; .*\): raise the hard limit \(LimitNOFILE= in the unit/;

# at start: exit 1, one clear line
my $s = CorralTest->new(wrap => [ $prlimit, '--nofile=1024:1024', '--' ], config => <<'EOF2');
pool "small" { command = "/bin/sleep 1000", workers = 2 }
pool "big" { command = "/bin/sleep 1000", workers = 2000 }
EOF2
$s->start;
is($s->wait_exit(10), 1, 'start: a config over the limit exits 1');
ok(scalar $s->log_lines(qr/ error pool "big": 2000 workers would need about \d+ open files in corrald, $how/),
   'start: the error names the pool, the fds and the limit') or $s->diag_tail;

# running: reload and scale past it are refused; corrald goes on
my $t = CorralTest->new(wrap => [ $prlimit, '--nofile=1024:1024', '--' ], config => <<'EOF2');
pool "p" { command = "/bin/sleep 1000", workers = 3, env_inherit = { "CORRAL_TEST_DIR" } }
EOF2
$t->start;
$t->wait_log(qr/ info pool ready \(3\/3 workers\) pool=p$/);
my @w = sort { $a <=> $b } $t->workers('p');
my $r = $t->ctl('scale', 'p', '2000');
isnt($r->{code}, 0, 'scale past the limit: refused');
like($r->{out} . $r->{err}, qr/pool "p": 2000 workers would need about \d+ open files in corrald, $how/,
     'scale: corralctl shows why');
$t->write_config(<<'EOF2');
pool "p" { command = "/bin/sleep 1000", workers = 1500, env_inherit = { "CORRAL_TEST_DIR" } }
EOF2
$r = $t->ctl('reload');
isnt($r->{code}, 0, 'reload past the limit: refused');
like($r->{out} . $r->{err}, qr/pool "p": 1500 workers would need about \d+ open files in corrald, $how/,
     'reload: the error names the pool');
is($t->ctl('scale', 'p', '5')->{code}, 0, 'a scale that fits is done');
$t->wait_for(sub { $t->workers('p') == 5 }, 10, 'five workers');
ok(pid_alive($t->pid), 'corrald runs on');
$t->write_config(<<'EOF2');
pool "p" { command = "/bin/sleep 1000", workers = 3, env_inherit = { "CORRAL_TEST_DIR" } }
EOF2
is($t->ctl('reload')->{code}, 0, 'a config that fits reloads');
$t->done;
