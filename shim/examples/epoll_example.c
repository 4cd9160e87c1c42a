/*
** epoll_example.c: sqlq on a bare epoll loop, with no library but the C
** library's: what loop_demo.h says, with sqlq_fd() in the epoll set and
** sqlq_dispatch() when it turns readable, and a timerfd as the 1 ms timer.
**
** Usage: epoll_example DIR.  Exits 0 if every completion ran once, on the
** loop's thread, as expected, and the timer ticked while the runaway query
** ran.
*/
#include "loop_demo.h"

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum { GUARD_S = 60 }; /* A run that hangs ends, and fails */

static int running = 1;

static void end(LoopDemo *d) {
  (void)d;
  running = 0;
}

int main(int argc, char **argv) {
  sqlq_options o = {.dispatch = 1};
  LoopDemo d = {0};
  struct itimerspec every_ms = {{0, 1000000}, {0, 1000000}};
  struct epoll_event ev = {.events = EPOLLIN}, got[8];
  char path[4096];
  int ep = epoll_create1(0), tfd = timerfd_create(CLOCK_MONOTONIC, 0);
  int qfd, rc, i, n;
  time_t guard = time(NULL) + GUARD_S;
  if (argc != 2) {
    fprintf(stderr, "usage: epoll_example DIR\n");
    return 2;
  }
  snprintf(path, sizeof(path), "%s/epoll.db", argv[1]);
  d.xEnd = end;
  if (ep < 0 || tfd < 0 || sqlq_open(path, &o, &d.q) != 0) {
    fprintf(stderr, "epoll_example: cannot open %s\n", path);
    return 1;
  }
  qfd = sqlq_fd(d.q);
  ev.data.fd = qfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, qfd, &ev);
  ev.data.fd = tfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
  timerfd_settime(tfd, 0, &every_ms, NULL);
  rc = loop_demo_start(&d);
  while (running && time(NULL) < guard) {
    n = epoll_wait(ep, got, 8, 1000);
    for (i = 0; i < n; i++) {
      if (got[i].data.fd == qfd) {
        sqlq_dispatch(d.q); /* The completions run here */
      } else {
        uint64_t ticks;
        if (read(tfd, &ticks, sizeof(ticks)) == sizeof(ticks)) {
          d.nTicks += (int)ticks;
        }
      }
    }
  }
  rc |= sqlq_close(d.q) != 0; /* (Delivers any completion left, here) */
  close(tfd);
  close(ep);
  rc |= loop_demo_report(&d);
  return rc;
}
