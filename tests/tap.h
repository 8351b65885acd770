/* tap.h - minimal Test Anything Protocol output for C test programs.
 *
 * Header-only.  Usage:
 *
 *	tap_plan(3);                 (optional; otherwise tap_done() prints it)
 *	ok(x == 1, "x is %d", 1);    prints "ok 1 - x is 1" or "not ok 1 - ..."
 *	diag("got %d", x);           prints "# got 1"
 *	skip("no support", "feature %s", "y");   prints "ok 2 # SKIP no support"
 *	return tap_done();           trailing plan, exit status 0 iff all passed
 *
 * ok() and diag() keep errno unchanged, so a failing check can still
 * report strerror(errno) of the call it was testing afterwards.
 */
#ifndef CORRAL_TAP_H
#define CORRAL_TAP_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

/* Weak definitions: a test program split over several files shares one
 * set of counters. */
int tap_count_ __attribute__((weak));
int tap_failures_ __attribute__((weak));
int tap_planned_ __attribute__((weak)) = -1;

static inline void tap_plan(int n)
{
	tap_planned_ = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

static inline void tap_vdiag_(const char *fmt, va_list ap)
{
	fputs("# ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
}

__attribute__((format(printf, 1, 2)))
static inline void diag(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	tap_vdiag_(fmt, ap);
	va_end(ap);
	errno = saved;
}

__attribute__((format(printf, 4, 5)))
static inline bool tap_ok_(bool cond, const char *file, int line,
			   const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	tap_count_++;
	printf("%sok %d - ", cond ? "" : "not ", tap_count_);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	if (!cond) {
		tap_failures_++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	errno = saved;
	return cond;
}

#define ok(cond, ...) tap_ok_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* A skipped check counts as passed; the reason follows "# SKIP". */
__attribute__((format(printf, 2, 3)))
static inline void skip(const char *reason, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	tap_count_++;
	printf("ok %d - ", tap_count_);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", reason);
	fflush(stdout);
	errno = saved;
}

__attribute__((format(printf, 1, 2)))
static inline void tap_bail(const char *fmt, ...)
{
	va_list ap;

	fputs("Bail out! ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/* Prints the trailing plan if none was given; returns the exit status. */
static inline int tap_done(void)
{
	if (tap_planned_ < 0) {
		printf("1..%d\n", tap_count_);
	} else if (tap_planned_ != tap_count_) {
		printf("# planned %d checks but ran %d\n", tap_planned_,
		       tap_count_);
		fflush(stdout);
		return 1;
	}
	if (tap_failures_)
		printf("# failed %d of %d checks\n", tap_failures_, tap_count_);
	fflush(stdout);
	return tap_failures_ ? 1 : 0;
}

#endif /* CORRAL_TAP_H */
