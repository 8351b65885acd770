/* posix-ops: lookup, readdir, inode numbers. */
#include "posix-ops.h"

/* ---- lookup and readdir -------------------------------------------- */

void test_lookup(void)
{
	struct stat st;

	CHECK(content_is(M("merge/both"), "upper-both\n"),
	      "lookup: upper file shadows the base file");
	CHECK(content_is(M("merge/only_base"), "only-base\n"),
	      "lookup: base-only file visible");
	CHECK(content_is(M("merge/only_upper"), "only-upper\n"),
	      "lookup: upper-only file visible");
	CHECK(fails_with(lstat(M("merge/gone"), &st), ENOENT, "lstat gone"),
	      "lookup: whiteout in upper hides the base file (ENOENT)");
	CHECK(content_is(M("merge/mixed/a"), "base-a\n") &&
	      content_is(M("merge/mixed/b"), "upper-b\n") &&
	      content_is(M("merge/mixed/c"), "upper-c\n"),
	      "lookup: directory in both layers merges its entries");
	CHECK(fails_with(lstat(M("merge/opq/hidden"), &st), ENOENT,
			 "lstat opq/hidden") &&
	      content_is(M("merge/opq/shown"), "shown\n"),
	      "lookup: opaque upper directory hides base entries");
	CHECK(content_is(M("merge/subdir/inner"), "inner\n"),
	      "lookup: base-only directory is traversable");
}

void test_readdir(void)
{
	CHECK(entries_are(M("merge"),
			  ".,..,both,many,mixed,only_base,only_upper,opq,subdir"),
	      "readdir: merges both layers, hides whiteouts, has . and ..");
	CHECK(entries_are(M("merge/mixed"), ".,..,a,b,c"),
	      "readdir: name in both layers listed once");
	CHECK(entries_are(M("merge/opq"), ".,..,shown"),
	      "readdir: opaque directory lists upper entries only");
	CHECK(entries_are(M("merge/subdir"), ".,..,inner"),
	      "readdir: base-only directory");
}

/* d_ino reported by readdir matches st_ino from lstat for every entry. */
void test_readdir_ino(void)
{
	DIR *d = opendir(M("merge"));
	struct dirent *de;
	struct stat st;
	bool good = d != NULL;

	if (!d)
		fail("opendir merge: %s", strerror(errno));
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, "..") == 0)
			continue;
		if (!lstat_ok(M("merge/%s", de->d_name), &st)) {
			good = false;
			continue;
		}
		if (st.st_ino != de->d_ino)
			good = fail("%s: d_ino %lu, st_ino %lu", de->d_name,
				    (unsigned long)de->d_ino,
				    (unsigned long)st.st_ino);
	}
	if (d)
		closedir(d);
	CHECK(good, "readdir: d_ino equals st_ino for every entry");
}

/* A directory too big for one getdents buffer, changed in the merged view. */
void test_readdir_large(void)
{
	char name[16];
	bool good = true;
	int i, seen = 0, created = 0, deleted = 0;
	DIR *d;
	struct dirent *de;

	for (i = 0; i < 50 && good; i++) {
		snprintf(name, sizeof(name), "n%03d", i);
		good = write_file(M("merge/many/%s", name), "", O_CREAT | O_EXCL);
		snprintf(name, sizeof(name), "f%03d", i * 7);
		good = good && sys(unlink(M("merge/many/%s", name)), "unlink");
	}
	d = opendir(M("merge/many"));
	if (!d)
		good = fail("opendir merge/many: %s", strerror(errno));
	while (d && (de = readdir(d))) {
		seen++;
		if (de->d_name[0] == 'n')
			created++;
		if (de->d_name[0] == 'f' && atoi(de->d_name + 1) % 7 == 0 &&
		    atoi(de->d_name + 1) < 350)
			deleted++;
	}
	if (d)
		closedir(d);
	good = good && long_is(seen, 602, "entries seen") &&
	       long_is(created, 50, "new entries seen") &&
	       long_is(deleted, 0, "deleted entries seen");
	CHECK(good, "readdir: 600-entry directory after 50 creates and 50 unlinks");
}

/* Appends the remaining entry names of d to out (bounded). */
static void read_rest(DIR *d, char *out, size_t cap)
{
	struct dirent *de;
	size_t len = strlen(out);

	while ((de = readdir(d)))
		len += snprintf(out + len, len < cap ? cap - len : 0, "%s/",
				de->d_name);
}

/* telldir/seekdir and rewinddir in a merged directory. */
void test_readdir_seek(void)
{
	static char first[16384], second[16384], all[16384], again[16384];
	DIR *d = opendir(M("merge/many"));
	long pos = -1;
	int i;

	first[0] = second[0] = all[0] = again[0] = '\0';
	if (d) {
		read_rest(d, all, sizeof(all));
		rewinddir(d);
		for (i = 0; i < 300 && readdir(d); i++)
			;
		pos = telldir(d);
		read_rest(d, first, sizeof(first));
		seekdir(d, pos);
		read_rest(d, second, sizeof(second));
		rewinddir(d);
		read_rest(d, again, sizeof(again));
		closedir(d);
	}
	CHECK((d || fail("opendir merge/many: %s", strerror(errno))) &&
	      (first[0] || fail("nothing after entry 300")) &&
	      (strcmp(first, second) == 0 ||
	       fail("after seekdir: \"%s\" vs \"%s\"", show(second, strlen(second)),
		    show(first, strlen(first)))),
	      "readdir: seekdir to a telldir position resumes at the same entry");
	CHECK(d && (strcmp(all, again) == 0 || fail("rewinddir listing differs")),
	      "readdir: rewinddir lists the same entries again");
}

void test_dots(void)
{
	struct stat root, dot, merge, mdot, mdotdot, sub_dotdot, base_sub;

	CHECK(lstat_ok(merged_root, &root) && lstat_ok(M("."), &dot) &&
	      S_ISDIR(dot.st_mode) && long_is(dot.st_ino, root.st_ino, "ino of .") &&
	      long_is(dot.st_dev, root.st_dev, "dev of ."),
	      "stat: MERGED/. is the root directory");
	CHECK(lstat_ok(M("merge"), &merge) && lstat_ok(M("merge/."), &mdot) &&
	      lstat_ok(M("merge/.."), &mdotdot) &&
	      long_is(mdot.st_ino, merge.st_ino, "ino of merge/.") &&
	      long_is(mdotdot.st_ino, root.st_ino, "ino of merge/..") &&
	      long_is(mdotdot.st_dev, root.st_dev, "dev of merge/.."),
	      "stat: dir/. is dir and dir/.. is its parent");
	CHECK(lstat_ok(M("merge/subdir/.."), &sub_dotdot) &&
	      long_is(sub_dotdot.st_ino, merge.st_ino, "ino of subdir/..") &&
	      long_is(sub_dotdot.st_dev, merge.st_dev, "dev of subdir/.."),
	      "stat: .. of a base-only directory is the merged parent");
	/* overlayfs does not count subdirectories of merged directories. */
	CHECK(nlink_is(M("merge/mixed"), 1) && nlink_is(M("merge"), 1),
	      "stat: directory present in both layers has st_nlink 1");
	CHECK(lstat_ok(B("merge/subdir"), &base_sub) &&
	      nlink_is(M("merge/subdir"), base_sub.st_nlink),
	      "stat: base-only directory has the base st_nlink");
}

/* ---- inode numbers ---------------------------------------------------- */

void test_ino_stable(void)
{
	struct stat base, before, after, dropped;
	const char *f = M("ino/file");

	CHECK(lstat_ok(B("ino/file"), &base) && lstat_ok(f, &before) &&
	      long_is(before.st_ino, base.st_ino, "merged vs base st_ino"),
	      "inode: st_ino of a base file is the base inode number");
	CHECK(lstat_ok(f, &before) &&
	      write_file(f, "more\n", O_APPEND) &&
	      lstat_ok(f, &after) &&
	      long_is(after.st_ino, before.st_ino, "st_ino after copy-up") &&
	      long_is(after.st_dev, before.st_dev, "st_dev after copy-up"),
	      "inode: st_ino unchanged by copy-up");
	CHECK(drop_caches() && lstat_ok(f, &dropped) &&
	      long_is(dropped.st_ino, before.st_ino, "st_ino after drop_caches") &&
	      content_is(f, "ino-file\nmore\n"),
	      "inode: st_ino unchanged after drop_caches");

	CHECK(lstat_ok(M("ino/dir"), &before) &&
	      write_file(M("ino/dir/child"), "c", O_CREAT) &&
	      lstat_ok(M("ino/dir"), &after) && drop_caches() &&
	      lstat_ok(M("ino/dir"), &dropped) &&
	      long_is(after.st_ino, before.st_ino, "dir st_ino after copy-up") &&
	      long_is(dropped.st_ino, before.st_ino, "dir st_ino after drop"),
	      "inode: directory st_ino unchanged by copy-up and drop_caches");
}

void test_hardlink(void)
{
	struct stat src, dst, base;

	CHECK(sys(link(M("link/src"), M("link/dst")), "link"),
	      "link: hard link to a base file");
	CHECK(lstat_ok(M("link/src"), &src) && lstat_ok(M("link/dst"), &dst) &&
	      long_is(src.st_nlink, 2, "st_nlink of src") &&
	      long_is(dst.st_nlink, 2, "st_nlink of dst") &&
	      long_is(dst.st_ino, src.st_ino, "st_ino of dst vs src"),
	      "link: both names have st_nlink 2 and the same st_ino");
	CHECK(write_file(M("link/dst"), "shared\n", O_TRUNC) &&
	      content_is(M("link/src"), "shared\n"),
	      "link: write through one name is seen through the other");
	CHECK(drop_caches() && lstat_ok(M("link/src"), &src) &&
	      lstat_ok(M("link/dst"), &dst) &&
	      long_is(src.st_nlink, 2, "st_nlink of src") &&
	      long_is(dst.st_ino, src.st_ino, "st_ino of dst vs src"),
	      "link: st_nlink and st_ino hold after drop_caches");
	CHECK(lstat_ok(B("link/src"), &base) &&
	      long_is(base.st_nlink, 1, "base st_nlink") &&
	      content_is(B("link/src"), "link-src\n") && absent(B("link/dst")),
	      "link: base file unchanged");
}

void test_base_hardlinks(void)
{
	struct stat h1, h2, b1;

	CHECK(lstat_ok(M("link/h1"), &h1) && lstat_ok(M("link/h2"), &h2) &&
	      lstat_ok(B("link/h1"), &b1) &&
	      long_is(h1.st_ino, h2.st_ino, "st_ino h1 vs h2") &&
	      long_is(h1.st_ino, b1.st_ino, "st_ino vs base") &&
	      long_is(h1.st_nlink, 2, "st_nlink h1") &&
	      long_is(h2.st_nlink, 2, "st_nlink h2"),
	      "link: hard links in the base share st_ino, st_nlink 2");
}


/* A directory listed again after each kind of change shows the change:
 * the kernel may keep a directory's contents in its cache (cowfs reads
 * directories without OPENDIR, which caches them), and every change through
 * the mount must drop it.  Also through a handle kept open (rewinddir).
 * Works in merge/subdir, a base-only directory listed before each change. */
void test_readdir_changes(void)
{
	const char *d = M("merge/subdir");
	bool listed = entries_are(d, ".,..,inner") && entries_are(d, ".,..,inner");
	CHECK(listed, "readdir changes: base-only directory listed twice");
	CHECK(write_file(M("merge/subdir/new"), "new\n", O_CREAT | O_EXCL) && entries_are(d, ".,..,inner,new"),
	      "readdir changes: a created file is listed");
	CHECK(sys(unlink(M("merge/subdir/inner")), "unlink") && entries_are(d, ".,..,new"),
	      "readdir changes: an unlinked base file is no longer listed");
	CHECK(sys(mkdir(M("merge/subdir/d"), 0755), "mkdir") && entries_are(d, ".,..,d,new") &&
	      entries_are(M("merge/subdir/d"), ".,.."),
	      "readdir changes: a new directory is listed");
	CHECK(sys(rename(M("merge/subdir/new"), M("merge/subdir/d/moved")), "rename") &&
	      entries_are(d, ".,..,d") && entries_are(M("merge/subdir/d"), ".,..,moved"),
	      "readdir changes: rename between directories shows in both");
	CHECK(sys(link(M("merge/subdir/d/moved"), M("merge/subdir/hl")), "link") &&
	      sys(symlink("moved", M("merge/subdir/sl")), "symlink") && entries_are(d, ".,..,d,hl,sl"),
	      "readdir changes: hard link and symlink are listed");
	CHECK(sys(unlink(M("merge/subdir/d/moved")), "unlink") && sys(rmdir(M("merge/subdir/d")), "rmdir") &&
	      entries_are(d, ".,..,hl,sl"),
	      "readdir changes: a removed directory is no longer listed");

	DIR *dir = opendir(d);
	int before = 0, after = 0;
	struct dirent *de;
	if (dir) {
		while ((de = readdir(dir)))
			before++;
		bool made = write_file(M("merge/subdir/late"), "late\n", O_CREAT | O_EXCL);
		rewinddir(dir);
		while ((de = readdir(dir)))
			after += strcmp(de->d_name, "late") == 0 ? 100 : 1;
		closedir(dir);
		CHECK(made && long_is(before, 4, "entries before") && long_is(after, 104, "entries after rewinddir"),
		      "readdir changes: rewinddir on an open handle shows a file created since");
	} else {
		CHECK(fail("opendir %s: %s", d, strerror(errno)),
		      "readdir changes: rewinddir on an open handle shows a file created since");
	}
}
