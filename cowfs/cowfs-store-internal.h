/* cowfs on the store: the state shared by cowfs-store.c (the mover, the
 * root, the upkeep pass) and cowfs-store-io.c (the pool of reading handles
 * and the queue's entry point).  Two files so that a test that supplies
 * its own reads and idle hook (tests/unit-partial-store.c) links the rest.
 *
 * Module cowfs (see cowfs.h). */
#ifndef COWFS_STORE_INTERNAL_H
#define COWFS_STORE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "cowfs.h"
#include "store/store.h"

#define POOL_MAX 4
#define BATCH_MAX 64
#define UPKEEP_INTERVAL (10 * 60)	/* seconds between upkeep passes */
#define WALK_DEPTH_MAX 256		/* deeper trees are not walked (fail closed) */
#define LABEL_DEPTH_MAX 64
#define QUEUE_BUCKETS 1024

struct root_entry {
	ino_t ino;		/* upper inode; 0: read at start, label not ours */
	struct store_key recipe;
	char *label;
	/* Known to this mount (moved, or seen by a walk): only its inode's
	 * freeing drops it, so an unlinked file still open keeps its recipe
	 * although no walk finds it.  Entries read at start are not live. */
	bool live;
};

struct root_set {
	struct root_entry *e;
	size_t n, cap;
};

struct queued {
	struct cowfs_node *node;	/* referenced while queued */
	uint64_t deadline;		/* ns, CLOCK_MONOTONIC */
	uint64_t queued_at;		/* deadline the FIFO position was taken for */
	struct queued *next;		/* FIFO */
	struct queued *hash_next;	/* by node */
};

struct cowfs_store {
	char *dir, *root_name;
	uint64_t delay_ns;

	/* Pool of reading handles; a leaf lock. */
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;
	struct store *pool[POOL_MAX];
	bool pool_busy[POOL_MAX];
	int pool_n;

	/* The mover: its handle, queue and root set (the set only in the
	 * mover thread, or before it starts).  lock is a leaf: taken by
	 * cowfs_store_file_idle from a release, nothing under it. */
	struct store *mover;
	bool mover_wrote;	/* its pack holds records: release it when idle */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	struct queued *head, *tail;
	struct queued *by_node[QUEUE_BUCKETS];
	struct root_set set;
	bool set_dirty;		/* differs from the committed root */
	/* Upper inodes whose last name went and whose node was freed
	 * (cowfs_store_node_freed): their recipes leave the set.  Under lock. */
	ino_t *gone;
	size_t ngone, gone_cap;
	uint64_t next_upkeep;	/* ns */
};

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline size_t node_bucket(const struct cowfs_node *n)
{
	return ((uintptr_t)n >> 6) * 0x9e3779b97f4a7c15ull >> 54 & (QUEUE_BUCKETS - 1);
}

/* Appends q to the FIFO at its current deadline (under st->lock). */
static inline void fifo_push(struct cowfs_store *st, struct queued *q)
{
	q->next = NULL;
	q->queued_at = q->deadline;
	if (st->tail)
		st->tail->next = q;
	else
		st->head = q;
	st->tail = q;
}

#endif
