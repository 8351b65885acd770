/* posix-ops: exec, other processes, shared mappings and O_DIRECT around
 * copy-up.  With FUSE passthrough each handle's route is fixed when it is
 * opened (cowfs/cowfs-route.c): these are the cases that must not see it. */
#include "posix-ops.h"

#include <signal.h>

/* A child holds a base file open read-only; the parent then copies it up
 * by writing; the child's descriptor reads the new data. */
void test_copyup_other_process(void)
{
	int ready[2], go[2];
	char buf[64] = "";
	ssize_t n = -1;
	pid_t pid;

	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) {
		CHECK(fail("pipe: %s", strerror(errno)), "copy-up: another process's read-only fd reads the new data");
		return;
	}
	pid = fork();
	if (pid == 0) {
		char c, got[64];
		int fd = open(M("io/other"), O_RDONLY | O_CLOEXEC);
		if (write(ready[1], fd >= 0 ? "o" : "e", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(1);
		ssize_t r = fd >= 0 ? pread(fd, got, sizeof(got), 0) : -1;
		if (write(ready[1], got, r > 0 ? (size_t)r : 0) < 0)
			_exit(1);
		_exit(0);
	}
	char c = 0;
	bool good = sys(pid, "fork") && long_is(read(ready[0], &c, 1), 1, "child ready") &&
		    (c == 'o' || fail("child could not open the file"));
	good = good && write_file(M("io/other"), "other-after", O_TRUNC);
	if (pid > 0) {
		good = long_is(write(go[1], "g", 1), 1, "go") && good;
		close(ready[1]);
		close(go[1]);
		n = read(ready[0], buf, sizeof(buf));
		waitpid(pid, NULL, 0);
	}
	close(ready[0]);
	close(go[0]);
	CHECK(good && ((n == 11 && memcmp(buf, "other-after", 11) == 0) ||
		       fail("the child's fd reads \"%s\"", show(buf, n > 0 ? (size_t)n : 0))),
	      "copy-up: a read-only fd another process opened before the copy-up reads the new data");
}

static pid_t spawn(const char *path, const char *arg)
{
	pid_t pid = fork();
	if (pid == 0) {
		execl(path, path, arg, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Waits until pid runs path (its exec is done). */
static bool running(pid_t pid, const char *path)
{
	char link[64], exe[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	for (int i = 0; i < 1000; i++) {
		ssize_t n = readlink(link, exe, sizeof(exe) - 1);
		if (n > 0) {
			exe[n] = '\0';
			if (strcmp(exe, path) == 0)
				return true;
		}
		usleep(10000);
	}
	return fail("pid %d does not run %s", (int)pid, path);
}

static bool exits_zero(pid_t pid)
{
	int status;
	if (pid < 0)
		return fail("fork: %s", strerror(errno));
	if (waitpid(pid, &status, 0) != pid)
		return fail("waitpid: %s", strerror(errno));
	return (WIFEXITED(status) && WEXITSTATUS(status) == 0) || fail("exit status 0x%x", status);
}

/* A base binary runs while another fd reads it; it cannot be written while
 * it runs; once it exited, a write copies it up, an fd opened before the
 * write reads it, and the copy runs.  (On cowfs a reader opened while the
 * binary ran and still open at the write makes the write fail with
 * ETXTBSY instead: tests/cowfs-passthrough.test.) */
void test_exec_base(void)
{
	const char *p = M("io/exec_base");
	char head[4] = "", tail[4] = "";
	struct stat before, st;
	int rd = -1, wr;
	bool good = lstat_ok(B("io/exec_base"), &before);
	pid_t pid = spawn(p, "30");

	good = good && sys(pid, "fork") && running(pid, p);
	if (good) {
		rd = open(p, O_RDONLY | O_CLOEXEC);
		good = sys(rd, "open O_RDONLY") && long_is(pread(rd, head, 4, 0), 4, "pread") &&
		       (memcmp(head, "\177ELF", 4) == 0 || fail("reads \"%s\"", show(head, 4))) &&
		       sys(close(rd), "close");
	}
	CHECK(good, "exec: a running base binary reads through another fd");
	wr = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(fails_with(wr, ETXTBSY, "open O_WRONLY of the running binary") && absent(U("io/exec_base")),
	      "exec: a running base binary cannot be opened for writing (ETXTBSY), nothing copied up");
	if (wr >= 0)
		close(wr);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	rd = open(p, O_RDONLY | O_CLOEXEC);
	wr = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(sys(rd, "open O_RDONLY after the exit") && sys(wr, "open O_WRONLY after the exit") &&
	      long_is(write(wr, "tail", 4), 4, "write") && sys(close(wr), "close") &&
	      lstat_ok(U("io/exec_base"), &st) && long_is(st.st_size, before.st_size + 4, "upper size"),
	      "exec: once it exited, a write copies the binary up");
	CHECK(rd >= 0 && long_is(pread(rd, tail, 4, before.st_size), 4, "pread of the older fd") &&
	      (memcmp(tail, "tail", 4) == 0 || fail("older fd reads \"%s\"", show(tail, 4))),
	      "exec: an fd opened before that write reads it");
	if (rd >= 0)
		close(rd);
	CHECK(lstat_ok(B("io/exec_base"), &st) && long_is(st.st_size, before.st_size, "base size") &&
	      exits_zero(spawn(p, "0")),
	      "exec: the copied-up binary runs, the base binary is unchanged");
}

/* A binary written into the upper runs, also while a reader holds it. */
void test_exec_upper(void)
{
	const char *p = M("io/exec_new");
	static char buf[1 << 16];
	int in = open(B("io/exec_base"), O_RDONLY | O_CLOEXEC);
	int out = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	bool good = sys(in, "open base binary") && sys(out, "create");
	ssize_t n;

	while (good && (n = read(in, buf, sizeof(buf))) > 0)
		good = long_is(write(out, buf, (size_t)n), n, "write");
	if (in >= 0)
		close(in);
	good = good && sys(close(out), "close");
	int rd = good ? open(p, O_RDONLY | O_CLOEXEC) : -1;
	CHECK(good && sys(rd, "open O_RDONLY") && exits_zero(spawn(p, "0")) && exits_zero(spawn(p, "0")),
	      "exec: a binary written into the upper runs, twice, while an fd reads it");
	if (rd >= 0)
		close(rd);
}

/* A shared writable mapping of a new file and writes through another fd
 * see each other. */
void test_mmap_new(void)
{
	const char *p = M("io/mmap_new");
	int fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	int other = -1;
	char *map = NULL;
	char got[8] = "";
	bool good = sys(fd, "create") && sys(ftruncate(fd, 8192), "ftruncate");

	if (good) {
		void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		map = m == MAP_FAILED ? NULL : m;
		good = map || fail("mmap: %s", strerror(errno));
	}
	if (good && map) {
		memcpy(map + 10, "viamap", 6);
		other = open(p, O_RDWR | O_CLOEXEC);
		good = sys(other, "open another fd") && long_is(pread(other, got, 6, 10), 6, "pread") &&
		       (memcmp(got, "viamap", 6) == 0 || fail("other fd reads \"%s\"", show(got, 6))) &&
		       long_is(pwrite(other, "viafd", 5, 4096), 5, "pwrite") &&
		       (memcmp(map + 4096, "viafd", 5) == 0 || fail("mapping reads \"%s\"", show(map + 4096, 5)));
	}
	good = good && sys(msync(map, 8192, MS_SYNC), "msync");
	if (map)
		munmap(map, 8192);
	if (other >= 0)
		close(other);
	if (fd >= 0)
		close(fd);
	CHECK(good && bytes_at(p, 10, "viamap", 6) && bytes_at(p, 4096, "viafd", 5),
	      "mmap: a shared writable mapping of a new file and pwrite through another fd see each other");
}

/* O_DIRECT writes to a new file are read by a buffered fd, and back. */
void test_o_direct_new(void)
{
	const char *p = M("io/direct_new");
	void *buf = NULL;
	int fd, other;

	if (posix_memalign(&buf, 4096, 4096)) {
		CHECK(fail("posix_memalign"), "O_DIRECT: a new file, with a buffered fd beside");
		return;
	}
	bool good = write_file(p, "buffered-before", O_CREAT | O_EXCL);
	other = open(p, O_RDWR | O_CLOEXEC);
	fd = open(p, O_RDWR | O_DIRECT | O_CLOEXEC);
	good = good && sys(other, "open") && sys(fd, "open O_DIRECT");
	if (good) {
		memset(buf, 'N', 4096);
		good = long_is(pwrite(fd, buf, 4096, 0), 4096, "O_DIRECT pwrite") &&
		       filled_with(p, 0, 4096, 'N') &&
		       long_is(pwrite(other, "buffered", 8, 4096), 8, "buffered pwrite") &&
		       sys(fsync(other), "fsync") &&
		       long_is(pread(fd, buf, 4096, 4096), 8, "O_DIRECT pread") &&
		       (memcmp(buf, "buffered", 8) == 0 || fail("O_DIRECT reads \"%s\"", show(buf, 8)));
	}
	CHECK(good, "O_DIRECT: a new file, written and read beside a buffered fd");
	if (fd >= 0)
		close(fd);
	if (other >= 0)
		close(other);
	free(buf);
}
