/* config.h: a loaded config as C data; what supervisor.c runs from. */
#ifndef CR_CONFIG_H
#define CR_CONFIG_H

#include <stddef.h>
#include <sys/types.h>

#include "isolate.h"

struct cr_lua;

/* a hook that is not there (LUA_NOREF) */
#define CR_NOREF (-2)

enum cr_restart { CR_RESTART_ALWAYS, CR_RESTART_ON_FAILURE, CR_RESTART_NEVER };

/* One cgroup file a limit writes: key is how the config named it, line
 * where. */
struct cr_limit {
	char *key, *file, *value;
	int line;
};

struct cr_limits {
	struct cr_limit *v;
	unsigned n;
};

/* One pool's definition. Shared by the pool and its workers (refcounted),
 * so that workers of an older definition keep their own stop rules. */
struct cr_pool_conf {
	unsigned refs;
	char name[65];
	char *file;
	int line;
	int command_line, directory_line;	/* of these keys, or the pool's line */
	char **argv;		/* NULL-terminated */
	char **envp;		/* NULL-terminated, without CORRAL_WORKER */
	char *directory;
	int set_uid, set_gid;
	uid_t uid;
	gid_t gid;
	gid_t *groups;		/* supplementary groups, when set_uid or set_gid */
	int ngroups;
	unsigned workers;
	int stop_signal;
	double stop_timeout;
	enum cr_restart restart;
	double backoff_initial, backoff_max, backoff_reset;
	unsigned crash_failures;
	double crash_interval;
	char *fingerprint;	/* everything but `workers`: equal means same workers */
	size_t fingerprint_len;	/* it holds bytecode: compare with memcmp */
	enum cr_ready { CR_READY_STARTED, CR_READY_LUA, CR_READY_NOTIFY } ready;
	double watchdog;	/* a worker silent this long is killed; 0: off */
	double ready_timeout;	/* a worker not ready this long is killed; 0: off */
	double start_window;	/* an exit this soon after ready is a start failure */
	char *output;		/* workers' stdout/stderr: auto, journal, inherit, null, or a file */
	char *syslog_identifier;	/* for their lines in the journal */
	/* listen = { NAME = SPEC }: sockets the workers get (LISTEN_FDS) */
	unsigned nlisten;
	char **listen_names, **listen_specs;
	int *listen_fds;	/* corrald's, set by cr_sockets_open() */
	double prefork_timeout;
	int keep_prototype;		/* its prototype runs while the target is 0 */
	/* Lua hooks: registry refs in `lua`, CR_NOREF when absent */
	struct cr_lua *lua;	/* the config's state; valid while it is current */
	int ref_prefork, ref_setup, ref_start;
	int ref_object;		/* returns the pool table hooks receive (pool, worker.pool) */
	struct cr_limits limits;	/* the pool's cgroup */
	struct cr_limits worker_limits;	/* each worker's cgroup */
	struct cr_isolation isolation;	/* isolation = { ... }; no_new_privs even without */
	/* the lines of the isolation keys corrald checks on the system
	 * (isolcheck.c), or the pool's */
	int iso_namespaces_line, iso_rootfs_line, iso_mounts_line, iso_caps_line;
};

struct cr_config {
	char *file;
	int log_level;
	char *cgroup;		/* "auto" or a path below the cgroup2 mount */
	char *control;		/* the control socket's path */
	int control_group_set;
	gid_t control_group;	/* may use the control socket too */
	int monitor_group_set;
	gid_t monitor_group;	/* may run the read-only commands */
	int limits_required;
	unsigned npools;
	struct cr_pool_conf **pools;
	struct cr_lua *lua;	/* the state the file ran in (hooks live there) */
};

/* Config and plugin files are code corrald runs as its own user (root):
 * only root or corrald's user may own or write them and the directories
 * above them. cr_config_allow_unsafe (--allow-unsafe-config) turns the
 * refusal into a warning, for development. */
extern int cr_config_allow_unsafe;

/* Opens PATH for reading (O_CLOEXEC) and checks the file it got (fstat)
 * and the directories of its path. Returns the fd, or -1 with one line in
 * err naming the file, its owner and mode. */
int cr_config_open_trusted(const char *path, char *err, size_t len);

/* Runs the file. On error returns NULL and sets *err to the errors, one
 * line each ("FILE:LINE: ..."), in file order (free it). */
struct cr_config *cr_config_load(const char *path, char **err);
/* The same for corrald -t: on error, *partial (when not NULL) holds the
 * pools that had no errors, for confcheck.c to check on the system. */
struct cr_config *cr_config_load_check(const char *path, char **err, struct cr_config **partial);
void cr_config_free(struct cr_config *conf);

struct cr_pool_conf *cr_pool_conf_ref(struct cr_pool_conf *pc);
/* Whether two definitions make the same workers (all but the count). */
int cr_pool_conf_same(const struct cr_pool_conf *a, const struct cr_pool_conf *b);
void cr_pool_conf_unref(struct cr_pool_conf *pc);

#endif
