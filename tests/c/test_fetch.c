/*
 * Fetching the sample step image from the real registry through the C ABI:
 * a cold fetch downloads every layer (MISS), a warm one sends no request
 * (HIT), a mutable tag asks once (MUTABLE); every accessor of the image and
 * of its layers, the JSON forms, the status of a reference and of the cache,
 * the log callback's DEBUG events, and one handle shared by several threads.
 */

#define _POSIX_C_SOURCE 200809L

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "fixture.h"
#include "harness.h"
#include "oci_cache.h"

#define SAMPLE_LAYERS 2
#define CONCURRENT_FETCHES 4
/* For check_sample: HIT or MISS, whichever thread happened to download. */
#define HIT_OR_MISS UINT32_MAX

static const char *const SAMPLE_MEDIA_TYPES[SAMPLE_LAYERS] = {
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.gitlab.step.layer.v1.tar+zstd",
};

/* What testbed push-sample writes into its scripts (message "hello"). */
static const char SAMPLE_SCRIPT[] = "#!/bin/sh\necho 'hello'\n";

static struct fixture_image sample;

/* The platform the library should choose on this host, if known. */
static const char *host_platform(void)
{
    struct utsname host;

    if (uname(&host) != 0)
        return NULL;
    if (strcmp(host.machine, "x86_64") == 0)
        return "linux/amd64";
    if (strcmp(host.machine, "aarch64") == 0)
        return "linux/arm64/v8";
    return NULL;
}

static int contains(const char *text, const char *part)
{
    return text != NULL && part != NULL && strstr(text, part) != NULL;
}

/* `dir/name` is a regular file with `mode` and, if given, `contents`. */
static void check_file(const char *dir, const char *name, mode_t mode,
                       const char *contents)
{
    char path[PATH_MAX];
    char buffer[256];
    struct stat info;
    FILE *file;
    size_t length;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!CHECK_MSG(lstat(path, &info) == 0 && S_ISREG(info.st_mode),
                   "%s is not a regular file", path))
        return;
    CHECK_MSG((info.st_mode & 07777) == mode, "%s has mode %o, expected %o",
              path, (unsigned)(info.st_mode & 07777), (unsigned)mode);
    if (contents == NULL)
        return;

    file = fopen(path, "rb");
    if (!CHECK_MSG(file != NULL, "cannot open %s", path))
        return;
    length = fread(buffer, 1, sizeof buffer - 1, file);
    buffer[length] = '\0';
    fclose(file);
    CHECK_MSG(strcmp(buffer, contents) == 0, "%s holds \"%s\"", path, buffer);
}

/* `dir/name` is a symlink to `target`. */
static void check_symlink(const char *dir, const char *name, const char *target)
{
    char path[PATH_MAX];
    char link[PATH_MAX];
    ssize_t length;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    length = readlink(path, link, sizeof link - 1);
    if (!CHECK_MSG(length >= 0, "%s is not a symlink", path))
        return;
    link[length] = '\0';
    CHECK_STR(link, target);
}

static int outcome_is(uint32_t actual, uint32_t expected)
{
    if (expected == HIT_OR_MISS)
        return actual == OCI_CACHE_OUTCOME_HIT ||
               actual == OCI_CACHE_OUTCOME_MISS;
    return actual == expected;
}

/* Everything the accessors say of a fetch of the sample under `tag`. */
static void check_sample(const oci_cache_image *image, const char *cache_dir,
                         const char *tag, uint32_t image_outcome,
                         uint32_t layer_outcome)
{
    char reference[512];
    const char *platform = host_platform();
    const char *json = oci_cache_image_json(image);
    size_t i;

    fixture_reference(reference, sizeof reference, &sample, tag);
    CHECK_STR(oci_cache_image_reference(image), reference);
    CHECK_STR(oci_cache_image_manifest_digest(image), sample.manifest_digest);
    if (platform != NULL)
        CHECK_STR(oci_cache_image_platform(image), platform);
    else
        CHECK(contains(oci_cache_image_platform(image), "linux/"));
    CHECK_MSG(outcome_is(oci_cache_image_cache_outcome(image), image_outcome),
              "image outcome is %u, expected %u",
              (unsigned)oci_cache_image_cache_outcome(image),
              (unsigned)image_outcome);
    if (!CHECK(oci_cache_image_layer_count(image) == SAMPLE_LAYERS))
        return;

    for (i = 0; i < SAMPLE_LAYERS; i++) {
        const char *digest = oci_cache_image_layer_digest(image, i);
        const char *path = oci_cache_image_layer_path(image, i);
        uint64_t size = oci_cache_image_layer_size(image, i);
        struct stat info;

        CHECK_MSG(fixture_image_has_layer(&sample, digest, size),
                  "layer %zu (%s, %llu bytes) is not a layer of the push",
                  i, digest ? digest : "(null)", (unsigned long long)size);
        CHECK_STR(oci_cache_image_layer_media_type(image, i),
                  SAMPLE_MEDIA_TYPES[i]);
        CHECK_MSG(outcome_is(oci_cache_image_layer_cache_outcome(image, i),
                             layer_outcome),
                  "layer %zu outcome is %u, expected %u", i,
                  (unsigned)oci_cache_image_layer_cache_outcome(image, i),
                  (unsigned)layer_outcome);
        CHECK_MSG(path != NULL && path[0] == '/' &&
                      strncmp(path, cache_dir, strlen(cache_dir)) == 0,
                  "layer %zu path %s is not inside %s", i,
                  path ? path : "(null)", cache_dir);
        CHECK_MSG(path != NULL && stat(path, &info) == 0 &&
                      S_ISDIR(info.st_mode),
                  "layer %zu path %s is not a directory", i,
                  path ? path : "(null)");
        CHECK_MSG(contains(json, digest), "the image JSON lacks %s", digest);
        CHECK_MSG(contains(json, path), "the image JSON lacks %s", path);
    }

    check_file(oci_cache_image_layer_path(image, 0), "bin/greet", 0555,
               SAMPLE_SCRIPT);
    check_symlink(oci_cache_image_layer_path(image, 0), "bin/hello", "greet");
    check_file(oci_cache_image_layer_path(image, 1), "run.sh", 0555,
               SAMPLE_SCRIPT);
    check_file(oci_cache_image_layer_path(image, 1), "step.yml", 0444, NULL);

    CHECK(json != NULL && json[0] == '{' && json[strlen(json) - 1] == '}');
    CHECK(contains(json, sample.manifest_digest));
    CHECK(contains(json, reference));
}

static oci_cache_image *fetch(const oci_cache *cache, const char *tag,
                              const oci_cache_fetch_options *options)
{
    char reference[512];
    oci_cache_image *image = NULL;
    oci_cache_error *error = NULL;

    fixture_reference(reference, sizeof reference, &sample, tag);
    CHECK_OK(oci_cache_fetch(cache, reference, options, &image, &error),
             &error);
    CHECK(image != NULL);
    return image;
}

static void layer_indexes_out_of_range(const oci_cache_image *image)
{
    size_t indexes[] = {SAMPLE_LAYERS, SAMPLE_LAYERS + 1, SIZE_MAX};
    size_t i;

    harness_section("layer accessors past the last layer: NULL, 0, INVALID");
    for (i = 0; i < sizeof indexes / sizeof indexes[0]; i++) {
        CHECK(oci_cache_image_layer_digest(image, indexes[i]) == NULL);
        CHECK(oci_cache_image_layer_media_type(image, indexes[i]) == NULL);
        CHECK(oci_cache_image_layer_size(image, indexes[i]) == 0);
        CHECK(oci_cache_image_layer_path(image, indexes[i]) == NULL);
        CHECK(oci_cache_image_layer_cache_outcome(image, indexes[i]) ==
              OCI_CACHE_OUTCOME_INVALID);
    }
}

static void status_of_reference(const oci_cache *cache,
                                const oci_cache_image *image)
{
    char reference[512];
    oci_cache_report *status = NULL;
    oci_cache_error *error = NULL;
    const char *json;
    size_t i;

    harness_section("status of a fetched reference: cached, with its layers");
    fixture_reference(reference, sizeof reference, &sample, "1.0.0");
    CHECK_OK(oci_cache_status(cache, reference, &status, &error), &error);
    if (!CHECK(status != NULL))
        return;
    json = oci_cache_report_json(status);
    CHECK(oci_cache_report_is_cached(status));
    CHECK_MSG(contains(json, "\"cached\":true"), "status JSON: %s", json);
    CHECK_MSG(contains(json, sample.manifest_digest), "status JSON: %s", json);
    CHECK_MSG(contains(json, "\"present\":true"), "status JSON: %s", json);
    CHECK_MSG(!contains(json, "\"present\":false"), "status JSON: %s", json);
    for (i = 0; i < SAMPLE_LAYERS; i++)
        CHECK(contains(json, oci_cache_image_layer_path(image, i)));
    oci_cache_report_free(status);

    harness_section("status of a tag never fetched: not cached");
    fixture_reference(reference, sizeof reference, &sample, "9.9.9");
    CHECK_OK(oci_cache_status(cache, reference, &status, &error), &error);
    CHECK(status != NULL && !oci_cache_report_is_cached(status));
    CHECK(status != NULL &&
          contains(oci_cache_report_json(status), "\"cached\":false"));
    oci_cache_report_free(status);
}

static void status_of_cache(const oci_cache *cache, const char *dir)
{
    oci_cache_report *status = NULL;
    oci_cache_error *error = NULL;
    const char *json;
    char dir_field[1100];

    harness_section("status of the whole cache: dir, size, layers, images");
    CHECK_OK(oci_cache_status(cache, NULL, &status, &error), &error);
    if (!CHECK(status != NULL))
        return;
    json = oci_cache_report_json(status);
    snprintf(dir_field, sizeof dir_field, "\"dir\":\"%s\"", dir);
    CHECK(!oci_cache_report_is_cached(status));
    CHECK_MSG(contains(json, dir_field), "status JSON: %s", json);
    CHECK_MSG(contains(json, "\"disabled\":false"), "status JSON: %s", json);
    CHECK_MSG(contains(json, "\"layers\":2"), "status JSON: %s", json);
    /* 1.0.0 and latest name one image (one manifest digest). */
    CHECK_MSG(contains(json, "\"images\":1"), "status JSON: %s", json);
    CHECK_MSG(contains(json, "\"total\":{\"hits\":"), "status JSON: %s", json);
    CHECK_MSG(contains(json, "\"size_bytes\":") &&
                  !contains(json, "\"size_bytes\":0,") &&
                  !contains(json, "\"size_bytes\":0}"),
              "status JSON: %s", json);
    oci_cache_report_free(status);
}

static void errors_from_the_registry(const oci_cache *cache)
{
    char reference[512];
    oci_cache_image *image = NULL;
    oci_cache_error *error = NULL;

    harness_section("a repository the registry does not have: NOT_FOUND");
    snprintf(reference, sizeof reference, "%s/c/missing:1.0.0",
             fixture_registry());
    CHECK_RESULT(OCI_CACHE_RESULT_NOT_FOUND,
                 oci_cache_fetch(cache, reference, NULL, &image, &error),
                 &error);
    CHECK(image == NULL);

    harness_section("a tag the registry does not have: NOT_FOUND");
    fixture_reference(reference, sizeof reference, &sample, "0.0.404");
    CHECK_RESULT(OCI_CACHE_RESULT_NOT_FOUND,
                 oci_cache_fetch(cache, reference, NULL, &image, &error),
                 &error);
    CHECK(image == NULL);
}

/* One fetch made by a thread of its own. */
struct concurrent_fetch {
    pthread_t thread;
    const oci_cache *cache;
    const char *reference;
    uint32_t result;
    oci_cache_image *image;
};

static void *run_fetch(void *argument)
{
    struct concurrent_fetch *fetch = argument;
    oci_cache_error *error = NULL;

    fetch->result = oci_cache_fetch(fetch->cache, fetch->reference, NULL,
                                    &fetch->image, &error);
    if (error != NULL)
        harness_note("concurrent fetch: %s", oci_cache_error_message(error));
    oci_cache_error_free(error);
    return NULL;
}

static void one_handle_many_threads(void)
{
    char *dir = fixture_temp_dir("fetch-threads");
    oci_cache *cache = fixture_open(dir);
    struct concurrent_fetch fetches[CONCURRENT_FETCHES];
    char reference[512];
    size_t i;

    harness_section("one handle, four threads fetching the same image cold");
    fixture_reference(reference, sizeof reference, &sample, "1.0.0");
    for (i = 0; i < CONCURRENT_FETCHES; i++) {
        fetches[i].cache = cache;
        fetches[i].reference = reference;
        fetches[i].image = NULL;
        CHECK(pthread_create(&fetches[i].thread, NULL, run_fetch,
                             &fetches[i]) == 0);
    }
    for (i = 0; i < CONCURRENT_FETCHES; i++) {
        pthread_join(fetches[i].thread, NULL);
        CHECK_CODE(OCI_CACHE_RESULT_OK, fetches[i].result);
        if (fetches[i].image != NULL)
            check_sample(fetches[i].image, dir, "1.0.0", HIT_OR_MISS,
                         HIT_OR_MISS);
        CHECK_STR(oci_cache_image_layer_path(fetches[i].image, 1),
                  oci_cache_image_layer_path(fetches[0].image, 1));
    }
    for (i = 0; i < CONCURRENT_FETCHES; i++)
        oci_cache_image_free(fetches[i].image);

    oci_cache_close(cache);
    fixture_remove_tree(dir);
}

/* What the progress callback saw. */
struct progress_seen {
    pthread_mutex_t lock;
    int calls;
    int complete;    /* calls with done == total */
    int overshoots;  /* calls with done > total */
};

static void record_progress(void *userdata, const char *digest, uint64_t done,
                            uint64_t total)
{
    struct progress_seen *seen = userdata;
    pthread_mutex_lock(&seen->lock);
    seen->calls += digest != NULL && strncmp(digest, "sha256:", 7) == 0;
    seen->complete += done == total;
    seen->overshoots += done > total;
    pthread_mutex_unlock(&seen->lock);
}

static void progress_and_merged(void)
{
    char *dir = fixture_temp_dir("fetch-progress");
    oci_cache *cache = fixture_open(dir);
    oci_cache_fetch_options *options = oci_cache_fetch_options_new();
    oci_cache_error *error = NULL;
    oci_cache_image *image;
    struct progress_seen seen = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};

    harness_section("progress: every layer reported, ending complete");
    CHECK_OK(oci_cache_fetch_options_set_progress(options, record_progress,
                                                  &seen, &error),
             &error);
    CHECK_OK(oci_cache_fetch_options_set_uint(options, OCI_CACHE_OPTION_MERGED,
                                              1, &error),
             &error);
    image = fetch(cache, "1.0.0", options);
    CHECK_MSG(seen.calls >= SAMPLE_LAYERS, "%d progress calls", seen.calls);
    CHECK_MSG(seen.complete >= SAMPLE_LAYERS, "%d complete", seen.complete);
    CHECK(seen.overshoots == 0);

    harness_section("merged: a directory with the layers applied in order");
    if (image != NULL) {
        const char *merged = oci_cache_image_merged_path(image);
        CHECK(merged != NULL && contains(merged, dir));
        if (merged != NULL) {
            check_file(merged, "run.sh", 0555, SAMPLE_SCRIPT);
            check_symlink(merged, "bin/hello", "greet");
        }
    }
    oci_cache_image_free(image);

    oci_cache_fetch_options_free(options);
    oci_cache_close(cache);
    fixture_remove_tree(dir);
}

static void resolve(const oci_cache *cache)
{
    oci_cache_report *report = NULL;
    oci_cache_error *error = NULL;
    char reference[512];
    char pinned[600];

    harness_section("resolve: a tag to its digest, as a pinned line");
    fixture_reference(reference, sizeof reference, &sample, "latest");
    snprintf(pinned, sizeof pinned, "\"pinned\":\"%s@sha256:", reference);
    CHECK_OK(oci_cache_resolve(cache, reference, &report, &error), &error);
    if (report != NULL) {
        const char *json = oci_cache_report_json(report);
        CHECK_MSG(contains(json, pinned), "resolve JSON: %s", json);
        CHECK_MSG(contains(json, "\"digest\":\"sha256:"), "resolve JSON: %s", json);
    }
    oci_cache_report_free(report);
    report = NULL;

    harness_section("resolve: an unknown tag is NOT_FOUND, NULLs are refused");
    fixture_reference(reference, sizeof reference, &sample, "9.9.9");
    CHECK_RESULT(OCI_CACHE_RESULT_NOT_FOUND,
                 oci_cache_resolve(cache, reference, &report, &error), &error);
    CHECK(report == NULL);
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT,
               oci_cache_resolve(cache, NULL, &report, NULL));
    CHECK_CODE(OCI_CACHE_RESULT_INVALID_ARGUMENT,
               oci_cache_resolve(NULL, reference, &report, NULL));
}

static void defaults_and_platform_option(void)
{
    char *dir = fixture_temp_dir("fetch-defaults");
    oci_cache *cache = fixture_open(dir);
    oci_cache_fetch_options *options = oci_cache_fetch_options_new();
    oci_cache_error *error = NULL;
    oci_cache_image *image;
    const char *platform = host_platform();

    harness_section("fetch with NULL options on another cache: a new MISS");
    image = fetch(cache, "1.0.0", NULL);
    if (image != NULL)
        check_sample(image, dir, "1.0.0", OCI_CACHE_OUTCOME_MISS,
                     OCI_CACHE_OUTCOME_MISS);
    oci_cache_image_free(image);

    if (platform != NULL) {
        harness_section("fetch options naming the host platform: a HIT");
        CHECK_OK(oci_cache_fetch_options_set_string(
                     options, OCI_CACHE_OPTION_PLATFORM, platform, &error),
                 &error);
        image = fetch(cache, "1.0.0", options);
        if (image != NULL)
            check_sample(image, dir, "1.0.0", OCI_CACHE_OUTCOME_HIT,
                         OCI_CACHE_OUTCOME_HIT);
        oci_cache_image_free(image);
    }

    oci_cache_fetch_options_free(options);
    oci_cache_close(cache);
    fixture_remove_tree(dir);
}

int main(void)
{
    char *dir;
    oci_cache *cache;
    oci_cache_image *cold;
    oci_cache_image *warm;
    oci_cache_image *mutable_tag;
    struct log_tally tally;
    size_t i;

    fixture_image("OCI_CACHE_TEST_SAMPLE", &sample);
    dir = fixture_temp_dir("fetch");
    log_tally_init(&tally, "layer cache", NULL);
    cache = fixture_open_logged(dir, &tally);
    if (cache == NULL)
        return harness_summary();

    harness_section("cold fetch: every layer downloaded, outcome MISS");
    cold = fetch(cache, "1.0.0", NULL);
    if (cold != NULL)
        check_sample(cold, dir, "1.0.0", OCI_CACHE_OUTCOME_MISS,
                     OCI_CACHE_OUTCOME_MISS);

    harness_section("the log callback received DEBUG events, \"layer cache\"");
    CHECK(log_tally_read(&tally, &tally.by_level[OCI_CACHE_LOG_LEVEL_DEBUG]) >
          0);
    CHECK(log_tally_read(&tally, &tally.by_level[OCI_CACHE_LOG_LEVEL_INFO]) >
          0);
    CHECK(log_tally_read(&tally, &tally.watch_hits) >= SAMPLE_LAYERS);
    CHECK(log_tally_read(&tally, &tally.by_level[OCI_CACHE_LOG_LEVEL_TRACE]) ==
          0);
    CHECK(log_tally_read(&tally, &tally.malformed) == 0);
    harness_note("%lu log events, %lu at DEBUG",
                 log_tally_read(&tally, &tally.events),
                 log_tally_read(&tally,
                                &tally.by_level[OCI_CACHE_LOG_LEVEL_DEBUG]));

    harness_section("warm fetch: outcome HIT, same layers, same paths");
    warm = fetch(cache, "1.0.0", NULL);
    if (warm != NULL)
        check_sample(warm, dir, "1.0.0", OCI_CACHE_OUTCOME_HIT,
                     OCI_CACHE_OUTCOME_HIT);
    for (i = 0; cold != NULL && warm != NULL && i < SAMPLE_LAYERS; i++)
        CHECK_STR(oci_cache_image_layer_path(warm, i),
                  oci_cache_image_layer_path(cold, i));

    harness_section("a mutable tag: outcome MUTABLE, cached layers reused");
    mutable_tag = fetch(cache, "latest", NULL);
    if (mutable_tag != NULL)
        check_sample(mutable_tag, dir, "latest", OCI_CACHE_OUTCOME_MUTABLE,
                     OCI_CACHE_OUTCOME_HIT);

    if (warm != NULL) {
        layer_indexes_out_of_range(warm);
        status_of_reference(cache, warm);
    }
    status_of_cache(cache, dir);
    errors_from_the_registry(cache);
    resolve(cache);

    oci_cache_image_free(mutable_tag);
    oci_cache_image_free(warm);
    oci_cache_image_free(cold);
    oci_cache_close(cache);
    fixture_remove_tree(dir);

    defaults_and_platform_option();
    progress_and_merged();
    one_handle_many_threads();
    log_tally_destroy(&tally);
    return harness_summary();
}
