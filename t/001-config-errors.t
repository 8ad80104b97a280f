#!/usr/bin/perl
# Config errors: one line on stderr naming FILE:LINE (and the key), exit 1,
# at startup and with -t, nothing started. Usage errors, -h, -V.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;

my $t = CorralTest->new;
my $file = $t->conf;

# Lines 1-2 hold a valid pool that would leave a marker if it ever ran;
# each case puts its faulty statement on line 3.
my $head = <<'EOF';
pool "ok" { command = { "/bin/sh", "-c", "touch %TMP%/started; exec /bin/sleep 1000" }, env_inherit = { "CORRAL_TEST_DIR" } }
-- the faulty line follows
EOF

my $long = 'a' x 65;
my @cases = (
    # [ description, line 3, what the message says after "FILE:3: " ]
    [ 'unknown key', 'pool "web" { command = "/bin/sleep 1", wrokers = 3 }',
      qr/^pool "web": unknown key "wrokers"/ ],
    [ 'unknown nested key', 'pool "web" { command = "/bin/sleep 1", backoff = { inital = "1s" } }',
      qr/^pool "web": .*inital/ ],
    [ 'unknown settings key', 'settings { bogus = 1 }', qr/bogus/ ],
    [ 'workers wrong type', 'pool "web" { command = "/bin/sleep 1", workers = "x" }',
      qr/^pool "web": workers: expected an integer from 0 to 10000, got "x"/ ],
    [ 'workers boolean', 'pool "web" { command = "/bin/sleep 1", workers = true }',
      qr/^pool "web": workers: / ],
    [ 'workers -1', 'pool "web" { command = "/bin/sleep 1", workers = -1 }',
      qr/^pool "web": workers: / ],
    [ 'workers 10001', 'pool "web" { command = "/bin/sleep 1", workers = 10001 }',
      qr/^pool "web": workers: / ],
    [ 'workers not an integer', 'pool "web" { command = "/bin/sleep 1", workers = 1.5 }',
      qr/^pool "web": workers: / ],
    [ 'command wrong type', 'pool "web" { command = 42 }', qr/^pool "web": command/ ],
    [ 'env wrong type', 'pool "web" { command = "/bin/sleep 1", env = "A=1" }',
      qr/^pool "web": env/ ],
    [ 'bad duration', 'pool "web" { command = "/bin/sleep 1", stop_timeout = "10 parsecs" }',
      qr/^pool "web": stop_timeout: / ],
    [ 'bad nested duration', 'pool "web" { command = "/bin/sleep 1", backoff = { initial = "10 parsecs" } }',
      qr/^pool "web": backoff\.initial: / ],
    [ 'bad crash_limit interval', 'pool "web" { command = "/bin/sleep 1", crash_limit = { interval = "soon" } }',
      qr/^pool "web": crash_limit\.interval: / ],
    [ 'bad enum', 'pool "web" { command = "/bin/sleep 1", restart = "sometimes" }',
      qr/^pool "web": restart: / ],
    [ 'bad log_level', 'settings { log_level = "loud" }', qr/log_level/ ],
    [ 'bad signal name', 'pool "web" { command = "/bin/sleep 1", stop_signal = "SIGFOO" }',
      qr/^pool "web": stop_signal: / ],
    [ 'bad signal number', 'pool "web" { command = "/bin/sleep 1", stop_signal = 999 }',
      qr/^pool "web": stop_signal: / ],
    [ 'duplicate pool', 'pool "ok" { command = "/bin/sleep 1" }',
      qr/^pool "ok": duplicate pool \(first defined at line 1\)/ ],
    (map { [ "invalid pool name \"$_\"", qq{pool "$_" { command = "/bin/sleep 1" }},
             qr/^pool "\Q$_\E": invalid pool name/ ] } 'bad name', '', $long, 'a.b'),
    [ 'missing command', 'pool "web" { workers = 1 }', qr/^pool "web": .*command/ ],
    [ 'empty command', 'pool "web" { command = {} }', qr/^pool "web": command/ ],
    [ 'quotes in command string', q{pool "web" { command = "/bin/sh -c 'exit 0'" }},
      qr/^pool "web": command/ ],
    [ 'relative directory', 'pool "web" { command = "/bin/sleep 1", directory = "srv" }',
      qr/^pool "web": directory: / ],
    [ 'Lua syntax error', 'pool "web" { command = "/bin/sleep 1",, }', qr/./ ],
    [ 'Lua runtime error', 'error("boom")', qr/boom/ ],
    [ 'calling nil', 'no_such_function()', qr/no_such_function/ ],
    [ 'unsafe library', 'os.execute("touch %TMP%/pwned")', qr/./ ],
);

sub check_error {
    my ($name, $res, $prefix, $re) = @_;
    my $err = $res->{err};
    is($res->{code}, 1, "$name: exit 1");
    like($err, qr/\A[^\n]+\n?\z/, "$name: exactly one line on stderr")
        or diag("stderr:\n$err");
    my ($rest) = $err =~ /^\Q$prefix\E(.*)$/m;
    ok(defined $rest, "$name: line starts with '$prefix'") or diag("stderr:\n$err");
    like($rest // '', $re, "$name: message names the problem");
    ok(!-e $t->path('started') && !-e $t->path('pwned'), "$name: nothing started");
}

for my $case (@cases) {
    my ($name, $line, $re) = @$case;
    $t->write_config($head . $line . "\n");
    check_error("$name (-t)", $t->run_check, "corrald: $file:3: ", $re);
    check_error("$name (startup)", $t->run('-c', $file, { timeout => 5 }),
                "corrald: $file:3: ", $re);
}

# A missing file.
my $missing = $t->path('nope.lua');
for my $args ([ '-t', '-c', $missing ], [ '-c', $missing ]) {
    my $res = $t->run(@$args, { timeout => 5 });
    is($res->{code}, 1, "missing file (@$args): exit 1");
    is($res->{err}, "corrald: $missing: unable to open: No such file or directory\n",
       "missing file (@$args): one line naming the file and the errno");
}

# A valid config, with every option: -t says ok, counts the pools, starts
# nothing.
my $name64 = 'b' x 64;
$t->write_config(<<"EOF");
settings { log_level = "debug" }
pool "ok" { command = { "/bin/sh", "-c", "touch %TMP%/started; exec /bin/sleep 1000" }, env_inherit = { "CORRAL_TEST_DIR" } }
pool "$name64" {
  command = { "/bin/sleep", 1000 },
  workers = 0,
  env = { A = "1", N = 3, PATH = false },
  env_inherit = true,
  directory = "/tmp",
  stop_signal = "SIGINT",
  stop_timeout = "1m30s",
  restart = "on-failure",
  backoff = { initial = "250ms", max = 2, reset = "1.5s" },
  crash_limit = { failures = 0, interval = "1h" },
}
pool "Web_2-x" {
  command = "/bin/sleep 1000",
  workers = 10000,
  stop_signal = 15,
  stop_timeout = "500us",
  restart = "never",
  backoff = { initial = 0.1, max = "1d" },
  crash_limit = { failures = 3, interval = "2m" },
}
EOF
my $res = $t->run_check;
is($res->{code}, 0, 'valid config: -t exits 0') or diag($res->{err});
is($res->{err}, "corrald: $file: configuration ok (3 pools)\n", 'valid config: -t reports ok and the pool count');
ok(!-e $t->path('started'), 'valid config: -t starts nothing');

# Usage.
$res = $t->run('-x');
is($res->{code}, 2, 'bad option: exit 2');
like($res->{err}, qr/usage/i, 'bad option: usage on stderr');
is($res->{out}, '', 'bad option: nothing on stdout');

$res = $t->run('-c');
is($res->{code}, 2, '-c without a file: exit 2');

$res = $t->run('-h');
is($res->{code}, 0, '-h: exit 0');
like($res->{out}, qr/usage.*-c/is, '-h: usage on stdout');

$res = $t->run('-V');
is($res->{code}, 0, '-V: exit 0');
like($res->{out} . $res->{err}, qr/^corrald 0\.1\.0$/m, '-V: prints the version');

$t->done;
