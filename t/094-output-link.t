#!/usr/bin/perl
# A pool's output file is opened by corrald's side as root, before the
# worker takes its user. A pool user who can write the file's directory
# must not be able to point it elsewhere: a symlink or a hard link put in
# place of the log makes the worker fail to start (ELOOP, EMLINK) and the
# file it pointed at stays untouched; a plain file works again after.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;

my (undef, undef, $nobody_uid, $nobody_gid) = getpwnam('nobody');
plan skip_all => 'needs a user "nobody"' unless defined $nobody_uid;

my $t = CorralTest->new(config => <<'EOF');
pool "logs" {
  command = { "/bin/sh", "-c", "echo line from $CORRAL_WORKER; exec /bin/sleep 1000" },
  user = "nobody", output = "%TMP%/logs/out.log",
  crash_limit = { failures = 0 }, backoff = { initial = "100ms", max = "300ms" },
}
EOF
# the pool's user owns the log directory, as it often does
my $dir = $t->path('logs');
mkdir $dir or die "mkdir $dir: $!";
chown $nobody_uid, $nobody_gid, $dir or die "chown $dir: $!";
$t->write_file('secret', "root's own\n", 0600);
my $secret = $t->path('secret');
my $out = "$dir/out.log";

$t->start;
$t->wait_for(sub { $t->workers('logs') == 1 }, 10, 'the worker runs');
$t->wait_for(sub { (CorralTest::slurp($out) // '') =~ /line from 1/ }, 10, 'its output is in the file');

for my $case ([symlink => sub { symlink $secret, $out }, qr/Too many levels of symbolic links/],
              [hardlink => sub { link $secret, $out }, qr/Too many links/]) {
    my ($name, $make, $why) = @$case;
    # as the pool's user could: the log replaced in its directory
    unlink $out or die "unlink $out: $!";
    $make->() or die "$name: $!";
    my $mark = $t->mark;
    $t->ctl('restart', 'logs');
    $t->wait_log(qr/unable to open the output: .*$why/, since => $mark, timeout => 10,
                 name => "$name: the worker fails to open it");
    is(CorralTest::slurp($secret), "root's own\n", "$name: the file it pointed at is untouched");
    is((stat $secret)[2] & 07777, 0600, "$name: and keeps its mode");
    unlink $out or die "unlink $out: $!";
    $t->wait_for(sub { -f $out && !-l $out && (stat $out)[3] == 1 && $t->workers('logs') == 1 }, 10,
                 "$name: once it is gone, a worker runs with a new file");
}

$t->done;
