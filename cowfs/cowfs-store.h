/* cowfs on the host's block store: upper file data moves into the store.
 *
 * With -o store=DIR,store_root=NAME the daemon opens the store (a small
 * pool of handles, one per concurrent user: a store handle serves one
 * thread at a time) and keeps the root NAME naming every recipe its upper
 * refers to.  A regular upper file whose last writer closed is, after
 * store_delay seconds idle, read (partial_pread), put in the store as
 * blocks and a recipe, the root is committed, and only then the file is
 * turned into a store-backed partial file (partial_adopt_store) and its
 * upper blocks freed.  Identical content in any container is kept once.
 *
 * Module cowfs (see cowfs.h); calls store (libstore.a). */
#ifndef COWFS_STORE_H
#define COWFS_STORE_H

#include <stdint.h>
#include <sys/stat.h>

#include "cowfs.h"
#include "store/store.h"

/* Opens the store and starts the mover thread (after mounting). */
int cowfs_store_start(struct cowfs *fs);
void cowfs_store_stop(struct cowfs *fs);
/* Blocks e[0..n) of a recipe, for the partial reader: read back to back
 * into buf (their lengths summed), verified by the store. */
int cowfs_store_read_blocks(struct cowfs *fs, const struct store_recipe_entry *e, size_t n, void *buf);
/* A recipe, for the partial reader (cached per node by the caller). */
int cowfs_store_get_recipe(struct cowfs *fs, const struct store_key *k, struct store_recipe *ret);
/* The last write handle of n was released: schedule the move.  Called
 * at the release of every write handle (a file with writers left is
 * refused by partial_adopt_store and queued again at their release). */
void cowfs_store_file_idle(struct cowfs *fs, struct cowfs_node *n);

/* A name of n was removed (quota_unlinked): if it was the last, n leaves
 * the mover's queue (it will not move, and must not be held). */
void cowfs_store_unlinked(struct cowfs *fs, struct cowfs_node *n);
/* n is being freed (node_unref): if its upper file has no name left, its
 * recipes leave the root at the mover's next commit. */
void cowfs_store_node_freed(struct cowfs *fs, struct cowfs_node *n);
/* Before mounting: opens the store (making it with `create`) and reads
 * root `root`, so that a missing store or a damaged root is one clear
 * message (in msg) before anything is mounted.  -errno. */
int cowfs_store_check(const char *dir, const char *root, bool create, char *msg, size_t msg_len);
/* Quota: a store-backed file counts max(its size in 4 KiB blocks, what the
 * upper allocates for it); what store-backed files count beyond their
 * allocated blocks is their extra, kept per upper inode (cowfs-store.c).
 * cowfs_store_quota_extra: the mount-time count of it (quota_scan_upper),
 * which also fills the table.  -errno. */
int cowfs_store_quota_extra(struct cowfs *fs, int64_t *ret);
/* After a measured change of n (quota_charge_blocks, under node->lock, or
 * a partial file turning plain): sets its upper inode's extra to what the
 * rule gives now (0 once it is not store-backed) and returns the change
 * to charge.  Without a quota or a store: 0. */
int64_t cowfs_store_quota_update(struct cowfs *fs, struct cowfs_node *n);
/* The upper inode ino died (its node freed with no name left): its extra,
 * to give back, exactly once (0 if it had none). */
int64_t cowfs_store_quota_gone(struct cowfs *fs, ino_t ino);
/* Test crash points (COWFS_TEST_CRASH_AT=STEP, read by cowfs_store_start):
 * SIGKILLs the daemon when `step` is the one named.  cowfs-partial.c
 * calls it with "record" between the record's fsync and the punch. */
void cowfs_store_crash_point(const char *step);

#endif
