#!/usr/bin/perl
# The completions of corralctl for bash, zsh and fish (contrib/
# corralctl.bash, .zsh, .fish): each parses, offers exactly the commands
# that `corralctl help` lists (one list, corralctl's, that all three must
# follow), options, the pools of the running corrald and, after POOL/,
# its worker ids, after `plugin` the plugins and their commands (from
# `corralctl plugins`); nothing from a corrald that is not running. A shell
# that is not installed is skipped (contrib/install-deps test installs
# all three).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest;
use File::Temp qw(tempdir);
use Test::More;

my %shell = map { my $p = CorralTest::find_program($_); $p ? ($_ => $p) : () } qw(bash zsh fish);
plan skip_all => 'none of bash, zsh and fish is installed' unless %shell;

my $t = CorralTest->new(config => <<'EOF');
pool "web" { command = "/bin/sleep 1000", workers = 2, env_inherit = { "CORRAL_TEST_DIR" } }
pool "jobs-2" { command = "/bin/sleep 1000", workers = 1, env_inherit = { "CORRAL_TEST_DIR" } }
plugin "probe" {}
EOF
$t->write_file('plugins/probe.lua', <<'EOF');
corral.command("count", { read_only = true }, function() return {} end)
corral.command("bump", { args = { by = "integer" } }, function() return {} end)
EOF
$t->start;
$t->wait_for(sub { $t->workers('web') == 2 && $t->workers('jobs-2') == 1 }, 10, 'pools up');

my $contrib = "$FindBin::Bin/../contrib";
my $ctl = $ENV{CORRALCTL} // ($CorralTest::CORRALD =~ s{corrald$}{corralctl}r);
my $sock = $t->path('control.sock');
my $tmp = tempdir('corral-t045-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# corralctl's own list of its commands: the words its usage lists, and help
my @COMMANDS = do {
    my $help = `'$ctl' help 2>&1`;
    sort('help', $help =~ /^  ([a-z-]+)\s/mg);
};
cmp_ok(scalar(@COMMANDS), '>=', 10, "corralctl help lists its commands: @COMMANDS");

sub write_text {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh or die "$path: $!";
}

sub slurp_lines {
    my ($cmd) = @_;
    open my $fh, '-|', @$cmd or die "$cmd->[0]: $!";
    my @out = grep { length } map { chomp; $_ } <$fh>;
    close $fh;
    return @out;
}

# Each shell: the candidates for a command line whose last word (maybe
# empty) is being completed, sorted and without duplicates.
sub uniq_sorted { my %s; return sort grep { !$s{$_}++ } @_ }

my %complete = (
    bash => sub {
        my (@words) = @_;
        my $line = join ' ', map { "'$_'" } @words;
        my $script = <<"SH";
source '$contrib/corralctl.bash'
COMP_WORDS=($line)
COMP_CWORD=\$(( \${#COMP_WORDS[@]} - 1 ))
COMP_LINE="\${COMP_WORDS[*]}"
COMP_POINT=\${#COMP_LINE}
_corralctl corralctl "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "\${COMPREPLY[@]}"
SH
        return uniq_sorted(slurp_lines([ $shell{bash}, '-c', $script ]));
    },
    # an interactive zsh on a pseudo-terminal (zsh/zpty) gets the line and
    # a TAB; compadd, wrapped, writes the matches to a file
    zsh => sub {
        my (@words) = @_;
        my $out = "$tmp/zsh.out";
        unlink $out;
        local $ENV{CORRAL_COMP_FILE} = "$contrib/corralctl.zsh";
        local $ENV{CORRAL_COMP_OUT} = $out;
        local $ENV{CORRAL_COMP_SETUP} = "$tmp/setup.zsh";
        system('timeout', '30', $shell{zsh}, '-f', "$tmp/drive.zsh", join(' ', @words));
        open my $fh, '<', $out or return ('(no answer from zsh)');
        return uniq_sorted(grep { length && $_ ne '__END__' } map { chomp; $_ } <$fh>);
    },
    fish => sub {
        my (@words) = @_;
        my $line = join ' ', @words;
        my @out = slurp_lines([ $shell{fish}, '-N', '-c',
                                "source '$contrib/corralctl.fish'; complete -C '$line'" ]);
        return uniq_sorted(map { (split /\t/)[0] } @out);
    },
);

write_text("$tmp/setup.zsh", <<'EOF') if $shell{zsh};
PS1='' PROMPT='' RPROMPT=''
# installed (_corralctl in $fpath, autoloaded), or sourced after compinit
[[ -n $CORRAL_COMP_FPATH ]] && fpath=($CORRAL_COMP_FPATH $fpath)
autoload -Uz compinit && compinit -u -D
[[ -n $CORRAL_COMP_FPATH ]] || source $CORRAL_COMP_FILE
compadd() {
	local -a __m
	local __a
	for __a in "$@"; do
		[[ $__a == -[OAD]* ]] && { builtin compadd "$@"; return }
		[[ $__a == - || $__a == -- ]] && break
	done
	builtin compadd -O __m "$@"
	(( $#__m )) && print -rl -- "${__m[@]}" >>$CORRAL_COMP_OUT
	builtin compadd "$@"
}
__corral_comp_end() { print -r -- __END__ >>$CORRAL_COMP_OUT }
comppostfuncs=(__corral_comp_end)
EOF
write_text("$tmp/drive.zsh", <<'EOF') if $shell{zsh};
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "source ${(q)CORRAL_COMP_SETUP}"
zpty -w -n z "$1"$'\t'
# zle drops what is typed ahead while it completes: wait for the end
for i in {1..400}; do
	[[ -f $CORRAL_COMP_OUT && $(<$CORRAL_COMP_OUT) == *__END__* ]] && break
	sleep 0.05
done
zpty -w z $'\C-u'"print -r -- __DO''NE__"
zpty -r z out '*__DONE__*'
zpty -d z
EOF

my %parse = (
    bash => [ 'bash', '-n' ],
    zsh => [ 'zsh', '-n' ],
    fish => [ 'fish', '--no-execute' ],
);

for my $sh (qw(bash zsh fish)) {
  SKIP: {
    skip "$sh is not installed", 12 unless $shell{$sh};
    my $c = $complete{$sh};
    my $file = "$contrib/corralctl.$sh";
    is(system(@{ $parse{$sh} }, $file), 0, "$sh: contrib/corralctl.$sh parses");
    my @cmds = $c->($ctl, '');
    is_deeply(\@cmds, \@COMMANDS, "$sh: the commands are corralctl help's") or diag "got: @cmds";
    is_deeply([ $c->($ctl, 're') ], [ 'reload', 'restart' ], "$sh: a partial command");
    my @opts = $c->($ctl, '--');
    ok((grep { $_ eq '--socket' } @opts) && (grep { $_ eq '--json' } @opts), "$sh: options are completed")
        or diag "got: @opts";
    is_deeply([ $c->($ctl, 'restart', '--') ], [ '--all-at-once', '--json', '--no-wait', '--timeout' ], "$sh: restart's options");
    is_deeply([ $c->($ctl, '-s', $sock, 'scale', '') ], [ 'jobs-2', 'web' ],
              "$sh: pool names come from the running corrald (-s)");
    {
        local $ENV{CORRAL_SOCKET} = $sock;
        is_deeply([ $c->($ctl, 'stop', 'w') ], [ 'web' ], "$sh: and with CORRAL_SOCKET");
    }
    my @ids = $c->($ctl, '-s', $sock, 'restart', 'web/');
    is_deeply(\@ids, [ 'web/1', 'web/2' ], "$sh: worker ids after POOL/") or diag "got: @ids";
    is_deeply([ $c->($ctl, '-s', $sock, 'signal', 'web', 'US') ], [ 'USR1', 'USR2' ], "$sh: signal names");
    is_deeply([ $c->($ctl, '-s', $sock, 'plugin', '') ], [ 'probe' ], "$sh: plugin names after plugin");
    is_deeply([ $c->($ctl, '-s', $sock, 'plugin', 'probe', '') ], [ 'bump', 'count' ], "$sh: a plugin's commands");
    is_deeply([ $c->($ctl, '-s', $t->path('nothing.sock'), 'stop', '') ], [],
              "$sh: nothing from a corrald that is not running");
  }
}

SKIP: {
    skip 'zsh is not installed', 1 unless $shell{zsh};
    # as make install puts it: _corralctl in a directory of $fpath
    mkdir "$tmp/fpath" or die "mkdir: $!";
    system('cp', "$contrib/corralctl.zsh", "$tmp/fpath/_corralctl") == 0 or die 'cp';
    local $ENV{CORRAL_COMP_FPATH} = "$tmp/fpath";
    is_deeply([ $complete{zsh}->($ctl, '-s', $sock, 'stop', '') ], [ 'jobs-2', 'web' ],
              'zsh: installed as _corralctl in $fpath, compinit finds it');
}

$t->done;
