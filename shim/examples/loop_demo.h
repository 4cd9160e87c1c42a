/*
** loop_demo.h: what uv_example.c, event_example.c and epoll_example.c do
** on their loops, written once: tasks submitted with sqlq_submit(),
** completions checked (each once, on the loop's thread, with the status
** expected), and a runaway query stopped by its time limit while the
** loop's 1 ms timer ticks.  Each example supplies the loop.
*/
#ifndef LOOP_DEMO_H
#define LOOP_DEMO_H

#include <pthread.h>
#include <sqlq.h>
#include <stdio.h>

enum { LOOP_DEMO_WRITES = 100, LOOP_DEMO_TASKS = LOOP_DEMO_WRITES + 3 };

typedef struct LoopDemo LoopDemo;
struct LoopDemo {
  sqlq *q;                  /* The handle, opened with .dispatch = 1 */
  pthread_t loopThread;     /* The loop's thread */
  void (*xEnd)(LoopDemo *); /* Ends the loop, at the last completion */
  void *pLoop;              /* The example's own */
  int nTicks;               /* Timer ticks so far (the example counts) */
  int ticksAtRunaway;       /* ... when the runaway query was submitted */
  int nDone;                /* Completions */
  int nBad;                 /* Completions not as expected */
};

/* What a completion expects. */
typedef struct LoopDemoExpect {
  LoopDemo *d;
  int status;
} LoopDemoExpect;

static void loop_demo_done(sqlq_result *r, void *udata) {
  LoopDemoExpect *e = udata;
  LoopDemo *d = e->d;
  d->nDone++;
  if (sqlq_result_status(r) != e->status ||
      !pthread_equal(pthread_self(), d->loopThread)) {
    d->nBad++;
  }
  if (e->status == SQLQ_ETIMEOUT) {
    printf("runaway query stopped: %s; the timer ticked %d times meanwhile\n",
           sqlq_result_error(r), d->nTicks - d->ticksAtRunaway);
    if (d->nTicks - d->ticksAtRunaway < 10) d->nBad++;
  }
  if (d->nDone == LOOP_DEMO_TASKS) d->xEnd(d);
}

static int loop_demo_submit(LoopDemo *d, sqlq_call *c, LoopDemoExpect *e) {
  c->done = loop_demo_done;
  c->udata = e;
  return sqlq_submit(d->q, c) > 0 ? 0 : 1;
}

/* Submits every task, from the loop's thread; nonzero if one failed. */
static int loop_demo_start(LoopDemo *d) {
  static LoopDemoExpect ok, timeout;
  int i, rc = 0;
  ok = (LoopDemoExpect){d, 0};
  timeout = (LoopDemoExpect){d, SQLQ_ETIMEOUT};
  d->loopThread = pthread_self();
  sqlq_call ddl = {.kind = SQLQ_SCRIPT, .sql = "CREATE TABLE t(x)"};
  rc |= loop_demo_submit(d, &ddl, &ok);
  for (i = 0; i < LOOP_DEMO_WRITES; i++) {
    sqlq_value v = sqlq_int(i);
    sqlq_call w = {.kind = SQLQ_WRITE,
                   .sql = "INSERT INTO t VALUES (?)",
                   .params = &v,
                   .nparams = 1};
    rc |= loop_demo_submit(d, &w, &ok);
  }
  /* (Reads run beside the writes: this one needs none of them.) */
  sqlq_call rd = {.kind = SQLQ_READ,
                  .sql = "SELECT count(*) FROM sqlite_schema"};
  rc |= loop_demo_submit(d, &rd, &ok);
  sqlq_call runaway = {.kind = SQLQ_READ,
                       .timeout_ms = 300,
                       .sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                              "SELECT x+1 FROM c) SELECT count(*) FROM c"};
  d->ticksAtRunaway = d->nTicks;
  rc |= loop_demo_submit(d, &runaway, &timeout);
  return rc;
}

/* Prints the outcome; 0 if every completion ran once, as expected. */
static int loop_demo_report(LoopDemo *d) {
  printf("%d completions, %d not as expected\n", d->nDone, d->nBad);
  return d->nBad || d->nDone != LOOP_DEMO_TASKS;
}

#endif /* LOOP_DEMO_H */
