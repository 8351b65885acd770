/* Where templates live: names, the build-then-rename protocol, listing,
 * lookup and removal.
 *
 * Invariant: <root>/templates/NAME exists only complete — rootfs/ and a
 * fsync()ed template.conf — because it appears by one rename(2) of a
 * temporary directory whose contents were flushed first.  Temporary
 * directories are named ".tmp-NAME-XXXXXX" and held under flock() while
 * in use; removal renames to ".rm-NAME-PID-N" before deleting.  Both kinds
 * left behind by a crash are swept by the next build. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "kv.h"
#include "template-internal.h"
#include "template.h"

/* A stale temporary directory is only swept once it is this old, which
 * covers the moment between mkdtemp() and flock() of a live build. */
#define STALE_SECONDS 60

/* ---- names -------------------------------------------------------------------------- */

static bool name_char(char c, bool first)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return true;
	return !first && (c == '_' || c == '.' || c == '-');
}

/* The name as it may be shown: printable ASCII kept, the rest escaped. */
static void name_shown(const char *name, char *buf, size_t len)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)name; *p && o + 8 < len; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '\\')
			buf[o++] = *p;
		else
			o += snprintf(buf + o, len - o, "\\x%02x", *p);
		if (p - (const unsigned char *)name >= 80) {
			o += snprintf(buf + o, len - o, "...");
			break;
		}
	}
	buf[o] = '\0';
}

int name_validate(const char *kind, const char *name, struct corral_error *err)
{
	char rule[128];
	snprintf(rule, sizeof(rule),
		 "names are 1 to %d characters from A-Z a-z 0-9 _ . -, starting with a letter or digit",
		 CORRAL_NAME_MAX);
	char shown[128];
	if (!name || !*name)
		return err_plain(err, EINVAL, "%s name is empty: %s", kind, rule);
	name_shown(name, shown, sizeof(shown));
	size_t len = strlen(name);
	if (len > CORRAL_NAME_MAX)
		return err_plain(err, EINVAL, "invalid %s name '%s': %zu characters is too long; %s", kind, shown,
				 len, rule);
	for (size_t i = 0; i < len; i++)
		if (!name_char(name[i], i == 0))
			return err_plain(err, EINVAL, "invalid %s name '%s': %s", kind, shown, rule);
	return 0;
}

/* ---- small file helpers ---------------------------------------------------------------- */

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

/* Reads at most len-1 bytes of dirfd/name into buf, NUL-terminated. */
static int read_small(int dirfd, const char *name, char *buf, size_t len)
{
	cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < len) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += n;
	}
	buf[got] = '\0';
	return 0;
}

static int open_templates(const char *root, bool create, struct corral_error *err)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/templates", root) >= (int)sizeof(path))
		return err_plain(err, ENAMETOOLONG, "state root path is too long");
	if (create) {
		/* 0700: templates may hold set-id binaries that only containers
		 * should reach. */
		if (mkdir(root, 0700) < 0 && errno != EEXIST)
			return err_set(err, errno, "create state root %s", root);
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return err_set(err, errno, "create %s", path);
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno, "open %s", path);
	return fd;
}

/* ---- building --------------------------------------------------------------------------- */

/* Removes what crashed builds and removals left behind. */
static void sweep_stale(int templates_fd)
{
	cleanup_dir DIR *d = dir_stream_at(templates_fd);
	if (!d)
		return;
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(d))) {
		bool tmp = !strncmp(de->d_name, ".tmp-", 5), rm = !strncmp(de->d_name, ".rm-", 4);
		if (!tmp && !rm)
			continue;
		cleanup_close int fd = openat(templates_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0 || now - st.st_mtime < STALE_SECONDS)
			continue;
		if (tmp && flock(fd, LOCK_EX | LOCK_NB) < 0)
			continue;	/* a live build */
		remove_tree_at(templates_fd, de->d_name);
	}
}

int tmpl_build_begin(struct tmpl_build *b, const char *root, const char *name, struct corral_error *err)
{
	int r = name_validate("template", name, err);
	if (r < 0)
		return r;
	snprintf(b->name, sizeof(b->name), "%s", name);
	r = open_templates(root, true, err);
	if (r < 0)
		return r;
	b->templates_fd = r;
	if (faccessat(b->templates_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return err_plain(err, EEXIST, "template '%s' already exists (remove it first)", name);
	sweep_stale(b->templates_fd);

	char abs_root[PATH_MAX];
	if (!realpath(root, abs_root))
		return err_set(err, errno, "resolve state root %s", root);
	if (snprintf(b->path, sizeof(b->path), "%s/templates/.tmp-%s-XXXXXX", abs_root, name) >=
	    (int)sizeof(b->path))
		return err_plain(err, ENAMETOOLONG, "state root path is too long");
	if (!mkdtemp(b->path))
		return err_set(err, errno, "create a temporary directory in %s/templates", abs_root);
	snprintf(b->tmp_name, sizeof(b->tmp_name), "%s", strrchr(b->path, '/') + 1);
	if (snprintf(b->rootfs, sizeof(b->rootfs), "%s/" TMPL_ROOTFS, b->path) >= (int)sizeof(b->rootfs))
		return err_plain(err, ENAMETOOLONG, "state root path is too long");
	b->dir_fd = openat(b->templates_fd, b->tmp_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (b->dir_fd < 0)
		return err_set(err, errno, "open %s", b->path);
	if (flock(b->dir_fd, LOCK_EX) < 0)
		return err_set(err, errno, "lock %s", b->path);
	return 0;
}

static void iso_now(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* One line per value: control characters would break the format. */
static void conf_value(char *dst, size_t len, const char *src)
{
	size_t i = 0;
	for (; src[i] && i + 1 < len; i++)
		dst[i] = ((unsigned char)src[i] < 0x20 || src[i] == 0x7f) ? '?' : src[i];
	dst[i] = '\0';
}

int tmpl_build_commit(struct tmpl_build *b, const char *kind, const char *source, struct corral_error *err)
{
	struct stat st;
	if (fstatat(b->dir_fd, TMPL_ROOTFS, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
		return err_plain(err, EIO, "the import produced no root directory");

	char created[32], src[512], text[1024];
	iso_now(created, sizeof(created));
	conf_value(src, sizeof(src), source);
	int n = snprintf(text, sizeof(text), "# corral template\nkind = %s\nsource = %s\ncreated = %s\n", kind,
			 src, created);
	cleanup_close int fd = openat(b->dir_fd, TMPL_CONF, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_set(err, errno, "create %s/%s", b->path, TMPL_CONF);
	int r = write_all(fd, text, n);
	if (r < 0)
		return err_set(err, -r, "write %s/%s", b->path, TMPL_CONF);
	if (fsync(fd) < 0)
		return err_set(err, errno, "fsync %s/%s", b->path, TMPL_CONF);

	/* The whole tree must be on disk before its name appears. */
	if (syncfs(b->dir_fd) < 0)
		return err_set(err, errno, "flush %s", b->path);

	r = -1;
#ifdef HAVE_RENAMEAT2
	r = renameat2(b->templates_fd, b->tmp_name, b->templates_fd, b->name, RENAME_NOREPLACE);
	if (r < 0 && errno != EINVAL && errno != ENOSYS)
		r = -errno;
	else if (r < 0)
		r = -1;	/* the filesystem does not do NOREPLACE */
#endif
	if (r == -1)
		r = NEG_ERRNO(renameat(b->templates_fd, b->tmp_name, b->templates_fd, b->name));
	if (r == -EEXIST || r == -ENOTEMPTY)
		return err_plain(err, EEXIST, "template '%s' already exists (made while this import ran)", b->name);
	if (r < 0)
		return err_set(err, -r, "rename %s to %s", b->tmp_name, b->name);
	b->tmp_name[0] = '\0';
	if (fsync(b->templates_fd) < 0)
		return err_set(err, errno, "fsync the templates directory");
	return 0;
}

void tmpl_build_abort(struct tmpl_build *b)
{
	if (b->templates_fd >= 0 && b->tmp_name[0])
		remove_tree_at(b->templates_fd, b->tmp_name);
	b->tmp_name[0] = '\0';
	if (b->dir_fd >= 0)
		close(b->dir_fd);
	if (b->templates_fd >= 0)
		close(b->templates_fd);
	b->dir_fd = b->templates_fd = -1;
}

/* ---- lookup, removal, listing ------------------------------------------------------------- */

int template_rootfs(const char *root, const char *name, char *buf, size_t len, struct corral_error *err)
{
	int r = name_validate("template", name, err);
	if (r < 0)
		return r;
	int n = snprintf(buf, len, "%s/templates/%s/" TMPL_ROOTFS, root, name);
	if (n < 0 || (size_t)n >= len)
		return err_plain(err, ENAMETOOLONG, "path of template '%s' is too long", name);
	struct stat st;
	if (lstat(buf, &st) < 0) {
		if (errno == ENOENT)
			return err_plain(err, ENOENT, "template '%s' does not exist (no %s)", name, buf);
		return err_set(err, errno, "template '%s': %s", name, buf);
	}
	if (!S_ISDIR(st.st_mode))
		return err_plain(err, ENOENT, "template '%s' is damaged: %s is not a directory", name, buf);
	return 0;
}

struct uses {
	const char *name;
	bool found;
};

static int find_template_key(const struct kv_line *kv, void *data, struct corral_error *err)
{
	struct uses *u = data;
	(void)err;
	if (!strcmp(kv->key, "template") && !strcmp(kv->value, u->name))
		u->found = true;
	return 0;
}

/* Name of the first container whose config names the template, into who.
 * A config that can not be read whole is an error: the template might be
 * its, and removing it would break the container. */
static int template_in_use(const char *root, const char *name, char *who, size_t len, struct corral_error *err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/containers", root);
	cleanup_dir DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : err_set(err, errno, "open %s", path);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		cleanup_close int cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0)
			continue;
		cleanup_close int fd = openat(cfd, "config", O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			continue;	/* not a container (yet) */
		char what[PATH_MAX + NAME_MAX + 16];
		snprintf(what, sizeof(what), "%s/%s/config", path, de->d_name);
		cleanup_free char *text = NULL;
		size_t text_len;
		struct uses u = { .name = name };
		int r = fd_read_all(fd, what, &text, &text_len, err);
		if (r == 0)
			r = kv_parse(text, text_len, what, find_template_key, &u, err);
		if (r < 0)
			return err_wrap(err, "can not tell whether container '%s' uses template '%s'", de->d_name,
					name);
		if (u.found) {
			snprintf(who, len, "%s", de->d_name);
			return 1;
		}
	}
	return 0;
}

int template_remove(const char *root, const char *name, struct corral_error *err)
{
	int r = name_validate("template", name, err);
	if (r < 0)
		return r;
	cleanup_close int tfd = open_templates(root, false, err);
	if (tfd < 0) {
		if (tfd == -ENOENT)
			return err_plain(err, ENOENT, "template '%s' does not exist", name);
		return tfd;
	}
	struct stat st;
	if (fstatat(tfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? err_plain(err, ENOENT, "template '%s' does not exist", name)
				       : err_set(err, errno, "template '%s'", name);
	char who[256];
	r = template_in_use(root, name, who, sizeof(who), err);
	if (r < 0)
		return r;
	if (r > 0)
		return err_plain(err, EBUSY, "template '%s' is in use by container '%s' (remove the container first)",
				 name, who);

	/* Out of sight in one step, then deleted at leisure. */
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	char gone[128];
	snprintf(gone, sizeof(gone), ".rm-%s-%ld-%lld%09ld", name, (long)getpid(), (long long)now.tv_sec,
		 now.tv_nsec);
	if (renameat(tfd, name, tfd, gone) < 0)
		return err_set(err, errno, "remove template '%s'", name);
	if (fsync(tfd) < 0)
		return err_set(err, errno, "fsync the templates directory");
	r = remove_tree_at(tfd, gone);
	if (r < 0)
		return err_set(err, -r, "delete the files of template '%s' (left in %s/templates/%s)", name, root,
			       gone);
	return 0;
}

static int fill_info(const struct kv_line *kv, void *data, struct corral_error *err)
{
	struct template_info *ti = data;
	const char *k = kv->key, *v = kv->value;
	(void)err;
	if (!strcmp(k, "kind"))
		snprintf(ti->kind, sizeof(ti->kind), "%s", v);
	else if (!strcmp(k, "source"))
		snprintf(ti->source, sizeof(ti->source), "%s", v);
	else if (!strcmp(k, "created"))
		snprintf(ti->created, sizeof(ti->created), "%s", v);
	return 0;
}

static int info_cmp(const void *a, const void *b)
{
	return strcmp(((const struct template_info *)a)->name, ((const struct template_info *)b)->name);
}

int template_list(const char *root, struct template_info **ret, size_t *count, struct corral_error *err)
{
	cleanup_close int tfd = open_templates(root, false, err);
	if (tfd == -ENOENT) {
		*ret = NULL;
		*count = 0;
		return 0;
	}
	if (tfd < 0)
		return tfd;
	cleanup_dir DIR *d = dir_stream_at(tfd);
	if (!d)
		return err_set(err, errno, "list templates");
	cleanup_free struct template_info *list = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (name_validate("template", de->d_name, NULL) < 0)
			continue;	/* ".", "..", temporary entries */
		cleanup_close int fd = openat(tfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstatat(fd, TMPL_ROOTFS, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			struct template_info *bigger = realloc(list, cap * sizeof(*list));
			if (!bigger)
				return err_set(err, ENOMEM, "list templates");
			list = bigger;
		}
		struct template_info *ti = &list[n++];
		memset(ti, 0, sizeof(*ti));
		snprintf(ti->name, sizeof(ti->name), "%.*s", CORRAL_NAME_MAX, de->d_name);
		/* Best effort: a damaged template.conf only leaves fields empty. */
		char text[4096];
		if (read_small(fd, TMPL_CONF, text, sizeof(text)) == 0)
			kv_parse(text, strlen(text), TMPL_CONF, fill_info, ti, NULL);
	}
	if (n)
		qsort(list, n, sizeof(*list), info_cmp);
	*ret = take_ptr(list);
	*count = n;
	return 0;
}
