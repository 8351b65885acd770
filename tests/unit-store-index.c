/* The store's index (store/FORMAT.md "Index") on real stores: what it
 * costs per stored block, an index of the previous format (version 1)
 * rebuilt on open with everything reading back, and keys that share the
 * slot's fingerprint told apart by their records. */
#include "config.h"

#include <xxhash.h>

#include "store-test.h"

static const char *dir;

static struct store *open_store(const char *d)
{
	struct store *s = NULL;
	struct corral_error err = { 0 };
	if (store_open(d, STORE_CREATE, &s, &err) < 0)
		diag("store_open %s: %s", d, err.msg);
	return s;
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* The index's bytes per stored block, the figure behind the RAM per TiB
 * (README, "store"): 0.5 GiB per TiB of 64 KiB blocks is 32 bytes per
 * block.  Checked across several of the table's growths. */
static void test_bytes_per_block(void)
{
	char sd[400], idx[500];
	snprintf(sd, sizeof(sd), "%s/size", dir);
	snprintf(idx, sizeof(idx), "%s/index", sd);
	struct store *s = open_store(sd);
	struct corral_error err = { 0 };
	const unsigned total = 60000;
	unsigned over = 0, checks = 0;
	double worst = 0, worst_all = 0;
	bool put_ok = s && store_begin(s, &err) == 0;
	for (unsigned i = 1; put_ok && i <= total; i++) {
		char blk[32];
		int len = snprintf(blk, sizeof(blk), "index block %u", i);
		struct store_key k;
		put_ok = store_put_block(s, blk, len, &k, &err) == 0;
		/* Where the header and cover table (68 KiB, fixed) weigh less
		 * than 4 bytes per block. */
		if (i % 250 == 0 && i >= 20000) {
			double per = (double)file_size(idx) / i;
			checks++;
			over += per > 32.0;
			worst = per > worst ? per : worst;
		}
	}
	if (!put_ok)
		diag("put: %s", err.msg);
	store_end(s);
	/* The whole file (header and cover table included) at the end. */
	worst_all = (double)file_size(idx) / total;
	ok(put_ok && checks > 150 && over == 0,
	   "index bytes per block stay at most 32 (0.5 GiB per TiB of 64 KiB blocks) from 20,000 to %u blocks: "
	   "worst %.1f, %u of %u checks over", total, worst, over, checks);
	ok(put_ok && worst_all <= 32.0, "the whole index file, header and cover table included: %.1f bytes per block",
	   worst_all);
	/* Everything still found (the table grew many times). */
	bool all = put_ok;
	for (unsigned i = 1; all && i <= total; i += 997) {
		char blk[32], back[STORE_BLOCK_SIZE];
		int len = snprintf(blk, sizeof(blk), "index block %u", i);
		uint8_t h[16];
		store_hash_xxh3(blk, len, s->seed, h);
		struct store_key k = { .n = 0 };
		memcpy(k.hash, h, 16);
		size_t bl = 0;
		all = store_get_block(s, &k, back, &bl, &err) == 0 && bl == (size_t)len && !memcmp(back, blk, len);
	}
	ok(all, "blocks stored before and after the growths read back");
	store_close(s);
	remove_tree(sd, NULL);
}

/* ---- an index of the previous format ---- */

/* Version 1 (FORMAT.md before this one): 32-byte slots holding the whole
 * hash, pack u32, length u32 and a word offset << 24 | n << 8 | kind; a
 * power-of-two table indexed by the hash's first 8 bytes.  Written here
 * from the packs, as the previous corral left it for this store. */
struct v1 {
	uint8_t *slots;
	uint64_t nslots, used;
	uint8_t *cover;
	uint32_t ncover;
};

static int v1_rec(void *ctx, uint32_t pack, uint64_t off, const struct store_rec *rec)
{
	struct v1 *v = ctx;
	uint64_t mask = v->nslots - 1, i = 0;
	memcpy(&i, rec->key.hash, 8);
	for (i &= mask; v->slots[i * 32 + 31] | v->slots[i * 32 + 24]; i = (i + 1) & mask)
		;
	uint8_t *p = v->slots + i * 32;
	memcpy(p, rec->key.hash, 16);
	store_put_le32(p + 16, pack);
	store_put_le32(p + 20, rec->len);
	store_put_le64(p + 24, off << 24 | (uint64_t)(rec->key.n & 0xffff) << 8 | rec->kind);
	v->used++;
	return 0;
}

static void read_boot_id(uint8_t out[16])
{
	char buf[64] = "";
	memset(out, 0, 16);
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
	if (f && fgets(buf, sizeof(buf), f))
		for (int i = 0, j = 0; buf[i] && j < 32; i++) {
			char c = buf[i];
			int x = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
			if (x >= 0) {
				out[j / 2] |= x << (j % 2 ? 0 : 4);
				j++;
			}
		}
	if (f)
		fclose(f);
}

static int write_v1_index(struct store *s, const char *path)
{
	struct v1 v = { .nslots = 4096, .ncover = 4096 };
	uint32_t *packs = NULL;
	size_t np = 0;
	if (store_pack_list(s, &packs, &np) < 0)
		return -1;
	v.slots = calloc(v.nslots, 32);
	v.cover = calloc(v.ncover, 16);
	struct store_scan_cb cb = { .rec = v1_rec, .ctx = &v };
	for (size_t i = 0; i < np; i++) {
		int fd = store_pack_fd(s, packs[i]);
		uint64_t end, torn;
		if (fd < 0 || store_pack_scan(s, fd, packs[i], STORE_PACK_HDR, &cb, &end, &torn) < 0)
			return -1;
		store_put_le32(v.cover + i * 16, packs[i]);
		store_put_le64(v.cover + i * 16 + 8, end);
	}
	free(packs);
	/* Header: magic, version 1, generation, nslots, nused, boot id,
	 * ncover, XXH3-64 of bytes 0..55 without the generation and nused. */
	uint8_t h[4096] = { 0 };
	memcpy(h, "CORRALIX", 8);
	store_put_le32(h + 8, 1);
	store_put_le32(h + 12, 0x5eed);
	store_put_le64(h + 16, v.nslots);
	store_put_le64(h + 24, v.used);
	read_boot_id(h + 32);
	store_put_le32(h + 48, v.ncover);
	uint8_t c[56];
	memcpy(c, h, 56);
	memset(c + 12, 0, 4);
	memset(c + 24, 0, 8);
	store_put_le64(h + 56, XXH3_64bits(c, 56));
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.v1", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	uint64_t slots_off = 4096 + (uint64_t)v.ncover * 16;
	bool good = fd >= 0 && pwrite(fd, h, sizeof(h), 0) == sizeof(h) &&
		    pwrite(fd, v.cover, v.ncover * 16, 4096) == v.ncover * 16 &&
		    pwrite(fd, v.slots, v.nslots * 32, slots_off) == (ssize_t)(v.nslots * 32);
	if (fd >= 0)
		close(fd);
	free(v.slots);
	free(v.cover);
	if (!good || rename(tmp, path) < 0)
		return -1;
	return (int)v.used;
}

static uint32_t index_version(const char *path)
{
	uint8_t h[12];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool got = fd >= 0 && pread(fd, h, sizeof(h), 0) == sizeof(h);
	if (fd >= 0)
		close(fd);
	return got ? store_le32(h + 8) : 0;
}

static void test_old_format(void)
{
	char sd[400], idx[500], fa[400], fb[400], fc[400];
	snprintf(sd, sizeof(sd), "%s/old", dir);
	snprintf(idx, sizeof(idx), "%s/index", sd);
	snprintf(fa, sizeof(fa), "%s/old-a", dir);
	snprintf(fb, sizeof(fb), "%s/old-b", dir);
	snprintf(fc, sizeof(fc), "%s/old-c", dir);
	uint64_t ia[] = { 1, 2, 3, 4 }, ib[] = { 3, 4, 5 }, ic[] = { 5, 6 };
	st_make_file(fa, ia, 4, 10, 1000);
	st_make_file(fb, ib, 3, 11, 77);
	st_make_file(fc, ic, 2, 12, 5);
	struct store *s = open_store(sd);
	struct store_key ka, kb, kc;
	bool stored = s && st_put_root(s, "a", fa, &ka) == 0 && st_put_root(s, "b", fb, &kb) == 0;
	int n = stored ? write_v1_index(s, idx) : -1;
	store_close(s);
	ok(n == 9 && index_version(idx) == 1,
	   "a store whose index is of the previous format (version 1, %d entries, 32-byte slots)", n);

	s = open_store(sd);
	struct st_report rep;
	ok(s && st_fsck(s, 0, &rep) == 0 && rep.errors == 0 && rep.lost == 0 &&
	   st_found(&rep, "rebuilt from the packs when the store was opened \\(another format version\\)"),
	   "it opens: the index is rebuilt (another format version), not refused, and fsck is clean");
	ok(index_version(idx) == STORE_INDEX_VERSION, "the index file is now of version %u", index_version(idx));
	ok(s && st_same(s, &ka, fa) && st_same(s, &kb, fb), "every file stored before reads back");
	ok(s && st_put_root(s, "c", fc, &kc) == 0 && st_same(s, &kc, fc), "a new file stores and reads back");
	struct corral_error err = { 0 };
	struct store_gc_result gr;
	ok(s && store_root_remove(s, "a", &err) == 0 && store_gc(s, &gr, &err) == 0 && st_same(s, &kb, fb) &&
	   st_same(s, &kc, fc) && st_fsck(s, 0, &rep) == 0 && rep.errors == 0 && rep.lost == 0,
	   "gc after dropping one root keeps the others, fsck clean");
	store_close(s);
	s = open_store(sd);
	ok(s && st_fsck(s, 0, &rep) == 0 && rep.errors == 0 && !st_found(&rep, "rebuilt"),
	   "the next open keeps the new index (no second rebuild)");
	store_close(s);
	remove_tree(sd, NULL);
}

/* ---- keys sharing a fingerprint ---- */

/* XXH3-128 with its first 4 bytes fixed: every key has one fingerprint
 * (so one home slot); only the records tell them apart. */
static void same_fp_hash(const void *data, size_t len, uint64_t seed, uint8_t out[16])
{
	store_hash_xxh3(data, len, seed, out);
	memcpy(out, "\xab\xcd\xef\x01", 4);
}

static void test_same_fingerprint(void)
{
	char sd[400];
	snprintf(sd, sizeof(sd), "%s/fp", dir);
	struct store *s = NULL;
	struct corral_error err = { 0 };
	int r = store_open_hash(sd, STORE_CREATE, same_fp_hash, &s, &err);
	enum { N = 300 };
	static struct store_key keys[N];
	uint8_t blk[200], back[STORE_BLOCK_SIZE];
	bool good = r == 0 && store_begin(s, &err) == 0;
	for (int i = 0; good && i < N; i++) {
		st_fill(blk, sizeof(blk), 1000 + i);
		good = store_put_block(s, blk, sizeof(blk), &keys[i], &err) == 0 && keys[i].n == 0;
	}
	ok(good, "%d blocks whose keys share one fingerprint are stored, each under collision index 0", N);
	bool again = good;
	for (int i = 0; again && i < N; i += 7) {
		struct store_key k;
		st_fill(blk, sizeof(blk), 1000 + i);
		again = store_put_block(s, blk, sizeof(blk), &k, &err) == 0 && store_key_eq(&k, &keys[i]);
	}
	ok(again, "storing them again finds each one's own key (dedup through the fingerprint's cluster)");
	struct store_recipe rcp = { .n = N };
	rcp.e = calloc(N, sizeof(*rcp.e));
	for (int i = 0; i < N; i++) {
		rcp.e[i].key = keys[i];
		rcp.e[i].len = sizeof(blk);
		rcp.size += sizeof(blk);
	}
	struct store_key rk;
	r = good ? store_put_recipe(s, &rcp, &rk, &err) : -1;
	struct store_root_entry e = { .recipe = rk, .label = "fp" };
	struct store_root rt = { .n = 1, .e = &e };
	ok(r == 0 && store_root_commit(s, "fp", &rt, &err) == 0, "a recipe of all of them commits");
	store_end(s);
	bool reads = good;
	for (int i = 0; reads && i < N; i++) {
		size_t bl = 0;
		st_fill(blk, sizeof(blk), 1000 + i);
		reads = store_get_block(s, &keys[i], back, &bl, &err) == 0 && bl == sizeof(blk) &&
			!memcmp(back, blk, bl);
	}
	ok(reads, "each key reads back its own bytes");
	struct st_report rep;
	ok(st_fsck(s, 0, &rep) == 0 && rep.errors == 0 && rep.lost == 0, "fsck is clean");
	struct store_gc_result gr;
	ok(store_gc(s, &gr, &err) == 0 && st_fsck(s, 0, &rep) == 0 && rep.errors == 0 && rep.lost == 0,
	   "gc keeps every one of them (marked through the cluster), fsck clean");
	store_close(s);
	/* A rebuild indexes each of them (none hides another). */
	char idx[500];
	snprintf(idx, sizeof(idx), "%s/index", sd);
	unlink(idx);
	s = NULL;
	r = store_open_hash(sd, 0, same_fp_hash, &s, &err);
	reads = r == 0;
	for (int i = 0; reads && i < N; i++) {
		size_t bl = 0;
		st_fill(blk, sizeof(blk), 1000 + i);
		reads = store_get_block(s, &keys[i], back, &bl, &err) == 0 && bl == sizeof(blk) &&
			!memcmp(back, blk, bl);
	}
	ok(reads && st_fsck(s, 0, &rep) == 0 && rep.errors == 0 && rep.lost == 0,
	   "after an index rebuild every key reads back its own bytes, fsck clean");
	free(rcp.e);
	store_close(s);
	remove_tree(sd, NULL);
}

int main(void)
{
	dir = st_tmpdir();
	test_bytes_per_block();
	test_old_format();
	test_same_fingerprint();
	return tap_done();
}
