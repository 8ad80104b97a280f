#!/usr/bin/perl
# The metrics plugin: a real scrape of /metrics passes `promtool check
# metrics` (Debian package prometheus), and its values agree with
# `corralctl status --json`: workers by state, target, restarts, exits by
# reason after a kill and a restart, CPU; the spawn histogram counts the
# workers started; corrald's own RSS and fds; other paths 404; the
# node_exporter textfile is written whole (by a rename) and passes too;
# bad options are refused at load with the plugin named.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(find_program http_get);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use Test::More;
use Time::HiRes qw(time);

my $PROMTOOL = find_program('promtool');

# name{labels} -> value
sub samples {
    my ($text) = @_;
    my %v;
    for (split /\n/, $text) {
        next if /^#/ || !/\S/;
        my ($k, $val) = /^(\S+(?:\{[^}]*\})?) (\S+)$/ or next;
        $v{$k} = $val;
    }
    return \%v;
}

my $t = CorralTest->new;
my $prom = $t->path('corral.prom');
$t->write_config(<<"EOF");
local inherit = { "CORRAL_TEST_DIR" }
pool "web" { command = "/bin/sleep 1000", workers = 3, env_inherit = inherit }
pool "jobs" { command = "/bin/sleep 1000", workers = 1, env_inherit = inherit }
plugin "metrics" { listen = "127.0.0.1:0", textfile = "$prom", textfile_interval = "1s" }
EOF
$t->start;
my ($line) = $t->wait_log(qr/ info plugin "metrics": serving metrics on http:\/\/(\S+)\/metrics$/);
my ($addr) = ($line // '') =~ m{http://(\S+)/metrics};
ok($addr, "metrics served on $addr");
$t->wait_for(sub { $t->workers('web') == 3 && $t->workers('jobs') == 1 }, 10, 'pools up');

# a kill (crashed) and a restart (requested): counted by reason
my ($victim) = $t->workers('web');
kill 'KILL', $victim;
$t->wait_for(sub { my @w = $t->workers('web'); @w == 3 && !grep { $_ == $victim } @w }, 10, 'a killed worker replaced');
is($t->ctl('restart', 'jobs')->{code}, 0, 'jobs restarted');
$t->wait_for(sub { my $s = $t->status; $s && $s->{web}{ready} == 3 && $s->{jobs}{state} eq 'running' }, 10, 'settled');

my ($code, $body, $head) = http_get($addr, '/metrics');
is($code, 200, 'GET /metrics: 200');
like($head, qr/^Content-Type: text\/plain; version=0\.0\.4/mi, 'the exposition format\'s content type');
SKIP: {
    skip 'promtool not installed (Debian package prometheus)', 1 unless $PROMTOOL;
    $t->write_file('scrape.txt', $body);
    my $out = `$PROMTOOL check metrics < '${\ $t->path('scrape.txt')}' 2>&1`;
    is($?, 0, 'promtool check metrics: clean') or diag($out);
}
my $v = samples($body);
my $st = $t->status;
for my $pool (qw(web jobs)) {
    my $p = $st->{$pool};
    is($v->{qq{corral_pool_target_workers{pool="$pool"}}}, $p->{target}, "$pool: target as status says");
    is($v->{qq{corral_pool_restarts_total{pool="$pool"}}}, $p->{restarts}, "$pool: restarts as status says");
    is($v->{qq{corral_pool_state{pool="$pool",state="$p->{state}"}}}, 1, "$pool: state $p->{state}");
    my $ready = grep { $_->{state} eq 'ready' } @{ $p->{workers} };
    is($v->{qq{corral_pool_workers{pool="$pool",state="ready"}}}, $ready, "$pool: $ready ready, as status says");
    cmp_ok($v->{qq{corral_pool_cpu_seconds_total{pool="$pool"}}} // -1, '>=', 0, "$pool: CPU seconds");
}
is($v->{q{corral_worker_exits_total{pool="web",reason="crashed"}}}, 1, 'web: one crashed exit');
# a rolling restart of one worker: the old one, then the surge worker that
# stood in while id 1 was replaced
is($v->{q{corral_worker_exits_total{pool="jobs",reason="requested"}}}, 2, 'jobs: the restart\'s two requested exits');
is($v->{q{corral_worker_exits_total{pool="jobs",reason="crashed"}}}, 0, 'jobs: no crash');
is($v->{q{corral_spawn_ready_seconds_count{pool="web"}}}, 4, 'web: 4 workers from start to ready in the histogram');
is($v->{q{corral_spawn_ready_seconds_bucket{pool="web",le="+Inf"}}}, 4, 'web: +Inf bucket = count');
my $rss = (CorralTest::slurp("/proc/${\ $t->pid}/status") =~ /^VmRSS:\s+(\d+) kB/m)[0] * 1024;
my $mrss = $v->{corral_corrald_resident_memory_bytes} // 0;
ok($mrss > 0 && abs($mrss - $rss) < 0.5 * $rss, "corrald's RSS ($mrss, /proc says $rss)");
cmp_ok($v->{corral_corrald_open_fds} // 0, '>', 3, 'corrald\'s open fds');
ok(defined $v->{corral_event_loop_lag_seconds}, 'the event loop\'s lag');

($code) = http_get($addr, '/other');
is($code, 404, 'another path: 404');

# the textfile: whole, and valid
$t->wait_for(sub { -s $prom && CorralTest::slurp($prom) =~ /corral_event_loop_lag_max_seconds \S+\n\z/ }, 10, 'the textfile is written');
ok(!-e "$prom.tmp", 'by a rename: no temporary file left');
SKIP: {
    skip 'promtool not installed', 1 unless $PROMTOOL;
    my $out = `$PROMTOOL check metrics < '$prom' 2>&1`;
    is($?, 0, 'the textfile passes promtool too') or diag($out);
}

# bad options: refused at load, naming the plugin
for my $c ([ 'listen = 42', qr/plugin "metrics": listen: expected/ ],
           [ 'bogus = 1', qr/plugin "metrics": unknown option "bogus"/ ],
           [ 'listen = false', qr/plugin "metrics": nothing to do/ ]) {
    $t->write_file('bad.lua', qq{plugin "metrics" { $c->[0] }\n});
    my $r = $t->run('-t', '-c', $t->path('bad.lua'));
    is($r->{code}, 1, "$c->[0]: refused");
    like($r->{out} . $r->{err}, $c->[1], "$c->[0]: says why");
}
$t->done;
