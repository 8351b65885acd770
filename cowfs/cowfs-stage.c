/* Staging: building a new upper object out of the tenant's reach.
 *
 * The container races every name in its upper directories (a rename of a
 * symlink over a name is one FUSE request away), and a crash may stop the
 * daemon between any two syscalls.  So an object that must appear complete
 * (a directory or special file being copied up, anything created over a
 * whiteout) is built in the work directory, which the merged tree does not
 * show, given its final owner, mode and xattrs there, and only then renamed
 * to its name: RENAME_NOREPLACE onto a free name, RENAME_EXCHANGE with a
 * whiteout (which then leaves through the work directory).  Until that
 * rename the upper is unchanged; after it, complete.
 *
 * Objects created over a whiteout take on what the target directory would
 * have given them (its default ACL, its setgid group), so they are built in
 * a private subdirectory of the work directory that carries the same.
 *
 * Without a work directory the object is made in place, as kernel overlayfs
 * cannot do at all: a whiteout in the way is removed first and put back if
 * the creation fails, and attributes are still applied through descriptors,
 * never by name. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cleanup.h"
#include "cowfs.h"

#define XATTR_DEFAULT_ACL "system.posix_acl_default"

static _Atomic unsigned long work_counter;

void stage_work_name(char buf[64])
{
	snprintf(buf, 64, "#cowfs.%d.%lu", (int)getpid(), atomic_fetch_add(&work_counter, 1));
}

/* A work subdirectory that gives new entries what `target_fd` would:
 * its default ACL and, when it is setgid, its group and setgid bit. */
static int make_inheriting_dir(struct cowfs *fs, struct cowfs_stage *s, int target_fd)
{
	char tpath[64];
	struct stat tst;
	int r = layer_stat_fd(target_fd, &tst);
	if (r < 0)
		return r;
	fd_path(tpath, target_fd);
	char acl[8192];
	ssize_t acl_len = getxattr(tpath, XATTR_DEFAULT_ACL, acl, sizeof(acl));
	if (acl_len < 0 && errno != ENODATA && errno != ENOTSUP)
		return -errno;
	if (acl_len <= 0 && !(tst.st_mode & S_ISGID))
		return 0; /* nothing to inherit: build in the work dir itself */

	stage_work_name(s->sub);
	if (mkdirat(fs->work_fd, s->sub, 0700) < 0)
		return -errno;
	s->sub_fd = openat(fs->work_fd, s->sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->sub_fd < 0)
		return -errno;
	if (acl_len > 0 && fsetxattr(s->sub_fd, XATTR_DEFAULT_ACL, acl, acl_len, 0) < 0)
		return -errno;
	if ((tst.st_mode & S_ISGID) &&
	    (fchown(s->sub_fd, (uid_t)-1, tst.st_gid) < 0 || fchmod(s->sub_fd, 02700) < 0))
		return -errno;
	s->dirfd = s->sub_fd;
	snprintf(s->name, sizeof(s->name), "new");
	return 0;
}

int stage_begin(struct cowfs *fs, struct cowfs_stage *s, int target_fd, const char *target,
		enum stage_flags flags)
{
	*s = (struct cowfs_stage){ .target_fd = target_fd, .target = target, .sub_fd = -1,
				   .over_whiteout = flags & STAGE_OVER_WHITEOUT };
	if (fs->work_fd < 0 || !(flags & (STAGE_IN_WORK | STAGE_OVER_WHITEOUT))) {
		/* In place.  A whiteout must go first; stage_abort puts it back. */
		s->dirfd = target_fd;
		snprintf(s->name, sizeof(s->name), "%s", target);
		if (s->over_whiteout && unlinkat(target_fd, target, 0) < 0)
			return -errno;
		return 0;
	}
	s->in_work = true;
	s->dirfd = fs->work_fd;
	stage_work_name(s->name);
	if (flags & STAGE_INHERIT) {
		int r = make_inheriting_dir(fs, s, target_fd);
		if (r < 0) {
			stage_abort(fs, s, false);
			return r;
		}
	}
	return 0;
}

int stage_open(struct cowfs_stage *s, mode_t type)
{
	int fd = openat(s->dirfd, s->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (layer_stat_fd(fd, &st) < 0 || (st.st_mode & S_IFMT) != type) {
		/* Only in place (no work dir) can the name have been swapped. */
		close(fd);
		return -ESTALE;
	}
	s->ino = st.st_ino;
	return fd;
}

/* Removes the staging subdirectory, if any. */
static void stage_release(struct cowfs *fs, struct cowfs_stage *s)
{
	if (s->sub_fd >= 0)
		close(s->sub_fd);
	s->sub_fd = -1;
	if (s->sub[0])
		unlinkat(fs->work_fd, s->sub, AT_REMOVEDIR);
	s->sub[0] = '\0';
}

/* Moves the staged object to its free name.  Without RENAME_NOREPLACE
 * (an upper filesystem that lacks it) a non-directory is hard-linked
 * there instead, which cannot replace anything either. */
static int install_noreplace(struct cowfs_stage *s)
{
	if (renameat2(s->dirfd, s->name, s->target_fd, s->target, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	if (linkat(s->dirfd, s->name, s->target_fd, s->target, 0) < 0)
		return -errno;
	unlinkat(s->dirfd, s->name, 0);
	return 0;
}

/* Swaps the staged object with the whiteout at its name.  Without
 * RENAME_EXCHANGE a non-directory replaces the whiteout by a plain rename,
 * atomic as well (the kernel holds the directory: nothing else can have
 * taken the name). */
static int install_over_whiteout(struct cowfs_stage *s)
{
	if (renameat2(s->dirfd, s->name, s->target_fd, s->target, RENAME_EXCHANGE) == 0) {
		/* The whiteout came back to the work dir: dropped there. */
		unlinkat(s->dirfd, s->name, 0);
		return 0;
	}
	if (errno != EINVAL)
		return -errno;
	return renameat(s->dirfd, s->name, s->target_fd, s->target) < 0 ? -errno : 0;
}

int stage_install(struct cowfs *fs, struct cowfs_stage *s)
{
	if (!s->in_work)
		return 0;
	int r = s->over_whiteout ? install_over_whiteout(s) : install_noreplace(s);
	if (r < 0)
		return r; /* still staged: the caller aborts */
	s->installed = true;
	stage_release(fs, s);
	return 0;
}

void stage_abort(struct cowfs *fs, struct cowfs_stage *s, bool is_dir)
{
	int saved = errno;
	struct stat st;
	/* In place, remove only what this stage is known to have made (the
	 * name may have been taken over since). */
	if (s->built && !s->installed &&
	    (s->in_work ||
	     (s->ino && fstatat(s->dirfd, s->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == s->ino)))
		unlinkat(s->dirfd, s->name, is_dir ? AT_REMOVEDIR : 0);
	if (!s->installed) {
		/* In place: the name hides the lower object again. */
		if (!s->in_work && s->over_whiteout)
			layer_make_whiteout(fs, s->target_fd, s->target);
	}
	stage_release(fs, s);
	errno = saved;
}
