/* Scoped cleanup helpers shared by every corral component.
 *
 * Invariant: a variable declared with one of these attributes owns its
 * resource until it goes out of scope, unless ownership is handed on with
 * take_ptr()/take_fd(), which return the value and reset the variable.
 *
 * Module common (the bottom layer, which every component may call).
 * May call: no other module (libc only). */
#ifndef CORRAL_CLEANUP_H
#define CORRAL_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cleanup_freep(void *p)
{
	free(*(void **)p);
}

static inline void cleanup_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void cleanup_closedirp(DIR **d)
{
	if (*d) {
		int saved = errno;
		closedir(*d);
		errno = saved;
	}
}

#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))
#define cleanup_dir __attribute__((cleanup(cleanup_closedirp)))

#define take_ptr(p) ({ __typeof__(p) _tmp = (p); (p) = NULL; _tmp; })
#define take_fd(fd) ({ int _tmp = (fd); (fd) = -1; _tmp; })

/* Convert a -1/errno syscall result to -errno at the call site. */
#define NEG_ERRNO(expr) ({ __typeof__(expr) _r = (expr); _r < 0 ? -errno : (int)_r; })

#endif
