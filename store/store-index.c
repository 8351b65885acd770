/* store: the index, an mmap'ed open-addressing table on disk (FORMAT.md
 * "Index").  It is a cache of where each key's record lies: everything in
 * it can be rebuilt from the packs, and it is rebuilt when it is missing,
 * damaged, from another boot (its pages may not have reached the disk) or
 * disagrees with the packs.
 *
 * A slot (16 bytes) holds a fingerprint of the key (the top 43 bits of
 * its hash for a block, 35 for a recipe), not the key: the fingerprint's
 * top 32 bits place the slot (fastrange, so the table need not double),
 * the rest tells candidates apart; the record header read on a candidate
 * holds the full key, and a hit is verified anyway.  At most 3/4 of the
 * slots are used and a full table grows by 5/4: 21.3 to 26.7 bytes of
 * index per record.
 *
 * Locking: index.lock is flock'ed shared to read the map and exclusive to
 * change it (insert, grow, replace).  A slot is published by storing its
 * meta word (nonzero) after its location word, so even a process killed
 * half-way through an insert leaves either no entry or a whole one.  When the file
 * is replaced (growth, rebuild, GC) the old one is marked stale before the
 * rename; a process finding its map stale under the lock maps the new one. */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "store-internal.h"

/* Header fields (offsets). */
#define H_GCGEN 12 /* generation of gc.condemned (not checksummed: it changes) */
#define H_NSLOTS 16
#define H_NUSED 24
#define H_BOOT 32
#define H_NCOVER 48
#define H_CHECK 56
#define COVER_OFF STORE_INDEX_HDR
#define SLOTS_PER_PAGE (4096 / STORE_SLOT)

/* The slot's meta word (FORMAT.md "Index"); zero is an empty slot.  From
 * the low bits: kind (2), conflict (1), n (1: 0, or 1 for "1 or more"),
 * the length (17 bits for a block, 25 for a recipe), and the rest the
 * fingerprint: the top bits of the hash's first 8 bytes (big-endian), 43
 * for a block, 35 for a recipe.  A slot's position says the top log2
 * (nslots) of them (they place it): the others tell keys apart. */
#define FP_BITS(kind) ((kind) == STORE_KIND_RECIPE ? 35u : 43u)
#define M_KIND(w) ((uint8_t)((w) & 3))
#define M_CONFLICT(w) (((w) >> 2) & 1)
#define M_N(w) ((uint32_t)((w) >> 3) & 1)
#define M_LEN(w) ((uint32_t)(((w) >> 4) & ((1ull << (60 - FP_BITS(M_KIND(w)))) - 1)))
#define M_FP(w) ((w) >> (64 - FP_BITS(M_KIND(w))))
#define M_TOP32(w) ((uint32_t)((w) >> 32))
_Static_assert(STORE_BLOCK_SIZE < (1u << (60 - 43)), "a block's length fits its slot's 17 bits");
_Static_assert(STORE_RECORD_MAX < (1u << (60 - 35)), "a recipe's length fits its slot's 25 bits");
_Static_assert(STORE_KIND_BLOCK <= 3 && STORE_KIND_RECIPE <= 3, "a kind fits the slot's 2 bits");
_Static_assert(STORE_PACK_MAX <= (1ull << 32), "a record's offset in its pack fits the slot's 32 bits");
_Static_assert(STORE_SLOT_NMAX == 1, "the slot holds n as one bit");

/* The hash's first 8 bytes, big-endian: the key's fingerprint is its top
 * bits, and its top 32 bits (the hash's first 4 bytes) place the slot. */
static uint64_t key_h64(const uint8_t hash[16])
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | hash[i];
	return v;
}

static uint64_t fp_of(uint64_t h64, uint8_t kind)
{
	return h64 >> (64 - FP_BITS(kind));
}

/* h64 may be a meta word (its top bits are the fingerprint). */
static uint64_t meta_word(uint8_t kind, bool conflict, uint32_t n, uint32_t len, uint64_t h64)
{
	return fp_of(h64, kind) << (64 - FP_BITS(kind)) | (uint64_t)len << 4 | (uint64_t)(n ? 1 : 0) << 3 |
	       (uint64_t)conflict << 2 | kind;
}

/* The slot a key's first 4 bytes start probing at: fastrange, uniform for
 * any table size (the table grows by 5/4, not by doubling). */
static uint64_t fp_home(uint32_t top32, uint64_t nslots)
{
	return ((uint64_t)top32 * nslots) >> 32;
}

static uint64_t slots_off(uint32_t ncover)
{
	return ((uint64_t)COVER_OFF + (uint64_t)ncover * 16 + 4095) & ~4095ull;
}

static void read_boot_id(uint8_t out[16])
{
	char buf[64] = "";
	memset(out, 0, 16);
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
	if (!f)
		return;
	if (fgets(buf, sizeof(buf), f)) {
		int j = 0;
		for (int i = 0; buf[i] && j < 32; i++) {
			char c = buf[i];
			int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
			if (v < 0)
				continue;
			out[j / 2] |= v << (j % 2 ? 0 : 4);
			j++;
		}
	}
	fclose(f);
}

/* The checksum covers the immutable fields (not stale, not nused). */
static uint64_t hdr_check(const uint8_t *h)
{
	uint8_t c[H_CHECK];
	memcpy(c, h, H_CHECK);
	memset(c + H_GCGEN, 0, 4);
	memset(c + H_NUSED, 0, 8);
	return store_check64(c, H_CHECK);
}

int store_lock(int fd, int op)
{
	while (flock(fd, op) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

void store_index_unmap(struct store *s)
{
	if (s->map)
		munmap(s->map, s->map_len);
	if (s->index_fd >= 0)
		close(s->index_fd);
	s->map = NULL;
	s->index_fd = -1;
}

/* Makes an index file of nslots in a temp file (`tmp`, sized), the used
 * cover entries copied in; the caller fills it and publishes it with
 * index_publish.  Under the exclusive lock. */
static int index_create_tmp(struct store *s, uint64_t nslots, const uint8_t *cover, uint32_t ncover_used,
			    char tmp[64])
{
	uint32_t ncover = STORE_COVER_SLOTS;
	while (ncover < ncover_used * 2)
		ncover *= 2;
	uint64_t len = slots_off(ncover) + nslots * STORE_SLOT;
	snprintf(tmp, 64, "index.tmp.%d.%u", (int)getpid(), s->tmp_seq++);
	cleanup_close int fd = openat(s->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	uint8_t h[STORE_INDEX_HDR] = { 0 };
	memcpy(h, STORE_INDEX_MAGIC, 8);
	store_put_le32(h + 8, STORE_INDEX_VERSION);
	store_put_le64(h + H_NSLOTS, nslots);
	read_boot_id(h + H_BOOT);
	store_put_le32(h + H_NCOVER, ncover);
	store_put_le64(h + H_CHECK, hdr_check(h));
	/* A fresh generation: every handle reloads gc.condemned once. */
	uint32_t gen = 0;
	while (gen == 0)
		if (getrandom(&gen, sizeof(gen), 0) != sizeof(gen))
			gen = (uint32_t)getpid() | 1;
	store_put_le32(h + H_GCGEN, gen);
	if (ftruncate(fd, len) < 0 || pwrite(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    (cover && pwrite(fd, cover, (size_t)ncover_used * 16, COVER_OFF) != (ssize_t)ncover_used * 16)) {
		int e = errno ? errno : EIO;
		unlinkat(s->dirfd, tmp, 0);
		return -e;
	}
	return 0;
}

/* Renames the filled temp index over "index".  Other processes notice
 * the new inode the next time they take the lock (map_stale). */
static int index_publish(struct store *s, const char *tmp)
{
	if (renameat(s->dirfd, tmp, s->dirfd, s->index_name ? s->index_name : "index") < 0) {
		int e = errno;
		unlinkat(s->dirfd, tmp, 0);
		return -e;
	}
	return 0;
}

static int index_create(struct store *s, uint64_t nslots)
{
	char tmp[64];
	int r = index_create_tmp(s, nslots, NULL, 0, tmp);
	if (r == 0)
		r = index_publish(s, tmp);
	if (r == 0)
		store_index_unmap(s);
	return r;
}

/* Maps the index file `name` (validated) into s. */
static int index_map_file(struct store *s, const char *name)
{
	int fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	struct stat st;
	uint8_t h[STORE_INDEX_HDR];
	if (fstat(fd, &st) < 0 || pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		close(fd);
		return -EBADMSG;
	}
	uint64_t nslots = store_le64(h + H_NSLOTS);
	uint32_t ncover = store_le32(h + H_NCOVER);
	if (memcmp(h, STORE_INDEX_MAGIC, 8) == 0 && store_le32(h + 8) != STORE_INDEX_VERSION) {
		/* Another version's index (the previous one had 32-byte slots
		 * holding whole hashes): store_open rebuilds it. */
		close(fd);
		return -EPROTONOSUPPORT;
	}
	if (memcmp(h, STORE_INDEX_MAGIC, 8) != 0 || store_le64(h + H_CHECK) != hdr_check(h) ||
	    nslots < STORE_INDEX_MIN_SLOTS || nslots % SLOTS_PER_PAGE || nslots > STORE_INDEX_MAX_SLOTS ||
	    ncover == 0 || ncover > (1u << 24) ||
	    (uint64_t)st.st_size != slots_off(ncover) + nslots * STORE_SLOT) {
		close(fd);
		return -EBADMSG;
	}
	void *m = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		int e = errno;
		close(fd);
		return -e;
	}
	s->index_fd = fd;
	s->map = m;
	s->map_len = st.st_size;
	return 0;
}

int store_index_map(struct store *s, bool create)
{
	store_index_unmap(s);
	int r = index_map_file(s, "index");
	if (r == -ENOENT && create) {
		r = index_create(s, STORE_INDEX_MIN_SLOTS);
		if (r == 0)
			r = index_map_file(s, "index");
	}
	return r;
}

/* Whether another process replaced the index since we mapped it (or we
 * have none).  An inode comparison rather than a flag in the old file: a
 * process killed between its rename and anything after it still leaves
 * the others able to tell. */
static bool map_stale(struct store *s)
{
	struct stat a, b;
	if (!s->map || fstat(s->index_fd, &a) < 0 || fstatat(s->dirfd, "index", &b, AT_SYMLINK_NOFOLLOW) < 0)
		return true;
	return a.st_ino != b.st_ino || a.st_dev != b.st_dev;
}

int store_index_refresh(struct store *s)
{
	return map_stale(s) ? store_index_map(s, s->index_locked == 2) : 0;
}

int store_lock_maintenance(struct store *s, bool index_exclusive, const char *what, struct corral_error *err)
{
	int r = store_lock(s->gc_run_fd, LOCK_EX);
	if (r < 0)
		return err_set(err, -r, "%s: wait for another gc or fsck", what);
	r = store_lock(s->gc_lock_fd, LOCK_EX);
	if (r < 0) {
		flock(s->gc_run_fd, LOCK_UN);
		return err_set(err, -r, "%s: lock the store", what);
	}
	r = store_index_lock(s, index_exclusive);
	if (r < 0) {
		flock(s->gc_lock_fd, LOCK_UN);
		flock(s->gc_run_fd, LOCK_UN);
		return err_set(err, -r, "%s: lock the store index", what);
	}
	return 0;
}

int store_index_lock(struct store *s, bool exclusive)
{
	/* Nested (fsck and gc hold the lock while they read recipes): the
	 * lock held is kept as it is; flock would convert it, and the inner
	 * unlock would drop it. */
	if (s->index_locked) {
		if (exclusive && s->index_locked != 2)
			return -EDEADLK; /* no upgrade: take it exclusive first */
		s->index_depth++;
		return 0;
	}
	for (;;) {
		int r = store_lock(s->index_lock_fd, exclusive ? LOCK_EX : LOCK_SH);
		if (r < 0)
			return r;
		s->index_locked = exclusive ? 2 : 1;
		if (!map_stale(s))
			return 0;
		r = store_index_map(s, exclusive);
		if (r == 0)
			return 0;
		if (exclusive || r != -ENOENT) {
			store_index_unlock(s);
			return r;
		}
		/* No index at all: make one under the exclusive lock. */
		store_index_unlock(s);
		exclusive = true;
	}
}

void store_index_unlock(struct store *s)
{
	if (s->index_depth > 0) {
		s->index_depth--;
		return;
	}
	s->index_locked = 0;
	flock(s->index_lock_fd, LOCK_UN);
}

uint32_t store_index_gcgen(struct store *s)
{
	return __atomic_load_n((uint32_t *)(s->map + H_GCGEN), __ATOMIC_ACQUIRE);
}

void store_index_set_gcgen(struct store *s, uint32_t gen)
{
	__atomic_store_n((uint32_t *)(s->map + H_GCGEN), gen, __ATOMIC_RELEASE);
}

uint64_t store_index_nslots(struct store *s)
{
	return store_le64(s->map + H_NSLOTS);
}

static uint8_t *slot_at(struct store *s, uint64_t i)
{
	return s->map + slots_off(store_le32(s->map + H_NCOVER)) + i * STORE_SLOT;
}

/* A slot is two little-endian words, each naturally aligned: the
 * location (pack, offset) and the meta word, stored last. */
static uint64_t slot_meta(const uint8_t *p)
{
	return le64toh(__atomic_load_n((const uint64_t *)(p + 8), __ATOMIC_ACQUIRE));
}

static uint64_t slot_locword(const uint8_t *p)
{
	return le64toh(__atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED));
}

/* The entry's location as callers see it (a conflict: pack 0). */
static void slot_loc(const uint8_t *p, uint64_t m, struct store_loc *loc)
{
	uint64_t l = slot_locword(p);
	loc->pack = M_CONFLICT(m) ? STORE_PACK_CONFLICT : (uint32_t)l;
	loc->off = l >> 32;
	loc->len = M_LEN(m);
	loc->kind = M_KIND(m);
}

static void slot_write(uint8_t *p, uint64_t locword, uint64_t meta)
{
	__atomic_store_n((uint64_t *)p, htole64(locword), __ATOMIC_RELAXED);
	__atomic_store_n((uint64_t *)(p + 8), htole64(meta), __ATOMIC_RELEASE);
}

bool store_index_slot(struct store *s, uint64_t i, struct store_loc *loc, uint32_t *ret_fp)
{
	const uint8_t *p = slot_at(s, i);
	uint64_t m = slot_meta(p);
	if (!m)
		return false;
	slot_loc(p, m, loc);
	if (ret_fp)
		*ret_fp = M_TOP32(m);
	return true;
}

bool store_index_slot_is(struct store *s, uint64_t i, const struct store_rec *rec)
{
	uint64_t m = slot_meta(slot_at(s, i));
	uint32_t n = rec->key.n < STORE_SLOT_NMAX ? rec->key.n : STORE_SLOT_NMAX;
	return m && M_KIND(m) == rec->kind && M_FP(m) == fp_of(key_h64(rec->key.hash), rec->kind) && M_N(m) == n &&
	       M_LEN(m) == rec->len;
}

int store_index_each(struct store *s, uint8_t kind, const uint8_t hash[16], store_slot_fn fn, void *ctx)
{
	uint64_t nslots = store_index_nslots(s);
	uint64_t h64 = key_h64(hash), fp = fp_of(h64, kind);
	uint64_t i = fp_home(h64 >> 32, nslots);
	/* Linear probing: the entries of a fingerprint lie between its home
	 * and the next empty slot. */
	for (uint64_t probes = 0; probes < nslots; probes++, i = i + 1 == nslots ? 0 : i + 1) {
		const uint8_t *p = slot_at(s, i);
		uint64_t m = slot_meta(p);
		if (!m)
			return 0;
		if (M_KIND(m) != kind || M_FP(m) != fp)
			continue;
		struct store_loc loc;
		slot_loc(p, m, &loc);
		int r = fn(ctx, M_N(m), &loc, i);
		if (r)
			return r;
	}
	return 0;
}

/* Whether slot p's record holds key (kind, k): 1 yes, 0 another key,
 * negative: unreadable.  A conflict's slot keeps one of its records. */
static int slot_holds(struct store *s, const uint8_t *p, uint8_t kind, const struct store_key *k)
{
	uint64_t l = slot_locword(p);
	int fd = store_pack_fd(s, (uint32_t)l);
	if (fd < 0)
		return fd;
	struct store_rec rec;
	int r = store_pack_read(s, fd, l >> 32, &rec, NULL, 0, false);
	if (r < 0)
		return r;
	return rec.kind == kind && store_key_eq(&rec.key, k);
}

int store_index_find(struct store *s, uint8_t kind, const struct store_key *k, enum store_find how,
		     struct store_loc *ret, uint64_t *ret_slot)
{
	uint64_t nslots = store_index_nslots(s);
	uint64_t h64 = key_h64(k->hash), fp = fp_of(h64, kind);
	uint32_t n = k->n < STORE_SLOT_NMAX ? k->n : STORE_SLOT_NMAX;
	uint64_t home = fp_home(h64 >> 32, nslots), found = 0, unreadable = 0;
	unsigned cands = 0, bad = 0;
	for (int pass = 0; pass < 2; pass++) {
		uint64_t i = home;
		for (uint64_t probes = 0; probes < nslots; probes++, i = i + 1 == nslots ? 0 : i + 1) {
			const uint8_t *p = slot_at(s, i);
			uint64_t m = slot_meta(p);
			if (!m)
				break;
			if (M_KIND(m) != kind || M_FP(m) != fp || M_N(m) != n)
				continue;
			if (pass == 0) {
				if (!cands++)
					found = i;
				continue;
			}
			int r = slot_holds(s, p, kind, k);
			if (r == 1) {
				found = i;
				goto hit;
			}
			if (r < 0 && !bad++)
				unreadable = i;
		}
		if (!cands)
			return -ENOENT;
		if (pass == 0 && cands == 1 && how == STORE_FIND_FAST)
			goto hit;
	}
	if (!bad || how == STORE_FIND_CONFIRMED)
		return -ENOENT;
	found = unreadable;
hit:
	slot_loc(slot_at(s, found), slot_meta(slot_at(s, found)), ret);
	if (ret_slot)
		*ret_slot = found;
	return 0;
}

void store_index_set_loc(struct store *s, uint64_t slot, const struct store_loc *loc)
{
	uint8_t *p = slot_at(s, slot);
	uint64_t m = slot_meta(p);
	if (loc->pack == STORE_PACK_CONFLICT) {
		/* The record stays: it names the key the conflict is about. */
		__atomic_store_n((uint64_t *)(p + 8), htole64(m | 1u << 2), __ATOMIC_RELEASE);
		return;
	}
	/* One aligned store moves the location: a kill leaves the old
	 * record or the new one (the same bytes, the same length). */
	slot_write(p, (uint64_t)loc->off << 32 | loc->pack,
		   meta_word(M_KIND(m), false, M_N(m), loc->len, m));
}

/* Copies the used cover entries out (caller frees). */
static uint8_t *cover_copy(struct store *s, uint32_t *ret_n)
{
	uint32_t ncover = store_le32(s->map + H_NCOVER), n = 0;
	uint8_t *c = malloc((size_t)ncover * 16);
	if (!c)
		return NULL;
	for (uint32_t i = 0; i < ncover; i++)
		if (store_le32(s->map + COVER_OFF + i * 16))
			memcpy(c + (size_t)n++ * 16, s->map + COVER_OFF + i * 16, 16);
	*ret_n = n;
	return c;
}

/* Slots for `used` entries and one more: 3/5 full, so the table grows
 * (at 3/4) by 5/4 -- a smaller step than doubling keeps the bytes per
 * record between 16 / 0.75 and 16 / 0.6. */
static int table_size(uint64_t used, uint64_t *ret)
{
	uint64_t n = (used + 1) * 5 / 3 + 1;
	n = (n + SLOTS_PER_PAGE - 1) / SLOTS_PER_PAGE * SLOTS_PER_PAGE;
	if (n < STORE_INDEX_MIN_SLOTS)
		n = STORE_INDEX_MIN_SLOTS;
	if (n > STORE_INDEX_MAX_SLOTS) {
		if (used + 1 > STORE_INDEX_MAX_SLOTS / 4 * 3)
			return -ENOSPC;
		n = STORE_INDEX_MAX_SLOTS;
	}
	*ret = n;
	return 0;
}

/* Puts an entry into the first free slot from its fingerprint's home
 * (the caller makes sure there is one). */
static int slot_place(struct store *s, uint64_t nslots, uint64_t locword, uint64_t meta)
{
	uint64_t i = fp_home(M_TOP32(meta), nslots);
	for (uint64_t probes = 0; slot_meta(slot_at(s, i)); i = i + 1 == nslots ? 0 : i + 1)
		if (++probes >= nslots)
			return -EBADMSG; /* full, whatever nused says: a damaged index */
	slot_write(slot_at(s, i), locword, meta);
	return 0;
}

int store_index_compact(struct store *s, bool (*keep)(void *ctx, uint64_t slot, struct store_loc *loc),
			void *ctx)
{
	uint64_t old_n = store_index_nslots(s), used = 0, nslots;
	for (uint64_t i = 0; i < old_n; i++)
		used += slot_meta(slot_at(s, i)) != 0;
	int r = table_size(used, &nslots);
	if (r < 0)
		return r;
	uint32_t ncov;
	cleanup_free uint8_t *cover = cover_copy(s, &ncov);
	if (!cover)
		return -ENOMEM;
	/* The new table is filled completely in its temp file and only then
	 * renamed over the old one: a kill at any point leaves one of the
	 * two whole. */
	char tmp[64];
	r = index_create_tmp(s, nslots, cover, ncov, tmp);
	if (r < 0)
		return r;
	uint8_t *old = s->map;
	size_t old_len = s->map_len;
	int old_fd = s->index_fd;
	s->map = NULL;
	s->index_fd = -1;
	r = index_map_file(s, tmp);
	if (r < 0) {
		unlinkat(s->dirfd, tmp, 0);
		s->map = old;
		s->map_len = old_len;
		s->index_fd = old_fd;
		return r;
	}
	memcpy(s->map + H_GCGEN, old + H_GCGEN, 4);
	uint8_t *old_slots = old + slots_off(store_le32(old + H_NCOVER));
	uint64_t n = 0;
	for (uint64_t i = 0; r == 0 && i < old_n; i++) {
		const uint8_t *p = old_slots + i * STORE_SLOT;
		uint64_t m = slot_meta(p);
		if (!m)
			continue;
		struct store_loc loc;
		slot_loc(p, m, &loc);
		if (keep && !keep(ctx, i, &loc))
			continue;
		r = slot_place(s, nslots, slot_locword(p), m);
		n++;
	}
	store_put_le64(s->map + H_NUSED, n);
	if (r == 0)
		r = index_publish(s, tmp);
	else
		unlinkat(s->dirfd, tmp, 0);
	if (r < 0) {
		store_index_unmap(s);
		s->map = old;
		s->map_len = old_len;
		s->index_fd = old_fd;
		return r;
	}
	munmap(old, old_len);
	close(old_fd);
	return 0;
}

int store_index_insert(struct store *s, uint8_t kind, const struct store_key *k, const struct store_loc *loc)
{
	if (k->n > 0xffff)
		return -EOVERFLOW;
	if ((kind != STORE_KIND_BLOCK && kind != STORE_KIND_RECIPE) || loc->off >= (1ull << 32) ||
	    loc->len >= (1ull << (60 - FP_BITS(kind))))
		return -EFBIG; /* never written so (STORE_PACK_MAX, STORE_BLOCK_SIZE) */
	uint64_t nslots = store_index_nslots(s);
	uint64_t used = store_le64(s->map + H_NUSED);
	if ((used + 1) > nslots / 4 * 3) {
		int r = store_index_compact(s, NULL, NULL);
		if (r < 0)
			return r;
		nslots = store_index_nslots(s);
		used = store_le64(s->map + H_NUSED);
	}
	int r = slot_place(s, nslots, loc->off << 32 | loc->pack,
			   meta_word(kind, false, k->n, loc->len, key_h64(k->hash)));
	if (r == 0)
		store_put_le64(s->map + H_NUSED, used + 1);
	return r;
}

static uint8_t *cover_find(struct store *s, uint32_t pack, bool add)
{
	uint32_t ncover = store_le32(s->map + H_NCOVER);
	uint8_t *free_slot = NULL;
	for (uint32_t i = 0; i < ncover; i++) {
		uint8_t *c = s->map + COVER_OFF + (size_t)i * 16;
		uint32_t p = store_le32(c);
		if (p == pack)
			return c;
		if (!p && !free_slot)
			free_slot = c;
	}
	if (!add || !free_slot)
		return NULL;
	store_put_le32(free_slot, pack);
	store_put_le64(free_slot + 8, 0);
	return free_slot;
}

int store_index_cover(struct store *s, uint32_t pack, uint64_t end)
{
	uint8_t *c = cover_find(s, pack, true);
	if (!c) {
		/* The cover table is full: a bigger one comes with a copy. */
		int r = store_index_compact(s, NULL, NULL);
		if (r < 0)
			return r;
		c = cover_find(s, pack, true);
		if (!c)
			return -ENOSPC;
	}
	store_put_le64(c + 8, end);
	return 0;
}

int store_index_cover_room(struct store *s)
{
	uint32_t ncover = store_le32(s->map + H_NCOVER);
	for (uint32_t i = 0; i < ncover; i++)
		if (!store_le32(s->map + COVER_OFF + (size_t)i * 16))
			return 0;
	return store_index_compact(s, NULL, NULL);
}

uint64_t store_index_covered(struct store *s, uint32_t pack, bool *known)
{
	uint8_t *c = cover_find(s, pack, false);
	*known = c != NULL;
	return c ? store_le64(c + 8) : 0;
}

/* Drops the cover entry of a deleted pack (GC). */
void store_index_uncover(struct store *s, uint32_t pack)
{
	uint8_t *c = cover_find(s, pack, false);
	if (c)
		memset(c, 0, 16);
}

struct index_fill {
	struct store *s;
	int err;
	bool rebuild;	/* from nothing (else catching up with an index) */
};

static int fill_rec(void *ctx, uint32_t pack, uint64_t off, const struct store_rec *rec)
{
	struct index_fill *f = ctx;
	struct store_loc loc, have = { .pack = pack, .off = off, .len = rec->len };
	uint64_t slot;
	/* Confirmed by the record: a slot of another key sharing the
	 * fingerprint, or one whose record is unreadable, does not hide this
	 * record from the index. */
	if (store_index_find(f->s, rec->kind, &rec->key, STORE_FIND_CONFIRMED, &loc, &slot) == 0) {
		/* The same bytes twice (a GC copy, a block stored again while
		 * its pack was away): the first stays.  Different bytes under
		 * one key can only come of a collision meeting a crash: a
		 * writer killed between its append and its index entry, another
		 * storing a colliding block before the next open indexed the
		 * first.  Catching up, the entry already in the index is the
		 * one every caller got (the orphan's key was never returned):
		 * it stays.  Rebuilding, which one the recipes mean is
		 * unknowable, so neither is served -- a read fails rather than
		 * return the wrong bytes. */
		if (!f->rebuild)
			return 0;
		struct store_rec old;
		int fd = loc.pack ? store_pack_fd(f->s, loc.pack) : -1;
		if (fd >= 0 && store_pack_read(f->s, fd, loc.off, &old, NULL, 0, false) == 0 &&
		    (old.len != rec->len || old.data_check != rec->data_check)) {
			struct store_loc none = { .pack = STORE_PACK_CONFLICT, .kind = rec->kind };
			store_index_set_loc(f->s, slot, &none);
		}
		return 0;
	}
	int r = store_index_insert(f->s, rec->kind, &rec->key, &have);
	if (r == -EFBIG)
		return 0; /* cannot be indexed: fsck names it */
	if (r < 0)
		f->err = r;
	return r;
}

/* Damage is fsck's to name; the index just leaves it out. */
static void fill_bad(void *ctx, uint32_t pack, uint64_t off, uint64_t len, const char *what)
{
	(void)ctx, (void)pack, (void)off, (void)len, (void)what;
}

/* Indexes pack `no` from `from` on; covers what was read. */
static int index_pack(struct store *s, uint32_t no, uint64_t from, const struct store_scan_cb *cb)
{
	int fd = store_pack_fd(s, no);
	if (fd < 0)
		return fd;
	uint64_t end, torn;
	int r = store_pack_scan(s, fd, no, from, cb, &end, &torn);
	if (r < 0)
		return r;
	return store_index_cover(s, no, end);
}

int store_index_catch_up(struct store *s)
{
	cleanup_free uint32_t *packs = NULL;
	size_t n;
	int r = store_pack_list(s, &packs, &n);
	if (r < 0)
		return r;
	/* Every covered pack must still be there and at least as long. */
	uint32_t ncover = store_le32(s->map + H_NCOVER);
	for (uint32_t i = 0; i < ncover; i++) {
		uint32_t p = store_le32(s->map + COVER_OFF + (size_t)i * 16);
		if (!p)
			continue;
		bool found = false;
		for (size_t j = 0; j < n && !found; j++)
			found = packs[j] == p;
		if (!found)
			return -ESTALE;
	}
	struct index_fill f = { .s = s };
	struct store_scan_cb cb = { .rec = fill_rec, .bad = fill_bad, .ctx = &f };
	for (size_t i = 0; i < n; i++) {
		bool known;
		uint64_t from = store_index_covered(s, packs[i], &known);
		int fd = store_pack_fd(s, packs[i]);
		struct stat st;
		if (fd < 0)
			continue; /* not a valid pack: fsck reports it */
		if (fstat(fd, &st) < 0)
			return -errno;
		if (known && (uint64_t)st.st_size < from)
			return -ESTALE;
		if (known && (uint64_t)st.st_size == from)
			continue;
		r = index_pack(s, packs[i], known ? from : STORE_PACK_HDR, &cb);
		if (r < 0)
			return r;
	}
	return 0;
}

int store_index_rebuild(struct store *s, store_report_fn report, void *ctx, struct corral_error *err)
{
	(void)report, (void)ctx;
	/* Filled in a temp file (growing it renames within the temp name)
	 * and renamed into place whole: a process killed half-way leaves the
	 * old index, never a partial one that live handles would map. */
	char tmp[64];
	int r = index_create_tmp(s, STORE_INDEX_MIN_SLOTS, NULL, 0, tmp);
	if (r < 0)
		return err_set(err, -r, "rebuild the store index");
	store_index_unmap(s);
	r = index_map_file(s, tmp);
	if (r < 0) {
		unlinkat(s->dirfd, tmp, 0);
		return err_set(err, -r, "rebuild the store index");
	}
	s->index_name = tmp;
	cleanup_free uint32_t *packs = NULL;
	size_t n;
	r = store_pack_list(s, &packs, &n);
	if (r < 0)
		err_set(err, -r, "list the store's packs");
	struct index_fill f = { .s = s, .rebuild = true };
	/* Payloads are checked: a corrupt record never enters the index. */
	struct store_scan_cb cb = { .rec = fill_rec, .bad = fill_bad, .ctx = &f, .verify_payload = true };
	for (size_t i = 0; r == 0 && i < n; i++) {
		r = index_pack(s, packs[i], STORE_PACK_HDR, &cb);
		if (r == -EBADMSG || r == -EPROTONOSUPPORT)
			r = 0; /* a damaged pack header: fsck names it */
		else if (r < 0)
			err_set(err, -r, "index pack %08x", packs[i]);
	}
	s->index_name = NULL;
	if (r == 0) {
		r = index_publish(s, tmp);
		if (r < 0)
			err_set(err, -r, "rename the rebuilt store index into place");
	} else {
		unlinkat(s->dirfd, tmp, 0);
	}
	if (r < 0)
		store_index_unmap(s);
	return r;
}

bool store_index_from_this_boot(struct store *s)
{
	uint8_t b[16];
	read_boot_id(b);
	return memcmp(b, s->map + H_BOOT, 16) == 0;
}
