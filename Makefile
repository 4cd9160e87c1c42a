# Makefile: builds the timelimit SQLite extension (ext/), the sqlq library
# (shim/), and their tests, benchmarks and demo.
#
#   make                 ext/timelimit.so, build/libtimelimit.a, timelimit.pc,
#                        build/libsqlq.a, build/libsqlq.so, sqlq.pc
#   make test            every test: Check suites, sql/ scripts, Python clients
#   make sanitize        the C tests under ASan+UBSan, then under TSan
#   make test-long       the crash test for 200 rounds (CI runs it)
#   make valgrind        the C tests under valgrind
#   make bench           the benchmarks (tests/bench/)
#   make fuzz            the libFuzzer harness of the extension for FUZZ_TIME
#                        seconds (default 60), from tests/fuzz_corpus
#   make demo            sql/demo.sql in the sqlite3 shell, then the sqlq demo
#   make install PREFIX=/usr/local DESTDIR=
#   make uninstall, make clean
#
# CFLAGS is yours (default -O2 -g); the project's flags are appended to it.
# SANITIZE=address,undefined or SANITIZE=thread builds into BUILD with that
# sanitizer.

CC ?= cc
CFLAGS ?= -O2 -g
PKG_CONFIG ?= pkg-config
PYTHON ?= /usr/bin/python3
SQLITE3 ?= sqlite3
BUILD ?= build
SANITIZE ?=

PREFIX ?= /usr/local
INCLUDEDIR ?= $(PREFIX)/include
LIBDIR ?= $(PREFIX)/lib
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
EXTDIR ?= $(LIBDIR)/sqlite3

# The versions live in the headers (SQLQ_VERSION, TIMELIMIT_VERSION); the
# .pc files and the SONAME (libsqlq.so.MAJOR) follow them.
header_version = $(shell sed -n 's/^\#define $(1) "\(.*\)"/\1/p' $(2))
VERSION := $(call header_version,SQLQ_VERSION,shim/sqlq.h)
TL_VERSION := $(call header_version,TIMELIMIT_VERSION,ext/timelimit.h)

# Debian packages: to build, to run the tests, to run the demo.
DEPS_BUILD = gcc make pkg-config libsqlite3-dev
DEPS_TEST = $(DEPS_BUILD) check sqlite3 python3 python3-apsw python3-aiosqlite \
  sqlite-utils libuv1-dev libevent-dev libjansson-dev python3-dev \
  python3-setuptools python3-pip python3-pytest python3-pytest-asyncio
DEPS_DEMO = $(DEPS_BUILD) sqlite3
DEPS_FUZZ = $(DEPS_BUILD) clang libclang-rt-14-dev
FUZZ_CC ?= clang
FUZZ_TIME ?= 60

SQLITE_CFLAGS = $(shell $(PKG_CONFIG) --cflags sqlite3)
SQLITE_LIBS = $(shell $(PKG_CONFIG) --libs sqlite3)
CHECK_CFLAGS = $(shell $(PKG_CONFIG) --cflags check)
CHECK_LIBS = $(shell $(PKG_CONFIG) --libs check)

PROJECT_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
  -pthread -fPIC
ifneq ($(SANITIZE),)
PROJECT_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer \
  -fno-sanitize-recover=all
SANITIZE_LDFLAGS = -fsanitize=$(SANITIZE)
endif
ALL_CFLAGS = $(CFLAGS) $(PROJECT_CFLAGS) $(SQLITE_CFLAGS)
ALL_LDFLAGS = $(LDFLAGS) $(SANITIZE_LDFLAGS) -pthread

EXT_SO = ext/timelimit.so
TL_OBJ = $(BUILD)/timelimit.o
TL_LIB = $(BUILD)/libtimelimit.a
TL_PC = $(BUILD)/timelimit.pc
SQLQ_SRC = shim/sqlq.c shim/run.c shim/pool.c shim/task.c shim/conn.c \
  shim/stats.c shim/result.c
SQLQ_HDR = shim/sqlq.h shim/sqlq_int.h ext/timelimit.h
SQLQ_OBJ = $(SQLQ_SRC:shim/%.c=$(BUILD)/sqlq-%.o)
SQLQ_LIB = $(BUILD)/libsqlq.a
SQLQ_SONAME = libsqlq.so.$(firstword $(subst ., ,$(VERSION)))
SQLQ_SO = $(BUILD)/$(SQLQ_SONAME)
SQLQ_PC = $(BUILD)/sqlq.pc
CHECK_BIN = $(BUILD)/check_all
CHECK_SO = $(BUILD)/timelimit.so
CHECK_SRC = tests/check_main.c tests/check_timelimit.c tests/check_hostile.c \
  tests/tl_util.c tests/check_sqlq.c
CHECK_HDR = tests/tests.h tests/tl_util.h ext/timelimit.h shim/sqlq.h
STRESS_BIN = $(BUILD)/stress_sqlq
CRASH_BIN = $(BUILD)/crash_sqlq
FAULT_BIN = $(BUILD)/fault_sqlq
EXAMPLE_BIN = $(BUILD)/http_server
DEMO_BIN = $(BUILD)/demo
# The README's quick starts, built here with the project's flags (-Werror);
# tests/install_test.sh builds and runs them against an install.
QUICKSTART_BIN = $(BUILD)/quickstart_timelimit $(BUILD)/quickstart_sqlq
# The event-loop adapters (shim/adapters/), each with its example.
ADAPTER_BIN = $(BUILD)/uv_example $(BUILD)/event_example \
  $(BUILD)/epoll_example
BENCH_BINS = $(BUILD)/bench_timelimit $(BUILD)/bench_sqlq
# Every sql/ script but the demo has a .expected transcript.
SQL_TESTS = $(filter-out sql/demo.sql,$(wildcard sql/*.sql))

# A sanitized build makes only what the C tests need.
ifeq ($(SANITIZE),)
all: $(EXT_SO) $(TL_LIB) $(TL_PC) $(SQLQ_LIB) $(SQLQ_SO) $(SQLQ_PC)
else
all: $(TL_LIB) $(SQLQ_LIB)
endif

# Stamps that change when a setting does, so that what depends on it is made
# again: the compiler and its flags (CC=clang after a gcc build rebuilds
# everything), and the install paths (the .pc files of make install PREFIX=).
CC_STAMP = $(BUILD)/cc.stamp
PATHS_STAMP = $(BUILD)/paths.stamp
CC_SETTING = $(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)
PATHS_SETTING = $(PREFIX) $(INCLUDEDIR) $(LIBDIR) $(VERSION) $(TL_VERSION)

$(CC_STAMP): FORCE | $(BUILD)
	@printf '%s\n' '$(CC_SETTING)' | cmp -s - $@ || \
	  printf '%s\n' '$(CC_SETTING)' > $@

$(PATHS_STAMP): FORCE | $(BUILD)
	@printf '%s\n' '$(PATHS_SETTING)' | cmp -s - $@ || \
	  printf '%s\n' '$(PATHS_SETTING)' > $@

FORCE:

$(BUILD):
	mkdir -p $(BUILD)

# The loadable extension exports only sqlite3_timelimit_init and does not
# link libsqlite3: it calls SQLite through the pointer the loader gives it.
$(EXT_SO): ext/timelimit.c ext/timelimit.h $(CC_STAMP)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -shared -o $@ ext/timelimit.c \
	  $(ALL_LDFLAGS)

# The same source, for static linking (-DSQLITE_CORE).
$(TL_OBJ): ext/timelimit.c ext/timelimit.h $(CC_STAMP) | $(BUILD)
	$(CC) $(ALL_CFLAGS) -DSQLITE_CORE -c -o $@ ext/timelimit.c

$(TL_LIB): $(TL_OBJ)
	rm -f $@
	ar rcs $@ $(TL_OBJ)

$(BUILD)/%.pc: Makefile $(PATHS_STAMP) | $(BUILD)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	  -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(PC_VERSION)|' \
	  $(filter %.pc.in,$^) > $@

$(TL_PC): ext/timelimit.pc.in ext/timelimit.h
$(TL_PC): PC_VERSION = $(TL_VERSION)
$(SQLQ_PC): shim/sqlq.pc.in shim/sqlq.h
$(SQLQ_PC): PC_VERSION = $(VERSION)

# The shim, with the extension compiled in (it registers it on every
# connection it opens).
$(BUILD)/sqlq-%.o: shim/%.c $(SQLQ_HDR) $(CC_STAMP) | $(BUILD)
	$(CC) $(ALL_CFLAGS) -DSQLITE_CORE -Iext -Ishim -c -o $@ $<

$(SQLQ_LIB): $(SQLQ_OBJ) $(TL_OBJ)
	rm -f $@
	ar rcs $@ $(SQLQ_OBJ) $(TL_OBJ)

# The shared library exports only sqlq_* (shim/sqlq.map).
$(SQLQ_SO): $(SQLQ_OBJ) $(TL_OBJ) shim/sqlq.map
	$(CC) -shared -Wl,-soname,$(SQLQ_SONAME) \
	  -Wl,--version-script=shim/sqlq.map -o $@ $(SQLQ_OBJ) $(TL_OBJ) \
	  $(SQLITE_LIBS) $(ALL_LDFLAGS)
	ln -sf $(SQLQ_SONAME) $(BUILD)/libsqlq.so

$(CHECK_BIN): $(CHECK_SRC) $(CHECK_HDR) $(SQLQ_LIB) \
  $(CC_STAMP)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -DSQLITE_CORE -Iext -Ishim -o $@ \
	  $(CHECK_SRC) $(SQLQ_LIB) $(SQLITE_LIBS) $(CHECK_LIBS) -ldl $(ALL_LDFLAGS)

# The loadable build with this build's flags, which the Check suites load
# next to the statically linked copy.
$(CHECK_SO): ext/timelimit.c ext/timelimit.h $(CC_STAMP) | $(BUILD)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -shared -o $@ ext/timelimit.c \
	  $(ALL_LDFLAGS)

$(STRESS_BIN): tests/stress_sqlq.c tests/testprog.h shim/sqlq.h $(SQLQ_LIB) \
  $(CC_STAMP)
	$(CC) $(ALL_CFLAGS) -Ishim -o $@ tests/stress_sqlq.c $(SQLQ_LIB) \
	  $(SQLITE_LIBS) $(ALL_LDFLAGS)

$(CRASH_BIN): tests/crash_sqlq.c tests/testprog.h shim/sqlq.h $(SQLQ_LIB) \
  $(CC_STAMP)
	$(CC) $(ALL_CFLAGS) -Ishim -o $@ tests/crash_sqlq.c $(SQLQ_LIB) \
	  $(SQLITE_LIBS) $(ALL_LDFLAGS)

# The library's own allocations go through wrappers that the sweep can fail.
$(FAULT_BIN): tests/fault_sqlq.c tests/faultvfs.c tests/faultvfs.h \
  tests/testprog.h shim/sqlq.h $(SQLQ_LIB)
	$(CC) $(ALL_CFLAGS) -Ishim -o $@ tests/fault_sqlq.c tests/faultvfs.c \
	  $(SQLQ_LIB) \
	  $(SQLITE_LIBS) $(ALL_LDFLAGS) \
	  -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup

# The HTTP server: evhttp (libevent) and jansson, on the libevent adapter.
$(EXAMPLE_BIN): shim/examples/http_server.c shim/adapters/sqlq_libevent.h \
  shim/sqlq.h $(SQLQ_LIB) $(CC_STAMP)
	$(CC) $(ALL_CFLAGS) -Ishim -Ishim/adapters \
	  $(shell $(PKG_CONFIG) --cflags libevent jansson) -o $@ \
	  shim/examples/http_server.c $(SQLQ_LIB) $(SQLITE_LIBS) \
	  $(shell $(PKG_CONFIG) --libs libevent jansson) -lm $(ALL_LDFLAGS)

$(DEMO_BIN): shim/examples/demo.c shim/sqlq.h $(SQLQ_LIB) \
  $(CC_STAMP)
	$(CC) $(ALL_CFLAGS) -Ishim -o $@ shim/examples/demo.c $(SQLQ_LIB) \
	  $(SQLITE_LIBS) $(ALL_LDFLAGS)

$(BUILD)/bench_sqlq: tests/bench/bench_sqlq.c tests/testprog.h shim/sqlq.h \
  $(SQLQ_LIB)
	$(CC) $(ALL_CFLAGS) -Ishim -Itests -o $@ tests/bench/bench_sqlq.c $(SQLQ_LIB) \
	  $(SQLITE_LIBS) -lm $(ALL_LDFLAGS)

$(BUILD)/bench_timelimit: tests/bench/bench_timelimit.c ext/timelimit.h $(TL_LIB)
	$(CC) $(ALL_CFLAGS) -DSQLITE_CORE -Iext -o $@ \
	  tests/bench/bench_timelimit.c $(TL_LIB) $(SQLITE_LIBS) -lm $(ALL_LDFLAGS)

# Targets that first make sure the Debian packages are there, then run the
# real target in a new make (so pkg-config is asked only once it exists).
test:
	@scripts/deps.sh $(DEPS_TEST)
	@$(MAKE) --no-print-directory test-c test-sql test-python test-clients \
	  test-example test-adapters test-pymod test-install test-docs test-deps

# The extension in the sqlite3 shell (whose exit status is 1 for the errors
# the demo shows on purpose; a shell killed by a signal fails the demo), then
# the sqlq library at work.
demo:
	@scripts/deps.sh $(DEPS_DEMO)
	@$(MAKE) --no-print-directory $(EXT_SO) $(DEMO_BIN)
	@rc=0; stdbuf -oL $(SQLITE3) :memory: < sql/demo.sql 2>&1 || rc=$$?; \
	  [ $$rc -le 1 ] || { echo "make demo: the sqlite3 shell failed ($$rc)"; \
	  exit 1; }
	d=$$(mktemp -d) && $(DEMO_BIN) $$d; rc=$$?; rm -rf $$d; exit $$rc

sanitize:
	@scripts/deps.sh $(DEPS_TEST)
	@$(MAKE) --no-print-directory BUILD=build/asan \
	  SANITIZE=address,undefined test-c
	@$(MAKE) --no-print-directory BUILD=build/tsan SANITIZE=thread test-c
	@$(MAKE) --no-print-directory BUILD=build/asan \
	  SANITIZE=address,undefined test-pymod

valgrind:
	@scripts/deps.sh $(DEPS_TEST) valgrind
	@$(MAKE) --no-print-directory $(CHECK_BIN) $(CHECK_SO)
	TIMELIMIT_SO=$(CHECK_SO) CK_FORK=no CK_TIMEOUT_MULTIPLIER=20 valgrind --error-exitcode=1 \
	  --leak-check=full --errors-for-leak-kinds=definite $(CHECK_BIN)

# The fuzzer adds what it finds to a scratch corpus (the committed seeds stay
# as they are) and leaves a crashing input in $(BUILD)/fuzz/.
FUZZ_BIN = $(BUILD)/fuzz/fuzz_timelimit
fuzz:
	@scripts/deps.sh $(DEPS_FUZZ)
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	d=$$(mktemp -d) && $(FUZZ_BIN) -max_total_time=$(FUZZ_TIME) -timeout=10 \
	  -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/ $$d \
	  tests/fuzz_corpus > $$d/log 2>&1; rc=$$?; tail -25 $$d/log; \
	  rm -rf $$d; exit $$rc

$(FUZZ_BIN): tests/fuzz_timelimit.c ext/timelimit.c ext/timelimit.h
	mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=all -std=c11 -D_POSIX_C_SOURCE=200809L -Wall \
	  -Wextra -Werror -DSQLITE_CORE -Iext $(SQLITE_CFLAGS) -o $@ \
	  tests/fuzz_timelimit.c ext/timelimit.c $(SQLITE_LIBS) -lm -pthread

bench:
	@scripts/deps.sh $(DEPS_BUILD) python3 libevent-dev libjansson-dev wrk \
	  python3-dev python3-setuptools python3-aiosqlite
	@$(MAKE) --no-print-directory $(BENCH_BINS) $(EXAMPLE_BIN) python
	$(BUILD)/bench_timelimit
	d=$$(mktemp -d) && $(BUILD)/bench_sqlq $$d; rc=$$?; rm -rf $$d; exit $$rc
	d=$$(mktemp -d) && $(PYTHON) tests/bench/bench_http.py $(EXAMPLE_BIN) $$d; \
	  rc=$$?; rm -rf $$d; exit $$rc
	d=$$(mktemp -d) && $(PY_ENV) $(PYTHON) shim/python/bench.py $$d; \
	  rc=$$?; rm -rf $$d; exit $$rc

# Slow sanitizer builds get more time per Check test; test files go under
# BUILD, so a failed test leaves nothing in the source tree.
test-c: $(CHECK_BIN) $(CHECK_SO) $(STRESS_BIN) $(CRASH_BIN) $(FAULT_BIN)
	mkdir -p $(BUILD)/tmp
	TMPDIR=$(BUILD)/tmp TIMELIMIT_SO=$(CHECK_SO) CK_TIMEOUT_MULTIPLIER=$(if $(SANITIZE),10,1) $(CHECK_BIN)
	d=$$(mktemp -d) && $(STRESS_BIN) $$d; rc=$$?; rm -rf $$d; exit $$rc
	d=$$(mktemp -d) && rc=0 && for m in lib sqlite sqlite-burst io io-persist power; do \
	  $(FAULT_BIN) $$d $$m && $(FAULT_BIN) $$d $$m-mt || { rc=1; break; }; \
	  done; rm -rf $$d; exit $$rc
	d=$$(mktemp -d) && $(CRASH_BIN) $$d $(if $(SANITIZE),10,30) > $$d/log; \
	  rc=$$?; if [ $$rc = 0 ]; then tail -1 $$d/log; else cat $$d/log; fi; \
	  rm -rf $$d; exit $$rc

# The SIGKILL loop at length: 200 rounds.
test-long:
	@scripts/deps.sh $(DEPS_TEST)
	@$(MAKE) --no-print-directory $(CRASH_BIN)
	d=$$(mktemp -d) && $(CRASH_BIN) $$d 200 > $$d/log; rc=$$?; \
	  if [ $$rc = 0 ]; then tail -1 $$d/log; else cat $$d/log; fi; \
	  rm -rf $$d; exit $$rc

test-sql: $(EXT_SO)
	tests/sqltest.sh $(SQLITE3) $(SQL_TESTS)

test-python: $(EXT_SO)
	$(PYTHON) tests/test_timelimit.py $(EXT_SO)
	d=$$(mktemp -d) && mkdir $$d/ext && cp $(EXT_SO) $$d/ext/ && \
	  out=$$(cd $$d && $(PYTHON) $(CURDIR)/ext/examples/quickstart.py); \
	  rm -rf $$d; [ "$$out" = "interrupted deadline" ] || \
	  { echo "quickstart.py printed '$$out'"; exit 1; }; \
	  echo "ok   ext/examples/quickstart.py"

# The Python package (shim/python): its C core built against this build's
# libsqlq.a into $(PY_LIB), its pytest suite and example, and an install
# with pip.  Under SANITIZE the interpreter preloads the sanitizer runtime
# (CPython's own allocations at exit are not leaks of ours).
PY_LIB = $(BUILD)/python/lib
PY_SRC = shim/python/setup.py shim/python/sqlq/__init__.py \
  shim/python/sqlq/_sqlq.c
PY_ENV = PYTHONPATH=$(CURDIR)/$(PY_LIB) $(if $(SANITIZE),\
  LD_PRELOAD=$$($(CC) -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0)
python: $(PY_LIB)/sqlq/__init__.py
$(PY_LIB)/sqlq/__init__.py: $(PY_SRC) shim/sqlq.h $(SQLQ_LIB) $(CC_STAMP)
	cd shim/python && SQLQ_BUILD=$(CURDIR)/$(BUILD) CC="$(CC)" \
	  CFLAGS="$(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer)" \
	  LDFLAGS="$(SANITIZE_LDFLAGS)" $(PYTHON) setup.py -q build \
	  --build-base $(CURDIR)/$(BUILD)/python --build-lib $(CURDIR)/$(PY_LIB) \
	  --force
	touch $@

test-pymod: python
	$(PY_ENV) $(PYTHON) -m pytest -q -p no:cacheprovider \
	  -c shim/python/pytest.ini shim/python/tests
	$(PY_ENV) $(PYTHON) shim/python/examples/bot.py
	d=$$(mktemp -d) && out=$$(cd $$d && $(PY_ENV) $(PYTHON) \
	  $(CURDIR)/shim/python/examples/quickstart.py); rm -rf $$d; \
	  [ "$$out" = "$$(printf '1 1\n1 hello\na runaway query stopped')" ] || \
	  { echo "quickstart.py printed '$$out'"; exit 1; }; \
	  echo "ok   shim/python/examples/quickstart.py"
ifeq ($(SANITIZE),)
	d=$$(mktemp -d) && $(PYTHON) -m pip install -q --no-build-isolation \
	  --no-index --target $$d ./shim/python 2>&1 | grep -v 'root' ; \
	  out=$$(cd $$d && $(PYTHON) -c 'import sqlq; print(sqlq.__file__)'); \
	  rm -rf $$d shim/python/build shim/python/sqlq.egg-info; \
	  case "$$out" in $$d/*) echo "ok   pip install ./shim/python";; \
	  *) echo "pip install ./shim/python: imported '$$out'"; exit 1;; esac
endif

# README.md's error texts and defaults are sqlq.h's.
test-docs:
	$(PYTHON) tests/doc_test.py

# The extension inside real clients: APSW, aiosqlite, sqlite-utils.
test-clients: $(EXT_SO)
	$(PYTHON) tests/test_clients.py $(EXT_SO)

# The HTTP server, driven by a real HTTP client.
test-example: $(EXAMPLE_BIN) $(QUICKSTART_BIN)
	$(PYTHON) tests/test_http_server.py $(EXAMPLE_BIN)

$(BUILD)/quickstart_timelimit: ext/examples/quickstart.c ext/timelimit.h \
  $(TL_LIB) $(CC_STAMP)
	$(CC) $(ALL_CFLAGS) -Iext -o $@ ext/examples/quickstart.c $(TL_LIB) \
	  $(SQLITE_LIBS) $(ALL_LDFLAGS)

$(BUILD)/quickstart_sqlq: shim/examples/quickstart.c shim/sqlq.h $(SQLQ_LIB) \
  $(CC_STAMP)
	$(CC) $(ALL_CFLAGS) -Ishim -o $@ shim/examples/quickstart.c $(SQLQ_LIB) \
	  $(SQLITE_LIBS) $(ALL_LDFLAGS)

# The adapters on the real libuv and libevent: every completion on the
# loop's thread, the loop ticking while a runaway query runs.
test-adapters: $(ADAPTER_BIN)
	d=$$(mktemp -d) && rc=0 && for b in $(ADAPTER_BIN); do \
	  $$b $$d || rc=1; done; rm -rf $$d; exit $$rc

$(BUILD)/uv_example: shim/examples/uv_example.c shim/examples/loop_demo.h \
  shim/adapters/sqlq_libuv.h shim/sqlq.h $(SQLQ_LIB) $(CC_STAMP)
	$(CC) $(ALL_CFLAGS) -Ishim -Ishim/adapters \
	  $(shell $(PKG_CONFIG) --cflags libuv) -o $@ shim/examples/uv_example.c \
	  $(SQLQ_LIB) $(SQLITE_LIBS) $(shell $(PKG_CONFIG) --libs libuv) \
	  $(ALL_LDFLAGS)

$(BUILD)/event_example: shim/examples/event_example.c \
  shim/examples/loop_demo.h shim/adapters/sqlq_libevent.h shim/sqlq.h \
  $(SQLQ_LIB) $(CC_STAMP)
	$(CC) $(ALL_CFLAGS) -Ishim -Ishim/adapters \
	  $(shell $(PKG_CONFIG) --cflags libevent) -o $@ \
	  shim/examples/event_example.c $(SQLQ_LIB) $(SQLITE_LIBS) \
	  $(shell $(PKG_CONFIG) --libs libevent) $(ALL_LDFLAGS)

# The same on a bare epoll loop: no library but libc.
$(BUILD)/epoll_example: shim/examples/epoll_example.c \
  shim/examples/loop_demo.h shim/sqlq.h $(SQLQ_LIB) $(CC_STAMP)
	$(CC) $(ALL_CFLAGS) -Ishim -o $@ shim/examples/epoll_example.c \
	  $(SQLQ_LIB) $(SQLITE_LIBS) $(ALL_LDFLAGS)

test-deps:
	CC="$(CC)" tests/deps_test.sh

test-install: all
	CC="$(CC)" tests/install_test.sh "$(MAKE)" $(SQLITE3)

install: all
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) \
	  $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(EXTDIR)
	install -m 644 ext/timelimit.h $(DESTDIR)$(INCLUDEDIR)/timelimit.h
	install -m 644 $(TL_LIB) $(DESTDIR)$(LIBDIR)/libtimelimit.a
	install -m 644 $(TL_PC) $(DESTDIR)$(PKGCONFIGDIR)/timelimit.pc
	install -m 755 $(EXT_SO) $(DESTDIR)$(EXTDIR)/timelimit.so
	install -m 644 shim/sqlq.h $(DESTDIR)$(INCLUDEDIR)/sqlq.h
	install -m 644 shim/adapters/sqlq_libuv.h \
	  $(DESTDIR)$(INCLUDEDIR)/sqlq_libuv.h
	install -m 644 shim/adapters/sqlq_libevent.h \
	  $(DESTDIR)$(INCLUDEDIR)/sqlq_libevent.h
	install -m 644 $(SQLQ_LIB) $(DESTDIR)$(LIBDIR)/libsqlq.a
	install -m 755 $(SQLQ_SO) $(DESTDIR)$(LIBDIR)/$(SQLQ_SONAME)
	ln -sf $(SQLQ_SONAME) $(DESTDIR)$(LIBDIR)/libsqlq.so
	install -m 644 $(SQLQ_PC) $(DESTDIR)$(PKGCONFIGDIR)/sqlq.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/timelimit.h \
	  $(DESTDIR)$(LIBDIR)/libtimelimit.a \
	  $(DESTDIR)$(PKGCONFIGDIR)/timelimit.pc \
	  $(DESTDIR)$(EXTDIR)/timelimit.so \
	  $(DESTDIR)$(INCLUDEDIR)/sqlq.h $(DESTDIR)$(LIBDIR)/libsqlq.a \
	  $(DESTDIR)$(INCLUDEDIR)/sqlq_libuv.h \
	  $(DESTDIR)$(INCLUDEDIR)/sqlq_libevent.h \
	  $(DESTDIR)$(LIBDIR)/$(SQLQ_SONAME) $(DESTDIR)$(LIBDIR)/libsqlq.so \
	  $(DESTDIR)$(PKGCONFIGDIR)/sqlq.pc

clean:
	rm -rf build $(EXT_SO)

.PHONY: FORCE all test demo sanitize valgrind bench fuzz test-long test-c test-sql test-python python test-pymod \
  test-clients test-docs test-deps test-example test-adapters test-install \
  install \
  uninstall clean
