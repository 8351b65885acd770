/* Template ingest: a template's files in the host's block store.
 *
 * `corral template ingest NAME` puts every regular file of the template's
 * rootfs into <root>/store (made 0700 if absent) and commits the root
 * "template.NAME" naming their recipes (label: the file's path in the
 * template, "/usr/bin/ls"), so that blocks of container uppers that equal
 * template blocks are stored once, and gc keeps the template's blocks for
 * as long as the root exists.  Ingesting again stores nothing new and
 * commits the same root.  Symlinks, devices, fifos and sockets are counted
 * and skipped (never followed, never opened); the walk goes through
 * descriptors and does not leave the template's filesystem.
 *
 * Module template (see template.h); linked with libstore.
 * May call: store, common. */
#ifndef CORRAL_TEMPLATE_INGEST_H
#define CORRAL_TEMPLATE_INGEST_H

#include <stdint.h>

#include "error.h"

/* "template." + the template name: the root that keeps its blocks. */
#define TEMPLATE_STORE_ROOT_PREFIX "template."

struct template_ingest_result {
	uint64_t files;		/* regular files stored */
	uint64_t bytes;		/* their content (logical bytes) */
	uint64_t new_bytes;	/* growth of the store's unique bytes: what this ingest added
				 * (other writers at the same moment count too) */
	uint64_t skipped;	/* symlinks, devices, fifos, sockets: not content */
	uint64_t other_fs;	/* directories on another filesystem, not entered */
	double seconds;		/* from opening the store to the durable root */
};

int template_ingest(const char *root, const char *name, struct template_ingest_result *ret,
		    struct corral_error *err);
/* Removes the root template.NAME if the store and the root exist (the
 * blocks go at the next `corral store gc`); 0 if there was none. */
int template_ingest_forget(const char *root, const char *name, struct corral_error *err);

#endif
