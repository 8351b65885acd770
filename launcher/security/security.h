/* Capabilities (libcap) and the seccomp filter (libseccomp) applied to a
 * container's processes, in the last steps before exec.
 *
 * Module security.  Owns: capability masks, the seccomp profile and the
 * cache of its compiled programs with their digests (libcap, libseccomp,
 * nettle).  A cached program is used only if its SHA-256 matches.
 * May call: common. */
#ifndef CORRAL_SECURITY_H
#define CORRAL_SECURITY_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* A set of capabilities as a bit mask (bit N = capability N). */
typedef uint64_t capmask_t;
#define CAPMASK_BITS 64
/* The mask of capability number c. */
#define CAP_BIT(c) ((capmask_t)1 << (c))

/* podman's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL
 * NET_BIND_SERVICE SETFCAP SETGID SETPCAP SETUID SYS_CHROOT. */
capmask_t caps_default(void);
/* Parses "NET_ADMIN", "CAP_NET_ADMIN", "net_admin" or "ALL". */
int caps_parse(const char *name, capmask_t *ret, struct corral_error *err);
/* Formats a mask as "CAP_CHOWN,CAP_KILL,..." into buf. */
void caps_format(capmask_t mask, char *buf, size_t len);
/* Drops everything not in `keep` from the bounding set, sets effective =
 * permitted = keep, inheritable and ambient empty, and sets no_new_privs.
 * Must be called as (container) root, after every mount is done. */
int caps_apply(capmask_t keep, struct corral_error *err);

enum seccomp_mode { SECCOMP_DEFAULT, SECCOMP_UNCONFINED };
/* Loads the default allow-list profile (in the spirit of Docker's): refuses
 * keyctl, add_key, request_key, bpf, kexec_*, init/finit/delete_module,
 * open_by_handle_at, userfaultfd, perf_event_open, ptrace (without
 * CAP_SYS_PTRACE), mount/umount2/unshare/setns/pivot_root/clone with
 * namespace flags unless `keep` holds CAP_SYS_ADMIN, ... with EPERM.
 * Needs no_new_privs (caps_apply sets it) unless called with CAP_SYS_ADMIN. */
int seccomp_apply(enum seccomp_mode mode, capmask_t keep, struct corral_error *err);

/* The filter as a ready BPF program, so that a container start neither
 * pays for building it (libseccomp takes ~17 ms for three ABIs) nor leaves
 * libseccomp's memory behind in the container's init.  Programs are cached
 * under `state_dir` (NULL = no cache) per corral build and capability set
 * in <state_dir>/cache, each checked against its SHA-256 kept in
 * <state_dir>/digests before use (a mismatch rebuilds it).  Call it on the
 * host side, before joining any namespace of a container. */
struct seccomp_program {
	void *insns;		/* struct sock_filter[len]; NULL when unconfined */
	unsigned short len;
};
int seccomp_program_get(enum seccomp_mode mode, capmask_t keep, const char *state_dir,
			struct seccomp_program *ret, struct corral_error *err);
/* Loads it into the calling thread (needs no_new_privs, set by caps_apply). */
int seccomp_program_install(const struct seccomp_program *p, struct corral_error *err);
void seccomp_program_release(struct seccomp_program *p);

#endif
