/* posix-ops: setuid, setgid and file capabilities are cleared by a write,
 * a truncation, an open with O_TRUNC and a chown, exactly as the VFS does
 * on a local filesystem (and kernel overlayfs): setuid and group-executable
 * setgid for a caller without CAP_FSETID, setgid without group execute
 * when that caller is not in the file's group either, security.capability
 * on every one of them, whoever the caller.  Works in killpriv/ (created
 * through the mount, so the files are in the upper). */
#include "posix-ops.h"

#include <grp.h>

#define KP_UID 1000
#define KP_GID 1000

enum kp_op { KP_APPEND, KP_FTRUNCATE, KP_OPEN_TRUNC, KP_PWRITE_BIG };

/* Runs op on path (absolute) in a child with uid and gid KP_UID, no supplementary
 * groups and no capabilities; true if the child did it. */
static bool as_user(const char *path, enum kp_op op)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return fail("fork: %s", strerror(errno));
	if (pid == 0) {
		/* The test's temp dir is closed to others: reach the file from
		 * its directory, entered while still root. */
		const char *slash = strrchr(path, '/');
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
		if (chdir(dir) < 0)
			_exit(9);
		path = slash + 1;
		if (setgroups(0, NULL) < 0 || setresgid(KP_GID, KP_GID, KP_GID) < 0 ||
		    setresuid(KP_UID, KP_UID, KP_UID) < 0)
			_exit(10);
		int fd = open(path, O_WRONLY | O_CLOEXEC | (op == KP_APPEND ? O_APPEND : 0) |
					    (op == KP_OPEN_TRUNC ? O_TRUNC : 0));
		if (fd < 0)
			_exit(11);
		static char big[256 * 1024];
		memset(big, 'k', sizeof(big));
		switch (op) {
		case KP_APPEND:
			_exit(write(fd, "y\n", 2) == 2 ? 0 : 12);
		case KP_FTRUNCATE:
			_exit(ftruncate(fd, 1) == 0 ? 0 : 13);
		case KP_PWRITE_BIG:
			_exit(pwrite(fd, big, sizeof(big), 4096) == (ssize_t)sizeof(big) ? 0 : 14);
		case KP_OPEN_TRUNC:
			_exit(0);
		}
		_exit(15);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0)
		return fail("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return fail("child as uid %d failed (status 0x%x: 9 chdir, 10 setuid, 11 open, 12 write, "
			    "13 ftruncate, 14 pwrite)", KP_UID, status);
	return true;
}

/* A file owned by root:root with `mode`, content "x\n", made through the
 * mount. */
static bool kp_file(const char *path, mode_t mode)
{
	return write_file(path, "x\n", O_CREAT | O_TRUNC) && sys(chown(path, 0, 0), "chown") &&
	       sys(chmod(path, mode), "chmod") && mode_is(path, mode);
}

static bool has_fcaps(const char *path, bool want)
{
	char buf[64];
	ssize_t n = lgetxattr(path, "security.capability", buf, sizeof(buf));
	if (want)
		return n > 0 || fail("%s: security.capability gone (%s)", path, strerror(errno));
	if (n < 0 && errno == ENODATA)
		return true;
	return fail("%s: security.capability still there (%zd)", path, n);
}

static bool kp_fcaps(const char *path)
{
	static const unsigned char caps[20] = { 0x01, 0x00, 0x00, 0x02, 0x00, 0x20 };
	return kp_file(path, 0755) &&
	       sys(lsetxattr(path, "security.capability", caps, sizeof(caps), 0), "set security.capability") &&
	       has_fcaps(path, true);
}

void test_killpriv(void)
{
	if (mkdir(M("killpriv"), 0755) < 0 && errno != EEXIST) {
		CHECK(sys(-1, "mkdir killpriv"), "killpriv: directory");
		return;
	}

	const char *p = M("killpriv/append");
	CHECK(kp_file(p, 06777) && as_user(p, KP_APPEND) && mode_is(p, 0777),
	      "killpriv: a write by a non-owner clears setuid and group-executable setgid");
	p = M("killpriv/big");
	CHECK(kp_file(p, 06777) && as_user(p, KP_PWRITE_BIG) && mode_is(p, 0777),
	      "killpriv: a 256 KiB pwrite by a non-owner clears setuid and setgid");
	p = M("killpriv/sgid_nox");
	CHECK(kp_file(p, 02666) && as_user(p, KP_APPEND) && mode_is(p, 0666),
	      "killpriv: a write by a caller outside the group clears setgid without group execute");
	p = M("killpriv/sgid_nox_trunc");
	CHECK(kp_file(p, 02666) && as_user(p, KP_FTRUNCATE) && mode_is(p, 0666),
	      "killpriv: ftruncate by a caller outside the group clears setgid without group execute");
	p = M("killpriv/ftruncate");
	CHECK(kp_file(p, 06777) && as_user(p, KP_FTRUNCATE) && mode_is(p, 0777),
	      "killpriv: ftruncate by a non-owner clears setuid and setgid");
	p = M("killpriv/otrunc");
	CHECK(kp_file(p, 06777) && as_user(p, KP_OPEN_TRUNC) && mode_is(p, 0777),
	      "killpriv: open with O_TRUNC by a non-owner clears setuid and setgid");
	p = M("killpriv/otrunc");
	CHECK(drop_caches() && mode_is(p, 0777) && mode_is(U("killpriv/otrunc"), 0777),
	      "killpriv: the cleared bits are on disk, not only in the kernel's cache");

	p = M("killpriv/root_write");
	CHECK(kp_file(p, 06777) && write_file(p, "root\n", O_APPEND) && mode_is(p, 06777),
	      "killpriv: a write with CAP_FSETID keeps setuid and setgid");
	p = M("killpriv/root_trunc");
	CHECK(kp_file(p, 06777) && sys(truncate(p, 1), "truncate") && mode_is(p, 06777),
	      "killpriv: a truncation with CAP_FSETID keeps setuid and setgid");
	p = M("killpriv/chown");
	CHECK(kp_file(p, 06755) && sys(chown(p, KP_UID, KP_GID), "chown") && mode_is(p, 0755),
	      "killpriv: chown clears setuid and group-executable setgid, even by root");

	p = M("killpriv/caps_write");
	CHECK(kp_fcaps(p) && write_file(p, "root\n", O_APPEND) && has_fcaps(p, false),
	      "killpriv: a write by root drops security.capability");
	p = M("killpriv/caps_trunc");
	CHECK(kp_fcaps(p) && sys(truncate(p, 0), "truncate") && has_fcaps(p, false),
	      "killpriv: a truncation drops security.capability");
	p = M("killpriv/caps_chown");
	CHECK(kp_fcaps(p) && sys(chown(p, KP_UID, KP_GID), "chown") && has_fcaps(p, false),
	      "killpriv: chown drops security.capability");
	p = M("killpriv/caps_keep");
	CHECK(kp_fcaps(p) && sys(chmod(p, 0750), "chmod") && has_fcaps(p, true),
	      "killpriv: chmod keeps security.capability");
}
