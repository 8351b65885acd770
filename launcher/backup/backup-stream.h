/* The backup stream's format (launcher/backup/FORMAT.md): a writer and the
 * one defensive reader that restore and verify share.
 *
 * A stream is a plain 32-byte header, then one zstd stream of records
 * (type u32, payload length u64, payload, XXH3-64 of the three), in the
 * order HEADER, MANIFEST, {BLOCK, BASE, RECIPE}..., END, and nothing after
 * END; after the compressed body, an 8-byte trailer: the XXH3-64 of every
 * byte of the file before it (zstd ignores some bits of its own headers:
 * the trailer catches a flip there too).  The reader trusts nothing: every length is bounded before anything
 * is allocated for it, the record's checksum is checked before its payload
 * is parsed, and every refusal is -EBADMSG / -EPROTONOSUPPORT / -EINVAL
 * with a message naming the record and the problem, never a crash
 * (tests/fuzz-backup-stream.c).
 *
 * Module backup (see backup.h).
 * May call: snapshot, container, template, cgroup, store, common. */
#ifndef CORRAL_BACKUP_STREAM_H
#define CORRAL_BACKUP_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store/store.h"

#define BSTREAM_MAGIC "CORRALBK"
#define BSTREAM_VERSION 1
#define BSTREAM_COMPRESSION_ZSTD 1
#define BSTREAM_HEADER_SIZE 32

enum bstream_type {
	BREC_HEADER = 1,
	BREC_MANIFEST = 2,
	BREC_BLOCK = 3,
	BREC_BASE = 4,
	BREC_RECIPE = 5,
	BREC_END = 6,
};
#define BREC_NTYPES 7

/* Bounds, checked before anything is allocated. */
#define BSTREAM_MANIFEST_MAX (512u * 1024 * 1024)	/* as snapshot_read_manifest */
#define BSTREAM_CONFIG_MAX (1u << 20)
#define BSTREAM_STR_MAX 255
#define BSTREAM_KEY_SIZE 20				/* hash[16], n u32 */
#define BSTREAM_RECIPE_MAX_ENTRIES (STORE_RECORD_MAX / 24)
#define BSTREAM_HEADER_REC_MAX (64 + 5 * (2 + BSTREAM_STR_MAX) + 4 + BSTREAM_CONFIG_MAX)

struct bstream_header {
	uint8_t backup_id[16];
	uint8_t since_id[16];		/* zeros for a full backup */
	int64_t created;		/* seconds since the epoch */
	char container[BSTREAM_STR_MAX + 1];
	char tag[BSTREAM_STR_MAX + 1];
	char since_tag[BSTREAM_STR_MAX + 1];	/* "" for a full backup */
	char template_name[BSTREAM_STR_MAX + 1];
	uint8_t template_digest[16];
	char version[BSTREAM_STR_MAX + 1];
	char *config;			/* the container's config file text, NUL-terminated */
	size_t config_len;
};
void bstream_header_release(struct bstream_header *h);
bool bstream_header_incremental(const struct bstream_header *h);

struct bstream_base {
	struct store_key key;
	uint64_t entry, block;
	uint32_t len;
};

struct bstream_end {
	uint64_t counts[BREC_NTYPES];	/* records of each type before END */
	uint64_t content_bytes;		/* BLOCK data bytes */
	uint8_t body_hash[16];		/* XXH3-128 of every body byte before END */
};

/* ---- writer ---- */
struct bstream_writer {
	int fd;
	void *cctx;			/* ZSTD_CCtx */
	void *body;			/* XXH3_state_t of the body, for END */
	void *whole;			/* XXH3-64 state of every byte written, for the trailer */
	uint8_t *out;
	size_t out_cap;
	uint64_t counts[BREC_NTYPES], content_bytes, stream_bytes;
};
/* Writes the plain header; level is zstd's (1..19). */
int bstream_writer_open(struct bstream_writer *w, int fd, int level, struct corral_error *err);
int bstream_write_header(struct bstream_writer *w, const struct bstream_header *h, struct corral_error *err);
int bstream_write_manifest(struct bstream_writer *w, const void *buf, size_t len, struct corral_error *err);
int bstream_write_block(struct bstream_writer *w, const struct store_key *k, const void *data, size_t len,
			struct corral_error *err);
int bstream_write_base(struct bstream_writer *w, const struct bstream_base *b, struct corral_error *err);
int bstream_write_recipe(struct bstream_writer *w, const struct store_key *k, const struct store_recipe *r,
			 struct corral_error *err);
/* Writes END and ends the zstd stream. */
int bstream_writer_finish(struct bstream_writer *w, struct corral_error *err);
void bstream_writer_release(struct bstream_writer *w);

/* ---- reader ---- */
/* Where the compressed bytes come from: returns bytes read (0 at EOF) or
 * -errno. */
typedef long (*bstream_read_fn)(void *ctx, void *buf, size_t len);

struct bstream_reader {
	bstream_read_fn read;
	void *ctx;
	int tee_fd;			/* -1, or where every byte read is copied (a spool) */
	void *dctx;			/* ZSTD_DCtx */
	uint8_t *in;
	size_t in_cap, in_pos, in_len;
	bool in_eof, frame_done;
	uint8_t *buf;			/* decompressed bytes [pos, len) not yet consumed */
	size_t buf_cap, pos, len;
	void *body;			/* XXH3_state_t of the body */
	void *whole;			/* XXH3-64 state of the raw bytes consumed */
	uint64_t offset;		/* body offset of the next record */
	uint64_t compressed_bytes;
	uint64_t counts[BREC_NTYPES], content_bytes;
	int last_type;			/* 0 before HEADER */
	bool ended;
	uint8_t end_hash[16];		/* END's body checksum, once ended */
};
/* Reads and checks the plain header. */
int bstream_reader_open(struct bstream_reader *r, bstream_read_fn read, void *ctx, int tee_fd,
			struct corral_error *err);
/* The next record: 1 with *type, *payload (valid until the next call) and
 * *len; 0 once END was read, checked (counts, body hash) and nothing
 * follows it; <0 on any damage. */
int bstream_next(struct bstream_reader *r, uint32_t *type, const uint8_t **payload, size_t *len,
		 struct corral_error *err);
void bstream_reader_release(struct bstream_reader *r);

/* Payload parsers (each bounds-checks everything). */
int bstream_parse_header(const uint8_t *p, size_t len, struct bstream_header *ret, struct corral_error *err);
int bstream_parse_block(const uint8_t *p, size_t len, struct store_key *k, const uint8_t **data, size_t *data_len,
			struct corral_error *err);
int bstream_parse_base(const uint8_t *p, size_t len, struct bstream_base *ret, struct corral_error *err);
/* The recipe's entries keep the sender's keys. */
int bstream_parse_recipe(const uint8_t *p, size_t len, struct store_key *k, struct store_recipe *ret,
			 struct corral_error *err);

/* Readers over an fd and over memory. */
long bstream_read_fd(void *ctx, void *buf, size_t len);	/* ctx: int * */
struct bstream_mem {
	const uint8_t *p;
	size_t len, pos;
};
long bstream_read_mem(void *ctx, void *buf, size_t len);

/* A set of store keys with a value each (sender key -> local key, length). */
struct bkeymap_slot {
	struct store_key key, val;
	uint64_t aux;
	bool used;
};
struct bkeymap {
	struct bkeymap_slot *s;
	size_t cap, n;
};
int bkeymap_put(struct bkeymap *m, const struct store_key *k, const struct store_key *val, uint64_t aux);
/* The slot of k, or NULL. */
struct bkeymap_slot *bkeymap_get(const struct bkeymap *m, const struct store_key *k);
void bkeymap_release(struct bkeymap *m);

const char *bstream_type_name(uint32_t type);
void bstream_hex(const uint8_t *b, size_t n, char *out);

#endif
