/* The on-disk record of a partial file (cowfs-partial.h): its encoding and
 * its parser, apart from the rest of cowfs so that the fuzz target
 * (tests/fuzz-partial.c) and the mutation test (tests/unit-partial-record)
 * build it without libfuse.
 *
 * Layout, little-endian, PARTIAL_RECORD_MAX bytes at most:
 *    0  magic "CPRT", version (1), kind (PARTIAL_LOWER 1, PARTIAL_STORE 2),
 *       2 bytes zero
 *    8  source_len (u64): bytes of the file that read from the source,
 *       unless private
 *   16  nranges (u32), path length (u16, 0 for a store source), lower
 *       layer index (u16, 0 for a store source)
 *   24  PARTIAL_LOWER: the lower file's identity: st_ino, st_size (u64),
 *       st_mtim (s64 seconds, u32 ns), st_ctim (s64, u32), then its path
 *       relative to the layer root (no NUL, no "." or ".." component, no
 *       leading or doubled '/');
 *       PARTIAL_STORE: the recipe key (16 bytes of hash, u32 index)
 *    .  nranges private ranges (u32 first block, u32 block count): sorted,
 *       neither overlapping nor touching, all below source_len's blocks
 *    .  XXH3-64 of everything before it (u64)
 *
 * Module cowfs (see cowfs.h). */
#ifndef COWFS_PARTIAL_RECORD_H
#define COWFS_PARTIAL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/stat.h>

#include "store/store.h"

/* Ranges are kept in these units: the store's block size, so that a
 * store-backed block is copied in with one store read. */
#define PARTIAL_BLOCK STORE_BLOCK_SIZE

enum partial_source_kind {
	PARTIAL_LOWER = 1,
	PARTIAL_STORE = 2,
};

#define PARTIAL_RECORD_MAX 3072
#define PARTIAL_RECORD_VERSION 1
/* A longer lower path is copied up whole (the record would not fit). */
#define PARTIAL_PATH_MAX 1024

struct partial_range {
	uint32_t start, count; /* in PARTIAL_BLOCK units */
};

struct partial_ident {
	uint64_t ino, size;
	int64_t mtime_sec, ctime_sec;
	uint32_t mtime_nsec, ctime_nsec;
};

struct partial_record {
	enum partial_source_kind kind;
	uint64_t source_len;
	/* PARTIAL_LOWER */
	unsigned layer;
	char path[PARTIAL_PATH_MAX + 1];
	struct partial_ident ident;
	/* PARTIAL_STORE */
	struct store_key recipe;
	uint32_t nranges;
	struct partial_range *ranges; /* malloc'ed by parse; partial_record_release */
};

/* Ranges that fit beside a path of path_len bytes (0 for a store source). */
uint32_t partial_record_max_ranges(size_t path_len);
/* Encodes r into buf (PARTIAL_RECORD_MAX bytes): its length, or -E2BIG. */
int partial_record_encode(const struct partial_record *r, void *buf);
/* Parses a record: 0, or -EINVAL (malformed) / -EBADMSG (checksum) /
 * -EPROTONOSUPPORT (another version) / -ENOMEM; *ret is then empty. */
int partial_record_parse(const void *buf, size_t len, struct partial_record *ret);
void partial_record_release(struct partial_record *r);
/* Whether st (an fstat of a reopened PARTIAL_LOWER source) is the file the
 * record's identity names: a regular file of that inode, size, mtime and
 * ctime.  Anything else must not be read as the file's unwritten ranges. */
bool partial_ident_matches(const struct partial_ident *id, const struct stat *st);

#endif
