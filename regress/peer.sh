#!/bin/sh
#
# peer.sh: ivserver's peer mode with real QEMUs and C peers on one
# socket (peertest), then the command line of QEMU's contrib
# ivshmem-server, which ivserver takes when called by that name.

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"

SHM=ivserver-test-$$
at_exit rm -f "/dev/shm/$SHM" "/dev/shm/$SHM-d"

# is what got want: a check that shows what came.
is() {
	check "$1: \"$3\" (got \"$2\")" test "$2" = "$3"
}

# stopped what log: SIGTERM to the server, which exits 0, or its log
# is shown.
stopped() {
	stop_server
	_rc=$?
	check "$1 (exit $_rc)" test $_rc -eq 0 || show server "$2"
}

# left n log: the server in peer mode logged n leaves, or more.
left() {
	[ "$(count 'peer [0-9]* (pid [0-9]*) left' "$2")" -ge "$1" ]
}

check "$QEMU is installed" have "$QEMU"
check "ivserver has a peer mode (-P 2 -n)" sh -c \
    "'$IVSERVER' -P 2 -n >/dev/null 2>&1"
[ "$FAIL" -eq 0 ] || finish

# --- peer mode: QEMUs and C peers ---------------------------------------

D=$T/peer
mkdir "$D" || exit 1
check "peer mode: ivserver -d -P 2 -l 4M -q listens" start_server_cmd \
    "$D/server.log" "$D/sock" "$IVSERVER" -d -P 2 -l 4M -q "$D/sock"
tally -p "peer mode" "peer mode: peertest" env TMPDIR="$D" \
    timeout -s KILL 330 ./peertest -S "$D/sock" -n 2 -l 4194304 \
    -p "$SERVERPID" -Q "$QEMU" -C ./peer
check "peer mode: ivserver still runs" alive "$SERVERPID"
stopped "peer mode: SIGTERM, ivserver exits 0" "$D/server.log"
check "peer mode: and removes its socket" test ! -e "$D/sock"

# --- the contrib ivshmem-server command line ------------------------------

ln -s "$IVSERVER" "$T/ivshmem-server" || exit 1
IVSH=$T/ivshmem-server

check "ivshmem-server -F -S -M -l 4M -n 2 listens" start_server_cmd \
    "$T/s2.log" "$T/s2" "$IVSH" -F -S "$T/s2" -M "$SHM" -l 4M -n 2
check "ivshmem-server: -M makes /dev/shm/$SHM, 4M" \
    test "$(stat -c %s "/dev/shm/$SHM" 2>/dev/null)" = 4194304

# QEMU keeps the shm it maps open: that shows it has attached.
mapped() {
	for _f in "/proc/$QEMUPID/fd/"*; do
		[ "$(readlink "$_f" 2>/dev/null)" = "/dev/shm/$SHM" ] &&
		    return 0
	done
	return 1
}
# A second server on the same socket finds it live without being a peer
# of it: no ID is used and no one is told; the QEMU then gets ID 0.
timeout "$WAIT" "$IVSH" -F -S "$T/s2" -M "$SHM-2" -l 4M -n 2 \
    2>"$T/probe.log"
check "ivshmem-server: a second server on the live socket is refused" \
    grep -q 'another server is listening' "$T/probe.log"
check "ivshmem-server: and was not taken for a peer" sh -c \
    "! grep -q 'attached as peer' '$T/s2.log'"
start_qemu "$T/s2" 2
check "ivshmem-server: a QEMU attaches and maps the shm" wait_for mapped ||
    show qemu "$T/qemu.out"
is "ivshmem-server: a C peer sees the QEMU" \
    "$(./peer -s "$T/s2" -n 2 -l 4194304 2>"$T/p.err")" "id 1 peers 1"

out=$(timeout -s KILL 300 ./peer -s "$T/s2" -n 2 -c 1000 2>"$T/p.err")
is "ivshmem-server: C peers come and go by the QEMU" "$out" \
    "cycles 1000 first 2 last 1001 wraps 0 peers 1"
[ -s "$T/p.err" ] && show peer "$T/p.err"
# Peers 1 to 1001 have left once the server says so.
wait_for left 1001 "$T/s2.log"
is "ivshmem-server: the QEMU is still a peer" \
    "$(./peer -s "$T/s2" -n 2 2>"$T/p.err")" "id 1002 peers 1"
check "ivshmem-server: the QEMU still runs" mapped

stopped "ivshmem-server: SIGTERM, exits 0" "$T/s2.log"
check "ivshmem-server: SIGTERM removes the socket" test ! -e "$T/s2"
check "ivshmem-server: SIGTERM removes the shm" test ! -e "/dev/shm/$SHM"
stop_qemu

# QEMU's own tools hold 64 vectors at the most.
"$IVSH" -F -S "$T/s65" -n 65 2>"$T/n65.log"
check "ivshmem-server -n 65: refused, as QEMU's tools take 64 at most" \
    sh -c "[ $? -eq 1 ] && grep -q -- '-n 65: too large' '$T/n65.log' &&
    [ ! -e '$T/s65' ]"

# -m, a size that is no power of two, the default vectors, and -p in
# the foreground, where it makes no pid file.
mkdir "$T/m" || exit 1
check "ivshmem-server -F -S -m -l 3M -p listens" start_server_cmd \
    "$T/s3.log" "$T/s3" "$IVSH" -F -S "$T/s3" -m "$T/m" -l 3M \
    -p "$T/fg.pid"
is "ivshmem-server: 1 vector by default, -l 3M rounded up to 4M" \
    "$(./peer -s "$T/s3" -n 1 -l 4194304 2>"$T/p.err")" "id 0 peers 0"
[ -s "$T/p.err" ] && show peer "$T/p.err"
check "ivshmem-server: -m leaves no file in the directory" \
    test -z "$(ls -A "$T/m")"
check "ivshmem-server: -F makes no pid file" test ! -e "$T/fg.pid"

# IDs wrap after 65535 to the lowest not in use.  A C peer holds one,
# not QEMU: when a peer leaves, QEMU frees its eventfd array but keeps
# the pointer (close_peer_eventfds), so a later join under the same ID
# writes to freed memory and its leave frees it again.  QEMU 7.2 dies
# of it ("double free or corruption"); current master has the same code.
#
# The watcher stays until its standard input ends, and traces every
# join and leave it sees (-v) on its standard error.
# watcher_saw_all n: the one place that decides when the watcher has
# seen all n leaves, so that closing its input loses none.
watcher_saw_all() {
	[ "$(count ': peer [0-9]* leaves$' "$T/w.err")" -ge "$1" ]
}
# Peer 0 has left once the server says so: the watcher sees no other.
wait_for left 1 "$T/s3.log"
mkfifo "$T/fifo" || exit 1
./peer -v -s "$T/s3" -n 1 -w 900000 <"$T/fifo" >"$T/w.out" 2>"$T/w.err" &
WATCHER=$!
at_exit "kill -9 $WATCHER 2>/dev/null"
# Read and write: this open never waits for the other end.
exec 3<>"$T/fifo"
wait_for grep -qs . "$T/w.out"
is "ivshmem-server: a C peer stays as ID 1" "$(head -n 1 "$T/w.out")" \
    "id 1 peers 0"
out=$(timeout -s KILL 600 ./peer -s "$T/s3" -n 1 -c 65536 \
    2>"$T/wrap.err" 3>&-)
is "ivshmem-server: IDs wrap after 65535 to 0, skipping the one in use" \
    "$out" "cycles 65536 first 2 last 2 wraps 1 peers 1"
[ -s "$T/wrap.err" ] && show peer "$T/wrap.err"
wait_for watcher_saw_all 65536
exec 3>&-
await_pid "$WATCHER"
rc=$?
is "ivshmem-server: the staying peer saw every join and leave (exit $rc)" \
    "$(sed -n 2p "$T/w.out")" "joins 65536 leaves 65536 now none"
grep -v '^peer [0-9]*: ' "$T/w.err" >"$T/w.msg"
[ -s "$T/w.msg" ] && show peer "$T/w.msg"

stopped "ivshmem-server -m: SIGTERM, exits 0" "$T/s3.log"

# Without -F it is a daemon with a pid file.
timeout -s KILL "$WAIT" "$IVSH" -S "$T/s4" -M "$SHM-d" -l 1M \
    -p "$T/d.pid" 2>"$T/s4.log"
rc=$?
check "ivshmem-server without -F returns 0 (exit $rc)" test $rc -eq 0
wait_for test -s "$T/d.pid"
DAEMON=$(cat "$T/d.pid" 2>/dev/null)
at_exit "[ -z '$DAEMON' ] || kill -9 '$DAEMON' 2>/dev/null"
check "ivshmem-server: the pid file names the running daemon ($DAEMON)" \
    eval '[ -n "$DAEMON" ] && alive "$DAEMON"'
is "ivshmem-server: the daemon serves" \
    "$(./peer -s "$T/s4" -n 1 -l 1048576 2>"$T/p.err")" "id 0 peers 0"
if [ -n "$DAEMON" ]; then
	kill "$DAEMON"
	check "ivshmem-server: SIGTERM ends the daemon" wait_for gone "$DAEMON"
fi
check "ivshmem-server: and removes the pid file" test ! -e "$T/d.pid"
check "ivshmem-server: and the socket and the shm" \
    test ! -e "$T/s4" -a ! -e "/dev/shm/$SHM-d"
[ -s "$T/s4.log" ] && show ivshmem-server "$T/s4.log"

"$IVSH" -h >"$T/h.out" 2>&1
rc=$?
check "ivshmem-server -h prints a usage and exits 0 (exit $rc)" sh -c \
    "[ $rc -eq 0 ] && grep -qi usage '$T/h.out'"

finish
