/* Checkpoint workload (DESIGN.md "Tests"): sets up heap, anonymous, file-backed and read-only
 * memory, regular file descriptors at known positions (one read-write, a dup of it sharing its
 * offset, one read-only close-on-exec), a directory descriptor, signal handlers, a blocked signal, an
 * alternate signal stack and an interval timer; prints READY; waits for SIGUSR1 (in pause(),
 * so it is checkpointed inside a restartable system call); verifies every piece of state and
 * prints PASS or FAIL <what>. Usage: ckpt_state DATAFILE */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include "workload.h"

#define ANON_PAGES 64
static char altstack[65536];

static void on_usr2(int sig) { (void)sig; }

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: %s DATAFILE\n", argv[0]); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);

    uint64_t *heap = malloc(1 << 20);
    for (size_t i = 0; i < (1 << 20) / 8; i++) heap[i] = i * 0x9e3779b97f4a7c15ull;
    uint8_t *anon = mmap(NULL, ANON_PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int p = 0; p < ANON_PAGES; p += 2) memset(anon + p * 4096, p + 1, 4096); /* every other page */
    uint8_t *ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(ro, 0x5a, 4096);
    mprotect(ro, 4096, PROT_READ);

    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "0123456789", 10) != 10 || lseek(fd, 4, SEEK_SET) != 4) return fail("datafile");
    int shared_offset = dup(fd);
    int reader = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (shared_offset < 0 || reader < 0 || lseek(reader, 7, SEEK_SET) != 7) return fail("second descriptors");
    int directory = open("/", O_RDONLY | O_DIRECTORY);
    if (directory < 0) return fail("directory descriptor");

    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    sigaction(SIGUSR2, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGWINCH);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack };
    sigaltstack(&ss, NULL);
    struct itimerval timer = { .it_interval = { 5000, 0 }, .it_value = { 5000, 0 } };
    setitimer(ITIMER_VIRTUAL, &timer, NULL);

    printf("ANON %p\n", (void *)anon);
    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    for (size_t i = 0; i < (1 << 20) / 8; i++) if (heap[i] != i * 0x9e3779b97f4a7c15ull) return fail("heap");
    for (int p = 0; p < ANON_PAGES; p++)
        for (int b = 0; b < 4096; b++)
            if (anon[p * 4096 + b] != (p % 2 == 0 ? p + 1 : 0)) return fail("anonymous mapping");
    for (int b = 0; b < 4096; b++) if (ro[b] != 0x5a) return fail("read-only mapping");
    char c;
    if (read(fd, &c, 1) != 1 || c != '4') return fail("file position");
    if (lseek(shared_offset, 0, SEEK_CUR) != 5) return fail("offset shared with a dup");
    if (read(reader, &c, 1) != 1 || c != '7') return fail("read-only file position");
    if (!(fcntl(reader, F_GETFD) & FD_CLOEXEC) || (fcntl(fd, F_GETFD) & FD_CLOEXEC)) return fail("close-on-exec flags");
    if ((fcntl(reader, F_GETFL) & O_ACCMODE) != O_RDONLY || (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDWR) return fail("open modes");
    struct stat st;
    if (fstat(directory, &st) != 0 || !S_ISDIR(st.st_mode)) return fail("directory descriptor");
    struct sigaction now;
    sigaction(SIGUSR2, NULL, &now);
    if (now.sa_handler != on_usr2 || !(now.sa_flags & SA_RESTART) || !(now.sa_flags & SA_ONSTACK)) return fail("SIGUSR2 handler");
    sigaction(SIGPIPE, NULL, &now);
    if (now.sa_handler != SIG_IGN) return fail("SIGPIPE ignored");
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    if (!sigismember(&mask, SIGWINCH)) return fail("blocked mask");
    stack_t cur;
    sigaltstack(NULL, &cur);
    if (cur.ss_sp != altstack || cur.ss_size != sizeof altstack) return fail("sigaltstack");
    struct itimerval left;
    getitimer(ITIMER_VIRTUAL, &left);
    if (left.it_interval.tv_sec != 5000 || left.it_value.tv_sec < 4990) return fail("itimer");
    printf("PASS\n");
    return 0;
}
