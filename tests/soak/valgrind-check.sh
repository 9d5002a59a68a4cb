#!/bin/sh
# make check's short soak: tests/soak/soak.c for 2 s with 2000 reads in
# flight, under valgrind (memcheck: errors and definite leaks fail) when
# valgrind is installed and the build has no sanitizers; under SAN= it runs
# the sanitizer build directly (ASan/UBSan/LSan do the checking). Without
# valgrind it is skipped (exit 77, counted by tests/run-tests.sh as neither
# a pass nor a failure) unless SR_REQUIRE_VALGRIND=1 (CI), which fails.
# SR_SOAK: the soak binary (set by `make check`).
soak=${SR_SOAK:-}
if [ -z "$soak" ] || [ ! -x "$soak" ]; then
  echo "valgrind-check: no soak binary (SR_SOAK=$soak)"
  exit 1
fi
export SOAK_SECONDS="${SOAK_SECONDS:-2}" SOAK_READS="${SOAK_READS:-2000}"
if [ -n "$SAN" ]; then
  echo "valgrind-check: SAN=$SAN: short soak under the sanitizers"
  exec "$soak"
fi
if ! command -v valgrind >/dev/null 2>&1; then
  if [ "${SR_REQUIRE_VALGRIND:-}" = 1 ]; then
    echo "valgrind-check: valgrind is required (SR_REQUIRE_VALGRIND=1)"
    exit 1
  fi
  echo "valgrind-check: SKIPPED (valgrind not installed)"
  exit 77
fi
# The forked child is silent: its exit status is checked by the parent.
valgrind -q --error-exitcode=1 --leak-check=full \
  --errors-for-leak-kinds=definite --child-silent-after-fork=yes "$soak"
rc=$?
echo "valgrind-check: soak under valgrind exited $rc"
[ "$rc" -eq 0 ]
