/* posix-ops: unlink, rmdir, whiteouts, creating nodes, rename. */
#include "posix-ops.h"

/* ---- unlink, rmdir, whiteouts, opaque ---------------------------------- */

void test_unlink(void)
{
	CHECK(sys(unlink(M("rm/victim")), "unlink"), "unlink: base file");
	CHECK(absent(M("rm/victim")) && not_listed(M("rm"), "victim"),
	      "unlink: name gone from lookup and readdir");
	CHECK(is_whiteout(U("rm/victim")), "unlink: whiteout (char 0:0) in upper");
	CHECK(content_is(B("rm/victim"), "victim\n"), "unlink: base file unchanged");
	/* A 0:0 character device is what a whiteout is on disk: creating
	 * one must fail, and the failure must leave the whiteout (the
	 * deleted base file may not come back). */
	CHECK(fails_with(mknod(M("rm/victim"), S_IFCHR | 0644, makedev(0, 0)), EPERM,
			 "mknod c 0 0 over the whiteout") &&
	      drop_caches() && absent(M("rm/victim")) && not_listed(M("rm"), "victim") &&
	      is_whiteout(U("rm/victim")),
	      "unlink: mknod c 0 0 over the whiteout fails (EPERM), base file stays hidden");

	CHECK(sys(unlink(M("rm/readd")), "unlink") &&
	      write_file(M("rm/readd"), "new\n", O_CREAT | O_EXCL) &&
	      content_is(M("rm/readd"), "new\n") && listed_once(M("rm"), "readd") &&
	      type_is(U("rm/readd"), S_IFREG),
	      "unlink: re-create over the whiteout gives the new file only");
}

/* Unlinked files stay usable through fds that are still open. */
void test_unlink_open(void)
{
	int fd = open(M("rm/open_base"), O_RDONLY | O_CLOEXEC);
	char buf[16] = "";
	struct stat st;

	CHECK(sys(fd, "open") && sys(unlink(M("rm/open_base")), "unlink") &&
	      long_is(pread(fd, buf, sizeof(buf), 0), 10, "pread") &&
	      (memcmp(buf, "open-base\n", 10) == 0 || fail("read \"%s\"", show(buf, 10))) &&
	      absent(M("rm/open_base")),
	      "unlink: open fd of an unlinked base file still reads");
	if (fd >= 0)
		close(fd);

	fd = open(M("rm/open_new"), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
	memset(buf, 0, sizeof(buf));
	CHECK(sys(fd, "create") && long_is(write(fd, "abc", 3), 3, "write") &&
	      sys(unlink(M("rm/open_new")), "unlink") &&
	      long_is(pwrite(fd, "d", 1, 3), 1, "pwrite after unlink") &&
	      long_is(pread(fd, buf, sizeof(buf), 0), 4, "pread after unlink") &&
	      (memcmp(buf, "abcd", 4) == 0 || fail("read \"%s\"", show(buf, 4))) &&
	      sys(fstat(fd, &st), "fstat") && long_is(st.st_nlink, 0, "st_nlink") &&
	      absent(M("rm/open_new")),
	      "unlink: open fd of an unlinked new file reads, writes, st_nlink 0");
	if (fd >= 0)
		close(fd);
}

/* Creating an entry updates the parent directory's mtime and ctime. */
void test_parent_times(void)
{
	struct timespec t0;
	struct stat st;

	clock_gettime(CLOCK_REALTIME, &t0);
	CHECK(write_file(M("mtime/new"), "n", O_CREAT | O_EXCL) &&
	      lstat_ok(M("mtime"), &st) &&
	      ((st.st_mtim.tv_sec >= t0.tv_sec - 1 && st.st_ctim.tv_sec >= t0.tv_sec - 1) ||
	       fail("parent mtime %lld ctime %lld, created at %lld",
		    (long long)st.st_mtim.tv_sec, (long long)st.st_ctim.tv_sec,
		    (long long)t0.tv_sec)),
	      "create: parent directory mtime and ctime updated");
}

void test_rmdir(void)
{
	struct stat st;

	CHECK(sys(unlink(M("rm/dir/a")), "unlink a") &&
	      sys(unlink(M("rm/dir/b/c")), "unlink b/c") &&
	      sys(rmdir(M("rm/dir/b")), "rmdir b") &&
	      sys(rmdir(M("rm/dir")), "rmdir dir"),
	      "rmdir: base directory emptied through the merged view");
	CHECK(absent(M("rm/dir")) && is_whiteout(U("rm/dir")),
	      "rmdir: directory gone, whiteout in upper");
	CHECK(sys(mkdir(M("rm/dir"), 0755), "mkdir") &&
	      entries_are(M("rm/dir"), ".,.."),
	      "rmdir: mkdir of the same name gives an empty directory");
	CHECK(type_is(U("rm/dir"), S_IFDIR) && is_opaque(U("rm/dir")),
	      "rmdir: re-created upper directory is opaque");
	CHECK(content_is(B("rm/dir/a"), "a\n") && content_is(B("rm/dir/b/c"), "c\n"),
	      "rmdir: base tree unchanged");
	CHECK(fails_with(rmdir(M("rm/full")), ENOTEMPTY, "rmdir rm/full") &&
	      lstat_ok(M("rm/full/x"), &st),
	      "rmdir: base directory with content gives ENOTEMPTY");
	CHECK(sys(rmdir(M("rm/empty")), "rmdir") && absent(M("rm/empty")) &&
	      is_whiteout(U("rm/empty")),
	      "rmdir: empty base directory, whiteout in upper");
}

/* ---- creating nodes ---------------------------------------------------- */

void test_create(void)
{
	const char *f = M("new/file");
	int fd;

	CHECK(sys(mkdir(M("new"), 0755), "mkdir new"), "mkdir: new directory");
	fd = open(f, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640);
	CHECK(sys(fd, "open O_CREAT") && sys(write(fd, "hello", 5), "write") &&
	      sys(close(fd), "close") && content_is(f, "hello") &&
	      mode_is(f, 0640) && owner_is(f, 0, 0) &&
	      content_is(U("new/file"), "hello"),
	      "create: O_CREAT|O_EXCL file with mode 0640");
	CHECK(fails_with(open(f, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640),
			 EEXIST, "second O_EXCL"),
	      "create: O_EXCL on an existing name gives EEXIST");
	CHECK(fails_with(open(M("merge/both"), O_CREAT | O_EXCL | O_WRONLY |
			      O_CLOEXEC, 0640), EEXIST, "O_EXCL on merge/both"),
	      "create: O_EXCL on a name from a lower layer gives EEXIST");
	CHECK(sys(mkdir(M("new/dir"), 0750), "mkdir") &&
	      type_is(M("new/dir"), S_IFDIR) && mode_is(M("new/dir"), 0750) &&
	      entries_are(M("new/dir"), ".,..") && nlink_is(M("new/dir"), 2),
	      "mkdir: mode 0750, empty, st_nlink 2");
	CHECK(fails_with(mkdir(M("merge/subdir"), 0755), EEXIST, "mkdir existing"),
	      "mkdir: existing base directory gives EEXIST");
}

void test_mknod(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	char buf[4];
	int fd, sock;

	CHECK(sys(mkdir(M("nod"), 0755), "mkdir nod") &&
	      sys(mknod(M("nod/fifo"), S_IFIFO | 0644, 0), "mknod fifo") &&
	      type_is(M("nod/fifo"), S_IFIFO) && type_is(U("nod/fifo"), S_IFIFO),
	      "mknod: fifo");

	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "sock");
	CHECK(sys(sock, "socket") && sys(chdir(M("nod")), "chdir") &&
	      sys(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), "bind") &&
	      type_is(M("nod/sock"), S_IFSOCK) && type_is(U("nod/sock"), S_IFSOCK),
	      "mknod: unix socket created by bind");
	if (sock >= 0)
		close(sock);
	if (chdir("/") < 0)
		diag("chdir /: %s", strerror(errno));

	CHECK(sys(mknod(M("nod/null"), S_IFCHR | 0666, makedev(1, 3)), "mknod chr") &&
	      lstat_ok(M("nod/null"), &st) && S_ISCHR(st.st_mode) &&
	      long_is(st.st_rdev, makedev(1, 3), "st_rdev"),
	      "mknod: character device 1:3");
	fd = open(M("nod/null"), O_RDWR | O_CLOEXEC);
	CHECK(sys(fd, "open char device") &&
	      long_is(write(fd, "abc", 3), 3, "write to 1:3") &&
	      long_is(read(fd, buf, sizeof(buf)), 0, "read from 1:3"),
	      "mknod: character device 1:3 opens as /dev/null");
	if (fd >= 0)
		close(fd);
	CHECK(sys(mknod(M("nod/blk"), S_IFBLK | 0600, makedev(7, 200)), "mknod blk") &&
	      lstat_ok(M("nod/blk"), &st) && S_ISBLK(st.st_mode) &&
	      long_is(st.st_rdev, makedev(7, 200), "st_rdev") &&
	      type_is(U("nod/blk"), S_IFBLK),
	      "mknod: block device 7:200");
	CHECK(fails_with(mknod(M("nod/zero"), S_IFCHR | 0644, makedev(0, 0)), EPERM, "mknod c 0 0") &&
	      drop_caches() && absent(M("nod/zero")) && absent(U("nod/zero")),
	      "mknod: a 0:0 character device (a whiteout on disk) gives EPERM, nothing made");
	CHECK(lstat_ok(M("nodes/null"), &st) && S_ISCHR(st.st_mode) &&
	      long_is(st.st_rdev, makedev(1, 3), "st_rdev") &&
	      type_is(M("nodes/fifo"), S_IFIFO),
	      "mknod: base fifo and device nodes visible");
	CHECK(sys(chmod(M("nodes/fifo"), 0600), "chmod fifo") &&
	      type_is(U("nodes/fifo"), S_IFIFO) && mode_is(U("nodes/fifo"), 0600) &&
	      type_is(B("nodes/fifo"), S_IFIFO) && mode_is(B("nodes/fifo"), 0644),
	      "mknod: chmod copies up a base fifo as a fifo");
}

void test_symlink(void)
{
	char buf[64];
	ssize_t n;
	struct stat st;

	CHECK(sys(mkdir(M("sym"), 0755), "mkdir sym") &&
	      sys(symlink("target/path", M("sym/link")), "symlink") &&
	      lstat_ok(M("sym/link"), &st) && S_ISLNK(st.st_mode) &&
	      long_is(st.st_size, 11, "symlink st_size"),
	      "symlink: create");
	n = readlink(M("sym/link"), buf, sizeof(buf));
	CHECK(sys(n, "readlink") &&
	      (((size_t)n == 11 && memcmp(buf, "target/path", 11) == 0) ||
	       fail("readlink gave \"%s\"", show(buf, n))),
	      "symlink: readlink returns the target");
	CHECK(sys(symlink("../merge/both", M("sym/rel")), "symlink") &&
	      content_is(M("sym/rel"), "upper-both\n"),
	      "symlink: relative link followed inside the merged view");
	CHECK(fails_with(symlink("x", M("merge/both")), EEXIST, "symlink over file"),
	      "symlink: existing name gives EEXIST");
}

void test_base_symlink(void)
{
	const char *p = M("bsym/link");
	char buf[64];
	ssize_t n = readlink(p, buf, sizeof(buf));

	CHECK(sys(n, "readlink") &&
	      ((n == 14 && memcmp(buf, "target-of-base", 14) == 0) ||
	       fail("readlink gave \"%s\"", show(buf, n))),
	      "symlink: base symlink readable");
	n = -1;
	CHECK(sys(lchown(p, 1234, 5678), "lchown") && owner_is(p, 1234, 5678) &&
	      type_is(U("bsym/link"), S_IFLNK) &&
	      sys(n = readlink(U("bsym/link"), buf, sizeof(buf)), "readlink upper") &&
	      ((n == 14 && memcmp(buf, "target-of-base", 14) == 0) ||
	       fail("upper readlink gave \"%s\"", show(buf, n))) &&
	      mtime_is(p, BASE_MTIME_S, BASE_MTIME_NS),
	      "symlink: lchown copies up the symlink itself, target and mtime kept");
}

/* ---- rename ------------------------------------------------------------ */

void test_rename_files(void)
{
	CHECK(sys(rename(M("ren/plain_src"), M("ren/plain_dst")), "rename") &&
	      content_is(M("ren/plain_dst"), "plain\n") &&
	      absent(M("ren/plain_src")) && is_whiteout(U("ren/plain_src")),
	      "rename: base file to a new name, whiteout at the old name");
	CHECK(sys(rename(M("ren/over_src"), M("ren/over_dst")), "rename") &&
	      content_is(M("ren/over_dst"), "over-src\n") &&
	      absent(M("ren/over_src")) && listed_once(M("ren"), "over_dst"),
	      "rename: base file over another base file");
	CHECK(fails_with(renameat2(AT_FDCWD, M("ren/nr_a"), AT_FDCWD,
				   M("ren/nr_b"), RENAME_NOREPLACE),
			 EEXIST, "RENAME_NOREPLACE") &&
	      content_is(M("ren/nr_a"), "nr-a\n") &&
	      content_is(M("ren/nr_b"), "nr-b\n"),
	      "rename: RENAME_NOREPLACE onto an existing name gives EEXIST");
	CHECK(sys(renameat2(AT_FDCWD, M("ren/nr_a"), AT_FDCWD, M("ren/nr_c"),
			    RENAME_NOREPLACE), "RENAME_NOREPLACE") &&
	      content_is(M("ren/nr_c"), "nr-a\n") && absent(M("ren/nr_a")),
	      "rename: RENAME_NOREPLACE onto a free name");
	CHECK(sys(renameat2(AT_FDCWD, M("ren/xa"), AT_FDCWD, M("ren/xb"),
			    RENAME_EXCHANGE), "RENAME_EXCHANGE") &&
	      content_is(M("ren/xa"), "xb\n") && content_is(M("ren/xb"), "xa\n"),
	      "rename: RENAME_EXCHANGE of two base files");
	CHECK(sys(unlink(M("ren/wh_target")), "unlink") &&
	      sys(rename(M("ren/wh_src"), M("ren/wh_target")), "rename") &&
	      content_is(M("ren/wh_target"), "wh-src\n") &&
	      absent(M("ren/wh_src")) && listed_once(M("ren"), "wh_target") &&
	      not_listed(M("ren"), "wh_src") && is_whiteout(U("ren/wh_src")),
	      "rename: onto a name previously deleted (over a whiteout)");
	CHECK(sys(rename(M("ren/cross_src"), M("ren/cross_dir/moved")), "rename") &&
	      content_is(M("ren/cross_dir/moved"), "cross\n") &&
	      absent(M("ren/cross_src")) && is_whiteout(U("ren/cross_src")),
	      "rename: base file into another base directory");
}

void test_rename_dirs(void)
{
	int r;

	CHECK(sys(mkdir(M("ren/xd"), 0755), "mkdir") &&
	      write_file(M("ren/xd/child"), "child\n", O_CREAT) &&
	      sys(renameat2(AT_FDCWD, M("ren/xf"), AT_FDCWD, M("ren/xd"),
			    RENAME_EXCHANGE), "RENAME_EXCHANGE") &&
	      type_is(M("ren/xf"), S_IFDIR) &&
	      content_is(M("ren/xf/child"), "child\n") &&
	      content_is(M("ren/xd"), "xf\n"),
	      "rename: RENAME_EXCHANGE of a base file and a new directory");

	CHECK(sys(mkdir(M("ren/updir"), 0755), "mkdir") &&
	      write_file(M("ren/updir/f"), "f\n", O_CREAT) &&
	      sys(rename(M("ren/updir"), M("ren/updir2")), "rename") &&
	      content_is(M("ren/updir2/f"), "f\n") && absent(M("ren/updir")),
	      "rename: directory created in the merged view");

	r = rename(M("ren/basedir"), M("ren/basedir_moved"));
	if (r == -1 && errno == EXDEV) {
		diag("rename of a base-only directory: EXDEV (no redirect_dir)");
		CHECK(content_is(M("ren/basedir/f1"), "f1\n") &&
		      absent(M("ren/basedir_moved")),
		      "rename: base-only directory gives EXDEV and changes nothing");
	} else {
		CHECK(sys(r, "rename basedir") &&
		      content_is(M("ren/basedir_moved/f1"), "f1\n") &&
		      content_is(M("ren/basedir_moved/sub/f2"), "f2\n") &&
		      absent(M("ren/basedir")) && not_listed(M("ren"), "basedir"),
		      "rename: base-only directory moved with all content");
	}

	CHECK(sys(mkdir(M("ren/mover"), 0755), "mkdir") &&
	      fails_with(rename(M("ren/mover"), M("ren/full")), ENOTEMPTY,
			 "rename onto ren/full"),
	      "rename: directory onto a non-empty base directory gives ENOTEMPTY");
	CHECK(write_file(M("ren/mover/m"), "m\n", O_CREAT) &&
	      sys(rename(M("ren/mover"), M("ren/emptydir")), "rename") &&
	      entries_are(M("ren/emptydir"), ".,..,m") && absent(M("ren/mover")),
	      "rename: directory onto an empty base directory replaces it");
	CHECK(fails_with(rename(M("ren/file"), M("ren/emptydir")), EISDIR,
			 "file onto dir") &&
	      fails_with(rename(M("ren/emptydir"), M("ren/file")), ENOTDIR,
			 "dir onto file"),
	      "rename: file onto directory EISDIR, directory onto file ENOTDIR");
}

