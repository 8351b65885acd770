/* store-blocksize: what each block size would cost the store on a real
 * tree (README, "store"): for 16, 32, 64 and 128 KiB blocks, the tree's
 * files cut as store/ cuts them (fixed blocks, a short tail), hashed with
 * XXH3-128, and counted:
 *   - unique payload bytes and unique blocks (dedup within the tree),
 *   - overhead: a 48-byte record header per unique block, 24 bytes of
 *     recipe per block, 64 bytes of recipe per file, 32/0.75 bytes of
 *     index per unique record,
 *   - and a second tree, the same with one byte changed in each file of
 *     more than one block (a container patching files in place): what it
 *     adds to the store.
 * usage: store-blocksize DIR */
#include "config.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define NSIZES 4
static const size_t sizes[NSIZES] = { 16384, 32768, 65536, 131072 };

struct set {
	uint8_t (*k)[16];
	size_t n, cap;
};

static int set_add(struct set *s, const uint8_t h[16])
{
	if ((s->n + 1) * 4 > s->cap * 3) {
		struct set t = { .cap = s->cap ? s->cap * 2 : 1 << 16 };
		t.k = calloc(t.cap, 16);
		for (size_t i = 0; i < s->cap; i++) {
			static const uint8_t zero[16];
			if (memcmp(s->k[i], zero, 16))
				set_add(&t, s->k[i]);
		}
		free(s->k);
		*s = t;
	}
	uint64_t i;
	memcpy(&i, h, 8);
	for (i &= s->cap - 1;; i = (i + 1) & (s->cap - 1)) {
		static const uint8_t zero[16];
		if (!memcmp(s->k[i], zero, 16)) {
			memcpy(s->k[i], h, 16);
			s->n++;
			return 1;
		}
		if (!memcmp(s->k[i], h, 16))
			return 0;
	}
}

struct count {
	struct set set;
	uint64_t blocks, unique_bytes, unique_blocks, changed_bytes, changed_blocks;
};
static struct count c[NSIZES];
static uint64_t logical, files;
static uint8_t *buf;

static void hash(const uint8_t *p, size_t len, uint8_t out[16])
{
	XXH128_canonical_t cn;
	XXH128_canonicalFromHash(&cn, XXH3_128bits(p, len));
	memcpy(out, cn.digest, 16);
	out[15] |= 1; /* never all-zero: the set's empty marker */
}

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type != FTW_F || !S_ISREG(st->st_mode) || st->st_size == 0)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	size_t len = st->st_size, got = 0;
	uint8_t *p = len > 64u << 20 ? NULL : realloc(buf, len);
	if (!p) {
		close(fd);
		return 0;
	}
	buf = p;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n <= 0)
			break;
		got += n;
	}
	close(fd);
	len = got;
	logical += len;
	files++;
	for (int k = 0; k < NSIZES; k++) {
		size_t bs = sizes[k];
		for (size_t off = 0; off < len; off += bs) {
			size_t n = len - off < bs ? len - off : bs;
			uint8_t h[16];
			hash(buf + off, n, h);
			c[k].blocks++;
			if (set_add(&c[k].set, h)) {
				c[k].unique_bytes += n;
				c[k].unique_blocks++;
			}
		}
		/* The patched copy: one byte changed in the middle of the file. */
		if (len > bs) {
			size_t at = len / 2, off = at / bs * bs;
			size_t n = len - off < bs ? len - off : bs;
			buf[at] ^= 0xff;
			uint8_t h[16];
			hash(buf + off, n, h);
			buf[at] ^= 0xff;
			if (set_add(&c[k].set, h)) {
				c[k].changed_bytes += n;
				c[k].changed_blocks++;
			}
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: store-blocksize DIR\n");
		return 2;
	}
	if (nftw(argv[1], visit, 32, FTW_PHYS | FTW_MOUNT) < 0) {
		perror(argv[1]);
		return 1;
	}
	printf("%s: %llu files, %.1f MiB\n", argv[1], (unsigned long long)files, logical / 1048576.0);
	printf("| block | blocks | unique blocks | unique MiB | dedup | overhead MiB (hdr+recipe+index) | overhead %% | patched copy adds MiB |\n");
	printf("|---|---|---|---|---|---|---|---|\n");
	for (int k = 0; k < NSIZES; k++) {
		double over = c[k].unique_blocks * 48.0 + c[k].blocks * 24.0 + files * 64.0 +
			      (c[k].unique_blocks + files) * 32.0 / 0.75;
		printf("| %zu KiB | %llu | %llu | %.1f | %.3f | %.2f | %.2f | %.1f |\n", sizes[k] / 1024,
		       (unsigned long long)c[k].blocks, (unsigned long long)c[k].unique_blocks,
		       c[k].unique_bytes / 1048576.0, (double)logical / c[k].unique_bytes, over / 1048576.0,
		       100.0 * over / c[k].unique_bytes, c[k].changed_bytes / 1048576.0);
	}
	return 0;
}
