/* corral list / inspect / stats: what exists and what it uses.
 * Status always comes from the kernel (see state.h), never from a file
 * alone, so it stays true after any corral process was killed. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
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

int cmd_list(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral [--json] list\n\nLists containers: name, status (from the kernel), "
		       "template, init pid, start time.\nStatus is created, running, exited, or broken (the init "
		       "runs but the root filesystem\ndoes not: its cowfs daemon is gone), with the reason; "
		       "stop or restart recovers.\n");
		return 0;
	}
	char **names;
	size_t count;
	if (cli_container_names(&names, &count) < 0) {
		fprintf(stderr, "corral: cannot read %s/containers: %s\n", state_root(), strerror(errno));
		return 1;
	}
	json_object *arr = cli_globals.json ? json_object_new_array() : NULL;
	if (!arr)
		printf("%-24s %-8s %-16s %-8s %s\n", "NAME", "STATUS", "TEMPLATE", "PID", "STARTED");
	for (size_t i = 0; i < count; i++) {
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
			json_object_array_add(arr, o);
		} else {
			char pidbuf[16];
			snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
			printf("%-24s %-8s %-16s %-8s %s%s%s\n", names[i], status, have_cfg ? c.template_name : "?",
			       pid ? pidbuf : "-", started, reason[0] ? "  " : "", reason);
		}
		if (have_cfg)
			config_release(&c);
		free(names[i]);
	}
	free(names);
	if (arr) {
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
		json_object_put(arr);
	}
	return 0;
}

static json_object *limit_json(int64_t v)
{
	return v == CGROUP_UNSET ? json_object_new_null() : json_object_new_int64(v);
}

int cmd_inspect(int argc, char **argv)
{
	if (cli_wants_help(argc, argv) || argc < 2) {
		printf("usage: corral inspect NAME\n\nPrints the configuration and runtime state as JSON, with the FUSE\n"
		       "features the kernel granted the root's cowfs mount (state.cowfs_features:\n"
		       "passthrough, io_uring, splice, writeback, share_base; null while not running).\n");
		return argc < 2 ? 125 : 0;
	}
	struct corral_error err = { 0 };
	struct container_config c;
	struct container_state st;
	char path[PATH_MAX], started[32], finished[32], caps[1024];
	if (state_path(path, sizeof(path), argv[1], "config", &err) < 0)
		return cli_fail(&err);
	if (access(path, F_OK) < 0) {
		fprintf(stderr, "corral: no such container: %s\n", argv[1]);
		return 1;
	}
	if (config_load(path, &c, &err) < 0)
		return cli_fail(&err);
	state_load(argv[1], &st, NULL);
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
	json_object_object_add(lim, "cpuset_cpus", json_object_new_string(c.limits.cpuset_cpus));
	json_object_object_add(lim, "pids", limit_json(c.limits.pids_max));
	json_object_object_add(lim, "disk_bytes", json_object_new_int64((int64_t)c.disk_bytes));
	json_object_object_add(lim, "disk_inodes", json_object_new_int64((int64_t)c.disk_inodes));
	json_object_object_add(o, "limits", lim);
	json_object_object_add(o, "network", json_object_new_string(net_mode_name(c.net.mode)));
	json_object_object_add(o, "capabilities", json_object_new_string(caps));
	json_object_object_add(o, "seccomp",
			       json_object_new_string(c.seccomp == SECCOMP_DEFAULT ? "default" : "unconfined"));
	json_object_object_add(o, "userns", json_object_new_boolean(c.userns));
	if (c.userns) {
		char range[32];
		snprintf(range, sizeof(range), "%u:%u", c.userns_base, c.userns_size);
		json_object_object_add(o, "userns_range", json_object_new_string(range));
	}
	json_object_object_add(o, "console_size", json_object_new_int64((int64_t)c.console_size));
	json_object_object_add(o, "autostart", json_object_new_boolean(c.autostart));
	json_object_object_add(o, "autostart_order", json_object_new_int64(c.autostart_order));
	/* Store-backed: written files move into the host's block store,
	 * under this root (README, "store"). */
	json_object_object_add(o, "store", json_object_new_boolean(c.store));
	if (c.store) {
		char root[CORRAL_NAME_MAX + 32];
		if (state_store_root(root, sizeof(root), c.name, NULL) == 0)
			json_object_object_add(o, "store_root", json_object_new_string(root));
	}
	json_object *s = json_object_new_object();
	char reason[512];
	json_object_object_add(s, "status", json_object_new_string(state_check(argv[1], &st, reason, sizeof(reason))));
	if (reason[0])
		json_object_object_add(s, "reason", json_object_new_string(reason));
	json_object_object_add(s, "pid", json_object_new_int(state_init_alive(&st) ? st.init_pid : 0));
	json_object_object_add(s, "cowfs_pid", json_object_new_int(state_cowfs_alive(&st) ? st.cowfs_pid : 0));
	json_object_object_add(s, "started", json_object_new_string(started));
	json_object_object_add(s, "finished", json_object_new_string(finished));
	json_object_object_add(s, "exit_code", json_object_new_int(st.exit_code));
	if (st.address[0])
		json_object_object_add(s, "address", json_object_new_string(st.address));
	/* What the kernel granted the root's cowfs mount; null while no
	 * daemon of this run has reported (stopped, or not yet past INIT). */
	struct cowfs_features f;
	if (state_cowfs_features(argv[1], &st, &f, NULL) == 0) {
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
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
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
	char **names = NULL;
	size_t count = 0;
	bool all = argc < 2;
	if (all)
		cli_container_names(&names, &count);
	else {
		names = argv + 1;
		count = (size_t)argc - 1;
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
				fprintf(stderr, "corral: container %s is not running\n", names[i]);
				rc = 1;
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
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
		json_object_put(arr);
	}
	if (all) {
		for (size_t i = 0; i < count; i++)
			free(names[i]);
		free(names);
	}
	return rc;
}
