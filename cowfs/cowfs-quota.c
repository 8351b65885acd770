/* Disk quota and id shifting.
 *
 * Quota: the upper layer's usage (allocated bytes, inodes) is counted once
 * at mount and kept up to date by every operation that allocates or frees
 * in the upper; an operation that would pass the limit fails with EDQUOT
 * before it changes anything.  statfs reports the quota, so `df` inside a
 * container shows its own limit.
 *
 * Id shift: a container in a user namespace maps its root to an
 * unprivileged host uid (say 100000).  The template on disk is owned by 0,
 * so cowfs presents every on-disk id as id + base and stores caller ids as
 * id - base: inside the container, files keep their ordinary owners. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cowfs.h"
#include "fileio.h"

int quota_scan_upper(struct cowfs *fs)
{
	int64_t bytes = 0, inodes = 0;
	int fd = openat(fs->layers[0].root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	tree_usage(fd, &bytes, &inodes);
	atomic_store(&fs->used_bytes, bytes);
	atomic_store(&fs->used_inodes, inodes);
	return 0;
}

int quota_check(struct cowfs *fs, int64_t bytes, int64_t inodes)
{
	if (fs->quota_bytes && bytes > 0 && atomic_load(&fs->used_bytes) + bytes > (int64_t)fs->quota_bytes)
		return -EDQUOT;
	if (fs->quota_inodes && inodes > 0 && atomic_load(&fs->used_inodes) + inodes > (int64_t)fs->quota_inodes)
		return -EDQUOT;
	return 0;
}

void quota_charge(struct cowfs *fs, int64_t bytes, int64_t inodes)
{
	if (!fs->quota_bytes && !fs->quota_inodes)
		return;
	atomic_fetch_add(&fs->used_bytes, bytes);
	atomic_fetch_add(&fs->used_inodes, inodes);
}

void idshift_present(const struct cowfs *fs, struct stat *st)
{
	if (!fs->idshift_size)
		return;
	/* Ids beyond the range have no name inside: show them as nobody. */
	uid_t u = st->st_uid < fs->idshift_size ? st->st_uid : 65534;
	gid_t g = st->st_gid < fs->idshift_size ? st->st_gid : 65534;
	st->st_uid = fs->idshift_base + u;
	st->st_gid = fs->idshift_base + g;
}

static int unshift(const struct cowfs *fs, uint32_t id, uint32_t *ret)
{
	if (!fs->idshift_size) {
		*ret = id;
		return 0;
	}
	if (id < fs->idshift_base || id - fs->idshift_base >= fs->idshift_size)
		return -EINVAL;
	*ret = id - fs->idshift_base;
	return 0;
}

int idshift_store_uid(const struct cowfs *fs, uid_t id, uid_t *ret)
{
	return unshift(fs, id, ret);
}

int idshift_store_gid(const struct cowfs *fs, gid_t id, gid_t *ret)
{
	return unshift(fs, id, ret);
}
