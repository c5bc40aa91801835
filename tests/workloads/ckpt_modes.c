/* Checkpoint workload for refusals and sizes (DESIGN.md "Tests"). Usage: ckpt_modes MODE
 *   terminal holds a pseudo-terminal master (fd 3, posix_openpt) whose slave nobody holds: refused (a pair is saved with both ends)
 *   pidfd    holds a pidfd of itself (fd 3): an unsupported anonymous-inode kind
 *   thread   runs a second thread
 *   unshared-thread  runs a second thread with its own descriptor table (unshare(CLONE_FILES))
 *   child    has a child process
 *   seccomp  runs under a seccomp filter (one that allows everything)
 *   reserve  reserves 64 GiB of address space and writes 1 MiB of it, twice: a writable
 *            reservation (transparent huge pages off for it: they would populate 2 MiB where
 *            1 MiB was written), and a PROT_NONE one with a 1 MiB read-write window
 *   cow FILE maps FILE (created with 16 known pages) privately, reads every page, changes
 *            pages 3 and 10 (copy-on-write); prints "COW <address>"; checks the other pages
 *            still read the file and the file itself is unchanged
 * Prints READY, waits for SIGUSR1, checks it still has its state, prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <sched.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "workload.h"

static volatile int thread_ready;
/* Blocks every signal so SIGUSR1 always reaches the main thread. */
static void *idle_thread(void *arg)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    if (arg != NULL && unshare(CLONE_FILES) != 0) { printf("FAIL unshare\n"); fflush(stdout); }
    thread_ready = 1;
    for (;;) pause();
    return arg;
}

#define COW_PAGES 16
static int cow_changed(int page) { return page == 3 || page == 10; }
static uint8_t cow_file_byte(int page) { return (uint8_t)('A' + page); }
static uint8_t cow_new_byte(int page) { return (uint8_t)(0x80 + page); }

static uint8_t *map_cow_file(const char *path)
{
    static uint8_t page[4096];
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { printf("FAIL create %s\n", path); return NULL; }
    for (int p = 0; p < COW_PAGES; p++) {
        memset(page, cow_file_byte(p), sizeof page);
        if (write(fd, page, sizeof page) != sizeof page) { printf("FAIL write %s\n", path); return NULL; }
    }
    uint8_t *map = mmap(NULL, COW_PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd); /* the mapping alone keeps the file: no descriptor in the image */
    if (map == MAP_FAILED) { printf("FAIL mmap %s\n", path); return NULL; }
    volatile uint8_t sum = 0;
    for (int p = 0; p < COW_PAGES; p++) sum += map[p * 4096]; /* file pages, present in the page table */
    for (int p = 0; p < COW_PAGES; p++)
        if (cow_changed(p)) memset(map + p * 4096, cow_new_byte(p), 4096);
    return map;
}

static int check_cow_file(const uint8_t *map, const char *path)
{
    static uint8_t page[4096];
    int fd = open(path, O_RDONLY);
    if (fd < 0) { printf("FAIL open %s\n", path); return 0; }
    for (int p = 0; p < COW_PAGES; p++) {
        uint8_t expected = cow_changed(p) ? cow_new_byte(p) : cow_file_byte(p);
        for (int b = 0; b < 4096; b++)
            if (map[p * 4096 + b] != expected) { printf("FAIL private file mapping page %d\n", p); return 0; }
        if (pread(fd, page, sizeof page, p * 4096) != sizeof page) { printf("FAIL read %s\n", path); return 0; }
        for (int b = 0; b < 4096; b++)
            if (page[b] != cow_file_byte(p)) { printf("FAIL file page %d was written\n", p); return 0; }
    }
    close(fd);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: %s terminal|pidfd|thread|unshared-thread|child|seccomp|reserve|cow FILE\n", argv[0]); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    const char *mode = argv[1];
    int fds[2] = { -1, -1 };
    pid_t child = -1;
    uint8_t *reserve = NULL, *none = NULL, *cow = NULL;
    const size_t reserve_size = 64ull << 30, used = 1 << 20;
    const char *cow_path = argc > 2 ? argv[2] : NULL;

    if (!strcmp(mode, "terminal")) {
        if (posix_openpt(O_RDWR | O_NOCTTY) != 3) { printf("FAIL posix_openpt\n"); return 1; }
    } else if (!strcmp(mode, "pidfd")) {
        if (syscall(SYS_pidfd_open, getpid(), 0) != 3) { printf("FAIL pidfd_open\n"); return 1; }
    } else if (!strcmp(mode, "thread") || !strcmp(mode, "unshared-thread")) {
        pthread_t t;
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old); /* the thread starts with everything blocked */
        pthread_create(&t, NULL, idle_thread, strcmp(mode, "thread") ? (void *)1 : NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        while (!thread_ready) usleep(1000);
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
        madvise(reserve, reserve_size, MADV_NOHUGEPAGE);
        for (size_t i = 0; i < used; i++) reserve[(reserve_size / 2) + i] = (uint8_t)(i * 7 + 1);
        none = mmap(NULL, reserve_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (none == MAP_FAILED || mprotect(none + reserve_size / 2, used, PROT_READ | PROT_WRITE) != 0) { printf("FAIL PROT_NONE reservation\n"); return 1; }
        for (size_t i = 0; i < used; i++) none[(reserve_size / 2) + i] = (uint8_t)(i * 5 + 3);
    } else if (!strcmp(mode, "cow") && cow_path) {
        cow = map_cow_file(cow_path);
        if (!cow) return 1;
        printf("COW %p\n", (void *)cow);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }

    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    if (fds[0] >= 0 && (write(fds[1], "x", 1) != 1)) { printf("FAIL socket write\n"); return 1; }
    if (reserve) {
        for (size_t i = 0; i < used; i++)
            if (reserve[(reserve_size / 2) + i] != (uint8_t)(i * 7 + 1)) { printf("FAIL reserve contents\n"); return 1; }
        for (size_t i = 0; i < used; i++)
            if (none[(reserve_size / 2) + i] != (uint8_t)(i * 5 + 3)) { printf("FAIL PROT_NONE window contents\n"); return 1; }
    }
    if (cow && !check_cow_file(cow, cow_path)) return 1;
    if (child > 0) { kill(child, SIGKILL); waitpid(child, NULL, 0); }
    printf("PASS\n");
    return 0;
}
