/* Snapshots of a container's upper layer, kept in the host's block store.
 *
 * A snapshot is a store root "snapshot.<container>.<tag>": its first entry
 * (label "manifest") is the recipe of the tree manifest (manifest.h), the
 * others name every content recipe the manifest uses (labelled with their
 * paths), so GC keeps all of them while the snapshot exists.  Tags are
 * [A-Za-z0-9_-]{1,64}: without '.', so "snapshot.a.b.c" is container
 * "a.b"'s tag "c" and never container "a"'s.
 *
 * Module snapshot (the corral command's snapshot, rollback and clone).
 * May call: container, template, cgroup, store, common, cowfs (only its
 * partial-file record: cowfs/cowfs-partial-record.h). */
#ifndef CORRAL_SNAPSHOT_H
#define CORRAL_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "snapshot/manifest.h"
#include "store/store.h"

#define SNAPSHOT_TAG_MAX 64
/* How deep the walk goes below the upper's root. */
#define SNAPSHOT_DEPTH_MAX 256

int snapshot_tag_validate(const char *tag, struct corral_error *err);
/* "snapshot.<name>.<tag>" into buf. */
int snapshot_root_name(char *buf, size_t len, const char *name, const char *tag, struct corral_error *err);

struct snapshot_result {
	uint64_t entries, files;
	uint64_t files_reused;	/* store-backed files whose recipe was reused */
	uint64_t bytes_put;	/* content read from the upper and put */
	bool frozen;
	double freeze_ms;
};

/* Walks the upper directory (dirfd, stays the caller's) into *ret, putting
 * content into the store (inside a transaction the caller holds) and
 * appending every recipe to *root. */
int snapshot_walk(struct store *s, int upper_fd, struct manifest *ret, struct store_root *root,
		  struct snapshot_result *res, struct corral_error *err);
/* The same, reading lazily copied-up template files (PARTIAL_LOWER partial
 * files) from lower_fd, the template's rootfs (stays the caller's; -1:
 * such files are an error, as with snapshot_walk). */
int snapshot_walk_layers(struct store *s, int upper_fd, int lower_fd, struct manifest *ret, struct store_root *root,
			 struct snapshot_result *res, struct corral_error *err);

/* Snapshots container `name` (stopped, or running: frozen around the cut)
 * as `tag`; -EEXIST if the tag is taken. */
int snapshot_create(const char *name, const char *tag, struct snapshot_result *ret, struct corral_error *err);
/* The container's tags, sorted; free each and the array. */
int snapshot_list(const char *name, char ***ret, size_t *ret_n, struct corral_error *err);
int snapshot_remove(const char *name, const char *tag, struct corral_error *err);
/* How many snapshots container `name` has (0 when the host has no store
 * yet: nothing is created to answer). */
int snapshot_count(const char *name, size_t *ret, struct corral_error *err);
/* Removes every snapshot of `name` (corral rm --snapshots); *ret_n: how
 * many.  Their blocks go at the next store gc. */
int snapshot_remove_all(const char *name, size_t *ret_n, struct corral_error *err);
struct snapshot_rollback_result {
	uint64_t entries;
};
/* Replaces the stopped container's upper with the snapshot's tree
 * (snapshot-rollback.c); the caller makes sure it is stopped. */
int snapshot_rollback_stopped(const char *name, const char *tag, struct snapshot_rollback_result *ret,
			      struct corral_error *err);
/* The same for container `name`'s upper from snapshot `tag` of container
 * `src` (a clone: name is a new, stopped container). */
int snapshot_build_upper(const char *src, const char *tag, const char *name, struct snapshot_rollback_result *ret,
			 struct corral_error *err);
/* Reads and parses a snapshot's manifest. */
int snapshot_read_manifest(struct store *s, const char *name, const char *tag, struct manifest *ret,
			   struct corral_error *err);

#endif
