/* Directory offsets that survive a listing being rebuilt.
 *
 * Each entry of a merged listing gets a cookie: "." 1, ".." 2, every other
 * name a keyed hash of the name (SipHash-2-4 with a random key per mount,
 * so a tenant can neither predict nor craft colliding names), above 2 and
 * below 2^48.  The listing is served in cookie order and a reader goes on
 * with the first entry whose cookie is greater than that of the last entry
 * it got, in whatever listing is at hand, also one built since by another
 * reader: a name that exists throughout is then returned exactly once, as
 * on ext4 with its hashed directories.  Within a listing cookies are made
 * unique (a tie, about 2^-29 for 10,000 names, takes the next free value),
 * so only a tie whose partner was created or removed meanwhile could make
 * a reader skip or repeat that name.
 *
 * The offset handed to the kernel is the cookie with the listing's
 * generation above it (cowfs-ops-dir.c): the kernel's directory cache
 * matches a reader's position against the offsets it cached, and must not
 * take the position of a reader of one listing for a place in another. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cowfs.h"

static uint64_t key[2];
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void key_init(void)
{
	/* Without randomness the key is fixed: cookies still work, only
	 * crafted collisions would become possible. */
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
		key[0] = 0x736f6d6570736575ULL, key[1] = 0x646f72616e646f6dULL;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                             \
	do {                                                                                                 \
		v0 += v1;                                                                                    \
		v1 = ROTL(v1, 13);                                                                           \
		v1 ^= v0;                                                                                    \
		v0 = ROTL(v0, 32);                                                                           \
		v2 += v3;                                                                                    \
		v3 = ROTL(v3, 16);                                                                           \
		v3 ^= v2;                                                                                    \
		v0 += v3;                                                                                    \
		v3 = ROTL(v3, 21);                                                                           \
		v3 ^= v0;                                                                                    \
		v2 += v1;                                                                                    \
		v1 = ROTL(v1, 17);                                                                           \
		v1 ^= v2;                                                                                    \
		v2 = ROTL(v2, 32);                                                                           \
	} while (0)

/* SipHash-2-4 of s (as published by Aumasson and Bernstein). */
static uint64_t siphash(const unsigned char *s, size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ key[0], v1 = 0x646f72616e646f6dULL ^ key[1];
	uint64_t v2 = 0x6c7967656e657261ULL ^ key[0], v3 = 0x7465646279746573ULL ^ key[1];
	uint64_t b = (uint64_t)len << 56, m;
	size_t i, full = len & ~(size_t)7;

	for (i = 0; i < full; i += 8) {
		memcpy(&m, s + i, 8); /* little-endian hosts (x86_64, arm64) */
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)s[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t dircookie_of(const char *name)
{
	if (strcmp(name, ".") == 0)
		return 1;
	if (strcmp(name, "..") == 0)
		return 2;
	pthread_once(&key_once, key_init);
	uint64_t h = siphash((const unsigned char *)name, strlen(name)) & DIRCOOKIE_MASK;
	return h < 3 ? h + 3 : h;
}

static int by_cookie(const void *a, const void *b)
{
	const struct cowfs_dirent *x = a, *y = b;
	if (x->cookie != y->cookie)
		return x->cookie < y->cookie ? -1 : 1;
	return strcmp(x->name, y->name); /* ties in a fixed order */
}

void dirlist_sort_by_cookie(struct cowfs_dirlist *l)
{
	for (size_t i = 0; i < l->count; i++)
		l->entries[i].cookie = dircookie_of(l->entries[i].name);
	qsort(l->entries, l->count, sizeof(*l->entries), by_cookie);
	for (size_t i = 1; i < l->count; i++)
		if (l->entries[i].cookie <= l->entries[i - 1].cookie && l->entries[i - 1].cookie < DIRCOOKIE_MASK)
			l->entries[i].cookie = l->entries[i - 1].cookie + 1;
}

size_t dirlist_after_cookie(const struct cowfs_dirlist *l, uint64_t cookie)
{
	size_t lo = 0, hi = l->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->entries[mid].cookie <= cookie)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}
