/* security: the capability sets of a container's processes (libcap).
 *
 * A capmask_t holds capability N in bit N.  Bits the running kernel does
 * not know (at or past cap_max_bits()) are never set by caps_parse() and
 * are ignored by caps_apply(). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include "cleanup.h"
#include "security.h"

_Static_assert(CAP_LAST_CAP < CAPMASK_BITS, "capmask_t holds one bit per capability");
_Static_assert(sizeof(capmask_t) * 8 == CAPMASK_BITS, "CAPMASK_BITS is the width of capmask_t");

static inline void cleanup_cap_freep(cap_t *c)
{
	if (*c) {
		int saved = errno;
		cap_free(*c);
		errno = saved;
	}
}
#define cleanup_cap __attribute__((cleanup(cleanup_cap_freep)))

/* Every capability the running kernel knows, as a mask. */
static capmask_t caps_known(void)
{
	unsigned bits = cap_max_bits();

	if (bits >= CAPMASK_BITS)
		return ~(capmask_t)0;
	return CAP_BIT(bits) - 1;
}

capmask_t caps_default(void)
{
	return CAP_BIT(CAP_CHOWN) | CAP_BIT(CAP_DAC_OVERRIDE) | CAP_BIT(CAP_FOWNER) |
	       CAP_BIT(CAP_FSETID) | CAP_BIT(CAP_KILL) | CAP_BIT(CAP_NET_BIND_SERVICE) |
	       CAP_BIT(CAP_SETFCAP) | CAP_BIT(CAP_SETGID) | CAP_BIT(CAP_SETPCAP) |
	       CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_SYS_CHROOT);
}

int caps_parse(const char *name, capmask_t *ret, struct corral_error *err)
{
	char lower[64];
	const char *base = name;
	size_t len;
	cap_value_t cap;

	if (!strcasecmp(name, "ALL")) {
		*ret = caps_known();
		return 0;
	}
	if (!strncasecmp(base, "CAP_", 4))
		base += 4;
	len = strlen(base);
	/* Names only: libcap would also take "12", which reads like a typo
	 * in a configuration file rather than a capability. */
	if (len == 0 || len + 4 >= sizeof(lower))
		return err_plain(err, EINVAL, "unknown capability \"%s\"", name);
	for (size_t i = 0; i < len; i++)
		if (!isalpha((unsigned char)base[i]) && base[i] != '_')
			return err_plain(err, EINVAL, "unknown capability \"%s\"", name);
	memcpy(lower, "cap_", 4);
	for (size_t i = 0; i <= len; i++)
		lower[4 + i] = (char)tolower((unsigned char)base[i]);

	if (cap_from_name(lower, &cap) < 0)
		return err_plain(err, EINVAL, "unknown capability \"%s\"", name);
	if (cap < 0 || cap >= CAPMASK_BITS || !(caps_known() & CAP_BIT(cap)))
		return err_plain(err, EINVAL, "capability \"%s\" is not supported by the running kernel", name);
	*ret = CAP_BIT(cap);
	return 0;
}

void caps_format(capmask_t mask, char *buf, size_t len)
{
	size_t used = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (int cap = 0; cap < CAPMASK_BITS; cap++) {
		if (!(mask & CAP_BIT(cap)))
			continue;
		char *name = cap_to_name(cap);
		int n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", name ? name : "?");
		if (name)
			cap_free(name);
		if (n < 0 || (size_t)n >= len - used) {
			/* Never leave half a name behind: cut back to the last
			 * complete entry. */
			buf[used] = '\0';
			break;
		}
		for (size_t i = used; i < used + (size_t)n; i++)
			buf[i] = (char)toupper((unsigned char)buf[i]);
		used += (size_t)n;
	}
}

/* The effective and permitted sets to install: `keep`, minus whatever this
 * process does not hold in its permitted set right now.  capset(2) can
 * only lower the permitted set, so a capability in `keep` that we lack --
 * one the host has removed from our bounding set, say CAP_SYS_RESOURCE on
 * a restricted host -- is silently not granted instead of failing the
 * start: asking for more than the host allows cannot be satisfied, and the
 * container simply runs with less. */
static int caps_build(capmask_t keep, cap_t *ret, struct corral_error *err)
{
	cleanup_cap cap_t cur = cap_get_proc();
	if (!cur)
		return err_set(err, errno, "read the current capabilities");
	cleanup_cap cap_t want = cap_init();
	if (!want)
		return err_set(err, errno, "allocate a capability set");

	for (int cap = 0; cap < CAPMASK_BITS; cap++) {
		cap_flag_value_t have = CAP_CLEAR;
		cap_value_t v = cap;

		if (!(keep & CAP_BIT(cap)))
			continue;
		if (cap_get_flag(cur, v, CAP_PERMITTED, &have) < 0 || have != CAP_SET)
			continue;
		if (cap_set_flag(want, CAP_EFFECTIVE, 1, &v, CAP_SET) < 0 ||
		    cap_set_flag(want, CAP_PERMITTED, 1, &v, CAP_SET) < 0)
			return err_set(err, errno, "add capability %d to the set", cap);
	}
	/* cap_init() starts with every flag clear, so the inheritable set
	 * is already empty. */
	*ret = take_ptr(want);
	return 0;
}

int caps_apply(capmask_t keep, struct corral_error *err)
{
	capmask_t known = caps_known();
	keep &= known;

	/* 1. The bounding set first.  It caps what any later execve can
	 * hand out -- as root, the program exec'd next gets the whole
	 * bounding set as its permitted set -- so this, not the effective
	 * set below, is what really takes a capability away.  Dropping from
	 * it needs CAP_SETPCAP in the effective set, which step 4 may
	 * remove, so it has to happen while we still hold everything. */
	for (int cap = 0; cap < CAPMASK_BITS; cap++) {
		if (!(known & CAP_BIT(cap)) || (keep & CAP_BIT(cap)))
			continue;
		if (cap_drop_bound((cap_value_t)cap) < 0)
			return err_set(err, errno, "drop capability %d from the bounding set", cap);
	}

	/* 2. Ambient set empty: ambient capabilities survive execve of
	 * unprivileged programs, which would carry capabilities past a later
	 * setuid to a non-root user.  Needs no privilege; done explicitly
	 * rather than relying on step 4 lowering the inheritable set. */
	if (cap_reset_ambient() < 0 && CAP_AMBIENT_SUPPORTED())
		return err_set(err, errno, "clear the ambient capabilities");

	/* 3. Keep the permitted set across a setuid() the caller may still
	 * do between here and exec (to run the container's command as a
	 * non-root user): without it, the uid change would empty the sets
	 * before the caller is done.  The kernel resets this flag at execve,
	 * so the exec'd program gets no benefit from it -- a non-root
	 * program starts with empty sets since ambient is empty. */
	if (prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) < 0)
		return err_set(err, errno, "keep capabilities across setuid");

	/* 4. effective = permitted = keep, inheritable empty.  Last of the
	 * capability steps because it can take away CAP_SETPCAP, which
	 * step 1 needed. */
	cleanup_cap cap_t want = NULL;
	int r = caps_build(keep, &want, err);
	if (r < 0)
		return r;
	if (cap_set_proc(want) < 0)
		return err_set(err, errno, "set the container's capabilities");

	/* 5. no_new_privs: from here on no execve -- of a setuid binary or
	 * one with file capabilities -- can raise privileges above what is
	 * held now, and, as root, the kernel limits the next program's
	 * permitted set to this permitted set.  It is also what allows an
	 * unprivileged seccomp filter, so it must precede seccomp_apply(). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) < 0)
		return err_set(err, errno, "set no_new_privs");
	return 0;
}
