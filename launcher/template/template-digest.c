/* A template's identity (template.h: template_digest): an unseeded
 * XXH3-128 over its rootfs, walked by descriptors in sorted name order and
 * never through a symlink.  Per entry: its relative path, type and mode,
 * owner, size, link count (not of directories), rdev, symlink target,
 * sorted xattrs, and the XXH3-128 of a regular file's content.  Times are
 * left out: one tarball imported on two hosts gives two equal digests.
 * Templates never change after import, so the digest is cached in
 * <root>/templates/NAME/digest (recomputed if that file is unreadable or
 * malformed). */
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
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

#include "cleanup.h"
#include "fileio.h"
#include "template/template.h"

#define DIGEST_FILE "digest"
#define DIGEST_DEPTH_MAX 256
#define DIGEST_PREFIX "xxh3-128 "

static void upd(XXH3_state_t *st, const void *p, size_t n)
{
	XXH3_128bits_update(st, p, n);
}

static void upd64(XXH3_state_t *st, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	upd(st, b, 8);
}

static void upd_str(XXH3_state_t *st, const char *s, size_t n)
{
	upd64(st, n);
	upd(st, s, n);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted xattrs of fd's object (an O_PATH descriptor, not a symlink). */
static int hash_xattrs(XXH3_state_t *st, int fd, const char *rel, struct corral_error *err)
{
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ssize_t n = listxattr(proc, NULL, 0);
	if (n < 0)
		return errno == ENOTSUP ? (upd64(st, 0), 0) : err_set(err, errno, "xattrs of '%s'", rel);
	cleanup_free char *names = malloc((size_t)n + 1);
	if (!names)
		return err_set(err, ENOMEM, "xattrs");
	n = listxattr(proc, names, (size_t)n);
	if (n < 0)
		return err_set(err, errno, "xattrs of '%s'", rel);
	size_t count = 0;
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1)
		count++;
	cleanup_free char **v = calloc(count ? count : 1, sizeof(*v));
	if (!v)
		return err_set(err, ENOMEM, "xattrs");
	count = 0;
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1)
		v[count++] = names + i;
	qsort(v, count, sizeof(*v), cmp_name);
	upd64(st, count);
	cleanup_free char *val = malloc(65536);
	if (!val)
		return err_set(err, ENOMEM, "xattrs");
	for (size_t i = 0; i < count; i++) {
		ssize_t l = getxattr(proc, v[i], val, 65536);
		if (l < 0)
			return err_set(err, errno, "xattr %s of '%s'", v[i], rel);
		upd_str(st, v[i], strlen(v[i]));
		upd_str(st, val, (size_t)l);
	}
	return 0;
}

static int hash_content(XXH3_state_t *st, int dirfd, const char *name, const char *rel, struct corral_error *err)
{
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set(err, errno, "opening '%s'", rel);
	XXH3_state_t *c = XXH3_createState();
	cleanup_free uint8_t *buf = malloc(1 << 20);
	if (!c || !buf) {
		XXH3_freeState(c);
		return err_set(err, ENOMEM, "template digest");
	}
	XXH3_128bits_reset(c);
	for (;;) {
		ssize_t k = read(fd, buf, 1 << 20);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			XXH3_freeState(c);
			return err_set(err, errno, "reading '%s'", rel);
		}
		if (k == 0)
			break;
		XXH3_128bits_update(c, buf, (size_t)k);
	}
	XXH128_canonical_t h;
	XXH128_canonicalFromHash(&h, XXH3_128bits_digest(c));
	XXH3_freeState(c);
	upd(st, h.digest, 16);
	return 0;
}

static int hash_entry(XXH3_state_t *st, int dirfd, const char *name, const char *rel, const struct stat *sb,
		      struct corral_error *err)
{
	upd_str(st, rel, strlen(rel));
	upd64(st, sb->st_mode);
	upd64(st, sb->st_uid);
	upd64(st, sb->st_gid);
	upd64(st, S_ISDIR(sb->st_mode) ? 0 : (uint64_t)sb->st_size);
	upd64(st, S_ISDIR(sb->st_mode) ? 0 : (uint64_t)sb->st_nlink);
	upd64(st, (uint64_t)sb->st_rdev);
	if (S_ISLNK(sb->st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(dirfd, name, target, sizeof(target));
		if (n < 0)
			return err_set(err, errno, "reading the symlink '%s'", rel);
		upd_str(st, target, (size_t)n);
		return 0;
	}
	cleanup_close int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno, "opening '%s'", rel);
	int r = hash_xattrs(st, fd, rel, err);
	if (r == 0 && S_ISREG(sb->st_mode))
		r = hash_content(st, dirfd, name, rel, err);
	return r;
}

/* The entries of directory dirfd (rel its path), sorted, recursively. */
static int hash_dir(XXH3_state_t *st, int dirfd, const char *rel, int depth, struct corral_error *err)
{
	if (depth > DIGEST_DEPTH_MAX)
		return err_plain(err, ELOOP, "template tree deeper than %d at '%s'", DIGEST_DEPTH_MAX, rel);
	cleanup_dir DIR *d = dir_stream_at(dirfd);
	if (!d)
		return err_set(err, errno, "listing '%s'", rel);
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	errno = 0;
	while (r == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof(*nn));
			if (!nn) {
				r = err_set(err, ENOMEM, "template digest");
				break;
			}
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name)))
			r = err_set(err, ENOMEM, "template digest");
		else
			n++;
	}
	if (r == 0 && errno)
		r = err_set(err, errno, "listing '%s'", rel);
	if (r == 0)
		qsort(names, n, sizeof(*names), cmp_name);
	for (size_t i = 0; i < n && r == 0; i++) {
		char sub[PATH_MAX];
		if (snprintf(sub, sizeof(sub), "%s/%s", rel, names[i]) >= (int)sizeof(sub)) {
			r = err_plain(err, ENAMETOOLONG, "template path too long below '%s'", rel);
			break;
		}
		struct stat sb;
		if (fstatat(dirfd, names[i], &sb, AT_SYMLINK_NOFOLLOW) < 0) {
			r = err_set(err, errno, "stat of '%s'", sub);
			break;
		}
		r = hash_entry(st, dirfd, names[i], sub, &sb, err);
		if (r == 0 && S_ISDIR(sb.st_mode)) {
			cleanup_close int sfd = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			r = sfd < 0 ? err_set(err, errno, "opening '%s'", sub) : hash_dir(st, sfd, sub, depth + 1, err);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The cached digest, if the cache file is there and well-formed. */
static bool read_cache(int tdir, uint8_t out[16])
{
	cleanup_close int fd = openat(tdir, DIGEST_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	char buf[128];
	ssize_t n = read(fd, buf, sizeof(buf));
	size_t pl = strlen(DIGEST_PREFIX);
	if (n != (ssize_t)(pl + 33) || memcmp(buf, DIGEST_PREFIX, pl) || buf[pl + 32] != '\n')
		return false;
	for (int i = 0; i < 16; i++) {
		int hi = hexval(buf[pl + 2 * i]), lo = hexval(buf[pl + 2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

int template_digest(const char *root, const char *name, uint8_t out[16], struct corral_error *err)
{
	char rootfs[PATH_MAX];
	int r = template_rootfs(root, name, rootfs, sizeof(rootfs), err);
	if (r < 0)
		return r;
	char tpath[PATH_MAX];
	snprintf(tpath, sizeof(tpath), "%s/templates/%s", root, name);
	cleanup_close int tdir = open(tpath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tdir < 0)
		return err_set(err, errno, "opening %s", tpath);
	if (read_cache(tdir, out))
		return 0;
	cleanup_close int rfd = openat(tdir, "rootfs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rfd < 0)
		return err_set(err, errno, "opening %s", rootfs);
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return err_set(err, ENOMEM, "template digest");
	XXH3_128bits_reset(st);
	struct stat sb;
	r = fstat(rfd, &sb) < 0 ? err_set(err, errno, "stat of %s", rootfs) : 0;
	if (r == 0) {
		/* The root's own metadata (no content, no name). */
		upd_str(st, ".", 1);
		upd64(st, sb.st_mode);
		upd64(st, sb.st_uid);
		upd64(st, sb.st_gid);
		r = hash_dir(st, rfd, ".", 0, err);
	}
	XXH128_canonical_t h;
	XXH128_canonicalFromHash(&h, XXH3_128bits_digest(st));
	XXH3_freeState(st);
	if (r < 0)
		return err_wrap(err, "digest of template '%s'", name);
	memcpy(out, h.digest, 16);
	char line[64];
	size_t pl = strlen(DIGEST_PREFIX);
	memcpy(line, DIGEST_PREFIX, pl);
	for (int i = 0; i < 16; i++)
		snprintf(line + pl + 2 * i, 3, "%02x", out[i]);
	line[pl + 32] = '\n';
	/* A cache: failing to write it costs a recomputation next time. */
	file_commit_at(tdir, DIGEST_FILE, line, pl + 33, 0600, 0, NULL, NULL);
	return 0;
}
