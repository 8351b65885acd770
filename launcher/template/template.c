/* Template imports: from a directory, a tar, debootstrap, an OCI image, and
 * the built-in default template.  Each builds into a temporary directory
 * (template-store.c) and is renamed into place only when complete.
 *
 * The default template is made by the make-default-template script shipped
 * with corral (installed in CORRAL_PKGDATADIR; CORRAL_TEMPLATE_SCRIPT names
 * another copy, e.g. the one in a source tree for tests).  The script
 * already knows how to find or install busybox-static and how to lay out
 * the tree; doing it again in C would only give two versions to keep in
 * step. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "template-internal.h"
#include "template.h"

#ifndef CORRAL_PKGDATADIR
#define CORRAL_PKGDATADIR "/usr/local/share/corral"
#endif
#define DEFAULT_SCRIPT CORRAL_PKGDATADIR "/make-default-template"
#define DEFAULT_MIRROR "http://deb.debian.org/debian"

/* ---- running a helper program ------------------------------------------------ */

/* The last few lines of out, joined with " | ", into buf. */
static void tail_lines(const char *out, size_t len, char *buf, size_t buflen)
{
	const char *p = out + len;
	int lines = 0;
	while (p > out && lines < 3) {
		while (p > out && (p[-1] == '\n' || p[-1] == '\r'))
			p--;
		if (p == out)
			break;
		while (p > out && p[-1] != '\n')
			p--;
		lines++;
	}
	size_t o = 0;
	for (; p < out + len && o + 4 < buflen; p++) {
		if (*p == '\n') {
			while (o && buf[o - 1] == ' ')
				o--;
			if (o && p + 1 < out + len)
				o += snprintf(buf + o, buflen - o, " | ");
		} else if ((unsigned char)*p >= 0x20 || *p == '\t') {
			buf[o++] = *p;
		}
	}
	buf[o < buflen ? o : buflen - 1] = '\0';
}

int tmpl_run(char *const argv[], struct corral_error *err)
{
	/* The program's output (its reason, on failure) comes through
	 * `pipefd`; whether it could be run at all, through the child's
	 * verdict. */
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return err_set(err, errno, "run %s: pipe", argv[0]);
	char what[PATH_MAX + 16];
	snprintf(what, sizeof(what), "run %s: fork", argv[0]);
	cleanup_child struct child ch = CHILD_INIT;
	int r = child_start(&ch, 0, what, err);
	if (r < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return r;
	}
	if (r == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0 || dup2(null, 0) < 0 || dup2(pipefd[1], 1) < 0 || dup2(pipefd[1], 2) < 0) {
			struct corral_error cerr = { 0 };
			err_set(&cerr, errno, "run %s: redirect its output", argv[0]);
			child_fail(ch.fd, &cerr);
		}
		signal(SIGPIPE, SIG_DFL); /* corral ignores it; debootstrap must not */
		snprintf(what, sizeof(what), "cannot run %s", argv[0]);
		child_exec(ch.fd, argv[0], argv, environ, what);
	}
	close(pipefd[1]);
	enum child_verdict v;
	r = child_wait_verdict(&ch, &v, err);
	if (r < 0) {
		close(pipefd[0]);
		return r;
	}

	/* Keep the end of the output: that is where the reason is. */
	char out[8192];
	size_t len = 0;
	for (;;) {
		char chunk[4096];
		ssize_t n = read(pipefd[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (len + n > sizeof(out)) {
			size_t drop = len + n - sizeof(out);
			if (drop > len)
				drop = len;
			memmove(out, out + drop, len - drop);
			len -= drop;
		}
		size_t take = (size_t)n > sizeof(out) ? sizeof(out) : (size_t)n;
		memcpy(out + len, chunk + n - take, take);
		len += take;
	}
	close(pipefd[0]);

	int status;
	r = child_reap(&ch, &status, err);
	if (r < 0)
		return err_wrap(err, "wait for %s", argv[0]);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	char tail[1024];
	tail_lines(out, len, tail, sizeof(tail));
	if (WIFSIGNALED(status))
		return err_plain(err, EIO, "%s was killed by signal %d%s%s", argv[0], WTERMSIG(status),
				 tail[0] ? ": " : "", tail);
	return err_plain(err, WEXITSTATUS(status) == 127 ? ENOENT : EIO, "%s failed (exit status %d)%s%s",
			 argv[0], WEXITSTATUS(status), tail[0] ? ": " : "", tail);
}

/* ---- directory and tar ---------------------------------------------------------- */

/* Absolute form of a user-given path for template.conf; as given if it
 * can not be resolved. */
static void source_name(const char *path, char *buf, size_t len)
{
	char abs[PATH_MAX];
	snprintf(buf, len, "%s", realpath(path, abs) ? abs : path);
}

/* The three imports below share one shape: begin a build, fill its
 * rootfs with fill(), commit; the temporary directory goes on any failure. */

int tmpl_import(const char *root, const char *name, const char *src, const char *kind, const char *what,
		tmpl_fill_fn fill, struct corral_error *err)
{
	struct tmpl_build b = TMPL_BUILD_INIT;
	int r = tmpl_build_begin(&b, root, name, err);
	if (r == 0) {
		r = fill(&b, src, err);
		if (r == 0) {
			char source[PATH_MAX];
			source_name(src, source, sizeof(source));
			r = tmpl_build_commit(&b, kind, source, err);
		}
		if (r < 0)
			err_wrap(err, "import template '%s' from %s %s", name, what, src);
	}
	tmpl_build_abort(&b);
	return r;
}

static int fill_dir(struct tmpl_build *b, const char *dir, struct corral_error *err)
{
	cleanup_close int src = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src < 0)
		return err_set(err, errno, "open %s", dir);
	struct stat st;
	if (fstat(b->dir_fd, &st) < 0)
		return err_set(err, errno, "stat %s", b->path);
	return tmpl_copy_tree(src, b->dir_fd, TMPL_ROOTFS, st.st_dev, st.st_ino, err);
}

int template_import_dir(const char *root, const char *name, const char *dir, struct corral_error *err)
{
	return tmpl_import(root, name, dir, "dir", "directory", fill_dir, err);
}

/* ---- debootstrap ------------------------------------------------------------------ */

static bool find_program(const char *prog, char *buf, size_t len)
{
	const char *path = getenv("PATH");
	char dirs[4096];
	/* root's tools live in sbin, which a user's PATH may lack */
	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin:/usr/bin:/bin", path ? path : "");
	char *save = NULL;
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		if (*d != '/')
			continue;
		snprintf(buf, len, "%s/%s", d, prog);
		if (access(buf, X_OK) == 0)
			return true;
	}
	return false;
}

static bool mirror_ok(const char *m)
{
	if (strncmp(m, "http://", 7) && strncmp(m, "https://", 8) && strncmp(m, "file:/", 6) &&
	    strncmp(m, "ftp://", 6))
		return false;
	for (const char *p = m; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return false;
	return strlen(m) < 1024;
}

/* One apt source: its URI and the suites it serves. */
struct apt_source {
	char uri[1024];
	char suites[1024];
};

struct mirror_pick {
	const char *suite;
	char by_suite[1024];	/* a source that serves the suite asked for */
	char debian[1024];	/* else one that looks like a Debian archive */
};

static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ' || p[-1] == '\t') && (p[n] == '\0' || p[n] == ' ' || p[n] == '\t'))
			return true;
	return false;
}

static void consider(struct mirror_pick *m, const struct apt_source *s)
{
	char uri[1024];
	snprintf(uri, sizeof(uri), "%s", s->uri);
	size_t n = strlen(uri);
	while (n > 1 && uri[n - 1] == '/')
		uri[--n] = '\0';
	if (!mirror_ok(uri))
		return;
	if (!m->by_suite[0] && has_word(s->suites, m->suite))
		snprintf(m->by_suite, sizeof(m->by_suite), "%s", uri);
	if (!m->debian[0] && n >= 7 && !strcmp(uri + n - 7, "/debian"))
		snprintf(m->debian, sizeof(m->debian), "%s", uri);
}

/* "deb [opts] URI SUITE COMPONENT..." lines. */
static void scan_one_line(struct mirror_pick *m, char *text)
{
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *p = line + strspn(line, " \t");
		if (strncmp(p, "deb", 3) || (p[3] != ' ' && p[3] != '\t'))
			continue;
		p += 3 + strspn(p + 3, " \t");
		if (*p == '[') {
			p = strchr(p, ']');
			if (!p)
				continue;
			p++;
		}
		struct apt_source s = { 0 };
		if (sscanf(p, " %1023s %1023s", s.uri, s.suites) == 2)
			consider(m, &s);
	}
}

/* deb822 stanzas: "Types:", "URIs:", "Suites:", "Enabled:"; a blank line
 * or the end of the text closes one. */
static void scan_deb822(struct mirror_pick *m, char *text)
{
	struct apt_source s = { 0 };
	bool deb = false, enabled = true;
	for (char *p = text;;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		if (!strncasecmp(p, "Types:", 6))
			deb = has_word(p + 6, "deb");
		else if (!strncasecmp(p, "URIs:", 5))
			snprintf(s.uri, sizeof(s.uri), "%s", p + 5 + strspn(p + 5, " \t"));
		else if (!strncasecmp(p, "Suites:", 7))
			snprintf(s.suites, sizeof(s.suites), "%s", p + 7);
		else if (!strncasecmp(p, "Enabled:", 8))
			enabled = strncasecmp(p + 8 + strspn(p + 8, " \t"), "no", 2) != 0;
		if (!*p || !nl) {
			if (deb && enabled && s.uri[0]) {
				/* the first URI is apt's first choice */
				s.uri[strcspn(s.uri, " \t")] = '\0';
				consider(m, &s);
			}
			memset(&s, 0, sizeof(s));
			deb = false;
			enabled = true;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
}

static void scan_file(struct mirror_pick *m, const char *path, bool deb822)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	cleanup_free char *text = calloc(1, 256 * 1024);
	if (text) {
		size_t n = fread(text, 1, 256 * 1024 - 1, f);
		text[n] = '\0';
		if (deb822)
			scan_deb822(m, text);
		else
			scan_one_line(m, text);
	}
	fclose(f);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

/* The mirror apt already uses: first one serving the suite, else the
 * first Debian archive, else the Debian CDN. */
static void default_mirror(const char *suite, char *buf, size_t len)
{
	struct mirror_pick m = { .suite = suite };
	scan_file(&m, "/etc/apt/sources.list", false);
	struct dirent **list = NULL;
	int n = scandir("/etc/apt/sources.list.d", &list, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "/etc/apt/sources.list.d/%s", list[i]->d_name);
		if (ends_with(list[i]->d_name, ".list"))
			scan_file(&m, path, false);
		else if (ends_with(list[i]->d_name, ".sources"))
			scan_file(&m, path, true);
		free(list[i]);
	}
	free(list);
	snprintf(buf, len, "%s", m.by_suite[0] ? m.by_suite : m.debian[0] ? m.debian : DEFAULT_MIRROR);
}

/* Release names like "bookworm" or "stable-backports"; nothing that
 * debootstrap could take for an option or a path. */
static bool suite_ok(const char *s)
{
	if (!*s || *s == '-' || *s == '.' || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

/* A Debian package name (Debian policy 5.6.1): lower case letters,
 * digits, '+', '-', '.', starting with a letter or digit, two or more
 * characters -- nothing debootstrap could take for an option. */
static bool package_ok(const char *p, size_t len)
{
	if (len < 2 || len > 128 || !((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '+' || p[i] == '-' ||
		      p[i] == '.'))
			return false;
	return true;
}

int template_debootstrap_validate(const struct template_debootstrap *d, struct corral_error *err)
{
	if (d->variant) {
		if (!strcmp(d->variant, "fakechroot"))
			return err_plain(err, EINVAL,
					 "variant 'fakechroot' is for a non-root user under fakechroot: use minbase, "
					 "buildd or default");
		if (strcmp(d->variant, "minbase") && strcmp(d->variant, "buildd") && strcmp(d->variant, "default"))
			return err_plain(err, EINVAL,
					 "unknown variant '%.64s': debootstrap's are minbase, buildd and default "
					 "(its standard set)",
					 d->variant);
	}
	if (d->include) {
		const char *p = d->include;
		if (!*p)
			return err_plain(err, EINVAL, "--include is empty: give package names separated by commas");
		if (strlen(p) > 4096)
			return err_plain(err, EINVAL, "--include is longer than 4096 characters");
		for (;;) {
			const char *comma = strchr(p, ',');
			size_t len = comma ? (size_t)(comma - p) : strlen(p);
			if (!len)
				return err_plain(err, EINVAL,
						 "--include '%.200s' has an empty package name: separate names with "
						 "single commas",
						 d->include);
			if (!package_ok(p, len))
				return err_plain(err, EINVAL,
						 "invalid package name '%.*s' in --include: Debian package names are "
						 "lower case letters, digits, '+', '-' and '.', starting with a letter "
						 "or digit",
						 (int)(len > 128 ? 128 : len), p);
			if (!comma)
				break;
			p = comma + 1;
		}
	}
	return 0;
}

int template_import_debootstrap(const char *root, const char *name, const struct template_debootstrap *d,
				struct corral_error *err)
{
	const char *suite = d->suite, *mirror = d->mirror;
	if (!suite || !suite_ok(suite))
		return err_plain(err, EINVAL, "invalid suite '%.64s': use a release name such as 'bookworm'",
				 suite ? suite : "");
	char mirror_buf[1024];
	if (mirror && *mirror) {
		if (!mirror_ok(mirror))
			return err_plain(err, EINVAL,
					 "invalid mirror '%.200s': give an http://, https://, ftp:// or file:/ URL",
					 mirror);
		snprintf(mirror_buf, sizeof(mirror_buf), "%s", mirror);
	} else {
		default_mirror(suite, mirror_buf, sizeof(mirror_buf));
	}
	int r = template_debootstrap_validate(d, err);
	if (r < 0)
		return r;
	char prog[PATH_MAX];
	if (!find_program("debootstrap", prog, sizeof(prog)))
		return err_plain(err, ENOENT, "debootstrap is not installed (on Debian: apt-get install debootstrap)");

	struct tmpl_build b = TMPL_BUILD_INIT;
	r = tmpl_build_begin(&b, root, name, err);
	if (r < 0)
		goto out;
	/* Every value is checked above: none can pass for another option. */
	char variant[80], include[4200];
	const char *v = d->variant ? d->variant : "minbase";
	char *argv[8];
	int n = 0;
	argv[n++] = prog;
	if (strcmp(v, "default")) {
		snprintf(variant, sizeof(variant), "--variant=%s", v);
		argv[n++] = variant;
	}
	if (d->include) {
		snprintf(include, sizeof(include), "--include=%s", d->include);
		argv[n++] = include;
	}
	argv[n++] = (char *)suite;
	argv[n++] = b.rootfs;
	argv[n++] = mirror_buf;
	argv[n] = NULL;
	r = tmpl_run(argv, err);
	if (r == 0) {
		char source[1200];
		snprintf(source, sizeof(source), "%s %s variant=%s%s%.200s", suite, mirror_buf, v,
			 d->include ? " include=" : "", d->include ? d->include : "");
		r = tmpl_build_commit(&b, "debootstrap", source, err);
	}
	if (r < 0)
		err_wrap(err, "import template '%s' with debootstrap %s %s", name, suite, mirror_buf);
out:
	tmpl_build_abort(&b);
	return r;
}

/* ---- the default template ------------------------------------------------------------ */

int template_ensure_default(const char *root, struct corral_error *err)
{
	char path[PATH_MAX];
	int r = template_rootfs(root, TEMPLATE_DEFAULT, path, sizeof(path), err);
	if (r != -ENOENT)
		return r;	/* there (0), or a real error */

	const char *script = getenv("CORRAL_TEMPLATE_SCRIPT");
	if (!script || !*script)
		script = DEFAULT_SCRIPT;
	if (access(script, X_OK) < 0)
		return err_set(err, errno, "make the default template: cannot run %s", script);

	struct tmpl_build b = TMPL_BUILD_INIT;
	r = tmpl_build_begin(&b, root, TEMPLATE_DEFAULT, err);
	if (r < 0) {
		if (r == -EEXIST)
			err_plain(err, EEXIST, "template '%s' exists but has no %s (remove it to rebuild it)",
				  TEMPLATE_DEFAULT, TMPL_ROOTFS);
		goto out;
	}
	char *argv[] = { (char *)script, "--quiet", b.rootfs, NULL };
	r = tmpl_run(argv, err);
	if (r == 0) {
		char source[PATH_MAX + 32];
		snprintf(source, sizeof(source), "busybox-static by %s", script);
		r = tmpl_build_commit(&b, "default", source, err);
		/* Another process made it meanwhile: just as good. */
		if (r == -EEXIST && template_rootfs(root, TEMPLATE_DEFAULT, path, sizeof(path), NULL) == 0)
			r = 0;
	}
	if (r < 0)
		err_wrap(err, "make the default template");
out:
	tmpl_build_abort(&b);
	return r;
}
