/* launcher-probe: a tiny static helper for tests/launcher-*.test.
 *
 * The default template is busybox only; this program is bind-mounted into
 * containers (built with `gcc -static`) to make single system calls and
 * report the outcome in a form the shell can compare:
 *
 *   launcher-probe OP [ARG]      prints "ok" or the errno name (EPERM, ...)
 *   launcher-probe forks MAX     forks children that wait, up to MAX; prints
 *                                "forks N ERRNO" (ERRNO of the failed fork,
 *                                "none" if MAX were made), then ends them
 *   launcher-probe ids           prints "uid U euid E" (also outside a
 *                                container: it changes nothing; a set-uid
 *                                copy shows whether set-uid took effect)
 *   launcher-probe exec-as UID PATH [ARG...]
 *                                drops to UID (uid and gid, no groups) and
 *                                execs PATH
 *
 * It refuses to run unless $container is "corral" (set by corral inside
 * every container): as root on the host, several OPs would succeed and
 * change the host.
 *
 *   launcher-probe tty DEV:RDEV  tries to push input into a terminal: prints
 *                                "session container|foreign" (foreign: the
 *                                session leader is outside the container's
 *                                pid namespace, i.e. the caller's session),
 *                                "fdN KIND sti=RESULT" for fds 0..2 (KIND:
 *                                hosttty when it is the terminal DEV:RDEV
 *                                -- st_dev:st_rdev of the caller's pty --,
 *                                tty, pipe, file, chr, closed, other) and
 *                                "devtty RESULT [sti=RESULT]" for
 *                                open("/dev/tty"); RESULT: ok or the errno
 *                                name.  Each TIOCSTI that works pushes
 *                                "corral-tiocsti-marker\n".
 *
 *   launcher-probe ping ADDR     one ICMP echo to the IPv4 ADDR through an
 *                                unprivileged ICMP socket (no CAP_NET_RAW:
 *                                net.ipv4.ping_group_range must allow it):
 *                                "ok" once the reply is in, ETIMEDOUT after
 *                                3 s, or the errno name of the socket call
 *
 *   launcher-probe udp-echo PORT answers "pong" to every datagram on the UDP
 *                                PORT (all addresses), for ever
 *
 * OPs: keyctl, add_key, bpf, unshare-user, unshare-mnt, unshare-net, mount,
 * finit_module, init_module, mknod-blk PATH, clone3, open-read PATH,
 * open-write PATH, ptrace PID, setgroups GID, tty DEV:RDEV, raw-socket
 * (an ICMP raw socket: needs CAP_NET_RAW), ping ADDR. */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static int report(long r)
{
	if (r < 0)
		printf("%s\n", strerrorname_np(errno) ? strerrorname_np(errno) : "EUNKNOWN");
	else
		printf("ok\n");
	return 0;
}

static int forks(int max)
{
	int p[2];
	pid_t *kids = calloc((size_t)max, sizeof(pid_t));
	int n = 0, e = 0;
	if (!kids || pipe(p) < 0) {
		perror("launcher-probe");
		return 2;
	}
	for (; n < max; n++) {
		pid_t pid = fork();
		if (pid < 0) {
			e = errno;
			break;
		}
		if (pid == 0) {
			char c;
			close(p[1]);
			/* Wait for the parent to close its end. */
			while (read(p[0], &c, 1) < 0 && errno == EINTR)
				;
			_exit(0);
		}
		kids[n] = pid;
	}
	printf("forks %d %s\n", n, e ? strerrorname_np(e) : "none");
	fflush(stdout);
	close(p[1]);
	for (int i = 0; i < n; i++)
		waitpid(kids[i], NULL, 0);
	return 0;
}

static const char *errname(int e)
{
	return strerrorname_np(e) ? strerrorname_np(e) : "EUNKNOWN";
}

/* TIOCSTI of the whole marker: "ok" if every byte went in. */
static const char *inject(int fd)
{
	static const char marker[] = "corral-tiocsti-marker\n";
	for (const char *p = marker; *p; p++)
		if (ioctl(fd, TIOCSTI, p) < 0)
			return errname(errno);
	return "ok";
}

static const char *kind(int fd, unsigned long long dev, unsigned long long rdev)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return errno == EBADF ? "closed" : "other";
	if (S_ISCHR(st.st_mode) && st.st_dev == dev && st.st_rdev == rdev)
		return "hosttty";
	if (isatty(fd))
		return "tty";
	if (S_ISFIFO(st.st_mode))
		return "pipe";
	if (S_ISREG(st.st_mode))
		return "file";
	return S_ISCHR(st.st_mode) ? "chr" : "other";
}

static int tty_probe(const char *arg)
{
	unsigned long long dev = 0, rdev = 0;
	if (sscanf(arg, "%llu:%llu", &dev, &rdev) != 2) {
		fprintf(stderr, "launcher-probe: tty wants DEV:RDEV\n");
		return 2;
	}
	/* 0: the session leader is not in our pid namespace. */
	printf("session %s\n", getsid(0) == 0 ? "foreign" : "container");
	for (int fd = 0; fd <= 2; fd++) {
		const char *k = kind(fd, dev, rdev);
		printf("fd%d %s sti=%s\n", fd, k, strcmp(k, "closed") ? inject(fd) : "EBADF");
	}
	int t = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (t < 0)
		printf("devtty %s\n", errname(errno));
	else
		printf("devtty ok %s sti=%s\n", kind(t, dev, rdev), inject(t));
	return 0;
}

static int ping_probe(const char *addr)
{
	struct sockaddr_in to = { .sin_family = AF_INET };
	if (inet_pton(AF_INET, addr, &to.sin_addr) != 1) {
		fprintf(stderr, "launcher-probe: ping: bad address %s\n", addr);
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMP);
	if (fd < 0)
		return report(fd);
	/* The kernel fills in the identifier and the checksum. */
	struct icmphdr echo = { .type = ICMP_ECHO };
	echo.un.echo.sequence = htons(1);
	if (sendto(fd, &echo, sizeof(echo), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
		return report(-1);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	for (;;) {
		int n = poll(&p, 1, 3000);
		if (n == 0) {
			printf("ETIMEDOUT\n");
			return 0;
		}
		if (n < 0)
			return report(-1);
		struct icmphdr reply;
		if (recv(fd, &reply, sizeof(reply), 0) >= (ssize_t)sizeof(reply) && reply.type == ICMP_ECHOREPLY)
			return report(0);
	}
}

static int udp_echo(int port)
{
	struct sockaddr_in me = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&me, sizeof(me)) < 0) {
		perror("launcher-probe: udp-echo");
		return 2;
	}
	for (;;) {
		char buf[512];
		struct sockaddr_in from;
		socklen_t len = sizeof(from);
		if (recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len) >= 0)
			sendto(fd, "pong", 4, 0, (struct sockaddr *)&from, len);
	}
}

int main(int argc, char **argv)
{
	const char *op = argc > 1 ? argv[1] : "";
	const char *arg = argc > 2 ? argv[2] : "";
	const char *where = getenv("container");

	if (!strcmp(op, "ids")) {
		printf("uid %d euid %d\n", (int)getuid(), (int)geteuid());
		return 0;
	}

	/* These calls succeed for root on the host (a tmpfs over /tmp, a
	 * block device node...): run only where corral says it is inside. */
	if (!where || strcmp(where, "corral")) {
		fprintf(stderr, "launcher-probe: refusing to run outside a corral container\n");
		return 2;
	}

	if (!strcmp(op, "keyctl"))
		return report(syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, 0L, 0L, 0L, 0L));
	if (!strcmp(op, "add_key"))
		return report(syscall(SYS_add_key, "user", "probe", "x", 1L, KEY_SPEC_PROCESS_KEYRING));
	if (!strcmp(op, "bpf")) {
		union bpf_attr attr;
		memset(&attr, 0, sizeof(attr));
		attr.map_type = BPF_MAP_TYPE_ARRAY;
		attr.key_size = 4;
		attr.value_size = 4;
		attr.max_entries = 1;
		return report(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr)));
	}
	if (!strcmp(op, "unshare-user"))
		return report(unshare(CLONE_NEWUSER));
	if (!strcmp(op, "unshare-mnt"))
		return report(unshare(CLONE_NEWNS));
	if (!strcmp(op, "unshare-net"))
		return report(unshare(CLONE_NEWNET));
	if (!strcmp(op, "mount"))
		return report(mount("none", "/tmp", "tmpfs", 0, NULL));
	if (!strcmp(op, "finit_module")) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		return report(syscall(SYS_finit_module, fd, "", 0));
	}
	if (!strcmp(op, "init_module")) {
		static char image[64];
		return report(syscall(SYS_init_module, image, sizeof(image), ""));
	}
	if (!strcmp(op, "mknod-blk"))
		return report(mknod(arg, S_IFBLK | 0600, makedev(254, 0)));
	if (!strcmp(op, "clone3")) {
		/* CLONE_SIGHAND without CLONE_VM: the kernel says EINVAL, so
		 * no child is ever made; a filter answers before that. */
		unsigned long long args[11];
		memset(args, 0, sizeof(args));
		args[0] = CLONE_SIGHAND;
		return report(syscall(SYS_clone3, args, sizeof(args)));
	}
	if (!strcmp(op, "open-read"))
		return report(open(arg, O_RDONLY | O_CLOEXEC));
	if (!strcmp(op, "open-write"))
		return report(open(arg, O_WRONLY | O_CLOEXEC));
	if (!strcmp(op, "setgroups")) {
		gid_t g = (gid_t)atoi(arg);
		return report(setgroups(1, &g));
	}
	if (!strcmp(op, "ptrace"))
		return report(ptrace(PTRACE_ATTACH, (pid_t)atoi(arg), 0, 0));
	if (!strcmp(op, "exec-as") && argc > 3) {
		uid_t id = (uid_t)atoi(arg);
		/* setgroups is denied in a user namespace whose setgroups file
		 * says so; there are no supplementary groups to drop there. */
		if (setgroups(0, NULL) < 0 && errno != EPERM) {
			perror("launcher-probe: setgroups");
			return 2;
		}
		if (setresgid(id, id, id) < 0 || setresuid(id, id, id) < 0) {
			perror("launcher-probe: drop to the uid");
			return 2;
		}
		execv(argv[3], argv + 3);
		printf("exec %s\n", strerrorname_np(errno) ? strerrorname_np(errno) : "EUNKNOWN");
		return 2;
	}
	if (!strcmp(op, "tty"))
		return tty_probe(arg);
	if (!strcmp(op, "raw-socket"))
		return report(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP));
	if (!strcmp(op, "ping"))
		return ping_probe(arg);
	if (!strcmp(op, "udp-echo"))
		return udp_echo(atoi(arg));
	if (!strcmp(op, "forks"))
		return forks(atoi(arg) > 0 ? atoi(arg) : 1);
	fprintf(stderr, "usage: launcher-probe OP [ARG] (see the source)\n");
	return 2;
}
