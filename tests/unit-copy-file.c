/* unit-copy-file: the shared file copy (common/copy-file.c) on real files:
 * holes stay holes, content is equal, data after a hole and a hole at EOF,
 * empty and large files, xattrs copied and filtered, file capabilities
 * kept across the owner change, symlink xattrs by name.  Owner and
 * trusted.* checks need root and skip otherwise. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "copy-file.h"
#include "fileio.h"
#include "tap.h"

static char tmp[PATH_MAX];
static int dir = -1;

/* Writes len bytes of `c` at each offset in offs, then sets the size. */
static int make_file(const char *name, const off_t *offs, int n, size_t len, off_t size)
{
	int fd = openat(dir, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	char *buf = malloc(len ? len : 1);
	for (int i = 0; i < n; i++) {
		for (size_t j = 0; j < len; j++)
			buf[j] = (char)('A' + (i + j / 4096) % 26);
		if (pwrite(fd, buf, len, offs[i]) != (ssize_t)len) {
			free(buf);
			close(fd);
			return -1;
		}
	}
	free(buf);
	if (ftruncate(fd, size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int new_dst(const char *name)
{
	unlinkat(dir, name, 0);
	return openat(dir, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

static bool same_content(int a, int b)
{
	struct stat sa, sb;
	if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0 || sa.st_size != sb.st_size)
		return false;
	static char x[1 << 16], y[1 << 16];
	for (off_t off = 0; off < sa.st_size;) {
		ssize_t n = pread(a, x, sizeof(x), off), m = pread(b, y, sizeof(y), off);
		if (n <= 0 || n != m || memcmp(x, y, n))
			return false;
		off += n;
	}
	return true;
}

static long long blocks_kib(int fd)
{
	struct stat st;
	return fstat(fd, &st) < 0 ? -1 : (long long)st.st_blocks / 2;
}

/* Data segments of fd as "off+len,..." for comparing layouts. */
static void layout(int fd, char *buf, size_t len)
{
	struct stat st;
	size_t o = 0;
	buf[0] = '\0';
	if (fstat(fd, &st) < 0)
		return;
	for (off_t off = 0; off < st.st_size && o + 48 < len;) {
		off_t d = lseek(fd, off, SEEK_DATA);
		if (d < 0)
			break;
		off_t h = lseek(fd, d, SEEK_HOLE);
		o += snprintf(buf + o, len - o, "%lld+%lld,", (long long)d, (long long)(h - d));
		off = h;
	}
}

static void check_copy(const char *what, const off_t *offs, int n, size_t len, off_t size, long long max_kib)
{
	char sname[64], dname[64], la[512], lb[512];
	snprintf(sname, sizeof(sname), "src-%s", what);
	snprintf(dname, sizeof(dname), "dst-%s", what);
	int s = make_file(sname, offs, n, len, size);
	int d = new_dst(dname);
	if (s < 0 || d < 0) {
		ok(false, "%s: set up: %s", what, strerror(errno));
		return;
	}
	int r = copy_file_data(s, d, size);
	ok(r == 0, "%s: copied (%s)", what, r ? strerror(-r) : "ok");
	ok(same_content(s, d), "%s: content equal", what);
	struct stat st = { .st_size = -1 };
	fstat(d, &st);
	ok(st.st_size == size, "%s: size %lld, want %lld", what, (long long)st.st_size, (long long)size);
	if (max_kib >= 0)
		ok(blocks_kib(d) <= max_kib, "%s: holes kept (%lld KiB allocated, at most %lld)", what,
		   blocks_kib(d), max_kib);
	layout(s, la, sizeof(la));
	layout(d, lb, sizeof(lb));
	ok(!strcmp(la, lb), "%s: same data segments (%s / %s)", what, la, lb);
	close(s);
	close(d);
}

static void test_data(void)
{
	const off_t M = 1 << 20;
	/* 8 MiB: 4 KiB of data at 1 MiB, the rest hole (also at EOF). */
	check_copy("sparse", (off_t[]){ M }, 1, 4096, 8 * M, 64);
	/* A hole first, data up to EOF. */
	check_copy("data-after-hole", (off_t[]){ 3 * M - 8192 }, 1, 8192, 3 * M, 64);
	/* Data, hole, data, hole at EOF. */
	check_copy("islands", (off_t[]){ 0, 2 * M, 5 * M }, 3, 4096, 6 * M, 64);
	check_copy("empty", NULL, 0, 0, 0, 0);
	/* Dense, many times the copy buffer, and data past 4 GiB. */
	check_copy("large", (off_t[]){ 0 }, 1, 24 * M, 24 * M, -1);
	check_copy("past-4g", (off_t[]){ 0, 5LL * 1024 * M }, 2, 65536, 5LL * 1024 * M + 2 * M, 1024);
}

static bool skip_user(const char *name)
{
	return strcmp(name, "user.skip") != 0;
}

static bool xattr_is(int fd, const char *name, const char *want)
{
	char got[256];
	ssize_t n = fgetxattr(fd, name, got, sizeof(got));
	return n == (ssize_t)strlen(want) && !memcmp(got, want, n);
}

static void test_xattrs(void)
{
	int s = make_file("x-src", (off_t[]){ 0 }, 1, 100, 100);
	int d = new_dst("x-dst");
	if (s < 0 || d < 0 || fsetxattr(s, "user.a", "one", 3, 0) < 0 || fsetxattr(s, "user.skip", "no", 2, 0) < 0 ||
	    fsetxattr(s, "user.empty", "", 0, 0) < 0) {
		skip("no user xattrs here", "xattr copy: %s", strerror(errno));
		return;
	}
	struct stat st;
	fstat(s, &st);
	struct corral_error err = { 0 };
	int r = copy_file(s, d, &st, false, skip_user, &err);
	ok(r == 0, "xattrs: copy_file (%s)", r ? err.msg : "ok");
	ok(xattr_is(d, "user.a", "one"), "xattrs: user.a copied");
	ok(xattr_is(d, "user.empty", ""), "xattrs: an empty value copied");
	ok(fgetxattr(d, "user.skip", NULL, 0) < 0 && errno == ENODATA, "xattrs: the filtered user.skip is not copied");
	ok(same_content(s, d), "xattrs: content equal");
	struct stat dt;
	fstat(d, &dt);
	ok((dt.st_mode & 07777) == (st.st_mode & 07777) && dt.st_mtim.tv_sec == st.st_mtim.tv_sec &&
	   dt.st_mtim.tv_nsec == st.st_mtim.tv_nsec, "xattrs: mode and mtime copied");

	/* Without the filter every name is copied. */
	close(d);
	d = new_dst("x-dst");
	r = copy_xattrs(s, d, NULL, &err);
	ok(r == 0 && xattr_is(d, "user.skip", "no"), "xattrs: no filter copies every name");

	/* An O_PATH source is read through /proc/self/fd. */
	close(d);
	d = new_dst("x-dst");
	int p = openat(dir, "x-src", O_PATH | O_CLOEXEC);
	r = copy_xattrs(p, d, skip_user, &err);
	ok(r == 0 && xattr_is(d, "user.a", "one"), "xattrs: from an O_PATH descriptor");
	close(p);

	/* The destination refuses user.* (a symlink does): named in err. */
	symlinkat("x-src", dir, "x-link");
	r = copy_xattrs_at(dir, "x-src", dir, "x-link", skip_user, &err);
	ok(r < 0 && strstr(err.msg, "set extended attribute user."), "xattrs: a refused user.* fails the copy: %s",
	   err.msg);
	close(s);
	close(d);
}

static void test_root(void)
{
	if (geteuid() != 0) {
		skip("not root", "owner, file capability, trusted.* on symlinks");
		return;
	}
	/* chown clears security.capability: copy_file_meta sets the owner
	 * before the xattrs. */
	static const char cap[20] = { 0x01, 0x00, 0x00, 0x02, 0x00, 0x20 };
	int s = make_file("c-src", (off_t[]){ 0 }, 1, 10, 10);
	int d = new_dst("c-dst");
	struct corral_error err = { 0 };
	if (fchown(s, 1234, 5678) < 0 || fchmod(s, 04755) < 0 ||
	    fsetxattr(s, "security.capability", cap, sizeof(cap), 0) < 0) {
		skip("no file capabilities here", "capability copy: %s", strerror(errno));
	} else {
		struct stat st;
		fstat(s, &st);
		int r = copy_file(s, d, &st, false, NULL, &err);
		char got[64];
		ssize_t n = fgetxattr(d, "security.capability", got, sizeof(got));
		ok(r == 0 && n == sizeof(cap) && !memcmp(got, cap, n), "root: the file capability survives the owner change");
		struct stat dt;
		fstat(d, &dt);
		ok(dt.st_uid == 1234 && dt.st_gid == 5678 && (dt.st_mode & 07777) == 04755,
		   "root: owner and set-uid mode copied (%u:%u %o)", dt.st_uid, dt.st_gid, dt.st_mode & 07777);
	}
	close(s);
	close(d);

	/* Symlinks: trusted.* by name, never through the link. */
	symlinkat("nowhere", dir, "l-src");
	symlinkat("nowhere", dir, "l-dst");
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/l-src", tmp);
	if (lsetxattr(p, "trusted.t", "tv", 2, 0) < 0) {
		skip("no trusted xattrs here", "symlink xattrs: %s", strerror(errno));
		return;
	}
	int r = copy_xattrs_at(dir, "l-src", dir, "l-dst", NULL, &err);
	char got[16];
	snprintf(p, sizeof(p), "%s/l-dst", tmp);
	ssize_t n = lgetxattr(p, "trusted.t", got, sizeof(got));
	ok(r == 0 && n == 2 && !memcmp(got, "tv", 2), "root: a symlink's trusted.* copied by name");

	/* A symlink through an O_PATH descriptor is refused, not followed. */
	int l = openat(dir, "l-src", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	int t = new_dst("l-target");
	ok(copy_xattrs(l, t, NULL, NULL) == -ELOOP, "root: an O_PATH symlink is refused (ELOOP)");
	close(l);
	close(t);
}

int main(void)
{
	snprintf(tmp, sizeof(tmp), "%s/unit-copy-file.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp");
	if (!mkdtemp(tmp)) {
		ok(false, "mkdtemp %s: %s", tmp, strerror(errno));
		return tap_done();
	}
	dir = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	test_data();
	test_xattrs();
	test_root();
	close(dir);
	remove_tree(tmp, NULL);
	return tap_done();
}
