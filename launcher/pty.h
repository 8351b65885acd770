/* A pty inside the container, proxied to the caller's terminal. */
#ifndef CORRAL_PTY_H
#define CORRAL_PTY_H

#include <stdbool.h>

#include "error.h"

/* Opens a pty pair from /dev/ptmx of the current mount namespace. */
int pty_open(int *ret_master, int *ret_slave, struct corral_error *err);
/* Passes a descriptor over a unix socket (SCM_RIGHTS). */
int pty_send_fd(int sock, int fd);
/* Receives one; returns the descriptor or -errno. */
int pty_recv_fd(int sock);
/* Copies the caller's terminal (raw mode, window size kept in step) to and
 * from `master` until the container side hangs up. */
void pty_proxy(int master);

#endif
