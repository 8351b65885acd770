#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "console-log.h"
#include "container/container-config.h"

static int open_log(const char *path, uint64_t *ret_size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
	struct stat st;
	*ret_size = fd >= 0 && fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	return fd;
}

/* console.log -> console.log.1, and a new, empty console.log. */
static int rotate(int fd, const char *path, uint64_t *ret_size)
{
	char old[PATH_MAX];
	close(fd);
	if (snprintf(old, sizeof(old), "%s.1", path) < (int)sizeof(old))
		rename(path, old);
	/* If the rename failed, start over in place rather than grow. */
	fd = open_log(path, ret_size);
	if (fd >= 0 && *ret_size && ftruncate(fd, 0) == 0)
		*ret_size = 0;
	return fd;
}

/* The attach socket: <container>/console.sock, in the 0700 container
 * directory (the container never reaches it).  -1 when it cannot be made:
 * the log goes on without attach. */
static int listen_console(const char *sock_path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (!sock_path || strlen(sock_path) >= sizeof(a.sun_path))
		return -1;
	strcpy(a.sun_path, sock_path);
	unlink(sock_path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	mode_t old = umask(0077);
	int r = bind(s, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (r < 0 || listen(s, CONSOLE_ATTACH_MAX) < 0) {
		close(s);
		return -1;
	}
	return s;
}

/* Output to every attached client, never blocking: a client that cannot
 * take it at once is dropped (the container is never slowed by one). */
static void fan_out(int *clients, const char *buf, size_t n)
{
	for (int i = 0; i < CONSOLE_ATTACH_MAX; i++) {
		if (clients[i] < 0)
			continue;
		ssize_t w = send(clients[i], buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w != (ssize_t)n) {
			close(clients[i]);
			clients[i] = -1;
		}
	}
}

/* A client's keystrokes to the console (a pty master; a pipe has no way
 * in): only what the pty takes at once, so a container that never reads
 * its console cannot stall the relay. */
static void take_input(int *client, int console, bool writable)
{
	char in[4096];
	ssize_t n = recv(*client, in, sizeof(in), MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		close(*client);
		*client = -1;
		return;
	}
	struct pollfd p = { .fd = console, .events = POLLOUT };
	if (n > 0 && writable && poll(&p, 1, 0) == 1 && (p.revents & POLLOUT)) {
		ssize_t w = write(console, in, (size_t)n);
		(void)w; /* what did not fit is dropped, as a busy terminal would */
	}
}

/* Until EOF on fd or, with a pidfd, until that process has exited and
 * what it left in fd is through (fd non-blocking then).  Clients attach
 * through sock_path (NULL: none); `writable`: fd takes their input. */
static void relay(int fd, int pidfd, const char *path, uint64_t max_size, const char *sock_path, bool writable)
{
	static char buf[CONSOLE_LOG_SIZE_MIN];
	uint64_t size;
	bool draining = false;
	int clients[CONSOLE_ATTACH_MAX];
	for (int i = 0; i < CONSOLE_ATTACH_MAX; i++)
		clients[i] = -1;
	if (max_size < CONSOLE_LOG_SIZE_MIN)
		max_size = CONSOLE_LOG_SIZE_MIN;
	int log = open_log(path, &size);
	int lsock = listen_console(sock_path);
	for (;;) {
		if (!draining) {
			/* 0: console, 1: pidfd, 2: listener, 3..: clients */
			struct pollfd p[3 + CONSOLE_ATTACH_MAX];
			p[0] = (struct pollfd){ .fd = fd, .events = POLLIN };
			p[1] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
			p[2] = (struct pollfd){ .fd = lsock, .events = POLLIN };
			for (int i = 0; i < CONSOLE_ATTACH_MAX; i++)
				p[3 + i] = (struct pollfd){ .fd = clients[i], .events = POLLIN };
			if (poll(p, 3 + CONSOLE_ATTACH_MAX, -1) < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			if (p[2].revents & POLLIN) {
				int c = accept4(lsock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				int i = 0;
				while (c >= 0 && i < CONSOLE_ATTACH_MAX && clients[i] >= 0)
					i++;
				if (c >= 0 && i < CONSOLE_ATTACH_MAX)
					clients[i] = c;
				else if (c >= 0)
					close(c); /* full */
			}
			for (int i = 0; i < CONSOLE_ATTACH_MAX; i++)
				if (clients[i] >= 0 && p[3 + i].revents)
					take_input(&clients[i], fd, writable);
			if (pidfd >= 0 && p[1].revents) {
				draining = true;
				int fl = fcntl(fd, F_GETFL);
				if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
					break;
			}
			if (!draining && !p[0].revents)
				continue;
		}
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		fan_out(clients, buf, (size_t)n);
		if (log >= 0 && size && size + (uint64_t)n > max_size)
			log = rotate(log, path, &size);
		if (log < 0)
			log = open_log(path, &size); /* try again with the next output */
		for (ssize_t off = 0; log >= 0 && off < n;) {
			ssize_t w = write(log, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break; /* disk full or an I/O error: this output is lost */
			off += w;
			size += (uint64_t)w;
		}
	}
	if (log >= 0)
		close(log);
	/* Clients see EOF: the container's console is gone. */
	for (int i = 0; i < CONSOLE_ATTACH_MAX; i++)
		if (clients[i] >= 0)
			close(clients[i]);
	if (lsock >= 0) {
		close(lsock);
		unlink(sock_path);
	}
}

void console_log_relay(int fd, const char *path, uint64_t max_size, const char *sock_path)
{
	relay(fd, -1, path, max_size, sock_path, false);
}

void console_log_relay_pty(int master, int pidfd, const char *path, uint64_t max_size, const char *sock_path)
{
	relay(master, pidfd, path, max_size, sock_path, true);
}
