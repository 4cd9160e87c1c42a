/*
** event_example.c: sqlq on a libevent base (shim/adapters/sqlq_libevent.h),
** doing what loop_demo.h says.
**
** Usage: event_example DIR.  Exits 0 if every completion ran once, on the
** loop's thread, as expected, and the timer ticked while the runaway query
** ran.
*/
#include "loop_demo.h"
#include "sqlq_libevent.h"

enum { GUARD_S = 60 }; /* A run that hangs ends, and fails */

static void end(LoopDemo *d) {
  event_base_loopbreak(d->pLoop);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ((LoopDemo *)arg)->nTicks++;
}

int main(int argc, char **argv) {
  sqlq_options o = {.dispatch = 1};
  LoopDemo d = {0};
  sqlq_event attach;
  struct event_base *base = event_base_new();
  struct event *tick;
  char path[4096];
  int rc;
  if (argc != 2) {
    fprintf(stderr, "usage: event_example DIR\n");
    return 2;
  }
  snprintf(path, sizeof(path), "%s/event.db", argv[1]);
  d.xEnd = end;
  d.pLoop = base;
  if (base == NULL || sqlq_open(path, &o, &d.q) != 0 ||
      sqlq_event_attach(&attach, base, d.q) != 0) {
    fprintf(stderr, "event_example: cannot open %s\n", path);
    return 1;
  }
  tick = event_new(base, -1, EV_PERSIST, on_tick, &d);
  event_add(tick, &(struct timeval){0, 1000});
  rc = loop_demo_start(&d);
  event_base_loopexit(base, &(struct timeval){GUARD_S, 0});
  event_base_dispatch(base); /* Ends at the last completion */
  sqlq_event_detach(&attach);
  event_free(tick);
  rc |= sqlq_close(d.q) != 0; /* (Delivers any completion left, here) */
  event_base_free(base);
  rc |= loop_demo_report(&d);
  return rc;
}
