#!/bin/sh
#
# launcher.sh: the QEMU launcher (-Q): the QEMU file and the command
# line it makes, a launched QEMU that attaches, a stranger on the QEMU
# socket, a killed QEMU respawned, QEMU stopped with the server, and a
# killed serving process replaced with the launched QEMU kept attached.

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"

QBIN=$(command -v "$QEMU")
printf '{ "binary": "%s",
	"args": ["-M", "pc", "-accel", "tcg", "-S", "-nodefaults",
	    "-display", "none", "-m", "64"],
	"respawn": "always", "respawn_delay": 0, "stop_timeout": 5 }\n' \
    "$QBIN" >"$T/qemu.json"
"$IVSERVER" -n -q /x/q -Q "$T/qemu.json" >"$T/n"
check "-n prints QEMU's command line with the ivshmem device" grep -qx \
    "$QBIN -M pc -accel tcg -S -nodefaults -display none -m 64 -chardev socket,path=/x/q,id=ivserver -device ivshmem-doorbell,chardev=ivserver,vectors=10" \
    "$T/n"

# qbad json error: ivserver -n exits 1 on the QEMU file json, saying
# error.
qbad() {
	printf '%s\n' "$1" >"$T/bad-qemu.json"
	"$IVSERVER" -n -Q "$T/bad-qemu.json" >/dev/null 2>"$T/bad-qemu.err"
	[ $? -eq 1 ] && grep -q "$2" "$T/bad-qemu.err"
}
check "a QEMU file may not add its own ivshmem device" qbad \
    '{"binary": "/bin/true", "args": ["-device", "ivshmem-plain"]}' \
    'adds the ivshmem device'
check "QEMU file: a field given twice is an error" qbad \
    '{"binary": "/bin/true", "args": ["a"], "args": ["b", "c"]}' \
    'args: given twice'
check "QEMU file: -daemonize is refused" qbad \
    '{"binary": "/bin/true", "args": ["-daemonize"]}' 'in the foreground'
check "QEMU file: a PCI address cannot smuggle properties" qbad \
    '{"binary": "/bin/true", "pci_address": "4,romfile=x"}' \
    'is not a PCI slot'
check "QEMU file: an unknown respawn policy is refused" qbad \
    '{"binary": "/bin/true", "respawn": "sometimes"}' 'must be "no"'

S=$T/s
# The QEMU the server launched, once it runs QEMU.
qemu_child() {
	for _c in $(pgrep -P "$1"); do
		case $(cat "/proc/$_c/comm" 2>/dev/null) in
		qemu*) echo "$_c"; return 0 ;;
		esac
	done
	return 1
}
# attached n: the log has n attaches of a QEMU.
attached() { [ "$(count 'attached as peer 1' "$S/server.log")" -ge "$1" ]; }

start_server "$S" -Q "$T/qemu.json"
wait_for attached 1
Q1=$(qemu_child "$SERVERPID")
check "launched QEMU (pid $Q1) attaches as peer 1" \
    grep -q "VM (pid $Q1, uid 0) attached as peer 1" "$S/server.log"
RAWQ=$(./rawclient -t 30000 "$S/q")
check "a pretend QEMU gets version 0, ID -1 and is closed ($RAWQ)" \
    test "$RAWQ" = "bytes 16 fds 0 eof"
check "and the refusal is logged" logged "not the QEMU ivserver launched" \
    "$S/server.log"
kill -9 "$Q1"
wait_for attached 2
Q2=$(qemu_child "$SERVERPID")
check "QEMU killed: respawned (pid $Q2) and attached again" sh -c \
    "[ -n '$Q2' ] && [ '$Q2' != '$Q1' ] &&
     grep -q 'VM (pid $Q2, uid 0) attached as peer 1' '$S/server.log'"
check "SIGTERM: ivserver exits 0" stop_server
check "and QEMU is stopped" gone "$Q2"
check "and the sockets are gone" test ! -e "$S/q" -a ! -e "$S/c"

start_server "$S" -Q "$T/qemu.json"
wait_for attached 3
Q3=$(qemu_child "$SERVERPID")
C1=$SERVERCHILD
# adopted: the log says a new serving process adopted the VM.
adopted() { grep -q "VM as peer 1 (pid $Q3) adopted" "$S/server.log"; }
new_child() {
	_nc=$(server_child "$SERVERPID") && [ "$_nc" != "$C1" ] &&
	    alive "$_nc"
}
kill -9 "$C1"
wait_for new_child
check "the serving process killed: ivserver starts another" adopted
check "and logs how the last one ended" grep -q \
    "server process killed by signal 9; starting another" "$S/server.log"
check "the launched QEMU runs on (pid $Q3)" alive "$Q3"
check "and is not started again" test "$(qemu_child "$SERVERPID")" = "$Q3"
check "the new serving process serves clients" serves "$S"
RAWQ=$(./rawclient -t 30000 "$S/q")
check "a pretend QEMU is still refused ($RAWQ)" \
    test "$RAWQ" = "bytes 16 fds 0 eof"
kill -9 "$Q3"
wait_for attached 4
Q4=$(qemu_child "$SERVERPID")
check "QEMU killed after the restart: respawned (pid $Q4), attached" \
    grep -q "VM (pid $Q4, uid 0) attached as peer 1" "$S/server.log"
check "SIGTERM: ivserver exits 0" stop_server
check "and stops QEMU" gone "$Q4"
check "and removes its sockets" test ! -e "$S/q" -a ! -e "$S/c"

finish
