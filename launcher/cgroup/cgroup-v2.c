/* cgroup v2 backend: one tree; a controller reaches a cgroup only when
 * every ancestor enables it in cgroup.subtree_control. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cgroup-internal.h"
#include "cleanup.h"

static bool has(const struct cg_hier *h, enum cg_ctrl c)
{
	return h->ctrls & CG_BIT(c);
}

/* Enables `want` in dir/cgroup.subtree_control.  One write does it when
 * all goes well; on failure each controller is tried alone, so the error
 * names the one refused.  Refusals outside `need` only shrink *ret. */
static int v2_enable(const char *dir, unsigned want, unsigned need, unsigned *ret,
		     struct corral_error *err)
{
	cleanup_free char *text = NULL;
	char list[128];
	int r = cg_read(dir, "cgroup.subtree_control", &text, err);

	if (r < 0)
		return r;
	unsigned cur = cg_parse_v2_list(text), missing = want & ~cur;
	*ret = want;
	if (!missing)
		return 0;
	cg_format_v2_list(missing, true, list, sizeof(list));
	if (cg_write(dir, "cgroup.subtree_control", list, NULL) == 0)
		return 0;
	for (int c = 0; c < CG_NCTRL; c++) {
		if (!(missing & CG_BIT(c)))
			continue;
		cg_format_v2_list(CG_BIT(c), true, list, sizeof(list));
		r = cg_write(dir, "cgroup.subtree_control", list, err);
		if (r == 0)
			continue;
		if (need & CG_BIT(c)) {
			if (r == -EBUSY)
				err_wrap(err, "%s holds processes, so it cannot pass the \"%s\" controller "
					 "down; start corral from a cgroup delegated to it", dir, cg_v2_names[c]);
			return r;
		}
		*ret &= ~CG_BIT(c);
	}
	return 0;
}

static int v2_init_dir(struct cg_hier *h, const char *dir, const char *from,
		       struct corral_error *err)
{
	unsigned enabled;

	if (strcmp(dir, h->parent) != 0)
		return 0; /* the leaf uses its controllers and hands none down */
	/* Everything enabled above must come through: "corral" has no
	 * processes of its own, so a refusal here is a real error. */
	return v2_enable(dir, h->ctrls & CG_V2_ENABLED, h->ctrls & CG_V2_ENABLED, &enabled, err);
}

bool cg_v2_rebase_to_root(struct cg_hier *h)
{
	if (!h->point[0] || !strcmp(h->own, h->point))
		return false;
	const char *slash = strrchr(h->leaf, '/');
	const char *name = slash ? slash + 1 : h->leaf;
	size_t plen = strlen(h->point), nlen = strlen(name);
	if (plen + sizeof("/" CG_PARENT "/") + nlen > sizeof(h->leaf))
		return false;
	char leaf[PATH_MAX];
	memcpy(leaf, h->point, plen);
	memcpy(leaf + plen, "/" CG_PARENT "/", sizeof("/" CG_PARENT "/") - 1);
	memcpy(leaf + plen + sizeof("/" CG_PARENT "/") - 1, name, nlen + 1);
	memcpy(h->own, h->point, plen + 1);
	memcpy(h->parent, leaf, plen + sizeof("/" CG_PARENT) - 1);
	h->parent[plen + sizeof("/" CG_PARENT) - 1] = '\0';
	memcpy(h->leaf, leaf, strlen(leaf) + 1);
	return true;
}

/* Sets (and with `make`, creates) h->tasks where v2 holds the freezer;
 * see struct cg_hier. */
static int v2_tasks(struct cg_hier *h, bool make, struct corral_error *err)
{
	h->tasks[0] = '\0';
	if (!(h->ctrls & CG_BIT(CG_FREEZER)))
		return 0;
	char dir[PATH_MAX];
	int n = snprintf(dir, sizeof(dir), "%s/" CG_TASKS, h->leaf);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return err_plain(err, ENAMETOOLONG, "cgroup path %s/" CG_TASKS " too long", h->leaf);
	if (make && mkdir(dir, 0755) < 0 && errno != EEXIST)
		return err_set(err, errno, "create cgroup %s", dir);
	if (cg_is_dir(dir))
		memcpy(h->tasks, dir, (size_t)n + 1);
	return 0;
}

static int v2_prepare(struct cg_hier *h, unsigned need, struct corral_error *err)
{
	cleanup_free char *text = NULL;
	unsigned enabled;
	int r = cg_read(h->own, "cgroup.controllers", &text, err);

	if (r < 0)
		return r;
	unsigned avail = cg_parse_v2_list(text), want = h->ctrls & CG_V2_ENABLED & avail;
	unsigned absent = need & CG_V2_ENABLED & ~avail;
	for (int c = 0; c < CG_NCTRL; c++)
		if (absent & CG_BIT(c))
			return err_plain(err, ENOTSUP, "a limit needs the cgroup controller \"%s\", which "
					 "%s/cgroup.controllers does not offer", cg_v2_names[c], h->own);
	r = v2_enable(h->own, want, need, &enabled, err);
	if (r == -EBUSY && cg_v2_rebase_to_root(h)) {
		/* Own cgroup holds processes: use the v2 root, which may
		 * always pass controllers down (v2_open looks there too). */
		free(text);
		text = NULL;
		r = cg_read(h->own, "cgroup.controllers", &text, err);
		if (r < 0)
			return r;
		avail = cg_parse_v2_list(text);
		want = h->ctrls & CG_V2_ENABLED & avail;
		r = v2_enable(h->own, want, need, &enabled, err);
	}
	if (r < 0)
		return r;
	h->ctrls = (h->ctrls & ~CG_V2_ENABLED) | enabled;
	r = cg_make_dirs(h, v2_init_dir, err);
	return r < 0 ? r : v2_tasks(h, true, err);
}

static int v2_open(struct cg_hier *h, struct corral_error *err)
{
	cleanup_free char *text = NULL;
	/* The leaf may live under the v2 root (see v2_prepare). */
	if (!cg_is_dir(h->leaf) && !(cg_v2_rebase_to_root(h) && cg_is_dir(h->leaf)))
		return -ENOENT;
	int r = cg_read(h->parent, "cgroup.subtree_control", &text, err);

	if (r < 0)
		return r;
	h->ctrls &= ~CG_V2_ENABLED | cg_parse_v2_list(text);
	return v2_tasks(h, false, err);
}

/* "max" for CGROUP_UNSET, else the number. */
static void fmt_limit(char *buf, size_t size, int64_t v)
{
	if (v == CGROUP_UNSET)
		snprintf(buf, size, "max");
	else
		snprintf(buf, size, "%lld", (long long)v);
}

static int write_limit(const char *dir, const char *file, int64_t v, struct corral_error *err)
{
	char buf[32];

	fmt_limit(buf, sizeof(buf), v);
	return cg_write(dir, file, buf, err);
}

static int v2_memory(struct cg_hier *h, const struct cgroup_limits *lim, bool reset,
		     struct corral_error *err)
{
	int r = 0;

	if (lim->memory_max != CGROUP_UNSET || reset)
		r = write_limit(h->leaf, "memory.max", lim->memory_max, err);
	if (r < 0)
		return r;
	if (lim->memory_swap_max != CGROUP_UNSET && !cg_exists(h->leaf, "memory.swap.max"))
		return err_plain(err, ENOTSUP, "cannot limit swap: %s/memory.swap.max is missing",
				 h->leaf);
	if (lim->memory_swap_max != CGROUP_UNSET || (reset && cg_exists(h->leaf, "memory.swap.max")))
		r = write_limit(h->leaf, "memory.swap.max", lim->memory_swap_max, err);
	if (r < 0)
		return r;
	/* An OOM kill takes the whole container, never a host process and
	 * never half a container that then limps on. */
	return cg_write(h->leaf, "memory.oom.group", "1", err);
}

static int v2_cpu(struct cg_hier *h, const struct cgroup_limits *lim, bool reset,
		  struct corral_error *err)
{
	int64_t period = lim->cpu_period_us == CGROUP_UNSET ? 100000 : lim->cpu_period_us;
	char quota[32];
	int r = 0;

	if (lim->cpu_quota_us != CGROUP_UNSET || reset) {
		fmt_limit(quota, sizeof(quota), lim->cpu_quota_us);
		r = cg_writef(h->leaf, "cpu.max", err, "%s %lld", quota, (long long)period);
	}
	if (r >= 0 && (lim->cpu_weight != CGROUP_UNSET || reset))
		r = cg_writef(h->leaf, "cpu.weight", err, "%lld",
			      (long long)(lim->cpu_weight == CGROUP_UNSET ? 100 : lim->cpu_weight));
	return r;
}

static int v2_cpuset(struct cg_hier *h, const struct cgroup_limits *lim, bool reset,
		     struct corral_error *err)
{
	int r = 0;

	/* An empty v2 cpuset inherits the parent's ("\n": empty writes are
	 * not passed to the kernel handler). */
	if (lim->cpuset_cpus[0] || reset)
		r = cg_write(h->leaf, "cpuset.cpus", lim->cpuset_cpus[0] ? lim->cpuset_cpus : "\n", err);
	if (r >= 0 && (lim->cpuset_mems[0] || reset))
		r = cg_write(h->leaf, "cpuset.mems", lim->cpuset_mems[0] ? lim->cpuset_mems : "\n", err);
	return r;
}

/* One io.max line per device, naming only the limits that are set. */
static int v2_io(struct cg_hier *h, const struct cgroup_limits *lim, struct corral_error *err)
{
	for (int i = 0; i < lim->nio; i++) {
		const struct cgroup_io_limit *io = &lim->io[i];
		const struct {
			const char *key;
			int64_t v;
		} f[] = { { "rbps", io->rbps }, { "wbps", io->wbps }, { "riops", io->riops },
			  { "wiops", io->wiops } };
		char line[256];
		size_t len = (size_t)snprintf(line, sizeof(line), "%u:%u", io->major, io->minor);
		for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++)
			if (f[k].v != CGROUP_UNSET)
				len += (size_t)snprintf(line + len, sizeof(line) - len, " %s=%lld", f[k].key,
							(long long)f[k].v);
		if (!strchr(line, '='))
			continue;
		int r = cg_write(h->leaf, "io.max", line, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int v2_apply(struct cg_hier *h, const struct cgroup_limits *lim, struct corral_error *err)
{
	bool reset = !h->created_leaf;
	int r = 0;

	if (has(h, CG_MEMORY))
		r = v2_memory(h, lim, reset, err);
	if (r >= 0 && has(h, CG_CPU))
		r = v2_cpu(h, lim, reset, err);
	if (r >= 0 && has(h, CG_CPUSET))
		r = v2_cpuset(h, lim, reset, err);
	if (r >= 0 && has(h, CG_PIDS) && (lim->pids_max != CGROUP_UNSET || reset))
		r = write_limit(h->leaf, "pids.max", lim->pids_max, err);
	if (r >= 0 && has(h, CG_IO))
		r = v2_io(h, lim, err);
	return r;
}

/* Sums io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0"). */
static int v2_io_stats(struct cg_hier *h, struct cgroup_stats *st, struct corral_error *err)
{
	cleanup_free char *text = NULL;
	int r = cg_read(h->leaf, "io.stat", &text, err);

	if (r < 0)
		return r;
	st->io_read_bytes = st->io_write_bytes = st->io_read_ops = st->io_write_ops = 0;
	char *save = NULL;
	for (char *tok = strtok_r(text, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		unsigned long long v;
		char key[16];
		if (sscanf(tok, "%15[a-z]=%llu", key, &v) != 2)
			continue;
		if (strcmp(key, "rbytes") == 0)
			st->io_read_bytes += v;
		else if (strcmp(key, "wbytes") == 0)
			st->io_write_bytes += v;
		else if (strcmp(key, "rios") == 0)
			st->io_read_ops += v;
		else if (strcmp(key, "wios") == 0)
			st->io_write_ops += v;
	}
	return 0;
}

static int v2_keyed(const char *dir, const char *file, const char *key, uint64_t *ret,
		    struct corral_error *err)
{
	cleanup_free char *text = NULL;
	int r = cg_read(dir, file, &text, err);

	if (r < 0)
		return r;
	r = cg_keyed_u64(text, key, ret);
	return r < 0 ? err_plain(err, -r, "%s/%s: no valid \"%s\" line", dir, file, key) : 0;
}

static int v2_stats(struct cg_hier *h, struct cgroup_stats *st, struct corral_error *err)
{
	uint64_t usec;
	int r = 0;

	if (has(h, CG_MEMORY)) {
		r = cg_read_u64(h->leaf, "memory.current", &st->memory_current, err);
		if (r >= 0)
			r = cg_read_u64(h->leaf, "memory.max", &st->memory_max, err);
		if (r >= 0)
			r = v2_keyed(h->leaf, "memory.events", "oom_kill", &st->oom_kills, err);
	}
	if (r >= 0 && has(h, CG_CPUACCT)) {
		r = v2_keyed(h->leaf, "cpu.stat", "usage_usec", &usec, err);
		st->cpu_usage_ns = r >= 0 ? usec * 1000 : 0;
	}
	if (r >= 0 && has(h, CG_PIDS))
		r = cg_read_u64(h->leaf, "pids.current", &st->pids_current, err);
	if (r >= 0 && has(h, CG_PIDS))
		r = cg_read_u64(h->leaf, "pids.max", &st->pids_max, err);
	if (r >= 0 && has(h, CG_IO))
		r = v2_io_stats(h, st, err);
	return r;
}

static int v2_freeze(struct cg_hier *h, bool frozen, struct corral_error *err)
{
	/* The container's processes only: the daemon in the leaf goes on. */
	const char *dir = cg_tasks_dir(h);
	int r = cg_write(dir, "cgroup.freeze", frozen ? "1" : "0", err);

	if (r < 0 || !frozen)
		return r;
	r = cg_wait_line(dir, "cgroup.events", "frozen 1", 1000);
	return r < 0 ? err_set(err, -r, "wait for \"frozen 1\" in %s/cgroup.events", dir) : 0;
}

static int v2_frozen(struct cg_hier *h, bool *ret, struct corral_error *err)
{
	cleanup_free char *text = NULL;
	int r = cg_read(cg_tasks_dir(h), "cgroup.freeze", &text, err);

	if (r < 0)
		return r;
	*ret = text[0] == '1';
	return 0;
}

static int v2_kill(struct cg_hier *h, struct corral_error *err)
{
	if (!cg_exists(h->leaf, "cgroup.kill"))
		return -EOPNOTSUPP; /* before Linux 5.14 */
	return cg_write(h->leaf, "cgroup.kill", "1", err);
}

static int v2_enter_self(struct cg_hier *h, bool infrastructure, bool shared, struct corral_error *err)
{
	/* v2 has one tree: the daemon's threads count.  It stays in the
	 * leaf, out of the frozen tasks/ (see struct cg_hier).  v2 only moves
	 * whole processes.  Beside v1 hierarchies (a hybrid host), a v2 tree
	 * without our controllers is left out: kill_all signals whatever the
	 * v1 hierarchies list. */
	if (shared && !(h->ctrls & CG_V2_ENABLED))
		return 0;
	return cg_writef(infrastructure ? h->leaf : cg_tasks_dir(h), "cgroup.procs", err, "0");
}

const struct cg_backend cg_backend_v2 = {
	.name = "v2",
	.prepare = v2_prepare,
	.open = v2_open,
	.enter_self = v2_enter_self,
	.apply = v2_apply,
	.stats = v2_stats,
	.freeze = v2_freeze,
	.frozen = v2_frozen,
	.kill = v2_kill,
};
