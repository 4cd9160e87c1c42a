/*
** tl_util.c: helpers of the timelimit Check suites (see tl_util.h).
*/
#include "tl_util.h"

#include "tests.h"
#include "timelimit.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char zForever[] =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
    "SELECT count(*) FROM c";

const char zForeverRows[] =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
    "SELECT x FROM c";

const char zShort[] =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
    "WHERE x<10000) SELECT count(*) FROM c";

sqlite3 *open_db(const char *zPath) {
  sqlite3 *db = NULL;
  ck_assert_int_eq(sqlite3_open(zPath, &db), SQLITE_OK);
  ck_assert_int_eq(timelimit_register(db), SQLITE_OK);
  return db;
}

/* Runs sql, which must succeed. */
void exec_ok(sqlite3 *db, const char *zSql) {
  int rc = sqlite3_exec(db, zSql, NULL, NULL, NULL);
  ck_assert_msg(rc == SQLITE_OK, "%s: %s", zSql, sqlite3_errmsg(db));
}

/* The integer in the first column of the first row of sql. */
int64_t query_int(sqlite3 *db, const char *zSql) {
  sqlite3_stmt *pStmt;
  int64_t v;
  ck_assert_int_eq(sqlite3_prepare_v2(db, zSql, -1, &pStmt, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(pStmt), SQLITE_ROW);
  v = sqlite3_column_int64(pStmt, 0);
  ck_assert_int_eq(sqlite3_finalize(pStmt), SQLITE_OK);
  return v;
}

/* The text in the first column of the first row of sql, or "NULL". */
const char *query_text(sqlite3 *db, const char *zSql) {
  static char zBuf[256];
  sqlite3_stmt *pStmt;
  const unsigned char *z;
  ck_assert_int_eq(sqlite3_prepare_v2(db, zSql, -1, &pStmt, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(pStmt), SQLITE_ROW);
  z = sqlite3_column_text(pStmt, 0);
  snprintf(zBuf, sizeof(zBuf), "%s", z ? (const char *)z : "NULL");
  ck_assert_int_eq(sqlite3_finalize(pStmt), SQLITE_OK);
  return zBuf;
}

/* Runs sql, which must be stopped; returns how long it ran in ms. */
int64_t sql_interrupt(sqlite3 *from, int64_t id) {
  char zSql[64];
  snprintf(zSql, sizeof(zSql), "SELECT timelimit_interrupt(%lld)",
           (long long)id);
  return query_int(from, zSql);
}

int64_t exec_stopped(sqlite3 *db, const char *zSql) {
  int64_t t0 = test_now_ms();
  ck_assert_int_eq(sqlite3_exec(db, zSql, NULL, NULL, NULL), SQLITE_INTERRUPT);
  ck_assert_str_eq(sqlite3_errmsg(db), "interrupted");
  return test_now_ms() - t0;
}

/* SQL function started(): tells the test thread the query is running. */
static void started_func(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  Runner *r = sqlite3_user_data(ctx);
  (void)argc;
  (void)argv;
  pthread_mutex_lock(&r->mu);
  r->bStarted = 1;
  pthread_cond_signal(&r->cond);
  pthread_mutex_unlock(&r->mu);
  sqlite3_result_int(ctx, 1);
}

static void *runner_main(void *p) {
  Runner *r = p;
  int rc = sqlite3_exec(r->db, r->zSql, NULL, NULL, NULL);
  pthread_mutex_lock(&r->mu);
  r->rc = rc;
  r->bDone = 1;
  pthread_cond_signal(&r->cond);
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

/* Starts r's query on a new thread and waits (at most 10 s) until it runs. */
void runner_start(Runner *r, pthread_t *pThread) {
  struct timespec ts;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cond, NULL);
  r->bStarted = 0;
  r->bDone = 0;
  ck_assert_int_eq(sqlite3_create_function(r->db, "started", 0, SQLITE_UTF8, r,
                                           started_func, NULL, NULL),
                   SQLITE_OK);
  ck_assert_int_eq(pthread_create(pThread, NULL, runner_main, r), 0);
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 10;
  pthread_mutex_lock(&r->mu);
  while (!r->bStarted) {
    ck_assert_int_eq(pthread_cond_timedwait(&r->cond, &r->mu, &ts), 0);
  }
  pthread_mutex_unlock(&r->mu);
}

int runner_wait(Runner *r, int64_t ms) {
  struct timespec ts;
  int bDone;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock(&r->mu);
  while (!r->bDone && pthread_cond_timedwait(&r->cond, &r->mu, &ts) == 0) {
  }
  bDone = r->bDone;
  pthread_mutex_unlock(&r->mu);
  return bDone;
}

void runner_join(Runner *r, pthread_t thread) {
  ck_assert_int_eq(pthread_join(thread, NULL), 0);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cond);
}