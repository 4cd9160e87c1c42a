-- lock.sql: a locked connection may only lower its limits.
.load ext/timelimit
.echo on

SELECT timelimit(100), timelimit_ops(0);
SELECT timelimit_lock();
SELECT locked FROM timelimit_activity WHERE id = timelimit_id();

-- Lowering works; from no budget, any budget is lower.
SELECT timelimit(50);
SELECT timelimit_ops(1000000);

-- Raising or removing a limit is refused, and nothing changes.
SELECT timelimit(60);
SELECT timelimit(0);
SELECT timelimit_ops(0);
SELECT timelimit(), timelimit_ops();

-- A locked connection may not interrupt another one, and sees only its own
-- row of timelimit_activity.
SELECT timelimit_interrupt(timelimit_id() + 1);
SELECT count(*) = 1 FROM timelimit_activity;
