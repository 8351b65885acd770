/* corral create / run / start / stop / restart / kill / exec / rm */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "container/container-config.h"
#include "container/container-etc.h"
#include "fileio.h"
#include "start/rootfs.h"
#include "start/start.h"
#include "container/state.h"
#include "snapshot/snapshot.h"
#include "store/store.h"
#include "template/template.h"
#include "container/userns-range.h"

static const char create_options_help[] =
	"  --template NAME          template to start from (default: default, built on first use)\n"
	"  --hostname NAME          hostname inside (default: the container name)\n"
	"  --memory SIZE            memory limit (e.g. 256M); OOM kills stay inside\n"
	"  --memory-swap SIZE       swap allowed on top of --memory\n"
	"  --cpus N                 CPU quota in CPUs (e.g. 0.5)\n"
	"  --cpu-weight N           relative CPU weight, 1..10000 (default 100)\n"
	"  --cpuset-cpus LIST       CPUs allowed (e.g. 0-1)\n"
	"  --cpuset-mems LIST       memory nodes allowed\n"
	"  --pids N                 maximum number of processes\n"
	"  --device-read-bps DEV=RATE, --device-write-bps DEV=RATE\n"
	"  --device-read-iops DEV=N, --device-write-iops DEV=N\n"
	"                           I/O limits (DEV is /dev/sda or 8:0)\n"
	"  --disk-quota SIZE        disk space of the container's own layer\n"
	"  --disk-inodes N          files in the container's own layer\n"
	"  --network MODE           none (default: loopback only), host or bridge\n"
	"  --subnet CIDR            bridge subnet (default " NET_DEFAULT_SUBNET "; refused if it\n"
	"                           overlaps a host route through another interface)\n"
	"  --bridge NAME            bridge: the host bridge (default corral0)\n"
	"  --ip ADDR                bridge: a fixed address in the subnet\n"
	"  -p, --publish HOST:CONTAINER[/tcp|/udp]\n"
	"                           bridge: forward the host's port to the container's\n"
	"  --nat                    bridge: masquerade outgoing traffic (turns on the host's\n"
	"                           net.ipv4.ip_forward)\n"
	"  --cap-add CAP, --cap-drop CAP   adjust the capability set (ALL allowed)\n"
	"  --seccomp PROFILE        default or unconfined\n"
	"  --userns                 map container root to an unprivileged host uid range\n"
	"  --userns-range BASE:SIZE host ids for --userns (default: a free block of 65536 from\n"
	"                           100000 up, not shared with any other container)\n"
	"  --mount SRC:DST[:ro]     bind a host path into the container\n"
	"  --console-size SIZE      detached: console.log rotates to console.log.1 at SIZE\n"
	"                           (default 1M, at least 64K)\n"
	"  --share-base             read-only opens of template files share the template's\n"
	"                           page cache (cowfs share_base=1); a write to a template\n"
	"                           file fails with ETXTBSY while one is open\n"
	"  --autostart              start it with `corral start --all-autostart` (the\n"
	"                           corral-autostart.service unit runs that at boot)\n"
	"  --autostart-order N      lower N starts first (default 0; ties by name)\n"
	"  --no-store               keep the container's files in its upper layer only\n"
	"                           (default: written files move into the host's block\n"
	"                           store, <root>/store, where identical content is kept\n"
	"                           once for every container)\n";

enum {
	OPT_TEMPLATE = 256, OPT_HOSTNAME, OPT_MEMORY, OPT_MEMORY_SWAP, OPT_CPUS, OPT_CPU_WEIGHT,
	OPT_CPUSET_CPUS, OPT_CPUSET_MEMS, OPT_PIDS, OPT_RBPS, OPT_WBPS, OPT_RIOPS, OPT_WIOPS,
	OPT_DISK, OPT_INODES, OPT_NETWORK, OPT_SUBNET, OPT_NAT, OPT_CAP_ADD, OPT_CAP_DROP,
	OPT_SECCOMP, OPT_USERNS, OPT_USERNS_RANGE, OPT_MOUNT, OPT_NAME, OPT_RM, OPT_DETACH,
	OPT_CONSOLE_SIZE, OPT_SHARE_BASE, OPT_NO_STORE, OPT_AUTOSTART, OPT_AUTOSTART_ORDER, OPT_BRIDGE, OPT_IP, OPT_PUBLISH = 'p',
};

static const struct option create_longopts[] = {
	{ "template", required_argument, NULL, OPT_TEMPLATE },
	{ "hostname", required_argument, NULL, OPT_HOSTNAME },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "memory-swap", required_argument, NULL, OPT_MEMORY_SWAP },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "cpu-weight", required_argument, NULL, OPT_CPU_WEIGHT },
	{ "cpuset-cpus", required_argument, NULL, OPT_CPUSET_CPUS },
	{ "cpuset-mems", required_argument, NULL, OPT_CPUSET_MEMS },
	{ "pids", required_argument, NULL, OPT_PIDS },
	{ "device-read-bps", required_argument, NULL, OPT_RBPS },
	{ "device-write-bps", required_argument, NULL, OPT_WBPS },
	{ "device-read-iops", required_argument, NULL, OPT_RIOPS },
	{ "device-write-iops", required_argument, NULL, OPT_WIOPS },
	{ "disk-quota", required_argument, NULL, OPT_DISK },
	{ "disk-inodes", required_argument, NULL, OPT_INODES },
	{ "network", required_argument, NULL, OPT_NETWORK },
	{ "subnet", required_argument, NULL, OPT_SUBNET },
	{ "nat", no_argument, NULL, OPT_NAT },
	{ "bridge", required_argument, NULL, OPT_BRIDGE },
	{ "ip", required_argument, NULL, OPT_IP },
	{ "publish", required_argument, NULL, OPT_PUBLISH },
	{ "cap-add", required_argument, NULL, OPT_CAP_ADD },
	{ "cap-drop", required_argument, NULL, OPT_CAP_DROP },
	{ "seccomp", required_argument, NULL, OPT_SECCOMP },
	{ "userns", no_argument, NULL, OPT_USERNS },
	{ "userns-range", required_argument, NULL, OPT_USERNS_RANGE },
	{ "mount", required_argument, NULL, OPT_MOUNT },
	{ "console-size", required_argument, NULL, OPT_CONSOLE_SIZE },
	{ "share-base", no_argument, NULL, OPT_SHARE_BASE },
	{ "autostart", no_argument, NULL, OPT_AUTOSTART },
	{ "autostart-order", required_argument, NULL, OPT_AUTOSTART_ORDER },
	{ "no-store", no_argument, NULL, OPT_NO_STORE },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "rm", no_argument, NULL, OPT_RM },
	{ "user", required_argument, NULL, 'u' },
	{ "env", required_argument, NULL, 'e' },
	{ "env-file", required_argument, NULL, 'E' },
	{ "workdir", required_argument, NULL, 'w' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_count(const char *what, const char *s, int64_t min, int64_t max, int64_t *ret,
		       struct corral_error *err)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return err_plain(err, EINVAL, "invalid %s '%s': expected a whole number from %lld to %lld", what, s,
				 (long long)min, (long long)max);
	*ret = v;
	return 0;
}

/* Applies one create option; returns <0 with err filled on bad input. */
static int apply_option(int opt, const char *arg, struct container_config *c, char *name, size_t namelen,
			bool *rm, struct corral_error *err)
{
	uint64_t size;
	int64_t n;
	capmask_t caps;
	int r = 0;
	switch (opt) {
	case OPT_TEMPLATE:
		if ((r = name_validate("template", arg, err)) == 0)
			snprintf(c->template_name, sizeof(c->template_name), "%s", arg);
		break;
	case OPT_HOSTNAME:
		if ((r = config_validate_hostname(arg, err)) == 0)
			snprintf(c->hostname, sizeof(c->hostname), "%s", arg);
		break;
	case OPT_MEMORY:
		if ((r = config_parse_size("memory limit", arg, &size, err)) == 0)
			c->limits.memory_max = (int64_t)size;
		break;
	case OPT_MEMORY_SWAP:
		if ((r = config_parse_size("swap limit", arg, &size, err)) == 0)
			c->limits.memory_swap_max = (int64_t)size;
		break;
	case OPT_CPUS:
		r = config_parse_cpus(arg, &c->limits.cpu_quota_us, &c->limits.cpu_period_us, err);
		break;
	case OPT_CPU_WEIGHT:
		r = parse_count("CPU weight", arg, 1, 10000, &c->limits.cpu_weight, err);
		break;
	case OPT_CPUSET_CPUS:
	case OPT_CPUSET_MEMS: {
		char *dst = opt == OPT_CPUSET_CPUS ? c->limits.cpuset_cpus : c->limits.cpuset_mems;
		if (strlen(arg) >= sizeof(c->limits.cpuset_cpus) || strspn(arg, "0123456789,-") != strlen(arg))
			return err_plain(err, EINVAL, "invalid cpuset list '%s': expected e.g. 0-1,3", arg);
		snprintf(dst, sizeof(c->limits.cpuset_cpus), "%s", arg);
		break;
	}
	case OPT_PIDS:
		r = parse_count("pids limit", arg, 1, 4194304, &c->limits.pids_max, err);
		break;
	case OPT_RBPS:
		r = config_parse_io_limit("device-read-bps", arg, &c->limits, err);
		break;
	case OPT_WBPS:
		r = config_parse_io_limit("device-write-bps", arg, &c->limits, err);
		break;
	case OPT_RIOPS:
		r = config_parse_io_limit("device-read-iops", arg, &c->limits, err);
		break;
	case OPT_WIOPS:
		r = config_parse_io_limit("device-write-iops", arg, &c->limits, err);
		break;
	case OPT_DISK:
		r = config_parse_size("disk quota", arg, &c->disk_bytes, err);
		break;
	case OPT_INODES:
		if ((r = parse_count("inode quota", arg, 1, INT64_MAX, &n, err)) == 0)
			c->disk_inodes = (uint64_t)n;
		break;
	case OPT_NETWORK:
		r = net_mode_parse(arg, &c->net.mode, err);
		break;
	case OPT_SUBNET:
		snprintf(c->net.subnet, sizeof(c->net.subnet), "%s", arg);
		break;
	case OPT_NAT:
		c->net.nat = true;
		break;
	case OPT_BRIDGE:
		if (strlen(arg) >= sizeof(c->net.bridge))
			return err_plain(err, EINVAL, "bridge name '%s' is too long (at most %zu characters)", arg,
					 sizeof(c->net.bridge) - 1);
		snprintf(c->net.bridge, sizeof(c->net.bridge), "%s", arg);
		break;
	case OPT_IP:
		if (strlen(arg) >= sizeof(c->net.ip))
			return err_plain(err, EINVAL, "--ip '%s': expected an IPv4 address", arg);
		snprintf(c->net.ip, sizeof(c->net.ip), "%s", arg);
		break;
	case OPT_PUBLISH:
		if (c->net.nports >= NET_PORTS_MAX)
			return err_plain(err, E2BIG, "at most %d --publish options", NET_PORTS_MAX);
		if ((r = net_port_parse(arg, &c->net.ports[c->net.nports], err)) == 0)
			c->net.nports++;
		break;
	case OPT_CAP_ADD:
	case OPT_CAP_DROP:
		if ((r = caps_parse(arg, &caps, err)) == 0) {
			if (opt == OPT_CAP_ADD)
				c->caps |= caps;
			else
				c->caps &= ~caps;
		}
		break;
	case OPT_SECCOMP:
		if (!strcmp(arg, "default"))
			c->seccomp = SECCOMP_DEFAULT;
		else if (!strcmp(arg, "unconfined"))
			c->seccomp = SECCOMP_UNCONFINED;
		else
			r = err_plain(err, EINVAL, "invalid seccomp profile '%s': use default or unconfined", arg);
		break;
	case OPT_USERNS:
		c->userns = true;
		break;
	case OPT_SHARE_BASE:
		c->share_base = true;
		break;
	case OPT_NO_STORE:
		c->store = false;
		break;
	case OPT_AUTOSTART:
		c->autostart = true;
		break;
	case OPT_AUTOSTART_ORDER:
		if ((r = parse_count("autostart order", arg, -AUTOSTART_ORDER_MAX, AUTOSTART_ORDER_MAX, &n, err)) == 0)
			c->autostart_order = (int)n;
		break;
	case OPT_USERNS_RANGE:
		if (sscanf(arg, "%u:%u", &c->userns_base, &c->userns_size) != 2)
			r = err_plain(err, EINVAL, "invalid user namespace range '%s': expected BASE:SIZE", arg);
		c->userns = true;
		c->userns_range_given = true;
		break;
	case OPT_MOUNT:
		if (c->nmounts >= CONFIG_MAX_MOUNTS)
			return err_plain(err, E2BIG, "at most %d --mount options", CONFIG_MAX_MOUNTS);
		if ((r = config_parse_mount(arg, &c->mounts[c->nmounts], err)) == 0)
			c->nmounts++;
		break;
	case OPT_CONSOLE_SIZE:
		r = config_parse_size("console log size", arg, &c->console_size, err);
		break;
	case OPT_NAME:
		if ((r = name_validate("container", arg, err)) == 0)
			snprintf(name, namelen, "%s", arg);
		break;
	case OPT_RM:
		*rm = true;
		break;
	}
	return r;
}

/* No command given: the template's own init as PID 1 when it has one
 * (as LXC and OpenVZ boot a container), else corral's init idling so the
 * container stays up for exec.  *ret_inittab: a busybox init without
 * /etc/inittab gets one in the container's layer (container-etc.h). */
static int choose_boot(struct container_config *c, const char *base, bool *ret_inittab, struct corral_error *err)
{
	enum template_init init;
	bool has_inittab;
	int r = template_find_init(base, &init, &has_inittab, err);
	if (r < 0)
		return err_wrap(err, "find the init of template '%s'", c->template_name);
	if (init == TEMPLATE_INIT_NONE) {
		c->boot = BOOT_IDLE;
		return 0;
	}
	char *argv[] = { "/sbin/init", NULL };
	r = config_set_argv(c, 1, argv, err);
	if (r < 0)
		return r;
	c->boot = init == TEMPLATE_INIT_SYSTEMD ? BOOT_SYSTEMD : init == TEMPLATE_INIT_BUSYBOX ? BOOT_BUSYBOX : BOOT_INIT;
	*ret_inittab = init == TEMPLATE_INIT_BUSYBOX && !has_inittab;
	return 0;
}

/* Creates the container directory and config; removes it again on failure. */
int cli_create_container(struct container_config *c, size_t own_snapshots, struct corral_error *err)
{
	char dir[PATH_MAX], sub[PATH_MAX + 16], base[PATH_MAX];
	int r = 0;
	if (!strcmp(c->template_name, TEMPLATE_DEFAULT)) {
		r = template_ensure_default(state_root(), err);
		if (r < 0)
			return err_wrap(err, "prepare the default template");
	}
	r = template_rootfs(state_root(), c->template_name, base, sizeof(base), err);
	if (r < 0)
		return r;
	bool inittab = false;
	if (c->argc == 0 && c->boot == BOOT_COMMAND && (r = choose_boot(c, base, &inittab, err)) < 0)
		return r;
	r = config_validate(c, err);
	if (r < 0)
		return r;
	/* Taken now: refused at once (a start checks again, under the lease). */
	if (c->net.mode == NET_BRIDGE && c->net.ip[0] && (r = net_ip_check_free(STATE_NET_DIR, c->net.ip, err)) < 0)
		return r;
	/* 0700 all the way: no host user may reach a container's tree.  A
	 * user-namespaced container's root never walks this path: it gets its
	 * root through its own mount namespace (see rootfs_enter). */
	snprintf(dir, sizeof(dir), "%s/containers", state_root());
	if ((r = mkdir_p(dir, 0700, err)) < 0)
		return r;
	/* Snapshots left under this name (a removal that crashed, an older
	 * corral) belong to another container: a new one never gets them. */
	size_t nsnap;
	if ((r = snapshot_count(c->name, &nsnap, err)) < 0)
		return r;
	state_path(dir, sizeof(dir), c->name, NULL, NULL);
	if (nsnap > own_snapshots && access(dir, F_OK) < 0)
		return err_plain(err, EEXIST,
				 "%zu snapshot%s of an earlier container %s %s still in the block store: "
				 "`corral rm --snapshots %s` removes them (`corral snapshot list %s` names them)",
				 nsnap, nsnap == 1 ? "" : "s", c->name, nsnap == 1 ? "is" : "are", c->name, c->name);
	if (mkdir(dir, 0700) < 0) {
		if (errno == EEXIST)
			return err_plain(err, EEXIST, "container %s already exists", c->name);
		return err_set(err, errno, "create %s", dir);
	}
	static const char *const subdirs[] = { "upper", "work", "rootfs" };
	for (size_t i = 0; i < 3 && r == 0; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", dir, subdirs[i]);
		if (mkdir(sub, 0755) < 0)
			r = err_set(err, errno, "create %s", sub);
	}
	/* A user namespace range of its own, registered host-wide before
	 * the config names it (see userns-range.h). */
	bool leased = false;
	if (r == 0 && c->userns) {
		r = userns_range_claim(state_root(), c->name, !c->userns_range_given, &c->userns_base,
				       &c->userns_size, "choose another --userns-range, or leave it out to get a free one",
				       err);
		leased = r == 0;
	}
	if (r == 0) {
		snprintf(sub, sizeof(sub), "%s/upper", dir);
		r = container_etc_write(sub, base, c, inittab, err);
	}
	if (r == 0) {
		snprintf(sub, sizeof(sub), "%s/config", dir);
		r = config_save(c, sub, err);
	}
	if (r < 0) {
		if (leased)
			userns_range_release(state_root(), c->name, NULL);
		remove_tree(dir, NULL);
	}
	return r;
}

#define EXEC_ENV_MAX 1024
#define EXEC_ENV_FILE_MAX (1u << 20)

struct exec_ctx {
	struct exec_options o;
	char *env[EXEC_ENV_MAX];
	char *file_text[16];	/* --env-file contents, which env points into */
	size_t nfiles;
};

static int add_env(struct exec_ctx *x, char *kv)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv)
		return cli_usage_error("exec", "invalid --env '%s': expected KEY=VALUE", kv);
	if (x->o.nenv >= EXEC_ENV_MAX)
		return cli_usage_error("exec", "at most %d environment variables", EXEC_ENV_MAX);
	x->env[x->o.nenv++] = kv;
	return 0;
}

/* --env-file: a host file of KEY=VALUE lines ('#' comments and blank
 * lines skipped), as docker's. */
static int add_env_file(struct exec_ctx *x, const char *path)
{
	struct corral_error err = { 0 };
	char *text;
	size_t len;
	if (x->nfiles >= sizeof(x->file_text) / sizeof(x->file_text[0]))
		return cli_usage_error("exec", "at most %zu --env-file options", sizeof(x->file_text) / sizeof(x->file_text[0]));
	if (file_read_all(path, &text, &len, &err) < 0)
		return cli_fail(&err);
	x->file_text[x->nfiles++] = text;
	if (len > EXEC_ENV_FILE_MAX || strlen(text) != len)
		return cli_usage_error("exec", "--env-file %s: not a text file of at most %u bytes", path,
				       EXEC_ENV_FILE_MAX);
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		size_t l = strlen(line);
		if (l && line[l - 1] == '\r')
			line[--l] = '\0';
		if (!l || line[0] == '#')
			continue;
		int r = add_env(x, line);
		if (r)
			return r;
	}
	return 0;
}

/* -i is accepted as docker's: stdin is always the command's. */
static int exec_opt(int opt, const char *arg, void *ctx)
{
	struct exec_ctx *x = ctx;
	switch (opt) {
	case 't':
		x->o.tty = true;
		break;
	case 'u':
		x->o.user = arg;
		break;
	case 'e':
		return add_env(x, (char *)arg);
	case 'E':
		return add_env_file(x, arg);
	case 'w':
		if (arg[0] != '/')
			return cli_usage_error("exec", "--workdir '%s' is not an absolute path", arg);
		x->o.workdir = arg;
		break;
	}
	return 0;
}

struct create_ctx {
	struct container_config *c;
	char *name;
	bool *rm;
	struct exec_ctx *cmd;	/* run: its command's --user, --env, --workdir */
};

static int create_opt(int opt, const char *arg, void *ctx)
{
	struct create_ctx *x = ctx;
	struct corral_error err = { 0 };
	if (opt == 'u' || opt == 'e' || opt == 'E' || opt == 'w') {
		if (!x->cmd)
			return cli_usage_error("create", "--user, --env, --env-file and --workdir are options of run "
					       "and exec");
		return exec_opt(opt, arg, x->cmd);
	}
	if (apply_option(opt, arg, x->c, x->name, CORRAL_NAME_MAX + 1, x->rm, &err) < 0)
		return cli_fail(&err);
	return 0;
}

/* create NAME [COMMAND...] / run [COMMAND...]: the options come before
 * the command, which is the container's from its first word on. */
static int parse_create(const char *cmd, int argc, char **argv, struct container_config *c, char *name,
			bool *rm, bool name_positional, struct exec_ctx *run_cmd)
{
	struct corral_error err = { 0 };
	struct cli_spec spec = { .cmd = cmd, .shortopts = name_positional ? "p:" : "p:u:e:w:", .longopts = create_longopts,
				 .min_args = name_positional, .max_args = -1,
				 .missing = "no container name given", .command_after = 1 };
	struct create_ctx x = { c, name, rm, run_cmd };
	struct cli_args a;
	int r = cli_parse(&spec, argc, argv, create_opt, &x, &a);
	if (r)
		return r;
	int i = 0;
	if (name_positional) {
		if (name_validate("container", a.argv[0], &err) < 0)
			r = cli_fail(&err);
		else
			snprintf(name, CORRAL_NAME_MAX + 1, "%s", a.argv[i++]);
	}
	/* create without a command boots (cli_create_container); run's
	 * command defaults to a shell. */
	char *dflt[] = { "/bin/sh", NULL };
	if (r == 0 && (i < a.argc ? config_set_argv(c, a.argc - i, a.argv + i, &err)
		       : name_positional ? 0 : config_set_argv(c, 1, dflt, &err)) < 0)
		r = cli_fail(&err);
	cli_args_release(&a);
	if (r == 0)
		snprintf(c->name, sizeof(c->name), "%s", name);
	return r;
}

int cmd_create(int argc, char **argv)
{
	static const struct cli_spec help = { .shortopts = "p:", .longopts = create_longopts, .command_after = 1 };
	if (cli_spec_wants_help(&help, argc, argv)) {
		printf("usage: corral create [OPTIONS] NAME [--] [COMMAND [ARG...]]\n\n"
		       "Creates a container from a template (nothing runs yet; see corral start).\n"
		       "Without a command the container boots: the template's /sbin/init runs as its\n"
		       "PID 1 (systemd, sysvinit, busybox init), or, without one, corral's init idles\n"
		       "so that the container stays up for exec.\n\nOptions:\n%s",
		       create_options_help);
		return 0;
	}
	struct container_config c;
	struct corral_error err = { 0 };
	char name[CORRAL_NAME_MAX + 1] = "";
	bool rm = false;
	config_init(&c);
	int r = parse_create("create", argc, argv, &c, name, &rm, true, NULL);
	if (r == 0 && cli_create_container(&c, 0, &err) < 0)
		r = cli_fail(&err);
	if (r == 0)
		printf("%s\n", c.name);
	config_release(&c);
	return r;
}

/* Removes the container's root from the host's store, if there is one. */
static int forget_store_root(const char *name, struct corral_error *err)
{
	char dir[PATH_MAX], root[CORRAL_NAME_MAX + 32];
	int r = state_store_dir(dir, sizeof(dir), err);
	if (r == 0)
		r = state_store_root(root, sizeof(root), name, err);
	if (r < 0)
		return r;
	if (access(dir, F_OK) < 0 && errno == ENOENT)
		return 0; /* no container ever used the store */
	struct store *s;
	r = store_open(dir, 0, &s, err);
	if (r == 0) {
		struct corral_error rerr = { 0 };
		r = store_root_remove(s, root, &rerr);
		store_close(s);
		if (r == -ENOENT)
			r = 0; /* a --no-store container, or one never started */
		else if (r < 0 && err)
			*err = rerr;
	}
	if (r < 0)
		return err_wrap(err, "%s is removed, but not its root %s in the block store", name, root);
	return 0;
}

struct rm_options {
	bool force;
	bool snapshots;	/* --snapshots: its snapshots go with it */
};

static int remove_container(const char *name, const struct rm_options *o, struct corral_error *err)
{
	char dir[PATH_MAX], rootfs[PATH_MAX];
	struct container_state st;
	size_t nsnap = 0, gone;
	state_path(dir, sizeof(dir), name, NULL, NULL);
	int r = snapshot_count(name, &nsnap, err);
	if (r < 0)
		return r;
	if (access(dir, F_OK) < 0) {
		/* Snapshots left by a removal that crashed after the tree
		 * went: rm --snapshots still removes them. */
		if (o->snapshots && nsnap)
			return snapshot_remove_all(name, &gone, err);
		return err_plain(err, ENOENT, "no such container: %s%s", name,
				 nsnap ? " (it has snapshots left: rm --snapshots removes them)" : "");
	}
	/* As LXC does: the snapshots are the container's, and never go
	 * unasked (a container made later with the name must not find them). */
	if (nsnap && !o->snapshots)
		return err_plain(err, EBUSY,
				 "container %s has %zu snapshot%s: remove %s with `corral snapshot rm`, or use "
				 "rm --snapshots to remove %s with the container",
				 name, nsnap, nsnap == 1 ? "" : "s", nsnap == 1 ? "it" : "them",
				 nsnap == 1 ? "it" : "them");
	bool force = o->force;
	state_load(name, &st, NULL);
	if (state_init_alive(&st)) {
		if (!force)
			return err_plain(err, EBUSY, "container %s is running: stop it first, or use rm -f", name);
		r = container_stop(name, 0, err);
		if (r < 0)
			return r;
	}
	r = container_teardown(name, err);
	if (r < 0)
		return r;
	state_path(rootfs, sizeof(rootfs), name, "rootfs", NULL);
	if (rootfs_is_mounted(rootfs))
		return err_plain(err, EBUSY, "root of %s is still mounted at %s", name, rootfs);
	r = remove_tree(dir, err);
	/* Its user namespace range is free once nothing it owned is left. */
	if (r == 0)
		r = userns_range_release(state_root(), name, err);
	/* Its files' blocks, once no root names them, go at the next
	 * `corral store gc`.  After the tree: a container that is still there
	 * never loses the root its files read from. */
	if (r == 0)
		r = forget_store_root(name, err);
	/* After the tree (a failed removal keeps them); every snapshot of the
	 * name, those taken while we removed it too.  A crash in between
	 * leaves them to a later rm --snapshots: create refuses the name
	 * until then. */
	if (r == 0 && o->snapshots)
		r = snapshot_remove_all(name, &gone, err);
	return r;
}

int cmd_run(int argc, char **argv)
{
	static const struct cli_spec help = { .shortopts = "p:u:e:w:", .longopts = create_longopts,
					      .command_after = 1 };
	if (cli_spec_wants_help(&help, argc, argv)) {
		printf("usage: corral run [OPTIONS] [--name NAME] [--] COMMAND [ARG...]\n\n"
		       "Creates a container, runs COMMAND in it attached to this terminal, waits\n"
		       "for it, and removes the container.  Exits with the command's status.\n\n"
		       "Options:\n  --name NAME              container name (default: run-PID)\n"
		       "  -u, --user, -e, --env, --env-file, -w, --workdir\n"
		       "                           the command's user, environment and directory, as\n"
		       "                           exec's (see corral exec --help)\n%s",
		       create_options_help);
		return 0;
	}
	struct container_config c;
	struct corral_error err = { 0 };
	char name[CORRAL_NAME_MAX + 1];
	bool rm = true;
	snprintf(name, sizeof(name), "run-%d", (int)getpid());
	/* Removed when it exits: its state need not survive a crash. */
	fileio_set_durable(false);
	config_init(&c);
	static struct exec_ctx x;
	x.o.env = x.env;
	int r = parse_create("run", argc, argv, &c, name, &rm, false, &x);
	if (r == 0 && cli_create_container(&c, 0, &err) < 0)
		r = cli_fail(&err);
	if (r == 0) {
		/* A pty only with stdin and stdout on a terminal: output into a
		 * file or pipe is data, which a pty would alter (\n -> \r\n,
		 * the echo of what is typed). */
		struct start_options so = { .foreground = true, .tty = isatty(0) && isatty(1),
					    .cowfs = cli_cowfs(), .cmd = &x.o };
		int code = 0;
		if (container_start(name, &so, &code, &err) < 0)
			r = cli_fail(&err);
		else
			r = code;
		struct corral_error rerr = { 0 };
		struct rm_options ro = { .force = true };
		if (remove_container(name, &ro, &rerr) < 0)
			cli_fail(&rerr);
	}
	config_release(&c);
	return r;
}

/* Parses the command line of a command on NAME... (options through
 * on_opt), then applies fn to each name. */
static int each_name(const char *cmd, int argc, char **argv, const char *shortopts, const struct option *longopts,
		     int (*on_opt)(int, const char *, void *), void *optctx,
		     int (*fn)(const char *name, void *arg, struct corral_error *err), void *arg)
{
	struct cli_spec spec = { .cmd = cmd, .shortopts = shortopts, .longopts = longopts, .min_args = 1,
				 .max_args = -1, .missing = "no container name given" };
	struct cli_args a;
	int rc = cli_parse(&spec, argc, argv, on_opt, optctx, &a);
	if (rc)
		return rc;
	argc = a.argc;
	argv = a.argv;
	for (int i = 0; i < argc; i++) {
		struct corral_error err = { 0 };
		if (fn(argv[i], arg, &err) < 0)
			rc = cli_fail(&err);
		else
			printf("%s\n", argv[i]);
	}
	cli_args_release(&a);
	return rc;
}

static int do_start(const char *name, void *arg, struct corral_error *err)
{
	struct start_options so = { .cowfs = cli_cowfs() };
	int code;
	(void)arg;
	if (name_validate("container", name, err) < 0)
		return -EINVAL;
	return container_start(name, &so, &code, err);
}

int cmd_start(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral start NAME...\n       corral start --all-autostart\n\n"
		       "Starts containers in the background; their output goes to\n"
		       "<root>/containers/NAME/console.log, which rotates to console.log.1 at the size set\n"
		       "with create --console-size (default 1M).\n"
		       "--all-autostart starts every container created with --autostart that is not\n"
		       "running, lowest --autostart-order first, then by name (corral-autostart.service).\n");
		return 0;
	}
	bool autostart = false;
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--all-autostart"))
			autostart = true;
	if (autostart) {
		static const struct option opts[] = { { "all-autostart", no_argument, NULL, 'A' }, { 0 } };
		struct cli_spec spec = { .cmd = "start", .longopts = opts, .min_args = 0, .max_args = -1 };
		struct cli_args a;
		bool flag = false;
		int rc = cli_parse(&spec, argc, argv, cli_opt_flag, &flag, &a);
		if (rc)
			return rc;
		int names = a.argc;
		cli_args_release(&a);
		if (names)
			return cli_usage_error("start", "--all-autostart takes no container names");
		return cli_start_autostart();
	}
	return each_name("start", argc, argv, NULL, NULL, NULL, NULL, do_start, NULL);
}

static const struct option timeout_opts[] = {
	{ "time", required_argument, NULL, 't' },
	{ NULL, 0, NULL, 0 },
};

static int timeout_opt(int opt, const char *arg, void *ctx)
{
	(void)opt;
	char *end;
	long t = strtol(arg, &end, 10);
	if (end == arg || *end || t < 0 || t > 86400)
		return cli_usage_error("stop", "invalid timeout '%s'", arg);
	*(int *)ctx = (int)t;
	return 0;
}

static int do_stop(const char *name, void *arg, struct corral_error *err)
{
	if (name_validate("container", name, err) < 0)
		return -EINVAL;
	char dir[PATH_MAX];
	state_path(dir, sizeof(dir), name, NULL, NULL);
	if (access(dir, F_OK) < 0)
		return err_plain(err, ENOENT, "no such container: %s", name);
	return container_stop(name, *(int *)arg, err);
}

int cmd_stop(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral stop [-t SECONDS] NAME...\n\nSends SIGTERM to the container's command (a booted "
		       "systemd gets SIGRTMIN+3,\nanother init but busybox SIGINT), waits up to SECONDS (default 10), "
		       "then kills\neverything left; unmounts its root and frees its cgroup and network.\n");
		return 0;
	}
	int timeout = 10;
	return each_name("stop", argc, argv, "t:", timeout_opts, timeout_opt, &timeout, do_stop, &timeout);
}

static int do_restart(const char *name, void *arg, struct corral_error *err)
{
	int r = do_stop(name, arg, err);
	return r < 0 ? r : do_start(name, NULL, err);
}

int cmd_restart(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral restart [-t SECONDS] NAME...\n\nStops (see corral stop), then starts.\n");
		return 0;
	}
	int timeout = 10;
	return each_name("restart", argc, argv, "t:", timeout_opts, timeout_opt, &timeout, do_restart, &timeout);
}

static int do_kill(const char *name, void *arg, struct corral_error *err)
{
	if (name_validate("container", name, err) < 0)
		return -EINVAL;
	return container_kill(name, *(int *)arg, err);
}

static int parse_signal(const char *s)
{
	static const struct { const char *name; int sig; } names[] = {
		{ "TERM", SIGTERM }, { "KILL", SIGKILL }, { "INT", SIGINT }, { "HUP", SIGHUP },
		{ "QUIT", SIGQUIT }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "STOP", SIGSTOP },
		{ "CONT", SIGCONT }, { "WINCH", SIGWINCH },
	};
	if (!strncmp(s, "SIG", 3))
		s += 3;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcasecmp(s, names[i].name))
			return names[i].sig;
	char *end;
	long n = strtol(s, &end, 10);
	return (*end || n < 1 || n > 64) ? -1 : (int)n;
}

static int signal_opt(int opt, const char *arg, void *ctx)
{
	(void)opt;
	int sig = parse_signal(arg);
	if (sig < 0)
		return cli_usage_error("kill", "unknown signal '%s'", arg);
	*(int *)ctx = sig;
	return 0;
}

int cmd_kill(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral kill [-s SIGNAL] NAME...\n\nSends SIGNAL (default KILL) to the "
		       "container's command.\n");
		return 0;
	}
	static const struct option opts[] = {
		{ "signal", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	int sig = SIGKILL;
	return each_name("kill", argc, argv, "s:", opts, signal_opt, &sig, do_kill, &sig);
}

int cmd_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tty", no_argument, NULL, 't' },	     { "interactive", no_argument, NULL, 'i' },
		{ "user", required_argument, NULL, 'u' },    { "env", required_argument, NULL, 'e' },
		{ "env-file", required_argument, NULL, 'E' }, { "workdir", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct cli_spec spec = { .cmd = "exec", .shortopts = "itu:e:w:", .longopts = opts,
					      .min_args = 1, .max_args = -1, .missing = "no container name given",
					      .command_after = 1 };
	if (cli_spec_wants_help(&spec, argc, argv)) {
		printf("usage: corral exec [OPTIONS] NAME [--] COMMAND [ARG...]\n\nRuns COMMAND inside a running "
		       "container: every namespace, its cgroup,\nits capabilities and seccomp filter.\n\n"
		       "  -t, --tty                attach this terminal (for a shell); TERM is the caller's\n"
		       "  -i, --interactive        accepted (stdin is always the command's)\n"
		       "  -u, --user UID[:GID]|NAME[:GROUP]\n"
		       "                           run as this user, names from the container's own\n"
		       "                           /etc/passwd and /etc/group (default root)\n"
		       "  -e, --env KEY=VALUE      set a variable (repeatable)\n"
		       "  --env-file FILE          KEY=VALUE lines from a host file\n"
		       "  -w, --workdir DIR        working directory inside (default /)\n");
		return 0;
	}
	static struct exec_ctx x;
	struct cli_args a;
	x.o.env = x.env;
	int r = cli_parse(&spec, argc, argv, exec_opt, &x, &a);
	if (r)
		return r;
	const char *name = a.argv[0];
	char *shell[] = { "/bin/sh", NULL };
	char **cmd = a.argc > 1 ? a.argv + 1 : shell;
	struct corral_error err = { 0 };
	int code = 0;
	if (name_validate("container", name, &err) < 0 || container_exec(name, cmd, &x.o, &code, &err) < 0)
		code = cli_fail(&err);
	cli_args_release(&a);
	for (size_t i = 0; i < x.nfiles; i++)
		free(x.file_text[i]);
	return code;
}

static int do_rm(const char *name, void *arg, struct corral_error *err)
{
	if (name_validate("container", name, err) < 0)
		return -EINVAL;
	return remove_container(name, arg, err);
}

static int rm_opt(int opt, const char *arg, void *ctx)
{
	struct rm_options *o = ctx;
	(void)arg;
	if (opt == 'f')
		o->force = true;
	else
		o->snapshots = true;
	return 0;
}

int cmd_rm(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral rm [-f] [--snapshots] NAME...\n\nRemoves containers and their own layer. "
		       "-f stops running ones first.\nA container with snapshots is refused unless --snapshots, "
		       "which removes them\ntoo (their blocks go at the next `corral store gc`).\n");
		return 0;
	}
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "snapshots", no_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	struct rm_options o = { 0 };
	return each_name("rm", argc, argv, "f", opts, rm_opt, &o, do_rm, &o);
}
