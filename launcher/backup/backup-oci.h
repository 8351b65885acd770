/* A snapshot's tree as an OCI image-spec layer: a tar whose entries are the
 * container's changes to its template, with overlayfs whiteouts turned into
 * ".wh.NAME" entries and opaque directories into "DIR/.wh..wh..opq", so
 * podman, docker or umoci apply it over the template's image.
 *
 * The tar is written by the corral-export helper (libarchive), so that the
 * corral command itself does not load libarchive; this call spawns it.
 *
 * Module backup (backups, restores and exports of snapshots).
 * May call: snapshot, container, template, cgroup, store, common. */
#ifndef CORRAL_BACKUP_OCI_H
#define CORRAL_BACKUP_OCI_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct backup_oci_result {
	uint64_t entries;	/* tar entries written (whiteouts included) */
	uint64_t bytes;		/* bytes of the tar */
};

/* Writes snapshot `tag` of container `name` (in state_root()) as an
 * uncompressed OCI layer tar to out_fd (from its current offset; a pipe
 * is fine).  What the layer holds: README "OCI layer export" and
 * backup-oci-tar.h.  A name beginning with ".wh." anywhere in the tree is
 * refused (-EINVAL naming its path) before anything is written; a failure
 * later (a store read) leaves out_fd holding a tar cut short, never one
 * that reads as whole. */
int backup_oci_layer(const char *name, const char *tag, int out_fd, struct backup_oci_result *ret,
		     struct corral_error *err);

/* The corral-export helper: $CORRAL_EXPORT, else beside the running
 * binary (the build tree's launcher/ or the installed bindir), as
 * corral-import is found. */
int backup_oci_helper_path(char *buf, size_t len, struct corral_error *err);

#endif
