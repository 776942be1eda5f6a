/*
 * A tiny test harness for the C programs of tests/c: checks count passes and
 * failures, each failure is printed with its file:line (and, for result codes,
 * the library's error message), and harness_summary() prints the one final
 * line "N passed, N failed" and gives the exit status.
 *
 * Checks may run on several threads at once.
 */

#ifndef OCI_CACHE_TEST_HARNESS_H
#define OCI_CACHE_TEST_HARNESS_H

#include <stdint.h>

#include "oci_cache.h"

/* A boolean check; the failure line shows the expression. */
#define CHECK(cond) \
    harness_check((cond) != 0, __FILE__, __LINE__, "%s", #cond)

/* A boolean check with a printf-style explanation for the failure line. */
#define CHECK_MSG(cond, ...) \
    harness_check((cond) != 0, __FILE__, __LINE__, __VA_ARGS__)

/* Two strings are equal; NULL equals only NULL. */
#define CHECK_STR(actual, expected) \
    harness_check_str((actual), (expected), __FILE__, __LINE__, #actual)

/* A call returned the result code `expected` (for calls without an error). */
#define CHECK_CODE(expected, actual) \
    harness_check_code((expected), (actual), __FILE__, __LINE__, #actual)

/*
 * A call returned `expected`, and the error it stored in *error_slot agrees:
 * NULL on success; on failure an error with the same code and a message.
 * The error is freed and *error_slot reset to NULL.
 */
#define CHECK_RESULT(expected, actual, error_slot) \
    harness_check_result((expected), (actual), (error_slot), __FILE__, \
                         __LINE__, #actual)

/* A successful call: shorthand for CHECK_RESULT(OCI_CACHE_RESULT_OK, ...). */
#define CHECK_OK(actual, error_slot) \
    CHECK_RESULT(OCI_CACHE_RESULT_OK, (actual), (error_slot))

int harness_check(int ok, const char *file, int line, const char *format, ...)
    __attribute__((format(printf, 4, 5)));
int harness_check_str(const char *actual, const char *expected,
                      const char *file, int line, const char *expression);
int harness_check_code(uint32_t expected, uint32_t actual, const char *file,
                       int line, const char *expression);
int harness_check_result(uint32_t expected, uint32_t actual,
                         oci_cache_error **error_slot, const char *file,
                         int line, const char *expression);

/* An informational line ("# ..."), never the last line of the output. */
void harness_note(const char *format, ...)
    __attribute__((format(printf, 1, 2)));

/* Start a named group of checks (one behaviour); printed as a note. */
void harness_section(const char *name);

/* Print "N passed, N failed"; the exit status for main: 0 only if none failed. */
int harness_summary(void);

/* Seconds on the monotonic clock. */
double harness_now(void);

#endif /* OCI_CACHE_TEST_HARNESS_H */
