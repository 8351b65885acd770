/* The backup stream: writer and defensive reader (backup-stream.h,
 * FORMAT.md). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "backup/backup-stream.h"
#include "snapshot/snapshot.h"
#include "template/template.h"

#define REC_PREFIX 12	/* type u32, length u64 */
#define REC_SUM 8
#define BASE_LEN (BSTREAM_KEY_SIZE + 8 + 8 + 4)
#define END_LEN ((BREC_NTYPES) * 8 + 8 + 16)
#define READ_CHUNK (128 * 1024)

static const char *const type_names[BREC_NTYPES] = { "?", "HEADER", "MANIFEST", "BLOCK", "BASE", "RECIPE", "END" };

const char *bstream_type_name(uint32_t type)
{
	return type > 0 && type < BREC_NTYPES ? type_names[type] : "unknown";
}

void bstream_hex(const uint8_t *b, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ---- little-endian helpers ---- */
static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}
static void put_key(uint8_t *p, const struct store_key *k)
{
	memcpy(p, k->hash, 16);
	le32(p + 16, k->n);
}
static void get_key(const uint8_t *p, struct store_key *k)
{
	memcpy(k->hash, p, 16);
	k->n = get32(p + 16);
}

void bstream_header_release(struct bstream_header *h)
{
	free(h->config);
	h->config = NULL;
}

bool bstream_header_incremental(const struct bstream_header *h)
{
	return h->since_tag[0] != '\0';
}

/* ---- writer ---- */

static int write_all(struct bstream_writer *w, const void *p, size_t n, struct corral_error *err)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t k = write(w->fd, b, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return err_set(err, k < 0 ? errno : EIO, "writing the backup stream");
		XXH3_64bits_update(w->whole, b, (size_t)k);
		b += k;
		n -= (size_t)k;
		w->stream_bytes += (uint64_t)k;
	}
	return 0;
}

/* Compresses p[0..n) (and with `end`, ends the zstd frame). */
static int compress(struct bstream_writer *w, const void *p, size_t n, bool end, struct corral_error *err)
{
	ZSTD_inBuffer in = { p, n, 0 };
	for (;;) {
		ZSTD_outBuffer out = { w->out, w->out_cap, 0 };
		size_t left = ZSTD_compressStream2(w->cctx, &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
		if (ZSTD_isError(left))
			return err_plain(err, EIO, "zstd compression: %s", ZSTD_getErrorName(left));
		if (out.pos) {
			int r = write_all(w, w->out, out.pos, err);
			if (r < 0)
				return r;
		}
		if (end ? left == 0 : in.pos == in.size)
			return 0;
	}
}

int bstream_writer_open(struct bstream_writer *w, int fd, int level, struct corral_error *err)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->cctx = ZSTD_createCCtx();
	w->body = XXH3_createState();
	w->whole = XXH3_createState();
	w->out_cap = ZSTD_CStreamOutSize();
	w->out = malloc(w->out_cap);
	if (!w->cctx || !w->body || !w->whole || !w->out)
		return err_set(err, ENOMEM, "backup stream writer");
	XXH3_128bits_reset(w->body);
	XXH3_64bits_reset(w->whole);
	if (ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 0)))
		return err_plain(err, EINVAL, "zstd level %d refused", level);
	uint8_t h[BSTREAM_HEADER_SIZE] = { 0 };
	memcpy(h, BSTREAM_MAGIC, 8);
	le32(h + 8, BSTREAM_VERSION);
	le32(h + 12, BSTREAM_COMPRESSION_ZSTD);
	le64(h + 24, XXH3_64bits(h, 24));
	return write_all(w, h, sizeof(h), err);
}

/* One record from up to two payload pieces. */
static int write_record(struct bstream_writer *w, uint32_t type, const void *a, size_t alen, const void *b,
			size_t blen, struct corral_error *err)
{
	uint8_t pre[REC_PREFIX], sum[REC_SUM];
	le32(pre, type);
	le64(pre + 4, (uint64_t)alen + blen);
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return err_set(err, ENOMEM, "backup stream writer");
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, pre, sizeof(pre));
	XXH3_64bits_update(st, a, alen);
	if (blen)
		XXH3_64bits_update(st, b, blen);
	le64(sum, XXH3_64bits_digest(st));
	XXH3_freeState(st);
	if (type != BREC_END) {
		XXH3_128bits_update(w->body, pre, sizeof(pre));
		XXH3_128bits_update(w->body, a, alen);
		if (blen)
			XXH3_128bits_update(w->body, b, blen);
		XXH3_128bits_update(w->body, sum, sizeof(sum));
		w->counts[type]++;
	}
	int r = compress(w, pre, sizeof(pre), false, err);
	if (r == 0)
		r = compress(w, a, alen, false, err);
	if (r == 0 && blen)
		r = compress(w, b, blen, false, err);
	if (r == 0)
		r = compress(w, sum, sizeof(sum), false, err);
	return r;
}

static size_t put_str(uint8_t *p, const char *s)
{
	size_t n = strlen(s);
	p[0] = (uint8_t)n;
	p[1] = (uint8_t)(n >> 8);
	memcpy(p + 2, s, n);
	return 2 + n;
}

int bstream_write_header(struct bstream_writer *w, const struct bstream_header *h, struct corral_error *err)
{
	const char *strs[] = { h->container, h->tag, h->since_tag, h->template_name, h->version };
	for (size_t i = 0; i < 5; i++)
		if (strlen(strs[i]) > BSTREAM_STR_MAX)
			return err_plain(err, ENAMETOOLONG, "backup header: '%s' is too long", strs[i]);
	if (h->config_len > BSTREAM_CONFIG_MAX)
		return err_plain(err, EFBIG, "backup header: the config is too large");
	uint8_t *p = malloc(BSTREAM_HEADER_REC_MAX);
	if (!p)
		return err_set(err, ENOMEM, "backup header");
	size_t n = 0;
	memcpy(p, h->backup_id, 16);
	memcpy(p + 16, h->since_id, 16);
	le64(p + 32, (uint64_t)h->created);
	memcpy(p + 40, h->template_digest, 16);
	n = 56;
	for (size_t i = 0; i < 5; i++)
		n += put_str(p + n, strs[i]);
	le32(p + n, (uint32_t)h->config_len);
	n += 4;
	memcpy(p + n, h->config, h->config_len);
	n += h->config_len;
	int r = write_record(w, BREC_HEADER, p, n, NULL, 0, err);
	free(p);
	return r;
}

int bstream_write_manifest(struct bstream_writer *w, const void *buf, size_t len, struct corral_error *err)
{
	if (len > BSTREAM_MANIFEST_MAX)
		return err_plain(err, EFBIG, "the manifest is too large for a backup stream");
	return write_record(w, BREC_MANIFEST, buf, len, NULL, 0, err);
}

int bstream_write_block(struct bstream_writer *w, const struct store_key *k, const void *data, size_t len,
			struct corral_error *err)
{
	uint8_t kb[BSTREAM_KEY_SIZE];
	put_key(kb, k);
	w->content_bytes += len;
	return write_record(w, BREC_BLOCK, kb, sizeof(kb), data, len, err);
}

int bstream_write_base(struct bstream_writer *w, const struct bstream_base *b, struct corral_error *err)
{
	uint8_t p[BASE_LEN];
	put_key(p, &b->key);
	le64(p + 20, b->entry);
	le64(p + 28, b->block);
	le32(p + 36, b->len);
	return write_record(w, BREC_BASE, p, sizeof(p), NULL, 0, err);
}

int bstream_write_recipe(struct bstream_writer *w, const struct store_key *k, const struct store_recipe *r,
			 struct corral_error *err)
{
	if (r->n > BSTREAM_RECIPE_MAX_ENTRIES)
		return err_plain(err, EFBIG, "a recipe of %zu blocks is too large for a backup stream", r->n);
	size_t len = BSTREAM_KEY_SIZE + 8 + r->n * (BSTREAM_KEY_SIZE + 4);
	uint8_t *p = malloc(len);
	if (!p)
		return err_set(err, ENOMEM, "backup recipe");
	put_key(p, k);
	le64(p + 20, r->n);
	for (size_t i = 0; i < r->n; i++) {
		put_key(p + 28 + i * 24, &r->e[i].key);
		le32(p + 28 + i * 24 + 20, r->e[i].len);
	}
	int ret = write_record(w, BREC_RECIPE, p, len, NULL, 0, err);
	free(p);
	return ret;
}

int bstream_writer_finish(struct bstream_writer *w, struct corral_error *err)
{
	uint8_t p[END_LEN];
	for (int i = 0; i < BREC_NTYPES; i++)
		le64(p + 8 * i, w->counts[i]);
	le64(p + 8 * BREC_NTYPES, w->content_bytes);
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(w->body));
	memcpy(p + 8 * BREC_NTYPES + 8, c.digest, 16);
	int r = write_record(w, BREC_END, p, sizeof(p), NULL, 0, err);
	if (r == 0)
		r = compress(w, NULL, 0, true, err);
	if (r == 0) {
		uint8_t t[8];
		le64(t, XXH3_64bits_digest(w->whole));
		r = write_all(w, t, sizeof(t), err);
	}
	return r;
}

void bstream_writer_release(struct bstream_writer *w)
{
	ZSTD_freeCCtx(w->cctx);
	if (w->body)
		XXH3_freeState(w->body);
	if (w->whole)
		XXH3_freeState(w->whole);
	free(w->out);
	w->cctx = w->body = w->whole = NULL;
	w->out = NULL;
}

/* ---- reader ---- */

long bstream_read_fd(void *ctx, void *buf, size_t len)
{
	int fd = *(int *)ctx;
	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : (long)n;
	}
}

long bstream_read_mem(void *ctx, void *buf, size_t len)
{
	struct bstream_mem *m = ctx;
	size_t n = m->len - m->pos < len ? m->len - m->pos : len;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (long)n;
}

/* Raw (compressed) input into r->in; 0, or -errno. */
static int fill_input(struct bstream_reader *r, struct corral_error *err)
{
	if (r->in_eof)
		return 0;
	long n = r->read(r->ctx, r->in, r->in_cap);
	if (n < 0)
		return err_set(err, (int)-n, "reading the backup stream");
	if (n == 0) {
		r->in_eof = true;
		return 0;
	}
	if (r->tee_fd >= 0) {
		const uint8_t *b = r->in;
		size_t left = (size_t)n;
		while (left) {
			ssize_t k = write(r->tee_fd, b, left);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				return err_set(err, k < 0 ? errno : EIO, "spooling the backup stream");
			b += k;
			left -= (size_t)k;
		}
	}
	r->in_pos = 0;
	r->in_len = (size_t)n;
	r->compressed_bytes += (uint64_t)n;
	return 0;
}

/* Exactly n raw bytes (the plain header); -EBADMSG if the input ends. */
static int read_raw(struct bstream_reader *r, uint8_t *out, size_t n, struct corral_error *err)
{
	size_t got = 0;
	while (got < n) {
		if (r->in_pos == r->in_len) {
			int t = fill_input(r, err);
			if (t < 0)
				return t;
			if (r->in_eof)
				return err_plain(err, EBADMSG, "not a corral backup stream: it ends after %zu bytes, "
						 "inside the %d-byte stream header", got, BSTREAM_HEADER_SIZE);
		}
		size_t k = r->in_len - r->in_pos < n - got ? r->in_len - r->in_pos : n - got;
		memcpy(out + got, r->in + r->in_pos, k);
		XXH3_64bits_update(r->whole, r->in + r->in_pos, k);
		r->in_pos += k;
		got += k;
	}
	return 0;
}

/* Decompresses into buf[len..cap); *progress: whether anything moved. */
static int decompress_some(struct bstream_reader *r, bool *progress, struct corral_error *err)
{
	*progress = false;
	if (r->in_pos == r->in_len) {
		int t = fill_input(r, err);
		if (t < 0)
			return t;
		if (r->in_eof)
			return 0;
	}
	if (r->frame_done)
		return err_plain(err, EBADMSG, "backup stream truncated: its compressed body ends before the END record "
				 "(at body offset %llu)", (unsigned long long)r->offset);
	ZSTD_inBuffer in = { r->in, r->in_len, r->in_pos };
	ZSTD_outBuffer out = { r->buf, r->buf_cap, r->len };
	size_t ret = ZSTD_decompressStream(r->dctx, &out, &in);
	if (ZSTD_isError(ret))
		return err_plain(err, EBADMSG, "backup stream: the compressed body is damaged (zstd: %s) near body offset %llu",
				 ZSTD_getErrorName(ret), (unsigned long long)r->offset);
	*progress = in.pos != r->in_pos || out.pos != r->len;
	XXH3_64bits_update(r->whole, r->in + r->in_pos, in.pos - r->in_pos);
	r->in_pos = in.pos;
	r->len = out.pos;
	if (ret == 0)
		r->frame_done = true;
	return 0;
}

/* Makes n decompressed bytes available at buf + pos (n already bounded). */
static int need(struct bstream_reader *r, size_t n, const char *what, struct corral_error *err)
{
	if (r->pos) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	while (r->len < n) {
		if (r->len == r->buf_cap) {
			/* Grow as data arrives, never to a length merely claimed. */
			size_t cap = r->buf_cap * 2;
			if (cap > n)
				cap = n < 256 * 1024 ? 256 * 1024 : n;
			uint8_t *nb = realloc(r->buf, cap);
			if (!nb)
				return err_set(err, ENOMEM, "backup stream reader");
			r->buf = nb;
			r->buf_cap = cap;
		}
		bool progress;
		int t = decompress_some(r, &progress, err);
		if (t < 0)
			return t;
		if (!progress && (r->in_eof || r->frame_done))
			return err_plain(err, EBADMSG, "backup stream truncated: it ends inside %s at body offset %llu "
					 "(%zu of %zu bytes there)", what, (unsigned long long)r->offset, r->len, n);
	}
	return 0;
}

int bstream_reader_open(struct bstream_reader *r, bstream_read_fn read, void *ctx, int tee_fd,
			struct corral_error *err)
{
	memset(r, 0, sizeof(*r));
	r->read = read;
	r->ctx = ctx;
	r->tee_fd = tee_fd;
	r->dctx = ZSTD_createDCtx();
	r->body = XXH3_createState();
	r->whole = XXH3_createState();
	r->in_cap = READ_CHUNK;
	r->in = malloc(r->in_cap);
	r->buf_cap = 256 * 1024;
	r->buf = malloc(r->buf_cap);
	if (!r->dctx || !r->body || !r->whole || !r->in || !r->buf)
		return err_set(err, ENOMEM, "backup stream reader");
	XXH3_128bits_reset(r->body);
	XXH3_64bits_reset(r->whole);
	uint8_t h[BSTREAM_HEADER_SIZE];
	int t = read_raw(r, h, sizeof(h), err);
	if (t < 0)
		return t;
	if (memcmp(h, BSTREAM_MAGIC, 8)) {
		char shown[40];
		bool printable = true;
		for (int i = 0; i < 8; i++)
			printable = printable && h[i] >= 0x20 && h[i] < 0x7f;
		if (printable)
			snprintf(shown, sizeof(shown), "'%.8s'", (const char *)h);
		else {
			shown[0] = '0';
			shown[1] = 'x';
			bstream_hex(h, 8, shown + 2);
		}
		return err_plain(err, EINVAL, "not a corral backup stream: magic %s, expected '%s'", shown,
				 BSTREAM_MAGIC);
	}
	if (get64(h + 24) != XXH3_64bits(h, 24))
		return err_plain(err, EBADMSG, "backup stream: header checksum mismatch");
	uint32_t version = get32(h + 8), comp = get32(h + 12);
	if (version != BSTREAM_VERSION)
		return err_plain(err, EPROTONOSUPPORT, "backup stream format version %u: this corral reads version %d",
				 version, BSTREAM_VERSION);
	if (comp != BSTREAM_COMPRESSION_ZSTD)
		return err_plain(err, EPROTONOSUPPORT, "backup stream compression %u: this corral reads %d (zstd)", comp,
				 BSTREAM_COMPRESSION_ZSTD);
	if (get64(h + 16))
		return err_plain(err, EBADMSG, "backup stream: reserved header bytes are not zero");
	return 0;
}

/* After END: nothing may follow, in the body or the input. */
static int check_tail(struct bstream_reader *r, struct corral_error *err)
{
	if (r->len > r->pos)
		return err_plain(err, EBADMSG, "backup stream: %zu bytes after the END record", r->len - r->pos);
	r->pos = r->len = 0;
	while (!r->frame_done) {
		bool progress;
		int t = decompress_some(r, &progress, err);
		if (t < 0)
			return t;
		if (r->len)
			return err_plain(err, EBADMSG, "backup stream: data after the END record");
		if (!progress && r->in_eof)
			return err_plain(err, EBADMSG, "backup stream truncated: the compressed body does not end after END");
	}
	/* The trailer: exactly 8 bytes, the XXH3-64 of everything before. */
	uint64_t want = XXH3_64bits_digest(r->whole);
	uint8_t t[8];
	size_t got = 0;
	for (;;) {
		size_t k = r->in_len - r->in_pos;
		if (k > sizeof(t) - got)
			return err_plain(err, EBADMSG, "backup stream: bytes after the end of its trailer");
		memcpy(t + got, r->in + r->in_pos, k);
		got += k;
		r->in_pos += k;
		if (r->in_eof)
			break;
		int e = fill_input(r, err);
		if (e < 0)
			return e;
	}
	if (got < sizeof(t))
		return err_plain(err, EBADMSG, "backup stream truncated: %zu of the trailer's 8 bytes", got);
	if (get64(t) != want)
		return err_plain(err, EBADMSG, "backup stream: the trailer's checksum of the whole file does not match");
	return 0;
}

static uint64_t max_len(uint32_t type)
{
	switch (type) {
	case BREC_HEADER: return BSTREAM_HEADER_REC_MAX;
	case BREC_MANIFEST: return BSTREAM_MANIFEST_MAX;
	case BREC_BLOCK: return BSTREAM_KEY_SIZE + STORE_BLOCK_SIZE;
	case BREC_BASE: return BASE_LEN;
	case BREC_RECIPE: return BSTREAM_KEY_SIZE + 8 + (uint64_t)BSTREAM_RECIPE_MAX_ENTRIES * 24;
	case BREC_END: return END_LEN;
	}
	return 0;
}

int bstream_next(struct bstream_reader *r, uint32_t *type, const uint8_t **payload, size_t *len,
		 struct corral_error *err)
{
	if (r->ended)
		return 0;
	/* The previous record is consumed. */
	int t = need(r, REC_PREFIX, r->last_type ? "a record header (no END record)" : "the first record", err);
	if (t < 0)
		return t;
	const uint8_t *p = r->buf + r->pos;
	uint32_t ty = get32(p);
	uint64_t l = get64(p + 4);
	unsigned long long off = (unsigned long long)r->offset;
	if (ty == 0 || ty >= BREC_NTYPES)
		return err_plain(err, EBADMSG, "backup stream: unknown record type %u at body offset %llu", ty, off);
	if (l > max_len(ty) || (ty == BREC_BASE && l != BASE_LEN) || (ty == BREC_END && l != END_LEN) ||
	    (ty == BREC_BLOCK && l < BSTREAM_KEY_SIZE) || (ty == BREC_RECIPE && l < BSTREAM_KEY_SIZE + 8))
		return err_plain(err, EBADMSG, "backup stream: %s record at body offset %llu has a bad length %llu",
				 bstream_type_name(ty), off, (unsigned long long)l);
	/* Order: HEADER, MANIFEST, then BLOCK/BASE/RECIPE, then END. */
	bool order_ok = r->last_type == 0 ? ty == BREC_HEADER
		      : r->last_type == BREC_HEADER ? ty == BREC_MANIFEST
		      : ty != BREC_HEADER && ty != BREC_MANIFEST;
	if (!order_ok)
		return err_plain(err, EBADMSG, "backup stream: %s record at body offset %llu is out of order (after %s)",
				 bstream_type_name(ty), off, r->last_type ? bstream_type_name((uint32_t)r->last_type) : "nothing");
	char what[64];
	snprintf(what, sizeof(what), "a %s record", bstream_type_name(ty));
	size_t total = REC_PREFIX + (size_t)l + REC_SUM;
	t = need(r, total, what, err);
	if (t < 0)
		return t;
	p = r->buf + r->pos;
	if (get64(p + REC_PREFIX + l) != XXH3_64bits(p, REC_PREFIX + (size_t)l))
		return err_plain(err, EBADMSG, "backup stream: checksum mismatch in the %s record at body offset %llu",
				 bstream_type_name(ty), off);
	r->pos += total;
	r->offset += total;
	r->last_type = (int)ty;
	*type = ty;
	*payload = p + REC_PREFIX;
	*len = (size_t)l;
	if (ty != BREC_END) {
		XXH3_128bits_update(r->body, p, total);
		r->counts[ty]++;
		if (ty == BREC_BLOCK)
			r->content_bytes += l - BSTREAM_KEY_SIZE;
		return 1;
	}
	const uint8_t *e = p + REC_PREFIX;
	for (int i = 1; i < BREC_END; i++)
		if (get64(e + 8 * i) != r->counts[i])
			return err_plain(err, EBADMSG, "backup stream: END counts %llu %s records, the stream has %llu",
					 (unsigned long long)get64(e + 8 * i), bstream_type_name((uint32_t)i),
					 (unsigned long long)r->counts[i]);
	if (get64(e) != 0 || get64(e + 8 * BREC_END) != 0)
		return err_plain(err, EBADMSG, "backup stream: END has nonzero reserved counts");
	if (get64(e + 8 * BREC_NTYPES) != r->content_bytes)
		return err_plain(err, EBADMSG, "backup stream: END counts %llu content bytes, the stream has %llu",
				 (unsigned long long)get64(e + 8 * BREC_NTYPES), (unsigned long long)r->content_bytes);
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(r->body));
	if (memcmp(c.digest, e + 8 * BREC_NTYPES + 8, 16))
		return err_plain(err, EBADMSG, "backup stream: the body checksum in END does not match");
	t = check_tail(r, err);
	if (t < 0)
		return t;
	memcpy(r->end_hash, c.digest, 16);
	r->ended = true;
	return 0;
}

void bstream_reader_release(struct bstream_reader *r)
{
	ZSTD_freeDCtx(r->dctx);
	if (r->body)
		XXH3_freeState(r->body);
	if (r->whole)
		XXH3_freeState(r->whole);
	free(r->in);
	free(r->buf);
	r->dctx = r->body = r->whole = NULL;
	r->in = r->buf = NULL;
}

/* ---- payload parsers ---- */

static int get_str(const uint8_t *p, size_t len, size_t *off, char *out, const char *what, struct corral_error *err)
{
	if (len - *off < 2)
		return err_plain(err, EBADMSG, "backup header: truncated at %s", what);
	size_t n = (size_t)p[*off] | (size_t)p[*off + 1] << 8;
	*off += 2;
	if (n > BSTREAM_STR_MAX || len - *off < n)
		return err_plain(err, EBADMSG, "backup header: bad length %zu of %s", n, what);
	if (memchr(p + *off, '\0', n))
		return err_plain(err, EBADMSG, "backup header: NUL in %s", what);
	memcpy(out, p + *off, n);
	out[n] = '\0';
	*off += n;
	return 0;
}

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

int bstream_parse_header(const uint8_t *p, size_t len, struct bstream_header *h, struct corral_error *err)
{
	memset(h, 0, sizeof(*h));
	if (len < 56)
		return err_plain(err, EBADMSG, "backup header: too short (%zu bytes)", len);
	memcpy(h->backup_id, p, 16);
	memcpy(h->since_id, p + 16, 16);
	h->created = (int64_t)get64(p + 32);
	memcpy(h->template_digest, p + 40, 16);
	size_t off = 56;
	int r = get_str(p, len, &off, h->container, "the container name", err);
	if (r == 0)
		r = get_str(p, len, &off, h->tag, "the tag", err);
	if (r == 0)
		r = get_str(p, len, &off, h->since_tag, "the since tag", err);
	if (r == 0)
		r = get_str(p, len, &off, h->template_name, "the template name", err);
	if (r == 0)
		r = get_str(p, len, &off, h->version, "the corral version", err);
	if (r < 0)
		return r;
	if (len - off < 4)
		return err_plain(err, EBADMSG, "backup header: truncated at the config");
	size_t cl = get32(p + off);
	off += 4;
	if (cl > BSTREAM_CONFIG_MAX || len - off != cl)
		return err_plain(err, EBADMSG, "backup header: bad config length %zu", cl);
	if (memchr(p + off, '\0', cl))
		return err_plain(err, EBADMSG, "backup header: NUL in the config");
	struct corral_error verr = { 0 };
	if (name_validate("container", h->container, &verr) < 0 || snapshot_tag_validate(h->tag, &verr) < 0 ||
	    (h->since_tag[0] && snapshot_tag_validate(h->since_tag, &verr) < 0) ||
	    name_validate("template", h->template_name, &verr) < 0)
		return err_plain(err, EBADMSG, "backup header: %s", verr.msg);
	if (!h->since_tag[0] != all_zero(h->since_id, 16))
		return err_plain(err, EBADMSG, "backup header: a since tag without a since id, or the reverse");
	h->config = malloc(cl + 1);
	if (!h->config)
		return err_set(err, ENOMEM, "backup header");
	memcpy(h->config, p + off, cl);
	h->config[cl] = '\0';
	h->config_len = cl;
	return 0;
}

int bstream_parse_block(const uint8_t *p, size_t len, struct store_key *k, const uint8_t **data, size_t *data_len,
			struct corral_error *err)
{
	if (len < BSTREAM_KEY_SIZE || len > BSTREAM_KEY_SIZE + STORE_BLOCK_SIZE)
		return err_plain(err, EBADMSG, "backup stream: a BLOCK record of %zu bytes", len);
	get_key(p, k);
	*data = p + BSTREAM_KEY_SIZE;
	*data_len = len - BSTREAM_KEY_SIZE;
	return 0;
}

int bstream_parse_base(const uint8_t *p, size_t len, struct bstream_base *b, struct corral_error *err)
{
	if (len != BASE_LEN)
		return err_plain(err, EBADMSG, "backup stream: a BASE record of %zu bytes", len);
	get_key(p, &b->key);
	b->entry = get64(p + 20);
	b->block = get64(p + 28);
	b->len = get32(p + 36);
	if (b->len > STORE_BLOCK_SIZE)
		return err_plain(err, EBADMSG, "backup stream: a BASE record of a %u-byte block", b->len);
	return 0;
}

int bstream_parse_recipe(const uint8_t *p, size_t len, struct store_key *k, struct store_recipe *ret,
			 struct corral_error *err)
{
	memset(ret, 0, sizeof(*ret));
	if (len < BSTREAM_KEY_SIZE + 8)
		return err_plain(err, EBADMSG, "backup stream: a RECIPE record of %zu bytes", len);
	get_key(p, k);
	uint64_t n = get64(p + 20);
	if (n > BSTREAM_RECIPE_MAX_ENTRIES || (len - 28) / 24 != n || (len - 28) % 24)
		return err_plain(err, EBADMSG, "backup stream: a RECIPE record of %llu entries in %zu bytes",
				 (unsigned long long)n, len);
	ret->e = calloc(n ? n : 1, sizeof(*ret->e));
	if (!ret->e)
		return err_set(err, ENOMEM, "backup recipe");
	ret->n = n;
	for (size_t i = 0; i < n; i++) {
		get_key(p + 28 + i * 24, &ret->e[i].key);
		ret->e[i].len = get32(p + 28 + i * 24 + 20);
		if (ret->e[i].len > STORE_BLOCK_SIZE) {
			uint32_t bad = ret->e[i].len;
			store_recipe_release(ret);
			return err_plain(err, EBADMSG, "backup stream: a recipe names a %u-byte block", bad);
		}
		ret->size += ret->e[i].len;
	}
	return 0;
}

/* ---- key map ---- */

static size_t slot_of(const struct store_key *k, size_t cap)
{
	uint64_t h;
	memcpy(&h, k->hash, 8);
	return (size_t)((h ^ ((uint64_t)k->n * 0x9e3779b97f4a7c15ull)) & (cap - 1));
}

struct bkeymap_slot *bkeymap_get(const struct bkeymap *m, const struct store_key *k)
{
	if (!m->cap)
		return NULL;
	for (size_t i = slot_of(k, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (!m->s[i].used)
			return NULL;
		if (store_key_eq(&m->s[i].key, k))
			return &m->s[i];
	}
}

int bkeymap_put(struct bkeymap *m, const struct store_key *k, const struct store_key *val, uint64_t aux)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 1024;
		struct bkeymap_slot *ns = calloc(cap, sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		for (size_t i = 0; i < m->cap; i++) {
			if (!m->s[i].used)
				continue;
			size_t j = slot_of(&m->s[i].key, cap);
			while (ns[j].used)
				j = (j + 1) & (cap - 1);
			ns[j] = m->s[i];
		}
		free(m->s);
		m->s = ns;
		m->cap = cap;
	}
	size_t i = slot_of(k, m->cap);
	while (m->s[i].used && !store_key_eq(&m->s[i].key, k))
		i = (i + 1) & (m->cap - 1);
	if (!m->s[i].used)
		m->n++;
	m->s[i].used = true;
	m->s[i].key = *k;
	if (val)
		m->s[i].val = *val;
	m->s[i].aux = aux;
	return 0;
}

void bkeymap_release(struct bkeymap *m)
{
	free(m->s);
	memset(m, 0, sizeof(*m));
}
