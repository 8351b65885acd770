/* FUSE operations on open directories: a merged listing is built at
 * opendir (and again on rewind) and served from memory. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cowfs.h"

struct cowfs_dirhandle {
	struct cowfs_node *node;
	struct cowfs_dirlist list;
	pthread_mutex_t lock; /* readdir calls on one handle may overlap */
	bool served;	      /* some entries were returned since the build */
};

static struct cowfs_dirhandle *dirhandle_of(struct fuse_file_info *fi)
{
	return (struct cowfs_dirhandle *)(uintptr_t)fi->fh;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_dirhandle *h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->node = cowfs_node_of(fs, ino);
	int r = dirlist_build(fs, h->node, &h->list, true);
	if (r < 0) {
		free(h);
		fuse_reply_err(req, -r);
		return;
	}
	node_ref(fs, h->node);
	pthread_mutex_init(&h->lock, NULL);
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) != 0) {
		dirlist_release(&h->list);
		node_unref(fs, h->node, 1);
		free(h);
	}
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_dirhandle *h = dirhandle_of(fi);
	(void)ino;
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&h->lock);
	if (off == 0 && h->served) {
		/* rewinddir: show the directory as it is now. */
		struct cowfs_dirlist fresh;
		if (dirlist_build(fs, h->node, &fresh, true) == 0) {
			dirlist_release(&h->list);
			h->list = fresh;
		}
	}
	size_t pos = 0;
	int err = 0;
	for (size_t i = (size_t)off; i < h->list.count; i++) {
		struct cowfs_dirent *d = &h->list.entries[i];
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
			int r = cowfs_lookup_child(fs, h->node, d->name, &n, &e.attr);
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
	h->served = true;
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

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_dirhandle *h = dirhandle_of(fi);
	(void)ino;
	dirlist_release(&h->list);
	node_unref(fs, h->node, 1);
	pthread_mutex_destroy(&h->lock);
	free(h);
	fuse_reply_err(req, 0);
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
	ops->readdir = op_readdir;
	ops->readdirplus = op_readdirplus;
	ops->releasedir = op_releasedir;
	ops->fsyncdir = op_fsyncdir;
}
