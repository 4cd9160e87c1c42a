#!/bin/sh
# sqltest.sh: runs SQL scripts through the real sqlite3 shell and compares
# what it prints (results and error messages, in order) with the script's
# .expected file beside it.  Fails on the first difference, showing it.
#
# Usage: tests/sqltest.sh SQLITE3 SCRIPT.sql...
# Run from the repository root (the scripts load ext/timelimit).
# UPDATE=1 rewrites the .expected files instead: read the diff before you
# commit them.
set -u
shell=$1
shift
failed=0
for script in "$@"; do
  expected=${script%.sql}.expected
  actual=$(mktemp)
  # Line-buffered stdout keeps results and error messages in order.
  stdbuf -oL "$shell" :memory: < "$script" > "$actual" 2>&1
  if [ "${UPDATE:-0}" = 1 ]; then
    cp "$actual" "$expected"
  elif diff -u "$expected" "$actual"; then
    echo "ok   $script"
  else
    echo "FAIL $script"
    failed=1
  fi
  rm -f "$actual"
done
exit $failed
