#!/usr/bin/python3
# tests/test_timelimit.py: loads the real loadable extension ext/timelimit.so
# into Python's sqlite3 module and checks, through that client, what the
# manual at the top of ext/timelimit.c promises: time limits, step budgets,
# interruption by connection id, argument errors, timelimit_lock(), the
# timelimit_activity table and the exemption of COMMIT.
#
# Usage, from the repository root, with Debian's own Python and only the
# standard library:
#   /usr/bin/python3 tests/test_timelimit.py ext/timelimit.so [-v] [test ...]
# Exits non-zero if any test fails.  Nothing here sleeps: threads are
# synchronised with bounded waits on threading.Event.

import sqlite3
import sys
import threading
import time
import unittest

EXT_PATH = None  # argv[1], set in main()

# Counts forever: only the extension (or sqlite3_interrupt) can stop it.
UNBOUNDED = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
             "SELECT count(*) FROM c")
# The same, but calls started() once, from inside the running statement.
UNBOUNDED_SIGNAL = ("WITH RECURSIVE c(x) AS (SELECT started() UNION ALL "
                    "SELECT x+1 FROM c) SELECT count(*) FROM c")
# Finite, and far more than TIMELIMIT_CHECK_STEPS (1000) VM steps.
COUNT_100K = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
              "WHERE x < 100000) SELECT count(*) FROM c")

# The same to ?, a parameter.
COUNT_N = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
           "WHERE x < ?) SELECT count(*) FROM c")

WAIT = 2.0  # Bound, in seconds, of every wait on another thread


class TimelimitTest(unittest.TestCase):

    def connect(self, **kw):
        """Opens an in-memory connection with the extension loaded."""
        conn = sqlite3.connect(":memory:", isolation_level=None, **kw)
        self.addCleanup(conn.close)
        conn.enable_load_extension(True)
        conn.load_extension(EXT_PATH)
        conn.enable_load_extension(False)
        return conn

    @staticmethod
    def one(conn, sql, params=()):
        """The first column of the first row of sql."""
        return conn.execute(sql, params).fetchone()[0]

    def watchdog(self, conn):
        """Stops a runaway query with sqlite3_interrupt() after WAIT seconds.

        A safety net only: if the extension fails to stop the query, the test
        fails on its timing or on timelimit_reason() instead of hanging.
        """
        timer = threading.Timer(WAIT, conn.interrupt)
        timer.daemon = True
        self.addCleanup(timer.cancel)  # runs before conn.close (LIFO)
        timer.start()

    def assertInterrupted(self, conn, sql=UNBOUNDED):
        """sql (text, or text and parameters) fails with "interrupted"."""
        params = ()
        if isinstance(sql, tuple):
            sql, params = sql
        with self.assertRaises(sqlite3.OperationalError) as cm:
            conn.execute(sql, params).fetchall()
        self.assertEqual(str(cm.exception), "interrupted")

    def assertSqlError(self, conn, sql, prefix, exact=None):
        """sql fails with a message starting with prefix (or exactly exact)."""
        with self.assertRaises(sqlite3.OperationalError) as cm:
            conn.execute(sql).fetchall()
        msg = str(cm.exception)
        self.assertTrue(msg.startswith(prefix), msg)
        if exact is not None:
            self.assertEqual(msg, exact)

    def start_unbounded(self, conn):
        """Runs UNBOUNDED_SIGNAL on conn in a worker thread.

        Returns a dict whose 'error' is set to the exception the query raised
        (or 'result' to its rows) once the worker ends, and a function that
        waits (bounded) for the worker to end.  The query is known to be
        running when this returns.
        """
        started = threading.Event()

        def signal():
            started.set()
            return 1

        conn.create_function("started", 0, signal)
        out = {}

        def work():
            try:
                out["result"] = conn.execute(UNBOUNDED_SIGNAL).fetchall()
            except Exception as e:  # noqa: BLE001 - reported by the test
                out["error"] = e

        t = threading.Thread(target=work, daemon=True)

        def stop_runaway():
            # If the extension failed to stop the query, stop it with
            # sqlite3_interrupt() so that the connection can be closed.
            if t.is_alive():
                conn.interrupt()
                t.join(WAIT)

        self.addCleanup(stop_runaway)  # runs before conn.close (LIFO)
        t.start()
        self.assertTrue(started.wait(WAIT), "the query never started")

        def join():
            t.join(WAIT)
            self.assertFalse(t.is_alive(), "the query was not stopped")
            return out

        return join

    def test_load_and_id(self):
        """The extension loads; timelimit_id() is positive and per connection."""
        a = self.connect()
        b = self.connect()
        ida = self.one(a, "SELECT timelimit_id()")
        idb = self.one(b, "SELECT timelimit_id()")
        self.assertIsInstance(ida, int)
        self.assertIsInstance(idb, int)
        self.assertGreaterEqual(ida, 1)
        self.assertGreaterEqual(idb, 1)
        self.assertNotEqual(ida, idb)
        self.assertEqual(self.one(a, "SELECT timelimit_id()"), ida)

    def test_deadline(self):
        """timelimit(50) stops an unbounded query after ~50 ms, reason 'deadline'."""
        conn = self.connect(check_same_thread=False)
        self.watchdog(conn)
        self.assertEqual(self.one(conn, "SELECT timelimit(50)"), 0)
        self.assertEqual(self.one(conn, "SELECT timelimit()"), 50)
        t0 = time.monotonic()
        self.assertInterrupted(conn)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.050)
        self.assertLess(elapsed, 1.0)
        self.assertEqual(self.one(conn, "SELECT timelimit_reason()"), "deadline")
        # The connection stays usable, and a statement that ends normally
        # clears the reason.
        self.assertInterrupted(conn)
        self.assertEqual(self.one(conn, "SELECT 1"), 1)
        self.assertIsNone(self.one(conn, "SELECT timelimit_reason()"))
        # Removing the limit lets a long finite query finish.
        self.assertEqual(self.one(conn, "SELECT timelimit(0)"), 50)
        self.assertEqual(self.one(conn, COUNT_100K), 100000)

    def test_step_budget(self):
        """timelimit_ops(100000) stops an unbounded query, reason 'ops'."""
        conn = self.connect(check_same_thread=False)
        self.watchdog(conn)
        self.assertEqual(self.one(conn, "SELECT timelimit_ops(100000)"), 0)
        self.assertEqual(self.one(conn, "SELECT timelimit_ops()"), 100000)
        t0 = time.monotonic()
        self.assertInterrupted(conn)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(self.one(conn, "SELECT timelimit_reason()"), "ops")
        self.assertEqual(self.one(conn, "SELECT 1"), 1)
        # A budget well above what the statement needs does not stop it.
        self.assertEqual(self.one(conn, "SELECT timelimit_ops(100000000)"),
                         100000)
        self.assertEqual(self.one(conn, COUNT_100K), 100000)
        self.assertIsNone(self.one(conn, "SELECT timelimit_reason()"))
        # So does the largest budget, also when the statement's step counter
        # does not start at a multiple of 1000 (no overflow).
        self.one(conn, "SELECT timelimit_ops(9223372036854775807)")
        for _ in range(2):
            self.assertEqual(self.one(conn, COUNT_100K), 100000)
            self.assertIsNone(self.one(conn, "SELECT timelimit_reason()"))

    def test_step_budget_is_exact(self):
        """A statement stops at the first check at or past its step budget."""
        # The exact VM steps of COUNT_N for a given n, from SQLite's own
        # progress handler called at every step, on a connection without
        # the extension.
        plain = sqlite3.connect(":memory:", isolation_level=None)
        self.addCleanup(plain.close)
        calls = [0]

        def count():
            calls[0] += 1
            return 0

        plain.set_progress_handler(count, 1)

        def steps(n):
            calls[0] = 0
            self.assertEqual(self.one(plain, COUNT_N, (n,)), n)
            return calls[0]

        conn = self.connect()
        run = steps(2000)
        self.assertGreater(run, 10 * 1000)
        # Checks come when a statement's cumulative step counter reaches a
        # multiple of 1000.  A first run of n steps leaves the counter at
        # base = steps(n) % 1000; the checks of the second run then come
        # after j steps, (base + j) % 1000 == 0.  The last check inside that
        # run is at step `last`: a budget of `last` must stop the run, one of
        # `last` + 1 must not.  Each case uses its own statement (a distinct
        # comment) so that its counter starts at 0.
        bases = set()
        for case, n in enumerate((0, 7, 29, 41, 53, 60)):
            sql = "/* case %d */ %s" % (case, COUNT_N)
            base = 0
            if n:
                base = steps(n) % 1000
                self.one(conn, "SELECT timelimit_ops(0)")
                self.assertEqual(self.one(conn, sql, (n,)), n)
            bases.add(base)
            last = run - (run + base) % 1000
            with self.subTest(base=base, budget=last):
                self.one(conn, "SELECT timelimit_ops(?)", (last,))
                self.assertInterrupted(conn, (sql, (2000,)))
                self.assertEqual(self.one(conn, "SELECT timelimit_reason()"),
                                 "ops")
            # The stopped run left the counter somewhere unknown: start over.
            sql = "/* case %d again */ %s" % (case, COUNT_N)
            if n:
                self.one(conn, "SELECT timelimit_ops(0)")
                self.assertEqual(self.one(conn, sql, (n,)), n)
            with self.subTest(base=base, budget=last + 1):
                self.one(conn, "SELECT timelimit_ops(?)", (last + 1,))
                self.assertEqual(self.one(conn, sql, (2000,)), 2000)
                self.assertIsNone(self.one(conn, "SELECT timelimit_reason()"))
        self.assertGreaterEqual(len(bases), 4)  # the cases really differ

    def test_interrupt_by_id(self):
        """timelimit_interrupt(id) from another connection stops a running query."""
        a = self.connect(check_same_thread=False)
        b = self.connect()
        ida = self.one(a, "SELECT timelimit_id()")
        join = self.start_unbounded(a)
        self.assertEqual(self.one(b, "SELECT timelimit_interrupt(?)", (ida,)), 1)
        out = join()
        self.assertNotIn("result", out)
        self.assertIsInstance(out.get("error"), sqlite3.OperationalError)
        self.assertEqual(str(out["error"]), "interrupted")
        self.assertEqual(self.one(a, "SELECT timelimit_reason()"), "cancel")
        # Nothing runs on A now: nothing to stop, and later statements are
        # not affected.
        self.assertEqual(self.one(b, "SELECT timelimit_interrupt(?)", (ida,)), 0)
        self.assertEqual(self.one(a, COUNT_100K), 100000)
        self.assertIsNone(self.one(a, "SELECT timelimit_reason()"))
        # Unknown ids.
        self.assertEqual(
            self.one(b, "SELECT timelimit_interrupt(?)", (10**12,)), 0)
        self.assertEqual(self.one(b, "SELECT timelimit_interrupt(-5)"), 0)

    def test_bad_arguments(self):
        """Bad arguments fail with an error naming the function; limits unchanged."""
        conn = self.connect()
        self.one(conn, "SELECT timelimit(123)")
        self.one(conn, "SELECT timelimit_ops(4567)")
        self.assertSqlError(
            conn, "SELECT timelimit('x')", "timelimit(ms): ",
            "timelimit(ms): ms must be an integer, not text")
        self.assertSqlError(
            conn, "SELECT timelimit(-1)", "timelimit(ms): ",
            "timelimit(ms): ms must be between 0 and 2147483647, not -1")
        self.assertSqlError(
            conn, "SELECT timelimit(1.5)", "timelimit(ms): ",
            "timelimit(ms): ms must be an integer, not real")
        self.assertSqlError(
            conn, "SELECT timelimit(NULL)", "timelimit(ms): ",
            "timelimit(ms): ms must be an integer, not NULL")
        self.assertSqlError(
            conn, "SELECT timelimit(x'01')", "timelimit(ms): ",
            "timelimit(ms): ms must be an integer, not blob")
        self.assertSqlError(
            conn, "SELECT timelimit(3000000000)", "timelimit(ms): ",
            "timelimit(ms): ms must be between 0 and 2147483647, "
            "not 3000000000")
        self.assertSqlError(
            conn, "SELECT timelimit_ops(-1)", "timelimit_ops(n): ",
            "timelimit_ops(n): n must be between 0 and 9223372036854775807, "
            "not -1")
        self.assertSqlError(
            conn, "SELECT timelimit_interrupt(NULL)",
            "timelimit_interrupt(id): ",
            "timelimit_interrupt(id): id must be an integer, not NULL")
        self.assertSqlError(
            conn, "SELECT timelimit_interrupt('1')",
            "timelimit_interrupt(id): ")
        self.assertEqual(self.one(conn, "SELECT timelimit()"), 123)
        self.assertEqual(self.one(conn, "SELECT timelimit_ops()"), 4567)
        # The largest values are accepted.
        self.assertEqual(self.one(conn, "SELECT timelimit(2147483647)"), 123)
        self.assertEqual(
            self.one(conn, "SELECT timelimit_ops(9223372036854775807)"), 4567)

    def test_lock(self):
        """After timelimit_lock(), SQL may only lower limits and sees only itself."""
        a = self.connect()
        b = self.connect()
        ida = self.one(a, "SELECT timelimit_id()")
        idb = self.one(b, "SELECT timelimit_id()")
        self.assertEqual(self.one(a, "SELECT timelimit(100)"), 0)
        self.assertEqual(self.one(a, "SELECT timelimit_lock()"), 1)
        self.assertEqual(self.one(a, "SELECT timelimit(50)"), 100)
        self.assertSqlError(a, "SELECT timelimit(200)", "timelimit(ms): ")
        self.assertSqlError(a, "SELECT timelimit(0)", "timelimit(ms): ")
        self.assertEqual(self.one(a, "SELECT timelimit()"), 50)
        # Setting a budget where there was none lowers it; then removing
        # or raising it is refused.
        self.assertEqual(self.one(a, "SELECT timelimit_ops(5000000)"), 0)
        self.assertSqlError(a, "SELECT timelimit_ops(0)", "timelimit_ops(n): ")
        self.assertSqlError(a, "SELECT timelimit_ops(6000000)",
                            "timelimit_ops(n): ")
        self.assertEqual(self.one(a, "SELECT timelimit_ops()"), 5000000)
        # May not interrupt another connection.
        self.assertSqlError(a, "SELECT timelimit_interrupt(%d)" % idb,
                            "timelimit_interrupt(id): ")
        # Sees only its own row; b (unlocked) sees both.
        self.assertEqual(self.one(a, "SELECT count(*) FROM timelimit_activity"),
                         1)
        self.assertEqual(
            a.execute("SELECT id, locked FROM timelimit_activity").fetchall(),
            [(ida, 1)])
        self.assertGreaterEqual(
            self.one(b, "SELECT count(*) FROM timelimit_activity"), 2)
        self.assertEqual(
            b.execute("SELECT locked FROM timelimit_activity WHERE id IN (?, ?)"
                      " ORDER BY id", (ida, idb)).fetchall(),
            [(1,), (0,)] if ida < idb else [(0,), (1,)])
        # b is not locked: it may still raise its own limits.
        self.one(b, "SELECT timelimit(100)")
        self.assertEqual(self.one(b, "SELECT timelimit(200)"), 100)
        self.assertEqual(self.one(b, "SELECT timelimit(0)"), 200)

    def test_activity(self):
        """timelimit_activity shows another connection running, then idle."""
        a = self.connect(check_same_thread=False)
        b = self.connect()
        ida = self.one(a, "SELECT timelimit_id()")
        self.one(a, "SELECT timelimit(60000)")
        row_sql = ("SELECT state, sql, elapsed_ms, limit_ms, timeouts, cancels"
                   " FROM timelimit_activity WHERE id = ?")
        self.assertEqual(b.execute(row_sql, (ida,)).fetchone()[0], "idle")
        join = self.start_unbounded(a)
        state, sql, elapsed, limit, timeouts, cancels = b.execute(
            row_sql, (ida,)).fetchone()
        self.assertEqual(state, "running")
        self.assertIn("WITH RECURSIVE", sql)
        self.assertIsInstance(elapsed, int)
        self.assertGreaterEqual(elapsed, 0)
        self.assertEqual(limit, 60000)
        self.assertEqual((timeouts, cancels), (0, 0))
        self.assertEqual(self.one(b, "SELECT timelimit_interrupt(?)", (ida,)), 1)
        out = join()
        self.assertEqual(str(out.get("error")), "interrupted")
        state, sql, elapsed, limit, timeouts, cancels = b.execute(
            row_sql, (ida,)).fetchone()
        self.assertEqual(state, "idle")
        self.assertIn("WITH RECURSIVE", sql)
        self.assertIsNone(elapsed)
        self.assertEqual(limit, 60000)
        self.assertEqual((timeouts, cancels), (0, 1))

    def test_transaction_longer_than_limit(self):
        """The limit is per statement: a transaction longer than it commits."""
        conn = self.connect()
        conn.execute("CREATE TABLE t(x)")
        self.one(conn, "SELECT timelimit(1)")
        t0 = time.monotonic()
        conn.execute("BEGIN")
        # One cached statement run 20000 times: its step counter crosses
        # multiples of 1000, so the progress handler checks the deadline
        # long after the transaction's first millisecond.
        conn.executemany("INSERT INTO t VALUES (?)",
                         ((i,) for i in range(20000)))
        conn.execute("COMMIT")
        self.assertGreater(time.monotonic() - t0, 0.001)
        self.assertFalse(conn.in_transaction)
        self.assertEqual(self.one(conn, "SELECT count(*) FROM t"), 20000)

    def test_commit_never_stopped(self):
        """COMMIT and ROLLBACK are exempt from the step budget."""
        conn = self.connect()
        conn.execute("CREATE TABLE t(x)")
        # With a budget of 1 step, a statement stops at the first progress
        # handler call it sees.  A cached statement gets one every time its
        # cumulative step counter crosses a multiple of 1000.  Check that
        # this really happens to a short cached statement ...
        self.one(conn, "SELECT timelimit_ops(1)")
        n = 3000
        for i in range(n):
            try:
                conn.execute("SELECT 1").fetchall()
            except sqlite3.OperationalError as e:
                self.assertEqual(str(e), "interrupted")
                break
        else:
            self.fail("a cached SELECT 1 never met the progress handler")
        self.assertEqual(self.one(conn, "SELECT timelimit_reason()"), "ops")
        # ... and that it never stops the cached COMMIT and ROLLBACK, whose
        # counters cross multiples of 1000 as well.  BEGIN and INSERT get
        # fresh statements (distinct text) that run far under 1000 steps.
        for i in range(n):
            conn.execute("BEGIN /* %d */" % i)
            conn.execute("INSERT INTO t VALUES (%d)" % i)
            conn.execute("COMMIT" if i % 2 == 0 else "ROLLBACK")
            self.assertFalse(conn.in_transaction)
        self.assertEqual(self.one(conn, "SELECT count(*) FROM t"),
                         (n + 1) // 2)
        self.assertIsNone(self.one(conn, "SELECT timelimit_reason()"))


def main(module_globals):
    """Sets EXT_PATH of the test module from argv[1] and runs its tests.

    tests/test_clients.py runs through it too, with its own globals."""
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.stderr.write("usage: %s path/to/timelimit.so [unittest options]\n"
                         % sys.argv[0])
        sys.exit(2)
    module_globals["EXT_PATH"] = sys.argv[1]
    unittest.main(argv=[sys.argv[0]] + sys.argv[2:])


if __name__ == "__main__":
    main(globals())
