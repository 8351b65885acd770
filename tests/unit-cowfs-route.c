/* unit-cowfs-route: the per-open route of cowfs (cowfs/cowfs-route.c) on a
 * bare struct cowfs and node (no mount).
 *
 * route_policy: the safe set, one case per rule (passthrough off, upper
 * files, exec of a lower file, plain opens of a lower file, O_TMPFILE,
 * share_base, each limit).  route_attach / route_detach / route_write_begin: the
 * kernel's io mode kept per node, in the states that need no kernel (a
 * backing file is only registered for a node with no handle, which these
 * cases never reach): an open joins the passthrough its inode is in
 * whatever the policy says; an open that wants passthrough beside cached
 * handles gets the page cache; the page cache is not trusted after
 * passthrough; a write waits for a lower backing file to go, and is refused
 * (ETXTBSY) while it stays; an upper backing file does not hold writes. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cowfs/cowfs.h"
#include "cowfs/cowfs-route.h"
#include "tap.h"

static struct cowfs fs;

/* The backing id given to the kernel; builds without passthrough (libfuse
 * < 3.17.1) have no such field: -1, and EXPECT_ID(x) is -1 too. */
#ifdef HAVE_FUSE_PASSTHROUGH
#define EXPECT_ID(x) (x)
static int backing_of(const struct fuse_file_info *fi)
{
	return fi->backing_id;
}
#else
#define EXPECT_ID(x) (-1)
static int backing_of(const struct fuse_file_info *fi)
{
	(void)fi;
	return -1;
}
#endif

static bool policy_is_of(int layer, int flags, bool tmpfile, bool partial, enum route_kind want)
{
	const char *why = NULL;
	enum route_kind got = route_policy(&fs, layer, flags, tmpfile, partial, &why);
	if (got != want)
		diag("got %s (%s)", got == ROUTE_PASSTHROUGH ? "passthrough" : "daemon", why ? why : "no reason");
	return got == want && why && *why;
}

static bool policy_is(int layer, int flags, bool tmpfile, enum route_kind want)
{
	return policy_is_of(layer, flags, tmpfile, false, want);
}

static void test_policy(void)
{
	fs.passthrough = false;
	ok(policy_is(0, O_RDWR, false, ROUTE_DAEMON), "policy: passthrough off: an upper file through the daemon");
	fs.passthrough = true;
	ok(policy_is(0, O_RDWR, false, ROUTE_PASSTHROUGH), "policy: upper file, read-write: passthrough");
	ok(policy_is(0, O_RDONLY, false, ROUTE_PASSTHROUGH), "policy: upper file, read-only: passthrough");
	ok(policy_is(1, O_RDONLY | COWFS_FMODE_EXEC, false, ROUTE_PASSTHROUGH),
	   "policy: exec of a lower file: passthrough");
	ok(policy_is(1, O_RDONLY, false, ROUTE_DAEMON), "policy: plain open of a lower file: the daemon");
	ok(policy_is(0, O_RDWR, true, ROUTE_DAEMON), "policy: O_TMPFILE: the daemon");
	ok(policy_is_of(0, O_RDONLY, false, true, ROUTE_DAEMON) && policy_is_of(0, O_RDWR, false, true, ROUTE_DAEMON),
	   "policy: a partial file (reads its source, copies blocks in): the daemon");

	fs.share_base = true;
	ok(policy_is(1, O_RDONLY, false, ROUTE_PASSTHROUGH), "policy: share_base: read-only open of a lower file: passthrough");
	ok(policy_is(1, O_RDWR, false, ROUTE_DAEMON) && policy_is(1, O_WRONLY, false, ROUTE_DAEMON) &&
	   policy_is(1, O_RDONLY | O_TRUNC, false, ROUTE_DAEMON),
	   "policy: share_base: a lower open that may write (O_RDWR, O_WRONLY, O_TRUNC): the daemon");
	fs.quota_bytes = 1 << 20;
	ok(policy_is(1, O_RDONLY, false, ROUTE_PASSTHROUGH) && policy_is(0, O_RDONLY, false, ROUTE_DAEMON),
	   "policy: share_base with quota_bytes: lower reads passthrough, upper files the daemon");
	fs.quota_bytes = 0;
	fs.read_bps.per_second = 1;
	ok(policy_is(1, O_RDONLY, false, ROUTE_DAEMON), "policy: share_base with read_bps: the daemon paces lower reads");
	fs.read_bps.per_second = 0;
	fs.share_base = false;

	fs.quota_bytes = 1 << 20;
	ok(policy_is(0, O_RDONLY, false, ROUTE_DAEMON) && policy_is(0, O_WRONLY, false, ROUTE_DAEMON) &&
	   policy_is(1, COWFS_FMODE_EXEC, false, ROUTE_PASSTHROUGH),
	   "policy: quota_bytes: upper files through the daemon, exec of a lower file still passthrough");
	fs.quota_bytes = 0;
	fs.quota_inodes = 10;
	ok(policy_is(0, O_RDWR, false, ROUTE_PASSTHROUGH), "policy: quota_inodes alone: upper files passthrough");
	fs.quota_inodes = 0;
	fs.write_bps.per_second = 1;
	ok(policy_is(0, O_RDONLY, false, ROUTE_DAEMON), "policy: write_bps: upper files through the daemon");
	fs.write_bps.per_second = 0;
	fs.write_iops.per_second = 1;
	ok(policy_is(0, O_WRONLY, false, ROUTE_DAEMON), "policy: write_iops: upper files through the daemon");
	fs.write_iops.per_second = 0;
	fs.read_bps.per_second = 1;
	ok(policy_is(1, COWFS_FMODE_EXEC, false, ROUTE_DAEMON) && policy_is(0, O_RDWR, false, ROUTE_DAEMON),
	   "policy: read_bps: everything through the daemon, exec too");
	fs.read_bps.per_second = 0;
	fs.read_iops.per_second = 1;
	ok(policy_is(1, COWFS_FMODE_EXEC, false, ROUTE_DAEMON), "policy: read_iops: exec through the daemon");
	fs.read_iops.per_second = 0;
}

static struct cowfs_node *new_node(void)
{
	struct cowfs_node *n = calloc(1, sizeof(*n) + 2 * sizeof(int));
	if (!n)
		abort();
	n->fds[0] = n->fds[1] = -1;
	return n;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct release_later {
	struct cowfs_node *n;
	useconds_t after;
};

static void *release_later(void *arg)
{
	struct release_later *r = arg;
	usleep(r->after);
	route_detach(&fs, r->n, true);
	return NULL;
}

static void test_modes(void)
{
	struct fuse_file_info fi;
	bool pt;
	fs.passthrough = true;

	/* An inode in passthrough on its upper file: every open joins it,
	 * even one the policy sends to the daemon (an O_TMPFILE here). */
	struct cowfs_node *n = new_node();
	n->io = (struct cowfs_io){ .pt = 1, .pt_id = 7, .pt_layer = 0 };
	memset(&fi, 0, sizeof(fi));
	route_attach(&fs, n, -1, 0, O_RDONLY, true, &fi, &pt);
	ok(pt && backing_of(&fi) == EXPECT_ID(7) && !fi.keep_cache && n->io.pt == 2 && n->io.cached == 0,
	   "mode: an inode in passthrough: a new open joins its backing file, whatever the policy");
	route_detach(&fs, n, true);
	ok(n->io.pt == 1 && n->io.pt_id == 7, "mode: one of two passthrough handles gone: the backing file stays");

	/* Cached handles open: an open that wants passthrough gets the
	 * page cache, which stays valid. */
	n->io = (struct cowfs_io){ .cached = 1 };
	memset(&fi, 0, sizeof(fi));
	route_attach(&fs, n, -1, 0, O_RDWR, false, &fi, &pt);
	ok(!pt && backing_of(&fi) == EXPECT_ID(0) && fi.keep_cache && n->io.cached == 2,
	   "mode: beside cached handles an upper open gets the page cache, kept");
	route_detach(&fs, n, false);
	route_detach(&fs, n, false);
	ok(n->io.cached == 0, "mode: cached handles counted down");

	/* After passthrough the page cache is not trusted once. */
	n->io = (struct cowfs_io){ .pt = 1, .pt_id = 0, .pt_layer = 0 };
	route_detach(&fs, n, true);
	memset(&fi, 0, sizeof(fi));
	route_attach(&fs, n, -1, 1, O_RDONLY, false, &fi, &pt);
	ok(!pt && !fi.keep_cache && n->io.cached == 1 && !n->io.cache_stale,
	   "mode: the first cached open after passthrough drops the page cache");
	route_detach(&fs, n, false);

	/* A write waits for a lower backing file to go... */
	n->io = (struct cowfs_io){ .pt = 1, .pt_id = 0, .pt_layer = 1 };
	struct release_later rl = { n, 100000 };
	pthread_t t;
	pthread_create(&t, NULL, release_later, &rl);
	int r = route_write_begin(&fs, n);
	pthread_join(t, NULL);
	ok(r == 0 && n->io.pt == 0 && n->io.writers == 1,
	   "write: waits for the passthrough handle on the lower copy to close");
	/* ...and meanwhile an exec of the lower copy goes through the daemon. */
	memset(&fi, 0, sizeof(fi));
	route_attach(&fs, n, -1, 1, O_RDONLY | COWFS_FMODE_EXEC, false, &fi, &pt);
	ok(!pt && n->io.cached == 1, "write: an exec opened during a write open goes through the daemon");
	route_detach(&fs, n, false);
	/* ...and so does a share_base read of it (it would read a lower
	 * copy the write is replacing). */
	fs.share_base = true;
	memset(&fi, 0, sizeof(fi));
	route_attach(&fs, n, -1, 1, O_RDONLY, false, &fi, &pt);
	ok(!pt && n->io.cached == 1, "write: a share_base read opened during a write open goes through the daemon");
	route_detach(&fs, n, false);
	fs.share_base = false;
	route_write_end(&fs, n);
	ok(n->io.writers == 0, "write: route_write_end counts down");

	/* ...and is refused while it stays. */
	n->io = (struct cowfs_io){ .pt = 1, .pt_id = 0, .pt_layer = 1 };
	double t0 = now();
	r = route_write_begin(&fs, n);
	ok(r == -ETXTBSY && n->io.writers == 0 && now() - t0 >= 1.0,
	   "write: a passthrough handle on the lower copy that stays open refuses it (ETXTBSY, after waiting)");

	/* A plain open waits for a lower exec handle a moment, then joins
	 * it; an exec joins at once. */
	memset(&fi, 0, sizeof(fi));
	route_attach(&fs, n, -1, 1, O_RDONLY | COWFS_FMODE_EXEC, false, &fi, &pt);
	ok(pt && n->io.pt == 2, "mode: an exec joins a lower backing file");
	memset(&fi, 0, sizeof(fi));
	route_attach(&fs, n, -1, 0, O_RDONLY, false, &fi, &pt);
	ok(pt && n->io.pt == 3, "mode: a plain open of the inode joins the lower backing file too (the kernel takes nothing else)");
	/* A share_base read joins it too, and holds off writes like it. */
	fs.share_base = true;
	memset(&fi, 0, sizeof(fi));
	route_attach(&fs, n, -1, 1, O_RDONLY, false, &fi, &pt);
	ok(pt && n->io.pt == 4, "mode: share_base: a read-only open joins the lower backing file");
	route_detach(&fs, n, true);
	fs.share_base = false;
	for (int i = 0; i < 3; i++)
		route_detach(&fs, n, true);
	ok(n->io.pt == 0, "mode: all passthrough handles gone");

	/* An upper backing file does not hold writes. */
	n->io = (struct cowfs_io){ .pt = 2, .pt_id = 0, .pt_layer = 0 };
	ok(route_write_begin(&fs, n) == 0, "write: passthrough handles on the upper file do not hold it");
	route_write_end(&fs, n);
	free(n);
}

int main(void)
{
	route_init(&fs);
	test_policy();
	test_modes();
	return tap_done();
}
