-- interrupt.sql: stopping statements by connection id, as pg_cancel_backend.
.load ext/timelimit
.echo on

-- Every connection with the extension has an id, unique in the process.
SELECT timelimit_id();

-- timelimit_interrupt(id) stops the statement running on that connection at
-- that moment and returns 1.  Here the statement interrupts itself; from
-- another connection (and thread) it is the same call.
SELECT timelimit_interrupt(timelimit_id()),
  (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c)
   SELECT count(*) FROM c);
SELECT timelimit_reason();

-- An unknown id returns 0.
SELECT timelimit_interrupt(123456789);

-- An interrupt only stops the statement running at that moment: a statement
-- that starts later is not affected.
SELECT timelimit_interrupt(timelimit_id());
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<10000)
SELECT count(*) FROM c;
