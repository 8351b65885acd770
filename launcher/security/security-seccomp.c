/* security: the default seccomp profile (libseccomp).
 *
 * An allow-list in the spirit of Docker's default profile: a syscall not
 * named below fails with EPERM.  What a normal userland needs is allowed
 * outright; syscalls that only make sense with a capability are allowed
 * when the container keeps that capability (the kernel still checks the
 * capability itself -- the filter only shrinks the attack surface of
 * syscalls the container could not use anyway); a few are refused for
 * everyone.
 *
 * Refused whatever the capabilities (not in any list below): the kernel
 * keyring (keyctl, add_key, request_key -- not namespaced), kexec_load,
 * kexec_file_load, userfaultfd (a classic race-widening exploit primitive),
 * io_uring_* (a large, often-exploited surface seccomp cannot look into),
 * swapon, swapoff, vm86, vm86old, lsm_set_self_attr, uselib, ustat, sysfs,
 * _sysctl, nfsservctl and the other obsolete calls, personality() values
 * other than the few below, socket(AF_VSOCK), the socket-creating call of
 * the 32-bit socketcall multiplexer (see rules_add), modify_ldt (as in
 * Docker's profile: per-process LDT segments are only needed by 16-bit
 * code and very old 32-bit threading, and have been a source of kernel
 * bugs).
 *
 * The filter covers every ABI of the machine: on x86_64 also the 32-bit
 * x86 (int 0x80) and x32 ABIs, which have their own syscall numbers, so
 * that a 32-bit call cannot slip past rules written for 64-bit numbers.
 * A syscall from any other ABI kills the process. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <nettle/sha2.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"

/* Identifies the compiled-in profile for the program cache. */
#define CORRAL_BUILD_ID __DATE__ "_" __TIME__
#include "security-internal.h"

/* Capability numbers, spelled out so this file needs no libcap header. */
enum {
	CAP_DAC_READ_SEARCH_ = 2,
	CAP_SYS_MODULE_ = 16,
	CAP_SYS_RAWIO_ = 17,
	CAP_SYS_CHROOT_ = 18,
	CAP_SYS_PTRACE_ = 19,
	CAP_SYS_PACCT_ = 20,
	CAP_SYS_ADMIN_ = 21,
	CAP_SYS_BOOT_ = 22,
	CAP_SYS_NICE_ = 23,
	CAP_SYS_TIME_ = 25,
	CAP_SYS_TTY_CONFIG_ = 26,
	CAP_SYSLOG_ = 34,
	CAP_PERFMON_ = 38,
	CAP_BPF_ = 39,
};

/* Every namespace flag clone(2) accepts.  CLONE_NEWTIME shares its bit
 * with CSIGNAL in clone(2), so it is refused through unshare() only. */
#define NS_CLONE_FLAGS \
	(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP)
#define NS_UNSHARE_FLAGS (NS_CLONE_FLAGS | CLONE_NEWTIME)

static inline void cleanup_seccomp_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}
#define cleanup_seccomp __attribute__((cleanup(cleanup_seccomp_releasep)))

/* Allowed for every container.  Names that exist only on some ABIs
 * (chown32, socketcall, arch_prctl, ...) apply where they exist.  A name
 * this libseccomp does not know is skipped: the syscall then falls to the
 * handling of unknown numbers (see prelude_build) and fails with ENOSYS,
 * which is also what it does on a kernel that lacks it. */
static const char *const allow_always[] = {
	/* file I/O and descriptors */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "preadv2",
	"pwritev", "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range",
	"lseek", "_llseek", "dup", "dup2", "dup3", "fcntl", "fcntl64", "flock", "ioctl",
	"fsync", "fdatasync", "sync", "syncfs", "sync_file_range", "truncate", "truncate64",
	"ftruncate", "ftruncate64", "fallocate", "fadvise64", "fadvise64_64", "readahead",
	"sendfile", "sendfile64", "splice", "tee", "vmsplice", "copy_file_range", "pipe",
	"pipe2", "memfd_create", "eventfd", "eventfd2", "cachestat",
	/* file metadata and directories */
	"stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "newfstatat", "fstatat64",
	"statx", "statfs", "statfs64", "fstatfs", "fstatfs64", "access", "faccessat",
	"faccessat2", "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "chown32", "fchown",
	"fchown32", "lchown", "lchown32", "fchownat", "utime", "utimes", "utimensat",
	"utimensat_time64", "futimesat", "rename", "renameat", "renameat2", "link", "linkat",
	"symlink", "symlinkat", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir", "mknod",
	"mknodat", "readlink", "readlinkat", "getdents", "getdents64", "readdir", "chdir",
	"fchdir", "getcwd", "umask", "name_to_handle_at", "file_getattr", "file_setattr",
	"statmount", "listmount",
	/* extended attributes */
	"getxattr", "lgetxattr", "fgetxattr", "getxattrat", "setxattr", "lsetxattr",
	"fsetxattr", "setxattrat", "listxattr", "llistxattr", "flistxattr", "listxattrat",
	"removexattr", "lremovexattr", "fremovexattr", "removexattrat",
	/* change notification */
	"inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
	"fanotify_mark",
	/* memory */
	"brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
	"mlock", "mlock2", "mlockall", "munlock", "munlockall", "remap_file_pages",
	"membarrier", "pkey_alloc", "pkey_free", "pkey_mprotect", "memfd_secret",
	"map_shadow_stack", "mseal",
	/* processes and threads */
	"fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
	"waitpid", "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid",
	"setsid", "set_tid_address", "set_robust_list", "get_robust_list", "rseq",
	"arch_prctl", "set_thread_area", "get_thread_area", "prctl", "seccomp",
	"capget", "capset", "getrlimit", "ugetrlimit", "setrlimit", "prlimit64", "getrusage",
	"getpriority", "setpriority", "sched_yield", "sched_getaffinity", "sched_setaffinity",
	"sched_getattr", "sched_setattr", "sched_getparam", "sched_setparam",
	"sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
	"sched_get_priority_min", "sched_rr_get_interval", "sched_rr_get_interval_time64",
	"ioprio_get", "ioprio_set", "getcpu", "uname", "sysinfo", "restart_syscall",
	"pidfd_open", "pidfd_send_signal", "process_mrelease", "landlock_create_ruleset",
	"landlock_add_rule", "landlock_restrict_self", "lsm_get_self_attr",
	"lsm_list_modules",
	/* user and group identity */
	"getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid",
	"getegid32", "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups",
	"getgroups32", "setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32",
	"setregid", "setregid32", "setresuid", "setresuid32", "setresgid", "setresgid32",
	"setgroups", "setgroups32", "setfsuid", "setfsuid32", "setfsgid", "setfsgid32",
	/* signals */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
	"rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
	"sigaction", "sigprocmask", "sigreturn", "sigpending", "sigsuspend", "signal",
	"sigaltstack", "signalfd", "signalfd4", "kill", "tkill", "tgkill", "pause",
	/* time and timers (reading clocks; setting them is CAP_SYS_TIME's) */
	"time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres",
	"clock_getres_time64", "clock_nanosleep", "clock_nanosleep_time64", "nanosleep",
	"alarm", "getitimer", "setitimer", "times", "timer_create", "timer_delete",
	"timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
	"timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
	"timerfd_settime", "timerfd_settime64",
	/* waiting: poll, select, epoll, futexes, legacy AIO */
	"poll", "ppoll", "ppoll_time64", "select", "_newselect", "pselect6",
	"pselect6_time64", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
	"epoll_wait", "epoll_wait_old", "epoll_pwait", "epoll_pwait2", "futex",
	"futex_time64", "futex_waitv", "futex_wait", "futex_wake", "futex_requeue",
	"io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
	"io_pgetevents_time64",
	/* sockets (socket() itself is below: it checks the address family;
	 * socketcall, the 32-bit x86 multiplexer, is derived from these by
	 * libseccomp and narrowed by the prelude). */
	"socketpair", "bind", "connect", "listen", "accept", "accept4", "getsockname",
	"getpeername", "getsockopt", "setsockopt", "send", "sendto", "sendmsg", "sendmmsg",
	"recv", "recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64", "shutdown",
	/* System V and POSIX IPC (namespaced) */
	"ipc", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop",
	"semtimedop_time64", "semctl", "shmget", "shmat", "shmdt", "shmctl", "mq_open",
	"mq_unlink", "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive",
	"mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
};

/* Allowed only when the container keeps `cap`. */
struct cap_rule {
	int cap;
	const char *names[16];
};

static const struct cap_rule allow_with_cap[] = {
	/* Mounts, namespaces and the rest of "the new root": the container's
	 * own mounts are done by the launcher before this filter exists.
	 * clone, clone3 and unshare get their unprivileged forms below. */
	{ CAP_SYS_ADMIN_,
	  { "mount", "umount", "umount2", "pivot_root", "setns", "fsopen", "fsconfig", "fsmount",
	    "fspick", "move_mount", "open_tree", "open_tree_attr", "mount_setattr" } },
	{ CAP_SYS_ADMIN_,
	  { "sethostname", "setdomainname", "quotactl", "quotactl_fd", "lookup_dcookie",
	    "fanotify_init", "syslog", "bpf", "perf_event_open" } },
	{ CAP_BPF_, { "bpf" } },
	{ CAP_PERFMON_, { "perf_event_open" } },
	{ CAP_SYSLOG_, { "syslog" } },
	/* Handles name any inode of the file system, bypassing the mount
	 * tree the container is confined to (the "shocker" escape). */
	{ CAP_DAC_READ_SEARCH_, { "open_by_handle_at" } },
	{ CAP_SYS_CHROOT_, { "chroot" } },
	{ CAP_SYS_BOOT_, { "reboot" } },
	{ CAP_SYS_MODULE_, { "init_module", "finit_module", "delete_module" } },
	{ CAP_SYS_PACCT_, { "acct" } },
	{ CAP_SYS_PTRACE_,
	  { "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "kcmp",
	    "pidfd_getfd" } },
	{ CAP_SYS_RAWIO_, { "iopl", "ioperm" } },
	{ CAP_SYS_TIME_,
	  { "settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex",
	    "clock_adjtime", "clock_adjtime64" } },
	{ CAP_SYS_TTY_CONFIG_, { "vhangup" } },
	{ CAP_SYS_NICE_,
	  { "mbind", "set_mempolicy", "set_mempolicy_home_node", "get_mempolicy",
	    "migrate_pages", "move_pages" } },
};

/* personality(2) values that only select the Linux execution domain or
 * query: PER_LINUX, PER_LINUX32, UNAME26 with either, and 0xffffffff
 * (query).  The others turn on legacy behaviour such as
 * READ_IMPLIES_EXEC or ADDR_NO_RANDOMIZE. */
static const unsigned long personality_ok[] = { 0x0, 0x8, 0x20000, 0x20008, 0xffffffff };

/* Highest address family the kernel knows today (AF_MCTP); socket() with
 * a higher one fails like any other refused call. */
#define AF_KNOWN_MAX 45


static int rule_add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
		    const struct scmp_arg_cmp *cmp, struct corral_error *err)
{
	int nr = seccomp_syscall_resolve_name(name);

	if (nr == __NR_SCMP_ERROR)
		return 0;
	int r = seccomp_rule_add_array(ctx, action, nr, n, cmp);
	/* EEXIST: the name came twice (bpf is allowed by CAP_SYS_ADMIN and
	 * by CAP_BPF); the first rule already says the same. */
	if (r < 0 && r != -EEXIST)
		return err_set(err, -r, "seccomp rule for %s", name);
	return 0;
}

static int rules_add(scmp_filter_ctx ctx, capmask_t keep, struct corral_error *err)
{
	const uint32_t allow = SCMP_ACT_ALLOW;
	bool sys_admin = keep & CAP_BIT(CAP_SYS_ADMIN_);
	int r;

	for (size_t i = 0; i < sizeof(allow_always) / sizeof(allow_always[0]); i++)
		if ((r = rule_add(ctx, allow, allow_always[i], 0, NULL, err)) < 0)
			return r;

	for (size_t i = 0; i < sizeof(allow_with_cap) / sizeof(allow_with_cap[0]); i++) {
		const struct cap_rule *cr = &allow_with_cap[i];
		if (!(keep & CAP_BIT(cr->cap)))
			continue;
		for (size_t j = 0; j < sizeof(cr->names) / sizeof(cr->names[0]) && cr->names[j]; j++)
			if ((r = rule_add(ctx, allow, cr->names[j], 0, NULL, err)) < 0)
				return r;
	}

	for (size_t i = 0; i < sizeof(personality_ok) / sizeof(personality_ok[0]); i++) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, personality_ok[i]);
		if ((r = rule_add(ctx, allow, "personality", 1, &c, err)) < 0)
			return r;
	}

	/* socket(2): every address family but AF_VSOCK, which reaches the
	 * hypervisor host and, unlike IP, is not isolated by a network
	 * namespace on most kernels.  The
	 * comparisons are on the full 64-bit register: a value with junk in
	 * the upper half (which the kernel would truncate to AF_VSOCK) is
	 * refused rather than allowed, hence "below" plus single values
	 * rather than "not equal". */
	struct scmp_arg_cmp below_vsock = SCMP_A0(SCMP_CMP_LT, AF_VSOCK);
	if ((r = rule_add(ctx, allow, "socket", 1, &below_vsock, err)) < 0)
		return r;
	for (unsigned long af = AF_VSOCK + 1; af <= AF_KNOWN_MAX; af++) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, af);
		if ((r = rule_add(ctx, allow, "socket", 1, &c, err)) < 0)
			return r;
	}

	/* On the 32-bit x86 ABI, libseccomp also turns each of these socket
	 * rules into a rule for socketcall(2), the multiplexer, with the
	 * sub-call number as its only condition: the sub-call's own
	 * arguments (the address family among them) sit in memory, out of a
	 * filter's reach, so "socket" here would become socketcall(SYS_SOCKET)
	 * allowed for every family, AF_VSOCK included.  The prelude (see
	 * prelude_build) refuses socketcall(SYS_SOCKET) before this program
	 * runs. */

	if (sys_admin) {
		/* The container may make namespaces of its own. */
		static const char *const ns_calls[] = { "clone", "clone3", "unshare" };
		for (size_t i = 0; i < sizeof(ns_calls) / sizeof(ns_calls[0]); i++)
			if ((r = rule_add(ctx, allow, ns_calls[i], 0, NULL, err)) < 0)
				return r;
		return 0;
	}

	/* clone(2) without namespace flags: fork, vfork and threads.  (The
	 * flags are the first argument on x86 and x86_64 alike.) */
	struct scmp_arg_cmp no_ns = SCMP_A0(SCMP_CMP_MASKED_EQ, NS_CLONE_FLAGS, 0);
	if ((r = rule_add(ctx, allow, "clone", 1, &no_ns, err)) < 0)
		return r;
	/* clone3(2) takes its flags in a struct in memory, out of the
	 * filter's reach.  ENOSYS makes glibc and musl fall back to clone(2),
	 * whose flags the rule above checks. */
	if ((r = rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, err)) < 0)
		return r;
	/* unshare(2) of file table, fs attributes or SysV semaphores only. */
	struct scmp_arg_cmp no_ns_unshare = SCMP_A0(SCMP_CMP_MASKED_EQ, NS_UNSHARE_FLAGS, 0);
	return rule_add(ctx, allow, "unshare", 1, &no_ns_unshare, err);
}

int security_seccomp_build(capmask_t keep, int deny_errno, scmp_filter_ctx *ret, struct corral_error *err)
{
	cleanup_seccomp scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO((uint32_t)deny_errno));
	int r;

	if (!ctx)
		return err_plain(err, ENOMEM, "set up a seccomp filter");
#if defined(__x86_64__)
	/* The kernel on x86_64 also runs 32-bit x86 (int 0x80) and x32
	 * syscalls, each ABI with its own numbers: without their own copy
	 * of the rules, "keyctl" would only be refused under its 64-bit
	 * number. */
	if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X86)) < 0 && r != -EEXIST)
		return err_set(err, -r, "add the x86 ABI to the seccomp filter");
	if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X32)) < 0 && r != -EEXIST)
		return err_set(err, -r, "add the x32 ABI to the seccomp filter");
#endif
	/* Any other ABI is one we wrote no rules for. */
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0)
		return err_set(err, -r, "set the seccomp action for foreign ABIs");
	/* no_new_privs is caps_apply()'s decision, made before this filter
	 * is loaded; the filter must not quietly set it on its own.
	 * seccomp_load_prog() checks for it instead. */
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0)
		return err_set(err, -r, "configure the seccomp filter");
	/* A binary tree of syscall numbers rather than a linear scan of
	 * ~400 rules; only speed is at stake if this libseccomp lacks it. */
	(void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);

	if ((r = rules_add(ctx, keep, err)) < 0)
		return err_wrap(err, "build the seccomp filter");
	*ret = take_ptr(ctx);
	return 0;
}

/* ---- the prelude: syscalls newer than libseccomp, socketcall ----
 *
 * libseccomp can only name syscalls it was built to know.  The kernel may
 * be newer: its extra syscalls would hit the default action, EPERM, and a
 * program that tries a new syscall and falls back on ENOSYS (as glibc does
 * for fchmodat2 or clone3) would fail instead of falling back.  So a short
 * classic-BPF prelude runs before libseccomp's program and answers ENOSYS
 * for every number above the highest one libseccomp knows for that ABI.
 *
 * On x86_64 it also refuses the 32-bit socketcall(SYS_SOCKET, ...) with
 * the profile's errno: libseccomp derives an unconditional rule for it
 * from the socket() rules (see rules_add), and the address family it
 * would have to check is in memory.  The other sub-calls work on
 * descriptors that already exist and pass on.  32-bit programs create
 * sockets with the direct socket syscall (i386 359, since Linux 4.3),
 * whose family libseccomp's program checks; C libraries that try it
 * first (musl, glibc built for Linux >= 4.3) are unaffected.
 *
 * The prelude only ever refuses: anything else passes on to libseccomp's
 * program. */

#define PRELUDE_MAX 20

struct prelude {
	struct sock_filter insn[PRELUDE_MAX];
	unsigned n;
};

/* Highest syscall number libseccomp knows for `arch` among [base, base+limit). */
static unsigned max_known(uint32_t arch, unsigned base, unsigned limit)
{
	unsigned max = 0;

	for (unsigned nr = 0; nr < limit; nr++) {
		char *name = seccomp_syscall_resolve_num_arch(arch, (int)(base + nr));
		if (name) {
			max = nr;
			free(name);
		}
	}
	return base + max;
}

static unsigned emit(struct prelude *p, uint16_t code, uint32_t k)
{
	p->insn[p->n] = (struct sock_filter)BPF_STMT(code, k);
	return p->n++;
}

/* A conditional jump whose targets are patched in once they are known. */
static unsigned emit_jump(struct prelude *p, uint16_t code, uint32_t k)
{
	p->insn[p->n] = (struct sock_filter)BPF_JUMP(code, k, 0, 0);
	return p->n++;
}

enum { TO_PASS = -1, TO_ENOSYS = -2, TO_DENY = -3 };

struct targets {
	unsigned pass, enosys, deny;
};

static void patch(struct prelude *p, unsigned at, int jt, int jf, const struct targets *t)
{
	int to2[2] = { jt, jf };
	for (int i = 0; i < 2; i++) {
		unsigned to = to2[i] == TO_PASS	  ? t->pass
			      : to2[i] == TO_ENOSYS ? t->enosys
			      : to2[i] == TO_DENY   ? t->deny
						    : (unsigned)to2[i];
		uint8_t off = (uint8_t)(to - at - 1);
		if (i == 0)
			p->insn[at].jt = off;
		else
			p->insn[at].jf = off;
	}
}

#define SECCOMP_DATA_NR 0     /* offsetof(struct seccomp_data, nr) */
#define SECCOMP_DATA_ARCH 4   /* offsetof(struct seccomp_data, arch) */
#define SECCOMP_DATA_ARG0_LO 16 /* args[0], low 32 bits (little endian) */
#define X32_SYSCALL_BIT 0x40000000u
#define X32_COMPAT_FIRST 512  /* x32's own numbers start here, past the shared ones */
#define I386_NR_SOCKETCALL 102
#define SOCKETCALL_SYS_SOCKET 1 /* linux/net.h */

static void prelude_build(struct prelude *p, int deny_errno)
{
	const uint16_t LD = BPF_LD | BPF_W | BPF_ABS;
	const uint16_t JEQ = BPF_JMP | BPF_JEQ | BPF_K, JGT = BPF_JMP | BPF_JGT | BPF_K,
		       JGE = BPF_JMP | BPF_JGE | BPF_K;
	struct targets t;

	p->n = 0;
#if defined(__x86_64__)
	unsigned max64 = max_known(SCMP_ARCH_X86_64, 0, X32_COMPAT_FIRST);
	unsigned max86 = max_known(SCMP_ARCH_X86, 0, X32_COMPAT_FIRST);
	unsigned maxx32 = max_known(SCMP_ARCH_X32, X32_SYSCALL_BIT, X32_COMPAT_FIRST);

	emit(p, LD, SECCOMP_DATA_ARCH);
	unsigned is64 = emit_jump(p, JEQ, AUDIT_ARCH_X86_64);
	emit(p, LD, SECCOMP_DATA_NR);
	/* x32 syscalls arrive as x86_64 with bit 30 set in the number. */
	unsigned isx32 = emit_jump(p, JGE, X32_SYSCALL_BIT);
	unsigned new64 = emit_jump(p, JGT, max64);
	unsigned newx32 = emit_jump(p, JGT, maxx32);
	/* ... but x32's own numbers from 512 up are known ones. */
	unsigned x32own = emit_jump(p, JGE, X32_SYSCALL_BIT + X32_COMPAT_FIRST);
	unsigned is86 = emit_jump(p, JEQ, AUDIT_ARCH_I386);
	emit(p, LD, SECCOMP_DATA_NR);
	unsigned new86 = emit_jump(p, JGT, max86);
	unsigned sockcall = emit_jump(p, JEQ, I386_NR_SOCKETCALL);
	/* A 32-bit argument: the kernel zero-extends it, the low word is all. */
	emit(p, LD, SECCOMP_DATA_ARG0_LO);
	unsigned sys_socket = emit_jump(p, JEQ, SOCKETCALL_SYS_SOCKET);
	t.enosys = emit(p, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
	t.deny = emit(p, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((uint32_t)deny_errno & SECCOMP_RET_DATA));
	t.pass = p->n;

	patch(p, is64, is64 + 1, is86, &t);
	patch(p, isx32, newx32, new64, &t);
	patch(p, new64, TO_ENOSYS, TO_PASS, &t);
	patch(p, newx32, x32own, TO_PASS, &t);
	patch(p, x32own, TO_PASS, TO_ENOSYS, &t);
	patch(p, is86, is86 + 1, TO_PASS, &t);
	patch(p, new86, TO_ENOSYS, sockcall, &t);
	patch(p, sockcall, sockcall + 1, TO_PASS, &t);
	patch(p, sys_socket, TO_DENY, TO_PASS, &t);
#else
	/* Elsewhere the filter holds the native ABI only. */
	(void)deny_errno;
	emit(p, LD, SECCOMP_DATA_ARCH);
	unsigned native = emit_jump(p, JEQ, seccomp_arch_native());
	emit(p, LD, SECCOMP_DATA_NR);
	unsigned newer = emit_jump(p, JGT, max_known(seccomp_arch_native(), 0, 4096));
	t.enosys = emit(p, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
	t.deny = t.enosys;
	t.pass = p->n;

	patch(p, native, native + 1, TO_PASS, &t);
	patch(p, newer, TO_ENOSYS, TO_PASS, &t);
#endif
}

/* The loadable program: the prelude, then libseccomp's program.  The
 * latter starts by loading the arch itself, so it does not care what the
 * prelude left in the accumulator.  libseccomp 2.5 exports only to a
 * descriptor, hence the memfd. */
static int program_build(scmp_filter_ctx ctx, int deny_errno, struct sock_filter **ret, unsigned short *ret_len,
			 struct corral_error *err)
{
	struct prelude pre;
	int r;

	prelude_build(&pre, deny_errno);

	cleanup_close int fd = memfd_create("corral-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno, "create a buffer for the seccomp program");
	if ((r = seccomp_export_bpf(ctx, fd)) < 0)
		return err_set(err, -r, "export the seccomp program");
	off_t size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		return err_set(err, errno, "size the seccomp program");
	if (size == 0 || size % sizeof(struct sock_filter))
		return err_plain(err, EIO, "libseccomp exported a malformed program (%lld bytes)", (long long)size);
	size_t count = pre.n + (size_t)size / sizeof(struct sock_filter);
	if (count > BPF_MAXINSNS)
		return err_plain(err, E2BIG, "the seccomp program has %zu instructions, more than the kernel's %d",
				 count, BPF_MAXINSNS);

	cleanup_free struct sock_filter *prog = calloc(count, sizeof(*prog));
	if (!prog)
		return err_set(err, ENOMEM, "allocate the seccomp program");
	memcpy(prog, pre.insn, pre.n * sizeof(*prog));
	char *dst = (char *)(prog + pre.n);
	for (off_t done = 0; done < size;) {
		ssize_t n = pread(fd, dst + done, (size_t)(size - done), done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return err_set(err, n < 0 ? errno : EIO, "read back the seccomp program");
		done += n;
	}
	*ret_len = (unsigned short)count;
	*ret = take_ptr(prog);
	return 0;
}

static int install(struct sock_filter *insns, unsigned short len, struct corral_error *err)
{
	/* The kernel accepts a filter from a process that cannot gain
	 * privileges (no_new_privs) or that is privileged anyway
	 * (CAP_SYS_ADMIN); say which is missing rather than a bare EACCES. */
	int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0L, 0L, 0L, 0L);
	struct sock_fprog fprog = { .len = len, .filter = insns };
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0) {
		if (errno == EACCES && nnp == 0)
			return err_set(err, errno, "load the seccomp filter (no_new_privs is not set and "
						   "CAP_SYS_ADMIN is not held; caps_apply() sets it)");
		return err_set(err, errno, "load the seccomp filter");
	}
	return 0;
}

static int build_program(capmask_t keep, int deny_errno, struct sock_filter **ret, unsigned short *ret_len,
			 struct corral_error *err)
{
	cleanup_seccomp scmp_filter_ctx ctx = NULL;
	int r = security_seccomp_build(keep, deny_errno, &ctx, err);
	if (r < 0)
		return r;
	if ((r = program_build(ctx, deny_errno, ret, ret_len, err)) < 0)
		return err_wrap(err, "build the seccomp program");
	return 0;
}

int security_seccomp_load(capmask_t keep, int deny_errno, struct corral_error *err)
{
	cleanup_free struct sock_filter *insns = NULL;
	unsigned short len = 0;
	int r = build_program(keep, deny_errno, &insns, &len, err);
	return r < 0 ? r : install(insns, len, err);
}

/* ---- the program cache ----
 *
 * Building the program takes ~17 ms (libseccomp, three ABIs), as long as
 * a whole `corral exec` otherwise, so programs are cached per corral
 * build and capability set:
 *
 *   <root>/cache/seccomp-<key>.bpf        the program
 *   <root>/digests/seccomp-<key>.sha256   its SHA-256, in hex
 *
 * A cached program is used only if it hashes to its digest, which lives
 * in another directory and is written after the program: a file that was
 * cut short, corrupted or replaced is rebuilt (and rewritten), never
 * loaded.  Both directories are root-owned 0700 and opened without
 * following symlinks, files are opened O_NOFOLLOW and committed with
 * common's file_commit_at.  Callers get the program on the host side,
 * before they join any namespace of a container, so no path here ever
 * resolves in a container's mount namespace. */

#define CACHE_DIR "cache"
#define DIGEST_DIR "digests"
#define SHA256_HEX_LEN (2 * SHA256_DIGEST_SIZE)

/* Cache key: this build of corral (the profile is compiled in) and the
 * capability set the profile depends on. */
static void cache_key(char *buf, size_t len, capmask_t keep)
{
	snprintf(buf, len, "seccomp-%s-%s-%016llx", PACKAGE_VERSION, CORRAL_BUILD_ID, (unsigned long long)keep);
	for (char *p = buf; *p; p++)
		if (*p == ' ' || *p == ':' || *p == '/')
			*p = '_';
}

static void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1])
{
	struct sha256_ctx ctx;
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_init(&ctx);
	sha256_update(&ctx, len, data);
	sha256_digest(&ctx, sizeof(d), d);
	for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Opens <parent>/<name>, creating it 0700, as a directory only we can
 * write: owned by our euid (else -EPERM: not ours to trust), group and
 * other bits cleared if some were set. */
static int open_private_dir(int parent, const char *name)
{
	if (mkdirat(parent, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	cleanup_close int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (st.st_uid != geteuid())
		return -EPERM;
	if ((st.st_mode & 077) && fchmod(fd, 0700) < 0)
		return -errno;
	return take_fd(fd);
}

/* Reads a regular file of ours, not writable by others, of at most `max`
 * bytes; *ret is NUL-terminated. */
static int read_private_file(int dirfd, const char *name, size_t max, char **ret, size_t *ret_len)
{
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) || (size_t)st.st_size > max)
		return -EBADMSG;
	int r = fd_read_all(fd, name, ret, ret_len, NULL);
	if (r == 0 && *ret_len > max) {
		free(*ret);
		return -EBADMSG;
	}
	return r;
}

/* The cached program for `key`, if it is whole and matches its digest. */
static int cache_load(int cache_fd, int digest_fd, const char *key, struct sock_filter **ret, unsigned short *ret_len)
{
	char name[NAME_MAX + 1];
	cleanup_free char *digest = NULL, *prog = NULL;
	size_t dlen = 0, plen = 0;

	snprintf(name, sizeof(name), "%.200s.sha256", key);
	int r = read_private_file(digest_fd, name, SHA256_HEX_LEN + 1, &digest, &dlen);
	if (r < 0)
		return r;
	snprintf(name, sizeof(name), "%.200s.bpf", key);
	r = read_private_file(cache_fd, name, (size_t)BPF_MAXINSNS * sizeof(struct sock_filter), &prog, &plen);
	if (r < 0)
		return r;
	if (plen == 0 || plen % sizeof(struct sock_filter))
		return -EBADMSG;
	char hex[SHA256_HEX_LEN + 1];
	sha256_hex(prog, plen, hex);
	if (dlen < SHA256_HEX_LEN || memcmp(digest, hex, SHA256_HEX_LEN) ||
	    (dlen > SHA256_HEX_LEN && strcmp(digest + SHA256_HEX_LEN, "\n")))
		return -EBADMSG;
	*ret_len = (unsigned short)(plen / sizeof(struct sock_filter));
	*ret = (struct sock_filter *)take_ptr(prog);
	return 0;
}

/* Program first, digest last: a reader never pairs a new digest with an
 * old program.  Failing to store is not an error (the cache only saves
 * time); the next start rebuilds. */
static void cache_store(int cache_fd, int digest_fd, const char *key, const struct sock_filter *insns,
			unsigned short len)
{
	char name[NAME_MAX + 1], hex[SHA256_HEX_LEN + 2];
	size_t size = (size_t)len * sizeof(*insns);

	snprintf(name, sizeof(name), "%.200s.bpf", key);
	if (file_commit_at(cache_fd, name, insns, size, 0600, 0, NULL, NULL) < 0)
		return;
	sha256_hex(insns, size, hex);
	strcat(hex, "\n");
	snprintf(name, sizeof(name), "%.200s.sha256", key);
	(void)file_commit_at(digest_fd, name, hex, strlen(hex), 0600, 0, NULL, NULL);
}

int seccomp_program_get(enum seccomp_mode mode, capmask_t keep, const char *state_dir,
			struct seccomp_program *ret, struct corral_error *err)
{
	struct sock_filter *insns = NULL;
	unsigned short len = 0;
	char key[NAME_MAX + 1];
	cleanup_close int root_fd = -1, cache_fd = -1, digest_fd = -1;

	ret->insns = NULL;
	ret->len = 0;
	if (mode == SECCOMP_UNCONFINED)
		return 0;
	cache_key(key, sizeof(key), keep);
	if (state_dir)
		root_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root_fd >= 0) {
		cache_fd = open_private_dir(root_fd, CACHE_DIR);
		digest_fd = open_private_dir(root_fd, DIGEST_DIR);
	}
	if (cache_fd >= 0 && digest_fd >= 0 && cache_load(cache_fd, digest_fd, key, &insns, &len) == 0) {
		ret->insns = insns;
		ret->len = len;
		return 0;
	}
	int r = build_program(keep, EPERM, &insns, &len, err);
	if (r < 0)
		return r;
	if (cache_fd >= 0 && digest_fd >= 0)
		cache_store(cache_fd, digest_fd, key, insns, len);
	ret->insns = insns;
	ret->len = len;
	return 0;
}

int seccomp_program_install(const struct seccomp_program *p, struct corral_error *err)
{
	if (!p->insns)
		return 0;
	return install(p->insns, p->len, err);
}

void seccomp_program_release(struct seccomp_program *p)
{
	free(p->insns);
	p->insns = NULL;
	p->len = 0;
}

/* The filter binds the calling thread and whatever it forks or execs from
 * then on.  The launcher calls this single-threaded, right before exec, so
 * no other thread is left outside it (hence no TSYNC). */
int seccomp_apply(enum seccomp_mode mode, capmask_t keep, struct corral_error *err)
{
	switch (mode) {
	case SECCOMP_UNCONFINED:
		return 0;
	case SECCOMP_DEFAULT:
		return security_seccomp_load(keep, EPERM, err);
	}
	return err_plain(err, EINVAL, "unknown seccomp mode %d", (int)mode);
}
