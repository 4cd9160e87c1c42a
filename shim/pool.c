/*
** pool.c: the read connections of a handle on a file database, which
** sqlq_exec() callers (a read runs on the caller's thread) and reader
** threads (for submitted reads) borrow.
**
** BORROWING
** Each connection has a slot with a busy flag.  A borrower takes an idle
** one with a compare-and-swap, starting at the slot its thread used last,
** so that threads no more numerous than the connections each keep one and
** share no lock.  When none is idle, it opens one more if the pool may
** grow, else it waits in a FIFO list under the pool's mutex.  A connection
** given back is marked idle at once, and the first waiter woken to take it;
** a borrower that finds it first takes it (handing each connection over in
** turn would make every call wait for a sleeping thread to be scheduled:
** measured, a convoy).  So that no waiter waits for ever, once the first
** one has waited STARVE_NS the pool turns fair: borrowers stop taking idle
** connections past the waiters, and a connection given back goes to the
** first waiter.  Given back and waiting are ordered by sequentially
** consistent atomics (busy flag, then waiter count; waiter count, then busy
** flags), so a waiter never sleeps past an idle connection.
**
** A caller's task is QUEUED while it waits here (its lock is the pool's
** mutex) and attached to its slot while it runs (its lock is then the
** slot's), where sqlq__pool_cancel() finds it: so cancelling it takes no
** lock the other readers use.  Each slot counts the tasks that ran on it.
*/
#include "sqlq_int.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
** How long the first waiter waits before the pool turns fair (about one
** call of the slowest reads here would be far less; a scheduler's time
** slice, several ms, far more).
*/
#define STARVE_NS 1000000

/*
** How many times a borrower that finds no idle connection lets another
** thread run before it waits in the list: with more threads than cores,
** the thread holding a connection is often one that is not running.
*/
#define YIELDS 16

/* One read connection: 64-byte aligned, so that slots share no line. */
struct sqlq__slot {
  _Alignas(64) atomic_int bBusy; /* Borrowed */
  sqlq__conn *c;                 /* The connection (set before published) */
  pthread_mutex_t mu;            /* Guards pTask and stats */
  sqlq__task *pTask;             /* The caller's task on it, or NULL */
  sqlq__stats stats;             /* The tasks that ran on it */
};

/* A borrower waiting for a connection. */
typedef struct Waiter Waiter;
struct Waiter {
  pthread_cond_t cond; /* Signalled: a connection may be idle, cancel */
  sqlq__task *t;       /* The caller's task, or NULL (a reader thread) */
  sqlq__slot *pGiven;  /* A connection handed to it */
  int64_t since;       /* When it began to wait */
  int bSignalled;      /* Woken, not yet running */
  Waiter *pNext;       /* The list, oldest first */
};

struct sqlq__pool {
  pthread_mutex_t mu;    /* Guards everything below but the atomics */
  const char *zPath;     /* What a connection opens */
  const sqlq_options *o; /* The handle's options */
  int nSlots;            /* Slots allocated */
  atomic_int nMax;       /* Most connections: nSlots, less once an open
                            failed (the pool then stops growing) */
  atomic_int nConn;      /* aSlot[0..nConn) have a connection */
  int nOpening;          /* Being opened */
  atomic_int nWaiting;   /* Waiters in the list */
  atomic_int bFair;      /* The first waiter has waited STARVE_NS */
  Waiter *pHead;         /* The waiters, oldest first */
  sqlq__stats stats;     /* Callers' tasks that completed unrun here */
  sqlq__slot *aSlot;     /* nSlots slots */
};

/* The slot this thread used last (+1; 0: none yet). */
static _Thread_local int tlsHint;
static atomic_int nextHint; /* Spreads threads over the slots */

static int64_t nowNs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Opens one more connection into aSlot[nConn]; the mutex held, let go. */
static int grow(sqlq__pool *p, char **pzErr) {
  sqlq__conn *c;
  int rc;
  p->nOpening++;
  pthread_mutex_unlock(&p->mu);
  rc = sqlq__conn_open(p->zPath, SQLQ__READER, p->o, &c, pzErr);
  pthread_mutex_lock(&p->mu);
  p->nOpening--;
  if (rc == 0) {
    int n = atomic_load(&p->nConn);
    p->aSlot[n].c = c;
    atomic_store(&p->nConn, n + 1); /* Published: others may take it */
  }
  return rc;
}

int sqlq__pool_open(const char *zPath, const sqlq_options *o, int nOpen,
                    int nMax, sqlq__pool **pp, char **pzErr) {
  sqlq__pool *p = calloc(1, sizeof(*p));
  int i, rc = 0;
  *pp = NULL;
  if (p == NULL) return SQLQ_ENOMEM;
  p->aSlot = aligned_alloc(64, sizeof(sqlq__slot) * (size_t)nMax);
  if (p->aSlot == NULL) {
    free(p);
    return SQLQ_ENOMEM;
  }
  memset(p->aSlot, 0, sizeof(sqlq__slot) * (size_t)nMax);
  for (i = 0; i < nMax; i++)
    pthread_mutex_init(&p->aSlot[i].mu, NULL);
  pthread_mutex_init(&p->mu, NULL);
  p->zPath = zPath;
  p->o = o;
  p->nSlots = nMax;
  atomic_store(&p->nMax, nMax);
  pthread_mutex_lock(&p->mu);
  for (i = 0; i < nOpen && rc == 0; i++) {
    sqlite3_free(*pzErr);
    *pzErr = NULL;
    rc = grow(p, pzErr);
  }
  pthread_mutex_unlock(&p->mu);
  *pp = p;
  return rc;
}

void sqlq__pool_close(sqlq__pool *p) {
  int i;
  if (p == NULL) return;
  for (i = 0; i < p->nSlots; i++) {
    sqlq__conn_close(p->aSlot[i].c);
    pthread_mutex_destroy(&p->aSlot[i].mu);
  }
  pthread_mutex_destroy(&p->mu);
  free(p->aSlot);
  free(p);
}

sqlq__conn *sqlq__slot_conn(sqlq__slot *s) {
  return s->c;
}

/* Takes an idle connection, starting where this thread took one last. */
static sqlq__slot *tryTake(sqlq__pool *p) {
  int n = atomic_load(&p->nConn), i, k;
  if (tlsHint == 0) tlsHint = 1 + atomic_fetch_add(&nextHint, 1);
  for (i = 0; i < n; i++) {
    sqlq__slot *s;
    int zero = 0;
    k = (tlsHint - 1 + i) % n;
    s = &p->aSlot[k];
    /* (Sequentially consistent: see the top of the file.) */
    if (atomic_load(&s->bBusy) == 0 &&
        atomic_compare_exchange_strong(&s->bBusy, &zero, 1)) {
      tlsHint = k + 1;
      return s;
    }
  }
  return NULL;
}

/*
** Wakes the first waiter, the mutex held; once it has waited STARVE_NS,
** the pool turns fair and it is handed an idle connection if there is one.
*/
static void wakeFirst(sqlq__pool *p, int64_t now) {
  Waiter *w = p->pHead;
  if (w == NULL || w->pGiven) return;
  if (now - w->since >= STARVE_NS) {
    atomic_store(&p->bFair, 1);
    w->pGiven = tryTake(p);
    if (w->pGiven) pthread_cond_signal(&w->cond);
  } else if (!w->bSignalled) {
    w->bSignalled = 1;
    pthread_cond_signal(&w->cond);
  }
}

/* Attaches t to s, where sqlq__pool_cancel() finds it; s's lock is t's. */
static void attach(sqlq__slot *s, sqlq__task *t, int64_t now) {
  pthread_mutex_lock(&s->mu);
  t->pMu = &s->mu;
  s->pTask = t;
  sqlq__stats_wait(&s->stats, now - t->enqueueNs);
  sqlq__task_publish(t);
  pthread_mutex_unlock(&s->mu);
}

/* Removes w from the list, the mutex held. */
static void unlinkWaiter(sqlq__pool *p, Waiter *w) {
  Waiter **pp = &p->pHead;
  while (*pp != w)
    pp = &(*pp)->pNext;
  *pp = w->pNext;
  atomic_fetch_sub(&p->nWaiting, 1);
  if (p->pHead == NULL) atomic_store(&p->bFair, 0);
}

/* The slow way of sqlq__pool_borrow(): waiting in the list. */
static sqlq__slot *waitForSlot(sqlq__pool *p, sqlq__task *t) {
  Waiter w, **pp;
  sqlq__slot *s = NULL;
  int64_t deadline = INT64_MAX;
  memset(&w, 0, sizeof(w));
  pthread_cond_init(&w.cond, NULL);
  w.t = t;
  pthread_mutex_lock(&p->mu);
  w.since = nowNs();
  for (pp = &p->pHead; *pp; pp = &(*pp)->pNext) {
  }
  *pp = &w;
  atomic_fetch_add(&p->nWaiting, 1);
  if (t) {
    t->pMu = &p->mu;
    sqlq__task_publish(t);
    if (t->call.queue_timeout_ms > 0) {
      deadline = t->enqueueNs + (int64_t)t->call.queue_timeout_ms * 1000000;
    }
  }
  for (;;) {
    int64_t now = nowNs(), wake;
    w.bSignalled = 0; /* It runs: a signal from now on must not be lost */
    if (w.pGiven || (t && (sqlq__task_canceled(t) || now > deadline))) break;
    if (p->pHead == &w || !atomic_load(&p->bFair)) {
      s = tryTake(p);
      if (s) break;
    }
    if (atomic_load(&p->nConn) + p->nOpening < atomic_load(&p->nMax)) {
      char *zErr = NULL;
      if (grow(p, &zErr) != 0) {
        /* The pool stops growing (an open that failed once would fail
        ** again at once, and waiters would spin): it waits for one open. */
        atomic_store(&p->nMax, atomic_load(&p->nConn) + p->nOpening);
      }
      sqlite3_free(zErr);
      continue;
    }
    if (p->pHead != &w) {
      wakeFirst(p, now); /* (The first may be starving: hand it one.) */
    } else if (now - w.since >= STARVE_NS) {
      atomic_store(&p->bFair, 1); /* It is: no one takes one past it */
    }
    /* The first waiter wakes to turn the pool fair; a task, at its queue
    ** deadline. */
    wake = deadline;
    if (p->pHead == &w && !atomic_load(&p->bFair) &&
        w.since + STARVE_NS < wake) {
      wake = w.since + STARVE_NS;
    }
    if (wake == INT64_MAX) {
      pthread_cond_wait(&w.cond, &p->mu);
    } else {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      wake = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (wake - now) + 1;
      ts.tv_sec = wake / 1000000000;
      ts.tv_nsec = wake % 1000000000;
      pthread_cond_timedwait(&w.cond, &p->mu, &ts);
    }
  }
  if (w.pGiven) s = w.pGiven;
  unlinkWaiter(p, &w);
  if (t && !sqlq__task_take(t, nowNs())) {
    /* Canceled or past its deadline: done unrun, counted here. */
    if (s) atomic_store(&s->bBusy, 0);
    s = NULL;
    sqlq__task_done(t);
    sqlq__stats_done(&p->stats, t);
  }
  if (s && t) attach(s, t, nowNs());
  if (p->pHead) wakeFirst(p, nowNs()); /* It may find one idle */
  pthread_mutex_unlock(&p->mu);
  pthread_cond_destroy(&w.cond);
  return s;
}

sqlq__slot *sqlq__pool_borrow(sqlq__pool *p, sqlq__task *t) {
  sqlq__slot *s = NULL;
  int i;
  for (i = 0; i < YIELDS && s == NULL; i++) {
    if (i > 0) sched_yield();
    if (!atomic_load(&p->bFair)) s = tryTake(p);
    if (atomic_load(&p->nConn) < atomic_load(&p->nMax)) break; /* May grow */
  }
  if (s == NULL) return waitForSlot(p, t);
  if (t) {
    /* Nobody else sees t yet: it is taken as it was queued, at once. */
    sqlq__task_take(t, t->enqueueNs);
    attach(s, t, t->enqueueNs);
  }
  return s;
}

void sqlq__pool_give_back(sqlq__pool *p, sqlq__slot *s, sqlq__task *t) {
  if (t) {
    pthread_mutex_lock(&s->mu);
    s->pTask = NULL;
    sqlq__task_done(t);
    sqlq__stats_done(&s->stats, t);
    pthread_mutex_unlock(&s->mu);
  }
  atomic_store(&s->bBusy, 0);
  if (atomic_load(&p->nWaiting) > 0) {
    pthread_mutex_lock(&p->mu);
    wakeFirst(p, nowNs());
    pthread_mutex_unlock(&p->mu);
  }
}

int sqlq__pool_cancel(sqlq__pool *p, int64_t id) {
  Waiter *w;
  int i, n, rc = SQLQ_ENOTFOUND;
  pthread_mutex_lock(&p->mu);
  for (w = p->pHead; w && rc == SQLQ_ENOTFOUND; w = w->pNext) {
    if (w->t && w->t->id == id) {
      rc = sqlq__task_cancel(w->t);
      pthread_cond_signal(&w->cond);
    }
  }
  n = atomic_load(&p->nConn);
  for (i = 0; i < n && rc == SQLQ_ENOTFOUND; i++) {
    sqlq__slot *s = &p->aSlot[i];
    pthread_mutex_lock(&s->mu);
    if (s->pTask && s->pTask->id == id) rc = sqlq__task_cancel(s->pTask);
    pthread_mutex_unlock(&s->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

void sqlq__pool_stats(sqlq__pool *p, sqlq__stats *pSum, int64_t *pnQueued,
                      int64_t *pnRunning) {
  Waiter *w;
  int i, n;
  pthread_mutex_lock(&p->mu);
  sqlq__stats_add(pSum, &p->stats);
  for (w = p->pHead; w; w = w->pNext)
    *pnQueued += w->t != NULL;
  n = atomic_load(&p->nConn);
  for (i = 0; i < n; i++) {
    sqlq__slot *s = &p->aSlot[i];
    pthread_mutex_lock(&s->mu);
    sqlq__stats_add(pSum, &s->stats);
    *pnRunning += s->pTask != NULL;
    pthread_mutex_unlock(&s->mu);
  }
  pthread_mutex_unlock(&p->mu);
}
