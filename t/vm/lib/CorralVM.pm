package CorralVM;

# Helpers for the tests that run inside the test VM (t/vm/*.t), where
# systemd is PID 1, the cgroup v2 hierarchy has every controller, and
# corral is installed under /usr. Core Perl modules only: the guest has
# perl and nothing from CPAN.
#
# `use CorralVM;` skips the whole test file anywhere but in the test VM
# (these tests start and stop system services): run them with
# t/vm/run-suite.

use strict;
use warnings;

use Exporter ();
our @ISA = ('Exporter');
use POSIX qw(_exit);
use Test::More;
use Time::HiRes qw(sleep time);

our @EXPORT = qw(slurp spew run_cmd systemctl unit_props wait_until
    pool_workers prototypes proc_environ proc_cgroup cgroup_pids
    journal unit_cgroup_pids describe_pids
    journal_cursor journal_entries journal_find corral_start corral_config
    cg_read cg_keys cgroup_dirs corralctl status_tree worker_pids_by_id
    unit_drop_in proc_alive);

our $CGROOT = '/sys/fs/cgroup';

sub in_test_vm {
    my $cmdline = slurp('/proc/cmdline') // '';
    my $init = readlink('/proc/1/exe') // '';
    return $cmdline =~ /(?:^|\s)corral\.run=1(?:\s|$)/ && $init =~ m{/systemd$};
}

my $checked;
sub import {
    if (!$checked++ && !in_test_vm()) {
        plan(skip_all => 'runs inside the test VM only: use t/vm/run-suite');
    }
    __PACKAGE__->export_to_level(1, @_);
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    local $/;
    my $text = <$fh>;
    return $text // '';
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

# Polls $cond every 0.1 s until it returns true or $timeout seconds pass;
# returns its last value. Not a test by itself.
sub wait_until {
    my ($cond, $timeout) = @_;
    my $deadline = time + ($timeout // 30);
    while (1) {
        my $v = $cond->();
        return $v if $v || time >= $deadline;
        sleep 0.1;
    }
}

sub all_pids {
    opendir my $dh, '/proc' or die "opendir /proc: $!";
    return grep { /^\d+$/ } readdir $dh;
}

sub proc_environ {
    my ($pid) = @_;
    my $raw = slurp("/proc/$pid/environ") // return {};
    return { map { /^([^=]*)=(.*)$/s ? ($1 => $2) : () } split /\0/, $raw };
}

sub proc_state {
    my ($pid) = @_;
    my $stat = slurp("/proc/$pid/stat") // return undef;
    $stat =~ /^.*\)\s+(\S)\s+(-?\d+)/s or return undef;
    return { state => $1, ppid => $2 };
}

# The cgroup v2 path of a process ("/system.slice/corral.service"), or undef.
sub proc_cgroup {
    my ($pid) = @_;
    my $text = slurp("/proc/$pid/cgroup") // return undef;
    return $text =~ /^0::(\S*)$/m ? $1 : undef;
}

# Live workers of a pool, anywhere on the system: processes with
# CORRAL_POOL=$pool in their environment whose parent has not. Sorted.
sub pool_workers {
    my ($pool) = @_;
    my @pids;
    for my $pid (all_pids()) {
        next if (proc_environ($pid)->{CORRAL_POOL} // '') ne $pool;
        my $st = proc_state($pid) or next;
        next if $st->{state} eq 'Z';
        next if (proc_environ($st->{ppid})->{CORRAL_POOL} // '') eq $pool;
        push @pids, $pid;
    }
    my @sorted = sort { $a <=> $b } @pids;
    return @sorted;
}

# pool name => pid of its prototype ("corral: prototype NAME").
sub prototypes {
    my %p;
    for my $pid (all_pids()) {
        my $cmd = slurp("/proc/$pid/cmdline") // next;
        my $st = proc_state($pid) or next;
        next if $st->{state} eq 'Z';
        $p{$1} = $pid if $cmd =~ /^corral: prototype (\S+?)(?:[\s\0]|$)/;
    }
    return %p;
}

# Every pid in cgroup $cg (a path below the cgroup2 root) and below it.
sub cgroup_pids {
    my ($cg) = @_;
    my @pids;
    my @dirs = ("$CGROOT$cg");
    while (my $d = shift @dirs) {
        my $procs = slurp("$d/cgroup.procs") // next;
        push @pids, grep { /^\d+$/ } split /\n/, $procs;
        opendir my $dh, $d or next;
        push @dirs, map { "$d/$_" } grep { !/^\./ && -d "$d/$_" } readdir $dh;
    }
    my @sorted = sort { $a <=> $b } @pids;
    return @sorted;
}

sub unit_cgroup_pids {
    my ($unit) = @_;
    my $cg = unit_props($unit, 'ControlGroup')->{ControlGroup};
    return () unless $cg;
    return cgroup_pids($cg);
}

# The unit's journal messages (no timestamps or prefixes), this boot.
sub journal {
    my ($unit) = @_;
    my ($rc, $out) = run_cmd('journalctl', '-b', '-u', $unit, '-o', 'cat', '--no-pager', '-q');
    return $out;
}

sub describe_pids {
    return join "\n", map {
        my $cmd = slurp("/proc/$_/cmdline") // '(gone)';
        $cmd =~ tr/\0/ /;
        "  pid $_ cgroup " . (proc_cgroup($_) // '?') . ": $cmd";
    } @_;
}

# ---- the journal, as structured entries ---------------------------------

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

our $CONF = '/etc/corral/corral.lua';
our $UNIT = 'corral.service';
our $UNIT_CG = '/system.slice/corral.service';

# Writes the config (and plugins: name => source, into /etc/corral/plugins).
sub corral_config {
    my ($text, %plugins) = @_;
    mkdir '/etc/corral';
    spew($CONF, $text);
    if (%plugins) {
        mkdir '/etc/corral/plugins';
        spew("/etc/corral/plugins/$_.lua", $plugins{$_}) for keys %plugins;
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

# ---- cgroup files -----------------------------------------------------------

# A cgroup file's content without the final newline, or undef; $cg is a
# path below the cgroup2 root ("/system.slice/corral.service/web/1").
sub cg_read {
    my ($cg, $file) = @_;
    my $v = slurp("$CGROOT$cg/$file");
    return undef unless defined $v;
    chomp $v;
    return $v;
}

# "key value" lines (cpu.stat, memory.events, cgroup.events) as a hash.
sub cg_keys {
    my ($cg, $file) = @_;
    my $v = cg_read($cg, $file) // return {};
    return { map { /^(\S+)\s+(\S+)/ ? ($1 => $2) : () } split /\n/, $v };
}

# The child cgroups of $cg (names), sorted.
sub cgroup_dirs {
    my ($cg) = @_;
    opendir my $dh, "$CGROOT$cg" or return ();
    my @d = sort grep { !/^\./ && -d "$CGROOT$cg/$_" } readdir $dh;
    return @d;
}

sub proc_alive {
    my ($pid) = @_;
    my $st = proc_state($pid) or return 0;
    return $st->{state} ne 'Z';
}

# worker id => pid for a pool's live workers (CORRAL_WORKER of each).
sub worker_pids_by_id {
    my ($pool) = @_;
    return map { ((proc_environ($_)->{CORRAL_WORKER} // 0) => $_) } pool_workers($pool);
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

1;
