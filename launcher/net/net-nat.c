/* The bridge's nft table: masquerade (--nat) and published ports (-p).
 *
 * Why nft and not iptables: the rules live in a table of the bridge's own
 * ("corral_<bridge>"), which one `nft` transaction creates or rewrites
 * atomically and removes as a unit, without reading or touching anyone
 * else's rules.  iptables would append to the shared nat/POSTROUTING
 * chain and need -C/-D bookkeeping to stay idempotent; on Debian 12 it is
 * the nf_tables backend anyway.  Published ports are elements of one map,
 * not a rule each: hundreds of containers cost one lookup per packet.
 * Links, addresses and routes go through netlink; nft and dnsmasq are
 * the only programs the module runs (net_run). */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "net-internal.h"

void net_nat_table_name(const char *bridge, char *ret, size_t size)
{
	/* nft identifiers: letters, digits, '_'; map anything else. */
	int n = snprintf(ret, size, "corral_%s", bridge);
	for (int i = 7; i < n && (size_t)i < size; i++) {
		char c = ret[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			ret[i] = '_';
	}
}

static const char *program_path(const char *name)
{
	static const char *const dirs[] = { "/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin" };
	static char path[64];
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dirs[i], name);
		if (access(path, X_OK) == 0)
			return path;
	}
	return NULL;
}

int net_run(const char *name, const char *package, char *const argv[], char *out_buf, size_t out_size,
	    struct corral_error *err)
{
	const char *prog = program_path(name);
	if (!prog)
		return err_plain(err, ENOENT, "%s not found (on Debian: apt-get install %s)", name, package);

	/* The program's output (its reason, on failure) goes to a memfd,
	 * not a pipe: a daemon (dnsmasq) keeps its stdio open long after
	 * the process we wait for has exited, and a pipe would never end. */
	cleanup_close int out = memfd_create("corral-net-run", MFD_CLOEXEC);
	if (out < 0)
		return err_set(err, errno, "memfd_create");

	cleanup_child struct child ch = CHILD_INIT;
	int r = child_start(&ch, 0, name, err);
	if (r < 0)
		return r;
	if (r == 0) {
		char *const envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *)"LC_ALL=C", NULL };
		struct corral_error cerr = { 0 };
		int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) {
			err_set(&cerr, errno, "redirect the stdio of %s", name);
			child_fail(ch.fd, &cerr);
		}
		signal(SIGPIPE, SIG_DFL);
		child_exec(ch.fd, prog, argv, envp, name);
	}
	enum child_verdict v;
	r = child_wait_verdict(&ch, &v, err);
	if (r < 0)
		return err_wrap(err, "could not run %s", prog);
	int status;
	r = child_reap(&ch, &status, err);
	if (r < 0)
		return err_wrap(err, "wait for %s", name);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		if (out_buf && out_size) {
			ssize_t n = pread(out, out_buf, out_size - 1, 0);
			out_buf[n > 0 ? n : 0] = '\0';
		}
		return 0;
	}

	char text[512];
	ssize_t len = pread(out, text, sizeof(text) - 1, 0);
	if (len < 0)
		len = 0;
	while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	text[len] = '\0';
	for (char *c = text; *c; c++)
		if (*c == '\n')
			*c = ' ';
	return err_plain(err, EIO, "%s failed: %s", name, len ? text : "(no output)");
}

/* Runs `nft <script>` as one transaction. */
static int nft_run(const char *script, struct corral_error *err)
{
	char *const argv[] = { (char *)"nft", (char *)script, NULL };
	return net_run("nft", "nftables", argv, NULL, 0, err);
}

static int sysctl_set(const char *path, struct corral_error *err)
{
	cleanup_close int fd = open(path, O_RDWR | O_CLOEXEC);
	char c = 0;

	if (fd < 0)
		return err_set(err, errno, "open %s", path);
	if (read(fd, &c, 1) == 1 && c == '1')
		return 0;
	if (pwrite(fd, "1\n", 2, 0) != 2)
		return err_set(err, errno ? errno : EIO, "enable %s", path);
	return 0;
}

/* The bridge's table, in one transaction that is safe to repeat: `add`
 * keeps an existing table, set, map and chain (and their elements), and
 * each chain's rules are flushed and written again.
 *
 *   guard        drops packets from the bridge to 127.0.0.0/8: with
 *                route_localnet (below) a container could otherwise reach
 *                the host's loopback-only services (CVE-2020-8558)
 *   prerouting,  published ports: a connection to any of the host's own
 *   output       addresses (fib daddr type local), from outside or from
 *                the host itself, 127.0.0.1 included, is sent to the
 *                container the `ports` map names
 *   postrouting  masquerade: connections from 127.0.0.1 to a container
 *                (their source must be routable on the bridge), and the
 *                --nat subnets (`nat_nets`) to anywhere outside them */
int net_nft_bridge_setup(const char *bridge, const struct net_subnet *sn, bool nat, bool ports,
			 struct corral_error *err)
{
	char t[64], net[INET_ADDRSTRLEN], script[2048];

	net_nat_table_name(bridge, t, sizeof(t));
	net_ip_format(sn->network, net);
	int n = snprintf(script, sizeof(script),
		 "add table ip %1$s\n"
		 "add set ip %1$s nat_nets { type ipv4_addr; flags interval; }\n"
		 "add map ip %1$s ports { type inet_proto . inet_service : ipv4_addr . inet_service; }\n"
		 "add chain ip %1$s guard { type filter hook prerouting priority -300; policy accept; }\n"
		 "add chain ip %1$s prerouting { type nat hook prerouting priority -100; policy accept; }\n"
		 "add chain ip %1$s output { type nat hook output priority -100; policy accept; }\n"
		 "add chain ip %1$s postrouting { type nat hook postrouting priority 100; policy accept; }\n"
		 "flush chain ip %1$s guard\n"
		 "flush chain ip %1$s prerouting\n"
		 "flush chain ip %1$s output\n"
		 "flush chain ip %1$s postrouting\n"
		 "add rule ip %1$s guard iifname \"%2$s\" ip daddr 127.0.0.0/8 drop\n"
		 "add rule ip %1$s prerouting fib daddr type local dnat to meta l4proto . th dport map @ports\n"
		 "add rule ip %1$s output fib daddr type local dnat to meta l4proto . th dport map @ports\n"
		 "add rule ip %1$s postrouting oifname \"%2$s\" ip saddr 127.0.0.0/8 masquerade\n"
		 "add rule ip %1$s postrouting ip saddr @nat_nets ip daddr != @nat_nets masquerade\n",
		 t, bridge);
	if (nat)
		snprintf(script + n, sizeof(script) - (size_t)n, "add element ip %s nat_nets { %s/%u }\n", t, net,
			 sn->prefix);
	int r = nft_run(script, err);
	if (r < 0)
		return err_wrap(err, "nft table %s", t);
	/* Forwarding, for --nat and for published ports reached from other
	 * hosts: host-wide, and left on (other users may rely on it). */
	if (nat || ports) {
		r = sysctl_set("/proc/sys/net/ipv4/ip_forward", err);
		if (r < 0)
			return r;
	}
	if (ports) {
		char path[128];
		snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/route_localnet", bridge);
		r = sysctl_set(path, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The address a published port points at now ("" if the port is not
 * published). */
static void port_holder(const char *table, const struct net_port *p, char *ret, size_t size)
{
	char script[256], out[512];
	snprintf(script, sizeof(script), "get element ip %s ports { %s . %u }", table, p->udp ? "udp" : "tcp",
		 p->host);
	char *const argv[] = { (char *)"nft", script, NULL };
	ret[0] = '\0';
	if (net_run("nft", "nftables", argv, out, sizeof(out), NULL) < 0)
		return;
	/* "... { tcp . 8080 : 10.77.0.2 . 80 } ..." */
	char *elements = strstr(out, "elements = {");
	char *colon = elements ? strstr(elements, " : ") : NULL;
	if (!colon)
		return;
	colon += 3;
	size_t len = strspn(colon, "0123456789.");
	while (len && colon[len - 1] == '.')
		len--;
	snprintf(ret, size, "%.*s", (int)len, colon);
	char *sp = strchr(ret, ' ');
	if (sp)
		*sp = '\0';
}

int net_nft_ports_add(const char *bridge, uint32_t ip, const struct net_port *ports, int n,
		      struct corral_error *err)
{
	char t[64], addr[INET_ADDRSTRLEN], script[256], holder[64], text[32];
	net_nat_table_name(bridge, t, sizeof(t));
	net_ip_format(ip, addr);
	for (int i = 0; i < n; i++) {
		const struct net_port *p = &ports[i];
		net_port_format(p, text, sizeof(text));
		/* One of ours from before a crash is replaced; anyone else's
		 * stays, and the start fails naming it. */
		port_holder(t, p, holder, sizeof(holder));
		if (holder[0] && strcmp(holder, addr)) {
			net_nft_ports_remove(bridge, ip, ports, i);
			return err_plain(err, EADDRINUSE, "publish %s: host port %u/%s is already published to %s",
					 text, p->host, p->udp ? "udp" : "tcp", holder);
		}
		snprintf(script, sizeof(script), "%s element ip %s ports { %s . %u : %s . %u }",
			 holder[0] ? "add" : "create", t, p->udp ? "udp" : "tcp", p->host, addr, p->container);
		int r = nft_run(script, err);
		if (r < 0) {
			net_nft_ports_remove(bridge, ip, ports, i);
			return err_wrap(err, "publish %s", text);
		}
	}
	return 0;
}

void net_nft_ports_remove(const char *bridge, uint32_t ip, const struct net_port *ports, int n)
{
	char t[64], addr[INET_ADDRSTRLEN], script[256], holder[64];
	net_nat_table_name(bridge, t, sizeof(t));
	net_ip_format(ip, addr);
	for (int i = 0; i < n; i++) {
		/* Only an element that points at this container: the port may
		 * be someone else's by now. */
		port_holder(t, &ports[i], holder, sizeof(holder));
		if (strcmp(holder, addr))
			continue;
		snprintf(script, sizeof(script), "delete element ip %s ports { %s . %u }", t,
			 ports[i].udp ? "udp" : "tcp", ports[i].host);
		nft_run(script, NULL);
	}
}

int net_nft_bridge_remove(const char *bridge, struct corral_error *err)
{
	char table[64], script[256];

	net_nat_table_name(bridge, table, sizeof(table));
	snprintf(script, sizeof(script), "table ip %s; delete table ip %s", table, table);
	int r = nft_run(script, err);
	if (r < 0)
		return err_wrap(err, "remove nft table %s", table);
	return 0;
}
