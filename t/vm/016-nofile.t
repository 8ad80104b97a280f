#!/usr/bin/perl
# Open files under the shipped unit (LimitNOFILE=1024:524288): corrald
# raises its soft limit to 524288, its prototypes and workers keep 1024,
# and a pool of 1,500 workers (more than 1024 fds' worth in corrald)
# starts fully: every worker ready, the unit active.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;

my $UNIT = $CorralVM::UNIT;
my $N = 1500;

# "soft hard" of a process's open files limit.
sub nofile {
    my ($pid) = @_;
    my ($s, $h) = (slurp("/proc/$pid/limits") // '') =~ /^Max open files\s+(\S+)\s+(\S+)/m;
    return defined $s ? "$s $h" : '';
}

my $began = journal_cursor();
my ($rc, $out) = corral_start(<<"EOF");
settings { log_level = "info" }
pool "many" { command = "/bin/sleep 3016", workers = $N, stop_timeout = "5s" }
EOF
is($rc, 0, "corral.service starts with $N workers") or diag($out);
my $p = unit_props($UNIT, qw(MainPID ActiveState));
is($p->{ActiveState}, 'active', 'the unit is active');
my $main = $p->{MainPID};
is(nofile($main), '524288 524288', "corrald's soft limit is raised to the unit's hard one");
wait_for(sub { pool_workers('many') == $N }, 120, "$N workers run");
ok(scalar journal_find($UNIT, $began, MESSAGE => qr/^pool ready \($N\/$N workers\)/), "pool ready ($N/$N)");
my %proto = prototypes();
ok($proto{many}, 'the prototype is there');
is(nofile($proto{many}), '1024 524288', 'the prototype has the soft limit of 1024') if $proto{many};
my @w = (pool_workers('many'))[0, 749, -1];
is(nofile($_), '1024 524288', "worker $_ has the soft limit of 1024") for grep { defined } @w;
my ($src) = corralctl('status', 'many');
is($src, 0, 'corralctl status answers');
done();
