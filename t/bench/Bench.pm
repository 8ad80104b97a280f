package Bench;

# What the benchmarks in t/bench share: running a corrald on a config in
# a temporary directory, reading the times and lines of its log, medians.

use strict;
use warnings;
use Exporter qw(import);
use Time::HiRes qw(sleep time);
use Time::Local ();

our @EXPORT_OK = qw(median ms_of wait_log write_config start_corrald stop_corrald);

sub median { my @s = sort { $a <=> $b } @_; return $s[int(@s / 2)] }

# Milliseconds since the epoch of a log line
# "2026-12-05T14:45:01.123+01:00 LEVEL ..." (RFC 3339, local).
sub ms_of {
    my ($line) = @_;
    $line =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|([+-])(\d\d):(\d\d)) /
        or die "no time in: $line";
    my $off = $8 eq 'Z' ? 0 : ($9 eq '-' ? -1 : 1) * ($10 * 3600 + $11 * 60);
    return (Time::Local::timegm($6, $5, $4, $3, $2 - 1, $1) + ($7 // 0) - $off) * 1000;
}

# The first line of $log matching $re; dies after $timeout seconds.
sub wait_log {
    my ($log, $re, $timeout) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        if (open my $fh, '<', $log) {
            while (my $l = <$fh>) { return $l if $l =~ $re }
        }
        sleep 0.02;
    }
    die "timeout waiting for $re in $log\n";
}

# Writes $text to $path atomically (a reload never reads half a config).
sub write_config {
    my ($path, $text) = @_;
    open my $fh, '>', "$path.new" or die "$path.new: $!";
    print $fh $text;
    close $fh or die;
    rename "$path.new", $path or die "rename: $!";
}

# Starts CORRALD ARGS with stdout and stderr to $log; returns its pid.
sub start_corrald {
    my ($log, @cmd) = @_;
    my $pid = fork // die;
    if ($pid == 0) {
        open STDOUT, '>', $log or die;
        open STDERR, '>&', \*STDOUT or die;
        exec { $cmd[0] } @cmd or die "exec: $!";
    }
    return $pid;
}

# Stops the corrald started as $pid; dies unless it exits with 0.
sub stop_corrald {
    my ($pid) = @_;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    die "corrald exited with $?\n" if $?;
}

1;
