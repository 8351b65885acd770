/* fsck on every kind of damage, each in a fresh store of two roots:
 * r1 = f1 (3 blocks and a tail), r2 = f2 (2 blocks and a tail, one block
 * shared with f1).  A flipped byte in a block's payload, in a record
 * header, in a recipe, in the index, in a root; a truncated pack; a
 * deleted pack; and a damaged block with a second good copy that
 * --repair salvages.  Each report must name what is damaged and which
 * root's file it takes with it, and only that. */
#include "config.h"

#include "store-test.h"

static const char *dir;
static int scenario;

struct fixture {
	char sdir[300], f1[300], f2[300], pack[600];
	struct store_key r1, r2;	/* recipes */
	struct store_recipe rc1, rc2;
};

static void make_fixture(struct fixture *fx)
{
	snprintf(fx->sdir, sizeof(fx->sdir), "%s/s%d", dir, ++scenario);
	snprintf(fx->f1, sizeof(fx->f1), "%s/f1", dir);
	snprintf(fx->f2, sizeof(fx->f2), "%s/f2", dir);
	uint64_t i1[] = { 1, 2, 3 }, i2[] = { 2, 4 };
	st_make_file(fx->f1, i1, 3, 5, 500);
	st_make_file(fx->f2, i2, 2, 6, 600);
	struct store *s = NULL;
	struct corral_error err = { 0 };
	if (store_open(fx->sdir, STORE_CREATE, &s, &err) < 0 || st_put_root(s, "r1", fx->f1, &fx->r1) < 0 ||
	    st_put_root(s, "r2", fx->f2, &fx->r2) < 0 || store_get_recipe(s, &fx->r1, &fx->rc1, &err) < 0 ||
	    store_get_recipe(s, &fx->r2, &fx->rc2, &err) < 0)
		tap_bail("fixture: %s", err.msg);
	store_close(s);
	if (st_pack_path(fx->sdir, fx->pack, sizeof(fx->pack)) != 1)
		tap_bail("fixture: expected one pack");
}

static void release_fixture(struct fixture *fx)
{
	store_recipe_release(&fx->rc1);
	store_recipe_release(&fx->rc2);
}

/* Where a record lies in the pack. */
static uint64_t offset_of(struct fixture *fx, uint8_t kind, const struct store_key *k)
{
	struct store *s = NULL;
	struct store_loc loc = { 0 };
	store_open(fx->sdir, 0, &s, NULL);
	store_index_lock(s, false);
	if (store_index_find(s, kind, k, STORE_FIND_VERIFY, &loc, NULL) < 0)
		tap_bail("no record to damage");
	store_index_unlock(s);
	store_close(s);
	return loc.off;
}

static int fsck_dir(struct fixture *fx, unsigned flags, struct st_report *rep, struct store_fsck_result *res)
{
	struct store *s = NULL;
	struct corral_error err = { 0 };
	if (store_open(fx->sdir, 0, &s, &err) < 0) {
		diag("open: %s", err.msg);
		return -1;
	}
	memset(rep, 0, sizeof(*rep));
	int r = store_fsck(s, flags, st_collect, rep, res, &err);
	for (int i = 0; i < rep->n; i++)
		diag("  %s", rep->lines[i]);
	store_close(s);
	return r;
}

/* Reads a root's one file back: whether it matches `path`. */
static bool reads_back(struct fixture *fx, const char *root, const char *path)
{
	struct store *s = NULL;
	struct store_root rt;
	if (store_open(fx->sdir, 0, &s, NULL) < 0)
		return false;
	bool same = store_root_read(s, root, &rt, NULL) == 0 && st_same(s, &rt.e[0].recipe, path);
	if (same)
		store_root_release(&rt);
	store_close(s);
	return same;
}

static void test_clean(void)
{
	struct fixture fx;
	make_fixture(&fx);
	struct st_report rep;
	struct store_fsck_result res;
	int r = fsck_dir(&fx, 0, &rep, &res);
	/* f1: 3 blocks, tail, recipe; f2: 1 new block, tail, recipe. */
	ok(r == 0 && rep.errors == 0 && rep.lost == 0 && res.records == 8 && res.roots == 2, "an undamaged store checks clean (%llu records, %llu roots)",
	   (unsigned long long)res.records, (unsigned long long)res.roots);
	release_fixture(&fx);
}

static void test_block_payload(void)
{
	struct fixture fx;
	make_fixture(&fx);
	char ks[STORE_KEY_STR_MAX], re[700];
	uint64_t off = offset_of(&fx, STORE_KIND_BLOCK, &fx.rc1.e[2].key);
	st_flip(fx.pack, off + STORE_REC_HDR + 1000);
	struct st_report rep;
	struct store_fsck_result res;
	int r = fsck_dir(&fx, 0, &rep, &res);
	store_key_str(&fx.rc1.e[2].key, ks);
	snprintf(re, sizeof(re), "^error: pack .*: block %s: payload does not match", ks);
	ok(r == 0 && st_found(&rep, re), "a flipped payload byte: the block is named damaged");
	snprintf(re, sizeof(re), "^lost: root r1: file %s: block 2 \\(bytes 131072-196607, %s\\) is damaged", fx.f1, ks);
	ok(st_found(&rep, re) && res.lost_files == 1 && !st_found(&rep, "root r2"),
	   "and the file and root it takes are named, and only those");
	ok(fsck_dir(&fx, STORE_FSCK_REPAIR, &rep, &res) == 0 && res.repaired && rep.lost == 1 && rep.errors == 0 &&
	   st_found(&rep, "left out of the index") && st_found(&rep, "^lost: root r1: .*block 2 .* is missing"),
	   "--repair drops the record from the index and says f1 could not be salvaged");
	ok(reads_back(&fx, "r2", fx.f2), "the other root's file still reads back");
	release_fixture(&fx);
}

static void test_record_header(void)
{
	struct fixture fx;
	make_fixture(&fx);
	uint64_t off = offset_of(&fx, STORE_KIND_BLOCK, &fx.rc1.e[0].key);
	st_flip(fx.pack, off + 20); /* inside the key's hash */
	struct st_report rep;
	struct store_fsck_result res;
	int r = fsck_dir(&fx, 0, &rep, &res);
	ok(r == 0 && st_found(&rep, "^error: pack .*: damaged record header") &&
	   st_found(&rep, "^lost: root r1: file .*f1: block 0 "),
	   "a flipped header byte: the damaged header and f1's block 0 are named");
	ok(!st_found(&rep, "root r2") && reads_back(&fx, "r2", fx.f2),
	   "the records after it are found again (r2 intact)");
	release_fixture(&fx);
}

static void test_recipe(void)
{
	struct fixture fx;
	make_fixture(&fx);
	uint64_t off = offset_of(&fx, STORE_KIND_RECIPE, &fx.r2);
	st_flip(fx.pack, off + STORE_REC_HDR + 20);
	struct st_report rep;
	struct store_fsck_result res;
	char ks[STORE_KEY_STR_MAX], re[700];
	snprintf(re, sizeof(re), "^lost: root r2: file %s: its recipe %s is damaged", fx.f2, store_key_str(&fx.r2, ks));
	ok(fsck_dir(&fx, 0, &rep, &res) == 0 && st_found(&rep, "recipe .*payload does not match") && st_found(&rep, re) &&
	   !st_found(&rep, "root r1"), "a flipped byte in a recipe: the recipe and r2's file are named");
	release_fixture(&fx);
}

static void test_index(void)
{
	struct fixture fx;
	make_fixture(&fx);
	/* Damage the slot of f2's block 1 in the index file. */
	struct store *s = NULL;
	store_open(fx.sdir, 0, &s, NULL);
	store_index_lock(s, false);
	struct store_loc loc;
	uint64_t slot;
	store_index_find(s, STORE_KIND_BLOCK, &fx.rc2.e[1].key, STORE_FIND_VERIFY, &loc, &slot);
	size_t slot_off = (s->map + s->map_len - store_index_nslots(s) * STORE_SLOT) - s->map + slot * STORE_SLOT;
	store_index_unlock(s);
	store_close(s);
	char idx[400];
	snprintf(idx, sizeof(idx), "%s/index", fx.sdir);
	st_flip(idx, slot_off + STORE_SLOT_FP); /* the fingerprint: the entry names another key */
	struct st_report rep;
	struct store_fsck_result res;
	ok(fsck_dir(&fx, 0, &rep, &res) == 0 && rep.errors >= 2 && st_found(&rep, "^error: index: block .* points to a record of another key") &&
	   st_found(&rep, "^error: index: block .* is not in the index") && st_found(&rep, "^lost: root r2: file .*f2: block 1 "),
	   "a flipped byte in the index: the bad entry, the unindexed record and the file it hides are named");
	ok(fsck_dir(&fx, STORE_FSCK_REPAIR, &rep, &res) == 0 && res.repaired && rep.errors == 0 && rep.lost == 0,
	   "--repair rebuilds the index: nothing lost");
	ok(fsck_dir(&fx, 0, &rep, &res) == 0 && rep.errors == 0 && rep.lost == 0 && reads_back(&fx, "r2", fx.f2),
	   "and the store checks clean afterwards, f2 reads back");
	release_fixture(&fx);
}

static void test_root(void)
{
	struct fixture fx;
	make_fixture(&fx);
	char path[400];
	snprintf(path, sizeof(path), "%s/roots/r2", fx.sdir);
	st_flip(path, 40);
	struct st_report rep;
	struct store_fsck_result res;
	ok(fsck_dir(&fx, 0, &rep, &res) == 0 && st_found(&rep, "^lost: root r2: store root r2 is damaged") &&
	   res.bad_roots == 1 && !st_found(&rep, "root r1"), "a flipped byte in a root file: the root is named damaged");
	struct store *s = NULL;
	struct corral_error err = { 0 };
	store_open(fx.sdir, 0, &s, NULL);
	ok(store_gc(s, NULL, &err) < 0 && strstr(err.msg, "gc refused"), "gc refuses to run past a damaged root: %s",
	   err.msg);
	store_close(s);
	release_fixture(&fx);
}

static void test_truncated(void)
{
	struct fixture fx;
	make_fixture(&fx);
	struct stat st;
	stat(fx.pack, &st);
	/* Cut into the last record (f2's recipe). */
	truncate(fx.pack, st.st_size - 10);
	struct st_report rep;
	struct store_fsck_result res;
	ok(fsck_dir(&fx, 0, &rep, &res) == 0 && st_found(&rep, "torn record at the end") &&
	   st_found(&rep, "^lost: root r2: file .*f2: its recipe .* is (missing|damaged)") && !st_found(&rep, "root r1"),
	   "a truncated pack: the cut and r2's file are named, r1 is not");
	release_fixture(&fx);
}

static void test_deleted_pack(void)
{
	struct fixture fx;
	make_fixture(&fx);
	unlink(fx.pack);
	struct st_report rep;
	struct store_fsck_result res;
	ok(fsck_dir(&fx, 0, &rep, &res) == 0 && st_found(&rep, "rebuilt .*disagreed with the packs") &&
	   st_found(&rep, "^lost: root r1: file .*f1: its recipe .* is missing") &&
	   st_found(&rep, "^lost: root r2: file .*f2: its recipe .* is missing") && res.lost_files == 2,
	   "a deleted pack: the store opens (index rebuilt) and both files are named lost");
	release_fixture(&fx);
}

/* A damaged block with a good copy in another pack: --repair salvages. */
static void test_salvage(void)
{
	struct fixture fx;
	make_fixture(&fx);
	char aside[700];
	snprintf(aside, sizeof(aside), "%s.aside", fx.pack);
	rename(fx.pack, aside);
	/* With the first pack away, f1 goes into a second pack. */
	struct store *s = NULL;
	store_open(fx.sdir, 0, &s, NULL);
	st_put_root(s, "r1", fx.f1, NULL);
	store_close(s);
	char second[400];
	st_pack_path(fx.sdir, second, sizeof(second));
	rename(aside, fx.pack);
	/* Now the block is in both; damage the copy the index points to. */
	s = NULL;
	store_open(fx.sdir, 0, &s, NULL);
	store_index_lock(s, false);
	struct store_loc loc;
	store_index_find(s, STORE_KIND_BLOCK, &fx.rc1.e[2].key, STORE_FIND_VERIFY, &loc, NULL);
	store_index_unlock(s);
	store_close(s);
	char which[400];
	snprintf(which, sizeof(which), "%s/packs/%08x.pack", fx.sdir, loc.pack);
	st_flip(which, loc.off + STORE_REC_HDR + 5);
	struct st_report rep;
	struct store_fsck_result res;
	ok(fsck_dir(&fx, 0, &rep, &res) == 0 && st_found(&rep, "^lost: root r1: .*block 2 .*is damaged"),
	   "a damaged block with a good copy elsewhere is first reported lost");
	ok(fsck_dir(&fx, STORE_FSCK_REPAIR, &rep, &res) == 0 && rep.lost == 0 && reads_back(&fx, "r1", fx.f1),
	   "--repair salvages it from the other copy: nothing lost, f1 reads back");
	release_fixture(&fx);
}

int main(void)
{
	dir = st_tmpdir();
	test_clean();
	test_block_payload();
	test_record_header();
	test_recipe();
	test_index();
	test_root();
	test_truncated();
	test_deleted_pack();
	test_salvage();
	return tap_done();
}
