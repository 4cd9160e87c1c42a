/*
** timelimit.c: per-statement time limits, step budgets and interruption by
** connection id for SQLite, enforced by the connection's progress handler.
**
** Build it loadable (ext/timelimit.so, entry point sqlite3_timelimit_init, so
** ".load ext/timelimit" works) or compile it with -DSQLITE_CORE into a program
** and use the C API of timelimit.h.
**
** SQL functions (all SQLITE_DIRECTONLY: a view or trigger in a database file
** cannot call them; the ones that change state also refuse to run while a
** statement that writes is running, which is how a CHECK constraint in a
** file would call them on SQLite before 3.50):
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
**   timelimit_interrupt(ID) Stops the statements running now on connection
**                          ID.  Returns 1 if it will stop one, else 0 (also
**                          for an unknown id).  Later statements are not
**                          affected.
**   timelimit_reason()     'deadline', 'ops' or 'cancel': why the extension
**                          stopped the last statement; NULL if the last
**                          statement ended without being stopped.
**
**   timelimit_activity     Eponymous virtual table, one row per connection
**                          that has the extension: id, state ('idle' or
**                          'running'), sql (the running or last statement,
**                          at most 1023 bytes), elapsed_ms (NULL when idle),
**                          limit_ms, ops_limit, statements, timeouts,
**                          cancels, locked, hooks ('ok', or 'progress
**                          replaced', 'trace replaced', 'replaced' once the
**                          extension has seen the host replace its hooks).
**
** Arguments must be integers in range (a REAL with no fractional part, as
** JavaScript binds numbers, counts as an integer): MS in 0..2147483647, N in
** 0..9223372036854775807.  Anything else (NULL, 250.5, text, blob, negative,
** too large) fails with an error that names the function and the argument,
** for example "timelimit(ms): ms must be an integer, not text".
**
** A stopped statement fails with SQLITE_INTERRUPT ("interrupted"), as
** sqlite3_interrupt() makes it fail; the connection stays usable.
**
** HOW IT WORKS
** The extension owns two hooks of the connection.  The trace hook tells it
** that a statement starts (SQLITE_TRACE_STMT), has returned a row
** (SQLITE_TRACE_ROW) and has ended (SQLITE_TRACE_PROFILE); it keeps a record
** of every active statement, classified from the statement's own text
** (sqlite3_sql()), never from the trace text.  The progress handler runs
** every TIMELIMIT_CHECK_STEPS VM steps of the statement that is executing.
** The statements that are executing at that moment are the active ones that
** have no row ready (sqlite3_data_count() is 0): the one the check belongs
** to and the ones it is nested in.  Each of them is checked against its own
** deadline, budget and interrupts; one that is stopped makes the check
** return nonzero, which stops the innermost statement, and the others at
** their next check.  A statement that sits between rows is never checked
** and never stopped until it is stepped again.
**
** A statement's clock starts at its first step.  A trigger program runs in
** the statement that fired it and never restarts the clock.  A statement
** that starts while another on the same connection is still active (nested
** inside a function, or interleaved) runs under the earlier of the two
** deadlines and budgets.
**
** Statements that end a transaction (COMMIT, END, ROLLBACK, RELEASE) are
** never given a deadline or a budget and are never interrupted, and while
** one executes no check stops anything: an interrupt that lands during a
** COMMIT can report SQLITE_INTERRUPT for a transaction that did commit.
**
** Interrupts by id mark the statements active at that moment; the target's
** own progress handler stops them.  When the host has replaced the progress
** handler, an interrupt calls sqlite3_interrupt() instead, but only if the
** target runs exactly one statement, which is not a transaction end and has
** not yet returned a row (so it is executing, and the interrupt can reach
** neither a later statement nor a COMMIT); otherwise it returns 0.  The
** registry learns of a close from the destructors of the extension's
** functions and forgets the connection before SQLite frees it.
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
#define TL_BATCH 64        /* Activity rows copied per hold of tlRegMu */

/* Why a statement was stopped. */
static const char tlDeadline[] = "deadline";
static const char tlOps[] = "ops";
static const char tlCancel[] = "cancel";

/* One statement that has started and not yet ended on a connection. */
typedef struct TlStmt TlStmt;
struct TlStmt {
  sqlite3_stmt *pStmt; /* The statement */
  int64_t seq;         /* Order of start on the connection, from 1 */
  int64_t deadline;    /* CLOCK_MONOTONIC ns it must end by, or TL_NEVER */
  int64_t nTick;       /* Checks made while it was executing (owner) */
  int64_t tickEnd;     /* nTick at which its budget is spent, or TL_NEVER */
  unsigned steps0;     /* Its VM step counter when it started */
  int bAdopted;        /* Found by a check, not by the trace hook */
  int bExempt;         /* Ends a transaction: never stopped */
  int bRow;            /* Has returned a row, so may sit between rows */
  int bWaiting;        /* Sits between rows, as last known (owner) */
  const char *zStop;   /* Why it was stopped, or NULL */
};

/*
** The extension's state for one connection.
**
** Fields marked (owner) are used only by the thread inside the connection
** (hooks and SQL functions run under the connection's own mutex).  Fields
** marked (mu) may be read or written by other threads and are protected by
** mu; the owner writes them only while holding mu, so it may read them
** without it.  Fields marked (reg) are protected by tlRegMu.
*/
typedef struct TlConn TlConn;
struct TlConn {
  sqlite3 *db;            /* The connection (others only interrupt it) */
  int64_t id;             /* Process-unique id, from 1 */
  int nRef;               /* Registrations that point here (reg) */
  TlConn *pNextDb;        /* Registry chain by db (reg) */
  TlConn *pNextId;        /* Registry chain by id (reg) */
  TlConn *pPrev, *pNext;  /* Registry list in id order (reg) */
  pthread_mutex_t mu;     /* Protects the (mu) fields */
  TlStmt *aStmt;          /* Active statements, oldest first (owner;
                             entries change under mu) */
  int nStmt;              /* Number of active statements (mu) */
  int nAlloc;             /* Allocated entries of aStmt (owner) */
  int64_t nSeq;           /* Statements started, the last seq (mu) */
  sqlite3_stmt *pLastRow; /* Returned the row that is the last trace
                             event, or NULL (owner) */
  atomic_llong cancelSeq; /* Stop active statements of seq <= this */
  int64_t limitMs;        /* Time limit for new statements, 0=none (mu) */
  int64_t opsLimit;       /* Step budget for new statements, 0=none (mu) */
  int bLocked;            /* SQL may only lower limits (mu) */
  int bHooked;            /* The hooks were installed once (owner) */
  int bProgressGone;      /* The progress handler was replaced (mu) */
  int bTraceGone;         /* The trace hook was replaced (mu) */
  const char *zReason;    /* Why the last statement stopped, or NULL (mu) */
  int64_t startNs;        /* When the current run started (mu) */
  int64_t nTimeouts;      /* Statements stopped by deadline or budget (mu) */
  int64_t nCancels;       /* Statements stopped by an interrupt (mu) */
  char zSql[TIMELIMIT_SQL_MAX]; /* Running or last statement's text (mu) */
  TlStmt aInline[TL_NINLINE];   /* First entries of aStmt */
};

/*
** The registry of every connection that has the extension, for interrupts
** by id, the activity table and the C API.  Lock order: tlRegMu, then a
** connection's mu.  A connection's own hooks take only its mu.  While a
** connection is in the registry, its sqlite3 is open.
*/
static pthread_mutex_t tlRegMu = PTHREAD_MUTEX_INITIALIZER;
static TlConn *tlByDb[TL_NBUCKET];
static TlConn *tlById[TL_NBUCKET];
static TlConn *tlFirst, *tlLast; /* The list in id order */
static int64_t tlNextId = 1;

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

/* Enters c in the registry with the next id.  Holds tlRegMu. */
static void tlLink(TlConn *c) {
  c->id = tlNextId++;
  c->pNextDb = tlByDb[tlHashDb(c->db)];
  tlByDb[tlHashDb(c->db)] = c;
  c->pNextId = tlById[tlHashId(c->id)];
  tlById[tlHashId(c->id)] = c;
  c->pPrev = tlLast;
  c->pNext = NULL;
  if (tlLast) {
    tlLast->pNext = c;
  } else {
    tlFirst = c;
  }
  tlLast = c;
}

/* Removes c from the registry.  Holds tlRegMu. */
static void tlUnlink(TlConn *c) {
  TlConn **pp;
  for (pp = &tlByDb[tlHashDb(c->db)]; *pp != c; pp = &(*pp)->pNextDb) {
  }
  *pp = c->pNextDb;
  for (pp = &tlById[tlHashId(c->id)]; *pp != c; pp = &(*pp)->pNextId) {
  }
  *pp = c->pNextId;
  if (c->pPrev) {
    c->pPrev->pNext = c->pNext;
  } else {
    tlFirst = c->pNext;
  }
  if (c->pNext) {
    c->pNext->pPrev = c->pPrev;
  } else {
    tlLast = c->pPrev;
  }
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
static void tlCopySql(char *zOut, const char *z) {
  size_t n = strlen(z);
  if (n >= TIMELIMIT_SQL_MAX) {
    n = TIMELIMIT_SQL_MAX - 1;
    while (n > 0 && ((unsigned char)z[n] & 0xc0) == 0x80)
      n--;
  }
  memcpy(zOut, z, n);
  zOut[n] = 0;
}

/* Index of pStmt among the active statements, or -1. */
static int tlIndexOf(TlConn *c, sqlite3_stmt *pStmt) {
  int i;
  for (i = c->nStmt - 1; i >= 0 && c->aStmt[i].pStmt != pStmt; i--) {
  }
  return i;
}

/*
** Removes entry i of the active statements; the reason it was stopped for
** becomes the connection's last reason.  The caller holds mu.
*/
static void tlRemove(TlConn *c, int i) {
  c->zReason = c->aStmt[i].zStop;
  c->nStmt--;
  memmove(&c->aStmt[i], &c->aStmt[i + 1],
          (size_t)(c->nStmt - i) * sizeof(TlStmt));
}

/* True if pStmt is executing: it is active and has no row ready. */
static int tlExecuting(sqlite3_stmt *pStmt) {
  return sqlite3_stmt_busy(pStmt) && sqlite3_data_count(pStmt) == 0;
}

/* Removes entry i of the active statements, under mu. */
static void tlDrop(TlConn *c, int i) {
  pthread_mutex_lock(&c->mu);
  tlRemove(c, i);
  pthread_mutex_unlock(&c->mu);
}

/*
** Makes room for one more active statement; nonzero if out of memory.  The
** array is swapped under mu: an interrupter reads it under mu.
*/
static int tlGrow(TlConn *c) {
  TlStmt *a, *aOld = c->aStmt;
  int n = c->nAlloc * 2;
  a = sqlite3_malloc64((sqlite3_uint64)n * sizeof(TlStmt));
  if (a == NULL) return 1;
  pthread_mutex_lock(&c->mu);
  memcpy(a, aOld, (size_t)c->nStmt * sizeof(TlStmt));
  c->aStmt = a;
  c->nAlloc = n;
  pthread_mutex_unlock(&c->mu);
  if (aOld != c->aInline) sqlite3_free(aOld);
  return 0;
}

/*
** Begins tracking pStmt, which starts now (now is CLOCK_MONOTONIC ns).  It
** gets the connection's limits, lowered to what remains of those of the
** statements already active.  If there is no memory to track it, it runs
** under the limits of those.  Only the owner calls this.
*/
static void tlTrack(TlConn *c, sqlite3_stmt *pStmt, int64_t now,
                    int bAdopted) {
  const char *zSql = sqlite3_sql(pStmt);
  TlStmt *s;
  int i;
  if (c->nStmt == c->nAlloc && tlGrow(c)) return;
  pthread_mutex_lock(&c->mu);
  if (c->nStmt == 0) {
    c->startNs = now;
    tlCopySql(c->zSql, zSql ? zSql : "");
  }
  s = &c->aStmt[c->nStmt];
  memset(s, 0, sizeof(*s));
  s->pStmt = pStmt;
  s->seq = ++c->nSeq;
  s->steps0 =
      (unsigned)sqlite3_stmt_status(pStmt, SQLITE_STMTSTATUS_VM_STEP, 0);
  s->bAdopted = bAdopted;
  s->bExempt = zSql != NULL && tlEndsTxn(zSql);
  s->deadline = TL_NEVER;
  s->tickEnd = TL_NEVER;
  if (!s->bExempt) {
    /*
    ** SQLite calls the progress handler when the statement's cumulative
    ** step counter reaches a multiple of TIMELIMIT_CHECK_STEPS, so its k-th
    ** check comes after k*CHECK - (steps0 % CHECK) steps of this run: the
    ** first k with k*CHECK - base >= ops, without overflow.  A statement
    ** found by a check starts its budget there.
    */
    int64_t base = bAdopted ? 0 : s->steps0 % TIMELIMIT_CHECK_STEPS;
    int64_t ops = c->opsLimit;
    if (c->limitMs > 0) s->deadline = now + c->limitMs * 1000000;
    if (ops > 0) {
      s->tickEnd =
          ops / TIMELIMIT_CHECK_STEPS +
          (ops % TIMELIMIT_CHECK_STEPS + base + TIMELIMIT_CHECK_STEPS - 1) /
              TIMELIMIT_CHECK_STEPS;
    }
    for (i = 0; i < c->nStmt; i++) {
      const TlStmt *t = &c->aStmt[i];
      if (t->bExempt) continue;
      if (t->deadline < s->deadline) s->deadline = t->deadline;
      if (t->tickEnd != TL_NEVER && t->tickEnd - t->nTick < s->tickEnd) {
        s->tickEnd = t->tickEnd - t->nTick;
      }
    }
  }
  c->nStmt++;
  pthread_mutex_unlock(&c->mu);
}

/*
** A statement starts, or a trigger program of a running one does (trace
** STMT).  The trace text of a statement is its own text, or "-- " and that
** text when it is nested in another; anything else (a trigger program
** reports "-- TRIGGER name") belongs to a statement already running.
*/
static void tlStart(TlConn *c, sqlite3_stmt *pStmt, const char *zTrace) {
  const char *zSql = sqlite3_sql(pStmt);
  int i;
  if (zSql == NULL || zTrace == NULL) return;
  if (zTrace != zSql && strcmp(zTrace, zSql) != 0 &&
      (strncmp(zTrace, "-- ", 3) != 0 || strcmp(zTrace + 3, zSql) != 0)) {
    return;
  }
  if ((i = tlIndexOf(c, pStmt)) >= 0) {
    /*
    ** A foreign key action reports the statement's own text in the middle
    ** of its run: a statement the trace hook saw start is still in the same
    ** run (it reports every end).  One a check found may run anew.
    */
    if (!c->aStmt[i].bAdopted) return;
    tlDrop(c, i);
  }
  tlTrack(c, pStmt, tlNow(), 0);
}

/* A statement returned a row (trace ROW): it now sits between rows. */
static void tlRow(TlConn *c, sqlite3_stmt *pStmt) {
  int i = tlIndexOf(c, pStmt);
  if (i < 0) return;
  c->aStmt[i].bWaiting = 1;
  if (!c->aStmt[i].bRow) {
    pthread_mutex_lock(&c->mu);
    c->aStmt[i].bRow = 1;
    pthread_mutex_unlock(&c->mu);
  }
}

/*
** A statement ended (trace PROFILE).  One that ran a check period of steps
** without a single check of its own shows that the progress handler was
** replaced (a transaction end is never checked, so it shows nothing).
*/
static void tlEnd(TlConn *c, sqlite3_stmt *pStmt) {
  int i = tlIndexOf(c, pStmt);
  const TlStmt *s;
  unsigned steps;
  if (i < 0) return;
  s = &c->aStmt[i];
  steps = (unsigned)sqlite3_stmt_status(pStmt, SQLITE_STMTSTATUS_VM_STEP, 0) -
          s->steps0;
  pthread_mutex_lock(&c->mu);
  if (s->nTick == 0 && !s->bAdopted && !s->bExempt &&
      s->steps0 % TIMELIMIT_CHECK_STEPS + (uint64_t)steps >=
          TIMELIMIT_CHECK_STEPS) {
    c->bProgressGone = 1;
  }
  tlRemove(c, i);
  pthread_mutex_unlock(&c->mu);
}

static int tlTrace(unsigned mask, void *pCtx, void *p, void *x) {
  TlConn *c = pCtx;
  c->pLastRow = mask == SQLITE_TRACE_ROW ? p : NULL;
  if (mask == SQLITE_TRACE_STMT) {
    tlStart(c, p, x);
  } else if (mask == SQLITE_TRACE_ROW) {
    tlRow(c, p);
  } else if (mask == SQLITE_TRACE_PROFILE) {
    tlEnd(c, p);
  }
  return 0;
}

/* True if pStmt is a statement prepared on db (not finalized). */
static int tlIsPrepared(sqlite3 *db, sqlite3_stmt *pStmt) {
  sqlite3_stmt *p = NULL;
  while ((p = sqlite3_next_stmt(db, p)) != NULL && p != pStmt) {
  }
  return p != NULL;
}

/*
** Makes the record of active statements true, touching only statements
** that are still prepared on the connection (a record's statement may have
** been finalized unseen while the host had replaced the trace hook):
** forgets the ones that ended or were finalized unseen, or (if found by a
** check) started a new run; learns which ones sit between rows; and if none
** is executing, tracks the ones that are, with their clock starting now,
** and takes it that the trace hook was replaced.  With bKeepHalted (from
** a check), a statement that has halted is kept: it may be the one whose
** return brought the check, and its end is reported next.  A statement tracked this
** way has its run counter (SQLITE_STMTSTATUS_RUN) reset to 0, so that a new
** run of it, or a new statement at the same address, reads 1.  Only the
** owner calls this; its cost grows with the prepared statements.
*/
static void tlRefresh(TlConn *c, int64_t now, int bKeepHalted) {
  sqlite3_stmt *p = NULL;
  unsigned char aSeen[64];
  int i, bExec = 0, nSeen = c->nStmt < 64 ? c->nStmt : 64;
  memset(aSeen, 0, sizeof(aSeen));
  while ((p = sqlite3_next_stmt(c->db, p)) != NULL) {
    if ((i = tlIndexOf(c, p)) >= 0 && i < nSeen) aSeen[i] = 1;
  }
  for (i = c->nStmt - 1; i >= 0; i--) {
    TlStmt *s = &c->aStmt[i];
    if (!(i < nSeen ? aSeen[i] : tlIsPrepared(c->db, s->pStmt)) ||
        (!bKeepHalted && !sqlite3_stmt_busy(s->pStmt)) ||
        (s->bAdopted &&
         sqlite3_stmt_status(s->pStmt, SQLITE_STMTSTATUS_RUN, 0) != 0)) {
      tlDrop(c, i);
    } else {
      s->bWaiting = !tlExecuting(s->pStmt);
      bExec |= !s->bWaiting;
    }
  }
  if (bExec || (bKeepHalted && c->nStmt > 0)) return;
  while ((p = sqlite3_next_stmt(c->db, p)) != NULL) {
    if (tlExecuting(p) && tlIndexOf(c, p) < 0) {
      if (!c->bTraceGone) {
        pthread_mutex_lock(&c->mu);
        c->bTraceGone = 1;
        pthread_mutex_unlock(&c->mu);
      }
      sqlite3_stmt_status(p, SQLITE_STMTSTATUS_RUN, 1);
      tlTrack(c, p, now, 1);
    }
  }
}

/*
** Why statement s, which is executing, must stop, or NULL.  Counts the
** check against its budget.
*/
static const char *tlWhy(TlStmt *s, int64_t cancelSeq, int64_t *pNow) {
  s->nTick++;
  if (s->seq <= cancelSeq) return tlCancel;
  if (s->nTick >= s->tickEnd) return tlOps;
  if (s->deadline != TL_NEVER) {
    if (*pNow == 0) *pNow = tlNow();
    if (*pNow >= s->deadline) return tlDeadline;
  }
  return NULL;
}

/*
** The entry of the innermost statement, the one whose steps brought this
** check, or NULL: the newest that is executing; else the one whose row is
** the last trace event (the check runs as it returns that row); else, on a
** record made true (bChecked), the newest that has halted (the check runs as
** it returns).
*/
static TlStmt *tlInner(TlConn *c, int bChecked) {
  int i;
  for (i = c->nStmt - 1; i >= 0; i--) {
    if (!c->aStmt[i].bWaiting) return &c->aStmt[i];
  }
  if (c->pLastRow && (i = tlIndexOf(c, c->pLastRow)) >= 0) {
    return &c->aStmt[i];
  }
  for (i = c->nStmt - 1; bChecked && i >= 0; i--) {
    if (!sqlite3_stmt_busy(c->aStmt[i].pStmt)) return &c->aStmt[i];
  }
  return NULL;
}

/*
** The progress handler: the only place where the extension stops
** statements.  The statements to check are the innermost one (tlInner) and
** those it is nested in, which are executing.  The record says which
** without touching the statements.  Only when it names none, or one of them
** must stop, or the trace hook was replaced, is the record made true
** (tlRefresh) and checked again, so that nothing is stopped on a stale
** record.  Returns nonzero to stop the
** innermost statement; never while it ends a transaction.
*/
static int tlProgress(void *pCtx) {
  TlConn *c = pCtx;
  int64_t cancelSeq = atomic_load_explicit(&c->cancelSeq, memory_order_relaxed);
  int64_t now = 0;
  const char *zWhy = NULL;
  TlStmt *pInner;
  int i, bChecked = c->bTraceGone;
  /*
  ** Without the trace hook the record cannot follow statements that end and
  ** start: it is made true at every check.
  */
  if (bChecked) {
    now = tlNow();
    tlRefresh(c, now, 0);
  }
  for (;; bChecked = 1) {
    pInner = tlInner(c, bChecked);
    if (pInner && pInner->bExempt && bChecked) return 0;
    if (pInner && !pInner->bExempt) {
      for (i = c->nStmt - 1; i >= 0; i--) {
        TlStmt *s = &c->aStmt[i];
        const char *z;
        if ((s->bWaiting && s != pInner) || s->bExempt) continue;
        if ((z = tlWhy(s, cancelSeq, &now)) == NULL) continue;
        if (bChecked) {
          pthread_mutex_lock(&c->mu);
          if (s->zStop == NULL) s->zStop = z;
          pthread_mutex_unlock(&c->mu);
        }
        if (zWhy == NULL) zWhy = z;
      }
      if (zWhy == NULL || bChecked) break;
      /* Undo this pass's counts before the record is made true. */
      for (i = 0; i < c->nStmt; i++) {
        TlStmt *s = &c->aStmt[i];
        if ((!s->bWaiting || s == pInner) && !s->bExempt) s->nTick--;
      }
      zWhy = NULL;
    } else if (bChecked) {
      break;
    }
    if (now == 0) now = tlNow();
    tlRefresh(c, now, !c->bTraceGone);
  }
  if (zWhy == NULL) return 0;
  pthread_mutex_lock(&c->mu);
  if (pInner->zStop == NULL) pInner->zStop = zWhy;
  /* No end is reported for a statement found by a check. */
  if (pInner->bAdopted) c->zReason = pInner->zStop;
  if (zWhy == tlCancel) {
    c->nCancels++;
  } else {
    c->nTimeouts++;
  }
  pthread_mutex_unlock(&c->mu);
  return 1;
}

/*
** Installs the extension's hooks on the connection, after making the record
** of its statements true (some may have ended unseen while the hooks were
** not ours).  Only the owner calls this.
*/
static void tlHook(TlConn *c) {
  tlRefresh(c, tlNow(), 0);
  sqlite3_progress_handler(c->db, TIMELIMIT_CHECK_STEPS, tlProgress, c);
  sqlite3_trace_v2(c->db,
                   SQLITE_TRACE_STMT | SQLITE_TRACE_ROW | SQLITE_TRACE_PROFILE,
                   tlTrace, c);
  c->bHooked = 1;
  pthread_mutex_lock(&c->mu);
  c->bProgressGone = 0;
  c->bTraceGone = 0;
  pthread_mutex_unlock(&c->mu);
}

/*
** Drops one reference to c, held by one registration (a function or the
** table) or by the entry point while it registers.  The last one forgets the
** connection, removes the hooks and frees the state:
** the connection is closing, or the host deleted every registration.
*/
static void tlUnref(void *p) {
  TlConn *c = p;
  int nRef;
  pthread_mutex_lock(&tlRegMu);
  nRef = --c->nRef;
  if (nRef == 0) tlUnlink(c);
  pthread_mutex_unlock(&tlRegMu);
  if (nRef > 0) return;
  /*
  ** Whatever the record says, a hook may still point here: remove both
  ** (if the host had replaced them, its own go too).
  */
  if (c->bHooked) {
    sqlite3_progress_handler(c->db, 0, NULL, NULL);
    sqlite3_trace_v2(c->db, 0, NULL, NULL);
  }
  if (c->aStmt != c->aInline) sqlite3_free(c->aStmt);
  pthread_mutex_destroy(&c->mu);
  sqlite3_free(c);
}

/* Takes one more reference to c. */
static TlConn *tlRef(TlConn *c) {
  pthread_mutex_lock(&tlRegMu);
  c->nRef++;
  pthread_mutex_unlock(&tlRegMu);
  return c;
}

/*
** Called by every SQL function of the extension, which runs inside a
** statement: if no known statement is executing, the trace hook missed the
** caller, which is tracked from now on.
*/
static void tlSeeCaller(TlConn *c) {
  tlRefresh(c, tlNow(), 0);
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
** Refuses (with an error naming zFunc) to change state while a statement
** that writes is executing, and returns nonzero.  SQLite before 3.50 lets a
** CHECK constraint in a database file call a non-deterministic function
** even if it is SQLITE_DIRECTONLY, and a CHECK constraint runs only inside
** a statement that writes.  A DEFAULT, an index or a generated column can
** call them neither, on any version.
*/
static int tlRefuseInWrite(sqlite3_context *ctx, const char *zFunc) {
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  sqlite3_stmt *p = NULL;
  while ((p = sqlite3_next_stmt(db, p)) != NULL) {
    if (tlExecuting(p) && !sqlite3_stmt_readonly(p)) {
      tlError(ctx,
              "%s: may not be called while a statement that writes runs "
              "(a CHECK constraint could be calling it)",
              zFunc);
      return 1;
    }
  }
  return 0;
}

/*
** Reads an integer argument in lo..hi into *pOut, or sets an error naming
** zFunc and zArg and returns nonzero.  A REAL with no fractional part
** counts as an integer.
*/
static int tlIntArg(sqlite3_context *ctx, sqlite3_value *v, const char *zFunc,
                    const char *zArg, int64_t lo, int64_t hi, int64_t *pOut) {
  static const char *const azType[] = {"",     "integer", "real",
                                       "text", "blob",    "NULL"};
  int64_t x;
  int t = sqlite3_value_type(v);
  if (t == SQLITE_FLOAT) {
    double d = sqlite3_value_double(v);
    /* In range, the cast is defined, and exact only for an integral d
    ** (no libm: a static link needs no -lm). */
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
        d == (double)(int64_t)d) {
      t = SQLITE_INTEGER;
    }
  }
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
  int64_t x = 0, prev;
  tlSeeCaller(c);
  if (argc == 1 && (tlIntArg(ctx, argv[0], zFunc, zArg, 0, hi, &x) ||
                    tlRefuseInWrite(ctx, zFunc))) {
    return;
  }
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
  tlSeeCaller(c);
  if (tlRefuseInWrite(ctx, "timelimit_lock()")) return;
  pthread_mutex_lock(&c->mu);
  c->bLocked = 1;
  pthread_mutex_unlock(&c->mu);
  sqlite3_result_int(ctx, 1);
}

static void tlSqlId(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  TlConn *c = sqlite3_user_data(ctx);
  (void)argc;
  (void)argv;
  tlSeeCaller(c);
  sqlite3_result_int64(ctx, c->id);
}

static void tlSqlInterrupt(sqlite3_context *ctx, int argc,
                           sqlite3_value **argv) {
  TlConn *c = sqlite3_user_data(ctx);
  int64_t id;
  int bLocked;
  (void)argc;
  tlSeeCaller(c);
  if (tlIntArg(ctx, argv[0], "timelimit_interrupt(id)", "id", INT64_MIN,
               INT64_MAX, &id) ||
      tlRefuseInWrite(ctx, "timelimit_interrupt(id)")) {
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
  tlSeeCaller(c);
  pthread_mutex_lock(&c->mu);
  z = c->zReason;
  pthread_mutex_unlock(&c->mu);
  if (z) sqlite3_result_text(ctx, z, -1, SQLITE_STATIC);
}

/* ---- The timelimit_activity eponymous virtual table ---- */

/* A copy of one connection's row, taken under its mutex. */
typedef struct TlRow TlRow;
struct TlRow {
  int64_t id;                   /* Connection id */
  const char *zState;           /* 'idle' or 'running' */
  const char *zHooks;           /* 'ok', or which hooks were replaced */
  int64_t elapsedMs;            /* Time the run has taken, or -1 if idle */
  int64_t limitMs;              /* Time limit */
  int64_t opsLimit;             /* Step budget */
  int64_t nStatements;          /* Statements started */
  int64_t nTimeouts;            /* Statements stopped by deadline or budget */
  int64_t nCancels;             /* Statements stopped by interrupt */
  int bLocked;                  /* Locked */
  char zSql[TIMELIMIT_SQL_MAX]; /* Running or last statement, or "" */
};

typedef struct TlVtab TlVtab;
struct TlVtab {
  sqlite3_vtab base; /* Base class */
  TlConn *c;         /* The connection that reads the table */
};

/*
** A cursor reads the registry in batches of TL_BATCH rows, so that one scan
** never holds tlRegMu for more than a batch: every row is a consistent copy
** of its connection, but rows of different batches are not of one instant.
*/
typedef struct TlCursor TlCursor;
struct TlCursor {
  sqlite3_vtab_cursor base; /* Base class */
  TlRow aRow[TL_BATCH];     /* The current batch */
  int nRow;                 /* Rows in aRow */
  int iRow;                 /* Current row */
  int64_t lastId;           /* Id of the last row copied, 0 before any */
  int bLast;                /* No rows after this batch */
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
  TL_COL_LOCKED,
  TL_COL_HOOKS
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
          "locked INTEGER, hooks TEXT)");
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

static int tlVtabClose(sqlite3_vtab_cursor *pCur) {
  sqlite3_free(pCur);
  return SQLITE_OK;
}

/* Copies the row of c.  The caller holds tlRegMu. */
static void tlSnapshot(TlConn *c, int64_t now, TlRow *r) {
  static const char *const azHooks[] = {"ok", "progress replaced",
                                        "trace replaced", "replaced"};
  pthread_mutex_lock(&c->mu);
  r->id = c->id;
  r->zState = c->nStmt > 0 ? "running" : "idle";
  r->zHooks = azHooks[c->bProgressGone + 2 * c->bTraceGone];
  memcpy(r->zSql, c->zSql, strlen(c->zSql) + 1);
  r->elapsedMs = c->nStmt > 0 ? (now - c->startNs) / 1000000 : -1;
  r->limitMs = c->limitMs;
  r->opsLimit = c->opsLimit;
  r->nStatements = c->nSeq;
  r->nTimeouts = c->nTimeouts;
  r->nCancels = c->nCancels;
  r->bLocked = c->bLocked;
  pthread_mutex_unlock(&c->mu);
}

/*
** Copies the next batch of rows, in id order, after cur->lastId.  A locked
** connection sees only itself.
*/
static void tlFillBatch(TlCursor *cur, TlConn *self) {
  int64_t now = tlNow();
  int bLocked;
  TlConn *c;
  cur->nRow = cur->iRow = 0;
  pthread_mutex_lock(&self->mu);
  bLocked = self->bLocked;
  pthread_mutex_unlock(&self->mu);
  pthread_mutex_lock(&tlRegMu);
  if (bLocked) {
    if (cur->lastId == 0) tlSnapshot(self, now, &cur->aRow[cur->nRow++]);
    c = NULL;
  } else {
    c = cur->lastId ? tlFindId(cur->lastId) : NULL;
    if (c) {
      c = c->pNext;
    } else {
      for (c = tlFirst; c && c->id <= cur->lastId; c = c->pNext) {
      }
    }
    for (; c && cur->nRow < TL_BATCH; c = c->pNext) {
      tlSnapshot(c, now, &cur->aRow[cur->nRow++]);
    }
  }
  cur->bLast = c == NULL;
  if (cur->nRow > 0) cur->lastId = cur->aRow[cur->nRow - 1].id;
  pthread_mutex_unlock(&tlRegMu);
}

static int tlVtabFilter(sqlite3_vtab_cursor *pCur, int idxNum,
                        const char *idxStr, int argc, sqlite3_value **argv) {
  TlCursor *cur = (TlCursor *)pCur;
  TlConn *self = ((TlVtab *)pCur->pVtab)->c;
  (void)idxNum;
  (void)idxStr;
  (void)argc;
  (void)argv;
  tlSeeCaller(self);
  cur->lastId = 0;
  tlFillBatch(cur, self);
  return SQLITE_OK;
}

static int tlVtabNext(sqlite3_vtab_cursor *pCur) {
  TlCursor *cur = (TlCursor *)pCur;
  if (++cur->iRow == cur->nRow && !cur->bLast) {
    tlFillBatch(cur, ((TlVtab *)pCur->pVtab)->c);
  }
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
    if (r->zSql[0]) sqlite3_result_text(ctx, r->zSql, -1, SQLITE_TRANSIENT);
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
  case TL_COL_LOCKED:
    sqlite3_result_int(ctx, r->bLocked);
    break;
  default:
    sqlite3_result_text(ctx, r->zHooks, -1, SQLITE_STATIC);
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
** Creates the functions and the table on db, each holding a reference to c
** (SQLite calls the destructor also when a creation fails).  On failure,
** deletes what it created.
*/
static int tlCreateSql(sqlite3 *db, TlConn *c) {
  int rc = SQLITE_OK, i;
  for (i = 0; i < TL_NFUNC && rc == SQLITE_OK; i++) {
    rc = sqlite3_create_function_v2(
        db, tlFuncs[i].zName, tlFuncs[i].nArg, SQLITE_UTF8 | SQLITE_DIRECTONLY,
        tlRef(c), tlFuncs[i].xFunc, NULL, NULL, tlUnref);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_module_v2(db, "timelimit_activity", &tlModule,
                                  tlRef(c), tlUnref);
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
** True if db already has the extension's functions, registered by another
** copy of this code (one linked statically, one loaded from a file), whose
** state this copy cannot see.  A failed probe leaves an error code on the
** connection, which sqlite3_open() would report for an auto extension: a
** statement that prepares clears it.
*/
static int tlForeignCopy(sqlite3 *db) {
  sqlite3_stmt *p = NULL;
  int rc = sqlite3_prepare_v2(db, "SELECT timelimit_id()", -1, &p, NULL);
  sqlite3_finalize(p);
  if (rc == SQLITE_OK) return 1;
  p = NULL;
  sqlite3_prepare_v2(db, "SELECT 1", -1, &p, NULL);
  sqlite3_finalize(p);
  return 0;
}

#ifndef SQLITE_CORE
/*
** The entries of the API table the loadable build calls, each with the
** compile-time option that leaves it NULL.  A host whose SQLite lacks one
** gets an error, not a crash.
*/
static int tlCheckApi(const sqlite3_api_routines *pApi, char **pzErrMsg) {
#define TL_API(x, zWhy) {#x, pApi == NULL || pApi->x == NULL, zWhy}
#define TL_API_AS(x, zName) {zName, pApi == NULL || pApi->x == NULL, ""}
  const struct {
    const char *zName;
    int bMissing;
    const char *zWhy;
  } aNeed[] = {
      TL_API(progress_handler, " (built with SQLITE_OMIT_PROGRESS_CALLBACK?)"),
      TL_API(trace_v2, " (built with SQLITE_OMIT_TRACE?)"),
      TL_API(create_function_v2, ""),
      TL_API(create_module_v2, " (built with SQLITE_OMIT_VIRTUALTABLE?)"),
      TL_API(declare_vtab, " (built with SQLITE_OMIT_VIRTUALTABLE?)"),
      TL_API(vtab_config, " (built with SQLITE_OMIT_VIRTUALTABLE?)"),
      TL_API(stmt_status, ""),
      TL_API(stmt_busy, ""),
      TL_API(stmt_readonly, ""),
      TL_API(data_count, ""),
      TL_API(next_stmt, ""),
      TL_API(sql, ""),
      TL_API(prepare_v2, ""),
      TL_API(finalize, ""),
      TL_API_AS(interruptx, "interrupt"),
      TL_API(context_db_handle, ""),
      TL_API(user_data, ""),
      TL_API(malloc, ""),
      TL_API(malloc64, ""),
      TL_API(realloc64, ""),
      TL_API(free, ""),
      TL_API(mprintf, ""),
      TL_API(vmprintf, ""),
      TL_API(strnicmp, ""),
      TL_API(errstr, ""),
  };
#undef TL_API
#undef TL_API_AS
  size_t i;
  for (i = 0; i < sizeof(aNeed) / sizeof(aNeed[0]); i++) {
    if (aNeed[i].bMissing) {
      if (pzErrMsg && pApi && pApi->mprintf) {
        *pzErrMsg = pApi->mprintf("timelimit: this SQLite lacks sqlite3_%s(), "
                                  "which the extension needs%s",
                                  aNeed[i].zName, aNeed[i].zWhy);
      }
      return SQLITE_ERROR;
    }
  }
  return SQLITE_OK;
}
#endif

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
#ifndef SQLITE_CORE
  if (tlCheckApi(pApi, pzErrMsg) != SQLITE_OK) return SQLITE_ERROR;
#endif
  SQLITE_EXTENSION_INIT2(pApi);
  pthread_mutex_lock(&tlRegMu);
  c = tlFindDb(db);
  pthread_mutex_unlock(&tlRegMu);
  if (c) {
    tlHook(c);
    return SQLITE_OK;
  }
  if (tlForeignCopy(db)) {
    if (pzErrMsg) {
      *pzErrMsg = sqlite3_mprintf("timelimit: already registered on this "
                                  "connection by another copy of the "
                                  "extension");
    }
    return SQLITE_ERROR;
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
  c->nRef = 1; /* This function's own, dropped below */
  pthread_mutex_lock(&tlRegMu);
  tlLink(c);
  pthread_mutex_unlock(&tlRegMu);
  rc = tlCreateSql(db, c);
  if (rc == SQLITE_OK) {
    tlHook(c);
  } else if (pzErrMsg) {
    *pzErrMsg =
        sqlite3_mprintf("timelimit: cannot register: %s", sqlite3_errstr(rc));
  }
  tlUnref(c);
  return rc;
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

int timelimit_set_locked(sqlite3 *db, int64_t ms, int64_t nOps) {
  TlConn *c;
  if (db == NULL) return SQLITE_MISUSE;
  if (ms < 0 || ms > TIMELIMIT_MAX_MS || nOps < 0) return SQLITE_RANGE;
  c = tlAcquire(db);
  if (c == NULL) return SQLITE_MISUSE;
  c->limitMs = ms;
  c->opsLimit = nOps;
  c->bLocked = 1;
  tlRelease(c);
  return SQLITE_OK;
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

/*
** Marks the statements active on c for stopping at their next check, or,
** if the host replaced the progress handler, stops the one statement c runs
** with sqlite3_interrupt() when that is safe (see the header comment).  The
** registry lock keeps the connection open for the whole call; c's lock
** keeps its statements from starting or ending meanwhile.
*/
int timelimit_interrupt(int64_t id) {
  TlConn *c;
  int i, bStopped = 0;
  pthread_mutex_lock(&tlRegMu);
  c = tlFindId(id);
  if (c) {
    pthread_mutex_lock(&c->mu);
    if (!c->bProgressGone) {
      for (i = 0; i < c->nStmt && c->aStmt[i].bExempt; i++) {
      }
      if (i < c->nStmt) {
        atomic_store_explicit(&c->cancelSeq, c->nSeq, memory_order_relaxed);
        bStopped = 1;
      }
    } else if (!c->bTraceGone && c->nStmt == 1 && !c->aStmt[0].bExempt &&
               !c->aStmt[0].bRow) {
      c->aStmt[0].zStop = tlCancel;
      c->nCancels++;
      sqlite3_interrupt(c->db);
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
