/* Open file handles (fi->fh).
 *
 * A handle opened while its file was still in a lower layer keeps reading
 * correct data after another handle copies the file up: the read path
 * notices the node moved to the upper layer and reopens it there. */
#ifndef COWFS_FILE_H
#define COWFS_FILE_H

#include "cowfs.h"

struct cowfs_file {
	struct cowfs_node *node;	/* referenced for the handle's life */
	_Atomic int fd;			/* real descriptor serving reads/writes */
	_Atomic int layer;		/* layer fd belongs to */
	int open_flags;			/* flags fd was opened with */
	int stale_fd;			/* replaced lower fd, closed at release */
	pthread_mutex_t lock;		/* serializes the reopen; a leaf lock */
	bool pt;			/* in passthrough (cowfs-route.c): the kernel
					 * reads and writes the backing file itself */
	bool writer;			/* counted by partial_writer_open */
};

static inline struct cowfs_file *cowfs_file_of(struct fuse_file_info *fi)
{
	return (struct cowfs_file *)(uintptr_t)fi->fh;
}

/* Real flags for opening the upper/lower object behind a FUSE open. */
int cowfs_real_open_flags(struct cowfs *fs, int flags);
/* Allocates a handle owning fd; stores it in fi and chooses its route
 * (passthrough or the page cache, cowfs-route.c).  tmpfile: an O_TMPFILE,
 * whose reply carries no passthrough. */
int cowfs_file_attach(struct cowfs *fs, struct cowfs_node *n, int fd, int layer, int flags, bool tmpfile,
		      struct fuse_file_info *fi);
/* Closes and frees a handle (released, or never received by the kernel). */
void cowfs_file_drop(struct cowfs *fs, struct cowfs_file *f);
/* O_TMPFILE in `dir` for a caller (see cowfs-ops-namespace.c). */
int cowfs_make_tmpfile(struct cowfs *fs, struct cowfs_node *dir, mode_t mode, mode_t umask, uid_t caller_uid,
		       gid_t caller_gid, int open_flags, struct cowfs_node **ret_node, struct stat *ret_st,
		       struct cowfs_file **ret_file);
/* Clears setuid/setgid on the upper file behind n as a write by req's
 * caller would on a local filesystem (cowfs-killpriv.c).  fd: an open
 * descriptor of it, or -1.  check_caps: whether the caller's CAP_FSETID is
 * still to be checked (false: the kernel said the caller lacks it).
 * 1 if bits were cleared, 0 if there was nothing to clear, or -errno. */
int cowfs_kill_suidgid(fuse_req_t req, struct cowfs *fs, struct cowfs_node *n, int fd, bool check_caps);
/* The descriptor of an open handle if it refers to the upper copy, else -1. */
int cowfs_file_upper_fd(struct cowfs *fs, struct fuse_file_info *fi);

#endif
