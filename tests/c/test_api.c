/*
 * The C ABI without a registry: versions, result names, and how every
 * function treats NULL, bad UTF-8, unknown or misdirected option codes and
 * out-of-range values. Nothing here may crash; every refusal is
 * OCI_CACHE_RESULT_INVALID_ARGUMENT with an error that names the argument,
 * or the documented NULL/0/INVALID value.
 */

#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fixture.h"
#include "harness.h"
#include "oci_cache.h"

/* Not UTF-8: a lone continuation byte, and an overlong encoding of '/'. */
static const char BAD_UTF8[] = "linux/\x80md64";
static const char BAD_UTF8_DIR[] = "/tmp/oci-cache-\xc0\xaf";
static const char BAD_UTF8_REFERENCE[] = "127.0.0.1:5000/st\xffps/x:1.0.0";

/* A failed call's error message mentions `word` (the argument's name). */
static void check_error_names(uint32_t expected, uint32_t actual,
                              oci_cache_error **error, const char *word,
                              const char *expression, int line)
{
    const char *message = oci_cache_error_message(*error);

    harness_check(message != NULL && strstr(message, word) != NULL, __FILE__,
                  line, "the error should name \"%s\": %s", word,
                  message ? message : "(no error)");
    harness_check_result(expected, actual, error, __FILE__, line,
                         expression);
}

/* The error of the latest refused call; CHECK_REFUSED checks and frees it. */
static oci_cache_error *refused;

/* `call`, which stores its error in `refused`, is INVALID_ARGUMENT and the
 * error's message contains `word`. */
#define CHECK_REFUSED(call, word) \
    check_error_names(OCI_CACHE_RESULT_INVALID_ARGUMENT, (call), &refused, \
                      (word), #call, __LINE__)

static void versions(void)
{
    const char *version = oci_cache_version();

    harness_section("the ABI version and the library version");
    CHECK(oci_cache_abi_version() == OCI_CACHE_ABI_VERSION);
    CHECK(version != NULL && version[0] >= '0' && version[0] <= '9');
    CHECK(version != NULL && strchr(version, '.') != NULL);
    CHECK(oci_cache_version() == version);
}

static void result_names(void)
{
    static const char *const names[] = {
        "ok", "invalid_argument", "invalid_reference", "not_found",
        "unauthorized", "integrity", "unsafe_layer", "network", "io",
        "cancelled", "unsupported", "no_matching_platform", "registry",
        "closed", "panic", "not_cached",
    };
    uint32_t code;

    harness_section("every result code has its name; others are unknown");
    for (code = 0; code < sizeof names / sizeof names[0]; code++)
        CHECK_STR(oci_cache_result_name(code), names[code]);
    CHECK(OCI_CACHE_RESULT_NOT_CACHED == 15);
    CHECK_STR(oci_cache_result_name(16), "unknown");
    CHECK_STR(oci_cache_result_name(255), "unknown");
    CHECK_STR(oci_cache_result_name(UINT32_MAX), "unknown");
}

static void null_objects(void)
{
    harness_section("accessors of NULL objects return NULL, 0 or INVALID");
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT, oci_cache_error_code(NULL));
    CHECK(oci_cache_error_message(NULL) == NULL);

    CHECK(!oci_cache_report_is_cached(NULL));
    CHECK(oci_cache_report_json(NULL) == NULL);

    CHECK(oci_cache_image_reference(NULL) == NULL);
    CHECK(oci_cache_image_manifest_digest(NULL) == NULL);
    CHECK(oci_cache_image_platform(NULL) == NULL);
    CHECK(oci_cache_image_merged_path(NULL) == NULL);
    CHECK(oci_cache_image_cache_outcome(NULL) == OCI_CACHE_OUTCOME_INVALID);
    CHECK(oci_cache_image_layer_count(NULL) == 0);
    CHECK(oci_cache_image_layer_digest(NULL, 0) == NULL);
    CHECK(oci_cache_image_layer_media_type(NULL, 0) == NULL);
    CHECK(oci_cache_image_layer_size(NULL, 0) == 0);
    CHECK(oci_cache_image_layer_path(NULL, 0) == NULL);
    CHECK(oci_cache_image_layer_cache_outcome(NULL, 0) ==
          OCI_CACHE_OUTCOME_INVALID);
    CHECK(oci_cache_image_json(NULL) == NULL);

    harness_section("freeing, closing and triggering NULL are no-ops");
    oci_cache_error_free(NULL);
    oci_cache_report_free(NULL);
    oci_cache_image_free(NULL);
    oci_cache_options_free(NULL);
    oci_cache_fetch_options_free(NULL);
    oci_cache_cancel_trigger(NULL);
    oci_cache_cancel_free(NULL);
    oci_cache_close(NULL);
    CHECK(1);
}

static void cache_options(void)
{
    oci_cache_options *options = oci_cache_options_new();
    oci_cache_error *error = NULL;
    uint32_t level;

    harness_section("cache options: NULL options and values are refused");
    CHECK(options != NULL);
    CHECK_REFUSED(oci_cache_options_set_string(
                      NULL, OCI_CACHE_OPTION_PLATFORM, "linux/amd64",
                      &refused),
                  "options");
    CHECK_REFUSED(oci_cache_options_set_string(
                      options, OCI_CACHE_OPTION_PLATFORM, NULL, &refused),
                  "value");
    CHECK_REFUSED(oci_cache_options_set_string(
                      options, OCI_CACHE_OPTION_INSECURE_REGISTRY, NULL,
                      &refused),
                  "value");
    CHECK_REFUSED(oci_cache_options_set_uint(
                      NULL, OCI_CACHE_OPTION_MAX_CONCURRENT_LAYERS, 2,
                      &refused),
                  "options");
    CHECK_REFUSED(oci_cache_options_set_log_callback(
                      NULL, fixture_log_callback, NULL,
                      OCI_CACHE_LOG_LEVEL_DEBUG, &refused),
                  "options");
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT,
               oci_cache_options_set_string(NULL, OCI_CACHE_OPTION_PLATFORM,
                                            "linux/amd64", NULL));
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT,
               oci_cache_options_set_uint(
                   NULL, OCI_CACHE_OPTION_MAX_CONCURRENT_LAYERS, 2, NULL));
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT,
               oci_cache_options_set_log_callback(NULL, NULL, NULL, 1, NULL));

    harness_section("cache options: values that are not UTF-8 are refused");
    CHECK_REFUSED(oci_cache_options_set_string(options,
                                               OCI_CACHE_OPTION_PLATFORM,
                                               BAD_UTF8, &refused),
                  "UTF-8");
    CHECK_REFUSED(oci_cache_options_set_string(
                      options, OCI_CACHE_OPTION_INSECURE_REGISTRY, BAD_UTF8,
                      &refused),
                  "UTF-8");

    harness_section("cache options: unknown codes and wrong setters");
    CHECK_REFUSED(oci_cache_options_set_string(options, 0, "x", &refused),
                  "option");
    CHECK_REFUSED(oci_cache_options_set_string(options, 99, "x", &refused),
                  "option");
    CHECK_REFUSED(oci_cache_options_set_string(
                      options, OCI_CACHE_OPTION_MAX_CONCURRENT_LAYERS, "4",
                      &refused),
                  "option");
    CHECK_REFUSED(oci_cache_options_set_uint(options, 0, 1, &refused),
                  "option");
    CHECK_REFUSED(oci_cache_options_set_uint(options, UINT32_MAX, 1,
                                             &refused),
                  "option");
    CHECK_REFUSED(oci_cache_options_set_uint(options, OCI_CACHE_OPTION_PLATFORM,
                                             1, &refused),
                  "option");
    CHECK_REFUSED(oci_cache_options_set_uint(
                      options, OCI_CACHE_OPTION_INSECURE_REGISTRY, 1,
                      &refused),
                  "option");
    CHECK_REFUSED(oci_cache_options_set_string(
                      options, OCI_CACHE_OPTION_READ_TIMEOUT_MS, "1000",
                      &refused),
                  "option");

    harness_section("cache options: values out of range are refused");
    CHECK_REFUSED(oci_cache_options_set_string(options,
                                               OCI_CACHE_OPTION_PLATFORM,
                                               "linux", &refused),
                  "platform");
    CHECK_REFUSED(oci_cache_options_set_string(options,
                                               OCI_CACHE_OPTION_PLATFORM,
                                               "a/b/c/d", &refused),
                  "platform");
    CHECK_REFUSED(oci_cache_options_set_uint(
                      options, OCI_CACHE_OPTION_MAX_CONCURRENT_LAYERS, 0,
                      &refused),
                  "value");
    CHECK_REFUSED(oci_cache_options_set_uint(
                      options, OCI_CACHE_OPTION_MAX_CONCURRENT_LAYERS, 65,
                      &refused),
                  "value");
    CHECK_REFUSED(oci_cache_options_set_uint(
                      options, OCI_CACHE_OPTION_MAX_CONCURRENT_LAYERS,
                      UINT64_MAX, &refused),
                  "value");
    CHECK_REFUSED(oci_cache_options_set_uint(
                      options, OCI_CACHE_OPTION_READ_TIMEOUT_MS, 0, &refused),
                  "value");
    CHECK_REFUSED(oci_cache_options_set_uint(
                      options, OCI_CACHE_OPTION_READ_TIMEOUT_MS, UINT64_MAX,
                      &refused),
                  "value");

    CHECK_REFUSED(oci_cache_options_set_string(options, OCI_CACHE_OPTION_MIRROR,
                                               "https://mirror.test",
                                               &refused),
                  "REGISTRY=URL");
    CHECK_REFUSED(oci_cache_options_set_string(options, OCI_CACHE_OPTION_MIRROR,
                                               "registry.test=ftp://m.test",
                                               &refused),
                  "http");
    CHECK_REFUSED(oci_cache_options_set_uint(
                      options, OCI_CACHE_OPTION_DOCKER_CONFIG, 2, &refused),
                  "0 or 1");
    CHECK_REFUSED(oci_cache_options_set_uint(options, OCI_CACHE_OPTION_OFFLINE,
                                             7, &refused),
                  "0 or 1");

    harness_section("credentials: NULL and non-UTF-8 arguments are refused");
    CHECK_REFUSED(oci_cache_options_set_credentials(NULL, "r.test", "u", "p",
                                                    &refused),
                  "options");
    CHECK_REFUSED(oci_cache_options_set_credentials(options, NULL, "u", "p",
                                                    &refused),
                  "registry");
    CHECK_REFUSED(oci_cache_options_set_credentials(options, "r.test", NULL,
                                                    "p", &refused),
                  "username");
    CHECK_REFUSED(oci_cache_options_set_credentials(options, "r.test", "u",
                                                    NULL, &refused),
                  "password");
    CHECK_REFUSED(oci_cache_options_set_credentials(options, "r.test", "u",
                                                    "\xff", &refused),
                  "password");
    CHECK_REFUSED(oci_cache_options_set_registry_token(options, "r.test", NULL,
                                                       &refused),
                  "token");
    CHECK_REFUSED(oci_cache_options_set_registry_token(NULL, "r.test", "t",
                                                       &refused),
                  "options");

    harness_section("cache options: log levels outside 1..5 are refused");
    CHECK_REFUSED(oci_cache_options_set_log_callback(
                      options, fixture_log_callback, NULL, 0, &refused),
                  "level");
    CHECK_REFUSED(oci_cache_options_set_log_callback(
                      options, fixture_log_callback, NULL, 6, &refused),
                  "level");
    CHECK_REFUSED(oci_cache_options_set_log_callback(
                      options, fixture_log_callback, NULL, UINT32_MAX,
                      &refused),
                  "level");

    harness_section("cache options: valid values are accepted");
    CHECK_OK(oci_cache_options_set_credentials(options, "r.test", "u", "p",
                                               &error),
             &error);
    CHECK_OK(oci_cache_options_set_registry_token(options, "t.test", "tok",
                                                  &error),
             &error);
    CHECK_OK(oci_cache_options_set_string(
                 options, OCI_CACHE_OPTION_MIRROR,
                 "registry.test=http://127.0.0.1:1,digest-only", &error),
             &error);
    CHECK_OK(oci_cache_options_set_uint(options, OCI_CACHE_OPTION_DOCKER_CONFIG,
                                        0, &error),
             &error);
    CHECK_OK(oci_cache_options_set_string(options, OCI_CACHE_OPTION_PLATFORM,
                                          "linux/arm64/v8", &error),
             &error);
    CHECK_OK(oci_cache_options_set_string(options,
                                          OCI_CACHE_OPTION_INSECURE_REGISTRY,
                                          "registry.test:5000", &error),
             &error);
    CHECK_OK(oci_cache_options_set_string(options,
                                          OCI_CACHE_OPTION_INSECURE_REGISTRY,
                                          "other.test", &error),
             &error);
    CHECK_OK(oci_cache_options_set_uint(options,
                                        OCI_CACHE_OPTION_MAX_CONCURRENT_LAYERS,
                                        1, &error),
             &error);
    CHECK_OK(oci_cache_options_set_uint(options,
                                        OCI_CACHE_OPTION_MAX_CONCURRENT_LAYERS,
                                        64, &error),
             &error);
    CHECK_OK(oci_cache_options_set_uint(options,
                                        OCI_CACHE_OPTION_READ_TIMEOUT_MS, 1,
                                        &error),
             &error);
    CHECK_OK(oci_cache_options_set_uint(options,
                                        OCI_CACHE_OPTION_READ_TIMEOUT_MS,
                                        60000, &error),
             &error);
    for (level = OCI_CACHE_LOG_LEVEL_ERROR; level <= OCI_CACHE_LOG_LEVEL_TRACE;
         level++)
        CHECK_OK(oci_cache_options_set_log_callback(
                     options, fixture_log_callback, NULL, level, &error),
                 &error);
    CHECK_OK(oci_cache_options_set_log_callback(options, NULL, NULL,
                                                OCI_CACHE_LOG_LEVEL_INFO,
                                                &error),
             &error);
    CHECK_CODE(OCI_CACHE_RESULT_OK,
               oci_cache_options_set_uint(
                   options, OCI_CACHE_OPTION_MAX_CONCURRENT_LAYERS, 2, NULL));

    oci_cache_options_free(options);
}

static void fetch_options(void)
{
    oci_cache_fetch_options *options = oci_cache_fetch_options_new();
    oci_cache_cancel *cancel = oci_cache_cancel_new();
    oci_cache_error *error = NULL;

    harness_section("fetch options: NULL options are refused");
    CHECK(options != NULL);
    CHECK(cancel != NULL);
    CHECK_REFUSED(oci_cache_fetch_options_set_string(
                      NULL, OCI_CACHE_OPTION_PLATFORM, "linux/amd64",
                      &refused),
                  "options");
    CHECK_REFUSED(oci_cache_fetch_options_set_cancel(NULL, cancel,
                                                     &refused),
                  "options");
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT,
               oci_cache_fetch_options_set_string(
                   NULL, OCI_CACHE_OPTION_PLATFORM, "linux/amd64", NULL));
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT,
               oci_cache_fetch_options_set_cancel(NULL, NULL, NULL));

    harness_section("fetch options: bad UTF-8, unknown and misdirected codes");
    CHECK_REFUSED(oci_cache_fetch_options_set_string(
                      options, OCI_CACHE_OPTION_PLATFORM, BAD_UTF8,
                      &refused),
                  "UTF-8");
    CHECK_REFUSED(oci_cache_fetch_options_set_string(options, 0, "x",
                                                     &refused),
                  "option");
    CHECK_REFUSED(oci_cache_fetch_options_set_string(options, 77, "x",
                                                     &refused),
                  "option");
    CHECK_REFUSED(oci_cache_fetch_options_set_string(
                      options, OCI_CACHE_OPTION_INSECURE_REGISTRY,
                      "registry.test", &refused),
                  "option");
    CHECK_REFUSED(oci_cache_fetch_options_set_string(
                      options, OCI_CACHE_OPTION_MAX_CONCURRENT_LAYERS, "2",
                      &refused),
                  "option");
    CHECK_REFUSED(oci_cache_fetch_options_set_string(
                      options, OCI_CACHE_OPTION_READ_TIMEOUT_MS, "2",
                      &refused),
                  "option");
    CHECK_REFUSED(oci_cache_fetch_options_set_string(
                      options, OCI_CACHE_OPTION_PLATFORM, "no-slash",
                      &refused),
                  "platform");

    harness_section("fetch options: the merged switch is 0 or 1, per fetch only");
    CHECK_REFUSED(oci_cache_fetch_options_set_uint(NULL, OCI_CACHE_OPTION_MERGED,
                                                   1, &refused),
                  "options");
    CHECK_REFUSED(oci_cache_fetch_options_set_uint(options, OCI_CACHE_OPTION_MERGED,
                                                   2, &refused),
                  "0 or 1");
    CHECK_REFUSED(oci_cache_fetch_options_set_uint(
                      options, OCI_CACHE_OPTION_MAX_CONCURRENT_LAYERS, 1,
                      &refused),
                  "per-fetch");
    CHECK_OK(oci_cache_fetch_options_set_uint(options, OCI_CACHE_OPTION_MERGED,
                                              1, &error),
             &error);
    CHECK_OK(oci_cache_fetch_options_set_uint(options, OCI_CACHE_OPTION_MERGED,
                                              0, &error),
             &error);

    harness_section("fetch options: progress callback, NULL options refused");
    CHECK_REFUSED(oci_cache_fetch_options_set_progress(NULL, NULL, NULL, &refused),
                  "options");
    CHECK_OK(oci_cache_fetch_options_set_progress(options, NULL, NULL, &error),
             &error);

    harness_section("fetch options: a platform, a cancel token, and removal");
    CHECK_OK(oci_cache_fetch_options_set_string(
                 options, OCI_CACHE_OPTION_PLATFORM, "linux/amd64", &error),
             &error);
    /* The implementation documents NULL as "back to the handle's platform"
     * in its Rust source only; the header does not say it. */
    CHECK_OK(oci_cache_fetch_options_set_string(
                 options, OCI_CACHE_OPTION_PLATFORM, NULL, &error),
             &error);
    CHECK_OK(oci_cache_fetch_options_set_cancel(options, cancel, &error),
             &error);
    CHECK_OK(oci_cache_fetch_options_set_cancel(options, NULL, &error),
             &error);

    harness_section("cancel tokens: triggering twice is allowed");
    oci_cache_cancel_trigger(cancel);
    oci_cache_cancel_trigger(cancel);
    CHECK(1);

    oci_cache_cancel_free(cancel);
    oci_cache_fetch_options_free(options);
}

static void open_refusals(void)
{
    char *base = fixture_temp_dir("api-open");
    char dir[1024];
    struct stat info;
    oci_cache *cache = NULL;
    oci_cache_error *error = NULL;
    oci_cache_options *options = oci_cache_options_new();

    snprintf(dir, sizeof dir, "%s/cache", base);

    harness_section("open: NULL dir, NULL cache_out and bad UTF-8 are refused");
    CHECK_REFUSED(oci_cache_open(NULL, options, &cache, &refused), "dir");
    CHECK(cache == NULL);
    CHECK_REFUSED(oci_cache_open(dir, options, NULL, &refused),
                  "cache_out");
    CHECK_MSG(stat(dir, &info) != 0, "a refused open created %s", dir);
    CHECK_REFUSED(oci_cache_open(BAD_UTF8_DIR, options, &cache, &refused),
                  "UTF-8");
    CHECK(cache == NULL);
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT,
               oci_cache_open(NULL, NULL, &cache, NULL));
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT,
               oci_cache_open(NULL, NULL, NULL, NULL));

    harness_section("open: NULL options mean the defaults; the dir is made");
    error = (oci_cache_error *)(void *)&info; /* must be overwritten */
    CHECK_OK(oci_cache_open(dir, NULL, &cache, &error), &error);
    CHECK(cache != NULL);
    CHECK(stat(dir, &info) == 0 && S_ISDIR(info.st_mode));
    oci_cache_close(cache);

    oci_cache_options_free(options);
    fixture_remove_tree(base);
}

static void fetch_and_status_refusals(void)
{
    char *dir = fixture_temp_dir("api-fetch");
    oci_cache *cache = NULL;
    oci_cache_image *image = NULL;
    oci_cache_report *status = NULL;
    oci_cache_error *error = NULL;
    const char *reference = "127.0.0.1:9/steps/none:1.0.0";

    CHECK_OK(oci_cache_open(dir, NULL, &cache, &error), &error);

    harness_section("fetch: NULL cache, reference, image_out are refused");
    CHECK_REFUSED(oci_cache_fetch(NULL, reference, NULL, &image, &refused),
                  "cache");
    CHECK_REFUSED(oci_cache_fetch(cache, NULL, NULL, &image, &refused),
                  "reference");
    CHECK_REFUSED(oci_cache_fetch(cache, reference, NULL, NULL, &refused),
                  "image_out");
    CHECK_REFUSED(oci_cache_fetch(cache, BAD_UTF8_REFERENCE, NULL, &image,
                                  &refused),
                  "UTF-8");
    CHECK(image == NULL);
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT,
               oci_cache_fetch(NULL, NULL, NULL, NULL, NULL));
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT,
               oci_cache_fetch(cache, NULL, NULL, &image, NULL));

    harness_section("fetch: a malformed reference is INVALID_REFERENCE");
    CHECK_RESULT(OCI_CACHE_RESULT_INVALID_REFERENCE,
                 oci_cache_fetch(cache, "Not A Reference!", NULL, &image,
                                 &error),
                 &error);
    CHECK_RESULT(OCI_CACHE_RESULT_INVALID_REFERENCE,
                 oci_cache_fetch(cache, "", NULL, &image, &error), &error);
    CHECK(image == NULL);

    harness_section("status: NULL cache, status_out and bad UTF-8 are refused");
    CHECK_REFUSED(oci_cache_status(NULL, reference, &status, &refused),
                  "cache");
    CHECK_REFUSED(oci_cache_status(cache, reference, NULL, &refused),
                  "status_out");
    CHECK_REFUSED(oci_cache_status(cache, BAD_UTF8_REFERENCE, &status,
                                   &refused),
                  "UTF-8");
    CHECK(status == NULL);
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT,
               oci_cache_status(NULL, NULL, NULL, NULL));
    CHECK_RESULT(OCI_CACHE_RESULT_INVALID_REFERENCE,
                 oci_cache_status(cache, "Not A Reference!", &status, &error),
                 &error);

    harness_section("status: an unknown reference is not cached, offline");
    CHECK_OK(oci_cache_status(cache, reference, &status, &error), &error);
    CHECK(status != NULL && !oci_cache_report_is_cached(status));
    CHECK(status != NULL &&
          strstr(oci_cache_report_json(status), "\"cached\":false") != NULL);
    oci_cache_report_free(status);

    harness_section("status: the whole cache (NULL reference) of an empty cache");
    CHECK_OK(oci_cache_status(cache, NULL, &status, &error), &error);
    CHECK(status != NULL && !oci_cache_report_is_cached(status));
    CHECK(status != NULL &&
          strstr(oci_cache_report_json(status), "\"layers\":0") != NULL);
    CHECK(status != NULL &&
          strstr(oci_cache_report_json(status), "\"images\":0") != NULL);
    CHECK(status != NULL &&
          strstr(oci_cache_report_json(status), "\"session\":{") != NULL);
    oci_cache_report_free(status);

    harness_section("prune: refusals, and a prune of an empty cache");
    CHECK_REFUSED(oci_cache_prune(NULL, 0, 0, true, &status, &refused), "cache");
    CHECK_REFUSED(oci_cache_prune(cache, 0, 0, true, NULL, &refused),
                  "report_out");
    CHECK_REFUSED(oci_cache_prune(cache, 0, 0, false, &status, &refused),
                  "nothing to prune");
    CHECK(status == NULL);
    CHECK_OK(oci_cache_prune(cache, 1, 3600, false, &status, &error), &error);
    CHECK(status != NULL &&
          strstr(oci_cache_report_json(status), "\"removed_layers\":0") != NULL);
    oci_cache_report_free(status);

    oci_cache_close(cache);
    fixture_remove_tree(dir);
}

int main(void)
{
    versions();
    result_names();
    null_objects();
    cache_options();
    fetch_options();
    open_refusals();
    fetch_and_status_refusals();
    return harness_summary();
}
