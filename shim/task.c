/*
** task.c: a task of an sqlq handle.  What each kind of call means, the copy
** of a call into a task, and the steps of a task's life (sqlq_int.h:
** QUEUED, TAKEN, RUNNING, RAN, DONE), each one function here, each under
** the handle's mutex.
**
** A task is RUNNING only between sqlq__task_enter() and sqlq__task_leave(),
** around the statements it runs, and sqlq__task_cancel() interrupts a
** connection only for a RUNNING task, under the same mutex: so a cancel
** can never reach a task that has ended, nor the next task on the same
** connection, nor a batch-mate.  The interrupt stops the statement running;
** the step budget of 1 it also sets stops any statement the task starts
** later, and sqlq__task_leave() lifts it.
*/
#include "sqlq_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
** What each kind of task is: the one table of it.  A write goes to the
** writer; a read to a reader (to the writer on a database in memory).
**
**   kind         body       transaction            group commit
**   READ         statement  none (read only)       -
**   READ_FN      fn         none (read only)       -
**   WRITE        statement  the library's          yes
**   WRITE_MANY   many       the library's          yes
**   SCRIPT       script     none                   no
**   WRITE_FN     fn         the library's          with SQLQ_IDEMPOTENT
**
** And what the flags change: SQLQ_NO_TRANSACTION runs a write with no
** transaction of the library's and alone; SQLQ_ISOLATED runs a WRITE_FN on
** a connection opened for it alone, on the writer's thread while the queue
** waits; SQLQ_IDEMPOTENT lets a WRITE_FN, which a group commit may run more
** than once, join one.
*/
static const struct KindRule {
  int eBody;  /* SQLQ__BODY_* */
  int bWrite; /* It may write */
  int bTxn;   /* It runs in a transaction of the library's */
  int bBatch; /* It may share that transaction with others */
  int flags;  /* The flags it accepts */
} aKind[] = {
    [SQLQ_READ] = {SQLQ__BODY_STATEMENT, 0, 0, 0, 0},
    [SQLQ_READ_FN] = {SQLQ__BODY_FN, 0, 0, 0, 0},
    [SQLQ_WRITE] = {SQLQ__BODY_STATEMENT, 1, 1, 1, SQLQ_NO_TRANSACTION},
    [SQLQ_WRITE_MANY] = {SQLQ__BODY_MANY, 1, 1, 1, SQLQ_NO_TRANSACTION},
    [SQLQ_SCRIPT] = {SQLQ__BODY_SCRIPT, 1, 0, 0, 0},
    [SQLQ_WRITE_FN] = {SQLQ__BODY_FN, 1, 1, 0,
                       SQLQ_NO_TRANSACTION | SQLQ_ISOLATED | SQLQ_IDEMPOTENT},
};

/* The rule of kind k, or NULL if k is no kind. */
static const struct KindRule *ruleOf(sqlq_kind k) {
  if ((int)k < SQLQ_READ || (int)k > SQLQ_WRITE_FN) return NULL;
  return &aKind[k];
}

/* How many parameter values a call carries. */
static int64_t valueCount(const sqlq_call *c) {
  return c->kind == SQLQ_WRITE_MANY ? (int64_t)c->nparams * c->nrows
                                    : c->nparams;
}

int sqlq__task_check(const sqlq_call *c, int bReadOnly, int bMemory) {
  const struct KindRule *r = ruleOf(c->kind);
  int64_t i, nVal;
  if (r == NULL) return SQLQ_EINVAL;
  if (r->eBody == SQLQ__BODY_FN
          ? c->fn == NULL
          : c->sql == NULL || c->sql[strspn(c->sql, " \t\r\n\f\v")] == 0) {
    return SQLQ_EINVAL;
  }
  if (c->flags & ~r->flags) return SQLQ_EINVAL;
  if ((c->flags & SQLQ_ISOLATED) && bMemory) return SQLQ_EINVAL;
  if (c->nparams < 0 || c->nrows < 0 || c->timeout_ms < 0 || c->max_rows < 0 ||
      c->queue_timeout_ms < 0) {
    return SQLQ_EINVAL;
  }
  nVal = valueCount(c);
  if (nVal > INT32_MAX || (nVal > 0 && c->params == NULL)) return SQLQ_EINVAL;
  if (c->names) {
    if (r->eBody != SQLQ__BODY_STATEMENT && r->eBody != SQLQ__BODY_MANY) {
      return SQLQ_EINVAL;
    }
    for (i = 0; i < c->nparams; i++) {
      if (c->names[i] == NULL || c->names[i][0] == 0) return SQLQ_EINVAL;
    }
  }
  for (i = 0; i < nVal; i++) {
    const sqlq_value *v = &c->params[i];
    if (v->type < SQLITE_INTEGER || v->type > SQLITE_NULL) return SQLQ_EINVAL;
    if ((v->type == SQLITE_TEXT || v->type == SQLITE_BLOB) &&
        ((v->p == NULL && v->n != 0) || v->n < -1 ||
         (v->type == SQLITE_BLOB && v->n < 0))) {
      return SQLQ_EINVAL;
    }
  }
  if (r->bWrite && bReadOnly) return SQLQ_EREADONLY;
  return 0;
}

/*
** Copies a checked call into one allocation: the task, then the params and
** their names, then the sql, the names' text and the text and blob bytes;
** and sets how it runs.
*/
sqlq__task *sqlq__task_new(const sqlq_call *c, pthread_mutex_t *pMu) {
  const struct KindRule *r = ruleOf(c->kind);
  int i, nVal = (int)valueCount(c), nName = c->names ? c->nparams : 0;
  size_t nSql = c->sql ? strlen(c->sql) + 1 : 0;
  size_t nBytes = sizeof(sqlq__task) + (size_t)nVal * sizeof(sqlq_value) +
                  (size_t)nName * sizeof(char *) + nSql;
  sqlq__task *t;
  sqlq_value *aVal;
  const char **aName;
  char *p;
  for (i = 0; i < nName; i++) {
    nBytes += strlen(c->names[i]) + 1;
  }
  for (i = 0; i < nVal; i++) {
    const sqlq_value *v = &c->params[i];
    if (v->type == SQLITE_TEXT || v->type == SQLITE_BLOB) {
      nBytes += (v->n < 0 ? strlen(v->p) : (size_t)v->n) + 1;
    }
  }
  t = malloc(nBytes);
  if (t == NULL) return NULL;
  memset(t, 0, sizeof(*t));
  t->call = *c;
  t->pMu = pMu;
  t->eBody = r->eBody;
  t->bWrite = r->bWrite;
  if (!r->bWrite) {
    t->eRun = SQLQ__RUN_READ;
  } else if (c->flags & SQLQ_ISOLATED) {
    t->eRun = SQLQ__RUN_ISOLATED;
  } else if (r->bTxn && !(c->flags & SQLQ_NO_TRANSACTION)) {
    t->eRun = SQLQ__RUN_TXN;
    t->bBatch = r->bBatch || (c->flags & SQLQ_IDEMPOTENT);
  } else {
    t->eRun = SQLQ__RUN_ALONE;
  }
  aVal = (sqlq_value *)(t + 1);
  aName = (const char **)(aVal + nVal);
  p = (char *)(aName + nName);
  if (nSql) {
    memcpy(p, c->sql, nSql);
    t->call.sql = p;
    p += nSql;
  }
  for (i = 0; i < nName; i++) {
    size_t n = strlen(c->names[i]) + 1;
    memcpy(p, c->names[i], n);
    aName[i] = p;
    p += n;
  }
  t->call.names = nName ? aName : NULL;
  for (i = 0; i < nVal; i++) {
    aVal[i] = c->params[i];
    if (aVal[i].type == SQLITE_TEXT || aVal[i].type == SQLITE_BLOB) {
      size_t n = aVal[i].n < 0 ? strlen(aVal[i].p) : (size_t)aVal[i].n;
      if (n) memcpy(p, aVal[i].p, n);
      p[n] = 0;
      aVal[i].p = p;
      aVal[i].n = (int64_t)n;
      p += n + 1;
    }
  }
  t->call.params = nVal ? aVal : NULL;
  return t;
}

void sqlq__task_free(sqlq__task *t) {
  if (t == NULL) return;
  sqlq_result_free(t->res);
  free(t);
}

/*
** For a write, the lower of the handle's and the call's limit; for a read,
** the handle's, lowered by the call.
*/
int64_t sqlq__task_limit(const sqlq__task *t, const sqlq_options *o) {
  int64_t ms = t->bWrite ? o->write_timeout_ms : o->read_timeout_ms;
  if (t->call.timeout_ms > 0 && (ms == 0 || t->call.timeout_ms < ms)) {
    ms = t->call.timeout_ms;
  }
  return ms;
}

int sqlq__task_row_cap(const sqlq__task *t, const sqlq_options *o) {
  if (t->call.max_rows > 0 && t->call.max_rows < o->max_rows) {
    return t->call.max_rows;
  }
  return o->max_rows;
}

void sqlq__task_publish(sqlq__task *t) {
  if (t->call.id_out) __atomic_store_n(t->call.id_out, t->id, __ATOMIC_RELEASE);
}

int sqlq__task_canceled(sqlq__task *t) {
  return atomic_load(&t->bCanceled);
}

void sqlq__task_queued(sqlq__task *t, int64_t id, sqlq_result *res,
                       int64_t now) {
  t->id = id;
  t->res = res;
  t->eState = SQLQ__QUEUED;
  t->enqueueNs = now;
}

int sqlq__task_take(sqlq__task *t, int64_t now) {
  t->eState = SQLQ__TAKEN;
  if (atomic_load(&t->bCanceled)) {
    sqlq__result_fail(t->res, SQLQ_ECANCELED, NULL);
    return 0;
  }
  if (t->call.queue_timeout_ms > 0 &&
      now - t->enqueueNs > (int64_t)t->call.queue_timeout_ms * 1000000) {
    sqlq__result_fail(t->res, SQLQ_ETIMEOUT,
                      "the task waited in the queue past its limit");
    return 0;
  }
  return 1;
}

int sqlq__task_enter(sqlq__task *t, sqlq__conn *c, int64_t now) {
  if (atomic_load(&t->bCanceled)) {
    sqlq__result_fail(t->res, SQLQ_ECANCELED, NULL);
    return 1;
  }
  t->eState = SQLQ__RUNNING;
  t->pConn = c;
  t->startNs = now;
  return 0;
}

void sqlq__task_leave(sqlq__task *t, int64_t now) {
  t->runNs += now - t->startNs;
  /* (The next task's limits are set anew; those a cancel set go now, for
  ** the library's own statements that follow.) */
  if (atomic_load(&t->bCanceled)) sqlq__conn_clear_interrupt(t->pConn);
  /* A read canceled as it finished reports the cancel; a write keeps its
  ** status: it may be committed already. */
  if (atomic_load(&t->bCanceled) && !t->bWrite &&
      sqlq_result_status(t->res) == 0) {
    sqlq__result_fail(t->res, SQLQ_ECANCELED, NULL);
  }
  t->eState = SQLQ__RAN;
  t->pConn = NULL;
}

void sqlq__task_done(sqlq__task *t) {
  if (t->eState == SQLQ__RUNNING) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sqlq__task_leave(t, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
  }
  t->eState = SQLQ__DONE;
}

int sqlq__task_cancel(sqlq__task *t) {
  if (atomic_load(&t->bCanceled)) return SQLQ_ENOTFOUND;
  atomic_store(&t->bCanceled, 1);
  switch (t->eState) {
  case SQLQ__RUNNING:
    /* Under the mutex, so t cannot leave and let another task start on its
    ** connection. */
    sqlq__conn_interrupt(t->pConn);
    break;
  case SQLQ__RAN:
    /* A read that has finished reports the cancel anyway; a write in a
    ** batch waits for its COMMIT and keeps its status. */
    if (!t->bWrite) sqlq__result_fail(t->res, SQLQ_ECANCELED, NULL);
    break;
  default: /* QUEUED: the caller moves it; TAKEN: it will not enter. */
    break;
  }
  return 0;
}
