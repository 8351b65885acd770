/* corral attach NAME: the console of a running container, live
 * (start/console-log.h: the monitor's console.sock).  Output from the
 * moment of attaching (`corral logs` has what came before); on a booting
 * container's console (a pty) keystrokes go in too.  Ctrl-P Ctrl-Q
 * detaches (as docker and podman); the container's end ends it. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "container/state.h"
#include "start/console-log.h"
#include "template/template.h"

#define DETACH_1 0x10 /* Ctrl-P */
#define DETACH_2 0x11 /* Ctrl-Q */

static int write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Forwards stdin (but the detach keys) and the console until detach,
 * the console's end or stdin's.  Returns true when detached. */
static bool relay(int sock)
{
	char buf[4096], out[4096];
	bool saw_p = false, in_open = true;
	for (;;) {
		struct pollfd p[2] = { { .fd = sock, .events = POLLIN }, { .fd = in_open ? 0 : -1, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		if (p[0].revents) {
			ssize_t n = read(sock, buf, sizeof(buf));
			if (n <= 0 || write_all(1, buf, (size_t)n) < 0)
				return false; /* the console ended */
		}
		if (p[1].revents) {
			ssize_t n = read(0, buf, sizeof(buf));
			if (n <= 0) {
				/* stdin ended: keep showing the console (a pipe
				 * fed the keys it had). */
				in_open = false;
				continue;
			}
			size_t o = 0;
			for (ssize_t i = 0; i < n; i++) {
				unsigned char ch = (unsigned char)buf[i];
				if (saw_p && ch == DETACH_2)
					return true;
				if (saw_p)
					out[o++] = DETACH_1; /* not a detach: send the held Ctrl-P */
				saw_p = ch == DETACH_1;
				if (!saw_p)
					out[o++] = (char)ch;
				if (o >= sizeof(out) - 1) {
					if (write_all(sock, out, o) < 0)
						return false;
					o = 0;
				}
			}
			if (o && write_all(sock, out, o) < 0)
				return false;
		}
	}
}

int cmd_attach(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral attach NAME\n\nShows a running container's console live (earlier output: "
		       "corral logs) and,\nfor a booting container (its console is a pty), sends what you type "
		       "to it.\nCtrl-P Ctrl-Q detaches; the container stopping ends it. A container whose\n"
		       "output is a pipe (one created with a command) shows output only.\n");
		return 0;
	}
	cleanup_cli_args struct cli_args args = { 0 };
	CLI_PARSE_POSITIONAL("attach", 1, 1, "no container name given", args);
	const char *name = argv[1];
	struct corral_error err = { 0 };
	char path[PATH_MAX];
	struct container_state st;
	if (name_validate("container", name, &err) < 0 || state_load_running(name, &st, &err) < 0 ||
	    state_path(path, sizeof(path), name, CONSOLE_SOCK, &err) < 0)
		return cli_fail(&err);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(a.sun_path)) {
		err_plain(&err, ENAMETOOLONG, "the console socket path %s is too long to connect to", path);
		return cli_fail(&err);
	}
	strcpy(a.sun_path, path);
	cleanup_close int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&a, sizeof(a)) < 0) {
		err_set(&err, errno, "attach to the console of %s (a container started by an older corral has "
			"no console socket: restart it)", name);
		return cli_fail(&err);
	}
	struct termios saved, raw;
	bool tty = isatty(0) && tcgetattr(0, &saved) == 0;
	if (tty) {
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(0, TCSANOW, &raw);
	}
	fprintf(stderr, "corral: attached to %s; Ctrl-P Ctrl-Q detaches%s\n", name, tty ? "\r" : "");
	bool detached = relay(sock);
	if (tty)
		tcsetattr(0, TCSANOW, &saved);
	fprintf(stderr, "\ncorral: %s\n", detached ? "detached" : "the console ended");
	return 0;
}
