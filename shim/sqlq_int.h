/*
** sqlq_int.h: what the modules of the sqlq library share and users do not
** see.  Internal names that cross files begin with sqlq__.
**
**   result.c  results: building them on a worker, reading them (accessors)
**   conn.c    connections: opening, the statement cache, running one task
**   sqlq.c    the handle: queues, threads, completions, cancel, close
*/
#ifndef SQLQ_INT_H
#define SQLQ_INT_H

#include "sqlq.h"

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

/* ---- conn.c ---- */

typedef struct sqlq__conn sqlq__conn;

/* How a connection is opened. */
enum { SQLQ__WRITER, SQLQ__READER, SQLQ__ISOLATED };

/*
** Opens path as a writer, reader or isolated connection, with the timelimit
** extension registered.  Returns 0 or an SQLite code / negative SQLQ_E*
** code, with a message in *pzErr (sqlite3_malloc) when it can give one.
*/
int sqlq__conn_open(const char *zPath, int eRole, const sqlq_options *o,
                    sqlq__conn **ppConn, char **pzErr);
void sqlq__conn_close(sqlq__conn *c);
sqlite3 *sqlq__conn_db(sqlq__conn *c);
int64_t sqlq__conn_tlid(sqlq__conn *c);

/*
** A task as a connection runs it: the call, deep-copied at submit, and
** where its outcome goes.
*/
typedef struct sqlq__task sqlq__task;
struct sqlq__task {
  int64_t id;           /* Task id */
  sqlq_call call;       /* The call; sql and params point into this block */
  sqlq_result *res;     /* The result being built */
  atomic_int bCanceled; /* sqlq_cancel() was called for it */
  int eState;           /* SQLQ__QUEUED ... SQLQ__DONE (handle mu) */
  sqlq *pOwner;         /* The handle */
  sqlq__conn *pConn;    /* The connection running it (handle mu) */
  int64_t enqueueNs;    /* When it was queued */
  int64_t startNs;      /* When it last began to run */
  sqlq__task *pNext;    /* Queue or completion list */
  sqlq__task *pPrev;    /* Queue */
  sqlq__task *pHash;    /* Id hash chain */
  struct sqlq__waiter *pWaiter; /* sqlq_exec() caller waiting, or NULL */
};

/*
** A task's life, under the handle's mutex: QUEUED in a queue; TAKEN by a
** worker; RUNNING while it runs (a batched write: between
** sqlq__task_enter() and sqlq__task_leave(); a task that runs alone: from
** TAKEN to its completion); RAN, waiting for its batch's COMMIT (a batch
** that loses its transaction runs it again); DONE.
*/
enum { SQLQ__QUEUED = 1, SQLQ__TAKEN, SQLQ__RUNNING, SQLQ__RAN, SQLQ__DONE };

/* Counts of the group commit, kept by the writer. */
typedef struct sqlq__batch_stats sqlq__batch_stats;
struct sqlq__batch_stats {
  int64_t nBatches; /* Transactions committed */
  int64_t nBatched; /* Task runs in them */
  int64_t nMax;     /* The most in one */
};

/*
** Runs a read task (READ or READ_FN) under its time limit and row cap, or a
** write task that runs outside the group commit (SCRIPT, NO_TRANSACTION,
** ISOLATED), on c, and fills t->res.  The handle has marked t RUNNING on c
** already.  zPath is the database, for isolated tasks.
*/
void sqlq__conn_run(sqlq__conn *c, sqlq__task *t, const sqlq_options *o,
                    const char *zPath);

/*
** Runs n transactional writes as one group commit on the writer (see
** conn.c) and fills their results; adds to *st.  Tasks whose result has
** failed already are skipped.
*/
void sqlq__conn_run_batch(sqlq__conn *c, sqlq__task **a, int n,
                          const sqlq_options *o, sqlq__batch_stats *st);

/* ---- sqlq.c, for conn.c ---- */

/* True if sqlq_cancel() was called for t. */
int sqlq__task_canceled(sqlq__task *t);

/*
** Marks t RUNNING on c, where sqlq_cancel() can interrupt it; returns
** nonzero instead if t was canceled (then it must not run).
*/
int sqlq__task_enter(sqlq__task *t, sqlq__conn *c);

/* Marks t RAN: sqlq_cancel() can no longer interrupt its connection. */
void sqlq__task_leave(sqlq__task *t);

/*
** Moves a RUNNING task to connection c (an isolated task's own, and back),
** so that sqlq_cancel() interrupts the connection it really runs on.
** Returns nonzero if the task has been canceled.
*/
int sqlq__task_move(sqlq__task *t, sqlq__conn *c);

#endif /* SQLQ_INT_H */
