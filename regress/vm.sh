#!/bin/sh
#
# vm.sh: check ivserver from the guest side with vmtest and real QEMU,
# on the example layout and on a window larger than 4G.  Prints one
# "ok - ..." or "not ok - ..." line per check on stdout, details on
# stderr, and exits 1 if any check failed.
#
# Environment: IVSERVER (../ivserver), LAYOUT (../conf/layout.json),
# QEMU (qemu-system-x86_64).

cd "$(dirname "$0")" || exit 1
IVSERVER=${IVSERVER:-../ivserver}
LAYOUT=${LAYOUT:-../conf/layout.json}
QEMU=${QEMU:-qemu-system-x86_64}

dir=$(mktemp -d "${TMPDIR:-/tmp}/vm.XXXXXXXX") || exit 1
server=
failed=0
# shellcheck disable=SC2317
cleanup() {
	if [ -n "$server" ]; then
		kill "$server" 2>/dev/null
		wait "$server" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

check() {
	if [ "$1" -eq 0 ]; then
		echo "ok - $2"
	else
		echo "not ok - $2"
		failed=1
	fi
}

# run TAG LAYOUT: a server on LAYOUT, every region checked from QEMU.
run() {
	tag=$1 layout=$2
	d=$dir/$tag
	mkdir "$d" || exit 1

	"$IVSERVER" -n -f "$layout" >"$d/table" 2>"$d/n.err"
	regions=$(awk '$1 != "name" && $1 != "total" { print $1 }' \
	    "$d/table")
	[ -n "$regions" ]
	check $? "$tag: ivserver -n lists the regions of ${layout##*/}"
	if [ -z "$regions" ]; then
		sed 's|^|# ivserver -n: |' "$d/n.err" >&2
		return
	fi

	"$IVSERVER" -d -f "$layout" -q "$d/qemu.sock" -s "$d/client.sock" \
	    2>"$d/server.log" &
	server=$!

	# vmtest waits for the client socket to appear.
	# shellcheck disable=SC2086
	TMPDIR=$d ./vmtest -Q "$QEMU" -q "$d/qemu.sock" \
	    -s "$d/client.sock" $regions >"$d/vm.out" 2>"$d/vm.err"
	rc=$?
	sed -n "s/^\(not \)\{0,1\}ok - /&$tag: /p" "$d/vm.out"
	if grep -q '^not ok - ' "$d/vm.out"; then
		failed=1
	elif [ "$rc" -ne 0 ]; then
		check 1 "$tag: vmtest exits 0 (it exited $rc)"
	fi
	if [ "$rc" -ne 0 ]; then
		sed 's|^|# vmtest: |' "$d/vm.err" >&2
		sed 's|^|# ivserver: |' "$d/server.log" >&2
	fi

	kill -0 "$server" 2>/dev/null
	check $? "$tag: ivserver still runs after the VM tests"
	kill "$server" 2>/dev/null
	wait "$server" 2>/dev/null
	server=
}

command -v "$QEMU" >/dev/null 2>&1
check $? "$QEMU is installed"
[ $failed -eq 0 ] || exit 1

run conf "$LAYOUT"

# A 32G window: BAR2 lies above 4G and needs both halves of the BAR.
cat >"$dir/big.json" <<EOF
{"regions": [{"name": "first", "size": "4K"},
    {"name": "big", "size": "16G"}, {"name": "last", "size": "4K"}]}
EOF
run big "$dir/big.json"

exit $failed
