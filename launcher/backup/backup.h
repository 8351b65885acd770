/* Backups of a container's snapshots as self-describing, checksummed,
 * compressed streams (FORMAT.md), their verification and their restore,
 * on this host or another one with the same template.
 *
 * A backup is always of a snapshot.  Its backup id (16 bytes) is the one a
 * restored snapshot carries in its store root (a root entry labelled
 * "/backup-id=<32 hex>", whose recipe is the manifest's), else the unseeded
 * XXH3-128 of the snapshot manifest's encoding.  An incremental stream
 * (--since) names the backup id of its base; the receiver checks it
 * against its own copy of the base before anything else.
 *
 * Restore reads the stream twice: pass 1 checks all of it (every checksum,
 * the structure, every block a recipe names, the manifest, the template's
 * digest, the target) and changes nothing; pass 2 puts the blocks and
 * recipes, commits the snapshot's root, then creates the container (full)
 * or rolls it back (incremental), and removes what it made if any step
 * fails.
 *
 * Module backup (backups, restores and exports of snapshots).
 * May call: snapshot, container, template, security, cgroup, store, common. */
#ifndef CORRAL_BACKUP_H
#define CORRAL_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup/backup-stream.h"
#include "error.h"
#include "snapshot/snapshot.h"
#include "template/template.h"

#define BACKUP_TAG_PREFIX "backup-"
#define BACKUP_ID_LABEL "/backup-id="

typedef void (*backup_progress_fn)(void *ctx, uint64_t done, uint64_t total);

struct backup_options {
	const char *name;
	const char *snapshot;	/* an existing tag, or NULL: take backup-<UTC time> */
	const char *since;	/* NULL, a tag, or "last" */
	bool last_or_full;	/* with "last": a full backup if there is no earlier one */
	int level;		/* zstd level */
	int out_fd;
	backup_progress_fn progress;	/* may be NULL */
	void *progress_ctx;
};

struct backup_result {
	char tag[SNAPSHOT_TAG_MAX + 1];
	char since[SNAPSHOT_TAG_MAX + 1];	/* "" for a full backup */
	bool took_snapshot;
	uint64_t files;			/* manifest entries with content */
	uint64_t blocks_sent, blocks_base;	/* BLOCK and BASE records */
	uint64_t content_bytes;		/* bytes of BLOCK data */
	uint64_t total_bytes;		/* content the snapshot's files hold */
	uint64_t stream_bytes;
	double seconds;
};

/* Writes a backup stream of container `name` to o->out_fd.  A snapshot it
 * took is removed again if the backup fails. */
int backup_create(const struct backup_options *o, struct backup_result *ret, struct corral_error *err);

/* The backup id of snapshot `tag` of `name` (see above). */
int backup_snapshot_id(struct store *s, const char *name, const char *tag, uint8_t ret[16],
		       struct corral_error *err);
/* The newest "backup-" tag of `name` other than `except` (may be NULL);
 * -ENOENT with a message if there is none. */
int backup_last_tag(const char *name, const char *except, char ret[SNAPSHOT_TAG_MAX + 1], struct corral_error *err);

/* What a stream holds (verify, restore). */
struct backup_info {
	struct bstream_header h;
	uint64_t counts[BREC_NTYPES];
	uint64_t content_bytes;		/* BLOCK data */
	uint64_t compressed_bytes;	/* the stream's size */
	uint64_t entries, files, total_bytes;	/* the manifest's */
	char target[CORRAL_NAME_MAX + 1];	/* restore: the container made or rolled back */
	double seconds;
};
void backup_info_release(struct backup_info *i);

/* Pass 1 only, without a target: the stream is whole and well-formed. */
int backup_verify(int fd, struct backup_info *ret, struct corral_error *err);

struct container_config;
struct backup_restore_options {
	int fd;			/* a regular file (read twice) or a pipe (spooled) */
	const char *as;		/* the container's name, or NULL: the stream's */
	bool allow_mounts;	/* accept a config with bind mounts (host paths of the sender) */
	bool allow_privileges;	/* accept a config with capabilities beyond the default
				 * set or seccomp unconfined */
	/* Makes the container (its directories and config) and removes it
	 * again: the CLI's, as `corral create` and `corral rm -f` do it. */
	int (*create)(void *ctx, struct container_config *c, struct corral_error *err);
	void (*remove)(void *ctx, const char *name);
	void *ctx;
};
int backup_restore(const struct backup_restore_options *o, struct backup_info *ret, struct corral_error *err);

#endif
