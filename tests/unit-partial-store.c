/* unit-partial-store: store-backed partial files (cowfs/cowfs-partial.c,
 * PARTIAL_STORE) on real files and a real block store (store/), without a
 * mount: the test supplies the two reads cowfs-store.c gives the partial
 * reader (cowfs_store_read_blocks, cowfs_store_get_recipe) straight from
 * the store, as cowfs-store.c does with its pool of handles.
 *
 * partial_adopt_store refuses a file with a writer or written since the
 * caller read it (-EBUSY, nothing changed), then turns it into a store
 * partial whose upper blocks are freed; it reads back whole, a write copies
 * in one block from the store, the record survives a "remount" (a fresh
 * node loading it), a truncate that shrinks the source then a growth reads
 * zeros past it, a flipped byte in a stored block is EIO (read whole or in
 * part), and a damaged record is EIO. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cowfs/cowfs.h"
#include "cowfs/cowfs-partial.h"
#include "cowfs/cowfs-route.h"
#include "cowfs/cowfs-store.h"
#include "store/store-internal.h"
#include "fileio.h"
#include "tap.h"

static struct store *the_store;
static bool store_broken;

int cowfs_store_read_blocks(struct cowfs *fs, const struct store_recipe_entry *e, size_t n, void *buf)
{
	(void)fs;
	if (store_broken)
		return -EIO;
	return store_get_blocks(the_store, e, n, buf, NULL) < 0 ? -EIO : 0;
}

int cowfs_store_get_recipe(struct cowfs *fs, const struct store_key *k, struct store_recipe *ret)
{
	(void)fs;
	return store_get_recipe(the_store, k, ret, NULL);
}

void cowfs_store_file_idle(struct cowfs *fs, struct cowfs_node *n)
{
	(void)fs, (void)n;
}

static struct cowfs fs;
static char dir[64];

static struct cowfs_node *node_of(const char *path)
{
	struct cowfs_node *n = node_alloc(&fs, S_IFREG);
	n->fds[0] = open(path, O_PATH | O_CLOEXEC);
	n->st_ino = 42;
	return n;
}

static bool reads_as(struct cowfs_node *n, int fd, const uint8_t *want, size_t len)
{
	uint8_t *got = malloc(len + 100);
	ssize_t r = partial_pread(&fs, n, fd, got, len + 100, 0);
	bool same = r == (ssize_t)len && memcmp(got, want, len) == 0;
	if (!same)
		diag("read %zd bytes (want %zu)%s", r, len, r == (ssize_t)len ? ", content differs" : "");
	free(got);
	return same;
}

static long long upper_bytes(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (long long)st.st_blocks * 512 : -1;
}

static void cleanup(void)
{
	remove_tree(dir, NULL);
}

int main(void)
{
	tap_plan(16);
	snprintf(dir, sizeof(dir), "/tmp/corral-unit-partial.%d", (int)getpid());
	atexit(cleanup);
	char up[128], file[160], sdir[128];
	snprintf(up, sizeof(up), "%s/upper", dir);
	snprintf(sdir, sizeof(sdir), "%s/store", dir);
	snprintf(file, sizeof(file), "%s/f", up);
	if (mkdir(dir, 0700) < 0 || mkdir(up, 0700) < 0)
		tap_bail("cannot make %s", dir);
	fs.nlayers = 1;
	fs.layers = calloc(1, sizeof(*fs.layers));
	fs.layers[0].root_fd = open(up, O_PATH | O_DIRECTORY | O_CLOEXEC);
	fs.proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	fs.xattr_trusted = geteuid() == 0;
	route_init(&fs);

	size_t len = 3 * PARTIAL_BLOCK + 1234;
	uint8_t *ref = malloc(4 * PARTIAL_BLOCK);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		ref[i] = (uint8_t)x;
	}
	int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, ref, len) != (ssize_t)len || fsync(fd) < 0)
		tap_bail("cannot write %s", file);
	if (store_open(sdir, STORE_CREATE, &the_store, NULL) < 0 || store_begin(the_store, NULL) < 0)
		tap_bail("cannot open a store in %s", sdir);
	struct store_key key;
	uint64_t size;
	int rfd = open(file, O_RDONLY | O_CLOEXEC);
	if (store_put_fd(the_store, rfd, &key, &size, NULL) < 0 || store_sync(the_store, NULL) < 0)
		tap_bail("cannot put the file in the store");
	close(rfd);
	store_end(the_store);

	struct cowfs_node *n = node_of(file);
	uint64_t gen = partial_write_gen(n);
	partial_writer_open(n);
	int busy_writer = partial_adopt_store(&fs, n, &key, size, partial_write_gen(n));
	partial_writer_close(n);
	int busy_gen = partial_adopt_store(&fs, n, &key, size, gen);
	ok(busy_writer == -EBUSY && busy_gen == -EBUSY && !node_is_partial(n) && upper_bytes(fd) >= (long long)len,
	   "adopt refuses a file with a writer (%d) or written since it was read (%d), changing nothing",
	   busy_writer, busy_gen);

	int r = partial_adopt_store(&fs, n, &key, size, partial_write_gen(n));
	struct store_key got;
	ok(r == 0 && node_is_partial(n) && partial_store_recipe(n, &got) && store_key_eq(&got, &key),
	   "adopted: a store partial whose recipe is the one given (%d)", r);
	long long freed = upper_bytes(fd);
	ok(freed >= 0 && freed <= 8192, "the upper's data blocks are freed (%lld bytes left)", freed);
	ok(reads_as(n, fd, ref, len), "it reads back whole from the store");

	/* A write in the second block: that block alone is copied in. */
	static const char patch[] = "written after the move";
	off_t at = PARTIAL_BLOCK + 100;
	r = partial_prepare_write(&fs, n, fd, at, sizeof(patch));
	if (r == 0 && pwrite(fd, patch, sizeof(patch), at) != (ssize_t)sizeof(patch))
		r = -errno;
	memcpy(ref + at, patch, sizeof(patch));
	long long one = upper_bytes(fd);
	ok(r == 0 && reads_as(n, fd, ref, len), "a write copies its block in from the store and reads back");
	ok(one >= PARTIAL_BLOCK && one <= PARTIAL_BLOCK + 8192, "only that block is allocated (%lld bytes)", one);
	ok(partial_sync(&fs, n, fd) == 0, "the record is written (partial_sync)");

	/* A remount: a fresh node reads the record. */
	struct cowfs_node *m = node_of(file);
	r = partial_load(&fs, m);
	ok(r == 0 && node_is_partial(m) && partial_store_recipe(m, &got) && store_key_eq(&got, &key),
	   "a fresh node loads the record (%d)", r);
	ok(reads_as(m, fd, ref, len), "and reads the same content: the written block from the upper, the rest from the store");

	/* Shrink below the source, then grow: zeros past the cut. */
	off_t cut = 2 * PARTIAL_BLOCK + 10;
	r = partial_truncate(&fs, m, fd, cut);
	if (r == 0)
		r = partial_truncate(&fs, m, fd, (off_t)len);
	memset(ref + cut, 0, len - (size_t)cut);
	ok(r == 0 && reads_as(m, fd, ref, len), "a truncate below the source then a growth reads zeros past the cut");
	struct cowfs_node *k = node_of(file);
	ok(partial_load(&fs, k) == 0 && reads_as(k, fd, ref, len), "so does a fresh node: the cut is in the record at once");

	store_broken = true;
	struct cowfs_node *b = node_of(file);
	uint8_t buf[64];
	ssize_t rb = partial_load(&fs, b) == 0 ? partial_pread(&fs, b, fd, buf, sizeof(buf), 0) : 0;
	store_broken = false;
	ok(rb == -EIO, "a store block that cannot be read is EIO, never zeros (%zd)", rb);

	/* A flipped byte in the pack, in block 0's payload: EIO whether the
	 * read takes the block whole (straight into the caller's buffer) or
	 * a part of it (through a block buffer); the private block 1 still
	 * reads. */
	struct store_recipe rcp;
	struct store_loc loc;
	char pack[256];
	if (store_get_recipe(the_store, &key, &rcp, NULL) < 0 || store_index_lock(the_store, false) < 0)
		tap_bail("cannot find block 0 in the store");
	r = store_index_find(the_store, STORE_KIND_BLOCK, &rcp.e[0].key, STORE_FIND_CONFIRMED, &loc, NULL);
	store_index_unlock(the_store);
	store_recipe_release(&rcp);
	snprintf(pack, sizeof(pack), "%s/packs/%08x.pack", sdir, loc.pack);
	int pfd = r == 0 ? open(pack, O_RDWR | O_CLOEXEC) : -1;
	uint8_t byte;
	off_t boff = (off_t)(loc.off + STORE_REC_HDR + 300);
	if (pfd < 0 || pread(pfd, &byte, 1, boff) != 1)
		tap_bail("cannot open %s", pack);
	byte ^= 0x10;
	if (pwrite(pfd, &byte, 1, boff) != 1)
		tap_bail("cannot damage %s", pack);
	uint8_t *whole = malloc(len);
	ssize_t rw = partial_pread(&fs, k, fd, whole, len, 0);
	ssize_t rp = partial_pread(&fs, k, fd, buf, sizeof(buf), 100);
	ssize_t r1 = partial_pread(&fs, k, fd, whole, PARTIAL_BLOCK, PARTIAL_BLOCK);
	ok(rw == -EIO, "a flipped byte in a stored block: a read of whole blocks is EIO (%zd)", rw);
	ok(rp == -EIO, "and so is a read of 64 bytes inside that block (%zd)", rp);
	ok(r1 == (ssize_t)PARTIAL_BLOCK && memcmp(whole, ref + PARTIAL_BLOCK, PARTIAL_BLOCK) == 0,
	   "the block written after the move still reads (%zd)", r1);
	byte ^= 0x10;
	if (pwrite(pfd, &byte, 1, boff) != 1)
		tap_bail("cannot repair %s", pack);
	close(pfd);
	free(whole);

	const char *name = fs.xattr_trusted ? PARTIAL_XATTR_TRUSTED : PARTIAL_XATTR_USER;
	if (fsetxattr(fd, name, "CPRT garbage", 12, 0) < 0)
		tap_bail("cannot damage the record");
	struct cowfs_node *d = node_of(file);
	r = partial_load(&fs, d);
	ok(r == -EIO && !node_is_partial(d), "a damaged record is EIO (%d)", r);

	store_close(the_store);
	close(fd);
	return tap_done();
}
