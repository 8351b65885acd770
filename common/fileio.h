/* Durable small-file I/O for state kept on disk.
 * Writes go to a temp file in the same directory, are fsync'ed, renamed
 * over the target, and the directory is fsync'ed: a reader sees the old
 * or the new content, never a mix, even after a crash.
 *
 * Module common (the bottom layer, which every component may call): also
 * directory walks that never follow a symlink nor cross a mount (tree
 * removal, tree usage) and mount point checks.
 * May call: no other module (libc only). */
#ifndef CORRAL_FILEIO_H
#define CORRAL_FILEIO_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

int file_write_atomic(const char *path, const char *data, size_t len, int mode, struct corral_error *err);
/* The project's one atomic file commit, below a directory descriptor:
 * writes ".NAME.tmp.PID" (O_EXCL, O_NOFOLLOW, `mode`), fsyncs it, renames
 * it over `name` and fsyncs the directory (FILE_COMMIT_NO_SYNC: no
 * fsyncs, still atomic).  `hook`, if set, is called after each step
 * ("written", "synced", "renamed"): crash points for tests.  -errno. */
enum { FILE_COMMIT_NO_SYNC = 1 << 0 };
typedef void (*file_commit_hook)(void *ctx, const char *step);
int file_commit_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode, unsigned flags,
		   file_commit_hook hook, void *ctx);
/* Parsed option: state of an ephemeral container (corral run, removed on
 * exit) is written atomically but without fsync. */
void fileio_set_durable(bool durable);
/* Reads a whole (small, at most 16 MiB) file; *ret is NUL-terminated,
 * caller frees.  `what` names it in errors. */
int file_read_all(const char *path, char **ret, size_t *ret_len, struct corral_error *err);
int fd_read_all(int fd, const char *what, char **ret, size_t *ret_len, struct corral_error *err);
/* A directory stream on dirfd's directory (which stays the caller's),
 * through a new open of "." -- its own offset, and it works for an O_PATH
 * descriptor too; NULL with errno set on failure. */
DIR *dir_stream_at(int dirfd);
/* mkdir -p with `mode` for the created components. */
int mkdir_p(const char *path, int mode, struct corral_error *err);
/* Whether `path` (absolute, resolved) is a mount point of this mount
 * namespace, from /proc/self/mountinfo. */
bool path_is_mountpoint(const char *path);
/* Allocated bytes and inode count of a directory tree (consumes dirfd);
 * like remove_tree_at, of any depth with at most three descriptors. */
void tree_usage(int dirfd, int64_t *bytes, int64_t *inodes);
/* rm -rf that never follows a symlink nor crosses into another mount
 * (-EXDEV, and EBUSY from remove_tree, if one is met or `name` is itself a
 * mount point), of any depth with at most three descriptors open, and
 * stopping with -ESTALE if a directory is moved under it.  The project's
 * one tree removal: use it, never a second copy. */
int remove_tree(const char *path, struct corral_error *err);
/* The same below a directory descriptor; -errno. */
int remove_tree_at(int dirfd, const char *name);

#endif
