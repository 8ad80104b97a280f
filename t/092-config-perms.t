#!/usr/bin/perl
# Config and plugin files are code corrald runs as its own user (root):
# one that another user may change is refused, like sshd's StrictModes. A
# group-writable config, a config owned by nobody, a plugin file writable
# by others, a config in a world-writable directory without the sticky
# bit: each is refused by `corrald -t`, at start (exit 1, one line naming
# the file, its owner and mode) and at reload (the running configuration
# stays; the plugin is loaded in the preflight child first: its refusal
# comes from there). With --allow-unsafe-config each is accepted, with a
# warning. A config in a sticky world-writable directory (like /tmp) and
# the tests' own files (root, 0644) are accepted.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive);
use Test::More;

plan skip_all => 'needs root (to give files to another user)' if $> != 0;
my $NOBODY = getpwnam('nobody');
plan skip_all => 'no user nobody' unless defined $NOBODY;

my $CONFIG = <<'EOF';
pool "web" { command = "/bin/sleep 1000", workers = 1 }
%MORE%
EOF
my $PLUGIN = "local opts = ...\nlocal seen = opts.x\n";
my $REFUSED = qr/; refused: its code would run inside corrald \(--allow-unsafe-config accepts it\)/;

# name; where the config is (below the temp dir); whether it enables the
# plugin; what to make unsafe (a path below the temp dir) and how; what
# the refusal says about it (FILE, then what), given the temp dir.
my @cases = (
    { name => 'a group-writable config', conf => 'corral.lua', target => 'corral.lua',
      unsafe => sub { chmod 0664, $_[0] or die "chmod: $!" },
      says => sub { ("$_[0]/corral.lua", qr/writable by group or others \(owner uid 0, mode 0664\)/) } },
    { name => 'a config owned by nobody', conf => 'corral.lua', target => 'corral.lua',
      unsafe => sub { chown $NOBODY, -1, $_[0] or die "chown: $!" },
      says => sub { ("$_[0]/corral.lua",
                     qr/owned by a user other than root and corrald's \(owner uid $NOBODY, mode 0644\)/) } },
    { name => 'a plugin file writable by others', conf => 'corral.lua', plugin => 1, target => 'plugins/p.lua',
      unsafe => sub { chmod 0646, $_[0] or die "chmod: $!" },
      says => sub { ("$_[0]/plugins/p.lua", qr/writable by group or others \(owner uid 0, mode 0646\)/) } },
    { name => 'a config in a world-writable directory, not sticky', conf => 'open/corral.lua', target => 'open',
      unsafe => sub { chmod 0777, $_[0] or die "chmod: $!" },
      says => sub { ("$_[0]/open/corral.lua",
                     qr/its directory \Q$_[0]\E\/open is writable by group or others and not sticky \(owner uid 0, mode 0777\)/) } },
);

# Writes the config (with pool "b" too when $more), and the plugin file.
sub write_all {
    my ($t, $case, $more) = @_;
    my $extra = ($case->{plugin} ? qq{plugin "p" { x = 1 }\n} : '')
              . ($more ? qq{pool "b" { command = "/bin/sleep 1000", workers = 1 }\n} : '');
    $t->write_file($case->{conf}, $CONFIG =~ s/%MORE%/$extra/r);
    $t->write_file('plugins/p.lua', $PLUGIN) if $case->{plugin};
    chmod 0755, $t->path('open') if -d $t->path('open');
}

for my $case (@cases) {
    my $name = $case->{name};
    my $t = CorralTest->new;
    $t->{conf} = $t->path($case->{conf});
    my $target = $t->path($case->{target});
    my ($file, $what) = $case->{says}->($t->dir);
    my $line = qr/\Q$file\E: $what$REFUSED/;

    # corrald -t and start: refused, or with the option accepted
    write_all($t, $case);
    my $r = $t->run_check;
    is($r->{code}, 0, "$name: before: corrald -t accepts the safe files") or diag($r->{err});
    $case->{unsafe}->($target);
    $r = $t->run_check;
    is($r->{code}, 1, "$name: corrald -t: exit 1");
    like($r->{err}, qr/\Acorrald: $line\n\z/, "$name: corrald -t: one line naming the file, owner and mode")
        or diag($r->{err});
    $r = $t->run_check('--allow-unsafe-config');
    is($r->{code}, 0, "$name: corrald -t --allow-unsafe-config: accepted") or diag($r->{err});
    like($r->{err}, qr/ warn \Q$file\E: $what; accepted \(--allow-unsafe-config\)$/m, "$name: ... with a warning");

    my $mark = $t->mark;
    $t->start;
    is($t->wait_exit(10), 1, "$name: start: corrald exits 1");
    like(substr($t->log, $mark), qr/^corrald: $line$/m, "$name: start: says why");
    ok(!$t->log_lines(qr/ info worker started /, $mark), "$name: start: no worker started");

    $mark = $t->mark;
    $t->start('--allow-unsafe-config');
    $t->wait_log(qr/ warn \Q$file\E: $what; accepted \(--allow-unsafe-config\)$/, since => $mark,
                 name => "$name: start --allow-unsafe-config: a warning");
    $t->wait_for(sub { $t->workers('web') == 1 }, 10, "$name: start --allow-unsafe-config: web up");
    write_all($t, $case, 1);
    $case->{unsafe}->($target);
    $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/ info reload done: 1 added, /, since => $mark, name => "$name: reload --allow-unsafe-config: accepted");
    $t->wait_for(sub { $t->workers('b') == 1 }, 10, "$name: reload --allow-unsafe-config: b up");
    is($t->stop, 0, "$name: --allow-unsafe-config: corrald stops with exit 0");

    # reload: refused, the running configuration stays
    write_all($t, $case);
    $t->start;
    $t->wait_for(sub { $t->workers('web') == 1 }, 10, "$name: safe files: web up");
    my ($web) = $t->workers('web');
    write_all($t, $case, 1);
    $case->{unsafe}->($target);
    $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/ error reload failed, keeping the running configuration: $line$/, since => $mark,
                 name => "$name: reload: refused, naming the file, owner and mode");
    $t->stays(sub { !$t->workers('b') && pid_alive($web) }, 0.5, "$name: reload: no pool b; web's worker runs on");
    write_all($t, $case, 1);
    $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/ info reload done: 1 added, /, since => $mark, name => "$name: made safe again: the reload is done");
    $t->wait_for(sub { $t->workers('b') == 1 }, 10, "$name: made safe again: b up");
    $t->check_invariants;
}

# A sticky world-writable directory (like /tmp) is no way in: accepted.
{
    my $t = CorralTest->new;
    $t->{conf} = $t->path('sticky/corral.lua');
    $t->write_file('sticky/corral.lua', $CONFIG =~ s/%MORE%//r);
    chmod 01777, $t->path('sticky') or die "chmod: $!";
    my $r = $t->run_check;
    is($r->{code}, 0, 'a config in a sticky world-writable directory: accepted') or diag($r->{err});
    is($r->{err} =~ tr/\n//, 1, '... without a warning') or diag($r->{err});
    $t->check_invariants;
}

CorralTest::done();
