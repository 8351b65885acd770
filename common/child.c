/* A child process whose failure comes back to the parent as text: see
 * child.h for the protocol. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"

/* One write is atomic only below PIPE_BUF: a verdict arrives whole. */
_Static_assert(sizeof(struct corral_error) <= 4096, "a verdict must fit in one pipe write");

int child_start(struct child *ch, unsigned long clone_flags, const char *what, struct corral_error *err)
{
	int p[2];
	ch->pid = -1;
	ch->fd = -1;
	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(err, errno, "%s: pipe", what);
	/* Buffered output would otherwise be written twice. */
	fflush(NULL);
	pid_t pid = clone_flags ? (pid_t)syscall(SYS_clone, clone_flags | SIGCHLD, NULL, NULL, NULL, 0) : fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return err_set(err, e, "%s", what);
	}
	if (pid == 0) {
		close(p[0]);
		ch->fd = p[1];
		return 0;
	}
	close(p[1]);
	ch->pid = pid;
	ch->fd = p[0];
	return pid;
}

void child_send(int fd, const struct corral_error *e)
{
	ssize_t n;
	do
		n = write(fd, e, sizeof(*e));
	while (n < 0 && errno == EINTR);
}

void child_fail(int fd, const struct corral_error *e)
{
	struct corral_error copy = *e;
	/* A failure never reads as "ready". */
	if (!copy.code)
		copy.code = EIO;
	child_send(fd, &copy);
	_exit(1);
}

void child_exec(int fd, const char *path, char *const argv[], char *const envp[], const char *what)
{
	if (path)
		execve(path, argv, envp);
	else
		execvpe(argv[0], argv, envp);
	int e = errno;
	struct corral_error cerr = { 0 };
	err_set(&cerr, e, "%s", what);
	cerr.exit_status = e == ENOENT ? 127 : 126;
	child_send(fd, &cerr);
	_exit(e == ENOENT ? 127 : 126);
}

int child_wait_verdict(struct child *ch, enum child_verdict *ret, struct corral_error *err)
{
	struct corral_error v;
	size_t len = 0;
	int e = 0;
	while (len < sizeof(v)) {
		ssize_t n = read(ch->fd, (char *)&v + len, sizeof(v) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			e = errno;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(ch->fd);
	ch->fd = -1;
	if (e)
		return err_set(err, e, "read the verdict of child %d", (int)ch->pid);
	if (len == 0) {
		*ret = CHILD_CLOSED;
		return 0;
	}
	if (len < sizeof(v))
		return err_plain(err, EIO, "child %d sent a truncated verdict", (int)ch->pid);
	if (v.code == 0) {
		*ret = CHILD_READY;
		return 0;
	}
	/* The text is the child's: terminated here, never trusted to be. */
	v.msg[sizeof(v.msg) - 1] = '\0';
	int r = err_plain(err, v.code > 0 ? v.code : EIO, "%s", v.msg);
	if (err && (v.exit_status == 126 || v.exit_status == 127))
		err->exit_status = v.exit_status;
	return r;
}

int child_reap(struct child *ch, int *ret_status, struct corral_error *err)
{
	int status;
	while (waitpid(ch->pid, &status, 0) < 0)
		if (errno != EINTR)
			return err_set(err, errno, "wait for child %d", (int)ch->pid);
	ch->pid = -1;
	*ret_status = status;
	return 0;
}

int child_status_error(const char *what, int status, struct corral_error *err)
{
	if (WIFSIGNALED(status))
		return err_plain(err, EIO, "%s was killed by signal %d", what, WTERMSIG(status));
	if (WIFEXITED(status) && WEXITSTATUS(status))
		return err_plain(err, EIO, "%s failed (exit status %d)", what, WEXITSTATUS(status));
	return err_plain(err, EIO, "%s died without a result", what);
}

void child_release(struct child *ch)
{
	int saved = errno;
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
	if (ch->pid > 0) {
		kill(ch->pid, SIGKILL);
		while (waitpid(ch->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	ch->pid = -1;
	errno = saved;
}

int child_run(int (*fn)(void *arg, struct corral_error *err), void *arg, const char *what,
	      struct corral_error *err)
{
	cleanup_child struct child ch = CHILD_INIT;
	int r = child_start(&ch, 0, what, err);
	if (r < 0)
		return r;
	if (r == 0) {
		struct corral_error cerr = { 0 };
		r = fn(arg, &cerr);
		if (r < 0)
			child_fail(ch.fd, &cerr);
		cerr.code = 0;
		child_send(ch.fd, &cerr);
		_exit(0);
	}
	enum child_verdict v;
	r = child_wait_verdict(&ch, &v, err);
	int status = 0, rr = child_reap(&ch, &status, r < 0 ? NULL : err);
	if (r < 0)
		return r;
	if (v == CHILD_READY)
		return 0;
	if (rr < 0)
		return rr;
	return child_status_error(what, status, err);
}

int child_companion_path(char *buf, size_t len, const char *name, const char *env, struct corral_error *err)
{
	const char *v = env ? getenv(env) : NULL;
	if (v && *v) {
		if ((size_t)snprintf(buf, len, "%s", v) >= len)
			return err_plain(err, ENAMETOOLONG, "$%s is too long", env);
		return 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return err_set(err, n < 0 ? errno : ENOENT, "cannot find %s (reading /proc/self/exe)", name);
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	if ((size_t)snprintf(buf, len, "%s/%s", slash ? exe : ".", name) >= len)
		return err_plain(err, ENAMETOOLONG, "the path of %s is too long", name);
	return 0;
}
