/* Terminals for containers.
 *
 * The caller's terminal is never handed to a container: a process there
 * could push keystrokes into the host shell with TIOCSTI (allowed on this
 * kernel: dev.tty.legacy_tiocsti=1).  Instead the container gets a pty of
 * its own devpts instance, and corral copies bytes between the caller's
 * terminal and the pty master; or, without a pty, pipes in place of those
 * of corral's stdio that are terminals (pty_relay_*).  Container processes
 * also run in a session of their own (the callers setsid()), so none has
 * the caller's terminal as its controlling terminal. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "pty.h"

int pty_open(int *ret_master, int *ret_slave, struct corral_error *err)
{
	char name[64];
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return err_set(err, errno, "open /dev/ptmx");
	if (unlockpt(master) < 0 || ptsname_r(master, name, sizeof(name)) != 0) {
		int e = errno;
		close(master);
		return err_set(err, e, "set up a pty");
	}
	int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0) {
		int e = errno;
		close(master);
		return err_set(err, e, "open %s", name);
	}
	*ret_master = master;
	*ret_slave = slave;
	return 0;
}

int pty_send_fd(int sock, int fd)
{
	char byte = 'm';
	struct iovec iov = { &byte, 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

int pty_recv_fd(int sock)
{
	char byte;
	struct iovec iov = { &byte, 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return n < 0 ? -errno : -EPIPE;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
		return -EPROTO;
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

static volatile sig_atomic_t winch_pending;

static void on_winch(int sig)
{
	(void)sig;
	winch_pending = 1;
}

static void copy_winsize(int from, int to)
{
	struct winsize ws;
	if (ioctl(from, TIOCGWINSZ, &ws) == 0)
		ioctl(to, TIOCSWINSZ, &ws);
}

/* Writes all of buf, retrying short writes. */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The end of our input is the end of the command's: the terminal's EOF
 * character (^D), as typed at the start of a line -- twice after a
 * partial line, whose first one only hands the line over.  Else a
 * command reading a piped stdin through -t would wait for ever. */
static void send_eof(int master, char last)
{
	struct termios t;
	char eof = tcgetattr(master, &t) == 0 && t.c_cc[VEOF] ? (char)t.c_cc[VEOF] : 4;
	char two[2] = { eof, eof };
	write_all(master, two, last == '\n' ? 1 : 2);
}

void pty_proxy(int master, int pidfd)
{
	struct termios saved, raw;
	bool is_tty = isatty(0) && tcgetattr(0, &saved) == 0;
	struct sigaction sa = { .sa_handler = on_winch }, old_sa;

	if (is_tty) {
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(0, TCSANOW, &raw);
		copy_winsize(0, master);
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGWINCH, &sa, &old_sa);

	struct pollfd fds[3] = { { .fd = 0, .events = POLLIN }, { .fd = master, .events = POLLIN },
				 { .fd = pidfd, .events = POLLIN } };
	char buf[16384];
	/* Once the process exits: the end comes with the slave's last close
	 * (EIO) or, if a process it left behind still holds the slave, after
	 * a quiet spell -- what the process wrote reaches the master through
	 * the kernel's flip buffer a moment after it is gone -- and at the
	 * latest a second later, however much the leftover keeps writing. */
	int timeout = -1, quiet = 0;
	char last = '\n'; /* the last byte of input passed on */
	struct timespec exited = { 0 }, now;
	for (;;) {
		if (winch_pending && is_tty) {
			winch_pending = 0;
			copy_winsize(0, master);
		}
		int n_ready = poll(fds, 3, timeout);
		if (n_ready < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (n_ready == 0 && ++quiet >= 10)
			break;
		if (timeout >= 0 && clock_gettime(CLOCK_MONOTONIC, &now) == 0 &&
		    (now.tv_sec - exited.tv_sec) * 1000 + (now.tv_nsec - exited.tv_nsec) / 1000000 > 1000)
			break;
		if (fds[2].revents & POLLIN) {
			fds[2].fd = -1;
			fds[0].fd = -1; /* nobody left to read our input */
			timeout = 50;
			clock_gettime(CLOCK_MONOTONIC, &exited);
		}
		if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			quiet = 0;
			ssize_t n = read(master, buf, sizeof(buf));
			if (n <= 0) {
				if (n < 0 && errno == EINTR)
					continue;
				break; /* EIO: the last holder of the slave is gone */
			}
			if (write_all(1, buf, (size_t)n) < 0)
				break;
		}
		if (fds[0].revents & (POLLIN | POLLHUP)) {
			ssize_t n = read(0, buf, sizeof(buf));
			if (n <= 0) {
				fds[0].fd = -1; /* stdin closed: keep draining output */
				send_eof(master, last);
				continue;
			}
			last = buf[n - 1];
			if (write_all(master, buf, (size_t)n) < 0)
				break;
		}
	}
	sigaction(SIGWINCH, &old_sa, NULL);
	if (is_tty)
		tcsetattr(0, TCSANOW, &saved);
}

/* ---- a terminal relayed through pipes ----
 *
 * Without -t the command gets no terminal at all: each of the caller's
 * stdin, stdout and stderr that is a terminal is replaced by a pipe whose
 * other end corral copies to and from that terminal.  A descriptor of the
 * host's terminal inside the container would let it push input into the
 * caller's shell (TIOCSTI needs no more than an open descriptor of one's
 * controlling terminal, and the command could make it its own), read
 * what the caller types after corral returns, or change the terminal's
 * modes. */

void pty_relay_init(struct pty_relay *r)
{
	r->to_child = r->from_out = r->from_err = -1;
	for (int i = 0; i < 3; i++)
		r->child[i] = -1;
}

int pty_relay_open(struct pty_relay *r, struct corral_error *err)
{
	pty_relay_init(r);
	for (int i = 0; i < 3; i++) {
		int p[2];
		if (!isatty(i))
			continue;
		if (pipe2(p, O_CLOEXEC) < 0) {
			int e = errno;
			pty_relay_release(r);
			return err_set(err, e, "pipe for the command's %s", i == 0 ? "stdin" : i == 1 ? "stdout" : "stderr");
		}
		if (i == 0) {
			r->child[0] = p[0];
			r->to_child = p[1];
		} else {
			r->child[i] = p[1];
			*(i == 1 ? &r->from_out : &r->from_err) = p[0];
		}
	}
	return 0;
}

int pty_relay_child_stdio(const struct pty_relay *r)
{
	for (int i = 0; i < 3; i++)
		if (r->child[i] >= 0 && dup2(r->child[i], i) < 0)
			return -errno;
	return 0;
}

void pty_relay_close_child(struct pty_relay *r)
{
	for (int i = 0; i < 3; i++)
		if (r->child[i] >= 0) {
			close(r->child[i]);
			r->child[i] = -1;
		}
}

bool pty_relay_active(const struct pty_relay *r)
{
	return r->to_child >= 0 || r->from_out >= 0 || r->from_err >= 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Copies what is in the pipe `from` now to `to`, without waiting for more
 * and no more than that: a process left behind that keeps writing must
 * not keep the caller copying for ever. */
static void drain(int from, int to)
{
	char buf[16384];
	int pending = 0;
	if (from < 0 || fcntl(from, F_SETFL, O_NONBLOCK) < 0 || ioctl(from, FIONREAD, &pending) < 0)
		return;
	while (pending > 0) {
		ssize_t n = read(from, buf, (size_t)pending < sizeof(buf) ? (size_t)pending : sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || write_all(to, buf, (size_t)n) < 0)
			return;
		pending -= (int)n;
	}
}

void pty_relay_run(struct pty_relay *r, int pidfd)
{
	struct pollfd fds[4] = {
		{ .fd = r->to_child >= 0 ? 0 : -1, .events = POLLIN },
		{ .fd = r->from_out, .events = POLLIN },
		{ .fd = r->from_err, .events = POLLIN },
		{ .fd = pidfd, .events = POLLIN },
	};
	char buf[16384];

	for (;;) {
		if (poll(fds, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 1; i <= 2; i++) {
			if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t n = read(fds[i].fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			/* EOF, or our own stdout is gone: stop copying; the
			 * command then sees EPIPE like on a closed terminal. */
			if (n <= 0 || write_all(i, buf, (size_t)n) < 0) {
				close_fd(i == 1 ? &r->from_out : &r->from_err);
				fds[i].fd = -1;
			}
		}
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(0, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0 || write_all(r->to_child, buf, (size_t)n) < 0) {
				/* End of input (^D), or the command closed its
				 * stdin: pass the EOF on. */
				close_fd(&r->to_child);
				fds[0].fd = -1;
			}
		}
		if (fds[3].revents & POLLIN)
			break; /* the command (or the container's init) exited */
		if (pidfd < 0 && fds[1].fd < 0 && fds[2].fd < 0)
			break;
	}
	/* What the command wrote before it exited is in the pipes; take it,
	 * but do not wait for processes it left behind that still hold them. */
	drain(r->from_out, 1);
	drain(r->from_err, 2);
}

void pty_relay_release(struct pty_relay *r)
{
	pty_relay_close_child(r);
	close_fd(&r->to_child);
	close_fd(&r->from_out);
	close_fd(&r->from_err);
}

/* ---- signals from the caller's terminal ---- */

static volatile sig_atomic_t forward_to;

static void forward_signal(int sig)
{
	if (forward_to > 0)
		kill((pid_t)forward_to, sig);
}

void pty_forward_signals(pid_t pid)
{
	static const int sigs[] = { SIGINT, SIGQUIT, SIGTERM, SIGHUP };
	struct sigaction sa = { .sa_handler = forward_signal };
	sigemptyset(&sa.sa_mask);
	forward_to = pid;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}
