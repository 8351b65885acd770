/* unit-fileio: the one atomic file commit (file_commit_at and
 * file_write_atomic over it), the shared tree removal (common/fileio.c remove_tree_at) on
 * real directories and mounts, and the tree walk of tree_usage: a tree
 * deeper than the descriptor limit,
 * symlinks that lead out of the tree, mount points inside it (another
 * filesystem, and a bind mount of the same filesystem), and a top that is
 * itself a mount point.  Mount checks need root and skip otherwise. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "tap.h"

#define DEPTH 3000

static char tmp[PATH_MAX];

static int write_file(int dirfd, const char *name, const char *text)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* DEPTH nested directories "d" below dirfd/name, a file in each. */
static int make_deep(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0755) < 0)
		return -1;
	int cur = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (int i = 0; cur >= 0 && i < DEPTH; i++) {
		if (write_file(cur, "f", "x") < 0 || mkdirat(cur, "d", 0755) < 0) {
			close(cur);
			return -1;
		}
		int next = openat(cur, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(cur);
		cur = next;
	}
	if (cur < 0)
		return -1;
	close(cur);
	return 0;
}

static bool exists(const char *rel)
{
	char p[PATH_MAX];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", tmp, rel);
	return lstat(p, &st) == 0;
}

static void test_deep(int top)
{
	struct rlimit old, low = { 64, 64 };
	ok(make_deep(top, "deep") == 0, "made a tree %d directories deep", DEPTH);
	getrlimit(RLIMIT_NOFILE, &old);
	low.rlim_max = old.rlim_max;
	setrlimit(RLIMIT_NOFILE, &low);
	int64_t bytes = 0, inodes = 0;
	int fd = openat(top, "deep", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		tree_usage(fd, &bytes, &inodes);
	ok(inodes == 2 * DEPTH && bytes > 0, "tree_usage counts all of it with at most 64 descriptors (%lld of %d)",
	   (long long)inodes, 2 * DEPTH);
	int r = remove_tree_at(top, "deep");
	setrlimit(RLIMIT_NOFILE, &old);
	ok(r == 0, "removed it with at most 64 descriptors (%s)", r ? strerror(-r) : "ok");
	ok(!exists("deep"), "nothing of it is left");
}

/* A wide tree: the walk must resume each listing where it left it. */
static void test_wide(int top)
{
	char p[64];
	mkdirat(top, "wide", 0755);
	for (int i = 0; i < 50; i++) {
		snprintf(p, sizeof(p), "wide/d%d", i);
		mkdirat(top, p, 0755);
		for (int j = 0; j < 20; j++) {
			snprintf(p, sizeof(p), "wide/d%d/f%d", i, j);
			write_file(top, p, "x");
		}
		for (int k = 0; k < 3; k++) {
			snprintf(p, sizeof(p), "wide/d%d/s%d", i, k);
			mkdirat(top, p, 0755);
			for (int j = 0; j < 5; j++) {
				snprintf(p, sizeof(p), "wide/d%d/s%d/f%d", i, k, j);
				write_file(top, p, "x");
			}
		}
	}
	int64_t bytes = 0, inodes = 0;
	int fd = openat(top, "wide", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		tree_usage(fd, &bytes, &inodes);
	ok(inodes == 1950, "tree_usage counts each of 1,950 entries of a wide tree once (%lld)", (long long)inodes);
	int r = remove_tree_at(top, "wide");
	ok(r == 0 && !exists("wide"), "the wide tree is removed (%s)", r ? strerror(-r) : "ok");
}

/* Hard links share their blocks: counted once, each name still an entry
 * (the cowfs quota counts the same way). */
static void test_hardlinks(int top)
{
	static char block[65536];
	struct stat st;
	mkdirat(top, "links", 0755);
	int fd = openat(top, "links/a", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	bool made = fd >= 0 && write(fd, block, sizeof(block)) == (ssize_t)sizeof(block) && fsync(fd) == 0 &&
		    fstat(fd, &st) == 0;
	if (fd >= 0)
		close(fd);
	made = made && linkat(top, "links/a", top, "links/b", 0) == 0 && linkat(top, "links/a", top, "links/c", 0) == 0;
	int64_t bytes = 0, inodes = 0;
	fd = openat(top, "links", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		tree_usage(fd, &bytes, &inodes);
	ok(made && bytes == (int64_t)st.st_blocks * 512 && inodes == 3,
	   "tree_usage counts a file with three names once (%lld bytes, want %lld; %lld entries)", (long long)bytes,
	   made ? (long long)st.st_blocks * 512 : -1LL, (long long)inodes);
	remove_tree_at(top, "links");
}

static void test_symlinks(int top)
{
	mkdirat(top, "outside", 0755);
	write_file(top, "outside/keep", "keep");
	mkdirat(top, "tree", 0755);
	mkdirat(top, "tree/sub", 0755);
	char target[PATH_MAX];
	snprintf(target, sizeof(target), "%s/outside", tmp);
	symlinkat(target, top, "tree/sub/link-dir");
	symlinkat("../../outside/keep", top, "tree/sub/link-file");
	int r = remove_tree_at(top, "tree");
	ok(r == 0 && !exists("tree"), "a tree with symlinks to the outside is removed (%s)",
	   r ? strerror(-r) : "ok");
	ok(exists("outside/keep"), "what the symlinks pointed to is untouched");
	symlinkat("outside", top, "top-link");
	r = remove_tree_at(top, "top-link");
	ok(r == 0 && !exists("top-link") && exists("outside/keep"),
	   "a symlink given as the top is unlinked, its target kept");
}

static void test_mounts(int top)
{
	if (geteuid() != 0) {
		skip("not root", "mount points inside the tree");
		skip("not root", "bind mounts inside the tree");
		skip("not root", "a top that is a mount point");
		return;
	}
	char p[PATH_MAX], q[PATH_MAX];
	/* Another filesystem inside the tree. */
	mkdirat(top, "m1", 0755);
	mkdirat(top, "m1/a", 0755);
	mkdirat(top, "m1/a/mnt", 0755);
	snprintf(p, sizeof(p), "%s/m1/a/mnt", tmp);
	bool mounted = mount("tmpfs", p, "tmpfs", 0, "size=1m") == 0;
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		write_file(fd, "inside", "x");
		close(fd);
	}
	int r = remove_tree_at(top, "m1");
	ok(mounted && r == -EXDEV && exists("m1/a/mnt/inside"),
	   "a tmpfs mounted inside: -EXDEV, its files untouched (%s)", strerror(-r));
	umount2(p, MNT_DETACH);
	/* A bind mount of a directory of the same filesystem: same st_dev,
	 * so only the mount id tells it apart. */
	mkdirat(top, "victim", 0755);
	write_file(top, "victim/precious", "x");
	mkdirat(top, "m2", 0755);
	mkdirat(top, "m2/bind", 0755);
	snprintf(p, sizeof(p), "%s/victim", tmp);
	snprintf(q, sizeof(q), "%s/m2/bind", tmp);
	mounted = mount(p, q, NULL, MS_BIND, NULL) == 0;
	r = remove_tree_at(top, "m2");
	ok(mounted && r == -EXDEV && exists("victim/precious"),
	   "a bind mount of the same filesystem inside: -EXDEV, the bound directory untouched (%s)",
	   strerror(-r));
	umount2(q, MNT_DETACH);
	/* The top itself a mount point. */
	mkdirat(top, "m3", 0755);
	snprintf(p, sizeof(p), "%s/m3", tmp);
	mounted = mount("tmpfs", p, "tmpfs", 0, "size=1m") == 0;
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		write_file(fd, "inside", "x");
		close(fd);
	}
	r = remove_tree_at(top, "m3");
	ok(mounted && r == -EXDEV && exists("m3/inside"), "a top that is a mount point: -EXDEV, untouched (%s)",
	   strerror(-r));
	umount2(p, MNT_DETACH);
}

static void record_step(void *ctx, const char *step)
{
	char *log = ctx;
	strcat(log, step);
	strcat(log, " ");
}

static bool file_is(int dirfd, const char *name, const char *want)
{
	char buf[64] = "";
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n >= 0 && strcmp(buf, want) == 0;
}

static void test_commit(int top)
{
	mkdirat(top, "commit", 0700);
	int dir = openat(top, "commit", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char log[128] = "";
	write_file(dir, "f", "old");
	int r = file_commit_at(dir, "f", "new", 3, 0640, 0, record_step, log);
	struct stat st;
	ok(r == 0 && file_is(dir, "f", "new") && fstatat(dir, "f", &st, 0) == 0 && (st.st_mode & 07777) == 0640,
	   "file_commit_at replaces the content with the given mode (%s)", strerror(-r));
	ok(strcmp(log, "written synced renamed ") == 0, "the hook sees each step in order (%s)", log);

	/* A symlink planted at the temp name (a crashed writer's leftover,
	 * or a plant) is never written through. */
	write_file(dir, "victim", "keep");
	char tmpname[64];
	snprintf(tmpname, sizeof(tmpname), ".f.tmp.%d", (int)getpid());
	symlinkat("victim", dir, tmpname);
	r = file_commit_at(dir, "f", "third", 5, 0600, FILE_COMMIT_NO_SYNC, NULL, NULL);
	ok(r == 0 && file_is(dir, "f", "third") && file_is(dir, "victim", "keep"),
	   "a symlink at the temp name is replaced, not followed (%s)", strerror(-r));

	/* A failed commit leaves the old content and no temp. */
	mkdirat(dir, "d", 0700);
	r = file_commit_at(dir, "d", "x", 1, 0600, 0, NULL, NULL);
	ok(r == -EISDIR, "renaming over a directory fails with EISDIR (%s)", strerror(-r));
	snprintf(tmpname, sizeof(tmpname), ".d.tmp.%d", (int)getpid());
	ok(faccessat(dir, tmpname, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT, "the temp of a failed commit is removed");

	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/commit/g", tmp);
	struct corral_error err = { 0 };
	r = file_write_atomic(path, "abc", 3, 0600, &err);
	ok(r == 0 && file_is(dir, "g", "abc"), "file_write_atomic writes through the same commit (%s)", err.msg);
	snprintf(path, sizeof(path), "%s/commit/nodir/g", tmp);
	r = file_write_atomic(path, "abc", 3, 0600, &err);
	ok(r == -ENOENT && strstr(err.msg, "nodir/g"), "a missing directory is named: %s", err.msg);
	close(dir);
}

int main(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/unit-fileio.XXXXXX");
	if (!mkdtemp(tmp)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	int top = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	tap_plan(20);
	test_commit(top);
	test_deep(top);
	test_wide(top);
	test_hardlinks(top);
	test_symlinks(top);
	test_mounts(top);
	close(top);
	/* Cleanup, even after failures: mounts first, then the tree. */
	char p[PATH_MAX];
	static const char *const mnts[] = { "m1/a/mnt", "m2/bind", "m3" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", tmp, mnts[i]);
		umount2(p, MNT_DETACH);
	}
	remove_tree(tmp, NULL);
	return tap_done();
}
