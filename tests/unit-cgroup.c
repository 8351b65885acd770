/* unit-cgroup: the cgroup module against the real cgroups of this host (as
 * root; skipped otherwise): limits read back through the v1 or v2 file,
 * enter, OOM kill, pids.max, kill_all, destroy, a refused limit.  Every
 * cgroup and process it makes is removed at exit, also when a check fails
 * or the watchdog fires.  The file formats are in unit-cgroup-files.c. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup-test.h"

/* ---- cleanup of everything the test made ---- */

static char made_names[8][64];
static int nmade;
static pid_t kids[64];
static int nkids;

/* The v2 freeze test's cgroup (leaf, then its tasks/), made by hand. */
static char v2_leaf[PATH_MAX], v2_tasks[PATH_MAX + 16];

static void cleanup_all(void)
{
	if (v2_tasks[0]) {
		put(v2_tasks, "cgroup.freeze", "0"); /* frozen tasks die only once thawed */
		put(v2_leaf, "cgroup.freeze", "0");
	}
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0 && kill(kids[i], SIGKILL) == 0)
			waitpid(kids[i], NULL, 0);
	if (v2_tasks[0]) {
		rmdir(v2_tasks);
		rmdir(v2_leaf);
	}
	for (int i = 0; i < nmade; i++) {
		struct cgroup *cg;
		if (cgroup_open(made_names[i], &cg, NULL) < 0)
			continue;
		cgroup_kill_all(cg, NULL);
		cgroup_destroy(cg, NULL);
		cgroup_free(cg);
	}
}

static void on_signal(int sig)
{
	exit(128 + sig); /* runs cleanup_all */
}

static bool gone(const char *path)
{
	return access(path, F_OK) < 0 && errno == ENOENT;
}

/* ---- real cgroups ---- */

static pid_t start_child(void (*fn)(void), int *go_fd)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		close(p[1]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (read(p[0], &c, 1) != 1)
			_exit(100);
		fn();
		_exit(0);
	}
	close(p[0]);
	if (pid < 0) {
		close(p[1]);
		return -1;
	}
	if (nkids < 64)
		kids[nkids++] = pid;
	*go_fd = p[1];
	return pid;
}

static void go(int fd)
{
	if (write(fd, "x", 1) != 1)
		diag("cannot release child: %s", strerror(errno));
	close(fd);
}

static int reap(pid_t pid)
{
	int status = -1;

	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	for (int i = 0; i < nkids; i++)
		if (kids[i] == pid)
			kids[i] = 0;
	return status;
}

static void sleeper(void)
{
	for (;;)
		pause();
}

static void spin(void)
{
	for (volatile long i = 0; i < 20000000; i++)
		;
}

static void hog(void)
{
	size_t size = 200 * MiB;
	volatile char *p = malloc(size);
	if (!p)
		_exit(2);
	for (size_t i = 0; i < size; i += 4096)
		p[i] = 1;
	_exit(0);
}

/* Exits 0 when fork() hits EAGAIN before 64 children. */
static void bomb(void)
{
	pid_t mine[64];
	int n = 0, failed = 0;

	for (; n < 64; n++) {
		mine[n] = fork();
		if (mine[n] == 0)
			sleeper();
		if (mine[n] < 0) {
			failed = errno;
			break;
		}
	}
	for (int i = 0; i < n; i++) {
		kill(mine[i], SIGKILL);
		waitpid(mine[i], NULL, 0);
	}
	_exit(failed == EAGAIN ? 0 : failed ? 3 : 2);
}

static struct cg_hier *with(struct cgroup *cg, enum cg_ctrl c)
{
	for (int i = 0; i < cg->nhier; i++)
		if (cg->hier[i].ctrls & CG_BIT(c))
			return &cg->hier[i];
	return NULL;
}

static bool is_v1(const struct cg_hier *h)
{
	return h->be == &cg_backend_v1;
}

/* The whole disk under "/", for an I/O limit; false if none. */
static bool root_disk(unsigned *major_, unsigned *minor_)
{
	struct stat st;
	char base[64], path[128];

	if (stat("/", &st) < 0 || major(st.st_dev) == 0)
		return false;
	snprintf(base, sizeof(base), "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
	snprintf(path, sizeof(path), "%s/partition", base);
	snprintf(path, sizeof(path), "%s/%s", base, access(path, F_OK) == 0 ? "../dev" : "dev");
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool got = fscanf(f, "%u:%u", major_, minor_) == 2;
	fclose(f);
	return got;
}

/* Whether this host can take an I/O limit for the test's cgroup. */
static bool host_has_io(const struct cgroup *probe)
{
	for (int i = 0; i < probe->nhier; i++) {
		const struct cg_hier *h = &probe->hier[i];
		cleanup_free char *text = NULL;
		if (!(h->ctrls & CG_BIT(CG_IO)))
			continue;
		if (h->be == &cg_backend_v1)
			return true;
		if (cg_read(h->own, "cgroup.controllers", &text, NULL) == 0)
			return cg_parse_v2_list(text) & CG_BIT(CG_IO);
	}
	return false;
}

static void check_limits(struct cgroup *cg, const struct cgroup_limits *lim)
{
	struct cg_hier *h;
	char want[64];

	h = with(cg, CG_MEMORY);
	ok(h && holds(h->leaf, is_v1(h) ? "memory.limit_in_bytes" : "memory.max", "67108864"),
	   "memory limit is 64M");
	h = with(cg, CG_PIDS);
	ok(h && holds(h->leaf, "pids.max", "16"), "pids.max is 16");
	h = with(cg, CG_CPU);
	ok(h && (is_v1(h) ? holds(h->leaf, "cpu.cfs_quota_us", "50000") &&
				    holds(h->leaf, "cpu.cfs_period_us", "100000")
			  : holds(h->leaf, "cpu.max", "50000 100000")),
	   "CPU quota is 50000/100000");
	ok(h && holds(h->leaf, is_v1(h) ? "cpu.shares" : "cpu.weight", is_v1(h) ? "2048" : "200"),
	   "CPU weight 200 is written");
	h = with(cg, CG_CPUSET);
	ok(h && holds(h->leaf, "cpuset.cpus", "0"), "cpuset.cpus is 0");
	h = with(cg, CG_IO);
	if (!lim->nio) {
		skip("no whole disk below /", "I/O bandwidth limit");
		return;
	}
	if (is_v1(h))
		snprintf(want, sizeof(want), "%u:%u 1048576", lim->io[0].major, lim->io[0].minor);
	else
		snprintf(want, sizeof(want), "%u:%u rbps=1048576 wbps=max riops=max wiops=max",
			 lim->io[0].major, lim->io[0].minor);
	ok(holds(h->leaf, is_v1(h) ? "blkio.throttle.read_bps_device" : "io.max", want),
	   "I/O read bandwidth limit on %u:%u", lim->io[0].major, lim->io[0].minor);
}

/* Every hierarchy's line in /proc/<pid>/cgroup names our leaf. */
static bool proc_shows(struct cgroup *cg, pid_t pid)
{
	char path[64], want[PATH_MAX + 300];
	cleanup_free char *text = NULL;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (cg_read(path, "cgroup", &text, NULL) < 0)
		return false;
	for (int i = 0; i < cg->nhier; i++) {
		struct cg_hier *h = &cg->hier[i];
		snprintf(want, sizeof(want), "%s/corral/%s", strcmp(h->rel, "/") ? h->rel : "",
			 cg->name);
		for (char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
			char *path_start = strchr(strchr(p, ':') + 1, ':') + 1;
			size_t n = strcspn(path_start, "\n");
			if (atoi(p) == h->id && n == strlen(want) && !strncmp(path_start, want, n))
				found++;
		}
	}
	if (found != cg->nhier)
		diag("/proc/%d/cgroup:\n%s", (int)pid, text);
	return found == cg->nhier;
}

static bool pids_has(struct cgroup *cg, pid_t pid, size_t *count)
{
	cleanup_free pid_t *pids = NULL;
	size_t n = 0;
	bool in = false;

	*count = 0;
	if (cgroup_pids(cg, &pids, &n, NULL) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		in |= pids[i] == pid;
	*count = n;
	return in;
}

static void test_kill_all(struct cgroup *cg, const char *how)
{
	struct corral_error err = { 0 };
	pid_t p[3];
	size_t n = 0;
	int fd, dead = 0;

	for (int i = 0; i < 3; i++) {
		p[i] = start_child(sleeper, &fd);
		cgroup_enter(cg, p[i], &err);
		go(fd);
	}
	pids_has(cg, p[0], &n);
	ok(n == 3, "kill_all (%s): 3 sleepers in the cgroup", how);
	ok(cgroup_kill_all(cg, &err) == 0, "kill_all (%s) succeeds (%s)", how, err.msg);
	pids_has(cg, p[0], &n);
	ok(n == 0, "kill_all (%s): the cgroup is empty", how);
	for (int i = 0; i < 3; i++) {
		int st = reap(p[i]);
		dead += WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
	}
	ok(dead == 3, "kill_all (%s): all 3 died of SIGKILL", how);
}

/* What v2 gives every cgroup (cgroup.freeze, cpu.stat), on the real v2
 * leaf even when that tree holds no controllers (hybrid hosts). */
static void test_v2_core(struct cgroup *cg)
{
	struct corral_error err = { 0 };
	struct cgroup_stats st = { 0 };
	struct cg_hier *h = NULL;
	int fd;

	for (int i = 0; i < cg->nhier; i++)
		if (cg->hier[i].be == &cg_backend_v2)
			h = &cg->hier[i];
	if (!h || !cg_exists(h->leaf, "cgroup.freeze")) {
		skip("no v2 tree with cgroup.freeze", "v2 freeze and cpu.stat on a real leaf");
		return;
	}
	struct cg_hier core = *h;
	core.ctrls = CG_V2_CORE;
	pid_t kid = start_child(spin, &fd);
	cgroup_enter(cg, kid, &err);
	ok(core.be->freeze(&core, true, &err) == 0 && holds(core.leaf, "cgroup.freeze", "1"),
	   "v2 cgroup.freeze reaches \"frozen 1\" (%s)", err.msg);
	ok(core.be->freeze(&core, false, &err) == 0 && holds(core.leaf, "cgroup.freeze", "0"),
	   "v2 thaw (%s)", err.msg);
	go(fd);
	reap(kid);
	ok(core.be->stats(&core, &st, &err) == 0 && st.cpu_usage_ns > 0,
	   "v2 cpu.stat usage_usec read on a real leaf (%s)", err.msg);
}

/* Creates the test's cgroup with fixture_limits(); NULL when skipped. */
static struct cgroup *test_create(const char *name, const struct cgroup *probe)
{
	struct corral_error err = { 0 };
	struct cgroup_limits lim;
	struct cgroup *cg = NULL, *again = NULL;

	snprintf(made_names[nmade++], sizeof(made_names[0]), "%s", name);
	fixture_limits(&lim);
	lim.memory_swap_max = CGROUP_UNSET; /* swap accounting may be off */
	lim.nio = host_has_io(probe) && root_disk(&lim.io[0].major, &lim.io[0].minor);
	int r = cgroup_create(name, &lim, &cg, &err);
	if (r == -EBUSY || r == -ENOTSUP) {
		/* e.g. a v2 host where our own cgroup holds processes */
		skip(err.msg, "real cgroups");
		return NULL;
	}
	if (!ok(r == 0, "create %s (%s)", name, err.msg)) {
		tap_bail("cannot create a cgroup");
		exit(1);
	}
	for (int i = 0; i < cg->nhier; i++)
		diag("hierarchy %d (%s): %s ctrls 0x%x", cg->hier[i].id, cg->hier[i].be->name,
		     cg->hier[i].leaf, cg->hier[i].ctrls);
	check_limits(cg, &lim);
	ok(cgroup_create(name, &lim, &again, &err) == 0 && again && !again->hier[0].created_leaf,
	   "create again reuses the existing cgroup (%s)", err.msg);
	cgroup_free(again);
	return cg;
}

static void test_enter(struct cgroup *cg)
{
	struct corral_error err = { 0 };
	struct cgroup_stats st = { 0 };
	struct cgroup *again = NULL;
	size_t n;
	int fd;

	pid_t kid = start_child(sleeper, &fd);
	ok(cgroup_enter(cg, kid, &err) == 0, "enter child %d (%s)", (int)kid, err.msg);
	go(fd);
	ok(pids_has(cg, kid, &n) && n == 1, "cgroup_pids lists the child and nothing else");
	ok(proc_shows(cg, kid), "/proc/%d/cgroup shows corral/%s everywhere", (int)kid, cg->name);
	int r = cgroup_open(cg->name, &again, &err);
	ok(r == 0 && cgroup_stats(again, &st, &err) == 0, "open and read stats (%s)", err.msg);
	cgroup_free(again);
	ok(st.pids_current == 1 && st.pids_max == 16 && st.memory_max == 64 * MiB,
	   "stats: pids 1/16, memory max 64M (got %llu/%llu, %llu)",
	   (unsigned long long)st.pids_current, (unsigned long long)st.pids_max,
	   (unsigned long long)st.memory_max);
	kill(kid, SIGKILL);
	reap(kid);
}

/* Runs fn in a child inside cg; returns its wait status. */
static int run_inside(struct cgroup *cg, void (*fn)(void))
{
	int fd;
	pid_t pid = start_child(fn, &fd);

	if (pid < 0 || cgroup_enter(cg, pid, NULL) < 0)
		diag("cannot start a child inside %s", cg->name);
	go(fd);
	return reap(pid);
}

static void test_oom_and_pids(struct cgroup *cg)
{
	struct corral_error err = { 0 };
	struct cgroup_stats st = { 0 };

	int status = run_inside(cg, hog);
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	   "a 200M allocation in a 64M cgroup is OOM-killed (status 0x%x)", status);
	int r = cgroup_stats(cg, &st, &err);
	ok(r == 0 && st.oom_kills >= 1, "stats count the OOM kill (oom_kills %llu; %s)",
	   (unsigned long long)st.oom_kills, err.msg);
	ok(st.cpu_usage_ns > 0, "stats: CPU usage %llu ns", (unsigned long long)st.cpu_usage_ns);
	status = run_inside(cg, bomb);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "fork() fails with EAGAIN under pids.max 16 (status 0x%x)", status);
}

static void test_destroy(struct cgroup *cg)
{
	struct corral_error err = { 0 };
	struct cgroup *again = NULL;
	bool all_gone = true;

	ok(cgroup_destroy(cg, &err) == 0, "destroy (%s)", err.msg);
	for (int i = 0; i < cg->nhier; i++) {
		all_gone &= gone(cg->hier[i].leaf);
		if (cg->hier[i].created_parent && !gone(cg->hier[i].parent))
			diag("%s still there (another container?)", cg->hier[i].parent);
	}
	ok(all_gone, "the leaf is gone from all %d hierarchies", cg->nhier);
	ok(cgroup_destroy(cg, &err) == 0, "destroy again is a no-op (%s)", err.msg);
	ok(cgroup_open(cg->name, &again, &err) == -ENOENT, "open after destroy: ENOENT (%s)",
	   err.msg);
}

static void test_bad_limit(const char *name)
{
	static struct cgroup after;
	struct corral_error err = { 0 };
	struct cgroup_limits lim;
	struct cgroup *cg = NULL;
	bool all_gone;

	snprintf(made_names[nmade++], sizeof(made_names[0]), "%s", name);
	cgroup_limits_init(&lim);
	snprintf(lim.cpuset_cpus, sizeof(lim.cpuset_cpus), "999");
	ok(cgroup_create(name, &lim, &cg, &err) < 0 && strstr(err.msg, "cpuset.cpus") &&
	   strstr(err.msg, "\"999\""), "cpuset 999 is refused: %s", err.msg);
	all_gone = cg_discover(name, &after, NULL) == 0;
	for (int i = 0; i < after.nhier; i++)
		all_gone &= gone(after.hier[i].leaf);
	ok(all_gone, "the failed create left no directories");
}

/* Counters the freeze test's children bump, in memory shared with us. */
static volatile unsigned long *counters;

static void count0(void)
{
	for (;;)
		counters[0]++;
}

static struct cgroup *freeze_cg;

/* The cowfs daemon's stand-in: joins as cowfs does (rootfs.c exec_cowfs). */
static void count1(void)
{
	counters[2] = cgroup_enter_self(freeze_cg, true, NULL) == 0 ? 1 : 2;
	for (;;)
		counters[1]++;
}

/* Whether counter i moves within 200 ms. */
static bool moves(int i)
{
	unsigned long a = counters[i];
	usleep(200 * 1000);
	return counters[i] != a;
}

/* The freeze of a snapshot where the freezer is v2's (a pure v2 host),
 * through cgroup_freeze as corral calls it, on a real cgroup of this
 * host's v2 tree (cgroup.freeze is a core file there even when the tree
 * holds no controller): the container's process stops and its cgroup
 * says "frozen 1", the cowfs daemon (cgroup_enter_self as
 * infrastructure) goes on running, the thaw lets the process run again. */
static void test_v2_freeze(void)
{
	struct corral_error err = { 0 };
	static struct cgroup cg;
	char name[64];
	struct cg_hier *h = NULL;
	int fd0, fd1;

	snprintf(name, sizeof(name), "corral-test-%d-v2freeze", (int)getpid());
	if (cg_discover(name, &cg, &err) < 0) {
		skip(err.msg, "v2 freeze");
		return;
	}
	for (int i = 0; i < cg.nhier; i++)
		if (cg.hier[i].be == &cg_backend_v2)
			h = &cg.hier[i];
	if (!h || !cg_exists(h->own, "cgroup.procs")) {
		skip("no v2 tree", "v2 freeze");
		return;
	}
	/* Only the v2 tree, driving the freezer (as on a pure v2 host). */
	cg.hier[0] = *h;
	cg.nhier = 1;
	h = &cg.hier[0];
	h->ctrls = CG_V2_CORE;
	snprintf(v2_leaf, sizeof(v2_leaf), "%s", h->leaf);
	snprintf(v2_tasks, sizeof(v2_tasks), "%s/" CG_TASKS, h->leaf);
	if (!ok(h->be->prepare(h, 0, &err) == 0, "v2 leaf made in %s (%s)", h->leaf, err.msg))
		return;
	if (!cg_exists(h->leaf, "cgroup.freeze")) {
		skip("no cgroup.freeze in the v2 tree", "v2 freeze");
		return;
	}
	freeze_cg = &cg;
	counters = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counters == MAP_FAILED)
		tap_bail("mmap");
	pid_t tenant = start_child(count0, &fd0);
	pid_t daemon = start_child(count1, &fd1);
	ok(cgroup_enter(&cg, tenant, &err) == 0, "the container's process joins the v2 cgroup (%s)", err.msg);
	go(fd0);
	go(fd1);
	for (int i = 0; i < 200 && !counters[2]; i++)
		usleep(10 * 1000);
	ok(counters[2] == 1, "the daemon's stand-in joins with cgroup_enter_self as infrastructure");
	ok(moves(0) && moves(1), "both run before the freeze");
	int r = cgroup_freeze(&cg, true, &err);
	ok(r == 0, "cgroup_freeze freezes the v2 cgroup (%s)", err.msg);
	ok(holds(cg_tasks_dir(h), "cgroup.freeze", "1"), "cgroup.freeze reads 1");
	cleanup_free char *ev = NULL;
	ok(cg_read(cg_tasks_dir(h), "cgroup.events", &ev, NULL) == 0 && strstr(ev, "frozen 1"),
	   "cgroup.events says \"frozen 1\"");
	ok(!moves(0), "the frozen process does not run");
	ok(moves(1), "the cowfs daemon is not frozen with it (a FUSE server frozen with its clients deadlocks)");
	ok(cgroup_freeze(&cg, false, &err) == 0 && holds(cg_tasks_dir(h), "cgroup.freeze", "0"), "thaw (%s)",
	   err.msg);
	ok(moves(0), "the thawed process runs again");
	kill(tenant, SIGKILL);
	kill(daemon, SIGKILL);
	reap(tenant);
	reap(daemon);
	ok(cgroup_destroy(&cg, &err) == 0 && gone(v2_leaf), "the v2 cgroup is removed (%s)", err.msg);
	v2_tasks[0] = '\0';
}

static void test_real(const struct cgroup *probe)
{
	char name[64];

	snprintf(name, sizeof(name), "corral-test-%d", (int)getpid());
	struct cgroup *cg = test_create(name, probe);
	if (!cg)
		return;
	test_enter(cg);
	test_oom_and_pids(cg);
	test_v2_core(cg);
	test_kill_all(cg, "cgroup.kill or freezer");
	cg->no_kill_file = true;
	test_kill_all(cg, "freeze and signal");
	test_destroy(cg);
	cgroup_free(cg);
	snprintf(name, sizeof(name), "corral-test-%d-bad", (int)getpid());
	test_bad_limit(name);
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct corral_error err;
	static struct cgroup probe;

	atexit(cleanup_all);
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	alarm(120);

	diag("host cgroup mode: %s", cgroup_host_mode());

	unsigned need = CG_BIT(CG_MEMORY) | CG_BIT(CG_PIDS) | CG_BIT(CG_CPU) | CG_BIT(CG_CPUSET);
	unsigned have = 0;
	if (cg_discover("probe", &probe, &err) == 0)
		for (int i = 0; i < probe.nhier; i++)
			have |= probe.hier[i].ctrls;
	if (geteuid() == 0)
		test_v2_freeze();
	if (geteuid() != 0)
		skip("not root", "real cgroups");
	else if ((have & need) != need)
		skip("host lacks memory, pids, cpu or cpuset", "real cgroups");
	else
		test_real(&probe);
	return tap_done();
}
