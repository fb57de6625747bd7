#!/bin/sh
#
# load.sh: load and faults: 111,000 handshakes with the fds and the
# memory stable after them, clients closing at every byte, a client
# that never reads, more connections than -c, too few fds (EMFILE),
# QEMU killed at random points 100 times, SIGTERM under load.

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"

# --- many clients ------------------------------------------------------

# A client deadline of 10 s: the flood below is cut off after it.
S=$T/load
start_server "$S" -t 10
serves "$S"
BASE=$(idle_fds "$S" "$SERVERCHILD")
RSS0=$(rss_kb "$SERVERPID")
# start_load out want [option ...]: load in the background on S/c, its
# output in T/load.out, once it has printed a line that matches want (any
# with ''); LOADPID is its pid.  It holds on for up to 600 s.
start_load() {
	_out=$T/load.$1
	_want=$2
	shift 2
	./load -s "$S/c" -t 600 "$@" >"$_out" &
	LOADPID=$!
	at_exit "kill $LOADPID 2>/dev/null"
	[ -z "$_want" ] || wait_for grep -qs "$_want" "$_out"
}
stop_load() {
	kill "$LOADPID" 2>/dev/null
	wait "$LOADPID" 2>/dev/null
}

# handshakes n c: n handshakes, c at a time, all served.
handshakes() {
	./load -s "$S/c" -c "$2" -n "$1" -t 600 | grep -qx "served $1 failed 0"
}
check "1,000 clients at once are all served" handshakes 1000 1000
check "10,000 handshakes in a row are all served" handshakes 10000 1
check "100,000 handshakes, 64 at a time, are all served" handshakes 100000 64
check "after 111,000 handshakes the fd count is back to $BASE" \
    wait_for nfds_is "$SERVERCHILD" "$BASE"
RSS1=$(rss_kb "$SERVERPID")
# A sanitizer's allocator keeps freed memory in quarantine: there the
# figure says nothing about the server.
if grep -q __asan_init "$IVSERVER" 2>/dev/null; then
	echo "# ASan build: RSS $RSS0 kB, then $RSS1 kB; stability not checked"
else
	check "and the memory is stable (RSS $RSS0 kB, then $RSS1 kB)" \
	    test $((RSS1 - RSS0)) -lt 512
fi
for pre in "" 03 0300 030072 03007269; do
	# shellcheck disable=SC2086
	./rawclient -t 500 "$S/c" $pre >/dev/null
done
check "clients closing at every byte of a request: still served" serves "$S"

# The flood has filled its socket once it says "flooded": it is
# connected and the server no longer keeps up with it.  A client served
# before the server cuts the flood off at its deadline was not blocked.
CUT='timed out\|Too many references\|send'
N0=$(count "$CUT" "$S/server.log")
cut_off() { [ "$(count "$CUT" "$S/server.log")" -gt "$N0" ]; }
start_load flood '^flooded' -F 100000
check "a client that never reads does not block the others" \
    eval 'serves "$S" && ! cut_off'
check "and it is cut off at its deadline" wait_for cut_off
stop_load
check "the fd count is back to $BASE after the flood" \
    wait_for nfds_is "$SERVERCHILD" "$BASE"
stop_server

# Held once load says "held": every connection is made before the
# client's, and stays until load is killed.  A client served while they
# are held was let in as the server cut them off at their deadline, ten
# at a time.
S=$T/limit
start_server "$S" -t 2 -c 10
start_load held '^held' -H 50
check "more silent connections than -c 10: a client is served in time" \
    eval 'serves "$S" && alive "$LOADPID"'
stop_load
stop_server

# Few fds: accept fails with EMFILE; the server waits instead of
# spinning or dying, and serves as soon as fds are free again.  The
# kernel counts the fds in flight on sockets per user, against the
# sender's limit, here 64: as root the serving process runs as daemon,
# so that another server's clients that leave fds unread, which count
# for nobody, do not make its sends fail.
S=$T/emfile
mkdir -p "$S"
ASUSER=
[ "$(id -u)" -eq 0 ] && ASUSER="-u daemon"
# shellcheck disable=SC2086
start_server_cmd "$S/server.log" "$S/c" prlimit --nofile=64:64 \
    "$IVSERVER" -d -t 2 -c 1000 $ASUSER -q "$S/q" -s "$S/c"
# The 200 connections are held for 3 s, over which the messages are
# counted: one per pause of 100 ms, and one more for each fd that a
# connection cut off at its deadline frees, up to 230 in all, where a
# server that spins logs thousands a second.
start_load held '' -H 200 -t 3
check "out of fds: the server says so" \
    logged 'out of file descriptors' "$S/server.log"
check "and is still running" alive "$SERVERPID"
wait "$LOADPID"
check "and serves again when fds are free" serves "$S" ||
    show server "$S/server.log"
N=$(count 'out of file descriptors' "$S/server.log")
check "and backed off rather than spinning ($N messages in 3 s)" \
    test "$N" -lt 1000
stop_server

# --- QEMU killed at random points of its start and handshake -----------

S=$T/qemu
start_server "$S"
i=0
while [ $i -lt 100 ]; do
	start_qemu "$S/q" 10
	# A random kill point: the sleep decides where, not a result.
	sleep "0.$(awk -v s=$i \
	    'BEGIN { srand(s); printf "%03d", rand() * 300 }')"
	stop_qemu
	i=$((i + 1))
done
# Once the server holds no connection of theirs, each attach in its log
# has its leave.
settled() {
	conns_are "$S/q" 0 &&
	    [ "$(count 'attached as peer 1' "$S/server.log")" -eq \
	    "$(count 'peer 1 (pid [0-9]*) left' "$S/server.log")" ]
}
wait_for settled
A=$(count 'attached as peer 1' "$S/server.log")
L=$(count 'peer 1 (pid [0-9]*) left' "$S/server.log")
check "QEMU killed 100 times: the server is up ($A attached, $L left)" \
    sh -c "kill -0 $SERVERCHILD && [ $A -eq $L ] && [ $A -gt 0 ]"
check "and a host client is still served" serves "$S"
start_qemu "$S/q" 10
check "and a new QEMU attaches as peer 1" \
    logged "VM (pid $QEMUPID, uid 0) attached as peer 1" "$S/server.log"
stop_qemu
stop_server

# --- SIGTERM under load -------------------------------------------------

# Under load once the server has connections of the load's.
S=$T/term
start_server "$S"
start_load term '' -c 64 -n 10000000
busy() { [ "$(conns "$S/c")" -gt 0 ]; }
wait_for busy
check "SIGTERM under load: exit 0" stop_server
check "and nothing left behind" test ! -e "$S/q" -a ! -e "$S/c"
stop_load

finish
