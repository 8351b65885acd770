/* The OCI layer writer (launcher/backup/backup-oci-tar.c) on a real store,
 * without a container: a manifest built here with every entry kind is
 * written and read back with libarchive, entry by entry (type, mode,
 * owner, times, size, content, hard links, devices, xattrs kept and left
 * out, whiteouts -- also one that is a hard link of another -- an opaque
 * directory and an opaque root, a 200-character path, a socket skipped).
 * Refusals name the path and write nothing: ".wh." as the last or a middle
 * component, the literal opaque marker name, xattr names libarchive would
 * %-escape ('=', '%', non-ASCII).  Non-UTF-8 and UTF-8 file names keep
 * their bytes.  A
 * recipe that disagrees with the manifest, and an unwritable output, are
 * errors, and what was written then does not read as a whole tar. */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "backup/backup-oci-tar.h"
#include "fileio.h"
#include "tap.h"

static char dir[64] = "/tmp/unit-backup-oci.XXXXXX";
static struct store *st;
static struct store_key file_key, empty_key;
#define FILE_SIZE 200000
static uint8_t content[FILE_SIZE];

struct xa {
	const char *name, *value;
};

static void add(struct manifest *m, const char *path, uint32_t mode, uint64_t link, const struct xa *xs)
{
	struct manifest_entry e = { .mode = mode, .uid = 5, .gid = 6, .atime_sec = 1700000000, .atime_nsec = 123,
				    .mtime_sec = 1600000000, .mtime_nsec = 456000, .link = link };
	e.path = strdup(path);
	if (S_ISREG(mode) && !link) {
		e.flags = MANIFEST_HAS_RECIPE;
		bool big = strstr(path, "/f") != NULL;
		e.size = big ? FILE_SIZE : 0;
		e.recipe = big ? file_key : empty_key;
	}
	if (S_ISBLK(mode))
		e.rdev = makedev(8, 1);
	if (S_ISLNK(mode))
		e.target = strdup("../t");
	for (; xs && xs->name; xs++) {
		e.xattrs = realloc(e.xattrs, (e.nxattrs + 1) * sizeof(*e.xattrs));
		e.xattrs[e.nxattrs].name = strdup(xs->name);
		e.xattrs[e.nxattrs].value = strdup(xs->value);
		e.xattrs[e.nxattrs].len = (uint32_t)strlen(xs->value);
		e.nxattrs++;
	}
	if (manifest_add(m, &e) < 0)
		tap_bail("out of memory");
}

/* Writes m to a file; returns the result of backup_oci_tar_write and the
 * file's size in *ret_size. */
static int write_layer(const struct manifest *m, const char *name, struct backup_oci_result *res, off_t *ret_size,
		       struct corral_error *err)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		tap_bail("open %s", path);
	int r = backup_oci_tar_write(st, m, fd, res, err);
	struct stat sb;
	fstat(fd, &sb);
	*ret_size = sb.st_size;
	close(fd);
	return r;
}

/* NULL (with a diag) if it is not a tar at all. */
static struct archive *open_layer(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, path, 10240) != ARCHIVE_OK) {
		diag("%s: %s", path, archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* Reads every entry to its end; ARCHIVE_EOF if the tar is whole. */
static int read_all(const char *name)
{
	struct archive *a = open_layer(name);
	struct archive_entry *ae;
	int r;
	if (!a)
		return ARCHIVE_FATAL;
	char buf[65536];
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK)
		while (archive_read_data(a, buf, sizeof(buf)) > 0)
			;
	archive_read_free(a);
	return r;
}

static const char *xattr_of(struct archive_entry *ae, const char *want, size_t *len)
{
	const char *name;
	const void *value;
	size_t size;
	archive_entry_xattr_reset(ae);
	while (archive_entry_xattr_next(ae, &name, &value, &size) == ARCHIVE_OK)
		if (!strcmp(name, want)) {
			*len = size;
			return value;
		}
	return NULL;
}

static void check_refused(const char *what, const char *bad_path, const struct xa *xs, const char *want_msg)
{
	struct manifest m = { 0 };
	add(&m, ".", S_IFDIR | 0755, 0, NULL);
	add(&m, "a", S_IFDIR | 0755, 0, NULL);
	add(&m, bad_path, S_IFREG | 0644, 0, xs);
	struct corral_error err = { 0 };
	struct backup_oci_result res;
	off_t size;
	int r = write_layer(&m, "refused.tar", &res, &size, &err);
	ok(r == -EINVAL && strstr(err.msg, want_msg) && size == 0, "%s: refused, nothing written (%d, %lld bytes): %s",
	   what, r, (long long)size, err.msg);
	manifest_release(&m);
}

int main(void)
{
	/* As corral-export runs. */
	setlocale(LC_CTYPE, "C.UTF-8");
	if (!mkdtemp(dir))
		tap_bail("mkdtemp");
	struct corral_error err = { 0 };
	char sdir[128];
	snprintf(sdir, sizeof(sdir), "%s/store", dir);
	if (store_open(sdir, STORE_CREATE, &st, &err) < 0 || store_begin(st, &err) < 0)
		tap_bail("store: %s", err.msg);
	for (size_t i = 0; i < FILE_SIZE; i++)
		content[i] = (uint8_t)(i * 7 + i / 65536);
	char fpath[128];
	snprintf(fpath, sizeof(fpath), "%s/content", dir);
	int fd = open(fpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	uint64_t got;
	if (fd < 0 || write(fd, content, FILE_SIZE) != FILE_SIZE || lseek(fd, 0, SEEK_SET) != 0 ||
	    store_put_fd(st, fd, &file_key, &got, &err) < 0)
		tap_bail("store the content: %s", err.msg);
	close(fd);
	struct store_recipe none = { 0 };
	if (store_put_recipe(st, &none, &empty_key, &err) < 0)
		tap_bail("empty recipe: %s", err.msg);

	char longname[256] = "d/";
	memset(longname + 2, 'n', 200);
	longname[202] = '\0';
	struct manifest m = { 0 };
	add(&m, ".", S_IFDIR | 0755, 0, (struct xa[]){ { "trusted.overlay.opaque", "y" }, { 0 } });
	add(&m, "d", S_IFDIR | 0750, 0,
	    (struct xa[]){ { "user.a", "1" }, { "user.overlay.opaque", "y" }, { "trusted.overlay.origin", "o" },
			   { "trusted.corral.partial", "p" }, { "user.corral.partial", "p" }, { 0 } });
	add(&m, "d/f", S_IFREG | 0640, 0, (struct xa[]){ { "security.capability", "cap" }, { 0 } });
	add(&m, "d/w1", S_IFCHR, 0, NULL);
	add(&m, "d/w2", S_IFCHR, 4, NULL);	/* a link of d/w1 (cowfs's shared whiteout) */
	add(&m, "d/h", S_IFREG | 0640, 3, NULL);	/* a link of d/f */
	add(&m, "d/sock", S_IFSOCK | 0755, 0, NULL);
	add(&m, "d/blk", S_IFBLK | 0600, 0, NULL);
	add(&m, longname, S_IFREG | 0600, 0, NULL);
	add(&m, "d/sl", S_IFLNK | 0777, 0, NULL);
	add(&m, "d/fifo", S_IFIFO | 0644, 0, NULL);

	struct backup_oci_result res;
	off_t size;
	int r = backup_oci_tar_write(st, &m, -1, &res, &err);
	ok(r < 0 && strstr(err.msg, "writing the layer"), "an unwritable output is an error (%d): %s", r, err.msg);
	memset(&err, 0, sizeof(err));
	r = write_layer(&m, "layer.tar", &res, &size, &err);
	ok(r == 0, "the layer is written (%s)", r ? err.msg : "ok");
	ok(res.bytes == (uint64_t)size && res.entries == 11, "the result counts %llu bytes (file %lld), %llu entries",
	   (unsigned long long)res.bytes, (long long)size, (unsigned long long)res.entries);

	struct {
		const char *path;
		mode_t type, perm;
		int64_t size;
		const char *hardlink;
	} want[] = {
		{ ".wh..wh..opq", AE_IFREG, 0755, 0, NULL }, { "d/", AE_IFDIR, 0750, 0, NULL },
		{ "d/.wh..wh..opq", AE_IFREG, 0750, 0, NULL }, { "d/f", AE_IFREG, 0640, FILE_SIZE, NULL },
		{ "d/.wh.w1", AE_IFREG, 0600, 0, NULL }, { "d/.wh.w2", AE_IFREG, 0600, 0, NULL },
		{ "d/h", AE_IFREG, 0640, 0, "d/f" }, { "d/blk", AE_IFBLK, 0600, 0, NULL },
		{ longname, AE_IFREG, 0600, 0, NULL }, { "d/sl", AE_IFLNK, 0777, 0, NULL },
		{ "d/fifo", AE_IFIFO, 0644, 0, NULL },
	};
	struct archive *a = open_layer("layer.tar");
	if (!a)
		tap_bail("the layer is not a tar");
	struct archive_entry *ae;
	size_t n = 0;
	bool all_match = true;
	while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
		const char *p = archive_entry_pathname(ae);
		const char *hl = archive_entry_hardlink(ae);
		bool match = n < sizeof(want) / sizeof(want[0]) && !strcmp(p, want[n].path) &&
			     (want[n].hardlink ? hl && !strcmp(hl, want[n].hardlink)
					       : !hl && archive_entry_filetype(ae) == want[n].type) &&
			     (archive_entry_perm(ae) & 07777) == want[n].perm && archive_entry_uid(ae) == 5 &&
			     archive_entry_gid(ae) == 6 && archive_entry_size(ae) == want[n].size &&
			     archive_entry_mtime(ae) == 1600000000 && archive_entry_mtime_nsec(ae) == 456000 &&
			     archive_entry_atime_is_set(ae) && archive_entry_atime(ae) == 1700000000;
		if (!match) {
			diag("entry %zu: %s (type %o, perm %o, size %lld, link %s), wanted %s", n, p,
			     archive_entry_filetype(ae), archive_entry_perm(ae), (long long)archive_entry_size(ae),
			     hl ? hl : "-", n < sizeof(want) / sizeof(want[0]) ? want[n].path : "(none)");
			all_match = false;
		}
		size_t len;
		const char *v;
		if (!strcmp(p, "d/")) {
			v = xattr_of(ae, "user.a", &len);
			ok(v && len == 1 && v[0] == '1', "d keeps the tenant's xattr user.a");
			ok(archive_entry_xattr_count(ae) == 1, "and none of the overlay/corral ones (%d xattrs)",
			   archive_entry_xattr_count(ae));
		}
		if (!strcmp(p, "d/f")) {
			v = xattr_of(ae, "security.capability", &len);
			ok(v && len == 3 && !memcmp(v, "cap", 3), "d/f keeps security.capability");
			static uint8_t back[FILE_SIZE + 1];
			la_ssize_t rd, total = 0;
			while ((rd = archive_read_data(a, back + total, sizeof(back) - (size_t)total)) > 0)
				total += rd;
			ok(total == FILE_SIZE && !memcmp(back, content, FILE_SIZE),
			   "d/f's content (4 store blocks) reads back (%lld bytes)", (long long)total);
		}
		if (!strcmp(p, "d/blk"))
			ok(archive_entry_rdevmajor(ae) == 8 && archive_entry_rdevminor(ae) == 1,
			   "the block device is 8:1");
		if (!strcmp(p, "d/sl"))
			ok(!strcmp(archive_entry_symlink(ae), "../t"), "the symlink's target");
		n++;
	}
	archive_read_free(a);
	ok(all_match && n == sizeof(want) / sizeof(want[0]),
	   "entries in order: opaque root marker, no root entry, whiteouts (a linked one too), "
	   "hard link, no socket (%zu entries)", n);
	ok(read_all("layer.tar") == ARCHIVE_EOF, "the layer reads as a whole tar");
	manifest_release(&m);

	check_refused("a .wh. name", "a/.wh.passwd", NULL, "'/a/.wh.passwd': a name beginning with \".wh.\"");
	check_refused("the opaque marker's name", "a/.wh..wh..opq", NULL, "'/a/.wh..wh..opq'");
	check_refused("a .wh. directory above", ".wh.x/f", NULL, "'/.wh.x/f'");
	check_refused("a .wh. name with a terminal escape: escaped in the message", "a/.wh.\x1b[2J", NULL,
		      "'/a/.wh.\\x1b[2J'");
	check_refused("an xattr name with '='", "a/f", (struct xa[]){ { "user.k=v", "1" }, { 0 } },
		      "'/a/f': xattr name 'user.k=v' cannot be exported");
	check_refused("an xattr name with a non-ASCII byte", "a/f", (struct xa[]){ { "user.\xff", "1" }, { 0 } },
		      "'/a/f': xattr name 'user.\\xff' cannot be exported");
	check_refused("an xattr name with '%'", "a/f", (struct xa[]){ { "user.%41", "1" }, { 0 } },
		      "'/a/f': xattr name 'user.%41' cannot be exported");
	{
		/* A private xattr is left out, never refused, whatever its name. */
		struct manifest pm = { 0 };
		add(&pm, ".", S_IFDIR | 0755, 0, NULL);
		add(&pm, "a", S_IFDIR | 0755, 0, (struct xa[]){ { "trusted.overlay.x=y", "1" }, { 0 } });
		r = write_layer(&pm, "private.tar", &res, &size, &err);
		ok(r == 0, "a private xattr with '=' in its name is left out, not refused");
		manifest_release(&pm);
	}

	{
		/* Names are the tenant's bytes, UTF-8 or not. */
		const char *names[] = { "caf\xc3\xa9", "bad\xff\xfe", "new\nline" };
		struct manifest nm = { 0 };
		add(&nm, ".", S_IFDIR | 0755, 0, NULL);
		for (int i = 0; i < 3; i++)
			add(&nm, names[i], S_IFREG | 0644, 0, NULL);
		r = write_layer(&nm, "names.tar", &res, &size, &err);
		struct archive *na = r == 0 ? open_layer("names.tar") : NULL;
		int same = 0;
		struct archive_entry *ne;
		while (na && archive_read_next_header(na, &ne) == ARCHIVE_OK)
			if (same < 3 && !strcmp(archive_entry_pathname(ne), names[same]))
				same++;
		if (na)
			archive_read_free(na);
		ok(r == 0 && same == 3, "UTF-8, non-UTF-8 and newline names keep their bytes (%d of 3)", same);
		manifest_release(&nm);
	}

	/* A recipe that disagrees with the manifest's size. */
	struct manifest bad = { 0 };
	add(&bad, ".", S_IFDIR | 0755, 0, NULL);
	add(&bad, "d", S_IFDIR | 0755, 0, NULL);
	add(&bad, "d/f", S_IFREG | 0644, 0, NULL);
	bad.e[2].recipe = empty_key;	/* 0 bytes where the manifest says 200000 */
	memset(&err, 0, sizeof(err));
	r = write_layer(&bad, "bad.tar", &res, &size, &err);
	ok(r == -EBADMSG && strstr(err.msg, "'/d/f': its recipe holds 0 bytes, the manifest says 200000"),
	   "a recipe of another size is an error naming the file: %s", err.msg);
	ok(read_all("bad.tar") != ARCHIVE_EOF, "and what was written does not read as a whole tar (%lld bytes)",
	   (long long)size);
	manifest_release(&bad);

	store_end(st);
	store_close(st);
	remove_tree(dir, NULL);
	return tap_done();
}
