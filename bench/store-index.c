/* store-index: what the store's index costs per stored block, measured on
 * a real store on the disk (README, "store"): stores N unique blocks into
 * a fresh store, samples the index file's size as it grows, and prints
 *   - index bytes per block (at the end, and the least and most seen over
 *     the table's growths), and the slot size and load from its header,
 *   - GiB of index per TiB of unique data at 64 KiB blocks, if it were
 *     all resident, beside ZFS's dedup table (~320 bytes per block,
 *     5 GiB per TiB) and the 0.5 GiB per TiB target,
 *   - the rate of puts (hash, lookup miss, append, index insert), of
 *     lookups that hit (a get: index, then the record read) and of
 *     lookups of absent keys (the index alone).
 * `make bench-store-index` runs it twice, against this store/ and against
 * the store/ before the index's slots shrank (bench/store-index-before),
 * on the same disk, one after the other.  The store is removed after.
 *
 * usage: store-index [--dir DIR] [--gib G | --blocks N] [--block-size B] [--label TEXT] */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "fileio.h"
#include "store/store.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Block `id`: unique bytes (a random pattern with the id stamped in). */
static void fill(uint8_t *blk, const uint8_t *pattern, size_t len, uint64_t id)
{
	memcpy(blk, pattern, len);
	for (size_t o = 0; o + 8 <= len; o += 4096)
		memcpy(blk + o, &id, 8);
	if (len < 8)
		memcpy(blk, &id, len);
}

static off_t size_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The index file's slot array in bytes (its size less the header and
 * cover table, FORMAT.md "Index": the part that grows with the store). */
static double slot_bytes(const char *path, uint64_t *ret_nslots, uint64_t *ret_nused, unsigned *ret_version)
{
	uint8_t h[64];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool hdr = fd >= 0 && pread(fd, h, sizeof(h), 0) == sizeof(h);
	if (fd >= 0)
		close(fd);
	if (!hdr)
		return 0;
	uint64_t ncover = le(h + 48, 4);
	uint64_t slots_off = (4096 + ncover * 16 + 4095) & ~4095ull;
	if (ret_nslots)
		*ret_nslots = le(h + 16, 8);
	if (ret_nused)
		*ret_nused = le(h + 24, 8);
	if (ret_version)
		*ret_version = le(h + 8, 4);
	return (double)(size_of(path) - (off_t)slots_off);
}

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

int main(int argc, char **argv)
{
	const char *base = "/var/tmp", *label = "this store/";
	double gib = 1;
	uint64_t nblocks = 0;
	size_t bs = STORE_BLOCK_SIZE;
	static const struct option opts[] = { { "dir", 1, 0, 'd' },	   { "gib", 1, 0, 'g' },
					      { "blocks", 1, 0, 'n' },	   { "block-size", 1, 0, 'b' },
					      { "label", 1, 0, 'l' },	   { 0, 0, 0, 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': base = optarg; break;
		case 'g': gib = atof(optarg); break;
		case 'n': nblocks = strtoull(optarg, NULL, 0); break;
		case 'b': bs = strtoul(optarg, NULL, 0); break;
		case 'l': label = optarg; break;
		default:
			fprintf(stderr, "usage: %s [--dir DIR] [--gib G | --blocks N] [--block-size B] [--label TEXT]\n",
				argv[0]);
			return 2;
		}
	}
	if (bs < 16 || bs > STORE_BLOCK_SIZE) {
		fprintf(stderr, "--block-size: 16 to %d\n", STORE_BLOCK_SIZE);
		return 2;
	}
	if (!nblocks)
		nblocks = (uint64_t)(gib * (1 << 30)) / bs;
	char top[512], sdir[600], idx[700];
	snprintf(top, sizeof(top), "%s/corral-store-index.XXXXXX", base);
	if (!mkdtemp(top)) {
		fprintf(stderr, "mkdtemp %s: %s\n", top, strerror(errno));
		return 1;
	}
	snprintf(sdir, sizeof(sdir), "%s/store", top);
	snprintf(idx, sizeof(idx), "%s/index", sdir);
	int rc = 1;
	struct store *s = NULL;
	struct corral_error err = { 0 };
	uint8_t *pattern = malloc(bs), *blk = malloc(bs), *back = malloc(STORE_BLOCK_SIZE);
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (size_t i = 0; i < bs; i++)
		pattern[i] = xorshift(&x);
	if (store_open(sdir, STORE_CREATE, &s, &err) < 0 || store_begin(s, &err) < 0) {
		fprintf(stderr, "store: %s\n", err.msg);
		goto out;
	}
	/* Puts, sampling the index's slot bytes per block as it grows (past
	 * the first 1/8 of the run and the smallest table, 4,096 slots). */
	double lo = 1e30, hi = 0;
	uint64_t step = nblocks / 2048 ? nblocks / 2048 : 1;
	struct store_key *keys = malloc(nblocks * sizeof(*keys));
	double t0 = now();
	for (uint64_t i = 0; i < nblocks; i++) {
		fill(blk, pattern, bs, i + 1);
		if (store_put_block(s, blk, bs, &keys[i], &err) < 0) {
			fprintf(stderr, "put: %s\n", err.msg);
			goto out;
		}
		if (i % step == 0 && i >= nblocks / 8 && i >= 8192) {
			double per = slot_bytes(idx, NULL, NULL, NULL) / (i + 1);
			lo = per < lo ? per : lo;
			hi = per > hi ? per : hi;
		}
	}
	double t_put = now() - t0;
	store_end(s);
	/* Lookups that hit, in random order: index, then the record read. */
	uint64_t nget = nblocks < 200000 ? nblocks : 200000;
	t0 = now();
	for (uint64_t i = 0; i < nget; i++) {
		size_t bl;
		if (store_get_block(s, &keys[xorshift(&x) % nblocks], back, &bl, &err) < 0 || bl != bs) {
			fprintf(stderr, "get: %s\n", err.msg);
			goto out;
		}
	}
	double t_get = now() - t0;
	/* Lookups of absent keys: the index alone (a get that finds nothing). */
	uint64_t nmiss = 200000;
	t0 = now();
	for (uint64_t i = 0; i < nmiss; i++) {
		struct store_key k = { .n = 0 };
		uint64_t a = xorshift(&x), b = xorshift(&x);
		memcpy(k.hash, &a, 8);
		memcpy(k.hash + 8, &b, 8);
		size_t bl;
		int r = store_get_block(s, &k, back, &bl, &err);
		if (r != -ENOENT) {
			fprintf(stderr, "a random key: %d %s\n", r, err.msg);
			goto out;
		}
	}
	double t_miss = now() - t0;
	free(keys);

	uint64_t nslots = 0, nused = 0;
	unsigned version = 0;
	double slots = slot_bytes(idx, &nslots, &nused, &version);
	off_t isz = size_of(idx);
	double per = slots / nblocks;
	/* 2^40 / 2^16 blocks per TiB, 2^30 bytes per GiB: bytes per block / 64. */
	double tib = 1099511627776.0 / STORE_BLOCK_SIZE / 1073741824.0;
	printf("store index, %s: %llu unique blocks of %zu bytes (%.2f GiB), store in %s\n", label,
	       (unsigned long long)nblocks, bs, (double)nblocks * bs / (1 << 30), base);
	printf("  index format %u: %.0f-byte slots, %llu slots, %llu used (load %.2f); file %.2f MiB, of it "
	       "%.2f MiB slots, the rest a fixed header\n",
	       version, nslots ? slots / nslots : 0, (unsigned long long)nslots, (unsigned long long)nused,
	       nslots ? (double)nused / nslots : 0, isz / 1048576.0, slots / 1048576.0);
	printf("  index bytes per block (slots): %.1f at the end; %.1f to %.1f over the table's growths\n", per, lo,
	       hi);
	printf("  GiB of index per TiB of unique data (64 KiB blocks, all resident): %.2f at the end, %.2f to %.2f\n",
	       per * tib, lo * tib, hi * tib);
	printf("  anchor: ZFS dedup table ~320 bytes per block = %.1f GiB per TiB; target 0.5 GiB per TiB (32 bytes)\n",
	       320 * tib);
	printf("  puts (hash, miss, append, insert): %.0f blocks/s, %.0f MB/s\n", nblocks / t_put,
	       nblocks * (double)bs / t_put / 1e6);
	printf("  lookups that hit (get, random order): %.0f/s; of absent keys (index only): %.0f/s\n", nget / t_get,
	       nmiss / t_miss);
	rc = 0;
out:
	store_close(s);
	free(pattern);
	free(blk);
	free(back);
	remove_tree(top, NULL);
	return rc;
}
