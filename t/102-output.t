#!/usr/bin/perl
# Logs worth reading. corrald's lines start with the date and time (RFC
# 3339, milliseconds, the offset); with output = "inherit", each line a
# worker writes comes in corrald's stderr as "TIME pool/id | line", its
# control characters escaped (UTF-8 and tab kept), and a last line without
# its newline comes when the worker ends. An output file is opened again
# on SIGUSR1 (logrotate): after a rename, the old file has the lines until
# then and the new one the rest, none lost. A worker flooding its output
# while corrald's stderr is a pipe nobody reads does not stop corrald: it
# answers the control socket, and the worker waits (nothing is lost).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Fcntl qw(O_RDONLY O_NONBLOCK);
use POSIX qw(mkfifo);
use Test::More;

my $TS = qr/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:Z|[+-]\d\d:\d\d)/;

# --- inherit: attributed, escaped, partial lines --------------------------

my $t = CorralTest->new(config => <<'EOF');
pool "web" {
  command = { "/bin/sh", "-c",
    "echo \"hello from $CORRAL_WORKER\"; printf 'evil \\033]0;title\\007 \\033[2J caf\\303\\251\\tend\\n' >&2; exec /bin/sleep 1000" },
  workers = 2, output = "inherit",
}
pool "part" { command = { "/bin/sh", "-c", "printf 'no newline'; exec /bin/sleep 1000" }, output = "inherit" }
pool "long" { command = { "/bin/sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x; echo; exec /bin/sleep 1000" }, output = "inherit" }
EOF
$t->start;
$t->wait_log(qr/^$TS info corrald \S+ starting /, name => 'corrald\'s lines start with the date, time and offset');
for my $id (1, 2) {
    $t->wait_log(qr/^$TS web\/$id \| hello from $id$/, name => "worker $id: its line, prefixed web/$id");
    $t->wait_log(qr/^$TS web\/$id \| evil \\e\]0;title\\x07 \\e\[2J caf\x{c3}\x{a9}\tend$/,
                 name => "worker $id: escapes escaped, UTF-8 and tab kept");
}
ok(!$t->log_lines(qr/web\/1 \| hello from 2|web\/2 \| hello from 1/), 'each line is its worker\'s');
$t->wait_log(qr/^$TS long\/1 \| x{904}$/, name => 'long: the end of a line of 5000 bytes');
is(scalar $t->log_lines(qr/^$TS long\/1 \| x{4096}$/), 1, 'long: cut after 4096 bytes, each part prefixed');
ok($t->log !~ /\e|\a/, 'no escape or bell byte reached the log');
$t->wait_for(sub { $t->workers('part') == 1 }, 10, 'part: its worker runs');
ok(!$t->log_lines(qr/no newline/), 'part: a line without newline waits for the rest');
my $mark = $t->mark;
is($t->ctl('stop', 'part')->{code}, 0, 'part: stopped');
$t->wait_log(qr/^$TS part\/1 \| no newline$/, since => $mark, name => 'part: the last line comes when it ends');
$t->check_invariants;

# --- a file, reopened on SIGUSR1 --------------------------------------------

my $f = CorralTest->new(config => <<'EOF');
pool "ticker" {
  command = { "/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo \"tick $i\"; sleep 0.02; done" },
  output = "%TMP%/out.log",
}
pool "split" {
  command = { "/bin/sh", "-c", "while :; do printf \"begin $CORRAL_WORKER \"; sleep 0.005; echo \"end $CORRAL_WORKER\"; done" },
  workers = 2, output = "%TMP%/split.log",
}
EOF
$f->start;
my ($out, $old) = ($f->path('out.log'), $f->path('out.log.1'));
# the numbers of the ticks in a file, and whether every line is whole
sub ticks {
    my ($path) = @_;
    my $text = CorralTest::slurp($path) // '';
    return ([ $text =~ /^tick (\d+)$/mg ], $text =~ /\A(?:tick \d+\n)*\z/ ? 1 : 0);
}
$f->wait_for(sub { @{ (ticks($out))[0] } >= 3 }, 10, 'the worker\'s lines are in the file');
rename $out, $old or die "rename: $!";
$mark = $f->mark;
$f->signal('USR1');
$f->wait_log(qr/ info reopened 2 output files$/, since => $mark, name => 'SIGUSR1: corrald says it reopened both files');
$f->wait_for(sub { @{ (ticks($out))[0] } >= 3 }, 10, 'new lines go to a new file');
my ($a, $a_whole) = ticks($old);
my ($b, $b_whole) = ticks($out);
ok($a_whole && $b_whole, 'both files hold whole lines only');
is($b->[0], $a->[-1] + 1, "the new file goes on where the old one ended (tick $a->[-1], then $b->[0])");
is_deeply($a, [ 1 .. $a->[-1] ], 'the old file has every earlier line');
is((stat $out)[2] & 07777, 0640, 'the new file is created 0640');
# two workers, each writing its lines in two parts: whole lines in the file
my $split = $f->path('split.log');
$f->wait_for(sub { my $n = () = (CorralTest::slurp($split) // '') =~ /\n/g; $n >= 100 }, 10, 'split: lines of both workers');
my $text = CorralTest::slurp($split);
$text =~ s/[^\n]*\z//;
my @bad = grep { !/^begin (\d) end \1$/ } split /\n/, $text;
ok(!@bad, 'split: each line whole, of one worker (' . scalar(() = $text =~ /\n/g) . ' lines)') or diag(join "\n", @bad[0 .. ($#bad < 5 ? $#bad : 5)]);
ok($text =~ /^begin 1 /m && $text =~ /^begin 2 /m, 'split: both workers wrote');
$f->check_invariants;

# --- a flood into a pipe nobody reads -----------------------------------------

my $s = CorralTest->new(config => <<'EOF');
pool "flood" { command = { "/bin/sh", "-c", "exec yes 'flooding the terminal'" }, output = "inherit" }
pool "calm" { command = "/bin/sleep 1000" }
EOF
my $fifo = $s->path('stderr.fifo');
mkfifo($fifo, 0600) or die "mkfifo: $!";
sysopen(my $reader, $fifo, O_RDONLY | O_NONBLOCK) or die "open $fifo: $!";
$s->{wrap} = [ '/bin/sh', '-c', 'exec "$@" >"$0" 2>&1', $fifo ];
$s->start;
$s->wait_for(sub { $s->workers('flood') == 1 && $s->workers('calm') == 1 }, 10, 'flood: workers up');
# the pipe is full long before this: nobody reads it
$s->wait_for(sub { my $w = ($s->workers('flood'))[0]; $w && (CorralTest::slurp("/proc/$w/wchan") // '') =~ /pipe/ },
             10, 'flood: the flooding worker waits on its pipe to corrald');
for my $i (1 .. 3) {
    my $r = $s->ctl('status', { timeout => 5 });
    ok(!$r->{timeout} && $r->{code} == 0 && $r->{out} =~ /flood/, "flood: corrald still answers ($i)");
}
my $r = $s->ctl('restart', 'calm', { timeout => 5 });
is($r->{code}, 0, 'flood: and still runs its pools');
# reading the pipe again lets everything through, attributed
my $got = '';
my $t0 = time;
while (time - $t0 < 10 && $got !~ / info worker started pool=calm .*\n(?s:.*)flood\/1 \| flooding the terminal\n/) {
    my $n = sysread($reader, my $buf, 65536);
    $got .= $buf if $n;
    $got = substr($got, -200000) if length $got > 400000;
    select(undef, undef, undef, 0.01) unless $n;
}
ok($got =~ /^$TS flood\/1 \| flooding the terminal$/m, 'flood: its lines come once the pipe is read');
ok($got =~ / info worker started pool=calm /, 'flood: corrald\'s own lines too');
$s->signal('TERM');
# its exit is read on while the pipe is drained
my $code;
$t0 = time;
while (time - $t0 < 15) {
    my $n = sysread($reader, my $buf, 65536);
    $got .= $buf if $n;
    $got = substr($got, -200000) if length $got > 400000;
    my $pid = waitpid($s->pid, POSIX::WNOHANG());
    if ($pid == $s->pid) { $code = $? >> 8; last }
    select(undef, undef, undef, 0.01);
}
is($code, 0, 'flood: corrald stops with exit 0');
while (sysread($reader, my $buf, 65536)) { $got .= $buf }
ok($got !~ /ERROR: AddressSanitizer|runtime error:|LeakSanitizer| alert /, 'flood: no alert, no sanitizer report');
$s->{pid} = undef;
close $s->{stdin} if $s->{stdin};
$s->{stdin} = undef;

$t->done;
