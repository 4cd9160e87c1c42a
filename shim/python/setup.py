# setup.py: builds the sqlq package's C core, _sqlq, linked with the static
# libsqlq.a of this repository (which `make` builds; this runs it if the
# library is missing).  Offline, from the repository:
#   make python                                   (in place, for the tests)
#   python3 -m pip install --no-build-isolation ./shim/python
import os
import re
import subprocess

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("SQLQ_BUILD", os.path.join(ROOT, "build"))
LIB = os.path.join(BUILD, "libsqlq.a")

# The package's version is the library's (SQLQ_VERSION in sqlq.h).
with open(os.path.join(ROOT, "shim", "sqlq.h")) as f:
    VERSION = re.search(r'#define SQLQ_VERSION "([^"]+)"', f.read()).group(1)

if not os.path.exists(LIB):
    subprocess.run(["make", "-C", ROOT, "BUILD=" + BUILD, LIB], check=True)

setup(
    name="sqlq",
    version=VERSION,
    description="SQLite for asyncio: one writer with group commit, a pool "
                "of readers under time limits, cancel that stops a query",
    license="MIT",
    packages=["sqlq"],
    ext_modules=[
        Extension(
            "sqlq._sqlq",
            sources=["sqlq/_sqlq.c"],
            include_dirs=[os.path.join(ROOT, "shim")],
            extra_objects=[LIB],
            libraries=["sqlite3"],
            extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-Werror",
                                "-Wno-missing-field-initializers"],
            extra_link_args=["-pthread"],
        )
    ],
    python_requires=">=3.11",
)
