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
    journal unit_cgroup_pids describe_pids);

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

1;
