#define _POSIX_C_SOURCE 200809L

#include "harness.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t counts_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long passed;
static unsigned long failed;

/* Count one check; the caller holds counts_lock. */
static void count(int ok)
{
    if (ok)
        passed++;
    else
        failed++;
}

/* One whole line of output; the caller holds counts_lock. */
static void print_line(const char *prefix, const char *format, va_list args)
{
    fputs(prefix, stdout);
    vprintf(format, args);
    putchar('\n');
    fflush(stdout);
}

int harness_check(int ok, const char *file, int line, const char *format, ...)
{
    char prefix[512];
    va_list args;

    pthread_mutex_lock(&counts_lock);
    count(ok);
    if (!ok) {
        snprintf(prefix, sizeof prefix, "FAIL %s:%d: ", file, line);
        va_start(args, format);
        print_line(prefix, format, args);
        va_end(args);
    }
    pthread_mutex_unlock(&counts_lock);
    return ok;
}

int harness_check_str(const char *actual, const char *expected,
                      const char *file, int line, const char *expression)
{
    int ok;

    if (actual == NULL || expected == NULL)
        ok = actual == expected;
    else
        ok = strcmp(actual, expected) == 0;
    return harness_check(ok, file, line, "%s is \"%s\", expected \"%s\"",
                         expression, actual ? actual : "(null)",
                         expected ? expected : "(null)");
}

int harness_check_code(uint32_t expected, uint32_t actual, const char *file,
                       int line, const char *expression)
{
    return harness_check(actual == expected, file, line,
                         "%s returned %s (%u), expected %s (%u)", expression,
                         oci_cache_result_name(actual), (unsigned)actual,
                         oci_cache_result_name(expected), (unsigned)expected);
}

int harness_check_result(uint32_t expected, uint32_t actual,
                         oci_cache_error **error_slot, const char *file,
                         int line, const char *expression)
{
    oci_cache_error *error = *error_slot;
    const char *message = oci_cache_error_message(error);
    int ok;

    ok = harness_check(actual == expected, file, line,
                       "%s returned %s (%u), expected %s: %s", expression,
                       oci_cache_result_name(actual), (unsigned)actual,
                       oci_cache_result_name(expected),
                       message ? message : "(no error object)");

    if (actual == OCI_CACHE_RESULT_OK) {
        ok &= harness_check(error == NULL, file, line,
                            "%s succeeded but stored an error: %s",
                            expression, message ? message : "");
    } else {
        ok &= harness_check(error != NULL, file, line,
                            "%s failed with %s but stored no error",
                            expression, oci_cache_result_name(actual));
        if (error != NULL) {
            uint32_t code = oci_cache_error_code(error);
            ok &= harness_check(code == actual, file, line,
                                "%s returned %s, its error says %s",
                                expression, oci_cache_result_name(actual),
                                oci_cache_result_name(code));
            ok &= harness_check(message != NULL && message[0] != '\0', file,
                                line, "%s: the error has no message",
                                expression);
        }
    }

    oci_cache_error_free(error);
    *error_slot = NULL;
    return ok;
}

void harness_note(const char *format, ...)
{
    va_list args;

    pthread_mutex_lock(&counts_lock);
    va_start(args, format);
    print_line("# ", format, args);
    va_end(args);
    pthread_mutex_unlock(&counts_lock);
}

void harness_section(const char *name)
{
    harness_note("%s", name);
}

int harness_summary(void)
{
    int status;

    pthread_mutex_lock(&counts_lock);
    printf("%lu passed, %lu failed\n", passed, failed);
    fflush(stdout);
    status = failed == 0 ? 0 : 1;
    pthread_mutex_unlock(&counts_lock);
    return status;
}

double harness_now(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}
