/* posix-ops: open flags, mmap, sync, fallocate, seek, copy_file_range, statfs. */
#include "posix-ops.h"

/* ---- open flags, mmap, sync -------------------------------------------- */

void test_open_flags(void)
{
	int fd;
	struct stat st;

	fd = open(M("io/append"), O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(sys(fd, "open O_APPEND") && long_is(write(fd, "def", 3), 3, "write") &&
	      long_is(pwrite(fd, "g", 1, 0), 1, "pwrite") &&
	      sys(close(fd), "close") && content_is(M("io/append"), "abcdefg"),
	      "open: O_APPEND writes (and pwrite) go to the end");
	fd = open(M("io/trunc"), O_WRONLY | O_TRUNC | O_CLOEXEC);
	CHECK(sys(fd, "open O_TRUNC") && sys(fstat(fd, &st), "fstat") &&
	      long_is(st.st_size, 0, "size after O_TRUNC") &&
	      long_is(write(fd, "new", 3), 3, "write") && sys(close(fd), "close") &&
	      content_is(M("io/trunc"), "new") &&
	      content_is(B("io/trunc"), "long-content"),
	      "open: O_TRUNC empties a base file, base unchanged");
	CHECK(content_is(M("io/readonly"), "readonly") && absent(U("io/readonly")),
	      "open: read-only access does not copy up");
}

/* An fd opened read-only before copy-up must see data written afterwards. */
void test_stale_fd(void)
{
	int ro = open(M("io/stale"), O_RDONLY | O_CLOEXEC);
	char buf[16] = "";
	ssize_t n = -1;

	CHECK(sys(ro, "open O_RDONLY") &&
	      write_file(M("io/stale"), "after!", O_TRUNC) &&
	      sys(n = pread(ro, buf, sizeof(buf), 0), "pread") &&
	      ((n == 6 && memcmp(buf, "after!", 6) == 0) ||
	       fail("read-only fd reads \"%s\"", show(buf, n))),
	      "open: read-only fd opened before copy-up sees later writes");
	if (ro >= 0)
		close(ro);
}

void test_o_direct(void)
{
	const char *p = M("io/direct");
	void *buf = NULL;
	int fd;

	if (posix_memalign(&buf, 4096, 4096)) {
		CHECK(fail("posix_memalign"), "O_DIRECT: aligned read and write");
		return;
	}
	fd = open(p, O_RDWR | O_DIRECT | O_CLOEXEC);
	CHECK(sys(fd, "open O_DIRECT") &&
	      long_is(pread(fd, buf, 4096, 0), 4096, "O_DIRECT pread") &&
	      ((((char *)buf)[0] == 'd' && ((char *)buf)[4095] == 'd') ||
	       fail("O_DIRECT read wrong data")) &&
	      (memset(buf, 'D', 4096), true) &&
	      long_is(pwrite(fd, buf, 4096, 4096), 4096, "O_DIRECT pwrite") &&
	      sys(close(fd), "close"),
	      "O_DIRECT: 4096-aligned read and write");
	CHECK(filled_with(p, 0, 4096, 'd') && filled_with(p, 4096, 4096, 'D'),
	      "O_DIRECT: data read back through the page cache");
	free(buf);
}

void test_o_tmpfile(void)
{
	char proc[64];
	struct stat st;
	int fd = open(M("io"), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0 && errno == EOPNOTSUPP) {
		skip("O_TMPFILE not supported by this mount",
		     "O_TMPFILE: unnamed file linked in with linkat");
		return;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	CHECK(sys(fd, "open O_TMPFILE") && long_is(write(fd, "tmp", 3), 3, "write") &&
	      sys(fstat(fd, &st), "fstat") && long_is(st.st_nlink, 0, "st_nlink") &&
	      sys(linkat(AT_FDCWD, proc, AT_FDCWD, M("io/tmplinked"),
			 AT_SYMLINK_FOLLOW), "linkat") &&
	      content_is(M("io/tmplinked"), "tmp") && mode_is(M("io/tmplinked"), 0600),
	      "O_TMPFILE: unnamed file linked in with linkat");
	if (fd >= 0)
		close(fd);
}

void test_mmap(void)
{
	const char *p = M("io/mmap");
	int fd = open(p, O_RDWR | O_CLOEXEC);
	char *map = MAP_FAILED;
	bool good;

	good = sys(fd, "open");
	if (good) {
		map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		good = map != MAP_FAILED || fail("mmap: %s", strerror(errno));
	}
	good = good && (map[0] == 'm' || fail("mapping reads %02x", map[0]));
	if (good) {
		memcpy(map + 100, "mapped", 6);
		good = sys(msync(map, 4096, MS_SYNC), "msync");
	}
	CHECK(good && bytes_at(p, 100, "mapped", 6) && bytes_at(p, 0, "mmmm", 4),
	      "mmap: shared writable mapping, msync, read() sees the data");
	if (map != MAP_FAILED)
		munmap(map, 4096);
	if (fd >= 0)
		close(fd);
	CHECK(bytes_at(p, 100, "mapped", 6) && filled_with(B("io/mmap"), 0, 4096, 'm'),
	      "mmap: data persists after munmap, base unchanged");
}

/* A private writable mapping never reaches the file: no copy-up. */
void test_mmap_private(void)
{
	const char *p = M("io/private");
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	char *map = MAP_FAILED;
	bool good = sys(fd, "open");

	if (good) {
		map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		good = map != MAP_FAILED || fail("mmap: %s", strerror(errno));
	}
	if (good) {
		memset(map, 'X', 4096);
		munmap(map, 4096);
	}
	if (fd >= 0)
		close(fd);
	CHECK(good && filled_with(p, 0, 4096, 'p') && absent(U("io/private")),
	      "mmap: MAP_PRIVATE writes stay private, no copy-up");
}

/* fchmod/ftruncate through fds opened before copy-up. */
void test_fd_ops(void)
{
	const char *p = M("io/fdops");
	int ro = open(p, O_RDONLY | O_CLOEXEC);
	int wr = -1;
	char buf[8];
	struct stat st;

	CHECK(sys(ro, "open O_RDONLY") && sys(fchmod(ro, 0600), "fchmod") &&
	      mode_is(p, 0600) && mode_is(U("io/fdops"), 0600) &&
	      long_is(pread(ro, buf, sizeof(buf), 0), 5, "pread after fchmod"),
	      "fd ops: fchmod on a read-only fd copies up, fd still reads");
	wr = open(p, O_WRONLY | O_CLOEXEC);
	CHECK(sys(wr, "open O_WRONLY") && sys(ftruncate(wr, 2), "ftruncate") &&
	      content_is(p, "fd") && sys(fstat(ro, &st), "fstat old fd") &&
	      long_is(st.st_size, 2, "st_size via the old fd"),
	      "fd ops: ftruncate seen through an fd opened before copy-up");
	if (ro >= 0)
		close(ro);
	if (wr >= 0)
		close(wr);
}

void test_sync(void)
{
	int fd = open(M("io/sync"), O_WRONLY | O_APPEND | O_CLOEXEC);
	int dfd = open(M("io"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	CHECK(sys(fd, "open") && long_is(write(fd, "y", 1), 1, "write") &&
	      sys(fsync(fd), "fsync") && sys(fdatasync(fd), "fdatasync") &&
	      sys(syncfs(fd), "syncfs") && content_is(M("io/sync"), "sy"),
	      "sync: fsync, fdatasync, syncfs on a copied-up file");
	CHECK(sys(dfd, "open dir") && sys(fsync(dfd), "fsync dir"),
	      "sync: fsync on a directory");
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
}

/* ---- fallocate, seek, copy_file_range, statfs -------------------------- */

void test_fallocate(void)
{
	const char *p = M("falloc/mode0");
	const char *q = M("falloc/punch");
	struct stat before, after;
	int fd = open(p, O_RDWR | O_CLOEXEC);

	CHECK(sys(fd, "open") && sys(fallocate(fd, 0, 0, 1 * MiB), "fallocate") &&
	      sys(fstat(fd, &after), "fstat") &&
	      long_is(after.st_size, 1 * MiB, "st_size") &&
	      (after.st_blocks * 512 >= 1 * MiB ||
	       fail("st_blocks %lld", (long long)after.st_blocks)) &&
	      filled_with(p, 0, 4096, 'g') && filled_with(p, 4096, 4096, 0),
	      "fallocate: mode 0 extends a base file and allocates blocks");
	if (fd >= 0)
		close(fd);

	fd = open(q, O_RDWR | O_CLOEXEC);
	CHECK(sys(fd, "open") && sys(fsync(fd), "fsync") &&
	      sys(fstat(fd, &before), "fstat") &&
	      sys(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			    4096, 8192), "fallocate PUNCH_HOLE") &&
	      sys(fstat(fd, &after), "fstat") &&
	      long_is(after.st_size, 65536, "st_size") &&
	      (after.st_blocks < before.st_blocks ||
	       fail("st_blocks %lld -> %lld", (long long)before.st_blocks,
		    (long long)after.st_blocks)) &&
	      filled_with(q, 0, 4096, 'f') && filled_with(q, 4096, 8192, 0) &&
	      filled_with(q, 12288, 65536 - 12288, 'f'),
	      "fallocate: PUNCH_HOLE|KEEP_SIZE reads zeros, keeps size");
	if (fd >= 0)
		close(fd);
	CHECK(filled_with(B("falloc/punch"), 0, 65536, 'f'),
	      "fallocate: base file unchanged");
}

/* SEEK_DATA/SEEK_HOLE on the merged file agree with the file underneath. */
static bool seek_matches(const char *merged, const char *real)
{
	static const struct { off_t off; int whence; } probes[] = {
		{ 0, SEEK_DATA }, { 0, SEEK_HOLE }, { 1 * MiB, SEEK_HOLE },
		{ 1 * MiB + 65536, SEEK_DATA },
	};
	int mfd = open(merged, O_RDONLY | O_CLOEXEC);
	int rfd = open(real, O_RDONLY | O_CLOEXEC);
	bool good = sys(mfd, "open merged") && sys(rfd, "open real");
	size_t i;

	for (i = 0; good && i < sizeof(probes) / sizeof(probes[0]); i++) {
		off_t want = lseek(rfd, probes[i].off, probes[i].whence);
		int want_err = errno;
		off_t got = lseek(mfd, probes[i].off, probes[i].whence);
		int got_err = errno;

		if (got != want || (got == -1 && got_err != want_err))
			good = fail("lseek(%lld, %s): got %lld (%s), want %lld (%s)",
				    (long long)probes[i].off,
				    probes[i].whence == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE",
				    (long long)got, got < 0 ? strerror(got_err) : "ok",
				    (long long)want, want < 0 ? strerror(want_err) : "ok");
	}
	if (mfd >= 0)
		close(mfd);
	if (rfd >= 0)
		close(rfd);
	return good;
}

void test_seek(void)
{
	const char *p = M("seek/new");
	char data[65536];
	off_t off;
	int fd;

	fd = open(M("seek/sparse"), O_RDONLY | O_CLOEXEC);
	off = fd < 0 ? -1 : lseek(fd, 0, SEEK_DATA);
	CHECK(sys(fd, "open") && sys(off, "SEEK_DATA") &&
	      long_is(off, 1 * MiB, "first data") &&
	      fails_with(lseek(fd, 2 * MiB - 1, SEEK_DATA), ENXIO, "SEEK_DATA in tail hole"),
	      "seek: SEEK_DATA on a sparse base file finds the data at 1 MiB");
	if (fd >= 0)
		close(fd);
	CHECK(seek_matches(M("seek/sparse"), B("seek/sparse")),
	      "seek: SEEK_DATA/SEEK_HOLE on a base file match the base layer");

	memset(data, 'N', sizeof(data));
	fd = open(p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	CHECK(sys(fd, "create") &&
	      long_is(pwrite(fd, data, sizeof(data), 1 * MiB), sizeof(data), "pwrite") &&
	      sys(ftruncate(fd, 2 * MiB), "ftruncate") && sys(fsync(fd), "fsync") &&
	      seek_matches(p, U("seek/new")),
	      "seek: SEEK_DATA/SEEK_HOLE on a new file match the upper layer");
	if (fd >= 0)
		close(fd);
}

/* Copies len bytes with copy_file_range, looping over short copies. */
static bool copy_range(int in, off_t in_off, int out, off_t out_off, size_t len)
{
	loff_t ioff = in_off, ooff = out_off;
	ssize_t n;

	while (len > 0) {
		n = copy_file_range(in, &ioff, out, &ooff, len, 0);
		if (n < 0)
			return fail("copy_file_range: %s", strerror(errno));
		if (n == 0)
			return fail("copy_file_range: unexpected end of input");
		len -= n;
	}
	return true;
}

void test_copy_file_range(void)
{
	static char src[65536], want[64];
	int in = open(M("cfr/src"), O_RDONLY | O_CLOEXEC);
	int out = open(M("cfr/new"), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	int dst = open(M("cfr/dst"), O_WRONLY | O_CLOEXEC);

	CHECK(long_is(read_at(B("cfr/src"), 0, src, sizeof(src)), sizeof(src),
		      "base cfr/src size") &&
	      sys(in, "open src") && sys(out, "open new") &&
	      copy_range(in, 0, out, 0, sizeof(src)) &&
	      bytes_at(M("cfr/new"), 0, src, sizeof(src)),
	      "copy_file_range: 64 KiB from a base file into a new file");
	snprintf(want, sizeof(want), "old-%.10sn\n", src);
	CHECK(sys(dst, "open dst") && copy_range(in, 0, dst, 4, 10) &&
	      content_is(M("cfr/dst"), want) &&
	      content_is(B("cfr/dst"), "old-destination\n"),
	      "copy_file_range: into the middle of a base file (copy-up)");
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (dst >= 0)
		close(dst);
}

void test_statfs(void)
{
	struct statfs sf, uf;

	CHECK(sys(statfs(merged_root, &sf), "statfs") &&
	      (sf.f_bsize > 0 || fail("f_bsize %ld", (long)sf.f_bsize)) &&
	      (sf.f_blocks > 0 || fail("f_blocks 0")),
	      "statfs: succeeds with f_bsize > 0 and f_blocks > 0");
	CHECK(sys(statfs(merged_root, &sf), "statfs merged") &&
	      sys(statfs(upper_root, &uf), "statfs upper") &&
	      long_is(sf.f_namelen, uf.f_namelen, "f_namelen"),
	      "statfs: f_namelen is the upper layer's");
}

