/* Unit and integration tests of store/ on real files and processes: dedup,
 * small tails, verify-on-hit under a forced collision, format versions,
 * the index as a rebuildable cache, roots, concurrent writers, GC and GC
 * racing writers. */
#include "config.h"

#include <dirent.h>
#include <signal.h>
#include <sys/file.h>
#include <xxhash.h>
#include <sys/stat.h>

#include "store-test.h"

static const char *dir;
static char sdir[300];

static struct store *open_store(const char *d)
{
	struct store *s = NULL;
	struct corral_error err = { 0 };
	if (store_open(d, STORE_CREATE, &s, &err) < 0)
		diag("store_open %s: %s", d, err.msg);
	return s;
}

static off_t pack_bytes(const char *d)
{
	char packs[400];
	snprintf(packs, sizeof(packs), "%s/packs", d);
	DIR *dd = opendir(packs);
	off_t total = 0;
	struct dirent *e;
	while (dd && (e = readdir(dd))) {
		char p[700];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", packs, e->d_name);
		if (strstr(e->d_name, ".pack") && stat(p, &st) == 0)
			total += st.st_size;
	}
	if (dd)
		closedir(dd);
	return total;
}

static void test_dedup(void)
{
	struct store *s = open_store(sdir);
	struct stat st;
	ok(s && stat(sdir, &st) == 0 && (st.st_mode & 0777) == 0700, "a new store is made, mode 0700");
	char path[400];
	snprintf(path, sizeof(path), "%s/FORMAT", sdir);
	char *fmt = NULL;
	size_t fl;
	ok(file_read_all(path, &fmt, &fl, NULL) == 0 && strncmp(fmt, "corral-store 1\nseed ", 20) == 0,
	   "FORMAT names the format version and a seed");
	free(fmt);

	struct corral_error err = { 0 };
	uint8_t *blk = malloc(STORE_BLOCK_SIZE);
	st_fill(blk, STORE_BLOCK_SIZE, 1);
	struct store_key k1, k2;
	ok(store_put_block(s, blk, STORE_BLOCK_SIZE, &k1, &err) == -EINVAL, "a put outside a transaction is refused");
	store_begin(s, &err);
	off_t before = pack_bytes(sdir);
	int r1 = store_put_block(s, blk, STORE_BLOCK_SIZE, &k1, &err);
	off_t after1 = pack_bytes(sdir);
	int r2 = store_put_block(s, blk, STORE_BLOCK_SIZE, &k2, &err);
	off_t after2 = pack_bytes(sdir);
	ok(r1 == 0 && r2 == 0 && store_key_eq(&k1, &k2) && k1.n == 0, "the same block twice gets one key");
	ok(after1 - before == STORE_REC_HDR + STORE_BLOCK_SIZE + (before ? 0 : STORE_PACK_HDR) && after2 == after1,
	   "and is stored once (pack grew by %lld, then by %lld)", (long long)(after1 - before),
	   (long long)(after2 - after1));
	uint8_t *back = malloc(STORE_BLOCK_SIZE);
	size_t bl = 0;
	ok(store_get_block(s, &k1, back, &bl, &err) == 0 && bl == STORE_BLOCK_SIZE &&
	   memcmp(back, blk, bl) == 0, "the block reads back");

	/* Two files sharing 3 of 4 blocks, with different small tails. */
	char fa[400], fb[400];
	snprintf(fa, sizeof(fa), "%s/a", dir);
	snprintf(fb, sizeof(fb), "%s/b", dir);
	uint64_t ia[] = { 10, 11, 12, 13 }, ib[] = { 10, 11, 12, 14 };
	st_make_file(fa, ia, 4, 100, 100);
	st_make_file(fb, ib, 4, 101, 3000);
	store_end(s);
	struct store_key ka, kb;
	ok(st_put_root(s, "a", fa, &ka) == 0, "file a stored under root a");
	off_t mid = pack_bytes(sdir);
	ok(st_put_root(s, "b", fb, &kb) == 0, "file b stored under root b");
	off_t growth = pack_bytes(sdir) - mid;
	/* b adds one block, its 3000-byte tail and its recipe (16 + 5*24). */
	off_t want = (STORE_REC_HDR + STORE_BLOCK_SIZE) + (STORE_REC_HDR + 3000) + (STORE_REC_HDR + 16 + 5 * 24);
	ok(growth == want, "b costs only its new block, its tail and its recipe (%lld bytes, want %lld)",
	   (long long)growth, (long long)want);
	ok(st_same(s, &ka, fa) && st_same(s, &kb, fb), "both files read back byte for byte");

	struct store_stats stt = { 0 };
	int sr = store_stats(s, &stt, &err);
	ok(sr == 0 && stt.blocks == 1 + 5 + 1 + 1 && stt.recipes == 2 && stt.roots == 2 &&
	   stt.logical_bytes == 2 * 4 * (uint64_t)STORE_BLOCK_SIZE + 3100 && stt.packs == 1,
	   "stats: %llu blocks, %llu recipes, %llu roots, %llu logical bytes, %llu packs",
	   (unsigned long long)stt.blocks, (unsigned long long)stt.recipes, (unsigned long long)stt.roots,
	   (unsigned long long)stt.logical_bytes, (unsigned long long)stt.packs);

	/* An empty file is a recipe of no blocks. */
	char fe[400];
	snprintf(fe, sizeof(fe), "%s/empty", dir);
	st_make_file(fe, NULL, 0, 0, 0);
	struct store_key ke;
	ok(st_put_root(s, "empty", fe, &ke) == 0 && st_same(s, &ke, fe), "an empty file stores and reads back");
	store_close(s);
	free(blk);
	free(back);
}

/* A hash that collides on everything of the same first byte. */
static void weak_hash(const void *data, size_t len, uint64_t seed, uint8_t out[16])
{
	(void)seed;
	memset(out, 0, 16);
	out[0] = len ? ((const uint8_t *)data)[0] : 0;
}

static void test_collision(void)
{
	char cdir[400];
	snprintf(cdir, sizeof(cdir), "%s/collide", dir);
	struct store *s = NULL;
	struct corral_error err = { 0 };
	store_open_hash(cdir, STORE_CREATE, weak_hash, &s, &err);
	uint8_t *a = malloc(STORE_BLOCK_SIZE), *b = malloc(STORE_BLOCK_SIZE), *c = malloc(STORE_BLOCK_SIZE);
	st_fill(a, STORE_BLOCK_SIZE, 7);
	memcpy(b, a, STORE_BLOCK_SIZE);
	b[STORE_BLOCK_SIZE - 1] ^= 1; /* same first byte, one bit apart at the end */
	memcpy(c, a, STORE_BLOCK_SIZE);
	c[100] ^= 0x80;
	struct store_key ka, kb, kc, ka2;
	store_begin(s, &err);
	int r = store_put_block(s, a, STORE_BLOCK_SIZE, &ka, &err);
	r |= store_put_block(s, b, STORE_BLOCK_SIZE, &kb, &err);
	r |= store_put_block(s, c, STORE_BLOCK_SIZE, &kc, &err);
	r |= store_put_block(s, a, STORE_BLOCK_SIZE, &ka2, &err);
	ok(r == 0 && memcmp(ka.hash, kb.hash, 16) == 0 && memcmp(ka.hash, kc.hash, 16) == 0,
	   "three different blocks collide under the weak hash");
	ok(ka.n == 0 && kb.n == 1 && kc.n == 2, "each is stored under its own collision index (0, %u, %u)", kb.n,
	   kc.n);
	ok(store_key_eq(&ka, &ka2), "the first one stored again still dedups to its own key");
	uint8_t *back = malloc(STORE_BLOCK_SIZE);
	size_t len;
	bool all = true;
	const uint8_t *want[] = { a, b, c };
	const struct store_key *keys[] = { &ka, &kb, &kc };
	for (int i = 0; i < 3; i++)
		all = all && store_get_block(s, keys[i], back, &len, &err) == 0 &&
		      memcmp(back, want[i], STORE_BLOCK_SIZE) == 0;
	ok(all, "each key reads back its own bytes, never its colliding neighbour's");
	char ks[STORE_KEY_STR_MAX];
	struct store_key parsed;
	ok(store_key_parse(store_key_str(&kc, ks), &parsed) == 0 && store_key_eq(&parsed, &kc) &&
	   strcmp(ks + 32, "+2") == 0, "a collision index shows in the key's text (%s)", ks);
	struct store_recipe_entry e[] = { { kb, STORE_BLOCK_SIZE }, { kc, STORE_BLOCK_SIZE } };
	struct store_recipe rcp = { .size = 2 * STORE_BLOCK_SIZE, .n = 2, .e = e };
	struct store_key kr;
	struct store_root_entry re = { .recipe = kr, .label = "collided" };
	r = store_put_recipe(s, &rcp, &kr, &err);
	re.recipe = kr;
	struct store_root rt = { .n = 1, .e = &re };
	if (r == 0)
		r = store_root_commit(s, "collided", &rt, &err);
	store_end(s);
	ok(r == 0, "a recipe of the colliding blocks commits");
	store_close(s);

	/* The index is a cache: rebuilt from the packs, the same keys still
	 * find the same bytes (the collision index is in each record). */
	char idx[500];
	snprintf(idx, sizeof(idx), "%s/index", cdir);
	unlink(idx);
	s = NULL;
	store_open_hash(cdir, STORE_CREATE, weak_hash, &s, &err);
	all = s != NULL;
	for (int i = 0; all && i < 3; i++)
		all = store_get_block(s, keys[i], back, &len, &err) == 0 && memcmp(back, want[i], STORE_BLOCK_SIZE) == 0;
	ok(all, "after an index rebuild each colliding key still reads its own bytes");
	struct st_report rep;
	ok(s && st_fsck(s, 0, &rep) == 0 && rep.errors == 0 && rep.lost == 0 && st_found(&rep, "rebuilt .*missing"),
	   "fsck is clean and says the index was rebuilt because it was missing");
	store_close(s);
	free(a), free(b), free(c), free(back);
}

/* A collision meeting a crash: a writer is killed between its append and
 * its index entry; another, open all along, stores a block colliding with
 * the unindexed one and gets the same key.  The next open's catch-up
 * keeps the indexed one (the only one anyone was given); a rebuild cannot
 * tell which the recipes mean: neither may be served, and fsck must name
 * the conflict -- never the wrong bytes. */
static void test_collision_crash(void)
{
	char cdir[400];
	snprintf(cdir, sizeof(cdir), "%s/collide-crash", dir);
	struct store *b = NULL;
	struct corral_error err = { 0 };
	store_open_hash(cdir, STORE_CREATE, weak_hash, &b, &err);
	uint8_t *x = malloc(STORE_BLOCK_SIZE), *y = malloc(STORE_BLOCK_SIZE), *back = malloc(STORE_BLOCK_SIZE);
	st_fill(x, STORE_BLOCK_SIZE, 21);
	memcpy(y, x, STORE_BLOCK_SIZE);
	y[500] ^= 1;
	pid_t pid = fork();
	if (pid == 0) {
		struct store *a = NULL;
		struct store_key k;
		if (store_open_hash(cdir, 0, weak_hash, &a, NULL) < 0 || store_begin(a, NULL) < 0)
			_exit(1);
		store_test_crash_at(a, "append-written");
		store_put_block(a, x, STORE_BLOCK_SIZE, &k, NULL);
		_exit(1);
	}
	int status;
	waitpid(pid, &status, 0);
	struct store_key ky, kr;
	store_begin(b, &err);
	int r = store_put_block(b, y, STORE_BLOCK_SIZE, &ky, &err);
	struct store_recipe_entry e = { ky, STORE_BLOCK_SIZE };
	struct store_recipe rcp = { .size = STORE_BLOCK_SIZE, .n = 1, .e = &e };
	if (r == 0)
		r = store_put_recipe(b, &rcp, &kr, &err);
	struct store_root_entry re = { .recipe = kr, .label = "y" };
	struct store_root rt = { .n = 1, .e = &re };
	if (r == 0)
		r = store_root_commit(b, "y", &rt, &err);
	store_end(b);
	store_close(b);
	ok(WIFSIGNALED(status) && r == 0 && ky.n == 0,
	   "a writer killed after appending x; another stored colliding y under the same key");
	struct store *s = NULL;
	store_open_hash(cdir, 0, weak_hash, &s, &err);
	size_t len = 0;
	r = s ? store_get_block(s, &ky, back, &len, &err) : -1;
	struct st_report rep;
	ok(r == 0 && memcmp(back, y, STORE_BLOCK_SIZE) == 0 && st_fsck(s, 0, &rep) == 0 && rep.errors == 0 &&
	   rep.lost == 0, "after the catch-up the key still reads y, and fsck is clean (x is an orphan)");
	store_close(s);
	char idx[500];
	snprintf(idx, sizeof(idx), "%s/index", cdir);
	unlink(idx);
	s = NULL;
	store_open_hash(cdir, 0, weak_hash, &s, &err);
	r = s ? store_get_block(s, &ky, back, &len, &err) : -1;
	ok(r == -EBADMSG && strstr(err.msg, "claimed by two different records"),
	   "after a rebuild the key is served from neither record: %s", err.msg);
	ok(!(r == 0 && memcmp(back, x, STORE_BLOCK_SIZE) == 0), "y's file never reads x's bytes");
	ok(s && st_fsck(s, 0, &rep) == 0 && st_found(&rep, "two different records claiming it") &&
	   st_found(&rep, "^lost: root y: file y: block 0 .* is in conflict"),
	   "fsck names the conflict and the file it takes");
	store_close(s);
	free(x), free(y), free(back);
}

static void test_versions(void)
{
	char vdir[400], path[500];
	snprintf(vdir, sizeof(vdir), "%s/version", dir);
	struct store *s = open_store(vdir);
	store_close(s);
	snprintf(path, sizeof(path), "%s/FORMAT", vdir);
	const char *v2 = "corral-store 2\nseed 0123456789abcdef\n";
	file_write_atomic(path, v2, strlen(v2), 0600, NULL);
	struct corral_error err = { 0 };
	s = NULL;
	int r = store_open(vdir, STORE_CREATE, &s, &err);
	ok(r == -EPROTONOSUPPORT && strstr(err.msg, "format version 2") && strstr(err.msg, "reads version 1"),
	   "a store of format version 2 is refused clearly: %s", err.msg);
	file_write_atomic(path, "garbage\n", 8, 0600, NULL);
	r = store_open(vdir, STORE_CREATE, &s, &err);
	ok(r == -EBADMSG && strstr(err.msg, "not a corral store"), "a damaged FORMAT is refused: %s", err.msg);
	char none[400];
	snprintf(none, sizeof(none), "%s/nostore", dir);
	mkdir(none, 0700);
	r = store_open(none, 0, &s, &err);
	ok(r == -ENOENT && strstr(err.msg, "not a corral store"), "a directory without a store: %s", err.msg);
}

static void test_roots(void)
{
	struct store *s = open_store(sdir);
	struct corral_error err = { 0 };
	struct store_root rt;
	ok(store_root_read(s, "a", &rt, &err) == 0 && rt.n == 1, "root a reads back");
	struct store_root_entry e[2] = { { rt.e[0].recipe, "with space\nand newline\\ and \x01" },
					 { rt.e[0].recipe, "usr/bin/plain" } };
	struct store_root two = { .n = 2, .e = e };
	store_begin(s, &err);
	int r = store_root_commit(s, "labels", &two, &err);
	ok(store_root_commit(s, "../escape", &two, &err) == -EINVAL && store_root_commit(s, ".hidden", &two, &err) == -EINVAL,
	   "root names with a slash or a leading dot are refused");
	store_end(s);
	struct store_root back;
	ok(r == 0 && store_root_read(s, "labels", &back, &err) == 0 && back.n == 2 &&
	   strcmp(back.e[0].label, e[0].label) == 0 && strcmp(back.e[1].label, e[1].label) == 0,
	   "labels with spaces, newlines, backslashes and control bytes survive a root");
	store_root_release(&back);
	store_root_release(&rt);
	char **names = NULL;
	size_t n = 0;
	r = store_root_list(s, &names, &n, &err);
	ok(r == 0 && n == 4 && !strcmp(names[0], "a") && !strcmp(names[3], "labels"),
	   "roots list sorted (%zu)", n);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	ok(store_root_remove(s, "labels", &err) == 0 && store_root_read(s, "labels", &back, &err) == -ENOENT,
	   "a root is removed");
	/* A root's checksum catches a flipped byte. */
	char path[500];
	snprintf(path, sizeof(path), "%s/roots/a", sdir);
	st_flip(path, 30);
	ok(store_root_read(s, "a", &back, &err) == -EBADMSG && strstr(err.msg, "damaged"),
	   "a root with a flipped byte is damaged, not misread: %s", err.msg);
	st_flip(path, 30);
	store_close(s);
}

/* Index: missing, garbage, or behind the packs: store_open rebuilds or
 * catches up, and every block still reads. */
static void test_index_cache(void)
{
	char path[500];
	struct corral_error err = { 0 };
	snprintf(path, sizeof(path), "%s/index", sdir);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ok(fd >= 0 && pwrite(fd, "XXXXXXXX", 8, 0) == 8, "the index's magic overwritten");
	close(fd);
	struct store *s = open_store(sdir);
	struct store_root rt;
	bool good = s && store_root_read(s, "b", &rt, &err) == 0;
	char fb[400];
	snprintf(fb, sizeof(fb), "%s/b", dir);
	ok(good && st_same(s, &rt.e[0].recipe, fb), "a damaged index is rebuilt on open; file b reads back");
	if (good)
		store_root_release(&rt);
	struct st_report rep;
	ok(s && st_fsck(s, 0, &rep) == 0 && rep.errors == 0 && st_found(&rep, "rebuilt.*header was damaged"),
	   "fsck says why the index was rebuilt");
	store_close(s);

	/* An index from another boot may have lost pages to a power cut
	 * (it is never synced): rebuilt, though its header is valid. */
	fd = open(path, O_RDWR | O_CLOEXEC);
	uint8_t h[64];
	bool rewritten = fd >= 0 && pread(fd, h, sizeof(h), 0) == sizeof(h);
	h[32] ^= 0xff; /* the boot id */
	uint8_t c[56];
	memcpy(c, h, 56);
	memset(c + 12, 0, 4);
	memset(c + 24, 0, 8);
	uint64_t check = XXH3_64bits(c, 56);
	for (int i = 0; i < 8; i++)
		h[56 + i] = check >> (8 * i);
	rewritten = rewritten && pwrite(fd, h, sizeof(h), 0) == sizeof(h);
	close(fd);
	s = open_store(sdir);
	ok(rewritten && s && st_fsck(s, 0, &rep) == 0 && rep.errors == 0 &&
	   st_found(&rep, "rebuilt .*made before the last boot"),
	   "an index made in another boot is rebuilt on open");
	store_close(s);

	/* Index size per block: the figure behind the RAM-per-TiB estimate. */
	struct stat st;
	stat(path, &st);
	diag("index file: %lld bytes; %d bytes per slot, at most 3/4 of slots used", (long long)st.st_size, STORE_SLOT);
}

#define NWRITERS 4
#define NFILES 6

/* Writer w's file f: blocks from a shared pool (overlapping every other
 * writer's) and from its own range, with a tail of its own. */
static size_t writer_file(const char *path, int w, int f, int round)
{
	uint64_t ids[8];
	for (int i = 0; i < 8; i++)
		ids[i] = i % 2 ? 1000 + (f * 8 + i) % 24 : 5000 + w * 1000 + f * 8 + i + round * 100000;
	return st_make_file(path, ids, 8, 9000 + w * 100 + f + round * 100000, 1234 + w);
}

static int writer(const char *d, int w, int round)
{
	struct store *s = open_store(d);
	if (!s)
		return 1;
	for (int f = 0; f < NFILES; f++) {
		char path[400], root[64];
		snprintf(path, sizeof(path), "%s/w%d-%d", dir, w, f);
		writer_file(path, w, f, round);
		snprintf(root, sizeof(root), "w%d-%d-%d", w, f, round);
		if (st_put_root(s, root, path, NULL) < 0)
			return 1;
	}
	store_close(s);
	return 0;
}

static bool check_writers(struct store *s, int round)
{
	bool all = true;
	struct corral_error err = { 0 };
	for (int w = 0; w < NWRITERS; w++)
		for (int f = 0; f < NFILES; f++) {
			char path[400], root[64];
			snprintf(path, sizeof(path), "%s/check", dir);
			writer_file(path, w, f, round);
			snprintf(root, sizeof(root), "w%d-%d-%d", w, f, round);
			struct store_root rt;
			if (store_root_read(s, root, &rt, &err) < 0) {
				diag("%s", err.msg);
				all = false;
				continue;
			}
			if (!st_same(s, &rt.e[0].recipe, path)) {
				diag("root %s reads back wrong", root);
				all = false;
			}
			store_root_release(&rt);
		}
	return all;
}

static void test_concurrent(void)
{
	char cdir[400];
	snprintf(cdir, sizeof(cdir), "%s/concurrent", dir);
	store_close(open_store(cdir));
	pid_t pids[NWRITERS];
	for (int w = 0; w < NWRITERS; w++) {
		pids[w] = fork();
		if (pids[w] == 0)
			_exit(writer(cdir, w, 0));
	}
	bool exited = true;
	for (int w = 0; w < NWRITERS; w++) {
		int status;
		exited = exited && waitpid(pids[w], &status, 0) == pids[w] && WIFEXITED(status) &&
			 WEXITSTATUS(status) == 0;
	}
	ok(exited, "%d processes wrote %d overlapping files each at once", NWRITERS, NFILES);
	struct store *s = open_store(cdir);
	ok(s && check_writers(s, 0), "every file of every writer reads back byte for byte");
	struct st_report rep;
	ok(s && st_fsck(s, 0, &rep) == 0 && rep.errors == 0 && rep.lost == 0, "fsck is clean after concurrent writers");
	struct store_stats st = { 0 };
	struct corral_error err = { 0 };
	int r = s ? store_stats(s, &st, &err) : -1;
	/* Unique blocks: 12 shared + 4*6*4 own + 4*6 tails. */
	ok(r == 0 && st.blocks == 12 + NWRITERS * NFILES * 4 + NWRITERS * NFILES && st.packs == NWRITERS,
	   "the shared blocks are stored once across writers (%llu blocks, %llu packs)",
	   (unsigned long long)st.blocks, (unsigned long long)st.packs);
	/* Each writer made a pack: gc merges the small ones into one. */
	struct store_gc_result res;
	r = s ? store_gc(s, &res, &err) : -1;
	int r2 = s ? store_stats(s, &st, &err) : -1;
	struct st_report rep2;
	ok(r == 0 && r2 == 0 && st.packs == 1 && res.records_dropped == 0 && check_writers(s, 0) &&
	   st_fsck(s, 0, &rep2) == 0 && rep2.errors == 0 && rep2.lost == 0,
	   "gc merges the %d writers' small packs into one (%llu packs), every file intact", NWRITERS,
	   (unsigned long long)st.packs);
	store_close(s);
}

/* A pack a live writer owns is left alone by gc, garbage and all. */
static void test_gc_busy(void)
{
	char bdir[400], f[400];
	snprintf(bdir, sizeof(bdir), "%s/busy", dir);
	snprintf(f, sizeof(f), "%s/busyfile", dir);
	uint64_t ids[] = { 77, 78 };
	st_make_file(f, ids, 2, 79, 10);
	struct store *w = open_store(bdir), *g = open_store(bdir);
	struct corral_error err = { 0 };
	struct store_key k;
	int r = st_put_root(w, "x", f, &k);
	r |= store_root_remove(w, "x", &err);
	off_t before = pack_bytes(bdir);
	struct store_gc_result res = { 0 };
	r |= store_gc(g, &res, &err);
	ok(r == 0 && res.packs_busy == 1 && pack_bytes(bdir) == before,
	   "gc leaves a live writer's pack alone (%llu busy)", (unsigned long long)res.packs_busy);
	store_close(w);
	r = store_gc(g, &res, &err);
	ok(r == 0 && res.packs_busy == 0 && res.records_dropped == 4 && pack_bytes(bdir) == 0,
	   "and collects it once the writer closed (%llu records dropped)", (unsigned long long)res.records_dropped);
	store_close(g);
}

static void test_gc(void)
{
	struct corral_error err = { 0 };
	struct store *s = open_store(sdir);
	char fa[400], fb[400];
	snprintf(fa, sizeof(fa), "%s/a", dir);
	snprintf(fb, sizeof(fb), "%s/b", dir);
	struct store_root ra, rb;
	store_root_read(s, "a", &ra, &err);
	store_root_read(s, "b", &rb, &err);
	struct store_recipe rcp;
	store_get_recipe(s, &rb.e[0].recipe, &rcp, &err);
	store_root_remove(s, "b", &err);
	store_root_remove(s, "collided", &err); /* absent here: harmless */
	off_t before = pack_bytes(sdir);
	struct store_gc_result res;
	int r = store_gc(s, &res, &err);
	off_t after = pack_bytes(sdir);
	ok(r == 0 && after < before && res.records_dropped >= 3,
	   "gc after removing root b frees its blocks (%lld -> %lld bytes, %llu records dropped)", (long long)before,
	   (long long)after, (unsigned long long)res.records_dropped);
	uint8_t *buf = malloc(STORE_BLOCK_SIZE);
	size_t len;
	ok(store_get_block(s, &rcp.e[3].key, buf, &len, &err) == -ENOENT, "b's own block is gone");
	ok(store_get_block(s, &rcp.e[0].key, buf, &len, &err) == 0, "a block b shared with a is kept");
	ok(st_same(s, &ra.e[0].recipe, fa), "file a reads back after gc");
	store_close(s);
	s = open_store(sdir);
	struct st_report rep;
	ok(s && st_fsck(s, 0, &rep) == 0 && rep.errors == 0 && rep.lost == 0 && !s->rebuilt[0],
	   "fsck is clean after gc, with the index gc compacted (no rebuild needed)");
	ok(s && st_same(s, &ra.e[0].recipe, fa), "file a reads back in a new handle");
	store_close(s);
	store_recipe_release(&rcp);
	store_root_release(&ra);
	store_root_release(&rb);
	free(buf);
}

/* The root of one file (or -1 if it does not read back as `path`). */
static bool root_reads(struct store *s, const char *root, const char *path)
{
	struct store_root rt;
	if (store_root_read(s, root, &rt, NULL) < 0)
		return false;
	bool same = st_same(s, &rt.e[0].recipe, path);
	store_root_release(&rt);
	return same;
}

/* gc stopped right after its mark: writers and readers run on (the old
 * scheme held them off for the whole run); a writer storing bytes equal
 * to a dead block in a pack being emptied gets a fresh copy under the
 * same key; when gc goes on, nothing committed meanwhile is lost.  Then
 * gc killed after its mark and in the middle of its copy: the store opens,
 * checks clean, and the next store_open forgets the dead run's list. */
static void test_gc_concurrent(void)
{
	char gdir[400], fo[400], fk[400], fn[400], path[500];
	snprintf(gdir, sizeof(gdir), "%s/gcconc", dir);
	snprintf(fo, sizeof(fo), "%s/gc-old", dir);
	snprintf(fk, sizeof(fk), "%s/gc-keep", dir);
	snprintf(fn, sizeof(fn), "%s/gc-new", dir);
	uint64_t io[] = { 300, 301, 302 }, ik[] = { 310, 301 }, in[] = { 320, 321 };
	st_make_file(fo, io, 3, 303, 99);
	st_make_file(fk, ik, 2, 311, 99);
	st_make_file(fn, in, 2, 322, 99);
	struct corral_error err = { 0 };
	struct store *w = open_store(gdir);
	struct store_key ko, ko2, kn;
	st_put_root(w, "old", fo, &ko);
	st_put_root(w, "keep", fk, NULL);
	store_root_remove(w, "old", &err);
	store_close(w);

	pid_t pid = fork();
	if (pid == 0) {
		struct store *g = NULL;
		struct store_gc_result res;
		if (store_open(gdir, 0, &g, NULL) < 0)
			_exit(2);
		store_test_stop_at(g, "gc-marked");
		_exit(store_gc(g, &res, NULL) < 0 ? 1 : 0);
	}
	int status;
	waitpid(pid, &status, WUNTRACED);
	snprintf(path, sizeof(path), "%s/gc.condemned", gdir);
	ok(WIFSTOPPED(status) && access(path, F_OK) == 0, "gc stopped after its mark, its packs published");
	alarm(120); /* a writer held off by the stopped gc would hang here */
	w = open_store(gdir);
	int r = st_put_root(w, "again", fo, &ko2);
	int r2 = st_put_root(w, "new", fn, &kn);
	ok(r == 0 && r2 == 0, "a writer commits two roots while gc is stopped half-way");
	ok(store_key_eq(&ko, &ko2), "bytes equal to a dead file in a pack being emptied get their old key back");
	ok(root_reads(w, "keep", fk), "a reader reads a file of the pack being emptied");
	alarm(0);
	kill(pid, SIGCONT);
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "gc goes on and finishes");
	store_close(w);
	w = open_store(gdir);
	struct st_report rep;
	ok(w && st_fsck(w, 0, &rep) == 0 && rep.errors == 0 && rep.lost == 0 && access(path, F_OK) < 0,
	   "fsck is clean and gc's list is gone");
	ok(w && root_reads(w, "again", fo) && root_reads(w, "new", fn) && root_reads(w, "keep", fk),
	   "every root committed before and during gc reads back");
	store_close(w);

	/* kill -9 of gc after its mark, and after copying its first record. */
	const char *points[] = { "gc-marked", "gc-copied" };
	for (int i = 0; i < 2; i++) {
		w = open_store(gdir);
		char root[32];
		snprintf(root, sizeof(root), "tmp%d", i);
		st_put_root(w, root, fn, NULL);
		store_root_remove(w, "again", &err);
		st_put_root(w, "again", fo, NULL); /* a new root file, same content */
		store_root_remove(w, root, &err);
		store_close(w);
		/* Garbage next to live records in one pack: a file only the
		 * removed root had, beside one a kept root has. */
		uint64_t ig[] = { 400 + (uint64_t)i }, il[] = { 500 + (uint64_t)i };
		char fg[400], fl[400];
		snprintf(fg, sizeof(fg), "%s/gc-garbage", dir);
		snprintf(fl, sizeof(fl), "%s/gc-live%d", dir, i);
		st_make_file(fg, ig, 1, 401, 5);
		st_make_file(fl, il, 1, 501, 5);
		w = open_store(gdir);
		snprintf(root, sizeof(root), "live%d", i);
		st_put_root(w, "garbage", fg, NULL);
		st_put_root(w, root, fl, NULL);
		store_root_remove(w, "garbage", &err);
		store_close(w);
		pid = fork();
		if (pid == 0) {
			struct store *g = NULL;
			struct store_gc_result res;
			if (store_open(gdir, 0, &g, NULL) < 0)
				_exit(2);
			store_test_crash_at(g, points[i]);
			store_gc(g, &res, NULL);
			_exit(1);
		}
		waitpid(pid, &status, 0);
		w = open_store(gdir);
		ok(WIFSIGNALED(status) && w && st_fsck(w, 0, &rep) == 0 && rep.errors == 0 && rep.lost == 0 &&
		   access(path, F_OK) < 0 && root_reads(w, "again", fo) && root_reads(w, "new", fn) &&
		   root_reads(w, "keep", fk) && root_reads(w, root, fl),
		   "gc killed at %s: the store opens, drops the dead run's list, checks clean, every root reads",
		   points[i]);
		struct store_gc_result res;
		ok(w && store_gc(w, &res, &err) == 0 && st_fsck(w, 0, &rep) == 0 && rep.errors == 0 && rep.lost == 0 &&
		   root_reads(w, "again", fo), "and the next gc runs clean");
		store_close(w);
	}
}

/* Writers keep writing and replacing roots while gc runs again and again. */
static void test_gc_race(void)
{
	char gdir[400];
	snprintf(gdir, sizeof(gdir), "%s/gcrace", dir);
	store_close(open_store(gdir));
	pid_t pids[NWRITERS];
	for (int w = 0; w < NWRITERS; w++) {
		pids[w] = fork();
		if (pids[w] == 0) {
			int bad = 0;
			for (int round = 0; round < 4 && !bad; round++) {
				bad = writer(gdir, w, round);
				/* Drop the previous round's roots: garbage for gc. */
				struct store *s = open_store(gdir);
				for (int f = 0; s && round && f < NFILES; f++) {
					char root[64];
					snprintf(root, sizeof(root), "w%d-%d-%d", w, f, round - 1);
					store_root_remove(s, root, NULL);
				}
				store_close(s);
			}
			_exit(bad);
		}
	}
	struct store *s = open_store(gdir);
	int gcs = 0, gcfail = 0, alive = NWRITERS;
	bool exited = true;
	struct corral_error err = { 0 };
	while (alive > 0) {
		struct store_gc_result res;
		if (store_gc(s, &res, &err) < 0) {
			diag("gc: %s", err.msg);
			gcfail++;
		}
		gcs++;
		int status;
		pid_t p;
		while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
			alive--;
			exited = exited && WIFEXITED(status) && WEXITSTATUS(status) == 0;
		}
	}
	struct store_gc_result res;
	store_gc(s, &res, &err);
	ok(exited && gcfail == 0, "%d writers wrote and dropped roots while gc ran %d times", NWRITERS, gcs);
	store_close(s);
	s = open_store(gdir);
	ok(s && check_writers(s, 3), "every file of the last round reads back byte for byte");
	struct st_report rep;
	ok(s && st_fsck(s, 0, &rep) == 0 && rep.errors == 0 && rep.lost == 0, "fsck is clean after gc raced writers");
	struct store_stats st = { 0 };
	int r = s ? store_stats(s, &st, &err) : -1;
	ok(r == 0 && st.roots == NWRITERS * NFILES && st.blocks == 12 + NWRITERS * NFILES * 4 + NWRITERS * NFILES,
	   "only the last round's blocks remain (%llu blocks, %llu packs, %llu roots)", (unsigned long long)st.blocks,
	   (unsigned long long)st.packs, (unsigned long long)st.roots);
	store_close(s);
}

/* Whether another process could take index.lock exclusively right now. */
static bool index_lock_free(const char *d)
{
	pid_t pid = fork();
	if (pid == 0) {
		char path[500];
		snprintf(path, sizeof(path), "%s/index.lock", d);
		int fd = open(path, O_RDWR | O_CLOEXEC);
		_exit(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* fsck and gc hold the index lock while they read recipes (which take it
 * too): the inner release must not drop the outer hold, or another
 * process could grow or replace the index under gc's slot numbers. */
static void test_lock_nesting(void)
{
	struct store *s = open_store(sdir);
	struct corral_error err = { 0 };
	struct store_root rt;
	store_root_read(s, "a", &rt, &err);
	ok(index_lock_free(sdir), "index.lock is free while no one holds it");
	store_index_lock(s, true);
	struct store_recipe rcp;
	int r = store_get_recipe(s, &rt.e[0].recipe, &rcp, &err);
	ok(r == 0 && !index_lock_free(sdir), "a read nested in the exclusive hold keeps it exclusive");
	store_index_unlock(s);
	ok(index_lock_free(sdir), "the outer release frees it");
	store_recipe_release(&rcp);
	store_root_release(&rt);
	store_close(s);
}

int main(void)
{
	dir = st_tmpdir();
	snprintf(sdir, sizeof(sdir), "%s/store", dir);
	test_dedup();
	test_collision();
	test_collision_crash();
	test_versions();
	test_roots();
	test_index_cache();
	test_lock_nesting();
	test_concurrent();
	test_gc();
	test_gc_busy();
	test_gc_concurrent();
	test_gc_race();
	return tap_done();
}
