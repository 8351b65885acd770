/* Runs of blocks (store_get_blocks), the store's call behind cowfs's
 * store-backed reads, on a real store: a recipe of more blocks than one
 * lookup batch reads back byte for byte, from its start and from its
 * middle; a block not in the store is ENOENT; after gc moved the records
 * to a new pack a handle that read them before (its descriptor of the old
 * pack cached) reads them right, and the collected blocks are ENOENT; a flipped byte
 * in a payload or a record header, or a length the recipe does not
 * agree with, fails the read (EBADMSG), never hands out other bytes. */
#include "config.h"

#include "store-test.h"

static char dir[300], sdir[400];

static struct store *open_store(void)
{
	struct store *s = NULL;
	struct corral_error err = { 0 };
	if (store_open(sdir, STORE_CREATE, &s, &err) < 0)
		diag("open %s: %s", sdir, err.msg);
	return s;
}

/* Whether store_get_blocks of e[0..n) gives file bytes [off, off+len). */
static bool blocks_read(struct store *s, const struct store_recipe_entry *e, size_t n, const uint8_t *file,
			size_t off, int *ret)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += e[i].len;
	uint8_t *buf = malloc(len + 1);
	struct corral_error err = { 0 };
	int r = store_get_blocks(s, e, n, buf, &err);
	if (ret)
		*ret = r;
	if (r < 0)
		diag("store_get_blocks: %s", err.msg);
	bool same = r == 0 && memcmp(buf, file + off, len) == 0;
	free(buf);
	return same;
}

/* Where block k of a recipe sits (pack path, record offset). */
static bool locate(struct store *s, const struct store_key *k, char *path, size_t plen, uint64_t *off)
{
	struct store_loc loc;
	if (store_index_lock(s, false) < 0)
		return false;
	int r = store_index_find(s, STORE_KIND_BLOCK, k, STORE_FIND_CONFIRMED, &loc, NULL);
	store_index_unlock(s);
	if (r < 0)
		return false;
	snprintf(path, plen, "%s/packs/%08x.pack", sdir, loc.pack);
	*off = loc.off;
	return true;
}

int main(void)
{
	snprintf(dir, sizeof(dir), "%s", st_tmpdir());
	snprintf(sdir, sizeof(sdir), "%s/store", dir);
	char fa[400], fb[400];
	snprintf(fa, sizeof(fa), "%s/a", dir);
	snprintf(fb, sizeof(fb), "%s/b", dir);
	/* a: 40 blocks and a tail (more than one lookup batch of 32); b:
	 * blocks of its own, collected below. */
	uint64_t ida[40], idb[6];
	for (int i = 0; i < 40; i++)
		ida[i] = 1000 + i;
	for (int i = 0; i < 6; i++)
		idb[i] = 2000 + i;
	size_t la = st_make_file(fa, ida, 40, 1999, 1000);
	st_make_file(fb, idb, 6, 2999, 500);
	char *filea = NULL;
	size_t got;
	if (file_read_all(fa, &filea, &got, NULL) < 0 || got != la)
		tap_bail("read %s", fa);
	const uint8_t *file = (const uint8_t *)filea;

	struct store *s = open_store();
	struct store_key ka, kb;
	if (!s || st_put_root(s, "a", fa, &ka) < 0 || st_put_root(s, "b", fb, &kb) < 0)
		tap_bail("store the files");
	struct corral_error err = { 0 };
	struct store_recipe ra, rb;
	/* The writer's handle owns its pack (gc leaves that alone): read
	 * through a handle that never wrote. */
	store_close(s);
	s = open_store();
	if (!s || store_get_recipe(s, &ka, &ra, &err) < 0 || store_get_recipe(s, &kb, &rb, &err) < 0)
		tap_bail("recipes: %s", err.msg);

	ok(ra.n == 41 && blocks_read(s, ra.e, ra.n, file, 0, NULL),
	   "the 41 blocks of a recipe read back byte for byte in one call");
	ok(blocks_read(s, ra.e + 5, 30, file, 5 * STORE_BLOCK_SIZE, NULL), "and 30 of them from block 5");

	struct store_recipe_entry missing = { .len = STORE_BLOCK_SIZE };
	memset(missing.key.hash, 0x5a, sizeof(missing.key.hash));
	int r;
	uint8_t *buf = malloc(2 * STORE_BLOCK_SIZE);
	r = store_get_blocks(s, &missing, 1, buf, &err);
	ok(r == -ENOENT && strstr(err.msg, "not in the store"), "a block not in the store is ENOENT (%d: %s)", r,
	   err.msg);
	struct store_recipe_entry shorter = ra.e[3];
	shorter.len = 4096;
	r = store_get_blocks(s, &shorter, 1, buf, &err);
	ok(r == -EBADMSG && strstr(err.msg, "its recipe says 4096"),
	   "a block longer than its recipe entry says is EBADMSG (%d: %s)", r, err.msg);

	/* gc moves a's records: its pack holds b's garbage.  The reading
	 * handle keeps its descriptor of the old pack. */
	char before[600], after[600];
	uint64_t off;
	ok(locate(s, &ra.e[0].key, before, sizeof(before), &off), "block 0 of a is in %s", before);
	struct store *g = open_store();
	if (!g || store_root_remove(g, "b", &err) < 0)
		tap_bail("remove root b: %s", err.msg);
	struct store_gc_result res;
	r = store_gc(g, &res, &err);
	store_close(g);
	ok(r == 0 && locate(s, &ra.e[0].key, after, sizeof(after), &off) && strcmp(before, after) != 0 &&
		   access(before, F_OK) < 0,
	   "gc moved a's records to %s and removed the old pack", after);
	ok(blocks_read(s, ra.e, ra.n, file, 0, NULL), "after gc the handle that read before reads a right");
	r = store_get_blocks(s, rb.e, 1, buf, &err);
	ok(r == -ENOENT, "a collected block is ENOENT (%d: %s)", r, err.msg);
	store_close(s);

	/* Damage, read through a fresh handle (no cached page of it
	 * matters: the bytes are verified after every read). */
	s = open_store();
	char pack[600];
	uint64_t off7, off8;
	if (!s || !locate(s, &ra.e[7].key, pack, sizeof(pack), &off7) || !locate(s, &ra.e[8].key, pack, sizeof(pack), &off8))
		tap_bail("locate blocks 7 and 8");
	ok(st_flip(pack, (off_t)(off7 + STORE_REC_HDR + 1234)) == 0, "a byte of block 7's payload flipped");
	bool same = blocks_read(s, ra.e, ra.n, file, 0, &r);
	ok(!same && r == -EBADMSG, "reading the recipe's blocks fails with EBADMSG (%d)", r);
	same = blocks_read(s, ra.e + 7, 1, file, 7 * STORE_BLOCK_SIZE, &r);
	ok(!same && r == -EBADMSG, "so does block 7 alone (%d)", r);
	ok(blocks_read(s, ra.e, 7, file, 0, NULL) && blocks_read(s, ra.e + 8, 33, file, 8 * STORE_BLOCK_SIZE, NULL),
	   "the blocks around it read right");
	st_flip(pack, (off_t)(off7 + STORE_REC_HDR + 1234));
	ok(st_flip(pack, (off_t)(off8 + 20)) == 0, "a byte of block 8's record header flipped");
	same = blocks_read(s, ra.e, ra.n, file, 0, &r);
	ok(!same && r == -EBADMSG, "reading the recipe's blocks fails with EBADMSG (%d)", r);
	st_flip(pack, (off_t)(off8 + 20));
	ok(blocks_read(s, ra.e, ra.n, file, 0, NULL), "repaired, they read back");
	store_close(s);

	free(buf);
	free(filea);
	store_recipe_release(&ra);
	store_recipe_release(&rb);
	return tap_done();
}
