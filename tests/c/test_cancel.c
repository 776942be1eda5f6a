/*
 * Cancelling a large fetch from a second pthread: once the download of the
 * large layer has begun, the other thread triggers the fetch's cancel token;
 * oci_cache_fetch returns OCI_CACHE_RESULT_CANCELLED promptly, the image is
 * not reported cached, and a normal fetch afterwards completes.
 */

#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fixture.h"
#include "harness.h"
#include "oci_cache.h"

/* How long a triggered fetch may take to return. */
#define PROMPT_SECONDS 2.0
/* How long the download gets to run before the trigger. */
#define DOWNLOAD_HEAD_START 0.1

static struct fixture_image large;

struct canceller {
    pthread_t thread;
    struct log_tally *tally;
    const oci_cache_cancel *cancel;
    int download_seen;
    double triggered_at;
};

/* Wait for the large layer's download to start, then cancel. */
static void *cancel_during_download(void *argument)
{
    struct canceller *canceller = argument;

    canceller->download_seen = log_tally_wait(canceller->tally, 60.0);
    fixture_sleep(DOWNLOAD_HEAD_START);
    canceller->triggered_at = harness_now();
    oci_cache_cancel_trigger(canceller->cancel);
    return NULL;
}

static void cancelled_mid_download(const oci_cache *cache,
                                   const char *reference,
                                   struct log_tally *tally)
{
    oci_cache_fetch_options *options = oci_cache_fetch_options_new();
    oci_cache_cancel *cancel = oci_cache_cancel_new();
    oci_cache_image *image = NULL;
    oci_cache_error *error = NULL;
    oci_cache_report *status = NULL;
    struct canceller canceller;
    double started;
    double returned;
    uint32_t result;

    harness_section("a fetch cancelled by another thread mid-download");
    CHECK_OK(oci_cache_fetch_options_set_cancel(options, cancel, &error),
             &error);
    memset(&canceller, 0, sizeof canceller);
    canceller.tally = tally;
    canceller.cancel = cancel;
    if (!CHECK(pthread_create(&canceller.thread, NULL, cancel_during_download,
                              &canceller) == 0))
        return;

    started = harness_now();
    result = oci_cache_fetch(cache, reference, options, &image, &error);
    returned = harness_now();
    pthread_join(canceller.thread, NULL);

    CHECK_MSG(canceller.download_seen,
              "no \"layer cache\" event for the large layer within 60 s");
    CHECK_RESULT(OCI_CACHE_RESULT_CANCELLED, result, &error);
    CHECK(image == NULL);
    CHECK_MSG(returned >= canceller.triggered_at,
              "the fetch returned %.3f s before the trigger",
              canceller.triggered_at - returned);
    CHECK_MSG(returned - canceller.triggered_at < PROMPT_SECONDS,
              "the fetch returned %.3f s after the trigger",
              returned - canceller.triggered_at);
    harness_note("cancelled after %.3f s of fetching; returned %.3f s after "
                 "the trigger",
                 canceller.triggered_at - started,
                 returned - canceller.triggered_at);
    oci_cache_image_free(image);

    harness_section("the cancelled image is not reported cached");
    CHECK_OK(oci_cache_status(cache, reference, &status, &error), &error);
    CHECK(status != NULL && !oci_cache_report_is_cached(status));
    oci_cache_report_free(status);

    oci_cache_fetch_options_free(options);
    oci_cache_cancel_free(cancel);
}

static void normal_fetch_afterwards(const oci_cache *cache,
                                    const char *reference)
{
    oci_cache_fetch_options *options = oci_cache_fetch_options_new();
    oci_cache_image *image = NULL;
    oci_cache_error *error = NULL;
    oci_cache_report *status = NULL;
    double started = harness_now();
    size_t i;

    harness_section("a normal fetch after the cancellation completes");
    CHECK_OK(oci_cache_fetch(cache, reference, options, &image, &error),
             &error);
    harness_note("the full fetch took %.2f s", harness_now() - started);
    CHECK(oci_cache_image_cache_outcome(image) == OCI_CACHE_OUTCOME_MISS);
    CHECK(oci_cache_image_layer_count(image) == 3);
    for (i = 0; i < oci_cache_image_layer_count(image); i++) {
        const char *path = oci_cache_image_layer_path(image, i);
        struct stat info;

        CHECK(fixture_image_has_layer(&large,
                                      oci_cache_image_layer_digest(image, i),
                                      oci_cache_image_layer_size(image, i)));
        CHECK(path != NULL && stat(path, &info) == 0 && S_ISDIR(info.st_mode));
    }
    CHECK(oci_cache_image_layer_size(image, 2) >= 200u << 20);
    oci_cache_image_free(image);

    CHECK_OK(oci_cache_status(cache, reference, &status, &error), &error);
    CHECK(oci_cache_report_is_cached(status));
    oci_cache_report_free(status);
    oci_cache_fetch_options_free(options);
}

int main(void)
{
    char large_layer[80];
    char reference[512];
    char *dir;
    oci_cache *cache;
    struct log_tally tally;

    fixture_image("OCI_CACHE_TEST_LARGE", &large);
    if (!CHECK(fixture_image_layer_digest(&large, 2, large_layer,
                                          sizeof large_layer)))
        return harness_summary();
    fixture_reference(reference, sizeof reference, &large, "1.0.0");

    dir = fixture_temp_dir("cancel");
    log_tally_init(&tally, "layer cache", large_layer);
    cache = fixture_open_logged(dir, &tally);

    if (cache != NULL) {
        cancelled_mid_download(cache, reference, &tally);
        normal_fetch_afterwards(cache, reference);
        oci_cache_close(cache);
    }

    log_tally_destroy(&tally);
    fixture_remove_tree(dir);
    return harness_summary();
}
