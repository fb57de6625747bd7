#!/bin/sh
#
# peer.sh: ivserver's peer mode with real QEMUs and C peers on one
# socket (peertest), then the command line of QEMU's contrib
# ivshmem-server, which ivserver takes when called by that name.

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"

SHM=ivserver-test-$$
at_exit rm -f "/dev/shm/$SHM" "/dev/shm/$SHM-d" "/dev/shm/$SHM-f"

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

# --- peers that never read --------------------------------------------------

# most_fds n: the serving process holds n fds or fewer.
most_fds() { [ "$(nfds "$SERVERCHILD")" -le "$1" ]; }
# said file line: the file has the line.
said() { grep -qx -- "$2" "$1" 2>/dev/null; }
# qemu_evfds: the eventfds the QEMU holds.
qemu_evfds() {
	ls -l "/proc/$QEMUPID/fd" 2>/dev/null | grep -c 'anon_inode:\[eventfd\]'
}
qemu_has_evfds() { [ "$(qemu_evfds)" -ge "$1" ]; }
qemu_evfds_are() { [ "$(qemu_evfds)" -eq "$1" ]; }
# qemu_cpu: the QEMU's CPU time so far, in clock ticks.
qemu_cpu() { awk '{ print $14 + $15 }' "/proc/$QEMUPID/stat" 2>/dev/null; }
# silent_peer dir name vectors fd: a peer, stopped once it has its
# handshake, that stays until its input, the fifo dir/name, which the
# shell holds open as fd, ends.  Sets SP to its pid.
silent_peer() {
	mkfifo "$1/$2" || return 1
	./peer -s "$1/sock" -n "$3" -w 900000 <"$1/$2" >"$1/$2.out" \
	    2>"$1/$2.err" 4>&- 5>&- 6>&- &
	SP=$!
	at_exit "kill -9 $SP 2>/dev/null"
	# Read and write: this open never waits for the other end.
	eval "exec $4<>\"\$1/\$2\""
	wait_for grep -qs '^id ' "$1/$2.out" || return 1
	kill -STOP "$SP"
}

# A peer that stops reading holds nothing open for the peers that come
# and go beside it: 2,500 join and leave under a limit of 1024 fds,
# where each would have held 8.  Once it reads again it sees a history
# that agrees with who is there.
D=$T/silent
mkdir "$D" || exit 1
check "silent: ivserver -d -P 8 under ulimit -n 1024 listens" \
    start_server_cmd "$D/server.log" "$D/sock" prlimit --nofile=1024:1024 \
    "$IVSERVER" -d -P 8 -q "$D/sock"
silent_peer "$D" w 8 4
check "silent: a peer joins and stops reading" test $? -eq 0
S1=$SP
base=$(nfds "$SERVERCHILD")
(while :; do nfds "$SERVERCHILD"; done) >"$D/fds" 2>/dev/null 4>&- &
SAMPLER=$!
out=$(timeout -s KILL 300 ./peer -s "$D/sock" -n 8 -c 2500 2>"$D/c.err" \
    4>&-)
kill "$SAMPLER"
wait "$SAMPLER" 2>/dev/null
is "silent: 2,500 peers of 8 vectors join and leave beside it" "$out" \
    "cycles 2500 first 1 last 2500 wraps 0 peers 1"
[ -s "$D/c.err" ] && show peer "$D/c.err"
most=$(sort -n "$D/fds" | tail -n 1)
# News of peers gone may hold a quarter of the limit, and what joins
# add in the 20 ms a peer may lag before its news of them is taken back.
check "silent: the server held $most fds at most, within a quarter of \
its limit and a sixteenth for news of peers gone ($base at the start)" \
    test "${most:-99999}" -le $((base + 1024 / 4 + 1024 / 16))
# What it holds then: its own 8 and the 8 of the one join it has begun
# to take, which it is to get whole, and then that peer's leave.
check "silent: and is back to $base + 8 fds once the silent peer is \
behind" wait_for most_fds $((base + 8))
kill -CONT "$S1"
# A marker that joins last: the silent peer has all news before it once
# it sees the marker.
mkfifo "$D/m" || exit 1
./peer -s "$D/sock" -n 8 -w 900000 <"$D/m" >"$D/m.out" 2>"$D/m.err" 4>&- &
MARKER=$!
at_exit "kill -9 $MARKER 2>/dev/null"
exec 5<>"$D/m"
wait_for grep -qs '^id ' "$D/m.out"
mid=$(sed -n 's/^id \([0-9]*\) .*/\1/p' "$D/m.out")
echo "wait peer $mid" >&4
check "silent: reading again, it catches up to the marker, peer $mid" \
    wait_for said "$D/w.out" "peer $mid"
exec 4>&-
await_pid "$S1"
rc=$?
hist=$(sed -n 's/^joins \([0-9]*\) leaves \([0-9]*\) now \(.*\)/\1 \2 \3/p' \
    "$D/w.out")
set -- $hist
check "silent: its history agrees with the server: every join but the \
marker's left, the marker present (joins $1 leaves $2 now $3, exit $rc)" \
    test "$rc" -eq 0 -a "${1:-0}" -eq $((${2:--1} + 1)) -a "${3:-}" = "$mid"
check "silent: it was not told of the peers that came and went while it \
was behind ($1 joins of 2,501)" test "${1:-99999}" -lt 2501
[ -s "$D/w.err" ] && show peer "$D/w.err"
exec 5>&-
await_pid "$MARKER"
check "silent: no peer was disconnected" sh -c \
    "! grep -q 'disconnecting\|send:' '$D/server.log'"
stopped "silent: SIGTERM, exits 0" "$D/server.log"

# Peers that never read, a low limit of fds, and a QEMU attaching: it
# completes its handshake or exits on ID -1, nobody established is
# disconnected, nothing spins.  Under ulimit -n 64, with 8 vectors, the
# fds in flight to two peers that never read, 34 of them, leave no room
# for a third one's handshake of 25.
# mute dir name fd: a peer that reads nothing until its input, the fifo
# dir/name, which the shell holds open as fd, ends.  Sets SP to its pid.
mute() {
	mkfifo "$1/$2" || return 1
	./peer -z -s "$1/sock" <"$1/$2" >"$1/$2.out" 2>"$1/$2.err" \
	    4>&- 5>&- 6>&- &
	SP=$!
	at_exit "kill -9 $SP 2>/dev/null"
	eval "exec $3<>\"\$1/\$2\""
	wait_for grep -qs '^connected' "$1/$2.out"
}
# joined n log: the server has attached n peers.
joined() { [ "$(count 'attached as peer' "$2")" -ge "$1" ]; }
D=$T/low
mkdir "$D" || exit 1
check "low: ivserver -d -P 8 -l 4M under ulimit -n 64 listens" \
    start_server_cmd "$D/server.log" "$D/sock" prlimit --nofile=64:64 \
    "$IVSERVER" -d -P 8 -l 4M -q "$D/sock"
mute "$D" a 4 && wait_for joined 1 "$D/server.log"
check "low: a peer joins and never reads" test $? -eq 0
A=$SP
mute "$D" b 6 && wait_for joined 2 "$D/server.log"
check "low: a second one joins and never reads" test $? -eq 0
B=$SP
: > "$T/qemu.out"
start_qemu "$D/sock" 8
check "low: a third peer, a QEMU, exits on ID -1" wait_for gone "$QEMUPID"
check "low: QEMU said \"invalid ID\"" grep -q 'invalid ID' "$T/qemu.out" ||
    show qemu "$T/qemu.out"
stop_qemu		# should it still run, the next is not to orphan it
check "low: the server said why" grep -q 'refused: .*descriptors' \
    "$D/server.log"
check "low: the peers that never read are still in" sh -c \
    "! grep -q ') left$' '$D/server.log'"
# One of them goes: now a QEMU fits, and gets all of it.
exec 6>&-
await_pid "$B"
check "low: the second peer that never read leaves" \
    logged ') left$' "$D/server.log"
start_qemu "$D/sock" 8
check "low: a QEMU then attaches in full: its 8 eventfds and the other \
peer's" wait_for qemu_has_evfds 16
e0=$(qemu_evfds)
c0=$(qemu_cpu)
mkfifo "$D/c" || exit 1
./peer -s "$D/sock" -n 8 -w 900000 <"$D/c" >"$D/c.out" 2>"$D/c.err" 4>&- &
CP=$!
at_exit "kill -9 $CP 2>/dev/null"
exec 6<>"$D/c"
wait_for grep -qs '^id ' "$D/c.out"
is "low: a C peer sees the QEMU and the peer that never reads" \
    "$(head -n 1 "$D/c.out")" "id 3 peers 2"
check "low: the QEMU gets the C peer's 8 eventfds ($e0 before)" \
    wait_for qemu_has_evfds $((e0 + 8))
exec 6>&-
await_pid "$CP"
check "low: and closes them when it leaves" wait_for qemu_evfds_are "$e0"
[ -s "$D/c.err" ] && show peer "$D/c.err"
c1=$(qemu_cpu)
check "low: the QEMU does not spin (CPU ticks $c0 -> $c1)" \
    test $((${c1:-9999} - ${c0:-0})) -lt 100
check "low: the QEMU still runs" alive "$QEMUPID"
stop_qemu
# Peer 0, which never read, is still in once the others have gone.
wait_for left 3 "$D/server.log"
check "low: the first peer that never read was never disconnected" sh -c \
    "! grep -q 'peer 0 (pid [0-9]*) left' '$D/server.log'"
exec 4>&-
await_pid "$A"
check "low: no peer was disconnected" sh -c \
    "! grep -q 'disconnecting\|send:' '$D/server.log'"
stopped "low: SIGTERM, exits 0" "$D/server.log"

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
# Peers 1 to 1001 have left once the server holds the QEMU's connection
# only (its log of them is rate-limited).
wait_for conns_are "$T/s2" 1
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

# A limit of fds that cannot hold two peers, or a -c it cannot hold, is
# an error at start-up, not a refusal later.
prlimit --nofile=40:40 "$IVSH" -F -S "$T/s40" -n 8 2>"$T/n40.log"
check "ivshmem-server -n 8 under ulimit -n 40: refused at start-up" \
    sh -c "[ $? -eq 1 ] && grep -q -- '-n 8: two peers and the server need \
50 descriptors, more than the limit of 40' '$T/n40.log' && [ ! -e '$T/s40' ]"
prlimit --nofile=64:64 "$IVSERVER" -d -P 8 -c 10 -q "$T/c10" 2>"$T/c10.log"
check "ivserver -P 8 -c 10 under ulimit -n 64: refused at start-up" \
    sh -c "[ $? -eq 1 ] && grep -q -- '-c 10: 10 peers of 8 vectors need \
122 descriptors' '$T/c10.log' && [ ! -e '$T/c10' ]"

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

# A pid file the daemon cannot write, on a full file system: the
# command that started it says so and exits 1, and nothing is left.
# It takes a private tmpfs, which needs the superuser.
if [ "$(id -u)" -eq 0 ] && have unshare; then
	mkdir "$T/full" || exit 1
	unshare -m sh -c "mount -t tmpfs -o size=8k tmpfs '$T/full' &&
	    dd if=/dev/zero of='$T/full/fill' bs=4096 count=2 2>/dev/null;
	    exec '$IVSH' -S '$T/s5' -M '$SHM-f' -l 1M -p '$T/full/pid'" \
	    2>"$T/s5.log"
	rc=$?
	check "ivshmem-server: a pid file it cannot write is an error on the \
terminal (exit $rc)" sh -c "[ $rc -eq 1 ] && grep -q 'pid: No space' \
'$T/s5.log'" || show ivshmem-server "$T/s5.log"
	check "ivshmem-server: and leaves no socket and no shm" \
	    test ! -e "$T/s5" -a ! -e "/dev/shm/$SHM-f"
else
	echo "# not the superuser: no test of a pid file on a full file system"
fi

"$IVSH" -h >"$T/h.out" 2>&1
rc=$?
check "ivshmem-server -h prints a usage and exits 0 (exit $rc)" sh -c \
    "[ $rc -eq 0 ] && grep -qi usage '$T/h.out'"

finish
