/* unit-net: the net module against real network namespaces (needs root).
 *
 * "Containers" here are forked agents that unshare(CLONE_NEWNET), listen on
 * a TCP echo port and carry out connect/route/loopback requests sent over a
 * pipe.  Everything runs on a bridge and subnets of the test's own
 * (corraltest<n>, 10.213.<n>.0/24, 10.214.<n>.0/30) with a private state
 * root, so a real corral0 is never touched.  Bridges, veths, agents, the
 * nft table, ip_forward and the state root are cleaned up on every exit
 * path, including a watchdog timeout and SIGINT/SIGTERM. */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "net/net-internal.h"
#include "net/net.h"

#define AGENT_PORT 7001
#define HOST_PORT 7002
#define IO_TIMEOUT_MS 3000

enum { OP_ECHO = 'E', OP_CONNECT = 'C', OP_ROUTE = 'R', OP_LOOPBACK = 'L', OP_QUIT = 'Q' };

struct cmd {
	char op;
	uint32_t addr;	/* host byte order */
	uint16_t port;
};

struct res {
	int err;	/* positive errno, 0 = success */
	uint32_t src;	/* OP_ROUTE: the source address the route picks */
	char msg[512];
};

struct agent {
	pid_t pid;
	int cmd, res;
};

/* Everything the cleanup must undo; the test is one sequential process. */
static struct {
	char root[64];
	char br1[IFNAMSIZ], br2[IFNAMSIZ];
	char net1[32], net2[32];
	struct agent agents[8];
	int nagents;
	char names[8][64];
	int nnames;
	int old_forward;	/* -1: unknown */
	volatile sig_atomic_t cleaning;
} T = { .old_forward = -1 };

/* ---- sockets ---- */

static int wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;
	do
		n = poll(&p, 1, IO_TIMEOUT_MS);
	while (n < 0 && errno == EINTR);
	return n < 0 ? errno : n == 0 ? ETIMEDOUT : 0;
}

/* Connects to addr:port; with echo, sends a byte and expects it back.
 * Returns 0 or a positive errno. */
static int tcp_try(uint32_t addr, uint16_t port, bool echo)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(addr) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int e = 0;
	char c = 'x';

	if (fd < 0)
		return errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = errno == EINPROGRESS ? wait_fd(fd, POLLOUT) : errno;
		socklen_t len = sizeof(e);
		if (!e && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
			e = errno;
	}
	if (!e && echo) {
		if (send(fd, &c, 1, MSG_NOSIGNAL) != 1)
			e = errno;
		else if (!(e = wait_fd(fd, POLLIN)))
			e = recv(fd, &c, 1, 0) == 1 && c == 'x' ? 0 : EPROTO;
	}
	close(fd);
	return e;
}

static int tcp_listen(uint32_t addr, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(addr) };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static void echo_one(int lfd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_MS / 1000 };
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	char c;
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (read(fd, &c, 1) == 1)
		(void)!write(fd, &c, 1);
	close(fd);
}

/* ---- agents ---- */

static void agent_reply(int fd, const struct res *r)
{
	if (write(fd, r, sizeof(*r)) != (ssize_t)sizeof(*r))
		_exit(3);
}

static void agent_do(const struct cmd *c, struct res *r)
{
	switch (c->op) {
	case OP_ECHO:
	case OP_CONNECT:
		r->err = tcp_try(c->addr, c->port, c->op == OP_ECHO);
		break;
	case OP_ROUTE: {
		/* A UDP connect() only looks the route up; nothing is sent. */
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(c->port),
					  .sin_addr.s_addr = htonl(c->addr) };
		socklen_t len = sizeof(sa);
		int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
			r->err = errno;
		else
			r->src = ntohl(sa.sin_addr.s_addr);
		if (fd >= 0)
			close(fd);
		break;
	}
	case OP_LOOPBACK: {
		struct corral_error e = { 0 };
		if (net_setup_loopback(&e) < 0) {
			r->err = e.code;
			snprintf(r->msg, sizeof(r->msg), "%.500s", e.msg);
		}
		break;
	}
	default:
		r->err = EINVAL;
	}
}

static __attribute__((noreturn)) void agent_main(int cmd_fd, int res_fd)
{
	struct res r = { 0 };

	if (unshare(CLONE_NEWNET) < 0) {
		r.err = errno;
		snprintf(r.msg, sizeof(r.msg), "unshare(CLONE_NEWNET): %s", strerror(errno));
		agent_reply(res_fd, &r);
		_exit(1);
	}
	/* Bound to the wildcard address in the agent's own namespace: it
	 * needs no address yet and serves whatever the test assigns later. */
	int lfd = tcp_listen(INADDR_ANY, AGENT_PORT);
	if (lfd < 0) {
		r.err = -lfd;
		snprintf(r.msg, sizeof(r.msg), "listen: %s", strerror(-lfd));
	}
	agent_reply(res_fd, &r);
	if (lfd < 0)
		_exit(1);

	for (;;) {
		struct pollfd p[2] = { { .fd = cmd_fd, .events = POLLIN }, { .fd = lfd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(2);
		}
		if (p[1].revents & POLLIN)
			echo_one(lfd);
		if (p[0].revents & (POLLIN | POLLHUP)) {
			struct cmd c;
			if (read(cmd_fd, &c, sizeof(c)) != (ssize_t)sizeof(c) || c.op == OP_QUIT)
				_exit(0);
			memset(&r, 0, sizeof(r));
			agent_do(&c, &r);
			agent_reply(res_fd, &r);
		}
	}
}

static struct agent *agent_start(void)
{
	struct agent *a = &T.agents[T.nagents];
	int c[2], r[2];
	pid_t parent = getpid();

	if (pipe2(c, O_CLOEXEC) < 0 || pipe2(r, O_CLOEXEC) < 0)
		return NULL;
	a->pid = fork();
	if (a->pid < 0)
		return NULL;
	if (a->pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGALRM, SIG_DFL);
		alarm(0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		close(c[1]);
		close(r[0]);
		agent_main(c[0], r[1]);
	}
	close(c[0]);
	close(r[1]);
	a->cmd = c[1];
	a->res = r[0];
	T.nagents++;

	struct res ready;
	if (read(a->res, &ready, sizeof(ready)) != (ssize_t)sizeof(ready)) {
		diag("agent %ld died while starting", (long)a->pid);
		return NULL;
	}
	if (ready.err) {
		diag("agent: %s", ready.msg);
		errno = ready.err;
		return NULL;
	}
	return a;
}

/* Sends a request and returns the agent's errno (or -1 if it died). */
static int agent_call(struct agent *a, char op, uint32_t addr, uint16_t port, struct res *ret)
{
	struct cmd c;
	struct res r;

	memset(&c, 0, sizeof(c));	/* no uninitialised padding down the pipe */
	c.op = op;
	c.addr = addr;
	c.port = port;

	if (write(a->cmd, &c, sizeof(c)) != (ssize_t)sizeof(c))
		return -1;
	struct pollfd p = { .fd = a->res, .events = POLLIN };
	if (poll(&p, 1, 4 * IO_TIMEOUT_MS) <= 0 || read(a->res, &r, sizeof(r)) != (ssize_t)sizeof(r))
		return -1;
	if (ret)
		*ret = r;
	if (r.msg[0])
		diag("agent: %s", r.msg);
	return r.err;
}

/* ---- helpers ---- */

static uint32_t ip_of(const char *text)
{
	char buf[48];
	struct in_addr a;
	snprintf(buf, sizeof(buf), "%s", text);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	return inet_pton(AF_INET, buf, &a) == 1 ? ntohl(a.s_addr) : 0;
}

static const char *name_add(const char *what)
{
	char *n = T.names[T.nnames++];
	snprintf(n, sizeof(T.names[0]), "unit-net-%s-%ld", what, (long)getpid());
	return n;
}

static void lease_path(uint32_t ip, char *buf, size_t size)
{
	char text[INET_ADDRSTRLEN];
	net_ip_format(ip, text);
	snprintf(buf, size, "%s/net/leases/%s", T.root, text);
}

/* True if the lease file of ip exists and holds "<name>\n". */
static bool lease_is(uint32_t ip, const char *name)
{
	char path[256], buf[128] = "", want[80];
	lease_path(ip, path, sizeof(path));
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	snprintf(want, sizeof(want), "%s\n", name);
	return strcmp(buf, want) == 0;
}

static int lease_write(uint32_t ip, const char *name)
{
	char path[256];
	lease_path(ip, path, sizeof(path));
	FILE *f = fopen(path, "we");
	if (!f)
		return -1;
	fprintf(f, "%s\n", name);
	return fclose(f);
}

/* Counts lease directory entries naming `name` (any file name). */
static int leases_naming(const char *name)
{
	char dir[128], path[384], buf[128], want[80];
	int count = 0;
	snprintf(dir, sizeof(dir), "%s/net/leases", T.root);
	snprintf(want, sizeof(want), "%s\n", name);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	for (struct dirent *de; (de = readdir(d));) {
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		count += strcmp(buf, want) == 0;
	}
	closedir(d);
	return count;
}

static bool sys_link_is(const char *ifname, const char *attr, const char *want)
{
	char path[128], buf[256];
	snprintf(path, sizeof(path), "/sys/class/net/%s/%s", ifname, attr);
	if (!strcmp(attr, "master")) {
		ssize_t n = readlink(path, buf, sizeof(buf) - 1);
		if (n < 0)
			return false;
		buf[n] = '\0';
		const char *base = strrchr(buf, '/');
		return !strcmp(base ? base + 1 : buf, want);
	}
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool r = fgets(buf, sizeof(buf), f) && (buf[strcspn(buf, "\n")] = '\0', !strcmp(buf, want));
	fclose(f);
	return r;
}

static int read_forward(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_forward", "re");
	int v = -1;
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static void cleanup(void)
{
	sigset_t block, old;

	if (T.cleaning)
		return;
	/* A signal arriving now waits until everything is undone. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGALRM);
	sigprocmask(SIG_BLOCK, &block, &old);
	T.cleaning = 1;
	for (int i = 0; i < T.nagents; i++) {
		if (T.agents[i].pid > 0) {
			kill(T.agents[i].pid, SIGKILL);
			waitpid(T.agents[i].pid, NULL, 0);
			T.agents[i].pid = 0;
		}
	}
	for (int i = 0; i < T.nnames; i++)
		net_teardown(T.root, T.names[i], NULL, NULL);

	struct nl_sock *sk = NULL;
	if (net_nl_open(&sk, NULL) == 0) {
		if (T.br1[0])
			net_link_delete(sk, T.br1, NULL, NULL);
		if (T.br2[0])
			net_link_delete(sk, T.br2, NULL, NULL);
		net_nl_closep(&sk);
	}
	if (T.br1[0]) {
		net_nft_bridge_remove(T.br1, NULL);
		net_dns_stop(T.br1);
	}
	if (T.br2[0]) {
		net_nft_bridge_remove(T.br2, NULL);
		net_dns_stop(T.br2);
	}
	if (T.old_forward == 0 && read_forward() == 1) {
		FILE *f = fopen("/proc/sys/net/ipv4/ip_forward", "we");
		if (f) {
			fputs("0\n", f);
			fclose(f);
		}
	}
	if (T.root[0])
		nftw(T.root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static void on_signal(int sig)
{
	/* Not async-signal-safe, but the alternative is leaving bridges and
	 * sysctls behind on the host; the process exits right after. */
	printf("Bail out! %s\n", sig == SIGALRM ? "watchdog timeout" : "interrupted");
	cleanup();
	_exit(1);
}

/* ---- tests ---- */

static void test_pure(void)
{
	struct corral_error e = { 0 };
	enum net_mode m = NET_NONE;

	ok(net_mode_parse("bridge", &m, &e) == 0 && m == NET_BRIDGE, "parse \"bridge\"");
	ok(net_mode_parse("host", &m, &e) == 0 && m == NET_HOST, "parse \"host\"");
	ok(net_mode_parse("none", &m, &e) == 0 && m == NET_NONE, "parse \"none\"");
	m = NET_HOST;
	ok(net_mode_parse("bogus", &m, &e) == -EINVAL && m == NET_HOST && strstr(e.msg, "bogus"),
	   "reject \"bogus\", leave the result alone: %s", e.msg);
	ok(!strcmp(net_mode_name(NET_BRIDGE), "bridge") && !strcmp(net_mode_name(NET_NONE), "none") &&
	   !strcmp(net_mode_name(NET_HOST), "host"), "mode names round-trip");

	struct net_config cfg;
	memset(&cfg, 0x55, sizeof(cfg));
	net_config_init(&cfg);
	ok(cfg.mode == NET_NONE && !strcmp(cfg.bridge, "corral0") && !strcmp(cfg.subnet, "10.77.0.0/16") &&
	   !cfg.nat && !cfg.address[0] && !cfg.host_veth[0], "config defaults: none, corral0, 10.77.0.0/16");

	struct net_subnet sn;
	char gw[INET_ADDRSTRLEN];
	ok(net_subnet_parse("10.88.0.0/16", &sn, &e) == 0 && (net_ip_format(sn.gateway, gw), !strcmp(gw, "10.88.0.1")) &&
	   sn.prefix == 16 && sn.broadcast == ip_of("10.88.255.255"), "10.88.0.0/16: gateway 10.88.0.1");
	ok(net_subnet_parse("10.88.0.5/16", &sn, &e) == -EINVAL && strstr(e.msg, "10.88.0.0/16"),
	   "host bits set: %s", e.msg);
	ok(net_subnet_parse("10.88.0.0/31", &sn, &e) == -EINVAL, "/31 rejected: %s", e.msg);
	ok(net_subnet_parse("fd00::/64", &sn, &e) == -EAFNOSUPPORT, "IPv6 rejected: %s", e.msg);
	ok(net_subnet_parse("garbage", &sn, &e) == -EINVAL, "garbage rejected: %s", e.msg);
	ok(net_subnet_parse("10.0.0.0/8", &sn, &e) == 0 && net_subnet_parse("10.0.0.0/30", &sn, &e) == 0,
	   "/8 and /30 accepted");
	ok(net_subnet_parse("10.0.0.0/7", &sn, &e) == -EINVAL && strstr(e.msg, "8..30"), "/7 rejected: %s", e.msg);
	ok(net_subnet_parse("10.0.0.0/016", &sn, &e) == -EINVAL, "a prefix with a leading zero rejected: %s", e.msg);
	ok(net_subnet_parse("10.0.0.0/", &sn, &e) == -EINVAL && net_subnet_parse("10.0.0.0/1x", &sn, &e) == -EINVAL &&
	   net_subnet_parse("/16", &sn, &e) == -EINVAL, "empty or junk prefix, empty address rejected");

	/* --ip against the subnet, -p. */
	ok(net_ip_validate("10.77.0.9", "10.77.0.0/24", &e) == 0, "--ip 10.77.0.9 in 10.77.0.0/24");
	ok(net_ip_validate("10.78.0.9", "10.77.0.0/24", &e) == -EINVAL && strstr(e.msg, "outside the subnet"),
	   "--ip outside: %s", e.msg);
	ok(net_ip_validate("10.77.0.0", "10.77.0.0/24", &e) == -EINVAL && strstr(e.msg, "network address"),
	   "--ip network: %s", e.msg);
	ok(net_ip_validate("10.77.0.1", "10.77.0.0/24", &e) == -EINVAL && strstr(e.msg, "gateway"),
	   "--ip gateway: %s", e.msg);
	ok(net_ip_validate("10.77.0.255", "10.77.0.0/24", &e) == -EINVAL && strstr(e.msg, "broadcast"),
	   "--ip broadcast: %s", e.msg);
	ok(net_ip_validate("10.77.0.09", "10.77.0.0/24", &e) == -EINVAL &&
	   net_ip_validate("10.77.0", "10.77.0.0/24", &e) == -EINVAL &&
	   net_ip_validate("fd00::1", "10.77.0.0/24", &e) == -EINVAL, "--ip: non-canonical, short, IPv6 refused: %s",
	   e.msg);
	struct net_port port;
	char pt[32];
	ok(net_port_parse("8080:80", &port, &e) == 0 && port.host == 8080 && port.container == 80 && !port.udp &&
	   (net_port_format(&port, pt, sizeof(pt)), !strcmp(pt, "8080:80/tcp")), "-p 8080:80 is tcp");
	ok(net_port_parse("53:5353/udp", &port, &e) == 0 && port.udp && port.host == 53 && port.container == 5353 &&
	   net_port_parse("1:65535/tcp", &port, &e) == 0, "-p 53:5353/udp, 1:65535/tcp");
	ok(net_port_parse("0:80", &port, &e) == -ERANGE && net_port_parse("80:65536", &port, &e) == -ERANGE,
	   "-p: port 0 and 65536 refused: %s", e.msg);
	ok(net_port_parse("80", &port, &e) == -EINVAL && net_port_parse("80:", &port, &e) == -EINVAL &&
	   net_port_parse("a:80", &port, &e) == -EINVAL && net_port_parse("80:80/sctp", &port, &e) == -EINVAL &&
	   net_port_parse("-1:80", &port, &e) == -EINVAL && net_port_parse("80:+80", &port, &e) == -EINVAL,
	   "-p: junk refused: %s", e.msg);

	char a1[IFNAMSIZ], a2[IFNAMSIZ], b[IFNAMSIZ];
	net_host_veth_name("web", a1);
	net_host_veth_name("web", a2);
	net_host_veth_name("db", b);
	ok(!strcmp(a1, a2) && strcmp(a1, b) && strlen(a1) == 10 && !strncmp(a1, "vc", 2),
	   "host veth names are deterministic and short: %s %s", a1, b);
}

static int setup(const char *name, struct agent *a, const char *bridge, const char *subnet, bool nat,
		 struct net_config *cfg, struct corral_error *e)
{
	net_config_init(cfg);
	cfg->mode = NET_BRIDGE;
	snprintf(cfg->bridge, sizeof(cfg->bridge), "%s", bridge);
	snprintf(cfg->subnet, sizeof(cfg->subnet), "%s", subnet);
	cfg->nat = nat;
	memset(e, 0, sizeof(*e));
	return net_setup_host(T.root, name, a ? a->pid : getpid(), cfg, e);
}

int main(void)
{
	if (geteuid() != 0) {
		printf("1..0 # SKIP needs root (network namespaces, bridges)\n");
		return 0;
	}
	if (unshare(0) < 0 || access("/proc/self/ns/net", R_OK) < 0) {
		printf("1..0 # SKIP no network namespaces\n");
		return 0;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	int n = (int)(getpid() % 1000);
	snprintf(T.br1, sizeof(T.br1), "corraltest%d", n);
	snprintf(T.br2, sizeof(T.br2), "corraltest%db", n);
	snprintf(T.net1, sizeof(T.net1), "10.213.%d.0/24", n % 250);
	snprintf(T.net2, sizeof(T.net2), "10.214.%d.0/30", n % 250);
	T.old_forward = read_forward();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGALRM, on_signal);
	alarm(120);
	/* Bridges left by an earlier run with the same n that was killed. */
	cleanup();
	T.cleaning = 0;
	atexit(cleanup);
	snprintf(T.root, sizeof(T.root), "/tmp/unit-net.XXXXXX");
	if (!mkdtemp(T.root)) {
		T.root[0] = '\0';
		tap_bail("mkdtemp: %s", strerror(errno));
		return 1;
	}

	test_pure();

	struct corral_error e;
	struct net_config ca, cb, cn, cc, cd, tmp;
	const char *A = name_add("a"), *B = name_add("b"), *C = name_add("c"), *D = name_add("d");
	const char *ghost = name_add("ghost");
	uint32_t base = ip_of(T.net1), gw = base + 1;

	/* Fail closed before touching anything. */
	ok(setup(A, NULL, T.br1, T.net1, false, &tmp, &e) == -EINVAL && strstr(e.msg, "host's network namespace"),
	   "refuse a pid in the host's netns: %s", e.msg);
	ok(if_nametoindex(T.br1) == 0, "... before creating the bridge");
	struct agent *a = agent_start(), *b = agent_start(), *none = agent_start();
	if (!a || !b || !none) {
		tap_bail("cannot start namespace agents: %s", strerror(errno));
		return 1;
	}
	ok(setup(A, a, "bad/name", T.net1, false, &tmp, &e) == -EINVAL, "bad bridge name: %s", e.msg);
	ok(setup(A, a, T.br1, "10.213.0.1/24", false, &tmp, &e) == -EINVAL, "bad subnet: %s", e.msg);

	/* A stale lease of another container holds the lowest address. */
	char leases[128];
	snprintf(leases, sizeof(leases), "%s/net", T.root);
	mkdir(leases, 0755);
	snprintf(leases, sizeof(leases), "%s/net/leases", T.root);
	mkdir(leases, 0755);
	ok(lease_write(base + 2, ghost) == 0, "plant a stale lease for .2");

	int r = setup(A, a, T.br1, T.net1, true, &ca, &e);
	ok(r == 0, "bridge setup of A (with NAT): %s", r ? e.msg : ca.address);
	r = setup(B, b, T.br1, T.net1, false, &cb, &e);
	ok(r == 0, "bridge setup of B: %s", r ? e.msg : cb.address);
	uint32_t ipa = ip_of(ca.address), ipb = ip_of(cb.address);
	ok(ipa == base + 3 && ipb == base + 4, "lowest free addresses, skipping the leased .2: %s %s",
	   ca.address, cb.address);
	ok(strstr(ca.address, "/24") && ip_of(ca.gateway) == gw, "address is a CIDR, gateway is .1 (%s)", ca.gateway);
	ok(lease_is(ipa, A) && lease_is(ipb, B), "lease files exist and name their containers");
	ok(if_nametoindex(T.br1) != 0, "bridge %s exists", T.br1);
	ok(if_nametoindex(ca.host_veth) && if_nametoindex(cb.host_veth) && strcmp(ca.host_veth, cb.host_veth),
	   "host veths exist: %s %s", ca.host_veth, cb.host_veth);
	ok(sys_link_is(ca.host_veth, "master", T.br1) && sys_link_is(cb.host_veth, "master", T.br1),
	   "host veths are ports of %s", T.br1);
	char alias[96];
	snprintf(alias, sizeof(alias), "corral:%s", A);
	ok(sys_link_is(ca.host_veth, "ifalias", alias), "host veth alias names the container");
	ok(sys_link_is(ca.host_veth, "operstate", "up"), "host veth is up");

	struct res res;
	ok(agent_call(a, OP_ECHO, ipb, AGENT_PORT, NULL) == 0, "A reaches B over TCP");
	ok(agent_call(b, OP_ECHO, ipa, AGENT_PORT, NULL) == 0, "B reaches A over TCP");
	ok(tcp_try(ipa, AGENT_PORT, true) == 0, "the host reaches A");
	int hl = tcp_listen(gw, HOST_PORT);
	ok(hl >= 0, "the gateway address is on the bridge (bind %s:%d)", ca.gateway, HOST_PORT);
	ok(hl >= 0 && agent_call(a, OP_CONNECT, gw, HOST_PORT, NULL) == 0, "A reaches the host at the gateway");
	if (hl >= 0)
		close(hl);
	memset(&res, 0, sizeof(res));
	ok(agent_call(a, OP_ROUTE, ip_of("203.0.113.7"), 9, &res) == 0 && res.src == ipa,
	   "A has a default route (off-subnet destination routed from its address)");

	ok(agent_call(none, OP_CONNECT, ip_of("127.0.0.1"), AGENT_PORT, NULL) == ENETUNREACH,
	   "a fresh netns has its loopback down");
	ok(agent_call(none, OP_LOOPBACK, 0, 0, NULL) == 0, "net_setup_loopback inside the netns");
	ok(agent_call(none, OP_CONNECT, ip_of("127.0.0.1"), AGENT_PORT, NULL) == 0, "none: 127.0.0.1 reachable");
	ok(agent_call(none, OP_ECHO, ipa, AGENT_PORT, NULL) == ENETUNREACH, "none: A's address unreachable (ENETUNREACH)");
	net_config_init(&cn);
	ok(net_setup_host(T.root, "unit-net-none", none->pid, &cn, &e) == 0 && !cn.address[0],
	   "net_setup_host does nothing in mode none");

	/* Teardown goes by name, but leaves a link it does not own alone. */
	const char *E = name_add("e");
	char eveth[IFNAMSIZ], nspath[64];
	net_host_veth_name(E, eveth);
	snprintf(nspath, sizeof(nspath), "/proc/%ld/ns/net", (long)none->pid);
	int nsfd = open(nspath, O_RDONLY | O_CLOEXEC);
	struct nl_sock *sk = NULL;
	r = nsfd >= 0 ? net_nl_open(&sk, &e) : -errno;
	if (r == 0)
		r = net_veth_create(sk, eveth, "corral:someone-else", (int)if_nametoindex(T.br1), 0, nsfd, &e);
	ok(r == 0 && net_teardown(T.root, E, NULL, &e) == 0 && if_nametoindex(eveth) != 0,
	   "teardown leaves a foreign link named like the container's veth alone");
	ok(r == 0 && net_link_delete(sk, eveth, "corral:someone-else", &e) == 1 && if_nametoindex(eveth) == 0,
	   "... which its owner can delete");
	if (sk)
		net_nl_closep(&sk);
	if (nsfd >= 0)
		close(nsfd);

	/* NAT: an nft table of the bridge's own, and forwarding on. */
	char table[64], cmd[320];
	net_nat_table_name(T.br1, table, sizeof(table));
	snprintf(cmd, sizeof(cmd), "nft list table ip %s 2>/dev/null | grep -q 'ip saddr @nat_nets .*masquerade' && "
		 "nft list set ip %s nat_nets 2>/dev/null | grep -q 'elements = { %s'", table, table, T.net1);
	ok(system(cmd) == 0, "NAT: nft table %s masquerades %s", table, T.net1);
	ok(read_forward() == 1, "NAT: net.ipv4.ip_forward is on");

	/* Running out: a /30 has exactly one container address. */
	struct agent *c = agent_start(), *d = agent_start();
	if (!c || !d) {
		tap_bail("cannot start namespace agents: %s", strerror(errno));
		return 1;
	}
	r = setup(C, c, T.br2, T.net2, false, &cc, &e);
	ok(r == 0 && ip_of(cc.address) == ip_of(T.net2) + 2, "a /30 leases its only address: %s",
	   r ? e.msg : cc.address);
	r = setup(D, d, T.br2, T.net2, false, &cd, &e);
	ok(r == -EADDRNOTAVAIL && strstr(e.msg, "no free address") && strstr(e.msg, T.net2),
	   "the next one gets a clear error: %s", e.msg);
	char dveth[IFNAMSIZ];
	net_host_veth_name(D, dveth);
	ok(if_nametoindex(dveth) == 0 && leases_naming(D) == 0 && !cd.address[0],
	   "the failed start left no veth, no lease, no address");

	/* Teardown: A as after a crash (nothing but names), B with its config. */
	net_config_init(&tmp);
	tmp.mode = NET_BRIDGE;
	ok(net_teardown(T.root, A, &tmp, &e) == 0, "teardown of A from names alone");
	ok(net_teardown(T.root, B, &cb, &e) == 0, "teardown of B");
	ok(if_nametoindex(ca.host_veth) == 0 && if_nametoindex(cb.host_veth) == 0, "veths are gone");
	ok(!lease_is(ipa, A) && !lease_is(ipb, B) && leases_naming(A) == 0 && leases_naming(B) == 0,
	   "leases are gone");
	ok(agent_call(a, OP_ROUTE, gw, 9, NULL) == ENETUNREACH, "A's eth0 went with its host side");
	ok(net_teardown(T.root, A, &ca, &e) == 0 && net_teardown(T.root, B, NULL, &e) == 0,
	   "a second teardown is fine");
	ok(lease_is(base + 2, ghost) && net_teardown(T.root, ghost, NULL, &e) == 0 && leases_naming(ghost) == 0,
	   "teardown reclaims a crashed container's lease");

	/* A lease this container already holds (restart after a crash) is
	 * reused; otherwise the lowest free address comes back. */
	ok(lease_write(base + 7, B) == 0, "plant B's old lease for .7");
	r = setup(B, b, T.br1, T.net1, false, &cb, &e);
	ok(r == 0 && ip_of(cb.address) == base + 7, "B gets its old address back: %s", r ? e.msg : cb.address);
	r = setup(A, a, T.br1, T.net1, false, &ca, &e);
	ok(r == 0 && ip_of(ca.address) == base + 2, "A gets the lowest free address: %s", r ? e.msg : ca.address);
	ok(r == 0 && agent_call(a, OP_ECHO, base + 7, AGENT_PORT, NULL) == 0, "and they talk again");
	r = setup(A, a, T.br1, T.net1, false, &tmp, &e);
	ok(r == -EEXIST && leases_naming(A) == 1, "a second setup of a running container fails, lease kept: %s", e.msg);
	ok(net_teardown(T.root, A, NULL, &e) == 0 && net_teardown(T.root, B, NULL, &e) == 0 &&
	   net_teardown(T.root, C, &cc, &e) == 0 && leases_naming(A) + leases_naming(B) + leases_naming(C) == 0,
	   "final teardown");

	for (int i = 0; i < T.nagents; i++)
		agent_call(&T.agents[i], OP_QUIT, 0, 0, NULL);
	cleanup();
	ok(if_nametoindex(T.br1) == 0 && if_nametoindex(T.br2) == 0 && access(T.root, F_OK) < 0,
	   "cleanup removed bridges and the state root");
	return tap_done();
}
