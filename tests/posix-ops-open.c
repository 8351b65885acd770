/* posix-ops: open files and directories outliving their names, and several
 * readers of one directory. */
#include "posix-ops.h"

#include <sys/syscall.h>

/* fd (read from offset 0) holds exactly `want`. */
static bool fd_holds(int fd, const char *want)
{
	char buf[256];
	size_t len = strlen(want);
	ssize_t n = pread(fd, buf, sizeof(buf), 0);

	if (n < 0)
		return fail("pread: %s", strerror(errno));
	if ((size_t)n != len || memcmp(buf, want, len) != 0)
		return fail("fd reads \"%s\", want \"%s\"", show(buf, n), show(want, len));
	return true;
}

/* Writes `data` to a new file `tmp`, then renames it over `name`. */
static bool replace_by_rename(const char *tmp, const char *name, const char *data)
{
	char t[PATH_MAX], n[PATH_MAX];

	snprintf(t, sizeof(t), "%s", M("%s", tmp));
	snprintf(n, sizeof(n), "%s", M("%s", name));
	return write_file(t, data, O_CREAT | O_EXCL) && sys(rename(t, n), "rename over the open file");
}

static bool closes(int fd)
{
	return sys(close(fd), "close");
}

/* The way apt and dpkg update their state files: a reader keeps an fd on
 * the file while a writer renames a new version over it.  The old fd
 * still reads the old data and closes without error. */
void test_open_replaced(void)
{
	struct stat st;
	int fd, ro, rw;

	/* A file created in the merged view (it lives in the upper). */
	fd = -1;
	CHECK(write_file(M("open/new"), "old-new\n", O_CREAT | O_EXCL) &&
	      sys(fd = open(M("open/new"), O_RDONLY | O_CLOEXEC), "open") &&
	      replace_by_rename("open/new.2", "open/new", "replacement\n") &&
	      fd_holds(fd, "old-new\n") && sys(fstat(fd, &st), "fstat") &&
	      long_is(st.st_nlink, 0, "st_nlink of the replaced file") &&
	      long_is(st.st_size, 8, "st_size of the replaced file") &&
	      closes(fd) && content_is(M("open/new"), "replacement\n"),
	      "open: rename over an open new file: old fd reads old data, fstat, close");

	/* A base file, opened before it was replaced. */
	fd = -1;
	CHECK(sys(fd = open(M("open/base"), O_RDONLY | O_CLOEXEC), "open") &&
	      replace_by_rename("open/base.2", "open/base", "replacement\n") &&
	      fd_holds(fd, "open-base\n") && sys(fstat(fd, &st), "fstat") &&
	      long_is(st.st_size, 10, "st_size of the replaced file") &&
	      closes(fd) && content_is(M("open/base"), "replacement\n") &&
	      content_is(B("open/base"), "open-base\n"),
	      "open: rename over an open base file: old fd reads old data, close");

	/* A base file opened read-only, copied up by another writer, then
	 * replaced: the reader sees the copy's data, before and after. */
	ro = rw = -1;
	CHECK(sys(ro = open(M("open/copied"), O_RDONLY | O_CLOEXEC), "open O_RDONLY") &&
	      sys(rw = open(M("open/copied"), O_RDWR | O_CLOEXEC), "open O_RDWR") &&
	      long_is(pwrite(rw, "COPIED", 6, 0), 6, "pwrite") && fd_holds(ro, "COPIED-copied\n") &&
	      replace_by_rename("open/copied.2", "open/copied", "replacement\n") &&
	      fd_holds(ro, "COPIED-copied\n") &&
	      long_is(pwrite(rw, "AGAIN!", 6, 0), 6, "pwrite after the rename") &&
	      fd_holds(ro, "AGAIN!-copied\n") && fd_holds(rw, "AGAIN!-copied\n") &&
	      closes(ro) && (ro = -1, closes(rw)) && (rw = -1, true) &&
	      content_is(M("open/copied"), "replacement\n"),
	      "open: copy-up by another writer, then rename over: both fds keep the copy");
	if (ro >= 0)
		close(ro);
	if (rw >= 0)
		close(rw);

	/* The same file replaced twice while open, the second time by a name
	 * the reader had also opened. */
	ro = rw = -1;
	CHECK(write_file(M("open/twice"), "first\n", O_CREAT | O_EXCL) &&
	      sys(ro = open(M("open/twice"), O_RDONLY | O_CLOEXEC), "open") &&
	      replace_by_rename("open/twice.2", "open/twice", "second\n") &&
	      sys(rw = open(M("open/twice"), O_RDONLY | O_CLOEXEC), "open the second") &&
	      replace_by_rename("open/twice.3", "open/twice", "third\n") &&
	      fd_holds(ro, "first\n") && fd_holds(rw, "second\n") &&
	      closes(ro) && (ro = -1, closes(rw)) && (rw = -1, true) &&
	      content_is(M("open/twice"), "third\n"),
	      "open: a file replaced twice: each old fd reads its own version");
	if (ro >= 0)
		close(ro);
	if (rw >= 0)
		close(rw);

	/* A directory made in the merged view, replaced while open. */
	fd = -1;
	CHECK(sys(mkdir(M("open/dir"), 0755), "mkdir") &&
	      sys(fd = open(M("open/dir"), O_RDONLY | O_DIRECTORY | O_CLOEXEC), "open") &&
	      sys(mkdir(M("open/dir.2"), 0700), "mkdir the replacement") &&
	      sys(rename(M("open/dir.2"), M("open/dir")), "rename over the open directory") &&
	      sys(fstat(fd, &st), "fstat") && long_is(st.st_mode & 07777, 0755, "mode of the old directory") &&
	      closes(fd) && mode_is(M("open/dir"), 0700),
	      "open: rename over an open new directory: old fd stats and closes");
}

/* fd-based calls on a file whose name is gone. */
static bool fd_ops_work(int fd, const char *what)
{
	struct stat st;
	char buf[16] = "";

	(void)what;
	return sys(fchmod(fd, 0600), "fchmod") && sys(fstat(fd, &st), "fstat") &&
	       long_is(st.st_mode & 07777, 0600, "mode after fchmod") &&
	       long_is(st.st_nlink, 0, "st_nlink") &&
	       sys(ftruncate(fd, 3), "ftruncate") && sys(fstat(fd, &st), "fstat") &&
	       long_is(st.st_size, 3, "size after ftruncate") &&
	       long_is(pwrite(fd, "XY", 2, 3), 2, "pwrite") &&
	       long_is(pread(fd, buf, sizeof(buf), 0), 5, "pread") &&
	       ((memcmp(buf, what, 3) == 0 && memcmp(buf + 3, "XY", 2) == 0) ||
		fail("fd reads \"%s\"", show(buf, 5))) &&
	       sys(fsync(fd), "fsync") && sys(fstat(fd, &st), "fstat") &&
	       long_is(st.st_size, 5, "size after pwrite");
}

void test_open_unlinked(void)
{
	int fd = -1;

	CHECK(write_file(M("open/unl_new"), "new-file\n", O_CREAT | O_EXCL) &&
	      sys(fd = open(M("open/unl_new"), O_RDWR | O_CLOEXEC), "open") &&
	      sys(unlink(M("open/unl_new")), "unlink") && fd_ops_work(fd, "new") &&
	      closes(fd) && absent(M("open/unl_new")),
	      "open: fchmod, fstat, ftruncate, write on an unlinked new file");

	fd = -1;
	CHECK(sys(fd = open(M("open/unl_base"), O_RDWR | O_CLOEXEC), "open") &&
	      sys(unlink(M("open/unl_base")), "unlink") && fd_ops_work(fd, "unl") &&
	      closes(fd) && absent(M("open/unl_base")) &&
	      content_is(B("open/unl_base"), "unl-base\n"),
	      "open: fchmod, fstat, ftruncate, write on an unlinked base file opened for writing");

	/* Renamed away rather than unlinked: the fd follows the file. */
	fd = -1;
	CHECK(write_file(M("open/moved"), "moved\n", O_CREAT | O_EXCL) &&
	      sys(fd = open(M("open/moved"), O_RDWR | O_CLOEXEC), "open") &&
	      sys(rename(M("open/moved"), M("open/moved.new")), "rename") &&
	      long_is(pwrite(fd, "M", 1, 0), 1, "pwrite") && closes(fd) &&
	      content_is(M("open/moved.new"), "Moved\n"),
	      "open: writes through an fd reach the file after it was renamed");
}

/* ---- two readers of one directory --------------------------------------- */

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Reads at most `max` entries (all if max < 0) from the directory fd with
 * small getdents64 calls, marking seen[i] for each name "e<i>". */
static bool read_entries(int fd, int max, int *seen, int nseen, int *ret_count)
{
	char buf[128];
	int count = 0;

	while (max < 0 || count < max) {
		/* Room for about two entries: the caller stops where it wants. */
		long n = syscall(SYS_getdents64, fd, buf, max < 0 ? sizeof(buf) : 48);
		if (n < 0)
			return fail("getdents64: %s", strerror(errno));
		if (n == 0)
			break;
		for (long pos = 0; pos < n;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + pos);
			int i;
			pos += d->d_reclen;
			if (d->d_name[0] != 'e')
				continue;
			i = atoi(d->d_name + 1);
			if (i >= 0 && i < nseen)
				seen[i]++;
			count++;
		}
	}
	*ret_count = count;
	return true;
}

/* One reader stops half-way; another unlinks through paths and lists the
 * directory to the end; the first then continues.  Every name that still
 * exists must reach the first reader exactly once. */
void test_readdir_two_handles(void)
{
	enum { N = 200, FIRST = 100 };
	int seen1[N] = { 0 }, seen2[N] = { 0 };
	int fd1 = open(M("rd2"), O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd2 = -1;
	int got1 = 0, got2 = 0, rest = 0, removed = 0, missing = 0, twice = 0;
	bool good = sys(fd1, "open rd2") && read_entries(fd1, FIRST, seen1, N, &got1) &&
		    (got1 >= FIRST || fail("first reader got %d entries", got1));

	/* Unlink 50 of the names the first reader has already seen. */
	for (int i = 0; good && i < N && removed < 50; i++)
		if (seen1[i]) {
			good = sys(unlink(M("rd2/e%03d", i)), "unlink");
			removed++;
		}
	good = good && sys(fd2 = open(M("rd2"), O_RDONLY | O_DIRECTORY | O_CLOEXEC), "open rd2 again") &&
	       read_entries(fd2, -1, seen2, N, &got2) &&
	       long_is(got2, N - removed, "entries seen by the second reader") &&
	       read_entries(fd1, -1, seen1, N, &rest);
	for (int i = 0; good && i < N; i++) {
		bool exists = access(M("rd2/e%03d", i), F_OK) == 0;
		if (exists && !seen1[i])
			missing++;
		if (seen1[i] > 1)
			twice++;
	}
	good = good && long_is(missing, 0, "existing names the first reader never got") &&
	       long_is(twice, 0, "names the first reader got twice");
	if (fd1 >= 0)
		close(fd1);
	if (fd2 >= 0)
		close(fd2);
	CHECK(good, "readdir: two handles on one directory each get a full listing");
}

/* As above, but the second reader and a third one both stop part-way
 * before the first goes on, so that whatever the filesystem kept for the
 * first reader may have been replaced twice; the second then finishes.  Works in rd3/, 200 files
 * made through the mount. */
void test_readdir_three_handles(void)
{
	enum { N = 200, FIRST = 100 };
	int seen1[N] = { 0 }, seen2[N] = { 0 }, seen3[N] = { 0 };
	int fd1 = -1, fd2 = -1, fd3 = -1;
	int got1 = 0, got2 = 0, got3 = 0, rest = 0, removed = 0, missing = 0, twice = 0;
	bool good = mkdir(M("rd3"), 0755) == 0 || fail("mkdir rd3: %s", strerror(errno));
	for (int i = 0; good && i < N; i++)
		good = write_file(M("rd3/e%03d", i), "", O_CREAT | O_EXCL);
	good = good && sys(fd1 = open(M("rd3"), O_RDONLY | O_DIRECTORY | O_CLOEXEC), "open rd3") &&
	       read_entries(fd1, FIRST, seen1, N, &got1) &&
	       (got1 >= FIRST || fail("first reader got %d entries", got1));
	for (int i = 0; good && i < N && removed < 50; i++)
		if (seen1[i]) {
			good = sys(unlink(M("rd3/e%03d", i)), "unlink");
			removed++;
		}
	int more2 = 0;
	good = good && sys(fd2 = open(M("rd3"), O_RDONLY | O_DIRECTORY | O_CLOEXEC), "open rd3 again") &&
	       read_entries(fd2, 30, seen2, N, &got2) &&
	       sys(fd3 = open(M("rd3"), O_RDONLY | O_DIRECTORY | O_CLOEXEC), "open rd3 a third time") &&
	       read_entries(fd3, 30, seen3, N, &got3) && read_entries(fd1, -1, seen1, N, &rest) &&
	       read_entries(fd2, -1, seen2, N, &more2) &&
	       long_is(got2 + more2, N - removed, "entries seen by the second reader");
	for (int i = 0; good && i < N; i++) {
		bool exists = access(M("rd3/e%03d", i), F_OK) == 0;
		if (exists && !seen1[i])
			missing++;
		if (seen1[i] > 1)
			twice++;
	}
	good = good && long_is(missing, 0, "existing names the first reader never got") &&
	       long_is(twice, 0, "names the first reader got twice");
	if (fd1 >= 0)
		close(fd1);
	if (fd2 >= 0)
		close(fd2);
	if (fd3 >= 0)
		close(fd3);
	CHECK(good, "readdir: a reader goes on correctly after two other readers listed the changed directory");
}
