/*
 * Ownership through the C ABI: objects freed in every order the header
 * allows. Errors outlive or predecease images; options die before the cache
 * opened with them; a cancel token dies before the fetch options that hold
 * it; images and statuses stay valid after oci_cache_close; two handles share
 * one directory; no log callback arrives after its cache closed. Run under
 * AddressSanitizer, any use after free or leak on the C side fails.
 */

#define _POSIX_C_SOURCE 200809L

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fixture.h"
#include "harness.h"
#include "oci_cache.h"

static struct fixture_image sample;

static oci_cache_image *fetch_tag(const oci_cache *cache, const char *tag,
                                  const oci_cache_fetch_options *options,
                                  uint32_t expected)
{
    char reference[512];
    oci_cache_image *image = NULL;
    oci_cache_error *error = NULL;

    fixture_reference(reference, sizeof reference, &sample, tag);
    CHECK_RESULT(expected,
                 oci_cache_fetch(cache, reference, options, &image, &error),
                 &error);
    CHECK((image != NULL) == (expected == OCI_CACHE_RESULT_OK));
    return image;
}

/* A NOT_FOUND error from the registry, for the ordering tests. */
static oci_cache_error *missing_tag_error(const oci_cache *cache)
{
    char reference[512];
    oci_cache_image *image = NULL;
    oci_cache_error *error = NULL;

    fixture_reference(reference, sizeof reference, &sample, "0.0.404");
    CHECK_CODE(OCI_CACHE_RESULT_NOT_FOUND,
               oci_cache_fetch(cache, reference, NULL, &image, &error));
    CHECK(error != NULL && image == NULL);
    return error;
}

/* Every accessor still answers for `image`, and its layers are on disk. */
static void check_image_readable(const oci_cache_image *image)
{
    size_t count = oci_cache_image_layer_count(image);
    size_t i;

    CHECK(count == 2);
    CHECK_STR(oci_cache_image_manifest_digest(image), sample.manifest_digest);
    CHECK(oci_cache_image_reference(image) != NULL);
    CHECK(oci_cache_image_platform(image) != NULL);
    CHECK(oci_cache_image_json(image) != NULL &&
          strstr(oci_cache_image_json(image), sample.manifest_digest) != NULL);
    CHECK(oci_cache_image_cache_outcome(image) != OCI_CACHE_OUTCOME_INVALID);
    for (i = 0; i < count; i++) {
        const char *path = oci_cache_image_layer_path(image, i);
        struct stat info;

        CHECK(fixture_image_has_layer(&sample,
                                      oci_cache_image_layer_digest(image, i),
                                      oci_cache_image_layer_size(image, i)));
        CHECK(oci_cache_image_layer_media_type(image, i) != NULL);
        CHECK(oci_cache_image_layer_cache_outcome(image, i) !=
              OCI_CACHE_OUTCOME_INVALID);
        CHECK_MSG(path != NULL && stat(path, &info) == 0 &&
                      S_ISDIR(info.st_mode),
                  "layer %zu directory %s is gone", i, path ? path : "(null)");
    }
}

static void errors_and_images_in_either_order(void)
{
    char *dir = fixture_temp_dir("life-errors");
    oci_cache *cache = fixture_open(dir);
    oci_cache_image *image;
    oci_cache_error *error;

    harness_section("an error freed before the image fetched before it");
    image = fetch_tag(cache, "1.0.0", NULL, OCI_CACHE_RESULT_OK);
    error = missing_tag_error(cache);
    CHECK(oci_cache_error_message(error) != NULL);
    oci_cache_error_free(error);
    check_image_readable(image);
    oci_cache_image_free(image);

    harness_section("an error freed after an image fetched after it");
    error = missing_tag_error(cache);
    image = fetch_tag(cache, "1.0.0", NULL, OCI_CACHE_RESULT_OK);
    check_image_readable(image);
    oci_cache_image_free(image);
    CHECK(oci_cache_error_code(error) == OCI_CACHE_RESULT_NOT_FOUND);
    CHECK(oci_cache_error_message(error) != NULL &&
          strstr(oci_cache_error_message(error), "0.0.404") != NULL);
    oci_cache_error_free(error);

    harness_section("an error outlives the cache that made it");
    error = missing_tag_error(cache);
    oci_cache_close(cache);
    CHECK(oci_cache_error_code(error) == OCI_CACHE_RESULT_NOT_FOUND);
    CHECK(oci_cache_error_message(error) != NULL);
    oci_cache_error_free(error);

    fixture_remove_tree(dir);
}

static void options_freed_before_their_cache(void)
{
    char *dir = fixture_temp_dir("life-options");
    char *other_dir = fixture_temp_dir("life-options-other");
    oci_cache *cache;
    oci_cache *other;
    oci_cache_image *image;
    struct log_tally tally;
    unsigned long events_at_close;

    harness_section("options (with a log callback) freed right after open");
    log_tally_init(&tally, "layer cache", NULL);
    cache = fixture_open_logged(dir, &tally); /* frees its options */

    image = fetch_tag(cache, "1.0.0", NULL, OCI_CACHE_RESULT_OK);
    check_image_readable(image);
    oci_cache_image_free(image);
    CHECK_MSG(log_tally_read(&tally, &tally.watch_hits) > 0,
              "the callback of freed options got no \"layer cache\" event");

    harness_section("no log event reaches a closed cache's callback");
    oci_cache_close(cache);
    events_at_close = log_tally_read(&tally, &tally.events);
    other = fixture_open(other_dir);
    image = fetch_tag(other, "1.0.0", NULL, OCI_CACHE_RESULT_OK);
    oci_cache_image_free(image);
    oci_cache_close(other);
    fixture_sleep(0.2);
    CHECK_MSG(log_tally_read(&tally, &tally.events) == events_at_close,
              "%lu events arrived after close",
              log_tally_read(&tally, &tally.events) - events_at_close);

    log_tally_destroy(&tally);
    fixture_remove_tree(other_dir);
    fixture_remove_tree(dir);
}

static void results_outlive_their_cache(void)
{
    char *dir = fixture_temp_dir("life-close");
    oci_cache *cache = fixture_open(dir);
    oci_cache_image *image;
    oci_cache_report *status = NULL;
    oci_cache_report *cache_status = NULL;
    oci_cache_error *error = NULL;
    char reference[512];

    harness_section("an image and statuses used after oci_cache_close");
    image = fetch_tag(cache, "1.0.0", NULL, OCI_CACHE_RESULT_OK);
    fixture_reference(reference, sizeof reference, &sample, "1.0.0");
    CHECK_OK(oci_cache_status(cache, reference, &status, &error), &error);
    CHECK_OK(oci_cache_status(cache, NULL, &cache_status, &error), &error);
    oci_cache_close(cache);

    check_image_readable(image);
    CHECK(oci_cache_report_is_cached(status));
    CHECK(oci_cache_report_json(status) != NULL &&
          strstr(oci_cache_report_json(status), sample.manifest_digest));
    CHECK(oci_cache_report_json(cache_status) != NULL &&
          strstr(oci_cache_report_json(cache_status), "\"images\":1"));
    oci_cache_report_free(cache_status);
    oci_cache_image_free(image);
    oci_cache_report_free(status);

    fixture_remove_tree(dir);
}

static void cancel_token_freed_before_fetch_options(void)
{
    char *dir = fixture_temp_dir("life-cancel");
    oci_cache *cache = fixture_open(dir);
    oci_cache_fetch_options *options = oci_cache_fetch_options_new();
    oci_cache_cancel *cancel = oci_cache_cancel_new();
    oci_cache_error *error = NULL;
    oci_cache_image *image;
    double started;

    harness_section("a triggered token freed before its options still cancels");
    CHECK_OK(oci_cache_fetch_options_set_cancel(options, cancel, &error),
             &error);
    oci_cache_cancel_trigger(cancel);
    oci_cache_cancel_free(cancel);
    started = harness_now();
    image = fetch_tag(cache, "1.0.0", options, OCI_CACHE_RESULT_CANCELLED);
    CHECK_MSG(harness_now() - started < 2.0, "the cancelled fetch took %.2f s",
              harness_now() - started);
    oci_cache_image_free(image);

    harness_section("removing the token from the options un-cancels them");
    CHECK_OK(oci_cache_fetch_options_set_cancel(options, NULL, &error), &error);
    image = fetch_tag(cache, "1.0.0", options, OCI_CACHE_RESULT_OK);
    check_image_readable(image);
    oci_cache_image_free(image);

    harness_section("an untriggered token freed before its options");
    cancel = oci_cache_cancel_new();
    CHECK_OK(oci_cache_fetch_options_set_cancel(options, cancel, &error),
             &error);
    oci_cache_cancel_free(cancel);
    image = fetch_tag(cache, "1.0.0", options, OCI_CACHE_RESULT_OK);
    oci_cache_fetch_options_free(options);
    check_image_readable(image);
    oci_cache_image_free(image);

    oci_cache_close(cache);
    fixture_remove_tree(dir);
}

static void two_handles_on_one_directory(void)
{
    char *dir = fixture_temp_dir("life-shared");
    oci_cache *first = fixture_open(dir);
    oci_cache *second = fixture_open(dir);
    oci_cache_image *image;

    harness_section("two handles on one directory; the first closes early");
    image = fetch_tag(first, "1.0.0", NULL, OCI_CACHE_RESULT_OK);
    CHECK(oci_cache_image_cache_outcome(image) == OCI_CACHE_OUTCOME_MISS);
    oci_cache_close(first);
    oci_cache_image_free(image);

    image = fetch_tag(second, "1.0.0", NULL, OCI_CACHE_RESULT_OK);
    CHECK(oci_cache_image_cache_outcome(image) == OCI_CACHE_OUTCOME_HIT);
    oci_cache_close(second);
    check_image_readable(image);
    oci_cache_image_free(image);

    fixture_remove_tree(dir);
}

static void setters_errors_and_objects_freed_out_of_order(void)
{
    oci_cache_options *options = oci_cache_options_new();
    oci_cache_fetch_options *fetch_options = oci_cache_fetch_options_new();
    oci_cache_cancel *cancel = oci_cache_cancel_new();
    oci_cache_error *option_error = NULL;
    oci_cache_error *fetch_option_error = NULL;

    harness_section("setter errors outlive the options that produced them");
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT,
               oci_cache_options_set_uint(options, 99, 1, &option_error));
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT,
               oci_cache_fetch_options_set_string(fetch_options, 99, "x",
                                                  &fetch_option_error));
    CHECK_CODE(OCI_CACHE_RESULT_OK,
               oci_cache_fetch_options_set_cancel(fetch_options, cancel, NULL));
    oci_cache_fetch_options_free(fetch_options);
    oci_cache_options_free(options);
    oci_cache_cancel_trigger(cancel);
    oci_cache_cancel_free(cancel);
    CHECK(oci_cache_error_message(fetch_option_error) != NULL);
    CHECK(oci_cache_error_message(option_error) != NULL);
    oci_cache_error_free(option_error);
    oci_cache_error_free(fetch_option_error);
}

int main(void)
{
    fixture_image("OCI_CACHE_TEST_SAMPLE", &sample);

    errors_and_images_in_either_order();
    options_freed_before_their_cache();
    results_outlive_their_cache();
    cancel_token_freed_before_fetch_options();
    two_handles_on_one_directory();
    setters_errors_and_objects_freed_out_of_order();
    return harness_summary();
}
