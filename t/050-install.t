#!/usr/bin/perl
# make install into a scratch prefix: everything lands where the README
# says, the installed corrald finds its Lua modules there (not in the source
# tree), and the unit files pass systemd-analyze verify. Also: make run
# passes ARGS, contrib/install-deps' usage and exit codes, and no doc or
# example or man page suggests pkill, killall or pgrep.

use strict;
use warnings;
use Cwd ();
use File::Temp qw(tempdir);
use FindBin;
use Test::More;

my $root = Cwd::abs_path("$FindBin::Bin/..");
my $p = tempdir('corral-install-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my @vars = ("PREFIX=$p", "SYSCONFDIR=$p/etc", "UNITDIR=$p/units", "USERUNITDIR=$p/user-units",
            "O=$p/build");

my $out = `make -C '$root' --no-print-directory install @vars 2>&1`;
is($?, 0, 'make install succeeds') or diag $out;

for my $f ("sbin/corrald", "bin/corralctl") {
    ok(-x "$p/$f", "$f installed, executable");
}
for my $f (qw(share/corral/lua/corral/config.lua share/corral/lua/corral/init.lua
              share/corral/lua/corral/units.lua share/corral/plugins/pool-stats.lua
              share/corral/lua/corral/testing.lua share/corral/examples/plugins/memory-restart.lua
              share/corral/examples/hello.lua share/corral/examples/corral.logrotate share/man/man8/corrald.8
              share/man/man5/corral.lua.5 share/man/man1/corralctl.1
              share/bash-completion/completions/corralctl share/zsh/site-functions/_corralctl
              share/fish/vendor_completions.d/corralctl.fish etc/corral/corral.lua
              units/corral.service units/corral@.service user-units/corral.service)) {
    ok(-f "$p/$f", "$f installed");
}

# The installed binary, away from the source tree, finds the installed
# modules (compiled-in data directory).
$out = `'$p/sbin/corrald' -t -c '$p/etc/corral/corral.lua' 2>&1`;
is($?, 0, 'the installed corrald checks the installed example config') or diag $out;
like($out, qr/configuration ok/, '... and says so');

open my $fh, '<', "$p/units/corral.service" or die;
my $unit = do { local $/; <$fh> };
like($unit, qr{^ExecStart=\Q$p\E/sbin/corrald -c \Q$p\E/etc/corral/corral.lua$}m,
     'the unit runs the installed corrald on the installed config');
like($unit, qr/^Type=notify$/m, 'Type=notify');
like($unit, qr/^Delegate=yes$/m, 'Delegate=yes');
open $fh, '<', "$p/user-units/corral.service" or die;
my $user_unit = do { local $/; <$fh> };
like($user_unit, qr{^ExecStart=\Q$p\E/sbin/corrald -c %h/\.config/corral/corral\.lua -s %t/corral/control\.sock$}m,
     'the user unit runs the installed corrald on the user\'s config, its socket in the runtime directory');
like($user_unit, qr/^Delegate=yes$/m, 'the user unit: Delegate=yes');

SKIP: {
    my $verify = `command -v systemd-analyze 2>/dev/null`;
    skip 'systemd-analyze is not installed', 3 unless $verify;
    local $ENV{MANPATH} = "$p/share/man";
    $out = `systemd-analyze verify '$p/units/corral.service' 2>&1`;
    is($?, 0, 'systemd-analyze verify corral.service is clean') or diag $out;
    system('cp', "$p/units/corral\@.service", "$p/units/corral\@test.service") == 0 or die;
    $out = `systemd-analyze verify '$p/units/corral\@test.service' 2>&1`;
    is($?, 0, 'systemd-analyze verify corral@test.service is clean') or diag $out;
    # a user manager's runtime directory, which root has none of
    mkdir "$p/xdg", 0700;
    $out = `XDG_RUNTIME_DIR='$p/xdg' systemd-analyze --user verify '$p/user-units/corral.service' 2>&1`;
    is($?, 0, 'systemd-analyze --user verify of the user unit is clean') or diag $out;
}

$out = `make -C '$root' --no-print-directory uninstall @vars 2>&1`;
is($?, 0, 'make uninstall succeeds') or diag $out;
ok(!-e "$p/sbin/corrald" && !-e "$p/bin/corralctl" && !-e "$p/share/corral", 'uninstall removes what install put');
ok(!-e "$p/share/zsh/site-functions/_corralctl" && !-e "$p/share/fish/vendor_completions.d/corralctl.fish",
   'uninstall removes the zsh and fish completions');
ok(-f "$p/etc/corral/corral.lua", 'uninstall leaves the configuration');

# make run passes ARGS through to corrald (-n: nothing is run).
$out = `make -n -C '$root' --no-print-directory run "ARGS=-x -g /mine" 2>&1`;
is($?, 0, 'make -n run ARGS=... succeeds') or diag $out;
like($out, qr{^\S*/corrald -c contrib/examples/hello\.lua -x -g /mine$}m, 'make run: ARGS come after corrald\'s own')
    or diag $out;

# contrib/install-deps: its usage says what it accepts; --help and -h
# print it and exit 0, a bad argument gets it on stderr and exit 2.
my $usage = "usage: contrib/install-deps [build|test|fuzz]   (default: build)\n";
for my $h ('--help', '-h') {
    $out = `'$root/contrib/install-deps' $h 2>/dev/null`;
    is($?, 0, "install-deps $h: exit 0");
    is($out, $usage, "install-deps $h: the usage on stdout");
}
for my $bad ([ 'bogus' ], [ 'build', 'test' ], [ '--bogus' ]) {
    my $args = join ' ', @$bad;
    $out = `'$root/contrib/install-deps' $args 2>&1 >/dev/null`;
    is($? >> 8, 2, "install-deps $args: exit 2");
    like($out, qr/\Q$usage\E\z/, "install-deps $args: the usage on stderr") or diag $out;
}
open $fh, '<', "$root/contrib/install-deps" or die;
my $src = do { local $/; <$fh> };
my ($sets) = $usage =~ /\[([^\]]*)\]/;
for my $set (split /\|/, $sets) {
    like($src, qr/^\Q$set\E\)/m, "install-deps: the usage's set $set is accepted");
}

# The README, the examples and the guides show corralctl commands and pids
# from status, never signalling processes by name (issue 13): pkill and
# pgrep match other users' processes and other corralds' workers too.
for my $f ("$root/README", glob("$root/contrib/examples/*.lua"), glob("$root/doc/*.md"), glob("$root/doc/*.[1-8]")) {
    open my $dh, '<', $f or die "$f: $!";
    my @hits;
    while (my $l = <$dh>) {
        push @hits, "$.: $l" if $l =~ /\b(?:pkill|killall|pgrep)\b/;
    }
    (my $rel = $f) =~ s{^\Q$root\E/}{};
    ok(!@hits, "$rel suggests no pkill, killall or pgrep") or diag @hits;
}

done_testing;
