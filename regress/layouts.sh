#!/bin/sh
#
# layouts.sh: what ivserver says without serving: the golden output of
# -n for every layout file in layout/, the golden errors of the bad
# ones, the example configuration, option errors and the lint of every
# manual page.
#
#	sh layouts.sh [update]
#
# "update" rewrites the golden files instead.

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"
MODE=${1:-}

# golden file: ivserver -n -f file against file's .ok or, for a
# bad-*.json, its error against the .err; or rewrite them.  The table
# is compared, up to the blank line before the device lines, whose
# default path depends on who runs the test.
golden() {
	_b=${1%.json}
	"$IVSERVER" -n -f "$1" >"$T/full" 2>"$T/err"
	_rc=$?
	sed '/^$/,$d' "$T/full" >"$T/out"
	case $1 in
	*/bad-*)
		if [ "$MODE" = update ]; then
			cp "$T/err" "$_b.err"
			return 0
		fi
		[ $_rc -eq 1 ] && [ ! -s "$T/out" ] &&
		    diff -u "$_b.err" "$T/err"
		;;
	*)
		if [ "$MODE" = update ]; then
			cp "$T/out" "$_b.ok"
			return 0
		fi
		[ $_rc -eq 0 ] && [ ! -s "$T/err" ] && diff -u "$_b.ok" "$T/out"
		;;
	esac
}

for f in layout/*.json; do
	check "layout $f" golden "$f"
done
if [ "$MODE" = update ]; then
	echo "golden files updated"
	exit 0
fi

check "example conf/qemu.json is valid" sh -c \
    "'$IVSERVER' -n -Q ../conf/qemu.json >/dev/null"
for f in ../conf/layout*.json; do
	check "example $f is valid" sh -c "'$IVSERVER' -n -f '$f' >/dev/null"
done
"$IVSERVER" -n >"$T/builtin"
"$IVSERVER" -n -f ../conf/layout.json >"$T/file"
check "the built-in layout is conf/layout.json" cmp -s "$T/builtin" "$T/file"
check "no layout file: clear error" sh -c \
    "'$IVSERVER' -n -f /nonexistent 2>&1 | grep -q '/nonexistent: No such file'"
check "usage on a bad option" sh -c "'$IVSERVER' -Z 2>&1 | grep -q usage"

# The lines that attach a VM: libvirt's <shmem> and QEMU's options,
# with the socket path escaped for each and one vector per region.
"$IVSERVER" -n -q "/x/a,b&c'd" >"$T/dev"
check "-n: libvirt's <server path> of -q, escaped" grep -qx \
    "    <server path='/x/a,b&amp;c&apos;d'/>" "$T/dev"
check "-n: libvirt's <msi vectors>, one per region" grep -qx \
    "    <msi vectors='10'/>" "$T/dev"
check "-n: QEMU's options, commas doubled, quoted for a shell" grep -qxF \
    "  -chardev 'socket,path=/x/a,,b&c'\\''d,id=ivserver' -device ivshmem-doorbell,chardev=ivserver,vectors=10" \
    "$T/dev"
"$IVSERVER" -n -P 3 -q /x/p >"$T/pdev"
check "-n -P 3: vectors 3 in both" sh -c "grep -qx \"    <msi \
vectors='3'/>\" '$T/pdev' && grep -q 'ivshmem-doorbell,chardev=ivserver,\
vectors=3\$' '$T/pdev'"

# lint page: no warning from mandoc, which are shown.
lint() {
	mandoc -Tlint -Wwarning "$1" >"$T/lint" 2>&1
	_rc=$?
	sed 's/^/# /' "$T/lint"
	[ $_rc -eq 0 ] && [ ! -s "$T/lint" ]
}

for f in ../*.[0-9]; do
	check "mandoc -Tlint -Wwarning ${f#../}" lint "$f"
done

finish
