/* posix-ops: copy-up, also concurrent. */
#include "posix-ops.h"

/* ---- copy-up ------------------------------------------------------------ */

/* Attributes of a copied-up cu/ file that the op did not change. */
static bool cu_kept(const char *p, bool content, bool mode, bool owner,
		    bool mtime)
{
	return (!content || content_is(p, CU_CONTENT)) &&
	       (!mode || mode_is(p, CU_MODE)) &&
	       (!owner || owner_is(p, CU_UID, CU_GID)) &&
	       (!mtime || mtime_is(p, BASE_MTIME_S, BASE_MTIME_NS)) &&
	       xattr_is(p, "user.cu", "base-value");
}

static void cu_check_upper(const char *op, const char *name)
{
	CHECK(type_is(U("cu/%s", name), S_IFREG) &&
	      xattr_is(U("cu/%s", name), "user.cu", "base-value"),
	      "copy-up %s: upper layer holds a regular file with the xattrs", op);
	CHECK(cu_base_intact(op), "copy-up %s: base file unchanged", op);
}

void test_copyup_write(void)
{
	const char *p = M("cu/write");
	int fd = open(p, O_WRONLY | O_CLOEXEC);

	CHECK(sys(fd, "open O_WRONLY") && sys(pwrite(fd, "XY", 2, 2), "pwrite") &&
	      sys(close(fd), "close"), "copy-up write: pwrite into base file");
	CHECK(content_is(p, "01XY456789abcdef\n"), "copy-up write: content");
	CHECK(cu_kept(p, false, true, true, false),
	      "copy-up write: mode, owner, xattr preserved");
	cu_check_upper("write", "write");
}

void test_copyup_truncate(void)
{
	const char *p = M("cu/truncate");

	CHECK(sys(truncate(p, 4), "truncate"), "copy-up truncate: truncate(4)");
	CHECK(content_is(p, "0123"), "copy-up truncate: content");
	CHECK(cu_kept(p, false, true, true, false),
	      "copy-up truncate: mode, owner, xattr preserved");
	cu_check_upper("truncate", "truncate");
}

void test_copyup_chmod(void)
{
	const char *p = M("cu/chmod");

	CHECK(sys(chmod(p, 0604), "chmod"), "copy-up chmod: chmod 0604");
	CHECK(mode_is(p, 0604), "copy-up chmod: new mode");
	CHECK(cu_kept(p, true, false, true, true),
	      "copy-up chmod: content, owner, ns mtime, xattr preserved");
	cu_check_upper("chmod", "chmod");
}

void test_copyup_chown(void)
{
	const char *p = M("cu/chown");

	CHECK(sys(chown(p, 4321, 8765), "chown"), "copy-up chown: chown");
	CHECK(owner_is(p, 4321, 8765), "copy-up chown: new owner");
	CHECK(cu_kept(p, true, true, false, true),
	      "copy-up chown: content, mode, ns mtime, xattr preserved");
	cu_check_upper("chown", "chown");
}

void test_copyup_utimens(void)
{
	const char *p = M("cu/utimens");
	struct timespec ts[2] = {
		{ .tv_sec = 1111111111, .tv_nsec = 222222222 },
		{ .tv_sec = 1234567890, .tv_nsec = 987654321 },
	};

	CHECK(sys(utimensat(AT_FDCWD, p, ts, 0), "utimensat"),
	      "copy-up utimensat: set both times");
	CHECK(mtime_is(p, 1234567890, 987654321) &&
	      atime_is(p, 1111111111, 222222222),
	      "copy-up utimensat: new ns atime and mtime");
	CHECK(cu_kept(p, true, true, true, false),
	      "copy-up utimensat: content, mode, owner, xattr preserved");
	cu_check_upper("utimens", "utimens");
}

void test_copyup_setxattr(void)
{
	const char *p = M("cu/setxattr");

	CHECK(sys(setxattr(p, "user.new", "new", 3, 0), "setxattr"),
	      "copy-up setxattr: set user.new");
	CHECK(xattr_is(p, "user.new", "new"), "copy-up setxattr: new xattr");
	CHECK(cu_kept(p, true, true, true, true),
	      "copy-up setxattr: content, mode, owner, ns mtime, old xattr preserved");
	cu_check_upper("setxattr", "setxattr");
}

/* chown clears a file capability: the copy gets its owner first and its
 * xattrs after, so security.capability survives the copy-up. */
void test_copyup_fcaps(void)
{
	static const unsigned char want[20] = { 0x01, 0x00, 0x00, 0x02, 0x00, 0x20 };
	const char *p = M("cu/fcaps");
	unsigned char got[64];

	CHECK(sys(setxattr(p, "user.trigger", "1", 1, 0), "setxattr"),
	      "copy-up fcaps: set user.trigger");
	ssize_t n = lgetxattr(U("cu/fcaps"), "security.capability", got, sizeof(got));
	CHECK((n >= 0 || sys(n, "getxattr security.capability in the upper")) &&
	      long_is(n, sizeof(want), "security.capability length") &&
	      (memcmp(got, want, sizeof(want)) == 0 || fail("security.capability differs")),
	      "copy-up fcaps: the upper copy keeps its file capability");
	n = lgetxattr(p, "security.capability", got, sizeof(got));
	CHECK((n >= 0 || sys(n, "getxattr security.capability")) &&
	      long_is(n, sizeof(want), "security.capability length") &&
	      (memcmp(got, want, sizeof(want)) == 0 || fail("security.capability differs")),
	      "copy-up fcaps: the merged file keeps its file capability");
	CHECK(owner_is(p, 1234, 5678) && mode_is(p, 0750), "copy-up fcaps: owner and mode kept");
}

void test_copyup_link(void)
{
	const char *p = M("cu/link");
	const char *q = M("cu/link.2");

	CHECK(sys(link(p, q), "link"), "copy-up link: link to new name");
	CHECK(cu_kept(p, true, true, true, true) &&
	      cu_kept(q, true, true, true, true),
	      "copy-up link: both names keep content, mode, owner, ns mtime, xattr");
	cu_check_upper("link", "link.2");
}

void test_copyup_rename(void)
{
	const char *p = M("cu/rename");
	const char *q = M("cu/rename.moved");

	CHECK(sys(rename(p, q), "rename"), "copy-up rename: rename to new name");
	CHECK(cu_kept(q, true, true, true, true) && absent(p),
	      "copy-up rename: new name keeps content, mode, owner, ns mtime, xattr; old gone");
	CHECK(is_whiteout(U("cu/rename")),
	      "copy-up rename: whiteout left at the old name in upper");
	cu_check_upper("rename", "rename.moved");
}

void test_copyup_dir(void)
{
	const char *d = M("cu/dir");

	CHECK(write_file(M("cu/dir/child"), "child", O_CREAT) &&
	      mode_is(d, 0750) && owner_is(d, CU_UID, CU_GID) &&
	      xattr_is(d, "user.cu", "base-dir"),
	      "copy-up dir: parent keeps mode, owner, xattr when a child is created");
	CHECK(type_is(U("cu/dir"), S_IFDIR) && mode_is(U("cu/dir"), 0750) &&
	      owner_is(U("cu/dir"), CU_UID, CU_GID) &&
	      xattr_is(U("cu/dir"), "user.cu", "base-dir") &&
	      content_is(U("cu/dir/child"), "child"),
	      "copy-up dir: upper directory has mode, owner, xattr");
}

void test_copyup_sparse(void)
{
	const char *p = M("sparse/big");
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	struct stat st;

	CHECK(sys(fd, "open") && sys(pwrite(fd, "x", 1, 50 * MiB), "pwrite") &&
	      sys(close(fd), "close"),
	      "copy-up sparse: 1-byte write into a 100 MiB sparse base file");
	CHECK(lstat_ok(p, &st) && long_is(st.st_size, 100 * MiB, "st_size") &&
	      (st.st_blocks * 512 <= SPARSE_SLACK ||
	       fail("st_blocks %lld: %lld bytes allocated", (long long)st.st_blocks,
		    (long long)st.st_blocks * 512)),
	      "copy-up sparse: size kept and at most 8 MiB allocated");
	CHECK(bytes_at(p, 50 * MiB, "x", 1) && filled_with(p, 0, 4096, 0) &&
	      filled_with(p, 100 * MiB - 4096, 4096, 0),
	      "copy-up sparse: written byte and zeros read back");
}

/* ---- concurrent copy-up ------------------------------------------------ */

#define CONCUR_THREADS 16
#define CONCUR_CHUNK 4096

struct concur_job {
	const char *path;
	int index;
	int err;
	pthread_barrier_t *start;
};

static void *concur_writer(void *arg)
{
	struct concur_job *job = arg;
	char buf[CONCUR_CHUNK];
	ssize_t n;
	int fd;

	memset(buf, 'A' + job->index, sizeof(buf));
	pthread_barrier_wait(job->start);
	fd = open(job->path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		job->err = errno;
		return NULL;
	}
	n = pwrite(fd, buf, sizeof(buf), (off_t)job->index * CONCUR_CHUNK);
	if (n != (ssize_t)sizeof(buf))
		job->err = n < 0 ? errno : EIO;
	if (close(fd) < 0 && !job->err)
		job->err = errno;
	return NULL;
}

void test_concurrent_copyup(void)
{
	struct concur_job jobs[CONCUR_THREADS];
	pthread_t tids[CONCUR_THREADS];
	pthread_barrier_t start;
	char path[PATH_MAX];
	bool good = true;
	int i, started = 0;

	snprintf(path, sizeof(path), "%s", M("concur/file"));
	pthread_barrier_init(&start, NULL, CONCUR_THREADS);
	for (i = 0; i < CONCUR_THREADS; i++) {
		jobs[i] = (struct concur_job){ path, i, 0, &start };
		if (pthread_create(&tids[i], NULL, concur_writer, &jobs[i])) {
			good = fail("pthread_create failed");
			break;
		}
		started++;
	}
	if (started < CONCUR_THREADS) {
		/* Not all threads could start: the barrier would never open. */
		CHECK(false, "copy-up concurrent: 16 threads start");
		exit(tap_done() | 1);
	}
	for (i = 0; i < started; i++) {
		pthread_join(tids[i], NULL);
		if (jobs[i].err)
			good = fail("thread %d: %s", i, strerror(jobs[i].err));
	}
	pthread_barrier_destroy(&start);
	CHECK(good, "copy-up concurrent: 16 threads open O_RDWR and write");

	good = true;
	for (i = 0; i < CONCUR_THREADS; i++)
		good = filled_with(path, (off_t)i * CONCUR_CHUNK, CONCUR_CHUNK,
				   'A' + i) && good;
	CHECK(good, "copy-up concurrent: every thread's write is in the file");
	CHECK(filled_with(B("concur/file"), 0, 65536, '.'),
	      "copy-up concurrent: base file unchanged");
}

