/* Subnets, names and address leases for bridge networking. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "net-internal.h"

/* Upper bound on a lease file's size: a container name and a newline. */
#define LEASE_MAX (NET_NAME_MAX + 2)

int net_subnet_parse(const char *cidr, struct net_subnet *ret, struct corral_error *err)
{
	const char *slash = cidr ? strchr(cidr, '/') : NULL;
	char host[INET6_ADDRSTRLEN];
	struct in_addr a;

	if (!slash || slash == cidr || (size_t)(slash - cidr) >= sizeof(host))
		return err_plain(err, EINVAL, "subnet \"%s\": expected an IPv4 CIDR such as 10.88.0.0/16",
				 cidr ? cidr : "");
	memcpy(host, cidr, slash - cidr);
	host[slash - cidr] = '\0';
	if (strchr(host, ':'))
		return err_plain(err, EAFNOSUPPORT, "subnet \"%s\": only IPv4 subnets are supported", cidr);
	if (inet_pton(AF_INET, host, &a) != 1)
		return err_plain(err, EINVAL, "subnet \"%s\": \"%s\" is not an IPv4 address", cidr, host);

	const char *p = slash + 1;
	unsigned prefix = 0;
	if (!*p || strlen(p) > 2)
		return err_plain(err, EINVAL, "subnet \"%s\": bad prefix length", cidr);
	for (; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return err_plain(err, EINVAL, "subnet \"%s\": bad prefix length", cidr);
		prefix = prefix * 10 + (unsigned)(*p - '0');
	}
	if (prefix < NET_SUBNET_MIN_PREFIX || prefix > NET_SUBNET_MAX_PREFIX)
		return err_plain(err, EINVAL, "subnet \"%s\": prefix length must be %d..%d "
				 "(room for a gateway and at least one container)",
				 cidr, NET_SUBNET_MIN_PREFIX, NET_SUBNET_MAX_PREFIX);

	uint32_t mask = ~UINT32_C(0) << (32 - prefix);
	uint32_t ip = ntohl(a.s_addr);
	if (ip & ~mask) {
		char want[INET_ADDRSTRLEN];
		net_ip_format(ip & mask, want);
		return err_plain(err, EINVAL, "subnet \"%s\": host bits are set (did you mean %s/%u?)",
				 cidr, want, prefix);
	}
	*ret = (struct net_subnet){
		.network = ip,
		.broadcast = ip | ~mask,
		.gateway = ip + 1,
		.prefix = prefix,
	};
	return 0;
}

int net_ip_parse(const char *s, uint32_t *ret)
{
	struct in_addr a;
	char canonical[INET_ADDRSTRLEN];

	/* inet_pton takes "010.1.1.1" as 10.1.1.1; only the canonical
	 * dotted quad is accepted, so that one address has one lease name. */
	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	net_ip_format(ntohl(a.s_addr), canonical);
	if (strcmp(canonical, s))
		return -EINVAL;
	*ret = ntohl(a.s_addr);
	return 0;
}

int net_ip_validate(const char *ip, const char *subnet, struct corral_error *err)
{
	struct net_subnet sn;
	uint32_t a;
	int r = net_subnet_parse(subnet, &sn, err);
	if (r < 0)
		return r;
	if (net_ip_parse(ip, &a) < 0)
		return err_plain(err, EINVAL, "--ip \"%s\": expected an IPv4 address such as 10.77.0.10", ip);
	if ((a & ~(sn.broadcast ^ sn.network)) != sn.network)
		return err_plain(err, EINVAL, "--ip %s is outside the subnet %s", ip, subnet);
	if (a == sn.network)
		return err_plain(err, EINVAL, "--ip %s is the network address of %s", ip, subnet);
	if (a == sn.gateway)
		return err_plain(err, EINVAL, "--ip %s is the gateway of %s (the bridge's address)", ip, subnet);
	if (a == sn.broadcast)
		return err_plain(err, EINVAL, "--ip %s is the broadcast address of %s", ip, subnet);
	return 0;
}

int net_port_parse(const char *s, struct net_port *ret, struct corral_error *err)
{
	unsigned long v[2];
	const char *p = s;
	struct net_port port = { 0 };

	for (int i = 0; i < 2; i++) {
		char *end;
		if (!isdigit((unsigned char)*p))
			goto bad;
		errno = 0;
		v[i] = strtoul(p, &end, 10);
		if (errno || v[i] < 1 || v[i] > 65535)
			return err_plain(err, ERANGE, "port \"%s\": ports are 1..65535", s);
		p = end;
		if (i == 0 && *p++ != ':')
			goto bad;
	}
	if (!strcmp(p, "/udp"))
		port.udp = true;
	else if (*p && strcmp(p, "/tcp"))
		goto bad;
	port.host = (uint16_t)v[0];
	port.container = (uint16_t)v[1];
	*ret = port;
	return 0;
bad:
	return err_plain(err, EINVAL, "port \"%s\": expected HOST:CONTAINER[/tcp|/udp], e.g. 8080:80", s);
}

void net_port_format(const struct net_port *p, char *buf, size_t size)
{
	snprintf(buf, size, "%u:%u/%s", p->host, p->container, p->udp ? "udp" : "tcp");
}

void net_ip_format(uint32_t ip, char *buf)
{
	struct in_addr a = { .s_addr = htonl(ip) };
	inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

int net_check_container_name(const char *name, struct corral_error *err)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > NET_NAME_MAX)
		return err_plain(err, EINVAL, "container name must be 1..%d characters", NET_NAME_MAX);
	if (name[0] == '.')
		return err_plain(err, EINVAL, "container name \"%s\" must not start with '.'", name);
	for (const char *p = name; *p; p++)
		if (*p == '/' || iscntrl((unsigned char)*p))
			return err_plain(err, EINVAL, "container name \"%s\": '/' and control characters "
					 "are not allowed", name);
	return 0;
}

int net_check_ifname(const char *name, const char *what, struct corral_error *err)
{
	size_t n = strnlen(name, IFNAMSIZ);

	if (n == 0 || n >= IFNAMSIZ)
		return err_plain(err, EINVAL, "%s name must be 1..%d characters", what, IFNAMSIZ - 1);
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return err_plain(err, EINVAL, "%s name \"%s\" is not allowed", what, name);
	for (const char *p = name; *p; p++)
		if (*p == '/' || *p == ':' || isspace((unsigned char)*p) || !isprint((unsigned char)*p))
			return err_plain(err, EINVAL, "%s name \"%s\": '/', ':' and blanks are not allowed",
					 what, name);
	return 0;
}

void net_host_veth_name(const char *container, char *ret)
{
	/* FNV-1a: fixed, unseeded and stable across builds, which is the
	 * point -- the name must be recomputable after a crash. */
	uint32_t h = UINT32_C(2166136261);
	for (const unsigned char *p = (const unsigned char *)container; *p; p++) {
		h ^= *p;
		h *= UINT32_C(16777619);
	}
	snprintf(ret, IFNAMSIZ, "vc%08x", (unsigned)h);
}

void net_host_veth_alias(const char *container, char *ret, size_t size)
{
	snprintf(ret, size, NET_ALIAS_PREFIX "%s", container);
}

/* Opens (and with create, makes) <state_root>/net/leases. */
static int lease_dir_open(const char *state_root, bool create, struct corral_error *err)
{
	char path[4096];

	if (snprintf(path, sizeof(path), "%s/net/leases", state_root) >= (int)sizeof(path))
		return err_plain(err, ENAMETOOLONG, "state root \"%s\": path too long", state_root);
	if (create) {
		char net[4096];
		snprintf(net, sizeof(net), "%s/net", state_root);
		if (mkdir(net, 0755) < 0 && errno != EEXIST)
			return err_set(err, errno, "create %s", net);
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return err_set(err, errno, "create %s", path);
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && !create)
		return -ENOENT;	/* no lease was ever taken: not an error */
	if (fd < 0)
		return err_set(err, errno, "open %s", path);
	return fd;
}

/* Reads a lease file and says whether it names `container`.  Anything that
 * is not a small regular file holding "<name>\n" names nobody. */
static bool lease_names(int dirfd, const char *file, const char *container)
{
	cleanup_close int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	char buf[LEASE_MAX + 1];
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > LEASE_MAX)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 1 || buf[n - 1] != '\n')
		return false;
	buf[n - 1] = '\0';
	return strcmp(buf, container) == 0;
}

/* Parses a lease file name; true if it is a container address of sn. */
static bool lease_file_ip(const char *file, const struct net_subnet *sn, uint32_t *ret)
{
	char canonical[INET_ADDRSTRLEN];
	struct in_addr a;

	if (inet_pton(AF_INET, file, &a) != 1)
		return false;
	uint32_t ip = ntohl(a.s_addr);
	net_ip_format(ip, canonical);
	if (strcmp(canonical, file) || ip <= sn->gateway || ip >= sn->broadcast)
		return false;
	*ret = ip;
	return true;
}

static int lease_find(int dirfd, const struct net_subnet *sn, const char *container, uint32_t *ret,
		      struct corral_error *err)
{
	cleanup_dir DIR *d = dir_stream_at(dirfd);
	if (!d)
		return err_set(err, errno, "read the lease directory");
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de)
			break;
		uint32_t ip;
		if (lease_file_ip(de->d_name, sn, &ip) && lease_names(dirfd, de->d_name, container)) {
			*ret = ip;
			return 1;
		}
	}
	if (errno)
		return err_set(err, errno, "read the lease directory");
	return 0;
}

/* Writes "<container>\n" to a fresh temp file in the lease directory and
 * fsyncs it; the name goes to tmp. */
static int lease_write_temp(int dirfd, const char *container, char *tmp, size_t size,
			    struct corral_error *err)
{
	snprintf(tmp, size, ".tmp.%ld.%s", (long)getpid(), container);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 && errno == EEXIST) {
		/* Left behind by a crashed process that had our pid. */
		unlinkat(dirfd, tmp, 0);
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	}
	if (fd < 0)
		return err_set(err, errno, "create lease temp file %s", tmp);

	size_t n = strlen(container);
	char buf[LEASE_MAX];
	memcpy(buf, container, n);
	buf[n++] = '\n';
	ssize_t w = write(fd, buf, n);
	int e = w < 0 ? errno : (size_t)w != n ? EIO : 0;
	if (!e && fsync(fd) < 0)
		e = errno;
	if (close(fd) < 0 && !e)
		e = errno;
	if (e) {
		unlinkat(dirfd, tmp, 0);
		return err_set(err, e, "write lease temp file %s", tmp);
	}
	return 0;
}

/* The container named by a lease file, into buf ("" if unreadable). */
static void lease_holder(int dirfd, const char *file, char *buf, size_t size)
{
	cleanup_close int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, size - 1);
	if (n <= 0) {
		buf[0] = '\0';
		return;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

int net_lease_acquire(const char *state_root, const struct net_subnet *sn, uint32_t want, const char *container,
		      uint32_t *ret_ip, bool *ret_created, struct corral_error *err)
{
	cleanup_close int dirfd = lease_dir_open(state_root, true, err);
	if (dirfd < 0)
		return dirfd;

	uint32_t ip = 0;
	int r = lease_find(dirfd, sn, container, &ip, err);
	if (r < 0)
		return r;
	if (r > 0 && want && ip != want) {
		/* A lease left from before --ip changed: give it back. */
		char name[INET_ADDRSTRLEN];
		net_ip_format(ip, name);
		unlinkat(dirfd, name, 0);
		r = 0;
	}
	if (r > 0) {
		*ret_ip = ip;
		*ret_created = false;
		return 0;
	}

	char tmp[NET_NAME_MAX + 64];
	r = lease_write_temp(dirfd, container, tmp, sizeof(tmp), err);
	if (r < 0)
		return r;

	if (want) {
		char name[INET_ADDRSTRLEN], holder[LEASE_MAX + 1];
		net_ip_format(want, name);
		r = linkat(dirfd, tmp, dirfd, name, 0) < 0 ? -errno : 0;
		unlinkat(dirfd, tmp, 0);
		if (r == -EEXIST) {
			lease_holder(dirfd, name, holder, sizeof(holder));
			return err_plain(err, EADDRINUSE, "address %s is taken by container %s", name,
					 holder[0] ? holder : "(unknown)");
		}
		if (r < 0)
			return err_set(err, -r, "create lease %s/net/leases/%s", state_root, name);
		if (fsync(dirfd) < 0) {
			int e = errno;
			unlinkat(dirfd, name, 0);
			return err_set(err, e, "sync %s/net/leases", state_root);
		}
		*ret_ip = want;
		*ret_created = true;
		return 0;
	}

	/* link(2) fails with EEXIST if the address is taken: the same
	 * exclusivity as O_CREAT|O_EXCL, but the lease appears with its
	 * content already on disk. */
	r = -EADDRNOTAVAIL;
	for (ip = sn->gateway + 1; ip < sn->broadcast; ip++) {
		char name[INET_ADDRSTRLEN];
		net_ip_format(ip, name);
		if (linkat(dirfd, tmp, dirfd, name, 0) == 0) {
			r = 0;
			break;
		}
		if (errno != EEXIST) {
			r = err_set(err, errno, "create lease %s/net/leases/%s", state_root, name);
			break;
		}
	}
	unlinkat(dirfd, tmp, 0);
	if (r == -EADDRNOTAVAIL) {
		char net[INET_ADDRSTRLEN];
		net_ip_format(sn->network, net);
		return err_plain(err, EADDRNOTAVAIL, "no free address in subnet %s/%u: all %lu container "
				 "addresses are leased (see %s/net/leases)", net, sn->prefix,
				 (unsigned long)(sn->broadcast - sn->gateway - 1), state_root);
	}
	if (r < 0)
		return r;
	if (fsync(dirfd) < 0) {
		int e = errno;
		char name[INET_ADDRSTRLEN];
		net_ip_format(ip, name);
		unlinkat(dirfd, name, 0);
		return err_set(err, e, "sync %s/net/leases", state_root);
	}
	*ret_ip = ip;
	*ret_created = true;
	return 0;
}

int net_ip_check_free(const char *state_root, const char *ip, struct corral_error *err)
{
	uint32_t a;
	if (net_ip_parse(ip, &a) < 0)
		return err_plain(err, EINVAL, "--ip \"%s\": expected an IPv4 address", ip);
	cleanup_close int dirfd = lease_dir_open(state_root, false, NULL);
	if (dirfd < 0)
		return 0;
	char holder[LEASE_MAX + 1];
	lease_holder(dirfd, ip, holder, sizeof(holder));
	if (holder[0])
		return err_plain(err, EADDRINUSE, "address %s is taken by container %s", ip, holder);
	return 0;
}

int net_lease_lookup(const char *state_root, const char *container, uint32_t *ret_ip)
{
	cleanup_close int dirfd = lease_dir_open(state_root, false, NULL);
	if (dirfd < 0)
		return 0;
	cleanup_dir DIR *d = dir_stream_at(dirfd);
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint32_t ip;
		if (net_ip_parse(de->d_name, &ip) == 0 && lease_names(dirfd, de->d_name, container)) {
			*ret_ip = ip;
			return 1;
		}
	}
	return 0;
}

int net_bridge_lock(const char *state_root, const char *bridge, struct corral_error *err)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/net", state_root) >= (int)sizeof(path))
		return err_plain(err, ENAMETOOLONG, "state root \"%s\": path too long", state_root);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return err_set(err, errno, "create %s", path);
	snprintf(path, sizeof(path), "%s/net/bridge-%s.lock", state_root, bridge);
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(err, errno, "open %s", path);
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int e = errno;
			close(fd);
			return err_set(err, e, "lock %s", path);
		}
	}
	return fd;
}

void net_ip6_format(const struct in6_addr *a, char *buf, size_t size)
{
	if (!inet_ntop(AF_INET6, a, buf, (socklen_t)size) && size)
		buf[0] = '\0';
}

/* Parses the ULA file's content; true if it is an fd00::/8 /48. */
static bool ula_parse(const char *text, struct in6_addr *ret)
{
	char buf[64];
	size_t n = strcspn(text, "/\n");
	if (n >= sizeof(buf))
		return false;
	memcpy(buf, text, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET6, buf, ret) != 1 || ret->s6_addr[0] != 0xfd)
		return false;
	for (int i = 6; i < 16; i++)
		if (ret->s6_addr[i])
			return false;
	return true;
}

/* The host's ULA /48, chosen at first use: the first writer's link(2)
 * wins, everyone else reads it. */
static int ula_get(const char *state_root, struct in6_addr *ret, struct corral_error *err)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/net", state_root);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return err_set(err, errno, "create %s", dir);
	cleanup_close int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return err_set(err, errno, "open %s", dir);
	for (int attempt = 0; attempt < 2; attempt++) {
		cleanup_close int fd = openat(dirfd, "ula", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			char text[64];
			ssize_t n = read(fd, text, sizeof(text) - 1);
			text[n > 0 ? n : 0] = '\0';
			if (!ula_parse(text, ret))
				return err_plain(err, EINVAL, "%s/ula: not a unique local /48 (fdXX:XXXX:XXXX::/48)", dir);
			return 0;
		}
		if (errno != ENOENT)
			return err_set(err, errno, "open %s/ula", dir);
		uint8_t g[5];
		if (getrandom(g, sizeof(g), 0) != (ssize_t)sizeof(g))
			return err_set(err, errno ? errno : EIO, "choose a unique local IPv6 prefix");
		char text[64], tmp[64];
		int len = snprintf(text, sizeof(text), "fd%02x:%02x%02x:%02x%02x::/48\n", g[0], g[1], g[2], g[3], g[4]);
		snprintf(tmp, sizeof(tmp), ".ula.%ld", (long)getpid());
		int r = file_commit_at(dirfd, tmp, text, (size_t)len, 0644, 0, NULL, NULL);
		if (r < 0)
			return err_set(err, -r, "write %s/%s", dir, tmp);
		if (linkat(dirfd, tmp, dirfd, "ula", 0) < 0 && errno != EEXIST) {
			int e = errno;
			unlinkat(dirfd, tmp, 0);
			return err_set(err, e, "create %s/ula", dir);
		}
		unlinkat(dirfd, tmp, 0);
	}
	return err_plain(err, EIO, "%s/ula: could not be read back", dir);
}

int net_v6_for(const char *state_root, const struct net_subnet *sn, uint32_t ip, struct net_v6 *v6,
	       struct corral_error *err)
{
	/* No IPv6 in the kernel, or turned off for new interfaces (the
	 * bridge would refuse the address): IPv4 only. */
	char off = '0';
	cleanup_close int fd = open("/proc/sys/net/ipv6/conf/default/disable_ipv6", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (read(fd, &off, 1) == 1 && off == '1'))
		return 1;
	struct in6_addr ula;
	int r = ula_get(state_root, &ula, err);
	if (r < 0)
		return r;
	/* The /64 of the subnet: 16 bits of FNV-1a over its address and
	 * prefix length. */
	uint32_t h = UINT32_C(2166136261);
	uint8_t key[5] = { (uint8_t)(sn->network >> 24), (uint8_t)(sn->network >> 16), (uint8_t)(sn->network >> 8),
			   (uint8_t)sn->network, (uint8_t)sn->prefix };
	for (size_t i = 0; i < sizeof(key); i++) {
		h ^= key[i];
		h *= UINT32_C(16777619);
	}
	uint16_t sid = (uint16_t)(h ^ (h >> 16));
	ula.s6_addr[6] = (uint8_t)(sid >> 8);
	ula.s6_addr[7] = (uint8_t)sid;
	v6->gateway = ula;
	v6->address = ula;
	for (int i = 0; i < 4; i++) {
		v6->gateway.s6_addr[12 + i] = (uint8_t)(sn->gateway >> (24 - 8 * i));
		v6->address.s6_addr[12 + i] = (uint8_t)(ip >> (24 - 8 * i));
	}
	return 0;
}

int net_lease_drop(const char *state_root, uint32_t ip, const char *container, struct corral_error *err)
{
	cleanup_close int dirfd = lease_dir_open(state_root, false, err);
	if (dirfd < 0)
		return dirfd == -ENOENT ? 0 : dirfd;

	char name[INET_ADDRSTRLEN];
	net_ip_format(ip, name);
	if (!lease_names(dirfd, name, container))
		return 0;
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return err_set(err, errno, "remove lease %s/net/leases/%s", state_root, name);
	if (fsync(dirfd) < 0)
		return err_set(err, errno, "sync %s/net/leases", state_root);
	return 0;
}

int net_lease_release(const char *state_root, const char *container, struct corral_error *err)
{
	cleanup_close int dirfd = lease_dir_open(state_root, false, err);
	if (dirfd < 0)
		return dirfd == -ENOENT ? 0 : dirfd;

	cleanup_dir DIR *d = dir_stream_at(dirfd);
	if (!d)
		return err_set(err, errno, "read %s/net/leases", state_root);

	int r = 0;
	bool removed = false;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de)
			break;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!lease_names(dirfd, de->d_name, container))
			continue;
		if (unlinkat(dirfd, de->d_name, 0) < 0 && errno != ENOENT) {
			if (r == 0)
				r = err_set(err, errno, "remove lease %s/net/leases/%s", state_root, de->d_name);
			continue;
		}
		removed = true;
	}
	if (errno && r == 0)
		r = err_set(err, errno, "read %s/net/leases", state_root);
	if (removed && fsync(dirfd) < 0 && r == 0)
		r = err_set(err, errno, "sync %s/net/leases", state_root);
	return r;
}
