"""sqlq for asyncio: an SQLite database that never blocks the event loop.

One handle owns one database file: writes go through one queue to a single
writer thread, which commits them in groups; reads run on a pool of read
connections under a time limit and a row cap.  Every call returns at once
with a future; completions come back on the loop's thread through one file
descriptor (loop.add_reader).  Cancelling the awaiting task cancels the
query itself: a queued one never runs, a running one is interrupted.

    async with sqlq.open("app.db") as db:
        await db.execute_write("INSERT INTO notes(body) VALUES (?)", ["hi"])
        rows = (await db.execute("SELECT * FROM notes")).rows

The C core is sqlq._sqlq (_sqlq.c); this module is the asyncio layer.
"""

import asyncio
import atexit
import math
import weakref

from ._sqlq import (CanceledError, ClosedError, Handle, OutcomeUnknownError,
                    QueueFullError, Result, Row, TimeoutError, sqlq_version)
from . import _sqlq

__all__ = ["open", "Database", "Result", "Row", "TimeoutError",
           "QueueFullError", "OutcomeUnknownError", "ClosedError",
           "CanceledError", "sqlq_version"]

_SYNCHRONOUS = {"NORMAL": 1, "FULL": 2, "EXTRA": 3}

# Handles not yet closed, closed at exit: their worker threads run Python
# task functions, which must not outlive the interpreter.
_open_handles = weakref.WeakSet()


@atexit.register
def _close_at_exit():
    for h in list(_open_handles):
        h.cancel_all(True)  # Their loop is gone: nobody awaits them
        h.close()


def _ms(seconds, what):
    """seconds (None: 0, the default) as whole milliseconds, at least 1."""
    if seconds is None:
        return 0
    if not isinstance(seconds, (int, float)) or seconds <= 0 or \
            math.isnan(seconds):
        raise ValueError("%s must be a number of seconds > 0" % what)
    return max(1, math.ceil(seconds * 1000))


class Database:
    """One database file behind a writer queue and a pool of readers.

    Create it with sqlq.open().  Every method may be called from the event
    loop's thread only; none blocks it.
    """

    def __init__(self, path, *, readers=None, read_timeout=None,
                 max_rows=None, batch_max=None, batch_wait=None,
                 queue_capacity=None, synchronous="FULL", write_timeout=None,
                 busy_timeout=None, read_connections=None,
                 close_timeout=10.0):
        if synchronous not in _SYNCHRONOUS:
            raise ValueError("synchronous must be NORMAL, FULL or EXTRA")
        self._loop = asyncio.get_running_loop()
        self._close_timeout = close_timeout
        self._closing = None
        self._h = Handle(
            str(path), readers=readers or 0,
            read_timeout_ms=_ms(read_timeout, "read_timeout"),
            max_rows=max_rows or 0, queue_capacity=queue_capacity or 0,
            synchronous=_SYNCHRONOUS[synchronous],
            batch_max=batch_max or 0,
            batch_wait_us=0 if batch_wait is None else int(batch_wait * 1e6),
            write_timeout_ms=_ms(write_timeout, "write_timeout"),
            busy_timeout_ms=_ms(busy_timeout, "busy_timeout"),
            read_connections=read_connections or 0)
        _open_handles.add(self._h)
        self._fd = self._h.fileno()
        self._loop.add_reader(self._fd, self._h.dispatch)

    async def _call(self, kind, sql=None, params=None, fn=None, timeout=None,
                    max_rows=None, flags=0):
        if self._closing is not None:
            raise ClosedError("the database is closed")
        fut = self._loop.create_future()
        tid = self._h.submit(fut, kind, sql, params, fn,
                             _ms(timeout, "timeout"), max_rows or 0, flags)
        try:
            return await fut
        except asyncio.CancelledError:
            self._h.cancel(tid)  # A queued task never runs; a running one stops
            raise

    async def execute(self, sql, params=None, *, timeout=None, max_rows=None):
        """A read on the pool, under the time limit and the row cap."""
        return await self._call(_sqlq.READ, sql, params, timeout=timeout,
                                max_rows=max_rows)

    async def execute_write(self, sql, params=None, *, timeout=None):
        """A write in the writer's queue; RETURNING rows come back."""
        return await self._call(_sqlq.WRITE, sql, params, timeout=timeout)

    async def execute_write_many(self, sql, rows, *, timeout=None):
        """sql once per row of parameters, in one transaction."""
        return await self._call(_sqlq.WRITE_MANY, sql, rows, timeout=timeout)

    async def execute_write_script(self, sql, *, timeout=None):
        """Many statements, with no transaction of the library's."""
        return await self._call(_sqlq.SCRIPT, sql, timeout=timeout)

    async def execute_fn(self, fn, *, timeout=None):
        """fn(conn) on a read connection, on a worker thread; its value."""
        return await self._call(_sqlq.READ_FN, fn=fn, timeout=timeout)

    async def execute_write_fn(self, fn, *, transaction=True, isolated=False,
                               timeout=None):
        """fn(conn) on the writer, in a transaction unless transaction=False
        (isolated=True: on a connection of its own); its value."""
        flags = (0 if transaction else _sqlq.NO_TRANSACTION) | \
            (_sqlq.ISOLATED if isolated else 0)
        return await self._call(_sqlq.WRITE_FN, fn=fn, timeout=timeout,
                                flags=flags)

    def stats(self):
        """The handle's counters (sqlq_stats) as a dict."""
        return self._h.stats()

    def activity(self):
        """What each sqlq connection in the process runs now."""
        return self._h.activity()

    async def close(self):
        """Lets the tasks in flight finish, for close_timeout seconds at most;
        then cancels those left, and closes.  Calls made afterwards raise
        ClosedError."""
        if self._closing is None:
            self._closing = self._loop.create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self):
        h = self._h
        loop = self._loop
        deadline = loop.time() + (self._close_timeout or 0)
        while h.stats()["queued"] + h.stats()["running"] > 0:
            if loop.time() >= deadline:
                h.cancel_all()
                deadline = math.inf
            await asyncio.sleep(0.001)  # Completions run meanwhile
        loop.remove_reader(self._fd)
        _open_handles.discard(h)
        # Nothing is queued or running: this returns at once, and runs here
        # any completion not yet dispatched.
        h.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


class open:
    """sqlq.open(path, **options): `async with sqlq.open(...) as db`, or
    `db = await sqlq.open(...)`.  See Database for the options."""

    def __init__(self, path, **options):
        self._path, self._options, self._db = path, options, None

    def __await__(self):
        return self._open().__await__()

    async def _open(self):
        return Database(self._path, **self._options)

    async def __aenter__(self):
        self._db = await self._open()
        return self._db

    async def __aexit__(self, *exc):
        await self._db.close()
