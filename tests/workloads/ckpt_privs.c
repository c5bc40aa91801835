/* Checkpoint workload for the flags a restore must bring back as they were (docs/SECURITY.md).
 * Usage: ckpt_privs [no-new-privs] [not-dumpable]
 *   no-new-privs  prctl(PR_SET_NO_NEW_PRIVS, 1)
 *   not-dumpable  prctl(PR_SET_DUMPABLE, 0)
 * Prints READY <pid>, waits in pause() for SIGUSR1, then checks that both flags are what it set
 * (no_new_privs 0 and dumpable 1 when not asked for) and prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include "workload.h"

int main(int argc, char **argv)
{
    int no_new_privs = 0, dumpable = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "no-new-privs") == 0) no_new_privs = 1;
        else if (strcmp(argv[i], "not-dumpable") == 0) dumpable = 0;
        else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
    }
    if (no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) { perror("PR_SET_NO_NEW_PRIVS"); return 1; }
    if (!dumpable && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) { perror("PR_SET_DUMPABLE"); return 1; }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_usr1;
    sigaction(SIGUSR1, &action, NULL);
    printf("READY %d\n", (int)getpid());
    fflush(stdout);
    while (!got_usr1) pause();
    int now_nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), now_dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    if (now_nnp != no_new_privs) printf("FAIL no_new_privs is %d, was %d\n", now_nnp, no_new_privs);
    else if (now_dumpable != dumpable) printf("FAIL dumpable is %d, was %d\n", now_dumpable, dumpable);
    else printf("PASS\n");
    fflush(stdout);
    return 0;
}
