/* A container's configuration: what `corral create` records and `start`
 * obeys.  Stored as readable "key = value" lines in
 * <root>/containers/<name>/config; validated entirely before anything is
 * created, so bad input never leaves half a container behind.
 *
 * Module container (with state.h and userns-range.h).  Owns: the config
 * file's keys, their defaults and limits, and the validation of every
 * value; the other modules get a parsed, validated struct.
 * May call: template, net, security, cgroup, common. */
#ifndef CORRAL_CONTAINER_CONFIG_H
#define CORRAL_CONTAINER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "cgroup/cgroup.h"
#include "error.h"
#include "net/net.h"
#include "security/security.h"
#include "template/template.h"

#define CONFIG_MAX_ARGS 64
#define CONFIG_MAX_MOUNTS 16
#define HOSTNAME_MAX_LEN 64

struct bind_mount {
	char source[512];
	char target[512];
	bool readonly;
};

/* What runs as the container's PID 1 (config key `boot`).  `corral create`
 * without a command picks one from the template (template_find_init):
 * its own init when it has /sbin/init, else corral's init idling. */
enum config_boot {
	BOOT_COMMAND = 0,	/* no key: argv runs under corral's init */
	BOOT_IDLE,		/* "idle": corral's init alone, no command (argc 0) */
	BOOT_INIT,		/* "init": argv (/sbin/init) is PID 1 (sysvinit or another);
				 * stop sends SIGINT, ctrl-alt-del */
	BOOT_SYSTEMD,		/* "systemd": as init, with a cgroup2 tree of its own;
				 * stop sends SIGRTMIN+3 */
	BOOT_BUSYBOX,		/* "busybox": as init; stop sends SIGTERM */
};
/* The template's own init is PID 1 (boot = init, systemd, busybox). */
#define config_boots_init(c) ((c)->boot == BOOT_INIT || (c)->boot == BOOT_SYSTEMD || (c)->boot == BOOT_BUSYBOX)

struct container_config {
	char name[CORRAL_NAME_MAX + 1];
	char template_name[CORRAL_NAME_MAX + 1];
	char hostname[HOSTNAME_MAX_LEN + 1];
	char *argv[CONFIG_MAX_ARGS + 1]; /* NULL-terminated; owned */
	int argc;
	enum config_boot boot;
	struct cgroup_limits limits;
	uint64_t disk_bytes;	/* 0 = no quota */
	uint64_t disk_inodes;	/* 0 = no quota */
	struct net_config net;
	capmask_t caps;		/* effective set after --cap-add/--cap-drop */
	enum seccomp_mode seccomp;
	bool userns;		/* map container root to an unprivileged range */
	uint32_t userns_base;	/* first host uid/gid of the range */
	uint32_t userns_size;
	bool userns_range_given;	/* --userns-range at create (not stored) */
	struct bind_mount mounts[CONFIG_MAX_MOUNTS];
	int nmounts;
	uint64_t console_size;	/* bytes of console.log before it rotates */
	bool share_base;	/* cowfs share_base=1: the template's page cache shared */
	bool store;		/* upper data moves into the host's block store
				 * (<root>/store, root "container.NAME"); default */
	uint32_t store_delay;	/* seconds idle after a file's last writer before it
				 * moves (cowfs store_delay); config key only */
	bool autostart;		/* started by `corral start --all-autostart` (at boot) */
	int autostart_order;	/* lower first, then by name; config key autostart_order */
};
#define AUTOSTART_ORDER_MAX 100000

#define STORE_DELAY_DEFAULT 30
#define STORE_DELAY_MAX 86400

/* console_size: the default, and the least accepted -- one relay read of
 * start/console-log.c, so that a log can hold a single write. */
#define CONSOLE_LOG_SIZE_DEFAULT (1ULL << 20)
#define CONSOLE_LOG_SIZE_MIN (64ULL << 10)

void config_init(struct container_config *c);
void config_release(struct container_config *c);

/* Parsers for command-line values; each names the bad value on failure. */
int config_parse_size(const char *what, const char *s, uint64_t *ret, struct corral_error *err);
int config_parse_cpus(const char *s, int64_t *ret_quota_us, int64_t *ret_period_us, struct corral_error *err);
int config_validate_hostname(const char *s, struct corral_error *err);
int config_parse_mount(const char *s, struct bind_mount *ret, struct corral_error *err);
int config_parse_io_limit(const char *what, const char *s, struct cgroup_limits *lim, struct corral_error *err);
int config_set_argv(struct container_config *c, int argc, char **argv, struct corral_error *err);

/* The signal `corral stop` sends the container's PID 1 first: SIGRTMIN+3
 * for systemd (its "halt": a clean shutdown; SIGTERM would make it
 * re-execute itself), SIGTERM for busybox init (its "reboot", which ends
 * in a container), SIGINT for another init (ctrl-alt-del: sysvinit's
 * inittab runs `shutdown -r now`; it ignores SIGTERM), SIGTERM for corral's
 * own init. */
int config_stop_signal(const struct container_config *c);

/* Whole-config checks made by create (names, ranges, combinations). */
int config_validate(const struct container_config *c, struct corral_error *err);

/* Writes/reads the config file (temp + fsync + rename + fsync dir). */
int config_save(const struct container_config *c, const char *path, struct corral_error *err);
int config_load(const char *path, struct container_config *ret, struct corral_error *err);
/* Container `name`'s config (<root>/containers/<name>/config); -ENOENT
 * with "no such container: NAME" if it has none. */
int config_load_container(const char *name, struct container_config *ret, struct corral_error *err);

#endif
