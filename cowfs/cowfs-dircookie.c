/* Directory offsets that survive a listing being rebuilt.
 *
 * Each entry of a merged listing gets a cookie: "." 1, ".." 2, every other
 * name a keyed hash of the name (XXH3 with a random secret per mount, so
 * a tenant can neither predict nor craft colliding names), above 2 and
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

#include <xxhash.h>

#include "cowfs.h"

/* A random secret per mount: XXH3 keyed this way is what xxHash offers
 * against inputs crafted to collide (hash flooding). */
static unsigned char secret[XXH3_SECRET_SIZE_MIN + 56];
static pthread_once_t secret_once = PTHREAD_ONCE_INIT;

static void secret_init(void)
{
	/* Without randomness the secret is fixed: cookies still work, only
	 * crafted collisions would become possible. */
	if (getrandom(secret, sizeof(secret), 0) != (ssize_t)sizeof(secret))
		for (size_t i = 0; i < sizeof(secret); i++)
			secret[i] = (unsigned char)(i * 131 + 17);
}

uint64_t dircookie_of(const char *name)
{
	if (strcmp(name, ".") == 0)
		return 1;
	if (strcmp(name, "..") == 0)
		return 2;
	pthread_once(&secret_once, secret_init);
	uint64_t h = XXH3_64bits_withSecret(name, strlen(name), secret, sizeof(secret)) & DIRCOOKIE_MASK;
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
