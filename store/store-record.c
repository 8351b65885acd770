/* store: the byte layouts of records, pack headers, keys and recipes
 * (store/FORMAT.md).  Everything read from disk is validated here before
 * any other code sees it; these parsers are what the fuzz target drives. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "store-internal.h"

uint64_t store_check64(const void *data, size_t len)
{
	return XXH3_64bits(data, len);
}

void store_hash_xxh3(const void *data, size_t len, uint64_t seed, uint8_t out[16])
{
	XXH128_hash_t h = XXH3_128bits_withSeed(data, len, seed);
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, h);
	memcpy(out, c.digest, 16);
}

void store_rec_encode(const struct store_rec *r, uint8_t out[STORE_REC_HDR])
{
	memcpy(out, STORE_REC_MAGIC, 4);
	store_put_le16(out + 4, STORE_FORMAT_VERSION);
	out[6] = r->kind;
	out[7] = 0;
	store_put_le32(out + 8, r->len);
	store_put_le32(out + 12, r->key.n);
	memcpy(out + 16, r->key.hash, 16);
	store_put_le64(out + 32, r->data_check);
	store_put_le64(out + 40, store_check64(out, 40));
}

int store_rec_decode(const uint8_t in[STORE_REC_HDR], struct store_rec *ret)
{
	if (memcmp(in, STORE_REC_MAGIC, 4) != 0)
		return -EBADMSG;
	if (store_le64(in + 40) != store_check64(in, 40))
		return -EBADMSG;
	if (store_le16(in + 4) != STORE_FORMAT_VERSION)
		return -EPROTONOSUPPORT;
	uint8_t kind = in[6];
	uint32_t len = store_le32(in + 8);
	if ((kind != STORE_KIND_BLOCK && kind != STORE_KIND_RECIPE) || in[7] != 0)
		return -EBADMSG;
	if (len > (kind == STORE_KIND_BLOCK ? STORE_BLOCK_SIZE : STORE_RECORD_MAX))
		return -EBADMSG;
	ret->kind = kind;
	ret->len = len;
	ret->key.n = store_le32(in + 12);
	memcpy(ret->key.hash, in + 16, 16);
	ret->data_check = store_le64(in + 32);
	return 0;
}

void store_pack_hdr_encode(uint32_t no, uint8_t out[STORE_PACK_HDR])
{
	memset(out, 0, STORE_PACK_HDR);
	memcpy(out, STORE_PACK_MAGIC, 8);
	store_put_le32(out + 8, STORE_FORMAT_VERSION);
	store_put_le32(out + 12, no);
	store_put_le64(out + 24, store_check64(out, 24));
}

int store_pack_hdr_check(const uint8_t in[STORE_PACK_HDR], uint32_t *ret_no)
{
	if (memcmp(in, STORE_PACK_MAGIC, 8) != 0 || store_le64(in + 24) != store_check64(in, 24))
		return -EBADMSG;
	if (store_le32(in + 8) != STORE_FORMAT_VERSION)
		return -EPROTONOSUPPORT;
	*ret_no = store_le32(in + 12);
	return 0;
}

const char *store_key_str(const struct store_key *k, char buf[STORE_KEY_STR_MAX])
{
	for (int i = 0; i < 16; i++)
		snprintf(buf + 2 * i, 3, "%02x", k->hash[i]);
	if (k->n)
		snprintf(buf + 32, STORE_KEY_STR_MAX - 32, "+%u", k->n);
	return buf;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int store_key_parse(const char *s, struct store_key *ret)
{
	struct store_key k = { .n = 0 };
	for (int i = 0; i < 16; i++) {
		int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		k.hash[i] = hi << 4 | lo;
	}
	s += 32;
	if (*s == '+') {
		uint64_t n = 0;
		s++;
		if (*s < '1' || *s > '9')
			return -EINVAL;
		for (; *s >= '0' && *s <= '9'; s++) {
			n = n * 10 + (*s - '0');
			if (n > UINT32_MAX)
				return -EINVAL;
		}
		k.n = n;
	}
	if (*s)
		return -EINVAL;
	*ret = k;
	return 0;
}

bool store_key_eq(const struct store_key *a, const struct store_key *b)
{
	return a->n == b->n && memcmp(a->hash, b->hash, 16) == 0;
}

/* Recipe payload: u64 size, u32 count, u32 zero, then count entries of
 * hash[16], u32 n, u32 len. */
#define RECIPE_HDR 16
#define RECIPE_ENT 24

void store_recipe_release(struct store_recipe *r)
{
	free(r->e);
	r->e = NULL;
	r->n = 0;
}

int store_recipe_parse(const uint8_t *p, size_t len, struct store_recipe *ret)
{
	if (len < RECIPE_HDR)
		return -EBADMSG;
	uint64_t size = store_le64(p);
	uint32_t n = store_le32(p + 8);
	if (store_le32(p + 12) != 0 || (len - RECIPE_HDR) / RECIPE_ENT != n ||
	    (len - RECIPE_HDR) % RECIPE_ENT)
		return -EBADMSG;
	struct store_recipe_entry *e = calloc(n ? n : 1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	uint64_t sum = 0;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *q = p + RECIPE_HDR + (size_t)i * RECIPE_ENT;
		memcpy(e[i].key.hash, q, 16);
		e[i].key.n = store_le32(q + 16);
		e[i].len = store_le32(q + 20);
		sum += e[i].len;
		if (e[i].len > STORE_BLOCK_SIZE) {
			free(e);
			return -EBADMSG;
		}
	}
	if (sum != size) {
		free(e);
		return -EBADMSG;
	}
	*ret = (struct store_recipe){ .size = size, .n = n, .e = e };
	return 0;
}

int store_recipe_encode(const struct store_recipe *r, uint8_t **ret, size_t *ret_len)
{
	if (r->n > (STORE_RECORD_MAX - RECIPE_HDR) / RECIPE_ENT)
		return -EFBIG;
	size_t len = RECIPE_HDR + r->n * RECIPE_ENT;
	uint8_t *p = calloc(1, len);
	if (!p)
		return -ENOMEM;
	uint64_t sum = 0;
	for (size_t i = 0; i < r->n; i++) {
		uint8_t *q = p + RECIPE_HDR + i * RECIPE_ENT;
		if (r->e[i].len > STORE_BLOCK_SIZE) {
			free(p);
			return -EINVAL;
		}
		memcpy(q, r->e[i].key.hash, 16);
		store_put_le32(q + 16, r->e[i].key.n);
		store_put_le32(q + 20, r->e[i].len);
		sum += r->e[i].len;
	}
	store_put_le64(p, sum);
	store_put_le32(p + 8, r->n);
	*ret = p;
	*ret_len = len;
	return 0;
}
