/* Partial files (cowfs-partial.h): lazy block-level copy-up and
 * store-backed files.
 *
 * In memory a partial file is a bitmap of its source's blocks, one bit set
 * per private block.  Bits are only ever set, under the partial's lock and
 * after the block's data is in the upper; they are read lock-free, so a
 * write into a block that is already private takes no lock.  Blocks whose
 * bit is clear hold only holes in the upper (a copy-up makes a sparse file
 * of the source's size, and nothing but a copy-in writes there), which is
 * why a whole source block is punched or zeroed by setting its bit alone.
 * source_len only shrinks (a truncate); blocks past it are no longer
 * looked at.
 *
 * The record (cowfs-partial-record.h) lists the private ranges as of the
 * last partial_sync: data first (fdatasync), then the xattr, then fsync,
 * all under the lock so that no block turns private between the data
 * being flushed and the bitmap being read.
 *
 * A completed file (every source block copied in, the record removed) and
 * a file replaced by partial_adopt_store keep their old state object until
 * the node is freed: readers that loaded it lock-free may still use it.
 *
 * Module cowfs (see cowfs.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cleanup.h"
#include "cowfs-partial.h"
#include "cowfs-route.h"
#include "cowfs-store.h"
#include "log.h"

struct cowfs_partial {
	pthread_mutex_t lock;	/* copy-in, record, completion (see cowfs.h) */
	pthread_mutex_t src_lock; /* opening the source (a leaf: reads open it too) */
	_Atomic bool active;	/* false once completed or replaced */
	enum partial_source_kind kind;
	unsigned layer;		/* PARTIAL_LOWER: its layer, path and identity */
	char *path;
	struct partial_ident ident;
	struct store_key recipe; /* PARTIAL_STORE */
	_Atomic uint64_t source_len;
	uint64_t nblocks;	/* bits in the bitmap: blocks of the first source_len */
	_Atomic uint64_t *bits;
	uint32_t nranges;	/* private ranges (an upper bound); under lock */
	uint32_t max_ranges;	/* what the record holds */
	_Atomic bool dirty;	/* bits set since the record was written; set under lock */
	_Atomic int src_fd;	/* PARTIAL_LOWER: the source, -1 until opened */
	int src_err;		/* the source cannot be used: -EIO; under src_lock */
	_Atomic bool recipe_ready; /* PARTIAL_STORE: rcp loaded (under src_lock) */
	struct store_recipe rcp;
	struct cowfs_partial *retired; /* an older state of the same node */
};

static const char *xattr_name(const struct cowfs *fs)
{
	return fs->xattr_trusted ? PARTIAL_XATTR_TRUSTED : PARTIAL_XATTR_USER;
}

static uint64_t blocks_of(uint64_t len)
{
	return len / PARTIAL_BLOCK + (len % PARTIAL_BLOCK != 0);
}

static struct cowfs_partial *active_of(const struct cowfs_node *n)
{
	struct cowfs_partial *p = atomic_load_explicit(&((struct cowfs_node *)n)->partial, memory_order_acquire);
	return p && atomic_load_explicit(&p->active, memory_order_acquire) ? p : NULL;
}

bool node_is_partial(const struct cowfs_node *n)
{
	return active_of(n) != NULL;
}

static bool is_private(const struct cowfs_partial *p, uint64_t b)
{
	if (b >= p->nblocks)
		return true;
	uint64_t w = atomic_load_explicit(&p->bits[b / 64], memory_order_acquire);
	return (w >> (b % 64)) & 1;
}

/* Under p->lock. */
static void set_private(struct cowfs_partial *p, uint64_t b)
{
	if (b >= p->nblocks || is_private(p, b))
		return;
	bool left = b > 0 && is_private(p, b - 1);
	bool right = b + 1 < p->nblocks && is_private(p, b + 1);
	atomic_fetch_or_explicit(&p->bits[b / 64], UINT64_C(1) << (b % 64), memory_order_release);
	p->nranges = p->nranges + 1 - left - right;
	p->dirty = true;
}

static struct cowfs_partial *partial_new(enum partial_source_kind kind, uint64_t source_len)
{
	struct cowfs_partial *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->kind = kind;
	atomic_init(&p->source_len, source_len);
	p->nblocks = blocks_of(source_len);
	p->bits = calloc(p->nblocks / 64 + 1, sizeof(*p->bits));
	if (!p->bits) {
		free(p);
		return NULL;
	}
	atomic_init(&p->src_fd, -1);
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->src_lock, NULL);
	return p;
}

static void partial_free_chain(struct cowfs_partial *p)
{
	while (p) {
		struct cowfs_partial *next = p->retired;
		if (atomic_load(&p->src_fd) >= 0)
			close(atomic_load(&p->src_fd));
		if (atomic_load(&p->recipe_ready))
			free(p->rcp.e); /* store_recipe_release, without linking the store */
		pthread_mutex_destroy(&p->lock);
		pthread_mutex_destroy(&p->src_lock);
		free(p->bits);
		free(p->path);
		free(p);
		p = next;
	}
}

/* Installs p as n's state, keeping the old one (readers may hold it). */
static void publish(struct cowfs_node *n, struct cowfs_partial *p)
{
	struct cowfs_partial *old = atomic_load(&n->partial);
	p->retired = old;
	if (old)
		atomic_store(&old->active, false);
	atomic_store_explicit(&p->active, true, memory_order_release);
	atomic_store_explicit(&n->partial, p, memory_order_release);
	atomic_store(&n->partial_loaded, true);
}

void partial_node_free(struct cowfs *fs, struct cowfs_node *n)
{
	struct cowfs_partial *p = atomic_load(&n->partial);
	if (!p)
		return;
	if (atomic_load(&p->active) && p->dirty && n->fds[0] >= 0) {
		int r = partial_sync(fs, n, -1);
		if (r < 0)
			log_error("partial file (inode %" PRIu64 "): record not written: %s", n->st_ino, strerror(-r));
	}
	partial_free_chain(p);
	atomic_store(&n->partial, NULL);
}

/* ---- the record ---- */

static int upper_rw_fd(struct cowfs *fs, struct cowfs_node *n, int upper_fd, int *owned)
{
	*owned = -1;
	if (upper_fd >= 0)
		return upper_fd;
	int fd = reopen_fd(fs, n->fds[0], O_RDONLY);
	if (fd >= 0)
		*owned = fd;
	return fd;
}

static int remove_record(struct cowfs *fs, int fd)
{
	if (fremovexattr(fd, xattr_name(fs)) < 0 && errno != ENODATA)
		return -errno;
	return 0;
}

/* Blocks the record speaks of: those of the current source_len. */
static uint64_t range_limit(struct cowfs_partial *p)
{
	uint64_t limit = blocks_of(atomic_load(&p->source_len));
	return limit < p->nblocks ? limit : p->nblocks;
}

static uint32_t count_ranges(struct cowfs_partial *p)
{
	uint64_t limit = range_limit(p);
	uint32_t count = 0;
	for (uint64_t b = 0; b < limit; b++)
		if (is_private(p, b) && (b == 0 || !is_private(p, b - 1)))
			count++;
	return count;
}

static int fill_record(struct cowfs_partial *p, struct partial_record *r)
{
	memset(r, 0, sizeof(*r));
	r->kind = p->kind;
	r->source_len = atomic_load(&p->source_len);
	r->layer = p->layer;
	if (p->kind == PARTIAL_LOWER)
		snprintf(r->path, sizeof(r->path), "%s", p->path);
	r->ident = p->ident;
	r->recipe = p->recipe;
	uint64_t limit = range_limit(p);
	uint32_t count = count_ranges(p);
	if (count > p->max_ranges)
		return -E2BIG;
	r->ranges = count ? calloc(count, sizeof(*r->ranges)) : NULL;
	if (count && !r->ranges)
		return -ENOMEM;
	for (uint64_t b = 0; b < limit; b++) {
		if (!is_private(p, b))
			continue;
		if (b == 0 || !is_private(p, b - 1))
			r->ranges[r->nranges++] = (struct partial_range){ (uint32_t)b, 0 };
		r->ranges[r->nranges - 1].count++;
	}
	p->nranges = count;
	return 0;
}

/* Writes the record from the bitmap; -E2BIG when it does not fit (the
 * caller completes the file). */
static int write_record(struct cowfs *fs, struct cowfs_partial *p, int fd, int xflags)
{
	struct partial_record r;
	uint8_t buf[PARTIAL_RECORD_MAX];
	int r0 = fill_record(p, &r);
	if (r0 < 0)
		return r0;
	int len = partial_record_encode(&r, buf);
	partial_record_release(&r);
	if (len < 0)
		return len;
	if (fsetxattr(fd, xattr_name(fs), buf, (size_t)len, xflags) < 0)
		/* No room beside the file's other xattrs: complete it. */
		return errno == ENOSPC || errno == E2BIG || errno == ERANGE ? -E2BIG : -errno;
	return 0;
}

/* ---- the source ---- */

static int open_lower_source(struct cowfs *fs, struct cowfs_node *n, struct cowfs_partial *p)
{
	if (p->layer == 0 || p->layer >= (unsigned)fs->nlayers)
		return -EIO;
	/* The node still holds its lower copy from this mount's copy-up. */
	if (n->fds[p->layer] >= 0)
		return reopen_fd(fs, n->fds[p->layer], O_RDONLY);
	/* After a remount: by name from the layer root, never following a
	 * link, never leaving the layer (the lower is read-only, and still
	 * nothing named by a record is followed). */
	struct open_how how = {
		.flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, fs->layers[p->layer].root_fd, p->path, &how, sizeof(how));
	if (fd < 0) {
		log_error("partial file (inode %" PRIu64 "): its source %s in layer %u: %s", n->st_ino, p->path,
			  p->layer, strerror(errno));
		return -EIO;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !partial_ident_matches(&p->ident, &st)) {
		log_error("partial file (inode %" PRIu64 "): its source %s in layer %u is not the file it was "
			  "copied from; its unwritten ranges read as EIO",
			  n->st_ino, p->path, p->layer);
		close(fd);
		return -EIO;
	}
	return fd;
}

static int source_fd(struct cowfs *fs, struct cowfs_node *n, struct cowfs_partial *p)
{
	int fd = atomic_load_explicit(&p->src_fd, memory_order_acquire);
	if (fd >= 0)
		return fd;
	pthread_mutex_lock(&p->src_lock);
	fd = atomic_load(&p->src_fd);
	if (fd < 0 && p->src_err == 0) {
		fd = open_lower_source(fs, n, p);
		if (fd >= 0)
			atomic_store_explicit(&p->src_fd, fd, memory_order_release);
		else
			p->src_err = fd;
	}
	if (fd < 0)
		fd = p->src_err;
	pthread_mutex_unlock(&p->src_lock);
	return fd;
}

static int load_recipe(struct cowfs *fs, struct cowfs_node *n, struct cowfs_partial *p)
{
	if (atomic_load_explicit(&p->recipe_ready, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&p->src_lock);
	int r = p->src_err;
	if (r == 0 && !atomic_load(&p->recipe_ready)) {
		r = cowfs_store_get_recipe(fs, &p->recipe, &p->rcp);
		/* Every block but the last is whole: block k is at k blocks. */
		bool shape = r == 0 && p->rcp.size >= atomic_load(&p->source_len);
		for (size_t i = 0; r == 0 && shape && i < p->rcp.n; i++)
			shape = p->rcp.e[i].len <= PARTIAL_BLOCK && (i + 1 == p->rcp.n || p->rcp.e[i].len == PARTIAL_BLOCK);
		if (r == 0 && !shape) {
			free(p->rcp.e);
			memset(&p->rcp, 0, sizeof(p->rcp));
			r = -EIO;
		}
		if (r == 0)
			atomic_store_explicit(&p->recipe_ready, true, memory_order_release);
		else if (r != -ENOSYS && r != -ENOMEM && r != -EAGAIN)
			p->src_err = -EIO;
		if (r < 0)
			log_error("partial file (inode %" PRIu64 "): its recipe in the store: %s", n->st_ino,
				  strerror(-r));
	}
	pthread_mutex_unlock(&p->src_lock);
	return r < 0 ? -EIO : 0;
}

/* Reads exactly [off, off+len) of the source (inside source_len). */
static int source_read(struct cowfs *fs, struct cowfs_node *n, struct cowfs_partial *p, void *buf, size_t len,
		       off_t off)
{
	if (p->kind == PARTIAL_LOWER) {
		int fd = source_fd(fs, n, p);
		if (fd < 0)
			return -EIO;
		size_t done = 0;
		while (done < len) {
			ssize_t got = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				log_error("partial file (inode %" PRIu64 "): its source %s ends early", n->st_ino,
					  p->path);
				return -EIO;
			}
			done += (size_t)got;
		}
		return 0;
	}
	int r = load_recipe(fs, n, p);
	if (r < 0)
		return r;
	/* Whole blocks go straight into buf, as many at a time as the range
	 * covers (the store reads records that lie back to back with one
	 * read); a block the range covers only in part goes through a
	 * block buffer. */
	const struct store_recipe_entry *e = p->rcp.e;
	cleanup_free uint8_t *block = NULL;
	size_t done = 0;
	while (done < len) {
		uint64_t pos = (uint64_t)off + done, k = pos / PARTIAL_BLOCK, in = pos % PARTIAL_BLOCK;
		size_t nb = 0, bytes = 0;
		if (k >= p->rcp.n)
			return -EIO;
		while (in == 0 && k + nb < p->rcp.n && e[k + nb].len <= len - done - bytes)
			bytes += e[k + nb++].len;
		if (nb > 0 && bytes > 0) {
			r = cowfs_store_read_blocks(fs, &e[k], nb, (char *)buf + done);
		} else {
			if (!block && !(block = malloc(PARTIAL_BLOCK)))
				return -ENOMEM;
			bytes = in < e[k].len ? e[k].len - in : 0;
			if (bytes > len - done)
				bytes = len - done;
			r = bytes ? cowfs_store_read_blocks(fs, &e[k], 1, block) : -EIO;
			if (r == 0)
				memcpy((char *)buf + done, block + in, bytes);
		}
		if (r < 0) {
			log_error("partial file (inode %" PRIu64 "): block %" PRIu64 " of its recipe: %s", n->st_ino,
				  k, strerror(-r));
			return -EIO;
		}
		done += bytes;
	}
	return 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t w = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		done += (size_t)w;
	}
	return 0;
}

/* Copies source block b into the upper and makes it private.  Under lock. */
static int copy_in(struct cowfs *fs, struct cowfs_node *n, struct cowfs_partial *p, int fd, uint64_t b,
		   uint8_t *buf)
{
	uint64_t slen = atomic_load(&p->source_len), start = b * PARTIAL_BLOCK;
	if (is_private(p, b))
		return 0;
	if (start < slen) {
		size_t len = slen - start < PARTIAL_BLOCK ? (size_t)(slen - start) : PARTIAL_BLOCK;
		int r = source_read(fs, n, p, buf, len, (off_t)start);
		if (r == 0)
			r = pwrite_all(fd, buf, len, (off_t)start);
		if (r < 0)
			return r;
	}
	set_private(p, b);
	return 0;
}

/* ---- completion and sync ---- */

/* Under p->lock; fd writable. */
static int complete_locked(struct cowfs *fs, struct cowfs_node *n, struct cowfs_partial *p, int fd)
{
	cleanup_free uint8_t *buf = malloc(PARTIAL_BLOCK);
	if (!buf)
		return -ENOMEM;
	uint64_t limit = blocks_of(atomic_load(&p->source_len));
	for (uint64_t b = 0; b < limit && b < p->nblocks; b++) {
		int r = copy_in(fs, n, p, fd, b, buf);
		if (r < 0)
			return r;
	}
	/* The data is durable before the record that says where to find it
	 * goes away. */
	if (fdatasync(fd) < 0)
		return -errno;
	int r = remove_record(fs, fd);
	if (r < 0)
		return r;
	if (fsync(fd) < 0)
		return -errno;
	p->dirty = false;
	atomic_store_explicit(&p->active, false, memory_order_release);
	/* Plain now: a store-backed file's extra goes back (also when no
	 * measured operation follows, as at the last release). */
	if (p->kind == PARTIAL_STORE)
		quota_charge(fs, cowfs_store_quota_update(fs, n), 0);
	log_debug("partial file (inode %" PRIu64 ") completed", n->st_ino);
	return 0;
}

int partial_complete(struct cowfs *fs, struct cowfs_node *n, int upper_fd)
{
	struct cowfs_partial *p = active_of(n);
	if (!p)
		return 0;
	atomic_fetch_add(&n->write_gen, 1);
	pthread_mutex_lock(&p->lock);
	int r = atomic_load(&p->active) ? complete_locked(fs, n, p, upper_fd) : 0;
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* Under p->lock. */
static int sync_locked(struct cowfs *fs, struct cowfs_node *n, struct cowfs_partial *p, int fd)
{
	if (!atomic_load(&p->active) || !p->dirty)
		return 0;
	if (fdatasync(fd) < 0)
		return -errno;
	int r = write_record(fs, p, fd, 0);
	if (r == -E2BIG)
		return complete_locked(fs, n, p, fd);
	if (r < 0)
		return r;
	if (fsync(fd) < 0)
		return -errno;
	p->dirty = false;
	return 0;
}

int partial_sync(struct cowfs *fs, struct cowfs_node *n, int upper_fd)
{
	struct cowfs_partial *p = active_of(n);
	if (!p || !p->dirty)
		return 0;
	int owned;
	int fd = upper_rw_fd(fs, n, upper_fd, &owned);
	if (fd < 0)
		return fd;
	/* Measured like a write (fsync and the last release): a record
	 * that outgrows the inode takes an xattr block, a completion copies
	 * blocks in; uncharged, the move's punch would give them back all
	 * the same, 4 KiB less at every rewrite and move.  Not from the
	 * node's freeing (upper_fd -1): its blocks were given back already. */
	struct stat before, after;
	bool measured = fs->quota_bytes && upper_fd >= 0;
	if (measured)
		pthread_mutex_lock(&n->lock);
	measured = measured && fstat(fd, &before) == 0;
	pthread_mutex_lock(&p->lock);
	int r = sync_locked(fs, n, p, fd);
	pthread_mutex_unlock(&p->lock);
	if (measured && fstat(fd, &after) == 0)
		quota_charge_blocks(fs, n, before.st_blocks, after.st_blocks, 0);
	if (fs->quota_bytes && upper_fd >= 0)
		pthread_mutex_unlock(&n->lock);
	if (owned >= 0)
		close(owned);
	return r;
}

/* ---- copy-up and load ---- */

/* The lower file's path relative to its layer root, through the kernel's
 * names of both descriptors (the lower is read-only: they stay true). */
static int lower_rel_path(struct cowfs *fs, int layer, int fd, char *buf, size_t size)
{
	char link[64], root[PATH_MAX], path[PATH_MAX];
	fd_path(link, fs->layers[layer].root_fd);
	ssize_t rl = readlink(link, root, sizeof(root) - 1);
	fd_path(link, fd);
	ssize_t pl = readlink(link, path, sizeof(path) - 1);
	if (rl <= 0 || pl <= 0 || rl == (ssize_t)sizeof(root) - 1 || pl == (ssize_t)sizeof(path) - 1)
		return -EOPNOTSUPP;
	root[rl] = path[pl] = '\0';
	size_t skip = strcmp(root, "/") == 0 ? 1 : (size_t)rl + 1;
	if (strncmp(path, root, (size_t)rl) != 0 || (skip > 1 && path[rl] != '/') || (size_t)pl <= skip)
		return -EOPNOTSUPP;
	const char *rel = path + skip;
	if (strlen(rel) >= size || strstr(rel, " (deleted)"))
		return -EOPNOTSUPP;
	snprintf(buf, size, "%s", rel);
	return 0;
}

int partial_copy_up(struct cowfs *fs, struct cowfs_node *n, int lower_layer, const struct stat *st, int dst_fd)
{
	char rel[PARTIAL_PATH_MAX + 1];
	int r = lower_rel_path(fs, lower_layer, n->fds[lower_layer], rel, sizeof(rel));
	if (r < 0)
		return r;
	struct cowfs_partial *p = partial_new(PARTIAL_LOWER, (uint64_t)st->st_size);
	if (!p)
		return -ENOMEM;
	p->layer = (unsigned)lower_layer;
	p->path = strdup(rel);
	p->max_ranges = partial_record_max_ranges(strlen(rel));
	p->ident = (struct partial_ident){
		.ino = (uint64_t)st->st_ino,
		.size = (uint64_t)st->st_size,
		.mtime_sec = st->st_mtim.tv_sec,
		.mtime_nsec = (uint32_t)st->st_mtim.tv_nsec,
		.ctime_sec = st->st_ctim.tv_sec,
		.ctime_nsec = (uint32_t)st->st_ctim.tv_nsec,
	};
	if (!p->path) {
		partial_free_chain(p);
		return -ENOMEM;
	}
	/* A sparse file of the right size and its record, durable before the
	 * caller links it in: a linked copy without its record would read
	 * zeros where the source is. */
	if (ftruncate(dst_fd, st->st_size) < 0) {
		r = -errno;
	} else {
		r = write_record(fs, p, dst_fd, XATTR_CREATE);
		if (r == 0 && fsync(dst_fd) < 0)
			r = -errno;
	}
	if (r < 0) {
		/* No xattrs on the upper, or no room: a whole copy. */
		if (ftruncate(dst_fd, 0) == 0)
			r = -EOPNOTSUPP;
		partial_free_chain(p);
		return r;
	}
	publish(n, p);
	log_debug("lazy copy-up of inode %" PRIu64 " (%s in layer %d, %lld bytes)", n->st_ino, rel, lower_layer,
		  (long long)st->st_size);
	return 0;
}

/* copy_up failed after partial_copy_up: the node stays a lower node. */
void partial_forget(struct cowfs_node *n)
{
	struct cowfs_partial *p = atomic_load(&n->partial);
	if (p)
		atomic_store(&p->active, false);
	atomic_store(&n->partial_loaded, false);
}

int partial_load(struct cowfs *fs, struct cowfs_node *n)
{
	if (atomic_load_explicit(&n->partial_loaded, memory_order_acquire) || n->type != S_IFREG ||
	    !node_is_upper(n))
		return 0;
	uint8_t buf[PARTIAL_RECORD_MAX + 1];
	char path[64];
	int r = 0;
	pthread_mutex_lock(&n->lock);
	if (atomic_load(&n->partial_loaded))
		goto out;
	fd_path(path, n->fds[0]);
	ssize_t len = getxattr(path, xattr_name(fs), buf, sizeof(buf));
	if (len < 0) {
		/* ENODATA: a plain file; no xattrs at all: none can be partial. */
		if (errno == ENODATA || errno == ENOTSUP)
			atomic_store(&n->partial_loaded, true);
		else
			r = -errno;
		goto out;
	}
	struct partial_record rec;
	r = partial_record_parse(buf, (size_t)len, &rec);
	if (r < 0) {
		log_error("partial file (inode %" PRIu64 "): damaged record (%s); it reads as EIO", n->st_ino,
			  strerror(-r));
		r = -EIO;
		goto out;
	}
	struct stat st;
	if (layer_stat_fd(n->fds[0], &st) < 0) {
		r = -errno;
		partial_record_release(&rec);
		goto out;
	}
	/* A crash between a shrinking truncate and its record leaves the
	 * upper shorter than source_len: nothing can have grown it since. */
	if ((uint64_t)st.st_size < rec.source_len)
		rec.source_len = (uint64_t)st.st_size;
	struct cowfs_partial *p = partial_new(rec.kind, rec.source_len);
	if (!p) {
		r = -ENOMEM;
		partial_record_release(&rec);
		goto out;
	}
	p->layer = rec.layer;
	p->ident = rec.ident;
	p->recipe = rec.recipe;
	p->path = rec.kind == PARTIAL_LOWER ? strdup(rec.path) : NULL;
	p->max_ranges = partial_record_max_ranges(rec.kind == PARTIAL_LOWER ? strlen(rec.path) : 0);
	for (uint32_t i = 0; i < rec.nranges; i++)
		for (uint64_t b = rec.ranges[i].start; b < (uint64_t)rec.ranges[i].start + rec.ranges[i].count; b++)
			set_private(p, b);
	p->dirty = false;
	partial_record_release(&rec);
	if (rec.kind == PARTIAL_LOWER && !p->path) {
		partial_free_chain(p);
		r = -ENOMEM;
		goto out;
	}
	publish(n, p);
out:
	pthread_mutex_unlock(&n->lock);
	return r;
}

/* ---- reads and changes ---- */

ssize_t partial_pread(struct cowfs *fs, struct cowfs_node *n, int upper_fd, void *buf, size_t len, off_t off)
{
	struct cowfs_partial *p = active_of(n);
	if (!p) {
		ssize_t r = pread(upper_fd, buf, len, off);
		return r < 0 ? -errno : r;
	}
	struct stat st;
	if (fstat(upper_fd, &st) < 0)
		return -errno;
	if (off < 0)
		return -EINVAL;
	if (off >= st.st_size)
		return 0;
	if ((uint64_t)len > (uint64_t)(st.st_size - off))
		len = (size_t)(st.st_size - off);
	size_t done = 0;
	while (done < len) {
		uint64_t pos = (uint64_t)off + done, b = pos / PARTIAL_BLOCK;
		uint64_t end = (b + 1) * PARTIAL_BLOCK, slen = atomic_load(&p->source_len);
		if (end > (uint64_t)off + len)
			end = (uint64_t)off + len;
		if (pos < slen && !is_private(p, b)) {
			uint64_t se = end < slen ? end : slen;
			int r = source_read(fs, n, p, (char *)buf + done, (size_t)(se - pos), (off_t)pos);
			if (r < 0)
				return r;
			done += (size_t)(se - pos);
			pos = se;
		}
		/* Private, or past the source: the upper's bytes (its holes
		 * read as zeros). */
		while (pos < end) {
			ssize_t got = pread(upper_fd, (char *)buf + done, (size_t)(end - pos), (off_t)pos);
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0)
				return -errno;
			if (got == 0) /* truncated meanwhile */
				return (ssize_t)done;
			done += (size_t)got;
			pos += (uint64_t)got;
		}
	}
	return (ssize_t)done;
}

/* Copies in the source blocks of [off, off+len).  holes: blocks whose source part
 * the range covers whole are only marked private (their upper is holes
 * already): a punch or a zeroing of them. */
static int prepare_range(struct cowfs *fs, struct cowfs_node *n, int fd, off_t off, off_t len, bool holes)
{
	atomic_fetch_add(&n->write_gen, 1);
	struct cowfs_partial *p = active_of(n);
	if (!p || len <= 0 || off < 0)
		return 0;
	uint64_t first = (uint64_t)off / PARTIAL_BLOCK, last = ((uint64_t)off + (uint64_t)len - 1) / PARTIAL_BLOCK;
	uint64_t slen = atomic_load(&p->source_len);
	bool need = false;
	for (uint64_t b = first; b <= last && b * PARTIAL_BLOCK < slen; b++)
		if (!is_private(p, b)) {
			need = true;
			break;
		}
	if (!need)
		return 0;
	cleanup_free uint8_t *buf = malloc(PARTIAL_BLOCK);
	if (!buf)
		return -ENOMEM;
	int r = 0;
	pthread_mutex_lock(&p->lock);
	slen = atomic_load(&p->source_len);
	for (uint64_t b = first; r == 0 && atomic_load(&p->active) && b <= last && b * PARTIAL_BLOCK < slen; b++) {
		if (is_private(p, b))
			continue;
		/* The bitmap has no limit; only the record has.  A file whose
		 * ranges outgrow the record is completed when the record is
		 * next made durable (sync_locked: fsync, the last release),
		 * never here: a write holds the kernel's lock on the pages it
		 * writes, and a directory listing that meets the file's new
		 * mtime waits for those pages (it invalidates the file's
		 * cache), so a completion inside a write would stall every
		 * `ls` of the directory for as long as it copies. */
		uint64_t bs = b * PARTIAL_BLOCK, be = bs + PARTIAL_BLOCK < slen ? bs + PARTIAL_BLOCK : slen;
		if (holes && (uint64_t)off <= bs && (uint64_t)off + (uint64_t)len >= be)
			set_private(p, b);
		else
			r = copy_in(fs, n, p, fd, b, buf);
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

int partial_prepare_write(struct cowfs *fs, struct cowfs_node *n, int upper_fd, off_t off, off_t len)
{
	return prepare_range(fs, n, upper_fd, off, len, false);
}

int partial_prepare_punch(struct cowfs *fs, struct cowfs_node *n, int upper_fd, off_t off, off_t len)
{
	return prepare_range(fs, n, upper_fd, off, len, true);
}

int partial_truncate(struct cowfs *fs, struct cowfs_node *n, int upper_fd, off_t size)
{
	atomic_fetch_add(&n->write_gen, 1);
	struct cowfs_partial *p = active_of(n);
	if (!p)
		return ftruncate(upper_fd, size) < 0 ? -errno : 0;
	pthread_mutex_lock(&p->lock);
	int r = 0;
	uint64_t slen = atomic_load(&p->source_len);
	if (atomic_load(&p->active) && (uint64_t)size < slen) {
		/* Readers stop at the new end first, then the upper is cut,
		 * then the record says so (durably: a later growth must read
		 * zeros there, not the source).  A crash in between is put
		 * right by partial_load, which trims source_len to the size. */
		atomic_store(&p->source_len, (uint64_t)size);
		struct stat st;
		/* An O_TRUNC open (read-only, too) has cut it already. */
		bool done = size == 0 && fstat(upper_fd, &st) == 0 && st.st_size == 0;
		if (!done && ftruncate(upper_fd, size) < 0) {
			r = -errno;
		} else if (size == 0) {
			r = remove_record(fs, upper_fd);
			if (r == 0 && fsync(upper_fd) < 0)
				r = -errno;
			if (r == 0) {
				atomic_store(&p->active, false);
				/* Emptied, plain: its extra goes back. */
				if (p->kind == PARTIAL_STORE)
					quota_charge(fs, cowfs_store_quota_update(fs, n), 0);
			}
		} else {
			p->dirty = true;
			r = sync_locked(fs, n, p, upper_fd);
		}
	} else if (ftruncate(upper_fd, size) < 0) {
		r = -errno;
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* ---- writers and the store ---- */

void partial_writer_open(struct cowfs_node *n)
{
	atomic_fetch_add(&n->writers_open, 1);
	atomic_fetch_add(&n->write_gen, 1);
}

void partial_writer_close(struct cowfs_node *n)
{
	atomic_fetch_add(&n->write_gen, 1);
	atomic_fetch_sub(&n->writers_open, 1);
}

uint64_t partial_write_gen(const struct cowfs_node *n)
{
	return atomic_load(&((struct cowfs_node *)n)->write_gen);
}

bool partial_store_recipe(const struct cowfs_node *n, struct store_key *ret)
{
	struct cowfs_partial *p = active_of(n);
	if (!p || p->kind != PARTIAL_STORE)
		return false;
	*ret = p->recipe;
	return true;
}

/* Whether n may change source now: no writer, no passthrough handle, no
 * change since seen_gen.  Under the node's io lock (cowfs-route.c), so
 * that no passthrough open starts once it is partial. */
static bool adopt_ok(struct cowfs_node *n, uint64_t seen_gen)
{
	return atomic_load(&n->writers_open) == 0 && n->io.pt == 0 && atomic_load(&n->write_gen) == seen_gen;
}

int partial_adopt_store(struct cowfs *fs, struct cowfs_node *n, const struct store_key *recipe, uint64_t size,
			uint64_t seen_gen)
{
	if (n->type != S_IFREG || !node_is_upper(n))
		return -EINVAL;
	int r = partial_load(fs, n);
	if (r < 0)
		return r;
	cleanup_close int fd = reopen_fd(fs, n->fds[0], O_RDWR);
	if (fd < 0)
		return fd;
	struct stat before;
	if (fstat(fd, &before) < 0)
		return -errno;
	if ((uint64_t)before.st_size != size)
		return -EBUSY;
	struct cowfs_partial *p = partial_new(PARTIAL_STORE, size);
	if (!p)
		return -ENOMEM;
	p->recipe = *recipe;
	p->max_ranges = partial_record_max_ranges(0);

	if (fs->quota_bytes)
		pthread_mutex_lock(&n->lock);
	/* Held across: a writer that opens once it is partial copies in
	 * after the punch, from the store. */
	pthread_mutex_lock(&p->lock);
	route_io_lock(fs, n);
	bool ok = adopt_ok(n, seen_gen);
	if (ok)
		publish(n, p);
	route_io_unlock(fs, n);
	if (!ok) {
		pthread_mutex_unlock(&p->lock);
		if (fs->quota_bytes)
			pthread_mutex_unlock(&n->lock);
		partial_free_chain(p);
		return -EBUSY;
	}
	/* Measured under the lock like a write: the blocks the punch frees
	 * are charged again as the file's extra (quota_charge_blocks). */
	bool measured = fs->quota_bytes && fstat(fd, &before) == 0;
	/* The record (all of it from the store) is durable before the data
	 * goes. */
	r = write_record(fs, p, fd, 0);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0)
		cowfs_store_crash_point("record");
	if (r == 0 && size > 0 && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)size) < 0)
		r = -errno;
	if (r < 0) {
		/* The upper still holds the data (or the record is there and
		 * the store holds the same): keep reading through p. */
		log_error("partial file (inode %" PRIu64 "): moving to the store: %s", n->st_ino, strerror(-r));
	}
	/* The file counts max(size, blocks) before (a plain file: its
	 * blocks, all of it written) and after (store-backed): the move
	 * changes no usage, a re-move of a file with blocks copied in gives
	 * nothing back either (its extra followed each copy-in). */
	struct stat after;
	if (measured && fstat(fd, &after) == 0)
		quota_charge_blocks(fs, n, before.st_blocks, after.st_blocks, 0);
	pthread_mutex_unlock(&p->lock);
	if (fs->quota_bytes)
		pthread_mutex_unlock(&n->lock);
	return r;
}
