/* cgroup v1 backend: one hierarchy per mount, each holding one or a few
 * controllers (cpu and cpuacct are often mounted together). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup-internal.h"
#include "cleanup.h"

/* Past this a v1 limit means "none" (the kernel shows the page counter's
 * maximum, 0x7ffffffffffff000 on 4k pages). */
#define V1_UNLIMITED (UINT64_C(1) << 62)
#define V1_DEFAULT_SHARES 1024
#define V2_DEFAULT_WEIGHT 100

static bool has(const struct cg_hier *h, enum cg_ctrl c)
{
	return h->ctrls & CG_BIT(c);
}

/* Copies a cpuset file from `from` when `dir` has none: a new v1 cpuset
 * starts with empty cpus and mems and refuses tasks until they are set. */
static int copy_if_empty(const char *dir, const char *from, const char *file,
			 struct corral_error *err)
{
	cleanup_free char *cur = NULL, *val = NULL;
	int r = cg_read(dir, file, &cur, err);

	if (r < 0)
		return r;
	if (strspn(cur, " \n") != strlen(cur))
		return 0;
	r = cg_read(from, file, &val, err);
	if (r < 0)
		return r;
	val[strcspn(val, "\n")] = '\0';
	return cg_write(dir, file, val, err);
}

static int v1_init_dir(struct cg_hier *h, const char *dir, const char *from,
		       struct corral_error *err)
{
	cleanup_free char *notify = NULL;
	int r;

	/* notify_on_release is inherited from the parent at mkdir; a set flag
	 * would run the hierarchy's release_agent when we empty out.  Never
	 * leave it on in our directories. */
	if (cg_read(dir, "notify_on_release", &notify, NULL) == 0 && notify[0] != '0') {
		r = cg_write(dir, "notify_on_release", "0", err);
		if (r < 0)
			return r;
	}
	if (!has(h, CG_CPUSET))
		return 0;
	r = copy_if_empty(dir, from, "cpuset.cpus", err);
	return r < 0 ? r : copy_if_empty(dir, from, "cpuset.mems", err);
}

static int v1_prepare(struct cg_hier *h, unsigned need, struct corral_error *err)
{
	return cg_make_dirs(h, v1_init_dir, err);
}

static int v1_open(struct cg_hier *h, struct corral_error *err)
{
	(void)err;
	return cg_is_dir(h->leaf) ? 0 : -ENOENT;
}

static int v1_enter_self(struct cg_hier *h, bool infrastructure, bool shared, struct corral_error *err)
{
	(void)shared;
	/* A hierarchy that only counts processes is skipped for the cowfs
	 * daemon, so the container's pids limit counts its own tasks; so is
	 * one that only freezes: a FUSE server frozen with its clients never
	 * answers the request a client waits on, and the freeze never
	 * completes (corral snapshot of a running container). */
	if (infrastructure && (h->ctrls == CG_BIT(CG_PIDS) || h->ctrls == CG_BIT(CG_FREEZER)))
		return 0;
	/* Moving the calling thread through "tasks" skips the global
	 * threadgroup lock, whose writer waits for an RCU grace period
	 * (~10 ms here) on every process move.  The caller is
	 * single-threaded, so the thread is the process. */
	return cg_writef(h->leaf, "tasks", err, "0");
}

static int write_i64(const char *dir, const char *file, int64_t v, struct corral_error *err)
{
	return cg_writef(dir, file, err, "%lld", (long long)v);
}

static int v1_memory(struct cg_hier *h, const struct cgroup_limits *lim, bool reset,
		     struct corral_error *err)
{
	const char *memsw = "memory.memsw.limit_in_bytes";
	bool swap_acct = cg_exists(h->leaf, memsw);
	int r;

	if (lim->memory_swap_max != CGROUP_UNSET && !swap_acct)
		return err_plain(err, ENOTSUP, "cannot limit swap: %s/%s is missing (swap accounting "
				 "is off)", h->leaf, memsw);
	/* memsw must never drop below the memory limit: lift it first. */
	if (reset && swap_acct && (r = cg_write(h->leaf, memsw, "-1", err)) < 0)
		return r;
	if (lim->memory_max != CGROUP_UNSET)
		r = write_i64(h->leaf, "memory.limit_in_bytes", lim->memory_max, err);
	else
		r = reset ? cg_write(h->leaf, "memory.limit_in_bytes", "-1", err) : 0;
	if (r < 0)
		return r;
	if (lim->memory_swap_max != CGROUP_UNSET) {
		r = write_i64(h->leaf, memsw, lim->memory_max + lim->memory_swap_max, err);
		if (r < 0)
			return r;
	}
	/* Keep the OOM killer on: at the limit it kills inside this cgroup,
	 * where oom_kill_disable would leave the container hung instead. */
	return cg_write(h->leaf, "memory.oom_control", "0", err);
}

/* v2 weight 1..10000 (default 100) to v1 shares 2..262144 (default
 * 1024), proportionally: weights are relative, so keeping the defaults
 * aligned keeps a container level with the host's other cgroups. */
static int64_t weight_to_shares(int64_t weight)
{
	int64_t shares = weight * V1_DEFAULT_SHARES / V2_DEFAULT_WEIGHT;

	return shares < 2 ? 2 : shares > 262144 ? 262144 : shares;
}

static int v1_cpu(struct cg_hier *h, const struct cgroup_limits *lim, bool reset,
		  struct corral_error *err)
{
	int64_t period = lim->cpu_period_us == CGROUP_UNSET ? 100000 : lim->cpu_period_us;
	int r = 0;

	if (lim->cpu_quota_us != CGROUP_UNSET || reset) {
		r = write_i64(h->leaf, "cpu.cfs_period_us", period, err);
		if (r >= 0)
			r = write_i64(h->leaf, "cpu.cfs_quota_us",
				      lim->cpu_quota_us == CGROUP_UNSET ? -1 : lim->cpu_quota_us, err);
	}
	if (r >= 0 && (lim->cpu_weight != CGROUP_UNSET || reset))
		r = write_i64(h->leaf, "cpu.shares",
			      lim->cpu_weight == CGROUP_UNSET ? V1_DEFAULT_SHARES
							      : weight_to_shares(lim->cpu_weight),
			      err);
	return r;
}

static int v1_cpuset_one(struct cg_hier *h, const char *file, const char *val, bool reset,
			 struct corral_error *err)
{
	cleanup_free char *inherit = NULL;
	int r;

	if (val[0])
		return cg_write(h->leaf, file, val, err);
	if (!reset)
		return 0;
	r = cg_read(h->parent, file, &inherit, err);
	if (r < 0)
		return r;
	inherit[strcspn(inherit, "\n")] = '\0';
	return cg_write(h->leaf, file, inherit, err);
}

static int v1_io(struct cg_hier *h, const struct cgroup_limits *lim, struct corral_error *err)
{
	for (int i = 0; i < lim->nio; i++) {
		const struct cgroup_io_limit *io = &lim->io[i];
		const struct {
			const char *file;
			int64_t v;
		} f[] = {
			{ "blkio.throttle.read_bps_device", io->rbps },
			{ "blkio.throttle.write_bps_device", io->wbps },
			{ "blkio.throttle.read_iops_device", io->riops },
			{ "blkio.throttle.write_iops_device", io->wiops },
		};
		for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
			if (f[k].v == CGROUP_UNSET)
				continue;
			int r = cg_writef(h->leaf, f[k].file, err, "%u:%u %lld", io->major, io->minor,
					  (long long)f[k].v);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int v1_apply(struct cg_hier *h, const struct cgroup_limits *lim, struct corral_error *err)
{
	bool reset = !h->created_leaf;
	int r = 0;

	if (has(h, CG_MEMORY))
		r = v1_memory(h, lim, reset, err);
	if (r >= 0 && has(h, CG_CPU))
		r = v1_cpu(h, lim, reset, err);
	if (r >= 0 && has(h, CG_CPUSET))
		r = v1_cpuset_one(h, "cpuset.cpus", lim->cpuset_cpus, reset, err);
	if (r >= 0 && has(h, CG_CPUSET))
		r = v1_cpuset_one(h, "cpuset.mems", lim->cpuset_mems, reset, err);
	if (r >= 0 && has(h, CG_PIDS) && (lim->pids_max != CGROUP_UNSET || reset))
		r = lim->pids_max == CGROUP_UNSET ? cg_write(h->leaf, "pids.max", "max", err)
						  : write_i64(h->leaf, "pids.max", lim->pids_max, err);
	if (r >= 0 && has(h, CG_IO))
		r = v1_io(h, lim, err);
	return r;
}

/* Sums the Read and Write lines of a blkio.throttle.* statistics file
 * ("8:0 Read 4096"; the closing "Total N" line has no device). */
static int v1_blkio_sum(const char *dir, const char *file, uint64_t *rd, uint64_t *wr,
			struct corral_error *err)
{
	cleanup_free char *text = NULL;
	int r = cg_read(dir, file, &text, err);

	if (r < 0)
		return r;
	*rd = *wr = 0;
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		char dev[32], op[16];
		unsigned long long v;
		if (sscanf(p, "%31s %15s %llu", dev, op, &v) != 3)
			continue;
		if (strcmp(op, "Read") == 0)
			*rd += v;
		else if (strcmp(op, "Write") == 0)
			*wr += v;
	}
	return 0;
}

static int v1_memory_stats(struct cg_hier *h, struct cgroup_stats *st, struct corral_error *err)
{
	cleanup_free char *oom = NULL;
	uint64_t max;
	int r = cg_read_u64(h->leaf, "memory.usage_in_bytes", &st->memory_current, err);

	if (r >= 0)
		r = cg_read_u64(h->leaf, "memory.limit_in_bytes", &max, err);
	if (r >= 0)
		r = cg_read(h->leaf, "memory.oom_control", &oom, err);
	if (r < 0)
		return r;
	st->memory_max = max >= V1_UNLIMITED ? UINT64_MAX : max;
	st->oom_kills = 0;
	cg_keyed_u64(oom, "oom_kill", &st->oom_kills); /* absent before 4.13 */
	return 0;
}

static int v1_stats(struct cg_hier *h, struct cgroup_stats *st, struct corral_error *err)
{
	int r = 0;

	if (has(h, CG_MEMORY))
		r = v1_memory_stats(h, st, err);
	if (r >= 0 && has(h, CG_CPUACCT))
		r = cg_read_u64(h->leaf, "cpuacct.usage", &st->cpu_usage_ns, err);
	if (r >= 0 && has(h, CG_PIDS))
		r = cg_read_u64(h->leaf, "pids.current", &st->pids_current, err);
	if (r >= 0 && has(h, CG_PIDS))
		r = cg_read_u64(h->leaf, "pids.max", &st->pids_max, err);
	if (r >= 0 && has(h, CG_IO))
		r = v1_blkio_sum(h->leaf, "blkio.throttle.io_service_bytes_recursive",
				 &st->io_read_bytes, &st->io_write_bytes, err);
	if (r >= 0 && has(h, CG_IO))
		r = v1_blkio_sum(h->leaf, "blkio.throttle.io_serviced_recursive", &st->io_read_ops,
				 &st->io_write_ops, err);
	return r;
}

static int v1_freeze(struct cg_hier *h, bool frozen, struct corral_error *err)
{
	int r = cg_write(h->leaf, "freezer.state", frozen ? "FROZEN" : "THAWED", err);

	if (r < 0 || !frozen)
		return r;
	/* The state reads FREEZING until every task has stopped. */
	r = cg_wait_line(h->leaf, "freezer.state", "FROZEN", 1000);
	return r < 0 ? err_set(err, -r, "wait for %s/freezer.state to read FROZEN", h->leaf) : 0;
}

static int v1_frozen(struct cg_hier *h, bool *ret, struct corral_error *err)
{
	cleanup_free char *text = NULL;
	int r = cg_read(h->leaf, "freezer.state", &text, err);

	if (r < 0)
		return r;
	/* FREEZING counts: a pause in progress (or stuck) is not running. */
	*ret = strncmp(text, "THAWED", 6) != 0;
	return 0;
}

static int v1_kill(struct cg_hier *h, struct corral_error *err)
{
	return -EOPNOTSUPP;
}

const struct cg_backend cg_backend_v1 = {
	.name = "v1",
	.prepare = v1_prepare,
	.open = v1_open,
	.enter_self = v1_enter_self,
	.apply = v1_apply,
	.stats = v1_stats,
	.freeze = v1_freeze,
	.frozen = v1_frozen,
	.kill = v1_kill,
};
