/* Layer format: kernel overlayfs's on-disk conventions, and helpers to
 * reach real objects through their O_PATH descriptors.
 *
 * Whiteout:  a 0:0 character device.
 * Opaque:    trusted.overlay.opaque="y" on a directory, or the
 *            user.overlay.opaque form when trusted.* cannot be written
 *            (unprivileged mounts, as overlayfs's "userxattr" option).
 * Both forms are always read; the form written is chosen at mount time. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cowfs.h"

#define XATTR_TRUSTED_OPAQUE "trusted.overlay.opaque"
#define XATTR_USER_OPAQUE "user.overlay.opaque"

void fd_path(char buf[64], int fd)
{
	snprintf(buf, 64, "/proc/self/fd/%d", fd);
}

int reopen_fd(struct cowfs *fs, int fd, int flags)
{
	char name[16];
	snprintf(name, sizeof(name), "%d", fd);
	int r = openat(fs->proc_fd, name, flags | O_CLOEXEC);
	return r < 0 ? -errno : r;
}

int layer_stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static bool xattr_says_yes(const char *path, const char *name)
{
	char v[4];
	ssize_t n = getxattr(path, name, v, sizeof(v));
	return n == 1 && v[0] == 'y';
}

int layer_is_opaque_dir(struct cowfs *fs, int dirfd)
{
	char path[64];
	fd_path(path, dirfd);
	(void)fs;
	return xattr_says_yes(path, XATTR_TRUSTED_OPAQUE) || xattr_says_yes(path, XATTR_USER_OPAQUE);
}

int layer_set_opaque(struct cowfs *fs, int dirfd)
{
	char path[64];
	fd_path(path, dirfd);
	const char *name = fs->xattr_trusted ? XATTR_TRUSTED_OPAQUE : XATTR_USER_OPAQUE;
	return setxattr(path, name, "y", 1, 0) < 0 ? -errno : 0;
}

/* Whiteouts share one inode, as overlayfs's do: each is a hard link to a
 * template in the work directory.  Allocating a fresh inode per deleted
 * file makes removing a large base subtree several times slower. */
#define WHITEOUT_TEMPLATE "#cowfs.whiteout"

static int link_shared_whiteout(struct cowfs *fs, int dirfd, const char *name)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		if (linkat(fs->work_fd, WHITEOUT_TEMPLATE, dirfd, name, 0) == 0)
			return 0;
		int e = errno;
		if (e != ENOENT && e != EMLINK)
			return -e;
		pthread_mutex_lock(&fs->whiteout_lock);
		/* Full (EMLINK): start a new template; the old inode lives on
		 * through its links in the upper. */
		if (e == EMLINK)
			unlinkat(fs->work_fd, WHITEOUT_TEMPLATE, 0);
		int r = mknodat(fs->work_fd, WHITEOUT_TEMPLATE, S_IFCHR | 0000, makedev(0, 0));
		e = errno;
		pthread_mutex_unlock(&fs->whiteout_lock);
		if (r < 0 && e != EEXIST)
			return -e;
	}
	return -EMLINK;
}

int layer_make_whiteout(struct cowfs *fs, int dirfd, const char *name)
{
	if (fs->work_fd >= 0 && link_shared_whiteout(fs, dirfd, name) == 0)
		return 0;
	if (mknodat(dirfd, name, S_IFCHR | 0000, makedev(0, 0)) < 0)
		return -errno;
	return 0;
}

/* overlayfs's own xattrs on real objects, and a partial file's record
 * (cowfs-partial.h), are never shown, settable nor copied.  Both forms of
 * the record are hidden whatever the mount writes: a tenant must never
 * plant one. */
bool layer_is_private_xattr(const char *name)
{
	return strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0 ||
	       strcmp(name, "trusted.corral.partial") == 0 || strcmp(name, "user.corral.partial") == 0;
}
