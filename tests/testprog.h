/*
** testprog.h: small helpers shared by the test and benchmark programs
** (tests/stress_sqlq.c, tests/crash_sqlq.c, tests/bench/bench_sqlq.c).
*/
#ifndef TESTPROG_H
#define TESTPROG_H

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/*
** The next number of a splitmix64 generator whose state is *pState: any
** state, even 0 or consecutive seeds, gives a good sequence, so a run can
** be replayed from a printed seed.
*/
static inline uint64_t test_random(uint64_t *pState) {
  uint64_t z = (*pState += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Removes a database file and what SQLite keeps beside it. */
static inline void test_remove_database(const char *zPath) {
  static const char *const azSuffix[] = {"", "-wal", "-shm", "-journal"};
  char zName[4200];
  size_t i;
  for (i = 0; i < sizeof(azSuffix) / sizeof(azSuffix[0]); i++) {
    snprintf(zName, sizeof(zName), "%s%s", zPath, azSuffix[i]);
    unlink(zName);
  }
}

#endif /* TESTPROG_H */
