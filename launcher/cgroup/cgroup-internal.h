/* Internals of the cgroup module: the per-hierarchy record, the backend
 * vtable (cgroup-v1.c, cgroup-v2.c), discovery (cgroup-discover.c) and the
 * file helpers they share (cgroup-files.c).  Calls go one way only:
 * cgroup.c -> discovery and the vtable -> the file helpers.
 *
 * A container's cgroup lives in one or more hierarchies.  Each hierarchy is
 * driven by exactly one backend and owns a disjoint set of controllers
 * (cg_hier.ctrls): on a v1 host every controller has its own mount, on a v2
 * host one tree holds them all, on a hybrid host the v1 mounts win and the
 * v2 tree keeps what is left (at least process tracking, cgroup.kill and
 * cgroup.freeze).  Every process of the container is entered into every
 * hierarchy, so any one leaf's cgroup.procs names the whole container.
 *
 * Only cgroup.c and the backends include this header; tests may too, to
 * point a backend at a fixture directory. */
#ifndef CORRAL_CGROUP_INTERNAL_H
#define CORRAL_CGROUP_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "cgroup.h"
#include "error.h"

enum cg_ctrl {
	CG_MEMORY,
	CG_PIDS,
	CG_CPU,
	CG_CPUSET,
	CG_IO,	    /* v1 "blkio" */
	CG_CPUACCT, /* usage statistics; part of the core on v2 */
	CG_FREEZER, /* part of the core on v2 (cgroup.freeze) */
	CG_NCTRL
};
#define CG_BIT(c) (1u << (c))
/* Controllers a v2 tree enables through cgroup.subtree_control. */
#define CG_V2_ENABLED (CG_BIT(CG_MEMORY) | CG_BIT(CG_PIDS) | CG_BIT(CG_CPU) | \
		       CG_BIT(CG_CPUSET) | CG_BIT(CG_IO))
/* What v2 offers on every cgroup without enabling anything. */
#define CG_V2_CORE (CG_BIT(CG_CPUACCT) | CG_BIT(CG_FREEZER))

/* Name of each controller in v1 mount options and in v2 cgroup.controllers
 * (NULL where v2 has no such controller). */
extern const char *const cg_v1_names[CG_NCTRL];
extern const char *const cg_v2_names[CG_NCTRL];

#define CG_MAX_HIER 8
#define CG_PARENT "corral"
#define CG_TASKS "tasks"
/* Bounds of a delegated subtree (cgroup_delegate). */
#define CG_DELEGATE_DEPTH 16
#define CG_DELEGATE_DESCENDANTS 4096
/* The delegated child of the container's v2 leaf: the container's root. */
#define CG_DELEGATE_DIR "payload"

struct cg_hier {
	const struct cg_backend *be;
	int id;		      /* hierarchy id in /proc/self/cgroup; 0 = v2 */
	unsigned ctrls;	      /* CG_BIT()s driven through this hierarchy */
	char rel[PATH_MAX];   /* own cgroup as /proc/self/cgroup shows it */
	char point[PATH_MAX]; /* where the hierarchy is mounted */
	char own[PATH_MAX];   /* directory of the launcher's own cgroup */
	char parent[PATH_MAX]; /* own/corral */
	char leaf[PATH_MAX];  /* own/corral/<name> */
	/* v2 holding the freezer: leaf/tasks, where the container's processes
	 * live, so that freezing it (cgroup.freeze freezes a whole subtree)
	 * leaves the cowfs daemon in the leaf running -- a FUSE server frozen
	 * with its clients never answers the request a client waits on, and
	 * the freeze never completes.  The leaf enables no controller for its
	 * children, so both are charged to the leaf's limits.  "" = the leaf
	 * (v1, and a v2 leaf made before this layout). */
	char tasks[PATH_MAX];
	bool created_parent;  /* set by prepare: undo removes what it made */
	bool created_leaf;
};

struct cgroup {
	char name[256];
	int nhier;
	struct cg_hier hier[CG_MAX_HIER];
	bool no_kill_file; /* tests: take the freeze-and-signal path */
};

struct cg_backend {
	const char *name; /* "v1" or "v2" */
	/* Creates h->parent and h->leaf (cg_make_dirs) and readies them for
	 * h->ctrls.  May drop controllers it cannot get from h->ctrls unless
	 * they are in `need`, which is an error instead. */
	int (*prepare)(struct cg_hier *h, unsigned need, struct corral_error *err);
	/* Finds the existing leaf (cgroup_open) -- where the backend may
	 * have put it, see cg_v2_rebase_to_root -- and settles h->ctrls;
	 * -ENOENT if there is none. */
	int (*open)(struct cg_hier *h, struct corral_error *err);
	/* Moves the calling (single-threaded) process into the leaf, the
	 * cheapest way the hierarchy allows; may skip a hierarchy (returning
	 * 0): an `infrastructure` process (cgroup_enter_self) is not counted
	 * where only pids are, and with `shared` (other hierarchies hold
	 * controllers too) one holding none of ours may be left out. */
	int (*enter_self)(struct cg_hier *h, bool infrastructure, bool shared, struct corral_error *err);
	/* Writes the limits of the controllers in h->ctrls.  A leaf that
	 * existed before (!created_leaf) also gets unset limits reset. */
	int (*apply)(struct cg_hier *h, const struct cgroup_limits *lim, struct corral_error *err);
	/* Fills the fields of the controllers in h->ctrls. */
	int (*stats)(struct cg_hier *h, struct cgroup_stats *st, struct corral_error *err);
	/* Freezes (and waits, bounded) or thaws the leaf; needs CG_FREEZER. */
	int (*freeze)(struct cg_hier *h, bool frozen, struct corral_error *err);
	/* Whether the leaf is frozen or freezing (needs CG_FREEZER). */
	int (*frozen)(struct cg_hier *h, bool *ret, struct corral_error *err);
	/* Kills everything in the leaf at once; -EOPNOTSUPP if it cannot. */
	int (*kill)(struct cg_hier *h, struct corral_error *err);
};

/* v2 fallback (cgroup-v2.c; the unit test checks it): when corral's own
 * cgroup holds other processes (a login session), v2 will not pass
 * controllers down from it; the container is then placed under
 * <mount>/corral instead.  Rewrites own/parent/leaf and returns false if
 * own already is the mount root. */
bool cg_v2_rebase_to_root(struct cg_hier *h);

/* Where the container's processes go and what a freeze stops. */
static inline const char *cg_tasks_dir(const struct cg_hier *h)
{
	return h->tasks[0] ? h->tasks : h->leaf;
}

extern const struct cg_backend cg_backend_v1;
extern const struct cg_backend cg_backend_v2;

/* Fills cg with the hierarchies of this host and the paths for `name`
 * (nothing is created); cgroup-discover.c.  Tests use it too. */
int cg_discover(const char *name, struct cgroup *cg, struct corral_error *err);

/* ---- helpers shared by the backends and discovery (cgroup-files.c) ---- */

/* Writes val to dir/file in one write(2); the error names file and value. */
int cg_write(const char *dir, const char *file, const char *val, struct corral_error *err);
int cg_writef(const char *dir, const char *file, struct corral_error *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Reads dir/file whole into a NUL-terminated buffer (caller frees). */
int cg_read(const char *dir, const char *file, char **ret, struct corral_error *err);
/* Reads a number; "max" reads as UINT64_MAX. */
int cg_read_u64(const char *dir, const char *file, uint64_t *ret, struct corral_error *err);
/* The value after `key ` on a line of a flat keyed file; -ENOENT if absent. */
int cg_keyed_u64(const char *text, const char *key, uint64_t *ret);
bool cg_exists(const char *dir, const char *file);
bool cg_is_dir(const char *path);
/* Parses a space-separated controller list ("cpu memory") into CG_BIT()s. */
unsigned cg_parse_v2_list(const char *text);
/* Appends "+name" (or "name") for each bit to buf, space-separated. */
void cg_format_v2_list(unsigned ctrls, bool plus, char *buf, size_t size);
/* Makes h->parent then h->leaf (retrying if another launcher removes an
 * empty parent in between), calling init(h, dir, dir's parent) on the
 * parent every time and on the leaf when it is new. */
int cg_make_dirs(struct cg_hier *h,
		 int (*init)(struct cg_hier *h, const char *dir, const char *from,
			     struct corral_error *err),
		 struct corral_error *err);
/* Polls dir/file until it holds a line equal to `line`; -ETIMEDOUT. */
int cg_wait_line(const char *dir, const char *file, const char *line, int timeout_ms);
int64_t cg_now_ms(void); /* CLOCK_MONOTONIC */
void cg_sleep_ms(long ms);

#endif
