/* Clearing setuid and setgid on write, truncation and open with O_TRUNC.
 *
 * With FUSE_CAP_HANDLE_KILLPRIV_V2 the kernel leaves this to the daemon
 * (in exchange it stops asking for security.capability before every
 * write).  Without it, the kernel still leaves two cases to the daemon: an
 * open with O_TRUNC, and setgid without group execute (its FUSE code knows
 * only the older rule).  The daemon has CAP_FSETID, so the upper filesystem keeps the
 * bits on the daemon's own writes: they are cleared here, by the VFS's
 * rule (should_remove_suid / setattr_should_drop_sgid): for a caller
 * without CAP_FSETID, setuid always, setgid when the file is group
 * executable or the caller is not in the file's group.
 *
 * security.capability needs nothing here: the upper filesystem drops it on
 * every write, truncation and chown, whoever makes them. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cowfs.h"
#include "cowfs-file.h"

#define CAP_FSETID_BIT 4

struct caller_creds {
	bool fsetid;	/* CAP_FSETID effective */
	bool in_group;	/* fsgid or a supplementary group is `gid` */
};

/* What /proc says of the caller; false if it cannot be read (the caller
 * has gone, or is not visible from the daemon's pid namespace: pid 0):
 * then it counts as unprivileged and outside the group, so the bits are
 * cleared, the safe side.  The caller waits in its system call for the
 * answer to this request, so its pid cannot be reused meanwhile. */
static bool caller_creds(const struct fuse_ctx *ctx, gid_t gid, struct caller_creds *c)
{
	char path[64];
	c->fsetid = false;
	c->in_group = ctx->gid == gid;
	if (ctx->pid <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)ctx->pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "CapEff:", 7) == 0) {
			unsigned long long caps = strtoull(line + 7, NULL, 16);
			c->fsetid = (caps >> CAP_FSETID_BIT) & 1;
		} else if (strncmp(line, "Groups:", 7) == 0) {
			char *p = line + 7, *end;
			for (;;) {
				unsigned long g = strtoul(p, &end, 10);
				if (end == p)
					break;
				if ((gid_t)g == gid)
					c->in_group = true;
				p = end;
			}
		}
	}
	fclose(f);
	return true;
}

int cowfs_kill_suidgid(fuse_req_t req, struct cowfs *fs, struct cowfs_node *n, int fd, bool check_caps)
{
	struct stat st;
	int r = cowfs_node_stat(fs, n, &st); /* gid as the kernel shows it */
	if (r < 0)
		return r;
	mode_t mode = st.st_mode & 07777;
	if (!S_ISREG(st.st_mode) || !(mode & (S_ISUID | S_ISGID)))
		return 0;
	bool group_exec = mode & S_IXGRP;
	struct caller_creds c = { 0 };
	if (check_caps || ((mode & S_ISGID) && !group_exec))
		caller_creds(fuse_req_ctx(req), st.st_gid, &c);
	if (check_caps && c.fsetid)
		return 0;
	mode &= ~S_ISUID;
	if ((mode & S_ISGID) && (group_exec || !c.in_group))
		mode &= ~S_ISGID;
	if (mode == (st.st_mode & 07777))
		return 0;
	if (fd >= 0)
		return fchmod(fd, mode) < 0 ? -errno : 1;
	char path[64];
	fd_path(path, node_fd(n));
	return chmod(path, mode) < 0 ? -errno : 1;
}
