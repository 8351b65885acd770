# Helpers for the corral integration tests (tests/launcher-*.test).
# Sourced after tests/lib.sh, which provides $T, the TAP functions and the
# EXIT trap.
#
# Every test keeps its state in its own root ($ROOT, under $T; a second
# root, if any, is also named $T/root*) and names
# its containers "$PFX-<something>": cgroups, veths and processes live in
# host-wide namespaces, so the prefix (unique per test run) is what tells
# this run's objects from anyone else's.  On exit every container under
# $T/root* is removed with `corral rm -f --snapshots`; whatever is still left after that
# (processes, cgroups, mounts) is killed or removed and reported.

CORRAL=${CORRAL:-$TOP_SRCDIR/launcher/corral}
# corral finds cowfs beside itself in a build tree; an explicit $COWFS wins.
case ${COWFS:-} in
/*) [ -x "$COWFS" ] && export CORRAL_COWFS=$COWFS ;;
esac
ROOT=$T/root
PFX=lt$$
# Diagnostics from the EXIT trap go to the TAP stream (the trap's own
# output is discarded by lib.sh).
exec 3>&1

require_corral() {
	require_root
	require_fuse
	[ -x "$CORRAL" ] || skip_all "no corral binary at $CORRAL (build first, or set CORRAL)"
	command -v python3 >/dev/null || skip_all "needs python3 (JSON checks)"
	mkdir -p "$ROOT"
	# The default template is built on first use; build it now so no
	# timed check pays for it.
	"$CORRAL" --root "$ROOT" template list >/dev/null 2>&1
	ct create "$PFX-warmup" -- true >/dev/null 2>&1 && ct rm "$PFX-warmup" >/dev/null 2>&1
	[ -d "$ROOT/templates/default/rootfs" ] || bail "cannot build the default template in $ROOT"
}

ct() { "$CORRAL" --root "$ROOT" "$@"; }

# ---- state and cgroups --------------------------------------------------

# state_get NAME KEY: a value from <root>/containers/NAME/state.
state_get() {
	awk -v k="$2" '$1 == k && $2 == "=" { print $3 }' "$ROOT/containers/$1/state" 2>/dev/null
}

# cg_dir CONTROLLER NAME: the container's cgroup directory for a
# controller (v1 hierarchy where it is mounted, else the v2 tree).
cg_dir() {
	local ctrl=$1 name=$2 path
	path=$(awk -F: -v c="$ctrl" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' \
		/proc/self/cgroup)
	local base
	if [ -n "$path" ] && [ -d "/sys/fs/cgroup/$ctrl" ]; then
		base="/sys/fs/cgroup/$ctrl${path%/}/corral"
	else
		path=$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)
		base="/sys/fs/cgroup${path%/}/corral"
	fi
	# Outside the default state root, corral suffixes the name with a
	# hash of the root (NAME.XXXXXXXX) so that roots never share a cgroup.
	local d
	for d in "$base/$name" "$base/$name".????????; do
		[ -d "$d" ] && { echo "$d"; return; }
	done
	echo "$base/$name"

}

# cg_procs NAME: pids in the container's cgroups (the pids and memory
# controllers: the cowfs daemon may be left out of the former).
cg_procs() {
	local p m
	p=$(cg_dir pids "$1") m=$(cg_dir memory "$1")
	# On v2 with the freezer, the container's processes are in tasks/.
	cat "$p/cgroup.procs" "$m/cgroup.procs" "$p/tasks/cgroup.procs" "$m/tasks/cgroup.procs" 2>/dev/null | sort -un
}

# starttime PID: field 22 of /proc/PID/stat ("" if gone or a zombie: a
# process that has exited and waits for a parent outside the container to
# collect it is no longer anyone's to clean up).
starttime() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	set -- $s
	case $1 in Z|X) return 0 ;; esac
	echo "${20}"
}

# cmdline_of PID: the command line, arguments joined by spaces.
cmdline_of() {
	local a=()
	{ mapfile -d '' a <"/proc/$1/cmdline"; } 2>/dev/null
	echo "${a[*]}"
}

# remember_pids NAME: records every process of the container now running
# (with its start time), so the final leak check can tell that each of
# them is gone.
remember_pids() {
	local p
	for p in $(cg_procs "$1"); do
		echo "$p $(starttime "$p") $1" >>"$T/pids"
	done
}

# veth_name NAME: host side veth of a bridge container (FNV-1a of the
# name, as in launcher/net/net-lease.c).
# instance_name NAME [ROOT]: what corral calls a container in host-wide
# places (cgroups, veths, leases): NAME, or NAME.<fnv1a32 of the state root>
# outside the default root /var/lib/corral.
instance_name() {
	local name=$1 root=${2:-$ROOT} h=2166136261 i c
	if [ "$root" = /var/lib/corral ]; then
		echo "$name"
		return
	fi
	for ((i = 0; i < ${#root}; i++)); do
		printf -v c '%d' "'${root:i:1}"
		h=$(((h ^ c) * 16777619 & 0xffffffff))
	done
	printf '%s.%08x\n' "$name" "$h"
}

# Address leases are host-wide, like the bridge; so are user namespace
# ranges.
LEASE_DIR=/run/corral/net/leases
USERNS_LEASE_DIR=/run/corral/userns

veth_name() {
	local s=$1 h=2166136261 i c
	for ((i = 0; i < ${#s}; i++)); do
		printf -v c '%d' "'${s:i:1}"
		h=$(((h ^ c) * 16777619 & 0xffffffff))
	done
	printf 'vc%08x\n' "$h"
}

# ---- waiting and JSON ---------------------------------------------------

# wait_until SECONDS CMD...: polls CMD every 0.1 s until it succeeds.
wait_until() {
	local n=$(($1 * 10))
	shift
	while [ $n -gt 0 ]; do
		"$@" && return 0
		sleep 0.1
		n=$((n - 1))
	done
	"$@"
}

# status_of NAME: the container's status from `corral --json list`.
status_of() {
	ct --json list | python3 -c '
import json, sys
for c in json.load(sys.stdin):
    if c["name"] == sys.argv[1]:
        print(c["status"])' "$1"
}
is_status() { [ "$(status_of "$1")" = "$2" ]; }

# json_get EXPR: evaluates EXPR on the JSON document read from stdin
# (bound to `d`) and prints the result.
json_get() {
	python3 -c '
import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1])
print(json.dumps(v) if isinstance(v, (dict, list)) or v is None else v)' "$1"
}

# ---- the probe: a static helper bind-mounted into containers ----------

# build_probe: compiles tests/launcher-probe.c into $T/probe/launcher-probe
# (mount it with --mount "$T/probe:/probe:ro").  Returns 1 without gcc.
build_probe() {
	[ -x "$T/probe/launcher-probe" ] && return 0
	command -v gcc >/dev/null || return 1
	mkdir -p "$T/probe"
	gcc -static -O2 -o "$T/probe/launcher-probe" "$TOP_SRCDIR/tests/launcher-probe.c" 2>"$T/probe/gcc.log" || {
		sed 's/^/# /' "$T/probe/gcc.log"
		return 1
	}
}

# ---- the shared bridge -----------------------------------------------------

# bridge_guard GATEWAY: bridge mode always uses the host bridge corral0,
# and a subnet's gateway address stays on it.  Call before starting bridge
# containers: on exit, the bridge is deleted if this run made it and
# nothing else is attached, else the gateway address (a /24) is removed if
# this run added it.
bridge_guard() {
	_bg_gw=$1
	_bg_had_bridge=false
	_bg_had_gw=false
	if ip link show corral0 >/dev/null 2>&1; then
		_bg_had_bridge=true
		ip -4 -o addr show dev corral0 | grep -q " $_bg_gw/" && _bg_had_gw=true
	fi
	on_cleanup _bridge_restore
}
_bridge_restore() {
	ip link show corral0 >/dev/null 2>&1 || return 0
	if ! $_bg_had_bridge && [ -z "$(ip -o link show master corral0)" ]; then
		ip link del corral0
	elif ! $_bg_had_gw; then
		ip addr del "$_bg_gw/24" dev corral0
	fi
}

# ---- leaks ----------------------------------------------------------------

# leaks: prints everything this run left behind (mounts under $T, cgroups
# of $PFX-* containers, processes mentioning $T or recorded by
# remember_pids, veths of $PFX-* containers, address leases); returns 1 if
# anything is left.
leaks() {
	local out="" p cmd line pid st name
	out+=$(awk -v t="$T" 'index($2, t) == 1 { print "mount: " $2 }' /proc/self/mounts)$'\n'
	out+=$(find /sys/fs/cgroup -maxdepth 8 -type d -path "*/corral/$PFX-*" 2>/dev/null | sed 's/^/cgroup: /')$'\n'
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[ "$pid" = $$ ] || [ "$pid" = "${BASHPID:-}" ] && continue
		# The test's own helpers (register_pid) are not corral's.
		[[ " ${_cleanup_pids[*]} " == *" $pid "* ]] && continue
		cmd=$(cmdline_of "$pid")
		case $cmd in *"$T/"*) out+="process: $pid $cmd"$'\n' ;; esac
	done
	if [ -f "$T/pids" ]; then
		while read -r pid st name; do
			[ -n "$st" ] && [ "$(starttime "$pid")" = "$st" ] &&
				out+="process: $pid (of $name) $(cmdline_of "$pid")"$'\n'
		done <"$T/pids"
	fi
	out+=$(ip -o link show 2>/dev/null | grep -E "alias corral:$PFX-" | sed 's/^/veth: /')$'\n'
	for line in "$LEASE_DIR"/*; do
		[ -e "$line" ] && grep -q "^$PFX-" "$line" && out+="lease: ${line##*/} $(cat "$line")"$'\n'
	done
	for line in "$USERNS_LEASE_DIR"/*; do
		[ -e "$line" ] && grep -q "^$T/" "$line" && out+="userns lease: ${line##*/} $(tr '\n' ' ' <"$line")"$'\n'
	done
	out=$(printf '%s' "$out" | sed '/^$/d')
	[ -z "$out" ] && return 0
	printf '%s\n' "$out"
	return 1
}

# check_no_leaks DESCRIPTION: removes every container (rm -f --snapshots) and checks
# that nothing is left.
check_no_leaks() {
	local n r out rc=0
	for r in "$T"/root*; do
		for n in $(ls "$r/containers" 2>/dev/null); do
			out=$("$CORRAL" --root "$r" rm -f --snapshots "$n" 2>&1) || { rc=1; diag "rm -f $n: $out"; }
		done
		[ -z "$(ls "$r/containers" 2>/dev/null)" ] || rc=1
	done
	# Killed processes take a moment to go.
	for n in $(seq 50); do
		out=$(leaks) && break
		sleep 0.1
	done
	[ -z "$out" ] || rc=1
	ok $rc "$1"
	[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/# left: /'
}

# The EXIT trap: remove what a failed or aborted test left, loudly.
_launcher_cleanup() {
	local n r p d out
	for r in "$T"/root*; do
		for n in $(ls "$r/containers" 2>/dev/null); do
			"$CORRAL" --root "$r" rm -f --snapshots "$n" >/dev/null 2>&1
		done
	done
	out=$(leaks) && return 0
	echo "# cleanup: removing leftovers of this run:" >&3
	printf '%s\n' "$out" | sed 's/^/#   /' >&3
	# Last resort: kill what is in our containers' cgroups and what
	# mentions $T, by pid; unmount; remove the cgroups.
	for d in $(find /sys/fs/cgroup -maxdepth 8 -type d -path "*/corral/$PFX-*" 2>/dev/null); do
		[ -f "$d/freezer.state" ] && echo THAWED >"$d/freezer.state" 2>/dev/null
		for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	done
	for p in $(printf '%s\n' "$out" | awk '$1 == "process:" { print $2 }'); do
		kill -9 "$p" 2>/dev/null
	done
	sleep 0.5
	for d in $(awk -v t="$T" 'index($2, t) == 1 { print $2 }' /proc/self/mounts | sort -r); do
		umount -l "$d" 2>/dev/null
	done
	for d in $(find /sys/fs/cgroup -maxdepth 8 -depth -type d -path "*/corral/$PFX-*" 2>/dev/null); do
		rmdir "$d" 2>/dev/null
	done
	for d in $(ip -o link show 2>/dev/null | grep -E "alias corral:$PFX-" | awk -F': ' '{ print $2 }'); do
		ip link del "${d%@*}" 2>/dev/null
	done
	# A test that got this far with leftovers has failed.
	_tap_failed=$((_tap_failed + 1))
}
on_cleanup _launcher_cleanup
