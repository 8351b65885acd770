/* Fuzz target for every parser of the store's on-disk structures: bad data
 * must give an error, never a crash, a hang or a leak.  The first byte of
 * the input picks the structure, the rest is its bytes:
 *   0 record header   1 pack header   2 recipe payload   3 root file
 *   4 key text        5 a pack file (scanned by open, fsck and gc)
 *   6 an index file (mapped, validated, caught up, checked by fsck; beside
 *     the pack it was made for when the driver gave one, so that its slots
 *     are looked up, checked and compacted too)
 * Built with libFuzzer by `make fuzz-store` (clang), and driven over
 * mutated real structures by tests/unit-store-parsers under make check. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "store/store.h"
#include "store/store-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_store_index_pack(const void *pack, size_t len, const char *name);

static char fuzz_dir[64];

/* The pack an index input is laid beside (see 6 above). */
static uint8_t *index_pack;
static size_t index_pack_len;
static char index_pack_name[64];

void fuzz_store_index_pack(const void *pack, size_t len, const char *name)
{
	free(index_pack);
	index_pack = malloc(len ? len : 1);
	if (!index_pack)
		abort();
	memcpy(index_pack, pack, len);
	index_pack_len = len;
	snprintf(index_pack_name, sizeof(index_pack_name), "packs/%.40s", name);
}

static void quiet(void *ctx, enum store_finding kind, const char *line)
{
	(void)ctx, (void)kind, (void)line;
}

static void put_file(const char *name, const void *p, size_t len)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", fuzz_dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		if (len && write(fd, p, len) < 0)
			abort();
		close(fd);
	}
}

static void remove_fuzz_dir(void)
{
	remove_tree(fuzz_dir, NULL);
}

/* A store made once per process; each input replaces its pack or index. */
static void whole_store(uint8_t what, const uint8_t *p, size_t len)
{
	if (!fuzz_dir[0]) {
		snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/corral-fuzz-store.%d", (int)getpid());
		atexit(remove_fuzz_dir);
		struct store *s = NULL;
		if (store_open(fuzz_dir, STORE_CREATE, &s, NULL) < 0)
			abort();
		store_close(s);
	}
	char packs[128];
	snprintf(packs, sizeof(packs), "%s/packs", fuzz_dir);
	remove_tree(packs, NULL);
	mkdir(packs, 0700);
	char idx[128];
	snprintf(idx, sizeof(idx), "%s/index", fuzz_dir);
	unlink(idx);
	if (what == 5) {
		/* A valid pack header, then the input as its records. */
		uint8_t *pack = malloc(STORE_PACK_HDR + len);
		store_pack_hdr_encode(1, pack);
		memcpy(pack + STORE_PACK_HDR, p, len);
		put_file("packs/00000001.pack", pack, STORE_PACK_HDR + len);
		free(pack);
	} else {
		if (index_pack)
			put_file(index_pack_name, index_pack, index_pack_len);
		put_file("index", p, len);
	}
	struct store *s = NULL;
	if (store_open(fuzz_dir, 0, &s, NULL) < 0)
		return;
	struct store_fsck_result res;
	store_fsck(s, 0, quiet, NULL, &res, NULL);
	struct store_gc_result gc;
	store_gc(s, &gc, NULL);
	store_close(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t what = data[0] % 7;
	const uint8_t *p = data + 1;
	size_t len = size - 1;
	switch (what) {
	case 0: {
		uint8_t h[STORE_REC_HDR] = { 0 };
		struct store_rec rec;
		memcpy(h, p, len < sizeof(h) ? len : sizeof(h));
		store_rec_decode(h, &rec);
		break;
	}
	case 1: {
		uint8_t h[STORE_PACK_HDR] = { 0 };
		uint32_t no;
		memcpy(h, p, len < sizeof(h) ? len : sizeof(h));
		store_pack_hdr_check(h, &no);
		break;
	}
	case 2: {
		struct store_recipe r;
		if (store_recipe_parse(p, len, &r) == 0)
			store_recipe_release(&r);
		break;
	}
	case 3: {
		struct store_root r;
		if (store_root_parse((const char *)p, len, &r) == 0)
			store_root_release(&r);
		break;
	}
	case 4: {
		char *s = malloc(len + 1);
		memcpy(s, p, len);
		s[len] = '\0';
		struct store_key k;
		store_key_parse(s, &k);
		free(s);
		break;
	}
	default:
		whole_store(what, p, len);
		break;
	}
	return 0;
}
