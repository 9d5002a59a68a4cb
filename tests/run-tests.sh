#!/bin/sh
# Runs each test binary given as an argument (cmocka suites, and plain
# programs such as the cookbook examples, which exit 0 on success), shows
# its output, and ends with one line: "N passed, N failed". A binary that
# crashes or exits non-zero without a cmocka summary counts as one failure.
# A plain program exiting 77 (automake's convention; the valgrind soak
# step without valgrind) is skipped: neither a pass nor a failure.
# Exit status 1 on any failure.
passed=0
failed=0
skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export CMOCKA_MESSAGE_OUTPUT=stdout
if [ -n "$SAN" ]; then
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allow_user_segv_handler=1}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
fi
for t in "$@"; do
  echo "--- $(basename "$t")"
  "$t" >"$log" 2>&1
  rc=$?
  cat "$log"
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  p=${p:-0}
  f=${f:-0}
  if [ "$rc" -eq 77 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
    echo "$(basename "$t"): skipped"
    skipped=$((skipped + 1))
    continue
  elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "$(basename "$t"): exited with status $rc"
    f=1
  elif [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
    # Not a cmocka binary (a cookbook example): exit 0 is one pass.
    echo "$(basename "$t"): ok"
    p=1
  fi
  passed=$((passed + p))
  failed=$((failed + f))
done
# The shared library exports the public API only: every defined dynamic
# symbol is sr_* (SR_SHLIB is set by `make check`).
if [ -n "$SR_SHLIB" ]; then
  echo "--- exported symbols of $(basename "$SR_SHLIB")"
  bad=$(nm -D --defined-only "$SR_SHLIB" | awk '{print $3}' | grep -v '^sr_[a-z]')
  if [ -z "$bad" ] && nm -D --defined-only "$SR_SHLIB" | grep -q ' sr_image_open$'
  then
    echo "exports: only sr_* symbols"
    passed=$((passed + 1))
  else
    echo "exports: unexpected symbols: $bad"
    failed=$((failed + 1))
  fi
fi
# The installed library is hardened: full RELRO (a GNU_RELRO segment and
# BIND_NOW, so the GOT is read-only after relocation; -Wl,-z,relro,-z,now).
if [ -n "$SR_SHLIB" ]; then
  echo "--- RELRO of $(basename "$SR_SHLIB")"
  relro=$(readelf -lW "$SR_SHLIB" 2>/dev/null | grep -c 'GNU_RELRO')
  now=$(readelf -dW "$SR_SHLIB" 2>/dev/null |
    grep -cE '\(BIND_NOW\)|\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW')
  if [ "$relro" -gt 0 ] && [ "$now" -gt 0 ]; then
    echo "relro: GNU_RELRO segment and BIND_NOW (full RELRO)"
    passed=$((passed + 1))
  else
    echo "relro: not full RELRO (GNU_RELRO segments: $relro, BIND_NOW: $now)"
    failed=$((failed + 1))
  fi
fi
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
