/* FUSE operations on directories being read.
 *
 * A reader is served from a merged listing in cookie order: an offset is
 * the cookie of the last entry returned (under the listing's generation),
 * and the next read goes on after it (cowfs-dircookie.c).  The listing is built afresh when a read starts at
 * offset 0 (so rewinddir shows the directory as it is now), reused for the
 * following offsets, and dropped once the end is served.  As offsets do not
 * depend on the listing, a reader whose listing was dropped or replaced by
 * another reader's goes on in a fresh one, missing no name that existed
 * throughout and returning none twice.
 *
 * Where the kernel offers it (FUSE_CAP_NO_OPENDIR_SUPPORT), opendir answers
 * ENOSYS once and the kernel sends no OPENDIR and RELEASEDIR any more (two
 * of the four requests a directory read cost): the listing then belongs to
 * the directory's node, not to a handle.  The kernel also keeps the
 * contents of directories read this way in its cache (FOPEN_CACHE_DIR);
 * every change to a directory goes through this mount, and the kernel
 * drops that cache at each. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cowfs.h"

/* The listing of an open directory, or of a directory's node. */
struct cowfs_dir {
	pthread_mutex_t lock;	   /* one read at a time; outermost (cowfs.h) */
	struct cowfs_dirlist list; /* under lock */
	bool built;		   /* list holds a listing; under lock */
	uint64_t gen;		   /* list's generation, 1..GEN_MAX; under lock */
};

/* Generations fill the offset's bits above the cookie; offsets stay
 * positive. */
#define GEN_MAX ((UINT64_C(1) << (63 - DIRCOOKIE_BITS)) - 1)

static struct cowfs_dir *dir_new(void)
{
	struct cowfs_dir *d = calloc(1, sizeof(*d));
	if (d)
		pthread_mutex_init(&d->lock, NULL);
	return d;
}

void cowfs_dir_free(struct cowfs_dir *d)
{
	dirlist_release(&d->list);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* The listing to read n from: the handle's, or the node's (made here on
 * first use). */
static struct cowfs_dir *dir_for(struct cowfs_node *n, struct fuse_file_info *fi)
{
	if (fi && fi->fh)
		return (struct cowfs_dir *)(uintptr_t)fi->fh;
	struct cowfs_dir *d = atomic_load(&n->dir);
	if (d)
		return d;
	struct cowfs_dir *fresh = dir_new();
	if (!fresh)
		return NULL;
	if (atomic_compare_exchange_strong(&n->dir, &d, fresh))
		return fresh;
	cowfs_dir_free(fresh); /* another reader made it first */
	return d;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	(void)ino;
	if (fs->no_opendir) {
		/* With FUSE_CAP_NO_OPENDIR_SUPPORT: success, and no more
		 * OPENDIR or RELEASEDIR from this kernel. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	struct cowfs_dir *d = dir_new();
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0)
		cowfs_dir_free(d); /* interrupted: no RELEASEDIR will come */
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	if (fi->fh)
		cowfs_dir_free((struct cowfs_dir *)(uintptr_t)fi->fh);
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
	dirlist_sort_by_cookie(&l);
	dirlist_release(&d->list);
	d->list = l;
	d->built = true;
	d->gen = d->gen >= GEN_MAX ? 1 : d->gen + 1;
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi,
		       bool plus)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_node *dir = cowfs_node_of(fs, ino);
	struct cowfs_dir *h = dir_for(dir, fi);
	char *buf = h ? malloc(size) : NULL;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&h->lock);
	int err = -listing_for(fs, dir, h, off);
	size_t pos = 0;
	struct cowfs_dirlist *l = &h->list;
	size_t first = err ? 0 : dirlist_after_cookie(l, (uint64_t)off & DIRCOOKIE_MASK);
	uint64_t gen = h->gen << DIRCOOKIE_BITS;
	for (size_t i = first; err == 0 && i < l->count; i++) {
		struct cowfs_dirent *d = &l->entries[i];
		off_t next = (off_t)(gen | d->cookie);
		size_t used;
		if (!plus) {
			struct stat st = { .st_ino = d->ino, .st_mode = (mode_t)DTTOIF(d->type) };
			used = fuse_add_direntry(req, buf + pos, size - pos, d->name, &st, next);
		} else if (strcmp(d->name, ".") == 0 || strcmp(d->name, "..") == 0) {
			struct fuse_entry_param e = { .ino = 0 };
			e.attr.st_ino = d->ino;
			e.attr.st_mode = S_IFDIR;
			used = fuse_add_direntry_plus(req, buf + pos, size - pos, d->name, &e, next);
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
			used = fuse_add_direntry_plus(req, buf + pos, size - pos, d->name, &e, next);
			if (used > size - pos)
				node_unref(fs, n, 1); /* did not fit: not handed to the kernel */
		}
		if (used > size - pos)
			break;
		pos += used;
	}
	if (err == 0 && pos == 0) {
		/* End of directory: the reader is done with the listing (a
		 * directory kept open must not pin its memory).  Another
		 * reader still in it goes on in a fresh one. */
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

