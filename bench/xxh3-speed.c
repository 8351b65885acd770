/* xxh3-speed: how fast this machine hashes with XXH3-128, the store's
 * block hash (store/store-record.c: XXH3_128bits_withSeed per block), for
 * bench/store-bench's ingest anchor.
 *
 *   xxh3-speed [MIB [BLOCK]]   hash MIB MiB (default 256) of random bytes
 *                              in BLOCK-byte pieces (default 65536, the
 *                              store's block size), 5 passes
 *
 * Prints "xxh3-128 MB/s <best pass> <median pass>" (MB = 10^6 bytes).
 * The buffer is in memory: this is the hash alone, no I/O. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <xxhash.h>

#define PASSES 5

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
	size_t block = argc > 2 ? strtoul(argv[2], NULL, 10) : 65536;
	if (!mib || !block) {
		fprintf(stderr, "usage: xxh3-speed [MIB [BLOCK]]\n");
		return 2;
	}
	size_t len = mib << 20;
	uint8_t *buf = malloc(len);
	if (!buf) {
		perror("xxh3-speed: malloc");
		return 1;
	}
	/* Random bytes (xorshift): nothing the hash could shortcut. */
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < len; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		for (int j = 0; j < 8 && i + j < len; j++)
			buf[i + j] = (uint8_t)(x >> (8 * j));
	}
	double mbs[PASSES];
	uint64_t sink = 0;
	for (int p = 0; p < PASSES; p++) {
		double t0 = now();
		for (size_t off = 0; off < len; off += block) {
			size_t n = len - off < block ? len - off : block;
			XXH128_hash_t h = XXH3_128bits_withSeed(buf + off, n, 0x5eed);
			sink ^= h.low64 ^ h.high64;
		}
		mbs[p] = len / (now() - t0) / 1e6;
	}
	qsort(mbs, PASSES, sizeof(mbs[0]), cmp);
	printf("xxh3-128 MB/s %.0f %.0f\n", mbs[PASSES - 1], mbs[PASSES / 2]);
	free(buf);
	return sink == 42; /* keeps the hashing from being optimised away */
}
