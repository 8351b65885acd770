/* cgroup: the public API.  Which hierarchy drives which controller is
 * settled in cgroup-discover.c; everything that differs between v1 and v2
 * -- limit and statistics files, where a leaf lives, how a process moves
 * in -- is the backends' business (cgroup-v1.c, cgroup-v2.c), reached only
 * through their vtable.  The file helpers they share are in
 * cgroup-files.c. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "cleanup.h"
#include "fileio.h"

#define KILL_TIMEOUT_MS 5000

/* ---- limits ---- */

void cgroup_limits_init(struct cgroup_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	lim->memory_max = lim->memory_swap_max = CGROUP_UNSET;
	lim->cpu_quota_us = lim->cpu_period_us = lim->cpu_weight = CGROUP_UNSET;
	lim->pids_max = CGROUP_UNSET;
	for (size_t i = 0; i < sizeof(lim->io) / sizeof(lim->io[0]); i++)
		lim->io[i].rbps = lim->io[i].wbps = lim->io[i].riops = lim->io[i].wiops = CGROUP_UNSET;
}

static bool cpuset_ok(const char *s, size_t size)
{
	if (!memchr(s, '\0', size))
		return false;
	return strspn(s, "0123456789,-") == strlen(s);
}

static bool set_or_unset(int64_t v, int64_t min)
{
	return v == CGROUP_UNSET || v >= min;
}

int cgroup_limits_validate(const struct cgroup_limits *lim, struct corral_error *err)
{
	const char *bad = NULL;

	if (!set_or_unset(lim->memory_max, 1))
		bad = "memory limit";
	else if (!set_or_unset(lim->memory_swap_max, 0))
		bad = "swap limit";
	else if (lim->memory_swap_max != CGROUP_UNSET && lim->memory_max == CGROUP_UNSET)
		bad = "swap limit without a memory limit";
	else if (!set_or_unset(lim->cpu_quota_us, 1000))
		bad = "CPU quota (at least 1000 us)";
	else if (lim->cpu_period_us != CGROUP_UNSET &&
		 (lim->cpu_period_us < 1000 || lim->cpu_period_us > 1000000))
		bad = "CPU period (1000..1000000 us)";
	else if (lim->cpu_weight != CGROUP_UNSET && (lim->cpu_weight < 1 || lim->cpu_weight > 10000))
		bad = "CPU weight (1..10000)";
	else if (!cpuset_ok(lim->cpuset_cpus, sizeof(lim->cpuset_cpus)) ||
		 !cpuset_ok(lim->cpuset_mems, sizeof(lim->cpuset_mems)))
		bad = "cpuset (digits, ',' and '-')";
	else if (!set_or_unset(lim->pids_max, 1))
		bad = "process limit";
	else if (lim->nio < 0 || lim->nio > (int)(sizeof(lim->io) / sizeof(lim->io[0])))
		bad = "number of I/O limits";
	for (int i = 0; !bad && i < lim->nio; i++) {
		const struct cgroup_io_limit *io = &lim->io[i];
		/* 0 means "no limit" to v1: refuse it rather than lift a cap. */
		if (!set_or_unset(io->rbps, 1) || !set_or_unset(io->wbps, 1) ||
		    !set_or_unset(io->riops, 1) || !set_or_unset(io->wiops, 1))
			bad = "I/O limit";
	}
	return bad ? err_plain(err, EINVAL, "invalid cgroup %s", bad) : 0;
}

static unsigned needed_ctrls(const struct cgroup_limits *lim)
{
	unsigned need = 0;

	if (lim->memory_max != CGROUP_UNSET || lim->memory_swap_max != CGROUP_UNSET)
		need |= CG_BIT(CG_MEMORY);
	if (lim->pids_max != CGROUP_UNSET)
		need |= CG_BIT(CG_PIDS);
	if (lim->cpu_quota_us != CGROUP_UNSET || lim->cpu_weight != CGROUP_UNSET)
		need |= CG_BIT(CG_CPU);
	if (lim->cpuset_cpus[0] || lim->cpuset_mems[0])
		need |= CG_BIT(CG_CPUSET);
	if (lim->nio > 0)
		need |= CG_BIT(CG_IO);
	return need;
}

static unsigned all_ctrls(const struct cgroup *cg)
{
	unsigned mask = 0;

	for (int i = 0; i < cg->nhier; i++)
		mask |= cg->hier[i].ctrls;
	return mask;
}

/* ---- the public API ---- */

/* Removes what cgroup_create made; leaves pre-existing directories. */
static void undo_create(struct cgroup *cg)
{
	for (int i = cg->nhier - 1; i >= 0; i--) {
		struct cg_hier *h = &cg->hier[i];
		if (h->created_leaf && h->tasks[0])
			rmdir(h->tasks);
		if (h->created_leaf)
			rmdir(h->leaf);
		if (h->created_parent)
			rmdir(h->parent); /* fails harmlessly if others use it */
	}
}

int cgroup_create(const char *name, const struct cgroup_limits *lim, struct cgroup **ret,
		  struct corral_error *err)
{
	cleanup_free struct cgroup *cg = calloc(1, sizeof(*cg));
	int r;

	if (!cg)
		return err_set(err, ENOMEM, "cgroup for %s", name);
	r = cgroup_limits_validate(lim, err);
	if (r < 0)
		return r;
	r = cg_discover(name, cg, err);
	if (r < 0)
		return r;
	unsigned need = needed_ctrls(lim), missing = need & ~all_ctrls(cg);
	for (int c = 0; c < CG_NCTRL; c++)
		if (missing & CG_BIT(c))
			return err_plain(err, ENOTSUP, "a limit needs the cgroup controller \"%s\", "
					 "which this host does not mount", cg_v1_names[c]);
	for (int i = 0; i < cg->nhier && r >= 0; i++)
		r = cg->hier[i].be->prepare(&cg->hier[i], need & cg->hier[i].ctrls, err);
	for (int i = 0; i < cg->nhier && r >= 0; i++)
		r = cg->hier[i].be->apply(&cg->hier[i], lim, err);
	if (r < 0) {
		undo_create(cg);
		return r;
	}
	*ret = take_ptr(cg);
	return 0;
}

int cgroup_open(const char *name, struct cgroup **ret, struct corral_error *err)
{
	cleanup_free struct cgroup *cg = calloc(1, sizeof(*cg));
	int r, kept = 0;

	if (!cg)
		return err_set(err, ENOMEM, "cgroup for %s", name);
	r = cg_discover(name, cg, err);
	if (r < 0)
		return r;
	/* Keep the hierarchies the leaf exists in (a crash may have left a
	 * partial set); that also makes destroy idempotent. */
	for (int i = 0; i < cg->nhier; i++) {
		cg->hier[kept] = cg->hier[i];
		r = cg->hier[kept].be->open(&cg->hier[kept], err);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		kept++;
	}
	cg->nhier = kept;
	if (!kept)
		return err_plain(err, ENOENT, "no cgroup for container \"%s\"", name);
	*ret = take_ptr(cg);
	return 0;
}

int cgroup_enter(struct cgroup *cg, pid_t pid, struct corral_error *err)
{
	for (int i = 0; i < cg->nhier; i++) {
		int r = cg_writef(cg_tasks_dir(&cg->hier[i]), "cgroup.procs", err, "%d", (int)pid);
		if (r < 0)
			return r;
	}
	return 0;
}

int cgroup_enter_self(struct cgroup *cg, bool infrastructure, struct corral_error *err)
{
	/* With several hierarchies, each holds only some controllers. */
	bool shared = cg->nhier > 1;
	for (int i = 0; i < cg->nhier; i++) {
		int r = cg->hier[i].be->enter_self(&cg->hier[i], infrastructure, shared, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int cgroup_stats(struct cgroup *cg, struct cgroup_stats *ret, struct corral_error *err)
{
	struct cgroup_stats st = { .memory_max = UINT64_MAX, .pids_max = UINT64_MAX };

	for (int i = 0; i < cg->nhier; i++) {
		int r = cg->hier[i].be->stats(&cg->hier[i], &st, err);
		if (r < 0)
			return r;
	}
	*ret = st;
	return 0;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

int cgroup_pids(struct cgroup *cg, pid_t **ret, size_t *ret_count, struct corral_error *err)
{
	cleanup_free pid_t *pids = NULL;
	size_t n = 0, cap = 0;

	/* Each leaf, and its tasks/ where it has one (v2: the daemon is in
	 * the leaf, the container's processes below). */
	for (int k = 0; k < 2 * cg->nhier; k++) {
		const struct cg_hier *h = &cg->hier[k / 2];
		if (k % 2 && !h->tasks[0])
			continue;
		const char *dir = k % 2 ? h->tasks : h->leaf;
		cleanup_free char *text = NULL;
		int r = cg_read(dir, "cgroup.procs", &text, err);
		if (r < 0)
			return r;
		for (char *p = text; *p;) {
			char *end;
			long v = strtol(p, &end, 10);
			if (end == p)
				break;
			if (n == cap) {
				pid_t *bigger = realloc(pids, (cap = cap ? cap * 2 : 64) * sizeof(*pids));
				if (!bigger)
					return err_set(err, ENOMEM, "list pids of %s", dir);
				pids = bigger;
			}
			pids[n++] = (pid_t)v;
			p = end + strspn(end, "\n");
		}
	}
	if (n)
		qsort(pids, n, sizeof(*pids), cmp_pid);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (u == 0 || pids[u - 1] != pids[i])
			pids[u++] = pids[i];
	*ret = take_ptr(pids);
	*ret_count = u;
	return 0;
}

/* SIGKILLs every pid listed; returns how many were listed. */
static int signal_all(struct cgroup *cg, pid_t *first, struct corral_error *err)
{
	cleanup_free pid_t *pids = NULL;
	size_t n = 0;
	int r = cgroup_pids(cg, &pids, &n, err);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		/* Never ourselves, even if someone moved us in there. */
		if (pids[i] > 1 && pids[i] != getpid())
			kill(pids[i], SIGKILL);
	*first = n ? pids[0] : 0;
	return (int)n;
}

int cgroup_frozen(struct cgroup *cg, bool *ret, struct corral_error *err)
{
	*ret = false;
	for (int i = 0; i < cg->nhier; i++) {
		if (!(cg->hier[i].ctrls & CG_BIT(CG_FREEZER)))
			continue;
		bool f = false;
		int r = cg->hier[i].be->frozen(&cg->hier[i], &f, err);
		if (r < 0)
			return r;
		*ret = *ret || f;
	}
	return 0;
}

int cgroup_set_limits(struct cgroup *cg, const struct cgroup_limits *lim, struct corral_error *err)
{
	int r = cgroup_limits_validate(lim, err);
	if (r < 0)
		return r;
	unsigned missing = needed_ctrls(lim) & ~all_ctrls(cg);
	for (int c = 0; c < CG_NCTRL; c++)
		if (missing & CG_BIT(c))
			return err_plain(err, ENOTSUP, "a limit needs the cgroup controller \"%s\", "
					 "which this container's cgroup does not have", cg_v1_names[c]);
	/* Every hierarchy gets the whole set: apply resets what is unset on a
	 * leaf it did not create, so a limit dropped from the config goes. */
	for (int i = 0; i < cg->nhier && r >= 0; i++)
		r = cg->hier[i].be->apply(&cg->hier[i], lim, err);
	return r;
}

int cgroup_freeze(struct cgroup *cg, bool frozen, struct corral_error *err)
{
	int r = -EOPNOTSUPP;
	for (int i = 0; i < cg->nhier; i++) {
		if (!(cg->hier[i].ctrls & CG_BIT(CG_FREEZER)))
			continue;
		int t = cg->hier[i].be->freeze(&cg->hier[i], frozen, err);
		/* A thaw goes on through every hierarchy whatever fails. */
		if (t < 0 && frozen)
			return t;
		if (r == -EOPNOTSUPP || t < 0)
			r = t;
	}
	if (r == -EOPNOTSUPP)
		return err_plain(err, EOPNOTSUPP, "the container's cgroup has no freezer");
	return r;
}

int cgroup_kill_all(struct cgroup *cg, struct corral_error *err)
{
	bool killed = false, frozen[CG_MAX_HIER] = { false };
	pid_t first = 0;
	int r;

	/* cgroup.kill takes everything at once, forks in flight included. */
	for (int i = 0; i < cg->nhier && !killed && !cg->no_kill_file; i++)
		killed = cg->hier[i].be->kill(&cg->hier[i], NULL) == 0;
	/* Otherwise freeze first so nothing forks between listing and
	 * signalling; a frozen task dies as soon as it is thawed. */
	for (int i = 0; i < cg->nhier && !killed; i++)
		if (cg->hier[i].ctrls & CG_BIT(CG_FREEZER))
			frozen[i] = cg->hier[i].be->freeze(&cg->hier[i], true, NULL) == 0;
	r = signal_all(cg, &first, err);
	/* Thaw even where we did not freeze: a v1 task left frozen (by a
	 * crashed kill_all, say) sits on its SIGKILL until thawed. */
	for (int i = 0; i < cg->nhier; i++) {
		if (!(cg->hier[i].ctrls & CG_BIT(CG_FREEZER)))
			continue;
		int t = cg->hier[i].be->freeze(&cg->hier[i], false, frozen[i] ? err : NULL);
		if (t < 0 && frozen[i] && r >= 0)
			r = t;
	}
	if (r < 0)
		return r;
	/* Wait until empty, signalling stragglers (forks that raced an
	 * unfrozen listing) on every round. */
	for (int64_t deadline = cg_now_ms() + KILL_TIMEOUT_MS;; cg_sleep_ms(1)) {
		r = signal_all(cg, &first, err);
		if (r <= 0)
			return r;
		if (cg_now_ms() >= deadline)
			return err_plain(err, EBUSY, "%d processes (first pid %d) still in %s after %d ms",
					 r, (int)first, cg->hier[0].leaf, KILL_TIMEOUT_MS);
	}
}

/* The cgroups a delegated init made below `dir`, children first.  Depth
 * is bounded by the cgroup.max.depth set at delegation. */
static void remove_subtree(int dirfd, int depth)
{
	int copy = depth < CG_DELEGATE_DEPTH + 2 ? fcntl(dirfd, F_DUPFD_CLOEXEC, 0) : -1;
	cleanup_dir DIR *d = copy >= 0 ? fdopendir(copy) : NULL;
	if (!d && copy >= 0)
		close(copy);
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		cleanup_close int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0)
			remove_subtree(sub, depth + 1);
		unlinkat(dirfd, e->d_name, AT_REMOVEDIR);
	}
}

int cgroup_delegate(struct cgroup *cg, pid_t pid, uid_t owner, struct corral_error *err)
{
	for (int i = 0; i < cg->nhier; i++) {
		struct cg_hier *h = &cg->hier[i];
		if (h->id != 0)
			continue;
		/* A v2 tree that holds our limits would hand them to the
		 * container with the directory. */
		if (h->ctrls & CG_V2_ENABLED)
			return err_plain(err, EOPNOTSUPP,
					 "the container's cgroup2 directory %s holds its limits: an init that manages "
					 "its own cgroups (systemd) is supported on hybrid hosts only, for now", h->leaf);
		/* Bounds on what the container may make, on the leaf: the
		 * container gets a child of it, so the bounds are out of its
		 * reach (a cgroup2 mount without nsdelegate, as on hybrid
		 * hosts, lets the namespace root's files be written from
		 * inside). */
		int r = cg_writef(h->leaf, "cgroup.max.depth", err, "%d", CG_DELEGATE_DEPTH);
		if (r == 0)
			r = cg_writef(h->leaf, "cgroup.max.descendants", err, "%d", CG_DELEGATE_DESCENDANTS);
		if (r < 0)
			return r;
		char payload[PATH_MAX];
		if (snprintf(payload, sizeof(payload), "%s/%s", h->leaf, CG_DELEGATE_DIR) >= (int)sizeof(payload))
			return err_plain(err, ENAMETOOLONG, "cgroup path %s is too long", h->leaf);
		if (mkdir(payload, 0755) < 0 && errno != EEXIST)
			return err_set(err, errno, "create cgroup %s", payload);
		if (owner) {
			static const char *const files[] = { "", "cgroup.procs", "cgroup.threads",
							     "cgroup.subtree_control" };
			for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
				char path[PATH_MAX + 32];
				snprintf(path, sizeof(path), "%s/%s", payload, files[f]);
				if (lchown(path, owner, owner) < 0 && !(errno == ENOENT && f))
					return err_set(err, errno, "hand %s to the container", path);
			}
		}
		return cg_writef(payload, "cgroup.procs", err, "%d", (int)pid);
	}
	return err_plain(err, EOPNOTSUPP,
			 "this host has no cgroup2 tree: an init that manages its own cgroups (systemd) needs one");
}

int cgroup_destroy(struct cgroup *cg, struct corral_error *err)
{
	int ret = 0;

	for (int i = cg->nhier - 1; i >= 0; i--) {
		struct cg_hier *h = &cg->hier[i];
		if (h->id == 0) {
			/* What a delegated init (cgroup_delegate) left. */
			cleanup_close int leaf = open(h->leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (leaf >= 0)
				remove_subtree(leaf, 0);
		}
		if (h->tasks[0] && rmdir(h->tasks) < 0 && errno != ENOENT && ret == 0) {
			ret = err_set(err, errno, "remove cgroup %s%s", h->tasks,
				      errno == EBUSY ? " (processes remain)" : "");
			continue;
		}
		if (rmdir(h->leaf) < 0 && errno != ENOENT && ret == 0) {
			ret = err_set(err, errno, "remove cgroup %s%s", h->leaf,
				      errno == EBUSY ? " (processes remain)" : "");
			continue;
		}
		/* The shared parent goes with its last container; rmdir
		 * refuses while any other container's directory is in it. */
		rmdir(h->parent);
	}
	return ret;
}

void cgroup_free(struct cgroup *cg)
{
	free(cg);
}
