/*
** run.c: how tasks run on a connection.  sqlq__run() is the life of a task
** on a connection, from sqlq__task_enter() to sqlq__task_leave(), for every
** kind (task.c says which way each runs):
**
**   READ      under its time limit and row cap, refusing what would write
**             or change the connection; a READ_FN on the writer (a database
**             in memory) runs with query_only set
**   ALONE     a write whose statements commit themselves (SCRIPT,
**             SQLQ_NO_TRANSACTION): an I/O error leaves its outcome unknown
**   TXN       a write in BEGIN IMMEDIATE ... COMMIT, alone or as a group
**             commit with the transactional writes queued behind it
**   ISOLATED  a WRITE_FN on a connection opened for it alone, run there as
**             ALONE or TXN
**
** GROUP COMMIT
** attempt() runs the tasks of a batch that have not failed in one
** transaction.  With more than one, each runs inside its own SAVEPOINT, so a
** task that fails is undone alone and reported alone.  (Even one statement
** needs it: with OR FAIL or RAISE(FAIL), SQLite keeps the changes a failing
** statement made before it failed.)  Its outcome decides what happens next,
** in runTxn(), the retry rule:
**   DONE   committed, or every task failed, or the COMMIT's outcome is
**          unknown (an I/O error once the commit record may be on disk:
**          no task of it may run again, it could be applied twice);
**   RETRY  the transaction was lost (an interrupt, a full disk, a task that
**          ended it, a savepoint the library could not release) or a wait
**          for a lock failed some tasks: the others run again, as long as
**          each attempt fails a task, and twice more when none did;
**   SPLIT  the COMMIT failed: each task runs again alone, so only the one
**          that causes it fails.
** The handle reports no task before the COMMIT that holds it succeeds, so
** none is lost and none is reported twice.
**
** After every run, the connection is in autocommit with the handle's
** settings: if a rollback cannot bring it there, it is reopened.
*/
#include "sqlq_int.h"
#include "timelimit.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* What a run on one connection knows. */
typedef struct Run Run;
struct Run {
  sqlq__conn *c;         /* The connection */
  const sqlq_options *o; /* The handle's options */
  sqlq__task **aWait;    /* Tasks a wait for a lock is for, or none */
  int nWait;             /* Tasks in aWait */
  int64_t waitStartNs;   /* When they began to run */
  int eStop;             /* Why a wait for a lock stopped: STOP_* */
  int bAutocommit;       /* The running task's statements commit themselves */
};

/* Why the busy handler stopped waiting for a lock, if not its timeout. */
enum { STOP_TIMEOUT = 1, STOP_CANCELED };

/* The outcome of an attempt at a group commit. */
enum { OUT_DONE, OUT_RETRY, OUT_SPLIT };

/* The outcome of a task inside a transaction. */
enum { TASK_OK, TASK_FAILED, TASK_LOST };

static int64_t nowNs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The transitions of task.c, under the task's mutex. */
static int enter(Run *r, sqlq__task *t) {
  int rc;
  pthread_mutex_lock(t->pMu);
  rc = sqlq__task_enter(t, r->c, nowNs());
  pthread_mutex_unlock(t->pMu);
  return rc;
}

static void leave(sqlq__task *t) {
  pthread_mutex_lock(t->pMu);
  sqlq__task_leave(t, nowNs());
  pthread_mutex_unlock(t->pMu);
}

static int failed(const sqlq__task *t) {
  return sqlq_result_status(t->res) != 0;
}

/*
** Asked by the busy handler: stop waiting for a lock once a task it waits
** for (not failed yet) is canceled or past its time limit, which runs from
** when it began to run.
*/
static int busyStop(void *p) {
  Run *r = p;
  int64_t now = nowNs();
  int i;
  for (i = 0; i < r->nWait; i++) {
    sqlq__task *t = r->aWait[i];
    int64_t ms = sqlq__task_limit(t, r->o);
    if (failed(t)) continue;
    if (sqlq__task_canceled(t)) {
      r->eStop = STOP_CANCELED;
      return 1;
    }
    if (ms > 0 && now >= r->waitStartNs + ms * 1000000) {
      r->eStop = STOP_TIMEOUT;
      return 1;
    }
  }
  return 0;
}

/* A wait for a lock from now on is for the n tasks of a, which began at ns. */
static void waitFor(Run *r, sqlq__task **a, int n, int64_t ns) {
  r->aWait = a;
  r->nWait = n;
  r->waitStartNs = ns;
  r->eStop = 0;
}

/*
** After a wait for a lock ended in SQLITE_BUSY: fails the tasks of a that
** are canceled (SQLQ_ECANCELED) or past their time limit (SQLQ_ETIMEOUT);
** returns how many.
*/
static int failWaiters(Run *r, sqlq__task **a, int n) {
  int64_t now = nowNs();
  int i, nFailed = 0;
  for (i = 0; i < n; i++) {
    int64_t ms = sqlq__task_limit(a[i], r->o);
    if (failed(a[i])) continue;
    if (sqlq__task_canceled(a[i])) {
      sqlq__result_fail(a[i]->res, SQLQ_ECANCELED, NULL);
      nFailed++;
    } else if (ms > 0 && now >= r->waitStartNs + ms * 1000000) {
      sqlq__result_fail(a[i]->res, SQLQ_ETIMEOUT, NULL);
      nFailed++;
    }
  }
  return nFailed;
}

/* Fails every task of a that has not failed yet with rc and zMsg. */
static void failPending(sqlq__task **a, int n, int rc, const char *zMsg) {
  int i;
  for (i = 0; i < n; i++) {
    if (!failed(a[i])) sqlq__result_fail(a[i]->res, rc, zMsg);
  }
}

/* Fails the tasks of a not failed yet: a COMMIT failed with I/O error rc. */
static void failUnknown(sqlq__task **a, int n, int rc) {
  char zMsg[160];
  snprintf(zMsg, sizeof(zMsg),
           "the outcome is unknown: the COMMIT failed with \"%s\" "
           "(extended code %d) after its changes may have reached the disk",
           sqlite3_errstr(rc), rc);
  failPending(a, n, SQLQ_EUNKNOWN, zMsg);
}

/*
** Fails t with what its statement (or fn) returned, rc, with message zMsg
** (NULL: the connection's): what the authorizer refused, an interrupt as
** SQLQ_ECANCELED or SQLQ_ETIMEOUT by what stopped it, a wait for a lock
** that t's limit or cancel ended, an I/O error of a statement that commits
** itself as an unknown outcome.
*/
static void failWith(Run *r, sqlq__task *t, int rc, const char *zMsg) {
  sqlite3 *db = sqlq__conn_db(r->c);
  const char *zRefused;
  int eRefused = sqlq__conn_refused(r->c, &zRefused);
  if (eRefused) {
    sqlq__result_fail(t->res, eRefused, zRefused);
  } else if (rc < 0) {
    sqlq__result_fail(t->res, rc, zMsg);
  } else if ((rc & 0xff) == SQLITE_IOERR && r->bAutocommit) {
    /* A statement that commits itself may have reached the disk. */
    failUnknown(&t, 1, rc);
  } else if ((rc & 0xff) == SQLITE_BUSY && r->eStop) {
    sqlq__result_fail(
        t->res, r->eStop == STOP_CANCELED ? SQLQ_ECANCELED : SQLQ_ETIMEOUT,
        NULL);
  } else if ((rc & 0xff) == SQLITE_INTERRUPT &&
             (timelimit_reason(db) || sqlq__task_canceled(t))) {
    const char *zWhy = timelimit_reason(db);
    int bCancel = sqlq__task_canceled(t) || strcmp(zWhy, "cancel") == 0;
    sqlq__result_fail(t->res, bCancel ? SQLQ_ECANCELED : SQLQ_ETIMEOUT, NULL);
  } else {
    /* An fn may return an error SQLite did not see: then the code's text. */
    if (zMsg == NULL && sqlite3_errcode(db) != SQLITE_OK) {
      zMsg = sqlite3_errmsg(db);
    }
    sqlq__result_fail(t->res, rc, zMsg);
  }
}

/*
** The position in pStmt of each of n names, into aIdx, using aSeen (n + 1
** bytes, zeroed); on failure fills res and returns nonzero.  Each name must
** be one of the statement's, once.
*/
static int nameParams(sqlite3_stmt *pStmt, const char *const *azName, int n,
                      int *aIdx, unsigned char *aSeen, sqlq_result *res) {
  int i;
  for (i = 0; i < n; i++) {
    const char *zFmt = NULL;
    aIdx[i] = sqlite3_bind_parameter_index(pStmt, azName[i]);
    if (aIdx[i] == 0) {
      zFmt = "the statement has no parameter named %s";
    } else if (aSeen[aIdx[i]]++) {
      zFmt = "parameter %s given twice";
    }
    if (zFmt) {
      char *zMsg = sqlite3_mprintf(zFmt, azName[i]);
      sqlq__result_fail(res, SQLQ_EPARAMS, zMsg);
      sqlite3_free(zMsg);
      return 1;
    }
  }
  return 0;
}

/*
** Binds n values to pStmt, by position or (azName not NULL) by name; on
** failure fills res and returns nonzero.
*/
static int bindParams(sqlite3_stmt *pStmt, const sqlq_value *a,
                      const char *const *azName, int n, sqlq_result *res) {
  int i, rc = SQLITE_OK, nWant = sqlite3_bind_parameter_count(pStmt);
  int *aIdx = NULL;
  if (nWant != n) {
    char zMsg[128];
    snprintf(zMsg, sizeof(zMsg),
             "wrong number of parameters: the statement has %d, the call "
             "gave %d",
             nWant, n);
    sqlq__result_fail(res, SQLQ_EPARAMS, zMsg);
    return 1;
  }
  if (azName && n > 0) {
    size_t nIdx = (size_t)n * sizeof(int);
    aIdx = sqlite3_malloc64(nIdx + (size_t)n + 1);
    if (aIdx == NULL) {
      sqlq__result_fail(res, SQLITE_NOMEM, NULL);
      return 1;
    }
    memset((char *)aIdx + nIdx, 0, (size_t)n + 1);
    if (nameParams(pStmt, azName, n, aIdx, (unsigned char *)aIdx + nIdx, res)) {
      sqlite3_free(aIdx);
      return 1;
    }
  }
  for (i = 0; i < n && rc == SQLITE_OK; i++) {
    const sqlq_value *v = &a[i];
    int k = aIdx ? aIdx[i] : i + 1;
    switch (v->type) {
    case SQLITE_INTEGER:
      rc = sqlite3_bind_int64(pStmt, k, v->i);
      break;
    case SQLITE_FLOAT:
      rc = sqlite3_bind_double(pStmt, k, v->f);
      break;
    case SQLITE_TEXT:
      rc = sqlite3_bind_text64(pStmt, k, v->p, (sqlite3_uint64)v->n,
                               SQLITE_STATIC, SQLITE_UTF8);
      break;
    case SQLITE_BLOB:
      rc = sqlite3_bind_blob64(pStmt, k, v->p, (sqlite3_uint64)v->n,
                               SQLITE_STATIC);
      break;
    default:
      rc = sqlite3_bind_null(pStmt, k);
      break;
    }
  }
  sqlite3_free(aIdx);
  if (rc != SQLITE_OK) {
    sqlq__result_fail(res, rc, sqlite3_errmsg(sqlite3_db_handle(pStmt)));
    return 1;
  }
  return 0;
}

/*
** Steps pStmt to the end, collecting at most cap rows (cap < 0: all) into
** the result.  Returns the SQLite code that ended it; SQLITE_DONE is
** success.
*/
static int stepRows(sqlite3_stmt *pStmt, int cap, sqlq_result *res) {
  int rc;
  while ((rc = sqlite3_step(pStmt)) == SQLITE_ROW) {
    if (cap >= 0 && sqlq_result_rows(res) >= cap) {
      sqlq__result_set_truncated(res);
      return SQLITE_DONE;
    }
    if (sqlq__result_add_row(res, pStmt)) return SQLITE_NOMEM;
  }
  if (rc == SQLITE_DONE && sqlq__result_columns(res, pStmt)) {
    return SQLITE_NOMEM;
  }
  return rc;
}

/* Prepares t's statement through the cache; NULL with t failed on error. */
static sqlite3_stmt *prepare(Run *r, sqlq__task *t) {
  sqlite3_stmt *pStmt;
  const char *zMsg;
  int rc = sqlq__conn_prepare(r->c, t->call.sql, &pStmt, &zMsg);
  if (rc != 0) failWith(r, t, rc, zMsg);
  return pStmt;
}

/* Runs the one statement of a READ or WRITE task; returns an SQLite code. */
static int runStatement(Run *r, sqlq__task *t, int cap) {
  sqlite3_stmt *pStmt = prepare(r, t);
  int rc;
  if (pStmt == NULL) return SQLITE_ERROR;
  if (!t->bWrite && !sqlite3_stmt_readonly(pStmt)) {
    sqlq__result_fail(t->res, SQLQ_EINVAL,
                      "a read task may not write (use SQLQ_WRITE)");
    return SQLITE_ERROR;
  }
  if (bindParams(pStmt, t->call.params, t->call.names, t->call.nparams,
                 t->res)) {
    sqlite3_clear_bindings(pStmt);
    return SQLITE_ERROR;
  }
  rc = stepRows(pStmt, cap, t->res);
  if (rc == SQLITE_DONE) {
    rc = sqlite3_reset(pStmt);
  } else {
    failWith(r, t, rc, NULL);
    sqlite3_reset(pStmt);
  }
  sqlite3_clear_bindings(pStmt);
  return rc == SQLITE_OK ? SQLITE_OK : SQLITE_ERROR;
}

/* Runs a WRITE_MANY task's statement over its rows. */
static int runMany(Run *r, sqlq__task *t) {
  sqlite3_stmt *pStmt = prepare(r, t);
  int i, rc = SQLITE_DONE;
  if (pStmt == NULL) return SQLITE_ERROR;
  for (i = 0; i < t->call.nrows && rc == SQLITE_DONE; i++) {
    if (bindParams(pStmt, t->call.params + (size_t)i * t->call.nparams,
                   t->call.names, t->call.nparams, t->res)) {
      rc = SQLITE_ERROR;
      break;
    }
    while ((rc = sqlite3_step(pStmt)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) failWith(r, t, rc, NULL);
    sqlite3_reset(pStmt);
  }
  sqlite3_clear_bindings(pStmt);
  return rc == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
}

/* Runs the statements of a SCRIPT task one after the other. */
static int runScript(Run *r, sqlq__task *t) {
  sqlite3 *db = sqlq__conn_db(r->c);
  const char *z = t->call.sql;
  int rc = SQLITE_OK;
  while (rc == SQLITE_OK && z && *z) {
    sqlite3_stmt *pStmt = NULL;
    rc = sqlite3_prepare_v2(db, z, -1, &pStmt, &z);
    if (rc != SQLITE_OK) {
      failWith(r, t, rc, NULL);
      break;
    }
    if (pStmt == NULL) break;
    while ((rc = sqlite3_step(pStmt)) == SQLITE_ROW) {
    }
    if (rc == SQLITE_DONE) {
      rc = SQLITE_OK;
    } else {
      failWith(r, t, rc, NULL);
    }
    sqlite3_finalize(pStmt);
    if (rc == SQLITE_OK && sqlq__task_canceled(t)) {
      sqlq__result_fail(t->res, SQLQ_ECANCELED, NULL);
      rc = SQLITE_ERROR;
    }
  }
  return rc;
}

/*
** Runs fn; its return code becomes the status.  Statements it leaves
** unfinished are reset, so the timelimit extension sees them end (a cancel
** aimed at this task must not reach the next).
*/
static int runFn(Run *r, sqlq__task *t) {
  sqlite3 *db = sqlq__conn_db(r->c);
  sqlite3_stmt *p = NULL;
  int rc = t->call.fn(db, t->call.arg);
  if (rc != SQLITE_OK) failWith(r, t, rc, NULL);
  while ((p = sqlite3_next_stmt(db, p)) != NULL) {
    if (sqlite3_stmt_busy(p)) sqlite3_reset(p);
  }
  return rc;
}

/* Runs what a task does; returns SQLITE_OK or an error, t failed. */
static int runBody(Run *r, sqlq__task *t, int cap) {
  switch (t->eBody) {
  case SQLQ__BODY_STATEMENT:
    return runStatement(r, t, cap);
  case SQLQ__BODY_MANY:
    return runMany(r, t);
  case SQLQ__BODY_SCRIPT:
    return runScript(r, t);
  default:
    return runFn(r, t);
  }
}

/*
** Brings the connection back to autocommit: rolls back, or if that fails
** reopens it.  Returns nonzero if it is still inside a transaction.
*/
static int restore(Run *r) {
  if (sqlq__conn_rollback(r->c) == 0) return 0;
  return sqlq__conn_reopen(r->c) != 0;
}

/*
** A task that runs outside a transaction of the library's may not leave one
** open: if it did, it is rolled back and t fails.  Returns rc, or an error.
*/
static int checkClosedTxn(Run *r, sqlq__task *t, int rc) {
  if (!sqlite3_get_autocommit(sqlq__conn_db(r->c))) {
    int bStuck = restore(r);
    if (rc == SQLITE_OK) {
      sqlq__result_fail(t->res, SQLITE_ERROR,
                        bStuck ? "the task left a transaction open, and it "
                                 "could not be rolled back"
                               : "the task left a transaction open; it was "
                                 "rolled back");
      rc = SQLITE_ERROR;
    }
  }
  return rc;
}

/* Runs a read task under its time limit and row cap. */
static void runRead(Run *r, sqlq__task *t) {
  sqlq__conn *c = r->c;
  if (enter(r, t)) return;
  sqlq__conn_set_limit(c, sqlq__task_limit(t, r->o));
  /* (A read waits for a lock only on a file not in WAL mode.) */
  waitFor(r, &t, 1, t->startNs);
  if (t->eBody == SQLQ__BODY_FN) {
    /* On the writer (in memory), a read function must not write either. */
    int bWriter = sqlq__conn_role(c) == SQLQ__WRITER;
    int rc = bWriter ? sqlq__conn_control(c, "PRAGMA query_only=1") : 0;
    if (rc == SQLITE_OK) {
      sqlq__conn_refuse(c, SQLQ__REFUSE_READS);
      checkClosedTxn(r, t, runFn(r, t));
      sqlq__conn_refuse(c, 0);
    } else {
      failWith(r, t, rc, NULL);
    }
    if (bWriter && sqlq__conn_control(c, "PRAGMA query_only=0") != SQLITE_OK) {
      sqlq__conn_reopen(c);
    }
  } else {
    sqlq__conn_refuse(c, SQLQ__REFUSE_TXN | SQLQ__REFUSE_READS);
    runStatement(r, t, sqlq__task_row_cap(t, r->o));
    sqlq__conn_refuse(c, 0);
  }
  leave(t);
}

/* Runs a write whose statements commit themselves. */
static void runAlone(Run *r, sqlq__task *t) {
  sqlite3 *db = sqlq__conn_db(r->c);
  int64_t nBefore = sqlite3_total_changes64(db);
  int rc;
  if (enter(r, t)) return;
  sqlq__conn_set_limit(r->c, sqlq__task_limit(t, r->o));
  waitFor(r, &t, 1, t->startNs);
  sqlq__conn_refuse(r->c, SQLQ__REFUSE_WRITES);
  r->bAutocommit = 1;
  rc = runBody(r, t, -1);
  r->bAutocommit = 0;
  sqlq__conn_refuse(r->c, 0);
  leave(t);
  if (checkClosedTxn(r, t, rc) == SQLITE_OK) {
    sqlq__result_set_changes(t->res, sqlite3_total_changes64(db) - nBefore,
                             sqlite3_last_insert_rowid(db));
  }
}

/*
** Runs t inside the open transaction, in a savepoint if bSavepoint: returns
** TASK_OK; TASK_FAILED with t failed (if it took the transaction along,
** sqlite3_get_autocommit() says so); or TASK_LOST when its savepoint could
** not be released or rolled back: the transaction may not commit (it was
** rolled back, or could not be), and t, if it had succeeded, runs again.
*/
static int runInTxn(Run *r, sqlq__task *t, int bSavepoint) {
  sqlq__conn *c = r->c;
  sqlite3 *db = sqlq__conn_db(c);
  int64_t nBefore = sqlite3_total_changes64(db);
  int rc;
  sqlq__result_clear_rows(t->res);
  if (enter(r, t)) return TASK_FAILED;
  sqlq__conn_set_limit(c, sqlq__task_limit(t, r->o));
  rc = bSavepoint ? sqlq__conn_control(c, "SAVEPOINT sqlq_task") : SQLITE_OK;
  if (rc == SQLITE_OK) {
    sqlq__conn_refuse(c, SQLQ__REFUSE_TXN | SQLQ__REFUSE_WRITES);
    rc = runBody(r, t, -1);
    sqlq__conn_refuse(c, 0);
  } else {
    failWith(r, t, rc, NULL);
  }
  leave(t);
  if (rc == SQLITE_OK && sqlite3_get_autocommit(db)) {
    /* It ended the transaction (INSERT OR ROLLBACK, an error it ignored):
    ** its changes are gone with it. */
    sqlq__result_fail(t->res, SQLITE_ABORT,
                      "the task ended the transaction, which was rolled back");
    return TASK_FAILED;
  }
  if (rc == SQLITE_OK) {
    if (bSavepoint && sqlq__conn_control(c, "RELEASE sqlq_task") != SQLITE_OK) {
      sqlq__conn_rollback(c);
      return TASK_LOST;
    }
    sqlq__result_set_changes(t->res, sqlite3_total_changes64(db) - nBefore,
                             sqlite3_last_insert_rowid(db));
    return TASK_OK;
  }
  if (bSavepoint && !sqlite3_get_autocommit(db) &&
      (sqlq__conn_control(c, "ROLLBACK TO sqlq_task") != SQLITE_OK ||
       sqlq__conn_control(c, "RELEASE sqlq_task") != SQLITE_OK)) {
    /* Its changes may still be in the transaction: drop it all. */
    sqlq__conn_rollback(c);
    return TASK_LOST;
  }
  return TASK_FAILED;
}

/*
** One attempt at committing the tasks of a not failed yet in one
** transaction; returns OUT_* (see the top of the file).
*/
static int attempt(Run *r, sqlq__task **a, int n, sqlq__batch_stats *st) {
  sqlq__conn *c = r->c;
  sqlite3 *db = sqlq__conn_db(c);
  int i, rc, nRun = 0, nOk = 0, bLost = 0;
  for (i = 0; i < n; i++)
    nRun += !failed(a[i]);
  if (nRun == 0) return OUT_DONE;
  sqlq__conn_set_limit(c, 0);
  waitFor(r, a, n, nowNs());
  rc = sqlq__conn_control(c, "BEGIN IMMEDIATE");
  if (rc != SQLITE_OK) {
    /* Waiting for a lock: the tasks that may wait no longer fail. */
    if ((rc & 0xff) == SQLITE_BUSY && failWaiters(r, a, n) > 0) {
      return OUT_RETRY;
    }
    failPending(a, n, rc, sqlite3_errstr(rc));
    return OUT_DONE;
  }
  for (i = 0; i < n && !bLost; i++) {
    int eTask = failed(a[i]) ? TASK_FAILED : runInTxn(r, a[i], nRun > 1);
    nOk += eTask == TASK_OK;
    bLost = eTask == TASK_LOST || sqlite3_get_autocommit(db);
  }
  if (bLost) return OUT_RETRY;
  if (nOk == 0) return OUT_DONE; /* (runTxn rolls it back.) */
  sqlq__conn_set_limit(c, 0);
  /* The tasks have run: COMMIT waits out a lock, whatever their limits. */
  waitFor(r, NULL, 0, 0);
  rc = sqlq__conn_control(c, "COMMIT");
  if (rc == SQLITE_OK) {
    st->nBatches++;
    st->nBatched += nRun;
    if (nRun > st->nMax) st->nMax = nRun;
    return OUT_DONE;
  }
  if ((rc & 0xff) == SQLITE_IOERR) {
    failUnknown(a, n, rc);
    return OUT_DONE;
  }
  if (nOk == 1) {
    failPending(a, n, rc, sqlite3_errstr(rc));
    return OUT_DONE;
  }
  return OUT_SPLIT;
}

/*
** The retry rule over attempt(): runs the n tasks of a in transactions, and
** leaves the connection in autocommit.
*/
static void runTxn(Run *r, sqlq__task **a, int n, sqlq__batch_stats *st) {
  int i, nFree = 2;
  for (;;) {
    int nBefore = 0, nAfter = 0, out;
    for (i = 0; i < n; i++)
      nBefore += failed(a[i]);
    out = attempt(r, a, n, st);
    if (restore(r)) {
      failPending(a, n, SQLITE_ERROR,
                  "the connection is inside a transaction it could neither "
                  "roll back nor reopen");
      return;
    }
    for (i = 0; i < n; i++)
      nAfter += failed(a[i]);
    if (out == OUT_RETRY && (nAfter > nBefore || nFree-- > 0)) continue;
    if (out == OUT_RETRY) {
      failPending(a, n, SQLITE_ABORT,
                  "the writer lost the transaction again and again; it was "
                  "rolled back");
    } else if (out == OUT_SPLIT) {
      for (i = 0; i < n; i++) {
        if (!failed(a[i])) runTxn(r, &a[i], 1, st);
      }
    }
    return;
  }
}

/*
** Runs an isolated WRITE_FN on a connection opened for it alone, as any
** other WRITE_FN: alone or in a transaction.
*/
static void runIsolated(Run *r, sqlq__task *t, sqlq__batch_stats *st) {
  sqlq__conn *iso;
  char *zErr = NULL;
  int rc =
      sqlq__conn_open(sqlq__conn_path(r->c), SQLQ__ISOLATED, r->o, &iso, &zErr);
  Run ri = {iso, r->o, NULL, 0, 0, 0, 0};
  if (rc != 0) {
    sqlq__result_fail(t->res, rc, zErr);
    sqlite3_free(zErr);
    return;
  }
  sqlq__conn_on_busy(iso, busyStop, &ri);
  if (t->call.flags & SQLQ_NO_TRANSACTION) {
    runAlone(&ri, t);
  } else {
    runTxn(&ri, &t, 1, st);
  }
  sqlq__conn_close(iso);
}

void sqlq__run(sqlq__conn *c, sqlq__task **a, int n, const sqlq_options *o,
               sqlq__batch_stats *st) {
  Run r = {c, o, NULL, 0, 0, 0, 0};
  if (restore(&r)) {
    failPending(a, n, SQLITE_ERROR,
                "the connection is inside a transaction it could neither "
                "roll back nor reopen");
    return;
  }
  sqlq__conn_on_busy(c, busyStop, &r);
  switch (a[0]->eRun) {
  case SQLQ__RUN_READ:
    runRead(&r, a[0]);
    break;
  case SQLQ__RUN_ALONE:
    runAlone(&r, a[0]);
    break;
  case SQLQ__RUN_ISOLATED:
    runIsolated(&r, a[0], st);
    break;
  default:
    runTxn(&r, a, n, st);
    break;
  }
  sqlq__conn_on_busy(c, NULL, NULL);
  restore(&r);
}
