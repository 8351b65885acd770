/* The container's init: PID 1 inside the container.
 *
 * It starts the container's command, forwards signals to it, reaps every
 * orphan that is reparented to it, and exits with the command's status
 * (the kernel then ends every other process of the pid namespace).  A
 * plain PID 1 would ignore SIGTERM by default; forwarding makes `corral
 * stop` behave as on a full machine. */
#include "config.h"

#include <errno.h>
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

int init_main(int argc, char **argv)
{
	static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT };
	int first = 0;
	while (first < argc && strcmp(argv[first], "--") != 0)
		first++;
	first++;
	if (first >= argc) {
		fprintf(stderr, "corral-init: no command\n");
		return 127;
	}

	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "corral-init: fork: %s\n", strerror(errno));
		return 127;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		setsid();
		if (isatty(0))
			ioctl(0, TIOCSCTTY, 0);
		execvp(argv[first], &argv[first]);
		fprintf(stderr, "corral-init: cannot run %s: %s\n", argv[first], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
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
