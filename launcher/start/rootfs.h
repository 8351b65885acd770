/* A container's root filesystem.
 *
 * Host side: the cowfs mount of template + the container's upper layer,
 * nosuid,nodev, and a copy of it for the container.
 * Container side (in the new mount namespace, before the container's code
 * runs): /proc, /sys (read-only), a minimal /dev, masked and read-only
 * paths, bind mounts, then pivot_root into it.  Flags of binds (ro,
 * nosuid, nodev) hold for every submount (mount_setattr AT_RECURSIVE on a
 * detached copy, before it is attached).
 *
 * Every mount target inside the root is resolved without following any
 * symlink (openat2 RESOLVE_NO_SYMLINKS): the root is writable by the
 * container, so a symlink planted in an earlier run must never redirect a
 * mount onto the host.
 *
 * Module start (see start.h).  Owns: the cowfs root mount and every mount
 * made inside the container's mount namespace.
 * May call: container, template, net, security, cgroup, store, common. */
#ifndef CORRAL_ROOTFS_H
#define CORRAL_ROOTFS_H

#include <stdbool.h>
#include <sys/types.h>

#include "cgroup/cgroup.h"
#include "container/container-config.h"
#include "error.h"

/* A container's I/O limits, split once per start between the two places
 * that enforce them: those on the disk holding the container's layer go
 * to its cowfs daemon, which paces them (cgroup v1 does not charge
 * buffered writeback to the writer, so a blkio limit alone would not
 * bite); the cgroup keeps the rest.  No limit is applied twice. */
struct rootfs_io_split {
	struct cgroup_limits cgroup;		/* the limits, minus cowfs's */
	struct cgroup_io_limit cowfs[8];	/* paced by cowfs */
	int ncowfs;
};
_Static_assert(sizeof(((struct rootfs_io_split *)0)->cowfs) == sizeof(((struct cgroup_limits *)0)->io),
	       "every I/O limit fits on either side");
void rootfs_split_io_limits(const struct cgroup_limits *lim, const char *upper, struct rootfs_io_split *ret);
/* One cowfs mount of a container's root. */
struct rootfs_cowfs {
	const char *binary;		/* the cowfs program */
	const char *base, *upper, *work; /* template tree, the container's layers */
	const char *mnt;		/* the mountpoint */
	struct cgroup *cgroup;		/* the container's: the daemon joins it before exec */
	const struct cgroup_io_limit *io; /* paced by cowfs (rootfs_split_io_limits) */
	int nio;
	const char *status;		/* where the daemon reports its FUSE features */
	const char *store;		/* the host's block store, or NULL (no store) */
	const char *store_root;		/* the container's root in it */
};
/* Mounts cowfs with the daemon started in the container's cgroup (so its
 * I/O and memory are charged to the container).  Returns when the mount
 * is ready. */
int rootfs_mount_cowfs(const struct rootfs_cowfs *m, const struct container_config *c, struct corral_error *err);
/* Unmounts the cowfs root (the daemon exits); detaches if busy. Idempotent. */
int rootfs_unmount(const char *mnt, struct corral_error *err);
bool rootfs_is_mounted(const char *mnt);

/* Host side, before the clone: the container's view of its root.  The
 * host's mount at `mnt` is nosuid,nodev (set-uid files and device nodes in
 * it are the container's, and host users must gain nothing from them); the
 * view is a detached copy of it with set-uid honoured (still nodev),
 * private.  *ret_root is the host mount's root (O_PATH), *ret_view the
 * copy.  The caller makes *ret_root its working directory for the clone:
 * clone(CLONE_NEWNS) carries the working directory over to the new
 * namespace's copy of the mount, which is where the child attaches the view
 * -- so the child never walks the path below the 0700 state root (a
 * user-namespaced root could not). */
int rootfs_open_view(const char *mnt, int *ret_root, int *ret_view, struct corral_error *err);

/* In the container's new mount namespace, with the working directory set
 * as above: attaches `view` (rootfs_open_view), builds the root in it and
 * pivots into it.  `console` is a pty slave path to bind at /dev/console,
 * or NULL. */
int rootfs_enter(int view, const struct container_config *c, const char *console, struct corral_error *err);

#endif
