/*
** tl_util.h: helpers of the timelimit Check suites (check_timelimit.c,
** check_hostile.c): queries every test runs, and a connection that runs one
** query on a thread of its own.
*/
#ifndef TL_UTIL_H
#define TL_UTIL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

/* A query that never ends on its own. */
extern const char zForever[];
/* The same, returning its rows one at a time. */
extern const char zForeverRows[];
/* A short query of 170014 VM steps: many progress handler checks. */
extern const char zShort[];

/* Opens zPath and registers the extension on it. */
sqlite3 *open_db(const char *zPath);
/* Runs sql, which must succeed. */
void exec_ok(sqlite3 *db, const char *zSql);
/* The integer in the first column of the first row of sql. */
int64_t query_int(sqlite3 *db, const char *zSql);
/* The text in the first column of the first row of sql, or "NULL" (static). */
const char *query_text(sqlite3 *db, const char *zSql);
/* What SELECT timelimit_interrupt(id), run on from, returns. */
int64_t sql_interrupt(sqlite3 *from, int64_t id);
/* Runs sql, which must be stopped; returns how long it ran in ms. */
int64_t exec_stopped(sqlite3 *db, const char *zSql);

/* A connection that runs one query on its own thread. */
typedef struct Runner Runner;
struct Runner {
  sqlite3 *db;         /* Its connection */
  const char *zSql;    /* What it runs */
  int rc;              /* What sqlite3_exec returned */
  pthread_mutex_t mu;  /* Protects bStarted */
  pthread_cond_t cond; /* Signalled when bStarted is set */
  int bStarted;        /* The query is running */
  int bDone;           /* sqlite3_exec has returned (rc is set) */
};

/*
** Registers started() on r->db, starts r->zSql on a new thread and waits (at
** most 10 s) until the query has called started().
*/
void runner_start(Runner *r, pthread_t *pThread);
/* Waits at most ms for the query to end; returns 1 if it has ended. */
int runner_wait(Runner *r, int64_t ms);
/* Joins the thread; r->rc is then what sqlite3_exec returned. */
void runner_join(Runner *r, pthread_t thread);

#endif /* TL_UTIL_H */
