#!/bin/sh
# swapread demo: builds a holey guest image with `swapread mkimage` in a
# temporary directory and runs translate, read and maps on it, showing a
# present page, a partly swapped-out range, a physical hole, a page beyond
# the end of the file, a PROT_NONE page and a garbage entry; then a waiting
# read that times out, `watch`, and `swapread demo`: a read that stays
# pending while a second process pages the data in, and completes. Every
# step checks the exit code and a piece of the output, so the demo fails
# loudly (exit 1) when the tool misbehaves.
#
#   usage: sh tests/demo.sh path/to/swapread
set -u

cli=${1:-}
if [ -z "$cli" ]; then
  echo "usage: sh tests/demo.sh path/to/swapread" >&2
  exit 2
fi
case $cli in
  /*) ;;
  *) cli=$PWD/$cli ;;
esac
if [ ! -x "$cli" ]; then
  echo "demo: $cli is not an executable (run 'make cli' first)" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/swapread-demo.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
img=$tmp/demo.elf
log=$tmp/log
failures=0

step() {
  printf '\n== %s\n' "$1"
}

fail() {
  echo "demo: FAILED: $*" >&2
  failures=$((failures + 1))
}

# run WANT_RC ARGS...: shows the command, runs it (stdout and stderr into
# $log, then shown) and checks the exit code.
run() {
  want=$1
  shift
  echo "\$ swapread $*"
  "$cli" "$@" >"$log" 2>&1
  rc=$?
  cat "$log"
  [ "$rc" -eq "$want" ] || fail "'swapread $1' exited $rc, expected $want"
}

# expect TEXT: the last command's output must contain TEXT.
expect() {
  grep -F -q -- "$1" "$log" || fail "expected '$1' in the output above"
}

step "build a holey demo image (an ELF core with a physical hole)"
run 0 mkimage "$img"
cr3=$(sed -n 's/^cr3 //p' "$log")
if [ -z "$cr3" ]; then
  fail "mkimage printed no cr3"
  exit 1
fi

step "translate a present page: the walk level by level, then the GPA"
run 0 translate "$img" --cr3 "$cr3" 0x400000
expect "=> gpa 0x"

step "translate a swapped-out page: the walk stops at a Linux swap entry"
run 1 translate "$img" --cr3 "$cr3" 0xa02000
expect "linux-swap type 0 offset 0x1002"

step "read a present range (hexdump)"
run 0 read "$img" --cr3 "$cr3" 0x400000 0x40 --hexdump
expect "0000000000400000"

step "read a range that is partly swapped out (JSON; bytes to a file)"
run 1 read "$img" --cr3 "$cr3" 0xa00000 0x8000 --json -o "$tmp/bytes"
expect '"complete":false'
expect '{"va":"0xa02000","len":4096,"status":"ENOTPRESENT"'
expect '{"va":"0xa06000","len":4096,"status":"ENOTPRESENT"'
expect '"kind":"linux-swap","swap_type":0,"swap_offset":4102'
size=$(wc -c <"$tmp/bytes" | tr -d ' ')
[ "$size" = 32768 ] || fail "expected 32768 bytes in the output file, got $size"

step "read a page whose frame lies in a physical hole"
run 1 read "$img" --cr3 "$cr3" 0xa11000 0x20 --hexdump
expect "hole (data gpa 0x"
expect "??"

step "read a page whose frame lies beyond the end of the (truncated) file"
run 1 read "$img" --cr3 "$cr3" 0xa12000 0x20 --hexdump
expect "beyond (data gpa 0x"

step "read a PROT_NONE page: missing by default, readable with --resident"
run 1 read "$img" --cr3 "$cr3" 0xa10000 0x20 --hexdump
expect "linux-protnone"
run 0 read "$img" --cr3 "$cr3" 0xa10000 0x20 --hexdump --resident

step "translate a garbage entry (a 2M PDE with a reserved bit)"
run 1 translate "$img" --cr3 "$cr3" 0xc00000
expect "EBADENTRY at PD"

step "maps: the regions, including the swapped-out runs"
run 0 maps "$img" --cr3 "$cr3"
expect "paged"
expect "linux-swap"

step "wait for swapped-out pages; nobody pages them in: timeout after 300 ms"
run 1 read "$img" --cr3 "$cr3" 0xa00000 0x8000 --wait=300ms -o "$tmp/bytes"
expect "timed out after"
expect "missing 0xa02000-0xa03000"
expect "missing 0xa06000-0xa07000"

step "watch the chunks of a range for 300 ms (nothing changes: initial state)"
run 0 watch "$img" --cr3 "$cr3" 0xa00000 0x8000 --duration 300ms
expect "initial 0xa02000"
expect "linux-swap type 0 offset 0x1002"

step "the main job: a read that waits while a second process pages data in"
run 0 demo
expect "stayed pending"
expect "verified"
expect "demo: ok"

echo
if [ "$failures" -ne 0 ]; then
  echo "demo: $failures check(s) failed" >&2
  exit 1
fi
echo "demo: every step behaved as expected"
