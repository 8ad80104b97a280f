#!/usr/bin/perl
# Bash completion (contrib/corralctl.bash): commands, options, the pools of
# the running corrald and, after POOL/, its worker ids; nothing from a
# corrald that is not running.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use Test::More;

my $bash = -x '/bin/bash' ? '/bin/bash' : undef;
plan skip_all => 'bash is needed to run the completion' unless $bash;

my $t = CorralTest->new(config => <<'EOF');
pool "web" { command = "/bin/sleep 1000", workers = 2, env_inherit = { "CORRAL_TEST_DIR" } }
pool "jobs-2" { command = "/bin/sleep 1000", workers = 1, env_inherit = { "CORRAL_TEST_DIR" } }
EOF
$t->start;
$t->wait_for(sub { $t->workers('web') == 2 && $t->workers('jobs-2') == 1 }, 10, 'pools up');

my $completion = "$FindBin::Bin/../contrib/corralctl.bash";
my $ctl = $ENV{CORRALCTL} // ($CorralTest::CORRALD =~ s{corrald$}{corralctl}r);
my $sock = $t->path('control.sock');

# Completes the words of a command line (the last one may be partial) and
# returns the candidates, sorted.
sub complete_words {
    my (@words) = @_;
    my $line = join ' ', map { "'$_'" } @words;
    my $script = <<"SH";
source '$completion'
COMP_WORDS=($line)
COMP_CWORD=\$(( \${#COMP_WORDS[@]} - 1 ))
COMP_LINE="\${COMP_WORDS[*]}"
COMP_POINT=\${#COMP_LINE}
_corralctl corralctl "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "\${COMPREPLY[@]}"
SH
    open my $fh, '-|', $bash, '-c', $script or die "bash: $!";
    my @out = grep { length } map { chomp; $_ } <$fh>;
    close $fh;
    return sort @out;
}

my @cmds = complete_words($ctl, '');
ok((grep { $_ eq 'status' } @cmds) && (grep { $_ eq 'restart' } @cmds) && (grep { $_ eq 'freeze' } @cmds),
   'commands are completed') or diag "got: @cmds";
is_deeply([ complete_words($ctl, 're') ], [ 'reload', 'restart' ], 'a partial command');
ok((grep { $_ eq '--socket' } complete_words($ctl, '--')), 'options are completed');

is_deeply([ complete_words($ctl, '-s', $sock, 'scale', '') ], [ 'jobs-2', 'web' ],
          'pool names come from the running corrald (-s)');
{
    local $ENV{CORRAL_SOCKET} = $sock;
    is_deeply([ complete_words($ctl, 'stop', 'w') ], [ 'web' ], 'and with CORRAL_SOCKET');
}
my @ids = complete_words($ctl, '-s', $sock, 'restart', 'web/');
is_deeply(\@ids, [ 'web/1', 'web/2' ], 'worker ids after POOL/') or diag "got: @ids";
is_deeply([ complete_words($ctl, '-s', $t->path('nothing.sock'), 'stop', '') ], [],
          'nothing from a corrald that is not running');

$t->done;
