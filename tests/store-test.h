/* Helpers shared by the store's test programs: temp stores, deterministic
 * content, files, and a report collector for fsck. */
#ifndef CORRAL_STORE_TEST_H
#define CORRAL_STORE_TEST_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "store/store.h"
#include "store/store-internal.h"
#include "tap.h"

static char st_tmp[256];

static inline void st_cleanup(void)
{
	if (st_tmp[0])
		remove_tree(st_tmp, NULL);
}

/* A fresh temp directory for the program, removed at exit. */
static inline const char *st_tmpdir(void)
{
	snprintf(st_tmp, sizeof(st_tmp), "/tmp/corral-store-test.XXXXXX");
	if (!mkdtemp(st_tmp)) {
		tap_bail("mkdtemp: %s", strerror(errno));
		exit(1);
	}
	atexit(st_cleanup);
	return st_tmp;
}

/* Deterministic bytes: block `id` of a pool, `len` long (xorshift). */
static inline void st_fill(uint8_t *p, size_t len, uint64_t id)
{
	uint64_t x = id * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = x;
	}
}

/* Writes a file of `nblocks` pool blocks (ids[]) plus a tail of tail_len
 * bytes of block `tail_id`; returns its length. */
static inline size_t st_make_file(const char *path, const uint64_t *ids, size_t nblocks, uint64_t tail_id,
				  size_t tail_len)
{
	uint8_t *buf = malloc(STORE_BLOCK_SIZE);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t total = 0;
	for (size_t i = 0; i <= nblocks; i++) {
		size_t len = i < nblocks ? STORE_BLOCK_SIZE : tail_len;
		st_fill(buf, len, i < nblocks ? ids[i] : tail_id);
		if (len && write(fd, buf, len) != (ssize_t)len)
			tap_bail("write %s: %s", path, strerror(errno));
		total += len;
	}
	close(fd);
	free(buf);
	return total;
}

/* Whether the file at `path` has exactly the content of a stored recipe. */
static inline bool st_same(struct store *s, const struct store_key *recipe, const char *path)
{
	char out[512];
	snprintf(out, sizeof(out), "%s.out", path);
	int fd = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	struct corral_error err = { 0 };
	int r = store_read_to_fd(s, recipe, fd, &err);
	close(fd);
	if (r < 0) {
		diag("read back %s: %s", path, err.msg);
		unlink(out);
		return false;
	}
	char *a = NULL, *b = NULL;
	size_t la, lb;
	bool same = file_read_all(path, &a, &la, NULL) == 0 && file_read_all(out, &b, &lb, NULL) == 0 &&
		    la == lb && memcmp(a, b, la) == 0;
	free(a);
	free(b);
	unlink(out);
	return same;
}

/* Stores a file and commits a one-file root for it; 0 or -errno. */
static inline int st_put_root(struct store *s, const char *root, const char *path, struct store_key *ret)
{
	struct corral_error err = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct store_key k;
	int r = store_begin(s, &err);
	if (r == 0)
		r = store_put_fd(s, fd, &k, NULL, &err);
	close(fd);
	if (r == 0) {
		struct store_root_entry e = { .recipe = k, .label = (char *)path };
		struct store_root rt = { .n = 1, .e = &e };
		r = store_root_commit(s, root, &rt, &err);
	}
	store_end(s);
	if (r < 0)
		diag("store %s as root %s: %s", path, root, err.msg);
	else if (ret)
		*ret = k;
	return r;
}

/* fsck findings, collected. */
struct st_report {
	char lines[256][512];
	int n, errors, lost;
};

static inline void st_collect(void *ctx, enum store_finding kind, const char *line)
{
	struct st_report *r = ctx;
	if (kind == STORE_FSCK_ERROR)
		r->errors++;
	if (kind == STORE_FSCK_LOST)
		r->lost++;
	if (r->n < 256)
		snprintf(r->lines[r->n++], 512, "%s: %s",
			 kind == STORE_FSCK_INFO ? "info" : kind == STORE_FSCK_ERROR ? "error" : "lost", line);
}

static inline int st_fsck(struct store *s, unsigned flags, struct st_report *rep)
{
	struct corral_error err = { 0 };
	struct store_fsck_result res;
	memset(rep, 0, sizeof(*rep));
	int r = store_fsck(s, flags, st_collect, rep, &res, &err);
	if (r < 0)
		diag("fsck: %s", err.msg);
	for (int i = 0; i < rep->n; i++)
		diag("  %s", rep->lines[i]);
	return r;
}

/* Whether some finding matches the extended regex. */
static inline bool st_found(const struct st_report *rep, const char *re)
{
	regex_t rx;
	if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB))
		return false;
	bool found = false;
	for (int i = 0; i < rep->n && !found; i++)
		found = regexec(&rx, rep->lines[i], 0, NULL, 0) == 0;
	regfree(&rx);
	return found;
}

/* A store's one pack (the tests that corrupt write with one handle). */
static inline int st_pack_path(const char *dir, char *out, size_t len)
{
	char packs[300];
	snprintf(packs, sizeof(packs), "%.200s/packs", dir);
	DIR *d = opendir(packs);
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)))
		if (strstr(e->d_name, ".pack")) {
			snprintf(out, len, "%.250s/%.40s", packs, e->d_name);
			n++;
		}
	if (d)
		closedir(d);
	return n;
}

static inline int st_flip(const char *path, off_t off)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	uint8_t b;
	if (fd < 0 || pread(fd, &b, 1, off) != 1)
		return -1;
	b ^= 0x40;
	int r = pwrite(fd, &b, 1, off) == 1 ? 0 : -1;
	close(fd);
	return r;
}

#endif
