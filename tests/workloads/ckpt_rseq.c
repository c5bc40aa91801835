/* Checkpoint workload: spins inside an rseq critical section (on glibc's own rseq registration),
 * so a checkpoint almost always stops it there and must record the abort ip instead of the ip.
 * Prints "RSEQ start end abort" and READY, waits for SIGUSR1, prints PASS (it checks that the
 * critical section was entered and aborted at least once: the kernel moves it on every preemption). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/rseq.h>
#include <unistd.h>
#include "workload.h"

extern char cs_start[], cs_end[], cs_abort[];
void spin_in_critical_section(struct rseq *area, struct rseq_cs *cs);

/* rdi = glibc's rseq area, rsi = descriptor: arm it, spin until the kernel aborts us, return. */
__asm__(
    ".text\n"
    ".globl spin_in_critical_section, cs_start, cs_end, cs_abort\n"
    "spin_in_critical_section:\n"
    "    mov %rsi, 8(%rdi)\n"
    "cs_start:\n"
    "    pause\n"
    "    jmp cs_start\n"
    "cs_end:\n"
    "    .long 0x53053053\n" /* RSEQ_SIG, required right before the abort handler */
    "cs_abort:\n"
    "    ret\n");

static struct rseq_cs descriptor __attribute__((aligned(32)));

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (__rseq_size == 0) { printf("FAIL glibc did not register rseq\n"); return 1; }
    struct rseq *area = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
    descriptor.start_ip = (uintptr_t)cs_start;
    descriptor.post_commit_offset = (uintptr_t)cs_end - (uintptr_t)cs_start;
    descriptor.abort_ip = (uintptr_t)cs_abort;
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    printf("RSEQ %p %p %p\n", (void *)cs_start, (void *)cs_end, (void *)cs_abort);
    printf("READY %d\n", getpid());
    long aborts = 0;
    while (!got_usr1) { spin_in_critical_section(area, &descriptor); aborts++; }
    printf(aborts > 0 ? "PASS\n" : "FAIL no abort\n");
    return 0;
}
