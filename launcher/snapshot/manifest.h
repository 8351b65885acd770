/* A snapshot's tree manifest: a versioned, checksummed description of a
 * container's upper layer, entry by entry, parents before their children.
 *
 * Layout, little-endian:
 *    0  magic "CSNM", version (u32), entry count (u64)
 *   16  entries, each:
 *         path length (u16), path ("." for the upper's root, else
 *         relative: no leading, trailing or doubled '/', no "." or ".."
 *         component, no NUL)
 *         mode (u32: type and permission bits), uid, gid (u32)
 *         atime (s64 seconds, u32 ns), mtime (s64, u32)
 *         rdev (u64), link (u64: 0, or 1 + the index of the earlier entry
 *         this one is a hard link of), size (u64)
 *         flags (u32: MANIFEST_HAS_RECIPE), recipe key (16 bytes, u32)
 *         symlink target length (u16), target
 *         xattr count (u32), each: name length (u16), name, value length
 *         (u32), value
 *    .  XXH3-64 of everything before it (u64)
 *
 * Xattrs are kept as they are on disk (overlayfs's whiteout and opaque
 * markers included; a whiteout char device is an entry like any other),
 * except the partial-file record (trusted.corral.partial), which the
 * content's recipe replaces.  A regular file that is not a hard link of an
 * earlier entry names the store recipe of its content.
 *
 * The parser trusts nothing: every length is bounded by what is left,
 * every path and link checked; bad data is -EINVAL/-EBADMSG/
 * -EPROTONOSUPPORT with a message, never a crash (tests/fuzz-manifest.c).
 *
 * Module snapshot (see snapshot.h).
 * May call: container, template, cgroup, store, common, cowfs (only its
 * partial-file record: cowfs/cowfs-partial-record.h). */
#ifndef CORRAL_SNAPSHOT_MANIFEST_H
#define CORRAL_SNAPSHOT_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store/store.h"

#define MANIFEST_VERSION 1
#define MANIFEST_PATH_MAX 4095
#define MANIFEST_XATTRS_MAX 1024
#define MANIFEST_XATTR_NAME_MAX 255
#define MANIFEST_XATTR_VALUE_MAX 65536
enum { MANIFEST_HAS_RECIPE = 1 << 0 };

struct manifest_xattr {
	char *name;
	void *value;
	uint32_t len;
};

struct manifest_entry {
	char *path;
	uint32_t mode, uid, gid;
	int64_t atime_sec, mtime_sec;
	uint32_t atime_nsec, mtime_nsec;
	uint64_t rdev, link, size;
	uint32_t flags;
	struct store_key recipe;
	char *target;		/* symlinks */
	uint32_t nxattrs;
	struct manifest_xattr *xattrs;
};

struct manifest {
	size_t n, cap;
	struct manifest_entry *e;
};

/* Appends a copy of *e (its strings and xattrs move to m: e is emptied). */
int manifest_add(struct manifest *m, struct manifest_entry *e);
void manifest_entry_release(struct manifest_entry *e);
void manifest_release(struct manifest *m);
/* *ret (malloc'ed) and *ret_len: the encoding of m. */
int manifest_encode(const struct manifest *m, void **ret, size_t *ret_len, struct corral_error *err);
int manifest_parse(const void *buf, size_t len, struct manifest *ret, struct corral_error *err);

#endif
