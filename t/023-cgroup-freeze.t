#!/usr/bin/perl
# A plugin freezes and thaws a pool: cgroup.freeze in the pool's cgroup,
# confirmed by cgroup.events before "pool frozen" / "pool thawed" and the
# frozen / thawed events; frozen workers make no progress, other pools
# do; a stop while frozen still ends quickly.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive);
use Test::More;
use Time::HiRes qw(time);

my $t = CorralTest->new(config => <<'EOF');
plugin "ctl" { file = "%TMP%/ctl" }
local function counter(n)
  return { command = { "/bin/sh", "%TMP%/count.sh" }, workers = n, stop_timeout = "30s",
           env_inherit = { "CORRAL_TEST_DIR" } }
end
pool "p" (counter(2))
pool "other" (counter(1))
EOF
# The plugin reads "N verb pool" from its file every 50 ms and acts on a
# new N; it logs what it did and the events it gets.
$t->write_file('plugins/ctl.lua', <<'EOF');
local opts = ...
local last
corral.on("config", function()
  corral.every(0.05, function()
    local f = io.open(opts.file)
    if not f then return end
    local line = f:read("*l")
    f:close()
    local n, verb, pool = (line or ""):match("^(%d+) (%a+) (%S+)$")
    if not n or n == last then return end
    last = n
    local ok, err = corral[verb](pool)
    corral.info(("ctl: %s %s %s -> %s %s"):format(n, verb, pool, tostring(ok), tostring(err)))
  end)
end)
for _, e in ipairs { "frozen", "thawed" } do
  corral.on(e, function(ev) corral.info(("ctl: event %s pool=%s"):format(ev.event, tostring(ev.pool))) end)
end
EOF
$t->write_file('count.sh', <<'EOF');
i=0
f=%TMP%/count.$CORRAL_POOL.$CORRAL_WORKER
while :; do
  i=$((i+1))
  echo $i > $f.new
  mv $f.new $f
  sleep 0.02
done
EOF

my @counters = ('p.1', 'p.2', 'other.1');
sub counts { return { map { $_ => CorralTest::slurp($t->path("count.$_")) // '' } @counters } }
# True when every counter in @which moves within a few seconds.
sub moving {
    my (@which) = @_;
    my $before = counts();
    return $t->poll(sub {
        my $now = counts();
        !grep { $now->{$_} eq $before->{$_} } @which;
    }, 5);
}

$t->start;
$t->wait_log(qr/ info pool ready \(2\/2 workers\) pool=p$/);
$t->wait_log(qr/ info pool ready \(1\/1 workers\) pool=other$/);
$t->wait_for(sub { !grep { !-s $t->path("count.$_") } @counters }, 10, 'every worker counts');
ok(moving(@counters), 'counters move');
my %p = $t->started_workers('p');
is($t->cgroup_read('p', 'cgroup.freeze'), '0', 'p: cgroup.freeze 0 at start');

# freeze
my $mark = $t->mark;
$t->write_file('ctl', "1 freeze p\n");
$t->wait_log(qr/ info ctl: 1 freeze p -> true nil$/, since => $mark, name => 'corral.freeze("p") returns true');
$t->wait_log(qr/ info pool frozen pool=p$/, since => $mark);
$t->wait_log(qr/ info ctl: event frozen pool=p$/, since => $mark, name => 'the plugin gets the frozen event');
is($t->cgroup_read('p', 'cgroup.freeze'), '1', 'frozen: cgroup.freeze 1 in the pool\'s cgroup');
is($t->cgroup_key('p', 'cgroup.events', 'frozen'), '1', 'frozen: cgroup.events says frozen 1');
is($t->cgroup_key('other', 'cgroup.events', 'frozen'), '0', 'frozen: the other pool is not');
my $frozen = counts();
$t->stays(sub { my $c = counts(); $c->{'p.1'} eq $frozen->{'p.1'} && $c->{'p.2'} eq $frozen->{'p.2'} }, 1.5,
          'frozen: p\'s workers make no progress');
ok(moving('other.1'), 'frozen: the other pool\'s worker still counts');
ok(!grep({ !pid_alive($_) } values %p), 'frozen: p\'s workers are alive');

# freezing again changes nothing; an unknown pool is an error
$mark = $t->mark;
$t->write_file('ctl', "2 freeze p\n");
$t->wait_log(qr/ info ctl: 2 freeze p -> true nil$/, since => $mark, name => 'freeze of a frozen pool returns true');
$t->write_file('ctl', "3 freeze nope\n");
$t->wait_log(qr/ info ctl: 3 freeze nope -> nil no such pool(?: or worker)?$/, since => $mark,
             name => 'freeze of an unknown pool: nil, "no such pool"');
ok(!$t->log_lines(qr/ pool frozen /, $mark), 'no second "pool frozen"');

# thaw
$mark = $t->mark;
$t->write_file('ctl', "4 thaw p\n");
$t->wait_log(qr/ info ctl: 4 thaw p -> true nil$/, since => $mark, name => 'corral.thaw("p") returns true');
$t->wait_log(qr/ info pool thawed pool=p$/, since => $mark);
$t->wait_log(qr/ info ctl: event thawed pool=p$/, since => $mark, name => 'the plugin gets the thawed event');
is($t->cgroup_read('p', 'cgroup.freeze'), '0', 'thawed: cgroup.freeze 0');
is($t->cgroup_key('p', 'cgroup.events', 'frozen'), '0', 'thawed: cgroup.events says frozen 0');
ok(moving(@counters), 'thawed: p\'s workers count again');
is_deeply({ $t->started_workers('p') }, \%p, 'thawed: the same workers');

# stop while frozen: the workers get their stop signal, no stop_timeout
$mark = $t->mark;
$t->write_file('ctl', "5 freeze p\n");
$t->wait_log(qr/ info ctl: event frozen pool=p$/, since => $mark, name => 'frozen again');
$frozen = counts();
$t->stays(sub { counts()->{'p.1'} eq $frozen->{'p.1'} }, 0.3, 'frozen again: no progress');
my $t0 = time;
is($t->stop(20), 0, 'stop while frozen: exit 0');
cmp_ok(time - $t0, '<', 5, 'stop while frozen: quick (stop_timeout is 30s)');
for my $id (sort keys %p) {
    ok(scalar $t->log_lines(qr/ info worker stopped \(killed by signal 15 \(TERM\)\) pool=p worker=$id pid=$p{$id}$/),
       "stop while frozen: p worker $id stopped by its TERM");
}
ok(!$t->log_lines(qr/sending KILL/), 'stop while frozen: no KILL needed');

$t->done;
