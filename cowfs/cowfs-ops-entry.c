/* FUSE operations on single inodes: lookup, forget, attributes, readlink,
 * statfs. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cleanup.h"
#include "cowfs.h"
#include "cowfs-file.h"
#include "cowfs-partial.h"
#include "cowfs-route.h"

void cowfs_reply_entry(fuse_req_t req, struct cowfs *fs, struct cowfs_node *n, const struct stat *st)
{
	struct fuse_entry_param e = {
		.ino = (fuse_ino_t)(uintptr_t)n,
		.attr = *st,
		.attr_timeout = fs->attr_timeout,
		.entry_timeout = fs->entry_timeout,
	};
	if (fuse_reply_entry(req, &e) != 0)
		node_unref(fs, n, 1); /* the kernel never saw it: no forget will come */
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_node *dir = cowfs_node_of(fs, parent), *n;
	struct stat st;

	if (strlen(name) > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	int r = cowfs_lookup_child(fs, dir, name, &n, &st);
	if (r == -ENOENT) {
		/* A negative entry: the kernel caches the absence, which is
		 * safe because every change goes through this mount. */
		struct fuse_entry_param e = { .ino = 0, .entry_timeout = fs->entry_timeout };
		fuse_reply_entry(req, &e);
		return;
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	cowfs_reply_entry(req, fs, n, &st);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct cowfs *fs = cowfs_from_req(req);
	node_unref(fs, cowfs_node_of(fs, ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct cowfs *fs = cowfs_from_req(req);
	for (size_t i = 0; i < count; i++)
		node_unref(fs, cowfs_node_of(fs, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct stat st;
	int r = cowfs_node_stat(fs, cowfs_node_of(fs, ino), &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, fs->attr_timeout);
}

static struct timespec attr_time(const struct stat *attr, int to_set, int set_flag, int now_flag,
				 bool is_mtime)
{
	if (to_set & now_flag)
		return (struct timespec){ .tv_nsec = UTIME_NOW };
	if (to_set & set_flag)
		return is_mtime ? attr->st_mtim : attr->st_atim;
	return (struct timespec){ .tv_nsec = UTIME_OMIT };
}

static int set_times(struct cowfs_node *n, int fd, const struct timespec ts[2])
{
	char path[64];
	if (fd >= 0)
		return futimens(fd, ts) < 0 ? -errno : 0;
	if (utimensat(node_fd(n), "", ts, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != EINVAL || n->type == S_IFLNK)
		return -errno;
	fd_path(path, node_fd(n));
	return utimensat(AT_FDCWD, path, ts, 0) < 0 ? -errno : 0;
}

static int do_setattr(fuse_req_t req, struct cowfs *fs, struct cowfs_node *n, const struct stat *attr,
		      int to_set, struct fuse_file_info *fi)
{
	char path[64];
	/* ctime alone cannot be set on the real file; the kernel sends it
	 * with the writeback cache (e.g. after unlink).  Nothing to change,
	 * so nothing to copy up. */
	const int settable = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE |
			     FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
			     FUSE_SET_ATTR_MTIME_NOW;
	/* A SETATTR with nothing to set is what is left of the kernel's
	 * file_remove_privs() once it stripped the kill bits: with
	 * KILLPRIV_V2 for a write the daemon does not see (passthrough);
	 * without, when its own older rule found nothing to clear (setgid
	 * without group execute).  Clear what a local filesystem would for
	 * this caller. */
	if (to_set == 0 && n->type == S_IFREG && node_is_upper(n)) {
		int k = cowfs_kill_suidgid(req, fs, n, fi ? cowfs_file_upper_fd(fs, fi) : -1, true);
		return k < 0 ? k : 0;
	}
	if (!(to_set & settable))
		return 0;
	bool truncating_to_zero = (to_set & FUSE_SET_ATTR_SIZE) && attr->st_size == 0 &&
				  (to_set & settable) == FUSE_SET_ATTR_SIZE;
	int r = copy_up(fs, n, truncating_to_zero ? COPY_UP_NO_DATA : COPY_UP_DATA);
	if (r < 0)
		return r;

	/* An open handle is used only if it refers to the upper copy. */
	int fd = fi ? cowfs_file_upper_fd(fs, fi) : -1;
	fd_path(path, node_fd(n));

	if (to_set & FUSE_SET_ATTR_MODE) {
		if (n->type == S_IFLNK)
			return -EOPNOTSUPP;
		r = fd >= 0 ? fchmod(fd, attr->st_mode) : chmod(path, attr->st_mode);
		if (r < 0)
			return -errno;
	}
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (uid_t)-1;
		gid_t gid = (gid_t)-1;
		if ((to_set & FUSE_SET_ATTR_UID) && idshift_store_uid(fs, attr->st_uid, &uid) < 0)
			return -EINVAL;
		if ((to_set & FUSE_SET_ATTR_GID) && idshift_store_gid(fs, attr->st_gid, &gid) < 0)
			return -EINVAL;
		if (fchownat(node_fd(n), "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (n->type != S_IFREG)
			return n->type == S_IFDIR ? -EISDIR : -EINVAL;
		/* Shrinking frees blocks.  With a quota, measured under
		 * node->lock like a write (cowfs-ops-file.c). */
		/* A truncation clears setuid/setgid for a caller without
		 * CAP_FSETID (cowfs-killpriv.c): with KILLPRIV_V2 the kernel
		 * flags it (FATTR_KILL_SUIDGID); without, the kernel's FUSE code
		 * knows only the older rule, so the caller is looked at here. */
		if (!fs->killpriv_v2 || (to_set & FUSE_SET_ATTR_KILL_SUID)) {
			r = cowfs_kill_suidgid(req, fs, n, fd, !fs->killpriv_v2);
			if (r < 0)
				return r;
		}
		/* A partial file's record follows its size (cowfs-partial.c):
		 * loaded first, truncated through a descriptor. */
		r = partial_load(fs, n);
		if (r < 0)
			return r;
		cleanup_close int own_fd = -1;
		if (fd < 0) {
			own_fd = reopen_fd(fs, node_fd(n), O_WRONLY);
			if (own_fd < 0)
				return own_fd;
		}
		struct stat before, after;
		if (fs->quota_bytes)
			pthread_mutex_lock(&n->lock);
		bool counted = fs->quota_bytes && layer_stat_fd(node_fd(n), &before) == 0;
		r = partial_truncate(fs, n, fd >= 0 ? fd : own_fd, attr->st_size);
		if (r == 0 && counted && layer_stat_fd(node_fd(n), &after) == 0)
			quota_charge_blocks(fs, n, before.st_blocks, after.st_blocks, 0);
		if (fs->quota_bytes)
			pthread_mutex_unlock(&n->lock);
		if (r < 0)
			return r;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
		      FUSE_SET_ATTR_MTIME_NOW)) {
		struct timespec ts[2] = {
			attr_time(attr, to_set, FUSE_SET_ATTR_ATIME, FUSE_SET_ATTR_ATIME_NOW, false),
			attr_time(attr, to_set, FUSE_SET_ATTR_MTIME, FUSE_SET_ATTR_MTIME_NOW, true),
		};
		r = set_times(n, fd, ts);
		if (r < 0)
			return r;
	}
	return 0;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_node *n = cowfs_node_of(fs, ino);
	struct stat st;
	/* A size change is a write (cowfs-route.c): no passthrough handle
	 * may keep reading a lower copy it makes stale. */
	bool sizing = to_set & FUSE_SET_ATTR_SIZE;

	int r = sizing ? route_write_begin(fs, n) : 0;
	if (r == 0) {
		r = do_setattr(req, fs, n, attr, to_set, fi);
		if (sizing)
			route_write_end(fs, n);
	}
	if (r == 0)
		r = cowfs_node_stat(fs, n, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, fs->attr_timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct cowfs *fs = cowfs_from_req(req);
	char buf[PATH_MAX + 1];
	ssize_t len = readlinkat(node_fd(cowfs_node_of(fs, ino)), "", buf, sizeof(buf));
	if (len < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (len == sizeof(buf)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	buf[len] = '\0';
	fuse_reply_readlink(req, buf);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct statvfs sv;
	(void)ino;
	if (fstatvfs(fs->layers[0].root_fd, &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	/* With a quota, df shows the quota: size = limit, free = what is left
	 * (never more than the filesystem really has). */
	if (fs->quota_bytes) {
		uint64_t used = (uint64_t)(atomic_load(&fs->used_bytes) > 0 ? atomic_load(&fs->used_bytes) : 0);
		uint64_t left = used < fs->quota_bytes ? fs->quota_bytes - used : 0;
		fsblkcnt_t blocks = fs->quota_bytes / sv.f_frsize, avail = left / sv.f_frsize;
		sv.f_blocks = blocks;
		if (avail < sv.f_bavail)
			sv.f_bavail = avail;
		if (avail < sv.f_bfree)
			sv.f_bfree = avail;
	}
	if (fs->quota_inodes) {
		uint64_t used = (uint64_t)(atomic_load(&fs->used_inodes) > 0 ? atomic_load(&fs->used_inodes) : 0);
		uint64_t left = used < fs->quota_inodes ? fs->quota_inodes - used : 0;
		sv.f_files = fs->quota_inodes;
		if (left < sv.f_ffree)
			sv.f_ffree = left;
		if (left < sv.f_favail)
			sv.f_favail = left;
	}
	fuse_reply_statfs(req, &sv);
}

void cowfs_ops_entry(struct fuse_lowlevel_ops *ops)
{
	ops->lookup = op_lookup;
	ops->forget = op_forget;
	ops->forget_multi = op_forget_multi;
	ops->getattr = op_getattr;
	ops->setattr = op_setattr;
	ops->readlink = op_readlink;
	ops->statfs = op_statfs;
}
