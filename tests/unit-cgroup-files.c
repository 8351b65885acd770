/* unit-cgroup-files: what each backend writes and parses, against fixture
 * directories that stand in for cgroupfs, so both backends are checked on
 * any host whatever its cgroup layout.  Also the argument validation. */
#include "config.h"

#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup-test.h"

static char fixture_dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

static void remove_fixture(void)
{
	nftw(fixture_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* root/own/corral/t, with own and corral made. */
static void fixture_tree(struct cg_hier *h, const char *root)
{
	snprintf(h->own, sizeof(h->own), "%s/own", root);
	snprintf(h->parent, sizeof(h->parent), "%s/own/corral", root);
	snprintf(h->leaf, sizeof(h->leaf), "%s/own/corral/t", root);
	mkdir(root, 0755);
	mkdir(h->own, 0755);
	mkdir(h->parent, 0755);
}

/* ---- v2 backend against a fixture tree ---- */

static void test_v2_fixture(const char *root)
{
	struct corral_error err = { 0 };
	struct cgroup_limits lim;
	struct cg_hier h = { .be = &cg_backend_v2, .ctrls = CG_V2_ENABLED | CG_V2_CORE };
	struct cgroup_stats st = { 0 };

	fixture_tree(&h, root);
	put(h.own, "cgroup.controllers", "cpuset cpu io memory hugetlb pids\n");
	put(h.own, "cgroup.subtree_control", "");
	put(h.parent, "cgroup.subtree_control", "");
	ok(h.be->prepare(&h, CG_BIT(CG_MEMORY), &err) == 0, "v2 fixture: prepare (%s)", err.msg);
	ok(h.created_leaf && !h.created_parent, "v2 fixture: made the leaf, reused the parent");
	ok(holds(h.own, "cgroup.subtree_control", "+memory +pids +cpu +cpuset +io"),
	   "v2 fixture: own subtree_control enables every controller in one write");
	ok(holds(h.parent, "cgroup.subtree_control", "+memory +pids +cpu +cpuset +io"),
	   "v2 fixture: corral/ subtree_control passes them to the leaf");

	const char *files[] = { "memory.max", "memory.swap.max", "memory.oom.group", "cpu.max",
				"cpu.weight", "cpuset.cpus", "cpuset.mems", "pids.max", "io.max" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		put(h.leaf, files[i], "");
	fixture_limits(&lim);
	ok(h.be->apply(&h, &lim, &err) == 0, "v2 fixture: apply (%s)", err.msg);
	ok(holds(h.leaf, "memory.max", "67108864"), "v2 fixture: memory.max");
	ok(holds(h.leaf, "memory.swap.max", "0"), "v2 fixture: memory.swap.max");
	ok(holds(h.leaf, "memory.oom.group", "1"), "v2 fixture: memory.oom.group=1");
	ok(holds(h.leaf, "cpu.max", "50000 100000"), "v2 fixture: cpu.max");
	ok(holds(h.leaf, "cpu.weight", "200"), "v2 fixture: cpu.weight");
	ok(holds(h.leaf, "cpuset.cpus", "0"), "v2 fixture: cpuset.cpus");
	ok(holds(h.leaf, "pids.max", "16"), "v2 fixture: pids.max");
	ok(holds(h.leaf, "io.max", "8:0 rbps=1048576"), "v2 fixture: io.max");

	/* A leaf left over from a crash gets unset limits reset. */
	h.created_leaf = false;
	cgroup_limits_init(&lim);
	ok(h.be->apply(&h, &lim, &err) == 0, "v2 fixture: apply to a reused leaf (%s)", err.msg);
	ok(holds(h.leaf, "memory.max", "max") && holds(h.leaf, "memory.swap.max", "max") &&
	   holds(h.leaf, "cpu.max", "max 100000") && holds(h.leaf, "cpu.weight", "100") &&
	   holds(h.leaf, "pids.max", "max"), "v2 fixture: reuse resets unset limits");

	put(h.leaf, "memory.current", "1234\n");
	put(h.leaf, "memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 1\n");
	put(h.leaf, "cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
	put(h.leaf, "pids.current", "3\n");
	put(h.leaf, "pids.max", "16\n");
	put(h.leaf, "io.stat", "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"
			       "8:16 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n");
	ok(h.be->stats(&h, &st, &err) == 0, "v2 fixture: stats (%s)", err.msg);
	ok(st.memory_current == 1234 && st.memory_max == UINT64_MAX && st.oom_kills == 2,
	   "v2 fixture: memory stats (current %llu, max \"max\", oom_kill %llu)",
	   (unsigned long long)st.memory_current, (unsigned long long)st.oom_kills);
	ok(st.cpu_usage_ns == 1500000, "v2 fixture: cpu.stat usage_usec in ns");
	ok(st.pids_current == 3 && st.pids_max == 16, "v2 fixture: pids stats");
	ok(st.io_read_bytes == 101 && st.io_write_bytes == 202 && st.io_read_ops == 4 &&
	   st.io_write_ops == 6, "v2 fixture: io.stat summed over devices");

	char swap[PATH_MAX + 32];
	snprintf(swap, sizeof(swap), "%s/memory.swap.max", h.leaf);
	unlink(swap);
	fixture_limits(&lim);
	ok(h.be->apply(&h, &lim, &err) < 0 && strstr(err.msg, "memory.swap.max"),
	   "v2 fixture: swap limit without memory.swap.max fails (%s)", err.msg);

	put(h.own, "cgroup.controllers", "cpu memory pids\n");
	ok(h.be->prepare(&h, CG_BIT(CG_IO), &err) < 0 && strstr(err.msg, "\"io\"") &&
	   strstr(err.msg, "cgroup.controllers"),
	   "v2 fixture: a needed controller the parent lacks fails (%s)", err.msg);
}

/* ---- v1 backend against a fixture tree ---- */

static void test_v1_fixture(const char *root)
{
	struct corral_error err = { 0 };
	struct cgroup_limits lim;
	struct cg_hier h = { .be = &cg_backend_v1 };

	h.ctrls = CG_BIT(CG_MEMORY) | CG_BIT(CG_CPU) | CG_BIT(CG_CPUSET) | CG_BIT(CG_PIDS) |
		  CG_BIT(CG_IO);
	fixture_tree(&h, root);
	mkdir(h.leaf, 0755);
	put(h.own, "cpuset.cpus", "0-3\n");
	put(h.own, "cpuset.mems", "0\n");
	const char *dirs[] = { h.parent, h.leaf };
	for (int i = 0; i < 2; i++) {
		put(dirs[i], "notify_on_release", "1\n");
		put(dirs[i], "cpuset.cpus", "\n");
		put(dirs[i], "cpuset.mems", "\n");
	}
	ok(h.be->prepare(&h, 0, &err) == 0, "v1 fixture: prepare (%s)", err.msg);
	ok(holds(h.parent, "cpuset.cpus", "0-3") && holds(h.parent, "cpuset.mems", "0"),
	   "v1 fixture: cpuset copied into corral/ from the parent");
	ok(holds(h.parent, "notify_on_release", "0"), "v1 fixture: notify_on_release turned off");

	const char *files[] = { "memory.limit_in_bytes", "memory.memsw.limit_in_bytes",
				"memory.oom_control", "cpu.cfs_period_us", "cpu.cfs_quota_us",
				"cpu.shares", "pids.max", "blkio.throttle.read_bps_device" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		put(h.leaf, files[i], "");
	h.created_leaf = true;
	fixture_limits(&lim);
	ok(h.be->apply(&h, &lim, &err) == 0, "v1 fixture: apply (%s)", err.msg);
	ok(holds(h.leaf, "memory.limit_in_bytes", "67108864") &&
	   holds(h.leaf, "memory.memsw.limit_in_bytes", "67108864"),
	   "v1 fixture: memory limit, memsw = memory + swap");
	ok(holds(h.leaf, "memory.oom_control", "0"), "v1 fixture: OOM killer stays enabled");
	ok(holds(h.leaf, "cpu.cfs_quota_us", "50000") && holds(h.leaf, "cpu.cfs_period_us", "100000"),
	   "v1 fixture: CFS quota and period");
	ok(holds(h.leaf, "cpu.shares", "2048"), "v1 fixture: weight 200 maps to 2048 shares");
	ok(holds(h.leaf, "cpuset.cpus", "0") && holds(h.leaf, "pids.max", "16"),
	   "v1 fixture: cpuset.cpus and pids.max");
	ok(holds(h.leaf, "blkio.throttle.read_bps_device", "8:0 1048576"),
	   "v1 fixture: blkio.throttle.read_bps_device");

	h.created_leaf = false;
	cgroup_limits_init(&lim);
	ok(h.be->apply(&h, &lim, &err) == 0 && holds(h.leaf, "memory.limit_in_bytes", "-1") &&
	   holds(h.leaf, "cpu.cfs_quota_us", "-1") && holds(h.leaf, "cpu.shares", "1024") &&
	   holds(h.leaf, "cpuset.cpus", "0-3") && holds(h.leaf, "pids.max", "max"),
	   "v1 fixture: reuse resets unset limits (cpuset from the parent)");
}

static void test_validation(void)
{
	struct corral_error err = { 0 };
	struct cgroup_limits lim;
	struct cgroup *cg = NULL;

	cgroup_limits_init(&lim);
	ok(cgroup_create("a/b", &lim, &cg, &err) == -EINVAL, "a name with '/' is refused (%s)",
	   err.msg);
	ok(cgroup_create("..", &lim, &cg, &err) == -EINVAL, "\"..\" is refused");
	lim.cpu_weight = 0;
	ok(cgroup_create("x", &lim, &cg, &err) == -EINVAL && strstr(err.msg, "weight"),
	   "weight 0 is refused (%s)", err.msg);
	cgroup_limits_init(&lim);
	lim.memory_swap_max = MiB;
	ok(cgroup_create("x", &lim, &cg, &err) == -EINVAL, "swap without memory is refused (%s)",
	   err.msg);
}

/* A login session's cgroup holds other processes, so v2 refuses to pass
 * controllers down from it: the container moves to <mount>/corral/NAME. */
static void test_v2_rebase(void)
{
	struct cg_hier h = { 0 };
	snprintf(h.point, sizeof(h.point), "/sys/fs/cgroup");
	snprintf(h.own, sizeof(h.own), "/sys/fs/cgroup/user.slice/session-1.scope");
	snprintf(h.parent, sizeof(h.parent), "/sys/fs/cgroup/user.slice/session-1.scope/corral");
	snprintf(h.leaf, sizeof(h.leaf), "/sys/fs/cgroup/user.slice/session-1.scope/corral/web");
	ok(cg_v2_rebase_to_root(&h) && !strcmp(h.own, "/sys/fs/cgroup") &&
		   !strcmp(h.parent, "/sys/fs/cgroup/corral") && !strcmp(h.leaf, "/sys/fs/cgroup/corral/web"),
	   "v2: a busy own cgroup falls back to <mount>/corral/NAME (%s)", h.leaf);
	ok(!cg_v2_rebase_to_root(&h), "v2: already at the mount root, nothing to rebase");
}

int main(void)
{
	char v2[96], v1[96];

	snprintf(fixture_dir, sizeof(fixture_dir), "/tmp/unit-cgroup-XXXXXX");
	if (!mkdtemp(fixture_dir)) {
		tap_bail("mkdtemp: %s", strerror(errno));
		return 1;
	}
	atexit(remove_fixture);
	snprintf(v2, sizeof(v2), "%s/v2", fixture_dir);
	snprintf(v1, sizeof(v1), "%s/v1", fixture_dir);
	test_v2_fixture(v2);
	test_v1_fixture(v1);
	test_validation();
	test_v2_rebase();
	return tap_done();
}
