"""bot.py: a chat-bot-shaped load on sqlq, with no network.

A heartbeat must run every 50 ms (a bot that misses it is dropped by its
gateway); meanwhile a few hundred "commands" arrive over about a second and
read and write the database.  Some are runaway queries under a 0.2 s time
limit; some are cancelled by their users after a short random delay.  sqlq
runs the SQL on its own threads, so none of this delays the heartbeat.

Prints the heartbeat's worst delay, the commands' latency p50/p99 and how
many ended ok / timed out / cancelled; exits 1 on an unexpected error or a
stalled loop.  Usage: python3 examples/bot.py [DBPATH]  (default: a temp file)
"""
import asyncio
import os
import random
import sys
import tempfile
import time

import sqlq

COMMANDS = 300
RUNAWAY = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c)"
           " SELECT count(*) FROM c")


async def heartbeat(stop, worst):
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.05)
        worst[0] = max(worst[0], loop.time() - t - 0.05)


async def command(db, n, latencies):
    await asyncio.sleep(random.random())  # users type at their own pace
    t0 = time.perf_counter()
    kind = random.random()
    user = random.randrange(50)
    if kind < 0.4:    # !score
        await db.execute("SELECT coalesce(sum(points), 0) FROM score WHERE user = ?",
                         (user,))
    elif kind < 0.8:  # !give
        await db.execute_write("INSERT INTO score(user, points, note) VALUES (?, ?, ?)",
                               (user, random.randint(1, 10), f"command {n}"))
    elif kind < 0.9:  # !report, a user's query that never ends by itself
        await db.execute(RUNAWAY, timeout=0.2)
    else:             # !top, in a function on a reader
        await db.execute_fn(lambda conn: conn.fetchall(
            "SELECT user, sum(points) AS p FROM score GROUP BY user"
            " ORDER BY p DESC LIMIT 5"))
    latencies.append(time.perf_counter() - t0)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


async def main(path):
    async with sqlq.open(path, synchronous="NORMAL") as db:
        await db.execute_write_script(
            "CREATE TABLE IF NOT EXISTS score(user INTEGER, points INTEGER, note TEXT);")
        stop, worst, latencies = asyncio.Event(), [0.0], []
        beat = asyncio.create_task(heartbeat(stop, worst))
        tasks = []
        for n in range(COMMANDS):
            t = asyncio.create_task(command(db, n, latencies))
            if random.random() < 0.15:  # the user gives up
                asyncio.get_running_loop().call_later(random.uniform(0.0, 1.2),
                                                       t.cancel)
            tasks.append(t)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        stop.set()
        await beat
        rows = (await db.execute("SELECT count(*) FROM score")).rows[0][0]
        stats = db.stats()

    counts = {"ok": 0, "timed out": 0, "cancelled": 0, "failed": 0}
    for r in results:
        if r is None:
            counts["ok"] += 1
        elif isinstance(r, sqlq.TimeoutError):
            counts["timed out"] += 1
        elif isinstance(r, asyncio.CancelledError):
            counts["cancelled"] += 1
        else:
            counts["failed"] += 1
            print("unexpected:", repr(r), file=sys.stderr)
    print(f"heartbeat worst delay: {worst[0] * 1000:.1f} ms")
    print(f"command latency: p50 {pct(latencies, 50) * 1000:.1f} ms,"
          f" p99 {pct(latencies, 99) * 1000:.1f} ms")
    print(", ".join(f"{k}: {v}" for k, v in counts.items()),
          f"(rows: {rows}; sqlq cancels: {stats['cancels']},"
          f" timeouts: {stats['timeouts']})")
    return counts["failed"] == 0 and counts["ok"] > 0 and worst[0] < 0.5


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(d, "bot.db")
        sys.exit(0 if asyncio.run(main(path)) else 1)
