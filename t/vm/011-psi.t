#!/usr/bin/perl
# PSI from plugins: corral.psi_trigger(pool, "cpu", "some 100000 2000000",
# fn) fires when the pool stalls on CPU (4 busy workers held to 50% of one
# CPU by cpu_max), and not for a quiet pool; corral.pressure reads the
# pool's cpu.pressure; corral.stats reads its cgroup.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralVM;
use Test::More;

my $UNIT = $CorralVM::UNIT;
my $DIR = test_dir('psi');

my $config = corral_lua(
    [ pool => 'hot', command => [ '/bin/sh', '-c', 'while :; do :; done' ], workers => 4, limits => { cpu_max => '50%' } ],
    [ pool => 'cool', command => '/bin/sleep 7001', workers => 2 ],
    [ plugin => 'psiwatch', dir => $DIR, pools => [ 'hot', 'cool' ] ],
);
my $plugin = <<'EOF';
local options = ...
local function append(name, line)
  local f = assert(io.open(options.dir .. "/" .. name, "a"))
  f:write(line, "\n")
  f:close()
end
corral.on("config", function()
  for _, pool in ipairs(options.pools) do
    local id, err = corral.psi_trigger(pool, "cpu", "some 100000 2000000", function()
      local p = corral.pressure(pool, "cpu")
      append(pool .. ".fired", ("fired some.avg10=%s some.total=%s"):format(
        tostring(p and p.some and p.some.avg10), tostring(p and p.some and p.some.total)))
    end)
    append(pool .. ".registered", id and ("id " .. id) or ("error " .. tostring(err)))
  end
  corral.every(1, function()
    local st = corral.stats("hot")
    if st then
      append("hot.stats", ("cpu_usage_usec=%s memory_current=%s pids_current=%s"):format(
        tostring(st.cpu_usage_usec), tostring(st.memory_current), tostring(st.pids_current)))
    end
  end)
end)
EOF

my $cursor = journal_cursor();
my ($rc, $out) = corral_start($config, psiwatch => $plugin);
is($rc, 0, 'systemctl start corral') or diag($out);
ok(wait_until(sub { pool_workers('hot') == 4 && pool_workers('cool') == 2 }, 60), 'hot: 4 busy workers, cool: 2 sleeping');
like(slurp("$DIR/$_.registered") // '', qr/^id \d+$/, "the trigger on $_ is registered") for qw(hot cool);

my $fired;
ok(wait_until(sub { $fired = slurp("$DIR/hot.fired") }, 30), 'the trigger on hot fired')
    or diag('hot cpu.pressure: ' . (cg_read("$CorralVM::UNIT_CG/hot", 'cpu.pressure') // '?'));
note("hot.fired:\n" . ($fired // ''));
like($fired // '', qr/^fired some\.avg10=[\d.]+ some\.total=\d+$/m, 'the handler read corral.pressure("hot", "cpu")');
my ($total) = ($fired // '') =~ /some\.total=(\d+)/;
cmp_ok($total // 0, '>=', 100000, 'some.total >= 100 ms of stall when it fired');
# the trigger fires again in every window while the pressure lasts; the
# quiet pool's does not once its start is over (spawning its workers may
# stall it briefly on this small VM): a trigger window (2 s) and more
# after its workers started
sub fired { my $n = () = (slurp("$DIR/$_[0].fired") // '') =~ /^fired/mg; return $n }
wait_for(sub { my @w = pool_workers('cool'); @w == 2 && !grep { (proc_age($_) // 0) < 3 } @w }, 20,
         'the quiet pool\'s workers have run for 3 s');
unlink "$DIR/cool.fired";
my $n0 = fired('hot');
wait_for(sub { fired('hot') > $n0 }, 10, "the trigger on hot fires again ($n0 times before)");
stays(sub { !-e "$DIR/cool.fired" }, 4.5, 'the trigger on the quiet pool cool does not fire (4.5 s)')
    or diag(slurp("$DIR/cool.fired"));
my $stats;
ok(wait_until(sub { $stats = slurp("$DIR/hot.stats") }, 10), 'a plugin timer (corral.every) wrote corral.stats("hot")');
$stats //= '';
like($stats, qr/^cpu_usage_usec=\d+ memory_current=\d+ pids_current=(\d+)$/m, 'corral.stats("hot") has CPU, memory and pids figures');
my ($pids) = $stats =~ /pids_current=(\d+)$/m;
cmp_ok($pids // 0, '>=', 5, 'pids_current counts the prototype and 4 workers');
is(scalar(journal_find($UNIT, $cursor, PRIORITY => qr/^[0-3]$/)), 0, 'journal: no error');

($rc, $out) = systemctl('stop', $UNIT);
is($rc, 0, 'systemctl stop') or diag($out);

done();
