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
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "cleanup.h"
#include "fileio.h"
#include "rootfs.h"
#include "state.h"

/* ---- host side ---- */

bool rootfs_is_mounted(const char *mnt)
{
	return path_is_mountpoint(mnt);
}

/* Whether an I/O limit set for block device major:minor covers the
 * filesystem holding `path` (the device itself, or the disk whose
 * partition it is). */
bool rootfs_io_limit_covers(const struct cgroup_io_limit *l, const char *path)
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

/* The container's file I/O goes through cowfs: its I/O limits are handed
 * to cowfs, which paces them (cgroup v1 does not charge buffered
 * writeback to the writer, so a blkio limit alone would not bite). */
static int io_limit_options(const struct container_config *c, const char *upper, char *buf, size_t len)
{
	int n = 0;
	for (int i = 0; i < c->limits.nio; i++) {
		const struct cgroup_io_limit *l = &c->limits.io[i];
		if (!rootfs_io_limit_covers(l, upper))
			continue;
		static const char *const names[] = { "read_bps", "write_bps", "read_iops", "write_iops" };
		const int64_t vals[] = { l->rbps, l->wbps, l->riops, l->wiops };
		for (int k = 0; k < 4; k++)
			if (vals[k] != CGROUP_UNSET)
				n += snprintf(buf + n, len - n, "%s%s=%lld", n ? "," : "", names[k], (long long)vals[k]);
	}
	return n;
}

/* Exit status of the forked daemon when it cannot join the cgroup. */
#define COWFS_NO_CGROUP 125

int rootfs_mount_cowfs(const char *cowfs_bin, const char *base, const char *upper, const char *work,
		       const char *mnt, const struct container_config *c, struct corral_error *err)
{
	char opts[512] = "";
	(void)c;
	if (rootfs_is_mounted(mnt))
		return 0; /* left by a crashed start: reuse it */
	pid_t pid = fork();
	if (pid < 0)
		return err_set(err, errno, "fork for cowfs");
	if (pid == 0) {
		/* The daemon is charged to the container: its cgroup was
		 * created by the caller; join it before exec.  Fail closed: a
		 * daemon outside it would escape the container's limits. */
		struct cgroup *cg = NULL;
		struct corral_error cerr = { 0 };
		char inst[160];
		if (cgroup_open(state_instance_name(c->name, inst, sizeof(inst)), &cg, &cerr) < 0 ||
		    cgroup_enter_self(cg, true, &cerr) < 0) {
			fprintf(stderr, "corral: cowfs: %s\n", cerr.msg);
			_exit(COWFS_NO_CGROUP);
		}
		cgroup_free(cg);
		/* Quota enforced by cowfs; with a user namespace, cowfs shows
		 * the template's root-owned files as the container's root. */
		int n = 0;
		if (c->disk_bytes || c->disk_inodes)
			n = snprintf(opts, sizeof(opts), "quota_bytes=%llu,quota_inodes=%llu",
				     (unsigned long long)c->disk_bytes, (unsigned long long)c->disk_inodes);
		if (c->userns)
			n += snprintf(opts + n, sizeof(opts) - n, "%sidshift=%u:%u", n ? "," : "", c->userns_base,
				      c->userns_size);
		if (c->limits.nio) {
			char io[256];
			if (io_limit_options(c, upper, io, sizeof(io)) > 0)
				snprintf(opts + n, sizeof(opts) - n, "%s%s", n ? "," : "", io);
		}
		const char *argv[16];
		n = 0;
		argv[n++] = cowfs_bin;
		argv[n++] = "--base";
		argv[n++] = base;
		argv[n++] = "--upper";
		argv[n++] = upper;
		argv[n++] = "--work";
		argv[n++] = work;
		if (opts[0]) {
			argv[n++] = "-o";
			argv[n++] = opts;
		}
		argv[n++] = mnt;
		argv[n] = NULL;
		signal(SIGPIPE, SIG_DFL);
		execv(cowfs_bin, (char **)argv);
		fprintf(stderr, "corral: cannot run %s: %s\n", cowfs_bin, strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return err_set(err, errno, "wait for cowfs");
	if (WIFEXITED(status) && WEXITSTATUS(status) == COWFS_NO_CGROUP)
		return err_plain(err, EIO, "the cowfs daemon for %s could not join the container's cgroup", mnt);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return err_plain(err, EIO, "cowfs could not mount the root at %s (exit status %d)", mnt,
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

/* Remounts the bind mount at `rel` adding `add` (MS_RDONLY, MS_NODEV...),
 * keeping the flags it already has (in a user namespace they are locked). */
static int remount_flags(int rootfd, const char *rel, bool dir, unsigned long add, struct corral_error *err)
{
	char target[64];
	cleanup_close int top = open_target(rootfd, rel, dir, err);
	if (top < 0)
		return top;
	fd_target(target, top);
	struct statvfs sv;
	unsigned long flags = MS_BIND | MS_REMOUNT | add;
	if (statvfs(target, &sv) == 0) {
		static const struct { unsigned long st, ms; } keep[] = {
			{ ST_RDONLY, MS_RDONLY }, { ST_NOSUID, MS_NOSUID }, { ST_NODEV, MS_NODEV },
			{ ST_NOEXEC, MS_NOEXEC }, { ST_NOATIME, MS_NOATIME }, { ST_NODIRATIME, MS_NODIRATIME },
			{ ST_RELATIME, MS_RELATIME },
		};
		for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
			if (sv.f_flag & keep[i].st)
				flags |= keep[i].ms;
	}
	if (mount(NULL, target, NULL, flags, NULL) < 0)
		return err_set(err, errno, "remount /%s", rel);
	return 0;
}

/* Binds `rel` onto itself, then makes that bind read-only. */
static int remount_readonly(int rootfd, const char *rel, bool dir, struct corral_error *err)
{
	char target[64];
	int fd = open_target(rootfd, rel, dir, err);
	if (fd < 0)
		return fd;
	fd_target(target, fd);
	int r = mount(target, target, NULL, MS_BIND | MS_REC, NULL);
	close(fd);
	if (r < 0)
		return err_set(err, errno, "bind /%s", rel);
	/* remount_flags reopens: the old descriptor names what is now under
	 * the bind. */
	return remount_flags(rootfd, rel, dir, MS_RDONLY, err);
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

static int make_dev(int rootfd, struct corral_error *err)
{
	static const struct { const char *name; unsigned major, minor; } nodes[] = {
		{ "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 },
		{ "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
	};
	/* nodev: a node made here (even with --cap-add MKNOD) cannot be
	 * opened.  The standard nodes are bind mounts of the host's, which
	 * keep their own access; together with a nodev root this is the
	 * device allow-list. */
	int r = mount_at(rootfd, "dev", true, "tmpfs", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV,
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
		r = mount_at(rootfd, rel, false, host, NULL, MS_BIND, NULL, err);
		if (r < 0)
			return r;
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

/* Docker's masked paths: hidden behind an empty read-only tmpfs or /dev/null. */
static int mask_paths(int rootfd, struct corral_error *err)
{
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
		char target[64];
		fd_target(target, fd);
		int r = S_ISDIR(st.st_mode)
				? mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
				: mount("/dev/null", target, NULL, MS_BIND, NULL);
		if (r < 0)
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

static int mount_cgroupfs(int rootfd, struct corral_error *err)
{
	struct statfs sf;
	/* Pure v2 host: the container's own (namespaced) cgroup2 tree,
	 * read-only.  v1/hybrid: an empty read-only tmpfs, so no
	 * release_agent or other host knob is ever reachable. */
	if (statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
		return mount_at(rootfd, "sys/fs/cgroup", true, "cgroup2", "cgroup2",
				MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err);
	return mount_at(rootfd, "sys/fs/cgroup", true, "cgroup", "tmpfs",
			MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=0", err);
}

static int bind_user_mounts(int rootfd, const struct container_config *c, struct corral_error *err)
{
	for (int i = 0; i < c->nmounts; i++) {
		const struct bind_mount *m = &c->mounts[i];
		struct stat st;
		if (stat(m->source, &st) < 0)
			return err_set(err, errno, "mount source %s", m->source);
		int r = mount_at(rootfd, m->target + 1, S_ISDIR(st.st_mode), m->source, NULL, MS_BIND | MS_REC, NULL, err);
		if (r < 0)
			return r;
		r = remount_flags(rootfd, m->target + 1, S_ISDIR(st.st_mode),
				  MS_NODEV | MS_NOSUID | (m->readonly ? MS_RDONLY : 0), err);
		if (r < 0)
			return r;
	}
	return 0;
}

int rootfs_enter(const char *rootfs, const struct container_config *c, const char *console,
		 struct corral_error *err)
{
	/* Nothing done from here on may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return err_set(err, errno, "make mounts private");
	/* A bind of the root onto itself: in a user namespace the copied
	 * cowfs mount is locked and pivot_root refuses it; the bind is ours.
	 * nodev: device nodes made in the root cannot be opened. */
	if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		return err_set(err, errno, "bind the root %s", rootfs);
	cleanup_close int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return err_set(err, errno, "open root %s", rootfs);
	int r0 = remount_flags(rootfd, ".", true, MS_NODEV, err);
	if (r0 < 0)
		return r0;

	int r = mount_at(rootfd, "proc", true, "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err);
	if (r == 0)
		r = check_fs_type(rootfd, "proc", PROC_SUPER_MAGIC, "proc", err);
	if (r == 0)
		r = mount_at(rootfd, "sys", true, "sysfs", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			     NULL, err);
	if (r == 0)
		r = check_fs_type(rootfd, "sys", SYSFS_MAGIC, "sysfs", err);
	if (r == 0)
		r = mount_cgroupfs(rootfd, err);
	if (r == 0)
		r = make_dev(rootfd, err);
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
		return err_set(err, errno, "chdir to %s", rootfs);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return err_set(err, errno, "pivot_root into %s", rootfs);
	if (umount2(".", MNT_DETACH) < 0)
		return err_set(err, errno, "detach the old root");
	if (chdir("/") < 0)
		return err_set(err, errno, "chdir /");
	return 0;
}
