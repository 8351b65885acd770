/* cowfs on the store: the pool of store handles that serves the readers
 * of store-backed files, and the mover's entry point (a writer released a
 * file).  A store handle serves one thread at a time and cowfs has many
 * workers: up to POOL_MAX handles, opened on demand, each lent to one
 * caller at a time.  See cowfs-store.c for the mover.
 *
 * Module cowfs; calls store (libstore.a). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cowfs-store.h"
#include "cowfs-store-internal.h"
#include "log.h"

/* ---- the pool ---- */

static int pool_get(struct cowfs_store *st, struct store **ret)
{
	pthread_mutex_lock(&st->pool_lock);
	for (;;) {
		for (int i = 0; i < st->pool_n; i++)
			if (!st->pool_busy[i]) {
				st->pool_busy[i] = true;
				*ret = st->pool[i];
				pthread_mutex_unlock(&st->pool_lock);
				return i;
			}
		if (st->pool_n < POOL_MAX) {
			struct corral_error err = { 0 };
			struct store *s;
			/* Opened under the lock: rare (POOL_MAX times a mount),
			 * and the others wait for a handle anyway. */
			int r = store_open(st->dir, 0, &s, &err);
			if (r < 0) {
				pthread_mutex_unlock(&st->pool_lock);
				log_error("store %s: %s", st->dir, err.msg);
				return r;
			}
			int i = st->pool_n++;
			st->pool[i] = s;
			st->pool_busy[i] = true;
			*ret = s;
			pthread_mutex_unlock(&st->pool_lock);
			return i;
		}
		pthread_cond_wait(&st->pool_cond, &st->pool_lock);
	}
}

static void pool_put(struct cowfs_store *st, int i)
{
	pthread_mutex_lock(&st->pool_lock);
	st->pool_busy[i] = false;
	pthread_cond_signal(&st->pool_cond);
	pthread_mutex_unlock(&st->pool_lock);
}

int cowfs_store_read_blocks(struct cowfs *fs, const struct store_recipe_entry *e, size_t n, void *buf)
{
	struct cowfs_store *st = fs->store;
	struct store *s;
	if (!st)
		return -EIO;
	int i = pool_get(st, &s);
	if (i < 0)
		return i;
	struct corral_error err = { 0 };
	int r = store_get_blocks(s, e, n, buf, &err);
	pool_put(st, i);
	if (r < 0) {
		log_error("store %s: blocks of a recipe: %s", st->dir, err.msg);
		/* Damage or a missing block reads as an I/O error, never as
		 * other bytes. */
		return r == -ENOMEM ? r : -EIO;
	}
	return 0;
}

int cowfs_store_get_recipe(struct cowfs *fs, const struct store_key *k, struct store_recipe *ret)
{
	struct cowfs_store *st = fs->store;
	struct store *s;
	if (!st)
		return -EIO;
	int i = pool_get(st, &s);
	if (i < 0)
		return i;
	struct corral_error err = { 0 };
	int r = store_get_recipe(s, k, ret, &err);
	pool_put(st, i);
	if (r < 0) {
		char ks[STORE_KEY_STR_MAX];
		log_error("store %s: recipe %s: %s", st->dir, store_key_str(k, ks), err.msg);
		return r == -ENOMEM ? r : -EIO;
	}
	return 0;
}

/* ---- the queue ---- */

void cowfs_store_file_idle(struct cowfs *fs, struct cowfs_node *n)
{
	struct cowfs_store *st = fs->store;
	if (!st || n->type != S_IFREG)
		return;
	uint64_t deadline = now_ns() + st->delay_ns;
	pthread_mutex_lock(&st->lock);
	if (st->stop) {
		pthread_mutex_unlock(&st->lock);
		return;
	}
	size_t b = node_bucket(n);
	struct queued *q = st->by_node[b];
	while (q && q->node != n)
		q = q->hash_next;
	if (q) {
		q->deadline = deadline; /* the mover moves it to the tail */
		pthread_mutex_unlock(&st->lock);
		return;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		pthread_mutex_unlock(&st->lock);
		return; /* it stays in the upper: correct, only not deduplicated */
	}
	node_ref(fs, n); /* a stripe lock: after st->lock is fine, a leaf below it */
	q->node = n;
	q->deadline = deadline;
	q->hash_next = st->by_node[b];
	st->by_node[b] = q;
	bool was_empty = !st->head;
	fifo_push(st, q);
	if (was_empty)
		pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
}
