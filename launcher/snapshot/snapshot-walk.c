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
	struct snapshot_pass *rec;	/* pass 1: the identities recorded */
	const struct snapshot_pass *prev;	/* pass 2: pass 1's result */
	size_t *by_path;	/* pass 2: prev's entry indices, sorted by path */
};

/* What identifies an entry's state (snapshot.h, the two-pass snapshot). */
struct ident {
	dev_t dev;
	ino_t ino;
	mode_t mode;
	nlink_t nlink;
	off_t size;
	struct timespec mtime, ctime;
	bool valid;		/* false: changed while read, never reused */
	char **names;		/* directories: the entries walked, in order */
	size_t nnames;
};

struct snapshot_pass {
	struct manifest m;
	struct ident *ids;	/* one per entry of m */
	size_t cap;
	uint64_t reused;
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

/* Waits for a write(2) in flight on fd's inode: ext4, xfs and btrfs hold
 * the inode's lock exclusively across a buffered write (timestamps first,
 * then the data), and take it shared for an O_DIRECT read, so such a read
 * returns only once the write is whole.  false: it could not be done (the
 * file is then never reused by pass 2). */
static bool write_barrier(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT) < 0)
		return false;
	void *buf = NULL;
	bool ok = posix_memalign(&buf, 4096, 4096) == 0 && pread(fd, buf, 4096, 0) >= 0;
	free(buf);
	return fcntl(fd, F_SETFL, fl) == 0 && ok;
}

static bool ts_eq(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* Whether st is the state id recorded (snapshot.h: the two-pass snapshot). */
static bool ident_same(const struct ident *id, const struct stat *st)
{
	return id->valid && id->dev == st->st_dev && id->ino == st->st_ino && id->mode == st->st_mode &&
	       id->nlink == st->st_nlink && id->size == st->st_size && ts_eq(id->mtime, st->st_mtim) &&
	       ts_eq(id->ctime, st->st_ctim);
}

/* The recipe of a regular file's content (st: its stat).  In a running
 * container the tenant is frozen but cowfs's mover is not: it may turn a
 * file store-backed (record written, then the data punched) while we read
 * it.  Such a move keeps the content, so a record that changed during the
 * read just means reading again by the new record.
 *
 * Pass 1 of a two-pass snapshot (w->rec) reads while the tenant runs, and
 * pass 2 reuses what it read if the file's ctime (with ino, size, mode,
 * nlink, mtime) is still that of st, taken before anything of the file was
 * read.  That holds because every change of content after st moves ctime:
 *  - write(2), truncate, fallocate, setxattr stamp ctime (file_modified(),
 *    setattr), and with multigrain timestamps (Linux 6.13+, ext4, xfs,
 *    btrfs, tmpfs: Documentation/filesystems/multigrain-ts.rst) a ctime
 *    that was queried by stat is followed by a fine-grained, strictly later
 *    one, even within the same jiffy;
 *  - a write whose ctime stamp came before st but whose data is still being
 *    copied is waited for by write_barrier() (inode lock) before the read.
 *    The tenant's writes reach the upper only through cowfs, which opens
 *    upper files without O_DIRECT (cowfs-ops-file.c): buffered writes, which
 *    hold the lock exclusively.  An O_DIRECT overwrite of the upper (only
 *    the host could make one) takes it shared and would not be waited for;
 *  - xattrs: ext4 stamps ctime after writing the value, under the inode
 *    lock, so a value read after st that is older than st's ctime cannot be;
 *  - a store through a shared mapping (a passthrough mapping of the upper
 *    file included) into a page already dirty does not fault, so it would
 *    stamp nothing: fdatasync() after st writes such pages back, which
 *    write-protects them, so the next store faults into ->page_mkwrite,
 *    which stamps ctime (file_update_time()).
 * A change during the read shows as a different stat after it (*stable =
 * false: pass 2 reads the file again).  Where it does not hold (coarse
 * timestamps, a filesystem without that locking) snapshot.c does not use
 * two passes. */
static int file_recipe(struct walk *w, int dirfd, const char *name, const struct stat *st, const char *rel,
		       struct store_key *ret, bool *stable)
{
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_NOATIME | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st2;
	if (fd < 0)
		return err_set(w->err, errno, "opening '%s'", rel);
	if (fstat(fd, &st2) < 0)
		return err_set(w->err, errno, "stat of '%s'", rel);
	if (st2.st_ino != st->st_ino || st2.st_dev != st->st_dev || !S_ISREG(st2.st_mode))
		return err_plain(w->err, EAGAIN, "'%s' was replaced during the snapshot", rel);
	*stable = true;
	if (w->rec) {
		if (st2.st_blocks > 0 && fdatasync(fd) < 0)
			*stable = false;
		if (!write_barrier(fd))
			*stable = false;
	}
	uint8_t before[PARTIAL_RECORD_MAX], after[PARTIAL_RECORD_MAX];
	for (int tries = 0; tries < 8; tries++) {
		ssize_t rl = read_record(fd, before);
		if (rl < 0)
			return err_set(w->err, (int)-rl, "reading the partial record of '%s'", rel);
		int r = recipe_once(w, fd, st, before, rl, rel, ret);
		if (r < 0)
			return r;
		ssize_t rl2 = read_record(fd, after);
		if (rl2 == rl && !memcmp(before, after, (size_t)rl)) {
			struct stat st3;
			if (w->rec) {
				struct ident id = { .dev = st->st_dev, .ino = st->st_ino, .mode = st->st_mode,
						    .nlink = st->st_nlink, .size = st->st_size,
						    .mtime = st->st_mtim, .ctime = st->st_ctim, .valid = true };
				if (fstat(fd, &st3) < 0 || !ident_same(&id, &st3))
					*stable = false;
			}
			return 0;
		}
		*stable = false;
	}
	return err_plain(w->err, EAGAIN, "'%s' kept changing during the snapshot", rel);
}

/* Pass 2: the index of prev's entry for rel, or -1. */
static ssize_t prev_lookup(const struct walk *w, const char *rel)
{
	size_t lo = 0, hi = w->prev->m.n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(rel, w->prev->m.e[w->by_path[mid]].path);
		if (c == 0)
			return (ssize_t)w->by_path[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

/* Pass 2: pass 1's entry for rel whose xattrs, target and recipe still
 * hold for the inode st (the first entry of its inode in pass 1, which is
 * the one that has them), or NULL. */
static const struct manifest_entry *prev_reusable(const struct walk *w, const char *rel, const struct stat *st)
{
	if (!w->prev)
		return NULL;
	ssize_t p = prev_lookup(w, rel);
	if (p < 0)
		return NULL;
	size_t q = w->prev->m.e[p].link ? (size_t)(w->prev->m.e[p].link - 1) : (size_t)p;
	if (q >= w->prev->m.n || !ident_same(&w->prev->ids[q], st) || !ident_same(&w->prev->ids[p], st))
		return NULL;
	return &w->prev->m.e[q];
}

static int copy_reused(struct walk *w, const struct manifest_entry *src, struct manifest_entry *e)
{
	if (src->target && !(e->target = strdup(src->target)))
		return err_set(w->err, ENOMEM, "manifest");
	if (!src->nxattrs)
		return 0;
	if (!(e->xattrs = calloc(src->nxattrs, sizeof(*e->xattrs))))
		return err_set(w->err, ENOMEM, "manifest");
	for (uint32_t i = 0; i < src->nxattrs; i++) {
		struct manifest_xattr *x = &e->xattrs[i];
		x->name = strdup(src->xattrs[i].name);
		x->value = malloc(src->xattrs[i].len ? src->xattrs[i].len : 1);
		e->nxattrs = i + 1;
		if (!x->name || !x->value)
			return err_set(w->err, ENOMEM, "manifest");
		memcpy(x->value, src->xattrs[i].value, src->xattrs[i].len);
		x->len = src->xattrs[i].len;
	}
	return 0;
}

/* Pass 1: records st as the state of the entry about to be added. */
static int record_ident(struct walk *w, const struct stat *st)
{
	struct snapshot_pass *rp = w->rec;
	if (rp->m.n == rp->cap) {
		size_t cap = rp->cap ? rp->cap * 2 : 64;
		struct ident *ni = realloc(rp->ids, cap * sizeof(*ni));
		if (!ni)
			return err_set(w->err, ENOMEM, "snapshot");
		rp->ids = ni;
		rp->cap = cap;
	}
	rp->ids[rp->m.n] = (struct ident){ .dev = st->st_dev, .ino = st->st_ino, .mode = st->st_mode,
					   .nlink = st->st_nlink, .size = st->st_size, .mtime = st->st_mtim,
					   .ctime = st->st_ctim, .valid = true };
	return 0;
}

static int walk_dir(struct walk *w, int dirfd, const char *rel, unsigned depth, size_t index, const struct stat *st);

/* One entry `name` of dirfd (rel: its manifest path). */
static int walk_entry(struct walk *w, int dirfd, const char *name, const char *rel, unsigned depth)
{
	cleanup_close int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	/* Pass 1 races the tenant: a name gone since readdir changed its
	 * directory, which pass 2 then lists again. */
	if (fd < 0 && w->rec && errno == ENOENT)
		return 0;
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
	if (r == 0 && w->rec)
		r = record_ident(w, &st);
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
	/* Pass 2: what pass 1 read of an unchanged entry is reused. */
	const struct manifest_entry *src = r == 0 && !e.link ? prev_reusable(w, rel, &st) : NULL;
	if (src) {
		r = copy_reused(w, src, &e);
		w->res->entries_reused++;
	}
	if (r == 0 && !e.link && !src)
		r = read_xattrs(w, fd, rel, &e);
	if (r == 0 && S_ISLNK(st.st_mode) && !e.link && !src) {
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
		bool stable = true;
		if (src)
			e.recipe = src->recipe;
		else
			r = file_recipe(w, dirfd, name, &st, rel, &e.recipe, &stable);
		if (r == 0 && w->rec && !stable)
			w->rec->ids[w->m->n].valid = false;
		if (r == 0)
			r = root_add(w, &e.recipe, rel);
	}
	size_t index = w->m->n;
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
	return walk_dir(w, dfd, rel, depth + 1, index, &st);
}

static int walk_child(struct walk *w, int dirfd, const char *name, const char *rel, unsigned depth)
{
	char child[MANIFEST_PATH_MAX + 1];
	int n = !strcmp(rel, ".") ? snprintf(child, sizeof(child), "%s", name)
				  : snprintf(child, sizeof(child), "%s/%s", rel, name);
	if (n < 0 || n >= (int)sizeof(child))
		return err_plain(w->err, ENAMETOOLONG, "a path below '%s' is too long", rel);
	return walk_entry(w, dirfd, name, child, depth);
}

/* Pass 1 records the names walked (for the directory at `index`); pass 2
 * walks a directory whose ino, ctime and mtime are those of pass 1 by
 * pass 1's names, in pass 1's order: adding, removing or renaming an entry
 * stamps the directory's ctime and mtime, so its entries are the same (and
 * readdir would list them in that order: the directory did not change).
 * Pass 1's stat of the directory comes before its readdir, and readdir
 * takes the directory's lock shared, so a change in flight at the stat
 * (create, unlink and rename hold it exclusively) is whole in the listing. */
static int walk_dir(struct walk *w, int dirfd, const char *rel, unsigned depth, size_t index, const struct stat *st)
{
	if (w->prev) {
		ssize_t p = prev_lookup(w, rel);
		const struct ident *id = p >= 0 ? &w->prev->ids[p] : NULL;
		if (id && S_ISDIR(id->mode) && ident_same(id, st)) {
			for (size_t i = 0; i < id->nnames; i++) {
				int r = walk_child(w, dirfd, id->names[i], rel, depth);
				if (r < 0)
					return r;
			}
			return 0;
		}
	}
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
		if (w->rec) {
			struct ident *id = &w->rec->ids[index];
			char **nn = realloc(id->names, (id->nnames + 1) * sizeof(*nn));
			if (!nn)
				return err_set(w->err, ENOMEM, "snapshot");
			id->names = nn;
			if (!(nn[id->nnames] = strdup(de->d_name)))
				return err_set(w->err, ENOMEM, "snapshot");
			id->nnames++;
		}
		int r = walk_child(w, dirfd, de->d_name, rel, depth);
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

static int walk_run(struct walk *w, int upper_fd)
{
	w->block = malloc(STORE_BLOCK_SIZE);
	if (!w->block)
		return err_set(w->err, ENOMEM, "snapshot");
	/* The root's own metadata first ("."), then its tree. */
	int r = walk_entry(w, upper_fd, ".", ".", 0);
	tdestroy(w->inodes, noop_free);
	free(w->block);
	return r;
}

int snapshot_walk_layers(struct store *s, int upper_fd, int lower_fd, struct manifest *ret, struct store_root *root,
			 struct snapshot_result *res, struct corral_error *err)
{
	struct walk w = { .s = s, .m = ret, .root = root, .res = res, .err = err, .lower_fd = lower_fd };
	return walk_run(&w, upper_fd);
}

void snapshot_pass_free(struct snapshot_pass *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->m.n && p->ids; i++) {
		for (size_t j = 0; j < p->ids[i].nnames; j++)
			free(p->ids[i].names[j]);
		free(p->ids[i].names);
	}
	free(p->ids);
	manifest_release(&p->m);
	free(p);
}

int snapshot_walk_pass1(struct store *s, int upper_fd, int lower_fd, struct snapshot_pass **ret,
			struct snapshot_result *res, struct corral_error *err)
{
	struct snapshot_pass *p = calloc(1, sizeof(*p));
	struct store_root root = { 0 };
	if (!p)
		return err_set(err, ENOMEM, "snapshot");
	struct walk w = { .s = s, .m = &p->m, .root = &root, .res = res, .err = err, .lower_fd = lower_fd,
			  .rec = p };
	int r = walk_run(&w, upper_fd);
	store_root_release(&root);
	/* An entry added after its ident (an error between them) has none. */
	if (r < 0) {
		snapshot_pass_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

static int by_path_cmp(const void *a, const void *b, void *arg)
{
	const struct manifest *m = arg;
	return strcmp(m->e[*(const size_t *)a].path, m->e[*(const size_t *)b].path);
}

int snapshot_walk_pass2(struct store *s, int upper_fd, int lower_fd, const struct snapshot_pass *prev,
			struct manifest *ret, struct store_root *root, struct snapshot_result *res,
			struct corral_error *err)
{
	struct walk w = { .s = s, .m = ret, .root = root, .res = res, .err = err, .lower_fd = lower_fd,
			  .prev = prev };
	w.by_path = malloc((prev->m.n ? prev->m.n : 1) * sizeof(*w.by_path));
	if (!w.by_path)
		return err_set(err, ENOMEM, "snapshot");
	for (size_t i = 0; i < prev->m.n; i++)
		w.by_path[i] = i;
	qsort_r(w.by_path, prev->m.n, sizeof(*w.by_path), by_path_cmp, (void *)&prev->m);
	int r = walk_run(&w, upper_fd);
	free(w.by_path);
	return r;
}
