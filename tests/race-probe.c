/* race-probe - helpers for tests/cowfs-races.test.
 *
 *   race-probe events DIR -- CMD [ARG...]
 *	Watches DIR (an upper directory) with inotify while CMD runs, then
 *	prints one line per event: CREATE, DELETE, MOVED_TO or MOVED_FROM and
 *	the name.  Exits with CMD's status.  A name that only ever arrives by
 *	MOVED_TO was never visible half-made, whatever a crash interrupted.
 *
 *   race-probe symlink-race MERGED UPPER WORK NDIRS NCHILD SECONDS TARGET...
 *	The tenant's attack on directory copy-up: for each base directory
 *	MERGED/tNNN (NNN < NDIRS, children cpNNNN for NNNN < NCHILD) one
 *	thread renames the directory (which copies its whole subtree up)
 *	while attacker threads rename symlinks to the TARGETs (host files
 *	outside the mount) over child names through the mount.  inotify times
 *	the attack: a child created in UPPER/tNNN is attacked at once (a
 *	copy-up that sets attributes by name then follows the symlink to the
 *	host file); anything created in WORK sets off an attack on a random
 *	child (a copy being built there).  Runs for at most SECONDS.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int events(int argc, char **argv)
{
	if (argc < 4 || strcmp(argv[1], "--") != 0) {
		fprintf(stderr, "usage: race-probe events DIR -- CMD [ARG...]\n");
		return 2;
	}
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (in < 0 || inotify_add_watch(in, argv[0], IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM) < 0) {
		perror("inotify");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 2;
	}
	char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t len;
	while ((len = read(in, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + len;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			const char *what = ev->mask & IN_CREATE ? "CREATE" : ev->mask & IN_DELETE ? "DELETE" :
					   ev->mask & IN_MOVED_TO ? "MOVED_TO" : "MOVED_FROM";
			if (ev->len)
				printf("%s %s\n", what, ev->name);
			p += sizeof(*ev) + ev->len;
		}
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- symlink-race ---- */

static const char *merged, *upper;
static char **targets;
static int ntargets, nchild;
static _Atomic int cur_dir = -1;	/* directory being attacked */
static _Atomic bool stop;
static _Atomic long renames;

struct attacker {
	int id;
	int inotify_fd;
	int work_wd;
	unsigned seed;
	pthread_t thread;
};

/* Each event names a child whose copy has just been created in the upper
 * directory: a rename landing now, before its attributes are set, is the
 * race. */
static void *attack(void *arg)
{
	struct attacker *a = arg;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	char sym[PATH_MAX], dst[PATH_MAX];
	unsigned long seq = 0;

	while (!atomic_load(&stop)) {
		ssize_t len = read(a->inotify_fd, buf, sizeof(buf));
		if (len <= 0) {
			struct timespec ts = { 0, 100000 };
			nanosleep(&ts, NULL);
			continue;
		}
		int d = atomic_load(&cur_dir);
		for (char *p = buf; p < buf + len && d >= 0;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			char child[NAME_MAX + 1];
			if (ev->wd == a->work_wd)
				snprintf(child, sizeof(child), "cp%04u", (unsigned)(rand_r(&a->seed) % nchild));
			else if (ev->len && ev->name[0] == 'c' && (ev->mask & IN_CREATE))
				snprintf(child, sizeof(child), "%s", ev->name);
			else
				continue;
			snprintf(sym, sizeof(sym), "%s/t%03d/s%d.%lu", merged, d, a->id, seq++);
			snprintf(dst, sizeof(dst), "%s/t%03d/%s", merged, d, child);
			if (symlink(targets[seq % ntargets], sym) < 0)
				continue;
			if (rename(sym, dst) == 0)
				atomic_fetch_add(&renames, 1);
			else
				unlink(sym);
		}
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int symlink_race(int argc, char **argv)
{
	enum { NATTACKERS = 4 };
	if (argc < 7) {
		fprintf(stderr, "usage: race-probe symlink-race MERGED UPPER WORK NDIRS NCHILD SECONDS TARGET...\n");
		return 2;
	}
	merged = argv[0];
	upper = argv[1];
	const char *work = argv[2];
	int ndirs = atoi(argv[3]);
	nchild = atoi(argv[4]);
	double deadline = now() + atof(argv[5]);
	targets = argv + 6;
	ntargets = argc - 6;
	if (ndirs <= 0 || nchild <= 0) {
		fprintf(stderr, "NDIRS and NCHILD must be positive\n");
		return 2;
	}

	struct attacker att[NATTACKERS];
	for (int i = 0; i < NATTACKERS; i++) {
		att[i].id = i;
		att[i].seed = (unsigned)i * 7919u + 1;
		att[i].inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		att[i].work_wd = att[i].inotify_fd < 0 ? -1 : inotify_add_watch(att[i].inotify_fd, work, IN_CREATE);
		if (att[i].inotify_fd < 0 || att[i].work_wd < 0) {
			perror("inotify_init1");
			return 2;
		}
		pthread_create(&att[i].thread, NULL, attack, &att[i]);
	}

	int done = 0, failed_renames = 0;
	char path[PATH_MAX], to[PATH_MAX], sym[PATH_MAX];
	for (int d = 0; d < ndirs && now() < deadline; d++) {
		/* A symlink made in the directory copies the directory itself
		 * (not its children) up, so its upper copy can be watched. */
		snprintf(sym, sizeof(sym), "%s/t%03d/seed", merged, d);
		if (symlink(targets[0], sym) < 0 || unlink(sym) < 0) {
			fprintf(stderr, "%s: %s\n", sym, strerror(errno));
			return 2;
		}
		snprintf(path, sizeof(path), "%s/t%03d", upper, d);
		int wd[NATTACKERS];
		for (int i = 0; i < NATTACKERS; i++)
			wd[i] = inotify_add_watch(att[i].inotify_fd, path, IN_CREATE | IN_MOVED_TO);
		atomic_store(&cur_dir, d);

		/* Renaming the directory copies every child up; a failed
		 * attempt (a child raced) is retried, as a tenant would. */
		snprintf(path, sizeof(path), "%s/t%03d", merged, d);
		snprintf(to, sizeof(to), "%s/r%03d", merged, d);
		int tries = 0;
		while (rename(path, to) < 0 && ++tries < 1000) {
			if (failed_renames++ < 5)
				fprintf(stderr, "rename %s: %s (retried)\n", path, strerror(errno));
		}
		atomic_store(&cur_dir, -1);
		for (int i = 0; i < NATTACKERS; i++)
			inotify_rm_watch(att[i].inotify_fd, wd[i]);
		done++;
	}
	atomic_store(&stop, true);
	for (int i = 0; i < NATTACKERS; i++)
		pthread_join(att[i].thread, NULL);
	printf("dirs %d, symlinks renamed over children %ld, failed dir renames %d\n", done,
	       atomic_load(&renames), failed_renames);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "events") == 0)
		return events(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "symlink-race") == 0)
		return symlink_race(argc - 2, argv + 2);
	fprintf(stderr, "usage: race-probe events|symlink-race ...\n");
	return 2;
}
