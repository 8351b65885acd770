/* Resolving a name in a merged directory.
 *
 * The upper layer is searched first, then each lower layer in which the
 * parent directory is merged.  A whiteout hides the name in every layer
 * below it; a non-directory ends the search; a directory is merged with
 * directories of the same name below it unless it is opaque. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cowfs.h"


static bool has_layer_below(struct cowfs *fs, const struct cowfs_node *dir, int layer)
{
	for (int l = layer + 1; l < fs->nlayers; l++)
		if (node_dir_layer_fd(dir, l) >= 0)
			return true;
	return false;
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

int cowfs_lookup_child(struct cowfs *fs, struct cowfs_node *dir, const char *name,
		       struct cowfs_node **ret_node, struct stat *ret_st)
{
	int fds[fs->nlayers];
	struct stat top_st, st;
	int top = -1, lower_dir_layer = -1;
	ino_t lower_dir_ino = 0;
	bool opaque = false;

	for (int l = 0; l < fs->nlayers; l++)
		fds[l] = -1;

	for (int l = 0; l < fs->nlayers; l++) {
		int pfd = node_dir_layer_fd(dir, l);
		if (pfd < 0)
			continue;
		if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				continue;
			int err = -errno;
			close_fds(fds, fs->nlayers);
			return err;
		}
		if (is_whiteout(&st))
			break;
		if (top >= 0 && !S_ISDIR(st.st_mode))
			break; /* a non-directory below a directory stays hidden */
		int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			int err = -errno;
			close_fds(fds, fs->nlayers);
			return err;
		}
		fds[l] = fd;
		if (top < 0) {
			top = l;
			top_st = st;
		} else if (lower_dir_layer < 0) {
			lower_dir_layer = l;
			lower_dir_ino = st.st_ino;
		}
		if (!S_ISDIR(st.st_mode))
			break;
		if (has_layer_below(fs, dir, l) && layer_is_opaque_dir(fs, fd)) {
			opaque = (l == top);
			break;
		}
	}
	if (top < 0)
		return -ENOENT;

	struct cowfs_node *fresh = node_alloc(fs, top_st.st_mode);
	if (!fresh) {
		close_fds(fds, fs->nlayers);
		return -ENOMEM;
	}
	memcpy(fresh->fds, fds, sizeof(fds));
	atomic_store(&fresh->layer, top);
	atomic_store(&fresh->opaque, opaque);
	fresh->key_dev = top_st.st_dev;
	fresh->key_ino = top_st.st_ino;
	fresh->key_by_name = top > 0 && !S_ISDIR(top_st.st_mode) && top_st.st_nlink > 1;

	uint64_t shown;
	if (top == 0 && origin_lookup(fs, top_st.st_ino, &shown))
		fresh->st_ino = shown;
	else if (lower_dir_layer > 0)
		fresh->st_ino = cowfs_tag_ino(fs, lower_dir_layer, lower_dir_ino);
	else
		fresh->st_ino = cowfs_tag_ino(fs, top, top_st.st_ino);

	fresh->name = strdup(name);
	if (!fresh->name) {
		close_fds(fresh->fds, fs->nlayers);
		free(fresh);
		return -ENOMEM;
	}
	node_ref(fs, dir);
	fresh->parent = dir;

	struct cowfs_node *n = node_find_or_insert(fs, fresh);
	*ret_node = n;
	*ret_st = top_st;
	ret_st->st_ino = n->st_ino;
	idshift_present(fs, ret_st);
	if (S_ISDIR(top_st.st_mode) && lower_dir_layer > 0)
		ret_st->st_nlink = 1; /* merged: the real count is unknowable cheaply */
	return 0;
}

int cowfs_node_stat(struct cowfs *fs, struct cowfs_node *n, struct stat *st)
{
	int r = layer_stat_fd(node_fd(n), st);
	if (r < 0)
		return r;
	st->st_ino = n->st_ino;
	idshift_present(fs, st);
	if (n->type == S_IFDIR && !atomic_load(&n->opaque)) {
		for (int l = node_layer(n) + 1; l < fs->nlayers; l++)
			if (n->fds[l] >= 0) {
				st->st_nlink = 1;
				break;
			}
	}
	return 0;
}

int cowfs_name_state(struct cowfs *fs, struct cowfs_node *dir, const char *name,
		     struct cowfs_name_state *ret)
{
	struct stat st;

	memset(ret, 0, sizeof(*ret));
	for (int l = 0; l < fs->nlayers; l++) {
		int pfd = node_dir_layer_fd(dir, l);
		if (pfd < 0)
			continue;
		if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				continue;
			return -errno;
		}
		if (is_whiteout(&st)) {
			if (l == 0)
				ret->upper_whiteout = true;
			break;
		}
		if (!ret->exists) {
			ret->exists = true;
			ret->st = st;
		}
		if (l == 0)
			ret->upper_exists = true;
		else {
			ret->lower_exists = true;
			break;
		}
	}
	return 0;
}
