/* FUSE operations that change the namespace: create, mknod, mkdir,
 * symlink, link, unlink, rmdir, rename.
 *
 * Each works on the upper layer only.  Removing a name that a lower layer
 * also shows leaves a whiteout; a directory created where a lower one was
 * deleted is made opaque.  With a work directory (on the upper fs), the
 * whiteout replaces the upper object atomically (RENAME_WHITEOUT), and an
 * object created over a whiteout appears complete, owner and opaque marker
 * included (built in the work dir, then exchanged with the whiteout, see
 * cowfs-stage.c); without one, the same steps run in place. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cleanup.h"
#include "cowfs.h"
#include "cowfs-file.h"

/* Makes `name` in `dir` ready to receive a new object: the dir is copied
 * up.  Fails with EEXIST if the name is visible; reports a whiteout in the
 * way, which the new object replaces atomically (cowfs-stage.c). */
static int prepare_new_name(struct cowfs *fs, struct cowfs_node *dir, const char *name,
			    bool *ret_was_whiteout)
{
	struct cowfs_name_state ns;
	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	int r = copy_up(fs, dir, COPY_UP_DATA);
	if (r < 0)
		return r;
	r = cowfs_name_state(fs, dir, name, &ns);
	if (r < 0)
		return r;
	if (ns.exists)
		return -EEXIST;
	r = quota_check(fs, 0, ns.upper_whiteout ? 0 : 1);
	if (r < 0)
		return r;
	*ret_was_whiteout = ns.upper_whiteout;
	return 0;
}

/* New objects are created by the daemon (root) and handed to the caller:
 * uid always, gid unless the directory is setgid (the fs, or the staging
 * directory standing in for it, already gave the directory's group).  By
 * descriptor: the name may be the tenant's to change. */
static int chown_to_caller(fuse_req_t req, struct cowfs *fs, int dirfd, int fd)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat dst;
	uid_t uid;
	gid_t gid;
	int r = layer_stat_fd(dirfd, &dst);
	if (r < 0)
		return r;
	/* A caller outside the shifted range (host root tending the
	 * container) creates files as the container's root. */
	if (idshift_store_uid(fs, ctx->uid, &uid) < 0)
		uid = 0;
	if (idshift_store_gid(fs, ctx->gid, &gid) < 0)
		gid = 0;
	if (dst.st_mode & S_ISGID)
		gid = (gid_t)-1;
	if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

/* The caller's umask applies unless the directory has a default ACL, in
 * which case the upper filesystem applies the ACL (as the kernel would). */
static bool dir_has_default_acl(int dirfd)
{
	char path[64];
	fd_path(path, dirfd);
	return getxattr(path, "system.posix_acl_default", NULL, 0) > 0;
}

static mode_t effective_mode(fuse_req_t req, int dirfd, mode_t mode)
{
	return dir_has_default_acl(dirfd) ? mode : mode & ~fuse_req_ctx(req)->umask;
}

/* What create, mknod, mkdir, symlink and link make. */
struct new_object {
	mode_t type;		/* S_IFMT bits */
	mode_t mode;		/* permission bits, umask applied */
	dev_t rdev;		/* mknod */
	const char *target;	/* symlink */
	int link_fd;		/* link: O_PATH on the upper object, else -1 */
	int open_flags;		/* create: the returned descriptor's flags */
};

static int make_object(const struct cowfs_stage *s, const struct new_object *o, int *ret_open_fd)
{
	int r = 0;
	if (o->link_fd >= 0)
		r = linkat(o->link_fd, "", s->dirfd, s->name, AT_EMPTY_PATH);
	else if (o->type == S_IFREG && o->open_flags >= 0) {
		r = openat(s->dirfd, s->name, o->open_flags | O_CREAT | O_EXCL, o->mode);
		if (r >= 0)
			*ret_open_fd = r;
	} else if (o->type == S_IFDIR)
		r = mkdirat(s->dirfd, s->name, o->mode);
	else if (o->type == S_IFLNK)
		r = symlinkat(o->target, s->dirfd, s->name);
	else
		r = mknodat(s->dirfd, s->name, o->type | o->mode, o->rdev);
	return r < 0 ? -errno : 0;
}

/* Creates `name` in `dir` for the caller and lists it as a node (one
 * reference in *ret).  Over a whiteout the object is built in the work
 * directory, with its owner and (directories) opaque marker, and only then
 * exchanged with the whiteout: a failure or crash at any step leaves the
 * whiteout, and with it the lower object hidden. */
static int create_object(fuse_req_t req, struct cowfs *fs, struct cowfs_node *dir, const char *name,
			 const struct new_object *o, struct fuse_entry_param *e, struct cowfs_node **ret,
			 int *ret_open_fd)
{
	struct cowfs_stage s;
	bool wh = false;
	/* A symlink's long target and a directory take a block: refused once
	 * the byte quota is full (what they took is charged below). */
	int r = 0;
	if (o->link_fd < 0 && o->type == S_IFLNK)
		r = quota_check(fs, (int64_t)strlen(o->target), 0);
	else if (o->link_fd < 0 && o->type == S_IFDIR)
		r = quota_check(fs, 1, 0);
	if (r == 0)
		r = prepare_new_name(fs, dir, name, &wh);
	if (r < 0)
		return r;
	enum stage_flags flags = STAGE_IN_PLACE;
	if (wh)
		flags = STAGE_OVER_WHITEOUT | (o->link_fd >= 0 ? 0 : STAGE_INHERIT);
	r = stage_begin(fs, &s, dir->fds[0], name, flags);
	if (r < 0)
		return r;
	cleanup_close int open_fd = -1;
	r = make_object(&s, o, &open_fd);
	s.built = r == 0;
	cleanup_close int fd = r == 0 ? stage_open(&s, o->type) : -1;
	if (r == 0 && fd < 0)
		r = fd;
	/* A directory replacing a whiteout hides what the lower layers had. */
	if (r == 0 && wh && o->type == S_IFDIR)
		r = layer_set_opaque(fs, fd);
	if (r == 0 && o->link_fd < 0)
		r = chown_to_caller(req, fs, dir->fds[0], fd);
	if (r == 0)
		r = stage_install(fs, &s);
	if (r < 0) {
		stage_abort(fs, &s, o->type == S_IFDIR);
		return r;
	}
	/* Names: the new one, less a whiteout it replaced.  An O_TMPFILE
	 * getting its first name was charged its inode when it was made. */
	int64_t names = wh ? 0 : 1;
	struct stat lst;
	if (o->link_fd >= 0 && layer_stat_fd(o->link_fd, &lst) == 0 && lst.st_nlink == 1)
		names--;
	quota_charge(fs, 0, names);
	/* Every field is set: the kernel keeps e->generation for the inode
	 * and marks it bad (EIO on every open fd) when a later lookup of the
	 * same node reports another generation. */
	*e = (struct fuse_entry_param){ .attr_timeout = fs->attr_timeout, .entry_timeout = fs->entry_timeout };
	/* From here the object is complete under its name: a failure below
	 * is reported, but the object stays (removing it could uncover a
	 * lower one). */
	r = cowfs_lookup_child(fs, dir, name, ret, &e->attr);
	if (r < 0)
		return r;
	if (o->link_fd < 0) /* a symlink's or directory's block */
		quota_charge(fs, (int64_t)e->attr.st_blocks * 512, 0);
	e->ino = (fuse_ino_t)(uintptr_t)*ret;
	if (ret_open_fd)
		*ret_open_fd = take_fd(open_fd);
	return 0;
}

static void reply_new_entry(fuse_req_t req, struct cowfs *fs, struct cowfs_node *dir, const char *name,
			    const struct new_object *o)
{
	struct fuse_entry_param e;
	struct cowfs_node *n;
	int r = create_object(req, fs, dir, name, o, &e, &n, NULL);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (fuse_reply_entry(req, &e) != 0)
		node_unref(fs, n, 1);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_node *dir = cowfs_node_of(fs, parent);
	/* A 0:0 character device is a whiteout on disk: it would hide the
	 * name instead of creating it.  Refused, as kernel overlayfs does. */
	if (S_ISCHR(mode) && rdev == 0) {
		fuse_reply_err(req, EPERM);
		return;
	}
	struct new_object o = { .type = mode & S_IFMT, .mode = effective_mode(req, dir->fds[0], mode & 07777),
				.rdev = rdev, .link_fd = -1, .open_flags = -1 };
	reply_new_entry(req, fs, dir, name, &o);
}

static void op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct new_object o = { .type = S_IFLNK, .mode = 0777, .target = target, .link_fd = -1, .open_flags = -1 };
	reply_new_entry(req, fs, cowfs_node_of(fs, parent), name, &o);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_node *dir = cowfs_node_of(fs, parent);
	struct new_object o = { .type = S_IFDIR, .mode = effective_mode(req, dir->fds[0], mode & 07777),
				.link_fd = -1, .open_flags = -1 };
	reply_new_entry(req, fs, dir, name, &o);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_node *dir = cowfs_node_of(fs, parent);
	int flags = cowfs_real_open_flags(fs, fi->flags);
	struct new_object o = { .type = S_IFREG, .mode = effective_mode(req, dir->fds[0], mode & 07777),
				.link_fd = -1, .open_flags = flags };
	struct fuse_entry_param e;
	struct cowfs_node *n;
	int fd = -1;
	int r = create_object(req, fs, dir, name, &o, &e, &n, &fd);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	r = cowfs_file_attach(fs, n, fd, 0, flags & ~O_TRUNC, false, fi);
	if (r < 0) {
		close(fd);
		node_unref(fs, n, 1);
		fuse_reply_err(req, -r);
		return;
	}
	if (fuse_reply_create(req, &e, fi) != 0) {
		/* Interrupted: the kernel will not release or forget it. */
		cowfs_file_drop(fs, cowfs_file_of(fi));
		node_unref(fs, n, 1);
	}
}

/* O_TMPFILE: an unnamed upper file; link() may give it a name later.
 * Shared by the libfuse tmpfile operation and cowfs-loop.c's own answer. */
int cowfs_make_tmpfile(struct cowfs *fs, struct cowfs_node *dir, mode_t mode, mode_t umask, uid_t caller_uid,
		       gid_t caller_gid, int open_flags, struct cowfs_node **ret_node, struct stat *ret_st,
		       struct cowfs_file **ret_file)
{
	struct stat st;
	uid_t uid;
	gid_t gid;
	int r = copy_up(fs, dir, COPY_UP_DATA);
	if (r == 0)
		r = quota_check(fs, 0, 1);
	if (r < 0)
		return r;
	int flags = cowfs_real_open_flags(fs, open_flags) & ~O_TRUNC;
	mode_t m = dir_has_default_acl(dir->fds[0]) ? mode : mode & ~umask;
	int fd = openat(dir->fds[0], ".", (flags & ~O_ACCMODE) | O_RDWR | O_TMPFILE, m);
	if (fd < 0)
		return -errno;
	if (idshift_store_uid(fs, caller_uid, &uid) < 0)
		uid = 0;
	if (idshift_store_gid(fs, caller_gid, &gid) < 0)
		gid = 0;
	struct cowfs_node *n = node_alloc(fs, S_IFREG);
	if (!n || fchown(fd, uid, gid) < 0 || fstat(fd, &st) < 0 || (n->fds[0] = reopen_fd(fs, fd, O_PATH)) < 0) {
		r = n ? -errno : -ENOMEM;
		if (n && n->fds[0] >= 0)
			close(n->fds[0]);
		free(n);
		close(fd);
		return r;
	}
	quota_charge(fs, 0, 1);
	n->key_dev = st.st_dev;
	n->key_ino = st.st_ino;
	n->st_ino = cowfs_tag_ino(fs, 0, st.st_ino);
	atomic_store(&n->layer, 0);
	node_ref(fs, dir);
	n->parent = dir;
	n = node_find_or_insert(fs, n);
	st.st_ino = n->st_ino;
	idshift_present(fs, &st);
	struct fuse_file_info fi = { .flags = flags };
	r = cowfs_file_attach(fs, n, fd, 0, flags, true, &fi);
	if (r < 0) {
		close(fd);
		node_unref(fs, n, 1);
		return r;
	}
	*ret_node = n;
	*ret_st = st;
	*ret_file = cowfs_file_of(&fi);
	return 0;
}

#ifdef HAVE_FUSE_TMPFILE
static void op_tmpfile(fuse_req_t req, fuse_ino_t parent, mode_t mode, struct fuse_file_info *fi)
{
	struct cowfs *fs = cowfs_from_req(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct cowfs_node *n;
	struct cowfs_file *f;
	struct stat st;
	int r = cowfs_make_tmpfile(fs, cowfs_node_of(fs, parent), mode, ctx->umask, ctx->uid, ctx->gid, fi->flags,
				   &n, &st, &f);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct fuse_entry_param e = { .ino = (fuse_ino_t)(uintptr_t)n, .attr = st,
				      .attr_timeout = fs->attr_timeout, .entry_timeout = fs->entry_timeout };
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->keep_cache = 1;
	if (fuse_reply_create(req, &e, fi) != 0) {
		cowfs_file_drop(fs, f);
		node_unref(fs, n, 1);
	}
}
#endif

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_node *n = cowfs_node_of(fs, ino);
	struct fuse_entry_param e;
	struct cowfs_node *linked;
	atomic_fetch_add(&fs->ns_changes, 1); /* as op_rename */
	int r = copy_up(fs, n, COPY_UP_DATA);
	if (r == 0) {
		struct new_object o = { .type = n->type, .link_fd = node_fd(n), .open_flags = -1 };
		r = create_object(req, fs, cowfs_node_of(fs, newparent), newname, &o, &e, &linked, NULL);
	}
	atomic_fetch_add(&fs->ns_changes, 1);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	cowfs_reply_entry(req, fs, linked, &e.attr);
}

/* Removes the upper object at `name` and leaves a whiteout in its place. */
static int replace_with_whiteout(struct cowfs *fs, int dirfd, const char *name, bool is_dir)
{
	if (fs->work_fd >= 0) {
		/* A whiteout made in the work dir is swapped in atomically;
		 * what it replaced is then removed from the work dir. */
		char tmp[64];
		stage_work_name(tmp);
		int r = layer_make_whiteout(fs, fs->work_fd, tmp);
		if (r < 0)
			return r;
		if (renameat2(fs->work_fd, tmp, dirfd, name, RENAME_EXCHANGE) == 0) {
			if (unlinkat(fs->work_fd, tmp, is_dir ? AT_REMOVEDIR : 0) < 0)
				return -errno;
			return 0;
		}
		int e = errno;
		unlinkat(fs->work_fd, tmp, 0);
		if (e != EINVAL && e != EXDEV)
			return -e;
		/* Filesystem without RENAME_EXCHANGE: fall through. */
	}
	if (unlinkat(dirfd, name, is_dir ? AT_REMOVEDIR : 0) < 0)
		return -errno;
	return layer_make_whiteout(fs, dirfd, name);
}

/* Removes `name` (known to exist) from the merged view. */
static int remove_name(struct cowfs *fs, struct cowfs_node *dir, const char *name,
		       const struct cowfs_name_state *ns, bool is_dir)
{
	int r = copy_up(fs, dir, COPY_UP_DATA);
	if (r < 0)
		return r;
	if (ns->upper_exists) {
		if (is_dir || ns->st.st_nlink <= 1)
			origin_forget(fs, ns->st.st_ino);
		/* The upper name goes (a whiteout may take its place); its
		 * blocks come back through quota_unlinked(). */
		quota_charge(fs, 0, ns->lower_exists ? 0 : -1);
		if (ns->lower_exists)
			return replace_with_whiteout(fs, dir->fds[0], name, is_dir);
		return unlinkat(dir->fds[0], name, is_dir ? AT_REMOVEDIR : 0) < 0 ? -errno : 0;
	}
	quota_charge(fs, 0, 1);
	return layer_make_whiteout(fs, dir->fds[0], name);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_node *dir = cowfs_node_of(fs, parent);
	struct cowfs_node *n;
	struct stat st;

	int r = cowfs_lookup_child(fs, dir, name, &n, &st);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct cowfs_name_state ns;
	r = cowfs_name_state(fs, dir, name, &ns);
	if (r == 0 && S_ISDIR(ns.st.st_mode))
		r = -EISDIR;
	if (r == 0)
		r = remove_name(fs, dir, name, &ns, false);
	if (r == 0 && (!ns.upper_exists || ns.st.st_nlink <= 1))
		atomic_store(&n->deleted, true);
	if (r == 0)
		quota_unlinked(fs, n);
	node_unref(fs, n, 1);
	fuse_reply_err(req, -r);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct cowfs *fs = cowfs_from_req(req);
	struct cowfs_node *dir = cowfs_node_of(fs, parent);
	struct cowfs_node *n;
	struct stat st;
	struct cowfs_name_state ns;

	int r = cowfs_lookup_child(fs, dir, name, &n, &st);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (n->type != S_IFDIR)
		r = -ENOTDIR;
	if (r == 0)
		r = dirlist_check_empty(fs, n);
	if (r == 0)
		r = cowfs_name_state(fs, dir, name, &ns);
	if (r == 0 && ns.upper_exists)
		r = dirlist_purge_upper_whiteouts(fs, n->fds[0]);
	if (r == 0)
		r = remove_name(fs, dir, name, &ns, true);
	if (r == 0) {
		atomic_store(&n->deleted, true);
		quota_unlinked(fs, n);
	}
	node_unref(fs, n, 1);
	fuse_reply_err(req, -r);
}

/* A directory arriving at a name that lower layers also use must hide them. */
static int hide_lower_at_target(struct cowfs *fs, struct cowfs_node *moved, bool target_has_lower)
{
	if (moved->type != S_IFDIR || !target_has_lower || atomic_load(&moved->opaque))
		return 0;
	int r = layer_set_opaque(fs, moved->fds[0]);
	if (r == 0)
		atomic_store(&moved->opaque, true);
	return r;
}

static bool dir_has_lower(struct cowfs *fs, struct cowfs_node *n)
{
	if (n->type != S_IFDIR || atomic_load(&n->opaque))
		return false;
	for (int l = 1; l < fs->nlayers; l++)
		if (n->fds[l] >= 0)
			return true;
	return false;
}

static int copy_up_for_rename(struct cowfs *fs, struct cowfs_node *n)
{
	/* A directory with lower contents moves as a whole: copy the subtree
	 * and make it opaque, so it no longer depends on its old path. */
	return dir_has_lower(fs, n) ? copy_up_tree(fs, n) : copy_up(fs, n, COPY_UP_DATA);
}

static int do_rename(struct cowfs *fs, struct cowfs_node *odir, const char *oname,
		     struct cowfs_node *ndir, const char *nname, unsigned flags)
{
	struct cowfs_node *src = NULL, *dst = NULL;
	struct cowfs_name_state os, ds;
	struct stat st;
	int r;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if (strlen(nname) > NAME_MAX)
		return -ENAMETOOLONG;
	r = cowfs_lookup_child(fs, odir, oname, &src, &st);
	if (r < 0)
		return r;
	r = cowfs_name_state(fs, ndir, nname, &ds);
	if (r < 0)
		goto out;
	if ((flags & RENAME_NOREPLACE) && ds.exists) {
		r = -EEXIST;
		goto out;
	}
	if ((flags & RENAME_EXCHANGE) && !ds.exists) {
		r = -ENOENT;
		goto out;
	}
	if (ds.exists) {
		r = cowfs_lookup_child(fs, ndir, nname, &dst, &st);
		if (r < 0)
			goto out;
		if (dst == src) { /* hard links of one inode: nothing to do */
			r = 0;
			goto out;
		}
		if (!(flags & RENAME_EXCHANGE) && dst->type == S_IFDIR) {
			r = dirlist_check_empty(fs, dst);
			if (r < 0)
				goto out;
		}
	}

	r = copy_up(fs, odir, COPY_UP_DATA);
	if (r == 0)
		r = copy_up(fs, ndir, COPY_UP_DATA);
	if (r == 0)
		r = copy_up_for_rename(fs, src);
	if (r == 0 && dst && (flags & RENAME_EXCHANGE))
		r = copy_up_for_rename(fs, dst);
	if (r < 0)
		goto out;
	/* Re-read both names now that copy-ups are done. */
	r = cowfs_name_state(fs, odir, oname, &os);
	if (r == 0)
		r = cowfs_name_state(fs, ndir, nname, &ds);
	if (r < 0)
		goto out;

	int ofd = odir->fds[0], nfd = ndir->fds[0];
	if (flags & RENAME_EXCHANGE) {
		r = hide_lower_at_target(fs, src, ds.lower_exists);
		if (r == 0)
			r = hide_lower_at_target(fs, dst, os.lower_exists);
		if (r == 0 && renameat2(ofd, oname, nfd, nname, RENAME_EXCHANGE) < 0)
			r = -errno;
		if (r == 0) {
			node_set_parent(fs, src, ndir, nname);
			node_set_parent(fs, dst, odir, oname);
		}
		goto out;
	}

	if (ds.upper_exists && dst && dst->type == S_IFDIR) {
		r = dirlist_purge_upper_whiteouts(fs, dst->fds[0]);
		if (r < 0)
			goto out;
	}
	r = hide_lower_at_target(fs, src, ds.lower_exists || ds.upper_whiteout);
	if (r < 0)
		goto out;
	if (ds.upper_exists && ds.st.st_nlink <= 1)
		origin_forget(fs, ds.st.st_ino);
	unsigned rflags = os.lower_exists ? RENAME_WHITEOUT : 0;
	if (ds.upper_whiteout && src->type == S_IFDIR) {
		/* A directory cannot replace a device node: it is exchanged
		 * with the whiteout, which thus never leaves the new name
		 * (removing it first would uncover the lower object if the
		 * rename then failed).  The old name keeps the whiteout if a
		 * lower object is to stay hidden there. */
		if (renameat2(ofd, oname, nfd, nname, RENAME_EXCHANGE) < 0)
			r = -errno;
		else if (!os.lower_exists && unlinkat(ofd, oname, 0) < 0)
			r = -errno;
	} else if (renameat2(ofd, oname, nfd, nname, rflags) < 0) {
		if (rflags && (errno == EINVAL || errno == EXDEV)) {
			/* No RENAME_WHITEOUT here: rename, then whiteout. */
			if (renameat(ofd, oname, nfd, nname) < 0)
				r = -errno;
			else
				r = layer_make_whiteout(fs, ofd, oname);
		} else {
			r = -errno;
		}
	}
	if (r == 0) {
		node_set_parent(fs, src, ndir, nname);
		if (dst && (dst->type == S_IFDIR || !ds.upper_exists || ds.st.st_nlink <= 1))
			atomic_store(&dst->deleted, true);
		/* Names: a whiteout may stay at the old one; an upper name or
		 * whiteout at the new one was replaced. */
		quota_charge(fs, 0, (rflags ? 1 : 0) - (ds.upper_exists || ds.upper_whiteout ? 1 : 0));
		if (dst)
			quota_unlinked(fs, dst);
	}
out:
	if (dst)
		node_unref(fs, dst, 1);
	if (src)
		node_unref(fs, src, 1);
	return r;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct cowfs *fs = cowfs_from_req(req);
	/* Before and after: the store's upkeep walk (cowfs-store.c) must see
	 * a rename that overlaps it in any way. */
	atomic_fetch_add(&fs->ns_changes, 1);
	int r = do_rename(fs, cowfs_node_of(fs, parent), name, cowfs_node_of(fs, newparent), newname, flags);
	atomic_fetch_add(&fs->ns_changes, 1);
	fuse_reply_err(req, -r);
}

void cowfs_ops_namespace(struct fuse_lowlevel_ops *ops)
{
	ops->create = op_create;
	ops->mknod = op_mknod;
	ops->mkdir = op_mkdir;
	ops->symlink = op_symlink;
	ops->link = op_link;
#ifdef HAVE_FUSE_TMPFILE
	ops->tmpfile = op_tmpfile;
#endif
	ops->unlink = op_unlink;
	ops->rmdir = op_rmdir;
	ops->rename = op_rename;
}
