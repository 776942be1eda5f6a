/*
 * Warm fetches through the C ABI, in one process: opens a cache, fetches REFERENCE once (it is
 * expected to be cached already), then N more times, and prints one JSON line with the median
 * and the 90th percentile of the per-call time in microseconds.
 *
 *   warm_fetch CACHE_DIR REFERENCE N
 */
#define _POSIX_C_SOURCE 199309L

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "oci_cache.h"

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int fetch_once(oci_cache *cache, const char *reference, uint32_t *outcome) {
    oci_cache_image *image = NULL;
    oci_cache_error *error = NULL;
    if (oci_cache_fetch(cache, reference, NULL, &image, &error) != OCI_CACHE_RESULT_OK) {
        fprintf(stderr, "fetch: %s\n", oci_cache_error_message(error));
        oci_cache_error_free(error);
        return -1;
    }
    *outcome = oci_cache_image_cache_outcome(image);
    oci_cache_image_free(image);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s CACHE_DIR REFERENCE N\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[3]);
    double *times = calloc((size_t)n, sizeof *times);
    oci_cache *cache = NULL;
    oci_cache_error *error = NULL;
    uint32_t outcome = OCI_CACHE_OUTCOME_INVALID;
    if (times == NULL || n <= 0 ||
        oci_cache_open(argv[1], NULL, &cache, &error) != OCI_CACHE_RESULT_OK) {
        fprintf(stderr, "open: %s\n", error ? oci_cache_error_message(error) : "bad arguments");
        return 1;
    }

    /* The first call starts the library's runtime; it is not counted. */
    if (fetch_once(cache, argv[2], &outcome) != 0) {
        return 1;
    }
    for (int i = 0; i < n; i++) {
        double start = now_us();
        if (fetch_once(cache, argv[2], &outcome) != 0) {
            return 1;
        }
        times[i] = now_us() - start;
    }

    qsort(times, (size_t)n, sizeof *times, compare);
    printf("{\"calls\": %d, \"median_us\": %.1f, \"p90_us\": %.1f, \"outcome\": %u}\n", n,
           times[n / 2], times[(n * 9) / 10], outcome);
    oci_cache_close(cache);
    free(times);
    return 0;
}
