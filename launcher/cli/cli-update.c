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

/* The options in the order given (a later one wins, as at create). */
struct update_opts {
	size_t n;
	const char *opt[16], *value[16];
};

static int update_opt(int opt, const char *arg, void *ctx)
{
	static const char *const names[] = { "--memory", "--memory-swap", "--cpus", "--cpu-weight", "--pids" };
	struct update_opts *u = ctx;
	if (u->n == 16)
		return cli_usage_error("update", "too many options");
	u->opt[u->n] = opt == 'm' ? "--memory" : names[opt];
	u->value[u->n++] = arg;
	return 0;
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
	static const struct option opts[] = {
		{ "memory", required_argument, NULL, 0 },     { "memory-swap", required_argument, NULL, 1 },
		{ "cpus", required_argument, NULL, 2 },       { "cpu-weight", required_argument, NULL, 3 },
		{ "pids", required_argument, NULL, 4 },       { 0 },
	};
	struct cli_spec spec = { .cmd = "update", .shortopts = "m:", .longopts = opts, .min_args = 1, .max_args = 1,
				 .missing = "no container name given" };
	struct update_opts uo = { 0 };
	cleanup_cli_args struct cli_args args = { 0 };
	int prc = cli_parse(&spec, argc, argv, update_opt, &uo, &args);
	if (prc)
		return prc;
	const char *name = args.argv[0];
	if (!uo.n)
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
	for (size_t i = 0; i < uo.n && !rc; i++) {
		int r = apply(&c, uo.opt[i], uo.value[i], &err);
		if (r > 0)
			rc = cli_usage_error("update", "unknown option '%s'", uo.opt[i]);
		else if (r < 0)
			rc = cli_fail(&err);
	}
	bool applied = false;
	if (!rc && container_update(name, &c, &old, &applied, &err) < 0)
		rc = cli_fail(&err);
	else if (!rc)
		printf("%s%s\n", name, applied ? "" : " (not running: saved for its next start)");
	config_release(&c);
	return rc;
}
