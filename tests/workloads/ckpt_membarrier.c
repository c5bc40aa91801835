/* Checkpoint workload for membarrier(2) registrations (Memory/Membarrier.cs). Registers
 * MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED and, where the kernel has them, _SYNC_CORE and _RSEQ
 * (global expedited too), runs a second thread (so the barriers have someone to interrupt), prints
 * READY and "REGISTERED 0x<MEMBARRIER_CMD_GET_REGISTRATIONS>", waits for SIGUSR1, then checks that
 * the same registrations are reported and that each registered private expedited barrier works
 * (without its registration it fails with EPERM). Prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "workload.h"

#ifndef MEMBARRIER_CMD_GET_REGISTRATIONS
#define MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9)
#endif

static long membarrier(int command, unsigned flags) { return syscall(SYS_membarrier, command, flags, 0); }

static void *spin(void *unused)
{
    (void)unused;
    for (;;) pause();
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    long supported = membarrier(MEMBARRIER_CMD_QUERY, 0);
    if (supported < 0 || !(supported & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED)) return fail("no private expedited membarrier");
    if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) != 0) return fail("register private expedited");
    const int optional[] = { MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ,
                             MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED };
    for (unsigned i = 0; i < sizeof optional / sizeof optional[0]; i++)
        if ((supported & optional[i]) && membarrier(optional[i], 0) != 0) return fail("register an optional command");
    long registered = membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS, 0);
    if (registered <= 0) return fail("MEMBARRIER_CMD_GET_REGISTRATIONS");
    pthread_t thread;
    if (pthread_create(&thread, NULL, spin, NULL) != 0) return fail("pthread_create");

    printf("READY %d\n", getpid());
    printf("REGISTERED 0x%lx\n", registered);
    while (!got_usr1) pause();

    long after = membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS, 0);
    if (after != registered) { printf("registrations 0x%lx, were 0x%lx\n", after, registered); return fail("registrations changed"); }
    if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) != 0) return fail("private expedited barrier");
    if ((registered & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0) != 0)
        return fail("private expedited sync-core barrier");
    if ((registered & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ) && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, 0) != 0)
        return fail("private expedited rseq barrier");
    printf("PASS\n");
    return 0;
}
