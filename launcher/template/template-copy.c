/* Copying a directory tree into a template, and removing trees.
 *
 * The walk is done with directory fds only: every entry is looked at with
 * fstatat(AT_SYMLINK_NOFOLLOW) and opened with O_NOFOLLOW relative to its
 * parent, so a symlink inside the source is copied as a symlink and never
 * leads the walk out of the tree.  Destination entries are created with
 * O_EXCL inside a directory only we write to. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cleanup.h"
#include "copy-file.h"
#include "fileio.h"
#include "template-internal.h"

/* ---- copying ------------------------------------------------------------- */

/* A source inode with more than one link, and where its first copy went. */
struct link_seen {
	dev_t dev;
	ino_t ino;
	char path[];		/* relative to the destination root */
};

struct copy_ctx {
	int dst_root_fd;
	void *links;		/* tsearch tree of struct link_seen */
	dev_t skip_dev;
	ino_t skip_ino;
	char path[PATH_MAX];	/* relative path of the entry being copied */
	struct corral_error *err;
};

static int link_cmp(const void *a, const void *b)
{
	const struct link_seen *x = a, *y = b;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return 0;
}

static const char *shown(const struct copy_ctx *c)
{
	return c->path[0] ? c->path : ".";
}

static int fail(struct copy_ctx *c, int code, const char *what)
{
	return err_set(c->err, code, "'%s': %s", shown(c), what);
}

/* A failure of the shared copy, with the entry it happened to in front. */
static int wrap(struct copy_ctx *c, int r)
{
	return r < 0 && c->err ? err_wrap(c->err, "'%s'", shown(c)) : r;
}

/* Owner, xattrs, mode, times of a regular file or directory
 * (copy_file_meta says why in that order). */
static int copy_meta_fd(struct copy_ctx *c, int src_fd, int dst_fd, const struct stat *st)
{
	return wrap(c, copy_file_meta(src_fd, dst_fd, st, NULL, c->err));
}

/* The same for entries that can not be opened (symlinks, devices,
 * fifos), by name below their directories, never followed. */
static int copy_meta_at(struct copy_ctx *c, int src_dir, int dst_dir, const char *name, const struct stat *st)
{
	if (fchownat(dst_dir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, errno, "set owner");
	int r = wrap(c, copy_xattrs_at(src_dir, name, dst_dir, name, NULL, c->err));
	if (r < 0)
		return r;
	/* Symlinks have no mode of their own on Linux. */
	if (!S_ISLNK(st->st_mode) && fchmodat(dst_dir, name, st->st_mode & 07777, 0) < 0)
		return fail(c, errno, "set mode");
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	if (utimensat(dst_dir, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, errno, "set times");
	return 0;
}

static int copy_dir(struct copy_ctx *c, int src_fd, int dst_fd);

static int copy_regular(struct copy_ctx *c, int src_dir, int dst_dir, const char *name, const struct stat *st)
{
	cleanup_close int s = openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NOATIME | O_CLOEXEC);
	if (s < 0 && errno == EPERM)	/* O_NOATIME needs ownership or CAP_FOWNER */
		s = openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (s < 0)
		return fail(c, errno, "open");
	struct stat now;
	if (fstat(s, &now) < 0)
		return fail(c, errno, "stat");
	if (now.st_ino != st->st_ino || now.st_dev != st->st_dev || !S_ISREG(now.st_mode))
		return err_plain(c->err, EAGAIN, "'%s' changed while it was being copied", shown(c));
	cleanup_close int d = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (d < 0)
		return fail(c, errno, "create");
	return wrap(c, copy_file(s, d, &now, false, NULL, c->err));
}

static int copy_symlink(struct copy_ctx *c, int src_dir, int dst_dir, const char *name, const struct stat *st)
{
	size_t size = st->st_size > 0 ? (size_t)st->st_size + 1 : PATH_MAX;
	for (int tries = 0; tries < 4; tries++, size *= 2) {
		cleanup_free char *target = malloc(size);
		if (!target)
			return -ENOMEM;
		ssize_t n = readlinkat(src_dir, name, target, size);
		if (n < 0)
			return fail(c, errno, "read symlink");
		if ((size_t)n >= size)
			continue;	/* grew since the stat */
		target[n] = '\0';
		if (symlinkat(target, dst_dir, name) < 0)
			return fail(c, errno, "create symlink");
		return copy_meta_at(c, src_dir, dst_dir, name, st);
	}
	return fail(c, ENAMETOOLONG, "read symlink");
}

static int copy_special(struct copy_ctx *c, int src_dir, int dst_dir, const char *name, const struct stat *st)
{
	if (mknodat(dst_dir, name, (st->st_mode & S_IFMT) | 0600, st->st_rdev) < 0)
		return fail(c, errno, "create node");
	return copy_meta_at(c, src_dir, dst_dir, name, st);
}

static int copy_subdir(struct copy_ctx *c, int src_dir, int dst_dir, const char *name, const struct stat *st)
{
	if (st->st_dev == c->skip_dev && st->st_ino == c->skip_ino)
		return err_plain(c->err, ELOOP,
				 "'%s' is where the template is being built: the source contains the state root",
				 shown(c));
	cleanup_close int s = openat(src_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s < 0)
		return fail(c, errno, "open directory");
	struct stat now;
	if (fstat(s, &now) < 0)
		return fail(c, errno, "stat");
	if (now.st_ino != st->st_ino || now.st_dev != st->st_dev)
		return err_plain(c->err, EAGAIN, "'%s' changed while it was being copied", shown(c));
	if (mkdirat(dst_dir, name, 0700) < 0)
		return fail(c, errno, "create directory");
	cleanup_close int d = openat(dst_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d < 0)
		return fail(c, errno, "open new directory");
	int r = copy_dir(c, s, d);
	if (r < 0)
		return r;
	/* Last, so that adding the entries does not change the copied times
	 * and a read-only mode does not get in the way. */
	return copy_meta_fd(c, s, d, &now);
}

/* A further name of an inode already copied becomes a hard link to the
 * copy; the first name is remembered. */
static int copy_nondir(struct copy_ctx *c, int src_dir, int dst_dir, const char *name, const struct stat *st)
{
	struct link_seen key = { .dev = st->st_dev, .ino = st->st_ino };
	if (st->st_nlink > 1) {
		void *found = tfind(&key, &c->links, link_cmp);
		if (found) {
			const struct link_seen *first = *(struct link_seen **)found;
			if (linkat(c->dst_root_fd, first->path, dst_dir, name, 0) < 0)
				return err_set(c->err, errno, "'%s': hard link to '%s'", shown(c), first->path);
			return 0;
		}
	}
	int r;
	switch (st->st_mode & S_IFMT) {
	case S_IFREG:
		r = copy_regular(c, src_dir, dst_dir, name, st);
		break;
	case S_IFLNK:
		r = copy_symlink(c, src_dir, dst_dir, name, st);
		break;
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		r = copy_special(c, src_dir, dst_dir, name, st);
		break;
	default:
		return err_plain(c->err, EINVAL, "'%s': unknown file type %o", shown(c), st->st_mode & S_IFMT);
	}
	if (r < 0 || st->st_nlink <= 1)
		return r;
	size_t len = strlen(c->path) + 1;
	struct link_seen *ls = malloc(sizeof(*ls) + len);
	if (!ls)
		return -ENOMEM;
	*ls = key;
	memcpy(ls->path, c->path, len);
	if (!tsearch(ls, &c->links, link_cmp)) {
		free(ls);
		return -ENOMEM;
	}
	return 0;
}

static int copy_dir(struct copy_ctx *c, int src_fd, int dst_fd)
{
	cleanup_dir DIR *d = dir_stream_at(src_fd);
	if (!d)
		return fail(c, errno, "read directory");
	size_t base = strlen(c->path);
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno)
				return fail(c, errno, "read directory");
			break;
		}
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		int n = snprintf(c->path + base, sizeof(c->path) - base, "%s%s", base ? "/" : "", name);
		if (n < 0 || (size_t)n >= sizeof(c->path) - base) {
			c->path[base] = '\0';
			return err_plain(c->err, ENAMETOOLONG, "a path below '%s' is too long", shown(c));
		}
		struct stat st;
		int r;
		if (fstatat(src_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			r = fail(c, errno, "stat");
		else if (S_ISDIR(st.st_mode))
			r = copy_subdir(c, src_fd, dst_fd, name, &st);
		else
			r = copy_nondir(c, src_fd, dst_fd, name, &st);
		c->path[base] = '\0';
		if (r < 0)
			return r;
	}
	return 0;
}

int tmpl_copy_tree(int src_fd, int dst_parent_fd, const char *dst_name, dev_t skip_dev, ino_t skip_ino,
		   struct corral_error *err)
{
	struct copy_ctx c = { .skip_dev = skip_dev, .skip_ino = skip_ino, .err = err };
	struct stat st;
	if (fstat(src_fd, &st) < 0)
		return err_set(err, errno, "stat the source");
	if (!S_ISDIR(st.st_mode))
		return err_plain(err, ENOTDIR, "the source is not a directory");
	if (mkdirat(dst_parent_fd, dst_name, 0700) < 0)
		return err_set(err, errno, "create %s", dst_name);
	cleanup_close int dst = openat(dst_parent_fd, dst_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dst < 0)
		return err_set(err, errno, "open %s", dst_name);
	c.dst_root_fd = dst;
	int r = copy_dir(&c, src_fd, dst);
	if (r == 0)
		r = copy_meta_fd(&c, src_fd, dst, &st);
	tdestroy(c.links, free);
	return r;
}
