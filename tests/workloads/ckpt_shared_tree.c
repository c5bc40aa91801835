/* Checkpoint workload: shared anonymous memory between a parent and its child (issue 10).
 *
 * Before forking, the root maps 64 pages MAP_SHARED|MAP_ANONYMOUS (A) and 8 pages of /dev/zero
 * MAP_SHARED (B), and writes pages 0 .. 31 of A. The child unmaps the first 16 pages of A in its own
 * address space (its view then starts 16 pages into the object), writes pages 32 .. 47 of A (which
 * the root never touched) and page 0 of B, and raises a flag in A; the root then prints
 * "CHILD <pid>" and "READY <pid>" and waits for SIGUSR1.
 * On SIGUSR1 the root signals the child. Each checks every page it can see holds what the other or
 * itself wrote; then the child writes a token into A page 50 and B page 1, the root waits for both and
 * answers with a token in A page 51, which the child waits for: a write by one must be seen by the
 * other, so the memory is still one object in both after a restore. The child exits 0 (or prints
 * "FAIL child <what>" and exits 1); the root checks its status and prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

#define PAGE 4096
#define A_PAGES 64
#define B_PAGES 8
#define CHILD_UNMAPS 16

static void wait_for_usr1(void)
{
    while (!got_usr1) sleep_ms(10);
}

/* Waits up to 20 s for a word of shared memory to become value (written by the other process). */
static int wait_for_word(volatile uint64_t *word, uint64_t value)
{
    for (int i = 0; i < 2000; i++)
    {
        if (*word == value) return 1;
        sleep_ms(10);
    }
    return 0;
}

static void fill(char *page, uint64_t seed)
{
    for (int i = 0; i < PAGE / 8; i++) ((uint64_t *)page)[i] = seed * 1000003u + (uint64_t)i;
}

static int holds(const char *page, uint64_t seed)
{
    for (int i = 0; i < PAGE / 8; i++)
        if (((const uint64_t *)page)[i] != seed * 1000003u + (uint64_t)i) return 0;
    return 1;
}

/* Pages [from, to) of A, as the caller sees A (base = page 0 of the object, even where unmapped). */
static int check_a(char *a, int from, int to)
{
    for (int page = from; page < to; page++)
        if (page < 48 && !holds(a + page * PAGE, 0xa000 + (uint64_t)page)) return 0;
    return 1;
}

static int child(char *a, char *b)
{
    if (munmap(a, CHILD_UNMAPS * PAGE) != 0) return fail_in("child", "munmap of the first pages of A");
    for (int page = 32; page < 48; page++) fill(a + page * PAGE, 0xa000 + (uint64_t)page);
    fill(b, 0xb000);
    ((volatile uint64_t *)(a + 60 * PAGE))[0] = 1; /* set up */
    wait_for_usr1();
    if (!check_a(a, CHILD_UNMAPS, 48)) return fail_in("child", "A's pages lost what was written before the checkpoint");
    if (!holds(b, 0xb000)) return fail_in("child", "B's page 0");
    ((volatile uint64_t *)(a + 50 * PAGE))[0] = 0x5150;
    ((volatile uint64_t *)(b + 1 * PAGE))[0] = 0x5151;
    if (!wait_for_word((volatile uint64_t *)(a + 51 * PAGE), 0x9151)) return fail_in("child", "never saw the root's write to A page 51");
    return 0;
}

int main(void)
{
    signal(SIGUSR1, on_usr1);
    char *a = mmap(NULL, A_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED) return fail_in("root", "mmap of A");
    int zero = open("/dev/zero", O_RDWR | O_CLOEXEC);
    if (zero < 0) return fail_in("root", "open of /dev/zero");
    char *b = mmap(NULL, B_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, zero, 0);
    if (b == MAP_FAILED) return fail_in("root", "mmap of /dev/zero");
    close(zero);
    for (int page = 0; page < 32; page++) fill(a + page * PAGE, 0xa000 + (uint64_t)page);
    pid_t pid = fork();
    if (pid < 0) return fail_in("root", "fork");
    if (pid == 0) return child(a, b);
    if (!wait_for_word((volatile uint64_t *)(a + 60 * PAGE), 1)) return fail_in("root", "the child never set up");
    printf("CHILD %d\nREADY %d\n", pid, getpid());
    fflush(stdout);
    wait_for_usr1();
    if (kill(pid, SIGUSR1) != 0) return fail_in("root", "kill of the child");
    if (!check_a(a, 0, 48)) return fail_in("root", "A's pages lost what was written before the checkpoint");
    if (!holds(b, 0xb000)) return fail_in("root", "B's page 0 (written by the child)");
    if (!wait_for_word((volatile uint64_t *)(a + 50 * PAGE), 0x5150)) return fail_in("root", "never saw the child's write to A page 50");
    if (!wait_for_word((volatile uint64_t *)(b + 1 * PAGE), 0x5151)) return fail_in("root", "never saw the child's write to B page 1");
    ((volatile uint64_t *)(a + 51 * PAGE))[0] = 0x9151;
    int status;
    if (waitpid(pid, &status, 0) != pid) return fail_in("root", "waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail_in("root", "the child failed");
    printf("PASS\n");
    fflush(stdout);
    return 0;
}
