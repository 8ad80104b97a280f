#!/usr/bin/perl
# Where workers' stdout and stderr go: output = "null" (/dev/null), a file
# (appended to, created 0640, both streams, every worker, through a pipe
# corrald reads), "inherit" and "auto" without a journal (corrald's own
# stderr, each line prefixed "pool/id | ", through a pipe too), a file
# that cannot be opened (an error naming it, as an exec failure). "journal" needs journald,
# which only the VM suite has. Bad values are config errors.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;

my $inherit = 'env_inherit = { "CORRAL_TEST_DIR" }';
# prints a line to each stream, then sleeps
sub say_both {
    my ($tag) = @_;
    return qq{{ "/bin/sh", "-c", "echo \\"out $tag \$CORRAL_WORKER\\"; echo \\"err $tag \$CORRAL_WORKER\\" >&2; exec /bin/sleep 1000" }};
}

my $t = CorralTest->new(config => <<"EOF");
pool "null" { command = ${\ say_both('null')}, output = "null", $inherit }
pool "file" { command = ${\ say_both('file')}, output = "%TMP%/file.log", workers = 2, $inherit }
pool "inherit" { command = ${\ say_both('inherit')}, output = "inherit", $inherit }
pool "auto" { command = ${\ say_both('auto')}, $inherit }
pool "badfile" {
  command = ${\ say_both('badfile')}, output = "%TMP%/no-such-dir/x.log", $inherit,
  crash_limit = { failures = 0 }, backoff = { initial = "200ms", max = "1s" },
}
EOF
$t->write_file('file.log', "written before\n", 0600);
$t->start;

$t->wait_for(sub { $t->workers('null') == 1 && $t->workers('file') == 2 && $t->workers('inherit') == 1 && $t->workers('auto') == 1 },
             10, 'workers up');

# null
my ($null) = $t->workers('null');
is(readlink("/proc/$null/fd/1"), '/dev/null', 'null: stdout is /dev/null');
is(readlink("/proc/$null/fd/2"), '/dev/null', 'null: stderr is /dev/null');

# a file: both streams of both workers, appended
my $file = $t->path('file.log');
for my $w ($t->workers('file')) {
    like(readlink("/proc/$w/fd/1"), qr/^pipe:/, "file: worker $w stdout is a pipe to corrald");
    is(readlink("/proc/$w/fd/2"), readlink("/proc/$w/fd/1"), "file: worker $w stderr is the same pipe");
}
$t->wait_for(sub {
    my $text = CorralTest::slurp($file) // '';
    !grep { index($text, "$_\n") < 0 } 'out file 1', 'err file 1', 'out file 2', 'err file 2';
}, 10, 'file: stdout and stderr of both workers land in the file');
like(CorralTest::slurp($file), qr/\Awritten before\n/, 'file: appended to, what was there is kept');
is((stat $file)[2] & 07777, 0600, 'file: an existing file keeps its mode');

# inherit, and auto without a journal: corrald's stderr (here the log),
# through a pipe, each line with its time and "pool/id | "
for my $pool (qw(inherit auto)) {
    my ($w) = $t->workers($pool);
    like(readlink("/proc/$w/fd/1"), qr/^pipe:/, "$pool: stdout is a pipe to corrald");
    is(readlink("/proc/$w/fd/2"), readlink("/proc/$w/fd/1"), "$pool: stderr is the same pipe");
    $t->wait_log(qr/^\S+ $pool\/1 \| out $pool 1$/);
    $t->wait_log(qr/^\S+ $pool\/1 \| err $pool 1$/);
}
ok(!$t->log_lines(qr/(out|err) (null|file) /), 'null and file output stay out of corrald\'s log');

# a file that cannot be opened: the worker fails before exec, and says why
$t->wait_log(qr/ error unable to open the output: No such file or directory pool=badfile worker=1 pid=\d+$/);
$t->wait_log(qr/ warn worker exited with status 127 pool=badfile worker=1 pid=\d+$/);
ok(!$t->log_lines(qr/badfile 1$/), 'badfile: the command never ran');

# a new file is created 0640; a reload moving the output replaces the workers
my $new = $t->path('new.log');
(my $conf = CorralTest::slurp($t->conf)) =~ s{output = "\Q$file\E"}{output = "$new"};
$t->write_config($conf);
my @old = $t->workers('file');
my $rmark = $t->mark;
$t->reload;
$t->wait_log(qr/ info reload done: /, since => $rmark);
# settled once ids are 1 and 2: a surge worker of the rolling replacement
# (a temporary id) may still be there when the old workers are gone
$t->wait_for(sub {
    my %o = map { $_ => 1 } @old;
    my @w = $t->workers('file');
    @w == 2 && !grep({ $o{$_} } @w) && $t->ids_settled('file', 2);
}, 10, 'reload: the file pool\'s workers were replaced');
my @ids = (1, 2);
# the old workers are gone: what the old file holds now is final, unless a
# new worker writes to it (ids are reused, so the lines cannot tell)
my $old_text = CorralTest::slurp($file);
$t->wait_for(sub {
    my $text = CorralTest::slurp($new) // '';
    !grep { index($text, "$_\n") < 0 } map { ("out file $_", "err file $_") } @ids;
}, 10, "reload: the new workers (@ids) write to the new file");
is((stat $new)[2] & 07777, 0640, 'a new output file is created with mode 0640');
is(CorralTest::slurp($file), $old_text, 'reload: nothing of the new workers in the old file');

$t->check_invariants;

# journal: only where journald runs
SKIP: {
    skip 'journald is not running here (no /run/systemd/journal/stdout); the VM suite covers output = "journal"', 1
        unless -S '/run/systemd/journal/stdout';
    my $j = CorralTest->new(config => <<"EOF");
pool "j" { command = ${\ say_both('journal')}, output = "journal", syslog_identifier = "corral-test-j", $inherit }
EOF
    $j->start;
    $j->wait_for(sub { $j->workers('j') == 1 }, 10, 'journal: worker up');
    my ($w) = $j->workers('j');
    like(readlink("/proc/$w/fd/1") // '', qr/^socket:/, 'journal: stdout is a stream socket to journald');
    ok(!$j->log_lines(qr/journal 1$/), 'journal: output not in corrald\'s log');
    $j->check_invariants;
}

# bad values are config errors
my $c = CorralTest->new;
for my $case (
    [ 'output = "relative/path"', qr/output: expected "auto", "journal", "inherit", "null" or an absolute file path, got "relative\/path"/ ],
    [ 'output = 1', qr/output: expected / ],
    [ 'syslog_identifier = "has space"', qr/syslog_identifier: expected a short name without spaces/ ],
    [ 'syslog_identifier = ""', qr/syslog_identifier: expected a short name without spaces/ ],
) {
    my ($line, $re) = @$case;
    $c->write_config(qq{pool "p" { command = "/bin/sleep 1", $line }\n});
    my $r = $c->run_check;
    is($r->{code}, 1, "config: $line: exit 1");
    like($r->{err}, $re, "config: $line: says what is wrong");
}

CorralTest->done;
