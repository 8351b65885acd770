#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "container-config.h"
#include "fileio.h"
#include "userns-range.h"

/* A range someone holds, and who, for the error message. */
struct taken {
	uint64_t base, size;
	char who[PATH_MAX + 400];
};

struct taken_list {
	struct taken *v;
	size_t n, cap;
};

static int taken_add(struct taken_list *l, uint64_t base, uint64_t size, const char *who)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct taken *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	struct taken *t = &l->v[l->n++];
	t->base = base;
	t->size = size;
	snprintf(t->who, sizeof(t->who), "%s", who);
	return 0;
}

static const struct taken *overlap(const struct taken_list *l, uint64_t base, uint64_t size)
{
	for (size_t i = 0; i < l->n; i++)
		if (base < l->v[i].base + l->v[i].size && l->v[i].base < base + size)
			return &l->v[i];
	return NULL;
}

/* Ranges /etc/subuid and /etc/subgid delegate to users ("user:start:count"). */
static void add_subid_ranges(struct taken_list *l, const char *file)
{
	FILE *f = fopen(file, "re");
	char line[512];
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char user[256];
		unsigned long long start, count;
		char who[300];
		if (sscanf(line, "%255[^:]:%llu:%llu", user, &start, &count) == 3 && count) {
			snprintf(who, sizeof(who), "the range %s delegates to %s", file, user);
			taken_add(l, start, count, who);
		}
	}
	fclose(f);
}

/* Lease content: "<root>\n<name>\n". */
static bool lease_read(int dirfd, const char *file, char *root, size_t rootlen, char *name, size_t namelen)
{
	cleanup_close int fd = openat(dirfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	char buf[PATH_MAX + 80];
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size >= (off_t)sizeof(buf))
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	char *nl = strchr(buf, '\n');
	if (!nl || buf[n - 1] != '\n' || nl == buf + n - 1)
		return false;
	*nl = '\0';
	buf[n - 1] = '\0';
	size_t rl = strlen(buf), nlen = strlen(nl + 1);
	if (rl >= rootlen || nlen >= namelen)
		return false;
	memcpy(root, buf, rl + 1);
	memcpy(name, nl + 1, nlen + 1);
	return true;
}

static bool container_exists(const char *root, const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	if (snprintf(path, sizeof(path), "%s/containers/%s", root, name) >= (int)sizeof(path))
		return true; /* cannot tell: keep it */
	return lstat(path, &st) == 0 || errno != ENOENT;
}

static bool parse_lease_name(const char *file, uint64_t *base, uint64_t *size)
{
	unsigned long long b, s;
	char tail;
	if (sscanf(file, "%llu-%llu%c", &b, &s, &tail) != 2 || !s)
		return false;
	*base = b;
	*size = s;
	return true;
}

/* Every live lease but those of (root, name); stale ones are removed.
 * *ret_own gets whether (root, name) holds a lease on base:size. */
static int add_leases(int dirfd, struct taken_list *l, const char *root, const char *name, uint64_t base,
		      uint64_t size, bool *ret_own, struct corral_error *err)
{
	cleanup_dir DIR *d = dir_stream_at(dirfd);
	if (!d)
		return err_set(err, errno, "read %s", USERNS_LEASE_DIR);
	*ret_own = false;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de)
			break;
		uint64_t b, s;
		char lroot[PATH_MAX], lname[80];
		if (!parse_lease_name(de->d_name, &b, &s) ||
		    !lease_read(dirfd, de->d_name, lroot, sizeof(lroot), lname, sizeof(lname)))
			continue;
		if (!strcmp(lroot, root) && !strcmp(lname, name)) {
			*ret_own |= b == base && s == size;
			continue;
		}
		if (!container_exists(lroot, lname)) {
			unlinkat(dirfd, de->d_name, 0); /* removed without corral rm */
			continue;
		}
		char who[sizeof(lroot) + 120];
		snprintf(who, sizeof(who), "container %s (state root %s)", lname, lroot);
		if (taken_add(l, b, s, who) < 0)
			return err_set(err, ENOMEM, "list user namespace ranges");
	}
	if (errno)
		return err_set(err, errno, "read %s", USERNS_LEASE_DIR);
	return 0;
}

/* Ranges of the other containers of this state root, from their configs:
 * the registry in /run does not survive a reboot, configs do. */
static void add_root_configs(struct taken_list *l, const char *root, const char *name)
{
	char dir[PATH_MAX + 16];
	snprintf(dir, sizeof(dir), "%s/containers", root);
	cleanup_dir DIR *d = opendir(dir);
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[PATH_MAX + 300], who[PATH_MAX + 400];
		struct container_config c;
		if (de->d_name[0] == '.' || !strcmp(de->d_name, name))
			continue;
		snprintf(path, sizeof(path), "%s/%s/config", dir, de->d_name);
		if (config_load(path, &c, NULL) < 0)
			continue;
		snprintf(who, sizeof(who), "container %s (state root %s)", de->d_name, root);
		if (c.userns)
			taken_add(l, c.userns_base, c.userns_size, who);
		config_release(&c);
	}
}

static int lease_dir_lock(int *ret_dirfd, struct corral_error *err)
{
	int r = mkdir_p(USERNS_LEASE_DIR, 0700, err);
	if (r < 0)
		return r;
	int dirfd = open(USERNS_LEASE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return err_set(err, errno, "open %s", USERNS_LEASE_DIR);
	int lock = openat(dirfd, ".lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lock < 0) {
		int e = errno;
		close(dirfd);
		return err_set(err, e, "open %s/.lock", USERNS_LEASE_DIR);
	}
	while (flock(lock, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int e = errno;
			close(lock);
			close(dirfd);
			return err_set(err, e, "lock %s/.lock", USERNS_LEASE_DIR);
		}
	}
	*ret_dirfd = dirfd;
	return lock; /* closing it unlocks */
}

static int lease_write(int dirfd, const char *root, const char *name, uint64_t base, uint64_t size,
		       struct corral_error *err)
{
	char file[64], path[PATH_MAX], text[PATH_MAX + 80];
	snprintf(file, sizeof(file), "%llu-%llu", (unsigned long long)base, (unsigned long long)size);
	snprintf(path, sizeof(path), "%s/%s", USERNS_LEASE_DIR, file);
	int n = snprintf(text, sizeof(text), "%s\n%s\n", root, name);
	if (n < 0 || n >= (int)sizeof(text))
		return err_plain(err, ENAMETOOLONG, "state root %s: path too long", root);
	(void)dirfd;
	return file_write_atomic(path, text, (size_t)n, 0600, err);
}

/* The state root as leases name it: absolute and resolved, so that every
 * spelling of one root is the same owner. */
static const char *canonical_root(const char *root, char buf[PATH_MAX])
{
	return realpath(root, buf) ? buf : root;
}

int userns_range_claim(const char *root_arg, const char *name, bool allocate, uint32_t *base, uint32_t *size,
		       const char *advice, struct corral_error *err)
{
	char rootbuf[PATH_MAX];
	const char *root = canonical_root(root_arg, rootbuf);
	cleanup_close int dirfd = -1;
	cleanup_close int lock = lease_dir_lock(&dirfd, err);
	if (lock < 0)
		return lock;
	struct taken_list l = { 0 };
	bool own = false;
	uint64_t want_base = *base, want_size = *size;
	int r = add_leases(dirfd, &l, root, name, want_base, want_size, &own, err);
	if (r == 0)
		add_root_configs(&l, root, name);
	if (r == 0 && !allocate) {
		const struct taken *t = overlap(&l, want_base, want_size);
		if (t)
			r = err_plain(err, EADDRINUSE, "user namespace range %llu:%llu overlaps %llu:%llu of %s%s%s",
				      (unsigned long long)want_base, (unsigned long long)want_size,
				      (unsigned long long)t->base, (unsigned long long)t->size, t->who,
				      advice ? ": " : "", advice ? advice : "");
		else if (!own)
			r = lease_write(dirfd, root, name, want_base, want_size, err);
	} else if (r == 0) {
		/* Delegations to users count only when choosing: an explicit
		 * range is the administrator's call. */
		add_subid_ranges(&l, "/etc/subuid");
		add_subid_ranges(&l, "/etc/subgid");
		uint64_t b = USERNS_POOL_START;
		while (b + USERNS_BLOCK <= UINT32_MAX && overlap(&l, b, USERNS_BLOCK))
			b += USERNS_BLOCK;
		if (b + USERNS_BLOCK > UINT32_MAX)
			r = err_plain(err, ENOSPC, "no free user namespace range of %u ids is left above %u",
				      USERNS_BLOCK, USERNS_POOL_START);
		else
			r = lease_write(dirfd, root, name, b, USERNS_BLOCK, err);
		if (r == 0) {
			*base = (uint32_t)b;
			*size = USERNS_BLOCK;
		}
	}
	free(l.v);
	return r;
}

int userns_range_release(const char *root_arg, const char *name, struct corral_error *err)
{
	char rootbuf[PATH_MAX];
	const char *root = canonical_root(root_arg, rootbuf);
	struct stat st;
	if (stat(USERNS_LEASE_DIR, &st) < 0)
		return 0; /* nothing was ever leased */
	cleanup_close int dirfd = -1;
	cleanup_close int lock = lease_dir_lock(&dirfd, err);
	if (lock < 0)
		return lock;
	cleanup_dir DIR *d = dir_stream_at(dirfd);
	if (!d)
		return err_set(err, errno, "read %s", USERNS_LEASE_DIR);
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t b, s;
		char lroot[PATH_MAX], lname[80];
		if (parse_lease_name(de->d_name, &b, &s) &&
		    lease_read(dirfd, de->d_name, lroot, sizeof(lroot), lname, sizeof(lname)) &&
		    !strcmp(lroot, root) && !strcmp(lname, name) && unlinkat(dirfd, de->d_name, 0) < 0 &&
		    errno != ENOENT)
			return err_set(err, errno, "remove %s/%s", USERNS_LEASE_DIR, de->d_name);
	}
	return 0;
}
