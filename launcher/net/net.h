/* Container networking.
 *
 *   none    a new network namespace with only loopback (the default)
 *   host    the host's network namespace
 *   bridge  a new namespace joined to the host bridge "corral0" by a veth
 *           pair; an address from the configured subnet (default
 *           NET_DEFAULT_SUBNET, gateway .1 on the bridge) or a fixed one
 *           (--ip); the bridge's names answered by a dnsmasq on the
 *           bridge (net-dns.c); published ports and optional NAT to the
 *           outside through nft (net-nat.c).  The bridge, its dnsmasq and
 *           its nft table go with the bridge's last container.
 *
 * Addresses are leased in <dir>/net/leases, <dir> given by the caller
 * (start passes /run/corral: host-wide, as the bridge is), one file per
 * address created with O_EXCL, so concurrent starts never collide and a
 * crashed container's lease is reclaimed by `corral rm`.
 *
 * Module net.  Owns: the bridge, the containers' veth pairs, the address
 * leases and the NAT table it makes (through libnl-route and nft).
 * May call: common. */
#ifndef CORRAL_NET_H
#define CORRAL_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

enum net_mode { NET_NONE, NET_HOST, NET_BRIDGE };

/* The default subnet: not podman's 10.88.0.0/16, nor Docker's 172.17-31,
 * libvirt's 192.168.122/24 or LXC's 10.0.3/24.  Bridge setup refuses any
 * subnet that overlaps a host route through another interface. */
#define NET_DEFAULT_SUBNET "10.77.0.0/16"

#define NET_PORTS_MAX 16

/* -p HOST:CONTAINER[/tcp|udp] */
struct net_port {
	uint16_t host;
	uint16_t container;
	bool udp;
};

struct net_config {
	enum net_mode mode;
	char bridge[16];	/* default "corral0" */
	char subnet[48];	/* CIDR, default NET_DEFAULT_SUBNET */
	bool nat;
	char ip[16];		/* --ip: a fixed address in subnet, "" = the lowest free one */
	struct net_port ports[NET_PORTS_MAX];
	int nports;
	/* Set by the caller before net_setup_host: the names the bridge's
	 * DNS answers with the container's address, blank-separated (its
	 * hostname and its name); invalid DNS names are left out. */
	char dns_names[256];
	/* Filled by net_setup_host: */
	char address[48];	/* CIDR of the container's eth0 */
	char gateway[48];
	char host_veth[16];	/* host side name, e.g. "vc<hash>" */
	char address6[56];	/* CIDR of eth0's IPv6 (ULA) address, "" without IPv6 */
};

/* A parsed IPv4 subnet (addresses in host byte order).  Invariant:
 * network has no host bits set, 8 <= prefix <= 30, so there is at least
 * one address between the gateway (network + 1) and the broadcast
 * address. */
struct net_subnet {
	uint32_t network;
	uint32_t broadcast;
	uint32_t gateway;
	unsigned prefix;
};

#define NET_SUBNET_MIN_PREFIX 8
#define NET_SUBNET_MAX_PREFIX 30

/* The project's one subnet parser ("10.88.0.0/16"): validated at create
 * (config_validate) and parsed again at start.  err names what is wrong. */
int net_subnet_parse(const char *cidr, struct net_subnet *ret, struct corral_error *err);

/* "8080:80", "5353:53/udp": both ports 1..65535. */
int net_port_parse(const char *s, struct net_port *ret, struct corral_error *err);
/* The form net_port_parse reads ("8080:80/tcp"); buf holds 24 bytes. */
void net_port_format(const struct net_port *p, char *buf, size_t size);
/* --ip against the subnet: a host address, not the network, gateway or
 * broadcast address. */
int net_ip_validate(const char *ip, const char *subnet, struct corral_error *err);
/* EADDRINUSE naming the container that leases ip now (state_root as for
 * net_setup_host). */
int net_ip_check_free(const char *state_root, const char *ip, struct corral_error *err);

int net_mode_parse(const char *s, enum net_mode *ret, struct corral_error *err);
const char *net_mode_name(enum net_mode m);
void net_config_init(struct net_config *cfg);
/* Host side, for a container whose init is `pid` (already in its new
 * netns): bridge, veth pair, peer moved into the netns as eth0, address
 * leased and configured, routes, NAT.  state_root holds the leases. */
int net_setup_host(const char *state_root, const char *container, pid_t pid, struct net_config *cfg,
		   struct corral_error *err);
/* The file bound read-only over /etc/resolv.conf of a bridge container
 * (see net-dns.c): host-owned, one per container, naming the bridge's
 * DNS.  Written by net_setup_host, removed by net_teardown. */
int net_resolv_conf_path(const struct net_config *cfg, const char *container, char *buf, size_t size,
			 struct corral_error *err);
/* Inside the container's netns (before pivot_root): bring up lo. */
int net_setup_loopback(struct corral_error *err);
/* Removes the veth (if still there) and the lease.  Idempotent. */
int net_teardown(const char *state_root, const char *container, const struct net_config *cfg,
		 struct corral_error *err);

#endif
