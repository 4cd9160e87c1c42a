/*
** sqlq_libuv.h: runs the completions of an sqlq handle on a libuv loop.
** Header-only, as hiredis's adapters: the library does not choose a loop.
**
**   sqlq_options o = {.dispatch = 1};
**   sqlq_uv a;
**   sqlq_open("app.db", &o, &q);
**   sqlq_uv_attach(&a, loop, q);   completions now run on the loop's thread
**   ...
**   sqlq_uv_detach(&a, on_closed); in on_closed (or after the loop ends):
**   sqlq_close(q);                 delivers what is left, on that thread
**
** Build with $(pkg-config --cflags --libs sqlq libuv).  Every function
** here is called on the loop's thread.
*/
#ifndef SQLQ_LIBUV_H
#define SQLQ_LIBUV_H

#include <sqlq.h>
#include <uv.h>

/* The attachment: embed it where it outlives the loop's use of it. */
typedef struct sqlq_uv {
  uv_poll_t poll; /* Watches sqlq_fd(); poll.data points back here */
  sqlq *q;        /* The handle, opened with .dispatch = 1 */
} sqlq_uv;

static void sqlq_uv__ready(uv_poll_t *p, int status, int events) {
  sqlq_uv *a = (sqlq_uv *)p->data;
  (void)events;
  /* On a poll error the completions are still waiting: dispatch them. */
  (void)status;
  sqlq_dispatch(a->q);
}

/*
** Starts running q's completions on loop, inside sqlq_dispatch(), whenever
** sqlq_fd(q) turns readable.  Returns 0, SQLQ_EINVAL if q is not in
** dispatch mode, or a libuv error (negative, as uv_strerror() takes).
*/
static inline int sqlq_uv_attach(sqlq_uv *a, uv_loop_t *loop, sqlq *q) {
  int fd = sqlq_fd(q), rc;
  if (fd < 0) return fd;
  a->q = q;
  rc = uv_poll_init(loop, &a->poll, fd);
  if (rc != 0) return rc;
  a->poll.data = a;
  rc = uv_poll_start(&a->poll, UV_READABLE, sqlq_uv__ready);
  if (rc != 0) uv_close((uv_handle_t *)&a->poll, NULL);
  return rc;
}

/*
** Stops watching; on_closed(handle) runs once libuv has let go of a (NULL:
** none).  Then close the handle with sqlq_close(), which runs the
** completions still waiting on the calling thread.
*/
static inline void sqlq_uv_detach(sqlq_uv *a, uv_close_cb on_closed) {
  uv_poll_stop(&a->poll);
  uv_close((uv_handle_t *)&a->poll, on_closed);
}

#endif /* SQLQ_LIBUV_H */
