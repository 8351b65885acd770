/* cgroup: the file helpers the backends and discovery share (see
 * cgroup-internal.h).  Nothing here knows v1 from v2 beyond the names of
 * the controllers. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "cleanup.h"
#include "fileio.h"

const char *const cg_v1_names[CG_NCTRL] = {
	[CG_MEMORY] = "memory", [CG_PIDS] = "pids",	    [CG_CPU] = "cpu",
	[CG_CPUSET] = "cpuset", [CG_IO] = "blkio",	    [CG_CPUACCT] = "cpuacct",
	[CG_FREEZER] = "freezer",
};
const char *const cg_v2_names[CG_NCTRL] = {
	[CG_MEMORY] = "memory", [CG_PIDS] = "pids", [CG_CPU] = "cpu",
	[CG_CPUSET] = "cpuset", [CG_IO] = "io",
};

/* ---- file helpers ---- */

static void join(char *buf, size_t size, const char *dir, const char *file)
{
	snprintf(buf, size, "%s/%s", dir, file);
}

int cg_write(const char *dir, const char *file, const char *val, struct corral_error *err)
{
	char path[PATH_MAX + 64];
	size_t len = strlen(val);

	join(path, sizeof(path), dir, file);
	cleanup_close int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set(err, errno, "open %s to write \"%s\"", path, val);
	ssize_t n = write(fd, val, len);
	if (n < 0)
		return err_set(err, errno, "write \"%s\" to %s", val, path);
	if ((size_t)n != len)
		return err_plain(err, EIO, "short write of \"%s\" to %s", val, path);
	return 0;
}

int cg_writef(const char *dir, const char *file, struct corral_error *err, const char *fmt, ...)
{
	char val[512];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(val))
		return err_plain(err, EINVAL, "value for %s/%s is too long", dir, file);
	return cg_write(dir, file, val, err);
}

int cg_read(const char *dir, const char *file, char **ret, struct corral_error *err)
{
	char path[PATH_MAX + 64];
	join(path, sizeof(path), dir, file);
	return file_read_all(path, ret, NULL, err);
}

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	if (strncmp(s, "max", 3) == 0 && (s[3] == '\0' || s[3] == '\n' || s[3] == ' ')) {
		*ret = UINT64_MAX;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || (*end != '\0' && *end != '\n' && *end != ' '))
		return -EINVAL;
	*ret = v;
	return 0;
}

int cg_read_u64(const char *dir, const char *file, uint64_t *ret, struct corral_error *err)
{
	cleanup_free char *text = NULL;
	int r = cg_read(dir, file, &text, err);
	if (r < 0)
		return r;
	if (parse_u64(text, ret) < 0)
		return err_plain(err, EINVAL, "%s/%s: not a number: \"%.40s\"", dir, file, text);
	return 0;
}

int cg_keyed_u64(const char *text, const char *key, uint64_t *ret)
{
	size_t klen = strlen(key);

	for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
			return parse_u64(line + klen + 1, ret);
	return -ENOENT;
}

bool cg_is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool cg_exists(const char *dir, const char *file)
{
	char path[PATH_MAX + 64];

	join(path, sizeof(path), dir, file);
	return access(path, F_OK) == 0;
}

unsigned cg_parse_v2_list(const char *text)
{
	unsigned mask = 0;
	const char *p = text;

	while (*p) {
		size_t n = strcspn(p, " \n");
		for (int c = 0; c < CG_NCTRL; c++)
			if (cg_v2_names[c] && strlen(cg_v2_names[c]) == n &&
			    strncmp(p, cg_v2_names[c], n) == 0)
				mask |= CG_BIT(c);
		p += n;
		p += strspn(p, " \n");
	}
	return mask;
}

void cg_format_v2_list(unsigned ctrls, bool plus, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int c = 0; c < CG_NCTRL; c++) {
		if (!(ctrls & CG_BIT(c)) || !cg_v2_names[c])
			continue;
		int n = snprintf(buf + len, size - len, "%s%s%s", len ? " " : "", plus ? "+" : "",
				 cg_v2_names[c]);
		if (n < 0 || (size_t)n >= size - len)
			return;
		len += (size_t)n;
	}
}

static int make_dir(const char *path, bool *created, struct corral_error *err)
{
	struct stat st;

	*created = false;
	if (mkdir(path, 0755) == 0) {
		*created = true;
		return 0;
	}
	if (errno != EEXIST)
		return err_set(err, errno, "create cgroup %s", path);
	if (stat(path, &st) < 0)
		return err_set(err, errno, "stat %s", path);
	if (!S_ISDIR(st.st_mode))
		return err_plain(err, ENOTDIR, "%s exists and is not a cgroup directory", path);
	return 0;
}

int cg_make_dirs(struct cg_hier *h,
		 int (*init)(struct cg_hier *h, const char *dir, const char *from,
			     struct corral_error *err),
		 struct corral_error *err)
{
	bool created;
	int r;

	/* Another launcher removes "corral" when its last container goes;
	 * if that happens between our two mkdirs, make it again. */
	for (int attempt = 0;; attempt++) {
		r = make_dir(h->parent, &created, err);
		if (r < 0)
			return r;
		h->created_parent |= created;
		r = init(h, h->parent, h->own, err);
		if (r < 0)
			return r;
		r = make_dir(h->leaf, &created, err);
		if (r == -ENOENT && attempt < 3)
			continue;
		if (r < 0)
			return r;
		h->created_leaf = created;
		return created ? init(h, h->leaf, h->parent, err) : 0;
	}
}

int64_t cg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cg_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int cg_wait_line(const char *dir, const char *file, const char *line, int timeout_ms)
{
	int64_t deadline = cg_now_ms() + timeout_ms;
	size_t len = strlen(line);

	for (;;) {
		cleanup_free char *text = NULL;
		int r = cg_read(dir, file, &text, NULL);
		if (r < 0)
			return r;
		for (const char *p = text; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
			if (strncmp(p, line, len) == 0 && (p[len] == '\n' || p[len] == '\0'))
				return 0;
		if (cg_now_ms() >= deadline)
			return -ETIMEDOUT;
		cg_sleep_ms(5);
	}
}
