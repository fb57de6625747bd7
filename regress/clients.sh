#!/bin/sh
#
# clients.sh: host clients against one server: every region's offsets
# and header, an unknown region, and hostile clients (rawclient) that
# stop short, send garbage or say nothing, after which the server still
# serves and holds no fd more than before.

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"

# A client deadline of 5 s.  rawclient's "hello only" closes at half of
# it, having read what came by then: the one wait here that a time
# ends, since rawclient cannot stop at the version; the others read
# until the server closes.
S=$T/s
start_server "$S" -t 5
check "the serving process is a child of the parent" \
    test "$(server_child "$SERVERPID")" = "$SERVERCHILD" -a -n "$SERVERCHILD"

NAMES=$("$IVSERVER" -n | awk '$1 == "total" { exit } NR > 1 { print $1 }')
"$IVSERVER" -n |
    awk '$1 == "total" { exit } NR > 1 { print $1, $2, $3, $5 }' >"$T/table"
# shellcheck disable=SC2086
./ivclient -s "$S/c" $NAMES >"$T/client" 2>"$T/client.err"
check "ivclient: every region's offsets equal the -n table and the header" \
    diff -u "$T/table" "$T/client"
./ivclient -s "$S/c" no_such_region >"$T/unknown" 2>&1
check "unknown region: all ones and no fds" \
    grep -qx 'no_such_region unknown' "$T/unknown"

BASE=$(idle_fds "$S" "$SERVERCHILD")

# raw name [option ...] -- [hex ...]: rawclient in the background, its
# line in T/raw.name.  Each of these waits for the server's deadline
# or its own: they run side by side.
RAWPIDS=
raw() {
	_name=$1
	shift
	_opts=
	while [ "$1" != -- ]; do
		_opts="$_opts $1"
		shift
	done
	shift
	# shellcheck disable=SC2086
	./rawclient $_opts "$S/c" "$@" >"$T/raw.$_name" 2>&1 &
	RAWPIDS="$RAWPIDS $!"
}
# The server closes on each of these: rawclient waits up to 30 s.
raw hello -t 2500 --
raw onebyte -t 30000 -- 0a
raw cutshort -t 30000 -- 0a00 6877
raw bytewise -d 20 -t 30000 -- 0a 00 68 77 63 6f 6d 70 6f 73 65 72
raw two -t 30000 -- 0a006877636f6d706f736572 030072696c
raw unknown -t 30000 -- 03006e6f6e 030072696c
raw silence -t 30000 --
# shellcheck disable=SC2086
wait $RAWPIDS

# got name want: what rawclient name saw.
got() {
	[ "$(cat "$T/raw.$1")" = "$2" ] && return 0
	echo "# got: $(cat "$T/raw.$1"), want: $2"
	return 1
}
# expect want [hex ...]: what a rawclient sending hex sees.
expect() {
	_want=$1
	shift
	raw now -t 30000 -- "$@"
	wait $!
	got now "$_want"
}

check "connect and close at once" sh -c "./rawclient -t 0 '$S/c' >/dev/null"
check "hello only, then close: version sent" \
    grep -q '^bytes 4 fds 0' "$T/raw.hello"
check "one byte of length then close" got onebyte "bytes 4 fds 0 eof"
check "name cut short then close" got cutshort "bytes 4 fds 0 eof"
check "length 0 is refused" expect "bytes 4 fds 0 eof" 0000
check "length 16 is refused" expect "bytes 4 fds 0 eof" 1000
check "length 0xffff is refused" expect "bytes 4 fds 0 eof" ffff
check "garbage is refused" expect "bytes 4 fds 0 eof" \
    deadbeefcafef00d0123456789abcdef
check "a request byte by byte is served" \
    grep -q '^bytes 20 fds 3 eof' "$T/raw.bytewise"
check "two requests on one connection" got two "bytes 36 fds 6 eof"
check "an unknown name keeps the connection" got unknown "bytes 36 fds 3 eof"
check "silence past the deadline closes" got silence "bytes 4 fds 0 eof"
check "a good client is served after the bad ones" sh -c \
    "./ivclient -s '$S/c' hwcomposer >/dev/null 2>&1"
check "the server's fd count is back to its baseline ($BASE)" \
    wait_for nfds_is "$SERVERCHILD" "$BASE"
check "the server is still running" alive "$SERVERCHILD"

stop_server
finish
