/* store: fsck and stats.  fsck reads every record of every pack (header,
 * payload checksum, key), every index entry against the record it points
 * at, and every root down to its blocks, and names what is damaged and
 * which roots' files it takes with it.  It runs with the GC lock held
 * exclusively (no write transaction open), so what it sees is settled. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "store-internal.h"

struct fsck {
	struct store *s;
	store_report_fn report;
	void *ctx;
	struct store_fsck_result *res;
	bool repair;
	uint8_t *good;	/* a bit per index slot: its record was verified */
};

__attribute__((format(printf, 3, 4)))
static void say(struct fsck *f, enum store_finding kind, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (f->report)
		f->report(f->ctx, kind, line);
}

static const char *kind_name(uint8_t kind)
{
	return kind == STORE_KIND_BLOCK ? "block" : kind == STORE_KIND_RECIPE ? "recipe" : "object";
}

static int scan_rec(void *ctx, uint32_t pack, uint64_t off, const struct store_rec *rec)
{
	struct fsck *f = ctx;
	char ks[STORE_KEY_STR_MAX];
	f->res->records++;
	struct store_loc loc;
	if (store_index_find(f->s, rec->kind, &rec->key, STORE_FIND_CONFIRMED, &loc, NULL) < 0) {
		f->res->index_errors++;
		say(f, STORE_FSCK_ERROR, "index: %s %s (pack %08x at %llu) is not in the index", kind_name(rec->kind),
		    store_key_str(&rec->key, ks), pack, (unsigned long long)off);
	}
	return 0;
}

static void scan_bad(void *ctx, uint32_t pack, uint64_t off, uint64_t len, const char *what)
{
	struct fsck *f = ctx;
	if (!strncmp(what, "torn", 4)) {
		f->res->torn_bytes += len;
		say(f, STORE_FSCK_INFO, "pack %08x: %llu bytes at %llu: %s (an unfinished write or a truncation)",
		    pack, (unsigned long long)len, (unsigned long long)off, what);
		return;
	}
	f->res->bad_records++;
	say(f, f->repair ? STORE_FSCK_INFO : STORE_FSCK_ERROR, "pack %08x: %llu bytes at %llu: %s%s", pack,
	    (unsigned long long)len, (unsigned long long)off, what,
	    f->repair ? " (left out of the index; gc deletes it)" : "");
}

static int check_packs(struct fsck *f)
{
	cleanup_free uint32_t *packs = NULL;
	size_t n;
	int r = store_pack_list(f->s, &packs, &n);
	if (r < 0)
		return r;
	struct store_scan_cb cb = { .rec = scan_rec, .bad = scan_bad, .ctx = f, .verify_payload = true };
	for (size_t i = 0; i < n; i++) {
		int fd = store_pack_fd(f->s, packs[i]);
		if (fd < 0) {
			f->res->bad_records++;
			say(f, STORE_FSCK_ERROR, "pack %08x: unreadable pack header (%s)", packs[i], strerror(-fd));
			continue;
		}
		uint64_t end, torn;
		r = store_pack_scan(f->s, fd, packs[i], STORE_PACK_HDR, &cb, &end, &torn);
		if (r < 0)
			return r;
	}
	return 0;
}

static int check_index(struct fsck *f)
{
	struct store *s = f->s;
	uint64_t nslots = store_index_nslots(s);
	f->good = calloc(nslots / 8 + 1, 1);
	cleanup_free uint8_t *buf = malloc(STORE_RECORD_MAX);
	if (!f->good || !buf)
		return -ENOMEM;
	for (uint64_t i = 0; i < nslots; i++) {
		struct store_loc loc;
		uint32_t fp;
		if (!store_index_slot(s, i, &loc, &fp))
			continue;
		const char *why = NULL;
		int fd = store_pack_fd(s, loc.pack);
		struct store_rec rec;
		if (loc.pack == STORE_PACK_CONFLICT) {
			why = "two different records claiming it (a collision met a crash): neither is used";
		} else if (fd == -ENOENT) {
			why = "a pack that does not exist";
		} else if (fd < 0) {
			why = "an unreadable pack";
		} else {
			int r = store_pack_read(s, fd, loc.off, &rec, buf, STORE_RECORD_MAX, true);
			if (r == -ENODATA)
				why = "past the end of its pack";
			else if (r < 0)
				why = "a damaged record";
			else if (!store_index_slot_is(s, i, &rec))
				why = "a record of another key";
		}
		if (why) {
			f->res->index_errors++;
			/* The slot holds the hash's first 4 bytes, not the key. */
			say(f, STORE_FSCK_ERROR, "index: %s %08x... (slot %llu) points to %s (pack %08x at %llu)",
			    kind_name(loc.kind), fp, (unsigned long long)i, why, loc.pack,
			    (unsigned long long)loc.off);
			continue;
		}
		f->good[i / 8] |= 1 << (i % 8);
	}
	return 0;
}

/* Whether key's index slot was verified; describes the failure if not. */
static bool key_good(struct fsck *f, uint8_t kind, const struct store_key *k, const char **why)
{
	struct store_loc loc;
	uint64_t slot;
	if (store_index_find(f->s, kind, k, STORE_FIND_VERIFY, &loc, &slot) < 0) {
		*why = "missing";
		return false;
	}
	if (!(f->good[slot / 8] & (1 << (slot % 8)))) {
		*why = loc.pack == STORE_PACK_CONFLICT ? "in conflict" : "damaged";
		return false;
	}
	return true;
}

static int check_roots(struct fsck *f)
{
	struct store *s = f->s;
	char **names;
	size_t n;
	struct corral_error e = { 0 };
	if (store_root_list(s, &names, &n, &e) < 0)
		return -e.code;
	for (size_t i = 0; i < n; i++) {
		struct store_root root;
		f->res->roots++;
		int rr = store_root_read(s, names[i], &root, &e);
		if (rr == -ENOENT) {
			f->res->roots--; /* removed since the listing */
			free(names[i]);
			continue;
		}
		if (rr < 0) {
			f->res->bad_roots++;
			say(f, STORE_FSCK_LOST, "root %s: %s", names[i], e.msg);
			free(names[i]);
			continue;
		}
		bool bad = false;
		for (size_t j = 0; j < root.n; j++) {
			char ks[STORE_KEY_STR_MAX];
			const char *why;
			const char *label = root.e[j].label;
			if (!key_good(f, STORE_KIND_RECIPE, &root.e[j].recipe, &why)) {
				say(f, STORE_FSCK_LOST, "root %s: file %s: its recipe %s is %s", names[i], label,
				    store_key_str(&root.e[j].recipe, ks), why);
				f->res->lost_files++;
				bad = true;
				continue;
			}
			struct store_recipe rcp;
			if (store_get_recipe(s, &root.e[j].recipe, &rcp, &e) < 0) {
				say(f, STORE_FSCK_LOST, "root %s: file %s: %s", names[i], label, e.msg);
				f->res->lost_files++;
				bad = true;
				continue;
			}
			size_t lost = 0;
			uint64_t lost_bytes = 0;
			for (size_t b = 0; b < rcp.n; b++) {
				if (key_good(f, STORE_KIND_BLOCK, &rcp.e[b].key, &why))
					continue;
				if (lost++ < 4)
					say(f, STORE_FSCK_LOST, "root %s: file %s: block %zu (bytes %llu-%llu, %s) is %s",
					    names[i], label, b, (unsigned long long)b * STORE_BLOCK_SIZE,
					    (unsigned long long)b * STORE_BLOCK_SIZE + rcp.e[b].len - 1,
					    store_key_str(&rcp.e[b].key, ks), why);
				lost_bytes += rcp.e[b].len;
			}
			if (lost > 4)
				say(f, STORE_FSCK_LOST, "root %s: file %s: %zu blocks lost in all (%llu bytes)", names[i],
				    label, lost, (unsigned long long)lost_bytes);
			if (lost) {
				f->res->lost_files++;
				bad = true;
			}
			store_recipe_release(&rcp);
		}
		f->res->bad_roots += bad;
		store_root_release(&root);
		free(names[i]);
	}
	free(names);
	return 0;
}

static void dir_leftovers(struct fsck *f)
{
	/* Temp files of a commit killed before its rename: harmless. */
	DIR *d = dir_stream_at(f->s->rootsfd);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] == '.' && strstr(e->d_name, ".tmp."))
			say(f, STORE_FSCK_INFO, "roots: %s is an unfinished commit%s", e->d_name,
			    f->repair && unlinkat(f->s->rootsfd, e->d_name, 0) == 0 ? " (removed)" : "");
	closedir(d);
}

int store_fsck(struct store *s, unsigned flags, store_report_fn report, void *ctx, struct store_fsck_result *ret,
	       struct corral_error *err)
{
	struct store_fsck_result res = { 0 };
	struct fsck f = { .s = s, .report = report, .ctx = ctx, .res = &res, .repair = flags & STORE_FSCK_REPAIR };
	/* No collection half-way (gc.run), no write transaction (gc.lock). */
	int r = store_lock_maintenance(s, f.repair, "fsck", err);
	if (r < 0)
		return r;
	if (s->rebuilt[0])
		say(&f, STORE_FSCK_INFO, "index: rebuilt from the packs when the store was opened (%s)", s->rebuilt);
	if (f.repair) {
		r = store_index_rebuild(s, NULL, NULL, err);
		if (r < 0)
			goto out;
		res.repaired = true;
		say(&f, STORE_FSCK_INFO, "index rebuilt from the packs' valid records");
	}
	r = check_packs(&f);
	if (r == 0)
		r = check_index(&f);
	if (r == 0)
		r = check_roots(&f);
	if (r == 0)
		dir_leftovers(&f);
	if (r < 0)
		err_set(err, -r, "check the store");
out:
	free(f.good);
	store_index_unlock(s);
	flock(s->gc_lock_fd, LOCK_UN);
	flock(s->gc_run_fd, LOCK_UN);
	if (r == 0 && ret)
		*ret = res;
	return r;
}

int store_stats(struct store *s, struct store_stats *ret, struct corral_error *err)
{
	struct store_stats st = { 0 };
	int r = store_packs_size(s, &st.packs, &st.stored_bytes);
	if (r < 0)
		return err_set(err, -r, "list the store's packs");
	r = store_index_lock(s, false);
	if (r < 0)
		return err_set(err, -r, "lock the store index");
	uint64_t nslots = store_index_nslots(s);
	for (uint64_t i = 0; i < nslots; i++) {
		struct store_loc loc;
		if (!store_index_slot(s, i, &loc, NULL))
			continue;
		if (loc.kind == STORE_KIND_BLOCK) {
			st.blocks++;
			st.unique_bytes += loc.len;
		} else {
			st.recipes++;
		}
	}
	st.index_bytes = s->map_len;
	store_index_unlock(s);
	char **names;
	size_t nr;
	r = store_root_list(s, &names, &nr, err);
	if (r < 0)
		return r;
	st.roots = nr;
	for (size_t i = 0; i < nr; i++) {
		struct store_root root;
		if (store_root_read(s, names[i], &root, NULL) == 0) {
			for (size_t j = 0; j < root.n; j++) {
				struct store_recipe rcp;
				if (store_get_recipe(s, &root.e[j].recipe, &rcp, NULL) == 0) {
					st.logical_bytes += rcp.size;
					store_recipe_release(&rcp);
				}
			}
			store_root_release(&root);
		}
		free(names[i]);
	}
	free(names);
	*ret = st;
	return 0;
}
