#!/bin/sh
# Installs the Debian packages named as arguments when they are missing
# (as root, with apt-get), or says exactly what to install and fails.
# Used by `make check`, `make demo` and .ci/run.
set -e
missing=""
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "swapread: not a Debian system; make sure these are installed: $*" >&2
  exit 0
fi
for p in "$@"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$st" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "swapread: installing Debian packages:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  exit 0
fi
echo "swapread: missing Debian packages:$missing" >&2
echo "swapread: install them with: sudo apt-get install -y$missing" >&2
exit 1
