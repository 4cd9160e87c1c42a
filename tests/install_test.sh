#!/bin/sh
# install_test.sh: installs the project into a temporary DESTDIR, then builds
# and runs programs against the installed headers, libraries and pkg-config
# files (the README's C quick start of timelimit, statically; a small sqlq
# program, against libsqlq.so.0), and loads the installed extension in the
# sqlite3 shell; with the default prefix and then another, after the first
# (what the .pc files say follows the prefix of each install).  Removes
# everything it made.
#
# Usage: tests/install_test.sh MAKE SQLITE3
set -eu
make=$1
shell=$2
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

for prefix in /usr/local /opt/sqlq-test; do
$make --no-print-directory install DESTDIR="$dest" PREFIX=$prefix >/dev/null
pc="$dest$prefix/lib/pkgconfig"
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
  "$dest$prefix/lib/sqlite3/timelimit" | "$shell" :memory:)
[ "$out" = "0|7" ] || { echo "install_test: shell printed '$out'"; exit 1; }

# The sqlq library, linked against the installed shared object.
cat > "$dest/q.c" <<'C'
#include <stdio.h>
#include <sqlq.h>

int main(void) {
  sqlq *q;
  sqlq_result *r;
  sqlq_call c = {.kind = SQLQ_READ, .sql = "SELECT 6 * 7"};
  if (sqlq_open(":memory:", NULL, &q) != 0) return 1;
  if (sqlq_exec(q, &c, &r) != 0) return 1;
  printf("%lld\n", (long long)sqlq_result_int(r, 0, 0));
  sqlq_result_free(r);
  return sqlq_close(q);
}
C
flags=$(PKG_CONFIG_SYSROOT_DIR="$dest" PKG_CONFIG_PATH="$pc" \
  pkg-config --cflags --libs sqlq)
# shellcheck disable=SC2086
${CC:-cc} -o "$dest/q" "$dest/q.c" $flags
out=$(LD_LIBRARY_PATH="$dest$prefix/lib" "$dest/q")
[ "$out" = "42" ] || { echo "install_test: sqlq app printed '$out'"; exit 1; }
needed=$(LD_LIBRARY_PATH="$dest$prefix/lib" ldd "$dest/q" | grep -c libsqlq.so.0)
[ "$needed" = 1 ] || { echo "install_test: app does not use libsqlq.so.0"; exit 1; }

# The versions the .pc files give are the installed headers'.
for lib in sqlq timelimit; do
  macro=$(echo $lib | tr a-z A-Z)_VERSION
  want=$(sed -n "s/^#define $macro \"\(.*\)\"/\1/p" "$dest$prefix/include/$lib.h")
  got=$(PKG_CONFIG_PATH="$pc" pkg-config --modversion $lib)
  [ -n "$want" ] && [ "$got" = "$want" ] ||
    { echo "install_test: $lib.pc says $got, $lib.h $want"; exit 1; }
done
$make --no-print-directory uninstall DESTDIR="$dest" PREFIX=$prefix >/dev/null
left=$(find "$dest$prefix" -type f | wc -l)
[ "$left" = 0 ] || { echo "install_test: uninstall left $left files"; exit 1; }
rm -f "$dest/app" "$dest/q"
done
# The README's quick starts, built and run with its commands, against an
# install to a prefix of one's own (no DESTDIR, no root).
prefix="$dest/prefix"
$make --no-print-directory install PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# shellcheck disable=SC2046
${CC:-cc} -o "$dest/tl" ext/examples/quickstart.c \
  $(pkg-config --cflags --libs timelimit)
out=$(cd "$dest" && ./tl)
[ "$out" = "stopped: deadline" ] ||
  { echo "install_test: timelimit quick start printed '$out'"; exit 1; }
# shellcheck disable=SC2046
${CC:-cc} -o "$dest/qs" shim/examples/quickstart.c \
  $(pkg-config --cflags --libs sqlq) \
  -Wl,-rpath,"$(pkg-config --variable=libdir sqlq)"
out=$(cd "$dest" && ./qs && ./qs)
want=$(printf 'id 1\nlast note: hello\nid 2\nlast note: hello')
[ "$out" = "$want" ] ||
  { echo "install_test: sqlq quick start printed '$out'"; exit 1; }
$make --no-print-directory uninstall PREFIX="$prefix" >/dev/null
echo "ok   install (three prefixes), pkg-config, static and shared link, extension load, quick starts, uninstall"
