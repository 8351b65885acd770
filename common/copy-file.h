/* Copying one file: its data (holes kept as holes, extents shared where
 * the filesystem can), its extended attributes, owner, mode and times.
 * The project's one file copy (cowfs copy-up, template imports): use it,
 * never a second copy.
 *
 * Everything goes through descriptors the caller opened, never through
 * paths: the caller chooses how the source is reached (in cowfs it is
 * tenant-controlled: opened without following symlinks) and where the copy
 * is made (cowfs: an O_TMPFILE linked in afterwards).  Durability stays
 * the caller's choice too: nothing here calls fsync.
 *
 * Extended attribute errors, one policy for every caller:
 *  - ENOTSUP when listing the source: a filesystem without xattrs has none
 *    to copy.
 *  - ERANGE when reading a list or a value: it grew between asking for its
 *    size and reading it (a concurrent setxattr); asked again, at most 8
 *    times, then the copy fails with ERANGE.
 *  - ENODATA when reading a value: removed meanwhile; skipped.
 *  - On setting: a name in the security.* or trusted.* namespace that the
 *    destination refuses with EPERM, EACCES, ENOTSUP or EINVAL is skipped.
 *    Those are labels of the host (an SELinux label invalid under this
 *    host's policy, trusted.* without CAP_SYS_ADMIN, a filesystem without
 *    the namespace), not the file's content; the destination gets its own.
 *    Every other failure (user.*, ACLs in system.*, ENOSPC, EIO...) fails
 *    the copy: a copy without them would silently differ.
 *  - Names the caller's filter rejects are never read nor set.
 *
 * Module common (the bottom layer, which every component may call).
 * May call: no other module (libc only). */
#ifndef CORRAL_COPY_FILE_H
#define CORRAL_COPY_FILE_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "error.h"

/* Returns false for an xattr name that must not be copied. */
typedef bool (*copy_xattr_filter_fn)(const char *name);

/* Copies [0, size) of src to dst and sets dst's length to size: a reflink
 * (FICLONE) where the filesystem shares extents, else copy_file_range (or
 * read/write where the kernel can not) over the data segments found with
 * SEEK_DATA/SEEK_HOLE, so holes stay holes.  dst is expected empty.
 * -errno. */
int copy_file_data(int src, int dst, off_t size);

/* Copies the xattrs of src to dst (both regular files or directories, or
 * any non-symlink through an O_PATH descriptor); -errno, err says which
 * name and step failed (err may be NULL). */
int copy_xattrs(int src, int dst, copy_xattr_filter_fn filter, struct corral_error *err);
/* The same for entries that can not be opened (symlinks, devices,
 * fifos, sockets): dir/name on each side, the last component never
 * followed. */
int copy_xattrs_at(int src_dir, const char *src_name, int dst_dir, const char *dst_name,
		   copy_xattr_filter_fn filter, struct corral_error *err);

/* Owner, xattrs, mode and times of `st` (the source's) onto dst, in that
 * order: chown clears set-id bits and file capabilities
 * (security.capability), so it comes before the xattrs; the mode after
 * them (an ACL sets mode bits); the times last.  dst is an open regular
 * file or directory (not O_PATH); src may also be an O_PATH descriptor. */
int copy_file_meta(int src, int dst, const struct stat *st, copy_xattr_filter_fn filter,
		   struct corral_error *err);

/* copy_file_data (unless no_data: an empty copy) then copy_file_meta. */
int copy_file(int src, int dst, const struct stat *st, bool no_data, copy_xattr_filter_fn filter,
	      struct corral_error *err);

#endif
