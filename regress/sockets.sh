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

finish
