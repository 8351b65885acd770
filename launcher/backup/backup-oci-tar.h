/* The OCI layer tar of a snapshot's manifest, written with libarchive.
 * Linked only by the corral-export helper (libbackup-archive.a), so that
 * the corral command does not load libarchive; backup-oci.h's
 * backup_oci_layer() runs that helper.
 *
 * Module backup (see backup-oci.h).
 * May call: snapshot, container, template, cgroup, store, common. */
#ifndef CORRAL_BACKUP_OCI_TAR_H
#define CORRAL_BACKUP_OCI_TAR_H

#include "backup/backup-oci.h"
#include "snapshot/manifest.h"
#include "store/store.h"

/* Checks that every entry of m can be written as an OCI layer entry
 * without changing its meaning: a name beginning with ".wh." would be read
 * as a whiteout by the consumer (a tenant's file turned into a deletion),
 * an xattr name with a space, '=', '%', a control or non-ASCII byte would
 * reach the consumer %-escaped (libarchive's pax key), a hard link must
 * name an earlier entry.  -EINVAL with the
 * entry's path in err.  backup_oci_tar_write() checks first too: nothing
 * is written for a manifest that fails. */
int backup_oci_tar_check(const struct manifest *m, struct corral_error *err);

/* Writes m as an uncompressed pax tar to out_fd (from its current
 * offset), content read from s in runs of blocks (never a whole file in
 * memory).  Whiteouts (0:0 character devices) become empty "DIR/.wh.NAME"
 * files, an opaque directory is followed by an empty "DIR/.wh..wh..opq",
 * overlayfs's and corral's private xattrs are left out, the root entry
 * "." is not written (see README "OCI layer export"), sockets are
 * skipped (tar has no type for them).  *ret counts entries and bytes. */
int backup_oci_tar_write(struct store *s, const struct manifest *m, int out_fd, struct backup_oci_result *ret,
			 struct corral_error *err);

#endif
