/*
** bench_timelimit.c: the benchmark of the timelimit extension, run by
** "make bench".  It links ext/timelimit.c statically (-DSQLITE_CORE) and
** measures, in one process and on in-memory connections:
**
**   overhead  How much slower a statement runs on a connection that has the
**             extension and a generous limit than on a plain connection: a
**             CPU-bound recursive CTE and a LIKE scan of 1,000,000 rows.
**             The two variants alternate run by run, and which goes first
**             alternates too, so that noise from other processes hits both
**             alike.  Target: at most 1.01x.
**
**   overrun   How long after a 50 ms deadline a statement returns
**             SQLITE_INTERRUPT, timed from its first sqlite3_step().  For an
**             ordinary query the target is a p99 of at most 1 ms.  In the
**             other cases the deadline falls inside a long VM step (a sort,
**             a function over a large value).  The progress handler cannot
**             run inside a step, so their overrun is what only SQLite could
**             cut, and they have no target.
**
** Every run of an overrun case must end in SQLITE_INTERRUPT with the reason
** "deadline".  The benchmark reports and never fails on slow figures: it
** exits 1 only if an SQLite call fails or a case is not stopped by its
** deadline (then the case must be made bigger).
*/
#include <sqlite3.h>

#include "timelimit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CTE_RUNS 25        /* Timed runs of each variant of the CTE */
#define LIKE_RUNS 51       /* Timed runs of each variant of the LIKE scan */
#define ORDINARY_RUNS 200  /* Timed runs of an ordinary overrun case */
#define LONGSTEP_RUNS 7    /* Timed runs of a long-single-step overrun case */
#define MAX_RUNS 200       /* The most timed runs of any case */
#define GENEROUS_MS 600000 /* The limit of the overhead cases */
#define DEADLINE_MS 50     /* The limit of the overrun cases */

/* The table that the LIKE scan of the overhead section reads. */
#define LIKE_TABLE                                                             \
  "CREATE TABLE t(s TEXT);"                                                    \
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c"               \
  " WHERE x<1000000)"                                                          \
  " INSERT INTO t SELECT printf('row %d some text', x) FROM c;"

/*
** The table that the sorting overrun cases read: 60,000 rows whose NOCASE
** keys share a 150-byte prefix.  Comparisons are costly, so the sort, which
** SQLite does in one VM step when it keeps every row in memory, lasts about
** 12 times as long as the scan that feeds it (180 ms after 13 ms on the
** development machine) and the deadline falls inside it.  With millions of
** small rows the deadline would fall in the scan, which is checked every
** TIMELIMIT_CHECK_STEPS steps like any loop, and the overrun would be small.
*/
#define SORT_TABLE                                                             \
  "CREATE TABLE big(a INTEGER, b TEXT COLLATE NOCASE);"                        \
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c"               \
  " WHERE x<60000)"                                                            \
  " INSERT INTO big SELECT x, printf('%.150c%d', 'x', random()) FROM c;"

/* One case of the overrun section. */
typedef struct OverrunCase OverrunCase;
struct OverrunCase {
  const char *zName;   /* Label in the report */
  const char *zSetup;  /* Run once before the deadline is set, not timed */
  const char *zSql;    /* The statement that the deadline stops */
  int nRun;            /* Timed runs, at most MAX_RUNS */
  const char *zTarget; /* The target, as printed */
};

/*
** The overrun cases.  With temp_store=memory SQLite never spills the
** sorter, whatever the cache size: it sorts every row in one step.  With
** temp files it sorts and spills a cache's worth of rows at a time (about
** 2 MB with the default cache), so its steps are shorter.  The function case
** computes hex() of 50 MB once, at the start of a loop: a statement of a few
** steps would end before the progress handler ever ran and would not be
** stopped at all.
*/
static const OverrunCase aOverrun[] = {
    {"unbounded recursive CTE", NULL,
     "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c)"
     " SELECT count(*) FROM c",
     ORDINARY_RUNS, "p99 <= 1 ms"},
    {"ORDER BY, 1 GB cache, temp in memory",
     "PRAGMA temp_store=memory; PRAGMA cache_size=-1000000;" SORT_TABLE,
     "SELECT a, b FROM big ORDER BY b", LONGSTEP_RUNS, "none"},
    {"ORDER BY, default cache, temp in memory",
     "PRAGMA temp_store=memory;" SORT_TABLE, "SELECT a, b FROM big ORDER BY b",
     LONGSTEP_RUNS, "none"},
    {"ORDER BY, default cache, temp in files",
     "PRAGMA temp_store=file;" SORT_TABLE, "SELECT a, b FROM big ORDER BY b",
     LONGSTEP_RUNS, "none"},
    {"CREATE INDEX, 1 GB cache, temp in memory",
     "PRAGMA temp_store=memory; PRAGMA cache_size=-1000000;" SORT_TABLE,
     "CREATE INDEX big_b ON big(b)", LONGSTEP_RUNS, "none"},
    {"hex() of a 50 MB blob", NULL,
     "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c)"
     " SELECT count(*) FROM c WHERE x <> length(hex(zeroblob(50000000)))",
     LONGSTEP_RUNS, "none"},
};

/* CLOCK_MONOTONIC in nanoseconds. */
static int64_t nowNs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Prints what failed and the connection's error message; returns 1. */
static int sqlFail(sqlite3 *db, const char *zWhat) {
  fprintf(stderr, "bench_timelimit: %s: %s\n", zWhat, sqlite3_errmsg(db));
  return 1;
}

/* Runs zSql (one or more statements) on db; nonzero on error. */
static int exec(sqlite3 *db, const char *zSql) {
  char *zErr = NULL;
  if (sqlite3_exec(db, zSql, NULL, NULL, &zErr) != SQLITE_OK) {
    fprintf(stderr, "bench_timelimit: %s: %s\n", zSql,
            zErr ? zErr : sqlite3_errmsg(db));
    sqlite3_free(zErr);
    return 1;
  }
  return 0;
}

/*
** Opens an in-memory connection into *pDb and runs zSetup (may be NULL) on
** it.  If bTimelimit, registers the extension first and sets the limit to
** limitMs after the setup, so that the setup runs without one.  On error
** prints it, closes the connection and returns nonzero with *pDb NULL.
*/
static int openDb(sqlite3 **pDb, int bTimelimit, const char *zSetup,
                  int64_t limitMs) {
  sqlite3 *db = NULL;
  int rc = 0;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) {
    rc = sqlFail(db, "sqlite3_open");
  } else if (bTimelimit && timelimit_register(db) != SQLITE_OK) {
    rc = sqlFail(db, "timelimit_register");
  } else if (zSetup && exec(db, zSetup)) {
    rc = 1;
  } else if (bTimelimit && timelimit_set_limit(db, limitMs) != SQLITE_OK) {
    rc = sqlFail(db, "timelimit_set_limit");
  }
  if (rc) {
    sqlite3_close(db);
    db = NULL;
  }
  *pDb = db;
  return rc;
}

/* Prepares zSql on db into *ppStmt; nonzero on error. */
static int prepare(sqlite3 *db, const char *zSql, sqlite3_stmt **ppStmt) {
  if (sqlite3_prepare_v2(db, zSql, -1, ppStmt, NULL) != SQLITE_OK) {
    return sqlFail(db, zSql);
  }
  return 0;
}

/*
** Steps pStmt until it returns something other than SQLITE_ROW, resets it,
** and stores in *pMs the time from the first step to the return of the last.
** Fails unless the last step returned rcWant.
*/
static int runStmt(sqlite3_stmt *pStmt, int rcWant, double *pMs) {
  sqlite3 *db = sqlite3_db_handle(pStmt);
  int64_t t0 = nowNs();
  int rc;
  while ((rc = sqlite3_step(pStmt)) == SQLITE_ROW) {
  }
  *pMs = (double)(nowNs() - t0) / 1e6;
  if (rc != rcWant) {
    if (rc == SQLITE_DONE) {
      fprintf(stderr,
              "bench_timelimit: %s: finished in %.1f ms, before the "
              "deadline; make the case bigger\n",
              sqlite3_sql(pStmt), *pMs);
    } else {
      fprintf(stderr, "bench_timelimit: %s: %s (expected %s)\n",
              sqlite3_sql(pStmt), sqlite3_errmsg(db), sqlite3_errstr(rcWant));
    }
    sqlite3_reset(pStmt);
    return 1;
  }
  sqlite3_reset(pStmt);
  return 0;
}

static int cmpDouble(const void *pA, const void *pB) {
  double a = *(const double *)pA, b = *(const double *)pB;
  return (a > b) - (a < b);
}

/* Sorts the n values of a and returns their median. */
static double median(double *a, int n) {
  qsort(a, (size_t)n, sizeof(double), cmpDouble);
  return n % 2 ? a[n / 2] : (a[n / 2 - 1] + a[n / 2]) / 2;
}

/*
** Times zSql nRun times (at most MAX_RUNS) on the plain connection and on
** the one with the extension, alternating the order run by run after one
** untimed run of each, and prints a row of the overhead table.  The ratio
** is the median of the ratios of the two runs of each pair: a shared
** machine's speed can change by 2x within a second, which moves the medians
** of the times far more than the ratios of runs made back to back.
*/
static int benchOverhead(sqlite3 *dbPlain, sqlite3 *dbTl, const char *zName,
                         const char *zSql, int nRun) {
  sqlite3 *aDb[2] = {dbPlain, dbTl};
  sqlite3_stmt *apStmt[2] = {NULL, NULL};
  double aMs[2][MAX_RUNS], aRatio[MAX_RUNS];
  double ms, plain, tl, ratio;
  int i, k, rc;
  rc = prepare(aDb[0], zSql, &apStmt[0]);
  if (rc == 0) rc = prepare(aDb[1], zSql, &apStmt[1]);
  for (i = 0; rc == 0 && i <= nRun; i++) {
    for (k = 0; rc == 0 && k < 2; k++) {
      int v = k ^ (i & 1);
      rc = runStmt(apStmt[v], SQLITE_DONE, &ms);
      if (i > 0) aMs[v][i - 1] = ms;
    }
    if (rc == 0 && i > 0) aRatio[i - 1] = aMs[1][i - 1] / aMs[0][i - 1];
  }
  if (rc == 0) {
    plain = median(aMs[0], nRun);
    tl = median(aMs[1], nRun);
    ratio = median(aRatio, nRun);
    printf("%-40s %5d %9.1f %12.1f %7.3fx  <= 1.01x\n", zName, nRun, plain, tl,
           ratio);
    fflush(stdout);
  }
  sqlite3_finalize(apStmt[0]);
  sqlite3_finalize(apStmt[1]);
  return rc;
}

/*
** Runs one overrun case on a connection of its own: one untimed run, then
** p->nRun timed runs that must each be stopped by the deadline.  Prints a
** row of the overrun table.
*/
static int benchOverrun(const OverrunCase *p) {
  sqlite3 *db = NULL;
  sqlite3_stmt *pStmt = NULL;
  double aMs[MAX_RUNS];
  double ms, med;
  const char *zReason;
  int i, rc;
  rc = openDb(&db, 1, p->zSetup, DEADLINE_MS);
  if (rc == 0) rc = prepare(db, p->zSql, &pStmt);
  for (i = 0; rc == 0 && i <= p->nRun; i++) {
    rc = runStmt(pStmt, SQLITE_INTERRUPT, &ms);
    zReason = timelimit_reason(db);
    if (rc == 0 && (zReason == NULL || strcmp(zReason, "deadline") != 0)) {
      fprintf(stderr, "bench_timelimit: %s: stopped for reason %s\n", p->zSql,
              zReason ? zReason : "NULL");
      rc = 1;
    }
    if (i > 0) aMs[i - 1] = ms - DEADLINE_MS;
  }
  if (rc == 0) {
    /* median() sorts aMs; p99 is the nearest-rank percentile. */
    med = median(aMs, p->nRun);
    printf("%-40s %5d %10.3f %10.3f %10.3f  %s\n", p->zName, p->nRun, med,
           aMs[(99 * p->nRun + 99) / 100 - 1], aMs[p->nRun - 1], p->zTarget);
    fflush(stdout);
  }
  sqlite3_finalize(pStmt);
  sqlite3_close(db);
  return rc;
}

int main(void) {
  sqlite3 *dbPlain = NULL, *dbTl = NULL;
  size_t i;
  int rc;

  printf("timelimit benchmark: SQLite %s, progress check every %d VM steps "
         "(TIMELIMIT_CHECK_STEPS)\n\n",
         sqlite3_libversion(), TIMELIMIT_CHECK_STEPS);
  printf("overhead (medians over the runs; ratio: median of the per-pair "
         "ratios; limit %d ms)\n",
         GENEROUS_MS);
  printf("%-40s %5s %9s %12s %8s  %s\n", "case", "runs", "plain ms",
         "timelimit ms", "ratio", "target");
  fflush(stdout);
  rc = openDb(&dbPlain, 0, LIKE_TABLE, 0);
  if (rc == 0) rc = openDb(&dbTl, 1, LIKE_TABLE, GENEROUS_MS);
  if (rc == 0) {
    rc = benchOverhead(dbPlain, dbTl, "recursive CTE, 3,000,000 rows",
                       "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL"
                       " SELECT x+1 FROM c WHERE x<3000000)"
                       " SELECT count(*) FROM c",
                       CTE_RUNS);
  }
  if (rc == 0) {
    rc = benchOverhead(dbPlain, dbTl, "LIKE scan, 1,000,000 rows",
                       "SELECT count(*) FROM t WHERE s LIKE '%99999%'",
                       LIKE_RUNS);
  }
  sqlite3_close(dbPlain);
  sqlite3_close(dbTl);

  if (rc == 0) {
    printf("\noverrun past a %d ms deadline (time from the first step to "
           "SQLITE_INTERRUPT, minus %d ms)\n",
           DEADLINE_MS, DEADLINE_MS);
    printf("%-40s %5s %10s %10s %10s  %s\n", "case", "runs", "median ms",
           "p99 ms", "max ms", "target");
    fflush(stdout);
  }
  for (i = 0; rc == 0 && i < sizeof(aOverrun) / sizeof(aOverrun[0]); i++) {
    rc = benchOverrun(&aOverrun[i]);
  }
  if (rc == 0) {
    printf("\nThe sorts order 60,000 rows by a NOCASE key with a 150-byte "
           "common prefix.\nThe cases after the first have no target: the "
           "deadline falls inside a long\nVM step (a sort of every row in "
           "memory, or hex()), which the progress handler\ncannot cut.  With "
           "temp files the sorter sorts and spills about 2 MB per step.\n");
  }
  return rc ? 1 : 0;
}
