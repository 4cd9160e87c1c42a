#!/usr/bin/python3
# shim/python/bench.py: the sqlq package against aiosqlite (Debian's
# python3-aiosqlite) and sqlite3 + asyncio.to_thread, side by side in one
# process, on files in WAL mode: the round trip of SELECT 1, 16 tasks doing
# primary-key lookups, 64 tasks each inserting single rows with
# synchronous=FULL (acknowledged after COMMIT), the event loop's worst stall
# while a runaway query runs, and the time from cancelling a runaway query
# to the next call's answer.  The ways run in turn, 3 rounds, and each
# figure is the median of its rounds.
#
# Usage: PYTHONPATH=build/python/lib bench.py DIR [SECONDS]

import asyncio
import os
import sqlite3
import statistics
import sys
import threading
import time

import aiosqlite
import sqlq

ROWS = 100000
RUNAWAY = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
           "SELECT count(*) FROM c")
# A query that runs about a second and then ends (aiosqlite and to_thread
# cannot stop one: the next call waits for it).
SECOND = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
          "LIMIT %d) SELECT count(*) FROM c")


def connect(path):
    c = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("PRAGMA busy_timeout=5000")
    return c


class Sqlq:
    name = "sqlq"

    async def open(self, path):
        self.db = await sqlq.open(path, read_timeout=600, synchronous="FULL")

    async def read(self, sql, params=()):
        return (await self.db.execute(sql, params)).rows

    async def insert(self, v):
        await self.db.execute_write("INSERT INTO log(v) VALUES (?)", [v])

    async def close(self):
        await self.db.close()


class Aiosqlite:
    name = "aiosqlite"

    async def open(self, path):
        self.db = await aiosqlite.connect(path, isolation_level=None)
        await self.db.execute("PRAGMA synchronous=FULL")
        self.lock = asyncio.Lock()  # One transaction at a time

    async def read(self, sql, params=()):
        async with self.db.execute(sql, params) as cur:
            return await cur.fetchall()

    async def insert(self, v):
        async with self.lock:
            await self.db.execute("BEGIN IMMEDIATE")
            await self.db.execute("INSERT INTO log(v) VALUES (?)", [v])
            await self.db.execute("COMMIT")

    async def close(self):
        await self.db.close()


class ToThread:
    name = "sqlite3 + to_thread"

    async def open(self, path):
        self.c = connect(path)
        self.lock = threading.Lock()

    def _read(self, sql, params):
        with self.lock:
            return self.c.execute(sql, params).fetchall()

    def _insert(self, v):
        with self.lock:
            self.c.execute("BEGIN IMMEDIATE")
            self.c.execute("INSERT INTO log(v) VALUES (?)", [v])
            self.c.execute("COMMIT")

    async def read(self, sql, params=()):
        return await asyncio.to_thread(self._read, sql, params)

    async def insert(self, v):
        await asyncio.to_thread(self._insert, v)

    async def close(self):
        self.c.close()


async def round_trip(w, n=2000):
    """p50 of one SELECT 1, in us."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await w.read("SELECT 1")
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


async def lookups(w, seconds):
    """Lookups/s of 16 tasks."""
    end = time.perf_counter() + seconds
    count = [0]

    async def task(i):
        k = i
        while time.perf_counter() < end:
            k = (k * 7919 + 13) % ROWS + 1
            await w.read("SELECT v FROM items WHERE id = ?", (k,))
            count[0] += 1
    t = time.perf_counter()
    await asyncio.gather(*(task(i) for i in range(16)))
    return count[0] / (time.perf_counter() - t)


async def inserts(w, seconds):
    """Acknowledged rows/s of 64 tasks."""
    end = time.perf_counter() + seconds
    count = [0]

    async def task(i):
        n = 0
        while time.perf_counter() < end:
            await w.insert("t%d-%d" % (i, n))
            n += 1
            count[0] += 1
    t = time.perf_counter()
    await asyncio.gather(*(task(i) for i in range(64)))
    return count[0] / (time.perf_counter() - t)


async def ticker(stop, worst):
    """Ticks every ms until stop is set; worst[0]: the latest tick, ms."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.001)
        worst[0] = max(worst[0], (loop.time() - t - 0.001) * 1e3)


async def stall_and_cancel(w, second):
    """(worst loop stall in ms while a runaway query runs 0.5 s, ms from
    cancelling it to the next call's answer)."""
    stop, worst = asyncio.Event(), [0.0]
    tick = asyncio.ensure_future(ticker(stop, worst))
    q = asyncio.ensure_future(w.read(second))
    await asyncio.sleep(0.5)
    stop.set()
    await tick
    t = time.perf_counter()
    q.cancel()
    await w.read("SELECT 1")
    freed = (time.perf_counter() - t) * 1e3
    try:
        await q
    except asyncio.CancelledError:
        pass
    return worst[0], freed


def calibrate(path):
    """A LIMIT for SECOND that runs about a second here."""
    c = connect(path)
    t = time.perf_counter()
    c.execute(SECOND % 1000000).fetchall()
    c.close()
    return int(1000000 / max(time.perf_counter() - t, 1e-3))


async def main():
    d = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    path = os.path.join(d, "bench.db")
    c = connect(path)
    c.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, v TEXT)")
    c.execute("CREATE TABLE log(id INTEGER PRIMARY KEY, v TEXT)")
    c.execute("INSERT INTO items(v) SELECT 'item ' || x FROM (WITH RECURSIVE "
              "c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT %d) "
              "SELECT x FROM c)" % ROWS)
    c.close()
    second = SECOND % calibrate(path)
    ways = [Sqlq(), Aiosqlite(), ToThread()]
    cases = ["SELECT 1 round trip p50 (us)", "16 tasks: pk lookups/s",
             "64 tasks: inserts/s, FULL, acked",
             "loop's worst stall, runaway (ms)",
             "cancel runaway -> next answer (ms)"]
    got = {(w.name, k): [] for w in ways for k in cases}
    for _ in range(3):
        for w in ways:
            await w.open(path)
            figures = [await round_trip(w), await lookups(w, seconds),
                       await inserts(w, seconds),
                       *await stall_and_cancel(w, second)]
            await w.close()
            for k, v in zip(cases, figures):
                got[(w.name, k)].append(v)
    med = {k: statistics.median(v) for k, v in got.items()}
    print("Python %s, SQLite %s, %d CPUs; median of 3 rounds of %.0f s"
          % (sys.version.split()[0], sqlite3.sqlite_version,
             os.cpu_count(), seconds))
    print("%-36s %12s %12s %12s %9s" % ("case", "sqlq", "aiosqlite",
                                        "to_thread", "sqlq/aio"))
    for k in cases:
        s, a, t = (med[(w.name, k)] for w in ways)
        ratio = s / a if "/s" in k else a / max(s, 0.001)
        print("%-36s %12.1f %12.1f %12.1f %8.1fx" % (k, s, a, t, ratio))
    print()
    print("targets: inserts >= 10x aiosqlite (%s), lookups >= 2x (%s), "
          "stall <= 5 ms (%s), cancel <= 10 ms (%s)" % tuple(
              "met" if ok else "not met" for ok in (
                  med[("sqlq", cases[2])] >= 10 * med[("aiosqlite",
                                                       cases[2])],
                  med[("sqlq", cases[1])] >= 2 * med[("aiosqlite",
                                                      cases[1])],
                  med[("sqlq", cases[3])] <= 5,
                  med[("sqlq", cases[4])] <= 10)))


if __name__ == "__main__":
    asyncio.run(main())
