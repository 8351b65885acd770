/* store: opening a store, the write path (put with verify-on-hit), reads,
 * recipes and durability.  See store.h for the contract, FORMAT.md for
 * the bytes. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "store-internal.h"

#define FORMAT_MAGIC "corral-store"

void store_test_crash_at(struct store *s, const char *point)
{
	s->crash_at = point;
}

void store_test_stop_at(struct store *s, const char *point)
{
	s->stop_at = point;
}

static void commit_crash_point(void *ctx, const char *step)
{
	char point[32];
	snprintf(point, sizeof(point), "commit-%s", step);
	store_crash_point(ctx, point);
}

int store_commit_file(struct store *s, int dirfd, const char *name, const void *data, size_t len)
{
	return file_commit_at(dirfd, name, data, len, 0600, 0, commit_crash_point, s);
}

static int open_subdir(int dirfd, const char *name, bool create)
{
	if (create && mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	return fd < 0 ? -errno : fd;
}

/* FORMAT: "corral-store <version>\nseed <16 hex>\n". */
static int read_format(struct store *s, const char *dir, bool create, struct corral_error *err)
{
	cleanup_close int fd = openat(s->dirfd, "FORMAT", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT && create) {
		uint64_t seed;
		if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
			return err_set(err, errno ? errno : EIO, "random seed for the store");
		char text[128];
		int len = snprintf(text, sizeof(text), "%s %d\nseed %016llx\n", FORMAT_MAGIC, STORE_FORMAT_VERSION,
				   (unsigned long long)seed);
		int r = store_commit_file(s, s->dirfd, "FORMAT", text, len);
		if (r < 0)
			return err_set(err, -r, "write %s/FORMAT", dir);
		fd = openat(s->dirfd, "FORMAT", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0) {
		if (errno == ENOENT)
			return err_plain(err, ENOENT, "%s is not a corral store (no FORMAT file)", dir);
		return err_set(err, errno, "open %s/FORMAT", dir);
	}
	char buf[256];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n < 0)
		return err_set(err, errno, "read %s/FORMAT", dir);
	buf[n] = '\0';
	int version;
	unsigned long long seed;
	char magic[32];
	if (sscanf(buf, "%31s %d", magic, &version) != 2 || strcmp(magic, FORMAT_MAGIC) != 0)
		return err_plain(err, EBADMSG, "%s/FORMAT is not a corral store's format file", dir);
	if (version != STORE_FORMAT_VERSION)
		return err_plain(err, EPROTONOSUPPORT,
				 "the store at %s has format version %d; this corral reads version %d only", dir,
				 version, STORE_FORMAT_VERSION);
	const char *nl = strchr(buf, '\n');
	if (!nl || sscanf(nl + 1, "seed %16llx", &seed) != 1)
		return err_plain(err, EBADMSG, "%s/FORMAT has no seed line", dir);
	s->seed = seed;
	return 0;
}

/* Temp indexes of a process killed while it grew or rebuilt the index:
 * no one else can be writing one while we hold the exclusive lock. */
static void remove_index_leftovers(struct store *s)
{
	cleanup_dir DIR *d = dir_stream_at(s->dirfd);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "index.tmp.", 10))
			unlinkat(s->dirfd, e->d_name, 0);
}

/* Under the exclusive lock: a usable index, caught up with the packs. */
static int index_ready(struct store *s, int r, struct corral_error *err)
{
	remove_index_leftovers(s);
	if (r == 0 && !store_index_from_this_boot(s))
		r = -ESTALE;
	if (r == 0)
		r = store_index_catch_up(s);
	if (r == 0)
		store_gc_clear_stale(s);
	if (r == -EBADMSG || r == -ESTALE || r == -ENOENT || r == -EPROTONOSUPPORT) {
		snprintf(s->rebuilt, sizeof(s->rebuilt), "%s",
			 r == -ENOENT ? "it was missing" : r == -EBADMSG ? "its header was damaged"
			 : r == -EPROTONOSUPPORT ? "another format version"
			 : s->map && !store_index_from_this_boot(s) ? "it was made before the last boot"
			 : "it disagreed with the packs");
		return store_index_rebuild(s, NULL, NULL, err);
	}
	return r < 0 ? err_set(err, -r, "catch the store index up with the packs") : 0;
}

int store_open(const char *dir, unsigned flags, struct store **ret, struct corral_error *err)
{
	return store_open_hash(dir, flags, store_hash_xxh3, ret, err);
}

int store_open_hash(const char *dir, unsigned flags, store_hash_fn hash, struct store **ret,
		    struct corral_error *err)
{
	bool create = flags & STORE_CREATE;
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(err, ENOMEM, "open store %s", dir);
	s->dirfd = s->packsfd = s->rootsfd = s->index_lock_fd = s->gc_lock_fd = s->gc_run_fd = -1;
	s->index_fd = s->pack_fd = -1;
	for (int i = 0; i < STORE_RFD_CACHE; i++)
		s->rfd[i].fd = -1;
	s->flags = flags;
	s->hash = hash;
	int r;
	if (create && mkdir(dir, 0700) < 0 && errno != EEXIST) {
		r = err_set(err, errno, "create store directory %s", dir);
		goto fail;
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = err_set(err, errno, "open store %s", dir);
		goto fail;
	}
	/* Blocks of every container live here: no one but root reads them. */
	struct stat st;
	if (fstat(s->dirfd, &st) == 0 && (st.st_mode & 077) && fchmod(s->dirfd, 0700) < 0) {
		r = err_set(err, errno, "restrict %s to mode 0700", dir);
		goto fail;
	}
	r = read_format(s, dir, create, err);
	if (r < 0)
		goto fail;
	s->packsfd = open_subdir(s->dirfd, "packs", true);
	s->rootsfd = s->packsfd < 0 ? -1 : open_subdir(s->dirfd, "roots", true);
	if (s->packsfd < 0 || s->rootsfd < 0) {
		r = err_set(err, -(s->packsfd < 0 ? s->packsfd : s->rootsfd), "open %s/packs and roots", dir);
		goto fail;
	}
	s->index_lock_fd = openat(s->dirfd, "index.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	s->gc_lock_fd = openat(s->dirfd, "gc.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	s->gc_run_fd = openat(s->dirfd, "gc.run", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->index_lock_fd < 0 || s->gc_lock_fd < 0 || s->gc_run_fd < 0) {
		r = err_set(err, errno, "open the locks of %s", dir);
		goto fail;
	}
	r = store_lock(s->index_lock_fd, LOCK_EX);
	if (r < 0) {
		err_set(err, -r, "lock %s/index.lock", dir);
		goto fail;
	}
	s->index_locked = 2;
	r = index_ready(s, store_index_map(s, false), err);
	store_index_unlock(s);
	if (r < 0) {
		err_wrap(err, "open store %s", dir);
		goto fail;
	}
	*ret = s;
	return 0;
fail:
	store_close(s);
	return r;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->pack_fd >= 0 && s->pack_dirty)
		fdatasync(s->pack_fd);
	store_index_unmap(s);
	for (int i = 0; i < STORE_RFD_CACHE; i++)
		if (s->rfd[i].fd >= 0)
			close(s->rfd[i].fd);
	free(s->cond);
	int fds[] = { s->dirfd, s->packsfd, s->rootsfd, s->index_lock_fd, s->gc_lock_fd, s->gc_run_fd, s->pack_fd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(s);
}

int store_begin(struct store *s, struct corral_error *err)
{
	if (s->txn++ > 0)
		return 0;
	int r = store_lock(s->gc_lock_fd, LOCK_SH);
	if (r < 0) {
		s->txn = 0;
		return err_set(err, -r, "lock the store against collection");
	}
	return 0;
}

void store_end(struct store *s)
{
	if (s->txn > 0 && --s->txn == 0)
		flock(s->gc_lock_fd, LOCK_UN);
}

static void touch(struct store *s, uint32_t pack)
{
	if (s->pack_fd >= 0 && pack == s->pack_no)
		return;
	for (size_t i = 0; i < s->ntouched; i++)
		if (s->touched[i] == pack)
			return;
	if (s->ntouched < STORE_TOUCHED)
		s->touched[s->ntouched++] = pack;
	else
		s->touched[STORE_TOUCHED - 1] = 0; /* overflow: store_sync syncs every pack */
}

int store_sync(struct store *s, struct corral_error *err)
{
	if (s->pack_fd >= 0 && s->pack_dirty) {
		if (fdatasync(s->pack_fd) < 0) {
			s->broken = true;
			return err_set(err, errno, "sync pack %08x", s->pack_no);
		}
		s->pack_dirty = false;
	}
	bool all = s->ntouched == STORE_TOUCHED && s->touched[STORE_TOUCHED - 1] == 0;
	cleanup_free uint32_t *packs = NULL;
	size_t n = s->ntouched;
	if (all) {
		int r = store_pack_list(s, &packs, &n);
		if (r < 0)
			return err_set(err, -r, "list packs");
	}
	/* A block shared from another writer's pack may still be only in
	 * the page cache: make it durable before we point at it. */
	for (size_t i = 0; i < n; i++) {
		uint32_t no = all ? packs[i] : s->touched[i];
		int fd = store_pack_fd(s, no);
		if (fd >= 0 && fdatasync(fd) < 0)
			return err_set(err, errno, "sync pack %08x", no);
	}
	s->ntouched = 0;
	store_crash_point(s, "synced");
	return 0;
}

struct verify_ctx {
	struct store *s;
	const void *data;
	size_t len;
	uint8_t *buf;
	uint32_t next_n;	/* one past the highest collision index seen */
	struct store_key *ret;
	uint32_t pack;
	/* An equal record in a pack GC is emptying: not shared, but its key
	 * is reused for the fresh copy (one key per content stays true). */
	bool condemned_hit;
	uint32_t condemned_n;
	uint64_t condemned_slot;
};

/* A hash hit becomes a match only if the stored bytes are ours. */
static int verify_one(void *ctx, uint32_t n, const struct store_loc *loc, uint64_t slot)
{
	struct verify_ctx *v = ctx;
	if (n + 1 > v->next_n)
		v->next_n = n + 1;
	if (loc->len != v->len || loc->pack == STORE_PACK_CONFLICT)
		return 0;
	bool condemned = store_gc_condemned(v->s, loc->pack);
	int fd = store_pack_fd(v->s, loc->pack);
	if (fd < 0)
		return 0;
	struct store_rec rec;
	if (store_pack_read(v->s, fd, loc->off, &rec, v->buf, v->len, false) < 0)
		return 0; /* damaged: never share it; fsck names it */
	if (rec.len != v->len || rec.key.n != n || memcmp(v->buf, v->data, v->len) != 0)
		return 0;
	if (condemned) {
		/* GC may drop it (it was garbage at the mark): never point at it. */
		v->condemned_hit = true;
		v->condemned_n = n;
		v->condemned_slot = slot;
		return 0;
	}
	v->ret->n = n;
	v->pack = loc->pack;
	return 1;
}

int store_put_object(struct store *s, uint8_t kind, const void *data, size_t len, struct store_key *ret,
		     struct corral_error *err)
{
	if (s->txn <= 0)
		return err_plain(err, EINVAL, "store write outside a transaction (store_begin)");
	if (len > (kind == STORE_KIND_BLOCK ? STORE_BLOCK_SIZE : STORE_RECORD_MAX))
		return err_plain(err, EFBIG, "object of %zu bytes is too large for the store", len);
	if (s->broken)
		return err_plain(err, EIO, "an earlier write to the store failed; reopen it");
	struct store_key key = { .n = 0 };
	s->hash(data, len, s->seed, key.hash);
	cleanup_free uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return err_set(err, ENOMEM, "store put");
	struct verify_ctx v = { .s = s, .data = data, .len = len, .buf = buf, .ret = &key };
	/* Shared lock: look for an equal object. */
	int r = store_index_lock(s, false);
	if (r < 0)
		return err_set(err, -r, "lock the store index");
	r = store_index_each(s, kind, key.hash, verify_one, &v);
	store_index_unlock(s);
	if (r == 1) {
		touch(s, v.pack);
		*ret = key;
		return 0;
	}
	/* Exclusive: look again (another writer may have stored it since),
	 * then append under the next free collision index. */
	r = store_index_lock(s, true);
	if (r < 0)
		return err_set(err, -r, "lock the store index");
	v.next_n = 0;
	v.condemned_hit = false;
	r = store_index_each(s, kind, key.hash, verify_one, &v);
	if (r == 1) {
		store_index_unlock(s);
		touch(s, v.pack);
		*ret = key;
		return 0;
	}
	key.n = v.condemned_hit ? v.condemned_n : v.next_n;
	if (key.n > 0xffff) {
		store_index_unlock(s);
		return err_plain(err, EOVERFLOW, "too many different blocks share one hash");
	}
	struct store_rec rec = { .kind = kind, .len = len, .key = key, .data_check = store_check64(data, len) };
	struct store_loc loc;
	r = store_pack_append(s, &rec, data, &loc);
	if (r == 0 && v.condemned_hit)
		store_index_set_loc(s, v.condemned_slot, &loc);
	else if (r == 0)
		r = store_index_insert(s, kind, &key, &loc);
	if (r == 0)
		r = store_index_cover(s, loc.pack, s->pack_end);
	store_index_unlock(s);
	if (r < 0)
		return err_set(err, -r, "append to store pack %08x", s->pack_no);
	store_crash_point(s, "indexed");
	*ret = key;
	return 0;
}

int store_put_block(struct store *s, const void *data, size_t len, struct store_key *ret, struct corral_error *err)
{
	return store_put_object(s, STORE_KIND_BLOCK, data, len, ret, err);
}

int store_get_object(struct store *s, uint8_t kind, const struct store_key *k, uint8_t **ret, size_t *ret_len,
		     struct corral_error *err)
{
	char ks[STORE_KEY_STR_MAX];
	const char *what = kind == STORE_KIND_BLOCK ? "block" : "recipe";
	for (int attempt = 0; attempt < 2; attempt++) {
		struct store_loc loc;
		int r = store_index_lock(s, false);
		if (r < 0)
			return err_set(err, -r, "lock the store index");
		r = store_index_find(s, kind, k, &loc, NULL);
		store_index_unlock(s);
		if (r < 0)
			return err_plain(err, ENOENT, "%s %s is not in the store", what, store_key_str(k, ks));
		if (loc.pack == STORE_PACK_CONFLICT)
			return err_plain(err, EBADMSG,
					 "%s %s is claimed by two different records; neither is used (run corral store fsck)",
					 what, store_key_str(k, ks));
		if (loc.len > (kind == STORE_KIND_BLOCK ? STORE_BLOCK_SIZE : STORE_RECORD_MAX))
			return err_plain(err, EBADMSG, "the index entry of %s %s is damaged (run corral store fsck)",
					 what, store_key_str(k, ks));
		int fd = store_pack_fd(s, loc.pack);
		if (fd == -ENOENT && attempt == 0)
			continue; /* GC moved it between our lookup and open */
		if (fd < 0)
			return err_set(err, -fd, "open pack %08x for %s %s", loc.pack, what, store_key_str(k, ks));
		cleanup_free uint8_t *buf = malloc(loc.len ? loc.len : 1);
		if (!buf)
			return err_set(err, ENOMEM, "read %s", what);
		struct store_rec rec;
		r = store_pack_read(s, fd, loc.off, &rec, buf, loc.len, true);
		if (r == 0 && (rec.kind != kind || !store_key_eq(&rec.key, k)))
			r = -EBADMSG;
		if (r < 0)
			return err_plain(err, r == -ENODATA ? ENODATA : EBADMSG,
					 "%s %s in pack %08x at %llu is damaged (run corral store fsck)", what,
					 store_key_str(k, ks), loc.pack, (unsigned long long)loc.off);
		*ret = take_ptr(buf);
		*ret_len = rec.len;
		return 0;
	}
	return err_plain(err, ENOENT, "%s %s vanished from the store", what, store_key_str(k, ks));
}

int store_get_block(struct store *s, const struct store_key *k, void *buf, size_t *ret_len, struct corral_error *err)
{
	cleanup_free uint8_t *p = NULL;
	size_t len;
	int r = store_get_object(s, STORE_KIND_BLOCK, k, &p, &len, err);
	if (r < 0)
		return r;
	memcpy(buf, p, len);
	*ret_len = len;
	return 0;
}

int store_put_recipe(struct store *s, const struct store_recipe *rcp, struct store_key *ret, struct corral_error *err)
{
	/* No sync here: a recipe is garbage until a root names it, and
	 * store_root_commit syncs every pack (blocks and recipes alike)
	 * before the root.  One sync per commit, not two per file. */
	cleanup_free uint8_t *p = NULL;
	size_t len;
	int r = store_recipe_encode(rcp, &p, &len);
	if (r < 0)
		return err_set(err, -r, "encode a recipe of %zu blocks", rcp->n);
	return store_put_object(s, STORE_KIND_RECIPE, p, len, ret, err);
}

int store_get_recipe(struct store *s, const struct store_key *k, struct store_recipe *ret, struct corral_error *err)
{
	cleanup_free uint8_t *p = NULL;
	size_t len;
	int r = store_get_object(s, STORE_KIND_RECIPE, k, &p, &len, err);
	if (r < 0)
		return r;
	r = store_recipe_parse(p, len, ret);
	if (r < 0) {
		char ks[STORE_KEY_STR_MAX];
		return err_plain(err, -r, "recipe %s is malformed", store_key_str(k, ks));
	}
	return 0;
}

int store_put_fd(struct store *s, int fd, struct store_key *ret, uint64_t *ret_size, struct corral_error *err)
{
	cleanup_free uint8_t *buf = malloc(STORE_BLOCK_SIZE);
	struct store_recipe rcp = { 0 };
	size_t cap = 0;
	if (!buf)
		return err_set(err, ENOMEM, "store a file");
	int r = 0;
	for (uint64_t off = 0;;) {
		size_t got = 0;
		while (got < STORE_BLOCK_SIZE) {
			ssize_t n = pread(fd, buf + got, STORE_BLOCK_SIZE - got, off + got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				r = err_set(err, errno, "read the file to store");
				goto out;
			}
			if (n == 0)
				break;
			got += n;
		}
		if (got == 0)
			break;
		if (rcp.n == cap) {
			cap = cap ? cap * 2 : 64;
			struct store_recipe_entry *e = realloc(rcp.e, cap * sizeof(*e));
			if (!e) {
				r = err_set(err, ENOMEM, "store a file");
				goto out;
			}
			rcp.e = e;
		}
		r = store_put_block(s, buf, got, &rcp.e[rcp.n].key, err);
		if (r < 0)
			goto out;
		rcp.e[rcp.n++].len = got;
		rcp.size += got;
		off += got;
		if (got < STORE_BLOCK_SIZE)
			break;
	}
	r = store_put_recipe(s, &rcp, ret, err);
	if (r == 0 && ret_size)
		*ret_size = rcp.size;
out:
	store_recipe_release(&rcp);
	return r;
}

int store_read_to_fd(struct store *s, const struct store_key *k, int fd, struct corral_error *err)
{
	struct store_recipe rcp;
	int r = store_get_recipe(s, k, &rcp, err);
	if (r < 0)
		return r;
	cleanup_free uint8_t *buf = malloc(STORE_BLOCK_SIZE);
	if (!buf)
		r = err_set(err, ENOMEM, "read a stored file");
	for (size_t i = 0; r == 0 && i < rcp.n; i++) {
		size_t len;
		r = store_get_block(s, &rcp.e[i].key, buf, &len, err);
		if (r == 0 && len != rcp.e[i].len)
			r = err_plain(err, EBADMSG, "block %zu of the file has %zu bytes, its recipe says %u", i, len,
				      rcp.e[i].len);
		for (size_t off = 0; r == 0 && off < len;) {
			ssize_t n = write(fd, buf + off, len - off);
			if (n < 0 && errno != EINTR)
				r = err_set(err, errno, "write a stored file out");
			else if (n > 0)
				off += n;
		}
	}
	store_recipe_release(&rcp);
	return r;
}
