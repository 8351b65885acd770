/* cowfs internal interface: the filesystem state, nodes and layers.
 *
 * Layers: index 0 is the writable upper layer, 1..nlayers-1 are read-only
 * lower layers, topmost first.  The upper layer holds copy-ups, new files,
 * whiteouts (0:0 character devices) and opaque markers, in kernel overlayfs's
 * on-disk format.
 *
 * Nodes: one per inode the kernel knows about (FUSE nodeid == node pointer).
 * A node holds an O_PATH descriptor on its real object in every layer where
 * it lives (directories may live in several layers and are merged; other
 * objects use only their topmost layer).
 *
 * Lock order (outermost first; a thread holding one lock takes only locks
 * further down this list):
 *
 *   open directory's lock (cowfs-ops-dir.c, held while a listing is read
 *     and its entries looked up)
 *   node->lock (copy-up of that node; with a quota also the measure of a
 *     write, fallocate, truncate or O_TRUNC open, of a partial file's
 *     sync at fsync and the last release, of a move's adopt, and
 *     quota_unlinked;
 *     parents are copied before it is taken, so no two node locks are
 *     ever held at once)
 *   a partial file's lock (cowfs-partial.c: copy-in of source blocks, its
 *     record, completion; taken inside node->lock by the measured write of
 *     a quota, never the other way round; a read of a store block, which
 *     takes the store's own locks, happens under it)
 *   fs->tree_lock (read: lookups that match names, node_get_parent;
 *     write: node_set_parent and freeing a node in node_unref, taken only
 *     after the stripe lock is dropped)
 *   table stripe locks (node refcount and hash chains; two at once only in
 *     node_rekey, in address order, and all of them in table_grow, in
 *     index order, which is the same order)
 *
 * Leaves, under which nothing else is taken: a partial file's src_lock
 * (opening its source, cowfs-partial.c; the store's recipe read is made
 * under it), an origin-map stripe lock
 * (taken under node->lock by copy-up), a handle's cowfs_file.lock (the
 * reopen after copy-up), fs->whiteout_lock, a cowfs_rate.lock, an
 * fs->io_lock stripe (a node's kernel io mode, cowfs-route.c), the
 * store's quota table lock (cowfs-store.c: what store-backed files are
 * charged beyond their blocks; taken under node->lock and a partial
 * file's lock).
 *
 * Rename and the other namespace operations take no lock of their own:
 * the kernel holds the parent directories' i_rwsem exclusively (and
 * s_vfs_rename_mutex across directories), and each step locks only what
 * it touches (copy-up: the node; node_set_parent: the tree lock).
 *
 * Module cowfs (everything in cowfs/: libcowfs.a, and the cowfs program,
 * which adds main()).  Owns: the mount's state (struct cowfs), the nodes
 * and their descriptors, the upper layer's on-disk format and the work
 * directory.  Independent of the launcher: corral only runs the binary.
 * May call: common, store (libstore.a: partial files read store-backed
 * data, cowfs-store.c moves data into the store) (and libfuse3). */
#ifndef COWFS_H
#define COWFS_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

/* renameat2 flags (glibc's <stdio.h> has them since 2.28; older ones not). */
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef RENAME_WHITEOUT
#define RENAME_WHITEOUT (1 << 2)
#endif

#define COWFS_TABLE_STRIPES 64
#define COWFS_IO_STRIPES 64

/* The io mode cowfs has put a node's FUSE inode in (cowfs-route.c): counts
 * of the handles the kernel holds (a handle counts from the open reply
 * until its release reaches the daemon, so never fewer than the kernel's).
 * Under the node's io stripe lock (fs->io_lock). */
struct cowfs_io {
	uint32_t cached;  /* handles using the FUSE page cache (through the daemon) */
	uint32_t pt;	  /* handles in passthrough, all on backing file pt_id */
	uint32_t writers; /* route_write_begin without its route_write_end */
	int pt_id;	  /* backing id while pt > 0 */
	int pt_layer;	  /* layer of the backing file while pt > 0 */
	bool cache_stale; /* passthrough ran since the page cache was last trusted */
};

struct cowfs_layer {
	int root_fd;	/* O_PATH|O_DIRECTORY on the layer root */
	dev_t dev;
	unsigned dev_index; /* tag mixed into st_ino when layers differ in st_dev */
};

struct cowfs_node {
	/* Immutable after creation. */
	mode_t type;	   /* S_IFMT bits */
	uint64_t st_ino;   /* inode number shown to the kernel, stable for life */

	/* Protected by the table stripe lock of key (after node->lock and
	 * fs->tree_lock in the lock order). */
	struct cowfs_node *hash_next;
	dev_t key_dev;
	ino_t key_ino;
	bool key_by_name;  /* lower hard link: identity is (parent, name) too */
	uint64_t refcount; /* kernel lookups + children + in-flight internal refs */

	/* Protected by fs->tree_lock (after node->lock, before stripe locks). */
	struct cowfs_node *parent; /* holds one reference; NULL for root/detached */
	char *name;

	/* Written under node->lock (held by copy-up, and with a quota by the
	 * measure-write-measure of a write or truncate; never with another
	 * node's lock), read lock-free: layer is published with
	 * release ordering after fds[layer] is set, and a descriptor, once set,
	 * stays open until the node is freed. */
	pthread_mutex_t lock;
	_Atomic int layer;	/* topmost layer holding the object */
	_Atomic bool opaque;	/* directory: lower layers are hidden */
	_Atomic bool deleted;	/* unlinked: a copy-up must not re-link it */
	/* With a quota: -1 while the upper object has a name; once its last
	 * name is gone, the bytes already given back (0: its blocks count
	 * until the node is freed).  Under lock. */
	int64_t quota_released;
	struct cowfs_io io;
	/* Directory read without a handle (FUSE_CAP_NO_OPENDIR_SUPPORT): its
	 * listings, made on first read (cowfs-ops-dir.c); freed with the node. */
	struct cowfs_dir *_Atomic dir;
	/* Regular file: its partial state (cowfs-partial.c), set once
	 * partial_load looked (partial_loaded) or a copy-up made it partial;
	 * freed with the node. */
	struct cowfs_partial *_Atomic partial;
	_Atomic bool partial_loaded;
	/* Regular file: handles open for writing, and a generation bumped by
	 * every change of its data (partial_writer_open, partial_write_gen). */
	_Atomic uint32_t writers_open;
	_Atomic uint64_t write_gen;
	int fds[];		/* per layer O_PATH descriptor, -1 if absent */
};

struct cowfs_origin_map; /* upper inode -> inode number kept across copy-up */

/* A rate limit (cowfs-throttle.c); per_second 0 = none. */
struct cowfs_rate {
	uint64_t per_second;
	pthread_mutex_t lock; /* a leaf: nothing is taken under it */
	uint64_t next; /* ns (CLOCK_MONOTONIC) when the next slot starts; under lock */
};

struct cowfs {
	struct cowfs_layer *layers;
	int nlayers;
	int work_fd;		/* work directory on the upper fs, or -1 */
	int proc_fd;		/* O_PATH on /proc/self/fd */
	bool xattr_trusted;	/* trusted.overlay.* works; else user.overlay.* */
	bool ino_tagging;	/* layers live on different devices */
	bool writeback;
	bool passthrough;
	bool share_base;	/* read-only opens of lower files in passthrough (cowfs-route.c) */
	bool no_opendir;	/* the kernel sends no OPENDIR/RELEASEDIR */
	bool killpriv_v2;	/* the daemon clears setuid/setgid (cowfs-killpriv.c) */
	double entry_timeout;
	double attr_timeout;
	bool sync_copy_up;	/* fsync copies before they are linked in */
	bool acl;		/* POSIX ACLs enforced by the kernel */
	/* Upper data moves into the block store (cowfs-store.c); false until
	 * its options set it.  The last writer's release tells the mover. */
	bool store_enabled;

	/* Ids shift (user namespaces): on disk, ids are as seen inside the
	 * container; the kernel is shown id + idshift_base.  0 size = off. */
	uint32_t idshift_base, idshift_size;

	/* Disk quota on the upper layer; 0 = unlimited.  Usage counters are
	 * approximate under concurrent writers, exact when quiescent. */
	uint64_t quota_bytes, quota_inodes;
	_Atomic int64_t used_bytes, used_inodes;

	struct cowfs_rate read_bps, write_bps, read_iops, write_iops;

	pthread_mutex_t whiteout_lock; /* (re)creating the shared whiteout; a leaf */
	/* Guard node->io of the nodes hashed to them (cowfs-route.c); leaves.
	 * io_cond: a node's last passthrough handle closed. */
	pthread_mutex_t io_lock[COWFS_IO_STRIPES];
	pthread_cond_t io_cond[COWFS_IO_STRIPES];
	/* Guards node->parent and node->name.  Order: after node->lock and an
	 * open directory's lock, before the stripe locks. */
	pthread_rwlock_t tree_lock;
	/* Guard each node's key, refcount and hash chain, and buckets[] of
	 * their stripe.  Innermost but for the leaves; two at a time only in
	 * address (= index) order. */
	pthread_mutex_t stripe_lock[COWFS_TABLE_STRIPES];
	struct cowfs_node **buckets;
	size_t nbuckets;	/* power of two, >= stripes; changed with every stripe held */
	_Atomic size_t nnodes;

	_Atomic size_t origin_count; /* fast path: nothing copied up yet */
	struct cowfs_origin_map *origins; /* striped, each stripe its own lock (a leaf) */

	struct cowfs_node *root;
	struct fuse_session *se;
	char *mountpoint;

	/* FUSE fast paths (cowfs-features.c).  io_uring_wanted and
	 * status_path are set before mounting; passthrough, writeback and
	 * splice by op_init; io_uring once the INIT reply is out.  Read-only
	 * after that. */
	bool io_uring_wanted;	/* ask for FUSE over io_uring (libfuse's loop) */
	bool splice;		/* splice read or write negotiated */
	_Atomic bool io_uring;	/* libfuse's rings run */
	const char *status_path;
	struct cowfs_status *status; /* the thread that writes status_path */

	/* The host's block store (cowfs-store.c): store_dir NULL = none.  The
	 * options are set before mounting; store is made by
	 * cowfs_store_start and is NULL without a store. */
	const char *store_dir, *store_root;
	bool store_create;
	unsigned store_delay;	/* seconds idle after the last writer before a move */
	struct cowfs_store *store;
	/* Renames and links so far: the store's upkeep pass discards a walk
	 * of the upper that one of them may have fooled. */
	_Atomic uint64_t ns_changes;
};

static inline struct cowfs *cowfs_from_req(fuse_req_t req)
{
	return (struct cowfs *)fuse_req_userdata(req);
}

static inline struct cowfs_node *cowfs_node_of(struct cowfs *fs, fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? fs->root : (struct cowfs_node *)(uintptr_t)ino;
}

static inline int node_layer(const struct cowfs_node *n)
{
	return atomic_load_explicit(&n->layer, memory_order_acquire);
}

static inline int node_fd(const struct cowfs_node *n)
{
	return n->fds[node_layer(n)];
}

/* Layer `layer` of directory `dir`, or -1 when absent or hidden (an
 * opaque directory hides every lower layer). */
static inline int node_dir_layer_fd(const struct cowfs_node *dir, int layer)
{
	if (layer > 0 && atomic_load(&dir->opaque))
		return -1;
	return dir->fds[layer];
}

static inline bool node_is_upper(const struct cowfs_node *n)
{
	return node_layer(n) == 0;
}

/* A whiteout is a 0:0 character device, as in kernel overlayfs. */
static inline bool is_whiteout(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && st->st_rdev == 0;
}

/* ---- cowfs-node.c: the node table ---- */
int node_table_init(struct cowfs *fs);
void node_table_destroy(struct cowfs *fs);
struct cowfs_node *node_alloc(struct cowfs *fs, mode_t type);
/* Find the node for a looked-up object or insert `fresh`; returns the node
 * with one more reference.  Consumes `fresh` if an existing node is used. */
struct cowfs_node *node_find_or_insert(struct cowfs *fs, struct cowfs_node *fresh);
void node_ref(struct cowfs *fs, struct cowfs_node *n);
void node_unref(struct cowfs *fs, struct cowfs_node *n, uint64_t count);
void node_rekey(struct cowfs *fs, struct cowfs_node *n, dev_t dev, ino_t ino);
/* Returns a reference to the parent (caller unrefs), or NULL. */
struct cowfs_node *node_get_parent(struct cowfs *fs, struct cowfs_node *n, char **ret_name);
void node_set_parent(struct cowfs *fs, struct cowfs_node *n, struct cowfs_node *parent,
		     const char *name);
uint64_t cowfs_tag_ino(const struct cowfs *fs, int layer, ino_t ino);

/* ---- cowfs-origin.c: inode numbers kept across copy-up ---- */
int origin_map_init(struct cowfs *fs);
void origin_map_destroy(struct cowfs *fs);
void origin_remember(struct cowfs *fs, ino_t upper_ino, uint64_t st_ino);
bool origin_lookup(struct cowfs *fs, ino_t upper_ino, uint64_t *ret_st_ino);
void origin_forget(struct cowfs *fs, ino_t upper_ino);

/* ---- cowfs-layer.c: whiteouts, opaque dirs, real-object helpers ---- */
int layer_is_opaque_dir(struct cowfs *fs, int dirfd);
int layer_set_opaque(struct cowfs *fs, int dirfd);
int layer_make_whiteout(struct cowfs *fs, int dirfd, const char *name);
bool layer_is_private_xattr(const char *name);
/* "/proc/self/fd/N" path for an O_PATH descriptor. */
void fd_path(char buf[64], int fd);
int reopen_fd(struct cowfs *fs, int fd, int flags);
int layer_stat_fd(int fd, struct stat *st);

/* ---- cowfs-stage.c: new upper objects built out of the tenant's reach ---- */
enum stage_flags {
	STAGE_IN_PLACE = 0,	  /* create at the final name (plain creations) */
	STAGE_IN_WORK = 1,	  /* build in the work dir, then rename in */
	STAGE_OVER_WHITEOUT = 2,  /* replaces a whiteout (implies the work dir) */
	STAGE_INHERIT = 4,	  /* take the target dir's default ACL and setgid group */
};
/* Where the object is built: the caller creates `name` in `dirfd`, sets
 * `built`, applies attributes through stage_open's descriptor, then calls
 * stage_install (or stage_abort on any failure). */
struct cowfs_stage {
	int target_fd;		/* upper directory receiving the object */
	const char *target;	/* its name there */
	int dirfd;		/* where it is built: work dir, subdir, or target_fd */
	char name[NAME_MAX + 1];
	int sub_fd;		/* owned inheriting subdirectory, or -1 */
	char sub[64];
	ino_t ino;		/* of the built object, once stage_open saw it */
	bool in_work, over_whiteout, built, installed;
};
void stage_work_name(char buf[64]);
/* Without a work dir, falls back to in place (removing a whiteout first). */
int stage_begin(struct cowfs *fs, struct cowfs_stage *s, int target_fd, const char *target,
		enum stage_flags flags);
/* O_PATH|O_NOFOLLOW descriptor on the built object; -ESTALE if the name
 * no longer holds an object of `type` (in place only). */
int stage_open(struct cowfs_stage *s, mode_t type);
/* Renames the object to its name; -EEXIST if the name was taken meanwhile. */
int stage_install(struct cowfs *fs, struct cowfs_stage *s);
/* Removes what was built and restores a whiteout removed in place; keeps errno. */
void stage_abort(struct cowfs *fs, struct cowfs_stage *s, bool is_dir);

/* ---- cowfs-lookup.c: resolving a name in a merged directory ---- */
/* Looks `name` up in `dir`; on success returns a referenced node and its
 * stat (st_ino already rewritten). */
int cowfs_lookup_child(struct cowfs *fs, struct cowfs_node *dir, const char *name,
		       struct cowfs_node **ret_node, struct stat *ret_st);
int cowfs_node_stat(struct cowfs *fs, struct cowfs_node *n, struct stat *st);
/* What a name in a merged dir refers to in each layer: used before
 * changing the namespace. */
struct cowfs_name_state {
	bool exists;		/* visible in the merged view */
	bool upper_exists;	/* a real (non-whiteout) object in the upper */
	bool upper_whiteout;	/* the upper holds a whiteout for it */
	bool lower_exists;	/* some lower layer shows it */
	struct stat st;		/* of the visible object */
};
int cowfs_name_state(struct cowfs *fs, struct cowfs_node *dir, const char *name,
		     struct cowfs_name_state *ret);

/* ---- cowfs-quota.c: disk quota and id shifting ---- */
/* Counts the upper's allocated bytes (each inode once) and names. */
int quota_scan_upper(struct cowfs *fs);
/* -EDQUOT if `bytes` more bytes or `inodes` more inodes would pass the quota. */
int quota_check(struct cowfs *fs, int64_t bytes, int64_t inodes);
void quota_charge(struct cowfs *fs, int64_t bytes, int64_t inodes);
/* Charges `bytes` now, or fails with -EDQUOT (charging nothing) if that
 * would pass the quota; the caller later charges the difference between
 * what was really allocated and `bytes`. */
int quota_reserve(struct cowfs *fs, int64_t bytes);
/* Upper bound of what writing [off, off+len) of fd may allocate: the holes
 * (and the part past EOF) it covers, in whole blocks.  Moves fd's offset. */
int64_t quota_may_allocate(int fd, off_t off, off_t len, blksize_t blksize);
/* After a name of n was removed: gives back its blocks if that was the
 * last name (the object lives on while open).  Takes n->lock. */
void quota_unlinked(struct cowfs *fs, struct cowfs_node *n);
/* Charges the change of n's upper object from `before` to `after` blocks
 * (less `reserved`, already charged), as counted_bytes() counts it: an
 * unlinked object whose blocks were given back counts only what it grew
 * since.  Under n->lock. */
void quota_charge_blocks(struct cowfs *fs, struct cowfs_node *n, blkcnt_t before, blkcnt_t after, int64_t reserved);
/* n is being freed: gives back what its unlinked object allocated since
 * (and the inode of one that never had a name). */
void quota_node_freed(struct cowfs *fs, struct cowfs_node *n);
/* Rewrites owner ids of a real object's stat as the kernel must see them. */
void idshift_present(const struct cowfs *fs, struct stat *st);
/* Converts a caller/kernel id to the id stored on disk; -EINVAL if outside. */
int idshift_store_uid(const struct cowfs *fs, uid_t id, uid_t *ret);
int idshift_store_gid(const struct cowfs *fs, gid_t id, gid_t *ret);

/* ---- cowfs-throttle.c: I/O limits ---- */
/* Sleeps as long as the limits require before `bytes` are read/written. */
void throttle_io(struct cowfs *fs, bool write, uint64_t bytes);

/* ---- cowfs-copyup.c ---- */
enum copy_up_flags { COPY_UP_DATA = 0, COPY_UP_NO_DATA = 1 };
int copy_up(struct cowfs *fs, struct cowfs_node *n, int flags);
/* Copies a whole directory subtree and marks it opaque (dir rename). */
int copy_up_tree(struct cowfs *fs, struct cowfs_node *dir);

/* ---- cowfs-ops-dir.c ---- */
struct cowfs_dir;
void cowfs_dir_free(struct cowfs_dir *d);

/* ---- cowfs-partial.c (see cowfs-partial.h) ---- */
struct cowfs_partial;
/* n is being freed: writes a record still owed, frees the state. */
void partial_node_free(struct cowfs *fs, struct cowfs_node *n);

/* ---- cowfs-dirlist.c: merged directory listings ---- */
struct cowfs_dirent {
	char *name;
	uint64_t cookie;    /* readdir offset (cowfs-dircookie.c); 0 until sorted */
	uint64_t ino;
	unsigned char type; /* DT_* */
	unsigned char layer; /* where the entry was found */
};
struct cowfs_dirlist {
	struct cowfs_dirent *entries;
	size_t count;
	size_t cap;
};
int dirlist_build(struct cowfs *fs, struct cowfs_node *dir, struct cowfs_dirlist *ret, bool with_dots);
void dirlist_release(struct cowfs_dirlist *l);
/* -ENOTEMPTY unless the merged directory has no visible entries. */
int dirlist_check_empty(struct cowfs *fs, struct cowfs_node *dir);
/* Removes whiteouts left in an upper directory so it can be rmdir'ed. */
int dirlist_purge_upper_whiteouts(struct cowfs *fs, int upper_dirfd);

/* ---- cowfs-dircookie.c: readdir offsets that survive a rebuild ---- */
#define DIRCOOKIE_BITS 48
#define DIRCOOKIE_MASK ((UINT64_C(1) << DIRCOOKIE_BITS) - 1)
uint64_t dircookie_of(const char *name);
/* Gives every entry its cookie and puts the listing in cookie order. */
void dirlist_sort_by_cookie(struct cowfs_dirlist *l);
/* Index of the first entry whose cookie is greater than `cookie`. */
size_t dirlist_after_cookie(const struct cowfs_dirlist *l, uint64_t cookie);

/* ---- FUSE operation tables, one file per concern ---- */
void cowfs_ops_entry(struct fuse_lowlevel_ops *ops);
void cowfs_ops_namespace(struct fuse_lowlevel_ops *ops);
void cowfs_ops_dir(struct fuse_lowlevel_ops *ops);
void cowfs_ops_file(struct fuse_lowlevel_ops *ops);
void cowfs_ops_xattr(struct fuse_lowlevel_ops *ops);

/* ---- cowfs-loop.c: the worker pool, or libfuse's loop with io_uring ---- */
int cowfs_loop(struct cowfs *fs, int nthreads);

/* cowfs-features.c: what libfuse and the kernel offer, what a mount got. */
/* Slots per io_uring queue (one queue per CPU); see cowfs-loop.c. */
#define COWFS_URING_QUEUE_DEPTH 1
/* The fuse module's enable_uring: 1, 0, or -errno (no such parameter). */
int cowfs_kernel_io_uring(void);
bool cowfs_libfuse_io_uring(void);
bool cowfs_libfuse_passthrough(void);
void cowfs_print_version(FILE *out);
/* op_init's last step: the io_uring choice, splice, and the status thread
 * told that INIT is being answered. */
void cowfs_features_at_init(struct cowfs *fs, struct fuse_conn_info *conn);
/* The thread that writes fs->status_path once INIT is answered; stop
 * joins it (it has written, or gives up).  -errno. */
int cowfs_status_start(struct cowfs *fs);
void cowfs_status_stop(struct cowfs *fs);

/* Reply helpers used by several op files. */
void cowfs_reply_entry(fuse_req_t req, struct cowfs *fs, struct cowfs_node *n, const struct stat *st);

#endif
