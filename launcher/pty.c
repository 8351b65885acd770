/* Terminals for containers.
 *
 * The caller's terminal is never handed to a container: a process there
 * could push keystrokes into the host shell with TIOCSTI (allowed on this
 * kernel: dev.tty.legacy_tiocsti=1).  Instead the container gets a pty of
 * its own devpts instance, and corral copies bytes between the caller's
 * terminal and the pty master. */
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

void pty_proxy(int master)
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

	struct pollfd fds[2] = { { .fd = 0, .events = POLLIN }, { .fd = master, .events = POLLIN } };
	char buf[16384];
	for (;;) {
		if (winch_pending && is_tty) {
			winch_pending = 0;
			copy_winsize(0, master);
		}
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
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
				continue;
			}
			if (write_all(master, buf, (size_t)n) < 0)
				break;
		}
	}
	sigaction(SIGWINCH, &old_sa, NULL);
	if (is_tty)
		tcsetattr(0, TCSANOW, &saved);
}
