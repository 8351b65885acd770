/* store internals: the on-disk structures of store/FORMAT.md and the
 * handle.  Included only inside store/ (and by its tests). */
#ifndef CORRAL_STORE_INTERNAL_H
#define CORRAL_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"

/* ---- records (FORMAT.md "Records") ---- */
#define STORE_REC_MAGIC "CSR\x01"
#define STORE_REC_HDR 48
enum { STORE_KIND_BLOCK = 1, STORE_KIND_RECIPE = 2 };
struct store_rec {
	uint8_t kind;
	uint32_t len;
	struct store_key key;
	uint64_t data_check;	/* XXH3-64 of the payload (unseeded) */
};
_Static_assert(STORE_REC_HDR == 4 + 2 + 1 + 1 + 4 + 4 + 16 + 8 + 8, "record header layout");
void store_rec_encode(const struct store_rec *r, uint8_t out[STORE_REC_HDR]);
/* Validates magic, version, kind, length and the header checksum: 0,
 * -EPROTONOSUPPORT (another version) or -EBADMSG. */
int store_rec_decode(const uint8_t in[STORE_REC_HDR], struct store_rec *ret);
uint64_t store_check64(const void *data, size_t len);

/* ---- packs (FORMAT.md "Packs") ---- */
#define STORE_PACK_MAGIC "CORRALPK"
#define STORE_PACK_HDR 32
#define STORE_PACK_MAX (1ull << 32)	/* a writer starts a new pack past 4 GiB */
int store_pack_hdr_check(const uint8_t in[STORE_PACK_HDR], uint32_t *ret_no);
void store_pack_hdr_encode(uint32_t no, uint8_t out[STORE_PACK_HDR]);
/* One record read from a pack, verified: header, payload checksum and (if
 * hash is set) the key against the payload.  -EBADMSG on any mismatch,
 * -ENODATA past the end or on a short record. */
int store_pack_read(struct store *s, int fd, uint64_t off, struct store_rec *rec, uint8_t *payload,
		    size_t cap, bool check_key);
/* The payload of a decoded record against its checksum and (if check_key)
 * its key: 0 or -EBADMSG. */
int store_rec_verify(struct store *s, const struct store_rec *rec, const uint8_t *payload, bool check_key);

/* ---- the index (FORMAT.md "Index") ---- */
#define STORE_INDEX_MAGIC "CORRALIX"
/* The index's own version, apart from the store's: an index of another
 * version is rebuilt from the packs (it is a cache), never refused. */
#define STORE_INDEX_VERSION 2
#define STORE_INDEX_HDR 4096
#define STORE_COVER_SLOTS 4096
/* A slot: pack u32, offset u32, then a word of kind, conflict, n (0, or 1
 * for "1 or more"), length and a fingerprint (the top 43 bits of the hash
 * for a block, 35 for a recipe; the top ones also place the slot).  The
 * full key is in the record. */
#define STORE_SLOT 16
#define STORE_SLOT_FP 15	/* a byte of the fingerprint in a slot */
#define STORE_SLOT_NMAX 1
#define STORE_INDEX_MIN_SLOTS 4096
#define STORE_INDEX_MAX_SLOTS (1ull << 32)	/* the fingerprint places a slot */
/* The pack number of an index entry whose key two different records
 * claim (never a real pack: numbers start at 1). */
#define STORE_PACK_CONFLICT 0
struct store_loc {
	uint32_t pack;
	uint32_t len;
	uint64_t off;
	uint8_t kind;
};
/* How store_index_find trusts a slot whose fingerprint matches. */
enum store_find {
	/* One candidate is taken as it is, without reading its record: right
	 * whenever the key is indexed (its own slot is a candidate too); a
	 * slot of another key (2^-18 per slot compared at 1 TiB of blocks,
	 * FORMAT.md "Index") only when it is not.  For callers that verify
	 * what they read, or for whom a stray slot is harmless (gc's mark
	 * keeps more, never less). */
	STORE_FIND_FAST,
	/* Records read until one holds the key; if none does, a candidate
	 * whose record is unreadable (it may be the key's, damaged). */
	STORE_FIND_VERIFY,
	/* Only a slot whose record holds the key. */
	STORE_FIND_CONFIRMED,
};
/* Under the index lock (shared is enough to read). */
int store_index_map(struct store *s, bool create);
void store_index_unmap(struct store *s);
/* Remaps if another process replaced the index (under the lock). */
int store_index_refresh(struct store *s);
/* Calls fn for each entry of kind whose fingerprint is hash's: the entries
 * of (kind, hash) and, rarely, of another hash (fn reads the record and
 * checks its key).  n is the slot's: 0, or STORE_SLOT_NMAX for "that or
 * more".  Stops when fn returns non-zero and returns that value. */
typedef int (*store_slot_fn)(void *ctx, uint32_t n, const struct store_loc *loc, uint64_t slot);
int store_index_each(struct store *s, uint8_t kind, const uint8_t hash[16], store_slot_fn fn, void *ctx);
int store_index_find(struct store *s, uint8_t kind, const struct store_key *k, enum store_find how,
		     struct store_loc *ret, uint64_t *ret_slot);
/* Under the exclusive lock. */
int store_index_insert(struct store *s, uint8_t kind, const struct store_key *k, const struct store_loc *loc);
/* Points slot at loc; loc->pack STORE_PACK_CONFLICT marks it a conflict
 * (its record is kept in the slot: it names the key). */
void store_index_set_loc(struct store *s, uint64_t slot, const struct store_loc *loc);
int store_index_cover(struct store *s, uint32_t pack, uint64_t end);
uint64_t store_index_covered(struct store *s, uint32_t pack, bool *known);
uint64_t store_index_nslots(struct store *s);
/* The generation of gc.condemned, in the index header (under the lock). */
uint32_t store_index_gcgen(struct store *s);
void store_index_set_gcgen(struct store *s, uint32_t gen);
/* Whether pack `no` is being collected (gc.condemned, reloaded when the
 * generation changed); under the index lock.  A writer never shares a
 * record from such a pack. */
bool store_gc_condemned(struct store *s, uint32_t no);
/* Clears a collection's leftovers (gc.condemned) when no gc runs; under
 * the exclusive index lock (store_open). */
void store_gc_clear_stale(struct store *s);
/* Slot i's location and the top 32 bits of its fingerprint (the hash's
 * first 4 bytes; ret_fp may be NULL); false if empty. */
bool store_index_slot(struct store *s, uint64_t i, struct store_loc *loc, uint32_t *ret_fp);
/* Whether slot i can be record rec's entry (kind, fingerprint, n, length). */
bool store_index_slot_is(struct store *s, uint64_t i, const struct store_rec *rec);
/* Makes sure the cover table has a free entry (may compact the index,
 * which moves every slot: call it before taking slot numbers). */
int store_index_cover_room(struct store *s);
void store_index_uncover(struct store *s, uint32_t pack);
/* Whether the index was made in this boot (else its pages may not all
 * have reached the disk before a power loss: rebuild). */
bool store_index_from_this_boot(struct store *s);
/* A fresh index from a scan of every pack (valid records only); replaces
 * the current one.  report (may be NULL) hears of bad records. */
int store_index_rebuild(struct store *s, store_report_fn report, void *ctx, struct corral_error *err);
/* Scans each pack's bytes past what the index covers and indexes them;
 * -ESTALE if the index and the packs disagree (needs a rebuild). */
int store_index_catch_up(struct store *s);
/* A new index holding the entries keep() accepts (GC's compaction). */
int store_index_compact(struct store *s, bool (*keep)(void *ctx, uint64_t slot, struct store_loc *loc),
			void *ctx);

/* ---- locks ---- */
int store_lock(int fd, int op);	/* flock, retried on EINTR; -errno */
int store_index_lock(struct store *s, bool exclusive);	/* and refreshes the map */
void store_index_unlock(struct store *s);
/* The whole store for one maintenance run (gc, fsck): no other run
 * (gc.run), no write transaction (gc.lock), then the index (exclusive
 * or shared).  On failure nothing is held; `what` names the run. */
int store_lock_maintenance(struct store *s, bool index_exclusive, const char *what, struct corral_error *err);

/* Scans one pack: fn for each valid record (and on_bad for each damaged
 * stretch: offset, length, what).  Stops at a torn tail (*torn set). */
struct store_scan_cb {
	int (*rec)(void *ctx, uint32_t pack, uint64_t off, const struct store_rec *rec);
	void (*bad)(void *ctx, uint32_t pack, uint64_t off, uint64_t len, const char *what);
	void *ctx;
	bool verify_payload;	/* read and check payloads (fsck), else headers only */
};
int store_pack_scan(struct store *s, int fd, uint32_t no, uint64_t from, const struct store_scan_cb *cb,
		    uint64_t *ret_end, uint64_t *ret_torn);
/* The pack numbers in packs/, sorted. */
int store_pack_list(struct store *s, uint32_t **ret, size_t *ret_n);
/* "%08x.pack" of pack `no`. */
void store_pack_name(uint32_t no, char buf[32]);
/* How many packs there are and their bytes on disk (a pack removed
 * meanwhile counts nothing). */
int store_packs_size(struct store *s, uint64_t *ret_n, uint64_t *ret_bytes);
/* A read descriptor for pack `no` (cached by the handle; do not close). */
int store_pack_fd(struct store *s, uint32_t no);
void store_pack_fd_forget(struct store *s, uint32_t no);
/* The handle's own pack, made on first use: locked LOCK_EX for its life. */
int store_pack_own(struct store *s);
/* Appends a record to the own pack (under the index lock). */
int store_pack_append(struct store *s, const struct store_rec *rec, const void *payload,
		      struct store_loc *ret);

/* ---- recipes, roots ---- */
int store_recipe_parse(const uint8_t *p, size_t len, struct store_recipe *ret);
int store_recipe_encode(const struct store_recipe *r, uint8_t **ret, size_t *ret_len);
int store_root_parse(const char *text, size_t len, struct store_root *ret);

/* ---- the handle ---- */
typedef void (*store_hash_fn)(const void *data, size_t len, uint64_t seed, uint8_t out[16]);
#define STORE_RFD_CACHE 32
#define STORE_TOUCHED 64
struct store {
	int dirfd, packsfd, rootsfd;
	int index_lock_fd, gc_lock_fd;
	unsigned flags;
	uint64_t seed;
	store_hash_fn hash;
	/* The mapped index; valid under the index lock. */
	int index_fd;
	const char *index_name;	/* the mapped file if not "index" (a rebuild in progress) */
	uint8_t *map;
	size_t map_len;
	/* The own pack (-1 until the first write). */
	int pack_fd;
	uint32_t pack_no;
	uint64_t pack_end;
	bool pack_dirty;
	/* Packs shared from since the last sync (made durable by store_sync
	 * before anything durable points at them). */
	uint32_t touched[STORE_TOUCHED];
	size_t ntouched;
	struct {
		uint32_t no;
		int fd;
	} rfd[STORE_RFD_CACHE];
	unsigned rfd_next;
	int txn;		/* store_begin depth */
	int index_locked;	/* 0, 1 shared, 2 exclusive */
	unsigned tmp_seq;	/* names of temp index files */
	int index_depth;	/* nested store_index_lock calls inside the held lock */
	bool broken;		/* a write failed: refuse further writes (LMDB's rule) */
	char rebuilt[64];	/* why store_open rebuilt the index ("" if it did not) */
	int gc_run_fd;		/* gc.run: one collection (or fsck) at a time */
	/* The packs a running collection is emptying (see store-gc.c). */
	uint32_t cond_gen;
	uint32_t *cond;
	size_t ncond;
	const char *crash_at;	/* tests: the fault point to die at */
	const char *stop_at;	/* tests: the point to SIGSTOP at */
};

void store_hash_xxh3(const void *data, size_t len, uint64_t seed, uint8_t out[16]);
/* Test hooks: a weak hash (forced collisions; the index rebuild at open
 * checks keys with it too) and kill -9 at a named point of the write path. */
int store_open_hash(const char *dir, unsigned flags, store_hash_fn hash, struct store **ret,
		    struct corral_error *err);
void store_test_crash_at(struct store *s, const char *point);
void store_crash_point(struct store *s, const char *point);
void store_test_stop_at(struct store *s, const char *point);

int store_put_object(struct store *s, uint8_t kind, const void *data, size_t len, struct store_key *ret,
		     struct corral_error *err);
int store_get_object(struct store *s, uint8_t kind, const struct store_key *k, uint8_t **ret,
		     size_t *ret_len, struct corral_error *err);
/* Durable file commit (common's file_commit_at, always synced: never
 * file_write_atomic, whose durability a process may switch off) with the
 * crash points commit-written, commit-synced, commit-renamed. */
int store_commit_file(struct store *s, int dirfd, const char *name, const void *data, size_t len);

static inline void store_put_le16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static inline void store_put_le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = v >> (8 * i); }
static inline void store_put_le64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = v >> (8 * i); }
static inline uint16_t store_le16(const uint8_t *p) { return p[0] | (uint16_t)p[1] << 8; }
static inline uint32_t store_le32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static inline uint64_t store_le64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

#endif
