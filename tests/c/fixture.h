/*
 * Shared setup of the C test programs: the registry and sample images that
 * run.sh prepared (passed in the environment), scratch directories, caches
 * opened for the plain-HTTP test registry, and a log callback that tallies
 * the events it receives.
 */

#ifndef OCI_CACHE_TEST_FIXTURE_H
#define OCI_CACHE_TEST_FIXTURE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "oci_cache.h"

/* The registry's host:port (OCI_CACHE_TEST_REGISTRY); exits if unset. */
const char *fixture_registry(void);

/* A sample image that run.sh pushed, described by testbed's JSON line. */
struct fixture_image {
    char repository[256];     /* "127.0.0.1:PORT/c/sample" */
    char manifest_digest[80]; /* the host platform's manifest */
    const char *json;         /* the whole line, for layer look-ups */
};

/* Read the image described in environment variable `variable`; exits if
 * it is unset or malformed. */
void fixture_image(const char *variable, struct fixture_image *image);

/* "repository:tag" of `image` into `out`. */
void fixture_reference(char *out, size_t size,
                       const struct fixture_image *image, const char *tag);

/* True when the push listed a layer with this digest and size. */
int fixture_image_has_layer(const struct fixture_image *image,
                            const char *digest, uint64_t size);

/* The digest of the push's layer `index` into `out`; false if missing. */
int fixture_image_layer_digest(const struct fixture_image *image, size_t index,
                               char *out, size_t size);

/* A new empty directory (caller frees the path; remove the tree with
 * fixture_remove_tree). Under OCI_CACHE_TEST_TMP, else TMPDIR, else /tmp. */
char *fixture_temp_dir(const char *label);

/* Remove `path` and everything under it, then free it. NULL is ignored. */
void fixture_remove_tree(char *path);

/* Cache options that reach the test registry over plain HTTP. */
oci_cache_options *fixture_options(void);

/* Open a cache at `dir` with fixture_options(); NULL (and a failed check)
 * if that fails. The options are freed before it returns. */
oci_cache *fixture_open(const char *dir);

struct log_tally;

/* The same, with fixture_log_callback at DEBUG counting into `tally`. */
oci_cache *fixture_open_logged(const char *dir, struct log_tally *tally);

/* Tallies log events. Pass as userdata with fixture_log_callback. */
struct log_tally {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    unsigned long events;
    unsigned long by_level[6]; /* index: oci_cache_log_level */
    unsigned long malformed;   /* bad level, NULL string, fields not {...} */
    const char *watch_message; /* count events with this message ... */
    const char *watch_fields;  /* ... whose fields contain this (or NULL) */
    unsigned long watch_hits;
};

void log_tally_init(struct log_tally *tally, const char *watch_message,
                    const char *watch_fields);
void log_tally_destroy(struct log_tally *tally);

/* Wait up to `seconds` for a watched event; true if one arrived. */
int log_tally_wait(struct log_tally *tally, double seconds);

/* A snapshot of one counter, read under the tally's lock. */
unsigned long log_tally_read(struct log_tally *tally,
                             const unsigned long *counter);

void fixture_log_callback(void *userdata, uint32_t level, const char *target,
                          const char *message, const char *fields);

/* Sleep for `seconds`. */
void fixture_sleep(double seconds);

#endif /* OCI_CACHE_TEST_FIXTURE_H */
