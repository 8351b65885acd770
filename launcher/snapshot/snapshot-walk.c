/* The walk of a container's upper layer into a manifest (snapshot.h).
 *
 * The tree is the tenant's: every name is opened O_PATH|O_NOFOLLOW below
 * its parent's descriptor (never a path from the root, never a symlink
 * followed), a file's content is read through a reopen that must be the
 * inode we stat'ed, and the depth is bounded.  A store-backed file whose
 * record names a recipe and no private block reuses that recipe (the
 * cost of a snapshot grows with the data changed since, not with the
 * container's size); a store-backed file with private blocks reuses the
 * recipe's other blocks; a lazily copied-up template file (PARTIAL_LOWER)
 * is read as the tenant sees it, its private blocks from the upper and the
 * rest from the template's file, which is opened beneath the template's
 * rootfs (never following a link) and must be the file the record names;
 * any other file's content is put into the store. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cleanup.h"
#include "cowfs/cowfs-partial-record.h"
#include "fileio.h"
#include "snapshot/snapshot.h"

#define PARTIAL_XATTR "trusted.corral.partial"

struct walk {
	struct store *s;
	struct manifest *m;
	struct store_root *root;
	struct snapshot_result *res;
	struct corral_error *err;
	int lower_fd;		/* the template's rootfs, or -1 */
	void *inodes;		/* tsearch tree of struct ino_seen */
	uint8_t *block;		/* STORE_BLOCK_SIZE */
};

struct ino_seen {
	dev_t dev;
	ino_t ino;
	uint64_t index;		/* 1 + the manifest index of the first entry */
};

static int ino_cmp(const void *a, const void *b)
{
	const struct ino_seen *x = a, *y = b;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static int root_add(struct walk *w, const struct store_key *k, const char *label)
{
	struct store_root_entry *ne = realloc(w->root->e, (w->root->n + 1) * sizeof(*ne));
	if (!ne)
		return err_set(w->err, ENOMEM, "snapshot root");
	w->root->e = ne;
	ne[w->root->n].recipe = *k;
	ne[w->root->n].label = strdup(label);
	if (!ne[w->root->n].label)
		return err_set(w->err, ENOMEM, "snapshot root");
	w->root->n++;
	return 0;
}

/* Every xattr of the O_PATH descriptor's inode but the partial record. */
static int read_xattrs(struct walk *w, int fd, const char *rel, struct manifest_entry *e)
{
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ssize_t n = listxattr(proc, NULL, 0);
	if (n < 0 && (errno == ENOTSUP || errno == EPERM))
		return 0;
	if (n < 0)
		return err_set(w->err, errno, "listing xattrs of '%s'", rel);
	if (n == 0)
		return 0;
	cleanup_free char *names = malloc((size_t)n + 1);
	if (!names)
		return err_set(w->err, ENOMEM, "xattrs of '%s'", rel);
	n = listxattr(proc, names, (size_t)n);
	if (n < 0)
		return err_set(w->err, errno == ERANGE ? EAGAIN : errno, "listing xattrs of '%s'", rel);
	names[n] = '\0';
	for (char *p = names; p < names + n; p += strlen(p) + 1) {
		if (!*p || !strcmp(p, PARTIAL_XATTR))
			continue;
		if (e->nxattrs >= MANIFEST_XATTRS_MAX || strlen(p) > MANIFEST_XATTR_NAME_MAX)
			return err_plain(w->err, E2BIG, "'%s' has too many or too long xattrs", rel);
		ssize_t vl = getxattr(proc, p, NULL, 0);
		if (vl < 0 || vl > MANIFEST_XATTR_VALUE_MAX)
			return err_set(w->err, vl < 0 ? errno : E2BIG, "reading xattr %s of '%s'", p, rel);
		void *v = malloc(vl ? (size_t)vl : 1);
		struct manifest_xattr *nx = realloc(e->xattrs, (e->nxattrs + 1) * sizeof(*nx));
		if (!v || !nx) {
			free(v);
			if (nx)
				e->xattrs = nx;
			return err_set(w->err, ENOMEM, "xattrs of '%s'", rel);
		}
		e->xattrs = nx;
		ssize_t got = vl ? getxattr(proc, p, v, (size_t)vl) : 0;
		if (got != vl) {
			free(v);
			return err_set(w->err, got < 0 ? errno : EAGAIN, "reading xattr %s of '%s'", p, rel);
		}
		nx[e->nxattrs].name = strdup(p);
		nx[e->nxattrs].value = v;
		nx[e->nxattrs].len = (uint32_t)vl;
		if (!nx[e->nxattrs].name) {
			free(v);
			return err_set(w->err, ENOMEM, "xattrs of '%s'", rel);
		}
		e->nxattrs++;
	}
	return 0;
}

static int put_block_from(struct walk *w, const void *data, size_t len, struct store_recipe_entry *ret)
{
	ret->len = (uint32_t)len;
	w->res->bytes_put += len;
	return store_put_block(w->s, data, len, &ret->key, w->err);
}

/* Reads [off, off+len) of the lower source file into buf (a short file
 * leaves zeros: its identity was checked, so it does not shrink). */
static int read_lower(struct walk *w, int lfd, void *buf, size_t len, uint64_t off, const char *rel)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = pread(lfd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(w->err, errno, "reading the template file of '%s'", rel);
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return 0;
}

/* The content of a partial file as the tenant sees it, as a new recipe:
 * a PARTIAL_STORE file with private blocks (or a size that moved past
 * source_len) reuses the source recipe's blocks where they still hold;
 * a PARTIAL_LOWER file (lfd: its template file, identity checked) reads
 * its source ranges from lfd.  Private blocks and what lies past
 * source_len are read from the upper (fd). */
static int compose(struct walk *w, int fd, int lfd, const struct stat *st, const struct partial_record *rec,
		   const char *rel, struct store_key *ret)
{
	struct store_recipe src = { 0 };
	int r = 0;
	if (rec->kind == PARTIAL_STORE && (r = store_get_recipe(w->s, &rec->recipe, &src, w->err)) < 0)
		return err_wrap(w->err, "the store recipe of '%s'", rel);
	uint64_t size = (uint64_t)st->st_size, nblocks = (size + STORE_BLOCK_SIZE - 1) / STORE_BLOCK_SIZE;
	struct store_recipe out = { .size = size, .n = nblocks, .e = calloc(nblocks ? nblocks : 1, sizeof(*out.e)) };
	if (!out.e) {
		store_recipe_release(&src);
		return err_set(w->err, ENOMEM, "recipe of '%s'", rel);
	}
	uint32_t ri = 0;
	for (uint64_t b = 0; b < nblocks && r == 0; b++) {
		uint64_t off = b * STORE_BLOCK_SIZE;
		size_t len = size - off < STORE_BLOCK_SIZE ? (size_t)(size - off) : STORE_BLOCK_SIZE;
		while (ri < rec->nranges && rec->ranges[ri].start + (uint64_t)rec->ranges[ri].count <= b)
			ri++;
		bool priv = ri < rec->nranges && rec->ranges[ri].start <= b;
		bool lower = rec->kind == PARTIAL_LOWER;
		bool from_src = !priv && off < rec->source_len && (lower || b < src.n);
		if (from_src && !lower && off + len <= rec->source_len && src.e[b].len == len) {
			out.e[b] = src.e[b];	/* the block as it is in the store */
			continue;
		}
		memset(w->block, 0, STORE_BLOCK_SIZE);
		size_t have = 0;
		/* What lies past the source (or all of a private block) is the upper's. */
		size_t from = from_src ? (size_t)(rec->source_len - off < len ? rec->source_len - off : len) : 0;
		if (from_src && lower) {
			r = read_lower(w, lfd, w->block, from, off, rel);
			have = from;
		} else if (from_src)
			r = store_get_block(w->s, &src.e[b].key, w->block, &have, w->err);
		if (r < 0)
			break;
		if (from > have)
			from = have;
		for (size_t done = from; done < len;) {
			ssize_t n = pread(fd, w->block + done, len - done, (off_t)(off + done));
			if (n < 0) {
				r = err_set(w->err, errno, "reading '%s'", rel);
				break;
			}
			if (n == 0)
				break;	/* shrank under us: zeros */
			done += (size_t)n;
		}
		if (r == 0)
			r = put_block_from(w, w->block, len, &out.e[b]);
	}
	if (r == 0)
		r = store_put_recipe(w->s, &out, ret, w->err);
	store_recipe_release(&src);
	free(out.e);
	return r;
}

/* The record of fd's file: its length, 0 for none, or -errno. */
static ssize_t read_record(int fd, uint8_t buf[PARTIAL_RECORD_MAX])
{
	ssize_t rl = fgetxattr(fd, PARTIAL_XATTR, buf, PARTIAL_RECORD_MAX);
	if (rl < 0)
		return errno == ENODATA || errno == ENOTSUP ? 0 : -errno;
	return rl == 0 ? -EINVAL : rl;
}

/* The template file a PARTIAL_LOWER record names, as cowfs reopens it:
 * by its path beneath the template's rootfs, no link followed, and only if
 * it is still the file the record's identity names (else the snapshot
 * would hold other bytes than the tenant sees).  An fd, or -errno. */
static int open_lower(struct walk *w, const struct partial_record *rec, const char *rel)
{
	/* corral mounts one lower layer: the template's rootfs. */
	if (rec->layer != 1 || w->lower_fd < 0)
		return err_plain(w->err, EIO,
				 "'%s' is a lazily copied-up template file of lower layer %u, and the container's "
				 "template is not there to read it from", rel, rec->layer);
	struct open_how how = { .flags = O_RDONLY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(SYS_openat2, w->lower_fd, rec->path, &how, sizeof(how));
	if (fd < 0 && errno == EPERM) {	/* O_NOATIME on a file we do not own */
		how.flags &= ~(uint64_t)O_NOATIME;
		fd = (int)syscall(SYS_openat2, w->lower_fd, rec->path, &how, sizeof(how));
	}
	if (fd < 0)
		return err_set(w->err, errno, "'%s': opening its template file '%s'", rel, rec->path);
	struct stat st;
	if (fstat(fd, &st) < 0 || !partial_ident_matches(&rec->ident, &st)) {
		close(fd);
		return err_plain(w->err, EIO,
				 "'%s' was copied up lazily from template file '%s', which is no longer that file "
				 "(inode, size or times differ): its unwritten ranges cannot be read", rel, rec->path);
	}
	return fd;
}

/* One try at the recipe of fd's content, given its record (rl bytes). */
static int recipe_once(struct walk *w, int fd, const struct stat *st, const uint8_t *rbuf, ssize_t rl,
		       const char *rel, struct store_key *ret)
{
	if (rl > 0) {
		struct partial_record rec;
		int r = partial_record_parse(rbuf, (size_t)rl, &rec);
		if (r < 0)
			return err_plain(w->err, EIO, "'%s' has a damaged partial-file record", rel);
		cleanup_close int lfd = -1;
		if (rec.kind == PARTIAL_LOWER) {
			r = open_lower(w, &rec, rel);
			if (r < 0) {
				partial_record_release(&rec);
				return r;
			}
			lfd = r;
		} else if (rec.nranges == 0 && rec.source_len == (uint64_t)st->st_size) {
			*ret = rec.recipe;
			partial_record_release(&rec);
			w->res->files_reused++;
			return 0;
		}
		r = compose(w, fd, lfd, st, &rec, rel, ret);
		partial_record_release(&rec);
		return r;
	}
	uint64_t got;
	int r = store_put_fd(w->s, fd, ret, &got, w->err);
	if (r < 0)
		return err_wrap(w->err, "storing '%s'", rel);
	w->res->bytes_put += got;
	return 0;
}

/* The recipe of a regular file's content (st: its stat).  In a running
 * container the tenant is frozen but cowfs's mover is not: it may turn a
 * file store-backed (record written, then the data punched) while we read
 * it.  Such a move keeps the content, so a record that changed during the
 * read just means reading again by the new record. */
static int file_recipe(struct walk *w, int dirfd, const char *name, const struct stat *st, const char *rel,
		       struct store_key *ret)
{
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_NOATIME | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st2;
	if (fd < 0)
		return err_set(w->err, errno, "opening '%s'", rel);
	if (fstat(fd, &st2) < 0)
		return err_set(w->err, errno, "stat of '%s'", rel);
	if (st2.st_ino != st->st_ino || st2.st_dev != st->st_dev || !S_ISREG(st2.st_mode))
		return err_plain(w->err, EAGAIN, "'%s' was replaced during the snapshot", rel);
	uint8_t before[PARTIAL_RECORD_MAX], after[PARTIAL_RECORD_MAX];
	for (int tries = 0; tries < 8; tries++) {
		ssize_t rl = read_record(fd, before);
		if (rl < 0)
			return err_set(w->err, (int)-rl, "reading the partial record of '%s'", rel);
		int r = recipe_once(w, fd, st, before, rl, rel, ret);
		if (r < 0)
			return r;
		ssize_t rl2 = read_record(fd, after);
		if (rl2 == rl && !memcmp(before, after, (size_t)rl))
			return 0;
	}
	return err_plain(w->err, EAGAIN, "'%s' kept changing during the snapshot", rel);
}

static int walk_dir(struct walk *w, int dirfd, const char *rel, unsigned depth);

/* One entry `name` of dirfd (rel: its manifest path). */
static int walk_entry(struct walk *w, int dirfd, const char *name, const char *rel, unsigned depth)
{
	cleanup_close int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(w->err, errno, "opening '%s'", rel);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(w->err, errno, "stat of '%s'", rel);
	struct manifest_entry e = {
		.mode = st.st_mode, .uid = st.st_uid, .gid = st.st_gid,
		.atime_sec = st.st_atim.tv_sec, .atime_nsec = st.st_atim.tv_nsec,
		.mtime_sec = st.st_mtim.tv_sec, .mtime_nsec = st.st_mtim.tv_nsec,
		.rdev = (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) ? st.st_rdev : 0,
	};
	e.path = strdup(rel);
	int r = e.path ? 0 : err_set(w->err, ENOMEM, "manifest");
	if (r == 0 && !S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		struct ino_seen *k = malloc(sizeof(*k));
		if (!k)
			r = err_set(w->err, ENOMEM, "manifest");
		else {
			*k = (struct ino_seen){ st.st_dev, st.st_ino, w->m->n + 1 };
			struct ino_seen **found = tsearch(k, &w->inodes, ino_cmp);
			if (!found)
				r = err_set(w->err, ENOMEM, "manifest");
			if (!found || *found != k)
				free(k);
			if (found && *found != k)
				e.link = (*found)->index;
		}
	}
	if (r == 0 && !e.link)
		r = read_xattrs(w, fd, rel, &e);
	if (r == 0 && S_ISLNK(st.st_mode) && !e.link) {
		char t[MANIFEST_PATH_MAX + 1];
		ssize_t n = readlinkat(fd, "", t, sizeof(t));
		if (n < 0)
			r = err_set(w->err, errno, "reading symlink '%s'", rel);
		else if (n == 0 || n > MANIFEST_PATH_MAX)
			r = err_plain(w->err, E2BIG, "symlink '%s' has a bad target length", rel);
		else {
			t[n] = '\0';
			if (!(e.target = strdup(t)))
				r = err_set(w->err, ENOMEM, "manifest");
		}
	}
	if (r == 0 && S_ISLNK(st.st_mode) && e.link && !(e.target = strdup("-")))
		r = err_set(w->err, ENOMEM, "manifest");
	if (r == 0 && S_ISREG(st.st_mode) && !e.link) {
		e.size = (uint64_t)st.st_size;
		e.flags = MANIFEST_HAS_RECIPE;
		w->res->files++;
		r = file_recipe(w, dirfd, name, &st, rel, &e.recipe);
		if (r == 0)
			r = root_add(w, &e.recipe, rel);
	}
	if (r == 0 && manifest_add(w->m, &e) < 0)
		r = err_set(w->err, ENOMEM, "manifest");
	manifest_entry_release(&e);
	w->res->entries = w->m->n;
	if (r < 0 || !S_ISDIR(st.st_mode))
		return r;
	if (depth >= SNAPSHOT_DEPTH_MAX)
		return err_plain(w->err, ELOOP, "'%s' is deeper than %d levels", rel, SNAPSHOT_DEPTH_MAX);
	cleanup_close int dfd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat dst;
	if (dfd < 0 || fstat(dfd, &dst) < 0)
		return err_set(w->err, errno, "opening directory '%s'", rel);
	if (dst.st_ino != st.st_ino || dst.st_dev != st.st_dev)
		return err_plain(w->err, EAGAIN, "'%s' was replaced during the snapshot", rel);
	return walk_dir(w, dfd, rel, depth + 1);
}

static int walk_dir(struct walk *w, int dirfd, const char *rel, unsigned depth)
{
	cleanup_dir DIR *d = dir_stream_at(dirfd);
	if (!d)
		return err_set(w->err, errno, "listing '%s'", rel);
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno)
				return err_set(w->err, errno, "listing '%s'", rel);
			return 0;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char child[MANIFEST_PATH_MAX + 1];
		int n = !strcmp(rel, ".") ? snprintf(child, sizeof(child), "%s", de->d_name)
					  : snprintf(child, sizeof(child), "%s/%s", rel, de->d_name);
		if (n < 0 || n >= (int)sizeof(child))
			return err_plain(w->err, ENAMETOOLONG, "a path below '%s' is too long", rel);
		int r = walk_entry(w, dirfd, de->d_name, child, depth);
		if (r < 0)
			return r;
	}
}

static void noop_free(void *p)
{
	free(p);
}

int snapshot_walk(struct store *s, int upper_fd, struct manifest *ret, struct store_root *root,
		  struct snapshot_result *res, struct corral_error *err)
{
	return snapshot_walk_layers(s, upper_fd, -1, ret, root, res, err);
}

int snapshot_walk_layers(struct store *s, int upper_fd, int lower_fd, struct manifest *ret, struct store_root *root,
			 struct snapshot_result *res, struct corral_error *err)
{
	struct walk w = { .s = s, .m = ret, .root = root, .res = res, .err = err, .lower_fd = lower_fd };
	w.block = malloc(STORE_BLOCK_SIZE);
	if (!w.block)
		return err_set(err, ENOMEM, "snapshot");
	/* The root's own metadata first ("."), then its tree. */
	int r = walk_entry(&w, upper_fd, ".", ".", 0);
	tdestroy(w.inodes, noop_free);
	free(w.block);
	return r;
}
