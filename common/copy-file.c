/* Copying one file through descriptors: data with its holes, xattrs,
 * owner, mode and times (copy-file.h states the policy). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cleanup.h"
#include "copy-file.h"

/* ---- data ------------------------------------------------------------------ */

static int copy_range_plain(int src, int dst, off_t start, off_t end)
{
	static const size_t bufsz = 1 << 17;
	cleanup_free char *buf = malloc(bufsz);
	if (!buf)
		return -ENOMEM;
	off_t off = start;
	while (off < end) {
		size_t want = bufsz;
		if ((off_t)want > end - off)
			want = end - off;
		ssize_t n = pread(src, buf, want, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;	/* the file shrank under us */
		for (ssize_t done = 0; done < n;) {
			ssize_t w = pwrite(dst, buf + done, n - done, off + done);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			done += w;
		}
		off += n;
	}
	return 0;
}

/* Copies [start, end) with copy_file_range where the kernel can, else by
 * hand.  *plain is set once copy_file_range is found not to work here
 * (other filesystems on old kernels, filesystems without it). */
static int copy_range(int src, int dst, off_t start, off_t end, bool *plain)
{
#ifdef HAVE_COPY_FILE_RANGE
	off_t in = start, out = start;
	while (!*plain && in < end) {
		ssize_t n = copy_file_range(src, &in, dst, &out, end - in, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP &&
			    errno != EBADF)
				return -errno;
			*plain = true;
			break;
		}
		if (n == 0)
			return 0;	/* the file shrank under us */
	}
	if (in >= end)
		return 0;
	start = in;
#else
	*plain = true;
#endif
	return copy_range_plain(src, dst, start, end);
}

int copy_file_data(int src, int dst, off_t size)
{
	if (size > 0 && ioctl(dst, FICLONE, src) < 0) {
		bool plain = false;
		off_t off = 0;
		while (off < size) {
			off_t data = lseek(src, off, SEEK_DATA);
			if (data < 0 && errno == ENXIO)
				break;	/* only a hole is left */
			if (data < 0) {
				/* No hole support here: copy the rest in full. */
				int r = copy_range(src, dst, off, size, &plain);
				if (r < 0)
					return r;
				break;
			}
			if (data >= size)
				break;
			off_t hole = lseek(src, data, SEEK_HOLE);
			if (hole < 0)
				return -errno;
			if (hole > size)
				hole = size;
			int r = copy_range(src, dst, data, hole, &plain);
			if (r < 0)
				return r;
			off = hole;
		}
	}
	/* A trailing hole, and a source that grew or shrank meanwhile. */
	if (ftruncate(dst, size) < 0)
		return -errno;
	return 0;
}

/* ---- extended attributes ----------------------------------------------------- */

/* One side of an xattr copy: an open descriptor (f*xattr), or a path
 * below /proc/self/fd for an O_PATH descriptor (the magic link reaches
 * the object itself) or for dir/name (l*xattr: never followed). */
struct xattr_end {
	int fd;			/* -1 when path is used */
	bool nofollow;
	char path[64 + NAME_MAX];
};

static int end_fd(struct xattr_end *e, int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	e->nofollow = false;
	if (!(fl & O_PATH)) {
		e->fd = fd;
		return 0;
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode))
		return -ELOOP;	/* the magic link would be followed: use copy_xattrs_at */
	e->fd = -1;
	snprintf(e->path, sizeof(e->path), "/proc/self/fd/%d", fd);
	return 0;
}

static int end_at(struct xattr_end *e, int dir, const char *name)
{
	e->fd = -1;
	e->nofollow = true;
	int n = snprintf(e->path, sizeof(e->path), "/proc/self/fd/%d/%s", dir, name);
	return n < 0 || (size_t)n >= sizeof(e->path) ? -ENAMETOOLONG : 0;
}

static ssize_t x_list(const struct xattr_end *e, char *buf, size_t len)
{
	if (e->fd >= 0)
		return flistxattr(e->fd, buf, len);
	return e->nofollow ? llistxattr(e->path, buf, len) : listxattr(e->path, buf, len);
}

static ssize_t x_get(const struct xattr_end *e, const char *name, void *buf, size_t len)
{
	if (e->fd >= 0)
		return fgetxattr(e->fd, name, buf, len);
	return e->nofollow ? lgetxattr(e->path, name, buf, len) : getxattr(e->path, name, buf, len);
}

static int x_set(const struct xattr_end *e, const char *name, const void *val, size_t len)
{
	if (e->fd >= 0)
		return fsetxattr(e->fd, name, val, len, 0);
	return e->nofollow ? lsetxattr(e->path, name, val, len, 0) : setxattr(e->path, name, val, len, 0);
}

#define XATTR_TRIES 8

/* The name list (name NULL) or the value of `name` into *ret (caller
 * frees); its length.  Asked again while it grows under us (ERANGE). */
static ssize_t read_sized(const struct xattr_end *e, const char *name, char **ret)
{
	for (int tries = 0; tries < XATTR_TRIES; tries++) {
		ssize_t n = name ? x_get(e, name, NULL, 0) : x_list(e, NULL, 0);
		if (n < 0)
			return -errno;
		char *buf = malloc(n ? n : 1);
		if (!buf)
			return -ENOMEM;
		ssize_t m = name ? x_get(e, name, buf, n) : x_list(e, buf, n);
		if (m >= 0) {
			*ret = buf;
			return m;
		}
		free(buf);
		if (errno != ERANGE)
			return -errno;
	}
	return -ERANGE;
}

static bool set_refusal_ok(const char *name, int e)
{
	bool label = !strncmp(name, "security.", 9) || !strncmp(name, "trusted.", 8);
	return label && (e == EPERM || e == EACCES || e == ENOTSUP || e == EINVAL);
}

static int copy_xattrs_ends(const struct xattr_end *src, const struct xattr_end *dst, copy_xattr_filter_fn filter,
			    struct corral_error *err)
{
	cleanup_free char *names = NULL;
	ssize_t n = read_sized(src, NULL, &names);
	if (n == -ENOTSUP)
		n = 0;	/* a filesystem without xattrs */
	if (n < 0)
		return err_set(err, -n, "list extended attributes");
	for (ssize_t i = 0; i < n; i += strlen(names + i) + 1) {
		const char *name = names + i;
		if (filter && !filter(name))
			continue;
		cleanup_free char *val = NULL;
		ssize_t len = read_sized(src, name, &val);
		if (len == -ENODATA)
			continue;	/* removed while we looked */
		if (len < 0)
			return err_set(err, -len, "read extended attribute %s", name);
		if (x_set(dst, name, val, len) < 0 && !set_refusal_ok(name, errno))
			return err_set(err, errno, "set extended attribute %s", name);
	}
	return 0;
}

int copy_xattrs(int src, int dst, copy_xattr_filter_fn filter, struct corral_error *err)
{
	struct xattr_end s, d;
	int r = end_fd(&s, src);
	if (r == 0)
		r = end_fd(&d, dst);
	if (r < 0)
		return err_set(err, -r, "copy extended attributes");
	return copy_xattrs_ends(&s, &d, filter, err);
}

int copy_xattrs_at(int src_dir, const char *src_name, int dst_dir, const char *dst_name,
		   copy_xattr_filter_fn filter, struct corral_error *err)
{
	struct xattr_end s, d;
	int r = end_at(&s, src_dir, src_name);
	if (r == 0)
		r = end_at(&d, dst_dir, dst_name);
	if (r < 0)
		return err_set(err, -r, "copy extended attributes");
	return copy_xattrs_ends(&s, &d, filter, err);
}

/* ---- the whole file ---------------------------------------------------------- */

int copy_file_meta(int src, int dst, const struct stat *st, copy_xattr_filter_fn filter,
		   struct corral_error *err)
{
	if (fchown(dst, st->st_uid, st->st_gid) < 0)
		return err_set(err, errno, "set owner");
	int r = copy_xattrs(src, dst, filter, err);
	if (r < 0)
		return r;
	if (fchmod(dst, st->st_mode & 07777) < 0)
		return err_set(err, errno, "set mode");
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	if (futimens(dst, ts) < 0)
		return err_set(err, errno, "set times");
	return 0;
}

int copy_file(int src, int dst, const struct stat *st, bool no_data, copy_xattr_filter_fn filter,
	      struct corral_error *err)
{
	if (!no_data) {
		int r = copy_file_data(src, dst, st->st_size);
		if (r < 0)
			return err_set(err, -r, "copy data");
	}
	return copy_file_meta(src, dst, st, filter, err);
}
