#!/usr/bin/perl
# inotify exhausted, on the host: a preloaded shim makes inotify_init1
# fail with EMFILE (max_user_instances) or inotify_add_watch with ENOSPC
# (max_user_watches) while a flag file exists (the real sysctls are the
# host's, shared: t/vm/014 lowers them in the guest). corrald says so
# once and polls cgroup.events instead, so a worker that leaves processes
# behind is still freed once its cgroup empties and a freeze still
# completes; when inotify works again it says so and uses it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use CorralTest qw(find_program);
use Test::More;

my $cc = find_program('cc') // find_program('gcc') or plan skip_all => 'needs a C compiler for the shim';

my $t = CorralTest->new;
my $dir = $t->dir;
$t->write_file('shim.c', <<'EOF');
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int flagged(const char *name)
{
	char path[4096];
	const char *dir = getenv("CORRAL_SHIM_DIR");

	if (!dir)
		return 0;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

int inotify_init1(int flags)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "inotify_init1");

	if (flagged("no-instances")) {
		errno = EMFILE;
		return -1;
	}
	return real(flags);
}

int inotify_add_watch(int fd, const char *path, uint32_t mask)
{
	int (*real)(int, const char *, uint32_t) =
		(int (*)(int, const char *, uint32_t))dlsym(RTLD_NEXT, "inotify_add_watch");

	if (flagged("no-watches")) {
		errno = ENOSPC;
		return -1;
	}
	return real(fd, path, mask);
}
EOF
system($cc, '-shared', '-fPIC', '-o', "$dir/shim.so", "$dir/shim.c", '-ldl') == 0 or BAIL_OUT('the shim does not build');

$t->{env} = {
    LD_PRELOAD => "$dir/shim.so",
    CORRAL_SHIM_DIR => $dir,
    # a sanitized corrald: the shim comes first, and that is fine
    ASAN_OPTIONS => join(':', grep { defined } $ENV{ASAN_OPTIONS}, 'verify_asan_link_order=0'),
};
# leaky's workers leave two processes behind: corrald waits for the
# cgroup to empty (by inotify, or by polling without it)
$t->write_config(<<'EOF');
local inherit = { "CORRAL_TEST_DIR" }
pool "leaky" {
  command = { "/bin/sh", "-c", "sleep 1000 & sleep 1000 & exec sleep 0.3" },
  workers = 2,
  backoff = { initial = "100ms", max = "200ms" },
  crash_limit = { failures = 0 },
  env_inherit = inherit,
}
pool "other" { command = "/bin/sleep 1000", workers = 1, env_inherit = inherit }
EOF

sub flag { my ($name, $on) = @_; if ($on) { $t->write_file($name, '') } else { unlink $t->path($name) } }
sub worker_cgroups { grep { $_ ne 'prototype' } $t->cgroup_children($_[0]) }
sub started { scalar $t->log_lines(qr/ info worker started pool=leaky /, $_[0]) }
sub ping { my $r = $t->request({ command => 'ping' }, timeout => 2); $r && $r->{ok} }

# Polled: leaky keeps being replaced, a stop frees every worker, a freeze
# and a thaw complete; corrald answers, other keeps its worker.
sub polled_works {
    my ($what, $mark, $other) = @_;
    my $n = started($mark);
    $t->wait_for(sub { started($mark) >= $n + 4 }, 15, "$what: leaky goes on being replaced");
    is($t->ctl('freeze', 'other')->{code}, 0, "$what: freeze other");
    $t->wait_log(qr/ info pool frozen pool=other$/, since => $mark, name => "$what: the freeze completes");
    is($t->ctl('thaw', 'other')->{code}, 0, "$what: thaw other");
    $t->wait_log(qr/ info pool thawed pool=other$/, since => $mark, name => "$what: the thaw completes");
    is($t->ctl('stop', 'leaky')->{code}, 0, "$what: stop leaky");
    $t->wait_for(sub { !worker_cgroups('leaky') && !$t->workers('leaky') }, 10,
                 "$what: every emptied worker of leaky was freed") or diag(join ' ', worker_cgroups('leaky'));
    ok(ping(), "$what: corrald answers ping");
    is_deeply([ $t->workers('other') ], [ $other ], "$what: other keeps its worker");
}

# --- no inotify instance at startup --------------------------------------------------

flag('no-instances', 1);
$t->start;
$t->wait_control;
$t->wait_for(sub { $t->workers('other') == 1 }, 10, 'no instance: pools up');
my ($other) = $t->workers('other');
$t->wait_log(qr/ warn cgroup: unable to create an inotify instance: Too many open files; polling cgroup\.events every 100 ms instead until one can be made$/,
             name => 'no instance: corrald says so');
polled_works('no instance', 0, $other);
flag('no-instances', 0);
my $mark = $t->mark;
is($t->ctl('start', 'leaky')->{code}, 0, 'inotify back: start leaky');
$t->wait_log(qr/ info cgroup: inotify watches can be had again, polling no more for new ones$/, since => $mark,
             name => 'inotify back: corrald says so');
# (a churning pool's fds come and go: counted with leaky stopped)
is($t->ctl('stop', 'leaky')->{code}, 0, 'inotify back: stop leaky');
$t->wait_for(sub { !$t->workers('leaky') && !worker_cgroups('leaky') }, 10, 'inotify back: leaky stopped');
$t->checkpoint('no instance', fds => 0);    # (the inotify instance is new)
is($t->ctl('start', 'leaky')->{code}, 0, 'start leaky');

# --- no watch to be had ---------------------------------------------------------------

$mark = $t->mark;
flag('no-watches', 1);
$t->wait_log(qr{ warn cgroup: unable to watch \S+/leaky/\d+/cgroup\.events: No space left on device; polling it every 100 ms instead}, since => $mark,
             name => 'no watches: corrald names the cgroup and ENOSPC');
polled_works('no watches', $mark, $other);
is(scalar $t->log_lines(qr/ unable to watch /, $mark), 1, 'no watches: it says so once');
flag('no-watches', 0);
$mark = $t->mark;
is($t->ctl('start', 'leaky')->{code}, 0, 'watches back: start leaky');
$t->wait_log(qr/ info cgroup: inotify watches can be had again/, since => $mark, name => 'watches back: corrald says so');
$t->wait_for(sub { started($mark) >= 4 }, 15, 'watches back: leaky churns');
is($t->ctl('stop', 'leaky')->{code}, 0, 'watches back: stop leaky');
$t->wait_for(sub { !$t->workers('leaky') && !worker_cgroups('leaky') }, 10, 'watches back: leaky stopped');
$t->checkpoint('no watches');

$t->done;
