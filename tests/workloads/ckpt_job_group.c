/* Checkpoint workload: a process group whose leader is gone, below the root (issue 10).
 *
 * The root S acts as a shell running a job: it forks L, which leads a new process group (setpgid in both,
 * as shells do), and M1 and M2, which join L's group; M1 forks G (in the group too). L exits and S reaps it:
 * M1 and M2 are S's children in group L, whose leader is gone (not even a zombie); G is M1's child.
 * S prints "JOB <L> MEMBERS <M1> <M2> <G>" and "READY <S>" and waits for SIGUSR1.
 * On SIGUSR1 S checks every member is still in group L and that pid L is free, then signals the whole job
 * with kill(-L, SIGUSR2), as a shell's `kill %1` does; each member checks its parent and group and exits 0
 * (M1 after reaping G), or prints "FAIL <who> <what>" and exits 1. S reaps M1 and M2 (status 0), checks it
 * has no other child left (the restore's helper with pid L was reaped), and prints PASS or FAIL.
 * With the argument "leader-leaves-group" L does not exit but moves to S's group once the members have
 * joined its own (a group leader may): group L lives on without its leader, whose pid is a process of the
 * tree, which a restore cannot make (only L's setpgid(0, 0) makes group L) and must refuse. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "workload.h"

static volatile sig_atomic_t job_signalled;
static void on_usr2(int sig) { (void)sig; job_signalled = 1; }

static int member(const char *who, pid_t parent, pid_t group)
{
    while (!job_signalled) pause();
    if (getppid() != parent) return fail_in(who, "wrong parent");
    if (getpgid(0) != group) return fail_in(who, "wrong process group");
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction usr1 = { .sa_handler = on_usr1 }, usr2 = { .sa_handler = on_usr2 };
    sigaction(SIGUSR1, &usr1, NULL);
    sigaction(SIGUSR2, &usr2, NULL);
    pid_t shell = getpid();
    int started[2];
    if (pipe(started) != 0) return fail_in("S", "pipe");
    pid_t leader = fork();
    if (leader == 0)
    {
        setpgid(0, 0);
        char byte;
        close(started[1]);
        (void)read(started[0], &byte, 1); /* until the members have joined */
        close(started[0]);
        if (argc < 2) return 0;
        if (setpgid(0, getpgid(shell)) != 0) return fail_in("L", "setpgid to the shell's group");
        while (1) pause();
    }
    if (setpgid(leader, leader) != 0 && errno != EACCES) return fail_in("S", "setpgid of the leader");
    pid_t members[2];
    int grandchild[2];
    if (pipe(grandchild) != 0) return fail_in("S", "pipe");
    for (int i = 0; i < 2; i++)
    {
        members[i] = fork();
        if (members[i] == 0)
        {
            close(started[0]);
            close(started[1]);
            if (setpgid(0, leader) != 0) return fail_in("M", "setpgid");
            if (i == 1)
            {
                close(grandchild[0]);
                close(grandchild[1]);
                return member("M2", shell, leader);
            }
            pid_t g = fork();
            if (g == 0)
            {
                close(grandchild[0]);
                close(grandchild[1]);
                pid_t m1 = getppid();
                return member("G", m1, leader);
            }
            if (write(grandchild[1], &g, sizeof g) != sizeof g) return fail_in("M1", "write");
            close(grandchild[0]);
            close(grandchild[1]);
            if (member("M1", shell, leader) != 0) return 1;
            kill(g, SIGUSR2); /* in case the job signal raced G's pause */
            int status;
            if (waitpid(g, &status, 0) != g || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail_in("M1", "G failed");
            return 0;
        }
        if (setpgid(members[i], leader) != 0 && errno != EACCES) return fail_in("S", "setpgid of a member");
    }
    pid_t g;
    close(grandchild[1]);
    if (read(grandchild[0], &g, sizeof g) != sizeof g) return fail_in("S", "read");
    close(grandchild[0]);
    close(started[0]);
    close(started[1]); /* the leader exits */
    int status;
    if (argc > 1)
    {
        while (getpgid(leader) == leader) usleep(1000);
        printf("JOB %d MEMBERS %d %d %d\nREADY %d\n", leader, members[0], members[1], g, shell);
        fflush(stdout);
        while (1) pause();
    }
    if (waitpid(leader, &status, 0) != leader || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail_in("S", "the leader failed");
    printf("JOB %d MEMBERS %d %d %d\nREADY %d\n", leader, members[0], members[1], g, shell);
    fflush(stdout);
    while (!got_usr1) pause();
    if (getpgid(members[0]) != leader || getpgid(members[1]) != leader || getpgid(g) != leader) return fail_in("S", "a member left the job's group");
    if (kill(leader, 0) == 0 || errno != ESRCH) return fail_in("S", "pid of the gone leader is in use");
    if (kill(-leader, SIGUSR2) != 0) return fail_in("S", "kill of the job");
    for (int i = 0; i < 2; i++)
        if (waitpid(members[i], &status, 0) != members[i] || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail_in("S", "a member failed");
    if (waitpid(-1, &status, WNOHANG) != -1 || errno != ECHILD) return fail_in("S", "a child is left (the helper?)");
    printf("PASS\n");
    fflush(stdout);
    return 0;
}
