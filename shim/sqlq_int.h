/*
** sqlq_int.h: what the modules of the sqlq library share and users do not
** see.  Internal names that cross files begin with sqlq__.
**
** Each module calls only those listed below it:
**
**   sqlq.c    the handle: queues, threads, completions, cancel, close
**   run.c     running tasks on a connection: one task, or a group commit
**   pool.c    the read connections: borrowing one, and what runs on each
**   task.c    a task: its copy of the call, what its kind means, its states
**   conn.c    connections: opening, the authorizer, the statement cache
**   stats.c   counters and histograms of how tasks ended, waited and ran
**   result.c  results: building them on a worker, reading them (accessors)
*/
#ifndef SQLQ_INT_H
#define SQLQ_INT_H

#include "sqlq.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- result.c ---- */

/* Makes an empty result for task id, or NULL if out of memory. */
sqlq_result *sqlq__result_new(int64_t id);

/* Records the column names of pStmt; nonzero if out of memory. */
int sqlq__result_columns(sqlq_result *r, sqlite3_stmt *pStmt);

/* Appends the current row of pStmt; nonzero if out of memory. */
int sqlq__result_add_row(sqlq_result *r, sqlite3_stmt *pStmt);

/*
** Sets the status and copies the message (NULL for status 0: none; NULL
** otherwise: the standard text of the code).  r may be NULL.  Call it on
** the thread that saw the error, before the connection's next call
** overwrites its message.
*/
void sqlq__result_fail(sqlq_result *r, int status, const char *zMsg);

/* Marks the result truncated at its row cap; sets changes and rowid. */
void sqlq__result_set_truncated(sqlq_result *r);
void sqlq__result_set_changes(sqlq_result *r, int64_t nChanges, int64_t iRowid);

/* Drops rows and columns collected so far (a task that will run again). */
void sqlq__result_clear_rows(sqlq_result *r);

/* ---- conn.c: connections and their statement caches ---- */

typedef struct sqlq__conn sqlq__conn;

/* How a connection is opened. */
enum { SQLQ__WRITER, SQLQ__READER, SQLQ__ISOLATED };

/*
** Opens path as a writer, reader or isolated connection, with the timelimit
** extension registered and locked.  Returns 0 or an SQLite code / negative
** SQLQ_E* code, with a message in *pzErr (sqlite3_malloc) when it can give
** one.  o must outlive the connection.
*/
int sqlq__conn_open(const char *zPath, int eRole, const sqlq_options *o,
                    sqlq__conn **ppConn, char **pzErr);

/*
** Replaces c's database connection with a new one opened the same way (its
** open transaction, if any, is dropped with the old).  Returns 0, or an
** error and c keeps its old connection.  Not while a task runs on c.
*/
int sqlq__conn_reopen(sqlq__conn *c);
void sqlq__conn_close(sqlq__conn *c);
sqlite3 *sqlq__conn_db(sqlq__conn *c);
int sqlq__conn_role(sqlq__conn *c);
const char *sqlq__conn_path(sqlq__conn *c);

/* What the authorizer refuses (sqlq__conn_refuse), bits. */
enum {
  SQLQ__REFUSE_TXN = 1,   /* Transaction control */
  SQLQ__REFUSE_READS = 2, /* What would change the connection for a read */
  SQLQ__REFUSE_WRITES = 4 /* ... for a write (file settings are free) */
};

/* Sets what c refuses from now on (0: nothing), and forgets past refusals. */
void sqlq__conn_refuse(sqlq__conn *c, int eRefuse);

/*
** What c refused since sqlq__conn_refuse(): 0, or SQLQ_ETXNCTL or
** SQLQ_EINVAL with its message in *pzMsg (static).
*/
int sqlq__conn_refused(sqlq__conn *c, const char **pzMsg);

/*
** Prepares zSql, which must be exactly one statement, through the cache; the
** statement stays the cache's.  Returns 0, or an SQLite code or SQLQ_E* code
** with its message in *pzMsg (valid until c's next call).
*/
int sqlq__conn_prepare(sqlq__conn *c, const char *zSql, sqlite3_stmt **ppStmt,
                       const char **pzMsg);

/*
** Runs one of the library's own statements (BEGIN IMMEDIATE, COMMIT,
** SAVEPOINT, ...).  Returns its SQLite code (SQLITE_NOMEM if it could not
** be prepared without SQLite seeing an error: it did not run).
*/
int sqlq__conn_control(sqlq__conn *c, const char *zSql);

/*
** Rolls back c's open transaction, if any; returns nonzero if c is still
** inside one.
*/
int sqlq__conn_rollback(sqlq__conn *c);

/*
** Sets the limits of c's next statements: a time limit of ms (0: none) and
** no step budget, whatever the last task's SQL lowered them to.
*/
void sqlq__conn_set_limit(sqlq__conn *c, int64_t ms);

/*
** Stops the statement running on c and any the task starts later
** (sqlq__conn_clear_interrupt() ends that).  Any thread; the caller makes
** sure the task is still running on c.
*/
void sqlq__conn_interrupt(sqlq__conn *c);
void sqlq__conn_clear_interrupt(sqlq__conn *c);

/*
** While c waits for a lock another process holds (SQLITE_BUSY), it asks
** xStop(pArg) between steps of at most 10 ms and gives up when it returns
** nonzero, or after busy_timeout_ms.  xStop NULL: only the timeout.
*/
void sqlq__conn_on_busy(sqlq__conn *c, int (*xStop)(void *), void *pArg);

/* ---- task.c: a task and its life ---- */

/* How a task runs: decided from its kind and flags when it is accepted. */
enum {
  SQLQ__RUN_READ = 1, /* A reader, under the read limit and the row cap */
  SQLQ__RUN_TXN,      /* The writer, in a transaction of the library's */
  SQLQ__RUN_ALONE,    /* The writer, its statements commit themselves */
  SQLQ__RUN_ISOLATED  /* The writer's thread, on a connection of its own */
};

/* What a task runs. */
enum {
  SQLQ__BODY_STATEMENT = 1, /* One statement, once */
  SQLQ__BODY_MANY,          /* One statement, once per row of parameters */
  SQLQ__BODY_SCRIPT,        /* Statements, one after the other */
  SQLQ__BODY_FN             /* The call's function */
};

/*
** A task's life, each step one function of task.c, each under the lock
** t->pMu (the handle's mutex, or the read pool's for a read of a caller):
*QUEUED (accepted, in a queue); TAKEN (out of the queue, by a
** worker or a caller); RUNNING on a connection, where sqlq_cancel()
** interrupts it (sqlq__task_enter); RAN (sqlq__task_leave; a batched write
** waits for its COMMIT, or runs again: RUNNING again); DONE (its completion
** is delivered).
*/
enum { SQLQ__QUEUED = 1, SQLQ__TAKEN, SQLQ__RUNNING, SQLQ__RAN, SQLQ__DONE };

/* A task: the call, deep-copied at submit, and where its outcome goes. */
typedef struct sqlq__task sqlq__task;
struct sqlq__task {
  int64_t id;           /* Task id */
  sqlq_call call;       /* The call; sql and params point into this block */
  int eRun;             /* SQLQ__RUN_*: how it runs */
  int eBody;            /* SQLQ__BODY_*: what it runs */
  int bWrite;           /* It may write: it goes to the writer */
  int bBatch;           /* It may share a group commit with others */
  sqlq_result *res;     /* The result being built */
  atomic_int bCanceled; /* sqlq_cancel() was called for it */
  int eState;           /* SQLQ__QUEUED ... SQLQ__DONE (handle mu) */
  sqlq__conn *pConn;    /* The connection running it (handle mu) */
  int64_t enqueueNs;    /* When it was queued */
  int64_t startNs;      /* When it last began to run */
  int64_t runNs;        /* How long it has run, all runs together */
  sqlq__task *pNext;    /* Queue or completion list */
  sqlq__task *pPrev;    /* Queue */
  sqlq__task *pHash;    /* Id hash chain */
  struct sqlq__waiter *pWaiter; /* sqlq_exec() caller waiting, or NULL */
  pthread_mutex_t *pMu; /* The lock of its state now: the handle's mutex,
                           or the read pool's or a read slot's */
};

/*
** Checks a call for a handle (read-only or not, in memory or not); returns
** 0 or SQLQ_EINVAL / SQLQ_EREADONLY.
*/
int sqlq__task_check(const sqlq_call *c, int bReadOnly, int bMemory);

/* Copies a checked call into a new task (NULL: out of memory). */
sqlq__task *sqlq__task_new(const sqlq_call *c, pthread_mutex_t *pMu);
void sqlq__task_free(sqlq__task *t);

/* The time limit of t under options o, in ms (0: none). */
int64_t sqlq__task_limit(const sqlq__task *t, const sqlq_options *o);

/* The row cap of t under o. */
int sqlq__task_row_cap(const sqlq__task *t, const sqlq_options *o);

/* True if sqlq_cancel() was called for t.  Any thread. */
int sqlq__task_canceled(sqlq__task *t);

/*
** The transitions.  Each is called with the handle's mutex held (t->pMu),
** and is the only way into its state.
*/

/* Accepted with id and an empty result (to be queued): QUEUED. */
void sqlq__task_queued(sqlq__task *t, int64_t id, sqlq_result *res,
                       int64_t now);

/*
** Out of its queue: TAKEN.  Returns 1 if it is to run; 0 if it is to
** complete unrun (canceled, or past its queue deadline), its result failed.
*/
int sqlq__task_take(sqlq__task *t, int64_t now);

/*
** Begins to run on c: RUNNING, where sqlq_cancel() interrupts it.  Returns
** nonzero instead, its result failed, if it was canceled.
*/
int sqlq__task_enter(sqlq__task *t, sqlq__conn *c, int64_t now);

/* Stops running: RAN.  Its connection is ready for the next task. */
void sqlq__task_leave(sqlq__task *t, int64_t now);

/* Its completion is delivered next: DONE. */
void sqlq__task_done(sqlq__task *t);

/*
** sqlq_cancel() for t: a RUNNING task's statement is interrupted, a RAN
** read reports the cancel.  Returns SQLQ_ENOTFOUND if it was canceled
** already, else 0; the caller moves a QUEUED task to where it completes
** unrun.
*/
int sqlq__task_cancel(sqlq__task *t);

/*
** Makes id findable by whoever the call said (sqlq_call.id_out), once
** sqlq_cancel() can find t.
*/
void sqlq__task_publish(sqlq__task *t);

/* ---- stats.c: counters ---- */

#define SQLQ__HIST_SIZE 160 /* Histogram buckets: microseconds up to 2^41 */

/* How tasks ended, waited and ran; zero-initialise.  Its owner's lock. */
typedef struct sqlq__stats sqlq__stats;
struct sqlq__stats {
  int64_t nDone;                   /* Completed with status 0 */
  int64_t nFailed;                 /* ... with any other */
  int64_t nTimeouts;               /* ... with SQLQ_ETIMEOUT */
  int64_t nCancels;                /* ... with SQLQ_ECANCELED */
  uint64_t aWait[SQLQ__HIST_SIZE]; /* Time waiting to run */
  uint64_t aRun[SQLQ__HIST_SIZE];  /* Time running */
};

/* Counts a wait of ns before a task ran. */
void sqlq__stats_wait(sqlq__stats *s, int64_t ns);

/* Counts a task that is done: its status and how long it ran. */
void sqlq__stats_done(sqlq__stats *s, const sqlq__task *t);

/* Adds pFrom's counts to pTo's. */
void sqlq__stats_add(sqlq__stats *pTo, const sqlq__stats *pFrom);

/* Fills the counts and percentiles of st from s. */
void sqlq__stats_report(const sqlq__stats *s, sqlq_stats_t *st);

/* ---- pool.c: the read connections of a file database ---- */

typedef struct sqlq__pool sqlq__pool;
typedef struct sqlq__slot sqlq__slot; /* One connection of the pool */

/*
** Makes a pool of at most nMax read connections of zPath (which must
** outlive it), nOpen of them opened now.  Returns 0 or an error with a
** message in *pzErr (sqlite3_malloc); *pp is set either way, for
** sqlq__pool_close().
*/
int sqlq__pool_open(const char *zPath, const sqlq_options *o, int nOpen,
                    int nMax, sqlq__pool **pp, char **pzErr);

/* Closes the connections and frees the pool; none may be borrowed. */
void sqlq__pool_close(sqlq__pool *p);

/*
** Borrows a read connection, waiting for one if none is idle.  t is the
** QUEUED task of an sqlq_exec() caller, which runs on the connection
** (attached to it, where sqlq__pool_cancel() finds it), or NULL for a
** reader thread.  Returns NULL, with t done and failed, if t was canceled
** or its queue deadline passed while it waited.  Any thread.
*/
sqlq__slot *sqlq__pool_borrow(sqlq__pool *p, sqlq__task *t);

/* Gives s back; t, the task borrowed with it, is then done. */
void sqlq__pool_give_back(sqlq__pool *p, sqlq__slot *s, sqlq__task *t);

sqlq__conn *sqlq__slot_conn(sqlq__slot *s);

/*
** sqlq_cancel() for a caller's task waiting for a connection or running on
** one: 0, or SQLQ_ENOTFOUND if there is no such task here.
*/
int sqlq__pool_cancel(sqlq__pool *p, int64_t id);

/* Adds the counts of the pool's tasks, waiting and running. */
void sqlq__pool_stats(sqlq__pool *p, sqlq__stats *pSum, int64_t *pnQueued,
                      int64_t *pnRunning);

/* ---- run.c: running tasks on a connection ---- */

/* Counts of the group commit, kept by the writer. */
typedef struct sqlq__batch_stats sqlq__batch_stats;
struct sqlq__batch_stats {
  int64_t nBatches; /* Transactions committed */
  int64_t nBatched; /* Task runs in them */
  int64_t nMax;     /* The most in one */
};

/*
** Runs the n TAKEN tasks of a on c and fills their results: one task of any
** kind, or n > 1 transactional writes as one group commit (adding to *st).
** Each is entered and left (sqlq__task_enter/leave) around what it runs,
** under its mutex.  When it returns, a writer's c is in autocommit with the
** handle's settings, or it was reopened to be so.
*/
void sqlq__run(sqlq__conn *c, sqlq__task **a, int n, const sqlq_options *o,
               sqlq__batch_stats *st);

#endif /* SQLQ_INT_H */
