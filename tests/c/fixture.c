#define _XOPEN_SOURCE 700

#include "fixture.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

/* A missing or broken environment is a failed check, then the summary. */
static void give_up(const char *format, const char *detail)
{
    CHECK_MSG(0, format, detail);
    exit(harness_summary());
}

const char *fixture_registry(void)
{
    const char *host = getenv("OCI_CACHE_TEST_REGISTRY");

    if (host == NULL || host[0] == '\0')
        give_up("%s is not set: run tests/c/run.sh", "OCI_CACHE_TEST_REGISTRY");
    return host;
}

/* Copy the string value of "key" in a flat JSON line into `out`. */
static int json_string(const char *json, const char *key, char *out,
                       size_t size)
{
    char pattern[64];
    const char *start;
    const char *end;

    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    start = strstr(json, pattern);
    if (start == NULL)
        return 0;
    start += strlen(pattern);
    end = strchr(start, '"');
    if (end == NULL || (size_t)(end - start) >= size)
        return 0;
    memcpy(out, start, (size_t)(end - start));
    out[end - start] = '\0';
    return 1;
}

void fixture_image(const char *variable, struct fixture_image *image)
{
    image->json = getenv(variable);
    if (image->json == NULL || image->json[0] == '\0')
        give_up("%s is not set: run tests/c/run.sh", variable);
    if (!json_string(image->json, "repository", image->repository,
                     sizeof image->repository) ||
        !json_string(image->json, "manifest_digest", image->manifest_digest,
                     sizeof image->manifest_digest))
        give_up("%s is not the JSON line of testbed push-sample", variable);
}

void fixture_reference(char *out, size_t size,
                       const struct fixture_image *image, const char *tag)
{
    snprintf(out, size, "%s:%s", image->repository, tag);
}

int fixture_image_has_layer(const struct fixture_image *image,
                            const char *digest, uint64_t size)
{
    char expected[160];

    if (digest == NULL)
        return 0;
    snprintf(expected, sizeof expected, "{\"digest\":\"%s\",\"size\":%" PRIu64 "}",
             digest, size);
    return strstr(image->json, expected) != NULL;
}

int fixture_image_layer_digest(const struct fixture_image *image, size_t index,
                               char *out, size_t size)
{
    const char *layers = strstr(image->json, "\"layers\":[");
    const char *end = layers ? strchr(layers, ']') : NULL;
    const char *cursor = layers;
    size_t i;

    if (layers == NULL || end == NULL)
        return 0;
    for (i = 0; i <= index; i++) {
        cursor = strstr(cursor + 1, "\"digest\":\"");
        if (cursor == NULL || cursor > end)
            return 0;
    }
    return json_string(cursor, "digest", out, size);
}

char *fixture_temp_dir(const char *label)
{
    const char *base = getenv("OCI_CACHE_TEST_TMP");
    char *path;
    size_t size;

    if (base == NULL || base[0] == '\0')
        base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";

    size = strlen(base) + strlen(label) + 16;
    path = malloc(size);
    if (path == NULL)
        give_up("%s", "out of memory");
    snprintf(path, size, "%s/%s.XXXXXX", base, label);
    if (mkdtemp(path) == NULL)
        give_up("mkdtemp failed: %s", strerror(errno));
    return path;
}

static int remove_entry(const char *path, const struct stat *info, int kind,
                        struct FTW *walk)
{
    (void)info;
    (void)kind;
    (void)walk;
    if (remove(path) != 0)
        harness_note("removing %s: %s", path, strerror(errno));
    return 0;
}

void fixture_remove_tree(char *path)
{
    if (path == NULL)
        return;
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(path);
}

oci_cache_options *fixture_options(void)
{
    oci_cache_options *options = oci_cache_options_new();
    oci_cache_error *error = NULL;

    CHECK(options != NULL);
    CHECK_OK(oci_cache_options_set_string(options,
                                          OCI_CACHE_OPTION_INSECURE_REGISTRY,
                                          fixture_registry(), &error),
             &error);
    return options;
}

static oci_cache *open_cache(const char *dir, struct log_tally *tally)
{
    oci_cache_options *options = fixture_options();
    oci_cache *cache = NULL;
    oci_cache_error *error = NULL;

    if (tally != NULL)
        CHECK_OK(oci_cache_options_set_log_callback(
                     options, fixture_log_callback, tally,
                     OCI_CACHE_LOG_LEVEL_DEBUG, &error),
                 &error);
    CHECK_OK(oci_cache_open(dir, options, &cache, &error), &error);
    oci_cache_options_free(options);
    return cache;
}

oci_cache *fixture_open(const char *dir)
{
    return open_cache(dir, NULL);
}

oci_cache *fixture_open_logged(const char *dir, struct log_tally *tally)
{
    return open_cache(dir, tally);
}

void log_tally_init(struct log_tally *tally, const char *watch_message,
                    const char *watch_fields)
{
    memset(tally, 0, sizeof *tally);
    pthread_mutex_init(&tally->lock, NULL);
    pthread_cond_init(&tally->changed, NULL);
    tally->watch_message = watch_message;
    tally->watch_fields = watch_fields;
}

void log_tally_destroy(struct log_tally *tally)
{
    pthread_cond_destroy(&tally->changed);
    pthread_mutex_destroy(&tally->lock);
}

int log_tally_wait(struct log_tally *tally, double seconds)
{
    struct timespec deadline;
    int seen;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)seconds;
    deadline.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&tally->lock);
    while (tally->watch_hits == 0) {
        if (pthread_cond_timedwait(&tally->changed, &tally->lock, &deadline) != 0)
            break;
    }
    seen = tally->watch_hits > 0;
    pthread_mutex_unlock(&tally->lock);
    return seen;
}

unsigned long log_tally_read(struct log_tally *tally,
                             const unsigned long *counter)
{
    unsigned long value;

    pthread_mutex_lock(&tally->lock);
    value = *counter;
    pthread_mutex_unlock(&tally->lock);
    return value;
}

void fixture_log_callback(void *userdata, uint32_t level, const char *target,
                          const char *message, const char *fields)
{
    struct log_tally *tally = userdata;
    int well_formed = level >= OCI_CACHE_LOG_LEVEL_ERROR &&
                      level <= OCI_CACHE_LOG_LEVEL_TRACE && target != NULL &&
                      message != NULL && fields != NULL && fields[0] == '{' &&
                      fields[strlen(fields) - 1] == '}';

    pthread_mutex_lock(&tally->lock);
    tally->events++;
    if (!well_formed) {
        tally->malformed++;
    } else {
        tally->by_level[level]++;
        if (tally->watch_message != NULL &&
            strcmp(message, tally->watch_message) == 0 &&
            (tally->watch_fields == NULL ||
             strstr(fields, tally->watch_fields) != NULL)) {
            tally->watch_hits++;
            pthread_cond_broadcast(&tally->changed);
        }
    }
    pthread_mutex_unlock(&tally->lock);
}

void fixture_sleep(double seconds)
{
    struct timespec delay;

    delay.tv_sec = (time_t)seconds;
    delay.tv_nsec = (long)((seconds - (double)delay.tv_sec) * 1e9);
    while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
    }
}
