/* FUSE operations on open files: open, read, write, sync, fallocate,
 * lseek, copy_file_range, release. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "cowfs.h"
#include "cowfs-file.h"
#include "cowfs-partial.h"
#include "cowfs-route.h"
#include "cowfs-store.h"
#include "log.h"

int cowfs_real_open_flags(struct cowfs *fs, int flags)
{
	/* O_NOFOLLOW was applied by the kernel to the name; the real file is
	 * reopened through a /proc magic link, which it would refuse. */
	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT | O_NOFOLLOW | COWFS_FMODE_EXEC);
	if (fs->writeback) {
		/* The kernel may read pages of a write-only file to fill the
		 * cache, and it positions appends itself. */
		if ((flags & O_ACCMODE) == O_WRONLY)
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		flags &= ~O_APPEND;
	}
	return flags | O_CLOEXEC;
}

int cowfs_file_attach(struct cowfs *fs, struct cowfs_node *n, int fd, int layer, int flags, bool tmpfile,
		      struct fuse_file_info *fi)
{
	struct cowfs_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->node = n;
	node_ref(fs, n);
	atomic_store(&f->fd, fd);
	atomic_store(&f->layer, layer);
	f->open_flags = flags & ~COWFS_FMODE_EXEC;
	f->stale_fd = -1;
	f->writer = n->type == S_IFREG && (flags & O_ACCMODE) != O_RDONLY;
	if (f->writer)
		partial_writer_open(n);
	pthread_mutex_init(&f->lock, NULL);
	fi->fh = (uint64_t)(uintptr_t)f;
	route_attach(fs, n, fd, layer, flags, tmpfile, fi, &f->pt);
	return 0;
}

/* The handle's descriptor, reopened in the upper layer if the file was
 * copied up since the handle was opened. */
static int file_fd(struct cowfs *fs, struct cowfs_file *f)
{
	if (atomic_load(&f->layer) == 0 || !node_is_upper(f->node))
		return atomic_load(&f->fd);
	pthread_mutex_lock(&f->lock);
	if (atomic_load(&f->layer) != 0) {
		int fd = reopen_fd(fs, f->node->fds[0], f->open_flags);
		if (fd >= 0) {
			f->stale_fd = atomic_load(&f->fd);
			atomic_store(&f->fd, fd);
			atomic_store(&f->layer, 0);
		}
	}
	pthread_mutex_unlock(&f->lock);
	return atomic_load(&f->fd);
}

static int cowfs_file_upper_fd_of(struct cowfs *fs, struct cowfs_file *f)
{
	int fd = file_fd(fs, f);
	return atomic_load(&f->layer) == 0 ? fd : -1;
}

int cowfs_file_upper_fd(struct cowfs *fs, struct fuse_file_info *fi)
{
	struct cowfs_file *f = cowfs_file_of(fi);
	return f ? cowfs_file_upper_fd_of(fs, f) : -1;
}

/* Whether the kernel asked the daemon to clear setuid/setgid: it flags a
 * caller without CAP_FSETID (KILLPRIV_V2 only). */
static bool asks_kill_suidgid(const struct cowfs *fs, const struct fuse_file_info *fi)
{
#if defined(FUSE_CAP_HANDLE_KILLPRIV_V2) && defined(HAVE_FUSE_KILL_SUIDGID)
	return fs->killpriv_v2 && fi->kill_suidgid;
#else
	(void)fs;
	(void)fi;
	return false;
#endif
}

/* An open with O_TRUNC clears setuid/setgid like a truncation.  The kernel
 * leaves it to the daemon: with KILLPRIV_V2 it says whether the caller has
 * CAP_FSETID; without, it drops the bits it computed (atomic O_TRUNC sends
 * no SETATTR), so the caller is looked at here. */
static int open_trunc_kill_suidgid(fuse_req_t req, struct cowfs *fs, struct cowfs_node *n, int fd,
				   struct fuse_file_info *fi)
{
	if (fs->killpriv_v2 && !asks_kill_suidgid(fs, fi))
		return 0;
	int r = cowfs_kill_suidgid(req, fs, n, fd, !fs->killpriv_v2);
	if (r > 0)
		/* No reply to OPEN carries attributes: the kernel would keep
		 * showing the bits it cached. */
		fuse_lowlevel_notify_inval_inode(fs->se, (fuse_ino_t)(uintptr_t)n, -1, 0);
	return r < 0 ? r : 0;
}

static bool wants_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_node *n = cowfs_node_of(fs, ino);
	bool writing = wants_write(fi->flags);

	if (writing) {
		/* Before the copy-up: an open refused for a busy lower copy
		 * must leave nothing behind. */
		int r = route_write_begin(fs, n);
		if (r == 0) {
			r = copy_up(fs, n, (fi->flags & O_TRUNC) ? COPY_UP_NO_DATA : COPY_UP_DATA);
			if (r < 0)
				route_write_end(fs, n);
		}
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
	}
	int layer = node_layer(n);
	int flags = cowfs_real_open_flags(fs, fi->flags);
	int fd;
	/* Before the route is chosen: a partial file goes to the daemon. */
	if (layer == 0 && n->type == S_IFREG) {
		int r = partial_load(fs, n);
		if (r < 0) {
			if (writing)
				route_write_end(fs, n);
			fuse_reply_err(req, -r);
			return;
		}
	}
	if (fs->quota_bytes && (flags & O_TRUNC)) {
		/* The truncation frees the file's blocks. */
		struct stat before, after;
		pthread_mutex_lock(&n->lock);
		bool measured = layer_stat_fd(n->fds[layer], &before) == 0;
		fd = reopen_fd(fs, n->fds[layer], flags);
		if (fd >= 0 && measured && fstat(fd, &after) == 0)
			quota_charge_blocks(fs, n, before.st_blocks, after.st_blocks, 0);
		pthread_mutex_unlock(&n->lock);
	} else {
		fd = reopen_fd(fs, n->fds[layer], flags);
	}
	int r = fd;
	if (fd >= 0 && (flags & O_TRUNC) && layer == 0 && node_is_partial(n)) {
		/* Emptied: nothing reads from the source any more. */
		r = partial_truncate(fs, n, fd, 0);
		if (r < 0)
			close(fd);
	}
	if (r >= 0 && (flags & O_TRUNC)) {
		r = open_trunc_kill_suidgid(req, fs, n, fd, fi);
		if (r < 0)
			close(fd);
	}
	if (r >= 0) {
		/* The kernel's exec flag decides the route; the real file is
		 * opened without it. */
		r = cowfs_file_attach(fs, n, fd, layer, (flags & ~O_TRUNC) | (fi->flags & COWFS_FMODE_EXEC), false,
				      fi);
		if (r < 0)
			close(fd);
	}
	if (writing)
		route_write_end(fs, n);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (fuse_reply_open(req, fi) != 0) {
		/* Interrupted: the kernel will not send a release. */
		cowfs_file_drop(fs, cowfs_file_of(fi));
	}
}

void cowfs_file_drop(struct cowfs *fs, struct cowfs_file *f)
{
	struct cowfs_node *n = f->node;
	route_detach(fs, n, f->pt);
	if (f->writer) {
		partial_writer_close(n);
		if (atomic_load(&n->writers_open) == 0 && node_is_upper(n)) {
			/* The last writer: the record catches up with its
			 * writes (cowfs-partial.h), and the store may take the
			 * file once it stays idle. */
			int fd = cowfs_file_upper_fd_of(fs, f);
			int r = fd >= 0 ? partial_sync(fs, n, fd) : 0;
			if (r < 0)
				log_error("partial file (inode %llu): record at release: %s",
					  (unsigned long long)n->st_ino, strerror(-r));
			if (fs->store_enabled)
				cowfs_store_file_idle(fs, n);
		}
	}
	close(atomic_load(&f->fd));
	if (f->stale_fd >= 0)
		close(f->stale_fd);
	node_unref(fs, f->node, 1);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_file *f = cowfs_file_of(fi);
	(void)ino;
	cowfs_file_drop(fs, f);
	fuse_reply_err(req, 0);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	(void)ino;
	struct cowfs_file *f = cowfs_file_of(fi);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = file_fd(fs, f);
	buf.buf[0].pos = off;
	throttle_io(fs, false, size);
	if (atomic_load(&f->layer) == 0 && node_is_partial(f->node)) {
		/* Pieced together from the source and the upper: no splice. */
		cleanup_free char *data = malloc(size ? size : 1);
		ssize_t n = data ? partial_pread(fs, f->node, buf.buf[0].fd, data, size, off) : -ENOMEM;
		if (n < 0)
			fuse_reply_err(req, (int)-n);
		else
			fuse_reply_buf(req, data, (size_t)n);
		return;
	}
	/* Spliced straight from the real file when the kernel allows it. */
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

/* With a disk quota, a change to a file's blocks is measured: st_blocks
 * before, the change, st_blocks after, all under node->lock so that
 * concurrent writers to one file do not count each other's blocks.  What
 * the change may allocate is reserved first; the reservation is then
 * corrected to what st_blocks says was really allocated. */
struct quota_op {
	struct cowfs_node *node; /* locked; NULL when no quota */
	struct stat before;
	int64_t reserved;
};

static int quota_begin(struct cowfs *fs, struct cowfs_node *n, int fd, off_t off, off_t len, bool allocates,
		       struct quota_op *q)
{
	q->node = NULL;
	q->reserved = 0;
	if (!fs->quota_bytes)
		return 0;
	pthread_mutex_lock(&n->lock);
	if (fstat(fd, &q->before) < 0) {
		int r = -errno;
		pthread_mutex_unlock(&n->lock);
		return r;
	}
	if (allocates && node_is_partial(n) && len > 0) {
		/* A write into a source block copies the whole block in. */
		off_t end = off + len;
		off -= off % PARTIAL_BLOCK;
		end += (PARTIAL_BLOCK - end % PARTIAL_BLOCK) % PARTIAL_BLOCK;
		len = end - off;
	}
	int64_t need = allocates ? quota_may_allocate(fd, off, len, q->before.st_blksize) : 0;
	int r = quota_reserve(fs, need);
	if (r < 0) {
		pthread_mutex_unlock(&n->lock);
		return r;
	}
	q->reserved = need;
	q->node = n;
	return 0;
}

static void quota_end(struct cowfs *fs, int fd, struct quota_op *q)
{
	struct stat after;
	if (!q->node)
		return;
	/* If the file cannot be measured, the reservation stands: counting
	 * too much is corrected at the next mount, too little never. */
	if (fstat(fd, &after) == 0)
		quota_charge_blocks(fs, q->node, q->before.st_blocks, after.st_blocks, q->reserved);
	pthread_mutex_unlock(&q->node->lock);
}

/* With the writeback cache the kernel owns mtime: it sends it by SETATTR,
 * and a WRITE flushed after that must not move the stored mtime again. */
struct kept_mtime {
	bool valid;
	struct timespec mtime;
};

static void mtime_keep(struct cowfs *fs, int fd, struct kept_mtime *k, const struct stat *known)
{
	struct stat st;
	k->valid = false;
	if (!fs->writeback)
		return;
	if (!known) {
		if (fstat(fd, &st) < 0)
			return;
		known = &st;
	}
	k->mtime = known->st_mtim;
	k->valid = true;
}

static void mtime_restore(int fd, const struct kept_mtime *k)
{
	if (k->valid) {
		struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, k->mtime };
		futimens(fd, ts);
	}
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	struct cowfs_file *f = cowfs_file_of(fi);
	(void)ino;
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = file_fd(fs, f);
	out.buf[0].pos = off;
	struct quota_op q;
	struct kept_mtime kept;
	throttle_io(fs, true, fuse_buf_size(in));
	if (asks_kill_suidgid(fs, fi)) {
		int k = cowfs_kill_suidgid(req, fs, f->node, out.buf[0].fd, false);
		if (k < 0) {
			fuse_reply_err(req, -k);
			return;
		}
	}
	int r = quota_begin(fs, f->node, out.buf[0].fd, off, (off_t)fuse_buf_size(in), true, &q);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	mtime_keep(fs, out.buf[0].fd, &kept, q.node ? &q.before : NULL);
	ssize_t n = partial_prepare_write(fs, f->node, out.buf[0].fd, off, (off_t)fuse_buf_size(in));
	if (n == 0)
		n = fuse_buf_copy(&out, in, 0);
	mtime_restore(out.buf[0].fd, &kept);
	quota_end(fs, out.buf[0].fd, &q);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_file *f = cowfs_file_of(fi);
	int fd = file_fd(fs, f);
	(void)ino;
	int r = datasync ? fdatasync(fd) : fsync(fd);
	r = r < 0 ? -errno : 0;
	/* What was synced must read back after a crash: the record too. */
	if (r == 0 && atomic_load(&f->layer) == 0)
		r = partial_sync(fs, f->node, fd);
	fuse_reply_err(req, -r);
}

/* A partial file before fallocate: a punch or zeroing makes its source
 * blocks private (whole ones as holes), a collapse or insert shifts data
 * and completes it first; allocating or unsharing changes no data. */
static int partial_fallocate_prepare(struct cowfs *fs, struct cowfs_node *n, int fd, int mode, off_t off,
				     off_t len)
{
	if (!node_is_partial(n)) {
		atomic_fetch_add(&n->write_gen, 1);
		return 0;
	}
	if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE))
		return partial_complete(fs, n, fd);
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return partial_prepare_punch(fs, n, fd, off, len);
	return 0;
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	int fd = cowfs_file_upper_fd(fs, fi);
	(void)ino;
	if (fd < 0) {
		fuse_reply_err(req, EBADF);
		return;
	}
	/* Punching a hole frees; every other mode may allocate the holes of
	 * the range (zero-range and insert-range included). */
	struct quota_op q;
	int r = quota_begin(fs, cowfs_file_of(fi)->node, fd, off, len, !(mode & FALLOC_FL_PUNCH_HOLE), &q);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct kept_mtime kept;
	mtime_keep(fs, fd, &kept, NULL);
	r = partial_fallocate_prepare(fs, cowfs_file_of(fi)->node, fd, mode, off, len);
	if (r == 0)
		r = fallocate(fd, mode, off, len) < 0 ? -errno : 0;
	mtime_restore(fd, &kept);
	quota_end(fs, fd, &q);
	fuse_reply_err(req, -r);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_file *f = cowfs_file_of(fi);
	int fd = file_fd(fs, f);
	(void)ino;
	if ((whence == SEEK_DATA || whence == SEEK_HOLE) && atomic_load(&f->layer) == 0 &&
	    node_is_partial(f->node)) {
		/* The upper's holes may be the source's data: all of it is
		 * data, as far as this says. */
		struct stat st;
		if (fstat(fd, &st) < 0) {
			fuse_reply_err(req, errno);
			return;
		}
		if (off < 0 || off >= st.st_size)
			fuse_reply_err(req, ENXIO);
		else
			fuse_reply_lseek(req, whence == SEEK_DATA ? off : st.st_size);
		return;
	}
	off_t r = lseek(fd, off, whence);
	if (r < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, r);
}

/* copy_file_range with a partial side: through the daemon's buffer, each
 * side read and written as the tenant sees it. */
static ssize_t partial_copy_range(struct cowfs *fs, struct cowfs_file *fin, int in, off_t off_in,
				  struct cowfs_node *nout, int out, off_t off_out, size_t len)
{
	size_t chunk = len < (1u << 20) ? len : (1u << 20);
	cleanup_free char *buf = malloc(chunk ? chunk : 1);
	if (!buf)
		return -ENOMEM;
	size_t done = 0;
	while (done < len) {
		size_t want = len - done < chunk ? len - done : chunk;
		ssize_t got = atomic_load(&fin->layer) == 0 ? partial_pread(fs, fin->node, in, buf, want, off_in + (off_t)done)
							   : pread(in, buf, want, off_in + (off_t)done);
		if (got < 0 && atomic_load(&fin->layer) != 0)
			got = -errno;
		if (got <= 0) {
			if (done)
				break;
			return got;
		}
		int r = partial_prepare_write(fs, nout, out, off_out + (off_t)done, got);
		ssize_t w = r < 0 ? r : pwrite(out, buf, (size_t)got, off_out + (off_t)done);
		if (w < 0 && r == 0)
			w = -errno;
		if (w <= 0)
			return done ? (ssize_t)done : (w < 0 ? w : -EIO);
		done += (size_t)w;
		if (w < got)
			break;
	}
	return (ssize_t)done;
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct cowfs *fs = cowfs_from_req(req);
	int in = file_fd(fs, cowfs_file_of(fi_in));
	int out = cowfs_file_upper_fd(fs, fi_out);
	(void)ino_in;
	(void)ino_out;
	if (out < 0) {
		fuse_reply_err(req, EBADF);
		return;
	}
	struct quota_op q;
	int r = quota_begin(fs, cowfs_file_of(fi_out)->node, out, off_out, (off_t)len, true, &q);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct kept_mtime kept;
	mtime_keep(fs, out, &kept, NULL);
	struct cowfs_file *fin = cowfs_file_of(fi_in), *fout = cowfs_file_of(fi_out);
	ssize_t n;
	if ((atomic_load(&fin->layer) == 0 && node_is_partial(fin->node)) || node_is_partial(fout->node))
		n = partial_copy_range(fs, fin, in, off_in, fout->node, out, off_out, len);
	else if ((n = partial_prepare_write(fs, fout->node, out, off_out, (off_t)len)) == 0 &&
		 (n = copy_file_range(in, &off_in, out, &off_out, len, flags)) < 0)
		n = -errno;
	mtime_restore(out, &kept);
	quota_end(fs, out, &q);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

void cowfs_ops_file(struct fuse_lowlevel_ops *ops)
{
	ops->open = op_open;
	ops->release = op_release;
	ops->read = op_read;
	ops->write_buf = op_write_buf;
	/* No flush: locks are kept by the kernel and data is written
	 * through, so there is nothing to do on close; leaving it out makes
	 * the kernel stop sending FLUSH (one round trip per close). */
	ops->fsync = op_fsync;
	ops->fallocate = op_fallocate;
	ops->lseek = op_lseek;
	ops->copy_file_range = op_copy_file_range;
}
