#!/usr/bin/perl
# corralctl --json and the raw protocol: `status --json` is valid JSON for
# real parsers (python3 -m json.tool, jq), every member documented in
# doc/control.md is there with its type and the value the real processes
# have; --json of the other commands; a Perl IO::Socket::UNIX client
# speaking the protocol itself.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(pid_alive);
use JSON::PP ();
use Test::More;

my $PERL = -x '/usr/bin/perl' ? '/usr/bin/perl' : $^X;
my $JSON = JSON::PP->new->utf8->canonical;

my $t = CorralTest->new(config => <<"EOF");
local inherit = { "CORRAL_TEST_DIR" }
pool "web" {
  command = "/bin/sleep 1000", workers = 2, env_inherit = inherit,
  backoff = { initial = "10ms", max = "10ms" },
}
-- STATUS= with a quote, a tab, a backslash and an e acute in UTF-8
pool "notify" {
  command = { "$PERL", "%TMP%/notify.pl", "serving 42 \\"requests\\"\\t\\\\ caf\\195\\169" },
  env_inherit = inherit,
}
pool "idle" { command = "/bin/sleep 1000", workers = 0, env_inherit = inherit }
-- STATUS= that is not UTF-8; started later
pool "binary" {
  command = { "$PERL", "%TMP%/notify.pl", "\\255\\254 not utf-8" },
  workers = 0, env_inherit = inherit,
}
EOF
# Sends STATUS=ARGV[0] to NOTIFY_SOCKET, says so in a file, then sleeps.
$t->write_file('notify.pl', <<'EOF');
use strict;
use Socket;
my $path = $ENV{NOTIFY_SOCKET} or die "no NOTIFY_SOCKET\n";
$path =~ s/^@/\0/;
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!\n";
send($s, "STATUS=$ARGV[0]", 0, pack_sockaddr_un($path)) or die "send: $!\n";
open my $fh, '>', "$ENV{CORRAL_TEST_DIR}/sent.$ENV{CORRAL_POOL}.$$" or die;
close $fh;
sleep 1000;
EOF
$t->start;
$t->wait_control;
$t->wait_for(sub { $t->workers('web') == 2 && $t->workers('notify') == 1 }, 10, 'pools up');
my $NOTIFY_STATUS = "serving 42 \"requests\"\t\\ caf\x{e9}";
$t->wait_for(sub {
    my $s = $t->status('notify');
    $s && ($s->{notify}{workers}[0]{status} // '') eq $NOTIFY_STATUS;
}, 10, 'the notify worker has sent its STATUS=');
$t->checkpoint('start-up');

sub which {
    my ($prog) = @_;
    for my $dir (split /:/, $ENV{PATH} // '') {
        return "$dir/$prog" if length $dir && -x "$dir/$prog" && !-d _;
    }
    return undef;
}
my $jq = which('jq');
my $python = which('python3');

# Runs `PROG ARGS` with $input on stdin: { code, out, err }.
sub filter {
    my ($input, @cmd) = @_;
    my $in = $t->path('filter.in');
    open my $fh, '>:raw', $in or die;
    print $fh $input;
    close $fh;
    my $out = $t->path('filter.out');
    my $err = $t->path('filter.err');
    system("@cmd < '$in' > '$out' 2> '$err'");
    return { code => $? >> 8, out => CorralTest::slurp($out), err => CorralTest::slurp($err) };
}

# Checks that $text is one line of valid JSON, by python3 and jq.
sub valid_json {
    my ($text, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    like($text, qr/\A[^\n]+\n\z/, "$name: one line");
    ok(utf8::decode(my $copy = $text), "$name: valid UTF-8");
    SKIP: {
        skip 'python3 not installed', 1 unless $python;
        # the file as an argument: read as strict UTF-8 (stdin may not be)
        my $r = filter($text, $python, '-m', 'json.tool', $t->path('filter.in'));
        is($r->{code}, 0, "$name: python3 -m json.tool parses it") or diag($r->{err});
    }
    SKIP: {
        skip 'jq not installed', 1 unless $jq;
        my $r = filter($text, $jq, '-e', '.');
        is($r->{code}, 0, "$name: jq parses it") or diag($r->{err});
    }
}

# --- status --json: valid, complete, typed ----------------------------------

my $r = $t->ctl('status', '--json');
is($r->{code}, 0, 'status --json: exit 0');
is($r->{err}, '', 'status --json: nothing on stderr');
valid_json($r->{out}, 'status --json');
my $st = eval { $JSON->decode($r->{out}) };
ok($st, 'status --json: Perl JSON::PP decodes it') or diag($@);
$st ||= {};

my @POOL_KEYS = qw(name state since ready total target restarts generation start_failures restart_in failure
                   last_failure memory_current cpu_usage_usec busy idle requests last_request_ago populated prototype
                   recent_exits workers vacant notes);
my @WORKER_KEYS = qw(id pid state generation uptime restarts last_exit status memory_current cpu_usage_usec
                     load load_for requests last_request_ago replacing notes);
my @EXIT_KEYS = qw(code signal name core unknown oom reason step error at);
my @VACANT_KEYS = qw(id state restarts restart_in last_exit);

# jq: a list of what is wrong with the types, empty when all is right.
my $JQ_TYPES = <<'EOF';
def int: type == "number" and . == floor and . >= 0;
def check(cond; msg): if cond then empty else msg end;
def stamp: type == "object" and (keys == ["iso","mono"]) and (.iso | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$"))
           and (.mono | type) == "number";
def exit_obj: type == "object" and (.at | stamp) and ((.reason | type) == "string") and ((.oom | type) == "boolean")
              and ((.code | int) or ((.signal | int) and (.core | type) == "boolean") or ((.unknown | type) == "string"));
[ check(.ok == true; "ok"), check(.code == "ok"; "code"), check((.pools | type) == "array"; "pools"),
  (.pools[] as $p | ($p.name | tostring) as $n |
    check(($p.name | type) == "string"; "\($n): name"),
    check([$p.state] | inside(["starting","running","reloading","frozen","failed","stopped","stopping"]); "\($n): state"),
    (("ready","total","target","restarts","generation","start_failures") as $k | check($p[$k] | int; "\($n): \($k)")),
    check(($p.restart_in | type) == "number" and $p.restart_in >= 0 or $p.restart_in == null; "\($n): restart_in"),
    (("failure","last_failure") as $k | check(($p[$k] | type) == "string" or $p[$k] == null; "\($n): \($k)")),
    (("memory_current","cpu_usage_usec") as $k | check(($p[$k] | int) or $p[$k] == null; "\($n): \($k)")),
    (("busy","idle","requests") as $k | check($p[$k] | int; "\($n): \($k)")),
    check(($p.last_request_ago | type) == "number" and $p.last_request_ago >= 0 or $p.last_request_ago == null; "\($n): last_request_ago"),
    check(($p.populated | type) == "boolean" or $p.populated == null; "\($n): populated"),
    check($p.since | stamp; "\($n): since"),
    check(($p.notes | type) == "object" and all($p.notes[]; type == "string"); "\($n): notes"),
    check(($p.recent_exits | type) == "array" and all($p.recent_exits[]; exit_obj and (.id | int)); "\($n): recent_exits"),
    check(($p.vacant | type) == "array" and all($p.vacant[]; (.id | int) and (.restarts | int)
          and ([.state] | inside(["backoff","waiting","failed","retired"])) and (keys == ($vacant_keys | sort))
          and (.last_exit == null or (.last_exit | exit_obj))); "\($n): vacant"),
    check($p.prototype == null or (($p.prototype | keys) == ["pid","state"] and ($p.prototype.pid | int) and
          ([$p.prototype.state] | inside(["starting","running","stopping","stopped","exited","not answering"])));
          "\($n): prototype"),
    check(($p | keys) == ($pool_keys | sort); "\($n): members \($p | keys)"),
    check(($p.workers | type) == "array"; "\($n): workers"),
    ($p.workers[] as $w | "\($n)/\($w.id)" as $i |
      (("id","pid","generation","restarts") as $k | check($w[$k] | int; "\($i): \($k)")),
      check([$w.state] | inside(["spawning","starting","ready","stopping","exited"]); "\($i): state"),
      check(($w.uptime | type) == "number" and $w.uptime >= 0; "\($i): uptime"),
      check(($w.status | type) == "string" or $w.status == null; "\($i): status"),
      check($w.last_exit == null or ($w.last_exit | exit_obj); "\($i): last_exit"),
      (("memory_current","cpu_usage_usec") as $k | check(($w[$k] | int) or $w[$k] == null; "\($i): \($k)")),
      check([$w.load] | inside(["busy","idle"]) or $w.load == null; "\($i): load"),
      check($w.requests | int; "\($i): requests"),
      check(($w.notes | type) == "object" and all($w.notes[]; type == "string"); "\($i): notes"),
      check([$w.replacing] | inside(["requested","recycled","unhealthy"]) or $w.replacing == null; "\($i): replacing"),
      (("load_for","last_request_ago") as $k | check(($w[$k] | type) == "number" and $w[$k] >= 0 or $w[$k] == null; "\($i): \($k)")),
      check(($w | keys) == ($worker_keys | sort); "\($i): members \($w | keys)"))) ]
EOF
SKIP: {
    skip 'jq not installed', 2 unless $jq;
    $t->write_file('types.jq', $JQ_TYPES);
    my $r2 = filter($r->{out}, $jq, '-c',
                    '--argjson', 'pool_keys', "'" . $JSON->encode(\@POOL_KEYS) . "'",
                    '--argjson', 'worker_keys', "'" . $JSON->encode(\@WORKER_KEYS) . "'",
                    '--argjson', 'vacant_keys', "'" . $JSON->encode(\@VACANT_KEYS) . "'",
                    '-f', $t->path('types.jq'));
    is($r2->{code}, 0, 'jq runs the type checks') or diag($r2->{err});
    is($r2->{out}, "[]\n", 'status --json: every member there, with its documented type (jq)');
}

is($st->{ok}, JSON::PP::true, 'ok is true');
is($st->{code}, 'ok', 'code is "ok"');
my %pools = map { $_->{name} => $_ } @{ $st->{pools} || [] };
is_deeply([ sort keys %pools ], [ qw(binary idle notify web) ], 'every pool of the config');

# Values against the processes and cgroups.
sub cgroup_value {
    my ($dir, $file, $key) = @_;
    my $text = CorralTest::slurp("$dir/$file") // return undef;
    return $text =~ /^(\d+)$/ ? $1 : undef unless defined $key;
    return $text =~ /^\Q$key\E (\d+)$/m ? $1 : undef;
}
{
    my $web = $pools{web} || {};
    is($web->{state}, 'running', 'web: running');
    is($web->{ready}, 2, 'web: ready 2');
    is($web->{total}, 2, 'web: total 2');
    is($web->{target}, 2, 'web: target 2');
    is($web->{restarts}, 0, 'web: restarts 0');
    is($web->{generation}, 1, 'web: generation 1');
    my %real = $t->worker_map('web');
    is_deeply({ map { $_->{id} => $_->{pid} } @{ $web->{workers} || [] } }, \%real,
              'web: worker ids and pids are the real ones');
    for my $w (@{ $web->{workers} || [] }) {
        is($w->{state}, 'ready', "web/$w->{id}: ready");
        is($w->{generation}, 1, "web/$w->{id}: generation 1");
        cmp_ok($w->{uptime}, '>', 0, "web/$w->{id}: uptime > 0");
        is($w->{last_exit}, undef, "web/$w->{id}: last_exit null");
        is($w->{status}, undef, "web/$w->{id}: status null");
        my $dir = $t->cgroup_dir("web/$w->{id}");
        my $mem = cgroup_value($dir, 'memory.current');
        ok(defined $mem ? $w->{memory_current} > 0 : !defined $w->{memory_current},
           "web/$w->{id}: memory_current " . (defined $mem ? 'a number, as memory.current is there' : 'null, as there is no memory.current'));
        my $cpu = cgroup_value($dir, 'cpu.stat', 'usage_usec');
        ok(defined $cpu ? defined $w->{cpu_usage_usec} && $w->{cpu_usage_usec} <= $cpu : !defined $w->{cpu_usage_usec},
           "web/$w->{id}: cpu_usage_usec agrees with cpu.stat");
    }
    my $dir = $t->cgroup_dir('web');
    my $cpu = cgroup_value($dir, 'cpu.stat', 'usage_usec');
    ok(defined $cpu ? defined $web->{cpu_usage_usec} && $web->{cpu_usage_usec} <= $cpu : !defined $web->{cpu_usage_usec},
       'web: cpu_usage_usec agrees with cpu.stat');
    my $mem = cgroup_value($dir, 'memory.current');
    ok(defined $mem ? $web->{memory_current} > 0 : !defined $web->{memory_current}, 'web: memory_current agrees with memory.current');

    my $idle = $pools{idle} || {};
    is_deeply($idle->{workers}, [], 'idle: no workers');
    is($idle->{target}, 0, 'idle: target 0');
    is($idle->{state}, 'running', 'idle: running (a target of 0 is met)');

    my ($nw) = @{ ($pools{notify} || {})->{workers} || [] };
    is($nw && $nw->{status}, $NOTIFY_STATUS, 'notify: status is the STATUS= text, quote, tab, backslash and UTF-8 intact');
}
$t->checkpoint('status --json');

# uptime goes on.
$t->scenario('uptime', sub {
    my $before = $pools{web}{workers}[0];
    $t->wait_for(sub {
        my $s = $t->status('web') or return 0;
        my ($w) = grep { $_->{id} == $before->{id} } @{ $s->{web}{workers} };
        $w && $w->{uptime} >= $before->{uptime} + 0.2;
    }, 10, 'uptime grows');
});

# A worker killed: last_exit and restarts.
$t->scenario('a worker killed', sub {
    my %m = $t->worker_map('web');
    my ($id) = sort keys %m;
    kill 'KILL', $m{$id};
    $t->wait_log(qr/ warn worker killed by signal 9 \(KILL\) pool=web worker=$id pid=$m{$id}$/);
    my $s;
    $t->wait_for(sub {
        $s = $t->status('web') or return 0;
        $s->{web}{ready} == 2 && $t->workers('web') == 2;
    }, 10, 'web: the killed worker is replaced');
    is($s->{web}{restarts}, 1, 'web: restarts 1 after a kill');
    my @killed = grep { $_->{last_exit} && ($_->{last_exit}{signal} // 0) == 9 } @{ $s->{web}{workers} };
    is(scalar @killed, 1, 'web: one worker has last_exit {"signal":9,...}');
    is($killed[0] && $killed[0]{last_exit}{name}, 'KILL', 'web: its last_exit name KILL');
    is($killed[0] && $killed[0]{restarts}, 1, 'web: and restarts 1');
    is($killed[0] && $killed[0]{id}, $id, 'web: on the id of the killed worker');
});

# status POOL --json: just that pool.
$t->scenario('status POOL --json', sub {
    my $r = $t->ctl('status', 'notify', '--json');
    is($r->{code}, 0, 'status POOL --json: exit 0');
    valid_json($r->{out}, 'status POOL --json');
    my $s = eval { $JSON->decode($r->{out}) } || {};
    is_deeply([ map { $_->{name} } @{ $s->{pools} || [] } ], [ 'notify' ], 'status POOL --json: that pool only');
});

# A worker whose STATUS= is not UTF-8 still gives valid JSON (a worker
# more at the end).
$t->scenario('a STATUS= that is not UTF-8', { fds => 0 }, sub {
    my $r = $t->ctl('scale', 'binary', 1);
    is($r->{code}, 0, 'scale binary 1');
    $t->wait_for(sub { my @f = glob($t->path('sent.binary.*')); @f == 1 }, 10, 'binary: its worker sent STATUS=');
    $t->wait_log(qr/ debug notify: STATUS=.*not utf-8 pool=binary /);
    $r = $t->ctl('--json', 'status', 'binary');
    is($r->{code}, 0, 'status --json with a worker STATUS= that is not UTF-8: exit 0');
    valid_json($r->{out}, 'status --json with a worker STATUS= that is not UTF-8');
    $r = $t->ctl('--json', 'status');
    valid_json($r->{out}, 'status --json of all pools with it');
});

# --- --json of the other commands ---------------------------------------------

sub json_of {
    my ($want_code, $name, @args) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = $t->ctl('--json', @args);
    is($r->{code}, $want_code, "$name: exit $want_code") or diag($r->{err});
    valid_json($r->{out}, $name);
    return eval { $JSON->decode($r->{out}) } || {};
}
is_deeply(json_of(0, '--json ping', 'ping'), { ok => JSON::PP::true, code => 'ok', pong => JSON::PP::true }, '--json ping: the answer');
my $v = json_of(0, '--json version', 'version');
like($v->{version} // '', qr/^\d+\.\d+\.\d+/, '--json version: a version string');
is_deeply(json_of(0, '--json scale', 'scale', 'web', 3), { ok => JSON::PP::true, code => 'ok' }, '--json scale: the answer');
$t->wait_for(sub { $t->workers('web') == 3 }, 10, '--json scale: done');
my $sig = json_of(0, '--json signal', 'signal', 'web', 'CONT');
is($sig->{signalled}, 3, '--json signal: signalled 3');
is_deeply(json_of(3, '--json status of an unknown pool', 'status', 'nope'),
          { ok => JSON::PP::false, code => 'not-found', error => 'no such pool: nope' }, '--json status nope: the answer');
my $bad = json_of(2, '--json signal with a bad signal', 'signal', 'web', 'NOPE');
is($bad->{code}, 'bad-request', '--json bad signal: code bad-request');
my $reload = json_of(0, '--json reload', 'reload');
like($reload->{message} // '', qr/^0 added, 0 changed, 0 removed, 4 unchanged/, '--json reload: message');
is_deeply([ sort @{ ($reload->{reload} || {})->{unchanged} || [] } ], [ qw(binary idle notify web) ], '--json reload: reload.unchanged');
$t->wait_for(sub { $t->workers('web') == 2 }, 10, 'reload: web back to its 2 workers');
# (binary's worker went with the reload)
$t->checkpoint('--json of the other commands', fds => 0);

# --- the raw protocol, from Perl ------------------------------------------------

$t->scenario('the raw protocol', sub {
    my $r = $t->raw_request(qq({"command":"ping"}\n));
    is($r->{reply}, qq({"ok":true,"code":"ok","pong":true}\n), 'raw ping: the answer, one line');
    ok($r->{closed}, 'raw ping: then corrald closes the connection');

    $r = $t->raw_request(qq({"command":"ping"}\n{"command":"version"}\n));
    is($r->{reply}, qq({"ok":true,"code":"ok","pong":true}\n), 'two requests on one connection: only the first is answered');
    ok($r->{closed}, 'two requests on one connection: then closed');

    $r = $t->raw_request(qq(  { "command" : "ping" }  \r\n));
    like($r->{reply}, qr/^\{"ok":true,"code":"ok","pong":true\}\n\z/, 'whitespace and CRLF around the object are fine');

    $r = $t->raw_request(qq({"command":"status","format":"text"}\n));
    like($r->{reply}, qr/\A[^\n]+\n\z/, 'status with the text: still one line (its newlines escaped)');
    my $s = eval { $JSON->decode($r->{reply}) } || {};
    like($s->{text} // '', qr/^POOL\s+STATE\s+READY\s+WORKERS\s+TARGET\s+RESTARTS\s*\nweb\s+running\s+2\/2\s/,
         'status with "format":"text": text is the table');
    is(scalar @{ $s->{pools} || [] }, 4, 'status with "format":"text": pools too');

    my $ans = $t->request({ command => 'scale', pool => 'web', count => 3 });
    is_deeply($ans, { ok => JSON::PP::true, code => 'ok' }, 'raw scale: ok');
    $t->wait_for(sub { $t->workers('web') == 3 }, 10, 'raw scale: 3 workers');

    my %m = $t->worker_map('web');
    my ($id) = sort { $a <=> $b } keys %m;
    $ans = $t->request({ command => 'restart', pool => 'web', worker => $id + 0 });
    is_deeply($ans, { ok => JSON::PP::true, code => 'ok' }, 'raw restart of one worker: ok');
    $t->wait_for(sub { !pid_alive($m{$id}) && $t->workers('web') == 3 }, 10, 'raw restart of one worker: replaced');

    $ans = $t->request({ command => 'signal', pool => 'web', worker => undef, signal => 'CONT' });
    is($ans && $ans->{signalled}, 3, 'raw signal with "worker":null: all 3 signalled');
    $ans = $t->request({ command => 'signal', pool => 'web', worker => 999, signal => 'CONT' });
    is_deeply($ans, { ok => JSON::PP::false, code => 'not-found', error => 'no such worker: web/999' },
              'raw signal to an unknown worker: not-found');
    $ans = $t->request({ command => 'version' });
    is($ans && $ans->{version}, $v->{version}, 'raw version: the same as corralctl');
    $ans = $t->request({ command => 'reload' });
    ok($ans && $ans->{ok} && $ans->{message} =~ /^0 added/, 'raw reload: ok with the message');
});

# --- documented ---------------------------------------------------------------

SKIP: {
    my $doc = CorralTest::slurp("$FindBin::Bin/../doc/control.md");
    skip 'doc/control.md is not there', 1 unless defined $doc;
    my @missing = grep { $doc !~ /`\Q$_\E`|"\Q$_\E":/ } @POOL_KEYS, @WORKER_KEYS, @EXIT_KEYS, @VACANT_KEYS,
        qw(ok code error pong version signalled message text pools reload iso mono added changed removed unchanged rescaled errors);
    ok(!@missing, 'doc/control.md documents every member of the answers') or diag("missing: @missing");
}

$t->done;
