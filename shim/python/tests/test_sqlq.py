"""Tests of the sqlq package (asyncio SQLite access), after README.md.

Run with `make test-pymod` (or PYTHONPATH=build/python/lib python3 -m pytest
-c shim/python/pytest.ini shim/python/tests, after `make python`).
Every wait on a condition is bounded (WAIT_BOUND); time bounds are generous
so that the suite holds on a loaded 2-core machine; speed is for the
benchmark, not for these tests.
"""
import asyncio
import functools
import gc
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import tracemalloc
import weakref

import pytest

import sqlq

# Where the package under test was imported from (make puts it in the build
# directory), for the subprocesses.
PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(sqlq.__file__)))
WAIT_BOUND = 20.0  # seconds: the longest wait on any condition
NEXT_CALL_BOUND = 2.0  # seconds: a freed worker serves the next call by then
STALL_BOUND = 0.5  # seconds: a blocked loop would stall ~1 s
TEST_BOUND = 120.0  # seconds: a test that hangs fails instead


def aio(fn):
    """@pytest.mark.asyncio, with the test bounded by TEST_BOUND seconds."""
    @functools.wraps(fn)
    async def bounded(*args, **kwargs):
        return await asyncio.wait_for(fn(*args, **kwargs), TEST_BOUND)
    return pytest.mark.asyncio(bounded)


def runaway(tag="c"):
    """A read that never ends by itself; tag names its CTE, so that
    db.activity() can find it."""
    return (f"WITH RECURSIVE {tag}(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM {tag})"
            f" SELECT count(*) FROM {tag}")


RUNAWAY = runaway()


async def wait_until(pred, what, bound=WAIT_BOUND):
    deadline = time.monotonic() + bound
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {bound} s: {what}")
        await asyncio.sleep(0.001)


def is_running(db, tag):
    return any(a.get("state") == "running" and tag in (a.get("sql") or "")
               for a in db.activity())


async def start_runaway(db, tag, **kw):
    """A runaway read as a task, returned once activity() shows it running."""
    task = asyncio.ensure_future(db.execute(runaway(tag), **kw))
    await wait_until(lambda: task.done() or is_running(db, tag),
                     f"{tag} running")
    assert not task.done(), task
    return task


async def timed(aw, bound=WAIT_BOUND):
    t0 = time.monotonic()
    v = await asyncio.wait_for(aw, bound)
    return v, time.monotonic() - t0


def open_db(tmp_path, name="t.db", **kw):
    kw.setdefault("synchronous", "NORMAL")
    return sqlq.open(str(tmp_path / name), **kw)


async def make_table(db, n=10):
    await db.execute_write_script(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT UNIQUE, v);")
    if n:
        await db.execute_write_many("INSERT INTO t(id, name, v) VALUES (?, ?, ?)",
                                    [(i, f"n{i}", i * 10) for i in range(1, n + 1)])


# ---------------------------------------------------------------- execute

@aio
async def test_execute_rows_and_columns(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 3)
        r = await db.execute("SELECT id, name FROM t ORDER BY id")
        assert r.columns == ("id", "name")
        assert isinstance(r.columns, tuple)
        assert isinstance(r.rows, list)
        assert len(r.rows) == 3 and len(r) == 3
        assert [tuple(x) for x in r.rows] == [(1, "n1"), (2, "n2"), (3, "n3")]
        assert [tuple(x) for x in r] == [(1, "n1"), (2, "n2"), (3, "n3")]
        assert r[0] == (1, "n1")
        assert r.truncated is False
        assert r.rowcount == -1
        assert r.lastrowid is None


@aio
async def test_execute_empty_result_has_columns(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 0)
        r = await db.execute("SELECT id, name FROM t")
        assert r.rows == [] and len(r) == 0
        assert r.columns == ("id", "name")
        assert r.truncated is False


@aio
async def test_row_access(tmp_path):
    async with open_db(tmp_path) as db:
        r = await db.execute("SELECT 1 AS id, 'a' AS name")
        row = r.rows[0]
        assert isinstance(row, sqlq.Row)
        assert row[0] == 1 and row[1] == "a"
        assert row["id"] == 1 and row["name"] == "a"
        assert row.keys() == ["id", "name"]
        assert tuple(row) == (1, "a")
        assert len(row) == 2
        assert row == (1, "a")
        assert (1, "a") == row
        assert row != (1, "b")
        assert row != (1, "a", None)
        assert r.rows == [(1, "a")]


@aio
async def test_max_rows_per_call_truncates(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 10)
        r = await db.execute("SELECT id FROM t ORDER BY id", max_rows=3)
        assert [x[0] for x in r.rows] == [1, 2, 3]
        assert r.truncated is True
        r = await db.execute("SELECT id FROM t ORDER BY id", max_rows=10)
        assert len(r.rows) == 10
        assert r.truncated is False


@aio
async def test_max_rows_of_handle_truncates(tmp_path):
    async with open_db(tmp_path, max_rows=5) as db:
        await make_table(db, 10)
        r = await db.execute("SELECT id FROM t ORDER BY id")
        assert len(r.rows) == 5 and r.truncated is True
        r = await db.execute("SELECT id FROM t WHERE id <= 5")
        assert len(r.rows) == 5 and r.truncated is False


# ---------------------------------------------------------------- writes

@aio
async def test_execute_write_rowcount_lastrowid(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 0)
        r = await db.execute_write("INSERT INTO t(name, v) VALUES (?, ?)", ("x", 1))
        assert r.rowcount == 1
        assert isinstance(r.lastrowid, int) and r.lastrowid >= 1
        r2 = await db.execute_write("INSERT INTO t(name, v) VALUES (?, ?)", ("y", 2))
        assert r2.lastrowid == r.lastrowid + 1
        r = await db.execute_write("UPDATE t SET v = v + 1")
        assert r.rowcount == 2
        r = await db.execute("SELECT name, v FROM t ORDER BY id")
        assert r.rows == [("x", 2), ("y", 3)]


@aio
async def test_execute_write_returning(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 0)
        r = await db.execute_write(
            "INSERT INTO t(name, v) VALUES (?, ?), (?, ?) RETURNING id, name",
            ("a", 1, "b", 2))
        assert r.columns == ("id", "name")
        assert [x["name"] for x in r.rows] == ["a", "b"]
        assert r.rowcount == 2
        r = await db.execute_write("DELETE FROM t WHERE name = ? RETURNING v", ["b"])
        assert r.rows == [(2,)]
        assert r.rowcount == 1


@aio
async def test_execute_write_many(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 0)
        r = await db.execute_write_many("INSERT INTO t(name, v) VALUES (?, ?)",
                                        [(f"m{i}", i) for i in range(100)])
        assert r.rowcount == 100
        r = await db.execute("SELECT count(*), sum(v) FROM t")
        assert r.rows[0] == (100, sum(range(100)))


@aio
async def test_execute_write_many_is_one_transaction(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 0)
        with pytest.raises(sqlite3.IntegrityError):
            await db.execute_write_many("INSERT INTO t(name) VALUES (?)",
                                        [("a",), ("b",), ("a",)])
        r = await db.execute("SELECT count(*) FROM t")
        assert r.rows[0][0] == 0


@aio
async def test_execute_write_many_named(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 0)
        r = await db.execute_write_many(
            "INSERT INTO t(name, v) VALUES (:name, :v)",
            [{"name": "p", "v": 1}, {"name": "q", "v": 2}])
        assert r.rowcount == 2
        r = await db.execute("SELECT name, v FROM t ORDER BY v")
        assert r.rows == [("p", 1), ("q", 2)]


@aio
async def test_execute_write_script(tmp_path):
    async with open_db(tmp_path) as db:
        await db.execute_write_script("""
            CREATE TABLE a(x);
            CREATE TABLE b(y);
            INSERT INTO a VALUES (1), (2);
            BEGIN;
            INSERT INTO b VALUES (3);
            COMMIT;
        """)
        r = await db.execute("SELECT (SELECT sum(x) FROM a), (SELECT y FROM b)")
        assert r.rows[0] == (3, 3)


# ---------------------------------------------------------------- functions

@aio
async def test_execute_fn_conn_methods(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 5)

        def fn(conn):
            r = conn.execute("SELECT id, name FROM t WHERE id <= ? ORDER BY id", (2,))
            rows = conn.fetchall("SELECT id FROM t ORDER BY id")
            one = conn.fetchone("SELECT name FROM t WHERE id = ?", (3,))
            none = conn.fetchone("SELECT name FROM t WHERE id = ?", (99,))
            return [r.columns, [tuple(x) for x in r.rows], [x[0] for x in rows],
                    one["name"], none]

        cols, rows, ids, name, none = await db.execute_fn(fn)
        assert cols == ("id", "name")
        assert rows == [(1, "n1"), (2, "n2")]
        assert ids == [1, 2, 3, 4, 5]
        assert name == "n3"
        assert none is None


@aio
async def test_execute_fn_returns_any_object(tmp_path):
    async with open_db(tmp_path) as db:
        v = await db.execute_fn(lambda conn: {"k": [1, 2.5, "s"], "n": None})
        assert v == {"k": [1, 2.5, "s"], "n": None}


@pytest.mark.parametrize("value", [(), (1,), (1, 2), ("a", None, 3.5)])
@aio
async def test_fn_returns_tuple(tmp_path, value):
    async with open_db(tmp_path) as db:
        v = await asyncio.wait_for(db.execute_fn(lambda conn: value), WAIT_BOUND)
        assert v == value
        v = await asyncio.wait_for(db.execute_write_fn(lambda conn: value), WAIT_BOUND)
        assert v == value


@aio
async def test_execute_fn_exception_propagates(tmp_path):
    async with open_db(tmp_path) as db:
        exc = KeyError("missing")

        def fn(conn):
            raise exc

        with pytest.raises(KeyError) as ei:
            await db.execute_fn(fn)
        assert ei.value is exc


@aio
async def test_execute_fn_is_read_only(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 1)

        def fn(conn):
            conn.execute("INSERT INTO t(name) VALUES ('w')")

        with pytest.raises(sqlite3.DatabaseError):
            await db.execute_fn(fn)
        r = await db.execute("SELECT count(*) FROM t")
        assert r.rows[0][0] == 1


@aio
async def test_execute_write_fn_commits_and_returns(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 0)

        def fn(conn):
            r = conn.execute("INSERT INTO t(name, v) VALUES (?, ?)", ("a", 1))
            m = conn.executemany("INSERT INTO t(name, v) VALUES (?, ?)",
                                 [("b", 2), ("c", 3)])
            total = conn.fetchone("SELECT sum(v) FROM t")[0]
            return [r.rowcount, r.lastrowid, m.rowcount, total]

        rc, lastrowid, many, total = await db.execute_write_fn(fn)
        assert rc == 1 and isinstance(lastrowid, int)
        assert many == 2
        assert total == 6
        r = await db.execute("SELECT name FROM t ORDER BY v")
        assert r.rows == [("a",), ("b",), ("c",)]


@aio
async def test_execute_write_fn_rolls_back_when_fn_raises(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 0)
        exc = ValueError("boom")

        def fn(conn):
            conn.execute("INSERT INTO t(name) VALUES ('gone')")
            raise exc

        with pytest.raises(ValueError, match="boom") as ei:
            await db.execute_write_fn(fn, transaction=True)
        assert ei.value is exc, "not the exception fn raised"
        r = await db.execute("SELECT count(*) FROM t")
        assert r.rows[0][0] == 0
        # the writer is usable afterwards
        await db.execute_write("INSERT INTO t(name) VALUES ('kept')")
        r = await db.execute("SELECT name FROM t")
        assert r.rows == [("kept",)]


@aio
async def test_execute_write_fn_custom_exception_type(tmp_path):
    class MyError(Exception):
        pass

    async with open_db(tmp_path) as db:
        def fn(conn):
            raise MyError(42)

        with pytest.raises(MyError) as ei:
            await db.execute_write_fn(fn)
        assert ei.value.args == (42,)


@aio
async def test_execute_write_fn_isolated(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 0)

        def fn(conn):
            conn.execute("INSERT INTO t(name, v) VALUES ('iso', 7)")
            return conn.fetchone("SELECT v FROM t WHERE name = 'iso'")[0]

        assert await db.execute_write_fn(fn, isolated=True) == 7
        r = await db.execute("SELECT v FROM t WHERE name = 'iso'")
        assert r.rows == [(7,)]

        def bad(conn):
            conn.execute("INSERT INTO t(name, v) VALUES ('iso2', 8)")
            raise RuntimeError("iso")

        with pytest.raises(RuntimeError, match="iso"):
            await db.execute_write_fn(bad, isolated=True)
        r = await db.execute("SELECT count(*) FROM t")
        assert r.rows[0][0] == 1


@aio
async def test_execute_write_fn_without_transaction(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 0)

        def fn(conn):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t(name) VALUES ('a')")
            conn.execute("COMMIT")
            conn.execute("INSERT INTO t(name) VALUES ('b')")  # autocommit
            raise LookupError("after the commits")

        with pytest.raises(LookupError):
            await db.execute_write_fn(fn, transaction=False)
        r = await db.execute("SELECT name FROM t ORDER BY name")
        assert r.rows == [("a",), ("b",)]


@aio
async def test_transaction_control_in_transactional_task(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 0)
        with pytest.raises(sqlite3.ProgrammingError):
            await db.execute_write("BEGIN")

        def fn(conn):
            conn.execute("COMMIT")

        with pytest.raises(sqlite3.ProgrammingError):
            await db.execute_write_fn(fn, transaction=True)


@aio
async def test_conn_after_fn_returned_raises(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 1)
        kept = []
        await db.execute_fn(lambda conn: kept.append(conn))
        await db.execute_write_fn(lambda conn: kept.append(conn))
        assert len(kept) == 2
        for conn in kept:
            with pytest.raises(sqlite3.ProgrammingError):
                conn.execute("SELECT 1")
            with pytest.raises(sqlite3.ProgrammingError):
                conn.fetchall("SELECT 1")
            with pytest.raises(sqlite3.ProgrammingError):
                conn.fetchone("SELECT 1")
            with pytest.raises(sqlite3.ProgrammingError):
                conn.executemany("INSERT INTO t(name) VALUES (?)", [("z",)])


# ---------------------------------------------------------------- parameters

VALUES = [
    (0, "integer"),
    (2**63 - 1, "integer"),
    (-2**63, "integer"),
    (-1, "integer"),
    (1.5, "real"),
    (-0.0, "real"),
    (1e308, "real"),
    ("héllo wörld ✓ 日本語 🎉", "text"),
    ("", "text"),
    (b"\x00\x01\xffbytes", "blob"),
    (None, "null"),
]


@pytest.mark.parametrize("value,typ", VALUES, ids=[repr(v)[:20] for v, _ in VALUES])
@aio
async def test_param_round_trip(tmp_path, value, typ):
    async with open_db(tmp_path) as db:
        await db.execute_write_script("CREATE TABLE p(x);")
        await db.execute_write("INSERT INTO p VALUES (?)", (value,))
        r = await db.execute("SELECT x, typeof(x) FROM p")
        got, got_typ = r.rows[0]
        assert got_typ == typ
        assert got == value and type(got) is type(value)
        r = await db.execute("SELECT ?1, typeof(?1)", [value])
        assert r.rows[0][1] == typ
        assert r.rows[0][0] == value and type(r.rows[0][0]) is type(value)


@aio
async def test_param_buffers_and_bool(tmp_path):
    async with open_db(tmp_path) as db:
        raw = b"\x00abc\xfe"
        r = await db.execute("SELECT ?, ?, ?, typeof(?1), typeof(?2), typeof(?3)",
                             (bytearray(raw), memoryview(raw), raw))
        assert r.rows[0] == (raw, raw, raw, "blob", "blob", "blob")
        assert all(type(x) is bytes for x in tuple(r.rows[0])[:3])
        r = await db.execute("SELECT ?, ?, typeof(?1)", (True, False))
        assert r.rows[0] == (1, 0, "integer")
        assert type(r.rows[0][0]) is int


@aio
async def test_param_int_out_of_range(tmp_path):
    async with open_db(tmp_path) as db:
        with pytest.raises((OverflowError, TypeError, ValueError,
                            sqlite3.ProgrammingError)):
            await db.execute("SELECT ?", (2**63,))


@aio
async def test_named_params(tmp_path):
    async with open_db(tmp_path) as db:
        r = await db.execute("SELECT :a, :b", {"a": 1, "b": "x"})
        assert r.rows[0] == (1, "x")
        r = await db.execute("SELECT :a, :b", {":a": 1, ":b": "x"})
        assert r.rows[0] == (1, "x")
        r = await db.execute("SELECT @a, $b", {"@a": 2, "$b": "y"})
        assert r.rows[0] == (2, "y")
        await make_table(db, 0)
        r = await db.execute_write("INSERT INTO t(name, v) VALUES (:name, :v)",
                                   {"name": "nm", "v": 3})
        assert r.rowcount == 1
        r = await db.execute("SELECT v FROM t WHERE name = :name", {"name": "nm"})
        assert r.rows == [(3,)]


@aio
async def test_named_params_mismatch(tmp_path):
    async with open_db(tmp_path) as db:
        with pytest.raises(sqlite3.ProgrammingError):
            await db.execute("SELECT :a, :b", {"a": 1})  # b missing
        with pytest.raises(sqlite3.ProgrammingError):
            await db.execute("SELECT :a", {"a": 1, "zz": 2})  # zz unknown


@aio
async def test_wrong_param_types(tmp_path):
    async with open_db(tmp_path) as db:
        with pytest.raises(TypeError) as ei:
            await db.execute("SELECT ?, ?", (1, [1, 2]))
        msg = str(ei.value)
        assert msg and ("2" in msg or "1" in msg), msg
        with pytest.raises(TypeError) as ei:
            await db.execute("SELECT ?", (object(),))
        assert str(ei.value)
        with pytest.raises(TypeError) as ei:
            await db.execute("SELECT :myparam", {"myparam": object()})
        assert "myparam" in str(ei.value), str(ei.value)
        with pytest.raises(TypeError):
            await db.execute_write("SELECT ?", ({"a": 1},))
        with pytest.raises(TypeError):
            await db.execute_write_many("SELECT ?", [(1,), ([2],)])
        # the handle still works
        r = await db.execute("SELECT 1")
        assert r.rows == [(1,)]


@aio
async def test_params_not_a_sequence(tmp_path):
    async with open_db(tmp_path) as db:
        with pytest.raises((TypeError, sqlite3.ProgrammingError)):
            await db.execute("SELECT ?", 5)


@aio
async def test_wrong_param_count(tmp_path):
    async with open_db(tmp_path) as db:
        with pytest.raises(sqlite3.ProgrammingError):
            await db.execute("SELECT ?, ?", (1,))
        with pytest.raises(sqlite3.ProgrammingError):
            await db.execute("SELECT ?", (1, 2, 3))
        await make_table(db, 0)
        with pytest.raises(sqlite3.ProgrammingError):
            await db.execute_write("INSERT INTO t(name) VALUES (?)", ())
        with pytest.raises(sqlite3.ProgrammingError):
            await db.execute_write_many("INSERT INTO t(name) VALUES (?)",
                                        [("a",), ("b", "c")])
        r = await db.execute("SELECT count(*) FROM t")
        assert r.rows[0][0] == 0


# ---------------------------------------------------------------- errors

@aio
async def test_error_classes(tmp_path):
    async with open_db(tmp_path) as db:
        with pytest.raises(sqlite3.OperationalError) as ei:
            await db.execute("SELEC 1")
        assert ei.value.sqlite_errorcode == sqlite3.SQLITE_ERROR
        assert ei.value.sqlite_errorname == "SQLITE_ERROR"
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await db.execute("SELECT * FROM nope")
        with pytest.raises(sqlite3.OperationalError):
            await db.execute_write("INSERT INTO nope VALUES (1)")


@aio
async def test_unique_violation(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 0)
        await db.execute_write("INSERT INTO t(name) VALUES ('u')")
        with pytest.raises(sqlite3.IntegrityError) as ei:
            await db.execute_write("INSERT INTO t(name) VALUES ('u')")
        assert ei.value.sqlite_errorcode == 2067
        assert ei.value.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE"
        r = await db.execute("SELECT count(*) FROM t")
        assert r.rows[0][0] == 1


@aio
async def test_write_sent_to_execute(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 0)
        with pytest.raises(sqlite3.ProgrammingError):
            await db.execute("INSERT INTO t(name) VALUES ('r')")
        r = await db.execute("SELECT count(*) FROM t")
        assert r.rows[0][0] == 0


def test_exception_hierarchy():
    assert issubclass(sqlq.TimeoutError, TimeoutError)
    assert issubclass(sqlq.TimeoutError, sqlite3.OperationalError)
    assert issubclass(sqlq.QueueFullError, sqlite3.OperationalError)
    assert issubclass(sqlq.OutcomeUnknownError, sqlite3.OperationalError)
    assert issubclass(sqlq.ClosedError, sqlite3.ProgrammingError)


@aio
async def test_time_limit_per_call(tmp_path):
    async with open_db(tmp_path) as db:
        before = db.stats()["timeouts"]
        with pytest.raises(sqlq.TimeoutError) as ei:
            await asyncio.wait_for(db.execute(RUNAWAY, timeout=0.2), WAIT_BOUND)
        assert isinstance(ei.value, TimeoutError)
        assert isinstance(ei.value, sqlite3.OperationalError)
        await wait_until(lambda: db.stats()["timeouts"] > before, "timeouts counted")
        r, dt = await timed(db.execute("SELECT 1"))
        assert r.rows == [(1,)]


@aio
async def test_read_timeout_of_handle(tmp_path):
    async with open_db(tmp_path, read_timeout=0.2) as db:
        with pytest.raises(sqlq.TimeoutError):
            await asyncio.wait_for(db.execute(RUNAWAY), WAIT_BOUND)


@aio
async def test_write_time_limit(tmp_path):
    async with open_db(tmp_path) as db:
        await db.execute_write_script("CREATE TABLE w(x);")
        with pytest.raises(sqlq.TimeoutError):
            await asyncio.wait_for(
                db.execute_write("INSERT INTO w " + RUNAWAY, timeout=0.2), WAIT_BOUND)
        r = await db.execute("SELECT count(*) FROM w")
        assert r.rows[0][0] == 0
        await db.execute_write("INSERT INTO w VALUES (1)")


@aio
async def test_queue_full(tmp_path):
    async with open_db(tmp_path, queue_capacity=1, readers=1,
                       read_timeout=60) as db:
        tasks = [asyncio.ensure_future(db.execute(runaway(f"q{i}"), timeout=60))
                 for i in range(6)]
        try:
            await wait_until(lambda: any(t.done() for t in tasks),
                             "a read refused")
            refused = [t for t in tasks if t.done()]
            for t in refused:
                assert isinstance(t.exception(), sqlq.QueueFullError), t.exception()
                assert isinstance(t.exception(), sqlite3.OperationalError)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        r, dt = await timed(db.execute("SELECT 1"))
        assert r.rows == [(1,)]


# ---------------------------------------------------------------- cancel

@aio
async def test_cancel_running_read(tmp_path):
    async with open_db(tmp_path, readers=1, read_timeout=60) as db:
        before = db.stats()["cancels"]
        task = await start_runaway(db, "cr", timeout=60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r, dt = await timed(db.execute("SELECT 1"))
        assert r.rows == [(1,)]
        assert dt < NEXT_CALL_BOUND, f"the next call took {dt:.3f} s"
        await wait_until(lambda: db.stats()["cancels"] > before, "cancels counted")


@aio
async def test_wait_for_cancels_runaway(tmp_path):
    async with open_db(tmp_path, readers=1, read_timeout=60) as db:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(db.execute(RUNAWAY, timeout=60), 0.2)
        r, dt = await timed(db.execute("SELECT 2"))
        assert r.rows == [(2,)]
        assert dt < NEXT_CALL_BOUND, f"the next call took {dt:.3f} s"


@aio
async def test_asyncio_timeout_cancels_runaway(tmp_path):
    async with open_db(tmp_path, readers=1, read_timeout=60) as db:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await db.execute(RUNAWAY, timeout=60)
        r, dt = await timed(db.execute("SELECT 3"))
        assert r.rows == [(3,)]
        assert dt < NEXT_CALL_BOUND, f"the next call took {dt:.3f} s"


@aio
async def test_cancel_running_write(tmp_path):
    async with open_db(tmp_path, read_timeout=60) as db:
        await db.execute_write_script("CREATE TABLE w(x);")
        task = asyncio.ensure_future(
            db.execute_write("INSERT INTO w " + runaway("cw")))
        await wait_until(lambda: task.done() or is_running(db, "cw"), "cw running")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r, dt = await timed(db.execute_write("INSERT INTO w VALUES (5)"))
        assert dt < NEXT_CALL_BOUND, f"the next write took {dt:.3f} s"
        r = await db.execute("SELECT x FROM w")
        assert r.rows == [(5,)]


@aio
async def test_cancelled_queued_task_never_runs(tmp_path):
    async with open_db(tmp_path, readers=1, read_timeout=60) as db:
        ran = []
        blocker = await start_runaway(db, "qb", timeout=60)
        queued = asyncio.ensure_future(db.execute_fn(lambda conn: ran.append(1)))
        await wait_until(lambda: db.stats()["queued"] >= 1, "a task queued")
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        blocker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocker
        # the only reader has served a later call, so it is past the
        # queued one
        r, dt = await timed(db.execute_fn(lambda conn: "later"))
        assert r == "later"
        assert ran == []


@aio
async def test_cancelled_queued_write_never_runs(tmp_path):
    async with open_db(tmp_path, read_timeout=60) as db:
        await db.execute_write_script("CREATE TABLE w(x);")
        blocker = asyncio.ensure_future(
            db.execute_write("INSERT INTO w " + runaway("qw")))
        await wait_until(lambda: blocker.done() or is_running(db, "qw"), "qw running")
        queued = asyncio.ensure_future(db.execute_write("INSERT INTO w VALUES (1)"))
        await wait_until(lambda: db.stats()["queued"] >= 1, "a write queued")
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        blocker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocker
        await db.execute_write("INSERT INTO w VALUES (2)")
        r = await db.execute("SELECT x FROM w")
        assert r.rows == [(2,)]


# ---------------------------------------------------------------- close

@aio
async def test_close_keeps_acknowledged_writes(tmp_path):
    n = 300
    db = await open_db(tmp_path, synchronous="FULL").__aenter__()
    await db.execute_write_script("CREATE TABLE w(x INTEGER PRIMARY KEY);")
    tasks = [asyncio.ensure_future(db.execute_write("INSERT INTO w VALUES (?)", (i,)))
             for i in range(n)]
    await asyncio.sleep(0)  # every task has submitted its write
    await asyncio.wait_for(db.close(), WAIT_BOUND)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    acked = set()
    for i, res in enumerate(results):
        if isinstance(res, BaseException):
            assert isinstance(res, (sqlq.ClosedError, asyncio.CancelledError,
                                    sqlq.OutcomeUnknownError)), repr(res)
        else:
            assert res.rowcount == 1
            acked.add(i)
    con = sqlite3.connect(str(tmp_path / "t.db"))
    try:
        in_file = {x for (x,) in con.execute("SELECT x FROM w")}
    finally:
        con.close()
    assert acked <= in_file, f"lost acknowledged writes: {sorted(acked - in_file)[:10]}"
    # close drains the queue within close_timeout (10 s): all were served
    assert len(acked) == n, f"{n - len(acked)} queued writes were not served"


@aio
async def test_calls_after_close_raise_closed(tmp_path):
    db = await open_db(tmp_path).__aenter__()
    await db.execute_write_script("CREATE TABLE w(x);")
    await db.close()
    with pytest.raises(sqlq.ClosedError):
        await db.execute("SELECT 1")
    with pytest.raises(sqlq.ClosedError):
        await db.execute_write("INSERT INTO w VALUES (1)")
    with pytest.raises(sqlq.ClosedError):
        await db.execute_write_many("INSERT INTO w VALUES (?)", [(1,)])
    with pytest.raises(sqlq.ClosedError):
        await db.execute_write_script("INSERT INTO w VALUES (1);")
    with pytest.raises(sqlq.ClosedError):
        await db.execute_fn(lambda conn: 1)
    with pytest.raises(sqlq.ClosedError):
        await db.execute_write_fn(lambda conn: 1)
    assert issubclass(sqlq.ClosedError, sqlite3.ProgrammingError)


@aio
async def test_async_with_closes(tmp_path):
    async with open_db(tmp_path) as db:
        await db.execute("SELECT 1")
    with pytest.raises(sqlq.ClosedError):
        await db.execute("SELECT 1")


@aio
async def test_close_with_runaway_running_ends(tmp_path):
    db = await open_db(tmp_path, readers=1, read_timeout=60,
                       close_timeout=0.5).__aenter__()
    task = await start_runaway(db, "cl", timeout=60)
    _, dt = await timed(db.close())
    with pytest.raises((sqlite3.Error, asyncio.CancelledError)):
        await asyncio.wait_for(task, WAIT_BOUND)


# ---------------------------------------------------------------- load

@aio
async def test_many_concurrent_writers(tmp_path):
    async with open_db(tmp_path) as db:
        await db.execute_write_script("CREATE TABLE w(task, i);")

        async def writer(k):
            for i in range(20):
                await db.execute_write("INSERT INTO w VALUES (?, ?)", (k, i))

        await asyncio.wait_for(asyncio.gather(*(writer(k) for k in range(64))),
                               120)
        r = await db.execute("SELECT count(*), count(DISTINCT task) FROM w")
        assert r.rows[0] == (1280, 64)


class Ticker:
    """Sleeps 5 ms in a loop and keeps the worst lateness of its wake-ups."""

    def __init__(self):
        self.worst = 0.0
        self.ticks = 0
        self._stop = False

    async def run(self):
        loop = asyncio.get_running_loop()
        while not self._stop:
            t = loop.time()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, loop.time() - t - 0.005)
            self.ticks += 1

    def __enter__(self):
        self.task = asyncio.ensure_future(self.run())
        return self

    def __exit__(self, *exc):
        self._stop = True


@aio
async def test_loop_does_not_stall_on_runaway(tmp_path):
    async with open_db(tmp_path, read_timeout=60) as db:
        with Ticker() as tk:
            await asyncio.sleep(0.02)
            with pytest.raises(sqlq.TimeoutError):
                await asyncio.wait_for(db.execute(RUNAWAY, timeout=1.0), WAIT_BOUND)
        await tk.task
        assert tk.ticks >= 10
        assert tk.worst < STALL_BOUND, f"the loop stalled {tk.worst:.3f} s"


@aio
async def test_loop_does_not_stall_on_writes(tmp_path):
    async with open_db(tmp_path, synchronous="FULL") as db:
        await db.execute_write_script("CREATE TABLE w(task, i, pad);")
        pad = "x" * 1000

        async def writer(k):
            for i in range(20):
                await db.execute_write("INSERT INTO w VALUES (?, ?, ?)", (k, i, pad))

        with Ticker() as tk:
            await asyncio.wait_for(asyncio.gather(*(writer(k) for k in range(64))),
                                   120)
        await tk.task
        assert tk.worst < STALL_BOUND, f"the loop stalled {tk.worst:.3f} s"
        r = await db.execute("SELECT count(*) FROM w")
        assert r.rows[0][0] == 1280


# ---------------------------------------------------------------- introspection

@aio
async def test_stats_keys(tmp_path):
    async with open_db(tmp_path) as db:
        await db.execute("SELECT 1")
        with pytest.raises(sqlite3.OperationalError):
            await db.execute("SELEC")
        st = db.stats()
        assert isinstance(st, dict)
        for k in ("queued", "running", "done", "failed", "timeouts", "cancels",
                  "batches"):
            assert k in st, k
            assert isinstance(st[k], int), (k, st[k])
        assert st["done"] >= 1
        assert st["failed"] >= 1


@aio
async def test_activity_shows_running_query(tmp_path):
    async with open_db(tmp_path, read_timeout=60) as db:
        await db.execute("SELECT 1")
        acts = db.activity()
        assert isinstance(acts, list) and acts
        for k in ("id", "state", "sql", "elapsed_ms", "limit_ms"):
            assert k in acts[0], k
        task = await start_runaway(db, "act_tag", timeout=60)
        try:
            mine = [a for a in db.activity() if "act_tag" in (a["sql"] or "")
                    and a["state"] == "running"]
            assert len(mine) == 1
            assert mine[0]["sql"] == runaway("act_tag")
            await wait_until(
                lambda: any((a["elapsed_ms"] or 0) > 0 for a in db.activity()
                            if "act_tag" in (a["sql"] or "")), "elapsed_ms grows")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await wait_until(lambda: not is_running(db, "act_tag"), "act stopped")


# ---------------------------------------------------------------- leaks

@aio
async def test_no_reference_or_memory_leak(tmp_path):
    async with open_db(tmp_path) as db:
        await db.execute_write_script("CREATE TABLE w(s, n);")
        p = "".join(["param-", "string-", str(os.getpid())])  # not interned
        sql_r = " ".join(["SELECT", "?1, length(?1), ?2"])
        sql_w = " ".join(["INSERT INTO w VALUES", "(?1, ?2)"])
        sql_n = " ".join(["SELECT", ":p, :n"])
        blob = bytes(range(256))
        params_n = {"p": p, "n": blob}
        refs = (sys.getrefcount(p), sys.getrefcount(sql_r), sys.getrefcount(sql_w),
                sys.getrefcount(sql_n), sys.getrefcount(blob))
        tracemalloc.start()
        try:
            for i in range(20000):
                if i == 5000:
                    await settle()
                    m1 = tracemalloc.get_traced_memory()[0]
                k = i % 4
                if k == 0:
                    r = await db.execute(sql_r, (p, i))
                elif k == 1:
                    r = await db.execute_write(sql_w, [p, i])
                elif k == 2:
                    r = await db.execute(sql_n, params_n)
                else:
                    r = await db.execute_write(sql_w, (p, blob))
            del r
            await settle()
            m2 = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert (sys.getrefcount(p), sys.getrefcount(sql_r), sys.getrefcount(sql_w),
                sys.getrefcount(sql_n), sys.getrefcount(blob)) == refs
        assert m2 - m1 < 1 << 20, f"traced memory grew {m2 - m1} bytes"


@aio
async def test_error_path_does_not_leak(tmp_path):
    async with open_db(tmp_path) as db:
        await make_table(db, 0)
        await db.execute_write("INSERT INTO t(name) VALUES ('dup')")
        p = "".join(["d", "up"])
        before = sys.getrefcount(p)
        for _ in range(2000):
            with pytest.raises(sqlite3.IntegrityError):
                await db.execute_write("INSERT INTO t(name) VALUES (?)", (p,))
            with pytest.raises(sqlite3.ProgrammingError):
                await db.execute("SELECT ?, ?", (p,))
        await settle()
        assert sys.getrefcount(p) == before


async def settle():
    """Lets the loop run a few steps, then collects: until the loop's next
    step, the handle that woke the test (Task.task_wakeup(future)) still
    refers to the last future, its result or exception."""
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()


class Obj:
    pass


@aio
async def test_fn_and_result_not_leaked(tmp_path):
    async with open_db(tmp_path) as db:
        for method in (db.execute_fn, db.execute_write_fn):
            def fn(conn):
                return Obj()

            wfn = weakref.ref(fn)
            v = await method(fn)
            assert isinstance(v, Obj)
            wv = weakref.ref(v)
            del v, fn
            await settle()
            assert wv() is None, f"{method.__name__}: the result is leaked"
            assert wfn() is None, f"{method.__name__}: fn is leaked"


@aio
async def test_fn_exception_not_leaked(tmp_path):
    async with open_db(tmp_path) as db:
        class Boom(Exception):
            pass

        def fn(conn):
            raise Boom()

        wexc = None
        for method in (db.execute_fn, db.execute_write_fn):
            try:
                await method(fn)
            except Boom as e:
                wexc = weakref.ref(e)
            assert wexc is not None
            await settle()
            assert wexc() is None, f"{method.__name__}: the exception is leaked"


# ---------------------------------------------------------------- exit

EXIT_SCRIPTS = {
    "asyncio_run": """
        import asyncio, sqlq
        async def main():
            db = await sqlq.open(PATH, readers=1, read_timeout=60).__aenter__()
            await db.execute_write_script("CREATE TABLE w(x);")
            asyncio.ensure_future(db.execute(RUNAWAY, timeout=60))
            asyncio.ensure_future(db.execute(RUNAWAY, timeout=60))   # queued
            asyncio.ensure_future(db.execute_write("INSERT INTO w VALUES (1)"))
            await asyncio.sleep(0.3)
        asyncio.run(main())
        print("done")
    """,
    "loop_left_open": """
        import asyncio, sys, sqlq
        async def main():
            db = await sqlq.open(PATH, readers=1, read_timeout=60).__aenter__()
            asyncio.ensure_future(db.execute(RUNAWAY, timeout=60))
            asyncio.ensure_future(db.execute(RUNAWAY, timeout=60))   # queued
            await asyncio.sleep(0.3)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(main())
        print("done")
        sys.exit(0)
    """,
}


@pytest.mark.parametrize("variant", sorted(EXIT_SCRIPTS))
def test_process_exit_with_open_handle_does_not_hang(tmp_path, variant):
    script = (f"PATH = {str(tmp_path / 'x.db')!r}\nRUNAWAY = {RUNAWAY!r}\n"
              + textwrap.dedent(EXIT_SCRIPTS[variant]))
    env = dict(os.environ, PYTHONPATH=PKG_DIR)
    try:
        p = subprocess.run(["/usr/bin/python3", "-c", script], env=env,
                           capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit within 20 s")
    assert "done" in p.stdout, p.stderr
    assert p.returncode == 0, p.stderr
