/* How a container's command runs (exec, and run's command): who as --
 * --user, resolved in the container's own /etc/passwd and /etc/group,
 * never the host's -- and with what environment.
 *
 * Module start.
 * May call: container, template, net, security, cgroup, store, common. */
#ifndef CORRAL_EXEC_USER_H
#define CORRAL_EXEC_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* The most of /etc/passwd or /etc/group that is read: the files are the
 * tenant's, and a bigger one is refused rather than read without end. */
#define EXEC_USER_FILE_MAX (4u << 20)

/* spec is UID[:GID] or NAME[:GROUP] (numbers, or names looked up in the
 * files under root_fd, a directory fd of the container's root).  A user
 * without a group gets its passwd entry's group, else 0; *home is its
 * home directory ("/" if not known).  The files are opened beneath
 * root_fd without following any symlink, must be regular files of at
 * most EXEC_USER_FILE_MAX bytes, and are parsed defensively (an entry
 * that is not name:x:id:... is skipped).  -errno with err filled. */
int exec_user_resolve(int root_fd, const char *spec, uid_t *uid, gid_t *gid, char *home, size_t home_len,
		      struct corral_error *err);

/* In the container ("/" its root: after pivot_root or the setns of its
 * mount namespace), with CAP_SETUID/CAP_SETGID: resolves spec as above
 * and becomes that user, with no supplementary groups; *home as above. */
int exec_user_become(const char *spec, char *home, size_t home_len, struct corral_error *err);

/* The command's environment (NULL-terminated; static strings and the
 * extra ones, the array malloc'ed): PATH, HOME=home, container=corral,
 * HOSTNAME (when hostname), TERM with a terminal (the caller's, else
 * xterm), then extra K=V, a key given again replacing the earlier one.
 * NULL with err filled on an entry without '=' or no memory.  The extra
 * strings are copied; nothing is freed (the caller execs). */
char **command_env(const char *hostname, bool tty, const char *home, char *const *extra, size_t nextra,
		   struct corral_error *err);

#endif
