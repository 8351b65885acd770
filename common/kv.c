/* The "key = value" reader and strict numbers (kv.h states the format). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "kv.h"

static bool key_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
	       c == '-';
}

int kv_parse(char *text, size_t len, const char *what, kv_fn fn, void *arg, struct corral_error *err)
{
	char *end = text + len;
	unsigned line = 0;
	for (char *l = text; l < end;) {
		char *nl = memchr(l, '\n', end - l);
		char *eol = nl ? nl : end;
		line++;
		if (memchr(l, '\0', eol - l))
			return err_plain(err, EINVAL, "%s:%u: a NUL byte in the line", what, line);
		*eol = '\0';
		while (*l == ' ' || *l == '\t')
			l++;
		if (*l && *l != '#') {
			char *k = l;
			while (key_char(*l))
				l++;
			if (l == k || strncmp(l, " = ", 3))
				return err_plain(err, EINVAL, "%s:%u: expected 'key = value', got '%.200s'", what, line, k);
			*l = '\0';
			struct kv_line kv = { .key = k, .value = l + 3, .line = line };
			int r = fn(&kv, arg, err);
			if (r < 0)
				return err ? err_wrap(err, "%s:%u", what, line) : r;
		}
		l = eol + 1;
	}
	return 0;
}

/* ---- numbers -------------------------------------------------------------- */

int parse_u64(const char *s, uint64_t *ret)
{
	if (!*s)
		return -EINVAL;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

int parse_u64_max(const char *s, uint64_t max, uint64_t *ret)
{
	uint64_t v;
	int r = parse_u64(s, &v);
	if (r < 0)
		return r;
	if (v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int parse_i64(const char *s, int64_t *ret)
{
	bool neg = *s == '-';
	uint64_t v;
	int r = parse_u64(s + neg, &v);
	if (r < 0)
		return r;
	if (v > (uint64_t)INT64_MAX + neg)
		return -ERANGE;
	*ret = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

static int bad_number(const struct kv_line *kv, int r, const char *want, struct corral_error *err)
{
	if (r == -ERANGE)
		return err_plain(err, ERANGE, "%s: '%.100s' is out of range (%s)", kv->key, kv->value, want);
	return err_plain(err, EINVAL, "%s: '%.100s' is not %s", kv->key, kv->value, want);
}

int kv_u64(const struct kv_line *kv, uint64_t *ret, struct corral_error *err)
{
	int r = parse_u64(kv->value, ret);
	return r < 0 ? bad_number(kv, r, "a number from 0 to 18446744073709551615", err) : 0;
}

int kv_i64(const struct kv_line *kv, int64_t *ret, struct corral_error *err)
{
	int r = parse_i64(kv->value, ret);
	return r < 0 ? bad_number(kv, r, "a 64-bit signed number", err) : 0;
}

/* A value from 0 to max. */
static int kv_bounded(const struct kv_line *kv, uint64_t max, const char *want, uint64_t *ret,
		      struct corral_error *err)
{
	int r = parse_u64_max(kv->value, max, ret);
	return r < 0 ? bad_number(kv, r, want, err) : 0;
}

int kv_u32(const struct kv_line *kv, uint32_t *ret, struct corral_error *err)
{
	uint64_t v = 0;
	int r = kv_bounded(kv, UINT32_MAX, "a number from 0 to 4294967295", &v, err);
	if (r == 0)
		*ret = (uint32_t)v;
	return r;
}

int kv_int(const struct kv_line *kv, int *ret, struct corral_error *err)
{
	int64_t v;
	int r = parse_i64(kv->value, &v);
	if (r == 0 && (v < INT_MIN || v > INT_MAX))
		r = -ERANGE;
	if (r < 0)
		return bad_number(kv, r, "a number of int's range", err);
	*ret = (int)v;
	return 0;
}

int kv_pid(const struct kv_line *kv, int *ret, struct corral_error *err)
{
	uint64_t v = 0;
	int r = kv_bounded(kv, INT_MAX, "a process id (0 to 2147483647)", &v, err);
	if (r == 0)
		*ret = (int)v;
	return r;
}

int kv_bool(const struct kv_line *kv, bool *ret, struct corral_error *err)
{
	if (!strcmp(kv->value, "yes"))
		*ret = true;
	else if (!strcmp(kv->value, "no"))
		*ret = false;
	else
		return err_plain(err, EINVAL, "%s: '%.100s' is not yes or no", kv->key, kv->value);
	return 0;
}

int kv_str(const struct kv_line *kv, char *buf, size_t len, struct corral_error *err)
{
	size_t n = strlen(kv->value);
	if (n >= len)
		return err_plain(err, ENAMETOOLONG, "%s: the value is %zu characters, at most %zu fit", kv->key, n,
				 len - 1);
	memcpy(buf, kv->value, n + 1);
	return 0;
}
