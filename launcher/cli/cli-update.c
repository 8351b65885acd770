/* corral update NAME [--memory SIZE] [--memory-swap SIZE] [--cpus N]
 * [--cpu-weight N] [--pids N]: new limits for a container, parsed by the
 * container module's own parsers, checked as at create, applied to a
 * running container's cgroup and saved to its config (atomically); a
 * stopped container gets them at its next start. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "container/container-config.h"
#include "container/state.h"
#include "kv.h"
#include "start/start.h"

static int parse_int(const char *what, const char *s, uint64_t min, uint64_t max, int64_t *ret,
		     struct corral_error *err)
{
	uint64_t v;
	if (parse_u64_max(s, max, &v) < 0 || v < min)
		return err_plain(err, EINVAL, "invalid %s '%s': expected a whole number from %llu to %llu", what, s,
				 (unsigned long long)min, (unsigned long long)max);
	*ret = (int64_t)v;
	return 0;
}

static int apply(struct container_config *c, const char *opt, const char *arg, struct corral_error *err)
{
	uint64_t size;
	int r;
	if (!strcmp(opt, "--memory") || !strcmp(opt, "-m")) {
		if ((r = config_parse_size("memory limit", arg, &size, err)) == 0)
			c->limits.memory_max = (int64_t)size;
		return r;
	}
	if (!strcmp(opt, "--memory-swap")) {
		if ((r = config_parse_size("swap limit", arg, &size, err)) == 0)
			c->limits.memory_swap_max = (int64_t)size;
		return r;
	}
	if (!strcmp(opt, "--cpus"))
		return config_parse_cpus(arg, &c->limits.cpu_quota_us, &c->limits.cpu_period_us, err);
	if (!strcmp(opt, "--cpu-weight"))
		return parse_int("CPU weight", arg, 1, 10000, &c->limits.cpu_weight, err);
	if (!strcmp(opt, "--pids"))
		return parse_int("pids limit", arg, 1, 4194304, &c->limits.pids_max, err);
	return 1; /* not ours */
}

int cmd_update(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral update NAME [--memory SIZE] [--memory-swap SIZE] [--cpus N]\n"
		       "                          [--cpu-weight N] [--pids N]\n\n"
		       "Changes a container's limits (values as for create). A running container's cgroup\n"
		       "takes them at once; they are saved to its config either way, so a stopped one\n"
		       "starts with them. Lowering --memory below what the container uses makes the\n"
		       "kernel reclaim or OOM-kill inside it; lowering --pids below its count stops\n"
		       "new forks only.\n");
		return 0;
	}
	const char *name = NULL;
	int nopts = 0;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] != '-') {
			if (name)
				return cli_usage_error("update", "unexpected argument '%s'", argv[i]);
			name = argv[i];
		} else if (i + 1 >= argc)
			return cli_usage_error("update", "%s needs a value", argv[i]);
		else {
			i++;
			nopts++;
		}
	}
	if (!name)
		return cli_usage_error("update", "no container name given");
	if (!nopts)
		return cli_usage_error("update", "nothing to change: give --memory, --cpus, --pids, ...");
	struct corral_error err = { 0 };
	char dir[PATH_MAX], path[PATH_MAX];
	struct container_config c;
	if (name_validate("container", name, &err) < 0 || state_path(dir, sizeof(dir), name, NULL, &err) < 0 ||
	    state_path(path, sizeof(path), name, "config", &err) < 0)
		return cli_fail(&err);
	if (access(dir, F_OK) < 0) {
		err_plain(&err, ENOENT, "no such container: %s", name);
		return cli_fail(&err);
	}
	if (config_load(path, &c, &err) < 0)
		return cli_fail(&err);
	struct cgroup_limits old = c.limits;
	int rc = 0;
	for (int i = 1; i < argc && !rc; i++) {
		if (argv[i][0] != '-')
			continue;
		int r = apply(&c, argv[i], argv[i + 1], &err);
		if (r > 0)
			rc = cli_usage_error("update", "unknown option '%s'", argv[i]);
		else if (r < 0)
			rc = cli_fail(&err);
		i++;
	}
	bool applied = false;
	if (!rc && container_update(name, &c, &old, &applied, &err) < 0)
		rc = cli_fail(&err);
	else if (!rc)
		printf("%s%s\n", name, applied ? "" : " (not running: saved for its next start)");
	config_release(&c);
	return rc;
}
