/* store: garbage collection by reachability from the roots, while writers
 * run (FORMAT.md "Garbage collection").
 *
 * Phase 1, with gc.lock exclusive (so no write transaction is open: every
 * block put so far is named by a committed root) and the index lock
 * exclusive: mark what the roots reach; pick the packs to empty (not a
 * live writer's, holding bytes no marked entry accounts for); publish them
 * in gc.condemned and bump the generation in the index header.  From then
 * on no writer shares a record from a condemned pack (it stores a fresh
 * copy, under the same key if the bytes are equal), so nothing committed
 * after the mark can come to depend on a record GC drops.
 *
 * Phase 2, with both locks released (writers and readers run): copy each
 * condemned pack's marked records into GC's own pack, fdatasync it, then
 * under the index lock point each key that still names the old record at
 * the copy, and unlink the old pack.
 *
 * Phase 3, under the index lock: drop the entries of deleted packs (a new
 * index file) and clear gc.condemned.  gc.run serializes collections (and
 * fsck) with each other; a collection killed half-way leaves gc.condemned,
 * which the next store_open clears when no collection runs. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "store-internal.h"

#define CONDEMNED "gc.condemned"
#define COND_ALL ((size_t)-1)	/* unreadable list: share from no other pack */
#define GC_SMALL_PACK (16u << 20)	/* packs below this are merged */

/* ---- gc.condemned: "u32 count, u32 packs[count], XXH3-64 of the rest" ---- */

static void cond_load(struct store *s)
{
	free(s->cond);
	s->cond = NULL;
	s->ncond = 0;
	cleanup_close int fd = openat(s->dirfd, CONDEMNED, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno != ENOENT)
			s->ncond = COND_ALL;
		return;
	}
	cleanup_free char *buf = NULL;
	size_t len;
	if (fd_read_all(fd, CONDEMNED, &buf, &len, NULL) < 0 || len < 12) {
		s->ncond = COND_ALL;
		return;
	}
	uint32_t n = store_le32((uint8_t *)buf);
	if (len != 4 + (size_t)n * 4 + 8 || store_le64((uint8_t *)buf + len - 8) != store_check64(buf, len - 8) ||
	    !(s->cond = malloc((n ? n : 1) * sizeof(uint32_t)))) {
		s->ncond = COND_ALL;
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		s->cond[i] = store_le32((uint8_t *)buf + 4 + 4 * i);
	s->ncond = n;
}

bool store_gc_condemned(struct store *s, uint32_t no)
{
	uint32_t gen = store_index_gcgen(s);
	if (gen != s->cond_gen) {
		cond_load(s);
		s->cond_gen = gen;
	}
	if (s->ncond == COND_ALL)
		return !(s->pack_fd >= 0 && no == s->pack_no);
	for (size_t i = 0; i < s->ncond; i++)
		if (s->cond[i] == no)
			return true;
	return false;
}

static uint32_t next_gen(struct store *s)
{
	uint32_t gen = store_index_gcgen(s) + 1;
	return gen ? gen : 1;
}

/* Under the exclusive index lock. */
static int cond_publish(struct store *s, const uint32_t *packs, size_t n)
{
	size_t len = 4 + n * 4 + 8;
	cleanup_free uint8_t *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	store_put_le32(buf, n);
	for (size_t i = 0; i < n; i++)
		store_put_le32(buf + 4 + 4 * i, packs[i]);
	store_put_le64(buf + len - 8, store_check64(buf, len - 8));
	int r = store_commit_file(s, s->dirfd, CONDEMNED, buf, len);
	if (r == 0)
		store_index_set_gcgen(s, next_gen(s));
	return r;
}

static void cond_clear(struct store *s)
{
	unlinkat(s->dirfd, CONDEMNED, 0);
	store_index_set_gcgen(s, next_gen(s));
}

void store_gc_clear_stale(struct store *s)
{
	if (faccessat(s->dirfd, CONDEMNED, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (flock(s->gc_run_fd, LOCK_EX | LOCK_NB) < 0)
		return; /* a collection runs: its list is current */
	cond_clear(s);
	flock(s->gc_run_fd, LOCK_UN);
}

/* ---- phase 1: mark ---- */

struct gc {
	struct store *s;
	uint8_t *mark;	/* a bit per index slot (phase 1 only) */
	struct store_gc_result *res;
	/* Candidate packs: not a live writer's (we hold their flock). */
	struct cand {
		uint32_t no;
		int fd;		/* flock'ed for the whole run */
		uint64_t size, live;
		bool condemned, deleted;
		/* The marked records in it: offset and key, sorted by offset. */
		struct live {
			uint64_t off;
			struct store_key key;
			uint8_t kind;
		} *v;
		size_t n, cap;
	} *c;
	size_t nc;
};

static bool marked(struct gc *g, uint64_t slot)
{
	return g->mark[slot / 8] & (1 << (slot % 8));
}

static void mark_key(struct gc *g, uint8_t kind, const struct store_key *k)
{
	struct store_loc loc;
	uint64_t slot;
	/* FAST: a stray slot (only when k is not indexed) is kept, never
	 * lost -- and no pack is read for the mark. */
	if (store_index_find(g->s, kind, k, STORE_FIND_FAST, &loc, &slot) == 0)
		g->mark[slot / 8] |= 1 << (slot % 8);
}

static int mark_roots(struct gc *g, struct corral_error *err)
{
	char **names;
	size_t n;
	int r = store_root_list(g->s, &names, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct store_root root = { 0 };
		/* A root we cannot read may name anything: collect nothing.  One
		 * removed since the listing names nothing any more. */
		struct corral_error e = { 0 };
		int rr = r == 0 ? store_root_read(g->s, names[i], &root, &e) : 0;
		if (rr < 0 && rr != -ENOENT)
			r = err_plain(err, -rr, "gc refused: %s (run corral store fsck)", e.msg);
		for (size_t j = 0; r == 0 && j < root.n; j++) {
			mark_key(g, STORE_KIND_RECIPE, &root.e[j].recipe);
			struct store_recipe rcp;
			if (store_get_recipe(g->s, &root.e[j].recipe, &rcp, NULL) < 0)
				continue; /* lost already: fsck names it */
			for (size_t b = 0; b < rcp.n; b++)
				mark_key(g, STORE_KIND_BLOCK, &rcp.e[b].key);
			store_recipe_release(&rcp);
		}
		store_root_release(&root);
		free(names[i]);
	}
	free(names);
	return r;
}

static struct cand *cand_of(struct gc *g, uint32_t no)
{
	for (size_t i = 0; i < g->nc; i++)
		if (g->c[i].no == no)
			return &g->c[i];
	return NULL;
}

static int cmp_live(const void *a, const void *b)
{
	uint64_t x = ((const struct live *)a)->off, y = ((const struct live *)b)->off;
	return x < y ? -1 : x > y;
}

/* The packs no live writer holds, their marked records, and which of them
 * hold anything else (dead, duplicate, damaged or torn bytes). */
static int choose(struct gc *g)
{
	struct store *s = g->s;
	cleanup_free uint32_t *packs = NULL;
	size_t n;
	int r = store_pack_list(s, &packs, &n);
	if (r < 0)
		return r;
	g->res->packs_before = n;
	g->c = calloc(n ? n : 1, sizeof(*g->c));
	if (!g->c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char name[32];
		store_pack_name(packs[i], name);
		int fd = openat(s->packsfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		g->res->bytes_before += st.st_size;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0 || store_pack_fd(s, packs[i]) < 0) {
			/* A live writer's, or a damaged header (fsck's to name). */
			g->res->packs_busy += errno == EWOULDBLOCK;
			close(fd);
			continue;
		}
		g->c[g->nc++] = (struct cand){ .no = packs[i], .fd = fd, .size = st.st_size };
	}
	uint64_t nslots = store_index_nslots(s);
	for (uint64_t i = 0; i < nslots; i++) {
		struct store_loc loc;
		if (!store_index_slot(s, i, &loc, NULL) || !marked(g, i))
			continue;
		struct cand *c = cand_of(g, loc.pack);
		if (!c)
			continue;
		if (c->n == c->cap) {
			c->cap = c->cap ? c->cap * 2 : 64;
			struct live *v = realloc(c->v, c->cap * sizeof(*v));
			if (!v)
				return -ENOMEM;
			c->v = v;
		}
		/* The key: from the record, when it is copied (the slot has
		 * only its fingerprint). */
		c->v[c->n++] = (struct live){ .off = loc.off, .kind = loc.kind };
		c->live += STORE_REC_HDR + loc.len;
	}
	/* Every handle that writes starts a pack: small ones are merged too
	 * (when there are two or more), so their number stays bounded. */
	size_t small = 0;
	for (size_t i = 0; i < g->nc; i++)
		small += g->c[i].size < GC_SMALL_PACK;
	for (size_t i = 0; i < g->nc; i++) {
		struct cand *c = &g->c[i];
		if (c->n)
			qsort(c->v, c->n, sizeof(*c->v), cmp_live);
		c->condemned = c->size > STORE_PACK_HDR + c->live || (small >= 2 && c->size < GC_SMALL_PACK);
	}
	return 0;
}

/* ---- phase 2: copy, repoint, delete ---- */

static int empty_pack(struct gc *g, struct cand *c, uint8_t *buf)
{
	struct store *s = g->s;
	int rfd = store_pack_fd(s, c->no);
	if (rfd < 0)
		return rfd;
	cleanup_free struct store_loc *moved = calloc(c->n ? c->n : 1, sizeof(*moved));
	if (!moved)
		return -ENOMEM;
	/* Copies, verified: a damaged live record keeps the whole pack (fsck
	 * names it; we must not lose what is left of it). */
	for (size_t i = 0; i < c->n; i++) {
		struct store_rec rec;
		int r = store_pack_read(s, rfd, c->v[i].off, &rec, buf, STORE_RECORD_MAX, true);
		if (r == 0 && rec.kind != c->v[i].kind)
			r = -EBADMSG;
		if (r < 0)
			return r;
		c->v[i].key = rec.key;
		r = store_pack_append(s, &rec, buf, &moved[i]);
		if (r < 0)
			return r;
		store_crash_point(s, "gc-copied");
	}
	if (c->n) {
		if (fdatasync(s->pack_fd) < 0)
			return -errno;
		s->pack_dirty = false;
	}
	int r = store_index_lock(s, true);
	if (r < 0)
		return r;
	/* By key: slots move when a writer grows the index meanwhile.  A key
	 * a writer re-stored meanwhile names its copy: left as it is. */
	for (size_t i = 0; i < c->n; i++) {
		struct store_loc loc;
		uint64_t slot;
		if (store_index_find(s, c->v[i].kind, &c->v[i].key, STORE_FIND_VERIFY, &loc, &slot) == 0 &&
		    loc.pack == c->no &&
		    loc.off == c->v[i].off)
			store_index_set_loc(s, slot, &moved[i]);
	}
	if (c->n)
		r = store_index_cover(s, s->pack_no, s->pack_end);
	if (r == 0) {
		store_pack_fd_forget(s, c->no);
		char name[32];
		store_pack_name(c->no, name);
		if (unlinkat(s->packsfd, name, 0) < 0)
			r = -errno;
	}
	if (r == 0) {
		store_index_uncover(s, c->no);
		c->deleted = true;
	}
	store_index_unlock(s);
	return r;
}

static bool keep_entry(void *ctx, uint64_t slot, struct store_loc *loc)
{
	struct gc *g = ctx;
	(void)slot;
	struct cand *c = cand_of(g, loc->pack);
	if (c && c->deleted) {
		g->res->records_dropped++;
		return false;
	}
	return true;
}

static void gc_release(struct gc *g)
{
	for (size_t i = 0; i < g->nc; i++) {
		close(g->c[i].fd);
		free(g->c[i].v);
	}
	free(g->c);
	free(g->mark);
}

int store_gc(struct store *s, struct store_gc_result *ret, struct corral_error *err)
{
	struct store_gc_result res = { 0 };
	struct gc g = { .s = s, .res = &res };
	cleanup_free uint32_t *cond = NULL;
	size_t ncond = 0;
	cleanup_free uint8_t *buf = malloc(STORE_RECORD_MAX);
	if (!buf)
		return err_set(err, ENOMEM, "gc");
	int r = store_lock_maintenance(s, true, "gc", err);
	if (r < 0)
		return r;
	bool published = false;
	/* Seal our own pack (it may hold copies an earlier run made, dead by
	 * now): the copies this run makes go to a new one. */
	if (s->pack_fd >= 0) {
		if (s->pack_dirty && fdatasync(s->pack_fd) < 0) {
			r = err_set(err, errno, "gc: sync pack %08x", s->pack_no);
			goto locked;
		}
		close(s->pack_fd);
		s->pack_fd = -1;
		s->pack_dirty = false;
	}
	/* Slot numbers hold still until the mark is used up: make room for
	 * our pack's cover entry now, before taking any. */
	r = store_index_cover_room(s);
	if (r == 0) {
		g.mark = calloc(store_index_nslots(s) / 8 + 1, 1);
		r = g.mark ? 0 : -ENOMEM;
	}
	if (r < 0) {
		err_set(err, -r, "gc");
		goto locked;
	}
	r = mark_roots(&g, err);
	if (r < 0)
		goto locked;
	r = choose(&g);
	cond = calloc(g.nc ? g.nc : 1, sizeof(*cond));
	for (size_t i = 0; r == 0 && cond && i < g.nc; i++)
		if (g.c[i].condemned)
			cond[ncond++] = g.c[i].no;
	if (r == 0 && !cond)
		r = -ENOMEM;
	if (r == 0 && ncond)
		r = cond_publish(s, cond, ncond);
	if (r < 0) {
		err_set(err, -r, "gc: choose the packs to collect");
		goto locked;
	}
	published = ncond > 0;
	free(g.mark);
	g.mark = NULL;
	/* Phase 2: writers and readers run again. */
	store_index_unlock(s);
	flock(s->gc_lock_fd, LOCK_UN);
	store_crash_point(s, "gc-marked");
	for (size_t i = 0; i < g.nc; i++) {
		if (!g.c[i].condemned)
			continue;
		int rr = empty_pack(&g, &g.c[i], buf);
		if (rr == -EBADMSG || rr == -ENODATA)
			continue; /* a damaged live record: the pack stays */
		if (rr < 0) {
			r = err_set(err, -rr, "gc: collect pack %08x", g.c[i].no);
			break;
		}
	}
	if (r == 0 && fsync(s->packsfd) < 0)
		r = err_set(err, errno, "gc: sync the packs directory");
	/* Phase 3: drop the deleted packs' entries, clear the list. */
	int lr = store_index_lock(s, true);
	if (lr < 0) {
		gc_release(&g);
		flock(s->gc_run_fd, LOCK_UN);
		return r < 0 ? r : err_set(err, -lr, "lock the store index");
	}
	bool any = false;
	for (size_t i = 0; i < g.nc; i++)
		any = any || g.c[i].deleted;
	if (r == 0 && any) {
		int cr = store_index_compact(s, keep_entry, &g);
		if (cr < 0)
			r = err_set(err, -cr, "gc: compact the index");
	}
	if (published)
		cond_clear(s);
	store_index_unlock(s);
	goto done;
locked:
	store_index_unlock(s);
	flock(s->gc_lock_fd, LOCK_UN);
done:
	if (r == 0)
		(void)store_packs_size(s, &res.packs_after, &res.bytes_after);
	gc_release(&g);
	flock(s->gc_run_fd, LOCK_UN);
	if (r == 0 && ret)
		*ret = res;
	return r;
}
