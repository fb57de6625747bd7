#!/bin/sh
#
# vm.sh: ivserver from the guest side with vmtest and real QEMU, on the
# example layout and on a window larger than 4G.
#
# Environment: LAYOUT (../conf/layout.json), and those of lib.sh.

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"
LAYOUT=${LAYOUT:-$REGRESS/../conf/layout.json}

# vm tag layout: a server on layout, every region checked from QEMU.
vm() {
	_d=$T/$1
	mkdir "$_d" || return 1
	"$IVSERVER" -n -f "$2" >"$_d/table" 2>"$_d/n.err"
	_regions=$(awk '$1 == "total" { exit } $1 != "name" { print $1 }' \
	    "$_d/table")
	if ! check "$1: ivserver -n lists the regions of ${2##*/}" \
	    test -n "$_regions"; then
		show "ivserver -n" "$_d/n.err"
		return 1
	fi
	start_server "$_d" -f "$2"
	# shellcheck disable=SC2086
	tally -p "$1" "$1: vmtest" env TMPDIR="$_d" ./vmtest -Q "$QEMU" \
	    -q "$_d/q" -s "$_d/c" $_regions || show ivserver "$_d/server.log"
	check "$1: ivserver still runs after the VM tests" alive "$SERVERPID"
	stop_server
}

check "$QEMU is installed" have "$QEMU" || finish

vm conf "$LAYOUT"

# A 32G window: BAR2 lies above 4G and needs both halves of the BAR.
cat >"$T/big.json" <<EOT
{"regions": [{"name": "first", "size": "4K"},
    {"name": "big", "size": "16G"}, {"name": "last", "size": "4K"}]}
EOT
vm big "$T/big.json"

finish
