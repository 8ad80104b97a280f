#!/usr/bin/perl
# A command that cannot be exec'd: "unable to exec" naming it and the errno
# text, then backoff and crash_limit apply as to any failure.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;

my $t = CorralTest->new(config => <<'EOF');
local limits = { backoff = { initial = "50ms", max = "100ms" }, crash_limit = { failures = 3, interval = "30s" } }
pool "missing" {
  command = "/nonexistent/corral-prog --flag",
  backoff = limits.backoff, crash_limit = limits.crash_limit,
  env_inherit = { "CORRAL_TEST_DIR" },
}
pool "noexec" {
  command = { "%TMP%/not-executable" },
  backoff = limits.backoff, crash_limit = limits.crash_limit,
  env_inherit = { "CORRAL_TEST_DIR" },
}
pool "healthy" { command = "/bin/sleep 1000", env_inherit = { "CORRAL_TEST_DIR" } }
EOF
$t->write_file('not-executable', "#!/bin/sh\nexit 0\n", 0644);
$t->start;

my %errno = (missing => [ '/nonexistent/corral-prog', 'No such file or directory' ],
             noexec  => [ $t->path('not-executable'), 'Permission denied' ]);
for my $pool (sort keys %errno) {
    my ($prog, $text) = @{ $errno{$pool} };
    my @lines = $t->wait_log(qr/ error unable to exec "\Q$prog\E": \Q$text\E pool=$pool worker=1 pid=\d+$/,
                             count => 3, name => "$pool: unable to exec logged for each of 3 attempts");
    $t->wait_log(qr/ info restarting worker in 50ms pool=$pool$/);
    $t->wait_log(qr/ info restarting worker in 100ms pool=$pool$/);
    $t->wait_log(qr/ error pool failed: 3 start failures within 30s, last: .+; staying down until start, restart or reload pool=$pool$/);
}
$t->stays(sub { !$t->workers('missing') && !$t->workers('noexec')
                && $t->log_lines(qr/ unable to exec .* pool=missing /) == 3 }, 1, 'failed pools stay down');
is(scalar $t->workers('healthy'), 1, 'healthy pool unaffected');

$t->done;
