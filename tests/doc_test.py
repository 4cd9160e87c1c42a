#!/usr/bin/python3
# tests/doc_test.py: the error texts and the option defaults live in one
# place, shim/sqlq.h (SQLQ_ERRNO_MAP and the SQLQ_DEFAULT_* macros); this
# checks that README.md's tables quote them exactly: every code with its
# value and its sqlq_strerror() text, every default.  And every C or Python
# snippet of README.md is a whole program of the repository, quoted exactly:
# its first line names the file (tests/install_test.sh builds and runs the C
# ones, make test-python the Python one).
#
# Usage, from the repository root: /usr/bin/python3 tests/doc_test.py
# Exits non-zero, naming each difference, if they disagree.

import re
import sys


def header_errors(header):
    """(name, value, text) of every SQLQ_ERRNO_MAP entry."""
    start = header.index("#define SQLQ_ERRNO_MAP(XX)")
    body = header[start:header.index("enum {", start)].replace("\\\n", "\n")
    entries = re.findall(r'XX\((\w+),\s*(-?\d+),\s*((?:"[^"]*"\s*)+)\)', body)
    return [(name, int(value), "".join(re.findall(r'"([^"]*)"', text)))
            for name, value, text in entries]


def readme_table(readme, heading):
    """The rows of the first table after heading, as lists of cells."""
    start = re.search(r"^%s\b" % re.escape(heading), readme, re.M).start()
    rows = []
    for line in readme[start:].splitlines()[1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
        elif rows:
            break
    return rows[2:]  # past the head and the rule


def main():
    header = open("shim/sqlq.h").read()
    readme = open("README.md").read()
    bad = []

    errors = {row[0]: row for row in readme_table(readme, "### Errors")}
    for name, value, text in header_errors(header):
        row = errors.pop("`SQLQ_%s`" % name, None)
        if row is None:
            bad.append("README.md has no row for SQLQ_%s" % name)
        elif row[1] != str(value) or row[2] != text:
            bad.append("SQLQ_%s: README.md says %s, %r; sqlq.h says %d, %r"
                       % (name, row[1], row[2], value, text))
    bad += ["README.md lists %s, which sqlq.h does not define" % name
            for name in errors]

    # A default that scales with the machine is SQLQ_DEFAULT_X_PER_CORE,
    # quoted as "N per core".
    defaults = dict(re.findall(r"#define SQLQ_DEFAULT_(\w+) (\d+)", header))
    options = readme_table(readme, "### Options")
    for field, value, _ in options:
        name = field.strip("`").upper()
        if name + "_PER_CORE" in defaults:
            name += "_PER_CORE"
            value = value if value.split()[1:3] == ["per", "core"] else ""
        if name in defaults:
            want = defaults.pop(name)
            found = re.match(r"\d+", value)
            if found is None or found.group(0) != want:
                bad.append("option %s: README.md says %s, sqlq.h %s"
                           % (field, value, want))
    bad += ["SQLQ_DEFAULT_%s has no row in README.md's options" % name
            for name in defaults]

    blocks = re.findall(r"^```(c|python)\n(.*?)^```$", readme, re.M | re.S)
    for lang, block in blocks:
        named = re.match(r"(?:/\*|#) (\S+): ", block)
        if named is None:
            bad.append("a %s snippet of README.md names no file: %r"
                       % (lang, block[:60]))
        elif open(named.group(1)).read() != block:
            bad.append("README.md's %s is not the file's text"
                       % named.group(1))

    for line in bad:
        print("FAIL doc_test: " + line)
    if not bad:
        print("ok   doc_test: README.md quotes sqlq.h's error texts and "
              "defaults, and its programs")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
