#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "kv.h"
#include "state.h"
#include "cgroup/cgroup.h"

/* Parsed option: set once by the CLI before any command runs. */
static const char *root_override;

void state_set_root(const char *root)
{
	/* A copy: the container's init overwrites corral's argv. */
	root_override = strdup(root);
}

const char *state_root(void)
{
	if (root_override)
		return root_override;
	const char *env = getenv("CORRAL_ROOT");
	return env && *env ? env : STATE_ROOT_DEFAULT;
}

int state_path(char *buf, size_t len, const char *name, const char *leaf, struct corral_error *err)
{
	int n = leaf ? snprintf(buf, len, "%s/containers/%s/%s", state_root(), name, leaf)
		     : snprintf(buf, len, "%s/containers/%s", state_root(), name);
	if (n < 0 || (size_t)n >= len)
		return err_plain(err, ENAMETOOLONG, "state path for '%s' is too long", name);
	return 0;
}

int state_store_dir(char *buf, size_t len, struct corral_error *err)
{
	int n = snprintf(buf, len, "%s/store", state_root());
	if (n < 0 || (size_t)n >= len)
		return err_plain(err, ENAMETOOLONG, "state root path too long");
	return 0;
}

int state_store_root(char *buf, size_t len, const char *name, struct corral_error *err)
{
	int n = snprintf(buf, len, "container.%s", name);
	if (n < 0 || (size_t)n >= len)
		return err_plain(err, ENAMETOOLONG, "store root name for '%s' is too long", name);
	return 0;
}

/* Checks that `fd` is a directory owned by us and makes it 0700 if group
 * or others have any access; *loosened says it had to. */
static int tighten_dir(int fd, const char *what, bool *loosened, struct corral_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(err, errno, "stat %s", what);
	if (!S_ISDIR(st.st_mode))
		return err_plain(err, ENOTDIR, "%s is not a directory", what);
	/* Whoever owns it can open it up again (and rename what is in it). */
	if (st.st_uid != geteuid())
		return err_plain(err, EPERM,
				 "%s belongs to uid %u: refusing to keep containers where another user can reach them",
				 what, (unsigned)st.st_uid);
	if (!(st.st_mode & 077))
		return 0;
	if (fchmod(fd, 0700) < 0)
		return err_set(err, errno, "make %s private (0700)", what);
	if (loosened)
		*loosened = true;
	return 0;
}

/* tighten_dir() on `name` below dirfd, never through a symlink; a missing
 * directory is fine (not made yet). */
static int tighten_at(int dirfd, const char *name, const char *what, bool *loosened, struct corral_error *err)
{
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : err_set(err, errno, "open %s", what);
	return tighten_dir(fd, what, loosened, err);
}

int state_secure_root(struct corral_error *err)
{
	const char *root = state_root();
	char what[PATH_MAX + 32];
	cleanup_close int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		int r = mkdir_p(root, 0700, err);
		if (r < 0)
			return err_wrap(err, "create the state root");
		fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0)
		return err_set(err, errno, "open the state root %s", root);
	bool loosened = false;
	snprintf(what, sizeof(what), "the state root %s", root);
	int r = tighten_dir(fd, what, &loosened, err);
	snprintf(what, sizeof(what), "%s/containers", root);
	if (r == 0)
		r = tighten_at(fd, "containers", what, &loosened, err);
	snprintf(what, sizeof(what), "%s/templates", root);
	if (r == 0)
		r = tighten_at(fd, "templates", what, &loosened, err);
	if (r < 0 || !loosened)
		return r;
	/* A root an older corral made: its container directories were
	 * 0711 as well.  Once, here, rather than a walk on every command. */
	int cfd = openat(fd, "containers", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cfd < 0)
		return errno == ENOENT ? 0 : err_set(err, errno, "open %s/containers", root);
	cleanup_dir DIR *d = fdopendir(cfd);
	if (!d) {
		close(cfd);
		return err_set(err, errno, "read %s/containers", root);
	}
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			snprintf(what, sizeof(what), "%s/containers/%s", root, de->d_name);
			r = tighten_at(dirfd(d), de->d_name, what, NULL, err);
			if (r < 0 && r != -ENOTDIR && r != -ELOOP)
				return r;
		}
	return 0;
}

int state_secure_container(const char *name, struct corral_error *err)
{
	char path[PATH_MAX];
	int r = state_path(path, sizeof(path), name, NULL, err);
	if (r < 0)
		return r;
	return tighten_at(AT_FDCWD, path, path, NULL, err);
}

const char *state_instance_name(const char *name, char *buf, size_t len)
{
	const char *root = state_root();
	if (!strcmp(root, STATE_ROOT_DEFAULT)) {
		snprintf(buf, len, "%s", name);
		return buf;
	}
	uint32_t h = 2166136261u; /* FNV-1a of the root path */
	for (const char *p = root; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	snprintf(buf, len, "%s.%08x", name, h);
	return buf;
}

void state_init(struct container_state *st)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->status, sizeof(st->status), "created");
	st->oom_kills = -1;
}

static int start_time(const struct kv_line *kv, unsigned long long *ret, struct corral_error *err)
{
	uint64_t v;
	int r = kv_u64(kv, &v, err);
	if (r == 0)
		*ret = v;
	return r;
}

static int state_apply_line(const struct kv_line *kv, void *arg, struct corral_error *err)
{
	struct container_state *st = arg;
	const char *key = kv->key;
	if (!strcmp(key, "init_pid"))
		return kv_pid(kv, &st->init_pid, err);
	if (!strcmp(key, "init_start"))
		return start_time(kv, &st->init_start, err);
	if (!strcmp(key, "monitor_pid"))
		return kv_pid(kv, &st->monitor_pid, err);
	if (!strcmp(key, "monitor_start"))
		return start_time(kv, &st->monitor_start, err);
	if (!strcmp(key, "cowfs_pid"))
		return kv_pid(kv, &st->cowfs_pid, err);
	if (!strcmp(key, "cowfs_start"))
		return start_time(kv, &st->cowfs_start, err);
	if (!strcmp(key, "status")) {
		if (strcmp(kv->value, "created") && strcmp(kv->value, "running") && strcmp(kv->value, "exited"))
			return err_plain(err, EINVAL, "status: '%.100s' is not created, running or exited", kv->value);
		return kv_str(kv, st->status, sizeof(st->status), err);
	}
	if (!strcmp(key, "exit_code"))
		return kv_int(kv, &st->exit_code, err);
	if (!strcmp(key, "started_at") || !strcmp(key, "finished_at")) {
		int64_t t;
		int r = kv_i64(kv, &t, err);
		if (r == 0)
			*(key[0] == 's' ? &st->started_at : &st->finished_at) = (time_t)t;
		return r;
	}
	if (!strcmp(key, "address"))
		return kv_str(kv, st->address, sizeof(st->address), err);
	if (!strcmp(key, "oom_kills"))
		return kv_i64(kv, &st->oom_kills, err);
	return 0;	/* a key a newer corral wrote: the state is a hint */
}

int state_load(const char *name, struct container_state *st, struct corral_error *err)
{
	char path[PATH_MAX];
	cleanup_free char *text = NULL;
	size_t len;
	state_init(st);
	int r = state_path(path, sizeof(path), name, "state", err);
	if (r < 0)
		return r;
	r = file_read_all(path, &text, &len, err);
	if (r == -ENOENT)
		return 0; /* created, never started */
	if (r < 0)
		return r;
	/* Written atomically, so never torn: anything malformed is damage,
	 * refused whole -- no pid read from it is ever signalled. */
	r = kv_parse(text, len, path, state_apply_line, st, err);
	if (r < 0)
		state_init(st);
	return r;
}

int state_save(const char *name, const struct container_state *st, struct corral_error *err)
{
	char path[PATH_MAX], buf[1024];
	int r = state_path(path, sizeof(path), name, "state", err);
	if (r < 0)
		return r;
	int n = snprintf(buf, sizeof(buf),
			 "# corral runtime state (the kernel is the truth: see corral list)\n"
			 "status = %s\ninit_pid = %d\ninit_start = %llu\nmonitor_pid = %d\nmonitor_start = %llu\n"
			 "cowfs_pid = %d\ncowfs_start = %llu\nexit_code = %d\nstarted_at = %lld\nfinished_at = %lld\n"
			 "oom_kills = %lld\n%s%s%s",
			 st->status, (int)st->init_pid, st->init_start, (int)st->monitor_pid, st->monitor_start,
			 (int)st->cowfs_pid, st->cowfs_start, st->exit_code, (long long)st->started_at,
			 (long long)st->finished_at, (long long)st->oom_kills, st->address[0] ? "address = " : "", st->address,
			 st->address[0] ? "\n" : "");
	return file_write_atomic(path, buf, (size_t)n, 0644, err);
}

unsigned long long proc_start_time(pid_t pid)
{
	char path[64], buf[1024];
	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The command name may hold spaces and ')': fields resume after the
	 * last ')'.  starttime is field 22; we are at field 3. */
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	p += 2;
	if (*p == 'Z' || *p == 'X')
		return 0; /* a zombie is not running */
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return p ? strtoull(p, NULL, 10) : 0;
}

bool state_init_alive(const struct container_state *st)
{
	return st->init_pid > 0 && st->init_start && proc_start_time(st->init_pid) == st->init_start;
}

const char *state_status(const struct container_state *st)
{
	if (state_init_alive(st))
		return "running";
	if (!strcmp(st->status, "running"))
		return "exited";
	return st->status;
}

bool state_cowfs_alive(const struct container_state *st)
{
	return st->cowfs_pid > 0 && st->cowfs_start && proc_start_time(st->cowfs_pid) == st->cowfs_start;
}

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

/* statfs of a FUSE mount is a request to its daemon: one whose daemon is
 * gone answers ENOTCONN at once, but a live daemon that is slow (I/O
 * pacing, a stopped process) could hold `corral list` for as long.  The
 * probe runs in a thread that is waited for a bounded time (and joined
 * when it answered); the last of the two to finish frees it. */
struct mount_probe {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int refs;	/* lock */
	bool done;	/* lock */
	int result;	/* lock: 0 or -errno */
	long f_type;	/* lock */
	char path[PATH_MAX];
};

static void probe_put(struct mount_probe *p)
{
	pthread_mutex_lock(&p->lock);
	int left = --p->refs;
	pthread_mutex_unlock(&p->lock);
	if (left == 0) {
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->cond);
		free(p);
	}
}

static void *probe_run(void *arg)
{
	struct mount_probe *p = arg;
	struct statfs sf;
	int r = statfs(p->path, &sf) < 0 ? -errno : 0;
	pthread_mutex_lock(&p->lock);
	p->result = r;
	p->f_type = r == 0 ? (long)sf.f_type : 0;
	p->done = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	probe_put(p);
	return NULL;
}

/* 0 and the filesystem type of `path`, -ENOTCONN for a FUSE mount whose
 * daemon is gone, -ETIMEDOUT if no answer came within timeout_ms. */
static int probe_mount(const char *path, int timeout_ms, long *ret_type)
{
	struct mount_probe *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	snprintf(p->path, sizeof(p->path), "%s", path);
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	p->refs = 2;
	pthread_t tid;
	if (pthread_create(&tid, NULL, probe_run, p) != 0) {
		p->refs = 1;
		probe_put(p);
		return -EAGAIN;
	}
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->lock);
	while (!p->done && pthread_cond_timedwait(&p->cond, &p->lock, &until) == 0)
		;
	bool done = p->done;
	int r = done ? p->result : -ETIMEDOUT;
	*ret_type = p->f_type;
	pthread_mutex_unlock(&p->lock);
	/* Answered: wait for the thread to be gone, so the caller is single
	 * threaded again (setns into a mount namespace refuses a process
	 * whose threads share its filesystem context).  Not answered: leave
	 * it behind; it frees the probe when statfs returns. */
	if (done)
		pthread_join(tid, NULL);
	else
		pthread_detach(tid);
	probe_put(p);
	return r;
}

const char *state_check(const char *name, const struct container_state *st, char *reason, size_t len)
{
	char dummy[8], rootfs[PATH_MAX];
	if (!reason) {
		reason = dummy;
		len = sizeof(dummy);
	}
	reason[0] = '\0';
	if (!state_init_alive(st))
		return state_status(st);
	if (st->cowfs_pid > 0 && st->cowfs_start && !state_cowfs_alive(st)) {
		snprintf(reason, len, "cowfs daemon (pid %d) is gone: the root filesystem is disconnected",
			 (int)st->cowfs_pid);
		return "broken";
	}
	if (state_path(rootfs, sizeof(rootfs), name, "rootfs", NULL) < 0)
		return "running";
	long type = 0;
	int r = probe_mount(rootfs, 500, &type);
	if (r == -ENOTCONN) {
		snprintf(reason, len, "the root filesystem at %s is disconnected (ENOTCONN): its cowfs daemon "
			 "no longer serves it", rootfs);
		return "broken";
	}
	if (r == 0 && type != FUSE_SUPER_MAGIC) {
		snprintf(reason, len, "the root filesystem is no longer mounted at %s", rootfs);
		return "broken";
	}
	/* A slow answer is not a dead daemon: trust the pid check. */
	struct cgroup *cg;
	char inst[CORRAL_INSTANCE_NAME_MAX];
	bool frozen = false;
	if (cgroup_open(state_instance_name(name, inst, sizeof(inst)), &cg, NULL) == 0) {
		cgroup_frozen(cg, &frozen, NULL);
		cgroup_free(cg);
	}
	return frozen ? "paused" : "running";
}

struct features_parse {
	struct cowfs_features *f;
	int pid;
};

static int features_apply_line(const struct kv_line *kv, void *arg, struct corral_error *err)
{
	struct features_parse *p = arg;
	if (!strcmp(kv->key, "pid"))
		return kv_pid(kv, &p->pid, err);
	if (!strcmp(kv->key, "libfuse"))
		return kv_str(kv, p->f->libfuse, sizeof(p->f->libfuse), err);
	if (!strcmp(kv->key, "passthrough"))
		return kv_bool(kv, &p->f->passthrough, err);
	if (!strcmp(kv->key, "io_uring"))
		return kv_bool(kv, &p->f->io_uring, err);
	if (!strcmp(kv->key, "splice"))
		return kv_bool(kv, &p->f->splice, err);
	if (!strcmp(kv->key, "writeback"))
		return kv_bool(kv, &p->f->writeback, err);
	if (!strcmp(kv->key, "share_base"))
		return kv_bool(kv, &p->f->share_base, err);
	return 0; /* a newer cowfs may report more */
}

int state_cowfs_features(const char *name, const struct container_state *st, struct cowfs_features *ret,
			 struct corral_error *err)
{
	char path[PATH_MAX];
	cleanup_free char *text = NULL;
	size_t len;
	struct cowfs_features f = { 0 };
	struct features_parse p = { .f = &f, .pid = 0 };
	if (!state_cowfs_alive(st))
		return -ENOENT;
	int r = state_path(path, sizeof(path), name, STATE_COWFS_STATUS, err);
	if (r < 0)
		return r;
	r = file_read_all(path, &text, &len, err);
	if (r < 0)
		return r;
	r = kv_parse(text, len, path, features_apply_line, &p, err);
	if (r < 0)
		return r;
	if (p.pid != st->cowfs_pid)
		return -ENOENT;
	*ret = f;
	return 0;
}

int state_lock_container(const char *name)
{
	char path[PATH_MAX];
	int r = state_path(path, sizeof(path), name, "lock", NULL);
	if (r < 0)
		return r;
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR) {
			r = -errno;
			close(fd);
			return r;
		}
	return fd;
}

int state_clean_leftovers(const char *name, struct corral_error *err)
{
	char path[PATH_MAX];
	int r = state_path(path, sizeof(path), name, NULL, err);
	if (r < 0)
		return r;
	cleanup_close int cdir = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cdir < 0)
		return err_set(err, errno, "opening %s", path);
	static const char *const staging[] = { STATE_UPPER_STAGING, STATE_WORK_STAGING };
	for (size_t i = 0; i < 2; i++) {
		r = remove_tree_at(cdir, staging[i]);
		if (r < 0 && r != -ENOENT)
			return err_set(err, -r, "removing the leftover %s/%s of a rollback", path, staging[i]);
	}
	/* Mode as create makes it. */
	if (mkdirat(cdir, "work", 0755) < 0 && errno != EEXIST)
		return err_set(err, errno, "making %s/work", path);
	return 0;
}

int state_load_running(const char *name, struct container_state *st, struct corral_error *err)
{
	char dir[PATH_MAX];
	int r = state_path(dir, sizeof(dir), name, NULL, err);
	if (r < 0)
		return r;
	if (access(dir, F_OK) < 0)
		return err_plain(err, ENOENT, "no such container: %s", name);
	if (state_load(name, st, err) < 0 || !state_init_alive(st))
		return err_plain(err, ESRCH, "container %s is not running", name);
	return 0;
}
