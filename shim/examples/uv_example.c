/*
** uv_example.c: sqlq on a libuv loop (shim/adapters/sqlq_libuv.h), doing
** what loop_demo.h says.
**
** Usage: uv_example DIR.  Exits 0 if every completion ran once, on the
** loop's thread, as expected, and the timer ticked while the runaway query
** ran.
*/
#include "loop_demo.h"
#include "sqlq_libuv.h"

enum { GUARD_MS = 60000 }; /* A run that hangs ends, and fails */

typedef struct Loop {
  uv_loop_t *loop;
  sqlq_uv attach;
  uv_timer_t tick;
  uv_timer_t guard;
} Loop;

static void end(LoopDemo *d) {
  Loop *l = d->pLoop;
  uv_timer_stop(&l->tick);
  uv_timer_stop(&l->guard);
  sqlq_uv_detach(&l->attach, NULL);
}

static void on_tick(uv_timer_t *t) {
  ((LoopDemo *)t->data)->nTicks++;
}

static void on_guard(uv_timer_t *t) {
  fprintf(stderr, "uv_example: no end after %d ms\n", GUARD_MS);
  uv_stop(t->loop);
}

int main(int argc, char **argv) {
  sqlq_options o = {.dispatch = 1};
  LoopDemo d = {0};
  Loop l = {0};
  char path[4096];
  int rc;
  if (argc != 2) {
    fprintf(stderr, "usage: uv_example DIR\n");
    return 2;
  }
  snprintf(path, sizeof(path), "%s/uv.db", argv[1]);
  l.loop = uv_default_loop();
  d.xEnd = end;
  d.pLoop = &l;
  if (sqlq_open(path, &o, &d.q) != 0 ||
      sqlq_uv_attach(&l.attach, l.loop, d.q) != 0) {
    fprintf(stderr, "uv_example: cannot open %s\n", path);
    return 1;
  }
  uv_timer_init(l.loop, &l.tick);
  l.tick.data = &d;
  uv_timer_start(&l.tick, on_tick, 1, 1);
  uv_timer_init(l.loop, &l.guard);
  uv_timer_start(&l.guard, on_guard, GUARD_MS, 0);
  rc = loop_demo_start(&d);
  uv_run(l.loop, UV_RUN_DEFAULT); /* Ends once detached and stopped */
  uv_close((uv_handle_t *)&l.tick, NULL);
  uv_close((uv_handle_t *)&l.guard, NULL);
  uv_run(l.loop, UV_RUN_DEFAULT);
  rc |= sqlq_close(d.q) != 0; /* (Delivers any completion left, here) */
  rc |= loop_demo_report(&d);
  return rc;
}
