#!/bin/sh
# deps.sh: checks that what the project needs is there, by looking for it
# (a program on the PATH, a pkg-config module, a Python module), so that any
# system that has it passes, Debian or not.  Each need is named by the
# Debian 12 package that provides it.  When something is missing and this
# runs as root where apt-get exists, installs those packages (saying so);
# otherwise prints what is missing and the packages, and fails.
#
# Usage: scripts/deps.sh PACKAGE...
set -eu

python=${PYTHON:-/usr/bin/python3}

# Whether what Debian package $1 provides is here.
have() {
  case "$1" in
    gcc) command -v "${CC:-cc}" >/dev/null 2>&1 ;;
    make | pkg-config | sqlite3 | clang | valgrind | wrk)
      command -v "$1" >/dev/null 2>&1 ;;
    libsqlite3-dev) pkg-config --atleast-version=3.40 sqlite3 2>/dev/null ;;
    check) pkg-config --exists check 2>/dev/null ;;
    libuv1-dev) pkg-config --exists libuv 2>/dev/null ;;
    libevent-dev) pkg-config --exists libevent 2>/dev/null ;;
    libjansson-dev) pkg-config --exists jansson 2>/dev/null ;;
    python3) [ -x "$python" ] ;;
    python3-apsw) "$python" -c 'import apsw' 2>/dev/null ;;
    python3-aiosqlite) "$python" -c 'import aiosqlite' 2>/dev/null ;;
    sqlite-utils) "$python" -c 'import sqlite_utils' 2>/dev/null ;;
    python3-dev)
      [ -f "$("$python" -c 'import sysconfig
print(sysconfig.get_paths()["include"])' 2>/dev/null)/Python.h" ] ;;
    python3-setuptools) "$python" -c 'import setuptools' 2>/dev/null ;;
    python3-pip) "$python" -m pip --version >/dev/null 2>&1 ;;
    python3-pytest) "$python" -c 'import pytest' 2>/dev/null ;;
    python3-pytest-asyncio) "$python" -c 'import pytest_asyncio' 2>/dev/null ;;
    libclang-rt-14-dev)
      printf 'int LLVMFuzzerTestOneInput(const char *p, unsigned long n)'`
        `'{ (void)p; (void)n; return 0; }\n' |
        ${FUZZ_CC:-clang} -fsanitize=fuzzer -x c - -o /dev/null 2>/dev/null ;;
    *) dpkg-query -W -f='${Status}' "$1" 2>/dev/null |
         grep -q "install ok installed" ;;
  esac
}

# What package $1 provides, for the message.
what() {
  case "$1" in
    gcc) echo "a C compiler (\$CC)" ;;
    libsqlite3-dev) echo "pkg-config module sqlite3 >= 3.40" ;;
    check) echo "pkg-config module check" ;;
    libuv1-dev) echo "pkg-config module libuv" ;;
    libevent-dev) echo "pkg-config module libevent" ;;
    libjansson-dev) echo "pkg-config module jansson" ;;
    python3) echo "$python" ;;
    python3-apsw) echo "Python module apsw" ;;
    python3-aiosqlite) echo "Python module aiosqlite" ;;
    sqlite-utils) echo "Python module sqlite_utils" ;;
    python3-dev) echo "Python.h of $python" ;;
    python3-setuptools) echo "Python module setuptools" ;;
    python3-pip) echo "Python module pip" ;;
    python3-pytest) echo "Python module pytest" ;;
    python3-pytest-asyncio) echo "Python module pytest_asyncio" ;;
    libclang-rt-14-dev) echo "clang's libFuzzer (-fsanitize=fuzzer)" ;;
    *) echo "program $1" ;;
  esac
}

missing=""
for pkg in "$@"; do
  have "$pkg" || missing="$missing $pkg"
done

[ -z "$missing" ] && exit 0

if [ "$(id -u 2>/dev/null || echo 1)" = 0 ] &&
  command -v apt-get >/dev/null 2>&1; then
  echo "deps.sh: installing missing packages:$missing"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
  exit 0
fi

for pkg in $missing; do
  echo "deps.sh: missing $(what "$pkg") (Debian: $pkg)" >&2
done
echo "deps.sh: on Debian 12: sudo apt-get install$missing" >&2
exit 1
