/* unit-cowfs-tables: cowfs's node table (cowfs/cowfs-node.c) and origin map
 * (cowfs/cowfs-origin.c), driven directly on a bare struct cowfs (no mount).
 *
 * Node table: insert, find, ref, unref, rekey, lower hard links keyed by
 * name, growth far past the initial bucket count, one node per key when
 * several threads insert the same keys at once (while the table grows),
 * references taken and dropped while the node is rekeyed between stripes,
 * and that the last reference frees the node.
 *
 * Freeing is observed, not assumed: a node under test holds, in its layer
 * descriptors, duplicates of the write end of a pipe.  node_free closes
 * them; the read end reports end of file only once every duplicate is
 * closed, i.e. once every such node was freed.  Built with ASan, the
 * program reports no leak: every table is destroyed at the end.
 *
 * Origin map: remember, lookup, overwrite, forget, reuse of forgotten slots,
 * growth of every stripe, and many threads remembering, looking up and
 * forgetting at once across all stripes. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cowfs/cowfs.h"
#include "tap.h"

#define NLAYERS 2
#define INITIAL_BUCKETS 4096

/* ---- a bare filesystem state: just what the tables use ---- */

static struct cowfs_layer test_layers[NLAYERS];

static void fs_init(struct cowfs *fs)
{
	memset(fs, 0, sizeof(*fs));
	fs->layers = test_layers;
	fs->nlayers = NLAYERS;
	fs->work_fd = -1;
	fs->proc_fd = -1;
}

/* ---- observing frees: a pipe whose write end the nodes hold ---- */

struct tracker {
	int rd, wr;
};

static void tracker_open(struct tracker *t)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		tap_bail("pipe: %s", strerror(errno));
		exit(1);
	}
	t->rd = p[0];
	t->wr = p[1];
}

/* Gives node n (layer 1) a duplicate of the tracker's write end. */
static void track(struct tracker *t, struct cowfs_node *n)
{
	n->fds[1] = fcntl(t->wr, F_DUPFD_CLOEXEC, 0);
	if (n->fds[1] < 0) {
		tap_bail("dup: %s", strerror(errno));
		exit(1);
	}
}

/* Closes the tracker's own write end: from now on, end of file on the read
 * end means every node that held a duplicate was freed. */
static void tracker_seal(struct tracker *t)
{
	close(t->wr);
	t->wr = -1;
}

/* True once every tracked node was freed (its descriptors closed). */
static bool tracker_all_freed(struct tracker *t)
{
	char c;
	return read(t->rd, &c, 1) == 0;
}

static void tracker_close(struct tracker *t)
{
	if (t->wr >= 0)
		close(t->wr);
	close(t->rd);
}

/* A fresh node for real object (dev, ino), as a lookup builds it. */
static struct cowfs_node *fresh(struct cowfs *fs, dev_t dev, ino_t ino)
{
	struct cowfs_node *n = node_alloc(fs, S_IFREG);
	if (!n) {
		tap_bail("node_alloc: out of memory");
		exit(1);
	}
	n->key_dev = dev;
	n->key_ino = ino;
	n->st_ino = ino;
	return n;
}

/* A fresh node for a lower hard link: identity (dev, ino, parent, name).
 * The parent reference it carries is taken here, as lookup does. */
static struct cowfs_node *fresh_by_name(struct cowfs *fs, dev_t dev, ino_t ino, struct cowfs_node *parent,
					const char *name)
{
	struct cowfs_node *n = fresh(fs, dev, ino);
	n->key_by_name = true;
	node_ref(fs, parent);
	n->parent = parent;
	n->name = strdup(name);
	return n;
}

static bool buckets_empty(struct cowfs *fs)
{
	for (size_t b = 0; b < fs->nbuckets; b++)
		if (fs->buckets[b])
			return false;
	return true;
}

/* Runs fn on n threads at once, the i-th with ctx + i * size (size 0: all
 * share ctx), and joins them.  Each worker starts with start_together(),
 * so that they meet in the table rather than run one after another. */
static pthread_barrier_t start_line;

static void start_together(void)
{
	pthread_barrier_wait(&start_line);
}

static void run_threads(int n, void *(*fn)(void *), void *ctx, size_t size)
{
	pthread_t tid[n];

	pthread_barrier_init(&start_line, NULL, n);
	for (int i = 0; i < n; i++)
		if (pthread_create(&tid[i], NULL, fn, (char *)ctx + i * size) != 0) {
			tap_bail("pthread_create failed");
			exit(1);
		}
	for (int i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&start_line);
}

/* ---- node table, one thread ---- */

static void test_insert_find_ref_unref(void)
{
	struct cowfs fs;
	struct tracker t;

	fs_init(&fs);
	ok(node_table_init(&fs) == 0, "node_table_init succeeds");
	ok(fs.nbuckets == INITIAL_BUCKETS && atomic_load(&fs.nnodes) == 0,
	   "a new table has %d buckets and no node (has %zu, %zu)", INITIAL_BUCKETS, fs.nbuckets,
	   atomic_load(&fs.nnodes));

	tracker_open(&t);
	struct cowfs_node *a = fresh(&fs, 8, 100);
	track(&t, a);
	struct cowfs_node *got = node_find_or_insert(&fs, a);
	ok(got == a && a->refcount == 1 && atomic_load(&fs.nnodes) == 1,
	   "inserting a new key returns the fresh node with one reference");

	/* The same object looked up again: the existing node, and the fresh
	 * duplicate is freed. */
	struct tracker dup;
	tracker_open(&dup);
	struct cowfs_node *b = fresh(&fs, 8, 100);
	track(&dup, b);
	tracker_seal(&dup);
	got = node_find_or_insert(&fs, b);
	ok(got == a && a->refcount == 2 && atomic_load(&fs.nnodes) == 1,
	   "finding an existing key returns that node with one more reference");
	ok(tracker_all_freed(&dup), "the unused fresh node is freed");
	tracker_close(&dup);

	/* Same inode number on another device is another object. */
	struct cowfs_node *c = fresh(&fs, 9, 100);
	track(&t, c);
	got = node_find_or_insert(&fs, c);
	ok(got == c && atomic_load(&fs.nnodes) == 2, "the same inode on another device is another node");

	node_ref(&fs, a);
	ok(a->refcount == 3, "node_ref adds a reference");
	node_unref(&fs, a, 2);
	ok(a->refcount == 1 && atomic_load(&fs.nnodes) == 2,
	   "node_unref by two drops two references, the node stays");

	tracker_seal(&t);
	node_unref(&fs, a, 1);
	ok(atomic_load(&fs.nnodes) == 1 && !tracker_all_freed(&t),
	   "the last reference gone: the node leaves the table (the other is still alive)");
	/* The key is free again: a lookup makes a new node. */
	struct cowfs_node *a2 = fresh(&fs, 8, 100);
	got = node_find_or_insert(&fs, a2);
	ok(got == a2, "a key whose node was freed gets a new node");
	node_unref(&fs, a2, 1);
	node_unref(&fs, c, 1);
	ok(tracker_all_freed(&t) && atomic_load(&fs.nnodes) == 0 && buckets_empty(&fs),
	   "dropping every last reference frees every node and empties the table");
	tracker_close(&t);
	node_table_destroy(&fs);
}

static void test_parents_and_root(void)
{
	struct cowfs fs;
	struct tracker t;

	fs_init(&fs);
	node_table_init(&fs);
	tracker_open(&t);

	struct cowfs_node *root = node_alloc(&fs, S_IFDIR);
	root->refcount = 1;
	fs.root = root;
	node_ref(&fs, root);
	node_unref(&fs, root, 5);
	ok(root->refcount == 1, "node_ref and node_unref leave the root alone");
	node_rekey(&fs, root, 1, 2);
	ok(root->key_dev == 0 && root->key_ino == 0, "node_rekey leaves the root alone");

	struct cowfs_node *dir = node_find_or_insert(&fs, fresh(&fs, 8, 10));
	track(&t, dir);
	struct cowfs_node *child = node_find_or_insert(&fs, fresh(&fs, 8, 11));
	track(&t, child);
	node_set_parent(&fs, child, dir, "f");
	ok(dir->refcount == 2, "a child's parent pointer holds a reference on the parent");

	char *name = NULL;
	struct cowfs_node *p = node_get_parent(&fs, child, &name);
	ok(p == dir && name && strcmp(name, "f") == 0 && dir->refcount == 3,
	   "node_get_parent returns the parent, referenced, and the name");
	free(name);
	node_unref(&fs, p, 1);

	/* Moving the child to the root drops the old parent's reference. */
	node_set_parent(&fs, child, root, "g");
	ok(dir->refcount == 1, "node_set_parent drops the old parent's reference");
	node_set_parent(&fs, child, dir, "f");

	/* The kernel forgets the directory first: the child keeps it alive;
	 * freeing the child then frees the parent too. */
	tracker_seal(&t);
	node_unref(&fs, dir, 1);
	ok(!tracker_all_freed(&t) && atomic_load(&fs.nnodes) == 2, "a parent lives while a child refers to it");
	node_unref(&fs, child, 1);
	ok(tracker_all_freed(&t) && atomic_load(&fs.nnodes) == 0,
	   "freeing the last child frees the parent whose last reference it held");
	tracker_close(&t);

	/* Lower hard links: one object, several names, several nodes until
	 * copied up. */
	struct cowfs_node *d = node_find_or_insert(&fs, fresh(&fs, 8, 20));
	struct cowfs_node *l1 = node_find_or_insert(&fs, fresh_by_name(&fs, 7, 500, d, "one"));
	struct cowfs_node *l2 = node_find_or_insert(&fs, fresh_by_name(&fs, 7, 500, d, "two"));
	struct cowfs_node *l1b = node_find_or_insert(&fs, fresh_by_name(&fs, 7, 500, d, "one"));
	ok(l1 != l2 && l1b == l1 && l1->refcount == 2,
	   "a lower hard link is one node per (parent, name), found again by the same name");
	ok(d->refcount == 3, "the duplicate's parent reference was given back (parent has %llu)",
	   (unsigned long long)d->refcount);
	struct cowfs_node *d2 = node_find_or_insert(&fs, fresh(&fs, 8, 21));
	struct cowfs_node *l3 = node_find_or_insert(&fs, fresh_by_name(&fs, 7, 500, d2, "one"));
	ok(l3 != l1, "the same name in another directory is another node");
	node_unref(&fs, d2, 1);
	node_unref(&fs, l3, 1);
	struct cowfs_node *plain = node_find_or_insert(&fs, fresh(&fs, 7, 500));
	ok(plain != l1 && plain != l2, "a node keyed by identity alone does not match one keyed by name");

	/* Copy-up rekeys l1 to its upper copy: then it is keyed by identity. */
	node_rekey(&fs, l1, 8, 900);
	ok(l1->key_dev == 8 && l1->key_ino == 900 && !l1->key_by_name, "node_rekey sets the new key");
	struct cowfs_node *up = node_find_or_insert(&fs, fresh(&fs, 8, 900));
	ok(up == l1, "after rekey the node is found by its new key");
	struct cowfs_node *old = node_find_or_insert(&fs, fresh_by_name(&fs, 7, 500, d, "one"));
	ok(old != l1, "after rekey the old key no longer finds it");
	node_unref(&fs, old, 1);
	node_unref(&fs, up, 1);
	node_unref(&fs, l1, 2);
	node_unref(&fs, l2, 1);
	node_unref(&fs, plain, 1);
	node_unref(&fs, d, 1);
	ok(atomic_load(&fs.nnodes) == 0 && buckets_empty(&fs), "every node freed, the table is empty");

	/* node_table_destroy frees what is left, the root included. */
	tracker_open(&t);
	track(&t, root);
	for (int i = 0; i < 50; i++) {
		struct cowfs_node *n = node_find_or_insert(&fs, fresh(&fs, 3, 1000 + i));
		track(&t, n);
	}
	tracker_seal(&t);
	node_table_destroy(&fs);
	ok(tracker_all_freed(&t), "node_table_destroy frees every node left and the root");
	tracker_close(&t);
}

/* Many nodes: the table grows from 4096 buckets and loses none. */
#define MANY 40000
static void test_growth(void)
{
	struct cowfs fs;
	struct tracker t;
	struct cowfs_node **nodes = calloc(MANY, sizeof(*nodes));

	fs_init(&fs);
	node_table_init(&fs);
	tracker_open(&t);
	for (int i = 0; i < MANY; i++) {
		nodes[i] = node_find_or_insert(&fs, fresh(&fs, 8, 1 + (ino_t)i * 7));
		if (i % 97 == 0)
			track(&t, nodes[i]);
	}
	tracker_seal(&t);
	size_t nb = fs.nbuckets;
	ok(nb > INITIAL_BUCKETS && (nb & (nb - 1)) == 0 && atomic_load(&fs.nnodes) == MANY,
	   "%d nodes grow the table past %d buckets (to %zu, a power of two)", MANY, INITIAL_BUCKETS, nb);
	ok(atomic_load(&fs.nnodes) <= 2 * nb, "nodes outnumber buckets at most 2:1 (%zu nodes, %zu buckets)",
	   atomic_load(&fs.nnodes), nb);

	int lost = 0;
	for (int i = 0; i < MANY; i++) {
		struct cowfs_node *again = node_find_or_insert(&fs, fresh(&fs, 8, 1 + (ino_t)i * 7));
		if (again != nodes[i])
			lost++;
		node_unref(&fs, again, 1);
	}
	ok(lost == 0, "every node is found under its key after growing (%d lost)", lost);

	size_t chained = 0;
	for (size_t b = 0; b < fs.nbuckets; b++)
		for (struct cowfs_node *n = fs.buckets[b]; n; n = n->hash_next)
			chained++;
	ok(chained == MANY, "the chains hold each node once (%zu)", chained);

	for (int i = 0; i < MANY; i++)
		node_unref(&fs, nodes[i], 1);
	ok(atomic_load(&fs.nnodes) == 0 && buckets_empty(&fs) && tracker_all_freed(&t),
	   "unreferencing them all frees them all");
	tracker_close(&t);
	node_table_destroy(&fs);
	free(nodes);
}

/* ---- node table, several threads ---- */

#define THREADS 6
#define KEYS 12000 /* past 2 * 4096: the table grows while threads insert */

struct insert_ctx {
	struct cowfs *fs;
	int id;
	struct cowfs_node **got; /* [KEYS] */
};

static void *insert_worker(void *arg)
{
	struct insert_ctx *c = arg;
	start_together();
	/* Threads walk the keys in different orders so that they meet on
	 * every key from both sides. */
	for (int k = 0; k < KEYS; k++) {
		int key = c->id % 2 ? KEYS - 1 - k : k;
		c->got[key] = node_find_or_insert(c->fs, fresh(c->fs, 8, 5000 + (ino_t)key));
	}
	return NULL;
}

static void *unref_worker(void *arg)
{
	struct insert_ctx *c = arg;
	start_together();
	for (int k = 0; k < KEYS; k++)
		node_unref(c->fs, c->got[k], 1);
	return NULL;
}

static void test_concurrent_insert(void)
{
	struct cowfs fs;
	struct insert_ctx ctx[THREADS];

	fs_init(&fs);
	node_table_init(&fs);
	for (int i = 0; i < THREADS; i++)
		ctx[i] = (struct insert_ctx){ .fs = &fs, .id = i, .got = calloc(KEYS, sizeof(struct cowfs_node *)) };
	run_threads(THREADS, insert_worker, ctx, sizeof(ctx[0]));

	int split = 0, badref = 0;
	for (int k = 0; k < KEYS; k++) {
		for (int i = 1; i < THREADS; i++)
			if (ctx[i].got[k] != ctx[0].got[k])
				split++;
		if (ctx[0].got[k]->refcount != THREADS)
			badref++;
	}
	ok(split == 0, "%d threads inserting the same %d keys at once get one node per key (%d split)", THREADS,
	   KEYS, split);
	ok(badref == 0 && atomic_load(&fs.nnodes) == KEYS,
	   "each node has one reference per thread and the table holds %d nodes (%zu; %d bad counts)", KEYS,
	   atomic_load(&fs.nnodes), badref);
	ok(fs.nbuckets > INITIAL_BUCKETS, "the table grew while they inserted (%zu buckets)", fs.nbuckets);

	struct tracker t;
	tracker_open(&t);
	for (int k = 0; k < KEYS; k += 61)
		track(&t, ctx[0].got[k]);
	tracker_seal(&t);
	run_threads(THREADS, unref_worker, ctx, sizeof(ctx[0]));
	ok(atomic_load(&fs.nnodes) == 0 && buckets_empty(&fs) && tracker_all_freed(&t),
	   "the same threads dropping their references at once free every node exactly when the last goes");
	tracker_close(&t);

	for (int i = 0; i < THREADS; i++)
		free(ctx[i].got);
	node_table_destroy(&fs);
}

/* References taken and dropped while copy-up rekeys the node between
 * stripes: node_ref/node_unref must lock the stripe the key is in. */
#define REKEYS 2000000
#define REF_THREADS 3
struct rekey_ctx {
	struct cowfs *fs;
	struct cowfs_node *n;
	_Atomic bool done;
};

static void *rekey_worker(void *arg)
{
	struct rekey_ctx *c = arg;
	for (int i = 0; i < REKEYS; i++) {
		/* As copy-up does: under the node's own lock. */
		pthread_mutex_lock(&c->n->lock);
		node_rekey(c->fs, c->n, 8, 70000 + (ino_t)(i % 2 ? i : 0));
		pthread_mutex_unlock(&c->n->lock);
	}
	atomic_store(&c->done, true);
	return NULL;
}

/* The first of the crew rekeys, the others take and drop references. */
static _Atomic int rekey_crew_seat;
static void *refs_worker(void *arg)
{
	struct rekey_ctx *c = arg;
	start_together();
	if (atomic_fetch_add(&rekey_crew_seat, 1) == 0)
		return rekey_worker(arg);
	while (!atomic_load(&c->done)) {
		node_ref(c->fs, c->n);
		node_ref(c->fs, c->n);
		node_unref(c->fs, c->n, 2);
	}
	return NULL;
}

static void test_concurrent_rekey(void)
{
	struct cowfs fs;

	fs_init(&fs);
	node_table_init(&fs);
	struct cowfs_node *n = node_find_or_insert(&fs, fresh(&fs, 7, 1));
	/* Other nodes (another device: never the node's keys) so that the
	 * stripes hold chains. */
	struct cowfs_node *others[256];
	for (int i = 0; i < 256; i++)
		others[i] = node_find_or_insert(&fs, fresh(&fs, 9, 70000 + (ino_t)i));
	struct rekey_ctx c = { .fs = &fs, .n = n };
	run_threads(1 + REF_THREADS, refs_worker, &c, 0);
	ok(n->refcount == 1, "references taken and dropped during %d rekeys balance out (refcount %llu)", REKEYS,
	   (unsigned long long)n->refcount);
	struct cowfs_node *found = node_find_or_insert(&fs, fresh(&fs, 8, 70000 + REKEYS - 1));
	ok(found == n, "the node is found under its last key");
	node_unref(&fs, found, 1);

	struct tracker t;
	tracker_open(&t);
	track(&t, n);
	tracker_seal(&t);
	node_unref(&fs, n, 1);
	ok(tracker_all_freed(&t) && atomic_load(&fs.nnodes) == 256, "its last reference frees it");
	tracker_close(&t);
	for (int i = 0; i < 256; i++)
		node_unref(&fs, others[i], 1);
	ok(atomic_load(&fs.nnodes) == 0 && buckets_empty(&fs), "the chains of every stripe are intact");
	node_table_destroy(&fs);
}

/* ---- origin map ---- */

static void test_origin_basic(void)
{
	struct cowfs fs;
	uint64_t v = 0;

	fs_init(&fs);
	ok(origin_map_init(&fs) == 0 && fs.origins, "origin_map_init succeeds");
	ok(!origin_lookup(&fs, 42, &v), "an empty map finds nothing");
	origin_remember(&fs, 42, 7777);
	ok(origin_lookup(&fs, 42, &v) && v == 7777, "a remembered upper inode maps to its shown inode");
	ok(!origin_lookup(&fs, 43, &v), "another inode is not found");
	origin_remember(&fs, 42, 8888);
	ok(origin_lookup(&fs, 42, &v) && v == 8888, "remembering again replaces the mapping");
	origin_forget(&fs, 42);
	ok(!origin_lookup(&fs, 42, &v), "a forgotten inode is not found (a recycled inode gets no stale number)");
	origin_forget(&fs, 42);
	origin_forget(&fs, 4242);
	ok(!origin_lookup(&fs, 42, &v), "forgetting twice or forgetting the unknown is harmless");
	origin_remember(&fs, 42, 9999);
	ok(origin_lookup(&fs, 42, &v) && v == 9999, "a forgotten inode can be remembered again");

	/* Growth: every stripe starts at 64 slots. */
	enum { N = 50000 };
	for (ino_t i = 1; i <= N; i++)
		origin_remember(&fs, 100000 + i, i * 3);
	int wrong = 0;
	for (ino_t i = 1; i <= N; i++)
		if (!origin_lookup(&fs, 100000 + i, &v) || v != i * 3)
			wrong++;
	ok(wrong == 0, "%d mappings survive the growth of every stripe (%d wrong)", N, wrong);

	/* Forgotten slots (tombstones) are reused or dropped: churn many
	 * times the capacity through the map. */
	for (ino_t i = 1; i <= N; i += 2)
		origin_forget(&fs, 100000 + i);
	for (int round = 0; round < 4; round++)
		for (ino_t i = 1; i <= N; i++) {
			origin_remember(&fs, 1000000 + round * N + i, i);
			origin_forget(&fs, 1000000 + round * N + i);
		}
	wrong = 0;
	for (ino_t i = 1; i <= N; i++) {
		bool found = origin_lookup(&fs, 100000 + i, &v);
		if (i % 2 ? found : !found || v != i * 3)
			wrong++;
	}
	ok(wrong == 0, "after heavy churn the kept mappings are found and the forgotten are not (%d wrong)", wrong);
	origin_map_destroy(&fs);
	ok(fs.origins == NULL, "origin_map_destroy releases the map");
	origin_map_destroy(&fs);
}

#define ORIGIN_THREADS 6
#define ORIGIN_KEYS 20000
struct origin_ctx {
	struct cowfs *fs;
	int id;
	int wrong;
};

/* Each thread owns keys id, id + THREADS, ...: spread over all stripes,
 * every stripe shared by every thread. */
static void *origin_worker(void *arg)
{
	struct origin_ctx *c = arg;
	uint64_t v;

	start_together();
	for (int k = c->id; k < ORIGIN_KEYS; k += ORIGIN_THREADS) {
		origin_remember(c->fs, 10 + (ino_t)k, (uint64_t)k * 11);
		if (!origin_lookup(c->fs, 10 + (ino_t)k, &v) || v != (uint64_t)k * 11)
			c->wrong++;
	}
	for (int k = c->id; k < ORIGIN_KEYS; k += ORIGIN_THREADS) {
		if (k % 3 == 0)
			origin_forget(c->fs, 10 + (ino_t)k);
		else if (k % 3 == 1)
			origin_remember(c->fs, 10 + (ino_t)k, (uint64_t)k * 13);
	}
	for (int k = c->id; k < ORIGIN_KEYS; k += ORIGIN_THREADS) {
		bool found = origin_lookup(c->fs, 10 + (ino_t)k, &v);
		uint64_t want = k % 3 == 1 ? (uint64_t)k * 13 : (uint64_t)k * 11;
		if (k % 3 == 0 ? found : !found || v != want)
			c->wrong++;
	}
	return NULL;
}

static void test_origin_concurrent(void)
{
	struct cowfs fs;
	struct origin_ctx ctx[ORIGIN_THREADS];

	fs_init(&fs);
	origin_map_init(&fs);
	for (int i = 0; i < ORIGIN_THREADS; i++)
		ctx[i] = (struct origin_ctx){ .fs = &fs, .id = i };
	run_threads(ORIGIN_THREADS, origin_worker, ctx, sizeof(ctx[0]));
	int wrong = 0;
	for (int i = 0; i < ORIGIN_THREADS; i++)
		wrong += ctx[i].wrong;
	ok(wrong == 0, "%d threads remembering, replacing and forgetting %d inodes across all stripes see only their own results (%d wrong)",
	   ORIGIN_THREADS, ORIGIN_KEYS, wrong);
	wrong = 0;
	uint64_t v;
	for (int k = 0; k < ORIGIN_KEYS; k++) {
		bool found = origin_lookup(&fs, 10 + (ino_t)k, &v);
		uint64_t want = k % 3 == 1 ? (uint64_t)k * 13 : (uint64_t)k * 11;
		if (k % 3 == 0 ? found : !found || v != want)
			wrong++;
	}
	ok(wrong == 0, "afterwards the map holds exactly the kept mappings (%d wrong)", wrong);
	origin_map_destroy(&fs);
}

int main(void)
{
	test_insert_find_ref_unref();
	test_parents_and_root();
	test_growth();
	test_concurrent_insert();
	test_concurrent_rekey();
	test_origin_basic();
	test_origin_concurrent();
	return tap_done();
}
