#!/usr/bin/perl
# Layering: no circle between corrald's modules. Which object file calls
# which is read from the built objects themselves with nm: A.o -> B.o when
# A.o has an undefined symbol that B.o defines (a call or an address taken,
# of a function or of data). Symbols no daemon object defines (libc, libev,
# LuaJIT, the sanitizer runtime) are not edges. The module graph is printed
# as diag; every strongly connected component of more than one module is a
# cycle, and the test fails naming its modules, each circular path through
# them (a -> b -> c -> a) and the symbols on every arrow.
#
# The objects are those beside $CORRALD (build/ by default, build/asan/
# for the sanitized build): every *.o made from a daemon/*.c except
# corralctl.o (not part of corrald); anything else there (a test helper, an
# object of a source since removed) is skipped. Each module's source must
# say what it owns: a comment block in its first lines.
#
# The graph and cycle logic (objects_in, object_graph, sccs, cycles_in) works
# on any directory of .o files and is checked first on small fixtures.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(find_program);
use Cwd ();
use File::Basename qw(basename dirname);
use File::Temp qw(tempdir);
use Test::More;

my $NM = find_program('nm');
my $CC = find_program('cc');
plan skip_all => 'nm not installed (Debian package binutils; make test-deps installs it)' unless $NM;

my $ROOT = Cwd::abs_path("$FindBin::Bin/..");
my $SRC = "$ROOT/daemon";

# --- the graph, on any directory of objects ------------------------------

# nm's symbol types: uppercase is global. Defined: absolute, bss, common,
# data, small data, indirect function, read-only, text, weak (V, W), GNU
# unique (u). Undefined: U, and the weak undefined v and w.
my %DEFINES = map { $_ => 1 } qw(A B C D G I R S T V W u i);
my %NEEDS = map { $_ => 1 } qw(U v w);

# { defined => { SYM => 1 }, undefined => { SYM => 1 } } of one object.
sub nm_symbols {
    my ($obj) = @_;
    my %s = (defined => {}, undefined => {});
    open my $fh, '-|', $NM, '-P', '--no-sort', $obj or die "$NM $obj: $!";
    while (my $line = <$fh>) {
        # POSIX format: NAME TYPE [VALUE SIZE]
        my ($name, $type) = split ' ', $line or next;
        next unless defined $type;
        if ($DEFINES{$type}) { $s{defined}{$name} = 1 }
        elsif ($NEEDS{$type}) { $s{undefined}{$name} = 1 }
    }
    close $fh or die "$NM $obj failed (status $?)\n";
    return \%s;
}

# The module name of an object: its file name less ".o".
sub module_of { basename($_[0]) =~ s/\.o\z//r }

# The objects of $dir (sorted): every *.o, less the modules in $opt{skip};
# with $opt{sources}, only those made from a $opt{sources}/NAME.c.
# In list context also the skipped ones, as a second array ref.
sub objects_in {
    my ($dir, %opt) = @_;
    my %skip = map { $_ => 1 } @{ $opt{skip} || [] };
    my (@objs, @skipped);
    for my $obj (sort glob "$dir/*.o") {
        my $m = module_of($obj);
        if ($skip{$m} || ($opt{sources} && !-f "$opt{sources}/$m.c")) {
            push @skipped, $obj;
            next;
        }
        push @objs, $obj;
    }
    return wantarray ? (\@objs, \@skipped) : \@objs;
}

# The module graph of a list of objects: { nodes => [ MODULES ],
# edges => { A => { B => [ SYMS ] } }, definers => { SYM => [ MODULES ] } }.
# Only symbols defined by one of the objects count; a module's use of its
# own symbol is no edge.
sub object_graph {
    my (@objs) = @_;
    my (%sym, %definers, %edges);
    for my $obj (@objs) {
        my $m = module_of($obj);
        $sym{$m} = nm_symbols($obj);
        push @{ $definers{$_} }, $m for keys %{ $sym{$m}{defined} };
    }
    for my $x (sort keys %sym) {
        $edges{$x} //= {};
        for my $s (sort keys %{ $sym{$x}{undefined} }) {
            for my $y (@{ $definers{$s} || [] }) {
                next if $y eq $x;
                push @{ $edges{$x}{$y} }, $s;
            }
        }
    }
    return { nodes => [ sort keys %sym ], edges => \%edges, definers => \%definers };
}

# The edge list, one line per arrow: "a -> b (sym1, sym2)".
sub graph_lines {
    my ($g) = @_;
    my @lines;
    for my $x (@{ $g->{nodes} }) {
        for my $y (sort keys %{ $g->{edges}{$x} }) {
            push @lines, "$x -> $y (" . join(', ', @{ $g->{edges}{$x}{$y} }) . ")";
        }
    }
    return @lines;
}

# Strongly connected components (Tarjan), each a sorted list of modules;
# only those of more than one module (a module calling itself is no cycle).
# Sorted by their first module.
sub sccs {
    my ($g) = @_;
    my ($index, @stack, %on, %idx, %low, @found) = (0);
    my $visit;
    $visit = sub {
        my ($v) = @_;
        $idx{$v} = $low{$v} = $index++;
        push @stack, $v;
        $on{$v} = 1;
        for my $w (sort keys %{ $g->{edges}{$v} || {} }) {
            if (!exists $idx{$w}) {
                $visit->($w);
                $low{$v} = $low{$w} if $low{$w} < $low{$v};
            } elsif ($on{$w}) {
                $low{$v} = $idx{$w} if $idx{$w} < $low{$v};
            }
        }
        if ($low{$v} == $idx{$v}) {
            my @c;
            while (1) {
                my $w = pop @stack;
                $on{$w} = 0;
                push @c, $w;
                last if $w eq $v;
            }
            push @found, [ sort @c ] if @c > 1;
        }
    };
    $visit->($_) for grep { !exists $idx{$_} } @{ $g->{nodes} };
    undef $visit;
    return sort { $a->[0] cmp $b->[0] } @found;
}

# The shortest path from $from to $to inside the module set $in (BFS):
# [ $from, ..., $to ], or undef.
sub shortest_path {
    my ($g, $from, $to, $in) = @_;
    my %prev = ($from => undef);
    my @queue = ($from);
    while (@queue) {
        my $v = shift @queue;
        if ($v eq $to) {
            my @path = ($v);
            unshift @path, $v while defined($v = $prev{$v});
            return \@path;
        }
        for my $w (sort keys %{ $g->{edges}{$v} || {} }) {
            next if !$in->{$w} || exists $prev{$w};
            $prev{$w} = $v;
            push @queue, $w;
        }
    }
    return undef;
}

# Circular paths through one component, together using every arrow in it:
# for each arrow a -> b, a -> b then the shortest way back from b to a.
# Each is a list of modules, first == last, rotated to start at its least
# module; no path twice.
sub cycles_in {
    my ($g, $scc) = @_;
    my %in = map { $_ => 1 } @$scc;
    my (%seen, @cycles);
    for my $x (@$scc) {
        for my $y (sort grep { $in{$_} } keys %{ $g->{edges}{$x} || {} }) {
            my $back = shortest_path($g, $y, $x, \%in) or next;
            my @ring = ($x, @$back[0 .. $#$back - 1]);    # a b ... (a not repeated)
            my ($min) = sort { $ring[$a] cmp $ring[$b] } 0 .. $#ring;
            @ring = (@ring[$min .. $#ring], @ring[0 .. $min - 1]);
            my $key = join ' ', @ring;
            next if $seen{$key}++;
            push @cycles, [ @ring, $ring[0] ];
        }
    }
    return sort { @$a <=> @$b || "@$a" cmp "@$b" } @cycles;
}

# "a -> b -> c -> a" then one line per arrow with its symbols.
sub describe_cycle {
    my ($g, $cycle) = @_;
    my @lines = (join ' -> ', @$cycle);
    for my $i (0 .. $#$cycle - 1) {
        my ($x, $y) = @$cycle[ $i, $i + 1 ];
        push @lines, "    $x -> $y: " . join(', ', @{ $g->{edges}{$x}{$y} });
    }
    return @lines;
}

# The whole report of the cycles of a graph: '' when there is none.
sub cycle_report {
    my ($g, $about) = @_;
    my @sccs = sccs($g);
    my @out;
    for my $n (0 .. $#sccs) {
        my $scc = $sccs[$n];
        my %in = map { $_ => 1 } @$scc;
        push @out, sprintf('cycle %d of %d: %d modules call each other in a circle: %s',
                           $n + 1, scalar @sccs, scalar @$scc, join(', ', map { "$_.o" } @$scc));
        if ($about) {
            push @out, "  what they own:";
            push @out, map { "    $_.c: " . ($about->{$_} // '?') } @$scc;
        }
        push @out, "  the arrows that tie them (caller -> callee: symbols):";
        for my $x (@$scc) {
            for my $y (sort grep { $in{$_} } keys %{ $g->{edges}{$x} }) {
                push @out, "    $x -> $y: " . join(', ', @{ $g->{edges}{$x}{$y} });
            }
        }
        push @out, "  circular paths (each arrow of the cycle is on one at least):";
        for my $c (cycles_in($g, $scc)) {
            my ($first, @rest) = describe_cycle($g, $c);
            push @out, "    $first", map { "  $_" } @rest;
        }
    }
    return join "\n", @out;
}

# --- the graph logic, on fixtures ------------------------------------------

SKIP: {
    skip 'no C compiler (cc) for the fixtures', 1 unless $CC;
    subtest 'fixtures: the cycle finder on small objects' => sub {
        my $tmp = tempdir('corral-layering-XXXXXX', TMPDIR => 1, CLEANUP => 1);
        my $build = sub {
            my ($name, %src) = @_;
            my $dir = "$tmp/$name";
            mkdir $dir or die "mkdir $dir: $!";
            for my $m (sort keys %src) {
                open my $fh, '>', "$dir/$m.c" or die "$dir/$m.c: $!";
                print $fh $src{$m};
                close $fh;
                system($CC, '-O0', '-c', '-o', "$dir/$m.o", "$dir/$m.c") == 0
                    or die "cc -c $dir/$m.c failed\n";
            }
            return $dir;
        };

        # a calls b, b calls c, c uses a's data (an address counts too)
        # and libc (no edge); a calls itself (no cycle by itself)
        my $cyc = $build->('cycle',
            a => "int a_count;\nint b(int);\nint a(int n) { return n ? a(n - 1) : b(n); }\n",
            b => "int c(int);\nint b(int n) { return c(n) + 1; }\n",
            c => "#include <stdio.h>\nextern int a_count;\nint *c_ptr(void) { return &a_count; }\n"
               . "int c(int n) { printf(\"%d\", n); return a_count + n; }\n",
            d => "int b(int);\nint d(void) { return b(2); }\n");
        my $g = object_graph(@{ objects_in($cyc) });
        is_deeply($g->{nodes}, [qw(a b c d)], 'four modules');
        is_deeply([ graph_lines($g) ],
                  [ 'a -> b (b)', 'b -> c (c)', 'c -> a (a_count)', 'd -> b (b)' ],
                  'edges: calls and a data reference; libc and recursion are no edges')
            or diag(join "\n", graph_lines($g));
        is_deeply([ sccs($g) ], [ [qw(a b c)] ], 'one cycle: a, b, c (d only calls into it)');
        is_deeply([ cycles_in($g, [qw(a b c)]) ], [ [qw(a b c a)] ], 'its path: a -> b -> c -> a');
        my $report = cycle_report($g);
        like($report, qr/^cycle 1 of 1: 3 modules call each other in a circle: a\.o, b\.o, c\.o$/m,
             'the report names the files');
        like($report, qr/^    a -> b -> c -> a\n      a -> b: b\n      b -> c: c\n      c -> a: a_count$/m,
             'the report prints the path with the symbols on each arrow') or diag($report);

        # skip and sources select the objects
        my ($objs, $skipped) = objects_in($cyc, skip => ['d']);
        is_deeply([ map { module_of($_) } @$objs ], [qw(a b c)], 'skip leaves an object out');
        is_deeply([ map { module_of($_) } @$skipped ], ['d'], '... and says which');
        unlink "$cyc/c.c";
        is_deeply([ map { module_of($_) } @{ objects_in($cyc, sources => $cyc) } ], [qw(a b d)],
                  'sources: an object without its .c is left out');

        # no cycle: a -> b -> c, a -> c
        my $dag = $build->('dag',
            a => "int b(void); int c(void);\nint a(void) { return b() + c(); }\n",
            b => "int c(void);\nint b(void) { return c(); }\n",
            c => "int c_data[4];\nint c(void) { return c_data[0]; }\n");
        $g = object_graph(@{ objects_in($dag) });
        is_deeply([ graph_lines($g) ], [ 'a -> b (b)', 'a -> c (c)', 'b -> c (c)' ], 'a layered set: its edges');
        is_deeply([ sccs($g) ], [], 'a layered set has no cycle');
        is(cycle_report($g), '', '... and an empty report');

        # two separate cycles, one of them with two ways round
        my $two = $build->('two',
            p => "int q(void); int r(void);\nint p(void) { return q() + r(); }\n",
            q => "int p(void);\nint q(void) { return p(); }\n",
            r => "int q(void);\nint r(void) { return q(); }\n",
            x => "int y(void);\nint x(void) { return y(); }\n",
            y => "int x(void);\nint y(void) { return x(); }\n");
        $g = object_graph(@{ objects_in($two) });
        is_deeply([ sccs($g) ], [ [qw(p q r)], [qw(x y)] ], 'two cycles found apart');
        is_deeply([ cycles_in($g, [qw(p q r)]) ], [ [qw(p q p)], [qw(p r q p)] ],
                  'every arrow of a cycle is on one path printed');
        is_deeply([ cycles_in($g, [qw(x y)]) ], [ [qw(x y x)] ], 'x <-> y');
        like(cycle_report($g), qr/^cycle 2 of 2: 2 modules .*: x\.o, y\.o$/m, 'both reported');
    };
}

# --- corrald's objects -------------------------------------------------------

my $dir = dirname($CorralTest::CORRALD);
my ($objs, $skipped) = objects_in($dir, skip => ['corralctl'], sources => $SRC);
if (!ok(scalar(grep { module_of($_) eq 'main' } @$objs) && @$objs >= 2, "corrald's objects found in $dir")) {
    diag("no daemon objects (main.o and others made from daemon/*.c) in $dir, where CORRALD "
         . "($CorralTest::CORRALD) is: build corrald first (make all), and point CORRALD at the "
         . "build directory's corrald, not an installed one");
    done_testing();
    exit;
}
note("objects: " . join(' ', map { basename($_) } @$objs));
note("skipped (corralctl, or no daemon/NAME.c): " . join(' ', map { basename($_) } @$skipped)) if @$skipped;

# Each module says what it owns at its top: "/*" within its first 3 lines.
my %about;
for my $obj (@$objs) {
    my $m = module_of($obj);
    my $c = "$SRC/$m.c";
    SKIP: {
        skip "$m.o: no source $c", 1 unless -f $c;
        open my $fh, '<', $c or die "$c: $!";
        my @head = grep { defined } map { scalar <$fh> } 1 .. 12;
        close $fh;
        my ($at) = grep { $head[$_] =~ m{^\s*/\*} } 0 .. ($#head < 2 ? $#head : 2);
        my $text = '';
        if (defined $at) {
            for my $l (@head[$at .. $#head]) {
                (my $s = $l) =~ s{^\s*/?\*+/?\s?}{};
                $s =~ s{\s*\*/.*}{}s;
                $s =~ s/\s+$//;
                $text .= ($text eq '' ? '' : ' ') . $s if $s ne '';
                last if $l =~ m{\*/} || $text =~ /\.(\s|$)/;
            }
        }
        $text =~ s/^\Q$m\E\.c:\s*//;
        $text =~ s/(\.)\s.*/$1/;    # its first sentence
        $about{$m} = $text if $text ne '';
        ok(defined $at && $text ne '', "$m.c says what it owns in its first lines"
                                       . ($text ne '' ? ": $text" : ''))
            or diag("$c: start it with a comment block (/* ... */) within its first 3 lines "
                    . "saying what the module owns");
    }
}

my $g = object_graph(@$objs);
my %multi = map { $_ => $g->{definers}{$_} } grep { @{ $g->{definers}{$_} } > 1 } keys %{ $g->{definers} };
diag("defined by more than one object: " . join('; ', map { "$_ (@{ $multi{$_} })" } sort keys %multi)) if %multi;
diag(join "\n", "module graph of $dir (caller -> callee (symbols)):", map { "  $_" } graph_lines($g));

my $report = cycle_report($g, \%about);
ok($report eq '', 'no cycle between the modules of corrald') or diag(
    "$report\n"
    . "A module in a cycle cannot be understood, tested or changed without all the others:\n"
    . "break each circle, e.g. with a callback one side registers, or by moving the\n"
    . "symbols to the module that owns them.");

done_testing();
