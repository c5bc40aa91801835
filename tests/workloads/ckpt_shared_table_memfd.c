/* Checkpoint workload: a process sharing a descriptor table (CLONE_FILES) maps a memfd that table holds (issue 10).
 *
 * The root R creates a memfd at fd 40 (4096 bytes, "before" at offset 0) and clones C with CLONE_FILES (a raw
 * clone, fork-like: C has its own memory). C maps fd 40 MAP_SHARED; R does not map it. R prints
 * "SHARER <C>" and "READY <R>" and waits for SIGUSR1.
 * On SIGUSR1 R checks fd 40 is still a memfd, writes "from R" at offset 0 through the descriptor and sends
 * SIGUSR2 to C; C checks its mapping shows "from R" (one file, not a copy), writes "from C" at offset 100 of
 * the mapping and exits 0 (or prints "FAIL C <what>" and exits 1). R reaps C and reads "from C" at offset
 * 100 through fd 40: PASS or "FAIL R <what>".
 * With the argument "both-map" R maps the memfd too (after the clone): two processes map it, which a restore
 * would make two files (each memory stage makes its own), so a checkpoint refuses. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "workload.h"

static volatile sig_atomic_t told;
static void on_usr2(int sig) { (void)sig; told = 1; }

int main(int argc, char **argv)
{
    struct sigaction usr1 = { .sa_handler = on_usr1 }, usr2 = { .sa_handler = on_usr2 };
    sigaction(SIGUSR1, &usr1, NULL);
    sigaction(SIGUSR2, &usr2, NULL);
    int memfd = memfd_create("shared-table", 0);
    if (memfd < 0 || dup2(memfd, 40) != 40) return fail_in("R", "memfd_create");
    close(memfd);
    if (ftruncate(40, 4096) != 0 || pwrite(40, "before", 6, 0) != 6) return fail_in("R", "write");
    int mapped[2];
    if (pipe(mapped) != 0) return fail_in("R", "pipe");
    pid_t child = (pid_t)syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, NULL, NULL, 0);
    if (child == 0)
    {
        char *view = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 40, 0);
        if (view == MAP_FAILED) return fail_in("C", "mmap");
        char byte = 'm';
        if (write(mapped[1], &byte, 1) != 1) return fail_in("C", "write");
        while (!told) pause();
        if (memcmp(view, "from R", 6) != 0) return fail_in("C", "the mapping does not show R's write");
        memcpy(view + 100, "from C", 6);
        return 0;
    }
    if (child < 0) return fail_in("R", "clone");
    char byte;
    if (read(mapped[0], &byte, 1) != 1) return fail_in("R", "read");
    if (argc > 1 && strcmp(argv[1], "both-map") == 0 && mmap(NULL, 4096, PROT_READ, MAP_SHARED, 40, 0) == MAP_FAILED) return fail_in("R", "mmap");
    close(mapped[0]); /* the table is shared: closed for C too */
    close(mapped[1]);
    printf("SHARER %d\nREADY %d\n", child, getpid());
    fflush(stdout);
    while (!got_usr1) pause();
    char link[64] = { 0 };
    if (readlink("/proc/self/fd/40", link, sizeof link - 1) < 0 || strncmp(link, "/memfd:shared-table", 19) != 0) return fail_in("R", "fd 40 is not the memfd");
    if (pwrite(40, "from R", 6, 0) != 6) return fail_in("R", "pwrite");
    kill(child, SIGUSR2);
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail_in("R", "C failed");
    char seen[6];
    if (pread(40, seen, 6, 100) != 6 || memcmp(seen, "from C", 6) != 0) return fail_in("R", "C's write through its mapping is not in the file");
    printf("PASS\n");
    fflush(stdout);
    return 0;
}
