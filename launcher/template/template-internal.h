/* Shared pieces of the template module (template*.c); not for other modules.
 *
 * A template is built in a private temporary directory beside its final
 * place, <root>/templates/.tmp-NAME-XXXXXX, which holds the new rootfs/ and
 * template.conf.  tmpl_build_begin() makes it, tmpl_build_commit() writes
 * template.conf and renames it to <root>/templates/NAME, and
 * tmpl_build_abort() removes whatever is left.  Names that start with a dot
 * can never be template names (name_validate), so the temporary entries can
 * not be mistaken for templates. */
#ifndef CORRAL_TEMPLATE_INTERNAL_H
#define CORRAL_TEMPLATE_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "template.h"

#define TMPL_ROOTFS "rootfs"
#define TMPL_CONF "template.conf"

struct tmpl_build {
	int templates_fd;	/* <root>/templates */
	int dir_fd;		/* the temporary directory; flock()ed while we build */
	char tmp_name[96];	/* its name inside <root>/templates */
	char name[CORRAL_NAME_MAX + 1];	/* the template being made */
	char path[PATH_MAX];	/* absolute path of the temporary directory */
	char rootfs[PATH_MAX];	/* absolute path of <tmp>/rootfs (not yet created) */
};

#define TMPL_BUILD_INIT { .templates_fd = -1, .dir_fd = -1 }

/* Validates name, makes <root>/templates if needed, refuses (-EEXIST) an
 * existing template and creates the temporary directory. */
int tmpl_build_begin(struct tmpl_build *b, const char *root, const char *name, struct corral_error *err);
/* Flushes the tree, writes template.conf and moves the temporary directory
 * to its final name; on failure the caller still calls tmpl_build_abort(). */
int tmpl_build_commit(struct tmpl_build *b, const char *kind, const char *source, struct corral_error *err);
/* Removes the temporary directory (if still there) and closes the fds. */
void tmpl_build_abort(struct tmpl_build *b);

/* Copies the directory src_fd to a new directory dst_parent_fd/dst_name,
 * keeping types, owners, modes, times, xattrs, hard links and holes.
 * Never follows a symlink.  A directory with the identity skip_dev/skip_ino
 * (the temporary directory being built) is refused, so a source that
 * contains the state root cannot copy itself forever. */
int tmpl_copy_tree(int src_fd, int dst_parent_fd, const char *dst_name, dev_t skip_dev, ino_t skip_ino,
		   struct corral_error *err);

/* Turns an archive member name into a clean relative path ("" is the top):
 * drops "./" and repeated slashes; refuses absolute names and "..". */
int tmpl_clean_path(const char *in, char *out, size_t len, struct corral_error *err);

/* Opens path below dirfd, refusing to leave it: with openat2's
 * RESOLVE_BENEATH (plus RESOLVE_NO_SYMLINKS when no_symlinks). */
int tmpl_open_beneath(int dirfd, const char *path, int flags, bool no_symlinks);

struct sha256_ctx;

/* How one tar stream is unpacked by tmpl_extract_tar(). */
struct tmpl_extract {
	const char *label;	/* names the archive in messages */
	bool layer;		/* an image layer: whiteouts, replacement rules */
	bool allow_empty;	/* an archive without members is fine */
	struct sha256_ctx *sha;	/* if set, every byte of the file is hashed */
	uint64_t bytes;		/* out: bytes read from the file */
	bool compressed;	/* out: the file was compressed */
};

/* Unpacks the tar (plain or compressed) read from fd into dst_fd with
 * owners, modes, times and xattrs; refuses members that would land
 * outside dst_fd.  Reads fd to its end. */
int tmpl_extract_tar(int fd, int dst_fd, struct tmpl_extract *x, struct corral_error *err);

/* Runs argv[0] (an absolute path) with stdin from /dev/null; its output is
 * collected and the tail of it reported if it fails. */
int tmpl_run(char *const argv[], struct corral_error *err);

/* Applies an OCI image layout or docker-archive found at path (a directory
 * or a tar of one) to the empty directory rootfs_fd.  work_fd is a scratch
 * directory for unpacking a tar. */
int tmpl_oci_apply(const char *path, int rootfs_fd, int work_fd, struct corral_error *err);

/* An import: builds <root>/templates/.tmp-NAME-*, lets `fill` populate it,
 * commits it as NAME (kind and source in template.conf). */
typedef int (*tmpl_fill_fn)(struct tmpl_build *b, const char *src, struct corral_error *err);
int tmpl_import(const char *root, const char *name, const char *src, const char *kind, const char *what,
		tmpl_fill_fn fill, struct corral_error *err);

#endif
