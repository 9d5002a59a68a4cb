#!/bin/sh
# Runs each libFuzzer target for a bounded time on a scratch corpus.
#
#   sh tests/fuzz/run.sh SECONDS build/fuzz/fuzz_image build/fuzz/fuzz_...
#
# Target build/fuzz/fuzz_<name> reads its seeds from tests/fuzz/corpus/<name>/
# (never written: new inputs go to a temporary directory listed first) and
# runs single-process for SECONDS (-max_total_time). Prints executions and
# exec/s per target. A crash, leak, timeout or sanitizer report fails the
# run: the log's tail and the crashing input (xxd) are printed, and the input
# is kept under build/fuzz/crashes/. FUZZ_NICE sets the nice level.
set -u

secs=${1:?usage: run.sh SECONDS FUZZER...}
shift
nice_level=${FUZZ_NICE:-0}
here=$(cd "$(dirname "$0")" && pwd)
status=0
summary=""

for bin in "$@"; do
  name=$(basename "$bin")
  target=${name#fuzz_}
  seeds="$here/corpus/$target"
  work=$(mktemp -d "${TMPDIR:-/tmp}/swapread-fuzz-$target.XXXXXX")
  mkdir -p "$work/corpus" "$work/artifacts"
  case $target in
    image) max_len=65536 ;;
    translate) max_len=65664 ;;
    *) max_len=2048 ;;
  esac
  echo "fuzz: $name for ${secs}s (seeds: tests/fuzz/corpus/$target)"
  nice -n "$nice_level" "$bin" -max_total_time="$secs" -timeout=25 \
    -rss_limit_mb=2048 -max_len="$max_len" -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" \
    $( [ -d "$seeds" ] && printf '%s' "$seeds" ) \
    > "$work/log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
  units=$(ls "$work/corpus" | wc -l)
  line="$name: rc=$rc execs=${execs:-?} exec/s=${rate:-?} new_units=$units"
  echo "fuzz: $line"
  summary="$summary$line
"
  if [ "$rc" -ne 0 ]; then
    status=1
    echo "fuzz: $name FAILED; log tail:"
    tail -n 60 "$work/log"
    mkdir -p build/fuzz/crashes
    for f in "$work"/artifacts/*; do
      [ -f "$f" ] || continue
      echo "fuzz: input $(basename "$f") ($(wc -c < "$f") bytes):"
      xxd "$f" | head -n 64
      cp "$f" "build/fuzz/crashes/$name-$(basename "$f")"
      echo "fuzz: saved as build/fuzz/crashes/$name-$(basename "$f")"
    done
  fi
  rm -rf "$work"
done

printf 'fuzz summary:\n%s' "$summary"
exit $status
