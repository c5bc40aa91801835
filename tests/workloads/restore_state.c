/* Restore workload: state that must survive checkpoint, kill and restore.
 * argv[1]: a data file it keeps open read/write at a position.
 * Prints READY once set up, then waits. SIGUSR2 bumps a counter (the handler must survive);
 * SIGUSR1 makes it check everything, print "PASS <count>" or "FAIL <what>" and exit. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t check_requested, bumps;
static void on_usr1(int sig) { (void)sig; check_requested = 1; }
static void on_usr2(int sig) { (void)sig; bumps++; }

static int fail(const char *what) { printf("FAIL %s\n", what); fflush(stdout); return 1; }

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "0123456789", 10) != 10 || lseek(fd, 4, SEEK_SET) != 4) return fail("setup file");
    size_t heap_size = 3 << 20;
    unsigned char *heap = malloc(heap_size);
    for (size_t i = 0; i < heap_size; i++) heap[i] = (unsigned char)(i * 7);
    unsigned char *shared = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(shared, 0x5a, 8192);
    /* A second view of the same shared memory (old size 0 duplicates the mapping). */
    unsigned char *alias = mremap(shared, 0, 8192, MREMAP_MAYMOVE);
    if (alias == MAP_FAILED) return fail("mremap alias");
    unsigned char *readonly = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(readonly, 0xa5, 4096);
    mprotect(readonly, 4096, PROT_READ);
    static char altstack[65536];
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0 };
    sigaltstack(&ss, NULL);
    struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_ONSTACK };
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
    signal(SIGHUP, SIG_IGN);
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGWINCH);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    umask(027);
    printf("READY\n");
    fflush(stdout);

    while (!check_requested) pause();

    char c;
    if (lseek(fd, 0, SEEK_CUR) != 4) return fail("file position");
    if (read(fd, &c, 1) != 1 || c != '4') return fail("file contents");
    if (lseek(fd, 0, SEEK_END) != 10 || write(fd, "X", 1) != 1) return fail("file write");
    for (size_t i = 0; i < heap_size; i++) if (heap[i] != (unsigned char)(i * 7)) return fail("heap");
    for (int i = 0; i < 8192; i++) if (shared[i] != 0x5a || alias[i] != 0x5a) return fail("shared memory");
    alias[4100] = 0x11;
    if (shared[4100] != 0x11) return fail("shared memory and its second view no longer shared");
    for (int i = 0; i < 4096; i++) if (readonly[i] != 0xa5) return fail("read-only memory");
    stack_t now;
    if (sigaltstack(NULL, &now) != 0 || now.ss_sp != altstack || now.ss_size != sizeof altstack) return fail("sigaltstack");
    struct sigaction old;
    sigaction(SIGHUP, NULL, &old);
    if (old.sa_handler != SIG_IGN) return fail("ignored SIGHUP");
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    if (!sigismember(&mask, SIGWINCH)) return fail("blocked mask");
    mode_t m = umask(0);
    if (m != 027) return fail("umask");
    printf("PASS %d\n", (int)bumps);
    fflush(stdout);
    return 0;
}
