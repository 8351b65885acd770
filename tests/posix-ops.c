/* posix-ops - semantic checks of a copy-on-write union mount.
 *
 * Usage: posix-ops MERGED BASE UPPER
 *
 *   MERGED  the merged mount point (kernel overlayfs or cowfs)
 *   BASE    the read-only lower directory
 *   UPPER   the upper directory
 *
 * Runs as root against a freshly mounted union and prints TAP.  Every check
 * works through real syscalls on MERGED; BASE is only read, to prove it was
 * not modified, and UPPER is inspected where the result must be in kernel
 * overlayfs on-disk format (whiteouts, opaque directories, copied-up files).
 *
 * The fixture is created by make_posix_fixture in tests/fixture.sh before
 * mounting; this program creates nothing in BASE.  Layout (BASE unless
 * marked [upper], which is seeded in UPPER in overlayfs format):
 *
 *   merge/both           "base-both\n";  [upper] "upper-both\n"
 *   merge/only_base      "only-base\n"
 *   merge/only_upper     [upper] "only-upper\n"
 *   merge/gone           "gone\n";  [upper] whiteout (char 0:0)
 *   merge/mixed/{a,c}    "base-a\n" "base-c\n";  [upper] b "upper-b\n",
 *                        c "upper-c\n"
 *   merge/opq/hidden     "hidden\n";  [upper] merge/opq opaque, with
 *                        shown "shown\n"
 *   merge/subdir/inner   "inner\n"
 *   merge/many/f000..f599  600 empty files
 *   ino/file "ino-file\n", ino/dir/
 *   link/src             "link-src\n"
 *   link/h1, link/h2     one inode, two names, "hard\n"
 *   cu/{write,truncate,chmod,chown,utimens,setxattr,link,rename}
 *                        "0123456789abcdef\n", mode 0640, owner 1234:5678,
 *                        mtime and atime 1000000000.123456789,
 *                        user.cu="base-value"
 *   cu/dir/              mode 0750, owner 1234:5678, user.cu="base-dir"
 *   sparse/big           100 MiB, all hole
 *   concur/file          65536 '.'
 *   rm/victim "victim\n", rm/readd "old\n", rm/open_base "open-base\n",
 *   rm/dir/{a,b/c}, rm/full/x, rm/empty/
 *   nodes/fifo (fifo), nodes/null (char 1:3)
 *   bsym/link            symlink to "target-of-base", mtime as cu/
 *   mtime/               empty directory, mtime 1000000000.123456789
 *   ren/plain_src "plain\n", ren/over_src "over-src\n",
 *   ren/over_dst "over-dst\n", ren/nr_a "nr-a\n", ren/nr_b "nr-b\n",
 *   ren/xa "xa\n", ren/xb "xb\n", ren/xf "xf\n", ren/basedir/f1 "f1\n",
 *   ren/basedir/sub/f2 "f2\n", ren/full/x, ren/emptydir/,
 *   ren/wh_src "wh-src\n", ren/wh_target "wh-target\n", ren/file "isdir\n"
 *   ren/cross_src "cross\n", ren/cross_dir/
 *   io/append "abc", io/trunc "long-content", io/readonly "readonly",
 *   io/stale "before", io/direct 8192 'd', io/mmap 4096 'm', io/sync "s"
 *   io/private 4096 'p', io/fdops "fdops"
 *   falloc/mode0 4096 'g', falloc/punch 65536 'f'
 *   seek/sparse          2 MiB, 64 KiB of 'D' at 1 MiB, rest hole
 *   cfr/src              4096 lines "%015d\n" (64 KiB), cfr/dst
 *                        "old-destination\n"
 *   xattr/file "x\n" with user.a="1", user.b="2"; xattr/dir/
 *   acl/file, acl/withacl "acl\n" mode 0644 (withacl: u:1234:rw- if
 *   setfacl was available), acl/dir/
 *   lock/flock, lock/posix "lock\n"
 *   utime/now "t\n", times 1000000000.123456789
 *   big/base             6 GiB sparse, 'Z' at 5 GiB
 *   names/<255 x 'b'> "long\n", names/bin\xff\xfe "binary\n"
 *   deep/d00/d01/.../d59/leaf "leaf\n"
 *
 * Each area below works in its own sub-tree so that one failure does not
 * cascade into unrelated checks.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/acl.h>
#include <acl/libacl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"

#define KiB (1024L)
#define MiB (1024L * KiB)
#define GiB (1024L * MiB)

#define BASE_MTIME_S 1000000000L
#define BASE_MTIME_NS 123456789L
#define CU_CONTENT "0123456789abcdef\n"
#define CU_MODE 0640
#define CU_UID 1234
#define CU_GID 5678

/* Copy-up of a sparse file may allocate around each data extent (kernel
 * overlayfs copies whole 1 MiB chunks), but never the holes themselves. */
#define SPARSE_SLACK (8 * MiB)

static const char *merged_root, *base_root, *upper_root;

/* ---- failure reasons ------------------------------------------------ */

/* Helpers return false and describe the problem here; CHECK prints it. */
static char reason[2048];

__attribute__((format(printf, 1, 2)))
static bool fail(const char *fmt, ...)
{
	size_t len = strlen(reason);
	va_list ap;

	if (len && len < sizeof(reason) - 3) {
		strcpy(reason + len, "; ");
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(reason + len, sizeof(reason) - len, fmt, ap);
	va_end(ap);
	return false;
}

static bool check_done(bool passed)
{
	if (!passed)
		diag("%s", reason[0] ? reason : "(no detail)");
	reason[0] = '\0';
	return passed;
}

#define CHECK(cond, ...) check_done(ok((cond), __VA_ARGS__))

/* ---- paths ---------------------------------------------------------- */

static const char *vpath(const char *root, const char *fmt, va_list ap)
{
	static char ring[16][PATH_MAX];
	static unsigned next;
	char *buf = ring[next++ % 16];
	int n = snprintf(buf, PATH_MAX, "%s/", root);

	vsnprintf(buf + n, PATH_MAX - n, fmt, ap);
	return buf;
}

/* M("a/%s", x) is a path in the merged view, B() in BASE, U() in UPPER. */
__attribute__((format(printf, 1, 2)))
static const char *M(const char *fmt, ...)
{
	va_list ap;
	const char *p;

	va_start(ap, fmt);
	p = vpath(merged_root, fmt, ap);
	va_end(ap);
	return p;
}

__attribute__((format(printf, 1, 2)))
static const char *B(const char *fmt, ...)
{
	va_list ap;
	const char *p;

	va_start(ap, fmt);
	p = vpath(base_root, fmt, ap);
	va_end(ap);
	return p;
}

__attribute__((format(printf, 1, 2)))
static const char *U(const char *fmt, ...)
{
	va_list ap;
	const char *p;

	va_start(ap, fmt);
	p = vpath(upper_root, fmt, ap);
	va_end(ap);
	return p;
}

/* ---- small helpers that set `reason` on failure ---------------------- */

/* Renders bytes printably for diagnostics (static buffer, truncates). */
static const char *show(const void *data, size_t len)
{
	static char out[4][160];
	static unsigned next;
	char *o = out[next++ % 4];
	const unsigned char *p = data;
	size_t i, n = 0;

	for (i = 0; i < len && n < sizeof(out[0]) - 8; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			o[n++] = p[i];
		else
			n += snprintf(o + n, 8, "\\x%02x", p[i]);
	}
	if (i < len)
		n += snprintf(o + n, 4, "...");
	o[n] = '\0';
	return o;
}

/* sys(ret, what): true unless ret is -1, which is reported with errno. */
static bool sys(long ret, const char *what)
{
	if (ret != -1)
		return true;
	return fail("%s: %s", what, strerror(errno));
}

/* fails_with(ret, err, what): true iff the call failed with errno err. */
static bool fails_with(long ret, int err, const char *what)
{
	int got = errno;

	if (ret == -1 && got == err)
		return true;
	if (ret == -1)
		return fail("%s: expected %s, got %s", what, strerrorname_np(err),
			    strerrorname_np(got));
	return fail("%s: expected %s, but it succeeded (returned %ld)", what,
		    strerrorname_np(err), ret);
}

static bool long_is(long got, long want, const char *what)
{
	if (got == want)
		return true;
	return fail("%s: got %ld, want %ld", what, got, want);
}

static bool drop_caches(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	bool good;

	sync();
	if (fd < 0)
		return fail("open /proc/sys/vm/drop_caches: %s", strerror(errno));
	good = sys(write(fd, "2", 1), "write /proc/sys/vm/drop_caches");
	close(fd);
	return good;
}

static bool lstat_ok(const char *path, struct stat *st)
{
	if (lstat(path, st) == 0)
		return true;
	return fail("lstat %s: %s", path, strerror(errno));
}

static bool absent(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		return fail("%s exists (mode 0%o)", path, st.st_mode);
	if (errno == ENOENT)
		return true;
	return fail("lstat %s: expected ENOENT, got %s", path, strerror(errno));
}

/* Reads at most cap bytes from offset off of path; -1 with reason set. */
static ssize_t read_at(const char *path, off_t off, void *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;
	ssize_t n;

	if (fd < 0) {
		fail("open %s: %s", path, strerror(errno));
		return -1;
	}
	while (got < cap) {
		n = pread(fd, (char *)buf + got, cap - got, off + got);
		if (n < 0) {
			fail("read %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		got += n;
	}
	close(fd);
	return got;
}

static bool bytes_at(const char *path, off_t off, const void *want,
		     size_t len)
{
	char *got = malloc(len + 1);
	ssize_t n;
	bool good;

	if (!got)
		return fail("out of memory");
	n = read_at(path, off, got, len + 1);
	if (n < 0) {
		free(got);
		return false;
	}
	good = (size_t)n >= len && memcmp(got, want, len) == 0;
	if (!good)
		fail("%s at %lld: got \"%s\" (%zd bytes), want \"%s\"", path,
		     (long long)off, show(got, n < 0 ? 0 : (size_t)n),
		     n, show(want, len));
	free(got);
	return good;
}

/* content_is(path, want): the whole file is exactly the string want. */
static bool content_is(const char *path, const char *want)
{
	size_t len = strlen(want);
	char *got = malloc(len + 2);
	ssize_t n;
	bool good;

	if (!got)
		return fail("out of memory");
	n = read_at(path, 0, got, len + 1);
	if (n < 0) {
		free(got);
		return false;
	}
	good = (size_t)n == len && memcmp(got, want, len) == 0;
	if (!good)
		fail("%s: got \"%s\", want \"%s\"", path, show(got, n), show(want, len));
	free(got);
	return good;
}

static bool filled_with(const char *path, off_t off, size_t len, char c)
{
	char *want = malloc(len);
	bool good;

	if (!want)
		return fail("out of memory");
	memset(want, c, len);
	good = bytes_at(path, off, want, len);
	free(want);
	return good;
}

static bool write_file(const char *path, const char *data, int flags)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0644);
	size_t len = strlen(data);
	ssize_t n;

	if (fd < 0)
		return fail("open %s: %s", path, strerror(errno));
	n = write(fd, data, len);
	if (n != (ssize_t)len) {
		fail("write %s: %s", path, n < 0 ? strerror(errno) : "short write");
		close(fd);
		return false;
	}
	return sys(close(fd), "close");
}

static bool mode_is(const char *path, mode_t want)
{
	struct stat st;

	if (!lstat_ok(path, &st))
		return false;
	if ((st.st_mode & 07777) == want)
		return true;
	return fail("%s: mode 0%o, want 0%o", path, st.st_mode & 07777, want);
}

static bool type_is(const char *path, mode_t type)
{
	struct stat st;

	if (!lstat_ok(path, &st))
		return false;
	if ((st.st_mode & S_IFMT) == type)
		return true;
	return fail("%s: file type 0%o, want 0%o", path, st.st_mode & S_IFMT,
		    type);
}

static bool owner_is(const char *path, uid_t uid, gid_t gid)
{
	struct stat st;

	if (!lstat_ok(path, &st))
		return false;
	if (st.st_uid == uid && st.st_gid == gid)
		return true;
	return fail("%s: owner %u:%u, want %u:%u", path, st.st_uid, st.st_gid,
		    uid, gid);
}

static bool mtime_is(const char *path, time_t sec, long nsec)
{
	struct stat st;

	if (!lstat_ok(path, &st))
		return false;
	if (st.st_mtim.tv_sec == sec && st.st_mtim.tv_nsec == nsec)
		return true;
	return fail("%s: mtime %lld.%09ld, want %lld.%09ld", path,
		    (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
		    (long long)sec, nsec);
}

static bool atime_is(const char *path, time_t sec, long nsec)
{
	struct stat st;

	if (!lstat_ok(path, &st))
		return false;
	if (st.st_atim.tv_sec == sec && st.st_atim.tv_nsec == nsec)
		return true;
	return fail("%s: atime %lld.%09ld, want %lld.%09ld", path,
		    (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
		    (long long)sec, nsec);
}

static bool nlink_is(const char *path, nlink_t want)
{
	struct stat st;

	if (!lstat_ok(path, &st))
		return false;
	if (st.st_nlink == want)
		return true;
	return fail("%s: st_nlink %lu, want %lu", path,
		    (unsigned long)st.st_nlink, (unsigned long)want);
}

static bool xattr_is(const char *path, const char *name, const char *want)
{
	char got[256];
	ssize_t n = lgetxattr(path, name, got, sizeof(got));

	if (n < 0)
		return fail("getxattr %s %s: %s", path, name, strerror(errno));
	if ((size_t)n == strlen(want) && memcmp(got, want, n) == 0)
		return true;
	return fail("%s: xattr %s is \"%s\", want \"%s\"", path, name,
		    show(got, n), want);
}

static bool xattr_absent(const char *path, const char *name)
{
	char got[256];

	if (lgetxattr(path, name, got, sizeof(got)) >= 0)
		return fail("%s: xattr %s exists", path, name);
	if (errno == ENODATA)
		return true;
	return fail("getxattr %s %s: expected ENODATA, got %s", path, name,
		    strerror(errno));
}

/* Kernel overlayfs whiteout: a character device with rdev 0:0. */
static bool is_whiteout(const char *path)
{
	struct stat st;

	if (!lstat_ok(path, &st))
		return false;
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0))
		return true;
	return fail("%s is not a whiteout (mode 0%o rdev %u:%u)", path,
		    st.st_mode, major(st.st_rdev), minor(st.st_rdev));
}

/* Opaque dir: trusted.overlay.opaque=y (user.overlay.opaque accepted). */
static bool is_opaque(const char *path)
{
	char v[16];
	ssize_t n = lgetxattr(path, "trusted.overlay.opaque", v, sizeof(v));

	if (n < 0)
		n = lgetxattr(path, "user.overlay.opaque", v, sizeof(v));
	if (n == 1 && v[0] == 'y')
		return true;
	if (n < 0)
		return fail("%s: no overlay.opaque xattr: %s", path,
			    strerror(errno));
	return fail("%s: overlay.opaque is \"%s\", want \"y\"", path,
		    show(v, n));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted comma-separated names in dir (including . and ..); NULL if the
 * directory cannot be read.  Caller frees. */
static char *list_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char **names = NULL, *out = NULL;
	size_t n = 0, cap = 0, len = 1, i;

	if (!d) {
		fail("opendir %s: %s", path, strerror(errno));
		return NULL;
	}
	errno = 0;
	while ((de = readdir(d))) {
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			names = realloc(names, cap * sizeof(*names));
		}
		names[n++] = strdup(de->d_name);
		len += strlen(de->d_name) + 1;
		errno = 0;
	}
	if (errno)
		fail("readdir %s: %s", path, strerror(errno));
	else if ((out = calloc(1, len)))
		qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++) {
		if (out) {
			strcat(out, names[i]);
			if (i + 1 < n)
				strcat(out, ",");
		}
		free(names[i]);
	}
	free(names);
	closedir(d);
	return out;
}

static bool entries_are(const char *path, const char *want)
{
	char *got = list_dir(path);
	bool good;

	if (!got)
		return false;
	good = strcmp(got, want) == 0;
	if (!good)
		fail("%s lists \"%s\", want \"%s\"", path, show(got, strlen(got)),
		     want);
	free(got);
	return good;
}

/* Number of times name appears in readdir(path); -1 on error. */
static int count_entry(const char *path, const char *name)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int count = 0;

	if (!d) {
		fail("opendir %s: %s", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)))
		count += strcmp(de->d_name, name) == 0;
	closedir(d);
	return count;
}

static bool listed_once(const char *dir, const char *name)
{
	int n = count_entry(dir, name);

	if (n == 1)
		return true;
	if (n >= 0)
		fail("%s: \"%s\" listed %d times, want once", dir,
		     show(name, strlen(name)), n);
	return false;
}

static bool not_listed(const char *dir, const char *name)
{
	int n = count_entry(dir, name);

	if (n == 0)
		return true;
	if (n > 0)
		fail("%s: \"%s\" is listed but should be hidden", dir,
		     show(name, strlen(name)));
	return false;
}

/* The unmodified fixture file cu/<op> in BASE. */
static bool cu_base_intact(const char *op)
{
	const char *p = B("cu/%s", op);

	return content_is(p, CU_CONTENT) && mode_is(p, CU_MODE) &&
	       owner_is(p, CU_UID, CU_GID) &&
	       mtime_is(p, BASE_MTIME_S, BASE_MTIME_NS) &&
	       nlink_is(p, 1) && xattr_is(p, "user.cu", "base-value") &&
	       xattr_absent(p, "user.new");
}

/* ---- lookup and readdir -------------------------------------------- */

static void test_lookup(void)
{
	struct stat st;

	CHECK(content_is(M("merge/both"), "upper-both\n"),
	      "lookup: upper file shadows the base file");
	CHECK(content_is(M("merge/only_base"), "only-base\n"),
	      "lookup: base-only file visible");
	CHECK(content_is(M("merge/only_upper"), "only-upper\n"),
	      "lookup: upper-only file visible");
	CHECK(fails_with(lstat(M("merge/gone"), &st), ENOENT, "lstat gone"),
	      "lookup: whiteout in upper hides the base file (ENOENT)");
	CHECK(content_is(M("merge/mixed/a"), "base-a\n") &&
	      content_is(M("merge/mixed/b"), "upper-b\n") &&
	      content_is(M("merge/mixed/c"), "upper-c\n"),
	      "lookup: directory in both layers merges its entries");
	CHECK(fails_with(lstat(M("merge/opq/hidden"), &st), ENOENT,
			 "lstat opq/hidden") &&
	      content_is(M("merge/opq/shown"), "shown\n"),
	      "lookup: opaque upper directory hides base entries");
	CHECK(content_is(M("merge/subdir/inner"), "inner\n"),
	      "lookup: base-only directory is traversable");
}

static void test_readdir(void)
{
	CHECK(entries_are(M("merge"),
			  ".,..,both,many,mixed,only_base,only_upper,opq,subdir"),
	      "readdir: merges both layers, hides whiteouts, has . and ..");
	CHECK(entries_are(M("merge/mixed"), ".,..,a,b,c"),
	      "readdir: name in both layers listed once");
	CHECK(entries_are(M("merge/opq"), ".,..,shown"),
	      "readdir: opaque directory lists upper entries only");
	CHECK(entries_are(M("merge/subdir"), ".,..,inner"),
	      "readdir: base-only directory");
}

/* d_ino reported by readdir matches st_ino from lstat for every entry. */
static void test_readdir_ino(void)
{
	DIR *d = opendir(M("merge"));
	struct dirent *de;
	struct stat st;
	bool good = d != NULL;

	if (!d)
		fail("opendir merge: %s", strerror(errno));
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, "..") == 0)
			continue;
		if (!lstat_ok(M("merge/%s", de->d_name), &st)) {
			good = false;
			continue;
		}
		if (st.st_ino != de->d_ino)
			good = fail("%s: d_ino %lu, st_ino %lu", de->d_name,
				    (unsigned long)de->d_ino,
				    (unsigned long)st.st_ino);
	}
	if (d)
		closedir(d);
	CHECK(good, "readdir: d_ino equals st_ino for every entry");
}

/* A directory too big for one getdents buffer, changed in the merged view. */
static void test_readdir_large(void)
{
	char name[16];
	bool good = true;
	int i, seen = 0, created = 0, deleted = 0;
	DIR *d;
	struct dirent *de;

	for (i = 0; i < 50 && good; i++) {
		snprintf(name, sizeof(name), "n%03d", i);
		good = write_file(M("merge/many/%s", name), "", O_CREAT | O_EXCL);
		snprintf(name, sizeof(name), "f%03d", i * 7);
		good = good && sys(unlink(M("merge/many/%s", name)), "unlink");
	}
	d = opendir(M("merge/many"));
	if (!d)
		good = fail("opendir merge/many: %s", strerror(errno));
	while (d && (de = readdir(d))) {
		seen++;
		if (de->d_name[0] == 'n')
			created++;
		if (de->d_name[0] == 'f' && atoi(de->d_name + 1) % 7 == 0 &&
		    atoi(de->d_name + 1) < 350)
			deleted++;
	}
	if (d)
		closedir(d);
	good = good && long_is(seen, 602, "entries seen") &&
	       long_is(created, 50, "new entries seen") &&
	       long_is(deleted, 0, "deleted entries seen");
	CHECK(good, "readdir: 600-entry directory after 50 creates and 50 unlinks");
}

/* Appends the remaining entry names of d to out (bounded). */
static void read_rest(DIR *d, char *out, size_t cap)
{
	struct dirent *de;
	size_t len = strlen(out);

	while ((de = readdir(d)))
		len += snprintf(out + len, len < cap ? cap - len : 0, "%s/",
				de->d_name);
}

/* telldir/seekdir and rewinddir in a merged directory. */
static void test_readdir_seek(void)
{
	static char first[16384], second[16384], all[16384], again[16384];
	DIR *d = opendir(M("merge/many"));
	long pos = -1;
	int i;

	first[0] = second[0] = all[0] = again[0] = '\0';
	if (d) {
		read_rest(d, all, sizeof(all));
		rewinddir(d);
		for (i = 0; i < 300 && readdir(d); i++)
			;
		pos = telldir(d);
		read_rest(d, first, sizeof(first));
		seekdir(d, pos);
		read_rest(d, second, sizeof(second));
		rewinddir(d);
		read_rest(d, again, sizeof(again));
		closedir(d);
	}
	CHECK((d || fail("opendir merge/many: %s", strerror(errno))) &&
	      (first[0] || fail("nothing after entry 300")) &&
	      (strcmp(first, second) == 0 ||
	       fail("after seekdir: \"%s\" vs \"%s\"", show(second, strlen(second)),
		    show(first, strlen(first)))),
	      "readdir: seekdir to a telldir position resumes at the same entry");
	CHECK(d && (strcmp(all, again) == 0 || fail("rewinddir listing differs")),
	      "readdir: rewinddir lists the same entries again");
}

static void test_dots(void)
{
	struct stat root, dot, merge, mdot, mdotdot, sub_dotdot, base_sub;

	CHECK(lstat_ok(merged_root, &root) && lstat_ok(M("."), &dot) &&
	      S_ISDIR(dot.st_mode) && long_is(dot.st_ino, root.st_ino, "ino of .") &&
	      long_is(dot.st_dev, root.st_dev, "dev of ."),
	      "stat: MERGED/. is the root directory");
	CHECK(lstat_ok(M("merge"), &merge) && lstat_ok(M("merge/."), &mdot) &&
	      lstat_ok(M("merge/.."), &mdotdot) &&
	      long_is(mdot.st_ino, merge.st_ino, "ino of merge/.") &&
	      long_is(mdotdot.st_ino, root.st_ino, "ino of merge/..") &&
	      long_is(mdotdot.st_dev, root.st_dev, "dev of merge/.."),
	      "stat: dir/. is dir and dir/.. is its parent");
	CHECK(lstat_ok(M("merge/subdir/.."), &sub_dotdot) &&
	      long_is(sub_dotdot.st_ino, merge.st_ino, "ino of subdir/..") &&
	      long_is(sub_dotdot.st_dev, merge.st_dev, "dev of subdir/.."),
	      "stat: .. of a base-only directory is the merged parent");
	/* overlayfs does not count subdirectories of merged directories. */
	CHECK(nlink_is(M("merge/mixed"), 1) && nlink_is(M("merge"), 1),
	      "stat: directory present in both layers has st_nlink 1");
	CHECK(lstat_ok(B("merge/subdir"), &base_sub) &&
	      nlink_is(M("merge/subdir"), base_sub.st_nlink),
	      "stat: base-only directory has the base st_nlink");
}

/* ---- inode numbers ---------------------------------------------------- */

static void test_ino_stable(void)
{
	struct stat base, before, after, dropped;
	const char *f = M("ino/file");

	CHECK(lstat_ok(B("ino/file"), &base) && lstat_ok(f, &before) &&
	      long_is(before.st_ino, base.st_ino, "merged vs base st_ino"),
	      "inode: st_ino of a base file is the base inode number");
	CHECK(lstat_ok(f, &before) &&
	      write_file(f, "more\n", O_APPEND) &&
	      lstat_ok(f, &after) &&
	      long_is(after.st_ino, before.st_ino, "st_ino after copy-up") &&
	      long_is(after.st_dev, before.st_dev, "st_dev after copy-up"),
	      "inode: st_ino unchanged by copy-up");
	CHECK(drop_caches() && lstat_ok(f, &dropped) &&
	      long_is(dropped.st_ino, before.st_ino, "st_ino after drop_caches") &&
	      content_is(f, "ino-file\nmore\n"),
	      "inode: st_ino unchanged after drop_caches");

	CHECK(lstat_ok(M("ino/dir"), &before) &&
	      write_file(M("ino/dir/child"), "c", O_CREAT) &&
	      lstat_ok(M("ino/dir"), &after) && drop_caches() &&
	      lstat_ok(M("ino/dir"), &dropped) &&
	      long_is(after.st_ino, before.st_ino, "dir st_ino after copy-up") &&
	      long_is(dropped.st_ino, before.st_ino, "dir st_ino after drop"),
	      "inode: directory st_ino unchanged by copy-up and drop_caches");
}

static void test_hardlink(void)
{
	struct stat src, dst, base;

	CHECK(sys(link(M("link/src"), M("link/dst")), "link"),
	      "link: hard link to a base file");
	CHECK(lstat_ok(M("link/src"), &src) && lstat_ok(M("link/dst"), &dst) &&
	      long_is(src.st_nlink, 2, "st_nlink of src") &&
	      long_is(dst.st_nlink, 2, "st_nlink of dst") &&
	      long_is(dst.st_ino, src.st_ino, "st_ino of dst vs src"),
	      "link: both names have st_nlink 2 and the same st_ino");
	CHECK(write_file(M("link/dst"), "shared\n", O_TRUNC) &&
	      content_is(M("link/src"), "shared\n"),
	      "link: write through one name is seen through the other");
	CHECK(drop_caches() && lstat_ok(M("link/src"), &src) &&
	      lstat_ok(M("link/dst"), &dst) &&
	      long_is(src.st_nlink, 2, "st_nlink of src") &&
	      long_is(dst.st_ino, src.st_ino, "st_ino of dst vs src"),
	      "link: st_nlink and st_ino hold after drop_caches");
	CHECK(lstat_ok(B("link/src"), &base) &&
	      long_is(base.st_nlink, 1, "base st_nlink") &&
	      content_is(B("link/src"), "link-src\n") && absent(B("link/dst")),
	      "link: base file unchanged");
}

static void test_base_hardlinks(void)
{
	struct stat h1, h2, b1;

	CHECK(lstat_ok(M("link/h1"), &h1) && lstat_ok(M("link/h2"), &h2) &&
	      lstat_ok(B("link/h1"), &b1) &&
	      long_is(h1.st_ino, h2.st_ino, "st_ino h1 vs h2") &&
	      long_is(h1.st_ino, b1.st_ino, "st_ino vs base") &&
	      long_is(h1.st_nlink, 2, "st_nlink h1") &&
	      long_is(h2.st_nlink, 2, "st_nlink h2"),
	      "link: hard links in the base share st_ino, st_nlink 2");
}

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

static void test_copyup_write(void)
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

static void test_copyup_truncate(void)
{
	const char *p = M("cu/truncate");

	CHECK(sys(truncate(p, 4), "truncate"), "copy-up truncate: truncate(4)");
	CHECK(content_is(p, "0123"), "copy-up truncate: content");
	CHECK(cu_kept(p, false, true, true, false),
	      "copy-up truncate: mode, owner, xattr preserved");
	cu_check_upper("truncate", "truncate");
}

static void test_copyup_chmod(void)
{
	const char *p = M("cu/chmod");

	CHECK(sys(chmod(p, 0604), "chmod"), "copy-up chmod: chmod 0604");
	CHECK(mode_is(p, 0604), "copy-up chmod: new mode");
	CHECK(cu_kept(p, true, false, true, true),
	      "copy-up chmod: content, owner, ns mtime, xattr preserved");
	cu_check_upper("chmod", "chmod");
}

static void test_copyup_chown(void)
{
	const char *p = M("cu/chown");

	CHECK(sys(chown(p, 4321, 8765), "chown"), "copy-up chown: chown");
	CHECK(owner_is(p, 4321, 8765), "copy-up chown: new owner");
	CHECK(cu_kept(p, true, true, false, true),
	      "copy-up chown: content, mode, ns mtime, xattr preserved");
	cu_check_upper("chown", "chown");
}

static void test_copyup_utimens(void)
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

static void test_copyup_setxattr(void)
{
	const char *p = M("cu/setxattr");

	CHECK(sys(setxattr(p, "user.new", "new", 3, 0), "setxattr"),
	      "copy-up setxattr: set user.new");
	CHECK(xattr_is(p, "user.new", "new"), "copy-up setxattr: new xattr");
	CHECK(cu_kept(p, true, true, true, true),
	      "copy-up setxattr: content, mode, owner, ns mtime, old xattr preserved");
	cu_check_upper("setxattr", "setxattr");
}

static void test_copyup_link(void)
{
	const char *p = M("cu/link");
	const char *q = M("cu/link.2");

	CHECK(sys(link(p, q), "link"), "copy-up link: link to new name");
	CHECK(cu_kept(p, true, true, true, true) &&
	      cu_kept(q, true, true, true, true),
	      "copy-up link: both names keep content, mode, owner, ns mtime, xattr");
	cu_check_upper("link", "link.2");
}

static void test_copyup_rename(void)
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

static void test_copyup_dir(void)
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

static void test_copyup_sparse(void)
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

static void test_concurrent_copyup(void)
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

/* ---- unlink, rmdir, whiteouts, opaque ---------------------------------- */

static void test_unlink(void)
{
	CHECK(sys(unlink(M("rm/victim")), "unlink"), "unlink: base file");
	CHECK(absent(M("rm/victim")) && not_listed(M("rm"), "victim"),
	      "unlink: name gone from lookup and readdir");
	CHECK(is_whiteout(U("rm/victim")), "unlink: whiteout (char 0:0) in upper");
	CHECK(content_is(B("rm/victim"), "victim\n"), "unlink: base file unchanged");

	CHECK(sys(unlink(M("rm/readd")), "unlink") &&
	      write_file(M("rm/readd"), "new\n", O_CREAT | O_EXCL) &&
	      content_is(M("rm/readd"), "new\n") && listed_once(M("rm"), "readd") &&
	      type_is(U("rm/readd"), S_IFREG),
	      "unlink: re-create over the whiteout gives the new file only");
}

/* Unlinked files stay usable through fds that are still open. */
static void test_unlink_open(void)
{
	int fd = open(M("rm/open_base"), O_RDONLY | O_CLOEXEC);
	char buf[16] = "";
	struct stat st;

	CHECK(sys(fd, "open") && sys(unlink(M("rm/open_base")), "unlink") &&
	      long_is(pread(fd, buf, sizeof(buf), 0), 10, "pread") &&
	      (memcmp(buf, "open-base\n", 10) == 0 || fail("read \"%s\"", show(buf, 10))) &&
	      absent(M("rm/open_base")),
	      "unlink: open fd of an unlinked base file still reads");
	if (fd >= 0)
		close(fd);

	fd = open(M("rm/open_new"), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
	memset(buf, 0, sizeof(buf));
	CHECK(sys(fd, "create") && long_is(write(fd, "abc", 3), 3, "write") &&
	      sys(unlink(M("rm/open_new")), "unlink") &&
	      long_is(pwrite(fd, "d", 1, 3), 1, "pwrite after unlink") &&
	      long_is(pread(fd, buf, sizeof(buf), 0), 4, "pread after unlink") &&
	      (memcmp(buf, "abcd", 4) == 0 || fail("read \"%s\"", show(buf, 4))) &&
	      sys(fstat(fd, &st), "fstat") && long_is(st.st_nlink, 0, "st_nlink") &&
	      absent(M("rm/open_new")),
	      "unlink: open fd of an unlinked new file reads, writes, st_nlink 0");
	if (fd >= 0)
		close(fd);
}

/* Creating an entry updates the parent directory's mtime and ctime. */
static void test_parent_times(void)
{
	struct timespec t0;
	struct stat st;

	clock_gettime(CLOCK_REALTIME, &t0);
	CHECK(write_file(M("mtime/new"), "n", O_CREAT | O_EXCL) &&
	      lstat_ok(M("mtime"), &st) &&
	      ((st.st_mtim.tv_sec >= t0.tv_sec - 1 && st.st_ctim.tv_sec >= t0.tv_sec - 1) ||
	       fail("parent mtime %lld ctime %lld, created at %lld",
		    (long long)st.st_mtim.tv_sec, (long long)st.st_ctim.tv_sec,
		    (long long)t0.tv_sec)),
	      "create: parent directory mtime and ctime updated");
}

static void test_rmdir(void)
{
	struct stat st;

	CHECK(sys(unlink(M("rm/dir/a")), "unlink a") &&
	      sys(unlink(M("rm/dir/b/c")), "unlink b/c") &&
	      sys(rmdir(M("rm/dir/b")), "rmdir b") &&
	      sys(rmdir(M("rm/dir")), "rmdir dir"),
	      "rmdir: base directory emptied through the merged view");
	CHECK(absent(M("rm/dir")) && is_whiteout(U("rm/dir")),
	      "rmdir: directory gone, whiteout in upper");
	CHECK(sys(mkdir(M("rm/dir"), 0755), "mkdir") &&
	      entries_are(M("rm/dir"), ".,.."),
	      "rmdir: mkdir of the same name gives an empty directory");
	CHECK(type_is(U("rm/dir"), S_IFDIR) && is_opaque(U("rm/dir")),
	      "rmdir: re-created upper directory is opaque");
	CHECK(content_is(B("rm/dir/a"), "a\n") && content_is(B("rm/dir/b/c"), "c\n"),
	      "rmdir: base tree unchanged");
	CHECK(fails_with(rmdir(M("rm/full")), ENOTEMPTY, "rmdir rm/full") &&
	      lstat_ok(M("rm/full/x"), &st),
	      "rmdir: base directory with content gives ENOTEMPTY");
	CHECK(sys(rmdir(M("rm/empty")), "rmdir") && absent(M("rm/empty")) &&
	      is_whiteout(U("rm/empty")),
	      "rmdir: empty base directory, whiteout in upper");
}

/* ---- creating nodes ---------------------------------------------------- */

static void test_create(void)
{
	const char *f = M("new/file");
	int fd;

	CHECK(sys(mkdir(M("new"), 0755), "mkdir new"), "mkdir: new directory");
	fd = open(f, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640);
	CHECK(sys(fd, "open O_CREAT") && sys(write(fd, "hello", 5), "write") &&
	      sys(close(fd), "close") && content_is(f, "hello") &&
	      mode_is(f, 0640) && owner_is(f, 0, 0) &&
	      content_is(U("new/file"), "hello"),
	      "create: O_CREAT|O_EXCL file with mode 0640");
	CHECK(fails_with(open(f, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640),
			 EEXIST, "second O_EXCL"),
	      "create: O_EXCL on an existing name gives EEXIST");
	CHECK(fails_with(open(M("merge/both"), O_CREAT | O_EXCL | O_WRONLY |
			      O_CLOEXEC, 0640), EEXIST, "O_EXCL on merge/both"),
	      "create: O_EXCL on a name from a lower layer gives EEXIST");
	CHECK(sys(mkdir(M("new/dir"), 0750), "mkdir") &&
	      type_is(M("new/dir"), S_IFDIR) && mode_is(M("new/dir"), 0750) &&
	      entries_are(M("new/dir"), ".,..") && nlink_is(M("new/dir"), 2),
	      "mkdir: mode 0750, empty, st_nlink 2");
	CHECK(fails_with(mkdir(M("merge/subdir"), 0755), EEXIST, "mkdir existing"),
	      "mkdir: existing base directory gives EEXIST");
}

static void test_mknod(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	char buf[4];
	int fd, sock;

	CHECK(sys(mkdir(M("nod"), 0755), "mkdir nod") &&
	      sys(mknod(M("nod/fifo"), S_IFIFO | 0644, 0), "mknod fifo") &&
	      type_is(M("nod/fifo"), S_IFIFO) && type_is(U("nod/fifo"), S_IFIFO),
	      "mknod: fifo");

	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "sock");
	CHECK(sys(sock, "socket") && sys(chdir(M("nod")), "chdir") &&
	      sys(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), "bind") &&
	      type_is(M("nod/sock"), S_IFSOCK) && type_is(U("nod/sock"), S_IFSOCK),
	      "mknod: unix socket created by bind");
	if (sock >= 0)
		close(sock);
	if (chdir("/") < 0)
		diag("chdir /: %s", strerror(errno));

	CHECK(sys(mknod(M("nod/null"), S_IFCHR | 0666, makedev(1, 3)), "mknod chr") &&
	      lstat_ok(M("nod/null"), &st) && S_ISCHR(st.st_mode) &&
	      long_is(st.st_rdev, makedev(1, 3), "st_rdev"),
	      "mknod: character device 1:3");
	fd = open(M("nod/null"), O_RDWR | O_CLOEXEC);
	CHECK(sys(fd, "open char device") &&
	      long_is(write(fd, "abc", 3), 3, "write to 1:3") &&
	      long_is(read(fd, buf, sizeof(buf)), 0, "read from 1:3"),
	      "mknod: character device 1:3 opens as /dev/null");
	if (fd >= 0)
		close(fd);
	CHECK(sys(mknod(M("nod/blk"), S_IFBLK | 0600, makedev(7, 200)), "mknod blk") &&
	      lstat_ok(M("nod/blk"), &st) && S_ISBLK(st.st_mode) &&
	      long_is(st.st_rdev, makedev(7, 200), "st_rdev") &&
	      type_is(U("nod/blk"), S_IFBLK),
	      "mknod: block device 7:200");
	CHECK(lstat_ok(M("nodes/null"), &st) && S_ISCHR(st.st_mode) &&
	      long_is(st.st_rdev, makedev(1, 3), "st_rdev") &&
	      type_is(M("nodes/fifo"), S_IFIFO),
	      "mknod: base fifo and device nodes visible");
	CHECK(sys(chmod(M("nodes/fifo"), 0600), "chmod fifo") &&
	      type_is(U("nodes/fifo"), S_IFIFO) && mode_is(U("nodes/fifo"), 0600) &&
	      type_is(B("nodes/fifo"), S_IFIFO) && mode_is(B("nodes/fifo"), 0644),
	      "mknod: chmod copies up a base fifo as a fifo");
}

static void test_symlink(void)
{
	char buf[64];
	ssize_t n;
	struct stat st;

	CHECK(sys(mkdir(M("sym"), 0755), "mkdir sym") &&
	      sys(symlink("target/path", M("sym/link")), "symlink") &&
	      lstat_ok(M("sym/link"), &st) && S_ISLNK(st.st_mode) &&
	      long_is(st.st_size, 11, "symlink st_size"),
	      "symlink: create");
	n = readlink(M("sym/link"), buf, sizeof(buf));
	CHECK(sys(n, "readlink") &&
	      (((size_t)n == 11 && memcmp(buf, "target/path", 11) == 0) ||
	       fail("readlink gave \"%s\"", show(buf, n))),
	      "symlink: readlink returns the target");
	CHECK(sys(symlink("../merge/both", M("sym/rel")), "symlink") &&
	      content_is(M("sym/rel"), "upper-both\n"),
	      "symlink: relative link followed inside the merged view");
	CHECK(fails_with(symlink("x", M("merge/both")), EEXIST, "symlink over file"),
	      "symlink: existing name gives EEXIST");
}

static void test_base_symlink(void)
{
	const char *p = M("bsym/link");
	char buf[64];
	ssize_t n = readlink(p, buf, sizeof(buf));

	CHECK(sys(n, "readlink") &&
	      ((n == 14 && memcmp(buf, "target-of-base", 14) == 0) ||
	       fail("readlink gave \"%s\"", show(buf, n))),
	      "symlink: base symlink readable");
	n = -1;
	CHECK(sys(lchown(p, 1234, 5678), "lchown") && owner_is(p, 1234, 5678) &&
	      type_is(U("bsym/link"), S_IFLNK) &&
	      sys(n = readlink(U("bsym/link"), buf, sizeof(buf)), "readlink upper") &&
	      ((n == 14 && memcmp(buf, "target-of-base", 14) == 0) ||
	       fail("upper readlink gave \"%s\"", show(buf, n))) &&
	      mtime_is(p, BASE_MTIME_S, BASE_MTIME_NS),
	      "symlink: lchown copies up the symlink itself, target and mtime kept");
}

/* ---- rename ------------------------------------------------------------ */

static void test_rename_files(void)
{
	CHECK(sys(rename(M("ren/plain_src"), M("ren/plain_dst")), "rename") &&
	      content_is(M("ren/plain_dst"), "plain\n") &&
	      absent(M("ren/plain_src")) && is_whiteout(U("ren/plain_src")),
	      "rename: base file to a new name, whiteout at the old name");
	CHECK(sys(rename(M("ren/over_src"), M("ren/over_dst")), "rename") &&
	      content_is(M("ren/over_dst"), "over-src\n") &&
	      absent(M("ren/over_src")) && listed_once(M("ren"), "over_dst"),
	      "rename: base file over another base file");
	CHECK(fails_with(renameat2(AT_FDCWD, M("ren/nr_a"), AT_FDCWD,
				   M("ren/nr_b"), RENAME_NOREPLACE),
			 EEXIST, "RENAME_NOREPLACE") &&
	      content_is(M("ren/nr_a"), "nr-a\n") &&
	      content_is(M("ren/nr_b"), "nr-b\n"),
	      "rename: RENAME_NOREPLACE onto an existing name gives EEXIST");
	CHECK(sys(renameat2(AT_FDCWD, M("ren/nr_a"), AT_FDCWD, M("ren/nr_c"),
			    RENAME_NOREPLACE), "RENAME_NOREPLACE") &&
	      content_is(M("ren/nr_c"), "nr-a\n") && absent(M("ren/nr_a")),
	      "rename: RENAME_NOREPLACE onto a free name");
	CHECK(sys(renameat2(AT_FDCWD, M("ren/xa"), AT_FDCWD, M("ren/xb"),
			    RENAME_EXCHANGE), "RENAME_EXCHANGE") &&
	      content_is(M("ren/xa"), "xb\n") && content_is(M("ren/xb"), "xa\n"),
	      "rename: RENAME_EXCHANGE of two base files");
	CHECK(sys(unlink(M("ren/wh_target")), "unlink") &&
	      sys(rename(M("ren/wh_src"), M("ren/wh_target")), "rename") &&
	      content_is(M("ren/wh_target"), "wh-src\n") &&
	      absent(M("ren/wh_src")) && listed_once(M("ren"), "wh_target") &&
	      not_listed(M("ren"), "wh_src") && is_whiteout(U("ren/wh_src")),
	      "rename: onto a name previously deleted (over a whiteout)");
	CHECK(sys(rename(M("ren/cross_src"), M("ren/cross_dir/moved")), "rename") &&
	      content_is(M("ren/cross_dir/moved"), "cross\n") &&
	      absent(M("ren/cross_src")) && is_whiteout(U("ren/cross_src")),
	      "rename: base file into another base directory");
}

static void test_rename_dirs(void)
{
	int r;

	CHECK(sys(mkdir(M("ren/xd"), 0755), "mkdir") &&
	      write_file(M("ren/xd/child"), "child\n", O_CREAT) &&
	      sys(renameat2(AT_FDCWD, M("ren/xf"), AT_FDCWD, M("ren/xd"),
			    RENAME_EXCHANGE), "RENAME_EXCHANGE") &&
	      type_is(M("ren/xf"), S_IFDIR) &&
	      content_is(M("ren/xf/child"), "child\n") &&
	      content_is(M("ren/xd"), "xf\n"),
	      "rename: RENAME_EXCHANGE of a base file and a new directory");

	CHECK(sys(mkdir(M("ren/updir"), 0755), "mkdir") &&
	      write_file(M("ren/updir/f"), "f\n", O_CREAT) &&
	      sys(rename(M("ren/updir"), M("ren/updir2")), "rename") &&
	      content_is(M("ren/updir2/f"), "f\n") && absent(M("ren/updir")),
	      "rename: directory created in the merged view");

	r = rename(M("ren/basedir"), M("ren/basedir_moved"));
	if (r == -1 && errno == EXDEV) {
		diag("rename of a base-only directory: EXDEV (no redirect_dir)");
		CHECK(content_is(M("ren/basedir/f1"), "f1\n") &&
		      absent(M("ren/basedir_moved")),
		      "rename: base-only directory gives EXDEV and changes nothing");
	} else {
		CHECK(sys(r, "rename basedir") &&
		      content_is(M("ren/basedir_moved/f1"), "f1\n") &&
		      content_is(M("ren/basedir_moved/sub/f2"), "f2\n") &&
		      absent(M("ren/basedir")) && not_listed(M("ren"), "basedir"),
		      "rename: base-only directory moved with all content");
	}

	CHECK(sys(mkdir(M("ren/mover"), 0755), "mkdir") &&
	      fails_with(rename(M("ren/mover"), M("ren/full")), ENOTEMPTY,
			 "rename onto ren/full"),
	      "rename: directory onto a non-empty base directory gives ENOTEMPTY");
	CHECK(write_file(M("ren/mover/m"), "m\n", O_CREAT) &&
	      sys(rename(M("ren/mover"), M("ren/emptydir")), "rename") &&
	      entries_are(M("ren/emptydir"), ".,..,m") && absent(M("ren/mover")),
	      "rename: directory onto an empty base directory replaces it");
	CHECK(fails_with(rename(M("ren/file"), M("ren/emptydir")), EISDIR,
			 "file onto dir") &&
	      fails_with(rename(M("ren/emptydir"), M("ren/file")), ENOTDIR,
			 "dir onto file"),
	      "rename: file onto directory EISDIR, directory onto file ENOTDIR");
}

/* ---- open flags, mmap, sync -------------------------------------------- */

static void test_open_flags(void)
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
static void test_stale_fd(void)
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

static void test_o_direct(void)
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

static void test_o_tmpfile(void)
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

static void test_mmap(void)
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
static void test_mmap_private(void)
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
static void test_fd_ops(void)
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

static void test_sync(void)
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

static void test_fallocate(void)
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

static void test_seek(void)
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

static void test_copy_file_range(void)
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

static void test_statfs(void)
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

/* ---- xattrs and ACLs --------------------------------------------------- */

/* True if the NUL-separated list contains name. */
static bool list_has(const char *list, ssize_t len, const char *name)
{
	ssize_t i;

	for (i = 0; i < len; i += strlen(list + i) + 1)
		if (strcmp(list + i, name) == 0)
			return true;
	return false;
}

static bool list_has_prefix(const char *list, ssize_t len, const char *prefix)
{
	ssize_t i;

	for (i = 0; i < len; i += strlen(list + i) + 1)
		if (strncmp(list + i, prefix, strlen(prefix)) == 0)
			return true;
	return false;
}

static void test_xattr(void)
{
	const char *p = M("xattr/file");
	char list[1024];
	ssize_t n;

	CHECK(xattr_is(p, "user.a", "1") && xattr_is(p, "user.b", "2") &&
	      long_is(getxattr(p, "user.a", NULL, 0), 1, "size query"),
	      "xattr: base xattrs readable, size query works");
	CHECK(sys(setxattr(p, "user.c", "three", 5, 0), "setxattr") &&
	      xattr_is(p, "user.c", "three"), "xattr: set user.c");
	n = listxattr(p, list, sizeof(list));
	CHECK(sys(n, "listxattr") &&
	      (list_has(list, n, "user.a") || fail("user.a not listed")) &&
	      (list_has(list, n, "user.b") || fail("user.b not listed")) &&
	      (list_has(list, n, "user.c") || fail("user.c not listed")),
	      "xattr: listxattr shows all user xattrs");
	CHECK(n >= 0 && (!list_has_prefix(list, n, "trusted.overlay.") ||
			 fail("trusted.overlay.* listed")),
	      "xattr: overlay private xattrs are not listed after copy-up");
	CHECK(fails_with(setxattr(p, "user.a", "x", 1, XATTR_CREATE), EEXIST,
			 "XATTR_CREATE") &&
	      fails_with(setxattr(p, "user.zz", "x", 1, XATTR_REPLACE), ENODATA,
			 "XATTR_REPLACE"),
	      "xattr: XATTR_CREATE gives EEXIST, XATTR_REPLACE gives ENODATA");
	CHECK(sys(removexattr(p, "user.b"), "removexattr") &&
	      xattr_absent(p, "user.b") && xattr_is(p, "user.a", "1"),
	      "xattr: removexattr");
	CHECK(fails_with(removexattr(p, "user.b"), ENODATA, "second removexattr"),
	      "xattr: removexattr of a missing name gives ENODATA");
	CHECK(xattr_is(B("xattr/file"), "user.b", "2") &&
	      xattr_absent(B("xattr/file"), "user.c"),
	      "xattr: base file unchanged");
	CHECK(sys(setxattr(M("xattr/dir"), "user.d", "dir", 3, 0), "setxattr dir") &&
	      xattr_is(M("xattr/dir"), "user.d", "dir") &&
	      xattr_absent(B("xattr/dir"), "user.d"),
	      "xattr: set on a base directory");
	CHECK(lgetxattr(M("merge/opq"), "trusted.overlay.opaque", list,
			sizeof(list)) < 0 ||
	      fail("trusted.overlay.opaque readable in the merged view"),
	      "xattr: overlay private xattrs are not readable");
}

/* Finds the ACL_USER entry for uid in path's ACL of the given type and
 * compares its permissions with want ("rwx" form). */
static bool acl_user_is(const char *path, acl_type_t type, uid_t uid,
			const char *want)
{
	acl_t acl = acl_get_file(path, type);
	acl_entry_t e;
	acl_tag_t tag;
	acl_permset_t ps;
	char got[4] = "---";
	int r;
	bool found = false;

	if (!acl)
		return fail("acl_get_file %s: %s", path, strerror(errno));
	for (r = acl_get_entry(acl, ACL_FIRST_ENTRY, &e); r == 1 && !found;
	     r = acl_get_entry(acl, ACL_NEXT_ENTRY, &e)) {
		uid_t *q;

		if (acl_get_tag_type(e, &tag) < 0 || tag != ACL_USER)
			continue;
		q = acl_get_qualifier(e);
		found = q && *q == uid;
		acl_free(q);
		if (found && acl_get_permset(e, &ps) == 0) {
			got[0] = acl_get_perm(ps, ACL_READ) == 1 ? 'r' : '-';
			got[1] = acl_get_perm(ps, ACL_WRITE) == 1 ? 'w' : '-';
			got[2] = acl_get_perm(ps, ACL_EXECUTE) == 1 ? 'x' : '-';
		}
	}
	acl_free(acl);
	if (!found)
		return fail("%s: no ACL entry for user %u", path, uid);
	if (strcmp(got, want) == 0)
		return true;
	return fail("%s: ACL user %u has %s, want %s", path, uid, got, want);
}

static bool acl_set_text(const char *path, acl_type_t type, const char *text)
{
	acl_t acl = acl_from_text(text);
	bool good;

	if (!acl)
		return fail("acl_from_text \"%s\": %s", text, strerror(errno));
	good = sys(acl_set_file(path, type, acl), "acl_set_file");
	acl_free(acl);
	return good;
}

static void test_acl(void)
{
	const char *f = M("acl/file");
	const char *d = M("acl/dir");
	acl_t base;
	int fd;

	CHECK(acl_set_text(f, ACL_TYPE_ACCESS,
			   "u::rw-,u:1234:rw-,g::r--,m::rw-,o::r--") &&
	      acl_user_is(f, ACL_TYPE_ACCESS, 1234, "rw-") && mode_is(f, 0664),
	      "acl: set and get an access ACL on a base file");
	CHECK(xattr_absent(B("acl/file"), "system.posix_acl_access"),
	      "acl: base file has no ACL afterwards");

	CHECK(acl_set_text(d, ACL_TYPE_DEFAULT,
			   "u::rwx,u:4321:r-x,g::r-x,m::r-x,o::---") &&
	      acl_user_is(d, ACL_TYPE_DEFAULT, 4321, "r-x"),
	      "acl: set and get a default ACL on a base directory");
	fd = open(M("acl/dir/new"), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
	CHECK(sys(fd, "create in acl/dir") &&
	      acl_user_is(M("acl/dir/new"), ACL_TYPE_ACCESS, 4321, "r-x") &&
	      mode_is(M("acl/dir/new"), 0640),
	      "acl: new file inherits the default ACL (mask from create mode)");
	if (fd >= 0)
		close(fd);
	CHECK(sys(mkdir(M("acl/dir/sub"), 0777), "mkdir in acl/dir") &&
	      acl_user_is(M("acl/dir/sub"), ACL_TYPE_DEFAULT, 4321, "r-x"),
	      "acl: new subdirectory inherits the default ACL as default");

	base = acl_get_file(B("acl/withacl"), ACL_TYPE_ACCESS);
	if (!base || acl_entries(base) <= 3) {
		skip("fixture has no ACL (setfacl missing)",
		     "acl: access ACL preserved by copy-up");
	} else {
		CHECK(write_file(M("acl/withacl"), "more\n", O_APPEND) &&
		      acl_user_is(M("acl/withacl"), ACL_TYPE_ACCESS, 1234, "rw-"),
		      "acl: access ACL preserved by copy-up");
	}
	if (base)
		acl_free(base);
}

/* ---- locks ------------------------------------------------------------- */

static void test_flock(void)
{
	int a = open(M("lock/flock"), O_RDONLY | O_CLOEXEC);
	int b = open(M("lock/flock"), O_RDONLY | O_CLOEXEC);

	CHECK(sys(a, "open a") && sys(b, "open b") &&
	      sys(flock(a, LOCK_EX), "flock a LOCK_EX") &&
	      fails_with(flock(b, LOCK_EX | LOCK_NB), EWOULDBLOCK,
			 "flock b LOCK_EX|LOCK_NB"),
	      "flock: second LOCK_EX|LOCK_NB gets EWOULDBLOCK");
	CHECK(sys(flock(a, LOCK_UN), "unlock a") &&
	      sys(flock(b, LOCK_EX | LOCK_NB), "flock b after unlock"),
	      "flock: lock available after LOCK_UN");
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
}

/* Child side of the fcntl lock test; exit status bits report failures. */
static int posix_lock_child(const char *path, pid_t parent)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = 50, .l_len = 10 };
	int fd = open(path, O_RDWR | O_CLOEXEC);
	int status = 0;

	if (fd < 0)
		return 0x80;
	if (!(fcntl(fd, F_SETLK, &fl) == -1 &&
	      (errno == EAGAIN || errno == EACCES)))
		status |= 1;
	fl.l_type = F_WRLCK;
	if (fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type != F_WRLCK ||
	    fl.l_pid != parent)
		status |= 2;
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET,
			     .l_start = 200, .l_len = 10 };
	if (fcntl(fd, F_SETLK, &fl) < 0)
		status |= 4;
	close(fd);
	return status;
}

static void test_posix_lock(void)
{
	const char *p = M("lock/posix");
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = 0, .l_len = 100 };
	int fd = open(p, O_RDWR | O_CLOEXEC);
	int status = -1;
	pid_t pid = -1;

	if (fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0) {
		fflush(stdout);
		pid = fork();
		if (pid == 0)
			_exit(posix_lock_child(p, getppid()));
		if (pid > 0)
			waitpid(pid, &status, 0);
	}
	CHECK(sys(fd, "open") && sys(pid, "F_SETLK or fork") &&
	      ((WIFEXITED(status) && !(WEXITSTATUS(status) & 0x81)) ||
	       fail("child: conflicting F_SETLK did not fail with EAGAIN/EACCES "
		    "(status 0x%x)", status)),
	      "fcntl lock: conflicting F_SETLK from a child fails");
	CHECK(WIFEXITED(status) && !(WEXITSTATUS(status) & 2),
	      "fcntl lock: F_GETLK in the child reports the parent's lock");
	CHECK(WIFEXITED(status) && !(WEXITSTATUS(status) & 4),
	      "fcntl lock: non-overlapping range can be locked by the child");
	if (fd >= 0)
		close(fd);
}

/* ---- timestamps -------------------------------------------------------- */

static void test_utimens(void)
{
	const char *p = M("utime/now");
	struct timespec now_omit[2] = { { .tv_nsec = UTIME_NOW },
					{ .tv_nsec = UTIME_OMIT } };
	struct timespec omit_set[2] = { { .tv_nsec = UTIME_OMIT },
					{ .tv_sec = 1500000000, .tv_nsec = 5 } };
	struct timespec t0, t1;
	struct stat st;

	clock_gettime(CLOCK_REALTIME, &t0);
	CHECK(sys(utimensat(AT_FDCWD, p, now_omit, 0), "utimensat") &&
	      lstat_ok(p, &st) && mtime_is(p, BASE_MTIME_S, BASE_MTIME_NS) &&
	      (clock_gettime(CLOCK_REALTIME, &t1), true) &&
	      ((st.st_atim.tv_sec >= t0.tv_sec - 1 &&
		st.st_atim.tv_sec <= t1.tv_sec + 1) ||
	       fail("atime %lld not in [%lld, %lld]", (long long)st.st_atim.tv_sec,
		    (long long)t0.tv_sec, (long long)t1.tv_sec)),
	      "utimensat: UTIME_NOW sets atime, UTIME_OMIT keeps mtime");
	CHECK(sys(utimensat(AT_FDCWD, p, omit_set, 0), "utimensat") &&
	      mtime_is(p, 1500000000, 5) &&
	      atime_is(p, st.st_atim.tv_sec, st.st_atim.tv_nsec),
	      "utimensat: UTIME_OMIT keeps atime, explicit ns mtime set");
	CHECK(mtime_is(B("utime/now"), BASE_MTIME_S, BASE_MTIME_NS),
	      "utimensat: base file unchanged");
}

/* ---- large files, names, deep paths ------------------------------------ */

static void test_bigfile(void)
{
	const char *p = M("big/new");
	const char *q = M("big/base");
	int fd = open(p, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
	struct stat st;

	CHECK(sys(fd, "create") && long_is(pwrite(fd, "Q", 1, 5 * GiB), 1, "pwrite") &&
	      sys(fstat(fd, &st), "fstat") &&
	      long_is(st.st_size, 5 * GiB + 1, "st_size") &&
	      bytes_at(p, 5 * GiB, "Q", 1) && filled_with(p, 4 * GiB, 16, 0),
	      "large file: 1 byte at 5 GiB, size and data right");
	if (fd >= 0)
		close(fd);
	CHECK(bytes_at(q, 5 * GiB, "Z", 1), "large file: base byte at 5 GiB readable");
	CHECK(write_file(q, "a", 0) && lstat_ok(q, &st) &&
	      long_is(st.st_size, 6 * GiB, "st_size") && bytes_at(q, 0, "a", 1) &&
	      bytes_at(q, 5 * GiB, "Z", 1) &&
	      (st.st_blocks * 512 <= SPARSE_SLACK || fail("st_blocks %lld",
						    (long long)st.st_blocks)),
	      "large file: copy-up of a 6 GiB sparse file keeps data past 4 GiB");
}

static void test_names(void)
{
	char name[257];
	char bin[] = "\xff\xfe";
	char basebin[] = "bin\xff\xfe";
	struct stat st;

	memset(name, 'a', 255);
	name[255] = '\0';
	CHECK(sys(mkdir(M("nm"), 0755), "mkdir nm") &&
	      write_file(M("nm/%s", name), "x", O_CREAT | O_EXCL) &&
	      content_is(M("nm/%s", name), "x") && listed_once(M("nm"), name),
	      "names: 255-byte name created, read, listed");
	memset(name, 'a', 256);
	name[256] = '\0';
	CHECK(fails_with(open(M("nm/%s", name), O_CREAT | O_WRONLY | O_CLOEXEC, 0644),
			 ENAMETOOLONG, "create 256-byte name") &&
	      fails_with(lstat(M("nm/%s", name), &st), ENAMETOOLONG,
			 "lstat 256-byte name"),
	      "names: 256-byte name gives ENAMETOOLONG");
	memset(name, 'b', 255);
	name[255] = '\0';
	CHECK(content_is(M("names/%s", name), "long\n"),
	      "names: 255-byte base name readable");
	CHECK(write_file(M("nm/%s", bin), "ff", O_CREAT | O_EXCL) &&
	      content_is(M("nm/%s", bin), "ff") && listed_once(M("nm"), bin),
	      "names: non-UTF-8 name (0xff 0xfe) created and listed byte-exact");
	CHECK(content_is(M("names/%s", basebin), "binary\n") &&
	      listed_once(M("names"), basebin),
	      "names: non-UTF-8 base name readable and listed");
	CHECK(sys(unlink(M("names/%s", basebin)), "unlink") &&
	      absent(M("names/%s", basebin)) && is_whiteout(U("names/%s", basebin)),
	      "names: unlink of a non-UTF-8 base name leaves a byte-exact whiteout");
}

#define DEEP_LEVELS 60

/* Creates DEEP_LEVELS nested 50-byte-named dirs with openat/mkdirat. */
static void test_deep_new(void)
{
	char comp[51], path[PATH_MAX];
	size_t len;
	int dfd = open(merged_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC), next, i;
	bool good = sys(dfd, "open root");

	memset(comp, 'p', 48);
	comp[50] = '\0';
	len = snprintf(path, sizeof(path), "%s/", merged_root);
	for (i = 0; good && i < DEEP_LEVELS; i++) {
		snprintf(comp + 48, 3, "%02d", i);
		good = sys(mkdirat(dfd, comp, 0755), "mkdirat");
		next = good ? openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		good = good && sys(next, "openat");
		close(dfd);
		dfd = next;
		len += snprintf(path + len, sizeof(path) - len, "%s/", comp);
	}
	good = good && (len < PATH_MAX - 10 || fail("path too long: %zu", len));
	if (good)
		strcat(path, "leaf");
	CHECK(good && write_file(path, "deep", O_CREAT | O_EXCL) &&
	      content_is(path, "deep"),
	      "deep path: %d nested dirs (%zu-byte path), file at the bottom",
	      DEEP_LEVELS, len + 4);
	if (dfd >= 0)
		close(dfd);
}

static void test_deep_base(void)
{
	char rel[PATH_MAX] = "deep";
	size_t len = 4;
	int i;

	for (i = 0; i < DEEP_LEVELS; i++)
		len += snprintf(rel + len, sizeof(rel) - len, "/d%02d", i);
	strcat(rel, "/leaf");
	CHECK(content_is(M("%s", rel), "leaf\n") &&
	      write_file(M("%s", rel), "leaf2\n", O_TRUNC) &&
	      content_is(M("%s", rel), "leaf2\n") &&
	      content_is(U("%s", rel), "leaf2\n") &&
	      content_is(B("%s", rel), "leaf\n"),
	      "deep path: write at depth %d copies up all parents", DEEP_LEVELS);
}

/* ---- main -------------------------------------------------------------- */

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Names the filesystem under test in the log, to tell runs apart. */
static void describe_mount(void)
{
	struct statfs sf;
	const char *kind = "other";

	if (statfs(merged_root, &sf) < 0) {
		diag("statfs %s: %s", merged_root, strerror(errno));
		return;
	}
	if (sf.f_type == 0x794c7630)
		kind = "overlayfs";
	else if (sf.f_type == 0x65735546)
		kind = "fuse";
	diag("%s: %s (f_type 0x%lx)", merged_root, kind, (unsigned long)sf.f_type);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s MERGED BASE UPPER\n", argv[0]);
		return 2;
	}
	merged_root = argv[1];
	base_root = argv[2];
	upper_root = argv[3];
	if (!is_dir(merged_root) || !is_dir(base_root) || !is_dir(upper_root)) {
		tap_bail("MERGED, BASE and UPPER must be directories");
		return 1;
	}
	if (access(M("merge/only_base"), F_OK) != 0) {
		tap_bail("%s: fixture missing (make_posix_fixture?): %s",
			 M("merge/only_base"), strerror(errno));
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	umask(022);
	describe_mount();

	test_lookup();
	test_readdir();
	test_readdir_ino();
	test_readdir_large();
	test_readdir_seek();
	test_dots();
	test_ino_stable();
	test_hardlink();
	test_base_hardlinks();
	test_copyup_write();
	test_copyup_truncate();
	test_copyup_chmod();
	test_copyup_chown();
	test_copyup_utimens();
	test_copyup_setxattr();
	test_copyup_link();
	test_copyup_rename();
	test_copyup_dir();
	test_copyup_sparse();
	test_concurrent_copyup();
	test_unlink();
	test_unlink_open();
	test_rmdir();
	test_create();
	test_parent_times();
	test_mknod();
	test_symlink();
	test_base_symlink();
	test_rename_files();
	test_rename_dirs();
	test_open_flags();
	test_stale_fd();
	test_o_direct();
	test_o_tmpfile();
	test_mmap();
	test_mmap_private();
	test_fd_ops();
	test_sync();
	test_fallocate();
	test_seek();
	test_copy_file_range();
	test_statfs();
	test_xattr();
	test_acl();
	test_flock();
	test_posix_lock();
	test_utimens();
	test_bigfile();
	test_names();
	test_deep_new();
	test_deep_base();
	return tap_done();
}
