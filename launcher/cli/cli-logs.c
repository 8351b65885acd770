/* corral logs [-f] [--tail N] NAME: a detached container's console log
 * (start/console-log.h: console.log, rotated to console.log.1 at
 * console_size).  The older file is shown first; -f follows the log
 * across rotations (a new console.log has another inode: the rest of the
 * old one is read, then the new one from its start) until the container
 * has stopped. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "container/state.h"
#include "fileio.h"
#include "kv.h"
#include "template/template.h"

static int open_log(const char *path)
{
	return open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}

/* Copies fd from its offset to its end to stdout. */
static int drain(int fd)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : 0;
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			return -EIO;
	}
}

/* The last `lines` lines of console.log.1 + console.log; all with
 * lines < 0.  Leaves *ret_fd open on console.log at its end (or -1). */
static int show(const char *path, const char *older, long lines, int *ret_fd)
{
	cleanup_free char *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	cleanup_close int ofd = open_log(older);
	int fd = open_log(path);
	*ret_fd = fd;
	if (ofd >= 0 && fd_read_all(ofd, older, &a, &alen, NULL) < 0)
		alen = 0;
	if (fd >= 0 && fd_read_all(fd, path, &b, &blen, NULL) < 0)
		blen = 0;
	cleanup_free char *all = malloc(alen + blen + 1);
	if (!all)
		return -ENOMEM;
	if (alen)
		memcpy(all, a, alen);
	if (blen)
		memcpy(all + alen, b, blen);
	size_t len = alen + blen, start = 0;
	if (lines >= 0) {
		/* Back from the end over `lines` newlines (a last line without
		 * one counts as a line). */
		size_t i = len;
		long seen = 0;
		if (i && all[i - 1] == '\n')
			i--;
		while (i > 0) {
			if (all[i - 1] == '\n' && ++seen == lines)
				break;
			i--;
		}
		start = lines == 0 ? len : i;
	}
	fwrite(all + start, 1, len - start, stdout);
	fflush(stdout);
	return 0;
}

static bool running(const char *name)
{
	struct container_state st;
	return state_load(name, &st, NULL) == 0 && state_init_alive(&st);
}

static bool same_file(int fd, const char *path)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

static void follow(const char *name, const char *path, int fd)
{
	struct timespec step = { 0, 100 * 1000 * 1000 };
	for (;;) {
		bool alive = running(name);
		if (fd >= 0)
			drain(fd);
		if (fd < 0 || !same_file(fd, path)) {
			/* Rotated (or not there yet): what was left of the
			 * old one is out; the new one from its start. */
			int nfd = open_log(path);
			if (nfd >= 0) {
				if (fd >= 0)
					close(fd);
				fd = nfd;
				drain(fd);
			}
		}
		fflush(stdout);
		/* Checked before the last drain: output written before the
		 * init exited has been read. */
		if (!alive)
			break;
		nanosleep(&step, NULL);
	}
	if (fd >= 0)
		close(fd);
}

struct logs_opts {
	bool follow;
	long lines;
};

static int logs_opt(int opt, const char *arg, void *ctx)
{
	struct logs_opts *o = ctx;
	uint64_t n;
	if (opt == 'f') {
		o->follow = true;
		return 0;
	}
	if (parse_u64_max(arg, 100000000, &n) < 0)
		return cli_usage_error("logs", "--tail needs a number of lines, not '%s'", arg);
	o->lines = (long)n;
	return 0;
}

int cmd_logs(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral logs [-f] [--tail N] NAME\n\nPrints a detached container's console log "
		       "(console.log.1, then console.log:\nthe log rotates at create --console-size, so at most "
		       "twice that is kept).\n  -f, --follow  keep printing new output, across rotations, until "
		       "the container stops\n  --tail N      only the last N lines\n");
		return 0;
	}
	static const struct option opts[] = { { "follow", no_argument, NULL, 'f' },
					      { "tail", required_argument, NULL, 'n' }, { 0 } };
	struct cli_spec spec = { .cmd = "logs", .shortopts = "fn:", .longopts = opts, .min_args = 1, .max_args = 1,
				 .missing = "no container name given" };
	struct logs_opts o = { .lines = -1 };
	cleanup_cli_args struct cli_args args = { 0 };
	int prc = cli_parse(&spec, argc, argv, logs_opt, &o, &args);
	if (prc)
		return prc;
	bool f = o.follow;
	long lines = o.lines;
	const char *name = args.argv[0];
	struct corral_error err = { 0 };
	char dir[PATH_MAX], path[PATH_MAX], older[PATH_MAX];
	if (name_validate("container", name, &err) < 0 || state_path(dir, sizeof(dir), name, NULL, &err) < 0 ||
	    state_path(path, sizeof(path), name, "console.log", &err) < 0 ||
	    state_path(older, sizeof(older), name, "console.log.1", &err) < 0)
		return cli_fail(&err);
	if (access(dir, F_OK) < 0) {
		err_plain(&err, ENOENT, "no such container: %s", name);
		return cli_fail(&err);
	}
	int fd;
	if (show(path, older, lines, &fd) < 0) {
		err_plain(&err, ENOMEM, "read the console log of %s", name);
		return cli_fail(&err);
	}
	if (f)
		follow(name, path, fd);
	else if (fd >= 0)
		close(fd);
	return 0;
}
