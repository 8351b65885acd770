/* A child process whose failure comes back to the parent as text.
 *
 * One mechanism for every "fork (or clone) a child, let it set things up,
 * and learn whether that worked": the child owns the write end of a
 * CLOEXEC pipe and sends at most one verdict, a whole `struct corral_error`
 * in one write (smaller than PIPE_BUF, so it arrives whole or not at all).
 * Code 0 means "ready" (the child goes on living), any other code is the
 * child's failure with its message.  If the pipe closes without a verdict
 * the child either exec'd (the pipe is CLOEXEC: that is how an exec'd
 * child says "running") or died; the caller knows which to expect, and
 * child_run() tells a death apart by reaping.
 *
 * Invariant: a `struct child` in the parent owns its pid (> 0) until it is
 * reaped or handed on with take_child_pid(), and its fd (>= 0) until the
 * verdict is read.  cleanup_child kills (SIGKILL) and reaps a child still
 * owned: a setup that fails half-way never leaves one behind.
 *
 * Module common (the bottom layer, which every component may call).
 * May call: no other module (libc only). */
#ifndef CORRAL_CHILD_H
#define CORRAL_CHILD_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

struct child {
	pid_t pid;	/* parent: the child, -1 once reaped or handed on */
	int fd;		/* parent: read end; child: write end; -1 when closed */
};
#define CHILD_INIT { .pid = -1, .fd = -1 }

/* What the pipe said, when it did not carry a failure. */
enum child_verdict {
	CHILD_READY,	/* the child sent code 0 and goes on living */
	CHILD_CLOSED,	/* the pipe closed without a verdict: exec'd, or died */
};

/* Makes the pipe and forks -- or, with clone_flags (CLONE_NEW* namespace
 * flags; never CLONE_VM), clones.  Returns 0 in the child, which holds
 * ch->fd as its write end; the child's pid (> 0) in the parent; -errno on
 * failure with err filled. */
int child_start(struct child *ch, unsigned long clone_flags, const char *what, struct corral_error *err);

/* ---- child side (after the fork of a single-threaded parent) ---- */

/* Sends the verdict: code 0 = ready, else the failure in e->msg. */
void child_send(int fd, const struct corral_error *e);
/* Sends e and exits with status 1. */
__attribute__((noreturn)) void child_fail(int fd, const struct corral_error *e);
/* execve(path) -- or execvpe when path is NULL, searching argv[0] -- and,
 * if that fails, sends "WHAT: strerror" and exits 127 (not found) or 126,
 * as a shell would. */
__attribute__((noreturn)) void child_exec(int fd, const char *path, char *const argv[], char *const envp[],
					  const char *what);

/* ---- parent side ---- */

/* Reads the verdict and closes ch->fd.  Returns 0 with *ret set (READY or
 * CLOSED), or the child's failure: -code, with its message in err. */
int child_wait_verdict(struct child *ch, enum child_verdict *ret, struct corral_error *err);
/* Waits for the child to exit (EINTR retried) and returns its wait status
 * in *ret_status. */
int child_reap(struct child *ch, int *ret_status, struct corral_error *err);
/* Fills err with how a child that gave no verdict ended: "WHAT was killed
 * by signal N", "WHAT failed (exit status N)" or, status 0, "WHAT died
 * without a result".  Returns -EIO. */
int child_status_error(const char *what, int status, struct corral_error *err);
/* Closes the pipe; kills (SIGKILL) and reaps the child if still owned. */
void child_release(struct child *ch);
#define cleanup_child __attribute__((cleanup(child_release)))
/* Hands the pid on: the caller owns the process from here. */
#define take_child_pid(ch) ({ pid_t _p = (ch)->pid; (ch)->pid = -1; _p; })

/* The path of a companion program (corral-import, corral-export): $ENV
 * when set and not empty, else NAME beside the running binary (the
 * directory of /proc/self/exe: the build tree's launcher/ or the installed
 * bindir).  Not checked for existence: running it says. */
int child_companion_path(char *buf, size_t len, const char *name, const char *env, struct corral_error *err);

/* Runs fn(arg, err) in a forked child and waits for it: 0 if fn returned
 * 0, else its error.  A child that dies before sending its verdict is an
 * error too (named by `what`); the verdict never depends on the exit
 * status, which a caller's SIGCHLD handler could reap first. */
int child_run(int (*fn)(void *arg, struct corral_error *err), void *arg, const char *what,
	      struct corral_error *err);

#endif
