/* Checkpoint workload for the injected reads' batch routine (Linux/ProbeRoutine.cs), which stops at an
 * int3 and so runs only where SIGTRAP is left at SIG_DFL: "default" leaves SIGTRAP alone and "block"
 * blocks it in the main thread (the routine runs; the kernel unblocks SIGTRAP for its trap, the engine
 * puts the mask back), "catch" installs a handler with SA_RESTART and SIGUSR2 in its mask, "ignore" sets
 * SIG_IGN (both: the calls are injected one by one). A second thread waits too (its own batch). Prints
 * READY, waits for SIGUSR1, then checks SIGTRAP's disposition is as set (handler, flags, mask) and
 * blocked or not as set, and raises SIGTRAP where that is harmless: caught, the handler ran once;
 * ignored, nothing happened. Prints PASS or FAIL <what>. Usage: ckpt_sigtrap default|block|catch|ignore */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "workload.h"

static volatile sig_atomic_t traps;
static void on_trap(int sig) { (void)sig; traps++; }

static void *wait_forever(void *unused)
{
    (void)unused;
    for (;;) pause();
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2) return fail("usage: ckpt_sigtrap default|catch|ignore");
    int catching = strcmp(argv[1], "catch") == 0, ignoring = strcmp(argv[1], "ignore") == 0, blocking = strcmp(argv[1], "block") == 0;
    struct sigaction usr1 = { .sa_handler = on_usr1 };
    if (sigaction(SIGUSR1, &usr1, NULL) != 0) return fail("sigaction(SIGUSR1)");
    struct sigaction trap = { .sa_handler = catching ? on_trap : ignoring ? SIG_IGN : SIG_DFL, .sa_flags = catching ? SA_RESTART : 0 };
    sigemptyset(&trap.sa_mask);
    if (catching) sigaddset(&trap.sa_mask, SIGUSR2);
    if (sigaction(SIGTRAP, &trap, NULL) != 0) return fail("sigaction(SIGTRAP)");
    pthread_t thread;
    sigset_t only_trap;
    sigemptyset(&only_trap);
    sigaddset(&only_trap, SIGTRAP);
    if (pthread_create(&thread, NULL, wait_forever, NULL) != 0) return fail("pthread_create");

    if (blocking && pthread_sigmask(SIG_BLOCK, &only_trap, NULL) != 0) return fail("block SIGTRAP");
    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    struct sigaction now;
    if (sigaction(SIGTRAP, NULL, &now) != 0) return fail("sigaction(SIGTRAP) read");
    if (now.sa_handler != trap.sa_handler) return fail("SIGTRAP's handler changed");
    if ((now.sa_flags & SA_RESTART) != (trap.sa_flags & SA_RESTART)) return fail("SIGTRAP's SA_RESTART changed");
    if (sigismember(&now.sa_mask, SIGUSR2) != catching) return fail("SIGTRAP's mask changed");
    sigset_t blocked;
    if (pthread_sigmask(SIG_SETMASK, NULL, &blocked) != 0) return fail("pthread_sigmask");
    if (sigismember(&blocked, SIGTRAP) != blocking) return fail(blocking ? "SIGTRAP no longer blocked" : "SIGTRAP blocked");
    if (catching || ignoring) raise(SIGTRAP);
    if (traps != catching) { printf("FAIL SIGTRAP handler ran %d times\n", (int)traps); return 1; }
    printf("PASS\n");
    return 0;
}
