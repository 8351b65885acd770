/* Name resolution on a bridge: one dnsmasq per bridge, as LXC's lxc-net and
 * libvirt run it.
 *
 * Why a DNS server and not a hosts file in the container: the container's
 * /etc belongs to its tenant (root inside writes /etc/hosts, or makes it a
 * symlink), and a hosts file kept current in hundreds of containers means
 * rewriting hundreds of files, in place (a bind mount pins the inode), on
 * every start and stop.  Here the names live in host-owned files outside
 * every container, one per container, each replaced atomically; dnsmasq
 * watches the directory (inotify) and answers from it, so a start or stop
 * costs one rename and no signal.  A container only ever points its
 * resolver at the bridge (its resolv.conf, a read-only bind of a host-owned
 * file of its own): whatever it writes in its own /etc changes its own
 * resolution, never anyone else's.  dnsmasq answers the bridge's names
 * only and refuses the rest: no forwarding, so a container without --nat
 * gets no DNS path to the outside; a --nat container's resolv.conf lists
 * the host's resolvers after the bridge (glibc moves on after REFUSED).
 *
 *   NET_DNS_DIR/<bridge>/pid            dnsmasq's pid file
 *   NET_DNS_DIR/<bridge>/hosts/<name>   "<address> <names>" of a container
 *   NET_DNS_DIR/<bridge>/resolv/<name>  its /etc/resolv.conf
 *
 * NET_DNS_DIR is outside the 0700 state root: dnsmasq reads the hosts
 * files as its own unprivileged user, and a user-namespaced container's
 * root binds its resolv.conf from there.  Nothing in it is secret: the
 * names are the bridge's, which dnsmasq hands to anyone on it. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "net-internal.h"

static int dns_path(char *buf, size_t size, const char *bridge, const char *sub, const char *name)
{
	int n = snprintf(buf, size, NET_DNS_DIR "/%s%s%s%s%s", bridge, sub ? "/" : "", sub ? sub : "",
			 name ? "/" : "", name ? name : "");
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int net_resolv_conf_path(const struct net_config *cfg, const char *container, char *buf, size_t size,
			 struct corral_error *err)
{
	int r = net_check_container_name(container, err);
	if (r < 0)
		return r;
	if (dns_path(buf, size, cfg->bridge, "resolv", container) < 0)
		return err_plain(err, ENAMETOOLONG, "resolv.conf path of %s too long", container);
	return 0;
}

/* A DNS name dnsmasq may serve: labels of letters, digits and '-' (not at
 * either end), at most 63 bytes each, 253 in all.  Anything else (a
 * container name with '_', say) is left out, never escaped. */
static bool dns_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 253)
		return false;
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!(isalnum((unsigned char)c) || c == '-') || (c == '-' && label == 0) || ++label > 63)
			return false;
	}
	return label > 0 && s[n - 1] != '-';
}

/* The pid in the pid file, if that process is the bridge's dnsmasq (its
 * command line names our pid file); 0 otherwise. */
static pid_t dns_pid(const char *bridge)
{
	char path[256], buf[4096];
	if (dns_path(path, sizeof(path), bridge, "pid", NULL) < 0)
		return 0;
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, 32);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	long pid = strtol(buf, NULL, 10);
	if (pid <= 1)
		return 0;

	char proc[64], want[300];
	snprintf(proc, sizeof(proc), "/proc/%ld/cmdline", pid);
	cleanup_close int cfd = open(proc, O_RDONLY | O_CLOEXEC);
	n = cfd < 0 ? -1 : read(cfd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (strcmp(buf, "dnsmasq") && !strstr(buf, "/dnsmasq"))
		return 0;
	snprintf(want, sizeof(want), "--pid-file=%s", path);
	for (char *p = buf; p < buf + n; p += strlen(p) + 1)
		if (!strcmp(p, want))
			return (pid_t)pid;
	return 0;
}

static int mkdir_at_mode(const char *path, struct corral_error *err)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return err_set(err, errno, "create %s", path);
	return 0;
}

static int dns_dirs(const char *bridge, struct corral_error *err)
{
	char path[256];
	int r = mkdir_at_mode(NET_DNS_DIR, err);
	if (r == 0 && dns_path(path, sizeof(path), bridge, NULL, NULL) == 0)
		r = mkdir_at_mode(path, err);
	if (r == 0 && dns_path(path, sizeof(path), bridge, "hosts", NULL) == 0)
		r = mkdir_at_mode(path, err);
	if (r == 0 && dns_path(path, sizeof(path), bridge, "resolv", NULL) == 0)
		r = mkdir_at_mode(path, err);
	return r;
}

int net_dns_start(const char *bridge, struct corral_error *err)
{
	int r = dns_dirs(bridge, err);
	if (r < 0)
		return r;
	if (dns_pid(bridge) > 0)
		return 0;

	char pidfile[256], hosts[256], a_pid[300], a_if[64], a_hosts[300];
	dns_path(pidfile, sizeof(pidfile), bridge, "pid", NULL);
	dns_path(hosts, sizeof(hosts), bridge, "hosts", NULL);
	snprintf(a_pid, sizeof(a_pid), "--pid-file=%s", pidfile);
	snprintf(a_if, sizeof(a_if), "--interface=%s", bridge);
	snprintf(a_hosts, sizeof(a_hosts), "--hostsdir=%s", hosts);
	/* No configuration file, no /etc/hosts of the host, no DHCP; only
	 * the bridge's addresses (--bind-dynamic: also those a later subnet
	 * adds to it).  No upstream servers either (--no-resolv): other names
	 * are REFUSED, so that a container without --nat has no path to the
	 * outside through the host's resolvers (a DNS tunnel); the resolver
	 * of a --nat container tries the host's next (net_dns_add). */
	char *const argv[] = {
		(char *)"dnsmasq", (char *)"--conf-file=/dev/null", a_pid, a_if, (char *)"--except-interface=lo",
		(char *)"--bind-dynamic", (char *)"--no-hosts", (char *)"--no-resolv", a_hosts,
		(char *)"--local-ttl=1", NULL,
	};
	r = net_run("dnsmasq", "dnsmasq-base", argv, NULL, 0, err);
	if (r < 0)
		return err_wrap(err, "start the DNS of bridge %s", bridge);
	return 0;
}

void net_dns_stop(const char *bridge)
{
	pid_t pid = dns_pid(bridge);
	if (pid > 0) {
		/* A pidfd, so that the signal reaches the process checked
		 * above and none that reused its pid. */
		cleanup_close int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pfd >= 0 && dns_pid(bridge) == pid &&
		    syscall(SYS_pidfd_send_signal, pfd, SIGTERM, NULL, 0) == 0) {
			struct pollfd p = { .fd = pfd, .events = POLLIN };
			poll(&p, 1, 2000);
		}
	}
	char path[256];
	if (dns_path(path, sizeof(path), bridge, NULL, NULL) == 0)
		remove_tree(path, NULL);
}

/* Appends up to two "nameserver" lines of the host's /etc/resolv.conf
 * (glibc reads three), IPv4 and not loopback: what a --nat container can
 * reach through its masquerade. */
static void host_nameservers(char *buf, size_t size)
{
	FILE *f = fopen("/etc/resolv.conf", "re");
	char line[256];
	int n = 0;
	buf[0] = '\0';
	while (f && n < 2 && fgets(line, sizeof(line), f)) {
		char addr[64];
		uint32_t ip;
		if (sscanf(line, "nameserver %63s", addr) != 1 || net_ip_parse(addr, &ip) < 0 || (ip >> 24) == 127)
			continue;
		size_t len = strlen(buf);
		snprintf(buf + len, size - len, "nameserver %s\n", addr);
		n++;
	}
	if (f)
		fclose(f);
}

int net_dns_add(const char *bridge, const char *container, uint32_t ip, const struct in6_addr *ip6, uint32_t gateway,
		const char *names, bool nat, struct corral_error *err)
{
	char path[512], addr[INET6_ADDRSTRLEN], list[300] = "", line[1024];
	size_t ln = 0;
	for (const char *p = names ? names : ""; *p;) {
		size_t len = strcspn(p, " ");
		if (dns_name_ok(p, len) && ln + len + 2 < sizeof(list))
			ln += (size_t)snprintf(list + ln, sizeof(list) - ln, " %.*s", (int)len, p);
		p += len;
		p += strspn(p, " ");
	}
	bool any = ln > 0;
	net_ip_format(ip, addr);
	int n = snprintf(line, sizeof(line), "%s%s\n", addr, list);
	if (ip6) {
		net_ip6_format(ip6, addr, sizeof(addr));
		snprintf(line + n, sizeof(line) - (size_t)n, "%s%s\n", addr, list);
	}
	if (dns_path(path, sizeof(path), bridge, "hosts", container) < 0)
		return err_plain(err, ENAMETOOLONG, "hosts file of %s: path too long", container);
	int r = any ? file_write_atomic(path, line, strlen(line), 0644, err) : 0;
	if (r < 0)
		return err_wrap(err, "publish the names of %s", container);

	char gw[INET_ADDRSTRLEN], conf[512];
	net_ip_format(gateway, gw);
	n = snprintf(conf, sizeof(conf), "# written by corral: the DNS of bridge %s%s\nnameserver %s\n", bridge,
		     nat ? ", then the host's resolvers" : "", gw);
	if (nat)
		host_nameservers(conf + n, sizeof(conf) - (size_t)n);
	dns_path(path, sizeof(path), bridge, "resolv", container);
	r = file_write_atomic(path, conf, strlen(conf), 0644, err);
	if (r < 0)
		return err_wrap(err, "write the resolv.conf of %s", container);
	return 0;
}

void net_dns_remove(const char *bridge, const char *container)
{
	char path[512];
	if (dns_path(path, sizeof(path), bridge, "hosts", container) == 0)
		unlink(path);
	if (dns_path(path, sizeof(path), bridge, "resolv", container) == 0)
		unlink(path);
}
