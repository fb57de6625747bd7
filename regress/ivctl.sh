#!/bin/sh
#
# ivctl.sh: ivctl and libivshm against a live ivserver and real QEMUs:
# list, status and the exit statuses here, then ivctltest for watch,
# ring, wait, read and write with QEMU in host mode, and ivctl -P peer
# among two QEMUs in peer mode.
#
# Environment: LAYOUT (../conf/layout.json), and those of lib.sh.

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"
LAYOUT=${LAYOUT:-$REGRESS/../conf/layout.json}
IVCTL=$REGRESS/../ivctl

# rc want what command ...: command exits with status want; its output
# is in $T/rc.out.
rc() {
	_rc_want=$1
	_rc_what=$2
	shift 2
	"$@" >"$T/rc.out" 2>"$T/rc.err" </dev/null
	_rc=$?
	check "$_rc_what (exit $_rc)" test "$_rc" -eq "$_rc_want" ||
	    show "$*" "$T/rc.err"
}

# has what line: $T/rc.out has that line.
has() {
	check "$1" grep -qx -- "$2" "$T/rc.out" || show output "$T/rc.out"
}

check "$QEMU is installed" have "$QEMU" || finish
check "ivctl is built" test -x "$IVCTL" || finish

# --- host mode --------------------------------------------------------

D=$T/host
mkdir "$D" || exit 1
"$IVSERVER" -n -f "$LAYOUT" >"$D/n" 2>"$D/n.err"
check "host: ivserver -n prints the table" test -s "$D/n" ||
    show "ivserver -n" "$D/n.err"
check "host: ivserver starts" start_server "$D" -f "$LAYOUT" || finish

rc 0 "host: ivctl list exits 0" "$IVCTL" -s "$D/c" list
grep -v '^total' "$T/rc.out" >"$D/list.regions"
# -n's table ends at its total line; libvirt's lines follow it.
sed -n '/^total/q;p' "$D/n" >"$D/n.regions"
check "host: ivctl list shows the regions as ivserver -n does" \
    cmp -s "$D/n.regions" "$D/list.regions" ||
    show "ivctl list" "$T/rc.out"
total=$(grep '^total' "$T/rc.out")
check "host: and its total line begins -n's (\"$total\")" sh -c \
    "grep -q '^$total, header' '$D/n'"

rc 0 "host: ivctl status exits 0" "$IVCTL" -s "$D/c" status
has "host: status: no VM yet" "vm detached"
has "host: status: generation 0" "generation 0"
has "host: status: one client, itself" "clients 1"
has "host: status: the serving process's pid" "server_pid $SERVERCHILD"

rc 1 "host: ivctl ring of an unknown region exits 1" \
    "$IVCTL" -s "$D/c" ring nosuchregion
rc 2 "host: ivctl on a socket with no server exits 2" \
    "$IVCTL" -s "$D/none" status
rc 2 "host: ivctl with an unknown command exits 2" \
    "$IVCTL" -s "$D/c" frobnicate
rc 2 "host: ivctl ring with no region exits 2" "$IVCTL" -s "$D/c" ring

# The EXAMPLES program of libivshm(3), as a user would paste it.
awk '/^\.Sh EXAMPLES/ { e = 1 } e && /^\.Bd -literal/ { p = 1; next }
    p && /^\.Ed/ { exit } p' ../libivshm.3 >"$T/pong.c"
check "the program in libivshm(3) EXAMPLES builds with the library" \
    ${CC:-cc} -std=c99 -Wall -Wextra -Werror ${CFLAGS:-} ${LDFLAGS:-} -I.. \
    -o "$T/pong" "$T/pong.c" ../libivshm.a
# Installed, the library is found through pkg-config.
I=$T/inst
check "make install puts libivshm.a, ivshm.h, libivshm.pc, ivctl and \
the manuals under DESTDIR" sh -c "cd .. && ${MAKE:-make} -s install \
DESTDIR='$I' PREFIX=/usr/local >'$T/install.out' 2>&1 &&
    test -f '$I/usr/local/lib/libivshm.a' &&
    test -f '$I/usr/local/include/ivshm.h' &&
    test -f '$I/usr/local/lib/pkgconfig/libivshm.pc' &&
    test -x '$I/usr/local/bin/ivctl' &&
    test -f '$I/usr/local/share/man/man3/libivshm.3' &&
    test -f '$I/usr/local/share/man/man8/ivctl.8'" ||
    show "make install" "$T/install.out"
flags=$(PKG_CONFIG_SYSROOT_DIR=$I \
    PKG_CONFIG_LIBDIR=$I/usr/local/lib/pkgconfig \
    pkg-config --cflags --libs libivshm 2>&1)
# shellcheck disable=SC2086
check "and the example builds with pkg-config's flags for it ($flags)" \
    ${CC:-cc} -std=c99 -Wall -Werror ${CFLAGS:-} ${LDFLAGS:-} \
    -o "$T/pong2" "$T/pong.c" $flags
region=$(awk '$1 == "ril" { print $1, $5 }' "$D/n")
nregions=$(grep -c '^[a-z0-9_]* *0x' "$D/n")
# shellcheck disable=SC2086
tally -p host "host: ivctltest" env TMPDIR="$D" ./ivctltest -c "$IVCTL" \
    -Q "$QEMU" -q "$D/q" -s "$D/c" -n "$nregions" -x "$T/pong" $region ||
    show ivserver "$D/server.log"
check "host: ivserver still runs" alive "$SERVERPID"
rc 0 "host: ivctl status after the VMs" "$IVCTL" -s "$D/c" status
has "host: status: no VM after the last was killed" "vm detached"
has "host: status: 4 attaches and detaches, generation 4" "generation 4"
has "host: status: no watcher left" "watchers 0"
stop_server

# --- a watcher counts against -c ---------------------------------------

D=$T/c1
mkdir "$D" || exit 1
check "-c 1: ivserver starts" start_server "$D" -c 1 || finish
"$IVCTL" -s "$D/c" watch >"$D/watch.out" 2>&1 &
W=$!
at_exit "kill $W 2>/dev/null"
check "-c 1: a watcher is served" wait_for grep -q '^state' "$D/watch.out"
"$IVCTL" -s "$D/c" status >"$D/status.out" 2>&1 &
ST=$!
check "-c 1: a second client connects" wait_for conns_are "$D/c" 2
check "-c 1: and waits in the queue while the watcher holds the place" \
    test ! -s "$D/status.out"
kill "$W"
await_pid "$ST"
check "-c 1: it is served once the watcher goes (exit $?)" \
    grep -qx 'vm detached' "$D/status.out"
stop_server

# --- peer mode --------------------------------------------------------

D=$T/peer
mkdir "$D" || exit 1
check "peer: ivserver -P 2 starts" start_server_cmd "$D/server.log" \
    "$D/q" "$IVSERVER" -d -P 2 -l 4M -q "$D/q" || finish
tally -p peer "peer: ivctltest" env TMPDIR="$D" ./ivctltest -P \
    -c "$IVCTL" -Q "$QEMU" -q "$D/q" -n 2 || show ivserver "$D/server.log"
check "peer: ivserver still runs" alive "$SERVERPID"
stop_server

finish
