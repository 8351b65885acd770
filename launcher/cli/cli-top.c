/* corral top NAME: the processes in a running container's cgroup -- pid
 * inside the container and on the host, user (as the container sees it),
 * command.  Everything shown comes from the kernel's /proc; the command
 * line is the container's to write, so non-printable bytes are escaped. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup/cgroup.h"
#include "cleanup.h"
#include "cli.h"
#include "container/state.h"
#include "fileio.h"
#include "template/template.h"

static int read_proc(pid_t pid, const char *leaf, char **ret, size_t *len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, leaf);
	return file_read_all(path, ret, len, NULL);
}

/* The last NSpid entry (the innermost namespace) and the real uid, in
 * the host's view and through the process's uid_map. */
static int proc_ids(pid_t pid, long *inner, long *host_uid, long *uid)
{
	cleanup_free char *status = NULL, *map = NULL;
	size_t len;
	if (read_proc(pid, "status", &status, &len) < 0)
		return -ESRCH;
	char *p = strstr(status, "\nNSpid:"), *end;
	*inner = pid;
	if (p)
		for (p += 7; *p && *p != '\n';) {
			long v = strtol(p, &end, 10);
			if (end == p)
				break;
			*inner = v;
			p = end;
		}
	p = strstr(status, "\nUid:");
	*host_uid = p ? strtol(p + 5, NULL, 10) : -1;
	*uid = *host_uid;
	if (read_proc(pid, "uid_map", &map, &len) == 0) {
		*uid = -1; /* unmapped: the kernel shows it as the overflow uid */
		for (char *l = map; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
			long in, out, count;
			if (sscanf(l, "%ld %ld %ld", &in, &out, &count) == 3 && *host_uid >= out &&
			    *host_uid < out + count) {
				*uid = in + (*host_uid - out);
				break;
			}
		}
	}
	return 0;
}

static void command_of(pid_t pid, char *buf, size_t size)
{
	cleanup_free char *raw = NULL;
	size_t len = 0, o = 0;
	buf[0] = '\0';
	if (read_proc(pid, "cmdline", &raw, &len) < 0 || !len) {
		cleanup_free char *comm = NULL;
		if (read_proc(pid, "comm", &comm, &len) < 0)
			return;
		raw = take_ptr(comm);
		if (len && raw[len - 1] == '\n')
			len--;
	}
	for (size_t i = 0; i < len && o + 5 < size; i++) {
		unsigned char c = (unsigned char)raw[i];
		if (c == '\0')
			buf[o++] = i + 1 < len ? ' ' : '\0';
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o < size ? o : size - 1] = '\0';
	/* An init that rewrote its argv in place leaves a padded tail. */
	for (o = strlen(buf); o && buf[o - 1] == ' '; o--)
		buf[o - 1] = '\0';
}

int cmd_top(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral [--json] top NAME\n\nThe processes of a running container: PID inside it, "
		       "HOST-PID, USER (the uid as the\ncontainer sees it; HOST-UID on the host) and COMMAND.\n");
		return 0;
	}
	cleanup_cli_args struct cli_args args = { 0 };
	CLI_PARSE_POSITIONAL("top", 1, 1, "no container name given", args);
	const char *name = argv[1];
	struct corral_error err = { 0 };
	struct container_state st;
	if (name_validate("container", name, &err) < 0 || state_load_running(name, &st, &err) < 0)
		return cli_fail(&err);
	struct cgroup *cg;
	cleanup_free pid_t *pids = NULL;
	size_t n = 0;
	char inst[CORRAL_INSTANCE_NAME_MAX];
	if (cgroup_open(state_instance_name(name, inst, sizeof(inst)), &cg, &err) < 0)
		return cli_fail(&err);
	int r = cgroup_pids(cg, &pids, &n, &err);
	cgroup_free(cg);
	if (r < 0)
		return cli_fail(&err);
	json_object *arr = cli_globals.json ? json_object_new_array() : NULL;
	if (!arr)
		printf("%-8s %-8s %-6s %-8s %s\n", "PID", "HOST-PID", "USER", "HOST-UID", "COMMAND");
	for (size_t i = 0; i < n; i++) {
		long inner, host_uid, uid;
		char cmd[1024];
		/* The root's cowfs daemon is charged to the cgroup, but it is
		 * the host's, not one of the container's processes. */
		if (pids[i] == st.cowfs_pid || proc_ids(pids[i], &inner, &host_uid, &uid) < 0)
			continue;
		command_of(pids[i], cmd, sizeof(cmd));
		if (arr) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "pid", json_object_new_int64(inner));
			json_object_object_add(o, "host_pid", json_object_new_int64(pids[i]));
			json_object_object_add(o, "uid", uid < 0 ? NULL : json_object_new_int64(uid));
			json_object_object_add(o, "host_uid", json_object_new_int64(host_uid));
			json_object_object_add(o, "command", json_object_new_string(cmd));
			json_object_array_add(arr, o);
		} else {
			char u[24];
			snprintf(u, sizeof(u), uid < 0 ? "-" : "%ld", uid);
			printf("%-8ld %-8d %-6s %-8ld %s\n", inner, (int)pids[i], u, host_uid, cmd);
		}
	}
	if (arr) {
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
								      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
	}
	return 0;
}
