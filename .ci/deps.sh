#!/bin/sh
# Installs the Debian packages named as arguments when they are missing
# (as root, with apt-get), or says exactly what to install and fails.
# A name prefixed with '?' (e.g. ?valgrind) is optional: installed like the
# others when we are root, otherwise only mentioned; its absence never
# fails (the step that needs it says it is skipped).
# Used by `make check`, `make demo` and .ci/run.
set -e
missing=""
optional=""
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "swapread: not a Debian system; make sure these are installed: $*" >&2
  exit 0
fi
for p in "$@"; do
  opt=""
  case "$p" in "?"*) opt=1; p=${p#?} ;; esac
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$st" in
  *"install ok installed"*) ;;
  *) if [ -n "$opt" ]; then optional="$optional $p"; else missing="$missing $p"; fi ;;
  esac
done
[ -z "$missing" ] && [ -z "$optional" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "swapread: installing Debian packages:$missing$optional" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  if ! apt-get install -y -qq --no-install-recommends $missing $optional \
    >/dev/null; then
    [ -z "$optional" ] && exit 1
    # An optional package may be unavailable: retry without it.
    if [ -n "$missing" ]; then
      # shellcheck disable=SC2086
      apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
  fi
  exit 0
fi
if [ -n "$optional" ]; then
  echo "swapread: optional Debian packages not installed:$optional" >&2
fi
[ -z "$missing" ] && exit 0
echo "swapread: missing Debian packages:$missing" >&2
echo "swapread: install them with: sudo apt-get install -y$missing" >&2
exit 1
