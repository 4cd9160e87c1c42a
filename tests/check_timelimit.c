/*
** check_timelimit.c: Check suite of the timelimit extension, linked
** statically (-DSQLITE_CORE) through its C API.  Each test names the
** behaviour it checks and fails if that behaviour breaks; waits are bounded
** by the test timeout or by an explicit deadline, never by a sleep.
*/
#include "tests.h"
#include "timelimit.h"
#include "tl_util.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>


/* ---- limits ---- */

/* A runaway query stops at its deadline; the connection stays usable. */
START_TEST(test_deadline_stops_runaway) {
  sqlite3 *db = open_db(":memory:");
  int64_t ms;
  ck_assert_int_eq(query_int(db, "SELECT timelimit(50)"), 0);
  ms = exec_stopped(db, zForever);
  ck_assert_int_ge(ms, 50);
  ck_assert_int_lt(ms, 2000 * test_slowdown());
  ck_assert_str_eq(timelimit_reason(db), "deadline");
  ck_assert_str_eq(query_text(db, "SELECT timelimit_reason()"), "deadline");
  ck_assert_int_eq(query_int(db, "SELECT 41+1"), 42);
  ck_assert_str_eq(query_text(db, "SELECT timelimit_reason()"), "NULL");
  ck_assert_ptr_null(timelimit_reason(db));
  sqlite3_close(db);
}
END_TEST

/* The clock starts at the first step, not at prepare. */
START_TEST(test_clock_starts_at_first_step) {
  sqlite3 *db = open_db(":memory:");
  sqlite3_stmt *pStmt;
  int64_t t0;
  ck_assert_int_eq(timelimit_set_limit(db, 50 * test_slowdown()), SQLITE_OK);
  ck_assert_int_eq(sqlite3_prepare_v2(db, zShort, -1, &pStmt, NULL), 0);
  for (t0 = test_now_ms(); test_now_ms() - t0 < 100 * test_slowdown();) {
  }
  ck_assert_int_eq(sqlite3_step(pStmt), SQLITE_ROW);
  ck_assert_int_eq(sqlite3_column_int(pStmt, 0), 10000);
  sqlite3_finalize(pStmt);
  sqlite3_close(db);
}
END_TEST

/* A new limit applies to statements that start afterwards. */
START_TEST(test_limit_applies_to_later_statements) {
  sqlite3 *db = open_db(":memory:");
  sqlite3_stmt *pStmt;
  int64_t t0 = test_now_ms();
  ck_assert_int_eq(sqlite3_prepare_v2(
                       db,
                       "SELECT timelimit(30), (WITH RECURSIVE c(x) AS "
                       "(SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<2000000)"
                       " SELECT count(*) FROM c)",
                       -1, &pStmt, NULL),
                   SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(pStmt), SQLITE_ROW);
  ck_assert_int_eq(sqlite3_column_int(pStmt, 1), 2000000);
  ck_assert_int_eq(sqlite3_finalize(pStmt), SQLITE_OK);
  ck_assert_int_gt(test_now_ms() - t0, 30);
  ck_assert_int_lt(exec_stopped(db, zForever), 2000 * test_slowdown());
  sqlite3_close(db);
}
END_TEST

/*
** Many short statements in a row (about 2 ms each) each get their own clock:
** together they run five times the limit.
*/
START_TEST(test_short_statements_own_clock) {
  sqlite3 *db = open_db(":memory:");
  int64_t t0 = test_now_ms();
  int n = 0;
  ck_assert_int_eq(timelimit_set_limit(db, 100 * test_slowdown()), SQLITE_OK);
  while (test_now_ms() - t0 < 500 * test_slowdown()) {
    exec_ok(db, zShort);
    n++;
  }
  ck_assert_int_gt(n, 10);
  ck_assert_int_eq(query_int(db, "SELECT timeouts FROM timelimit_activity "
                                 "WHERE id = timelimit_id()"),
                   0);
  sqlite3_close(db);
}
END_TEST

/* Runs zForever under a budget of nOps; returns the VM steps it took. */
static int64_t steps_under_budget(sqlite3 *db, int64_t nOps) {
  sqlite3_stmt *pStmt;
  int64_t n;
  ck_assert_int_eq(timelimit_set_ops(db, nOps), SQLITE_OK);
  ck_assert_int_eq(sqlite3_prepare_v2(db, zForever, -1, &pStmt, NULL), 0);
  ck_assert_int_eq(sqlite3_step(pStmt), SQLITE_INTERRUPT);
  n = sqlite3_stmt_status(pStmt, SQLITE_STMTSTATUS_VM_STEP, 0);
  sqlite3_finalize(pStmt);
  ck_assert_str_eq(timelimit_reason(db), "ops");
  return n;
}

/*
** A budget stops a statement within one check period after it is spent, at
** the same step every time.
*/
START_TEST(test_ops_budget_deterministic) {
  sqlite3 *db = open_db(":memory:");
  int64_t n1 = steps_under_budget(db, 100000);
  int64_t n2 = steps_under_budget(db, 100000);
  ck_assert_int_ge(n1, 100000);
  ck_assert_int_lt(n1, 100000 + TIMELIMIT_CHECK_STEPS + 50);
  ck_assert_int_eq(n1, n2);
  ck_assert_int_lt(steps_under_budget(db, 1), TIMELIMIT_CHECK_STEPS + 50);
  /* A statement under its budget is not stopped. */
  exec_ok(db, "SELECT timelimit_ops(1000000)");
  exec_ok(db, zShort);
  sqlite3_close(db);
}
END_TEST

/*
** A budget is counted per run, even on a reused prepared statement whose
** step counter keeps growing: 20 runs of 170014 steps under 200000.
*/
START_TEST(test_ops_budget_reused_statement) {
  sqlite3 *db = open_db(":memory:");
  sqlite3_stmt *pStmt;
  int i;
  exec_ok(db, "SELECT timelimit_ops(200000)");
  ck_assert_int_eq(sqlite3_prepare_v2(db, zShort, -1, &pStmt, NULL), 0);
  for (i = 0; i < 20; i++) {
    ck_assert_int_eq(sqlite3_step(pStmt), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_reset(pStmt), SQLITE_OK);
  }
  sqlite3_finalize(pStmt);
  sqlite3_close(db);
}
END_TEST

/* ---- nesting ---- */

/*
** A trigger program does not restart its statement's clock: an UPDATE of
** 200000 rows whose trigger fires for each (about 5 s of work) stops at its
** deadline.  (An INSERT ... SELECT into a table with triggers would compute
** its whole SELECT before the first trigger fires.)
*/
START_TEST(test_trigger_keeps_clock) {
  sqlite3 *db = open_db(":memory:");
  exec_ok(db, "CREATE TABLE t(x); CREATE TABLE log(n);"
              "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
              "SELECT x+1 FROM c WHERE x<200000) SELECT x FROM c;"
              "CREATE TRIGGER tg AFTER UPDATE ON t BEGIN "
              "INSERT INTO log SELECT count(*) FROM (WITH RECURSIVE c(y) AS "
              "(SELECT 1 UNION ALL SELECT y+1 FROM c WHERE y<100) "
              "SELECT y FROM c); END;"
              "SELECT timelimit(50)");
  ck_assert_int_lt(exec_stopped(db, "UPDATE t SET x = x + 1"),
                   2000 * test_slowdown());
  ck_assert_str_eq(timelimit_reason(db), "deadline");
  ck_assert_int_eq(query_int(db, "SELECT count(*) FROM log"), 0);
  sqlite3_close(db);
}
END_TEST

static int nestedRc;

/* SQL function nested(sql): runs sql on the same connection. */
static void nested_func(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  (void)argc;
  nestedRc = sqlite3_exec(db, (const char *)sqlite3_value_text(argv[0]), NULL,
                          NULL, NULL);
  sqlite3_result_int(ctx, nestedRc);
}

/* A statement nested in a function runs under the outer deadline. */
START_TEST(test_nested_gets_outer_deadline) {
  sqlite3 *db = open_db(":memory:");
  char zSql[512];
  int64_t t0;
  ck_assert_int_eq(sqlite3_create_function(db, "nested", 1, SQLITE_UTF8, NULL,
                                           nested_func, NULL, NULL),
                   SQLITE_OK);
  exec_ok(db, "SELECT timelimit(50)");
  snprintf(zSql, sizeof(zSql), "SELECT timelimit(100000), nested('%s')",
           zForever);
  t0 = test_now_ms();
  nestedRc = -1;
  sqlite3_exec(db, zSql, NULL, NULL, NULL);
  ck_assert_int_eq(nestedRc, SQLITE_INTERRUPT);
  ck_assert_int_lt(test_now_ms() - t0, 2000 * test_slowdown());
  sqlite3_close(db);
}
END_TEST

/*
** A statement that starts while another is active gets the earlier deadline,
** and keeps it after the other one is finalized.
*/
START_TEST(test_interleaved_gets_earlier_deadline) {
  sqlite3 *db = open_db(":memory:");
  sqlite3_stmt *pFirst, *pSecond;
  int64_t t0;
  int rc;
  exec_ok(db, "SELECT timelimit(50)");
  ck_assert_int_eq(sqlite3_prepare_v2(db, zForeverRows, -1, &pFirst, NULL), 0);
  ck_assert_int_eq(sqlite3_prepare_v2(db, zForeverRows, -1, &pSecond, NULL), 0);
  t0 = test_now_ms();
  ck_assert_int_eq(sqlite3_step(pFirst), SQLITE_ROW);
  ck_assert_int_eq(timelimit_set_limit(db, 100000), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(pSecond), SQLITE_ROW);
  sqlite3_finalize(pFirst);
  while ((rc = sqlite3_step(pSecond)) == SQLITE_ROW) {
  }
  ck_assert_int_eq(rc, SQLITE_INTERRUPT);
  ck_assert_int_lt(test_now_ms() - t0, 2000 * test_slowdown());
  sqlite3_finalize(pSecond);
  /* Once both are gone, the new limit applies alone. */
  exec_ok(db, zShort);
  sqlite3_close(db);
}
END_TEST

/* ---- transactions ---- */

/*
** The busy handler of the writer in the transaction tests: the first time it
** runs (the writer is blocked inside the statement under test), it records
** what an interrupt by id returns, then lets the blocker go.
*/
typedef struct Blocked Blocked;
struct Blocked {
  sqlite3 *db;      /* The connection that is blocked */
  sqlite3 *blocker; /* The connection holding the lock */
  int nCalls;       /* Busy handler calls */
  int interrupted;  /* What timelimit_interrupt() returned */
  char zState[32];  /* The blocked connection's activity state */
};

static int blocked_busy(void *p, int nPrior) {
  Blocked *b = p;
  int64_t id;
  char zSql[128];
  (void)nPrior;
  if (b->nCalls++ == 0) {
    ck_assert_int_eq(timelimit_id(b->db, &id), SQLITE_OK);
    snprintf(zSql, sizeof(zSql),
             "SELECT state FROM timelimit_activity WHERE id=%lld",
             (long long)id);
    snprintf(b->zState, sizeof(b->zState), "%s", query_text(b->blocker, zSql));
    b->interrupted = timelimit_interrupt(id);
    exec_ok(b->blocker, "COMMIT");
  }
  return 1;
}

/* Statements that end a transaction, each after its way to begin one. */
static const struct {
  const char *zBegin;
  const char *zEnd;
} txnEnds[] = {
    {"BEGIN", "COMMIT"},
    {"BEGIN", "  /* done */ END TRANSACTION"},
    {"BEGIN", "-- done\ncommit;"},
    {"SAVEPOINT sp", "RELEASE sp"},
};

/*
** COMMIT, END and RELEASE are never interrupted: while one is blocked on a
** lock, an interrupt by id finds nothing to stop, and it commits.
*/
START_TEST(test_commit_never_interrupted) {
  const char *zDir = test_tmpdir();
  char zPath[4200];
  sqlite3 *db, *reader;
  Blocked b;
  snprintf(zPath, sizeof(zPath), "%s/t.db", zDir);
  db = open_db(zPath);
  reader = open_db(zPath);
  exec_ok(db, "CREATE TABLE t(x)");
  exec_ok(db, "SELECT timelimit(1), timelimit_ops(1)");
  exec_ok(db, txnEnds[_i].zBegin);
  exec_ok(db, "INSERT INTO t VALUES(1)");
  exec_ok(reader, "BEGIN; SELECT * FROM t");
  memset(&b, 0, sizeof(b));
  b.db = db;
  b.blocker = reader;
  sqlite3_busy_handler(db, blocked_busy, &b);
  exec_ok(db, txnEnds[_i].zEnd);
  ck_assert_int_eq(b.nCalls, 1);
  ck_assert_str_eq(b.zState, "running");
  ck_assert_int_eq(b.interrupted, 0);
  ck_assert_int_eq(query_int(reader, "SELECT count(*) FROM t"), 1);
  sqlite3_close(db);
  sqlite3_close(reader);
  test_rmdir(zDir);
}
END_TEST

/* The control: an ordinary statement blocked the same way is interrupted. */
START_TEST(test_blocked_write_is_interrupted) {
  const char *zDir = test_tmpdir();
  char zPath[4200];
  sqlite3 *db, *blocker;
  Blocked b;
  snprintf(zPath, sizeof(zPath), "%s/t.db", zDir);
  db = open_db(zPath);
  blocker = open_db(zPath);
  exec_ok(db, "CREATE TABLE t(x)");
  exec_ok(blocker, "BEGIN IMMEDIATE");
  memset(&b, 0, sizeof(b));
  b.db = db;
  b.blocker = blocker;
  sqlite3_busy_handler(db, blocked_busy, &b);
  exec_stopped(db, "INSERT INTO t WITH RECURSIVE c(x) AS "
                   "(SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c");
  ck_assert_int_eq(b.interrupted, 1);
  ck_assert_str_eq(timelimit_reason(db), "cancel");
  ck_assert_int_eq(query_int(db, "SELECT count(*) FROM t"), 0);
  sqlite3_close(db);
  sqlite3_close(blocker);
  test_rmdir(zDir);
}
END_TEST

/* ---- errors ---- */

static const struct {
  const char *zSql;
  const char *zErr;
} badArgs[] = {
    {"SELECT timelimit('100')",
     "timelimit(ms): ms must be an integer, not text"},
    {"SELECT timelimit(-1)",
     "timelimit(ms): ms must be between 0 and 2147483647, not -1"},
    {"SELECT timelimit(1.5)", "timelimit(ms): ms must be an integer, not real"},
    {"SELECT timelimit(NULL)",
     "timelimit(ms): ms must be an integer, not NULL"},
    {"SELECT timelimit(2147483648)",
     "timelimit(ms): ms must be between 0 and 2147483647, not 2147483648"},
    {"SELECT timelimit(x'01')",
     "timelimit(ms): ms must be an integer, not blob"},
    {"SELECT timelimit_ops(-5)",
     "timelimit_ops(n): n must be between 0 and 9223372036854775807, not -5"},
    {"SELECT timelimit_ops(1e30)",
     "timelimit_ops(n): n must be an integer, not real"},
    {"SELECT timelimit_interrupt(NULL)",
     "timelimit_interrupt(id): id must be an integer, not NULL"},
    {"SELECT timelimit_interrupt('1')",
     "timelimit_interrupt(id): id must be an integer, not text"},
    {"SELECT timelimit(1, 2)",
     "wrong number of arguments to function timelimit()"},
};

/* Bad arguments get an error naming the function and change nothing. */
START_TEST(test_bad_arguments) {
  sqlite3 *db = open_db(":memory:");
  exec_ok(db, "SELECT timelimit(77), timelimit_ops(88)");
  ck_assert_int_ne(sqlite3_exec(db, badArgs[_i].zSql, NULL, NULL, NULL),
                   SQLITE_OK);
  ck_assert_str_eq(sqlite3_errmsg(db), badArgs[_i].zErr);
  ck_assert_int_eq(query_int(db, "SELECT timelimit()"), 77);
  ck_assert_int_eq(query_int(db, "SELECT timelimit_ops()"), 88);
  sqlite3_close(db);
}
END_TEST

/* The C API refuses NULL, unregistered connections and bad values. */
START_TEST(test_c_api_errors) {
  sqlite3 *db = open_db(":memory:"), *plain;
  int64_t v = -1;
  ck_assert_int_eq(sqlite3_open(":memory:", &plain), SQLITE_OK);
  ck_assert_int_eq(timelimit_register(NULL), SQLITE_MISUSE);
  ck_assert_int_eq(timelimit_set_limit(NULL, 1), SQLITE_MISUSE);
  ck_assert_int_eq(timelimit_set_limit(plain, 1), SQLITE_MISUSE);
  ck_assert_int_eq(timelimit_get_limit(plain, &v), SQLITE_MISUSE);
  ck_assert_int_eq(timelimit_get_limit(db, NULL), SQLITE_MISUSE);
  ck_assert_int_eq(timelimit_set_ops(plain, 1), SQLITE_MISUSE);
  ck_assert_int_eq(timelimit_lock(plain), SQLITE_MISUSE);
  ck_assert_int_eq(timelimit_unlock(NULL), SQLITE_MISUSE);
  ck_assert_int_eq(timelimit_id(plain, &v), SQLITE_MISUSE);
  ck_assert_ptr_null(timelimit_reason(plain));
  ck_assert_ptr_null(timelimit_reason(NULL));
  ck_assert_int_eq(timelimit_set_limit(db, 40), SQLITE_OK);
  ck_assert_int_eq(timelimit_set_limit(db, -1), SQLITE_RANGE);
  ck_assert_int_eq(timelimit_set_limit(db, TIMELIMIT_MAX_MS + 1LL),
                   SQLITE_RANGE);
  ck_assert_int_eq(timelimit_set_ops(db, -1), SQLITE_RANGE);
  ck_assert_int_eq(timelimit_get_limit(db, &v), SQLITE_OK);
  ck_assert_int_eq(v, 40);
  ck_assert_int_eq(timelimit_set_ops(db, INT64_MAX), SQLITE_OK);
  ck_assert_int_eq(timelimit_get_ops(db, &v), SQLITE_OK);
  ck_assert_int_eq(v, INT64_MAX);
  /* The largest budget never stops a statement. */
  ck_assert_int_eq(timelimit_set_limit(db, 0), SQLITE_OK);
  exec_ok(db, zShort);
  sqlite3_close(plain);
  sqlite3_close(db);
}
END_TEST

/* ---- lock ---- */

/* A locked connection may lower its limits, never raise or remove them. */
START_TEST(test_lock_only_lowers) {
  sqlite3 *db = open_db(":memory:");
  int64_t v;
  exec_ok(db, "SELECT timelimit(100), timelimit_ops(0)");
  ck_assert_int_eq(query_int(db, "SELECT timelimit_lock()"), 1);
  ck_assert_int_eq(query_int(db, "SELECT timelimit(50)"), 100);
  ck_assert_int_eq(query_int(db, "SELECT timelimit(50)"), 50);
  ck_assert_int_ne(sqlite3_exec(db, "SELECT timelimit(60)", 0, 0, 0), 0);
  ck_assert_str_eq(sqlite3_errmsg(db),
                   "timelimit(ms): the connection is locked: the limit may "
                   "only be lowered (it is 50, 0 = none)");
  ck_assert_int_ne(sqlite3_exec(db, "SELECT timelimit(0)", 0, 0, 0), 0);
  /* From no budget, any budget is lower; from then on only lower ones. */
  ck_assert_int_eq(query_int(db, "SELECT timelimit_ops(5000000)"), 0);
  ck_assert_int_ne(sqlite3_exec(db, "SELECT timelimit_ops(0)", 0, 0, 0), 0);
  ck_assert_int_ne(sqlite3_exec(db, "SELECT timelimit_ops(6000000)", 0, 0, 0),
                   0);
  ck_assert_int_eq(query_int(db, "SELECT timelimit()"), 50);
  ck_assert_int_eq(query_int(db, "SELECT timelimit_ops()"), 5000000);
  /* The host is not bound by the lock, and only it unlocks. */
  ck_assert_int_eq(timelimit_set_limit(db, 1000), SQLITE_OK);
  ck_assert_int_eq(timelimit_get_limit(db, &v), SQLITE_OK);
  ck_assert_int_eq(v, 1000);
  ck_assert_int_ne(sqlite3_exec(db, "SELECT timelimit(2000)", 0, 0, 0), 0);
  ck_assert_int_eq(timelimit_unlock(db), SQLITE_OK);
  ck_assert_int_eq(query_int(db, "SELECT timelimit(0)"), 1000);
  sqlite3_close(db);
}
END_TEST

/* A locked connection sees only itself and may not interrupt others. */
START_TEST(test_lock_isolates) {
  sqlite3 *db = open_db(":memory:"), *other = open_db(":memory:");
  int64_t idSelf, idOther;
  char zSql[128], zCount[128];
  ck_assert_int_eq(timelimit_id(db, &idSelf), SQLITE_OK);
  ck_assert_int_eq(timelimit_id(other, &idOther), SQLITE_OK);
  snprintf(zSql, sizeof(zSql),
           "SELECT count(*) FROM timelimit_activity WHERE id IN (%lld, %lld)",
           (long long)idSelf, (long long)idOther);
  ck_assert_int_eq(query_int(db, zSql), 2);
  ck_assert_int_eq(timelimit_lock(db), SQLITE_OK);
  ck_assert_int_eq(query_int(db, "SELECT count(*) FROM timelimit_activity"), 1);
  ck_assert_int_eq(query_int(db, "SELECT id FROM timelimit_activity"), idSelf);
  ck_assert_int_eq(query_int(db, "SELECT locked FROM timelimit_activity"), 1);
  snprintf(zCount, sizeof(zCount), "%s", zSql);
  snprintf(zSql, sizeof(zSql), "SELECT timelimit_interrupt(%lld)",
           (long long)idOther);
  ck_assert_int_ne(sqlite3_exec(db, zSql, 0, 0, 0), SQLITE_OK);
  ck_assert_str_eq(sqlite3_errmsg(db),
                   "timelimit_interrupt(id): the connection is locked: it may "
                   "not interrupt other connections");
  ck_assert_int_eq(query_int(other, zCount), 2);
  sqlite3_close(other);
  sqlite3_close(db);
}
END_TEST

/* ---- interrupt ---- */


/*
** timelimit_interrupt(id) from another connection and thread stops the
** running statement; with nothing running it returns 0 and the next
** statement runs normally.
*/
START_TEST(test_interrupt_by_id) {
  sqlite3 *other = open_db(":memory:");
  Runner r;
  pthread_t thread;
  int64_t id;
  char zSql[128];
  memset(&r, 0, sizeof(r));
  r.db = open_db(":memory:");
  r.zSql = "WITH RECURSIVE c(x) AS (SELECT started() UNION ALL "
           "SELECT x+1 FROM c) SELECT count(*) FROM c";
  ck_assert_int_eq(timelimit_id(r.db, &id), SQLITE_OK);
  runner_start(&r, &thread);
  snprintf(zSql, sizeof(zSql),
           "SELECT state || ' ' || (sql LIKE 'WITH RECURSIVE%%') "
           "FROM timelimit_activity WHERE id=%lld",
           (long long)id);
  ck_assert_str_eq(query_text(other, zSql), "running 1");
  ck_assert_int_eq(sql_interrupt(other, id), 1);
  runner_join(&r, thread);
  ck_assert_int_eq(r.rc, SQLITE_INTERRUPT);
  ck_assert_str_eq(timelimit_reason(r.db), "cancel");
  snprintf(zSql, sizeof(zSql),
           "SELECT state || ' ' || ifnull(elapsed_ms, 'null') || ' ' || "
           "cancels FROM timelimit_activity WHERE id=%lld",
           (long long)id);
  ck_assert_str_eq(query_text(other, zSql), "idle null 1");
  ck_assert_int_eq(sql_interrupt(other, id), 0);
  exec_ok(r.db, zShort);
  ck_assert_int_eq(query_int(other, "SELECT timelimit_interrupt(0)"), 0);
  ck_assert_int_eq(query_int(other, "SELECT timelimit_interrupt(-3)"), 0);
  ck_assert_int_eq(timelimit_interrupt(1000000000000LL), 0);
  sqlite3_close(r.db);
  sqlite3_close(other);
}
END_TEST

/* ---- registry ---- */

/* timelimit_activity shows every connection with its settings and counts. */
START_TEST(test_activity_rows) {
  sqlite3 *a = open_db(":memory:"), *b = open_db(":memory:");
  int64_t idA, idB;
  char zSql[160], zWant[200];
  timelimit_id(a, &idA);
  timelimit_id(b, &idB);
  ck_assert_int_ne(idA, idB);
  exec_ok(b, "SELECT timelimit(1234), timelimit_ops(5678)");
  exec_ok(b, "SELECT 'last one'");
  snprintf(zSql, sizeof(zSql),
           "SELECT state||'|'||sql||'|'||limit_ms||'|'||ops_limit||'|'||"
           "statements||'|'||locked FROM timelimit_activity WHERE id=%lld",
           (long long)idB);
  ck_assert_str_eq(query_text(a, zSql), "idle|SELECT 'last one'|1234|5678|2|0");
  snprintf(zSql, sizeof(zSql),
           "SELECT state||'|'||sql FROM timelimit_activity WHERE id=%lld",
           (long long)idA);
  snprintf(zWant, sizeof(zWant), "running|%s", zSql);
  ck_assert_str_eq(query_text(a, zSql), zWant);
  sqlite3_close(a);
  snprintf(zSql, sizeof(zSql),
           "SELECT count(*) FROM timelimit_activity WHERE id=%lld",
           (long long)idA);
  ck_assert_int_eq(query_int(b, zSql), 0);
  sqlite3_close(b);
}
END_TEST

/* Registering twice keeps one state; auto registration reaches new ones. */
START_TEST(test_register_twice_and_auto) {
  sqlite3 *db = open_db(":memory:"), *a, *b;
  int64_t id1, id2;
  timelimit_id(db, &id1);
  exec_ok(db, "SELECT timelimit(33)");
  ck_assert_int_eq(timelimit_register(db), SQLITE_OK);
  timelimit_id(db, &id2);
  ck_assert_int_eq(id1, id2);
  ck_assert_int_eq(query_int(db, "SELECT timelimit()"), 33);
  ck_assert_int_eq(timelimit_register_auto(), SQLITE_OK);
  ck_assert_int_eq(sqlite3_open(":memory:", &a), SQLITE_OK);
  ck_assert_int_gt(query_int(a, "SELECT timelimit_id()"), id1);
  ck_assert_int_eq(timelimit_unregister_auto(), SQLITE_OK);
  ck_assert_int_eq(sqlite3_open(":memory:", &b), SQLITE_OK);
  ck_assert_int_ne(sqlite3_exec(b, "SELECT timelimit_id()", 0, 0, 0), 0);
  ck_assert_str_eq(sqlite3_errmsg(b), "no such function: timelimit_id");
  sqlite3_close(b);
  sqlite3_close(a);
  sqlite3_close(db);
}
END_TEST

/* The functions may not be used from a view or a trigger (DIRECTONLY). */
START_TEST(test_direct_only) {
  sqlite3 *db = open_db(":memory:");
  exec_ok(db, "CREATE VIEW v AS SELECT timelimit(0) AS x");
  ck_assert_int_ne(sqlite3_exec(db, "SELECT * FROM v", 0, 0, 0), SQLITE_OK);
  ck_assert_str_eq(sqlite3_errmsg(db), "unsafe use of timelimit()");
  exec_ok(db, "CREATE VIEW w AS SELECT * FROM timelimit_activity");
  ck_assert_int_ne(sqlite3_exec(db, "SELECT * FROM w", 0, 0, 0), SQLITE_OK);
  ck_assert_str_eq(sqlite3_errmsg(db),
                   "unsafe use of virtual table \"timelimit_activity\"");
  sqlite3_close(db);
}
END_TEST

/* ---- close safety ---- */

enum { STRESS_OPENERS = 4, STRESS_ROUNDS = 150 };

static atomic_int stressDone;

/* Opens, uses and closes connections in a loop. */
static void *stress_opener(void *p) {
  int i, *pBad = p;
  for (i = 0; i < STRESS_ROUNDS; i++) {
    sqlite3 *db;
    int rc;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        timelimit_register(db) != SQLITE_OK) {
      (*pBad)++;
    }
    rc = sqlite3_exec(db, zShort, NULL, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_INTERRUPT) (*pBad)++;
    sqlite3_close(db);
  }
  atomic_fetch_add(&stressDone, 1);
  return NULL;
}

/*
** Interrupts by id are safe while the targets close on other threads, and
** every closed connection leaves the registry.
*/
START_TEST(test_interrupt_while_closing) {
  pthread_t aThread[STRESS_OPENERS];
  int aBad[STRESS_OPENERS] = {0};
  int i;
  int64_t id, id0;
  char zSql[96];
  sqlite3 *db = open_db(":memory:");
  ck_assert_int_eq(timelimit_id(db, &id0), SQLITE_OK);
  sqlite3_close(db);
  atomic_store(&stressDone, 0);
  for (i = 0; i < STRESS_OPENERS; i++) {
    ck_assert_int_eq(pthread_create(&aThread[i], NULL, stress_opener, &aBad[i]),
                     0);
  }
  while (atomic_load(&stressDone) < STRESS_OPENERS) {
    for (id = id0 + 1; id <= id0 + STRESS_OPENERS * STRESS_ROUNDS; id++) {
      timelimit_interrupt(id);
    }
  }
  for (i = 0; i < STRESS_OPENERS; i++) {
    ck_assert_int_eq(pthread_join(aThread[i], NULL), 0);
    ck_assert_int_eq(aBad[i], 0);
  }
  db = open_db(":memory:");
  snprintf(zSql, sizeof(zSql),
           "SELECT count(*) FROM timelimit_activity WHERE id > %lld",
           (long long)id0);
  ck_assert_int_eq(query_int(db, zSql), 1);
  ck_assert_int_eq(query_int(db, "SELECT timelimit_id()"),
                   id0 + STRESS_OPENERS * STRESS_ROUNDS + 1);
  sqlite3_close(db);
}
END_TEST

Suite *timelimit_suite(void) {
  Suite *s = suite_create("timelimit");
  TCase *tc;

  tc = tcase_create("limits");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_deadline_stops_runaway);
  tcase_add_test(tc, test_clock_starts_at_first_step);
  tcase_add_test(tc, test_limit_applies_to_later_statements);
  tcase_add_test(tc, test_short_statements_own_clock);
  tcase_add_test(tc, test_ops_budget_deterministic);
  tcase_add_test(tc, test_ops_budget_reused_statement);
  suite_add_tcase(s, tc);

  tc = tcase_create("nesting");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_trigger_keeps_clock);
  tcase_add_test(tc, test_nested_gets_outer_deadline);
  tcase_add_test(tc, test_interleaved_gets_earlier_deadline);
  suite_add_tcase(s, tc);

  tc = tcase_create("transactions");
  tcase_set_timeout(tc, 10);
  tcase_add_loop_test(tc, test_commit_never_interrupted, 0,
                      (int)(sizeof(txnEnds) / sizeof(txnEnds[0])));
  tcase_add_test(tc, test_blocked_write_is_interrupted);
  suite_add_tcase(s, tc);

  tc = tcase_create("errors");
  tcase_add_loop_test(tc, test_bad_arguments, 0,
                      (int)(sizeof(badArgs) / sizeof(badArgs[0])));
  tcase_add_test(tc, test_c_api_errors);
  suite_add_tcase(s, tc);

  tc = tcase_create("lock");
  tcase_add_test(tc, test_lock_only_lowers);
  tcase_add_test(tc, test_lock_isolates);
  suite_add_tcase(s, tc);

  tc = tcase_create("interrupt");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_interrupt_by_id);
  tcase_add_test(tc, test_interrupt_while_closing);
  suite_add_tcase(s, tc);

  tc = tcase_create("registry");
  tcase_add_test(tc, test_activity_rows);
  tcase_add_test(tc, test_register_twice_and_auto);
  tcase_add_test(tc, test_direct_only);
  suite_add_tcase(s, tc);

  return s;
}
