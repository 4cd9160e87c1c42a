/*
** sqlq.c: the sqlq handle: its queues, worker threads and completions.
**
** DESIGN
** One mutex (sqlq.mu) protects both queues, the task id table, the task
** states, the completion list and the counters.  Writes (and, for
** ":memory:", reads) go to the write queue, which one writer thread takes
** in FIFO order; reads go to the read queue, which the reader threads
** share.  The writer takes a transactional write together with those queued
** right behind it, up to batch_max, and runs them as one group commit
** (run.c).
**
** A task moves QUEUED, TAKEN, RUNNING, RAN, DONE, each step one function
** of task.c under the mutex: this file queues, takes and completes tasks,
** run.c enters and leaves them around what they run, and sqlq_cancel()
** interrupts only a RUNNING task (task.c says why that is safe).  A
** canceled QUEUED task moves to the cancel queue, which every worker
** empties before its own, so the first free worker completes it unrun.
**
** A completion goes to exactly one place: the sqlq_exec() caller waiting
** for it, the completion list that sqlq_dispatch() empties (dispatch mode;
** the eventfd is written when the list turns non-empty), or the task's
** callback on the worker thread.  A batch's completions go out after its
** COMMIT.
**
** sqlq_close() sets bClosing, which refuses new tasks; workers finish their
** queues before they exit; close joins them, delivers the dispatch
** completions left, and waits for callers still inside the handle to leave.
**
** Lock order: sqlq.mu, then the timelimit extension's locks.
*/
#include "sqlq_int.h"
#include "timelimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define HASH_SIZE 4096 /* Buckets of the task id table */

typedef struct Queue Queue;
struct Queue {
  sqlq__task *pHead;   /* Next task to run */
  sqlq__task *pTail;   /* Last task queued */
  pthread_cond_t cond; /* Signalled when a task is queued or on close */
};

/* A worker thread: the writer, or a reader (which borrows connections). */
typedef struct Worker Worker;
struct Worker {
  sqlq *q;          /* The handle */
  sqlq__conn *conn; /* The writer's connection; NULL for a reader */
  Queue *queue;     /* The queue it serves */
  pthread_t thread; /* Its thread */
  int bStarted;     /* thread is running */
};

/*
** An sqlq_exec() caller waiting for its task.  It has a mutex of its own,
** so the worker wakes it after letting go of the handle's.  The callers of
** one batch are woken as a tree: the worker hands each its task and two
** others to wake (apKid), then wakes only the first, so the wake-ups run
** on every core instead of one by one on the writer (measured: 36% of a
** 64-thread insert run was the writer waking callers).  A caller returns
** only once its parent has signalled it (bWoken), so no one ever signals a
** waiter that is gone.
*/
struct sqlq__waiter {
  pthread_mutex_t mu;            /* Protects bWoken */
  pthread_cond_t cond;           /* Signalled when bWoken is set */
  int bWoken;                    /* Its parent has woken it */
  sqlq__task *pTask;             /* The completed task, handed over */
  struct sqlq__waiter *apKid[2]; /* Callers it wakes in turn */
};

struct sqlq {
  char *zPath;         /* The database */
  sqlq_options o;      /* Options, with defaults filled in */
  int bMemory;         /* ":memory:": one connection, reads on writer */
  pthread_mutex_t mu;  /* Protects everything below */
  Queue writeQ;        /* Tasks for the writer */
  Queue readQ;         /* Tasks for the readers */
  Queue cancelQ;       /* Canceled tasks, for any worker (no cond) */
  pthread_cond_t idle; /* Signalled when the last caller leaves */
  pthread_cond_t room; /* Signalled when a task leaves a queue */
  int nQueued;         /* Tasks in both queues */
  int nRunning;        /* Tasks running */
  atomic_int nCallers; /* Threads inside its functions, and CLOSING */
  atomic_int bClosing; /* sqlq_close() has begun (set under mu) */
  atomic_llong nextId; /* Id of the next task */
  sqlq__task *aHash[HASH_SIZE]; /* Queued and running tasks by id */
  sqlq__task *pDoneHead;        /* Completions waiting for sqlq_dispatch() */
  sqlq__task *pDoneTail;        /* Last of them */
  int efd;                      /* eventfd of dispatch mode, or -1 */
  sqlq__stats stats;            /* How its tasks ended, waited, ran */
  int64_t nBatches;             /* Group commit: transactions */
  int64_t nBatched;             /* ... task runs in them */
  int64_t nMaxBatch;            /* ... the most in one */
  sqlq__task **aBatch;          /* The writer's batch (batch_max entries) */
  struct sqlq__waiter **aWake;  /* The writer's callers to wake (batch_max) */
  pthread_t timer;              /* Fails tasks at their queue deadline */
  int bTimer;                   /* The timer thread was started */
  pthread_cond_t timerCond;     /* Wakes it: an earlier deadline, close */
  int64_t timerWakeNs;          /* Its next wake-up, INT64_MAX: none */
  Worker writer;                /* The writer (no conn if read-only) */
  Worker *aReader;              /* The reader threads */
  int nReader;                  /* Reader threads */
  char *zReaderPath;            /* What a read connection opens */
  sqlq__pool *pool;             /* Read connections (a file database) */
  pthread_mutex_t adminMu;      /* Serialises sqlq_activity() */
  sqlite3 *pAdmin;              /* Its connection, opened at its first call */
  sqlite3_stmt *pActivity;      /* Its statement */
};

/*
** Nonzero on the library's worker threads and inside callbacks run by
** sqlq_dispatch(): sqlq_exec() and sqlq_close() would deadlock there.
*/
static _Thread_local int tlsInCallback;

/* ---- tasks ---- */

static sqlq__task **hashSlot(sqlq *q, int64_t id) {
  sqlq__task **pp = &q->aHash[(uint64_t)id % HASH_SIZE];
  while (*pp && (*pp)->id != id)
    pp = &(*pp)->pHash;
  return pp;
}

static void queuePushBack(Queue *qu, sqlq__task *t) {
  t->pNext = NULL;
  t->pPrev = qu->pTail;
  if (qu->pTail) {
    qu->pTail->pNext = t;
  } else {
    qu->pHead = t;
  }
  qu->pTail = t;
}

static void queueRemove(Queue *qu, sqlq__task *t) {
  if (t->pPrev) {
    t->pPrev->pNext = t->pNext;
  } else {
    qu->pHead = t->pNext;
  }
  if (t->pNext) {
    t->pNext->pPrev = t->pPrev;
  } else {
    qu->pTail = t->pPrev;
  }
  t->pNext = t->pPrev = NULL;
}

/* The queue a task waits in: writes, and every task of ":memory:", go to
** the writer. */
static Queue *queueOf(sqlq *q, const sqlq__task *t) {
  return t->bWrite || q->pool == NULL ? &q->writeQ : &q->readQ;
}

static int64_t nowNs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t queueDeadline(const sqlq__task *t);
static void armTimer(sqlq *q, int64_t deadline);

/*
** Accepts a call: checks it, copies it, queues it.  Returns the task id or
** a negative code.  w, if not NULL, is the sqlq_exec() caller that will
** wait for the task, and that waits here for room in a full queue.
*/
static int64_t submitTask(sqlq *q, const sqlq_call *c, struct sqlq__waiter *w) {
  sqlq__task *t;
  Queue *qu;
  int64_t id;
  int rc;
  if (q == NULL || c == NULL) return SQLQ_EINVAL;
  rc = sqlq__task_check(c, q->o.read_only, q->bMemory);
  if (rc) return rc;
  t = sqlq__task_new(c, &q->mu);
  if (t == NULL) return SQLQ_ENOMEM;
  t->pWaiter = w;
  pthread_mutex_lock(&q->mu);
  while (w && !q->bClosing && q->nQueued >= q->o.queue_capacity) {
    pthread_cond_wait(&q->room, &q->mu);
  }
  if (q->bClosing) {
    rc = SQLQ_ECLOSED;
  } else if (q->nQueued >= q->o.queue_capacity) {
    rc = SQLQ_EFULL;
  } else {
    sqlq_result *res = sqlq__result_new(atomic_load(&q->nextId));
    if (res == NULL) {
      rc = SQLQ_ENOMEM;
    } else {
      sqlq__task_queued(t, atomic_fetch_add(&q->nextId, 1), res, nowNs());
    }
  }
  if (rc) {
    pthread_mutex_unlock(&q->mu);
    sqlq__task_free(t);
    return rc;
  }
  *hashSlot(q, t->id) = t;
  sqlq__task_publish(t);
  qu = queueOf(q, t);
  queuePushBack(qu, t);
  q->nQueued++;
  /* Signalled under the lock: measured faster here than after it. */
  pthread_cond_signal(&qu->cond);
  if (c->queue_timeout_ms > 0) armTimer(q, queueDeadline(t));
  id = t->id; /* Once unlocked, a worker may complete and free t. */
  pthread_mutex_unlock(&q->mu);
  return id;
}

/* Wakes w, which then wakes its kids; w is not touched afterwards. */
static void wakeWaiter(struct sqlq__waiter *w) {
  pthread_mutex_lock(&w->mu);
  w->bWoken = 1;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

/*
** Delivers the completions of the n tasks of a (taken by a worker, alone or
** as a batch), with one lock of the mutex.  Called by the worker, without
** the mutex; wake-ups and callbacks happen after it is released.  aWake
** has room for n waiters.  A task handed to sqlq_dispatch()'s list or to a
** waiter belongs to them from then on: its entry of a is cleared.
*/
static void complete(sqlq *q, sqlq__task **a, int n,
                     struct sqlq__waiter **aWake) {
  int i, m = 0, bSignal = 0;
  pthread_mutex_lock(&q->mu);
  for (i = 0; i < n; i++) {
    sqlq__task *t = a[i], **pp = hashSlot(q, t->id);
    *pp = t->pHash;
    q->nRunning--;
    sqlq__task_done(t);
    sqlq__stats_done(&q->stats, t);
    if (t->pWaiter) {
      t->pWaiter->pTask = t;
      aWake[m++] = t->pWaiter;
      a[i] = NULL;
    } else if (q->efd >= 0) {
      t->pNext = NULL;
      if (q->pDoneTail) {
        q->pDoneTail->pNext = t;
      } else {
        q->pDoneHead = t;
        bSignal = 1;
      }
      q->pDoneTail = t;
      a[i] = NULL;
    }
  }
  pthread_mutex_unlock(&q->mu);
  if (bSignal) {
    uint64_t one = 1;
    ssize_t nw = write(q->efd, &one, sizeof(one));
    (void)nw; /* Only EAGAIN can fail it: the counter is already set. */
  }
  for (i = 0; i < m; i++) {
    aWake[i]->apKid[0] = 2 * i + 1 < m ? aWake[2 * i + 1] : NULL;
    aWake[i]->apKid[1] = 2 * i + 2 < m ? aWake[2 * i + 2] : NULL;
  }
  if (m > 0) wakeWaiter(aWake[0]);
  for (i = 0; i < n; i++) {
    if (a[i] == NULL) continue;
    if (a[i]->call.done) a[i]->call.done(a[i]->res, a[i]->call.udata);
    sqlq__task_free(a[i]);
  }
}

/*
** Takes t out of queue qu (the mutex held) for a worker.  Returns 1 if it
** is to run; 0 if it is to complete unrun (canceled, or its time in the
** queue ran out), with its result set.
*/
static int take(sqlq *q, Queue *qu, sqlq__task *t, int64_t now) {
  queueRemove(qu, t);
  q->nQueued--;
  q->nRunning++;
  pthread_cond_signal(&q->room);
  if (!sqlq__task_take(t, now)) return 0;
  sqlq__stats_wait(&q->stats, now - t->enqueueNs);
  return 1;
}

/* ---- queue deadlines ---- */

/* When t's time in the queue runs out (CLOCK_MONOTONIC ns). */
static int64_t queueDeadline(const sqlq__task *t) {
  return t->enqueueNs + (int64_t)t->call.queue_timeout_ms * 1000000;
}

/*
** Collects into a, up to n, the tasks of qu whose queue deadline has passed
** and takes them (their results fail); lowers *pNext to the earliest
** deadline still to come.  The mutex held.
*/
static int takeExpired(sqlq *q, Queue *qu, int64_t now, sqlq__task **a, int n,
                       int64_t *pNext) {
  sqlq__task *t, *pNextTask;
  int k = 0;
  for (t = qu->pHead; t; t = pNextTask) {
    pNextTask = t->pNext;
    if (t->call.queue_timeout_ms <= 0) continue;
    if (queueDeadline(t) < now && k < n) {
      take(q, qu, t, now);
      a[k++] = t;
    } else if (queueDeadline(t) < *pNext) {
      *pNext = queueDeadline(t);
    }
  }
  return k;
}

/*
** The timer thread, started with the first task that has a queue deadline:
** it completes queued tasks as their deadline passes, whatever the workers
** are doing (a writer may wait long for a lock).  Its completions run on
** it, as a worker's do.
*/
static void *timerMain(void *p) {
  enum { N = 64 };
  sqlq *q = p;
  sqlq__task *a[N];
  struct sqlq__waiter *aWake[N];
  tlsInCallback = 1;
  pthread_mutex_lock(&q->mu);
  while (!q->bClosing) {
    int64_t now = nowNs(), next = INT64_MAX;
    int n;
    if (now > q->timerWakeNs) {
      n = takeExpired(q, &q->writeQ, now, a, N, &next);
      n += takeExpired(q, &q->readQ, now, a + n, N - n, &next);
      q->timerWakeNs = n == N ? now : next;
      if (n > 0) {
        pthread_mutex_unlock(&q->mu);
        complete(q, a, n, aWake);
        pthread_mutex_lock(&q->mu);
        continue;
      }
    }
    if (q->timerWakeNs == INT64_MAX) {
      pthread_cond_wait(&q->timerCond, &q->mu);
    } else {
      struct timespec ts;
      int64_t wake;
      clock_gettime(CLOCK_REALTIME, &ts);
      wake = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + 1 +
             (q->timerWakeNs - nowNs());
      ts.tv_sec = wake / 1000000000;
      ts.tv_nsec = wake % 1000000000;
      pthread_cond_timedwait(&q->timerCond, &q->mu, &ts);
    }
  }
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

/*
** Makes the timer wake by deadline, starting it if need be.  The mutex
** held.  If the thread cannot start, deadlines are still checked when a
** task leaves its queue.
*/
static void armTimer(sqlq *q, int64_t deadline) {
  if (!q->bTimer) {
    q->timerWakeNs = INT64_MAX;
    if (pthread_create(&q->timer, NULL, timerMain, q) != 0) return;
    q->bTimer = 1;
  }
  if (deadline < q->timerWakeNs) {
    q->timerWakeNs = deadline;
    pthread_cond_signal(&q->timerCond);
  }
}

/*
** The writer takes t and the transactional writes queued right behind it,
** up to batch_max, waiting up to batch_wait_us for more.  Tasks that are
** not to run go straight back to a[] with their result set; returns n.
*/
static int takeBatch(sqlq *q, sqlq__task *t, int64_t now, sqlq__task **a) {
  int n = 1;
  int64_t deadline = now + (int64_t)q->o.batch_wait_us * 1000;
  a[0] = t;
  while (t->bBatch && n < q->o.batch_max) {
    sqlq__task *next = q->writeQ.pHead;
    if (next && next->bBatch) {
      take(q, &q->writeQ, next, nowNs());
      a[n++] = next;
    } else if (next == NULL && !q->bClosing && nowNs() < deadline) {
      struct timespec ts;
      int64_t wake;
      clock_gettime(CLOCK_REALTIME, &ts);
      wake = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + deadline - nowNs();
      ts.tv_sec = wake / 1000000000;
      ts.tv_nsec = wake % 1000000000;
      pthread_cond_timedwait(&q->writeQ.cond, &q->mu, &ts);
    } else {
      break;
    }
  }
  return n;
}

/* The loop of a worker thread. */
static void *workerMain(void *p) {
  Worker *w = p;
  sqlq *q = w->q;
  tlsInCallback = 1;
  pthread_mutex_lock(&q->mu);
  for (;;) {
    sqlq__task *t;
    struct sqlq__waiter *pWake; /* complete()'s room for one waiter */
    int bRun, n = 1;
    while (w->queue->pHead == NULL && q->cancelQ.pHead == NULL &&
           !q->bClosing) {
      pthread_cond_wait(&w->queue->cond, &q->mu);
    }
    t = q->cancelQ.pHead ? q->cancelQ.pHead : w->queue->pHead;
    if (t == NULL) break;
    bRun = take(q, t == q->cancelQ.pHead ? &q->cancelQ : w->queue, t, nowNs());
    if (bRun) {
      /* A batch is the writer's: q->aBatch and q->aWake are its own. */
      sqlq__task **a = t->bBatch ? q->aBatch : &t;
      struct sqlq__waiter **aWake = t->bBatch ? q->aWake : &pWake;
      sqlq__batch_stats bs = {0, 0, 0};
      if (t->bBatch) n = takeBatch(q, t, nowNs(), a);
      pthread_mutex_unlock(&q->mu);
      if (w->conn) {
        sqlq__run(w->conn, a, n, &q->o, &bs);
      } else {
        /* A reader borrows a connection, as an sqlq_exec() caller does. */
        sqlq__slot *s = sqlq__pool_borrow(q->pool, NULL);
        sqlq__run(sqlq__slot_conn(s), a, n, &q->o, &bs);
        sqlq__pool_give_back(q->pool, s, NULL);
      }
      pthread_mutex_lock(&q->mu);
      q->nBatches += bs.nBatches;
      q->nBatched += bs.nBatched;
      if (bs.nMax > q->nMaxBatch) q->nMaxBatch = bs.nMax;
      pthread_mutex_unlock(&q->mu);
      complete(q, a, n, aWake);
    } else {
      pthread_mutex_unlock(&q->mu);
      complete(q, &t, 1, &pWake);
    }
    pthread_mutex_lock(&q->mu);
  }
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

/* ---- the public functions ---- */

/*
** Counts a caller in and out: nCallers is 2 per caller inside, plus 1 once
** sqlq_close() has begun (CLOSING).  Out of a handle that is not closing,
** a caller leaves with one atomic step and touches nothing after it (no
** lock that every reading thread would share); once it is closing, it
** leaves under the mutex, so that sqlq_close(), which waits under it for
** the count to drop, frees the handle only after the last one is out.
** Fails with SQLQ_EINVAL for a NULL handle.
*/
#define CLOSING 1

static int callerIn(sqlq *q) {
  if (q == NULL) return SQLQ_EINVAL;
  atomic_fetch_add(&q->nCallers, 2);
  return 0;
}

static void callerOut(sqlq *q) {
  int n = atomic_load(&q->nCallers);
  while (!(n & CLOSING)) {
    if (atomic_compare_exchange_weak(&q->nCallers, &n, n - 2)) return;
  }
  pthread_mutex_lock(&q->mu);
  if (atomic_fetch_sub(&q->nCallers, 2) == 2 + CLOSING) {
    pthread_cond_broadcast(&q->idle);
  }
  pthread_mutex_unlock(&q->mu);
}

int64_t sqlq_submit(sqlq *q, const sqlq_call *call) {
  int64_t id;
  if (callerIn(q)) return SQLQ_EINVAL;
  id = submitTask(q, call, NULL);
  callerOut(q);
  return id;
}

/*
** sqlq_exec() of a read on a file database: it runs on this thread, on a
** connection borrowed from the pool, so it never enters the queues.
** Returns the task's status, or a negative code if it was not accepted.
*/
static int execBorrowed(sqlq *q, const sqlq_call *c, sqlq_result **presult) {
  sqlq__task *t;
  sqlq__slot *s;
  int status = sqlq__task_check(c, q->o.read_only, 0);
  if (status) return status;
  if (atomic_load(&q->bClosing)) return SQLQ_ECLOSED;
  t = sqlq__task_new(c, NULL);
  if (t == NULL) return SQLQ_ENOMEM;
  sqlq__task_queued(t, atomic_fetch_add(&q->nextId, 1), NULL, nowNs());
  t->res = sqlq__result_new(t->id);
  if (t->res == NULL) {
    sqlq__task_free(t);
    return SQLQ_ENOMEM;
  }
  s = sqlq__pool_borrow(q->pool, t);
  if (s) {
    sqlq__batch_stats bs = {0, 0, 0};
    tlsInCallback++; /* Its fn may not call sqlq_exec() either */
    sqlq__run(sqlq__slot_conn(s), &t, 1, &q->o, &bs);
    tlsInCallback--;
    sqlq__pool_give_back(q->pool, s, t);
  }
  status = sqlq_result_status(t->res);
  if (presult) {
    *presult = t->res;
    t->res = NULL;
  }
  sqlq__task_free(t);
  return status;
}

int sqlq_exec(sqlq *q, const sqlq_call *call, sqlq_result **presult) {
  struct sqlq__waiter w;
  int64_t id;
  int status;
  if (presult) *presult = NULL;
  if (tlsInCallback) return SQLQ_EMISUSE;
  if (callerIn(q)) return SQLQ_EINVAL;
  if (q->pool && call &&
      (call->kind == SQLQ_READ || call->kind == SQLQ_READ_FN)) {
    status = execBorrowed(q, call, presult);
    callerOut(q);
    return status;
  }
  memset(&w, 0, sizeof(w));
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cond, NULL);
  id = submitTask(q, call, &w);
  if (id >= 0) {
    pthread_mutex_lock(&w.mu);
    while (!w.bWoken)
      pthread_cond_wait(&w.cond, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (w.apKid[0]) wakeWaiter(w.apKid[0]);
    if (w.apKid[1]) wakeWaiter(w.apKid[1]);
    status = sqlq_result_status(w.pTask->res);
    if (presult) {
      *presult = w.pTask->res;
      w.pTask->res = NULL;
    }
    sqlq__task_free(w.pTask);
  } else {
    status = (int)id;
  }
  pthread_cond_destroy(&w.cond);
  pthread_mutex_destroy(&w.mu);
  callerOut(q);
  return status;
}

int sqlq_cancel(sqlq *q, int64_t id) {
  sqlq__task *t;
  int rc = 0;
  if (callerIn(q)) return SQLQ_EINVAL;
  pthread_mutex_lock(&q->mu);
  t = *hashSlot(q, id);
  if (t) {
    rc = sqlq__task_cancel(t);
  } else if (q->pool) {
    /* An sqlq_exec() read, waiting for a connection or running on one. */
    rc = sqlq__pool_cancel(q->pool, id);
  } else {
    rc = SQLQ_ENOTFOUND;
  }
  if (rc == 0 && t && t->eState == SQLQ__QUEUED) {
    /* The first free worker completes it without running it. */
    queueRemove(queueOf(q, t), t);
    queuePushBack(&q->cancelQ, t);
    pthread_cond_broadcast(&q->writeQ.cond);
    pthread_cond_broadcast(&q->readQ.cond);
  }
  pthread_mutex_unlock(&q->mu);
  callerOut(q);
  return rc;
}

int sqlq_fd(sqlq *q) {
  return q && q->efd >= 0 ? q->efd : SQLQ_EINVAL;
}

/* Runs the waiting dispatch-mode completions; returns how many ran. */
static int dispatchAll(sqlq *q) {
  sqlq__task *t, *pNext;
  uint64_t n;
  int nRun = 0;
  ssize_t nRead = read(q->efd, &n, sizeof(n));
  (void)nRead; /* EAGAIN: nothing was signalled, the list may still hold some */
  pthread_mutex_lock(&q->mu);
  t = q->pDoneHead;
  q->pDoneHead = q->pDoneTail = NULL;
  pthread_mutex_unlock(&q->mu);
  for (; t; t = pNext) {
    pNext = t->pNext;
    if (t->call.done) {
      tlsInCallback++;
      t->call.done(t->res, t->call.udata);
      tlsInCallback--;
    }
    sqlq__task_free(t);
    nRun++;
  }
  return nRun;
}

int sqlq_dispatch(sqlq *q) {
  int n;
  if (q == NULL || q->efd < 0) return SQLQ_EINVAL;
  if (callerIn(q)) return SQLQ_EINVAL;
  n = dispatchAll(q);
  callerOut(q);
  return n;
}

int sqlq_stats(sqlq *q, sqlq_stats_t *st) {
  if (st == NULL || callerIn(q)) return SQLQ_EINVAL;
  pthread_mutex_lock(&q->mu);
  memset(st, 0, sizeof(*st));
  sqlq__stats_report(&q->stats, st);
  st->queued = q->nQueued;
  st->running = q->nRunning;
  st->batches = q->nBatches;
  st->batched = q->nBatched;
  st->max_batch = q->nMaxBatch;
  st->mean_batch = st->batches ? (double)st->batched / (double)st->batches : 0;
  if (q->pool) {
    /* The reads of sqlq_exec() callers count in their connections. */
    sqlq__stats sum = q->stats;
    sqlq__pool_stats(q->pool, &sum, &st->queued, &st->running);
    sqlq__stats_report(&sum, st);
  }
  pthread_mutex_unlock(&q->mu);
  callerOut(q);
  return 0;
}

/*
** Prepares the statement of sqlq_activity() on a connection of its own, in
** memory and not locked, so that it sees every connection's row.  Returns
** an SQLite code; the caller holds adminMu.
*/
static int openAdmin(sqlq *q) {
  int rc;
  if (q->pActivity) return SQLITE_OK;
  if (q->pAdmin == NULL) {
    rc = sqlite3_open_v2(":memory:", &q->pAdmin,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) rc = timelimit_register(q->pAdmin);
    if (rc != SQLITE_OK) {
      sqlite3_close(q->pAdmin);
      q->pAdmin = NULL;
      return rc;
    }
  }
  return sqlite3_prepare_v2(q->pAdmin,
                            "SELECT * FROM timelimit_activity "
                            "WHERE id <> timelimit_id()",
                            -1, &q->pActivity, NULL);
}

int sqlq_activity(sqlq *q, sqlq_result **presult) {
  sqlq_result *r;
  int rc;
  if (presult) *presult = NULL;
  if (presult == NULL || callerIn(q)) return SQLQ_EINVAL;
  r = sqlq__result_new(0);
  if (r == NULL) {
    callerOut(q);
    return SQLQ_ENOMEM;
  }
  pthread_mutex_lock(&q->adminMu);
  rc = openAdmin(q);
  if (rc == SQLITE_OK && sqlq__result_columns(r, q->pActivity)) {
    rc = SQLITE_NOMEM;
  }
  while (rc == SQLITE_OK && (rc = sqlite3_step(q->pActivity)) == SQLITE_ROW) {
    rc = sqlq__result_add_row(r, q->pActivity) ? SQLITE_NOMEM : SQLITE_OK;
  }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  if (q->pActivity) sqlite3_reset(q->pActivity);
  pthread_mutex_unlock(&q->adminMu);
  if (rc != SQLITE_OK) {
    sqlq__result_clear_rows(r);
    sqlq__result_fail(r, rc, NULL);
  }
  *presult = r;
  callerOut(q);
  return rc;
}

/* Starts a worker on conn serving qu; returns 0 or SQLQ_ESYSTEM. */
static int startWorker(sqlq *q, Worker *w, sqlq__conn *conn, Queue *qu) {
  w->q = q;
  w->conn = conn;
  w->queue = qu;
  if (pthread_create(&w->thread, NULL, workerMain, w) != 0) {
    return SQLQ_ESYSTEM;
  }
  w->bStarted = 1;
  return 0;
}

/*
** Stops the workers (after they finish their queues), delivers the dispatch
** completions left, waits for callers to leave, and frees everything.
*/
static void teardown(sqlq *q) {
  int i;
  pthread_mutex_lock(&q->mu);
  atomic_store(&q->bClosing, 1);
  atomic_fetch_or(&q->nCallers, CLOSING);
  pthread_cond_broadcast(&q->writeQ.cond);
  pthread_cond_broadcast(&q->readQ.cond);
  pthread_cond_broadcast(&q->room);
  pthread_cond_signal(&q->timerCond);
  pthread_mutex_unlock(&q->mu);
  if (q->bTimer) pthread_join(q->timer, NULL);
  if (q->writer.bStarted) pthread_join(q->writer.thread, NULL);
  for (i = 0; i < q->nReader; i++) {
    if (q->aReader[i].bStarted) pthread_join(q->aReader[i].thread, NULL);
  }
  if (q->efd >= 0) {
    while (dispatchAll(q) > 0) {
    }
  }
  pthread_mutex_lock(&q->mu);
  while (atomic_load(&q->nCallers) > CLOSING)
    pthread_cond_wait(&q->idle, &q->mu);
  pthread_mutex_unlock(&q->mu);
  sqlq__pool_close(q->pool);
  sqlite3_free(q->zReaderPath);
  sqlq__conn_close(q->writer.conn);
  if (q->efd >= 0) close(q->efd);
  pthread_cond_destroy(&q->writeQ.cond);
  pthread_cond_destroy(&q->readQ.cond);
  pthread_cond_destroy(&q->idle);
  pthread_cond_destroy(&q->room);
  pthread_cond_destroy(&q->timerCond);
  pthread_mutex_destroy(&q->mu);
  sqlite3_finalize(q->pActivity);
  sqlite3_close(q->pAdmin);
  pthread_mutex_destroy(&q->adminMu);
  free(q->aReader);
  free(q->aBatch);
  free(q->aWake);
  free(q->zPath);
  free(q);
}

int sqlq_close(sqlq *q) {
  if (q == NULL) return SQLQ_EINVAL;
  if (tlsInCallback) return SQLQ_EMISUSE;
  teardown(q);
  return 0;
}

/* True if every option is zero (the default) or in range. */
static int optionsValid(const sqlq_options *o) {
  return o->readers >= 0 && o->readers <= SQLQ_MAX_READERS &&
         o->read_timeout_ms >= 0 && o->max_rows >= 0 &&
         o->queue_capacity >= 0 && o->synchronous >= 0 && o->synchronous <= 3 &&
         o->batch_max >= 0 && o->batch_wait_us >= 0 &&
         o->write_timeout_ms >= 0 && o->busy_timeout_ms >= 0 &&
         o->read_connections >= 0 && o->read_connections <= SQLQ_MAX_READERS;
}

/* Fills the defaults of the options. */
static void setDefaults(sqlq_options *o) {
  if (o->readers <= 0) o->readers = SQLQ_DEFAULT_READERS;
  if (o->read_timeout_ms <= 0) {
    o->read_timeout_ms = SQLQ_DEFAULT_READ_TIMEOUT_MS;
  }
  if (o->max_rows <= 0) o->max_rows = SQLQ_DEFAULT_MAX_ROWS;
  if (o->queue_capacity <= 0) o->queue_capacity = SQLQ_DEFAULT_QUEUE_CAPACITY;
  if (o->immutable) o->read_only = 1;
  if (o->synchronous <= 0) o->synchronous = SQLQ_DEFAULT_SYNCHRONOUS;
  if (o->batch_max <= 0) o->batch_max = SQLQ_DEFAULT_BATCH_MAX;
  if (o->busy_timeout_ms <= 0) {
    o->busy_timeout_ms = SQLQ_DEFAULT_BUSY_TIMEOUT_MS;
  }
  if (o->read_connections <= 0) {
    long nCpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (nCpu < 1) nCpu = 1;
    if (nCpu > SQLQ_MAX_READERS / SQLQ_DEFAULT_READ_CONNECTIONS_PER_CORE) {
      nCpu = SQLQ_MAX_READERS / SQLQ_DEFAULT_READ_CONNECTIONS_PER_CORE;
    }
    o->read_connections = SQLQ_DEFAULT_READ_CONNECTIONS_PER_CORE * (int)nCpu;
  }
  if (o->read_connections < o->readers) o->read_connections = o->readers;
}

/*
** Appends to the URI being built in z (size n) the query parameter that
** starts at zParam and ends before zEnd, after '?' or '&'.
*/
static void uriAppend(char *z, size_t n, const char *zParam, const char *zEnd) {
  size_t len = strlen(z);
  snprintf(z + len, n - len, "%c%.*s", strchr(z, '?') ? '&' : '?',
           (int)(zEnd - zParam), zParam);
}

/*
** The name the readers open (sqlite3_malloc), with SQLITE_OPEN_READONLY:
** path itself, or for a URI the URI without its mode= parameter (a mode
** that allows writing conflicts with a read-only open), its cache= (a
** shared cache would make reads wait on the writer's table locks) and its
** fragment; for
** an immutable database, with immutable=1.
*/
static char *readerPath(const sqlq *q) {
  const char *zPath = q->zPath, *zQuery, *z;
  size_t n = strlen(zPath) * 3 + 32;
  char *zOut = sqlite3_malloc64(n), *p;
  if (zOut == NULL) return NULL;
  if (strncmp(zPath, "file:", 5) == 0) {
    zQuery = zPath + strcspn(zPath, "?#");
    snprintf(zOut, n, "%.*s", (int)(zQuery - zPath), zPath);
    for (z = zQuery; *z == '?' || *z == '&';) {
      const char *zParam = z + 1, *zEnd = zParam + strcspn(zParam, "&#");
      if (strncmp(zParam, "mode=", 5) != 0 &&
          strncmp(zParam, "cache=", 6) != 0 &&
          strncmp(zParam, "immutable=", 10) != 0 && zEnd > zParam) {
        uriAppend(zOut, n, zParam, zEnd);
      }
      z = zEnd;
    }
    static const char zImmutable[] = "immutable=1";
    if (q->o.immutable) {
      uriAppend(zOut, n, zImmutable, zImmutable + sizeof(zImmutable) - 1);
    }
    return zOut;
  }
  if (!q->o.immutable) {
    snprintf(zOut, n, "%s", zPath);
    return zOut;
  }
  /*
  ** Percent-encode what a URI path cannot hold as is; an absolute path gets
  ** an empty authority ("file://" + path), so that "//x" is no host name.
  */
  p = zOut + sprintf(zOut, zPath[0] == '/' ? "file://" : "file:");
  for (z = zPath; *z; z++) {
    if (*z == '%' || *z == '?' || *z == '#') {
      p += sprintf(p, "%%%02X", (unsigned char)*z);
    } else {
      *p++ = *z;
    }
  }
  strcpy(p, "?immutable=1");
  return zOut;
}

/*
** True if the file: URI zPath sets the query parameter zKey to a true value
** ("1", "yes", "true" or "on", as SQLite reads it).
*/
static int uriFlag(const char *zPath, const char *zKey) {
  static const char *const azTrue[] = {"1", "yes", "true", "on"};
  size_t nKey = strlen(zKey), i;
  const char *z;
  if (strncmp(zPath, "file:", 5) != 0) return 0;
  for (z = zPath + strcspn(zPath, "?#"); *z == '?' || *z == '&';) {
    const char *zParam = z + 1, *zEnd = zParam + strcspn(zParam, "&#");
    if (strncmp(zParam, zKey, nKey) == 0 && zParam[nKey] == '=') {
      for (i = 0; i < sizeof(azTrue) / sizeof(azTrue[0]); i++) {
        size_t n = strlen(azTrue[i]);
        if ((size_t)(zEnd - zParam) == nKey + 1 + n &&
            sqlite3_strnicmp(zParam + nKey + 1, azTrue[i], (int)n) == 0) {
          return 1;
        }
      }
    }
    z = zEnd;
  }
  return 0;
}

/* True if db's main database lives in memory (or is a temporary file). */
static int inMemory(sqlite3 *db) {
  const char *z = sqlite3_db_filename(db, "main");
  return z == NULL || z[0] == 0;
}

int sqlq_open(const char *path, const sqlq_options *opts, sqlq **pq) {
  sqlq *q;
  char *zErr = NULL;
  int rc = 0, i;
  if (pq) *pq = NULL;
  if (path == NULL || pq == NULL) return SQLQ_EINVAL;
  if (opts && !optionsValid(opts)) return SQLQ_EINVAL;
  /* Without locks, readers would read the writer's half-done pages. */
  if (uriFlag(path, "nolock") && !(opts && opts->read_only)) {
    return SQLQ_EINVAL;
  }
  q = calloc(1, sizeof(*q));
  if (q == NULL) return SQLQ_ENOMEM;
  if (opts) q->o = *opts;
  setDefaults(&q->o);
  q->zPath = strdup(path);
  q->bMemory = strcmp(path, ":memory:") == 0;
  q->nextId = 1;
  q->efd = -1;
  pthread_mutex_init(&q->mu, NULL);
  pthread_mutex_init(&q->adminMu, NULL);
  pthread_cond_init(&q->writeQ.cond, NULL);
  pthread_cond_init(&q->readQ.cond, NULL);
  pthread_cond_init(&q->idle, NULL);
  pthread_cond_init(&q->room, NULL);
  pthread_cond_init(&q->timerCond, NULL);
  q->aBatch = malloc((size_t)q->o.batch_max * sizeof(sqlq__task *));
  q->aWake = malloc((size_t)q->o.batch_max * sizeof(struct sqlq__waiter *));
  if (q->zPath == NULL || q->aBatch == NULL || q->aWake == NULL) {
    rc = SQLQ_ENOMEM;
  }
  if (rc == 0 && q->bMemory && q->o.read_only) rc = SQLQ_EINVAL;
  if (rc == 0 && q->o.dispatch) {
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd < 0) rc = SQLQ_ESYSTEM;
  }
  if (rc == 0 && !q->o.read_only) {
    rc = sqlq__conn_open(path, SQLQ__WRITER, &q->o, &q->writer.conn, &zErr);
    /* "", ":memory:", file::memory:, mode=memory: one connection only. */
    if (rc == 0 && inMemory(sqlq__conn_db(q->writer.conn))) q->bMemory = 1;
  }
  if (rc == 0 && !q->bMemory) {
    /* The readers' connections, the first ones opened now. */
    q->aReader = calloc((size_t)q->o.readers, sizeof(Worker));
    q->zReaderPath = readerPath(q);
    if (q->aReader == NULL || q->zReaderPath == NULL) rc = SQLQ_ENOMEM;
    if (rc == 0) {
      rc = sqlq__pool_open(q->zReaderPath, &q->o, q->o.readers,
                           q->o.read_connections, &q->pool, &zErr);
    }
    if (rc == 0) {
      /* A read-only handle on memory would read an empty database. */
      sqlq__slot *s = sqlq__pool_borrow(q->pool, NULL);
      if (inMemory(sqlq__conn_db(sqlq__slot_conn(s)))) rc = SQLQ_EINVAL;
      sqlq__pool_give_back(q->pool, s, NULL);
    }
  }
  if (rc == 0 && q->writer.conn) {
    rc = startWorker(q, &q->writer, q->writer.conn, &q->writeQ);
  }
  for (i = 0; rc == 0 && q->pool && i < q->o.readers; i++) {
    rc = startWorker(q, &q->aReader[i], NULL, &q->readQ);
    if (rc == 0) q->nReader++;
  }
  sqlite3_free(zErr);
  if (rc != 0) {
    teardown(q);
    return rc;
  }
  *pq = q;
  return 0;
}
