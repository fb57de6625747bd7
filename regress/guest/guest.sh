#!/bin/sh
#
# guest.sh: the real-guest end-to-end test of ivserver.
#
#	sh guest.sh [test | bench]
#
# Boots a stock Debian kernel under TCG with a tiny static init (init.c)
# against a running ivserver, while one host client (host.c) answers
# the guest on every region.  "test" (the default) boots the guest three
# times with the same host client: twice with real MSI-X interrupts
# through vfio-pci and an emulated IOMMU, once polling the MSI-X
# pending bits.  "bench" measures the round trip guest ring -> host
# answer -> guest interrupted, on both paths.
#
# Prints "ok - ..." or "not ok - ..." per check, the guest's console on
# a failure, and exits 1 if any check failed.
#
# The kernel is whatever linux-image-<arch> depends on today, fetched
# with apt-get download into cache/ once and reused from there.
#
# Environment: IVSERVER (../../ivserver), LAYOUT (../../conf/layout.json),
# GUEST_ARCH (x86_64, plus aarch64 when its QEMU and cross compiler are
# installed), ROUNDS (1000, for bench), QEMU_TIMEOUT (180 s per boot).

# Paths from the environment are the caller's.
abspath() {
	case $1 in
	/*)	echo "$1" ;;
	*)	echo "$(pwd)/$1" ;;
	esac
}
[ -n "${IVSERVER:-}" ] && IVSERVER=$(abspath "$IVSERVER")
[ -n "${LAYOUT:-}" ] && LAYOUT=$(abspath "$LAYOUT")
cd "$(dirname "$0")" || exit 1
here=$(pwd)
IVSERVER=${IVSERVER:-$here/../../ivserver}
LAYOUT=${LAYOUT:-$here/../../conf/layout.json}
ROUNDS=${ROUNDS:-1000}
QEMU_TIMEOUT=${QEMU_TIMEOUT:-180}
CACHE=$here/cache
OBJ=$here/obj
mode=${1:-test}

case $mode in
test|bench)	;;
*)	echo "usage: sh guest.sh [test | bench]" >&2; exit 2 ;;
esac

if [ -z "${GUEST_ARCH:-}" ]; then
	GUEST_ARCH=x86_64
	if command -v qemu-system-aarch64 >/dev/null 2>&1 &&
	    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
		GUEST_ARCH="$GUEST_ARCH aarch64"
	else
		echo "# aarch64 not run: install qemu-system-arm," \
		    "gcc-aarch64-linux-gnu and libc6-dev-arm64-cross"
	fi
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/guest.XXXXXXXX") || exit 1
server=
host=
failed=0
# shellcheck disable=SC2317
cleanup() {
	for p in $host $server; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

check() {
	if [ "$1" -eq 0 ]; then
		echo "ok - $2"
		return 0
	fi
	echo "not ok - $2"
	failed=1
	return 1
}

# wait_for command: up to 10 s.
wait_for() {
	_i=0
	while ! "$@"; do
		_i=$((_i + 1))
		[ $_i -gt 200 ] && return 1
		sleep 0.05
	done
}

now() {
	date +%s.%N
}

elapsed() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'
}

# Build the host client for this machine.
build_host() {
	mkdir -p "$OBJ" || return 1
	# shellcheck disable=SC2046
	${CC:-cc} -std=c99 -D_GNU_SOURCE -O2 -Wall -Wextra \
	    $(pkg-config --cflags libbsd-overlay) -I../.. -o "$OBJ/host" \
	    host.c ../ivclient.c $(pkg-config --libs libbsd-overlay) \
	    2>"$dir/host.cc"
}

# build_init CC OUT: static, so that the initramfs needs no libc.
# glibc rather than musl: musl-gcc does not see <linux/vfio.h>.
build_init() {
	"$1" -std=c99 -D_GNU_SOURCE -O2 -Wall -Wextra -static -s \
	    -o "$2" init.c 2>"$dir/init.cc"
}

# fetch_kernel DEBARCH: set kdir to an extracted kernel package in
# the cache.  The package name carries an ABI number that changes with
# every security update, so ask the metapackage which one it is today;
# with no answer (offline), take the newest one already in the cache.
fetch_kernel() {
	_arch=$1
	_c=$CACHE/$_arch
	mkdir -p "$_c" || return 1
	_apt=
	if [ "$_arch" != "$(dpkg --print-architecture)" ]; then
		apt_foreign "$_arch" || return 1
		_apt="-c $CACHE/apt-$_arch/apt.conf"
	fi
	# shellcheck disable=SC2086
	_pkg=$(apt-cache $_apt depends "linux-image-$_arch" 2>/dev/null |
	    awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
	if [ -n "$_pkg" ] && ! ls -d "$_c/${_pkg}_"*/boot >/dev/null 2>&1
	then
		echo "# fetching $_pkg" >&2
		rm -f "$_c"/*.deb
		# shellcheck disable=SC2086
		(cd "$_c" && apt-get $_apt download -q "$_pkg") \
		    >"$dir/apt.log" 2>&1 || { cat "$dir/apt.log" >&2; return 1; }
		_deb=$(ls "$_c/${_pkg}_"*.deb) || return 1
		_x=${_deb%.deb}
		rm -rf "$_x.tmp"
		dpkg-deb -x "$_deb" "$_x.tmp" || return 1
		# Keep the kernel and the modules the guest loads: 0.4 GB less.
		_m=$(ls -d "$_x.tmp"/lib/modules/*) || return 1
		mkdir -p "$_x.keep/boot" "$_x.keep/modules"
		mv "$_x.tmp"/boot/vmlinuz-* "$_x.keep/boot/" || return 1
		for _ko in $MODULES; do
			[ -f "$_m/kernel/$_ko" ] &&
			    mv "$_m/kernel/$_ko" "$_x.keep/modules/"
		done
		rm -rf "$_x.tmp" "$_deb"
		mv "$_x.keep" "$_x" || return 1
	fi
	# shellcheck disable=SC2012
	kdir=$(ls -d "$_c"/linux-image-*/boot 2>/dev/null | sort -V | tail -n 1)
	[ -n "$kdir" ] || { echo "# no kernel for $_arch" >&2; return 1; }
	kdir=${kdir%/boot}
}

# apt_foreign DEBARCH: a private APT state for another architecture,
# so that the host's dpkg architecture list stays as it is.
apt_foreign() {
	_a=$CACHE/apt-$1
	if [ ! -f "$_a/apt.conf" ]; then
		mkdir -p "$_a/lists/partial" "$_a/cache/archives/partial" ||
		    return 1
		cat >"$_a/apt.conf" <<EOF
APT::Architecture "$1";
APT::Architectures { "$1"; };
Dir::State "$_a";
Dir::State::Lists "$_a/lists";
Dir::State::status "$_a/status";
Dir::Cache "$_a/cache";
EOF
		: >"$_a/status"
	fi
	# Refresh at most once a day.
	if [ -z "$(find "$_a/lists" -name '*Packages*' -mtime -1 2>/dev/null)" ]
	then
		apt-get -c "$_a/apt.conf" update -qq >"$dir/apt.log" 2>&1 ||
		    { cat "$dir/apt.log" >&2; return 1; }
	fi
}

# pvh_kernel VMLINUZ OUT: the ELF inside an x86 bzImage.  QEMU boots it
# through its PVH note and TCG skips the xz decompression, half the
# boot.  Falls back to the bzImage when that fails.
pvh_kernel() {
	[ -f "$2" ] && return 0
	_off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$1" 2>/dev/null |
	    head -n 1 | cut -d: -f1)
	[ -n "$_off" ] || return 1
	tail -c +"$((_off + 1))" "$1" | xz -dcq --single-stream >"$2.tmp" \
	    2>/dev/null
	if [ "$(head -c 4 "$2.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]
	then
		mv "$2.tmp" "$2"
	else
		rm -f "$2.tmp"
		return 1
	fi
}

# initrd OUT INIT: the init and the vfio modules in load order.
initrd() {
	_r=$dir/root.$$
	rm -rf "$_r"
	mkdir -p "$_r/lib/modules" || return 1
	cp "$2" "$_r/init" || return 1
	: >"$_r/lib/modules/order"
	for _ko in $MODULES; do
		_b=${_ko##*/}
		if [ -f "$kdir/modules/$_b" ]; then
			cp "$kdir/modules/$_b" "$_r/lib/modules/"
			echo "$_b" >>"$_r/lib/modules/order"
		fi
	done
	(cd "$_r" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) \
	    >"$1" || return 1
	rm -rf "$_r"
}

# setup_arch ARCH: kernel, initramfs and QEMU command for one guest.
setup_arch() {
	case $1 in
	x86_64)
		debarch=amd64
		qemu="qemu-system-x86_64"
		cross=${CC:-cc}
		MODULES="virt/lib/irqbypass.ko drivers/vfio/vfio.ko
		    drivers/vfio/vfio_iommu_type1.ko drivers/vfio/vfio_virqfd.ko
		    drivers/vfio/pci/vfio-pci-core.ko drivers/vfio/pci/vfio-pci.ko"
		machine="-M q35 -device intel-iommu
		    -device isa-debug-exit,iobase=0xf4,iosize=0x04"
		append="console=ttyS0 intel_iommu=on"
		# isa-debug-exit: 0 -> 1 (pass), 1 -> 3 (fail).
		passrc=1
		;;
	aarch64)
		debarch=arm64
		qemu="qemu-system-aarch64"
		cross=aarch64-linux-gnu-gcc
		MODULES="drivers/vfio/vfio.ko drivers/vfio/vfio_iommu_type1.ko
		    drivers/vfio/vfio_virqfd.ko drivers/vfio/pci/vfio-pci-core.ko
		    drivers/vfio/pci/vfio-pci.ko"
		# GICv3: with GICv2m vfio refuses the IOMMU (no MSI isolation).
		machine="-M virt,gic-version=3,iommu=smmuv3 -cpu max"
		append="console=ttyAMA0"
		# PSCI power-off: QEMU exits 0 whatever the result.
		passrc=0
		;;
	*)
		echo "# unknown GUEST_ARCH $1" >&2
		return 1
		;;
	esac
	command -v "$qemu" >/dev/null 2>&1 || { echo "# no $qemu" >&2;
	    return 1; }
	fetch_kernel "$debarch" || return 1
	kernel=$(ls "$kdir"/boot/vmlinuz-*)
	if [ "$1" = x86_64 ] && pvh_kernel "$kernel" "$kdir/boot/vmlinux"
	then
		kernel=$kdir/boot/vmlinux
	fi
	build_init "$cross" "$OBJ/init-$1" ||
	    { sed 's/^/# cc: /' "$dir/init.cc" >&2; return 1; }
	initrd "$OBJ/initrd-$1.cpio" "$OBJ/init-$1"
}

# start_server ARCH: ivserver and the host client on its socket.
start_server() {
	d=$dir/$1
	mkdir -p "$d" || return 1
	"$IVSERVER" -d -f "$LAYOUT" -q "$d/q" -s "$d/c" 2>"$d/server.log" &
	server=$!
	wait_for test -S "$d/c" || { sed 's/^/# ivserver: /' \
	    "$d/server.log" >&2; return 1; }
}

# boot ARCH N APPEND: one guest boot, its console in $d/console.N.
boot() {
	_n=$2
	# shellcheck disable=SC2086
	timeout -k 5 "$QEMU_TIMEOUT" "$qemu" $machine -accel tcg -m 256 \
	    -smp 1 -display none -monitor none -serial stdio -no-reboot \
	    -kernel "$kernel" -initrd "$OBJ/initrd-$1.cpio" \
	    -append "$append quiet panic=-1 ivtest.boot=$_n $3" \
	    -chardev socket,path="$d/q",id=iv \
	    -device ivshmem-doorbell,chardev=iv,vectors="$nvec" \
	    </dev/null >"$d/raw.$_n" 2>&1
	_rc=$?
	# The serial line ends lines with CR LF.
	tr -d '\r' <"$d/raw.$_n" >"$d/console.$_n"
	return $_rc
}

# stop_host: the host client exits by itself once it has every ring it
# waits for; after failed boots it would wait out its timeout instead,
# so give it 5 s and then tell it to report what it has.
stop_host() {
	_i=0
	while kill -0 "$host" 2>/dev/null && [ $_i -lt 100 ]; do
		_i=$((_i + 1))
		sleep 0.05
	done
	kill "$host" 2>/dev/null
	wait "$host"
	_rc=$?
	host=
	return $_rc
}

# A guest's result: QEMU's exit status and its RESULT line.
guest_passed() {
	[ "$1" -eq "$passrc" ] &&
	    grep -q '^IVGUEST RESULT pass' "$d/console.$2"
}

show_console() {
	sed "s/^/# console: /" "$d/console.$1" >&2
}

# run_test ARCH: boots 1 and 2 with vfio, 3 polling, one host client.
run_test() {
	start_server "$1" || { check 1 "$1: ivserver starts"; return; }
	# shellcheck disable=SC2086
	"$OBJ/host" -s "$d/c" -b 3 -t "$QEMU_TIMEOUT" $regions \
	    >"$d/host.out" 2>"$d/host.err" &
	host=$!
	wait_for grep -q '^ready$' "$d/host.out"
	check $? "$1: the host client holds every region"

	for n in 1 2 3; do
		extra='' want=vfio-msix
		[ "$n" -eq 3 ] && extra=ivtest.irq=pba want=pba
		b0=$(now)
		boot "$1" "$n" "$extra"
		rc=$?
		b1=$(now)
		bad=0
		guest_passed "$rc" "$n"
		check $? "$1: boot $n: the guest rang every region and got \
the host's answers (qemu exit $rc, $(elapsed "$b0" "$b1") s)" || bad=1
		grep -q "^IVGUEST RESULT pass.* irq=$want " "$d/console.$n"
		check $? "$1: boot $n: the answers came by $want" || bad=1
		# What the guest read in the header against the socket.
		sed -n 's/^IVGUEST region //p' "$d/console.$n" >"$d/guest.$n"
		sed -n 's/^socket //p' "$d/host.out" >"$d/socket"
		cmp -s "$d/guest.$n" "$d/socket"
		check $? "$1: boot $n: the guest found the socket's offsets \
and vectors in the header" || bad=1
		if [ "$bad" -ne 0 ]; then
			show_console "$n"
			diff "$d/socket" "$d/guest.$n" | sed 's/^/# diff: /' >&2
		fi
		sed -n 's/^IVGUEST RESULT /# /p' "$d/console.$n"
	done

	stop_host
	rc=$?
	sed -n 's/^\(not \)\{0,1\}ok - /&'"$1"': /p' "$d/host.out"
	grep -q '^not ok' "$d/host.out" && failed=1
	check "$rc" "$1: the host client exits 0 after the three boots"
	[ "$rc" -eq 0 ] || sed 's/^/# host: /' "$d/host.err" >&2

	kill -0 "$server" 2>/dev/null
	check $? "$1: ivserver still runs after three guests"
	kill "$server" 2>/dev/null
	wait "$server" 2>/dev/null
	server=
}

# run_bench ARCH: the round trip, with vfio and then polling.
run_bench() {
	start_server "$1" || { check 1 "$1: ivserver starts"; return; }
	first=${regions%% *}
	"$OBJ/host" -s "$d/c" -b 2 -n "$((ROUNDS * 2))" \
	    -t "$QEMU_TIMEOUT" "$first" >"$d/host.out" 2>"$d/host.err" &
	host=$!
	wait_for grep -q '^ready$' "$d/host.out"
	check $? "$1: the host client holds $first"
	for n in 1 2; do
		extra="ivtest.mode=bench ivtest.rounds=$ROUNDS"
		[ "$n" -eq 2 ] && extra="$extra ivtest.irq=pba"
		boot "$1" "$n" "$extra"
		rc=$?
		guest_passed "$rc" "$n"
		check $? "$1: bench boot $n (qemu exit $rc)" ||
		    show_console "$n"
		sed -n "s/^IVGUEST bench /# $1: round trip /p" "$d/console.$n"
	done
	stop_host
	check $? "$1: the host client answered $((ROUNDS * 2)) rings"
	kill "$server" 2>/dev/null
	wait "$server" 2>/dev/null
	server=
}

command -v timeout >/dev/null 2>&1 && command -v cpio >/dev/null 2>&1
check $? "timeout and cpio are installed"
build_host
check $? "the host client builds" || sed 's/^/# cc: /' "$dir/host.cc" >&2
"$IVSERVER" -n -f "$LAYOUT" >"$dir/table" 2>"$dir/table.err"
regions=$(awk '$1 != "name" && $1 != "total" { printf "%s ", $1 }' \
    "$dir/table")
nvec=$(awk '$1 != "name" && $1 != "total"' "$dir/table" | wc -l)
[ -n "$regions" ]
check $? "ivserver -n lists the regions of ${LAYOUT##*/}" ||
    sed 's/^/# /' "$dir/table.err" >&2
[ "$failed" -eq 0 ] || exit 1

for arch in $GUEST_ARCH; do
	t0=$(now)
	setup_arch "$arch"
	check $? "$arch: kernel $(basename "${kdir:-none}"), init and \
initramfs ready ($(elapsed "$t0" "$(now)") s)" || continue
	t0=$(now)
	if [ "$mode" = bench ]; then
		run_bench "$arch"
	else
		run_test "$arch"
	fi
	echo "# $arch: $(elapsed "$t0" "$(now)") s for the $mode"
done

exit $failed
