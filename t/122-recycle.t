#!/usr/bin/perl
# The recycle plugin (plugins/recycle.lua, doc/policies.md "recycle") on
# real workers:
#   - after N requests: Lua workers report the requests the test gives
#     them (corral.request_done, from a file per worker); a worker at
#     max_requests is replaced, the others are not; three at once are
#     replaced one at a time, each decision after the previous
#     replacement is done;
#   - at a lifetime with jitter: each worker at its own threshold
#     (max_lifetime + its share of lifetime_jitter), never before it,
#     one at a time;
#   - all along, the ready workers never fewer than the target (the
#     status polled the whole time), the old worker's worker_exited and
#     the status's recent exits say "recycled";
#   - option errors: corrald -t names FILE:LINE of the key.
# The memory threshold needs the memory controller: t/vm/018.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;
use Time::HiRes qw(time);

my $CONFIG = <<'EOF';
local events = {}
corral.on("worker_exited", function(ev)
  events[#events + 1] = ("exited %s %d %d %s %.3f"):format(ev.pool, ev.worker, ev.pid, ev.reason, corral.now())
end)
corral.command("events", { read_only = true }, function() return { list = table.concat(events, ",") } end)

-- A worker that is ready 0.3 s after it starts (a restart that is not
-- rolling would leave a gap) and reports as requests what the test writes
-- in TMP/serve.POOL.ID (a running total) from its start on.
local function body(w)
  local file = ("%s/serve.%s.%d"):format(os.getenv("CORRAL_TEST_DIR"), w.pool.name, w.id)
  local function served()
    local f = io.open(file)
    local n = f and tonumber(f:read("*a")) or 0
    if f then f:close() end
    return n
  end
  local base = served()
  corral.sleep(0.3)
  corral.ready()
  while not corral.sleep(0.05) do
    local n = served()
    if n > base then corral.request_done(n - base); base = n end
  end
end

pool "req" { workers = 3, ready = "lua", start = body, env_inherit = { "CORRAL_TEST_DIR" } }
pool "life" { workers = 0, ready = "lua", start = body, env_inherit = { "CORRAL_TEST_DIR" } }

plugin "recycle" {
  req = { max_requests = 5, interval = 0.2 },
  life = { max_lifetime = 4, lifetime_jitter = 4, interval = 0.2 },
}
EOF

my $t = CorralTest->new(config => $CONFIG);
$t->start;

sub events { split /,/, ($t->request({ command => 'plugin', plugin => 'config', name => 'events' })->{result}{list} // '') }
sub recycled_exits {    # pool => [ [id, pid, time], ... ]
    my ($pool) = @_;
    map { /^exited \Q$pool\E (\d+) (\d+) recycled (\S+)$/ ? [ $1, $2, $3 ] : () } events();
}
sub show {
    my ($pool) = @_;
    my $r = $t->request({ command => 'plugin', plugin => 'recycle', name => 'show', args => { pool => $pool } });
    return $r && $r->{ok} ? $r->{result}{$pool} : undef;
}
sub serve {    # one more request for each worker id given, in pool
    my ($pool, $n, @ids) = @_;
    for my $id (@ids) {
        my $name = "serve.$pool.$id";
        my $old = CorralTest::slurp($t->path($name)) // 0;
        $t->write_file($name, $old + $n);
    }
}

# Polls the pool's status until $done->($pool_status) or $timeout; all the
# while records the fewest ready workers, the most workers at once, the
# most being replaced at once. Returns (done, min ready, max workers, max replacing).
sub watch {
    my ($pool, $timeout, $done) = @_;
    my ($min, $max, $maxrep) = (1e9, 0, 0);
    my $ok = $t->poll(sub {
        my $s = $t->status($pool) or return 0;
        my $p = $s->{$pool};
        $min = $p->{ready} if $p->{ready} < $min;
        my @w = @{ $p->{workers} };
        $max = @w if @w > $max;
        my $rep = grep { defined $_->{replacing} } @w;
        $maxrep = $rep if $rep > $maxrep;
        return $done->($p);
    }, $timeout);
    return ($ok, $min, $max, $maxrep);
}

sub at_rest {
    my ($p, $n) = @_;
    return $p->{ready} == $n && @{ $p->{workers} } == $n && !grep { defined $_->{replacing} } @{ $p->{workers} };
}

# The plugin's decisions and ends, in the order of the log: "D3" (worker 3
# recycled), "E3" (its replacement done).
sub decisions {
    my ($pool, $since) = @_;
    map { /recycle: worker (\d+) replaced in / ? "E$1" : /recycle: worker (\d+) (?:served|lived|uses) / ? "D$1" : () }
        $t->log_lines(qr/ recycle: worker \d+ .* pool=\Q$pool\E$/, $since);
}

$t->wait_for(sub { my $s = $t->status('req'); $s && at_rest($s->{req}, 3) }, 20, 'req: 3 workers ready');

# ---- after N requests: one worker -----------------------------------------------------

$t->scenario('one worker at max_requests', sub {
    my %before = $t->worker_map('req');
    my $mark = $t->mark;
    serve('req', 4, 2);
    $t->wait_for(sub { my $s = $t->status('req'); my ($w) = grep { $_->{id} == 2 } @{ $s->{req}{workers} };
                       $w && $w->{requests} == 4 }, 10, 'worker 2 reported 4 requests');
    ok(!$t->log_lines(qr/recycle: worker/, $mark), 'at 4 of 5: not recycled');
    serve('req', 1, 2);
    my ($ok, $min, $max, $maxrep) = watch('req', 30, sub {
        my ($p) = @_;
        return (grep { $_->[1] == $before{2} } recycled_exits('req')) && at_rest($p, 3);
    });
    ok($ok, 'worker 2 recycled at 5 requests, the pool back at 3 ready');
    cmp_ok($min, '>=', 3, "ready never below the target of 3 (min $min)");
    cmp_ok($max, '<=', 4, "one surge worker at most ($max workers)");
    like(join("\n", $t->log_lines(qr/recycle:/, $mark)), qr/recycle: worker 2 served 5 requests \(limit 5\+0\) pool=req/,
         'the log says why');
    my %after = $t->worker_map('req');
    isnt($after{2}, $before{2}, 'worker 2 is new');
    is($after{1}, $before{1}, 'worker 1 untouched');
    is($after{3}, $before{3}, 'worker 3 untouched');
    my $st = $t->status('req')->{req};
    my ($last) = grep { $_->{id} == 2 } reverse @{ $st->{recent_exits} };
    is($last && $last->{reason}, 'recycled', 'status: the recent exit of worker 2 is recycled');
    my ($w2) = grep { $_->{id} == 2 } @{ $st->{workers} };
    is($w2->{last_exit}{reason}, 'recycled', 'status: worker 2 last_exit recycled');
    $t->wait_for(sub { ($t->status('req')->{req}{notes}{recycle} // '') =~ /^1 recycled, last: worker 2 \(requests\)/ },
                 10, 'the pool note counts it');
    my $sh = show('req');
    is($sh && $sh->{requests}, 1, 'plugin recycle show: 1 recycled on requests');
});

# ---- after N requests: three at once, one at a time ---------------------------------------

$t->scenario('three workers at max_requests: one at a time', sub {
    my %before = $t->worker_map('req');
    my $mark = $t->mark;
    serve('req', 6, 1, 2, 3);
    my ($ok, $min, $max, $maxrep) = watch('req', 45, sub {
        my ($p) = @_;
        my %gone = map { $_->[1] => 1 } recycled_exits('req');
        return 3 == grep({ $gone{ $before{$_} } } 1 .. 3) && at_rest($p, 3);
    });
    ok($ok, 'all three recycled, the pool back at 3 ready');
    cmp_ok($min, '>=', 3, "ready never below the target of 3 (min $min)");
    cmp_ok($max, '<=', 4, "never more than one surge worker ($max workers at most)");
    cmp_ok($maxrep, '<=', 1, "never two workers being replaced at once ($maxrep)");
    $t->wait_log(qr/recycle: worker \d replaced in .* pool=req$/, since => $mark, count => 3, name => 'three ends logged');
    my @d = decisions('req', $mark);
    like(join(' ', @d), qr/^D(\d) E\1 D(\d) E\2 D(\d) E\3$/, "each decision after the previous replacement (@d)");
    my %after = $t->worker_map('req');
    ok(!grep({ $after{$_} == $before{$_} } 1 .. 3), 'three new workers');
    is(show('req')->{recycled}, 4, 'plugin recycle show: 4 in all');
});

# ---- at a lifetime, with jitter ----------------------------------------------------------

$t->scenario('lifetime with jitter: each at its own threshold, one at a time', sub {
    my $mark = $t->mark;
    is($t->ctl('scale', 'life', 4)->{code}, 0, 'scale life to 4');
    $t->wait_for(sub { my $s = $t->status('life'); $s && $s->{life}{ready} == 4 }, 20, 'life: 4 ready');
    my %first = $t->worker_map('life');
    my $sh = show('life');
    my %limit = map { $_->{pid} => $_->{max_lifetime} } @{ $sh->{workers} };
    my @lims = map { $limit{ $first{$_} } // -1 } 1 .. 4;
    ok(!grep({ $_ < 4 || $_ > 8 } @lims), "thresholds within 4..8 s: @lims");
    my %distinct = map { sprintf('%.1f', $_) => 1 } @lims;
    cmp_ok(scalar(keys %distinct), '>=', 2, 'the jitter spread them: not all the same');
    my ($ok, $min) = watch('life', 45, sub {
        my %gone = map { $_->[1] => 1 } recycled_exits('life');
        return 4 == grep { $gone{ $first{$_} } } 1 .. 4;
    });
    ok($ok, 'the first four workers recycled');
    cmp_ok($min, '>=', 4, "ready never below the target of 4 (min $min)");
    # each decision: uptime >= its own threshold, the one the plugin shows
    my @lines = $t->log_lines(qr/recycle: worker \d+ lived /, $mark);
    my %ok_at;
    for my $l (@lines) {
        $l =~ /worker (\d+) lived ([\d.]+)s \(limit 4s\+([\d.]+)s\)/ or next;
        my ($uptime, $lim) = ($2, 4 + $3);
        $ok_at{$1} //= [ $uptime, $lim ];
    }
    for my $id (1 .. 4) {
        my $x = $ok_at{$id};
        ok($x && $x->[0] >= $x->[1] - 0.05 && abs($x->[1] - $limit{ $first{$id} }) < 0.06,
           "worker $id: recycled at " . ($x ? "$x->[0] s, its limit $x->[1] s" : '?') . " (shown: $limit{ $first{$id} })");
    }
    my @times = map { $_->[2] } grep { my $e = $_; grep { $first{$_} == $e->[1] } 1 .. 4 } recycled_exits('life');
    my $strict = 1;
    $strict &&= $times[$_] > $times[ $_ - 1 ] for 1 .. $#times;
    ok($strict && @times == 4, "the recycled exits one after another: @times");
    my @d = decisions('life', $mark);
    my $alt = join(' ', @d);
    ok($alt =~ /^(?:D(\d) E\1 ?)+(?:D\d)?$/, "decisions and ends alternate: $alt");
    is($t->ctl('scale', 'life', 0)->{code}, 0, 'scale life to 0');
    $t->wait_for(sub { my $s = $t->status('life'); $s && !@{ $s->{life}{workers} } }, 20, 'life: none left');
});

# ---- option errors at the key's line ---------------------------------------------------------

{
    my $bad = CorralTest->new(config => <<'EOF');
pool "web" { command = "/bin/sleep 1000" }
plugin "recycle" {
  web = {
    max_requests = 10,
    max_lifetime = "soon",
    interval = 0.01,
  },
  api = {
    max_requests_jitter = 3,
    max_memory = "1G",
    max_request = 5,
  },
}
EOF
    my $r = $bad->run_check;
    is($r->{code}, 1, 'bad options: corrald -t exits 1');
    like($r->{err}, qr/:5: plugin "recycle": web\.max_lifetime: invalid duration "soon"/, 'max_lifetime at its line');
    like($r->{err}, qr/:6: plugin "recycle": web\.interval: must be at least 0\.1s/, 'interval at its line');
    like($r->{err}, qr/:11: plugin "recycle": api: unknown key "max_request" \(did you mean "max_requests"\?\)/,
         'an unknown key at its line, with a suggestion');
    my $good = CorralTest->new(config => <<'EOF');
pool "web" { command = "/bin/sleep 1000" }
plugin "recycle" {
  web = { max_requests = 1000, max_requests_jitter = 50, max_lifetime = "1h", lifetime_jitter = "5m",
          max_memory = "512M", interval = "2s", seed = 1 },
}
EOF
    $r = $good->run_check;
    is($r->{code}, 0, 'every option: corrald -t is fine') or diag($r->{err});
    $bad = CorralTest->new(config => <<'EOF');
pool "web" { command = "/bin/sleep 1000" }
plugin "recycle" {
  web = {
    max_memory = "1G",
    max_requests_jitter = 3,
  },
}
EOF
    $r = $bad->run_check;
    like($r->{err}, qr/:5: plugin "recycle": web\.max_requests_jitter: needs max_requests/,
         'a jitter without its maximum: at the jitter\'s line');
}

$t->done;
