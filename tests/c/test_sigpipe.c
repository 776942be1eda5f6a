/*
 * SIGPIPE must not kill a C host. This program keeps SIGPIPE's default
 * disposition (it checks that it is SIG_DFL and unblocked) and fetches from
 * hostile registries written here, one per misbehaviour, each listening on
 * 127.0.0.1:0 on threads of its own. They answer /v2/ and manifests like a
 * registry (a valid OCI manifest of one 50 MiB layer) but reset connections
 * (SO_LINGER {1,0}, then close) so that the library's reads and writes meet
 * a reset peer:
 *   - a blob response: headers and 16 KiB, then RST;
 *   - a new connection: RST before reading anything;
 *   - a new connection: FIN, then RST, before reading anything;
 *   - a request read, then RST without an answer;
 *   - a manifest answered on a keep-alive connection, then FIN and RST, so
 *     that the next request goes to a connection the peer has reset.
 * Every fetch must fail with NETWORK or INTEGRITY, and the process must live
 * to print its summary. Then, since a write meets the reset only in a race,
 * the FIN-and-RST server is used until a library thread holds a blocked
 * SIGPIPE: proof that SIGPIPE was raised and that the library's blocking is
 * what kept this process alive. The servers' own writes use MSG_NOSIGNAL:
 * a SIGPIPE here can only come from the library.
 */

#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "fixture.h"
#include "harness.h"
#include "oci_cache.h"

/* Fetches made at once from each server (5 servers: 20 fetches). The
 * library retries failed requests after pauses: in parallel, they overlap. */
#define FETCHES_PER_SERVER 4
/* How long to keep trying to make a library write meet EPIPE. */
#define PROVOKING_SECONDS 120.0
/* Connections served on threads, per server; more are closed at once. */
#define MAX_CONNECTIONS 1024
#define PARTIAL_BLOB_BYTES (16 * 1024)
#define BLOB_SIZE "52428800"
/* sha256 of 52428800 zero bytes: the layer is 50 MiB of zeros. */
#define BLOB_DIGEST \
    "sha256:8565a714dca840f8652c5bae9249ab05f5fb5a4f9f13fbe23304b10f68252da2"
/* sha256 of "{}", the OCI empty config. */
#define EMPTY_CONFIG_DIGEST \
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
#define REPOSITORY "hostile/step"
#define MANIFESTS_PATH "/v2/" REPOSITORY "/manifests/"
#define BLOBS_PATH "/v2/" REPOSITORY "/blobs/"

static const char MANIFEST[] =
    "{\"schemaVersion\":2,"
    "\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\","
    "\"digest\":\"" EMPTY_CONFIG_DIGEST "\",\"size\":2},"
    "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
    "\"digest\":\"" BLOB_DIGEST "\",\"size\":" BLOB_SIZE "}]}";

/* How a server breaks the fetches sent to it. */
enum misbehaviour {
    RESET_BLOB_MIDWAY,
    RESET_ON_ACCEPT,
    FIN_AND_RESET_ON_ACCEPT,
    RESET_ON_REQUEST,
    FIN_AND_RESET_AFTER_MANIFEST,
    MISBEHAVIOURS
};

static const char *const MISBEHAVIOUR_NAMES[MISBEHAVIOURS] = {
    "blob reset midway",
    "reset on accept",
    "FIN and reset on accept",
    "reset on request",
    "keep-alive FIN and reset after the manifest",
};

/* How a connection ends. */
enum ending {
    GRACEFUL,
    /* SO_LINGER {1,0}: the peer gets an RST. */
    RESET,
    /* A FIN first, then the RST: the peer's socket, in CLOSE_WAIT, records
     * EPIPE instead of ECONNRESET, so its next write raises SIGPIPE. */
    FIN_THEN_RESET,
};

struct hostile_server;

struct connection {
    struct hostile_server *server;
    pthread_t thread;
    int fd; /* -1 once closed; changed under the server's lock */
};

struct hostile_server {
    enum misbehaviour misbehaviour;
    int listener;
    char host[32]; /* 127.0.0.1:PORT */
    pthread_t acceptor;
    pthread_mutex_t lock;
    long delay_us; /* before ending a connection on accept */
    struct connection connections[MAX_CONNECTIONS];
    size_t connection_count;
    unsigned long accepted;
    unsigned long resets;
};

static struct hostile_server servers[MISBEHAVIOURS];

/* End `fd` as `ending` asks; the caller holds the server's lock. */
static void end_connection(struct hostile_server *server, int fd,
                           enum ending ending)
{
    struct linger abort_on_close = {1, 0};

    if (ending == FIN_THEN_RESET)
        shutdown(fd, SHUT_WR);
    if (ending != GRACEFUL) {
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close,
                   sizeof abort_on_close);
        server->resets++;
    }
    close(fd);
}

static void close_connection(struct connection *connection, enum ending ending)
{
    struct hostile_server *server = connection->server;

    pthread_mutex_lock(&server->lock);
    end_connection(server, connection->fd, ending);
    connection->fd = -1;
    pthread_mutex_unlock(&server->lock);
}

/* Send all of `data`; never raises SIGPIPE. False once the peer is gone. */
static int send_all(int fd, const void *data, size_t size)
{
    const char *cursor = data;

    while (size > 0) {
        ssize_t sent = send(fd, cursor, size, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0)
            return 0;
        cursor += sent;
        size -= (size_t)sent;
    }
    return 1;
}

/* Read one request head into `head`; false on EOF, error or overflow. */
static int read_request(int fd, char *head, size_t size)
{
    size_t length = 0;

    while (length + 1 < size) {
        ssize_t got = recv(fd, head + length, size - 1 - length, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return 0;
        length += (size_t)got;
        head[length] = '\0';
        if (strstr(head, "\r\n\r\n") != NULL)
            return 1;
    }
    return 0;
}

static int respond(int fd, const char *status, const char *content_type,
                   const char *body, int with_body)
{
    char headers[512];
    int length;

    length = snprintf(headers, sizeof headers,
                      "HTTP/1.1 %s\r\n"
                      "Content-Type: %s\r\n"
                      "Content-Length: %zu\r\n"
                      "Docker-Distribution-API-Version: registry/2.0\r\n"
                      "\r\n",
                      status, content_type, strlen(body));
    return send_all(fd, headers, (size_t)length) &&
           (!with_body || send_all(fd, body, strlen(body)));
}

/* The start of the 50 MiB blob, then an RST. */
static void send_partial_blob(struct connection *connection)
{
    static const char headers[] = "HTTP/1.1 200 OK\r\n"
                                  "Content-Type: application/octet-stream\r\n"
                                  "Content-Length: " BLOB_SIZE "\r\n"
                                  "Docker-Content-Digest: " BLOB_DIGEST "\r\n"
                                  "\r\n";
    static const char zeros[PARTIAL_BLOB_BYTES];

    if (send_all(connection->fd, headers, sizeof headers - 1))
        send_all(connection->fd, zeros, sizeof zeros);
    close_connection(connection, RESET);
}

/* Serve requests like a registry, until the misbehaviour's moment. */
static void *serve_connection(void *argument)
{
    struct connection *connection = argument;
    enum misbehaviour misbehaviour = connection->server->misbehaviour;
    char head[8192];
    char method[16];
    char path[1024];

    while (read_request(connection->fd, head, sizeof head)) {
        int with_body;

        if (misbehaviour == RESET_ON_REQUEST) {
            close_connection(connection, RESET);
            return NULL;
        }
        if (sscanf(head, "%15s %1023s", method, path) != 2)
            break;
        with_body = strcmp(method, "HEAD") != 0;

        if (strcmp(path, "/v2/") == 0) {
            if (!respond(connection->fd, "200 OK", "application/json", "{}",
                         with_body))
                break;
        } else if (strncmp(path, MANIFESTS_PATH, strlen(MANIFESTS_PATH)) ==
                   0) {
            if (!respond(connection->fd, "200 OK",
                         "application/vnd.oci.image.manifest.v1+json",
                         MANIFEST, with_body))
                break;
            if (misbehaviour == FIN_AND_RESET_AFTER_MANIFEST) {
                close_connection(connection, FIN_THEN_RESET);
                return NULL;
            }
        } else if (strncmp(path, BLOBS_PATH, strlen(BLOBS_PATH)) == 0) {
            send_partial_blob(connection);
            return NULL;
        } else if (!respond(connection->fd, "404 Not Found",
                            "application/json", "{\"errors\":[]}",
                            with_body)) {
            break;
        }
    }
    close_connection(connection, GRACEFUL);
    return NULL;
}

/* Servers that misbehave on accept do it here; others get a thread per
 * connection. */
static void *accept_connections(void *argument)
{
    struct hostile_server *server = argument;
    struct timeval patience = {30, 0};

    for (;;) {
        struct connection *connection;
        int fd = accept(server->listener, NULL, NULL);
        long delay_us;

        if (fd < 0 && errno == EINTR)
            continue;
        if (fd < 0)
            break; /* the listener was shut down */

        pthread_mutex_lock(&server->lock);
        server->accepted++;
        delay_us = server->delay_us;
        pthread_mutex_unlock(&server->lock);

        if (server->misbehaviour == RESET_ON_ACCEPT ||
            server->misbehaviour == FIN_AND_RESET_ON_ACCEPT) {
            if (delay_us > 0)
                fixture_sleep((double)delay_us / 1e6);
            pthread_mutex_lock(&server->lock);
            end_connection(server, fd,
                           server->misbehaviour == RESET_ON_ACCEPT
                               ? RESET
                               : FIN_THEN_RESET);
            pthread_mutex_unlock(&server->lock);
            continue;
        }

        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
        pthread_mutex_lock(&server->lock);
        if (server->connection_count == MAX_CONNECTIONS) {
            end_connection(server, fd, GRACEFUL);
            pthread_mutex_unlock(&server->lock);
            continue;
        }
        connection = &server->connections[server->connection_count];
        connection->server = server;
        connection->fd = fd;
        if (pthread_create(&connection->thread, NULL, serve_connection,
                           connection) == 0)
            server->connection_count++;
        else
            end_connection(server, fd, GRACEFUL);
        pthread_mutex_unlock(&server->lock);
    }
    return NULL;
}

static int server_start(struct hostile_server *server,
                        enum misbehaviour misbehaviour)
{
    struct sockaddr_in address;
    socklen_t length = sizeof address;

    server->misbehaviour = misbehaviour;
    pthread_mutex_init(&server->lock, NULL);
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    server->listener = socket(AF_INET, SOCK_STREAM, 0);
    if (!CHECK(server->listener >= 0) ||
        !CHECK(bind(server->listener, (struct sockaddr *)&address,
                    sizeof address) == 0) ||
        !CHECK(listen(server->listener, 64) == 0) ||
        !CHECK(getsockname(server->listener, (struct sockaddr *)&address,
                           &length) == 0))
        return 0;
    snprintf(server->host, sizeof server->host, "127.0.0.1:%u",
             (unsigned)ntohs(address.sin_port));
    return CHECK(pthread_create(&server->acceptor, NULL, accept_connections,
                                server) == 0);
}

static void server_stop(struct hostile_server *server)
{
    size_t i;
    size_t count;

    shutdown(server->listener, SHUT_RDWR);
    pthread_join(server->acceptor, NULL);
    close(server->listener);

    /* Wake the threads still waiting on idle keep-alive connections. */
    pthread_mutex_lock(&server->lock);
    count = server->connection_count;
    for (i = 0; i < count; i++)
        if (server->connections[i].fd >= 0)
            shutdown(server->connections[i].fd, SHUT_RDWR);
    pthread_mutex_unlock(&server->lock);

    for (i = 0; i < count; i++)
        pthread_join(server->connections[i].thread, NULL);
    pthread_mutex_destroy(&server->lock);
}

/* How many of this process's threads hold a pending SIGPIPE. Blocked, it is
 * never delivered: only the library's threads block it. */
static int threads_with_pending_sigpipe(void)
{
    DIR *tasks = opendir("/proc/self/task");
    struct dirent *task;
    int count = 0;

    if (tasks == NULL)
        return -1;
    while ((task = readdir(tasks)) != NULL) {
        char path[300];
        char line[256];
        FILE *status;

        if (task->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/status", task->d_name);
        status = fopen(path, "r");
        if (status == NULL)
            continue;
        while (fgets(line, sizeof line, status) != NULL) {
            unsigned long long pending;
            if (sscanf(line, "SigPnd: %llx", &pending) == 1 &&
                (pending & (1ull << (SIGPIPE - 1))) != 0)
                count++;
        }
        fclose(status);
    }
    closedir(tasks);
    return count;
}

/* SIGPIPE is SIG_DFL for the process and not blocked on this thread. */
static int sigpipe_is_default(void)
{
    struct sigaction action;
    sigset_t mask;

    if (sigaction(SIGPIPE, NULL, &action) != 0 ||
        pthread_sigmask(SIG_BLOCK, NULL, &mask) != 0)
        return 0;
    return action.sa_handler == SIG_DFL && !sigismember(&mask, SIGPIPE);
}

/* One fetch from a hostile server, on a thread of its own. */
struct hostile_fetch {
    pthread_t thread;
    int started; /* the thread runs; else the fetch ran inline */
    const oci_cache *cache;
    const struct hostile_server *server;
    char reference[128];
    uint32_t result;
    int image_returned;
    char message[512];
    double seconds;
};

static void *run_hostile_fetch(void *argument)
{
    struct hostile_fetch *fetch = argument;
    oci_cache_image *image = NULL;
    oci_cache_error *error = NULL;
    double started = harness_now();

    fetch->result =
        oci_cache_fetch(fetch->cache, fetch->reference, NULL, &image, &error);
    fetch->seconds = harness_now() - started;
    fetch->image_returned = image != NULL;
    snprintf(fetch->message, sizeof fetch->message, "%s",
             error ? oci_cache_error_message(error) : "(no error)");

    oci_cache_error_free(error);
    oci_cache_image_free(image);
    return NULL;
}

/* NETWORK or INTEGRITY, and no image: the only acceptable ends. */
static int failed_cleanly(const struct hostile_fetch *fetch)
{
    return (fetch->result == OCI_CACHE_RESULT_NETWORK ||
            fetch->result == OCI_CACHE_RESULT_INTEGRITY) &&
           !fetch->image_returned;
}

/* Run `count` fetches at once, each from its server, of a tag never asked
 * before: the manifest is requested every time. */
static void fetch_all(struct hostile_fetch *fetches, size_t count)
{
    static unsigned next_tag;
    size_t i;

    for (i = 0; i < count; i++) {
        snprintf(fetches[i].reference, sizeof fetches[i].reference,
                 "%s/" REPOSITORY ":1.0.%u", fetches[i].server->host,
                 next_tag++);
        fetches[i].started = pthread_create(&fetches[i].thread, NULL,
                                            run_hostile_fetch,
                                            &fetches[i]) == 0;
        if (!fetches[i].started) {
            /* Counted only when it fails: the number of checks stays fixed. */
            CHECK_MSG(0, "no thread for %s", fetches[i].reference);
            run_hostile_fetch(&fetches[i]);
        }
    }
    for (i = 0; i < count; i++)
        if (fetches[i].started)
            pthread_join(fetches[i].thread, NULL);
}

static void every_misbehaviour_fails_cleanly(const oci_cache *cache)
{
    struct hostile_fetch fetches[MISBEHAVIOURS * FETCHES_PER_SERVER];
    const size_t count = sizeof fetches / sizeof fetches[0];
    double started = harness_now();
    size_t i;

    harness_section("every misbehaviour: each fetch fails cleanly");
    memset(fetches, 0, sizeof fetches);
    for (i = 0; i < count; i++) {
        fetches[i].cache = cache;
        fetches[i].server = &servers[i % MISBEHAVIOURS];
    }
    fetch_all(fetches, count);

    for (i = 0; i < count; i++) {
        const char *name = MISBEHAVIOUR_NAMES[fetches[i].server->misbehaviour];

        CHECK_MSG(failed_cleanly(&fetches[i]), "%s (%s): %s: %s",
                  fetches[i].reference, name,
                  oci_cache_result_name(fetches[i].result),
                  fetches[i].message);
        if (i < MISBEHAVIOURS)
            harness_note("%s: %s after %.2f s: %s", name,
                         oci_cache_result_name(fetches[i].result),
                         fetches[i].seconds, fetches[i].message);
    }
    harness_note("%zu fetches in %.2f s", count, harness_now() - started);
}

/* A request write meets EPIPE only if it lands after the FIN and RST
 * arrived but before the runtime noticed them: a race of microseconds.
 * Repeat until a library thread holds a SIGPIPE, sweeping the delay. */
static void until_a_library_write_meets_epipe(const oci_cache *cache)
{
    struct hostile_server *server = &servers[FIN_AND_RESET_ON_ACCEPT];
    struct hostile_fetch fetches[FETCHES_PER_SERVER];
    double started = harness_now();
    int pending = threads_with_pending_sigpipe();
    int tries = 0;
    int unclean = 0;
    int i;

    harness_section("FIN and reset on accept until a library write got EPIPE");
    while (pending == 0 && harness_now() - started < PROVOKING_SECONDS) {
        pthread_mutex_lock(&server->lock);
        server->delay_us = (tries / FETCHES_PER_SERVER % 3) * 10;
        pthread_mutex_unlock(&server->lock);

        memset(fetches, 0, sizeof fetches);
        for (i = 0; i < FETCHES_PER_SERVER; i++) {
            fetches[i].cache = cache;
            fetches[i].server = server;
        }
        fetch_all(fetches, FETCHES_PER_SERVER);

        for (i = 0; i < FETCHES_PER_SERVER; i++, tries++)
            if (!failed_cleanly(&fetches[i]) && unclean++ == 0)
                CHECK_MSG(0, "%s: %s: %s", fetches[i].reference,
                          oci_cache_result_name(fetches[i].result),
                          fetches[i].message);
        pending = threads_with_pending_sigpipe();
    }
    CHECK_MSG(unclean == 0, "%d of %d fetches did not fail cleanly", unclean,
              tries);
    CHECK_MSG(pending > 0,
              "no library thread holds a blocked SIGPIPE after %d more "
              "fetches: the scenario never raised SIGPIPE, it proved nothing",
              tries);
    harness_note("%d library thread(s) hold a blocked SIGPIPE, after %d more "
                 "fetch(es) in %.2f s",
                 pending, tries, harness_now() - started);
}

int main(void)
{
    char *dir;
    oci_cache_options *options;
    oci_cache *cache = NULL;
    oci_cache_error *error = NULL;
    int misbehaviour;

    harness_section("SIGPIPE has its default disposition and is not blocked");
    if (!CHECK(sigpipe_is_default()))
        return harness_summary();

    options = oci_cache_options_new();
    for (misbehaviour = 0; misbehaviour < MISBEHAVIOURS; misbehaviour++) {
        struct hostile_server *server = &servers[misbehaviour];

        if (!server_start(server, (enum misbehaviour)misbehaviour))
            return harness_summary();
        CHECK_OK(oci_cache_options_set_string(
                     options, OCI_CACHE_OPTION_INSECURE_REGISTRY, server->host,
                     &error),
                 &error);
    }
    dir = fixture_temp_dir("sigpipe");
    CHECK_OK(oci_cache_open(dir, options, &cache, &error), &error);
    oci_cache_options_free(options);
    if (cache == NULL)
        return harness_summary();

    every_misbehaviour_fails_cleanly(cache);
    until_a_library_write_meets_epipe(cache);

    harness_section("the host's SIGPIPE disposition was left alone");
    CHECK(sigpipe_is_default());

    oci_cache_close(cache);
    for (misbehaviour = 0; misbehaviour < MISBEHAVIOURS; misbehaviour++) {
        struct hostile_server *server = &servers[misbehaviour];

        server_stop(server);
        CHECK_MSG(server->resets > 0, "%s: no connection was reset",
                  MISBEHAVIOUR_NAMES[misbehaviour]);
        harness_note("%s: %lu connections, %lu resets",
                     MISBEHAVIOUR_NAMES[misbehaviour], server->accepted,
                     server->resets);
    }
    fixture_remove_tree(dir);
    return harness_summary();
}
