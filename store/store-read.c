/* Reading a recipe's blocks in runs (store-backed files read sequentially).
 *
 * store_get_block costs, per 64 KiB block, one index lock and lookup, a
 * buffer, two preads and a copy.  store_get_blocks looks up a run of
 * blocks under one lock and reads each stretch of records that lie back
 * to back in one pack with one preadv: the headers into a side array,
 * the payloads straight into the caller's buffer.  Each record is then
 * verified exactly as store_pack_read verifies it (header, payload
 * checksum, key); the caller's bytes count only once that passed.  A
 * record that is not what the lookup promised (a slot of another key, a
 * pack gc removed meanwhile, damage, a short read) is read again alone
 * through store_get_block, which retries, looks at every candidate slot
 * and reports; so damage still fails, with store_get_block's message.
 *
 * GC copies live records to a new pack and unlinks the old one: a
 * descriptor of the old pack (cached by the handle) keeps reading the old
 * records, which are still whole and verified; a lookup made after the
 * move finds the new place.
 *
 * No prefetch (posix_fadvise WILLNEED of the next blocks' pack ranges):
 * measured, it cost the daemon more CPU than it saved and the read was
 * slower (bench/README.md, "Store benchmark"); the kernel's readahead on
 * the pack descriptor, fed runs of whole records, is enough. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "cleanup.h"
#include "error.h"
#include "store-internal.h"

/* Records looked up under one index lock, and read by at most one preadv
 * (two iovecs each). */
#define RUN_MAX 32

/* Looks up e[0..n) (n <= RUN_MAX): ok[i] whether loc[i] is a usable
 * candidate for block i (FAST: the record read later is checked against
 * the key). */
static int lookup(struct store *s, const struct store_recipe_entry *e, size_t n, struct store_loc *loc, bool *ok)
{
	int r = store_index_lock(s, false);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		ok[i] = store_index_find(s, STORE_KIND_BLOCK, &e[i].key, STORE_FIND_FAST, &loc[i], NULL) == 0 &&
			loc[i].pack != STORE_PACK_CONFLICT && loc[i].len == e[i].len;
	store_index_unlock(s);
	return 0;
}

/* How many of loc[i..n) follow loc[i] back to back in its pack. */
static size_t run_len(const struct store_loc *loc, const bool *ok, size_t i, size_t n)
{
	size_t j = i + 1;
	if (!ok[i])
		return 1;
	while (j < n && ok[j] && loc[j].pack == loc[i].pack &&
	       loc[j].off == loc[j - 1].off + STORE_REC_HDR + loc[j - 1].len)
		j++;
	return j - i;
}

/* Block e alone into out (e->len bytes): store_get_block's full path. */
static int get_one(struct store *s, const struct store_recipe_entry *e, uint8_t *out, struct corral_error *err)
{
	size_t len = 0;
	int r;
	if (e->len == STORE_BLOCK_SIZE) {
		r = store_get_block(s, &e->key, out, &len, err);
	} else {
		/* store_get_block writes up to a whole block. */
		cleanup_free uint8_t *tmp = malloc(STORE_BLOCK_SIZE);
		if (!tmp)
			return err_set(err, ENOMEM, "read a block");
		r = store_get_block(s, &e->key, tmp, &len, err);
		if (r == 0 && len == e->len)
			memcpy(out, tmp, len);
	}
	if (r == 0 && len != e->len) {
		char ks[STORE_KEY_STR_MAX];
		return err_plain(err, EBADMSG, "block %s has %zu bytes, its recipe says %u", store_key_str(&e->key, ks),
				 len, e->len);
	}
	return r;
}

/* Reads the run e[0..n) whose records start at loc[0] and lie back to
 * back; the records that do not verify are read again alone. */
static int get_run(struct store *s, const struct store_recipe_entry *e, const struct store_loc *loc, size_t n,
		   uint8_t *out, struct corral_error *err)
{
	uint8_t hdr[RUN_MAX][STORE_REC_HDR];
	struct iovec iov[2 * RUN_MAX];
	for (size_t i = 0, at = 0; i < n; at += e[i].len, i++) {
		iov[2 * i] = (struct iovec){ hdr[i], STORE_REC_HDR };
		iov[2 * i + 1] = (struct iovec){ out + at, e[i].len };
	}
	ssize_t got = -1;
	int fd = store_pack_fd(s, loc[0].pack);
	if (fd >= 0) {
		do
			got = preadv(fd, iov, (int)(2 * n), (off_t)loc[0].off);
		while (got < 0 && errno == EINTR);
	}
	size_t end = 0;
	for (size_t i = 0, at = 0; i < n; at += e[i].len, i++) {
		struct store_rec rec;
		end += STORE_REC_HDR + e[i].len;
		bool good = got >= 0 && end <= (size_t)got && store_rec_decode(hdr[i], &rec) == 0 &&
			    rec.kind == STORE_KIND_BLOCK && rec.len == e[i].len && store_key_eq(&rec.key, &e[i].key) &&
			    store_rec_verify(s, &rec, out + at, true) == 0;
		if (!good) {
			int r = get_one(s, &e[i], out + at, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int store_get_blocks(struct store *s, const struct store_recipe_entry *e, size_t n, void *buf,
		     struct corral_error *err)
{
	uint8_t *out = buf;
	while (n > 0) {
		size_t m = n < RUN_MAX ? n : RUN_MAX;
		struct store_loc loc[RUN_MAX];
		bool ok[RUN_MAX];
		int r = lookup(s, e, m, loc, ok);
		if (r < 0)
			return err_set(err, -r, "lock the store index");
		for (size_t i = 0; i < m;) {
			size_t k = run_len(loc, ok, i, m), bytes = 0;
			for (size_t j = i; j < i + k; j++)
				bytes += e[j].len;
			r = ok[i] ? get_run(s, e + i, loc + i, k, out, err) : get_one(s, &e[i], out, err);
			if (r < 0)
				return r;
			out += bytes;
			i += k;
		}
		e += m;
		n -= m;
	}
	return 0;
}
