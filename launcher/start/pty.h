/* A pty inside the container, proxied to the caller's terminal.
 *
 * Module start (see start.h).  Owns: the container's pty and the relays of
 * its stdio; no descriptor of the caller's terminal reaches a container.
 * May call: container, template, net, security, cgroup, store, common. */
#ifndef CORRAL_PTY_H
#define CORRAL_PTY_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

/* Opens a pty pair from /dev/ptmx of the current mount namespace. */
int pty_open(int *ret_master, int *ret_slave, struct corral_error *err);
/* Passes a descriptor over a unix socket (SCM_RIGHTS). */
int pty_send_fd(int sock, int fd);
/* Receives one; returns the descriptor or -errno. */
int pty_recv_fd(int sock);
/* Copies the caller's terminal (raw mode, window size kept in step) to and
 * from `master` until the container side hangs up, or until the process
 * behind `pidfd` (-1: none) has exited and its output is through: processes
 * it left holding the terminal do not keep the caller waiting. */
void pty_proxy(int master, int pidfd);

/* Without a pty: each of the caller's stdin, stdout, stderr that is a
 * terminal becomes a pipe relayed by corral, so no descriptor of the
 * caller's terminal reaches a container.  The others are inherited. */
struct pty_relay {
	int to_child;		/* write end of the command's stdin, or -1 */
	int from_out, from_err; /* read ends of its stdout and stderr, or -1 */
	int child[3];		/* the command's ends for fds 0..2; -1 = inherit */
};
void pty_relay_init(struct pty_relay *r);
/* Makes the pipes for those of fds 0..2 that are terminals. */
int pty_relay_open(struct pty_relay *r, struct corral_error *err);
/* In the command's process: its ends onto 0..2.  Returns -errno. */
int pty_relay_child_stdio(const struct pty_relay *r);
/* In corral, once the command's process has its ends. */
void pty_relay_close_child(struct pty_relay *r);
bool pty_relay_active(const struct pty_relay *r);
/* Copies until the process behind `pidfd` exits, then takes what is left
 * in the pipes without waiting for processes that still hold them. */
void pty_relay_run(struct pty_relay *r, int pidfd);
void pty_relay_release(struct pty_relay *r);

/* SIGINT, SIGQUIT, SIGTERM and SIGHUP sent to corral go to `pid`: the
 * container's processes are in a session of their own, out of reach of
 * the caller's terminal. */
void pty_forward_signals(pid_t pid);

#endif
