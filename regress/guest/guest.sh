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
# Prints "ok - ..." or "not ok - ..." per check and the guest's console
# on a failure.
#
# The kernel is whatever linux-image-<arch> depends on today, fetched
# with apt-get download into cache/ once and reused from there.
#
# Environment: LAYOUT (../../conf/layout.json), GUEST_ARCH (x86_64, plus
# aarch64 when its QEMU and cross compiler are installed), ROUNDS (1000,
# for bench), QEMU_TIMEOUT (180 s per boot), and those of lib.sh.

mode=${1:-test}
case $mode in
test|bench)	;;
*)	echo "usage: sh guest.sh [test | bench]" >&2; exit 2 ;;
esac

REGRESS=$(cd "$(dirname "$0")/.." && pwd -P) && . "$REGRESS/lib.sh"
cd guest || exit 1
here=$REGRESS/guest
LAYOUT=${LAYOUT:-$REGRESS/../conf/layout.json}
ROUNDS=${ROUNDS:-1000}
QEMU_TIMEOUT=${QEMU_TIMEOUT:-180}
CACHE=$here/cache
OBJ=$here/obj

if [ -z "${GUEST_ARCH:-}" ]; then
	GUEST_ARCH=x86_64
	if have qemu-system-aarch64 && have aarch64-linux-gnu-gcc; then
		GUEST_ARCH="$GUEST_ARCH aarch64"
	else
		echo "# aarch64 not run: install qemu-system-arm," \
		    "gcc-aarch64-linux-gnu and libc6-dev-arm64-cross"
	fi
fi

host=
at_exit 'stop_host 1 >/dev/null 2>&1'

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
	    host.c ../ivclient.c ../lib.c $(pkg-config --libs libbsd-overlay) \
	    2>"$T/host.cc"
}

# build_init CC OUT: static, so that the initramfs needs no libc.
# glibc rather than musl: musl-gcc does not see <linux/vfio.h>.
build_init() {
	"$1" -std=c99 -D_GNU_SOURCE -O2 -Wall -Wextra -static -s \
	    -o "$2" init.c 2>"$T/init.cc"
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
		    >"$T/apt.out" 2>&1 || { cat "$T/apt.out" >&2; return 1; }
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
		apt-get -c "$_a/apt.conf" update -qq >"$T/apt.out" 2>&1 ||
		    { cat "$T/apt.out" >&2; return 1; }
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
	_r=$T/root.$$
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
	    { sed 's/^/# cc: /' "$T/init.cc" >&2; return 1; }
	initrd "$OBJ/initrd-$1.cpio" "$OBJ/init-$1"
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

# stop_host passed: the host client exits by itself once it has every
# ring it waits for, which it has when every boot passed (passed 0);
# after a failed boot it would wait out its timeout instead, so tell it
# at once to report what it has.  Its exit status.
stop_host() {
	[ -n "$host" ] || return 0
	[ "$1" -eq 0 ] && wait_for gone "$host"
	stop_pid "$host"
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
	show console "$d/console.$1"
}

# start ARCH: ivserver and the host client on its socket, with
# host options; fails when either is not there.
start() {
	_arch=$1
	shift
	d=$T/$_arch
	check "$_arch: ivserver starts" start_server "$d" -f "$LAYOUT" ||
	    return 1
	"$OBJ/host" -s "$d/c" -t "$QEMU_TIMEOUT" "$@" >"$d/host.out" \
	    2>"$d/host.err" &
	host=$!
}

# run_test ARCH: boots 1 and 2 with vfio, 3 polling, one host client.
run_test() {
	# shellcheck disable=SC2086
	start "$1" -b 3 $regions || return
	check "$1: the host client holds every region" \
	    logged '^ready$' "$d/host.out"

	allgood=0
	for n in 1 2 3; do
		extra='' want=vfio-msix
		[ "$n" -eq 3 ] && extra=ivtest.irq=pba want=pba
		b0=$(now)
		boot "$1" "$n" "$extra"
		rc=$?
		b1=$(now)
		bad=0
		check "$1: boot $n: the guest rang every region and got \
the host's answers (qemu exit $rc, $(elapsed "$b0" "$b1") s)" \
		    guest_passed "$rc" "$n" || bad=1
		check "$1: boot $n: the answers came by $want" grep -q \
		    "^IVGUEST RESULT pass.* irq=$want " "$d/console.$n" ||
		    bad=1
		# What the guest read in the header against the socket.
		sed -n 's/^IVGUEST region //p' "$d/console.$n" >"$d/guest.$n"
		sed -n 's/^socket //p' "$d/host.out" >"$d/socket"
		check "$1: boot $n: the guest found the socket's offsets \
and vectors in the header" cmp -s "$d/guest.$n" "$d/socket" || bad=1
		if [ "$bad" -ne 0 ]; then
			allgood=1
			show_console "$n"
			diff "$d/socket" "$d/guest.$n" | sed 's/^/# diff: /' >&2
		fi
		sed -n 's/^IVGUEST RESULT /# /p' "$d/console.$n"
	done

	stop_host "$allgood"
	rc=$?
	tally -p "$1" "$1: the host client's report" \
	    grep '^\(not \)\{0,1\}ok - ' "$d/host.out"
	check "$1: the host client exits 0 after the three boots" \
	    test "$rc" -eq 0 || show host "$d/host.err"
	check "$1: ivserver still runs after three guests" alive "$SERVERPID"
	stop_server
}

# run_bench ARCH: the round trip, with vfio and then polling.
run_bench() {
	first=${regions%% *}
	start "$1" -b 2 -n "$((ROUNDS * 2))" "$first" || return
	check "$1: the host client holds $first" logged '^ready$' "$d/host.out"
	allgood=0
	for n in 1 2; do
		extra="ivtest.mode=bench ivtest.rounds=$ROUNDS"
		[ "$n" -eq 2 ] && extra="$extra ivtest.irq=pba"
		boot "$1" "$n" "$extra"
		rc=$?
		check "$1: bench boot $n (qemu exit $rc)" \
		    guest_passed "$rc" "$n" || { allgood=1; show_console "$n"; }
		sed -n "s/^IVGUEST bench /# $1: round trip /p" "$d/console.$n"
	done
	check "$1: the host client answered $((ROUNDS * 2)) rings" \
	    stop_host "$allgood"
	stop_server
}

check "timeout and cpio are installed" eval 'have timeout && have cpio'
check "the host client builds" build_host || show cc "$T/host.cc"
"$IVSERVER" -n -f "$LAYOUT" >"$T/table" 2>"$T/table.err"
regions=$(awk '$1 == "total" { exit } $1 != "name" { printf "%s ", $1 }' \
    "$T/table")
nvec=$(awk '$1 == "total" { exit } $1 != "name"' "$T/table" | wc -l)
check "ivserver -n lists the regions of ${LAYOUT##*/}" test -n "$regions" ||
    show "ivserver -n" "$T/table.err"
[ "$FAIL" -eq 0 ] || finish

for arch in $GUEST_ARCH; do
	t0=$(now)
	setup_arch "$arch"
	rc=$?
	check "$arch: kernel $(basename "${kdir:-none}"), init and \
initramfs ready ($(elapsed "$t0" "$(now)") s)" test $rc -eq 0 || continue
	t0=$(now)
	if [ "$mode" = bench ]; then
		run_bench "$arch"
	else
		run_test "$arch"
	fi
	echo "# $arch: $(elapsed "$t0" "$(now)") s for the $mode"
done

finish
