/* corral cp: files and directories between the host and a running
 * container's root filesystem.
 *
 * The container's side is hostile: its root owns every name in the tree
 * and may swap any of them while we copy.  So the tree is reached only
 * through the host-side cowfs mount's root directory (nosuid,nodev; no
 * submounts in the host's namespace), paths are resolved with openat2
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV (a symlink,
 * absolute or with "..", resolves as if that directory were "/": a link
 * to /etc/shadow reaches the container's own), and below the named path
 * every entry is opened relative to its parent's descriptor with
 * O_NOFOLLOW: symlinks met in a directory are copied as symlinks, never
 * followed.  A regular file is opened O_NONBLOCK and checked again after
 * the open (a fifo swapped in never blocks us).  Devices, fifos and
 * sockets are skipped (counted).  What comes out of a container loses its
 * set-id bits: a set-uid root binary from the container must not become
 * one on the host.  No extended attributes cross (file capabilities,
 * trusted.* records of cowfs).
 *
 * Its paths are what the container's root filesystem holds: bind mounts
 * (--mount), /proc, /sys and /dev are not part of it.  The host's side is
 * the operator's and paths there are used as given. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "container/state.h"
#include "copy-file.h"
#include "rootfs.h"
#include "start.h"

#define CP_MAX_DEPTH 256

struct cp {
	mode_t mask;		/* mode bits kept */
	size_t skipped;		/* special files left out */
	size_t files;
};

/* path below the container's root, resolved inside it. */
static int open_in_root(int root, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	for (int i = 0; i < 16; i++) {
		long fd = syscall(SYS_openat2, root, path, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno != EAGAIN) /* EAGAIN: a rename raced the lookup */
			return -errno;
	}
	return -EAGAIN;
}

/* An O_PATH descriptor reopened for reading: the same inode, no path
 * walked again (a directory through ".", a file through our own fd's
 * magic link, which is the kernel's, not the container's). */
static int reopen(int fd, int flags)
{
	char p[64];
	int r;
	if (flags & O_DIRECTORY)
		r = openat(fd, ".", flags | O_CLOEXEC);
	else {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		r = open(p, flags | O_CLOEXEC);
	}
	return r < 0 ? -errno : r;
}

static int copy_node(struct cp *cp, int src, const char *what, int ddir, const char *dname, int depth,
		     struct corral_error *err);

static int copy_dir(struct cp *cp, int src, const char *what, int ddir, const char *dname, const struct stat *st,
		    int depth, struct corral_error *err)
{
	struct stat dst_st;
	if (depth > CP_MAX_DEPTH)
		return err_plain(err, ELOOP, "%s: directories nested more than %d deep", what, CP_MAX_DEPTH);
	if (mkdirat(ddir, dname, 0700) < 0 &&
	    (errno != EEXIST || fstatat(ddir, dname, &dst_st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(dst_st.st_mode)))
		return err_set(err, errno == EEXIST ? EEXIST : errno, "make directory %s", dname);
	cleanup_close int dfd = openat(ddir, dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return err_set(err, errno, "open directory %s", dname);
	int sfd = reopen(src, O_RDONLY | O_DIRECTORY);
	if (sfd < 0)
		return err_set(err, -sfd, "open directory %s", what);
	DIR *d = fdopendir(sfd);
	if (!d) {
		close(sfd);
		return err_set(err, errno, "read directory %s", what);
	}
	int r = 0;
	struct dirent *de;
	while (r == 0 && (errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int child = openat(dirfd(d), de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (child < 0) {
			if (errno == ENOENT)
				continue; /* removed meanwhile */
			r = err_set(err, errno, "open %s/%s", what, de->d_name);
			break;
		}
		char sub[PATH_MAX];
		snprintf(sub, sizeof(sub), "%s/%s", what, de->d_name);
		r = copy_node(cp, child, sub, dfd, de->d_name, depth + 1, err);
		close(child);
	}
	if (r == 0 && errno)
		r = err_set(err, errno, "read directory %s", what);
	closedir(d);
	if (r == 0 && fchmod(dfd, st->st_mode & cp->mask & 07777) < 0)
		r = err_set(err, errno, "set the mode of %s", dname);
	return r;
}

static int copy_regular(struct cp *cp, int src, const char *what, int ddir, const char *dname, struct corral_error *err)
{
	struct stat st, dst_st;
	cleanup_close int sfd = reopen(src, O_RDONLY | O_NONBLOCK);
	if (sfd < 0)
		return err_set(err, -sfd, "open %s", what);
	if (fstat(sfd, &st) < 0)
		return err_set(err, errno, "stat %s", what);
	if (!S_ISREG(st.st_mode))
		return err_plain(err, EAGAIN, "%s changed while being copied", what);
	/* A symlink in the way (the container's, or an earlier copy's) is
	 * replaced, never written through. */
	if (fstatat(ddir, dname, &dst_st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(dst_st.st_mode))
		unlinkat(ddir, dname, 0);
	cleanup_close int dfd = openat(ddir, dname, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dfd < 0)
		return err_set(err, errno, "create %s", dname);
	if (fstat(dfd, &dst_st) < 0 || !S_ISREG(dst_st.st_mode))
		return err_plain(err, EEXIST, "%s exists and is not a regular file", dname);
	if (ftruncate(dfd, 0) < 0)
		return err_set(err, errno, "truncate %s", dname);
	int r = copy_file_data(sfd, dfd, st.st_size);
	if (r < 0)
		return err_set(err, -r, "copy %s", what);
	if (fchmod(dfd, st.st_mode & cp->mask & 07777) < 0)
		return err_set(err, errno, "set the mode of %s", dname);
	cp->files++;
	return 0;
}

static int copy_link(int src, const char *what, int ddir, const char *dname, struct corral_error *err)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(src, "", target, sizeof(target) - 1);
	if (n < 0)
		return err_set(err, errno, "read symlink %s", what);
	target[n] = '\0';
	struct stat st;
	if (fstatat(ddir, dname, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode))
		unlinkat(ddir, dname, 0);
	if (symlinkat(target, ddir, dname) < 0)
		return err_set(err, errno, "make symlink %s", dname);
	return 0;
}

/* src: an O_PATH descriptor of the entry itself (a symlink not followed). */
static int copy_node(struct cp *cp, int src, const char *what, int ddir, const char *dname, int depth,
		     struct corral_error *err)
{
	struct stat st;
	if (fstat(src, &st) < 0)
		return err_set(err, errno, "stat %s", what);
	if (S_ISDIR(st.st_mode))
		return copy_dir(cp, src, what, ddir, dname, &st, depth, err);
	if (S_ISREG(st.st_mode))
		return copy_regular(cp, src, what, ddir, dname, err);
	if (S_ISLNK(st.st_mode))
		return copy_link(src, what, ddir, dname, err);
	cp->skipped++;
	return 0;
}

/* The last component of path ("x" of "/a/x/"), into buf; "" for "/". */
static void last_name(const char *path, char *buf, size_t len)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	size_t n = strlen(tmp);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = '\0';
	const char *b = strrchr(tmp, '/');
	snprintf(buf, len, "%s", b ? b + 1 : tmp);
}

/* The directory part of path ("/a" of "/a/x"), into buf. */
static void dir_part(const char *path, char *buf, size_t len)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	snprintf(buf, len, "%s", dirname(tmp));
}

/* The container's root directory, from its host-side mount. */
static int open_container_root(const char *name, struct corral_error *err)
{
	char dir[PATH_MAX], mnt[PATH_MAX];
	struct container_state st;
	int r = state_path(dir, sizeof(dir), name, NULL, err);
	if (r == 0)
		r = state_path(mnt, sizeof(mnt), name, "rootfs", err);
	if (r < 0)
		return r;
	if (access(dir, F_OK) < 0)
		return err_plain(err, ENOENT, "no such container: %s", name);
	if (state_load(name, &st, NULL) < 0 || !state_init_alive(&st) || !rootfs_is_mounted(mnt))
		return err_plain(err, ESRCH, "container %s is not running: start it first (cp goes through "
				 "its mounted root filesystem)", name);
	int fd = open(mnt, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno, "open %s", mnt);
	return fd;
}

int container_cp(const char *name, const char *cpath, const char *hostpath, bool into, size_t *ret_skipped,
		 struct corral_error *err)
{
	cleanup_close int root = open_container_root(name, err);
	if (root < 0)
		return root;
	struct cp cp = { .mask = 07777 };
	char dname[NAME_MAX + 1], dirpath[PATH_MAX];
	cleanup_close int src = -1, ddir = -1;
	int r;
	if (!into) {
		/* Out: set-id bits dropped (see the top comment). */
		cp.mask = 01777;
		src = open_in_root(root, cpath, O_PATH);
		if (src < 0)
			return err_set(err, -src, "%s:%s", name, cpath);
		int hfd = open(hostpath, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (hfd >= 0) { /* into an existing directory, under its own name */
			ddir = hfd;
			last_name(cpath, dname, sizeof(dname));
			if (!dname[0] || !strcmp(dname, "/") || !strcmp(dname, ".") || !strcmp(dname, ".."))
				snprintf(dname, sizeof(dname), "%s", name);
		} else {
			dir_part(hostpath, dirpath, sizeof(dirpath));
			last_name(hostpath, dname, sizeof(dname));
			ddir = open(dirpath, O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (ddir < 0)
				return err_set(err, errno, "open %s", dirpath);
		}
		char what[PATH_MAX + 64];
		snprintf(what, sizeof(what), "%s:%s", name, cpath);
		r = copy_node(&cp, src, what, ddir, dname, 0, err);
	} else {
		src = open(hostpath, O_PATH | O_CLOEXEC);
		if (src < 0)
			return err_set(err, errno, "open %s", hostpath);
		int t = open_in_root(root, cpath, O_PATH | O_DIRECTORY);
		if (t >= 0) {
			ddir = t;
			last_name(hostpath, dname, sizeof(dname));
		} else {
			dir_part(cpath, dirpath, sizeof(dirpath));
			last_name(cpath, dname, sizeof(dname));
			ddir = open_in_root(root, dirpath, O_PATH | O_DIRECTORY);
			if (ddir < 0)
				return err_set(err, -ddir, "%s:%s", name, dirpath);
		}
		if (!dname[0] || !strcmp(dname, ".") || !strcmp(dname, "..") || strchr(dname, '/'))
			return err_plain(err, EINVAL, "cannot copy to '%s': name the file to make", cpath);
		r = copy_node(&cp, src, hostpath, ddir, dname, 0, err);
	}
	if (ret_skipped)
		*ret_skipped = cp.skipped;
	return r;
}
