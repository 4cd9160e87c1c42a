/*
** bench_sqlq.c: the benchmark of the sqlq library, run by "make bench" as
** "bench_sqlq DIR", where DIR is an existing scratch directory for the
** database files (it removes the files it makes); "bench_sqlq DIR reads"
** runs sections 1 to 3 only.  It measures, in one
** process, on file databases in WAL mode with the default options (2
** readers, synchronous=FULL; section 4 also NORMAL), everything the issue
** asks for side by side:
**
**   1. floors  What a round trip between two threads costs without SQLite:
**              a mutex+condvar ping-pong that signals under the lock (the
**              usual way, and the library's), one that signals after
**              unlocking (the woken thread need not wait for the mutex),
**              and an eventfd ping-pong, each to an echo thread that lives
**              through every round; and what SQLite itself costs: a direct
**              "SELECT 1" and a direct primary key lookup on one connection
**              (prepared once, step+reset).
**
**   2. round trip
**              "SELECT 1" through sqlq_exec() from one thread, one call
**              after the other, and the same through sqlq_submit(), poll()
**              of sqlq_fd() and sqlq_dispatch() on a handle in dispatch mode
**              (how an event loop waits).  Sections 1 and 2 run interleaved,
**              in ROUNDS rounds, so that a shared machine's changes of speed
**              hit every case alike; the ratio of sqlq_exec() to a floor is
**              the median of the ratios of their p50s in each round.
**
**   3. reads   "SELECT 1" and a primary key lookup of a random key among
**              KV_ROWS rows, from 1, 2, 4 and 16 threads, three ways: each
**              thread on a connection of its own with the statement
**              prepared once, sqlq_exec() (one call at a time per thread),
**              and sqlq_submit() with up to IN_FLIGHT calls in flight per
**              thread (the callback, on the worker, counts the completion;
**              the thread waits on a condvar at the cap).  Each case runs
**              READ_ROUNDS rounds of READ_MS, the ways of a thread count in
**              turn, in an order that turns each round; "x own" is the
**              median over the rounds of the rate's ratio to the own
**              connection's.  Latencies are of each call (not for
**              sqlq_submit); context switches of the process per call come
**              from getrusage().  First, what one read connection costs in
**              memory (sqlite3_memory_used) after 1000 and KV_ROWS lookups.
**
**   4. inserts Single-row inserts, each acknowledged only after its
**              COMMIT, with synchronous=FULL, then NORMAL, from 1, 16 and 64
**              threads: through the writer by sqlq_exec() of SQLQ_WRITE
**              with the default options ("group commit"), the same with
**              batch_max=1 ("batch 1": a transaction, so at FULL an fsync,
**              per row), each thread with a connection of its own ("own
**              connections": WAL, the same synchronous, busy_timeout 5000,
**              autocommit), and through the writer by sqlq_submit() with
**              up to INS_IN_FLIGHT inserts in flight per thread ("submit").
**              Once per mode, beside the 64 threads, two references on one
**              thread and connection with a prepared INSERT: "by hand"
**              (BEGIN IMMEDIATE, HAND_ROWS inserts, COMMIT, again) and the
**              "ceiling" (as many rows as fit in the run, in one
**              transaction, the time including its COMMIT).  The speed of
**              fsync on a shared disk changes several-fold within seconds,
**              so each case runs as two half-windows on fresh databases,
**              the ways of a thread count in an order and then in its
**              mirror.  Rows/s counts the rows acknowledged within the
**              windows; latencies are of acknowledged inserts (submit: from
**              sqlq_submit() to the callback; by hand: of a transaction),
**              the SQLITE_BUSY failures after the busy timeout are counted
**              apart.  Rows per transaction come from sqlq_stats() (batched
**              / batches, and max_batch).  Figures measured before the work
**              started are printed beside, not run here.
**
**   5. reads during a write
**              Primary key lookups by sqlq_exec() from one thread, back to
**              back: idle, then while a WRITE_FN task holds the writer's
**              transaction open for one second (it inserts a row, signals,
**              and sleeps inside the transaction).  Only reads that end
**              before the task's function returns are counted.
**
** Latencies are timed one call at a time with CLOCK_MONOTONIC; p50 and p99
** are nearest-rank percentiles.  The figures of Datasette (Python) were
** measured on this machine before the library was written and are not run
** here.  A last table compares the figures with the targets of the issue.
** The benchmark reports and never fails on slow figures: it exits 1 only if
** a call fails outright (an SQLite or sqlq error other than the SQLITE_BUSY
** that the inserts count, a wrong result, a row missing from the table, or
** a thread that cannot be started).
*/
#include <sqlite3.h>

#include "sqlq.h"
#include "testprog.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 10          /* Rounds of the interleaved sections 1, 2 */
#define DIRECT_ITERS 50000 /* Timed calls of each direct statement */
#define RTT_ITERS 20000    /* Timed round trips of each ping-pong, sqlq case */
#define WARMUP 1000        /* Untimed calls in the first round (then 1/10) */
#define KV_ROWS 100000     /* Rows of the lookup table */
#define READ_ROUNDS 3      /* Rounds of each read case */
#define READ_MS 300        /* How long each read case runs, each round */
#define IN_FLIGHT 64       /* Submitted and not completed, per thread */
#define INSERT_MS 2000     /* How long each insert case runs */
#define INS_IN_FLIGHT 16   /* Inserts in flight per thread, sqlq_submit() */
#define HAND_ROWS 64       /* Rows per transaction of the by-hand reference */
#define BUSY_MS 5000       /* busy_timeout of the own connections */
#define LAT_ITERS 2000     /* Timed reads, idle and during the write */
#define HOLD_MS 1000       /* How long the write transaction stays open */

/* Figures measured before the work started (Python, not run here). */
#define DS_EXEC_P50_US 60.0 /* Datasette execute("select 1") p50 */
#define DS_READ_1 14800.0   /* ... calls/s from one caller */
#define DS_READ_16 22700.0  /* ... calls/s from 16 concurrent callers */
#define DS_WRITE 3300.0     /* execute_write single-row inserts/s */

/* Inserts measured before the work started (not run here). */
#define BEFORE_AUTOCOMMIT 8100.0   /* Autocommit inserts/s, one thread, FULL */
#define BEFORE_OWN_64 9200.0       /* ... from 64 own-connection threads */
#define BEFORE_OWN_64_BUSY 20      /* ... their SQLITE_BUSY failures a run */
#define BEFORE_HAND_100 478000.0   /* Rows/s, commits of 100 rows by hand */
#define BEFORE_HAND_1000 1250000.0 /* ... of 1000 rows */
#define BEFORE_ONE_TXN 1530000.0   /* ... one transaction of 1M rows */

/* The targets of the issue. */
#define TARGET_RTT_US 12.0        /* sqlq_exec select 1 p50, at most */
#define TARGET_RTT_CV 1.5         /* ... as a multiple of the condvar p50 */
#define TARGET_VS_DS 5.0          /* Datasette p50 / sqlq p50, at least */
#define TARGET_READS 10.0         /* 16-thread reads / DS_READ_16, at least */
#define TARGET_EXEC_VS_DIRECT 5.0 /* sqlq_exec select 1 p50 / direct p50 */
#define TARGET_EXEC_VS_OWN 0.8    /* sqlq_exec pk lookups/s / own connection */
#define TARGET_P99_VS_OWN 2.0     /* 16 threads: sqlq_exec p99 / own p99 */

/* The targets of the inserts, with 64 threads and synchronous=FULL. */
#define TARGET_INS_RATE 150000.0 /* Group commit rows/s, at least */
#define TARGET_INS_VS_HAND 0.5   /* ... / by hand's rows/s, at least */
#define TARGET_INS_P99_MS 5.0    /* p99 of an acknowledged insert, ms */

#define KV_SQL "SELECT v FROM kv WHERE k=?"
#define INSERT_SQL "INSERT INTO t(thread, v) VALUES(?, ?)"

static const int aInsertThreads[] = {1, 16, 64};
#define N_INSERT_CASES (int)(sizeof(aInsertThreads) / sizeof(int))

/* CLOCK_MONOTONIC in nanoseconds. */
static int64_t nowNs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Prints a failure; returns 1. */
static int fail(const char *zWhat, const char *zWhy) {
  fprintf(stderr, "bench_sqlq: %s: %s\n", zWhat, zWhy);
  return 1;
}

/* Prints the failure of an sqlq call (status, and the result's message). */
static int sqlqFail(const char *zWhat, int status, const sqlq_result *r) {
  const char *zMsg = r ? sqlq_result_error(r) : NULL;
  fprintf(stderr, "bench_sqlq: %s: %s (%d)\n", zWhat,
          zMsg ? zMsg : sqlq_strerror(status), status);
  return 1;
}

/* Runs zSql on db; nonzero (after printing why) on error. */
static int exec(sqlite3 *db, const char *zSql) {
  char *zErr = NULL;
  if (sqlite3_exec(db, zSql, NULL, NULL, &zErr) != SQLITE_OK) {
    fail(zSql, zErr ? zErr : sqlite3_errmsg(db));
    sqlite3_free(zErr);
    return 1;
  }
  return 0;
}

/* Removes a database file and the files SQLite keeps beside it. */
static void removeDb(const char *zPath) {
  static const char *azSuffix[] = {"", "-wal", "-shm", "-journal"};
  char zName[4200];
  size_t i;
  for (i = 0; i < sizeof(azSuffix) / sizeof(azSuffix[0]); i++) {
    snprintf(zName, sizeof(zName), "%s%s", zPath, azSuffix[i]);
    if (unlink(zName) != 0 && errno != ENOENT) {
      fprintf(stderr, "bench_sqlq: warning: cannot remove %s: %s\n", zName,
              strerror(errno));
    }
  }
}

/* A growing array of times in nanoseconds. */
typedef struct Samples Samples;
struct Samples {
  int64_t *a;    /* The values */
  size_t n;      /* Values in a */
  size_t nAlloc; /* Room in a */
};

/* Appends v; nonzero if out of memory. */
static int samplesAdd(Samples *s, int64_t v) {
  if (s->n == s->nAlloc) {
    size_t nNew = s->nAlloc ? 2 * s->nAlloc : 4096;
    int64_t *aNew = realloc(s->a, nNew * sizeof(int64_t));
    if (aNew == NULL) return 1;
    s->a = aNew;
    s->nAlloc = nNew;
  }
  s->a[s->n++] = v;
  return 0;
}

/* Appends every value of pFrom to s; nonzero if out of memory. */
static int samplesAppend(Samples *s, const Samples *pFrom) {
  size_t i;
  for (i = 0; i < pFrom->n; i++) {
    if (samplesAdd(s, pFrom->a[i])) return 1;
  }
  return 0;
}

static void samplesFree(Samples *s) {
  free(s->a);
  memset(s, 0, sizeof(*s));
}

static int cmpI64(const void *pA, const void *pB) {
  int64_t a = *(const int64_t *)pA, b = *(const int64_t *)pB;
  return (a > b) - (a < b);
}

/* Percentiles of a series, in microseconds. */
typedef struct Dist Dist;
struct Dist {
  size_t n;   /* Values */
  double p50; /* Nearest-rank percentiles */
  double p99;
  double max;
};

/* Sorts the n values of a (ns) and returns their percentiles in us. */
static Dist distOf(int64_t *a, size_t n) {
  Dist d = {n, 0, 0, 0};
  if (n == 0) return d;
  qsort(a, n, sizeof(int64_t), cmpI64);
  d.p50 = (double)a[(50 * n + 99) / 100 - 1] / 1e3;
  d.p99 = (double)a[(99 * n + 99) / 100 - 1] / 1e3;
  d.max = (double)a[n - 1] / 1e3;
  return d;
}

/* Sleeps ms milliseconds. */
static void sleepMs(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int64_t randomKey(uint64_t *pState) {
  return 1 + (int64_t)(test_random(pState) % KV_ROWS);
}

/* ---- floors and round trips ---- */

/*
** The timed calls of one case of sections 1 and 2, gathered over the
** rounds.
*/
typedef struct Series Series;
struct Series {
  Samples lat; /* Time of each call */
  int64_t ns;  /* Wall time of the timed loops, for the rate */
};

/* The p50 (us) of the n values that round r added to s, unsorted. */
static double roundP50(const Series *s, int r, int n) {
  int64_t *a = malloc(sizeof(int64_t) * (size_t)n);
  double p50 = 0;
  if (a == NULL) return 0;
  memcpy(a, s->lat.a + (size_t)r * (size_t)n, sizeof(int64_t) * (size_t)n);
  p50 = distOf(a, (size_t)n).p50;
  free(a);
  return p50;
}

/*
** The median over the rounds of the ratio of the p50 of series pA to that
** of pB in the same round; each round added n values to each.  Cases timed
** moments apart see the same machine, so this ratio is steadier than the
** ratio of the pooled p50s.
*/
static double roundRatio(const Series *pA, const Series *pB, int n) {
  double aRatio[ROUNDS], t;
  int r, i, j;
  for (r = 0; r < ROUNDS; r++) {
    double b = roundP50(pB, r, n);
    aRatio[r] = b > 0 ? roundP50(pA, r, n) / b : 0;
  }
  for (i = 1; i < ROUNDS; i++) {
    for (j = i; j > 0 && aRatio[j - 1] > aRatio[j]; j--) {
      t = aRatio[j];
      aRatio[j] = aRatio[j - 1];
      aRatio[j - 1] = t;
    }
  }
  return ROUNDS % 2 ? aRatio[ROUNDS / 2]
                    : (aRatio[ROUNDS / 2 - 1] + aRatio[ROUNDS / 2]) / 2;
}

/* Calls per second of a series. */
static double seriesRate(const Series *s) {
  return s->ns > 0 ? (double)s->lat.n / ((double)s->ns / 1e9) : 0;
}

/*
** The two ping-pongs: this thread times round trips to an echo thread that
** lives through every round (like the library's workers).
*/
typedef struct Ping Ping;
struct Ping {
  pthread_mutex_t mu;      /* Condvar variant */
  pthread_cond_t aCond[2]; /* [1] wakes the echo, [0] the timer */
  int turn;                /* 1: the echo's turn; 0: the timer's */
  int bStop;               /* The condvar echo must return */
  int bAfter;              /* Signal after unlocking, not under the lock */
  int efd[2];              /* eventfd variant: to the echo, back */
  atomic_int bEfdStop;     /* The eventfd echo must return */
  atomic_int bEfdFailed;   /* The eventfd echo failed */
  pthread_t cvThread;      /* The echo threads */
  pthread_t efdThread;
  int bCv, bEfd; /* They were started */
};

static void *cvEcho(void *p) {
  Ping *g = p;
  pthread_mutex_lock(&g->mu);
  for (;;) {
    while (g->turn != 1)
      pthread_cond_wait(&g->aCond[1], &g->mu);
    if (g->bStop) break;
    g->turn = 0;
    if (g->bAfter) {
      pthread_mutex_unlock(&g->mu);
      pthread_cond_signal(&g->aCond[0]);
      pthread_mutex_lock(&g->mu);
    } else {
      pthread_cond_signal(&g->aCond[0]);
    }
  }
  pthread_mutex_unlock(&g->mu);
  return NULL;
}

static void *efdEcho(void *p) {
  Ping *g = p;
  uint64_t v = 1;
  for (;;) {
    if (read(g->efd[0], &v, sizeof(v)) != sizeof(v)) break;
    if (atomic_load(&g->bEfdStop)) return NULL;
    if (write(g->efd[1], &v, sizeof(v)) != sizeof(v)) break;
  }
  atomic_store(&g->bEfdFailed, 1);
  return NULL;
}

/* Starts the echo threads; nonzero (printed) on failure. */
static int pingStart(Ping *g) {
  memset(g, 0, sizeof(*g));
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->aCond[0], NULL);
  pthread_cond_init(&g->aCond[1], NULL);
  g->efd[0] = eventfd(0, EFD_CLOEXEC);
  g->efd[1] = eventfd(0, EFD_CLOEXEC);
  if (g->efd[0] < 0 || g->efd[1] < 0) return fail("eventfd", strerror(errno));
  if (pthread_create(&g->cvThread, NULL, cvEcho, g) != 0) {
    return fail("ping-pong", "cannot start a thread");
  }
  g->bCv = 1;
  if (pthread_create(&g->efdThread, NULL, efdEcho, g) != 0) {
    return fail("ping-pong", "cannot start a thread");
  }
  g->bEfd = 1;
  return 0;
}

/* Stops the echo threads and frees what pingStart() made. */
static void pingStop(Ping *g) {
  uint64_t v = 1;
  if (g->bCv) {
    pthread_mutex_lock(&g->mu);
    g->bStop = 1;
    g->turn = 1;
    pthread_cond_signal(&g->aCond[1]);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->cvThread, NULL);
  }
  if (g->bEfd) {
    atomic_store(&g->bEfdStop, 1);
    if (write(g->efd[0], &v, sizeof(v)) == sizeof(v)) {
      pthread_join(g->efdThread, NULL);
    }
  }
  if (g->efd[0] >= 0) close(g->efd[0]);
  if (g->efd[1] >= 0) close(g->efd[1]);
  pthread_cond_destroy(&g->aCond[0]);
  pthread_cond_destroy(&g->aCond[1]);
  pthread_mutex_destroy(&g->mu);
}

/*
** Runs nWarm untimed, then n timed round trips of a ping-pong of g into s:
** eMode 0 condvar, signalled under the lock; 1 condvar, signalled after
** unlocking; 2 eventfd.
*/
static int benchPing(Ping *g, int eMode, int nWarm, int n, Series *s) {
  int64_t t0, tLoop = 0;
  uint64_t v = 1;
  int i, rc = 0;
  for (i = 0; i < nWarm + n && rc == 0; i++) {
    t0 = nowNs();
    if (i == nWarm) tLoop = t0;
    if (eMode == 2) {
      if (atomic_load(&g->bEfdFailed) ||
          write(g->efd[0], &v, sizeof(v)) != sizeof(v) ||
          read(g->efd[1], &v, sizeof(v)) != sizeof(v)) {
        rc = fail("eventfd ping-pong", "read or write failed");
      }
    } else {
      pthread_mutex_lock(&g->mu);
      g->turn = 1;
      g->bAfter = eMode == 1;
      if (g->bAfter) {
        pthread_mutex_unlock(&g->mu);
        pthread_cond_signal(&g->aCond[1]);
        pthread_mutex_lock(&g->mu);
      } else {
        pthread_cond_signal(&g->aCond[1]);
      }
      while (g->turn != 0)
        pthread_cond_wait(&g->aCond[0], &g->mu);
      pthread_mutex_unlock(&g->mu);
    }
    if (i >= nWarm && samplesAdd(&s->lat, nowNs() - t0)) {
      rc = fail("ping-pong", "out of memory");
    }
  }
  s->ns += nowNs() - tLoop;
  return rc;
}

/*
** Runs pStmt (prepared once by the caller) nWarm untimed, then n timed
** times: bind a random key if it has a parameter, step (one row), reset.
*/
static int benchDirect(sqlite3_stmt *pStmt, uint64_t *pRng, int nWarm, int n,
                       Series *s) {
  int64_t t0, tLoop = 0;
  int i, rc = 0, bParam = sqlite3_bind_parameter_count(pStmt) > 0;
  for (i = 0; i < nWarm + n && rc == 0; i++) {
    t0 = nowNs();
    if (i == nWarm) tLoop = t0;
    if (bParam) sqlite3_bind_int64(pStmt, 1, randomKey(pRng));
    if (sqlite3_step(pStmt) != SQLITE_ROW ||
        sqlite3_column_type(pStmt, 0) == SQLITE_NULL) {
      rc = fail(sqlite3_sql(pStmt), "no row");
    }
    sqlite3_reset(pStmt);
    if (i >= nWarm && samplesAdd(&s->lat, nowNs() - t0)) {
      rc = fail("direct", "out of memory");
    }
  }
  s->ns += nowNs() - tLoop;
  return rc;
}

/*
** Runs nWarm untimed, then n timed sqlq_exec() calls of "SELECT 1" from
** this thread, one after the other.
*/
static int benchExecRtt(sqlq *q, int nWarm, int n, Series *s) {
  sqlq_call c;
  sqlq_result *r = NULL;
  int64_t t0, t1, tLoop = 0;
  int i, rc = 0, status;
  memset(&c, 0, sizeof(c));
  c.kind = SQLQ_READ;
  c.sql = "SELECT 1";
  for (i = 0; i < nWarm + n && rc == 0; i++) {
    t0 = nowNs();
    if (i == nWarm) tLoop = t0;
    status = sqlq_exec(q, &c, &r);
    t1 = nowNs();
    if (status != 0) {
      rc = sqlqFail("sqlq_exec SELECT 1", status, r);
    } else if (sqlq_result_rows(r) != 1 || sqlq_result_int(r, 0, 0) != 1) {
      rc = fail("sqlq_exec SELECT 1", "wrong result");
    }
    sqlq_result_free(r);
    if (i >= nWarm && samplesAdd(&s->lat, t1 - t0)) {
      rc = fail("round trip", "out of memory");
    }
  }
  s->ns += nowNs() - tLoop;
  return rc;
}

/* What the completion of a dispatch-mode round trip records. */
typedef struct DispatchOne DispatchOne;
struct DispatchOne {
  int bDone;  /* The callback ran */
  int status; /* Its status */
  int bRight; /* Its result is one row holding 1 */
};

static void dispatchDone(sqlq_result *r, void *udata) {
  DispatchOne *p = udata;
  p->bDone = 1;
  p->status = sqlq_result_status(r);
  p->bRight = sqlq_result_rows(r) == 1 && sqlq_result_int(r, 0, 0) == 1;
}

/*
** Like benchExecRtt(), but each call is sqlq_submit(), then poll() on
** sqlq_fd() and sqlq_dispatch() until the callback has run, on q, a handle
** in dispatch mode.
*/
static int benchDispatchRtt(sqlq *q, int nWarm, int n, Series *s) {
  sqlq_call c;
  DispatchOne one;
  struct pollfd pfd;
  int64_t t0, t1, tLoop = 0, id;
  int i, rc = 0, nRun;
  memset(&c, 0, sizeof(c));
  c.kind = SQLQ_READ;
  c.sql = "SELECT 1";
  c.done = dispatchDone;
  c.udata = &one;
  pfd.fd = sqlq_fd(q);
  pfd.events = POLLIN;
  for (i = 0; i < nWarm + n && rc == 0; i++) {
    memset(&one, 0, sizeof(one));
    t0 = nowNs();
    if (i == nWarm) tLoop = t0;
    id = sqlq_submit(q, &c);
    if (id < 0) {
      rc = sqlqFail("sqlq_submit SELECT 1", (int)id, NULL);
      break;
    }
    while (!one.bDone && rc == 0) {
      if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
        rc = fail("poll", strerror(errno));
      } else if ((nRun = sqlq_dispatch(q)) < 0) {
        rc = sqlqFail("sqlq_dispatch", nRun, NULL);
      }
    }
    t1 = nowNs();
    if (rc == 0 && one.status != 0) {
      rc = sqlqFail("dispatch SELECT 1", one.status, NULL);
    } else if (rc == 0 && !one.bRight) {
      rc = fail("dispatch SELECT 1", "wrong result");
    }
    if (i >= nWarm && samplesAdd(&s->lat, t1 - t0)) {
      rc = fail("round trip", "out of memory");
    }
  }
  s->ns += nowNs() - tLoop;
  return rc;
}

/* The cases of sections 1 and 2, in the order they run in each round. */
enum {
  S_CONDVAR,
  S_CONDVAR2,
  S_EVENTFD,
  S_DIRECT1,
  S_DIRECTKEY,
  S_EXEC,
  S_DISPATCH,
  N_SERIES
};

/*
** Runs the cases of sections 1 and 2 interleaved, in ROUNDS rounds, so
** that the machine's changes of speed hit them alike; fills aSer.
*/
static int benchRoundTrips(sqlq *q, const char *zDb, Series *aSer) {
  sqlite3 *db = NULL;
  sqlite3_stmt *pSel1 = NULL, *pKey = NULL;
  sqlq *qd = NULL;
  sqlq_options o;
  Ping g;
  uint64_t rng = 42;
  int r, rc = 0, nWarm;
  memset(&o, 0, sizeof(o));
  o.dispatch = 1;
  if (sqlite3_open_v2(zDb, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "SELECT 1", -1, &pSel1, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, KV_SQL, -1, &pKey, NULL) != SQLITE_OK) {
    rc = fail(zDb, sqlite3_errmsg(db));
  } else if ((rc = sqlq_open(zDb, &o, &qd)) != 0) {
    rc = sqlqFail("sqlq_open (dispatch mode)", rc, NULL);
  }
  if (pingStart(&g) != 0) rc = 1;
  for (r = 0; r < ROUNDS && rc == 0; r++) {
    nWarm = r == 0 ? WARMUP : WARMUP / 10;
    rc = benchPing(&g, 0, nWarm, RTT_ITERS / ROUNDS, &aSer[S_CONDVAR]);
    if (rc == 0) {
      rc = benchPing(&g, 1, nWarm, RTT_ITERS / ROUNDS, &aSer[S_CONDVAR2]);
    }
    if (rc == 0) {
      rc = benchPing(&g, 2, nWarm, RTT_ITERS / ROUNDS, &aSer[S_EVENTFD]);
    }
    if (rc == 0) {
      rc = benchDirect(pSel1, &rng, nWarm, DIRECT_ITERS / ROUNDS,
                       &aSer[S_DIRECT1]);
    }
    if (rc == 0) {
      rc = benchDirect(pKey, &rng, nWarm, DIRECT_ITERS / ROUNDS,
                       &aSer[S_DIRECTKEY]);
    }
    if (rc == 0) {
      rc = benchExecRtt(q, nWarm, RTT_ITERS / ROUNDS, &aSer[S_EXEC]);
    }
    if (rc == 0) {
      rc = benchDispatchRtt(qd, nWarm, RTT_ITERS / ROUNDS, &aSer[S_DISPATCH]);
    }
  }
  pingStop(&g);
  if (qd) {
    int rcClose = sqlq_close(qd);
    if (rcClose != 0 && rc == 0) rc = sqlqFail("sqlq_close", rcClose, NULL);
  }
  sqlite3_finalize(pSel1);
  sqlite3_finalize(pKey);
  sqlite3_close(db);
  return rc;
}

/* ---- reads by thread count ---- */

/* How the threads of section 3 read. */
enum {
  W_OWN,    /* Each thread on a connection of its own, statement prepared */
  W_EXEC,   /* sqlq_exec(), one call at a time per thread */
  W_SUBMIT, /* sqlq_submit(), IN_FLIGHT calls in flight per thread */
  N_READ_WAYS
};
static const char *const azReadWay[N_READ_WAYS] = {
    "own connection", "sqlq_exec", "sqlq_submit, 64 in flight"};
static const int aReadThreads[] = {1, 2, 4, 16};
#define N_READ_COUNTS (int)(sizeof(aReadThreads) / sizeof(int))

/* One reading thread of section 3. */
typedef struct Caller Caller;
struct Caller {
  sqlq *q;                   /* The handle */
  const char *zDb;           /* The database, for W_OWN */
  pthread_barrier_t *pStart; /* Every thread starts at once */
  int bKey;                  /* Primary key lookups, not SELECT 1 */
  int eWay;                  /* W_* */
  uint64_t rng;              /* Random keys */
  pthread_t thread;
  int64_t tStart, tEnd; /* When it began and ended */
  int64_t nCalls;       /* Calls that succeeded (W_OWN, W_EXEC) */
  Samples lat;          /* Time of each (W_OWN, W_EXEC) */
  int rc;               /* Nonzero if it failed (printed) */
  /* W_SUBMIT */
  pthread_mutex_t mu;  /* Protects nInFlight and bWaiting */
  pthread_cond_t cond; /* Signalled by a callback if bWaiting */
  int nInFlight;       /* Submitted, callback not run yet */
  int bWaiting;        /* The thread waits on cond */
  atomic_llong nOk;    /* Completions with the right result */
  atomic_llong nBad;   /* Completions with an error */
  atomic_int firstBad; /* Status of the first error */
};

/* Checks the result of a read of the read section. */
static int readRight(const sqlq_result *r, int bKey) {
  if (sqlq_result_rows(r) != 1) return 0;
  if (bKey) return sqlq_result_type(r, 0, 0) == SQLITE_TEXT;
  return sqlq_result_int(r, 0, 0) == 1;
}

static void callerDone(sqlq_result *r, void *udata) {
  Caller *p = udata;
  int status = sqlq_result_status(r);
  if (status == 0 && readRight(r, p->bKey)) {
    atomic_fetch_add(&p->nOk, 1);
  } else {
    int zero = 0;
    atomic_compare_exchange_strong(&p->firstBad, &zero,
                                   status ? status : SQLQ_EINVAL);
    atomic_fetch_add(&p->nBad, 1);
  }
  pthread_mutex_lock(&p->mu);
  p->nInFlight--;
  if (p->bWaiting) pthread_cond_signal(&p->cond);
  pthread_mutex_unlock(&p->mu);
}

/* Waits until fewer than n of the thread's calls are in flight. */
static void callerWaitBelow(Caller *p, int n) {
  pthread_mutex_lock(&p->mu);
  while (p->nInFlight >= n) {
    p->bWaiting = 1;
    pthread_cond_wait(&p->cond, &p->mu);
  }
  p->bWaiting = 0;
  pthread_mutex_unlock(&p->mu);
}

/* One read on the thread's own connection; nonzero on failure. */
static int ownRead(Caller *p, sqlite3_stmt *pStmt) {
  int rc = 0;
  if (p->bKey) sqlite3_bind_int64(pStmt, 1, randomKey(&p->rng));
  if (sqlite3_step(pStmt) != SQLITE_ROW ||
      sqlite3_column_type(pStmt, 0) !=
          (p->bKey ? SQLITE_TEXT : SQLITE_INTEGER)) {
    rc = fail("own connection (reads)", "no row");
  }
  sqlite3_reset(pStmt);
  return rc;
}

static void *callerMain(void *pArg) {
  Caller *p = pArg;
  sqlq_call c;
  sqlq_value v;
  sqlq_result *r = NULL;
  sqlite3 *db = NULL;
  sqlite3_stmt *pStmt = NULL;
  int64_t deadline, id, t0;
  int status;
  memset(&c, 0, sizeof(c));
  c.kind = SQLQ_READ;
  c.sql = p->bKey ? KV_SQL : "SELECT 1";
  c.params = p->bKey ? &v : NULL;
  c.nparams = p->bKey ? 1 : 0;
  c.done = callerDone;
  c.udata = p;
  if (p->eWay == W_OWN &&
      (sqlite3_open_v2(p->zDb, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                       NULL) ||
       sqlite3_prepare_v2(db, c.sql, -1, &pStmt, NULL))) {
    p->rc = fail("own connection (reads)", sqlite3_errmsg(db));
  }
  pthread_barrier_wait(p->pStart);
  p->tStart = nowNs();
  deadline = p->tStart + (int64_t)READ_MS * 1000000;
  while (p->rc == 0 && (t0 = nowNs()) < deadline) {
    v = sqlq_int(randomKey(&p->rng));
    if (p->eWay == W_SUBMIT) {
      callerWaitBelow(p, IN_FLIGHT);
      pthread_mutex_lock(&p->mu);
      p->nInFlight++;
      pthread_mutex_unlock(&p->mu);
      id = sqlq_submit(p->q, &c);
      if (id < 0) {
        pthread_mutex_lock(&p->mu);
        p->nInFlight--;
        pthread_mutex_unlock(&p->mu);
        p->rc = sqlqFail("sqlq_submit (reads)", (int)id, NULL);
      }
      continue;
    }
    if (p->eWay == W_OWN) {
      p->rc = ownRead(p, pStmt);
    } else {
      status = sqlq_exec(p->q, &c, &r);
      if (status != 0) {
        p->rc = sqlqFail("sqlq_exec (reads)", status, r);
      } else if (!readRight(r, p->bKey)) {
        p->rc = fail("sqlq_exec (reads)", "wrong result");
      }
      sqlq_result_free(r);
    }
    if (p->rc == 0 && samplesAdd(&p->lat, nowNs() - t0)) {
      p->rc = fail("reads", "out of memory");
    }
    p->nCalls++;
  }
  if (p->eWay == W_SUBMIT) callerWaitBelow(p, 1);
  p->tEnd = nowNs();
  sqlite3_finalize(pStmt);
  sqlite3_close(db);
  return NULL;
}

/* Context switches of the process so far, voluntary or not. */
static int64_t contextSwitches(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (int64_t)ru.ru_nvcsw + (int64_t)ru.ru_nivcsw;
}

/* What one case of section 3 measured, over its rounds. */
typedef struct ReadCase ReadCase;
struct ReadCase {
  int64_t nCalls;            /* Calls that succeeded */
  int64_t ns;                /* Wall time, first start to last end */
  int64_t nCsw;              /* Context switches of the process */
  double aRate[READ_ROUNDS]; /* Calls/s of each round */
  Samples lat;               /* Time of each call (not W_SUBMIT) */
  Dist dist;                 /* Its percentiles, once all rounds ran */
};

/*
** Runs nThread callers reading the eWay way for READ_MS each, as round r of
** pc.
*/
static int benchReads(sqlq *q, const char *zDb, int nThread, int eWay, int bKey,
                      int r, ReadCase *pc) {
  Caller *a = calloc((size_t)nThread, sizeof(Caller));
  pthread_barrier_t start;
  int64_t t0 = INT64_MAX, t1 = 0, nCalls = 0, nCsw = contextSwitches();
  int i, nStarted = 0, rc = 0;
  if (a == NULL) return fail("reads", "out of memory");
  pthread_barrier_init(&start, NULL, (unsigned)nThread);
  for (i = 0; i < nThread; i++) {
    a[i].q = q;
    a[i].zDb = zDb;
    a[i].pStart = &start;
    a[i].bKey = bKey;
    a[i].eWay = eWay;
    a[i].rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1 + 100 * r);
    pthread_mutex_init(&a[i].mu, NULL);
    pthread_cond_init(&a[i].cond, NULL);
  }
  for (i = 0; i < nThread; i++) {
    if (pthread_create(&a[i].thread, NULL, callerMain, &a[i]) != 0) break;
    nStarted++;
  }
  if (nStarted < nThread) {
    /* The barrier would never open: nothing to do but stop here. */
    fail("reads", "cannot start a thread");
    exit(1);
  }
  for (i = 0; i < nThread; i++) {
    pthread_join(a[i].thread, NULL);
    if (a[i].rc) rc = 1;
    if (atomic_load(&a[i].nBad) > 0 && rc == 0) {
      rc = sqlqFail("read callback", atomic_load(&a[i].firstBad), NULL);
    }
    nCalls += a[i].nCalls + atomic_load(&a[i].nOk);
    if (a[i].tStart < t0) t0 = a[i].tStart;
    if (a[i].tEnd > t1) t1 = a[i].tEnd;
    if (rc == 0 && samplesAppend(&pc->lat, &a[i].lat)) {
      rc = fail("reads", "out of memory");
    }
    samplesFree(&a[i].lat);
    pthread_cond_destroy(&a[i].cond);
    pthread_mutex_destroy(&a[i].mu);
  }
  pc->nCsw += contextSwitches() - nCsw;
  pthread_barrier_destroy(&start);
  free(a);
  pc->nCalls += nCalls;
  pc->ns += t1 - t0;
  pc->aRate[r] = (double)nCalls / ((double)(t1 - t0) / 1e9);
  return rc;
}

/*
** What one read connection costs in memory, as SQLite counts it
** (sqlite3_memory_used): opened read-only, then n pk lookups of random keys
** through one prepared statement, its page cache filling as they go.
*/
static int connMemory(const char *zDb, int n, int64_t *pBytes) {
  sqlite3 *db = NULL;
  sqlite3_stmt *pStmt = NULL;
  Caller c;
  int64_t m0 = sqlite3_memory_used();
  int i, rc = 0;
  memset(&c, 0, sizeof(c));
  c.bKey = 1;
  c.rng = 0x2545f4914f6cdd1dULL;
  if (sqlite3_open_v2(zDb, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, KV_SQL, -1, &pStmt, NULL) != SQLITE_OK) {
    rc = fail("memory of a connection", sqlite3_errmsg(db));
  }
  for (i = 0; i < n && rc == 0; i++)
    rc = ownRead(&c, pStmt);
  *pBytes = sqlite3_memory_used() - m0;
  sqlite3_finalize(pStmt);
  sqlite3_close(db);
  return rc;
}

/* The median over the rounds of pA's rate / pB's. */
static double readRatio(const ReadCase *pA, const ReadCase *pB) {
  double a[READ_ROUNDS], t;
  int i, j;
  for (i = 0; i < READ_ROUNDS; i++)
    a[i] = pB->aRate[i] > 0 ? pA->aRate[i] / pB->aRate[i] : 0;
  for (i = 1; i < READ_ROUNDS; i++) {
    for (j = i; j > 0 && a[j - 1] > a[j]; j--) {
      t = a[j];
      a[j] = a[j - 1];
      a[j - 1] = t;
    }
  }
  return a[READ_ROUNDS / 2];
}

/* The cases of section 3: [query (0 SELECT 1, 1 pk)][thread count][way]. */
typedef ReadCase ReadCases[2][N_READ_COUNTS][N_READ_WAYS];

/*
** Section 3: every case, in READ_ROUNDS rounds; within a round, the ways of
** a thread count run one after the other, in an order that turns each
** round.
*/
static int runReadSection(sqlq *q, const char *zDb, ReadCases *pRead) {
  int bKey, i, r, k, rc = 0;
  printf("\n3. reads from 1, 2, 4 and 16 threads, %d rounds of %d ms per "
         "case, ways in turn;\n   pk lookup: random keys among %d rows; "
         "p50/p99 of one call (not for\n   sqlq_submit); csw: context "
         "switches of the process per call\n",
         READ_ROUNDS, READ_MS, KV_ROWS);
  fflush(stdout);
  for (bKey = 0; bKey < 2 && rc == 0; bKey++) {
    for (i = 0; i < N_READ_COUNTS && rc == 0; i++) {
      for (r = 0; r < READ_ROUNDS && rc == 0; r++) {
        for (k = 0; k < N_READ_WAYS && rc == 0; k++) {
          int eWay = (k + r) % N_READ_WAYS;
          rc = benchReads(q, zDb, aReadThreads[i], eWay, bKey, r,
                          &(*pRead)[bKey][i][eWay]);
        }
      }
    }
  }
  for (i = 0; i < 2 && rc == 0; i++) {
    int64_t nBytes = 0;
    int n = i ? KV_ROWS : 1000;
    rc = connMemory(zDb, n, &nBytes);
    if (rc == 0) {
      printf("   memory of one read connection after %d pk lookups: %.0f "
             "KiB\n",
             n, (double)nBytes / 1024);
    }
  }
  for (bKey = 0; bKey < 2 && rc == 0; bKey++) {
    printf("\n   %s\n", bKey ? "pk lookup" : "SELECT 1");
    printf("%-28s %3s %9s %8s %8s %6s %9s\n", "case", "thr", "calls/s", "p50",
           "p99", "csw", "x own");
    for (i = 0; i < N_READ_COUNTS; i++) {
      for (k = 0; k < N_READ_WAYS; k++) {
        ReadCase *pc = &(*pRead)[bKey][i][k];
        char zP50[32] = "-", zP99[32] = "-";
        pc->dist = distOf(pc->lat.a, pc->lat.n);
        if (pc->dist.n) {
          snprintf(zP50, sizeof(zP50), "%.2f", pc->dist.p50);
          snprintf(zP99, sizeof(zP99), "%.2f", pc->dist.p99);
        }
        printf("%-28s %3d %9.0f %8s %8s %6.2f %8.2fx\n", azReadWay[k],
               aReadThreads[i], (double)pc->nCalls / ((double)pc->ns / 1e9),
               zP50, zP99,
               pc->nCalls ? (double)pc->nCsw / (double)pc->nCalls : 0,
               readRatio(pc, &(*pRead)[bKey][i][W_OWN]));
      }
    }
  }
  fflush(stdout);
  return rc;
}

static void readFree(ReadCases *pRead) {
  int b, i, k;
  for (b = 0; b < 2; b++) {
    for (i = 0; i < N_READ_COUNTS; i++) {
      for (k = 0; k < N_READ_WAYS; k++)
        samplesFree(&(*pRead)[b][i][k].lat);
    }
  }
}

/* ---- inserts ---- */

/* The ways of inserting that section 4 compares, in the order of its rows. */
enum {
  I_GROUP,  /* sqlq_exec() of SQLQ_WRITE, default options: group commit */
  I_SINGLE, /* The same with batch_max=1: a transaction per row */
  I_OWN,    /* A connection per thread, busy_timeout, autocommit */
  I_SUBMIT, /* sqlq_submit(), INS_IN_FLIGHT per thread, group commit */
  I_HAND,   /* One thread: BEGIN, HAND_ROWS inserts, COMMIT, again */
  I_CEIL,   /* One thread: as many rows as fit, in one transaction */
  N_INSERT_WAYS
};

/* The synchronous modes of section 4, in the order they run. */
static const int aSyncMode[] = {2, 1};
static const char *azSyncMode[] = {"FULL", "NORMAL"};
#define N_SYNC_MODES (int)(sizeof(aSyncMode) / sizeof(int))

typedef struct Inserter Inserter;

/* A call of an inserting thread in flight (sqlq_submit() mode). */
typedef struct InsertSlot InsertSlot;
struct InsertSlot {
  Inserter *p; /* Its thread */
  int64_t t0;  /* When it was submitted */
  int iNext;   /* Next free slot, or -1 */
};

/* One inserting thread. */
struct Inserter {
  sqlq *q;                   /* Through the writer, or */
  sqlite3 *db;               /* its own connection */
  sqlite3_stmt *pStmt;       /* The INSERT, on db */
  pthread_barrier_t *pStart; /* Every thread starts at once */
  int iThread;               /* Its number, stored in the rows */
  int bSubmit;               /* sqlq_submit(), not sqlq_exec() */
  pthread_t thread;
  int64_t deadline; /* End of its window */
  int rc;           /* Nonzero if it failed (printed) */
  /* Written by the callbacks too, on the writer, in sqlq_submit() mode,
  ** so under mu there. */
  int64_t nRows;    /* Rows acknowledged within the window */
  int64_t nRowsAll; /* Rows acknowledged, also after the window */
  int64_t nBusy;    /* Inserts that failed with SQLITE_BUSY */
  Samples lat;      /* Latency of every acknowledged insert */
  /* sqlq_submit() mode */
  pthread_mutex_t mu;  /* Protects what the callbacks write */
  pthread_cond_t cond; /* Signalled by a callback if bWaiting */
  int nInFlight;       /* Submitted, callback not run yet */
  int bWaiting;        /* The thread waits on cond */
  int firstBad;        /* Status of the first failed completion, or 0 */
  int iFree;           /* First free slot of aSlot, or -1 */
  InsertSlot aSlot[INS_IN_FLIGHT];
};

/* Counts an insert that ended at t1 with status (0: acknowledged). */
static void insertCount(Inserter *p, int status, int64_t t0, int64_t t1) {
  if (status == 0) {
    p->nRowsAll++;
    if (t1 <= p->deadline) p->nRows++;
    if (samplesAdd(&p->lat, t1 - t0) && p->firstBad == 0) {
      p->firstBad = SQLQ_ENOMEM;
    }
  } else if (status > 0 && (status & 0xff) == SQLITE_BUSY) {
    p->nBusy++;
  } else if (p->firstBad == 0) {
    p->firstBad = status;
  }
}

/* The completion of an insert submitted by sqlq_submit(), on the writer. */
static void insertDone(sqlq_result *r, void *udata) {
  InsertSlot *s = udata;
  Inserter *p = s->p;
  int64_t t1 = nowNs();
  pthread_mutex_lock(&p->mu);
  insertCount(p, sqlq_result_status(r), s->t0, t1);
  s->iNext = p->iFree;
  p->iFree = (int)(s - p->aSlot);
  p->nInFlight--;
  if (p->bWaiting) pthread_cond_signal(&p->cond);
  pthread_mutex_unlock(&p->mu);
}

/*
** Waits until fewer than n of the thread's inserts are in flight; returns
** with the mutex held.
*/
static void inserterWaitBelow(Inserter *p, int n) {
  pthread_mutex_lock(&p->mu);
  while (p->nInFlight >= n) {
    p->bWaiting = 1;
    pthread_cond_wait(&p->cond, &p->mu);
  }
  p->bWaiting = 0;
}

/* The sqlq_submit() loop of an inserting thread. */
static void inserterSubmit(Inserter *p, sqlq_call *c, sqlq_value *av) {
  int64_t id, iVal = 0;
  int i, iSlot;
  for (i = 0; i < INS_IN_FLIGHT; i++) {
    p->aSlot[i].p = p;
    p->aSlot[i].iNext = i + 1 < INS_IN_FLIGHT ? i + 1 : -1;
  }
  p->iFree = 0;
  c->done = insertDone;
  while (nowNs() < p->deadline) {
    inserterWaitBelow(p, INS_IN_FLIGHT);
    if (p->firstBad != 0 || nowNs() >= p->deadline) {
      pthread_mutex_unlock(&p->mu);
      break;
    }
    iSlot = p->iFree;
    p->iFree = p->aSlot[iSlot].iNext;
    p->nInFlight++;
    pthread_mutex_unlock(&p->mu);
    av[0] = sqlq_int(p->iThread);
    av[1] = sqlq_int(++iVal);
    c->udata = &p->aSlot[iSlot];
    p->aSlot[iSlot].t0 = nowNs();
    id = sqlq_submit(p->q, c);
    if (id < 0) {
      pthread_mutex_lock(&p->mu);
      p->aSlot[iSlot].iNext = p->iFree;
      p->iFree = iSlot;
      p->nInFlight--;
      pthread_mutex_unlock(&p->mu);
      p->rc = sqlqFail("sqlq_submit INSERT", (int)id, NULL);
      break;
    }
  }
  inserterWaitBelow(p, 1);
  pthread_mutex_unlock(&p->mu);
  if (p->firstBad != 0 && p->rc == 0) {
    p->rc = sqlqFail("INSERT callback", p->firstBad, NULL);
  }
}

static void *inserterMain(void *pArg) {
  Inserter *p = pArg;
  sqlq_call c;
  sqlq_value av[2];
  sqlq_result *r = NULL;
  int64_t t0, t1, iVal = 0;
  int status;
  memset(&c, 0, sizeof(c));
  c.kind = SQLQ_WRITE;
  c.sql = INSERT_SQL;
  c.params = av;
  c.nparams = 2;
  pthread_barrier_wait(p->pStart);
  p->deadline = nowNs() + (int64_t)INSERT_MS / 2 * 1000000;
  if (p->bSubmit) {
    inserterSubmit(p, &c, av);
    return NULL;
  }
  while ((t0 = nowNs()) < p->deadline && p->rc == 0) {
    iVal++;
    if (p->q) {
      av[0] = sqlq_int(p->iThread);
      av[1] = sqlq_int(iVal);
      status = sqlq_exec(p->q, &c, &r);
      t1 = nowNs();
      insertCount(p, status, t0, t1);
      if (p->firstBad != 0) {
        p->rc = sqlqFail("sqlq_exec INSERT", p->firstBad, r);
      }
      sqlq_result_free(r);
    } else {
      sqlite3_bind_int64(p->pStmt, 1, p->iThread);
      sqlite3_bind_int64(p->pStmt, 2, iVal);
      status = sqlite3_step(p->pStmt);
      t1 = nowNs();
      if (status == SQLITE_DONE) status = 0;
      insertCount(p, status, t0, t1);
      if (p->firstBad != 0) {
        p->rc = fail("INSERT (own connection)",
                     p->firstBad > 0 ? sqlite3_errmsg(p->db)
                                     : sqlq_strerror(p->firstBad));
      }
      sqlite3_reset(p->pStmt);
    }
  }
  return NULL;
}

/* The figures of one insert case, gathered over its two half-windows. */
typedef struct InsertCase InsertCase;
struct InsertCase {
  int nThread;     /* Submitting threads */
  int64_t nRows;   /* Rows acknowledged within the windows */
  int64_t ns;      /* The windows' length (a single transaction: its time) */
  int64_t nBusy;   /* SQLITE_BUSY failures */
  int64_t *aRows;  /* Rows of each thread within the windows */
  Samples lat;     /* Latency of every acknowledged insert (by hand: of
                      every transaction) */
  int64_t nTxn;    /* Transactions (the writer's: sqlq_stats batches) */
  int64_t nInTxn;  /* Rows in them (the writer's: sqlq_stats batched) */
  int64_t maxTxn;  /* Rows in the largest (the writer's: max_batch) */
  double rate;     /* Set by insertFinish(): rows per second */
  int64_t minRows; /* ... the fewest rows of any thread */
  Dist dist;       /* ... the latencies, us */
};

/* Sets up pc for nThread threads; nonzero if out of memory. */
static int insertInit(InsertCase *pc, int nThread) {
  memset(pc, 0, sizeof(*pc));
  pc->nThread = nThread;
  pc->aRows = calloc((size_t)nThread, sizeof(int64_t));
  return pc->aRows == NULL ? fail("inserts", "out of memory") : 0;
}

static void insertFinish(InsertCase *pc) {
  int i;
  pc->rate = pc->ns > 0 ? (double)pc->nRows / ((double)pc->ns / 1e9) : 0;
  pc->minRows = pc->aRows[0];
  for (i = 1; i < pc->nThread; i++) {
    if (pc->aRows[i] < pc->minRows) pc->minRows = pc->aRows[i];
  }
  pc->dist = distOf(pc->lat.a, pc->lat.n);
}

/* Rows per transaction of pc, or 0 if it counted none. */
static double insertRowsPerTxn(const InsertCase *pc) {
  return pc->nTxn > 0 ? (double)pc->nInTxn / (double)pc->nTxn : 0;
}

static void insertFree(InsertCase *pc) {
  free(pc->aRows);
  samplesFree(&pc->lat);
  memset(pc, 0, sizeof(*pc));
}

#define INSERT_TABLE "CREATE TABLE t(id INTEGER PRIMARY KEY, thread INT, v INT)"

/*
** Opens zPath (a new file) in WAL mode with PRAGMA synchronous=eSync,
** busy_timeout BUSY_MS and, if bCreate, makes the table; prepares
** INSERT_SQL into *ppStmt if ppStmt is not NULL.  Nonzero (printed) on
** failure; *pDb is set either way.
*/
static int openOwn(const char *zPath, int eSync, int bCreate, sqlite3 **pDb,
                   sqlite3_stmt **ppStmt) {
  char zPragma[64];
  int rc;
  snprintf(zPragma, sizeof(zPragma), "PRAGMA synchronous=%d", eSync);
  rc = sqlite3_open(zPath, pDb);
  if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(*pDb, BUSY_MS);
  if (rc != SQLITE_OK) return fail(zPath, sqlite3_errmsg(*pDb));
  if (exec(*pDb, "PRAGMA journal_mode=WAL") || exec(*pDb, zPragma)) return 1;
  if (bCreate && exec(*pDb, INSERT_TABLE)) return 1;
  if (ppStmt &&
      sqlite3_prepare_v2(*pDb, INSERT_SQL, -1, ppStmt, NULL) != SQLITE_OK) {
    return fail(INSERT_SQL, sqlite3_errmsg(*pDb));
  }
  return 0;
}

/*
** Checks that the table of zPath holds nRows rows (db: a connection to it,
** or NULL to open one).  Nonzero (printed) if not.
*/
static int checkRows(const char *zPath, sqlite3 *db, int64_t nRows) {
  sqlite3 *dbOwn = NULL;
  sqlite3_stmt *pCount = NULL;
  int rc = 0;
  if (db == NULL) {
    if (sqlite3_open(zPath, &dbOwn) != SQLITE_OK) {
      rc = fail(zPath, sqlite3_errmsg(dbOwn));
    }
    db = dbOwn;
  }
  if (rc == 0) {
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &pCount, NULL) !=
            SQLITE_OK ||
        sqlite3_step(pCount) != SQLITE_ROW) {
      rc = fail(zPath, sqlite3_errmsg(db));
    } else if (sqlite3_column_int64(pCount, 0) != nRows) {
      fprintf(stderr,
              "bench_sqlq: %s: the table holds %lld rows, %lld were "
              "committed\n",
              zPath, (long long)sqlite3_column_int64(pCount, 0),
              (long long)nRows);
      rc = 1;
    }
  }
  sqlite3_finalize(pCount);
  sqlite3_close(dbOwn);
  return rc;
}

/*
** Runs one half-window of an insert case on a fresh database zPath:
** pc->nThread threads inserting in the way eWay (I_GROUP, I_SINGLE, I_OWN
** or I_SUBMIT) with PRAGMA synchronous=eSync, and adds the figures to pc.
** Checks that the table holds every row reported committed.
*/
static int benchInserts(const char *zPath, int eSync, int eWay,
                        InsertCase *pc) {
  int nThread = pc->nThread;
  Inserter *a = calloc((size_t)nThread, sizeof(Inserter));
  pthread_barrier_t start;
  sqlq *q = NULL;
  sqlite3 *db = NULL;
  int64_t nRowsAll = 0;
  int i, rc = 0, bBarrier = 0;
  if (a == NULL) return fail("inserts", "out of memory");
  removeDb(zPath);
  if (eWay == I_OWN) {
    rc = openOwn(zPath, eSync, 1, &db, NULL);
    for (i = 0; i < nThread && rc == 0; i++) {
      rc = openOwn(zPath, eSync, 0, &a[i].db, &a[i].pStmt);
    }
  } else {
    sqlq_call c;
    sqlq_options o;
    sqlq_result *r = NULL;
    memset(&o, 0, sizeof(o));
    o.synchronous = eSync;
    if (eWay == I_SINGLE) o.batch_max = 1;
    rc = sqlq_open(zPath, &o, &q);
    if (rc != 0) {
      rc = sqlqFail("sqlq_open (inserts)", rc, NULL);
    } else {
      memset(&c, 0, sizeof(c));
      c.kind = SQLQ_SCRIPT;
      c.sql = INSERT_TABLE;
      rc = sqlq_exec(q, &c, &r);
      if (rc != 0) rc = sqlqFail(INSERT_TABLE, rc, r);
      sqlq_result_free(r);
    }
  }
  if (rc == 0) {
    pthread_barrier_init(&start, NULL, (unsigned)nThread);
    bBarrier = 1;
  }
  for (i = 0; i < nThread; i++) {
    pthread_mutex_init(&a[i].mu, NULL);
    pthread_cond_init(&a[i].cond, NULL);
  }
  for (i = 0; i < nThread && rc == 0; i++) {
    a[i].q = q;
    a[i].pStart = &start;
    a[i].iThread = i;
    a[i].bSubmit = eWay == I_SUBMIT;
    if (pthread_create(&a[i].thread, NULL, inserterMain, &a[i]) != 0) {
      /* The barrier would never open: nothing to do but stop here. */
      fail("inserts", "cannot start a thread");
      exit(1);
    }
  }
  for (i = 0; i < nThread && rc == 0; i++)
    pthread_join(a[i].thread, NULL);
  for (i = 0; i < nThread && rc == 0; i++) {
    if (a[i].rc) rc = 1;
    pc->nRows += a[i].nRows;
    pc->aRows[i] += a[i].nRows;
    pc->nBusy += a[i].nBusy;
    nRowsAll += a[i].nRowsAll;
    if (samplesAppend(&pc->lat, &a[i].lat)) {
      rc = fail("inserts", "out of memory");
    }
  }
  pc->ns += (int64_t)INSERT_MS / 2 * 1000000;
  if (q) {
    sqlq_stats_t st;
    int rcClose;
    if (sqlq_stats(q, &st) == 0) {
      pc->nTxn += st.batches;
      pc->nInTxn += st.batched;
      if (st.max_batch > pc->maxTxn) pc->maxTxn = st.max_batch;
    }
    /* Joins the writer: no callback touches a[] after it. */
    rcClose = sqlq_close(q);
    if (rcClose != 0 && rc == 0) rc = sqlqFail("sqlq_close", rcClose, NULL);
  }
  for (i = 0; i < nThread; i++) {
    sqlite3_finalize(a[i].pStmt);
    sqlite3_close(a[i].db);
    samplesFree(&a[i].lat);
    pthread_cond_destroy(&a[i].cond);
    pthread_mutex_destroy(&a[i].mu);
  }
  /* Every committed row must be in the table. */
  if (rc == 0) rc = checkRows(zPath, db, nRowsAll);
  sqlite3_close(db);
  if (bBarrier) pthread_barrier_destroy(&start);
  free(a);
  removeDb(zPath);
  return rc;
}

/* Steps a statement that returns no row and resets it; an SQLite code. */
static int stepDone(sqlite3_stmt *pStmt) {
  int rc = sqlite3_step(pStmt);
  sqlite3_reset(pStmt);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
** Runs one half-window of a single-thread reference (I_HAND or I_CEIL) on
** a fresh database zPath with PRAGMA synchronous=eSync, on this thread, and
** adds the figures to pc (pc->lat: the time of each transaction by hand).
*/
static int benchReference(const char *zPath, int eSync, int eWay,
                          InsertCase *pc) {
  sqlite3 *db = NULL;
  sqlite3_stmt *pIns = NULL, *pBegin = NULL, *pCommit = NULL;
  int64_t t0, t1, tTxn, deadline, nRows = 0, nTxnRows;
  int rc, rcSql = SQLITE_OK, i;
  removeDb(zPath);
  rc = openOwn(zPath, eSync, 1, &db, &pIns);
  if (rc == 0 &&
      (sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &pBegin, NULL) !=
           SQLITE_OK ||
       sqlite3_prepare_v2(db, "COMMIT", -1, &pCommit, NULL) != SQLITE_OK)) {
    rc = fail(zPath, sqlite3_errmsg(db));
  }
  t0 = t1 = nowNs();
  deadline = t0 + (int64_t)INSERT_MS / 2 * 1000000;
  /* By hand: transactions of HAND_ROWS rows until the window ends.
  ** Ceiling: one transaction, 256 rows at a time until the window ends,
  ** then its COMMIT, which the time includes. */
  while (rc == 0 && t1 < deadline) {
    tTxn = t1;
    nTxnRows = 0;
    rcSql = stepDone(pBegin);
    do {
      for (i = 0; i < (eWay == I_HAND ? HAND_ROWS : 256); i++) {
        if (rcSql != SQLITE_OK) break;
        sqlite3_bind_int64(pIns, 1, 0);
        sqlite3_bind_int64(pIns, 2, nRows + nTxnRows + 1);
        rcSql = stepDone(pIns);
        nTxnRows += rcSql == SQLITE_OK;
      }
    } while (rcSql == SQLITE_OK && eWay == I_CEIL && nowNs() < deadline);
    if (rcSql == SQLITE_OK) rcSql = stepDone(pCommit);
    if (rcSql != SQLITE_OK) {
      rc = fail(zPath, sqlite3_errmsg(db));
      break;
    }
    t1 = nowNs();
    nRows += nTxnRows;
    pc->nTxn++;
    pc->nInTxn += nTxnRows;
    if (nTxnRows > pc->maxTxn) pc->maxTxn = nTxnRows;
    if (eWay == I_HAND && samplesAdd(&pc->lat, t1 - tTxn)) {
      rc = fail("inserts", "out of memory");
    }
    if (eWay == I_CEIL || t1 <= deadline) {
      pc->nRows += nTxnRows;
      pc->aRows[0] += nTxnRows;
    }
  }
  pc->ns += eWay == I_CEIL ? t1 - t0 : deadline - t0;
  sqlite3_finalize(pIns);
  sqlite3_finalize(pBegin);
  sqlite3_finalize(pCommit);
  if (rc == 0) rc = checkRows(zPath, db, nRows);
  sqlite3_close(db);
  removeDb(zPath);
  return rc;
}

/* Runs a half-window of eWay, a way of either kind. */
static int benchInsertWay(const char *zPath, int eSync, int eWay,
                          InsertCase *pc) {
  if (eWay == I_HAND || eWay == I_CEIL) {
    return benchReference(zPath, eSync, eWay, pc);
  }
  return benchInserts(zPath, eSync, eWay, pc);
}

/* The insert cases of section 4: [synchronous mode][thread count][way]. */
typedef InsertCase InsertCases[N_SYNC_MODES][N_INSERT_CASES][N_INSERT_WAYS];

/* True if eWay runs at thread count index i (references: at the last). */
static int insertWayRuns(int i, int eWay) {
  return (eWay != I_HAND && eWay != I_CEIL) || i == N_INSERT_CASES - 1;
}

/* Prints the row of an insert case. */
static void printInsert(const char *zName, const InsertCase *pc, int eWay) {
  int bRef = eWay == I_HAND || eWay == I_CEIL;
  char zBusy[24] = "-", zMin[24] = "-", zTxn[24] = "-";
  char zP50[24] = "-", zP99[24] = "-", zMax[24] = "-";
  if (!bRef) {
    snprintf(zBusy, sizeof(zBusy), "%lld", (long long)pc->nBusy);
    snprintf(zMin, sizeof(zMin), "%lld", (long long)pc->minRows);
  }
  if (pc->dist.n > 0) {
    snprintf(zP50, sizeof(zP50), "%.2f", pc->dist.p50 / 1e3);
    snprintf(zP99, sizeof(zP99), "%.2f", pc->dist.p99 / 1e3);
    snprintf(zMax, sizeof(zMax), "%.1f", pc->dist.max / 1e3);
  }
  if (pc->nTxn > 0) {
    snprintf(zTxn, sizeof(zTxn), eWay == I_CEIL ? "%.0f" : "%.1f",
             insertRowsPerTxn(pc));
  }
  printf("%-24s %3d %8.0f %5s %8s %6s %6s %7s %8s\n", zName, pc->nThread,
         pc->rate, zBusy, zMin, zP50, zP99, zMax, zTxn);
  fflush(stdout);
}

/*
** Section 4: runs and prints the insert cases, FULL then NORMAL; for each
** thread count, the half-windows of its ways in an order and its mirror.
*/
static int runInsertSection(const char *zIns, InsertCases *pIns) {
  static const int aOrder[] = {I_GROUP, I_SUBMIT, I_OWN, I_SINGLE};
  static const int aOrderLast[] = {I_GROUP, I_HAND,   I_SUBMIT,
                                   I_OWN,   I_SINGLE, I_CEIL};
  const char *azWay[N_INSERT_WAYS] = {
      "group commit", "batch 1", "own connections",
      NULL,           NULL,      "ceiling: one transaction"};
  char zSubmit[32], zHand[32];
  int64_t t0 = nowNs();
  int s, i, k, rc = 0;
  snprintf(zSubmit, sizeof(zSubmit), "submit, %d in flight/thr", INS_IN_FLIGHT);
  azWay[I_SUBMIT] = zSubmit;
  snprintf(zHand, sizeof(zHand), "by hand, %d rows per txn", HAND_ROWS);
  azWay[I_HAND] = zHand;
  printf("\n4. single-row inserts from 1, %d and %d threads, each acknowledged "
         "only after\n   its COMMIT, %d ms per case as two %d ms runs on fresh "
         "databases, in an\n   order and its mirror (group commit, submit, own,"
         " batch 1, batch 1, own,\n   submit, group commit; at %d threads, by"
         " hand after group commit and the\n   ceiling after batch 1).\n"
         "   group commit: sqlq_exec of SQLQ_WRITE, default options;"
         " batch 1: the same\n   with batch_max=1 (a transaction per row);"
         " own connections: a connection per\n   thread, WAL, the same"
         " synchronous, busy_timeout %d, autocommit; submit:\n   group commit"
         " by sqlq_submit, up to %d in flight per thread (latency: from\n"
         "   submit to callback).  By hand: one thread and connection,"
         " prepared INSERT,\n   BEGIN IMMEDIATE, %d inserts, COMMIT, again"
         " (latency: of a transaction).\n   Ceiling: one thread, as many rows"
         " as fit in a run in one transaction, the\n   time including its"
         " COMMIT.  Rows/s counts rows acknowledged within the runs;\n"
         "   latencies (ms) are of acknowledged inserts (BUSY failures are"
         " counted apart);\n   rows/txn: sqlq_stats batched / batches for the"
         " writer.\n",
         aInsertThreads[1], aInsertThreads[2], INSERT_MS, INSERT_MS / 2,
         aInsertThreads[N_INSERT_CASES - 1], BUSY_MS, INS_IN_FLIGHT, HAND_ROWS);
  for (s = 0; s < N_SYNC_MODES && rc == 0; s++) {
    printf("\n   synchronous=%s\n", azSyncMode[s]);
    printf("%-24s %3s %8s %5s %8s %6s %6s %7s %8s\n", "case", "thr", "rows/s",
           "BUSY", "min rows", "p50 ms", "p99 ms", "max ms", "rows/txn");
    for (i = 0; i < N_INSERT_CASES && rc == 0; i++) {
      int bLast = i == N_INSERT_CASES - 1;
      const int *aOrd = bLast ? aOrderLast : aOrder;
      int n = bLast ? (int)(sizeof(aOrderLast) / sizeof(int))
                    : (int)(sizeof(aOrder) / sizeof(int));
      for (k = 0; k < N_INSERT_WAYS && rc == 0; k++) {
        int bRef = k == I_HAND || k == I_CEIL;
        rc = insertInit(&(*pIns)[s][i][k], bRef ? 1 : aInsertThreads[i]);
      }
      for (k = 0; k < 2 * n && rc == 0; k++) {
        int eWay = aOrd[k < n ? k : 2 * n - 1 - k];
        rc = benchInsertWay(zIns, aSyncMode[s], eWay, &(*pIns)[s][i][eWay]);
      }
      for (k = 0; k < N_INSERT_WAYS && rc == 0; k++) {
        if (!insertWayRuns(i, k) || k == I_HAND || k == I_CEIL) continue;
        insertFinish(&(*pIns)[s][i][k]);
        printInsert(azWay[k], &(*pIns)[s][i][k], k);
      }
    }
    for (k = I_HAND; k <= I_CEIL && rc == 0; k++) {
      insertFinish(&(*pIns)[s][N_INSERT_CASES - 1][k]);
      printInsert(azWay[k], &(*pIns)[s][N_INSERT_CASES - 1][k], k);
    }
    if (rc == 0) {
      printf("the writer's transactions (sqlq_stats), rows/txn mean (max):\n");
      for (k = I_GROUP; k <= I_SUBMIT; k++) {
        if (k == I_OWN) continue;
        printf("  %-24s", azWay[k]);
        for (i = 0; i < N_INSERT_CASES; i++) {
          const InsertCase *pc = &(*pIns)[s][i][k];
          printf("  %d thr %.1f (%lld)", pc->nThread, insertRowsPerTxn(pc),
                 (long long)pc->maxTxn);
        }
        printf("\n");
      }
    }
  }
  if (rc == 0) {
    printf("\nmeasured before, not run here (references):\n"
           "  Datasette execute_write, 1, 16 or 64 callers   ~%.1fk "
           "inserts/s\n"
           "  autocommit inserts, one thread (FULL)           %.1fk/s\n"
           "  64 own-connection threads                       %.1fk/s, "
           "~%d SQLITE_BUSY a run\n"
           "  by hand, 100 rows per txn                       %.0fk rows/s\n"
           "  by hand, 1000 rows per txn                      %.2fM rows/s\n"
           "  one transaction of 1M rows                      %.2fM rows/s\n",
           DS_WRITE / 1e3, BEFORE_AUTOCOMMIT / 1e3, BEFORE_OWN_64 / 1e3,
           BEFORE_OWN_64_BUSY, BEFORE_HAND_100 / 1e3, BEFORE_HAND_1000 / 1e6,
           BEFORE_ONE_TXN / 1e6);
    printf("section 4 took %.1f s\n", (double)(nowNs() - t0) / 1e9);
    fflush(stdout);
  }
  return rc;
}

/* ---- reads during a write ---- */

/* What the long write task and the reading thread share. */
typedef struct Hold Hold;
struct Hold {
  pthread_mutex_t mu;
  pthread_cond_t cond; /* Signalled when bStarted or bDone is set */
  int bStarted;        /* The task's function has inserted its row */
  atomic_int bEnding;  /* The function is about to return */
  int bDone;           /* The task's completion has run */
  int status;          /* Its status */
};

/* The WRITE_FN task: inserts, signals, sleeps in the transaction. */
static int holdFn(sqlite3 *db, void *arg) {
  Hold *h = arg;
  int rc = sqlite3_exec(db, "INSERT INTO side(x) VALUES(1)", NULL, NULL, NULL);
  pthread_mutex_lock(&h->mu);
  h->bStarted = 1;
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->mu);
  if (rc == SQLITE_OK) sleepMs(HOLD_MS);
  atomic_store(&h->bEnding, 1);
  return rc;
}

static void holdDone(sqlq_result *r, void *udata) {
  Hold *h = udata;
  pthread_mutex_lock(&h->mu);
  h->status = sqlq_result_status(r);
  h->bDone = 1;
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->mu);
}

/*
** Times up to LAT_ITERS back-to-back key lookups by sqlq_exec(), stopping
** early if *pbStop turns nonzero (the reads after it are not counted).
*/
static int timeLookups(sqlq *q, atomic_int *pbStop, Dist *pd) {
  sqlq_call c;
  sqlq_value v;
  sqlq_result *r = NULL;
  uint64_t rng = 7;
  int64_t *a, t0, t1;
  size_t n = 0;
  int rc = 0, status;
  a = malloc(sizeof(int64_t) * LAT_ITERS);
  if (a == NULL) return fail("lookups", "out of memory");
  memset(&c, 0, sizeof(c));
  c.kind = SQLQ_READ;
  c.sql = KV_SQL;
  c.params = &v;
  c.nparams = 1;
  while (n < LAT_ITERS && rc == 0) {
    v = sqlq_int(randomKey(&rng));
    t0 = nowNs();
    status = sqlq_exec(q, &c, &r);
    t1 = nowNs();
    if (status != 0) {
      rc = sqlqFail("sqlq_exec " KV_SQL, status, r);
    } else if (!readRight(r, 1)) {
      rc = fail("sqlq_exec " KV_SQL, "wrong result");
    }
    sqlq_result_free(r);
    if (pbStop && atomic_load(pbStop)) break;
    a[n++] = t1 - t0;
  }
  if (rc == 0) *pd = distOf(a, n);
  free(a);
  return rc;
}

/*
** Times the lookups idle (after a warm-up) into *pIdle, then while a
** WRITE_FN task holds the writer's transaction for HOLD_MS into *pHeld.
*/
static int benchHeldReads(sqlq *q, Dist *pIdle, Dist *pHeld) {
  Hold h;
  sqlq_call c;
  Dist warm;
  int64_t id;
  int rc;
  memset(&h, 0, sizeof(h));
  pthread_mutex_init(&h.mu, NULL);
  pthread_cond_init(&h.cond, NULL);
  rc = timeLookups(q, NULL, &warm);
  if (rc == 0) rc = timeLookups(q, NULL, pIdle);
  if (rc == 0) {
    memset(&c, 0, sizeof(c));
    c.kind = SQLQ_WRITE_FN;
    c.fn = holdFn;
    c.arg = &h;
    c.done = holdDone;
    c.udata = &h;
    id = sqlq_submit(q, &c);
    if (id < 0) {
      rc = sqlqFail("sqlq_submit WRITE_FN", (int)id, NULL);
    } else {
      pthread_mutex_lock(&h.mu);
      while (!h.bStarted && !h.bDone)
        pthread_cond_wait(&h.cond, &h.mu);
      pthread_mutex_unlock(&h.mu);
      rc = timeLookups(q, &h.bEnding, pHeld);
      pthread_mutex_lock(&h.mu);
      while (!h.bDone)
        pthread_cond_wait(&h.cond, &h.mu);
      pthread_mutex_unlock(&h.mu);
      if (rc == 0 && h.status != 0) {
        rc = sqlqFail("the WRITE_FN task", h.status, NULL);
      }
    }
  }
  pthread_cond_destroy(&h.cond);
  pthread_mutex_destroy(&h.mu);
  return rc;
}

/* ---- the report ---- */

static void printDist(const char *zName, const Dist *d, double rate) {
  printf("%-44s %7zu %8.2f %8.2f %9.0f\n", zName, d->n, d->p50, d->p99, rate);
  fflush(stdout);
}

/* Prints a row of the targets table. */
static void printTarget(const char *zName, const char *zMeasured,
                        const char *zTarget, int bMet) {
  printf("%-44s %12s %12s  %s\n", zName, zMeasured, zTarget,
         bMet ? "met" : "not met");
}

/* Creates the lookup table, of KV_ROWS rows, through the handle. */
static int setupKv(sqlq *q) {
  sqlq_call c;
  sqlq_result *r = NULL;
  char zSql[512];
  int rc;
  snprintf(zSql, sizeof(zSql),
           "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT);"
           "CREATE TABLE side(x INT);"
           "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c"
           " WHERE x<%d)"
           " INSERT INTO kv SELECT x, printf('value %%d', x) FROM c;",
           KV_ROWS);
  memset(&c, 0, sizeof(c));
  c.kind = SQLQ_SCRIPT;
  c.sql = zSql;
  rc = sqlq_exec(q, &c, &r);
  if (rc != 0) rc = sqlqFail("creating the lookup table", rc, r);
  sqlq_result_free(r);
  return rc;
}

int main(int argc, char **argv) {
  char zDb[4096], zIns[4096];
  sqlq *q = NULL;
  Series aSer[N_SERIES];
  Dist aDist[N_SERIES], idle = {0, 0, 0, 0}, held = idle;
  double aRate[N_SERIES];
  double cvRatio = 0, cv2Ratio = 0, efdRatio = 0, directRatio = 0;
  static ReadCases aRead;
  InsertCases aIns, *pIns = &aIns;
  int64_t tRun = nowNs();
  int i, k, s, rc = 0, bReadsOnly;
  static const char *azSeries[N_SERIES] = {
      "condvar ping-pong, signal under the lock",
      "condvar ping-pong, signal after unlock",
      "eventfd ping-pong",
      "direct SELECT 1, one connection",
      "direct pk lookup, one connection",
      "sqlq_exec",
      "sqlq_submit + poll(sqlq_fd) + sqlq_dispatch",
  };
  if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "reads") != 0)) {
    fprintf(stderr, "usage: bench_sqlq DIR [reads] (DIR: an existing "
                    "scratch directory; reads: sections 1 to 3 only)\n");
    return 1;
  }
  bReadsOnly = argc == 3;
  memset(aSer, 0, sizeof(aSer));
  memset(aDist, 0, sizeof(aDist));
  memset(aRate, 0, sizeof(aRate));
  memset(aIns, 0, sizeof(aIns));
  snprintf(zDb, sizeof(zDb), "%s/bench.db", argv[1]);
  snprintf(zIns, sizeof(zIns), "%s/insert.db", argv[1]);
  removeDb(zDb);

  printf("sqlq benchmark: SQLite %s, %ld CPUs online, files in %s\n"
         "File databases in WAL mode, synchronous=FULL, 2 reader threads, "
         "4 read\nconnections per core (the defaults).  Times in us unless "
         "marked.\n\n",
         sqlite3_libversion(), sysconf(_SC_NPROCESSORS_ONLN), argv[1]);
  fflush(stdout);

  rc = sqlq_open(zDb, NULL, &q);
  if (rc != 0) {
    fprintf(stderr, "bench_sqlq: sqlq_open %s: %s (%d)\n", zDb,
            sqlq_strerror(rc), rc);
    return 1;
  }
  rc = setupKv(q);

  /* 1 and 2: floors and round trips, interleaved. */
  if (rc == 0) rc = benchRoundTrips(q, zDb, aSer);
  if (rc == 0) {
    cvRatio = roundRatio(&aSer[S_EXEC], &aSer[S_CONDVAR], RTT_ITERS / ROUNDS);
    cv2Ratio = roundRatio(&aSer[S_EXEC], &aSer[S_CONDVAR2], RTT_ITERS / ROUNDS);
    efdRatio = roundRatio(&aSer[S_EXEC], &aSer[S_EVENTFD], RTT_ITERS / ROUNDS);
    directRatio =
        roundRatio(&aSer[S_EXEC], &aSer[S_DIRECT1], RTT_ITERS / ROUNDS);
  }
  for (i = 0; i < N_SERIES && rc == 0; i++) {
    aRate[i] = seriesRate(&aSer[i]);
    aDist[i] = distOf(aSer[i].lat.a, aSer[i].lat.n);
  }
  if (rc == 0) {
    printf("Sections 1 and 2 run interleaved, in %d rounds, so that the "
           "machine's changes\nof speed hit every case alike.\n\n",
           ROUNDS);
    printf("1. floors\n");
    printf("%-44s %7s %8s %8s %9s\n", "case", "n", "p50", "p99", "calls/s");
    for (i = S_CONDVAR; i <= S_DIRECTKEY; i++) {
      printDist(azSeries[i], &aDist[i], aRate[i]);
    }
    printf("\n2. round trip of SELECT 1 from one thread, one call at a "
           "time\n");
    printf("%-44s %7s %8s %8s %9s\n", "case", "n", "p50", "p99", "calls/s");
    for (i = S_EXEC; i <= S_DISPATCH; i++) {
      printDist(azSeries[i], &aDist[i], aRate[i]);
    }
    printf("sqlq_exec p50 / ping-pong p50 (median of the per-round "
           "ratios): condvar, signal\n  under the lock %.2fx; after unlock "
           "%.2fx; eventfd %.2fx\n",
           cvRatio, cv2Ratio, efdRatio);
    printf("Datasette execute(\"select 1\"), measured before (Python, not "
           "run here):\n  p50 %.0f us, %.1fk calls/s from one caller.  "
           "Its p50 / sqlq_exec p50: %.1fx;\n  sqlq_exec calls/s / its: "
           "%.1fx\n",
           DS_EXEC_P50_US, DS_READ_1 / 1e3, DS_EXEC_P50_US / aDist[S_EXEC].p50,
           aRate[S_EXEC] / DS_READ_1);
    fflush(stdout);
  }

  /* 3. Reads by thread count. */
  if (rc == 0) rc = runReadSection(q, zDb, &aRead);

  /* 4. Inserts. */
  if (rc == 0 && !bReadsOnly) rc = runInsertSection(zIns, pIns);

  /* 5. Reads during a write. */
  if (rc == 0 && !bReadsOnly) {
    printf("\n5. pk lookups by sqlq_exec from one thread, back to back "
           "(up to %d)\n",
           LAT_ITERS);
    printf("%-44s %7s %8s %8s %9s\n", "case", "n", "p50", "p99", "max");
    rc = benchHeldReads(q, &idle, &held);
  }
  if (rc == 0 && !bReadsOnly) {
    printf("%-44s %7zu %8.2f %8.2f %9.1f\n", "idle", idle.n, idle.p50, idle.p99,
           idle.max);
    printf("%-44s %7zu %8.2f %8.2f %9.1f\n",
           "the writer inside a 1 s write transaction", held.n, held.p50,
           held.p99, held.max);
    fflush(stdout);
  }

  if (q) {
    int rcClose = sqlq_close(q);
    if (rcClose != 0 && rc == 0) rc = sqlqFail("sqlq_close", rcClose, NULL);
  }
  removeDb(zDb);

  /* Targets. */
  if (rc == 0 && !bReadsOnly) {
    const Dist *pRtt = &aDist[S_EXEC];
    char zM[64], zT[64];
    printf("\ntargets (informational)\n");
    printf("%-44s %12s %12s\n", "target", "measured", "target");
    snprintf(zM, sizeof(zM), "%.2f us", pRtt->p50);
    snprintf(zT, sizeof(zT), "<= %.0f us", TARGET_RTT_US);
    printTarget("sqlq_exec SELECT 1 round trip p50", zM, zT,
                pRtt->p50 <= TARGET_RTT_US);
    snprintf(zM, sizeof(zM), "%.2fx", cvRatio);
    snprintf(zT, sizeof(zT), "<= %.1fx", TARGET_RTT_CV);
    printTarget("  / condvar p50, signal under lock, here", zM, zT,
                cvRatio <= TARGET_RTT_CV);
    snprintf(zM, sizeof(zM), "%.1fx", DS_EXEC_P50_US / pRtt->p50);
    snprintf(zT, sizeof(zT), ">= %.0fx", TARGET_VS_DS);
    printTarget("  faster than Datasette's 60 us p50", zM, zT,
                DS_EXEC_P50_US / pRtt->p50 >= TARGET_VS_DS);
    snprintf(zM, sizeof(zM), "%.2fx", directRatio);
    snprintf(zT, sizeof(zT), "<= %.0fx", TARGET_EXEC_VS_DIRECT);
    printTarget("  / direct SELECT 1 p50 (median of rounds)", zM, zT,
                directRatio <= TARGET_EXEC_VS_DIRECT);
    for (i = 0; i < N_READ_COUNTS; i++) {
      const ReadCase *pExec = &aRead[1][i][W_EXEC];
      const ReadCase *pOwn = &aRead[1][i][W_OWN];
      char zName[64];
      if (aReadThreads[i] != 1 && aReadThreads[i] != 16) continue;
      snprintf(zName, sizeof(zName), "pk lookup, %d thr: sqlq_exec / own conn",
               aReadThreads[i]);
      snprintf(zM, sizeof(zM), "%.2fx", readRatio(pExec, pOwn));
      snprintf(zT, sizeof(zT), ">= %.1fx", TARGET_EXEC_VS_OWN);
      printTarget(zName, zM, zT, readRatio(pExec, pOwn) >= TARGET_EXEC_VS_OWN);
      if (aReadThreads[i] != 16) continue;
      snprintf(zM, sizeof(zM), "%.2fx", pExec->dist.p99 / pOwn->dist.p99);
      snprintf(zT, sizeof(zT), "<= %.0fx", TARGET_P99_VS_OWN);
      printTarget("  p99 / own connection p99", zM, zT,
                  pExec->dist.p99 <= TARGET_P99_VS_OWN * pOwn->dist.p99);
    }
    for (k = 0; k < 2; k++) {
      for (i = W_EXEC; i <= W_SUBMIT; i++) {
        const ReadCase *pc = &aRead[k][N_READ_COUNTS - 1][i];
        double rate = (double)pc->nCalls / ((double)pc->ns / 1e9);
        char zName[64];
        snprintf(zName, sizeof(zName), "16 thr: %s, %s",
                 k ? "pk lookup" : "SELECT 1", azReadWay[i]);
        snprintf(zM, sizeof(zM), "%.0fk/s", rate / 1e3);
        snprintf(zT, sizeof(zT), ">= %.0fk/s", TARGET_READS * DS_READ_16 / 1e3);
        printTarget(zName, zM, zT, rate >= TARGET_READS * DS_READ_16);
      }
    }
    {
      /* 64 submitters, synchronous=FULL (the first mode). */
      const InsertCase *w = &aIns[0][N_INSERT_CASES - 1][I_GROUP];
      const InsertCase *h = &aIns[0][N_INSERT_CASES - 1][I_HAND];
      const InsertCase *o = &aIns[0][N_INSERT_CASES - 1][I_OWN];
      char zName[64];
      snprintf(zName, sizeof(zName), "inserts, %d threads, %s, group commit",
               w->nThread, azSyncMode[0]);
      printf("%s\n", zName);
      snprintf(zM, sizeof(zM), "%.0fk/s", w->rate / 1e3);
      snprintf(zT, sizeof(zT), ">= %.0fk/s", TARGET_INS_RATE / 1e3);
      printTarget("  acknowledged rows/s", zM, zT, w->rate >= TARGET_INS_RATE);
      snprintf(zM, sizeof(zM), "%.2fx", h->rate > 0 ? w->rate / h->rate : 0);
      snprintf(zT, sizeof(zT), ">= %.1fx", TARGET_INS_VS_HAND);
      snprintf(zName, sizeof(zName), "  / by hand, %d rows per txn, same run",
               HAND_ROWS);
      printTarget(zName, zM, zT, w->rate >= TARGET_INS_VS_HAND * h->rate);
      snprintf(zM, sizeof(zM), "%.2f ms", w->dist.p99 / 1e3);
      snprintf(zT, sizeof(zT), "<= %.0f ms", TARGET_INS_P99_MS);
      printTarget("  p99 latency of an acknowledged insert", zM, zT,
                  w->dist.n > 0 && w->dist.p99 <= TARGET_INS_P99_MS * 1e3);
      snprintf(zM, sizeof(zM), "%lld", (long long)w->nBusy);
      printTarget("  SQLITE_BUSY", zM, "0", w->nBusy == 0);
      snprintf(zM, sizeof(zM), "%lld", (long long)w->minRows);
      printTarget("  fewest rows of a thread (not starved)", zM, "> 0",
                  w->minRows > 0);
      /* The restatements of the rate target, and this run's. */
      snprintf(zM, sizeof(zM), "%.1fx", w->rate / DS_WRITE);
      snprintf(zT, sizeof(zT), "%.0fx at %.0fk", TARGET_INS_RATE / DS_WRITE,
               TARGET_INS_RATE / 1e3);
      printf("%-44s %12s %12s\n", "  / Datasette execute_write, 3.3k/s before",
             zM, zT);
      snprintf(zM, sizeof(zM), "%.1fx", w->rate / BEFORE_OWN_64);
      snprintf(zT, sizeof(zT), "%.0fx at %.0fk",
               TARGET_INS_RATE / BEFORE_OWN_64, TARGET_INS_RATE / 1e3);
      printf("%-44s %12s %12s\n", "  / 64 own connections, 9.2k/s before", zM,
             zT);
      snprintf(zM, sizeof(zM), "%.1fx", o->rate > 0 ? w->rate / o->rate : 0);
      printf("%-44s %12s %12s\n", "  / 64 own connections, this run", zM,
             "none");
    }
    for (s = 0; s < N_SYNC_MODES; s++) {
      /* Group commit groups: more than one row per transaction. */
      const InsertCase *p16 = &aIns[s][1][I_GROUP];
      const InsertCase *p64 = &aIns[s][2][I_GROUP];
      char zName[64];
      snprintf(zName, sizeof(zName), "group commit rows/txn, %s, %d & %d thr",
               azSyncMode[s], p16->nThread, p64->nThread);
      snprintf(zM, sizeof(zM), "%.1f, %.1f", insertRowsPerTxn(p16),
               insertRowsPerTxn(p64));
      printTarget(zName, zM, "> 1",
                  insertRowsPerTxn(p16) > 1 && insertRowsPerTxn(p64) > 1);
    }
    snprintf(zM, sizeof(zM), "%.0f us", held.max);
    snprintf(zT, sizeof(zT), "< %d ms", HOLD_MS);
    printTarget("reads during the 1 s write: max (not blocked)", zM, zT,
                held.max < HOLD_MS * 1e3);
    snprintf(zM, sizeof(zM), "%.2fx", held.p99 / idle.p99);
    printf("%-44s %12s %12s\n", "  p99 during / p99 idle", zM, "none");
    printf("\nrun time %.1f s\n", (double)(nowNs() - tRun) / 1e9);
  }
  for (i = 0; i < N_SERIES; i++)
    samplesFree(&aSer[i].lat);
  readFree(&aRead);
  for (s = 0; s < N_SYNC_MODES; s++) {
    for (i = 0; i < N_INSERT_CASES; i++) {
      for (k = 0; k < N_INSERT_WAYS; k++)
        insertFree(&aIns[s][i][k]);
    }
  }
  return rc ? 1 : 0;
}
