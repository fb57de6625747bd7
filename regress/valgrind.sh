#!/bin/sh
#
# valgrind.sh: the core protocol tests with the server under valgrind's
# memcheck, which cannot run under a seccomp filter: build the server
# first with "make CPPFLAGS=-DNO_SANDBOX".  Ends with "N passed, N failed".

cd "$(dirname "$0")" || exit 1
T=$(mktemp -d /tmp/ivserver-vg.XXXXXX) || exit 1
PASS=0
FAIL=0
trap 'rm -rf "$T"' EXIT

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
notok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
check() {
	_d=$1
	shift
	if "$@"; then ok "$_d"; else notok "$_d"; fi
}

cat > "$T/ivserver" <<EOT
#!/bin/sh
exec valgrind -q --trace-children=yes --leak-check=full \
    --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
    --error-exitcode=99 --log-file=$T/vg.%p $(pwd)/../ivserver "\$@"
EOT
chmod +x "$T/ivserver"

"$T/ivserver" -d -t 2 -q "$T/q" -s "$T/c" 2> "$T/log" &
S=$!
i=0
while [ ! -S "$T/c" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
NAMES=$(../ivserver -n | awk 'NR > 1 && $1 != "total" { print $1 }' | tr '\n' ' ')
check "every region, under valgrind" sh -c \
    "./ivclient -t 10 -s '$T/c' $NAMES no_such_region >/dev/null"
for bad in 0000 1000 ffff deadbeef 0a00 0a006877; do
	./rawclient -t 3000 "$T/c" $bad > /dev/null
done
check "bad clients, then a good one" sh -c \
    "./ivclient -t 10 -s '$T/c' ril >/dev/null"
check "200 clients at once" sh -c \
    "./load -s '$T/c' -c 200 -n 200 -t 60 | grep -qx 'served 200 failed 0'"
./load -s "$T/c" -F 20000 -t 4 > /dev/null
kill "$S"
wait "$S"
check "the server exits 0 under valgrind" test $? -eq 0

IVSERVER="$T/ivserver" sh ./vm.sh > "$T/vm" 2> "$T/vm.err"
R=$?
sed 's/^/# /' "$T/vm" | head -5
check "QEMU attaches, rings both ways and restarts (vm.sh under valgrind)" \
    test $R -eq 0

if grep -l 'ERROR SUMMARY: [1-9]\|definitely lost\|indirectly lost\|Invalid' \
    "$T"/vg.* > "$T/bad" 2>/dev/null; then
	for f in $(cat "$T/bad"); do sed 's/^/# /' "$f"; done
	notok "valgrind reports errors or leaks"
else
	ok "valgrind reports no errors and no leaks ($(ls "$T"/vg.* | wc -l) processes)"
fi
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
