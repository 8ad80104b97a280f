#!/usr/bin/perl
# The plugin kit (lua/corral/testing.lua, doc/plugins.md "Writing and
# testing a plugin"): runs every plugin unit test, t/kit/*_test.lua, with
# luajit, and reports each of their tests here. Then the kit catches
# wrong plugins: broken copies of the shipped plugins (one change each,
# made here so that no broken copy is kept in the tree) must make their
# test fail, at the test that says what is wrong.

use strict;
use warnings;
use FindBin;
use File::Temp qw(tempdir);
use Test::More;

my $top = "$FindBin::Bin/..";
chdir $top or die "$top: $!";
$ENV{LUA_PATH} = "$top/lua/?.lua;;";
delete $ENV{CORRAL_KIT_PLUGIN};

my ($luajit) = grep { -x } map { "$_/luajit" } split /:/, $ENV{PATH};
ok($luajit, "luajit is installed (Debian package luajit; make test-deps)") or done_testing, exit;

# (exit status, output) of a test file, with more environment
sub run_lua {
    my ($file, %env) = @_;
    local @ENV{ keys %env } = values %env;
    my $out = `$luajit $file 2>&1`;
    return ($? >> 8, $out);
}

my @files = sort glob "t/kit/*_test.lua";
ok(@files >= 3, "plugin tests found: @files");
for my $file (@files) {
    subtest $file => sub {
        my $t0 = time;
        my ($rc, $out) = run_lua($file);
        my $n = 0;
        for (split /\n/, $out) {
            next unless /^(not )?ok \d+ - (.*)/;
            ok(!$1, $2);
            $n++;
        }
        my ($plan) = $out =~ /^1\.\.(\d+)$/m;
        is($plan, $n, "its plan: $n tests");
        is($rc, 0, "exit status 0") or diag($out);
        ok(time - $t0 <= 30, "ran in seconds, not minutes");
    };
}

# The walk-through of doc/plugins.md shows the example plugin and its test
# as they are: each of its Lua blocks is in one of the two files.
{
    my $slurp = sub { local (@ARGV, $/) = @_; <> };
    my ($walk) = $slurp->("doc/plugins.md") =~ /\n## Writing and testing a plugin\n(.*?)\n## The plugin kit\n/s;
    my $files = $slurp->("contrib/examples/plugins/memory-restart.lua") . $slurp->("t/kit/memory-restart_test.lua");
    my @blocks = ($walk // '') =~ /```lua\n(.*?)```/sg;
    ok(@blocks >= 6, scalar(@blocks) . " blocks of Lua in the walk-through");
    for my $i (0 .. $#blocks) {
        ok(index($files, $blocks[$i]) >= 0, "the walk-through's block " . ($i + 1) . " is in the example's files")
            or diag($blocks[$i]);
    }
}

# [plugin, its test, the change, the test that must fail]
my @wrong = (
    [ "contrib/examples/plugins/memory-restart.lua", "t/kit/memory-restart_test.lua",
      "corral.restart(pool.name, w.id)", "corral.restart(pool.name)",
      "the worker over the limit is restarted, not its pool nor another",
      "restarts the whole pool instead of the worker" ],
    [ "contrib/examples/plugins/memory-restart.lua", "t/kit/memory-restart_test.lua",
      "corral.restart(pool.name, w.id)", "corral.restart(pool.name, 1)",
      "the worker over the limit is restarted, not its pool nor another",
      "restarts the wrong worker" ],
    [ "contrib/examples/plugins/memory-restart.lua", "t/kit/memory-restart_test.lua",
      "if not since or since >= hold then", "if true then",
      "at most one restart per pool per hold", "forgets the hold" ],
    [ "contrib/examples/plugins/memory-restart.lua", "t/kit/memory-restart_test.lua",
      "break\t-- one per pool per hold", "",
      "at most one restart per pool per hold", "restarts every worker over the limit at once" ],
    [ "plugins/pool-stats.lua", "t/kit/pool-stats_test.lua",
      "corral.on(\"config\", function()\n  corral.every(interval, report)\nend)",
      "corral.on(\"config\", function()\n  corral.every(interval, report)\nend)\n"
        . "corral.on(\"reload\", function()\n  corral.every(interval, report)\nend)",
      "its timer comes back after a reload, once", "starts a second timer at each reload" ],
    [ "plugins/pool-stats.lua", "t/kit/pool-stats_test.lua",
      "corral.on(\"config\", function()\n  corral.every(interval, report)\nend)",
      "corral.every(interval, report)",
      "one line per pool every interval, in the pools' order", "starts its timer at load, in the config phase" ],
    [ "plugins/pool-stats.lua", "t/kit/pool-stats_test.lua",
      "if v then out[#out + 1]", "if true then out[#out + 1]",
      "fields the kernel does not give are left out", "assumes every controller is there" ],
);

my $dir = tempdir(CLEANUP => 1);
for my $w (@wrong) {
    my ($plugin, $test, $from, $to, $catches, $what) = @$w;
    subtest "a plugin that $what fails its test" => sub {
        open my $in, "<", $plugin or die "$plugin: $!";
        my $src = do { local $/; <$in> };
        close $in;
        my $at = index($src, $from);
        ok($at >= 0, "the change applies to $plugin") or return;
        substr($src, $at, length $from) = $to;
        my ($base) = $plugin =~ m{([^/]+)$};
        mkdir "$dir/$what";
        my $broken = "$dir/$what/$base";
        open my $out, ">", $broken or die "$broken: $!";
        print $out $src;
        close $out;
        my ($rc, $tap) = run_lua($test, CORRAL_KIT_PLUGIN => $broken);
        isnt($rc, 0, "$test fails");
        like($tap, qr/^not ok \d+ - \Q$catches\E$/m, "at \"$catches\"") or diag($tap);
    };
}

# The kit against corrald: t/kit/probe.lua tries the API, right and
# wrong (unknown pools and workers, bad types, calls in the wrong phase,
# the names of corral and corral.core), in a real corrald and in the kit;
# each logs one line per call, and the lines must be the same.
SKIP: {
    my $corrald = $ENV{CORRALD} // "$top/build/corrald";
    skip "corrald not built ($corrald): the kit against corrald runs through make test-host", 1
        unless -x $corrald;
    $ENV{CORRALD} = $corrald;
    require lib;
    lib->import("$FindBin::Bin/lib");
    require CorralTest;
    subtest "the kit answers as corrald does" => sub {
        my $t = CorralTest->new(config => <<'CONF');
pool "web" { command = { "/bin/sleep", "1000" }, workers = 2 }
plugin "probe" {}
CONF
        $t->write_file("plugins/probe.lua", do { local (@ARGV, $/) = "t/kit/probe.lua"; <> });
        $t->start;
        $t->wait_log(qr/probe: done$/m, 10);
        my @real = map { s/^.*? probe: /probe: /r } $t->log_lines(qr/ probe: /);
        $t->stop;
        my $runner = 'local kit = require("corral.testing").new { pools = { web = 2 } }
            kit:load("t/kit/probe.lua", {}, "probe"):start():emit("pool_ready", { pool = "web" })
            for _, m in ipairs(kit:messages("info")) do print(m) end';
        my @kit = split /\n/, `$luajit -e '$runner' 2>&1`;
        ok(@real > 40, scalar(@real) . " calls tried in corrald");
        is_deeply(\@kit, \@real, "the kit's answers are corrald's") or do {
            diag("corrald: $_") for @real;
            diag("kit:     $_") for @kit;
        };
    };
}

done_testing;
