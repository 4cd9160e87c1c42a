-- hooks.sql: the shell's .progress and .trace replace the extension's hooks;
-- timelimit_activity shows it, and .load again restores them.
.bail on
.load ext/timelimit
SELECT hooks FROM timelimit_activity WHERE id = timelimit_id();
.progress 1000 --quiet
SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<100000) SELECT x FROM c);
SELECT hooks FROM timelimit_activity WHERE id = timelimit_id();
.trace off
SELECT hooks FROM timelimit_activity WHERE id = timelimit_id();
.load ext/timelimit
SELECT hooks FROM timelimit_activity WHERE id = timelimit_id();
.trace off
SELECT timelimit(50);
-- Only the trace hook replaced: the limit still holds, from the first check.
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c;
