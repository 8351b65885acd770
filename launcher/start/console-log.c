#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
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

/* Until EOF on fd or, with a pidfd, until that process has exited and
 * what it left in fd is through (fd non-blocking then). */
static void relay(int fd, int pidfd, const char *path, uint64_t max_size)
{
	static char buf[CONSOLE_LOG_SIZE_MIN];
	uint64_t size;
	bool draining = false;
	if (max_size < CONSOLE_LOG_SIZE_MIN)
		max_size = CONSOLE_LOG_SIZE_MIN;
	int log = open_log(path, &size);
	for (;;) {
		if (pidfd >= 0 && !draining) {
			struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
			if (poll(p, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			if (p[1].revents) {
				draining = true;
				int fl = fcntl(fd, F_GETFL);
				if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
					break;
			}
		}
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
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
}

void console_log_relay(int fd, const char *path, uint64_t max_size)
{
	relay(fd, -1, path, max_size);
}

void console_log_relay_pty(int master, int pidfd, const char *path, uint64_t max_size)
{
	relay(master, pidfd, path, max_size);
}
