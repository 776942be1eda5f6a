/*
 * The second control of test_sigpipe, loaded with LD_PRELOAD: it takes
 * SIGPIPE out of every set that a thread asks pthread_sigmask to block,
 * undoing the library's protection of its runtime threads. run.sh expects
 * test_sigpipe to die of SIGPIPE under it; if it survived, test_sigpipe
 * could not tell a protected library from an unprotected one.
 */

#define _GNU_SOURCE

#include <dlfcn.h>
#include <signal.h>
#include <stddef.h>

typedef int (*sigmask_function)(int, const sigset_t *, sigset_t *);

static sigmask_function next_sigmask;

__attribute__((constructor)) static void find_next_sigmask(void)
{
    *(void **)&next_sigmask = dlsym(RTLD_NEXT, "pthread_sigmask");
}

int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    sigset_t without_sigpipe;

    if (set != NULL && how == SIG_BLOCK) {
        without_sigpipe = *set;
        sigdelset(&without_sigpipe, SIGPIPE);
        set = &without_sigpipe;
    }
    return next_sigmask(how, set, old);
}
