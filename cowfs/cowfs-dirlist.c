/* Merged directory listings.
 *
 * Entries come from the upper directory first, then from each lower layer
 * the directory is merged with.  A name seen once is never listed again;
 * a whiteout hides its name in all layers below.  The inode number of each
 * entry matches what lookup + stat will report for it. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "cowfs.h"
#include "fileio.h"

/* Open-addressing set of names -> entry index (or HIDDEN for whiteouts). */
#define HIDDEN ((size_t)-1)
struct nameset {
	struct slot {
		char *name; /* owned only for hidden names */
		size_t idx;
		uint64_t hash;
	} *slots;
	size_t cap, count;
};

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static struct slot *nameset_find(struct nameset *set, const char *name, uint64_t h)
{
	for (size_t i = h & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
		struct slot *s = &set->slots[i];
		if (!s->name || (s->hash == h && strcmp(s->name, name) == 0))
			return s;
	}
}

static int nameset_grow(struct nameset *set)
{
	struct nameset bigger = { .cap = set->cap ? set->cap * 2 : 64 };
	bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
	if (!bigger.slots)
		return -ENOMEM;
	for (size_t i = 0; i < set->cap; i++)
		if (set->slots[i].name)
			*nameset_find(&bigger, set->slots[i].name, set->slots[i].hash) = set->slots[i];
	bigger.count = set->count;
	free(set->slots);
	*set = bigger;
	return 0;
}

static void nameset_release(struct nameset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		if (set->slots[i].name && set->slots[i].idx == HIDDEN)
			free(set->slots[i].name);
	free(set->slots);
}

static int list_append(struct cowfs_dirlist *l, const char *name, uint64_t ino, unsigned char type,
		       unsigned char layer)
{
	if (l->count == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct cowfs_dirent *e = realloc(l->entries, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		l->entries = e;
		l->cap = cap;
	}
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	l->entries[l->count++] = (struct cowfs_dirent){ .name = copy, .ino = ino, .type = type, .layer = layer };
	return 0;
}

void dirlist_release(struct cowfs_dirlist *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->entries[i].name);
	free(l->entries);
	memset(l, 0, sizeof(*l));
}


static bool entry_is_whiteout(int dfd, const struct dirent *de)
{
	struct stat st;
	if (de->d_type != DT_CHR && de->d_type != DT_UNKNOWN)
		return false;
	return fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout(&st);
}

static unsigned char entry_type(int dfd, const struct dirent *de)
{
	struct stat st;
	if (de->d_type != DT_UNKNOWN)
		return de->d_type;
	if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return DT_UNKNOWN;
	return IFTODT(st.st_mode);
}

static bool upper_subdir_is_opaque(struct cowfs *fs, int upper_dfd, const char *name)
{
	cleanup_close int fd = openat(upper_dfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd >= 0 && layer_is_opaque_dir(fs, fd);
}

static int merge_layer(struct cowfs *fs, int layer, int layer_fd, struct cowfs_dirlist *l,
		       struct nameset *seen, int upper_dfd)
{
	cleanup_dir DIR *dir = dir_stream_at(layer_fd);
	if (!dir)
		return -errno;
	struct dirent *de;

	for (;;) {
		/* readdir signals errors only through errno: clear it first,
		 * since the loop body makes calls that set it. */
		errno = 0;
		if (!(de = readdir(dir)))
			break;
		const char *name = de->d_name;
		if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
			continue;
		if ((seen->count + 1) * 2 > seen->cap && nameset_grow(seen) < 0)
			return -ENOMEM;
		uint64_t h = name_hash(name);
		struct slot *s = nameset_find(seen, name, h);
		if (s->name) {
			/* Already listed from a higher layer.  A merged subdir
			 * shows the inode number of its lower directory. */
			if (s->idx != HIDDEN && layer > 0) {
				struct cowfs_dirent *e = &l->entries[s->idx];
				if (e->type == DT_DIR && !(e->ino & 1ULL << 63) &&
				    entry_type(dirfd(dir), de) == DT_DIR &&
				    !(e->layer == 0 && upper_subdir_is_opaque(fs, upper_dfd, name)))
					e->ino = cowfs_tag_ino(fs, layer, de->d_ino);
				e->ino |= 1ULL << 63; /* settled */
			}
			continue;
		}
		if (entry_is_whiteout(dirfd(dir), de)) {
			s->name = strdup(name);
			if (!s->name)
				return -ENOMEM;
			s->idx = HIDDEN;
			s->hash = h;
			seen->count++;
			continue;
		}
		uint64_t ino = cowfs_tag_ino(fs, layer, de->d_ino);
		if (layer == 0) {
			uint64_t shown;
			if (origin_lookup(fs, de->d_ino, &shown))
				ino = shown | 1ULL << 63; /* settled: copy-up origin wins */
			else
				ino = de->d_ino; /* raw: may be replaced by a lower dir's */
		}
		int r = list_append(l, name, ino, entry_type(dirfd(dir), de), layer);
		if (r < 0)
			return r;
		s->name = l->entries[l->count - 1].name;
		s->idx = l->count - 1;
		s->hash = h;
		seen->count++;
	}
	return errno ? -errno : 0;
}

int dirlist_build(struct cowfs *fs, struct cowfs_node *dir, struct cowfs_dirlist *ret, bool with_dots)
{
	struct cowfs_dirlist l = { 0 };
	struct nameset seen = { 0 };
	int r = 0;

	if (with_dots) {
		struct cowfs_node *parent = node_get_parent(fs, dir, NULL);
		r = list_append(&l, ".", dir->st_ino, DT_DIR, 0);
		if (r == 0)
			r = list_append(&l, "..", parent ? parent->st_ino : dir->st_ino, DT_DIR, 0);
		if (parent)
			node_unref(fs, parent, 1);
		/* Dots are settled: mark them so the fix-up below keeps them. */
		for (size_t i = 0; i < l.count; i++)
			l.entries[i].ino |= 1ULL << 63;
	}
	int upper_dfd = node_dir_layer_fd(dir, 0);
	for (int layer = 0; layer < fs->nlayers && r == 0; layer++) {
		int fd = node_dir_layer_fd(dir, layer);
		if (fd < 0)
			continue;
		r = merge_layer(fs, layer, fd, &l, &seen, upper_dfd);
		/* Upper entries get their layer tag now; a lower dir may still
		 * replace it (merged subdirs show the lower inode). */
		if (layer == 0 && r == 0) {
			for (size_t i = 0; i < l.count; i++)
				if (!(l.entries[i].ino & 1ULL << 63))
					l.entries[i].ino = cowfs_tag_ino(fs, 0, l.entries[i].ino) & ~(1ULL << 63);
		}
	}
	nameset_release(&seen);
	for (size_t i = 0; i < l.count; i++)
		l.entries[i].ino &= ~(1ULL << 63);
	if (r < 0) {
		dirlist_release(&l);
		return r;
	}
	*ret = l;
	return 0;
}

int dirlist_check_empty(struct cowfs *fs, struct cowfs_node *dir)
{
	struct cowfs_dirlist l;
	int r = dirlist_build(fs, dir, &l, false);
	if (r < 0)
		return r;
	r = l.count ? -ENOTEMPTY : 0;
	dirlist_release(&l);
	return r;
}

int dirlist_purge_upper_whiteouts(struct cowfs *fs, int upper_dirfd)
{
	cleanup_dir DIR *dir = dir_stream_at(upper_dirfd);
	if (!dir)
		return -errno;
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (!entry_is_whiteout(dirfd(dir), de))
			return -ENOTEMPTY;
		if (unlinkat(dirfd(dir), de->d_name, 0) < 0)
			return -errno;
		quota_charge(fs, 0, -1); /* whiteouts count as names */
	}
	return 0;
}
