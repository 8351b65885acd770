/* Internals of the net module, shared by net*.c and tests/unit-net.c.
 *
 *   net-lease.c  subnets, container and interface names, address leases
 *   net-link.c   netlink (libnl-route): bridge, veth pair, in-netns setup
 *   net-nat.c    masquerade through nft, net.ipv4.ip_forward
 *   net.c        the public API in net.h, gluing the above together
 *
 * Addresses (uint32_t) are IPv4 in host byte order throughout. */
#ifndef CORRAL_NET_INTERNAL_H
#define CORRAL_NET_INTERNAL_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "net.h"

struct nl_sock;

/* IPv6 on the bridge: a unique local prefix (RFC 4193) of the host,
 * fdXX:XXXX:XXXX::/48 with 40 random bits, chosen at first use and kept in
 * <state_root>/net/ula; each IPv4 subnet gets a /64 of it (16 bits of a
 * hash of the subnet), and every address is the IPv4 one in the last 32
 * bits: the IPv4 lease is the IPv6 lease, and the gateway is the IPv4
 * gateway's.  No NAT66 and no published IPv6 ports. */
struct net_v6 {
	struct in6_addr gateway;
	struct in6_addr address;
};

/* ---- net-lease.c ---- */

/* net_subnet_parse and struct net_subnet: public, in net.h. */

/* Longest container name accepted here: it must fit the interface alias
 * ("corral:" + name, IFALIASZ = 256) and a lease temp file name. */
#define NET_NAME_MAX 200
#define NET_ALIAS_PREFIX "corral:"
#define NET_ALIAS_MAX 256	/* the kernel's IFALIASZ, from <linux/if.h> */
_Static_assert(sizeof(NET_ALIAS_PREFIX) + NET_NAME_MAX <= NET_ALIAS_MAX, "alias fits IFALIASZ");

/* Parses a canonical dotted quad; -EINVAL otherwise. */
int net_ip_parse(const char *s, uint32_t *ret);
/* Formats ip as dotted quad into buf (INET_ADDRSTRLEN bytes). */
void net_ip_format(uint32_t ip, char *buf);

int net_check_container_name(const char *name, struct corral_error *err);
int net_check_ifname(const char *name, const char *what, struct corral_error *err);
/* The host side veth of a container: "vc" + 8 hex digits of a 32-bit FNV-1a
 * hash of the container name.  Deterministic, so teardown after a crash
 * finds it from the name alone; ret must hold IFNAMSIZ bytes. */
void net_host_veth_name(const char *container, char *ret);
/* The alias set on the host veth ("corral:<container>"): teardown deletes
 * an interface only if its alias says it belongs to the container, so a
 * hash collision can never delete another container's link. */
void net_host_veth_alias(const char *container, char *ret, size_t size);

/* Leases live in <state_root>/net/leases, one file per address, named by
 * the dotted quad and holding "<container>\n".  A lease is published with
 * link(2) from a fsynced temp file, so it appears atomically, complete, and
 * only if the address was free.
 *
 * net_lease_acquire returns the lease this container already holds in the
 * subnet (after a crash), else the lowest free address after the gateway,
 * or with want != 0 exactly that address (EADDRINUSE naming the holder);
 * *ret_created says whether a new file was made (only those may be dropped
 * by an undo).  EADDRNOTAVAIL when every address is leased. */
int net_lease_acquire(const char *state_root, const struct net_subnet *sn, uint32_t want, const char *container,
		      uint32_t *ret_ip, bool *ret_created, struct corral_error *err);
/* The address leased to container in any subnet: 1 and *ret_ip, or 0. */
int net_lease_lookup(const char *state_root, const char *container, uint32_t *ret_ip);
/* The bridge's lifecycle lock (<state_root>/net/bridge-<bridge>.lock),
 * taken exclusively: held from making sure the bridge exists to the
 * container's veth being on it, and from a veth's removal to the removal
 * of the emptied bridge, so that no start attaches to a bridge being
 * deleted.  Returns the descriptor (close to unlock). */
int net_bridge_lock(const char *state_root, const char *bridge, struct corral_error *err);
/* Fills v6 for ip in sn from the host's ULA prefix (made at first use).
 * Returns 0, or 1 without IPv6 in the kernel (v6 left alone). */
int net_v6_for(const char *state_root, const struct net_subnet *sn, uint32_t ip, struct net_v6 *v6,
	       struct corral_error *err);
void net_ip6_format(const struct in6_addr *a, char *buf, size_t size);
/* Removes the lease of ip if it names container. */
int net_lease_drop(const char *state_root, uint32_t ip, const char *container, struct corral_error *err);
/* Removes every lease (and leftover temp file) naming container.  A missing
 * lease directory is not an error. */
int net_lease_release(const char *state_root, const char *container, struct corral_error *err);

/* ---- net-link.c ---- */

/* Fills err from a libnl error code (negative NLE_*); returns -errno. */
int net_nl_error(struct corral_error *err, int nlerr, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

int net_nl_open(struct nl_sock **ret, struct corral_error *err);
void net_nl_closep(struct nl_sock **sk);
#define cleanup_nl_sock __attribute__((cleanup(net_nl_closep)))

/* Creates the bridge if missing (with a fixed random MAC, so it does not
 * change as ports come and go), adds the gateway address, sets it up;
 * returns its ifindex and MTU. */
int net_bridge_ensure(struct nl_sock *sk, const char *bridge, const struct net_subnet *sn,
		      const struct net_v6 *v6, int *ret_ifindex, unsigned *ret_mtu, struct corral_error *err);
/* One RTM_NEWLINK: the host side `host` (up, enslaved to bridge_ifindex)
 * and its peer "eth0" created directly inside netns_fd, both with the
 * bridge's MTU (0: kernel default); then the owner alias on `host`. */
int net_veth_create(struct nl_sock *sk, const char *host, const char *alias, int bridge_ifindex,
		    unsigned mtu, int netns_fd, struct corral_error *err);
/* Deletes link `name` if it exists and (when alias is not NULL) carries
 * exactly that alias; absent or foreign links are left alone.  Returns 1 if
 * deleted, 0 if there was nothing to do. */
int net_link_delete(struct nl_sock *sk, const char *name, const char *alias, struct corral_error *err);
int net_link_up(struct nl_sock *sk, const char *name, struct corral_error *err);
/* In a short-lived child that setns()es into netns_fd: lo and eth0 up,
 * ip/prefix on eth0, default route via the gateway.  The caller's own
 * network namespace is never changed. */
int net_netns_configure(int netns_fd, uint32_t ip, const struct net_subnet *sn, const struct net_v6 *v6,
			struct corral_error *err);

/* Is the bridge empty?  Returns 0 if ports remain (or no bridge), 1 if
 * empty but not made by corral (left alone), 2 if empty and deleted. */
int net_bridge_release(struct nl_sock *sk, const char *bridge, struct corral_error *err);
/* Refuses a subnet that overlaps a host route (main table, IPv4, not the
 * default route) through any interface but the bridge. */
int net_subnet_check_routes(struct nl_sock *sk, const struct net_subnet *sn, int bridge_ifindex,
			    struct corral_error *err);
/* The alias that marks a bridge corral created. */
#define NET_BRIDGE_ALIAS "corral:bridge"

/* ---- net-nat.c ---- */

/* Runs /usr/sbin/<name> (or /sbin, ...) with argv, stdin /dev/null; its
 * output goes into err on failure, into out_buf (if given) on success. */
int net_run(const char *name, const char *package, char *const argv[], char *out_buf, size_t out_size,
	    struct corral_error *err);
/* The bridge's nft table ("corral_<bridge>"). */
void net_nat_table_name(const char *bridge, char *ret, size_t size);
/* Creates or refreshes the bridge's table (see net-nat.c); with nat the
 * subnet is masqueraded; nat or ports turn on net.ipv4.ip_forward (left
 * on), ports turn on route_localnet on the bridge. */
int net_nft_bridge_setup(const char *bridge, const struct net_subnet *sn, bool nat, bool ports,
			 struct corral_error *err);
/* Publishes ports to ip; EADDRINUSE naming the address that holds one. */
int net_nft_ports_add(const char *bridge, uint32_t ip, const struct net_port *ports, int n,
		      struct corral_error *err);
/* Withdraws those of the ports that point at ip. */
void net_nft_ports_remove(const char *bridge, uint32_t ip, const struct net_port *ports, int n);
/* Removes the bridge's table if present. */
int net_nft_bridge_remove(const char *bridge, struct corral_error *err);

/* ---- net-dns.c ---- */

/* The bridge's DNS: one dnsmasq per bridge, answering on the bridge's
 * addresses from a directory of host-owned hosts files (one per container)
 * that it watches with inotify; other names are refused (no forwarding).  Everything lives in NET_DNS_DIR/<bridge>/. */
#define NET_DNS_DIR "/run/corral-dns"
/* Starts the bridge's dnsmasq unless it runs. */
int net_dns_start(const char *bridge, struct corral_error *err);
/* Stops it (if it runs) and removes the bridge's directory. */
void net_dns_stop(const char *bridge);
/* Publishes "ip names" for the container, and its resolv.conf. */
int net_dns_add(const char *bridge, const char *container, uint32_t ip, const struct in6_addr *ip6, uint32_t gateway,
		const char *names, bool nat, struct corral_error *err);
/* Withdraws both. */
void net_dns_remove(const char *bridge, const char *container);

#endif
