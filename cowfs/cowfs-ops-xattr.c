/* FUSE extended-attribute operations.  overlayfs's own attributes
 * (trusted.overlay.*, user.overlay.*) are layer metadata: never shown,
 * never settable through the merged view.  Changing an attribute copies
 * the object up first. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "cleanup.h"
#include "cowfs.h"

/* Path reaching the object itself: the O_PATH magic link for anything but
 * a symlink, which is reached by name through its directory (the f*xattr
 * calls refuse O_PATH descriptors, and l*xattr on the magic link would act
 * on the link in /proc).  That name is one component, never followed, in
 * an upper directory; it must still hold the node's symlink, or the tenant
 * has renamed something else over it. */
static int xattr_path(struct cowfs *fs, struct cowfs_node *n, char *buf, size_t len, bool *nofollow)
{
	*nofollow = false;
	if (n->type != S_IFLNK) {
		snprintf(buf, len, "/proc/self/fd/%d", node_fd(n));
		return 0;
	}
	cleanup_free char *name = NULL;
	struct cowfs_node *parent = node_get_parent(fs, n, &name);
	if (!parent)
		return -ESTALE;
	int pfd = parent->fds[node_layer(n)];
	node_unref(fs, parent, 1);
	if (pfd < 0 || !name)
		return -ESTALE;
	struct stat named, own;
	if (fstatat(pfd, name, &named, AT_SYMLINK_NOFOLLOW) < 0 || layer_stat_fd(node_fd(n), &own) < 0 ||
	    named.st_ino != own.st_ino || named.st_dev != own.st_dev)
		return -ESTALE;
	snprintf(buf, len, "/proc/self/fd/%d/%s", pfd, name);
	*nofollow = true;
	return 0;
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct cowfs *fs = cowfs_from_req(req);
	char path[PATH_MAX];
	bool nofollow;

	if (layer_is_private_xattr(name)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	int r = xattr_path(fs, cowfs_node_of(fs, ino), path, sizeof(path), &nofollow);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	cleanup_free char *value = size ? malloc(size) : NULL;
	if (size && !value) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = nofollow ? lgetxattr(path, name, value, size) : getxattr(path, name, value, size);
	if (n < 0)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, value, (size_t)n);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct cowfs *fs = cowfs_from_req(req);
	char path[PATH_MAX];
	bool nofollow;

	int r = xattr_path(fs, cowfs_node_of(fs, ino), path, sizeof(path), &nofollow);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	ssize_t len = nofollow ? llistxattr(path, NULL, 0) : listxattr(path, NULL, 0);
	if (len < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	cleanup_free char *names = malloc(len + 1);
	if (!names) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	len = nofollow ? llistxattr(path, names, len) : listxattr(path, names, len);
	if (len < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	/* Drop the private names in place. */
	size_t out = 0;
	for (char *p = names; p < names + len; p += strlen(p) + 1) {
		size_t l = strlen(p) + 1;
		if (layer_is_private_xattr(p))
			continue;
		memmove(names + out, p, l);
		out += l;
	}
	if (size == 0)
		fuse_reply_xattr(req, out);
	else if (out > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names, out);
}

/* A change to an attribute: refused for layer metadata, made on the upper
 * copy.  `value` NULL means remove. */
static int change_xattr(struct cowfs *fs, struct cowfs_node *n, const char *name, const char *value,
			size_t size, int flags)
{
	char path[PATH_MAX];
	bool nofollow;

	if (layer_is_private_xattr(name))
		return -EPERM;
	int r = copy_up(fs, n, COPY_UP_DATA);
	if (r == 0)
		r = xattr_path(fs, n, path, sizeof(path), &nofollow);
	if (r < 0)
		return r;
	if (value)
		r = nofollow ? lsetxattr(path, name, value, size, flags) : setxattr(path, name, value, size, flags);
	else
		r = nofollow ? lremovexattr(path, name) : removexattr(path, name);
	return r < 0 ? -errno : 0;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct cowfs *fs = cowfs_from_req(req);
	/* An empty value is still a value: never pass NULL for "set". */
	fuse_reply_err(req, -change_xattr(fs, cowfs_node_of(fs, ino), name, value ? value : "", size, flags));
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct cowfs *fs = cowfs_from_req(req);
	fuse_reply_err(req, -change_xattr(fs, cowfs_node_of(fs, ino), name, NULL, 0, 0));
}

void cowfs_ops_xattr(struct fuse_lowlevel_ops *ops)
{
	ops->getxattr = op_getxattr;
	ops->listxattr = op_listxattr;
	ops->setxattr = op_setxattr;
	ops->removexattr = op_removexattr;
}
