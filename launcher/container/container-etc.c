/* A container's /etc files, written at create (container-etc.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "container-etc.h"
#include "fileio.h"

static const char BUSYBOX_INITTAB[] =
	"# Written by corral create: busybox init as a container's PID 1.\n"
	"# A container has no consoles or virtual terminals: nothing is respawned.\n"
	"# corral stop sends SIGTERM (busybox init: reboot), which runs the\n"
	"# shutdown entries, ends every process and then the container.\n"
	"::sysinit:/bin/sh -c 'if [ -x /etc/init.d/rcS ]; then exec /etc/init.d/rcS; fi'\n"
	"::shutdown:/bin/sync\n";

int container_etc_resolv(const struct container_config *c, const char *host, char **ret)
{
	const char *why = NULL;
	if (c->net.mode == NET_NONE)
		why = "network none: the container has only its loopback, and no name server";
	else if (c->net.mode == NET_BRIDGE)
		why = "bridge: while the container runs, corral binds the bridge's resolver file here";
	else if (!host)
		why = "the host has no /etc/resolv.conf";
	if (why) {
		if (asprintf(ret, "# Written by corral create (%s).\n", why) < 0)
			return -ENOMEM;
		return 0;
	}
	/* host: the same network namespace, so the host's file as it is
	 * (a loopback resolver answers here too). */
	*ret = strdup(host);
	return *ret ? 0 : -ENOMEM;
}

static int openat_beneath(int dirfd, const char *name, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

static int commit(int etc, const char *name, const char *text, struct corral_error *err)
{
	int r = file_commit_at(etc, name, text, strlen(text), 0644, 0, NULL, NULL);
	if (r < 0)
		return err_set(err, -r, "write the container's /etc/%s", name);
	return 0;
}

/* The layer's etc/, made if missing with the mode and owner of the
 * template's (so the merged view shows the template's directory
 * unchanged); one that is there is left as it is. */
static int open_etc(const char *upper, const char *base, struct corral_error *err)
{
	cleanup_close int up = open(upper, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (up < 0)
		return err_set(err, errno, "open %s", upper);
	struct stat bst = { .st_mode = S_IFDIR | 0755 };
	cleanup_close int btree = open(base, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	cleanup_close int betc = btree < 0 ? -1 : openat_beneath(btree, "etc", O_PATH | O_DIRECTORY);
	if (betc >= 0 && fstat(betc, &bst) < 0)
		return err_set(err, errno, "stat the template's /etc");
	bool made = mkdirat(up, "etc", 0700) == 0;
	if (!made && errno != EEXIST)
		return err_set(err, errno, "create %s/etc", upper);
	int etc = openat_beneath(up, "etc", O_RDONLY | O_DIRECTORY);
	if (etc < 0)
		return err_set(err, -etc, "open %s/etc (a directory, no symlink on the way)", upper);
	if (made && (fchown(etc, bst.st_uid, bst.st_gid) < 0 || fchmod(etc, bst.st_mode & 07777) < 0)) {
		int e = errno;
		close(etc);
		return err_set(err, e, "set the owner and mode of %s/etc", upper);
	}
	return etc;
}

static int write_names(int etc, const struct container_config *c, struct corral_error *err)
{
	const char *hn = c->hostname[0] ? c->hostname : c->name;
	char text[512];
	snprintf(text, sizeof(text), "%s\n", hn);
	int r = commit(etc, "hostname", text, err);
	if (r < 0)
		return r;
	snprintf(text, sizeof(text),
		 "127.0.0.1\tlocalhost\n127.0.1.1\t%s\n\n"
		 "::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n",
		 hn);
	return commit(etc, "hosts", text, err);
}

int container_etc_write_names(const char *upper, const char *base, const struct container_config *c,
			      struct corral_error *err)
{
	cleanup_close int etc = open_etc(upper, base, err);
	if (etc < 0)
		return etc;
	return write_names(etc, c, err);
}

int container_etc_write(const char *upper, const char *base, const struct container_config *c,
			bool busybox_inittab, struct corral_error *err)
{
	cleanup_close int etc = open_etc(upper, base, err);
	if (etc < 0)
		return etc;
	int r = write_names(etc, c, err);
	if (r < 0)
		return r;
	cleanup_free char *host = NULL;
	size_t len;
	if (c->net.mode != NET_NONE && file_read_all("/etc/resolv.conf", &host, &len, NULL) < 0)
		host = NULL;
	cleanup_free char *resolv = NULL;
	r = container_etc_resolv(c, host, &resolv);
	if (r < 0)
		return err_set(err, -r, "make the container's /etc/resolv.conf");
	r = commit(etc, "resolv.conf", resolv, err);
	if (r == 0 && busybox_inittab)
		r = commit(etc, "inittab", BUSYBOX_INITTAB, err);
	return r;
}
