/* shim/examples/quickstart.c: the sqlq quick start (README.md). */
#include <sqlq.h>
#include <stdio.h>

/* A completion: runs once, on a worker thread (or in sqlq_dispatch()). */
static void on_rows(sqlq_result *r, void *udata) {
  int i;
  if (sqlq_result_status(r) != 0) {
    printf("%s failed: %s\n", (const char *)udata, sqlq_result_error(r));
    return;
  }
  for (i = 0; i < sqlq_result_rows(r); i++)
    printf("%s: %s\n", (const char *)udata, sqlq_result_text(r, i, 0));
}

int main(int argc, char **argv) {
  sqlq *q;
  sqlq_result *r;
  int rc = sqlq_open(argc > 1 ? argv[1] : "app.db", NULL, &q);
  if (rc != 0) {                           /* WAL, 1 writer, a read pool */
    printf("sqlq_open: %s\n", sqlq_strerror(rc));
    return 1;
  }

  sqlq_call ddl = {.kind = SQLQ_SCRIPT,
                   .sql = "CREATE TABLE IF NOT EXISTS notes("
                          "id INTEGER PRIMARY KEY, body TEXT)"};
  rc = sqlq_exec(q, &ddl, &r);
  if (rc != 0) printf("create: %s\n", sqlq_result_error(r));
  sqlq_result_free(r);

  sqlq_value p[] = {sqlq_text("hello")};
  sqlq_call w = {.kind = SQLQ_WRITE, .params = p, .nparams = 1,
                 .sql = "INSERT INTO notes(body) VALUES (?) RETURNING id"};
  rc = sqlq_exec(q, &w, &r);               /* blocks this thread only */
  if (rc == 0) {
    printf("id %lld\n", (long long)sqlq_result_int(r, 0, 0));
  } else {
    printf("insert: %s\n", sqlq_result_error(r));
  }
  sqlq_result_free(r);

  sqlq_call rd = {.kind = SQLQ_READ,
                  .sql = "SELECT body FROM notes ORDER BY id DESC LIMIT 1",
                  .done = on_rows, .udata = "last note"};
  int64_t id = sqlq_submit(q, &rd);        /* never blocks */
  if (id < 0) printf("submit: %s\n", sqlq_strerror((int)id));

  return sqlq_close(q) != 0;               /* runs what is queued, joins */
}
