/*
** demo.c: what sqlq does, in one run (make demo).
**
**   demo DIR     uses DIR/demo.db
**
** 1. 64 threads insert at once through the writer: no SQLITE_BUSY, and the
**    group commit puts many inserts in each transaction.
** 2. A runaway read stops at its time limit while other reads go on.
** 3. A running query is canceled by its task id.
** 4. Transaction control inside a transactional write is refused.
** 5. The handle's counters.
*/
#include "sqlq.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NTHREAD 64
#define NINSERT 200 /* Per thread */

static sqlq *q;
static atomic_int nBusy, nFailed;

static double nowMs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs sql as a task of that kind; returns its status. */
static int run(sqlq_kind kind, const char *zSql, sqlq_result **pr) {
  sqlq_call c = {0};
  c.kind = kind;
  c.sql = zSql;
  return sqlq_exec(q, &c, pr);
}

/* Inserts NINSERT rows, each acknowledged after its COMMIT. */
static void *inserter(void *p) {
  int i, rc;
  for (i = 0; i < NINSERT; i++) {
    sqlq_value v[2] = {sqlq_int((intptr_t)p), sqlq_int(i)};
    sqlq_call c = {0};
    c.kind = SQLQ_WRITE;
    c.sql = "INSERT INTO notes(author, n) VALUES (?, ?)";
    c.params = v;
    c.nparams = 2;
    rc = sqlq_exec(q, &c, NULL);
    if ((rc & 0xff) == SQLITE_BUSY) atomic_fetch_add(&nBusy, 1);
    if (rc != 0) atomic_fetch_add(&nFailed, 1);
  }
  return NULL;
}

static void demoInserts(void) {
  pthread_t a[NTHREAD];
  sqlq_stats_t st;
  sqlq_result *r;
  double t0 = nowMs();
  intptr_t i;
  for (i = 0; i < NTHREAD; i++)
    pthread_create(&a[i], NULL, inserter, (void *)i);
  for (i = 0; i < NTHREAD; i++)
    pthread_join(a[i], NULL);
  sqlq_stats(q, &st);
  run(SQLQ_READ, "SELECT count(*) FROM notes", &r);
  printf("1. %d threads inserted %lld rows in %.0f ms: %d SQLITE_BUSY, %d "
         "failed;\n   %lld transactions, %.1f rows in each on average, %lld "
         "at most\n",
         NTHREAD, (long long)sqlq_result_int(r, 0, 0), nowMs() - t0,
         atomic_load(&nBusy), atomic_load(&nFailed), (long long)st.batches,
         st.mean_batch, (long long)st.max_batch);
  sqlq_result_free(r);
}

static void demoTimeLimit(void) {
  static const char zRunaway[] =
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
      "SELECT count(*) FROM c";
  sqlq_call c = {0};
  sqlq_result *r;
  double t0 = nowMs(), tFast;
  int64_t id;
  int rc;
  c.kind = SQLQ_READ;
  c.sql = zRunaway;
  c.timeout_ms = 300;
  id = sqlq_submit(q, &c);
  run(SQLQ_READ, "SELECT count(*) FROM notes WHERE author = 7", &r);
  tFast = nowMs() - t0;
  sqlq_result_free(r);
  printf("2. a runaway read (task %lld) runs under a 300 ms limit; meanwhile "
         "another read\n   answered in %.1f ms; ",
         (long long)id, tFast);
  t0 = nowMs();
  rc = sqlq_exec(q, &c, NULL);
  printf("the same runaway by sqlq_exec: %s after %.0f ms\n", sqlq_strerror(rc),
         nowMs() - t0);
}

/* The canceled query's progress: it runs, then it completes. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int bRunning, bDone, doneStatus;

/* SQL function started(): the query is running. */
static void startedFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  pthread_mutex_lock(&mu);
  bRunning = 1;
  pthread_cond_signal(&cond);
  pthread_mutex_unlock(&mu);
  sqlite3_result_int(ctx, 1);
}

static int runawayFn(sqlite3 *db, void *arg) {
  (void)arg;
  sqlite3_create_function(db, "started", 0, SQLITE_UTF8, NULL, startedFunc,
                          NULL, NULL);
  return sqlite3_exec(db,
                      "WITH RECURSIVE c(x) AS (SELECT started() UNION ALL "
                      "SELECT x+1 FROM c) SELECT count(*) FROM c",
                      NULL, NULL, NULL);
}

static void doneCb(sqlq_result *r, void *udata) {
  (void)udata;
  pthread_mutex_lock(&mu);
  bDone = 1;
  doneStatus = sqlq_result_status(r);
  pthread_cond_signal(&cond);
  pthread_mutex_unlock(&mu);
}

static void demoCancel(void) {
  sqlq_call c = {0};
  double t0;
  int64_t id;
  c.kind = SQLQ_READ_FN;
  c.fn = runawayFn;
  c.done = doneCb;
  id = sqlq_submit(q, &c);
  pthread_mutex_lock(&mu);
  while (!bRunning)
    pthread_cond_wait(&cond, &mu);
  pthread_mutex_unlock(&mu);
  t0 = nowMs();
  sqlq_cancel(q, id);
  pthread_mutex_lock(&mu);
  while (!bDone)
    pthread_cond_wait(&cond, &mu);
  pthread_mutex_unlock(&mu);
  printf("3. a runaway query canceled by its task id (%lld): %s, %.2f ms "
         "after the cancel\n",
         (long long)id, sqlq_strerror(doneStatus), nowMs() - t0);
}

static void demoTxnControl(void) {
  sqlq_result *r;
  int rc = run(SQLQ_WRITE, "COMMIT", &r);
  printf("4. SQLQ_WRITE of \"COMMIT\": %d, %s\n", rc, sqlq_result_error(r));
  sqlq_result_free(r);
}

static void demoStats(void) {
  sqlq_stats_t st;
  sqlq_stats(q, &st);
  printf("5. counters: %lld done, %lld failed (%lld timeouts, %lld cancels); "
         "time in queue\n   p50 %lld us, p99 %lld us; running p50 %lld us, "
         "p99 %lld us\n",
         (long long)st.done, (long long)st.failed, (long long)st.timeouts,
         (long long)st.cancels, (long long)st.wait_p50_us,
         (long long)st.wait_p99_us, (long long)st.run_p50_us,
         (long long)st.run_p99_us);
}

int main(int argc, char **argv) {
  char zPath[4096];
  int rc;
  if (argc != 2) {
    fprintf(stderr, "usage: demo DIR\n");
    return 2;
  }
  snprintf(zPath, sizeof(zPath), "%s/demo.db", argv[1]);
  rc = sqlq_open(zPath, NULL, &q);
  if (rc != 0) {
    fprintf(stderr, "demo: %s: %s\n", zPath, sqlq_strerror(rc));
    return 1;
  }
  run(SQLQ_SCRIPT, "CREATE TABLE notes(id INTEGER PRIMARY KEY, author, n)",
      NULL);
  demoInserts();
  demoTimeLimit();
  demoCancel();
  demoTxnControl();
  demoStats();
  return sqlq_close(q) == 0 ? 0 : 1;
}
