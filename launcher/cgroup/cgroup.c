/* cgroup: the public API and the file helpers the backends share.  Which
 * hierarchy drives which controller is settled in cgroup-discover.c; the
 * limit and statistics files are the backends' business (cgroup-v1.c,
 * cgroup-v2.c). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "cleanup.h"
#include "fileio.h"

#define KILL_TIMEOUT_MS 5000

const char *const cg_v1_names[CG_NCTRL] = {
	[CG_MEMORY] = "memory", [CG_PIDS] = "pids",	    [CG_CPU] = "cpu",
	[CG_CPUSET] = "cpuset", [CG_IO] = "blkio",	    [CG_CPUACCT] = "cpuacct",
	[CG_FREEZER] = "freezer",
};
const char *const cg_v2_names[CG_NCTRL] = {
	[CG_MEMORY] = "memory", [CG_PIDS] = "pids", [CG_CPU] = "cpu",
	[CG_CPUSET] = "cpuset", [CG_IO] = "io",
};

/* ---- file helpers ---- */

static void join(char *buf, size_t size, const char *dir, const char *file)
{
	snprintf(buf, size, "%s/%s", dir, file);
}

int cg_write(const char *dir, const char *file, const char *val, struct corral_error *err)
{
	char path[PATH_MAX + 64];
	size_t len = strlen(val);

	join(path, sizeof(path), dir, file);
	cleanup_close int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set(err, errno, "open %s to write \"%s\"", path, val);
	ssize_t n = write(fd, val, len);
	if (n < 0)
		return err_set(err, errno, "write \"%s\" to %s", val, path);
	if ((size_t)n != len)
		return err_plain(err, EIO, "short write of \"%s\" to %s", val, path);
	return 0;
}

int cg_writef(const char *dir, const char *file, struct corral_error *err, const char *fmt, ...)
{
	char val[512];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(val))
		return err_plain(err, EINVAL, "value for %s/%s is too long", dir, file);
	return cg_write(dir, file, val, err);
}

int cg_read(const char *dir, const char *file, char **ret, struct corral_error *err)
{
	char path[PATH_MAX + 64];
	join(path, sizeof(path), dir, file);
	return file_read_all(path, ret, NULL, err);
}

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	if (strncmp(s, "max", 3) == 0 && (s[3] == '\0' || s[3] == '\n' || s[3] == ' ')) {
		*ret = UINT64_MAX;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || (*end != '\0' && *end != '\n' && *end != ' '))
		return -EINVAL;
	*ret = v;
	return 0;
}

int cg_read_u64(const char *dir, const char *file, uint64_t *ret, struct corral_error *err)
{
	cleanup_free char *text = NULL;
	int r = cg_read(dir, file, &text, err);
	if (r < 0)
		return r;
	if (parse_u64(text, ret) < 0)
		return err_plain(err, EINVAL, "%s/%s: not a number: \"%.40s\"", dir, file, text);
	return 0;
}

int cg_keyed_u64(const char *text, const char *key, uint64_t *ret)
{
	size_t klen = strlen(key);

	for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
			return parse_u64(line + klen + 1, ret);
	return -ENOENT;
}

bool cg_exists(const char *dir, const char *file)
{
	char path[PATH_MAX + 64];

	join(path, sizeof(path), dir, file);
	return access(path, F_OK) == 0;
}

unsigned cg_parse_v2_list(const char *text)
{
	unsigned mask = 0;
	const char *p = text;

	while (*p) {
		size_t n = strcspn(p, " \n");
		for (int c = 0; c < CG_NCTRL; c++)
			if (cg_v2_names[c] && strlen(cg_v2_names[c]) == n &&
			    strncmp(p, cg_v2_names[c], n) == 0)
				mask |= CG_BIT(c);
		p += n;
		p += strspn(p, " \n");
	}
	return mask;
}

void cg_format_v2_list(unsigned ctrls, bool plus, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int c = 0; c < CG_NCTRL; c++) {
		if (!(ctrls & CG_BIT(c)) || !cg_v2_names[c])
			continue;
		int n = snprintf(buf + len, size - len, "%s%s%s", len ? " " : "", plus ? "+" : "",
				 cg_v2_names[c]);
		if (n < 0 || (size_t)n >= size - len)
			return;
		len += (size_t)n;
	}
}

static int make_dir(const char *path, bool *created, struct corral_error *err)
{
	struct stat st;

	*created = false;
	if (mkdir(path, 0755) == 0) {
		*created = true;
		return 0;
	}
	if (errno != EEXIST)
		return err_set(err, errno, "create cgroup %s", path);
	if (stat(path, &st) < 0)
		return err_set(err, errno, "stat %s", path);
	if (!S_ISDIR(st.st_mode))
		return err_plain(err, ENOTDIR, "%s exists and is not a cgroup directory", path);
	return 0;
}

int cg_make_dirs(struct cg_hier *h,
		 int (*init)(struct cg_hier *h, const char *dir, const char *from,
			     struct corral_error *err),
		 struct corral_error *err)
{
	bool created;
	int r;

	/* Another launcher removes "corral" when its last container goes;
	 * if that happens between our two mkdirs, make it again. */
	for (int attempt = 0;; attempt++) {
		r = make_dir(h->parent, &created, err);
		if (r < 0)
			return r;
		h->created_parent |= created;
		r = init(h, h->parent, h->own, err);
		if (r < 0)
			return r;
		r = make_dir(h->leaf, &created, err);
		if (r == -ENOENT && attempt < 3)
			continue;
		if (r < 0)
			return r;
		h->created_leaf = created;
		return created ? init(h, h->leaf, h->parent, err) : 0;
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int cg_wait_line(const char *dir, const char *file, const char *line, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	size_t len = strlen(line);

	for (;;) {
		cleanup_free char *text = NULL;
		int r = cg_read(dir, file, &text, NULL);
		if (r < 0)
			return r;
		for (const char *p = text; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
			if (strncmp(p, line, len) == 0 && (p[len] == '\n' || p[len] == '\0'))
				return 0;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		sleep_ms(5);
	}
}

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
	struct stat st;
	int r, kept = 0;

	if (!cg)
		return err_set(err, ENOMEM, "cgroup for %s", name);
	r = cg_discover(name, cg, err);
	if (r < 0)
		return r;
	/* Keep the hierarchies the leaf exists in (a crash may have left a
	 * partial set); that also makes destroy idempotent. */
	for (int i = 0; i < cg->nhier; i++) {
		bool found = stat(cg->hier[i].leaf, &st) == 0 && S_ISDIR(st.st_mode);
		/* A v2 leaf may live under the v2 root (see cg_v2_rebase_to_root). */
		if (!found && cg->hier[i].id == 0 && cg_v2_rebase_to_root(&cg->hier[i]))
			found = stat(cg->hier[i].leaf, &st) == 0 && S_ISDIR(st.st_mode);
		if (!found)
			continue;
		cg->hier[kept] = cg->hier[i];
		r = cg->hier[kept].be->open(&cg->hier[kept], err);
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
		int r = cg_writef(cg->hier[i].leaf, "cgroup.procs", err, "%d", (int)pid);
		if (r < 0)
			return r;
	}
	return 0;
}

int cgroup_enter_infrastructure(struct cgroup *cg, pid_t pid, struct corral_error *err)
{
	for (int i = 0; i < cg->nhier; i++) {
		/* A hierarchy that only counts processes is skipped, so the
		 * container's pids limit counts the container's own tasks. */
		if (cg->hier[i].id != 0 && cg->hier[i].ctrls == CG_BIT(CG_PIDS))
			continue;
		int r = cg_writef(cg->hier[i].leaf, "cgroup.procs", err, "%d", (int)pid);
		if (r < 0)
			return r;
	}
	return 0;
}

int cgroup_enter_self(struct cgroup *cg, bool infrastructure, struct corral_error *err)
{
	bool hybrid = false;
	for (int i = 0; i < cg->nhier; i++)
		hybrid |= cg->hier[i].id != 0;
	for (int i = 0; i < cg->nhier; i++) {
		const struct cg_hier *h = &cg->hier[i];
		if (infrastructure && h->id != 0 && h->ctrls == CG_BIT(CG_PIDS))
			continue;
		int r;
		if (h->id != 0) {
			/* v1: moving the calling thread through "tasks" skips the
			 * global threadgroup lock, whose writer waits for an RCU
			 * grace period (~10 ms here) on every process move.  The
			 * caller is single-threaded, so the thread is the process. */
			r = cg_writef(h->leaf, "tasks", err, "0");
		} else {
			/* v2 only moves whole processes.  On a hybrid host a v2
			 * tree without our controllers is left out: kill_all
			 * signals whatever the v1 hierarchies list. */
			if (hybrid && !(h->ctrls & CG_V2_ENABLED))
				continue;
			r = cg_writef(h->leaf, "cgroup.procs", err, "0");
		}
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

	for (int i = 0; i < cg->nhier; i++) {
		cleanup_free char *text = NULL;
		int r = cg_read(cg->hier[i].leaf, "cgroup.procs", &text, err);
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
					return err_set(err, ENOMEM, "list pids of %s", cg->hier[i].leaf);
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
	for (int64_t deadline = now_ms() + KILL_TIMEOUT_MS;; sleep_ms(1)) {
		r = signal_all(cg, &first, err);
		if (r <= 0)
			return r;
		if (now_ms() >= deadline)
			return err_plain(err, EBUSY, "%d processes (first pid %d) still in %s after %d ms",
					 r, (int)first, cg->hier[0].leaf, KILL_TIMEOUT_MS);
	}
}

int cgroup_destroy(struct cgroup *cg, struct corral_error *err)
{
	int ret = 0;

	for (int i = cg->nhier - 1; i >= 0; i--) {
		struct cg_hier *h = &cg->hier[i];
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
