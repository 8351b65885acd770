/* store: corral's content-addressed, block-deduplicating, crash-safe store.
 *
 * One store per host (<state root>/store), opened by many processes at
 * once (every container's cowfs, the corral command).  Content goes in as
 * blocks of at most STORE_BLOCK_SIZE bytes, each kept once and named by a
 * key: its XXH3-128 (seeded with the store's secret seed) plus a collision
 * index, because a hash hit is compared byte for byte before a block is
 * shared and a real collision is stored separately under the next index.
 * A file's content is a recipe (its blocks' keys and lengths), itself a
 * stored object; a root is a named, atomically committed list of recipes,
 * and everything a root reaches survives garbage collection.
 *
 * Invariants: data is durable before anything durable points at it
 * (store_root_commit syncs every pack the transaction wrote or shared
 * from before it renames the root into place); a record read back is
 * verified (header checksum, payload checksum, key) before it is used;
 * the index is a cache that store_open rebuilds from the packs when it is
 * missing or inconsistent.  The on-disk format is store/FORMAT.md.
 *
 * Writers work inside store_begin / store_end (a shared hold on the GC
 * lock, so a collection never runs between a put and the root that keeps
 * it).  A key put in a transaction is safe from GC only until store_end:
 * commit a root naming it before ending the transaction.  A handle is for one thread at a time.  All calls return 0 or
 * -errno and fill err (may be NULL); the library never prints.
 *
 * Module store (beside the launcher; cowfs and the CLI call it).
 * May call: common. */
#ifndef CORRAL_STORE_H
#define CORRAL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Chosen by measurement on a Debian minbase tree: see README's store
 * section.  Files are cut at this size; the tail is a shorter block. */
#define STORE_BLOCK_SIZE (64 * 1024)
/* The largest record payload (a recipe of ~700k blocks, ~43 GiB file). */
#define STORE_RECORD_MAX (16u * 1024 * 1024)
/* Format version of this code (FORMAT, packs, records, index, roots). */
#define STORE_FORMAT_VERSION 1

struct store;

struct store_key {
	uint8_t hash[16];	/* XXH3-128 of the content, big-endian */
	uint32_t n;		/* collision index: 0 unless a different content hashed alike */
};
/* "<32 hex>" or "<32 hex>+N" for N > 0, NUL included. */
#define STORE_KEY_STR_MAX 48
const char *store_key_str(const struct store_key *k, char buf[STORE_KEY_STR_MAX]);
int store_key_parse(const char *s, struct store_key *ret);
bool store_key_eq(const struct store_key *a, const struct store_key *b);

enum {
	STORE_CREATE = 1 << 0,		/* make the store if `dir` has none */
};
/* Opens (and with STORE_CREATE makes, mode 0700) the store in `dir`.  A
 * store of another format version is -EPROTONOSUPPORT with a message
 * naming both versions.  The index is checked and caught up or rebuilt. */
int store_open(const char *dir, unsigned flags, struct store **ret, struct corral_error *err);
void store_close(struct store *s);

/* A write transaction: puts and root commits happen inside one; GC waits
 * for every open transaction to end and holds new ones off while it runs. */
int store_begin(struct store *s, struct corral_error *err);
void store_end(struct store *s);

/* Stores one block (len <= STORE_BLOCK_SIZE, may be 0) unless an equal one
 * is there; *ret is its key.  Not durable until store_sync (which
 * store_root_commit does first). */
int store_put_block(struct store *s, const void *data, size_t len, struct store_key *ret,
		    struct corral_error *err);
/* Reads a block into buf (STORE_BLOCK_SIZE bytes); *ret_len its length. */
int store_get_block(struct store *s, const struct store_key *k, void *buf, size_t *ret_len,
		    struct corral_error *err);
/* Makes everything this handle wrote or shared from durable. */
int store_sync(struct store *s, struct corral_error *err);

struct store_recipe_entry {
	struct store_key key;
	uint32_t len;
};
struct store_recipe {
	uint64_t size;		/* sum of the entries' lengths */
	size_t n;
	struct store_recipe_entry *e;
};
void store_recipe_release(struct store_recipe *r);
/* Reads the blocks e[0..n) back to back into buf (the sum of their
 * lengths; a block whose length is not e[i].len is damage).  Verified as
 * store_get_block verifies (store-read.c): sequential readers of a
 * recipe's blocks pay one index lock and one read per run of records
 * that lie back to back in a pack. */
int store_get_blocks(struct store *s, const struct store_recipe_entry *e, size_t n, void *buf,
		     struct corral_error *err);
/* Stores a recipe (durable, like blocks, at store_sync or the root commit). */
int store_put_recipe(struct store *s, const struct store_recipe *r, struct store_key *ret,
		     struct corral_error *err);
int store_get_recipe(struct store *s, const struct store_key *k, struct store_recipe *ret,
		     struct corral_error *err);
/* A whole file: fd's content from offset 0 to EOF in blocks, then its
 * recipe; *ret the recipe's key, *ret_size the bytes read. */
int store_put_fd(struct store *s, int fd, struct store_key *ret, uint64_t *ret_size,
		 struct corral_error *err);
/* Writes a recipe's content to fd (from its current offset). */
int store_read_to_fd(struct store *s, const struct store_key *recipe, int fd,
		     struct corral_error *err);

/* A root: a name ([A-Za-z0-9_.-]{1,200}, not starting with '.') and a list
 * of (recipe, label) pairs; the label is any string without NUL (a path,
 * later).  Commit is atomic and durable (temp, fsync, rename, fsync dir)
 * after a store_sync. */
struct store_root_entry {
	struct store_key recipe;
	char *label;
};
struct store_root {
	size_t n;
	struct store_root_entry *e;
};
void store_root_release(struct store_root *r);
int store_root_commit(struct store *s, const char *name, const struct store_root *r,
		      struct corral_error *err);
int store_root_read(struct store *s, const char *name, struct store_root *ret,
		    struct corral_error *err);
int store_root_remove(struct store *s, const char *name, struct corral_error *err);
/* The roots' names, sorted; free each and the array. */
int store_root_list(struct store *s, char ***ret, size_t *ret_n, struct corral_error *err);

struct store_stats {
	uint64_t logical_bytes;	/* content the roots' entries name, counted per entry */
	uint64_t unique_bytes;	/* payload of the distinct blocks in the index */
	uint64_t stored_bytes;	/* size of the pack files (headers and garbage included) */
	uint64_t blocks, recipes, packs, roots;
	uint64_t index_bytes;	/* size of the index file */
};
int store_stats(struct store *s, struct store_stats *ret, struct corral_error *err);

/* fsck: checks every pack record (header, payload, key), the index against
 * the packs, and every root's recipes and blocks; each finding goes to
 * `report` as one line.  With STORE_FSCK_REPAIR it rebuilds the index from
 * the valid records (a corrupt record is dropped from it; a key that has
 * another valid copy is thereby salvaged) and then re-checks the roots,
 * whose remaining losses it reports as not repairable. */
enum { STORE_FSCK_REPAIR = 1 << 0 };
enum store_finding { STORE_FSCK_INFO, STORE_FSCK_ERROR, STORE_FSCK_LOST };
struct store_fsck_result {
	uint64_t records, bad_records, torn_bytes, index_errors;
	uint64_t roots, bad_roots, lost_files;	/* lost: a root entry that cannot be read */
	bool repaired;				/* the index was rebuilt */
};
typedef void (*store_report_fn)(void *ctx, enum store_finding kind, const char *line);
int store_fsck(struct store *s, unsigned flags, store_report_fn report, void *ctx,
	       struct store_fsck_result *ret, struct corral_error *err);

/* GC: keeps what the roots reach, rewrites the packs holding anything else
 * into a new pack and deletes them (packs a live writer owns are left for
 * a later run), then compacts the index.  Waits for open transactions to
 * end and holds new ones off only while it marks; writers and readers run
 * while it copies. */
struct store_gc_result {
	uint64_t packs_before, packs_after, bytes_before, bytes_after, records_dropped;
	uint64_t packs_busy;	/* owned by a live writer, not collected */
};
int store_gc(struct store *s, struct store_gc_result *ret, struct corral_error *err);

#endif
