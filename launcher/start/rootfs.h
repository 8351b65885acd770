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
 * May call: container, template, net, security, cgroup, common. */
#ifndef CORRAL_ROOTFS_H
#define CORRAL_ROOTFS_H

#include <stdbool.h>
#include <sys/types.h>

#include "container/container-config.h"
#include "error.h"

/* Mounts cowfs at `mnt` (base = template tree) with the daemon started in
 * the cgroup named by `cgroup_name` (so its I/O and memory are charged to
 * the container).  Returns when the mount is ready. */
int rootfs_mount_cowfs(const char *cowfs_bin, const char *base, const char *upper, const char *work,
		       const char *mnt, const struct container_config *c, struct corral_error *err);
/* Whether an I/O limit on a block device covers the filesystem holding
 * `path` (so cowfs, not the cgroup, enforces it). */
bool rootfs_io_limit_covers(const struct cgroup_io_limit *l, const char *path);
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
