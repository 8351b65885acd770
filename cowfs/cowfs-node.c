/* The node table: maps real objects to the nodes the kernel knows.
 *
 * A node is keyed by the identity (st_dev, st_ino) of its topmost real
 * object, so upper hard links share one node.  Lower hard links are keyed
 * by (identity, parent, name) instead: until copied up they are separate
 * files in the merged view, as in kernel overlayfs without an index.
 *
 * refcount counts kernel lookups (nlookup), one per child node whose parent
 * pointer names this node, and short-lived internal references.  A node is
 * freed when it reaches zero. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cowfs.h"
#include "cowfs-store.h"

static size_t key_hash(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;
	return (size_t)(h ^ (h >> 29));
}

/* A key's stripe depends on its hash only; the bucket array grows by
 * powers of two (always a multiple of the stripe count), so a key keeps its
 * stripe across a resize.  The bucket index is read under the stripe lock;
 * a resize holds every stripe lock. */
static pthread_mutex_t *stripe_of(struct cowfs *fs, dev_t dev, ino_t ino)
{
	return &fs->stripe_lock[key_hash(dev, ino) % COWFS_TABLE_STRIPES];
}

static size_t bucket_of(struct cowfs *fs, dev_t dev, ino_t ino)
{
	return key_hash(dev, ino) & (fs->nbuckets - 1);
}

_Static_assert(COWFS_TABLE_STRIPES <= 4096 && (COWFS_TABLE_STRIPES & (COWFS_TABLE_STRIPES - 1)) == 0,
	       "stripes must divide every bucket count");

/* Grows the bucket array 4x when nodes outnumber buckets 2:1.  Starting
 * small keeps an idle daemon's table to a few pages. */
static void table_grow(struct cowfs *fs)
{
	for (int i = 0; i < COWFS_TABLE_STRIPES; i++)
		pthread_mutex_lock(&fs->stripe_lock[i]);
	size_t n = fs->nbuckets;
	if (atomic_load(&fs->nnodes) > 2 * n) {
		struct cowfs_node **nb = calloc(n * 4, sizeof(*nb));
		if (nb) {
			for (size_t b = 0; b < n; b++) {
				struct cowfs_node *node = fs->buckets[b];
				while (node) {
					struct cowfs_node *next = node->hash_next;
					size_t to = key_hash(node->key_dev, node->key_ino) & (n * 4 - 1);
					node->hash_next = nb[to];
					nb[to] = node;
					node = next;
				}
			}
			free(fs->buckets);
			fs->buckets = nb;
			fs->nbuckets = n * 4;
		}
	}
	for (int i = COWFS_TABLE_STRIPES - 1; i >= 0; i--)
		pthread_mutex_unlock(&fs->stripe_lock[i]);
}

int node_table_init(struct cowfs *fs)
{
	fs->buckets = calloc(4096, sizeof(*fs->buckets));
	if (!fs->buckets)
		return -ENOMEM;
	fs->nbuckets = 4096; /* only with the array: node_table_destroy walks it */
	for (int i = 0; i < COWFS_TABLE_STRIPES; i++)
		pthread_mutex_init(&fs->stripe_lock[i], NULL);
	pthread_rwlock_init(&fs->tree_lock, NULL);
	pthread_mutex_init(&fs->whiteout_lock, NULL);
	return 0;
}

static void node_free(struct cowfs *fs, struct cowfs_node *n)
{
	/* Before the descriptors close: a record not yet written is. */
	partial_node_free(fs, n);
	for (int i = 0; i < fs->nlayers; i++)
		if (n->fds[i] >= 0)
			close(n->fds[i]);
	pthread_mutex_destroy(&n->lock);
	if (atomic_load(&n->dir))
		cowfs_dir_free(atomic_load(&n->dir));
	free(n->name);
	free(n);
}

void node_table_destroy(struct cowfs *fs)
{
	for (size_t b = 0; b < fs->nbuckets; b++) {
		struct cowfs_node *n = fs->buckets[b];
		while (n) {
			struct cowfs_node *next = n->hash_next;
			if (n != fs->root)
				node_free(fs, n);
			n = next;
		}
	}
	free(fs->buckets);
	if (fs->root)
		node_free(fs, fs->root);
}

struct cowfs_node *node_alloc(struct cowfs *fs, mode_t type)
{
	struct cowfs_node *n = calloc(1, sizeof(*n) + sizeof(int) * fs->nlayers);
	if (!n)
		return NULL;
	n->type = type & S_IFMT;
	n->quota_released = -1;
	pthread_mutex_init(&n->lock, NULL);
	for (int i = 0; i < fs->nlayers; i++)
		n->fds[i] = -1;
	return n;
}

static bool key_matches(const struct cowfs_node *n, const struct cowfs_node *fresh)
{
	if (n->key_dev != fresh->key_dev || n->key_ino != fresh->key_ino)
		return false;
	if (n->key_by_name != fresh->key_by_name)
		return false;
	if (!n->key_by_name)
		return true;
	return n->parent == fresh->parent && n->name && fresh->name &&
	       strcmp(n->name, fresh->name) == 0;
}

struct cowfs_node *node_find_or_insert(struct cowfs *fs, struct cowfs_node *fresh)
{
	pthread_mutex_t *lock = stripe_of(fs, fresh->key_dev, fresh->key_ino);
	struct cowfs_node *n;

	/* Matching by name reads other nodes' names: hold the tree lock. */
	pthread_rwlock_rdlock(&fs->tree_lock);
	pthread_mutex_lock(lock);
	size_t b = bucket_of(fs, fresh->key_dev, fresh->key_ino);
	for (n = fs->buckets[b]; n; n = n->hash_next) {
		if (key_matches(n, fresh) && n->refcount > 0) {
			n->refcount++;
			pthread_mutex_unlock(lock);
			pthread_rwlock_unlock(&fs->tree_lock);
			/* The fresh node was never published: drop it and the
			 * parent reference it carried. */
			struct cowfs_node *parent = fresh->parent;
			fresh->parent = NULL;
			node_free(fs, fresh);
			if (parent)
				node_unref(fs, parent, 1);
			return n;
		}
	}
	fresh->refcount = 1;
	fresh->hash_next = fs->buckets[b];
	fs->buckets[b] = fresh;
	bool grow = atomic_fetch_add(&fs->nnodes, 1) + 1 > 2 * fs->nbuckets;
	pthread_mutex_unlock(lock);
	pthread_rwlock_unlock(&fs->tree_lock);
	if (grow)
		table_grow(fs);
	return fresh;
}

void node_ref(struct cowfs *fs, struct cowfs_node *n)
{
	if (n == fs->root)
		return;
	/* Retry if a rekey moved the node to another stripe meanwhile. */
	for (;;) {
		dev_t d = n->key_dev;
		ino_t i = n->key_ino;
		pthread_mutex_t *lock = stripe_of(fs, d, i);
		pthread_mutex_lock(lock);
		if (n->key_dev == d && n->key_ino == i) {
			n->refcount++;
			pthread_mutex_unlock(lock);
			return;
		}
		pthread_mutex_unlock(lock);
	}
}

static void unlink_from_bucket(struct cowfs *fs, struct cowfs_node *n, size_t b)
{
	struct cowfs_node **pp = &fs->buckets[b];
	while (*pp && *pp != n)
		pp = &(*pp)->hash_next;
	if (*pp)
		*pp = n->hash_next;
	n->hash_next = NULL;
}

void node_unref(struct cowfs *fs, struct cowfs_node *n, uint64_t count)
{
	while (n && n != fs->root) {
		/* The key may change under copy-up (node_rekey); retry until the
		 * stripe we locked is still the node's. */
		pthread_mutex_t *lock;
		for (;;) {
			dev_t d = n->key_dev;
			ino_t i = n->key_ino;
			lock = stripe_of(fs, d, i);
			pthread_mutex_lock(lock);
			if (n->key_dev == d && n->key_ino == i)
				break;
			pthread_mutex_unlock(lock);
		}
		size_t b = bucket_of(fs, n->key_dev, n->key_ino);
		n->refcount -= count;
		if (n->refcount > 0) {
			pthread_mutex_unlock(lock);
			return;
		}
		unlink_from_bucket(fs, n, b);
		atomic_fetch_sub(&fs->nnodes, 1);
		pthread_mutex_unlock(lock);

		pthread_rwlock_wrlock(&fs->tree_lock);
		struct cowfs_node *parent = n->parent;
		n->parent = NULL;
		pthread_rwlock_unlock(&fs->tree_lock);
		quota_node_freed(fs, n);
		cowfs_store_node_freed(fs, n);
		node_free(fs, n);
		n = parent; /* drop the reference the child held */
		count = 1;
	}
}

void node_rekey(struct cowfs *fs, struct cowfs_node *n, dev_t dev, ino_t ino)
{
	if (n == fs->root)
		return;
	/* Only the node's own copy-up rekeys it (under node->lock), so its
	 * key is stable here. */
	pthread_mutex_t *ol = stripe_of(fs, n->key_dev, n->key_ino), *nl = stripe_of(fs, dev, ino);
	/* Lock both stripes in address order. */
	if (ol == nl) {
		pthread_mutex_lock(ol);
	} else if (ol < nl) {
		pthread_mutex_lock(ol);
		pthread_mutex_lock(nl);
	} else {
		pthread_mutex_lock(nl);
		pthread_mutex_lock(ol);
	}
	unlink_from_bucket(fs, n, bucket_of(fs, n->key_dev, n->key_ino));
	size_t nb = bucket_of(fs, dev, ino);
	n->key_dev = dev;
	n->key_ino = ino;
	n->key_by_name = false;
	n->hash_next = fs->buckets[nb];
	fs->buckets[nb] = n;
	pthread_mutex_unlock(ol);
	if (ol != nl)
		pthread_mutex_unlock(nl);
}

struct cowfs_node *node_get_parent(struct cowfs *fs, struct cowfs_node *n, char **ret_name)
{
	struct cowfs_node *parent;

	pthread_rwlock_rdlock(&fs->tree_lock);
	parent = n->parent;
	if (parent)
		node_ref(fs, parent);
	if (ret_name)
		*ret_name = n->name ? strdup(n->name) : NULL;
	pthread_rwlock_unlock(&fs->tree_lock);
	return parent;
}

void node_set_parent(struct cowfs *fs, struct cowfs_node *n, struct cowfs_node *parent,
		     const char *name)
{
	struct cowfs_node *old;
	char *copy = name ? strdup(name) : NULL;

	if (parent)
		node_ref(fs, parent);
	pthread_rwlock_wrlock(&fs->tree_lock);
	old = n->parent;
	n->parent = parent;
	free(n->name);
	n->name = copy;
	pthread_rwlock_unlock(&fs->tree_lock);
	if (old)
		node_unref(fs, old, 1);
}

uint64_t cowfs_tag_ino(const struct cowfs *fs, int layer, ino_t ino)
{
	if (!fs->ino_tagging)
		return ino;
	/* Different devices: keep the low 56 bits, tag the device in the top
	 * byte.  ext4 and xfs inode numbers fit comfortably. */
	return ((uint64_t)fs->layers[layer].dev_index << 56) | ((uint64_t)ino & ((1ULL << 56) - 1));
}
