/*
** bench_sqlq.c: the benchmark of the sqlq library, run by "make bench" as
** "bench_sqlq DIR", where DIR is an existing scratch directory for the
** database files (it removes the files it makes).  It measures, in one
** process, on file databases in WAL mode with the default options (2
** readers, synchronous=FULL), everything the issue asks for side by side:
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
**   3. reads   16 submitting threads for a fixed time each, against 2
**              readers: "SELECT 1" and a primary key lookup of a random key
**              among KV_ROWS rows, each by sqlq_exec() (one call at a time
**              per thread) and by sqlq_submit() with up to 64 calls in
**              flight per thread (the callback, on the worker, counts the
**              completion; the thread waits on a condvar at the cap).  The
**              context switches of the process per call come from
**              getrusage().
**
**   4. inserts 1, 16 and 64 threads inserting single rows for a fixed time,
**              through the writer (sqlq_exec() of SQLQ_WRITE, default
**              options, so with group commit), through the writer with
**              batch_max=1 (a transaction, so an fsync, per row), and each
**              thread with a connection of its own (WAL, synchronous=FULL,
**              busy_timeout 5000, autocommit).  The speed of fsync on a
**              shared disk changes several-fold within seconds, so each
**              case runs as two half-windows on fresh databases, in the
**              order writer, own, batch 1, batch 1, own, writer.  Rows/s
**              counts the rows committed within the windows; latencies
**              count every attempt, including those that failed with
**              SQLITE_BUSY after the busy timeout.  Rows per transaction
**              come from sqlq_stats().
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
#define READ_THREADS 16    /* Submitting threads of the read section */
#define READ_MS 2000       /* How long each read case runs */
#define IN_FLIGHT 64       /* Submitted and not completed, per thread */
#define INSERT_MS 2000     /* How long each insert case runs */
#define BUSY_MS 5000       /* busy_timeout of the own connections */
#define LAT_ITERS 2000     /* Timed reads, idle and during the write */
#define HOLD_MS 1000       /* How long the write transaction stays open */

/* Figures measured before the work started (Python, not run here). */
#define DS_EXEC_P50_US 60.0 /* Datasette execute("select 1") p50 */
#define DS_READ_1 14800.0   /* ... calls/s from one caller */
#define DS_READ_16 22700.0  /* ... calls/s from 16 concurrent callers */
#define DS_WRITE 3300.0     /* execute_write single-row inserts/s */

/* The targets of the issue. */
#define TARGET_RTT_US 12.0 /* sqlq_exec select 1 p50, at most */
#define TARGET_RTT_CV 1.5  /* ... as a multiple of the condvar p50 */
#define TARGET_VS_DS 5.0   /* Datasette p50 / sqlq p50, at least */
#define TARGET_READS 10.0  /* 16-thread reads / DS_READ_16, at least */

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

/* xorshift64*: the random keys of a thread. */
static uint64_t nextRandom(uint64_t *pState) {
  uint64_t x = *pState;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *pState = x;
  return x * 2685821657736338717ULL;
}

static int64_t randomKey(uint64_t *pState) {
  return 1 + (int64_t)(nextRandom(pState) % KV_ROWS);
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

/* ---- reads from 16 threads ---- */

/* One submitting thread of the read section. */
typedef struct Caller Caller;
struct Caller {
  sqlq *q;                   /* The handle */
  pthread_barrier_t *pStart; /* Every thread starts at once */
  int bKey;                  /* Primary key lookups, not SELECT 1 */
  int bSubmit;               /* sqlq_submit() with callbacks */
  uint64_t rng;              /* Random keys */
  pthread_t thread;
  int64_t tStart, tEnd; /* When it began and ended */
  int64_t nCalls;       /* sqlq_exec() calls that succeeded */
  int rc;               /* Nonzero if it failed (printed) */
  /* sqlq_submit() mode */
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

static void *callerMain(void *pArg) {
  Caller *p = pArg;
  sqlq_call c;
  sqlq_value v;
  sqlq_result *r = NULL;
  int64_t deadline, id;
  int status;
  memset(&c, 0, sizeof(c));
  c.kind = SQLQ_READ;
  c.sql = p->bKey ? KV_SQL : "SELECT 1";
  c.params = p->bKey ? &v : NULL;
  c.nparams = p->bKey ? 1 : 0;
  c.done = callerDone;
  c.udata = p;
  pthread_barrier_wait(p->pStart);
  p->tStart = nowNs();
  deadline = p->tStart + (int64_t)READ_MS * 1000000;
  while (nowNs() < deadline) {
    v = sqlq_int(randomKey(&p->rng));
    if (p->bSubmit) {
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
        break;
      }
    } else {
      status = sqlq_exec(p->q, &c, &r);
      if (status != 0) {
        p->rc = sqlqFail("sqlq_exec (reads)", status, r);
      } else if (!readRight(r, p->bKey)) {
        p->rc = fail("sqlq_exec (reads)", "wrong result");
      }
      sqlq_result_free(r);
      if (p->rc) break;
      p->nCalls++;
    }
  }
  if (p->bSubmit) callerWaitBelow(p, 1);
  p->tEnd = nowNs();
  return NULL;
}

/* Context switches of the process so far, voluntary or not. */
static int64_t contextSwitches(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (int64_t)ru.ru_nvcsw + (int64_t)ru.ru_nivcsw;
}

/*
** Runs READ_THREADS callers for READ_MS each; *pRate is the calls that
** succeeded per second of the span from the first start to the last end,
** *pCsw the context switches of the process per call.
*/
static int benchReads(sqlq *q, int bKey, int bSubmit, int64_t *pnCalls,
                      double *pRate, double *pCsw) {
  Caller *a = calloc(READ_THREADS, sizeof(Caller));
  pthread_barrier_t start;
  int64_t t0 = INT64_MAX, t1 = 0, nCalls = 0, nCsw = contextSwitches();
  int i, nStarted = 0, rc = 0;
  if (a == NULL) return fail("reads", "out of memory");
  pthread_barrier_init(&start, NULL, READ_THREADS);
  for (i = 0; i < READ_THREADS; i++) {
    a[i].q = q;
    a[i].pStart = &start;
    a[i].bKey = bKey;
    a[i].bSubmit = bSubmit;
    a[i].rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
    pthread_mutex_init(&a[i].mu, NULL);
    pthread_cond_init(&a[i].cond, NULL);
  }
  for (i = 0; i < READ_THREADS; i++) {
    if (pthread_create(&a[i].thread, NULL, callerMain, &a[i]) != 0) break;
    nStarted++;
  }
  if (nStarted < READ_THREADS) {
    /* The barrier would never open: nothing to do but stop here. */
    fail("reads", "cannot start a thread");
    exit(1);
  }
  for (i = 0; i < READ_THREADS; i++) {
    pthread_join(a[i].thread, NULL);
    if (a[i].rc) rc = 1;
    if (atomic_load(&a[i].nBad) > 0 && rc == 0) {
      rc = sqlqFail("read callback", atomic_load(&a[i].firstBad), NULL);
    }
    nCalls += a[i].nCalls + atomic_load(&a[i].nOk);
    if (a[i].tStart < t0) t0 = a[i].tStart;
    if (a[i].tEnd > t1) t1 = a[i].tEnd;
    pthread_cond_destroy(&a[i].cond);
    pthread_mutex_destroy(&a[i].mu);
  }
  nCsw = contextSwitches() - nCsw;
  pthread_barrier_destroy(&start);
  free(a);
  *pCsw = nCalls ? (double)nCsw / (double)nCalls : 0;
  *pnCalls = nCalls;
  *pRate = (double)nCalls / ((double)(t1 - t0) / 1e9);
  return rc;
}

/* ---- inserts ---- */

/* One inserting thread. */
typedef struct Inserter Inserter;
struct Inserter {
  sqlq *q;                   /* Through the writer, or */
  sqlite3 *db;               /* its own connection */
  sqlite3_stmt *pStmt;       /* The INSERT, on db */
  pthread_barrier_t *pStart; /* Every thread starts at once */
  int iThread;               /* Its number, stored in the rows */
  pthread_t thread;
  int64_t nRows;    /* Rows committed within the window */
  int64_t nRowsAll; /* Rows committed, also after the window */
  int64_t nBusy;    /* Inserts that failed with SQLITE_BUSY */
  Samples lat;      /* Latency of every attempt */
  int rc;           /* Nonzero if it failed (printed) */
};

static void *inserterMain(void *pArg) {
  Inserter *p = pArg;
  sqlq_call c;
  sqlq_value av[2];
  sqlq_result *r = NULL;
  int64_t deadline, t0, t1, iVal = 0;
  int status;
  memset(&c, 0, sizeof(c));
  c.kind = SQLQ_WRITE;
  c.sql = INSERT_SQL;
  c.params = av;
  c.nparams = 2;
  pthread_barrier_wait(p->pStart);
  deadline = nowNs() + (int64_t)INSERT_MS / 2 * 1000000;
  while ((t0 = nowNs()) < deadline && p->rc == 0) {
    iVal++;
    if (p->q) {
      av[0] = sqlq_int(p->iThread);
      av[1] = sqlq_int(iVal);
      status = sqlq_exec(p->q, &c, &r);
      if (status > 0 && (status & 0xff) == SQLITE_BUSY) {
        p->nBusy++;
      } else if (status != 0) {
        p->rc = sqlqFail("sqlq_exec INSERT", status, r);
      }
      sqlq_result_free(r);
    } else {
      sqlite3_bind_int64(p->pStmt, 1, p->iThread);
      sqlite3_bind_int64(p->pStmt, 2, iVal);
      status = sqlite3_step(p->pStmt);
      if ((status & 0xff) == SQLITE_BUSY) {
        p->nBusy++;
      } else if (status != SQLITE_DONE) {
        p->rc = fail("INSERT (own connection)", sqlite3_errmsg(p->db));
      } else {
        status = 0;
      }
      sqlite3_reset(p->pStmt);
    }
    t1 = nowNs();
    if (samplesAdd(&p->lat, t1 - t0)) {
      p->rc = fail("inserts", "out of memory");
    }
    if (status == 0) {
      p->nRowsAll++;
      if (t1 <= deadline) p->nRows++;
    }
  }
  return NULL;
}

/* The figures of one insert case, gathered over its two half-windows. */
typedef struct InsertCase InsertCase;
struct InsertCase {
  int nThread;     /* Submitting threads */
  int64_t nRows;   /* Rows committed within the windows */
  int64_t nBusy;   /* SQLITE_BUSY failures */
  int64_t *aRows;  /* Rows of each thread within the windows */
  Samples lat;     /* Latency of every attempt */
  int64_t nTxn;    /* The writer's group-commit transactions (sqlq_stats) */
  int64_t nInTxn;  /* Tasks in them */
  double rate;     /* Set by insertFinish(): rows per second */
  int64_t minRows; /* ... the fewest rows of any thread */
  Dist dist;       /* ... the latency of an attempt, us */
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
  pc->rate = (double)pc->nRows / (INSERT_MS / 1e3);
  pc->minRows = pc->aRows[0];
  for (i = 1; i < pc->nThread; i++) {
    if (pc->aRows[i] < pc->minRows) pc->minRows = pc->aRows[i];
  }
  pc->dist = distOf(pc->lat.a, pc->lat.n);
}

static void insertFree(InsertCase *pc) {
  free(pc->aRows);
  samplesFree(&pc->lat);
  memset(pc, 0, sizeof(*pc));
}

/* The ways of inserting that section 4 compares. */
enum {
  I_WRITER, /* Through the writer, default options (group commit) */
  I_OWN,    /* A connection per thread */
  I_SINGLE, /* Through the writer with batch_max=1: a transaction per row */
  N_INSERT_WAYS
};

/*
** Runs one half-window of an insert case on a fresh database zPath:
** pc->nThread threads inserting in the way eWay (I_*), and adds the figures
** to pc.  Checks that the table holds every row reported committed.
*/
static int benchInserts(const char *zPath, int eWay, InsertCase *pc) {
  int nThread = pc->nThread;
  Inserter *a = calloc((size_t)nThread, sizeof(Inserter));
  pthread_barrier_t start;
  sqlq *q = NULL;
  sqlite3 *db = NULL;
  sqlite3_stmt *pCount = NULL;
  int64_t nRowsAll = 0, nCounted = -1;
  int i, rc = 0, bBarrier = 0;
  const char *zTable = "CREATE TABLE t(id INTEGER PRIMARY KEY, thread INT,"
                       " v INT)";
  if (a == NULL) return fail("inserts", "out of memory");
  removeDb(zPath);
  if (eWay == I_OWN) {
    if (sqlite3_open(zPath, &db) != SQLITE_OK) {
      rc = fail(zPath, sqlite3_errmsg(db));
    } else {
      rc = exec(db, "PRAGMA journal_mode=WAL");
      if (rc == 0) rc = exec(db, zTable);
    }
    for (i = 0; i < nThread && rc == 0; i++) {
      if (sqlite3_open(zPath, &a[i].db) != SQLITE_OK) {
        rc = fail(zPath, sqlite3_errmsg(a[i].db));
      } else if (sqlite3_busy_timeout(a[i].db, BUSY_MS) != SQLITE_OK ||
                 exec(a[i].db, "PRAGMA synchronous=FULL")) {
        rc = fail(zPath, sqlite3_errmsg(a[i].db));
      } else if (sqlite3_prepare_v2(a[i].db, INSERT_SQL, -1, &a[i].pStmt,
                                    NULL) != SQLITE_OK) {
        rc = fail(INSERT_SQL, sqlite3_errmsg(a[i].db));
      }
    }
  } else {
    sqlq_call c;
    sqlq_options o;
    sqlq_result *r = NULL;
    memset(&o, 0, sizeof(o));
    if (eWay == I_SINGLE) o.batch_max = 1;
    rc = sqlq_open(zPath, &o, &q);
    if (rc != 0) {
      rc = sqlqFail("sqlq_open (inserts)", rc, NULL);
    } else {
      memset(&c, 0, sizeof(c));
      c.kind = SQLQ_SCRIPT;
      c.sql = zTable;
      rc = sqlq_exec(q, &c, &r);
      if (rc != 0) rc = sqlqFail(zTable, rc, r);
      sqlq_result_free(r);
    }
  }
  if (rc == 0) {
    pthread_barrier_init(&start, NULL, (unsigned)nThread);
    bBarrier = 1;
  }
  for (i = 0; i < nThread && rc == 0; i++) {
    a[i].q = q;
    a[i].pStart = &start;
    a[i].iThread = i;
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
  for (i = 0; i < nThread; i++) {
    sqlite3_finalize(a[i].pStmt);
    sqlite3_close(a[i].db);
    samplesFree(&a[i].lat);
  }
  if (q) {
    sqlq_stats_t st;
    int rcClose;
    if (sqlq_stats(q, &st) == 0) {
      pc->nTxn += st.batches;
      pc->nInTxn += st.batched;
    }
    rcClose = sqlq_close(q);
    if (rcClose != 0 && rc == 0) rc = sqlqFail("sqlq_close", rcClose, NULL);
  }
  /* Every committed row must be in the table. */
  if (rc == 0 && db == NULL && sqlite3_open(zPath, &db) != SQLITE_OK) {
    rc = fail(zPath, sqlite3_errmsg(db));
  }
  if (rc == 0) {
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &pCount, NULL) !=
            SQLITE_OK ||
        sqlite3_step(pCount) != SQLITE_ROW) {
      rc = fail(zPath, sqlite3_errmsg(db));
    } else {
      nCounted = sqlite3_column_int64(pCount, 0);
    }
    if (rc == 0 && nCounted != nRowsAll) {
      fprintf(stderr,
              "bench_sqlq: %s: the table holds %lld rows, %lld were "
              "committed\n",
              zPath, (long long)nCounted, (long long)nRowsAll);
      rc = 1;
    }
  }
  sqlite3_finalize(pCount);
  sqlite3_close(db);
  if (bBarrier) pthread_barrier_destroy(&start);
  free(a);
  removeDb(zPath);
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
  double aRate[N_SERIES], aReadRate[4] = {0, 0, 0, 0}, csw = 0;
  double cvRatio = 0, cv2Ratio = 0, efdRatio = 0;
  int64_t aReadCalls[4] = {0, 0, 0, 0};
  InsertCase aIns[N_INSERT_CASES][N_INSERT_WAYS];
  int64_t tRun = nowNs();
  int i, k, rc = 0;
  static const char *azSeries[N_SERIES] = {
      "condvar ping-pong, signal under the lock",
      "condvar ping-pong, signal after unlock",
      "eventfd ping-pong",
      "direct SELECT 1, one connection",
      "direct pk lookup, one connection",
      "sqlq_exec",
      "sqlq_submit + poll(sqlq_fd) + sqlq_dispatch",
  };
  static const char *azRead[4] = {
      "SELECT 1, sqlq_exec",
      "pk lookup, sqlq_exec",
      "SELECT 1, sqlq_submit, 64 in flight/thread",
      "pk lookup, sqlq_submit, 64 in flight/thread",
  };
  static const char *azReadTarget[4] = {
      "16 threads: SELECT 1, sqlq_exec",
      "16 threads: pk lookup, sqlq_exec",
      "16 threads: SELECT 1, sqlq_submit",
      "16 threads: pk lookup, sqlq_submit",
  };
  /* The order of the half-windows of each thread count (ABCCBA). */
  static const int aOrder[6] = {I_WRITER, I_OWN, I_SINGLE,
                                I_SINGLE, I_OWN, I_WRITER};
  static const char *azWay[N_INSERT_WAYS] = {"sqlq writer", "own connections",
                                             "writer, batch 1"};

  if (argc != 2) {
    fprintf(stderr, "usage: bench_sqlq DIR (an existing scratch "
                    "directory)\n");
    return 1;
  }
  memset(aSer, 0, sizeof(aSer));
  memset(aDist, 0, sizeof(aDist));
  memset(aRate, 0, sizeof(aRate));
  memset(aIns, 0, sizeof(aIns));
  snprintf(zDb, sizeof(zDb), "%s/bench.db", argv[1]);
  snprintf(zIns, sizeof(zIns), "%s/insert.db", argv[1]);
  removeDb(zDb);

  printf("sqlq benchmark: SQLite %s, %ld CPUs online, files in %s\n"
         "File databases in WAL mode, synchronous=FULL, 2 readers (the "
         "defaults).\nTimes in us unless marked.\n\n",
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

  /* 3. Reads from 16 threads. */
  if (rc == 0) {
    printf("\n3. reads from %d submitting threads, 2 readers, %d ms per "
           "case; pk lookup:\n   random keys among %d rows; x DS: times "
           "Datasette's %.1fk calls/s from\n   16 callers (not run here); "
           "csw: context switches of the process per call\n",
           READ_THREADS, READ_MS, KV_ROWS, DS_READ_16 / 1e3);
    printf("%-44s %8s %9s %6s %8s\n", "case", "calls", "calls/s", "x DS",
           "csw");
  }
  for (i = 0; i < 4 && rc == 0; i++) {
    rc = benchReads(q, i & 1, i >> 1, &aReadCalls[i], &aReadRate[i], &csw);
    if (rc == 0) {
      printf("%-44s %8lld %9.0f %5.1fx %8.2f\n", azRead[i],
             (long long)aReadCalls[i], aReadRate[i], aReadRate[i] / DS_READ_16,
             csw);
      fflush(stdout);
    }
  }

  /* 4. Inserts. */
  if (rc == 0) {
    printf("\n4. single-row inserts for %d ms per case, as two %d ms runs "
           "on fresh\n   databases, in the order writer, own, batch 1, "
           "batch 1, own, writer.\n   writer: sqlq_exec of SQLQ_WRITE, "
           "default options (group commit);\n   own: a connection per "
           "thread, WAL, synchronous=FULL, busy_timeout %d,\n   autocommit; "
           "batch 1: the writer with batch_max=1 (a transaction per\n   "
           "row).  Latency in ms, of every attempt; rows/txn: tasks per "
           "group-commit\n   transaction (sqlq_stats batched / batches)\n",
           INSERT_MS, INSERT_MS / 2, BUSY_MS);
    printf("%-15s %7s %7s %5s %8s %7s %7s %7s %8s\n", "case", "threads",
           "rows/s", "BUSY", "min rows", "p50 ms", "p99 ms", "max ms",
           "rows/txn");
  }
  for (i = 0; i < N_INSERT_CASES && rc == 0; i++) {
    for (k = 0; k < N_INSERT_WAYS && rc == 0; k++) {
      rc = insertInit(&aIns[i][k], aInsertThreads[i]);
    }
    for (k = 0; k < 6 && rc == 0; k++) {
      rc = benchInserts(zIns, aOrder[k], &aIns[i][aOrder[k]]);
    }
    for (k = 0; k < N_INSERT_WAYS && rc == 0; k++) {
      InsertCase *pc = &aIns[i][k];
      char zTxn[32] = "-";
      insertFinish(pc);
      if (pc->nTxn > 0) {
        snprintf(zTxn, sizeof(zTxn), "%.1f",
                 (double)pc->nInTxn / (double)pc->nTxn);
      }
      printf("%-15s %7d %7.0f %5lld %8lld %7.2f %7.2f %7.1f %8s\n", azWay[k],
             pc->nThread, pc->rate, (long long)pc->nBusy,
             (long long)pc->minRows, pc->dist.p50 / 1e3, pc->dist.p99 / 1e3,
             pc->dist.max / 1e3, zTxn);
      fflush(stdout);
    }
  }
  if (rc == 0) {
    printf("Datasette execute_write: ~%.1fk inserts/s from 1 or 64 callers "
           "(not run here).\n",
           DS_WRITE / 1e3);
  }

  /* 5. Reads during a write. */
  if (rc == 0) {
    printf("\n5. pk lookups by sqlq_exec from one thread, back to back "
           "(up to %d)\n",
           LAT_ITERS);
    printf("%-44s %7s %8s %8s %9s\n", "case", "n", "p50", "p99", "max");
    rc = benchHeldReads(q, &idle, &held);
  }
  if (rc == 0) {
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
  if (rc == 0) {
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
    for (i = 0; i < 4; i++) {
      snprintf(zM, sizeof(zM), "%.0fk/s", aReadRate[i] / 1e3);
      snprintf(zT, sizeof(zT), ">= %.0fk/s", TARGET_READS * DS_READ_16 / 1e3);
      printTarget(azReadTarget[i], zM, zT,
                  aReadRate[i] >= TARGET_READS * DS_READ_16);
    }
    for (i = 0; i < N_INSERT_CASES; i++) {
      const InsertCase *w = &aIns[i][I_WRITER], *o = &aIns[i][I_OWN];
      char zName[64];
      snprintf(zName, sizeof(zName), "inserts, %d thread%s: writer BUSY",
               w->nThread, w->nThread > 1 ? "s" : "");
      snprintf(zM, sizeof(zM), "%lld", (long long)w->nBusy);
      printTarget(zName, zM, "0", w->nBusy == 0);
      snprintf(zM, sizeof(zM), "%lld", (long long)w->minRows);
      printTarget("  fewest rows of a thread (not starved)", zM, "> 0",
                  w->minRows > 0);
      snprintf(zM, sizeof(zM), "%.2fx", o->rate > 0 ? w->rate / o->rate : 0);
      printTarget("  rows/s, writer / own connections", zM, ">= 1x",
                  w->rate >= o->rate);
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
  for (i = 0; i < N_INSERT_CASES; i++) {
    for (k = 0; k < N_INSERT_WAYS; k++)
      insertFree(&aIns[i][k]);
  }
  return rc ? 1 : 0;
}
