#!/usr/bin/perl
# corral.service with a broken config: at start the unit fails with
# corrald's exit status 1, is not restarted in a loop, and the journal says
# FILE:LINE; at a reload the running pools stay and the journal says why.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;

my $UNIT = 'corral.service';
my $CONF = '/etc/corral/corral.lua';
my $GOOD = qq{pool "steady" { command = "/bin/sleep 1003", workers = 2, stop_timeout = "5s" }\n};
my $BAD = qq{-- line 1\npool "steady" { command = "/bin/sleep 1003", wrokers = 2 }\n};

# --- start with a broken config -----------------------------------------

spew($CONF, $BAD);
my $mark = length journal($UNIT);
my ($rc, $out) = systemctl('start', $UNIT);
isnt($rc, 0, 'systemctl start with a broken config fails (Type=notify)');
ok(wait_until(sub { unit_props($UNIT, 'ActiveState')->{ActiveState} eq 'failed' }, 30),
   'the unit fails') or diag((systemctl('status', '-l', $UNIT))[1]);
my $p = unit_props($UNIT, qw(Result ExecMainCode ExecMainStatus NRestarts ExecStartPre));
is($p->{Result}, 'exit-code', 'Result=exit-code');
# the unit checks the config first (ExecStartPre=corrald -t): that, or
# corrald itself, exits 1
ok($p->{ExecMainStatus} == 1 || $p->{ExecStartPre} =~ /\bcode=exited ; status=1\b/, 'corrald exit status 1')
    or diag("ExecMainStatus=$p->{ExecMainStatus} ExecStartPre=$p->{ExecStartPre}");
is($p->{NRestarts}, 0, 'not restarted (RestartPreventExitStatus)');
my $journal;
ok(wait_until(sub {
    $journal = substr journal($UNIT), $mark;
    $journal =~ m{\Q$CONF\E:2: pool "steady": unknown key "wrokers"};
}, 20), 'journal: the error with file:line and key') or diag($journal);
is(scalar(pool_workers('steady')), 0, 'no worker started');
($rc, $out) = systemctl('reset-failed', $UNIT);
is($rc, 0, 'systemctl reset-failed corral') or diag($out);

# --- a broken config at reload changes nothing ---------------------------

spew($CONF, $GOOD);
($rc, $out) = systemctl('start', $UNIT);
is($rc, 0, 'systemctl start with a good config') or diag($out);
ok(wait_until(sub { pool_workers('steady') == 2 }, 60), 'pool steady: 2 workers');
my @workers = pool_workers('steady');
my $main = unit_props($UNIT, 'MainPID')->{MainPID};

spew($CONF, $BAD);
$mark = length journal($UNIT);
my $cursor = journal_cursor();
($rc, $out) = systemctl('reload', $UNIT);
is($rc, 0, 'systemctl reload with a broken config') or diag($out);
ok(wait_until(sub {
    $journal = substr journal($UNIT), $mark;
    journal_find($UNIT, $cursor, PRIORITY => 3,
                 MESSAGE => qq{reload failed, keeping the running configuration: $CONF:2: pool "steady": unknown key "wrokers" (did you mean "workers"?)});
}, 20), 'journal: reload failed, with file:line (priority err)') or diag($journal);
is(unit_props($UNIT, 'ActiveState')->{ActiveState}, 'active', 'the unit stays active');
is(unit_props($UNIT, 'MainPID')->{MainPID}, $main, 'same main process');
is_deeply([ pool_workers('steady') ], \@workers, 'the workers are the same');

($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'systemctl stop corral') or diag($out);
$p = unit_props($UNIT, qw(ActiveState Result ExecMainStatus));
is($p->{ActiveState}, 'inactive', 'inactive after stop');
is($p->{Result}, 'success', 'Result=success');
is(scalar(pool_workers('steady')), 0, 'no worker left');

done();
