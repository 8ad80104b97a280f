#!/usr/bin/perl
# Plugin commands: corral.command(name, { args, read_only, help }, fn)
# registers a control command; `corralctl plugin NAME CMD ARG=VALUE`
# reaches it (text and --json) with the exit codes of the built-in
# commands; args are checked against the schema; an error raised in fn
# and a fn that loops are answered as failures while corrald goes on;
# `corralctl plugins` lists them (which the shells' completions use:
# t/045 tests those).
# A member of settings.monitor_group may call the read-only commands and
# is refused the others (as root only: a user is made for it).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use File::Copy ();
use JSON::PP ();
use Time::HiRes qw(time);
use Test::More;

my $PLUGIN = <<'EOF';
local count = 0
corral.command("count", { read_only = true, help = "how far bump went" }, function()
  return { count = count, pools = #corral.pools() }
end)
corral.command("bump", { args = { by = "integer", note = "string?", loud = "boolean?" },
                         help = "add to the count" }, function(a)
  count = count + a.by
  if a.loud then corral.warn(("probe: bumped to %d"):format(count)) end
  return { count = count, note = a.note }
end)
corral.command("scale", { args = { pool = "string", n = "integer" } }, function(a)
  return { scaled = assert(corral.scale(a.pool, a.n)) and a.n }
end)
corral.command("hello", { read_only = true }, function() return "hello there" end)
corral.command("fail", {}, function() error("no luck today") end)
corral.command("spin", {}, function() while true do end end)
corral.command("bytes", { read_only = true }, function() return { s = "bad \255 c1 \194\133 ok \195\169" } end)
EOF

my $CONFIG = <<'EOF';
settings { %SETTINGS% }
pool "web" { command = "/bin/sleep 1000", workers = 1, env_inherit = { "CORRAL_TEST_DIR" } }
plugin "probe" {}
EOF

sub json { my $a = eval { JSON::PP->new->decode($_[0]) }; return $a || {} }

# ---- registration errors: FILE:LINE and what is wrong -------------------------

{
    my $t = CorralTest->new(config => $CONFIG =~ s/%SETTINGS%//r);
    my $dir = $t->dir;
    for my $case (
        [ 'bad name', qq{corral.command("Bad", {}, function() end)\n}, qr/corral\.command: expected a command name/ ],
        [ 'bad arg type', qq{local x = 1\ncorral.command("x", { args = { n = "float" } }, function() end)\n},
          qr/corral\.command "x": argument n: type must be string, number, integer or boolean/, 2 ],
        [ 'unknown key', qq{corral.command("x", { readonly = true }, function() end)\n},
          qr/corral\.command "x": unknown key readonly/ ],
        [ 'no function', qq{corral.command("x", {})\n}, qr/corral\.command "x": expected a function/ ],
        [ 'twice', qq{corral.command("x", {}, function() end)\ncorral.command("x", {}, function() end)\n},
          qr/corral\.command "x": registered twice by plugin probe/, 2 ],
    ) {
        my ($name, $text, $re, $line) = @$case;
        $t->write_file('plugins/probe.lua', $text);
        my $res = $t->run_check;
        if (!$re) {
            is($res->{code}, 0, "$name: not an error at load") or diag($res->{err});
            next;
        }
        is($res->{code}, 1, "$name: corrald -t exits 1");
        like($res->{err}, qr/^corrald: \Q$dir\E\/plugins\/probe\.lua:${\($line \/\/ 1)}: /m, "$name: names FILE:LINE")
            or diag($res->{err});
        like($res->{err}, $re, "$name: says what is wrong");
    }
}

# ---- a running corrald ------------------------------------------------------------

my $t = CorralTest->new(config => $CONFIG =~ s/%SETTINGS%//r);
$t->write_file('plugins/probe.lua', $PLUGIN);
$t->start;
$t->wait_control;
$t->wait_for(sub { $t->workers('web') == 1 }, 10, 'web up');

my $r = $t->ctl('plugin', 'probe', 'count');
is($r->{code}, 0, 'plugin probe count: exit 0') or diag($r->{err});
is($r->{out}, "count: 0\npools: 1\n", 'plugin probe count: key: value lines');

$r = $t->ctl('plugin', 'probe', 'bump', 'by=5', 'note=first one');
is($r->{code}, 0, 'bump by=5: exit 0') or diag($r->{err});
is($r->{out}, "count: 5\nnote: first one\n", 'bump: its result');

$r = $t->ctl('--json', 'plugin', 'probe', 'bump', 'by=2', 'loud=yes');
is($r->{code}, 0, 'bump --json: exit 0') or diag($r->{err});
my $a = json($r->{out});
is_deeply($a, { ok => JSON::PP::true, code => 'ok', result => { count => 7 } }, 'bump --json: the answer')
    or diag($r->{out});
$t->wait_log(qr/probe: bumped to 7/, timeout => 5, name => 'bump loud=yes: the plugin logged');

$r = $t->ctl('plugin', 'probe', 'hello');
is_deeply([ $r->{code}, $r->{out} ], [ 0, "hello there\n" ], 'a string result is printed as it is');
$r = $t->ctl('--json', 'plugin', 'probe', 'hello');
is(json($r->{out})->{result}, 'hello there', 'a string result: --json');

# what is not UTF-8 comes as U+FFFD, C1 controls escaped: the protocol's promise
$r = $t->request({ command => 'plugin', plugin => 'probe', name => 'bytes' });
my $raw = $t->raw_request(qq({"command":"plugin","plugin":"probe","name":"bytes"}\n))->{reply};
is($raw, qq({"ok":true,"code":"ok","result":{"s":"bad \xef\xbf\xbd c1 \\u0085 ok \xc3\xa9"}}\n),
   'a result that is not UTF-8: cleaned as corrald cleans its own');

# the raw protocol: args as JSON values
$a = $t->request({ command => 'plugin', plugin => 'probe', name => 'bump', args => { by => 3, loud => JSON::PP::false } });
is_deeply($a, { ok => JSON::PP::true, code => 'ok', result => { count => 10 } }, 'request with JSON args');
$a = $t->request({ command => 'plugin', plugin => 'probe', name => 'count' });
is($a && $a->{result}{count}, 10, 'request without args');

# a command that changes the pools
$r = $t->ctl('plugin', 'probe', 'scale', 'pool=web', 'n=2');
is($r->{code}, 0, 'plugin probe scale: exit 0') or diag($r->{err});
$t->wait_for(sub { $t->workers('web') == 2 }, 10, 'scale through the plugin: 2 workers');

# args checked against the schema: exit 2, one line
for my $case (
    [ [ 'bump' ], qr/^corralctl: probe bump: missing argument by \(integer\)$/ ],
    [ [ 'bump', 'by=1.5' ], qr/^corralctl: probe bump: argument by: expected an integer, got "1\.5"$/ ],
    [ [ 'bump', 'by=x' ], qr/^corralctl: probe bump: argument by: expected an integer, got "x"$/ ],
    [ [ 'bump', 'by=1', 'loud=maybe' ], qr/^corralctl: probe bump: argument loud: expected a boolean, got "maybe"$/ ],
    [ [ 'bump', 'by=1', 'colour=red' ], qr/^corralctl: probe bump: unknown argument "colour" \(by, loud, note\)$/ ],
    [ [ 'count', 'x=1' ], qr/^corralctl: probe count: unknown argument "x" \(it takes none\)$/ ],
) {
    my ($args, $re) = @$case;
    $r = $t->ctl('plugin', 'probe', @$args);
    is($r->{code}, 2, "plugin probe @$args: exit 2 (bad request)");
    like($r->{err}, $re, "plugin probe @$args: says what is wrong") or diag($r->{err});
}
$r = $t->ctl('plugin', 'probe', 'bump', 'by');
is($r->{code}, 2, 'an argument without =: exit 2');
like($r->{err}, qr/wrong arguments for plugin/, 'an argument without =: usage');
$a = $t->request({ command => 'plugin', plugin => 'probe', name => 'bump', args => { by => [1] } });
is($a && $a->{code}, 'bad-request', 'args nested deeper: bad-request');
$a = $t->request({ command => 'plugin', plugin => 'probe', name => 'bump', args => 'by=1' });
is($a && $a->{code}, 'bad-request', 'args not an object: bad-request');
is($t->request({ command => 'plugin', plugin => 'probe', name => 'count' })->{result}{count}, 10,
   'the bad requests changed nothing');

# unknown plugin or command: exit 3
$r = $t->ctl('plugin', 'nope', 'count');
is($r->{code}, 3, 'unknown plugin: exit 3');
like($r->{err}, qr/^corralctl: no plugin nope with commands/, 'unknown plugin: says so');
$r = $t->ctl('plugin', 'probe', 'nope');
is($r->{code}, 3, 'unknown command: exit 3');
like($r->{err}, qr/^corralctl: plugin probe has no command nope \(it has: bump, bytes, count, fail, hello, scale, spin\)$/,
     'unknown command: names the ones there are') or diag($r->{err});

# an error raised in fn: exit 1, the message, and the log
my $mark = $t->mark;
$r = $t->ctl('plugin', 'probe', 'fail');
is($r->{code}, 1, 'fn raises an error: exit 1');
like($r->{err}, qr/^corralctl: probe fail failed: .*probe\.lua:\d+: no luck today$/, 'fn raises an error: its message')
    or diag($r->{err});
$t->wait_log(qr/plugin probe: command fail failed: .*no luck today/, timeout => 5, since => $mark,
             name => 'fn raises an error: logged');

# a fn that loops: stopped at the budget, answered, corrald goes on
my $start = time;
$r = $t->ctl('plugin', 'probe', 'spin', { timeout => 20 });
my $took = time - $start;
is($r->{code}, 1, 'fn loops: exit 1');
like($r->{err}, qr/^corralctl: probe spin failed: .*took longer than 1s, stopped$/, 'fn loops: the budget stopped it')
    or diag($r->{err});
cmp_ok($took, '<', 5, sprintf('fn loops: answered in %.1fs', $took));
# corrald answers at once afterwards, and the pool is as it was
$start = time;
$r = $t->ctl('ping');
is($r->{code}, 0, 'ping after the loop');
cmp_ok(time - $start, '<', 1, 'ping after the loop: at once');
# a ping sent while a command spins is answered once the budget stops it
my $h = $t->ctl_spawn('plugin', 'probe', 'spin');
select undef, undef, undef, 0.2;
$start = time;
$r = $t->ctl('ping', { timeout => 10 });
my $ping = time - $start;
is($r->{code}, 0, 'ping during a spinning command: answered');
cmp_ok($ping, '<', 3, sprintf('ping during a spinning command: within the budget (%.1fs)', $ping));
is($t->ctl_wait($h)->{code}, 1, 'the spinning command failed');
is($t->status('web')->{web}{state}, 'running', 'web still running');
is($t->request({ command => 'plugin', plugin => 'probe', name => 'count' })->{result}{count}, 10,
   'the plugin still answers after its loops');

# the list
$r = $t->ctl('plugins');
is($r->{code}, 0, 'plugins: exit 0') or diag($r->{err});
is($r->{out}, <<'EOF', 'plugins: a line per command');
probe bump by=integer loud=boolean? note=string?  -- add to the count
probe bytes  (read-only)
probe count  (read-only)  -- how far bump went
probe fail
probe hello  (read-only)
probe scale n=integer pool=string
probe spin
EOF
$a = json($t->ctl('--json', 'plugins')->{out});
is_deeply($a->{commands} && $a->{commands}[0],
          { plugin => 'probe', name => 'bump', read_only => JSON::PP::false, help => 'add to the count',
            args => { by => 'integer', loud => 'boolean?', note => 'string?' } }, 'plugins --json: the first');
is(scalar @{ $a->{commands} || [] }, 7, 'plugins --json: all seven');

# a reload: the new load's commands, its locals anew
$t->write_file('plugins/probe.lua', $PLUGIN . qq{corral.command("later", { read_only = true }, function() return "new" end)\n});
$r = $t->ctl('reload', { wait => 1 });
is($r->{code}, 0, 'reload') or diag($r->{err});
is_deeply([ @{ $t->ctl('plugin', 'probe', 'later') }{qw(code out)} ], [ 0, "new\n" ], 'after a reload: the new command');
is($t->ctl('plugin', 'probe', 'count')->{out}, "count: 0\npools: 1\n", 'after a reload: the plugin starts anew');
$t->write_file('plugins/probe.lua', "local x = 1\n");
$t->ctl('reload', { wait => 1 });
is($t->ctl('plugin', 'probe', 'count')->{code}, 3, 'a reload without the commands: not found');
is($t->ctl('plugins')->{out}, '', 'a reload without the commands: none listed');

$t->stop;

# ---- permissions: monitor_group may run the read-only ones -------------------------

SKIP: {
    my $tools = !grep { my $tool = $_; !grep { -x "$_/$tool" } split(/:/, $ENV{PATH}), qw(/usr/sbin /sbin /usr/bin) }
        qw(useradd userdel groupadd groupdel setpriv);
    skip 'needs root, useradd and setpriv (to add a user and switch to it)', 8 if $> != 0 || !$tools;
    $ENV{PATH} .= ':/usr/sbin:/sbin';
    my $USER = "corralpu-$$";
    my %GROUP = (primary => "corralpp-$$", mon => "corralpm-$$");
    for my $line (split /\n/, `getent passwd` // '') {
        my ($name, $pid) = $line =~ /^(corralpu-(\d+)):/ or next;
        system('userdel', '-f', $name) unless kill 0, $pid;
    }
    for my $line (split /\n/, `getent group` // '') {
        my ($name, $pid) = $line =~ /^(corralp[pm]-(\d+)):/ or next;
        system('groupdel', $name) unless kill 0, $pid;
    }
    my (@groups, $user);
    local $SIG{PIPE} = 'IGNORE';
    my $cleanup = sub {
        system('userdel', '-f', $USER) if $user;
        system('groupdel', $_) for @groups;
        ($user, @groups) = ();
    };
    END { local $?; $cleanup->() if $cleanup }
    for my $g (sort values %GROUP) {
        system('groupadd', '-r', $g) == 0 or BAIL_OUT("groupadd $g failed");
        push @groups, $g;
    }
    system('useradd', '-M', '-r', '-N', '-g', $GROUP{primary}, '-G', $GROUP{mon}, '-d', '/nonexistent',
           '-s', '/bin/sh', $USER) == 0 or BAIL_OUT("useradd $USER failed");
    $user = 1;
    my $uid = getpwnam($USER);
    my @MEMBER = ('setpriv', "--reuid=$USER", "--regid=$GROUP{primary}", '--init-groups', '--');

    my $m = CorralTest->new(config => $CONFIG =~ s/%SETTINGS%/monitor_group = "$GROUP{mon}"/r);
    $m->write_file('plugins/probe.lua', $PLUGIN);
    chmod 0711, $m->dir or die "chmod: $!";
    my $prog = $m->path('corralctl');
    File::Copy::copy($CorralTest::CORRALCTL, $prog) or die "copy: $!";
    chmod 0755, $prog;
    $m->start;
    $m->wait_control;
    my $as = sub { $m->ctl(@_, { wrap => \@MEMBER, program => $prog }) };
    $r = $as->('plugin', 'probe', 'count');
    is_deeply([ $r->{code}, $r->{out} ], [ 0, "count: 0\npools: 1\n" ], 'monitor: the read-only command answers')
        or diag($r->{err});
    $r = $as->('plugins');
    is($r->{code}, 0, 'monitor: plugins lists') or diag($r->{err});
    $r = $as->('plugin', 'probe', 'bump', 'by=1');
    is($r->{code}, 4, 'monitor: a command that changes things: exit 4 (refused)');
    like($r->{err}, qr/^corralctl: permission denied: uid $uid, of settings\.monitor_group, may only run read-only commands, and probe bump changes things\n\z/,
         'monitor: refused, one line') or diag($r->{err});
    $r = $as->('plugin', 'probe', 'scale', 'pool=web', 'n=3');
    is($r->{code}, 4, 'monitor: scale through the plugin refused');
    is($m->ctl('plugin', 'probe', 'count')->{out}, "count: 0\npools: 1\n", 'monitor: bump did not run');
    is($m->status('web')->{web}{target}, 1, 'monitor: web not scaled');
    $r = $m->ctl('plugin', 'probe', 'bump', 'by=1');
    is($r->{code}, 0, 'root: the same command runs');
    $m->stop;
    $cleanup->();
}

done_testing;
