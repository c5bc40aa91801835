/* Checkpoint workload for refusals and sizes (DESIGN.md "Tests"). Usage: ckpt_modes MODE
 *   pipe     holds a pipe open (fd 3, 4): an unsupported descriptor kind
 *   thread   runs a second thread
 *   child    has a child process
 *   seccomp  runs under a seccomp filter (one that allows everything)
 *   reserve  reserves 64 GiB of address space and writes 1 MiB of it
 * Prints READY, waits for SIGUSR1, checks it still has its state, prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }
/* Blocks every signal so SIGUSR1 always reaches the main thread. */
static void *idle_thread(void *arg)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) pause();
    return arg;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: %s pipe|thread|child|seccomp|reserve\n", argv[0]); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    const char *mode = argv[1];
    int fds[2] = { -1, -1 };
    pid_t child = -1;
    uint8_t *reserve = NULL;
    const size_t reserve_size = 64ull << 30, used = 1 << 20;

    if (!strcmp(mode, "pipe")) {
        if (pipe(fds) != 0) { printf("FAIL pipe\n"); return 1; }
    } else if (!strcmp(mode, "thread")) {
        pthread_t t;
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old); /* the thread starts with everything blocked */
        pthread_create(&t, NULL, idle_thread, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    } else if (!strcmp(mode, "child")) {
        child = fork();
        if (child == 0) { for (;;) pause(); }
    } else if (!strcmp(mode, "seccomp")) {
        struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        struct sock_fprog prog = { .len = 1, .filter = &allow };
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) { printf("FAIL seccomp\n"); return 1; }
    } else if (!strcmp(mode, "reserve")) {
        reserve = mmap(NULL, reserve_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (reserve == MAP_FAILED) { printf("FAIL mmap\n"); return 1; }
        for (size_t i = 0; i < used; i++) reserve[(reserve_size / 2) + i] = (uint8_t)(i * 7 + 1);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }

    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    if (fds[0] >= 0 && (write(fds[1], "x", 1) != 1)) { printf("FAIL pipe write\n"); return 1; }
    if (reserve) {
        for (size_t i = 0; i < used; i++)
            if (reserve[(reserve_size / 2) + i] != (uint8_t)(i * 7 + 1)) { printf("FAIL reserve contents\n"); return 1; }
    }
    if (child > 0) { kill(child, SIGKILL); waitpid(child, NULL, 0); }
    printf("PASS\n");
    return 0;
}
