#!/bin/sh
#
# privsep.sh: privilege separation and the sandbox: the seccomp filter
# (sandboxtest), the serving process as nobody in an empty root with
# the filter on, and the allow lists of -a.

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"

tally "sandbox filter" ./sandboxtest

check "-a :group names the option in its error" sh -c \
    "'$IVSERVER' -n -a :no-such-group 2>&1 | grep -q '^ivserver: -a no-such-group: no such group'"

if [ "$(id -u)" -ne 0 ]; then
	echo "# not root: privilege drop and allow list checks not run"
	finish
fi

# status_of pid field: a field of /proc/pid/status.
status_of() {
	awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' \
	    "/proc/$1/status"
}
NOBODY=$(id -u nobody)
NOGROUP=$(id -g nobody)
IDS="$NOBODY $NOBODY $NOBODY $NOBODY"
GIDS="$NOGROUP $NOGROUP $NOGROUP $NOGROUP"
S=$T/s

chmod 755 "$T"
start_server "$S"
C=$SERVERCHILD
# Once it has served, the serving process is in its loop: the drop of
# privileges and the sandbox are behind it.
serves "$S"
check "root: the parent stays root and unsandboxed" sh -c \
    "[ '$(status_of "$SERVERPID" Uid | awk '{print $1}')' = 0 ] &&
     [ '$(status_of "$SERVERPID" Seccomp)' = 0 ]"
check "root: the server runs as nobody ($(status_of "$C" Uid))" \
    test "$(status_of "$C" Uid | tr '\t' ' ')" = "$IDS"
check "root: the server's gids are nogroup ($(status_of "$C" Gid))" \
    test "$(status_of "$C" Gid | tr '\t' ' ')" = "$GIDS"
check "root: the server has no supplementary groups" \
    test -z "$(status_of "$C" Groups)"
check "root: NoNewPrivs 1" test "$(status_of "$C" NoNewPrivs)" = 1
check "root: Seccomp 2 (filter)" test "$(status_of "$C" Seccomp)" = 2
check "root: the server's root is the empty /var/empty" sh -c \
    "[ \$(readlink /proc/$C/root) = /var/empty ] &&
     [ -z \"\$(ls -A /var/empty)\" ]"
check "root: the sandboxed server still serves" serves "$S"
stop_server

# Another uid: refused unless the allow list names it.
asnobody() {
	setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups "$@" \
	    >/dev/null
}
nobody_served() { asnobody ./ivclient -t "$WAIT" -s "$S/c" ril; }
refused() { ! nobody_served 2>/dev/null; }
chmod 755 "$S"
start_server "$S" -g nogroup -a root
check "allow list: uid nobody is refused by -a root" refused
check "allow list: the refusal is logged" logged \
    "uid $NOBODY gid $NOGROUP refused: not in the allow list" "$S/server.log"
check "allow list: root is served" serves "$S"
stop_server
start_server "$S" -g nogroup -a nobody
check "allow list: -a nobody serves nobody" nobody_served
stop_server
start_server "$S" -g nogroup -a :nogroup
check "allow list: -a :nogroup serves nobody" nobody_served
stop_server

finish
