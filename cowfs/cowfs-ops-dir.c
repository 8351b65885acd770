/* FUSE operations on directories being read.
 *
 * Each open directory (fi->fh) has its own merged listing, as libfuse's
 * passthrough_ll keeps a DIR per handle: built afresh when a read starts
 * at offset 0 (so rewinddir shows the directory as it is now), reused for
 * the following offsets, and dropped once the end is served.  Offsets are
 * indexes into that listing, so a reader is never disturbed by another
 * reader of the same directory rebuilding its own. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cowfs.h"

/* An open directory. */
struct cowfs_dir {
	pthread_mutex_t lock;	   /* one read at a time; outermost (cowfs.h) */
	struct cowfs_dirlist list; /* under lock */
	bool built;		   /* list holds a listing; under lock */
};

static struct cowfs_dir *dir_of(struct fuse_file_info *fi)
{
	return (struct cowfs_dir *)(uintptr_t)fi->fh;
}

static void dir_free(struct cowfs_dir *d)
{
	dirlist_release(&d->list);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct cowfs_dir *d = calloc(1, sizeof(*d));
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_init(&d->lock, NULL);
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0)
		dir_free(d); /* interrupted: no RELEASEDIR will come */
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	dir_free(dir_of(fi));
	fuse_reply_err(req, 0);
}

/* Makes d->list the listing to serve offset `off` from; holds d->lock. */
static int listing_for(struct cowfs *fs, struct cowfs_node *n, struct cowfs_dir *d, off_t off)
{
	if (off != 0 && d->built)
		return 0;
	struct cowfs_dirlist l = { 0 };
	int r = dirlist_build(fs, n, &l, true);
	if (r < 0)
		return r;
	dirlist_release(&d->list);
	d->list = l;
	d->built = true;
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi,
		       bool plus)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_node *dir = cowfs_node_of(fs, ino);
	struct cowfs_dir *h = dir_of(fi);
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&h->lock);
	int err = -listing_for(fs, dir, h, off);
	size_t pos = 0;
	struct cowfs_dirlist *l = &h->list;
	for (size_t i = (size_t)off; err == 0 && i < l->count; i++) {
		struct cowfs_dirent *d = &l->entries[i];
		size_t used;
		if (!plus) {
			struct stat st = { .st_ino = d->ino, .st_mode = (mode_t)DTTOIF(d->type) };
			used = fuse_add_direntry(req, buf + pos, size - pos, d->name, &st, (off_t)(i + 1));
		} else if (strcmp(d->name, ".") == 0 || strcmp(d->name, "..") == 0) {
			struct fuse_entry_param e = { .ino = 0 };
			e.attr.st_ino = d->ino;
			e.attr.st_mode = S_IFDIR;
			used = fuse_add_direntry_plus(req, buf + pos, size - pos, d->name, &e, (off_t)(i + 1));
		} else {
			struct cowfs_node *n;
			struct fuse_entry_param e = { .attr_timeout = fs->attr_timeout,
						      .entry_timeout = fs->entry_timeout };
			int r = cowfs_lookup_child(fs, dir, d->name, &n, &e.attr);
			if (r == -ENOENT)
				continue; /* removed since the listing was made */
			if (r < 0) {
				if (pos == 0)
					err = -r;
				break;
			}
			e.ino = (fuse_ino_t)(uintptr_t)n;
			used = fuse_add_direntry_plus(req, buf + pos, size - pos, d->name, &e, (off_t)(i + 1));
			if (used > size - pos)
				node_unref(fs, n, 1); /* did not fit: not handed to the kernel */
		}
		if (used > size - pos)
			break;
		pos += used;
	}
	if (err == 0 && pos == 0) {
		/* End of directory: the reader is done with the listing (a
		 * handle kept open must not pin its memory). */
		dirlist_release(&h->list);
		h->built = false;
	}
	pthread_mutex_unlock(&h->lock);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_node *n = cowfs_node_of(fs, ino);
	(void)fi;
	if (!node_is_upper(n)) {
		fuse_reply_err(req, 0); /* nothing of it is in the upper */
		return;
	}
	int fd = reopen_fd(fs, n->fds[0], O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	int r = datasync ? fdatasync(fd) : fsync(fd);
	int err = r < 0 ? errno : 0;
	close(fd);
	fuse_reply_err(req, err);
}

void cowfs_ops_dir(struct fuse_lowlevel_ops *ops)
{
	ops->opendir = op_opendir;
	ops->releasedir = op_releasedir;
	ops->readdir = op_readdir;
	ops->readdirplus = op_readdirplus;
	ops->fsyncdir = op_fsyncdir;
}

