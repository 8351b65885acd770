/* posix-ops: shared fixture paths, helpers and the test areas.
 * See posix-ops.c for the fixture the checks expect. */
#ifndef CORRAL_POSIX_OPS_H
#define CORRAL_POSIX_OPS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/acl.h>
#include <acl/libacl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"


#define KiB (1024L)
#define MiB (1024L * KiB)
#define GiB (1024L * MiB)

#define BASE_MTIME_S 1000000000L
#define BASE_MTIME_NS 123456789L
#define CU_CONTENT "0123456789abcdef\n"
#define CU_MODE 0640
#define CU_UID 1234
#define CU_GID 5678

/* Copy-up of a sparse file may allocate around each data extent (kernel
 * overlayfs copies whole 1 MiB chunks), but never the holes themselves. */
#define SPARSE_SLACK (8 * MiB)


extern const char *merged_root, *base_root, *upper_root;
/* Helpers return false and describe the problem here; CHECK prints it. */
extern char reason[2048];

#define CHECK(cond, ...) check_done(ok((cond), __VA_ARGS__))

/* ---- helpers (posix-ops-lib.c) ---- */
__attribute__((format(printf, 1, 2)))
bool fail(const char *fmt, ...);
bool check_done(bool passed);
const char *vpath(const char *root, const char *fmt, va_list ap);
__attribute__((format(printf, 1, 2)))
const char *M(const char *fmt, ...);
__attribute__((format(printf, 1, 2)))
const char *B(const char *fmt, ...);
__attribute__((format(printf, 1, 2)))
const char *U(const char *fmt, ...);
const char *show(const void *data, size_t len);
bool sys(long ret, const char *what);
bool fails_with(long ret, int err, const char *what);
bool long_is(long got, long want, const char *what);
bool drop_caches(void);
bool lstat_ok(const char *path, struct stat *st);
bool absent(const char *path);
ssize_t read_at(const char *path, off_t off, void *buf, size_t cap);
bool bytes_at(const char *path, off_t off, const void *want,
		     size_t len);
bool content_is(const char *path, const char *want);
bool filled_with(const char *path, off_t off, size_t len, char c);
bool write_file(const char *path, const char *data, int flags);
bool mode_is(const char *path, mode_t want);
bool type_is(const char *path, mode_t type);
bool owner_is(const char *path, uid_t uid, gid_t gid);
bool mtime_is(const char *path, time_t sec, long nsec);
bool atime_is(const char *path, time_t sec, long nsec);
bool nlink_is(const char *path, nlink_t want);
bool xattr_is(const char *path, const char *name, const char *want);
bool xattr_absent(const char *path, const char *name);
bool is_whiteout(const char *path);
bool is_opaque(const char *path);
int cmp_str(const void *a, const void *b);
char *list_dir(const char *path);
bool entries_are(const char *path, const char *want);
int count_entry(const char *path, const char *name);
bool listed_once(const char *dir, const char *name);
bool not_listed(const char *dir, const char *name);
bool cu_base_intact(const char *op);

/* ---- test areas ---- */
void test_lookup(void);
void test_readdir(void);
void test_readdir_ino(void);
void test_readdir_large(void);
void test_readdir_seek(void);
void test_readdir_two_handles(void);
void test_readdir_three_handles(void);
void test_readdir_changes(void);
void test_dots(void);
void test_ino_stable(void);
void test_hardlink(void);
void test_base_hardlinks(void);
void test_copyup_write(void);
void test_copyup_truncate(void);
void test_copyup_chmod(void);
void test_copyup_chown(void);
void test_copyup_utimens(void);
void test_copyup_setxattr(void);
void test_copyup_fcaps(void);
void test_copyup_link(void);
void test_copyup_rename(void);
void test_copyup_dir(void);
void test_copyup_sparse(void);
void test_concurrent_copyup(void);
void test_unlink(void);
void test_unlink_open(void);
void test_parent_times(void);
void test_rmdir(void);
void test_create(void);
void test_mknod(void);
void test_symlink(void);
void test_base_symlink(void);
void test_rename_files(void);
void test_rename_dirs(void);
void test_open_flags(void);
void test_stale_fd(void);
void test_open_replaced(void);
void test_open_unlinked(void);
void test_o_direct(void);
void test_o_tmpfile(void);
void test_mmap(void);
/* posix-ops-exec.c */
void test_copyup_other_process(void);
void test_exec_base(void);
void test_exec_upper(void);
void test_mmap_new(void);
void test_o_direct_new(void);
void test_mmap_private(void);
void test_fd_ops(void);
void test_sync(void);
void test_fallocate(void);
void test_seek(void);
void test_copy_file_range(void);
void test_statfs(void);
void test_xattr(void);
void test_acl(void);
void test_flock(void);
void test_posix_lock(void);
void test_utimens(void);
void test_killpriv(void);
void test_bigfile(void);
void test_names(void);
void test_deep_new(void);
void test_deep_base(void);

#endif
