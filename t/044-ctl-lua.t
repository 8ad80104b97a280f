#!/usr/bin/perl
# The control commands from Lua: a plugin calls corral.status, scale,
# restart, stop_pool, start_pool, signal and reload, and their error
# returns for unknown pools and workers; corral.reload() happens once the
# handler has returned.
#
# The plugin "ctl" runs what the test writes: each 50 ms it looks for
# TMP/cmd.N ("FUNCTION ARG..."), calls corral.FUNCTION(ARG...) and writes
# what it returned, as JSON, in TMP/result.N.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive);
use JSON::PP ();
use POSIX ();
use Test::More;

my $CONFIG = <<'EOF';
local inherit = { "CORRAL_TEST_DIR" }
pool "web" { command = "/bin/sleep 1000", workers = 2, env_inherit = inherit }
pool "sig" { command = { "/bin/sh", "%TMP%/sig.sh" }, workers = 2, env_inherit = inherit }
plugin "ctl" { dir = "%TMP%" }
EOF

my $PLUGIN = <<'EOF';
local options = ...
local dir = options.dir

local function encode(v)
  local t = type(v)
  if v == nil then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then return ("%.17g"):format(v) end
  if t == "string" then
    return '"' .. (v:gsub('[%c"\\]', function(c) return ("\\u%04x"):format(c:byte()) end)) .. '"'
  end
  if t == "table" then
    local out = {}
    if #v > 0 or next(v) == nil then
      for i = 1, #v do out[i] = encode(v[i]) end
      return "[" .. table.concat(out, ",") .. "]"
    end
    for k, x in pairs(v) do out[#out + 1] = encode(tostring(k)) .. ":" .. encode(x) end
    return "{" .. table.concat(out, ",") .. "}"
  end
  return encode(tostring(v))
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- the first command without a result: a reload starts the plugin again
local n = 1
while exists(dir .. "/result." .. n) do n = n + 1 end
corral.info("ctl: loaded, next command " .. n)

local function word(w)
  if w == "nil" then return nil end
  if w == "true" then return true end
  if w == "false" then return false end
  return tonumber(w) or w
end

local function pack(...) return { n = select("#", ...), ... } end

local function run(line)
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  local fn, args = words[1], { n = #words - 1 }
  for i = 2, #words do args[i - 1] = word(words[i]) end
  if fn == "reload" then
    -- the reload must wait until this handler has returned
    corral.info("ctl: calling corral.reload()")
    local r = pack(pcall(corral.reload))
    local st, err = corral.status("added")
    corral.info("ctl: handler returns")
    return { r[1], r[2], st ~= nil, err }, 4
  end
  local r = pack(pcall(corral[fn], unpack(args, 1, args.n)))
  return r, r.n
end

local function poll()
  while true do
    local f = io.open(dir .. "/cmd." .. n)
    if not f then return end
    local line = f:read("*l") or ""
    f:close()
    local r, count = run(line)
    local out = {}
    for i = 1, count do out[i] = encode(r[i]) end
    local w = assert(io.open(dir .. "/result." .. n, "w"))
    w:write("[" .. table.concat(out, ",") .. "]\n")
    w:close()
    n = n + 1
  end
end

corral.on("config", function() corral.every(0.05, poll) end)
EOF

my $t = CorralTest->new(config => $CONFIG);
mkdir $t->path('plugins') or die "mkdir: $!";
$t->write_file('plugins/ctl.lua', $PLUGIN);
$t->write_file('sig.sh', <<'EOF');
trap 'echo USR1 >> %TMP%/usr1.$CORRAL_WORKER' USR1
touch %TMP%/sigready.$CORRAL_WORKER
while :; do /bin/sleep 0.02; done
EOF
$t->start;
$t->wait_for(sub { $t->workers('web') == 2 && $t->workers('sig') == 2 }, 10, 'pools up');
$t->wait_log(qr/ info ctl: loaded, next command 1$/);

my $seq = 0;
my $JSON = JSON::PP->new->utf8->allow_nonref;

# Has the plugin run "FUNCTION ARG..."; returns what it wrote: [ pcall ok,
# values... ] (undef, with a failed test, if nothing came).
sub lua {
    my ($line) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $n = ++$seq;
    $t->write_file("cmd.$n", "$line\n");
    my $text;
    my $ok = $t->poll(sub { $text = CorralTest::slurp($t->path("result.$n")); defined $text && $text =~ /\n\z/ }, 10);
    ok($ok, "plugin ran: $line") or do { $t->diag_tail; return undef };
    my $r = eval { $JSON->decode($text) };
    ok($r, "plugin's result is JSON: $line") or diag($text);
    return $r;
}

sub truthy { defined $_[0] && !(JSON::PP::is_bool($_[0]) && !$_[0]) }

sub returns_ok {
    my ($line, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = lua($line) || [];
    ok($r->[0], "$name: no error raised") or diag(explain $r);
    ok(truthy($r->[1]), "$name: returns a true value") or diag(explain $r);
    return $r;
}

sub returns_nil {
    my ($line, $why, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = lua($line) || [];
    ok($r->[0], "$name: no error raised") or diag(explain $r);
    is_deeply([ @$r[1, 2] ], [ undef, $why ], "$name: returns nil, \"$why\"");
}

sub raises {
    my ($line, $re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = lua($line) || [];
    ok(defined $r->[0] && !$r->[0], "$name: raises an error");
    like($r->[1] // '', $re, "$name: the error says why");
}

sub all_gone { !grep { pid_alive($_) } @{ $_[0] } }
sub disjoint { my %a = map { $_ => 1 } @{ $_[0] }; !grep { $a{$_} } @{ $_[1] } }

# --- corral.status -------------------------------------------------------------------

$t->scenario('corral.status', sub {
    my $r = returns_ok('status', 'corral.status()');
    my $pools = $r->[1] || [];
    is(ref $pools, 'ARRAY', 'corral.status(): a list of pools');
    my %p = map { $_->{name} => $_ } grep { ref eq 'HASH' } @$pools;
    is_deeply([ sort keys %p ], [ qw(sig web) ], 'corral.status(): both pools, by name');
    my %web = $t->worker_map('web');
    is_deeply({ map { $_->{id} => $_->{pid} } @{ $p{web}{workers} || [] } }, \%web,
              'corral.status(): web worker ids and pids are the real ones');
    is($p{web}{target}, 2, 'corral.status(): target');
    is($p{web}{ready}, 2, 'corral.status(): ready');
    is($p{web}{state}, 'running', 'corral.status(): state');
    is($p{web}{workers}[0]{state}, 'ready', 'corral.status(): a worker\'s state');
    $r = returns_ok('status web', 'corral.status("web")');
    is_deeply([ map { $_->{name} } @{ $r->[1] || [] } ], [ 'web' ], 'corral.status("web"): that pool only');
    returns_nil('status nope', 'no such pool', 'corral.status("nope")');
});

# --- corral.scale ------------------------------------------------------------------

$t->scenario('corral.scale', sub {
    my @before = $t->workers('web');
    returns_ok('scale web 4', 'corral.scale("web", 4)');
    $t->wait_for(sub { $t->workers('web') == 4 }, 10, 'corral.scale: 4 workers');
    my %keep = map { $_ => 1 } $t->workers('web');
    ok(!grep({ !$keep{$_} } @before), 'corral.scale up: the workers there before are kept');
    returns_ok('scale web 1', 'corral.scale("web", 1)');
    $t->wait_for(sub { $t->workers('web') == 1 }, 10, 'corral.scale: 1 worker');
    returns_ok('scale web 2', 'corral.scale("web", 2)');
    $t->wait_for(sub { $t->workers('web') == 2 }, 10, 'corral.scale: 2 workers');
    returns_nil('scale nope 1', 'no such pool', 'corral.scale("nope", 1)');
    raises('scale web -1', qr/corral\.scale: expected a number of workers from 0 to 10000/, 'corral.scale("web", -1)');
    raises('scale web many', qr/corral\.scale: expected a number/, 'corral.scale("web", "many")');
    is(scalar $t->workers('web'), 2, 'bad scales: still 2 workers');
});

# --- corral.restart ----------------------------------------------------------------

$t->scenario('corral.restart', sub {
    my @old = $t->workers('web');
    my $proto = $t->prototype_pid('web');
    my $mark = $t->mark;
    returns_ok('restart web', 'corral.restart("web")');
    $t->wait_log(qr/ info restarting the pool pool=web$/, since => $mark);
    $t->wait_for(sub { my @w = $t->workers('web'); @w == 2 && disjoint(\@old, \@w) && all_gone(\@old) && $t->ids_settled('web', 2) }, 15,
                 'corral.restart(pool): all workers replaced');
    my $new_proto = $t->prototype_pid('web');
    ok($new_proto && $proto && $new_proto != $proto, 'corral.restart(pool): a new prototype');

    my %m = $t->worker_map('web');
    my ($id, $other) = sort { $a <=> $b } keys %m;
    returns_ok("restart web $id", "corral.restart(\"web\", $id)");
    $t->wait_for(sub { my %n = $t->worker_map('web'); keys %n == 2 && !grep({ $_ == $m{$id} } values %n) && all_gone([ $m{$id} ]) },
                 15, 'corral.restart(pool, id): that worker replaced');
    my %n = $t->worker_map('web');
    is($n{$other}, $m{$other}, 'corral.restart(pool, id): the other one untouched');
    is($t->prototype_pid('web'), $new_proto, 'corral.restart(pool, id): same prototype');

    @old = $t->workers('web');
    $mark = $t->mark;
    returns_ok('restart web nil true', 'corral.restart("web", nil, true)');
    $t->wait_log(qr/ info restarting the pool, all workers at once pool=web$/, since => $mark);
    $t->wait_for(sub { my @w = $t->workers('web'); @w == 2 && disjoint(\@old, \@w) && all_gone(\@old) && $t->ids_settled('web', 2) }, 15,
                 'corral.restart(pool, nil, true): all workers replaced');

    returns_nil('restart web 99', 'no such worker', 'corral.restart("web", 99)');
    returns_nil('restart nope', 'no such pool', 'corral.restart("nope")');
    raises('restart 5', qr/corral\.restart: expected a pool name/, 'corral.restart(5)');
});

# --- corral.stop_pool, corral.start_pool -----------------------------------------------

$t->scenario('corral.stop_pool, corral.start_pool', sub {
    returns_ok('stop_pool web', 'corral.stop_pool("web")');
    $t->wait_for(sub { !$t->workers('web') && !$t->prototype_pid('web') }, 15, 'corral.stop_pool: no worker, no prototype');
    my $r = lua('status web') || [];
    is($r->[1] && $r->[1][0]{state}, 'stopped', 'corral.stop_pool: status says stopped');
    my $mark = $t->mark;
    $t->stays(sub { !$t->workers('web') && !$t->log_lines(qr/ worker started pool=web /, $mark) }, 0.5,
              'corral.stop_pool: stays stopped');
    returns_ok('start_pool web', 'corral.start_pool("web")');
    $t->wait_for(sub { $t->workers('web') == 2 }, 15, 'corral.start_pool: 2 workers again');
    returns_nil('stop_pool nope', 'no such pool', 'corral.stop_pool("nope")');
    returns_nil('start_pool nope', 'no such pool', 'corral.start_pool("nope")');
    raises('stop_pool', qr/corral\.stop_pool: expected a pool name/, 'corral.stop_pool()');
});

# --- corral.signal -------------------------------------------------------------------

sub lines_of { my $text = CorralTest::slurp($t->path($_[0])) // ''; scalar(() = $text =~ /\n/g) }
$t->scenario('corral.signal', sub {
    $t->wait_for(sub { -e $t->path('sigready.1') && -e $t->path('sigready.2') }, 10, 'sig: traps set');
    my @sig = $t->workers('sig');
    my $r = returns_ok('signal sig nil USR1', 'corral.signal("sig", nil, "USR1")');
    is($r->[1], 2, 'corral.signal(pool): 2 workers signalled');
    $t->wait_for(sub { lines_of('usr1.1') == 1 && lines_of('usr1.2') == 1 }, 10, 'corral.signal(pool): both got USR1');
    $r = returns_ok('signal sig 2 SIGUSR1', 'corral.signal("sig", 2, "SIGUSR1")');
    is($r->[1], 1, 'corral.signal(pool, id): 1 worker signalled');
    $t->wait_for(sub { lines_of('usr1.2') == 2 }, 10, 'corral.signal(pool, id): worker 2 got USR1');
    $t->stays(sub { lines_of('usr1.1') == 1 }, 0.5, 'corral.signal(pool, id): worker 1 did not');
    my $num = POSIX::SIGUSR1();
    $r = returns_ok("signal sig 1 $num", "corral.signal(\"sig\", 1, $num)");
    $t->wait_for(sub { lines_of('usr1.1') == 2 }, 10, 'corral.signal with a number: worker 1 got USR1');
    is_deeply([ $t->workers('sig') ], \@sig, 'corral.signal: the workers live on');
    returns_nil('signal sig 9 USR1', 'no such worker', 'corral.signal("sig", 9, "USR1")');
    returns_nil('signal nope nil USR1', 'no such pool', 'corral.signal("nope", nil, "USR1")');
    raises('signal sig nil NOSUCHSIG', qr/corral\.signal: expected a signal name or number/, 'corral.signal with a bad signal');
});

# --- corral.reload ---------------------------------------------------------------------

# (a pool more at the end)
$t->scenario('corral.reload', { fds => 0 }, sub {
    my %web = $t->worker_map('web');
    $t->write_config($CONFIG . qq{pool "added" { command = "/bin/sleep 1000", env_inherit = inherit }\n});
    my $mark = $t->mark;
    my $r = lua('reload') || [];
    ok($r->[0], 'corral.reload(): no error raised');
    is_deeply($r->[1], JSON::PP::true, 'corral.reload(): returns true');
    ok(defined $r->[2] && !$r->[2], 'corral.reload(): in the handler after it, the new pool is not there yet');
    is($r->[3], 'no such pool', 'corral.reload(): corral.status("added") says no such pool');
    $t->wait_log(qr/ info reload done: 1 added, 0 changed, 0 removed, 2 unchanged$/, since => $mark);
    my @lines = $t->log_lines(qr/ctl: calling corral\.reload\(\)$|ctl: handler returns$| info reload requested$| info reload done: /, $mark);
    my @order = map { /calling/ ? 'call' : /handler returns/ ? 'return' : /requested/ ? 'requested' : 'done' } @lines;
    is("@order", 'call return requested done', 'corral.reload(): the reload comes after the handler returned');
    $t->wait_for(sub { $t->workers('added') == 1 }, 10, 'corral.reload(): the added pool runs');
    is_deeply({ $t->worker_map('web') }, \%web, 'corral.reload(): web kept its workers');
    $t->wait_log(qr/ info ctl: loaded, next command \d+$/, since => $mark, name => 'the plugin was loaded again');
    $r = returns_ok('status added', 'after the reload: corral.status("added")');
    is($r->[1] && $r->[1][0]{name}, 'added', 'after the reload: the plugin sees the added pool');
});

unlike($t->log, qr/ handler failed/, 'no handler failed');
$t->done;
