/* Per-open choice between FUSE passthrough and the daemon, and the
 * bookkeeping of the kernel's io mode of each inode (see cowfs-route.h).
 *
 * Which opens are safe in passthrough, and why:
 *
 *   - Upper files (copied up, or created in the upper): the real file never
 *     changes identity, so a passthrough handle on it stays right whatever
 *     happens to the file.  Reads and writes.
 *
 *   - Lower (base) files opened by execve or for the ELF interpreter (the
 *     kernel's __FMODE_EXEC in the open flags).  A passthrough handle cannot
 *     be moved to the upper copy, so it must not outlive a change of the
 *     data.  While a file is executed the kernel refuses every writer of the
 *     FUSE inode (ETXTBSY: open for writing, truncate), before the daemon
 *     sees anything, and the interpreter's handle is closed once it is
 *     mapped (its mapping then reads the base file as on kernel overlayfs).
 *     What is left are instants: a writer that opened before the exec's
 *     deny_write_access (the exec then fails), a release still on its way
 *     to the daemon.  route_write_begin covers them: a write to the node
 *     waits until no handle reads a lower copy, and an exec open that comes
 *     while a write open is in progress goes through the daemon.
 *     Copy-ups for metadata only (chmod, chown, utimes, xattrs, link) do
 *     not change the data: the lower backing file stays valid, and new
 *     opens of the (now upper) inode get the same backing file, as the
 *     kernel requires while the inode is in passthrough.
 *
 *   - Plain opens of a lower file: through the daemon.  A read-only
 *     descriptor opened before a copy-up must read what is written after
 *     it (tests/posix-ops-io.c, test_stale_fd); the daemon's handle reopens
 *     itself in the upper (cowfs-ops-file.c), a passthrough handle could
 *     not.  While the inode is in passthrough on its lower file (a program
 *     runs from it: the exec's handle lives as long as the program, the
 *     interpreter's until it is loaded) the kernel accepts nothing else:
 *     such an open waits ROUTE_JOIN_WAIT_MS for the release of a program
 *     that just exited, then shares that backing file.  A write then waits
 *     for it to close (route_write_begin), and gives ETXTBSY if it stays
 *     open past ROUTE_BUSY_WAIT_MS, as it would while the program runs.
 *
 *   - Read-only opens of a lower file with share_base=1 (opt-in): in
 *     passthrough on the lower file, so every mount of one base shares its
 *     page cache (the dynamic loader maps libraries through plain opens).
 *     The price is test_stale_fd's promise: such a handle cannot follow a
 *     copy-up, so no copy-up of the data happens while one is open (or a
 *     mapping made from it lives: the kernel releases the FUSE file at the
 *     last munmap).  A write open or truncate waits in route_write_begin,
 *     as for an exec's handle, and gets ETXTBSY if a reader stays past
 *     ROUTE_BUSY_WAIT_MS: never a stale read, never a copy-up left behind.
 *     A rename over the file (how dpkg replaces it) copies nothing up and
 *     is unaffected; fresh opens find the new file.  Such opens join a
 *     lower backing file without ROUTE_JOIN_WAIT_MS: they are readers like
 *     the handle they join.
 *
 *   - Limits: a byte quota and write pacing must see every write, read
 *     pacing every read.  With a byte quota or write pacing, upper files go
 *     through the daemon for reading too: the inode has one mode, and a
 *     reader in passthrough would force a later writer into passthrough.
 *     With read pacing nothing is in passthrough.  quota_inodes counts
 *     names, made by the daemon in any case.
 *
 *   - Partial files (cowfs-partial.h: a lazy copy-up, a store-backed file):
 *     always through the daemon.  The upper file holds holes where the
 *     data is still the source's, so the kernel reading it directly would
 *     read zeros, and a write must copy its block in first.  A file turns
 *     partial in a write open (a copy-up, after route_write_begin waited
 *     for every passthrough handle on the lower copy) or in
 *     partial_adopt_store, which refuses while any passthrough handle is
 *     open and marks the node under its io lock, so route_attach (which
 *     asks the policy under that lock) sends every later open to the
 *     daemon.
 *
 * Later "must go through the daemon" cases belong in route_policy. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <time.h>

#include <linux/fuse.h>
#include <stdint.h>

/* Kernel ABI (include/uapi/linux/fuse.h, Linux 6.9), missing from older
 * kernel headers such as Debian 12's.  Used on the session's /dev/fuse
 * descriptor, which also serves a release whose request is gone. */
#ifndef FUSE_DEV_IOC_BACKING_OPEN
struct fuse_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define FUSE_DEV_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct fuse_backing_map)
#define FUSE_DEV_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)
#endif

#include "cowfs-partial.h"
#include "cowfs-route.h"
#include "log.h"

/* How long a write waits for passthrough handles on a lower copy to close:
 * a release on its way takes milliseconds, a file held open much longer is
 * busy. */
#define ROUTE_BUSY_WAIT_MS 2000
/* How long another open waits for an exec's handle on a lower copy to close
 * before sharing it: long enough for the release of a program that just
 * exited to arrive, short because a running program holds it for its life. */
#define ROUTE_JOIN_WAIT_MS 200

enum route_kind route_policy(const struct cowfs *fs, int layer, int flags, bool tmpfile, bool partial,
			     const char **why)
{
	if (!fs->passthrough) {
		*why = "passthrough is off";
		return ROUTE_DAEMON;
	}
	if (tmpfile) {
		/* cowfs-loop.c answers FUSE_TMPFILE itself, without a backing id. */
		*why = "O_TMPFILE: answered without passthrough";
		return ROUTE_DAEMON;
	}
	if (partial) {
		/* Its upper file has holes where the source's data is: the
		 * kernel reading it would see zeros there, and a write into
		 * a source block must first copy the block in. */
		*why = "partial file: unwritten ranges read from its source, writes copy blocks in";
		return ROUTE_DAEMON;
	}
	if (fs->read_bps.per_second || fs->read_iops.per_second) {
		*why = "read pacing: the daemon paces every read";
		return ROUTE_DAEMON;
	}
	if (layer > 0) {
		if (flags & COWFS_FMODE_EXEC) {
			*why = "exec of a lower file: the kernel refuses writers while it runs";
			return ROUTE_PASSTHROUGH;
		}
		if (fs->share_base && (flags & O_ACCMODE) == O_RDONLY && !(flags & O_TRUNC)) {
			*why = "share_base: read-only open of a lower file; writers wait for it, then get ETXTBSY";
			return ROUTE_PASSTHROUGH;
		}
		*why = "lower file: a copy-up would leave a passthrough handle on the stale copy";
		return ROUTE_DAEMON;
	}
	if (fs->quota_bytes || fs->write_bps.per_second || fs->write_iops.per_second) {
		*why = "byte quota or write pacing: the daemon counts every write";
		return ROUTE_DAEMON;
	}
	*why = "upper file";
	return ROUTE_PASSTHROUGH;
}

static void deadline_in(struct timespec *t, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

static unsigned io_stripe(const struct cowfs_node *n)
{
	return (unsigned)(((uintptr_t)n >> 6) % COWFS_IO_STRIPES);
}

void route_init(struct cowfs *fs)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	for (int i = 0; i < COWFS_IO_STRIPES; i++) {
		pthread_mutex_init(&fs->io_lock[i], NULL);
		pthread_cond_init(&fs->io_cond[i], &ca);
	}
	pthread_condattr_destroy(&ca);
}

/* Registers fd's file as a backing file: its id, or 0. */
static int backing_open(struct cowfs *fs, int fd)
{
#ifdef HAVE_FUSE_PASSTHROUGH
	struct fuse_backing_map map = { .fd = fd };
	int id = ioctl(fuse_session_fd(fs->se), FUSE_DEV_IOC_BACKING_OPEN, &map);
	return id > 0 ? id : 0;
#else
	(void)fs;
	(void)fd;
	return 0;
#endif
}

static void backing_close(struct cowfs *fs, int id)
{
#ifdef HAVE_FUSE_PASSTHROUGH
	ioctl(fuse_session_fd(fs->se), FUSE_DEV_IOC_BACKING_CLOSE, &id);
#else
	(void)fs;
	(void)id;
#endif
}

void route_attach(struct cowfs *fs, struct cowfs_node *n, int fd, int layer, int flags, bool tmpfile,
		  struct fuse_file_info *fi, bool *ret_pt)
{
	const char *why;
	struct cowfs_io *io = &n->io;
	unsigned s = io_stripe(n);
	bool pt = false;

	pthread_mutex_lock(&fs->io_lock[s]);
	/* Asked under the io lock: partial_adopt_store turns a node partial
	 * under it. */
	enum route_kind want = route_policy(fs, layer, flags, tmpfile, node_is_partial(n), &why);
	/* Only an open the policy puts in passthrough on a lower copy anyway
	 * (an exec: the kernel keeps writers out while it runs; a read-only
	 * open with share_base: writers wait for it by design) may join a
	 * passthrough handle on a lower copy without delay.  Anything else
	 * holds off the next write until it closes, so it first gives the
	 * release of a program that just exited the time to arrive. */
	if (io->pt > 0 && io->pt_layer > 0 && !(want == ROUTE_PASSTHROUGH && layer > 0)) {
		struct timespec deadline;
		deadline_in(&deadline, ROUTE_JOIN_WAIT_MS);
		while (io->pt > 0 && io->pt_layer > 0 &&
		       pthread_cond_timedwait(&fs->io_cond[s], &fs->io_lock[s], &deadline) != ETIMEDOUT)
			;
	}
	if (io->pt > 0) {
		/* The kernel takes nothing but this backing file now.  It
		 * holds this file's data: writes wait until no handle reads a
		 * lower copy (route_write_begin), so a lower backing file
		 * survives only copy-ups of metadata. */
		if (want == ROUTE_DAEMON)
			why = "inode in passthrough already: the kernel accepts no other mode";
		pt = true;
		io->pt++;
#ifdef HAVE_FUSE_PASSTHROUGH
		fi->backing_id = io->pt_id;
#endif
	} else if (want == ROUTE_PASSTHROUGH && io->cached > 0) {
		why = "handles in the page cache are open: the kernel refuses passthrough beside them";
	} else if (want == ROUTE_PASSTHROUGH && layer > 0 && io->writers > 0) {
		why = "a write is being opened: a lower backing file would go stale";
	} else if (want == ROUTE_PASSTHROUGH) {
		int id = backing_open(fs, fd);
		if (id > 0) {
			pt = true;
			io->pt = 1;
			io->pt_id = id;
			io->pt_layer = layer;
#ifdef HAVE_FUSE_PASSTHROUGH
			fi->backing_id = id;
#endif
		} else {
			why = "the kernel refused the backing file";
		}
	}
	if (pt) {
		/* Refused by the kernel with passthrough. */
		fi->keep_cache = 0;
	} else {
		/* Every change to the data made while the inode is cached goes
		 * through this mount: the page cache stays valid across opens,
		 * unless passthrough handles wrote beside it since. */
		fi->keep_cache = io->cached > 0 || !io->cache_stale;
		io->cache_stale = false;
		io->cached++;
	}
	pthread_mutex_unlock(&fs->io_lock[s]);
	log_debug("open of inode %llu (layer %d, flags 0%o): %s, %s", (unsigned long long)n->st_ino, layer,
		  (unsigned)flags, pt ? "passthrough" : "daemon", why);
	*ret_pt = pt;
}

void route_detach(struct cowfs *fs, struct cowfs_node *n, bool pt)
{
	struct cowfs_io *io = &n->io;
	unsigned s = io_stripe(n);
	int close_id = 0;

	pthread_mutex_lock(&fs->io_lock[s]);
	if (!pt) {
		io->cached--;
	} else if (--io->pt == 0) {
		close_id = io->pt_id;
		io->pt_id = 0;
		/* The kernel dropped the page cache at the passthrough open;
		 * be sure nothing read before it is trusted afterwards. */
		io->cache_stale = true;
		pthread_cond_broadcast(&fs->io_cond[s]);
	}
	pthread_mutex_unlock(&fs->io_lock[s]);
	log_debug("release of inode %llu: %s, %u in passthrough, %u cached", (unsigned long long)n->st_ino,
		  pt ? "passthrough" : "daemon", io->pt, io->cached);
	/* The kernel released the inode's backing file with its last
	 * passthrough handle, before this release was sent. */
	if (close_id)
		backing_close(fs, close_id);
}

void route_io_lock(struct cowfs *fs, struct cowfs_node *n)
{
	pthread_mutex_lock(&fs->io_lock[io_stripe(n)]);
}

void route_io_unlock(struct cowfs *fs, struct cowfs_node *n)
{
	pthread_mutex_unlock(&fs->io_lock[io_stripe(n)]);
}

int route_write_begin(struct cowfs *fs, struct cowfs_node *n)
{
	struct cowfs_io *io = &n->io;
	unsigned s = io_stripe(n);
	struct timespec deadline;

	if (!fs->passthrough)
		return 0;
	deadline_in(&deadline, ROUTE_BUSY_WAIT_MS);
	pthread_mutex_lock(&fs->io_lock[s]);
	while (io->pt > 0 && io->pt_layer > 0) {
		if (pthread_cond_timedwait(&fs->io_cond[s], &fs->io_lock[s], &deadline) == ETIMEDOUT &&
		    io->pt > 0 && io->pt_layer > 0) {
			pthread_mutex_unlock(&fs->io_lock[s]);
			log_debug("write of inode %llu: its lower copy stays open in passthrough",
				  (unsigned long long)n->st_ino);
			return -ETXTBSY;
		}
	}
	io->writers++;
	pthread_mutex_unlock(&fs->io_lock[s]);
	return 0;
}

void route_write_end(struct cowfs *fs, struct cowfs_node *n)
{
	unsigned s = io_stripe(n);
	if (!fs->passthrough)
		return;
	pthread_mutex_lock(&fs->io_lock[s]);
	n->io.writers--;
	pthread_mutex_unlock(&fs->io_lock[s]);
}
