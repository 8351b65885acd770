/* A snapshot's manifest as an OCI image-spec layer (backup-oci-tar.h).
 *
 * The image spec's "changeset" format: a tar whose entries are added or
 * changed files, where a deletion is an empty file ".wh.NAME" beside the
 * deleted name and "DIR/.wh..wh..opq" says that DIR hides everything the
 * layers below have in it.  The upper layer says the same thing in
 * overlayfs's on-disk form (cowfs/cowfs-layer.c): a whiteout is a 0:0
 * character device, an opaque directory carries trusted.overlay.opaque=y
 * or user.overlay.opaque=y.  The conversion is docker's and podman's own
 * (moby pkg/archive's overlay whiteout converter): a whiteout becomes a
 * regular file of mode 0600 with the device's owner and times, the opaque
 * marker takes its directory's permissions, owner and times.
 *
 * Everything in the manifest is the tenant's: a name the consumer would
 * read as a whiteout is refused before a byte is written, never passed
 * on, so a hostile name cannot become a deletion on the consumer's side. */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "backup/backup-oci-tar.h"
#include "cleanup.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
/* Content is read and written in runs of this many store blocks. */
#define RUN_BLOCKS 16

/* overlayfs's whiteout: a character device 0:0.  A hard link of one (cowfs
 * links its whiteouts to one shared inode) is a whiteout too: the manifest
 * keeps the type and device number of link entries. */
static bool is_whiteout(const struct manifest_entry *e)
{
	return S_ISCHR(e->mode) && e->rdev == 0;
}

static bool xattr_is_opaque(const struct manifest_xattr *x)
{
	return (!strcmp(x->name, "trusted.overlay.opaque") || !strcmp(x->name, "user.overlay.opaque")) &&
	       x->len == 1 && ((const char *)x->value)[0] == 'y';
}

static bool is_opaque_dir(const struct manifest_entry *e)
{
	if (!S_ISDIR(e->mode))
		return false;
	for (uint32_t i = 0; i < e->nxattrs; i++)
		if (xattr_is_opaque(&e->xattrs[i]))
			return true;
	return false;
}

/* Layer metadata, not the tenant's: overlayfs's markers (both forms, as
 * cowfs reads both) and corral's partial-file record (both forms).  The
 * same set cowfs hides from the tenant (layer_is_private_xattr). */
static bool xattr_is_private(const char *name)
{
	return !strncmp(name, "trusted.overlay.", 16) || !strncmp(name, "user.overlay.", 13) ||
	       !strncmp(name, "trusted.corral.", 15) || !strncmp(name, "user.corral.", 12);
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* The tenant's bytes for a message the operator reads on a terminal:
 * anything but printable ASCII as \xHH, cut to fit. */
static const char *printable(const char *s, char *buf, size_t len)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p && o + 5 < len; p++) {
		if (*p >= ' ' && *p < 0x7f && *p != '\\')
			buf[o++] = (char)*p;
		else
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
	}
	buf[o] = '\0';
	return buf;
}

int backup_oci_tar_check(const struct manifest *m, struct corral_error *err)
{
	char pb[512], nb[300];
	for (size_t i = 0; i < m->n; i++) {
		const struct manifest_entry *e = &m->e[i];
		if (i == 0 && strcmp(e->path, "."))
			return err_plain(err, EINVAL, "the manifest does not begin with the root entry");
		/* Every component: a manifest's parents come before their
		 * children, but the check must not depend on it. */
		for (const char *c = e->path; c && *c; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL)
			if (!strncmp(c, WH_PREFIX, strlen(WH_PREFIX)))
				return err_plain(err, EINVAL,
						 "'/%s': a name beginning with \"" WH_PREFIX "\" cannot be "
						 "exported in an OCI layer (it would read as a whiteout); rename "
						 "or remove it in the container",
						 printable(e->path, pb, sizeof(pb)));
		if (e->link && (e->link > i || m->e[e->link - 1].link))
			return err_plain(err, EINVAL, "'/%s': hard link to a later or linked entry", e->path);
		for (uint32_t x = 0; x < e->nxattrs; x++) {
			const char *n = e->xattrs[x].name;
			if (xattr_is_private(n))
				continue;
			/* libarchive writes these bytes of a SCHILY.xattr key
			 * %-escaped, and the consumer would set the escaped
			 * name: refuse rather than export another name. */
			for (const unsigned char *p = (const unsigned char *)n; *p; p++)
				if (*p <= ' ' || *p >= 0x7f || *p == '=' || *p == '%')
					return err_plain(err, EINVAL,
							 "'/%s': xattr name '%s' cannot be exported in an OCI "
							 "layer as it is (a space, '=', '%%', a control or a "
							 "non-ASCII byte)",
							 printable(e->path, pb, sizeof(pb)),
							 printable(n, nb, sizeof(nb)));
		}
	}
	return 0;
}

/* ---- the writer ------------------------------------------------------------ */

struct tar_out {
	int fd;
	uint64_t bytes;
	int write_errno;	/* the write(2) failure, for the message */
};

static la_ssize_t out_write(struct archive *a, void *ctx, const void *buf, size_t len)
{
	struct tar_out *o = ctx;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(o->fd, (const char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			o->write_errno = n < 0 ? errno : EIO;
			archive_set_error(a, o->write_errno, "writing the layer: %s", strerror(o->write_errno));
			return -1;
		}
		done += (size_t)n;
	}
	o->bytes += len;
	return (la_ssize_t)len;
}

struct writer {
	struct archive *a;
	struct store *s;
	const struct manifest *m;
	struct tar_out out;
	struct backup_oci_result *res;
	struct corral_error *err;
	uint8_t *buf;		/* RUN_BLOCKS * STORE_BLOCK_SIZE */
};

static int archive_fail(struct writer *w, const char *what, const char *path)
{
	int code = archive_errno(w->a) > 0 ? archive_errno(w->a) : EIO;
	const char *msg = archive_error_string(w->a);
	return err_plain(w->err, code, "%s '/%s': %s", what, path, msg ? msg : "libarchive error");
}

static struct archive_entry *entry_new(struct writer *w, const char *path, const struct manifest_entry *e)
{
	struct archive_entry *ae = archive_entry_new();
	if (!ae) {
		err_set(w->err, ENOMEM, "tar entry");
		return NULL;
	}
	archive_entry_copy_pathname(ae, path);
	archive_entry_set_uid(ae, e->uid);
	archive_entry_set_gid(ae, e->gid);
	archive_entry_set_mtime(ae, e->mtime_sec, e->mtime_nsec);
	archive_entry_set_atime(ae, e->atime_sec, e->atime_nsec);
	return ae;
}

static int header(struct writer *w, struct archive_entry *ae, const char *path)
{
	int r = archive_write_header(w->a, ae);
	archive_entry_free(ae);
	if (r < ARCHIVE_WARN)
		return archive_fail(w, "writing the tar header of", path);
	w->res->entries++;
	return 0;
}

/* An empty regular file: a whiteout or an opaque marker. */
static int marker(struct writer *w, const char *path, const struct manifest_entry *e, mode_t perm)
{
	struct archive_entry *ae = entry_new(w, path, e);
	if (!ae)
		return -ENOMEM;
	archive_entry_set_filetype(ae, AE_IFREG);
	archive_entry_set_perm(ae, perm);
	archive_entry_set_size(ae, 0);
	return header(w, ae, path);
}

/* "DIR/PREFIXNAME" for entry path "DIR/NAME" (or "PREFIXNAME" at the top),
 * or "PATH/NAME" for a directory's marker; NULL on ENOMEM. */
static char *sibling_path(const char *path, const char *prefix)
{
	const char *base = base_name(path);
	size_t dirlen = (size_t)(base - path);
	size_t len = dirlen + strlen(prefix) + strlen(base) + 1;
	char *p = malloc(len);
	if (p)
		snprintf(p, len, "%.*s%s%s", (int)dirlen, path, prefix, base);
	return p;
}

static char *child_path(const char *dir, const char *name)
{
	size_t len = strlen(dir) + 1 + strlen(name) + 1;
	char *p = malloc(len);
	if (p)
		snprintf(p, len, "%s/%s", dir, name);
	return p;
}

static int add_xattrs(struct writer *w, struct archive_entry *ae, const struct manifest_entry *e)
{
	(void)w;
	for (uint32_t i = 0; i < e->nxattrs; i++) {
		const struct manifest_xattr *x = &e->xattrs[i];
		if (!xattr_is_private(x->name))
			archive_entry_xattr_add_entry(ae, x->name, x->value, x->len);
	}
	return 0;
}

/* A regular file's content from its recipe, RUN_BLOCKS blocks at a time. */
static int content(struct writer *w, const struct manifest_entry *e)
{
	struct store_recipe rec = { 0 };
	int r = store_get_recipe(w->s, &e->recipe, &rec, w->err);
	if (r < 0)
		return err_wrap(w->err, "the content of '/%s'", e->path);
	if (rec.size != e->size) {
		store_recipe_release(&rec);
		return err_plain(w->err, EBADMSG, "'/%s': its recipe holds %llu bytes, the manifest says %llu",
				 e->path, (unsigned long long)rec.size, (unsigned long long)e->size);
	}
	for (size_t b = 0; b < rec.n && r == 0;) {
		size_t n = rec.n - b < RUN_BLOCKS ? rec.n - b : RUN_BLOCKS, len = 0;
		for (size_t k = 0; k < n; k++)
			len += rec.e[b + k].len;
		r = store_get_blocks(w->s, rec.e + b, n, w->buf, w->err);
		if (r < 0) {
			err_wrap(w->err, "the content of '/%s'", e->path);
			break;
		}
		for (size_t done = 0; done < len;) {
			la_ssize_t got = archive_write_data(w->a, w->buf + done, len - done);
			if (got <= 0) {
				r = archive_fail(w, "writing the content of", e->path);
				break;
			}
			done += (size_t)got;
		}
		b += n;
	}
	store_recipe_release(&rec);
	return r;
}

static int write_entry(struct writer *w, size_t i)
{
	const struct manifest_entry *e = &w->m->e[i];
	const struct manifest_entry *t = e->link ? &w->m->e[e->link - 1] : e;
	if (is_whiteout(e) || is_whiteout(t)) {
		cleanup_free char *p = sibling_path(e->path, WH_PREFIX);
		return p ? marker(w, p, e, 0600) : err_set(w->err, ENOMEM, "tar entry");
	}
	if (S_ISSOCK(e->mode))
		return 0;	/* tar has no socket type; podman and docker skip them too */
	struct archive_entry *ae = entry_new(w, e->path, e);
	if (!ae)
		return -ENOMEM;
	archive_entry_set_mode(ae, e->mode);
	if (e->link) {
		/* The earlier path holds the content, owner and xattrs. */
		archive_entry_copy_hardlink(ae, t->path);
		archive_entry_set_size(ae, 0);
		return header(w, ae, e->path);
	}
	add_xattrs(w, ae, e);
	if (S_ISLNK(e->mode))
		archive_entry_copy_symlink(ae, e->target ? e->target : "");
	if (S_ISCHR(e->mode) || S_ISBLK(e->mode))
		archive_entry_set_rdev(ae, makedev(major((dev_t)e->rdev), minor((dev_t)e->rdev)));
	archive_entry_set_size(ae, S_ISREG(e->mode) ? (la_int64_t)e->size : 0);
	int r = header(w, ae, e->path);
	if (r == 0 && S_ISREG(e->mode))
		r = content(w, e);
	if (r == 0 && is_opaque_dir(e)) {
		cleanup_free char *p = child_path(e->path, WH_OPAQUE);
		r = p ? marker(w, p, e, e->mode & 07777) : err_set(w->err, ENOMEM, "tar entry");
	}
	return r;
}

int backup_oci_tar_write(struct store *s, const struct manifest *m, int out_fd, struct backup_oci_result *ret,
			 struct corral_error *err)
{
	memset(ret, 0, sizeof(*ret));
	int r = backup_oci_tar_check(m, err);
	if (r < 0)
		return r;
	struct writer w = { .s = s, .m = m, .out = { .fd = out_fd }, .res = ret, .err = err };
	w.buf = malloc((size_t)RUN_BLOCKS * STORE_BLOCK_SIZE);
	w.a = archive_write_new();
	if (!w.buf || !w.a) {
		free(w.buf);
		if (w.a)
			archive_write_free(w.a);
		return err_set(err, ENOMEM, "tar writer");
	}
	/* Full pax: every entry carries its atime and the mtime's
	 * nanoseconds; xattrs only as SCHILY.xattr.NAME, the form
	 * containers/storage (podman), docker and umoci read. */
	if (archive_write_set_format_pax(w.a) != ARCHIVE_OK ||
	    archive_write_set_format_option(w.a, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(w.a, 1) != ARCHIVE_OK)
		r = err_plain(err, EINVAL, "tar writer: %s", archive_error_string(w.a));
	if (r == 0 && archive_write_open2(w.a, &w.out, NULL, out_write, NULL, NULL) != ARCHIVE_OK)
		r = err_plain(err, w.out.write_errno ? w.out.write_errno : EIO, "tar writer: %s",
			      archive_error_string(w.a));
	/* The root's own entry is not written: applying it would change the
	 * image's root directory's mode, owner and times to the upper's,
	 * which corral made, not the tenant.  Its opaque marker, if it has
	 * one, is: the layer then hides the whole image below it. */
	if (r == 0 && m->n > 0 && is_opaque_dir(&m->e[0]))
		r = marker(&w, WH_OPAQUE, &m->e[0], m->e[0].mode & 07777);
	for (size_t i = 1; i < m->n && r == 0; i++)
		r = write_entry(&w, i);
	if (r == 0 && archive_write_close(w.a) != ARCHIVE_OK)
		r = archive_fail(&w, "finishing the tar after", m->n ? m->e[m->n - 1].path : ".");
	ret->bytes = w.out.bytes;
	/* After a failure, free must not close the archive: that would pad
	 * the entry cut short and append the end-of-archive blocks, turning
	 * a broken export into a tar that reads as whole. */
	if (r < 0)
		archive_write_fail(w.a);
	archive_write_free(w.a);
	free(w.buf);
	return r;
}
