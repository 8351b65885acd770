/* The tree manifest of a snapshot (launcher/snapshot/manifest.c): round
 * trips, refusals of malformed manifests with a clear message (bad magic,
 * version, checksum, truncation at every length, unsafe paths, bad hard
 * links, oversized counts), and the fuzz target (tests/fuzz-manifest.c)
 * over mutated manifests whose checksum is fixed up, so that the checks
 * behind the checksum are the ones exercised. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "snapshot/manifest.h"
#include "tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void add(struct manifest *m, const char *path, uint32_t mode, uint64_t link, const char *target, int nx)
{
	struct manifest_entry e = { .mode = mode, .uid = 1000, .gid = 2000, .atime_sec = 17, .atime_nsec = 5,
				    .mtime_sec = -3, .mtime_nsec = 999999999, .link = link };
	e.path = strdup(path);
	if (S_ISREG(mode) && !link) {
		e.flags = MANIFEST_HAS_RECIPE;
		e.size = 12345;
		memset(e.recipe.hash, 0xab, 16);
		e.recipe.n = 2;
	}
	if (S_ISCHR(mode))
		e.rdev = 0;
	if (target)
		e.target = strdup(target);
	e.nxattrs = (uint32_t)nx;
	e.xattrs = nx ? calloc((size_t)nx, sizeof(*e.xattrs)) : NULL;
	for (int i = 0; i < nx; i++) {
		char name[32];
		snprintf(name, sizeof(name), "user.x%d", i);
		e.xattrs[i].name = strdup(name);
		e.xattrs[i].len = (uint32_t)i;
		e.xattrs[i].value = malloc((size_t)i + 1);
		memset(e.xattrs[i].value, 'v', (size_t)i + 1);
	}
	if (manifest_add(m, &e) < 0)
		tap_bail("out of memory");
}

static void fix_sum(uint8_t *b, size_t len)
{
	uint64_t sum = XXH3_64bits(b, len - 8);
	for (int i = 0; i < 8; i++)
		b[len - 8 + i] = (uint8_t)(sum >> (8 * i));
}

static int parse_msg(const uint8_t *b, size_t len, char *msg)
{
	struct manifest m;
	struct corral_error err = { 0 };
	int r = manifest_parse(b, len, &m, &err);
	if (r == 0)
		manifest_release(&m);
	strcpy(msg, err.msg);
	return r;
}

static uint8_t *sample(size_t *len, struct manifest *out)
{
	struct manifest m = { 0 };
	add(&m, ".", S_IFDIR | 0755, 0, NULL, 0);
	add(&m, "etc", S_IFDIR | 0755, 0, NULL, 1);
	add(&m, "etc/passwd", S_IFREG | 0644, 0, NULL, 3);
	add(&m, "etc/hl", S_IFREG | 0644, 3, NULL, 0);
	add(&m, "etc/sl", S_IFLNK | 0777, 0, "../x/y", 0);
	add(&m, "etc/wh", S_IFCHR, 0, NULL, 0);
	add(&m, "etc/opaque", S_IFDIR | 01777, 0, NULL, 2);
	void *buf;
	struct corral_error err = { 0 };
	if (manifest_encode(&m, &buf, len, &err) < 0)
		tap_bail("encode: %s", err.msg);
	*out = m;
	return buf;
}

int main(void)
{
	struct manifest m0, m;
	size_t len;
	uint8_t *b = sample(&len, &m0);
	char msg[1024];
	struct corral_error err = { 0 };

	ok(manifest_parse(b, len, &m, &err) == 0, "a manifest parses back (%s)", err.msg);
	bool same = m.n == m0.n;
	for (size_t i = 0; same && i < m.n; i++)
		same = !strcmp(m.e[i].path, m0.e[i].path) && m.e[i].mode == m0.e[i].mode &&
		       m.e[i].uid == m0.e[i].uid && m.e[i].mtime_sec == m0.e[i].mtime_sec &&
		       m.e[i].link == m0.e[i].link && m.e[i].nxattrs == m0.e[i].nxattrs &&
		       !memcmp(&m.e[i].recipe, &m0.e[i].recipe, sizeof(m.e[i].recipe)) &&
		       (!m.e[i].target || !strcmp(m.e[i].target, m0.e[i].target));
	ok(same, "every field round-trips");
	ok(LLVMFuzzerTestOneInput(b, len) == 0, "the fuzz target accepts it (re-encodes identically)");
	manifest_release(&m);

	uint8_t *c = malloc(len);
	memcpy(c, b, len);
	c[0] = 'X';
	ok(parse_msg(c, len, msg) == -EINVAL && strstr(msg, "not a snapshot manifest"), "bad magic: %s", msg);
	memcpy(c, b, len);
	c[4] = 9;
	ok(parse_msg(c, len, msg) == -EPROTONOSUPPORT && strstr(msg, "version 9"), "another version: %s", msg);
	memcpy(c, b, len);
	c[len / 2] ^= 1;
	ok(parse_msg(c, len, msg) == -EBADMSG && strstr(msg, "checksum"), "a flipped bit: %s", msg);

	int bad = 0;
	for (size_t cut = 0; cut < len; cut++)
		if (parse_msg(b, cut, msg) == 0 || !msg[0])
			bad++;
	ok(bad == 0, "every truncation (%zu of them) is refused with a message", len);
	bad = 0;
	for (size_t cut = 16; cut < len - 8; cut++) {
		/* A shorter body with a valid checksum: the structure must fail. */
		uint8_t *t = malloc(cut + 8);
		memcpy(t, b, cut);
		fix_sum(t, cut + 8);
		if (parse_msg(t, cut + 8, msg) == 0 || !msg[0])
			bad++;
		free(t);
	}
	ok(bad == 0, "every truncated body with a good checksum is refused");

	/* Unsafe paths and links, checksummed as if written by us. */
	const char *paths[] = { "..", "a/../b", "/etc", "a//b", "a/", "./a", "" };
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct manifest bm = { 0 };
		add(&bm, ".", S_IFDIR | 0755, 0, NULL, 0);
		add(&bm, paths[i], S_IFDIR | 0755, 0, NULL, 0);
		void *eb;
		size_t el;
		manifest_encode(&bm, &eb, &el, &err);
		ok(parse_msg(eb, el, msg) == -EINVAL && strstr(msg, "snapshot manifest: "), "path '%s' refused: %s",
		   paths[i], msg);
		free(eb);
		manifest_release(&bm);
	}
	{
		struct manifest bm = { 0 };
		add(&bm, ".", S_IFDIR | 0755, 0, NULL, 0);
		add(&bm, "a", S_IFREG | 0644, 3, NULL, 0);
		add(&bm, "b", S_IFREG | 0644, 0, NULL, 0);
		void *eb;
		size_t el;
		manifest_encode(&bm, &eb, &el, &err);
		ok(parse_msg(eb, el, msg) == -EINVAL, "a hard link to a later entry is refused: %s", msg);
		free(eb);
		manifest_release(&bm);
	}
	{
		/* A huge xattr count behind a valid checksum. */
		memcpy(c, b, len);
		size_t off = 16 + 2 + 1; /* the root entry's path "." */
		off += 4 * 3 + 12 * 2 + 8 * 3 + 4 + 20 + 2;
		c[off] = c[off + 1] = c[off + 2] = c[off + 3] = 0xff;
		fix_sum(c, len);
		ok(parse_msg(c, len, msg) == -EINVAL && strstr(msg, "entry 0"), "a huge xattr count: %s", msg);
	}

	{
		/* Many entries of the smallest size parse (the count's bound
		 * is the real minimum entry size). */
		struct manifest bm = { 0 };
		add(&bm, ".", S_IFDIR | 0755, 0, NULL, 0);
		for (int i = 0; i < 60; i++) {
			char name[2] = { (char)(i < 26 ? 'a' + i : i < 52 ? 'A' + i - 26 : '0' + i - 52), 0 };
			add(&bm, name, S_IFIFO | 0644, 0, NULL, 0);
		}
		void *eb;
		size_t el;
		manifest_encode(&bm, &eb, &el, &err);
		ok(parse_msg(eb, el, msg) == 0, "61 entries of the smallest size parse (%s)", msg);
		free(eb);
		manifest_release(&bm);
	}

	/* Mutations with the checksum fixed up: never a crash. */
	srand(12345);
	int parsed = 0;
	for (int round = 0; round < 200000; round++) {
		memcpy(c, b, len);
		int flips = 1 + rand() % 4;
		for (int k = 0; k < flips; k++)
			c[16 + (size_t)rand() % (len - 24)] ^= (uint8_t)(1u << (rand() % 8));
		fix_sum(c, len);
		struct manifest mm;
		if (manifest_parse(c, len, &mm, NULL) == 0) {
			parsed++;
			manifest_release(&mm);
		}
		LLVMFuzzerTestOneInput(c, len);
	}
	ok(1, "200000 mutated manifests parsed or refused without a crash (%d parsed)", parsed);
	free(c);
	free(b);
	manifest_release(&m0);
	return tap_done();
}
