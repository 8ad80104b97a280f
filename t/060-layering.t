#!/usr/bin/perl
# Layers, not circles: from the built objects (nm), which file of corrald
# calls which; the graph must have no circle. A lower file reports to its
# owner through callbacks it was given, never by calling it by name. The
# graph is printed (diag), a circle named with the symbols that tie it.
# The cycle finder is tried on a small made-up graph first.

use strict;
use warnings;
use File::Basename qw(dirname basename);
use File::Temp ();
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(find_program);
use Test::More;

my $nm = find_program('nm');
plan skip_all => 'nm not installed (Debian package binutils)' unless $nm;

# edges: { from => { to => [ symbols ] } }
sub graph_of {
    my (@objs) = @_;
    my (%def, %undef);
    for my $o (@objs) {
        my $m = basename($o, '.o');
        for (`'$nm' '$o'`) {
            if (/^\s+U (\S+)$/) { push @{ $undef{$m} }, $1 }
            elsif (/^[0-9a-f]+ [TDBRC] (\S+)$/) { $def{$1} = $m }
        }
    }
    my %g;
    for my $m (keys %undef) {
        $g{$m} //= {};
        for my $s (@{ $undef{$m} }) {
            my $to = $def{$s};
            push @{ $g{$m}{$to} }, $s if defined $to && $to ne $m;
        }
    }
    $g{$_} //= {} for values %def;
    return \%g;
}

# Every circle: the strongly connected components of more than one file
# (Tarjan), each as a path a -> b -> ... -> a through the component.
sub circles {
    my ($g) = @_;
    my ($index, @stack, %on, %idx, %low, @sccs) = (0);
    my $visit;
    $visit = sub {
        my ($v) = @_;
        $idx{$v} = $low{$v} = $index++;
        push @stack, $v;
        $on{$v} = 1;
        for my $w (sort keys %{ $g->{$v} }) {
            if (!exists $idx{$w}) { $visit->($w); $low{$v} = $low{$w} if $low{$w} < $low{$v} }
            elsif ($on{$w}) { $low{$v} = $idx{$w} if $idx{$w} < $low{$v} }
        }
        if ($low{$v} == $idx{$v}) {
            my @c;
            while (1) { my $w = pop @stack; $on{$w} = 0; push @c, $w; last if $w eq $v }
            push @sccs, [ sort @c ] if @c > 1;
        }
    };
    exists $idx{$_} or $visit->($_) for sort keys %$g;
    return @sccs;
}

sub describe_circle {
    my ($g, $c) = @_;
    my %in = map { $_ => 1 } @$c;
    # a path around it: follow edges inside the component back to the start
    my ($start, @path, %seen) = ($c->[0]);
    my $find;
    $find = sub {
        my ($v) = @_;
        push @path, $v;
        $seen{$v} = 1;
        for my $w (sort grep { $in{$_} } keys %{ $g->{$v} }) {
            return 1 if $w eq $start && @path > 1;
            next if $seen{$w};
            return 1 if $find->($w);
        }
        pop @path;
        return 0;
    };
    $find->($start);
    push @path, $start;
    return join "\n", map {
        "  $path[$_] -> $path[$_ + 1] (" . join(', ', sort @{ $g->{ $path[$_] }{ $path[$_ + 1] } }) . ')'
    } 0 .. $#path - 1;
}

# ---- the finder itself, on made-up objects ------------------------------------

my $cc = find_program('cc') // find_program('gcc');
SKIP: {
    skip 'no C compiler', 2 unless $cc;
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    my %src = (a => 'void b(void); void a(void) { b(); }',
               b => 'void c(void); void b(void) { c(); }',
               c => 'void a(void); void c(void) { a(); }',
               d => 'void a(void); void d(void) { a(); }');
    for (keys %src) {
        open my $fh, '>', "$dir/$_.c" or die; print $fh "$src{$_}\n"; close $fh;
        system($cc, '-c', '-o', "$dir/$_.o", "$dir/$_.c") == 0 or die "cc failed";
    }
    my @c = circles(graph_of(map { "$dir/$_.o" } qw(a b c d)));
    is_deeply(\@c, [ [qw(a b c)] ], 'the finder sees a -> b -> c -> a, and not d');
    is_deeply([ circles(graph_of(map { "$dir/$_.o" } qw(a b d))) ], [], 'and no circle where there is none');
}

# ---- corrald -------------------------------------------------------------------

my $builddir = dirname($CorralTest::CORRALD);
my @objs = grep { basename($_) ne 'corralctl.o' } glob("$builddir/*.o");
plan skip_all => "no objects in $builddir (build corrald first)" unless @objs;
my $g = graph_of(@objs);
diag(join "\n", 'the module graph (who calls whom):',
     map { my $m = $_; map { "  $m -> $_" } sort keys %{ $g->{$m} } } sort keys %$g);
my @c = circles($g);
ok(!@c, 'no circle between the files of corrald')
    or diag(join "\n", map { "circle of " . join(', ', @$_) . ":\n" . describe_circle($g, $_) } @c);

# every file says what it owns in its first lines
my $root = "$FindBin::Bin/..";
for my $o (sort @objs) {
    my $src = "$root/daemon/" . basename($o, '.o') . '.c';
    next unless -e $src;
    open my $fh, '<', $src or die;
    my @head = map { scalar <$fh> // '' } 1 .. 3;
    ok(grep({ m{^/\*} } @head), basename($src) . ' opens with a comment saying what it owns');
}

done_testing();
