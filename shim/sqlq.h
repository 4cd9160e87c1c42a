/*
** sqlq.h: one SQLite database served to a multi-threaded or event-loop
** program without ever blocking it.
**
** A handle (sqlq) owns one database.  Every write goes through one FIFO queue
** to a single writer thread and connection, so writes never run at once and
** never see SQLITE_BUSY from each other.  Reads run on a pool of reader
** threads, each with its own read-only connection, under a time limit and a
** row cap.  Results come back by callback on the worker thread, by callback
** on the caller's thread inside sqlq_dispatch() once sqlq_fd() is readable,
** or by a blocking wait in sqlq_exec().  Every connection has the timelimit
** extension (ext/timelimit.c) registered.
**
** THREADING
** - sqlq_open() and sqlq_close() are called once each, by one thread.  As
**   with free(), no thread may begin a call on the handle once sqlq_close()
**   has been called; calls already in progress (an sqlq_exec() waiting for
**   its task) finish normally first.  Completions and task functions that
**   run during the close may call sqlq_submit(): it returns SQLQ_ECLOSED.
** - sqlq_submit(), sqlq_exec(), sqlq_cancel() and sqlq_stats() may be called
**   from any thread at any time between them.
** - sqlq_fd() and sqlq_dispatch() belong to the thread that runs the event
**   loop of a handle opened in dispatch mode.
** - A completion callback runs exactly once per accepted task: on the worker
**   thread that ran it (or, for a task whose queue deadline passed, on the
**   handle's timer thread), or, in dispatch mode, on the thread that calls
**   sqlq_dispatch() (or sqlq_close(), for completions still undelivered).
**   A task function (fn) runs on a worker thread.  Neither may call
**   sqlq_exec() or sqlq_close() on any handle: those return SQLQ_EMISUSE
**   there instead of deadlocking.  They may call sqlq_submit().
**
** ERRORS
** Functions return 0 (SQLITE_OK) or a negative SQLQ_E* code.  A result's
** status is 0, an SQLite result code passed through unchanged (for example
** SQLITE_CONSTRAINT_UNIQUE), or a negative SQLQ_E* code.  sqlq_strerror()
** describes either kind.  If sqlq_submit() fails, no callback ever runs.
*/
#ifndef SQLQ_H
#define SQLQ_H

#include <sqlite3.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
** The version of this header: "MAJOR.MINOR.PATCH", and as a number,
** MAJOR * 1000000 + MINOR * 1000 + PATCH (as SQLite's).  The shared
** library's SONAME is libsqlq.so.MAJOR; the Makefile, sqlq.pc and
** CHANGELOG.md follow these.  sqlq_libversion() is the library's own, for a
** program to check the one it runs with.
*/
#define SQLQ_VERSION "0.2.0"
#define SQLQ_VERSION_NUMBER 2000

/* The shim's own conditions: name, value, message. */
#define SQLQ_ERRNO_MAP(XX)                                                     \
  XX(EINVAL, -1, "invalid argument")                                           \
  XX(ECLOSED, -2, "the handle is closed")                                      \
  XX(EFULL, -3, "the queue is full")                                           \
  XX(ETIMEOUT, -4, "the task ran out of time")                                 \
  XX(ECANCELED, -5, "the task was canceled")                                   \
  XX(EMISUSE, -6, "not allowed inside a completion or task function")          \
  XX(ENOMEM, -7, "out of memory")                                              \
  XX(EREADONLY, -8, "the handle is read-only")                                 \
  XX(ENOTFOUND, -9, "no such task is queued or running")                       \
  XX(EPARAMS, -10, "the parameters do not match the statement")                \
  XX(ESYSTEM, -11, "a system call failed")                                     \
  XX(ETXNCTL, -12,                                                             \
     "transaction control is not allowed in a transactional task "             \
     "(use SQLQ_NO_TRANSACTION or SQLQ_SCRIPT)")                               \
  XX(EUNKNOWN, -13,                                                            \
     "the outcome is unknown: the COMMIT failed with an I/O error after its "  \
     "changes may have reached the disk")

enum {
#define SQLQ_XX(name, value, message) SQLQ_##name = value,
  SQLQ_ERRNO_MAP(SQLQ_XX)
#undef SQLQ_XX
};

typedef struct sqlq sqlq;
typedef struct sqlq_result sqlq_result;

/* What a task does, after Datasette's Database methods. */
typedef enum sqlq_kind {
  SQLQ_READ = 1,   /* execute(sql, params): a reader, time limit, row cap */
  SQLQ_READ_FN,    /* execute_fn(fn): fn on a reader's connection */
  SQLQ_WRITE,      /* execute_write(sql, params): the writer, one txn */
  SQLQ_WRITE_MANY, /* execute_write_many(sql, rows): the writer, one txn */
  SQLQ_SCRIPT,     /* execute_write_script(sql): the writer, no txn */
  SQLQ_WRITE_FN    /* execute_write_fn(fn): fn on the writer's connection */
} sqlq_kind;

/* sqlq_call.flags */
#define SQLQ_ISOLATED 0x1       /* WRITE_FN on a connection of its own */
#define SQLQ_NO_TRANSACTION 0x2 /* WRITE, WRITE_MANY, WRITE_FN: no txn */
#define SQLQ_IDEMPOTENT                                                        \
  0x4 /* WRITE_FN may run more than once, so it may                            \
         join a group commit (see batch_max) */

/*
** A parameter value.  Build one with the constructors below.  Text and blob
** bytes are copied by sqlq_submit(), so they need to live only until it
** returns.
*/
typedef struct sqlq_value {
  int type;      /* SQLITE_INTEGER, _FLOAT, _TEXT, _BLOB or _NULL */
  int64_t i;     /* SQLITE_INTEGER */
  double f;      /* SQLITE_FLOAT */
  const void *p; /* SQLITE_TEXT (UTF-8) or SQLITE_BLOB bytes */
  int64_t n;     /* Bytes at p; for text, -1 = up to the NUL */
} sqlq_value;

static inline sqlq_value sqlq_int(int64_t i) {
  sqlq_value v = {SQLITE_INTEGER, i, 0, 0, 0};
  return v;
}
static inline sqlq_value sqlq_real(double f) {
  sqlq_value v = {SQLITE_FLOAT, 0, f, 0, 0};
  return v;
}
static inline sqlq_value sqlq_text(const char *z) {
  sqlq_value v = {SQLITE_TEXT, 0, 0, z, -1};
  return v;
}
static inline sqlq_value sqlq_blob(const void *p, int64_t n) {
  sqlq_value v = {SQLITE_BLOB, 0, 0, p, n};
  return v;
}
static inline sqlq_value sqlq_null(void) {
  sqlq_value v = {SQLITE_NULL, 0, 0, 0, 0};
  return v;
}

/*
** The function of a READ_FN or WRITE_FN task.  It runs on a worker thread
** with the connection, and returns an SQLite result code that becomes the
** result's status.  It must not close the connection or keep it.  In a
** transactional WRITE_FN, a nonzero return rolls the transaction back.
*/
typedef int (*sqlq_fn)(sqlite3 *db, void *arg);

/*
** A completion.  The result belongs to the library and is valid only until
** the callback returns.
*/
typedef void (*sqlq_done)(sqlq_result *result, void *udata);

/*
** One request.  Zero-initialise it and set what the kind needs; the library
** copies what it keeps, so the struct, sql and params may be reused as soon
** as sqlq_submit() returns.
*/
typedef struct sqlq_call {
  sqlq_kind kind;
  const char *sql;          /* READ, WRITE, WRITE_MANY, SCRIPT */
  const sqlq_value *params; /* Bound to ?1..?N; WRITE_MANY: nrows rows */
  int nparams;              /* Values per row */
  const char *const *names; /* Or NULL.  READ, WRITE, WRITE_MANY: the name
                               of each of the nparams values as the SQL
                               writes it (":id", "@id", "$id"); the values
                               are then bound by name, and the statement's
                               parameters must be exactly these names */
  int nrows;                /* WRITE_MANY: rows of params */
  sqlq_fn fn;               /* READ_FN, WRITE_FN */
  void *arg;                /* Passed to fn */
  int flags;                /* SQLQ_ISOLATED, SQLQ_NO_TRANSACTION */
  int timeout_ms;           /* Time limit: lowers a read's default; for a
                               write, lowers the handle's or sets one */
  int max_rows;             /* Reads: a lower row cap; 0 = default */
  int queue_timeout_ms;     /* Longest wait in the queue, 0 = no limit:
                               past it, SQLQ_ETIMEOUT without running */
  sqlq_done done;           /* Completion, or NULL */
  void *udata;              /* Passed to done */
  int64_t *id_out;          /* If not NULL, receives the task's id as soon
                               as sqlq_cancel() can find it, before it runs
                               (an atomic store: read it with
                               __atomic_load_n), so that another thread can
                               cancel an sqlq_exec() call */
} sqlq_call;

/*
** Options of sqlq_open().  Zero means the default for every field; a value
** out of range (negative, synchronous other than 1..3, more than
** SQLQ_MAX_READERS readers) makes sqlq_open() fail with SQLQ_EINVAL.
*/
#define SQLQ_MAX_READERS 256
/* The defaults (README.md's table of options quotes them; a test checks). */
#define SQLQ_DEFAULT_READERS 2
#define SQLQ_DEFAULT_READ_TIMEOUT_MS 1000
#define SQLQ_DEFAULT_MAX_ROWS 1000
#define SQLQ_DEFAULT_QUEUE_CAPACITY 65536
#define SQLQ_DEFAULT_SYNCHRONOUS 2
#define SQLQ_DEFAULT_BATCH_MAX 128
#define SQLQ_DEFAULT_BUSY_TIMEOUT_MS 5000
#define SQLQ_DEFAULT_READ_CONNECTIONS_PER_CORE 4
typedef struct sqlq_options {
  int readers;          /* Reader threads */
  int read_timeout_ms;  /* Time limit of a read */
  int max_rows;         /* Row cap of a read */
  int queue_capacity;   /* Tasks waiting in the queues */
  int dispatch;         /* Completions run in sqlq_dispatch() */
  int read_only;        /* No writer; writes fail with SQLQ_EREADONLY */
  int immutable;        /* The file never changes (implies read_only) */
  int synchronous;      /* PRAGMA synchronous of the writer: 1 NORMAL, 2 FULL,
                           3 EXTRA */
  int batch_max;        /* Group commit: most writes in one transaction
                           (1 = a transaction per write) */
  int batch_wait_us;    /* Group commit: longest wait for more writes once a
                           batch has begun (default 0: take what is queued) */
  int write_timeout_ms; /* Time limit of each write (default 0: none) */
  int busy_timeout_ms;  /* Longest wait for a lock another process holds */
  int read_connections; /* Read connections of a file database, opened as
                           needed (default 4 per core; at least readers):
                           sqlq_exec() reads borrow them on the caller's
                           thread, reader threads too */
} sqlq_options;

/*
** Counters of a handle since it opened.  The percentiles are of every task
** that ran, to within a quarter of a power of two.
*/
typedef struct sqlq_stats_t {
  int64_t queued;      /* Tasks waiting now */
  int64_t running;     /* Tasks running now */
  int64_t done;        /* Tasks completed with status 0 */
  int64_t failed;      /* Tasks completed with any other status */
  int64_t timeouts;    /* Tasks completed with SQLQ_ETIMEOUT */
  int64_t cancels;     /* Tasks completed with SQLQ_ECANCELED */
  int64_t batches;     /* Transactions of the group commit */
  int64_t batched;     /* Task runs in them (a task run again counts again) */
  int64_t max_batch;   /* The most tasks in one of them */
  double mean_batch;   /* batched / batches */
  int64_t wait_p50_us; /* Time in the queue: median */
  int64_t wait_p99_us; /* Time in the queue: 99th percentile */
  int64_t run_p50_us;  /* Time running its statements (a batched write:
                        without the COMMIT it shares), median */
  int64_t run_p99_us;  /* Time running, 99th percentile */
} sqlq_stats_t;

/*
** Opens path (a file name, a "file:" URI, or ":memory:") and starts the
** threads.  File databases are put in WAL mode, so reads never wait for the
** writer.  A ":memory:" database has a single connection: its reads run on
** the writer thread, in order with the writes.  opts may be NULL.  On
** success *pq is the handle; on failure *pq is NULL and the return value is
** an SQLite code (the file could not be opened) or a negative SQLQ_E* code.
*/
int sqlq_open(const char *path, const sqlq_options *opts, sqlq **pq);

/*
** Refuses new tasks, runs every queued one, waits for the running ones,
** delivers every completion (in dispatch mode, on this thread), joins the
** threads, closes the connections and frees the handle.  Returns 0,
** SQLQ_EINVAL for NULL, or SQLQ_EMISUSE inside a completion or task
** function (the handle is then untouched).
*/
int sqlq_close(sqlq *q);

/*
** Queues a task and returns its id (at least 1, distinct for every task of
** the handle), or a negative SQLQ_E* code: EINVAL (NULL handle or call, no
** or empty sql, no fn, an unknown kind, bad nparams/nrows), ECLOSED,
** EREADONLY, EFULL, ENOMEM.  Never blocks.  Any thread.
*/
int64_t sqlq_submit(sqlq *q, const sqlq_call *call);

/*
** Runs a task and waits for it; on a full queue it waits for room.  The
** call's done and udata are ignored.
** Returns the result's status, or a negative code if the task was not
** accepted (as sqlq_submit(), plus EMISUSE inside a completion or task
** function).  If presult is not NULL it receives the result (NULL if the
** task was not accepted), which the caller frees with sqlq_result_free().
** Any thread but a completion or task function.
*/
int sqlq_exec(sqlq *q, const sqlq_call *call, sqlq_result **presult);

/*
** Cancels a task: a queued one completes with SQLQ_ECANCELED without
** running; a running one is interrupted and completes with SQLQ_ECANCELED
** (a read's rows, if any, are partial).  Two exceptions: a transactional
** write that has run all its statements (it waits for its group's COMMIT)
** or reached its COMMIT completes with status 0, because it is or will be
** on disk; and a SCRIPT or SQLQ_NO_TRANSACTION task keeps what its
** statements did before the cancel, having no transaction to undo them.
** Never affects another task.  Returns 0, SQLQ_ENOTFOUND if the task is
** not queued or running, or SQLQ_EINVAL.  Any thread.
*/
int sqlq_cancel(sqlq *q, int64_t id);

/*
** The file descriptor that turns readable when completions wait for
** sqlq_dispatch(); SQLQ_EINVAL if the handle is not in dispatch mode.
** Poll it for reading only; it stays open until sqlq_close().
*/
int sqlq_fd(sqlq *q);

/*
** Runs the completions that are waiting, on the calling thread, and returns
** how many ran (0 if none), or SQLQ_EINVAL if the handle is not in dispatch
** mode.  Never blocks.  The event-loop thread.
*/
int sqlq_dispatch(sqlq *q);

/* Fills *st with the handle's counters.  Any thread. */
int sqlq_stats(sqlq *q, sqlq_stats_t *st);

/*
** What every connection of sqlq's in this process is running now: the rows
** of the timelimit extension's timelimit_activity table (id, state, sql,
** elapsed_ms, limit_ms, ...; README.md describes them), read on a private
** connection of the handle's, on the calling thread, without queueing
** behind any task and within a millisecond.  The connections of every
** sqlq handle of the process are listed; the ids are those that
** timelimit_interrupt() takes.  Returns 0 and sets *presult, which the
** caller frees with sqlq_result_free(), or an error (*presult then holds
** its message, or is NULL for SQLQ_EINVAL and SQLQ_ENOMEM).  Any thread,
** including a completion's.
*/
int sqlq_activity(sqlq *q, sqlq_result **presult);

/* A message for a status: SQLite's for codes >= 0, the shim's otherwise. */
const char *sqlq_strerror(int code);

/* The library's version, SQLQ_VERSION of its build, and its number. */
const char *sqlq_libversion(void);
int sqlq_libversion_number(void);

/*
** Results.  A result owns copies of everything in it.  Row and column
** indexes start at 0; out of range they give SQLITE_NULL, 0 or NULL.
*/
int sqlq_result_status(const sqlq_result *r);
const char *sqlq_result_error(const sqlq_result *r); /* NULL iff status 0 */
int64_t sqlq_result_id(const sqlq_result *r);
int sqlq_result_columns(const sqlq_result *r);
const char *sqlq_result_column_name(const sqlq_result *r, int col);
int sqlq_result_rows(const sqlq_result *r);
int sqlq_result_truncated(const sqlq_result *r); /* Row cap reached */
int sqlq_result_type(const sqlq_result *r, int row, int col);
int64_t sqlq_result_int(const sqlq_result *r, int row, int col);
double sqlq_result_double(const sqlq_result *r, int row, int col);
const char *sqlq_result_text(const sqlq_result *r, int row, int col);
const void *sqlq_result_blob(const sqlq_result *r, int row, int col,
                             int64_t *pn);
/*
** Rows the task inserted, updated or deleted, counting those of triggers and
** foreign key actions (sqlite3_total_changes64() after the task, less before
** it), for every kind of write; 0 for a read or a failed task.
*/
int64_t sqlq_result_changes(const sqlq_result *r);
/* sqlite3_last_insert_rowid() after a write that succeeded. */
int64_t sqlq_result_last_insert_rowid(const sqlq_result *r);
void sqlq_result_free(sqlq_result *r);

#ifdef __cplusplus
}
#endif

#endif /* SQLQ_H */
