/*
** tests.h: the Check suites of the project's unit tests and the helpers they
** share.  tests/check_main.c runs every suite.
*/
#ifndef TESTS_H
#define TESTS_H

#include <check.h>
#include <stdint.h>

Suite *timelimit_suite(void);
Suite *hostile_suite(void);
Suite *sqlq_suite(void);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t test_now_ms(void);

/*
** How much slower than native this run is (CK_TIMEOUT_MULTIPLIER, default
** 1): tests scale their time limits and bounds by it under sanitizers and
** valgrind.
*/
int test_slowdown(void);

/*
** Makes a new empty directory for a test's files, under TMPDIR or else the
** current directory, and returns its path (static storage, valid until the
** next call).  test_rmdir() removes it and the files in it.
*/
const char *test_tmpdir(void);
void test_rmdir(const char *zDir);

#endif /* TESTS_H */
