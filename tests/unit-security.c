/* unit-security: capabilities and the seccomp profile, for real.
 *
 * Every check forks a child that confines itself the way a container's
 * process is confined before exec -- caps_apply() then seccomp_apply() --
 * and then tries something; the outcome comes back to the parent through a
 * pipe.  Needs root (skips otherwise).
 *
 * Two flavours of the default profile are used.  The real one refuses with
 * EPERM, as containers see it.  But for a syscall the dropped capabilities
 * already forbid, EPERM could come from the kernel just as well, so the
 * full list of refused syscalls runs against the same profile built with a
 * marker errno no kernel path returns (MARKER): seeing MARKER proves the
 * filter, not the kernel, said no.
 *
 * x86_64 only: the syscall numbers below, and the 32-bit (int 0x80) and
 * x32 calls that check the filter covers those ABIs too, are x86's. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "security/security-internal.h"
#include "tap.h"

#if !defined(__x86_64__)
int main(void)
{
	printf("1..0 # SKIP written for x86_64\n");
	return 0;
}
#else

#define MARKER EHWPOISON
#define BIT(c) ((capmask_t)1 << (c))

extern char **environ;

static char tmpdir[64];

enum confine {
	CONF_DEFAULT,	 /* caps_apply + the default profile (EPERM) */
	CONF_MARKER,	 /* caps_apply + the default profile refusing with MARKER */
	CONF_UNCONFINED, /* caps_apply + SECCOMP_UNCONFINED */
	CONF_NONE,	 /* nothing: the test's own privileges */
};

struct result {
	long ret;
	int err;
	char text[2048];
};

typedef void (*child_fn)(struct result *res, const void *arg);

/* Runs fn in a child confined as `how` says, with `keep` as capabilities.
 * Returns false (and says why in res->text) if setting up the child failed
 * or it died instead of reporting. */
static bool run_in_child(capmask_t keep, enum confine how, child_fn fn, const void *arg, struct result *res)
{
	int p[2];

	memset(res, 0, sizeof(*res));
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(res->text, sizeof(res->text), "pipe: %s", strerror(errno));
		return false;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(res->text, sizeof(res->text), "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return false;
	}
	if (pid == 0) {
		struct result r = { 0 };
		struct corral_error e = { 0 };
		int rc = 0;

		close(p[0]);
		if (how != CONF_NONE)
			rc = caps_apply(keep, &e);
		if (rc == 0 && how == CONF_DEFAULT)
			rc = seccomp_apply(SECCOMP_DEFAULT, keep, &e);
		else if (rc == 0 && how == CONF_MARKER)
			rc = security_seccomp_load(keep, MARKER, &e);
		else if (rc == 0 && how == CONF_UNCONFINED)
			rc = seccomp_apply(SECCOMP_UNCONFINED, keep, &e);
		if (rc < 0) {
			snprintf(r.text, sizeof(r.text), "confining the child: %s", e.msg);
			if (write(p[1], &r, sizeof(r)) < 0)
				_exit(2);
			_exit(1);
		}
		fn(&r, arg);
		if (write(p[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	size_t got = 0;
	while (got < sizeof(*res)) {
		ssize_t n = read(p[0], (char *)res + got, sizeof(*res) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(p[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status)) {
		snprintf(res->text, sizeof(res->text), "child killed by signal %d", WTERMSIG(status));
		return false;
	}
	if (got != sizeof(*res) || WEXITSTATUS(status) != 0) {
		if (!res->text[0])
			snprintf(res->text, sizeof(res->text), "child exited %d without a report", WEXITSTATUS(status));
		return false;
	}
	return true;
}

/* ---- raw syscalls, on every ABI ---- */

enum abi { ABI_64, ABI_I386, ABI_X32 };

struct call {
	const char *what;
	enum abi abi;
	long nr;
	long a[6];
};

/* A 32-bit x86 syscall through int 0x80.  Arguments must fit in 32 bits
 * (pointers are not usable: ours live above 4 GiB). */
static long syscall_i386(long nr, long a0, long a1, long a2)
{
	long ret;
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(a0), "c"(a1), "d"(a2)
			 : "r8", "r9", "r10", "r11", "memory");
	return ret;
}

/* An x32 syscall: the x86_64 instruction with bit 30 set in the number. */
static long syscall_x32(long nr, long a0, long a1, long a2)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr | 0x40000000L), "D"(a0), "S"(a1), "d"(a2)
			 : "rcx", "r11", "memory");
	return ret;
}

static void do_call(struct result *res, const void *arg)
{
	const struct call *c = arg;
	long r;

	errno = 0;
	switch (c->abi) {
	case ABI_I386:
		r = syscall_i386(c->nr, c->a[0], c->a[1], c->a[2]);
		break;
	case ABI_X32:
		r = syscall_x32(c->nr, c->a[0], c->a[1], c->a[2]);
		break;
	default:
		r = syscall(c->nr, c->a[0], c->a[1], c->a[2], c->a[3], c->a[4], c->a[5]);
		if (r < 0)
			r = -errno;
		break;
	}
	res->ret = r;
	res->err = r < 0 && r > -4096 ? (int)-r : 0;
}

static const char *errname(int e)
{
	static char buf[64];
	if (e == 0)
		return "success";
	if (e == MARKER)
		return "MARKER";
	snprintf(buf, sizeof(buf), "%s", strerror(e));
	return buf;
}

static void expect_call(capmask_t keep, enum confine how, const struct call *c, int want)
{
	struct result r;
	bool ran = run_in_child(keep, how, do_call, c, &r);
	if (!ok(ran && r.err == want, "%s -> %s", c->what, want ? errname(want) : "allowed"))
		diag("got %s (ret %ld) %s", ran ? errname(r.err) : "no result", r.ret, r.text);
}

/* ---- children ---- */

static void do_clone_ns(struct result *res, const void *arg)
{
	/* Raw clone with a namespace flag; if it were let through, the new
	 * child leaves at once. */
	long r = syscall(SYS_clone, (long)(CLONE_NEWUTS | SIGCHLD), 0L, 0L, 0L, 0L);
	if (r == 0)
		_exit(0);
	if (r > 0)
		waitpid((pid_t)r, NULL, 0);
	res->ret = r;
	res->err = r < 0 ? errno : 0;
}

static void do_status(struct result *res, const void *arg)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	size_t used = 0;

	if (!f) {
		res->err = errno;
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Cap", 3) && strncmp(line, "NoNewPrivs", 10) && strncmp(line, "Seccomp", 7))
			continue;
		size_t n = strlen(line);
		if (used + n < sizeof(res->text)) {
			memcpy(res->text + used, line, n + 1);
			used += n;
		}
	}
	fclose(f);
}

/* The value of `key` in a /proc/<pid>/status excerpt. */
static bool status_field(const char *text, const char *key, unsigned long long *ret)
{
	char pat[32];
	snprintf(pat, sizeof(pat), "%s:", key);
	const char *p = strstr(text, pat);
	if (!p)
		return false;
	*ret = strtoull(p + strlen(pat), NULL, strncmp(key, "Cap", 3) ? 10 : 16);
	return true;
}

static void do_chown(struct result *res, const void *arg)
{
	res->ret = chown(arg, 1234, 1234);
	res->err = res->ret < 0 ? errno : 0;
}

static void do_spawn_true(struct result *res, const void *arg)
{
	/* fork + exec by hand: clone(2) with SIGCHLD, then execve. */
	pid_t pid = fork();
	if (pid == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	int status = -1;
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		res->err = errno;
		return;
	}
	res->ret = status;
	res->err = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : EIO;
}

static void do_posix_spawn(struct result *res, const void *arg)
{
	/* glibc tries clone3 first and must fall back to clone on ENOSYS. */
	char *argv[] = { "true", NULL };
	pid_t pid;
	int r = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
	int status = -1;
	if (r != 0 || waitpid(pid, &status, 0) < 0) {
		res->err = r ? r : errno;
		return;
	}
	res->err = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : EIO;
}

static void *thread_main(void *arg)
{
	return arg;
}

static void do_thread(struct result *res, const void *arg)
{
	pthread_t t;
	void *out = NULL;
	int r = pthread_create(&t, NULL, thread_main, (void *)0x1234);
	if (r == 0)
		r = pthread_join(t, &out);
	res->err = r ? r : out == (void *)0x1234 ? 0 : EIO;
}

static void do_shell(struct result *res, const void *arg)
{
	int p[2];
	if (pipe(p) < 0) {
		res->err = errno;
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl("/bin/sh", "sh", "-c", "echo ok", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	ssize_t n = read(p[0], res->text, sizeof(res->text) - 1);
	close(p[0]);
	int status = -1;
	waitpid(pid, &status, 0);
	res->text[n > 0 ? n : 0] = '\0';
	res->err = WIFEXITED(status) && WEXITSTATUS(status) == 0 && !strcmp(res->text, "ok\n") ? 0 : EIO;
}

static void do_userland(struct result *res, const void *arg)
{
	struct timespec ts;
	const char *step = "getpid";
	int e = 0;

	if (getpid() <= 0)
		e = errno;
	if (!e && (step = "clock_gettime", clock_gettime(CLOCK_MONOTONIC, &ts) < 0))
		e = errno;
	void *m = MAP_FAILED;
	if (!e && (step = "mmap", m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
		e = errno;
	if (!e && (step = "mprotect", mprotect(m, 1 << 16, PROT_READ) < 0))
		e = errno;
	if (!e && (step = "munmap", munmap(m, 1 << 16) < 0))
		e = errno;
	int s = -1;
	if (!e && (step = "socket(AF_INET)", s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		e = errno;
	int u = -1;
	if (!e && (step = "socket(AF_UNIX)", u = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		e = errno;
	int ep = -1;
	if (!e && (step = "epoll_create1", ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		e = errno;
	struct epoll_event ev = { .events = EPOLLIN };
	if (!e && (step = "epoll_ctl", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0))
		e = errno;
	if (!e && (step = "epoll_wait", epoll_wait(ep, &ev, 1, 0) < 0))
		e = errno;
	if (!e && (step = "personality(query)", syscall(SYS_personality, 0xffffffffUL) < 0))
		e = errno;
	res->err = e;
	if (e)
		snprintf(res->text, sizeof(res->text), "%s failed", step);
}

static void do_unshare_mount(struct result *res, const void *arg)
{
	char mnt[128];
	const char *step = "unshare(CLONE_NEWNS)";
	int e = 0;

	snprintf(mnt, sizeof(mnt), "%s/mnt", tmpdir);
	if (unshare(CLONE_NEWNS) < 0)
		e = errno;
	/* Private first, so that nothing propagates back to the host. */
	if (!e && (step = "make / private", mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0))
		e = errno;
	if (!e && (step = "mount tmpfs", mount("none", mnt, "tmpfs", 0, NULL) < 0))
		e = errno;
	res->err = e;
	if (e)
		snprintf(res->text, sizeof(res->text), "%s failed", step);
}

static void do_unshare_ns(struct result *res, const void *arg)
{
	res->ret = unshare(CLONE_NEWNS);
	res->err = res->ret < 0 ? errno : 0;
}

static void do_seccomp_without_nnp(struct result *res, const void *arg)
{
	/* Every capability gone, but no_new_privs left unset. */
	struct corral_error e = { 0 };
	cap_t none = cap_init();
	if (!none || cap_set_proc(none) < 0) {
		res->err = errno;
		snprintf(res->text, sizeof(res->text), "drop capabilities: %s", strerror(errno));
		return;
	}
	cap_free(none);
	res->ret = seccomp_apply(SECCOMP_DEFAULT, caps_default(), &e);
	res->err = res->ret < 0 ? (int)-res->ret : 0;
	snprintf(res->text, sizeof(res->text), "%s", e.msg);
}

/* Becomes uid 1000 and execs the setuid-root helper, whose report of its
 * effective uid and capabilities goes to the parent. */
static void do_exec_setuid(struct result *res, const void *arg)
{
	int p[2];
	if (pipe(p) < 0) {
		res->err = errno;
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		if (setgroups(0, NULL) < 0 || setresgid(1000, 1000, 1000) < 0 || setresuid(1000, 1000, 1000) < 0)
			_exit(126);
		execl(arg, "suid-helper", "--report-ids", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	ssize_t n = read(p[0], res->text, sizeof(res->text) - 1);
	close(p[0]);
	int status = -1;
	waitpid(pid, &status, 0);
	/* One line, without its newline. */
	res->text[n > 0 ? n : 0] = '\0';
	res->text[strcspn(res->text, "\n")] = '\0';
	res->err = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : EIO;
	res->ret = status;
}

static int report_ids(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long eff = ~0ULL;

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "CapEff:", 7))
			eff = strtoull(line + 7, NULL, 16);
	if (f)
		fclose(f);
	printf("euid=%d capeff=%llx\n", (int)geteuid(), eff);
	return 0;
}

/* ---- checks ---- */

static void check_parse_format(void)
{
	static const char *const spellings[] = { "NET_ADMIN", "CAP_NET_ADMIN", "net_admin", "cap_Net_Admin" };
	struct corral_error e = { 0 };
	capmask_t m;

	for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
		m = 0;
		int r = caps_parse(spellings[i], &m, &e);
		ok(r == 0 && m == BIT(CAP_NET_ADMIN), "caps_parse(\"%s\") is CAP_NET_ADMIN", spellings[i]);
	}
	m = 0;
	ok(caps_parse("ALL", &m, &e) == 0 && m == (((capmask_t)1 << cap_max_bits()) - 1),
	   "caps_parse(\"ALL\") is every capability the kernel knows");

	memset(&e, 0, sizeof(e));
	m = 42;
	int r = caps_parse("bogus", &m, &e);
	ok(r == -EINVAL && e.code == EINVAL && strstr(e.msg, "bogus") && m == 42,
	   "caps_parse(\"bogus\") fails with EINVAL, names it, leaves the result alone");
	diag("message: %s", e.msg);
	ok(caps_parse("", &m, &e) == -EINVAL && caps_parse("12", &m, &e) == -EINVAL &&
		   caps_parse("CAP_", &m, &e) == -EINVAL,
	   "caps_parse refuses empty names and numbers");

	char buf[512];
	caps_format(caps_default(), buf, sizeof(buf));
	ok(!strcmp(buf, "CAP_CHOWN,CAP_DAC_OVERRIDE,CAP_FOWNER,CAP_FSETID,CAP_KILL,CAP_SETGID,"
			"CAP_SETUID,CAP_SETPCAP,CAP_NET_BIND_SERVICE,CAP_SYS_CHROOT,CAP_SETFCAP"),
	   "caps_format(caps_default()) lists podman's default set");
	diag("%s", buf);
	char small[20];
	caps_format(caps_default(), small, sizeof(small));
	ok(!strcmp(small, "CAP_CHOWN"), "caps_format cuts at a whole name when the buffer is short");
	caps_format(0, buf, sizeof(buf));
	ok(buf[0] == '\0', "caps_format(0) is empty");
}

static void check_filter_arches(void)
{
	struct corral_error e = { 0 };
	scmp_filter_ctx ctx = NULL;
	int r = security_seccomp_build(caps_default(), EPERM, &ctx, &e);
	if (!ok(r == 0, "the default profile builds")) {
		diag("%s", e.msg);
		return;
	}
	ok(seccomp_arch_exist(ctx, SCMP_ARCH_X86_64) == 0 && seccomp_arch_exist(ctx, SCMP_ARCH_X86) == 0 &&
		   seccomp_arch_exist(ctx, SCMP_ARCH_X32) == 0,
	   "the filter has rules for the x86_64, x86 and x32 ABIs");
	capmask_t all = 0;
	scmp_filter_ctx ctx_all = NULL;
	r = caps_parse("ALL", &all, &e);
	ok(r == 0 && security_seccomp_build(all, EPERM, &ctx_all, &e) == 0,
	   "the profile also builds with every capability kept (overlapping rules)");
	if (ctx_all)
		seccomp_release(ctx_all);
	uint32_t nnp = 1;
	ok(seccomp_attr_get(ctx, SCMP_FLTATR_CTL_NNP, &nnp) == 0 && nnp == 0,
	   "the filter leaves no_new_privs to caps_apply");
	seccomp_release(ctx);
}

static void check_status(const char *what, capmask_t keep, enum confine how, capmask_t prm, capmask_t bnd,
			 int want_seccomp)
{
	struct result r;
	unsigned long long inh = 1, eff = 0, per = 0, bound = 0, amb = 1, nnp = 0, sc = 9;
	bool ran = run_in_child(keep, how, do_status, NULL, &r);
	bool parsed = ran && status_field(r.text, "CapInh", &inh) && status_field(r.text, "CapPrm", &per) &&
		      status_field(r.text, "CapEff", &eff) && status_field(r.text, "CapBnd", &bound) &&
		      status_field(r.text, "CapAmb", &amb) && status_field(r.text, "NoNewPrivs", &nnp) &&
		      status_field(r.text, "Seccomp", &sc);
	capmask_t want = keep & prm;

	if (!parsed) {
		/* Same number of results either way, so the plan holds. */
		for (int i = 0; i < 5; i++)
			ok(false, "%s: /proc/self/status readable (%d)", what, i + 1);
		diag("%s", r.text);
		return;
	}
	ok(eff == want && per == want, "%s: CapEff = CapPrm = %llx", what, (unsigned long long)want);
	ok(bound == (keep & bnd), "%s: CapBnd = %llx", what, (unsigned long long)(keep & bnd));
	ok(inh == 0 && amb == 0, "%s: CapInh and CapAmb are 0", what);
	ok(nnp == 1, "%s: NoNewPrivs is 1", what);
	ok((int)sc == want_seccomp, "%s: Seccomp is %d", what, want_seccomp);
	if (eff != want || per != want || bound != (keep & bnd) || inh || amb || nnp != 1 || (int)sc != want_seccomp)
		diag("%s", r.text);
}

/* The highest syscall number this libseccomp can name for `arch`. */
static int newest_known(uint32_t arch)
{
	int newest = 0;
	for (int nr = 0; nr < 512; nr++) {
		char *name = seccomp_syscall_resolve_num_arch(arch, nr);
		if (name) {
			newest = nr;
			free(name);
		}
	}
	return newest;
}

/* socketcall(2) on the 32-bit ABI: its second argument points at the
 * sub-call's arguments, which must sit below 4 GiB (MAP_32BIT). */
#define SOCKETCALL_CHECKS 8
#define I386_SOCKETCALL 102
#define I386_SOCKET 359
#define I386_MODIFY_LDT 123
#define SYS_SOCKET_ 1
#define SYS_GETSOCKNAME_ 6

static void check_socketcall(capmask_t def)
{
	uint32_t *args = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (args == MAP_FAILED) {
		for (int i = 0; i < SOCKETCALL_CHECKS; i++)
			ok(false, "mmap(MAP_32BIT) for socketcall arguments: %s", strerror(errno));
		return;
	}
	/* [0..2]: socket(AF_VSOCK, SOCK_STREAM, 0); [4..6]: socket(AF_INET,
	 * SOCK_DGRAM, 0); [8..10]: getsockname(-1, NULL, NULL). */
	args[0] = AF_VSOCK, args[1] = SOCK_STREAM, args[2] = 0;
	args[4] = AF_INET, args[5] = SOCK_DGRAM, args[6] = 0;
	args[8] = (uint32_t)-1, args[9] = 0, args[10] = 0;
	const struct call vsock = { "i386 socketcall(SYS_SOCKET, AF_VSOCK) via int 0x80", ABI_I386, I386_SOCKETCALL,
				    { SYS_SOCKET_, (long)(uintptr_t)args } };
	const struct call inet = { "i386 socketcall(SYS_SOCKET, AF_INET) via int 0x80 (the multiplexed path)",
				   ABI_I386, I386_SOCKETCALL, { SYS_SOCKET_, (long)(uintptr_t)(args + 4) } };
	const struct call other = { "i386 socketcall(SYS_GETSOCKNAME, -1) reaches the kernel", ABI_I386,
				    I386_SOCKETCALL, { SYS_GETSOCKNAME_, (long)(uintptr_t)(args + 8) } };
	const struct call direct = { "i386 socket(AF_INET, SOCK_DGRAM) via int 0x80 (syscall 359)", ABI_I386,
				     I386_SOCKET, { AF_INET, SOCK_DGRAM, 0 } };
	const struct call direct_vsock = { "i386 socket(AF_VSOCK) via int 0x80 (syscall 359)", ABI_I386, I386_SOCKET,
					   { AF_VSOCK, SOCK_STREAM, 0 } };
	const struct call ldt = { "i386 modify_ldt(read) via int 0x80", ABI_I386, I386_MODIFY_LDT,
				  { 0, (long)(uintptr_t)(args + 16), 16 } };
	struct result r;

	/* Control: the multiplexed socket(AF_VSOCK) is a real socket here
	 * without the filter, or the check below would prove nothing. */
	bool ran = run_in_child(0, CONF_NONE, do_call, &vsock, &r);
	diag("unconfined, %s -> %s", vsock.what, ran ? (r.ret >= 0 ? "a socket" : errname(r.err)) : r.text);
	expect_call(def, CONF_DEFAULT, &vsock, EPERM);
	expect_call(def, CONF_MARKER, &vsock, MARKER);
	expect_call(def, CONF_DEFAULT, &inet, EPERM);
	expect_call(def, CONF_DEFAULT, &other, EBADF);
	expect_call(def, CONF_DEFAULT, &direct_vsock, EPERM);
	ran = run_in_child(def, CONF_DEFAULT, do_call, &direct, &r);
	if (!ok(ran && r.ret >= 0, "%s -> a socket (32-bit networking keeps working)", direct.what))
		diag("got %s (ret %ld) %s", ran ? errname(r.err) : "no result", r.ret, r.text);
	expect_call(def, CONF_DEFAULT, &ldt, EPERM);
	expect_call(def, CONF_MARKER, &ldt, MARKER);
	munmap(args, 4096);
}

static bool i386_works(void)
{
	/* The kernel may be built (or booted) without 32-bit emulation. */
	static const struct call c = { "i386 getpid", ABI_I386, 20, { 0 } };
	struct result r;
	return run_in_child(0, CONF_NONE, do_call, &c, &r) && r.ret > 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--report-ids"))
		return report_ids();
	if (geteuid() != 0) {
		printf("1..0 # SKIP needs root\n");
		return 0;
	}

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/unit-security.XXXXXX");
	if (!mkdtemp(tmpdir) || chmod(tmpdir, 0755) < 0) {
		tap_bail("mkdtemp: %s", strerror(errno));
		return 1;
	}
	char file[128], mnt[128], helper[128];
	snprintf(file, sizeof(file), "%s/file", tmpdir);
	snprintf(mnt, sizeof(mnt), "%s/mnt", tmpdir);
	snprintf(helper, sizeof(helper), "%s/suid-helper", tmpdir);
	int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || close(fd) < 0 || mkdir(mnt, 0755) < 0) {
		tap_bail("set up %s: %s", tmpdir, strerror(errno));
		return 1;
	}

	/* The test's own sets: a confined child can end up with no more. */
	cap_t self = cap_get_proc();
	capmask_t prm = 0, bnd = 0;
	for (int c = 0; c < 64 && c < (int)cap_max_bits(); c++) {
		cap_flag_value_t v = CAP_CLEAR;
		if (cap_get_flag(self, c, CAP_PERMITTED, &v) == 0 && v == CAP_SET)
			prm |= BIT(c);
		if (cap_get_bound(c) == 1)
			bnd |= BIT(c);
	}
	cap_free(self);

	const capmask_t def = caps_default();

	check_parse_format();
	check_filter_arches();

	/* -- the capability sets -- */
	check_status("default", def, CONF_DEFAULT, prm, bnd, 2);
	ok(!(def & BIT(CAP_SYS_ADMIN)), "CAP_SYS_ADMIN is not in the default set");
	check_status("default + NET_ADMIN", def | BIT(CAP_NET_ADMIN), CONF_DEFAULT, prm, bnd, 2);
	check_status("CHOWN only (no SETPCAP left to drop the bounding set later)", BIT(CAP_CHOWN), CONF_DEFAULT, prm,
		     bnd, 2);
	check_status("unconfined", def, CONF_UNCONFINED, prm, bnd, 0);
	int missing = -1;
	for (int c = 0; c < (int)cap_max_bits(); c++)
		if (!(prm & BIT(c))) {
			missing = c;
			break;
		}
	if (missing >= 0) {
		char name[32];
		caps_format(BIT(missing), name, sizeof(name));
		diag("%s is not held by this process: asking for it must not fail", name);
		check_status("default + a capability we lack", def | BIT(missing), CONF_DEFAULT, prm, bnd, 2);
	} else
		skip("this process holds every capability", "a capability we lack is silently not granted");

	struct result r;
	bool ran = run_in_child(def, CONF_DEFAULT, do_chown, file, &r);
	ok(ran && r.err == 0, "chown of a file works (CAP_CHOWN kept)");
	if (!ran || r.err)
		diag("%s %s", errname(r.err), r.text);

	/* -- setuid binaries -- */
	bool helper_ok = false;
	{
		int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
		int out = open(helper, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
		char buf[65536];
		ssize_t n;
		helper_ok = in >= 0 && out >= 0;
		while (helper_ok && (n = read(in, buf, sizeof(buf))) > 0)
			helper_ok = write(out, buf, (size_t)n) == n;
		if (in >= 0)
			close(in);
		if (out >= 0)
			helper_ok = close(out) == 0 && helper_ok;
		helper_ok = helper_ok && chown(helper, 0, 0) == 0 && chmod(helper, 04755) == 0;
	}
	ran = helper_ok && run_in_child(def, CONF_NONE, do_exec_setuid, helper, &r);
	if (ran && r.err == 0 && strstr(r.text, "euid=0 ")) {
		diag("control, unconfined: %s", r.text);
		ran = run_in_child(def, CONF_DEFAULT, do_exec_setuid, helper, &r);
		ok(ran && r.err == 0 && !strcmp(r.text, "euid=1000 capeff=0"),
		   "a setuid-root binary gains neither uid 0 nor capabilities");
		diag("confined: %s", r.text);
	} else
		skip("setuid bit not honoured here", "a setuid-root binary gains nothing");

	/* -- the default profile, as containers see it (EPERM) -- */
	union bpf_attr battr;
	memset(&battr, 0, sizeof(battr));
	battr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	struct perf_event_attr pattr;
	memset(&pattr, 0, sizeof(pattr));
	pattr.size = sizeof(pattr);
	pattr.type = PERF_TYPE_SOFTWARE;
	pattr.config = PERF_COUNT_SW_CPU_CLOCK;
	static char handle_buf[128];
	const struct call eperm[] = {
		{ "keyctl(KEYCTL_GET_KEYRING_ID)", ABI_64, SYS_keyctl, { 0 /* GET_KEYRING_ID */, -3 /* session */ } },
		{ "add_key", ABI_64, SYS_add_key, { (long)"user", (long)"k", (long)"v", 1, -3 } },
		{ "request_key", ABI_64, SYS_request_key, { (long)"user", (long)"k", 0, 0 } },
		{ "bpf(BPF_PROG_LOAD)", ABI_64, SYS_bpf, { BPF_PROG_LOAD, (long)&battr, sizeof(battr) } },
		{ "mount tmpfs", ABI_64, SYS_mount, { (long)"none", (long)mnt, (long)"tmpfs", 0, 0 } },
		{ "umount2", ABI_64, SYS_umount2, { (long)"/", MNT_DETACH } },
		{ "unshare(CLONE_NEWNS)", ABI_64, SYS_unshare, { CLONE_NEWNS } },
		{ "unshare(CLONE_NEWUSER)", ABI_64, SYS_unshare, { CLONE_NEWUSER } },
		{ "setns", ABI_64, SYS_setns, { -1, 0 } },
		{ "init_module", ABI_64, SYS_init_module, { 0, 0, (long)"" } },
		{ "perf_event_open", ABI_64, SYS_perf_event_open, { (long)&pattr, 0, -1, -1, 0 } },
		{ "open_by_handle_at", ABI_64, SYS_open_by_handle_at, { AT_FDCWD, (long)handle_buf, O_RDONLY } },
		{ "userfaultfd", ABI_64, SYS_userfaultfd, { O_CLOEXEC } },
		{ "ptrace(PTRACE_TRACEME)", ABI_64, SYS_ptrace, { PTRACE_TRACEME } },
		{ "io_uring_setup", ABI_64, SYS_io_uring_setup, { 1, (long)handle_buf } },
		{ "personality(READ_IMPLIES_EXEC)", ABI_64, SYS_personality, { 0x0400000 } },
		{ "socket(AF_VSOCK)", ABI_64, SYS_socket, { AF_VSOCK, SOCK_STREAM, 0 } },
		{ "socket(AF_VSOCK with high bits set)", ABI_64, SYS_socket, { (long)(0x100000000L | AF_VSOCK), SOCK_STREAM, 0 } },
		{ "modify_ldt(read)", ABI_64, SYS_modify_ldt, { 0, (long)handle_buf, sizeof(handle_buf) } },
		{ "x32 keyctl", ABI_X32, 250 /* x32 keyctl */, { 0, -3 } },
		{ "x32 unshare(CLONE_NEWNS)", ABI_X32, 272 /* x32 unshare */, { CLONE_NEWNS } },
	};
	for (size_t i = 0; i < sizeof(eperm) / sizeof(eperm[0]); i++)
		expect_call(def, CONF_DEFAULT, &eperm[i], EPERM);

	ran = run_in_child(def, CONF_DEFAULT, do_clone_ns, NULL, &r);
	ok(ran && r.err == EPERM, "clone(CLONE_NEWUTS) -> EPERM");
	if (!ran || r.err != EPERM)
		diag("got %s %s", errname(r.err), r.text);
	const struct call clone3 = { "clone3", ABI_64, SYS_clone3, { (long)handle_buf, 64 } };
	expect_call(def, CONF_DEFAULT, &clone3, ENOSYS);

	/* A number past the highest this libseccomp knows: ENOSYS, so that a
	 * caller falls back as it would on an older kernel. */
	int newest = newest_known(SCMP_ARCH_X86_64);
	char newer_what[96];
	snprintf(newer_what, sizeof(newer_what), "syscall %d (newer than libseccomp's table)", newest + 1);
	const struct call newer = { newer_what, ABI_64, newest + 1, { 0 } };
	expect_call(def, CONF_DEFAULT, &newer, ENOSYS);

	if (i386_works()) {
		const struct call i386[] = {
			{ "i386 keyctl via int 0x80", ABI_I386, 288, { 0, -3 } },
			{ "i386 unshare(CLONE_NEWNS) via int 0x80", ABI_I386, 310, { CLONE_NEWNS } },
			{ "i386 personality(READ_IMPLIES_EXEC) via int 0x80", ABI_I386, 136, { 0x0400000 } },
		};
		for (size_t i = 0; i < sizeof(i386) / sizeof(i386[0]); i++)
			expect_call(def, CONF_DEFAULT, &i386[i], EPERM);
		const struct call getpid32 = { "i386 getpid via int 0x80", ABI_I386, 20, { 0 } };
		expect_call(def, CONF_DEFAULT, &getpid32, 0);
		check_socketcall(def);
		char what[96];
		int newest32 = newest_known(SCMP_ARCH_X86);
		snprintf(what, sizeof(what), "i386 syscall %d (newer than libseccomp's table)", newest32 + 1);
		const struct call newer32 = { what, ABI_I386, newest32 + 1, { 0 } };
		expect_call(def, CONF_DEFAULT, &newer32, ENOSYS);
	} else {
		for (int i = 0; i < 5 + SOCKETCALL_CHECKS; i++)
			skip("no 32-bit emulation in this kernel", "i386 ABI check %d", i + 1);
	}

	/* -- every refused syscall, refused by the filter itself -- */
	const struct call refused[] = {
		{ "keyctl", ABI_64, SYS_keyctl, { 0, -3 } },
		{ "add_key", ABI_64, SYS_add_key, { 0 } },
		{ "request_key", ABI_64, SYS_request_key, { 0 } },
		{ "bpf", ABI_64, SYS_bpf, { BPF_PROG_LOAD, (long)&battr, sizeof(battr) } },
		{ "kexec_load", ABI_64, SYS_kexec_load, { 0 } },
		{ "kexec_file_load", ABI_64, SYS_kexec_file_load, { -1, -1, 0, 0, 0 } },
		{ "init_module", ABI_64, SYS_init_module, { 0, 0, (long)"" } },
		{ "finit_module", ABI_64, SYS_finit_module, { -1, (long)"", 0 } },
		{ "delete_module", ABI_64, SYS_delete_module, { (long)"corral-none", 0 } },
		{ "open_by_handle_at", ABI_64, SYS_open_by_handle_at, { AT_FDCWD, (long)handle_buf, O_RDONLY } },
		{ "userfaultfd", ABI_64, SYS_userfaultfd, { O_CLOEXEC } },
		{ "perf_event_open", ABI_64, SYS_perf_event_open, { (long)&pattr, 0, -1, -1, 0 } },
		{ "ptrace(PTRACE_TRACEME)", ABI_64, SYS_ptrace, { PTRACE_TRACEME } },
		{ "mount", ABI_64, SYS_mount, { (long)"none", (long)mnt, (long)"tmpfs", 0, 0 } },
		{ "umount2", ABI_64, SYS_umount2, { (long)"/", MNT_DETACH } },
		{ "unshare(CLONE_NEWNS)", ABI_64, SYS_unshare, { CLONE_NEWNS } },
		{ "unshare(CLONE_NEWNET)", ABI_64, SYS_unshare, { CLONE_NEWNET } },
		{ "unshare(CLONE_NEWTIME)", ABI_64, SYS_unshare, { CLONE_NEWTIME } },
		{ "setns", ABI_64, SYS_setns, { -1, 0 } },
		{ "pivot_root", ABI_64, SYS_pivot_root, { (long)".", (long)"." } },
		{ "fsopen", ABI_64, SYS_fsopen, { (long)"tmpfs", 0 } },
		{ "fsconfig", ABI_64, SYS_fsconfig, { -1, 0, 0, 0, 0 } },
		{ "fsmount", ABI_64, SYS_fsmount, { -1, 0, 0 } },
		{ "move_mount", ABI_64, SYS_move_mount, { -1, (long)"", -1, (long)"", 0 } },
		{ "open_tree", ABI_64, SYS_open_tree, { -1, (long)"", 0 } },
		{ "swapon", ABI_64, SYS_swapon, { 0, 0 } },
		{ "swapoff", ABI_64, SYS_swapoff, { 0 } },
		{ "reboot", ABI_64, SYS_reboot, { 0, 0, 0, 0 } },
		{ "syslog", ABI_64, SYS_syslog, { 10 /* SIZE_BUFFER */, 0, 0 } },
		{ "acct", ABI_64, SYS_acct, { 0 } },
		{ "settimeofday", ABI_64, SYS_settimeofday, { 0, 0 } },
		{ "clock_settime", ABI_64, SYS_clock_settime, { CLOCK_REALTIME, 0 } },
		{ "adjtimex", ABI_64, SYS_adjtimex, { 0 } },
		{ "quotactl", ABI_64, SYS_quotactl, { 0, 0, 0, 0 } },
		{ "lookup_dcookie", ABI_64, SYS_lookup_dcookie, { 0, 0, 0 } },
		{ "iopl", ABI_64, SYS_iopl, { 0 } },
		{ "ioperm", ABI_64, SYS_ioperm, { 0, 0, 0 } },
		{ "fanotify_init", ABI_64, SYS_fanotify_init, { 0, 0 } },
		{ "mbind", ABI_64, SYS_mbind, { 0, 0, 0, 0, 0, 0 } },
		{ "set_mempolicy", ABI_64, SYS_set_mempolicy, { 0, 0, 0 } },
		{ "io_uring_setup", ABI_64, SYS_io_uring_setup, { 1, (long)handle_buf } },
		{ "sethostname", ABI_64, SYS_sethostname, { (long)"x", 1 } },
		{ "vhangup", ABI_64, SYS_vhangup, { 0 } },
		{ "kcmp", ABI_64, SYS_kcmp, { 0, 0, 0, 0, 0 } },
		{ "modify_ldt", ABI_64, SYS_modify_ldt, { 0, (long)handle_buf, sizeof(handle_buf) } },
		{ "process_vm_readv", ABI_64, SYS_process_vm_readv, { 0, 0, 0, 0, 0, 0 } },
		{ "personality(ADDR_NO_RANDOMIZE)", ABI_64, SYS_personality, { 0x0040000 } },
		{ "x32 keyctl", ABI_X32, 250, { 0, -3 } },
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		expect_call(def, CONF_MARKER, &refused[i], MARKER);
	const struct call chroot_call = { "chroot (CAP_SYS_CHROOT kept)", ABI_64, SYS_chroot, { (long)"/" } };
	expect_call(def, CONF_MARKER, &chroot_call, 0);
	const struct call traceme = { "ptrace(PTRACE_TRACEME) with CAP_SYS_PTRACE", ABI_64, SYS_ptrace, { PTRACE_TRACEME } };
	expect_call(def | BIT(CAP_SYS_PTRACE), CONF_MARKER, &traceme, 0);
	const struct call unshare_files = { "unshare(CLONE_FILES) (no namespace)", ABI_64, SYS_unshare, { CLONE_FILES } };
	expect_call(def, CONF_MARKER, &unshare_files, 0);

	/* -- a normal userland still works under the filter -- */
	ran = run_in_child(def, CONF_DEFAULT, do_userland, NULL, &r);
	ok(ran && r.err == 0, "getpid, clock_gettime, mmap, sockets, epoll work");
	if (!ran || r.err)
		diag("%s: %s", r.text, errname(r.err));
	ran = run_in_child(def, CONF_DEFAULT, do_spawn_true, NULL, &r);
	ok(ran && r.err == 0, "fork + exec /bin/true works");
	ran = run_in_child(def, CONF_DEFAULT, do_posix_spawn, NULL, &r);
	ok(ran && r.err == 0, "posix_spawn works (clone3 -> ENOSYS -> clone)");
	if (!ran || r.err)
		diag("%s %s", errname(r.err), r.text);
	ran = run_in_child(def, CONF_DEFAULT, do_thread, NULL, &r);
	ok(ran && r.err == 0, "pthread_create works");
	if (!ran || r.err)
		diag("%s %s", errname(r.err), r.text);
	ran = run_in_child(def, CONF_DEFAULT, do_shell, NULL, &r);
	ok(ran && r.err == 0, "/bin/sh -c 'echo ok' prints ok");
	if (!ran || r.err)
		diag("output \"%s\" %s", r.text, errname(r.err));

	/* -- CAP_SYS_ADMIN and SECCOMP_UNCONFINED -- */
	ran = run_in_child(def | BIT(CAP_SYS_ADMIN), CONF_DEFAULT, do_unshare_mount, NULL, &r);
	ok(ran && r.err == 0, "with CAP_SYS_ADMIN kept, the profile lets unshare(CLONE_NEWNS) and mount through");
	if (!ran || r.err)
		diag("%s %s", r.text, errname(r.err));
	ran = run_in_child(def | BIT(CAP_SYS_ADMIN), CONF_UNCONFINED, do_unshare_ns, NULL, &r);
	ok(ran && r.err == 0, "SECCOMP_UNCONFINED with CAP_SYS_ADMIN: unshare(CLONE_NEWNS) succeeds");
	if (!ran || r.err)
		diag("%s %s", r.text, errname(r.err));
	ran = run_in_child(def, CONF_UNCONFINED, do_unshare_ns, NULL, &r);
	ok(ran && r.err == EPERM, "SECCOMP_UNCONFINED without CAP_SYS_ADMIN: the kernel still refuses unshare");

	ran = run_in_child(def, CONF_NONE, do_seccomp_without_nnp, NULL, &r);
	ok(ran && r.err == EACCES && strstr(r.text, "no_new_privs"),
	   "seccomp_apply without no_new_privs or CAP_SYS_ADMIN fails and says why");
	diag("message: %s", r.text);

	unlink(helper);
	unlink(file);
	rmdir(mnt);
	rmdir(tmpdir);
	return tap_done();
}
#endif
