#include "config.h"

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup/cgroup.h"
#include "child.h"
#include "cleanup.h"
#include "exec-user.h"
#include "console-log.h"
#include "fileio.h"
#include "net/net.h"
#include "pty.h"
#include "rootfs.h"
#include "security/security.h"
#include "start.h"
#include "store/store.h"
#include "container/state.h"
#include "template/template.h"
#include "container/userns-range.h"

#ifndef CORRAL_COWFS_PATH
#define CORRAL_COWFS_PATH "/usr/local/bin/cowfs"
#endif

/* What one start hands to every step, worked out once: the container's
 * configuration, the name its cgroup and network go by, the cowfs program,
 * and the cgroup itself -- created once, and given as a handle to the
 * cowfs child and to the container's child, never found again by name. */
struct start_ctx {
	const struct container_config *c;
	char inst[CORRAL_INSTANCE_NAME_MAX]; /* state_instance_name() of c->name */
	const char *cowfs;	/* the cowfs binary */
	struct cgroup *cg;	/* bring_up: from creation to the running init */
	const struct exec_options *cmd; /* start_options' */
};

/* CORRAL_DEBUG_TIMING=1: phase timestamps on stderr, to see where a start
 * spends its time. */
static void phase(const char *what)
{
	static struct timespec t0;
	static int enabled = -1;
	if (enabled < 0)
		enabled = getenv("CORRAL_DEBUG_TIMING") != NULL;
	if (!enabled)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!t0.tv_sec)
		t0 = now;
	fprintf(stderr, "corral: %8.3f ms [%d] %s\n",
		(double)(now.tv_sec - t0.tv_sec) * 1e3 + (double)(now.tv_nsec - t0.tv_nsec) / 1e6, (int)getpid(), what);
}

/* Set once at startup from main's argv (a parsed option, in effect). */
static char *cmdline_area;
static size_t cmdline_len;

void start_set_cmdline_area(int argc, char **argv)
{
	if (argc < 1)
		return;
	cmdline_area = argv[0];
	cmdline_len = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) + 1 - argv[0]);
}

static void hide_cmdline(void)
{
	static const char title[] = "corral-init";
	if (!cmdline_area || cmdline_len < sizeof(title))
		return;
	memset(cmdline_area, 0, cmdline_len);
	memcpy(cmdline_area, title, sizeof(title));
}

struct child_args {
	const struct container_config *c;
	struct cgroup *cg;	/* the container's, to join (without a user namespace) */
	int view;	/* the container's view of its root (rootfs_open_view) */
	int go_fd;	/* read: parent finished its side */
	int err_fd;	/* write: the verdict pipe (child.h); EOF once the command runs */
	int log_fd;	/* detached: stdout/stderr; -1 = inherit */
	int null_fd;
	int console_sock; /* tty: the pty master goes back through it; else -1 */
	const struct pty_relay *relay; /* foreground without tty: relayed stdio */
	const struct seccomp_program *seccomp;
	bool tty;
	const struct exec_options *cmd; /* run: --user, --env, --workdir */
};

/* The environment of the container's command or init; NULL on failure
 * (err filled). */
static char **container_env(const struct container_config *c, bool tty, const struct exec_options *cmd,
			    struct corral_error *err)
{
	return command_env(c->hostname[0] ? c->hostname : c->name, tty, "/root", cmd ? cmd->env : NULL,
			   cmd ? cmd->nenv : 0, err);
}

/* A booting container's /dev/console, as a machine has one: a pty of
 * the container's own devpts bound there, and the init's stdio.  Its
 * master and one more descriptor of the slave go to the monitor, which
 * relays the console into console.log; holding the slave, the monitor
 * never reads EIO while the init closes and reopens its console.  Runs
 * after pivot_root: /dev is the tmpfs rootfs_enter just made. */
static int boot_console(int sock, struct corral_error *err)
{
	int master, slave;
	int r = pty_open(&master, &slave, err);
	if (r < 0)
		return r;
	char name[64];
	if (ptsname_r(master, name, sizeof(name)) != 0) {
		r = err_set(err, errno, "name the console pty");
		goto out;
	}
	int t = open("/dev/console", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (t < 0 || close(t) < 0 || mount(name, "/dev/console", NULL, MS_BIND, NULL) < 0) {
		r = err_set(err, errno, "bind %s on /dev/console", name);
		goto out;
	}
	if (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0 || pty_send_fd(sock, master) < 0 ||
	    pty_send_fd(sock, slave) < 0)
		r = err_set(err, errno, "hand the console over");
out:
	close(master);
	close(slave);
	return r;
}

/* Runs in the cloned child: the container's side of the setup. */
static void child_setup(struct child_args *a)
{
	struct corral_error err = { 0 };
	const struct container_config *c = a->c;
	char go;

	/* If the monitor dies mid-setup, so do we; nobody may ptrace us. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || prctl(PR_SET_DUMPABLE, 0) < 0 ||
	    prctl(PR_SET_NAME, "corral-init") < 0) {
		err_set(&err, errno, "prctl");
		child_fail(a->err_fd, &err);
	}
	/* Out of the caller's session: the caller's terminal is its
	 * controlling terminal, which a container process could open as
	 * /dev/tty and push input into with TIOCSTI. */
	if (setsid() < 0) {
		err_set(&err, errno, "start a new session");
		child_fail(a->err_fd, &err);
	}
	if (!c->userns) {
		/* Into the container's cgroup by itself, the cheap way (see
		 * cgroup_enter_self); in a user namespace the parent does it. */
		if (cgroup_enter_self(a->cg, false, &err) < 0) {
			err_wrap(&err, "enter the container's cgroup");
			child_fail(a->err_fd, &err);
		}
	}
	if (read(a->go_fd, &go, 1) != 1)
		_exit(1); /* the parent failed and already reported it */
	if (c->userns) {
		if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
			err_set(&err, errno, "become root in the user namespace");
			child_fail(a->err_fd, &err);
		}
	}
	/* The caller's supplementary groups are host groups: kept, they
	 * would open host files of those groups (in a bind, say) to the
	 * container, user namespace or not. */
	if (setgroups(0, NULL) < 0) {
		err_set(&err, errno, "drop the caller's supplementary groups");
		child_fail(a->err_fd, &err);
	}
	/* Now inside the container's cgroup: make that the cgroup root. */
	if (unshare(CLONE_NEWCGROUP) < 0) {
		err_set(&err, errno, "new cgroup namespace");
		child_fail(a->err_fd, &err);
	}
	const char *hn = c->hostname[0] ? c->hostname : c->name;
	if (sethostname(hn, strlen(hn)) < 0) {
		err_set(&err, errno, "set hostname %s", hn);
		child_fail(a->err_fd, &err);
	}
	if (c->net.mode != NET_HOST && net_setup_loopback(&err) < 0)
		child_fail(a->err_fd, &err);
	if (rootfs_enter(a->view, c, NULL, &err) < 0) {
		err_wrap(&err, "prepare the root filesystem");
		child_fail(a->err_fd, &err);
	}
	if (a->log_fd >= 0) {
		if (dup2(a->null_fd, 0) < 0 || dup2(a->log_fd, 1) < 0 || dup2(a->log_fd, 2) < 0) {
			err_set(&err, errno, "redirect stdio");
			child_fail(a->err_fd, &err);
		}
	}
	if (a->relay && pty_relay_child_stdio(a->relay) < 0) {
		err_set(&err, errno, "attach the relayed stdio");
		child_fail(a->err_fd, &err);
	}
	if (a->console_sock >= 0 && !a->tty) {
		if (boot_console(a->console_sock, &err) < 0)
			child_fail(a->err_fd, &err);
	} else if (a->console_sock >= 0) {
		/* A pty of the container's own devpts; the master goes to the
		 * monitor, which relays it to the caller's terminal. */
		int master, slave;
		if (pty_open(&master, &slave, &err) < 0)
			child_fail(a->err_fd, &err);
		if (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0 ||
		    pty_send_fd(a->console_sock, master) < 0) {
			err_set(&err, errno, "hand the container's terminal over");
			child_fail(a->err_fd, &err);
		}
		close(master);
		close(slave);
	}
	/* No host descriptor survives into the container (CVE-2024-21626):
	 * the init does not exec, so every inherited descriptor above stdio
	 * is closed now, except the error pipe, which the init closes once
	 * the command runs (the parent reads that as success). */
	if (a->err_fd > 3 && syscall(SYS_close_range, 3, a->err_fd - 1, 0) < 0) {
		err_set(&err, errno, "close inherited descriptors");
		child_fail(a->err_fd, &err);
	}
	if (syscall(SYS_close_range, a->err_fd + 1, ~0U, 0) < 0) {
		err_set(&err, errno, "close inherited descriptors");
		child_fail(a->err_fd, &err);
	}
	/* Privileges last: mounts needed CAP_SYS_ADMIN. */
	if (caps_apply(c->caps, &err) < 0)
		child_fail(a->err_fd, &err);
	if (seccomp_program_install(a->seccomp, &err) < 0)
		child_fail(a->err_fd, &err);

	/* Setup is complete.  The container now outlives its monitor: a
	 * killed monitor must not take it down (list/stop/rm still find it
	 * through its pid and start time). */
	if (prctl(PR_SET_PDEATHSIG, 0) < 0) {
		err_set(&err, errno, "prctl");
		child_fail(a->err_fd, &err);
	}
	/* run's --user, --env, --workdir point into corral's command line,
	 * which hide_cmdline wipes: copied first (command_env copies). */
	char **env = container_env(c, a->tty, a->cmd, &err);
	if (!env)
		child_fail(a->err_fd, &err);
	struct exec_options cmd = { 0 };
	if (a->cmd && ((a->cmd->user && !(cmd.user = strdup(a->cmd->user))) ||
		       (a->cmd->workdir && !(cmd.workdir = strdup(a->cmd->workdir))))) {
		err_set(&err, ENOMEM, "copy the command's options");
		child_fail(a->err_fd, &err);
	}
	hide_cmdline();
	/* The error pipe closes with the fork of the command (see init.c),
	 * which the parent reads as success. */
	if (config_boots_init(c))
		container_boot((char **)c->argv, env, a->err_fd);
	_exit(container_init((char **)c->argv, env, a->err_fd, &cmd));
}

static int write_id_map(pid_t pid, const char *file, uint32_t base, uint32_t size, struct corral_error *err)
{
	char path[64], line[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	int n = snprintf(line, sizeof(line), "0 %u %u\n", base, size);
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, line, n) != n)
		return err_set(err, errno, "write %s", path);
	return 0;
}

static int setup_user_ns(pid_t pid, const struct container_config *c, struct corral_error *err)
{
	/* setgroups stays allowed (the kernel's default when the maps are
	 * written by a process with CAP_SETGID over the parent namespace, as
	 * here): programs that drop privileges inside -- apt's _apt sandbox,
	 * su, sshd -- set their supplementary groups and fail without it.
	 * "deny" is for maps written without privilege, where dropping a group
	 * could escape a group-based denial; here every id of the namespace
	 * is the container's own range, as with LXC and podman. */
	int r = write_id_map(pid, "uid_map", c->userns_base, c->userns_size, err);
	if (r == 0)
		r = write_id_map(pid, "gid_map", c->userns_base, c->userns_size, err);
	return r;
}

struct spawn {
	pid_t pid;
	unsigned long long start;
	int console; /* pty master with a tty or a booting container's console, else -1 */
	int console_slave; /* a booting container's console: the monitor's hold on it, else -1 */
	char address[48]; /* bridge mode */
	int log_pipe; /* detached: the container's stdout and stderr, else -1 */
	pid_t cowfs_pid; /* the root's daemon, 0 if not known */
	unsigned long long cowfs_start;
};

/* A detached container that boots an init gets a console pty
 * (boot_console) instead of the log pipe. */
static bool boots_with_console(const struct container_config *c, int log_fd, const struct pty_relay *relay)
{
	return log_fd < 0 && !relay && config_boots_init(c);
}

/* Bridge mode: the configuration with one more read-only bind, of the
 * host-owned resolv.conf naming the bridge's DNS (net_resolv_conf_path,
 * written by net_setup_host before the child goes on) over
 * /etc/resolv.conf, bound as --mount binds are (never through a symlink
 * of the container's tree: a symlinked /etc/resolv.conf fails the
 * start).  Without room for one more bind the container keeps its own. */
static const struct container_config *with_resolv_conf(const struct start_ctx *ctx, struct container_config *copy)
{
	const struct container_config *c = ctx->c;
	if (c->net.mode != NET_BRIDGE || c->nmounts >= CONFIG_MAX_MOUNTS)
		return c;
	*copy = *c;
	struct bind_mount *m = &copy->mounts[copy->nmounts];
	if (net_resolv_conf_path(&c->net, ctx->inst, m->source, sizeof(m->source), NULL) < 0)
		return c;
	snprintf(m->target, sizeof(m->target), "/etc/resolv.conf");
	m->readonly = true;
	copy->nmounts++;
	return copy;
}

/* Clones the container's init and drives its setup. */
static int spawn_container(const struct start_ctx *ctx, const char *rootfs, int log_fd, bool tty,
			   const struct pty_relay *relay, struct spawn *ret, struct corral_error *err)
{
	const struct container_config *c = ctx->c;
	cleanup_close int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	/* Built (or read from the cache) here, on the host side, so the
	 * container's init never runs libseccomp. */
	struct seccomp_program prog;
	int pr = seccomp_program_get(c->seccomp, c->caps, state_root(), &prog, err);
	if (pr < 0)
		return pr;
	/* The root: see rootfs.h for why the child finds it through its
	 * working directory. */
	cleanup_close int mnt_root = -1, view = -1;
	cleanup_close int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	pr = rootfs_open_view(rootfs, &mnt_root, &view, err);
	if (pr < 0)
		return seccomp_program_release(&prog), pr;
	int console[2] = { -1, -1 };
	ret->console = -1;
	ret->address[0] = '\0';
	ret->console_slave = -1;
	if ((tty || boots_with_console(c, log_fd, relay)) &&
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, console) < 0)
		return seccomp_program_release(&prog), err_set(err, errno, "socketpair");
	cleanup_close int console_parent = console[0], console_child = console[1];
	/* "go": the parent's side (cgroup, maps, network) is done. */
	int go[2];
	if (pipe2(go, O_CLOEXEC) < 0) {
		seccomp_program_release(&prog);
		return err_set(err, errno, "pipe");
	}
	cleanup_close int go_rd = go[0], go_wr = go[1];
	unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
	if (c->net.mode != NET_HOST)
		flags |= CLONE_NEWNET;
	if (c->userns)
		flags |= CLONE_NEWUSER;
	/* The child's working directory names its root (see rootfs.h); ours
	 * is put back at once. */
	if (fchdir(mnt_root) < 0) {
		int e = errno;
		seccomp_program_release(&prog);
		return err_set(err, e, "enter %s", rootfs);
	}
	/* The child's copy of the configuration (see with_resolv_conf). */
	struct container_config bridged;
	cleanup_child struct child ch = CHILD_INIT;
	pid_t pid = child_start(&ch, flags, "clone the container's namespaces", err);
	if (pid != 0 && (cwd < 0 || fchdir(cwd) < 0))
		(void)!chdir("/");
	if (pid < 0) {
		seccomp_program_release(&prog);
		return pid;
	}
	if (pid == 0) {
		close(go_wr);
		if (console_parent >= 0)
			close(console_parent);
		struct child_args a = { .c = with_resolv_conf(ctx, &bridged), .cg = ctx->cg, .view = view, .go_fd = go_rd, .err_fd = ch.fd,
					.log_fd = log_fd, .null_fd = null_fd, .console_sock = console_child,
					.relay = relay, .seccomp = &prog, .tty = tty, .cmd = ctx->cmd };
		child_setup(&a);
		_exit(1);
	}
	close(take_fd(go_rd));
	seccomp_program_release(&prog);
	if (console_child >= 0)
		close(take_fd(console_child));

	int r = 0;
	if (c->userns)
		r = cgroup_enter(ctx->cg, pid, err);
	/* systemd manages a cgroup2 subtree of its own: the container's v2
	 * directory, entered before the child makes its cgroup namespace, so
	 * that is all it sees (rootfs.c mounts it). */
	if (r == 0 && c->boot == BOOT_SYSTEMD)
		r = cgroup_delegate(ctx->cg, pid, c->userns ? c->userns_base : 0, err);
	if (r == 0 && c->userns)
		r = setup_user_ns(pid, c, err);
	if (r == 0 && c->net.mode == NET_BRIDGE) {
		struct net_config net = c->net;
		/* The names the bridge's DNS answers for it. */
		snprintf(net.dns_names, sizeof(net.dns_names), "%s %s", c->hostname[0] ? c->hostname : c->name,
			 c->name);
		r = mkdir_p(STATE_NET_DIR, 0700, err);
		if (r == 0)
			r = net_setup_host(STATE_NET_DIR, ctx->inst, pid, &net, err);
		if (r == 0)
			snprintf(ret->address, sizeof(ret->address), "%s", net.address);
	}
	phase("parent side set up");
	if (r == 0 && write(go_wr, "g", 1) != 1)
		r = err_set(err, errno, "signal the container to continue");
	close(take_fd(go_wr));
	/* The init closes the pipe once the command runs (init.c); a
	 * verdict is the setup's failure.  On failure the scoped child is
	 * killed and reaped. */
	enum child_verdict v;
	if (r == 0)
		r = child_wait_verdict(&ch, &v, err);
	if (r == 0 && console_parent >= 0) {
		ret->console = pty_recv_fd(console_parent);
		if (ret->console < 0)
			r = err_set(err, -ret->console, "receive the container's terminal");
	}
	if (r == 0 && console_parent >= 0 && !tty) {
		ret->console_slave = pty_recv_fd(console_parent);
		if (ret->console_slave < 0)
			r = err_set(err, -ret->console_slave, "receive the container's console");
	}
	if (r < 0)
		return r;
	ret->pid = take_child_pid(&ch);
	ret->start = proc_start_time(pid);
	return 0;
}

static int container_dirs(const char *name, char *upper, char *work, char *rootfs, char *log,
			  struct corral_error *err)
{
	int r = state_path(upper, PATH_MAX, name, "upper", err);
	if (r == 0)
		r = state_path(work, PATH_MAX, name, "work", err);
	if (r == 0)
		r = state_path(rootfs, PATH_MAX, name, "rootfs", err);
	if (r == 0)
		r = state_path(log, PATH_MAX, name, "console.log", err);
	return r;
}

/* The monitor (when the container exits) and stop/rm may tear down at the
 * same moment: an exclusive lock on <container>/lock makes the second wait
 * and then find everything already gone. */
static int teardown_lock(const char *name)
{
	int fd = state_lock_container(name);
	return fd < 0 ? -1 : fd;
}

/* container_teardown, with the instance name already known. */
static int teardown(const char *name, const char *inst, struct corral_error *err)
{
	char upper[PATH_MAX], work[PATH_MAX], rootfs[PATH_MAX], log[PATH_MAX], cfgpath[PATH_MAX];
	struct container_config c;
	int r = container_dirs(name, upper, work, rootfs, log, err);
	if (r < 0)
		return r;
	cleanup_close int lock = teardown_lock(name);
	/* Unmount first: the cowfs daemon flushes and exits by itself. */
	r = rootfs_unmount(rootfs, err);
	if (r < 0)
		return r;
	state_path(cfgpath, sizeof(cfgpath), name, "config", NULL);
	if (config_load(cfgpath, &c, NULL) == 0) {
		if (c.net.mode == NET_BRIDGE)
			net_teardown(STATE_NET_DIR, inst, &c.net, NULL);
		config_release(&c);
	}
	struct cgroup *cg;
	r = cgroup_open(inst, &cg, NULL);
	if (r == 0) {
		r = cgroup_kill_all(cg, err);
		if (r == 0)
			r = cgroup_destroy(cg, err);
		cgroup_free(cg);
		/* Gone under us (another teardown that did not hold the
		 * lock, e.g. after the directory was removed): done. */
		if (r == -ENOENT || r == -ENODEV)
			r = 0;
		if (r < 0)
			return r;
	}
	return 0;
}

int container_teardown(const char *name, struct corral_error *err)
{
	char inst[CORRAL_INSTANCE_NAME_MAX];
	return teardown(name, state_instance_name(name, inst, sizeof(inst)), err);
}

static int wait_for_exit(pid_t pid, int *ret_code)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	*ret_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	return 0;
}

/* Before the teardown: the cgroup still holds its OOM kill count. */
static void record_exit(const char *name, const char *inst, int code)
{
	struct container_state st;
	if (state_load(name, &st, NULL) < 0)
		return;
	struct cgroup *cg;
	struct cgroup_stats cs = { 0 };
	st.oom_kills = -1;
	if (cgroup_open(inst, &cg, NULL) == 0) {
		if (cgroup_stats(cg, &cs, NULL) == 0)
			st.oom_kills = (int64_t)cs.oom_kills;
		cgroup_free(cg);
	}
	snprintf(st.status, sizeof(st.status), "exited");
	st.exit_code = code;
	st.finished_at = time(NULL);
	state_save(name, &st, NULL);
}

/* This process's children, from /proc (corral is single-threaded). */
static size_t list_children(pid_t *buf, size_t max)
{
	char path[64], text[4096];
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)gettid());
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
	size_t count = 0;
	if (n <= 0)
		return 0;
	text[n] = '\0';
	for (char *p = text, *end; count < max; p = end) {
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		buf[count++] = (pid_t)v;
	}
	return count;
}

/* Mounts the container's root and learns its cowfs daemon's pid and start
 * time, so that list/inspect/stats can tell when the daemon is gone (the
 * container then runs on a dead root).  The daemon detaches from its
 * parent, so for the length of the mount this process is a child
 * subreaper: the daemon is re-parented to it and shows up as a new child.
 * It stays our child; if it dies, it is a zombie (which proc_start_time
 * counts as gone) until this process exits. */
static int mount_root(const struct rootfs_cowfs *m, const struct container_config *c, struct spawn *sp,
		      struct corral_error *err)
{
	pid_t before[64], after[64];
	sp->cowfs_pid = 0;
	sp->cowfs_start = 0;
	/* A mount left by an earlier run is not reused: its daemon may be
	 * dead, and its pid is not ours to know.  Its daemon exits once the
	 * detached mount is let go. */
	int r = rootfs_unmount(m->mnt, err);
	if (r < 0)
		return r;
	size_t nb = list_children(before, 64);
	bool reaper = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
	r = rootfs_mount_cowfs(m, c, err);
	if (reaper)
		prctl(PR_SET_CHILD_SUBREAPER, 0);
	if (r < 0 || !reaper)
		return r;
	size_t na = list_children(after, 64);
	for (size_t i = 0; i < na && !sp->cowfs_pid; i++) {
		bool old = false;
		for (size_t j = 0; j < nb && !old; j++)
			old = after[i] == before[j];
		if (!old) {
			sp->cowfs_pid = after[i];
			sp->cowfs_start = proc_start_time(after[i]);
		}
	}
	return 0;
}

/* The host's block store, made (0700) on first use, so that cowfs, which
 * never makes one unless told, finds it; *store its path, *root the
 * container's root name. */
static int open_host_store(const char *name, char *store, size_t store_len, char *root, size_t root_len,
			   struct corral_error *err)
{
	int r = state_store_dir(store, store_len, err);
	if (r == 0)
		r = state_store_root(root, root_len, name, err);
	if (r < 0)
		return r;
	struct store *s;
	r = store_open(store, STORE_CREATE, &s, err);
	if (r < 0)
		return err_wrap(err, "open the block store");
	store_close(s);
	return 0;
}

/* A container set to `store = no` after its files moved would read them
 * as I/O errors: refuse to start it while its root is in the store. */
static int check_no_store_root(const char *name, struct corral_error *err)
{
	char store[PATH_MAX], root[CORRAL_NAME_MAX + 32];
	int r = state_store_dir(store, sizeof(store), err);
	if (r == 0)
		r = state_store_root(root, sizeof(root), name, err);
	if (r < 0)
		return r;
	if (access(store, F_OK) < 0)
		return 0;
	struct store *s;
	if (store_open(store, 0, &s, NULL) < 0)
		return 0; /* no usable store: nothing of this container's in it */
	struct store_root existing;
	r = store_root_read(s, root, &existing, NULL);
	store_close(s);
	if (r == -ENOENT)
		return 0;
	if (r == 0)
		store_root_release(&existing);
	return err_plain(err, EINVAL,
			 "%s has files in the block store (root %s) but its config says store = no: "
			 "set store = yes to start it",
			 name, root);
}

/* Everything from cgroup creation to a running init; undone on failure. */
static int bring_up(struct start_ctx *ctx, bool foreground, bool tty, const struct pty_relay *relay,
		    struct spawn *sp, struct corral_error *err)
{
	const struct container_config *c = ctx->c;
	char upper[PATH_MAX], work[PATH_MAX], rootfs[PATH_MAX], log[PATH_MAX], base[PATH_MAX];
	int r = container_dirs(c->name, upper, work, rootfs, log, err);
	if (r < 0)
		return r;
	/* Closed again if someone opened it up: its tree is about to hold
	 * the container's files. */
	r = state_secure_container(c->name, err);
	if (r < 0)
		return r;
	/* What a crashed rollback left (its staging tree, whichever upper it
	 * holds, is not the container's): removed before the root is mounted,
	 * under the lock a rollback holds. */
	{
		cleanup_close int lock = state_lock_container(c->name);
		if (lock < 0)
			return err_set(err, -lock, "locking container %s", c->name);
		r = state_clean_leftovers(c->name, err);
		if (r < 0)
			return r;
	}
	r = template_rootfs(state_root(), c->template_name, base, sizeof(base), err);
	if (r < 0)
		return r;
	char status[PATH_MAX];
	r = state_path(status, sizeof(status), c->name, STATE_COWFS_STATUS, err);
	if (r < 0)
		return r;
	char store[PATH_MAX], store_root[CORRAL_NAME_MAX + 32];
	r = c->store ? open_host_store(c->name, store, sizeof(store), store_root, sizeof(store_root), err)
		     : check_no_store_root(c->name, err);
	if (r < 0)
		return r;
	/* Which I/O limits cowfs paces and which the cgroup keeps: decided
	 * here, once (see rootfs.h). */
	struct rootfs_io_split io;
	rootfs_split_io_limits(&c->limits, upper, &io);
	phase("bring up");
	r = cgroup_create(ctx->inst, &io.cgroup, &ctx->cg, err);
	if (r < 0)
		return err_wrap(err, "set up the cgroup of '%s'", c->name);
	phase("cgroup created");
	struct rootfs_cowfs m = { .binary = ctx->cowfs, .base = base, .upper = upper, .work = work,
				  .mnt = rootfs, .cgroup = ctx->cg, .io = io.cowfs, .nio = io.ncowfs,
				  .status = status };
	if (c->store) {
		m.store = store;
		m.store_root = store_root;
	}
	r = mount_root(&m, c, sp, err);
	phase("cowfs mounted");
	/* Detached: the container's output goes through a pipe that the
	 * monitor relays into the size-bounded console log (console-log.h);
	 * the container never holds the host file itself. */
	int out[2] = { -1, -1 };
	sp->log_pipe = -1;
	bool boots = config_boots_init(c);
	if (r == 0 && !foreground && !boots && pipe2(out, O_CLOEXEC) < 0)
		r = err_set(err, errno, "pipe for the console log");
	if (r == 0)
		r = spawn_container(ctx, rootfs, out[1], tty, relay, sp, err);
	if (out[1] >= 0)
		close(out[1]);
	if (r == 0)
		sp->log_pipe = out[0];
	else if (out[0] >= 0)
		close(out[0]);
	/* Both children have joined it; the rest goes by the cgroup's own
	 * files (teardown, stats). */
	cgroup_free(ctx->cg);
	ctx->cg = NULL;
	phase("container running");
	if (r < 0)
		teardown(c->name, ctx->inst, NULL);
	return r;
}

static int load_for_start(const char *name, struct container_config *c, struct corral_error *err)
{
	struct container_state st;
	int r = config_load_container(name, c, err);
	if (r < 0)
		return r;
	state_load(name, &st, NULL);
	if (state_init_alive(&st)) {
		config_release(c);
		return err_plain(err, EBUSY, "container %s is already running (pid %d)", name, (int)st.init_pid);
	}
	/* The host-wide registry lives in /run: after a reboot it is rebuilt
	 * here, and a range another container took meanwhile is refused. */
	if (c->userns) {
		r = userns_range_claim(state_root(), name, false, &c->userns_base, &c->userns_size,
				       "remove this container and create it again to get a free range", err);
		if (r < 0) {
			config_release(c);
			return r;
		}
	}
	return 0;
}

static int mark_running(const char *name, const struct spawn *sp, struct corral_error *err)
{
	struct container_state st;
	state_init(&st);
	snprintf(st.status, sizeof(st.status), "running");
	st.init_pid = sp->pid;
	st.init_start = sp->start;
	st.monitor_pid = getpid();
	st.monitor_start = proc_start_time(getpid());
	st.started_at = time(NULL);
	st.cowfs_pid = sp->cowfs_pid;
	st.cowfs_start = sp->cowfs_start;
	snprintf(st.address, sizeof(st.address), "%s", sp->address);
	return state_save(name, &st, err);
}

int container_start(const char *name, const struct start_options *opts, int *ret_exit, struct corral_error *err)
{
	struct container_config c;
	struct spawn sp;
	phase("start");
	int r = load_for_start(name, &c, err);
	if (r < 0)
		return r;
	struct start_ctx ctx = { .c = &c, .cowfs = opts->cowfs ? opts->cowfs : CORRAL_COWFS_PATH, .cmd = opts->cmd };
	state_instance_name(name, ctx.inst, sizeof(ctx.inst));

	if (opts->foreground) {
		/* The container gets a pty with tty, else pipes for those of
		 * our stdin, stdout, stderr that are terminals: never a
		 * descriptor of the caller's terminal. */
		struct pty_relay relay;
		pty_relay_init(&relay);
		if (!opts->tty)
			r = pty_relay_open(&relay, err);
		if (r == 0)
			r = bring_up(&ctx, true, opts->tty, &relay, &sp, err);
		pty_relay_close_child(&relay);
		if (r == 0)
			r = mark_running(name, &sp, err);
		if (r == 0) {
			/* The init is in a session of its own, out of reach of
			 * the terminal: signals for the container come to us
			 * and go on to its init. */
			pty_forward_signals(sp.pid);
			int code = 0;
			if (sp.console >= 0) {
				cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, sp.pid, 0);
				pty_proxy(sp.console, pidfd);
				close(sp.console);
			} else if (pty_relay_active(&relay)) {
				cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, sp.pid, 0);
				pty_relay_run(&relay, pidfd);
			}
			pty_relay_release(&relay);
			wait_for_exit(sp.pid, &code);
			phase("container exited");
			record_exit(name, ctx.inst, code);
			teardown(name, ctx.inst, NULL);
			phase("torn down");
			*ret_exit = code;
		}
		pty_relay_release(&relay);
		config_release(&c);
		return r;
	}

	/* Detached: a monitor process owns the container from here on.  It
	 * sends "ready" (code 0) once the container runs, or its failure. */
	cleanup_child struct child mon = CHILD_INIT;
	r = child_start(&mon, 0, "fork the monitor", err);
	if (r < 0) {
		config_release(&c);
		return r;
	}
	if (r == 0) {
		/* Out of the caller's session, for good (see child_setup). */
		if (setsid() < 0)
			_exit(1);
		int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null_fd >= 0) {
			dup2(null_fd, 0);
			dup2(null_fd, 1);
			dup2(null_fd, 2);
		}
		struct corral_error merr = { 0 };
		int mr = bring_up(&ctx, false, false, NULL, &sp, &merr);
		if (mr == 0)
			mr = mark_running(name, &sp, &merr);
		if (mr < 0)
			child_fail(mon.fd, &merr);
		struct corral_error ready = { 0 };
		child_send(mon.fd, &ready);
		close(mon.fd);
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		int code = 0;
		char log[PATH_MAX], sock[PATH_MAX];
		const char *sockp = state_path(sock, sizeof(sock), name, CONSOLE_SOCK, NULL) == 0 ? sock : NULL;
		if (state_path(log, sizeof(log), name, "console.log", NULL) == 0) {
			if (sp.console >= 0) {
				cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, sp.pid, 0);
				/* No pidfd: let go of the slave, the relay then ends
				 * at the first moment no one holds the console. */
				if (pidfd < 0 && sp.console_slave >= 0)
					close(take_fd(sp.console_slave));
				console_log_relay_pty(sp.console, pidfd, log, c.console_size, sockp);
			} else {
				console_log_relay(sp.log_pipe, log, c.console_size, sockp);
			}
		}
		if (sp.log_pipe >= 0)
			close(sp.log_pipe);
		if (sp.console >= 0)
			close(sp.console);
		if (sp.console_slave >= 0)
			close(sp.console_slave);
		wait_for_exit(sp.pid, &code);
		record_exit(name, ctx.inst, code);
		teardown(name, ctx.inst, NULL);
		_exit(0);
	}
	enum child_verdict v;
	r = child_wait_verdict(&mon, &v, err);
	if (r == 0 && v != CHILD_READY)
		r = err_plain(err, EIO, "the monitor process exited before the container started");
	if (r == 0)
		take_child_pid(&mon); /* it lives on, in a session of its own */
	config_release(&c);
	*ret_exit = 0;
	return r < 0 ? err_wrap(err, "start %s", name) : 0;
}

int container_kill(const char *name, int sig, struct corral_error *err)
{
	struct container_state st;
	int r = state_load(name, &st, err);
	if (r < 0)
		return r;
	if (!state_init_alive(&st))
		return err_plain(err, ESRCH, "container %s is not running", name);
	if (kill(st.init_pid, sig) < 0)
		return err_set(err, errno, "signal container %s", name);
	return 0;
}

int container_stop(const char *name, int timeout_s, struct corral_error *err)
{
	struct container_state st;
	int r = state_load(name, &st, err);
	if (r < 0)
		return r;
	if (state_init_alive(&st)) {
		/* A paused container takes no signal until thawed. */
		container_thaw_quietly(name);
		/* The container's own init may want another signal to shut
		 * down (systemd: SIGRTMIN+3). */
		int sig = SIGTERM;
		char cfgpath[PATH_MAX];
		struct container_config c;
		if (state_path(cfgpath, sizeof(cfgpath), name, "config", NULL) == 0 &&
		    config_load(cfgpath, &c, NULL) == 0) {
			sig = config_stop_signal(&c);
			config_release(&c);
		}
		kill(st.init_pid, sig);
		struct timespec step = { 0, 20 * 1000 * 1000 };
		for (int i = 0; i < timeout_s * 50 && state_init_alive(&st); i++)
			nanosleep(&step, NULL);
		if (state_init_alive(&st)) {
			/* PID 1 dying takes the whole pid namespace with it. */
			kill(st.init_pid, SIGKILL);
			for (int i = 0; i < 250 && state_init_alive(&st); i++)
				nanosleep(&step, NULL);
		}
		if (state_init_alive(&st))
			return err_plain(err, EBUSY, "container %s did not stop", name);
		/* The monitor records the exit code: give it the moment it
		 * needs (it reaps the init, then writes the state); without a
		 * monitor (it was killed), say the container was stopped by a
		 * signal. */
		struct container_state now;
		for (int i = 0; i < 250 && state_load(name, &now, NULL) == 0 && !strcmp(now.status, "running") &&
				now.monitor_pid > 0 && proc_start_time(now.monitor_pid) == now.monitor_start;
		     i++)
			nanosleep(&step, NULL);
		if (state_load(name, &now, NULL) == 0 && !strcmp(now.status, "running")) {
			snprintf(now.status, sizeof(now.status), "exited");
			now.exit_code = 128 + SIGKILL;
			now.finished_at = time(NULL);
			state_save(name, &now, NULL);
		}
	}
	return container_teardown(name, err);
}
