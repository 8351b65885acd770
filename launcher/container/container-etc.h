/* A container's own /etc/hostname, /etc/hosts and /etc/resolv.conf (and,
 * for a busybox init without one, /etc/inittab), written into its upper
 * layer at create -- never into the template, which every container of it
 * shares.  The files are the container's from then on: it may edit them,
 * and corral does not write them again.
 *
 * Module container (see container-config.h).
 * May call: template, net, security, cgroup, common. */
#ifndef CORRAL_CONTAINER_ETC_H
#define CORRAL_CONTAINER_ETC_H

#include <stdbool.h>

#include "container-config.h"
#include "error.h"

/* Writes them below `upper` (the container's upper directory, still
 * empty: create made it) through descriptors: etc/ is made with the mode
 * and owner of the template's (`base`) etc/, each file is committed with
 * a rename in that directory, and no symlink is followed on the way.
 *   hostname     the container's hostname (its name unless --hostname)
 *   hosts        localhost and 127.0.1.1 HOSTNAME, as Debian writes them
 *   resolv.conf  by network mode: none -- no name server (a comment says
 *                why); host -- the host's file as it is (same network
 *                namespace, so a loopback resolver works); bridge -- a
 *                comment: while it runs, the net module's resolver file
 *                for the bridge is bound over it (net_resolv_conf_path).
 *   inittab      only with busybox_inittab: sysinit runs /etc/init.d/rcS if
 *                there is one, shutdown syncs; no consoles, no gettys. */
int container_etc_write(const char *upper, const char *base, const struct container_config *c,
			bool busybox_inittab, struct corral_error *err);

/* Only /etc/hostname and /etc/hosts, as above: a clone's own, over the
 * ones its source's snapshot brought (entries the source added to
 * /etc/hosts are not carried over).  An etc/ that is not a directory
 * (a symlink the source made) is refused, nothing written. */
int container_etc_write_names(const char *upper, const char *base, const struct container_config *c,
			      struct corral_error *err);

/* The resolv.conf container_etc_write writes for `c`, from the host's
 * resolv.conf text `host` (NULL: none).  Caller frees.  -errno. */
int container_etc_resolv(const struct container_config *c, const char *host, char **ret);

#endif
