#!/bin/sh
# deps_test.sh: scripts/deps.sh finds what the project needs on a system
# without Debian's package tools: with a PATH that has the programs but no
# dpkg-query (nor apt-get), the build's needs pass, and a missing one fails
# with its name and the package that provides it.
#
# Usage, from the repository root: tests/deps_test.sh
set -eu
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
for p in "${CC:-cc}" make pkg-config sqlite3 sh sed grep printf cat; do
  ln -s "$(command -v "$p")" "$bin/"
done
PATH=$bin scripts/deps.sh gcc make pkg-config libsqlite3-dev check sqlite3 ||
  { echo "deps_test: the needs there were not found"; exit 1; }
if out=$(PATH=$bin scripts/deps.sh gcc no-such-tool 2>&1); then
  echo "deps_test: a missing program passed"; exit 1
fi
case "$out" in
  *"missing program no-such-tool (Debian: no-such-tool)"*) ;;
  *) echo "deps_test: unexpected message: $out"; exit 1 ;;
esac
echo "ok   deps.sh without dpkg: finds what is there, names what is not"
