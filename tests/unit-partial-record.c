/* The record of a partial file (cowfs/cowfs-partial-record.c) under make
 * check, without clang: real records (a lower source with private ranges,
 * a store source, the largest that fit) are checked to round-trip, to be
 * refused with any single bit flipped (the checksum), to be refused when
 * well checksummed but wrong inside (a path leaving the layer, ranges out
 * of order or past the source, a bad kind), and then fed mutated (bit
 * flips, cut short, bytes inserted) many times over to the fuzz target
 * (tests/fuzz-partial.c): every input must give an error or a record
 * that encodes back to it, never a crash or a hang (an alarm fails the
 * run).  `make fuzz-partial` runs libFuzzer on the same target. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "cowfs/cowfs-partial-record.h"
#include "tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void mutate(const uint8_t *seed, size_t len, int rounds)
{
	uint8_t *buf = malloc(len + 64);
	for (int i = 0; i < rounds; i++) {
		size_t n = len;
		memcpy(buf, seed, len);
		int edits = 1 + next() % 4;
		for (int e = 0; e < edits && n > 0; e++) {
			switch (next() % 4) {
			case 0:
			case 1:
				buf[next() % n] ^= 1 << (next() % 8);
				break;
			case 2:
				n = next() % n;
				break;
			case 3:
				if (n < len + 64) {
					size_t at = next() % n;
					memmove(buf + at + 1, buf + at, n - at);
					buf[at] = next();
					n++;
				}
				break;
			}
		}
		LLVMFuzzerTestOneInput(buf, n);
	}
	free(buf);
}

/* Re-seals a record changed on purpose (a fresh checksum), so that the
 * parser's own checks are what refuses it. */
static void reseal(uint8_t *buf, size_t len)
{
	uint64_t sum = XXH3_64bits(buf, len - 8);
	for (int i = 0; i < 8; i++)
		buf[len - 8 + i] = (uint8_t)(sum >> (8 * i));
}

static int parse_err(const uint8_t *buf, size_t len)
{
	struct partial_record r;
	int e = partial_record_parse(buf, len, &r);
	partial_record_release(&r);
	return e;
}

static struct partial_range ranges[400];

static int lower_record(uint8_t *buf, const char *path, uint32_t nranges)
{
	struct partial_record r = { .kind = PARTIAL_LOWER, .source_len = 1000ull * PARTIAL_BLOCK + 17, .layer = 1 };
	snprintf(r.path, sizeof(r.path), "%s", path);
	r.ident = (struct partial_ident){ .ino = 1234, .size = 1000ull * PARTIAL_BLOCK + 17, .mtime_sec = 1700000000,
					  .mtime_nsec = 5, .ctime_sec = 1700000001, .ctime_nsec = 999999999 };
	for (uint32_t i = 0; i < nranges; i++)
		ranges[i] = (struct partial_range){ 2 * i, 1 };
	r.nranges = nranges;
	r.ranges = ranges;
	return partial_record_encode(&r, buf);
}

int main(void)
{
	tap_plan(7);
	alarm(300);
	uint8_t lower[PARTIAL_RECORD_MAX], store[PARTIAL_RECORD_MAX], big[PARTIAL_RECORD_MAX], buf[PARTIAL_RECORD_MAX];
	int llen = lower_record(lower, "usr/lib/x86_64-linux-gnu/libbig.so.1", 3);
	struct partial_record r;
	ok(llen > 0 && partial_record_parse(lower, (size_t)llen, &r) == 0 && r.kind == PARTIAL_LOWER &&
		   r.layer == 1 && !strcmp(r.path, "usr/lib/x86_64-linux-gnu/libbig.so.1") && r.nranges == 3 &&
		   r.ranges[2].start == 4 && r.ident.ino == 1234 && r.ident.ctime_nsec == 999999999,
	   "a lower record round-trips (%d bytes)", llen);
	partial_record_release(&r);

	struct partial_record s = { .kind = PARTIAL_STORE, .source_len = 5 * PARTIAL_BLOCK };
	memset(s.recipe.hash, 0xab, sizeof(s.recipe.hash));
	s.recipe.n = 2;
	struct partial_range one = { 1, 3 };
	s.nranges = 1;
	s.ranges = &one;
	int slen = partial_record_encode(&s, store);
	ok(slen > 0 && partial_record_parse(store, (size_t)slen, &r) == 0 && r.kind == PARTIAL_STORE &&
		   r.recipe.n == 2 && r.recipe.hash[15] == 0xab && r.nranges == 1 && r.ranges[0].count == 3,
	   "a store record round-trips (%d bytes)", slen);
	partial_record_release(&r);

	uint32_t max = partial_record_max_ranges(strlen("a/b"));
	int blen = lower_record(big, "a/b", max);
	ok(blen > 0 && blen <= PARTIAL_RECORD_MAX && lower_record(buf, "a/b", max + 1) == -E2BIG,
	   "the largest record (%u ranges) fits in %d bytes; one range more is refused", max, blen);

	bool refused = true;
	for (int i = 0; i < llen * 8; i++) {
		memcpy(buf, lower, (size_t)llen);
		buf[i / 8] ^= 1 << (i % 8);
		if (parse_err(buf, (size_t)llen) == 0)
			refused = false;
	}
	ok(refused, "every single bit flipped in a record is refused (%d bits)", llen * 8);

	/* Well sealed, wrong inside. */
	static const char *const bad_paths[] = { "../etc/shadow", "/etc/shadow", "a/../../b", "a//b", "./a", "a/", "a/." };
	bool paths = true;
	for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
		int n = lower_record(buf, bad_paths[i], 0);
		paths &= n > 0 && parse_err(buf, (size_t)n) == -EINVAL;
	}
	ok(paths, "a path leaving the layer (.., absolute, empty or . components) is refused");
	memcpy(buf, lower, (size_t)llen);
	/* ranges start after header (24), identity (40) and the path */
	size_t at = 24 + 40 + strlen("usr/lib/x86_64-linux-gnu/libbig.so.1");
	buf[at + 8] = 0; /* second range now starts at block 0: out of order */
	reseal(buf, (size_t)llen);
	int order = parse_err(buf, (size_t)llen);
	memcpy(buf, lower, (size_t)llen);
	buf[at + 16] = 0xff; /* third range starts at block 0x3ff = 1023: */
	buf[at + 17] = 0x03; /* past the source's 1001 blocks */
	reseal(buf, (size_t)llen);
	int past = parse_err(buf, (size_t)llen);
	memcpy(buf, lower, (size_t)llen);
	buf[5] = 3;
	reseal(buf, (size_t)llen);
	int kind = parse_err(buf, (size_t)llen);
	memcpy(buf, lower, (size_t)llen);
	buf[4] = 2;
	reseal(buf, (size_t)llen);
	int version = parse_err(buf, (size_t)llen);
	ok(order == -EINVAL && past == -EINVAL && kind == -EINVAL && version == -EPROTONOSUPPORT,
	   "ranges out of order (%d) or past the source (%d), an unknown kind (%d) or version (%d) are refused",
	   order, past, kind, version);

	mutate(lower, (size_t)llen, 40000);
	mutate(store, (size_t)slen, 30000);
	mutate(big, (size_t)blen, 5000);
	ok(1, "75,000 mutated records: no crash, and whatever parses encodes back to itself");
	return tap_done();
}
