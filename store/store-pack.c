/* store: pack files (FORMAT.md "Packs").  Each writing handle appends to a
 * pack of its own, which it holds flock'ed LOCK_EX for its whole life
 * (GC leaves such packs alone); appends happen under the index lock, so a
 * pack's length and what the index covers of it agree whenever the lock
 * is free, but for a record whose writer was killed between its write and
 * its index entry, which the next catch-up indexes.  Records are never
 * changed in place; a pack only ever grows until GC deletes it whole. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "store-internal.h"

void store_pack_name(uint32_t no, char buf[32])
{
	snprintf(buf, 32, "%08x.pack", no);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int store_pack_list(struct store *s, uint32_t **ret, size_t *ret_n)
{
	cleanup_dir DIR *d = dir_stream_at(s->packsfd);
	if (!d)
		return -errno;
	size_t n = 0, cap = 16;
	cleanup_free uint32_t *v = malloc(cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	struct dirent *e;
	while ((e = readdir(d))) {
		unsigned no;
		char tail[32];
		if (strlen(e->d_name) != 13 || sscanf(e->d_name, "%8x%31s", &no, tail) != 2 ||
		    strcmp(tail, ".pack") != 0 || no == 0)
			continue;
		if (n == cap) {
			uint32_t *nv = realloc(v, (cap *= 2) * sizeof(*v));
			if (!nv)
				return -ENOMEM;
			v = nv;
		}
		v[n++] = no;
	}
	qsort(v, n, sizeof(*v), cmp_u32);
	*ret = take_ptr(v);
	*ret_n = n;
	return 0;
}

int store_packs_size(struct store *s, uint64_t *ret_n, uint64_t *ret_bytes)
{
	cleanup_free uint32_t *packs = NULL;
	size_t n;
	int r = store_pack_list(s, &packs, &n);
	if (r < 0)
		return r;
	*ret_n = n;
	*ret_bytes = 0;
	for (size_t i = 0; i < n; i++) {
		char name[32];
		struct stat sb;
		store_pack_name(packs[i], name);
		if (fstatat(s->packsfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
			*ret_bytes += (uint64_t)sb.st_size;
	}
	return 0;
}

void store_pack_fd_forget(struct store *s, uint32_t no)
{
	for (int i = 0; i < STORE_RFD_CACHE; i++)
		if (s->rfd[i].fd >= 0 && s->rfd[i].no == no) {
			close(s->rfd[i].fd);
			s->rfd[i].fd = -1;
		}
}

int store_pack_fd(struct store *s, uint32_t no)
{
	if (s->pack_fd >= 0 && no == s->pack_no)
		return s->pack_fd;
	for (int i = 0; i < STORE_RFD_CACHE; i++)
		if (s->rfd[i].fd >= 0 && s->rfd[i].no == no)
			return s->rfd[i].fd;
	char name[32];
	store_pack_name(no, name);
	cleanup_close int fd = openat(s->packsfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	uint8_t h[STORE_PACK_HDR];
	uint32_t hno;
	if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return -EBADMSG;
	int r = store_pack_hdr_check(h, &hno);
	if (r < 0)
		return r;
	if (hno != no)
		return -EBADMSG;
	unsigned i = s->rfd_next++ % STORE_RFD_CACHE;
	if (s->rfd[i].fd >= 0)
		close(s->rfd[i].fd);
	s->rfd[i].no = no;
	s->rfd[i].fd = take_fd(fd);
	return s->rfd[i].fd;
}

int store_pack_own(struct store *s)
{
	if (s->pack_fd >= 0 && s->pack_end < STORE_PACK_MAX)
		return 0;
	if (s->pack_fd >= 0) {
		/* Full: the next pack; this one is synced by store_sync's caller
		 * before anything points at its records, so sync it now. */
		if (s->pack_dirty && fdatasync(s->pack_fd) < 0)
			return -errno;
		close(s->pack_fd);
		s->pack_fd = -1;
	}
	/* Made nameless (O_TMPFILE), locked, given its header and synced,
	 * then linked into place: a pack that has a name is always a valid
	 * (maybe empty) pack, however the process dies. */
	cleanup_close int fd = openat(s->packsfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* Held for the handle's life: GC skips a pack it cannot lock. */
	int r = store_lock(fd, LOCK_EX | LOCK_NB);
	if (r < 0)
		return r;
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	for (int tries = 0; tries < 64; tries++) {
		uint32_t no;
		if (getrandom(&no, sizeof(no), 0) != sizeof(no))
			return -EIO;
		if (no == 0)
			continue;
		uint8_t h[STORE_PACK_HDR];
		store_pack_hdr_encode(no, h);
		if (pwrite(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
			return errno ? -errno : -EIO;
		if (fdatasync(fd) < 0)
			return -errno;
		char name[32];
		store_pack_name(no, name);
		store_crash_point(s, "pack-create");
		if (linkat(AT_FDCWD, proc, s->packsfd, name, AT_SYMLINK_FOLLOW) < 0) {
			if (errno == EEXIST)
				continue;
			return -errno;
		}
		if (fsync(s->packsfd) < 0)
			return -errno;
		s->pack_fd = take_fd(fd);
		s->pack_no = no;
		s->pack_end = STORE_PACK_HDR;
		s->pack_dirty = false;
		return 0;
	}
	return -EEXIST;
}

void store_crash_point(struct store *s, const char *point)
{
	if (s->crash_at && strcmp(s->crash_at, point) == 0)
		raise(SIGKILL);
	if (s->stop_at && strcmp(s->stop_at, point) == 0)
		raise(SIGSTOP);
}

int store_pack_append(struct store *s, const struct store_rec *rec, const void *payload, struct store_loc *ret)
{
	if (s->broken)
		return -EIO;
	int r = store_pack_own(s);
	if (r < 0)
		return r;
	uint8_t h[STORE_REC_HDR];
	store_rec_encode(rec, h);
	struct iovec iov[2] = { { h, sizeof(h) }, { (void *)payload, rec->len } };
	size_t total = sizeof(h) + rec->len;
	store_crash_point(s, "append-start");
	if (s->crash_at && strcmp(s->crash_at, "append-torn") == 0) {
		/* A record cut short, as a kill during the write leaves it. */
		if (pwrite(s->pack_fd, h, sizeof(h), s->pack_end) < 0)
			return -errno;
		if (rec->len > 1 && pwrite(s->pack_fd, payload, rec->len / 2, s->pack_end + sizeof(h)) < 0)
			return -errno;
		raise(SIGKILL);
	}
	size_t done = 0;
	while (done < total) {
		ssize_t n = pwritev(s->pack_fd, iov, 2, s->pack_end + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* A short record may now sit past pack_end: stop writing
			 * (scans treat it as a torn tail). */
			s->broken = true;
			return n < 0 ? -errno : -EIO;
		}
		done += n;
		for (int i = 0; i < 2 && n > 0; i++) {
			size_t k = (size_t)n < iov[i].iov_len ? (size_t)n : iov[i].iov_len;
			iov[i].iov_base = (uint8_t *)iov[i].iov_base + k;
			iov[i].iov_len -= k;
			n -= k;
		}
	}
	store_crash_point(s, "append-written");
	*ret = (struct store_loc){ .pack = s->pack_no, .off = s->pack_end, .len = rec->len, .kind = rec->kind };
	s->pack_end += total;
	s->pack_dirty = true;
	return 0;
}

int store_pack_read(struct store *s, int fd, uint64_t off, struct store_rec *rec, uint8_t *payload, size_t cap,
		    bool check_key)
{
	uint8_t h[STORE_REC_HDR];
	ssize_t n = pread(fd, h, sizeof(h), off);
	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(h))
		return -ENODATA;
	int r = store_rec_decode(h, rec);
	if (r < 0)
		return r;
	if (!payload)
		return 0;
	if (rec->len > cap)
		return -EBADMSG;
	n = pread(fd, payload, rec->len, off + sizeof(h));
	if (n < 0)
		return -errno;
	if ((size_t)n != rec->len)
		return -ENODATA;
	return store_rec_verify(s, rec, payload, check_key);
}

int store_rec_verify(struct store *s, const struct store_rec *rec, const uint8_t *payload, bool check_key)
{
	if (store_check64(payload, rec->len) != rec->data_check)
		return -EBADMSG;
	if (check_key) {
		uint8_t hash[16];
		s->hash(payload, rec->len, s->seed, hash);
		if (memcmp(hash, rec->key.hash, 16) != 0)
			return -EBADMSG;
	}
	return 0;
}

/* After a bad header at `off`: the next offset holding a valid record
 * header, or the file's end. */
static uint64_t resync(int fd, uint64_t off, uint64_t size)
{
	uint8_t buf[65536 + STORE_REC_HDR];
	for (uint64_t pos = off + 1; pos < size;) {
		ssize_t n = pread(fd, buf, sizeof(buf), pos);
		if (n <= 0)
			break;
		for (ssize_t i = 0; i + STORE_REC_HDR <= n; i++) {
			struct store_rec rec;
			if (buf[i] == STORE_REC_MAGIC[0] && store_rec_decode(buf + i, &rec) == 0)
				return pos + i;
		}
		if ((size_t)n < sizeof(buf))
			break;
		pos += n - STORE_REC_HDR;
	}
	return size;
}

int store_pack_scan(struct store *s, int fd, uint32_t no, uint64_t from, const struct store_scan_cb *cb,
		    uint64_t *ret_end, uint64_t *ret_torn)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	uint64_t size = st.st_size, off = from;
	cleanup_free uint8_t *payload = cb->verify_payload ? malloc(STORE_RECORD_MAX) : NULL;
	if (cb->verify_payload && !payload)
		return -ENOMEM;
	*ret_torn = 0;
	while (off < size) {
		struct store_rec rec;
		int r = store_pack_read(s, fd, off, &rec, payload, STORE_RECORD_MAX, cb->verify_payload);
		if (r == 0 && off + STORE_REC_HDR + rec.len > size)
			r = -ENODATA;
		if (r == 0) {
			if (cb->rec) {
				r = cb->rec(cb->ctx, no, off, &rec);
				if (r < 0)
					return r;
			}
			off += STORE_REC_HDR + rec.len;
			continue;
		}
		if (r == -ENODATA || (r == -EBADMSG && size - off < STORE_REC_HDR)) {
			/* The last record is cut short: a write killed half-way
			 * (never indexed, never pointed at) or a truncation. */
			*ret_torn = size - off;
			if (cb->bad)
				cb->bad(cb->ctx, no, off, size - off, "torn record at the end of the pack");
			break;
		}
		if (r != -EBADMSG && r != -EPROTONOSUPPORT)
			return r;
		/* Header intact, payload damaged: skip just this record. */
		struct store_rec hdr;
		uint8_t h[STORE_REC_HDR];
		if (pread(fd, h, sizeof(h), off) == (ssize_t)sizeof(h) && store_rec_decode(h, &hdr) == 0 &&
		    off + STORE_REC_HDR + hdr.len <= size) {
			if (cb->bad) {
				char key[STORE_KEY_STR_MAX], what[160];
				snprintf(what, sizeof(what), "%s %s: payload does not match its checksum",
					 hdr.kind == STORE_KIND_BLOCK ? "block" : "recipe", store_key_str(&hdr.key, key));
				cb->bad(cb->ctx, no, off, STORE_REC_HDR + hdr.len, what);
			}
			off += STORE_REC_HDR + hdr.len;
			continue;
		}
		uint64_t next = resync(fd, off, size);
		if (cb->bad)
			cb->bad(cb->ctx, no, off, next - off, "damaged record header");
		off = next;
	}
	*ret_end = off;
	return 0;
}
