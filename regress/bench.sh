#!/bin/sh
#
# bench.sh: the ivserver benchmark, run by "make bench".  It builds the
# benchmark client (ivbench, from bench.c) and a server without its
# seccomp filter for callgrind, starts servers in a private temporary
# directory, and prints one table: figure, value, floor, ratio, target,
# met.  Every floor is measured in the same run on the same machine.
#
#	sh bench.sh
#
# RUNS (default 5) repeats each figure; IVSERVER names the server.
# Exits 1 if a figure could not be measured, 0 otherwise: a missed
# target is a result, not a failure of the benchmark.

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"
BEGIN=$(date +%s)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
RUNS=${RUNS:-5}
CC=${CC:-cc}
CFLAGS=${CFLAGS:--O2 -g}
WARNFLAGS="-std=c99 -pedantic -Wall -Wextra -Wstrict-prototypes
    -Wmissing-prototypes -Wmissing-declarations -Wshadow -Wpointer-arith
    -Wsign-compare -Wformat=2"
BSD_CFLAGS=$(pkg-config --cflags libbsd-overlay) || exit 1
BSD_LIBS=$(pkg-config --libs libbsd-overlay) || exit 1
CG_COUNT=1000		# handshakes under callgrind

# Where each process runs is fixed, since a figure and its floor must
# see the same placement: left to the scheduler, one run puts client
# and server on one CPU and the next on two.  On a virtual machine a
# wake-up across CPUs costs tens of microseconds, more than all the
# CPU work of a handshake, so latencies are taken with everything on
# CPU 1, where they show what the server spends, and again across
# CPUs; throughput, bursts and start-up use both, the client on CPU 0
# and servers and floors on CPU 1.
SAME=
CROSS=
SRVPIN=
if [ "$(nproc)" -ge 2 ] && command -v taskset > /dev/null; then
	SAME="-C 1 -S 1"
	CROSS="-C 0 -S 1"
	SRVPIN="taskset -c 1"
fi

say() { echo "bench: $*" >&2; }

[ -x "$IVSERVER" ] || { say "no $IVSERVER: run make first"; exit 1; }
say "building ivbench and ivserver-nosandbox"
$CC $WARNFLAGS -D_GNU_SOURCE $BSD_CFLAGS -I.. $CFLAGS -o ivbench bench.c lib.c \
    $BSD_LIBS || exit 1
# valgrind cannot run under the serving child's seccomp filter, which
# sandbox.c leaves out when built with NO_SANDBOX.
# The server's sources: every one but ivctl's and libivshm's sides.
SERVER_SRCS=$(ls ../*.c | grep -v -e '/ivctl' -e '/ivshm_')
# shellcheck disable=SC2086
$CC -D_GNU_SOURCE -DLIBBSD_OPENBSD_VIS -DNO_SANDBOX $BSD_CFLAGS $CFLAGS \
    -o ivserver-nosandbox $SERVER_SRCS \
    $(pkg-config --libs libbsd-ctor libbsd-overlay) || exit 1

ROWS=$T/rows
: > "$ROWS"
FAILED=0

# pinned_server DIR [options]: ivserver in the foreground on DIR/q and
# DIR/c, on the servers' CPU.
pinned_server() {
	_dir=$1
	shift
	mkdir -p "$_dir"
	# shellcheck disable=SC2086
	start_server_cmd "$_dir/server.log" "$_dir/c" $SRVPIN "$IVSERVER" -d \
	    -q "$_dir/q" -s "$_dir/c" "$@"
}

# run figure command...: the rows of one ivbench command, or a row that
# says it failed.
run() {
	_fig=$1
	shift
	if ! "$@" >> "$ROWS"; then
		printf 'row\t%s\tFAILED\t-\t-\t-\tNO\n' "$_fig" >> "$ROWS"
		FAILED=1
	fi
}

# layout file nregions [size]: regions r0... of 4 KiB each, and the
# window's total size if given.
layout() {
	awk -v n="$2" -v size="${3:-}" 'BEGIN {
		printf "{ "
		if (size != "")
			printf "\"size\": \"%s\", ", size
		printf "\"regions\": ["
		for (i = 0; i < n; i++)
			printf "%s{ \"name\": \"r%d\", \"size\": \"4K\" }",
			    i ? ", " : " ", i
		print " ] }"
	}' > "$1"
	"$IVSERVER" -n -f "$1" > /dev/null
}

# --- 1-3: host clients, the built-in layout --------------------------------

S=$T/s1
if pinned_server "$S"; then
	say "1. handshake latency, one client at a time"
	if [ -n "$SAME" ]; then
		run "1. handshake" ./ivbench hs $SAME -s "$S/c" \
		    -F "$T/floor" -n 5000 -r "$RUNS" -p "$SERVERPID" \
		    -l "same CPU" -T
		run "1. handshake" ./ivbench hs $CROSS -s "$S/c" \
		    -F "$T/floor" -n 5000 -r "$RUNS" -p "$SERVERPID" \
		    -l "across CPUs"
	else
		run "1. handshake" ./ivbench hs -s "$S/c" -F "$T/floor" \
		    -n 5000 -r "$RUNS" -p "$SERVERPID" -l "unpinned" -T
	fi
	say "2. throughput with 1, 8, 64 and 512 concurrent clients"
	run "2. throughput" ./ivbench tput $CROSS -s "$S/c" -F "$T/floor" \
	    -c 1,8,64,512 -d 1000 -r "$RUNS" -p "$SERVERPID"
	say "3. a burst of 1000 clients"
	run "3. burst" ./ivbench burst $CROSS -s "$S/c" -F "$T/floor" -n 1000 \
	    -r "$RUNS"
	stop_server
else
	run "1-3. host clients" false
fi

# --- 4: a VM attaching ------------------------------------------------------

for n in 1 16 64; do
	say "4. VM attach with $n regions"
	S=$T/vm$n
	mkdir -p "$S"
	layout "$S/layout.json" "$n"
	if pinned_server "$S" -f "$S/layout.json"; then
		run "4. VM attach, $n regions" ./ivbench vm $SAME -q "$S/q" \
		    -s "$S/c" -N "$n" -n 300 -r "$RUNS"
		stop_server
	else
		run "4. VM attach, $n regions" false
	fi
done

# --- 5: start-up and memory --------------------------------------------------

for w in "16M 16 MiB" "1G 1 GiB" "64G 64 GiB"; do
	set -- $w
	say "5. start-up and memory, $2 $3 window"
	S=$T/start-$1
	mkdir -p "$S"
	layout "$S/layout.json" 4 "$1"
	tgt=
	[ "$1" = 64G ] && tgt=-T
	run "5. start-up, $2 $3" ./ivbench start $CROSS -x "$IVSERVER" -D "$S" \
	    -f "$S/layout.json" -R r0 -l "$2 $3" -r $((RUNS * 7)) $tgt
done

# --- 6: instructions per handshake under callgrind -----------------------

# As root the server would chroot to /var/empty, where callgrind cannot
# write its profile: run it as nobody, which drops nothing.
ASUSER=
if [ "$(id -u)" -eq 0 ]; then
	ASUSER="setpriv --reuid=$(id -u nobody) --regid=$(id -g nobody)"
	ASUSER="$ASUSER --clear-groups"
	chmod 711 "$T"
fi

# cg kind count: sets CG to the instructions of the serving child (the
# process that is not the parent) of kind "server" or "floor" over
# count handshakes.  Not in a subshell: the cleanup must see SERVERPID.
cg() {
	CG=
	_d=$T/cg-$1-$2
	_n=$2
	mkdir -p "$_d"
	[ -n "$ASUSER" ] && chown nobody "$_d"
	if [ "$1" = server ]; then
		set -- ./ivserver-nosandbox -d -q "$_d/q" -s "$_d/c"
	else
		set -- ./ivbench floorsrv "$_d/c"
	fi
	# shellcheck disable=SC2086
	start_server_cmd "$_d/server.log" "$_d/c" $ASUSER valgrind \
	    --tool=callgrind --trace-children=yes \
	    --callgrind-out-file="$_d/cg.%p" "$@" || { stop_server; return 1; }
	_parent=$SERVERPID
	if ! ./ivbench hsonly -s "$_d/c" -n "$_n"; then
		show server "$_d/server.log"
		stop_server
		return 1
	fi
	# The last close has reached the child once it holds no connection.
	wait_for conns_are "$_d/c" 0
	stop_server
	for _f in "$_d"/cg.*; do
		[ "$_f" = "$_d/cg.$_parent" ] && continue
		CG=$(awk '/^summary:/ { print $2 }' "$_f")
	done
	[ -n "$CG" ]
}

# Instructions per handshake: runs of 1 and N + 1 handshakes, so that
# both have reached the serving loop before they are stopped; the
# difference over N leaves out start-up and exit.  Sets PER and FIXED.
cg_per() {
	cg "$1" 1 || return 1
	FIXED=$CG
	cg "$1" $((CG_COUNT + 1)) || return 1
	PER=$(((CG - FIXED) / CG_COUNT))
}

if command -v valgrind > /dev/null; then
	say "6. instructions per handshake under callgrind"
	if cg_per server && SPER=$PER && SFIXED=$FIXED && cg_per floor; then
		_r=$(awk -v a="$SPER" -v b="$PER" \
		    'BEGIN { printf "%.2fx", a / b }')
		printf 'row\t%s\t%d\t%d\t%s\t-\t-\n' \
		    "6. instructions/handshake, serving child (callgrind)" \
		    "$SPER" "$PER" "$_r" >> "$ROWS"
		printf 'note\t6: %s: %d instructions (floor %d)\n' \
		    "serving child start-up + 1 handshake + exit" \
		    "$SFIXED" "$FIXED" >> "$ROWS"
	else
		run "6. instructions/handshake" false
	fi
else
	printf 'row\t6. instructions/handshake\tno valgrind\t-\t-\t-\t-\n' \
	    >> "$ROWS"
fi

# --- 7. peer mode: the k-th join, and what 100 peers cost ----------------

say "7. peer mode: joins with 8 vectors, 100 peers, beside a floor"
# 200 joins and leaves of the k-th peer; at k = 100 each sends 3 + 99 x
# 8 + 8 messages to the newcomer and 8 + 1 to each of the 99 others.
JOINS=200
PERJOIN=$((3 + 99 * 8 + 8 + 99 * 9))
cpu_ns() { awk '{ print $1 }' "/proc/$1/schedstat"; }
# hold sock: one more peer that stays until the fifo's one writer, the
# script's fd 3, is closed.
HOLDERS=
hold() {
	./peer -s "$1" -n 8 -w 600000 <"$T/fifo" >/dev/null 2>&1 3>&- &
	HOLDERS="$HOLDERS $!"
	held=$((held + 1))
}
at_exit 'exec 3>&-; for h in $HOLDERS; do kill "$h" 2>/dev/null; done'
# joins name sock pid: the k-th peer's joins for k = 1, 10, 100 on sock,
# served by pid, into $T/join-name-k, and pid's CPU per message over
# the joins of the 100th into $T/cpu-name.  Leaves 99 holders.
joins() {
	rm -f "$T/fifo"
	mkfifo "$T/fifo" || return 1
	exec 3<>"$T/fifo"
	held=0
	for k in 1 10 100; do
		while [ $held -lt $((k - 1)) ]; do
			hold "$2"
		done
		wait_for conns_are "$2" "$held" || return 1
		_c0=$(cpu_ns "$3")
		./peer -s "$2" -n 8 -j $JOINS 2>/dev/null 3>&- | \
		    awk '{ print $3, $5 }' > "$T/join-$1-$k"
		_c1=$(cpu_ns "$3")
	done
	echo $(((_c1 - _c0) / (JOINS * PERJOIN))) > "$T/cpu-$1"
}
# unhold: the holders see the end of their input.
unhold() {
	exec 3>&-
	for h in $HOLDERS; do await_pid "$h"; done
	HOLDERS=
}
F=
if start_server_cmd "$T/peers.log" "$T/peers" $SRVPIN "$IVSERVER" -d -P 8 \
    -c 200 -q "$T/peers" && joins server "$T/peers" "$SERVERCHILD"; then
	hold "$T/peers"		# the 100th
	wait_for conns_are "$T/peers" "$held"
	F=$(nfds "$SERVERCHILD")
	R=$(rss_kb "$SERVERPID")
else
	run "7. peer mode" false
fi
unhold
stop_server
$SRVPIN ./ivbench peerfloor "$T/pfloor" 8 2>"$T/pfloor.log" &
PFLOOR=$!
at_exit "kill $PFLOOR 2>/dev/null"
if wait_for test -S "$T/pfloor" && joins floor "$T/pfloor" "$PFLOOR"; then
	:
else
	run "7. peer mode floor" false
fi
unhold
kill "$PFLOOR" 2>/dev/null
await_pid "$PFLOOR"
# p50 of name k
p50() { awk '{ print $1 }' "$T/join-$1-$2" 2>/dev/null; }
p99() { awk '{ print $2 }' "$T/join-$1-$2" 2>/dev/null; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0)
    printf "%.2fx", a / b; else print "-" }'; }
for k in 1 10 100; do
	tgt=- met=-
	if [ $k = 100 ]; then
		tgt="p50 <= 1.2x floor"
		met=$(awk -v a="$(p50 server $k)" -v b="$(p50 floor $k)" \
		    'BEGIN { print (a > 0 && b > 0 && a <= 1.2 * b) ? "yes" : "NO" }')
	fi
	printf 'row\t%s\t%s\t%s\t%s\t%s\t%s\n' \
	    "7. peer join p50 / p99, k = $k, 8 vectors" \
	    "$(p50 server $k) / $(p99 server $k) us" \
	    "$(p50 floor $k) / $(p99 floor $k) us" \
	    "$(ratio "$(p50 server $k)" "$(p50 floor $k)")" "$tgt" "$met" \
	    >> "$ROWS"
done
CS=$(cat "$T/cpu-server" 2>/dev/null)
CF=$(cat "$T/cpu-floor" 2>/dev/null)
printf 'row\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "7. server CPU per delivered message, k = 100" "${CS:--} ns" \
    "${CF:--} ns" "$(ratio "${CS:-0}" "${CF:-0}")" "<= 544 ns" \
    "$([ -n "$CS" ] && [ "$CS" -le 544 ] && echo yes || echo NO)" >> "$ROWS"
printf 'row\t%s\t%s\t-\t-\t-\t-\n' \
    "7. 100 peers of 8 vectors: server fds, RSS" "$F fds, $R KiB" >> "$ROWS"
printf 'note\t7: %s\n' "$JOINS joins and leaves of the k-th peer; CPU of \
the serving process over those of the 100th, $PERJOIN messages each" \
    >> "$ROWS"

# --- 8. libivshm ----------------------------------------------------------

# The library's handshake beside the protocol done by hand with blocking
# calls, interleaved on one server (libbench.c), on one CPU and across.
say "8. libivshm handshake"
if $CC $WARNFLAGS -D_GNU_SOURCE $BSD_CFLAGS -I.. $CFLAGS -o libbench \
    libbench.c lib.c ../libivshm.a $BSD_LIBS && pinned_server "$T/lib"; then
	if [ -n "$SRVPIN" ]; then
		run "8. libivshm handshake" taskset -c 1 ./libbench \
		    -s "$T/lib/c" -l ", same CPU"
		run "8. libivshm handshake" taskset -c 0 ./libbench \
		    -s "$T/lib/c" -l ", across CPUs"
	else
		run "8. libivshm handshake" ./libbench -s "$T/lib/c"
	fi
	stop_server
else
	run "8. libivshm handshake" false
fi

# --- 9. the serving process killed ------------------------------------------

say "9. the serving process killed 100 times: to the next client served"
S=$T/restart
if pinned_server "$S"; then
	run "9. restart" ./restarttest -b -n 100 -p "$SERVERPID" -s "$S/c" ril
	stop_server
	printf 'note\t9: %s\n' "SIGKILL to the serving process at a random \
moment while a client asks in a loop; then a new client connects and asks \
until it is answered: the time from the kill to the answer" >> "$ROWS"
else
	run "9. restart" false
fi

# --- the table ------------------------------------------------------------

END=$(date +%s)
echo
echo "ivserver benchmark, $(uname -srm), $(nproc) CPUs, $(date -u \
    '+%Y-%m-%d %H:%M UTC'), load average at start $LOAD"
awk -F '\t' '
$1 == "row" {
	n++
	for (i = 2; i <= 7; i++) {
		f[n, i] = $i
		if (length($i) > w[i])
			w[i] = length($i)
	}
}
$1 == "note" { notes[++m] = $2 }
END {
	split("figure value floor ratio target met", h, " ")
	for (i = 2; i <= 7; i++)
		if (length(h[i - 1]) > w[i])
			w[i] = length(h[i - 1])
	for (i = 2; i <= 7; i++)
		printf "%-*s%s", w[i], h[i - 1], i < 7 ? "  " : "\n"
	for (i = 2; i <= 7; i++) {
		s = sprintf("%*s", w[i], "")
		gsub(/ /, "-", s)
		printf "%s%s", s, i < 7 ? "  " : "\n"
	}
	for (r = 1; r <= n; r++)
		for (i = 2; i <= 7; i++)
			printf "%-*s%s", w[i], f[r, i], i < 7 ? "  " : "\n"
	if (m > 0)
		print ""
	for (r = 1; r <= m; r++)
		print "  " notes[r]
}' "$ROWS"
cat <<'EOF'

  Latencies are p50 / p99 over all runs; rates the median of the runs.
  The client is one poll-driven process for every figure (bench.c).
  Server and floors run on CPU 1, the client on CPU 1 too for "same
  CPU" and figure 4, on CPU 0 for the rest.  Figure 1 is 5000
  handshakes per run, figure 4 300 attaches per run.
  Floors, each the same bytes and fds with no server logic, measured
  in the same run:
  1   socketpair to a second process: request -> 16 bytes + 3 fds
  1b  socketpair: 1 byte -> version, request -> 16 bytes + 3 fds
  1c  a blocking one-client-at-a-time server: connect, version,
      request, 16 bytes + 3 fds, close
  2,3 a no-logic server that never waits for a client: on accept it
      sends the version and the answer with 3 fds, leaves the request
      unread and closes the connection 4096 accepts later
  4   socketpair: 1 byte -> the same 3 + 2N messages and 1 + 2N fds.
      The client of 4 is a protocol client, not QEMU: it reads the
      version, ID, shm and 2N fds as QEMU does, 8 bytes per recvmsg
  5   ivbench floorsrv: exec, listen, fork a serving child
  6   the server of 1c (its serving child) under callgrind; both
      runs of 1 and of 1001 handshakes, the difference over 1000
  7   ivbench peerfloor: a peer-mode server with no logic, one
      blocking sendmsg per message, the same messages in the same
      order to the same kind of readers (regress/peer)
  8   the same handshake by hand with blocking calls (connect,
      version, request, 16 bytes + 3 fds, close), alternating with
      libivshm's, 5000 each
  On a virtual machine whose idle CPUs sleep, the rates of 2 swing
  from one run of make bench to the next between a wake-up-bound
  regime (client and server each well under a core busy) and a
  CPU-bound one (both near a core): the CPU notes tell which.
EOF
echo
echo "bench: $((END - BEGIN)) s"
exit $FAILED
