#!/usr/bin/python3
# tests/test_http_server.py: runs the example shim/examples/http_server.c (an
# HTTP server on one epoll loop, getting sqlq completions through sqlq_fd()
# and sqlq_dispatch()) and checks it as a client: writes and reads, SQL
# errors, a loop that a slow query never blocks, concurrent writers, and a
# client that leaves before its answer.
#
# Usage, from the repository root, with Debian's own Python and only the
# standard library:
#   /usr/bin/python3 tests/test_http_server.py path/to/http_server [-v] ...
# Exits non-zero if any test fails.  One server serves every test, on a
# fresh database; the tests run in the order of their names.  Nothing here
# sleeps: every wait is a bounded wait on a socket, a thread or the process.

import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

SERVER = None  # argv[1], set in main()

# Counts forever: only its time limit (1000 ms) stops it.
SLOW = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
        "SELECT count(*) FROM c")

WAIT = 5.0  # Bound, in seconds, of every wait


def sql_path(sql):
    """The /sql request for sql."""
    return "/sql?q=" + urllib.parse.quote(sql)


class HttpServerTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        """Starts the server on a free port and reads the port it prints."""
        tmp = tempfile.TemporaryDirectory()
        cls.addClassCleanup(tmp.cleanup)
        cls.proc = subprocess.Popen([SERVER, tmp.name + "/test.db", "0"],
                                    stdout=subprocess.PIPE, text=True)
        cls.addClassCleanup(cls.stop)
        lines = []
        reader = threading.Thread(
            target=lambda: lines.append(cls.proc.stdout.readline()),
            daemon=True)
        reader.start()
        reader.join(WAIT)
        prefix = "listening on 127.0.0.1:"
        if not lines or not lines[0].startswith(prefix):
            raise AssertionError("the server printed %r" % lines)
        cls.port = int(lines[0][len(prefix):])

    @classmethod
    def stop(cls):
        """Kills the server if it is still running (a failed test)."""
        if cls.proc.poll() is None:
            cls.proc.kill()
            cls.proc.wait()
        cls.proc.stdout.close()

    @classmethod
    def tearDownClass(cls):
        """Asks the server to quit; it must exit with 0 in time."""
        conn = cls.connect()
        conn.request("GET", "/quit")
        response = conn.getresponse()
        response.read()
        conn.close()
        if response.status != 200:
            raise AssertionError("/quit answered %d" % response.status)
        code = cls.proc.wait(WAIT)
        if code != 0:
            raise AssertionError("the server exited with %d" % code)

    @classmethod
    def connect(cls):
        """A new keep-alive connection to the server."""
        return http.client.HTTPConnection("127.0.0.1", cls.port,
                                          timeout=WAIT)

    def get(self, path, conn=None):
        """(status, decoded JSON body) of GET path, on conn or a new one."""
        own = conn is None
        if own:
            conn = self.connect()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            if own:
                conn.close()

    def count(self):
        """The rows in items, by /count."""
        status, body = self.get("/count")
        self.assertEqual(status, 200)
        return body["count"]

    def test_1_add_count_sql(self):
        """Two rows added are counted and read back."""
        values = ["first", "second \"quoted\" \\ & = + % \u00e9\n"]
        for i, v in enumerate(values):
            self.assertEqual(self.get("/add?v=" + urllib.parse.quote(v)),
                             (200, {"id": i + 1}))
        self.assertEqual(self.get("/count"), (200, {"count": 2}))
        self.assertEqual(
            self.get(sql_path("select v from items order by id")),
            (200, {"columns": ["v"], "rows": [[v] for v in values],
                   "truncated": False}))

    def test_2_syntax_error(self):
        """Bad SQL answers 400 with SQLite's message and code."""
        status, body = self.get(sql_path("selec v from items"))
        self.assertEqual(status, 400)
        self.assertIn("syntax error", body["error"])
        self.assertEqual(body["status"], 1)  # SQLITE_ERROR

    def test_3_slow_query_does_not_block(self):
        """20 requests are answered while a slow query runs to its limit."""
        slow = self.connect()
        self.addCleanup(slow.close)
        sent = time.monotonic()
        slow.request("GET", sql_path(SLOW))  # In flight once sent
        answer = {}

        def wait_slow():
            response = slow.getresponse()
            answer["body"] = json.loads(response.read())
            answer["status"] = response.status
            answer["time"] = time.monotonic()

        waiter = threading.Thread(target=wait_slow, daemon=True)
        waiter.start()
        fast = self.connect()
        self.addCleanup(fast.close)
        for _ in range(20):
            status, _ = self.get("/count", fast)
            self.assertEqual(status, 200)
        fast_done = time.monotonic()
        waiter.join(WAIT)
        self.assertFalse(waiter.is_alive(), "the slow query never answered")
        self.assertEqual(answer["status"], 504)
        self.assertEqual(answer["body"]["status"], -4)  # SQLQ_ETIMEOUT
        self.assertLess(fast_done, answer["time"])
        self.assertGreaterEqual(answer["time"] - sent, 0.9)

    def test_4_concurrent_writers(self):
        """8 clients adding 25 rows each: every add succeeds, once."""
        before = self.count()
        ids, errors = [], []

        def client():
            conn = self.connect()
            try:
                for i in range(25):
                    status, body = self.get("/add?v=row%d" % i, conn)
                    if status != 200:
                        errors.append(body)
                    else:
                        ids.append(body["id"])
            except Exception as e:  # Reported by the main thread
                errors.append(e)
            finally:
                conn.close()

        threads = [threading.Thread(target=client, daemon=True)
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
            self.assertFalse(t.is_alive(), "a client did not finish")
        self.assertEqual(errors, [])
        self.assertEqual(len(set(ids)), 200)
        self.assertEqual(self.count(), before + 200)

    def test_5_client_leaves_early(self):
        """A client that leaves before its answer does not harm the server.

        Its end of stream follows its slow request, so the server reads the
        request (and starts the query) before it sees the client leave.  The
        client only shuts down its sending side, to see the server close the
        connection without an answer; the query's completion, which comes
        after, must find its connection gone.
        """
        gone = self.connect()
        self.addCleanup(gone.close)
        gone.request("GET", sql_path(SLOW))
        gone.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(gone.sock.recv(100), b"")
        self.assertEqual(self.get("/count")[0], 200)
        self.assertIsNone(self.proc.poll())


def main():
    global SERVER
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.stderr.write("usage: %s path/to/http_server [unittest options]\n"
                         % sys.argv[0])
        sys.exit(2)
    SERVER = sys.argv[1]
    unittest.main(argv=[sys.argv[0]] + sys.argv[2:])


if __name__ == "__main__":
    main()
