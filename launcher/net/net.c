/* Container networking: the API in net.h over net-lease.c, net-link.c and
 * net-nat.c.
 *
 * Bridge mode, host side, in order (each step undone if a later one fails):
 *   1. the bridge exists, is up and carries the gateway address (shared by
 *      every container on it: never undone);
 *   2. NAT, if asked for (shared as well: never undone);
 *   3. a lease: the lowest free address of the subnet;
 *   4. the veth pair, host side on the bridge, peer born as eth0 in the
 *      container's netns;
 *   5. inside that netns: addresses, links up, default route.
 * Teardown needs nothing but the container name: the host veth name is a
 * hash of it and leases say whose they are. */
#include "config.h"

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
	snprintf(cfg->subnet, sizeof(cfg->subnet), "10.88.0.0/16");
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

static int setup_bridge(const char *state_root, const char *container, pid_t pid, struct net_config *cfg,
			struct corral_error *err)
{
	struct net_subnet sn;
	int r = net_check_container_name(container, err);
	if (r < 0)
		return r;
	r = net_check_ifname(cfg->bridge, "bridge", err);
	if (r < 0)
		return r;
	r = net_subnet_parse(cfg->subnet, &sn, err);
	if (r < 0)
		return r;

	cleanup_close int nsfd = netns_open(pid, err);
	if (nsfd < 0)
		return nsfd;
	cleanup_nl_sock struct nl_sock *sk = NULL;
	r = net_nl_open(&sk, err);
	if (r < 0)
		return r;

	int bridge_ifindex;
	unsigned mtu;
	r = net_bridge_ensure(sk, cfg->bridge, &sn, &bridge_ifindex, &mtu, err);
	if (r < 0) {
		err_wrap(err, "bridge %s", cfg->bridge);
		return r;
	}
	if (cfg->nat) {
		r = net_nat_enable(cfg->bridge, &sn, err);
		if (r < 0) {
			err_wrap(err, "NAT for bridge %s", cfg->bridge);
			return r;
		}
	}

	uint32_t ip;
	bool created;
	r = net_lease_acquire(state_root, &sn, container, &ip, &created, err);
	if (r < 0) {
		err_wrap(err, "lease an address");
		return r;
	}

	char host[IFNAMSIZ], alias[NET_ALIAS_MAX];
	net_host_veth_name(container, host);
	net_host_veth_alias(container, alias, sizeof(alias));
	r = net_veth_create(sk, host, alias, bridge_ifindex, mtu, nsfd, err);
	if (r == 0) {
		r = net_netns_configure(nsfd, ip, &sn, err);
		if (r < 0) {
			err_wrap(err, "configure the container's eth0");
			/* Deleting the host side takes the peer with it. */
			net_link_delete(sk, host, alias, NULL);
		}
	}
	if (r < 0) {
		if (created)
			net_lease_drop(state_root, ip, container, NULL);
		return r;
	}

	char addr[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN];
	net_ip_format(ip, addr);
	net_ip_format(sn.gateway, gw);
	snprintf(cfg->address, sizeof(cfg->address), "%s/%u", addr, sn.prefix);
	snprintf(cfg->gateway, sizeof(cfg->gateway), "%s", gw);
	snprintf(cfg->host_veth, sizeof(cfg->host_veth), "%s", host);
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

int net_setup_loopback(struct corral_error *err)
{
	cleanup_nl_sock struct nl_sock *sk = NULL;
	int r = net_nl_open(&sk, err);
	if (r < 0)
		return r;
	return net_link_up(sk, "lo", err);
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
