/*
** stats.c: the counters behind sqlq_stats(): how tasks ended, and
** histograms of how long they waited and ran.  The handle keeps one set,
** and each read connection of the pool one more (so that reads on callers'
** threads count without touching the handle's); sqlq_stats() adds them up.
*/
#include "sqlq_int.h"

#include <string.h>

/*
** Histograms of microseconds, 4 buckets per power of two: bucket i covers
** [lower(i), lower(i+1)).
*/
static int histBucket(int64_t us) {
  int msb = 0;
  if (us < 4) return us < 0 ? 0 : (int)us;
  while ((us >> (msb + 1)) != 0)
    msb++;
  return 4 * (msb - 1) + (int)((us >> (msb - 2)) & 3);
}

static int64_t histLower(int i) {
  if (i < 4) return i;
  return (int64_t)(4 + i % 4) << (i / 4 - 1);
}

/* The p-th percentile (0 < p < 1) of h, as its bucket's lower bound. */
static int64_t histPercentile(const uint64_t *h, double p) {
  uint64_t n = 0, seen = 0;
  int i;
  for (i = 0; i < SQLQ__HIST_SIZE; i++)
    n += h[i];
  if (n == 0) return 0;
  for (i = 0; i < SQLQ__HIST_SIZE; i++) {
    seen += h[i];
    if ((double)seen >= p * (double)n) return histLower(i);
  }
  return histLower(SQLQ__HIST_SIZE - 1);
}

static void histAdd(uint64_t *h, int64_t ns) {
  int i = histBucket(ns / 1000);
  h[i < SQLQ__HIST_SIZE ? i : SQLQ__HIST_SIZE - 1]++;
}

void sqlq__stats_wait(sqlq__stats *s, int64_t ns) {
  histAdd(s->aWait, ns);
}

void sqlq__stats_done(sqlq__stats *s, const sqlq__task *t) {
  int status = sqlq_result_status(t->res);
  if (t->startNs) histAdd(s->aRun, t->runNs);
  if (status == 0) {
    s->nDone++;
  } else {
    s->nFailed++;
    if (status == SQLQ_ETIMEOUT) s->nTimeouts++;
    if (status == SQLQ_ECANCELED) s->nCancels++;
  }
}

void sqlq__stats_add(sqlq__stats *pTo, const sqlq__stats *pFrom) {
  int i;
  pTo->nDone += pFrom->nDone;
  pTo->nFailed += pFrom->nFailed;
  pTo->nTimeouts += pFrom->nTimeouts;
  pTo->nCancels += pFrom->nCancels;
  for (i = 0; i < SQLQ__HIST_SIZE; i++) {
    pTo->aWait[i] += pFrom->aWait[i];
    pTo->aRun[i] += pFrom->aRun[i];
  }
}

void sqlq__stats_report(const sqlq__stats *s, sqlq_stats_t *st) {
  st->done = s->nDone;
  st->failed = s->nFailed;
  st->timeouts = s->nTimeouts;
  st->cancels = s->nCancels;
  st->wait_p50_us = histPercentile(s->aWait, 0.50);
  st->wait_p99_us = histPercentile(s->aWait, 0.99);
  st->run_p50_us = histPercentile(s->aRun, 0.50);
  st->run_p99_us = histPercentile(s->aRun, 0.99);
}
