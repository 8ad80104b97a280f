#!/usr/bin/perl
# Lua inside corrald cannot stall it or eat its memory, even in C
# functions the count hook cannot reach: pattern matching keeps to the
# budget (luapat.c), a state holds at most 256 MiB (string.rep and
# table.concat of gigabytes fail with "not enough memory"), a handler
# that blocks in a system call gets its plugin switched off, and a config
# that blocks while loading is refused after a test run in a child
# (preflight.c), at startup and on reload, with the pools untouched.
# Prototypes and workers keep LuaJIT's own functions and no cap.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Fcntl qw(O_WRONLY O_NONBLOCK);
use POSIX qw(mkfifo);
use Test::More;

# ---- plugins: patterns, memory, a blocking call -----------------------------
{
    my $t = CorralTest->new;
    mkfifo($t->path('fifo'), 0600) or die "mkfifo: $!";
    $t->write_file('plugins/greedy.lua', <<'EOF');
local dir = (...).dir
local function note(name, text)
  local f = assert(io.open(dir .. "/" .. name, "a")) f:write(text, "\n") f:close()
end
corral.on("worker_ready", function(ev)
  if ev.pool ~= "a" then return end
  local ok, err = pcall(string.rep, "x", 2^30)
  note("rep", tostring(ok) .. " " .. tostring(err))
  local parts = {}
  for i = 1, 150 do parts[i] = ("y"):rep(1e6) .. i end	-- 150 MB: fits
  ok, err = pcall(table.concat, parts)			-- 150 MB more: does not
  note("concat", tostring(ok) .. " " .. tostring(err))
  parts = nil
  -- patterns still work, and gsub with a function replacement too
  note("works", (("k=v; x=y"):gsub("(%w+)=(%w+)", function(k, v) return v .. "=" .. k end)))
  -- last, as it spends the handler's whole budget
  ok, err = pcall(string.find, ("a"):rep(60), "a*a*a*a*a*a*a*a*b")
  note("find", tostring(ok) .. " " .. tostring(err))
end)
EOF
    $t->write_file('plugins/blocker.lua', <<'EOF');
local dir = (...).dir
corral.on("worker_ready", function(ev)
  if ev.pool ~= "b" or not io.open(dir .. "/arm") then return end
  local f = io.open(dir .. "/ran", "a") f:write(ev.worker, "\n") f:close()
  f = io.open(dir .. "/blocking", "w") f:close()
  local fifo = io.open(dir .. "/fifo", "r")	-- blocks until the test writes
  fifo:close()
end)
EOF
    $t->write_file('plugins/bystander.lua', <<'EOF');
local dir = (...).dir
corral.on("worker_ready", function(ev)
  local f = io.open(dir .. "/bystander", "a") f:write(ev.pool, " ", ev.worker, "\n") f:close()
end)
EOF
    $t->write_config(<<'EOF');
pool "a" { command = "/bin/sleep 1000" }
pool "b" { command = "/bin/sleep 1000" }
plugin "greedy" { dir = "%TMP%" }
plugin "blocker" { dir = "%TMP%" }
plugin "bystander" { dir = "%TMP%" }
EOF
    $t->start;
    $t->wait_for(sub { $t->file_lines('find') }, 30, 'greedy: its handler ran to the end');
    my ($find) = $t->file_lines('find');
    like($find, qr/^false .*pattern matching took longer than 1s, stopped$/,
         'a backtracking pattern is stopped at the 1s budget');
    is(($t->file_lines('rep'))[0], 'false not enough memory', 'string.rep of 1 GiB: not enough memory');
    is(($t->file_lines('concat'))[0], 'false not enough memory', 'table.concat of 300 MB: not enough memory');
    is(($t->file_lines('works'))[0], 'v=k; y=x', 'patterns still match, gsub calls back into Lua');

    # the blocker: it blocks in open(2) of a FIFO for longer than twice its
    # budget (the test holds it there), then is switched off
    $t->write_file('arm', '');
    my ($b0) = $t->workers('b');
    kill 'KILL', $b0;
    $t->wait_for(sub { -e $t->path('blocking') }, 30, 'blocker: its handler is blocking');
    select undef, undef, undef, 2.5;	# the stall being tested, not a wait for something
    # O_NONBLOCK: if the handler is not in open(2) after all, fail, never hang
    sysopen(my $w, $t->path('fifo'), O_WRONLY | O_NONBLOCK) or die "fifo: $!";
    close $w;
    $t->wait_log(qr/ error plugin blocker: worker_ready handler ran \d+\.\ds, over its 1s budget, in code that cannot be stopped \(a blocking system call\?\): its handlers are off until the next reload$/, 10);
    $t->wait_control(5);
    # another worker_ready: the blocker does not run, the others do
    my $mark = scalar $t->file_lines('bystander');
    my ($b1) = $t->workers('b');
    kill 'KILL', $b1;
    $t->wait_for(sub { $t->file_lines('bystander') > $mark }, 15, 'bystander: runs on the next event');
    is(scalar $t->file_lines('ran'), 1, 'blocker: not called again');
    is($t->stop, 0, "corrald stops with exit 0");
}

# ---- configs that block or hog while loading ---------------------------------
{
    my $t = CorralTest->new;
    mkfifo($t->path('fifo'), 0600) or die "mkfifo: $!";
    my $good = <<'EOF';
pool "stay" { command = "/bin/sleep 1000", workers = 2 }
EOF
    my $blocking = $good . <<'EOF';
local f = io.open("%TMP%/fifo", "r")
EOF
    my $hog = $good . <<'EOF';
local s = ("x"):rep(2^27)
local t = s .. s .. s
EOF

    $t->write_config($hog);
    my $res = $t->run_check;
    is($res->{code}, 1, 'a config that takes more than 256 MiB: refused');
    like($res->{err}, qr/^corrald: \Q${\ $t->conf }\E: not enough memory \(Lua inside corrald may use 256 MiB\)$/m, '... naming the file and the cap');

    $t->write_config($blocking);
    my $t0 = time;
    $res = $t->run('-c', $t->conf, '-g', $t->{cgroup}, { timeout => 60 });
    is($res->{code}, 1, 'a config that blocks while loading: corrald exits 1 at startup');
    like($res->{err}, qr/loading took longer than 15s in a test run, stopped/, '... saying why');

    $t->write_config($good);
    $t->start;
    $t->wait_for(sub { $t->workers('stay') == 2 }, 15, 'a good config runs');
    my @before = sort $t->workers('stay');
    $t->write_config($blocking);
    my $mark = $t->mark;
    $t->reload;
    $t->wait_log(qr/ error reload failed, keeping the running configuration: .*loading took longer than 15s in a test run/, since => $mark, timeout => 40);
    $t->wait_control(5);
    is_deeply([ sort $t->workers('stay') ], \@before, 'the pools were not touched');
    $t->write_config($good);
    is($t->stop, 0, "corrald stops with exit 0");
}

# ---- prototypes and workers: no cap of corrald's -----------------------------
{
    my $t = CorralTest->new(config => <<'EOF');
pool "big" {
  command = "/bin/sleep 1000",
  prefork = function() return { big = ("p"):rep(300 * 2^20) } end,
  start = function(worker)
    local s = ("w"):rep(300 * 2^20)
    local f = io.open(os.getenv("CORRAL_TEST_DIR") .. "/big" .. worker.id, "w")
    f:write(#s + #worker.pool.state.big, "\n") f:close()
    worker:exec({ "/bin/sleep", "1000" })
  end,
  env_inherit = { "CORRAL_TEST_DIR" },
}
EOF
    $t->start;
    $t->wait_for(sub { $t->file_lines('big1') }, 30, 'a worker built 600 MiB of strings');
    is(($t->file_lines('big1'))[0], 600 * 2**20, 'prefork and start are not held to 256 MiB');
    is($t->stop, 0, "corrald stops with exit 0");
}

CorralTest->done;
