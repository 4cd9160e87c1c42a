/*
** timelimit.c: per-statement time limits, step budgets and interruption by
** connection id for SQLite, enforced by the connection's progress handler.
**
** Build it loadable (ext/timelimit.so, entry point sqlite3_timelimit_init, so
** ".load ext/timelimit" works) or compile it with -DSQLITE_CORE into a program
** and use the C API of timelimit.h.
**
** SQL functions (all SQLITE_DIRECTONLY: a view, trigger or CHECK constraint
** in a database file cannot call them):
**
**   timelimit(MS)          Sets this connection's per-statement time limit in
**                          milliseconds, 0 = none, for statements that start
**                          afterwards.  Returns the previous limit.
**   timelimit()            Returns the current limit.
**   timelimit_ops(N)       Sets the per-statement budget of VM steps, 0 =
**                          none.  Returns the previous budget.
**   timelimit_ops()        Returns the current budget.
**   timelimit_lock()       Locks the connection: SQL may then only lower the
**                          limits, may not interrupt other connections and
**                          sees only its own row of timelimit_activity.
**                          Returns 1.  Only the C API unlocks.
**   timelimit_id()         This connection's id, unique in the process.
**   timelimit_interrupt(ID) Stops the statement running now on connection ID.
**                          Returns 1 if one was running, else 0 (also for an
**                          unknown id).  Later statements are not affected.
**   timelimit_reason()     'deadline', 'ops' or 'cancel': why the extension
**                          stopped the last statement; NULL if the last
**                          statement ended without being stopped.
**
**   timelimit_activity     Eponymous virtual table, one row per connection
**                          that has the extension: id, state ('idle',
**                          'running', or 'unhooked' once the extension has
**                          seen that its hooks were replaced), sql (the
**                          running or last statement, at most 1023 bytes),
**                          elapsed_ms (NULL when idle), limit_ms, ops_limit,
**                          statements, timeouts, cancels, locked.
**
** Arguments must be integers in range: MS in 0..2147483647, N in
** 0..9223372036854775807.  Anything else (NULL, real, text, blob, negative,
** too large) fails with an error that names the function and the argument,
** for example "timelimit(ms): ms must be an integer, not text".
**
** A stopped statement fails with SQLITE_INTERRUPT ("interrupted"), as
** sqlite3_interrupt() makes it fail; the connection stays usable.
**
** HOW IT WORKS
** The extension owns two hooks of the connection: the progress handler
** (every TIMELIMIT_CHECK_STEPS VM steps it reads CLOCK_MONOTONIC, compares
** the step count with the budget and looks for a pending interrupt) and the
** trace hook (SQLITE_TRACE_STMT tells it a statement starts, and
** SQLITE_TRACE_PROFILE that it ended).  A host that installs its own progress
** handler or trace callback replaces the extension's, and limits stop on that
** connection; calling sqlite3_timelimit_init() again installs them again.
**
** A statement's clock starts at its first step.  A trigger program runs in
** the statement that fired it and never restarts the clock.  A statement
** that starts while another on the same connection is still active (nested
** inside a function, or interleaved) runs under the earlier of the two
** deadlines and budgets.  A statement stays active until it returns
** SQLITE_DONE or an error, or is reset or finalized.
**
** Statements that end a transaction (COMMIT, END, ROLLBACK, RELEASE) are
** never given a deadline or a budget and are never interrupted: an interrupt
** that lands during a COMMIT can report SQLITE_INTERRUPT for a transaction
** that did commit.
**
** Interrupts by id never call into the target connection: they set a flag in
** the extension's state that the target's own progress handler reads.  The
** registry of connections learns of a close from the destructor of a
** function's user data and forgets the connection before it is freed.
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include "timelimit.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TL_NEVER INT64_MAX /* A deadline or budget that never comes */
#define TL_NBUCKET 64      /* Buckets of each registry hash table */
#define TL_NINLINE 4       /* Active statements tracked without malloc */

/* Why a statement was stopped. */
static const char tlDeadline[] = "deadline";
static const char tlOps[] = "ops";
static const char tlCancel[] = "cancel";

/* One statement that has started and not yet ended on a connection. */
typedef struct TlStmt TlStmt;
struct TlStmt {
  sqlite3_stmt *pStmt; /* The statement */
  int64_t deadline;    /* CLOCK_MONOTONIC ns it must end by, or TL_NEVER */
  int64_t tickEnd;     /* TlConn.nTick at which its budget is spent */
  int64_t tick0;       /* TlConn.nTick when it started */
  unsigned steps0;     /* Its VM step counter when it started */
  int bExempt;         /* Ends a transaction: never stopped */
  const char *zStop;   /* Why it was stopped, or NULL */
};

/*
** The extension's state for one connection.
**
** Fields marked (owner) are used only by the thread inside the connection
** (hooks and SQL functions run under the connection's own mutex).  Fields
** marked (mu) may be read or written by other threads and are protected by
** mu; the owner writes them only while holding mu, so it may read them
** without it.
*/
typedef struct TlConn TlConn;
struct TlConn {
  sqlite3 *db;            /* The connection (never called by others) */
  int64_t id;             /* Process-unique id, from 1 */
  TlConn *pNextDb;        /* Registry chain by db (registry mutex) */
  TlConn *pNextId;        /* Registry chain by id (registry mutex) */
  pthread_mutex_t mu;     /* Protects the (mu) fields */
  TlStmt *aStmt;          /* Active statements, oldest first (owner;
                             entries change under mu) */
  int nStmt;              /* Number of active statements (mu) */
  int nAlloc;             /* Allocated entries of aStmt (owner) */
  int nExempt;            /* Active statements that end a txn (mu) */
  int64_t deadline;       /* Earliest deadline of aStmt (owner) */
  int64_t tickEnd;        /* Earliest budget end of aStmt (owner) */
  int64_t nTick;          /* Progress handler calls (owner) */
  int64_t iRun;           /* Runs started while idle, from 1 (mu) */
  atomic_llong cancelRun; /* Run to stop at the next check, or 0 */
  int64_t limitMs;        /* Time limit for new statements, 0=none (mu) */
  int64_t opsLimit;       /* Step budget for new statements, 0=none (mu) */
  int bLocked;            /* SQL may only lower limits (mu) */
  int bHooked;            /* This extension installed the hooks (owner) */
  int bUnhooked;          /* The hooks were seen to be replaced (mu) */
  const char *zReason;    /* Why the last statement stopped, or NULL (mu) */
  int64_t startNs;        /* When the current run started (mu) */
  int64_t nStatements;    /* Statements started (mu) */
  int64_t nTimeouts;      /* Statements stopped by deadline or budget (mu) */
  int64_t nCancels;       /* Statements stopped by an interrupt (mu) */
  char zSql[TIMELIMIT_SQL_MAX]; /* Running or last statement's text (mu) */
  TlStmt aInline[TL_NINLINE];   /* First entries of aStmt */
};

/*
** The registry of every connection that has the extension, for interrupts
** by id, the activity table and the C API.  Lock order: tlRegMu, then a
** connection's mu.  A connection's own hooks take only its mu.
*/
static pthread_mutex_t tlRegMu = PTHREAD_MUTEX_INITIALIZER;
static TlConn *tlByDb[TL_NBUCKET];
static TlConn *tlById[TL_NBUCKET];
static int64_t tlNextId = 1;
static int tlCount;

static int64_t tlNow(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static unsigned tlHashDb(sqlite3 *db) {
  return (unsigned)(((uintptr_t)db >> 4) % TL_NBUCKET);
}

static unsigned tlHashId(int64_t id) {
  return (unsigned)((uint64_t)id % TL_NBUCKET);
}

/* The state of db, or NULL.  The caller holds tlRegMu. */
static TlConn *tlFindDb(sqlite3 *db) {
  TlConn *c;
  for (c = tlByDb[tlHashDb(db)]; c && c->db != db; c = c->pNextDb) {
  }
  return c;
}

/* The state of the connection with that id, or NULL.  Holds tlRegMu. */
static TlConn *tlFindId(int64_t id) {
  TlConn *c;
  for (c = tlById[tlHashId(id)]; c && c->id != id; c = c->pNextId) {
  }
  return c;
}

static void tlLink(TlConn *c) {
  pthread_mutex_lock(&tlRegMu);
  c->id = tlNextId++;
  c->pNextDb = tlByDb[tlHashDb(c->db)];
  tlByDb[tlHashDb(c->db)] = c;
  c->pNextId = tlById[tlHashId(c->id)];
  tlById[tlHashId(c->id)] = c;
  tlCount++;
  pthread_mutex_unlock(&tlRegMu);
}

static void tlUnlink(TlConn *c) {
  TlConn **pp;
  pthread_mutex_lock(&tlRegMu);
  for (pp = &tlByDb[tlHashDb(c->db)]; *pp != c; pp = &(*pp)->pNextDb) {
  }
  *pp = c->pNextDb;
  for (pp = &tlById[tlHashId(c->id)]; *pp != c; pp = &(*pp)->pNextId) {
  }
  *pp = c->pNextId;
  tlCount--;
  pthread_mutex_unlock(&tlRegMu);
}

/*
** True if the statement text z begins with COMMIT, END, ROLLBACK or RELEASE
** after any white space and comments.
*/
static int tlEndsTxn(const char *z) {
  static const char *const azWord[] = {"commit", "end", "rollback", "release"};
  size_t i, n;
  for (;;) {
    while (*z == ' ' || (*z >= '\t' && *z <= '\r'))
      z++;
    if (z[0] == '-' && z[1] == '-') {
      z = strchr(z, '\n');
      if (z == NULL) return 0;
    } else if (z[0] == '/' && z[1] == '*') {
      z = strstr(z + 2, "*/");
      if (z == NULL) return 0;
      z += 2;
    } else {
      break;
    }
  }
  for (i = 0; i < sizeof(azWord) / sizeof(azWord[0]); i++) {
    n = strlen(azWord[i]);
    if (sqlite3_strnicmp(z, azWord[i], (int)n) == 0) {
      char ch = z[n];
      if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || ch == '_' || (ch & 0x80))) {
        return 1;
      }
    }
  }
  return 0;
}

/* Copies at most TIMELIMIT_SQL_MAX-1 bytes of z, cut at a UTF-8 boundary. */
static void tlCopySql(TlConn *c, const char *z) {
  size_t n = strlen(z);
  if (n >= sizeof(c->zSql)) {
    n = sizeof(c->zSql) - 1;
    while (n > 0 && ((unsigned char)z[n] & 0xc0) == 0x80)
      n--;
  }
  memcpy(c->zSql, z, n);
  c->zSql[n] = 0;
}

/* Index of pStmt among the active statements, or -1. */
static int tlIndexOf(TlConn *c, sqlite3_stmt *pStmt) {
  int i;
  for (i = c->nStmt - 1; i >= 0 && c->aStmt[i].pStmt != pStmt; i--) {
  }
  return i;
}

/* Recomputes the connection's earliest deadline and budget end. */
static void tlRecompute(TlConn *c) {
  int i;
  c->deadline = TL_NEVER;
  c->tickEnd = TL_NEVER;
  for (i = 0; i < c->nStmt; i++) {
    if (c->aStmt[i].deadline < c->deadline) c->deadline = c->aStmt[i].deadline;
    if (c->aStmt[i].tickEnd < c->tickEnd) c->tickEnd = c->aStmt[i].tickEnd;
  }
}

/* Removes entry i of the active statements.  The caller holds mu. */
static void tlRemove(TlConn *c, int i) {
  if (c->aStmt[i].bExempt) c->nExempt--;
  c->nStmt--;
  memmove(&c->aStmt[i], &c->aStmt[i + 1],
          (size_t)(c->nStmt - i) * sizeof(TlStmt));
  tlRecompute(c);
}

/*
** Forgets active statements that are no longer running on the connection:
** ones SQLite ran without a PROFILE event (it gives none to a statement it
** steps without saving its text).  Only the owner calls this, inside a step,
** so walking the connection's statements is safe.
*/
static void tlPrune(TlConn *c) {
  int i;
  for (i = c->nStmt - 1; i >= 0; i--) {
    sqlite3_stmt *p = NULL;
    while ((p = sqlite3_next_stmt(c->db, p)) != NULL &&
           p != c->aStmt[i].pStmt) {
    }
    if (p == NULL || !sqlite3_stmt_busy(p)) {
      pthread_mutex_lock(&c->mu);
      tlRemove(c, i);
      pthread_mutex_unlock(&c->mu);
    }
  }
}

/* Makes room for one more active statement; nonzero if out of memory. */
static int tlGrow(TlConn *c) {
  TlStmt *a;
  int n = c->nAlloc * 2;
  if (c->aStmt == c->aInline) {
    a = sqlite3_malloc64((sqlite3_uint64)n * sizeof(TlStmt));
    if (a) memcpy(a, c->aInline, sizeof(c->aInline));
  } else {
    a = sqlite3_realloc64(c->aStmt, (sqlite3_uint64)n * sizeof(TlStmt));
  }
  if (a == NULL) return 1;
  c->aStmt = a;
  c->nAlloc = n;
  return 0;
}

/*
** A statement starts (trace STMT).  A trigger program of an active statement
** reports the same statement again and is ignored.  If there is no memory to
** track a new statement, it runs under the limits of those already running.
*/
static void tlStart(TlConn *c, sqlite3_stmt *pStmt, const char *zSql) {
  TlStmt *s;
  int64_t now;
  if (tlIndexOf(c, pStmt) >= 0) return;
  if (c->nStmt > 0) tlPrune(c);
  if (c->nStmt == c->nAlloc && tlGrow(c)) return;
  now = tlNow();
  pthread_mutex_lock(&c->mu);
  if (c->nStmt == 0) {
    c->iRun++;
    c->startNs = now;
    tlCopySql(c, zSql);
  }
  c->nStatements++;
  s = &c->aStmt[c->nStmt++];
  s->pStmt = pStmt;
  s->tick0 = c->nTick;
  s->steps0 =
      (unsigned)sqlite3_stmt_status(pStmt, SQLITE_STMTSTATUS_VM_STEP, 0);
  s->zStop = NULL;
  s->bExempt = tlEndsTxn(zSql);
  s->deadline = TL_NEVER;
  s->tickEnd = TL_NEVER;
  if (s->bExempt) {
    c->nExempt++;
  } else {
    /*
    ** SQLite calls the progress handler when the statement's cumulative
    ** step counter reaches a multiple of TIMELIMIT_CHECK_STEPS, so the k-th
    ** call comes after k*CHECK - (steps0 % CHECK) steps of this run.
    */
    int64_t base = s->steps0 % TIMELIMIT_CHECK_STEPS;
    int64_t ops = c->opsLimit;
    if (c->limitMs > 0) s->deadline = now + c->limitMs * 1000000;
    if (ops > 0) {
      /* The first k with k*CHECK - base >= ops, without overflow. */
      s->tickEnd =
          c->nTick + ops / TIMELIMIT_CHECK_STEPS +
          (ops % TIMELIMIT_CHECK_STEPS + base + TIMELIMIT_CHECK_STEPS - 1) /
              TIMELIMIT_CHECK_STEPS;
    }
    if (c->deadline < s->deadline) s->deadline = c->deadline;
    if (c->tickEnd < s->tickEnd) s->tickEnd = c->tickEnd;
    if (s->deadline < c->deadline) c->deadline = s->deadline;
    if (s->tickEnd < c->tickEnd) c->tickEnd = s->tickEnd;
  }
  pthread_mutex_unlock(&c->mu);
}

/*
** A statement ended (trace PROFILE).  A statement that ran two check
** periods of steps without one progress handler call shows that the
** handler was replaced.
*/
static void tlEnd(TlConn *c, sqlite3_stmt *pStmt) {
  int i = tlIndexOf(c, pStmt);
  unsigned steps;
  if (i < 0) return;
  steps = (unsigned)sqlite3_stmt_status(pStmt, SQLITE_STMTSTATUS_VM_STEP, 0);
  pthread_mutex_lock(&c->mu);
  if (steps - c->aStmt[i].steps0 >= 2 * TIMELIMIT_CHECK_STEPS &&
      c->nTick == c->aStmt[i].tick0) {
    c->bUnhooked = 1;
  }
  c->zReason = c->aStmt[i].zStop;
  tlRemove(c, i);
  pthread_mutex_unlock(&c->mu);
}

static int tlTrace(unsigned mask, void *pCtx, void *p, void *x) {
  TlConn *c = pCtx;
  if (mask == SQLITE_TRACE_STMT) {
    tlStart(c, p, x);
  } else if (mask == SQLITE_TRACE_PROFILE) {
    tlEnd(c, p);
  }
  return 0;
}

/* Stops the newest active statement for reason z; returns 1. */
static int tlStop(TlConn *c, const char *z) {
  pthread_mutex_lock(&c->mu);
  c->aStmt[c->nStmt - 1].zStop = z;
  if (z == tlCancel) {
    c->nCancels++;
  } else {
    c->nTimeouts++;
  }
  pthread_mutex_unlock(&c->mu);
  return 1;
}

/* The progress handler: the only place where statements are stopped. */
static int tlProgress(void *pCtx) {
  TlConn *c = pCtx;
  c->nTick++;
  if (c->nStmt == 0 || c->nExempt > 0) return 0;
  if (atomic_load_explicit(&c->cancelRun, memory_order_relaxed) == c->iRun) {
    return tlStop(c, tlCancel);
  }
  if (c->nTick >= c->tickEnd) return tlStop(c, tlOps);
  if (c->deadline != TL_NEVER && tlNow() >= c->deadline) {
    return tlStop(c, tlDeadline);
  }
  return 0;
}

static void tlHook(TlConn *c) {
  sqlite3_progress_handler(c->db, TIMELIMIT_CHECK_STEPS, tlProgress, c);
  sqlite3_trace_v2(c->db, SQLITE_TRACE_STMT | SQLITE_TRACE_PROFILE, tlTrace, c);
  c->bHooked = 1;
  pthread_mutex_lock(&c->mu);
  c->bUnhooked = 0;
  pthread_mutex_unlock(&c->mu);
}

/*
** Destructor of the user data of the first SQL function: the connection is
** closing, or the function was replaced or could not be created.  Forgets
** the connection, removes the hooks that point at the state, frees it.
*/
static void tlDestroy(void *p) {
  TlConn *c = p;
  tlUnlink(c);
  if (c->bHooked) {
    sqlite3_progress_handler(c->db, 0, NULL, NULL);
    sqlite3_trace_v2(c->db, 0, NULL, NULL);
  }
  if (c->aStmt != c->aInline) sqlite3_free(c->aStmt);
  pthread_mutex_destroy(&c->mu);
  sqlite3_free(c);
}

/*
** Marks the hooks as replaced if the trace hook missed the statement that is
** calling one of the extension's functions right now.
*/
static void tlCheckHooks(TlConn *c) {
  if (c->nStmt == 0) {
    pthread_mutex_lock(&c->mu);
    c->bUnhooked = 1;
    pthread_mutex_unlock(&c->mu);
  }
}

/* Sets a formatted error message as the result of an SQL function. */
static void tlError(sqlite3_context *ctx, const char *zFmt, ...) {
  char *z;
  va_list ap;
  va_start(ap, zFmt);
  z = sqlite3_vmprintf(zFmt, ap);
  va_end(ap);
  if (z == NULL) {
    sqlite3_result_error_nomem(ctx);
  } else {
    sqlite3_result_error(ctx, z, -1);
    sqlite3_free(z);
  }
}

/*
** Reads an integer argument in lo..hi into *pOut, or sets an error naming
** zFunc and zArg and returns nonzero.
*/
static int tlIntArg(sqlite3_context *ctx, sqlite3_value *v, const char *zFunc,
                    const char *zArg, int64_t lo, int64_t hi, int64_t *pOut) {
  static const char *const azType[] = {"",     "integer", "real",
                                       "text", "blob",    "NULL"};
  int64_t x;
  int t = sqlite3_value_type(v);
  if (t != SQLITE_INTEGER) {
    tlError(ctx, "%s: %s must be an integer, not %s", zFunc, zArg, azType[t]);
    return 1;
  }
  x = sqlite3_value_int64(v);
  if (x < lo || x > hi) {
    tlError(ctx, "%s: %s must be between %lld and %lld, not %lld", zFunc, zArg,
            (long long)lo, (long long)hi, (long long)x);
    return 1;
  }
  *pOut = x;
  return 0;
}

/*
** The body of timelimit() and timelimit_ops(): reads or sets the setting
** *pField of c, which SQL on a locked connection may only lower.
*/
static void tlSqlSetting(sqlite3_context *ctx, int argc, sqlite3_value **argv,
                         int64_t *pField, const char *zFunc, const char *zArg,
                         int64_t hi) {
  TlConn *c = sqlite3_user_data(ctx);
  int64_t x, prev;
  tlCheckHooks(c);
  if (argc == 1 && tlIntArg(ctx, argv[0], zFunc, zArg, 0, hi, &x)) return;
  pthread_mutex_lock(&c->mu);
  prev = *pField;
  if (argc == 1 && c->bLocked && x != prev && (x == 0 || (prev && x > prev))) {
    pthread_mutex_unlock(&c->mu);
    tlError(ctx,
            "%s: the connection is locked: the limit may only be lowered "
            "(it is %lld, 0 = none)",
            zFunc, (long long)prev);
    return;
  }
  if (argc == 1) *pField = x;
  pthread_mutex_unlock(&c->mu);
  sqlite3_result_int64(ctx, prev);
}

static void tlSqlLimit(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  TlConn *c = sqlite3_user_data(ctx);
  tlSqlSetting(ctx, argc, argv, &c->limitMs, "timelimit(ms)", "ms",
               TIMELIMIT_MAX_MS);
}

static void tlSqlOps(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  TlConn *c = sqlite3_user_data(ctx);
  tlSqlSetting(ctx, argc, argv, &c->opsLimit, "timelimit_ops(n)", "n",
               INT64_MAX);
}

static void tlSqlLock(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  TlConn *c = sqlite3_user_data(ctx);
  (void)argc;
  (void)argv;
  tlCheckHooks(c);
  pthread_mutex_lock(&c->mu);
  c->bLocked = 1;
  pthread_mutex_unlock(&c->mu);
  sqlite3_result_int(ctx, 1);
}

static void tlSqlId(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  TlConn *c = sqlite3_user_data(ctx);
  (void)argc;
  (void)argv;
  tlCheckHooks(c);
  sqlite3_result_int64(ctx, c->id);
}

static void tlSqlInterrupt(sqlite3_context *ctx, int argc,
                           sqlite3_value **argv) {
  TlConn *c = sqlite3_user_data(ctx);
  int64_t id;
  int bLocked;
  (void)argc;
  tlCheckHooks(c);
  if (tlIntArg(ctx, argv[0], "timelimit_interrupt(id)", "id", INT64_MIN,
               INT64_MAX, &id)) {
    return;
  }
  pthread_mutex_lock(&c->mu);
  bLocked = c->bLocked;
  pthread_mutex_unlock(&c->mu);
  if (bLocked && id != c->id) {
    tlError(ctx, "timelimit_interrupt(id): the connection is locked: it may "
                 "not interrupt other connections");
    return;
  }
  sqlite3_result_int(ctx, timelimit_interrupt(id));
}

static void tlSqlReason(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  TlConn *c = sqlite3_user_data(ctx);
  const char *z;
  (void)argc;
  (void)argv;
  tlCheckHooks(c);
  pthread_mutex_lock(&c->mu);
  z = c->zReason;
  pthread_mutex_unlock(&c->mu);
  if (z) sqlite3_result_text(ctx, z, -1, SQLITE_STATIC);
}

/* ---- The timelimit_activity eponymous virtual table ---- */

/* A copy of one connection's row, taken under its mutex. */
typedef struct TlRow TlRow;
struct TlRow {
  int64_t id;          /* Connection id */
  const char *zState;  /* 'idle', 'running' or 'unhooked' */
  char *zSql;          /* Running or last statement (sqlite3_malloc) */
  int64_t elapsedMs;   /* Time the run has taken, or -1 if idle */
  int64_t limitMs;     /* Time limit */
  int64_t opsLimit;    /* Step budget */
  int64_t nStatements; /* Statements started */
  int64_t nTimeouts;   /* Statements stopped by deadline or budget */
  int64_t nCancels;    /* Statements stopped by interrupt */
  int bLocked;         /* Locked */
};

typedef struct TlVtab TlVtab;
struct TlVtab {
  sqlite3_vtab base; /* Base class */
  TlConn *c;         /* The connection that reads the table */
};

typedef struct TlCursor TlCursor;
struct TlCursor {
  sqlite3_vtab_cursor base; /* Base class */
  TlRow *aRow;              /* Snapshot of the rows */
  int nRow;                 /* Rows in aRow */
  int iRow;                 /* Current row */
};

enum {
  TL_COL_ID,
  TL_COL_STATE,
  TL_COL_SQL,
  TL_COL_ELAPSED,
  TL_COL_LIMIT,
  TL_COL_OPS,
  TL_COL_STATEMENTS,
  TL_COL_TIMEOUTS,
  TL_COL_CANCELS,
  TL_COL_LOCKED
};

static int tlVtabConnect(sqlite3 *db, void *pAux, int argc,
                         const char *const *argv, sqlite3_vtab **ppVtab,
                         char **pzErr) {
  TlVtab *v;
  int rc;
  (void)argc;
  (void)argv;
  (void)pzErr;
  rc = sqlite3_declare_vtab(
      db, "CREATE TABLE x(id INTEGER, state TEXT, sql TEXT, "
          "elapsed_ms INTEGER, limit_ms INTEGER, ops_limit INTEGER, "
          "statements INTEGER, timeouts INTEGER, cancels INTEGER, "
          "locked INTEGER)");
  if (rc == SQLITE_OK) rc = sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  if (rc != SQLITE_OK) return rc;
  v = sqlite3_malloc(sizeof(*v));
  if (v == NULL) return SQLITE_NOMEM;
  memset(v, 0, sizeof(*v));
  v->c = pAux;
  *ppVtab = &v->base;
  return SQLITE_OK;
}

static int tlVtabDisconnect(sqlite3_vtab *pVtab) {
  sqlite3_free(pVtab);
  return SQLITE_OK;
}

static int tlVtabBestIndex(sqlite3_vtab *pVtab, sqlite3_index_info *p) {
  (void)pVtab;
  p->estimatedCost = 100;
  p->estimatedRows = 100;
  return SQLITE_OK;
}

static int tlVtabOpen(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCur) {
  TlCursor *cur = sqlite3_malloc(sizeof(*cur));
  (void)pVtab;
  if (cur == NULL) return SQLITE_NOMEM;
  memset(cur, 0, sizeof(*cur));
  *ppCur = &cur->base;
  return SQLITE_OK;
}

static void tlCursorClear(TlCursor *cur) {
  int i;
  for (i = 0; i < cur->nRow; i++)
    sqlite3_free(cur->aRow[i].zSql);
  sqlite3_free(cur->aRow);
  cur->aRow = NULL;
  cur->nRow = cur->iRow = 0;
}

static int tlVtabClose(sqlite3_vtab_cursor *pCur) {
  tlCursorClear((TlCursor *)pCur);
  sqlite3_free(pCur);
  return SQLITE_OK;
}

/* Copies the row of c; nonzero if out of memory.  Holds tlRegMu. */
static int tlSnapshot(TlConn *c, int64_t now, TlRow *r) {
  pthread_mutex_lock(&c->mu);
  r->id = c->id;
  r->zState = c->bUnhooked ? "unhooked" : c->nStmt > 0 ? "running" : "idle";
  r->zSql = c->zSql[0] ? sqlite3_mprintf("%s", c->zSql) : NULL;
  r->elapsedMs = c->nStmt > 0 ? (now - c->startNs) / 1000000 : -1;
  r->limitMs = c->limitMs;
  r->opsLimit = c->opsLimit;
  r->nStatements = c->nStatements;
  r->nTimeouts = c->nTimeouts;
  r->nCancels = c->nCancels;
  r->bLocked = c->bLocked;
  pthread_mutex_unlock(&c->mu);
  return c->zSql[0] && r->zSql == NULL;
}

static int tlRowCmp(const void *a, const void *b) {
  int64_t x = ((const TlRow *)a)->id, y = ((const TlRow *)b)->id;
  return (x > y) - (x < y);
}

/*
** Takes a snapshot of every visible connection, in id order.  A locked
** connection sees only itself.
*/
static int tlVtabFilter(sqlite3_vtab_cursor *pCur, int idxNum,
                        const char *idxStr, int argc, sqlite3_value **argv) {
  TlCursor *cur = (TlCursor *)pCur;
  TlConn *self = ((TlVtab *)pCur->pVtab)->c;
  int64_t now = tlNow();
  int rc = SQLITE_OK, bLocked, i;
  (void)idxNum;
  (void)idxStr;
  (void)argc;
  (void)argv;
  tlCursorClear(cur);
  tlCheckHooks(self);
  pthread_mutex_lock(&self->mu);
  bLocked = self->bLocked;
  pthread_mutex_unlock(&self->mu);
  pthread_mutex_lock(&tlRegMu);
  cur->aRow = sqlite3_malloc64((sqlite3_uint64)tlCount * sizeof(TlRow));
  if (cur->aRow == NULL) {
    rc = SQLITE_NOMEM;
  } else if (bLocked) {
    rc = tlSnapshot(self, now, &cur->aRow[cur->nRow++]) ? SQLITE_NOMEM : 0;
  } else {
    for (i = 0; i < TL_NBUCKET && rc == SQLITE_OK; i++) {
      TlConn *c;
      for (c = tlById[i]; c && rc == SQLITE_OK; c = c->pNextId) {
        rc = tlSnapshot(c, now, &cur->aRow[cur->nRow++]) ? SQLITE_NOMEM : 0;
      }
    }
  }
  pthread_mutex_unlock(&tlRegMu);
  if (rc == SQLITE_OK) {
    qsort(cur->aRow, (size_t)cur->nRow, sizeof(TlRow), tlRowCmp);
  }
  return rc;
}

static int tlVtabNext(sqlite3_vtab_cursor *pCur) {
  ((TlCursor *)pCur)->iRow++;
  return SQLITE_OK;
}

static int tlVtabEof(sqlite3_vtab_cursor *pCur) {
  TlCursor *cur = (TlCursor *)pCur;
  return cur->iRow >= cur->nRow;
}

static int tlVtabColumn(sqlite3_vtab_cursor *pCur, sqlite3_context *ctx,
                        int iCol) {
  TlCursor *cur = (TlCursor *)pCur;
  const TlRow *r = &cur->aRow[cur->iRow];
  switch (iCol) {
  case TL_COL_ID:
    sqlite3_result_int64(ctx, r->id);
    break;
  case TL_COL_STATE:
    sqlite3_result_text(ctx, r->zState, -1, SQLITE_STATIC);
    break;
  case TL_COL_SQL:
    if (r->zSql) sqlite3_result_text(ctx, r->zSql, -1, SQLITE_TRANSIENT);
    break;
  case TL_COL_ELAPSED:
    if (r->elapsedMs >= 0) sqlite3_result_int64(ctx, r->elapsedMs);
    break;
  case TL_COL_LIMIT:
    sqlite3_result_int64(ctx, r->limitMs);
    break;
  case TL_COL_OPS:
    sqlite3_result_int64(ctx, r->opsLimit);
    break;
  case TL_COL_STATEMENTS:
    sqlite3_result_int64(ctx, r->nStatements);
    break;
  case TL_COL_TIMEOUTS:
    sqlite3_result_int64(ctx, r->nTimeouts);
    break;
  case TL_COL_CANCELS:
    sqlite3_result_int64(ctx, r->nCancels);
    break;
  default:
    sqlite3_result_int(ctx, r->bLocked);
    break;
  }
  return SQLITE_OK;
}

static int tlVtabRowid(sqlite3_vtab_cursor *pCur, sqlite3_int64 *pRowid) {
  TlCursor *cur = (TlCursor *)pCur;
  *pRowid = cur->aRow[cur->iRow].id;
  return SQLITE_OK;
}

/* An eponymous-only table: no xCreate, read-only, no transactions. */
static sqlite3_module tlModule = {
    .xConnect = tlVtabConnect,
    .xBestIndex = tlVtabBestIndex,
    .xDisconnect = tlVtabDisconnect,
    .xOpen = tlVtabOpen,
    .xClose = tlVtabClose,
    .xFilter = tlVtabFilter,
    .xNext = tlVtabNext,
    .xEof = tlVtabEof,
    .xColumn = tlVtabColumn,
    .xRowid = tlVtabRowid,
};

/* ---- Registration ---- */

static const struct {
  const char *zName;
  int nArg;
  void (*xFunc)(sqlite3_context *, int, sqlite3_value **);
} tlFuncs[] = {
    /* The first one carries the destructor of the connection's state. */
    {"timelimit", 1, tlSqlLimit},
    {"timelimit", 0, tlSqlLimit},
    {"timelimit_ops", 1, tlSqlOps},
    {"timelimit_ops", 0, tlSqlOps},
    {"timelimit_lock", 0, tlSqlLock},
    {"timelimit_id", 0, tlSqlId},
    {"timelimit_interrupt", 1, tlSqlInterrupt},
    {"timelimit_reason", 0, tlSqlReason},
};
#define TL_NFUNC ((int)(sizeof(tlFuncs) / sizeof(tlFuncs[0])))

/*
** Creates the functions and the table on db.  On failure, deletes what it
** created; deleting the first function frees c through its destructor (as
** does a failure to create it).
*/
static int tlCreateSql(sqlite3 *db, TlConn *c) {
  int rc = SQLITE_OK, i;
  for (i = 0; i < TL_NFUNC && rc == SQLITE_OK; i++) {
    rc = sqlite3_create_function_v2(
        db, tlFuncs[i].zName, tlFuncs[i].nArg, SQLITE_UTF8 | SQLITE_DIRECTONLY,
        c, tlFuncs[i].xFunc, NULL, NULL, i == 0 ? tlDestroy : NULL);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_module_v2(db, "timelimit_activity", &tlModule, c, NULL);
    if (rc == SQLITE_OK) return SQLITE_OK;
    i = TL_NFUNC + 1;
  }
  for (i -= 2; i >= 0; i--) {
    sqlite3_create_function_v2(db, tlFuncs[i].zName, tlFuncs[i].nArg,
                               SQLITE_UTF8, NULL, NULL, NULL, NULL, NULL);
  }
  return rc;
}

/*
** The loadable build is compiled with -fvisibility=hidden: only the entry
** point is exported, and the C API stays inside the shared object.
*/
#ifdef _WIN32
__declspec(dllexport)
#else
__attribute__((visibility("default")))
#endif
    int sqlite3_timelimit_init(sqlite3 *db, char **pzErrMsg,
                               const sqlite3_api_routines *pApi) {
  TlConn *c;
  int rc;
  SQLITE_EXTENSION_INIT2(pApi);
  pthread_mutex_lock(&tlRegMu);
  c = tlFindDb(db);
  pthread_mutex_unlock(&tlRegMu);
  if (c) {
    tlHook(c);
    return SQLITE_OK;
  }
  c = sqlite3_malloc(sizeof(*c));
  if (c == NULL) return SQLITE_NOMEM;
  memset(c, 0, sizeof(*c));
  if (pthread_mutex_init(&c->mu, NULL) != 0) {
    sqlite3_free(c);
    return SQLITE_NOMEM;
  }
  c->db = db;
  c->aStmt = c->aInline;
  c->nAlloc = TL_NINLINE;
  c->deadline = TL_NEVER;
  c->tickEnd = TL_NEVER;
  tlLink(c);
  rc = tlCreateSql(db, c);
  if (rc != SQLITE_OK) {
    if (pzErrMsg) {
      *pzErrMsg =
          sqlite3_mprintf("timelimit: cannot register: %s", sqlite3_errstr(rc));
    }
    return rc;
  }
  tlHook(c);
  return SQLITE_OK;
}

/* ---- C API (timelimit.h) ---- */

int timelimit_register(sqlite3 *db) {
  if (db == NULL) return SQLITE_MISUSE;
  return sqlite3_timelimit_init(db, NULL, NULL);
}

int timelimit_register_auto(void) {
  return sqlite3_auto_extension((void (*)(void))sqlite3_timelimit_init);
}

int timelimit_unregister_auto(void) {
  sqlite3_cancel_auto_extension((void (*)(void))sqlite3_timelimit_init);
  return SQLITE_OK;
}

/*
** Finds the state of db and locks the registry and it, or returns NULL.
** Release with tlRelease().
*/
static TlConn *tlAcquire(sqlite3 *db) {
  TlConn *c;
  if (db == NULL) return NULL;
  pthread_mutex_lock(&tlRegMu);
  c = tlFindDb(db);
  if (c == NULL) {
    pthread_mutex_unlock(&tlRegMu);
    return NULL;
  }
  pthread_mutex_lock(&c->mu);
  return c;
}

static void tlRelease(TlConn *c) {
  pthread_mutex_unlock(&c->mu);
  pthread_mutex_unlock(&tlRegMu);
}

/* Sets the (mu) field at byte offset off of db's state to x. */
static int tlSetField(sqlite3 *db, size_t off, int64_t x, int64_t hi) {
  TlConn *c;
  if (x < 0 || x > hi) return db ? SQLITE_RANGE : SQLITE_MISUSE;
  c = tlAcquire(db);
  if (c == NULL) return SQLITE_MISUSE;
  *(int64_t *)((char *)c + off) = x;
  tlRelease(c);
  return SQLITE_OK;
}

/* Reads the (mu) field at byte offset off of db's state into *pOut. */
static int tlGetField(sqlite3 *db, size_t off, int64_t *pOut) {
  TlConn *c;
  if (pOut == NULL) return SQLITE_MISUSE;
  c = tlAcquire(db);
  if (c == NULL) return SQLITE_MISUSE;
  *pOut = *(int64_t *)((char *)c + off);
  tlRelease(c);
  return SQLITE_OK;
}

int timelimit_set_limit(sqlite3 *db, int64_t ms) {
  return tlSetField(db, offsetof(TlConn, limitMs), ms, TIMELIMIT_MAX_MS);
}

int timelimit_get_limit(sqlite3 *db, int64_t *pMs) {
  return tlGetField(db, offsetof(TlConn, limitMs), pMs);
}

int timelimit_set_ops(sqlite3 *db, int64_t nOps) {
  return tlSetField(db, offsetof(TlConn, opsLimit), nOps, INT64_MAX);
}

int timelimit_get_ops(sqlite3 *db, int64_t *pnOps) {
  return tlGetField(db, offsetof(TlConn, opsLimit), pnOps);
}

int timelimit_id(sqlite3 *db, int64_t *pId) {
  return tlGetField(db, offsetof(TlConn, id), pId);
}

static int tlSetLock(sqlite3 *db, int bLocked) {
  TlConn *c = tlAcquire(db);
  if (c == NULL) return SQLITE_MISUSE;
  c->bLocked = bLocked;
  tlRelease(c);
  return SQLITE_OK;
}

int timelimit_lock(sqlite3 *db) {
  return tlSetLock(db, 1);
}

int timelimit_unlock(sqlite3 *db) {
  return tlSetLock(db, 0);
}

int timelimit_interrupt(int64_t id) {
  TlConn *c;
  int bStopped = 0;
  pthread_mutex_lock(&tlRegMu);
  c = tlFindId(id);
  if (c) {
    pthread_mutex_lock(&c->mu);
    if (c->nStmt > c->nExempt) {
      atomic_store_explicit(&c->cancelRun, c->iRun, memory_order_relaxed);
      bStopped = 1;
    }
    pthread_mutex_unlock(&c->mu);
  }
  pthread_mutex_unlock(&tlRegMu);
  return bStopped;
}

const char *timelimit_reason(sqlite3 *db) {
  const char *z;
  TlConn *c = tlAcquire(db);
  if (c == NULL) return NULL;
  z = c->zReason;
  tlRelease(c);
  return z;
}
