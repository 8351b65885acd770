/* store: garbage collection by reachability from the roots.
 *
 * Safety (FORMAT.md "Garbage collection"): every writer holds gc.lock
 * shared from store_begin to store_end, i.e. from its first put to the
 * root commit that makes its blocks reachable; GC holds it exclusively for
 * its whole run.  So when GC marks, every block a writer has put is
 * already named by a committed root, and no writer can share (dedup onto)
 * a block GC is about to drop.  GC also holds the index lock exclusively,
 * so readers see each record at its old place or its new one, never
 * neither.  A pack a live writer owns (its flock) is not touched; a pack
 * is deleted only after its live records are durable in the new pack and
 * the index points there. */
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
#include "store-internal.h"

struct gc {
	struct store *s;
	uint8_t *mark;	/* a bit per index slot */
	uint32_t *deleted;
	size_t ndeleted;
	struct store_gc_result *res;
};

static bool marked(struct gc *g, uint64_t slot)
{
	return g->mark[slot / 8] & (1 << (slot % 8));
}

static void mark_key(struct gc *g, uint8_t kind, const struct store_key *k)
{
	struct store_loc loc;
	uint64_t slot;
	if (store_index_find(g->s, kind, k, &loc, &slot) == 0)
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

struct sweep {
	struct gc *g;
	uint32_t pack;
	uint64_t live, dead, dead_records;
	/* The live records: their slot and offset. */
	struct {
		uint64_t slot, off;
	} *v;
	size_t n, cap;
};

static int sweep_rec(void *ctx, uint32_t pack, uint64_t off, const struct store_rec *rec)
{
	struct sweep *w = ctx;
	struct store_loc loc;
	uint64_t slot;
	if (store_index_find(w->g->s, rec->kind, &rec->key, &loc, &slot) < 0 || loc.pack != pack ||
	    loc.off != off || !marked(w->g, slot)) {
		w->dead += STORE_REC_HDR + rec->len;
		w->dead_records++;
		return 0;
	}
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 256;
		void *nv = realloc(w->v, w->cap * sizeof(*w->v));
		if (!nv)
			return -ENOMEM;
		w->v = nv;
	}
	w->v[w->n].slot = slot;
	w->v[w->n++].off = off;
	w->live += STORE_REC_HDR + rec->len;
	return 0;
}

static void sweep_bad(void *ctx, uint32_t pack, uint64_t off, uint64_t len, const char *what)
{
	struct sweep *w = ctx;
	(void)pack, (void)off, (void)what;
	w->dead += len;
}

/* Moves pack `no`'s live records into the own pack and deletes it, if it
 * holds anything else.  0 also when it is left alone. */
static int collect_pack(struct gc *g, uint32_t no, uint8_t *buf)
{
	struct store *s = g->s;
	char name[32];
	snprintf(name, sizeof(name), "%08x.pack", no);
	cleanup_close int fd = openat(s->packsfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	g->res->bytes_before += st.st_size;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		g->res->packs_busy++; /* a live writer's */
		g->res->bytes_after += st.st_size;
		return 0;
	}
	int rfd = store_pack_fd(s, no);
	if (rfd < 0) {
		g->res->bytes_after += st.st_size;
		return 0; /* a damaged pack header: fsck's to name, not ours to drop */
	}
	struct sweep w = { .g = g, .pack = no };
	struct store_scan_cb cb = { .rec = sweep_rec, .bad = sweep_bad, .ctx = &w };
	uint64_t end, torn;
	int r = store_pack_scan(s, rfd, no, STORE_PACK_HDR, &cb, &end, &torn);
	if (r < 0 || w.dead == 0) {
		free(w.v);
		g->res->bytes_after += st.st_size;
		return r;
	}
	/* Copy the live records, verified: a damaged live record keeps the
	 * whole pack (fsck names it; we must not lose what is left of it). */
	struct store_loc *moved = calloc(w.n ? w.n : 1, sizeof(*moved));
	if (!moved) {
		free(w.v);
		return -ENOMEM;
	}
	for (size_t i = 0; r == 0 && i < w.n; i++) {
		struct store_rec rec;
		r = store_pack_read(s, rfd, w.v[i].off, &rec, buf, STORE_RECORD_MAX, true);
		if (r == 0)
			r = store_pack_append(s, &rec, buf, &moved[i]);
	}
	if (r == 0 && w.n && fdatasync(s->pack_fd) < 0)
		r = -errno;
	if (r == 0 && w.n)
		r = store_index_cover(s, s->pack_no, s->pack_end);
	if (r == 0) {
		s->pack_dirty = false;
		for (size_t i = 0; i < w.n; i++)
			store_index_set_loc(s, w.v[i].slot, &moved[i]);
		store_pack_fd_forget(s, no);
		if (unlinkat(s->packsfd, name, 0) < 0)
			r = -errno;
	}
	if (r == 0) {
		store_index_uncover(s, no);
		g->deleted[g->ndeleted++] = no;
		g->res->records_dropped += w.dead_records;
	} else {
		g->res->bytes_after += st.st_size;
	}
	free(moved);
	free(w.v);
	return r == -EBADMSG || r == -ENODATA ? 0 : r;
}

static bool keep_entry(void *ctx, uint64_t slot, struct store_loc *loc)
{
	struct gc *g = ctx;
	(void)slot;
	for (size_t i = 0; i < g->ndeleted; i++)
		if (loc->pack == g->deleted[i])
			return false;
	return true;
}

int store_gc(struct store *s, struct store_gc_result *ret, struct corral_error *err)
{
	struct store_gc_result res = { 0 };
	struct gc g = { .s = s, .res = &res };
	cleanup_free uint32_t *packs = NULL;
	size_t n = 0;
	cleanup_free uint8_t *buf = malloc(STORE_RECORD_MAX);
	if (!buf)
		return err_set(err, ENOMEM, "gc");
	int r = store_lock(s->gc_lock_fd, LOCK_EX);
	if (r < 0)
		return err_set(err, -r, "lock the store for gc");
	r = store_index_lock(s, true);
	if (r < 0) {
		flock(s->gc_lock_fd, LOCK_UN);
		return err_set(err, -r, "lock the store index");
	}
	/* Seal our own pack (it may hold copies an earlier run made, dead
	 * by now): the copies this run makes go to a new one. */
	if (s->pack_fd >= 0) {
		if (s->pack_dirty && fdatasync(s->pack_fd) < 0) {
			r = err_set(err, errno, "gc: sync pack %08x", s->pack_no);
			goto out;
		}
		close(s->pack_fd);
		s->pack_fd = -1;
		s->pack_dirty = false;
	}
	/* Slot numbers must hold still from the mark to the end: make room
	 * for our pack's cover entry now, before taking any. */
	r = store_index_cover_room(s);
	if (r == 0) {
		g.mark = calloc(store_index_nslots(s) / 8 + 1, 1);
		r = g.mark ? 0 : -ENOMEM;
	}
	if (r < 0) {
		err_set(err, -r, "gc");
		goto out;
	}
	r = mark_roots(&g, err);
	if (r < 0)
		goto out;
	r = store_pack_list(s, &packs, &n);
	g.deleted = calloc(n ? n : 1, sizeof(*g.deleted));
	if (r < 0 || !g.deleted) {
		r = err_set(err, r < 0 ? -r : ENOMEM, "gc: list packs");
		goto out;
	}
	res.packs_before = n;
	for (size_t i = 0; i < n; i++) {
		r = collect_pack(&g, packs[i], buf);
		if (r < 0) {
			err_set(err, -r, "gc: collect pack %08x", packs[i]);
			goto out;
		}
	}
	if (s->pack_fd >= 0) {
		struct stat st;
		if (fstat(s->pack_fd, &st) == 0)
			res.bytes_after += st.st_size;
	}
	if (fsync(s->packsfd) < 0) {
		r = err_set(err, errno, "gc: sync the packs directory");
		goto out;
	}
	if (g.ndeleted) {
		r = store_index_compact(s, keep_entry, &g);
		if (r < 0) {
			err_set(err, -r, "gc: compact the index");
			goto out;
		}
	}
	{
		cleanup_free uint32_t *after = NULL;
		size_t na;
		if (store_pack_list(s, &after, &na) == 0)
			res.packs_after = na;
	}
out:
	free(g.mark);
	free(g.deleted);
	store_index_unlock(s);
	flock(s->gc_lock_fd, LOCK_UN);
	if (r == 0 && ret)
		*ret = res;
	return r;
}
