#!/bin/sh
#
# package.sh: the Debian package as a user gets it.  Built from a copy
# of the tree with dpkg-buildpackage, checked by lintian, installed
# with dpkg -i: the system user and group, the installed ivserver on
# the packaged example, serving as _ivserver, the units through
# systemd-analyze verify; then purged, leaving nothing behind.  Run as
# root on a machine where ivserver is not installed; otherwise the
# install is skipped (it would replace what the machine has).

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"

TOP=$(cd .. && pwd -P)
EX=/usr/share/doc/ivserver/examples
UNITDIR=/lib/systemd/system

if ! have dpkg-buildpackage || ! have dh || ! have lintian; then
	skip "package: dpkg-buildpackage, debhelper or lintian not installed"
	finish
fi

# --- the build ----------------------------------------------------------

# A copy, so that the build's clean and its files next to the source
# touch nothing of the tree.
mkdir "$T/src" || exit 1
(cd "$TOP" && tar cf - --exclude=./.git --exclude=./regress/guest/cache \
    --exclude=./debian/ivserver --exclude='./regress/fuzz/work-*' \
    --exclude='./regress/fuzz/crash-*' --exclude='*.o' .) |
    tar xf - -C "$T/src"
(cd "$T/src" && make clean >/dev/null 2>&1)
check "dpkg-buildpackage -us -uc -b builds the package" sh -c \
    "cd '$T/src' && dpkg-buildpackage -us -uc -b >'$T/build.log' 2>&1" ||
    { sed -n '$p' "$T/build.log" | show build /dev/stdin; finish; }
DEB=$(ls "$T"/ivserver_*.deb)
CHANGES=$(ls "$T"/ivserver_*.changes)

lintian --display-level '>=warning' "$CHANGES" >"$T/lintian" 2>&1
sed -e '/^running with root privileges/d' "$T/lintian" | sed 's/^/# /'
check "lintian: no error and no warning" sh -c \
    "! grep -q '^[EW]: ' '$T/lintian'"

# Every file make install puts under /usr and /lib is in the package:
# a new one lands there without an edit of debian/.
make -C "$T/src" install DESTDIR="$T/mi" PREFIX=/usr \
    EXDIR="$EX" SYSTEMDUNITDIR="$UNITDIR" \
    LIBDIR="/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)" \
    >/dev/null 2>&1
(cd "$T/mi" && find . ! -type d) | sed -e 's|^\.||' \
    -e 's|^\(/usr/share/man/.*\)|\1.gz|' | sort >"$T/mi.list"
dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\.||' |
    sort >"$T/deb.list"
all_packaged() {
	comm -23 "$T/mi.list" "$T/deb.list" >"$T/missing"
	sed 's/^/# missing: /' "$T/missing"
	[ -s "$T/mi.list" ] && [ ! -s "$T/missing" ]
}
check "the package holds every file of make install ($(wc -l \
    <"$T/mi.list") files)" all_packaged

# --- install ------------------------------------------------------------

if [ "$(id -u)" -ne 0 ]; then
	skip "package: install and purge need root"
	finish
fi
if dpkg -s ivserver >/dev/null 2>&1 || getent passwd _ivserver \
    >/dev/null || getent group ivserver >/dev/null; then
	skip "package: ivserver, _ivserver or group ivserver is on this \
machine already: install and purge would replace it"
	finish
fi
# What the purge must leave as it was.
RUNDIR_BEFORE=$([ -e /run/ivserver ] && echo yes)
[ -x "$IVSERVER" ] || make -C .. >/dev/null 2>&1
make ivclient >/dev/null 2>&1
at_exit "dpkg --purge ivserver >/dev/null 2>&1"

check "dpkg -i installs it" sh -c "dpkg -i '$DEB' >'$T/dpkg.log' 2>&1" ||
    show dpkg "$T/dpkg.log"
check "the system user _ivserver exists, without a shell or a home" sh -c \
    "getent passwd _ivserver | grep -q ':/var/empty:/usr/sbin/nologin\$'"
check "the group ivserver exists" sh -c "getent group ivserver >/dev/null"
check "ivshmem-server is installed as a name of ivserver" test \
    "$(readlink /usr/sbin/ivshmem-server)" = ivserver
check "the manuals are installed" sh -c \
    "for m in man8/ivserver.8 man8/ivshmem-server.8 man5/ivserver.conf.5 \
    man5/ivshm.5 man8/ivctl.8 man3/libivshm.3; do [ -e /usr/share/man/\$m.gz ] || exit 1; done"
check "the public header is installed" test -f /usr/include/ivshm.h

# The installed ivserver -n on the packaged example: the table the
# tree's ivserver prints for conf/layout.json.
/usr/sbin/ivserver -n -f "$EX/layout.json" >"$T/n.out" 2>"$T/n.err"
"$IVSERVER" -n -f ../conf/layout.json | sed '/^$/,$d' >"$T/n.want"
check "installed ivserver -n on $EX/layout.json: the table" sh -c \
    "sed '/^\$/,\$d' '$T/n.out' | cmp -s - '$T/n.want'" ||
    show "ivserver -n" "$T/n.err"
check "and the <shmem> element for /run/ivserver/qemu.sock" grep -qx \
    "    <server path='/run/ivserver/qemu.sock'/>" "$T/n.out"

# Served by the installed daemon: the serving process runs as
# _ivserver, and no warning says it fell back to nobody.
IVUID=$(id -u _ivserver)
IVSERVER=/usr/sbin/ivserver
check "the installed ivserver serves the example" start_server "$T/s" \
    -f "$EX/layout.json" -g ivserver
check "its serving process runs as _ivserver (uid $IVUID)" sh -c \
    "awk '/^Uid:/ { exit \$2 != $IVUID }' /proc/$SERVERCHILD/status"
check "the sockets are of group ivserver, mode 0660" sh -c \
    "[ \"\$(stat -c %G:%a '$T/s/c')\" = ivserver:660 ]"
check "a host client is served" serves "$T/s"
# same_names: the installed ivctl lists the regions ivserver -n shows.
names() { awk '$1 == "total" { exit } NR > 1 { print $1 }'; }
same_names() {
	/usr/bin/ivctl -s "$T/s/c" list >"$T/ivctl.list" &&
	    /usr/sbin/ivserver -n -f "$EX/layout.json" >"$T/n.list" &&
	    names <"$T/n.list" >"$T/n.names" && test -s "$T/n.names" &&
	    names <"$T/ivctl.list" | diff "$T/n.names" -
}
check "the installed ivctl lists the regions of the installed example" \
    same_names
stop_server
check "no warning about nobody" sh -c \
    "! grep -q 'serving as nobody' '$T/s/server.log'"

# The units as installed, the manuals they name included.
verified() {
	systemd-analyze verify "$UNITDIR/ivserver@.service" \
	    "$UNITDIR/ivserver-peer@.service" >"$T/verify" 2>&1 &&
	    [ ! -s "$T/verify" ]
}
check "systemd-analyze verify: the installed units, nothing said" \
    verified || show verify "$T/verify"

# The peer unit's capability bounding set and NoNewPrivileges, the
# holds that could break the parent, as setpriv imposes them: a peer
# attaches, and SIGTERM stops the serving process, another user's.
CAPS=$(sed -n 's/^CapabilityBoundingSet=//p' \
    "$UNITDIR/ivserver-peer@.service" | tr 'A-Z ' 'a-z\n' |
    sed 's/^cap_/+/' | paste -sd, -)
make peer >/dev/null 2>&1
mkdir "$T/p" || exit 1
check "peer unit's capabilities ($CAPS) and no new privileges: \
ivserver -P 2 listens" start_server_cmd "$T/p/server.log" "$T/p/q" \
    setpriv --no-new-privs --bounding-set "-all,$CAPS" "$IVSERVER" -d \
    -P 2 -l 4M -q "$T/p/q" -g ivserver
check "and serves a peer" sh -c "./peer -s '$T/p/q' -n 2 -l 4194304 |
    grep -q '^id '"
stop_server
check "and exits 0 on SIGTERM (exit $?)" test $? -eq 0
check "having stopped its serving process, with no SIGKILL" sh -c \
    "grep -q 'server: received signal 15' '$T/p/server.log' &&
    ! grep -q 'SIGKILL' '$T/p/server.log'"

# --- purge --------------------------------------------------------------

dpkg -L ivserver | sort >"$T/installed"
check "dpkg --purge removes it" sh -c \
    "dpkg --purge ivserver >'$T/purge.log' 2>&1" || show dpkg "$T/purge.log"
check "dpkg knows it no more" sh -c \
    "! dpkg -s ivserver >/dev/null 2>&1"
check "no user _ivserver, no group _ivserver or ivserver" sh -c \
    "! getent passwd _ivserver && ! getent group _ivserver &&
    ! getent group ivserver"
# What is left of its files must belong to another package (/usr...).
nothing_left() {
	_left=0
	while read -r _f; do
		[ "$_f" = /. ] && continue
		if { [ -e "$_f" ] || [ -L "$_f" ]; } &&
		    ! dpkg -S "$_f" >/dev/null 2>&1; then
			echo "# left: $_f"
			_left=1
		fi
	done <"$T/installed"
	[ -s "$T/installed" ] && [ $_left -eq 0 ]
}
check "no file or directory of the package is left" nothing_left
if [ -z "$RUNDIR_BEFORE" ]; then
	check "no /run/ivserver" test ! -e /run/ivserver
fi

finish
