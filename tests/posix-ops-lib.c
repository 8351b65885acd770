/* posix-ops: helpers shared by the test areas (paths, checks on files). */
#include "posix-ops.h"

const char *merged_root, *base_root, *upper_root;

/* ---- failure reasons ------------------------------------------------ */

/* Helpers return false and describe the problem here; CHECK prints it. */
char reason[2048];

__attribute__((format(printf, 1, 2)))
bool fail(const char *fmt, ...)
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

bool check_done(bool passed)
{
	if (!passed)
		diag("%s", reason[0] ? reason : "(no detail)");
	reason[0] = '\0';
	return passed;
}


/* ---- paths ---------------------------------------------------------- */

const char *vpath(const char *root, const char *fmt, va_list ap)
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
const char *M(const char *fmt, ...)
{
	va_list ap;
	const char *p;

	va_start(ap, fmt);
	p = vpath(merged_root, fmt, ap);
	va_end(ap);
	return p;
}

__attribute__((format(printf, 1, 2)))
const char *B(const char *fmt, ...)
{
	va_list ap;
	const char *p;

	va_start(ap, fmt);
	p = vpath(base_root, fmt, ap);
	va_end(ap);
	return p;
}

__attribute__((format(printf, 1, 2)))
const char *U(const char *fmt, ...)
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
const char *show(const void *data, size_t len)
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
bool sys(long ret, const char *what)
{
	if (ret != -1)
		return true;
	return fail("%s: %s", what, strerror(errno));
}

/* fails_with(ret, err, what): true iff the call failed with errno err. */
bool fails_with(long ret, int err, const char *what)
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

bool long_is(long got, long want, const char *what)
{
	if (got == want)
		return true;
	return fail("%s: got %ld, want %ld", what, got, want);
}

bool drop_caches(void)
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

bool lstat_ok(const char *path, struct stat *st)
{
	if (lstat(path, st) == 0)
		return true;
	return fail("lstat %s: %s", path, strerror(errno));
}

bool absent(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		return fail("%s exists (mode 0%o)", path, st.st_mode);
	if (errno == ENOENT)
		return true;
	return fail("lstat %s: expected ENOENT, got %s", path, strerror(errno));
}

/* Reads at most cap bytes from offset off of path; -1 with reason set. */
ssize_t read_at(const char *path, off_t off, void *buf, size_t cap)
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

bool bytes_at(const char *path, off_t off, const void *want,
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
bool content_is(const char *path, const char *want)
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

bool filled_with(const char *path, off_t off, size_t len, char c)
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

bool write_file(const char *path, const char *data, int flags)
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

bool mode_is(const char *path, mode_t want)
{
	struct stat st;

	if (!lstat_ok(path, &st))
		return false;
	if ((st.st_mode & 07777) == want)
		return true;
	return fail("%s: mode 0%o, want 0%o", path, st.st_mode & 07777, want);
}

bool type_is(const char *path, mode_t type)
{
	struct stat st;

	if (!lstat_ok(path, &st))
		return false;
	if ((st.st_mode & S_IFMT) == type)
		return true;
	return fail("%s: file type 0%o, want 0%o", path, st.st_mode & S_IFMT,
		    type);
}

bool owner_is(const char *path, uid_t uid, gid_t gid)
{
	struct stat st;

	if (!lstat_ok(path, &st))
		return false;
	if (st.st_uid == uid && st.st_gid == gid)
		return true;
	return fail("%s: owner %u:%u, want %u:%u", path, st.st_uid, st.st_gid,
		    uid, gid);
}

bool mtime_is(const char *path, time_t sec, long nsec)
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

bool atime_is(const char *path, time_t sec, long nsec)
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

bool nlink_is(const char *path, nlink_t want)
{
	struct stat st;

	if (!lstat_ok(path, &st))
		return false;
	if (st.st_nlink == want)
		return true;
	return fail("%s: st_nlink %lu, want %lu", path,
		    (unsigned long)st.st_nlink, (unsigned long)want);
}

bool xattr_is(const char *path, const char *name, const char *want)
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

bool xattr_absent(const char *path, const char *name)
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
bool is_whiteout(const char *path)
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
bool is_opaque(const char *path)
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

int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted comma-separated names in dir (including . and ..); NULL if the
 * directory cannot be read.  Caller frees. */
char *list_dir(const char *path)
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

bool entries_are(const char *path, const char *want)
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
int count_entry(const char *path, const char *name)
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

bool listed_once(const char *dir, const char *name)
{
	int n = count_entry(dir, name);

	if (n == 1)
		return true;
	if (n >= 0)
		fail("%s: \"%s\" listed %d times, want once", dir,
		     show(name, strlen(name)), n);
	return false;
}

bool not_listed(const char *dir, const char *name)
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
bool cu_base_intact(const char *op)
{
	const char *p = B("cu/%s", op);

	return content_is(p, CU_CONTENT) && mode_is(p, CU_MODE) &&
	       owner_is(p, CU_UID, CU_GID) &&
	       mtime_is(p, BASE_MTIME_S, BASE_MTIME_NS) &&
	       nlink_is(p, 1) && xattr_is(p, "user.cu", "base-value") &&
	       xattr_absent(p, "user.new");
}

