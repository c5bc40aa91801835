/* Checkpoint workload: a daemon made the classic way (fork, setsid, fork), whose session leader is gone.
 *
 * Usage: ckpt_daemon   (started by the test harness, which waits for READY)
 *
 * The started process forks "leader", which calls setsid() and forks the daemon, then exits; the started
 * process reaps it, so the daemon's session and process group ids are a pid that no longer exists. The
 * daemon forks a child "member" (same session and group) and prints "DAEMON <daemon pid> <session id>";
 * the started process prints READY and sleeps (it is not part of what is checkpointed).
 * On SIGUSR1 the daemon checks that its session and group are still that id, that no process has that
 * pid, and that it is not the leader; it sends SIGUSR1 to its member, which checks the same and that its
 * parent is the daemon, and exits 0; the daemon reaps it and prints PASS or FAIL. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

static pid_t session;

static int failed(const char *what)
{
    printf("FAIL %d %s\n", getpid(), what);
    fflush(stdout);
    return 1;
}

static void wait_for_go(void)
{
    struct timespec tick = { 0, 10 * 1000 * 1000 };
    while (!got_usr1) nanosleep(&tick, NULL);
}

static int check_ids(void)
{
    int bad = 0;
    if (getsid(0) != session) bad |= failed("session id");
    if (getpgrp() != session) bad |= failed("process group id");
    if (getpid() == session) bad |= failed("became its session's leader");
    if (kill(session, 0) == 0 || errno != ESRCH) bad |= failed("a process has the session leader's pid");
    return bad;
}

static void daemon_main(void)
{
    pid_t self = getpid();
    pid_t member = fork();
    if (member == 0)
    {
        wait_for_go();
        exit(check_ids() | (getppid() != self ? failed("member: parent") : 0));
    }
    printf("DAEMON %d %d\n", self, session);
    fflush(stdout);
    wait_for_go();
    int bad = check_ids();
    kill(member, SIGUSR1);
    int status;
    if (waitpid(member, &status, 0) != member || !WIFEXITED(status) || WEXITSTATUS(status) != 0) bad |= failed("member did not exit 0");
    puts(bad ? "FAIL" : "PASS");
    exit(bad);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction action = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &action, NULL);
    pid_t leader = fork();
    if (leader == 0)
    {
        session = setsid();
        if (fork() == 0) daemon_main();
        _exit(0);
    }
    waitpid(leader, NULL, 0);
    struct timespec tick = { 0, 100 * 1000 * 1000 };
    nanosleep(&tick, NULL); /* the daemon has printed its line */
    printf("READY %d\n", getpid());
    for (;;) pause();
}
