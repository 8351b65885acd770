#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "container-config.h"
#include "container/state.h"
#include "cleanup.h"
#include "fileio.h"
#include "kv.h"
#include "template/template.h"

void config_init(struct container_config *c)
{
	memset(c, 0, sizeof(*c));
	cgroup_limits_init(&c->limits);
	net_config_init(&c->net);
	c->caps = caps_default();
	c->seccomp = SECCOMP_DEFAULT;
	c->userns_base = 100000;
	c->userns_size = 65536;
	c->console_size = CONSOLE_LOG_SIZE_DEFAULT;
	/* On unless `store = no` (create --no-store); a config written before
	 * the key existed gets it too: files only move once written. */
	c->store = true;
	c->store_delay = STORE_DELAY_DEFAULT;
	snprintf(c->template_name, sizeof(c->template_name), "%s", TEMPLATE_DEFAULT);
}

void config_release(struct container_config *c)
{
	for (int i = 0; i < c->argc; i++)
		free(c->argv[i]);
	c->argc = 0;
	c->argv[0] = NULL;
}

int config_parse_size(const char *what, const char *s, uint64_t *ret, struct corral_error *err)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		goto bad;
	uint64_t mult = 1;
	if (*end) {
		switch (toupper((unsigned char)*end)) {
		case 'K': mult = 1ULL << 10; break;
		case 'M': mult = 1ULL << 20; break;
		case 'G': mult = 1ULL << 30; break;
		case 'T': mult = 1ULL << 40; break;
		case 'B': mult = 1; end--; break;
		default: goto bad;
		}
		end++;
		/* Accept K, KB, KiB, k, kb... */
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'B' || *end == 'b')
			end++;
		if (*end)
			goto bad;
	}
	if (v * (double)mult > 9.0e18)
		goto bad;
	*ret = (uint64_t)(v * (double)mult);
	return 0;
bad:
	return err_plain(err, EINVAL, "invalid %s '%s': expected a size like 512M, 2G or 1048576", what, s);
}

int config_parse_cpus(const char *s, int64_t *ret_quota_us, int64_t *ret_period_us, struct corral_error *err)
{
	char *end;
	errno = 0;
	double cpus = strtod(s, &end);
	if (errno || end == s || *end || cpus <= 0 || cpus > 4096)
		return err_plain(err, EINVAL, "invalid CPU limit '%s': expected a number of CPUs like 0.5 or 2", s);
	*ret_period_us = 100000;
	*ret_quota_us = (int64_t)(cpus * 100000.0);
	if (*ret_quota_us < 1000)
		return err_plain(err, EINVAL, "CPU limit '%s' is below the minimum of 0.01", s);
	return 0;
}

int config_validate_hostname(const char *s, struct corral_error *err)
{
	size_t len = strlen(s);
	if (len == 0 || len > HOSTNAME_MAX_LEN)
		return err_plain(err, EINVAL, "invalid hostname '%s': must be 1 to %d characters", s,
				 HOSTNAME_MAX_LEN);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!isalnum((unsigned char)c) && c != '-' && c != '.')
			return err_plain(err, EINVAL,
					 "invalid hostname '%s': only letters, digits, '-' and '.' are allowed", s);
	}
	if (s[0] == '-' || s[0] == '.')
		return err_plain(err, EINVAL, "invalid hostname '%s': must start with a letter or digit", s);
	return 0;
}

static bool path_is_clean_absolute(const char *p)
{
	if (p[0] != '/')
		return false;
	for (const char *c = p; *c; c++) {
		if (c[0] == '/' && c[1] == '.' && c[2] == '.' && (c[3] == '/' || c[3] == '\0'))
			return false;
	}
	return true;
}

int config_parse_mount(const char *s, struct bind_mount *m, struct corral_error *err)
{
	char buf[1100];
	snprintf(buf, sizeof(buf), "%s", s);
	char *src = buf, *dst = strchr(buf, ':');
	if (!dst)
		return err_plain(err, EINVAL, "invalid mount '%s': expected HOST_PATH:CONTAINER_PATH[:ro]", s);
	*dst++ = '\0';
	char *opt = strchr(dst, ':');
	m->readonly = false;
	if (opt) {
		*opt++ = '\0';
		if (!strcmp(opt, "ro"))
			m->readonly = true;
		else if (strcmp(opt, "rw"))
			return err_plain(err, EINVAL, "invalid mount option '%s' in '%s': use ro or rw", opt, s);
	}
	if (!path_is_clean_absolute(src) || !path_is_clean_absolute(dst))
		return err_plain(err, EINVAL, "invalid mount '%s': both paths must be absolute, without '..'", s);
	if (strlen(src) >= sizeof(m->source) || strlen(dst) >= sizeof(m->target))
		return err_plain(err, ENAMETOOLONG, "invalid mount '%s': path too long", s);
	struct stat st;
	if (stat(src, &st) < 0)
		return err_set(err, errno, "mount source '%s'", src);
	snprintf(m->source, sizeof(m->source), "%s", src);
	snprintf(m->target, sizeof(m->target), "%s", dst);
	return 0;
}

/* "MAJOR:MINOR=VALUE" or "/dev/PATH=VALUE"; what names the limit kind. */
int config_parse_io_limit(const char *what, const char *s, struct cgroup_limits *lim, struct corral_error *err)
{
	char dev[256];
	const char *eq = strchr(s, '=');
	if (!eq || (size_t)(eq - s) >= sizeof(dev))
		return err_plain(err, EINVAL, "invalid %s '%s': expected DEVICE=VALUE (DEVICE is /dev/sda or 8:0)",
				 what, s);
	memcpy(dev, s, eq - s);
	dev[eq - s] = '\0';
	unsigned major, minor;
	if (dev[0] == '/') {
		struct stat st;
		if (stat(dev, &st) < 0)
			return err_set(err, errno, "%s device '%s'", what, dev);
		if (!S_ISBLK(st.st_mode))
			return err_plain(err, EINVAL, "%s device '%s' is not a block device", what, dev);
		major = major(st.st_rdev);
		minor = minor(st.st_rdev);
	} else if (sscanf(dev, "%u:%u", &major, &minor) != 2) {
		return err_plain(err, EINVAL, "invalid %s device '%s': expected /dev/PATH or MAJOR:MINOR", what, dev);
	}
	uint64_t value;
	bool is_bytes = strstr(what, "bps") != NULL;
	if (is_bytes) {
		int r = config_parse_size(what, eq + 1, &value, err);
		if (r < 0)
			return r;
		if (value == 0)
			return err_plain(err, EINVAL, "invalid %s '%s': the rate must be above 0", what, eq + 1);
	} else {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(eq + 1, &end, 10);
		if (errno || *end || end == eq + 1 || v == 0)
			return err_plain(err, EINVAL, "invalid %s '%s': expected a positive number", what, eq + 1);
		value = v;
	}
	struct cgroup_io_limit *l = NULL;
	for (int i = 0; i < lim->nio; i++)
		if (lim->io[i].major == major && lim->io[i].minor == minor)
			l = &lim->io[i];
	if (!l) {
		if (lim->nio >= (int)(sizeof(lim->io) / sizeof(lim->io[0])))
			return err_plain(err, E2BIG, "too many I/O limit devices");
		l = &lim->io[lim->nio++];
		*l = (struct cgroup_io_limit){ .major = major, .minor = minor, .rbps = CGROUP_UNSET,
					       .wbps = CGROUP_UNSET, .riops = CGROUP_UNSET,
					       .wiops = CGROUP_UNSET };
	}
	if (!strcmp(what, "device-read-bps"))
		l->rbps = (int64_t)value;
	else if (!strcmp(what, "device-write-bps"))
		l->wbps = (int64_t)value;
	else if (!strcmp(what, "device-read-iops"))
		l->riops = (int64_t)value;
	else
		l->wiops = (int64_t)value;
	return 0;
}

int config_set_argv(struct container_config *c, int argc, char **argv, struct corral_error *err)
{
	if (argc > CONFIG_MAX_ARGS)
		return err_plain(err, E2BIG, "command has %d arguments; at most %d are supported", argc,
				 CONFIG_MAX_ARGS);
	config_release(c);
	for (int i = 0; i < argc; i++) {
		c->argv[i] = strdup(argv[i]);
		if (!c->argv[i])
			return err_set(err, ENOMEM, "copy command");
		c->argc = i + 1;
	}
	c->argv[c->argc] = NULL;
	return 0;
}

int config_stop_signal(const struct container_config *c)
{
	return c->boot == BOOT_SYSTEMD ? SIGRTMIN + 3 : c->boot == BOOT_INIT ? SIGINT : SIGTERM;
}

int config_validate(const struct container_config *c, struct corral_error *err)
{
	int r = name_validate("container", c->name, err);
	if (r < 0)
		return r;
	r = name_validate("template", c->template_name, err);
	if (r < 0)
		return r;
	if (c->hostname[0] && (r = config_validate_hostname(c->hostname, err)) < 0)
		return r;
	if (c->argc == 0 && c->boot != BOOT_IDLE)
		return err_plain(err, EINVAL, "no command given for container '%s'", c->name);
	if (c->argc != 0 && c->boot == BOOT_IDLE)
		return err_plain(err, EINVAL, "container '%s': boot = idle takes no command", c->name);
	if (c->limits.memory_max != CGROUP_UNSET && c->limits.memory_max < (4 << 20))
		return err_plain(err, EINVAL, "memory limit %lld bytes is below the minimum of 4M",
				 (long long)c->limits.memory_max);
	if (c->limits.pids_max != CGROUP_UNSET && c->limits.pids_max < 1)
		return err_plain(err, EINVAL, "pids limit must be at least 1");
	if ((r = cgroup_limits_validate(&c->limits, err)) < 0)
		return r;
	struct net_subnet sn;
	if (c->net.mode == NET_BRIDGE && (r = net_subnet_parse(c->net.subnet, &sn, err)) < 0)
		return r;
	if (c->net.mode != NET_BRIDGE && (c->net.ip[0] || c->net.nports))
		return err_plain(err, EINVAL, "%s needs --network bridge", c->net.ip[0] ? "--ip" : "--publish");
	if (c->net.ip[0] && (r = net_ip_validate(c->net.ip, c->net.subnet, err)) < 0)
		return r;
	for (int i = 0; i < c->net.nports; i++)
		for (int j = 0; j < i; j++)
			if (c->net.ports[i].host == c->net.ports[j].host && c->net.ports[i].udp == c->net.ports[j].udp)
				return err_plain(err, EINVAL, "host port %u/%s is published twice", c->net.ports[i].host,
						 c->net.ports[i].udp ? "udp" : "tcp");
	if (c->autostart_order < -AUTOSTART_ORDER_MAX || c->autostart_order > AUTOSTART_ORDER_MAX)
		return err_plain(err, EINVAL, "autostart_order %d is out of range (-%d to %d)", c->autostart_order,
				 AUTOSTART_ORDER_MAX, AUTOSTART_ORDER_MAX);
	if (c->store_delay > STORE_DELAY_MAX)
		return err_plain(err, EINVAL, "store_delay %u is out of range (0 to %u seconds)", c->store_delay,
				 STORE_DELAY_MAX);
	if (c->console_size < CONSOLE_LOG_SIZE_MIN || c->console_size > (1ULL << 40))
		return err_plain(err, EINVAL, "console log size %llu bytes is outside 64K..1T",
				 (unsigned long long)c->console_size);
	if (c->userns && (c->userns_base == 0 || c->userns_size < 1024))
		return err_plain(err, EINVAL, "user namespace range must start above 0 and hold at least 1024 ids");
	return 0;
}

/* ---- serialization: "key = value" lines ---- */

struct strbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->s && b->len + n < b->cap) {
			b->len += n;
			return;
		}
		size_t cap = (b->cap + n + 1) * 2;
		char *s = realloc(b->s, cap);
		if (!s) {
			b->oom = true;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
}

/* Values are written raw up to the end of the line; newlines in a value
 * (only possible in command arguments) are escaped as \n, backslash as \\. */
static void sb_value(struct strbuf *b, const char *key, const char *v)
{
	sb_printf(b, "%s = ", key);
	for (const char *p = v; *p; p++) {
		if (*p == '\n')
			sb_printf(b, "\\n");
		else if (*p == '\\')
			sb_printf(b, "\\\\");
		else
			sb_printf(b, "%c", *p);
	}
	sb_printf(b, "\n");
}

int config_save(const struct container_config *c, const char *path, struct corral_error *err)
{
	struct strbuf b = { 0 };
	char caps[1024];

	sb_printf(&b, "# corral container configuration (written by corral create)\n");
	sb_value(&b, "name", c->name);
	sb_value(&b, "template", c->template_name);
	sb_value(&b, "hostname", c->hostname[0] ? c->hostname : c->name);
	for (int i = 0; i < c->argc; i++)
		sb_value(&b, "arg", c->argv[i]);
	if (c->boot != BOOT_COMMAND)
		sb_value(&b, "boot", c->boot == BOOT_IDLE     ? "idle"
				   : c->boot == BOOT_INIT     ? "init"
				   : c->boot == BOOT_BUSYBOX ? "busybox"
							     : "systemd");
	const struct cgroup_limits *l = &c->limits;
	if (l->memory_max != CGROUP_UNSET)
		sb_printf(&b, "memory = %lld\n", (long long)l->memory_max);
	if (l->memory_swap_max != CGROUP_UNSET)
		sb_printf(&b, "memory_swap = %lld\n", (long long)l->memory_swap_max);
	if (l->cpu_quota_us != CGROUP_UNSET)
		sb_printf(&b, "cpu_quota_us = %lld\ncpu_period_us = %lld\n", (long long)l->cpu_quota_us,
			  (long long)l->cpu_period_us);
	if (l->cpu_weight != CGROUP_UNSET)
		sb_printf(&b, "cpu_weight = %lld\n", (long long)l->cpu_weight);
	if (l->cpuset_cpus[0])
		sb_value(&b, "cpuset_cpus", l->cpuset_cpus);
	if (l->cpuset_mems[0])
		sb_value(&b, "cpuset_mems", l->cpuset_mems);
	if (l->pids_max != CGROUP_UNSET)
		sb_printf(&b, "pids = %lld\n", (long long)l->pids_max);
	for (int i = 0; i < l->nio; i++)
		sb_printf(&b, "io = %u:%u %lld %lld %lld %lld\n", l->io[i].major, l->io[i].minor,
			  (long long)l->io[i].rbps, (long long)l->io[i].wbps, (long long)l->io[i].riops,
			  (long long)l->io[i].wiops);
	if (c->disk_bytes)
		sb_printf(&b, "disk_bytes = %llu\n", (unsigned long long)c->disk_bytes);
	if (c->disk_inodes)
		sb_printf(&b, "disk_inodes = %llu\n", (unsigned long long)c->disk_inodes);
	sb_value(&b, "network", net_mode_name(c->net.mode));
	if (c->net.mode == NET_BRIDGE) {
		sb_value(&b, "bridge", c->net.bridge);
		sb_value(&b, "subnet", c->net.subnet);
		sb_printf(&b, "nat = %s\n", c->net.nat ? "yes" : "no");
		if (c->net.ip[0])
			sb_value(&b, "ip", c->net.ip);
		for (int i = 0; i < c->net.nports; i++) {
			char port[32];
			net_port_format(&c->net.ports[i], port, sizeof(port));
			sb_value(&b, "publish", port);
		}
	}
	caps_format(c->caps, caps, sizeof(caps));
	sb_value(&b, "capabilities", caps);
	sb_printf(&b, "seccomp = %s\n", c->seccomp == SECCOMP_DEFAULT ? "default" : "unconfined");
	sb_printf(&b, "userns = %s\n", c->userns ? "yes" : "no");
	if (c->userns)
		sb_printf(&b, "userns_range = %u:%u\n", c->userns_base, c->userns_size);
	sb_printf(&b, "console_size = %llu\n", (unsigned long long)c->console_size);
	if (c->share_base)
		sb_printf(&b, "share_base = yes\n");
	sb_printf(&b, "store = %s\n", c->store ? "yes" : "no");
	if (c->store_delay != STORE_DELAY_DEFAULT)
		sb_printf(&b, "store_delay = %u\n", c->store_delay);
	if (c->autostart)
		sb_printf(&b, "autostart = yes\n");
	if (c->autostart_order)
		sb_printf(&b, "autostart_order = %d\n", c->autostart_order);
	for (int i = 0; i < c->nmounts; i++)
		sb_printf(&b, "mount = %s:%s:%s\n", c->mounts[i].source, c->mounts[i].target,
			  c->mounts[i].readonly ? "ro" : "rw");
	if (b.oom) {
		free(b.s);
		return err_set(err, ENOMEM, "format the config of '%s'", c->name);
	}
	int r = file_write_atomic(path, b.s, b.len, 0644, err);
	free(b.s);
	return r;
}

static void unescape(char *s)
{
	char *w = s;
	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] == 'n') {
			*w++ = '\n';
			p++;
		} else if (p[0] == '\\' && p[1] == '\\') {
			*w++ = '\\';
			p++;
		} else {
			*w++ = *p;
		}
	}
	*w = '\0';
}

/* "MAJOR:MINOR RBPS WBPS RIOPS WIOPS", each rate -1 (CGROUP_UNSET) or more. */
static int parse_io_line(const struct kv_line *kv, struct cgroup_io_limit *io, struct corral_error *err)
{
	char buf[128], *f[5], *save = NULL;
	int n = 0;
	if (kv_str(kv, buf, sizeof(buf), err) < 0)
		return -EINVAL;
	for (char *t = strtok_r(buf, " ", &save); t && n < 6; t = strtok_r(NULL, " ", &save))
		if (n < 5)
			f[n++] = t;
		else
			n++;
	char *colon = n == 5 ? strchr(f[0], ':') : NULL;
	if (!colon)
		goto bad;
	*colon = '\0';
	uint64_t major, minor;
	int64_t v[4];
	if (parse_u64_max(f[0], UINT32_MAX, &major) < 0 || parse_u64_max(colon + 1, UINT32_MAX, &minor) < 0)
		goto bad;
	for (int i = 0; i < 4; i++)
		if (parse_i64(f[i + 1], &v[i]) < 0 || v[i] < CGROUP_UNSET)
			goto bad;
	*io = (struct cgroup_io_limit){ .major = (unsigned)major, .minor = (unsigned)minor, .rbps = v[0],
					.wbps = v[1], .riops = v[2], .wiops = v[3] };
	return 0;
bad:
	return err_plain(err, EINVAL, "malformed io line '%.200s': expected MAJOR:MINOR RBPS WBPS RIOPS WIOPS",
			 kv->value);
}

/* A limit: a number, or -1 (CGROUP_UNSET) for none. */
static int parse_limit(const struct kv_line *kv, int64_t *ret, struct corral_error *err)
{
	int64_t v;
	int r = kv_i64(kv, &v, err);
	if (r < 0)
		return r;
	if (v < CGROUP_UNSET)
		return err_plain(err, EINVAL, "%s: '%s' is negative", kv->key, kv->value);
	*ret = v;
	return 0;
}

static int config_apply_line(const struct kv_line *kv, void *arg, struct corral_error *err)
{
	struct container_config *c = arg;
	struct cgroup_limits *l = &c->limits;
	const char *key = kv->key;
	char *v = kv->value;
	if (!strcmp(key, "name"))
		return kv_str(kv, c->name, sizeof(c->name), err);
	else if (!strcmp(key, "template"))
		return kv_str(kv, c->template_name, sizeof(c->template_name), err);
	else if (!strcmp(key, "hostname"))
		return kv_str(kv, c->hostname, sizeof(c->hostname), err);
	else if (!strcmp(key, "arg")) {
		if (c->argc >= CONFIG_MAX_ARGS)
			return err_plain(err, E2BIG, "too many arguments (at most %d)", CONFIG_MAX_ARGS);
		unescape(v);
		c->argv[c->argc] = strdup(v);
		if (!c->argv[c->argc])
			return err_set(err, ENOMEM, "arg");
		c->argv[++c->argc] = NULL;
	} else if (!strcmp(key, "boot")) {
		if (!strcmp(v, "idle"))
			c->boot = BOOT_IDLE;
		else if (!strcmp(v, "init"))
			c->boot = BOOT_INIT;
		else if (!strcmp(v, "systemd"))
			c->boot = BOOT_SYSTEMD;
		else if (!strcmp(v, "busybox"))
			c->boot = BOOT_BUSYBOX;
		else
			return err_plain(err, EINVAL, "boot must be idle, init, systemd or busybox, not '%s'", v);
	} else if (!strcmp(key, "memory"))
		return parse_limit(kv, &l->memory_max, err);
	else if (!strcmp(key, "memory_swap"))
		return parse_limit(kv, &l->memory_swap_max, err);
	else if (!strcmp(key, "cpu_quota_us"))
		return parse_limit(kv, &l->cpu_quota_us, err);
	else if (!strcmp(key, "cpu_period_us"))
		return parse_limit(kv, &l->cpu_period_us, err);
	else if (!strcmp(key, "cpu_weight"))
		return parse_limit(kv, &l->cpu_weight, err);
	else if (!strcmp(key, "cpuset_cpus"))
		return kv_str(kv, l->cpuset_cpus, sizeof(l->cpuset_cpus), err);
	else if (!strcmp(key, "cpuset_mems"))
		return kv_str(kv, l->cpuset_mems, sizeof(l->cpuset_mems), err);
	else if (!strcmp(key, "pids"))
		return parse_limit(kv, &l->pids_max, err);
	else if (!strcmp(key, "io")) {
		if (l->nio >= (int)(sizeof(l->io) / sizeof(l->io[0])))
			return err_plain(err, E2BIG, "too many io lines");
		int r = parse_io_line(kv, &l->io[l->nio], err);
		if (r < 0)
			return r;
		l->nio++;
	} else if (!strcmp(key, "disk_bytes"))
		return kv_u64(kv, &c->disk_bytes, err);
	else if (!strcmp(key, "console_size"))
		return kv_u64(kv, &c->console_size, err);
	else if (!strcmp(key, "disk_inodes"))
		return kv_u64(kv, &c->disk_inodes, err);
	else if (!strcmp(key, "network"))
		return net_mode_parse(v, &c->net.mode, err);
	else if (!strcmp(key, "bridge"))
		return kv_str(kv, c->net.bridge, sizeof(c->net.bridge), err);
	else if (!strcmp(key, "subnet"))
		return kv_str(kv, c->net.subnet, sizeof(c->net.subnet), err);
	else if (!strcmp(key, "nat"))
		return kv_bool(kv, &c->net.nat, err);
	else if (!strcmp(key, "ip"))
		return kv_str(kv, c->net.ip, sizeof(c->net.ip), err);
	else if (!strcmp(key, "publish")) {
		if (c->net.nports >= NET_PORTS_MAX)
			return err_plain(err, E2BIG, "too many publish lines (at most %d)", NET_PORTS_MAX);
		int r = net_port_parse(v, &c->net.ports[c->net.nports], err);
		if (r < 0)
			return r;
		c->net.nports++;
	}
	else if (!strcmp(key, "capabilities")) {
		c->caps = 0;
		for (char *save = NULL, *tok = strtok_r(v, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			capmask_t m;
			if (caps_parse(tok, &m, err) < 0)
				return -EINVAL;
			c->caps |= m;
		}
	} else if (!strcmp(key, "seccomp")) {
		if (!strcmp(v, "default"))
			c->seccomp = SECCOMP_DEFAULT;
		else if (!strcmp(v, "unconfined"))
			c->seccomp = SECCOMP_UNCONFINED;
		else
			return err_plain(err, EINVAL, "seccomp must be default or unconfined");
	} else if (!strcmp(key, "userns"))
		return kv_bool(kv, &c->userns, err);
	else if (!strcmp(key, "share_base"))
		return kv_bool(kv, &c->share_base, err);
	else if (!strcmp(key, "store"))
		return kv_bool(kv, &c->store, err);
	else if (!strcmp(key, "store_delay"))
		return kv_u32(kv, &c->store_delay, err);
	else if (!strcmp(key, "autostart"))
		return kv_bool(kv, &c->autostart, err);
	else if (!strcmp(key, "autostart_order"))
		return kv_int(kv, &c->autostart_order, err);
	else if (!strcmp(key, "userns_range")) {
		char *colon = strchr(v, ':');
		uint64_t base, size;
		if (!colon)
			return err_plain(err, EINVAL, "userns_range must be BASE:SIZE");
		*colon = '\0';
		if (parse_u64_max(v, UINT32_MAX, &base) < 0 || parse_u64_max(colon + 1, UINT32_MAX, &size) < 0) {
			*colon = ':';
			return err_plain(err, EINVAL, "userns_range '%s' must be BASE:SIZE, two numbers up to 4294967295", v);
		}
		c->userns_base = (uint32_t)base;
		c->userns_size = (uint32_t)size;
	} else if (!strcmp(key, "mount")) {
		if (c->nmounts >= CONFIG_MAX_MOUNTS)
			return err_plain(err, E2BIG, "too many mounts (at most %d)", CONFIG_MAX_MOUNTS);
		struct bind_mount *m = &c->mounts[c->nmounts];
		char *a = v, *b = strchr(a, ':'), *o = b ? strchr(b + 1, ':') : NULL;
		if (!b || !o || (strcmp(o + 1, "ro") && strcmp(o + 1, "rw")))
			return err_plain(err, EINVAL, "malformed mount '%s': expected SOURCE:TARGET:ro|rw", v);
		*b++ = '\0';
		*o++ = '\0';
		if (strlen(a) >= sizeof(m->source) || strlen(b) >= sizeof(m->target))
			return err_plain(err, ENAMETOOLONG, "mount path too long");
		snprintf(m->source, sizeof(m->source), "%s", a);
		snprintf(m->target, sizeof(m->target), "%s", b);
		m->readonly = !strcmp(o, "ro");
		c->nmounts++;
	} else
		return err_plain(err, EINVAL, "unknown key '%s'", key);
	return 0;
}

int config_load(const char *path, struct container_config *c, struct corral_error *err)
{
	cleanup_free char *text = NULL;
	size_t len;
	int r = file_read_all(path, &text, &len, err);
	if (r < 0)
		return r;
	config_init(c);
	c->caps = 0;
	r = kv_parse(text, len, path, config_apply_line, c, err);
	if (r < 0) {
		config_release(c);
		return r;
	}
	r = config_validate(c, err);
	if (r < 0) {
		config_release(c);
		return err_wrap(err, "%s", path);
	}
	return 0;
}

int config_load_container(const char *name, struct container_config *c, struct corral_error *err)
{
	char path[PATH_MAX];
	int r = state_path(path, sizeof(path), name, "config", err);
	if (r < 0)
		return r;
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return err_plain(err, ENOENT, "no such container: %s", name);
	return config_load(path, c, err);
}
