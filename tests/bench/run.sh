#!/bin/sh
# Runs each benchmark program given as an argument (output shown as it
# comes), collects their result rows (BENCH_ROWS) and prints one summary
# table with the machine it ran on; BENCH_OUT=file appends that table to
# the file. Exit status 1 if any program failed (a benchmark fails when a
# result it checks is wrong).
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
export BENCH_ROWS="$rows"
failed=0
start=$(date +%s)
for b in "$@"; do
  echo "--- $(basename "$b")"
  if ! "$b"; then
    echo "$(basename "$b"): FAILED"
    failed=$((failed + 1))
  fi
done
end=$(date +%s)
model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null |
  head -1)
summary() {
  echo "## swapread benchmarks — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "machine: $(nproc) cpus, ${model:-unknown cpu}, load $(cut -d' ' -f1-3 /proc/loadavg); run took $((end - start)) s"
  echo
  echo "| scenario | case | metric | median | min..max | baseline | ratio | target |"
  echo "|---|---|---|---:|---:|---:|---:|---|"
  cat "$rows"
  if [ "$failed" -ne 0 ]; then
    echo
    echo "$failed benchmark program(s) FAILED"
  fi
}
echo
summary
if [ -n "$BENCH_OUT" ]; then
  { summary; echo; } >>"$BENCH_OUT"
fi
[ "$failed" -eq 0 ]
