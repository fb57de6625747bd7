#!/bin/sh
#
# guest.sh: the real-guest end-to-end test of ivserver.
#
#	sh guest.sh [test | bench]
#
# Boots a stock Debian kernel under TCG with a tiny static init (init.c,
# a user of libivshm's guest half, built here for the guest) against a
# running ivserver, while one host client (host.c) answers the guest on
# every region.  "test" (the default) boots the guest three times with
# the same host client: twice with real MSI-X interrupts through
# vfio-pci and an emulated IOMMU, once on a VM without an IOMMU, where
# the library must say so and fall back to polling the MSI-X pending
# bits; every boot also runs ivctl -D.  A fourth boot runs the guest
# program of libivshm(3) against its host program.  "bench" measures the round trip guest ring -> host
# answer -> guest interrupted, on both paths, and prints the figures of
# bench-before (the test before libivshm) beside them.
#
# Prints "ok - ..." or "not ok - ..." per check and the guest's console
# on a failure.
#
# The kernel is whatever linux-image-<arch> depends on today, fetched
# with apt-get download into cache/ once and reused from there.
#
# Environment: LAYOUT (../../conf/layout.json), GUEST_ARCH (x86_64, plus
# aarch64 when its QEMU and cross compiler are installed), ROUNDS (1000,
# for bench), QEMU_TIMEOUT (180 s per boot), GUEST_CFLAGS (more flags for
# the guest programs, e.g. -fsanitize=undefined
# -fsanitize-undefined-trap-on-error) and those of lib.sh.

# Checks of more than one command go to eval in single quotes.
# shellcheck disable=SC2016

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
TOP=$(cd "$REGRESS/.." && pwd -P)
LIBSRC="$TOP/ivshm_dev.c $TOP/libivshm.c"

if [ -z "${GUEST_ARCH:-}" ]; then
	GUEST_ARCH=x86_64
	if have qemu-system-aarch64 && have aarch64-linux-gnu-gcc; then
		GUEST_ARCH="$GUEST_ARCH aarch64"
	else
		echo "# aarch64 not run: install qemu-system-arm," \
		    "gcc-aarch64-linux-gnu and libc6-dev-arm64-cross"
	fi
fi

host='' pong=''
at_exit 'stop_host 1 >/dev/null 2>&1; [ -z "$pong" ] || kill "$pong"'

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
	    host.c ../ivclient.c ../lib.c ../../libivshm.c ../../ivshm_host.c \
	    $(pkg-config --libs libbsd-overlay) \
	    2>"$T/host.cc"
}

# The guest library's refusals, tried on this machine: devtest.
build_devtest() {
	# shellcheck disable=SC2086
	${CC:-cc} -std=c99 -D_GNU_SOURCE -Wall -Wextra ${CFLAGS:--O2} \
	    ${LDFLAGS:-} -I"$TOP" -o "$OBJ/devtest" devtest.c $LIBSRC \
	    2>"$T/devtest.cc"
}

# refuses ADDR REASON: devtest fails on ADDR and says REASON.
refuses() {
	if "$OBJ/devtest" "$1" fallback >"$T/devtest.out" 2>&1 ||
	    ! grep -q "^error: $2" "$T/devtest.out"; then
		show devtest "$T/devtest.out"
		return 1
	fi
}

# examples: the guest program of libivshm(3) GUEST SIDE and the host
# program of its EXAMPLES, as a user would paste them, built against
# the installed header and library.
examples() {
	awk '/^\.Ss A guest program/ { g = 1 } g && /^\.Bd -literal/ {
	    p = 1; next } p && /^\.Ed/ { exit } p' "$TOP/libivshm.3" |
	    sed 's/\\e/\\/g' >"$OBJ/ping.c"
	awk '/^\.Sh EXAMPLES/ { e = 1 } e && /^\.Bd -literal/ { p = 1; next }
	    p && /^\.Ed/ { exit } p' "$TOP/libivshm.3" >"$OBJ/pong.c"
	_i=$T/inst
	check "make install puts the library and its header under DESTDIR" \
	    sh -c "cd '$TOP' && ${MAKE:-make} -s install DESTDIR='$_i' \
	    PREFIX=/usr/local >'$T/install.out' 2>&1" ||
	    show "make install" "$T/install.out"
	# CFLAGS and LDFLAGS: those the library was built with.
	# shellcheck disable=SC2086
	check "the guest program of libivshm(3) builds against them" \
	    ${CC:-cc} -std=c99 -Wall -Wextra -Werror ${CFLAGS:-} \
	    ${LDFLAGS:-} -I"$_i/usr/local/include" -o "$OBJ/ping" \
	    "$OBJ/ping.c" "$_i/usr/local/lib/libivshm.a"
	# shellcheck disable=SC2086
	check "and so does its host program" ${CC:-cc} -std=c99 -Wall \
	    -Wextra -Werror ${CFLAGS:-} ${LDFLAGS:-} \
	    -I"$_i/usr/local/include" -o "$OBJ/pong" "$OBJ/pong.c" \
	    "$_i/usr/local/lib/libivshm.a"
}

# vg_refuses ADDR: devtest refuses ADDR (status 1) with no error or
# leak under valgrind (status 9).
vg_refuses() {
	valgrind -q --error-exitcode=9 --leak-check=full \
	    --errors-for-leak-kinds=all "$OBJ/devtest" "$1" fallback \
	    >/dev/null 2>"$T/vg"
	[ $? -eq 1 ]
}

# The library on the host, which has PCI devices but no ivshmem one.
host_side() {
	check "the guest library builds for this machine" build_devtest ||
	    { show cc "$T/devtest.cc"; return; }
	_ivs='' _other=''
	for _p in /sys/bus/pci/devices/*; do
		[ -f "$_p/vendor" ] || continue
		if [ "$(cat "$_p/vendor"):$(cat "$_p/device")" = \
		    0x1af4:0x1110 ]; then
			_ivs=${_p##*/}
		elif [ -z "$_other" ]; then
			_other=${_p##*/}
		fi
	done
	if [ -z "$_ivs" ]; then
		check "with no ivshmem device, the library says so" \
		    refuses - "no 1af4:1110 device in /sys/bus/pci/devices"
	else
		echo "# this machine has an ivshmem device at $_ivs"
	fi
	for _a in zz ../../.. "0000:00:00.0 x" 0000:00:00.00000 ""; do
		check "the library refuses the address '$_a'" \
		    refuses "$_a" "$_a: not a PCI address"
	done
	[ -d /sys/bus/pci/devices/0000:ff:1f.7 ] ||
	    check "the library names a missing device" \
		refuses ff:1f.7 "no PCI device 0000:ff:1f.7"
	examples
	[ -n "$_other" ] || return 0
	check "the library refuses $_other, which is no ivshmem device" \
	    refuses "$_other" "$_other is [0-9a-f]*:[0-9a-f]*, not an \
ivshmem device"
	_vg=yes
	case ${CFLAGS:-} in
	*-fsanitize=*)	_vg="a sanitizer build" ;;
	esac
	have valgrind || _vg="no valgrind"
	if [ "$_vg" = yes ]; then
		check "valgrind: no leak or error on the way" vg_refuses \
		    "$_other" || show valgrind "$T/vg"
	else
		echo "# valgrind not run: $_vg"
	fi
}

# build_init CC OUT: static, so that the initramfs needs no libc, with
# the guest half of libivshm built from the top-level sources for the
# guest's architecture.  glibc rather than musl: musl-gcc does not see
# <linux/vfio.h>.
build_init() {
	# shellcheck disable=SC2086
	"$1" -std=c99 -D_GNU_SOURCE -O2 -Wall -Wextra ${GUEST_CFLAGS:-} \
	    -static -s -I"$TOP" \
	    -o "$2" init.c $LIBSRC 2>"$T/init.cc"
}

# build_ivctl CC OUT: ivctl for the guest, static too.  Its peer mode
# wants strtonum, which libbsd gives the host build: compat.c here.
build_ivctl() {
	# shellcheck disable=SC2086
	"$1" -std=c99 -D_GNU_SOURCE -O2 -Wall -Wextra ${GUEST_CFLAGS:-} \
	    -static -s -I"$TOP" \
	    -include compat.h -o "$2" "$TOP/ivctl.c" "$TOP/ivctl_peer.c" \
	    compat.c $LIBSRC "$TOP/ivshm_host.c" 2>"$T/ivctl.cc"
}

# build_ping CC OUT: the guest program of libivshm(3) for the guest.
build_ping() {
	# shellcheck disable=SC2086
	"$1" -std=c99 -D_GNU_SOURCE -O2 -Wall -Wextra ${GUEST_CFLAGS:-} \
	    -static -s -I"$TOP" -o "$2" "$OBJ/ping.c" $LIBSRC 2>"$T/ping.cc"
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

# initrd OUT INIT IVCTL PING: the init, ivctl, the guest program of
# libivshm(3) and the vfio modules in load order.
initrd() {
	_r=$T/root.$$
	rm -rf "$_r"
	mkdir -p "$_r/lib/modules" "$_r/bin" || return 1
	cp "$2" "$_r/init" || return 1
	cp "$3" "$_r/bin/ivctl" || return 1
	cp "$4" "$_r/bin/ping" || return 1
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
		machine="-M q35 -device isa-debug-exit,iobase=0xf4,iosize=0x04"
		iommu="-device intel-iommu"
		append="console=ttyS0"
		iommu_append="intel_iommu=on"
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
		machine="-M virt,gic-version=3 -cpu max"
		iommu="-M virt,iommu=smmuv3"
		append="console=ttyAMA0"
		iommu_append=
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
	build_ivctl "$cross" "$OBJ/ivctl-$1" ||
	    { sed 's/^/# cc: /' "$T/ivctl.cc" >&2; return 1; }
	build_ping "$cross" "$OBJ/ping-$1" ||
	    { sed 's/^/# cc: /' "$T/ping.cc" >&2; return 1; }
	initrd "$OBJ/initrd-$1.cpio" "$OBJ/init-$1" "$OBJ/ivctl-$1" \
	    "$OBJ/ping-$1"
}

# boot ARCH N APPEND [noiommu]: one guest boot, its console in
# $d/console.N; with an emulated IOMMU unless told otherwise.
boot() {
	_n=$2
	_m="$machine $iommu"
	_a="$append $iommu_append"
	if [ "${4:-}" = noiommu ]; then
		_m=$machine
		_a=$append
	fi
	# shellcheck disable=SC2086
	timeout -k 5 "$QEMU_TIMEOUT" "$qemu" $_m -accel tcg -m 256 \
	    -smp 1 -display none -monitor none -serial stdio -no-reboot \
	    -kernel "$kernel" -initrd "$OBJ/initrd-$1.cpio" \
	    -append "$_a quiet panic=-1 ivtest.boot=$_n $3" \
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

# section CMD N: what ivctl -D CMD printed in boot N.
section() {
	sed -n "/^IVGUEST ivctl $1 begin\$/,/^IVGUEST ivctl $1 end/p" \
	    "$d/console.$2" | sed '1d;$d'
}

# wrote_back N: the line ivctl -D write wrote in the last region in boot
# N, read on the host after the guest has gone.
wrote_back() {
	_last=${regions% }
	_last=${_last##* }
	_want="written by ivctl -D in boot $1"
	if ! "$TOP/ivctl" -s "$d/c" read "$_last" 256 "$((${#_want} + 1))" \
	    >"$d/back" 2>&1 || [ "$(cat "$d/back")" != "$_want" ]; then
		show "ivctl read" "$d/back"
		return 1
	fi
}

# same_table A B: the same table, and one with a region in it.
same_table() {
	cmp -s "$1" "$2" && grep -q '^name  *begin  *end  *size  *vector$' "$2" &&
	    [ "$(wc -l <"$2")" -gt 2 ]
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
	check "$1: ivctl list on the host" eval \
	    '"$TOP/ivctl" -s "$d/c" list >"$d/list" 2>"$d/list.err" &&
	    grep -q "^total .* in $nvec regions$" "$d/list"' ||
	    show "ivctl list" "$d/list.err"

	allgood=0
	for n in 1 2 3; do
		extra=ivtest.irq=msix want=vfio-msix vm=
		# The fallback, on a VM with no IOMMU for vfio, and the
		# window write-combining.
		[ "$n" -eq 3 ] && extra="ivtest.irq=fallback ivtest.wc=1" \
		    want=pba vm=noiommu
		b0=$(now)
		boot "$1" "$n" "$extra" $vm
		rc=$?
		b1=$(now)
		bad=0
		check "$1: boot $n: the guest rang every region and got \
the host's answers (qemu exit $rc, $(elapsed "$b0" "$b1") s)" \
		    guest_passed "$rc" "$n" || bad=1
		check "$1: boot $n: the answers came by $want" grep -q \
		    "^IVGUEST RESULT pass.* irq=$want " "$d/console.$n" ||
		    bad=1
		check "$1: boot $n: the guest rang itself" grep -q \
		    "^IVGUEST rang itself on vector" "$d/console.$n" || bad=1
		[ "$n" -eq 3 ] && { check "$1: boot $n: with the window \
mapped write-combining" grep -q "^IVGUEST device .* irq pba write-combining$" \
		    "$d/console.$n" || bad=1; }
		[ "$n" -eq 3 ] && { check "$1: boot $n: the library said \
why it had no MSI-X" grep -q "^IVGUEST no MSI-X, polling: .* has no IOMMU \
group: the VM needs an IOMMU" "$d/console.$n" || bad=1; }
		[ "$n" -eq 3 ] && { check "$1: boot $n: and, before the \
modules were loaded, that vfio was missing" eval 'section nomodule "$n" |
		    grep -q "no MSI-X, polling: no vfio module: load vfio-pci"' ||
		    bad=1; }
		# What the guest read in the header against the socket.
		sed -n 's/^IVGUEST region //p' "$d/console.$n" >"$d/guest.$n"
		sed -n 's/^socket //p' "$d/host.out" >"$d/socket"
		check "$1: boot $n: the guest found the socket's offsets \
and vectors in the header" cmp -s "$d/guest.$n" "$d/socket" || bad=1
		section list "$n" >"$d/ivctl.$n"
		check "$1: boot $n: ivctl -D list in the guest prints the \
table of ivctl list on the host" same_table "$d/ivctl.$n" "$d/list" || {
			bad=1
			diff "$d/list" "$d/ivctl.$n" | sed 's/^/# diff: /' >&2
		}
		section info "$n" >"$d/info.$n"
		check "$1: boot $n: ivctl -D info in the guest reads \
IVPosition 1 and $nvec vectors" eval 'grep -q "^ivposition 1$" "$d/info.$n" &&
		    grep -q "^vectors $nvec$" "$d/info.$n"' || bad=1
		check "$1: boot $n: what ivctl -D write wrote in the guest, \
ivctl read reads on the host" wrote_back "$n" || bad=1
		check "$1: boot $n: ivctl -D refuses vector 256 and an \
offset past the region" eval 'section ring "$n" | grep -q "vector 256: 0 to \
255" && section read "$n" | grep -q "offset 0x100000000 past its"' || bad=1
		check "$1: boot $n: ivctl -D list refuses a header the guest \
broke, with the reason" eval 'section badcount "$n" | grep -q "region_count \
4294967295 above 256" && section badname "$n" | grep -q "header region 0: \
name not terminated"' || bad=1
		_why=
		[ "$n" -eq 3 ] && _why=" after saying why it had no MSI-X"
		check "$1: boot $n: ivctl -D wait times out$_why" eval \
		    'section wait "$n" >"$d/wait.$n" &&
		    grep -q "no ring within 100 ms" "$d/wait.$n" &&
		    { [ "$n" -ne 3 ] || grep -q "no MSI-X, polling: .* has no \
IOMMU group" "$d/wait.$n"; }' || bad=1
		sed -n 's/^IVGUEST generation //p' "$d/console.$n" >>"$d/gens"
		if [ "$bad" -ne 0 ]; then
			allgood=1
			show_console "$n"
			diff "$d/socket" "$d/guest.$n" | sed 's/^/# diff: /' >&2
		fi
		sed -n 's/^IVGUEST RESULT /# /p' "$d/console.$n"
	done

	check "$1: the header's generation grew from boot to boot \
($(tr '\n' ' ' <"$d/gens"))" eval 'sort -n -u -c "$d/gens" &&
	    [ "$(wc -l <"$d/gens")" -eq 3 ]'
	stop_host "$allgood"
	rc=$?
	tally -p "$1" "$1: the host client's report" \
	    grep '^\(not \)\{0,1\}ok - ' "$d/host.out"
	check "$1: the host client exits 0 after the three boots" \
	    test "$rc" -eq 0 || show host "$d/host.err"
	run_example "$1"
	check "$1: ivserver still runs after four guests" alive "$SERVERPID"
	stop_server
}

# run_example ARCH: a fourth boot, where the guest program of
# libivshm(3) rings the host program of its EXAMPLES and prints the
# answer.
run_example() {
	case " $regions" in
	*" ril "*)	;;
	*)	echo "# $1: no region ril, which the programs of libivshm(3)" \
		    "use: boot 4 not run"
		return 0 ;;
	esac
	"$OBJ/pong" "$d/c" >"$d/pong.out" 2>&1 &
	pong=$!
	boot "$1" 4 ivtest.mode=example
	rc=$?
	check "$1: boot 4: the guest program of libivshm(3) got the answer \
of its host program (qemu exit $rc)" eval 'guest_passed "$rc" 4 &&
	    grep -q "^the host says: pong$" "$d/console.4"' ||
	    { show_console 4; show pong "$d/pong.out"; }
	stop_pid "$pong"
	pong=
}

# run_bench ARCH: the round trip, with vfio and then polling.
run_bench() {
	first=${regions%% *}
	start "$1" -b 2 -n "$((ROUNDS * 2))" "$first" || return
	check "$1: the host client holds $first" logged '^ready$' "$d/host.out"
	allgood=0
	for n in 1 2; do
		extra="ivtest.mode=bench ivtest.rounds=$ROUNDS ivtest.irq=msix"
		[ "$n" -eq 2 ] && extra="$extra ivtest.irq=pba"
		boot "$1" "$n" "$extra"
		rc=$?
		check "$1: bench boot $n (qemu exit $rc)" \
		    guest_passed "$rc" "$n" || { allgood=1; show_console "$n"; }
		sed -n "s/^IVGUEST bench /# $1: round trip /p" "$d/console.$n"
		irq=vfio-msix
		[ "$n" -eq 2 ] && irq=pba
		awk -v a="$1" -v i="$irq" '$1 == a && $2 == i {
		    s = "# " a ": before libivshm " i;
		    for (f = 3; f <= NF; f++) s = s " " $f; print s " us" }' \
		    bench-before
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
host_side

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
