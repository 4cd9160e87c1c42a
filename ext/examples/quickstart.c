/* ext/examples/quickstart.c: the timelimit quick start (README.md). */
#include <sqlite3.h>
#include <stdio.h>
#include <timelimit.h>

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "app.db";
  /* What a user sent: here, a query that would never end. */
  const char *user_sql = argc > 2 ? argv[2]
                                  : "WITH RECURSIVE c(x) AS (SELECT 1 UNION "
                                    "ALL SELECT x+1 FROM c) SELECT count(*) "
                                    "FROM c";
  sqlite3 *db;
  int rc;
  /* (Or timelimit_register_auto() once, before any sqlite3_open().) */
  if (sqlite3_open(path, &db) != SQLITE_OK || timelimit_register(db) ||
      timelimit_set_limit(db, 1000) ||     /* 1 s per statement */
      timelimit_lock(db)) {                /* the SQL may only lower it */
    fprintf(stderr, "%s: %s\n", path, sqlite3_errmsg(db));
    return 1;
  }
  rc = sqlite3_exec(db, user_sql, NULL, NULL, NULL);
  if (rc == SQLITE_INTERRUPT) {
    printf("stopped: %s\n", timelimit_reason(db)); /* "deadline" */
  } else if (rc != SQLITE_OK) {
    printf("failed: %s\n", sqlite3_errmsg(db));
  } else {
    printf("done\n");
  }
  sqlite3_close(db);
  return rc == SQLITE_OK || rc == SQLITE_INTERRUPT ? 0 : 1;
}
