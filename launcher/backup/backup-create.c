/* corral backup: a snapshot of a container as a backup stream (backup.h).
 *
 * The stream names blocks and recipes by this store's keys (seeded with
 * its secret seed) as opaque ids; the receiver maps them to its own.  Each
 * block goes once per stream; with --since, a block that the base
 * snapshot's recipes already use is named by its place there (entry index
 * in the base manifest, block index in that entry's recipe, length)
 * instead of being carried. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "backup/backup.h"
#include "cleanup.h"
#include "container/container-config.h"
#include "container/state.h"
#include "fileio.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_store(struct store **ret, struct corral_error *err)
{
	char dir[PATH_MAX];
	int r = state_store_dir(dir, sizeof(dir), err);
	return r < 0 ? r : store_open(dir, STORE_CREATE, ret, err);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The snapshot's root and its manifest's raw encoding. */
static int read_snapshot(struct store *s, const char *name, const char *tag, struct store_root *root,
			 uint8_t **mbuf, size_t *mlen, struct corral_error *err)
{
	char rn[256];
	int r = snapshot_root_name(rn, sizeof(rn), name, tag, err);
	if (r < 0)
		return r;
	r = store_root_read(s, rn, root, err);
	if (r == -ENOENT)
		return err_plain(err, ENOENT, "container '%s' has no snapshot '%s'", name, tag);
	if (r < 0)
		return r;
	if (root->n == 0 || strcmp(root->e[0].label, "manifest")) {
		store_root_release(root);
		return err_plain(err, EINVAL, "snapshot '%s' of '%s' has no manifest", tag, name);
	}
	struct store_recipe rec = { 0 };
	r = store_get_recipe(s, &root->e[0].recipe, &rec, err);
	if (r == 0 && rec.size > BSTREAM_MANIFEST_MAX)
		r = err_plain(err, EFBIG, "the manifest of snapshot '%s' of '%s' is too large", tag, name);
	uint8_t *buf = NULL;
	if (r == 0 && !(buf = malloc(rec.size ? rec.size : 1)))
		r = err_set(err, ENOMEM, "manifest");
	if (r == 0)
		r = store_get_blocks(s, rec.e, rec.n, buf, err);
	if (r == 0) {
		*mbuf = buf;
		*mlen = rec.size;
	} else {
		free(buf);
		store_root_release(root);
	}
	store_recipe_release(&rec);
	return r < 0 ? err_wrap(err, "snapshot '%s' of '%s'", tag, name) : 0;
}

static void id_of(const struct store_root *root, const uint8_t *mbuf, size_t mlen, uint8_t ret[16])
{
	size_t pl = strlen(BACKUP_ID_LABEL);
	for (size_t i = 1; i < root->n; i++) {
		const char *l = root->e[i].label;
		if (strncmp(l, BACKUP_ID_LABEL, pl) || strlen(l) != pl + 32)
			continue;
		bool ok = true;
		for (int k = 0; k < 16 && ok; k++) {
			int hi = hexval(l[pl + 2 * k]), lo = hexval(l[pl + 2 * k + 1]);
			ok = hi >= 0 && lo >= 0;
			ret[k] = (uint8_t)(hi << 4 | lo);
		}
		if (ok)
			return;
	}
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits(mbuf, mlen));
	memcpy(ret, c.digest, 16);
}

int backup_snapshot_id(struct store *s, const char *name, const char *tag, uint8_t ret[16],
		       struct corral_error *err)
{
	struct store_root root;
	uint8_t *mbuf;
	size_t mlen;
	int r = read_snapshot(s, name, tag, &root, &mbuf, &mlen, err);
	if (r < 0)
		return r;
	id_of(&root, mbuf, mlen, ret);
	free(mbuf);
	store_root_release(&root);
	return 0;
}

int backup_last_tag(const char *name, const char *except, char ret[SNAPSHOT_TAG_MAX + 1], struct corral_error *err)
{
	char **tags;
	size_t n;
	int r = snapshot_list(name, &tags, &n, err);
	if (r < 0)
		return r;
	ret[0] = '\0';
	/* Tags sort by time: backup-<yyyymmddThhmmssZ>[-N]. */
	for (size_t i = 0; i < n; i++) {
		if (!strncmp(tags[i], BACKUP_TAG_PREFIX, strlen(BACKUP_TAG_PREFIX)) && (!except || strcmp(tags[i], except)))
			snprintf(ret, SNAPSHOT_TAG_MAX + 1, "%s", tags[i]);
		free(tags[i]);
	}
	free(tags);
	if (!ret[0])
		return err_plain(err, ENOENT, "container '%s' has no earlier backup snapshot (backup-*) for --since last",
				 name);
	return 0;
}

/* Where each block of the base's recipes is: key -> (entry, block, len),
 * packed into the map's value (hash[0..8) entry, hash[8..16) block, n len). */
static int base_index(struct store *s, const struct manifest *m, struct bkeymap *ret, struct corral_error *err)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct manifest_entry *e = &m->e[i];
		if (!(e->flags & MANIFEST_HAS_RECIPE))
			continue;
		struct store_recipe rec;
		int r = store_get_recipe(s, &e->recipe, &rec, err);
		if (r < 0)
			return err_wrap(err, "the base's recipe of '%s'", e->path);
		for (size_t j = 0; j < rec.n && r == 0; j++) {
			if (bkeymap_get(ret, &rec.e[j].key))
				continue;
			struct store_key v = { .n = rec.e[j].len };
			uint64_t ent = i, blk = j;
			memcpy(v.hash, &ent, 8);
			memcpy(v.hash + 8, &blk, 8);
			if (bkeymap_put(ret, &rec.e[j].key, &v, 0) < 0)
				r = err_set(err, ENOMEM, "base index");
		}
		store_recipe_release(&rec);
		if (r < 0)
			return r;
	}
	return 0;
}

struct body {
	struct store *s;
	struct bstream_writer *w;
	struct bkeymap sent, recipes, base;
	uint8_t *block;
	struct backup_result *res;
	const struct backup_options *o;
};

static int send_recipe(struct body *b, const struct manifest_entry *e, uint64_t *done, struct corral_error *err)
{
	if (bkeymap_get(&b->recipes, &e->recipe))
		return 0;
	struct store_recipe rec;
	int r = store_get_recipe(b->s, &e->recipe, &rec, err);
	if (r < 0)
		return err_wrap(err, "the recipe of '%s'", e->path);
	for (size_t j = 0; j < rec.n && r == 0; j++) {
		const struct store_recipe_entry *re = &rec.e[j];
		*done += re->len;
		if (bkeymap_get(&b->sent, &re->key))
			continue;
		struct bkeymap_slot *bs = bkeymap_get(&b->base, &re->key);
		if (bs && bs->val.n == re->len) {
			struct bstream_base base = { .key = re->key, .len = re->len };
			memcpy(&base.entry, bs->val.hash, 8);
			memcpy(&base.block, bs->val.hash + 8, 8);
			r = bstream_write_base(b->w, &base, err);
			b->res->blocks_base++;
		} else {
			size_t len;
			r = store_get_block(b->s, &re->key, b->block, &len, err);
			if (r == 0 && len != re->len)
				r = err_plain(err, EIO, "block %zu of '%s' has %zu bytes, its recipe says %u", j, e->path,
					      len, re->len);
			if (r == 0)
				r = bstream_write_block(b->w, &re->key, b->block, len, err);
			b->res->blocks_sent++;
		}
		if (r == 0 && bkeymap_put(&b->sent, &re->key, NULL, 0) < 0)
			r = err_set(err, ENOMEM, "backup");
		if (r == 0 && b->o->progress)
			b->o->progress(b->o->progress_ctx, *done, b->res->total_bytes);
	}
	if (r == 0)
		r = bstream_write_recipe(b->w, &e->recipe, &rec, err);
	if (r == 0 && bkeymap_put(&b->recipes, &e->recipe, NULL, 0) < 0)
		r = err_set(err, ENOMEM, "backup");
	store_recipe_release(&rec);
	return r;
}

/* The stream of snapshot res->tag (and base res->since) of o->name. */
static int write_stream(struct store *s, const struct backup_options *o, struct backup_result *res,
			struct corral_error *err)
{
	const char *name = o->name;
	struct bstream_header h = { .created = (int64_t)time(NULL) };
	snprintf(h.container, sizeof(h.container), "%s", name);
	snprintf(h.tag, sizeof(h.tag), "%s", res->tag);
	snprintf(h.since_tag, sizeof(h.since_tag), "%s", res->since);
	snprintf(h.version, sizeof(h.version), "%s", PACKAGE_VERSION);
	char cfgpath[PATH_MAX];
	struct container_config cfg;
	int r = state_path(cfgpath, sizeof(cfgpath), name, "config", err);
	if (r == 0)
		r = config_load(cfgpath, &cfg, err);
	if (r < 0)
		return r;
	snprintf(h.template_name, sizeof(h.template_name), "%s", cfg.template_name);
	config_release(&cfg);
	r = file_read_all(cfgpath, &h.config, &h.config_len, err);
	if (r == 0)
		r = template_digest(state_root(), h.template_name, h.template_digest, err);
	if (r < 0) {
		bstream_header_release(&h);
		return r;
	}

	struct store_root root;
	uint8_t *mbuf = NULL;
	size_t mlen = 0;
	struct manifest m = { 0 }, bm = { 0 };
	struct body b = { .s = s, .res = res, .o = o };
	struct bstream_writer w = { .fd = -1 };
	bool have_root = false;
	r = read_snapshot(s, name, res->tag, &root, &mbuf, &mlen, err);
	if (r == 0) {
		have_root = true;
		id_of(&root, mbuf, mlen, h.backup_id);
		r = manifest_parse(mbuf, mlen, &m, err);
	}
	if (r == 0 && res->since[0]) {
		r = backup_snapshot_id(s, name, res->since, h.since_id, err);
		if (r == 0)
			r = snapshot_read_manifest(s, name, res->since, &bm, err);
		if (r == 0)
			r = base_index(s, &bm, &b.base, err);
	}
	for (size_t i = 0; r == 0 && i < m.n; i++)
		if (m.e[i].flags & MANIFEST_HAS_RECIPE) {
			res->files++;
			res->total_bytes += m.e[i].size;
		}
	if (r == 0 && !(b.block = malloc(STORE_BLOCK_SIZE)))
		r = err_set(err, ENOMEM, "backup");
	if (r == 0)
		r = bstream_writer_open(&w, o->out_fd, o->level, err);
	b.w = &w;
	if (r == 0)
		r = bstream_write_header(&w, &h, err);
	if (r == 0)
		r = bstream_write_manifest(&w, mbuf, mlen, err);
	uint64_t done = 0;
	for (size_t i = 0; r == 0 && i < m.n; i++)
		if (m.e[i].flags & MANIFEST_HAS_RECIPE)
			r = send_recipe(&b, &m.e[i], &done, err);
	if (r == 0)
		r = bstream_writer_finish(&w, err);
	res->content_bytes = w.content_bytes;
	res->stream_bytes = w.stream_bytes;
	bstream_writer_release(&w);
	free(b.block);
	bkeymap_release(&b.sent);
	bkeymap_release(&b.recipes);
	bkeymap_release(&b.base);
	manifest_release(&m);
	manifest_release(&bm);
	free(mbuf);
	if (have_root)
		store_root_release(&root);
	bstream_header_release(&h);
	return r;
}

int backup_create(const struct backup_options *o, struct backup_result *res, struct corral_error *err)
{
	memset(res, 0, sizeof(*res));
	double t0 = now_s();
	const char *name = o->name;
	char cdir[PATH_MAX];
	int r = state_path(cdir, sizeof(cdir), name, NULL, err);
	if (r < 0)
		return r;
	if (access(cdir, F_OK) < 0)
		return err_plain(err, ENOENT, "no such container: %s", name);
	if (o->snapshot) {
		r = snapshot_tag_validate(o->snapshot, err);
		if (r < 0)
			return r;
		snprintf(res->tag, sizeof(res->tag), "%s", o->snapshot);
	}
	if (o->since && strcmp(o->since, "last")) {
		r = snapshot_tag_validate(o->since, err);
		if (r < 0)
			return r;
		snprintf(res->since, sizeof(res->since), "%s", o->since);
	}
	struct store *s;
	r = open_store(&s, err);
	if (r < 0)
		return r;
	if (res->since[0]) {
		/* Checked before a snapshot is taken for nothing. */
		uint8_t id[16];
		r = backup_snapshot_id(s, name, res->since, id, err);
		if (r < 0) {
			store_close(s);
			return err_wrap(err, "--since");
		}
	}
	if (!o->snapshot) {
		time_t t = time(NULL);
		struct tm tm;
		char stamp[32];
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime_r(&t, &tm));
		/* Two backups in one second get -2, -3, ... */
		for (int k = 1; k < 100; k++) {
			if (k == 1)
				snprintf(res->tag, sizeof(res->tag), BACKUP_TAG_PREFIX "%s", stamp);
			else
				snprintf(res->tag, sizeof(res->tag), BACKUP_TAG_PREFIX "%s-%d", stamp, k);
			struct snapshot_result sr;
			r = snapshot_create(name, res->tag, &sr, err);
			if (r != -EEXIST)
				break;
		}
		if (r < 0) {
			store_close(s);
			return err_wrap(err, "backup of '%s'", name);
		}
		res->took_snapshot = true;
	}
	if (o->since && !strcmp(o->since, "last")) {
		r = backup_last_tag(name, res->tag, res->since, err);
		if (r == -ENOENT && o->last_or_full)
			r = 0; /* the first backup of a container: full */
	}
	if (r == 0 && !strcmp(res->since, res->tag))
		r = err_plain(err, EINVAL, "a backup of '%s' cannot be incremental to itself ('%s')", res->tag, name);
	if (r == 0)
		r = write_stream(s, o, res, err);
	store_close(s);
	if (r < 0 && res->took_snapshot)
		snapshot_remove(name, res->tag, NULL);
	res->seconds = now_s() - t0;
	return r < 0 ? err_wrap(err, "backup of '%s'", name) : 0;
}
