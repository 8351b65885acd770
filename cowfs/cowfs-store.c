/* cowfs on the host's block store: moving upper file data into it.
 *
 * Handles.  A store handle serves one thread at a time and cowfs has many
 * workers reading store-backed files: a small pool (cowfs-store-io.c)
 * serves cowfs_store_read_blocks/get_recipe; the mover thread has a handle
 * of its own, since its transaction spans a batch.
 *
 * The mover.  cowfs_store_file_idle (a write handle was released) queues
 * the node, referenced, with a deadline store_delay seconds on; a node
 * queued again only gets a later deadline, so a file moves store_delay
 * after its last writer's release.  The mover takes the due files in
 * batches of up to BATCH_MAX and for each: reads the content as the tenant
 * sees it (partial_pread, PARTIAL_BLOCK at a time) at one
 * partial_write_gen, puts its blocks and its recipe; then, once for the
 * batch, store_sync and the root commit (the set below plus the new
 * recipes), store_end; only then partial_adopt_store turns each file into
 * a store-backed one and punches its upper data.  -EBUSY (written
 * meanwhile, a writer or a passthrough handle open): the file stays as it
 * is and moves at its next idle.  Skipped: anything but a regular upper
 * file, an empty file (nothing to save), a file unlinked with no name left
 * (it goes away at its last close anyway), a lazy copy-up and a sparse
 * file (moves_whole: the quota would count what they do not allocate).
 *
 * The root.  Committed as store_root, it names every recipe this upper's
 * files may read, labelled "ino <upper inode> <path at the move>".  In
 * memory it is a list of (inode, recipe, label); a move adds its recipe
 * *beside* the inode's old one until partial_adopt_store has switched the
 * file (a crash in between leaves both named, so the old content the
 * file's record names is never collected), and replaces it after.  A
 * file whose last name is gone leaves the set when its node is freed
 * (cowfs_store_node_freed: no descriptor holds it any more).  The root
 * read at start is kept whole (nothing it names is dropped) until the
 * upkeep pass: a walk of the upper by descriptors (openat2, no symlinks,
 * bounded depth) reading each regular file's record, whose exact set of
 * store recipes, plus the live entries of files unlinked but still open,
 * then replaces the root, so the recipes of files removed or rewritten
 * before this mount stop being reachable and `corral store gc` frees them.
 * The pass runs in the mover thread (no move changes a record during it),
 * at start and every UPKEEP_INTERVAL; a walk that could not finish (too
 * deep, an error) or that a rename or link may have fooled (fs->ns_changes
 * moved during it) commits nothing: it fails closed, keeping more.
 *
 * Crash points for the tests: COWFS_TEST_CRASH_AT=STEP (read once at
 * start) kills the daemon with SIGKILL right after STEP of a move: "puts"
 * (blocks and recipe put), "sync" (store_sync), "commit" (the root
 * commit), "record" (cowfs-partial.c: the record written, data not yet
 * punched) and "adopt" (partial_adopt_store done: the data punched).  The
 * daemon's environment is set by whoever runs it (corral, on the host),
 * never by the tenant.
 *
 * Module cowfs; calls store (libstore.a). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "cowfs.h"
#include "cowfs-partial.h"
#include "cowfs-store.h"
#include "cowfs-store-internal.h"
#include "log.h"

/* ---- test crash points ---- */

static const char *crash_at; /* COWFS_TEST_CRASH_AT, read once at start */

void cowfs_store_crash_point(const char *step)
{
	if (crash_at && !strcmp(crash_at, step)) {
		log_info("COWFS_TEST_CRASH_AT=%s: killing the daemon", step);
		kill(getpid(), SIGKILL);
	}
}




/* ---- the root set ---- */

static void set_release(struct root_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->e[i].label);
	free(set->e);
	*set = (struct root_set){ 0 };
}

static int set_add(struct root_set *set, ino_t ino, const struct store_key *k, const char *label, bool live)
{
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 64;
		struct root_entry *e = realloc(set->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		set->e = e;
		set->cap = cap;
	}
	char *l = strdup(label);
	if (!l)
		return -ENOMEM;
	set->e[set->n++] = (struct root_entry){ ino, *k, l, live };
	return 0;
}

/* Removes every entry of `ino` (a move replaced the file's recipe). */
static void set_drop_ino(struct root_set *set, ino_t ino)
{
	size_t w = 0;
	for (size_t i = 0; i < set->n; i++) {
		if (set->e[i].ino == ino) {
			free(set->e[i].label);
			continue;
		}
		set->e[w++] = set->e[i];
	}
	set->n = w;
}

/* "ino N ..." -> N; 0 for a label of another form (kept, never matched). */
static ino_t label_ino(const char *label)
{
	unsigned long long v;
	int used = 0;
	if (sscanf(label, "ino %llu%n", &v, &used) != 1 || (label[used] != ' ' && label[used] != '\0'))
		return 0;
	return (ino_t)v;
}

/* After a failed write the store refuses further writes on that handle
 * (store.h): the mover gets a fresh one, or keeps the old one and tries
 * again at the next batch. */
static void mover_reset(struct cowfs_store *st)
{
	struct corral_error err = { 0 };
	struct store *s;
	if (store_open(st->dir, 0, &s, &err) < 0) {
		log_error("store %s: reopening: %s", st->dir, err.msg);
		return;
	}
	store_close(st->mover);
	st->mover = s;
}

/* Commits `set` plus `extra` (n_extra entries) as the root. */
static int root_commit(struct cowfs_store *st, const struct root_set *set, const struct root_entry *extra,
		       size_t n_extra)
{
	struct store_root_entry *e = calloc(set->n + n_extra + 1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < set->n; i++)
		e[n++] = (struct store_root_entry){ set->e[i].recipe, set->e[i].label };
	for (size_t i = 0; i < n_extra; i++)
		e[n++] = (struct store_root_entry){ extra[i].recipe, extra[i].label };
	struct store_root root = { n, e };
	struct corral_error err = { 0 };
	int r = store_root_commit(st->mover, st->root_name, &root, &err);
	free(e); /* the labels belong to the sets */
	if (r < 0)
		log_error("store %s: committing root %s: %s", st->dir, st->root_name, err.msg);
	return r;
}

/* A commit outside a batch (the set shrank): in a transaction of its own. */
static int root_commit_alone(struct cowfs_store *st)
{
	struct corral_error err = { 0 };
	int r = store_begin(st->mover, &err);
	if (r < 0) {
		log_error("store %s: %s", st->dir, err.msg);
		return r;
	}
	r = root_commit(st, &st->set, NULL, 0);
	store_end(st->mover);
	if (r < 0)
		mover_reset(st);
	/* Even when it failed: the committed root always names at least the
	 * set (every recipe a record names was committed before the record
	 * was written), so a failure only delays freeing, and retrying at
	 * once would spin. */
	st->set_dirty = false;
	return r;
}

/* ---- the upper walk (upkeep, quota) ---- */

static int openat2_dir(int dirfd, const char *name)
{
	struct open_how how = {
		.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	int fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

/* Reads the record of the regular file behind `fd` (any kind of
 * descriptor, O_PATH included): 1 and *ret for a store record, 0 without
 * one (no record, another source), -errno. */
static int fd_store_recipe(struct cowfs *fs, int fd, struct store_key *ret)
{
	const char *name = fs->xattr_trusted ? PARTIAL_XATTR_TRUSTED : PARTIAL_XATTR_USER;
	char path[64];
	char small[4096];
	cleanup_free char *big = NULL;
	char *buf = small;
	fd_path(path, fd);
	ssize_t len = getxattr(path, name, small, sizeof(small));
	if (len < 0 && errno == ERANGE) {
		/* Bigger than a stack buffer: read it whole. */
		len = getxattr(path, name, NULL, 0);
		if (len < 0)
			return -errno;
		big = malloc((size_t)len + 1);
		if (!big)
			return -ENOMEM;
		len = getxattr(path, name, big, (size_t)len);
		buf = big;
	}
	if (len < 0)
		return errno == ENODATA || errno == ENOTSUP ? 0 : -errno;
	struct partial_record rec;
	int r = partial_record_parse(buf, (size_t)len, &rec);
	if (r < 0)
		return r;
	r = rec.kind == PARTIAL_STORE;
	if (r)
		*ret = rec.recipe;
	partial_record_release(&rec);
	return r;
}

/* The same for `name` in dirfd, never following it; *ret_st its stat. */
static int file_store_recipe(struct cowfs *fs, int dirfd, const char *name, struct stat *ret_st,
			     struct store_key *ret)
{
	cleanup_close int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, ret_st) < 0)
		return -errno;
	if (!S_ISREG(ret_st->st_mode))
		return 0;
	return fd_store_recipe(fs, fd, ret);
}

/* ---- quota: what store-backed files are charged beyond their blocks ----
 *
 * The rule (cowfs-quota.c): a store-backed file counts max(its size in
 * 4 KiB blocks, what the upper allocates for it), a plain file what it
 * allocates.  The part beyond the allocated blocks, its extra, is charged
 * by the mount-time count (quota_scan_upper) and kept up to date by every
 * measured change of the file (cowfs_store_quota_update: the move's punch,
 * a write copying blocks in, a truncate, completion), so a move changes no
 * usage and the count at the next mount finds what the mount counted.
 *
 * Kept per upper inode, not per node: the kernel forgets the inode of a
 * file that keeps its names, and the node looked up later must give back
 * what was charged, not what it would compute then.  An entry leaves when
 * the file stops being store-backed (its extra given back with it) or when
 * its inode dies (nlink 0 at the node's freeing: cowfs_store_quota_gone),
 * each exactly once, under the table's lock.  One mount per process:
 * file-static.  Sorted by inode; inodes without extra have no entry. */
struct quota_extra {
	ino_t ino;
	int64_t bytes;
};

static struct {
	pthread_mutex_t lock; /* a leaf: taken under node->lock and a partial's lock */
	struct quota_extra *e;
	size_t n, cap;
} extras = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* max(size in 4 KiB blocks, allocated) - allocated. */
static int64_t store_extra_bytes(const struct stat *st)
{
	int64_t logical = ((int64_t)st->st_size + 4095) / 4096 * 4096;
	int64_t allocated = (int64_t)st->st_blocks * 512;
	return logical > allocated ? logical - allocated : 0;
}

/* Where ino is or would go. */
static size_t extra_pos(ino_t ino)
{
	size_t lo = 0, hi = extras.n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (extras.e[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Under extras.lock: sets ino's extra to `bytes` (0 removes it) and
 * returns the change to charge.  Out of memory, nothing is recorded and
 * nothing charged (a charge no entry remembers could never be given
 * back). */
static int64_t extra_set_locked(ino_t ino, int64_t bytes)
{
	size_t i = extra_pos(ino);
	bool hit = i < extras.n && extras.e[i].ino == ino;
	int64_t old = hit ? extras.e[i].bytes : 0;
	if (bytes == old)
		return 0;
	if (hit && bytes == 0) {
		memmove(&extras.e[i], &extras.e[i + 1], (extras.n - i - 1) * sizeof(*extras.e));
		extras.n--;
	} else if (hit) {
		extras.e[i].bytes = bytes;
	} else {
		if (extras.n == extras.cap) {
			size_t cap = extras.cap ? extras.cap * 2 : 256;
			struct quota_extra *e = realloc(extras.e, cap * sizeof(*e));
			if (!e) {
				log_error("quota: store-backed inode %ju: out of memory, not charged", (uintmax_t)ino);
				return 0;
			}
			extras.e = e;
			extras.cap = cap;
		}
		memmove(&extras.e[i + 1], &extras.e[i], (extras.n - i) * sizeof(*extras.e));
		extras.e[i] = (struct quota_extra){ ino, bytes };
		extras.n++;
	}
	return bytes - old;
}

int64_t cowfs_store_quota_update(struct cowfs *fs, struct cowfs_node *n)
{
	if (!fs->store_dir || (!fs->quota_bytes && !fs->quota_inodes) || n->type != S_IFREG ||
	    node_layer(n) != 0 || n->fds[0] < 0 || !atomic_load(&n->partial_loaded))
		return 0;
	struct stat st;
	struct store_key k;
	int64_t delta = 0;
	/* The state is read under the table's lock: a completion that turns
	 * the file plain (active false, then this) cannot slip between the
	 * read and the entry, whichever comes first. */
	pthread_mutex_lock(&extras.lock);
	if (fstat(n->fds[0], &st) == 0)
		delta = extra_set_locked(st.st_ino, partial_store_recipe(n, &k) ? store_extra_bytes(&st) : 0);
	pthread_mutex_unlock(&extras.lock);
	return delta;
}

int64_t cowfs_store_quota_gone(struct cowfs *fs, ino_t ino)
{
	if (!fs->store_dir)
		return 0;
	pthread_mutex_lock(&extras.lock);
	int64_t r = -extra_set_locked(ino, 0);
	pthread_mutex_unlock(&extras.lock);
	return r;
}

typedef int (*walk_fn)(void *ctx, const char *path, const struct stat *st, const struct store_key *recipe);

struct walk {
	struct cowfs *fs;
	walk_fn fn;
	void *ctx;
	char path[PATH_MAX];
};

/* Visits every regular file with a store record under fd (consumed).
 * -ELOOP past WALK_DEPTH_MAX levels: the caller must not take the result
 * as complete. */
static int walk_dir(struct walk *w, int fd, size_t path_len, int depth)
{
	if (depth >= WALK_DEPTH_MAX) {
		close(fd);
		return -ELOOP;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	int r = 0;
	struct dirent *de;
	errno = 0;
	while (r == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		size_t nl = strlen(de->d_name);
		size_t len = path_len;
		if (path_len + 1 + nl < sizeof(w->path)) {
			w->path[len++] = '/';
			memcpy(w->path + len, de->d_name, nl + 1);
			len += nl;
		}
		/* A path too long for the buffer only shortens the label. */
		if (de->d_type == DT_DIR) {
			int sub = openat2_dir(dirfd(d), de->d_name);
			if (sub == -ENOENT)
				continue; /* removed meanwhile: nothing to keep */
			if (sub < 0) {
				r = sub;
				break;
			}
			r = walk_dir(w, sub, len, depth + 1);
		} else if (de->d_type == DT_REG || de->d_type == DT_UNKNOWN) {
			struct stat st;
			struct store_key k;
			int f = file_store_recipe(w->fs, dirfd(d), de->d_name, &st, &k);
			if (f < 0 && f != -ENOENT)
				r = f;
			else if (f > 0)
				r = w->fn(w->ctx, w->path, &st, &k);
			else if (f == 0 && de->d_type == DT_UNKNOWN && S_ISDIR(st.st_mode)) {
				int sub = openat2_dir(dirfd(d), de->d_name);
				r = sub == -ENOENT ? 0 : sub < 0 ? sub : walk_dir(w, sub, len, depth + 1);
			}
		}
		w->path[path_len] = '\0';
		errno = 0;
	}
	if (r == 0 && errno)
		r = -errno;
	closedir(d);
	return r;
}

static int walk_upper(struct cowfs *fs, walk_fn fn, void *ctx)
{
	struct walk w = { .fs = fs, .fn = fn, .ctx = ctx };
	int fd = openat(fs->layers[0].root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return walk_dir(&w, fd, 0, 0);
}

static int upkeep_visit(void *ctx, const char *path, const struct stat *st, const struct store_key *recipe)
{
	struct root_set *set = ctx;
	char label[PATH_MAX + 64];
	/* A hard-linked file has one record: keep its recipe once. */
	for (size_t i = 0; st->st_nlink > 1 && i < set->n; i++)
		if (set->e[i].ino == st->st_ino && store_key_eq(&set->e[i].recipe, recipe))
			return 0;
	snprintf(label, sizeof(label), "ino %llu %s", (unsigned long long)st->st_ino, path[0] ? path : "/");
	return set_add(set, st->st_ino, recipe, label, true);
}

static int ino_cmp(const void *a, const void *b)
{
	ino_t x = *(const ino_t *)a, y = *(const ino_t *)b;
	return x < y ? -1 : x > y;
}

/* Adds to `fresh` the live entries of `old` whose inode it lacks. */
static int keep_live(struct root_set *fresh, const struct root_set *old)
{
	size_t n = fresh->n;
	ino_t *inos = malloc((n + 1) * sizeof(*inos));
	if (!inos)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		inos[i] = fresh->e[i].ino;
	qsort(inos, n, sizeof(*inos), ino_cmp);
	int r = 0;
	for (size_t i = 0; r == 0 && i < old->n; i++)
		if (old->e[i].live && !bsearch(&old->e[i].ino, inos, n, sizeof(*inos), ino_cmp))
			r = set_add(fresh, old->e[i].ino, &old->e[i].recipe, old->e[i].label, true);
	free(inos);
	return r;
}

static int key_cmp(const void *a, const void *b)
{
	const struct store_key *x = a, *y = b;
	int c = memcmp(x->hash, y->hash, sizeof(x->hash));
	return c ? c : x->n < y->n ? -1 : x->n > y->n;
}

/* Whether two sets name the same recipes (labels aside): no commit needed. */
static bool same_recipes(const struct root_set *a, const struct root_set *b)
{
	if (a->n != b->n)
		return false;
	if (a->n == 0)
		return true;
	struct store_key *ka = malloc(a->n * sizeof(*ka)), *kb = malloc(b->n * sizeof(*kb));
	bool same = ka && kb;
	for (size_t i = 0; same && i < a->n; i++) {
		ka[i] = a->e[i].recipe;
		kb[i] = b->e[i].recipe;
	}
	if (same) {
		qsort(ka, a->n, sizeof(*ka), key_cmp);
		qsort(kb, b->n, sizeof(*kb), key_cmp);
		for (size_t i = 0; same && i < a->n; i++)
			same = key_cmp(&ka[i], &kb[i]) == 0;
	}
	free(ka);
	free(kb);
	return same; /* out of memory: "different", a commit too many */
}

/* The upkeep pass: the exact set of recipes the upper's records name
 * replaces the root.  In the mover thread only. */
static void upkeep(struct cowfs *fs)
{
	struct cowfs_store *st = fs->store;
	struct root_set fresh = { 0 };
	uint64_t before = atomic_load(&fs->ns_changes);
	int r = walk_upper(fs, upkeep_visit, &fresh);
	if (r < 0) {
		log_warn("store upkeep: the walk of the upper stopped (%s): root %s kept as it is", strerror(-r),
			 st->root_name);
		set_release(&fresh);
		return;
	}
	if (atomic_load(&fs->ns_changes) != before) {
		/* A file renamed from a part not walked yet into one walked
		 * already would be missed: try again at the next pass. */
		log_debug("store upkeep: names changed during the walk, root %s kept", st->root_name);
		set_release(&fresh);
		return;
	}
	/* Live entries the walk did not find: files unlinked but still open
	 * (their freeing drops them, cowfs_store_node_freed). */
	r = keep_live(&fresh, &st->set);
	if (r < 0) {
		set_release(&fresh);
		return;
	}
	bool same = same_recipes(&fresh, &st->set);
	set_release(&st->set);
	st->set = fresh;
	if (!same || st->set_dirty)
		root_commit_alone(st);
	log_debug("store upkeep: root %s names %zu files", st->root_name, st->set.n);
}

/* ---- quota ---- */

static int quota_visit(void *ctx, const char *path, const struct stat *st, const struct store_key *recipe)
{
	(void)ctx;
	(void)path;
	(void)recipe;
	int64_t bytes = store_extra_bytes(st);
	if (bytes == 0)
		return 0;
	/* Appended, sorted and merged once the walk is done: a hard-linked
	 * file is visited once per name and counts once, as its blocks do. */
	if (extras.n == extras.cap) {
		size_t cap = extras.cap ? extras.cap * 2 : 256;
		struct quota_extra *e = realloc(extras.e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		extras.e = e;
		extras.cap = cap;
	}
	extras.e[extras.n++] = (struct quota_extra){ st->st_ino, bytes };
	return 0;
}

static int extra_cmp(const void *a, const void *b)
{
	ino_t x = ((const struct quota_extra *)a)->ino, y = ((const struct quota_extra *)b)->ino;
	return x < y ? -1 : x > y;
}

int cowfs_store_quota_extra(struct cowfs *fs, int64_t *ret)
{
	*ret = 0;
	pthread_mutex_lock(&extras.lock);
	extras.n = 0;
	int r = walk_upper(fs, quota_visit, NULL);
	if (r == 0) {
		qsort(extras.e, extras.n, sizeof(*extras.e), extra_cmp);
		size_t m = 0;
		for (size_t i = 0; i < extras.n; i++) {
			if (m > 0 && extras.e[m - 1].ino == extras.e[i].ino)
				continue;
			extras.e[m++] = extras.e[i];
			*ret += extras.e[i].bytes;
		}
		extras.n = m;
	}
	pthread_mutex_unlock(&extras.lock);
	return r;
}

/* ---- the queue ---- */

/* Whether n is a regular upper file of a mount on the store whose last
 * name is gone; *sb its stat. */
static bool last_name_gone(struct cowfs *fs, struct cowfs_node *n, struct stat *sb)
{
	return fs->store && n->type == S_IFREG && node_layer(n) == 0 && n->fds[0] >= 0 &&
	       layer_stat_fd(n->fds[0], sb) == 0 && sb->st_nlink == 0;
}

void cowfs_store_node_freed(struct cowfs *fs, struct cowfs_node *n)
{
	struct cowfs_store *st = fs->store;
	struct stat sb;
	if (!last_name_gone(fs, n, &sb))
		return;
	/* The inode is still held (n->fds[0]): its number cannot be reused
	 * before this drop is queued, and the mover applies drops before any
	 * later move. */
	pthread_mutex_lock(&st->lock);
	if (st->ngone == st->gone_cap) {
		size_t cap = st->gone_cap ? st->gone_cap * 2 : 64;
		ino_t *g = realloc(st->gone, cap * sizeof(*g));
		if (!g) {
			pthread_mutex_unlock(&st->lock);
			return; /* the upkeep pass drops it later */
		}
		st->gone = g;
		st->gone_cap = cap;
	}
	st->gone[st->ngone++] = sb.st_ino;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

void cowfs_store_unlinked(struct cowfs *fs, struct cowfs_node *n)
{
	struct cowfs_store *st = fs->store;
	struct stat sb;
	if (!last_name_gone(fs, n, &sb))
		return;
	/* Its last name is gone: it will not move, and the queue's
	 * reference must not keep it (and its quota) alive until the delay
	 * runs out. */
	pthread_mutex_lock(&st->lock);
	struct queued **pp = &st->by_node[node_bucket(n)];
	while (*pp && (*pp)->node != n)
		pp = &(*pp)->hash_next;
	struct queued *q = *pp;
	if (q) {
		*pp = q->hash_next;
		struct queued **fp = &st->head, *prev = NULL;
		while (*fp != q) {
			prev = *fp;
			fp = &(*fp)->next;
		}
		*fp = q->next;
		if (st->tail == q)
			st->tail = prev;
	}
	pthread_mutex_unlock(&st->lock);
	if (q) {
		node_unref(fs, n, 1); /* the caller holds its own reference */
		free(q);
	}
}

/* In the mover, under st->lock: the freed files leave the set. */
static void apply_gone(struct cowfs_store *st)
{
	for (size_t i = 0; i < st->ngone; i++) {
		size_t before = st->set.n;
		set_drop_ino(&st->set, st->gone[i]);
		if (st->set.n != before)
			st->set_dirty = true;
	}
	st->ngone = 0;
}

static void unhash(struct cowfs_store *st, struct queued *q)
{
	struct queued **pp = &st->by_node[node_bucket(q->node)];
	while (*pp != q)
		pp = &(*pp)->hash_next;
	*pp = q->hash_next;
}

/* Takes the due entries off the queue (under st->lock); a requeued one
 * whose deadline moved on goes back to the tail.  Returns how many, and
 * in *ret_wait the next deadline (0: queue empty). */
static size_t take_due(struct cowfs_store *st, struct cowfs_node **batch, uint64_t now, uint64_t *ret_wait)
{
	size_t n = 0;
	*ret_wait = 0;
	while (st->head && n < BATCH_MAX) {
		struct queued *q = st->head;
		if (q->deadline != q->queued_at) {
			/* Idle again since it was queued: its place is at the tail. */
			st->head = q->next;
			if (!st->head)
				st->tail = NULL;
			fifo_push(st, q);
			continue;
		}
		if (q->deadline > now) {
			*ret_wait = q->deadline;
			break;
		}
		st->head = q->next;
		if (!st->head)
			st->tail = NULL;
		unhash(st, q);
		batch[n++] = q->node; /* its reference goes with it */
		free(q);
	}
	return n;
}

/* ---- the move ---- */

struct move {
	struct cowfs_node *node;
	struct root_entry entry; /* ino, recipe, label */
	uint64_t size, gen;
};

/* "ino N /a/b" from the node's names (best effort: a label only). */
static void node_label(struct cowfs *fs, struct cowfs_node *n, ino_t ino, char *buf, size_t len)
{
	char *names[LABEL_DEPTH_MAX];
	int depth = 0;
	struct cowfs_node *cur = n;
	node_ref(fs, cur);
	while (depth < LABEL_DEPTH_MAX) {
		char *name = NULL;
		struct cowfs_node *parent = node_get_parent(fs, cur, &name);
		node_unref(fs, cur, 1);
		cur = parent;
		if (!parent) {
			free(name);
			break;
		}
		names[depth++] = name;
	}
	if (cur)
		node_unref(fs, cur, 1);
	size_t used = (size_t)snprintf(buf, len, "ino %llu ", (unsigned long long)ino);
	if (depth == 0 && used < len)
		snprintf(buf + used, len - used, "?");
	for (int i = depth - 1; i >= 0; i--) {
		if (used < len)
			used += (size_t)snprintf(buf + used, len - used, "/%s", names[i] ? names[i] : "?");
		free(names[i]);
	}
}

/* Whether n's data is worth moving under the quota rule (a store-backed
 * file counts its whole size).  A lazy copy-up (PARTIAL_LOWER) is left in
 * the upper: its unwritten ranges already share the template's blocks, and
 * moved it would count its size instead of the few blocks it wrote.  So is
 * a plain sparse file (fewer bytes allocated than its size in 4 KiB
 * blocks): its holes would start to count.  A store-backed file written
 * since (some blocks copied in) moves again. */
static bool moves_whole(const struct cowfs_node *n, const struct stat *sb)
{
	struct store_key k;
	if (node_is_partial(n))
		return partial_store_recipe(n, &k);
	int64_t logical = ((int64_t)sb->st_size + 4095) / 4096 * 4096;
	return (int64_t)sb->st_blocks * 512 >= logical;
}

/* Reads n as the tenant sees it and puts it in the store: 1 with m
 * filled, 0 if it is not to move (now), -errno. */
static int move_put(struct cowfs *fs, struct cowfs_node *n, void *buf, struct move *m)
{
	struct cowfs_store *st = fs->store;
	if (n->type != S_IFREG || !node_is_upper(n) || atomic_load(&n->deleted))
		return 0;
	cleanup_close int fd = reopen_fd(fs, n->fds[0], O_RDONLY);
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode) || sb.st_size == 0 || sb.st_nlink == 0)
		return 0;
	if (!moves_whole(n, &sb))
		return 0;
	uint64_t gen = partial_write_gen(n);
	struct store_recipe rec = { 0 };
	size_t cap = 0;
	int r = 0;
	struct corral_error err = { 0 };
	for (uint64_t off = 0; off < (uint64_t)sb.st_size;) {
		size_t want = PARTIAL_BLOCK;
		if ((uint64_t)sb.st_size - off < want)
			want = (size_t)((uint64_t)sb.st_size - off);
		size_t got = 0;
		while (got < want) {
			ssize_t k = partial_pread(fs, n, fd, (char *)buf + got, want - got, (off_t)(off + got));
			if (k < 0) {
				r = (int)k;
				goto out;
			}
			if (k == 0)
				break;
			got += (size_t)k;
		}
		if (got < want) {
			r = 0; /* shrank meanwhile: the generation says so too */
			goto out;
		}
		if (rec.n == cap) {
			cap = cap ? cap * 2 : 16;
			struct store_recipe_entry *e = realloc(rec.e, cap * sizeof(*e));
			if (!e) {
				r = -ENOMEM;
				goto out;
			}
			rec.e = e;
		}
		r = store_put_block(st->mover, buf, got, &rec.e[rec.n].key, &err);
		if (r < 0)
			goto out_err;
		rec.e[rec.n++].len = (uint32_t)got;
		rec.size += got;
		off += got;
	}
	if (partial_write_gen(n) != gen) {
		r = 0; /* written while read: moves at its next idle */
		goto out;
	}
	r = store_put_recipe(st->mover, &rec, &m->entry.recipe, &err);
	if (r < 0)
		goto out_err;
	char label[PATH_MAX + 64];
	node_label(fs, n, sb.st_ino, label, sizeof(label));
	m->entry.label = strdup(label);
	if (!m->entry.label) {
		r = -ENOMEM;
		goto out;
	}
	m->entry.ino = sb.st_ino;
	m->node = n;
	m->size = rec.size;
	m->gen = gen;
	r = 1;
	goto out;
out_err:
	log_error("store %s: moving upper inode %llu: %s", st->dir, (unsigned long long)sb.st_ino, err.msg);
out:
	free(rec.e);
	return r;
}

static void move_batch(struct cowfs *fs, struct cowfs_node **batch, size_t nb)
{
	struct cowfs_store *st = fs->store;
	struct move moves[BATCH_MAX];
	struct root_entry extra[BATCH_MAX];
	size_t nm = 0;
	struct corral_error err = { 0 };
	cleanup_free void *buf = malloc(PARTIAL_BLOCK);
	if (!buf)
		return;

	int r = store_begin(st->mover, &err);
	if (r < 0) {
		log_error("store %s: %s", st->dir, err.msg);
		return;
	}
	bool failed = false;
	for (size_t i = 0; i < nb; i++) {
		memset(&moves[nm], 0, sizeof(moves[nm]));
		r = move_put(fs, batch[i], buf, &moves[nm]);
		if (r > 0) {
			extra[nm] = moves[nm].entry;
			nm++;
		} else if (r < 0 && r != -ENOENT) {
			log_warn("store: a file stays in the upper: %s", strerror(-r));
			if (r == -EIO || r == -ENOSPC || r == -EROFS || r == -EDQUOT) {
				failed = true;
				break; /* the handle refuses further writes (broken) */
			}
		}
	}
	if (nm == 0) {
		store_end(st->mover);
		if (failed)
			mover_reset(st);
		return;
	}
	st->mover_wrote = true;
	cowfs_store_crash_point("puts");
	r = store_sync(st->mover, &err);
	if (r < 0)
		log_error("store %s: sync: %s", st->dir, err.msg);
	else
		cowfs_store_crash_point("sync");
	/* The new recipes beside the old ones: until each file is switched,
	 * its record still names the old recipe. */
	if (r == 0)
		r = root_commit(st, &st->set, extra, nm);
	store_end(st->mover);
	if (r < 0 || failed)
		mover_reset(st);
	if (r == 0) {
		cowfs_store_crash_point("commit");
		for (size_t i = 0; i < nm; i++) {
			struct move *m = &moves[i];
			int a = partial_adopt_store(fs, m->node, &m->entry.recipe, m->size, m->gen);
			if (a == 0) {
				cowfs_store_crash_point("adopt");
				set_drop_ino(&st->set, m->entry.ino);
				if (set_add(&st->set, m->entry.ino, &m->entry.recipe, m->entry.label, true) < 0)
					/* Without an entry the next commit would
					 * drop what the file reads: keep the old
					 * root until the upkeep pass finds it. */
					log_error("store: out of memory; root %s waits for the upkeep pass", st->root_name);
				st->set_dirty = true;
			} else {
				/* -EBUSY: written meanwhile; it moves at its next
				 * idle.  Its recipe leaves the root at the next
				 * commit. */
				if (a != -EBUSY)
					log_warn("store: upper inode %llu not switched to the store: %s",
						 (unsigned long long)m->entry.ino, strerror(-a));
				st->set_dirty = true;
			}
		}
	}
	for (size_t i = 0; i < nm; i++)
		free(moves[i].entry.label);
}

static void *mover_thread(void *arg)
{
	struct cowfs *fs = arg;
	struct cowfs_store *st = fs->store;
	struct cowfs_node *batch[BATCH_MAX];
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&st->lock);
	while (!st->stop) {
		apply_gone(st);
		uint64_t now = now_ns(), wait;
		size_t nb = take_due(st, batch, now, &wait);
		if (nb) {
			pthread_mutex_unlock(&st->lock);
			move_batch(fs, batch, nb);
			for (size_t i = 0; i < nb; i++)
				node_unref(fs, batch[i], 1);
			pthread_mutex_lock(&st->lock);
			continue;
		}
		if (now >= st->next_upkeep) {
			st->next_upkeep = now + UPKEEP_INTERVAL * 1000000000ull;
			pthread_mutex_unlock(&st->lock);
			upkeep(fs);
			pthread_mutex_lock(&st->lock);
			continue;
		}
		if (st->set_dirty && !wait) {
			/* Idle: the entries of switched, refused or freed files. */
			pthread_mutex_unlock(&st->lock);
			root_commit_alone(st);
			pthread_mutex_lock(&st->lock);
			continue;
		}
		if (st->mover_wrote && !st->head) {
			/* Idle: a pack is collected only once no live handle
			 * owns it (store.h), so give ours up; the next move
			 * starts a new one (gc merges small packs). */
			st->mover_wrote = false;
			pthread_mutex_unlock(&st->lock);
			mover_reset(st);
			pthread_mutex_lock(&st->lock);
			continue;
		}
		uint64_t until = st->next_upkeep;
		if (wait && wait < until)
			until = wait;
		/* The condition variable is on CLOCK_MONOTONIC (see start). */
		struct timespec ts = { (time_t)(until / 1000000000ull), (long)(until % 1000000000ull) };
		pthread_cond_timedwait(&st->cond, &st->lock, &ts);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

/* ---- start and stop ---- */

static void store_free(struct cowfs_store *st)
{
	for (int i = 0; i < st->pool_n; i++)
		store_close(st->pool[i]);
	if (st->mover)
		store_close(st->mover);
	set_release(&st->set);
	free(st->gone);
	pthread_mutex_destroy(&st->pool_lock);
	pthread_cond_destroy(&st->pool_cond);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st->dir);
	free(st->root_name);
	free(st);
}

int cowfs_store_check(const char *dir, const char *root, bool create, char *msg, size_t msg_len)
{
	struct corral_error err = { 0 };
	struct store *s;
	int r = store_open(dir, create ? STORE_CREATE : 0, &s, &err);
	if (r < 0) {
		if (r == -ENOENT && !create)
			snprintf(msg, msg_len, "no store in '%s' (store_create=1 makes one): %s", dir, err.msg);
		else
			snprintf(msg, msg_len, "cannot open the store in '%s': %s", dir, err.msg);
		return r;
	}
	struct store_root existing = { 0 };
	r = store_root_read(s, root, &existing, &err);
	if (r == -ENOENT)
		r = 0;
	else if (r < 0)
		/* A damaged root would be replaced by a shorter one: refuse. */
		snprintf(msg, msg_len, "cannot read root '%s' of the store in '%s': %s", root, dir, err.msg);
	store_root_release(&existing);
	store_close(s);
	return r;
}

int cowfs_store_start(struct cowfs *fs)
{
	if (!fs->store_dir)
		return 0;
	const char *crash = getenv("COWFS_TEST_CRASH_AT");
	if (crash && *crash)
		crash_at = crash;
	struct cowfs_store *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	pthread_mutex_init(&st->pool_lock, NULL);
	pthread_cond_init(&st->pool_cond, NULL);
	pthread_mutex_init(&st->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->cond, &ca);
	pthread_condattr_destroy(&ca);
	st->dir = strdup(fs->store_dir);
	st->root_name = strdup(fs->store_root);
	st->delay_ns = (uint64_t)fs->store_delay * 1000000000ull;
	st->next_upkeep = 0; /* at once */
	struct corral_error err = { 0 };
	int r = -ENOMEM;
	if (!st->dir || !st->root_name)
		goto fail;
	r = store_open(st->dir, fs->store_create ? STORE_CREATE : 0, &st->mover, &err);
	if (r < 0) {
		log_error("store %s: %s", st->dir, err.msg);
		goto fail;
	}
	/* Everything the root names stays named until the upkeep pass has
	 * seen what the upper really uses. */
	struct store_root existing = { 0 };
	r = store_root_read(st->mover, st->root_name, &existing, &err);
	if (r == -ENOENT) {
		r = 0;
	} else if (r < 0) {
		log_error("store %s: root %s: %s", st->dir, st->root_name, err.msg);
		goto fail;
	}
	for (size_t i = 0; r == 0 && i < existing.n; i++)
		r = set_add(&st->set, label_ino(existing.e[i].label), &existing.e[i].recipe, existing.e[i].label,
			    false);
	store_root_release(&existing);
	if (r < 0)
		goto fail;
	fs->store = st;
	r = -pthread_create(&st->thread, NULL, mover_thread, fs);
	if (r < 0) {
		fs->store = NULL;
		goto fail;
	}
	st->thread_started = true;
	return 0;
fail:
	store_free(st);
	return r;
}

void cowfs_store_stop(struct cowfs *fs)
{
	struct cowfs_store *st = fs->store;
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	st->stop = true;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
	if (st->thread_started)
		pthread_join(st->thread, NULL);
	/* Files still waiting stay in the upper; they move after the next
	 * mount's first idle or upkeep-free write, or never: correct, only
	 * not deduplicated. */
	for (struct queued *q = st->head, *next; q; q = next) {
		next = q->next;
		node_unref(fs, q->node, 1);
		free(q);
	}
	st->head = st->tail = NULL;
	apply_gone(st);
	if (st->set_dirty)
		root_commit_alone(st);
	fs->store = NULL;
	store_free(st);
}
