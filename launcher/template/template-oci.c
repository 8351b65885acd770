/* Container images: an OCI image layout (index.json -> manifest -> layers)
 * or a docker-archive as written by `podman save` (manifest.json ->
 * Layers), given as a directory or as a tar of one.
 *
 * Layers are applied in order with their whiteouts (template-tar.c).  In
 * an OCI layout every blob on the way from index.json to the layers is
 * checked against its sha256 digest.  A layer is hashed while it is being
 * unpacked: the bytes checked are exactly the bytes applied, with no
 * window for the file to change between a check and a second read, and a
 * mismatch fails the import, which discards the whole temporary tree.
 *
 * sha256 comes from nettle: libarchive on Debian is already linked
 * against libnettle, so it adds no library the process does not load
 * anyway (OpenSSL's libcrypto would be a new, much larger one). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "template-internal.h"

#define JSON_MAX (16 * 1024 * 1024)
#define MAX_LAYERS 1000

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

static inline void json_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define cleanup_json __attribute__((cleanup(json_putp)))

/* ---- digests ------------------------------------------------------------------ */

/* "sha256:<64 lowercase hex>" -> the hex part. */
static int digest_hex(const char *digest, const char **hex, struct corral_error *err)
{
	if (!digest)
		return err_plain(err, EINVAL, "a descriptor has no digest");
	if (strncmp(digest, "sha256:", 7))
		return err_plain(err, ENOTSUP, "digest '%.100s' is not sha256, the only algorithm supported", digest);
	const char *h = digest + 7;
	if (strlen(h) != 64 || strspn(h, "0123456789abcdef") != 64)
		return err_plain(err, EINVAL, "malformed digest '%.100s'", digest);
	*hex = h;
	return 0;
}

static void sha_hex(struct sha256_ctx *ctx, char out[65])
{
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_digest(ctx, sizeof(d), d);
	for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ---- JSON ------------------------------------------------------------------------- */

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static json_object *jarray(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array))
		return NULL;
	return v;
}

/* Reads path below dir_fd (never leaving it) and parses it as JSON.  With
 * want_hex, the file must hash to that sha256. */
static int read_json(int dir_fd, const char *path, const char *want_hex, json_object **ret,
		     struct corral_error *err)
{
	cleanup_close int fd = tmpl_open_beneath(dir_fd, path, O_RDONLY | O_NOCTTY, false);
	if (fd < 0)
		return err_set(err, -fd, "open %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(err, errno, "stat %s", path);
	if (!S_ISREG(st.st_mode) || st.st_size > JSON_MAX)
		return err_plain(err, EINVAL, "%s is not a regular file of at most %d bytes", path, JSON_MAX);
	cleanup_free char *buf = NULL;
	size_t got;
	int rr = fd_read_all(fd, path, &buf, &got, err);
	if (rr < 0)
		return rr;
	if (want_hex) {
		struct sha256_ctx ctx;
		char hex[65];
		sha256_init(&ctx);
		sha256_update(&ctx, got, (const uint8_t *)buf);
		sha_hex(&ctx, hex);
		if (strcmp(hex, want_hex))
			return err_plain(err, EBADMSG, "%s does not match its digest (it hashes to sha256:%s)", path,
					 hex);
	}
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return err_set(err, ENOMEM, "parse %s", path);
	json_object *o = json_tokener_parse_ex(tok, buf, (int)got);
	enum json_tokener_error je = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!o || je != json_tokener_success) {
		json_object_put(o);
		return err_plain(err, EINVAL, "%s is not valid JSON: %s", path, json_tokener_error_desc(je));
	}
	*ret = o;
	return 0;
}

static int read_blob_json(int img_fd, json_object *desc, json_object **ret, struct corral_error *err)
{
	const char *hex = NULL;
	int r = digest_hex(jstr(desc, "digest"), &hex, err);
	if (r < 0)
		return r;
	char path[128];
	snprintf(path, sizeof(path), "blobs/sha256/%s", hex);
	return read_json(img_fd, path, hex, ret, err);
}

/* ---- applying one layer --------------------------------------------------------------- */

/* Unpacks the layer file at path (below img_fd) onto rootfs_fd.
 * want_hex: digest the file must have (OCI).  diff_hex: digest of the
 * uncompressed tar (docker-archive); checked when the file is not
 * compressed, since otherwise it would take a second, decompressing pass. */
static int apply_layer(int img_fd, const char *path, int rootfs_fd, unsigned idx, const char *want_hex,
		       int64_t want_size, const char *diff_hex, struct corral_error *err)
{
	char label[160];
	snprintf(label, sizeof(label), "layer %u (%.100s)", idx + 1, path);
	cleanup_close int fd = tmpl_open_beneath(img_fd, path, O_RDONLY | O_NOCTTY, false);
	if (fd < 0)
		return err_set(err, -fd, "%s: open", label);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return err_plain(err, EINVAL, "%s is not a regular file", label);

	struct sha256_ctx ctx;
	sha256_init(&ctx);
	struct tmpl_extract x = { .label = label, .layer = true, .allow_empty = true, .sha = &ctx };
	int r = tmpl_extract_tar(fd, rootfs_fd, &x, err);
	if (r < 0)
		return r;
	char hex[65];
	sha_hex(&ctx, hex);
	if (want_size >= 0 && x.bytes != (uint64_t)want_size)
		return err_plain(err, EBADMSG, "%s: %llu bytes where the manifest says %lld", label,
				 (unsigned long long)x.bytes, (long long)want_size);
	if (want_hex && strcmp(hex, want_hex))
		return err_plain(err, EBADMSG, "%s does not match its digest sha256:%s (it hashes to sha256:%s)", label,
				 want_hex, hex);
	if (diff_hex && !x.compressed && strcmp(hex, diff_hex))
		return err_plain(err, EBADMSG, "%s does not match diff_id sha256:%s in the image config (it hashes to sha256:%s)",
				 label, diff_hex, hex);
	return 0;
}

/* ---- OCI image layout ------------------------------------------------------------------ */

static const char *host_arch(void)
{
#if defined(__x86_64__)
	return "amd64";
#elif defined(__aarch64__)
	return "arm64";
#elif defined(__i386__)
	return "386";
#elif defined(__arm__)
	return "arm";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "ppc64le";
#elif defined(__s390x__)
	return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
	return "riscv64";
#else
	return "";
#endif
}

/* From an index's manifests: the one for linux on this architecture, or
 * the only one when none says its platform. */
static int pick_manifest(json_object *index, const char *what, json_object **ret, struct corral_error *err)
{
	json_object *list = jarray(index, "manifests");
	if (!list)
		return err_plain(err, EINVAL, "%s has no \"manifests\" list", what);
	json_object *plain = NULL;
	size_t n = json_object_array_length(list), plain_count = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(list, i), *p;
		if (!d || !json_object_is_type(d, json_type_object))
			continue;
		if (!json_object_object_get_ex(d, "platform", &p)) {
			plain_count++;
			plain = plain ? plain : d;
			continue;
		}
		const char *os = jstr(p, "os"), *arch = jstr(p, "architecture");
		if (os && arch && !strcmp(os, "linux") && !strcmp(arch, host_arch())) {
			*ret = d;
			return 0;
		}
	}
	if (plain_count == 1) {
		*ret = plain;
		return 0;
	}
	if (plain_count > 1)
		return err_plain(err, EINVAL, "%s lists %zu images; import a layout that holds one", what, plain_count);
	return err_plain(err, ENOENT, "%s has no image for linux/%s", what, host_arch());
}

static int apply_oci_layout(int img_fd, int rootfs_fd, struct corral_error *err)
{
	cleanup_json json_object *index = NULL;
	int r = read_json(img_fd, "index.json", NULL, &index, err);
	if (r < 0)
		return r;
	/* Follow nested indexes (multi-platform images) down to a manifest. */
	cleanup_json json_object *manifest = NULL;
	json_object *at = index;
	for (int depth = 0;; depth++) {
		json_object *desc = NULL;
		r = pick_manifest(at, depth ? "a nested index" : "index.json", &desc, err);
		if (r < 0)
			return r;
		json_object *blob = NULL;
		r = read_blob_json(img_fd, desc, &blob, err);
		if (r < 0)
			return err_wrap(err, "manifest");
		/* desc lives in the previous blob: read it before that goes */
		const char *mt = jstr(desc, "mediaType");
		if (!mt)
			mt = jstr(blob, "mediaType");
		bool nested = (mt && (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST))) ||
			      (!mt && jarray(blob, "manifests"));
		json_object_put(manifest);
		manifest = blob;
		if (!nested)
			break;
		if (depth == 3)
			return err_plain(err, ELOOP, "image indexes nested too deep");
		at = manifest;
	}

	json_object *layers = jarray(manifest, "layers");
	if (!layers)
		return err_plain(err, EINVAL, "the manifest has no \"layers\" list");
	size_t n = json_object_array_length(layers);
	if (n > MAX_LAYERS)
		return err_plain(err, E2BIG, "the manifest lists %zu layers (at most %d)", n, MAX_LAYERS);
	for (size_t i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(layers, i), *sz;
		const char *mt = jstr(d, "mediaType"), *hex;
		if (mt && (strstr(mt, "encrypted") || !strstr(mt, "tar")))
			return err_plain(err, ENOTSUP, "layer %zu has media type %.200s, which is not a tar layer",
					 i + 1, mt);
		r = digest_hex(jstr(d, "digest"), &hex, err);
		if (r < 0)
			return err_wrap(err, "layer %zu", i + 1);
		int64_t size = -1;
		if (json_object_object_get_ex(d, "size", &sz) && json_object_is_type(sz, json_type_int))
			size = json_object_get_int64(sz);
		char path[128];
		snprintf(path, sizeof(path), "blobs/sha256/%s", hex);
		r = apply_layer(img_fd, path, rootfs_fd, i, hex, size, NULL, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- docker-archive ------------------------------------------------------------------------ */

static int apply_docker_archive(int img_fd, int rootfs_fd, struct corral_error *err)
{
	cleanup_json json_object *list = NULL;
	int r = read_json(img_fd, "manifest.json", NULL, &list, err);
	if (r < 0)
		return r;
	if (!json_object_is_type(list, json_type_array) || json_object_array_length(list) == 0)
		return err_plain(err, EINVAL, "manifest.json lists no image");
	if (json_object_array_length(list) > 1)
		return err_plain(err, EINVAL, "manifest.json lists %zu images; save one image to import it",
				 json_object_array_length(list));
	json_object *m = json_object_array_get_idx(list, 0);
	json_object *layers = jarray(m, "Layers");
	const char *config = jstr(m, "Config");
	if (!layers || !config)
		return err_plain(err, EINVAL, "manifest.json lacks \"Config\" or \"Layers\"");
	size_t n = json_object_array_length(layers);
	if (n > MAX_LAYERS)
		return err_plain(err, E2BIG, "manifest.json lists %zu layers (at most %d)", n, MAX_LAYERS);

	char clean[PATH_MAX];
	r = tmpl_clean_path(config, clean, sizeof(clean), err);
	if (r < 0)
		return err_wrap(err, "manifest.json Config");
	cleanup_json json_object *cfg = NULL;
	r = read_json(img_fd, clean, NULL, &cfg, err);
	if (r < 0)
		return err_wrap(err, "image config");
	json_object *rootfs, *diff_ids = NULL;
	if (json_object_object_get_ex(cfg, "rootfs", &rootfs))
		diff_ids = jarray(rootfs, "diff_ids");
	if (diff_ids && json_object_array_length(diff_ids) != n)
		return err_plain(err, EINVAL, "the image config lists %zu diff_ids for %zu layers",
				 json_object_array_length(diff_ids), n);

	for (size_t i = 0; i < n; i++) {
		json_object *l = json_object_array_get_idx(layers, i);
		if (!l || !json_object_is_type(l, json_type_string))
			return err_plain(err, EINVAL, "layer %zu in manifest.json is not a path", i + 1);
		r = tmpl_clean_path(json_object_get_string(l), clean, sizeof(clean), err);
		if (r < 0)
			return err_wrap(err, "layer %zu in manifest.json", i + 1);
		const char *diff_hex = NULL;
		if (diff_ids) {
			json_object *d = json_object_array_get_idx(diff_ids, i);
			r = digest_hex(d && json_object_is_type(d, json_type_string) ? json_object_get_string(d) : NULL,
				       &diff_hex, err);
			if (r < 0)
				return err_wrap(err, "diff_id %zu", i + 1);
		}
		r = apply_layer(img_fd, clean, rootfs_fd, i, NULL, -1, diff_hex, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- entry ----------------------------------------------------------------------------------- */

int tmpl_oci_apply(const char *path, int rootfs_fd, int work_fd, struct corral_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno, "open %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(err, errno, "stat %s", path);
	int img_fd = fd;
	if (!S_ISDIR(st.st_mode)) {
		/* An archive of the layout: unpacked, with the same care as
		 * any tar, into the scratch directory. */
		struct tmpl_extract x = { .label = path };
		int r = tmpl_extract_tar(fd, work_fd, &x, err);
		if (r < 0)
			return err_wrap(err, "unpack the image archive");
		img_fd = work_fd;
	}
	if (faccessat(img_fd, "index.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return apply_oci_layout(img_fd, rootfs_fd, err);
	if (faccessat(img_fd, "manifest.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return apply_docker_archive(img_fd, rootfs_fd, err);
	return err_plain(err, EINVAL,
			 "%s is neither an OCI image layout (no index.json) nor a docker-archive (no manifest.json)",
			 path);
}
