#!/bin/sh
#
# peer.sh: check ivserver's peer mode with real QEMUs and C peers on one
# socket (peertest), then the command line of QEMU's contrib
# ivshmem-server, which ivserver takes when called by that name.
# Prints one "ok - ..." or "not ok - ..." line per check on stdout,
# details on stderr, and exits 1 if any check failed.
#
# Environment: IVSERVER (../ivserver), QEMU (qemu-system-x86_64).

cd "$(dirname "$0")" || exit 1
IVSERVER=${IVSERVER:-../ivserver}
QEMU=${QEMU:-qemu-system-x86_64}
# The link must find the binary from any directory.
IVABS=$(cd "$(dirname "$IVSERVER")" && pwd -P)/$(basename "$IVSERVER")

dir=$(mktemp -d "${TMPDIR:-/tmp}/peer.XXXXXXXX") || exit 1
SHM=ivserver-test-$$
server=
qemu=
daemon=
watcher=
failed=0

# Whether PID runs: a child that exited stays a zombie until waited for.
alive() {
	[ -r "/proc/$1/stat" ] &&
	    [ "$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# wait_for command: up to 5 s.
wait_for() {
	_i=0
	while ! "$@"; do
		_i=$((_i + 1))
		[ $_i -gt 100 ] && return 1
		sleep 0.05
	done
}

# stop PID: SIGTERM, SIGKILL for it and its children after 5 s; the
# exit status.
stop() {
	kill "$1" 2>/dev/null
	wait_for eval "! alive $1"
	if alive "$1"; then
		echo "# pid $1 ignores SIGTERM, killing it" >&2
		pkill -9 -P "$1" 2>/dev/null
		kill -9 "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
}

# QEMU runs under timeout(1), which a SIGKILL would not pass on.
kill_qemu() {
	for _p in $(pgrep -P "$qemu"); do
		kill -9 "$_p" 2>/dev/null
	done
	kill -9 "$qemu" 2>/dev/null
	wait "$qemu" 2>/dev/null
	qemu=
}

# shellcheck disable=SC2317
cleanup() {
	[ -n "$qemu" ] && kill_qemu
	[ -n "$watcher" ] && kill -9 "$watcher" 2>/dev/null
	[ -n "$server" ] && stop "$server"
	if [ -n "$daemon" ] && alive "$daemon"; then
		pkill -9 -P "$daemon" 2>/dev/null
		kill -9 "$daemon" 2>/dev/null
	fi
	rm -f "/dev/shm/$SHM" "/dev/shm/$SHM-d"
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

check() {
	if [ "$1" -eq 0 ]; then
		echo "ok - $2"
	else
		echo "not ok - $2"
		failed=1
	fi
}

# is WHAT GOT WANT: a check that shows what came.
is() {
	[ "$2" = "$3" ]
	check $? "$1: \"$3\" (got \"$2\")"
}

showlog() {
	sed "s|^|# $1: |" "$2" >&2
}

command -v "$QEMU" >/dev/null 2>&1
check $? "$QEMU is installed"
"$IVSERVER" -P 2 -n >/dev/null 2>&1
check $? "ivserver has a peer mode (-P 2 -n)"
[ $failed -eq 0 ] || exit 1

# --- peer mode: QEMUs and C peers ---------------------------------------

"$IVSERVER" -d -P 2 -l 4M -q "$dir/sock" 2>"$dir/server.log" &
server=$!
wait_for test -S "$dir/sock"
check $? "peer mode: ivserver -d -P 2 -l 4M -q listens"
TMPDIR=$dir timeout -s KILL 330 ./peertest -S "$dir/sock" -n 2 \
    -l 4194304 -p "$server" -Q "$QEMU" -C ./peer \
    >"$dir/peertest.out" 2>"$dir/peertest.err"
rc=$?
sed -n 's/^\(not \)\{0,1\}ok - /&peer mode: /p' "$dir/peertest.out"
if grep -q '^not ok - ' "$dir/peertest.out"; then
	failed=1
elif [ "$rc" -ne 0 ]; then
	check 1 "peer mode: peertest exits 0 (it exited $rc)"
fi
alive "$server"
check $? "peer mode: ivserver still runs"
[ "$rc" -ne 0 ] && showlog peertest "$dir/peertest.err"
stop "$server"
rc=$?
server=
check $rc "peer mode: SIGTERM, ivserver exits 0 (exit $rc)"
[ "$rc" -ne 0 ] && showlog ivserver "$dir/server.log"
test ! -e "$dir/sock"
check $? "peer mode: and removes its socket"

# --- the contrib ivshmem-server command line ------------------------------

ln -s "$IVABS" "$dir/ivshmem-server" || exit 1
IVSH=$dir/ivshmem-server

"$IVSH" -F -S "$dir/s2" -M "$SHM" -l 4M -n 2 2>"$dir/s2.log" &
server=$!
wait_for test -S "$dir/s2"
check $? "ivshmem-server -F -S -M -l 4M -n 2 listens"
[ "$(stat -c %s "/dev/shm/$SHM" 2>/dev/null)" = 4194304 ]
check $? "ivshmem-server: -M makes /dev/shm/$SHM, 4M"

# QEMU keeps the shm it maps open: that shows it has attached.
timeout -s KILL 120 "$QEMU" -M pc -accel tcg -S -nodefaults -display none \
    -m 64 -chardev "socket,path=$(echo "$dir/s2" | sed 's/,/,,/g'),id=iv" \
    -device ivshmem-doorbell,chardev=iv,vectors=2 \
    </dev/null >"$dir/qemu.log" 2>&1 &
qemu=$!
attached() {
	for _p in $(pgrep -P "$qemu"); do
		for _f in "/proc/$_p/fd/"*; do
			[ "$(readlink "$_f" 2>/dev/null)" = "/dev/shm/$SHM" ] &&
			    return 0
		done
	done
	return 1
}
wait_for attached
rc=$?
check $rc "ivshmem-server: a QEMU attaches and maps the shm"
[ $rc -eq 0 ] || showlog qemu "$dir/qemu.log"
is "ivshmem-server: a C peer sees the QEMU" \
    "$(./peer -s "$dir/s2" -n 2 -l 4194304 2>"$dir/p.err")" "id 1 peers 1"

out=$(timeout -s KILL 60 ./peer -s "$dir/s2" -n 2 -c 1000 2>"$dir/p.err")
is "ivshmem-server: C peers come and go by the QEMU" "$out" \
    "cycles 1000 first 2 last 1001 wraps 0 peers 1"
[ -s "$dir/p.err" ] && showlog peer "$dir/p.err"
is "ivshmem-server: the QEMU is still a peer" \
    "$(./peer -s "$dir/s2" -n 2 2>"$dir/p.err")" "id 1002 peers 1"
attached
check $? "ivshmem-server: the QEMU still runs"

stop "$server"
rc=$?
server=
check $rc "ivshmem-server: SIGTERM, exits 0 (exit $rc)"
[ "$rc" -ne 0 ] && showlog ivshmem-server "$dir/s2.log"
test ! -e "$dir/s2"
check $? "ivshmem-server: SIGTERM removes the socket"
test ! -e "/dev/shm/$SHM"
check $? "ivshmem-server: SIGTERM removes the shm"
kill_qemu

# -m, a size that is no power of two, the default vectors, and -p in
# the foreground, where it makes no pid file.
mkdir "$dir/m" || exit 1
"$IVSH" -F -S "$dir/s3" -m "$dir/m" -l 3M -p "$dir/fg.pid" \
    2>"$dir/s3.log" &
server=$!
wait_for test -S "$dir/s3"
check $? "ivshmem-server -F -S -m -l 3M -p listens"
is "ivshmem-server: 1 vector by default, -l 3M rounded up to 4M" \
    "$(./peer -s "$dir/s3" -n 1 -l 4194304 2>"$dir/p.err")" "id 0 peers 0"
[ -s "$dir/p.err" ] && showlog peer "$dir/p.err"
test -z "$(ls -A "$dir/m")"
check $? "ivshmem-server: -m leaves no file in the directory"
test ! -e "$dir/fg.pid"
check $? "ivshmem-server: -F makes no pid file"

# IDs wrap after 65535 to the lowest not in use.  A C peer holds one,
# not QEMU: when a peer leaves, QEMU frees its eventfd array but keeps
# the pointer (close_peer_eventfds), so a later join under the same ID
# writes to freed memory and its leave frees it again.  QEMU 7.2 dies
# of it ("double free or corruption"); current master has the same code.
mkfifo "$dir/fifo" || exit 1
./peer -s "$dir/s3" -n 1 -w 120000 <"$dir/fifo" >"$dir/w.out" \
    2>"$dir/w.err" &
watcher=$!
# Read and write: this open never waits for the other end.
exec 3<>"$dir/fifo"
wait_for grep -q . "$dir/w.out"
is "ivshmem-server: a C peer stays as ID 1" "$(head -n 1 "$dir/w.out")" \
    "id 1 peers 0"
out=$(timeout -s KILL 120 ./peer -s "$dir/s3" -n 1 -c 65536 \
    2>"$dir/wrap.err" 3>&-)
is "ivshmem-server: IDs wrap after 65535 to 0, skipping the one in use" \
    "$out" "cycles 65536 first 2 last 2 wraps 1 peers 1"
[ -s "$dir/wrap.err" ] && showlog peer "$dir/wrap.err"
exec 3>&-
wait "$watcher"
rc=$?
watcher=
is "ivshmem-server: the staying peer saw every join and leave (exit $rc)" \
    "$(sed -n 2p "$dir/w.out")" "joins 65536 leaves 65536 now none"
[ -s "$dir/w.err" ] && showlog peer "$dir/w.err"

stop "$server"
rc=$?
server=
check $rc "ivshmem-server -m: SIGTERM, exits 0 (exit $rc)"
[ "$rc" -ne 0 ] && showlog ivshmem-server "$dir/s3.log"

# Without -F it is a daemon with a pid file.
timeout -s KILL 10 "$IVSH" -S "$dir/s4" -M "$SHM-d" -l 1M \
    -p "$dir/d.pid" 2>"$dir/s4.log"
rc=$?
check $rc "ivshmem-server without -F returns 0 (exit $rc)"
wait_for test -s "$dir/d.pid"
daemon=$(cat "$dir/d.pid" 2>/dev/null)
[ -n "$daemon" ] && alive "$daemon"
check $? "ivshmem-server: the pid file names the running daemon ($daemon)"
wait_for test -S "$dir/s4"
is "ivshmem-server: the daemon serves" \
    "$(./peer -s "$dir/s4" -n 1 -l 1048576 2>"$dir/p.err")" "id 0 peers 0"
if [ -n "$daemon" ]; then
	kill "$daemon"
	wait_for eval "! alive $daemon"
	check $? "ivshmem-server: SIGTERM ends the daemon"
fi
wait_for test ! -e "$dir/d.pid"
check $? "ivshmem-server: and removes the pid file"
test ! -e "$dir/s4" && test ! -e "/dev/shm/$SHM-d"
check $? "ivshmem-server: and the socket and the shm"
[ -s "$dir/s4.log" ] && showlog ivshmem-server "$dir/s4.log"

"$IVSH" -h >"$dir/h.out" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -qi usage "$dir/h.out"
check $? "ivshmem-server -h prints a usage and exits 0 (exit $rc)"

cat "$dir"/*.log > "$dir/all.log"
! grep -E 'Sanitizer|runtime error:|killed by signal 31' "$dir/all.log"
check $? "no sanitizer report or sandbox kill (SIGSYS) in the server logs"

exit $failed
