/* The console log of a detached container: <root>/containers/NAME/console.log.
 *
 * The container never writes to the host file itself: its stdout and
 * stderr are a pipe that the monitor relays into the log.  The log is
 * bounded: when the next write would take console.log past its size, it
 * is renamed to console.log.1 (replacing the previous one) and a new
 * console.log is started, so the two together never exceed twice the size
 * and the latest output is always in console.log (as LXC's console.logsize
 * with rotation).  A container writing without end costs the host at most
 * that much disk, and is slowed to the monitor's pace, never stopped.
 *
 * Module start (see start.h).  Owns: console.log and console.log.1; the
 * size bounds live with the config's console_size (container-config.h).
 * May call: container, template, net, security, cgroup, store, common. */
#ifndef CORRAL_CONSOLE_LOG_H
#define CORRAL_CONSOLE_LOG_H

#include <stdint.h>

/* `corral attach`: while it relays, the monitor listens on
 * <container>/console.sock (mode 0600 in the 0700 container directory)
 * for up to CONSOLE_ATTACH_MAX clients.  Each gets the console's output
 * from the moment it attaches (the log has what came before); a client
 * that cannot take output at once is dropped, so none slows the
 * container.  On a pty console (a booting container) what clients send
 * is written to the console, as much as the pty takes at once; a
 * container whose output is a pipe has no input.  Clients see EOF when
 * the console ends; the socket is removed then. */
#define CONSOLE_ATTACH_MAX 4
#define CONSOLE_SOCK "console.sock"

/* Relays everything read from `fd` into the log at `path` until end of
 * file (every writer in the container is gone).  Errors writing the log
 * drop output rather than block the container.  sock_path: where clients
 * attach (NULL: nowhere). */
void console_log_relay(int fd, const char *path, uint64_t max_size, const char *sock_path);
/* A booting container's console (a pty master: its init opens and closes
 * /dev/console as it likes, so EOF never comes while the monitor holds a
 * slave): relays until the init behind `pidfd` has exited, then what is
 * left. */
void console_log_relay_pty(int master, int pidfd, const char *path, uint64_t max_size, const char *sock_path);

#endif
