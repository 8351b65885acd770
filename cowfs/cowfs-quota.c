/* Disk quota and id shifting.
 *
 * Quota: the upper layer's usage is counted once at mount and kept up to
 * date by every operation that allocates or frees in the upper.  Bytes are
 * allocated blocks (st_blocks * 512), never file sizes: a write into a hole
 * below EOF, fallocate inside the size and a symlink's target block all
 * count, and a hard-linked inode counts once.  Each operation is charged
 * the change it made to its object's st_blocks; one that can know its
 * worst case beforehand (a write: the holes it covers) reserves that first
 * and fails with EDQUOT before changing anything.  Blocks of a removed
 * object are given back when its node is freed, that is after its last
 * name is gone and its last open file closed, as a disk quota does: an
 * unlinked file held open is disk in use.  Inodes count
 * names in the upper (whiteouts included).  statfs reports the quota, so
 * `df` inside a container shows its own limit and real usage.
 *
 * Lazy copy-up (cowfs-partial.h) follows the same rule: what the upper
 * really allocates.  The copy-up of a partial file checks only for its
 * inode and is charged its st_blocks afterwards (a sparse file: nearly
 * nothing), never the lower file's size.  A write into a source block
 * copies the whole 64 KiB block in first, so its reservation is widened to
 * the blocks it touches (cowfs-ops-file.c) and the copy-in is measured and
 * charged with the write.  Completing a file (every source block copied
 * in) happens inside the measured operation that needed it and is charged
 * after the fact, like any allocation that cannot be bounded beforehand;
 * a store-backed file stays charged for its data in the store.
 *
 * Store-backed files (cowfs-store.h): one counts max(its size rounded up
 * to 4 KiB, what the upper allocates for it), a plain file what it
 * allocates.  Else a tenant would write up to its quota, wait for the move
 * to free its upper blocks, and write again: unbounded unique data in the
 * host's shared store.  The part beyond its blocks (its extra, kept per
 * upper inode by cowfs-store.c) is charged by the mount-time count and set
 * again after each measured change of the file, in quota_charge_blocks: a
 * move changes no usage (its punch frees blocks, the extra grows as much),
 * a copy-in into a store-backed file charges nothing while it stays within
 * the size, a re-move gives nothing back, a remount counts the same.  The
 * extra is given back when the file turns plain (truncated to 0, an O_TRUNC
 * open, completion) or its inode dies with its node, exactly once.
 *
 * Id shift: a container in a user namespace maps its root to an
 * unprivileged host uid (say 100000).  The template on disk is owned by 0,
 * so cowfs presents every on-disk id as id + base and stores caller ids as
 * id - base: inside the container, files keep their ordinary owners. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cowfs.h"
#include "cowfs-store.h"
#include "fileio.h"

int quota_scan_upper(struct cowfs *fs)
{
	int64_t bytes = 0, inodes = 0;
	int fd = openat(fs->layers[0].root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Counts as the running count does: every name (whiteouts included)
	 * an inode, the blocks of a hard-linked file once.  Any depth, with
	 * at most three descriptors: the tree is the tenant's. */
	tree_usage(fd, &bytes, &inodes);
	if (fs->store_dir) {
		/* Data moved into the store stays the container's: a tenant
		 * must not escape its quota by letting its files move and
		 * remounting (cowfs-store.c counts it). */
		int64_t extra;
		int r = cowfs_store_quota_extra(fs, &extra);
		if (r < 0)
			return r;
		bytes += extra;
	}
	atomic_store(&fs->used_bytes, bytes);
	atomic_store(&fs->used_inodes, inodes);
	return 0;
}

int quota_check(struct cowfs *fs, int64_t bytes, int64_t inodes)
{
	if (fs->quota_bytes && bytes > 0 && atomic_load(&fs->used_bytes) + bytes > (int64_t)fs->quota_bytes)
		return -EDQUOT;
	if (fs->quota_inodes && inodes > 0 && atomic_load(&fs->used_inodes) + inodes > (int64_t)fs->quota_inodes)
		return -EDQUOT;
	return 0;
}

void quota_charge(struct cowfs *fs, int64_t bytes, int64_t inodes)
{
	if (!fs->quota_bytes && !fs->quota_inodes)
		return;
	atomic_fetch_add(&fs->used_bytes, bytes);
	atomic_fetch_add(&fs->used_inodes, inodes);
}

int quota_reserve(struct cowfs *fs, int64_t bytes)
{
	if (!fs->quota_bytes || bytes <= 0)
		return 0;
	/* Added first, checked after: concurrent writers cannot all pass on
	 * the same remaining space. */
	int64_t before = atomic_fetch_add(&fs->used_bytes, bytes);
	if (before + bytes > (int64_t)fs->quota_bytes) {
		atomic_fetch_sub(&fs->used_bytes, bytes);
		return -EDQUOT;
	}
	return 0;
}

int64_t quota_may_allocate(int fd, off_t off, off_t len, blksize_t blksize)
{
	if (len <= 0)
		return 0;
	/* Whole blocks: a write touching part of a hole allocates a block. */
	off_t bs = blksize > 0 ? blksize : 4096;
	off_t pos = off / bs * bs, end = (off + len + bs - 1) / bs * bs;
	int64_t holes = 0;
	/* A file with more extents than this in the range is taken as all
	 * hole from there on: refusing a little early beats a slow write. */
	for (int extents = 0; pos < end && extents < 64; extents++) {
		off_t hole = lseek(fd, pos, SEEK_HOLE);
		if (hole < 0)
			return holes + (end - pos); /* ENXIO: at or past EOF */
		if (hole >= end)
			return holes;
		off_t data = lseek(fd, hole, SEEK_DATA);
		if (data < 0 || data >= end)
			return holes + (end - hole);
		holes += data - hole;
		pos = data;
	}
	return pos < end ? holes + (end - pos) : holes;
}

/* Blocks of the node's upper object, or -1 if it has none or is linked. */
static int64_t unlinked_bytes(struct cowfs_node *n)
{
	struct stat st;
	if (node_layer(n) != 0 || n->fds[0] < 0 || layer_stat_fd(n->fds[0], &st) < 0 || st.st_nlink > 0)
		return -1;
	return (int64_t)st.st_blocks * 512;
}

void quota_unlinked(struct cowfs *fs, struct cowfs_node *n)
{
	/* Here for every unlink and rename-over, quota or not: a file
	 * waiting to move is let go, or the mover's reference would keep
	 * its blocks counted until the delay ran out. */
	cowfs_store_unlinked(fs, n);
	if (!fs->quota_bytes && !fs->quota_inodes)
		return;
	/* The last name is gone, its inode with it; its blocks keep counting
	 * until the node is freed (the kernel forgets an unlinked inode at
	 * its last close).  Given back here, a tenant could write a file up
	 * to the quota, unlink it, hold it open, and do it again: each held
	 * file would be disk the quota never sees. */
	pthread_mutex_lock(&n->lock);
	if (n->quota_released < 0 && unlinked_bytes(n) >= 0)
		n->quota_released = 0;
	pthread_mutex_unlock(&n->lock);
}

/* What the object counts for, of `blocks`: all of them while it has a
 * name; once its blocks were given back at the unlink, only what it grew
 * beyond that (shrinking below it gives nothing back a second time). */
static int64_t counted_bytes(const struct cowfs_node *n, blkcnt_t blocks)
{
	int64_t bytes = (int64_t)blocks * 512;
	if (n->quota_released < 0)
		return bytes;
	return bytes > n->quota_released ? bytes - n->quota_released : 0;
}

void quota_charge_blocks(struct cowfs *fs, struct cowfs_node *n, blkcnt_t before, blkcnt_t after, int64_t reserved)
{
	int64_t bytes = counted_bytes(n, after) - counted_bytes(n, before) - reserved;
	/* A file that is or was partial in this node's life may be store
	 * backed: its extra follows its size and blocks (a move's punch, a
	 * copy-in, a truncate), so that it counts max(size, blocks). */
	if (atomic_load_explicit(&n->partial, memory_order_acquire))
		bytes += cowfs_store_quota_update(fs, n);
	quota_charge(fs, bytes, 0);
}

void quota_node_freed(struct cowfs *fs, struct cowfs_node *n)
{
	if (!fs->quota_bytes && !fs->quota_inodes)
		return;
	/* The last reference is gone: nothing else holds n->lock.  An
	 * unlinked object never released had no name (O_TMPFILE, the copy-up
	 * of a deleted file): its inode was charged when it was made. */
	struct stat st;
	if (node_layer(n) == 0 && n->fds[0] >= 0 && layer_stat_fd(n->fds[0], &st) == 0 && st.st_nlink == 0)
		/* The inode dies with the node: a store-backed file gives its
		 * extra back too (once: the entry goes).  A node freed while
		 * its file keeps a name gives nothing back: the file still
		 * counts, and the node looked up later finds its entry. */
		quota_charge(fs, -counted_bytes(n, st.st_blocks) - cowfs_store_quota_gone(fs, st.st_ino),
			     n->quota_released < 0 ? -1 : 0);
}

void idshift_present(const struct cowfs *fs, struct stat *st)
{
	if (!fs->idshift_size)
		return;
	/* Ids beyond the range have no name inside: show them as nobody. */
	uid_t u = st->st_uid < fs->idshift_size ? st->st_uid : 65534;
	gid_t g = st->st_gid < fs->idshift_size ? st->st_gid : 65534;
	st->st_uid = fs->idshift_base + u;
	st->st_gid = fs->idshift_base + g;
}

static int unshift(const struct cowfs *fs, uint32_t id, uint32_t *ret)
{
	if (!fs->idshift_size) {
		*ret = id;
		return 0;
	}
	if (id < fs->idshift_base || id - fs->idshift_base >= fs->idshift_size)
		return -EINVAL;
	*ret = id - fs->idshift_base;
	return 0;
}

int idshift_store_uid(const struct cowfs *fs, uid_t id, uid_t *ret)
{
	return unshift(fs, id, ret);
}

int idshift_store_gid(const struct cowfs *fs, gid_t id, gid_t *ret)
{
	return unshift(fs, id, ret);
}
