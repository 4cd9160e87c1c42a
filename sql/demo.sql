-- demo.sql: the timelimit extension in the sqlite3 shell (make demo).
.load ext/timelimit
.echo on
.headers on
.mode column

-- 1. A runaway query (a recursive CTE with no end) under a 100 ms limit.
SELECT timelimit(100) AS previous_limit;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c)
SELECT count(*) FROM c;
SELECT timelimit_reason() AS reason;

-- 2. A step budget: deterministic, the same on every machine.
SELECT timelimit(0), timelimit_ops(1000000);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c)
SELECT count(*) FROM c;
SELECT timelimit_reason() AS reason;

-- 3. Lock the connection (as a host does before running a user's SQL): the
--    user may lower the limits, never raise or remove them.
SELECT timelimit(500), timelimit_lock();
SELECT timelimit(200) AS lowered_from;
SELECT timelimit(10000);
SELECT timelimit(0);

-- 4. The activity table, as pg_stat_activity.
SELECT id, state, limit_ms, ops_limit, statements, timeouts, cancels, locked
FROM timelimit_activity;
