#!/usr/bin/perl
# Who may use the control socket. A user made for the test (removed at
# the end, whatever happens) is kept out by the socket's mode without a
# group grant (connect fails: exit 4), and by corrald's SO_PEERCRED check
# when the mode lets it in by hand (answer "refused": exit 4); with
# control_group naming its primary or one of its supplementary groups, it
# is allowed, and its commands take effect.

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

my $USER = "corraltest-$$";
my %GROUP = (primary => "corraltp-$$", other => "corralto-$$", extra => "corraltx-$$");
my $made_user;
my @made_groups;

sub quiet { system(@_) == 0 }

# A closed stdout (prove gone, a pipe to head) must not keep us from
# removing the user: write on, and clean up at the end.
$SIG{PIPE} = 'IGNORE';

# Users and groups of earlier runs that were killed outright (SIGKILL):
# ours by their name, their test process gone.
for my $line (split /\n/, `getent passwd` // '') {
    my ($name, $pid) = $line =~ /^(corraltest-(\d+)):/ or next;
    system('userdel', '-f', $name) unless kill 0, $pid;
}
for my $line (split /\n/, `getent group` // '') {
    my ($name, $pid) = $line =~ /^(corralt[pox]-(\d+)):/ or next;
    system('groupdel', $name) unless kill 0, $pid;
}

END {
    local $?;
    # a process of the user's left behind would keep userdel from working
    system('userdel', '-f', $USER) if $made_user;
    system('groupdel', $_) for @made_groups;
}

for my $g (sort values %GROUP) {
    quiet('groupadd', '-r', $g) or BAIL_OUT("groupadd $g failed");
    push @made_groups, $g;
}
quiet('useradd', '-M', '-r', '-N', '-g', $GROUP{primary}, '-G', $GROUP{extra}, '-d', '/nonexistent',
      '-s', '/bin/sh', $USER) or BAIL_OUT("useradd $USER failed");
$made_user = 1;
my $uid = getpwnam($USER);
my %gid = map { $_ => scalar getgrnam($GROUP{$_}) } keys %GROUP;
ok(defined $uid && !grep({ !defined } values %gid), "user $USER and its groups exist");

# The user runs corralctl with its groups (--init-groups), or with only its
# primary group (--clear-groups).
my @AS_USER = ('setpriv', "--reuid=$USER", "--regid=$GROUP{primary}", '--init-groups', '--');
my @AS_USER_NO_EXTRA = ('setpriv', "--reuid=$USER", "--regid=$GROUP{primary}", '--clear-groups', '--');

my $CONFIG = <<'EOF';
settings { %SETTINGS% }
pool "web" { command = "/bin/sleep 1000", workers = 1, env_inherit = { "CORRAL_TEST_DIR" } }
EOF

# A corrald with control_group = $group (or none); the user can reach its
# socket's directory, and has a copy of corralctl it can run.
sub instance {
    my ($group) = @_;
    my $settings = !defined $group ? '' : $group =~ /^\d+$/ ? "control_group = $group" : qq{control_group = "$group"};
    my $t = CorralTest->new(config => $CONFIG =~ s/%SETTINGS%/$settings/r);
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

sub as_user {
    my ($t, $wrap, @args) = @_;
    return $t->ctl(@args, { wrap => $wrap, program => $t->{prog} });
}

sub mode_of { my @st = stat $_[0]; return (($st[2] // 0) & 07777, $st[4], $st[5]) }

# The user is kept out by the file's mode: connect fails, exit 4.
sub kept_out_by_mode {
    my ($t, $wrap, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    for my $cmd ([ 'ping' ], [ 'status' ], [ 'scale', 'web', 3 ]) {
        my $r = as_user($t, $wrap, @$cmd);
        is($r->{code}, 4, "$name: @$cmd: exit 4") or diag($r->{err});
        like($r->{err}, qr/^corralctl: \Q${\ $t->socket_path}\E: Permission denied \(not allowed to use corrald's control socket\)\n\z/,
             "$name: @$cmd: one line: permission denied");
        is($r->{out}, '', "$name: @$cmd: nothing on stdout");
    }
}

# The file's mode lets the user in; corrald refuses: exit 4, "refused".
sub refused_by_corrald {
    my ($t, $wrap, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    for my $cmd ([ 'ping' ], [ 'status' ], [ 'scale', 'web', 3 ], [ 'stop', 'web' ], [ 'reload' ]) {
        my $r = as_user($t, $wrap, @$cmd);
        is($r->{code}, 4, "$name: @$cmd: exit 4") or diag($r->{err});
        like($r->{err}, qr/^corralctl: permission denied: uid $uid is not allowed to control corrald\n\z/,
             "$name: @$cmd: one line: corrald's refusal");
    }
    my $r = as_user($t, $wrap, '--json', 'ping');
    my $a = eval { JSON::PP->new->decode($r->{out}) } || {};
    is($a->{code}, 'refused', "$name: --json: code refused");
    is($a->{ok}, JSON::PP::false, "$name: --json: ok false");
    $t->stays(sub { $t->workers('web') == 1 }, 0.5, "$name: web still has 1 worker (scale and stop refused)");
    my $s = $t->status('web');
    is($s && $s->{web}{target}, 1, "$name: web's target still 1");
}

sub allowed {
    my ($t, $wrap, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = as_user($t, $wrap, 'ping');
    is($r->{code}, 0, "$name: ping: exit 0") or diag($r->{err});
    is($r->{out}, "pong\n", "$name: ping: pong");
    $r = as_user($t, $wrap, 'status');
    is($r->{code}, 0, "$name: status: exit 0");
    like($r->{out}, qr{^web\s+running\s+1/1\s}m, "$name: status: the table");
    $r = as_user($t, $wrap, 'scale', 'web', 2);
    is($r->{code}, 0, "$name: scale web 2: exit 0") or diag($r->{err});
    $t->wait_for(sub { $t->workers('web') == 2 }, 10, "$name: scale web 2: 2 workers");
    $r = as_user($t, $wrap, 'scale', 'web', 1);
    is($r->{code}, 0, "$name: scale web 1: exit 0");
    $t->wait_for(sub { $t->workers('web') == 1 }, 10, "$name: scale web 1: 1 worker");
}

# --- no control_group: root only ---------------------------------------------

{
    my $t = instance(undef);
    my ($mode, $owner) = mode_of($t->socket_path);
    is(sprintf('%04o', $mode), '0600', 'no control_group: socket mode 0600');
    is($owner, 0, 'no control_group: socket owned by root');
    is($t->ctl('ping')->{code}, 0, 'no control_group: root may');
    kept_out_by_mode($t, \@AS_USER, 'no control_group, mode 0600');
    chmod 0666, $t->socket_path or die "chmod: $!";
    refused_by_corrald($t, \@AS_USER, 'no control_group, socket chmod 0666 by hand');
    is($t->ctl('ping')->{code}, 0, 'no control_group: root still may');
    $t->check_invariants;
}

# --- control_group the user is not in ------------------------------------------

{
    my $t = instance($GROUP{other});
    my ($mode, $owner, $group) = mode_of($t->socket_path);
    is(sprintf('%04o', $mode), '0660', 'control_group: socket mode 0660');
    is($group, $gid{other}, 'control_group: socket group is control_group');
    kept_out_by_mode($t, \@AS_USER, 'control_group the user is not in');
    chmod 0666, $t->socket_path or die "chmod: $!";
    refused_by_corrald($t, \@AS_USER, 'control_group the user is not in, socket chmod 0666 by hand');
    $t->check_invariants;
}

# --- control_group = the user's primary group --------------------------------------

{
    my $t = instance($GROUP{primary});
    my (undef, undef, $group) = mode_of($t->socket_path);
    is($group, $gid{primary}, 'control_group = primary group: socket group');
    allowed($t, \@AS_USER, 'control_group = the user\'s primary group');
    allowed($t, \@AS_USER_NO_EXTRA, 'control_group = the user\'s primary group, no supplementary groups');
    $t->check_invariants;
}

# --- control_group = one of the user's supplementary groups (by gid) ----------------

{
    my $t = instance($gid{extra});
    my (undef, undef, $group) = mode_of($t->socket_path);
    is($group, $gid{extra}, 'control_group = a gid: socket group');
    allowed($t, \@AS_USER, 'control_group = a supplementary group of the user');
    kept_out_by_mode($t, \@AS_USER_NO_EXTRA, 'control_group = a supplementary group the process dropped');
    chmod 0666, $t->socket_path or die "chmod: $!";
    refused_by_corrald($t, \@AS_USER_NO_EXTRA, 'a supplementary group the process dropped, socket chmod 0666');
    allowed($t, \@AS_USER, 'control_group = a supplementary group of the user, socket chmod 0666');
    $t->check_invariants;
}

CorralTest::done();
