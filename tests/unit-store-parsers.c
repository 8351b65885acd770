/* The fuzz target's parsers (tests/fuzz-store.c) under make check, without
 * clang: real structures taken from a real store (a record header, a pack
 * header, a recipe, a root, a key, a whole pack, the index) are checked to
 * parse, to be refused with one bit flipped where a checksum covers them,
 * and then fed mutated (bit flips, cut short, bytes inserted) many times
 * over: every input must give an error or a result, never a crash or a
 * hang (an alarm fails the run).  `make fuzz-store` runs libFuzzer on the
 * same target for as long as one likes. */
#include "config.h"

#include <signal.h>

#include "store-test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_store_index_pack(const void *pack, size_t len, const char *name);

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Feeds `rounds` mutations of seed (with its selector byte) to the target. */
static void mutate(uint8_t sel, const uint8_t *seed, size_t len, int rounds)
{
	size_t cap = len + 64;
	uint8_t *buf = malloc(cap + 1);
	for (int i = 0; i < rounds; i++) {
		size_t n = len;
		buf[0] = sel;
		memcpy(buf + 1, seed, len);
		int edits = 1 + next() % 4;
		for (int e = 0; e < edits && n > 0; e++) {
			switch (next() % 4) {
			case 0:
			case 1:
				buf[1 + next() % n] ^= 1 << (next() % 8);
				break;
			case 2:
				n = next() % n;
				break;
			case 3:
				if (n < cap) {
					size_t at = next() % n;
					memmove(buf + 2 + at, buf + 1 + at, n - at);
					buf[1 + at] = next();
					n++;
				}
				break;
			}
		}
		LLVMFuzzerTestOneInput(buf, n + 1);
	}
	free(buf);
}

/* Every bit of every used index slot flipped, one at a time: the store
 * opens, fsck runs, and the file reads back its own bytes or fails --
 * never other bytes (a slot holds only a fingerprint of its key: the
 * record read checks the key). */
static void slot_flips(const char *sdir, const uint8_t *index, size_t len, const char *f1)
{
	char path[400], out[400];
	snprintf(path, sizeof(path), "%s/index", sdir);
	snprintf(out, sizeof(out), "%s.out", f1);
	uint64_t nslots = store_le64(index + 16), ncover = store_le32(index + 48);
	uint64_t off = (4096 + ncover * 16 + 4095) & ~4095ull;
	char *want = NULL;
	size_t want_len = 0;
	file_read_all(f1, &want, &want_len, NULL);
	int used = 0, flips = 0, wrong = 0, failed = 0, opened = 0;
	uint8_t *copy = malloc(len);
	for (uint64_t i = 0; want && off + nslots * STORE_SLOT == len && i < nslots; i++) {
		const uint8_t *slot = index + off + i * STORE_SLOT;
		if (!store_le64(slot + 8))
			continue;
		used++;
		for (int bit = 0; bit < STORE_SLOT * 8; bit++) {
			memcpy(copy, index, len);
			copy[off + i * STORE_SLOT + bit / 8] ^= 1 << (bit % 8);
			int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
			if (fd < 0 || write(fd, copy, len) != (ssize_t)len)
				tap_bail("write %s", path);
			close(fd);
			flips++;
			struct store *s = NULL;
			if (store_open(sdir, 0, &s, NULL) < 0)
				continue;
			opened++;
			struct store_root rt;
			int r = store_root_read(s, "r", &rt, NULL);
			if (r == 0) {
				int ofd = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
				r = store_read_to_fd(s, &rt.e[0].recipe, ofd, NULL);
				close(ofd);
				store_root_release(&rt);
			}
			char *got = NULL;
			size_t got_len = 0;
			if (r == 0 && (file_read_all(out, &got, &got_len, NULL) < 0 || got_len != want_len ||
				       memcmp(got, want, want_len) != 0))
				wrong++;
			failed += r < 0;
			free(got);
			struct store_fsck_result res;
			store_fsck(s, 0, NULL, NULL, &res, NULL);
			store_close(s);
		}
	}
	unlink(out);
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0 || write(fd, index, len) != (ssize_t)len)
		tap_bail("restore %s", path);
	close(fd);
	ok(used == 4 && flips == used * STORE_SLOT * 8 && opened == flips && wrong == 0 && failed > 0,
	   "every bit of the index's %d used slots flipped (%d flips): the store opens, the file reads back its "
	   "own bytes or fails (%d failed), never other bytes (%d)",
	   used, flips, failed, wrong);
	free(copy);
	free(want);
}

int main(void)
{
	alarm(600);
	const char *dir = st_tmpdir();
	char sdir[300], f1[300];
	snprintf(sdir, sizeof(sdir), "%s/s", dir);
	snprintf(f1, sizeof(f1), "%s/f1", dir);
	uint64_t ids[] = { 1, 2 };
	st_make_file(f1, ids, 2, 3, 300);
	struct store *s = NULL;
	struct corral_error err = { 0 };
	struct store_key k;
	if (store_open(sdir, STORE_CREATE, &s, &err) < 0 || st_put_root(s, "r", f1, &k) < 0)
		tap_bail("store: %s", err.msg);
	store_close(s);

	char path[400], *pack = NULL, *root = NULL, *index = NULL;
	size_t pack_len, root_len, index_len;
	st_pack_path(sdir, path, sizeof(path));
	file_read_all(path, &pack, &pack_len, NULL);
	snprintf(path, sizeof(path), "%s/roots/r", sdir);
	file_read_all(path, &root, &root_len, NULL);
	char pack_name[64] = "";
	const char *slash = strrchr(path, '/');
	snprintf(pack_name, sizeof(pack_name), "%s", slash ? slash + 1 : "");
	snprintf(path, sizeof(path), "%s/index", sdir);
	/* Header, cover table and the smallest table of slots: 132 KiB. */
	file_read_all(path, &index, &index_len, NULL);
	if (!pack || !root)
		tap_bail("no pack or root to take seeds from");

	/* The recipe is the last record of the pack. */
	const uint8_t *rec = (const uint8_t *)pack + STORE_PACK_HDR, *end = (const uint8_t *)pack + pack_len;
	const uint8_t *last = NULL;
	struct store_rec r;
	int nrec = 0;
	while (rec + STORE_REC_HDR <= end && store_rec_decode(rec, &r) == 0) {
		last = rec;
		nrec++;
		rec += STORE_REC_HDR + r.len;
	}
	ok(nrec == 4 && rec == end, "the pack's 4 records decode back to back");
	ok(last && store_rec_decode(last, &r) == 0 && r.kind == STORE_KIND_RECIPE, "the last one is the recipe");
	struct store_recipe rcp = { 0 };
	int pr = last ? store_recipe_parse(last + STORE_REC_HDR, r.len, &rcp) : -1;
	ok(pr == 0 && rcp.n == 3 && rcp.size == 2 * 65536 + 300,
	   "the recipe parses: 3 blocks, %llu bytes", (unsigned long long)rcp.size);
	store_recipe_release(&rcp);

	bool refused = true;
	for (int bit = 0; bit < STORE_REC_HDR * 8; bit++) {
		uint8_t h[STORE_REC_HDR];
		memcpy(h, pack + STORE_PACK_HDR, sizeof(h));
		h[bit / 8] ^= 1 << (bit % 8);
		refused = refused && store_rec_decode(h, &r) < 0;
	}
	ok(refused, "every single bit flipped in a record header is refused");
	refused = true;
	for (size_t bit = 0; bit < root_len * 8; bit++) {
		root[bit / 8] ^= 1 << (bit % 8);
		struct store_root rt;
		int rr = store_root_parse(root, root_len, &rt);
		if (rr == 0)
			store_root_release(&rt);
		refused = refused && rr < 0;
		root[bit / 8] ^= 1 << (bit % 8);
	}
	ok(refused, "every single bit flipped in a root file is refused (%zu bits)", root_len * 8);

	char ks[STORE_KEY_STR_MAX];
	store_key_str(&k, ks);
	mutate(0, (const uint8_t *)pack + STORE_PACK_HDR, STORE_REC_HDR, 20000);
	mutate(1, (const uint8_t *)pack, STORE_PACK_HDR, 5000);
	mutate(2, last + STORE_REC_HDR, r.len, 20000);
	mutate(3, (const uint8_t *)root, root_len, 20000);
	mutate(4, (const uint8_t *)ks, strlen(ks), 5000);
	ok(1, "100,000 mutated record headers, pack headers, recipes, roots and keys: no crash");
	/* Whole structures through open, fsck and gc: slower, fewer. */
	mutate(5, (const uint8_t *)pack + STORE_PACK_HDR, pack_len - STORE_PACK_HDR, 150);
	/* The index beside its own pack: its slots are read, not only its
	 * header (a cover entry naming a missing pack sends it to a rebuild). */
	fuzz_store_index_pack(pack, pack_len, pack_name);
	if (index)
		mutate(6, (const uint8_t *)index, index_len, 150);
	ok(index != NULL, "300 mutated packs and indexes through open, fsck and gc: no crash");
	if (index)
		slot_flips(sdir, (const uint8_t *)index, index_len, f1);
	free(pack);
	free(root);
	free(index);
	return tap_done();
}
