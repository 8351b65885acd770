/* Which init a template boots (template.h: template_find_init). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "template.h"

/* `rel` below the tree at `rootfd`, symlinks followed as if the tree
 * were the root: an absolute link (Debian's /sbin/init ->
 * /lib/systemd/systemd) stays inside, ".." stops at the tree's top. */
static int open_in_root(int rootfd, const char *rel)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	int fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

int template_find_init(const char *rootfs, enum template_init *ret, bool *ret_has_inittab,
		       struct corral_error *err)
{
	cleanup_close int root = open(rootfs, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root < 0)
		return err_set(err, errno, "open template %s", rootfs);
	struct stat st;
	cleanup_close int tab = open_in_root(root, "etc/inittab");
	*ret_has_inittab = tab >= 0 && fstat(tab, &st) == 0 && S_ISREG(st.st_mode);
	*ret = TEMPLATE_INIT_NONE;
	cleanup_close int init = open_in_root(root, "sbin/init");
	if (init == -ENOENT || init == -ELOOP || init == -EXDEV || init == -ENOTDIR)
		return 0; /* none, or a link that leads nowhere in the tree */
	if (init < 0)
		return err_set(err, -init, "look up /sbin/init in %s", rootfs);
	if (fstat(init, &st) < 0)
		return err_set(err, errno, "stat /sbin/init in %s", rootfs);
	if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111))
		return 0;
	/* The name it resolved to, read from the descriptor (the kernel's
	 * path of the file found, not a link the tree could bend). */
	char self[64], path[4096];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", init);
	ssize_t n = readlink(self, path, sizeof(path) - 1);
	if (n < 0)
		return err_set(err, errno, "read the name of /sbin/init in %s", rootfs);
	path[n] = '\0';
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (!strcmp(base, "systemd"))
		*ret = TEMPLATE_INIT_SYSTEMD;
	else if (!strcmp(base, "busybox"))
		*ret = TEMPLATE_INIT_BUSYBOX;
	else
		*ret = TEMPLATE_INIT_OTHER;
	return 0;
}
