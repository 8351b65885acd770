/* Host uid/gid ranges of user-namespaced containers (--userns).
 *
 * Two containers whose ranges overlap share host ids: root in one is an
 * owner of the other's files and processes.  So every --userns container
 * gets a range of its own, kept in its config and registered host-wide
 * (every state root shares the host's ids), as the address leases are:
 * one lease file per range in /run/corral/userns/<base>-<size> holding
 * "<state root>\n<name>\n", taken and checked under an exclusive lock on
 * /run/corral/userns/.lock.
 *
 * Without --userns-range a container gets the first free block of
 * USERNS_BLOCK ids from USERNS_POOL_START (100000, the first subordinate
 * id of useradd's convention) upwards, skipping ranges that /etc/subuid
 * or /etc/subgid delegate to users.  An explicit range is refused if it
 * overlaps another container's.  /run is a tmpfs: after a reboot the
 * registry is rebuilt as containers start (start takes its container's
 * lease again), and create also checks every container of its own state
 * root.  A lease whose container directory is gone is stale and ignored.
 *
 * Module container (with container-config.h and state.h).  Owns: the
 * host-wide range registry /run/corral/userns and its lock.
 * May call: template, net, security, cgroup, common. */
#ifndef CORRAL_USERNS_RANGE_H
#define CORRAL_USERNS_RANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define USERNS_BLOCK 65536u
#define USERNS_POOL_START 100000u
#define USERNS_LEASE_DIR "/run/corral/userns"

/* Registers the range of container `name` of state root `root`.  With
 * `allocate`, picks a free block and returns it in *base and *size;
 * otherwise claims *base and *size as given, failing (EADDRINUSE, naming the
 * other container, then `advice` if not NULL) if it overlaps another
 * container's.  Idempotent: a container's own lease is kept. */
int userns_range_claim(const char *root, const char *name, bool allocate, uint32_t *base, uint32_t *size,
		       const char *advice, struct corral_error *err);
/* Drops every lease of container `name` of `root`. */
int userns_range_release(const char *root, const char *name, struct corral_error *err);

#endif
