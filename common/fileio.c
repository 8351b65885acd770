#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"

static bool durable = true;

void fileio_set_durable(bool on)
{
	durable = on;
}

static void commit_step(file_commit_hook hook, void *ctx, const char *step)
{
	if (hook)
		hook(ctx, step);
}

int file_commit_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode, unsigned flags,
		   file_commit_hook hook, void *ctx)
{
	char tmp[NAME_MAX + 1];
	if (snprintf(tmp, sizeof(tmp), ".%s.tmp.%d", name, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	/* A temp left by a crashed process of the same pid is ours to drop;
	 * O_EXCL|O_NOFOLLOW then refuses anything swapped in meanwhile. */
	(void)unlinkat(dirfd, tmp, 0);
	cleanup_close int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	bool sync = !(flags & FILE_COMMIT_NO_SYNC);
	int r = 0;
	for (size_t off = 0; off < len && r == 0;) {
		ssize_t n = write(fd, (const char *)data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			r = n < 0 ? -errno : -EIO;
		else
			off += (size_t)n;
	}
	commit_step(hook, ctx, "written");
	if (r == 0 && sync && fsync(fd) < 0)
		r = -errno;
	commit_step(hook, ctx, "synced");
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0) {
		(void)unlinkat(dirfd, tmp, 0);
		return r;
	}
	commit_step(hook, ctx, "renamed");
	return sync && fsync(dirfd) < 0 ? -errno : 0;
}

int file_write_atomic(const char *path, const char *data, size_t len, int mode, struct corral_error *err)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	char dir[PATH_MAX] = ".";
	if (slash && snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path) >= (int)sizeof(dir))
		return err_plain(err, ENAMETOOLONG, "path too long: %s", path);
	cleanup_close int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return err_set(err, errno, "open the directory of %s", path);
	int r = file_commit_at(dirfd, name, data, len, (mode_t)mode, durable ? 0 : FILE_COMMIT_NO_SYNC, NULL, NULL);
	if (r < 0)
		return err_set(err, -r, "write %s", path);
	return 0;
}

int fd_read_all(int fd, const char *what, char **ret, size_t *ret_len, struct corral_error *err)
{
	size_t cap = 4096, len = 0;
	cleanup_free char *buf = malloc(cap + 1);
	if (!buf)
		return err_set(err, ENOMEM, "read %s", what);
	for (;;) {
		if (len == cap) {
			if (cap >= (1 << 24))
				return err_plain(err, EFBIG, "%s is larger than 16 MiB", what);
			char *b = realloc(buf, cap * 2 + 1);
			if (!b)
				return err_set(err, ENOMEM, "read %s", what);
			buf = b;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(err, errno, "read %s", what);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	*ret = take_ptr(buf);
	return 0;
}

int file_read_all(const char *path, char **ret, size_t *ret_len, struct corral_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set(err, errno, "open %s", path);
	return fd_read_all(fd, path, ret, ret_len, err);
}

DIR *dir_stream_at(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return d;
}

int mkdir_p(const char *path, int mode, struct corral_error *err)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return err_plain(err, ENAMETOOLONG, "path too long: %s", path);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return err_set(err, errno, "mkdir %s", buf);
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

bool path_is_mountpoint(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	bool found = false;
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX];
		/* id parent major:minor root mountpoint ... (octal escapes) */
		if (sscanf(line, "%*d %*d %*s %*s %4095s", mnt) != 1)
			continue;
		char unescaped[PATH_MAX], *w = unescaped;
		for (const char *p = mnt; *p && w < unescaped + sizeof(unescaped) - 1; p++) {
			if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] && p[3]) {
				*w++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
				p += 3;
			} else {
				*w++ = *p;
			}
		}
		*w = '\0';
		found = strcmp(unescaped, path) == 0;
	}
	fclose(f);
	return found;
}

/* ---- tree removal ----
 *
 * rm -rf for trees the container may have shaped: any depth, with a
 * bounded number of descriptors (at most three open at once, however deep
 * the tree), never following a symlink, never crossing into another mount.
 * The walk is iterative: it goes down into the first subdirectory it
 * meets, and climbs back up through ".." once a directory is empty.  Every
 * step is checked against the identity recorded on the way down, so a
 * directory renamed under the walk stops it (-ESTALE) instead of sending it
 * somewhere else. */

/* A directory on the path from the top of the walk to where it is. */
struct walk_level {
	dev_t dev;
	ino_t ino;
	char *name; /* in its parent; NULL for the top */
};

static int stat_at(int dirfd, const char *name, struct statx *ret)
{
	int flags = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | (name[0] ? 0 : AT_EMPTY_PATH);
	if (statx(dirfd, name, flags, STATX_TYPE | STATX_INO | STATX_MNT_ID, ret) < 0)
		return -errno;
	if (!(ret->stx_mask & STATX_MNT_ID))
		return -ENOSYS; /* kernels before 5.8: cannot tell mounts apart safely */
	return 0;
}

static bool is_level(const struct statx *sx, const struct walk_level *l)
{
	return makedev(sx->stx_dev_major, sx->stx_dev_minor) == l->dev && sx->stx_ino == l->ino;
}

/* Unlinks every non-directory in `fd` until it meets a subdirectory, which
 * it opens: 1 with *ret_fd and *ret set; 0 once `fd` is empty. */
static int clear_until_subdir(int fd, uint64_t mnt_id, int *ret_fd, struct walk_level *ret)
{
	/* A new open file description, so listing starts at the beginning
	 * each time the walk comes back to this directory. */
	cleanup_dir DIR *d = dir_stream_at(fd);
	if (!d)
		return -errno;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de)
			return errno ? -errno : 0;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct statx sx;
		int r = stat_at(fd, de->d_name, &sx);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		if (sx.stx_mnt_id != mnt_id)
			return -EXDEV; /* a mount point: never descend, never unlink */
		if (!S_ISDIR(sx.stx_mode)) {
			if (unlinkat(fd, de->d_name, 0) < 0 && errno != ENOENT)
				return -errno;
			continue;
		}
		int sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		struct walk_level l = { makedev(sx.stx_dev_major, sx.stx_dev_minor), sx.stx_ino, NULL };
		struct statx got;
		r = stat_at(sub, "", &got);
		if (r == 0 && (!is_level(&got, &l) || got.stx_mnt_id != mnt_id))
			r = -ESTALE; /* replaced between the stat and the open */
		if (r == 0 && !(l.name = strdup(de->d_name)))
			r = -ENOMEM;
		if (r < 0) {
			close(sub);
			return r;
		}
		*ret = l;
		*ret_fd = sub;
		return 1;
	}
}

/* From directory `cur` (level `child`) back up to its parent (level
 * `parent`); removes the now empty child.  Consumes cur. */
static int climb_and_rmdir(int cur, const struct walk_level *parent, const struct walk_level *child,
			   int *ret_fd)
{
	int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int e = errno;
	close(cur);
	if (up < 0)
		return -e;
	struct statx sx;
	int r = stat_at(up, "", &sx);
	if (r == 0 && !is_level(&sx, parent))
		r = -ESTALE; /* moved elsewhere under us */
	if (r == 0) {
		r = stat_at(up, child->name, &sx);
		if (r == 0 && !is_level(&sx, child))
			r = -ESTALE;
		if (r == 0 && unlinkat(up, child->name, AT_REMOVEDIR) < 0)
			r = -errno;
		if (r == -ENOENT)
			r = 0;
	}
	if (r < 0) {
		close(up);
		return r;
	}
	*ret_fd = up;
	return 0;
}

int remove_tree_at(int dirfd, const char *name)
{
	struct statx top;
	int r = stat_at(dirfd, name, &top);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (top.stx_attributes & top.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
		return -EXDEV;
	if (!S_ISDIR(top.stx_mode))
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	int cur = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cur < 0)
		return errno == ENOENT ? 0 : -errno;
	struct walk_level *stack = malloc(16 * sizeof(*stack));
	size_t depth = 0, cap = 16;
	struct statx sx;
	r = stack ? stat_at(cur, "", &sx) : -ENOMEM;
	if (r == 0) {
		stack[0] = (struct walk_level){ makedev(top.stx_dev_major, top.stx_dev_minor), top.stx_ino, NULL };
		if (!is_level(&sx, &stack[0]))
			r = -ESTALE;
	}
	while (r == 0) {
		if (depth + 1 == cap) {
			struct walk_level *bigger = realloc(stack, 2 * cap * sizeof(*stack));
			if (!bigger) {
				r = -ENOMEM;
				break;
			}
			stack = bigger;
			cap *= 2;
		}
		int sub = -1;
		r = clear_until_subdir(cur, top.stx_mnt_id, &sub, &stack[depth + 1]);
		if (r == 1) {
			close(cur);
			cur = sub;
			depth++;
			r = 0;
			continue;
		}
		if (r < 0 || depth == 0)
			break;
		r = climb_and_rmdir(cur, &stack[depth - 1], &stack[depth], &cur);
		if (r < 0)
			cur = -1;
		free(stack[depth].name);
		depth--;
	}
	if (cur >= 0)
		close(cur);
	for (size_t i = 1; stack && i <= depth; i++)
		free(stack[i].name);
	free(stack);
	if (r < 0)
		return r;
	return unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -errno : 0;
}

/* Inodes with several names met by tree_usage (open addressing; a zero
 * inode number marks a free slot). */
struct ino_set {
	struct ino_key {
		dev_t dev;
		ino_t ino;
	} *slots;
	size_t cap, count;
};

/* true if (dev, ino) was not in the set yet (or the set cannot grow: then
 * the blocks are counted again, too much rather than too little). */
static bool ino_set_add(struct ino_set *set, dev_t dev, ino_t ino)
{
	if ((set->count + 1) * 2 > set->cap) {
		struct ino_set bigger = { .cap = set->cap ? set->cap * 2 : 256 };
		bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
		if (!bigger.slots)
			return true;
		for (size_t i = 0; i < set->cap; i++)
			if (set->slots[i].ino)
				ino_set_add(&bigger, set->slots[i].dev, set->slots[i].ino);
		free(set->slots);
		*set = bigger;
	}
	size_t i = (((uint64_t)ino ^ (uint64_t)dev << 40) * 0x9e3779b97f4a7c15ULL) & (set->cap - 1);
	for (; set->slots[i].ino; i = (i + 1) & (set->cap - 1))
		if (set->slots[i].ino == ino && set->slots[i].dev == dev)
			return false;
	set->slots[i] = (struct ino_key){ dev, ino };
	set->count++;
	return true;
}

/* The same descent for counting: the walk goes down into each
 * subdirectory as it meets it and, back up through "..", resumes the
 * parent's listing where it left it (its telldir position).  Every entry
 * counts as an inode; the blocks of a file with several names count once. */
struct usage_level {
	struct walk_level id;
	long pos; /* where to resume listing this directory */
};

void tree_usage(int fd, int64_t *bytes, int64_t *inodes)
{
	struct statx sx;
	size_t depth = 0, cap = 16;
	struct usage_level *stack = malloc(cap * sizeof(*stack));
	if (!stack || stat_at(fd, "", &sx) < 0) {
		free(stack);
		close(fd);
		return;
	}
	stack[0] = (struct usage_level){ { makedev(sx.stx_dev_major, sx.stx_dev_minor), sx.stx_ino, NULL }, 0 };
	struct ino_set linked = { 0 };
	int cur = fd;
	for (;;) {
		DIR *d = dir_stream_at(cur);
		if (!d)
			break;
		if (stack[depth].pos)
			seekdir(d, stack[depth].pos);
		int sub = -1;
		struct dirent *de;
		while (sub < 0 && (de = readdir(d))) {
			struct stat st;
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (fstatat(cur, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (S_ISDIR(st.st_mode) || st.st_nlink < 2 || st.st_blocks == 0 ||
			    ino_set_add(&linked, st.st_dev, st.st_ino))
				*bytes += (int64_t)st.st_blocks * 512;
			*inodes += 1;
			if (!S_ISDIR(st.st_mode) || depth + 1 == cap)
				continue;
			sub = openat(cur, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			struct walk_level l = { st.st_dev, st.st_ino, NULL };
			if (sub >= 0 && (stat_at(sub, "", &sx) < 0 || !is_level(&sx, &l))) {
				close(sub);
				sub = -1;
				continue;
			}
			if (sub >= 0) {
				stack[depth].pos = telldir(d);
				stack[depth + 1] = (struct usage_level){ l, 0 };
			}
		}
		closedir(d);
		if (sub >= 0) {
			close(cur);
			cur = sub;
			depth++;
			if (depth + 1 == cap) {
				struct usage_level *bigger = realloc(stack, 2 * cap * sizeof(*stack));
				if (bigger) {
					stack = bigger;
					cap *= 2;
				}
			}
			continue;
		}
		if (depth == 0)
			break;
		int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(cur);
		cur = up;
		if (up < 0 || stat_at(up, "", &sx) < 0 || !is_level(&sx, &stack[depth - 1].id))
			break; /* moved under us: what was counted stands */
		depth--;
	}
	if (cur >= 0)
		close(cur);
	free(linked.slots);
	free(stack);
}

int remove_tree(const char *path, struct corral_error *err)
{
	int r = remove_tree_at(AT_FDCWD, path);
	if (r == -EXDEV)
		return err_plain(err, EBUSY, "not removing %s: something is still mounted inside it", path);
	if (r < 0)
		return err_set(err, -r, "remove %s", path);
	return 0;
}
