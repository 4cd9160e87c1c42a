#!/bin/sh
# deps.sh: checks that the Debian packages the project needs are installed.
# When run as root where apt-get exists, installs the missing ones (saying
# so); otherwise prints the exact list to install and fails.
#
# Usage: scripts/deps.sh PACKAGE...
set -eu

missing=""
for pkg in "$@"; do
  if command -v dpkg-query >/dev/null 2>&1; then
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
      *"install ok installed"*) continue ;;
    esac
  fi
  missing="$missing $pkg"
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps.sh: installing missing packages:$missing"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
  exit 0
fi

echo "deps.sh: missing packages:$missing" >&2
echo "deps.sh: install them with: sudo apt-get install$missing" >&2
exit 1
