#!/usr/bin/perl
# settings.monitor_group: its members may run the read-only commands
# (ping, version, status, plugins, read-only plugin commands) and nothing
# else; everyone else but root and the control_group is refused everything. The socket is 0660 with the
# monitor group when it is the only group, 0666 beside a control_group
# (then corrald's credential check alone keeps others out). A reload
# that changes monitor_group says a restart is needed. A user and groups
# made for the test are removed at the end, whatever happens.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use File::Copy ();
use JSON::PP ();
use Test::More;

plan skip_all => 'needs root (to add a user and switch to it)' if $> != 0;
for my $tool (qw(useradd userdel groupadd groupdel setpriv)) {
    plan skip_all => "$tool not found" unless grep { -x "$_/$tool" } split(/:/, $ENV{PATH}), qw(/usr/sbin /sbin /usr/bin);
}
$ENV{PATH} .= ':/usr/sbin:/sbin';

my $USER = "corralmu-$$";
my %GROUP = (primary => "corralmp-$$", mon => "corralmm-$$", ctl => "corralmc-$$", other => "corralmo-$$");
my $made_user;
my @made_groups;

sub quiet { system(@_) == 0 }

$SIG{PIPE} = 'IGNORE';

# what earlier runs killed outright left: ours by name, their test gone
for my $line (split /\n/, `getent passwd` // '') {
    my ($name, $pid) = $line =~ /^(corralmu-(\d+)):/ or next;
    system('userdel', '-f', $name) unless kill 0, $pid;
}
for my $line (split /\n/, `getent group` // '') {
    my ($name, $pid) = $line =~ /^(corralm[pmco]-(\d+)):/ or next;
    system('groupdel', $name) unless kill 0, $pid;
}

END {
    local $?;
    system('userdel', '-f', $USER) if $made_user;
    system('groupdel', $_) for @made_groups;
}

for my $g (sort values %GROUP) {
    quiet('groupadd', '-r', $g) or BAIL_OUT("groupadd $g failed");
    push @made_groups, $g;
}
# the user: primary group "primary", a member of "mon" (not of "ctl")
quiet('useradd', '-M', '-r', '-N', '-g', $GROUP{primary}, '-G', $GROUP{mon}, '-d', '/nonexistent',
      '-s', '/bin/sh', $USER) or BAIL_OUT("useradd $USER failed");
$made_user = 1;
my $uid = getpwnam($USER);
my %gid = map { $_ => scalar getgrnam($GROUP{$_}) } keys %GROUP;

# as a member of monitor_group (its groups), and as no member (only its
# primary group)
my @MEMBER = ('setpriv', "--reuid=$USER", "--regid=$GROUP{primary}", '--init-groups', '--');
my @NOT_MEMBER = ('setpriv', "--reuid=$USER", "--regid=$GROUP{primary}", '--clear-groups', '--');

sub instance {
    my ($settings) = @_;
    my $t = CorralTest->new(config => <<"EOF");
settings { $settings }
pool "web" { command = "/bin/sleep 1000", workers = 1, env_inherit = { "CORRAL_TEST_DIR" } }
EOF
    chmod 0711, $t->dir or die "chmod: $!";
    my $prog = $t->path('corralctl');
    File::Copy::copy($CorralTest::CORRALCTL, $prog) or die "copy: $!";
    chmod 0755, $prog;
    $t->{prog} = $prog;
    $t->start;
    $t->wait_control;
    $t->wait_for(sub { $t->workers('web') == 1 }, 10, 'web up');
    return $t;
}

sub as { my ($t, $wrap, @args) = @_; return $t->ctl(@args, { wrap => $wrap, program => $t->{prog} }) }

sub mode_of { my @st = stat $_[0]; return (($st[2] // 0) & 07777, $st[5]) }

my @WRITES = ([ 'stop', 'web' ], [ 'scale', 'web', 3 ], [ 'reload' ], [ 'signal', 'web', 'KILL' ],
              [ 'restart', 'web' ], [ 'start', 'web' ], [ 'freeze', 'web' ]);

sub unchanged {
    my ($t, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $s = $t->status('web');
    is($s && $s->{web}{target}, 1, "$name: web's target still 1");
    is($s && $s->{web}{restarts}, 0, "$name: no worker was signalled or restarted");
    is($s && $s->{web}{state}, 'running', "$name: web still running");
}

# A member of monitor_group: the read-only commands answer, the others
# are refused by corrald (exit 4, one line naming what it may run).
sub monitor_only {
    my ($t, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = as($t, \@MEMBER, 'ping');
    is_deeply([ $r->{code}, $r->{out} ], [ 0, "pong\n" ], "$name: ping answers") or diag($r->{err});
    $r = as($t, \@MEMBER, 'version');
    is($r->{code}, 0, "$name: version answers") or diag($r->{err});
    $r = as($t, \@MEMBER, 'status');
    is($r->{code}, 0, "$name: status answers") or diag($r->{err});
    like($r->{out}, qr{^web\s+running\s+1/1\s}m, "$name: status: the table");
    $r = as($t, \@MEMBER, '--json', 'status', 'web');
    my $a = eval { JSON::PP->new->decode($r->{out}) } || {};
    is($a->{pools} && $a->{pools}[0]{name}, 'web', "$name: status --json: the pool");
    $r = as($t, \@MEMBER, 'plugins');
    is($r->{code}, 0, "$name: plugins answers") or diag($r->{err});
    for my $cmd (@WRITES) {
        $r = as($t, \@MEMBER, @$cmd);
        is($r->{code}, 4, "$name: @$cmd: exit 4") or diag($r->{err});
        like($r->{err}, qr/^corralctl: permission denied: uid $uid, of settings\.monitor_group, may only run ping, version, status, plugins and read-only plugin commands, not $cmd->[0]\n\z/,
             "$name: @$cmd: one line: what a monitor may run");
    }
    unchanged($t, "$name (after the refused commands)");
}

# Not a member: corrald refuses everything.
sub refused_all {
    my ($t, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    for my $cmd ([ 'ping' ], [ 'version' ], [ 'status' ], @WRITES) {
        my $r = as($t, \@NOT_MEMBER, @$cmd);
        is($r->{code}, 4, "$name: @$cmd: exit 4") or diag($r->{err});
        like($r->{err}, qr/^corralctl: permission denied: uid $uid is not allowed to control corrald\n\z/,
             "$name: @$cmd: corrald's refusal");
    }
    unchanged($t, "$name (after the refused commands)");
}

# --- monitor_group alone: the socket is the group's ------------------------------

{
    my $t = instance(qq{monitor_group = "$GROUP{mon}"});
    my ($mode, $group) = mode_of($t->socket_path);
    is(sprintf('%04o', $mode), '0660', 'monitor_group alone: socket mode 0660');
    is($group, $gid{mon}, 'monitor_group alone: socket group is monitor_group');
    monitor_only($t, 'monitor_group alone');
    my $r = as($t, \@NOT_MEMBER, 'ping');
    is($r->{code}, 4, 'monitor_group alone: a non-member is kept out by the mode (exit 4)');
    like($r->{err}, qr/Permission denied \(not allowed to use corrald's control socket\)/,
         'monitor_group alone: a non-member: connect fails');
    chmod 0666, $t->socket_path or die "chmod: $!";
    refused_all($t, 'monitor_group alone, socket chmod 0666 by hand: a non-member');
    is($t->ctl('scale', 'web', 2)->{code}, 0, 'root may still do anything');
    $t->wait_for(sub { $t->workers('web') == 2 }, 10, 'root scaled web to 2');

    # a reload that changes monitor_group: a restart is needed
    my $mark = $t->mark;
    $t->write_config($t->subst(<<"EOF"));
settings { monitor_group = "$GROUP{other}" }
pool "web" { command = "/bin/sleep 1000", workers = 1, env_inherit = { "CORRAL_TEST_DIR" } }
EOF
    is($t->ctl('reload')->{code}, 0, 'reload with another monitor_group: done');
    $t->wait_log(qr/warn reload: settings\.monitor_group changed; the control socket keeps the old one until corrald restarts/,
                 5, 'reload: says a restart is needed for monitor_group', since => $mark);
    my $r2 = as($t, \@MEMBER, 'ping');
    is($r2->{code}, 0, 'after the reload: the old monitor_group still applies') or diag($r2->{err});
    $t->check_invariants;
}

# --- beside a control_group: the socket is 0666, the credentials decide --------------

{
    my $t = instance(qq{control_group = "$GROUP{ctl}", monitor_group = $gid{mon}});
    my ($mode, $group) = mode_of($t->socket_path);
    is(sprintf('%04o', $mode), '0666', 'monitor_group and control_group: socket mode 0666');
    is($group, $gid{ctl}, 'monitor_group and control_group: socket group is control_group');
    monitor_only($t, 'monitor_group by gid beside control_group');
    refused_all($t, 'monitor_group beside control_group: a non-member');
    $t->check_invariants;
}

# --- a config error names the key ------------------------------------------------------

{
    my $t = CorralTest->new(config => qq{settings { monitor_group = "no-such-group-$$" }\n});
    my $r = $t->run_check;
    is($r->{code}, 1, 'unknown monitor_group: exit 1');
    like($r->{err}, qr/settings: monitor_group: unknown group "no-such-group-$$"/, 'unknown monitor_group: named');
}

CorralTest::done();
