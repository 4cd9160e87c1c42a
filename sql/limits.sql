-- limits.sql: per-statement time limits and step budgets.
.load ext/timelimit
.echo on

-- No limit until one is set; timelimit(ms) returns the previous limit.
SELECT timelimit();
SELECT timelimit(50);
SELECT timelimit();

-- A runaway query stops at its deadline with SQLITE_INTERRUPT ...
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c)
SELECT count(*) FROM c;
-- ... and timelimit_reason() says why.
SELECT timelimit_reason();
-- The connection is still usable, and a statement that ends normally clears
-- the reason.
SELECT 6 * 7;
SELECT timelimit_reason() IS NULL;

-- Each statement gets its own clock: a query well under the limit runs.
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<10000)
SELECT count(*) FROM c;

-- A limit set inside a statement applies to the statements after it: this
-- one runs well past 50 ms (3 million rows) and completes.
SELECT timelimit(0);
SELECT timelimit(50), (WITH RECURSIVE c(x) AS
  (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<3000000) SELECT count(*) FROM c);

-- A budget of VM steps is deterministic: the same on every machine.
SELECT timelimit_ops(100000);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c)
SELECT count(*) FROM c;
SELECT timelimit_reason();
-- 10000 rows take 170014 steps: over the budget.
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<10000)
SELECT count(*) FROM c;
SELECT timelimit_ops(200000);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<10000)
SELECT count(*) FROM c;
SELECT timelimit_ops(0);

-- Triggers run inside the statement that fired them and share its clock:
-- this UPDATE fires its trigger for each of 100000 rows, and stops at its
-- deadline with nothing changed.  (The table fills with no limit.)
SELECT timelimit(0);
CREATE TABLE t(x);
CREATE TABLE log(n);
INSERT INTO t WITH RECURSIVE c(x) AS
  (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<100000) SELECT x FROM c;
CREATE TRIGGER tg AFTER UPDATE ON t BEGIN
  INSERT INTO log SELECT count(*) FROM (WITH RECURSIVE c(y) AS
    (SELECT 1 UNION ALL SELECT y+1 FROM c WHERE y<100) SELECT y FROM c);
END;
SELECT timelimit(50);
UPDATE t SET x = x + 1;
SELECT timelimit_reason(), (SELECT sum(x) FROM t), (SELECT count(*) FROM log);

-- COMMIT is never given a deadline or a budget.
SELECT timelimit(1), timelimit_ops(1);
BEGIN;
INSERT INTO log VALUES (1), (2), (3);
COMMIT;
SELECT count(*) FROM log;
