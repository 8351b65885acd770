/* Which way an open file's data goes: FUSE passthrough (the kernel reads
 * and writes the real file itself) or through the daemon.
 *
 * route_policy() is the one place that says, per open, whether the daemon
 * must see the data and why.  The rest keeps the kernel's rules: the kernel
 * holds ONE io mode per FUSE inode (fs/fuse/iomode.c):
 *   - while any handle of the inode is in passthrough, every new open must
 *     be passthrough on the SAME backing file (registered once; another
 *     backing id fails with EBUSY, a non-passthrough open, FOPEN_DIRECT_IO
 *     included, fails): the open(2) gets EIO;
 *   - while any handle is cached (page cache), a passthrough open fails
 *     (ETXTBSY, EIO to the caller);
 *   - FOPEN_KEEP_CACHE is refused together with FOPEN_PASSTHROUGH.
 * So the node records the mode cowfs has put its inode in (struct
 * cowfs_io) and every open is given a mode the kernel accepts: an open
 * never fails because of a mode, and never after a copy-up.
 *
 * Module cowfs (see cowfs.h). */
#ifndef COWFS_ROUTE_H
#define COWFS_ROUTE_H

#include "cowfs.h"

/* The kernel's __FMODE_EXEC open flag: set on the opens of execve and of
 * the ELF interpreter, never settable by open(2) (build_open_how() masks it
 * out), and passed on by FUSE in the FUSE_OPEN flags. */
#define COWFS_FMODE_EXEC 0x20

enum route_kind {
	ROUTE_DAEMON,	   /* reads and writes reach the daemon */
	ROUTE_PASSTHROUGH, /* the kernel does them on the real file */
};

/* What the daemon wants for an open of a file in `layer` (after any
 * copy-up) with open flags `flags` (tmpfile: an O_TMPFILE open; partial:
 * a partial file, cowfs-partial.h); *why says why, for the debug log. */
enum route_kind route_policy(const struct cowfs *fs, int layer, int flags, bool tmpfile, bool partial,
			     const char **why);

/* Chooses the mode of a new handle (policy, then what the inode's current
 * mode allows), records it in n->io and fills fi (backing_id,
 * keep_cache).  fd is the handle's real descriptor (registered as the
 * backing file on the first passthrough open).  *ret_pt says whether the
 * handle is in passthrough.  Never fails. */
void route_attach(struct cowfs *fs, struct cowfs_node *n, int fd, int layer, int flags, bool tmpfile,
		  struct fuse_file_info *fi, bool *ret_pt);
/* A handle attached with route_attach is gone (released, or its open
 * reply never reached the kernel). */
void route_detach(struct cowfs *fs, struct cowfs_node *n, bool pt);

/* Around anything that changes the data of n (a write open with its
 * copy-up, a truncate): waits until no passthrough handle reads a lower
 * copy of n, and keeps new ones from starting until route_write_end.
 * -ETXTBSY (nothing done) if they stay (see cowfs-route.c). */
int route_write_begin(struct cowfs *fs, struct cowfs_node *n);
void route_write_end(struct cowfs *fs, struct cowfs_node *n);

/* The node's io lock (a leaf), for partial_adopt_store: a node turned
 * partial under it gets no passthrough open after it. */
void route_io_lock(struct cowfs *fs, struct cowfs_node *n);
void route_io_unlock(struct cowfs *fs, struct cowfs_node *n);

void route_init(struct cowfs *fs);

#endif
