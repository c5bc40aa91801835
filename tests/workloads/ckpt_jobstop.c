/* Checkpoint workload: children stopped by job control, checked after a restore.
 *
 * Usage: ckpt_jobstop   (started as a session leader: the test harness gives it its own session)
 *
 * The root (this process) makes two children, each in a process group of its own (a group whose
 * parent is in another group of the session is not orphaned, so SIGTSTP stops it):
 *   tstp   installs a SIGCONT handler and stops itself with SIGTSTP; the root collects the stop with
 *          waitpid(WUNTRACED) before READY
 *   stop   has a second thread (sleeping in a loop) and is stopped by the root with SIGSTOP; the root
 *          does not collect that stop
 * and prints "STOPPED <tstp pid> <stop pid>" and "READY <pid>".
 * On SIGUSR1 the root checks: both children are in state T (every thread of "stop" too); a
 * waitid(WSTOPPED | WNOHANG) finds no report for tstp (collected before), and a WNOWAIT one finds
 * stop's report, CLD_STOPPED by SIGSTOP. It then continues both with SIGCONT and waits for the
 * WCONTINUED reports, sends SIGUSR1 to both, and reaps both: tstp exits 0 if its SIGCONT handler
 * ran and its ids are right, stop exits 0 if its ids are right and its thread ran on. PASS or FAIL. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

static volatile sig_atomic_t continued;
static volatile long ticks;
static void on_cont(int sig) { (void)sig; continued = 1; }

static int failed(const char *what)
{
    printf("FAIL %d %s\n", getpid(), what);
    fflush(stdout);
    return 1;
}

static void nap(void)
{
    struct timespec tick = { 0, 10 * 1000 * 1000 };
    nanosleep(&tick, NULL);
}

static int check_ids(pid_t parent)
{
    if (getppid() != parent) return failed("ppid");
    if (getpgrp() != getpid()) return failed("pgid");
    return 0;
}

static void tstp_main(pid_t parent)
{
    setpgid(0, 0);
    struct sigaction action = { .sa_handler = on_cont };
    sigaction(SIGCONT, &action, NULL);
    struct sigaction usr1 = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &usr1, NULL);
    raise(SIGTSTP);
    /* Continued: the handler ran before raise returned. Exit only once the parent saw WCONTINUED. */
    while (!got_usr1) nap();
    int bad = check_ids(parent);
    if (!continued) bad |= failed("tstp: the SIGCONT handler did not run");
    exit(bad);
}

static void *ticker(void *unused)
{
    (void)unused;
    for (;;) { nap(); ticks++; }
    return NULL;
}

static void stop_main(pid_t parent)
{
    setpgid(0, 0);
    struct sigaction action = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &action, NULL);
    pthread_t thread;
    pthread_create(&thread, NULL, ticker, NULL);
    while (!got_usr1) nap();
    int bad = check_ids(parent);
    long before = ticks;
    for (int i = 0; i < 100 && ticks == before; i++) nap();
    if (ticks == before) bad |= failed("stop: its thread does not run after SIGCONT");
    exit(bad);
}

static char state_of(pid_t pid, pid_t tid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, tid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(line, sizeof line, f)) { if (f) fclose(f); return '?'; }
    fclose(f);
    char *close = strrchr(line, ')');
    return close ? close[2] : '?';
}

/* The number of threads of pid, if every one is in state T; 0 otherwise. */
static int all_stopped(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *tasks = opendir(path);
    int count = 0;
    for (struct dirent *entry; tasks && (entry = readdir(tasks)) != NULL; )
    {
        if (entry->d_name[0] == '.') continue;
        if (state_of(pid, atoi(entry->d_name)) != 'T') { closedir(tasks); return 0; }
        count++;
    }
    if (tasks) closedir(tasks);
    return count;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction action = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &action, NULL);
    pid_t self = getpid();

    pid_t tstp = fork();
    if (tstp == 0) tstp_main(self);
    setpgid(tstp, tstp);
    int status;
    if (waitpid(tstp, &status, WUNTRACED) != tstp || !WIFSTOPPED(status) || WSTOPSIG(status) != SIGTSTP)
        return failed("tstp did not stop with SIGTSTP");

    pid_t stop = fork();
    if (stop == 0) stop_main(self);
    setpgid(stop, stop);
    for (int i = 0; i < 100; i++) nap(); /* its thread runs */
    kill(stop, SIGSTOP);
    for (int i = 0; i < 500 && all_stopped(stop) != 2; i++) nap();
    if (all_stopped(stop) != 2) return failed("stop: its two threads did not stop");

    printf("STOPPED %d %d\n", tstp, stop);
    printf("READY %d\n", self);
    while (!got_usr1) nap();

    int bad = 0;
    if (all_stopped(tstp) != 1) bad |= failed("tstp is not stopped");
    if (all_stopped(stop) != 2) bad |= failed("stop is not stopped (both threads)");
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, tstp, &info, WSTOPPED | WNOHANG) != 0 || info.si_pid != 0)
        bad |= failed("tstp's stop is reported again, but it had been collected");
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, stop, &info, WSTOPPED | WNOHANG | WNOWAIT) != 0 || info.si_pid != stop || info.si_code != CLD_STOPPED || info.si_status != SIGSTOP)
    {
        char line[128];
        snprintf(line, sizeof line, "stop's report is missing (pid %d code %d status %d)", info.si_pid, info.si_code, info.si_status);
        bad |= failed(line);
    }
    kill(tstp, SIGCONT);
    kill(stop, SIGCONT);
    if (waitpid(tstp, &status, WCONTINUED) != tstp || !WIFCONTINUED(status)) bad |= failed("tstp: no WCONTINUED report");
    if (waitpid(stop, &status, WCONTINUED) != stop || !WIFCONTINUED(status)) bad |= failed("stop: no WCONTINUED report");
    kill(tstp, SIGUSR1);
    kill(stop, SIGUSR1);
    if (waitpid(tstp, &status, 0) != tstp || !WIFEXITED(status) || WEXITSTATUS(status) != 0) bad |= failed("tstp did not exit 0");
    if (waitpid(stop, &status, 0) != stop || !WIFEXITED(status) || WEXITSTATUS(status) != 0) bad |= failed("stop did not exit 0");
    puts(bad ? "FAIL" : "PASS");
    return bad;
}
