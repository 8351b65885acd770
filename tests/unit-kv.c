/* unit-kv: the shared "key = value" reader and the strict number parsers
 * (common/kv.c): what the format accepts, what it refuses and how the
 * errors name the file, the line and the key. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "tap.h"

struct seen {
	char text[1024];	/* "line:key=[value];" for each entry */
	const char *fail_key;	/* the callback refuses this key */
};

static int record(const struct kv_line *kv, void *arg, struct corral_error *err)
{
	struct seen *s = arg;
	if (s->fail_key && !strcmp(kv->key, s->fail_key))
		return err_plain(err, EINVAL, "%s: refused", kv->key);
	size_t n = strlen(s->text);
	snprintf(s->text + n, sizeof(s->text) - n, "%u:%s=[%s];", kv->line, kv->key, kv->value);
	return 0;
}

static int parse(const char *in, struct seen *s, struct corral_error *err)
{
	char buf[1024];
	size_t len = strlen(in);
	memcpy(buf, in, len + 1);
	memset(err, 0, sizeof(*err));
	s->text[0] = '\0';
	return kv_parse(buf, len, "f.conf", record, s, err);
}

static void test_reader(void)
{
	struct seen s = { 0 };
	struct corral_error e;

	ok(parse("# comment\n\nname = web\n  \t# indented comment\n\targ =   two  spaces  \narg = \nx = a = b\n", &s, &e) ==
		   0 && !strcmp(s.text, "3:name=[web];5:arg=[  two  spaces  ];6:arg=[];7:x=[a = b];"),
	   "comments and blank lines skipped, values raw, line numbers count every line: %s", s.text);
	ok(parse("a = 1", &s, &e) == 0 && !strcmp(s.text, "1:a=[1];"), "a last line without newline: %s", s.text);
	ok(parse("", &s, &e) == 0 && !s.text[0], "an empty file has no entries");
	ok(parse("k.e-y_9 = v\n", &s, &e) == 0 && !strcmp(s.text, "1:k.e-y_9=[v];"), "key characters A-Z a-z 0-9 _ . -");

	ok(parse("a = 1\n\nb=2\n", &s, &e) == -EINVAL && strstr(e.msg, "f.conf:3:") && strstr(e.msg, "'b=2'"),
	   "'key=value' without blanks is refused, naming file and line: %s", e.msg);
	ok(parse("a  = 1\n", &s, &e) == -EINVAL && strstr(e.msg, "f.conf:1: expected 'key = value'"),
	   "two blanks before '=' refused: %s", e.msg);
	ok(parse("a =\n", &s, &e) == -EINVAL, "'key =' without the blank after '=' refused: %s", e.msg);
	ok(parse("= v\n", &s, &e) == -EINVAL, "an empty key refused: %s", e.msg);
	ok(parse("just words\n", &s, &e) == -EINVAL && strstr(e.msg, "f.conf:1:"), "a line without '=' refused: %s",
	   e.msg);
	ok(parse("k/x = v\n", &s, &e) == -EINVAL, "a key with '/' refused: %s", e.msg);

	char nul[] = "a = 1\nb = x\0y\n";
	memset(&e, 0, sizeof(e));
	s.text[0] = '\0';
	ok(kv_parse(nul, sizeof(nul) - 1, "f.conf", record, &s, &e) == -EINVAL && strstr(e.msg, "f.conf:2: a NUL"),
	   "a NUL byte refused: %s", e.msg);

	s.fail_key = "bad";
	ok(parse("good = 1\n\nbad = 2\nlater = 3\n", &s, &e) == -EINVAL && !strcmp(e.msg, "f.conf:3: bad: refused") &&
		   !strcmp(s.text, "1:good=[1];"),
	   "a callback's error is wrapped with file:line and stops the parse: %s", e.msg);
	s.fail_key = NULL;
	char buf[] = "bad = 1\n";
	struct seen s2 = { .fail_key = "bad" };
	ok(kv_parse(buf, strlen(buf), "f", record, &s2, NULL) == -EINVAL, "without err the callback's code is kept");
}

static void test_numbers(void)
{
	uint64_t u;
	int64_t i;
	ok(parse_u64("0", &u) == 0 && u == 0, "u64 0");
	ok(parse_u64("18446744073709551615", &u) == 0 && u == UINT64_MAX, "u64 max");
	ok(parse_u64("18446744073709551616", &u) == -ERANGE, "u64 overflow is ERANGE");
	ok(parse_u64("99999999999999999999999", &u) == -ERANGE, "u64 long overflow is ERANGE");
	ok(parse_u64("", &u) == -EINVAL, "u64 empty refused");
	ok(parse_u64("-1", &u) == -EINVAL, "u64 negative refused");
	ok(parse_u64("+1", &u) == -EINVAL, "u64 '+' refused");
	ok(parse_u64(" 1", &u) == -EINVAL && parse_u64("1 ", &u) == -EINVAL, "u64 blanks refused");
	ok(parse_u64("12abc", &u) == -EINVAL && parse_u64("0x10", &u) == -EINVAL, "u64 junk refused");
	ok(parse_u64("007", &u) == 0 && u == 7, "u64 leading zeros are decimal");
	ok(parse_u64_max("4294967295", UINT32_MAX, &u) == 0 && parse_u64_max("4294967296", UINT32_MAX, &u) == -ERANGE,
	   "u64 with a maximum");
	ok(parse_i64("-9223372036854775808", &i) == 0 && i == INT64_MIN, "i64 min");
	ok(parse_i64("9223372036854775807", &i) == 0 && i == INT64_MAX, "i64 max");
	ok(parse_i64("9223372036854775808", &i) == -ERANGE && parse_i64("-9223372036854775809", &i) == -ERANGE,
	   "i64 overflow both ways");
	ok(parse_i64("-", &i) == -EINVAL && parse_i64("--1", &i) == -EINVAL && parse_i64("", &i) == -EINVAL,
	   "i64 lone or double sign, empty refused");
	ok(parse_i64("-1", &i) == 0 && i == -1, "i64 -1");

	struct corral_error e = { 0 };
	char v[32];
	struct kv_line kv = { .key = "init_pid", .value = v, .line = 3 };
	int pid = 42;
	snprintf(v, sizeof(v), "12abc");
	ok(kv_pid(&kv, &pid, &e) == -EINVAL && pid == 42 && strstr(e.msg, "init_pid") && strstr(e.msg, "12abc"),
	   "kv_pid names the key and value, leaves *ret: %s", e.msg);
	snprintf(v, sizeof(v), "-5");
	ok(kv_pid(&kv, &pid, &e) == -EINVAL, "kv_pid negative refused: %s", e.msg);
	snprintf(v, sizeof(v), "2147483648");
	ok(kv_pid(&kv, &pid, &e) == -ERANGE && strstr(e.msg, "out of range"), "kv_pid above INT_MAX: %s", e.msg);
	snprintf(v, sizeof(v), "4242");
	ok(kv_pid(&kv, &pid, &e) == 0 && pid == 4242, "kv_pid 4242");
	int n;
	snprintf(v, sizeof(v), "-2147483648");
	ok(kv_int(&kv, &n, &e) == 0 && n == -2147483647 - 1, "kv_int INT_MIN");
	snprintf(v, sizeof(v), "2147483648");
	ok(kv_int(&kv, &n, &e) == -ERANGE, "kv_int overflow");
	uint32_t u32;
	snprintf(v, sizeof(v), "4294967296");
	ok(kv_u32(&kv, &u32, &e) == -ERANGE, "kv_u32 overflow");
	bool b = false;
	snprintf(v, sizeof(v), "yes");
	ok(kv_bool(&kv, &b, &e) == 0 && b, "kv_bool yes");
	snprintf(v, sizeof(v), "true");
	ok(kv_bool(&kv, &b, &e) == -EINVAL && strstr(e.msg, "yes or no"), "kv_bool refuses 'true': %s", e.msg);
	char small[4];
	snprintf(v, sizeof(v), "abcd");
	ok(kv_str(&kv, small, sizeof(small), &e) == -ENAMETOOLONG, "kv_str refuses what does not fit: %s", e.msg);
	snprintf(v, sizeof(v), "abc");
	ok(kv_str(&kv, small, sizeof(small), &e) == 0 && !strcmp(small, "abc"), "kv_str fits");
}

int main(void)
{
	test_reader();
	test_numbers();
	return tap_done();
}
