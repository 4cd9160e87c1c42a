/*
** timelimit.h: the C API of the timelimit extension, for programs that link
** ext/timelimit.c statically (compiled with -DSQLITE_CORE) instead of loading
** ext/timelimit.so.
**
** The extension gives every connection it is registered on a per-statement
** time limit, a per-statement budget of VM steps and interruption by
** connection id, all enforced by the connection's progress handler.  The SQL
** surface and the semantics are documented at the top of ext/timelimit.c and
** in README.md.
**
** Threading: every function below may be called from any thread.  The
** functions that take a connection act on the extension's own state for it
** and never call into the connection except timelimit_register(), which must
** be called by the thread that may use the connection.
**
** Errors: functions return SQLITE_OK, SQLITE_MISUSE (NULL connection, or the
** extension is not registered on it) or SQLITE_RANGE (a value outside the
** documented range).  They never change anything when they fail.
*/
#ifndef TIMELIMIT_H
#define TIMELIMIT_H

#include <stdint.h>

#include <sqlite3.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
** The version of this header: "MAJOR.MINOR.PATCH", and as a number,
** MAJOR * 1000000 + MINOR * 1000 + PATCH (as SQLite's).  The Makefile, the
** .pc files and CHANGELOG.md follow these.
*/
#define TIMELIMIT_VERSION "0.2.0"
#define TIMELIMIT_VERSION_NUMBER 2000

/* The largest time limit, in milliseconds (about 24.8 days). */
#define TIMELIMIT_MAX_MS 2147483647
/* The progress handler runs every this many VM steps. */
#define TIMELIMIT_CHECK_STEPS 1000
/* At most this many bytes of a statement's text are kept for display. */
#define TIMELIMIT_SQL_MAX 1024

/*
** The extension's entry point, as sqlite3_load_extension() and
** sqlite3_auto_extension() call it.  Registers the SQL functions, the
** timelimit_activity table, the progress handler and the trace hook on db.
** Calling it again on the same connection only installs the hooks again.
*/
int sqlite3_timelimit_init(sqlite3 *db, char **pzErrMsg,
                           const sqlite3_api_routines *pApi);

/* Registers the extension on one connection (sqlite3_timelimit_init). */
int timelimit_register(sqlite3 *db);

/*
** Registers the extension on every connection opened afterwards in this
** process (sqlite3_auto_extension), or stops doing so.
*/
int timelimit_register_auto(void);
int timelimit_unregister_auto(void);

/*
** Sets or reads the per-statement time limit of db in milliseconds
** (0 = none, at most TIMELIMIT_MAX_MS).  A new limit applies to statements
** that start afterwards.  The host is not bound by timelimit_lock().
*/
int timelimit_set_limit(sqlite3 *db, int64_t ms);
int timelimit_get_limit(sqlite3 *db, int64_t *pMs);

/*
** Sets or reads the per-statement budget of VM steps of db (0 = none, at most
** INT64_MAX).  A statement stops at the first check (every
** TIMELIMIT_CHECK_STEPS steps) at or past its budget.
*/
int timelimit_set_ops(sqlite3 *db, int64_t nOps);
int timelimit_get_ops(sqlite3 *db, int64_t *pnOps);

/*
** Locks or unlocks db.  While locked, SQL on db may only lower its limits,
** may not interrupt other connections and sees only its own row of
** timelimit_activity.  Only this C API unlocks.
*/
int timelimit_lock(sqlite3 *db);
int timelimit_unlock(sqlite3 *db);

/*
** Sets both limits of db and locks it, in one step: what a host that pools
** connections calls before it hands one to the next request's untrusted SQL,
** whatever the last request's SQL did.  Fails with SQLITE_RANGE, changing
** nothing, if either value is out of range.
*/
int timelimit_set_locked(sqlite3 *db, int64_t ms, int64_t nOps);

/* Reads the id of db: unique in the process, never reused, at least 1. */
int timelimit_id(sqlite3 *db, int64_t *pId);

/*
** Stops the statement running at this moment on the connection with the
** given id: it fails with SQLITE_INTERRUPT at its next check.  Returns 1 if
** a statement was running, 0 if none was or no connection has that id; a
** statement that starts later is not affected.  Never touches the target
** connection itself, so it is safe while that connection closes.
*/
int timelimit_interrupt(int64_t id);

/*
** Why the extension stopped the last statement on db: "deadline", "ops" or
** "cancel"; NULL if the last statement ended without being stopped, or db is
** not registered.  The string is static.
*/
const char *timelimit_reason(sqlite3 *db);

#ifdef __cplusplus
}
#endif

#endif /* TIMELIMIT_H */
