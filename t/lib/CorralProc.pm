package CorralProc;

# Readers of /proc and of cgroup v2 files, shared by the host tests
# (t/lib/CorralTest.pm) and the VM tests (t/vm/lib/CorralVM.pm, which
# finds this file through t/lib, shipped into the guest beside t/vm).
# Plain functions, core Perl only; every one returns undef, an empty list
# or an empty hash for a process or file that is gone, never dies.
#
# Cgroup paths ($cg) are as /proc/PID/cgroup names them: "/a/b", relative
# to the cgroup2 mount (cgroup_mount()).

use strict;
use warnings;

use Exporter qw(import);
use POSIX ();

our @EXPORT_OK = qw(slurp all_pids proc_stat proc_environ proc_cmdline pid_alive proc_age
    lua_worker_title worker_identity find_workers find_prototypes descends_from describe
    fd_targets unix_sockets
    cgroup_of cgroup_mount cg_read cg_keys cgroup_dirs cgroup_procs cgroup_pids);
our %EXPORT_TAGS = (all => \@EXPORT_OK);

# --- files and processes -------------------------------------------------

# The content of a file, or undef when it cannot be read.
sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    local $/;
    my $text = <$fh>;
    return $text // '';
}

sub all_pids {
    opendir my $dh, '/proc' or die "opendir /proc: $!";
    return grep { /^\d+$/ } readdir $dh;
}

# { state, ppid, pgrp, session, utime, stime, starttime } from
# /proc/PID/stat (times in clock ticks), or undef if gone.
sub proc_stat {
    my ($pid) = @_;
    my $stat = slurp("/proc/$pid/stat") // return undef;
    # comm (field 2) may hold spaces and parentheses: parse after the last ')'
    $stat =~ /^.*\)\s+(.*)$/s or return undef;
    my @f = split ' ', $1;    # $f[0] is field 3 (state)
    return undef if @f < 20;
    return { state => $f[0], ppid => $f[1], pgrp => $f[2], session => $f[3],
             utime => $f[11], stime => $f[12], starttime => $f[19] };
}

sub proc_environ {
    my ($pid) = @_;
    my $raw = slurp("/proc/$pid/environ") // return {};
    return { map { /^([^=]*)=(.*)$/s ? ($1 => $2) : () } split /\0/, $raw };
}

# The raw command line, arguments separated by NUL ('' if gone).
sub proc_cmdline {
    my ($pid) = @_;
    return slurp("/proc/$pid/cmdline") // '';
}

# Alive: there, and not a zombie.
sub pid_alive {
    my ($pid) = @_;
    my $st = proc_stat($pid);
    return $st && $st->{state} ne 'Z';
}

# Seconds since $pid started, or undef if gone.
my $HZ = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
sub proc_age {
    my ($pid) = @_;
    my $st = proc_stat($pid) or return undef;
    my ($uptime) = (slurp('/proc/uptime') // '') =~ /^([\d.]+)/ or return undef;
    return $uptime - $st->{starttime} / $HZ;
}

# Is $pid $top or one of its descendants?
sub descends_from {
    my ($pid, $top) = @_;
    for (1 .. 64) {
        return 1 if $pid == $top;
        my $st = proc_stat($pid) or return 0;
        return 0 if $st->{ppid} <= 1;
        $pid = $st->{ppid};
    }
    return 0;
}

# One line about a process: pid, parent, state, cgroup, command line; with
# $signals, its signal masks too.
sub describe {
    my ($pid, $signals) = @_;
    (my $cmd = proc_cmdline($pid)) =~ tr/\0/ /;
    $cmd =~ s/\s+$//;
    my $st = proc_stat($pid) || {};
    my $text = "pid $pid ppid " . ($st->{ppid} // '?') . " state " . ($st->{state} // 'gone')
        . " cgroup " . (cgroup_of($pid) // '?') . ": $cmd";
    if ($signals) {
        my $status = slurp("/proc/$pid/status") // '';
        $text .= join '', map { $status =~ /^($_):\s*(\S+)/m ? " $1 $2" : '' } qw(SigPnd ShdPnd SigBlk SigIgn SigCgt);
    }
    return $text;
}

# fd => what it points to ("socket:[1234]", "/dev/null", "anon_inode:[pidfd]")
# for the open fds of $pid; empty if gone.
sub fd_targets {
    my ($pid) = @_;
    opendir my $dh, "/proc/$pid/fd" or return {};
    my %fds;
    for my $fd (grep { /^\d+$/ } readdir $dh) {
        my $to = readlink "/proc/$pid/fd/$fd";
        $fds{$fd} = $to if defined $to;
    }
    return \%fds;
}

# inode => { state, path } for every Unix socket of this network namespace
# (/proc/net/unix; state "01" unconnected or listening, "03" connected; an
# accepted connection has the path of the socket it was accepted on).
sub unix_sockets {
    my %socks;
    for my $line (split /\n/, slurp('/proc/net/unix') // '') {
        my @f = split ' ', $line;
        next unless @f >= 7 && $f[6] =~ /^\d+$/;
        $socks{ $f[6] } = { state => $f[5], path => $f[7] };
    }
    return \%socks;
}

# --- workers and prototypes ------------------------------------------------

# (POOL, ID) from a Lua worker's title "corral: worker POOL/ID", or ().
# A Lua worker does not exec: its title overwrote the memory that
# /proc/PID/environ shows, so CORRAL_POOL is not visible there.
sub lua_worker_title {
    my ($pid) = @_;
    return proc_cmdline($pid) =~ m{^corral: worker ([A-Za-z0-9_-]+)/(\d+)\0*$} ? ($1, $2) : ();
}

# (POOL, ID) of a process that looks like a worker: a Lua one by its
# title, an exec'd one by CORRAL_POOL and CORRAL_WORKER in its
# environment; () otherwise.
sub worker_identity {
    my ($pid) = @_;
    my @lua = lua_worker_title($pid);
    return @lua if @lua;
    my $env = proc_environ($pid);
    return () unless defined $env->{CORRAL_POOL};
    return ($env->{CORRAL_POOL}, $env->{CORRAL_WORKER} // '?');
}

# The live workers of $pool, anywhere on the system (with $keep, only
# those for which $keep->($pid, $stat) is true): processes that look like
# one of its workers (worker_identity) whose parent does not (a worker's
# own children are not workers). Sorted pids.
sub find_workers {
    my ($pool, $keep) = @_;
    my @pids;
    for my $pid (all_pids()) {
        my ($p) = worker_identity($pid);
        next if !defined $p || $p ne $pool;
        my $st = proc_stat($pid) or next;
        next if $st->{state} eq 'Z';
        my ($pp) = worker_identity($st->{ppid});
        next if defined $pp && $pp eq $pool;
        next if $keep && !$keep->($pid, $st);
        push @pids, $pid;
    }
    my @sorted = sort { $a <=> $b } @pids;
    return @sorted;    # a count in scalar context
}

# pool => pid of its live prototype ("corral: prototype POOL"), for every
# prototype on the system (with $keep, those for which $keep->($pid,
# $stat) is true).
sub find_prototypes {
    my ($keep) = @_;
    my %p;
    for my $pid (all_pids()) {
        proc_cmdline($pid) =~ /^corral: prototype (\S+?)(?:[\s\0]|$)/ or next;
        my $pool = $1;
        my $st = proc_stat($pid) or next;
        next if $st->{state} eq 'Z' || ($keep && !$keep->($pid, $st));
        $p{$pool} = $pid;
    }
    return %p;
}

# --- cgroups -----------------------------------------------------------------

# The cgroup v2 path of $pid as /proc/PID/cgroup gives it, or undef if gone.
sub cgroup_of {
    my ($pid) = @_;
    my $text = slurp("/proc/$pid/cgroup") // return undef;
    return $text =~ /^0::(\S*)$/m ? $1 : undef;
}

# The cgroup2 mount point, from /proc/self/mountinfo (undef if none).
my $mount;
sub cgroup_mount {
    return $mount if defined $mount;
    open my $fh, '<', '/proc/self/mountinfo' or return undef;
    while (my $line = <$fh>) {
        my @f = split / /, $line;
        my ($i) = grep { $f[$_] eq '-' } 0 .. $#f;
        return $mount = $f[4] if defined $i && $f[$i + 1] eq 'cgroup2';
    }
    return undef;
}

# The content of FILE of cgroup $cg without the final newline, or undef.
sub cg_read {
    my ($cg, $file) = @_;
    my $text = slurp((cgroup_mount() // '/sys/fs/cgroup') . "$cg/$file") // return undef;
    chomp $text;
    return $text;
}

# A flat-keyed cgroup file (cpu.stat, memory.events, cgroup.events: "key
# value" lines) as a hash; empty if it cannot be read.
sub cg_keys {
    my ($cg, $file) = @_;
    my $text = cg_read($cg, $file) // return {};
    return { map { /^(\S+)\s+(\S+)/ ? ($1 => $2) : () } split /\n/, $text };
}

# The names of the cgroups directly below $cg, sorted.
sub cgroup_dirs {
    my ($cg) = @_;
    my $dir = (cgroup_mount() // '/sys/fs/cgroup') . $cg;
    opendir my $dh, $dir or return ();
    my @names = sort grep { !/^\./ && -d "$dir/$_" } readdir $dh;
    return @names;
}

# The pids in $cg's own cgroup.procs, sorted (none if it is gone).
sub cgroup_procs {
    my ($cg) = @_;
    my $text = cg_read($cg, 'cgroup.procs') // return ();
    my @pids = sort { $a <=> $b } grep { /^\d+$/ } split /\n/, $text;
    return @pids;
}

# Every pid in $cg and in the cgroups below it, sorted.
sub cgroup_pids {
    my ($cg) = @_;
    my @pids;
    my @todo = ($cg);
    while (defined(my $c = shift @todo)) {
        push @pids, cgroup_procs($c);
        push @todo, map { "$c/$_" } cgroup_dirs($c);
    }
    my @sorted = sort { $a <=> $b } @pids;
    return @sorted;
}

1;
