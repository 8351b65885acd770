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

#include "cowfs.h"
#include "store/store.h"

/* Opens the store and starts the mover thread (after mounting). */
int cowfs_store_start(struct cowfs *fs);
void cowfs_store_stop(struct cowfs *fs);
/* A block of a recipe, for the partial reader: reads block k into buf
 * (PARTIAL_BLOCK bytes), *ret_len its length.  Verified by the store. */
int cowfs_store_read_block(struct cowfs *fs, const struct store_key *k, void *buf, size_t *ret_len);
/* A recipe, for the partial reader (cached per node by the caller). */
int cowfs_store_get_recipe(struct cowfs *fs, const struct store_key *k, struct store_recipe *ret);
/* The last write handle of n was released: schedule the move. */
void cowfs_store_file_idle(struct cowfs *fs, struct cowfs_node *n);

#endif
