/*
 * main.c: corrald's options, startup order and exit codes. Start reading
 * here: load and check the config, become a child subreaper, hand the
 * config to the supervisor and run the event loop until a stop completes.
 *
 * Exit codes: 0 clean stop or config ok (-t), 1 config or startup error,
 * 2 usage error, 3 a stop that left processes or cgroups behind.
 */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <ev.h>

#include "bindings.h"
#include "config.h"
#include "confcheck.h"
#include "control.h"
#include "crlua.h"
#include "fdneed.h"
#include "layout.h"
#include "log.h"
#include "manager.h"
#include "notify.h"
#include "output.h"
#include "proctitle.h"
#include "reload.h"
#include "sockets.h"
#include "spawn.h"
#include "supervisor.h"
#include "plugio.h"
#include "timers.h"
#include "wnotify.h"

#define DEFAULT_CONFIG "/etc/corral/corral.lua"

static int file_exists(const char *path)
{
	return access(path, R_OK) == 0;
}

/* Where corral's Lua modules live: the source tree when run from it, else
 * the installed data directory. */
static const char *lua_dir(void)
{
	static char dir[PATH_MAX + 8];
	char exe[PATH_MAX], probe[PATH_MAX + 64];
	ssize_t n;

	if (dir[0])
		return dir;
	/* run from the source tree: build/corrald or build/asan/corrald */
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = 0;
		for (int up = 0; up < 3; up++) {
			char *slash = strrchr(exe, '/');
			if (!slash)
				break;
			*slash = 0;
			snprintf(probe, sizeof probe, "%s/lua/corral/config.lua", exe);
			if (file_exists(probe)) {
				snprintf(dir, sizeof dir, "%s/lua", exe);
				return dir;
			}
		}
	}
	snprintf(dir, sizeof dir, "%s/lua", CR_DATADIR);
	return dir;
}

static const struct option longopts[] = {
	{ "allow-unsafe-config", no_argument, NULL, 'U' },	/* no short form: on purpose */
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: corrald [-tvqhV] [-c FILE] [-g CGROUP] [-s SOCKET] [--allow-unsafe-config]\n"
		"  -c FILE  configuration file (default " DEFAULT_CONFIG ")\n"
		"  -s PATH  control socket (overrides settings.control)\n"
		"  -g PATH  cgroup base below the cgroup2 mount (overrides settings.cgroup)\n"
		"  -t       check the configuration and exit\n"
		"  -v       log debug detail\n"
		"  -q       log only warnings and errors\n"
		"  -h       show this help (also --help)\n"
		"  -V       show the version\n"
		"  --allow-unsafe-config\n"
		"           run config and plugin files that users other than root (or\n"
		"           corrald's) may write: for development only\n"
		"signals: HUP reloads the configuration, TERM or INT stops, USR1 reopens\n"
		"         the pools' output files\n");
}

int main(int argc, char **argv)
{
	const char *file = DEFAULT_CONFIG, *cgroup = NULL, *control = NULL;
	char err[1024] = "";
	int test = 0, verbose = 0, quiet = 0, opt, code, rc, left, stopped = 0;
	struct cr_config *conf, *partial = NULL;
	struct ev_loop *loop;
	char *lerr = NULL;

	cr_proctitle_init(argc, argv);
	while ((opt = getopt_long(argc, argv, "c:g:s:tvqhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'U': cr_config_allow_unsafe = 1; break;
		case 'c': file = optarg; break;
		case 's': control = optarg; break;
		case 'g': cgroup = optarg; break;
		case 't': test = 1; break;
		case 'v': verbose = 1; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("corrald %s\n", CR_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "corrald: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	if (cgroup && (cgroup[0] != '/' || strstr(cgroup, "/.") || strstr(cgroup, "//"))) {
		fprintf(stderr, "corrald: -g %s: expected an absolute path below the cgroup2 mount\n", cgroup);
		return 2;
	}
	/* corral.core gets the supervisor's bindings in every state */
	cr_lua_init(lua_dir(), cr_bindings_open);
	conf = test ? cr_config_load_check(file, &lerr, &partial) : cr_config_load(file, &lerr);
	if (!conf && test && lerr) {
		/* the errors, and what the pools without one name on this
		 * system, together in file order */
		cr_confcheck(partial, lerr, file, stderr);
		cr_config_free(partial);
		free(lerr);
		return 1;
	}
	if (!conf) {
		/* one line per error, as the config's checks found them */
		for (char *line = lerr, *nl; line; line = nl ? nl + 1 : NULL) {
			if ((nl = strchr(line, '\n')))
				*nl = 0;
			fprintf(stderr, "corrald: %s\n", line);
		}
		if (!lerr)
			fprintf(stderr, "corrald: out of memory\n");
		free(lerr);
		return 1;
	}
	if (test) {
		/* what the config names on this system: programs, directories */
		if (cr_confcheck(conf, NULL, file, stderr) > 0) {
			cr_config_free(conf);
			return 1;
		}
		fprintf(stderr, "corrald: %s: configuration ok (%u pool%s)\n", file,
			conf->npools, conf->npools == 1 ? "" : "s");
		cr_config_free(conf);
		return 0;
	}
	cr_log_detect_journal();
	cr_log_level = verbose ? CR_DEBUG : quiet ? CR_WARN
		     : conf->log_level >= 0 ? (enum cr_level)conf->log_level : CR_INFO;
	cr_info(NULL, "corrald %s starting (config %s)", CR_VERSION, file);

	/* orphans of our workers come to us, so nothing is left a zombie */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		cr_error(NULL, "unable to become a child subreaper: %m");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	/* a logrotate's USR1 before output.c listens must not end us; the
	 * prototypes and workers put every signal back to its default */
	signal(SIGUSR1, SIG_IGN);
	/* a pool of a thousand workers holds a few fds each in corrald */
	cr_spawn_raise_nofile();
	if (cr_fdneed_config(conf, err, sizeof err) < 0) {
		cr_error(NULL, "%s", err);
		cr_config_free(conf);
		return 1;
	}
	cr_spawn_force_pipe_placement = getenv("CORRAL_PIPE_PLACEMENT") != NULL;

	/* into our cgroup leaf before any process is made */
	if (cr_layout_init(cgroup ? cgroup : conf->cgroup, err, sizeof err) < 0) {
		cr_error(NULL, "%s", err);
		cr_config_free(conf);
		return 1;
	}
	cr_sockets_init();
	if (cr_sockets_open(conf, err, sizeof err) < 0) {
		cr_error(NULL, "%s", err);
		cr_config_free(conf);
		cr_layout_finish();
		return 1;
	}
	cr_sockets_commit(conf);
	if (cr_layout_controllers(conf, err, sizeof err) < 0) {
		cr_error(NULL, "%s", err);
		cr_config_free(conf);
		cr_layout_finish();
		return 1;
	}

	loop = ev_default_loop(EVFLAG_AUTO);
	if (!loop) {
		cr_error(NULL, "unable to create the event loop");
		return 1;
	}
	/* the layers, from the bottom: timers fire into Lua, the supervisor
	 * runs the pools, workers' notifications and reloads act on it, the
	 * control socket asks it */
	cr_timers_init(loop, cr_lua_fire);
	cr_plugio_init(loop, cr_lua_http_serve, cr_lua_io_done);
	cr_notify_init(loop);
	cr_notify_set_dir(control ? control : conf->control);
	cr_output_init(loop);
	code = 1;
	if (cr_supervisor_start(loop, conf, verbose) < 0)
		goto out;
	if ((rc = cr_wnotify_listen(loop)) < 0) {
		cr_error(NULL, "notify: unable to open the workers' notify socket: %s", strerror(-rc));
		goto out;
	}
	cr_reload_init(loop);
	cr_control_monitor(conf->monitor_group_set, conf->monitor_group);
	if (cr_control_listen(loop, control ? control : conf->control, conf->control_group_set,
			      conf->control_group, err, sizeof err) < 0) {
		cr_error(NULL, "%s", err);
		goto out;
	}
	ev_run(loop, 0);
	code = cr_manager_exit_code();
	stopped = 1;
out:
	cr_control_close();
	cr_reload_finish();
	left = cr_supervisor_finish();
	cr_output_finish();
	cr_timers_finish();
	cr_plugio_finish();
	cr_notify_close();
	cr_notify_finish();
	cr_sockets_finish();
	left += cr_layout_finish() < 0;
	ev_loop_destroy(loop);
	if (left && stopped && code == 0) {
		cr_error(NULL, "stopped, but left processes or cgroups behind (named above): exit status 3");
		code = 3;
	}
	return code;
}
