/* unit-template: the template module on real files, as root.
 *
 * Everything happens below one temporary directory: a source tree with
 * every kind of file, tars of it made by GNU tar, hostile tars and image
 * layouts made with python3's tarfile, podman images from an isolated
 * podman store, and a state root the templates are imported into.
 *
 * CORRAL_TEST_DEBOOTSTRAP=1 also runs a debootstrap import (it downloads
 * a Debian base system and takes minutes). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "template/template.h"

static char base[256];		/* the test's temporary directory */
static char root[300];		/* the state root */
static char src[300];		/* the source tree */
static char outside[300];	/* hostile archives aim here; only "victim" may be in it */

/* ---- helpers ------------------------------------------------------------------ */

/* A path that is kept: P() below hands out one of 8 rotating buffers. */
#define PATHF(var, ...)                                  \
	char var[PATH_MAX];                              \
	snprintf(var, sizeof(var), __VA_ARGS__)

__attribute__((format(printf, 1, 2))) static char *P(const char *fmt, ...)
{
	static char bufs[8][PATH_MAX];
	static int next;
	char *b = bufs[next++ % 8];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b, PATH_MAX, fmt, ap);
	va_end(ap);
	return b;
}

__attribute__((format(printf, 1, 2))) static int sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static bool have(const char *prog)
{
	return sh("command -v %s >/dev/null 2>&1", prog) == 0;
}

static void put(const char *path, const char *data, mode_t mode, uid_t uid, gid_t gid)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data))
		tap_bail("cannot write %s: %s", path, strerror(errno));
	fchown(fd, uid, gid);
	fchmod(fd, mode);
	close(fd);
}

static void set_times(const char *path, time_t mtime, long nsec)
{
	struct timespec ts[2] = { { time(NULL) - 3600, 250 }, { mtime, nsec } };
	utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static bool is_type(const char *path, mode_t type)
{
	struct stat st;
	return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == type;
}

static bool has_content(const char *path, const char *want)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return !strcmp(buf, want);
}

/* No temporary or removal leftovers in <root>/templates. */
static bool no_leftovers(void)
{
	DIR *d = opendir(P("%s/templates", root));
	if (!d)
		return true;
	struct dirent *de;
	bool clean = true;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, ".tmp-", 5) || !strncmp(de->d_name, ".rm-", 4)) {
			diag("left over: %s", de->d_name);
			clean = false;
		}
	closedir(d);
	return clean;
}

static const char *conf_kind(const char *name)
{
	static char kind[64];
	FILE *f = fopen(P("%s/templates/%s/template.conf", root, name), "re");
	kind[0] = '\0';
	if (!f)
		return kind;
	char line[1024];
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "kind = %63s", kind) == 1)
			break;
	fclose(f);
	return kind;
}

/* ---- comparing trees -------------------------------------------------------------- */

enum { CMP_ATIME = 1, CMP_NSEC = 2, CMP_SOCK = 4 };

struct cmp {
	int flags;
	int bad;
	struct {
		ino_t a, b;
	} links[256];
	int nlinks;
};

__attribute__((format(printf, 3, 4))) static void mismatch(struct cmp *c, const char *rel, const char *fmt, ...)
{
	if (c->bad++ < 20) {
		char msg[512];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		diag("  %s: %s", rel[0] ? rel : ".", msg);
	}
}

static int xattr_blob(const char *path, char *buf, size_t len)
{
	/* "name=value\n" for each attribute, in sorted order */
	char names[4096];
	ssize_t n = llistxattr(path, names, sizeof(names));
	if (n < 0)
		return -1;
	const char *list[64];
	int count = 0;
	for (ssize_t i = 0; i < n && count < 64; i += strlen(names + i) + 1)
		list[count++] = names + i;
	for (int i = 0; i < count; i++)
		for (int j = i + 1; j < count; j++)
			if (strcmp(list[i], list[j]) > 0) {
				const char *t = list[i];
				list[i] = list[j];
				list[j] = t;
			}
	size_t o = 0;
	buf[0] = '\0';
	for (int i = 0; i < count; i++) {
		char val[1024];
		ssize_t v = lgetxattr(path, list[i], val, sizeof(val));
		if (v < 0)
			return -1;
		o += snprintf(buf + o, len - o, "%s=", list[i]);
		for (ssize_t k = 0; k < v && o + 4 < len; k++)
			o += snprintf(buf + o, len - o, "%02x", (unsigned char)val[k]);
		o += snprintf(buf + o, len - o, "\n");
	}
	return 0;
}

static bool same_data(const char *a, const char *b)
{
	int fa = open(a, O_RDONLY | O_NOATIME | O_CLOEXEC), fb = open(b, O_RDONLY | O_NOATIME | O_CLOEXEC);
	bool same = fa >= 0 && fb >= 0;
	static char ba[1 << 16], bb[1 << 16];
	while (same) {
		ssize_t na = read(fa, ba, sizeof(ba)), nb = read(fb, bb, sizeof(bb));
		if (na != nb || na < 0 || memcmp(ba, bb, na))
			same = false;
		if (na <= 0)
			break;
	}
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return same;
}

static void cmp_tree(struct cmp *c, const char *a, const char *b, const char *rel);

static void cmp_entry(struct cmp *c, const char *a, const char *b, const char *rel)
{
	struct stat sa, sb;
	if (lstat(a, &sa) < 0) {
		mismatch(c, rel, "source vanished");
		return;
	}
	if (lstat(b, &sb) < 0) {
		mismatch(c, rel, "missing in the copy");
		return;
	}
	if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) {
		mismatch(c, rel, "type %o vs %o", sa.st_mode & S_IFMT, sb.st_mode & S_IFMT);
		return;
	}
	if (!S_ISLNK(sa.st_mode) && (sa.st_mode & 07777) != (sb.st_mode & 07777))
		mismatch(c, rel, "mode %o vs %o", sa.st_mode & 07777, sb.st_mode & 07777);
	if (sa.st_uid != sb.st_uid || sa.st_gid != sb.st_gid)
		mismatch(c, rel, "owner %u:%u vs %u:%u", sa.st_uid, sa.st_gid, sb.st_uid, sb.st_gid);
	if (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec ||
	    ((c->flags & CMP_NSEC) && sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec))
		mismatch(c, rel, "mtime %ld.%09ld vs %ld.%09ld", (long)sa.st_mtim.tv_sec, sa.st_mtim.tv_nsec,
			 (long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
	/* reading a directory or a symlink may move its atime (relatime) */
	if ((c->flags & CMP_ATIME) && !S_ISDIR(sa.st_mode) && !S_ISLNK(sa.st_mode) &&
	    (sa.st_atim.tv_sec != sb.st_atim.tv_sec || sa.st_atim.tv_nsec != sb.st_atim.tv_nsec))
		mismatch(c, rel, "atime %ld vs %ld", (long)sa.st_atim.tv_sec, (long)sb.st_atim.tv_sec);
	char xa[8192], xb[8192];
	if (xattr_blob(a, xa, sizeof(xa)) < 0 || xattr_blob(b, xb, sizeof(xb)) < 0 || strcmp(xa, xb))
		mismatch(c, rel, "xattrs differ: [%s] vs [%s]", xa, xb);
	if (!S_ISDIR(sa.st_mode) && sa.st_nlink > 1) {
		if (sa.st_nlink != sb.st_nlink)
			mismatch(c, rel, "%lu links vs %lu", (unsigned long)sa.st_nlink, (unsigned long)sb.st_nlink);
		int i;
		for (i = 0; i < c->nlinks; i++)
			if (c->links[i].a == sa.st_ino) {
				if (c->links[i].b != sb.st_ino)
					mismatch(c, rel, "hard link not kept");
				break;
			}
		if (i == c->nlinks && c->nlinks < 256) {
			c->links[i].a = sa.st_ino;
			c->links[i].b = sb.st_ino;
			c->nlinks++;
		}
	}
	switch (sa.st_mode & S_IFMT) {
	case S_IFREG:
		if (sa.st_size != sb.st_size)
			mismatch(c, rel, "size %lld vs %lld", (long long)sa.st_size, (long long)sb.st_size);
		else if (!same_data(a, b))
			mismatch(c, rel, "content differs");
		break;
	case S_IFLNK: {
		char ta[PATH_MAX], tb[PATH_MAX];
		ssize_t na = readlink(a, ta, sizeof(ta) - 1), nb = readlink(b, tb, sizeof(tb) - 1);
		if (na < 0 || nb < 0 || na != nb || memcmp(ta, tb, na))
			mismatch(c, rel, "symlink target differs");
		break;
	}
	case S_IFCHR:
	case S_IFBLK:
		if (sa.st_rdev != sb.st_rdev)
			mismatch(c, rel, "device %u:%u vs %u:%u", major(sa.st_rdev), minor(sa.st_rdev),
				 major(sb.st_rdev), minor(sb.st_rdev));
		break;
	case S_IFDIR:
		cmp_tree(c, a, b, rel);
		break;
	}
}

static void cmp_tree(struct cmp *c, const char *a, const char *b, const char *rel)
{
	DIR *d = opendir(a);
	if (!d) {
		mismatch(c, rel, "cannot read source directory");
		return;
	}
	struct dirent *de;
	int na = 0, nb = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_type == DT_SOCK && !(c->flags & CMP_SOCK))
			continue;
		na++;
		char pa[PATH_MAX], pb[PATH_MAX], pr[PATH_MAX];
		snprintf(pa, sizeof(pa), "%s/%s", a, de->d_name);
		snprintf(pb, sizeof(pb), "%s/%s", b, de->d_name);
		snprintf(pr, sizeof(pr), "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
		cmp_entry(c, pa, pb, pr);
	}
	closedir(d);
	d = opendir(b);
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    (de->d_type != DT_SOCK || (c->flags & CMP_SOCK)))
			nb++;
	if (d)
		closedir(d);
	if (na != nb)
		mismatch(c, rel, "%d entries vs %d", na, nb);
}

static bool same_tree(const char *a, const char *b, int flags)
{
	struct cmp c = { .flags = flags };
	cmp_entry(&c, a, b, "");
	return c.bad == 0;
}

/* ---- the source tree -------------------------------------------------------------- */

static bool make_source(void)
{
	if (mkdir(src, 0751) < 0)
		return false;
	chown(src, 10, 20);
	put(P("%s/plain", src), "hello\n", 0640, 1234, 5678);
	setxattr(P("%s/plain", src), "user.color", "blue", 4, 0);
	setxattr(P("%s/plain", src), "user.empty", "", 0, 0);
	put(P("%s/suid", src), "#!/bin/sh\n", 04755, 0, 0);
	/* file capability cap_net_raw+ep, set after the owner (chown drops it) */
	static const uint32_t cap[5] = { 0x02000001, 1u << 13, 0, 0, 0 };
	if (setxattr(P("%s/suid", src), "security.capability", cap, sizeof(cap), 0) < 0)
		diag("cannot set security.capability: %s", strerror(errno));
	put(P("%s/setgid-exec", src), "x", 02711, 0, 50);
	put(P("%s/mode-000", src), "secret", 0, 3, 3);
	put(P("%s/name with spaces \xc3\xbc", src), "u", 0644, 0, 0);
	char longname[256];
	memset(longname, 'L', 200);
	longname[200] = '\0';
	put(P("%s/%s", src, longname), "long", 0644, 0, 0);

	mkdir(P("%s/sub", src), 0750);
	chown(P("%s/sub", src), 100, 200);
	setxattr(P("%s/sub", src), "trusted.dir", "t", 1, 0);
	put(P("%s/hl1", src), "linked\n", 0604, 5, 6);
	link(P("%s/hl1", src), P("%s/sub/hl2", src));
	link(P("%s/hl1", src), P("%s/hl3", src));
	symlink("plain", P("%s/sym-rel", src));
	lchown(P("%s/sym-rel", src), 7, 8);
	if (lsetxattr(P("%s/sym-rel", src), "trusted.link", "s", 1, 0) < 0)
		diag("cannot set an xattr on a symlink: %s", strerror(errno));
	symlink("/etc/passwd", P("%s/sym-abs", src));
	symlink("nowhere/at/all", P("%s/sub/sym-dangling", src));
	symlink("..", P("%s/sub/up", src));
	mkfifo(P("%s/fifo", src), 0620);
	chown(P("%s/fifo", src), 42, 43);
	mknod(P("%s/null-dev", src), S_IFCHR | 0666, makedev(1, 3));
	mknod(P("%s/blk-dev", src), S_IFBLK | 0660, makedev(7, 0));
	chown(P("%s/blk-dev", src), 0, 6);
	mkdir(P("%s/sticky", src), 01777);
	chmod(P("%s/sticky", src), 01777);
	mkdir(P("%s/setgid-dir", src), 02775);
	chmod(P("%s/setgid-dir", src), 02775);
	mkdir(P("%s/empty", src), 0555);
	if (have("setfacl") &&
	    sh("setfacl -m u:1234:rw,g:99:r '%s/plain' && setfacl -d -m u:1234:rx '%s/setgid-dir'", src, src))
		diag("setfacl failed; the trees have no ACLs");

	/* 64 MiB with 4 KiB of data in the middle and 3 bytes at the end */
	int fd = open(P("%s/sparse", src), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	char block[4096];
	memset(block, 'D', sizeof(block));
	if (fd < 0 || ftruncate(fd, 64 << 20) < 0 || pwrite(fd, block, sizeof(block), 16 << 20) < 0 ||
	    pwrite(fd, "end", 3, (64 << 20) - 3) < 0)
		return false;
	close(fd);

	char deep[PATH_MAX];
	snprintf(deep, sizeof(deep), "%s/deep", src);
	for (int i = 0; i < 30; i++) {
		mkdir(deep, 0755);
		strcat(deep, "/d");
	}
	put(P("%s.txt", deep), "bottom", 0644, 0, 0);

	/* times last: creating entries touches the directories */
	set_times(P("%s/plain", src), 1000000000, 123456789);
	set_times(P("%s/sym-rel", src), 1100000000, 5);
	set_times(P("%s/fifo", src), 1200000000, 0);
	set_times(P("%s/sub", src), 946684800, 500000000);
	set_times(P("%s/empty", src), 900000000, 0);
	set_times(src, 1300000000, 7);
	return true;
}

static void add_socket(const char *path)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		diag("cannot make a socket: %s", strerror(errno));
	if (s >= 0)
		close(s);
	chmod(path, 0710);
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_names(void)
{
	struct corral_error err = { 0 };
	const char *good[] = { "a", "A1", "x.y_z-1", "0", "a..b",
			       "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl" };
	const char *bad[] = { "a/b", "..", ".", "", "-x", "_x", ".hidden", "a b", "caf\xc3\xa9", "a\nb",
			      "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklm" };
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		ok(name_validate("template", good[i], &err) == 0, "name '%s' (%zu chars) is valid", good[i],
		   strlen(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		int r = name_validate("template", bad[i], &err);
		ok(r == -EINVAL && strstr(err.msg, "template") && strstr(err.msg, "1 to 64"),
		   "name #%zu (%zu chars) is rejected: %s", i, strlen(bad[i]), err.msg);
	}
	name_validate("container", "a/b", &err);
	ok(strstr(err.msg, "'a/b'") && strstr(err.msg, "container"), "the message names the bad name and kind");
}

static void test_dir(void)
{
	struct corral_error err = { 0 };
	add_socket(P("%s/sock", src));
	int r = template_import_dir(root, "t-dir", src, &err);
	ok(r == 0, "import from a directory%s%s", r ? ": " : "", r ? err.msg : "");
	char rootfs[PATH_MAX];
	r = template_rootfs(root, "t-dir", rootfs, sizeof(rootfs), &err);
	ok(r == 0 && !strcmp(rootfs, P("%s/templates/t-dir/rootfs", root)), "template_rootfs gives %s", rootfs);
	ok(same_tree(src, rootfs, CMP_ATIME | CMP_NSEC | CMP_SOCK),
	   "types, modes, owners, times, xattrs, links, devices, fifo and socket are all kept");
	struct stat st;
	ok(lstat(P("%s/sparse", rootfs), &st) == 0 && st.st_blocks * 512 < (1 << 20),
	   "the sparse file stays sparse (%lld KiB allocated of 64 MiB)", (long long)st.st_blocks / 2);
	ok(!strcmp(conf_kind("t-dir"), "dir"), "template.conf says kind = dir");
	ok(lstat(P("%s/templates/t-dir", root), &st) == 0 && S_ISDIR(st.st_mode), "renamed into place");
	unlink(P("%s/sock", src));

	r = template_import_dir(root, "t-dir", src, &err);
	ok(r == -EEXIST && strstr(err.msg, "already exists"), "an existing name is refused: %s", err.msg);
	r = template_import_dir(root, "t-missing", P("%s/no-such-dir", base), &err);
	ok(r == -ENOENT && !exists(P("%s/templates/t-missing", root)), "a missing source fails: %s", err.msg);
	r = template_import_dir(root, "t-self", base, &err);
	ok(r == -ELOOP && !exists(P("%s/templates/t-self", root)), "a source holding the state root is refused: %s",
	   err.msg);
	ok(no_leftovers(), "failed imports leave no temporary directory");
}

static void test_tar(void)
{
	struct corral_error err = { 0 };
	if (!have("tar")) {
		skip("no tar", "tar imports");
		return;
	}
	static const struct {
		const char *name, *opt, *tool;
	} kinds[] = {
		{ "t-plain", "", "tar" },
		{ "t-gz", "--gzip", "gzip" },
		{ "t-xz", "--xz", "xz" },
		{ "t-zst", "--zstd", "zstd" },
	};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(*kinds); i++) {
		if (!have(kinds[i].tool) &&
		    sh("apt-get install -y -q %s >/dev/null 2>&1 || "
		       "{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q %s >/dev/null 2>&1; }",
		       kinds[i].tool, kinds[i].tool)) {
			skip("compressor not installed", "%s tar", kinds[i].tool);
			continue;
		}
		/* no telling extension: the format is found from the content */
		PATHF(file, "%s/archive-%zu.data", base, i);
		int rc = sh("tar --xattrs --xattrs-include='*' --acls --numeric-owner --format=posix --sparse %s "
			    "-C '%s' -cf '%s' . 2>/dev/null",
			    kinds[i].opt, src, file);
		if (rc) {
			ok(0, "tar %s of the source tree (exit %d)", kinds[i].opt, rc);
			continue;
		}
		int r = template_import_tar(root, kinds[i].name, file, &err);
		ok(r == 0, "import a %s tar%s%s", kinds[i].tool, r ? ": " : "", r ? err.msg : "");
		PATHF(rootfs, "%s/templates/%s/rootfs", root, kinds[i].name);
		ok(r == 0 && same_tree(src, rootfs, CMP_NSEC), "the %s tar gives the same tree", kinds[i].tool);
		struct stat st;
		ok(lstat(P("%s/sparse", rootfs), &st) == 0 && st.st_blocks * 512 < (1 << 20),
		   "the sparse file from the %s tar stays sparse", kinds[i].tool);
	}
	ok(!strcmp(conf_kind("t-gz"), "tar"), "template.conf says kind = tar");
	put(P("%s/not-a-tar", base), "just some text\n", 0644, 0, 0);
	int r = template_import_tar(root, "t-junk", P("%s/not-a-tar", base), &err);
	ok(r < 0 && !exists(P("%s/templates/t-junk", root)), "a file that is no tar is refused: %s", err.msg);
	ok(no_leftovers(), "no temporary directory left");
}

static const char hostile_py[] =
	"import io, sys, tarfile\n"
	"out, kind, outside = sys.argv[1:4]\n"
	"def member(t, name, data=b'x', typ=tarfile.REGTYPE, link=''):\n"
	"    ti = tarfile.TarInfo(name); ti.type = typ; ti.linkname = link\n"
	"    ti.size = len(data) if typ == tarfile.REGTYPE else 0\n"
	"    t.addfile(ti, io.BytesIO(data) if typ == tarfile.REGTYPE else None)\n"
	"with tarfile.open(out, 'w', format=tarfile.GNU_FORMAT) as t:\n"
	"    member(t, 'fine')\n"
	"    if kind == 'dotdot':\n"
	"        member(t, '../../../../outside/dotdot')\n"
	"    elif kind == 'abs':\n"
	"        member(t, outside + '/absolute')\n"
	"    elif kind == 'symlink-abs':\n"
	"        member(t, 'lnk', typ=tarfile.SYMTYPE, link=outside)\n"
	"        member(t, 'lnk/through')\n"
	"    elif kind == 'symlink-rel':\n"
	"        member(t, 'up', typ=tarfile.SYMTYPE, link='../../../../outside')\n"
	"        member(t, 'up/through-rel')\n"
	"    elif kind == 'hardlink':\n"
	"        member(t, 'hl', typ=tarfile.LNKTYPE, link='../../../../outside/victim')\n";

static void test_hostile(void)
{
	struct corral_error err = { 0 };
	if (!have("python3")) {
		skip("no python3", "hostile tars");
		return;
	}
	put(P("%s/hostile.py", base), hostile_py, 0644, 0, 0);
	const char *kinds[] = { "dotdot", "abs", "symlink-abs", "symlink-rel", "hardlink" };
	for (size_t i = 0; i < sizeof(kinds) / sizeof(*kinds); i++) {
		PATHF(tarball, "%s/hostile-%s.tar", base, kinds[i]);
		if (sh("python3 '%s/hostile.py' '%s' %s '%s'", base, tarball, kinds[i], outside)) {
			ok(0, "make the %s tar", kinds[i]);
			continue;
		}
		PATHF(name, "h-%s", kinds[i]);
		int r = template_import_tar(root, name, tarball, &err);
		bool untouched = has_content(P("%s/victim", outside), "keep me\n");
		DIR *d = opendir(outside);
		int n = 0;
		for (struct dirent *de; d && (de = readdir(d));)
			n += de->d_name[0] != '.';
		if (d)
			closedir(d);
		ok(r < 0 && err.msg[0], "%s tar is refused: %s", kinds[i], err.msg);
		ok(untouched && n == 1 && !exists(P("%s/templates/%s", root, name)) && no_leftovers(),
		   "%s tar: nothing written outside, no template, no temporary directory", kinds[i]);
	}
}

/* Builds, below argv[1]: oci/ (an OCI layout), oci.tar, docker.tar (a
 * docker-archive of the same image) and oci-bad/ (a layer altered). */
static const char image_py[] =
	"import gzip, hashlib, io, json, os, platform, shutil, sys, tarfile\n"
	"out, outside = sys.argv[1:3]\n"
	"def layer(members):\n"
	"    buf = io.BytesIO()\n"
	"    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as t:\n"
	"        for m in members:\n"
	"            ti = tarfile.TarInfo(m[0]); ti.mtime = 1600000000\n"
	"            if m[1] == 'd': ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti)\n"
	"            elif m[1] == 'l': ti.type = tarfile.SYMTYPE; ti.linkname = m[2]; t.addfile(ti)\n"
	"            else:\n"
	"                data = m[2].encode() if len(m) > 2 else b''\n"
	"                ti.size = len(data); ti.mode = m[3] if len(m) > 3 else 0o644\n"
	"                t.addfile(ti, io.BytesIO(data))\n"
	"    return buf.getvalue()\n"
	"l1 = layer([('etc', 'd'), ('etc/a.conf', 'f', 'a\\n'), ('etc/b.conf', 'f', 'b\\n'),\n"
	"  ('gone', 'd'), ('gone/x', 'f', 'x\\n'), ('opq', 'd'), ('opq/old1', 'f', 'o\\n'),\n"
	"  ('opq/sub', 'd'), ('opq/sub/old2', 'f', 'o\\n'), ('opq2', 'd'), ('opq2/x', 'f', 'x\\n'),\n"
	"  ('opq2/sub', 'd'), ('opq2/sub/old', 'f', 'o\\n'), ('fd', 'f', 'file\\n'), ('df', 'd'),\n"
	"  ('df/inner', 'f', 'i\\n'), ('keep', 'd'), ('keep/file', 'f', 'k\\n'), ('bin', 'd'),\n"
	"  ('bin/tool', 'f', 'v1\\n', 0o755), ('link', 'l', 'etc/b.conf'),\n"
	"  ('evil', 'l', outside), ('evil-rel', 'l', '../../../../outside')])\n"
	"l2 = layer([('etc', 'd'), ('etc/.wh.a.conf', 'w'), ('.wh.gone', 'w'), ('opq', 'd'),\n"
	"  ('opq/.wh..wh..opq', 'w'), ('opq/new', 'f', 'n\\n'), ('opq2', 'd'), ('opq2/sub', 'd'),\n"
	"  ('opq2/sub/newer', 'f', 'n\\n'), ('opq2/.wh..wh..opq', 'w'), ('fd', 'd'), ('fd/in', 'f', 'in\\n'),\n"
	"  ('df', 'f', 'now a file\\n'), ('keep', 'd'), ('keep/added', 'f', 'a\\n'),\n"
	"  ('bin/tool', 'f', 'v2\\n', 0o750), ('evil/.wh.victim', 'w'), ('evil/.wh..wh..opq', 'w'),\n"
	"  ('evil-rel/.wh.victim', 'w'), ('evil-rel/.wh..wh..opq', 'w')])\n"
	"l1gz = gzip.compress(l1, mtime=0)\n"
	"sha = lambda b: hashlib.sha256(b).hexdigest()\n"
	"arch = {'x86_64': 'amd64', 'aarch64': 'arm64', 'i686': '386'}.get(platform.machine(), platform.machine())\n"
	"config = json.dumps({'architecture': arch, 'os': 'linux', 'config': {},\n"
	"  'rootfs': {'type': 'layers', 'diff_ids': ['sha256:' + sha(l1), 'sha256:' + sha(l2)]}}).encode()\n"
	"def blob(d, data):\n"
	"    os.makedirs(d + '/blobs/sha256', exist_ok=True)\n"
	"    open(d + '/blobs/sha256/' + sha(data), 'wb').write(data)\n"
	"    return {'digest': 'sha256:' + sha(data), 'size': len(data)}\n"
	"def oci(d, layers, nested=False):\n"
	"    os.makedirs(d)\n"
	"    open(d + '/oci-layout', 'w').write('{\"imageLayoutVersion\": \"1.0.0\"}')\n"
	"    ls = [dict(mediaType=mt, **blob(d, data)) for mt, data in layers]\n"
	"    man = json.dumps({'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',\n"
	"      'config': dict(mediaType='application/vnd.oci.image.config.v1+json', **blob(d, config)),\n"
	"      'layers': ls}).encode()\n"
	"    mt = 'application/vnd.oci.image.manifest.v1+json'\n"
	"    other = dict(mediaType=mt, **blob(d, b'{}'), platform={'os': 'windows', 'architecture': arch})\n"
	"    mine = dict(mediaType=mt, **blob(d, man), platform={'os': 'linux', 'architecture': arch})\n"
	"    if nested:\n"
	"        idx = json.dumps({'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.index.v1+json',\n"
	"                          'manifests': [other, mine]}).encode()\n"
	"        top = dict(mediaType='application/vnd.oci.image.index.v1+json', **blob(d, idx))\n"
	"        json.dump({'schemaVersion': 2, 'manifests': [top]}, open(d + '/index.json', 'w'))\n"
	"    else:\n"
	"        json.dump({'schemaVersion': 2, 'manifests': [other, mine]}, open(d + '/index.json', 'w'))\n"
	"oci(out + '/oci', [('application/vnd.oci.image.layer.v1.tar+gzip', l1gz),\n"
	"                   ('application/vnd.oci.image.layer.v1.tar', l2)])\n"
	"with tarfile.open(out + '/oci.tar', 'w') as t: t.add(out + '/oci', arcname='.')\n"
	"oci(out + '/oci-nested', [('application/vnd.oci.image.layer.v1.tar+gzip', l1gz),\n"
	"                          ('application/vnd.oci.image.layer.v1.tar', l2)], nested=True)\n"
	"bad = bytearray(l2); i = bad.find(b'now a file'); bad[i] = ord('N')\n"
	"oci(out + '/oci-bad', [('application/vnd.oci.image.layer.v1.tar+gzip', l1gz),\n"
	"                       ('application/vnd.oci.image.layer.v1.tar', bytes(l2))])\n"
	"open(out + '/oci-bad/blobs/sha256/' + sha(l2), 'wb').write(bytes(bad))\n"
	"with tarfile.open(out + '/docker.tar', 'w') as t:\n"
	"    def add(name, data):\n"
	"        ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))\n"
	"    add(sha(config) + '.json', config)\n"
	"    add(sha(l1) + '/layer.tar', l1)\n"
	"    add(sha(l2) + '/layer.tar', l2)\n"
	"    add('manifest.json', json.dumps([{'Config': sha(config) + '.json', 'RepoTags': ['localhost/t:1'],\n"
	"        'Layers': [sha(l1) + '/layer.tar', sha(l2) + '/layer.tar']}]).encode())\n";

static bool no_whiteouts(const char *dir)
{
	return sh("test -z \"$(find '%s' -name '.wh.*' | head -n 1)\"", dir) == 0;
}

static void check_image(const char *name)
{
	PATHF(r, "%s/templates/%s/rootfs", root, name);
	struct stat st;
	ok(has_content(P("%s/etc/b.conf", r), "b\n") && !exists(P("%s/etc/a.conf", r)) && !exists(P("%s/gone", r)),
	   "%s: .wh.NAME removes a file and a directory of the lower layer", name);
	ok(has_content(P("%s/opq/new", r), "n\n") && !exists(P("%s/opq/old1", r)) && !exists(P("%s/opq/sub", r)),
	   "%s: an opaque directory hides the lower layer's entries", name);
	ok(has_content(P("%s/opq2/sub/newer", r), "n\n") && !exists(P("%s/opq2/sub/old", r)) &&
		   !exists(P("%s/opq2/x", r)),
	   "%s: the opaque marker after the layer's own entries keeps those", name);
	ok(is_type(P("%s/fd", r), S_IFDIR) && has_content(P("%s/fd/in", r), "in\n") &&
		   has_content(P("%s/df", r), "now a file\n"),
	   "%s: a directory replaces a file and a file replaces a directory", name);
	ok(has_content(P("%s/keep/file", r), "k\n") && has_content(P("%s/keep/added", r), "a\n") &&
		   has_content(P("%s/bin/tool", r), "v2\n") && lstat(P("%s/bin/tool", r), &st) == 0 &&
		   (st.st_mode & 07777) == 0750 && is_type(P("%s/link", r), S_IFLNK),
	   "%s: merged directories, an overwritten file and a symlink", name);
	ok(no_whiteouts(r), "%s: no whiteout file is left in the tree", name);
	ok(has_content(P("%s/victim", outside), "keep me\n") && is_type(P("%s/evil", r), S_IFLNK),
	   "%s: whiteouts below a symlink do not reach through it", name);
}

static void test_oci(void)
{
	struct corral_error err = { 0 };
	if (!have("python3")) {
		skip("no python3", "OCI images");
		return;
	}
	put(P("%s/image.py", base), image_py, 0644, 0, 0);
	mkdir(P("%s/img", base), 0755);
	if (sh("python3 '%s/image.py' '%s/img' '%s'", base, base, outside)) {
		ok(0, "make the test images");
		return;
	}
	static const struct {
		const char *name, *path, *what;
	} imgs[] = {
		{ "oci-dir", "img/oci", "an OCI layout directory" },
		{ "oci-tar", "img/oci.tar", "an OCI layout tar" },
		{ "oci-nested", "img/oci-nested", "an OCI layout with a nested index" },
		{ "docker", "img/docker.tar", "a docker-archive" },
	};
	for (size_t i = 0; i < sizeof(imgs) / sizeof(*imgs); i++) {
		int r = template_import_oci(root, imgs[i].name, P("%s/%s", base, imgs[i].path), &err);
		ok(r == 0, "import %s%s%s", imgs[i].what, r ? ": " : "", r ? err.msg : "");
		if (r == 0)
			check_image(imgs[i].name);
	}
	ok(!strcmp(conf_kind("oci-dir"), "oci"), "template.conf says kind = oci");
	ok(!exists(P("%s/templates/oci-tar/image", root)), "the unpacked image archive is not kept");
	int r = template_import_oci(root, "oci-bad", P("%s/img/oci-bad", base), &err);
	ok(r == -EBADMSG && strstr(err.msg, "digest") && !exists(P("%s/templates/oci-bad", root)),
	   "a layer that does not match its digest is refused: %s", err.msg);
	r = template_import_oci(root, "oci-none", src, &err);
	ok(r == -EINVAL && strstr(err.msg, "index.json"), "a directory that is no image is refused: %s", err.msg);
	ok(no_leftovers(), "no temporary directory left");
}

static void test_podman(void)
{
	struct corral_error err = { 0 };
	if (!have("podman")) {
		skip("podman is not installed", "podman save images");
		return;
	}
	PATHF(pm, "%s/podman", base);
	mkdir(pm, 0700);
	mkdir(P("%s/tmp", pm), 0700);
	mkdir(P("%s/tree", pm), 0755);
	mkdir(P("%s/tree/etc", pm), 0755);
	put(P("%s/tree/etc/hello", pm), "from podman\n", 0640, 1234, 99);
	symlink("etc/hello", P("%s/tree/hello-link", pm));
	char cmd[8 * PATH_MAX];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && export TMPDIR='%s/tmp' CONTAINERS_CONF=/dev/null CONTAINERS_REGISTRIES_CONF=/dev/null && "
		 "P='timeout 120 podman --root %s/graph --runroot %s/run --storage-driver vfs "
		 "--cgroup-manager cgroupfs --events-backend file --tmpdir %s/tmp' && "
		 "tar --numeric-owner -C tree -cf tree.tar . && "
		 "$P import -q tree.tar localhost/corral-unit:1 >/dev/null && "
		 "$P save -q -o docker.tar localhost/corral-unit:1 && "
		 "$P save -q --format oci-archive -o oci.tar localhost/corral-unit:1",
		 pm, pm, pm, pm, pm);
	if (sh("( %s ) >'%s/log' 2>&1", cmd, pm)) {
		sh("sed 's/^/# /' '%s/log'", pm);
		skip("podman could not make the image here", "podman save images");
		skip("podman could not make the image here", "podman save images (oci-archive)");
		return;
	}
	const char *kinds[][2] = { { "pm-docker", "docker.tar" }, { "pm-oci", "oci.tar" } };
	for (int i = 0; i < 2; i++) {
		int r = template_import_oci(root, kinds[i][0], P("%s/%s", pm, kinds[i][1]), &err);
		PATHF(rootfs, "%s/templates/%s/rootfs", root, kinds[i][0]);
		struct stat st;
		ok(r == 0 && has_content(P("%s/etc/hello", rootfs), "from podman\n") &&
			   lstat(P("%s/etc/hello", rootfs), &st) == 0 && st.st_uid == 1234 && st.st_gid == 99 &&
			   (st.st_mode & 07777) == 0640 && is_type(P("%s/hello-link", rootfs), S_IFLNK),
		   "podman save (%s) imports with owners and modes%s%s", kinds[i][1], r ? ": " : "", r ? err.msg : "");
	}
}

static void test_default(void)
{
	struct corral_error err = { 0 };
	const char *top = getenv("TOP_SRCDIR");
	PATHF(script_buf, "%s/template/make-default-template", top ? top : ".");
	const char *script = script_buf;
	if (!getenv("CORRAL_TEMPLATE_SCRIPT")) {
		if (!top && access(script, X_OK) < 0)
			script = "../template/make-default-template";
		setenv("CORRAL_TEMPLATE_SCRIPT", script, 1);
	}
	int r = template_ensure_default(root, &err);
	ok(r == 0, "the default template is made%s%s", r ? ": " : "", r ? err.msg : "");
	PATHF(rootfs, "%s/templates/default/rootfs", root);
	struct stat st1, st2;
	ok(is_type(P("%s/bin/busybox", rootfs), S_IFREG) && is_type(P("%s/bin/sh", rootfs), S_IFLNK) &&
		   access(P("%s/bin/sh", rootfs), X_OK) == 0,
	   "it has /bin/busybox and /bin/sh");
	ok(!strcmp(conf_kind("default"), "default"), "template.conf says kind = default");
	lstat(rootfs, &st1);
	r = template_ensure_default(root, &err);
	lstat(rootfs, &st2);
	ok(r == 0 && st1.st_ino == st2.st_ino, "a second ensure keeps the template as it is");
	ok(sh("chroot '%s' /bin/sh -c 'test -x /bin/ls' 2>/dev/null", rootfs) == 0, "its shell runs in a chroot");
}

/* The default template's script is run as a child (common/child.h):
 * why it failed comes back -- its last output lines, or, when it cannot be
 * run at all, the reason the exec failed. */
static void test_default_failures(void)
{
	struct corral_error err = { 0 };
	const char *saved = getenv("CORRAL_TEMPLATE_SCRIPT");
	PATHF(failing, "%s/failing-script", base);
	PATHF(noninterp, "%s/no-interpreter-script", base);
	put(failing, "#!/bin/sh\necho step one\necho no busybox here >&2\nexit 3\n", 0755, 0, 0);
	put(noninterp, "#!/nonexistent/interpreter\n", 0755, 0, 0);

	setenv("CORRAL_TEMPLATE_SCRIPT", failing, 1);
	int r = template_ensure_default(root, &err);
	ok(r == -EIO && strstr(err.msg, "failed (exit status 3): step one | no busybox here"),
	   "a failing script: its exit status and last lines come back (%s)", err.msg);
	setenv("CORRAL_TEMPLATE_SCRIPT", noninterp, 1);
	r = template_ensure_default(root, &err);
	ok(r == -ENOENT && strstr(err.msg, P("cannot run %s: No such file or directory", noninterp)),
	   "a script that cannot be run: the exec's reason comes back (%s)", err.msg);
	ok(!exists(P("%s/templates/default", root)), "and no default template is left behind");
	if (saved)
		setenv("CORRAL_TEMPLATE_SCRIPT", saved, 1);
	else
		unsetenv("CORRAL_TEMPLATE_SCRIPT");
}

static void test_debootstrap(void)
{
	struct corral_error err = { 0 };
	int r = template_import_debootstrap(root, "deb-bad", &(struct template_debootstrap){ .suite = "bad/suite" }, &err);
	ok(r == -EINVAL && strstr(err.msg, "suite"), "a bad suite is refused: %s", err.msg);
	r = template_import_debootstrap(root, "deb-bad", &(struct template_debootstrap){ .suite = "bookworm", .mirror = "-o x" }, &err);
	ok(r == -EINVAL && strstr(err.msg, "mirror"), "a bad mirror is refused: %s", err.msg);
	/* --variant and --include (checked before debootstrap is looked for). */
	static const struct {
		const char *variant, *include, *want; /* want: NULL = accepted, else in the message */
	} cases[] = {
		{ "minbase", NULL, NULL },
		{ "buildd", "systemd-sysv,iproute2,ifupdown", NULL },
		{ "default", "libstdc++6,g++-12,python3.11", NULL },
		{ "fakechroot", NULL, "non-root user under fakechroot" },
		{ "Minbase", NULL, "unknown variant 'Minbase'" },
		{ "--help", NULL, "unknown variant '--help'" },
		{ NULL, "", "--include is empty" },
		{ NULL, "iproute2,", "empty package name" },
		{ NULL, ",iproute2", "empty package name" },
		{ NULL, "iproute2,,ifupdown", "empty package name" },
		{ NULL, "x", "invalid package name 'x'" },
		{ NULL, "Systemd", "invalid package name 'Systemd'" },
		{ NULL, "-V", "invalid package name '-V'" },
		{ NULL, "a b", "invalid package name 'a b'" },
		{ NULL, "iproute2;reboot", "invalid package name 'iproute2;reboot'" },
		{ NULL, "pkg:amd64", "invalid package name 'pkg:amd64'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct template_debootstrap d = { .suite = "bookworm", .variant = cases[i].variant,
						  .include = cases[i].include };
		err = (struct corral_error){ 0 };
		r = template_debootstrap_validate(&d, &err);
		if (!cases[i].want)
			ok(r == 0, "variant %s include %s accepted (%s)", cases[i].variant ? cases[i].variant : "-",
			   cases[i].include ? cases[i].include : "-", r ? err.msg : "");
		else
			ok(r == -EINVAL && strstr(err.msg, cases[i].want), "variant %s include '%s' refused: %s",
			   cases[i].variant ? cases[i].variant : "-", cases[i].include ? cases[i].include : "-",
			   err.msg);
	}
	r = template_import_debootstrap(root, "deb-bad", &(struct template_debootstrap){ .suite = "bookworm", .include = "Bad" }, &err);
	ok(r == -EINVAL && !exists(P("%s/templates/deb-bad", root)), "a bad --include makes no template: %s", err.msg);
	const char *want = getenv("CORRAL_TEST_DEBOOTSTRAP");
	if (!want || strcmp(want, "1")) {
		skip("set CORRAL_TEST_DEBOOTSTRAP=1 to run it (downloads, takes minutes)", "debootstrap import");
		return;
	}
	const char *suite = getenv("CORRAL_TEST_SUITE") ? getenv("CORRAL_TEST_SUITE") : "bookworm";
	time_t t0 = time(NULL);
	r = template_import_debootstrap(root, "deb", &(struct template_debootstrap){ .suite = suite }, &err);
	PATHF(rootfs, "%s/templates/deb/rootfs", root);
	ok(r == 0 && exists(P("%s/etc/debian_version", rootfs)) &&
		   sh("chroot '%s' /usr/bin/dpkg -s base-files >/dev/null 2>&1", rootfs) == 0,
	   "debootstrap %s import in %lds%s%s", suite, (long)(time(NULL) - t0), r ? ": " : "", r ? err.msg : "");
	ok(!strcmp(conf_kind("deb"), "debootstrap"), "template.conf says kind = debootstrap");
}

static void test_list_remove(void)
{
	struct corral_error err = { 0 };
	struct template_info *list = NULL;
	size_t n = 0;
	int r = template_list(root, &list, &n, &err);
	ok(r == 0 && n > 0, "template_list lists %zu templates", n);
	bool kinds_ok = true, sorted = true;
	static const char *want[][2] = { { "default", "default" }, { "t-dir", "dir" }, { "t-gz", "tar" },
					 { "oci-dir", "oci" } };
	for (size_t w = 0; w < sizeof(want) / sizeof(*want); w++) {
		bool found = false;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(list[i].name, want[w][0]))
				found = !strcmp(list[i].kind, want[w][1]) && list[i].created[0] && list[i].source[0];
		if (!found) {
			diag("%s with kind %s not listed", want[w][0], want[w][1]);
			kinds_ok = false;
		}
	}
	for (size_t i = 0; i < n; i++) {
		diag("  %-12s %-8s %s %s", list[i].name, list[i].kind, list[i].created, list[i].source);
		if (i && strcmp(list[i - 1].name, list[i].name) >= 0)
			sorted = false;
	}
	ok(kinds_ok && sorted, "the list is sorted and shows each template's kind, source and creation time");
	free(list);

	mkdir(P("%s/containers", root), 0700);
	mkdir(P("%s/containers/x", root), 0700);
	mkdir(P("%s/containers/y", root), 0700);
	put(P("%s/containers/y/config", root), "name = y\ntemplate = t-dir-other\n", 0644, 0, 0);
	put(P("%s/containers/x/config", root), "# made by a test\nname = x\ntemplate = t-dir\n", 0644, 0, 0);
	r = template_remove(root, "t-dir", &err);
	ok(r == -EBUSY && strstr(err.msg, "'x'") && exists(P("%s/templates/t-dir/rootfs", root)),
	   "remove is refused while container x uses the template: %s", err.msg);
	/* A config that can not be read might name the template: fail closed. */
	put(P("%s/containers/x/config", root), "name = x\n\x01\x02 damaged\n", 0644, 0, 0);
	r = template_remove(root, "t-dir", &err);
	ok(r == -EINVAL && strstr(err.msg, "can not tell whether container 'x' uses template 't-dir'") &&
	   strstr(err.msg, "x/config:2:") && exists(P("%s/templates/t-dir/rootfs", root)),
	   "remove is refused while a container's config is damaged: %s", err.msg);
	unlink(P("%s/containers/x/config", root));
	r = template_remove(root, "t-dir", &err);
	char buf[PATH_MAX];
	ok(r == 0 && !exists(P("%s/templates/t-dir", root)), "remove works once no container uses it%s%s",
	   r ? ": " : "", r ? err.msg : "");
	r = template_rootfs(root, "t-dir", buf, sizeof(buf), &err);
	ok(r == -ENOENT && strstr(err.msg, "does not exist"), "a removed template is gone: %s", err.msg);
	r = template_remove(root, "t-dir", &err);
	ok(r == -ENOENT, "removing it again: %s", err.msg);
	ok(no_leftovers(), "no removal leftovers");
}

static void test_sweep(void)
{
	struct corral_error err = { 0 };
	PATHF(stale, "%s/templates/.tmp-crashed-abcdef", root);
	PATHF(gone, "%s/templates/.rm-old-1-2", root);
	mkdir(stale, 0700);
	put(P("%s/half-written", stale), "x", 0644, 0, 0);
	mkdir(gone, 0700);
	struct timespec old[2] = { { time(NULL) - 7200, 0 }, { time(NULL) - 7200, 0 } };
	utimensat(AT_FDCWD, stale, old, 0);
	utimensat(AT_FDCWD, gone, old, 0);
	int r = template_import_dir(root, "t-after-crash", P("%s/empty", src), &err);
	ok(r == 0 && !exists(stale) && !exists(gone), "a later import sweeps what a crashed one left%s%s",
	   r ? ": " : "", r ? err.msg : "");
}

int main(void)
{
	if (geteuid() != 0) {
		printf("1..0 # SKIP must run as root (owners, devices, trusted xattrs)\n");
		return 0;
	}
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(base, sizeof(base), "%s/unit-template-XXXXXX", tmp);
	if (!mkdtemp(base)) {
		tap_bail("mkdtemp: %s", strerror(errno));
		return 1;
	}
	snprintf(root, sizeof(root), "%s/state", base);
	snprintf(src, sizeof(src), "%s/src", base);
	snprintf(outside, sizeof(outside), "%s/outside", base);
	mkdir(outside, 0755);
	put(P("%s/victim", outside), "keep me\n", 0644, 0, 0);
	umask(022);
	if (!make_source()) {
		tap_bail("cannot build the source tree in %s: %s", src, strerror(errno));
		return 1;
	}

	test_names();
	test_dir();
	test_tar();
	test_hostile();
	test_oci();
	test_podman();
	test_default_failures();
	test_default();
	test_debootstrap();
	test_list_remove();
	test_sweep();

	int rc = tap_done();
	if (rc == 0 || !getenv("KEEP_TEST_DIR"))
		sh("rm -rf '%s'", base);
	else
		diag("kept %s", base);
	return rc;
}
