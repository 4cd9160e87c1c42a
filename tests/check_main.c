/*
** check_main.c: runs every Check suite of the project and exits non-zero if
** any test failed.  CK_RUN_SUITE and CK_RUN_CASE select suites and cases.
*/
#include "tests.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t test_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int test_slowdown(void) {
  const char *z = getenv("CK_TIMEOUT_MULTIPLIER");
  int n = z ? atoi(z) : 1;
  return n > 1 ? n : 1;
}

const char *test_tmpdir(void) {
  static char zDir[4096];
  const char *zBase = getenv("TMPDIR");
  snprintf(zDir, sizeof(zDir), "%s/test-XXXXXX",
           zBase && zBase[0] ? zBase : ".");
  ck_assert_ptr_nonnull(mkdtemp(zDir));
  return zDir;
}

void test_rmdir(const char *zDir) {
  char zPath[4096 + 256];
  struct dirent *e;
  DIR *d = opendir(zDir);
  ck_assert_ptr_nonnull(d);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(zPath, sizeof(zPath), "%s/%s", zDir, e->d_name);
    ck_assert_int_eq(unlink(zPath), 0);
  }
  closedir(d);
  ck_assert_int_eq(rmdir(zDir), 0);
}

int main(void) {
  int nFailed;
  SRunner *sr = srunner_create(timelimit_suite());
  srunner_add_suite(sr, hostile_suite());
  srunner_add_suite(sr, sqlq_suite());
  srunner_run_all(sr, CK_NORMAL);
  nFailed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return nFailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
