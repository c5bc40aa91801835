/* Checkpoint workload: processes sharing memory, and signal handlers, without being threads (issue 10).
 *
 * Modes (argv[1]):
 *   vm          R clones C with CLONE_VM (not CLONE_THREAD) and no exit signal (0, as clone(fn, stack, CLONE_VM, arg)
 *               makes it: R reaps it with __WALL): one address space, separate signal handlers.
 *   vm-sighand  R clones C with CLONE_VM | CLONE_SIGHAND: memory and handlers shared.
 *   all         R clones C with CLONE_VM | CLONE_SIGHAND | CLONE_FILES | CLONE_FS (LinuxThreads' processes):
 *               memory, handlers, descriptor table and fs information shared.
 *   sibling     R forks A; A clones B with CLONE_VM | CLONE_SIGHAND | CLONE_PARENT, so B is R's child (A's
 *               sibling) sharing A's memory and handlers. A does the checks below with B.
 *   vfork       R vforks C, which prints READY for R and waits: a vfork, refused by a checkpoint.
 * The first sharer prints "SHARERS <first> <second>" and R "READY <R>"; R waits for SIGUSR1.
 * On SIGUSR1 (sibling: R passes it to A) the first sharer checks, after a restore as before it:
 *   - R (not sibling): the sharer's exit signal (0 in mode vm: waitpid without __WALL does not see it);
 *   - kcmp(KCMP_VM) says the pair shares memory, kcmp(KCMP_SIGHAND) that it shares handlers (or not, vm);
 *   - memory: it writes a request into a global and sends SIGUSR2 to the second; the second's handler
 *     (installed before the clone) writes request + 1 into another global; the first sees it;
 *   - handlers: it installs a new SIGWINCH handler (recording getpid() of who runs it) and sends SIGWINCH to the
 *     second: with shared handlers the second runs it; without (vm), the second keeps SIGWINCH's default
 *     (ignored) and nobody runs it;
 *   - then it asks the second to exit (request -1) and reaps it (status 0; sibling: R reaps both).
 * Prints PASS or "FAIL <what>". */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

#define KCMP_VM 1
#define KCMP_SIGHAND 4

static volatile long request, reply;
static volatile pid_t winch_ran_in;

static void on_request(int sig) { (void)sig; if (request != 0) reply = request + 1; }
static void on_winch(int sig) { (void)sig; winch_ran_in = getpid(); }

/* The second sharer: answers requests from its handler until asked to exit. */
static int second(void *inherited)
{
    if ((long)inherited >= 0) close((int)(long)inherited); /* its copy of a descriptor of the first's (no CLONE_FILES) */
    sigset_t requests, waiting;
    sigemptyset(&requests);
    sigaddset(&requests, SIGUSR2);
    sigprocmask(SIG_BLOCK, &requests, &waiting); /* a request between the test and the wait is not lost */
    sigdelset(&waiting, SIGUSR2);
    while (request != -1) sigsuspend(&waiting);
    return 0;
}

static pid_t clone_second(int flags, int inherited)
{
    size_t size = 256 * 1024;
    char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return -1;
    return clone(second, stack + size, flags, (void *)(long)inherited);
}

static int ask(pid_t sharer, long value)
{
    reply = 0;
    request = value;
    kill(sharer, SIGUSR2);
    for (int i = 0; i < 500 && reply != value + 1; i++) sleep_ms(10);
    return reply == value + 1;
}

/* The first sharer's checks (see the top); returns 0 when every one holds. */
static int check_pair(pid_t sharer, int handlers_shared)
{
    pid_t self = getpid();
    if (syscall(SYS_kcmp, self, sharer, KCMP_VM, 0, 0) != 0) return fail("kcmp: memory not shared");
    long same_handlers = syscall(SYS_kcmp, self, sharer, KCMP_SIGHAND, 0, 0);
    if ((same_handlers == 0) != handlers_shared) return fail(handlers_shared ? "kcmp: handlers not shared" : "kcmp: handlers shared");
    if (!ask(sharer, 41)) return fail("the sharer did not answer through the shared memory");
    struct sigaction winch = { .sa_handler = on_winch };
    sigaction(SIGWINCH, &winch, NULL);
    kill(sharer, SIGWINCH);
    for (int i = 0; i < (handlers_shared ? 500 : 30) && winch_ran_in == 0; i++) sleep_ms(10);
    if (handlers_shared && winch_ran_in != sharer) return fail("the sharer did not run the handler installed by the first");
    if (!handlers_shared && winch_ran_in != 0) return fail("the sharer ran a handler it does not share");
    request = -1;
    kill(sharer, SIGUSR2);
    return 0;
}

static int reap(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, __WALL) != pid) return fail("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail("a child failed");
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "vm";
    struct sigaction usr1 = { .sa_handler = on_usr1 }, usr2 = { .sa_handler = on_request };
    sigaction(SIGUSR1, &usr1, NULL);
    sigaction(SIGUSR2, &usr2, NULL);
    pid_t root = getpid();
    if (strcmp(mode, "vfork") == 0)
    {
        pid_t child = vfork();
        if (child == 0)
        {
            char line[64];
            int n = snprintf(line, sizeof line, "SHARERS %d %d\nREADY %d\n", root, getpid(), root);
            if (write(1, line, n) != n) _exit(1);
            while (1) pause();
        }
        return 0;
    }
    if (strcmp(mode, "sibling") == 0)
    {
        int failed = 0;
        int ready[2];
        if (pipe(ready) != 0) return fail("pipe");
        pid_t first = fork();
        if (first == 0)
        {
            close(ready[0]);
            pid_t sharer = clone_second(CLONE_VM | CLONE_SIGHAND | CLONE_PARENT, ready[1]);
            if (sharer < 0) return fail("clone");
            printf("SHARERS %d %d\n", getpid(), sharer);
            fflush(stdout);
            close(ready[1]);
            while (!got_usr1) pause();
            return check_pair(sharer, 1);
        }
        close(ready[1]);
        char byte;
        (void)read(ready[0], &byte, 1);
        close(ready[0]);
        printf("READY %d\n", root);
        fflush(stdout);
        while (!got_usr1) pause();
        kill(first, SIGUSR1);
        failed = reap(first);
        int status;
        pid_t other = waitpid(-1, &status, __WALL);
        if (other < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = fail("the sibling sharer failed");
        if (failed) return 1;
        printf("PASS\n");
        fflush(stdout);
        return 0;
    }
    int all = strcmp(mode, "all") == 0, handlers_shared = all || strcmp(mode, "vm-sighand") == 0;
    pid_t sharer = clone_second(CLONE_VM | (handlers_shared ? CLONE_SIGHAND : 0) | (all ? CLONE_FILES | CLONE_FS : 0) | (strcmp(mode, "vm") == 0 ? 0 : SIGCHLD), -1);
    if (sharer < 0) return fail("clone");
    printf("SHARERS %d %d\nREADY %d\n", root, sharer, root);
    fflush(stdout);
    while (!got_usr1) pause();
    /* Its exit signal, as made: a waitpid without __WALL sees a running SIGCHLD child (0), not a clone child (ECHILD). */
    int status;
    pid_t seen = waitpid(sharer, &status, WNOHANG);
    if (strcmp(mode, "vm") == 0 ? !(seen < 0 && errno == ECHILD) : seen != 0) return fail("the sharer's exit signal changed");
    if (check_pair(sharer, handlers_shared) != 0 || reap(sharer) != 0) return 1;
    printf("PASS\n");
    fflush(stdout);
    return 0;
}
