/* The state root and each container's runtime state.
 *
 * The runtime state file is a hint written by start and the monitor; the
 * truth about whether a container runs comes from the kernel: its init pid
 * together with that process's start time (so a recycled pid is never
 * mistaken for the container).  After kill -9 of any corral process,
 * list/stop/rm still see what is really there.
 *
 * Module container (with container-config.h and userns-range.h).  Owns:
 * the state root (its layout and 0700 permissions) and each container's
 * runtime state file, written atomically (common/fileio.h).
 * May call: template, net, security, cgroup, common. */
#ifndef CORRAL_STATE_H
#define CORRAL_STATE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "error.h"
#include "template/template.h"

#define STATE_ROOT_DEFAULT "/var/lib/corral"

struct container_state {
	pid_t init_pid;			/* host pid of the container's PID 1 */
	unsigned long long init_start;	/* its start time (clock ticks since boot) */
	pid_t monitor_pid;
	unsigned long long monitor_start;
	pid_t cowfs_pid;		/* the root's cowfs daemon; 0 = not known */
	unsigned long long cowfs_start;	/* its start time, as for the init */
	char status[16];		/* created | running | exited (recorded) */
	int exit_code;			/* valid when exited; 128+N for signal N */
	time_t started_at, finished_at;
	char address[48];		/* bridge mode */
	/* Processes the kernel's OOM killer killed in its cgroup during the
	 * last run, read at its exit (v1 memory.oom_control oom_kill, v2
	 * memory.events oom_kill); -1 = not known. */
	int64_t oom_kills;
};

/* The state root: --root, else $CORRAL_ROOT, else /var/lib/corral. */
void state_set_root(const char *root);
const char *state_root(void);
/* <root>/containers/<name>[/<leaf>] into buf. */
int state_path(char *buf, size_t len, const char *name, const char *leaf, struct corral_error *err);
/* The host's block store, <root>/store, into buf. */
int state_store_dir(char *buf, size_t len, struct corral_error *err);
/* The store root naming a container's files: "container.<name>". */
int state_store_root(char *buf, size_t len, const char *name, struct corral_error *err);

/* The state root holds every container's tree, whose files the container's
 * root controls (set-uid binaries, in the upper layer stored as host uid 0
 * even for --userns): no host user may reach it.  Creates the root (0700)
 * if missing; refuses a root that is not a directory owned by us; tightens
 * the root, containers/ and templates/ to 0700 when found looser (a root
 * made by an older corral, which made them 0711) -- and then every
 * container's directory as well.  Run before every command. */
int state_secure_root(struct corral_error *err);
/* Tightens <root>/containers/<name> to 0700 (at each start: a directory
 * loosened by hand is closed again before the root is mounted). */
int state_secure_container(const char *name, struct corral_error *err);

void state_init(struct container_state *st);
int state_load(const char *name, struct container_state *ret, struct corral_error *err);
/* state_load of a container that must exist and be running: "no such
 * container: NAME" (-ENOENT) or "container NAME is not running" (-ESRCH). */
int state_load_running(const char *name, struct container_state *ret, struct corral_error *err);
int state_save(const char *name, const struct container_state *st, struct corral_error *err);

/* Host-wide resources (cgroups, veths, address leases) are shared by every
 * state root: they are named after the container *and* its root, so two
 * roots may each have a container "web".  For the default root the name
 * is the container's own. */
const char *state_instance_name(const char *name, char *buf, size_t len);
/* Bytes for an instance name: a container name, '.', 8 hex digits, NUL. */
#define CORRAL_INSTANCE_NAME_MAX (CORRAL_NAME_MAX + 1 + 8 + 1)
/* Where address leases live: one host-wide place, because the bridge is
 * host-wide too. */
#define STATE_NET_DIR "/run/corral"

/* Start time of pid from /proc/PID/stat, 0 if the process is gone. */
unsigned long long proc_start_time(pid_t pid);
/* The container's init is alive (pid exists with the recorded start time). */
bool state_init_alive(const struct container_state *st);
/* "running" if the init is alive, else the recorded status, with
 * "running" corrected to "exited" when the init is gone. */
const char *state_status(const struct container_state *st);
/* state_status, and "broken" for a container whose init runs while its
 * root filesystem does not: the cowfs daemon is gone (its pid and start
 * time, checked as the init's), or the mount answers ENOTCONN or is not
 * there at all.  Every file access in such a container fails; stop or
 * restart recovers it.  `reason` (may be NULL) gets why. */
const char *state_check(const char *name, const struct container_state *st, char *reason, size_t len);
/* The cowfs daemon recorded in st is alive (false when none is recorded). */
bool state_cowfs_alive(const struct container_state *st);

/* Staging directories beside a container's upper and work (rollback and
 * clone build the new upper in one and swap it in with RENAME_EXCHANGE;
 * after the swap the staging name holds the old tree).  A crash leaves one
 * behind: whichever tree it holds is not the container's, and
 * state_clean_leftovers removes it. */
#define STATE_UPPER_STAGING "upper.rollback"
#define STATE_WORK_STAGING "work.rollback"
/* <root>/containers/<name>/lock, held exclusively (blocks): serializes a
 * teardown, rollback's swap of the upper and start's cleanup of what a
 * crashed rollback left.  The descriptor (close to release), or -errno. */
int state_lock_container(const char *name);
/* With the container's lock held and the container stopped: removes the
 * staging directories a crashed rollback left and makes a missing work
 * directory again (cowfs needs one; its content is scratch). */
int state_clean_leftovers(const char *name, struct corral_error *err);

/* The FUSE features the kernel granted the container's cowfs mount at
 * INIT, as its daemon reports them in <container>/cowfs-status (cowfs -o
 * status=FILE: written by the host-side daemon outside the container's
 * tree, atomically). */
#define STATE_COWFS_STATUS "cowfs-status"
struct cowfs_features {
	char libfuse[32];	/* the libfuse version the daemon runs with */
	bool passthrough, io_uring, splice, writeback;
	bool share_base; /* read-only base opens in passthrough (cowfs share_base=1) */
};
/* 0 and *ret filled; -ENOENT when there is no report of the daemon
 * recorded in st (not running, not yet past INIT, or the report is of an
 * earlier daemon: its pid differs); other -errno with err filled. */
int state_cowfs_features(const char *name, const struct container_state *st, struct cowfs_features *ret,
			 struct corral_error *err);

#endif
