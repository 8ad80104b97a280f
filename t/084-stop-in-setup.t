#!/usr/bin/perl
# A stop that comes while setup sleeps (corral.sleep takes the signal and
# returns) is not lost: once setup returns the worker exits at once,
# without running start, worker:exec()'s program or the pool's command,
# well before stop_timeout (30 s here) would KILL it. Stops by corralctl
# stop, by corralctl scale and by corrald's own stop.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive);
use Test::More;
use Time::HiRes qw(time);

# setup notes it is sleeping (insetup.POOL.PID), sleeps, and returns
# without looking at what the sleep said
my $setup = <<'EOF';
function(worker)
    local f = assert(io.open("%TMP%/insetup." .. worker.pool.name .. "." .. worker.pid, "w"))
    f:close()
    corral.sleep(20)
  end
EOF
chomp $setup;
my $t = CorralTest->new(config => <<"EOF");
pool "cmd" { command = { "/bin/sh", "-c", "touch %TMP%/ran.cmd; exec /bin/sleep 1000" },
             stop_timeout = "30s", setup = $setup }
pool "start" { command = "/bin/sleep 1000", stop_timeout = "30s", setup = $setup,
               start = function(w) io.open("%TMP%/ran.start", "w"):close(); while not w:sleep(3600) do end end }
pool "exec" { command = "/bin/sleep 1000", stop_timeout = "30s",
              setup = function(w) ($setup)(w); w:exec({ "/bin/sh", "-c", "touch %TMP%/ran.exec; exec /bin/sleep 1000" }) end }
pool "exec_ok" { command = "/bin/sleep 1000",
                 setup = function(w) w:exec({ "/bin/sh", "-c", "touch %TMP%/ran.exec_ok; exec /bin/sleep 1000" }) end }
pool "scale" { command = { "/bin/sh", "-c", "touch %TMP%/ran.scale; exec /bin/sleep 1000" },
                 stop_timeout = "30s", setup = $setup }
pool "term" { command = { "/bin/sh", "-c", "touch %TMP%/ran.term; exec /bin/sleep 1000" },
              stop_timeout = "30s", setup = $setup }
EOF

# The pid of $pool's worker once it sleeps in setup.
sub sleeping {
    my ($pool) = @_;
    my $pid;
    $t->wait_for(sub { ($pid) = $t->workers($pool); $pid && -e $t->path("insetup.$pool.$pid") },
                 10, "$pool: worker sleeps in setup");
    return $pid;
}

# $pid is gone within 5 s of $since.
sub gone_soon {
    my ($pid, $since, $name) = @_;
    $t->wait_for(sub { !pid_alive($pid) }, 5, "$name: worker $pid exits within 5s");
    note(sprintf '%s: gone after %.2fs', $name, time - $since);
}

$t->start;

for my $pool (qw(cmd start)) {
    my $pid = sleeping($pool);
    my $t0 = time;
    $t->ctl('stop', $pool);
    gone_soon($pid, $t0, "corralctl stop $pool");
    ok(!-e $t->path("ran.$pool"), "$pool: " . ($pool eq 'start' ? 'start never ran' : 'the command never ran'));
    ok(!$t->log_lines(qr/sending KILL pool=$pool /), "$pool: no KILL");
}

# worker:exec() after the sleep: its program is not run either; without a
# stop it is
{
    my $pid = sleeping('exec');
    my $t0 = time;
    $t->ctl('stop', 'exec');
    gone_soon($pid, $t0, 'corralctl stop exec');
    ok(!-e $t->path('ran.exec'), 'exec: worker:exec()\'s program never ran');
    $t->wait_for(sub { -e $t->path('ran.exec_ok') }, 10, 'exec_ok: with no stop, worker:exec()\'s program runs');
}

# scaled down: the worker asleep in setup goes at once (a restart would
# wait for its replacement to be ready first, which sleeps in setup too)
{
    my $pid = sleeping('scale');
    my $t0 = time;
    $t->ctl('scale', 'scale', '0');
    gone_soon($pid, $t0, 'corralctl scale scale 0');
    ok(!-e $t->path('ran.scale'), 'scale: the worker did not run the command');
}

# corrald's own stop: the whole of it well under stop_timeout
{
    my $pid = sleeping('term');
    my $t0 = time;
    $t->signal('TERM');
    is($t->wait_exit(10), 0, 'corrald stops');
    ok(time - $t0 < 5, sprintf('... within 5s (%.2fs)', time - $t0));
    ok(!pid_alive($pid), 'term: worker gone');
    ok(!-e $t->path('ran.term'), 'term: the command never ran');
}
CorralTest::done();
