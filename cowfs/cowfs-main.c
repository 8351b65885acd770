/* cowfs: a copy-on-write union filesystem in userspace.
 *
 * main() validates the layers and the mountpoint before anything is
 * mounted (one clear message, non-zero exit), mounts, daemonizes, and
 * serves requests on several threads until unmounted or signalled.
 *
 * SIGTERM/SIGINT/SIGHUP unmount the filesystem while the workers still
 * serve requests, so the kernel writes back every dirty page before the
 * daemon exits: nothing written is lost. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cleanup.h"
#include "cowfs.h"
#include "fileio.h"
#include "cowfs-options.h"
#include "cowfs-route.h"
#include "cowfs-store.h"
#include "log.h"

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("cowfs: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return -1;
}

static bool path_inside(const char *inner, const char *outer)
{
	size_t n = strlen(outer);
	if (n == 1 && outer[0] == '/')
		return true;
	return strncmp(inner, outer, n) == 0 && (inner[n] == '/' || inner[n] == '\0');
}

/* Opens a layer directory, naming the problem if it is not usable. */
static int open_layer_dir(const char *role, const char *path, int access_mode, char **ret_real,
			  struct stat *ret_st)
{
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return fail("%s directory '%s' does not exist", role, path);
		if (errno == ENOTDIR)
			return fail("%s directory '%s' is not a directory", role, path);
		return fail("cannot open %s directory '%s': %s", role, path, strerror(errno));
	}
	if (faccessat(AT_FDCWD, path, access_mode, AT_EACCESS) < 0) {
		close(fd);
		return fail("%s directory '%s' is not %s: %s", role, path,
			    access_mode & W_OK ? "writable" : "readable", strerror(errno));
	}
	char *real = realpath(path, NULL);
	if (!real || fstat(fd, ret_st) < 0) {
		free(real);
		close(fd);
		return fail("cannot resolve %s directory '%s': %s", role, path, strerror(errno));
	}
	*ret_real = real;
	return fd;
}

static int check_mountpoint(const char *path, char **ret_real)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno == ENOTCONN)
			return fail("mountpoint '%s' is a dead FUSE mount: unmount it first (umount -l '%s')",
				    path, path);
		if (errno == ENOENT)
			return fail("mountpoint '%s' does not exist", path);
		return fail("cannot use mountpoint '%s': %s", path, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return fail("mountpoint '%s' is not a directory", path);
	char *real = realpath(path, NULL);
	if (!real)
		return fail("cannot resolve mountpoint '%s': %s", path, strerror(errno));
	if (path_is_mountpoint(real)) {
		free(real);
		return fail("mountpoint '%s' is busy: something is already mounted there", path);
	}
	*ret_real = real;
	return 0;
}

/* Whether trusted.* xattrs can be written on the upper filesystem. */
static bool probe_trusted_xattrs(int upper_fd)
{
	cleanup_close int fd = openat(upper_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return geteuid() == 0;
	return fsetxattr(fd, "trusted.overlay.cowfs-probe", "y", 1, 0) == 0;
}

static void clean_work_dir(int work_fd)
{
	DIR *d = dir_stream_at(work_fd);
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d))) {
		/* Leftovers of an interrupted operation of an earlier mount:
		 * objects being built (cowfs-stage.c), a staging directory
		 * with the object inside, replaced objects on their way out. */
		if (strncmp(de->d_name, "#cowfs.", 7) == 0)
			remove_tree_at(dirfd(d), de->d_name);
	}
	closedir(d);
}

static int setup_layers(struct cowfs *fs, const struct cowfs_options *o, char **real_mnt)
{
	char *reals[o->nlowers + 1];
	struct stat sts[o->nlowers + 1];
	int r = -1;

	memset(reals, 0, sizeof(reals));
	fs->nlayers = o->nlowers + 1;
	fs->layers = calloc(fs->nlayers, sizeof(*fs->layers));
	if (!fs->layers)
		return fail("out of memory");
	for (int l = 0; l < fs->nlayers; l++)
		fs->layers[l].root_fd = -1;
	fs->work_fd = -1;

	fs->layers[0].root_fd = open_layer_dir("upper", o->upper, R_OK | W_OK | X_OK, &reals[0], &sts[0]);
	if (fs->layers[0].root_fd < 0)
		goto out;
	for (int l = 1; l < fs->nlayers; l++) {
		fs->layers[l].root_fd = open_layer_dir("base", o->lowers[l - 1], R_OK | X_OK, &reals[l], &sts[l]);
		if (fs->layers[l].root_fd < 0)
			goto out;
	}
	for (int l = 1; l < fs->nlayers; l++) {
		if (path_inside(reals[0], reals[l])) {
			fail("upper directory '%s' is inside base directory '%s'", o->upper, o->lowers[l - 1]);
			goto out;
		}
		if (path_inside(reals[l], reals[0])) {
			fail("base directory '%s' is inside upper directory '%s'", o->lowers[l - 1], o->upper);
			goto out;
		}
	}
	if (path_inside(*real_mnt, reals[0])) {
		fail("mountpoint '%s' is inside upper directory '%s'", o->mountpoint, o->upper);
		goto out;
	}
	if (o->work) {
		char *wreal = NULL;
		struct stat wst;
		fs->work_fd = open_layer_dir("work", o->work, R_OK | W_OK | X_OK, &wreal, &wst);
		if (fs->work_fd < 0)
			goto out;
		bool nested = path_inside(wreal, reals[0]) || path_inside(reals[0], wreal);
		free(wreal);
		if (nested) {
			fail("work directory '%s' and upper directory '%s' must not contain each other",
			     o->work, o->upper);
			goto out;
		}
		if (wst.st_dev != sts[0].st_dev) {
			fail("work directory '%s' is not on the same filesystem as upper directory '%s'",
			     o->work, o->upper);
			goto out;
		}
		clean_work_dir(fs->work_fd);
	}

	/* Inode numbers are unique per device; tag them when layers differ. */
	for (int l = 0; l < fs->nlayers; l++) {
		fs->layers[l].dev = sts[l].st_dev;
		fs->layers[l].dev_index = l;
		for (int k = 0; k < l; k++)
			if (sts[k].st_dev == sts[l].st_dev) {
				fs->layers[l].dev_index = fs->layers[k].dev_index;
				break;
			}
		if (sts[l].st_dev != sts[0].st_dev)
			fs->ino_tagging = true;
	}
	fs->xattr_trusted = probe_trusted_xattrs(fs->layers[0].root_fd);
	r = 0;
out:
	for (int l = 0; l < fs->nlayers; l++)
		free(reals[l]);
	return r;
}

static int setup_root(struct cowfs *fs)
{
	struct cowfs_node *root = node_alloc(fs, S_IFDIR);
	struct stat st;
	if (!root)
		return fail("out of memory");
	fs->root = root; /* from now on freed by node_table_destroy, even half set up */
	for (int l = 0; l < fs->nlayers; l++) {
		root->fds[l] = dup(fs->layers[l].root_fd);
		if (root->fds[l] < 0)
			return fail("cannot duplicate layer descriptor: %s", strerror(errno));
	}
	atomic_store(&root->layer, 0);
	atomic_store(&root->opaque, fs->nlayers > 1 && layer_is_opaque_dir(fs, root->fds[0]));
	int shown = fs->nlayers > 1 ? 1 : 0;
	if (layer_stat_fd(root->fds[shown], &st) < 0)
		return fail("cannot stat layer root: %s", strerror(errno));
	root->st_ino = cowfs_tag_ino(fs, shown, st.st_ino);
	root->refcount = 1;
	return 0;
}

/* Releases everything setup_layers, the tables and main built into fs, on
 * every exit path (fs may be half set up).  Only once the session is
 * destroyed and every worker joined: no request can reach a node any more.
 * The kernel forgets nothing at unmount, so the table still holds every
 * node it knew; freeing them (and closing their descriptors) here leaves a
 * leak checker nothing of cowfs's own to report. */
static void teardown(struct cowfs *fs)
{
	origin_map_destroy(fs);
	node_table_destroy(fs);
	if (fs->layers)
		for (int l = 0; l < fs->nlayers; l++)
			if (fs->layers[l].root_fd >= 0)
				close(fs->layers[l].root_fd);
	free(fs->layers);
	if (fs->work_fd >= 0)
		close(fs->work_fd);
	if (fs->proc_fd >= 0)
		close(fs->proc_fd);
}

static void want(struct fuse_conn_info *conn, unsigned cap)
{
	if (conn->capable & cap)
		conn->want |= cap;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct cowfs *fs = userdata;

	want(conn, FUSE_CAP_ASYNC_READ);
	want(conn, FUSE_CAP_ATOMIC_O_TRUNC);
	want(conn, FUSE_CAP_SPLICE_READ);
	want(conn, FUSE_CAP_SPLICE_WRITE);
	want(conn, FUSE_CAP_PARALLEL_DIROPS);
	want(conn, FUSE_CAP_READDIRPLUS);
	/* Always plus: a walk stats every entry, and lookups one by one cost
	 * a round trip each. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	want(conn, FUSE_CAP_CACHE_SYMLINKS);
	/* Directories are read without OPENDIR/RELEASEDIR (cowfs-ops-dir.c). */
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) {
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
		fs->no_opendir = true;
	}
#if defined(FUSE_CAP_HANDLE_KILLPRIV_V2) && defined(HAVE_FUSE_KILL_SUIDGID)
	/* The daemon clears setuid/setgid itself (cowfs_kill_suidgid), so the
	 * kernel stops asking for security.capability before every write. */
	if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV_V2) {
		conn->want |= FUSE_CAP_HANDLE_KILLPRIV_V2;
		fs->killpriv_v2 = true;
	}
#endif
	want(conn, FUSE_CAP_ASYNC_DIO);
	/* The caller's umask is applied here, unless a default ACL rules. */
	want(conn, FUSE_CAP_DONT_MASK);
	if (fs->acl)
		want(conn, FUSE_CAP_POSIX_ACL);
	/* Locks are kept by the kernel: one mount owns the upper. */
	conn->want &= ~(FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_POSIX_LOCKS);

#ifdef HAVE_FUSE_PASSTHROUGH
	/* fs->passthrough holds the option until here.  Which opens use it
	 * (limits included) is decided per open: cowfs-route.c. */
	if (fs->passthrough && (conn->capable & FUSE_CAP_PASSTHROUGH)) {
		conn->want |= FUSE_CAP_PASSTHROUGH;
		fs->writeback = false; /* the kernel refuses both at once */
	} else if (fs->passthrough) {
		fs->passthrough = false;
		log_debug("FUSE passthrough: not offered by the kernel");
	}
#else
	if (fs->passthrough)
		log_debug("FUSE passthrough: not in this build (libfuse < 3.17.1)");
	fs->passthrough = false;
#endif
	if (fs->passthrough)
		log_debug("FUSE passthrough: on");
	if (fs->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		fs->writeback = false;

	conn->max_write = 1 << 20;
	conn->max_readahead = 1 << 20;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->time_gran = 1;
	cowfs_features_at_init(fs, conn); /* last: reports what was settled above */
}

static void op_destroy(void *userdata)
{
	(void)userdata;
}

/* ---- signals ---- */

static void poke_handler(int sig)
{
	(void)sig; /* only interrupts a blocked read(2) */
}

struct signal_ctx {
	struct cowfs *fs;
	sigset_t set;
};

static void *signal_thread(void *arg)
{
	struct signal_ctx *ctx = arg;
	struct cowfs *fs = ctx->fs;
	int sig;
	sigset_t usr1;

	/* SIGUSR1 is for waking workers (cowfs-loop.c), never this thread. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);

	if (sigwait(&ctx->set, &sig) != 0)
		return NULL;
	log_info("signal %d: unmounting %s", sig, fs->mountpoint);
	/* A plain unmount makes the kernel flush dirty pages through the
	 * still-running workers; the loop then ends by itself. */
	if (umount2(fs->mountpoint, UMOUNT_NOFOLLOW) == 0)
		return NULL;
	/* Busy: flush what we can, then detach and stop. */
	int fd = open(fs->mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
	fd = openat(fs->layers[0].root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
	fuse_session_exit(fs->se);
	umount2(fs->mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW);
	kill(getpid(), SIGUSR1); /* wake a worker so the loop notices */
	return NULL;
}

static int start_signal_thread(struct cowfs *fs, struct signal_ctx *ctx, pthread_t *tid)
{
	struct sigaction sa = { .sa_handler = poke_handler };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL); /* no SA_RESTART: reads get EINTR */
	signal(SIGPIPE, SIG_IGN);

	ctx->fs = fs;
	sigemptyset(&ctx->set);
	sigaddset(&ctx->set, SIGTERM);
	sigaddset(&ctx->set, SIGINT);
	sigaddset(&ctx->set, SIGHUP);
	/* Blocked in every thread created from here on. */
	pthread_sigmask(SIG_BLOCK, &ctx->set, NULL);
	return pthread_create(tid, NULL, signal_thread, ctx);
}

/* ---- main ---- */

/* The daemon holds a descriptor per layer for every node the kernel knows:
 * a walk of a Debian tree alone is thousands.  The soft limit a root shell
 * or a service starts with (1024 on Debian) would make lookups fail with
 * EMFILE; raise it to the hard limit, which needs no privilege. */
static void raise_nofile_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t soft = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("cannot raise the open-file limit from %llu to %llu: %s", (unsigned long long)soft,
			 (unsigned long long)rl.rlim_max, strerror(errno));
}

static char *build_fuse_opts(const struct cowfs_options *o, bool io_uring)
{
	/* allow_other: containers run many uids; default_permissions: the
	 * kernel checks permissions exactly as on any local filesystem. */
	const char *base = "fsname=cowfs,subtype=cowfs,default_permissions,allow_other,suid,dev";
	char uring[64] = "";
	if (io_uring) /* libfuse's session options (cowfs-loop.c on the depth) */
		snprintf(uring, sizeof(uring), ",io_uring,io_uring_q_depth=%d", COWFS_URING_QUEUE_DEPTH);
	size_t len = strlen(base) + strlen(uring) + (o->fuse_opts ? strlen(o->fuse_opts) + 1 : 0) + 1;
	char *s = malloc(len);
	if (s)
		snprintf(s, len, "%s%s%s%s", base, uring, o->fuse_opts ? "," : "", o->fuse_opts ? o->fuse_opts : "");
	return s;
}

/* io_uring=1, or by default where the kernel offers it (the fuse module's
 * enable_uring: a host decision, see corral host setup), and only with a
 * libfuse that has it. */
static bool want_io_uring(const struct cowfs_options *o)
{
	if (!o->io_uring || !cowfs_libfuse_io_uring())
		return false;
	if (cowfs_kernel_io_uring() > 0)
		return true;
	if (o->io_uring > 0)
		log_info("io_uring asked for, but the kernel does not offer it "
			 "(/sys/module/fuse/parameters/enable_uring): serving /dev/fuse");
	return false;
}

int main(int argc, char **argv)
{
	struct cowfs_options opts;
	struct cowfs fs = { .work_fd = -1, .proc_fd = -1 };
	struct fuse_lowlevel_ops ops = { .init = op_init, .destroy = op_destroy };
	cleanup_free char *real_mnt = NULL;
	cleanup_free char *fuse_opts = NULL;
	int ret = 1;

	int r = cowfs_options_parse(argc, argv, &opts);
	if (r == 2)
		cowfs_print_version(stdout);
	if (r != 0) {
		cowfs_options_release(&opts);
		return r > 0 ? 0 : 2;
	}
	log_init("cowfs", opts.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, 0);
	raise_nofile_limit();
	if (check_mountpoint(opts.mountpoint, &real_mnt) < 0)
		goto out_opts;
	if (setup_layers(&fs, &opts, &real_mnt) < 0)
		goto out_opts;
	fs.mountpoint = real_mnt;
	fs.writeback = opts.writeback;
	fs.passthrough = opts.passthrough;
	fs.share_base = opts.share_base;
	fs.sync_copy_up = opts.sync_copy_up;
	fs.acl = opts.acl;
	fs.entry_timeout = opts.timeout;
	fs.quota_bytes = opts.quota_bytes;
	fs.quota_inodes = opts.quota_inodes;
	fs.idshift_base = opts.idshift_base;
	fs.idshift_size = opts.idshift_size;
	fs.read_bps.per_second = opts.read_bps;
	fs.write_bps.per_second = opts.write_bps;
	fs.read_iops.per_second = opts.read_iops;
	fs.write_iops.per_second = opts.write_iops;
	fs.io_uring_wanted = want_io_uring(&opts);
	fs.status_path = opts.status_path;
	fs.store_dir = opts.store;
	fs.store_root = opts.store_root;
	fs.store_create = opts.store_create;
	fs.store_delay = opts.store_delay;
	fs.store_enabled = opts.store != NULL;
	if (fs.store_dir) {
		char msg[1024];
		/* Before mounting: a missing store or a damaged root is one
		 * clear message, not a mount that cannot move anything. */
		if (cowfs_store_check(fs.store_dir, fs.store_root, fs.store_create, msg, sizeof(msg)) < 0) {
			fail("%s", msg);
			goto out_opts;
		}
	}
	pthread_mutex_init(&fs.read_bps.lock, NULL);
	pthread_mutex_init(&fs.write_bps.lock, NULL);
	pthread_mutex_init(&fs.read_iops.lock, NULL);
	pthread_mutex_init(&fs.write_iops.lock, NULL);
	if (fs.quota_bytes || fs.quota_inodes) {
		/* EDQUOT must reach write(2) itself, not a later writeback. */
		fs.writeback = false;
		int qr = quota_scan_upper(&fs);
		if (qr < 0) {
			fail("cannot measure the usage of upper directory '%s': %s", opts.upper, strerror(-qr));
			goto out_opts;
		}
	}
	fs.attr_timeout = opts.timeout;
	if (access("/proc/self/fd", X_OK) < 0) {
		fail("cannot use /proc/self/fd (is /proc mounted?): %s", strerror(errno));
		goto out_opts;
	}
	route_init(&fs);
	if (node_table_init(&fs) < 0 || origin_map_init(&fs) < 0 || setup_root(&fs) < 0) {
		fail("cannot set up the node table: out of memory");
		goto out_opts;
	}
	/* New objects get exactly the mode computed per request. */
	umask(0);
	/* One malloc arena: worker threads allocate little, and separate
	 * arenas would multiply the idle footprint of every container's daemon. */
	mallopt(M_ARENA_MAX, 1);

	cowfs_ops_entry(&ops);
	cowfs_ops_namespace(&ops);
	cowfs_ops_dir(&ops);
	cowfs_ops_file(&ops);
	cowfs_ops_xattr(&ops);

	fuse_opts = build_fuse_opts(&opts, fs.io_uring_wanted);
	char *fargv[] = { argv[0], "-o", fuse_opts, opts.debug ? "-d" : NULL, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(opts.debug ? 4 : 3, fargv);
	fs.se = fuse_session_new(&args, &ops, sizeof(ops), &fs);
	if (!fs.se) {
		fail("cannot create the FUSE session (options: %s)", fuse_opts);
		fuse_opt_free_args(&args);
		goto out_opts;
	}
	if (fuse_session_mount(fs.se, real_mnt) != 0) {
		fail("cannot mount on '%s' (is /dev/fuse available and are you root?)", opts.mountpoint);
		goto out_session;
	}
	if (fuse_daemonize(opts.foreground) != 0) {
		fail("cannot daemonize");
		goto out_unmount;
	}
	if (!opts.foreground)
		log_init("cowfs", LOG_LEVEL_INFO, 1);
	/* Opened after daemonizing: /proc/self must name the serving process. */
	fs.proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs.proc_fd < 0) {
		log_error("cannot open /proc/self/fd: %s", strerror(errno));
		goto out_unmount;
	}

	struct signal_ctx sctx;
	pthread_t sig_tid;
	if (start_signal_thread(&fs, &sctx, &sig_tid) != 0) {
		log_error("cannot start the signal thread");
		goto out_unmount;
	}
	if (fs.status_path && cowfs_status_start(&fs) < 0) {
		log_error("cannot start the status thread");
		pthread_cancel(sig_tid);
		pthread_join(sig_tid, NULL);
		goto out_unmount;
	}
	/* After daemonizing: the mover is a thread of the serving process. */
	if (fs.store_dir) {
		int sr = cowfs_store_start(&fs);
		if (sr < 0) {
			log_error("cannot start moving files into the store %s: %s", fs.store_dir, strerror(-sr));
			cowfs_status_stop(&fs);
			pthread_cancel(sig_tid);
			pthread_join(sig_tid, NULL);
			goto out_unmount;
		}
	}
	ret = cowfs_loop(&fs, opts.threads) == 0 ? 0 : 1;
	/* Every request is answered and the mount is gone: nothing queues
	 * files any more. */
	cowfs_store_stop(&fs);
	cowfs_status_stop(&fs);
	pthread_cancel(sig_tid);
	pthread_join(sig_tid, NULL);
out_unmount:
	fuse_session_unmount(fs.se);
out_session:
	fuse_session_destroy(fs.se);
	fuse_opt_free_args(&args); /* fuse_session_new parsed them into copies */
out_opts:
	teardown(&fs);
	cowfs_options_release(&opts);
	return ret;
}
