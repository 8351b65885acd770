/* `corral exec --user`: who the command runs as, resolved in the
 * container's own /etc/passwd and /etc/group -- never the host's.
 *
 * Module start. */
#ifndef CORRAL_EXEC_USER_H
#define CORRAL_EXEC_USER_H

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

#endif
