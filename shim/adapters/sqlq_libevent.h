/*
** sqlq_libevent.h: runs the completions of an sqlq handle on a libevent
** event base.  Header-only, as hiredis's adapters: the library does not
** choose a loop.
**
**   sqlq_options o = {.dispatch = 1};
**   sqlq_event a;
**   sqlq_open("app.db", &o, &q);
**   sqlq_event_attach(&a, base, q); completions now run on the base's thread
**   ...
**   sqlq_event_detach(&a);
**   sqlq_close(q);                  delivers what is left, on this thread
**
** Build with $(pkg-config --cflags --libs sqlq libevent).  Every function
** here is called on the thread that runs the base.
*/
#ifndef SQLQ_LIBEVENT_H
#define SQLQ_LIBEVENT_H

#include <event2/event.h>
#include <sqlq.h>

/* The attachment. */
typedef struct sqlq_event {
  struct event *ev; /* Watches sqlq_fd(), persistent */
  sqlq *q;          /* The handle, opened with .dispatch = 1 */
} sqlq_event;

static void sqlq_event__ready(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  sqlq_dispatch(((sqlq_event *)arg)->q);
}

/*
** Starts running q's completions on base, inside sqlq_dispatch(), whenever
** sqlq_fd(q) turns readable.  Returns 0, SQLQ_EINVAL if q is not in
** dispatch mode, or -1 if libevent failed.
*/
static inline int sqlq_event_attach(sqlq_event *a, struct event_base *base,
                                    sqlq *q) {
  int fd = sqlq_fd(q);
  if (fd < 0) return fd;
  a->q = q;
  a->ev = event_new(base, fd, EV_READ | EV_PERSIST, sqlq_event__ready, a);
  if (a->ev == NULL) return -1;
  if (event_add(a->ev, NULL) != 0) {
    event_free(a->ev);
    a->ev = NULL;
    return -1;
  }
  return 0;
}

/* Stops watching; then close the handle with sqlq_close(). */
static inline void sqlq_event_detach(sqlq_event *a) {
  if (a->ev) event_free(a->ev);
  a->ev = NULL;
}

#endif /* SQLQ_LIBEVENT_H */
