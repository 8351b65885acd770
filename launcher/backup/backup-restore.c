/* corral restore and corral verify (backup.h).
 *
 * Pass 1 reads the whole stream and checks everything, changing nothing:
 * checksums and structure (the reader), every block defined once, every
 * RECIPE's blocks defined before it, every manifest recipe defined by END
 * with the size the manifest says, and for a restore the target (template
 * present with the stream's digest; a free name, or for an incremental
 * stream a stopped container holding the base with the stream's since id
 * and every BASE reference in range with the right length).  A stream
 * from a pipe is spooled meanwhile into a nameless O_TMPFILE in the state
 * root (nothing visible; gone on a crash); a regular file is read again.
 * Pass 2 re-reads it (its END checksum must equal pass 1's), puts blocks
 * and recipes under this store's keys, commits the snapshot's root
 * (labelled with the stream's backup id), then creates the container or
 * rolls it back; a failure removes what pass 2 made.
 *
 * CORRAL_TEST_FAIL_AT=blocks|root|create|upper makes pass 2 fail at that
 * point (after the blocks, the root commit, the container's creation, the
 * upper's build): tests/launcher-backup.test checks nothing is left.
 *
 * Not atomic against a crash in pass 2 (as corral clone is not): a kill -9
 * after the root's commit leaves the snapshot without its container, and
 * one during the container's creation a container without its tree;
 * blocks put before a crash and never named are freed by store gc. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/backup.h"
#include "cleanup.h"
#include "container/container-config.h"
#include "container/state.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void backup_info_release(struct backup_info *i)
{
	bstream_header_release(&i->h);
}

/* The receiver's base of an incremental stream. */
struct base {
	struct manifest m;
	struct store_recipe *rec;	/* per entry, loaded on first use */
	bool *loaded;
};

static void base_release(struct base *b)
{
	for (size_t i = 0; b->rec && i < b->m.n; i++)
		store_recipe_release(&b->rec[i]);
	free(b->rec);
	free(b->loaded);
	manifest_release(&b->m);
}

/* The local block a BASE record names; -EBADMSG if out of range. */
static int base_block(struct store *s, struct base *b, const struct bstream_base *ref, struct store_key *ret,
		      struct corral_error *err)
{
	if (ref->entry >= b->m.n || !(b->m.e[ref->entry].flags & MANIFEST_HAS_RECIPE))
		return err_plain(err, EBADMSG, "backup stream: a BASE record names entry %llu of the base, "
				 "which has no content there (the base has %zu entries)",
				 (unsigned long long)ref->entry, b->m.n);
	size_t i = (size_t)ref->entry;
	if (!b->loaded[i]) {
		int r = store_get_recipe(s, &b->m.e[i].recipe, &b->rec[i], err);
		if (r < 0)
			return err_wrap(err, "the base's recipe of '%s'", b->m.e[i].path);
		b->loaded[i] = true;
	}
	if (ref->block >= b->rec[i].n || b->rec[i].e[ref->block].len != ref->len)
		return err_plain(err, EBADMSG, "backup stream: a BASE record names block %llu (%u bytes) of '%s', "
				 "which has %zu blocks there: not the base this stream was made against",
				 (unsigned long long)ref->block, ref->len, b->m.e[i].path, b->rec[i].n);
	*ret = b->rec[i].e[ref->block].key;
	return 0;
}

struct scan {
	struct backup_info *info;
	struct manifest m;		/* with the sender's recipe keys */
	struct bkeymap blocks;		/* sender block key -> length */
	struct bkeymap recipes;		/* sender recipe key -> size */
	uint8_t end_hash[16];
	/* Restore only (NULL for verify): */
	struct store *s;
	struct base *base;
	int (*target_check)(struct scan *sc, struct corral_error *err);
	const struct backup_restore_options *o;
	struct container_config *cfg;	/* full restore: the config to create */
};

static int scan_record(struct scan *sc, uint32_t type, const uint8_t *p, size_t len, struct corral_error *err)
{
	switch (type) {
	case BREC_HEADER: {
		int r = bstream_parse_header(p, len, &sc->info->h, err);
		if (r == 0 && sc->target_check)
			r = sc->target_check(sc, err);
		return r;
	}
	case BREC_MANIFEST: {
		int r = manifest_parse(p, len, &sc->m, err);
		if (r < 0)
			return err_wrap(err, "backup stream");
		sc->info->entries = sc->m.n;
		for (size_t i = 0; i < sc->m.n; i++)
			if (sc->m.e[i].flags & MANIFEST_HAS_RECIPE) {
				sc->info->files++;
				sc->info->total_bytes += sc->m.e[i].size;
			}
		return 0;
	}
	case BREC_BLOCK: {
		struct store_key k;
		const uint8_t *data;
		size_t dl;
		int r = bstream_parse_block(p, len, &k, &data, &dl, err);
		if (r < 0)
			return r;
		if (bkeymap_get(&sc->blocks, &k))
			return err_plain(err, EBADMSG, "backup stream: a block is defined twice");
		return bkeymap_put(&sc->blocks, &k, NULL, dl) < 0 ? err_set(err, ENOMEM, "restore") : 0;
	}
	case BREC_BASE: {
		struct bstream_base b;
		int r = bstream_parse_base(p, len, &b, err);
		if (r < 0)
			return r;
		if (!bstream_header_incremental(&sc->info->h))
			return err_plain(err, EBADMSG, "backup stream: a BASE record in a full backup");
		if (bkeymap_get(&sc->blocks, &b.key))
			return err_plain(err, EBADMSG, "backup stream: a block is defined twice");
		struct store_key local;
		if (sc->base && (r = base_block(sc->s, sc->base, &b, &local, err)) < 0)
			return r;
		return bkeymap_put(&sc->blocks, &b.key, NULL, b.len) < 0 ? err_set(err, ENOMEM, "restore") : 0;
	}
	case BREC_RECIPE: {
		struct store_key k;
		struct store_recipe rec;
		int r = bstream_parse_recipe(p, len, &k, &rec, err);
		if (r < 0)
			return r;
		for (size_t i = 0; i < rec.n && r == 0; i++) {
			struct bkeymap_slot *b = bkeymap_get(&sc->blocks, &rec.e[i].key);
			if (!b)
				r = err_plain(err, EBADMSG, "backup stream: a recipe names a block not sent before it");
			else if (b->aux != rec.e[i].len)
				r = err_plain(err, EBADMSG, "backup stream: a recipe names a block of %u bytes, which has %llu",
					      rec.e[i].len, (unsigned long long)b->aux);
		}
		if (r == 0 && bkeymap_get(&sc->recipes, &k))
			r = err_plain(err, EBADMSG, "backup stream: a recipe is defined twice");
		if (r == 0 && bkeymap_put(&sc->recipes, &k, NULL, rec.size) < 0)
			r = err_set(err, ENOMEM, "restore");
		store_recipe_release(&rec);
		return r;
	}
	}
	return err_plain(err, EBADMSG, "backup stream: unexpected record type %u", type);
}

/* Pass 1 over `fd` (copied to tee_fd if >= 0). */
static int scan_stream(struct scan *sc, int fd, int tee_fd, struct corral_error *err)
{
	struct bstream_reader rd;
	int r = bstream_reader_open(&rd, bstream_read_fd, &fd, tee_fd, err);
	uint32_t type;
	const uint8_t *p;
	size_t len;
	while (r == 0 && (r = bstream_next(&rd, &type, &p, &len, err)) == 1)
		r = scan_record(sc, type, p, len, err);
	if (r == 0) {
		for (size_t i = 0; i < sc->m.n && r == 0; i++) {
			const struct manifest_entry *e = &sc->m.e[i];
			if (!(e->flags & MANIFEST_HAS_RECIPE))
				continue;
			struct bkeymap_slot *rs = bkeymap_get(&sc->recipes, &e->recipe);
			if (!rs)
				r = err_plain(err, EBADMSG, "backup stream: the recipe of '%s' is missing", e->path);
			else if (rs->aux != e->size)
				r = err_plain(err, EBADMSG, "backup stream: the recipe of '%s' has %llu bytes, the manifest "
					      "says %llu", e->path, (unsigned long long)rs->aux, (unsigned long long)e->size);
		}
		memcpy(sc->end_hash, rd.end_hash, 16);
		memcpy(sc->info->counts, rd.counts, sizeof(rd.counts));
		sc->info->content_bytes = rd.content_bytes;
		sc->info->compressed_bytes = rd.compressed_bytes;
	}
	bstream_reader_release(&rd);
	return r;
}

static void scan_release(struct scan *sc)
{
	manifest_release(&sc->m);
	bkeymap_release(&sc->blocks);
	bkeymap_release(&sc->recipes);
}

int backup_verify(int fd, struct backup_info *ret, struct corral_error *err)
{
	memset(ret, 0, sizeof(*ret));
	double t0 = now_s();
	struct scan sc = { .info = ret };
	int r = scan_stream(&sc, fd, -1, err);
	scan_release(&sc);
	ret->seconds = now_s() - t0;
	if (r < 0)
		backup_info_release(ret);
	return r;
}

/* ---- restore ---- */

static int root_exists(struct store *s, const char *name, const char *tag, struct corral_error *err)
{
	char rn[256];
	int r = snapshot_root_name(rn, sizeof(rn), name, tag, err);
	if (r < 0)
		return r;
	struct store_root root;
	if (store_root_read(s, rn, &root, NULL) == 0) {
		store_root_release(&root);
		return 1;
	}
	return 0;
}

/* The stream's config for the new container: parsed by the container
 * module's own validating parser, renamed. */
static int load_config(struct scan *sc, struct corral_error *err)
{
	const struct bstream_header *h = &sc->info->h;
	cleanup_close int mfd = memfd_create("corral-restore-config", MFD_CLOEXEC);
	if (mfd < 0 || write(mfd, h->config, h->config_len) != (ssize_t)h->config_len)
		return err_set(err, errno ? errno : EIO, "staging the stream's config");
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
	struct container_config *c = sc->cfg;
	int r = config_load(path, c, err);
	if (r < 0)
		return err_wrap(err, "the config in the backup stream");
	bool own_hostname = !strcmp(c->hostname, c->name);
	snprintf(c->name, sizeof(c->name), "%s", sc->info->target);
	if (own_hostname || strlen(c->name) <= HOSTNAME_MAX_LEN)
		snprintf(c->hostname, sizeof(c->hostname), "%s", c->name);
	/* Its own user namespace range here: the upper holds container ids
	 * (cowfs shifts them at the mount), so any range is right. */
	c->userns_range_given = false;
	if (strcmp(c->template_name, h->template_name))
		return err_plain(err, EBADMSG, "backup stream: the config names template '%s', the header '%s'",
				 c->template_name, h->template_name);
	if (!c->store)
		return err_plain(err, ENOTSUP, "the backed-up container kept its files out of the block store "
				 "(store = no): restore needs a store-backed container");
	if (c->nmounts && !sc->o->allow_mounts) {
		char list[1024] = "";
		for (int i = 0; i < c->nmounts; i++) {
			size_t l = strlen(list);
			snprintf(list + l, sizeof(list) - l, "%s%s:%s", i ? ", " : "", c->mounts[i].source,
				 c->mounts[i].target);
		}
		return err_plain(err, EPERM, "the container's config has bind mounts of the sender's host paths (%s): "
				 "restore with --allow-mounts to keep them", list);
	}
	/* A stream may come from anywhere: it never widens what the container
	 * may do on this host unless the operator says so. */
	capmask_t extra = c->caps & ~caps_default();
	if ((extra || c->seccomp != SECCOMP_DEFAULT) && !sc->o->allow_privileges) {
		char caps[1024] = "";
		if (extra)
			caps_format(extra, caps, sizeof(caps));
		return err_plain(err, EPERM,
				 "the container's config gives it more than corral's defaults (%s%s%s): restore "
				 "with --allow-privileges to keep that",
				 extra ? "capabilities " : "", caps,
				 c->seccomp != SECCOMP_DEFAULT ? (extra ? ", seccomp unconfined" : "seccomp unconfined") : "");
	}
	return 0;
}

static int target_check(struct scan *sc, struct corral_error *err)
{
	struct backup_info *info = sc->info;
	const struct bstream_header *h = &info->h;
	const char *target = sc->o->as ? sc->o->as : h->container;
	int r = name_validate("container", target, err);
	if (r < 0)
		return r;
	/* name_validate bounds it to CORRAL_NAME_MAX. */
	memcpy(info->target, target, strnlen(target, CORRAL_NAME_MAX));
	info->target[strnlen(target, CORRAL_NAME_MAX)] = '\0';
	uint8_t d[16];
	char want[33], have[33];
	bstream_hex(h->template_digest, 16, want);
	/* The built-in default template is made on first use, as create
	 * makes it; any other must have been imported here. */
	if (!strcmp(h->template_name, TEMPLATE_DEFAULT) && (r = template_ensure_default(state_root(), err)) < 0)
		return err_wrap(err, "prepare the default template");
	r = template_digest(state_root(), h->template_name, d, err);
	if (r == -ENOENT)
		return err_plain(err, ENOENT, "the stream needs template '%s' (digest %s), which this host does not have",
				 h->template_name, want);
	if (r < 0)
		return r;
	bstream_hex(d, 16, have);
	if (memcmp(d, h->template_digest, 16))
		return err_plain(err, EINVAL, "template '%s' differs here: the stream's has digest %s, this host's %s",
				 h->template_name, want, have);
	char cdir[PATH_MAX];
	r = state_path(cdir, sizeof(cdir), target, NULL, err);
	if (r < 0)
		return r;
	bool exists = access(cdir, F_OK) == 0;
	if (!bstream_header_incremental(h) && exists)
		return err_plain(err, EEXIST, "container '%s' already exists (restore --as NAME gives another name)",
				 target);
	if (bstream_header_incremental(h)) {
		if (!exists)
			return err_plain(err, ENOENT, "the stream is incremental to '%s' of '%s': restore that first "
					 "(no container '%s' here)", h->since_tag, h->container, target);
		struct container_state st;
		r = state_load(target, &st, err);
		if (r < 0)
			return r;
		if (state_init_alive(&st) || state_cowfs_alive(&st))
			return err_plain(err, EBUSY, "container '%s' is running: stop it before an incremental restore",
					 target);
	}
	r = root_exists(sc->s, target, h->tag, err);
	if (r < 0)
		return r;
	if (r == 1)
		return err_plain(err, EEXIST, "container '%s' already has a snapshot '%s'", target, h->tag);
	if (!bstream_header_incremental(h))
		return load_config(sc, err);
	uint8_t id[16];
	r = backup_snapshot_id(sc->s, target, h->since_tag, id, err);
	if (r < 0)
		return err_wrap(err, "the stream is incremental to '%s'", h->since_tag);
	if (memcmp(id, h->since_id, 16)) {
		char a[33], b[33];
		bstream_hex(h->since_id, 16, a);
		bstream_hex(id, 16, b);
		return err_plain(err, EINVAL, "wrong base: the stream is incremental to backup %s ('%s'), but snapshot "
				 "'%s' of '%s' here is backup %s", a, h->since_tag, h->since_tag, target, b);
	}
	r = snapshot_read_manifest(sc->s, target, h->since_tag, &sc->base->m, err);
	if (r < 0)
		return r;
	sc->base->rec = calloc(sc->base->m.n ? sc->base->m.n : 1, sizeof(*sc->base->rec));
	sc->base->loaded = calloc(sc->base->m.n ? sc->base->m.n : 1, sizeof(*sc->base->loaded));
	if (!sc->base->rec || !sc->base->loaded)
		return err_set(err, ENOMEM, "restore");
	return 0;
}

static bool fail_at(const char *point)
{
	const char *v = getenv("CORRAL_TEST_FAIL_AT");
	return v && !strcmp(v, point);
}

static int injected(const char *point, struct corral_error *err)
{
	return err_plain(err, EIO, "injected failure at '%s' (CORRAL_TEST_FAIL_AT)", point);
}

/* Pass 2, the store part: blocks, recipes, the manifest with local keys,
 * the snapshot's root.  Inside a store transaction. */
static int apply_stream(struct scan *sc, int fd, const char *root_name, struct corral_error *err)
{
	struct bkeymap blocks = { 0 }, recipes = { 0 };
	struct bstream_reader rd;
	int r = bstream_reader_open(&rd, bstream_read_fd, &fd, -1, err);
	uint32_t type;
	const uint8_t *p;
	size_t len;
	while (r == 0 && (r = bstream_next(&rd, &type, &p, &len, err)) == 1) {
		r = 0;
		struct store_key k, local;
		if (type == BREC_BLOCK) {
			const uint8_t *data;
			size_t dl;
			r = bstream_parse_block(p, len, &k, &data, &dl, err);
			if (r == 0)
				r = store_put_block(sc->s, data, dl, &local, err);
			if (r == 0 && bkeymap_put(&blocks, &k, &local, dl) < 0)
				r = err_set(err, ENOMEM, "restore");
		} else if (type == BREC_BASE) {
			struct bstream_base b;
			r = bstream_parse_base(p, len, &b, err);
			if (r == 0 && !sc->base->rec)
				r = err_plain(err, EBADMSG, "backup stream: a BASE record in a full backup");
			if (r == 0)
				r = base_block(sc->s, sc->base, &b, &local, err);
			if (r == 0 && bkeymap_put(&blocks, &b.key, &local, b.len) < 0)
				r = err_set(err, ENOMEM, "restore");
		} else if (type == BREC_RECIPE) {
			struct store_recipe rec;
			r = bstream_parse_recipe(p, len, &k, &rec, err);
			for (size_t i = 0; r == 0 && i < rec.n; i++) {
				struct bkeymap_slot *bs = bkeymap_get(&blocks, &rec.e[i].key);
				if (!bs || bs->aux != rec.e[i].len)
					r = err_plain(err, EBADMSG, "backup stream: changed since it was checked");
				else
					rec.e[i].key = bs->val;
			}
			if (r == 0)
				r = store_put_recipe(sc->s, &rec, &local, err);
			if (r == 0 && bkeymap_put(&recipes, &k, &local, rec.size) < 0)
				r = err_set(err, ENOMEM, "restore");
			store_recipe_release(&rec);
		}
	}
	if (r == 0 && memcmp(rd.end_hash, sc->end_hash, 16))
		r = err_plain(err, EBADMSG, "backup stream: it changed between the check and the restore");
	bstream_reader_release(&rd);
	if (r == 0 && fail_at("blocks"))
		r = injected("blocks", err);

	/* The manifest with this store's keys, then the root. */
	struct store_root root = { 0 };
	size_t nfiles = 0;
	for (size_t i = 0; r == 0 && i < sc->m.n; i++) {
		struct manifest_entry *e = &sc->m.e[i];
		if (!(e->flags & MANIFEST_HAS_RECIPE))
			continue;
		struct bkeymap_slot *rs = bkeymap_get(&recipes, &e->recipe);
		if (!rs)
			r = err_plain(err, EBADMSG, "backup stream: changed since it was checked");
		else
			e->recipe = rs->val;
		nfiles++;
	}
	if (r == 0 && !(root.e = calloc(nfiles + 2, sizeof(*root.e))))
		r = err_set(err, ENOMEM, "restore");
	void *mbuf = NULL;
	size_t mlen = 0;
	if (r == 0)
		r = manifest_encode(&sc->m, &mbuf, &mlen, err);
	if (r == 0) {
		cleanup_close int mfd = memfd_create("corral-manifest", MFD_CLOEXEC);
		if (mfd < 0 || write(mfd, mbuf, mlen) != (ssize_t)mlen || lseek(mfd, 0, SEEK_SET) < 0)
			r = err_set(err, errno ? errno : EIO, "staging the manifest");
		uint64_t got;
		if (r == 0)
			r = store_put_fd(sc->s, mfd, &root.e[0].recipe, &got, err);
		if (r == 0 && !(root.e[0].label = strdup("manifest")))
			r = err_set(err, ENOMEM, "restore");
		root.n = 1;
	}
	free(mbuf);
	for (size_t i = 0; r == 0 && i < sc->m.n; i++) {
		const struct manifest_entry *e = &sc->m.e[i];
		if (!(e->flags & MANIFEST_HAS_RECIPE))
			continue;
		root.e[root.n].recipe = e->recipe;
		if (!(root.e[root.n++].label = strdup(e->path)))
			r = err_set(err, ENOMEM, "restore");
	}
	if (r == 0) {
		/* The stream's id, for the next incremental stream's check; its
		 * recipe is the manifest's so that GC finds nothing odd. */
		char hex[33];
		bstream_hex(sc->info->h.backup_id, 16, hex);
		root.e[root.n].recipe = root.e[0].recipe;
		if (asprintf(&root.e[root.n++].label, BACKUP_ID_LABEL "%s", hex) < 0) {
			root.e[root.n - 1].label = NULL;
			r = err_set(err, ENOMEM, "restore");
		}
	}
	if (r == 0)
		r = store_root_commit(sc->s, root_name, &root, err);
	store_root_release(&root);
	bkeymap_release(&blocks);
	bkeymap_release(&recipes);
	return r;
}

int backup_restore(const struct backup_restore_options *o, struct backup_info *ret, struct corral_error *err)
{
	memset(ret, 0, sizeof(*ret));
	double t0 = now_s();
	struct stat st;
	if (fstat(o->fd, &st) < 0)
		return err_set(err, errno, "the backup stream");
	cleanup_close int spool = -1;
	if (!S_ISREG(st.st_mode)) {
		spool = open(state_root(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (spool < 0)
			return err_set(err, errno, "spooling the stream in %s", state_root());
	} else if (lseek(o->fd, 0, SEEK_SET) < 0) {
		return err_set(err, errno, "the backup stream");
	}
	char sdir[PATH_MAX];
	int r = state_store_dir(sdir, sizeof(sdir), err);
	struct store *s = NULL;
	if (r == 0)
		r = store_open(sdir, STORE_CREATE, &s, err);
	if (r < 0)
		return r;
	struct base base = { 0 };
	struct container_config cfg;
	config_init(&cfg);
	struct scan sc = { .info = ret, .s = s, .base = &base, .target_check = target_check, .o = o, .cfg = &cfg };
	r = scan_stream(&sc, o->fd, spool, err);
	int in = spool >= 0 ? spool : o->fd;
	if (r == 0 && lseek(in, 0, SEEK_SET) < 0)
		r = err_set(err, errno, "rewinding the backup stream");

	/* Pass 2. */
	const struct bstream_header *h = &ret->h;
	const char *target = ret->target;
	char root_name[256];
	bool committed = false, created = false;
	if (r == 0)
		r = snapshot_root_name(root_name, sizeof(root_name), target, h->tag, err);
	if (r == 0 && (r = store_begin(s, err)) == 0) {
		r = apply_stream(&sc, in, root_name, err);
		committed = r == 0;
		store_end(s);
	}
	if (r == 0 && fail_at("root"))
		r = injected("root", err);
	struct snapshot_rollback_result rr;
	if (r == 0 && !bstream_header_incremental(h)) {
		r = o->create(o->ctx, &cfg, err);
		created = r == 0;
		if (r == 0 && fail_at("create"))
			r = injected("create", err);
		if (r == 0)
			r = snapshot_build_upper(target, h->tag, target, &rr, err);
	} else if (r == 0) {
		r = snapshot_rollback_stopped(target, h->tag, &rr, err);
	}
	/* (After a rollback nothing is left to fail: only a full restore has
	 * a point here.) */
	if (r == 0 && !bstream_header_incremental(h) && fail_at("upper"))
		r = injected("upper", err);
	if (r < 0) {
		/* Undo pass 2: the half container, then the root. */
		if (created)
			o->remove(o->ctx, target);
		if (committed)
			store_root_remove(s, root_name, NULL);
	}
	store_close(s);
	config_release(&cfg);
	base_release(&base);
	scan_release(&sc);
	ret->seconds = now_s() - t0;
	if (r < 0) {
		backup_info_release(ret);
		return err_wrap(err, "restore");
	}
	return 0;
}
