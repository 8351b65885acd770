/* Copy-up: making a lower object writable by copying it to the upper layer.
 *
 * Regular files are copied into an unnamed O_TMPFILE in the target upper
 * directory, given their owner, mode, xattrs and timestamps, fsync'ed, and
 * only then linked under their name: a crash leaves either no upper copy or
 * a complete one.  Directories and special files are built the same way in
 * the work directory and renamed in (cowfs-stage.c).  Attributes are only
 * ever applied through descriptors: the tenant can rename anything over a
 * name in the upper at any time.  Data moves by reflink (FICLONE) when the filesystem can
 * share extents, else by copy_file_range over the data segments only, so
 * sparse files stay sparse; the data, xattrs (overlayfs's private ones
 * left out), owner, mode and times are copied by the project's one file
 * copy, common/copy-file.c, which states the xattr error policy.
 *
 * Locking: only the node being copied is locked, so a long copy does not
 * hold up work on other files.  Parents are copied first, outside the lock.
 *
 * Lazy copy-up (cowfs-partial.c) plugs in at copy_up_regular(): a regular
 * file of more than one block becomes a partial file, a sparse upper copy
 * plus a record naming the lower file, and only the blocks written later
 * are copied; the node state machine (layer 1.. -> 0) stays the same. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "copy-file.h"
#include "cowfs.h"
#include "cowfs-partial.h"

/* overlayfs's private xattrs describe the layer, not the file: never copied. */
static bool xattr_wanted(const char *name)
{
	return !layer_is_private_xattr(name);
}

/* copy_up() recurses once per ancestor not yet copied on a worker thread's
 * 256 KiB stack (cowfs-loop.c): the per-type copiers stay out of line, so
 * their buffers (a PATH_MAX symlink target) are not in every frame. */
#define COPY_UP_OUT_OF_LINE __attribute__((noinline))

static COPY_UP_OUT_OF_LINE int copy_up_regular(struct cowfs *fs, struct cowfs_node *n, int pfd, const char *name,
			   const struct stat *st, int flags, bool anonymous, int *ret_fd)
{
	char dst_path[64];
	cleanup_close int src = reopen_fd(fs, node_fd(n), O_RDONLY);
	if (src < 0)
		return src;

	cleanup_close int dst = openat(pfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (dst < 0)
		return -errno;

	/* Lazy: the data stays in the lower file until written (a file of
	 * one block is copied whole: the record would cost as much).  Falls
	 * back to a whole copy where it cannot be recorded. */
	int r = -EOPNOTSUPP;
	if (!(flags & COPY_UP_NO_DATA) && st->st_size > PARTIAL_BLOCK)
		r = partial_copy_up(fs, n, node_layer(n), st, dst);
	bool lazy = r == 0;
	if (r < 0 && r != -EOPNOTSUPP)
		return r;
	r = copy_file(src, dst, st, lazy || (flags & COPY_UP_NO_DATA), xattr_wanted, NULL);
	if (r == 0 && (fs->sync_copy_up || lazy) && fsync(dst) < 0)
		r = -errno;
	if (r < 0) {
		if (lazy)
			partial_forget(n);
		return r;
	}
	fd_path(dst_path, dst);

	if (anonymous) {
		/* Deleted while open: the copy stays unnamed, like the file. */
		*ret_fd = take_fd(dst);
		return 0;
	}
	/* The descriptor is taken before the name exists: the tenant may
	 * rename anything over the name right after the link. */
	int fd = reopen_fd(fs, dst, O_PATH);
	if (fd < 0)
		return fd;
	if (linkat(AT_FDCWD, dst_path, pfd, name, AT_SYMLINK_FOLLOW) < 0) {
		r = -errno;
		close(fd);
		if (lazy)
			partial_forget(n);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* Directories and special files are built in the work directory with
 * their final owner, mode, xattrs and times (cowfs-stage.c), then renamed
 * in: the tenant, racing renames in the parent, never sees a half-made
 * object, nor can it swap one in for a name-based chmod to follow (a
 * symlink to a host file would have received the copied mode). */
static COPY_UP_OUT_OF_LINE int copy_up_dir(struct cowfs *fs, struct cowfs_node *n, struct cowfs_stage *s,
		       const struct stat *st, int *ret_fd)
{
	if (mkdirat(s->dirfd, s->name, 0700) < 0)
		return -errno;
	s->built = true;
	cleanup_close int dst = openat(s->dirfd, s->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dst < 0)
		return -errno;
	int r = copy_file_meta(node_fd(n), dst, st, xattr_wanted, NULL);
	if (r < 0)
		return r;
	int fd = reopen_fd(fs, dst, O_PATH | O_DIRECTORY);
	if (fd < 0)
		return fd;
	*ret_fd = fd;
	return 0;
}

static int set_times_fd(struct cowfs_stage *s, int fd, const struct stat *st)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	if (utimensat(fd, "", ts, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	/* Kernel without AT_EMPTY_PATH for utimensat: by name, which is
	 * safe in the work dir; in place (no work dir) only a same-typed
	 * object can have been swapped in, never followed. */
	return utimensat(s->dirfd, s->name, ts, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* Symlinks, fifos, sockets and device nodes. */
static COPY_UP_OUT_OF_LINE int copy_up_other(struct cowfs *fs, struct cowfs_node *n, int lower_pfd, const char *name,
			 struct cowfs_stage *s, const struct stat *st, int *ret_fd)
{
	char dst_path[64];
	bool link = S_ISLNK(st->st_mode);

	if (link) {
		char target[PATH_MAX];
		ssize_t len = readlinkat(node_fd(n), "", target, sizeof(target) - 1);
		if (len < 0)
			return -errno;
		target[len] = '\0';
		if (symlinkat(target, s->dirfd, s->name) < 0)
			return -errno;
	} else if (mknodat(s->dirfd, s->name, st->st_mode, st->st_rdev) < 0) {
		return -errno;
	}
	s->built = true;
	cleanup_close int fd = stage_open(s, st->st_mode & S_IFMT);
	if (fd < 0)
		return fd;
	/* All through the descriptor: /proc/self/fd/N of an O_PATH
	 * descriptor reaches the object itself, never a symlink's target. */
	if (fchownat(fd, "", st->st_uid, st->st_gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	fd_path(dst_path, fd);
	if (!link && chmod(dst_path, st->st_mode & 07777) < 0)
		return -errno;
	int r = 0;
	if (!link)
		r = copy_xattrs(node_fd(n), fd, xattr_wanted, NULL);
	else if (lower_pfd >= 0)
		/* A symlink's xattrs are reached by name through its directory
		 * (the magic link would be the one acted on): the lower layer
		 * is read-only, the staged copy out of the tenant's reach. */
		r = copy_xattrs_at(lower_pfd, name, s->dirfd, s->name, xattr_wanted, NULL);
	if (r < 0)
		return r;
	r = set_times_fd(s, fd, st);
	if (r < 0)
		return r;
	*ret_fd = take_fd(fd);
	return 0;
}

int copy_up(struct cowfs *fs, struct cowfs_node *n, int flags)
{
	if (node_is_upper(n))
		return 0;

	cleanup_free char *name = NULL;
	struct cowfs_node *parent = node_get_parent(fs, n, &name);
	bool anonymous = atomic_load(&n->deleted) || !parent;
	int r = 0;

	if (anonymous && n->type != S_IFREG) {
		r = -ESTALE;
		goto out;
	}
	if (!anonymous) {
		r = copy_up(fs, parent, COPY_UP_DATA);
		if (r < 0)
			goto out;
	}

	pthread_mutex_lock(&n->lock);
	if (node_is_upper(n))
		goto unlock;

	int lower = node_layer(n);
	struct stat st;
	r = layer_stat_fd(n->fds[lower], &st);
	if (r < 0)
		goto unlock;

	/* A lazy copy-up allocates nearly nothing now; its blocks are
	 * charged as they are copied in, with the write that needs them. */
	bool lazy = n->type == S_IFREG && !(flags & COPY_UP_NO_DATA) && st.st_size > PARTIAL_BLOCK;
	int64_t need = (n->type == S_IFREG && !(flags & COPY_UP_NO_DATA) && !lazy) ? (int64_t)st.st_blocks * 512 : 0;
	r = quota_check(fs, need, 1);
	if (r < 0)
		goto unlock;
	int pfd = anonymous ? fs->layers[0].root_fd : parent->fds[0];
	int fd = -1;
	if (n->type == S_IFREG) {
		r = copy_up_regular(fs, n, pfd, name, &st, flags, anonymous, &fd);
	} else {
		struct cowfs_stage s;
		r = stage_begin(fs, &s, pfd, name, STAGE_IN_WORK);
		if (r == 0 && n->type == S_IFDIR)
			r = copy_up_dir(fs, n, &s, &st, &fd);
		else if (r == 0)
			r = copy_up_other(fs, n, parent->fds[lower], name, &s, &st, &fd);
		if (r == 0)
			r = stage_install(fs, &s);
		if (r < 0) {
			if (fd >= 0)
				close(fd);
			stage_abort(fs, &s, n->type == S_IFDIR);
		}
	}
	if (r == -EEXIST) {
		/* The name was taken meanwhile (the tenant renamed something
		 * over it): the lower object it showed is gone. */
		atomic_store(&n->deleted, true);
		r = -ESTALE;
	}
	if (r < 0)
		goto unlock;

	struct stat ust;
	if (layer_stat_fd(fd, &ust) == 0) {
		quota_charge(fs, (int64_t)ust.st_blocks * 512, 1);
		origin_remember(fs, ust.st_ino, n->st_ino);
		node_rekey(fs, n, ust.st_dev, ust.st_ino);
	}
	n->fds[0] = fd;
	/* A copy made here has a record only if partial_copy_up wrote one. */
	if (n->type == S_IFREG)
		atomic_store(&n->partial_loaded, true);
	atomic_store_explicit(&n->layer, 0, memory_order_release);
unlock:
	pthread_mutex_unlock(&n->lock);
out:
	if (parent)
		node_unref(fs, parent, 1);
	return r;
}

int copy_up_tree(struct cowfs *fs, struct cowfs_node *dir)
{
	struct cowfs_dirlist list = { 0 };
	int r = copy_up(fs, dir, COPY_UP_DATA);
	if (r < 0)
		return r;
	if (atomic_load(&dir->opaque))
		return 0;
	r = dirlist_build(fs, dir, &list, false);
	if (r < 0)
		return r;
	for (size_t i = 0; i < list.count && r == 0; i++) {
		struct cowfs_node *child;
		struct stat st;
		r = cowfs_lookup_child(fs, dir, list.entries[i].name, &child, &st);
		if (r == 0) {
			if (child->type == S_IFDIR)
				r = copy_up_tree(fs, child);
			else
				r = copy_up(fs, child, COPY_UP_DATA);
			node_unref(fs, child, 1);
		}
		/* Removed or replaced through the mount meanwhile: whatever
		 * holds the name now is already in the upper. */
		if (r == -ENOENT || r == -ESTALE)
			r = 0;
	}
	dirlist_release(&list);
	if (r < 0)
		return r;
	/* Every visible entry now lives in the upper: hide the lower dirs. */
	r = layer_set_opaque(fs, dir->fds[0]);
	if (r == 0)
		atomic_store(&dir->opaque, true);
	return r;
}
