/* corral rename OLD NEW: a stopped container takes another name.
 *
 * What carries the name: its directory <root>/containers/OLD (config,
 * layers, logs), the config's name, its store root container.OLD (which
 * keeps its files' blocks from the store's GC), its user namespace lease,
 * and -- when its hostname is the default, its name -- /etc/hostname and
 * /etc/hosts in its layer, rewritten as a clone's are.  Its snapshots are
 * store roots snapshot.OLD.TAG that backups and clones refer to by name:
 * a container that has any is refused (remove them, or clone it to the
 * new name).
 *
 * Order, so that a failure at any step leaves OLD whole: a copy of the
 * store root under the new name first (a harmless extra if we stop
 * there), then the one atomic step, the directory's rename
 * (RENAME_NOREPLACE), then the config inside it and the user namespace
 * lease (both put back, and the directory renamed back, if either
 * fails); the old store root goes last. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "container/container-config.h"
#include "container/container-etc.h"
#include "container/state.h"
#include "container/userns-range.h"
#include "start.h"
#include "store/store.h"

/* The store, or NULL when no container ever used it (nothing to move). */
static int open_store(struct store **ret, struct corral_error *err)
{
	char dir[PATH_MAX];
	int r = state_store_dir(dir, sizeof(dir), err);
	*ret = NULL;
	if (r < 0)
		return r;
	if (access(dir, F_OK) < 0 && errno == ENOENT)
		return 0;
	return store_open(dir, 0, ret, err);
}

static int count_snapshots(struct store *s, const char *name, size_t *ret, struct corral_error *err)
{
	char **roots;
	size_t n, prefix_len;
	char prefix[CORRAL_NAME_MAX + 16];
	*ret = 0;
	if (!s)
		return 0;
	prefix_len = (size_t)snprintf(prefix, sizeof(prefix), "snapshot.%s.", name);
	int r = store_root_list(s, &roots, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (!strncmp(roots[i], prefix, prefix_len))
			(*ret)++;
		free(roots[i]);
	}
	free(roots);
	return 0;
}

/* container.OLD copied to container.NEW; *ret_copied says whether there
 * was one (a --no-store container, or one never started, has none). */
static int copy_store_root(struct store *s, const char *from, const char *to, bool *ret_copied,
			   struct corral_error *err)
{
	char a[CORRAL_NAME_MAX + 32], b[CORRAL_NAME_MAX + 32];
	struct store_root root = { 0 };
	*ret_copied = false;
	if (!s)
		return 0;
	int r = state_store_root(a, sizeof(a), from, err);
	if (r == 0)
		r = state_store_root(b, sizeof(b), to, err);
	if (r < 0)
		return r;
	struct corral_error rerr = { 0 };
	r = store_root_read(s, a, &root, &rerr);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		if (err)
			*err = rerr;
		return r;
	}
	r = store_begin(s, err);
	if (r == 0) {
		r = store_root_commit(s, b, &root, err);
		store_end(s);
	}
	store_root_release(&root);
	*ret_copied = r == 0;
	return r;
}

static void drop_store_root(struct store *s, const char *name)
{
	char root[CORRAL_NAME_MAX + 32];
	if (s && state_store_root(root, sizeof(root), name, NULL) == 0)
		store_root_remove(s, root, NULL);
}

int container_rename(const char *from, const char *to, struct corral_error *err)
{
	char odir[PATH_MAX], ndir[PATH_MAX], cfg[PATH_MAX];
	struct container_state st;
	struct container_config c;
	int r;

	if ((r = name_validate("container", from, err)) < 0 || (r = name_validate("container", to, err)) < 0)
		return r;
	if (!strcmp(from, to))
		return err_plain(err, EINVAL, "container %s already has that name", from);
	if ((r = state_path(odir, sizeof(odir), from, NULL, err)) < 0 ||
	    (r = state_path(ndir, sizeof(ndir), to, NULL, err)) < 0 ||
	    (r = state_path(cfg, sizeof(cfg), from, "config", err)) < 0)
		return r;
	if (access(odir, F_OK) < 0)
		return err_plain(err, ENOENT, "no such container: %s", from);
	if (access(ndir, F_OK) == 0)
		return err_plain(err, EEXIST, "a container named %s exists already", to);
	/* Held across the checks and the move: no start, rollback or
	 * teardown of OLD runs in between.  The lock file moves with the
	 * directory. */
	cleanup_close int lock = state_lock_container(from);
	if (lock < 0)
		return err_set(err, -lock, "lock container %s", from);
	if (state_load(from, &st, NULL) == 0 && (state_init_alive(&st) || state_cowfs_alive(&st)))
		return err_plain(err, EBUSY, "container %s is running: stop it first", from);
	if ((r = config_load(cfg, &c, err)) < 0)
		return r;

	struct store *s = NULL;
	size_t snaps = 0;
	bool copied = false;
	r = open_store(&s, err);
	if (r == 0)
		r = count_snapshots(s, from, &snaps, err);
	if (r == 0 && snaps)
		r = err_plain(err, EBUSY, "container %s has %zu snapshot%s named after it: remove %s "
			      "(corral snapshot rm) or clone it to the new name (corral clone %s %s)",
			      from, snaps, snaps == 1 ? "" : "s", snaps == 1 ? "it" : "them", from, to);
	if (r == 0)
		r = copy_store_root(s, from, to, &copied, err);
	if (r == 0 && renameat2(AT_FDCWD, odir, AT_FDCWD, ndir, RENAME_NOREPLACE) < 0)
		r = err_set(err, errno, "rename %s to %s", odir, ndir);
	else if (r == 0) {
		bool default_hostname = !c.hostname[0] || !strcmp(c.hostname, from);
		snprintf(c.name, sizeof(c.name), "%s", to);
		if (c.hostname[0] && default_hostname)
			snprintf(c.hostname, sizeof(c.hostname), "%s", to);
		char ncfg[PATH_MAX];
		r = state_path(ncfg, sizeof(ncfg), to, "config", err);
		if (r == 0)
			r = config_save(&c, ncfg, err);
		if (r == 0 && c.userns) {
			/* Its own range under the new name.  Only now: a
			 * claim checks the configs of every other directory
			 * of the root, and OLD's held the same range.  OLD's
			 * lease goes first (it overlaps) and comes back if
			 * the claim fails. */
			userns_range_release(state_root(), from, NULL);
			r = userns_range_claim(state_root(), to, false, &c.userns_base, &c.userns_size, NULL, err);
			if (r < 0) {
				snprintf(c.name, sizeof(c.name), "%s", from);
				if (default_hostname && c.hostname[0])
					snprintf(c.hostname, sizeof(c.hostname), "%s", from);
				config_save(&c, ncfg, NULL);
			}
		}
		if (r < 0) {
			if (renameat2(AT_FDCWD, ndir, AT_FDCWD, odir, RENAME_NOREPLACE) == 0 && c.userns)
				userns_range_claim(state_root(), from, false, &c.userns_base, &c.userns_size, NULL,
						   NULL);
		} else if (default_hostname) {
			/* Its layer's files are the container's: a failure
			 * here leaves the old name in them, not a broken
			 * container. */
			char upper[PATH_MAX], base[PATH_MAX];
			if (state_path(upper, sizeof(upper), to, "upper", NULL) == 0 &&
			    template_rootfs(state_root(), c.template_name, base, sizeof(base), NULL) == 0)
				container_etc_write_names(upper, base, &c, NULL);
		}
	}
	if (r < 0) {
		if (copied)
			drop_store_root(s, to);
	} else
		drop_store_root(s, from);
	if (s)
		store_close(s);
	config_release(&c);
	return r < 0 ? err_wrap(err, "rename container %s to %s", from, to) : 0;
}
