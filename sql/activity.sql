-- activity.sql: timelimit_activity, one row per connection, as
-- pg_stat_activity.
.load ext/timelimit
.echo on
.headers on

-- The connection reading the table is running that very statement.
SELECT id = timelimit_id() AS self, state, sql, elapsed_ms >= 0 AS timed,
  limit_ms, ops_limit, locked
FROM timelimit_activity;

-- A second connection in the same process (the shell's .connection).
.connection 1
.load ext/timelimit
SELECT timelimit(250), timelimit_ops(1000000);
SELECT 'hello';
.connection 0

-- From the first one, the second is idle and shows its last statement.
SELECT state, sql, elapsed_ms, limit_ms, ops_limit, statements, timeouts,
  cancels, locked
FROM timelimit_activity WHERE id <> timelimit_id();

-- Counters: a statement stopped by its deadline counts as a timeout.
SELECT timelimit(20);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c)
SELECT count(*) FROM c;
SELECT timeouts, cancels FROM timelimit_activity WHERE id = timelimit_id();
