#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static int err_vset(struct corral_error *err, int code, bool with_strerror, const char *fmt, va_list ap)
{
	if (code <= 0)
		code = code < 0 ? -code : EIO;
	if (!err)
		return -code;
	err->code = code;
	err->exit_status = 0;
	int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	if (with_strerror && n >= 0 && (size_t)n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(code));
	return -code;
}

int err_set(struct corral_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = err_vset(err, code, true, fmt, ap);
	va_end(ap);
	return r;
}

int err_plain(struct corral_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = err_vset(err, code, false, fmt, ap);
	va_end(ap);
	return r;
}

int err_wrap(struct corral_error *err, const char *fmt, ...)
{
	char prefix[512], old[sizeof(err->msg)];
	va_list ap;
	if (!err)
		return -EIO;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%.500s: %.500s", prefix, old);
	return -(err->code ? err->code : EIO);
}
