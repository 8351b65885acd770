/* Unpacking tar archives (plain, gzip, xz, zstd, ...) into a template, and
 * image layers with their whiteouts.
 *
 * Safety rests on two fences.  Every member name is cleaned here first:
 * absolute names and ".." are refused with a message naming the member.
 * libarchive then writes with ARCHIVE_EXTRACT_SECURE_* so nothing is ever
 * written through a symlink already on disk, which is what stops the
 * "symlink to /tmp, then a file through it" trick.  Owners are restored
 * from the numeric ids in the archive, never looked up by name on the
 * host: the tree belongs to the container's own /etc/passwd.
 *
 * archive_write_disk resolves names against the working directory, so the
 * unpacking runs with the process chdir()ed into the destination, restored
 * afterwards.  That is process state: the launcher is single-threaded. */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <nettle/sha2.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "template-internal.h"

#define READ_BUF (256 * 1024)

/* ---- paths ----------------------------------------------------------------- */

int tmpl_clean_path(const char *in, char *out, size_t len, struct corral_error *err)
{
	if (in[0] == '/')
		return err_plain(err, EPERM, "'%s' is an absolute path", in);
	size_t o = 0;
	for (const char *p = in; *p;) {
		while (*p == '/')
			p++;
		const char *end = strchrnul(p, '/');
		size_t n = end - p;
		if (n == 0)
			break;
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return err_plain(err, EPERM, "'%s' contains '..'", in);
		if (!(n == 1 && p[0] == '.')) {
			if (o + n + 2 > len)
				return err_plain(err, ENAMETOOLONG, "'%.200s...' is too long", in);
			if (o)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p = end;
	}
	if (len)
		out[o] = '\0';
	return 0;
}

/* Fallback for kernels without openat2 (before 5.6): one component at a
 * time, no symlink followed anywhere. */
static int open_walk(int dirfd, const char *path, int flags)
{
	char buf[PATH_MAX];
	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	cleanup_close int cur = -1;
	char *save = NULL;
	char *comp = strtok_r(buf, "/", &save);
	while (comp) {
		char *next = strtok_r(NULL, "/", &save);
		if (!strcmp(comp, ".."))
			return -EXDEV;
		int at = cur >= 0 ? cur : dirfd;
		int fd = openat(at, comp, (next ? O_PATH | O_DIRECTORY : flags) | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (cur >= 0)
			close(cur);
		cur = fd;
		comp = next;
	}
	if (cur < 0)
		return NEG_ERRNO(openat(dirfd, ".", flags | O_CLOEXEC));
	return take_fd(cur);
}

int tmpl_open_beneath(int dirfd, const char *path, int flags, bool no_symlinks)
{
	struct open_how how = {
		.flags = (unsigned)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | (no_symlinks ? RESOLVE_NO_SYMLINKS : 0),
	};
	if (!*path)
		path = ".";
	int fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	if (fd >= 0)
		return fd;
	if (errno != ENOSYS)
		return -errno;
	return open_walk(dirfd, path, flags);
}

/* ---- reading with a hash on the side ------------------------------------------ */

struct reader {
	int fd;
	struct sha256_ctx *sha;
	uint64_t bytes;
	char *buf;
};

static la_ssize_t read_cb(struct archive *a, void *data, const void **buf)
{
	struct reader *rd = data;
	for (;;) {
		ssize_t n = read(rd->fd, rd->buf, READ_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			archive_set_error(a, errno, "read failed");
			return -1;
		}
		if (rd->sha)
			sha256_update(rd->sha, n, (const uint8_t *)rd->buf);
		rd->bytes += n;
		*buf = rd->buf;
		return n;
	}
}

/* Whatever libarchive did not ask for (padding after the end marker)
 * still belongs to the file whose digest is checked. */
static int drain(struct reader *rd)
{
	for (;;) {
		ssize_t n = read(rd->fd, rd->buf, READ_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		if (rd->sha)
			sha256_update(rd->sha, n, (const uint8_t *)rd->buf);
		rd->bytes += n;
	}
}

/* ---- layers: what this layer wrote, and whiteouts -------------------------------- */

/* Paths written by the layer being applied (and their ancestors), as a
 * tsearch tree of strings.  Whiteouts hide what lower layers left; they
 * must not remove what the same layer put there, whatever the member
 * order in the tar. */
struct layer {
	void *seen;
};

static int str_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static bool layer_has(struct layer *l, const char *path)
{
	return tfind(path, &l->seen, str_cmp) != NULL;
}

static int layer_add(struct layer *l, const char *path)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", path);
	for (;;) {
		if (layer_has(l, buf))
			return 0;	/* and so are its ancestors */
		char *copy = strdup(buf);
		if (!copy || !tsearch(copy, &l->seen, str_cmp)) {
			free(copy);
			return -ENOMEM;
		}
		char *slash = strrchr(buf, '/');
		if (!slash)
			return 0;
		*slash = '\0';
	}
}

/* Opens the directory dir of the tree being built, without symlinks: a
 * whiteout never reaches through one.  Returns -ENOENT-like codes when
 * there is no such real directory (then there is nothing to hide). */
static int open_dir_in_tree(int root_fd, const char *dir)
{
	return tmpl_open_beneath(root_fd, dir, O_RDONLY | O_DIRECTORY, true);
}

static bool nothing_there(int r)
{
	return r == -ENOENT || r == -ENOTDIR || r == -ELOOP || r == -EXDEV;
}

/* Removes everything below fd (path in the tree) that this layer did not
 * write; directories this layer wrote are kept and pruned in turn. */
static int prune(struct layer *l, int fd, char *path, size_t plen)
{
	cleanup_dir DIR *d = dir_stream_at(fd);
	if (!d)
		return -errno;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de)
			return errno ? -errno : 0;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int n = snprintf(path + plen, PATH_MAX - plen, "%s%s", plen ? "/" : "", de->d_name);
		if (n < 0 || (size_t)n >= PATH_MAX - plen)
			return -ENAMETOOLONG;
		int r = 0;
		if (!layer_has(l, path)) {
			r = remove_tree_at(fd, de->d_name);
		} else {
			cleanup_close int sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				r = prune(l, sub, path, plen + n);
		}
		path[plen] = '\0';
		if (r < 0)
			return r;
	}
}

/* Handles a member of a layer before it is written.  Returns 1 for a
 * whiteout (dealt with here, not to be written), 0 to write it. */
static int layer_member(struct layer *l, int root_fd, struct archive_entry *e, const char *clean,
			struct corral_error *err)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(clean, '/');
	const char *base = slash ? slash + 1 : clean;
	snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - clean) : 0, clean);

	if (!strncmp(base, ".wh.", 4)) {
		if (!strcmp(base, ".wh..wh..opq")) {
			/* Opaque directory: nothing of the lower layers shows. */
			cleanup_close int fd = open_dir_in_tree(root_fd, parent);
			if (fd < 0)
				return nothing_there(fd) ? 1 : err_set(err, -fd, "opaque directory '%s'", parent);
			char path[PATH_MAX];
			snprintf(path, sizeof(path), "%s", parent);
			int r = prune(l, fd, path, strlen(path));
			return r < 0 ? err_set(err, -r, "make '%s' opaque", parent[0] ? parent : ".") : 1;
		}
		if (!strncmp(base, ".wh..wh.", 8))
			return 1;	/* other overlay bookkeeping (hard link dirs) */
		const char *victim = base + 4;
		if (!*victim || !strcmp(victim, ".") || !strcmp(victim, ".."))
			return err_plain(err, EINVAL, "invalid whiteout '%s'", clean);
		char vpath[PATH_MAX];
		if (snprintf(vpath, sizeof(vpath), "%s%s%s", parent, parent[0] ? "/" : "", victim) >=
		    (int)sizeof(vpath))
			return err_plain(err, ENAMETOOLONG, "whiteout '%s' names too long a path", clean);
		if (layer_has(l, vpath))
			return 1;
		cleanup_close int fd = open_dir_in_tree(root_fd, parent);
		if (fd < 0)
			return nothing_there(fd) ? 1 : err_set(err, -fd, "whiteout '%s'", clean);
		int r = remove_tree_at(fd, victim);
		return r < 0 ? err_set(err, -r, "remove '%s' for whiteout '%s'", vpath, clean) : 1;
	}

	/* A non-directory replaces a directory of a lower layer whole;
	 * libarchive would only try rmdir() on it. */
	if (clean[0] && archive_entry_filetype(e) != AE_IFDIR) {
		cleanup_close int fd = open_dir_in_tree(root_fd, parent);
		struct stat st;
		if (fd >= 0 && fstatat(fd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
			int r = remove_tree_at(fd, base);
			if (r < 0)
				return err_set(err, -r, "replace directory '%s'", clean);
		}
	}
	if (clean[0] && layer_add(l, clean) < 0)
		return err_set(err, ENOMEM, "remember '%s'", clean);
	return 0;
}

/* ---- unpacking ------------------------------------------------------------------- */

static int archive_code(struct archive *a)
{
	int e = archive_errno(a);
	return e > 0 ? e : EINVAL;
}

static int copy_member_data(struct archive *a, struct archive *w, const char *clean, struct corral_error *err)
{
	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t off;
		int r = archive_read_data_block(a, &buf, &size, &off);
		if (r == ARCHIVE_EOF)
			return 0;
		if (r < ARCHIVE_WARN)
			return err_plain(err, archive_code(a), "read '%s': %s", clean, archive_error_string(a));
		if (archive_write_data_block(w, buf, size, off) < ARCHIVE_OK)
			return err_plain(err, archive_code(w), "write '%s': %s", clean, archive_error_string(w));
	}
}

/* Times for the top directory: libarchive sets those of "." before the
 * members below it are made, which then move them; applied after close. */
struct top_times {
	bool set;
	struct timespec ts[2];
};

static void remember_top(struct top_times *t, struct archive_entry *e)
{
	t->set = archive_entry_mtime_is_set(e) || archive_entry_atime_is_set(e);
	t->ts[0] = (struct timespec){ .tv_nsec = UTIME_OMIT };
	t->ts[1] = (struct timespec){ .tv_nsec = UTIME_OMIT };
	if (archive_entry_atime_is_set(e))
		t->ts[0] = (struct timespec){ archive_entry_atime(e), archive_entry_atime_nsec(e) };
	if (archive_entry_mtime_is_set(e))
		t->ts[1] = (struct timespec){ archive_entry_mtime(e), archive_entry_mtime_nsec(e) };
}

static int unpack_all(struct archive *a, struct archive *w, int dst_fd, struct tmpl_extract *x, struct layer *l,
		      struct top_times *top, struct corral_error *err)
{
	unsigned long members = 0;
	for (;;) {
		struct archive_entry *e;
		int r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return err_plain(err, archive_code(a), "%s", archive_error_string(a));
		members++;

		const char *name = archive_entry_pathname(e);
		if (!name)
			return err_plain(err, EINVAL, "member %lu has a name that can not be read", members);
		char clean[PATH_MAX];
		r = tmpl_clean_path(name, clean, sizeof(clean), err);
		if (r < 0)
			return err_wrap(err, "member refused");
		const char *hl = archive_entry_hardlink(e);
		if (hl) {
			char target[PATH_MAX];
			target[0] = '\0';
			r = tmpl_clean_path(hl, target, sizeof(target), err);
			if (r < 0)
				return err_wrap(err, "hard link '%s' refused", clean);
			if (!target[0])
				return err_plain(err, EPERM, "hard link '%s' points at the top directory", clean);
			archive_entry_set_hardlink(e, target);
		}
		if (!clean[0] && archive_entry_filetype(e) != AE_IFDIR)
			return err_plain(err, EPERM, "member '%s' replaces the top directory with a non-directory",
					 name);
		archive_entry_set_pathname(e, clean[0] ? clean : ".");
		if (!clean[0])
			remember_top(top, e);

		if (l) {
			r = layer_member(l, dst_fd, e, clean, err);
			if (r < 0)
				return r;
			if (r > 0)
				continue;
		}
		r = archive_write_header(w, e);
		if (r != ARCHIVE_OK)
			return err_plain(err, archive_code(w), "'%s': %s", clean[0] ? clean : ".",
					 archive_error_string(w));
		r = copy_member_data(a, w, clean, err);
		if (r < 0)
			return r;
		if (archive_write_finish_entry(w) != ARCHIVE_OK)
			return err_plain(err, archive_code(w), "'%s': %s", clean[0] ? clean : ".",
					 archive_error_string(w));
	}
	if (!members && !x->allow_empty)
		return err_plain(err, EINVAL, "the archive holds no files");
	return 0;
}

int tmpl_extract_tar(int fd, int dst_fd, struct tmpl_extract *x, struct corral_error *err)
{
	struct reader rd = { .fd = fd, .sha = x->sha };
	cleanup_free char *buf = rd.buf = malloc(READ_BUF);
	if (!buf)
		return err_set(err, ENOMEM, "%s", x->label);

	struct archive *a = archive_read_new();
	struct archive *w = archive_write_disk_new();
	if (!a || !w) {
		archive_read_free(a);
		archive_write_free(w);
		return err_set(err, ENOMEM, "%s", x->label);
	}
	/* Named filters, not _all: that one would also run external
	 * decompressors (lrzip, lzop, ...) on untrusted input. */
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_lzma(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_filter_lz4(a);
	archive_read_support_format_tar(a);
	archive_write_disk_set_options(w, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
				       ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_SPARSE |
				       ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
				       ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);

	struct layer l = { 0 };
	struct top_times top = { 0 };
	int r = 0;
	cleanup_close int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0) {
		r = err_set(err, errno, "remember the working directory");
		goto out;
	}
	if (archive_read_open(a, &rd, NULL, read_cb, NULL) != ARCHIVE_OK) {
		r = err_plain(err, archive_code(a), "%s", archive_error_string(a));
		goto out;
	}
	if (fchdir(dst_fd) < 0) {
		r = err_set(err, errno, "enter the destination");
		goto out;
	}
	r = unpack_all(a, w, dst_fd, x, x->layer ? &l : NULL, &top, err);
	/* Directory modes and times are applied at close, still relative to
	 * the destination. */
	if (archive_write_close(w) != ARCHIVE_OK && r == 0)
		r = err_plain(err, archive_code(w), "finish: %s", archive_error_string(w));
	if (r == 0 && top.set && futimens(dst_fd, top.ts) < 0)
		r = err_set(err, errno, "set the times of the top directory");
	if (fchdir(cwd) < 0 && r == 0)
		r = err_set(err, errno, "return to the working directory");
	if (r == 0) {
		int d = drain(&rd);
		if (d < 0)
			r = err_set(err, -d, "read");
	}
	x->compressed = archive_filter_count(a) > 1 && archive_filter_code(a, 0) != ARCHIVE_FILTER_NONE;
out:
	x->bytes = rd.bytes;
	archive_read_free(a);
	archive_write_free(w);
	tdestroy(l.seen, free);
	if (r < 0)
		err_wrap(err, "%s", x->label);
	return r;
}
