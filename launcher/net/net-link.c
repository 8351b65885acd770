/* Netlink side of bridge networking, through libnl-route-3. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>

#include "child.h"
#include "cleanup.h"
#include "net-internal.h"

static void link_putp(struct rtnl_link **l)
{
	if (*l)
		rtnl_link_put(*l);
}

static void nl_addr_putp(struct nl_addr **a)
{
	if (*a)
		nl_addr_put(*a);
}

static void rtnl_addr_putp(struct rtnl_addr **a)
{
	if (*a)
		rtnl_addr_put(*a);
}

static void route_putp(struct rtnl_route **r)
{
	if (*r)
		rtnl_route_put(*r);
}

#define cleanup_link __attribute__((cleanup(link_putp)))
#define cleanup_nl_addr __attribute__((cleanup(nl_addr_putp)))
#define cleanup_rtnl_addr __attribute__((cleanup(rtnl_addr_putp)))
#define cleanup_route __attribute__((cleanup(route_putp)))

void net_nl_closep(struct nl_sock **sk)
{
	if (*sk) {
		int saved = errno;
		nl_socket_free(*sk);
		errno = saved;
	}
}

/* libnl folds the kernel's errno into its own codes; map them back. */
static int nle_to_errno(int nlerr)
{
	switch (nlerr < 0 ? -nlerr : nlerr) {
	case NLE_INTR:		return EINTR;
	case NLE_BAD_SOCK:	return EBADF;
	case NLE_AGAIN:		return EAGAIN;
	case NLE_NOMEM:		return ENOMEM;
	case NLE_EXIST:		return EEXIST;
	case NLE_INVAL:		return EINVAL;
	case NLE_RANGE:		return ERANGE;
	case NLE_MSGSIZE:	return EMSGSIZE;
	case NLE_OPNOTSUPP:	return EOPNOTSUPP;
	case NLE_AF_NOSUPPORT:	return EAFNOSUPPORT;
	case NLE_OBJ_NOTFOUND:	return ENOENT;
	case NLE_NOADDR:	return EADDRNOTAVAIL;
	case NLE_BUSY:		return EBUSY;
	case NLE_NOACCESS:	return EACCES;
	case NLE_PERM:		return EPERM;
	case NLE_NODEV:		return ENODEV;
	default:		return EIO;
	}
}

int net_nl_error(struct corral_error *err, int nlerr, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return err_plain(err, nle_to_errno(nlerr), "%s: %s", what, nl_geterror(nlerr));
}

static bool nle_is_missing(int nlerr)
{
	return nlerr == -NLE_NODEV || nlerr == -NLE_OBJ_NOTFOUND;
}

int net_nl_open(struct nl_sock **ret, struct corral_error *err)
{
	struct nl_sock *sk = nl_socket_alloc();
	if (!sk)
		return err_set(err, ENOMEM, "allocate a netlink socket");
	int r = nl_connect(sk, NETLINK_ROUTE);
	if (r < 0) {
		nl_socket_free(sk);
		return net_nl_error(err, r, "connect to rtnetlink");
	}
	*ret = sk;
	return 0;
}

static int link_up_index(struct nl_sock *sk, int ifindex, const char *name, struct corral_error *err)
{
	cleanup_link struct rtnl_link *change = rtnl_link_alloc();
	if (!change)
		return err_set(err, ENOMEM, "set %s up", name);
	rtnl_link_set_ifindex(change, ifindex);
	rtnl_link_set_flags(change, IFF_UP);
	int r = rtnl_link_change(sk, change, change, 0);
	if (r < 0)
		return net_nl_error(err, r, "set %s up", name);
	return 0;
}

int net_link_up(struct nl_sock *sk, const char *name, struct corral_error *err)
{
	cleanup_link struct rtnl_link *l = NULL;
	int r = rtnl_link_get_kernel(sk, 0, name, &l);
	if (r < 0)
		return net_nl_error(err, r, "look up interface %s", name);
	if (rtnl_link_get_flags(l) & IFF_UP)
		return 0;
	return link_up_index(sk, rtnl_link_get_ifindex(l), name, err);
}

static struct nl_addr *ipv4_addr(uint32_t ip, unsigned prefix)
{
	uint32_t be = htonl(ip);
	struct nl_addr *a = nl_addr_build(AF_INET, &be, sizeof(be));
	if (a)
		nl_addr_set_prefixlen(a, (int)prefix);
	return a;
}

/* Adds ip/prefix (with its broadcast address) to ifindex; an address that
 * is already there is fine. */
static int addr_add(struct nl_sock *sk, int ifindex, const char *ifname, uint32_t ip,
		    const struct net_subnet *sn, struct corral_error *err)
{
	char text[INET_ADDRSTRLEN];
	net_ip_format(ip, text);

	cleanup_rtnl_addr struct rtnl_addr *a = rtnl_addr_alloc();
	cleanup_nl_addr struct nl_addr *local = ipv4_addr(ip, sn->prefix);
	cleanup_nl_addr struct nl_addr *brd = ipv4_addr(sn->broadcast, 32);
	if (!a || !local || !brd)
		return err_set(err, ENOMEM, "add %s/%u to %s", text, sn->prefix, ifname);
	rtnl_addr_set_ifindex(a, ifindex);
	rtnl_addr_set_family(a, AF_INET);
	int r = rtnl_addr_set_local(a, local);
	if (r >= 0)
		r = rtnl_addr_set_broadcast(a, brd);
	if (r >= 0)
		r = rtnl_addr_add(sk, a, NLM_F_EXCL);
	if (r < 0 && r != -NLE_EXIST)
		return net_nl_error(err, r, "add %s/%u to %s", text, sn->prefix, ifname);
	return 0;
}

/* Adds ip6/64 to ifindex, without duplicate address detection (the
 * address is derived from a lease: unique by construction, and usable at
 * once); an address already there is fine. */
static int addr6_add(struct nl_sock *sk, int ifindex, const char *ifname, const struct in6_addr *ip6,
		     struct corral_error *err)
{
	char text[INET6_ADDRSTRLEN];
	inet_ntop(AF_INET6, ip6, text, sizeof(text));
	cleanup_rtnl_addr struct rtnl_addr *a = rtnl_addr_alloc();
	cleanup_nl_addr struct nl_addr *local = nl_addr_build(AF_INET6, ip6, sizeof(*ip6));
	if (!a || !local)
		return err_set(err, ENOMEM, "add %s/64 to %s", text, ifname);
	nl_addr_set_prefixlen(local, 64);
	rtnl_addr_set_ifindex(a, ifindex);
	rtnl_addr_set_family(a, AF_INET6);
	rtnl_addr_set_flags(a, IFA_F_NODAD);
	int r = rtnl_addr_set_local(a, local);
	if (r >= 0)
		r = rtnl_addr_add(sk, a, NLM_F_EXCL);
	if (r < 0 && r != -NLE_EXIST)
		return net_nl_error(err, r, "add %s/64 to %s", text, ifname);
	return 0;
}

static int bridge_create(struct nl_sock *sk, const char *bridge, struct corral_error *err)
{
	unsigned char mac[6];

	/* A bridge without an explicit address takes the lowest one among
	 * its ports and changes it whenever ports come and go, which leaves
	 * stale neighbour entries in every container.  A random, locally
	 * administered unicast address set at creation stays put. */
	ssize_t n = getrandom(mac, sizeof(mac), 0);
	if (n != (ssize_t)sizeof(mac))
		return err_set(err, n < 0 ? errno : EIO, "create bridge %s: random MAC address", bridge);
	mac[0] = (unsigned char)((mac[0] & 0xfe) | 0x02);

	cleanup_link struct rtnl_link *l = rtnl_link_bridge_alloc();
	cleanup_nl_addr struct nl_addr *lladdr = nl_addr_build(AF_LLC, mac, sizeof(mac));
	if (!l || !lladdr)
		return err_set(err, ENOMEM, "create bridge %s", bridge);
	rtnl_link_set_name(l, bridge);
	rtnl_link_set_addr(l, lladdr);
	int r = rtnl_link_add(sk, l, NLM_F_CREATE | NLM_F_EXCL);
	if (r < 0 && r != -NLE_EXIST)	/* EEXIST: a concurrent start won the race */
		return net_nl_error(err, r, "create bridge %s", bridge);
	return 0;
}

static void route_cache_freep(struct nl_cache **c)
{
	if (*c)
		nl_cache_free(*c);
}
#define cleanup_nl_cache __attribute__((cleanup(route_cache_freep)))

struct overlap_scan {
	const struct net_subnet *sn;
	int bridge_ifindex;
	char found[128];	/* the first overlapping route, "" if none */
};

static void overlap_visit(struct nl_object *obj, void *arg)
{
	struct overlap_scan *scan = arg;
	struct rtnl_route *route = (struct rtnl_route *)obj;
	if (scan->found[0] || rtnl_route_get_family(route) != AF_INET ||
	    rtnl_route_get_table(route) != RT_TABLE_MAIN || rtnl_route_get_type(route) != RTN_UNICAST)
		return;
	struct nl_addr *dst = rtnl_route_get_dst(route);
	unsigned plen = dst ? (unsigned)nl_addr_get_prefixlen(dst) : 0;
	if (!dst || plen == 0 || nl_addr_get_len(dst) != 4)
		return;	/* the default route overlaps everything: not a conflict */
	/* A route through the bridge itself is one of its subnets: many may
	 * share the bridge, as long as they do not share an interface. */
	for (int i = 0; i < rtnl_route_get_nnexthops(route); i++) {
		struct rtnl_nexthop *nh = rtnl_route_nexthop_n(route, i);
		if (nh && rtnl_route_nh_get_ifindex(nh) == scan->bridge_ifindex)
			return;
	}
	uint32_t be;
	memcpy(&be, nl_addr_get_binary_addr(dst), 4);
	uint32_t net = ntohl(be);
	unsigned p = plen < scan->sn->prefix ? plen : scan->sn->prefix;
	uint32_t mask = p ? ~UINT32_C(0) << (32 - p) : 0;
	if ((net & mask) != (scan->sn->network & mask))
		return;
	char text[INET_ADDRSTRLEN], dev[IF_NAMESIZE] = "?";
	net_ip_format(net, text);
	if (rtnl_route_get_nnexthops(route) > 0) {
		struct rtnl_nexthop *nh = rtnl_route_nexthop_n(route, 0);
		if (!nh || !if_indextoname((unsigned)rtnl_route_nh_get_ifindex(nh), dev))
			snprintf(dev, sizeof(dev), "?");
	}
	snprintf(scan->found, sizeof(scan->found), "%s/%u dev %s", text, plen, dev);
}

int net_subnet_check_routes(struct nl_sock *sk, const struct net_subnet *sn, int bridge_ifindex,
			    struct corral_error *err)
{
	cleanup_nl_cache struct nl_cache *cache = NULL;
	int r = rtnl_route_alloc_cache(sk, AF_INET, 0, &cache);
	if (r < 0)
		return net_nl_error(err, r, "read the host's routes");
	struct overlap_scan scan = { .sn = sn, .bridge_ifindex = bridge_ifindex };
	nl_cache_foreach(cache, overlap_visit, &scan);
	if (scan.found[0]) {
		char net[INET_ADDRSTRLEN];
		net_ip_format(sn->network, net);
		return err_plain(err, EADDRINUSE, "subnet %s/%u overlaps the host's route %s: "
				 "choose another with --subnet", net, sn->prefix, scan.found);
	}
	return 0;
}

int net_bridge_ensure(struct nl_sock *sk, const char *bridge, const struct net_subnet *sn,
		      const struct net_v6 *v6, int *ret_ifindex, unsigned *ret_mtu, struct corral_error *err)
{
	cleanup_link struct rtnl_link *l = NULL;
	int r = rtnl_link_get_kernel(sk, 0, bridge, &l);
	if (nle_is_missing(r)) {
		r = bridge_create(sk, bridge, err);
		if (r < 0)
			return r;
		r = rtnl_link_get_kernel(sk, 0, bridge, &l);
		/* The mark that says corral made it, so that the last
		 * container's teardown may delete it (net_bridge_release). */
		cleanup_link struct rtnl_link *change = rtnl_link_alloc();
		if (r >= 0 && !change)
			r = -NLE_NOMEM;
		if (r >= 0) {
			rtnl_link_set_ifalias(change, NET_BRIDGE_ALIAS);
			r = rtnl_link_change(sk, l, change, 0);
		}
		if (r < 0)
			return net_nl_error(err, r, "mark bridge %s as corral's", bridge);
	}
	if (r < 0)
		return net_nl_error(err, r, "look up bridge %s", bridge);

	const char *type = rtnl_link_get_type(l);
	if (!type || strcmp(type, "bridge"))
		return err_plain(err, EEXIST, "interface %s exists and is not a bridge (it is %s)", bridge,
				 type ? type : "a physical device");

	int ifindex = rtnl_link_get_ifindex(l);
	r = net_subnet_check_routes(sk, sn, ifindex, err);
	if (r < 0)
		return r;
	r = addr_add(sk, ifindex, bridge, sn->gateway, sn, err);
	if (r < 0)
		return r;
	if (v6) {
		r = addr6_add(sk, ifindex, bridge, &v6->gateway, err);
		if (r < 0)
			return r;
	}
	if (!(rtnl_link_get_flags(l) & IFF_UP)) {
		r = link_up_index(sk, ifindex, bridge, err);
		if (r < 0)
			return r;
	}
	*ret_ifindex = ifindex;
	*ret_mtu = rtnl_link_get_mtu(l);
	return 0;
}

int net_veth_create(struct nl_sock *sk, const char *host, const char *alias, int bridge_ifindex,
		    unsigned mtu, int netns_fd, struct corral_error *err)
{
	cleanup_link struct rtnl_link *veth = rtnl_link_veth_alloc();
	if (!veth)
		return err_set(err, ENOMEM, "create veth %s", host);
	rtnl_link_set_name(veth, host);
	rtnl_link_set_master(veth, bridge_ifindex);
	rtnl_link_set_flags(veth, IFF_UP);
	if (mtu)
		rtnl_link_set_mtu(veth, mtu);

	/* The peer is born inside the container's namespace under its final
	 * name: nothing ever appears on the host side that a crash could
	 * strand, and no temporary host name can collide. */
	struct rtnl_link *peer = rtnl_link_veth_get_peer(veth);
	if (!peer)
		return err_set(err, ENOMEM, "create veth %s", host);
	rtnl_link_set_name(peer, "eth0");
	rtnl_link_set_ns_fd(peer, netns_fd);
	if (mtu)
		rtnl_link_set_mtu(peer, mtu);
	rtnl_link_put(peer);

	int r = rtnl_link_add(sk, veth, NLM_F_CREATE | NLM_F_EXCL);
	if (r == -NLE_EXIST)
		return err_plain(err, EEXIST, "create veth %s (peer eth0 in the container): an interface of "
				 "that name already exists (a stale network of this container? `corral rm` "
				 "removes it)", host);
	if (r < 0)
		return net_nl_error(err, r, "create veth %s (peer eth0 in the container)", host);

	/* The kernel ignores IFLA_IFALIAS when creating a link, so the owner
	 * mark comes in a second request.  Should we die in between, the
	 * alias-less veth still counts as ours in net_link_delete. */
	cleanup_link struct rtnl_link *created = NULL;
	cleanup_link struct rtnl_link *change = rtnl_link_alloc();
	r = rtnl_link_get_kernel(sk, 0, host, &created);
	if (r >= 0 && !change)
		r = -NLE_NOMEM;
	if (r >= 0) {
		rtnl_link_set_ifalias(change, alias);
		r = rtnl_link_change(sk, created, change, 0);
	}
	if (r < 0) {
		int e = net_nl_error(err, r, "set the alias of veth %s", host);
		rtnl_link_delete(sk, created ? created : veth);
		return e;
	}
	return 0;
}

int net_link_delete(struct nl_sock *sk, const char *name, const char *alias, struct corral_error *err)
{
	cleanup_link struct rtnl_link *l = NULL;
	int r = rtnl_link_get_kernel(sk, 0, name, &l);
	if (nle_is_missing(r))
		return 0;
	if (r < 0)
		return net_nl_error(err, r, "look up interface %s", name);
	if (alias) {
		/* Not ours: never delete someone else's link.  A veth without
		 * any alias is one whose creator died before marking it. */
		const char *have = rtnl_link_get_ifalias(l);
		const char *type = rtnl_link_get_type(l);
		bool unmarked_veth = (!have || !*have) && type && !strcmp(type, "veth");
		if (!unmarked_veth && (!have || strcmp(have, alias)))
			return 0;
	}
	r = rtnl_link_delete(sk, l);
	if (nle_is_missing(r))
		return 0;
	if (r < 0)
		return net_nl_error(err, r, "delete interface %s", name);
	return 1;
}

struct port_count {
	int master;
	int n;
};

static void port_visit(struct nl_object *obj, void *arg)
{
	struct port_count *pc = arg;
	if (rtnl_link_get_master((struct rtnl_link *)obj) == pc->master)
		pc->n++;
}

int net_bridge_release(struct nl_sock *sk, const char *bridge, struct corral_error *err)
{
	cleanup_link struct rtnl_link *l = NULL;
	int r = rtnl_link_get_kernel(sk, 0, bridge, &l);
	if (nle_is_missing(r))
		return 0;
	if (r < 0)
		return net_nl_error(err, r, "look up bridge %s", bridge);
	const char *type = rtnl_link_get_type(l);
	if (!type || strcmp(type, "bridge"))
		return 0;

	cleanup_nl_cache struct nl_cache *cache = NULL;
	r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
	if (r < 0)
		return net_nl_error(err, r, "list the ports of bridge %s", bridge);
	struct port_count pc = { .master = rtnl_link_get_ifindex(l) };
	nl_cache_foreach(cache, port_visit, &pc);
	if (pc.n > 0)
		return 0;
	const char *alias = rtnl_link_get_ifalias(l);
	if (!alias || strcmp(alias, NET_BRIDGE_ALIAS))
		return 1;	/* empty, but not ours to delete */
	r = rtnl_link_delete(sk, l);
	if (r < 0 && !nle_is_missing(r))
		return net_nl_error(err, r, "delete bridge %s", bridge);
	return 2;
}

static int default_route_add(struct nl_sock *sk, int ifindex, uint32_t gateway, const struct in6_addr *gw6,
			     struct corral_error *err)
{
	static const struct in6_addr any6;
	char text[INET6_ADDRSTRLEN];
	int family = gw6 ? AF_INET6 : AF_INET;
	if (gw6)
		inet_ntop(AF_INET6, gw6, text, sizeof(text));
	else
		net_ip_format(gateway, text);

	cleanup_route struct rtnl_route *route = rtnl_route_alloc();
	cleanup_nl_addr struct nl_addr *dst = gw6 ? nl_addr_build(AF_INET6, &any6, sizeof(any6)) : ipv4_addr(0, 0);
	cleanup_nl_addr struct nl_addr *gw = gw6 ? nl_addr_build(AF_INET6, gw6, sizeof(*gw6)) : ipv4_addr(gateway, 32);
	if (gw6 && dst)
		nl_addr_set_prefixlen(dst, 0);
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	if (!route || !dst || !gw || !nh) {
		if (nh)
			rtnl_route_nh_free(nh);
		return err_set(err, ENOMEM, "add default route via %s", text);
	}
	rtnl_route_set_family(route, (uint8_t)family);
	rtnl_route_set_table(route, RT_TABLE_MAIN);
	rtnl_route_set_protocol(route, RTPROT_STATIC);
	rtnl_route_set_scope(route, RT_SCOPE_UNIVERSE);
	rtnl_route_set_type(route, RTN_UNICAST);
	int r = rtnl_route_set_dst(route, dst);
	if (r < 0) {
		rtnl_route_nh_free(nh);
		return net_nl_error(err, r, "add default route via %s", text);
	}
	rtnl_route_nh_set_ifindex(nh, ifindex);
	rtnl_route_nh_set_gateway(nh, gw);
	rtnl_route_add_nexthop(route, nh);	/* the route owns nh from here */
	r = rtnl_route_add(sk, route, NLM_F_EXCL);
	if (r < 0)
		return net_nl_error(err, r, "add default route via %s", text);
	return 0;
}

/* Runs in the helper child, already inside the container's netns. */
static int netns_configure_inside(uint32_t ip, const struct net_subnet *sn, const struct net_v6 *v6,
				  struct corral_error *err)
{
	cleanup_nl_sock struct nl_sock *sk = NULL;
	int r = net_nl_open(&sk, err);
	if (r < 0)
		return r;
	r = net_link_up(sk, "lo", err);
	if (r < 0)
		return r;

	cleanup_link struct rtnl_link *eth0 = NULL;
	r = rtnl_link_get_kernel(sk, 0, "eth0", &eth0);
	if (r < 0)
		return net_nl_error(err, r, "look up eth0");
	int ifindex = rtnl_link_get_ifindex(eth0);

	/* Address before up, up before the route: the kernel accepts a
	 * gateway only once the link carries a route to it. */
	r = addr_add(sk, ifindex, "eth0", ip, sn, err);
	if (r < 0)
		return r;
	if (v6) {
		r = addr6_add(sk, ifindex, "eth0", &v6->address, err);
		if (r < 0)
			return r;
	}
	r = link_up_index(sk, ifindex, "eth0", err);
	if (r < 0)
		return r;
	r = default_route_add(sk, ifindex, sn->gateway, NULL, err);
	if (r == 0 && v6)
		r = default_route_add(sk, ifindex, 0, &v6->gateway, err);
	return r;
}

struct netns_job {
	int netns_fd;
	uint32_t ip;
	const struct net_subnet *sn;
	const struct net_v6 *v6;
};

/* Runs in the helper child. */
static int netns_configure_child(void *arg, struct corral_error *err)
{
	const struct netns_job *job = arg;
	if (setns(job->netns_fd, CLONE_NEWNET) < 0)
		return err_set(err, errno, "enter the container's network namespace");
	return netns_configure_inside(job->ip, job->sn, job->v6, err);
}

int net_netns_configure(int netns_fd, uint32_t ip, const struct net_subnet *sn, const struct net_v6 *v6,
			struct corral_error *err)
{
	/* A child rather than setns() on the caller: the caller's network
	 * namespace, and every socket it opens later, stays the host's. */
	struct netns_job job = { .netns_fd = netns_fd, .ip = ip, .sn = sn, .v6 = v6 };
	return child_run(netns_configure_child, &job, "the netns helper", err);
}
