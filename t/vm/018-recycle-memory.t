#!/usr/bin/perl
# The recycle plugin's memory threshold (plugins/recycle.lua, max_memory),
# which needs the memory controller (the host tests have none: t/122 has
# the rest). Worker 2 of a pool of 3 grows past max_memory = "40M" (64 MiB
# of Lua strings); the plugin sees it in the worker's memory.current and
# replaces it, rolling: a surge worker is ready before it stops, so the
# ready workers never drop below 3; its exit's reason is recycled; workers
# 1 and 3, small, are untouched, and so is the new worker 2.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use JSON::PP ();
use Test::More;

my $UNIT = $CorralVM::UNIT;
my $DIR = test_dir('recycle');

# A worker ready 0.3 s after it starts; the first to find DIR/grow.ID
# (removed, so that its replacement does not grow too) holds 64 MiB.
my $pool = <<"EOF";
pool "grow" {
  workers = 3, ready = "lua", stop_timeout = "5s",
  start = function(w)
    local held = {}
    corral.sleep(0.3)
    corral.ready()
    while not corral.sleep(0.1) do
      if os.remove("$DIR/grow." .. w.id) then
        for i = 1, 64 do held[i] = ("x"):rep(2^20 - 8) .. ("%8d"):format(i) end
        local f = io.open("$DIR/grown." .. w.id, "w"); f:write(tostring(#held)); f:close()
      end
    end
  end,
}
EOF
my $config = corral_lua($pool, [ plugin => 'recycle', grow => { max_memory => '40M', interval => 0.2 } ]);

sub status {
    my ($rc, $out) = corralctl('--json', 'status', 'grow');
    return undef if $rc;
    my $st = eval { JSON::PP::decode_json($out) } or return undef;
    return $st->{pools}[0];
}
sub at_rest {
    my ($p) = @_;
    return $p && $p->{ready} == 3 && @{ $p->{workers} } == 3 && !grep { defined $_->{replacing} } @{ $p->{workers} };
}
sub pids { my ($p) = @_; return map { $_->{id} => $_->{pid} } @{ $p->{workers} } }

my $cursor = journal_cursor();
my ($rc, $out) = corral_start($config);
is($rc, 0, 'systemctl start corral') or diag($out);
my $p;
ok(wait_until(sub { at_rest($p = status()) }, 60), 'grow: 3 workers ready');
my %before = pids($p);
my @small = map { $_->{memory_current} // 0 } @{ $p->{workers} };
ok(!grep({ !$_ || $_ > 40 * 2**20 } @small), 'each worker has a memory figure, under 40 MiB: '
   . join(' ', map { sprintf '%.1fM', $_ / 2**20 } @small));

spew("$DIR/grow.2", '');
ok(wait_until(sub { -e "$DIR/grown.2" }, 20), 'worker 2 grew');

my ($min, $maxw, $seen) = (3, 0, 0);
my $done = wait_until(sub {
    my $s = status() or return 0;
    $min = $s->{ready} if $s->{ready} < $min;
    $maxw = @{ $s->{workers} } if @{ $s->{workers} } > $maxw;
    $seen ||= grep { ($_->{replacing} // '') eq 'recycled' } @{ $s->{workers} };
    my ($exit) = grep { $_->{id} == 2 } @{ $s->{recent_exits} };
    $p = $s;
    return $exit && $exit->{reason} eq 'recycled' && at_rest($s);
}, 60);
ok($done, 'worker 2 recycled, the pool back at 3 ready') or diag(JSON::PP->new->canonical->encode($p // {}));
cmp_ok($min, '>=', 3, "ready never below the target of 3 (min $min)");
cmp_ok($maxw, '<=', 4, "one surge worker at most ($maxw workers)");
# (the status may show it with replacing = "recycled" for less than a poll)
ok($seen || journal_find($UNIT, $cursor, SYSLOG_IDENTIFIER => 'corrald',
                         MESSAGE => qr/replacing the worker \(recycled\): its replacement first/),
   'corrald replaced worker 2 rolling, for recycled');
my %after = pids($p);
isnt($after{2}, $before{2}, 'worker 2 is new');
is($after{1}, $before{1}, 'worker 1 untouched');
is($after{3}, $before{3}, 'worker 3 untouched');

my @why = journal_find($UNIT, $cursor, SYSLOG_IDENTIFIER => 'corrald',
    MESSAGE => qr/recycle: worker 2 uses [\d.]+ MiB \(limit 40\.0 MiB\) pool=grow/);
ok(@why, 'journal: the decision and its reason') or diag(join "\n", map { $_->{MESSAGE} } journal_find($UNIT, $cursor, MESSAGE => qr/recycle/));
my @more;
stays(sub { @more = journal_find($UNIT, $cursor, MESSAGE => qr/recycle: worker \d+ uses /); @more == 1 }, 2,
      'nothing else recycled on memory in the next 10 checks (the new worker 2 is small)');
like(status()->{notes}{recycle} // '', qr/^1 recycled, last: worker 2 \(memory\)/, 'the pool note');

($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'systemctl stop') or diag($out);

done();
