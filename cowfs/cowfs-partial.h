/* Partial files: upper regular files whose unwritten ranges still read
 * from a source.
 *
 * A partial file is a sparse upper file of the right size plus a record
 * (the private xattr PARTIAL_XATTR, "user." instead of "trusted." where
 * the upper has no trusted xattrs) naming its source and the ranges that
 * are private, i.e. read from the upper file itself.  Everything else below
 * source_len reads from the source; past source_len (a truncate shrank the
 * file, then it grew again) the upper's holes read as zeros.  Sources:
 *
 *   PARTIAL_LOWER  the lower file it was copied up from (lazy copy-up: the
 *                  first write into a 1 GiB template file makes one block
 *                  private instead of copying the file);
 *   PARTIAL_STORE  a recipe in the host's block store (cowfs-store.c moved
 *                  the file's data there and freed the upper's blocks).
 *
 * Ranges are kept in PARTIAL_BLOCK units (the store's block size, so a
 * store-backed block is copied in with one store read).  A write into a
 * source block first copies the whole block in, then writes, then marks it
 * private; the record is made durable only after the data it covers
 * (fdatasync, then the xattr, then fsync), at fsync and at the last
 * release, and at once when a truncate shrinks source_len.  A crash thus
 * loses at most unsynced writes, never reads zeros or another file where a
 * synced write or the source was.  When the range list outgrows the record
 * (at the record's next sync: the bitmap in memory has no limit, and a
 * write never copies more than the blocks it touches), or for an operation
 * that shifts data (collapse/insert range), the file is completed: every
 * source range is copied in and the record removed, leaving a plain upper
 * file.
 *
 * A partial file is always served by the daemon (route_policy()).
 *
 * Module cowfs (see cowfs.h). */
#ifndef COWFS_PARTIAL_H
#define COWFS_PARTIAL_H

#include <stdint.h>
#include <sys/types.h>

#include "cowfs.h"
#include "cowfs/cowfs-partial-record.h"
#include "store/store.h"

#define PARTIAL_XATTR_TRUSTED "trusted.corral.partial"
#define PARTIAL_XATTR_USER "user.corral.partial"

/* Reads n's record if its upper file has one (once per node; later calls
 * return at once).  0 with n plain or partial, -errno (a damaged record
 * is -EIO, logged with the file's inode). */
int partial_load(struct cowfs *fs, struct cowfs_node *n);
/* Whether n is (now) partial; lock-free. */
bool node_is_partial(const struct cowfs_node *n);

/* Copy-up of a regular file as a partial file of its lower copy (called
 * by copy_up_regular for files of more than one block). */
int partial_copy_up(struct cowfs *fs, struct cowfs_node *n, int lower_layer, const struct stat *st, int dst_fd);
/* The copy-up failed after partial_copy_up: n stays a lower node. */
void partial_forget(struct cowfs_node *n);

/* The content as the tenant sees it, for any regular node (plain or
 * partial): like pread on upper_fd (a descriptor of n's upper file). */
ssize_t partial_pread(struct cowfs *fs, struct cowfs_node *n, int upper_fd, void *buf, size_t len, off_t off);
/* Before data of [off, off+len) of n changes through upper_fd: copies the
 * source blocks the range touches into the upper and marks them private
 * (a no-op for plain files).  Call with the write's range before writing. */
int partial_prepare_write(struct cowfs *fs, struct cowfs_node *n, int upper_fd, off_t off, off_t len);
/* Truncates n's upper file (through upper_fd, writable) to `size`, for
 * any regular node: for a partial one the record follows a shrink of
 * source_len at once, and a truncate to 0 makes the file plain. */
int partial_truncate(struct cowfs *fs, struct cowfs_node *n, int upper_fd, off_t size);
/* Before a punch-hole or zero-range of [off, off+len): source blocks the
 * range covers whole become private holes, those it covers in part are
 * copied in. */
int partial_prepare_punch(struct cowfs *fs, struct cowfs_node *n, int upper_fd, off_t off, off_t len);
/* Copies every source range in and removes the record. */
int partial_complete(struct cowfs *fs, struct cowfs_node *n, int upper_fd);
/* Makes the record durable (fdatasync, xattr, fsync): fsync and release. */
int partial_sync(struct cowfs *fs, struct cowfs_node *n, int upper_fd);

/* Writers: every open for writing counts from its open to its release, and
 * every change bumps the generation (so does a writer's open and release:
 * passthrough writes of a plain file never reach the daemon).  cowfs-store.c reads the content at
 * one generation and adopts the store copy only if nothing changed. */
void partial_writer_open(struct cowfs_node *n);
void partial_writer_close(struct cowfs_node *n);
uint64_t partial_write_gen(const struct cowfs_node *n);

/* Makes n (a regular upper file with no writer and no passthrough
 * handle) a PARTIAL_STORE file whose whole content is `recipe` (durable
 * in the store and named by a committed root): writes the record, fsyncs,
 * then punches the upper's data.  -EBUSY, nothing changed, if n was
 * written since `seen_gen`, has a writer, or a passthrough handle.  With
 * a quota the move changes no usage: the file counts max(its size, its
 * blocks) once store-backed (cowfs-quota.c). */
int partial_adopt_store(struct cowfs *fs, struct cowfs_node *n, const struct store_key *recipe, uint64_t size,
			uint64_t seen_gen);
/* The recipe of a PARTIAL_STORE node, for the root that keeps it. */
bool partial_store_recipe(const struct cowfs_node *n, struct store_key *ret);

/* Parses a record (the fuzz target and the tests use it too): see
 * cowfs-partial-record.h, which also holds PARTIAL_BLOCK and the kinds. */
int partial_record_parse(const void *buf, size_t len, struct partial_record *ret);

#endif
