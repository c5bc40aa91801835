/* Checkpoint workload: a session whose leader is gone, below the root (issue 10).
 *
 * The root R is a child subreaper (PR_SET_CHILD_SUBREAPER). It forks C; C calls setsid() and forks D, which
 * forks F; C exits and R reaps it. D's parent is now R (the subreaper), its session and process group are
 * C's, whose leader is gone; F (D's child) is in them too. R prints "ORPHAN <D> <F> SESSION <C>" and
 * "READY <R>" and waits for SIGUSR1.
 * On SIGUSR1 R signals D, D signals F; each checks its parent, session and group (D: parent R, session C,
 * group C; F: parent D, session C, group C) and exits 0 (or prints "FAIL <who> <what>" and exits 1); D
 * reaps F first. R reaps D (status 0), checks it has no other child left (the restore's helper with pid C
 * was reaped), and prints PASS or FAIL.
 * With the argument "unset-subreaper" R clears its subreaper flag once D is its child: a restore cannot
 * make D's parent R again that way (a helper's orphans would go to init) and must refuse. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

static void wait_for_usr1(void)
{
    while (!got_usr1) pause();
}

static int check(const char *who, pid_t parent, pid_t session)
{
    if (getppid() != parent) return fail_in(who, "wrong parent");
    if (getsid(0) != session) return fail_in(who, "wrong session");
    if (getpgid(0) != session) return fail_in(who, "wrong process group");
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction action = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &action, NULL);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) return fail_in("root", "PR_SET_CHILD_SUBREAPER");
    pid_t root = getpid();
    int channel[2];
    if (pipe(channel) != 0) return fail_in("root", "pipe");
    pid_t leader = fork();
    if (leader == 0)
    {
        if (setsid() < 0) return fail_in("leader", "setsid");
        pid_t d = fork();
        if (d == 0)
        {
            pid_t f = fork();
            if (f == 0)
            {
                close(channel[0]);
                close(channel[1]);
                pid_t parent = getppid(), session = getsid(0); /* D, C: as before the checkpoint */
                wait_for_usr1();
                return check("F", parent, session);
            }
            pid_t ids[2] = { getpid(), f };
            if (write(channel[1], ids, sizeof ids) != sizeof ids) return fail_in("D", "write");
            close(channel[0]);
            close(channel[1]);
            pid_t session = getsid(0); /* C's */
            wait_for_usr1();
            if (check("D", root, session) != 0) return 1;
            kill(f, SIGUSR1);
            int status;
            if (waitpid(f, &status, 0) != f || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail_in("D", "F failed");
            return 0;
        }
        return d < 0;
    }
    pid_t ids[2];
    close(channel[1]);
    if (read(channel[0], ids, sizeof ids) != sizeof ids) return fail_in("root", "read");
    close(channel[0]);
    int status;
    if (waitpid(leader, &status, 0) != leader || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail_in("root", "the leader failed");
    struct timespec tick = { 0, 100 * 1000 * 1000 };
    nanosleep(&tick, NULL); /* D is reparented to us */
    if (argc > 1 && prctl(PR_SET_CHILD_SUBREAPER, 0) != 0) return fail_in("root", "PR_SET_CHILD_SUBREAPER 0");
    printf("ORPHAN %d %d SESSION %d\nREADY %d\n", ids[0], ids[1], leader, root);
    fflush(stdout);
    wait_for_usr1();
    if (getsid(ids[0]) != leader) return fail_in("root", "D is not in the gone leader's session");
    kill(ids[0], SIGUSR1);
    if (waitpid(ids[0], &status, 0) != ids[0] || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail_in("root", "D failed");
    if (waitpid(-1, &status, WNOHANG) != -1 || errno != ECHILD) return fail_in("root", "a child is left (the helper?)");
    printf("PASS\n");
    fflush(stdout);
    return 0;
}
