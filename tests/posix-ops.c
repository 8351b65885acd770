/* posix-ops - semantic checks of a copy-on-write union mount.
 *
 * Usage: posix-ops MERGED BASE UPPER
 *
 *   MERGED  the merged mount point (kernel overlayfs or cowfs)
 *   BASE    the read-only lower directory
 *   UPPER   the upper directory
 *
 * Runs as root against a freshly mounted union and prints TAP.  Every check
 * works through real syscalls on MERGED; BASE is only read, to prove it was
 * not modified, and UPPER is inspected where the result must be in kernel
 * overlayfs on-disk format (whiteouts, opaque directories, copied-up files).
 *
 * The fixture is created by make_posix_fixture in tests/fixture.sh before
 * mounting; this program creates nothing in BASE.  Layout (BASE unless
 * marked [upper], which is seeded in UPPER in overlayfs format):
 *
 *   merge/both           "base-both\n";  [upper] "upper-both\n"
 *   merge/only_base      "only-base\n"
 *   merge/only_upper     [upper] "only-upper\n"
 *   merge/gone           "gone\n";  [upper] whiteout (char 0:0)
 *   merge/mixed/{a,c}    "base-a\n" "base-c\n";  [upper] b "upper-b\n",
 *                        c "upper-c\n"
 *   merge/opq/hidden     "hidden\n";  [upper] merge/opq opaque, with
 *                        shown "shown\n"
 *   merge/subdir/inner   "inner\n"
 *   merge/many/f000..f599  600 empty files
 *   ino/file "ino-file\n", ino/dir/
 *   link/src             "link-src\n"
 *   link/h1, link/h2     one inode, two names, "hard\n"
 *   cu/{write,truncate,chmod,chown,utimens,setxattr,link,rename}
 *                        "0123456789abcdef\n", mode 0640, owner 1234:5678,
 *                        mtime and atime 1000000000.123456789,
 *                        user.cu="base-value"
 *   cu/fcaps             as cu/ but mode 0750, security.capability
 *                        cap_net_raw+ep (v2)
 *   cu/dir/              mode 0750, owner 1234:5678, user.cu="base-dir"
 *   sparse/big           100 MiB, all hole
 *   concur/file          65536 '.'
 *   rm/victim "victim\n", rm/readd "old\n", rm/open_base "open-base\n",
 *   rm/dir/{a,b/c}, rm/full/x, rm/empty/
 *   nodes/fifo (fifo), nodes/null (char 1:3)
 *   bsym/link            symlink to "target-of-base", mtime as cu/
 *   mtime/               empty directory, mtime 1000000000.123456789
 *   ren/plain_src "plain\n", ren/over_src "over-src\n",
 *   ren/over_dst "over-dst\n", ren/nr_a "nr-a\n", ren/nr_b "nr-b\n",
 *   ren/xa "xa\n", ren/xb "xb\n", ren/xf "xf\n", ren/basedir/f1 "f1\n",
 *   ren/basedir/sub/f2 "f2\n", ren/full/x, ren/emptydir/,
 *   ren/wh_src "wh-src\n", ren/wh_target "wh-target\n", ren/file "isdir\n"
 *   ren/cross_src "cross\n", ren/cross_dir/
 *   open/base "open-base\n", open/copied "copied-copied\n",
 *   open/unl_base "unl-base\n"
 *   rd2/e000..e199       200 empty files; [upper] rd2/ (merged, empty)
 *   io/append "abc", io/trunc "long-content", io/readonly "readonly",
 *   io/stale "before", io/direct 8192 'd', io/mmap 4096 'm', io/sync "s"
 *   io/private 4096 'p', io/fdops "fdops", io/other "other-before",
 *   io/exec_base         a copy of /bin/sleep, mode 0755
 *   falloc/mode0 4096 'g', falloc/punch 65536 'f'
 *   seek/sparse          2 MiB, 64 KiB of 'D' at 1 MiB, rest hole
 *   cfr/src              4096 lines "%015d\n" (64 KiB), cfr/dst
 *                        "old-destination\n"
 *   xattr/file "x\n" with user.a="1", user.b="2"; xattr/dir/
 *   acl/file, acl/withacl "acl\n" mode 0644 (withacl: u:1234:rw- if
 *   setfacl was available), acl/dir/
 *   lock/flock, lock/posix "lock\n"
 *   utime/now "t\n", times 1000000000.123456789
 *   killpriv/, rd3/      (made by the tests through the mount)
 *   big/base             6 GiB sparse, 'Z' at 5 GiB
 *   names/<255 x 'b'> "long\n", names/bin\xff\xfe "binary\n"
 *   deep/d00/d01/.../d59/leaf "leaf\n"
 *
 * Each area below works in its own sub-tree so that one failure does not
 * cascade into unrelated checks.
 */
#include "posix-ops.h"

/* ---- main -------------------------------------------------------------- */

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Names the filesystem under test in the log, to tell runs apart. */
static void describe_mount(void)
{
	struct statfs sf;
	const char *kind = "other";

	if (statfs(merged_root, &sf) < 0) {
		diag("statfs %s: %s", merged_root, strerror(errno));
		return;
	}
	if (sf.f_type == 0x794c7630)
		kind = "overlayfs";
	else if (sf.f_type == 0x65735546)
		kind = "fuse";
	diag("%s: %s (f_type 0x%lx)", merged_root, kind, (unsigned long)sf.f_type);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s MERGED BASE UPPER\n", argv[0]);
		return 2;
	}
	merged_root = argv[1];
	base_root = argv[2];
	upper_root = argv[3];
	if (!is_dir(merged_root) || !is_dir(base_root) || !is_dir(upper_root)) {
		tap_bail("MERGED, BASE and UPPER must be directories");
		return 1;
	}
	if (access(M("merge/only_base"), F_OK) != 0) {
		tap_bail("%s: fixture missing (make_posix_fixture?): %s",
			 M("merge/only_base"), strerror(errno));
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	umask(022);
	describe_mount();

	test_lookup();
	test_readdir();
	test_readdir_ino();
	test_readdir_large();
	test_readdir_seek();
	test_readdir_two_handles();
	test_readdir_three_handles();
	test_dots();
	test_ino_stable();
	test_hardlink();
	test_base_hardlinks();
	test_copyup_write();
	test_copyup_truncate();
	test_copyup_chmod();
	test_copyup_chown();
	test_copyup_utimens();
	test_copyup_setxattr();
	test_copyup_fcaps();
	test_copyup_link();
	test_copyup_rename();
	test_copyup_dir();
	test_copyup_sparse();
	test_concurrent_copyup();
	test_unlink();
	test_unlink_open();
	test_rmdir();
	test_create();
	test_parent_times();
	test_mknod();
	test_symlink();
	test_base_symlink();
	test_rename_files();
	test_rename_dirs();
	test_open_flags();
	test_stale_fd();
	test_open_replaced();
	test_open_unlinked();
	test_o_direct();
	test_o_tmpfile();
	test_mmap();
	test_mmap_private();
	test_copyup_other_process();
	test_exec_base();
	test_exec_upper();
	test_mmap_new();
	test_o_direct_new();
	test_fd_ops();
	test_sync();
	test_fallocate();
	test_seek();
	test_copy_file_range();
	test_statfs();
	test_xattr();
	test_acl();
	test_flock();
	test_posix_lock();
	test_utimens();
	test_killpriv();
	test_bigfile();
	test_names();
	test_deep_new();
	test_deep_base();
	test_readdir_changes();
	return tap_done();
}
