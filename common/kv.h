/* "key = value" files (a container's config and state, template.conf) and
 * strict numbers.  The project's one reader of that format: use it, never
 * a second parser.
 *
 * The format, as every writer in the tree produces it:
 *  - one entry per line (lines end at '\n'; line numbers count every line);
 *  - blanks (spaces, tabs) before the key are ignored; a line that is
 *    empty after them, or whose first character is '#', is skipped;
 *  - the key is one or more of A-Z a-z 0-9 _ . -, followed by exactly
 *    " = "; the value is the rest of the line, raw: leading and trailing
 *    blanks belong to it (a command argument may hold them), it may be
 *    empty ("key = ") and may contain " = ";
 *  - a NUL byte anywhere is an error (no writer makes one).
 * Anything else is an error naming the file and the line.
 *
 * Numbers are strict: decimal digits only (a '-' first for the signed
 * kind), at least one, nothing before or after; no '+', no blanks, no
 * base prefixes.  Empty, junk, a sign where unsigned, and overflow are all
 * errors.  The kv_* helpers name the key in the message; kv_parse puts
 * "file:line" in front of any error the callback returns.
 *
 * Module common (the bottom layer, which every component may call).
 * May call: no other module (libc only). */
#ifndef CORRAL_KV_H
#define CORRAL_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct kv_line {
	const char *key;
	char *value;		/* the caller's text: may be modified */
	unsigned line;		/* 1-based */
};

/* Returns 0, or <0 with err filled (it is wrapped with "what:line"). */
typedef int (*kv_fn)(const struct kv_line *kv, void *arg, struct corral_error *err);

/* Parses text[0..len) (modified in place; text[len] must be '\0') and
 * calls fn for each entry in order; stops at the first error.  `what`
 * names the file in errors.  -EINVAL for a malformed line. */
int kv_parse(char *text, size_t len, const char *what, kv_fn fn, void *arg, struct corral_error *err);

/* Plain parsers: 0, -EINVAL (empty, junk, sign) or -ERANGE (overflow). */
int parse_u64(const char *s, uint64_t *ret);
int parse_i64(const char *s, int64_t *ret);
/* parse_u64 and at most max. */
int parse_u64_max(const char *s, uint64_t max, uint64_t *ret);

/* The same for a kv_line's value, the key named in err on failure;
 * *ret is untouched then. */
int kv_u64(const struct kv_line *kv, uint64_t *ret, struct corral_error *err);
int kv_i64(const struct kv_line *kv, int64_t *ret, struct corral_error *err);
int kv_u32(const struct kv_line *kv, uint32_t *ret, struct corral_error *err);
/* A value of int's range (possibly negative). */
int kv_int(const struct kv_line *kv, int *ret, struct corral_error *err);
/* A pid as stored: 0 (none) up to INT_MAX. */
int kv_pid(const struct kv_line *kv, int *ret, struct corral_error *err);
/* "yes" or "no". */
int kv_bool(const struct kv_line *kv, bool *ret, struct corral_error *err);
/* A string that must fit in len bytes with its NUL. */
int kv_str(const struct kv_line *kv, char *buf, size_t len, struct corral_error *err);

#endif
