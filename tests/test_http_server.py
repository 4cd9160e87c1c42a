#!/usr/bin/python3
# tests/test_http_server.py: runs shim/examples/http_server.c (evhttp and
# jansson on sqlq's libevent adapter) and checks it with a real HTTP client,
# Python's http.client: Datasette's JSON API for reads, writes by POST,
# parameters by name, the row cap, JSON errors and their status codes, the
# time limit that a request can lower and never raise, a runaway query that
# delays no other request, the cancel of a client that disconnects and of
# POST /-/cancel/ID, a full queue, pipelined requests, and a clean exit on
# SIGTERM with a request in flight.
#
# Usage, from the repository root, with Debian's own Python and only the
# standard library:
#   /usr/bin/python3 tests/test_http_server.py path/to/http_server [-v] ...
# Exits non-zero if any test fails.  Nothing here sleeps to wait: every wait
# is a bounded poll of a condition, a socket, a thread or the process.

import base64
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

SERVER = None  # argv[1], set in main()

# Counts forever: only a time limit or a cancel stops it.
RUNAWAY = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
           "SELECT count(*) FROM c")

WAIT = 30.0  # Bound, in seconds, of every wait


def until(cond, what):
    """Polls cond() until it is true, for at most WAIT seconds."""
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.005)  # A poll interval; the bound is WAIT
    raise AssertionError("timed out waiting for " + what)


class Server:
    """An http_server process on a fresh database, on a free port."""

    def __init__(self, *args):
        self.tmp = tempfile.TemporaryDirectory()
        self.proc = subprocess.Popen(
            [SERVER, *args, self.tmp.name + "/app.db", "0"],
            stdout=subprocess.PIPE, text=True)
        lines = []
        reader = threading.Thread(
            target=lambda: lines.append(self.proc.stdout.readline()),
            daemon=True)
        reader.start()
        reader.join(WAIT)
        prefix = "listening on 127.0.0.1:"
        if not lines or not lines[0].startswith(prefix):
            self.stop()
            raise AssertionError("the server printed %r" % lines)
        self.port = int(lines[0][len(prefix):].split(",")[0])

    def stop(self):
        """Stops the server with SIGTERM; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(WAIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            self.tmp.cleanup()
        return rc

    def request(self, method, path, body=None):
        """(status, headers, JSON body) of one request on a new connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=WAIT)
        try:
            data = None if body is None else json.dumps(body)
            conn.request(method, path, body=data)
            resp = conn.getresponse()
            return resp.status, resp.headers, json.loads(resp.read())
        finally:
            conn.close()

    def read(self, sql, **args):
        """GET /app.json?sql=sql&args..."""
        q = urllib.parse.urlencode({"sql": sql, **args})
        return self.request("GET", "/app.json?" + q)

    def write(self, sql, params=None):
        """POST /app.json {"sql": sql, "params": params}."""
        body = {"sql": sql}
        if params is not None:
            body["params"] = params
        return self.request("POST", "/app.json", body)

    def stats(self):
        return self.request("GET", "/-/stats")[2]

    def in_flight(self, sql):
        """The task id of the request in flight running sql, or None."""
        for r in self.request("GET", "/-/activity")[2]["requests"]:
            if r.get("sql") == sql:
                return r["task"]
        return None


class Background(threading.Thread):
    """Runs fn() on a thread; .result is what it returned."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn()
        except BaseException as e:  # Reported by get()
            self.error = e

    def get(self):
        self.join(WAIT)
        if self.is_alive():
            raise AssertionError("the request did not end")
        if self.error:
            raise self.error
        return self.result


class HttpServerTest(unittest.TestCase):
    """One server (time limit 10 s, 5 rows at most) serves these tests."""

    @classmethod
    def setUpClass(cls):
        cls.s = Server("--timelimit", "10000", "--max-rows", "5",
                       "--probe-ms", "1")
        cls.addClassCleanup(lambda: cls.s.stop())
        status, _, body = cls.s.write(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v, UNIQUE(v))")
        assert status == 200, body

    def test_read_write_and_types(self):
        s = self.s
        blob = base64.b64encode(b"\x00\x01\xfe\xff").decode()
        status, _, body = s.write(
            "INSERT INTO t(v) VALUES (:v) RETURNING id, v",
            {"v": "héllo"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["columns"], ["id", "v"])
        self.assertEqual(body["rows"][0][1], "héllo")
        self.assertEqual(body["changes"], 1)
        self.assertEqual(body["last_insert_rowid"], body["rows"][0][0])
        status, _, body = s.write(
            "SELECT ?, ?, ?, ?, ?, ?",
            [7, 2.5, "x", None, True, {"$base64": True, "encoded": blob}])
        self.assertEqual(status, 200, body)
        self.assertEqual(body["rows"], [[7, 2.5, "x", None, 1,
                                         {"$base64": True,
                                          "encoded": blob}]])
        status, _, body = s.read("SELECT id, v FROM t WHERE v = :v",
                                 v="héllo", _shape="objects")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["ok"], True)
        self.assertEqual(body["database"], "app")
        self.assertEqual(body["query"]["params"], {"v": "héllo"})
        self.assertEqual(body["rows"][0]["v"], "héllo")
        self.assertIs(body["truncated"], False)
        # Text that is not UTF-8 comes back as its bytes.
        status, _, body = s.read("SELECT CAST(x'ff41' AS TEXT)")
        self.assertEqual(body["rows"],
                         [[{"$base64": True, "encoded": "/0E="}]])

    def test_bytes_that_are_not_utf8(self):
        # In the SQL, a parameter, a column name, an error message: each is
        # answered (U+FFFD for a bad byte), and the server lives on.
        s = self.s
        status, _, body = s.request(
            "GET", "/app.json?sql=SELECT+:p+AS+%22c%FF%22&p=%FF")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["columns"], ["c\ufffd"])
        self.assertEqual(body["query"]["params"], {"p": "\ufffd"})
        status, _, body = s.request("GET", "/app.json?sql=SELECT+%FF")
        self.assertEqual(status, 400, body)
        self.assertIn("\ufffd", body["error"])
        # A key is decoded as its value is: %C3%AF is ï.
        status, _, body = s.read("SELECT :na\u00efve", **{"na\u00efve": "x"})
        self.assertEqual((status, body["rows"]), (200, [["x"]]))

    def test_row_cap_truncates(self):
        status, _, body = self.s.read(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
            "LIMIT 9) SELECT x FROM c")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["rows"], [[1], [2], [3], [4], [5]])
        self.assertIs(body["truncated"], True)

    def test_errors(self):
        s = self.s
        cases = [
            (s.read("SELEKT 1"), 400, 1, "syntax error"),
            (s.read("DELETE FROM t"), 400, -1, "may not write"),
            (s.read("SELECT :a", b="1"), 400, -10, "no parameter named :b"),
            (s.read("SELECT :a"), 400, -10, "wrong number of parameters"),
            (s.read("SELECT 1", _timelimit="soon"), 400, 0, "_timelimit"),
            (s.read("SELECT 1", _shape="html"), 400, 0, "_shape"),
            (s.request("GET", "/app.json"), 400, 0, "sql= is required"),
            (s.request("GET", "/other.json?sql=1"), 404, 0, "not found"),
            (s.request("POST", "/app.json", [1]), 400, 0, "must be {"),
            (s.request("POST", "/app.json", "x"), 400, 0, "not JSON"),
            (s.write("SELECT ?", [[1]]), 400, 0, "a parameter must be"),
            (s.write("SELECT ?", {"a": 1, "b": 2}), 400, -10,
             "wrong number of parameters"),
            (s.write("INSERT INTO t(v) VALUES ('dup')"), 200, 0, ""),
            (s.write("INSERT INTO t(v) VALUES ('dup')"), 400, 2067,
             "UNIQUE constraint failed: t.v"),
            (s.write("ATTACH 'x.db' AS x"), 400, -1, "may not change"),
            (s.request("POST", "/-/cancel/x"), 400, -1, "task id"),
            (s.request("POST", "/-/cancel/999999"), 404, -9, "no such task"),
            (s.write("SELECT ?", [{"$base64": True, "encoded": "QQ==@@@"}]),
             400, 0, "not base64"),
            (s.write("SELECT ?", [{"$base64": True, "encoded": "Q"}]), 400,
             0, "not base64"),
        ]
        for (status, _, body), want_status, want_code, want_msg in cases:
            with self.subTest(body=body):
                self.assertEqual(status, want_status)
                if want_status == 200:
                    continue
                self.assertIs(body["ok"], False)
                self.assertEqual(body["status"], want_status)
                self.assertEqual(body["code"], want_code)
                self.assertIn(want_msg, body["error"])
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=WAIT)
        conn.request("PUT", "/app.json", body="{}")
        self.assertEqual(conn.getresponse().status, 405)
        conn.close()
        # A body over 1 MiB is refused from its Content-Length.
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=WAIT)
        sock.sendall(b"POST /app.json HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 2097152\r\n\r\n")
        self.assertTrue(sock.recv(100).startswith(b"HTTP/1.1 413 "))
        sock.close()

    def test_timelimit_lowers(self):
        t0 = time.monotonic()
        status, _, body = self.s.read(RUNAWAY, _timelimit="200")
        self.assertEqual(status, 504, body)
        self.assertEqual(body["code"], -4)
        # The server's limit is 10 s: only the request's stopped it.
        self.assertLess(time.monotonic() - t0, 5.0)

    def test_runaway_delays_no_one_and_cancel(self):
        s = self.s
        s.stats()  # Starts a new window of loop stalls
        t0 = time.monotonic()
        runaway = Background(lambda: s.read(RUNAWAY))
        task = until(lambda: s.in_flight(RUNAWAY), "the runaway to run")
        for i in range(40):
            status, _, body = s.read("SELECT :i", i=str(i))
            self.assertEqual((status, body["rows"]), (200, [[str(i)]]))
        for i in range(10):
            status, _, body = s.write("INSERT INTO t(v) VALUES (?)",
                                      ["r%d" % i])
            self.assertEqual(status, 200, body)
        self.assertTrue(runaway.is_alive(), "the runaway ended early")
        busy = time.monotonic() - t0
        stall = s.stats()["loop_worst_stall_ms"]
        self.assertLess(stall, busy * 1000 / 2, "the loop stalled")
        status, _, body = s.request("POST", "/-/cancel/%d" % task)
        self.assertEqual((status, body["canceled"]), (200, task))
        status, _, body = runaway.get()
        self.assertEqual((status, body["code"]), (503, -5))
        self.assertIsNone(s.in_flight(RUNAWAY))

    def test_client_disconnect_cancels(self):
        s = self.s
        before = s.stats()
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=WAIT)
        q = urllib.parse.urlencode({"sql": RUNAWAY})
        sock.sendall(("GET /app.json?%s HTTP/1.1\r\nHost: x\r\n\r\n" %
                      q).encode())
        until(lambda: s.in_flight(RUNAWAY), "the runaway to run")
        sock.close()
        until(lambda: s.in_flight(RUNAWAY) is None, "the cancel")
        after = s.stats()
        self.assertEqual(after["cancels"], before["cancels"] + 1)
        self.assertEqual(after["timeouts"], before["timeouts"])
        self.assertEqual(s.read("SELECT 1")[0], 200)

    def test_client_reset_cancels(self):
        # A reset (RST, not FIN) is seen too.
        s = self.s
        before = s.stats()
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=WAIT)
        q = urllib.parse.urlencode({"sql": RUNAWAY + " -- reset"})
        sock.sendall(("GET /app.json?%s HTTP/1.1\r\nHost: x\r\n\r\n" %
                      q).encode())
        until(lambda: s.in_flight(RUNAWAY + " -- reset"), "the runaway")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
        sock.close()
        until(lambda: s.in_flight(RUNAWAY + " -- reset") is None,
              "the cancel")
        self.assertEqual(s.stats()["cancels"], before["cancels"] + 1)

    def test_pipelined_requests(self):
        sock = socket.create_connection(("127.0.0.1", self.s.port),
                                        timeout=WAIT)
        req = "GET /app.json?sql=SELECT+%d HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(((req % 1) + (req % 2)).encode())
        data = b""
        while data.count(b'"ok":true') < 2:
            chunk = sock.recv(65536)
            self.assertTrue(chunk, "the server closed the connection")
            data += chunk
        sock.close()
        self.assertLess(data.index(b'"rows":[[1]]'), data.index(b'"rows":[[2]]'))

    def test_concurrent_writers(self):
        def writer(n):
            for i in range(25):
                status, _, body = self.s.write(
                    "INSERT INTO t(v) VALUES (?)", ["w%d-%d" % (n, i)])
                assert status == 200, body
        threads = [Background(lambda n=n: writer(n)) for n in range(8)]
        for t in threads:
            t.get()
        status, _, body = self.s.read(
            "SELECT count(*) FROM t WHERE v LIKE 'w%'")
        self.assertEqual(body["rows"], [[200]])


class SmallServerTest(unittest.TestCase):
    """Servers of their own: a short time limit, one reader, a short queue."""

    def test_timelimit_cannot_be_raised_and_sigterm(self):
        s = Server("--timelimit", "300")
        try:
            status, _, body = s.read(RUNAWAY, _timelimit="3600000")
            self.assertEqual((status, body["code"]), (504, -4))
            # SIGTERM with a request in flight: it is answered, then exit 0.
            idle = http.client.HTTPConnection("127.0.0.1", s.port,
                                              timeout=WAIT)
            idle.request("GET", "/app.json?sql=SELECT+1")
            self.assertEqual(idle.getresponse().read()[:10], b'{"ok":true')
            runaway = Background(lambda: s.read(RUNAWAY))
            until(lambda: s.in_flight(RUNAWAY), "the runaway to run")
            s.proc.send_signal(signal.SIGTERM)

            def refused():
                try:
                    socket.create_connection(("127.0.0.1", s.port)).close()
                    return False
                except ConnectionRefusedError:
                    return True
            until(refused, "the server to stop accepting")
            # A keep-alive client asking after SIGTERM is told, not dropped.
            idle.request("GET", "/app.json?sql=SELECT+2")
            resp = idle.getresponse()
            body = json.loads(resp.read())
            self.assertEqual((resp.status, body["code"]), (503, -2))
            self.assertEqual(resp.headers["Connection"], "close")
            idle.close()
            status, _, body = runaway.get()
            self.assertEqual(status, 504)
            self.assertEqual(s.proc.wait(WAIT), 0)
        finally:
            s.stop()

    def test_queue_full(self):
        s = Server("--readers", "1", "--queue", "1")
        try:
            a = Background(lambda: s.read(RUNAWAY))
            ta = until(lambda: s.in_flight(RUNAWAY), "the first to run")
            until(lambda: s.stats()["running"] == 1, "the first to run")
            b = Background(lambda: s.read(RUNAWAY + " -- b"))
            tb = until(lambda: s.in_flight(RUNAWAY + " -- b"), "the second")
            until(lambda: s.stats()["queued"] == 1, "the second to wait")
            status, headers, body = s.read("SELECT 1")
            self.assertEqual((status, body["code"]), (503, -3))
            self.assertEqual(headers["Retry-After"], "1")
            for t in (tb, ta):
                self.assertEqual(
                    s.request("POST", "/-/cancel/%d" % t)[0], 200)
            self.assertEqual(a.get()[0], 503)
            self.assertEqual(b.get()[0], 503)
            self.assertEqual(s.read("SELECT 1")[0], 200)
        finally:
            s.stop()


def main():
    global SERVER
    if len(sys.argv) < 2:
        sys.exit("usage: test_http_server.py path/to/http_server [-v]")
    SERVER = os.path.abspath(sys.argv.pop(1))
    unittest.main()


if __name__ == "__main__":
    main()
