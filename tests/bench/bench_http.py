#!/usr/bin/python3
# tests/bench/bench_http.py: load-tests shim/examples/http_server.c with wrk
# (Debian's wrk) on one machine: primary-key reads, single-row writes
# (synchronous NORMAL, each acknowledged after its group commit), reads
# while a runaway query runs, and the event loop's worst stall then (the
# server's 1 ms probe timer, GET /-/stats).  Prints one markdown table.
#
# Usage: bench_http.py path/to/http_server DIR [SECONDS]
# DIR holds the database; SECONDS is each load's length (default 5).

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.parse

ROWS = 10000
RUNAWAY = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
           "SELECT count(*) FROM c")

# Each wrk run prints one line: requests, seconds, p50/p99 ms, errors.
REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %.3f %.3f %.3f %d\\n",
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""

READS = """
request = function()
  return wrk.format("GET", "/app.json?sql=SELECT+id,v+FROM+items+WHERE+"
    .. "id%%3D:id&id=" .. math.random(1, %d))
end
""" % ROWS

WRITES = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/app.json", nil,
    '{"sql":"INSERT INTO log(v) VALUES (:v)","params":{"v":"w' .. n .. '"}}')
end
"""


class Server:
    def __init__(self, binary, db):
        self.proc = subprocess.Popen(
            [binary, "--timelimit", "4000", "--probe-ms", "1", db, "0"],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.port = int(line.split(":")[1].split(",")[0])

    def call(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request(method, path, None if body is None else json.dumps(body))
        r = c.getresponse()
        out = json.loads(r.read())
        c.close()
        return r.status, out

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


def wrk(port, script, seconds, conns):
    """(requests/s, p50 ms, p99 ms, errors) of one wrk run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + REPORT)
    try:
        out = subprocess.run(
            ["wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds, "-s", f.name,
             "http://127.0.0.1:%d/" % port],
            capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    line = [l for l in out.splitlines() if l.startswith("RESULT ")][0]
    n, secs, p50, p99, errs = line.split()[1:]
    return int(n) / float(secs), float(p50), float(p99), int(errs)


def main():
    binary, d = sys.argv[1], sys.argv[2]
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    s = Server(binary, os.path.join(d, "app.db"))
    try:
        for sql in [
            "CREATE TABLE items(id INTEGER PRIMARY KEY, v TEXT)",
            "CREATE TABLE log(id INTEGER PRIMARY KEY, v TEXT)",
            "INSERT INTO items(v) SELECT 'item ' || x FROM (WITH RECURSIVE "
            "c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT %d) "
            "SELECT x FROM c)" % ROWS,
        ]:
            status, body = s.call("POST", "/app.json", {"sql": sql})
            assert status == 200, body

        rows = [("reads, 32 connections", wrk(s.port, READS, seconds, 32)),
                ("writes, 64 connections", wrk(s.port, WRITES, seconds, 64))]
        st = s.call("GET", "/-/stats")[1]
        batch = st["mean_batch"]

        # Reads while a runaway query runs into its 4 s limit.
        runaway = {}
        t = threading.Thread(target=lambda: runaway.update(
            r=s.call("GET", "/app.json?" +
                     urllib.parse.urlencode({"sql": RUNAWAY}))))
        t.start()
        s.call("GET", "/-/stats")  # A new window of loop stalls
        during = wrk(s.port, READS, min(seconds, 3), 32)
        stall = s.call("GET", "/-/stats")[1]["loop_worst_stall_ms"]
        t.join()
        assert runaway["r"][0] == 504, runaway
        rows.append(("reads during a runaway query", during))
    finally:
        s.stop()

    print("| load (wrk -t2, %d s) | requests/s | p50 ms | p99 ms | errors |"
          % seconds)
    print("| --- | --- | --- | --- | --- |")
    for name, (rate, p50, p99, errs) in rows:
        print("| %s | %.0f | %.2f | %.2f | %d |" % (name, rate, p50, p99,
                                                    errs))
    print()
    print("writes per group commit (mean): %.1f" % batch)
    print("event loop's worst stall while the runaway query ran: %.2f ms"
          % stall)


if __name__ == "__main__":
    main()
