/*
** fault_sqlq.c: allocation-failure and I/O-failure sweeps of sqlq's write
** paths.
**
** Usage: fault_sqlq DIR MODE[-mt] [FIRST [LAST]], MODE one of lib, sqlite,
** sqlite-burst, io, io-persist, power
**
** "lib" fails the library's own allocations (malloc, calloc, realloc and
** strdup, wrapped at link time with -Wl,--wrap); "sqlite" fails SQLite's
** (sqlite3_config(SQLITE_CONFIG_MALLOC) with a wrapper of the default), and
** "sqlite-burst" 8 of them in a row (so that a ROLLBACK and its retry both
** fail, and the writer must reopen its connection);
** "io" fails file operations through tests/faultvfs.c (writes with
** SQLITE_IOERR_WRITE or, on even runs, SQLITE_FULL; syncs, truncations,
** size reads, shared-memory maps), and "io-persist" every one after the
** first too, until the handle has closed; "power" does the same and then
** cuts the power: the writes no sync made durable are dropped, kept, or
** torn (every other sector), by turns (run N % 3), before the file is
** checked, with synchronous FULL.  With "-mt", 16 threads each submit a
** copy of the mix at once (keys 1000 apart), and the sweep takes every
** N a quarter past the last.  Run N of the sweep fails the
** N-th allocation (or operation) after the handle is open, while a mix of
** writes runs: lone writes, a write that fails on a
** constraint (its savepoint is rolled back inside the batch), WRITE_MANY,
** a WRITE_FN of several statements, a NO_TRANSACTION write and a SCRIPT.
** The sweep ends at the first run in which no allocation failed.
**
** After each run it checks what the README promises: every accepted task
** got exactly one completion, no hang; a probe write after the failure
** succeeds (a transient failure does not poison the writer); sqlq_close()
** returns 0; and in the file, reopened, every row of a task acknowledged
** with status 0 is there and no row of a failed task is (a SCRIPT or
** NO_TRANSACTION task that failed may have written part, and a task told
** SQLQ_EUNKNOWN all or nothing); PRAGMA
** integrity_check is ok.  Exits non-zero at the first violation, printing
** the run to replay (FIRST = LAST = N).
*/
#include "faultvfs.h"
#include "sqlq.h"
#include "testprog.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the failing allocators ---- */

enum { BURST = 8 };          /* Allocations "sqlite-burst" fails in a row */
#define DISARMED (-1000000L) /* countdown: fail nothing */

/* > 0: the allocation that brings it to 0 fails (and, in a burst, the
** nBurst - 1 after it) */
static atomic_long countdown = DISARMED;
static atomic_int nInjected; /* Failures injected in this run */
static int nBurst = 1;       /* Allocations failed in a row from there */

static int fail_now(void) {
  long left = atomic_load_explicit(&countdown, memory_order_relaxed);
  if (left <= 1 - nBurst) return 0;
  left = atomic_fetch_sub(&countdown, 1);
  if (left <= 1 && left > 1 - nBurst) {
    atomic_fetch_add(&nInjected, 1);
    return 1;
  }
  return 0;
}

static int bLib;     /* Fail the library's allocations */
static int bSqlite;  /* Fail SQLite's allocations */
static int bIo;      /* Fail file operations (faultvfs) */
static int bPersist; /* ... every one after the first too */
static int bPower;   /* ... then cut the power */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *z);

void *__wrap_malloc(size_t n) {
  return bLib && fail_now() ? NULL : __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m) {
  return bLib && fail_now() ? NULL : __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n) {
  return bLib && fail_now() ? NULL : __real_realloc(p, n);
}
char *__wrap_strdup(const char *z) {
  return bLib && fail_now() ? NULL : __real_strdup(z);
}

static sqlite3_mem_methods defaultMem;

static void *mem_malloc(int n) {
  return bSqlite && fail_now() ? NULL : defaultMem.xMalloc(n);
}
static void *mem_realloc(void *p, int n) {
  return bSqlite && fail_now() ? NULL : defaultMem.xRealloc(p, n);
}

/* ---- one run ---- */

enum { NTASK = 12, NCOPY_MT = 16, KEY_STRIDE = 1000 };

/* What each task of the mix writes: keys base+0 .. base+nKeys-1. */
typedef struct Task Task;
struct Task {
  int base;      /* First key */
  int nKeys;     /* Keys it writes when it succeeds */
  int bPartial;  /* Runs outside a transaction: may fail half done */
  int bAccepted; /* sqlq_submit() accepted it */
  int nDone;     /* Completions seen */
  int status;    /* Its status */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static Task aTask[NCOPY_MT][NTASK]; /* [copy][task]: copy m adds m*1000 */
static int nCopy = 1;               /* Copies of the mix, each by a thread */

static void on_done(sqlq_result *r, void *udata) {
  Task *t = udata;
  pthread_mutex_lock(&mu);
  t->nDone++;
  t->status = sqlq_result_status(r);
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&mu);
}

/* A WRITE_FN of one statement a key: the task's keys (arg is the Task). */
static int write_keys(sqlite3 *db, void *arg) {
  const Task *t = arg;
  int rc, i;
  for (i = 0; i < t->nKeys; i++) {
    char zSql[64];
    snprintf(zSql, sizeof(zSql), "INSERT INTO t VALUES(%d, 'fn')", t->base + i);
    rc = sqlite3_exec(db, zSql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) return rc;
  }
  return SQLITE_OK;
}

static const char *zMode; /* argv[2] */

/* A READ_FN. */
static int read_count(sqlite3 *db, void *arg) {
  (void)arg;
  return sqlite3_exec(db, "SELECT count(*) FROM t", NULL, NULL, NULL);
}

static int fail(int n, const char *zWhat) {
  fprintf(stderr, "fault_sqlq: run %d (%s): %s\n", n, zMode, zWhat);
  return 1;
}

static const char *const azKey[] = {":k"};

/* Submits task i of copy m of the mix (its keys are m*KEY_STRIDE higher). */
static void submit(sqlq *q, int m, int i) {
  sqlq_value one, aMany[2]; /* (sqlq_submit() copies them) */
  char zScript[128];
  sqlq_call c = {0};
  Task *t = &aTask[m][i];
  int off = m * KEY_STRIDE;
  c.done = on_done;
  c.udata = t;
  c.kind = SQLQ_WRITE;
  c.sql = "INSERT INTO t VALUES(?1, 'w')";
  t->nKeys = 1;
  switch (i) {
  case 5: /* By name: the binding's own allocation fails too */
    c.sql = "INSERT INTO t VALUES(:k, 'w')";
    c.names = azKey;
    /* fall through */
  case 0:
  case 1:
  case 2:
    t->base = off + 100 + i;
    one = sqlq_int(t->base);
    c.params = &one;
    c.nparams = 1;
    break;
  case 3: /* Fails: key 1 is there before the run. */
    t->base = 1;
    one = sqlq_int(1);
    c.params = &one;
    c.nparams = 1;
    t->nKeys = 0;
    break;
  case 4:
    t->base = off + 400;
    t->nKeys = 2;
    aMany[0] = sqlq_int(t->base);
    aMany[1] = sqlq_int(t->base + 1);
    c.kind = SQLQ_WRITE_MANY;
    c.params = aMany;
    c.nparams = 1;
    c.nrows = 2;
    break;
  case 6:
    t->base = off + 700;
    t->nKeys = 3;
    c.kind = SQLQ_WRITE_FN;
    c.sql = NULL;
    c.fn = write_keys;
    c.arg = t;
    break;
  case 7:
    t->base = off + 800;
    one = sqlq_int(t->base);
    c.params = &one;
    c.nparams = 1;
    c.flags = SQLQ_NO_TRANSACTION;
    t->bPartial = 1;
    break;
  case 9:
    t->base = off + 600;
    t->nKeys = 2;
    c.kind = SQLQ_WRITE_FN;
    c.sql = NULL;
    c.fn = write_keys;
    c.arg = t;
    c.flags = SQLQ_ISOLATED;
    break;
  case 10: {
    /* sqlq_activity() under the same failures: a result or an error */
    sqlq_result *r;
    int rc = sqlq_activity(q, &r);
    if (rc != 0 && rc != SQLITE_NOMEM && rc != SQLQ_ENOMEM) {
      fprintf(stderr, "fault_sqlq: sqlq_activity: %d\n", rc);
      exit(1);
    }
    sqlq_result_free(r);
    t->nKeys = 0;
    c.kind = SQLQ_READ;
    c.sql = "SELECT count(*) FROM t";
    break;
  }
  case 11:
    t->nKeys = 0;
    c.kind = SQLQ_READ_FN;
    c.sql = NULL;
    c.fn = read_count;
    break;
  default:
    t->base = off + 900;
    t->nKeys = 2;
    snprintf(zScript, sizeof(zScript),
             "INSERT INTO t VALUES(%d, 's'); INSERT INTO t VALUES(%d, 's')",
             t->base, t->base + 1);
    c.kind = SQLQ_SCRIPT;
    c.sql = zScript;
    t->bPartial = 1;
    break;
  }
  if (i == 10) {
    /* A read of sqlq_exec(): it runs here, on a borrowed read connection
    ** (the pool grows as the copies' threads come); accepted if it gives a
    ** result. */
    sqlq_result *r = NULL;
    sqlq_exec(q, &c, &r);
    t->bAccepted = r != NULL;
    if (r) on_done(r, t);
    sqlq_result_free(r);
    return;
  }
  t->bAccepted = sqlq_submit(q, &c) > 0;
}

/* A thread that submits one copy of the mix. */
typedef struct Submitter Submitter;
struct Submitter {
  sqlq *q; /* The handle */
  int m;   /* The copy */
};

static void *submitter(void *p) {
  Submitter *sub = p;
  int i;
  for (i = 0; i < NTASK; i++)
    submit(sub->q, sub->m, i);
  return NULL;
}

/* The count of rows with keys in [lo, lo+n), or -1. */
static int count_keys(sqlite3 *db, int lo, int n) {
  sqlite3_stmt *p;
  int v = -1;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t WHERE k >= ?1 AND k < ?2",
                         -1, &p, NULL) != SQLITE_OK) {
    return -1;
  }
  sqlite3_bind_int(p, 1, lo);
  sqlite3_bind_int(p, 2, lo + n);
  if (sqlite3_step(p) == SQLITE_ROW) v = sqlite3_column_int(p, 0);
  sqlite3_finalize(p);
  return v;
}

/* Run n: returns 0 if every check held; *pbInjected says if it failed one. */
static int run_once(const char *zPath, int n, int *pbInjected) {
  sqlq_options o = {0};
  sqlq *q = NULL;
  sqlite3 *db;
  sqlq_call probe = {0};
  sqlq_value key = sqlq_int(99999);
  struct timespec ts;
  int i, m, rc, bad = 0;
  test_remove_database(zPath);
  if (sqlite3_open(zPath, &db) != SQLITE_OK ||
      sqlite3_exec(db,
                   "PRAGMA journal_mode=WAL; CREATE TABLE t(k INTEGER "
                   "PRIMARY KEY, v); INSERT INTO t VALUES(1, 'old')",
                   NULL, NULL, NULL) != SQLITE_OK) {
    return fail(n, "cannot make the database");
  }
  sqlite3_close(db);
  o.synchronous = bIo ? 2 : 1;
  if (bPower) faultvfs_record(1);
  if (sqlq_open(zPath, &o, &q) != 0) return fail(n, "sqlq_open");
  memset(aTask, 0, sizeof(aTask));
  atomic_store(&nInjected, 0);
  if (bIo) {
    faultvfs_write_full(n % 2 == 0);
    faultvfs_arm(n, FAULTVFS_ALL, bPersist);
  } else {
    atomic_store(&countdown, n);
  }
  if (nCopy == 1) {
    submitter(&(Submitter){q, 0});
  } else {
    pthread_t aThread[NCOPY_MT];
    Submitter aSub[NCOPY_MT];
    for (m = 0; m < nCopy; m++) {
      aSub[m].q = q;
      aSub[m].m = m;
      if (pthread_create(&aThread[m], NULL, submitter, &aSub[m]) != 0) {
        return fail(n, "pthread_create");
      }
    }
    for (m = 0; m < nCopy; m++)
      pthread_join(aThread[m], NULL);
  }
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 60;
  pthread_mutex_lock(&mu);
  for (m = 0; m < nCopy; m++) {
    for (i = 0; i < NTASK; i++) {
      while (aTask[m][i].bAccepted && aTask[m][i].nDone == 0 &&
             pthread_cond_timedwait(&cond, &mu, &ts) == 0) {
      }
    }
  }
  pthread_mutex_unlock(&mu);
  atomic_store(&countdown, DISARMED);
  if (bIo) atomic_store(&nInjected, faultvfs_injected());
  if (bIo && !bPersist) faultvfs_disarm();
  *pbInjected = atomic_load(&nInjected) > 0;
  if (getenv("FAULT_VERBOSE")) {
    fprintf(stderr, "run %d: %d injected; statuses", n,
            atomic_load(&nInjected));
    for (i = 0; i < NTASK; i++)
      fprintf(stderr, " %d", aTask[0][i].bAccepted ? aTask[0][i].status : 999);
    fprintf(stderr, "\n");
  }
  for (m = 0; m < nCopy; m++) {
    for (i = 0; i < NTASK; i++) {
      if (aTask[m][i].bAccepted && aTask[m][i].nDone != 1) {
        bad = fail(n, "a task did not get exactly one completion");
      }
    }
  }
  if (bad) return bad;
  /*
  ** With the disk still failing (io-persist), the handle closes on it, and
  ** the file is recovered from what reached it; otherwise the next write
  ** must succeed.
  */
  probe.kind = SQLQ_WRITE;
  probe.sql = "INSERT INTO t VALUES(?1, 'probe')";
  probe.params = &key;
  probe.nparams = 1;
  rc = bPersist ? -1 : sqlq_exec(q, &probe, NULL);
  if (rc > 0 || rc < -1) {
    fprintf(stderr, "fault_sqlq: probe status %d (%s)\n", rc,
            sqlq_strerror(rc));
    bad = fail(n, "the write after the failure failed: the writer is poisoned");
  }
  if (sqlq_close(q) != 0) bad = fail(n, "sqlq_close");
  faultvfs_disarm();
  if (bPower && faultvfs_power_cut(n % 3) != 0) {
    bad = fail(n, "the power cut could not restore a file");
  }
  if (sqlite3_open(zPath, &db) != SQLITE_OK) return fail(n, "reopen");
  for (m = 0; m < nCopy * NTASK; m++) {
    const Task *t = &aTask[m / NTASK][m % NTASK];
    int nWant = t->bAccepted && t->status == 0 ? t->nKeys : 0;
    int nHave = count_keys(db, t->base, t->nKeys);
    int bUnknown = t->bAccepted && t->status == SQLQ_EUNKNOWN;
    if (t->bPartial && t->bAccepted && (t->status & 0xff) == SQLITE_IOERR) {
      fprintf(stderr, "fault_sqlq: task %d of copy %d: status %d\n", m % NTASK,
              m / NTASK, t->status);
      bad = fail(n, "a write outside a transaction reported an I/O error, "
                    "not SQLQ_EUNKNOWN (its statement may have committed)");
    }
    if (t->nKeys == 0) continue;
    if (nHave != nWant && !(t->bPartial && nWant == 0 && nHave >= 0) &&
        !(bUnknown && nHave == t->nKeys)) {
      fprintf(stderr,
              "fault_sqlq: task %d of copy %d (accepted %d, status %d): %d "
              "of its %d rows in the file\n",
              m % NTASK, m / NTASK, t->bAccepted, t->status, nHave, t->nKeys);
      bad = fail(n, nWant ? "an acknowledged write is lost"
                          : "a failed task left rows behind");
    }
  }
  if (rc == 0 && count_keys(db, 99999, 1) != 1) {
    bad = fail(n, "the acknowledged probe write is lost");
  }
  {
    sqlite3_stmt *p;
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &p, NULL);
    if (sqlite3_step(p) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(p, 0), "ok") != 0) {
      bad = fail(n, "integrity_check");
    }
    sqlite3_finalize(p);
  }
  sqlite3_close(db);
  return bad;
}

int main(int argc, char **argv) {
  char zPath[4200];
  int n, first, last, bInjected = 1, nRuns = 0;
  static const char *const azMode[] = {"lib", "sqlite-burst", "sqlite",
                                       "io",  "io-persist",   "power"};
  size_t k;
  for (k = 0; argc >= 3 && k < sizeof(azMode) / sizeof(azMode[0]); k++) {
    size_t len = strlen(azMode[k]);
    if (strncmp(argv[2], azMode[k], len) == 0 &&
        (argv[2][len] == 0 || strcmp(argv[2] + len, "-mt") == 0)) {
      break;
    }
  }
  if (argc < 3 || k == sizeof(azMode) / sizeof(azMode[0])) {
    fprintf(stderr,
            "usage: %s DIR lib|sqlite|sqlite-burst|io|io-persist|power[-mt] "
            "[FIRST [LAST]]\n",
            argv[0]);
    return 2;
  }
  zMode = argv[2];
  bLib = strncmp(zMode, "lib", 3) == 0;
  bSqlite = strncmp(zMode, "sqlite", 6) == 0;
  if (strncmp(zMode, "sqlite-burst", 12) == 0) nBurst = BURST;
  bPower = strncmp(zMode, "power", 5) == 0;
  bIo = strncmp(zMode, "io", 2) == 0 || bPower;
  bPersist = strncmp(zMode, "io-persist", 10) == 0 || bPower;
  if (strlen(zMode) > 3 && strcmp(zMode + strlen(zMode) - 3, "-mt") == 0) {
    nCopy = NCOPY_MT;
  }
  if (bIo && faultvfs_register() != SQLITE_OK) {
    fprintf(stderr, "fault_sqlq: cannot register the fault VFS\n");
    return 1;
  }
  first = argc > 3 ? atoi(argv[3]) : 1;
  last = argc > 4 ? atoi(argv[4]) : 1000000;
  if (bSqlite) {
    static sqlite3_mem_methods m;
    sqlite3_config(SQLITE_CONFIG_GETMALLOC, &defaultMem);
    m = defaultMem;
    m.xMalloc = mem_malloc;
    m.xRealloc = mem_realloc;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK) {
      fprintf(stderr, "fault_sqlq: cannot install the allocator\n");
      return 1;
    }
  }
  snprintf(zPath, sizeof(zPath), "%s/fault.db", argv[1]);
  /* With 16 copies, the sweep samples: each step a quarter longer. */
  for (n = first; n <= last && bInjected;
       n += nCopy == 1 ? 1 : 1 + n / 4, nRuns++) {
    if (run_once(zPath, n, &bInjected)) return 1;
  }
  printf("ok   fault_sqlq %s: %d runs, each failing one more %s\n", zMode,
         nRuns, bIo ? "file operation" : "allocation");
  return 0;
}
