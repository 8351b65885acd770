/* corral list / inspect / stats: what exists and what it uses.
 * Status always comes from the kernel (see state.h), never from a file
 * alone, so it stays true after any corral process was killed. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup/cgroup.h"
#include "cleanup.h"
#include "cli.h"
#include "container/container-config.h"
#include "fileio.h"
#include "container/state.h"

/* Sorted names of all containers (caller frees each and the array). */
int cli_container_names(char ***ret, size_t *count)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/containers", state_root());
	*ret = NULL;
	*count = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *de;
	size_t cap = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (*count == cap) {
			cap = cap ? cap * 2 : 16;
			char **n = realloc(*ret, cap * sizeof(char *));
			if (!n)
				break;
			*ret = n;
		}
		(*ret)[(*count)++] = strdup(de->d_name);
	}
	closedir(d);
	for (size_t i = 1; i < *count; i++)
		for (size_t j = i; j > 0 && strcmp((*ret)[j - 1], (*ret)[j]) > 0; j--) {
			char *t = (*ret)[j];
			(*ret)[j] = (*ret)[j - 1];
			(*ret)[j - 1] = t;
		}
	return 0;
}

static void format_time(time_t t, char *buf, size_t len)
{
	struct tm tm;
	if (!t) {
		snprintf(buf, len, "-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Why the last run ended, for an exited container ("" otherwise):
 * "exited 3", "killed by SIGTERM", "OOM killed" (the kernel's OOM killer
 * killed the init), or either with ", N OOM kills" (it killed others). */
static void exit_reason(const char *status, const struct container_state *st, char *buf, size_t len)
{
	buf[0] = '\0';
	if (strcmp(status, "exited") || !st->finished_at)
		return;
	int code = st->exit_code;
	if (st->oom_kills > 0 && code == 128 + SIGKILL) {
		snprintf(buf, len, "OOM killed");
		return;
	}
	const char *sig = code > 128 && code < 128 + NSIG ? sigabbrev_np(code - 128) : NULL;
	int n = sig ? snprintf(buf, len, "killed by SIG%s", sig) : snprintf(buf, len, "exited %d", code);
	if (st->oom_kills > 0 && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ", %lld OOM kill%s", (long long)st->oom_kills,
			 st->oom_kills == 1 ? "" : "s");
}

/* "45s", "12m", "3h05m", "2d04h": how long a running container has run. */
static void format_uptime(time_t since, char *buf, size_t len)
{
	long long s = (long long)(time(NULL) - since);
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(buf, len, "%llds", s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm", s / 60);
	else if (s < 86400)
		snprintf(buf, len, "%lldh%02lldm", s / 3600, s / 60 % 60);
	else
		snprintf(buf, len, "%lldd%02lldh", s / 86400, s / 3600 % 24);
}

/* Whether the OOM killer killed in the last run: null while it runs,
 * before any, or when the count could not be read. */
static json_object *oom_json(const char *status, const struct container_state *st)
{
	if (strcmp(status, "exited") || st->oom_kills < 0)
		return NULL;
	return json_object_new_boolean(st->oom_kills > 0);
}

int cmd_list(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral [--json] list [-q]\n\nLists containers: name, status (from the kernel), "
		       "template, init pid, address\n(bridge), uptime, start time, and why the last run ended "
		       "(exited N, killed by\nSIGNAL, OOM killed).  Status is created, running, exited, or broken "
		       "(the init\nruns but the root filesystem does not: its cowfs daemon is gone), with the\n"
		       "reason; stop or restart recovers.  -q, --quiet: names only.\n");
		return 0;
	}
	static const struct option opts[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct cli_spec spec = { .cmd = "list", .shortopts = "q", .longopts = opts };
	bool quiet = false;
	struct cli_args a;
	int r = cli_parse(&spec, argc, argv, cli_opt_flag, &quiet, &a);
	if (r)
		return r;
	cli_args_release(&a);
	char **names;
	size_t count;
	if (cli_container_names(&names, &count) < 0) {
		fprintf(stderr, "corral: cannot read %s/containers: %s\n", state_root(), strerror(errno));
		return CLI_EXIT_ERROR;
	}
	json_object *arr = cli_globals.json ? json_object_new_array() : NULL;
	if (!arr && !quiet)
		printf("%-24s %-8s %-16s %-8s %-15s %-7s %-20s %s\n", "NAME", "STATUS", "TEMPLATE", "PID", "IP",
		       "UPTIME", "STARTED", "EXIT");
	for (size_t i = 0; i < count; i++) {
		if (quiet && !arr) {
			printf("%s\n", names[i]);
			free(names[i]);
			continue;
		}
		struct container_config c;
		struct container_state st;
		char path[PATH_MAX], started[32];
		state_path(path, sizeof(path), names[i], "config", NULL);
		bool have_cfg = config_load(path, &c, NULL) == 0;
		state_load(names[i], &st, NULL);
		char reason[512];
		const char *status = state_check(names[i], &st, reason, sizeof(reason));
		format_time(st.started_at, started, sizeof(started));
		pid_t pid = state_init_alive(&st) ? st.init_pid : 0;
		char why[96], up[32] = "", ip[48];
		exit_reason(status, &st, why, sizeof(why));
		if (pid)
			format_uptime(st.started_at, up, sizeof(up));
		/* The address without its prefix length. */
		snprintf(ip, sizeof(ip), "%s", pid ? st.address : "");
		ip[strcspn(ip, "/")] = '\0';
		if (arr) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "name", json_object_new_string(names[i]));
			json_object_object_add(o, "status", json_object_new_string(status));
			json_object_object_add(o, "template",
					       json_object_new_string(have_cfg ? c.template_name : ""));
			json_object_object_add(o, "pid", json_object_new_int(pid));
			json_object_object_add(o, "started", json_object_new_string(started));
			if (!strcmp(status, "exited"))
				json_object_object_add(o, "exit_code", json_object_new_int(st.exit_code));
			if (reason[0])
				json_object_object_add(o, "reason", json_object_new_string(reason));
			json_object_object_add(o, "ip", cli_json_string(ip));
			json_object_object_add(o, "uptime_s", pid ? json_object_new_int64((int64_t)(time(NULL) - st.started_at)) : NULL);
			json_object_object_add(o, "exit_reason", cli_json_string(why));
			json_object_object_add(o, "oom_killed", oom_json(status, &st));
			json_object_array_add(arr, o);
		} else {
			char pidbuf[16];
			snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
			printf("%-24s %-8s %-16s %-8s %-15s %-7s %-20s %s%s%s\n", names[i], status,
			       have_cfg ? c.template_name : "?", pid ? pidbuf : "-", ip[0] ? ip : "-", up[0] ? up : "-",
			       started, why[0] ? why : "-", reason[0] ? "  " : "", reason);
		}
		if (have_cfg)
			config_release(&c);
		free(names[i]);
	}
	free(names);
	if (arr) {
		cli_print_json(stdout, arr);
	}
	return 0;
}

static json_object *limit_json(int64_t v)
{
	return v == CGROUP_UNSET ? json_object_new_null() : json_object_new_int64(v);
}

int cmd_inspect(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral [--json] inspect NAME\n\nPrints the configuration and runtime state (as JSON with --json; unset is\nnull, shown as -), with the FUSE\n"
		       "features the kernel granted the root's cowfs mount (state.cowfs_features:\n"
		       "passthrough, io_uring, splice, writeback, share_base; null while not running).\n");
		return 0;
	}
	static const struct cli_spec spec = { .cmd = "inspect", .min_args = 1, .max_args = 1,
					      .missing = "no container name given" };
	struct cli_args a;
	int r = cli_parse(&spec, argc, argv, NULL, NULL, &a);
	if (r)
		return r;
	/* The process ends with the command: a.argv needs no release. */
	const char *name = a.argv[0];
	struct corral_error err = { 0 };
	struct container_config c;
	struct container_state st;
	char path[PATH_MAX], started[32], finished[32], caps[1024];
	if (state_path(path, sizeof(path), name, "config", &err) < 0)
		return cli_fail(&err);
	if (access(path, F_OK) < 0) {
		fprintf(stderr, "corral: no such container: %s\n", name);
		return CLI_EXIT_ERROR;
	}
	if (config_load(path, &c, &err) < 0)
		return cli_fail(&err);
	state_load(name, &st, NULL);
	format_time(st.started_at, started, sizeof(started));
	format_time(st.finished_at, finished, sizeof(finished));
	caps_format(c.caps, caps, sizeof(caps));

	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(c.name));
	json_object_object_add(o, "template", json_object_new_string(c.template_name));
	json_object_object_add(o, "hostname", json_object_new_string(c.hostname[0] ? c.hostname : c.name));
	json_object *cmd = json_object_new_array();
	for (int i = 0; i < c.argc; i++)
		json_object_array_add(cmd, json_object_new_string(c.argv[i]));
	json_object_object_add(o, "command", cmd);
	/* What runs as PID 1 (README "Booting a VPS-style container"). */
	static const char *const boot[] = { [BOOT_COMMAND] = "command", [BOOT_IDLE] = "idle", [BOOT_INIT] = "init",
					    [BOOT_SYSTEMD] = "systemd", [BOOT_BUSYBOX] = "busybox" };
	json_object_object_add(o, "boot", json_object_new_string(boot[c.boot]));
	json_object *lim = json_object_new_object();
	json_object_object_add(lim, "memory", limit_json(c.limits.memory_max));
	json_object_object_add(lim, "memory_swap", limit_json(c.limits.memory_swap_max));
	json_object_object_add(lim, "cpu_quota_us", limit_json(c.limits.cpu_quota_us));
	json_object_object_add(lim, "cpu_period_us", limit_json(c.limits.cpu_period_us));
	json_object_object_add(lim, "cpu_weight", limit_json(c.limits.cpu_weight));
	json_object_object_add(lim, "cpuset_cpus", cli_json_string(c.limits.cpuset_cpus));
	json_object_object_add(lim, "cpuset_mems", cli_json_string(c.limits.cpuset_mems));
	json_object_object_add(lim, "pids", limit_json(c.limits.pids_max));
	json_object_object_add(lim, "disk_bytes", c.disk_bytes ? json_object_new_int64((int64_t)c.disk_bytes) : NULL);
	json_object_object_add(lim, "disk_inodes", c.disk_inodes ? json_object_new_int64((int64_t)c.disk_inodes) : NULL);
	json_object_object_add(o, "limits", lim);
	json_object_object_add(o, "network", json_object_new_string(net_mode_name(c.net.mode)));
	json_object_object_add(o, "capabilities", json_object_new_string(caps));
	json_object_object_add(o, "seccomp",
			       json_object_new_string(c.seccomp == SECCOMP_DEFAULT ? "default" : "unconfined"));
	json_object_object_add(o, "userns", json_object_new_boolean(c.userns));
	char range[32] = "";
	if (c.userns)
		snprintf(range, sizeof(range), "%u:%u", c.userns_base, c.userns_size);
	json_object_object_add(o, "userns_range", cli_json_string(range));
	json_object_object_add(o, "console_size", json_object_new_int64((int64_t)c.console_size));
	json_object_object_add(o, "autostart", json_object_new_boolean(c.autostart));
	json_object_object_add(o, "autostart_order", json_object_new_int64(c.autostart_order));
	/* Store-backed: written files move into the host's block store,
	 * under this root (README, "store"). */
	json_object_object_add(o, "store", json_object_new_boolean(c.store));
	char root[CORRAL_NAME_MAX + 32] = "";
	if (c.store && state_store_root(root, sizeof(root), c.name, NULL) < 0)
		root[0] = '\0';
	json_object_object_add(o, "store_root", cli_json_string(root));
	json_object *s = json_object_new_object();
	char reason[512];
	const char *reason_status = state_check(name, &st, reason, sizeof(reason));
	json_object_object_add(s, "status", json_object_new_string(reason_status));
	json_object_object_add(s, "reason", cli_json_string(reason));
	json_object_object_add(s, "pid", state_init_alive(&st) ? json_object_new_int(st.init_pid) : NULL);
	json_object_object_add(s, "cowfs_pid", state_cowfs_alive(&st) ? json_object_new_int(st.cowfs_pid) : NULL);
	json_object_object_add(s, "started", st.started_at ? json_object_new_string(started) : NULL);
	json_object_object_add(s, "finished", st.finished_at ? json_object_new_string(finished) : NULL);
	/* The last run's: null until one ended. */
	json_object_object_add(s, "exit_code", st.finished_at ? json_object_new_int(st.exit_code) : NULL);
	json_object_object_add(s, "address", cli_json_string(st.address));
	char why[96];
	exit_reason(reason_status, &st, why, sizeof(why));
	json_object_object_add(s, "exit_reason", cli_json_string(why));
	json_object_object_add(s, "oom_killed", oom_json(reason_status, &st));
	json_object_object_add(s, "oom_kills", st.oom_kills >= 0 && st.finished_at ? json_object_new_int64(st.oom_kills) : NULL);
	/* What the kernel granted the root's cowfs mount; null while no
	 * daemon of this run has reported (stopped, or not yet past INIT). */
	struct cowfs_features f;
	if (state_cowfs_features(name, &st, &f, NULL) == 0) {
		json_object *fo = json_object_new_object();
		json_object_object_add(fo, "libfuse", json_object_new_string(f.libfuse));
		json_object_object_add(fo, "passthrough", json_object_new_boolean(f.passthrough));
		json_object_object_add(fo, "io_uring", json_object_new_boolean(f.io_uring));
		json_object_object_add(fo, "splice", json_object_new_boolean(f.splice));
		json_object_object_add(fo, "writeback", json_object_new_boolean(f.writeback));
		json_object_object_add(fo, "share_base", json_object_new_boolean(f.share_base));
		json_object_object_add(s, "cowfs_features", fo);
	} else {
		json_object_object_add(s, "cowfs_features", json_object_new_null());
	}
	json_object_object_add(o, "state", s);
	if (cli_globals.json)
		cli_print_json(stdout, o);
	else
		cli_print_fields(stdout, o);
	config_release(&c);
	return 0;
}

int cmd_stats(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral [--json] stats [NAME...]\n\nMemory, CPU time, processes, disk (the "
		       "container's own layer) and I/O of\nrunning containers (all of them without NAME).\n");
		return 0;
	}
	static const struct cli_spec spec = { .cmd = "stats", .max_args = -1 };
	struct cli_args a;
	int r = cli_parse(&spec, argc, argv, NULL, NULL, &a);
	if (r)
		return r;
	char **names = NULL;
	size_t count = 0;
	bool all = a.argc == 0;
	if (all)
		cli_container_names(&names, &count);
	else {
		names = a.argv;
		count = (size_t)a.argc;
	}
	json_object *arr = cli_globals.json ? json_object_new_array() : NULL;
	if (!arr)
		printf("%-24s %10s %10s %10s %6s %10s %8s %10s %10s %s\n", "NAME", "MEM", "MEM-LIMIT", "CPU-SEC",
		       "PIDS", "DISK", "INODES", "IO-READ", "IO-WRITE", "STATUS");
	int rc = 0;
	for (size_t i = 0; i < count; i++) {
		struct corral_error err = { 0 };
		struct container_state st;
		struct cgroup *cg;
		struct cgroup_stats cs = { 0 };
		char upper[PATH_MAX];
		state_load(names[i], &st, NULL);
		if (!state_init_alive(&st)) {
			if (!all) {
				/* Plainly, and why: the figures are the kernel's,
				 * and a stopped container's cgroup is gone. */
				char why[96], sreason[512], dir[PATH_MAX];
				if (state_path(dir, sizeof(dir), names[i], NULL, NULL) < 0 || access(dir, F_OK) < 0) {
					fprintf(stderr, "corral: no such container: %s\n", names[i]);
					rc = CLI_EXIT_ERROR;
					continue;
				}
				const char *status = state_check(names[i], &st, sreason, sizeof(sreason));
				exit_reason(status, &st, why, sizeof(why));
				if (!strcmp(status, "created"))
					fprintf(stderr, "corral: container %s is stopped (created, never started): "
						"no figures\n", names[i]);
				else
					fprintf(stderr, "corral: container %s is stopped (%s%s%s): no figures; its "
						"last run: corral inspect %s\n", names[i], status, why[0] ? ": " : "",
						why, names[i]);
				rc = CLI_EXIT_ERROR;
			}
			continue;
		}
		char inst[CORRAL_INSTANCE_NAME_MAX];
		if (cgroup_open(state_instance_name(names[i], inst, sizeof(inst)), &cg, &err) < 0 ||
		    cgroup_stats(cg, &cs, &err) < 0) {
			rc = cli_fail(&err);
			continue;
		}
		cgroup_free(cg);
		char reason[512];
		const char *status = state_check(names[i], &st, reason, sizeof(reason));
		int64_t bytes = 0, inodes = 0;
		state_path(upper, sizeof(upper), names[i], "upper", NULL);
		int fd = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0)
			tree_usage(fd, &bytes, &inodes);
		if (arr) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "name", json_object_new_string(names[i]));
			json_object_object_add(o, "memory_bytes", json_object_new_int64((int64_t)cs.memory_current));
			json_object_object_add(o, "memory_limit_bytes",
					       cs.memory_max == UINT64_MAX ? json_object_new_null()
									   : json_object_new_int64((int64_t)cs.memory_max));
			json_object_object_add(o, "oom_kills", json_object_new_int64((int64_t)cs.oom_kills));
			json_object_object_add(o, "cpu_ns", json_object_new_int64((int64_t)cs.cpu_usage_ns));
			json_object_object_add(o, "pids", json_object_new_int64((int64_t)cs.pids_current));
			json_object_object_add(o, "disk_bytes", json_object_new_int64((int64_t)bytes));
			json_object_object_add(o, "disk_inodes", json_object_new_int64((int64_t)inodes));
			json_object_object_add(o, "io_read_bytes", json_object_new_int64((int64_t)cs.io_read_bytes));
			json_object_object_add(o, "io_write_bytes", json_object_new_int64((int64_t)cs.io_write_bytes));
			json_object_object_add(o, "status", json_object_new_string(status));
			if (reason[0])
				json_object_object_add(o, "reason", json_object_new_string(reason));
			json_object_array_add(arr, o);
		} else {
			char lim[32];
			if (cs.memory_max == UINT64_MAX)
				snprintf(lim, sizeof(lim), "-");
			else
				snprintf(lim, sizeof(lim), "%.1fM", cs.memory_max / 1048576.0);
			printf("%-24s %9.1fM %10s %10.2f %6llu %9.1fM %8llu %9.1fM %9.1fM %s%s%s\n", names[i],
			       cs.memory_current / 1048576.0, lim, cs.cpu_usage_ns / 1e9,
			       (unsigned long long)cs.pids_current, bytes / 1048576.0, (unsigned long long)inodes,
			       cs.io_read_bytes / 1048576.0, cs.io_write_bytes / 1048576.0, status,
			       reason[0] ? ": " : "", reason);
		}
	}
	if (arr) {
		cli_print_json(stdout, arr);
	}
	if (all) {
		for (size_t i = 0; i < count; i++)
			free(names[i]);
		free(names);
	}
	cli_args_release(&a);
	return rc;
}
