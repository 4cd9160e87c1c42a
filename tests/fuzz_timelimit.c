/*
** fuzz_timelimit.c: libFuzzer harness of the timelimit extension, linked
** statically (-DSQLITE_CORE) through its C API.  libFuzzer provides main():
**
**   make fuzz FUZZ_TIME=60
**
** builds it with clang (-fsanitize=fuzzer,address,undefined) and runs it
** from the seeds in tests/fuzz_corpus, with a scratch corpus from mktemp as
** its first directory (libFuzzer adds new inputs there, so the committed
** seeds stay as they are); a crashing input lands in build/fuzz/.
**
** The input is a program of operations on up to NCONN in-memory connections
** (sqlite3_open(":memory:") + timelimit_register()): limits set from C and
** from SQL with any value, the lock from C and from SQL, statements built from
** a small grammar (recursive CTEs with small counts, calls of the extension's
** functions with any arguments, nest(sql[, mode]) that runs SQL on the same
** connection, transaction control behind comments and newlines, tables whose
** CHECK constraints call the extension), statements stepped once and left
** active, interrupts by id, reads of timelimit_activity, hooks replaced and
** reinstalled, SQL functions replaced, sqlite3_close_v2() with statements
** left open, and reopening.  Every statement is bounded by its row counts, so
** an input runs in milliseconds whatever the limits.
**
** Invariants (a violation prints "fuzz_timelimit: invariant N violated" and
** aborts):
**   1. SQL never raises a limit or budget of a locked connection (0 = none is
**      the highest value): checked with timelimit_get_limit/get_ops around
**      every SQL operation.
**   2. A top-level statement that ended (SQLITE_DONE or an error) under a
**      step budget B, with the extension's hooks in place, ran at most
**      B + TIMELIMIT_CHECK_STEPS + STEP_SLACK VM steps
**      (SQLITE_STMTSTATUS_VM_STEP; the slack is the rest of a loop body:
**      SQLite checks progress only at a loop's jump).
**   3. timelimit_reason() is NULL, "deadline", "ops" or "cancel".
**   4. On a locked connection, timelimit_activity shows only its own row:
**      count(*) WHERE id <> its id is 0, and the sql column is this
**      connection's (every statement carries a comment tag with its id).
**   5. The C setters obey their contract: SQLITE_OK and the value stored, or
**      SQLITE_RANGE and nothing changed.
**   6. SQL whose text calls none of the extension's functions (an INSERT or
**      UPDATE of constants into a table whose CHECK constraint calls them)
**      changes neither limit: README.md says a CHECK constraint cannot call
**      them (the write guard refuses them).
**
** Environment:
**   TLFUZZ_TRACE=1       print every operation and its SQL to stderr (to turn
**                        a crash file into a reproduction).
**
** Built with -DFUZZ_THREAD, a second thread reads timelimit_activity on a
** connection of its own all the time, for ThreadSanitizer.  Compile the
** extension without libFuzzer's coverage counters (both threads bump them,
** and TSan reports that):
**
**   clang -g -O1 -fsanitize=thread -std=c11 -D_POSIX_C_SOURCE=200809L **     -DSQLITE_CORE -Iext -c ext/timelimit.c -o build/timelimit_tsan.o
**   clang -g -O1 -fsanitize=fuzzer,thread -std=c11 **     -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -DSQLITE_CORE **     -DFUZZ_THREAD -Iext tests/fuzz_timelimit.c build/timelimit_tsan.o **     -lsqlite3 -pthread -o build/fuzz_timelimit_tsan
*/
#include "timelimit.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef FUZZ_THREAD
#include <pthread.h>
#endif

#define NCONN 3       /* Connections */
#define MAXOPEN 4     /* Top-level statements left active per connection */
#define MAXNESTED 4   /* Nested statements left active per connection */
#define MAXZOMBIE 2   /* Connections closed with statements left open */
#define MAXOPS 64     /* Operations per input */
#define MAXROWS 2000  /* Rows stepped by one operation */
#define ROWBUDGET 4000 /* Rows a statement may make, all loops together */
#define NESTBUDGET 30  /* Most nest() calls one statement may make */
#define INPUTROWS 12000 /* Rows all the statements of one input may make */
#define INPUTNESTS 100  /* nest() calls all of one input may make */
#define NHIST 16        /* Connection ids remembered for interrupts */
/*
** SQLite calls the progress handler at the first loop jump (OP_Goto,
** OP_Next...) after each multiple of TIMELIMIT_CHECK_STEPS steps, so a
** statement runs the rest of its loop body past the check that stops it: a
** budget of 1001 stops a plain CTE after 2008 steps, 7 more than B + 1000.
** Invariant 2 allows this much more.
*/
#define STEP_SLACK 500

/* ---- Input ---- */

typedef struct In In;
struct In {
  const uint8_t *p;
  size_t n;
};

static unsigned inByte(In *in) {
  if (in->n == 0) return 0;
  in->n--;
  return *in->p++;
}

static unsigned inPick(In *in, unsigned n) {
  return inByte(in) % n;
}

/* ---- Strings ---- */

typedef struct Buf Buf;
struct Buf {
  char *z;
  size_t n, cap;
};

static void bAppend(Buf *b, const char *z, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = (b->n + n + 1) * 2 + 64;
    char *p = realloc(b->z, cap);
    if (p == NULL) abort();
    b->z = p;
    b->cap = cap;
  }
  memcpy(b->z + b->n, z, n);
  b->n += n;
  b->z[b->n] = 0;
}

static void bPuts(Buf *b, const char *z) {
  bAppend(b, z, strlen(z));
}

static void bPrintf(Buf *b, const char *zFmt, ...) {
  char a[256];
  int n;
  va_list ap;
  va_start(ap, zFmt);
  n = vsnprintf(a, sizeof(a), zFmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof(a)) abort();
  bAppend(b, a, (size_t)n);
}

/* Appends z as the body of an SQL string literal. */
static void bQuote(Buf *b, const char *z) {
  for (; *z; z++) {
    bAppend(b, z, 1);
    if (*z == '\'') bAppend(b, z, 1);
  }
}

static void bFree(Buf *b) {
  free(b->z);
  memset(b, 0, sizeof(*b));
}

/* ---- State ---- */

/* A top-level statement stepped and left active (interleaved). */
typedef struct Open Open;
struct Open {
  sqlite3_stmt *pStmt;
  int bStarted; /* Stepped since prepare or reset */
  int bTrack;   /* Invariant 2 applies: it started under a budget, hooked */
  int epoch;    /* Conn.epoch when it started */
  int64_t budget;
  unsigned steps0;
  char *zSql;
};

typedef struct Conn Conn;
struct Conn {
  sqlite3 *db;   /* NULL if the slot is free */
  int64_t id;    /* timelimit_id() */
  int bHooked;   /* The extension's hooks are in place */
  int epoch;     /* Changes when the hooks are replaced or reinstalled */
  int bGone;     /* timelimit(ms) was replaced: the state is gone */
  int bLocked;   /* Known to be locked */
  int bLockMaybe; /* SQL that can call timelimit_lock() ran on it */
  int depth;     /* nest() depth right now */
  Open aOpen[MAXOPEN];
  int nOpen;
  sqlite3_stmt *aNested[MAXNESTED]; /* Left active by nest(sql, 1) */
  int nNested;
};

typedef struct Zombie Zombie;
struct Zombie {
  sqlite3 *db;
  int64_t id;
  sqlite3_stmt *a[MAXOPEN + MAXNESTED];
  int n;
};

static Conn aConn[NCONN];
static Zombie aZombie[MAXZOMBIE];
static int nZombie;
static int64_t aHist[NHIST]; /* Ids seen, live or not */
static int nHist;
static int bTrace;
static long nRowsLeft, nNestsLeft; /* What is left of INPUTROWS, INPUTNESTS */
static const char *zCurSql; /* For the messages of violations */

static void fail(int iInv, const char *zFmt, ...) {
  va_list ap;
  fprintf(stderr, "\n*** fuzz_timelimit: invariant %d violated: ", iInv);
  va_start(ap, zFmt);
  vfprintf(stderr, zFmt, ap);
  va_end(ap);
  fprintf(stderr, "\n*** last SQL: %s\n", zCurSql ? zCurSql : "(none)");
  fflush(stderr);
  abort();
}

static void trace(const char *zFmt, ...) {
  va_list ap;
  struct timespec ts;
  if (!bTrace) return;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  fprintf(stderr, "[%ld.%06ld] ", (long)ts.tv_sec % 1000, ts.tv_nsec / 1000);
  va_start(ap, zFmt);
  vfprintf(stderr, zFmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* ---- The application's SQL functions ---- */

/*
** nest(sql[, mode]): runs sql on the calling connection and returns how many
** rows it made.  mode 1 steps it once and leaves it active if it made a row;
** mode 2 passes an error on to the calling statement; otherwise an error
** returns minus its code.
*/
static void fnNest(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  Conn *c = sqlite3_user_data(ctx);
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  const char *zSql = (const char *)sqlite3_value_text(argv[0]);
  int mode = argc > 1 ? sqlite3_value_int(argv[1]) : 0;
  sqlite3_stmt *pStmt = NULL;
  int rc, nRow = 0;
  if (zSql == NULL || c->db != db || c->depth >= 4) {
    sqlite3_result_null(ctx);
    return;
  }
  c->depth++;
  rc = sqlite3_prepare_v2(db, zSql, -1, &pStmt, NULL);
  if (rc == SQLITE_OK && pStmt) {
    rc = sqlite3_step(pStmt);
    if (mode == 1 && rc == SQLITE_ROW && c->nNested < MAXNESTED) {
      c->aNested[c->nNested++] = pStmt;
      pStmt = NULL;
      nRow = 1;
    } else {
      while (rc == SQLITE_ROW && ++nRow < MAXROWS)
        rc = sqlite3_step(pStmt);
    }
  }
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) {
    sqlite3_result_int(ctx, nRow);
  } else if (mode == 2) {
    sqlite3_result_error(ctx, sqlite3_errmsg(db), -1);
    sqlite3_result_error_code(ctx, rc);
  } else {
    sqlite3_result_int(ctx, -rc);
  }
  sqlite3_finalize(pStmt);
  c->depth--;
}

/* What replaces one of the extension's functions. */
static void fnDummy(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  sqlite3_result_int(ctx, 42);
}

/* A host's own progress handler: never stops anything. */
static int appProgress(void *p) {
  (void)p;
  return 0;
}

/* A host's own trace callback. */
static int appTrace(unsigned mask, void *pCtx, void *p, void *x) {
  (void)mask;
  (void)pCtx;
  (void)p;
  (void)x;
  return 0;
}

/* ---- Invariants ---- */

/* Invariant 3 on db. */
static void checkReason(sqlite3 *db) {
  const char *z = timelimit_reason(db);
  if (z && strcmp(z, "deadline") != 0 && strcmp(z, "ops") != 0 &&
      strcmp(z, "cancel") != 0) {
    fail(3, "timelimit_reason() is \"%.40s\"", z);
  }
}

static void checkReasons(void) {
  int i;
  for (i = 0; i < NCONN; i++)
    if (aConn[i].db) checkReason(aConn[i].db);
  for (i = 0; i < nZombie; i++)
    checkReason(aZombie[i].db);
}

/* The limits of every connection before an SQL operation. */
typedef struct Snap Snap;
struct Snap {
  int bValid, bLocked;
  int64_t ms, ops;
};

static void snapTake(Snap *a) {
  int i;
  for (i = 0; i < NCONN; i++) {
    Conn *c = &aConn[i];
    a[i].bValid = c->db && !c->bGone &&
                  timelimit_get_limit(c->db, &a[i].ms) == SQLITE_OK &&
                  timelimit_get_ops(c->db, &a[i].ops) == SQLITE_OK;
    a[i].bLocked = c->bLocked;
  }
}

/* True if after is a higher limit than before (0 = none = the highest). */
static int raised(int64_t before, int64_t after) {
  if (before == 0) return 0;
  return after == 0 || after > before;
}

/* Runs a query of one integer on a top-level statement; -1 if it fails. */
static int64_t queryInt(Conn *c, const char *zSql) {
  sqlite3_stmt *pStmt;
  int64_t x = -1;
  if (sqlite3_prepare_v2(c->db, zSql, -1, &pStmt, NULL) != SQLITE_OK) return -1;
  if (sqlite3_step(pStmt) == SQLITE_ROW) x = sqlite3_column_int64(pStmt, 0);
  sqlite3_finalize(pStmt);
  return x;
}

/*
** After an SQL operation on connection k (-1: none of the fuzzer's):
** invariants 3, 1 and 6, and whether SQL locked a connection that may have
** locked itself.
*/
static void afterSql(const Snap *a, int k, const char *zSql) {
  int i;
  checkReasons();
  for (i = 0; i < NCONN; i++) {
    Conn *c = &aConn[i];
    int64_t ms, ops;
    if (!c->db || c->bGone) continue;
    if (i == k && zSql && strstr(zSql, "timelimit") == NULL &&
        a[i].bValid && timelimit_get_limit(c->db, &ms) == SQLITE_OK &&
        timelimit_get_ops(c->db, &ops) == SQLITE_OK &&
        (ms != a[i].ms || ops != a[i].ops)) {
      zCurSql = zSql;
      fail(6, "connection %lld: SQL that calls none of the extension's "
              "functions changed its limits from %lld ms, %lld steps to "
              "%lld ms, %lld steps (a CHECK constraint called them)",
           (long long)c->id, (long long)a[i].ms, (long long)a[i].ops,
           (long long)ms, (long long)ops);
    }
    if (a[i].bValid && a[i].bLocked &&
        timelimit_get_limit(c->db, &ms) == SQLITE_OK &&
        timelimit_get_ops(c->db, &ops) == SQLITE_OK) {
      if (raised(a[i].ms, ms)) {
        fail(1, "locked connection %lld: SQL raised the time limit from %lld "
                "to %lld ms",
             (long long)c->id, (long long)a[i].ms, (long long)ms);
      }
      if (raised(a[i].ops, ops)) {
        fail(1, "locked connection %lld: SQL raised the step budget from %lld "
                "to %lld",
             (long long)c->id, (long long)a[i].ops, (long long)ops);
      }
    }
    if (c->bLockMaybe && !c->bLocked) {
      char z[128];
      snprintf(z, sizeof(z),
               "/*c%lld*/SELECT locked FROM timelimit_activity WHERE id = %lld",
               (long long)c->id, (long long)c->id);
      if (queryInt(c, z) == 1) c->bLocked = 1;
      checkReason(c->db);
    }
  }
}

/* Invariant 2 for a top-level statement that has just ended. */
static void checkBudget(Conn *c, sqlite3_stmt *pStmt, int bTrack, int epoch,
                        int64_t budget, unsigned steps0, const char *zSql) {
  int64_t ran;
  if (!bTrack || !c->bHooked || c->bGone || c->epoch != epoch) return;
  ran = (unsigned)sqlite3_stmt_status(pStmt, SQLITE_STMTSTATUS_VM_STEP, 0) -
        steps0;
  if (ran - TIMELIMIT_CHECK_STEPS - STEP_SLACK > budget) {
    zCurSql = zSql;
    fail(2, "connection %lld: a top-level statement ran %lld VM steps under "
            "a budget of %lld",
         (long long)c->id, (long long)ran, (long long)budget);
  }
}

/* Records what invariant 2 needs just before the first step of pStmt. */
static void startTrack(Conn *c, sqlite3_stmt *pStmt, int bExempt, int *pbTrack,
                       int *pEpoch, int64_t *pBudget, unsigned *pSteps0) {
  *pBudget = 0;
  *pbTrack = !bExempt && c->bHooked && !c->bGone &&
             timelimit_get_ops(c->db, pBudget) == SQLITE_OK && *pBudget > 0;
  *pEpoch = c->epoch;
  *pSteps0 = (unsigned)sqlite3_stmt_status(pStmt, SQLITE_STMTSTATUS_VM_STEP, 0);
}

/* Invariant 4 on a locked connection. */
static void checkActivity(Conn *c) {
  char zTag[40], z[200];
  sqlite3_stmt *pStmt;
  int nRow = 0, rc;
  Snap a[NCONN];
  if (!c->bLocked || c->bGone) return;
  snprintf(zTag, sizeof(zTag), "/*c%lld*/", (long long)c->id);
  snapTake(a);
  /* The id as a literal: the fuzzer may have replaced timelimit_id(). */
  snprintf(z, sizeof(z),
           "%sSELECT count(*) FROM timelimit_activity WHERE id <> %lld", zTag,
           (long long)c->id);
  zCurSql = z;
  if (sqlite3_prepare_v2(c->db, z, -1, &pStmt, NULL) == SQLITE_OK) {
    if (sqlite3_step(pStmt) == SQLITE_ROW && sqlite3_column_int64(pStmt, 0)) {
      fail(4, "locked connection %lld sees %lld other rows of "
              "timelimit_activity",
           (long long)c->id, (long long)sqlite3_column_int64(pStmt, 0));
    }
    sqlite3_finalize(pStmt);
  }
  snprintf(z, sizeof(z), "%sSELECT id, sql FROM timelimit_activity", zTag);
  if (sqlite3_prepare_v2(c->db, z, -1, &pStmt, NULL) == SQLITE_OK) {
    while ((rc = sqlite3_step(pStmt)) == SQLITE_ROW) {
      const char *zSql = (const char *)sqlite3_column_text(pStmt, 1);
      nRow++;
      if (sqlite3_column_int64(pStmt, 0) != c->id) {
        fail(4, "locked connection %lld sees the row of connection %lld",
             (long long)c->id, (long long)sqlite3_column_int64(pStmt, 0));
      }
      if (zSql && strstr(zSql, zTag) == NULL) {
        fail(4, "locked connection %lld sees SQL that is not its own: %.200s",
             (long long)c->id, zSql);
      }
    }
    if (rc == SQLITE_DONE && nRow != 1) {
      fail(4, "locked connection %lld sees %d rows of timelimit_activity",
           (long long)c->id, nRow);
    }
    sqlite3_finalize(pStmt);
  }
  zCurSql = NULL;
  afterSql(a, -1, NULL);
}

/* ---- Connections ---- */

static void remember(int64_t id) {
  aHist[nHist++ % NHIST] = id;
}

static void connOpen(int k) {
  Conn *c = &aConn[k];
  sqlite3 *db = NULL;
  memset(c, 0, sizeof(*c));
  if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
      sqlite3_exec(db, "PRAGMA temp_store = MEMORY", NULL, NULL, NULL) !=
          SQLITE_OK ||
      timelimit_register(db) != SQLITE_OK ||
      timelimit_id(db, &c->id) != SQLITE_OK ||
      sqlite3_create_function_v2(db, "nest", 1, SQLITE_UTF8, c, fnNest, NULL,
                                 NULL, NULL) != SQLITE_OK ||
      sqlite3_create_function_v2(db, "nest", 2, SQLITE_UTF8, c, fnNest, NULL,
                                 NULL, NULL) != SQLITE_OK) {
    sqlite3_close(db);
    return;
  }
  c->db = db;
  c->bHooked = 1;
  remember(c->id);
  trace("open c%d: id %lld", k, (long long)c->id);
}

static void zombieFinalizeOne(int iz) {
  Zombie *z = &aZombie[iz];
  sqlite3_finalize(z->a[--z->n]); /* The last one closes the connection */
  if (z->n == 0) {
    aZombie[iz] = aZombie[--nZombie];
  }
}

/* sqlite3_close_v2() with the statements left open, if any. */
static void connClose(int k) {
  Conn *c = &aConn[k];
  int i, n = c->nOpen + c->nNested;
  trace("close_v2 c%d (id %lld) with %d statements open", k, (long long)c->id,
        n);
  if (n > 0 && nZombie == MAXZOMBIE) {
    while (aZombie[0].n > 0 && nZombie == MAXZOMBIE)
      zombieFinalizeOne(0);
  }
  if (n > 0) {
    Zombie *z = &aZombie[nZombie++];
    z->db = c->db;
    z->id = c->id;
    z->n = 0;
    for (i = 0; i < c->nOpen; i++) {
      z->a[z->n++] = c->aOpen[i].pStmt;
      free(c->aOpen[i].zSql);
    }
    for (i = 0; i < c->nNested; i++)
      z->a[z->n++] = c->aNested[i];
  }
  sqlite3_close_v2(c->db);
  if (n > 0) checkReasons(); /* On the zombie too */
  memset(c, 0, sizeof(*c));
}

/* Finalizes everything and closes every connection. */
static void cleanup(void) {
  int k, i;
  for (k = 0; k < NCONN; k++) {
    Conn *c = &aConn[k];
    if (!c->db) continue;
    for (i = 0; i < c->nOpen; i++) {
      sqlite3_finalize(c->aOpen[i].pStmt);
      free(c->aOpen[i].zSql);
    }
    for (i = 0; i < c->nNested; i++)
      sqlite3_finalize(c->aNested[i]);
    if (sqlite3_close(c->db) != SQLITE_OK) {
      fprintf(stderr, "fuzz_timelimit: sqlite3_close: %s\n",
              sqlite3_errmsg(c->db));
      abort();
    }
    memset(c, 0, sizeof(*c));
  }
  while (nZombie > 0)
    zombieFinalizeOne(0);
}

/* ---- The SQL grammar ---- */

static const char *const azVal[] = {
    "0",          "1",
    "2",          "10",
    "100",        "250",
    "999",        "1000",
    "1001",       "2500",
    "100000",     "-1",
    "-250",       "2147483647",
    "2147483648", "9223372036854775807",
    "-9223372036854775808", "250.0",
    "250.5",      "0.5",
    "1e300",      "-0.0",
    "'250'",      "'abc'",
    "''",         "NULL",
    "x'fa'",      "(1<<62)",
    "9223372036854775808", "' 5'",
};
#define NVAL ((unsigned)(sizeof(azVal) / sizeof(azVal[0])))

/* White space before END of a CASE (a newline fools a naive text check). */
static const char *const azWs[] = {" ", "\n", "\n\t", " /*w*/ ", " -- w\n",
                                   "\r\n"};

/* What may come before a transaction control statement. */
static const char *const azPrefix[] = {
    "",         "-- x\n", "/*y*/", "\n",    " \t",
    "/* a */ -- b\n", "--\n",  "/**/", "\n\n-- z\n/* w */\n"};

static const struct {
  const char *z;
  int bEnds; /* Begins with COMMIT, END, ROLLBACK or RELEASE */
} aTxn[] = {
    {"BEGIN", 0},          {"COMMIT", 1},           {"END", 1},
    {"ROLLBACK", 1},       {"SAVEPOINT a", 0},      {"RELEASE a", 1},
    {"ROLLBACK TO a", 1},  {"BEGIN IMMEDIATE", 0},  {"END TRANSACTION", 1},
    {"RELEASE SAVEPOINT a", 1}, {"commit", 1},      {"SAVEPOINT b", 0},
};
#define NTXN ((unsigned)(sizeof(aTxn) / sizeof(aTxn[0])))

typedef struct Gen Gen;
struct Gen {
  In *in;
  int k;       /* Connection index */
  long mult;   /* How many times the text being made runs per statement */
  int inCte;   /* Column x is in scope */
  int inTable; /* Columns a and b are in scope */
  int nestLvl; /* nest() levels around */
  int depth;   /* Expression depth */
};

static void genExpr(Gen *g, Buf *b);
static void genStmt(Gen *g, Buf *b, int *pbEnds);

static void genVal(Gen *g, Buf *b) {
  bPuts(b, azVal[inPick(g->in, NVAL)]);
}

/*
** A row count that keeps mult * n within ROWBUDGET and what is left of
** INPUTROWS.
*/
static long genRows(Gen *g) {
  static const long a[] = {1, 3, 20, 100, 500, 1000, 2000, 4000};
  long n = a[inPick(g->in, 8)];
  while (n > 1 && (g->mult * n > ROWBUDGET || g->mult * n > nRowsLeft))
    n = n > 4 ? n / 4 : 1;
  nRowsLeft -= g->mult * n;
  return n;
}

/* An argument of a setter: a value, or now and then an expression. */
static void genArg(Gen *g, Buf *b) {
  if (inPick(g->in, 4) == 0) {
    genExpr(g, b);
  } else {
    genVal(g, b);
  }
}

/* A connection id: real, past, made up, or computed. */
static void genId(Gen *g, Buf *b) {
  unsigned j;
  switch (inPick(g->in, 6)) {
  case 0:
    bPuts(b, "timelimit_id()");
    break;
  case 1:
    j = inPick(g->in, NCONN);
    bPrintf(b, "%lld", (long long)(aConn[j].db ? aConn[j].id : 0));
    break;
  case 2:
    bPrintf(b, "%lld",
            (long long)(nHist ? aHist[inPick(g->in, NHIST) % (nHist < NHIST
                                                                  ? nHist
                                                                  : NHIST)]
                              : 1));
    break;
  case 3:
    bPrintf(b, "%u", inPick(g->in, 8));
    break;
  case 4:
    j = inPick(g->in, NCONN);
    bPrintf(b, "%lld", (long long)aConn[j].id + 1);
    break;
  default:
    genArg(g, b);
    break;
  }
}

/* nest('stmt'[, mode]), or a value if it would cost too much. */
static void genNest(Gen *g, Buf *b) {
  Gen g2 = *g;
  Buf inner = {0};
  int bEnds;
  if (g->nestLvl >= 3 || g->mult > NESTBUDGET || g->mult > nNestsLeft) {
    genVal(g, b);
    return;
  }
  nNestsLeft -= g->mult;
  g2.nestLvl++;
  g2.depth = 0;
  g2.inCte = 0;
  g2.inTable = 0;
  genStmt(&g2, &inner, &bEnds);
  bPuts(b, "nest('");
  bQuote(b, inner.z);
  bPuts(b, "'");
  switch (inPick(g->in, 4)) {
  case 1:
    bPuts(b, ", 1");
    break;
  case 2:
    bPuts(b, ", 2");
    break;
  case 3:
    bPuts(b, ", 0");
    break;
  default:
    break;
  }
  bPuts(b, ")");
  bFree(&inner);
}

static void genExpr(Gen *g, Buf *b) {
  static const char *const azOp[] = {" + ", " - ", " * ", " || ", " = ",
                                     " < ", " AND ", " OR ", " % "};
  unsigned i;
  if (g->depth >= 4) {
    genVal(g, b);
    return;
  }
  g->depth++;
  switch (inPick(g->in, 15)) {
  case 0:
    genVal(g, b);
    break;
  case 1:
    if (g->inCte) {
      bPuts(b, "x");
    } else if (g->inTable) {
      bPuts(b, inPick(g->in, 2) ? "b" : "a");
    } else {
      genVal(g, b);
    }
    break;
  case 2:
  case 3:
    bPuts(b, inPick(g->in, 2) ? "timelimit(" : "timelimit_ops(");
    if (inPick(g->in, 5)) genArg(g, b);
    bPuts(b, ")");
    break;
  case 4:
    bPuts(b, "timelimit_lock()");
    break;
  case 5:
    bPuts(b, inPick(g->in, 2) ? "timelimit_id()" : "timelimit_reason()");
    break;
  case 6:
    bPuts(b, "timelimit_interrupt(");
    genId(g, b);
    bPuts(b, ")");
    break;
  case 7:
  case 8:
    genNest(g, b);
    break;
  case 9:
    bPuts(b, "CASE WHEN ");
    genExpr(g, b);
    bPuts(b, " THEN ");
    genExpr(g, b);
    bPuts(b, " ELSE ");
    genExpr(g, b);
    i = inPick(g->in, 6);
    bPuts(b, azWs[i]);
    bPuts(b, "END");
    break;
  case 10:
    bPuts(b, "(");
    genExpr(g, b);
    bPuts(b, azOp[inPick(g->in, 9)]);
    genExpr(g, b);
    bPuts(b, ")");
    break;
  case 11:
    /* A scan of the table costs about what a nest() call costs. */
    if (g->mult > NESTBUDGET || g->mult > nNestsLeft) {
      genVal(g, b);
      break;
    }
    nNestsLeft -= g->mult;
    switch (inPick(g->in, 4)) {
    case 0:
      bPuts(b, "(SELECT count(*) FROM timelimit_activity)");
      break;
    case 1:
      bPuts(b, "(SELECT group_concat(sql) FROM timelimit_activity)");
      break;
    case 2:
      bPuts(b, "(SELECT max(id) FROM timelimit_activity)");
      break;
    default:
      bPuts(b, "(SELECT sum(locked) FROM timelimit_activity)");
      break;
    }
    break;
  case 12:
    bPuts(b, inPick(g->in, 2) ? "coalesce(" : "ifnull(");
    genExpr(g, b);
    bPuts(b, ", ");
    genExpr(g, b);
    bPuts(b, ")");
    break;
  case 13:
    bPuts(b, inPick(g->in, 2) ? "typeof(" : "abs(");
    genExpr(g, b);
    bPuts(b, ")");
    break;
  default:
    genVal(g, b);
    break;
  }
  g->depth--;
}

/* WITH RECURSIVE c(x) AS (... x < n): the CTE of n rows. */
static long genCte(Gen *g, Buf *b) {
  long n = genRows(g);
  bPrintf(b,
          "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
          "WHERE x<%ld) ",
          n);
  return n;
}

/* A statement of the grammar; *pbEnds: it begins with a transaction end. */
static void genStmt(Gen *g, Buf *b, int *pbEnds) {
  static const char *const azAgg[] = {"count(", "max(", "sum(", "min(",
                                      "total(length("};
  unsigned t = inPick(g->in, 3), i;
  int iTable = (int)inPick(g->in, 2), a;
  long n;
  Gen g2;
  unsigned kind = inPick(g->in, 14);
  *pbEnds = 0;
  if (kind != 6 && kind != 7) {
    /* The tag of invariant 4 (a transaction statement has it at its end). */
    bPrintf(b, "/*c%lld*/", (long long)aConn[g->k].id);
  }
  switch (kind) {
  case 0:
  case 1:
    bPuts(b, "SELECT ");
    genExpr(g, b);
    if (inPick(g->in, 2)) {
      bPuts(b, ", ");
      genExpr(g, b);
    }
    break;
  case 2:
  case 3:
  case 4:
    g2 = *g;
    g2.mult *= genCte(g, b);
    g2.inCte = 1;
    a = (int)inPick(g->in, 5);
    bPuts(b, "SELECT ");
    bPuts(b, azAgg[a]);
    genExpr(&g2, b);
    bPuts(b, a == 4 ? ")) FROM c" : ") FROM c");
    if (inPick(g->in, 3) == 0) {
      bPuts(b, " WHERE ");
      genExpr(&g2, b);
    }
    break;
  case 5:
    /* Many rows: left active, it is an interleaved statement. */
    g2 = *g;
    g2.mult *= genCte(g, b);
    g2.inCte = 1;
    bPuts(b, "SELECT x, ");
    genExpr(&g2, b);
    bPuts(b, " FROM c");
    break;
  case 6:
  case 7:
    a = (int)inPick(g->in, NTXN);
    *pbEnds = aTxn[a].bEnds;
    i = inPick(g->in, 9);
    bPuts(b, azPrefix[i]);
    bPuts(b, aTxn[a].z);
    bPrintf(b, " /*c%lld*/", (long long)aConn[g->k].id);
    break;
  case 8:
    /* A table whose CHECK constraint calls the extension per row. */
    bPrintf(b, "CREATE %sTABLE IF NOT EXISTS t%d(a, b CHECK(",
            t == 0 ? "TEMP " : "", iTable);
    switch (inPick(g->in, 5)) {
    case 0:
      bPuts(b, inPick(g->in, 2) ? "timelimit(b)" : "timelimit_ops(b)");
      break;
    case 1:
      bPuts(b, inPick(g->in, 2) ? "timelimit(" : "timelimit_ops(");
      genVal(g, b);
      bPuts(b, ")");
      break;
    case 2:
      bPuts(b, inPick(g->in, 2) ? "timelimit_lock()" : "timelimit_interrupt(b)");
      break;
    default:
      g2 = *g;
      g2.inTable = 1;
      g2.inCte = 0;
      g2.mult = 200;
      genExpr(&g2, b);
      break;
    }
    bPuts(b, inPick(g->in, 4) ? " IS NOT NULL OR 1))" : "))");
    break;
  case 9:
    if (t == 0) {
      bPrintf(b, "INSERT INTO t%d VALUES(", iTable);
      genExpr(g, b);
      bPuts(b, ", ");
      genArg(g, b);
      bPuts(b, ")");
    } else {
      g2 = *g;
      g2.mult = g->mult * 200;
      n = genRows(&g2);
      bPrintf(b,
              "INSERT INTO t%d WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
              "SELECT x+1 FROM c WHERE x<%ld) SELECT x, ",
              iTable, n > 200 ? 200 : n);
      genVal(g, b);
      bPuts(b, " FROM c");
    }
    break;
  case 10:
    switch (t) {
    case 0:
      bPrintf(b, "UPDATE t%d SET b = ", iTable);
      genVal(g, b);
      bPuts(b, " WHERE rowid <= 20");
      break;
    case 1:
      bPrintf(b, "DELETE FROM t%d WHERE rowid %% 2 = 0 OR rowid > 100",
              iTable);
      break;
    default:
      bPrintf(b, "%s TABLE IF EXISTS t%d",
              inPick(g->in, 4) ? "SELECT count(*), total(length(b)) FROM"
                               : "DROP",
              iTable);
      break;
    }
    break;
  case 11:
    switch (t) {
    case 0:
      bPuts(b, "SELECT * FROM timelimit_activity");
      break;
    case 1:
      bPuts(b, "SELECT id, state, sql, elapsed_ms, limit_ms, ops_limit, "
               "statements, timeouts, cancels, locked FROM "
               "timelimit_activity WHERE ");
      switch (inPick(g->in, 4)) {
      case 0:
        bPuts(b, "id = timelimit_id()");
        break;
      case 1:
        bPuts(b, "locked");
        break;
      case 2:
        bPuts(b, "state = 'running'");
        break;
      default:
        bPuts(b, "id <> timelimit_id()");
        break;
      }
      break;
    default:
      bPuts(b, "SELECT count(*), group_concat(state), sum(elapsed_ms IS "
               "NULL) FROM timelimit_activity");
      break;
    }
    break;
  case 12:
    /* The limits straight from SQL, with any value. */
    bPuts(b, "SELECT timelimit(");
    genArg(g, b);
    bPuts(b, "), timelimit_ops(");
    genArg(g, b);
    bPuts(b, ")");
    break;
  default:
    bPuts(b, "VALUES(");
    genExpr(g, b);
    bPuts(b, "), (");
    genExpr(g, b);
    bPuts(b, ")");
    break;
  }
}

/* ---- Operations ---- */

static int64_t pickC64(In *in) {
  static const int64_t a[] = {0,
                              1,
                              2,
                              10,
                              250,
                              999,
                              1000,
                              1001,
                              2000,
                              5000,
                              100000,
                              -1,
                              INT64_MIN,
                              TIMELIMIT_MAX_MS,
                              (int64_t)TIMELIMIT_MAX_MS + 1,
                              INT64_MAX};
  unsigned x = inByte(in);
  if (x >= 240) return (int64_t)(inByte(in) << 8 | inByte(in));
  return a[x % 16];
}

/* Makes a statement for connection k; the caller frees it. */
static char *makeSql(In *in, int k, int *pbEnds) {
  Gen g;
  Buf b = {0};
  memset(&g, 0, sizeof(g));
  g.in = in;
  g.k = k;
  g.mult = 1;
  genStmt(&g, &b, pbEnds);
  return b.z;
}

static void noteSql(Conn *c, const char *zSql) {
  if (strstr(zSql, "timelimit_lock")) c->bLockMaybe = 1;
}

/* Runs a statement to its end (or MAXROWS rows) on connection k. */
static void opRun(In *in, int k) {
  Conn *c = &aConn[k];
  int bEnds, rc, nRow = 0, bTrack, epoch;
  char *zSql = makeSql(in, k, &bEnds);
  sqlite3_stmt *pStmt = NULL;
  int64_t budget;
  unsigned steps0;
  Snap a[NCONN];
  trace("run c%d: %s", k, zSql);
  noteSql(c, zSql);
  snapTake(a);
  zCurSql = zSql;
  if (sqlite3_prepare_v2(c->db, zSql, -1, &pStmt, NULL) == SQLITE_OK &&
      pStmt) {
    startTrack(c, pStmt, bEnds, &bTrack, &epoch, &budget, &steps0);
    while ((rc = sqlite3_step(pStmt)) == SQLITE_ROW && ++nRow < MAXROWS) {
    }
    trace("  -> %d (%s) after %d rows; reason %s", rc, sqlite3_errmsg(c->db),
          nRow, timelimit_reason(c->db) ? timelimit_reason(c->db) : "NULL");
    if (rc != SQLITE_ROW) {
      checkBudget(c, pStmt, bTrack, epoch, budget, steps0, zSql);
    }
  }
  sqlite3_finalize(pStmt);
  afterSql(a, k, zSql);
  zCurSql = NULL;
  free(zSql);
}

/* Steps a new statement once and leaves it active if it made a row. */
static void opStart(In *in, int k) {
  Conn *c = &aConn[k];
  int bEnds, rc;
  char *zSql = makeSql(in, k, &bEnds);
  Open *o;
  Snap a[NCONN];
  trace("start c%d: %s", k, zSql);
  if (c->nOpen == MAXOPEN) {
    free(zSql);
    return;
  }
  noteSql(c, zSql);
  o = &c->aOpen[c->nOpen];
  memset(o, 0, sizeof(*o));
  snapTake(a);
  zCurSql = zSql;
  if (sqlite3_prepare_v2(c->db, zSql, -1, &o->pStmt, NULL) != SQLITE_OK ||
      o->pStmt == NULL) {
    sqlite3_finalize(o->pStmt);
    afterSql(a, k, zSql);
    zCurSql = NULL;
    free(zSql);
    return;
  }
  startTrack(c, o->pStmt, bEnds, &o->bTrack, &o->epoch, &o->budget,
             &o->steps0);
  o->bStarted = 1;
  o->zSql = zSql;
  rc = sqlite3_step(o->pStmt);
  trace("  -> %d (%s)", rc, sqlite3_errmsg(c->db));
  if (rc == SQLITE_ROW) {
    c->nOpen++;
    afterSql(a, k, zSql);
  } else {
    checkBudget(c, o->pStmt, o->bTrack, o->epoch, o->budget, o->steps0, zSql);
    sqlite3_finalize(o->pStmt);
    afterSql(a, k, zSql);
    free(zSql);
  }
  zCurSql = NULL;
}

/* Steps, resets or finalizes a statement left active on connection k. */
static void opContinue(In *in, int k) {
  Conn *c = &aConn[k];
  unsigned how = inPick(in, 4), i;
  int rc = SQLITE_ROW, nRow = 0;
  Open *o;
  Snap a[NCONN];
  char *zSql;
  if (c->nOpen == 0) return;
  i = inPick(in, (unsigned)c->nOpen);
  o = &c->aOpen[i];
  zSql = o->zSql;
  trace("continue c%d #%u how %u: %s", k, i, how, o->zSql);
  snapTake(a);
  zCurSql = o->zSql;
  if (how == 2) {
    sqlite3_reset(o->pStmt);
    o->bStarted = 0;
  } else if (how <= 1) {
    if (!o->bStarted) {
      startTrack(c, o->pStmt, 0, &o->bTrack, &o->epoch, &o->budget,
                 &o->steps0);
      o->bStarted = 1;
    }
    do {
      rc = sqlite3_step(o->pStmt);
    } while (how == 1 && rc == SQLITE_ROW && ++nRow < MAXROWS);
    trace("  -> %d (%s)", rc, sqlite3_errmsg(c->db));
    if (rc != SQLITE_ROW) {
      checkBudget(c, o->pStmt, o->bTrack, o->epoch, o->budget, o->steps0,
                  o->zSql);
    }
  }
  if (how == 3 || rc != SQLITE_ROW) {
    sqlite3_finalize(o->pStmt);
    c->aOpen[i] = c->aOpen[--c->nOpen];
    afterSql(a, k, zSql);
    free(zSql);
  } else {
    afterSql(a, k, zSql);
  }
  zCurSql = NULL;
}

/* Steps or finalizes a statement that nest(sql, 1) left active. */
static void opNested(In *in, int k) {
  Conn *c = &aConn[k];
  unsigned how = inPick(in, 3), i;
  int rc = SQLITE_ROW, nRow = 0;
  Snap a[NCONN];
  char *zSql;
  if (c->nNested == 0) return;
  i = inPick(in, (unsigned)c->nNested);
  zSql = strdup(sqlite3_sql(c->aNested[i]));
  if (zSql == NULL) abort();
  trace("nested c%d #%u how %u: %s", k, i, how, zSql);
  snapTake(a);
  zCurSql = zSql;
  if (how < 2) {
    do {
      rc = sqlite3_step(c->aNested[i]);
    } while (how == 1 && rc == SQLITE_ROW && ++nRow < MAXROWS);
  }
  if (how == 2 || rc != SQLITE_ROW) {
    sqlite3_finalize(c->aNested[i]);
    c->aNested[i] = c->aNested[--c->nNested];
  }
  afterSql(a, k, zSql);
  zCurSql = NULL;
  free(zSql);
}

/* Invariant 5 on a C setter. */
static void checkSet(Conn *c, int rc, int64_t x, int64_t hi, int64_t before,
                     int bOps) {
  int64_t after;
  int rc2 = bOps ? timelimit_get_ops(c->db, &after)
                 : timelimit_get_limit(c->db, &after);
  if (c->bGone) return;
  if (rc2 != SQLITE_OK) fail(5, "get after a set failed: %d", rc2);
  if (x < 0 || x > hi) {
    if (rc != SQLITE_RANGE || after != before) {
      fail(5, "set(%lld) returned %d and changed %lld to %lld", (long long)x,
           rc, (long long)before, (long long)after);
    }
  } else if (rc != SQLITE_OK || after != x) {
    fail(5, "set(%lld) returned %d and left %lld", (long long)x, rc,
         (long long)after);
  }
}

static void opSet(In *in, int k, int bOps) {
  Conn *c = &aConn[k];
  int64_t x = pickC64(in), before = 0;
  int rc;
  if (bOps) {
    timelimit_get_ops(c->db, &before);
    rc = timelimit_set_ops(c->db, x);
    checkSet(c, rc, x, INT64_MAX, before, 1);
  } else {
    timelimit_get_limit(c->db, &before);
    rc = timelimit_set_limit(c->db, x);
    checkSet(c, rc, x, TIMELIMIT_MAX_MS, before, 0);
  }
  trace("set_%s c%d %lld -> %d", bOps ? "ops" : "limit", k, (long long)x, rc);
}

static void opLock(In *in, int k) {
  Conn *c = &aConn[k];
  if (inPick(in, 3)) {
    if (timelimit_lock(c->db) == SQLITE_OK) c->bLocked = 1;
    trace("lock c%d", k);
    checkActivity(c);
  } else {
    if (timelimit_unlock(c->db) == SQLITE_OK) c->bLocked = 0;
    trace("unlock c%d", k);
  }
}

static void opInterrupt(In *in) {
  int64_t id;
  unsigned j = inPick(in, NCONN);
  switch (inPick(in, 6)) {
  case 0:
  case 1:
    id = aConn[j].id;
    break;
  case 2:
    id = nHist ? aHist[inPick(in, NHIST) % (nHist < NHIST ? nHist : NHIST)]
               : 0;
    break;
  case 3:
    id = nZombie ? aZombie[0].id : -1;
    break;
  case 4:
    id = (int64_t)inPick(in, 16) - 2;
    break;
  default:
    id = inPick(in, 2) ? INT64_MAX : INT64_MIN;
    break;
  }
  trace("interrupt %lld -> %d", (long long)id, timelimit_interrupt(id));
}

/* Replaces or deletes one of the extension's SQL functions. */
static void opReplace(In *in, int k) {
  static const struct {
    const char *z;
    int nArg;
  } a[] = {{"timelimit", 1},     {"timelimit", 0},
           {"timelimit_ops", 1}, {"timelimit_ops", 0},
           {"timelimit_lock", 0}, {"timelimit_id", 0},
           {"timelimit_interrupt", 1}, {"timelimit_reason", 0},
           {"timelimit", -1},    {"timelimit", 2}};
  Conn *c = &aConn[k];
  unsigned i = inPick(in, 10);
  int bDelete = (int)inPick(in, 2), rc;
  rc = sqlite3_create_function_v2(c->db, a[i].z, a[i].nArg, SQLITE_UTF8, NULL,
                                  bDelete ? NULL : fnDummy, NULL, NULL, NULL);
  trace("%s c%d %s/%d -> %d", bDelete ? "delete" : "replace", k, a[i].z,
        a[i].nArg, rc);
  if (rc == SQLITE_OK && i == 0) c->bGone = 1;
}

/* Replaces the extension's hooks, or installs them again. */
static void opHooks(In *in, int k) {
  Conn *c = &aConn[k];
  switch (inPick(in, 4)) {
  case 0:
    sqlite3_progress_handler(c->db, 0, NULL, NULL);
    c->bHooked = 0;
    c->epoch++;
    trace("progress_handler c%d NULL", k);
    break;
  case 1:
    sqlite3_progress_handler(c->db, 100, appProgress, NULL);
    c->bHooked = 0;
    c->epoch++;
    trace("progress_handler c%d app", k);
    break;
  case 2:
    sqlite3_trace_v2(c->db, inPick(in, 2) ? SQLITE_TRACE_STMT : 0,
                     appTrace, NULL);
    c->bHooked = 0;
    c->epoch++;
    trace("trace_v2 c%d app", k);
    break;
  default:
    if (timelimit_register(c->db) == SQLITE_OK) {
      if (c->bGone) {
        /* A new state: new id, unlocked, no limits. */
        c->bGone = 0;
        c->bLocked = 0;
        timelimit_id(c->db, &c->id);
        remember(c->id);
      }
      c->bHooked = 1;
      c->epoch++;
    }
    trace("register c%d again: id %lld", k, (long long)c->id);
    break;
  }
}

/* Reads timelimit_activity from C: invariant 4 if locked, else every row. */
static void opActivity(int k) {
  Conn *c = &aConn[k];
  sqlite3_stmt *pStmt;
  Snap a[NCONN];
  char z[80];
  int i;
  trace("activity c%d", k);
  if (c->bLocked) {
    checkActivity(c);
    return;
  }
  snapTake(a);
  snprintf(z, sizeof(z), "/*c%lld*/SELECT * FROM timelimit_activity",
           (long long)c->id);
  zCurSql = z;
  if (sqlite3_prepare_v2(c->db, z, -1, &pStmt, NULL) == SQLITE_OK) {
    while (sqlite3_step(pStmt) == SQLITE_ROW) {
      for (i = 0; i < sqlite3_column_count(pStmt); i++)
        (void)sqlite3_column_text(pStmt, i);
    }
    sqlite3_finalize(pStmt);
  }
  afterSql(a, k, zCurSql);
  zCurSql = NULL;
}

/* ---- libFuzzer ---- */

#ifdef FUZZ_THREAD
/* Reads timelimit_activity on a connection of its own, all the time. */
static void *readerMain(void *p) {
  sqlite3 *db = NULL;
  struct timespec ts = {0, 20000};
  (void)p;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
      timelimit_register(db) != SQLITE_OK) {
    return NULL;
  }
  for (;;) {
    sqlite3_stmt *pStmt;
    if (sqlite3_prepare_v2(db, "SELECT id, state, sql, elapsed_ms FROM "
                               "timelimit_activity",
                           -1, &pStmt, NULL) == SQLITE_OK) {
      while (sqlite3_step(pStmt) == SQLITE_ROW)
        (void)sqlite3_column_text(pStmt, 2);
      sqlite3_finalize(pStmt);
    }
    nanosleep(&ts, NULL);
  }
  return NULL;
}
#endif

int LLVMFuzzerInitialize(int *pArgc, char ***pArgv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *pArgc, char ***pArgv) {
  const char *z;
  (void)pArgc;
  (void)pArgv;
  z = getenv("TLFUZZ_TRACE");
  bTrace = z && *z && *z != '0';
#ifdef FUZZ_THREAD
  {
    pthread_t t;
    if (pthread_create(&t, NULL, readerMain, NULL) == 0) pthread_detach(t);
  }
#endif
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  In in = {data, size};
  int nOp = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  nRowsLeft = INPUTROWS;
  nNestsLeft = INPUTNESTS;
  nHist = 0;
  connOpen(0);
  while (in.n > 0 && nOp++ < MAXOPS) {
    unsigned op = inPick(&in, 16);
    int k = (int)inPick(&in, NCONN);
    Conn *c = &aConn[k];
    if (op == 0) {
      if (c->db) {
        connClose(k);
      } else {
        connOpen(k);
      }
      continue;
    }
    if (op == 13) {
      if (nZombie > 0) {
        trace("finalize a statement of zombie %lld", (long long)aZombie[0].id);
        zombieFinalizeOne(0);
      }
      continue;
    }
    if (op == 14) {
      opInterrupt(&in);
      continue;
    }
    if (!c->db) connOpen(k);
    if (!c->db) continue;
    switch (op) {
    case 1:
      opSet(&in, k, 0);
      break;
    case 2:
      opSet(&in, k, 1);
      break;
    case 3:
      opLock(&in, k);
      break;
    case 4:
    case 5:
    case 15:
      opRun(&in, k);
      break;
    case 6:
      opStart(&in, k);
      break;
    case 7:
      opContinue(&in, k);
      break;
    case 8:
      opActivity(k);
      break;
    case 9:
      opReplace(&in, k);
      break;
    case 10:
      opHooks(&in, k);
      break;
    case 11:
      opNested(&in, k);
      break;
    default: /* 12 */
      checkActivity(c);
      break;
    }
    checkReasons();
  }
  cleanup();
  if (bTrace) {
    clock_gettime(CLOCK_MONOTONIC, &t1);
    trace("input done in %.3f ms", (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                                        (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
  }
  return 0;
}
