/*
** crash_sqlq.c: a crash test of the sqlq library (shim/sqlq.h): what it
** acknowledged is in the database after a SIGKILL at any moment.
**
** Usage: crash_sqlq DIR [ROUNDS [SEED]]
**
** DIR is an existing scratch directory; DIR/crash.db is removed first.
** Each of ROUNDS rounds (default 30) forks a child that opens DIR/crash.db
** with the library's defaults (synchronous FULL, group commit on), checks
** that the writer runs with synchronous FULL, and lets NTHREAD threads
** write rows with keys of their own, keeping up to MAX_INFLIGHT submitted
** writes each: single-row inserts by callback, some by sqlq_exec(),
** WRITE_MANY tasks of several rows, and writes that fail on purpose (a
** duplicate key, alone or as the last row of a WRITE_MANY), so that group
** commits hold failures too; some single rows go through isolated WRITE_FN
** tasks, and checkpoints run now and then.  The pad of a row is 0 to
** MAX_PAD bytes, so
** transactions span varying numbers of pages.  When a write completes with
** status 0, the child sends its keys to the parent through a pipe, as
** 8-byte records in one write(2), which a pipe keeps whole.
**
** The parent reads the keys and kills the child with SIGKILL after a
** number of them drawn from 1 to MAX_TARGET; it goes on reading to the end
** of the pipe (keys sent before the kill were acknowledged all the same),
** reaps the child, and checks the database with plain SQLite:
**
**   - PRAGMA integrity_check says ok;
**   - every key acknowledged in any round so far is there;
**   - no row of a write that failed is there, no row the child never
**     wrote, and no row found after an earlier round has gone.
**
** A row that was never acknowledged may be there (its write was in flight
** at the kill): the rounds count them.  The parent does not checkpoint the
** write-ahead log when it closes the database, so each child starts with a
** log to replay.
** The kill moments come from the count of keys read, not from time, and
** every choice (of the parent and of each child thread) from a generator
** seeded with SEED (default DEFAULT_SEED), printed, so the choices of a run
** can be replayed.
**
** A SIGKILL leaves the kernel's page cache alone: what the child wrote
** stays written.  So the kills show that a write is acknowledged only after
** its COMMIT, not that the COMMIT reached the disk; for that, the child
** checks the setting (synchronous FULL, which fsyncs the log at COMMIT).
**
** It prints a line per round and a summary, and exits 0; or prints each
** failed check (the first MAX_FAIL_MSGS) with its round, then a line with
** the round and the seed, and exits 1 after the round.  A child that meets
** anything unexpected prints it and exits with status 3, which the parent
** reports as a failure.
*/
#include "sqlq.h"
#include "testprog.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NTHREAD 4             /* Threads of the child that write */
#define MAX_INFLIGHT 64       /* Most submitted writes of a thread pending */
#define MAX_MANY 8            /* Rows of a WRITE_MANY */
#define MAX_PAD 6000          /* Largest pad of a row, bytes */
#define MAX_TARGET 3000       /* Most keys read before the kill */
#define DEFAULT_ROUNDS 30     /* Rounds if not given */
#define MAX_ROUNDS 100000     /* Most rounds */
#define DEFAULT_SEED 0xc0ffee /* Seed if not given */
#define ROUND_KEYS 10000000   /* Key: round * ROUND_KEYS */
#define THREAD_KEYS 1000000   /*   + thread * THREAD_KEYS + seq */
#define DOOMED_SEQ 500000     /* Seqs from here: rows of failing writes */
#define STALL_MS 30000        /* Longest wait for a key before the kill */
#define MAX_FAIL_MSGS 20      /* Failed checks printed */
#define CHILD_FAILED 3        /* Exit status of a child that failed */

#define SQL_INSERT "INSERT INTO acks(k, pad) VALUES(?, ?)"

/* ---- both processes ---- */

/* ---- the child ---- */

/* One writing thread of the child. */
typedef struct Client {
  int idx;             /* Index, 0..NTHREAD-1 */
  uint64_t rng;        /* Generator state */
  int64_t nextSeq;     /* Seq of its next row that is to be kept */
  int64_t nextDoomed;  /* Seq of its next row of a failing write */
  pthread_mutex_t mu;  /* Protects nInflight */
  pthread_cond_t room; /* Signalled when nInflight drops */
  int nInflight;       /* Its submitted writes not completed yet */
} Client;

/* A write of a client: its keys and whether it is meant to fail. */
typedef struct Ticket {
  Client *c;              /* The thread that writes it */
  int bDoomed;            /* Its last key is a duplicate: it must fail */
  int nKey;               /* Rows */
  int64_t aKey[MAX_MANY]; /* Their keys */
  int nPad;               /* Pad bytes of an isolated write's row */
} Ticket;

static sqlq *q;                     /* The child's handle */
static int ackFd;                   /* Write end of the pipe */
static int64_t childRound;          /* Round of the child */
static Client aClient[NTHREAD];     /* Its threads */
static unsigned char aPad[MAX_PAD]; /* Pad bytes of every row */

/* Reports what went wrong in the child and ends it. */
static _Noreturn void childFail(const char *zFmt, ...) {
  va_list ap;
  flockfile(stderr);
  fprintf(stderr,
          "crash_sqlq: FAIL: child of round %lld: ", (long long)childRound);
  va_start(ap, zFmt);
  vfprintf(stderr, zFmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  funlockfile(stderr);
  _exit(CHILD_FAILED);
}

/* The key of seq of client c in the child's round. */
static int64_t keyOf(const Client *c, int64_t seq) {
  return childRound * ROUND_KEYS + (int64_t)c->idx * THREAD_KEYS + seq;
}

/* Sends the keys of an acknowledged write to the parent in one write(2). */
static void sendAcks(const int64_t *aKey, int nKey) {
  size_t n = (size_t)nKey * sizeof(aKey[0]);
  ssize_t rc;
  do {
    rc = write(ackFd, aKey, n);
  } while (rc < 0 && errno == EINTR);
  if (rc != (ssize_t)n) childFail("writing to the pipe: %s", strerror(errno));
}

/*
** Acts on the outcome of write t: a write meant to fail must fail with
** SQLITE_CONSTRAINT_PRIMARYKEY, any other must succeed, and then its keys
** go to the parent.
*/
static void finish(const Ticket *t, int status, const sqlq_result *r) {
  const char *zErr = r ? sqlq_result_error(r) : NULL;
  if (t->bDoomed) {
    if (status != SQLITE_CONSTRAINT_PRIMARYKEY) {
      childFail("a write of duplicate key %lld completed with status %d (%s)",
                (long long)t->aKey[t->nKey - 1], status,
                zErr ? zErr : sqlq_strerror(status));
    }
  } else if (status != 0) {
    childFail("a write of key %lld (%d rows) completed with status %d (%s)",
              (long long)t->aKey[0], t->nKey, status,
              zErr ? zErr : sqlq_strerror(status));
  } else {
    sendAcks(t->aKey, t->nKey);
  }
}

/* The completion callback of a submitted write. */
static void onDone(sqlq_result *r, void *udata) {
  Ticket *t = udata;
  Client *c = t->c;
  finish(t, sqlq_result_status(r), r);
  pthread_mutex_lock(&c->mu);
  c->nInflight--;
  pthread_cond_signal(&c->room);
  pthread_mutex_unlock(&c->mu);
  free(t);
}

/* Waits until c may have one more write in flight, and counts it. */
static void waitRoom(Client *c) {
  pthread_mutex_lock(&c->mu);
  while (c->nInflight >= MAX_INFLIGHT)
    pthread_cond_wait(&c->room, &c->mu);
  c->nInflight++;
  pthread_mutex_unlock(&c->mu);
}

/* Adds to t a new row of c to keep. */
static void addKey(Ticket *t) {
  Client *c = t->c;
  if (c->nextSeq >= DOOMED_SEQ) childFail("thread %d ran out of keys", c->idx);
  t->aKey[t->nKey++] = keyOf(c, c->nextSeq++);
}

/* Adds to t a new row that its failure must undo. */
static void addDoomedKey(Ticket *t) {
  Client *c = t->c;
  if (c->nextDoomed >= THREAD_KEYS) {
    childFail("thread %d ran out of keys for failing writes", c->idx);
  }
  t->aKey[t->nKey++] = keyOf(c, c->nextDoomed++);
}

/*
** Makes the next write of c: 1 row (8 in 10), 2 to MAX_MANY rows (1 in
** 10), or one that must fail (1 in 10): c's first key again, alone or
** after rows that the failure must undo.
*/
static Ticket *nextTicket(Client *c) {
  Ticket *t = calloc(1, sizeof(*t));
  unsigned r = (unsigned)(test_random(&c->rng) % 100);
  int i, n;
  if (t == NULL) childFail("out of memory");
  t->c = c;
  if (c->nextSeq == 0 || r < 80) {
    addKey(t);
  } else if (r < 90) {
    n = 2 + (int)(test_random(&c->rng) % (MAX_MANY - 1));
    for (i = 0; i < n; i++)
      addKey(t);
  } else {
    n = r < 95 ? 0 : 1 + (int)(test_random(&c->rng) % (MAX_MANY - 1));
    for (i = 0; i < n; i++)
      addDoomedKey(t);
    t->aKey[t->nKey++] = keyOf(c, 0);
    t->bDoomed = 1;
  }
  return t;
}

/* An isolated WRITE_FN: inserts the one row of the ticket arg. */
static int isolatedInsert(sqlite3 *db, void *arg) {
  const Ticket *t = arg;
  sqlite3_stmt *p;
  int rc = sqlite3_prepare_v2(db, SQL_INSERT, -1, &p, NULL);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(p, 1, t->aKey[0]);
  sqlite3_bind_blob(p, 2, aPad, t->nPad, SQLITE_STATIC);
  rc = sqlite3_step(p);
  sqlite3_finalize(p);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
** The loop of a writing thread: writes by callback (9 in 10, through a
** WRITE or WRITE_MANY, 1 in 16 of the single rows through an isolated
** WRITE_FN) or by sqlq_exec(), forever.  Thread 0 also asks for a
** checkpoint now and then, so that kills land in checkpoints too.
*/
static _Noreturn void clientLoop(Client *c) {
  for (;;) {
    Ticket *t = nextTicket(c);
    sqlq_value aParam[2 * MAX_MANY];
    sqlq_call call = {0};
    sqlq_result *r;
    int i, status, bExec = t->nKey == 1 && test_random(&c->rng) % 10 == 0;
    for (i = 0; i < t->nKey; i++) {
      uint64_t x = test_random(&c->rng);
      size_t nPad = x % 4 == 0 ? (x >> 8) % (MAX_PAD + 1) : (x >> 8) % 256;
      aParam[2 * i] = sqlq_int(t->aKey[i]);
      aParam[2 * i + 1] = sqlq_blob(aPad, (int64_t)nPad);
    }
    call.kind = t->nKey == 1 ? SQLQ_WRITE : SQLQ_WRITE_MANY;
    call.sql = SQL_INSERT;
    call.params = aParam;
    call.nparams = 2;
    call.nrows = t->nKey;
    if (c->idx == 0 && test_random(&c->rng) % 64 == 0) {
      sqlq_call ckpt = {0};
      ckpt.kind = SQLQ_SCRIPT;
      ckpt.sql = "PRAGMA wal_checkpoint(TRUNCATE)";
      sqlq_submit(q, &ckpt);
    }
    if (!bExec && t->nKey == 1 && test_random(&c->rng) % 16 == 0) {
      t->nPad = (int)aParam[1].n;
      memset(&call, 0, sizeof(call));
      call.kind = SQLQ_WRITE_FN;
      call.fn = isolatedInsert;
      call.arg = t;
      call.flags = SQLQ_ISOLATED;
    }
    if (bExec) {
      status = sqlq_exec(q, &call, &r);
      if (r == NULL) {
        childFail("sqlq_exec refused a write: %d (%s)", status,
                  sqlq_strerror(status));
      }
      finish(t, status, r);
      sqlq_result_free(r);
      free(t);
    } else {
      int64_t id;
      call.done = onDone;
      call.udata = t;
      waitRoom(c);
      id = sqlq_submit(q, &call);
      if (id < 0) {
        childFail("sqlq_submit refused a write: %lld (%s)", (long long)id,
                  sqlq_strerror((int)id));
      }
    }
  }
}

/* The start routine of a writing thread. */
static void *clientMain(void *p) {
  clientLoop(p);
}

/* A WRITE_FN: reads the PRAGMA synchronous of the writer into *(int *)arg. */
static int readSynchronous(sqlite3 *db, void *arg) {
  sqlite3_stmt *pStmt;
  int rc = sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &pStmt, NULL);
  if (rc != SQLITE_OK) return rc;
  if (sqlite3_step(pStmt) == SQLITE_ROW) {
    *(int *)arg = sqlite3_column_int(pStmt, 0);
  }
  return sqlite3_finalize(pStmt);
}

/*
** The child: opens the database, creates the table if need be, checks that
** the writer runs with synchronous FULL, and writes from NTHREAD threads
** (this one among them) until it is killed.
*/
static _Noreturn void runChild(int fd, int64_t round, uint64_t seed,
                               const char *zPath) {
  sqlq_call call = {0};
  sqlq_result *r;
  pthread_t thread;
  size_t j;
  int i, rc, sync = -1;
  ackFd = fd;
  childRound = round;
  for (j = 0; j < sizeof(aPad); j++)
    aPad[j] = (unsigned char)test_random(&seed);
  rc = sqlq_open(zPath, NULL, &q);
  if (rc != 0) {
    childFail("sqlq_open(%s): %d (%s)", zPath, rc, sqlq_strerror(rc));
  }
  call.kind = SQLQ_SCRIPT;
  call.sql = "CREATE TABLE IF NOT EXISTS acks(k INTEGER PRIMARY KEY, pad BLOB)";
  rc = sqlq_exec(q, &call, &r);
  if (rc != 0) {
    childFail("creating the table: %d (%s)", rc,
              r && sqlq_result_error(r) ? sqlq_result_error(r)
                                        : sqlq_strerror(rc));
  }
  sqlq_result_free(r);
  /* A kill cannot show a missing fsync: check the setting instead. */
  memset(&call, 0, sizeof(call));
  call.kind = SQLQ_WRITE_FN;
  call.fn = readSynchronous;
  call.arg = &sync;
  call.flags = SQLQ_NO_TRANSACTION;
  rc = sqlq_exec(q, &call, NULL);
  if (rc != 0 || sync != 2) {
    childFail("PRAGMA synchronous of the writer: status %d, value %d, not 2 "
              "(FULL)",
              rc, sync);
  }
  for (i = 0; i < NTHREAD; i++) {
    Client *c = &aClient[i];
    c->idx = i;
    c->rng = test_random(&seed);
    if (pthread_mutex_init(&c->mu, NULL) || pthread_cond_init(&c->room, NULL)) {
      childFail("pthread_mutex_init or pthread_cond_init failed");
    }
  }
  for (i = 1; i < NTHREAD; i++) {
    if (pthread_create(&thread, NULL, clientMain, &aClient[i])) {
      childFail("pthread_create failed");
    }
  }
  clientLoop(&aClient[0]);
}

/* ---- the parent ---- */

static uint64_t seed = DEFAULT_SEED; /* Seed of the run */
static int64_t *aAck;                /* Keys acknowledged, all rounds */
static size_t nAck;                  /* Keys in aAck */
static size_t nAckAlloc;             /* Room in aAck */
static long nFail;                   /* Failed checks */

/* Records a failed check and prints it if it is among the first ones. */
static void fail(const char *zFmt, ...) {
  va_list ap;
  if (nFail++ >= MAX_FAIL_MSGS) return;
  fputs("crash_sqlq: FAIL: ", stderr);
  va_start(ap, zFmt);
  vfprintf(stderr, zFmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* Stops the program at once on a condition it cannot go on from. */
static _Noreturn void die(const char *zMsg) {
  fprintf(stderr, "crash_sqlq: FAIL: %s (seed %#llx)\n", zMsg,
          (unsigned long long)seed);
  exit(1);
}

/* CLOCK_MONOTONIC in nanoseconds. */
static int64_t nowNs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Describes key k as "KEY (round R, thread T, seq S)" in z. */
static const char *describeKey(char *z, size_t n, int64_t k) {
  snprintf(z, n, "%lld (round %lld, thread %lld, seq %lld)", (long long)k,
           (long long)(k / ROUND_KEYS),
           (long long)(k % ROUND_KEYS / THREAD_KEYS),
           (long long)(k % THREAD_KEYS));
  return z;
}

/* Records key k, read from the child of round, as acknowledged. */
static void addAck(int64_t k, int64_t round) {
  char z[96];
  if (k / ROUND_KEYS != round || k % ROUND_KEYS / THREAD_KEYS >= NTHREAD ||
      k % THREAD_KEYS >= DOOMED_SEQ) {
    fail("round %lld: the child acknowledged key %s, which it was not to "
         "write",
         (long long)round, describeKey(z, sizeof(z), k));
    return;
  }
  if (nAck == nAckAlloc) {
    nAckAlloc = nAckAlloc ? 2 * nAckAlloc : 4096;
    aAck = realloc(aAck, nAckAlloc * sizeof(*aAck));
    if (aAck == NULL) die("out of memory");
  }
  aAck[nAck++] = k;
}

/*
** Reads the keys the child of round acknowledges on fd until the end of
** the pipe, and kills the child once target of them have been read.
** Returns how many it read; *pbKilled says whether it killed the child.
*/
static int64_t collectAcks(int fd, pid_t pid, int64_t round, int64_t target,
                           int *pbKilled) {
  unsigned char aBuf[512 * sizeof(int64_t)];
  size_t nBuf = 0, nWant, i;
  int64_t n = 0, k;
  ssize_t nRead;
  *pbKilled = 0;
  for (;;) {
    nWant = sizeof(aBuf) - nBuf;
    if (!*pbKilled) {
      struct pollfd p = {fd, POLLIN, 0};
      int rc;
      /* Read no further than the target, so the kill comes right at it. */
      if ((size_t)(target - n) * sizeof(k) - nBuf < nWant) {
        nWant = (size_t)(target - n) * sizeof(k) - nBuf;
      }
      while ((rc = poll(&p, 1, STALL_MS)) < 0 && errno == EINTR) {
      }
      if (rc < 0) die("poll failed");
      if (rc == 0) {
        fail("round %lld: no acknowledgement for %d s after %lld",
             (long long)round, STALL_MS / 1000, (long long)n);
        kill(pid, SIGKILL);
        *pbKilled = 1;
      }
    }
    while ((nRead = read(fd, aBuf + nBuf, nWant)) < 0 && errno == EINTR) {
    }
    if (nRead < 0) die("reading the pipe failed");
    if (nRead == 0) break;
    nBuf += (size_t)nRead;
    for (i = 0; i + sizeof(k) <= nBuf; i += sizeof(k)) {
      memcpy(&k, aBuf + i, sizeof(k));
      addAck(k, round);
      n++;
    }
    memmove(aBuf, aBuf + i, nBuf - i);
    nBuf -= i;
    if (!*pbKilled && n >= target) {
      kill(pid, SIGKILL);
      *pbKilled = 1;
    }
  }
  if (nBuf != 0) {
    fail("round %lld: the pipe ended inside a record", (long long)round);
  }
  return n;
}

/* Runs PRAGMA integrity_check on db; fails unless it says ok. */
static void checkIntegrity(sqlite3 *db, int64_t round) {
  sqlite3_stmt *pStmt = NULL;
  int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &pStmt, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(pStmt);
  if (rc != SQLITE_ROW) {
    fail("round %lld: PRAGMA integrity_check: %s", (long long)round,
         sqlite3_errmsg(db));
  } else if (strcmp((const char *)sqlite3_column_text(pStmt, 0), "ok") != 0) {
    fail("round %lld: PRAGMA integrity_check: %s", (long long)round,
         sqlite3_column_text(pStmt, 0));
  }
  sqlite3_finalize(pStmt);
}

/* Orders keys for qsort(). */
static int cmpKey(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/*
** After the kill of round, with plain SQLite: the database is sound, holds
** every key acknowledged so far, and no row it should not.  *pnRows is the
** rows found after the previous round, which must all be there still; it
** becomes the rows found now.  Returns the rows of this round that were not
** acknowledged.
*/
static int64_t checkDatabase(const char *zPath, int64_t round,
                             int64_t *pnRows) {
  sqlite3 *db = NULL;
  sqlite3_stmt *pStmt = NULL;
  int64_t nRows = 0, nOld = 0, nUnacked = 0, k;
  size_t i;
  char z[96];
  int rc;
  qsort(aAck, nAck, sizeof(*aAck), cmpKey);
  for (i = 1; i < nAck; i++) {
    if (aAck[i] == aAck[i - 1]) {
      fail("round %lld: key %s was acknowledged twice", (long long)round,
           describeKey(z, sizeof(z), aAck[i]));
    }
  }
  rc = sqlite3_open_v2(zPath, &db, SQLITE_OPEN_READWRITE, NULL);
  /* Leave the log for the next child to recover. */
  if (rc == SQLITE_OK) {
    rc = sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_prepare_v2(db, "SELECT k FROM acks ORDER BY k", -1, &pStmt,
                            NULL);
  }
  if (rc != SQLITE_OK) {
    fail("round %lld: reading %s: %s", (long long)round, zPath,
         db ? sqlite3_errmsg(db) : "no memory");
    sqlite3_close(db);
    return 0;
  }
  i = 0;
  while ((rc = sqlite3_step(pStmt)) == SQLITE_ROW) {
    k = sqlite3_column_int64(pStmt, 0);
    nRows++;
    nOld += k < round * ROUND_KEYS;
    for (; i < nAck && aAck[i] < k; i++) {
      fail("round %lld: key %s was acknowledged but is not in the database",
           (long long)round, describeKey(z, sizeof(z), aAck[i]));
    }
    if (i < nAck && aAck[i] == k) {
      i++;
    } else if (k % THREAD_KEYS >= DOOMED_SEQ) {
      fail("round %lld: key %s, of a write that failed, is in the database",
           (long long)round, describeKey(z, sizeof(z), k));
    } else if (k < ROUND_KEYS || k / ROUND_KEYS > round ||
               k % ROUND_KEYS / THREAD_KEYS >= NTHREAD) {
      fail("round %lld: key %s, which no child wrote, is in the database",
           (long long)round, describeKey(z, sizeof(z), k));
    } else if (k / ROUND_KEYS == round) {
      nUnacked++;
    }
  }
  if (rc != SQLITE_DONE) {
    fail("round %lld: reading acks: %s", (long long)round, sqlite3_errmsg(db));
  }
  for (; i < nAck && rc == SQLITE_DONE; i++) {
    fail("round %lld: key %s was acknowledged but is not in the database",
         (long long)round, describeKey(z, sizeof(z), aAck[i]));
  }
  sqlite3_finalize(pStmt);
  if (nOld != *pnRows) {
    fail("round %lld: %lld rows of earlier rounds, but %lld after the last",
         (long long)round, (long long)nOld, (long long)*pnRows);
  }
  *pnRows = nRows;
  checkIntegrity(db, round);
  sqlite3_close(db);
  return nUnacked;
}

/* Says how the child ended, for messages, in z. */
static const char *describeWait(char *z, size_t n, int wstatus) {
  if (WIFEXITED(wstatus)) {
    snprintf(z, n, "exited with status %d", WEXITSTATUS(wstatus));
  } else if (WIFSIGNALED(wstatus)) {
    snprintf(z, n, "was killed by signal %d", WTERMSIG(wstatus));
  } else {
    snprintf(z, n, "ended with wait status %#x", (unsigned)wstatus);
  }
  return z;
}

int main(int argc, char **argv) {
  char zPath[4096], z[64];
  long nRound = DEFAULT_ROUNDS;
  int64_t round, startNs, nRows = 0, nInflightSeen = 0;
  uint64_t rng;
  char *zEnd;
  int bBad = argc < 2 || argc > 4;
  if (!bBad && argc >= 3) {
    nRound = strtol(argv[2], &zEnd, 0);
    bBad = *zEnd != 0 || nRound < 1 || nRound > MAX_ROUNDS;
  }
  if (!bBad && argc == 4) {
    seed = strtoull(argv[3], &zEnd, 0);
    bBad = *zEnd != 0 || argv[3][0] == 0;
  }
  if (bBad) {
    fprintf(stderr, "usage: %s DIR [ROUNDS [SEED]]\n", argv[0]);
    return 2;
  }
  if (snprintf(zPath, sizeof(zPath), "%s/crash.db", argv[1]) >=
      (int)sizeof(zPath)) {
    die("the path is too long");
  }
  printf("crash_sqlq: %ld rounds, seed %#llx, %d threads, %s\n", nRound,
         (unsigned long long)seed, NTHREAD, zPath);
  test_remove_database(zPath);
  rng = seed;
  startNs = nowNs();
  for (round = 1; round <= nRound; round++) {
    int64_t target = 1 + (int64_t)(test_random(&rng) % MAX_TARGET), n, nUnacked;
    uint64_t childSeed = test_random(&rng);
    int fds[2], wstatus, bKilled;
    pid_t pid;
    if (pipe(fds) != 0) die("pipe failed");
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) die("fork failed");
    if (pid == 0) {
      close(fds[0]);
      runChild(fds[1], round, childSeed, zPath);
    }
    close(fds[1]);
    n = collectAcks(fds[0], pid, round, target, &bKilled);
    close(fds[0]);
    while (waitpid(pid, &wstatus, 0) < 0) {
      if (errno != EINTR) die("waitpid failed");
    }
    if (!bKilled) {
      fail("round %lld: the child %s after %lld acknowledgements, before the "
           "kill",
           (long long)round, describeWait(z, sizeof(z), wstatus), (long long)n);
    } else if (!WIFSIGNALED(wstatus) || WTERMSIG(wstatus) != SIGKILL) {
      fail("round %lld: the child %s, not by the kill", (long long)round,
           describeWait(z, sizeof(z), wstatus));
    }
    nUnacked = checkDatabase(zPath, round, &nRows);
    nInflightSeen += nUnacked;
    if (nFail > 0) {
      fprintf(stderr,
              "crash_sqlq: FAILED in round %lld of %ld (seed %#llx): %ld "
              "checks failed\n",
              (long long)round, nRound, (unsigned long long)seed, nFail);
      return 1;
    }
    printf("crash_sqlq: round %3lld: kill after %4lld acks (+%lld), %lld "
           "unacked present, %lld rows\n",
           (long long)round, (long long)target, (long long)(n - target),
           (long long)nUnacked, (long long)nRows);
  }
  printf("crash_sqlq: ok: %ld rounds, seed %#llx: %lld acknowledged keys "
         "all present, %lld unacknowledged present, integrity ok, "
         "%.2f s\n",
         nRound, (unsigned long long)seed, (long long)nAck,
         (long long)nInflightSeen, (double)(nowNs() - startNs) / 1e9);
  free(aAck);
  return 0;
}
