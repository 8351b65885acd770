/* posix-ops: xattrs, ACLs, locks, timestamps, large files, names, deep paths. */
#include "posix-ops.h"

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

void test_xattr(void)
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

void test_acl(void)
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

void test_flock(void)
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

void test_posix_lock(void)
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

void test_utimens(void)
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

void test_bigfile(void)
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

void test_names(void)
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
void test_deep_new(void)
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

void test_deep_base(void)
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

