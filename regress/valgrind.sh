#!/bin/sh
#
# valgrind.sh: the core protocol tests with the server under valgrind's
# memcheck, which cannot run under a seccomp filter: build the server
# first with "make CPPFLAGS=-DNO_SANDBOX".  Ends with "N passed, N failed".

REGRESS=$(cd "$(dirname "$0")" && pwd -P) && . "$REGRESS/lib.sh"

VGSERVER=$T/ivserver
cat >"$VGSERVER" <<EOT
#!/bin/sh
exec valgrind -q --trace-children=yes --leak-check=full \
    --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
    --error-exitcode=99 --log-file=$T/vg.%p "$IVSERVER" "\$@"
EOT
chmod +x "$VGSERVER"

S=$T/s
mkdir -p "$S"
start_server_cmd "$S/server.log" "$S/c" "$VGSERVER" -d -t 2 -q "$S/q" \
    -s "$S/c"
NAMES=$("$IVSERVER" -n | awk '$1 == "total" { exit } NR > 1 { print $1 }')
# shellcheck disable=SC2086
check "every region, under valgrind" sh -c \
    "./ivclient -t $WAIT -s '$S/c' $(echo $NAMES) no_such_region >/dev/null"
for bad in 0000 1000 ffff deadbeef 0a00 0a006877; do
	./rawclient -t 3000 "$S/c" $bad >/dev/null
done
check "bad clients, then a good one" serves "$S"
check "200 clients at once" sh -c \
    "./load -s '$S/c' -c 200 -n 200 -t 60 | grep -qx 'served 200 failed 0'"
./load -s "$S/c" -F 20000 -t 4 >/dev/null
check "the server exits 0 under valgrind" stop_server

IVSERVER=$VGSERVER sh ./vm.sh >"$T/vm" 2>"$T/vm.err"
R=$?
sed 's/^/# /' "$T/vm" | head -5
check "QEMU attaches, rings both ways and restarts (vm.sh under valgrind)" \
    test $R -eq 0

if grep -l 'ERROR SUMMARY: [1-9]\|definitely lost\|indirectly lost\|Invalid' \
    "$T"/vg.* >"$T/bad" 2>/dev/null; then
	for f in $(cat "$T/bad"); do show valgrind "$f"; done
	notok "valgrind reports errors or leaks"
else
	ok "valgrind reports no errors and no leaks" \
	    "($(ls "$T"/vg.* | wc -l) processes)"
fi

finish
