/* backup_oci_layer (backup-oci.h): runs the corral-export helper, which
 * writes the tar (corral-export.c, backup-oci-tar.c), with its standard
 * output on the caller's descriptor and its standard error on a pipe read
 * here: the helper's reason for a failure comes back in err, its exit
 * status is checked, and a helper that dies is an error, never a short
 * layer taken for a whole one. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backup/backup-oci.h"
#include "child.h"
#include "cleanup.h"
#include "container/state.h"
#include "snapshot/snapshot.h"

extern char **environ;

int backup_oci_helper_path(char *buf, size_t len, struct corral_error *err)
{
	return child_companion_path(buf, len, "corral-export", "CORRAL_EXPORT", err);
}

/* The helper's stderr, whole up to the buffer's size (its message is one
 * line; a longer output keeps its beginning). */
static void read_stderr(int fd, char *buf, size_t len)
{
	size_t have = 0;
	for (;;) {
		char chunk[1024];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t take = have + (size_t)n < len - 1 ? (size_t)n : len - 1 - have;
		memcpy(buf + have, chunk, take);
		have += take;
	}
	buf[have] = '\0';
	/* One line for err: newlines and control characters become spaces. */
	while (have && (buf[have - 1] == '\n' || buf[have - 1] == ' '))
		buf[--have] = '\0';
	for (size_t i = 0; i < have; i++)
		if ((unsigned char)buf[i] < 0x20)
			buf[i] = ' ';
}

int backup_oci_layer(const char *name, const char *tag, int out_fd, struct backup_oci_result *ret,
		     struct corral_error *err)
{
	memset(ret, 0, sizeof(*ret));
	char root_name[256], helper[PATH_MAX];
	int r = snapshot_root_name(root_name, sizeof(root_name), name, tag, err);
	if (r == 0)
		r = backup_oci_helper_path(helper, sizeof(helper), err);
	if (r < 0)
		return r;
	cleanup_close int rd = -1, wr = -1;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(err, errno, "run corral-export: pipe");
	rd = p[0];
	wr = p[1];
	cleanup_child struct child ch = CHILD_INIT;
	r = child_start(&ch, 0, "run corral-export: fork", err);
	if (r < 0)
		return r;
	if (r == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		/* dup2 onto itself keeps FD_CLOEXEC: clear it by hand then. */
		int o = out_fd == STDOUT_FILENO ? fcntl(out_fd, F_SETFD, 0) : dup2(out_fd, STDOUT_FILENO);
		if (null < 0 || o < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(wr, STDERR_FILENO) < 0) {
			struct corral_error cerr = { 0 };
			err_set(&cerr, errno, "run corral-export: redirect its output");
			child_fail(ch.fd, &cerr);
		}
		/* SIGPIPE stays ignored (corral ignores it and exec keeps
		 * that): a reader that goes away makes the helper fail with
		 * EPIPE and say so, instead of dying without a word. */
		char *argv[] = { "corral-export", "--stats", (char *)state_root(), (char *)name, (char *)tag, NULL };
		char what[PATH_MAX + 32];
		snprintf(what, sizeof(what), "cannot run %s", helper);
		child_exec(ch.fd, helper, argv, environ, what);
	}
	close(take_fd(wr));
	enum child_verdict v;
	r = child_wait_verdict(&ch, &v, err);
	if (r < 0)
		return r;
	char msg[900];
	read_stderr(rd, msg, sizeof(msg));
	int status;
	r = child_reap(&ch, &status, err);
	if (r < 0)
		return err_wrap(err, "wait for corral-export");
	if (WIFSIGNALED(status))
		return err_plain(err, EIO, "corral-export was killed by signal %d%s%s", WTERMSIG(status),
				 msg[0] ? ": " : "", msg);
	int code = WEXITSTATUS(status);
	if (code != 0)
		return err_plain(err, code < 125 ? code : EIO, "%s", msg[0] ? msg : "corral-export failed without a reason");
	/* --stats: the last line (read_stderr made the lines one). */
	unsigned long long entries, bytes;
	const char *stats = strstr(msg, "entries=");
	while (stats && strstr(stats + 1, "entries="))
		stats = strstr(stats + 1, "entries=");
	if (!stats || sscanf(stats, "entries=%llu bytes=%llu", &entries, &bytes) != 2)
		return err_plain(err, EIO, "corral-export succeeded but did not report its result ('%s')", msg);
	ret->entries = entries;
	ret->bytes = bytes;
	return 0;
}
