/* Error out-struct for code whose failures need context (launcher, CLI).
 *
 * Functions return int (<0 is -errno) and, on failure, fill `err` with a
 * message saying what failed and where.  Callers add context on the way up
 * with err_wrap().  err may be NULL when the caller does not want text.
 *
 * Module common (the bottom layer, which every component may call).
 * May call: no other module (libc only). */
#ifndef CORRAL_ERROR_H
#define CORRAL_ERROR_H

struct corral_error {
	int code;	/* positive errno, 0 = no error */
	char msg[1024];
	/* 127 (not found) or 126 (found, not executable) when the failure is
	 * a command that could not be run, as a shell exits; else 0.  The
	 * CLI exits with it (podman's and docker's convention). */
	int exit_status;
};

/* Sets err and returns -code.  fmt describes what failed; when code comes
 * from a syscall its strerror text is appended. */
int err_set(struct corral_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Like err_set, without appending strerror (for validation errors). */
int err_plain(struct corral_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefixes "context: " to the message already in err; returns -err->code. */
int err_wrap(struct corral_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
