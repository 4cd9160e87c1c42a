/*
** stress_sqlq.c: a stress test of the sqlq library (shim/sqlq.h).
**
** Usage: stress_sqlq DIR [SECONDS]
**
** Opens DIR/stress.db with a small queue (so that SQLQ_EFULL happens) and
** two readers, and lets 16 threads submit for SECONDS (default 3) a random
** mix of writes by callback, writes by sqlq_exec(), WRITE_MANY batches,
** quick and slow reads, cancels of their own recent tasks and calls that
** must fail with SQLQ_EINVAL.  Each thread has its own generator (test_random)
** seeded with SEED_BASE plus its index, so the choices of a run can be
** replayed (the interleaving, of course, cannot).  Then it joins the
** threads, closes the handle and checks:
**
**   - every task sqlq_submit() accepted completed exactly once, and no
**     callback ran for a task that was not accepted;
**   - no task ever saw SQLITE_BUSY (any extended code of it), and no status
**     was one a task of its kind should not have;
**   - SQLQ_ECANCELED only for a task that sqlq_cancel() was called for, and
**     sqlq_cancel() never found a task whose callback had run;
**   - a read saw at least the rows of its thread acknowledged before it was
**     submitted, and a slow read returned the right sum;
**   - with plain SQLite afterwards: every acknowledged write is in the
**     database, no write that was canceled, refused or failed is, and
**     PRAGMA integrity_check says ok.
**
** It prints one summary line and exits 0, or prints each failed check (the
** first MAX_FAIL_MSGS of them) and exits 1.
*/
#include "sqlq.h"
#include "testprog.h"

#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NTHREAD 16            /* Threads that submit */
#define NREADER 2             /* Reader threads of the handle */
#define QUEUE_CAPACITY 64     /* Small, so that submits meet SQLQ_EFULL */
#define SEED_BASE 0x5eed0000u /* Seed of thread i: SEED_BASE + i */
#define RECENT 64             /* Task ids a thread remembers for cancels */
#define CHUNK_BITS 16         /* A table grows by chunks of 65536 bytes */
#define NCHUNK 4096           /* Chunks a table can have */
#define MAX_FAIL_MSGS 20      /* Failed checks printed */

/* A quick write, and a slow one that a cancel can reach while it runs. */
#define SQL_INSERT "INSERT INTO acks(thread, seq) VALUES(?, ?)"
#define SQL_SLOW_INSERT                                                        \
  "INSERT INTO acks(thread, seq) SELECT ?1, ?2 WHERE (WITH RECURSIVE "         \
  "c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) "           \
  "SELECT count(*) FROM c) = 5000"
#define SQL_READ "SELECT count(*) FROM acks WHERE thread = ?"
#define SQL_SLOW_READ                                                          \
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "            \
  "WHERE x < ?) SELECT count(*), sum(x) FROM c"

/* Bits of a task id's byte in the id table. */
enum {
  ID_ACCEPTED = 0x1,     /* sqlq_submit() returned it */
  ID_COMPLETED = 0x2,    /* Its callback ran */
  ID_CANCEL_ASKED = 0x4, /* sqlq_cancel() was (about to be) called for it */
  ID_EXEC = 0x8          /* An sqlq_exec() result carried it */
};

/* States of a (thread, seq) write in the seq table (0: never written). */
enum {
  SEQ_PENDING = 1, /* Submitted; no outcome yet */
  SEQ_ACKED,       /* Completed with status 0: must be in the database */
  SEQ_CANCELED,    /* Completed with SQLQ_ECANCELED: must not be */
  SEQ_FAILED,      /* Completed with another status: must not be */
  SEQ_REFUSED,     /* Not accepted (SQLQ_EFULL): must not be */
  SEQ_SEEN = 0x80  /* Or'ed in: the row was found in the database */
};

/* A byte per index, in chunks allocated on first use by any thread. */
typedef struct Table {
  _Atomic(atomic_uchar *) aChunk[NCHUNK]; /* Chunks, NULL until used */
} Table;

/* One submitting thread. */
typedef struct Client {
  int idx;                 /* Index, 0..NTHREAD-1 */
  pthread_t thread;        /* Its thread */
  uint64_t rng;            /* test_random() state */
  int64_t nextSeq;         /* Seq of its next write (its own thread only) */
  int64_t aRecent[RECENT]; /* Ids sqlq_submit() returned to it lately */
  int64_t nRecent;         /* Ids it was returned in all */
  atomic_llong nAcked;     /* Its rows acknowledged so far */
} Client;

/* What a completion callback needs to know about its task. */
typedef struct Ticket {
  Client *c;      /* The thread that submitted it */
  sqlq_kind kind; /* SQLQ_READ, SQLQ_WRITE or SQLQ_WRITE_MANY */
  int64_t seq;    /* Writes: seq of the first row */
  int nRows;      /* Writes: rows, with consecutive seqs */
  int64_t nMin;   /* Quick reads: c's rows acknowledged before submit */
  int64_t nSlow;  /* Slow reads: rows of the CTE; 0 for a quick read */
} Ticket;

/* Counters of the run. */
static struct {
  atomic_llong accepted;    /* Tasks sqlq_submit() accepted */
  atomic_llong completed;   /* Callbacks run */
  atomic_llong execs;       /* sqlq_exec() calls that ran a task */
  atomic_llong ok;          /* Tasks (submitted or exec) with status 0 */
  atomic_llong writesAcked; /* Write tasks completed with status 0 */
  atomic_llong rowsAcked;   /* Rows of those */
  atomic_llong reads;       /* Read tasks accepted */
  atomic_llong cancels;     /* sqlq_cancel() calls that returned 0 */
  atomic_llong notFound;    /* sqlq_cancel() calls: SQLQ_ENOTFOUND */
  atomic_llong canceled;    /* Tasks completed with SQLQ_ECANCELED */
  atomic_llong canceledW;   /* Of those, writes */
  atomic_llong timeouts;    /* Reads completed with SQLQ_ETIMEOUT */
  atomic_llong efull;       /* Submits and execs refused with SQLQ_EFULL */
  atomic_llong einval;      /* Bad calls refused with SQLQ_EINVAL */
  atomic_llong other;       /* Any other status (each is a failure) */
} cnt;

static sqlq *q;                 /* The handle under test */
static Client aClient[NTHREAD]; /* The submitting threads */
static Table idTable;           /* ID_* bits by task id */
static Table seqTable;          /* SEQ_* by seq * NTHREAD + thread */
static int64_t deadlineNs;      /* When the threads stop submitting */
static atomic_long nFail;       /* Failed checks */

/* CLOCK_MONOTONIC in nanoseconds. */
static int64_t nowNs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Records a failed check and prints it if it is among the first ones. */
static void fail(const char *zFmt, ...) {
  va_list ap;
  if (atomic_fetch_add(&nFail, 1) >= MAX_FAIL_MSGS) return;
  flockfile(stderr);
  fputs("stress_sqlq: FAIL: ", stderr);
  va_start(ap, zFmt);
  vfprintf(stderr, zFmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  funlockfile(stderr);
}

/* Stops the program at once on a condition it cannot go on from. */
static void die(const char *zMsg) {
  fprintf(stderr, "stress_sqlq: FAIL: %s\n", zMsg);
  _Exit(1);
}

/* The byte of index i of t, allocating its chunk if need be. */
static atomic_uchar *tableAt(Table *t, int64_t i) {
  int64_t iChunk = i >> CHUNK_BITS;
  atomic_uchar *p, *pNew;
  if (i < 0 || iChunk >= NCHUNK) die("a task id or seq outgrew the tables");
  p = atomic_load(&t->aChunk[iChunk]);
  if (p == NULL) {
    pNew = calloc((size_t)1 << CHUNK_BITS, sizeof(*pNew));
    if (pNew == NULL) die("out of memory");
    if (atomic_compare_exchange_strong(&t->aChunk[iChunk], &p, pNew)) {
      p = pNew;
    } else {
      free(pNew);
    }
  }
  return p + (i & (((int64_t)1 << CHUNK_BITS) - 1));
}

/* Frees the chunks of t. */
static void tableFree(Table *t) {
  int i;
  for (i = 0; i < NCHUNK; i++)
    free(atomic_load(&t->aChunk[i]));
}

/* The value of counter p, for printing. */
static long long get(atomic_llong *p) {
  return atomic_load(p);
}

/* The seq table's byte of (thread idx, seq). */
static atomic_uchar *seqAt(int idx, int64_t seq) {
  return tableAt(&seqTable, seq * NTHREAD + idx);
}

/*
** Counts the status of a completed task and checks it: never SQLITE_BUSY,
** SQLQ_ECANCELED only if a cancel was asked for, SQLQ_ETIMEOUT only for a
** read, nothing else but 0.  zWhat names the task for messages.
*/
static void countStatus(int status, int bRead, int bCancelAsked,
                        const sqlq_result *r, const char *zWhat) {
  const char *zErr = r ? sqlq_result_error(r) : NULL;
  if (status == 0) {
    atomic_fetch_add(&cnt.ok, 1);
  } else if (status == SQLQ_ECANCELED) {
    atomic_fetch_add(&cnt.canceled, 1);
    if (!bRead) atomic_fetch_add(&cnt.canceledW, 1);
    if (!bCancelAsked) {
      fail("%s completed with SQLQ_ECANCELED but was never canceled", zWhat);
    }
  } else if (status == SQLQ_ETIMEOUT && bRead) {
    atomic_fetch_add(&cnt.timeouts, 1);
  } else if (status > 0 && (status & 0xff) == SQLITE_BUSY) {
    atomic_fetch_add(&cnt.other, 1);
    fail("%s saw SQLITE_BUSY: status %d (%s)", zWhat, status,
         zErr ? zErr : sqlq_strerror(status));
  } else {
    atomic_fetch_add(&cnt.other, 1);
    fail("%s completed with unexpected status %d (%s)", zWhat, status,
         zErr ? zErr : sqlq_strerror(status));
  }
}

/*
** Records the outcome of the rows of a write: each must have been pending
** exactly until now.
*/
static void finishWrite(Client *c, int64_t seq, int nRows, int status) {
  unsigned char eNew = status == 0                ? SEQ_ACKED
                       : status == SQLQ_ECANCELED ? SEQ_CANCELED
                       : status == SQLQ_EFULL     ? SEQ_REFUSED
                                                  : SEQ_FAILED;
  int i;
  for (i = 0; i < nRows; i++) {
    unsigned char eOld = atomic_exchange(seqAt(c->idx, seq + i), eNew);
    if (eOld != SEQ_PENDING) {
      fail("write (%d, %lld) got a second outcome (state %d, then %d)", c->idx,
           (long long)(seq + i), eOld, eNew);
    }
  }
  if (status == 0) {
    atomic_fetch_add(&c->nAcked, nRows);
    atomic_fetch_add(&cnt.rowsAcked, nRows);
    atomic_fetch_add(&cnt.writesAcked, 1);
  }
}

/* Checks the rows of a read that completed with status 0. */
static void checkRead(const Ticket *t, const sqlq_result *r, int64_t id) {
  int64_t n, nWant;
  if (sqlq_result_rows(r) != 1) {
    fail("read %lld returned %d rows, not 1", (long long)id,
         sqlq_result_rows(r));
    return;
  }
  n = sqlq_result_int(r, 0, 0);
  if (t->nSlow) {
    nWant = t->nSlow * (t->nSlow + 1) / 2;
    if (n != t->nSlow || sqlq_result_int(r, 0, 1) != nWant) {
      fail("slow read %lld of %lld rows returned count %lld, sum %lld",
           (long long)id, (long long)t->nSlow, (long long)n,
           (long long)sqlq_result_int(r, 0, 1));
    }
  } else if (n < t->nMin) {
    fail("read %lld saw %lld rows of thread %d, but %lld were acknowledged "
         "before it was submitted",
         (long long)id, (long long)n, t->c->idx, (long long)t->nMin);
  }
}

/* The completion callback of every submitted task. */
static void onDone(sqlq_result *r, void *udata) {
  Ticket *t = udata;
  int64_t id = sqlq_result_id(r);
  int status = sqlq_result_status(r);
  unsigned char bits = atomic_fetch_or(tableAt(&idTable, id), ID_COMPLETED);
  char zWhat[64];
  atomic_fetch_add(&cnt.completed, 1);
  if (bits & ID_COMPLETED) fail("task %lld completed twice", (long long)id);
  snprintf(zWhat, sizeof(zWhat), "%s task %lld",
           t->kind == SQLQ_READ ? "read" : "write", (long long)id);
  countStatus(status, t->kind == SQLQ_READ, bits & ID_CANCEL_ASKED, r, zWhat);
  if (t->kind == SQLQ_READ) {
    if (status == 0) checkRead(t, r, id);
  } else {
    finishWrite(t->c, t->seq, t->nRows, status);
  }
  free(t);
}

/* Makes a ticket for a task of c, or stops the program. */
static Ticket *ticketNew(Client *c, sqlq_kind kind) {
  Ticket *t = calloc(1, sizeof(*t));
  if (t == NULL) die("out of memory");
  t->c = c;
  t->kind = kind;
  return t;
}

/*
** Counts a task refused with SQLQ_EFULL and gives up the CPU, so that the
** workers, not the 16 submitters, get the time to drain the queue.
*/
static void countRefusal(void) {
  atomic_fetch_add(&cnt.efull, 1);
  sched_yield();
}

/* Marks id as accepted; fails if it was handed out before. */
static void markAccepted(int64_t id, unsigned char bit) {
  unsigned char bits = atomic_fetch_or(tableAt(&idTable, id), bit);
  if (bits & (ID_ACCEPTED | ID_EXEC)) {
    fail("task id %lld was handed out twice", (long long)id);
  }
}

/*
** Submits call (whose udata is ticket t) and books the outcome.  Once the
** task is accepted, t belongs to its callback, which may have freed it.
*/
static void submit(Client *c, sqlq_call *call, Ticket *t) {
  int bRead = t->kind == SQLQ_READ;
  int64_t id;
  call->done = onDone;
  call->udata = t;
  id = sqlq_submit(q, call);
  if (id > 0) {
    atomic_fetch_add(&cnt.accepted, 1);
    if (bRead) atomic_fetch_add(&cnt.reads, 1);
    markAccepted(id, ID_ACCEPTED);
    c->aRecent[c->nRecent++ % RECENT] = id;
    return;
  }
  if (id == SQLQ_EFULL) {
    countRefusal();
  } else {
    fail("sqlq_submit returned %lld (%s)", (long long)id,
         sqlq_strerror((int)id));
  }
  if (!bRead) finishWrite(c, t->seq, t->nRows, SQLQ_EFULL);
  free(t);
}

/* Takes the next seqs of c for nRows rows and marks them pending. */
static int64_t takeSeqs(Client *c, int nRows) {
  int64_t seq = c->nextSeq;
  int i;
  c->nextSeq += nRows;
  for (i = 0; i < nRows; i++)
    atomic_store(seqAt(c->idx, seq + i), SEQ_PENDING);
  return seq;
}

/* (a) Submits a write of one row, sometimes a slow one. */
static void opWrite(Client *c, int bSlow) {
  Ticket *t = ticketNew(c, SQLQ_WRITE);
  sqlq_value aParam[2];
  sqlq_call call = {0};
  t->nRows = 1;
  t->seq = takeSeqs(c, 1);
  aParam[0] = sqlq_int(c->idx);
  aParam[1] = sqlq_int(t->seq);
  call.kind = SQLQ_WRITE;
  call.sql = bSlow ? SQL_SLOW_INSERT : SQL_INSERT;
  call.params = aParam;
  call.nparams = 2;
  submit(c, &call, t);
}

/* (b) Writes one row through sqlq_exec(). */
static void opExec(Client *c) {
  int64_t seq = takeSeqs(c, 1);
  sqlq_value aParam[2];
  sqlq_call call = {0};
  sqlq_result *r;
  char zWhat[64];
  int status;
  aParam[0] = sqlq_int(c->idx);
  aParam[1] = sqlq_int(seq);
  call.kind = SQLQ_WRITE;
  call.sql = SQL_INSERT;
  call.params = aParam;
  call.nparams = 2;
  status = sqlq_exec(q, &call, &r);
  if (r == NULL) {
    if (status == SQLQ_EFULL) {
      countRefusal();
    } else {
      fail("sqlq_exec refused a write with %d (%s)", status,
           sqlq_strerror(status));
    }
    finishWrite(c, seq, 1, SQLQ_EFULL);
    return;
  }
  atomic_fetch_add(&cnt.execs, 1);
  markAccepted(sqlq_result_id(r), ID_EXEC);
  if (sqlq_result_status(r) != status) {
    fail("sqlq_exec returned %d but its result says %d", status,
         sqlq_result_status(r));
  }
  snprintf(zWhat, sizeof(zWhat), "exec write task %lld",
           (long long)sqlq_result_id(r));
  countStatus(status, 0, 0, r, zWhat);
  finishWrite(c, seq, 1, status);
  sqlq_result_free(r);
}

/* (c) Submits a quick read of c's row count, or a slow read. */
static void opRead(Client *c, int bSlow) {
  Ticket *t = ticketNew(c, SQLQ_READ);
  sqlq_value param;
  sqlq_call call = {0};
  call.kind = SQLQ_READ;
  if (bSlow) {
    t->nSlow = 2000 + (int64_t)(test_random(&c->rng) % 8000);
    param = sqlq_int(t->nSlow);
    call.sql = SQL_SLOW_READ;
  } else {
    t->nMin = atomic_load(&c->nAcked);
    param = sqlq_int(c->idx);
    call.sql = SQL_READ;
  }
  call.params = &param;
  call.nparams = 1;
  submit(c, &call, t);
}

/* (d) Cancels one of the tasks sqlq_submit() returned to c lately. */
static void opCancel(Client *c) {
  int64_t n = c->nRecent < RECENT ? c->nRecent : RECENT, id;
  unsigned char bits;
  int rc;
  if (n == 0) return;
  id = c->aRecent[test_random(&c->rng) % (uint64_t)n];
  bits = atomic_fetch_or(tableAt(&idTable, id), ID_CANCEL_ASKED);
  rc = sqlq_cancel(q, id);
  if (rc == 0) {
    atomic_fetch_add(&cnt.cancels, 1);
    if (bits & ID_COMPLETED) {
      fail("sqlq_cancel found task %lld after its callback had run",
           (long long)id);
    }
  } else if (rc == SQLQ_ENOTFOUND) {
    atomic_fetch_add(&cnt.notFound, 1);
  } else {
    fail("sqlq_cancel(%lld) returned %d (%s)", (long long)id, rc,
         sqlq_strerror(rc));
  }
}

/* (e) Submits a WRITE_MANY of 2 to 5 rows. */
static void opWriteMany(Client *c) {
  Ticket *t = ticketNew(c, SQLQ_WRITE_MANY);
  sqlq_value aParam[2 * 5];
  sqlq_call call = {0};
  int i;
  t->nRows = 2 + (int)(test_random(&c->rng) % 4);
  t->seq = takeSeqs(c, t->nRows);
  for (i = 0; i < t->nRows; i++) {
    aParam[2 * i] = sqlq_int(c->idx);
    aParam[2 * i + 1] = sqlq_int(t->seq + i);
  }
  call.kind = SQLQ_WRITE_MANY;
  call.sql = SQL_INSERT;
  call.params = aParam;
  call.nparams = 2;
  call.nrows = t->nRows;
  submit(c, &call, t);
}

/* (f) Submits a call without sql, which must be refused with EINVAL. */
static void opBadCall(Client *c) {
  sqlq_call call = {0};
  int64_t id;
  call.kind = test_random(&c->rng) % 2 ? SQLQ_READ : SQLQ_WRITE;
  id = sqlq_submit(q, &call);
  if (id == SQLQ_EINVAL) {
    atomic_fetch_add(&cnt.einval, 1);
  } else {
    fail("sqlq_submit of a call without sql returned %lld, not SQLQ_EINVAL",
         (long long)id);
  }
}

/* The loop of a submitting thread: random operations until the deadline. */
static void *clientMain(void *p) {
  Client *c = p;
  while (nowNs() < deadlineNs) {
    unsigned r = (unsigned)(test_random(&c->rng) % 100);
    if (r < 30) {
      opWrite(c, test_random(&c->rng) % 50 == 0);
    } else if (r < 40) {
      opExec(c);
    } else if (r < 70) {
      opRead(c, test_random(&c->rng) % 10 == 0);
    } else if (r < 90) {
      opCancel(c);
    } else if (r < 97) {
      opWriteMany(c);
    } else {
      opBadCall(c);
    }
  }
  return NULL;
}

/* After close: every accepted task completed, no other one did. */
static void checkTasks(void) {
  int64_t i, nAccepted = 0, nCompleted = 0;
  int iChunk;
  if (get(&cnt.accepted) != get(&cnt.completed)) {
    fail("%lld tasks accepted, %lld callbacks run", get(&cnt.accepted),
         get(&cnt.completed));
  }
  for (iChunk = 0; iChunk < NCHUNK; iChunk++) {
    atomic_uchar *a = atomic_load(&idTable.aChunk[iChunk]);
    if (a == NULL) continue;
    for (i = 0; i < ((int64_t)1 << CHUNK_BITS); i++) {
      unsigned char bits = atomic_load(&a[i]);
      int64_t id = ((int64_t)iChunk << CHUNK_BITS) + i;
      nAccepted += (bits & ID_ACCEPTED) != 0;
      nCompleted += (bits & ID_COMPLETED) != 0;
      if ((bits & ID_ACCEPTED) && !(bits & ID_COMPLETED)) {
        fail("task %lld was accepted but never completed", (long long)id);
      } else if (!(bits & ID_ACCEPTED) && (bits & ID_COMPLETED)) {
        fail("a callback ran for task %lld, which was never accepted",
             (long long)id);
      }
    }
  }
  if (nAccepted != get(&cnt.accepted)) {
    fail("%lld distinct ids accepted, %lld accepted submits",
         (long long)nAccepted, get(&cnt.accepted));
  }
  if (nCompleted != get(&cnt.completed)) {
    fail("%lld distinct ids completed, %lld callbacks run",
         (long long)nCompleted, get(&cnt.completed));
  }
}

/* Runs PRAGMA integrity_check on db; fails unless it says ok. */
static void checkIntegrity(sqlite3 *db) {
  sqlite3_stmt *pStmt = NULL;
  int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &pStmt, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(pStmt);
  if (rc != SQLITE_ROW) {
    fail("PRAGMA integrity_check: %s", sqlite3_errmsg(db));
  } else if (strcmp((const char *)sqlite3_column_text(pStmt, 0), "ok") != 0) {
    fail("PRAGMA integrity_check: %s", sqlite3_column_text(pStmt, 0));
  }
  sqlite3_finalize(pStmt);
}

/*
** After close, with plain SQLite: the rows of the database are exactly the
** acknowledged writes, and the database is sound.
*/
static void checkDatabase(const char *zPath) {
  sqlite3 *db = NULL;
  sqlite3_stmt *pStmt = NULL;
  int rc, i;
  int64_t seq;
  rc = sqlite3_open_v2(zPath, &db, SQLITE_OPEN_READONLY, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_prepare_v2(db, "SELECT thread, seq FROM acks", -1, &pStmt,
                            NULL);
  }
  if (rc != SQLITE_OK) {
    fail("reading %s: %s", zPath, db ? sqlite3_errmsg(db) : "no memory");
    sqlite3_close(db);
    return;
  }
  while ((rc = sqlite3_step(pStmt)) == SQLITE_ROW) {
    int64_t th = sqlite3_column_int64(pStmt, 0);
    unsigned char e;
    seq = sqlite3_column_int64(pStmt, 1);
    if (th < 0 || th >= NTHREAD || seq < 0 || seq >= aClient[th].nextSeq) {
      fail("row (%lld, %lld) was never written", (long long)th, (long long)seq);
      continue;
    }
    e = atomic_fetch_or(seqAt((int)th, seq), SEQ_SEEN);
    if (e != SEQ_ACKED) {
      fail("row (%lld, %lld) is in the database, but its write %s",
           (long long)th, (long long)seq,
           e == SEQ_CANCELED  ? "completed with SQLQ_ECANCELED"
           : e == SEQ_REFUSED ? "was refused"
           : e == SEQ_FAILED  ? "failed"
                              : "has no outcome");
    }
  }
  if (rc != SQLITE_DONE) fail("reading acks: %s", sqlite3_errmsg(db));
  sqlite3_finalize(pStmt);
  for (i = 0; i < NTHREAD; i++) {
    for (seq = 0; seq < aClient[i].nextSeq; seq++) {
      unsigned char e = atomic_load(seqAt(i, seq));
      if (e == SEQ_ACKED) {
        fail("write (%d, %lld) was acknowledged but is not in the database", i,
             (long long)seq);
      } else if ((e & ~SEQ_SEEN) == SEQ_PENDING) {
        fail("write (%d, %lld) never got an outcome", i, (long long)seq);
      }
    }
  }
  checkIntegrity(db);
  sqlite3_close(db);
}

/* Opens the handle and creates the table; stops the program on failure. */
static void openHandle(const char *zPath) {
  sqlq_options opts = {0};
  sqlq_call call = {0};
  sqlq_result *r;
  int rc;
  opts.readers = NREADER;
  opts.queue_capacity = QUEUE_CAPACITY;
  opts.synchronous = 1; /* NORMAL: commits without fsync, many more tasks */
  rc = sqlq_open(zPath, &opts, &q);
  if (rc != 0) {
    fprintf(stderr, "stress_sqlq: FAIL: sqlq_open(%s): %d (%s)\n", zPath, rc,
            sqlq_strerror(rc));
    exit(1);
  }
  call.kind = SQLQ_SCRIPT;
  call.sql = "CREATE TABLE acks(id INTEGER PRIMARY KEY, thread INT, seq INT, "
             "UNIQUE(thread, seq));";
  rc = sqlq_exec(q, &call, &r);
  if (rc != 0) {
    fprintf(stderr, "stress_sqlq: FAIL: creating the table: %d (%s)\n", rc,
            r && sqlq_result_error(r) ? sqlq_result_error(r)
                                      : sqlq_strerror(rc));
    exit(1);
  }
  sqlq_result_free(r);
}

int main(int argc, char **argv) {
  char zPath[4096];
  double seconds = 3.0;
  int64_t startNs, endNs;
  int i, rc;
  if (argc < 2 || argc > 3 ||
      (argc == 3 && !((seconds = atof(argv[2])) > 0 && seconds < 3600))) {
    fprintf(stderr, "usage: %s DIR [SECONDS]\n", argv[0]);
    return 2;
  }
  if (snprintf(zPath, sizeof(zPath), "%s/stress.db", argv[1]) >=
      (int)sizeof(zPath)) {
    fprintf(stderr, "stress_sqlq: FAIL: the path is too long\n");
    return 1;
  }
  printf("stress_sqlq: %d threads for %.1f s, seeds 0x%x + thread, queue "
         "%d, %d readers, %s\n",
         NTHREAD, seconds, SEED_BASE, QUEUE_CAPACITY, NREADER, zPath);
  fflush(stdout);
  test_remove_database(zPath);
  openHandle(zPath);
  startNs = nowNs();
  deadlineNs = startNs + (int64_t)(seconds * 1e9);
  for (i = 0; i < NTHREAD; i++) {
    aClient[i].idx = i;
    aClient[i].rng = SEED_BASE + (uint64_t)i;
    if (pthread_create(&aClient[i].thread, NULL, clientMain, &aClient[i])) {
      die("pthread_create failed");
    }
  }
  for (i = 0; i < NTHREAD; i++)
    pthread_join(aClient[i].thread, NULL);
  rc = sqlq_close(q);
  if (rc != 0) fail("sqlq_close returned %d (%s)", rc, sqlq_strerror(rc));
  checkTasks();
  checkDatabase(zPath);
  endNs = nowNs();
  tableFree(&idTable);
  tableFree(&seqTable);
  if (atomic_load(&nFail) > 0) {
    fprintf(stderr,
            "stress_sqlq: FAILED: %ld checks failed (%lld tasks completed "
            "with an unexpected status)\n",
            atomic_load(&nFail), get(&cnt.other));
    return 1;
  }
  printf("stress_sqlq: ok: %lld accepted, %lld completed, %lld execs; "
         "status 0: %lld, canceled: %lld (%lld writes), timed out: %lld; "
         "%lld writes acked (%lld rows), %lld reads, %lld cancels (%lld not "
         "found), %lld EFULL, %lld EINVAL, %.2f s\n",
         get(&cnt.accepted), get(&cnt.completed), get(&cnt.execs), get(&cnt.ok),
         get(&cnt.canceled), get(&cnt.canceledW), get(&cnt.timeouts),
         get(&cnt.writesAcked), get(&cnt.rowsAcked), get(&cnt.reads),
         get(&cnt.cancels), get(&cnt.notFound), get(&cnt.efull),
         get(&cnt.einval), (double)(endNs - startNs) / 1e9);
  return 0;
}
