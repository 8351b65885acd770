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
#include <limits.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "exec-user.h"
#include "start.h"

static volatile sig_atomic_t child_pid;

static void forward_signal(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

/* No command (boot = idle): corral's init alone keeps the container up
 * for exec, reaping what exec leaves, until it is told to stop.  A stop
 * asked for (SIGTERM, SIGINT, SIGPWR) ends it with 0: the container did
 * what was asked of it. */
static int idle(sigset_t *all)
{
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		int sig = sigwaitinfo(all, NULL);
		if (sig == SIGTERM || sig == SIGINT || sig == SIGPWR)
			return 0;
	}
}

void container_boot(char **argv, char **envp, int ready_fd)
{
	/* The init gets a machine's start: default dispositions (corral
	 * ignores SIGPIPE, and an ignored signal stays so across exec) and
	 * nothing blocked. */
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (isatty(0))
		ioctl(0, TIOCSCTTY, 0);
	char what[256];
	snprintf(what, sizeof(what), "cannot boot %s in the container", argv[0]);
	child_exec(ready_fd, argv[0], argv, envp, what);
}

int container_init(char **argv, char **envp, int ready_fd, const struct exec_options *cmd)
{
	static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT };
	struct corral_error err = { 0 };

	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	if (!argv[0]) {
		close(ready_fd);
		return idle(&all);
	}
	/* The command's own verdict pipe says whether its exec worked. */
	struct child ch = CHILD_INIT;
	pid_t pid = child_start(&ch, 0, "container init: start the command", &err);
	if (pid < 0) {
		child_send(ready_fd, &err);
		return 127;
	}
	if (pid == 0) {
		for (int s = 1; s < NSIG; s++)
			signal(s, SIG_DFL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		setsid();
		if (isatty(0))
			ioctl(0, TIOCSCTTY, 0);
		/* run --workdir, --user: here, in the container, with the
		 * capabilities the init kept across a setuid (caps_apply). */
		struct corral_error cerr = { 0 };
		if (cmd && cmd->workdir && chdir(cmd->workdir) < 0) {
			err_set(&cerr, errno, "change to the working directory %s", cmd->workdir);
			child_fail(ch.fd, &cerr);
		}
		if (cmd && cmd->user) {
			static char home[PATH_MAX], homevar[PATH_MAX + 8];
			if (exec_user_become(cmd->user, home, sizeof(home), &cerr) < 0)
				child_fail(ch.fd, &cerr);
			/* Its HOME, unless --env gave one (which comes later). */
			snprintf(homevar, sizeof(homevar), "HOME=%s", home);
			for (char **e = envp; *e; e++)
				if (!strncmp(*e, "HOME=/root", 11)) {
					*e = homevar;
					break;
				}
		}
		char what[256];
		snprintf(what, sizeof(what), "cannot run %s in the container", argv[0]);
		child_exec(ch.fd, NULL, argv, envp, what);
	}
	/* The command's failure to start is the container's; either way the
	 * init goes on to reap it (and every orphan) below. */
	enum child_verdict v;
	if (child_wait_verdict(&ch, &v, &err) < 0)
		child_send(ready_fd, &err);
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
