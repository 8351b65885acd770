/* Inode numbers kept across copy-up.
 *
 * When an object is copied up, its upper copy has a new inode number, but
 * the merged view must keep showing the old one for the life of the mount.
 * This map remembers upper inode -> shown inode for every copy-up; it is
 * consulted when a node is created for an upper object.  Entries are
 * dropped when the upper object's last link goes, so a recycled upper inode
 * number never inherits a stale mapping. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "cowfs.h"

struct origin_entry {
	ino_t upper_ino;
	uint64_t st_ino;
	bool used;
	bool tomb;
};

/* Striped: lookups of upper objects consult the map, so no one lock may
 * be shared by all of them. */
#define ORIGIN_STRIPES 16

struct cowfs_origin_map {
	pthread_mutex_t lock;
	struct origin_entry *slots; /* under lock */
	size_t cap;		    /* power of two */
	size_t count;		    /* used + tombstones */
};

int origin_map_init(struct cowfs *fs)
{
	fs->origins = calloc(ORIGIN_STRIPES, sizeof(*fs->origins));
	if (!fs->origins)
		return -ENOMEM;
	for (int i = 0; i < ORIGIN_STRIPES; i++) {
		struct cowfs_origin_map *m = &fs->origins[i];
		pthread_mutex_init(&m->lock, NULL);
		m->cap = 64;
		m->slots = calloc(m->cap, sizeof(struct origin_entry));
		if (!m->slots)
			return -ENOMEM;
	}
	return 0;
}

void origin_map_destroy(struct cowfs *fs)
{
	if (!fs->origins)
		return;
	for (int i = 0; i < ORIGIN_STRIPES; i++)
		free(fs->origins[i].slots);
	free(fs->origins);
	fs->origins = NULL;
}

static struct cowfs_origin_map *stripe_of(struct cowfs *fs, ino_t ino)
{
	return &fs->origins[((uint64_t)ino * 0x9e3779b97f4a7c15ULL) >> 60];
}

static size_t slot_of(const struct cowfs_origin_map *m, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL;
	return (size_t)(h >> 17) & (m->cap - 1);
}

static struct origin_entry *find_slot(struct cowfs_origin_map *m, ino_t ino, bool for_insert)
{
	struct origin_entry *tomb = NULL;
	for (size_t i = slot_of(m, ino), probes = 0; probes < m->cap; i = (i + 1) & (m->cap - 1), probes++) {
		struct origin_entry *e = &m->slots[i];
		if (!e->used && !e->tomb)
			return for_insert ? (tomb ? tomb : e) : NULL;
		if (e->tomb) {
			if (!tomb)
				tomb = e;
			continue;
		}
		if (e->upper_ino == ino)
			return e;
	}
	return for_insert ? tomb : NULL;
}

static int grow(struct cowfs_origin_map *m)
{
	struct origin_entry *old = m->slots;
	size_t oldcap = m->cap;
	struct origin_entry *slots = calloc(oldcap * 2, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	m->slots = slots;
	m->cap = oldcap * 2;
	m->count = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].used) {
			struct origin_entry *e = find_slot(m, old[i].upper_ino, true);
			*e = old[i];
			m->count++;
		}
	}
	free(old);
	return 0;
}

void origin_remember(struct cowfs *fs, ino_t upper_ino, uint64_t st_ino)
{
	struct cowfs_origin_map *m = stripe_of(fs, upper_ino);

	pthread_mutex_lock(&m->lock);
	if ((m->count + 1) * 4 > m->cap * 3 && grow(m) < 0) {
		/* Out of memory: the inode number changes after copy-up, which
		 * is what overlayfs without xino does.  Not fatal. */
		pthread_mutex_unlock(&m->lock);
		return;
	}
	struct origin_entry *e = find_slot(m, upper_ino, true);
	if (e) {
		if (!e->used && !e->tomb)
			m->count++;
		e->upper_ino = upper_ino;
		e->st_ino = st_ino;
		e->used = true;
		e->tomb = false;
		atomic_fetch_add(&fs->origin_count, 1);
	}
	pthread_mutex_unlock(&m->lock);
}

bool origin_lookup(struct cowfs *fs, ino_t upper_ino, uint64_t *ret_st_ino)
{
	bool found = false;

	if (atomic_load_explicit(&fs->origin_count, memory_order_acquire) == 0)
		return false;
	struct cowfs_origin_map *m = stripe_of(fs, upper_ino);
	pthread_mutex_lock(&m->lock);
	struct origin_entry *e = find_slot(m, upper_ino, false);
	if (e && e->used) {
		*ret_st_ino = e->st_ino;
		found = true;
	}
	pthread_mutex_unlock(&m->lock);
	return found;
}

void origin_forget(struct cowfs *fs, ino_t upper_ino)
{
	struct cowfs_origin_map *m = stripe_of(fs, upper_ino);
	pthread_mutex_lock(&m->lock);
	struct origin_entry *e = find_slot(m, upper_ino, false);
	if (e && e->used) {
		e->used = false;
		e->tomb = true;
	}
	pthread_mutex_unlock(&m->lock);
}
