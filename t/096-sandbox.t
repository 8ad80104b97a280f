#!/usr/bin/perl
# What config and plugin code sees of the standard library
# (doc/plugins.md, "What config and plugin code can use"): exactly the
# documented functions of os and io, os.rename and os.remove among them,
# so that a plugin can write a file atomically (a temporary file,
# renamed), at load (phase config) and in a timer (phase plugin).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;

my $t = CorralTest->new(config => <<'EOF');
pool "p" { command = "/bin/sleep 1000", env_inherit = { "CORRAL_TEST_DIR" } }
plugin "atomic" { dir = "%TMP%" }
EOF
$t->write_file('plugins/atomic.lua', <<'EOF');
local dir = (...).dir
-- a file written atomically: readers see the old text or the new, whole
local function put(name, text)
  local tmp = dir .. "/" .. name .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(text)
  f:close()
  assert(os.rename(tmp, dir .. "/" .. name))
end
local function keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return table.concat(out, " ")
end
put("seen", "os: " .. keys(os) .. "\nio: " .. keys(io) .. "\n")
-- remove: a leftover temporary is cleaned up
local f = assert(io.open(dir .. "/scratch", "w"))
f:close()
assert(os.remove(dir .. "/scratch"))
corral.on("config", function()
  corral.after(0.05, function() put("from-timer", "written in phase " .. corral.phase() .. "\n") end)
end)
EOF
$t->start;

my $read = sub { my $p = $t->path($_[0]); -e $p ? CorralTest::slurp($p) : undef };
is($t->poll(sub { $read->('seen') }, 10),
   "os: clock date difftime exit getenv remove rename time\nio: lines open\n",
   'os and io in plugin code: exactly the functions doc/plugins.md lists');
ok(!-e $t->path('scratch'), 'os.remove works at load (phase config)');
ok(!-e $t->path('seen.tmp'), 'os.rename works at load: no temporary left');
is($t->poll(sub { $read->('from-timer') }, 10), "written in phase plugin\n",
   'io.open and os.rename work in a timer (phase plugin)');
ok(!-e $t->path('from-timer.tmp'), 'no temporary left by the timer');
unlike($t->log, qr/plugin atomic: .*failed/, 'no plugin error in the log');

$t->done;
