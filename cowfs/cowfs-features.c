/* The kernel's fast paths a cowfs mount may use (passthrough, FUSE over
 * io_uring, splice, the writeback cache), which of them libfuse and the
 * kernel offer, and which one mount uses.
 *
 * The kernel decides at FUSE INIT: op_init asks, the reply settles it.
 * What a mount got is reported by the daemon itself in a status file whose
 * path the caller gives (-o status=FILE): written after the INIT reply,
 * atomically (temp, fsync, rename), by the host-side daemon, at a path of
 * the caller's, so nothing a container can write takes part in it.
 *
 * io_uring is the one feature INIT alone cannot tell: libfuse starts its
 * ring threads after op_init and falls back to /dev/fuse reads if they
 * fail.  The status thread waits for the INIT reply (an open of the mount's
 * root blocks in the kernel until it is in) and then looks for the rings among
 * the daemon's own descriptors: cowfs itself never makes one. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "cowfs.h"
#include "fileio.h"
#include "log.h"

/* INIT flags newer than the oldest <linux/fuse.h> cowfs builds with. */
#ifndef FUSE_PASSTHROUGH
#define FUSE_PASSTHROUGH (1ULL << 37)
#endif
#ifndef FUSE_OVER_IO_URING
#define FUSE_OVER_IO_URING (1ULL << 41)
#endif

#define ENABLE_URING_PARAM "/sys/module/fuse/parameters/enable_uring"

struct cowfs_status {
	pthread_t tid;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool inited;   /* op_init ran; under lock */
	bool stopping; /* the daemon ends; under lock */
};

int cowfs_kernel_io_uring(void)
{
	char v[8] = "";
	cleanup_close int fd = open(ENABLE_URING_PARAM, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno; /* ENOENT: a kernel without CONFIG_FUSE_IO_URING */
	if (read(fd, v, sizeof(v) - 1) < 0)
		return -errno;
	return v[0] == 'Y' || v[0] == 'y' || v[0] == '1';
}

bool cowfs_libfuse_io_uring(void)
{
#ifdef FUSE_CAP_OVER_IO_URING
	return true;
#else
	return false;
#endif
}

bool cowfs_libfuse_passthrough(void)
{
#ifdef HAVE_FUSE_PASSTHROUGH
	return true;
#else
	return false;
#endif
}

/* The INIT flags this kernel offers, read from a throwaway FUSE mount in a
 * mount namespace of a child's own (gone with the child; the connection
 * dies unanswered with its descriptor).  -errno (-EPERM without root). */
static int probe_kernel_init_flags(uint64_t *ret)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) {
		int64_t out = -EIO;
		char buf[FUSE_MIN_READ_BUFFER], opts[128];
		int fd = -1;
		close(p[0]);
		alarm(10); /* never hang --version: the kernel sends INIT at mount */
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			out = -errno;
		else if ((fd = open("/dev/fuse", O_RDWR | O_CLOEXEC)) < 0)
			out = -errno;
		else {
			snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", fd);
			/* Over /, in this namespace only: no directory to make. */
			if (mount("cowfs-probe", "/", "fuse.cowfs-probe", MS_NOSUID | MS_NODEV, opts) < 0)
				out = -errno;
			else {
				ssize_t n = read(fd, buf, sizeof(buf));
				const struct fuse_in_header *in = (const void *)buf;
				const struct fuse_init_in *init = (const void *)(in + 1);
				if (n >= (ssize_t)(sizeof(*in) + offsetof(struct fuse_init_in, flags2) + 4) &&
				    in->opcode == FUSE_INIT)
					out = (int64_t)(init->flags |
							((init->flags & FUSE_INIT_EXT) ? (uint64_t)init->flags2 << 32 : 0));
			}
		}
		if (write(p[1], &out, sizeof(out)) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	int64_t v = -ETIMEDOUT; /* the child died before answering */
	ssize_t n = read(p[0], &v, sizeof(v));
	close(p[0]);
	waitpid(pid, NULL, 0);
	if (n != sizeof(v))
		return -EIO;
	if (v < 0)
		return (int)v;
	*ret = (uint64_t)v;
	return 0;
}

static const char *yes_no(bool b)
{
	return b ? "yes" : "no";
}

void cowfs_print_version(FILE *out)
{
	uint64_t flags = 0;
	int probe = probe_kernel_init_flags(&flags);
	int uring_param = cowfs_kernel_io_uring();
	char kernel[96];

	fprintf(out, "cowfs %s\n", PACKAGE_VERSION);
	fprintf(out, "libfuse %s (built with %d.%d)\n", fuse_pkgversion(), FUSE_MAJOR_VERSION, FUSE_MINOR_VERSION);
	if (probe < 0)
		snprintf(kernel, sizeof(kernel), "unknown (%s)", strerror(-probe));
#define KERNEL(flag) (probe < 0 ? kernel : yes_no(flags & (flag)))
	fprintf(out, "passthrough: libfuse %s, kernel %s\n", yes_no(cowfs_libfuse_passthrough()),
		KERNEL(FUSE_PASSTHROUGH));
	fprintf(out, "io_uring: libfuse %s, kernel %s (%s: %s)\n", yes_no(cowfs_libfuse_io_uring()),
		KERNEL(FUSE_OVER_IO_URING), ENABLE_URING_PARAM,
		uring_param < 0 ? strerror(-uring_param) : uring_param ? "Y" : "N");
	fprintf(out, "splice: libfuse yes, kernel yes\n");
	fprintf(out, "writeback: libfuse yes, kernel %s\n", KERNEL(FUSE_WRITEBACK_CACHE));
#undef KERNEL
	fprintf(out, "A mount's active features: cowfs -o status=FILE (see cowfs(1)).\n");
}

void cowfs_features_at_init(struct cowfs *fs, struct fuse_conn_info *conn)
{
#ifdef FUSE_CAP_OVER_IO_URING
	/* libfuse wants the ring by default; -o io_uring=0 must hold even
	 * with FUSE_URING_ENABLE=1 in the environment. */
	if (!fs->io_uring_wanted)
		conn->want &= ~FUSE_CAP_OVER_IO_URING;
#endif
	fs->splice = (conn->want & (FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE)) != 0;
	struct cowfs_status *st = fs->status;
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	st->inited = true;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

/* Whether the daemon holds an io_uring instance: libfuse's rings. */
static bool have_rings(struct cowfs *fs)
{
	DIR *d = dir_stream_at(fs->proc_fd);
	struct dirent *de;
	bool found = false;
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		char target[64];
		ssize_t n = readlinkat(fs->proc_fd, de->d_name, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			found = !strcmp(target, "anon_inode:[io_uring]");
		}
	}
	closedir(d);
	return found;
}

static int write_status(struct cowfs *fs)
{
	char text[512];
	int n = snprintf(text, sizeof(text),
			 "# cowfs %s: features the kernel granted this mount at FUSE INIT\n"
			 "pid = %d\n"
			 "libfuse = %s\n"
			 "passthrough = %s\n"
			 "io_uring = %s\n"
			 "splice = %s\n"
			 "writeback = %s\n"
			 "share_base = %s\n",
			 PACKAGE_VERSION, (int)getpid(), fuse_pkgversion(), yes_no(fs->passthrough),
			 yes_no(atomic_load(&fs->io_uring)), yes_no(fs->splice), yes_no(fs->writeback),
			 yes_no(fs->passthrough && fs->share_base));
	struct corral_error err = { 0 };
	if (file_write_atomic(fs->status_path, text, (size_t)n, 0644, &err) < 0) {
		log_error("cannot write the status file %s: %s", fs->status_path, err.msg);
		return -1;
	}
	return 0;
}

static void *status_thread(void *arg)
{
	struct cowfs *fs = arg;
	struct cowfs_status *st = fs->status;
	pthread_mutex_lock(&st->lock);
	while (!st->inited && !st->stopping)
		pthread_cond_wait(&st->cond, &st->lock);
	bool go = st->inited && !st->stopping;
	pthread_mutex_unlock(&st->lock);
	if (!go)
		return NULL;
	/* Opening the mount's root sends OPENDIR, which the kernel holds
	 * until it has the INIT reply; libfuse sends that once its rings run
	 * or have failed.  (An open, not a statfs: valgrind runs no other
	 * thread while one waits in statfs, and the workers must answer.) */
	int fd = open(fs->mountpoint, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NULL; /* gone already: nothing to report */
	close(fd);
	if (fs->io_uring_wanted)
		atomic_store(&fs->io_uring, have_rings(fs));
	write_status(fs);
	return NULL;
}

int cowfs_status_start(struct cowfs *fs)
{
	struct cowfs_status *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, NULL);
	fs->status = st;
	int r = pthread_create(&st->tid, NULL, status_thread, fs);
	if (r != 0) {
		fs->status = NULL;
		pthread_cond_destroy(&st->cond);
		pthread_mutex_destroy(&st->lock);
		free(st);
		return -r;
	}
	return 0;
}

void cowfs_status_stop(struct cowfs *fs)
{
	struct cowfs_status *st = fs->status;
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	st->stopping = true;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
	pthread_join(st->tid, NULL);
	fs->status = NULL;
	pthread_cond_destroy(&st->cond);
	pthread_mutex_destroy(&st->lock);
	free(st);
}
