/* security: internals shared between the module and its unit test. */
#ifndef CORRAL_SECURITY_INTERNAL_H
#define CORRAL_SECURITY_INTERNAL_H

#include <seccomp.h>

#include "security.h"

/* Builds, without loading, the libseccomp filter of the default profile for
 * a process holding `keep`; refused syscalls fail with `deny_errno`
 * (seccomp_apply uses EPERM).  On success *ret owns the filter
 * (seccomp_release it). */
int security_seccomp_build(capmask_t keep, int deny_errno, scmp_filter_ctx *ret, struct corral_error *err);

/* Loads the default profile into the calling thread, refusing with
 * `deny_errno`.  Tests pass an errno no kernel path returns so that a
 * refusal by the filter can be told from the kernel's own EPERM. */
int security_seccomp_load(capmask_t keep, int deny_errno, struct corral_error *err);

#endif
