#
# lib.sh: what every script of the ivserver test suite shares.  A
# script in regress/ starts with
#
#	REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"
#
# (guest/guest.sh names the directory above its own).  lib.sh takes
# IVSERVER and LAYOUT from the environment relative to the caller's
# directory, changes to regress/, makes the script's own temporary
# directory T and removes it at exit, after the commands given to
# at_exit and after stopping a server still running.
#
# Every check prints one line, "ok - what" or "not ok - what"; what
# cannot be checked on this machine prints "skipped - why" and counts
# as neither.  finish, the end of every script, sweeps the server logs
# and prints "N passed, N failed", after "# N skipped" if any were.  A
# server's standard error goes to a file whose name ends in .log under
# T; nothing else there is so named.
#
# Environment: IVSERVER (regress/../ivserver), QEMU
# (qemu-system-x86_64), WAIT (60: the seconds wait_for waits at the
# most; a wait that runs out is a failure, never a result), NOSKIP
# (if set, a skip fails).

set -u

_abspath() {
	case $1 in
	/*)	echo "$1" ;;
	*)	echo "$(pwd)/$1" ;;
	esac
}

IVSERVER=$(_abspath "${IVSERVER:-$REGRESS/../ivserver}")
[ -n "${LAYOUT:-}" ] && LAYOUT=$(_abspath "$LAYOUT")
QEMU=${QEMU:-qemu-system-x86_64}
WAIT=${WAIT:-60}
export IVSERVER QEMU WAIT
cd "$REGRESS" || exit 1

T=$(mktemp -d "${TMPDIR:-/tmp}/ivserver-$(basename "$0" .sh).XXXXXX") ||
    exit 1
PASS=0
FAIL=0
SKIP=0
SERVERPID=
SERVERCHILD=
_atexit=

# at_exit command: run command at exit, the last registered first.
at_exit() {
	_atexit="$*; $_atexit"
}

# shellcheck disable=SC2317
_cleanup() {
	eval "$_atexit"
	[ -z "${QEMUPID:-}" ] || kill -9 "$QEMUPID" 2>/dev/null
	stop_server >/dev/null 2>&1
	rm -rf "$T"
}
trap _cleanup EXIT
trap 'exit 1' HUP INT PIPE TERM

# --- checks ------------------------------------------------------------

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
notok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
# skip why: what this machine cannot run; never counted as a pass.
# With NOSKIP set (CI, which installs everything), it is a failure.
skip() {
	if [ -n "${NOSKIP:-}" ]; then
		notok "$* (NOSKIP is set: nothing may be skipped)"
		return
	fi
	SKIP=$((SKIP + 1))
	echo "skipped - $*"
}

# check what command [arg ...]: ok if command succeeds; its status.
check() {
	_ck_what=$1
	shift
	if "$@"; then
		ok "$_ck_what"
		return 0
	fi
	notok "$_ck_what"
	return 1
}

# show label file: file on standard error, each line a comment.
show() {
	sed "s|^|# $1: |" "$2" >&2
}

# tally [-p prefix] name command [arg ...]: run a test program or
# script that prints ok/not ok lines, pass its lines on as they come
# ("prefix: " after "ok - ") and count them.  A program that exits
# non-zero with no failed check, or checks and skips nothing, fails as
# name.
# Its own "N passed, N failed" becomes a comment, its skips are
# counted, and its standard error is shown when anything failed.
tally() {
	_ty_pre=
	if [ "$1" = -p ]; then
		_ty_pre="$2: "
		shift 2
	fi
	_ty_name=$1
	shift
	{ "$@" 2>"$T/tally.err"; echo $? >"$T/tally.rc"; } |
	    sed -u -e "s|^\(not \)\{0,1\}ok - |&$_ty_pre|" \
	    -e "s|^[0-9]* passed, [0-9]* failed$|# $_ty_name: &|" \
	    -e "s|^# \([0-9]* skipped\)$|# $_ty_name: \1|" |
	    tee "$T/tally.out"
	_ty_rc=$(cat "$T/tally.rc")
	_ty_p=$(grep -c '^ok ' "$T/tally.out")
	_ty_f=$(grep -c '^not ok ' "$T/tally.out")
	_ty_s=$(grep -c '^skipped - ' "$T/tally.out")
	PASS=$((PASS + _ty_p))
	FAIL=$((FAIL + _ty_f))
	SKIP=$((SKIP + _ty_s))
	if [ "$_ty_p" -eq 0 ] && [ "$_ty_f" -eq 0 ] && [ "$_ty_s" -ne 0 ] &&
	    [ "$_ty_rc" -eq 0 ]; then
		return 0
	elif [ "$_ty_p" -eq 0 ] && [ "$_ty_f" -eq 0 ]; then
		notok "$_ty_name checked nothing (exit $_ty_rc)"
	elif [ "$_ty_rc" -ne 0 ] && [ "$_ty_f" -eq 0 ]; then
		notok "$_ty_name exited $_ty_rc with no failed check"
	elif [ "$_ty_f" -eq 0 ]; then
		return 0
	fi
	show "$_ty_name" "$T/tally.err"
	return 1
}

# no_reports file ...: no sanitizer report, no sandbox kill (the
# parent logs a serving process killed by SIGSYS) and no serving
# process that ended and was replaced, but for the SIGKILLs tests send,
# in the files.
no_reports() {
	_nr_end='server process (exited [^;]*|ended [^;]*|killed by signal'
	_nr_end="$_nr_end ([0-8]|[1-9][0-9])); starting"
	! grep -E "Sanitizer|runtime error:|killed by signal 31|$_nr_end" \
	    "$@" | sed 's/^/# /' | grep .
}

# finish: stop a server left running, sweep every server log of the
# script, print the count and exit 1 if any check failed.
finish() {
	stop_server
	_fi_logs=$(find "$T" -name '*.log' | sort)
	# shellcheck disable=SC2086
	[ -z "$_fi_logs" ] || check "no sanitizer report, sandbox kill \
(SIGSYS) or other end of a serving process in the server logs" \
	    no_reports $_fi_logs
	[ "$SKIP" -eq 0 ] || echo "# $SKIP skipped"
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ] && exit 0
	exit 1
}

# --- waiting -----------------------------------------------------------

# wait_for command [arg ...]: until command succeeds, WAIT seconds at
# the most; then it fails, saying what it waited for.
wait_for() {
	_wf_n=$((WAIT * 20))
	while ! "$@"; do
		if [ "$_wf_n" -le 0 ]; then
			echo "# waited $WAIT s in vain for: $*" >&2
			return 1
		fi
		_wf_n=$((_wf_n - 1))
		sleep 0.05
	done
}

# have command: whether command is installed.
have() { command -v "$1" >/dev/null 2>&1; }

# Whether PID runs: a child that exited stays a zombie until waited for.
alive() {
	_al_s=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) &&
	    [ -n "$_al_s" ] && [ "$_al_s" != Z ]
}

gone() { ! alive "$1"; }

# The number of open fds of PID, and whether it is N.
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
nfds_is() { [ "$(nfds "$1")" -eq "$2" ]; }

# conns path: the connections on the listening socket path, taken by
# the server or still waiting in its queue.
conns() {
	awk -v p="$1" '$8 == p && $4 != "00010000" { n++ }
	    END { print n + 0 }' /proc/net/unix
}
conns_are() { [ "$(conns "$1")" -eq "$2" ]; }

# idle_fds dir pid: the fds of the serving process pid once the server
# holds no connection on dir/c, a baseline.
idle_fds() {
	wait_for conns_are "$1/c" 0
	nfds "$2"
}

# count pattern file: the lines of file that match the pattern.
count() {
	_cn=$(grep -c -- "$1" "$2" 2>/dev/null)
	echo "${_cn:-0}"
}

# logged pattern file: wait until a line of file, a log, matches.
logged() { wait_for grep -qs -- "$1" "$2"; }

# await_pid pid: wait for a child of the script to exit; its status.
# One still there after WAIT seconds is killed with its children.
await_pid() {
	if ! wait_for gone "$1"; then
		echo "# pid $1 does not exit: killing it" >&2
		pkill -9 -P "$1" 2>/dev/null
		kill -9 "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
}

# stop_pid pid: SIGTERM to a child of the script; its exit status.
stop_pid() {
	kill "$1" 2>/dev/null
	await_pid "$1"
}

# --- the server --------------------------------------------------------

# start_server_cmd log socket command [arg ...]: a server in the
# foreground, its standard error added to log.  Returns once socket is
# there and the serving process forked, and fails, showing the log,
# when the server is gone instead.  SERVERPID is its pid, SERVERCHILD
# that of its serving process.
start_server_cmd() {
	_ss_log=$1
	_ss_sock=$2
	shift 2
	"$@" 2>>"$_ss_log" &
	SERVERPID=$!
	if wait_for _server_up "$_ss_sock" && alive "$SERVERPID"; then
		SERVERCHILD=$(server_child "$SERVERPID")
		return 0
	fi
	echo "# the server on $_ss_sock did not start" >&2
	show server "$_ss_log"
	return 1
}
_server_up() {
	gone "$SERVERPID" ||
	    { [ -S "$1" ] && server_child "$SERVERPID" >/dev/null; }
}

# start_server dir [option ...]: ivserver -d on dir/q and dir/c, its
# log dir/server.log.
start_server() {
	_sv_dir=$1
	shift
	mkdir -p "$_sv_dir" || return 1
	start_server_cmd "$_sv_dir/server.log" "$_sv_dir/c" "$IVSERVER" -d \
	    -q "$_sv_dir/q" -s "$_sv_dir/c" "$@"
}

# stop_server: SIGTERM to the server; its exit status.
stop_server() {
	[ -n "$SERVERPID" ] || return 0
	_sp_pid=$SERVERPID
	SERVERPID=
	stop_pid "$_sp_pid"
}

# await_server: wait for the server to exit by itself; its status.
await_server() {
	_aw_pid=$SERVERPID
	SERVERPID=
	await_pid "$_aw_pid"
}

# kill_server: SIGKILL to the server and its serving process, as a
# crash would, and wait until both are gone.
kill_server() {
	kill -9 "$SERVERPID" "$SERVERCHILD" 2>/dev/null
	wait "$SERVERPID" 2>/dev/null
	SERVERPID=
	wait_for gone "$SERVERCHILD"
}

# server_child pid: the serving process, the first child of the
# parent pid that is not QEMU.
server_child() {
	for _sc_p in $(pgrep -P "$1"); do
		case $(cat "/proc/$_sc_p/comm" 2>/dev/null) in
		qemu*|'') ;;
		*) echo "$_sc_p"; return 0 ;;
		esac
	done
	return 1
}

# serves dir [region]: a host client is served region (ril) on dir/c.
serves() {
	"$REGRESS/ivclient" -t "$WAIT" -s "$1/c" "${2:-ril}" >/dev/null
}

# start_qemu socket vectors: a stopped QEMU without a guest, in the
# background, with an ivshmem-doorbell on socket; QEMUPID is its pid.
start_qemu() {
	"$QEMU" -M pc -accel tcg -S -nodefaults -display none -m 64 \
	    -chardev "socket,path=$(echo "$1" | sed 's/,/,,/g'),id=iv" \
	    -device "ivshmem-doorbell,chardev=iv,vectors=$2" \
	    </dev/null >>"$T/qemu.out" 2>&1 &
	QEMUPID=$!
}

# stop_qemu: SIGKILL to that QEMU, as a crash would.
stop_qemu() {
	kill -9 "$QEMUPID" 2>/dev/null
	wait "$QEMUPID" 2>/dev/null
	QEMUPID=
}

# rss_kb pid: the resident memory of the parent and the serving
# process together.
rss_kb() {
	cat "/proc/$1/status" "/proc/$(server_child "$1")/status" |
	    awk '/^VmRSS:/ { n += $2 } END { print n }'
}
