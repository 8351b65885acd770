/* Entering a running container: `corral exec`.
 *
 * The caller joins the container's cgroup and every namespace of its init
 * (user first, mount last, since joining the mount namespace changes the
 * root), then forks -- a new pid namespace applies to children only -- and
 * the child takes the container's capabilities and seccomp filter before
 * exec, exactly as the init did.  The process is made non-dumpable before
 * it joins anything, so container processes cannot ptrace it or read its
 * memory while it still holds host privileges, and the seccomp program
 * is read from the host's state root before then too.
 *
 * The command runs in a session of its own and never gets a descriptor
 * of the caller's terminal (see pty.c): a pty of the container's devpts
 * with -t, else pipes that corral relays for those of its stdin, stdout
 * and stderr that are terminals. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup/cgroup.h"
#include "child.h"
#include "cleanup.h"
#include "exec-user.h"
#include "container/container-config.h"
#include "pty.h"
#include "security/security.h"
#include "start.h"
#include "container/state.h"

struct ns_kind {
	const char *name;
	int flag;
};

static const struct ns_kind ns_order[] = {
	{ "user", CLONE_NEWUSER }, { "ipc", CLONE_NEWIPC }, { "uts", CLONE_NEWUTS },
	{ "net", CLONE_NEWNET }, { "cgroup", CLONE_NEWCGROUP }, { "pid", CLONE_NEWPID },
	{ "mnt", CLONE_NEWNS },
};
#define NS_COUNT (sizeof(ns_order) / sizeof(ns_order[0]))

/* Opens the init's namespaces that differ from ours (host network mode
 * shares the net namespace; joining one's own user ns is an error). */
static int open_namespaces(pid_t pid, int fds[NS_COUNT], struct corral_error *err)
{
	for (size_t i = 0; i < NS_COUNT; i++) {
		char path[64], self[64];
		struct stat a, b;
		fds[i] = -1;
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, ns_order[i].name);
		snprintf(self, sizeof(self), "/proc/self/ns/%s", ns_order[i].name);
		if (stat(path, &a) < 0)
			return err_set(err, errno, "stat %s", path);
		if (stat(self, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			continue;
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0)
			return err_set(err, errno, "open %s", path);
	}
	return 0;
}

/* The command's process, after fork: stdio, privileges, exec.  Returns
 * only on a failure before the exec, with cerr filled; a failed exec is
 * sent on `verdict_fd` by child_exec. */
static void exec_child(int verdict_fd, const struct container_config *c, char **argv, int slave,
		       const struct pty_relay *relay, const struct seccomp_program *prog,
		       const struct exec_options *o, struct corral_error *cerr)
{
	if (c->userns && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)) {
		err_set(cerr, errno, "become root in the user namespace");
		return;
	}
	/* --user from the container's own files: after the setns, "/" is
	 * the container's root (see exec-user.h). */
	uid_t uid = 0;
	gid_t gid = 0;
	char home[PATH_MAX] = "/root";
	if (o->user) {
		cleanup_close int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (root < 0) {
			err_set(cerr, errno, "open the container's root");
			return;
		}
		if (exec_user_resolve(root, o->user, &uid, &gid, home, sizeof(home), cerr) < 0)
			return;
	}
	char **env = command_env(NULL, slave >= 0, home, o->env, o->nenv, cerr);
	if (!env)
		return;
	/* Host groups of the caller stay out, as for the init (start.c). */
	if (setgroups(0, NULL) < 0) {
		err_set(cerr, errno, "drop the caller's supplementary groups");
		return;
	}
	const char *dir = o->workdir ? o->workdir : "/";
	if (chdir(dir) < 0) {
		err_set(cerr, errno, "change to the working directory %s in %s", dir, c->name);
		return;
	}
	/* A session of its own, always: left in the caller's session, the
	 * command (or anything it leaves running) could open /dev/tty -- the
	 * caller's terminal -- and push keystrokes into the caller's shell
	 * with TIOCSTI.  It gets no descriptor of that terminal either: a pty
	 * of the container's own devpts with -t, else pipes corral relays. */
	if (setsid() < 0) {
		err_set(cerr, errno, "start a new session");
		return;
	}
	if (slave >= 0) {
		if (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0 || ioctl(0, TIOCSCTTY, 0) < 0) {
			err_set(cerr, errno, "attach the container's terminal");
			return;
		}
	} else {
		int r = pty_relay_child_stdio(relay);
		if (r < 0) {
			err_set(cerr, -r, "attach the relayed stdio");
			return;
		}
	}
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		err_set(cerr, errno, "close inherited descriptors");
		return;
	}
	if (caps_apply(c->caps, cerr) < 0)
		return;
	/* After caps_apply (which keeps the permitted set across this, and
	 * leaves the command none: see security.h), before the filter. */
	if (o->user && (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)) {
		err_set(cerr, errno, "become user %s (uid %u, gid %u)", o->user, (unsigned)uid, (unsigned)gid);
		return;
	}
	if (seccomp_program_install(prog, cerr) < 0)
		return;
	/* corral ignores SIGPIPE and forwards the terminal's signals; the
	 * command gets the defaults. */
	signal(SIGPIPE, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	char what[512];
	snprintf(what, sizeof(what), "run %s in %s", argv[0], c->name);
	child_exec(verdict_fd, NULL, argv, env, what);
}

int container_exec(const char *name, char **argv, const struct exec_options *o, int *ret_exit,
		   struct corral_error *err)
{
	bool tty = o->tty;
	struct container_state st;
	struct container_config c;
	char path[PATH_MAX];
	int fds[NS_COUNT];

	int r = state_load(name, &st, err);
	if (r < 0)
		return r;
	if (!state_init_alive(&st))
		return err_plain(err, ESRCH, "container %s is not running", name);
	/* A command started on a disconnected root would fail on its first
	 * file access with ENOTCONN: say why, and how to recover.  Only the
	 * daemon's pid and start time are checked here, not the mount
	 * (state_check probes it from a thread, and setns into a mount
	 * namespace needs a single-threaded caller). */
	if (st.cowfs_pid > 0 && st.cowfs_start && !state_cowfs_alive(&st))
		return err_plain(err, EIO,
				 "container %s is broken: cowfs daemon (pid %d) is gone: the root filesystem is "
				 "disconnected (corral restart %s recovers it)",
				 name, (int)st.cowfs_pid, name);
	r = state_path(path, sizeof(path), name, "config", err);
	if (r == 0)
		r = config_load(path, &c, err);
	if (r < 0)
		return r;

	/* Before joining anything: container processes must not ptrace us or
	 * read our memory while we still hold host privileges. */
	if (prctl(PR_SET_DUMPABLE, 0) < 0) {
		config_release(&c);
		return err_set(err, errno, "make corral non-dumpable");
	}
	/* The filter comes from the host's state root, read before any setns:
	 * after the mount namespace is joined, every path resolves in the
	 * container's tree, which its root controls. */
	struct seccomp_program prog;
	if (seccomp_program_get(c.seccomp, c.caps, state_root(), &prog, err) < 0) {
		config_release(&c);
		return err_wrap(err, "prepare the seccomp filter");
	}
	/* Pipes for a terminal on stdio are made here too: nothing of the
	 * caller's terminal goes into the container. */
	struct pty_relay relay;
	pty_relay_init(&relay);
	for (size_t i = 0; i < NS_COUNT; i++)
		fds[i] = -1;
	r = tty ? 0 : pty_relay_open(&relay, err);
	if (r == 0)
		r = open_namespaces(st.init_pid, fds, err);
	struct cgroup *cg = NULL;
	if (r == 0)
	{
		char inst[CORRAL_INSTANCE_NAME_MAX];
		r = cgroup_open(state_instance_name(name, inst, sizeof(inst)), &cg, err);
	}
	if (r == 0)
		r = cgroup_enter_self(cg, false, err);
	/* Beside systemd, into the cgroup2 directory it manages (its root),
	 * not left in the caller's, outside the container's view. */
	if (r == 0 && c.boot == BOOT_SYSTEMD)
		r = cgroup_delegate(cg, 0, 0, err);
	cgroup_free(cg);
	for (size_t i = 0; r == 0 && i < NS_COUNT; i++) {
		if (fds[i] >= 0 && setns(fds[i], ns_order[i].flag) < 0)
			r = err_set(err, errno, "join the %s namespace of %s", ns_order[i].name, name);
	}
	for (size_t i = 0; i < NS_COUNT; i++)
		if (fds[i] >= 0)
			close(fds[i]);

	/* Joined the container's mount namespace: /dev/ptmx is its own. */
	int master = -1, slave = -1;
	if (r == 0 && tty && pty_open(&master, &slave, err) < 0)
		r = err_wrap(err, "a terminal in %s", name);
	cleanup_child struct child ch = CHILD_INIT;
	if (r == 0) {
		char what[128];
		snprintf(what, sizeof(what), "fork into %s", name);
		r = child_start(&ch, 0, what, err);
		if (r == 0) {
			struct corral_error cerr = { 0 };
			exec_child(ch.fd, &c, argv, slave, &relay, &prog, o, &cerr);
			child_fail(ch.fd, &cerr);
		}
		if (r > 0)
			r = 0;
	}
	seccomp_program_release(&prog);
	pty_relay_close_child(&relay);
	if (slave >= 0)
		close(slave);
	if (r < 0) {
		if (master >= 0)
			close(master);
		pty_relay_release(&relay);
		config_release(&c);
		return r;
	}
	/* The command is in a session of its own: the signals the caller's
	 * terminal sends to corral are passed on to it. */
	pty_forward_signals(ch.pid);
	/* EOF: the command runs; a verdict: it could not be started. */
	enum child_verdict v;
	r = child_wait_verdict(&ch, &v, err);
	if (master >= 0) {
		cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, ch.pid, 0);
		if (r == 0)
			pty_proxy(master, pidfd);
		close(master);
	} else if (pty_relay_active(&relay) && r == 0) {
		cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, ch.pid, 0);
		pty_relay_run(&relay, pidfd);
	}
	pty_relay_release(&relay);
	int status = 0;
	int rr = child_reap(&ch, &status, r < 0 ? NULL : err);
	config_release(&c);
	if (r < 0)
		return r;
	if (rr < 0)
		return rr;
	*ret_exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	return 0;
}
