/* kill -9 at every step of the store's write path: a child commits a root
 * (durable, reported to the parent), then dies at a fault point while
 * writing the next; the parent opens the store, which must open, fsck
 * clean (no error, nothing lost), hold every root the child reported
 * committed, byte for byte, and take new writes.  Then the same with a
 * child killed at random moments while it writes in a loop. */
#include "config.h"

#include <signal.h>
#include <time.h>

#include "store-test.h"

static const char *dir;

static const char *points[] = {
	"pack-create",	  /* a new pack made but not yet linked into place */
	"append-start",	  /* before a record's bytes are written */
	"append-torn",	  /* half a record written */
	"append-written", /* record written, not yet in the index */
	"indexed",	  /* in the index, not yet synced */
	"synced",	  /* packs synced, recipe or root not yet written */
	"commit-written", /* root's temp file written, not synced */
	"commit-synced",  /* temp synced, not renamed */
	"commit-renamed", /* renamed, directory not synced */
};

static void file_for(const char *path, int n)
{
	uint64_t ids[5];
	for (int i = 0; i < 5; i++)
		ids[i] = n * 10 + i;
	st_make_file(path, ids, 5, n * 10 + 9, 777 + n);
}

/* Writes root r<n> for n = 0, 1, ... reporting each n on `out` once its
 * commit returned; with `point`, dies there from file 1 on. */
static int child(const char *sdir, const char *point, int out, int nfiles)
{
	struct store *s = NULL;
	struct corral_error err = { 0 };
	if (store_open(sdir, STORE_CREATE, &s, &err) < 0)
		return 1;
	for (int n = 0; n < nfiles; n++) {
		char path[400], root[32];
		snprintf(path, sizeof(path), "%s/in-%d", sdir, n);
		snprintf(root, sizeof(root), "r%d", n);
		file_for(path, n);
		if (n == 1 && point) {
			/* A new handle, so its first write makes a new pack. */
			store_close(s);
			if (store_open(sdir, 0, &s, &err) < 0)
				return 1;
			store_test_crash_at(s, point);
		}
		if (st_put_root(s, root, path, NULL) < 0)
			return 1;
		if (write(out, &n, sizeof(n)) != sizeof(n))
			return 1;
	}
	store_close(s);
	return 0;
}

/* Opens the store after the crash and checks it; `committed` roots
 * r0..r<committed-1> must be there. */
static void check_after(const char *sdir, const char *what, int committed)
{
	struct store *s = NULL;
	struct corral_error err = { 0 };
	int r = store_open(sdir, 0, &s, &err);
	ok(r == 0, "%s: the store opens%s%s", what, r ? ": " : "", r ? err.msg : "");
	if (r < 0)
		return;
	struct st_report rep;
	ok(st_fsck(s, 0, &rep) == 0 && rep.errors == 0 && rep.lost == 0, "%s: fsck finds no error and nothing lost",
	   what);
	bool all = true;
	for (int n = 0; n < committed; n++) {
		char path[400], root[32];
		/* Made afresh: a killed child may have been rewriting in-<n>. */
		snprintf(path, sizeof(path), "%s/expect", sdir);
		file_for(path, n);
		snprintf(root, sizeof(root), "r%d", n);
		struct store_root rt;
		if (store_root_read(s, root, &rt, &err) < 0) {
			diag("%s", err.msg);
			all = false;
			continue;
		}
		all = all && st_same(s, &rt.e[0].recipe, path);
		store_root_release(&rt);
	}
	ok(all, "%s: the %d root(s) committed before the kill read back byte for byte", what, committed);
	/* A root the child was committing is either whole or absent. */
	struct store_root rt;
	char path[400];
	snprintf(path, sizeof(path), "%s/expect", sdir);
	file_for(path, committed);
	r = store_root_read(s, "r1", &rt, &err);
	if (committed < 2) {
		ok(r == -ENOENT || (r == 0 && st_same(s, &rt.e[0].recipe, path)),
		   "%s: the root being committed is absent or whole (%s)", what, r == 0 ? "whole" : "absent");
		if (r == 0)
			store_root_release(&rt);
	}
	/* And the store takes new writes: the same file again, and a new one. */
	snprintf(path, sizeof(path), "%s/new", sdir);
	file_for(path, 1);
	struct store_key k;
	ok(st_put_root(s, "after", path, &k) == 0 && st_same(s, &k, path), "%s: a new write after the crash reads back",
	   what);
	ok(st_fsck(s, 0, &rep) == 0 && rep.errors == 0 && rep.lost == 0, "%s: and fsck stays clean", what);
	store_close(s);
}

static void crash_at(const char *point)
{
	char sdir[400];
	snprintf(sdir, sizeof(sdir), "%s/%s", dir, point);
	int p[2];
	if (pipe(p) < 0)
		tap_bail("pipe");
	/* The store is made first, so the child's own dir exists. */
	struct store *s = NULL;
	store_open(sdir, STORE_CREATE, &s, NULL);
	store_close(s);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		_exit(child(sdir, point, p[1], 3));
	}
	close(p[1]);
	int n, committed = 0, status;
	while (read(p[0], &n, sizeof(n)) == sizeof(n))
		committed = n + 1;
	close(p[0]);
	waitpid(pid, &status, 0);
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && committed == 1,
	   "%s: the writer was killed there after committing %d root(s)", point, committed);
	check_after(sdir, point, committed);
}

/* Killed at random moments of a write loop, ten times over one store. */
static void crash_random(void)
{
	char sdir[400];
	snprintf(sdir, sizeof(sdir), "%s/random", dir);
	struct store *s = NULL;
	store_open(sdir, STORE_CREATE, &s, NULL);
	store_close(s);
	srand(time(NULL));
	int committed = 0, killed = 0;
	for (int round = 0; round < 10; round++) {
		int p[2];
		if (pipe(p) < 0)
			tap_bail("pipe");
		pid_t pid = fork();
		if (pid == 0) {
			close(p[0]);
			/* Each round rewrites r0.. with the same content. */
			_exit(child(sdir, NULL, p[1], 40));
		}
		close(p[1]);
		usleep(1000 + rand() % 60000);
		kill(pid, SIGKILL);
		int n, status;
		while (read(p[0], &n, sizeof(n)) == sizeof(n))
			if (n + 1 > committed)
				committed = n + 1;
		close(p[0]);
		waitpid(pid, &status, 0);
		killed += WIFSIGNALED(status);
	}
	diag("%d of 10 writers killed mid-loop; up to r%d committed", killed, committed - 1);
	ok(killed > 0, "writers were killed at random moments (%d of 10)", killed);
	check_after(sdir, "random kills", committed);
}

int main(void)
{
	dir = st_tmpdir();
	for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++)
		crash_at(points[i]);
	crash_random();
	return tap_done();
}
