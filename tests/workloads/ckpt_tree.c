/* Checkpoint workload: a process tree that checks itself after a restore.
 *
 * Usage: ckpt_tree [COUNT]   (started as a session leader: the test harness gives it its own session)
 *
 * The root (this process) is a child subreaper (PR_SET_CHILD_SUBREAPER, checked after the restore) and builds:
 *   worker      a child sleeping in a 10 ms polling loop, in the root's group, with parent-death signal
 *               SIGTERM (PR_SET_PDEATHSIG, checked: it dies when the root dies)
 *   zombie      a child that exits with code 7 at once; the root does not reap it before the check
 *   group       a child in a process group of its own (setpgid(0, 0)), with a grandchild "member" in it
 *   session     a child that calls setsid(): a session leader with two process groups: its own (with
 *               "sleader-member") and one led by its child "second-leader", which "second-member" joins
 *   orphan      a grandchild whose parent (an intermediate child) exited: the root is a child
 *               subreaper, so the orphan is reparented to it
 *   filer       a child sharing the root's open file description of a file in /tmp (offset 100; removed
 *               at the end)
 *   COUNT more  plain workers (default 0), for trees of many processes
 * Every process writes a pattern into 64 KiB of its own memory, records its expected pid, parent,
 * group and session, and prints "TREE <pid> <role>". The root prints "READY <pid>".
 * On SIGUSR1 to the root it sends SIGUSR1 to every live child; each child checks its ids, pattern
 * and (filer) the shared offset, writes 10 bytes to the shared file, and exits 0 (or 1 + prints
 * "FAIL <role> <what>"). A parent with children signals them and reaps them the same way. The root
 * reaps the zombie first (status must be exit 7), then every child (status 0), checks that the
 * shared offset moved to 110 (the filer's write went through the same description), prints PASS or
 * FAIL, and exits. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

#define MAX_CHILDREN 256

static const char *role = "root";
static pid_t expected_ppid, expected_pgid, expected_sid;
static int expected_pdeathsig;
static unsigned char *pattern;
static pid_t children[MAX_CHILDREN];
static int child_count;
static int shared_fd = -1;
static char log_line[256];

static void fill(void)
{
    pattern = malloc(65536);
    for (int i = 0; i < 65536; i++) pattern[i] = (unsigned char)(i * 7 + getpid());
}

static void record(void)
{
    expected_ppid = getppid();
    expected_pgid = getpgrp();
    expected_sid = getsid(0);
    fill();
    printf("TREE %d %s\n", getpid(), role);
    fflush(stdout);
}

static int failed(const char *what)
{
    printf("FAIL %s %d %s\n", role, getpid(), what);
    fflush(stdout);
    return 1;
}

static int check_self(void)
{
    if (expected_ppid >= 0 && getppid() != expected_ppid) { snprintf(log_line, sizeof log_line, "ppid %d, expected %d", getppid(), expected_ppid); return failed(log_line); }
    if (getpgrp() != expected_pgid) { snprintf(log_line, sizeof log_line, "pgid %d, expected %d", getpgrp(), expected_pgid); return failed(log_line); }
    if (getsid(0) != expected_sid) { snprintf(log_line, sizeof log_line, "sid %d, expected %d", getsid(0), expected_sid); return failed(log_line); }
    int pdeathsig = -1;
    if (prctl(PR_GET_PDEATHSIG, &pdeathsig) != 0 || pdeathsig != expected_pdeathsig) { snprintf(log_line, sizeof log_line, "parent-death signal %d, expected %d", pdeathsig, expected_pdeathsig); return failed(log_line); }
    for (int i = 0; i < 65536; i++)
        if (pattern[i] != (unsigned char)(i * 7 + getpid())) return failed("memory pattern");
    return 0;
}

static void wait_for_go(void)
{
    struct timespec tick = { 0, 10 * 1000 * 1000 };
    while (!got_usr1) nanosleep(&tick, NULL);
}

/* Signals and reaps this process's children; returns 0 when each exited 0. */
static int reap_children(void)
{
    int bad = 0;
    for (int i = 0; i < child_count; i++) kill(children[i], SIGUSR1);
    for (int i = 0; i < child_count; i++)
    {
        int status;
        if (waitpid(children[i], &status, 0) != children[i]) bad |= failed("waitpid of a child");
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        {
            snprintf(log_line, sizeof log_line, "child %d status 0x%x", children[i], status);
            bad |= failed(log_line);
        }
    }
    return bad;
}

/* The life of every process but the root: wait, check, reap own children, exit. */
static void child_main(void)
{
    record();
    wait_for_go();
    int bad = check_self();
    if (shared_fd >= 0)
    {
        if (lseek(shared_fd, 0, SEEK_CUR) != 100) bad |= failed("shared offset is not 100");
        else if (write(shared_fd, "0123456789", 10) != 10) bad |= failed("write to the shared file");
    }
    bad |= reap_children();
    exit(bad);
}

/* Forks a child that runs setup() and then child_main(); returns its pid in the parent. */
static pid_t spawn(const char *child_role, void (*setup)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(2); }
    if (pid == 0)
    {
        role = child_role;
        child_count = 0;
        if (setup) setup();
        child_main();
    }
    children[child_count++] = pid;
    return pid;
}

static void worker_setup(void)
{
    expected_pdeathsig = SIGTERM;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
}

static pid_t second_leader;
static void join_second_group(void) { setpgid(0, second_leader); }
static void own_group(void) { setpgid(0, 0); }
static void as_member(void) { }
static void group_setup(void)
{
    setpgid(0, 0);
    spawn("member", as_member);
}
static void session_setup(void)
{
    setsid();
    spawn("sleader-member", as_member);
    second_leader = spawn("second-leader", own_group);
    setpgid(second_leader, second_leader); /* both sides, as shells do: no race with the member */
    spawn("second-member", join_second_group);
}

static void wait_until_in_group(pid_t pid, pid_t group)
{
    for (int i = 0; i < 500 && getpgid(pid) != group; i++) usleep(10000);
}

int main(int argc, char **argv)
{
    int extra = argc > 1 ? atoi(argv[1]) : 0;
    if (extra < 0 || extra > MAX_CHILDREN - 8) { fprintf(stderr, "COUNT 0..%d\n", MAX_CHILDREN - 8); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction action = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &action, NULL);
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    char path[] = "/tmp/ckpt_tree_XXXXXX";
    shared_fd = mkstemp(path); /* kept until the end: the engine refuses deleted files */
    char hundred[100];
    memset(hundred, 'x', sizeof hundred);
    if (shared_fd < 0 || write(shared_fd, hundred, sizeof hundred) != 100) { perror("shared file"); return 2; }

    pid_t zombie = fork();
    if (zombie == 0) _exit(7);
    int root_fd = shared_fd;
    shared_fd = -1; /* only the filer checks and writes it */
    spawn("worker", worker_setup);
    pid_t group = spawn("group", group_setup);
    pid_t session = spawn("session", session_setup);
    shared_fd = root_fd;
    spawn("filer", NULL);
    shared_fd = -1;
    /* The orphan: its parent forks it and exits at once; the root (subreaper) inherits it. */
    fflush(stdout);
    pid_t intermediate = fork();
    if (intermediate == 0)
    {
        role = "orphan";
        child_count = 0;
        pid_t parent = getpid();
        if (fork() == 0)
        {
            while (getppid() == parent) usleep(1000); /* until the subreaper root has it */
            child_main();
        }
        _exit(0);
    }
    waitpid(intermediate, NULL, 0);
    for (int i = 0; i < extra; i++) spawn("extra", NULL);
    shared_fd = root_fd;

    /* READY once every process is in place: the groups and the session exist, the orphan is ours. */
    wait_until_in_group(group, group);
    wait_until_in_group(session, session);
    for (int i = 0; i < 500; i++)
    {
        int count = 0;
        char file[64];
        snprintf(file, sizeof file, "/proc/%d/task/%d/children", getpid(), getpid());
        FILE *f = fopen(file, "r");
        for (int pid; f && fscanf(f, "%d", &pid) == 1; ) count++;
        if (f) fclose(f);
        if (count == child_count + 2) break; /* + the zombie and the orphan */
        usleep(10000);
    }
    usleep(200 * 1000); /* every child has printed its TREE line and sleeps */
    expected_sid = getsid(0);
    expected_pgid = getpgrp();
    expected_ppid = -1; /* the root's parent is whoever ran the restore */
    fill();
    printf("READY %d\n", getpid());
    fflush(stdout);

    wait_for_go();
    int bad = check_self();
    if (getsid(0) != getpid()) bad |= failed("the root is not its session's leader");
    int subreaper = 0;
    if (prctl(PR_GET_CHILD_SUBREAPER, &subreaper) != 0 || subreaper != 1) bad |= failed("the root is no longer a child subreaper");
    int status;
    if (waitpid(zombie, &status, WNOHANG) != zombie || !WIFEXITED(status) || WEXITSTATUS(status) != 7)
        bad |= failed("the zombie did not report exit 7");
    /* The orphan is our child now: signal it by finding it among our children. */
    char file[64];
    snprintf(file, sizeof file, "/proc/%d/task/%d/children", getpid(), getpid());
    FILE *f = fopen(file, "r");
    for (int pid, known; f && fscanf(f, "%d", &pid) == 1; )
    {
        known = 0;
        for (int i = 0; i < child_count; i++) known |= children[i] == pid;
        if (!known && child_count < MAX_CHILDREN) children[child_count++] = pid;
    }
    if (f) fclose(f);
    bad |= reap_children();
    if (lseek(shared_fd, 0, SEEK_CUR) != 110) bad |= failed("the root's offset did not move with the filer's write");
    unlink(path);
    puts(bad ? "FAIL" : "PASS");
    return bad;
}
