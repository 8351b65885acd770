#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"

static int fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

static bool durable = true;

void fileio_set_durable(bool on)
{
	durable = on;
}

int file_write_atomic(const char *path, const char *data, size_t len, int mode, struct corral_error *err)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return err_plain(err, ENAMETOOLONG, "path too long: %s", path);
	cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return err_set(err, errno, "create %s", tmp);
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0) {
			int e = errno;
			unlink(tmp);
			return err_set(err, e, "write %s", tmp);
		}
		off += n;
	}
	if (durable && fsync(fd) < 0) {
		int e = errno;
		unlink(tmp);
		return err_set(err, e, "fsync %s", tmp);
	}
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return err_set(err, e, "rename %s to %s", tmp, path);
	}
	int r = durable ? fsync_parent(path) : 0;
	if (r < 0)
		return err_set(err, -r, "fsync the directory of %s", path);
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

static int remove_at(int parent_fd, const char *name, dev_t dev)
{
	struct stat st;
	if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(parent_fd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if (st.st_dev != dev)
		return -EXDEV; /* a mount: never descend */
	int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = remove_at(dirfd(d), de->d_name, dev);
	}
	closedir(d);
	if (r < 0)
		return r;
	return unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -errno : 0;
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

void tree_usage(int fd, int64_t *bytes, int64_t *inodes)
{
	DIR *d = fdopendir(fd);
	struct dirent *de;
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		*bytes += (int64_t)st.st_blocks * 512;
		*inodes += 1;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				tree_usage(sub, bytes, inodes);
		}
	}
	closedir(d);
}

int remove_tree_at(int dirfd, const char *name)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	return remove_at(dirfd, name, st.st_dev);
}

int remove_tree(const char *path, struct corral_error *err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : err_set(err, errno, "stat %s", path);
	int r = remove_at(AT_FDCWD, path, st.st_dev);
	if (r == -EXDEV)
		return err_plain(err, EBUSY, "not removing %s: something is still mounted inside it", path);
	if (r < 0)
		return err_set(err, -r, "remove %s", path);
	return 0;
}
