#!/bin/sh
#
# libvirt.sh: ivserver under real libvirt, as ivserver(8) tells it to
# be set up.  The script runs libvirtd itself, without systemd, in a
# private mount namespace where /run and /var are empty tmpfs mounts
# and /etc/libvirt is its own configuration; where the machine has no
# libvirt-qemu user and kvm group (they come with
# libvirt-daemon-system), the namespace's /etc/passwd and /etc/group
# have them, as Debian makes them.  Then:
#
# - host mode: ivserver -g kvm -a libvirt-qemu, and a TCG domain with
#   no disk whose <shmem> is the one ivserver -n prints.  The domain
#   starts, ivserver logs the attach with libvirt's QEMU uid; a host
#   client rings the guest and QEMU's monitor shows the vector pending
#   in the MSI-X PBA; destroyed and started again, it attaches again
#   and the same client's descriptors ring it again; what ivserver(8)
#   says of virsh save, of too few vectors and of refusals (a second
#   domain, a QEMU user not in -a) holds;
# - peer mode: two domains on one ivserver -P ring each other.
#
# The monitor is reached with virsh qemu-monitor-command; PCI set-up
# takes I/O port writes (HMP o, i), the PBA is read with HMP xp.  A
# doorbell is an MMIO write, which the monitor cannot make: the peer
# domains also listen for qtest on a socket (<qemu:commandline>).
# Without libvirtd and virsh, or not as root, the test is skipped.
#
# Figures: the time from virsh start to the attach in ivserver's log,
# the first time and after destroy.

if [ -z "${IVSERVER_LIBVIRT_NS:-}" ] && [ "$(id -u)" -eq 0 ] &&
    command -v libvirtd >/dev/null && command -v virsh >/dev/null &&
    command -v unshare >/dev/null; then
	IVSERVER_LIBVIRT_NS=1 exec unshare -m --propagation private \
	    sh "$0" "$@"
fi

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"

if [ -z "${IVSERVER_LIBVIRT_NS:-}" ]; then
	skip "libvirt: needs root, libvirtd (libvirt-daemon, \
libvirt-daemon-driver-qemu), virsh (libvirt-clients) and unshare"
	finish
fi

URI=qemu:///system
QUSER=libvirt-qemu
QGROUP=kvm
LVPID=

# --- the namespace --------------------------------------------------------

# An id free in both files, counting down from the top of system ids.
free_id() {
	_id=999
	while getent passwd "$_id" >/dev/null ||
	    getent group "$_id" >/dev/null; do
		_id=$((_id - 1))
	done
	echo "$_id"
}

# Debian's libvirt-daemon-system makes libvirt-qemu, primary group kvm,
# also in group libvirt-qemu, which qemu.conf names as QEMU's group.
users() {
	getent passwd "$QUSER" >/dev/null && getent group "$QGROUP" \
	    >/dev/null && return 0
	cp /etc/passwd "$T/passwd" && cp /etc/group "$T/group" || return 1
	if ! getent group "$QGROUP" >/dev/null; then
		_gid=$(free_id)
		echo "$QGROUP:x:$_gid:$QUSER" >>"$T/group"
	else
		_gid=$(getent group "$QGROUP" | cut -d: -f3)
	fi
	if ! getent passwd "$QUSER" >/dev/null; then
		# free_id looks at the files in force: not this gid again.
		_uid=$(free_id)
		[ "$_uid" -ne "$_gid" ] || _uid=$((_uid - 1))
		echo "$QUSER:x:$_uid:$_gid:Libvirt Qemu:/var/lib/libvirt:\
/usr/sbin/nologin" >>"$T/passwd"
		echo "$QUSER:x:$_uid:$QUSER" >>"$T/group"
	fi
	at_exit "umount /etc/passwd /etc/group 2>/dev/null"
	mount --bind "$T/passwd" /etc/passwd &&
	    mount --bind "$T/group" /etc/group &&
	    getent passwd "$QUSER" >/dev/null
}

namespace() {
	mount -t tmpfs -o mode=0755 tmpfs /run &&
	    mount -t tmpfs -o mode=0755 tmpfs /var &&
	    ln -s /run /var/run &&
	    mkdir -p /var/lib/libvirt /var/cache/libvirt /var/log/libvirt \
	    /var/tmp "$T/etc" &&
	    chmod 1777 /var/tmp || return 1
	cat >"$T/etc/libvirtd.conf" <<-EOF
	unix_sock_group = "root"
	unix_sock_rw_perms = "0700"
	auth_unix_rw = "none"
	auth_unix_ro = "none"
	log_outputs = "3:file:$T/libvirtd.log"
	EOF
	# No SELinux or AppArmor labels, no cgroups and no private /dev:
	# the test is about sockets and uids, and runs in containers.
	cat >"$T/etc/qemu.conf" <<-EOF
	user = "$QUSER"
	group = "$QUSER"
	security_driver = "none"
	cgroup_controllers = [ ]
	namespaces = [ ]
	stdio_handler = "file"
	remember_owner = 0
	EOF
	at_exit "umount /etc/libvirt 2>/dev/null"
	mount --bind "$T/etc" /etc/libvirt
}

libvirtd_up() {
	libvirtd --config /etc/libvirt/libvirtd.conf 2>>"$T/libvirtd.log" &
	LVPID=$!
	wait_for sh -c "[ -S /run/libvirt/libvirt-sock ] ||
	    ! kill -0 $LVPID" && alive "$LVPID" &&
	    wait_for virsh -c "$URI" version >/dev/null 2>&1
}
stop_libvirtd() {
	[ -n "$LVPID" ] || return 0
	for _d in $(virsh -c "$URI" list --name 2>/dev/null); do
		virsh -c "$URI" destroy "$_d" >/dev/null 2>&1
	done
	stop_pid "$LVPID"
	LVPID=
}
at_exit stop_libvirtd

check "namespace: /run and /var are private" namespace ||
    { show libvirtd "$T/libvirtd.log"; finish; }
check "namespace: user $QUSER in group $QGROUP" users || finish
QUID=$(id -u "$QUSER")
check "libvirtd starts on its own configuration" libvirtd_up ||
    { show libvirtd "$T/libvirtd.log"; finish; }
make ring qtline >/dev/null 2>&1

# --- the domain -----------------------------------------------------------

virsh() { command virsh -q -c "$URI" "$@"; }
hmp() { virsh qemu-monitor-command "$1" --hmp "$2"; }

# domain name file shmem [qtest-socket]: a TCG domain with no disk,
# stopped at its first instruction, with the <shmem> of file.
domain() {
	{
		echo "<domain type='qemu' \
xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
		echo "<name>$1</name><memory unit='MiB'>64</memory>"
		echo "<vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm\
</type></os><devices><emulator>$(command -v "$QEMU")</emulator>"
		echo "<controller type='usb' model='none'/>"
		echo "<memballoon model='none'/>"
		sed -n '/<shmem/,/<\/shmem>/p' "$2"
		echo "</devices>"
		[ -z "${3:-}" ] || echo "<qemu:commandline>\
<qemu:arg value='-qtest'/><qemu:arg value='unix:$3,server=on,wait=off'/>\
</qemu:commandline>"
		echo "</domain>"
	} >"$T/$1.xml"
	virsh define "$T/$1.xml" >/dev/null
}

# The ivshmem device's slot on bus 0, from the domain's live XML.
slot() {
	virsh dumpxml "$1" | sed -n '/<shmem/,/<\/shmem>/{
	    s/.*<address type=.pci.*slot=.0x\([0-9a-f]*\).*/\1/p; }'
}

# PCI configuration of the device through ports 0xcf8 and 0xcfc (HMP
# sizes: w 32 bits, h 16).
cfgaddr() { printf '0x%x' $((0x80000000 | 0x$SLOT << 11 | $1)); }
cfgr() {
	hmp "$1" "o /w 0xcf8 $(cfgaddr "$2")" >/dev/null &&
	    hmp "$1" "i /w 0xcfc" | sed -n 's/.*= *\(0x[0-9a-f]*\).*/\1/p'
}
cfgw() {
	hmp "$1" "o /w 0xcf8 $(cfgaddr "$2")" >/dev/null &&
	    hmp "$1" "o /w 0xcfc $3" >/dev/null
}
cfgw16() {
	hmp "$1" "o /w 0xcf8 $(cfgaddr $(($2 & ~3)))" >/dev/null &&
	    hmp "$1" "o /h $((0xcfc + ($2 & 2))) $3" >/dev/null
}

BAR0=0xe0000000
BAR1=0xe0100000

# pci_setup domain: the BARs as firmware would place them, memory
# decoding and bus mastering on, MSI-X enabled with its vectors masked
# (as at reset), so that a rung vector shows in the PBA.  PBA is then
# its address.
pci_setup() {
	SLOT=$(slot "$1")
	[ -n "$SLOT" ] || return 1
	[ "$(cfgr "$1" 0)" = 0x11101af4 ] || return 1
	# BAR2, the window, goes at 4 GiB or at its size, above that.
	cfgw "$1" 0x18 0xffffffff && cfgw "$1" 0x1c 0xffffffff || return 1
	_lo=$(cfgr "$1" 0x18) && _hi=$(cfgr "$1" 0x1c) || return 1
	_size=$(( ~((_hi << 32) | (_lo & ~0xf)) + 1 ))
	[ "$_size" -gt $((1 << 32)) ] || _size=$((1 << 32))
	cfgw "$1" 0x10 $BAR0 && cfgw "$1" 0x14 $BAR1 &&
	    cfgw "$1" 0x18 "$(printf 0x%x $((_size & 0xffffffff)))" &&
	    cfgw "$1" 0x1c "$(printf 0x%x $((_size >> 32)))" &&
	    cfgw16 "$1" 0x04 0x6 || return 1
	_cap=$(($(cfgr "$1" 0x34) & 0xfc))
	while [ "$_cap" -ne 0 ]; do
		_v=$(cfgr "$1" "$_cap")
		[ $((_v & 0xff)) -eq 17 ] && break
		_cap=$((_v >> 8 & 0xfc))
	done
	[ "$_cap" -ne 0 ] || return 1
	_pba=$(cfgr "$1" $((_cap + 8)))
	[ $((_pba & 7)) -eq 1 ] || return 1
	PBA=$(printf 0x%x $((BAR1 + (_pba & ~7))))
	cfgw16 "$1" $((_cap + 2)) $(((_v >> 16 | 0x8000) & ~0x4000)) &&
	    [ $(($(cfgr "$1" "$_cap") >> 16 & 0xc000)) -eq $((0x8000)) ]
}

# pba domain: the first word of the pending bits, as QEMU shows it.
pba() {
	hmp "$1" "xp /1wx $PBA" | sed -n 's/.*: *\(0x[0-9a-f]*\).*/\1/p'
}
pending() { [ $(($(pba "$1") >> $2 & 1)) -eq 1 ]; }
none_pending() { [ $(($(pba "$1"))) -eq 0 ]; }

# QEMU's pid, as libvirt keeps it.
qemu_pid() { cat "/run/libvirt/qemu/$1.pid" 2>/dev/null; }

# attached n pid log: n lines of log say that QEMU pid attached, with
# libvirt's QEMU uid.
attached() {
	[ "$(count "(pid $2, uid $QUID) attached as peer" "$3")" -ge "$1" ]
}

# start_timed domain what: virsh start --paused, then wait for the
# attach in log $LOG; prints the milliseconds it took.
ms() { echo $(($(date +%s%N) / 1000000)); }
start_timed() {
	_t0=$(ms)
	virsh start --paused "$1" >"$T/start.out" 2>&1 || {
		show "virsh start $1" "$T/start.out"
		return 1
	}
	_pid=$(qemu_pid "$1")
	wait_for attached "$2" "$_pid" "$LOG" || return 1
	echo $(($(ms) - _t0)) >"$T/$1.ms"
	# How much of it QEMU's own start took: its age at the attach.
	_up=$(cut -d' ' -f1 /proc/uptime | tr -d .)
	_st=$(sed 's/.*) //' "/proc/$_pid/stat" | cut -d' ' -f20)
	echo $((_up * 10 - _st * 1000 / $(getconf CLK_TCK))) >"$T/$1.qms"
}

# --- host mode ------------------------------------------------------------

LOG=$T/host.log
"$IVSERVER" -n -g "$QGROUP" >"$T/host.n"
# The allow list is for both sockets: QEMU's user, and root for the
# host client.
check "host mode: ivserver -d -g $QGROUP -a $QUSER -a root listens" \
    start_server_cmd "$LOG" /run/ivserver/client.sock "$IVSERVER" -d \
    -g "$QGROUP" -a "$QUSER" -a root
check "host mode: /run/ivserver/qemu.sock is root:$QGROUP 0660" test \
    "$(stat -c %U:%G:%a /run/ivserver/qemu.sock)" = "root:$QGROUP:660"

check "host mode: the domain with ivserver -n's <shmem> is defined" \
    domain vm1 "$T/host.n"
check "host mode: the domain starts and attaches" start_timed vm1 1 ||
    { show libvirtd "$T/libvirtd.log"; show qemu \
    /var/log/libvirt/qemu/vm1.log; }
FIRST_MS=$(cat "$T/vm1.ms" 2>/dev/null)
FIRST_QMS=$(cat "$T/vm1.qms" 2>/dev/null)
Q1=$(qemu_pid vm1)
check "host mode: QEMU runs as $QUSER (uid $QUID)" sh -c \
    "awk '/^Uid:/ { exit \$2 != $QUID }' /proc/$Q1/status"
check "host mode: ivserver logged QEMU's pid $Q1 and uid $QUID" \
    grep -q "VM (pid $Q1, uid $QUID) attached as peer 1" "$LOG"
check "host mode: the device is set up through the monitor" pci_setup vm1
check "host mode: no vector pending yet" none_pending vm1

# The host client: region ril, vector 6 of the built-in layout.
mkfifo "$T/ring.in" || exit 1
./ring -s /run/ivserver/client.sock ril <"$T/ring.in" >"$T/ring.out" \
    2>"$T/ring.err" &
RINGPID=$!
exec 3>"$T/ring.in"
at_exit "exec 3>&-; kill $RINGPID 2>/dev/null"
check "host mode: a host client is served ril" logged '^ready' \
    "$T/ring.out" || show ring "$T/ring.err"
VEC=$(awk '/^ready/ { print $4 }' "$T/ring.out")
echo ring >&3
check "host mode: it rings the guest: QEMU shows vector $VEC pending" \
    wait_for pending vm1 "$VEC"

virsh destroy vm1 >/dev/null 2>&1
check "host mode: virsh destroy: ivserver sees the VM leave" \
    logged "peer 1 (pid $Q1) left" "$LOG"
check "host mode: the domain starts again and attaches again" \
    start_timed vm1 1
Q2=$(qemu_pid vm1)
check "host mode: a new QEMU, pid $Q2" test "$Q2" != "$Q1"
check "host mode: the device is set up again" pci_setup vm1
check "host mode: no vector pending in the new QEMU" none_pending vm1
echo ring >&3
check "host mode: the same client's descriptors ring the new QEMU" \
    wait_for pending vm1 "$VEC"
check "host mode: the client rang twice on one connection" \
    logged '^rang 2$' "$T/ring.out"
exec 3>&-
await_pid "$RINGPID"

# What ivserver(8) says of save and of refusals, as libvirt shows them.
virsh save vm1 "$T/vm1.save" >"$T/save.out" 2>&1
check "host mode: QEMU refuses virsh save of a doorbell device" grep -q \
    "Migration is disabled when using feature 'peer mode'" "$T/save.out" ||
    show "virsh save" "$T/save.out"
check "host mode: a second domain on the same server" domain vm2 "$T/host.n"
virsh start --paused vm2 >"$T/vm2.out" 2>&1
check "host mode: virsh start of it fails: server sent invalid ID message" \
    grep -q "server sent invalid ID message" "$T/vm2.out" ||
    show "virsh start" "$T/vm2.out"
check "host mode: ivserver logs why, naming -P" logged \
    "refused: a VM is already attached (host mode serves one; -P" "$LOG"
virsh destroy vm1 >/dev/null 2>&1

# Fewer vectors than regions: QEMU is not refused, the attach line says
# how many it was given, and QEMU's log that it dropped the rest.
sed "s/<msi vectors='[0-9]*'/<msi vectors='4'/" "$T/host.n" >"$T/few.n"
check "host mode: a domain with <msi vectors='4'> is defined" \
    domain vm3 "$T/few.n"
check "host mode: it starts and attaches" start_timed vm3 1
check "host mode: the attach line says 10 vectors" \
    grep -q "(pid $(qemu_pid vm3), uid $QUID) attached as peer 1, 10 vectors" \
    "$LOG"
check "host mode: QEMU's log says it dropped the rest" wait_for grep -q \
    "Too many eventfd received, device has 4 vectors" \
    /var/log/libvirt/qemu/vm3.log
virsh destroy vm3 >/dev/null 2>&1
stop_server
check "host mode: ivserver exits 0" test $? -eq 0

# Without -a for libvirt's QEMU: refused, and the log names the -a.
check "host mode: ivserver -a root alone" start_server_cmd "$T/refuse.log" \
    /run/ivserver/client.sock "$IVSERVER" -d -g "$QGROUP" -a root
virsh start --paused vm1 >"$T/vm1.out" 2>&1
check "host mode: virsh start fails: server sent invalid ID message" \
    grep -q "server sent invalid ID message" "$T/vm1.out" ||
    show "virsh start" "$T/vm1.out"
check "host mode: ivserver logs uid $QUID refused, naming -a $QUID" logged \
    "refused: uid $QUID gid [0-9]* not in the allow list (-a $QUID or" \
    "$T/refuse.log"
virsh destroy vm1 >/dev/null 2>&1
stop_server

AGAIN_MS=$(cat "$T/vm1.ms" 2>/dev/null)
AGAIN_QMS=$(cat "$T/vm1.qms" 2>/dev/null)

# --- peer mode: two domains ring each other --------------------------------

LOG=$T/peer.log
PSOCK=/run/ivserver/peer.sock
"$IVSERVER" -n -P 2 -q "$PSOCK" -g "$QGROUP" >"$T/peer.n"
check "peer mode: ivserver -d -P 2 -g $QGROUP -a $QUSER listens" \
    start_server_cmd "$LOG" "$PSOCK" "$IVSERVER" -d -P 2 -l 4M \
    -q "$PSOCK" -g "$QGROUP" -a "$QUSER"
# QEMU, as libvirt-qemu, makes its qtest socket here.
mkdir -p /run/ivtest && chown "$QUSER" /run/ivtest && chmod 700 /run/ivtest

# ivposition domain: the ID the device shows the guest.
ivposition() {
	./qtline "/run/ivtest/$1.qt" "readl $(printf 0x%x $((BAR0 + 8)))" |
	    awk '$1 == "OK" { print $2 + 0 }'
}
# ring from to vector: a doorbell written by domain from's guest.
ring() {
	./qtline "/run/ivtest/$1.qt" "writel $(printf 0x%x $((BAR0 + 12))) \
$(printf 0x%x $(($2 << 16 | $3)))" >/dev/null
}
peer_id() {
	sed -n "s/.*peer (pid $1, uid $QUID) attached as peer \([0-9]*\).*/\1/p" \
	    "$LOG" | tail -n 1
}

for d in pa pb; do
	check "peer mode: domain $d, with a qtest socket, is defined" \
	    domain "$d" "$T/peer.n" "/run/ivtest/$d.qt"
	check "peer mode: domain $d starts and attaches" start_timed "$d" 1 ||
	    show qemu "/var/log/libvirt/qemu/$d.log"
	check "peer mode: domain $d is set up through the monitor" \
	    pci_setup "$d"
	check "peer mode: domain $d answers qtest" \
	    wait_for test -S "/run/ivtest/$d.qt"
done
A=$(peer_id "$(qemu_pid pa)")
B=$(peer_id "$(qemu_pid pb)")
check "peer mode: the domains are peers $A and $B, as their IVPosition \
says" test -n "$A" -a -n "$B" -a "$(ivposition pa)" = "$A" -a \
    "$(ivposition pb)" = "$B"
check "peer mode: nothing pending in either" sh -c \
    "[ \"\$(echo \$(($(pba pa) | $(pba pb))))\" -eq 0 ]"
check "peer mode: pa rings pb's vector 1" ring pa "$B" 1
check "peer mode: pb's QEMU shows vector 1 pending" wait_for pending pb 1
check "peer mode: pb rings pa's vector 0" ring pb "$A" 0
check "peer mode: pa's QEMU shows vector 0 pending" wait_for pending pa 0
check "peer mode: and only that" test "$(($(pba pa)))" -eq 1
for d in pa pb; do
	virsh destroy "$d" >/dev/null 2>&1
done
check "peer mode: both leave when destroyed" wait_for sh -c \
    "[ \$(grep -c 'peer [0-9]* (pid [0-9]*) left' '$LOG') -ge 2 ]"
stop_server
check "peer mode: ivserver exits 0" test $? -eq 0

echo "# figures: virsh start to attach, first $FIRST_MS ms, after destroy \
$AGAIN_MS ms; of which QEMU's exec to attach $FIRST_QMS and $AGAIN_QMS ms \
(TCG, paused domain, $(nproc) CPUs)"

finish
