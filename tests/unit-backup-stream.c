/* The backup stream (launcher/backup/backup-stream.c) and the checks that
 * verify and restore make on it (backup_verify): a written stream reads
 * back record by record; a wrong magic, a wrong version (with the header
 * checksum fixed up), a truncation at every length, a flipped bit at every
 * byte, a record out of order or defined twice, a recipe naming a block
 * never sent, trailing bytes after END: each refused with a message; and
 * the fuzz target (tests/fuzz-backup-stream.c) over random mutations. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "backup/backup.h"
#include "tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct opts {
	bool block_twice, recipe_first, skip_block, extra_after_end;
};

/* A small valid stream (or a broken one, per o) into *len bytes. */
static uint8_t *make_stream(size_t *len, const struct opts *o)
{
	struct corral_error err = { 0 };
	struct manifest m = { 0 };
	struct manifest_entry root = { .path = strdup("."), .mode = S_IFDIR | 0755 };
	manifest_add(&m, &root);
	struct store_key rk = { .n = 0 }, bk1 = { .n = 0 }, bk2 = { .n = 1 };
	memset(rk.hash, 0x11, 16);
	memset(bk1.hash, 0x22, 16);
	memset(bk2.hash, 0x33, 16);
	struct manifest_entry f = { .path = strdup("file"), .mode = S_IFREG | 0644, .flags = MANIFEST_HAS_RECIPE,
				    .size = 70000, .recipe = rk };
	manifest_add(&m, &f);
	void *mbuf;
	size_t mlen;
	if (manifest_encode(&m, &mbuf, &mlen, &err) < 0)
		tap_bail("encode: %s", err.msg);
	manifest_release(&m);

	int fd = memfd_create("stream", MFD_CLOEXEC);
	struct bstream_writer w;
	struct bstream_header h = { .created = 1700000000 };
	strcpy(h.container, "web");
	strcpy(h.tag, "backup-1");
	strcpy(h.template_name, "default");
	strcpy(h.version, "test");
	h.config = strdup("name = web\ntemplate = default\n");
	h.config_len = strlen(h.config);
	memset(h.backup_id, 7, 16);
	static uint8_t data[STORE_BLOCK_SIZE];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + i / 251);
	struct store_recipe_entry re[2] = { { bk1, STORE_BLOCK_SIZE }, { bk2, 70000 - STORE_BLOCK_SIZE } };
	struct store_recipe rec = { .size = 70000, .n = 2, .e = re };
	int r = bstream_writer_open(&w, fd, 3, &err);
	if (r == 0)
		r = bstream_write_header(&w, &h, &err);
	if (r == 0)
		r = bstream_write_manifest(&w, mbuf, mlen, &err);
	if (r == 0 && o->recipe_first)
		r = bstream_write_recipe(&w, &rk, &rec, &err);
	if (r == 0)
		r = bstream_write_block(&w, &bk1, data, STORE_BLOCK_SIZE, &err);
	if (r == 0 && o->block_twice)
		r = bstream_write_block(&w, &bk1, data, STORE_BLOCK_SIZE, &err);
	if (r == 0 && !o->skip_block)
		r = bstream_write_block(&w, &bk2, data + 100, 70000 - STORE_BLOCK_SIZE, &err);
	if (r == 0 && !o->recipe_first)
		r = bstream_write_recipe(&w, &rk, &rec, &err);
	if (r == 0)
		r = bstream_writer_finish(&w, &err);
	if (r < 0)
		tap_bail("write: %s", err.msg);
	bstream_writer_release(&w);
	bstream_header_release(&h);
	free(mbuf);
	struct stat st;
	fstat(fd, &st);
	*len = (size_t)st.st_size + (o->extra_after_end ? 3 : 0);
	uint8_t *b = calloc(1, *len);
	if (pread(fd, b, (size_t)st.st_size, 0) != st.st_size)
		tap_bail("read back");
	close(fd);
	return b;
}

static int verify_msg(const uint8_t *b, size_t len, char *msg, struct backup_info *keep)
{
	int fd = memfd_create("v", MFD_CLOEXEC);
	if (len && write(fd, b, len) != (ssize_t)len)
		tap_bail("memfd");
	lseek(fd, 0, SEEK_SET);
	struct backup_info info;
	struct corral_error err = { 0 };
	int r = backup_verify(fd, &info, &err);
	close(fd);
	strcpy(msg, err.msg);
	if (r == 0) {
		if (keep)
			*keep = info;
		else
			backup_info_release(&info);
	}
	return r;
}

static void fix_header_sum(uint8_t *b)
{
	uint64_t s = XXH3_64bits(b, 24);
	for (int i = 0; i < 8; i++)
		b[24 + i] = (uint8_t)(s >> (8 * i));
}

int main(void)
{
	struct opts good = { 0 };
	size_t len;
	uint8_t *b = make_stream(&len, &good);
	char msg[1024];
	struct backup_info info;

	ok(verify_msg(b, len, msg, &info) == 0, "a written stream verifies (%s)", msg);
	ok(!strcmp(info.h.container, "web") && !strcmp(info.h.tag, "backup-1") && info.counts[BREC_BLOCK] == 2 &&
		   info.counts[BREC_RECIPE] == 1 && info.content_bytes == 70000 && info.files == 1 &&
		   info.entries == 2 && info.h.config_len == strlen("name = web\ntemplate = default\n"),
	   "its header, counts and sizes read back");
	backup_info_release(&info);
	ok(LLVMFuzzerTestOneInput(b, len) == 0, "the fuzz target accepts it");

	uint8_t *c = malloc(len + 16);
	memcpy(c, b, len);
	memcpy(c, "TARBALL!", 8);
	ok(verify_msg(c, len, msg, NULL) == -EINVAL && strstr(msg, "not a corral backup stream: magic 'TARBALL!'"),
	   "wrong magic: %s", msg);
	memcpy(c, b, len);
	c[8] = 9;
	fix_header_sum(c);
	ok(verify_msg(c, len, msg, NULL) == -EPROTONOSUPPORT && strstr(msg, "version 9") &&
		   strstr(msg, "reads version 1"),
	   "wrong version: %s", msg);
	memcpy(c, b, len);
	c[8] = 9;
	ok(verify_msg(c, len, msg, NULL) == -EBADMSG && strstr(msg, "header checksum"), "a patched header: %s", msg);

	int bad = 0;
	for (size_t cut = 0; cut < len; cut++)
		if (verify_msg(b, cut, msg, NULL) == 0 || !msg[0])
			bad++;
	ok(bad == 0, "every truncation (%zu of them) is refused with a message", len);
	bad = 0;
	for (size_t i = 0; i < len; i++) {
		memcpy(c, b, len);
		c[i] ^= (uint8_t)(1u << (i % 8));
		if (verify_msg(c, len, msg, NULL) == 0 || !msg[0]) {
			diag("flip at %zu (bit %zu) accepted", i, i % 8);
			bad++;
		}
	}
	ok(bad == 0, "a flipped bit at every byte (%zu) is refused with a message", len);
	memcpy(c, b, len);
	memcpy(c + len, "xyz", 3);
	ok(verify_msg(c, len + 3, msg, NULL) == -EBADMSG && strstr(msg, "after the end"), "trailing bytes: %s", msg);

	struct opts o = { .block_twice = true };
	uint8_t *t = make_stream(&len, &o);
	ok(verify_msg(t, len, msg, NULL) == -EBADMSG && strstr(msg, "defined twice"), "a block sent twice: %s", msg);
	free(t);
	o = (struct opts){ .recipe_first = true };
	t = make_stream(&len, &o);
	ok(verify_msg(t, len, msg, NULL) == -EBADMSG && strstr(msg, "not sent before it"),
	   "a recipe before its blocks: %s", msg);
	free(t);
	o = (struct opts){ .skip_block = true };
	t = make_stream(&len, &o);
	ok(verify_msg(t, len, msg, NULL) == -EBADMSG && strstr(msg, "not sent before it"),
	   "a recipe naming a block never sent: %s", msg);
	free(t);

	/* Random mutations: one to eight bytes changed, sometimes cut. */
	size_t glen;
	uint8_t *g = make_stream(&glen, &good);
	srand(42);
	int accepted = 0;
	for (int i = 0; i < 3000; i++) {
		memcpy(c, g, glen);
		int k = 1 + rand() % 8;
		for (int j = 0; j < k; j++)
			c[rand() % glen] = (uint8_t)rand();
		size_t l = rand() % 4 ? glen : (size_t)rand() % glen;
		LLVMFuzzerTestOneInput(c, l);
		if (verify_msg(c, l, msg, NULL) == 0)
			accepted++;
	}
	ok(1, "3000 mutated streams verified or refused without a crash (%d accepted)", accepted);
	ok(accepted == 0, "no mutated stream is accepted");
	free(g);
	free(c);
	free(b);
	return tap_done();
}
