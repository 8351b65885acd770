/* cgroups for containers: one API over cgroup v1, v2 and hybrid hosts.
 *
 * A container's cgroup is "corral/<name>" below the *current process's own*
 * cgroup in each hierarchy (read from /proc/self/cgroup), never an absolute
 * path.  On a hybrid host (v1 controllers plus a v2 tree with few
 * controllers) each controller is driven where it is mounted.  Backends sit
 * behind a small vtable in cgroup-internal.h (cgroup-v1.c, cgroup-v2.c).
 *
 * Module cgroup.  Owns: the container's cgroup directories in every
 * hierarchy (made, limited, measured, emptied and removed only through this
 * API; struct cgroup is opaque) and the discovery of the host's layout.
 * May call: common. */
#ifndef CORRAL_CGROUP_H
#define CORRAL_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define CGROUP_UNSET (-1)

struct cgroup_io_limit {
	unsigned major, minor;	  /* block device */
	int64_t rbps, wbps;	  /* bytes/s, CGROUP_UNSET = none */
	int64_t riops, wiops;	  /* ops/s, CGROUP_UNSET = none */
};

struct cgroup_limits {
	int64_t memory_max;	  /* bytes */
	int64_t memory_swap_max;  /* bytes of swap on top of memory_max */
	int64_t cpu_quota_us;	  /* per cpu_period_us; CGROUP_UNSET = no cap */
	int64_t cpu_period_us;	  /* default 100000 */
	int64_t cpu_weight;	  /* 1..10000 (v2 scale; mapped to v1 shares) */
	char cpuset_cpus[64];	  /* "" = inherit */
	char cpuset_mems[64];
	int64_t pids_max;
	struct cgroup_io_limit io[8];
	int nio;
};

struct cgroup_stats {
	uint64_t memory_current;  /* bytes */
	uint64_t memory_max;	  /* bytes, UINT64_MAX = none */
	uint64_t oom_kills;
	uint64_t cpu_usage_ns;
	uint64_t pids_current;
	uint64_t pids_max;	  /* UINT64_MAX = none */
	uint64_t io_read_bytes, io_write_bytes;
	uint64_t io_read_ops, io_write_ops;
};

struct cgroup;

void cgroup_limits_init(struct cgroup_limits *lim); /* everything unset */
/* Checks values and combinations without touching any cgroup (create time). */
int cgroup_limits_validate(const struct cgroup_limits *lim, struct corral_error *err);
/* Creates (or reuses, after a crash) the container's cgroups and applies
 * the limits.  Fails closed: a limit that cannot be applied is an error. */
int cgroup_create(const char *name, const struct cgroup_limits *lim, struct cgroup **ret,
		  struct corral_error *err);
/* Opens an existing container cgroup (exec, stats, stop, rm). -ENOENT if none. */
int cgroup_open(const char *name, struct cgroup **ret, struct corral_error *err);
int cgroup_enter(struct cgroup *cg, pid_t pid, struct corral_error *err);
/* Moves the calling (single-threaded) process into the cgroup, the cheap
 * way where the host allows it.  With `infrastructure` (the container's
 * cowfs daemon): charged for memory, CPU and I/O, but not counted against
 * the pids limit where the pids controller has its own (v1) hierarchy; on
 * v2 its threads count. */
int cgroup_enter_self(struct cgroup *cg, bool infrastructure, struct corral_error *err);
int cgroup_stats(struct cgroup *cg, struct cgroup_stats *ret, struct corral_error *err);
/* Pids in the container's cgroup (caller frees *ret). */
int cgroup_pids(struct cgroup *cg, pid_t **ret, size_t *ret_count, struct corral_error *err);
/* Freezes (waiting until every task has stopped, bounded) or thaws every
 * process of the container but its cowfs daemon (v1: not in the freezer
 * hierarchy; v2: in the leaf, the container's processes in leaf/tasks):
 * the cut of a snapshot.  -EOPNOTSUPP where no
 * hierarchy has a freezer. */
int cgroup_freeze(struct cgroup *cg, bool frozen, struct corral_error *err);
/* Whether the container is frozen (or freezing): `corral pause`. */
int cgroup_frozen(struct cgroup *cg, bool *ret, struct corral_error *err);
/* Applies a whole new set of limits to a running container's cgroup
 * (`corral update`): validated as at create; limits unset in `lim` are
 * reset to none.  A controller the cgroup was made without (a limit that
 * was unset at start, on a host that adds controllers only as needed)
 * is an error naming it. */
int cgroup_set_limits(struct cgroup *cg, const struct cgroup_limits *lim, struct corral_error *err);
/* Freezes, SIGKILLs every process, thaws, waits until empty (bounded). */
int cgroup_kill_all(struct cgroup *cg, struct corral_error *err);
/* Removes the cgroup directories; -EBUSY while processes remain. */
int cgroup_destroy(struct cgroup *cg, struct corral_error *err);
void cgroup_free(struct cgroup *cg);
/* For an init that manages cgroups of its own (systemd): moves `pid` into
 * "payload", a child of the container's cgroup2 directory -- on a hybrid
 * host too, where the v2 tree holds none of our controllers and processes
 * are otherwise left out of it.  The container's directory bounds what may
 * be made below it (cgroup.max.depth, cgroup.max.descendants), out of the
 * container's reach; with `owner` (a user namespace's root; 0: none)
 * payload's directory and its cgroup.procs, cgroup.threads and
 * cgroup.subtree_control are handed to it (delegation as cgroups(7)
 * describes).  The container then sees payload as its cgroup2 root (a
 * cgroup namespace made after this) and never the host's tree.  Again
 * with pid 0 (exec): the caller joins it.  cgroup_destroy removes what
 * the init made below it.  -EOPNOTSUPP where the v2
 * directory holds the container's limits (a pure v2 host: delegated, they
 * would be the container's to change) or there is no v2 tree. */
int cgroup_delegate(struct cgroup *cg, pid_t pid, uid_t owner, struct corral_error *err);
/* "v1", "v2" or "hybrid" for this host (for inspect/README/test output). */
const char *cgroup_host_mode(void);

#endif
