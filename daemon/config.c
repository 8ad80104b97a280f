/*
 * config.c: a config as C structs. lua.c runs the file through
 * lua/corral/config.lua, which does all the validating, and hands back a
 * plain C copy of the normalized result; this file turns that into the
 * structs the supervisor runs from. Knows nothing of processes and uses
 * no Lua API; the reload diff is a fingerprint comparison (same()).
 * It also decides whether a config or plugin file may be run at all:
 * its code runs inside corrald, as root.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "crlua.h"
#include "isolcheck.h"
#include "log.h"
#include "preflight.h"

struct cr_pool_conf *cr_pool_conf_ref(struct cr_pool_conf *pc)
{
	pc->refs++;
	return pc;
}

static void free_strv(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

static void free_limits(struct cr_limits *l)
{
	for (unsigned i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].file);
		free(l->v[i].value);
	}
	free(l->v);
}

void cr_isolation_free(struct cr_isolation *iso)
{
	free(iso->uidmap);
	free(iso->gidmap);
	free(iso->hostname);
	free(iso->rootfs);
	for (unsigned i = 0; i < iso->nmounts; i++) {
		free(iso->mounts[i].source);
		free(iso->mounts[i].target);
	}
	free(iso->mounts);
	free(iso->rlimits);
	memset(iso, 0, sizeof *iso);
	iso->umask = -1;
}

int cr_pool_conf_same(const struct cr_pool_conf *a, const struct cr_pool_conf *b)
{
	return a->fingerprint_len == b->fingerprint_len &&
	       memcmp(a->fingerprint, b->fingerprint, a->fingerprint_len) == 0;
}

void cr_pool_conf_unref(struct cr_pool_conf *pc)
{
	if (!pc || --pc->refs > 0)
		return;
	free_limits(&pc->limits);
	free_limits(&pc->worker_limits);
	cr_isolation_free(&pc->isolation);
	free(pc->file);
	free_strv(pc->argv);
	free_strv(pc->envp);
	free(pc->directory);
	free(pc->groups);
	free(pc->fingerprint);
	free(pc->output);
	free_strv(pc->listen_names);
	free_strv(pc->listen_specs);
	free(pc->listen_fds);
	free(pc->syslog_identifier);
	free(pc);
}

void cr_config_free(struct cr_config *conf)
{
	if (!conf)
		return;
	for (unsigned i = 0; i < conf->npools; i++)
		cr_pool_conf_unref(conf->pools[i]);
	free(conf->pools);
	free(conf->file);
	free(conf->cgroup);
	free(conf->control);
	cr_lua_close(conf->lua);
	free(conf);
}

/* ---- whose files corrald runs --------------------------------------------- */

int cr_config_allow_unsafe;

static int trusted_owner(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

/* What makes FILE unsafe, from what it (or DIR of its path) has: 1. */
static int unsafe(char *err, size_t len, const char *file, const char *dir, const struct stat *st)
{
	snprintf(err, len, "%s: %s%s%s%s (owner uid %u, mode %04o)", file,
		 dir ? "its directory " : "", dir ? dir : "", dir ? " is " : "",
		 !trusted_owner(st->st_uid) ? "owned by a user other than root and corrald's"
		 : dir ? "writable by group or others and not sticky" : "writable by group or others",
		 (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777));
	return 1;
}

/* Each directory of the absolute path ABS, from / to the file's own: one
 * that another user owns, or may write without the sticky bit, lets that
 * user put another file in the file's place. */
static int check_dirs(const char *file, const char *abs, char *err, size_t len)
{
	char dir[PATH_MAX];
	struct stat st;

	for (size_t i = 0; abs[i]; i++) {
		if (abs[i] != '/')
			continue;
		snprintf(dir, sizeof dir, "%.*s", (int)(i ? i : 1), abs);
		if (stat(dir, &st) < 0) {
			snprintf(err, len, "%s: unable to check its directory %s: %s", file, dir, strerror(errno));
			return -1;
		}
		if (!trusted_owner(st.st_uid) || ((st.st_mode & 022) && !(st.st_mode & S_ISVTX)))
			return unsafe(err, len, file, dir, &st);
	}
	return 0;
}

/* The file itself (as opened: fstat), then the directories of its path as
 * given and of its real path (a symlink on the way is its directory's).
 * 0: safe; 1: unsafe, err says why; -1: unable to tell, err says why. */
static int check_trusted(int fd, const char *path, char *err, size_t len)
{
	char abs[PATH_MAX], real[PATH_MAX], cwd[PATH_MAX];
	struct stat st;
	int rc;

	if (fstat(fd, &st) < 0) {
		snprintf(err, len, "%s: unable to check: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, len, "%s: not a regular file", path);
		return -1;
	}
	if (!trusted_owner(st.st_uid) || (st.st_mode & 022))
		return unsafe(err, len, path, NULL, &st);
	if (path[0] == '/') {
		snprintf(abs, sizeof abs, "%s", path);
	} else if (!getcwd(cwd, sizeof cwd)) {
		snprintf(err, len, "%s: unable to check: the current directory: %s", path, strerror(errno));
		return -1;
	} else if ((size_t)snprintf(abs, sizeof abs, "%s/%s", cwd, path) >= sizeof abs) {
		snprintf(err, len, "%s: unable to check: path too long", path);
		return -1;
	}
	if (!realpath(path, real)) {
		snprintf(err, len, "%s: unable to check: %s", path, strerror(errno));
		return -1;
	}
	rc = check_dirs(path, abs, err, len);
	return rc ? rc : check_dirs(path, real, err, len);
}

int cr_config_open_trusted(const char *path, char *err, size_t len)
{
	/* O_NONBLOCK: a FIFO in the file's place must not block corrald */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), rc;
	size_t n;

	if (fd < 0) {
		snprintf(err, len, "%s: unable to open: %s", path, strerror(errno));
		return -1;
	}
	rc = check_trusted(fd, path, err, len);
	if (rc == 1 && cr_config_allow_unsafe) {
		/* development: said, and accepted */
		cr_warn(NULL, "%s; accepted (--allow-unsafe-config)", err);
	} else if (rc != 0) {
		n = strlen(err);
		if (rc == 1)
			snprintf(err + n, len - n, "; refused: its code would run inside corrald "
				 "(--allow-unsafe-config accepts it)");
		close(fd);
		return -1;
	}
	return fd;
}

/* Field readers for the normalized table. The Lua side guarantees types;
 * these only guard against a broken module (a missing string is NULL,
 * which the callers treat as out of memory). */
static const struct cr_value *get(const struct cr_value *t, const char *key)
{
	static const struct cr_value nil = { .type = CR_V_NIL };

	for (unsigned i = t && t->type == CR_V_TABLE ? t->nitems : 0; t && i < t->n; i++)
		if (!strcmp(t->entries[i].key, key))
			return &t->entries[i].value;
	return &nil;
}

static unsigned count(const struct cr_value *t)
{
	return t->type == CR_V_TABLE ? t->nitems : 0;
}

static const struct cr_value *item(const struct cr_value *t, unsigned i)
{
	return &t->entries[i].value;
}

static double get_number(const struct cr_value *t, const char *key)
{
	const struct cr_value *v = get(t, key);

	return v->type == CR_V_NUMBER || v->type == CR_V_BOOLEAN ? v->number : 0;
}

static int has_number(const struct cr_value *t, const char *key)
{
	return get(t, key)->type == CR_V_NUMBER;
}

static char *dup_string(const struct cr_value *v)
{
	return v->type == CR_V_STRING ? strdup(v->string) : NULL;
}

static char *get_string(const struct cr_value *t, const char *key)
{
	return dup_string(get(t, key));
}

static char **get_strv(const struct cr_value *t, const char *key)
{
	const struct cr_value *l = get(t, key);
	unsigned n = count(l);
	char **v = calloc(n + 1, sizeof *v);

	for (unsigned i = 0; v && i < n; i++) {
		const struct cr_value *s = item(l, i);
		v[i] = s->type == CR_V_STRING ? strdup(s->string) : strdup("");
		if (!v[i]) {
			free_strv(v);
			v = NULL;
		}
	}
	return v;
}

/* A hook's registry ref, or CR_NOREF. */
static int get_ref(const struct cr_value *t, const char *key)
{
	const struct cr_value *v = get(t, key);

	return v->type == CR_V_FUNCTION ? v->ref : CR_NOREF;
}

static int get_limits(const struct cr_value *t, const char *key, struct cr_limits *l)
{
	const struct cr_value *list = get(t, key);
	int ok = 1;

	l->n = count(list);
	l->v = calloc(l->n + 1, sizeof *l->v);
	for (unsigned i = 0; l->v && i < l->n; i++) {
		l->v[i].key = get_string(item(list, i), "key");
		l->v[i].file = get_string(item(list, i), "file");
		l->v[i].value = get_string(item(list, i), "value");
		l->v[i].line = (int)get_number(item(list, i), "line");
		ok = ok && l->v[i].key && l->v[i].file && l->v[i].value;
	}
	return l->v && ok ? 0 : -1;
}

static int get_listen(const struct cr_value *t, struct cr_pool_conf *pc)
{
	const struct cr_value *list = get(t, "listen");

	pc->nlisten = count(list);
	pc->listen_names = calloc(pc->nlisten + 1, sizeof *pc->listen_names);
	pc->listen_specs = calloc(pc->nlisten + 1, sizeof *pc->listen_specs);
	pc->listen_fds = calloc(pc->nlisten + 1, sizeof *pc->listen_fds);
	if (!pc->listen_names || !pc->listen_specs || !pc->listen_fds)
		return -1;
	for (unsigned i = 0; i < pc->nlisten; i++) {
		pc->listen_names[i] = get_string(item(list, i), "name");
		pc->listen_specs[i] = get_string(item(list, i), "spec");
		pc->listen_fds[i] = -1;
		if (!pc->listen_names[i] || !pc->listen_specs[i])
			return -1;
	}
	return 0;
}

static int get_groups(const struct cr_value *t, struct cr_pool_conf *pc)
{
	const struct cr_value *list = get(t, "groups");

	if (list->type != CR_V_TABLE)
		return 0;
	pc->ngroups = (int)count(list);
	pc->groups = calloc((size_t)pc->ngroups + 1, sizeof *pc->groups);
	if (!pc->groups)
		return -1;
	for (int i = 0; i < pc->ngroups; i++)
		pc->groups[i] = (gid_t)item(list, (unsigned)i)->number;
	return 0;
}

/* ---- isolation = { ... }, as config.lua normalised it ------------------------ */

static const struct {
	const char *name;
	int flag;
} namespace_flags[] = {
	{ "user", CLONE_NEWUSER }, { "pid", CLONE_NEWPID }, { "mount", CLONE_NEWNS },
	{ "net", CLONE_NEWNET }, { "uts", CLONE_NEWUTS }, { "ipc", CLONE_NEWIPC },
	{ "cgroup", CLONE_NEWCGROUP },
};

static const struct {
	const char *name;
	int resource;
} rlimit_resources[] = {
	{ "as", RLIMIT_AS }, { "core", RLIMIT_CORE }, { "cpu", RLIMIT_CPU },
	{ "data", RLIMIT_DATA }, { "fsize", RLIMIT_FSIZE }, { "locks", RLIMIT_LOCKS },
	{ "memlock", RLIMIT_MEMLOCK }, { "msgqueue", RLIMIT_MSGQUEUE }, { "nice", RLIMIT_NICE },
	{ "nofile", RLIMIT_NOFILE }, { "nproc", RLIMIT_NPROC }, { "rss", RLIMIT_RSS },
	{ "rtprio", RLIMIT_RTPRIO }, { "rttime", RLIMIT_RTTIME },
	{ "sigpending", RLIMIT_SIGPENDING }, { "stack", RLIMIT_STACK },
};

#define COUNT_OF(a) (sizeof (a) / sizeof (a)[0])

/* The flag of a namespace's name, or 0. */
static int namespace_flag(const struct cr_value *v)
{
	for (size_t i = 0; v->type == CR_V_STRING && i < COUNT_OF(namespace_flags); i++)
		if (!strcmp(v->string, namespace_flags[i].name))
			return namespace_flags[i].flag;
	return 0;
}

/* RLIMIT_* of a resource's name, or -1. */
static int rlimit_resource(const struct cr_value *v)
{
	for (size_t i = 0; v->type == CR_V_STRING && i < COUNT_OF(rlimit_resources); i++)
		if (!strcmp(v->string, rlimit_resources[i].name))
			return rlimit_resources[i].resource;
	return -1;
}

/* -1 is "infinity" */
static rlim_t rlimit_value(double v)
{
	return v < 0 ? RLIM_INFINITY : (rlim_t)v;
}

static int get_idmap(const struct cr_value *t, const char *key, struct cr_idmap **map, unsigned *n)
{
	const struct cr_value *list = get(t, key);

	*n = count(list);
	if (!*n)
		return 0;
	if (!(*map = calloc(*n, sizeof **map)))
		return -1;
	for (unsigned i = 0; i < *n; i++) {
		(*map)[i].inside = (uint32_t)get_number(item(list, i), "inside");
		(*map)[i].outside = (uint32_t)get_number(item(list, i), "outside");
		(*map)[i].count = (uint32_t)get_number(item(list, i), "count");
	}
	return 0;
}

static int get_mounts(const struct cr_value *t, struct cr_isolation *iso)
{
	const struct cr_value *list = get(t, "mounts");

	iso->nmounts = count(list);
	if (!iso->nmounts)
		return 0;
	if (!(iso->mounts = calloc(iso->nmounts, sizeof *iso->mounts)))
		return -1;
	for (unsigned i = 0; i < iso->nmounts; i++) {
		iso->mounts[i].source = get_string(item(list, i), "source");
		iso->mounts[i].target = get_string(item(list, i), "target");
		iso->mounts[i].readonly = get_number(item(list, i), "readonly") != 0;
		if (!iso->mounts[i].source || !iso->mounts[i].target)
			return -1;
	}
	return 0;
}

static int get_rlimits(const struct cr_value *t, struct cr_isolation *iso)
{
	const struct cr_value *list = get(t, "rlimits");

	iso->nrlimits = count(list);
	if (!iso->nrlimits)
		return 0;
	if (!(iso->rlimits = calloc(iso->nrlimits, sizeof *iso->rlimits)))
		return -1;
	for (unsigned i = 0; i < iso->nrlimits; i++) {
		const struct cr_value *r = item(list, i);

		if ((iso->rlimits[i].resource = rlimit_resource(get(r, "resource"))) < 0)
			return -1;
		iso->rlimits[i].value.rlim_cur = rlimit_value(get_number(r, "soft"));
		iso->rlimits[i].value.rlim_max = rlimit_value(get_number(r, "hard"));
	}
	return 0;
}

/* 0, or -1: out of memory (or a table config.lua would not make) */
static int get_isolation(const struct cr_value *t, struct cr_isolation *iso)
{
	const struct cr_value *v = get(t, "isolation"), *l, *nnp;
	char *network;

	memset(iso, 0, sizeof *iso);
	iso->umask = -1;
	l = get(v, "namespaces");
	for (unsigned i = 0; i < count(l); i++) {
		int flag = namespace_flag(item(l, i));
		if (!flag)
			return -1;
		iso->namespaces |= flag;
	}
	nnp = get(v, "no_new_privs");
	iso->no_new_privs = nnp->type == CR_V_BOOLEAN ? nnp->number != 0 : 1;
	iso->hostname = get_string(v, "hostname");
	network = get_string(v, "network");
	iso->loopback = network && !strcmp(network, "loopback");
	free(network);
	iso->rootfs = get_string(v, "rootfs");
	/* a capabilities list, even empty, is what the workers keep */
	l = get(v, "capabilities");
	iso->set_caps = l->type == CR_V_TABLE;
	for (unsigned i = 0; i < count(l); i++) {
		double cap = item(l, i)->number;
		if (cap < 0 || cap > 63)
			return -1;
		iso->caps |= UINT64_C(1) << (unsigned)cap;
	}
	if (has_number(v, "umask"))
		iso->umask = (int)get_number(v, "umask");
	if ((iso->set_nice = has_number(v, "nice")))
		iso->nice = (int)get_number(v, "nice");
	if ((iso->set_oom_score_adj = has_number(v, "oom_score_adjust")))
		iso->oom_score_adj = (int)get_number(v, "oom_score_adjust");
	if (get_idmap(v, "uidmap", &iso->uidmap, &iso->nuidmap) < 0 ||
	    get_idmap(v, "gidmap", &iso->gidmap, &iso->ngidmap) < 0 ||
	    get_mounts(v, iso) < 0 || get_rlimits(v, iso) < 0)
		return -1;
	/* a pid namespace's /proc, a root or mounts of its own are mounted
	 * where the host does not see them */
	if ((iso->namespaces & CLONE_NEWPID) || iso->rootfs || iso->nmounts)
		iso->namespaces |= CLONE_NEWNS;
	return 0;
}

static struct cr_pool_conf *read_pool(const struct cr_value *t, struct cr_lua *lua)
{
	struct cr_pool_conf *pc = calloc(1, sizeof *pc);
	const struct cr_value *fp;
	char *name, *restart, *ready;

	if (!pc)
		return NULL;
	pc->refs = 1;
	pc->lua = lua;
	pc->ref_prefork = get_ref(t, "prefork");
	pc->ref_setup = get_ref(t, "setup");
	pc->ref_start = get_ref(t, "start");
	pc->ref_object = get_ref(t, "object");
	ready = get_string(t, "ready");
	pc->ready = !ready || !strcmp(ready, "started") ? CR_READY_STARTED
		  : !strcmp(ready, "lua") ? CR_READY_LUA : CR_READY_NOTIFY;
	free(ready);
	pc->watchdog = get_number(t, "watchdog");
	pc->output = get_string(t, "output");
	pc->syslog_identifier = get_string(t, "syslog_identifier");
	pc->ready_timeout = get_number(t, "ready_timeout");
	pc->start_window = get_number(t, "start_window");
	pc->prefork_timeout = get_number(t, "prefork_timeout");
	pc->keep_prototype = get_number(t, "keep_prototype") != 0;
	name = get_string(t, "name");
	snprintf(pc->name, sizeof pc->name, "%s", name ? name : "");
	free(name);
	pc->file = get_string(t, "file");
	pc->line = (int)get_number(t, "line");
	pc->command_line = (int)get_number(t, "command_line");
	pc->directory_line = (int)get_number(t, "directory_line");
	pc->iso_namespaces_line = (int)get_number(t, "isolation_namespaces_line");
	pc->iso_rootfs_line = (int)get_number(t, "isolation_rootfs_line");
	pc->iso_mounts_line = (int)get_number(t, "isolation_mounts_line");
	pc->iso_caps_line = (int)get_number(t, "isolation_capabilities_line");
	pc->argv = get_strv(t, "argv");
	pc->envp = get_strv(t, "env");
	pc->directory = get_string(t, "directory");
	pc->workers = (unsigned)get_number(t, "workers");
	pc->stop_signal = (int)get_number(t, "stop_signal");
	pc->stop_timeout = get_number(t, "stop_timeout");
	restart = get_string(t, "restart");
	pc->restart = !restart || !strcmp(restart, "always") ? CR_RESTART_ALWAYS
		    : !strcmp(restart, "on-failure") ? CR_RESTART_ON_FAILURE
		    : CR_RESTART_NEVER;
	free(restart);
	pc->backoff_initial = get_number(t, "backoff_initial");
	pc->backoff_max = get_number(t, "backoff_max");
	pc->backoff_reset = get_number(t, "backoff_reset");
	pc->crash_failures = (unsigned)get_number(t, "crash_failures");
	pc->crash_interval = get_number(t, "crash_interval");
	fp = get(t, "fingerprint");
	if (fp->type == CR_V_STRING && (pc->fingerprint = malloc(fp->len + 1))) {
		memcpy(pc->fingerprint, fp->string, fp->len + 1);
		pc->fingerprint_len = fp->len;
	}
	pc->set_uid = has_number(t, "uid");
	pc->uid = (uid_t)get_number(t, "uid");
	pc->set_gid = has_number(t, "gid");
	pc->gid = (gid_t)get_number(t, "gid");

	if (get_listen(t, pc) < 0 || get_groups(t, pc) < 0 || get_isolation(t, &pc->isolation) < 0 ||
	    get_limits(t, "limits", &pc->limits) < 0 ||
	    get_limits(t, "worker_limits", &pc->worker_limits) < 0 ||
	    !pc->file || !pc->argv || !pc->envp || !pc->directory || !pc->fingerprint ||
	    !pc->output || !pc->syslog_identifier) {
		cr_pool_conf_unref(pc);
		return NULL;
	}
	return pc;
}

/* The config's own code has a budget of 10s inside corrald (lua.c). */
#define PREFLIGHT_SECONDS 15.0

static struct cr_config *load(const char *path, char **err, struct cr_config **partial)
{
	struct cr_config *conf;
	struct cr_value *v = NULL;
	const struct cr_value *settings, *pools;
	char *level, msg[PATH_MAX + 256];
	unsigned npools;
	int fd, rc;

	*err = NULL;
	if (partial)
		*partial = NULL;
	conf = calloc(1, sizeof *conf);
	if (!conf || !(conf->file = strdup(path))) {
		free(conf);
		*err = strdup("out of memory");
		return NULL;
	}
	/* checked here; Lua opens it again by a path no one else may change */
	if ((fd = cr_config_open_trusted(path, msg, sizeof msg)) < 0) {
		*err = strdup(msg);
		goto fail;
	}
	close(fd);
	rc = cr_preflight(path, PREFLIGHT_SECONDS, err);
	if (rc < 0 || (rc > 0 && !partial))
		goto fail;
	if (rc > 0) {
		/* its load ended: running it here is safe, and says the same */
		free(*err);
		*err = NULL;
	}
	conf->lua = cr_lua_load_config(path, &v, err, partial != NULL);
	if (!conf->lua)
		goto fail;

	settings = get(v, "settings");
	level = get_string(settings, "log_level");
	conf->log_level = level ? cr_log_level_parse(level) : CR_INFO;
	free(level);
	conf->cgroup = get_string(settings, "cgroup");
	conf->control = get_string(settings, "control");
	conf->control_group_set = has_number(settings, "control_group");
	conf->control_group = (gid_t)get_number(settings, "control_group");
	conf->monitor_group_set = has_number(settings, "monitor_group");
	conf->monitor_group = (gid_t)get_number(settings, "monitor_group");
	conf->limits_required = get_number(settings, "limits_required") != 0;
	if (!conf->cgroup || !conf->control)
		goto fail_oom;

	pools = get(v, "pools");
	npools = count(pools);
	conf->pools = calloc(npools + 1, sizeof *conf->pools);
	if (!conf->pools)
		goto fail_oom;
	for (unsigned i = 0; i < npools; i++) {
		struct cr_pool_conf *pc = read_pool(item(pools, i), conf->lua);

		if (pc)
			conf->pools[conf->npools++] = pc;
		else if (!*err)
			goto fail_oom;
		/* else -t: a pool with errors that makes none, left out */
	}
	if (*err) {
		/* the config has errors: for -t, its pools (confcheck.c), and
		 * what isolcheck finds of them, before the "and N more" line
		 * that may end the config's (confcheck.c sorts them all) */
		char *iso = NULL, *both;

		if (cr_isolcheck(conf, &iso) < 0 && iso && asprintf(&both, "%s\n%s", iso, *err) >= 0) {
			free(*err);
			*err = both;
		}
		free(iso);
		cr_lua_value_free(v);
		free(v);
		*partial = conf;
		return NULL;
	}
	/* what the system shows: a reload asking for a root that is not
	 * there is refused here, before anything running is touched */
	if (cr_isolcheck(conf, err) < 0)
		goto fail;
	cr_lua_value_free(v);
	free(v);
	return conf;

fail_oom:
	if (!*err)
		*err = strdup("out of memory");
fail:
	cr_lua_value_free(v);
	free(v);
	cr_config_free(conf);
	return NULL;
}

struct cr_config *cr_config_load(const char *path, char **err)
{
	return load(path, err, NULL);
}

struct cr_config *cr_config_load_check(const char *path, char **err, struct cr_config **partial)
{
	return load(path, err, partial);
}
