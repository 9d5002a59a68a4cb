#!/bin/sh
# Instructions per operation (issue 6 item 4): runs tests/bench/insns.c's
# program under callgrind, takes each op_* function's inclusive instruction
# count from callgrind_annotate (GCC may suffix it, .constprop.0) and
# divides it by the count the program
# printed for it. Counts are repeatable for the same binary and inputs
# whatever the machine's load, so a regression shows as a changed number.
# Usage: insns.sh PROGRAM [OUT]; with BENCH_OUT=file the table is appended.
set -eu
prog=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! command -v valgrind >/dev/null 2>&1; then
  echo "insns: valgrind is not installed (apt-get install -y valgrind)" >&2
  exit 1
fi
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$prog" \
  >"$tmp/counts" 2>"$tmp/vg.log" || { cat "$tmp/vg.log" >&2; exit 1; }
callgrind_annotate --inclusive=yes --threshold=100 "$tmp/cg.out" \
  >"$tmp/annot" 2>/dev/null
table() {
  echo "| operation | instructions per unit | unit | count |"
  echo "|---|---:|---|---:|"
  while read -r fn n unit; do
    ir=$(awk -v fn="$fn" '
      { for (i = 1; i <= NF; i++) if ($i ~ (":" fn "([.]|$)")) {
          gsub(",", "", $1); print $1; exit } }' "$tmp/annot")
    [ -n "$ir" ] || { echo "insns: no count for $fn" >&2; exit 1; }
    awk -v ir="$ir" -v n="$n" -v fn="$fn" -v u="$unit" \
      'BEGIN { printf "| %s | %.1f | %s | %d |\n", fn, ir / n, u, n }'
  done <"$tmp/counts"
}
table | tee "$tmp/table"
if [ -n "${BENCH_OUT:-}" ]; then
  { echo "## swapread instructions per operation (callgrind)"; echo;
    cat "$tmp/table"; echo; } >>"$BENCH_OUT"
fi
