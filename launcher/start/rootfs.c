#include "config.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup/cgroup.h"
#include "child.h"
#include "cleanup.h"
#include "fileio.h"
#include "rootfs.h"

/* ---- host side ---- */

bool rootfs_is_mounted(const char *mnt)
{
	return path_is_mountpoint(mnt);
}

/* Whether an I/O limit set for block device major:minor covers the
 * filesystem holding `path` (the device itself, or the disk whose
 * partition it is). */
static bool io_limit_covers(const struct cgroup_io_limit *l, const char *path)
{
	struct stat st;
	char sys[128], parent[32];
	if (stat(path, &st) < 0)
		return false;
	if (major(st.st_dev) == l->major && minor(st.st_dev) == l->minor)
		return true;
	snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/../dev", major(st.st_dev), minor(st.st_dev));
	FILE *f = fopen(sys, "re");
	unsigned ma, mi;
	bool hit = false;
	if (f && fgets(parent, sizeof(parent), f) && sscanf(parent, "%u:%u", &ma, &mi) == 2)
		hit = ma == l->major && mi == l->minor;
	if (f)
		fclose(f);
	return hit;
}

void rootfs_split_io_limits(const struct cgroup_limits *lim, const char *upper, struct rootfs_io_split *ret)
{
	ret->cgroup = *lim;
	ret->cgroup.nio = 0;
	ret->ncowfs = 0;
	for (int i = 0; i < lim->nio; i++) {
		if (io_limit_covers(&lim->io[i], upper))
			ret->cowfs[ret->ncowfs++] = lim->io[i];
		else
			ret->cgroup.io[ret->cgroup.nio++] = lim->io[i];
	}
}

/* "read_bps=N,..." for the limits cowfs paces. */
static int io_limit_options(const struct cgroup_io_limit *io, int nio, char *buf, size_t len)
{
	int n = 0;
	for (int i = 0; i < nio; i++) {
		const struct cgroup_io_limit *l = &io[i];
		static const char *const names[] = { "read_bps", "write_bps", "read_iops", "write_iops" };
		const int64_t vals[] = { l->rbps, l->wbps, l->riops, l->wiops };
		for (int k = 0; k < 4; k++)
			if (vals[k] != CGROUP_UNSET)
				n += snprintf(buf + n, len - n, "%s%s=%lld", n ? "," : "", names[k], (long long)vals[k]);
	}
	return n;
}

/* In the forked child: joins the cgroup and execs cowfs; never returns. */
static void exec_cowfs(int verdict_fd, const struct rootfs_cowfs *m, const struct container_config *c)
{
	/* The daemon is charged to the container: join its cgroup before
	 * exec.  Fail closed: a daemon outside it would escape the
	 * container's limits. */
	struct corral_error cerr = { 0 };
	if (cgroup_enter_self(m->cgroup, true, &cerr) < 0) {
		err_wrap(&cerr, "the cowfs daemon for %s could not join the container's cgroup", m->mnt);
		child_fail(verdict_fd, &cerr);
	}
	/* nosuid,nodev: this mount is the host's view of the tree, whose
	 * set-uid files and device nodes the container's root made; the
	 * container gets its own view (rootfs_open_view).  Quota enforced by
	 * cowfs; with a user namespace, cowfs shows the template's root-owned
	 * files as the container's root. */
	char opts[512];
	int n = snprintf(opts, sizeof(opts), "nosuid,nodev");
	if (c->disk_bytes || c->disk_inodes)
		n += snprintf(opts + n, sizeof(opts) - n, ",quota_bytes=%llu,quota_inodes=%llu",
			      (unsigned long long)c->disk_bytes, (unsigned long long)c->disk_inodes);
	if (c->userns)
		n += snprintf(opts + n, sizeof(opts) - n, ",idshift=%u:%u", c->userns_base, c->userns_size);
	if (c->share_base)
		n += snprintf(opts + n, sizeof(opts) - n, ",share_base=1");
	if (m->store)
		n += snprintf(opts + n, sizeof(opts) - n, ",store_root=%s,store_delay=%u", m->store_root,
			      c->store_delay);
	if (m->nio) {
		char io[256];
		if (io_limit_options(m->io, m->nio, io, sizeof(io)) > 0)
			snprintf(opts + n, sizeof(opts) - n, ",%s", io);
	}
	/* The store's path by --store: it may hold a comma, -o could not
	 * carry it. */
	const char *argv[16] = { m->binary, "--base", m->base, "--upper", m->upper, "--work", m->work,
				 "-o", opts, "--status", m->status };
	int argc = 11;
	if (m->store) {
		argv[argc++] = "--store";
		argv[argc++] = m->store;
	}
	argv[argc++] = m->mnt;
	argv[argc] = NULL;
	char what[PATH_MAX + 16];
	snprintf(what, sizeof(what), "cannot run %s", m->binary);
	signal(SIGPIPE, SIG_DFL);
	child_exec(verdict_fd, m->binary, (char *const *)argv, environ, what);
}

int rootfs_mount_cowfs(const struct rootfs_cowfs *m, const struct container_config *c, struct corral_error *err)
{
	if (rootfs_is_mounted(m->mnt))
		return 0; /* left by a crashed start: reuse it */
	/* An earlier daemon's report must not pass for this one's (inspect
	 * also checks the pid in it). */
	if (unlink(m->status) < 0 && errno != ENOENT)
		return err_set(err, errno, "remove %s", m->status);
	cleanup_child struct child ch = CHILD_INIT;
	int r = child_start(&ch, 0, "fork for cowfs", err);
	if (r < 0)
		return r;
	if (r == 0)
		exec_cowfs(ch.fd, m, c);
	/* A verdict: the child failed before it ran cowfs.  EOF: cowfs runs,
	 * and its exit status says whether the mount is there (it exits once
	 * its daemon serves the mount). */
	enum child_verdict v;
	r = child_wait_verdict(&ch, &v, err);
	if (r < 0)
		return r;
	int status;
	r = child_reap(&ch, &status, err);
	if (r < 0)
		return err_wrap(err, "wait for cowfs");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return err_plain(err, EIO, "cowfs could not mount the root at %s (exit status %d)", m->mnt,
				 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return 0;
}

int rootfs_unmount(const char *mnt, struct corral_error *err)
{
	if (!rootfs_is_mounted(mnt))
		return 0;
	/* Detached at once: the container's processes are gone by now, and
	 * cowfs writes through to the upper (no dirty cache), so waiting
	 * for the daemon's exit would only add latency.  It exits as soon as
	 * the kernel lets go of the mount. */
	if (umount2(mnt, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
		return 0;
	if (errno == EINVAL || errno == ENOENT)
		return 0; /* unmounted meanwhile */
	return err_set(err, errno, "unmount %s", mnt);
}

/* A detached copy of the mount tree at dirfd/path (the tree at dirfd itself
 * when path is ""), every mount in it -- submounts too -- given `set` and
 * cleared of `clr` (MOUNT_ATTR_*), with private propagation so that
 * nothing mounted on it later shows anywhere else.  The flags are applied
 * before the copy is attached anywhere: it is never visible without them.
 * Returns the tree's descriptor or -errno (-ENOSYS before Linux 5.12:
 * callers fail, never fall back to flags on the top mount only). */
static int clone_tree(int dirfd, const char *path, uint64_t set, uint64_t clr)
{
	unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | (path[0] ? 0 : AT_EMPTY_PATH);
	cleanup_close int tree = open_tree(dirfd, path, flags);
	if (tree < 0)
		return -errno;
	struct mount_attr attr = { .attr_set = set, .attr_clr = clr, .propagation = MS_PRIVATE };
	if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
		return -errno;
	return take_fd(tree);
}

static int mount_api_error(struct corral_error *err, int e, const char *what)
{
	if (e == ENOSYS)
		return err_plain(err, ENOSYS,
				 "%s: the kernel lacks open_tree/mount_setattr (Linux 5.12 or later), which corral "
				 "needs to give every submount the same flags", what);
	return err_set(err, e, "%s", what);
}

int rootfs_open_view(const char *mnt, int *ret_root, int *ret_view, struct corral_error *err)
{
	cleanup_close int root = open(mnt, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root < 0)
		return err_set(err, errno, "open %s", mnt);
	/* Never hand the container the directory under a mount that is gone. */
	struct statfs sf;
	if (fstatfs(root, &sf) < 0)
		return err_set(err, errno, "check %s", mnt);
	if (sf.f_type != FUSE_SUPER_MAGIC)
		return err_plain(err, EIO, "%s is not the container's cowfs mount", mnt);
	/* cowfs mounts it nosuid,nodev; a mount left by an older corral may be
	 * neither. */
	struct mount_attr host = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV };
	if (mount_setattr(root, "", AT_EMPTY_PATH, &host, sizeof(host)) < 0)
		return mount_api_error(err, errno, "make the host's view of the root nosuid,nodev");
	/* The container's view: set-uid files work (they are the container's
	 * own), device nodes in the root still cannot be opened. */
	int view = clone_tree(root, "", MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID);
	if (view < 0)
		return mount_api_error(err, -view, "copy the root mount for the container");
	*ret_root = take_fd(root);
	*ret_view = view;
	return 0;
}

/* ---- container side ---- */

static int openat2_beneath(int dirfd, const char *name, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

/* Opens (creating if missing) `rel` below rootfd as a mount target, one
 * component at a time, refusing symlinks anywhere on the way. */
static int open_target(int rootfd, const char *rel, bool want_dir, struct corral_error *err)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", rel);
	int cur = dup(rootfd);
	if (cur < 0)
		return err_set(err, errno, "dup");
	char *save = NULL;
	char *comp = strtok_r(buf, "/", &save);
	while (comp) {
		char *next = strtok_r(NULL, "/", &save);
		bool last = next == NULL;
		int fd = openat2_beneath(cur, comp, O_PATH);
		if (fd == -ENOENT) {
			int r;
			if (!last || want_dir)
				r = mkdirat(cur, comp, 0755);
			else {
				int f = openat(cur, comp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
				r = f < 0 ? -1 : close(f);
			}
			if (r < 0 && errno != EEXIST) {
				int e = errno;
				close(cur);
				return err_set(err, e, "create mount target /%s", rel);
			}
			fd = openat2_beneath(cur, comp, O_PATH);
		}
		close(cur);
		if (fd < 0) {
			if (fd == -ELOOP)
				return err_plain(err, ELOOP,
						 "refusing to mount on /%s: a path component is a symlink",
						 rel);
			return err_set(err, -fd, "open mount target /%s", rel);
		}
		cur = fd;
		comp = next;
	}
	struct stat st;
	if (fstat(cur, &st) < 0 || S_ISDIR(st.st_mode) != want_dir) {
		close(cur);
		return err_plain(err, ENOTDIR, "mount target /%s is not a %s", rel, want_dir ? "directory" : "file");
	}
	return cur;
}

static void fd_target(char buf[64], int fd)
{
	snprintf(buf, 64, "/proc/self/fd/%d", fd);
}

static int mount_at(int rootfd, const char *rel, bool dir, const char *src, const char *type,
		    unsigned long flags, const char *data, struct corral_error *err)
{
	char target[64];
	cleanup_close int fd = open_target(rootfd, rel, dir, err);
	if (fd < 0)
		return fd;
	fd_target(target, fd);
	if (mount(src, target, type, flags, data) < 0)
		return err_set(err, errno, "mount %s on /%s", type ? type : src, rel);
	return 0;
}

/* Binds the tree at srcdir/src (see clone_tree) onto `rel`, with `set`
 * given to every mount in it.  `what` names the source in errors. */
static int bind_tree(int rootfd, const char *rel, int srcdir, const char *src, uint64_t set, const char *what,
		     struct corral_error *err)
{
	cleanup_close int tree = clone_tree(srcdir, src, set, 0);
	if (tree < 0) {
		char msg[PATH_MAX + 64];
		snprintf(msg, sizeof(msg), "bind %s on /%s", what, rel);
		return mount_api_error(err, -tree, msg);
	}
	struct stat st;
	if (fstat(tree, &st) < 0)
		return err_set(err, errno, "stat %s", what);
	cleanup_close int target = open_target(rootfd, rel, S_ISDIR(st.st_mode), err);
	if (target < 0)
		return target;
	if (move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return err_set(err, errno, "bind %s on /%s", what, rel);
	return 0;
}

/* Binds `rel` onto itself, read-only down to every submount. */
static int remount_readonly(int rootfd, const char *rel, bool dir, struct corral_error *err)
{
	cleanup_close int fd = open_target(rootfd, rel, dir, err);
	if (fd < 0)
		return fd;
	return bind_tree(rootfd, rel, fd, "", MOUNT_ATTR_RDONLY, rel, err);
}

static int check_fs_type(int rootfd, const char *rel, long magic, const char *what, struct corral_error *err)
{
	struct statfs sf;
	cleanup_close int fd = openat2_beneath(rootfd, rel, O_PATH | O_DIRECTORY);
	if (fd < 0 || fstatfs(fd, &sf) < 0)
		return err_set(err, fd < 0 ? -fd : errno, "check /%s", rel);
	if (sf.f_type != magic)
		return err_plain(err, EPERM, "/%s is not a real %s filesystem: refusing to continue", rel, what);
	return 0;
}

static int make_dev(int rootfd, bool own_nodes, struct corral_error *err)
{
	static const struct { const char *name; unsigned major, minor; } nodes[] = {
		{ "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 },
		{ "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
	};
	/* The device allow-list is made of mounts: the root and /dev are
	 * nodev, so a node made there (even with --cap-add MKNOD) cannot be
	 * opened; each standard node is a mount of its own that allows it.
	 *
	 * Without a user namespace the nodes are the container's own, made
	 * here as runc and crun do: chmod, chown or touch inside change them,
	 * never the host's.  For mknod the tmpfs starts without nodev; each
	 * node is then bound onto itself (the bind keeps devices allowed) and
	 * /dev alone made nodev.
	 *
	 * In a user namespace mknod is impossible: the nodes are binds of the
	 * host's, read-only, so chmod, chown and utimes fail with EROFS
	 * instead of reaching the host's inode.  Reading and writing a device
	 * is no write to its filesystem and still works. */
	int r = mount_at(rootfd, "dev", true, "tmpfs", "tmpfs", MS_NOSUID | MS_NOEXEC | (own_nodes ? 0 : MS_NODEV),
			 "mode=755,size=65536k", err);
	if (r < 0)
		return r;
	cleanup_close int dev = openat2_beneath(rootfd, "dev", O_PATH | O_DIRECTORY);
	if (dev < 0)
		return err_set(err, -dev, "open /dev");
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		char host[64], rel[64];
		snprintf(host, sizeof(host), "/dev/%s", nodes[i].name);
		snprintf(rel, sizeof(rel), "dev/%s", nodes[i].name);
		if (!own_nodes) {
			r = bind_tree(rootfd, rel, AT_FDCWD, host,
				      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, host, err);
			if (r < 0)
				return r;
			continue;
		}
		/* mknod applies the umask: the mode is set again. */
		if (mknodat(dev, nodes[i].name, S_IFCHR | 0666, makedev(nodes[i].major, nodes[i].minor)) < 0 ||
		    fchmodat(dev, nodes[i].name, 0666, 0) < 0)
			return err_set(err, errno, "make /%s", rel);
		cleanup_close int node = openat2_beneath(dev, nodes[i].name, O_PATH);
		if (node < 0)
			return err_set(err, -node, "open /%s", rel);
		r = bind_tree(rootfd, rel, node, "", 0, rel, err);
		if (r < 0)
			return r;
	}
	if (own_nodes) {
		struct mount_attr attr = { .attr_set = MOUNT_ATTR_NODEV };
		if (mount_setattr(dev, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
			return mount_api_error(err, errno, "make /dev nodev");
	}
	r = mount_at(rootfd, "dev/pts", true, "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
		     "newinstance,ptmxmode=0666,mode=0620", err);
	if (r < 0)
		return r;
	r = mount_at(rootfd, "dev/shm", true, "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		     "mode=1777,size=65536k", err);
	if (r < 0)
		return r;
	r = mount_at(rootfd, "dev/mqueue", true, "mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err);
	if (r < 0)
		return r;
	static const struct { const char *name, *target; } links[] = {
		{ "ptmx", "pts/ptmx" }, { "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
		{ "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" },
	};
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlinkat(links[i].target, dev, links[i].name) < 0)
			return err_set(err, errno, "symlink /dev/%s", links[i].name);
	return 0;
}

/* Docker's masked paths: hidden behind an empty read-only tmpfs or the
 * container's own /dev/null, bound read-only (the host's node never: a chmod
 * of /proc/kcore would change it). */
static int mask_paths(int rootfd, struct corral_error *err)
{
	cleanup_close int null = openat2_beneath(rootfd, "dev/null", O_PATH);
	if (null < 0)
		return err_set(err, -null, "open /dev/null");
	static const char *const masked[] = {
		"proc/acpi", "proc/asound", "proc/kcore", "proc/keys", "proc/latency_stats",
		"proc/timer_list", "proc/timer_stats", "proc/sched_debug", "proc/scsi",
		"sys/firmware", "sys/devices/virtual/powercap",
	};
	for (size_t i = 0; i < sizeof(masked) / sizeof(masked[0]); i++) {
		struct stat st;
		cleanup_close int fd = openat2_beneath(rootfd, masked[i], O_PATH);
		if (fd < 0)
			continue; /* absent on this kernel */
		if (fstat(fd, &st) < 0)
			return err_set(err, errno, "stat /%s", masked[i]);
		if (!S_ISDIR(st.st_mode)) {
			int r = bind_tree(rootfd, masked[i], null, "", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
					  "/dev/null", err);
			if (r < 0)
				return r;
			continue;
		}
		char target[64];
		fd_target(target, fd);
		if (mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0") < 0)
			return err_set(err, errno, "mask /%s", masked[i]);
	}
	static const char *const readonly[] = {
		"proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger",
	};
	for (size_t i = 0; i < sizeof(readonly) / sizeof(readonly[0]); i++) {
		struct stat st;
		cleanup_close int fd = openat2_beneath(rootfd, readonly[i], O_PATH);
		if (fd < 0 || fstat(fd, &st) < 0)
			continue;
		int r = remount_readonly(rootfd, readonly[i], S_ISDIR(st.st_mode), err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int mount_cgroupfs(int rootfd, const struct container_config *c, struct corral_error *err)
{
	struct statfs sf;
	/* systemd: its own cgroup2 directory, writable (cgroup_delegate
	 * moved the init there before its cgroup namespace was made, so
	 * that directory is this mount's root; files of the root other than
	 * cgroup.procs, .threads, .subtree_control stay the kernel's to
	 * refuse inside the namespace). */
	if (c->boot == BOOT_SYSTEMD)
		return mount_at(rootfd, "sys/fs/cgroup", true, "cgroup2", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC,
				NULL, err);
	/* Pure v2 host: the container's own (namespaced) cgroup2 tree,
	 * read-only.  v1/hybrid: an empty read-only tmpfs, so no
	 * release_agent or other host knob is ever reachable. */
	if (statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
		return mount_at(rootfd, "sys/fs/cgroup", true, "cgroup2", "cgroup2",
				MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err);
	return mount_at(rootfd, "sys/fs/cgroup", true, "cgroup", "tmpfs",
			MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=0", err);
}

/* A booting container starts as a machine does: /run, /run/lock and /tmp
 * empty tmpfs (what an init expects, and nothing left from the last
 * boot), charged to the container's memory. */
static int mount_boot_dirs(int rootfd, struct corral_error *err)
{
	int r = mount_at(rootfd, "run", true, "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=20%", err);
	if (r == 0)
		r = mount_at(rootfd, "run/lock", true, "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
			     "mode=1777,size=5m", err);
	if (r == 0)
		r = mount_at(rootfd, "tmp", true, "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=20%", err);
	return r;
}

/* --mount: recursive binds with nodev, nosuid (and ro) on every mount of
 * the tree, submounts included -- a flag on the top mount alone would
 * leave a submount writable. */
static int bind_user_mounts(int rootfd, const struct container_config *c, struct corral_error *err)
{
	for (int i = 0; i < c->nmounts; i++) {
		const struct bind_mount *m = &c->mounts[i];
		uint64_t set = MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | (m->readonly ? MOUNT_ATTR_RDONLY : 0);
		int r = bind_tree(rootfd, m->target + 1, AT_FDCWD, m->source, set, m->source, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int rootfs_enter(int view, const struct container_config *c, const char *console, struct corral_error *err)
{
	/* Nothing done from here on may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return err_set(err, errno, "make mounts private");
	/* The view is attached on this namespace's copy of the host's cowfs
	 * mount, which is the working directory (see rootfs.h): no path
	 * below the 0700 state root is walked, which a user-namespaced root
	 * could not do.  The copy itself is not used: in a user namespace it
	 * is locked (pivot_root refuses it, its nosuid cannot be cleared). */
	struct statfs sf;
	if (statfs(".", &sf) < 0 || sf.f_type != FUSE_SUPER_MAGIC)
		return err_plain(err, EIO, "the working directory is not the container's cowfs mount");
	if (move_mount(view, "", AT_FDCWD, ".", MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return err_set(err, errno, "attach the container's root");
	/* The descriptor now names the attached root. */
	int rootfd = view;

	int r = mount_at(rootfd, "proc", true, "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err);
	if (r == 0)
		r = check_fs_type(rootfd, "proc", PROC_SUPER_MAGIC, "proc", err);
	if (r == 0)
		r = mount_at(rootfd, "sys", true, "sysfs", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			     NULL, err);
	if (r == 0)
		r = check_fs_type(rootfd, "sys", SYSFS_MAGIC, "sysfs", err);
	if (r == 0)
		r = mount_cgroupfs(rootfd, c, err);
	if (r == 0 && config_boots_init(c))
		r = mount_boot_dirs(rootfd, err);
	if (r == 0)
		r = make_dev(rootfd, !c->userns, err);
	if (r == 0 && console)
		r = mount_at(rootfd, "dev/console", false, console, NULL, MS_BIND, NULL, err);
	if (r == 0)
		r = bind_user_mounts(rootfd, c, err);
	if (r == 0)
		r = mask_paths(rootfd, err);
	if (r < 0)
		return r;

	/* pivot_root(".", "."): the old root ends up on top of the new one
	 * and is detached at once; no host path stays reachable. */
	if (fchdir(rootfd) < 0)
		return err_set(err, errno, "chdir to the root");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return err_set(err, errno, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return err_set(err, errno, "detach the old root");
	if (chdir("/") < 0)
		return err_set(err, errno, "chdir /");
	return 0;
}
