# Fixture for tests/posix-ops.c, shared by the overlayfs and cowfs runs.
#
# make_posix_fixture BASE UPPER
#   Fills BASE (the read-only lower layer) and seeds UPPER with a few
#   entries in kernel-overlayfs on-disk format (a shadowing file, a
#   whiteout, an opaque directory).  Must run as root, before mounting.
#   The layout is documented at the top of tests/posix-ops.c; keep the two
#   in sync.  A straight sequence of commands: no helpers, no magic.

make_posix_fixture() {
	local b=$1 u=$2 op i p name
	local t0=@1000000000.123456789

	mkdir -p "$b" "$u" || return 1
	(
	set -e
	cd "$b"

	# merge/: lookup and readdir across layers.
	mkdir -p merge/mixed merge/opq merge/subdir merge/many
	echo base-both >merge/both
	echo only-base >merge/only_base
	echo gone >merge/gone
	echo base-a >merge/mixed/a
	echo base-c >merge/mixed/c
	echo hidden >merge/opq/hidden
	echo inner >merge/subdir/inner
	i=0
	while [ $i -lt 600 ]; do
		: >"merge/many/f$(printf %03d $i)"
		i=$((i + 1))
	done

	# ino/: inode number stability.
	mkdir -p ino/dir
	echo ino-file >ino/file

	# link/: hard links made in the merged view.
	mkdir link
	echo link-src >link/src
	echo hard >link/h1
	ln link/h1 link/h2

	# cu/: one file per copy-up trigger, all with the same attributes.
	mkdir cu
	for op in write truncate chmod chown utimens setxattr link rename; do
		echo 0123456789abcdef >"cu/$op"
		chmod 0640 "cu/$op"
		chown 1234:5678 "cu/$op"
		setfattr -n user.cu -v base-value "cu/$op"
		touch -d "$t0" "cu/$op"
	done
	# A file capability (cap_net_raw+ep), set after the chown that would
	# clear it: copy-up must keep it.
	echo 0123456789abcdef >cu/fcaps
	chown 1234:5678 cu/fcaps
	chmod 0750 cu/fcaps
	setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 cu/fcaps
	mkdir cu/dir
	chmod 0750 cu/dir
	chown 1234:5678 cu/dir
	setfattr -n user.cu -v base-dir cu/dir

	# sparse/: a 100 MiB file that is all hole.
	mkdir sparse
	truncate -s 100M sparse/big

	# concur/: 16 x 4 KiB of dots, written by 16 threads at once.
	mkdir concur
	head -c 65536 /dev/zero | tr '\0' . >concur/file

	# rm/: unlink and rmdir of base entries.
	mkdir -p rm/dir/b rm/full rm/empty
	echo victim >rm/victim
	echo old >rm/readd
	echo open-base >rm/open_base
	echo a >rm/dir/a
	echo c >rm/dir/b/c
	echo x >rm/full/x

	# nodes/: special files in the base layer.
	mkdir nodes
	mkfifo nodes/fifo
	mknod nodes/null c 1 3

	# bsym/: a symlink in the base layer.
	mkdir bsym
	ln -s target-of-base bsym/link
	touch -h -d "$t0" bsym/link

	# mtime/: parent directory timestamps.
	mkdir mtime
	touch -d "$t0" mtime

	# ren/: rename sources and targets.
	mkdir -p ren/basedir/sub ren/full ren/emptydir
	echo plain >ren/plain_src
	echo over-src >ren/over_src
	echo over-dst >ren/over_dst
	echo nr-a >ren/nr_a
	echo nr-b >ren/nr_b
	echo xa >ren/xa
	echo xb >ren/xb
	echo xf >ren/xf
	echo f1 >ren/basedir/f1
	echo f2 >ren/basedir/sub/f2
	echo x >ren/full/x
	echo wh-src >ren/wh_src
	echo wh-target >ren/wh_target
	echo isdir >ren/file
	mkdir ren/cross_dir
	echo cross >ren/cross_src

	# open/: files used through fds after their names changed.
	mkdir open
	echo open-base >open/base
	echo copied-copied >open/copied
	echo unl-base >open/unl_base

	# rd2/: 200 names read by two directory handles at once.
	mkdir rd2
	i=0
	while [ $i -lt 200 ]; do
		: >"rd2/e$(printf %03d $i)"
		i=$((i + 1))
	done

	# io/: open flags, mmap, sync.
	mkdir io
	printf abc >io/append
	printf long-content >io/trunc
	printf readonly >io/readonly
	printf before >io/stale
	head -c 8192 /dev/zero | tr '\0' d >io/direct
	head -c 4096 /dev/zero | tr '\0' m >io/mmap
	printf s >io/sync
	head -c 4096 /dev/zero | tr '\0' p >io/private
	printf fdops >io/fdops
	printf other-before >io/other
	cp /bin/sleep io/exec_base && chmod 0755 io/exec_base

	# falloc/: fallocate on base files.
	mkdir falloc
	head -c 4096 /dev/zero | tr '\0' g >falloc/mode0
	head -c 65536 /dev/zero | tr '\0' f >falloc/punch

	# seek/: 2 MiB file with 64 KiB of data at 1 MiB.
	mkdir seek
	truncate -s 2M seek/sparse
	head -c 65536 /dev/zero | tr '\0' D |
		dd of=seek/sparse bs=64k seek=16 conv=notrunc status=none

	# cfr/: copy_file_range.
	mkdir cfr
	i=0
	while [ $i -lt 4096 ]; do
		printf '%015d\n' $i
		i=$((i + 1))
	done >cfr/src
	echo old-destination >cfr/dst

	# xattr/: user.* extended attributes.
	mkdir -p xattr/dir
	echo x >xattr/file
	setfattr -n user.a -v 1 xattr/file
	setfattr -n user.b -v 2 xattr/file

	# acl/: POSIX ACLs (acl/withacl only gets an ACL if setfacl exists).
	mkdir -p acl/dir
	echo acl >acl/file
	echo acl >acl/withacl
	chmod 0644 acl/file acl/withacl
	if command -v setfacl >/dev/null; then
		setfacl -m u:1234:rw- acl/withacl
	fi

	# lock/: flock and fcntl locks.
	mkdir lock
	echo lock >lock/flock
	echo lock >lock/posix

	# utime/: timestamps.
	mkdir utime
	echo t >utime/now
	touch -d "$t0" utime/now

	# big/: a 6 GiB sparse file with 'Z' at 5 GiB.
	mkdir big
	truncate -s 6G big/base
	printf Z | dd of=big/base bs=1 seek=$((5 << 30)) conv=notrunc status=none

	# names/: a 255-byte name and a name that is not UTF-8.
	mkdir names
	name=$(printf '%0255d' 0 | tr 0 b)
	echo long >"names/$name"
	name=$(printf 'bin\377\376')
	echo binary >"names/$name"

	# deep/: 60 nested directories with a file at the bottom.
	p=deep
	i=0
	while [ $i -lt 60 ]; do
		p=$p/d$(printf %02d $i)
		i=$((i + 1))
	done
	mkdir -p "$p"
	echo leaf >"$p/leaf"
	) || return 1

	# Upper layer seed, kernel overlayfs format.
	(
	set -e
	cd "$u"
	mkdir -p merge/mixed merge/opq rd2
	echo upper-both >merge/both
	echo only-upper >merge/only_upper
	mknod merge/gone c 0 0
	echo upper-b >merge/mixed/b
	echo upper-c >merge/mixed/c
	setfattr -n trusted.overlay.opaque -v y merge/opq
	echo shown >merge/opq/shown
	) || return 1
	sync
}

# make_perm_fixture BASE
#   Base layer for tests/cowfs-unprivileged.test: ownership and modes that
#   uid 65534 (gid 65534, no supplementary groups) is checked against.
#     secret            root:root 0600 "secret"
#     public            root:root 0644 "public"
#     rootdir/          root:root 0755, with rootdir/file 0666 "file"
#     privdir/          root:root 0700, with privdir/file 0644 "private"
#     tmp/              root:root 1777
#     tmp/other         1000:1000 0666 "other"
#     tmp/mine          65534:65534 0644 "mine"
#     grp/shared        root:4242 0660 "group"
#     mydir/            65534:65534 0755
make_perm_fixture() {
	local b=$1

	mkdir -p "$b" || return 1
	(
	set -e
	cd "$b"
	echo secret >secret
	chmod 0600 secret
	echo public >public
	chmod 0644 public
	mkdir -m 0755 rootdir privdir
	echo file >rootdir/file
	chmod 0666 rootdir/file
	chmod 0700 privdir
	echo private >privdir/file
	mkdir tmp
	chmod 1777 tmp
	echo other >tmp/other
	chown 1000:1000 tmp/other
	chmod 0666 tmp/other
	echo mine >tmp/mine
	chown 65534:65534 tmp/mine
	chmod 0644 tmp/mine
	mkdir -m 0755 grp
	echo group >grp/shared
	chown 0:4242 grp/shared
	chmod 0660 grp/shared
	mkdir -m 0755 mydir
	chown 65534:65534 mydir
	) || return 1
	sync
}
