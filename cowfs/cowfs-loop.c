/* The request loop: a fixed pool of worker threads.
 *
 * Each worker receives a request with fuse_session_receive_buf() and hands
 * it to libfuse, except FUSE_TMPFILE (O_TMPFILE), which libfuse before 3.17
 * cannot dispatch and would refuse with ENOSYS; cowfs answers it here, in
 * the kernel protocol's own terms.  A fixed pool also bounds the daemon's
 * memory, which matters when hundreds of containers each have one.
 *
 * Shutdown: a worker whose receive reports the end (unmounted, or the
 * session told to exit) stops, and wakes the others with SIGUSR1 so no one
 * stays blocked in read(2).
 *
 * With FUSE over io_uring asked for, libfuse's own multi-threaded loop
 * serves instead: libfuse starts its ring threads at INIT and only its own
 * loops stop them again (there is no call for a loop of ours to do it),
 * and a libfuse that has io_uring (3.18) dispatches FUSE_TMPFILE itself.
 * The ring then carries the requests; /dev/fuse only INIT, FORGET and
 * INTERRUPT, so one reader stays idle there and more start only while all
 * are busy, up to nthreads.
 *
 * The ring's memory: libfuse makes one queue per CPU, each with
 * COWFS_URING_QUEUE_DEPTH slots, and each slot a buffer of max_write
 * (1 MiB) plus a header page, touched as requests fill it: up to
 * CPUs x depth x 1 MiB per mount (64 MiB at libfuse's default depth of 8
 * on 8 CPUs; hundreds of mounts on a host).  Depth 1 keeps it at 1 MiB
 * per CPU.  A queue is served by one thread that handles its requests one
 * at a time and replies before taking the next (every cowfs handler
 * replies before it returns), so a second slot only holds a request the
 * kernel would otherwise keep queued for that thread: it buys no
 * parallelism. */
#include "config.h"

#include <errno.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cowfs.h"
#include "cowfs-file.h"

struct loop {
	struct cowfs *fs;
	pthread_t *threads;
	_Atomic int nthreads; /* threads started so far */
	_Atomic int stopping;
};

static void fill_attr(struct fuse_attr *a, const struct stat *st)
{
	memset(a, 0, sizeof(*a));
	a->ino = st->st_ino;
	a->size = st->st_size;
	a->blocks = st->st_blocks;
	a->atime = st->st_atim.tv_sec;
	a->mtime = st->st_mtim.tv_sec;
	a->ctime = st->st_ctim.tv_sec;
	a->atimensec = st->st_atim.tv_nsec;
	a->mtimensec = st->st_mtim.tv_nsec;
	a->ctimensec = st->st_ctim.tv_nsec;
	a->mode = st->st_mode;
	a->nlink = st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = st->st_rdev;
	a->blksize = st->st_blksize;
}

static void split_timeout(double t, uint64_t *sec, uint32_t *nsec)
{
	*sec = (uint64_t)t;
	*nsec = (uint32_t)((t - (double)*sec) * 1e9);
}

/* Answers one FUSE_TMPFILE request: out header + entry + open. */
static void answer_tmpfile(struct cowfs *fs, const struct fuse_in_header *in, const struct fuse_create_in *arg)
{
	struct fuse_out_header out = { .unique = in->unique };
	struct fuse_entry_out entry = { 0 };
	struct fuse_open_out open_out = { 0 };
	struct stat st;
	struct cowfs_file *f = NULL;
	struct cowfs_node *n = NULL;
	struct iovec iov[3] = { { &out, sizeof(out) }, { &entry, sizeof(entry) }, { &open_out, sizeof(open_out) } };
	int cnt = 1;

	int r = cowfs_make_tmpfile(fs, cowfs_node_of(fs, in->nodeid), arg->mode, arg->umask, in->uid, in->gid,
				   (int)arg->flags, &n, &st, &f);
	if (r < 0) {
		out.error = r;
	} else {
		entry.nodeid = (uint64_t)(uintptr_t)n;
		split_timeout(fs->entry_timeout, &entry.entry_valid, &entry.entry_valid_nsec);
		split_timeout(fs->attr_timeout, &entry.attr_valid, &entry.attr_valid_nsec);
		fill_attr(&entry.attr, &st);
		open_out.fh = (uint64_t)(uintptr_t)f;
		open_out.open_flags = FOPEN_KEEP_CACHE;
		cnt = 3;
	}
	out.len = sizeof(out) + (cnt == 3 ? sizeof(entry) + sizeof(open_out) : 0);
	if (writev(fuse_session_fd(fs->se), iov, cnt) < 0 && r == 0) {
		/* The request was interrupted: the kernel will not release
		 * or forget what it never saw. */
		cowfs_file_drop(fs, f);
		node_unref(fs, n, 1);
	}
}

static bool is_tmpfile_request(const struct fuse_buf *buf)
{
	if (buf->flags & FUSE_BUF_IS_FD || buf->size < sizeof(struct fuse_in_header))
		return false;
	const struct fuse_in_header *in = buf->mem;
	return in->opcode == FUSE_TMPFILE &&
	       buf->size >= sizeof(struct fuse_in_header) + sizeof(struct fuse_create_in);
}

static void *worker(void *arg)
{
	struct loop *loop = arg;
	struct fuse_session *se = loop->fs->se;
	struct fuse_buf buf = { 0 };

	while (!fuse_session_exited(se) && !atomic_load(&loop->stopping)) {
		int r = fuse_session_receive_buf(se, &buf);
		if (r == -EINTR)
			continue;
		if (r <= 0)
			break;
		if (is_tmpfile_request(&buf)) {
			const struct fuse_in_header *in = buf.mem;
			answer_tmpfile(loop->fs, in, (const struct fuse_create_in *)(in + 1));
		} else {
			fuse_session_process_buf(se, &buf);
		}
	}
	free(buf.mem);
	if (!atomic_exchange(&loop->stopping, 1)) {
		/* First one out: wake the others blocked in read(2). */
		for (int i = 0; i < atomic_load(&loop->nthreads); i++)
			if (!pthread_equal(loop->threads[i], pthread_self()))
				pthread_kill(loop->threads[i], SIGUSR1);
	}
	return NULL;
}

#ifdef FUSE_CAP_OVER_IO_URING
#ifndef HAVE_FUSE_TMPFILE
#error "a libfuse with io_uring must dispatch FUSE_TMPFILE: its loop serves without cowfs's answer"
#endif
static int libfuse_loop(struct cowfs *fs, int nthreads)
{
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_max_threads(cfg, (unsigned)nthreads);
	fuse_loop_cfg_set_idle_threads(cfg, 1);
	int r = fuse_session_loop_mt(fs->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return r < 0 ? r : 0;
}
#endif

int cowfs_loop(struct cowfs *fs, int nthreads)
{
#ifdef FUSE_CAP_OVER_IO_URING
	if (fs->io_uring_wanted)
		return libfuse_loop(fs, nthreads);
#endif
	struct loop loop = { .fs = fs };
	loop.threads = calloc(nthreads, sizeof(pthread_t));
	if (!loop.threads)
		return -ENOMEM;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	/* Handlers keep little on the stack (paths are PATH_MAX at most). */
	pthread_attr_setstacksize(&attr, 256 * 1024);
	int started = 0, r = 0;
	for (; started < nthreads; started++) {
		r = -pthread_create(&loop.threads[started], &attr, worker, &loop);
		if (r < 0)
			break;
		atomic_store(&loop.nthreads, started + 1);
	}
	pthread_attr_destroy(&attr);
	/* The wake-up signal (SIGUSR1, sent to the process) must land on a
	 * worker, not on this thread waiting in pthread_join. */
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	if (started == 0) {
		free(loop.threads);
		return r;
	}
	for (int i = 0; i < started; i++)
		pthread_join(loop.threads[i], NULL);
	free(loop.threads);
	return 0;
}
