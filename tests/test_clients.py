#!/usr/bin/python3
# tests/test_clients.py: loads the real loadable extension ext/timelimit.so
# into three real clients from Debian 12 packages and checks, through each
# client's own API and error types, what the manual at the top of
# ext/timelimit.c promises: time limits, step budgets, interruption by
# connection id, the timelimit_activity table and timelimit_lock(); for
# aiosqlite, that a runaway query does not block the asyncio event loop; and
# what happens when the client's own hook-setting features (APSW's
# setprogresshandler, sqlite3's set_progress_handler and set_trace_callback)
# replace the extension's hooks: the `hooks` column of timelimit_activity
# shows it, timelimit_interrupt never claims to stop a statement it cannot
# stop, and loading the extension again restores the hooks.
#
# The clients (Debian packages):
#   APSW          python3-apsw       import apsw
#   aiosqlite     python3-aiosqlite  import aiosqlite
#   sqlite-utils  sqlite-utils       import sqlite_utils (its Python API)
#
# Usage, from the repository root, with Debian's own Python:
#   /usr/bin/python3 tests/test_clients.py ext/timelimit.so [-v] [test ...]
# Exits non-zero if any test fails.  Nothing here sleeps to wait for a
# condition: threads are synchronised with bounded waits on threading.Event
# (asyncio.Event for aiosqlite), and every runaway query has a watchdog that
# stops it with the client's sqlite3_interrupt() after WAIT seconds.

import asyncio
import sqlite3
import sys
import threading
import time
import unittest

try:
    import aiosqlite
    import apsw
    import sqlite_utils
except ImportError as e:
    sys.stderr.write("%s: %s\nneeds the Debian packages: apt-get install "
                     "python3-apsw python3-aiosqlite sqlite-utils\n"
                     % (sys.argv[0], e))
    sys.exit(2)

EXT_PATH = None  # argv[1], set in main()

# The queries and the bound of every wait are test_timelimit.py's.
import test_timelimit  # noqa: E402
from test_timelimit import COUNT_100K, COUNT_N, UNBOUNDED, UNBOUNDED_SIGNAL
from test_timelimit import WAIT  # noqa: E402


# Values of timelimit_activity.hooks once the extension has seen that its
# hooks were replaced (progress handler, trace hook, both).
HOOKS_REPLACED = ("progress replaced", "trace replaced", "replaced")

LOCKED_PREFIX = "timelimit(ms): the connection is locked"


class Watchdog:
    """Calls interrupt() on a timer thread after delay seconds.

    A safety net only, so that a query the extension fails to stop cannot
    hang the test; fired tells whether it had to act (a test failure where
    the extension was expected to stop the query).
    """

    def __init__(self, interrupt, delay=WAIT):
        self.fired = threading.Event()

        def fire():
            self.fired.set()
            interrupt()

        self.timer = threading.Timer(delay, fire)
        self.timer.daemon = True
        self.timer.start()

    def cancel(self):
        self.timer.cancel()


class Helpers:
    """Helpers shared by the synchronous and the asyncio test cases."""

    def watchdog(self, interrupt, delay=WAIT):
        dog = Watchdog(interrupt, delay)
        self.addCleanup(dog.cancel)  # runs before the connection's close
        return dog

    def assertNotWatchdog(self, dog, what="the query"):
        self.assertFalse(
            dog.fired.is_set(),
            "%s ran on until the watchdog's sqlite3_interrupt() stopped it "
            "after %.1f s" % (what, WAIT))


class BlockingClientTests(Helpers):
    """The tests of the blocking clients (APSW, sqlite-utils).

    A subclass adapts them to its client: connect(), rows(), started(),
    interrupt(), message(), load_again(), HOOK_REPLACEMENTS and the error
    types INTERRUPT_ERROR and SQL_ERROR.  Connections may be used from any
    thread.
    """

    def one(self, conn, sql, params=()):
        """The first column of the first row of sql."""
        return self.rows(conn, sql, params)[0][0]

    def hooks(self, conn, cid):
        """timelimit_activity.hooks of connection cid, read on conn."""
        return self.one(conn,
                        "SELECT hooks FROM timelimit_activity WHERE id = ?",
                        (cid,))

    def assertInterrupted(self, conn, sql=UNBOUNDED, params=()):
        """sql fails with the client's "interrupted" error."""
        with self.assertRaises(self.INTERRUPT_ERROR) as cm:
            self.rows(conn, sql, params)
        self.assertEqual(self.message(cm.exception), "interrupted")

    def assertInterruptedError(self, out):
        """The worker of start_unbounded() failed with "interrupted"."""
        self.assertNotIn("result", out)
        self.assertIsInstance(out.get("error"), self.INTERRUPT_ERROR)
        self.assertEqual(self.message(out["error"]), "interrupted")

    def start_unbounded(self, conn):
        """Runs UNBOUNDED_SIGNAL on conn in a worker thread.

        Returns a function join(timeout) that waits (bounded) for the worker
        and returns (out, alive): out['error'] is what the query raised, or
        out['result'] its rows.  The query is known to be running when this
        returns.
        """
        started = threading.Event()

        def signal():
            started.set()
            return 1

        self.started(conn, signal)
        out = {}

        def work():
            try:
                out["result"] = self.rows(conn, UNBOUNDED_SIGNAL)
            except Exception as e:  # noqa: BLE001 - reported by the test
                out["error"] = e

        t = threading.Thread(target=work, daemon=True)

        def stop_runaway():
            # If nothing stopped the query, stop it with sqlite3_interrupt()
            # so that the connection can be closed.
            if t.is_alive():
                self.interrupt(conn)
                t.join(WAIT)

        self.addCleanup(stop_runaway)  # runs before conn's close (LIFO)
        t.start()
        self.assertTrue(started.wait(WAIT), "the query never started")

        def join(timeout=WAIT):
            t.join(timeout)
            return out, t.is_alive()

        return join

    # ---- What works on an unmodified connection --------------------------

    def test_deadline(self):
        """timelimit(100) stops a runaway with the client's interrupted error."""
        conn = self.connect()
        dog = self.watchdog(lambda: self.interrupt(conn))
        self.assertEqual(self.one(conn, "SELECT timelimit(100)"), 0)
        t0 = time.monotonic()
        self.assertInterrupted(conn)
        elapsed = time.monotonic() - t0
        self.assertNotWatchdog(dog)
        self.assertGreaterEqual(elapsed, 0.100)
        self.assertLess(elapsed, 1.0)
        self.assertEqual(self.one(conn, "SELECT timelimit_reason()"),
                         "deadline")
        self.assertEqual(self.one(conn, "SELECT 1"), 1)  # still usable

    def test_ops_budget(self):
        """timelimit_ops(5000) stops the 100k count, reason 'ops'; short SQL runs."""
        conn = self.connect()
        dog = self.watchdog(lambda: self.interrupt(conn))
        self.assertEqual(self.one(conn, "SELECT timelimit_ops(5000)"), 0)
        self.assertInterrupted(conn, COUNT_100K)
        self.assertNotWatchdog(dog)
        self.assertEqual(self.one(conn, "SELECT timelimit_reason()"), "ops")
        self.assertEqual(self.one(conn, COUNT_N, (100,)), 100)
        self.assertIsNone(self.one(conn, "SELECT timelimit_reason()"))

    def test_interrupt_by_id(self):
        """timelimit_interrupt(id) on A stops B's query on another thread."""
        a = self.connect()
        b = self.connect()
        idb = self.one(b, "SELECT timelimit_id()")
        join = self.start_unbounded(b)
        self.assertEqual(self.one(a, "SELECT timelimit_interrupt(?)", (idb,)),
                         1)
        out, alive = join()
        self.assertFalse(alive, "the query was not stopped")
        self.assertInterruptedError(out)
        self.assertEqual(self.one(b, "SELECT timelimit_reason()"), "cancel")

    def test_activity(self):
        """timelimit_activity shows the other connection running its SQL."""
        a = self.connect()
        b = self.connect()
        idb = self.one(b, "SELECT timelimit_id()")
        join = self.start_unbounded(b)
        rows = self.rows(a, "SELECT id, state, sql FROM timelimit_activity")
        self.assertEqual([r for r in rows if r[0] == idb],
                         [(idb, "running", UNBOUNDED_SIGNAL)])
        self.assertEqual(self.one(a, "SELECT timelimit_interrupt(?)", (idb,)),
                         1)
        out, alive = join()
        self.assertFalse(alive, "the query was not stopped")
        self.assertInterruptedError(out)

    def test_lock(self):
        """After timelimit_lock(), timelimit(0) fails; the table shows one row."""
        conn = self.connect()
        other = self.connect()  # a second row that conn must not see
        self.assertGreaterEqual(
            self.one(other, "SELECT count(*) FROM timelimit_activity"), 2)
        # A limit to remove: with none, timelimit(0) would change nothing.
        self.assertEqual(self.one(conn, "SELECT timelimit(1000)"), 0)
        self.assertEqual(self.one(conn, "SELECT timelimit_lock()"), 1)
        with self.assertRaises(self.SQL_ERROR) as cm:
            self.rows(conn, "SELECT timelimit(0)")
        msg = self.message(cm.exception)
        self.assertTrue(msg.startswith(LOCKED_PREFIX), msg)
        self.assertEqual(
            self.one(conn, "SELECT count(*) FROM timelimit_activity"), 1)

    # ---- The client's own hooks (new contract) ---------------------------

    def test_hooks_after_replacement(self):
        """NEW: replacing a hook makes timelimit_activity.hooks differ from 'ok'."""
        for label, replace in self.HOOK_REPLACEMENTS:
            with self.subTest(replacement=label):
                conn = self.connect()
                cid = self.one(conn, "SELECT timelimit_id()")
                self.assertEqual(self.hooks(conn, cid), "ok")
                replace(conn)
                # More than 2000 VM steps: the displacement is detected.
                self.assertEqual(self.one(conn, COUNT_100K), 100000)
                self.assertIn(self.hooks(conn, cid), HOOKS_REPLACED)
                # Another connection sees the same.
                other = self.connect()
                self.assertIn(self.hooks(other, cid), HOOKS_REPLACED)

    def test_interrupt_after_progress_replaced(self):
        """NEW: with the progress handler gone, interrupt by id stops or returns 0."""
        b = self.connect()
        a = self.connect()
        idb = self.one(b, "SELECT timelimit_id()")
        self.PROGRESS_NONE(b)
        self.assertEqual(self.one(b, COUNT_100K), 100000)  # detected
        join = self.start_unbounded(b)
        dog = self.watchdog(lambda: self.interrupt(b))
        r = self.one(a, "SELECT timelimit_interrupt(?)", (idb,))
        if r == 1:
            out, alive = join(WAIT + 1.0)
            self.assertFalse(alive, "the query was not stopped")
            self.assertNotWatchdog(
                dog, "timelimit_interrupt(id) returned 1, but the query")
            self.assertInterruptedError(out)
        else:
            self.assertEqual(r, 0)
            dog.cancel()
            self.interrupt(b)
            out, alive = join()
            self.assertFalse(alive, "sqlite3_interrupt() did not stop it")

    def test_load_again_restores_hooks(self):
        """NEW: loading the extension again restores its hooks: 'ok', limits work."""
        for label, replace in self.HOOK_REPLACEMENTS:
            with self.subTest(replacement=label):
                conn = self.connect()
                cid = self.one(conn, "SELECT timelimit_id()")
                replace(conn)
                self.assertEqual(self.one(conn, COUNT_100K), 100000)
                self.load_again(conn)
                self.assertEqual(self.one(conn, "SELECT timelimit_id()"), cid)
                dog = self.watchdog(lambda c=conn: self.interrupt(c))
                self.one(conn, "SELECT timelimit(100)")
                self.assertInterrupted(conn)
                dog.cancel()
                self.assertNotWatchdog(dog)
                self.assertEqual(self.one(conn, "SELECT timelimit_reason()"),
                                 "deadline")
                self.assertEqual(self.hooks(conn, cid), "ok")


def apsw_progress_handler():
    return False  # continue


class ApswTest(BlockingClientTests, unittest.TestCase):
    """APSW: apsw.Connection, its own API and exceptions."""

    INTERRUPT_ERROR = apsw.InterruptError
    SQL_ERROR = apsw.SQLError
    HOOK_REPLACEMENTS = (
        ("setprogresshandler(handler, 1000)",
         lambda c: c.setprogresshandler(apsw_progress_handler, 1000)),
        ("setprogresshandler(None)", lambda c: c.setprogresshandler(None)),
    )

    @staticmethod
    def PROGRESS_NONE(conn):
        conn.setprogresshandler(None)

    def connect(self):
        conn = apsw.Connection(":memory:")
        self.addCleanup(conn.close)
        conn.enableloadextension(True)
        conn.loadextension(EXT_PATH)
        conn.enableloadextension(False)
        return conn

    def load_again(self, conn):
        conn.enableloadextension(True)
        conn.loadextension(EXT_PATH)
        conn.enableloadextension(False)

    def rows(self, conn, sql, params=()):
        return list(conn.execute(sql, params))

    def started(self, conn, fn):
        conn.createscalarfunction("started", fn, 0)

    def interrupt(self, conn):
        conn.interrupt()

    @staticmethod
    def message(exc):
        """SQLite's message: APSW prefixes it with the exception's name."""
        s = str(exc)
        prefix = type(exc).__name__ + ": "
        return s[len(prefix):] if s.startswith(prefix) else s


def sqlite3_progress_handler():
    return 0  # continue


def sqlite3_trace(statement):
    pass


# Python sqlite3's own hook setters, as sqlite-utils users reach them
# (Database.conn); aiosqlite has its own async wrappers of the same calls.
SQLITE3_REPLACEMENTS = (
    ("set_progress_handler(h, 1000)",
     lambda c: c.set_progress_handler(sqlite3_progress_handler, 1000)),
    ("set_progress_handler(None, 1000)",
     lambda c: c.set_progress_handler(None, 1000)),
    ("set_trace_callback(f)",
     lambda c: c.set_trace_callback(sqlite3_trace)),
    ("set_trace_callback(None)", lambda c: c.set_trace_callback(None)),
    ("set_progress_handler(None, 1000) and set_trace_callback(None)",
     lambda c: (c.set_progress_handler(None, 1000),
                c.set_trace_callback(None))),
)


class SqliteUtilsTest(BlockingClientTests, unittest.TestCase):
    """sqlite-utils: sqlite_utils.Database, its query/execute API."""

    INTERRUPT_ERROR = sqlite3.OperationalError
    SQL_ERROR = sqlite3.OperationalError
    HOOK_REPLACEMENTS = tuple(
        ("Database.conn." + label, lambda db, f=f: f(db.conn))
        for label, f in SQLITE3_REPLACEMENTS)

    @staticmethod
    def PROGRESS_NONE(db):
        db.conn.set_progress_handler(None, 1000)

    def connect(self):
        db = sqlite_utils.Database(
            sqlite3.connect(":memory:", check_same_thread=False))
        self.addCleanup(db.close)
        # sqlite-utils loads extensions (SpatiaLite) this way itself.
        db.conn.enable_load_extension(True)
        db.conn.load_extension(EXT_PATH)
        db.conn.enable_load_extension(False)
        return db

    def load_again(self, db):
        db.conn.enable_load_extension(True)
        db.conn.load_extension(EXT_PATH)
        db.conn.enable_load_extension(False)

    def rows(self, db, sql, params=()):
        return [tuple(row.values()) for row in db.query(sql, params)]

    def started(self, db, fn):
        db.register_function(fn, name="started")

    def interrupt(self, db):
        db.conn.interrupt()

    @staticmethod
    def message(exc):
        return str(exc)

    def test_own_tracer_keeps_limits(self):
        """sqlite-utils' own tracer (Python side) leaves the extension's hooks."""
        traced = []
        db = self.connect()
        dog = self.watchdog(lambda: self.interrupt(db))
        with db.tracer(lambda sql, params: traced.append(sql)):
            self.one(db, "SELECT timelimit(100)")
            self.assertInterrupted(db)
        self.assertNotWatchdog(dog)
        self.assertIn(UNBOUNDED, traced)
        self.assertEqual(self.one(db, "SELECT timelimit_reason()"),
                         "deadline")


class AiosqliteTest(Helpers, unittest.IsolatedAsyncioTestCase):
    """aiosqlite: each connection runs on its own thread; awaited from asyncio."""

    async def connect(self):
        db = aiosqlite.connect(":memory:", isolation_level=None)
        db.daemon = True  # a connection thread must never keep us alive
        await db
        self.addAsyncCleanup(db.close)
        await db.enable_load_extension(True)
        await db.load_extension(EXT_PATH)
        await db.enable_load_extension(False)
        return db

    @staticmethod
    def interrupt(db):
        """sqlite3_interrupt() from any thread.

        aiosqlite's own interrupt() is a coroutine that makes exactly this
        call; the watchdog thread cannot await it.
        """
        try:
            db._conn.interrupt()
        except ValueError:  # already closed
            pass

    @staticmethod
    async def one(db, sql, params=()):
        return (await db.execute_fetchall(sql, params))[0][0]

    async def hooks(self, db, cid):
        return await self.one(
            db, "SELECT hooks FROM timelimit_activity WHERE id = ?", (cid,))

    async def assertInterrupted(self, db, sql=UNBOUNDED, params=()):
        with self.assertRaises(sqlite3.OperationalError) as cm:
            await db.execute_fetchall(sql, params)
        self.assertEqual(str(cm.exception), "interrupted")

    def assertInterruptedTask(self, task):
        self.assertTrue(task.done(), "the query was not stopped")
        e = task.exception()
        self.assertIsInstance(e, sqlite3.OperationalError)
        self.assertEqual(str(e), "interrupted")

    async def start_unbounded(self, db):
        """Runs UNBOUNDED_SIGNAL on db as a task, known to run on return."""
        loop = asyncio.get_running_loop()
        started = asyncio.Event()

        def signal():  # on aiosqlite's thread
            loop.call_soon_threadsafe(started.set)
            return 1

        await db.create_function("started", 0, signal)
        task = asyncio.create_task(db.execute_fetchall(UNBOUNDED_SIGNAL))

        async def stop_runaway():
            if not task.done():
                self.interrupt(db)
            await asyncio.wait({task}, timeout=WAIT)
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: no "never retrieved" warning

        self.addAsyncCleanup(stop_runaway)  # runs before db.close (LIFO)
        try:
            await asyncio.wait_for(started.wait(), WAIT)
        except TimeoutError:
            self.fail("the query never started")
        return task

    async def test_deadline(self):
        """timelimit(100) stops a runaway: sqlite3.OperationalError 'interrupted'."""
        db = await self.connect()
        dog = self.watchdog(lambda: self.interrupt(db))
        self.assertEqual(await self.one(db, "SELECT timelimit(100)"), 0)
        t0 = time.monotonic()
        await self.assertInterrupted(db)
        elapsed = time.monotonic() - t0
        self.assertNotWatchdog(dog)
        self.assertGreaterEqual(elapsed, 0.100)
        self.assertLess(elapsed, 1.0)
        self.assertEqual(await self.one(db, "SELECT timelimit_reason()"),
                         "deadline")
        self.assertEqual(await self.one(db, "SELECT 1"), 1)

    async def test_ops_budget(self):
        """timelimit_ops(5000) stops the 100k count, reason 'ops'; short SQL runs."""
        db = await self.connect()
        dog = self.watchdog(lambda: self.interrupt(db))
        self.assertEqual(await self.one(db, "SELECT timelimit_ops(5000)"), 0)
        await self.assertInterrupted(db, COUNT_100K)
        self.assertNotWatchdog(dog)
        self.assertEqual(await self.one(db, "SELECT timelimit_reason()"),
                         "ops")
        self.assertEqual(await self.one(db, COUNT_N, (100,)), 100)
        self.assertIsNone(await self.one(db, "SELECT timelimit_reason()"))

    async def test_interrupt_by_id(self):
        """timelimit_interrupt(id) on A stops B's query on B's thread."""
        a = await self.connect()
        b = await self.connect()
        idb = await self.one(b, "SELECT timelimit_id()")
        task = await self.start_unbounded(b)
        self.assertEqual(
            await self.one(a, "SELECT timelimit_interrupt(?)", (idb,)), 1)
        await asyncio.wait({task}, timeout=WAIT)
        self.assertInterruptedTask(task)
        self.assertEqual(await self.one(b, "SELECT timelimit_reason()"),
                         "cancel")

    async def test_activity(self):
        """timelimit_activity shows the other connection running its SQL."""
        a = await self.connect()
        b = await self.connect()
        idb = await self.one(b, "SELECT timelimit_id()")
        task = await self.start_unbounded(b)
        rows = await a.execute_fetchall(
            "SELECT id, state, sql FROM timelimit_activity")
        self.assertEqual([tuple(r) for r in rows if r[0] == idb],
                         [(idb, "running", UNBOUNDED_SIGNAL)])
        self.assertEqual(
            await self.one(a, "SELECT timelimit_interrupt(?)", (idb,)), 1)
        await asyncio.wait({task}, timeout=WAIT)
        self.assertInterruptedTask(task)

    async def test_lock(self):
        """After timelimit_lock(), timelimit(0) fails; the table shows one row."""
        db = await self.connect()
        other = await self.connect()
        self.assertGreaterEqual(
            await self.one(other, "SELECT count(*) FROM timelimit_activity"), 2)
        # A limit to remove: with none, timelimit(0) would change nothing.
        self.assertEqual(await self.one(db, "SELECT timelimit(1000)"), 0)
        self.assertEqual(await self.one(db, "SELECT timelimit_lock()"), 1)
        with self.assertRaises(sqlite3.OperationalError) as cm:
            await db.execute_fetchall("SELECT timelimit(0)")
        self.assertTrue(str(cm.exception).startswith(LOCKED_PREFIX),
                        str(cm.exception))
        self.assertEqual(
            await self.one(db, "SELECT count(*) FROM timelimit_activity"), 1)

    async def test_event_loop_not_blocked(self):
        """A runaway under a 300 ms limit leaves the event loop ticking."""
        db = await self.connect()
        dog = self.watchdog(lambda: self.interrupt(db))
        await self.one(db, "SELECT timelimit(300)")
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.010)
                ticks += 1

        tick_task = asyncio.create_task(ticker())
        t0 = time.monotonic()
        try:
            with self.assertRaises(sqlite3.OperationalError) as cm:
                await db.execute_fetchall(UNBOUNDED)
            ticked = ticks
            elapsed = time.monotonic() - t0
        finally:
            tick_task.cancel()
        self.assertNotWatchdog(dog)
        self.assertEqual(str(cm.exception), "interrupted")
        self.assertGreaterEqual(elapsed, 0.300)
        # 30 ticks if the loop were idle; a blocked loop gives 0 or 1.
        self.assertGreaterEqual(ticked, 10, "the event loop was blocked")
        self.assertEqual(await self.one(db, "SELECT timelimit_reason()"),
                         "deadline")

    # ---- aiosqlite's own hook setters (new contract) ---------------------

    REPLACEMENTS = (
        ("set_progress_handler(h, 1000)",
         lambda db: db.set_progress_handler(sqlite3_progress_handler, 1000)),
        ("set_progress_handler(None, 1000)",
         lambda db: db.set_progress_handler(None, 1000)),
        ("set_trace_callback(f)",
         lambda db: db.set_trace_callback(sqlite3_trace)),
        ("set_trace_callback(None)", lambda db: db.set_trace_callback(None)),
    )

    async def replace_both(self, db):
        await db.set_progress_handler(None, 1000)
        await db.set_trace_callback(None)

    def replacements(self):
        return self.REPLACEMENTS + (
            ("set_progress_handler(None, 1000) and set_trace_callback(None)",
             self.replace_both),)

    async def test_hooks_after_replacement(self):
        """NEW: replacing a hook makes timelimit_activity.hooks differ from 'ok'."""
        for label, replace in self.replacements():
            with self.subTest(replacement=label):
                db = await self.connect()
                cid = await self.one(db, "SELECT timelimit_id()")
                self.assertEqual(await self.hooks(db, cid), "ok")
                await replace(db)
                self.assertEqual(await self.one(db, COUNT_100K), 100000)
                self.assertIn(await self.hooks(db, cid), HOOKS_REPLACED)
                other = await self.connect()
                self.assertIn(await self.hooks(other, cid), HOOKS_REPLACED)

    async def test_interrupt_after_progress_replaced(self):
        """NEW: with the progress handler gone, interrupt by id stops or returns 0."""
        b = await self.connect()
        a = await self.connect()
        idb = await self.one(b, "SELECT timelimit_id()")
        await b.set_progress_handler(None, 1000)
        self.assertEqual(await self.one(b, COUNT_100K), 100000)  # detected
        task = await self.start_unbounded(b)
        dog = self.watchdog(lambda: self.interrupt(b))
        r = await self.one(a, "SELECT timelimit_interrupt(?)", (idb,))
        if r == 1:
            await asyncio.wait({task}, timeout=WAIT + 1.0)
            self.assertTrue(task.done(), "the query was not stopped")
            self.assertNotWatchdog(
                dog, "timelimit_interrupt(id) returned 1, but the query")
            self.assertInterruptedTask(task)
        else:
            self.assertEqual(r, 0)
            dog.cancel()
            self.interrupt(b)
            await asyncio.wait({task}, timeout=WAIT)
            self.assertTrue(task.done(), "sqlite3_interrupt() did not stop it")

    async def test_load_again_restores_hooks(self):
        """NEW: loading the extension again restores its hooks: 'ok', limits work."""
        for label, replace in self.replacements():
            with self.subTest(replacement=label):
                db = await self.connect()
                cid = await self.one(db, "SELECT timelimit_id()")
                await replace(db)
                self.assertEqual(await self.one(db, COUNT_100K), 100000)
                await db.enable_load_extension(True)
                await db.load_extension(EXT_PATH)
                await db.enable_load_extension(False)
                self.assertEqual(await self.one(db, "SELECT timelimit_id()"),
                                 cid)
                dog = self.watchdog(lambda d=db: self.interrupt(d))
                await self.one(db, "SELECT timelimit(100)")
                await self.assertInterrupted(db)
                dog.cancel()
                self.assertNotWatchdog(dog)
                self.assertEqual(
                    await self.one(db, "SELECT timelimit_reason()"),
                    "deadline")
                self.assertEqual(await self.hooks(db, cid), "ok")


if __name__ == "__main__":
    test_timelimit.main(globals())
