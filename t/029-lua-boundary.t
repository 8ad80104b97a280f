#!/usr/bin/perl
# The C/Lua boundary: corral.core's C functions check their phase in C
# (config code cannot reach exec, sleep or the supervisor's controls
# through require "corral.core"; a plugin cannot exec corrald away), and a
# worker's Lua body returns to C to exec: worker:exec() unwinds it, a
# program that cannot be executed is reported as such.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(proc_cmdline);
use Test::More;

# ---- config code: the phase check is C's, not only init.lua's ---------------

{
    my $t = CorralTest->new;
    my $file = $t->conf;
    my $head = <<'EOF';
pool "ok" { command = { "/bin/sh", "-c", "touch %TMP%/started; exec /bin/sleep 1000" }, env_inherit = { "CORRAL_TEST_DIR" } }
local core = require "corral.core"
EOF
    for my $case ([ 'exec', 'core.exec({ "/bin/true" })' ],
                  [ 'sleep', 'core.sleep(1)' ],
                  [ 'ready', 'core.ready()' ],
                  [ 'scale', 'core.scale("ok", 2)' ],
                  [ 'timer', 'core.timer(1, false)' ],
                  [ 'stopping', 'core.stopping()' ]) {
        my ($fn, $line) = @$case;
        $t->write_config($head . $line . "\n");
        my $res = $t->run_check;
        is($res->{code}, 1, "config calling core.$fn: -t exits 1");
        like($res->{err}, qr/^corrald: \Q$file\E:3: corral\.core\.$fn: not available in config$/m,
             "config calling core.$fn: FILE:LINE, the function and the phase") or diag($res->{err});
        ok(!-e $t->path('started'), "config calling core.$fn: nothing started");
    }
}

# ---- a plugin handler reaching for a worker's primitive ----------------------

my $t = CorralTest->new;
$t->write_file('plugins/grabby.lua', <<'EOF');
local core = require "corral.core"
corral.on("pool_ready", function(ev)
  if ev.pool ~= "ok" then return end
  core.exec({ "/bin/true" })
end)
EOF
$t->write_config(<<'EOF');
pool "ok" { command = { "/bin/sleep", "1000" }, workers = 1 }
plugin "grabby" {}
EOF
$t->start;
$t->wait_log(qr/ error plugin grabby: pool_ready handler failed: .*grabby\.lua:4: corral\.core\.exec: not available in plugin$/,
             name => 'a handler calling core.exec: error names the function and the phase');
ok(kill(0, $t->pid), 'corrald goes on');
$t->wait_for(sub { $t->workers('ok') == 1 }, 10, 'its pool keeps its worker');

# ---- worker:exec() unwinds the Lua body; C execs ------------------------------

my $u = CorralTest->new;
$u->write_config(<<'EOF');
pool "missing" {
  workers = 1,
  backoff = { initial = "10s" },
  start = function(worker)
    worker:exec({ "/nonexistent/program", "x" })
    corral.log("error", "not reached")
  end,
}
pool "caught" {
  workers = 1,
  start = function(worker)
    local ok = pcall(worker.exec, worker, { "/bin/sleep", "1003" })
    corral.log("info", "after pcall: " .. tostring(ok))
  end,
}
EOF
$u->start;
$u->wait_log(qr/ error worker:exec: unable to exec "\/nonexistent\/program": No such file or directory pool=missing worker=1 pid=\d+$/,
             name => 'a program that cannot be executed: named, with the errno');
$u->wait_log(qr/ worker exited with status 127 pool=missing worker=1 /,
             name => 'the worker exits with status 127');
ok(!$u->log_lines(qr/not reached/), 'the Lua body after worker:exec() does not run');
$u->wait_log(qr/ info after pcall: false pool=caught worker=1 /,
             name => 'a pcall around worker:exec() returns false, the body goes on');
$u->wait_for(sub {
    my ($w) = $u->workers('caught');
    $w && proc_cmdline($w) eq "/bin/sleep\0" . "1003\0";
}, 10, 'then the worker becomes the program it named');
$u->done;
