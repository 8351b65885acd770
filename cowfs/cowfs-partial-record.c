/* Encoding and parsing of a partial file's record (cowfs-partial-record.h).
 * The parser trusts nothing: the record lives on the upper layer, which
 * the host may have copied from anywhere; every length is checked before
 * it is used and the checksum before any field is believed. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cowfs/cowfs-partial-record.h"

#define REC_MAGIC "CPRT"
#define REC_HEADER 24
#define REC_LOWER_ID 40
#define REC_STORE_ID 20
#define REC_RANGE 8
#define REC_SUM 8

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

uint32_t partial_record_max_ranges(size_t path_len)
{
	size_t fixed = REC_HEADER + (path_len ? REC_LOWER_ID + path_len : REC_STORE_ID) + REC_SUM;
	return fixed >= PARTIAL_RECORD_MAX ? 0 : (uint32_t)((PARTIAL_RECORD_MAX - fixed) / REC_RANGE);
}

int partial_record_encode(const struct partial_record *r, void *buf)
{
	uint8_t *p = buf;
	size_t path_len = r->kind == PARTIAL_LOWER ? strlen(r->path) : 0;
	if (path_len > PARTIAL_PATH_MAX || r->nranges > partial_record_max_ranges(r->kind == PARTIAL_LOWER ? path_len : 0))
		return -E2BIG;
	memcpy(p, REC_MAGIC, 4);
	p[4] = PARTIAL_RECORD_VERSION;
	p[5] = (uint8_t)r->kind;
	put16(p + 6, 0);
	put64(p + 8, r->source_len);
	put32(p + 16, r->nranges);
	put16(p + 20, (uint16_t)path_len);
	put16(p + 22, r->kind == PARTIAL_LOWER ? (uint16_t)r->layer : 0);
	size_t at = REC_HEADER;
	if (r->kind == PARTIAL_LOWER) {
		put64(p + at, r->ident.ino);
		put64(p + at + 8, r->ident.size);
		put64(p + at + 16, (uint64_t)r->ident.mtime_sec);
		put32(p + at + 24, r->ident.mtime_nsec);
		put64(p + at + 28, (uint64_t)r->ident.ctime_sec);
		put32(p + at + 36, r->ident.ctime_nsec);
		at += REC_LOWER_ID;
		memcpy(p + at, r->path, path_len);
		at += path_len;
	} else {
		memcpy(p + at, r->recipe.hash, 16);
		put32(p + at + 16, r->recipe.n);
		at += REC_STORE_ID;
	}
	for (uint32_t i = 0; i < r->nranges; i++, at += REC_RANGE) {
		put32(p + at, r->ranges[i].start);
		put32(p + at + 4, r->ranges[i].count);
	}
	put64(p + at, XXH3_64bits(p, at));
	return (int)(at + REC_SUM);
}

/* A relative path that stays where it is put: no empty, "." or ".."
 * component, no leading '/'.  openat2 (RESOLVE_BENEATH) checks again. */
static bool path_ok(const char *s, size_t len)
{
	if (len == 0 || s[0] == '/' || s[len - 1] == '/' || memchr(s, '\0', len))
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '/')
			continue;
		size_t c = i - start;
		if (c == 0 || (c == 1 && s[start] == '.') || (c == 2 && s[start] == '.' && s[start + 1] == '.'))
			return false;
		start = i + 1;
	}
	return true;
}

int partial_record_parse(const void *buf, size_t len, struct partial_record *ret)
{
	const uint8_t *p = buf;
	memset(ret, 0, sizeof(*ret));
	if (len < REC_HEADER + REC_SUM || len > PARTIAL_RECORD_MAX || memcmp(p, REC_MAGIC, 4) != 0)
		return -EINVAL;
	if (p[4] != PARTIAL_RECORD_VERSION)
		return -EPROTONOSUPPORT;
	if (get64(p + len - REC_SUM) != XXH3_64bits(p, len - REC_SUM))
		return -EBADMSG;
	int kind = p[5];
	uint32_t nranges = get32(p + 16);
	size_t path_len = get16(p + 20);
	unsigned layer = get16(p + 22);
	if ((kind != PARTIAL_LOWER && kind != PARTIAL_STORE) || get16(p + 6) != 0)
		return -EINVAL;
	if (kind == PARTIAL_LOWER ? (path_len == 0 || path_len > PARTIAL_PATH_MAX || layer == 0) : (path_len || layer))
		return -EINVAL;
	size_t id_len = kind == PARTIAL_LOWER ? REC_LOWER_ID + path_len : REC_STORE_ID;
	if (nranges > partial_record_max_ranges(kind == PARTIAL_LOWER ? path_len : 0) ||
	    len != REC_HEADER + id_len + (size_t)nranges * REC_RANGE + REC_SUM)
		return -EINVAL;
	ret->kind = kind;
	ret->source_len = get64(p + 8);
	ret->layer = layer;
	const uint8_t *q = p + REC_HEADER;
	if (kind == PARTIAL_LOWER) {
		ret->ident.ino = get64(q);
		ret->ident.size = get64(q + 8);
		ret->ident.mtime_sec = (int64_t)get64(q + 16);
		ret->ident.mtime_nsec = get32(q + 24);
		ret->ident.ctime_sec = (int64_t)get64(q + 28);
		ret->ident.ctime_nsec = get32(q + 36);
		if (ret->ident.mtime_nsec >= 1000000000u || ret->ident.ctime_nsec >= 1000000000u)
			return -EINVAL;
		if (!path_ok((const char *)q + REC_LOWER_ID, path_len))
			return -EINVAL;
		memcpy(ret->path, q + REC_LOWER_ID, path_len);
		ret->path[path_len] = '\0';
		/* The source cannot be longer than the file it names. */
		if (ret->source_len > ret->ident.size)
			return -EINVAL;
	} else {
		memcpy(ret->recipe.hash, q, 16);
		ret->recipe.n = get32(q + 16);
	}
	q += id_len;
	uint64_t nblocks = ret->source_len / PARTIAL_BLOCK + (ret->source_len % PARTIAL_BLOCK != 0);
	if (nranges) {
		ret->ranges = calloc(nranges, sizeof(*ret->ranges));
		if (!ret->ranges)
			return -ENOMEM;
	}
	uint64_t next = 0;
	for (uint32_t i = 0; i < nranges; i++, q += REC_RANGE) {
		uint32_t start = get32(q), count = get32(q + 4);
		/* Sorted, apart (touching ranges are written as one), inside. */
		if (count == 0 || start < next || (i > 0 && start == next) || (uint64_t)start + count > nblocks) {
			partial_record_release(ret);
			return -EINVAL;
		}
		ret->ranges[i] = (struct partial_range){ start, count };
		next = (uint64_t)start + count;
	}
	ret->nranges = nranges;
	return 0;
}

void partial_record_release(struct partial_record *r)
{
	free(r->ranges);
	r->ranges = NULL;
	r->nranges = 0;
}

bool partial_ident_matches(const struct partial_ident *id, const struct stat *st)
{
	return S_ISREG(st->st_mode) && (uint64_t)st->st_ino == id->ino && (uint64_t)st->st_size == id->size &&
	       st->st_mtim.tv_sec == id->mtime_sec && (uint32_t)st->st_mtim.tv_nsec == id->mtime_nsec &&
	       st->st_ctim.tv_sec == id->ctime_sec && (uint32_t)st->st_ctim.tv_nsec == id->ctime_nsec;
}
