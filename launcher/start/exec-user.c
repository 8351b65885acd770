/* exec --user: the container's passwd and group files (see exec-user.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "exec-user.h"

/* A whole file beneath root_fd, symlinks refused: the tenant may have
 * made /etc/passwd a link, a fifo or a huge file. */
static int read_etc(int root_fd, const char *path, char **ret, size_t *ret_len, struct corral_error *err)
{
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	cleanup_close int fd = (int)syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
	if (fd < 0)
		return err_set(err, errno, "open the container's /%s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(err, errno, "stat the container's /%s", path);
	if (!S_ISREG(st.st_mode))
		return err_plain(err, EINVAL, "the container's /%s is not a regular file", path);
	if (st.st_size > EXEC_USER_FILE_MAX)
		return err_plain(err, EFBIG, "the container's /%s is larger than %u bytes", path, EXEC_USER_FILE_MAX);
	char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return err_set(err, ENOMEM, "read the container's /%s", path);
	size_t len = 0;
	/* The size may change under us: never more than was allocated. */
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(buf);
			return err_set(err, e, "read the container's /%s", path);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* A decimal id below 2^32 - 1 (which is (uid_t)-1, never a user). */
static bool parse_id(const char *s, size_t len, uint32_t *ret)
{
	uint64_t v = 0;
	if (len == 0 || len > 10)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v >= UINT32_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

/* Looks up an entry of a passwd or group file by name (by_name) or by id:
 * fills *id, and for passwd *gid and home.  Returns true if found. */
static bool lookup(char *text, size_t len, const char *key, bool by_name, uint32_t want, uint32_t *id,
		   uint32_t *gid, char *home, size_t home_len)
{
	char *end = text + len;
	for (char *line = text; line < end;) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		char *le = nl ? nl : end;
		/* name:password:id:(gid:gecos:home:shell | members) */
		char *f[7];
		size_t fl[7];
		int nf = 0;
		for (char *p = line; nf < 7;) {
			char *c = memchr(p, ':', (size_t)(le - p));
			f[nf] = p;
			fl[nf++] = (size_t)((c ? c : le) - p);
			if (!c)
				break;
			p = c + 1;
		}
		line = nl ? nl + 1 : end;
		uint32_t v, g = 0;
		if (nf < 3 || !parse_id(f[2], fl[2], &v))
			continue;
		if (by_name ? (fl[0] != strlen(key) || memcmp(f[0], key, fl[0])) : v != want)
			continue;
		if (gid) {
			if (nf < 6 || !parse_id(f[3], fl[3], &g))
				continue;
			*gid = g;
			if (home && fl[5] > 0 && fl[5] < home_len && f[5][0] == '/') {
				memcpy(home, f[5], fl[5]);
				home[fl[5]] = '\0';
			}
		}
		*id = v;
		return true;
	}
	return false;
}

int exec_user_resolve(int root_fd, const char *spec, uid_t *uid, gid_t *gid, char *home, size_t home_len,
		      struct corral_error *err)
{
	char user[256], group[256] = "";
	const char *colon = strchr(spec, ':');
	size_t ul = colon ? (size_t)(colon - spec) : strlen(spec);
	if (ul == 0 || ul >= sizeof(user) || (colon && (!colon[1] || strlen(colon + 1) >= sizeof(group))))
		return err_plain(err, EINVAL, "invalid --user '%s': expected UID[:GID] or NAME[:GROUP]", spec);
	memcpy(user, spec, ul);
	user[ul] = '\0';
	if (colon)
		snprintf(group, sizeof(group), "%s", colon + 1);
	snprintf(home, home_len, "/");

	uint32_t u, g = 0;
	bool numeric = parse_id(user, ul, &u);
	cleanup_free char *pw = NULL;
	size_t pwlen = 0;
	int r = read_etc(root_fd, "etc/passwd", &pw, &pwlen, err);
	/* A numeric user needs no passwd file (a minimal image has none). */
	if (r < 0 && !numeric)
		return err_wrap(err, "look up user '%s'", user);
	if (numeric) {
		uint32_t any;
		if (!pw || !lookup(pw, pwlen, NULL, false, u, &any, &g, home, home_len))
			g = 0;
	} else if (!lookup(pw, pwlen, user, true, 0, &u, &g, home, home_len)) {
		return err_plain(err, ENOENT, "no user '%s' in the container's /etc/passwd", user);
	}
	if (group[0] && !parse_id(group, strlen(group), &g)) {
		cleanup_free char *gr = NULL;
		size_t grlen;
		if (read_etc(root_fd, "etc/group", &gr, &grlen, err) < 0)
			return err_wrap(err, "look up group '%s'", group);
		if (!lookup(gr, grlen, group, true, 0, &g, NULL, NULL, 0))
			return err_plain(err, ENOENT, "no group '%s' in the container's /etc/group", group);
	}
	*uid = u;
	*gid = g;
	return 0;
}

int exec_user_become(const char *spec, char *home, size_t home_len, struct corral_error *err)
{
	uid_t uid;
	gid_t gid;
	cleanup_close int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return err_set(err, errno, "open the container's root");
	int r = exec_user_resolve(root, spec, &uid, &gid, home, home_len, err);
	if (r < 0)
		return r;
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return err_set(err, errno, "become user %s (uid %u, gid %u)", spec, (unsigned)uid, (unsigned)gid);
	return 0;
}

/* The array and the extra strings are never freed: the caller execs. */
char **command_env(const char *hostname, bool tty, const char *home, char *const *extra, size_t nextra,
		   struct corral_error *err)
{
	static char term[128], homevar[PATH_MAX + 8], host[300];
	size_t n = 0;
	char **env = calloc(6 + nextra, sizeof(*env));
	if (!env) {
		err_set(err, ENOMEM, "build the environment");
		return NULL;
	}
	env[n++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	snprintf(homevar, sizeof(homevar), "HOME=%s", home);
	env[n++] = homevar;
	env[n++] = "container=corral";
	if (hostname) {
		snprintf(host, sizeof(host), "HOSTNAME=%s", hostname);
		env[n++] = host;
	}
	if (tty) {
		const char *t = getenv("TERM");
		snprintf(term, sizeof(term), "TERM=%s", t && *t && strlen(t) < 100 ? t : "xterm");
		env[n++] = term;
	}
	for (size_t i = 0; i < nextra; i++) {
		const char *kv = extra[i], *eq = strchr(kv, '=');
		if (!eq || eq == kv) {
			err_plain(err, EINVAL, "invalid environment entry '%.200s': expected KEY=VALUE", kv);
			free(env);
			return NULL;
		}
		size_t k = 0;
		while (k < n && strncmp(env[k], kv, (size_t)(eq - kv) + 1))
			k++;
		/* A copy: the caller's strings may be wiped before the exec
		 * (run's command line, see hide_cmdline in start.c). */
		if (!(env[k] = strdup(kv))) {
			err_set(err, ENOMEM, "build the environment");
			free(env);
			return NULL;
		}
		if (k == n)
			n++;
	}
	env[n] = NULL;
	return env;
}
