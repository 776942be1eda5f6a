/*
 * The control of test_sigpipe, without the library: a process that keeps
 * SIGPIPE's default disposition writes to a socket whose peer reset it.
 * run.sh expects it to die of SIGPIPE (status 141). If it survives, this
 * machine does not raise SIGPIPE in that scenario and test_sigpipe proves
 * nothing.
 */

#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WRITES 100

int main(void)
{
    struct sockaddr_in address;
    socklen_t length = sizeof address;
    struct linger abort_on_close = {1, 0};
    struct timespec delay = {0, 50 * 1000 * 1000};
    int listener, client, peer, i;

    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    listener = socket(AF_INET, SOCK_STREAM, 0);
    client = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0 || client < 0 ||
        bind(listener, (struct sockaddr *)&address, sizeof address) != 0 ||
        listen(listener, 1) != 0 ||
        getsockname(listener, (struct sockaddr *)&address, &length) != 0 ||
        connect(client, (struct sockaddr *)&address, sizeof address) != 0 ||
        (peer = accept(listener, NULL, NULL)) < 0) {
        perror("setting up a loopback connection");
        return 2;
    }

    /* The peer resets the connection, as the hostile registry does. */
    setsockopt(peer, SOL_SOCKET, SO_LINGER, &abort_on_close,
               sizeof abort_on_close);
    close(peer);
    nanosleep(&delay, NULL);

    for (i = 0; i < WRITES; i++) {
        if (write(client, "x", 1) < 0)
            continue;
    }
    printf("survived %d writes to a reset socket\n", WRITES);
    return 0;
}
