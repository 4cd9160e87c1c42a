-- errors.sql: bad arguments get an error naming the function and the
-- argument, and change nothing.
.load ext/timelimit
.echo on

SELECT timelimit(77), timelimit_ops(88);
SELECT timelimit('100');
SELECT timelimit(-1);
SELECT timelimit(1.5);
SELECT timelimit(NULL);
SELECT timelimit(2147483648);
SELECT timelimit(x'00');
SELECT timelimit_ops(-1);
SELECT timelimit_ops(2.5);
SELECT timelimit_interrupt(NULL);
SELECT timelimit_interrupt('1');
SELECT timelimit(1, 2);
SELECT timelimit(), timelimit_ops();

-- The functions are DIRECTONLY: a view (or trigger, or CHECK constraint) in
-- a database file cannot call them, nor read timelimit_activity.
CREATE VIEW v AS SELECT timelimit(0) AS x;
SELECT * FROM v;
CREATE VIEW w AS SELECT * FROM timelimit_activity;
SELECT * FROM w;
