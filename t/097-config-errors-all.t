#!/usr/bin/perl
# Config errors all at once: every error of a config in one run, one line
# each, in file order, at the line of the offending key (not the pool's),
# with "did you mean" for a misspelt key or value; a reload logs each as a
# line of its own. `corrald -t` also checks the system: a missing program
# (after PATH lookup), a missing directory, a raw cgroup file the kernel
# does not have, an unknown user; in the same run as the config's errors,
# in file order. systemd's duration spellings are taken.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_environ);
use Test::More;

my $t = CorralTest->new;
my $file = $t->conf;

# The message lines of stderr, less "corrald: FILE:".
sub lines_of {
    my ($err) = @_;
    return map { s/^corrald: \Q$file\E://r } split /\n/, $err;
}

# Five errors of five kinds, in two pools, each on a line of its own.
$t->write_config(<<'EOF');
pool "web" {
  command = "/bin/sleep 1000",
  wrokers = 2,
  restart = "allways",
  backoff = {
    initial = "10 parsecs",
  },
  env = "A=1",
}
pool "api" {
  command = "/bin/sleep 1000",
  limits = { memory_maxx = "1G" },
}
EOF
my @want = (
    qr/^3: pool "web": unknown key "wrokers" \(did you mean "workers"\?\)$/ => 'unknown key',
    qr/^4: pool "web": restart: expected one of .*, got "allways" \(did you mean "always"\?\)$/ => 'bad enum value',
    qr/^6: pool "web": backoff\.initial: invalid duration "10 parsecs": unknown unit "parsecs"/ => 'bad duration',
    qr/^8: pool "web": env: expected a table of NAME = value, got "A=1"$/ => 'wrong type',
    qr/^12: pool "api": limits: unknown limit "memory_maxx" \(did you mean "memory_max"\?\)$/ => 'bad limit in a second pool',
);
for my $args ([ '-t' ], []) {
    my $res = $t->run(@$args, '-c', $file, { timeout => 10 });
    my $how = @$args ? '-t' : 'startup';
    is($res->{code}, 1, "$how: five errors: exit 1");
    my @got = lines_of($res->{err});
    is(scalar @got, 5, "$how: five lines on stderr") or diag($res->{err});
    for my $i (0 .. 4) {
        like($got[$i] // '', $want[2 * $i], "$how: line " . ($i + 1) . ": $want[2 * $i + 1], at its key's line");
    }
}

# More than 20: the first 20, then a count.
$t->write_config(join('', map { qq{pool "p$_" { command = "/bin/sleep 1", workers = -1 }\n} } 1 .. 25));
my $res = $t->run_check;
my @got = lines_of($res->{err});
is(scalar @got, 21, '25 errors: 20 lines and a count') or diag($res->{err});
like($got[0] // '', qr/^1: pool "p1": workers: /, '25 errors: the first one first');
like($got[19] // '', qr/^20: pool "p20": workers: /, '25 errors: the 20th');
is($got[20], ' and 5 more errors', '25 errors: the rest counted');

# A Lua error still ends the run: the errors before it, then it, nothing after.
$t->write_config(<<'EOF');
pool "a" { command = "/bin/sleep 1", stop_signal = "SIGFOO" }
error("boom")
pool "b" { command = "/bin/sleep 1", workers = -1 }
EOF
$res = $t->run_check;
@got = lines_of($res->{err});
is(scalar @got, 2, 'Lua error: two lines') or diag($res->{err});
like($got[0] // '', qr/^1: pool "a": stop_signal: /, 'Lua error: the error before it');
like($got[1] // '', qr/^2: boom$/, 'Lua error: then the Lua error');

# -t: the system. A program not in PATH, a missing directory, a raw cgroup
# file no cgroup has, a program that is no executable file.
$t->write_config(<<'EOF');
pool "a" {
  command = "no-such-program-97 --flag",
  directory = "/nonexistent-97",
}
pool "b" {
  command = { "sleep", "1000" },
  directory = "/tmp",
  limits = { cgroup = { ["cgroup.no_such_file"] = "1" } },
}
pool "c" { command = "/etc/passwd" }
EOF
$res = $t->run_check;
is($res->{code}, 1, '-t: system errors: exit 1');
@got = lines_of($res->{err});
is(scalar @got, 4, '-t: four lines') or diag($res->{err});
like($got[0] // '', qr/^2: pool "a": command: no-such-program-97: no executable of that name in PATH \(/,
     "-t: missing program, at command's line");
like($got[1] // '', qr{^3: pool "a": directory: /nonexistent-97: No such file or directory$},
     '-t: missing directory, at its line');
like($got[2] // '', qr/^8: pool "b": limits\.cgroup\.cgroup\.no_such_file: no such file in the cgroup v2 interface$/,
     '-t: unknown cgroup file, at its line');
like($got[3] // '', qr{^10: pool "c": command: /etc/passwd: Permission denied$}, '-t: not executable');

# -t: the config's errors and the system's findings in one run, in file
# order, a pool with an error of its own checked too (with defaults for
# its bad keys); a plain start reports the config's errors only.
$t->write_config(<<'EOF');
pool "a" {
  command = "no-such-program-97",
  wrokers = 2,
}
pool "b" {
  command = "/bin/sleep 1000",
  directory = "/nonexistent-97",
  restart = "allways",
}
pool "c" { command = "/bin/sleep 1000", workers = -1 }
EOF
for my $args ([ '-t' ], []) {
    $res = $t->run(@$args, '-c', $file, { timeout => 10 });
    my $how = @$args ? '-t' : 'startup';
    is($res->{code}, 1, "$how: config and system errors: exit 1");
    @got = lines_of($res->{err});
    my @want = @$args ? (
        qr/^2: pool "a": command: no-such-program-97: no executable of that name in PATH \(/,
        qr/^3: pool "a": unknown key "wrokers" \(did you mean "workers"\?\)$/,
        qr{^7: pool "b": directory: /nonexistent-97: No such file or directory$},
        qr/^8: pool "b": restart: .*did you mean "always"/,
        qr/^10: pool "c": workers: /,
    ) : (
        qr/^3: pool "a": unknown key "wrokers"/,
        qr/^8: pool "b": restart: /,
        qr/^10: pool "c": workers: /,
    );
    is(scalar @got, scalar @want, "$how: " . @want . ' lines') or diag($res->{err});
    like($got[$_] // '', $want[$_], "$how: line " . ($_ + 1) . ' in file order') for 0 .. $#want;
}

# Together, still 20 lines and a count: 22 pools, each a config error
# and a missing program at the same line, the config's first.
$t->write_config(join('', map { qq{pool "p$_" { command = "no-such-97", workers = -1 }\n} } 1 .. 22));
$res = $t->run_check;
@got = lines_of($res->{err});
is(scalar @got, 21, '-t, 44 errors: 20 lines and a count') or diag($res->{err});
like($got[0] // '', qr/^1: pool "p1": workers: /, '-t, 44 errors: the config\'s error first');
like($got[1] // '', qr/^1: pool "p1": command: no-such-97: /, '-t, 44 errors: then the missing program');
like($got[19] // '', qr/^10: pool "p10": command: /, '-t, 44 errors: the 20th');
is($got[20], ' and 24 more errors', '-t, 44 errors: the rest counted');

# Users and groups: checked at every load (they are needed to run).
$t->write_config(<<'EOF');
pool "a" {
  command = "/bin/sleep 1000",
  user = "no-such-user-97",
  group = "no-such-group-97",
}
EOF
$res = $t->run_check;
@got = lines_of($res->{err});
is(scalar @got, 2, 'unknown user and group: two lines') or diag($res->{err});
like($got[0] // '', qr/^3: pool "a": user: unknown user "no-such-user-97"$/, 'unknown user, at its line');
like($got[1] // '', qr/^4: pool "a": group: unknown group "no-such-group-97"$/, 'unknown group, at its line');

# systemd's duration spellings: accepted by -t, and meant as written
# (watchdog = "1min 30s" is WATCHDOG_USEC=90000000 in the worker).
$t->write_config(<<'EOF');
pool "d" {
  command = "/bin/sleep 1000",
  watchdog = "1min 30s",
  stop_timeout = "5 seconds",
  backoff = { initial = "500 msec", max = "2h 5min", reset = "1 hour" },
  crash_limit = { interval = "1 week" },
}
EOF
$res = $t->run_check;
is($res->{code}, 0, 'systemd durations: -t ok') or diag($res->{err});
$t->start;
$t->wait_for(sub { $t->workers('d') == 1 }, 10, 'worker up');
my ($w) = $t->workers('d');
is(proc_environ($w)->{WATCHDOG_USEC}, '90000000', '"1min 30s" is 90s');

# A reload with two errors: two log lines, each whole.
my $mark = $t->mark;
$t->write_config(<<'EOF');
pool "d" {
  command = "/bin/sleep 1000",
  watchdog = "1min 30s",
  stop_timeout = "5 parsecs",
  restart = "nevr",
}
EOF
$t->reload;
$t->wait_log(qr/reload failed.*:5: pool "d": restart: .*did you mean "never"/, since => $mark);
my @failed = grep { /reload failed/ } split /\n/, substr($t->log, $mark);
is(scalar @failed, 2, 'reload: one log line per error') or diag(join "\n", @failed);
like($failed[0] // '', qr/:4: pool "d": stop_timeout: invalid duration "5 parsecs"/, 'reload: the first error first');
is(scalar $t->workers('d'), 1, 'reload: the running pool kept');

# corralctl reload prints them all, the 20th and the count too (not cut
# at some size of the answer), and the answer's object lists each one
{
    my $cfg = qq{pool "d" { command = "/bin/sleep 1000", watchdog = "1min 30s" }\n}
        . join('', map { qq{pool "long_pool_name_to_make_the_error_longer_$_" { command = "/bin/sleep 1", workers = -1 }\n} } 1 .. 25);
    $t->write_config($cfg);
    my $r = $t->ctl('reload');
    is($r->{code}, 1, 'corralctl reload, 25 errors: exit 1');
    my @l = grep { /\S/ } split /\n/, $r->{err} // '';
    like($l[19] // '', qr/long_pool_name_to_make_the_error_longer_20": workers: /, 'corralctl reload: the 20th error printed whole')
        or diag($r->{err});
    like($l[-1] // '', qr/and 5 more errors/, 'corralctl reload: then the count');
    my $j = $t->ctl('--json', 'reload');
    my ($n) = ($j->{out} // '') =~ /"errors":\[(.*)\]/;
    is(scalar(() = ($n // '') =~ /workers: /g), 20, 'corralctl --json reload: the object lists the 20 errors');
}

$t->done;
