/*
** conn.c: the connections of an sqlq handle and how tasks run on them.
**
** Each connection is used by one thread at a time (SQLITE_OPEN_NOMUTEX) and
** has the timelimit extension registered and a cache of prepared statements
** keyed by SQL text (reusing a statement instead of preparing it again:
** 1.7x more point lookups per second, measured here).
**
** GROUP COMMIT
** The writer runs a batch of transactional writes in one BEGIN IMMEDIATE
** ... COMMIT.  When the batch holds more than one task, each runs inside its
** own SAVEPOINT, so a task that fails is undone alone and reported alone.
** (Even one statement needs it: with OR FAIL or RAISE(FAIL), SQLite keeps
** the changes a failing statement made before it failed.)  If a failure
** ends the whole transaction (checked with sqlite3_get_autocommit: an
** interrupt, a full disk, an I/O error), the task that caused it keeps its
** error and the others run again in a new transaction; if COMMIT fails,
** each task runs again in a transaction of its own, so only the one that
** causes it fails.  The handle reports no task before the COMMIT that holds
** it succeeds, so none is lost and none is reported twice.  No transaction
** stays open between batches.
**
** An authorizer notes the transaction-control statements (BEGIN, COMMIT,
** SAVEPOINT, ...) a task prepares, and refuses them inside a transactional
** task or an SQL read: SQLite's parser finds them, not ours.  It also
** refuses, in every task on a shared connection, what would change the
** connection for the tasks after it (stateBits: a PRAGMA that sets a
** value, ATTACH, DETACH, TEMP schema objects).  Every connection is locked
** (timelimit_lock) and each task gets the handle's limits again, so no
** task's SQL changes the limits of the next.
*/
#include "sqlq_int.h"
#include "timelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CACHE_SIZE 64     /* Prepared statements kept per connection */

typedef struct CacheEntry CacheEntry;
struct CacheEntry {
  uint64_t hash;       /* FNV-1a of zSql, 0 = empty slot */
  char *zSql;          /* The SQL text (malloc) */
  sqlite3_stmt *pStmt; /* Its prepared statement */
  uint64_t lastUse;    /* Value of useClock at its last use */
  int bTxn;            /* It is a transaction-control statement */
  int eState;          /* STATE_* bits: tasks that may not run it */
};

struct sqlq__conn {
  sqlite3 *db;                   /* The connection */
  const sqlq_options *o;         /* The handle's options */
  sqlq__task **aWait;            /* Tasks its writes run for now, or none */
  int nWait;                     /* Tasks in aWait */
  int64_t waitStartMs;           /* When they began to run */
  int64_t busyStartMs;           /* When the current wait for a lock began */
  int eBusyStop;                 /* Why the busy handler gave up: BUSY_* */
  int bAutocommit;               /* A write of no transaction of ours runs:
                                    its statements commit themselves */
  int64_t tlid;                  /* Its timelimit id */
  int bWriter;                   /* The writer's connection (reads run on it for
                                    ":memory:") */
  int bGuard;                    /* Refuse transaction control now */
  int bSawTxn;                   /* The authorizer saw transaction control */
  int bDenied;                   /* It refused some in the current task */
  int eStateGuard;               /* STATE_* a task may not do now, or 0 */
  int eSawState;                 /* STATE_* bits the authorizer saw */
  int bStateDenied;              /* It refused one in the current task */
  uint64_t useClock;             /* Counts cache lookups */
  CacheEntry aCache[CACHE_SIZE]; /* Statement cache */
};

sqlite3 *sqlq__conn_db(sqlq__conn *c) {
  return c->db;
}

int64_t sqlq__conn_tlid(sqlq__conn *c) {
  return c->tlid;
}

/* Why the busy handler stopped waiting for a lock, if not its timeout. */
enum { BUSY_TIMEOUT = 1, BUSY_CANCELED };

static int64_t monoMs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
** The time limit of a task, 0 = none: for a write, the lower of the
** handle's and the call's; for a read, the handle's, lowered by the call.
*/
static int64_t taskLimit(const sqlq__task *t, const sqlq_options *o) {
  int bRead = t->call.kind == SQLQ_READ || t->call.kind == SQLQ_READ_FN;
  int64_t ms = bRead ? o->read_timeout_ms : o->write_timeout_ms;
  if (t->call.timeout_ms > 0 && (ms == 0 || t->call.timeout_ms < ms)) {
    ms = t->call.timeout_ms;
  }
  return ms;
}

/*
** The busy handler: waits for a lock another process holds, in steps of at
** most 10 ms, for at most busy_timeout_ms, and no longer than the tasks it
** waits for may: it gives up as soon as one of them (not failed yet) is
** canceled or past its time limit, which runs from when it began to run.
*/
static int onBusy(void *p, int nPrior) {
  sqlq__conn *c = p;
  int64_t now = monoMs(), left;
  struct timespec ts;
  int i;
  if (nPrior == 0) c->busyStartMs = now;
  left = c->busyStartMs + c->o->busy_timeout_ms - now;
  for (i = 0; i < c->nWait; i++) {
    sqlq__task *t = c->aWait[i];
    int64_t ms = taskLimit(t, c->o);
    if (sqlq_result_status(t->res) != 0) continue;
    if (sqlq__task_canceled(t)) {
      c->eBusyStop = BUSY_CANCELED;
      return 0;
    }
    if (ms > 0 && c->waitStartMs + ms - now < left) {
      left = c->waitStartMs + ms - now;
      if (left <= 0) {
        c->eBusyStop = BUSY_TIMEOUT;
        return 0;
      }
    }
  }
  if (left <= 0) return 0;
  if (left > 10) left = 10;
  ts.tv_sec = 0;
  ts.tv_nsec = (long)left * 1000000;
  nanosleep(&ts, NULL);
  return 1;
}

/* Makes the busy handler wait for the n tasks of a, which begin now. */
static void waitFor(sqlq__conn *c, sqlq__task **a, int n) {
  c->aWait = a;
  c->nWait = n;
  c->waitStartMs = monoMs();
  c->eBusyStop = 0;
}

/*
** After a wait for a lock ended in SQLITE_BUSY: fails the tasks of a that
** are canceled (SQLQ_ECANCELED) or past their time limit (SQLQ_ETIMEOUT);
** returns how many.
*/
static int failWaiters(sqlq__conn *c, sqlq__task **a, int n) {
  int64_t now = monoMs();
  int i, nFailed = 0;
  for (i = 0; i < n; i++) {
    int64_t ms = taskLimit(a[i], c->o);
    if (sqlq_result_status(a[i]->res) != 0) continue;
    if (sqlq__task_canceled(a[i])) {
      sqlq__result_fail(a[i]->res, SQLQ_ECANCELED, NULL);
      nFailed++;
    } else if (ms > 0 && now >= c->waitStartMs + ms) {
      sqlq__result_fail(a[i]->res, SQLQ_ETIMEOUT, NULL);
      nFailed++;
    }
  }
  return nFailed;
}

/* True if z is one of the n names of az (any case). */
static int isOneOf(const char *z, const char *const *az, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (sqlite3_stricmp(z, az[i]) == 0) return 1;
  }
  return 0;
}

/*
** Which tasks may not run what the authorizer sees (op, z1, z2): STATE_READ
** and STATE_WRITE bits, for what would change the connection for the tasks
** after it.  A PRAGMA whose argument names what it reads (table_info(t))
** is free; one that changes the database file itself (user_version), only
** the current transaction (defer_foreign_keys), or sets the database's
** quota (max_page_count, which then stays on the writer) is free in writes;
** any
** other PRAGMA that sets a value, ATTACH, DETACH and TEMP schema objects
** are refused in every task.
*/
enum { STATE_READ = 1, STATE_WRITE = 2 };
static int stateBits(int op, const char *z1, const char *z2) {
  static const char *const azQuery[] = {
      "foreign_key_check", "foreign_key_list", "index_info",   "index_list",
      "index_xinfo",       "integrity_check",  "quick_check",  "table_info",
      "table_list",        "table_xinfo"};
  static const char *const azDatabase[] = {
      "application_id", "defer_foreign_keys", "incremental_vacuum",
      "max_page_count", "optimize",           "user_version",
      "wal_checkpoint"};
  switch (op) {
  case SQLITE_PRAGMA:
    if (z2 == NULL || isOneOf(z1, azQuery, sizeof(azQuery) / sizeof(*azQuery))) {
      return 0;
    }
    if (isOneOf(z1, azDatabase, sizeof(azDatabase) / sizeof(*azDatabase))) {
      return STATE_READ;
    }
    return STATE_READ | STATE_WRITE;
  case SQLITE_ATTACH:
  case SQLITE_DETACH:
  case SQLITE_CREATE_TEMP_INDEX:
  case SQLITE_CREATE_TEMP_TABLE:
  case SQLITE_CREATE_TEMP_TRIGGER:
  case SQLITE_CREATE_TEMP_VIEW:
  case SQLITE_DROP_TEMP_INDEX:
  case SQLITE_DROP_TEMP_TABLE:
  case SQLITE_DROP_TEMP_TRIGGER:
  case SQLITE_DROP_TEMP_VIEW:
    return STATE_READ | STATE_WRITE;
  default:
    return 0;
  }
}

/*
** The authorizer: notes transaction control (BEGIN, COMMIT, END, ROLLBACK,
** SAVEPOINT, RELEASE) and refuses it while the guard is up; notes what
** would change the connection (stateBits) and refuses it in a task.
*/
static int authorize(void *p, int op, const char *z1, const char *z2,
                     const char *z3, const char *z4) {
  sqlq__conn *c = p;
  int bits = stateBits(op, z1, z2);
  (void)z3;
  (void)z4;
  if (op == SQLITE_TRANSACTION || op == SQLITE_SAVEPOINT) {
    c->bSawTxn = 1;
    if (c->bGuard) {
      c->bDenied = 1;
      return SQLITE_DENY;
    }
  }
  if (bits) {
    c->eSawState |= bits;
    if (c->eStateGuard & bits) {
      c->bStateDenied = 1;
      return SQLITE_DENY;
    }
  }
  return SQLITE_OK;
}

/* The message of a task that tried to change its connection. */
static const char zStateDenied[] =
    "a task may not change its connection (a PRAGMA that sets a value, "
    "ATTACH, DETACH, a TEMP table, view, index or trigger)";

int sqlq__conn_open(const char *zPath, int eRole, const sqlq_options *o,
                    sqlq__conn **ppConn, char **pzErr) {
  sqlq__conn *c;
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
  int rc;
  *ppConn = NULL;
  *pzErr = NULL;
  c = calloc(1, sizeof(*c));
  if (c == NULL) return SQLQ_ENOMEM;
  c->bWriter = eRole == SQLQ__WRITER;
  c->o = o;
  if (eRole == SQLQ__READER) {
    flags |= SQLITE_OPEN_READONLY;
  } else {
    flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  }
  rc = sqlite3_open_v2(zPath, &c->db, flags, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_extended_result_codes(c->db, 1);
  if (rc == SQLITE_OK) rc = timelimit_register(c->db);
  if (rc == SQLITE_OK) rc = timelimit_id(c->db, &c->tlid);
  if (rc == SQLITE_OK) rc = timelimit_lock(c->db);
  if (rc == SQLITE_OK) rc = sqlite3_busy_handler(c->db, onBusy, c);
  if (rc == SQLITE_OK) rc = sqlite3_set_authorizer(c->db, authorize, c);
  if (rc == SQLITE_OK && eRole != SQLQ__READER) {
    char zPragma[64];
    snprintf(zPragma, sizeof(zPragma), "PRAGMA synchronous=%d", o->synchronous);
    rc = sqlite3_exec(c->db, zPragma, NULL, NULL, NULL);
  }
  if (rc == SQLITE_OK && eRole == SQLQ__WRITER) {
    if (strcmp(zPath, ":memory:") != 0) {
      rc = sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    }
  }
  if (rc != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("%s: %s", zPath,
                             c->db ? sqlite3_errmsg(c->db) : "cannot open");
    sqlq__conn_close(c);
    return rc;
  }
  *ppConn = c;
  return 0;
}

void sqlq__conn_close(sqlq__conn *c) {
  int i;
  if (c == NULL) return;
  for (i = 0; i < CACHE_SIZE; i++) {
    sqlite3_finalize(c->aCache[i].pStmt);
    free(c->aCache[i].zSql);
  }
  sqlite3_close(c->db);
  free(c);
}

static uint64_t fnv1a(const char *z) {
  uint64_t h = 14695981039346656037ULL;
  for (; *z; z++)
    h = (h ^ (unsigned char)*z) * 1099511628211ULL;
  return h ? h : 1;
}

/* True if z holds nothing but white space. */
static int isBlank(const char *z) {
  while (*z == ' ' || (*z >= '\t' && *z <= '\r'))
    z++;
  return *z == 0;
}

/*
** Prepares zSql, which must be exactly one statement, through the cache.
** On failure fills res and returns NULL.  Refuses transaction control while
** the guard is up, whether the statement is new or cached.
*/
static sqlite3_stmt *prepareCached(sqlq__conn *c, const char *zSql,
                                   sqlq_result *res) {
  uint64_t h = fnv1a(zSql);
  CacheEntry *e, *victim = &c->aCache[0];
  sqlite3_stmt *pStmt = NULL;
  const char *zTail = NULL;
  int i, rc;
  c->useClock++;
  for (i = 0; i < CACHE_SIZE; i++) {
    e = &c->aCache[i];
    if (e->hash == h && strcmp(e->zSql, zSql) == 0) {
      if (e->bTxn && c->bGuard) {
        c->bDenied = 1;
        sqlq__result_fail(res, SQLQ_ETXNCTL, NULL);
        return NULL;
      }
      if (e->eState & c->eStateGuard) {
        c->bStateDenied = 1;
        sqlq__result_fail(res, SQLQ_EINVAL, zStateDenied);
        return NULL;
      }
      e->lastUse = c->useClock;
      return e->pStmt;
    }
    if (e->lastUse < victim->lastUse) victim = e;
  }
  c->bSawTxn = 0;
  c->eSawState = 0;
  rc = sqlite3_prepare_v3(c->db, zSql, -1, SQLITE_PREPARE_PERSISTENT, &pStmt,
                          &zTail);
  if (rc != SQLITE_OK) {
    if (c->bDenied) {
      sqlq__result_fail(res, SQLQ_ETXNCTL, NULL);
    } else if (c->bStateDenied) {
      sqlq__result_fail(res, SQLQ_EINVAL, zStateDenied);
    } else if ((rc & 0xff) == SQLITE_BUSY && c->eBusyStop) {
      /* Reading the schema waited for a lock past the task's limit. */
      sqlq__result_fail(res,
                        c->eBusyStop == BUSY_CANCELED ? SQLQ_ECANCELED
                                                      : SQLQ_ETIMEOUT,
                        NULL);
    } else {
      sqlq__result_fail(res, rc, sqlite3_errmsg(c->db));
    }
    return NULL;
  }
  if (pStmt == NULL) {
    sqlq__result_fail(res, SQLQ_EINVAL, "the sql holds no statement");
    return NULL;
  }
  if (zTail && !isBlank(zTail)) {
    sqlite3_stmt *pNext = NULL;
    sqlite3_prepare_v2(c->db, zTail, -1, &pNext, NULL);
    if (pNext) {
      sqlite3_finalize(pNext);
      sqlite3_finalize(pStmt);
      sqlq__result_fail(res, SQLQ_EINVAL,
                        "the sql holds more than one statement "
                        "(use SQLQ_SCRIPT for several)");
      return NULL;
    }
  }
  sqlite3_finalize(victim->pStmt);
  free(victim->zSql);
  victim->zSql = strdup(zSql);
  if (victim->zSql == NULL) {
    memset(victim, 0, sizeof(*victim));
    sqlite3_finalize(pStmt);
    sqlq__result_fail(res, SQLQ_ENOMEM, NULL);
    return NULL;
  }
  victim->hash = h;
  victim->pStmt = pStmt;
  victim->lastUse = c->useClock;
  victim->bTxn = c->bSawTxn;
  victim->eState = c->eSawState;
  return pStmt;
}

/*
** Runs one of the writer's own statements (BEGIN IMMEDIATE, COMMIT,
** SAVEPOINT, ...) through the cache.  Returns its SQLite code; if the
** library itself ran out of memory preparing it (SQLite saw no error),
** SQLITE_NOMEM: the statement did not run.
*/
static int execControl(sqlq__conn *c, const char *zSql) {
  sqlite3_stmt *pStmt = prepareCached(c, zSql, NULL);
  int rc;
  if (pStmt == NULL) {
    rc = sqlite3_errcode(c->db);
    return rc != SQLITE_OK ? rc : SQLITE_NOMEM;
  }
  rc = sqlite3_step(pStmt);
  sqlite3_reset(pStmt);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
** Ends the open transaction of c, if any, by rolling it back; returns
** nonzero if c is still inside one (then nothing may run on it until a
** later call succeeds).  Tries the cached ROLLBACK, then one prepared anew.
*/
static int rollbackAll(sqlq__conn *c) {
  if (sqlite3_get_autocommit(c->db)) return 0;
  execControl(c, "ROLLBACK");
  if (!sqlite3_get_autocommit(c->db)) {
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  }
  return !sqlite3_get_autocommit(c->db);
}

/* Binds n values to pStmt; on failure fills res and returns nonzero. */
static int bindParams(sqlite3_stmt *pStmt, const sqlq_value *a, int n,
                      sqlq_result *res) {
  int i, rc = SQLITE_OK, nWant = sqlite3_bind_parameter_count(pStmt);
  if (nWant != n) {
    char zMsg[128];
    snprintf(zMsg, sizeof(zMsg),
             "wrong number of parameters: the statement has %d, the call "
             "gave %d",
             nWant, n);
    sqlq__result_fail(res, SQLQ_EPARAMS, zMsg);
    return 1;
  }
  for (i = 0; i < n && rc == SQLITE_OK; i++) {
    const sqlq_value *v = &a[i];
    switch (v->type) {
    case SQLITE_INTEGER:
      rc = sqlite3_bind_int64(pStmt, i + 1, v->i);
      break;
    case SQLITE_FLOAT:
      rc = sqlite3_bind_double(pStmt, i + 1, v->f);
      break;
    case SQLITE_TEXT:
      rc = sqlite3_bind_text64(pStmt, i + 1, v->p, (sqlite3_uint64)v->n,
                               SQLITE_STATIC, SQLITE_UTF8);
      break;
    case SQLITE_BLOB:
      rc = sqlite3_bind_blob64(pStmt, i + 1, v->p, (sqlite3_uint64)v->n,
                               SQLITE_STATIC);
      break;
    default:
      rc = sqlite3_bind_null(pStmt, i + 1);
      break;
    }
  }
  if (rc != SQLITE_OK) {
    sqlq__result_fail(res, rc, sqlite3_errmsg(sqlite3_db_handle(pStmt)));
    return 1;
  }
  return 0;
}

/*
** Sets the time limit of c for the statements of the next task, every time:
** SQL of the last task may have lowered it.  (Its step budget goes back to
** none when the last task leaves: sqlq.c, leaveLocked.)
*/
static void setLimit(sqlq__conn *c, int64_t ms) {
  timelimit_set_limit(c->db, ms);
}

/*
** True if a COMMIT that failed with rc may have reached the disk: an I/O
** error once the commit record may be written (measured: with fsync
** failing, WAL recovery replayed such a transaction in 16 of 18 runs).
** Then the transaction is rolled back here, and no task of it may run
** again (it could be applied twice).
*/
static int commitUnknown(sqlq__conn *c, int rc) {
  if ((rc & 0xff) != SQLITE_IOERR) return 0;
  rollbackAll(c);
  return 1;
}

/* The message of a task whose COMMIT failed with rc: outcome unknown. */
static void unknownMessage(char *zMsg, size_t n, int rc) {
  snprintf(zMsg, n,
           "the outcome is unknown: the COMMIT failed with \"%s\" "
           "(extended code %d) after its changes may have reached the disk",
           sqlite3_errstr(rc), rc);
}

/*
** The status of a task whose statement failed with rc: an interrupt becomes
** SQLQ_ECANCELED or SQLQ_ETIMEOUT by what stopped it; transaction control
** the authorizer refused becomes SQLQ_ETXNCTL.
*/
static void failWith(sqlq__conn *c, sqlq__task *t, int rc) {
  if (c->bDenied) {
    sqlq__result_fail(t->res, SQLQ_ETXNCTL, NULL);
    return;
  }
  if (c->bStateDenied) {
    sqlq__result_fail(t->res, SQLQ_EINVAL, zStateDenied);
    return;
  }
  if ((rc & 0xff) == SQLITE_IOERR && c->bAutocommit) {
    /* A statement that commits itself may have reached the disk. */
    char zMsg[160];
    unknownMessage(zMsg, sizeof(zMsg), rc);
    sqlq__result_fail(t->res, SQLQ_EUNKNOWN, zMsg);
    return;
  }
  if ((rc & 0xff) == SQLITE_BUSY && c->eBusyStop) {
    sqlq__result_fail(t->res, c->eBusyStop == BUSY_CANCELED ? SQLQ_ECANCELED
                                                           : SQLQ_ETIMEOUT,
                      NULL);
    return;
  }
  if ((rc & 0xff) == SQLITE_INTERRUPT) {
    const char *zWhy = timelimit_reason(c->db);
    if ((zWhy && strcmp(zWhy, "cancel") == 0) || sqlq__task_canceled(t)) {
      sqlq__result_fail(t->res, SQLQ_ECANCELED, NULL);
      return;
    }
    if (zWhy) {
      sqlq__result_fail(t->res, SQLQ_ETIMEOUT, NULL);
      return;
    }
  }
  /* An fn may return an error SQLite did not see: then the code's text. */
  sqlq__result_fail(t->res, rc,
                    sqlite3_errcode(c->db) != SQLITE_OK ? sqlite3_errmsg(c->db)
                                                        : NULL);
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

/* Runs the one statement of a READ or WRITE task; returns an SQLite code. */
static int runStatement(sqlq__conn *c, sqlq__task *t, int cap) {
  sqlite3_stmt *pStmt = prepareCached(c, t->call.sql, t->res);
  int rc;
  if (pStmt == NULL) return SQLITE_ERROR;
  if (t->call.kind == SQLQ_READ && !sqlite3_stmt_readonly(pStmt)) {
    sqlq__result_fail(t->res, SQLQ_EINVAL,
                      "a read task may not write (use SQLQ_WRITE)");
    return SQLITE_ERROR;
  }
  if (bindParams(pStmt, t->call.params, t->call.nparams, t->res)) {
    sqlite3_clear_bindings(pStmt);
    return SQLITE_ERROR;
  }
  rc = stepRows(pStmt, cap, t->res);
  if (rc == SQLITE_DONE) {
    rc = sqlite3_reset(pStmt);
  } else {
    failWith(c, t, rc);
    sqlite3_reset(pStmt);
  }
  sqlite3_clear_bindings(pStmt);
  return rc == SQLITE_OK ? SQLITE_OK : SQLITE_ERROR;
}

/* Runs a WRITE_MANY task's statement over its rows. */
static int runMany(sqlq__conn *c, sqlq__task *t) {
  sqlite3_stmt *pStmt = prepareCached(c, t->call.sql, t->res);
  int i, rc = SQLITE_DONE;
  if (pStmt == NULL) return SQLITE_ERROR;
  for (i = 0; i < t->call.nrows && rc == SQLITE_DONE; i++) {
    if (bindParams(pStmt, t->call.params + (size_t)i * t->call.nparams,
                   t->call.nparams, t->res)) {
      rc = SQLITE_ERROR;
      break;
    }
    while ((rc = sqlite3_step(pStmt)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) failWith(c, t, rc);
    sqlite3_reset(pStmt);
  }
  sqlite3_clear_bindings(pStmt);
  return rc == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
}

/* Runs the statements of a SCRIPT task one after the other. */
static int runScript(sqlq__conn *c, sqlq__task *t) {
  const char *z = t->call.sql;
  int rc = SQLITE_OK;
  while (rc == SQLITE_OK && z && *z) {
    sqlite3_stmt *pStmt = NULL;
    rc = sqlite3_prepare_v2(c->db, z, -1, &pStmt, &z);
    if (rc != SQLITE_OK) {
      failWith(c, t, rc);
      break;
    }
    if (pStmt == NULL) break;
    while ((rc = sqlite3_step(pStmt)) == SQLITE_ROW) {
    }
    if (rc == SQLITE_DONE) {
      rc = SQLITE_OK;
    } else {
      failWith(c, t, rc);
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
** Runs fn on db; its return code becomes the status.  Statements it leaves
** unfinished are reset, so the timelimit extension sees them end (a cancel
** aimed at this task must not reach the next).
*/
static int runFn(sqlq__conn *c, sqlq__task *t, sqlite3 *db) {
  sqlite3_stmt *p = NULL;
  int rc = t->call.fn(db, t->call.arg);
  if (rc != SQLITE_OK) failWith(c, t, rc);
  while ((p = sqlite3_next_stmt(db, p)) != NULL) {
    if (sqlite3_stmt_busy(p)) sqlite3_reset(p);
  }
  return rc;
}

/* Runs what a write task does, in or out of a transaction. */
static int runWriteBody(sqlq__conn *c, sqlq__task *t) {
  switch (t->call.kind) {
  case SQLQ_SCRIPT:
    return runScript(c, t);
  case SQLQ_WRITE:
    return runStatement(c, t, -1);
  case SQLQ_WRITE_MANY:
    return runMany(c, t);
  default:
    return runFn(c, t, c->db);
  }
}

/* Fails t and rolls back if it left a transaction open on db. */
static int checkClosedTxn(sqlq__task *t, sqlq__conn *c, int rc) {
  if (!sqlite3_get_autocommit(c->db)) {
    int bStuck = rollbackAll(c);
    if (rc == SQLITE_OK) {
      sqlq__result_fail(t->res, SQLITE_ERROR,
                        bStuck ? "the task left a transaction open, and it "
                                 "could not be rolled back yet"
                               : "the task left a transaction open; it was "
                                 "rolled back");
      rc = SQLITE_ERROR;
    }
  }
  return rc;
}

/*
** Runs a WRITE_FN task's fn on c inside BEGIN IMMEDIATE ... COMMIT, with
** transaction control refused, as a WRITE_FN runs in a group commit.
*/
static void runFnInTxn(sqlq__conn *c, sqlq__task *t) {
  int rc = execControl(c, "BEGIN IMMEDIATE");
  if (rc != SQLITE_OK) {
    if ((rc & 0xff) != SQLITE_BUSY || failWaiters(c, &t, 1) == 0) {
      sqlq__result_fail(t->res, rc, sqlite3_errstr(rc));
    }
    rollbackAll(c);
    return;
  }
  c->bGuard = 1;
  c->bDenied = 0;
  rc = runFn(c, t, c->db);
  c->bGuard = 0;
  if (rc == SQLITE_OK && sqlite3_get_autocommit(c->db)) {
    sqlq__result_fail(t->res, SQLITE_ABORT,
                      "the task ended the transaction, which was rolled back");
  } else if (rc == SQLITE_OK) {
    c->nWait = 0; /* COMMIT waits out a lock, whatever t's limit */
    rc = execControl(c, "COMMIT");
    if (commitUnknown(c, rc)) {
      char zMsg[160];
      unknownMessage(zMsg, sizeof(zMsg), rc);
      sqlq__result_fail(t->res, SQLQ_EUNKNOWN, zMsg);
    } else if (rc != SQLITE_OK) {
      sqlq__result_fail(t->res, rc, sqlite3_errstr(rc));
      rollbackAll(c);
    }
  } else {
    rollbackAll(c);
  }
}

/*
** Runs an isolated WRITE_FN on a connection opened for it alone; the task
** is moved to that connection while it runs, then back to the writer's c.
*/
static void runIsolated(sqlq__conn *c, sqlq__task *t, const sqlq_options *o,
                        const char *zPath) {
  sqlq__conn *iso;
  char *zErr = NULL;
  int rc = sqlq__conn_open(zPath, SQLQ__ISOLATED, o, &iso, &zErr);
  if (rc != 0) {
    sqlq__result_fail(t->res, rc, zErr);
    sqlite3_free(zErr);
    return;
  }
  waitFor(iso, &t, 1);
  if (sqlq__task_move(t, iso)) {
    sqlq__result_fail(t->res, SQLQ_ECANCELED, NULL);
  } else if (t->call.flags & SQLQ_NO_TRANSACTION) {
    checkClosedTxn(t, iso, runFn(iso, t, iso->db));
  } else {
    runFnInTxn(iso, t);
  }
  sqlq__task_move(t, c);
  sqlq__conn_close(iso);
}


/*
** Runs one task of a batch inside the open transaction, in a savepoint if
** bSavepoint.  Returns SQLITE_OK, or an error with t's result failed; if
** the error ended the transaction, sqlite3_get_autocommit() says so.  If
** the savepoint could not be released or rolled back, the transaction can
** no longer be trusted: it is rolled back, and *pbRerun is set when t had
** succeeded (it must run again with the others).
*/
static int runInBatch(sqlq__conn *c, sqlq__task *t, const sqlq_options *o,
                      int bSavepoint, int *pbRerun) {
  int64_t nBefore = sqlite3_total_changes64(c->db);
  int rc;
  *pbRerun = 0;
  sqlq__result_clear_rows(t->res);
  if (sqlq__task_enter(t, c)) {
    sqlq__result_fail(t->res, SQLQ_ECANCELED, NULL);
    return SQLITE_ERROR;
  }
  setLimit(c, taskLimit(t, o));
  rc = bSavepoint ? execControl(c, "SAVEPOINT sqlq_task") : SQLITE_OK;
  if (rc == SQLITE_OK) {
    c->bGuard = 1;
    c->bDenied = c->bStateDenied = 0;
    c->eStateGuard = STATE_WRITE;
    rc = runWriteBody(c, t);
    c->bGuard = c->eStateGuard = 0;
  } else {
    failWith(c, t, rc);
  }
  sqlq__task_leave(t);
  if (rc == SQLITE_OK) {
    /* (A task that ended the transaction has no savepoint left.) */
    if (bSavepoint && !sqlite3_get_autocommit(c->db) &&
        execControl(c, "RELEASE sqlq_task") != SQLITE_OK) {
      rollbackAll(c);
      *pbRerun = 1;
      return rc;
    }
    sqlq__result_set_changes(t->res, sqlite3_total_changes64(c->db) - nBefore,
                             sqlite3_last_insert_rowid(c->db));
  } else if (bSavepoint && !sqlite3_get_autocommit(c->db)) {
    if (execControl(c, "ROLLBACK TO sqlq_task") != SQLITE_OK ||
        execControl(c, "RELEASE sqlq_task") != SQLITE_OK) {
      /* Its changes may still be in the transaction: drop it all. */
      rollbackAll(c);
    }
  }
  return rc;
}

/* Fails every task of a that has not failed yet with rc and zMsg. */
static void failPending(sqlq__task **a, int n, int rc, const char *zMsg) {
  int i;
  for (i = 0; i < n; i++) {
    if (sqlq_result_status(a[i]->res) == 0) {
      sqlq__result_fail(a[i]->res, rc, zMsg);
    }
  }
}

static void runBatch(sqlq__conn *c, sqlq__task **a, int n,
                     const sqlq_options *o, sqlq__batch_stats *st);

void sqlq__conn_run_batch(sqlq__conn *c, sqlq__task **a, int n,
                          const sqlq_options *o, sqlq__batch_stats *st) {
  runBatch(c, a, n, o, st);
  waitFor(c, NULL, 0); /* a is the handle's: let go of it */
}

/* The body of sqlq__conn_run_batch(). */
static void runBatch(sqlq__conn *c, sqlq__task **a, int n,
                     const sqlq_options *o, sqlq__batch_stats *st) {
  int i, rc, nRun, nRerun = 0;
  for (;;) {
    int bLost = 0, nOk = 0;
    for (i = nRun = 0; i < n; i++)
      nRun += sqlq_result_status(a[i]->res) == 0;
    if (nRun == 0) return;
    setLimit(c, 0);
    if (rollbackAll(c)) {
      failPending(a, n, SQLITE_NOMEM,
                  "the writer could not roll back a failed transaction");
      return;
    }
    waitFor(c, a, n);
    rc = execControl(c, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK) {
      /* Waiting for a lock: the tasks that may wait no longer fail. */
      if ((rc & 0xff) == SQLITE_BUSY && failWaiters(c, a, n) > 0) continue;
      failPending(a, n, rc, sqlite3_errstr(rc));
      rollbackAll(c);
      return;
    }
    for (i = 0; i < n && !bLost; i++) {
      int bRerun;
      if (sqlq_result_status(a[i]->res) != 0) continue;
      rc = runInBatch(c, a[i], o, nRun > 1, &bRerun);
      bLost = sqlite3_get_autocommit(c->db);
      if (bRerun) {
        /* Again, unless the savepoint keeps failing: then it fails. */
        if (++nRerun > 2) {
          sqlq__result_fail(a[i]->res, SQLITE_NOMEM,
                            "the writer could not release the task's "
                            "savepoint; it was rolled back");
        }
        continue;
      }
      if (bLost && rc == SQLITE_OK) {
        /* It ended the transaction (INSERT OR ROLLBACK, an error it
        ** ignored): its changes are gone with it, so it failed. */
        sqlq__result_fail(a[i]->res, SQLITE_ABORT,
                          "the task ended the transaction, which was rolled "
                          "back");
      }
      nOk += rc == SQLITE_OK && !bLost;
    }
    if (bLost) continue; /* a[i-1] failed and took the transaction along */
    if (nOk == 0) {
      /* Nothing to keep (a lone task without a savepoint failed). */
      rollbackAll(c);
      return;
    }
    setLimit(c, 0);
    /* The tasks have run: COMMIT waits out a lock, whatever their limits. */
    waitFor(c, NULL, 0);
    rc = execControl(c, "COMMIT");
    if (rc == SQLITE_OK) {
      st->nBatches++;
      st->nBatched += nRun;
      if (nRun > st->nMax) st->nMax = nRun;
      return;
    }
    if (commitUnknown(c, rc)) {
      char zMsg[160];
      unknownMessage(zMsg, sizeof(zMsg), rc);
      failPending(a, n, SQLQ_EUNKNOWN, zMsg);
      return;
    }
    if (nRun == 1) {
      failPending(a, n, rc, sqlite3_errstr(rc));
      rollbackAll(c);
      return;
    }
    rollbackAll(c);
    /* Each alone: only the task that makes COMMIT fail fails. */
    for (i = 0; i < n; i++) {
      if (sqlq_result_status(a[i]->res) == 0) {
        runBatch(c, &a[i], 1, o, st);
      }
    }
    return;
  }
}

/* Runs a write task that runs alone and outside the group commit. */
static void runAlone(sqlq__conn *c, sqlq__task *t, const sqlq_options *o,
                     const char *zPath) {
  int64_t nBefore = sqlite3_total_changes64(c->db);
  int rc;
  setLimit(c, taskLimit(t, o));
  c->bDenied = 0;
  waitFor(c, &t, 1);
  if (t->call.flags & SQLQ_ISOLATED) {
    runIsolated(c, t, o, zPath);
    return;
  }
  c->bStateDenied = 0;
  c->eStateGuard = STATE_WRITE;
  c->bAutocommit = 1;
  rc = runWriteBody(c, t);
  c->bAutocommit = 0;
  c->eStateGuard = 0;
  if (checkClosedTxn(t, c, rc) == SQLITE_OK) {
    sqlq__result_set_changes(t->res, sqlite3_total_changes64(c->db) - nBefore,
                             sqlite3_last_insert_rowid(c->db));
  }
}

/* Runs a read task under its time limit and row cap. */
static void runRead(sqlq__conn *c, sqlq__task *t, const sqlq_options *o) {
  int64_t ms = taskLimit(t, o);
  int cap = o->max_rows;
  if (t->call.max_rows > 0 && t->call.max_rows < cap) cap = t->call.max_rows;
  setLimit(c, ms);
  c->bDenied = c->bStateDenied = 0;
  if (t->call.kind == SQLQ_READ_FN) {
    /* On the writer (":memory:"), a read function must not write either. */
    if (c->bWriter) execControl(c, "PRAGMA query_only=1");
    c->eStateGuard = STATE_READ;
    checkClosedTxn(t, c, runFn(c, t, c->db));
    c->eStateGuard = 0;
    if (c->bWriter) execControl(c, "PRAGMA query_only=0");
  } else {
    c->bGuard = 1;
    c->eStateGuard = STATE_READ;
    runStatement(c, t, cap);
    c->bGuard = c->eStateGuard = 0;
  }
}

void sqlq__conn_run(sqlq__conn *c, sqlq__task *t, const sqlq_options *o,
                    const char *zPath) {
  waitFor(c, NULL, 0);
  if (t->call.kind == SQLQ_READ || t->call.kind == SQLQ_READ_FN) {
    /* (A read waits for a lock only on a file not in WAL mode.) */
    waitFor(c, &t, 1);
    runRead(c, t, o);
    waitFor(c, NULL, 0);
  } else {
    runAlone(c, t, o, zPath);
    waitFor(c, NULL, 0); /* t goes back to the handle */
  }
}
