/* Drives partial files (cowfs-partial.h) on a real mount against a
 * reference copy in a plain directory: every change is made to both, and
 * the two are compared byte for byte.  Used by tests/cowfs-partial.test.
 *
 *   partial-ref fill FILE SIZE SEED
 *       FILE becomes SIZE bytes of pseudo-random data (fully allocated).
 *   partial-ref ops FILE REF SEED COUNT BATCH
 *       COUNT random changes to both (writes, truncates that shrink and
 *       grow, punch-hole, zero-range, writes through a shared mapping,
 *       O_DIRECT writes, copy_file_range, fsyncs); compares after every
 *       BATCH of them, the data and what SEEK_HOLE calls holes.
 *   partial-ref multi FILE REF SEED NPROC COUNT
 *       NPROC processes write COUNT times each into FILE and REF at once:
 *       process i owns the 512-byte slices i, i+NPROC, ... so they all
 *       write into the same 64 KiB blocks (copy-in races).
 *   partial-ref multimap FILE REF SEED NPROC COUNT
 *       the same through shared mappings of FILE: the kernel writes the
 *       dirty pages back without the inode lock that serializes write(2).
 *   partial-ref same FILE REF
 *       exit 0 if equal (and FILE's holes are zeros in REF), else 1 naming
 *       the first differing offset.
 *   partial-ref syncwrite FILE REF SEED COUNT READY
 *       COUNT random writes to both, fsync of FILE, then creates READY and
 *       sleeps with FILE open (the test kills the daemon meanwhile).
 *   partial-ref hidden FILE
 *       the record's xattr names are invisible and untouchable through
 *       FILE: prints one line per check with the errno seen, exit 1 if any
 *       differs from what a tenant must see.
 *   partial-ref blocks FILE
 *       prints st_blocks * 512.
 *
 * Exit 0 on success, 1 on a difference, 2 on a usage or system error. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#define BLOCK (64 * 1024)
#define MAX_SIZE (24 * 1024 * 1024)

static uint64_t rng;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void die(const char *what)
{
	fprintf(stderr, "partial-ref: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void fill_buf(uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(next() >> 24);
}

static void pwrite_all(int fd, const void *b, size_t len, off_t off, const char *what)
{
	size_t done = 0;
	while (done < len) {
		ssize_t w = pwrite(fd, (const char *)b + done, len - done, off + (off_t)done);
		if (w <= 0)
			die(what);
		done += (size_t)w;
	}
}

static int cmd_fill(const char *path, off_t size, uint64_t seed)
{
	rng = seed | 1;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die(path);
	static uint8_t buf[1 << 20];
	for (off_t off = 0; off < size; off += (off_t)sizeof(buf)) {
		size_t len = size - off < (off_t)sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
		fill_buf(buf, len);
		pwrite_all(fd, buf, len, off, path);
	}
	if (fsync(fd) < 0 || close(fd) < 0)
		die(path);
	return 0;
}

static off_t size_of(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		die("fstat");
	return st.st_size;
}

/* 0 if equal; else prints the first difference and returns 1. */
static int compare_fds(int a, int b, const char *when)
{
	off_t sa = size_of(a), sb = size_of(b);
	if (sa != sb) {
		printf("# %s: size %lld, reference %lld\n", when, (long long)sa, (long long)sb);
		return 1;
	}
	static uint8_t ba[1 << 20], bb[1 << 20];
	for (off_t off = 0; off < sa; off += (off_t)sizeof(ba)) {
		size_t len = sa - off < (off_t)sizeof(ba) ? (size_t)(sa - off) : sizeof(ba);
		ssize_t ra = pread(a, ba, len, off), rb = pread(b, bb, len, off);
		if (ra != (ssize_t)len || rb != (ssize_t)len) {
			printf("# %s: read at %lld: %zd (%s), reference %zd\n", when, (long long)off, ra,
			       ra < 0 ? strerror(errno) : "short", rb);
			return 1;
		}
		if (memcmp(ba, bb, len) != 0) {
			size_t i = 0;
			while (ba[i] == bb[i])
				i++;
			printf("# %s: differs at %lld (0x%02x, reference 0x%02x)\n", when, (long long)(off + (off_t)i),
			       ba[i], bb[i]);
			return 1;
		}
	}
	return 0;
}

/* Every range the file calls a hole (SEEK_HOLE/SEEK_DATA) reads as zeros
 * in the reference: a partial file's upper holes are no holes of the file. */
static int check_holes(int a, int b, const char *when)
{
	off_t size = size_of(a), pos = 0;
	static uint8_t buf[1 << 16];
	while (pos < size) {
		off_t hole = lseek(a, pos, SEEK_HOLE);
		if (hole < 0 || hole >= size)
			break;
		off_t data = lseek(a, hole, SEEK_DATA);
		if (data < 0)
			data = size;
		for (off_t o = hole; o < data; o += (off_t)sizeof(buf)) {
			size_t len = data - o < (off_t)sizeof(buf) ? (size_t)(data - o) : sizeof(buf);
			if (pread(b, buf, len, o) != (ssize_t)len)
				die("pread reference");
			for (size_t i = 0; i < len; i++)
				if (buf[i]) {
					printf("# %s: SEEK_HOLE says %lld is a hole, the reference has 0x%02x there\n", when,
					       (long long)(o + (off_t)i), buf[i]);
					return 1;
				}
		}
		pos = data;
	}
	return 0;
}

static int cmd_same(const char *file, const char *ref)
{
	int a = open(file, O_RDONLY | O_CLOEXEC), b = open(ref, O_RDONLY | O_CLOEXEC);
	if (a < 0 || b < 0)
		die("open");
	return compare_fds(a, b, file) || check_holes(a, b, file);
}

static off_t rand_off(off_t size)
{
	/* Mostly inside, sometimes around a block edge or just past the end. */
	switch (next() % 4) {
	case 0:
		return (off_t)((next() % (size / BLOCK + 2)) * BLOCK) - (off_t)(next() % 64);
	case 1:
		return size + (off_t)(next() % (2 * BLOCK));
	default:
		return size ? (off_t)(next() % (uint64_t)size) : 0;
	}
}

static size_t rand_len(void)
{
	switch (next() % 3) {
	case 0:
		return 1 + next() % 64;
	case 1:
		return 1 + next() % (2 * BLOCK);
	default:
		return 1 + next() % 4096;
	}
}

/* One random change to both; returns its name for the log. */
static const char *one_op(const char *path, int f, int r)
{
	static uint8_t buf[4 * BLOCK];
	off_t size = size_of(r), off = rand_off(size);
	if (off < 0)
		off = 0;
	size_t len = rand_len();
	if (off + (off_t)len > MAX_SIZE) {
		off = (off_t)(next() % (MAX_SIZE / 2));
	}
	switch (next() % 17) {
	case 0: { /* truncate, shrinking or growing */
		off_t to = next() % 2 ? size - (off_t)(next() % (size / 4 + 1)) : size + (off_t)(next() % (3 * BLOCK));
		if (to < 0)
			to = 0;
		if (ftruncate(f, to) < 0 || ftruncate(r, to) < 0)
			die("ftruncate");
		return "truncate";
	}
	case 1:
	case 2: /* punch a hole */
		if (fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, (off_t)len * 8) < 0 ||
		    fallocate(r, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, (off_t)len * 8) < 0)
			die("punch hole");
		return "punch";
	case 3: /* zero a range */
		if (fallocate(f, FALLOC_FL_ZERO_RANGE, off, (off_t)len * 4) < 0 ||
		    fallocate(r, FALLOC_FL_ZERO_RANGE, off, (off_t)len * 4) < 0)
			die("zero range");
		return "zero";
	case 4: { /* through a shared mapping, inside the file */
		if (size < 2)
			return "none";
		off_t page = (off_t)(next() % (uint64_t)size) & ~(off_t)4095;
		size_t mlen = (size_t)(size - page) < 3 * 4096 ? (size_t)(size - page) : 3 * 4096;
		uint8_t *m = mmap(NULL, mlen, PROT_READ | PROT_WRITE, MAP_SHARED, f, page);
		if (m == MAP_FAILED)
			die("mmap");
		size_t at = next() % mlen, n = 1 + next() % (mlen - at);
		fill_buf(buf, n);
		memcpy(m + at, buf, n);
		if (msync(m, mlen, MS_SYNC) < 0)
			die("msync");
		munmap(m, mlen);
		pwrite_all(r, buf, n, page + (off_t)at, "reference");
		return "mmap";
	}
	case 5: { /* O_DIRECT, aligned */
		int d = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
		if (d < 0)
			die("open O_DIRECT");
		void *al;
		if (posix_memalign(&al, 4096, 2 * BLOCK) != 0)
			die("posix_memalign");
		off_t doff = off & ~(off_t)4095;
		size_t dlen = ((len + 4095) & ~(size_t)4095);
		if (dlen > 2 * BLOCK)
			dlen = 2 * BLOCK;
		fill_buf(al, dlen);
		pwrite_all(d, al, dlen, doff, "O_DIRECT write");
		pwrite_all(r, al, dlen, doff, "reference");
		free(al);
		close(d);
		return "direct";
	}
	case 6:
		if (fsync(f) < 0)
			die("fsync");
		return "fsync";
	case 7: { /* copy_file_range inside the file, ranges apart */
		if (size < 4 * BLOCK)
			return "none";
		size_t n = 1 + next() % (2 * BLOCK);
		off_t in = (off_t)(next() % (uint64_t)(size / 2 - (off_t)n)), out = size / 2 + (off_t)(next() % (uint64_t)(size / 2));
		for (int side = 0; side < 2; side++) {
			int fd = side ? r : f;
			size_t done = 0;
			while (done < n) {
				off_t a = in + (off_t)done, b = out + (off_t)done;
				ssize_t c = copy_file_range(fd, &a, fd, &b, n - done, 0);
				if (c < 0)
					die("copy_file_range");
				if (c == 0)
					break;
				done += (size_t)c;
			}
		}
		return "copy_file_range";
	}
	default:
		fill_buf(buf, len);
		pwrite_all(f, buf, len, off, path);
		pwrite_all(r, buf, len, off, "reference");
		return "write";
	}
}

static int cmd_ops(const char *path, const char *ref, uint64_t seed, long count, long batch)
{
	rng = seed | 1;
	int f = open(path, O_RDWR | O_CLOEXEC), r = open(ref, O_RDWR | O_CLOEXEC);
	if (f < 0 || r < 0)
		die("open");
	const char *last[8] = { 0 };
	for (long i = 1; i <= count; i++) {
		last[i % 8] = one_op(path, f, r);
		if (i % batch == 0 || i == count) {
			char when[64];
			snprintf(when, sizeof(when), "after op %ld", i);
			if (compare_fds(f, r, when) != 0 || check_holes(f, r, when) != 0) {
				printf("# last ops:");
				for (long k = i - 7; k <= i; k++)
					if (k > 0)
						printf(" %s", last[k % 8]);
				printf("\n");
				return 1;
			}
		}
	}
	return 0;
}

static int cmd_multi(const char *path, const char *ref, uint64_t seed, int nproc, long count, bool mapped)
{
	int f = open(path, O_RDWR | O_CLOEXEC), r = open(ref, O_RDWR | O_CLOEXEC);
	if (f < 0 || r < 0)
		die("open");
	off_t size = size_of(r);
	for (int p = 0; p < nproc; p++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid)
			continue;
		rng = (seed + (uint64_t)p * 7919) | 1;
		uint8_t buf[512];
		uint8_t *m = NULL;
		if (mapped) {
			m = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
			if (m == MAP_FAILED)
				die("mmap");
		}
		for (long i = 0; i < count; i++) {
			uint64_t slices = (uint64_t)size / 512 / (uint64_t)nproc;
			off_t off = (off_t)(((next() % slices) * (uint64_t)nproc + (uint64_t)p) * 512);
			size_t n = 1 + next() % 512;
			fill_buf(buf, n);
			if (m) {
				memcpy(m + off, buf, n);
				/* Page by page to the daemon, from every process at once. */
				if (i % 16 == 0 && msync(m, (size_t)size, MS_ASYNC) < 0)
					die("msync");
			} else {
				pwrite_all(f, buf, n, off, path);
			}
			pwrite_all(r, buf, n, off, "reference");
		}
		if (m && (msync(m, (size_t)size, MS_SYNC) < 0 || munmap(m, (size_t)size) < 0))
			die("msync");
		_exit(0);
	}
	int bad = 0, st;
	while (wait(&st) > 0)
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad = 1;
	if (bad)
		return 2;
	return compare_fds(f, r, "after the writers");
}

static int cmd_syncwrite(const char *path, const char *ref, uint64_t seed, long count, const char *ready)
{
	rng = seed | 1;
	int f = open(path, O_RDWR | O_CLOEXEC), r = open(ref, O_RDWR | O_CLOEXEC);
	if (f < 0 || r < 0)
		die("open");
	static uint8_t buf[2 * BLOCK];
	off_t size = size_of(r);
	for (long i = 0; i < count; i++) {
		off_t off = (off_t)(next() % (uint64_t)size);
		size_t len = 1 + next() % sizeof(buf);
		if (off + (off_t)len > size)
			len = (size_t)(size - off);
		fill_buf(buf, len);
		pwrite_all(f, buf, len, off, path);
		pwrite_all(r, buf, len, off, "reference");
	}
	if (fsync(f) < 0)
		die("fsync");
	int fd = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "1", 1) != 1)
		die(ready);
	close(fd);
	for (;;)
		pause();
	return 0;
}

static int expect(const char *what, int rc, int want_errno)
{
	int e = rc < 0 ? errno : 0;
	printf("# %s: %s\n", what, e ? strerror(e) : "succeeded");
	return e == want_errno ? 0 : 1;
}

static int cmd_hidden(const char *path)
{
	static const char *const names[] = { "trusted.corral.partial", "user.corral.partial" };
	char buf[4096];
	int bad = 0;
	for (int i = 0; i < 2; i++) {
		char what[128];
		snprintf(what, sizeof(what), "getxattr %s", names[i]);
		bad |= expect(what, (int)getxattr(path, names[i], buf, sizeof(buf)), ENODATA);
		snprintf(what, sizeof(what), "setxattr %s", names[i]);
		bad |= expect(what, setxattr(path, names[i], "x", 1, 0), EPERM);
		snprintf(what, sizeof(what), "removexattr %s", names[i]);
		bad |= expect(what, removexattr(path, names[i]), EPERM);
	}
	ssize_t len = listxattr(path, buf, sizeof(buf));
	if (len < 0)
		die("listxattr");
	for (char *p = buf; p < buf + len; p += strlen(p) + 1)
		if (strstr(p, "corral.partial")) {
			printf("# listxattr shows %s\n", p);
			bad = 1;
		}
	printf("# listxattr: %zd bytes, no record\n", len);
	return bad;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "fill"))
		return cmd_fill(argv[2], strtoll(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));
	if (argc == 7 && !strcmp(argv[1], "ops"))
		return cmd_ops(argv[2], argv[3], strtoull(argv[4], NULL, 0), atol(argv[5]), atol(argv[6]));
	if (argc == 7 && (!strcmp(argv[1], "multi") || !strcmp(argv[1], "multimap")))
		return cmd_multi(argv[2], argv[3], strtoull(argv[4], NULL, 0), atoi(argv[5]), atol(argv[6]),
				 !strcmp(argv[1], "multimap"));
	if (argc == 4 && !strcmp(argv[1], "same"))
		return cmd_same(argv[2], argv[3]);
	if (argc == 7 && !strcmp(argv[1], "syncwrite"))
		return cmd_syncwrite(argv[2], argv[3], strtoull(argv[4], NULL, 0), atol(argv[5]), argv[6]);
	if (argc == 3 && !strcmp(argv[1], "hidden"))
		return cmd_hidden(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "blocks")) {
		struct stat st;
		if (stat(argv[2], &st) < 0)
			die(argv[2]);
		printf("%lld\n", (long long)st.st_blocks * 512);
		return 0;
	}
	fprintf(stderr, "usage: see tests/partial-ref.c\n");
	return 2;
}
