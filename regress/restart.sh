#!/bin/sh
#
# restart.sh: the serving process dies and a new one takes over.  Killed
# 100 times at random moments under a real QEMU and host clients
# (restarttest), with nothing lost on either side; killed in peer mode,
# where the peers keep their IDs and eventfds; a VM that goes while no
# serving process runs, seen to leave by the next; the parent killed,
# which the VM sees; and the serving process killed as soon as it
# appears, a crash loop, which the parent meets with longer and longer
# waits and then, past its limit, by stopping everything and exiting 1.
# First of all, the records a serving process sends its parent, from a
# hostile one (ipctest).

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"

# The parent against a hostile serving process: what it holds.
tally "ipctest host" ./ipctest host
tally "ipctest peer" ./ipctest peer

check "$QEMU is installed" have "$QEMU" || finish

S=$T/s
start_server "$S"
tally "restarttest" env TMPDIR="$S" ./restarttest -Q "$QEMU" \
    -p "$SERVERPID" -q "$S/q" -s "$S/c" hwcomposer ril e2e_primary ||
    show ivserver "$S/server.log"
check "ivserver still runs after 100 kills" alive "$SERVERPID"
check "each restart is logged with how the last process ended" test \
    "$(count 'server process killed by signal 9; starting another' \
    "$S/server.log")" -ge 100
check "SIGTERM: ivserver exits 0" stop_server
check "and removes its sockets" test ! -e "$S/q" -a ! -e "$S/c"

# --- peer mode: the peers keep their IDs and eventfds ----------------------

P=$T/peer
mkdir "$P" || exit 1
start_server_cmd "$P/server.log" "$P/sock" "$IVSERVER" -d -P 2 -l 4M \
    -q "$P/sock"
start_qemu "$P/sock" 2
logged "attached as peer 0" "$P/server.log"
# stay name: a C peer that stays until its input, a fifo held open on
# fd 3, 4 or 5, ends; it prints what it sees in P/name.out.
mkfifo "$P/a" "$P/b" "$P/d" || exit 1
exec 3<>"$P/a" 4<>"$P/b" 5<>"$P/d"
stay() {
	./peer -s "$P/sock" -n 2 -w 600000 <"$P/$1" >"$P/$1.out" \
	    2>"$P/$1.err" 3>&- 4>&- 5>&- &
}
stay a
A=$!
wait_for grep -qs . "$P/a.out"
stay b
B=$!
at_exit "kill -9 $A $B 2>/dev/null"
wait_for grep -qs . "$P/b.out"
check "peer mode: QEMU is peer 0, two C peers 1 and 2" sh -c \
    "[ \"\$(head -n 1 '$P/b.out')\" = 'id 2 peers 2' ]"
QFDS=$(nfds "$QEMUPID")
C0=$SERVERCHILD
SFDS=$(nfds "$C0")
adopted3() {
	[ "$(count 'adopted from the previous' "$P/server.log")" -ge 3 ]
}
kill -9 "$C0"
check "peer mode: a new serving process adopts the three peers" \
    wait_for adopted3
C1=$(server_child "$SERVERPID")
check "peer mode: and holds as many fds as the one killed ($SFDS)" \
    wait_for nfds_is "$C1" "$SFDS"
check "peer mode: QEMU keeps its connection ($QFDS fds)" \
    nfds_is "$QEMUPID" "$QFDS"
stay d
D=$!
at_exit "kill -9 $D 2>/dev/null"
wait_for grep -qs . "$P/d.out"
check "peer mode: a new peer gets ID 3 and is told of the three" \
    test "$(head -n 1 "$P/d.out")" = "id 3 peers 3"
echo "ring 2 1" >&5
check "peer mode: it rings peer 2 with the eventfd adopted for it" \
    wait_for grep -qx "irq 1" "$P/b.out"
echo "ring 2 0" >&3
check "peer mode: peer 1 rings peer 2 as before" \
    wait_for grep -qx "irq 0" "$P/b.out"
exec 3>&- 5>&-
echo "wait leaves 2" >&4
check "peer mode: peer 2 is told that 3 and 1, adopted, left" \
    wait_for grep -qx "leaves 2" "$P/b.out"
exec 4>&-
await_pid "$B"
check "peer mode: peer 2 saw one join and two leaves, QEMU stays" \
    test "$(tail -n 1 "$P/b.out")" = "joins 1 leaves 2 now 0"
await_pid "$A"
await_pid "$D"
check "peer mode: SIGTERM, ivserver exits 0" stop_server
stop_qemu

# What a client asks of the new serving process: the VM is still there,
# and the generation did not move, since the guest saw nothing.
S=$T/status
start_server "$S"
start_qemu "$S/q" 10
logged "attached as peer 1" "$S/server.log"
C0=$SERVERCHILD
kill -9 "$C0"
logged "VM as peer 1 (pid $QEMUPID) adopted" "$S/server.log"
check "status from the new serving process: the VM attached" sh -c \
    "../ivctl -s '$S/c' status | grep -qx 'vm attached'"
check "and its pid and the same generation, 1" sh -c \
    "../ivctl -s '$S/c' status >'$S/st' && grep -qx 'vm_pid $QEMUPID' \
    '$S/st' && grep -qx 'generation 1' '$S/st'"
stop_qemu
check "then the VM's end is a detach: generation 2" wait_for sh -c \
    "../ivctl -s '$S/c' status | grep -qx 'generation 2'"
check "SIGTERM: ivserver exits 0" stop_server

# A VM that goes while no serving process runs: the next one adopts its
# connection, sees its end as a leave, and the next VM attaches.
S=$T/gone
start_server "$S"
start_qemu "$S/q" 10
Q1=$QEMUPID
logged "attached as peer 1" "$S/server.log"
C0=$SERVERCHILD
kill -STOP "$C0"
stop_qemu
kill -9 "$C0"
check "a VM gone while no serving process ran: adopted" \
    logged "VM as peer 1 (pid $Q1) adopted" "$S/server.log"
check "and seen to leave" logged "peer 1 (pid $Q1) left" "$S/server.log"
start_qemu "$S/q" 10
check "and the next VM attaches as peer 1" \
    logged "VM (pid $QEMUPID, uid [0-9]*) attached as peer 1" "$S/server.log"
stop_qemu
check "SIGTERM: ivserver exits 0" stop_server

# The parent killed: the serving process follows it, and with no one
# left to hold it, the VM's connection closes.
S=$T/orphan
start_server "$S"
start_qemu "$S/q" 10
logged "attached as peer 1" "$S/server.log"
# sockets pid: the sockets pid holds.
sockets() { ls -l "/proc/$1/fd" 2>/dev/null | grep -c 'socket:'; }
no_sockets() { [ "$(sockets "$1")" -eq 0 ]; }
QS=$(sockets "$QEMUPID")
C0=$SERVERCHILD
kill -9 "$SERVERPID"
wait "$SERVERPID" 2>/dev/null
SERVERPID=
check "the parent killed: the serving process exits" wait_for gone "$C0"
check "and QEMU sees its connection close ($QS sockets, then none)" \
    wait_for no_sockets "$QEMUPID"
stop_qemu

# A crash loop: each new serving process killed as soon as it shows,
# with a launched QEMU, which the parent stops when it gives up.
S=$T/loop
mkdir -p "$S"
printf '{ "binary": "%s",
	"args": ["-M", "pc", "-accel", "tcg", "-S", "-nodefaults",
	    "-display", "none", "-m", "64"],
	"respawn": "always", "respawn_delay": 0, "stop_timeout": 5 }\n' \
    "$(command -v "$QEMU")" >"$S/qemu.json"
start_server "$S" -Q "$S/qemu.json"
# killer: kill every serving process of the server (a child that is not
# QEMU) the moment it is seen, until the parent gives up (and no longer:
# a sanitizer's exit may have a process of its own).
killer() {
	while alive "$1" && ! grep -q "giving up" "$S/server.log"; do
		for _p in $(pgrep -P "$1"); do
			case $(cat "/proc/$_p/comm" 2>/dev/null) in
			qemu*) ;;
			*) kill -9 "$_p" 2>/dev/null ;;
			esac
		done
	done
}
killer "$SERVERPID" &
KILLER=$!
at_exit "kill $KILLER 2>/dev/null"
await_server
check "a crash loop: ivserver gives up and exits 1" test $? -eq 1
wait "$KILLER" 2>/dev/null
# The waits: 100, 200, 400, 800 and 1600 ms, then the end.  Under load
# the killer may be late for one, which then was no quick death and is
# followed by no wait: the count starts again.
waits=$(sed -n 's/.*starting another in \([0-9]*\) ms.*/\1/p' \
    "$S/server.log" | tr '\n' ' ')
# backed_off: each wait 0, or 100 after 0, or twice the one before, and
# the last five 100 to 1600.
backed_off() {
	echo "$waits" | awk '{
		for (i = 1; i <= NF; i++) {
			p = i > 1 ? $(i - 1) : 0
			if ($i != 0 && !(p == 0 && $i == 100) && $i != 2 * p)
				exit 1
		}
		exit NF < 5 || $(NF - 4) " " $(NF - 3) " " $(NF - 2) " " \
		    $(NF - 1) " " $NF != "100 200 400 800 1600"
	}'
}
check "it waited longer after each quick death ($waits)" backed_off
check "and says why it gave up" grep -q \
    "6 times in a row within 250 ms of its start: giving up" "$S/server.log"
LASTQ=$(sed -n 's/.*stopping QEMU pid \([0-9]*\).*/\1/p' "$S/server.log" |
    tail -n 1)
lastq_gone() { [ -n "$LASTQ" ] && gone "$LASTQ"; }
check "and stops the QEMU it launched (${LASTQ:-none})" lastq_gone
check "and removes its sockets" test ! -e "$S/q" -a ! -e "$S/c"

finish
