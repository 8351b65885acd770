/* Container networking: the API in net.h over net-lease.c, net-link.c and
 * net-nat.c.
 *
 * Bridge mode, host side, in order, under the bridge's lock (each step
 * undone if a later one fails):
 *   1. the bridge exists, is up and carries the gateway address, after the
 *      subnet was checked against the host's routes;
 *   2. the bridge's nft table (guard, published ports, NAT);
 *   3. a lease: the fixed address (--ip) or the lowest free one;
 *   4. the veth pair, host side on the bridge, peer born as eth0 in the
 *      container's netns;
 *   5. inside that netns: addresses, links up, default route;
 *   6. published ports (elements of the table's map);
 *   7. the bridge's dnsmasq, the container's names and resolv.conf.
 * Steps 1, 2 and 7's dnsmasq are shared by every container on the bridge:
 * they go when the bridge's last container goes (bridge_cleanup), the
 * bridge itself only if corral made it.
 * Teardown needs nothing but the container name: the host veth name is a
 * hash of it and leases say whose they are. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "net-internal.h"
#include "net.h"

_Static_assert(sizeof(((struct net_config *)0)->bridge) == IFNAMSIZ, "bridge holds an interface name");
_Static_assert(sizeof(((struct net_config *)0)->host_veth) == IFNAMSIZ, "host_veth holds an interface name");
_Static_assert(sizeof(struct corral_error) < PIPE_BUF, "an error crosses a pipe in one atomic write");

static const char *const mode_names[] = {
	[NET_NONE] = "none",
	[NET_HOST] = "host",
	[NET_BRIDGE] = "bridge",
};

int net_mode_parse(const char *s, enum net_mode *ret, struct corral_error *err)
{
	for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
		if (s && !strcmp(s, mode_names[i])) {
			*ret = (enum net_mode)i;
			return 0;
		}
	return err_plain(err, EINVAL, "unknown network mode \"%s\" (expected none, host or bridge)",
			 s ? s : "");
}

const char *net_mode_name(enum net_mode m)
{
	if ((unsigned)m < sizeof(mode_names) / sizeof(mode_names[0]))
		return mode_names[m];
	return "unknown";
}

void net_config_init(struct net_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = NET_NONE;
	snprintf(cfg->bridge, sizeof(cfg->bridge), "corral0");
	snprintf(cfg->subnet, sizeof(cfg->subnet), "%s", NET_DEFAULT_SUBNET);
	cfg->nat = false;
}

/* Opens pid's network namespace, refusing our own: configuring "eth0" and
 * routes there would rewire the host. */
static int netns_open(pid_t pid, struct corral_error *err)
{
	char path[64];
	struct stat self, st;

	if (pid <= 0)
		return err_plain(err, EINVAL, "invalid container pid %ld", (long)pid);
	snprintf(path, sizeof(path), "/proc/%ld/ns/net", (long)pid);
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno, "open %s", path);
	if (fstat(fd, &st) < 0)
		return err_set(err, errno, "stat %s", path);
	if (stat("/proc/self/ns/net", &self) < 0)
		return err_set(err, errno, "stat /proc/self/ns/net");
	if (st.st_dev == self.st_dev && st.st_ino == self.st_ino)
		return err_plain(err, EINVAL, "process %ld is in the host's network namespace, "
				 "not a namespace of its own", (long)pid);
	return take_fd(fd);
}

/* nft scripts name the bridge inside quotes: only plain names. */
static int check_bridge_name(const char *bridge, struct corral_error *err)
{
	int r = net_check_ifname(bridge, "bridge", err);
	if (r < 0)
		return r;
	for (const char *p = bridge; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.'))
			return err_plain(err, EINVAL, "bridge name \"%s\": only letters, digits, '_', '-' and '.' "
					 "are allowed", bridge);
	return 0;
}

/* After a container left the bridge (lock held): if it was the last one,
 * its DNS and its nft table go, and the bridge too if corral made it. */
static void bridge_cleanup(struct nl_sock *sk, const char *bridge)
{
	if (net_bridge_release(sk, bridge, NULL) <= 0)
		return;
	net_dns_stop(bridge);
	net_nft_bridge_remove(bridge, NULL);
}

static int setup_bridge(const char *state_root, const char *container, pid_t pid, struct net_config *cfg,
			struct corral_error *err)
{
	struct net_subnet sn;
	int r = net_check_container_name(container, err);
	if (r < 0)
		return r;
	r = check_bridge_name(cfg->bridge, err);
	if (r < 0)
		return r;
	r = net_subnet_parse(cfg->subnet, &sn, err);
	if (r < 0)
		return r;
	uint32_t want = 0;
	if (cfg->ip[0]) {
		r = net_ip_validate(cfg->ip, cfg->subnet, err);
		if (r < 0)
			return r;
		net_ip_parse(cfg->ip, &want);
	}

	cleanup_close int nsfd = netns_open(pid, err);
	if (nsfd < 0)
		return nsfd;
	cleanup_nl_sock struct nl_sock *sk = NULL;
	r = net_nl_open(&sk, err);
	if (r < 0)
		return r;
	cleanup_close int lock = net_bridge_lock(state_root, cfg->bridge, err);
	if (lock < 0)
		return lock;

	/* IPv6: the subnet's /64 of the host's ULA prefix (none without
	 * IPv6 in the kernel); the address follows the IPv4 lease. */
	struct net_v6 v6;
	r = net_v6_for(state_root, &sn, 0, &v6, err);
	if (r < 0)
		return err_wrap(err, "IPv6 prefix");
	const struct net_v6 *v6p = r == 0 ? &v6 : NULL;

	int bridge_ifindex;
	unsigned mtu;
	r = net_bridge_ensure(sk, cfg->bridge, &sn, v6p, &bridge_ifindex, &mtu, err);
	if (r < 0) {
		err_wrap(err, "bridge %s", cfg->bridge);
		bridge_cleanup(sk, cfg->bridge);
		return r;
	}
	r = net_nft_bridge_setup(cfg->bridge, &sn, cfg->nat, cfg->nports > 0, err);
	if (r < 0) {
		err_wrap(err, "%s for bridge %s", cfg->nat ? "NAT" : "the nft table", cfg->bridge);
		bridge_cleanup(sk, cfg->bridge);
		return r;
	}

	uint32_t ip;
	bool created;
	r = net_lease_acquire(state_root, &sn, want, container, &ip, &created, err);
	if (r < 0) {
		err_wrap(err, "lease an address");
		bridge_cleanup(sk, cfg->bridge);
		return r;
	}

	char host[IFNAMSIZ], alias[NET_ALIAS_MAX];
	net_host_veth_name(container, host);
	net_host_veth_alias(container, alias, sizeof(alias));
	r = net_veth_create(sk, host, alias, bridge_ifindex, mtu, nsfd, err);
	bool veth = r == 0;
	if (r == 0) {
		if (v6p)
			for (int i = 0; i < 4; i++)
				v6.address.s6_addr[12 + i] = (uint8_t)(ip >> (24 - 8 * i));
		r = net_netns_configure(nsfd, ip, &sn, v6p, err);
		if (r < 0)
			err_wrap(err, "configure the container's eth0");
	}
	/* Past the veth, this start owns the address: what it publishes
	 * under it may be taken back on failure. */
	if (r == 0)
		r = net_nft_ports_add(cfg->bridge, ip, cfg->ports, cfg->nports, err);
	bool ports = r == 0;
	if (r == 0)
		r = net_dns_start(cfg->bridge, err);
	if (r == 0)
		r = net_dns_add(cfg->bridge, container, ip, v6p ? &v6.address : NULL, sn.gateway, cfg->dns_names, cfg->nat,
				 err);
	if (r < 0) {
		if (ports) {
			net_dns_remove(cfg->bridge, container);
			net_nft_ports_remove(cfg->bridge, ip, cfg->ports, cfg->nports);
		}
		/* Deleting the host side takes the peer with it. */
		if (veth)
			net_link_delete(sk, host, alias, NULL);
		if (created)
			net_lease_drop(state_root, ip, container, NULL);
		bridge_cleanup(sk, cfg->bridge);
		return r;
	}

	char addr[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN];
	net_ip_format(ip, addr);
	net_ip_format(sn.gateway, gw);
	snprintf(cfg->address, sizeof(cfg->address), "%s/%u", addr, sn.prefix);
	snprintf(cfg->gateway, sizeof(cfg->gateway), "%s", gw);
	snprintf(cfg->host_veth, sizeof(cfg->host_veth), "%s", host);
	cfg->address6[0] = '\0';
	if (v6p) {
		char a6[INET6_ADDRSTRLEN];
		net_ip6_format(&v6.address, a6, sizeof(a6));
		snprintf(cfg->address6, sizeof(cfg->address6), "%s/64", a6);
	}
	return 0;
}

int net_setup_host(const char *state_root, const char *container, pid_t pid, struct net_config *cfg,
		   struct corral_error *err)
{
	switch (cfg->mode) {
	case NET_NONE:	/* loopback only, brought up from inside */
	case NET_HOST:	/* the host's own namespace: nothing to do */
		return 0;
	case NET_BRIDGE: {
		int r = setup_bridge(state_root, container, pid, cfg, err);
		if (r < 0)
			err_wrap(err, "network of container %s", container ? container : "");
		return r;
	}
	}
	return err_plain(err, EINVAL, "unknown network mode %d", (int)cfg->mode);
}

/* Writes a sysctl of the caller's network namespace (/proc/sys/net is
 * the namespace of the process that opens it). */
static int netns_sysctl(const char *path, const char *value)
{
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t n = strlen(value);
	if (fd < 0)
		return -errno;
	ssize_t w = write(fd, value, n);
	if (w < 0)
		return -errno;
	return (size_t)w == n ? 0 : -EIO;
}

/* The number of group ids mapped into the caller's user namespace (all
 * of them outside one). */
static unsigned long long mapped_gids(void)
{
	FILE *f = fopen("/proc/self/gid_map", "re");
	unsigned long long inside, outside, count, total = 0;
	while (f && fscanf(f, "%llu %llu %llu", &inside, &outside, &count) == 3)
		if (inside == 0)
			total = count;
	if (f)
		fclose(f);
	return total;
}

int net_setup_loopback(struct corral_error *err)
{
	cleanup_nl_sock struct nl_sock *sk = NULL;
	int r = net_nl_open(&sk, err);
	if (r < 0)
		return r;
	r = net_link_up(sk, "lo", err);
	if (r < 0)
		return r;
	/* ping(8) without CAP_NET_RAW: ICMP echo sockets for every group of
	 * the container, as podman sets it -- in the container's own network
	 * namespace, never the host's.  In a user namespace the range must
	 * be made of mapped groups. */
	static const char path[] = "/proc/sys/net/ipv4/ping_group_range";
	r = netns_sysctl(path, "0 2147483647\n");
	if (r == -EINVAL) {
		char range[64];
		unsigned long long n = mapped_gids();
		snprintf(range, sizeof(range), "0 %llu\n", n ? n - 1 : 0);
		r = netns_sysctl(path, range);
	}
	if (r < 0)
		return err_set(err, -r, "set net.ipv4.ping_group_range in the container's network namespace");
	return 0;
}

int net_teardown(const char *state_root, const char *container, const struct net_config *cfg,
		 struct corral_error *err)
{
	/* Whatever the configured mode says now, a bridge network may be left
	 * from an earlier configuration or a crash: always look for both. */
	int r = net_check_container_name(container, err);
	if (r < 0)
		return r;

	char host[IFNAMSIZ], alias[NET_ALIAS_MAX];
	net_host_veth_name(container, host);
	net_host_veth_alias(container, alias, sizeof(alias));

	/* The bridge's lock, when the bridge is known and valid: the bridge
	 * may go with this container (bridge_cleanup). */
	const char *bridge = cfg && check_bridge_name(cfg->bridge, NULL) == 0 ? cfg->bridge : NULL;
	cleanup_close int lock = bridge ? net_bridge_lock(state_root, bridge, NULL) : -1;
	uint32_t ip;
	if (bridge && net_lease_lookup(state_root, container, &ip) > 0)
		net_nft_ports_remove(bridge, ip, cfg->ports, cfg->nports);
	if (bridge)
		net_dns_remove(bridge, container);

	int first = 0;
	cleanup_nl_sock struct nl_sock *sk = NULL;
	r = net_nl_open(&sk, err);
	if (r == 0) {
		r = net_link_delete(sk, host, alias, err);
		if (r >= 0 && cfg && cfg->host_veth[0] && strcmp(cfg->host_veth, host))
			r = net_link_delete(sk, cfg->host_veth, alias, err);
	}
	if (r < 0) {
		err_wrap(err, "remove the network of container %s", container);
		first = r;
	} else if (bridge) {
		bridge_cleanup(sk, bridge);
	}

	struct corral_error lerr = { 0 };
	r = net_lease_release(state_root, container, &lerr);
	if (r < 0 && first == 0) {
		if (err)
			*err = lerr;
		err_wrap(err, "release the address of container %s", container);
		first = r;
	}
	return first;
}
