/* corral snapshot: create, list, remove, read (snapshot.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "cgroup/cgroup.h"
#include "cleanup.h"
#include "container/container-config.h"
#include "container/state.h"
#include "snapshot/snapshot.h"
#include "template/template.h"

int snapshot_tag_validate(const char *tag, struct corral_error *err)
{
	size_t n = strlen(tag);
	if (n == 0 || n > SNAPSHOT_TAG_MAX)
		return err_plain(err, EINVAL, "invalid snapshot tag '%s': 1 to %d characters", tag, SNAPSHOT_TAG_MAX);
	for (size_t i = 0; i < n; i++) {
		char c = tag[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '-'))
			return err_plain(err, EINVAL, "invalid snapshot tag '%s': only letters, digits, '_' and '-'",
					 tag);
	}
	return 0;
}

int snapshot_root_name(char *buf, size_t len, const char *name, const char *tag, struct corral_error *err)
{
	int r = name_validate("container", name, err);
	if (r == 0)
		r = snapshot_tag_validate(tag, err);
	if (r < 0)
		return r;
	int n = snprintf(buf, len, "snapshot.%s.%s", name, tag);
	if (n < 0 || (size_t)n >= len)
		return err_plain(err, ENAMETOOLONG, "snapshot name too long");
	return 0;
}

static int open_store(struct store **ret, struct corral_error *err)
{
	char dir[PATH_MAX];
	int r = state_store_dir(dir, sizeof(dir), err);
	return r < 0 ? r : store_open(dir, STORE_CREATE, ret, err);
}

/* The container's template rootfs (its lower layer), where the walk reads
 * lazily copied-up files' unwritten ranges: *ret, or -1 if the template
 * is gone (such a file then fails the snapshot with its name). */
static int open_template_rootfs(const char *name, int *ret, struct corral_error *err)
{
	char base[PATH_MAX];
	struct container_config cfg;
	*ret = -1;
	int r = config_load_container(name, &cfg, err);
	if (r < 0)
		return r;
	struct corral_error terr = { 0 };
	r = template_rootfs(state_root(), cfg.template_name, base, sizeof(base), &terr);
	config_release(&cfg);
	if (r == 0)
		*ret = open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void root_release(struct store_root *r)
{
	store_root_release(r);
	memset(r, 0, sizeof(*r));
}

/* Walks the upper, stores the manifest, commits the root; inside a store
 * transaction.  The root's entry 0 is the manifest. */
static int cut(struct store *s, int upper_fd, int lower_fd, const char *root_name, const struct snapshot_pass *prev,
	       struct snapshot_result *res, struct corral_error *err)
{
	struct manifest m = { 0 };
	struct store_root root = { 0 };
	root.e = calloc(1, sizeof(*root.e));
	if (!root.e)
		return err_set(err, ENOMEM, "snapshot");
	root.n = 1;
	root.e[0].label = strdup("manifest");
	int r = root.e[0].label ? 0 : err_set(err, ENOMEM, "snapshot");
	if (r == 0)
		r = prev ? snapshot_walk_pass2(s, upper_fd, lower_fd, prev, &m, &root, res, err)
			 : snapshot_walk_layers(s, upper_fd, lower_fd, &m, &root, res, err);
	void *buf = NULL;
	size_t len = 0;
	if (r == 0)
		r = manifest_encode(&m, &buf, &len, err);
	manifest_release(&m);
	if (r == 0) {
		/* The manifest is content like any other: put it as a file. */
		cleanup_close int mfd = memfd_create("corral-manifest", MFD_CLOEXEC);
		if (mfd < 0 || write(mfd, buf, len) != (ssize_t)len || lseek(mfd, 0, SEEK_SET) < 0)
			r = err_set(err, errno ? errno : EIO, "staging the manifest");
		uint64_t got;
		if (r == 0)
			r = store_put_fd(s, mfd, &root.e[0].recipe, &got, err);
	}
	free(buf);
	if (r == 0)
		r = store_root_commit(s, root_name, &root, err);
	root_release(&root);
	return r;
}

/* Whether the two-pass snapshot's rule ("ctime unchanged: content, xattrs
 * and names unchanged", snapshot-walk.c, file_recipe()) holds for the
 * upper: multigrain timestamps (Linux 6.13 and later) on a filesystem that
 * has them and whose O_DIRECT reads wait for buffered writes (ext4, xfs,
 * btrfs; not tmpfs, whose O_DIRECT reads take no lock).  Elsewhere a
 * ctime may stay the same across a change within a timer tick, so the
 * snapshot falls back to one walk, all of it frozen. */
static bool two_pass_sound(int ufd)
{
	struct statfs sf;
	struct utsname u;
	unsigned maj = 0, min = 0;
	if (fstatfs(ufd, &sf) < 0 || uname(&u) < 0 || sscanf(u.release, "%u.%u", &maj, &min) != 2)
		return false;
	if (sf.f_type != EXT4_SUPER_MAGIC && sf.f_type != XFS_SUPER_MAGIC && sf.f_type != BTRFS_SUPER_MAGIC)
		return false;
	return maj > 6 || (maj == 6 && min >= 13);
}

/* 2 for a running container whose upper allows it, else 1 (nothing to
 * gain when stopped).  CORRAL_SNAPSHOT_PASSES=1 or 2 forces one (tests:
 * 2 on a stopped container compares the two walks). */
static int snapshot_passes(int ufd, bool running)
{
	const char *e = getenv("CORRAL_SNAPSHOT_PASSES");
	if (e && !strcmp(e, "1"))
		return 1;
	if (e && !strcmp(e, "2"))
		return 2;
	return running && two_pass_sound(ufd) ? 2 : 1;
}

/* Test hook: CORRAL_TEST_PAUSE_BETWEEN_PASSES=FIFO blocks after pass 1
 * until the FIFO's writer (the test, which changes files meanwhile)
 * closes it. */
static void pause_between_passes(void)
{
	const char *f = getenv("CORRAL_TEST_PAUSE_BETWEEN_PASSES");
	if (!f || !*f)
		return;
	cleanup_close int fd = open(f, O_RDONLY | O_CLOEXEC);
	char b[64];
	for (ssize_t n = 1; fd >= 0 && n != 0;)
		if ((n = read(fd, b, sizeof(b))) < 0 && errno != EINTR)
			break;
}

int snapshot_create(const char *name, const char *tag, struct snapshot_result *ret, struct corral_error *err)
{
	char root_name[256], upper[PATH_MAX];
	memset(ret, 0, sizeof(*ret));
	int r = snapshot_root_name(root_name, sizeof(root_name), name, tag, err);
	if (r == 0)
		r = state_path(upper, sizeof(upper), name, "upper", err);
	if (r < 0)
		return r;
	struct container_state st;
	r = state_load(name, &st, err);
	if (r < 0)
		return r;
	cleanup_close int ufd = open(upper, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ufd < 0)
		return err_set(err, errno, "opening the upper layer of '%s'", name);
	cleanup_close int lfd = -1;
	r = open_template_rootfs(name, &lfd, err);
	if (r < 0)
		return r;
	struct store *s;
	r = open_store(&s, err);
	if (r < 0)
		return r;
	struct store_root old;
	if (store_root_read(s, root_name, &old, NULL) == 0) {
		store_root_release(&old);
		store_close(s);
		return err_plain(err, EEXIST, "container '%s' already has a snapshot '%s'", name, tag);
	}
	r = store_begin(s, err);
	if (r < 0) {
		store_close(s);
		return r;
	}
	bool running = state_init_alive(&st);
	int passes = snapshot_passes(ufd, running);
	struct snapshot_pass *prev = NULL;
	struct snapshot_result res1 = { 0 };
	if (passes == 2) {
		/* Pass 1, the tenant running: what it reads need not be read
		 * again under the freeze if it does not change meanwhile. */
		struct corral_error perr = { 0 };
		if (snapshot_walk_pass1(s, ufd, lfd, &prev, &res1, &perr) < 0)
			passes = 1;	/* the tenant raced it: one frozen pass */
		else
			pause_between_passes();
		/* What pass 1 put into the store (on the upper's filesystem,
		 * as a rule) is written back now, not by the frozen syncfs. */
		if (running)
			(void)syncfs(ufd);
	}
	ret->passes = passes;
	struct cgroup *cg = NULL;
	if (running) {
		/* Running: freeze every process (cowfs's daemon too) for the cut;
		 * cowfs writes through, so syncfs of the frozen upper is the tree
		 * the tenant sees. */
		char inst[CORRAL_INSTANCE_NAME_MAX];
		r = cgroup_open(state_instance_name(name, inst, sizeof(inst)), &cg, err);
		double t0 = now_ms();
		if (r == 0) {
			r = cgroup_freeze(cg, true, err);
			ret->frozen = true;
		}
		if (r == 0 && syncfs(ufd) < 0)
			r = err_set(err, errno, "syncfs of the upper layer");
		if (r == 0)
			r = cut(s, ufd, lfd, root_name, prev, ret, err);
		if (cg) {
			struct corral_error terr = { 0 };
			int t = cgroup_freeze(cg, false, &terr);
			ret->freeze_ms = now_ms() - t0;
			if (t < 0 && r == 0) {
				*err = terr;
				r = t;
			}
			cgroup_free(cg);
		}
	} else {
		r = cut(s, ufd, lfd, root_name, prev, ret, err);
	}
	snapshot_pass_free(prev);
	ret->bytes_put_frozen = ret->frozen ? ret->bytes_put : 0;
	ret->bytes_put += res1.bytes_put;
	ret->files_reused += res1.files_reused;
	store_end(s);
	store_close(s);
	return r < 0 ? err_wrap(err, "snapshot of '%s'", name) : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int snapshot_list(const char *name, char ***ret, size_t *ret_n, struct corral_error *err)
{
	int r = name_validate("container", name, err);
	if (r < 0)
		return r;
	struct store *s;
	r = open_store(&s, err);
	if (r < 0)
		return r;
	char **names;
	size_t n;
	r = store_root_list(s, &names, &n, err);
	store_close(s);
	if (r < 0)
		return r;
	char prefix[256];
	snprintf(prefix, sizeof(prefix), "snapshot.%s.", name);
	size_t pl = strlen(prefix), k = 0;
	char **tags = calloc(n ? n : 1, sizeof(*tags));
	for (size_t i = 0; i < n; i++) {
		const char *t = names[i] + pl;
		/* Tags have no '.': "snapshot.a.b.c" is a.b's, never a's. */
		if (tags && !strncmp(names[i], prefix, pl) && !strchr(t, '.') && *t)
			tags[k++] = strdup(t);
		free(names[i]);
	}
	free(names);
	if (!tags)
		return err_set(err, ENOMEM, "snapshot list");
	for (size_t i = 0; i < k; i++)
		if (!tags[i]) {
			for (size_t j = 0; j < k; j++)
				free(tags[j]);
			free(tags);
			return err_set(err, ENOMEM, "snapshot list");
		}
	qsort(tags, k, sizeof(*tags), cmp_str);
	*ret = tags;
	*ret_n = k;
	return 0;
}

int snapshot_remove(const char *name, const char *tag, struct corral_error *err)
{
	char root_name[256];
	int r = snapshot_root_name(root_name, sizeof(root_name), name, tag, err);
	if (r < 0)
		return r;
	struct store *s;
	r = open_store(&s, err);
	if (r < 0)
		return r;
	r = store_root_remove(s, root_name, err);
	store_close(s);
	if (r == -ENOENT)
		return err_plain(err, ENOENT, "container '%s' has no snapshot '%s'", name, tag);
	return r;
}

static void tags_free(char **tags, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(tags[i]);
	free(tags);
}

int snapshot_count(const char *name, size_t *ret, struct corral_error *err)
{
	char dir[PATH_MAX];
	*ret = 0;
	int r = name_validate("container", name, err);
	if (r == 0)
		r = state_store_dir(dir, sizeof(dir), err);
	if (r < 0)
		return r;
	struct stat st;
	if (lstat(dir, &st) < 0)
		return errno == ENOENT ? 0 : err_set(err, errno, "stat of %s", dir);
	char **tags;
	r = snapshot_list(name, &tags, ret, err);
	if (r == 0)
		tags_free(tags, *ret);
	return r;
}

int snapshot_remove_all(const char *name, size_t *ret_n, struct corral_error *err)
{
	size_t n;
	*ret_n = 0;
	int r = snapshot_count(name, &n, err);
	if (r < 0 || n == 0)
		return r;
	char **tags;
	r = snapshot_list(name, &tags, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++) {
		r = snapshot_remove(name, tags[i], err);
		if (r == -ENOENT)	/* removed meanwhile by another command */
			r = 0;
		else if (r == 0)
			(*ret_n)++;
	}
	tags_free(tags, n);
	return r < 0 ? err_wrap(err, "removing the snapshots of '%s'", name) : 0;
}

int snapshot_read_manifest(struct store *s, const char *name, const char *tag, struct manifest *ret,
			   struct corral_error *err)
{
	char root_name[256];
	int r = snapshot_root_name(root_name, sizeof(root_name), name, tag, err);
	if (r < 0)
		return r;
	struct store_root root;
	r = store_root_read(s, root_name, &root, err);
	if (r == -ENOENT)
		return err_plain(err, ENOENT, "container '%s' has no snapshot '%s'", name, tag);
	if (r < 0)
		return r;
	if (root.n == 0 || strcmp(root.e[0].label, "manifest")) {
		store_root_release(&root);
		return err_plain(err, EINVAL, "snapshot '%s' of '%s' has no manifest", tag, name);
	}
	struct store_recipe rec;
	r = store_get_recipe(s, &root.e[0].recipe, &rec, err);
	store_root_release(&root);
	if (r < 0)
		return err_wrap(err, "manifest of snapshot '%s' of '%s'", tag, name);
	void *buf = NULL;
	if (rec.size > 512u * 1024 * 1024)
		r = err_plain(err, EFBIG, "manifest of snapshot '%s' of '%s' is too large", tag, name);
	else if (!(buf = malloc(rec.size ? rec.size : 1)))
		r = err_set(err, ENOMEM, "manifest");
	if (r == 0)
		r = store_get_blocks(s, rec.e, rec.n, buf, err);
	if (r == 0)
		r = manifest_parse(buf, rec.size, ret, err);
	if (r < 0)
		err_wrap(err, "manifest of snapshot '%s' of '%s'", tag, name);
	free(buf);
	store_recipe_release(&rec);
	return r;
}
