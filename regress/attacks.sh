#!/bin/sh
#
# attacks.sh: what a hostile local user does, and what it must not
# achieve: deny service to other clients or the VM, or steer what the
# server does as root through a path it controls.

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"

S=$T/s
ROOT=$([ "$(id -u)" -eq 0 ] && echo 1)
if [ -n "$ROOT" ]; then
	NOBODY=$(id -u nobody)
	NOGROUP=$(id -g nobody)
	chmod 755 "$T"
	asnobody() { setpriv --reuid="$NOBODY" --regid="$NOGROUP" \
	    --clear-groups "$@"; }
fi

# shm_fd pid: whether process pid has mapped the server's window.
has_window() {
	ls -l "/proc/$1/fd" 2>/dev/null | grep -q 'memfd:ivserver'
}

# --- descriptors in flight -------------------------------------------

# 100 connections of another user send requests and read no reply,
# under a limit of 256 fds: the fds in flight must not reach the
# kernel's limit, or every other client and the VM get none.
if [ -n "$ROOT" ]; then
	mkdir -p "$S"
	chmod 755 "$S"
	start_server_cmd "$S/server.log" "$S/c" prlimit --nofile=256:256 \
	    "$IVSERVER" -d -t 5 -g nogroup -q "$S/q" -s "$S/c"
	PID=$(server_child "$SERVERPID")
	BASE=$(nfds "$PID")
	mkfifo "$T/hold"
	asnobody ./hostile -s "$S/c" -f 100 <"$T/hold" >"$T/hostile.out" \
	    2>&1 &
	HOSTILE=$!
	exec 3>"$T/hold"
	at_exit "kill -9 $HOSTILE 2>/dev/null"
	check "in flight: 100 connections of uid nobody flood and never \
read" logged '^flooding' "$T/hostile.out"
	./load -s "$S/c" -c 8 -n 1000 >"$T/load.out" &
	LOAD=$!
	start_qemu "$S/q" 10
	check "in flight: meanwhile a QEMU attaches and maps the window" \
	    wait_for has_window "$QEMUPID"
	await_pid "$LOAD"
	check "in flight: and 1,000 clients of root are all served \
($(cat "$T/load.out"))" grep -qx 'served 1000 failed 0' "$T/load.out"
	check "in flight: and one more" serves "$S"
	check "in flight: ETOOMANYREFS never reached a client" sh -c \
	    "! grep -q 'Too many references' '$S/server.log'"
	stop_qemu
	exec 3>&-
	await_pid "$HOSTILE"
	check "in flight: once the flooder is gone, the server's fds are \
back to $BASE" wait_for nfds_is "$PID" "$BASE"
	stop_server
else
	echo "# not root: the attack needs a second user; not run"
fi

# --- the socket made as root is the socket used ---------------------------

# (A sanitizer's leak check cannot run under strace: it is left out.)

# bind(2) is slowed down by strace, and meanwhile the fresh socket is
# replaced with a link to a file: root must not change that file.
if [ -n "$ROOT" ] && have strace; then
	mkdir -p "$T/sw"
	echo secret >"$T/victim"
	chmod 600 "$T/victim"
	ASAN_OPTIONS=detect_leaks=0 strace -f -o /dev/null -e trace=bind \
	    -e inject=bind:delay_exit=3000000 "$IVSERVER" -d -g daemon \
	    -q "$T/sw/q" -s "$T/sw/c" 2>"$T/swap.log" &
	SW=$!
	wait_for test -S "$T/sw/c"
	rm -f "$T/sw/c"
	ln -s "$T/victim" "$T/sw/c"
	await_pid "$SW"
	check "a socket swapped for a link while it is made: refused \
(exit $?)" grep -q 'replaced or changed while it was made' "$T/swap.log"
	check "and the file linked to keeps its mode and group \
($(stat -c %a:%G "$T/victim"))" test "$(stat -c %a:%g "$T/victim")" = 600:0
else
	echo "# not root or no strace: the socket swap is not tried"
fi

# --- a stop at start-up ----------------------------------------------------

# Each process's first close(2) is slowed down: in the serving process
# that is before it has a signal pipe of its own, and the stop the
# parent sends it then must not be lost.
if have strace; then
	mkdir -p "$T/st"
	ASAN_OPTIONS=detect_leaks=0 strace -f -o /dev/null -e trace=close \
	    -e inject=close:delay_enter=2000000:when=1 "$IVSERVER" -d \
	    -q "$T/st/q" -s "$T/st/c" 2>"$T/stop.log" &
	ST=$!
	wait_for grep -q 'serving 10 regions' "$T/stop.log"
	IV=$(pgrep -P "$ST")
	kill "$IV"
	await_pid "$ST"
	RC=$?
	check "SIGTERM while the serving process starts: exit 0 ($RC)" \
	    test "$RC" -eq 0
	check "and the serving process took the parent's stop, no SIGKILL" \
	    sh -c "grep -q 'server: received signal 15' '$T/stop.log' &&
	    ! grep -q 'SIGKILL' '$T/stop.log'"
else
	echo "# no strace: a stop at start-up is not tried"
fi

# --- a listener with a full backlog at the path ----------------------------

mkfifo "$T/hold2"
./hostile -b "$T/full" <"$T/hold2" >"$T/backlog.out" 2>&1 &
BL=$!
at_exit "kill -9 $BL 2>/dev/null"
exec 4>"$T/hold2"
logged '^backlog full' "$T/backlog.out"
timeout "$WAIT" "$IVSERVER" -d -q "$T/full" -s "$T/full-c" \
    2>"$T/backlog.log"
RC=$?
check "a listener with a full backlog at the path is live: refused, \
not hung (exit $RC)" sh -c "[ $RC -eq 1 ] &&
    grep -q 'another server is listening' '$T/backlog.log'"
exec 4>&-
await_pid "$BL"

# --- a watcher that never reads ------------------------------------------------

# It asks to watch and reads nothing while VMs come and go: the server
# cuts it off once its socket is full, and a watcher that reads sees
# every attach and detach, in order, meanwhile.
mkdir -p "$T/w"
start_server "$T/w" -t 2
mkfifo "$T/hold3"
./hostile -w -s "$T/w/c" -q "$T/w/q" <"$T/hold3" >"$T/watch.out" 2>&1 &
WH=$!
at_exit "kill -9 $WH 2>/dev/null"
exec 5>"$T/hold3"
logged 'cycles' "$T/watch.out"
check "a watcher that never reads is cut off, and one that reads sees \
every event ($(cat "$T/watch.out"))" grep -q '^cut off after' "$T/watch.out"
check "the server says why" \
    grep -q 'does not read its events; disconnecting' "$T/w/server.log"
ms=$(sed -n 's/.* still served after \([0-9]*\) ms$/\1/p' "$T/watch.out")
check "the reading watcher outlives the -t 2 deadline (${ms:-?} ms)" \
    test "${ms:-0}" -gt 2000
check "and the server still serves" serves "$T/w"
exec 5>&-
await_pid "$WH"
stop_server

# --- the pid file --------------------------------------------------------------

ln -s "$IVSERVER" "$T/ivshmem-server"
IVSH=$T/ivshmem-server
mkfifo "$T/fifo.pid"
timeout "$WAIT" "$IVSH" -S "$T/p1" -M "ivserver-atk-$$" -l 1M \
    -p "$T/fifo.pid" 2>"$T/fifo.log"
RC=$?
check "pid file: a FIFO in its place is refused, not waited on \
(exit $RC)" sh -c "[ $RC -eq 1 ] &&
    grep -q 'not a regular file' '$T/fifo.log' && [ ! -e '$T/p1' ]"
echo x >"$T/target"
ln "$T/target" "$T/linked.pid"
timeout "$WAIT" "$IVSH" -S "$T/p1" -M "ivserver-atk-$$" -l 1M \
    -p "$T/linked.pid" 2>"$T/linked.log"
check "pid file: a file with a second link is refused" sh -c \
    "grep -q 'not a regular file with one link' '$T/linked.log' &&
    [ \"\$(cat '$T/target')\" = x ]"
ln -s "$T/target" "$T/sym.pid"
timeout "$WAIT" "$IVSH" -S "$T/p1" -M "ivserver-atk-$$" -l 1M \
    -p "$T/sym.pid" 2>"$T/sym.log"
check "pid file: a symbolic link is refused" sh -c \
    "grep -q 'sym.pid' '$T/sym.log' && [ \"\$(cat '$T/target')\" = x ]"

"$IVSH" -S "$T/p1" -M "ivserver-atk-$$" -l 1M -p "$T/d.pid" \
    2>"$T/d1.log"
wait_for test -s "$T/d.pid"
D1=$(cat "$T/d.pid")
at_exit "kill $D1 2>/dev/null"
wait_for test -S "$T/p1"
timeout "$WAIT" "$IVSH" -S "$T/p2" -M "ivserver-atk2-$$" -l 1M \
    -p "$T/d.pid" 2>"$T/d2.log"
RC=$?
check "pid file: a second instance given the same file refuses to \
start (exit $RC)" sh -c "[ $RC -eq 1 ] &&
    grep -q 'locked by another running instance' '$T/d2.log' &&
    [ ! -e '$T/p2' ]"
check "pid file: and the first one's file still names it ($D1)" \
    test "$(cat "$T/d.pid")" = "$D1"
kill "$D1"
check "pid file: removed when the daemon it names stops" \
    wait_for test ! -e "$T/d.pid"

# --- start-up arguments an attacker might choose --------------------------

mkdir -p "$T/lim"
start_server_cmd "$T/lim/server.log" "$T/lim/c" prlimit --nofile=64:64 \
    "$IVSERVER" -d -c 1000 -q "$T/lim/q" -s "$T/lim/c"
check "-c 1000 under a limit of 64 fds: a warning at start-up" \
    grep -q -- '-c 1000: .* more than the limit of 64' "$T/lim/server.log"
stop_server

awk 'BEGIN { printf "{\"regions\": "; for (i = 0; i < 70000; i++)
    printf "["; for (i = 0; i < 70000; i++) printf "]"; print "}" }' \
    >"$T/deep.json"
"$IVSERVER" -n -f "$T/deep.json" >/dev/null 2>"$T/deep.err"
RC=$?
check "a layout nested 70,000 deep: an error, not a crash (exit $RC)" \
    sh -c "[ $RC -eq 1 ] && grep -q 'nested deeper than' '$T/deep.err'"
"$IVSERVER" -n -Q "$T/deep.json" >/dev/null 2>"$T/deepq.err"
RC=$?
check "a QEMU file nested 70,000 deep: an error, not a crash (exit $RC)" \
    sh -c "[ $RC -eq 1 ] && grep -q 'nested deeper than' '$T/deepq.err'"

printf '{"binary": "/bin/true"}\n' >"$T/q.json"
"$IVSERVER" -n -q "$T/a,server=on,wait=off" -Q "$T/q.json" >"$T/comma.out"
check "commas in the QEMU socket path are doubled for QEMU's parser" \
    grep -q -- "-chardev socket,path=$T/a,,server=on,,wait=off,id=ivserver " \
    "$T/comma.out"

"$IVSERVER" -P 2 -n -l 2T 2>"$T/l.err"
RC=$?
check "-l 2T: refused, naming -l ($(head -n 1 "$T/l.err"))" sh -c \
    "[ $RC -eq 1 ] && grep -q '^ivserver: -l: ' '$T/l.err' &&
    ! grep -q null '$T/l.err'"

for m in /. /.. / /a/b; do
	"$IVSERVER" -n -M "$m" >/dev/null 2>"$T/m.err"
	RC=$?
	check "-M $m: refused before anything is done (exit $RC)" sh -c \
	    "[ $RC -eq 1 ] && grep -q 'the name must be' '$T/m.err'"
done

# --- a dedicated user ------------------------------------------------------

if [ -n "$ROOT" ]; then
	start_server "$T/u"
	if getent passwd _ivserver >/dev/null; then
		check "serving as _ivserver: no warning" sh -c \
		    "! grep -q 'serving as nobody' '$T/u/server.log'"
	else
		check "no user _ivserver: a warning that nobody is shared" \
		    grep -q 'no user _ivserver: serving as nobody' \
		    "$T/u/server.log"
	fi
	stop_server
	start_server "$T/u2" -u nobody
	check "and -u nobody, asked for, gives no warning" sh -c \
	    "! grep -q 'serving as nobody' '$T/u2/server.log'"
	stop_server
	start_server "$T/u"

	# --- the log cannot be flooded -----------------------------------------
	./load -s "$T/u/c" -F 20000 -t 3 no_such_region >/dev/null
	N=$(count . "$T/u/server.log")
	check "20,000 unknown names on one connection: few log lines ($N)" \
	    test "$N" -lt 20
	check "and a line says how many were left out" \
	    grep -q 'more lines suppressed' "$T/u/server.log"
	./load -s "$T/u/c" -c 50 -n 5000 no_such_region >/dev/null
	N=$(count 'no region' "$T/u/server.log")
	check "5,000 connections asking for unknown names: at most 100 a \
second logged ($N lines)" test "$N" -lt 1000
	check "and the server still serves" serves "$T/u"
	stop_server
fi

finish
