#!/bin/sh
#
# restart.sh: the serving process dies and a new one takes over.  Killed
# 100 times at random moments under a real QEMU and host clients
# (restarttest), with nothing lost on either side; and killed as soon as
# it appears, a crash loop, which the parent meets with longer and
# longer waits and then, past its limit, by stopping everything and
# exiting 1.

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"

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

# A crash loop: each new serving process killed as soon as it shows.
S=$T/loop
start_server "$S"
# killer: kill every serving process of the server the moment it is
# seen, until the server is gone.
killer() {
	while alive "$1"; do
		for _p in $(pgrep -P "$1"); do
			kill -9 "$_p" 2>/dev/null
		done
	done
}
killer "$SERVERPID" &
KILLER=$!
at_exit "kill $KILLER 2>/dev/null"
await_server
check "a crash loop: ivserver gives up and exits 1" test $? -eq 1
wait "$KILLER" 2>/dev/null
# The waits: 100, 200, 400, 800 and 1600 ms, then the end.
waits=$(sed -n 's/.*starting another in \([0-9]*\) ms.*/\1/p' \
    "$S/server.log" | tr '\n' ' ')
check "it waited longer after each quick death ($waits)" \
    test "$waits" = "100 200 400 800 1600 "
check "and says why it gave up" grep -q \
    "6 times in a row within 250 ms of its start: giving up" "$S/server.log"
check "and removes its sockets" test ! -e "$S/q" -a ! -e "$S/c"

finish
