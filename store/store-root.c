/* store: roots, the named lists of recipes that GC keeps (FORMAT.md
 * "Roots").  A root file is text, committed atomically, its last line a
 * checksum of the rest so a damaged root is an error, never a short list. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "store-internal.h"

#define ROOT_MAGIC "corral-store-root 1\n"
#define ROOT_MAX (256u * 1024 * 1024)

static int name_check(const char *name, struct corral_error *err)
{
	size_t len = strlen(name);
	bool ok = len > 0 && len <= 200 && name[0] != '.';
	for (size_t i = 0; ok && i < len; i++) {
		char c = name[i];
		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		     c == '.' || c == '-';
	}
	return ok ? 0 : err_plain(err, EINVAL, "invalid store root name '%s'", name);
}

void store_root_release(struct store_root *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->e[i].label);
	free(r->e);
	r->e = NULL;
	r->n = 0;
}

/* Labels are escaped: bytes outside '!'..'~' and the backslash as \xHH. */
static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = (*cap ? *cap : 4096);
		while (*len + n + 1 > c)
			c *= 2;
		char *b = realloc(*buf, c);
		if (!b)
			return -ENOMEM;
		*buf = b;
		*cap = c;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

int store_root_commit(struct store *s, const char *name, const struct store_root *root, struct corral_error *err)
{
	int r = name_check(name, err);
	if (r < 0)
		return r;
	if (s->txn <= 0)
		return err_plain(err, EINVAL, "store root commit outside a transaction (store_begin)");
	/* Everything the root names is durable before the root is. */
	r = store_sync(s, err);
	if (r < 0)
		return err_wrap(err, "commit store root %s", name);
	cleanup_free char *buf = NULL;
	size_t len = 0, cap = 0;
	r = append(&buf, &len, &cap, ROOT_MAGIC, strlen(ROOT_MAGIC));
	for (size_t i = 0; r == 0 && i < root->n; i++) {
		char ks[STORE_KEY_STR_MAX], esc[8];
		store_key_str(&root->e[i].recipe, ks);
		r = append(&buf, &len, &cap, ks, strlen(ks));
		if (r == 0)
			r = append(&buf, &len, &cap, " ", 1);
		for (const unsigned char *p = (const unsigned char *)root->e[i].label; r == 0 && *p; p++) {
			if (*p > ' ' && *p < 0x7f && *p != '\\') {
				r = append(&buf, &len, &cap, (const char *)p, 1);
			} else {
				snprintf(esc, sizeof(esc), "\\x%02x", *p);
				r = append(&buf, &len, &cap, esc, 4);
			}
		}
		if (r == 0)
			r = append(&buf, &len, &cap, "\n", 1);
	}
	char end[40];
	snprintf(end, sizeof(end), "end %016llx\n", (unsigned long long)store_check64(buf, len));
	if (r == 0)
		r = append(&buf, &len, &cap, end, strlen(end));
	if (r < 0)
		return err_set(err, -r, "commit store root %s", name);
	r = store_commit_file(s, s->rootsfd, name, buf, len);
	if (r < 0)
		return err_set(err, -r, "commit store root %s", name);
	return 0;
}

static int unhex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int store_root_parse(const char *text, size_t len, struct store_root *ret)
{
	size_t ml = strlen(ROOT_MAGIC);
	if (len < ml || memcmp(text, ROOT_MAGIC, ml) != 0)
		return -EBADMSG;
	/* The checksum line: "end <16 hex>\n" over everything before it. */
	if (len < ml + 21 || text[len - 1] != '\n' || memcmp(text + len - 21, "end ", 4) != 0)
		return -EBADMSG;
	uint64_t want = 0;
	for (int i = 0; i < 16; i++) {
		int v = unhex(text[len - 17 + i]);
		if (v < 0)
			return -EBADMSG;
		want = want << 4 | v;
	}
	size_t body = len - 21;
	if (store_check64(text, body) != want)
		return -EBADMSG;
	struct store_root root = { 0 };
	size_t cap = 0;
	for (size_t pos = ml; pos < body;) {
		const char *line = text + pos, *nl = memchr(line, '\n', body - pos);
		if (!nl) {
			store_root_release(&root);
			return -EBADMSG;
		}
		size_t ll = nl - line;
		char ks[STORE_KEY_STR_MAX];
		const char *sp = memchr(line, ' ', ll);
		struct store_key k;
		if (!sp || (size_t)(sp - line) >= sizeof(ks)) {
			store_root_release(&root);
			return -EBADMSG;
		}
		memcpy(ks, line, sp - line);
		ks[sp - line] = '\0';
		char *label = malloc(ll + 1);
		if (!label || store_key_parse(ks, &k) < 0) {
			free(label);
			store_root_release(&root);
			return label ? -EBADMSG : -ENOMEM;
		}
		size_t o = 0;
		for (const char *p = sp + 1; p < nl; p++) {
			if (*p == '\\') {
				int hi = p + 3 < nl + 1 && p[1] == 'x' ? unhex(p[2]) : -1;
				int lo = hi < 0 ? -1 : unhex(p[3]);
				if (lo < 0 || (hi << 4 | lo) == 0) {
					free(label);
					store_root_release(&root);
					return -EBADMSG;
				}
				label[o++] = hi << 4 | lo;
				p += 3;
			} else {
				label[o++] = *p;
			}
		}
		label[o] = '\0';
		if (root.n == cap) {
			cap = cap ? cap * 2 : 16;
			struct store_root_entry *e = realloc(root.e, cap * sizeof(*e));
			if (!e) {
				free(label);
				store_root_release(&root);
				return -ENOMEM;
			}
			root.e = e;
		}
		root.e[root.n++] = (struct store_root_entry){ .recipe = k, .label = label };
		pos += ll + 1;
	}
	*ret = root;
	return 0;
}

int store_root_read(struct store *s, const char *name, struct store_root *ret, struct corral_error *err)
{
	int r = name_check(name, err);
	if (r < 0)
		return r;
	cleanup_close int fd = openat(s->rootsfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return err_set(err, errno, "open store root %s", name);
	cleanup_free char *text = NULL;
	size_t len;
	r = fd_read_all(fd, name, &text, &len, err);
	if (r < 0)
		return err_wrap(err, "read store root");
	r = store_root_parse(text, len, ret);
	if (r < 0)
		return err_plain(err, -r, "store root %s is damaged (its checksum or syntax is wrong)", name);
	return 0;
}

int store_root_remove(struct store *s, const char *name, struct corral_error *err)
{
	int r = name_check(name, err);
	if (r < 0)
		return r;
	if (unlinkat(s->rootsfd, name, 0) < 0)
		return err_set(err, errno, "remove store root %s", name);
	if (fsync(s->rootsfd) < 0)
		return err_set(err, errno, "sync the store's roots directory");
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int store_root_list(struct store *s, char ***ret, size_t *ret_n, struct corral_error *err)
{
	cleanup_dir DIR *d = dir_stream_at(s->rootsfd);
	if (!d)
		return err_set(err, errno, "list store roots");
	char **v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || name_check(e->d_name, NULL) < 0)
			continue; /* dot files are commits in progress */
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				goto nomem;
			v = nv;
		}
		if (!(v[n] = strdup(e->d_name)))
			goto nomem;
		n++;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	*ret = v;
	*ret_n = n;
	return 0;
nomem:
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return err_set(err, ENOMEM, "list store roots");
}
