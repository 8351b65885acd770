# Shared helpers for corral's integration tests (bash, TAP output).
#
# Every test sources this file, calls `tap_plan N` (or `tap_plan_lazy`), and
# creates everything under $T (a fresh temp dir).  An EXIT trap unmounts
# every mount below $T, kills registered pids and removes $T, even when the
# test fails half-way.

set -u
COWFS=${COWFS:-cowfs}
POSIX_OPS=${POSIX_OPS:-posix-ops}
TOP_SRCDIR=${TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}

_tap_n=0
_tap_failed=0
_tap_planned=
_cleanup_pids=()
_cleanup_cmds=()

T=$(mktemp -d /tmp/corral-test.XXXXXX)

tap_plan() { _tap_planned=$1; echo "1..$1"; }
ok() { # ok COND_STATUS DESCRIPTION (returns 0 either way: `ok ... || x` never runs x)
	_tap_n=$((_tap_n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $_tap_n - $2"; else echo "not ok $_tap_n - $2"; _tap_failed=$((_tap_failed + 1)); fi
}
# check DESCRIPTION CMD...: runs CMD, ok if it exits 0; shows output on failure.
check() {
	local desc=$1; shift
	local out rc
	out=$("$@" 2>&1); rc=$?
	ok $rc "$desc"
	[ $rc -eq 0 ] || printf '%s\n' "$out" | sed 's/^/# /'
	return $rc
}
# check_fails DESCRIPTION REASON CMD...: ok if CMD exits non-zero *and* its
# output (stdout and stderr) matches the extended regular expression REASON
# (case-insensitive): a command that fails for another reason (a typo, a
# crash, a missing file) must not pass for the refusal being tested.
check_fails() {
	local desc=$1 reason=$2; shift 2
	local out rc
	out=$("$@" 2>&1); rc=$?
	if [ $rc -ne 0 ] && grep -Eqi -- "$reason" <<<"$out"; then
		ok 0 "$desc"
	else
		ok 1 "$desc (exit $rc; wanted a failure matching '$reason')"
		printf '%s\n' "$out" | sed 's/^/# /'
	fi
}
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
bail() { echo "Bail out! $*"; exit 1; }
diag() { echo "# $*"; }

on_cleanup() { _cleanup_cmds+=("$*"); }
register_pid() { _cleanup_pids+=("$1"); }

_cleanup() {
	local rc=$?
	local c p m
	for c in "${_cleanup_cmds[@]}"; do eval "$c" >/dev/null 2>&1; done
	for p in "${_cleanup_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	# Deepest mounts first.
	for m in $(awk -v t="$T" 'index($2, t) == 1 { print $2 }' /proc/self/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	rm -rf "$T"
	if [ -n "$_tap_planned" ] && [ "$_tap_n" -ne "$_tap_planned" ] && [ $rc -eq 0 ]; then
		echo "# planned $_tap_planned tests but ran $_tap_n"
		rc=1
	fi
	[ $_tap_failed -eq 0 ] || rc=1
	exit $rc
}
trap _cleanup EXIT
trap 'exit 1' INT TERM

# COWFS_PASSTHROUGH=0: every cowfs the test starts runs with -o passthrough=0
# (every open through the daemon), through a wrapper that execs the real one.
if [ "${COWFS_PASSTHROUGH:-}" = 0 ] && _real_cowfs=$(command -v "$COWFS"); then
	printf '#!/bin/sh\nexec %q -o passthrough=0 "$@"\n' "$_real_cowfs" >"$T/cowfs-nopassthrough"
	chmod +x "$T/cowfs-nopassthrough"
	COWFS=$T/cowfs-nopassthrough
	echo "# cowfs with -o passthrough=0"
fi

require_root() { [ "$(id -u)" = 0 ] || skip_all "needs root"; }
require_fuse() { [ -c /dev/fuse ] || skip_all "needs /dev/fuse"; }

# mount_cowfs BASE UPPER MNT [extra cowfs args...]: native syntax; waits for the mount.
mount_cowfs() {
	local base=$1 upper=$2 mnt=$3; shift 3
	mkdir -p "$upper" "$mnt"
	"$COWFS" --base "$base" --upper "$upper" "$@" "$mnt" || return 1
	mountpoint -q "$mnt"
}
# mount_cowfs_compat LOWERS UPPER WORK MNT: fuse-overlayfs syntax.
mount_cowfs_compat() {
	mkdir -p "$2" "$3" "$4"
	"$COWFS" -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" || return 1
	mountpoint -q "$4"
}
# mount_overlay LOWERS UPPER WORK MNT: kernel overlayfs.
mount_overlay() {
	mkdir -p "$2" "$3" "$4"
	mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4"
}
# cowfs_pid MNT: pid of the cowfs daemon serving MNT.
cowfs_pid() {
	pgrep -f -- "cowfs.* $1\$" | head -1
}
unmount() { umount "$1" 2>/dev/null || umount -l "$1"; }

# FUSE over io_uring is offered by the kernel only with the fuse module's
# enable_uring set, a host-wide switch.  uring_param_set Y|N sets it for the
# rest of the test: the first call takes a host-wide lock (two tests never
# flip it under each other) and arranges for the value found to be put back
# on exit, even on failure.  Returns 2 when the kernel has no such
# parameter.  Only cowfs mounts that ask for the ring are affected.
URING_PARAM=/sys/module/fuse/parameters/enable_uring
uring_param_set() {
	[ -w "$URING_PARAM" ] || return 2
	if [ -z "${_uring_saved:-}" ]; then
		exec 8>>/run/lock/corral-test-enable-uring || return 1
		flock 8 || return 1
		_uring_saved=$(cat "$URING_PARAM")
		on_cleanup 'echo "$_uring_saved" >"$URING_PARAM"'
	fi
	echo "$1" >"$URING_PARAM"
}
# cowfs_has_uring: the cowfs under test was built with a libfuse that has
# FUSE over io_uring (3.18 or later).
cowfs_has_uring() { "$COWFS" --version 2>/dev/null | grep -q '^io_uring: libfuse yes'; }
# ring_fds PID: how many io_uring instances the process holds.
ring_fds() {
	local f n=0
	for f in /proc/"$1"/fd/*; do
		[ "$(readlink "$f" 2>/dev/null)" = "anon_inode:[io_uring]" ] && n=$((n + 1))
	done
	echo $n
}
# wait_status FILE: until cowfs has written its status file (at most 10 s).
wait_status() {
	local i
	for i in $(seq 100); do
		[ -s "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
# status_value FILE KEY: a value from a cowfs status file.
status_value() { sed -n "s/^$2 = //p" "$1"; }
