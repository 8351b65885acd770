/* The container's init: PID 1 inside the container.
 *
 * It starts the container's command, forwards signals to it, reaps every
 * orphan that is reparented to it, and exits with the command's status
 * (the kernel then ends every other process of the pid namespace).  A
 * plain PID 1 would ignore SIGTERM by default; forwarding makes `corral
 * stop` behave as on a full machine. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "start.h"

static volatile sig_atomic_t child_pid;

static void forward_signal(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

int container_init(char **argv, char **envp, int ready_fd)
{
	static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT };
	int exec_err[2];

	/* A CLOEXEC pipe tells whether the command's exec worked. */
	if (pipe2(exec_err, O_CLOEXEC) < 0) {
		dprintf(ready_fd, "container init: pipe: %s", strerror(errno));
		return 127;
	}
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t pid = fork();
	if (pid < 0) {
		dprintf(ready_fd, "container init: fork: %s", strerror(errno));
		return 127;
	}
	if (pid == 0) {
		for (int s = 1; s < NSIG; s++)
			signal(s, SIG_DFL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		setsid();
		if (isatty(0))
			ioctl(0, TIOCSCTTY, 0);
		execvpe(argv[0], argv, envp);
		int e = errno;
		ssize_t unused = write(exec_err[1], &e, sizeof(e));
		(void)unused;
		_exit(e == ENOENT ? 127 : 126);
	}
	close(exec_err[1]);
	int e = 0;
	ssize_t n = read(exec_err[0], &e, sizeof(e));
	close(exec_err[0]);
	if (n == (ssize_t)sizeof(e))
		dprintf(ready_fd, "cannot run %s in the container: %s", argv[0], strerror(e));
	close(ready_fd);

	child_pid = pid;
	struct sigaction sa = { .sa_handler = forward_signal };
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaction(forwarded[i], &sa, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);

	for (;;) {
		int status;
		pid_t w = waitpid(-1, &status, 0);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return 127; /* ECHILD: cannot happen before the command exits */
		}
		if (w == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		/* else: an orphan reaped */
	}
}
