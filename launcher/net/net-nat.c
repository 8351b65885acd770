/* Optional NAT for bridge networking: a masquerade rule through nft.
 *
 * Why nft and not iptables: the rule lives in a table of its own
 * ("corral_<bridge>"), which one `nft` transaction creates or replaces
 * atomically and removes as a unit, without reading or touching anyone
 * else's rules.  iptables would append to the shared nat/POSTROUTING
 * chain and need -C/-D bookkeeping to stay idempotent; on Debian 12 it is
 * the nf_tables backend anyway.  Nothing else in the module runs external
 * programs: links, addresses and routes go through netlink. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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

static const char *nft_path(void)
{
	static const char *const paths[] = { "/usr/sbin/nft", "/sbin/nft", "/usr/local/sbin/nft",
					     "/usr/bin/nft" };
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

/* Runs `nft <script>` as one transaction; its output goes into err. */
static int nft_run(const char *script, struct corral_error *err)
{
	const char *nft = nft_path();
	if (!nft)
		return err_plain(err, ENOENT, "nft not found (on Debian: apt-get install nftables)");

	/* nft's output (its reason, on failure) comes through `out`; whether
	 * it could be run at all comes through the child's verdict. */
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(err, errno, "create a pipe");
	cleanup_close int rd = p[0];
	cleanup_close int wr = p[1];

	cleanup_child struct child ch = CHILD_INIT;
	int r = child_start(&ch, 0, "fork nft", err);
	if (r < 0)
		return r;
	if (r == 0) {
		char *const argv[] = { (char *)"nft", (char *)script, NULL };
		char *const envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *)"LC_ALL=C", NULL };
		struct corral_error cerr = { 0 };
		int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(wr, 1) < 0 || dup2(wr, 2) < 0) {
			err_set(&cerr, errno, "redirect the stdio of nft");
			child_fail(ch.fd, &cerr);
		}
		signal(SIGPIPE, SIG_DFL);
		child_exec(ch.fd, nft, argv, envp, "run nft");
	}
	close(take_fd(wr));
	enum child_verdict v;
	r = child_wait_verdict(&ch, &v, err);
	if (r < 0)
		return err_wrap(err, "could not run %s", nft);

	char out[512];
	size_t len = 0;
	for (;;) {
		char buf[256];
		ssize_t n = read(rd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t take = (size_t)n < sizeof(out) - 1 - len ? (size_t)n : sizeof(out) - 1 - len;
		memcpy(out + len, buf, take);
		len += take;
	}
	while (len && (out[len - 1] == '\n' || out[len - 1] == ' '))
		len--;
	out[len] = '\0';
	for (char *c = out; *c; c++)
		if (*c == '\n')
			*c = ' ';

	int status;
	r = child_reap(&ch, &status, err);
	if (r < 0)
		return err_wrap(err, "wait for nft");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	return err_plain(err, EIO, "nft failed: %s", len ? out : "(no output)");
}

static int ip_forward_enable(struct corral_error *err)
{
	static const char path[] = "/proc/sys/net/ipv4/ip_forward";
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

int net_nat_enable(const char *bridge, const struct net_subnet *sn, struct corral_error *err)
{
	char table[64], net[INET_ADDRSTRLEN], script[512];

	net_nat_table_name(bridge, table, sizeof(table));
	net_ip_format(sn->network, net);
	/* Declaring the table first makes the delete valid even on the first
	 * run; the whole command line is one transaction, so the rule is
	 * replaced, never doubled and never briefly missing. */
	snprintf(script, sizeof(script),
		 "table ip %s; delete table ip %s; "
		 "table ip %s { chain postrouting { type nat hook postrouting priority 100; policy accept; "
		 "ip saddr %s/%u ip daddr != %s/%u masquerade; }; }",
		 table, table, table, net, sn->prefix, net, sn->prefix);
	int r = nft_run(script, err);
	if (r < 0)
		return err_wrap(err, "masquerade for %s/%u", net, sn->prefix);
	r = ip_forward_enable(err);
	if (r < 0)
		return r;
	return 0;
}

int net_nat_disable(const char *bridge, struct corral_error *err)
{
	char table[64], script[256];

	net_nat_table_name(bridge, table, sizeof(table));
	snprintf(script, sizeof(script), "table ip %s; delete table ip %s", table, table);
	int r = nft_run(script, err);
	if (r < 0)
		return err_wrap(err, "remove nft table %s", table);
	return 0;
}
