# shim/python/examples/quickstart.py: the sqlq package's quick start (README.md).
import asyncio
import sqlq

async def main():
    async with sqlq.open("bot.db", read_timeout=1.0) as db:
        await db.execute_write_script(
            "CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body)")
        r = await db.execute_write(
            "INSERT INTO notes(body) VALUES (:body) RETURNING id",
            {"body": "hello"})
        print(r.rows[0]["id"], r.lastrowid)
        for row in await db.execute("SELECT id, body FROM notes"):
            print(row["id"], row["body"])
        try:
            await db.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                             "SELECT x+1 FROM c) SELECT count(*) FROM c",
                             timeout=0.2)
        except TimeoutError:
            print("a runaway query stopped")

asyncio.run(main())
