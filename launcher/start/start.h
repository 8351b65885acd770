/* Starting, stopping and entering containers.
 *
 * Process tree of a running container:
 *
 *   monitor (corral, on the host)     waits for the init, records its exit
 *   `- init (PID 1 in the container)  corral's own init (the cloned child,
 *      |                              not exec'ed; non-dumpable, so container
 *      |                              processes cannot reach its memory or
 *      |                              /proc/1/exe without CAP_SYS_PTRACE)
 *      `- the container's command     orphans are reaped by init
 *
 * A booting container (config boot = init, systemd or busybox) has the template's
 * init exec'ed in place of corral's at the last step, as PID 1; with boot
 * = idle corral's init runs no command and waits to be stopped.
 *
 * Setup happens in the child between clone() and exec, in a fixed order,
 * and any failure aborts the start (fail closed): cgroup, cowfs mount ->
 * the container's view of its root (parent, rootfs_open_view) -> seccomp
 * program (host side) -> namespaces (clone) -> a session of its own
 * (setsid: the caller's terminal is never a container's controlling
 * terminal) -> cgroup, uid/gid maps, network (parent side) -> hostname ->
 * root mounts, pivot_root -> stdio (a pty, relayed pipes or the console
 * log; never the caller's terminal) -> close every inherited fd ->
 * capabilities, no_new_privs -> seccomp -> init forks and execs the
 * command.
 *
 * Module start (with rootfs.h, pty.h and console-log.h).  Owns: a
 * container's processes (monitor, init, exec'ed commands) and the order of
 * the setup steps above; it calls the lower modules in that order.
 * May call: container, template, net, security, cgroup, store, common. */
#ifndef CORRAL_START_H
#define CORRAL_START_H

#include <stdbool.h>

#include "container/container-config.h"
#include "error.h"

struct exec_options {
	bool tty;		/* a pty of the container's (TERM: the caller's) */
	const char *user;	/* UID[:GID] or NAME[:GROUP] (exec-user.h); NULL = root */
	char *const *env;	/* K=V each, added to the defaults (a key given again wins) */
	size_t nenv;
	const char *workdir;	/* inside the container; NULL = / */
};
struct start_options {
	bool foreground;	/* run: the caller is the monitor, stdio attached */
	bool tty;		/* allocate a pty for the command (with foreground) */
	const char *cowfs;	/* the cowfs program; NULL = the installed one */
	/* run: the command's user, environment and directory, as exec's
	 * (its tty field is not used); NULL = root, the defaults, / */
	const struct exec_options *cmd;
};

/* Starts a created container.  With foreground, waits for it and returns
 * its exit code in *ret_exit; otherwise returns once it runs. */
int container_start(const char *name, const struct start_options *opts, int *ret_exit,
		    struct corral_error *err);
/* SIGTERM, up to timeout_s seconds, then SIGKILL to everything in the
 * container's cgroup; then teardown.  Idempotent. */
int container_stop(const char *name, int timeout_s, struct corral_error *err);
/* Sends a signal to the container's init (forwarded to the command). */
int container_kill(const char *name, int sig, struct corral_error *err);
/* Freezes (paused) or thaws every process of a running container but its
 * cowfs daemon; the container's own clocks go on.  -ESRCH when it is not
 * running, -EALREADY when already paused, -EINVAL resuming one that is not. */
int container_pause(const char *name, bool paused, struct corral_error *err);
/* Thaws a container if its cgroup is there (stop of a paused one: a
 * frozen task takes no signal); errors are ignored. */
void container_thaw_quietly(const char *name);
/* Saves `c` (the container's loaded config with new limits, validated
 * here) to its config file atomically; on a running container first
 * applies c->limits to its cgroup (and puts `old` back if that or the
 * save fails).  *ret_applied: the running cgroup took them. */
int container_update(const char *name, const struct container_config *c, const struct cgroup_limits *old,
		     bool *ret_applied, struct corral_error *err);
/* Renames a stopped container (rename.c says what moves and in which
 * order); refused while it runs or has snapshots.  All or nothing. */
int container_rename(const char *from, const char *to, struct corral_error *err);
/* corral cp (cp.c): copies `cpath` of a running container's root
 * filesystem to `hostpath` (into = false) or `hostpath` into it at `cpath`
 * (into = true), files and directories recursively, modes kept (set-id
 * bits dropped coming out).  Container paths are resolved inside its root,
 * symlinks never followed out of it.  *ret_skipped: devices, fifos and
 * sockets left out. */
int container_cp(const char *name, const char *cpath, const char *hostpath, bool into, size_t *ret_skipped,
		 struct corral_error *err);
/* Unmounts the root, removes network and cgroup; keeps the upper layer. */
int container_teardown(const char *name, struct corral_error *err);
/* Runs argv inside a running container: every namespace, the cgroup, the
 * same capabilities and seccomp filter.  Returns the command's exit code. */
/* A command that could not be run fails with err->exit_status 126 or 127
 * (error.h). */
int container_exec(const char *name, char **argv, const struct exec_options *o, int *ret_exit,
		   struct corral_error *err);

/* Gives start the memory of corral's own command line, which the
 * container's init overwrites so that /proc/1/cmdline inside does not show
 * host paths (the state root, the binary). */
void start_set_cmdline_area(int argc, char **argv);

/* The container's init, run in the cloned child once setup is done: forks
 * and execs argv with envp, closes `ready_fd` (the child's verdict pipe,
 * common/child.h: EOF is the parent's success signal) once the command
 * runs or sends the failure on it, reaps orphans, and returns the
 * command's exit code.  cmd (or NULL): the command's user and working
 * directory, taken in the command's process before its exec. */
int container_init(char **argv, char **envp, int ready_fd, const struct exec_options *cmd);
/* A booting container (boot = init, systemd, busybox): the template's init
 * replaces corral's as PID 1, exec'ed with default signal dispositions;
 * the exec closes `ready_fd` (success) or its failure is sent on it.
 * With an empty argv, container_init idles instead (boot = idle). */
__attribute__((noreturn)) void container_boot(char **argv, char **envp, int ready_fd);

#endif
