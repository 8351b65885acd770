/* corral rollback: a container's upper becomes exactly a snapshot's
 * (snapshot.h).
 *
 * The new upper is built from the manifest in a staging directory beside
 * the old one ("upper.rollback"): directories, symlinks, devices and
 * whiteouts, hard links, and regular files as store-backed partial files
 * (a sparse file of the right size and the record naming the recipe,
 * encoded by cowfs's own partial_record_encode), so the time does not grow
 * with the data; then owners, xattrs, modes, and in a last pass the times
 * (a directory's mtime moves while its children are made).  The container's
 * store root (container.NAME) is extended with the new files' recipes
 * before the swap, so they stay reachable once the snapshot is removed
 * (cowfs's upkeep pass trims the root to what the upper uses at its next
 * start).  Then the tree is synced and the two directories are exchanged
 * in one renameat2(RENAME_EXCHANGE); the old tree is removed and the work
 * directory emptied.  A crash before the exchange leaves the old upper
 * whole (and a staging tree that the next rollback removes), after it the
 * new one. */
#include "config.h"

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
#include <unistd.h>

#include "cleanup.h"
#include "container/container-config.h"
#include "container/state.h"
#include "cowfs/cowfs-partial-record.h"
#include "fileio.h"
#include "snapshot/snapshot.h"

#define PARTIAL_XATTR "trusted.corral.partial"
#define STAGING STATE_UPPER_STAGING

/* Crash points for the tests: CORRAL_TEST_CRASH_AT=STEP kills corral with
 * SIGKILL right after STEP: "building" (half the entries made), "built"
 * (the new tree made and synced), "committed" (the store root names its
 * recipes), "exchanged" (the two uppers swapped), "old-removed" (the old
 * tree removed) and "work-cleared" (the old work directory's content
 * gone).  Set by whoever runs corral on the host, never by a tenant. */
static void crash_point(const char *step)
{
	const char *at = getenv("CORRAL_TEST_CRASH_AT");
	if (at && !strcmp(at, step))
		kill(getpid(), SIGKILL);
}

/* `path` below dirfd, no symlink followed, never above dirfd. */
static int open_beneath(int dirfd, const char *path, int flags)
{
	struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC),
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

/* The parent directory of entry path p (O_PATH) and p's last name. */
static int open_parent(int stage, const char *p, const char **base)
{
	const char *slash = strrchr(p, '/');
	if (!slash) {
		*base = p;
		return open_beneath(stage, ".", O_PATH | O_DIRECTORY);
	}
	*base = slash + 1;
	char dir[MANIFEST_PATH_MAX + 1];
	memcpy(dir, p, (size_t)(slash - p));
	dir[slash - p] = '\0';
	return open_beneath(stage, dir, O_PATH | O_DIRECTORY);
}

static int set_xattrs(int fd, const struct manifest_entry *e, struct corral_error *err)
{
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	for (uint32_t k = 0; k < e->nxattrs; k++)
		if (setxattr(proc, e->xattrs[k].name, e->xattrs[k].value, e->xattrs[k].len, 0) < 0)
			return err_set(err, errno, "setting xattr %s on '%s'", e->xattrs[k].name, e->path);
	return 0;
}

static int root_add(struct store_root *root, const struct store_key *k, ino_t ino, const char *path)
{
	struct store_root_entry *ne = realloc(root->e, (root->n + 1) * sizeof(*ne));
	if (!ne)
		return -ENOMEM;
	root->e = ne;
	char *label;
	if (asprintf(&label, "ino %llu %s", (unsigned long long)ino, path) < 0)
		return -ENOMEM;
	ne[root->n].recipe = *k;
	ne[root->n].label = label;
	root->n++;
	return 0;
}

/* Makes entry e (not the root) below stage. */
static int make_entry(int stage, const struct manifest *m, const struct manifest_entry *e, struct store_root *root,
		      struct corral_error *err)
{
	const char *base;
	cleanup_close int pfd = open_parent(stage, e->path, &base);
	if (pfd < 0)
		return err_set(err, -pfd, "opening the parent of '%s'", e->path);
	if (e->link) {
		cleanup_close int t = open_beneath(stage, m->e[e->link - 1].path, O_PATH | O_NOFOLLOW);
		if (t < 0)
			return err_set(err, -t, "opening '%s'", m->e[e->link - 1].path);
		if (linkat(t, "", pfd, base, AT_EMPTY_PATH) < 0)
			return err_set(err, errno, "linking '%s'", e->path);
		return 0;
	}
	int r = 0;
	switch (e->mode & S_IFMT) {
	case S_IFDIR:
		r = mkdirat(pfd, base, 0700);
		break;
	case S_IFLNK:
		r = symlinkat(e->target, pfd, base);
		break;
	case S_IFREG: {
		cleanup_close int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return err_set(err, errno, "creating '%s'", e->path);
		if (e->size == 0)
			return 0;
		if (ftruncate(fd, (off_t)e->size) < 0)
			return err_set(err, errno, "sizing '%s'", e->path);
		/* Store-backed: cowfs reads every block from the recipe. */
		struct partial_record rec = { .kind = PARTIAL_STORE, .source_len = e->size, .recipe = e->recipe };
		uint8_t buf[PARTIAL_RECORD_MAX];
		int len = partial_record_encode(&rec, buf);
		if (len < 0)
			return err_set(err, -len, "encoding the record of '%s'", e->path);
		if (fsetxattr(fd, PARTIAL_XATTR, buf, (size_t)len, 0) < 0)
			return err_set(err, errno, "writing the record of '%s'", e->path);
		struct stat st;
		if (fstat(fd, &st) < 0 || root_add(root, &e->recipe, st.st_ino, e->path) < 0)
			return err_set(err, errno ? errno : ENOMEM, "recording '%s'", e->path);
		return 0;
	}
	default:
		r = mknodat(pfd, base, e->mode & S_IFMT, (dev_t)e->rdev);
		break;
	}
	return r < 0 ? err_set(err, errno, "creating '%s'", e->path) : 0;
}

/* Owner, xattrs, then mode (chown clears set-id bits and capabilities). */
static int set_meta(int stage, const struct manifest_entry *e, struct corral_error *err)
{
	cleanup_close int fd = open_beneath(stage, e->path, O_PATH | O_NOFOLLOW);
	if (fd < 0)
		return err_set(err, -fd, "opening '%s'", e->path);
	if (fchownat(fd, "", e->uid, e->gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return err_set(err, errno, "chown of '%s'", e->path);
	int r = set_xattrs(fd, e, err);
	if (r < 0)
		return r;
	if (!S_ISLNK(e->mode)) {
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		if (chmod(proc, e->mode & 07777) < 0)
			return err_set(err, errno, "chmod of '%s'", e->path);
	}
	return 0;
}

static int set_times(int stage, const struct manifest_entry *e, struct corral_error *err)
{
	const char *base;
	cleanup_close int pfd = !strcmp(e->path, ".") ? -1 : open_parent(stage, e->path, &base);
	struct timespec ts[2] = { { e->atime_sec, e->atime_nsec }, { e->mtime_sec, e->mtime_nsec } };
	int r = pfd == -1 && !strcmp(e->path, ".") ? futimens(stage, ts)
						   : utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW);
	return r < 0 ? err_set(err, errno, "times of '%s'", e->path) : 0;
}

static int build(int stage, const struct manifest *m, struct store_root *root, struct corral_error *err)
{
	int r = 0;
	for (size_t i = 1; i < m->n && r == 0; i++) {
		r = make_entry(stage, m, &m->e[i], root, err);
		if (i == m->n / 2)
			crash_point("building");
	}
	for (size_t i = 0; i < m->n && r == 0; i++)
		if (!m->e[i].link)
			r = set_meta(stage, &m->e[i], err);
	for (size_t i = m->n; i-- > 0 && r == 0;)
		if (!m->e[i].link)
			r = set_times(stage, &m->e[i], err);
	return r;
}

/* Empties the work directory (cowfs's scratch space, tied to the old
 * upper): an empty one is made beside it and exchanged with it, so that
 * a crash never leaves the container without one (cowfs would not mount);
 * the old one, then under the staging name, goes last. */
static int clear_work(int cdir, struct corral_error *err)
{
	struct stat st;
	if (fstatat(cdir, "work", &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			return err_set(err, errno, "stat of the work directory");
		st.st_mode = 0755;
		st.st_uid = 0;
		st.st_gid = 0;
	}
	int r = remove_tree_at(cdir, STATE_WORK_STAGING);
	if (r < 0 && r != -ENOENT)
		return err_set(err, -r, "removing a stale %s", STATE_WORK_STAGING);
	if (mkdirat(cdir, STATE_WORK_STAGING, st.st_mode & 07777) < 0 ||
	    fchownat(cdir, STATE_WORK_STAGING, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return err_set(err, errno, "making a new work directory");
	if (renameat2(cdir, STATE_WORK_STAGING, cdir, "work", RENAME_EXCHANGE) < 0 &&
	    (errno != ENOENT || renameat(cdir, STATE_WORK_STAGING, cdir, "work") < 0))
		return err_set(err, errno, "exchanging the work directories");
	crash_point("work-cleared");
	r = remove_tree_at(cdir, STATE_WORK_STAGING);
	if (r < 0 && r != -ENOENT)
		return err_set(err, -r, "removing the old work directory");
	return 0;
}

int snapshot_rollback_stopped(const char *name, const char *tag, struct snapshot_rollback_result *ret,
			      struct corral_error *err)
{
	return snapshot_build_upper(name, tag, name, ret, err);
}

int snapshot_build_upper(const char *src, const char *tag, const char *name, struct snapshot_rollback_result *ret,
			 struct corral_error *err)
{
	char cpath[PATH_MAX], sdir[PATH_MAX], root_name[256];
	memset(ret, 0, sizeof(*ret));
	int r = state_path(cpath, sizeof(cpath), name, NULL, err);
	if (r == 0)
		r = state_store_dir(sdir, sizeof(sdir), err);
	if (r == 0)
		r = state_store_root(root_name, sizeof(root_name), name, err);
	if (r < 0)
		return r;
	/* The new upper's files are store-backed: a container kept out of
	 * the store would refuse to start with them. */
	struct container_config cfg;
	r = config_load_container(name, &cfg, err);
	if (r < 0)
		return r;
	bool store_backed = cfg.store;
	config_release(&cfg);
	if (!store_backed)
		return err_plain(err, ENOTSUP,
				 "container '%s' keeps its files out of the block store (store = no): "
				 "rollback and clone need a store-backed container", name);
	struct store *s;
	r = store_open(sdir, STORE_CREATE, &s, err);
	if (r < 0)
		return r;
	struct manifest m = { 0 };
	r = snapshot_read_manifest(s, src, tag, &m, err);
	cleanup_close int cdir = -1, stage = -1;
	if (r == 0 && (cdir = open(cpath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		r = err_set(err, errno, "opening %s", cpath);
	/* Under the container's lock (start cleans leftovers under it, a
	 * teardown waits), and only if the container is still stopped. */
	cleanup_close int lock = -1;
	if (r == 0 && (lock = state_lock_container(name)) < 0)
		r = err_set(err, -lock, "locking container %s", name);
	struct container_state cst;
	if (r == 0 && state_load(name, &cst, NULL) == 0 && (state_init_alive(&cst) || state_cowfs_alive(&cst)))
		r = err_plain(err, EBUSY, "container '%s' is running: stop it first", name);
	/* What a crashed rollback left (a staging tree, old or new) goes first. */
	if (r == 0)
		r = state_clean_leftovers(name, err);
	if (r == 0 && mkdirat(cdir, STAGING, 0700) < 0)
		r = err_set(err, errno, "making %s/%s", cpath, STAGING);
	if (r == 0 && (stage = openat(cdir, STAGING, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		r = err_set(err, errno, "opening %s/%s", cpath, STAGING);
	struct store_root root = { 0 };
	if (r == 0) {
		int t = store_root_read(s, root_name, &root, NULL);
		if (t < 0 && t != -ENOENT)
			r = err_set(err, -t, "reading the store root %s", root_name);
	}
	if (r == 0)
		r = build(stage, &m, &root, err);
	if (r == 0 && syncfs(stage) < 0)
		r = err_set(err, errno, "syncing the new tree");
	if (r == 0)
		crash_point("built");
	/* The new files' recipes are named by the container's root before
	 * the upper names them. */
	if (r == 0 && (r = store_begin(s, err)) == 0) {
		r = store_root_commit(s, root_name, &root, err);
		store_end(s);
		if (r == 0)
			crash_point("committed");
	}
	store_root_release(&root);
	if (r == 0 && renameat2(cdir, STAGING, cdir, "upper", RENAME_EXCHANGE) < 0)
		r = err_set(err, errno, "exchanging the upper layers");
	if (r == 0 && fsync(cdir) < 0)
		r = err_set(err, errno, "syncing %s", cpath);
	if (r == 0)
		crash_point("exchanged");
	if (r == 0) {
		ret->entries = m.n;
		int t = remove_tree_at(cdir, STAGING);
		if (t < 0)
			r = err_set(err, -t, "removing the old upper (%s/%s)", cpath, STAGING);
	}
	if (r == 0)
		crash_point("old-removed");
	if (r == 0)
		r = clear_work(cdir, err);
	manifest_release(&m);
	store_close(s);
	if (r < 0 && strcmp(src, name))
		return err_wrap(err, "the tree of '%s' from snapshot '%s' of '%s'", name, tag, src);
	return r < 0 ? err_wrap(err, "rollback of '%s' to '%s'", name, tag) : 0;
}
