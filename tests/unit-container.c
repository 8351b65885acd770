/* unit-container: a container's config and runtime state on disk
 * (launcher/container): a config round-trips through config_save and
 * config_load; malformed configs are refused with the file, line and key;
 * a state file with junk pids is refused whole, never half-read. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container/container-config.h"
#include "container/container-etc.h"
#include "container/state.h"
#include "fileio.h"
#include "tap.h"

static char tmp[PATH_MAX], cfg_path[PATH_MAX + 16];

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		diag("write %s: %s", path, strerror(errno));
}

/* A valid config with `extra` lines after it. */
static int load_with(const char *extra, struct container_config *c, struct corral_error *e)
{
	char text[4096];
	snprintf(text, sizeof(text), "# test\nname = web\ntemplate = default\nhostname = web\narg = /bin/sh\n%s", extra);
	put(cfg_path, text);
	memset(e, 0, sizeof(*e));
	int r = config_load(cfg_path, c, e);
	if (r == 0)
		config_release(c);
	return r;
}

static void test_round_trip(void)
{
	struct container_config c, d;
	struct corral_error e = { 0 };
	config_init(&c);
	snprintf(c.name, sizeof(c.name), "web-1");
	snprintf(c.template_name, sizeof(c.template_name), "base.2");
	snprintf(c.hostname, sizeof(c.hostname), "host.example");
	char *argv[] = { "/bin/sh", "-c", "echo a = b\nnext line \\ back", "", "  spaced  " };
	ok(config_set_argv(&c, 5, argv, &e) == 0, "set argv");
	c.limits.memory_max = 64 << 20;
	c.limits.memory_swap_max = 0;
	c.limits.cpu_quota_us = 50000;
	c.limits.cpu_period_us = 100000;
	c.limits.cpu_weight = 200;
	snprintf(c.limits.cpuset_cpus, sizeof(c.limits.cpuset_cpus), "0-1");
	c.limits.pids_max = 99;
	ok(config_parse_io_limit("device-read-bps", "8:0=1M", &c.limits, &e) == 0 &&
	   config_parse_io_limit("device-write-iops", "8:16=300", &c.limits, &e) == 0, "io limits");
	c.disk_bytes = 1ULL << 33;
	c.disk_inodes = 12345;
	c.net.mode = NET_BRIDGE;
	snprintf(c.net.subnet, sizeof(c.net.subnet), "10.77.0.0/24");
	c.net.nat = true;
	c.seccomp = SECCOMP_UNCONFINED;
	c.userns = true;
	c.userns_base = 200000;
	c.userns_size = 65536;
	c.console_size = 1 << 20;
	c.store = false;
	c.store_delay = 5;
	c.nmounts = 1;
	snprintf(c.mounts[0].source, sizeof(c.mounts[0].source), "/srv/data");
	snprintf(c.mounts[0].target, sizeof(c.mounts[0].target), "/data");
	c.mounts[0].readonly = true;

	int r = config_save(&c, cfg_path, &e);
	ok(r == 0, "config_save (%s)", r ? e.msg : "ok");
	r = config_load(cfg_path, &d, &e);
	ok(r == 0, "config_load of what config_save wrote (%s)", r ? e.msg : "ok");
	if (r < 0) {
		config_release(&c);
		return;
	}
	ok(!strcmp(d.name, c.name) && !strcmp(d.template_name, c.template_name) && !strcmp(d.hostname, c.hostname),
	   "names and hostname");
	bool args = d.argc == c.argc;
	for (int i = 0; args && i < c.argc; i++)
		args = !strcmp(d.argv[i], c.argv[i]);
	ok(args && d.argv[d.argc] == NULL, "arguments with '=', newline, backslash, empty and blanks");
	ok(d.limits.memory_max == c.limits.memory_max && d.limits.memory_swap_max == 0 &&
	   d.limits.cpu_quota_us == 50000 && d.limits.cpu_period_us == 100000 && d.limits.cpu_weight == 200 &&
	   !strcmp(d.limits.cpuset_cpus, "0-1") && d.limits.pids_max == 99, "cgroup limits");
	ok(d.limits.nio == 2 && d.limits.io[0].major == 8 && d.limits.io[0].minor == 0 &&
	   d.limits.io[0].rbps == 1 << 20 && d.limits.io[0].wbps == CGROUP_UNSET && d.limits.io[1].minor == 16 &&
	   d.limits.io[1].wiops == 300 && d.limits.io[1].riops == CGROUP_UNSET, "io limits, unset rates as -1");
	ok(d.disk_bytes == 1ULL << 33 && d.disk_inodes == 12345 && d.console_size == 1 << 20, "disk quota, console size");
	ok(d.net.mode == NET_BRIDGE && !strcmp(d.net.subnet, "10.77.0.0/24") && d.net.nat &&
	   !strcmp(d.net.bridge, c.net.bridge), "bridge network");
	ok(d.caps == c.caps && d.seccomp == SECCOMP_UNCONFINED, "capabilities and seccomp");
	ok(d.userns && d.userns_base == 200000 && d.userns_size == 65536, "user namespace range");
	ok(!d.store && d.store_delay == 5, "store = no and store_delay");
	ok(d.nmounts == 1 && !strcmp(d.mounts[0].source, "/srv/data") && !strcmp(d.mounts[0].target, "/data") &&
	   d.mounts[0].readonly, "bind mount");
	config_release(&c);
	config_release(&d);
}

/* config_load must refuse extra line(s), with every `want` in the message. */
static void refused(const char *extra, const char *want1, const char *want2, const char *what)
{
	struct container_config c;
	struct corral_error e;
	int r = load_with(extra, &c, &e);
	ok(r < 0 && strstr(e.msg, want1) && (!want2 || strstr(e.msg, want2)), "%s: %s", what, e.msg);
}

static void test_malformed(void)
{
	struct container_config c;
	struct corral_error e;
	ok(load_with("", &c, &e) == 0, "the base config loads (%s)", e.msg);
	ok(c.store && c.store_delay == STORE_DELAY_DEFAULT, "without the keys a container is store-backed, delay 30 s");
	refused("memory = 12abc\n", "config:6: memory: '12abc' is not", NULL, "junk after a number");
	refused("memory = \n", "config:6: memory", NULL, "an empty number");
	refused("pids = 99999999999999999999\n", "config:6: pids", "out of range", "an overflowing number");
	refused("pids = -5\n", "config:6: pids", "negative", "a negative limit");
	refused("disk_bytes = -1\n", "config:6: disk_bytes", NULL, "a negative disk quota");
	refused("console_size = 1e6\n", "config:6: console_size", NULL, "a float where a count belongs");
	refused("userns_range = 100000:65536x\n", "config:6:", "userns_range", "junk in userns_range");
	refused("userns_range = -1:65536\n", "config:6:", "userns_range", "a negative userns base");
	refused("store = maybe\n", "config:6: store: 'maybe' is not yes or no", NULL, "a store that is neither");
	refused("store_delay = 86401\n", "store_delay 86401 is out of range", NULL, "a store_delay over a day");
	refused("nat = maybe\n", "config:6: nat: 'maybe' is not yes or no", NULL, "a bool that is neither");
	refused("io = 8:0 1 2 3\n", "config:6: malformed io line", NULL, "an io line with a rate missing");
	refused("io = 8:x 1 2 3 4\n", "config:6: malformed io line", NULL, "an io line with a bad device");
	refused("mount = /a:/b:rx\n", "config:6: malformed mount", NULL, "a mount with a bad option");
	refused("bogus = 1\n", "config:6: unknown key 'bogus'", NULL, "an unknown key");
	refused("memory=1\n", "config:6: expected 'key = value'", NULL, "a line without the blanks around '='");
	refused("\n\n# c\nmemory = x\n", "config:9: memory", NULL, "line numbers count blank lines");
	char long_name[128];
	snprintf(long_name, sizeof(long_name), "name = %070d\n", 0);
	refused(long_name, "config:6: name", "at most 64", "a name longer than 64 characters is refused, not cut");
	refused("network = carrier-pigeon\n", "config:6:", "carrier-pigeon", "an unknown network mode");
	refused("network = bridge\nsubnet = 10.0.0.0/016\n", "config", "10.0.0.0/016",
		"a subnet the start would refuse is refused at load");
}

static void test_validate_subnet(void)
{
	struct container_config c;
	struct corral_error e = { 0 };
	config_init(&c);
	snprintf(c.name, sizeof(c.name), "web");
	char *argv[] = { "/bin/true" };
	config_set_argv(&c, 1, argv, &e);
	c.net.mode = NET_BRIDGE;
	const char *bad[] = { "10.0.0.0/016", "10.0.0.1/24", "10.0.0.0/7", "10.0.0.0/31", "10.0.0.0", "fd00::/64" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(c.net.subnet, sizeof(c.net.subnet), "%s", bad[i]);
		memset(&e, 0, sizeof(e));
		ok(config_validate(&c, &e) < 0 && strstr(e.msg, bad[i]), "create refuses subnet %s: %s", bad[i], e.msg);
	}
	snprintf(c.net.subnet, sizeof(c.net.subnet), "10.0.0.0/8");
	ok(config_validate(&c, &e) == 0, "create takes subnet 10.0.0.0/8");
	config_release(&c);
}

static int state_with(const char *text, struct container_state *st, struct corral_error *e)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/containers/web/state", tmp);
	put(p, text);
	if (e)
		memset(e, 0, sizeof(*e));
	memset(st, 0x55, sizeof(*st));
	return state_load("web", st, e);
}

static void test_state(void)
{
	struct container_state st, back;
	struct corral_error e = { 0 };
	state_init(&st);
	int r = state_load("web", &back, &e);
	ok(r == 0 && !strcmp(back.status, "created") && back.init_pid == 0, "no state file: created");

	snprintf(st.status, sizeof(st.status), "running");
	st.init_pid = 4242;
	st.init_start = 123456789012ULL;
	st.monitor_pid = 17;
	st.monitor_start = 99;
	st.cowfs_pid = 2147483647;
	st.cowfs_start = 18446744073709551615ULL;
	st.exit_code = 137;
	st.started_at = 1700000000;
	st.finished_at = -1;
	snprintf(st.address, sizeof(st.address), "10.88.0.2/16");
	r = state_save("web", &st, &e);
	ok(r == 0, "state_save (%s)", r ? e.msg : "ok");
	r = state_load("web", &back, &e);
	ok(r == 0 && !strcmp(back.status, "running") && back.init_pid == 4242 && back.init_start == 123456789012ULL &&
	   back.monitor_pid == 17 && back.monitor_start == 99 && back.cowfs_pid == 2147483647 &&
	   back.cowfs_start == 18446744073709551615ULL && back.exit_code == 137 && back.started_at == 1700000000 &&
	   back.finished_at == -1 && !strcmp(back.address, "10.88.0.2/16"),
	   "state round-trips (%s)", r ? e.msg : "ok");

	r = state_with("status = running\ninit_pid = 12abc\ninit_start = 5\n", &st, &e);
	ok(r == -EINVAL && strstr(e.msg, "state:2: init_pid: '12abc'"), "a junk pid is refused: %s", e.msg);
	ok(st.init_pid == 0 && st.init_start == 0 && !strcmp(st.status, "created"),
	   "a refused state is not half-read (no pid to signal)");
	r = state_with("init_pid = -5\n", &st, &e);
	ok(r == -EINVAL && strstr(e.msg, "init_pid"), "a negative pid is refused: %s", e.msg);
	r = state_with("cowfs_pid = 2147483648\n", &st, &e);
	ok(r == -ERANGE && strstr(e.msg, "cowfs_pid"), "a pid above INT_MAX is refused: %s", e.msg);
	r = state_with("monitor_pid = \n", &st, &e);
	ok(r == -EINVAL && strstr(e.msg, "monitor_pid"), "an empty pid is refused: %s", e.msg);
	r = state_with("init_start = 0x10\n", &st, &e);
	ok(r == -EINVAL && strstr(e.msg, "init_start"), "a hex start time is refused: %s", e.msg);
	r = state_with("status = zombie\n", &st, &e);
	ok(r == -EINVAL && strstr(e.msg, "status"), "an unknown status is refused: %s", e.msg);
	r = state_with("init_pid 5\n", &st, &e);
	ok(r == -EINVAL && strstr(e.msg, "state:1: expected 'key = value'"), "a malformed line is refused: %s", e.msg);
	r = state_with("# c\nfuture_key = anything at all\ninit_pid = 7\n", &st, &e);
	ok(r == 0 && st.init_pid == 7, "a key a newer corral writes is ignored (%s)", r ? e.msg : "ok");
	ok(state_with("init_pid = 12abc\n", &st, NULL) == -EINVAL && st.init_pid == 0,
	   "refused also without an error struct");
}

/* boot = idle|init|systemd round-trips, and its rules hold. */
static void test_boot(void)
{
	struct container_config c;
	struct corral_error e = { 0 };
	int r = load_with("boot = systemd\n", &c, &e);
	ok(r == 0, "boot = systemd with a command loads (%s)", r ? e.msg : "ok");
	refused("boot = maybe\n", "boot must be idle, init, systemd or busybox", NULL, "an unknown boot value");
	refused("boot = idle\n", "boot = idle takes no command", NULL, "boot = idle with a command");
	put(cfg_path, "name = web\ntemplate = default\n");
	ok(config_load(cfg_path, &c, &e) < 0 && strstr(e.msg, "no command"), "no command and no boot key: %s", e.msg);
	for (const char *const *v = (const char *const[]){ "init", "busybox", "systemd", NULL }; *v; v++) {
		char line[64];
		snprintf(line, sizeof(line), "boot = %s\n", *v);
		r = load_with(line, &c, &e);
		ok(r == 0, "boot = %s loads (%s)", *v, r ? e.msg : "ok");
	}
	put(cfg_path, "name = web\ntemplate = default\nboot = idle\n");
	r = config_load(cfg_path, &c, &e);
	ok(r == 0 && c.boot == BOOT_IDLE && c.argc == 0, "boot = idle without a command loads");
	if (r == 0) {
		ok(config_save(&c, cfg_path, &e) == 0 && config_load(cfg_path, &c, &e) == 0 && c.boot == BOOT_IDLE,
		   "and round-trips");
		config_release(&c);
	}
	config_init(&c);
	ok(config_stop_signal(&c) == SIGTERM, "stop signal: SIGTERM for a command");
	c.boot = BOOT_BUSYBOX;
	ok(config_stop_signal(&c) == SIGTERM, "SIGTERM for busybox init (its reboot, which ends the container)");
	c.boot = BOOT_INIT;
	ok(config_stop_signal(&c) == SIGINT, "SIGINT for another init (ctrl-alt-del: sysvinit ignores SIGTERM)");
	c.boot = BOOT_SYSTEMD;
	ok(config_stop_signal(&c) == SIGRTMIN + 3, "SIGRTMIN+3 for systemd (halt)");
}

/* /etc/resolv.conf by network mode. */
static void test_resolv(void)
{
	static const char host[] = "# host\nsearch example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.1\n"
				   "nameserver ::1\noptions edns0\nnameserver 2001:db8::1\n";
	struct container_config c;
	char *out = NULL;
	config_init(&c);
	c.net.mode = NET_NONE;
	ok(container_etc_resolv(&c, host, &out) == 0 && !strstr(out, "nameserver") && strstr(out, "network none"),
	   "none: no name server, and why");
	free(out);
	c.net.mode = NET_BRIDGE;
	ok(container_etc_resolv(&c, host, &out) == 0 && !strstr(out, "nameserver") && strstr(out, "binds the bridge"),
	   "bridge: no name server of its own (the bridge's file is bound over it at start), and why");
	free(out);
	c.net.mode = NET_HOST;
	ok(container_etc_resolv(&c, host, &out) == 0 && !strcmp(out, host), "host: the host's file as it is");
	free(out);
	ok(container_etc_resolv(&c, NULL, &out) == 0 && !strstr(out, "nameserver"), "no host file: none");
	free(out);
}

int main(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/unit-container.XXXXXX");
	if (!mkdtemp(tmp)) {
		ok(false, "mkdtemp: %s", strerror(errno));
		return tap_done();
	}
	char dir[PATH_MAX + 32];
	snprintf(dir, sizeof(dir), "%s/containers/web", tmp);
	mkdir_p(dir, 0700, NULL);
	snprintf(cfg_path, sizeof(cfg_path), "%s/config", dir);
	state_set_root(tmp);

	test_round_trip();
	test_malformed();
	test_validate_subnet();
	test_state();
	test_boot();
	test_resolv();
	remove_tree(tmp, NULL);
	return tap_done();
}
