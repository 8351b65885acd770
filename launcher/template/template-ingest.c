/* Template ingest: every regular file of a template into the host's block
 * store, named by the root "template.NAME" (see template-ingest.h).
 *
 * The template is host data, but it was unpacked from archives a tenant
 * may have written, so the walk keeps the rule for tenant trees: every
 * step is an *at() call on a directory descriptor with no symlink
 * followed (fstatat AT_SYMLINK_NOFOLLOW, openat O_NOFOLLOW, also for
 * templates/NAME and its rootfs), a directory is entered
 * only if the descriptor opened is the one that was stat'ed, and files
 * are opened O_NONBLOCK and checked with fstat, so a name swapped for a
 * fifo between the stat and the open is skipped instead of hanging the
 * ingest. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "store/store.h"
#include "template-ingest.h"
#include "template-internal.h"
#include "template.h"

/* Deeper than any real tree; bounds the descriptors the recursion holds. */
#define INGEST_MAX_DEPTH 256

struct ingest_ctx {
	struct store *s;
	struct store_root root;		/* the entries gathered so far */
	size_t cap;
	dev_t dev;			/* the template's filesystem */
	struct template_ingest_result *res;
	struct corral_error *err;
	char path[PATH_MAX];		/* "/a/b" of the entry being looked at */
};

static void store_closep(struct store **s)
{
	if (*s)
		store_close(*s);
}

static int add_entry(struct ingest_ctx *c, const struct store_key *k)
{
	if (c->root.n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 1024;
		struct store_root_entry *e = realloc(c->root.e, cap * sizeof(*e));
		if (!e)
			return err_set(c->err, ENOMEM, "ingest %s", c->path);
		c->root.e = e;
		c->cap = cap;
	}
	char *label = strdup(c->path);
	if (!label)
		return err_set(c->err, ENOMEM, "ingest %s", c->path);
	c->root.e[c->root.n].recipe = *k;
	c->root.e[c->root.n].label = label;
	c->root.n++;
	return 0;
}

static int ingest_file(struct ingest_ctx *c, int dfd, const char *name)
{
	cleanup_close int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP || errno == ENXIO) { /* became a symlink or a socket since the stat */
			c->res->skipped++;
			return 0;
		}
		return err_set(c->err, errno, "open %s", c->path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(c->err, errno, "stat %s", c->path);
	if (!S_ISREG(st.st_mode)) {
		c->res->skipped++;
		return 0;
	}
	struct store_key k;
	uint64_t size;
	int r = store_put_fd(c->s, fd, &k, &size, c->err);
	if (r < 0)
		return err_wrap(c->err, "store %s", c->path);
	c->res->files++;
	c->res->bytes += size;
	return add_entry(c, &k);
}

static int ingest_dir(struct ingest_ctx *c, int dfd, int depth);

static int ingest_subdir(struct ingest_ctx *c, int dfd, const char *name, const struct stat *st, int depth)
{
	if (st->st_dev != c->dev) {
		c->res->other_fs++;
		return 0;
	}
	if (depth >= INGEST_MAX_DEPTH)
		return err_plain(c->err, ELOOP, "%s: the tree is more than %d directories deep", c->path,
				 INGEST_MAX_DEPTH);
	cleanup_close int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return err_set(c->err, errno, "open directory %s", c->path);
	struct stat now;
	if (fstat(sub, &now) < 0)
		return err_set(c->err, errno, "stat directory %s", c->path);
	if (now.st_dev != st->st_dev || now.st_ino != st->st_ino)
		return err_plain(c->err, ESTALE, "%s was replaced while it was read", c->path);
	return ingest_dir(c, sub, depth + 1);
}

static int ingest_dir(struct ingest_ctx *c, int dfd, int depth)
{
	cleanup_dir DIR *d = dir_stream_at(dfd);
	if (!d)
		return err_set(c->err, errno, "read directory %s", c->path[0] ? c->path : "/");
	size_t base = strlen(c->path);
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno)
				return err_set(c->err, errno, "read directory %s", c->path[0] ? c->path : "/");
			return 0;
		}
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		int n = snprintf(c->path + base, sizeof(c->path) - base, "/%s", name);
		if (n < 0 || (size_t)n >= sizeof(c->path) - base) {
			c->path[base] = '\0';
			return err_plain(c->err, ENAMETOOLONG, "a path below '%s' is too long",
					 c->path[0] ? c->path : "/");
		}
		struct stat st;
		int r = 0;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			r = errno == ENOENT ? 0 : err_set(c->err, errno, "stat %s", c->path);
		else if (S_ISDIR(st.st_mode))
			r = ingest_subdir(c, dfd, name, &st, depth);
		else if (S_ISREG(st.st_mode))
			r = ingest_file(c, dfd, name);
		else
			c->res->skipped++;
		c->path[base] = '\0';
		if (r < 0)
			return r;
	}
}

static int store_dir(const char *root, char *buf, size_t len, struct corral_error *err)
{
	int n = snprintf(buf, len, "%s/store", root);
	if (n < 0 || (size_t)n >= len)
		return err_plain(err, ENAMETOOLONG, "state root path is too long");
	return 0;
}

static int root_name(const char *name, char *buf, size_t len, struct corral_error *err)
{
	int n = snprintf(buf, len, TEMPLATE_STORE_ROOT_PREFIX "%s", name);
	if (n < 0 || (size_t)n >= len)
		return err_plain(err, ENAMETOOLONG, "template name '%s' is too long", name);
	return 0;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Everything between store_begin and store_end: the puts and the root
 * that keeps them, so a gc cannot run in between. */
static int ingest_locked(struct ingest_ctx *c, int rootfs_fd, const char *rname)
{
	int r = ingest_dir(c, rootfs_fd, 0);
	if (r < 0)
		return r;
	return store_root_commit(c->s, rname, &c->root, c->err);
}

int template_ingest(const char *root, const char *name, struct template_ingest_result *ret,
		    struct corral_error *err)
{
	char path[PATH_MAX], dir[PATH_MAX], rname[CORRAL_NAME_MAX + 16];
	/* Validates the name and says clearly when there is no such template. */
	int r = template_rootfs(root, name, path, sizeof(path), err);
	if (r < 0)
		return r;
	if ((r = root_name(name, rname, sizeof(rname), err)) < 0 || (r = store_dir(root, dir, sizeof(dir), err)) < 0)
		return r;
	char tdir[PATH_MAX];
	if (snprintf(tdir, sizeof(tdir), "%s/templates", root) >= (int)sizeof(tdir))
		return err_plain(err, ENAMETOOLONG, "state root path is too long");
	cleanup_close int tfd = open(tdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0)
		return err_set(err, errno, "open %s", tdir);
	/* Two components, each opened without following a symlink (the name
	 * was validated: no slash, no ".."). */
	cleanup_close int nfd = openat(tfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (nfd < 0)
		return err_set(err, errno, "open %s/%s", tdir, name);
	cleanup_close int rootfs_fd = openat(nfd, TMPL_ROOTFS, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfs_fd < 0)
		return err_set(err, errno, "open %s", path);
	struct stat st;
	if (fstat(rootfs_fd, &st) < 0)
		return err_set(err, errno, "stat %s", path);

	struct template_ingest_result res = { 0 };
	double t0 = now_seconds();
	__attribute__((cleanup(store_closep))) struct store *s = NULL;
	if ((r = store_open(dir, STORE_CREATE, &s, err)) < 0)
		return err_wrap(err, "open the store %s", dir);
	struct store_stats before, after;
	if ((r = store_stats(s, &before, err)) < 0)
		return r;
	if ((r = store_begin(s, err)) < 0)
		return r;
	struct ingest_ctx c = { .s = s, .dev = st.st_dev, .res = &res, .err = err };
	r = ingest_locked(&c, rootfs_fd, rname);
	store_end(s);
	store_root_release(&c.root);
	if (r < 0)
		return err_wrap(err, "ingest template '%s'", name);
	res.seconds = now_seconds() - t0;
	if ((r = store_stats(s, &after, err)) < 0)
		return r;
	res.new_bytes = after.unique_bytes > before.unique_bytes ? after.unique_bytes - before.unique_bytes : 0;
	*ret = res;
	return 0;
}

int template_ingest_forget(const char *root, const char *name, struct corral_error *err)
{
	char dir[PATH_MAX], rname[CORRAL_NAME_MAX + 16];
	int r = name_validate("template", name, err);
	if (r < 0 || (r = root_name(name, rname, sizeof(rname), err)) < 0 ||
	    (r = store_dir(root, dir, sizeof(dir), err)) < 0)
		return r;
	struct stat st;
	if (lstat(dir, &st) < 0 && errno == ENOENT)
		return 0; /* no store, so no root: do not make one */
	__attribute__((cleanup(store_closep))) struct store *s = NULL;
	if ((r = store_open(dir, 0, &s, err)) < 0)
		return err_wrap(err, "open the store %s", dir);
	r = store_root_remove(s, rname, err);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? err_wrap(err, "remove the store root %s", rname) : 0;
}
