#!/bin/sh
# install_test.sh: installs the project into a temporary DESTDIR, then builds
# and runs a program against the installed header, library and pkg-config
# file (the README's C quick start), and loads the installed extension in
# the sqlite3 shell.  Removes everything it made.
#
# Usage: tests/install_test.sh MAKE SQLITE3
set -eu
make=$1
shell=$2
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

$make --no-print-directory install DESTDIR="$dest" PREFIX=/usr/local >/dev/null
pc="$dest/usr/local/lib/pkgconfig"
flags=$(PKG_CONFIG_SYSROOT_DIR="$dest" PKG_CONFIG_PATH="$pc" \
  pkg-config --cflags --libs timelimit)

cat > "$dest/app.c" <<'C'
#include <stdio.h>
#include <sqlite3.h>
#include <timelimit.h>

int main(void) {
  sqlite3 *db;
  int rc;
  sqlite3_open(":memory:", &db);
  timelimit_register(db);
  timelimit_set_limit(db, 50);
  rc = sqlite3_exec(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                        "SELECT x+1 FROM c) SELECT count(*) FROM c",
                    NULL, NULL, NULL);
  printf("%d %s\n", rc, timelimit_reason(db));
  sqlite3_close(db);
  return rc == SQLITE_INTERRUPT ? 0 : 1;
}
C
# shellcheck disable=SC2086
${CC:-cc} -o "$dest/app" "$dest/app.c" $flags
out=$("$dest/app")
[ "$out" = "9 deadline" ] || { echo "install_test: app printed '$out'"; exit 1; }

out=$(printf '.load %s\nSELECT timelimit(7), timelimit();\n' \
  "$dest/usr/local/lib/sqlite3/timelimit" | "$shell" :memory:)
[ "$out" = "0|7" ] || { echo "install_test: shell printed '$out'"; exit 1; }

$make --no-print-directory uninstall DESTDIR="$dest" PREFIX=/usr/local >/dev/null
left=$(find "$dest/usr" -type f | wc -l)
[ "$left" = 0 ] || { echo "install_test: uninstall left $left files"; exit 1; }
echo "ok   install, pkg-config, static link, extension load, uninstall"
