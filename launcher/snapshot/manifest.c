/* The tree manifest's encoding and its defensive parser (manifest.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "snapshot/manifest.h"

static const char MAGIC[4] = { 'C', 'S', 'N', 'M' };
/* The smallest entry: a one-byte path, no target, no xattr. */
#define MIN_ENTRY (2 + 1 + 3 * 4 + 2 * (8 + 4) + 3 * 8 + 4 + 16 + 4 + 2 + 4)

void manifest_entry_release(struct manifest_entry *e)
{
	free(e->path);
	free(e->target);
	for (uint32_t i = 0; i < e->nxattrs; i++) {
		free(e->xattrs[i].name);
		free(e->xattrs[i].value);
	}
	free(e->xattrs);
	memset(e, 0, sizeof(*e));
}

void manifest_release(struct manifest *m)
{
	for (size_t i = 0; i < m->n; i++)
		manifest_entry_release(&m->e[i]);
	free(m->e);
	memset(m, 0, sizeof(*m));
}

int manifest_add(struct manifest *m, struct manifest_entry *e)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct manifest_entry *ne = realloc(m->e, cap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		m->e = ne;
		m->cap = cap;
	}
	m->e[m->n++] = *e;
	memset(e, 0, sizeof(*e));
	return 0;
}

struct buf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

static void put(struct buf *b, const void *d, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void put_u16(struct buf *b, uint16_t v)
{
	uint8_t x[2] = { v, v >> 8 };
	put(b, x, 2);
}

static void put_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4];
	for (int i = 0; i < 4; i++)
		x[i] = v >> (8 * i);
	put(b, x, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = v >> (8 * i);
	put(b, x, 8);
}

int manifest_encode(const struct manifest *m, void **ret, size_t *ret_len, struct corral_error *err)
{
	struct buf b = { 0 };
	put(&b, MAGIC, 4);
	put_u32(&b, MANIFEST_VERSION);
	put_u64(&b, m->n);
	for (size_t i = 0; i < m->n; i++) {
		const struct manifest_entry *e = &m->e[i];
		size_t pl = strlen(e->path), tl = e->target ? strlen(e->target) : 0;
		if (pl > MANIFEST_PATH_MAX || tl > MANIFEST_PATH_MAX || e->nxattrs > MANIFEST_XATTRS_MAX) {
			free(b.p);
			return err_plain(err, E2BIG, "manifest entry '%s' too large", e->path);
		}
		put_u16(&b, pl);
		put(&b, e->path, pl);
		put_u32(&b, e->mode);
		put_u32(&b, e->uid);
		put_u32(&b, e->gid);
		put_u64(&b, (uint64_t)e->atime_sec);
		put_u32(&b, e->atime_nsec);
		put_u64(&b, (uint64_t)e->mtime_sec);
		put_u32(&b, e->mtime_nsec);
		put_u64(&b, e->rdev);
		put_u64(&b, e->link);
		put_u64(&b, e->size);
		put_u32(&b, e->flags);
		put(&b, e->recipe.hash, 16);
		put_u32(&b, e->recipe.n);
		put_u16(&b, tl);
		put(&b, e->target, tl);
		put_u32(&b, e->nxattrs);
		for (uint32_t k = 0; k < e->nxattrs; k++) {
			size_t nl = strlen(e->xattrs[k].name);
			put_u16(&b, nl);
			put(&b, e->xattrs[k].name, nl);
			put_u32(&b, e->xattrs[k].len);
			put(&b, e->xattrs[k].value, e->xattrs[k].len);
		}
	}
	if (!b.oom)
		put_u64(&b, XXH3_64bits(b.p, b.len));
	if (b.oom) {
		free(b.p);
		return err_set(err, ENOMEM, "encoding the manifest");
	}
	*ret = b.p;
	*ret_len = b.len;
	return 0;
}

struct rd {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
	if (r->bad || n > r->left) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static uint64_t get_le(struct rd *r, int n)
{
	const uint8_t *p = take(r, n);
	uint64_t v = 0;
	if (!p)
		return 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* A copy of n bytes as a string: NULL (r marked bad) on a NUL inside. */
static char *get_str(struct rd *r, size_t n, bool *oom)
{
	const uint8_t *p = take(r, n);
	if (!p)
		return NULL;
	if (memchr(p, '\0', n)) {
		r->bad = true;
		return NULL;
	}
	char *s = malloc(n + 1);
	if (!s) {
		*oom = true;
		r->bad = true;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* "." or a relative path of real names. */
static bool path_ok(const char *p)
{
	if (!strcmp(p, "."))
		return true;
	if (!*p || *p == '/')
		return false;
	for (const char *c = p;;) {
		const char *slash = strchr(c, '/');
		size_t n = slash ? (size_t)(slash - c) : strlen(c);
		if (n == 0 || n > 255 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (!slash)
			return true;
		c = slash + 1;
	}
}

static bool type_ok(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO: case S_IFSOCK:
		return true;
	}
	return false;
}

static int parse_entry(struct rd *r, struct manifest *m, struct manifest_entry *e, bool *oom)
{
	e->path = get_str(r, get_le(r, 2), oom);
	e->mode = get_le(r, 4);
	e->uid = get_le(r, 4);
	e->gid = get_le(r, 4);
	e->atime_sec = (int64_t)get_le(r, 8);
	e->atime_nsec = get_le(r, 4);
	e->mtime_sec = (int64_t)get_le(r, 8);
	e->mtime_nsec = get_le(r, 4);
	e->rdev = get_le(r, 8);
	e->link = get_le(r, 8);
	e->size = get_le(r, 8);
	e->flags = get_le(r, 4);
	const uint8_t *h = take(r, 16);
	if (h)
		memcpy(e->recipe.hash, h, 16);
	e->recipe.n = get_le(r, 4);
	size_t tl = get_le(r, 2);
	if (tl)
		e->target = get_str(r, tl, oom);
	/* e->nxattrs counts allocated slots only (release walks them). */
	uint32_t nx = get_le(r, 4);
	if (r->bad)
		return -EINVAL;
	/* Each xattr takes 6 bytes at least: bound the count by what is left. */
	if (nx > MANIFEST_XATTRS_MAX || nx > r->left / 6)
		return -EINVAL;
	if (nx) {
		e->xattrs = calloc(nx, sizeof(*e->xattrs));
		if (!e->xattrs) {
			*oom = true;
			return -ENOMEM;
		}
		e->nxattrs = nx;
	}
	for (uint32_t k = 0; k < e->nxattrs; k++) {
		size_t nl = get_le(r, 2);
		if (nl == 0 || nl > MANIFEST_XATTR_NAME_MAX)
			return -EINVAL;
		e->xattrs[k].name = get_str(r, nl, oom);
		uint32_t vl = get_le(r, 4);
		if (r->bad || vl > MANIFEST_XATTR_VALUE_MAX)
			return -EINVAL;
		const uint8_t *v = take(r, vl);
		if (!v)
			return -EINVAL;
		e->xattrs[k].value = malloc(vl ? vl : 1);
		if (!e->xattrs[k].value) {
			*oom = true;
			return -ENOMEM;
		}
		memcpy(e->xattrs[k].value, v, vl);
		e->xattrs[k].len = vl;
	}
	if (r->bad)
		return -EINVAL;
	/* The entry's own consistency. */
	if (!path_ok(e->path) || !type_ok(e->mode) || (e->mode & ~(uint32_t)(S_IFMT | 07777)) ||
	    e->atime_nsec >= 1000000000u || e->mtime_nsec >= 1000000000u || (e->flags & ~MANIFEST_HAS_RECIPE))
		return -EINVAL;
	bool is_root = !strcmp(e->path, ".");
	if (is_root != (m->n == 0) || (is_root && !S_ISDIR(e->mode)))
		return -EINVAL;
	if (S_ISLNK(e->mode) != (e->target != NULL))
		return -EINVAL;
	if (e->link) {
		/* A hard link names an earlier, non-directory first of its group. */
		if (e->link > m->n || S_ISDIR(e->mode) || (e->flags & MANIFEST_HAS_RECIPE))
			return -EINVAL;
		const struct manifest_entry *t = &m->e[e->link - 1];
		if (t->link || (t->mode & S_IFMT) != (e->mode & S_IFMT))
			return -EINVAL;
	} else if (S_ISREG(e->mode) != !!(e->flags & MANIFEST_HAS_RECIPE)) {
		return -EINVAL;
	}
	return 0;
}

int manifest_parse(const void *buf, size_t len, struct manifest *ret, struct corral_error *err)
{
	memset(ret, 0, sizeof(*ret));
	if (len < 24 || memcmp(buf, MAGIC, 4))
		return err_plain(err, EINVAL, "not a snapshot manifest (bad magic or too short)");
	struct rd r = { .p = buf, .left = len - 8 };
	take(&r, 4);
	uint32_t version = get_le(&r, 4);
	if (version != MANIFEST_VERSION)
		return err_plain(err, EPROTONOSUPPORT, "snapshot manifest version %u, this corral reads version %u",
				 version, MANIFEST_VERSION);
	const uint8_t *end = (const uint8_t *)buf + len - 8;
	uint64_t sum = 0;
	for (int i = 0; i < 8; i++)
		sum |= (uint64_t)end[i] << (8 * i);
	if (sum != XXH3_64bits(buf, len - 8))
		return err_plain(err, EBADMSG, "snapshot manifest checksum mismatch (damaged)");
	uint64_t n = get_le(&r, 8);
	/* An entry takes MIN_ENTRY bytes at least: bound the count. */
	if (n == 0 || n > r.left / MIN_ENTRY)
		return err_plain(err, EINVAL, "snapshot manifest: bad entry count %llu", (unsigned long long)n);
	for (uint64_t i = 0; i < n; i++) {
		struct manifest_entry e = { 0 };
		bool oom = false;
		int rc = parse_entry(&r, ret, &e, &oom);
		if (rc == 0 && manifest_add(ret, &e) < 0)
			oom = true, rc = -ENOMEM;
		if (rc < 0) {
			manifest_entry_release(&e);
			manifest_release(ret);
			if (oom)
				return err_set(err, ENOMEM, "reading the snapshot manifest");
			return err_plain(err, EINVAL, "snapshot manifest: entry %llu is malformed",
					 (unsigned long long)i);
		}
	}
	if (r.left) {
		manifest_release(ret);
		return err_plain(err, EINVAL, "snapshot manifest: %zu trailing bytes", r.left);
	}
	return 0;
}
