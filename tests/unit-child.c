/* unit-child: common/child.c, the one way corral runs a child and learns
 * whether its setup worked -- real forks, clones, execs and signals. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "tap.h"

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int succeed(void *arg, struct corral_error *err)
{
	(void)arg;
	(void)err;
	return 0;
}

static int fail_with_text(void *arg, struct corral_error *err)
{
	return err_plain(err, EACCES, "setting up %s went wrong", (const char *)arg);
}

static int die_by_signal(void *arg, struct corral_error *err)
{
	(void)arg;
	(void)err;
	raise(SIGKILL);
	return 0;
}

static int exit_silently(void *arg, struct corral_error *err)
{
	(void)arg;
	(void)err;
	_exit(3);
}

/* A child that has exited is reaped by exactly one waitpid: a second one
 * (or one for a child never reaped by us) says ECHILD. */
static bool reaped(pid_t pid)
{
	return waitpid(pid, NULL, WNOHANG) < 0 && errno == ECHILD;
}

static void test_run(void)
{
	struct corral_error err = { 0 };
	int before = count_fds();

	ok(child_run(succeed, NULL, "the test child", &err) == 0, "a child that succeeds reports success");
	int r = child_run(fail_with_text, "the widget", "the test child", &err);
	ok(r == -EACCES && !strcmp(err.msg, "setting up the widget went wrong"),
	   "the child's error and its text come back (%d, %s)", r, err.msg);
	r = child_run(die_by_signal, NULL, "the test child", &err);
	ok(r == -EIO && !strcmp(err.msg, "the test child was killed by signal 9"),
	   "a child killed by a signal is reported as such (%s)", err.msg);
	r = child_run(exit_silently, NULL, "the test child", &err);
	ok(r == -EIO && !strcmp(err.msg, "the test child failed (exit status 3)"),
	   "a child that exits without a verdict is a failure (%s)", err.msg);
	ok(count_fds() == before, "no descriptor left open by child_run (%d before, %d after)", before,
	   count_fds());
}

static int spawn_exec(const char *path, char *const argv[], struct child *ch, struct corral_error *err)
{
	int r = child_start(ch, 0, "fork for the test", err);
	if (r == 0) {
		static char *const envp[] = { "PATH=/usr/bin:/bin", NULL };
		child_exec(ch->fd, path, argv, envp, "run the test program");
	}
	return r;
}

static void test_exec(void)
{
	struct corral_error err = { 0 };
	enum child_verdict v;
	int status = 0, before = count_fds();

	{
		cleanup_child struct child ch = CHILD_INIT;
		char *const argv[] = { "true", NULL };
		int r = spawn_exec("/bin/true", argv, &ch, &err);
		ok(r > 0, "fork for exec (%s)", r < 0 ? err.msg : "ok");
		r = child_wait_verdict(&ch, &v, &err);
		ok(r == 0 && v == CHILD_CLOSED, "a successful exec closes the pipe without a verdict");
		ok(ch.fd == -1, "the verdict's pipe is closed once read");
		ok(child_reap(&ch, &status, &err) == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
			   ch.pid == -1,
		   "the exec'd program runs and is reaped");
	}
	{
		cleanup_child struct child ch = CHILD_INIT;
		char *const argv[] = { "no-such-program", NULL };
		spawn_exec("/nonexistent/no-such-program", argv, &ch, &err);
		int r = child_wait_verdict(&ch, &v, &err);
		ok(r == -ENOENT && strstr(err.msg, "run the test program: No such file or directory"),
		   "exec of a missing program: the reason comes back (%s)", err.msg);
		r = child_reap(&ch, &status, &err);
		ok(r == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 127,
		   "and it exits 127, as a shell would (status %#x)", status);
	}
	{
		cleanup_child struct child ch = CHILD_INIT;
		char *const argv[] = { "no-such-program-in-path", NULL };
		spawn_exec(NULL, argv, &ch, &err);
		int r = child_wait_verdict(&ch, &v, &err);
		ok(r == -ENOENT, "a program searched in PATH and not found fails the same way (%s)", err.msg);
	}
	ok(count_fds() == before, "no descriptor left open by the exec children (%d before, %d after)",
	   before, count_fds());
}

/* A setup that fails half-way: the scoped child is killed and reaped. */
static void test_cleanup(void)
{
	struct corral_error err = { 0 };
	pid_t pid;
	{
		cleanup_child struct child ch = CHILD_INIT;
		int r = child_start(&ch, 0, "fork for the test", &err);
		if (r == 0) {
			pause();
			_exit(0);
		}
		pid = ch.pid;
	}
	ok(pid > 0 && reaped(pid), "a child still owned at the end of its scope is killed and reaped");

	/* Handed on: the scope lets it live, the new owner reaps it. */
	{
		cleanup_child struct child ch = CHILD_INIT;
		int r = child_start(&ch, 0, "fork for the test", &err);
		if (r == 0) {
			struct corral_error ready = { 0 };
			child_send(ch.fd, &ready);
			pause();
			_exit(0);
		}
		enum child_verdict v;
		r = child_wait_verdict(&ch, &v, &err);
		ok(r == 0 && v == CHILD_READY, "a child that sends code 0 is ready and keeps running");
		pid = take_child_pid(&ch);
	}
	ok(kill(pid, 0) == 0, "a child handed on with take_child_pid outlives the scope");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* With namespace flags the child is cloned into them. */
static void test_clone(void)
{
	struct corral_error err = { 0 };
	if (geteuid() != 0) {
		skip("not root", "clone into a new pid namespace");
		return;
	}
	cleanup_child struct child ch = CHILD_INIT;
	int r = child_start(&ch, CLONE_NEWPID, "clone for the test", &err);
	if (r == 0) {
		struct corral_error e = { 0 };
		if (getpid() != 1)
			err_plain(&e, EINVAL, "pid %d, not 1", (int)getpid());
		child_send(ch.fd, &e);
		_exit(0);
	}
	enum child_verdict v;
	r = child_wait_verdict(&ch, &v, &err);
	ok(r == 0 && v == CHILD_READY, "a child cloned with CLONE_NEWPID is PID 1 of its namespace (%s)",
	   r < 0 ? err.msg : "ok");
}

static void test_companion(void)
{
	char buf[PATH_MAX], exe[PATH_MAX];
	struct corral_error err = { 0 };
	setenv("CORRAL_TEST_COMPANION", "/x/y/helper", 1);
	int r = child_companion_path(buf, sizeof(buf), "helper", "CORRAL_TEST_COMPANION", &err);
	ok(r == 0 && !strcmp(buf, "/x/y/helper"), "a companion named by its variable: %s", r ? err.msg : buf);
	setenv("CORRAL_TEST_COMPANION", "", 1);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	strcpy(strrchr(exe, '/') + 1, "helper");
	r = child_companion_path(buf, sizeof(buf), "helper", "CORRAL_TEST_COMPANION", &err);
	ok(r == 0 && !strcmp(buf, exe), "an empty variable: beside the running binary (%s)", r ? err.msg : buf);
	unsetenv("CORRAL_TEST_COMPANION");
	char small[8];
	r = child_companion_path(small, sizeof(small), "helper", NULL, &err);
	ok(r == -ENAMETOOLONG, "a path that does not fit is ENAMETOOLONG, never cut (%d)", r);
}

int main(void)
{
	test_companion();
	test_run();
	test_exec();
	test_cleanup();
	test_clone();
	return tap_done();
}
