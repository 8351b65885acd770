/* Template imports that unpack archives (tar, OCI): built into the
 * corral-import helper only, so that corral itself does not load
 * libarchive and its dependencies (about 3 ms of every start). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "template-internal.h"
#include "template.h"

static int make_dir(struct tmpl_build *b, const char *name, mode_t mode, struct corral_error *err)
{
	if (mkdirat(b->dir_fd, name, mode) < 0)
		return err_set(err, errno, "create %s/%s", b->path, name);
	int fd = openat(b->dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno, "open %s/%s", b->path, name);
	return fd;
}

static int fill_tar(struct tmpl_build *b, const char *tarball, struct corral_error *err)
{
	cleanup_close int fd = open(tarball, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno, "open %s", tarball);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(err, errno, "stat %s", tarball);
	if (S_ISDIR(st.st_mode))
		return err_plain(err, EISDIR, "%s is a directory, not a tar archive", tarball);
	cleanup_close int rootfs = make_dir(b, TMPL_ROOTFS, 0755, err);
	if (rootfs < 0)
		return rootfs;
	struct tmpl_extract x = { .label = tarball };
	return tmpl_extract_tar(fd, rootfs, &x, err);
}

static int fill_oci(struct tmpl_build *b, const char *path, struct corral_error *err)
{
	cleanup_close int rootfs = make_dir(b, TMPL_ROOTFS, 0755, err);
	if (rootfs < 0)
		return rootfs;
	cleanup_close int work = make_dir(b, "image", 0700, err);
	if (work < 0)
		return work;
	int r = tmpl_oci_apply(path, rootfs, work, err);
	if (r < 0)
		return r;
	r = remove_tree_at(b->dir_fd, "image");
	if (r < 0)
		return err_set(err, -r, "remove the unpacked image in %s", b->path);
	return 0;
}

int template_import_tar(const char *root, const char *name, const char *tarball, struct corral_error *err)
{
	return tmpl_import(root, name, tarball, "tar", "tar", fill_tar, err);
}

int template_import_oci(const char *root, const char *name, const char *path, struct corral_error *err)
{
	return tmpl_import(root, name, path, "oci", "image", fill_oci, err);
}

