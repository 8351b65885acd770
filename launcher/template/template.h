/* Templates: read-only root trees that containers are created from.
 *
 * Stored at <state-root>/templates/<name>/rootfs with a readable
 * <state-root>/templates/<name>/template.conf (key = value lines: source,
 * kind, created).  Every import builds into a temporary directory beside
 * the final one and renames it into place: an interrupted import leaves
 * nothing half-made under the final name.
 *
 * Module template.  Owns: <root>/templates/ (each template's rootfs and
 * template.conf, and the temporary build directories beside them) and the
 * rule for template and container names.  The archive importers live in
 * libtemplate-archive, linked only by corral-import.
 * May call: net, security, cgroup, store, common. */
#ifndef CORRAL_TEMPLATE_H
#define CORRAL_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define TEMPLATE_DEFAULT "default"

/* The longest template or container name, in characters (buffers hold
 * CORRAL_NAME_MAX + 1 bytes).  Container names also name host-wide
 * resources (state.h: state_instance_name). */
#define CORRAL_NAME_MAX 64

/* Valid template/container names: [A-Za-z0-9][A-Za-z0-9_.-]{0,63}, no "..". */
int name_validate(const char *kind, const char *name, struct corral_error *err);

int template_import_dir(const char *root, const char *name, const char *dir, struct corral_error *err);
/* Plain, gzip, xz or zstd tar (detected from content, not the file name). */
int template_import_tar(const char *root, const char *name, const char *tarball, struct corral_error *err);
/* debootstrap SUITE into a new template.  mirror: NULL for the one apt
 * already uses.  variant: NULL for minbase; else one of debootstrap's,
 * "minbase", "buildd" or "default" (debootstrap's own default set: no
 * --variant); fakechroot is refused (it is for non-root users under
 * fakechroot).  include: NULL, or Debian package names
 * ([a-z0-9][a-z0-9+.-]*) separated by commas, passed as --include. */
struct template_debootstrap {
	const char *suite, *mirror, *variant, *include;
};
int template_import_debootstrap(const char *root, const char *name, const struct template_debootstrap *d,
				struct corral_error *err);
/* The checks template_import_debootstrap makes on variant and include,
 * each naming the bad value and why. */
int template_debootstrap_validate(const struct template_debootstrap *d, struct corral_error *err);
/* An OCI image layout directory, or a `podman save` docker-archive tar;
 * layers applied in order with their whiteouts (.wh.NAME, .wh..wh..opq). */
int template_import_oci(const char *root, const char *name, const char *path, struct corral_error *err);
/* What a template boots as PID 1: its /sbin/init, resolved inside the
 * tree (openat2 RESOLVE_IN_ROOT: a symlink, absolute or relative, is
 * followed as if the tree were /, never out of it), a regular executable
 * file.  Told apart by the name it resolves to: "systemd", "busybox", or
 * any other init (sysvinit's is a file of its own).  has_inittab: the tree
 * has /etc/inittab (busybox init without one runs shells on consoles a
 * container does not have). */
enum template_init { TEMPLATE_INIT_NONE, TEMPLATE_INIT_SYSTEMD, TEMPLATE_INIT_BUSYBOX, TEMPLATE_INIT_OTHER };
int template_find_init(const char *rootfs, enum template_init *ret, bool *ret_has_inittab,
		       struct corral_error *err);

/* The built-in default template (busybox-static), made on first use. */
int template_ensure_default(const char *root, struct corral_error *err);
/* Path of the template's rootfs into buf; -ENOENT if it does not exist. */
int template_rootfs(const char *root, const char *name, char *buf, size_t len, struct corral_error *err);
/* The template's identity (template-digest.c): an unseeded XXH3-128 of its
 * rootfs tree (paths, types, modes, owners, sizes, links, rdevs, symlink
 * targets, xattrs, content; not times), cached in
 * <root>/templates/NAME/digest. */
int template_digest(const char *root, const char *name, uint8_t out[16], struct corral_error *err);
/* Refused (-EBUSY) while any container's config names the template. */
int template_remove(const char *root, const char *name, struct corral_error *err);

struct template_info {
	char name[CORRAL_NAME_MAX + 1];
	char kind[32];
	char source[512];
	char created[32];
};
/* Lists templates (caller frees *ret). */
int template_list(const char *root, struct template_info **ret, size_t *count, struct corral_error *err);

#endif
