#!/bin/sh
#
# sockets.sh: the server's sockets: their modes, a second server on a
# live socket, a killed server's stale sockets, a clean exit, -g.

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"

# perms format want: stat -c format says want of both sockets.
perms() {
	[ "$(stat -c "$1" "$S/q")" = "$2" ] &&
	    [ "$(stat -c "$1" "$S/c")" = "$2" ]
}

S=$T/s
start_server "$S"
check "server listens on both sockets" test -S "$S/q" -a -S "$S/c"
check "socket files are 0600" perms %a 600

timeout "$WAIT" "$IVSERVER" -d -q "$S/q" -s "$S/c" 2>"$T/second.log"
check "a second server on the same paths is refused" \
    grep -q 'another server is listening' "$T/second.log"
check "and the first one still serves" serves "$S"
kill_server
check "a killed server leaves its sockets" test -S "$S/c"
start_server "$S"
check "a new server replaces the stale sockets" serves "$S"
check "SIGTERM exits 0" stop_server
check "and removes both sockets" test ! -e "$S/q" -a ! -e "$S/c"

G=$(getent group daemon | cut -d: -f3)
start_server "$S" -g daemon
check "-g: sockets 0660 with the group" perms %a:%g "660:$G"
stop_server

# ivshmem-server takes -g too, a letter QEMU's flags leave free.
SHM=ivserver-test-$$
at_exit rm -f "/dev/shm/$SHM"
ln -s "$IVSERVER" "$T/ivshmem-server" || exit 1
check "ivshmem-server -F -g daemon listens" start_server_cmd \
    "$T/compat.log" "$T/cs" "$T/ivshmem-server" -F -S "$T/cs" -M "$SHM" \
    -l 4M -g daemon
check "ivshmem-server -g: the socket 0660 with the group" \
    test "$(stat -c %a:%g "$T/cs")" = "660:$G"
stop_server

# A user's runtime directory with -g is one the group can enter: not
# under XDG_RUNTIME_DIR, but /tmp/ivserver-uid, 0750, of the group.
if [ "$(id -u)" -eq 0 ]; then
	NB=$(id -u nobody)
	NG=$(id -g nobody)
	RD=/tmp/ivserver-$NB
	[ -e "$RD" ] || at_exit rm -rf "$RD"
	check "nobody: ivserver -d -g $NG on the default paths listens" \
	    start_server_cmd "$T/nobody.log" "$RD/client.sock" \
	    env XDG_RUNTIME_DIR="$T" setpriv --reuid="$NB" --regid="$NG" \
	    --clear-groups "$IVSERVER" -d -g "$NG"
	check "nobody: $RD is 0750 and of group $NG" \
	    test "$(stat -c %a:%g "$RD")" = "750:$NG"
	check "nobody: its sockets 0660 and of group $NG" \
	    test "$(stat -c %a:%g "$RD/qemu.sock")" = "660:$NG"
	stop_server
fi

finish
