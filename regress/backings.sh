#!/bin/sh
#
# backings.sh: what backs the window: a named shm (-M), live and
# stale, a file in a directory (-m), and a 64G window that costs what
# an 8K one does.

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"

S=$T/s
SHM=ivserver-regress-$$
at_exit rm -f "/dev/shm/$SHM"

start_server "$S" -M "/$SHM"
check "-M: the named shm exists while the server runs" test -e "/dev/shm/$SHM"
check "-M: clients get the named shm" serves "$S"
timeout "$WAIT" "$IVSERVER" -d -q "$S/q2" -s "$S/c2" -M "/$SHM" \
    2>"$T/shm2.log"
check "-M: a second server is refused the live shm" \
    grep -q "shm /$SHM is in use" "$T/shm2.log"
kill_server
start_server "$S" -M "/$SHM"
check "-M: a stale shm is replaced" serves "$S"
stop_server
check "-M: SIGTERM unlinks the shm" test ! -e "/dev/shm/$SHM"

mkdir -p "$T/dir"
start_server "$S" -m "$T/dir"
check "-m: a file backing in a directory serves" serves "$S"
check "-m: the file is unlinked at once" test -z "$(ls "$T/dir")"
stop_server

# The window's pages are never touched: a 64G window costs what an 8K
# one does (compared, so that a sanitizer's own memory cancels out).
start_server "$S" -f layout/good-minimal.json
./ivclient -s "$S/c" only >/dev/null 2>&1
R1=$(rss_kb "$SERVERPID")
stop_server
start_server "$S" -f layout/good-total.json
check "a 64G window: ivclient checks the header and size" sh -c \
    "./ivclient -s '$S/c' a b >/dev/null"
R2=$(rss_kb "$SERVERPID")
check "a 64G window costs no more memory than 8K (RSS $R2 kB vs $R1 kB)" \
    test $((R2 - R1)) -lt 1024
stop_server

finish
