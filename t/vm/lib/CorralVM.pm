package CorralVM;

# Helpers for the tests that run inside the test VM (t/vm/*.t), where
# systemd is PID 1, the cgroup v2 hierarchy has every controller, and
# corral is installed under /usr. Core Perl modules only: the guest has
# perl and nothing from CPAN.
#
# `use CorralVM;` skips the whole test file anywhere but in the test VM
# (these tests start and stop system services): run them with
# t/vm/run-suite, which ships t/vm and t/lib into the guest in the same
# layout as here. The /proc and cgroup readers are t/lib/CorralProc.pm's
# and the waiting t/lib/CorralWait.pm's, shared with the host tests.
#
# A test ends with done(): the invariants after it (corral.service stops
# cleanly if it still runs, no alert in corrald's journal since the test
# began, no process and no cgroup of corral's left), then done_testing.

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Spec;
use lib File::Spec->catdir(dirname(File::Spec->rel2abs(__FILE__)), '..', '..', 'lib');

use CorralProc qw(slurp all_pids proc_stat proc_environ proc_cmdline pid_alive proc_age
                  worker_identity find_workers find_prototypes describe
                  cgroup_of cgroup_mount cg_read cg_keys cgroup_dirs cgroup_procs cgroup_pids);
use CorralWait ();
use Exporter ();
our @ISA = ('Exporter');
use POSIX qw(_exit);
use Test::More;
use Time::HiRes qw(time);

our @EXPORT = qw(slurp spew run_cmd systemctl unit_props wait_until wait_for stays done
    pool_workers prototypes proc_stat proc_environ proc_cmdline pid_alive proc_age cgroup_of
    cgroup_pids cgroup_dirs cg_read cg_keys
    journal unit_cgroup_pids describe_pids journal_cursor journal_entries journal_find
    corral_start corral_config corral_lua test_dir corralctl status_tree worker_pids_by_id
    unit_drop_in);

our $CGROOT = cgroup_mount() // '/sys/fs/cgroup';
our $CONF = '/etc/corral/corral.lua';
our $UNIT = 'corral.service';
our $UNIT_CG = '/system.slice/corral.service';

sub in_test_vm {
    my $cmdline = slurp('/proc/cmdline') // '';
    my $init = readlink('/proc/1/exe') // '';
    return $cmdline =~ /(?:^|\s)corral\.run=1(?:\s|$)/ && $init =~ m{/systemd$};
}

my $checked;
my $began;    # the journal's cursor when the test began
sub import {
    if (!$checked++) {
        plan(skip_all => 'runs inside the test VM only: use t/vm/run-suite') unless in_test_vm();
        $began = journal_cursor();
    }
    __PACKAGE__->export_to_level(1, @_);
}

sub spew {
    my ($path, $text) = @_;
    open my $fh, '>', "$path.new" or die "$path.new: $!";
    print $fh $text;
    close $fh or die "$path.new: $!";
    rename "$path.new", $path or die "rename $path: $!";
}

# Runs a command (no shell); returns (exit code, stdout and stderr
# together). The exit code is -1 when it could not run or was killed.
sub run_cmd {
    my (@cmd) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        print "cannot run $cmd[0]: $!\n";
        _exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my $rc = $? & 127 ? -1 : $? >> 8;
    return ($rc, $out);
}

sub systemctl { return run_cmd('systemctl', '--no-pager', @_) }

# { Property => value } for a unit.
sub unit_props {
    my ($unit, @props) = @_;
    my ($rc, $out) = systemctl('show', $unit, map { ('-p', $_) } @props);
    return { map { /^([^=]+)=(.*)$/ ? ($1 => $2) : () } split /\n/, $out };
}

# ---- waiting ------------------------------------------------------------------
# Conditions here often run systemctl or journalctl: looked at every 0.1 s.

my $POLL = 0.1;

# Polls $cond until it returns true or $timeout seconds (default 30) pass;
# returns its last value. Not a test by itself.
sub wait_until {
    my ($cond, $timeout) = @_;
    return CorralWait::poll_until($cond, $timeout // 30, $POLL);
}

# A test: $cond becomes true within $timeout seconds (default 30); when
# not, the unit's journal since the test began is shown.
sub wait_for {
    my ($cond, $timeout, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    local $CorralWait::POLL = $POLL;
    return CorralWait::wait_for($cond, $timeout // 30, $name, \&diag_journal);
}

# A test: $cond stays true for all of $duration seconds (for things that
# must not happen); the journal as for wait_for when it does not.
sub stays {
    my ($cond, $duration, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    local $CorralWait::POLL = $POLL;
    return CorralWait::stays($cond, $duration, $name, \&diag_journal);
}

# The last 30 messages of corral.service since the test began, as a diag.
sub diag_journal {
    my @e = journal_entries($UNIT, $began);
    @e = @e[-30 .. -1] if @e > 30;
    diag(join "\n", "journal of $UNIT since the test began:",
         map { '  | ' . ($_->{SYSLOG_IDENTIFIER} // '?') . ': ' . ($_->{MESSAGE} // '') } @e);
}

# ---- processes and cgroups ---------------------------------------------------

# Live workers of a pool, anywhere on the system (CorralProc::find_workers).
sub pool_workers {
    my ($pool) = @_;
    return find_workers($pool);
}

# pool name => pid of its prototype ("corral: prototype NAME").
sub prototypes { return find_prototypes() }

sub unit_cgroup_pids {
    my ($unit) = @_;
    my $cg = unit_props($unit, 'ControlGroup')->{ControlGroup};
    return () unless $cg;
    return cgroup_pids($cg);
}

sub describe_pids { return join "\n", map { '  ' . describe($_) } @_ }

# worker id => pid for a pool's live workers.
sub worker_pids_by_id {
    my ($pool) = @_;
    return map { ((worker_identity($_))[1] // 0) => $_ } pool_workers($pool);
}

# ---- the journal ---------------------------------------------------------------

# The unit's journal messages (no timestamps or prefixes), this boot.
sub journal {
    my ($unit) = @_;
    my ($rc, $out) = run_cmd('journalctl', '-b', '-u', $unit, '-o', 'cat', '--no-pager', '-q');
    return $out;
}

# The cursor of the newest entry in the journal (this boot), to read only
# what comes after it: journal_entries($unit, $cursor).
sub journal_cursor {
    my ($rc, $out) = run_cmd('journalctl', '-b', '-n', '1', '-o', 'json', '--no-pager', '-q');
    require JSON::PP;
    my ($line) = grep { /^\{/ } split /\n/, $out;
    return undef unless $line;
    my $e = eval { JSON::PP::decode_json($line) } or return undef;
    return $e->{__CURSOR};
}

# The unit's journal entries (this boot, after $cursor when given), each a
# hash of its fields (MESSAGE, PRIORITY, CORRAL_POOL, SYSLOG_IDENTIFIER...).
sub journal_entries {
    my ($unit, $cursor) = @_;
    my ($rc, $out) = run_cmd('journalctl', '-b', '-u', $unit, '-o', 'json', '--no-pager', '-q',
                             defined $cursor ? ("--after-cursor=$cursor") : ());
    require JSON::PP;
    my $json = JSON::PP->new->utf8(0);
    my @entries;
    for my $line (split /\n/, $out) {
        next unless $line =~ /^\{/;
        my $e = eval { $json->decode($line) } or next;
        # a MESSAGE that is not valid UTF-8 comes as an array of bytes
        $e->{MESSAGE} = join '', map { chr } @{ $e->{MESSAGE} } if ref $e->{MESSAGE} eq 'ARRAY';
        push @entries, $e;
    }
    return @entries;
}

# Entries of the unit (after $cursor) whose fields match every one of
# %match: a string is compared with eq, a qr// with =~.
sub journal_find {
    my ($unit, $cursor, %match) = @_;
    return grep {
        my $e = $_;
        !grep {
            my $v = $e->{$_};
            !defined $v || (ref $match{$_} eq 'Regexp' ? $v !~ $match{$_} : $v ne $match{$_})
        } keys %match;
    } journal_entries($unit, $cursor);
}

# ---- corral.service -------------------------------------------------------

my %plugin_files;    # written by corral_config, removed by done
my @test_dirs;       # made by test_dir, removed by done

# Writes the config (and plugins: name => source, into /etc/corral/plugins).
sub corral_config {
    my ($text, %plugins) = @_;
    mkdir '/etc/corral';
    spew($CONF, $text);
    if (%plugins) {
        mkdir '/etc/corral/plugins';
        for my $name (keys %plugins) {
            spew("/etc/corral/plugins/$name.lua", $plugins{$name});
            $plugin_files{"/etc/corral/plugins/$name.lua"} = 1;
        }
    }
}

# Writes the config, starts corral.service and returns (exit code, output,
# seconds systemctl start took).
sub corral_start {
    my ($text, %plugins) = @_;
    corral_config($text, %plugins) if defined $text;
    systemctl('reset-failed', $UNIT);
    my $t0 = time;
    my ($rc, $out) = systemctl('start', $UNIT);
    return ($rc, $out, time - $t0);
}

# A fresh, empty directory /run/corral-test-NAME for what a test's workers
# write; done() removes it.
sub test_dir {
    my ($name) = @_;
    my $dir = "/run/corral-test-$name";
    system('rm', '-rf', $dir);
    mkdir $dir or die "$dir: $!";
    push @test_dirs, $dir;
    return $dir;
}

# The Lua source of a Perl value: a number as it is, any other string
# quoted, an array ref as { a, b }, a hash ref as { key = value } (keys
# sorted), a scalar ref as the Lua text it holds (\'nil', \'{ "x" }').
sub lua_value {
    my ($v) = @_;
    return 'nil' unless defined $v;
    return $$v if ref $v eq 'SCALAR';
    if (ref $v eq 'ARRAY') {
        return @$v ? '{ ' . join(', ', map { lua_value($_) } @$v) . ' }' : '{}';
    }
    if (ref $v eq 'HASH') {
        return '{}' unless %$v;
        return '{ ' . join(', ', map { lua_key($_) . ' = ' . lua_value($v->{$_}) } sort keys %$v) . ' }';
    }
    return $v if $v =~ /^-?\d+(?:\.\d+)?$/;
    (my $s = $v) =~ s/([\\"])/\\$1/g;
    $s =~ s/\n/\\n/g;
    return qq{"$s"};
}

sub lua_key { return $_[0] =~ /^[A-Za-z_]\w*$/ ? $_[0] : '[' . lua_value($_[0]) . ']' }

# The text of a config, from items in order:
#   [ pool => NAME, KEY => VALUE, ... ]    pool "NAME" { KEY = VALUE, ... },
#                                          with stop_timeout = "5s" unless
#                                          given (values as lua_value)
#   [ plugin => NAME, KEY => VALUE, ... ]  plugin "NAME" { KEY = VALUE, ... }
#   [ settings => KEY => VALUE, ... ]      settings { ... } instead of the
#                                          default settings { log_level = "info" }
#   a string                               that Lua, as it is
sub corral_lua {
    my (@items) = @_;
    my $settings = 'settings { log_level = "info" }';
    my $text = '';
    for my $item (@items) {
        if (!ref $item) {
            $text .= $item =~ /\n\z/ ? $item : "$item\n";
            next;
        }
        my ($kind, @rest) = @$item;
        my $name = $kind eq 'settings' ? undef : shift @rest;
        my @pairs;
        while (my ($k, $v) = splice @rest, 0, 2) { push @pairs, [ $k, $v ] }
        push @pairs, [ stop_timeout => '5s' ] if $kind eq 'pool' && !grep { $_->[0] eq 'stop_timeout' } @pairs;
        my $body = join '', map { '  ' . lua_key($_->[0]) . ' = ' . lua_value($_->[1]) . ",\n" } @pairs;
        if ($kind eq 'settings') {
            $settings = "settings {\n$body}";
        } else {
            $text .= "$kind " . lua_value($name) . " {\n$body}\n";
        }
    }
    return "$settings\n$text";
}

# A drop-in for corral.service in /run (gone at the next boot); undef
# removes it. systemd is reloaded either way.
sub unit_drop_in {
    my ($name, $text) = @_;
    my $dir = '/run/systemd/system/corral.service.d';
    if (defined $text) {
        system('mkdir', '-p', $dir);
        spew("$dir/$name.conf", $text);
    } else {
        unlink "$dir/$name.conf";
    }
    systemctl('daemon-reload');
}

sub corralctl { return run_cmd('/usr/bin/corralctl', @_) }

# The cgroup tree of `systemctl status`: (cgroup path relative to the
# unit's => [ pids ]) for every cgroup shown, "" for the unit's own; and
# pid => its command line as shown.
sub status_tree {
    my ($text) = @_;
    utf8::decode($text);
    my (%cgs, %cmd, @stack, $indent);
    for my $line (split /\n/, $text) {
        if ($line =~ /^(\s*CGroup: )\S/) {
            $indent = length $1;
            $cgs{''} = [];
            next;
        }
        next unless defined $indent;
        # each level is two columns, "│ " or "  ", then "├─" or "└─"
        my $rest = length($line) > $indent ? substr($line, $indent) : '';
        last unless $rest =~ /^((?:\x{2502} |  )*)[\x{251c}\x{2514}]\x{2500}(.*)$/;
        my ($depth, $name) = (length($1) / 2, $2);
        if ($name =~ /^(\d+) (.*)$/) {
            push @{ $cgs{ join '/', @stack[0 .. $depth - 1] } }, $1;
            my $c = $2;
            utf8::encode($c);
            $cmd{$1} = $c;
        } else {
            $#stack = $depth - 1;
            $stack[$depth] = $name;
            $cgs{ join '/', @stack } //= [];
        }
    }
    return (\%cgs, \%cmd);
}

# ---- after every test ------------------------------------------------------------

# Processes of corral's that are still there: corrald, prototypes,
# workers (by their title or environment), anything in the unit's cgroup
# or with a test_dir as its cwd or in its command line.
sub leftovers {
    my %in_unit = map { $_ => 1 } cgroup_pids($UNIT_CG);
    return grep {
        my $pid = $_;
        my $cmd = proc_cmdline($pid);
        my $cwd = readlink("/proc/$pid/cwd") // '';
        $pid != $$ && pid_alive($pid)
            && ($in_unit{$pid} || defined((worker_identity($pid))[0]) || $cmd =~ m{^(?:/usr/sbin/corrald\0|corral: )}
                || grep { index($cmd, $_) >= 0 || $cwd eq $_ || index($cwd, "$_/") == 0 } @test_dirs);
    } all_pids();
}

# corrald's last $n warnings and errors since the test began
sub last_warnings {
    my ($n) = @_;
    my @j = journal_find($UNIT, $began, SYSLOG_IDENTIFIER => 'corrald', PRIORITY => qr/^[0-4]$/);
    return @j > $n ? @j[-$n .. -1] : @j;
}

# Every test file ends with done(): corral.service, if it still runs,
# stops with Result=success (corrald exits 0, nothing left for systemd to
# kill); no alert in corrald's journal since the test began; no process
# of corral's and no cgroup of the unit left; then done_testing. The
# test's directories and plugin files are removed.
sub done {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $state = unit_props($UNIT, 'ActiveState')->{ActiveState} // '';
    if ($state =~ /^(?:active|reloading|activating)$/) {
        my ($rc, $out) = systemctl('stop', $UNIT);
        my $p = unit_props($UNIT, qw(Result ExecMainStatus));
        ok($rc == 0 && $p->{Result} eq 'success' && $p->{ExecMainStatus} == 0,
           'at the end: corral.service stops cleanly (corrald exits 0)')
            or diag("systemctl stop: exit $rc $out; Result=$p->{Result} ExecMainStatus=$p->{ExecMainStatus}\n"
                    . join "\n", map { "  corrald: " . ($_->{MESSAGE} // '') } last_warnings(15));
    }
    my @alerts = journal_find($UNIT, $began, SYSLOG_IDENTIFIER => 'corrald', PRIORITY => qr/^[01]$/);
    ok(!@alerts, "no alert in corrald's journal") or diag(join "\n", map { $_->{MESSAGE} } @alerts);
    my $clean = wait_until(sub { !leftovers() }, 10);
    ok($clean, 'no process left') or diag(describe_pids(leftovers()));
    ok(wait_until(sub { !-d "$CGROOT$UNIT_CG" }, 10), "no cgroup left ($UNIT_CG)")
        or diag(join "\n", map { "  $_: " . join(' ', cgroup_procs($_)) }
                map { s/^\Q$CGROOT\E//r } split /\n/, `find $CGROOT$UNIT_CG -type d 2>&1`);
    system('rm', '-rf', @test_dirs, keys %plugin_files) if @test_dirs || %plugin_files;
    done_testing();
}

1;
