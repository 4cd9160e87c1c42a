/*
** conn.c: the connections of an sqlq handle.
**
** Each connection is used by one thread at a time (SQLITE_OPEN_NOMUTEX) and
** has the timelimit extension registered and locked, so no task's SQL can
** raise or remove the limits the library sets for it.  It keeps a cache of
** prepared statements keyed by SQL text (reusing a statement instead of
** preparing it again: 1.7x more point lookups per second, measured here).
**
** An authorizer notes the transaction-control statements (BEGIN, COMMIT,
** SAVEPOINT, ...) a statement holds, and refuses them when told to: SQLite's
** parser finds them, not ours.  It also refuses, when told to, what would
** change the connection for the tasks after the current one (stateBits: a
** PRAGMA that sets a value, ATTACH, DETACH, TEMP schema objects).  A cached
** statement remembers what it holds, so the refusal holds for it too.
**
** This module knows nothing of tasks: run.c tells it what to refuse, how
** long to wait for a lock and what limit to set.
*/
#include "sqlq_int.h"
#include "timelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CACHE_SIZE 64 /* Prepared statements kept per connection */

typedef struct CacheEntry CacheEntry;
struct CacheEntry {
  uint64_t hash;       /* FNV-1a of zSql, 0 = empty slot */
  char *zSql;          /* The SQL text (malloc) */
  sqlite3_stmt *pStmt; /* Its prepared statement */
  uint64_t lastUse;    /* Value of useClock at its last use */
  int eSaw;            /* SQLQ__REFUSE_* bits of what it holds */
};

struct sqlq__conn {
  sqlite3 *db;                   /* The connection */
  char *zPath;                   /* What it opened (malloc) */
  int eRole;                     /* SQLQ__WRITER, _READER or _ISOLATED */
  const sqlq_options *o;         /* The handle's options */
  int64_t tlid;                  /* Its timelimit id */
  int64_t busyStartMs;           /* When the current wait for a lock began */
  int (*xStop)(void *);          /* Asked whether to stop waiting, or NULL */
  void *pStopArg;                /* Its argument */
  int eRefuse;                   /* SQLQ__REFUSE_* bits in force */
  int eSaw;                      /* REFUSE_* bits the authorizer saw */
  int eRefused;                  /* REFUSE_* bits it refused */
  uint64_t useClock;             /* Counts cache lookups */
  CacheEntry aCache[CACHE_SIZE]; /* Statement cache */
};

sqlite3 *sqlq__conn_db(sqlq__conn *c) {
  return c->db;
}

int sqlq__conn_role(sqlq__conn *c) {
  return c->eRole;
}

const char *sqlq__conn_path(sqlq__conn *c) {
  return c->zPath;
}

static int64_t monoMs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
** The busy handler: waits for a lock another process holds, in steps of at
** most 10 ms, for at most busy_timeout_ms, and stops as soon as xStop says.
*/
static int onBusy(void *p, int nPrior) {
  sqlq__conn *c = p;
  int64_t now = monoMs(), left;
  struct timespec ts;
  if (nPrior == 0) c->busyStartMs = now;
  left = c->busyStartMs + c->o->busy_timeout_ms - now;
  if (left <= 0 || (c->xStop && c->xStop(c->pStopArg))) return 0;
  if (left > 10) left = 10;
  ts.tv_sec = 0;
  ts.tv_nsec = (long)left * 1000000;
  nanosleep(&ts, NULL);
  return 1;
}

void sqlq__conn_on_busy(sqlq__conn *c, int (*xStop)(void *), void *pArg) {
  c->xStop = xStop;
  c->pStopArg = pArg;
}

void sqlq__conn_set_limit(sqlq__conn *c, int64_t ms) {
  timelimit_set_limit(c->db, ms);
  timelimit_set_ops(c->db, 0);
}

void sqlq__conn_interrupt(sqlq__conn *c) {
  timelimit_interrupt(c->tlid);
  timelimit_set_ops(c->db, 1);
}

void sqlq__conn_clear_interrupt(sqlq__conn *c) {
  timelimit_set_ops(c->db, 0);
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
** Which tasks may not run what the authorizer sees (op, z1, z2):
** SQLQ__REFUSE_READS and _WRITES bits, for what would change the connection
** for the tasks after it.  A PRAGMA whose argument names what it reads
*(table_info(t))
** is free; one that changes the database file itself (user_version), only
** the current transaction (defer_foreign_keys), or sets the database's
** quota (max_page_count, which then stays on the writer) is free in writes;
** any
** other PRAGMA that sets a value, ATTACH, DETACH and TEMP schema objects
** are refused in every task.
*/
static int stateBits(int op, const char *z1, const char *z2) {
  static const char *const azQuery[] = {
      "foreign_key_check", "foreign_key_list", "index_info",  "index_list",
      "index_xinfo",       "integrity_check",  "quick_check", "table_info",
      "table_list",        "table_xinfo"};
  static const char *const azDatabase[] = {
      "application_id", "defer_foreign_keys", "incremental_vacuum",
      "max_page_count", "optimize",           "user_version",
      "wal_checkpoint"};
  switch (op) {
  case SQLITE_PRAGMA:
    if (z2 == NULL ||
        isOneOf(z1, azQuery, sizeof(azQuery) / sizeof(*azQuery))) {
      return 0;
    }
    if (isOneOf(z1, azDatabase, sizeof(azDatabase) / sizeof(*azDatabase))) {
      return SQLQ__REFUSE_READS;
    }
    return SQLQ__REFUSE_READS | SQLQ__REFUSE_WRITES;
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
    return SQLQ__REFUSE_READS | SQLQ__REFUSE_WRITES;
  default:
    return 0;
  }
}

/*
** The authorizer: notes transaction control (BEGIN, COMMIT, END, ROLLBACK,
** SAVEPOINT, RELEASE) and what would change the connection (stateBits), and
** refuses what eRefuse says.
*/
static int authorize(void *p, int op, const char *z1, const char *z2,
                     const char *z3, const char *z4) {
  sqlq__conn *c = p;
  int bits = stateBits(op, z1, z2);
  (void)z3;
  (void)z4;
  if (op == SQLITE_TRANSACTION || op == SQLITE_SAVEPOINT) {
    bits |= SQLQ__REFUSE_TXN;
  }
  c->eSaw |= bits;
  if (c->eRefuse & bits) {
    c->eRefused |= c->eRefuse & bits;
    return SQLITE_DENY;
  }
  return SQLITE_OK;
}

void sqlq__conn_refuse(sqlq__conn *c, int eRefuse) {
  c->eRefuse = eRefuse;
  c->eRefused = 0;
}

int sqlq__conn_refused(sqlq__conn *c, const char **pzMsg) {
  if (c->eRefused & SQLQ__REFUSE_TXN) {
    *pzMsg = sqlq_strerror(SQLQ_ETXNCTL);
    return SQLQ_ETXNCTL;
  }
  if (c->eRefused) {
    *pzMsg = "a task may not change its connection (a PRAGMA that sets a "
             "value, ATTACH, DETACH, a TEMP table, view, index or trigger)";
    return SQLQ_EINVAL;
  }
  return 0;
}

/*
** Opens c->db as c->eRole says.  Returns an SQLite code, with a message in
** *pzErr on failure; c->db is closed again on failure.
*/
static int openDb(sqlq__conn *c, char **pzErr) {
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
  int rc;
  if (c->eRole == SQLQ__READER) {
    flags |= SQLITE_OPEN_READONLY;
  } else {
    flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  }
  rc = sqlite3_open_v2(c->zPath, &c->db, flags, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_extended_result_codes(c->db, 1);
  if (rc == SQLITE_OK) rc = timelimit_register(c->db);
  if (rc == SQLITE_OK) rc = timelimit_id(c->db, &c->tlid);
  if (rc == SQLITE_OK) rc = timelimit_lock(c->db);
  if (rc == SQLITE_OK) rc = sqlite3_busy_handler(c->db, onBusy, c);
  if (rc == SQLITE_OK) rc = sqlite3_set_authorizer(c->db, authorize, c);
  if (rc == SQLITE_OK && c->eRole != SQLQ__READER) {
    char zPragma[64];
    snprintf(zPragma, sizeof(zPragma), "PRAGMA synchronous=%d",
             c->o->synchronous);
    rc = sqlite3_exec(c->db, zPragma, NULL, NULL, NULL);
  }
  if (rc == SQLITE_OK && c->eRole == SQLQ__WRITER &&
      strcmp(c->zPath, ":memory:") != 0) {
    rc = sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  }
  if (rc != SQLITE_OK) {
    *pzErr = sqlite3_mprintf("%s: %s", c->zPath,
                             c->db ? sqlite3_errmsg(c->db) : "cannot open");
    sqlite3_close(c->db);
    c->db = NULL;
  }
  return rc;
}

int sqlq__conn_open(const char *zPath, int eRole, const sqlq_options *o,
                    sqlq__conn **ppConn, char **pzErr) {
  sqlq__conn *c;
  int rc;
  *ppConn = NULL;
  *pzErr = NULL;
  c = calloc(1, sizeof(*c));
  if (c == NULL) return SQLQ_ENOMEM;
  c->zPath = strdup(zPath);
  if (c->zPath == NULL) {
    free(c);
    return SQLQ_ENOMEM;
  }
  c->eRole = eRole;
  c->o = o;
  rc = openDb(c, pzErr);
  if (rc != SQLITE_OK) {
    sqlq__conn_close(c);
    return rc;
  }
  *ppConn = c;
  return 0;
}

/* Empties the statement cache. */
static void clearCache(sqlq__conn *c) {
  int i;
  for (i = 0; i < CACHE_SIZE; i++) {
    sqlite3_finalize(c->aCache[i].pStmt);
    free(c->aCache[i].zSql);
  }
  memset(c->aCache, 0, sizeof(c->aCache));
}

int sqlq__conn_reopen(sqlq__conn *c) {
  sqlite3 *pOld = c->db;
  int64_t oldId = c->tlid;
  char *zErr = NULL;
  int rc = openDb(c, &zErr);
  sqlite3_free(zErr);
  if (rc != SQLITE_OK) {
    c->db = pOld;
    c->tlid = oldId;
    return rc;
  }
  clearCache(c); /* Its statements are pOld's */
  sqlite3_close(pOld);
  return 0;
}

void sqlq__conn_close(sqlq__conn *c) {
  if (c == NULL) return;
  clearCache(c);
  sqlite3_close(c->db);
  free(c->zPath);
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

int sqlq__conn_prepare(sqlq__conn *c, const char *zSql, sqlite3_stmt **ppStmt,
                       const char **pzMsg) {
  uint64_t h = fnv1a(zSql);
  CacheEntry *e, *victim = &c->aCache[0];
  sqlite3_stmt *pStmt = NULL;
  const char *zTail = NULL;
  int i, rc;
  *ppStmt = NULL;
  *pzMsg = NULL;
  c->useClock++;
  for (i = 0; i < CACHE_SIZE; i++) {
    e = &c->aCache[i];
    if (e->hash == h && strcmp(e->zSql, zSql) == 0) {
      c->eRefused |= e->eSaw & c->eRefuse;
      rc = sqlq__conn_refused(c, pzMsg);
      if (rc) return rc;
      e->lastUse = c->useClock;
      *ppStmt = e->pStmt;
      return 0;
    }
    if (e->lastUse < victim->lastUse) victim = e;
  }
  c->eSaw = 0;
  rc = sqlite3_prepare_v3(c->db, zSql, -1, SQLITE_PREPARE_PERSISTENT, &pStmt,
                          &zTail);
  if (rc != SQLITE_OK) {
    int eRefused = sqlq__conn_refused(c, pzMsg);
    if (eRefused) return eRefused;
    *pzMsg = sqlite3_errmsg(c->db);
    return rc;
  }
  if (pStmt == NULL) {
    *pzMsg = "the sql holds no statement";
    return SQLQ_EINVAL;
  }
  if (zTail && !isBlank(zTail)) {
    sqlite3_stmt *pNext = NULL;
    sqlite3_prepare_v2(c->db, zTail, -1, &pNext, NULL);
    if (pNext) {
      sqlite3_finalize(pNext);
      sqlite3_finalize(pStmt);
      *pzMsg = "the sql holds more than one statement (use SQLQ_SCRIPT for "
               "several)";
      return SQLQ_EINVAL;
    }
  }
  sqlite3_finalize(victim->pStmt);
  free(victim->zSql);
  memset(victim, 0, sizeof(*victim));
  victim->zSql = strdup(zSql);
  if (victim->zSql == NULL) {
    sqlite3_finalize(pStmt);
    *pzMsg = sqlq_strerror(SQLQ_ENOMEM);
    return SQLQ_ENOMEM;
  }
  victim->hash = h;
  victim->pStmt = pStmt;
  victim->lastUse = c->useClock;
  victim->eSaw = c->eSaw;
  *ppStmt = pStmt;
  return 0;
}

/* The library's own statements are never refused. */
int sqlq__conn_control(sqlq__conn *c, const char *zSql) {
  sqlite3_stmt *pStmt;
  const char *zMsg;
  int eRefuse = c->eRefuse, eRefused = c->eRefused, rc;
  c->eRefuse = 0;
  rc = sqlq__conn_prepare(c, zSql, &pStmt, &zMsg);
  c->eRefuse = eRefuse;
  c->eRefused = eRefused;
  if (rc != 0) return rc > 0 ? rc : SQLITE_NOMEM;
  rc = sqlite3_step(pStmt);
  sqlite3_reset(pStmt);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Tries the cached ROLLBACK, then one prepared anew. */
int sqlq__conn_rollback(sqlq__conn *c) {
  if (sqlite3_get_autocommit(c->db)) return 0;
  sqlq__conn_control(c, "ROLLBACK");
  if (!sqlite3_get_autocommit(c->db)) {
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  }
  return !sqlite3_get_autocommit(c->db);
}
