/* Checkpoint workload for inotify. Argument: a directory D with a file D/watched in it (the test makes
 * both). fd 3 = inotify_init1(IN_NONBLOCK | IN_CLOEXEC) with watch 1 on D (IN_CREATE) and watch 2 on
 * D/watched (IN_MODIFY). Prints READY, waits for SIGUSR1, then creates D/new and appends to
 * D/watched: the instance must report IN_CREATE "new" on watch 1 and IN_MODIFY on watch 2 (polled,
 * 5 s at most). Prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>
#include "workload.h"

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2) return fail("usage: ckpt_inotify DIR");
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    char watched[4096], created[4096];
    snprintf(watched, sizeof watched, "%s/watched", argv[1]);
    snprintf(created, sizeof created, "%s/new", argv[1]);

    if (inotify_init1(IN_NONBLOCK | IN_CLOEXEC) != 3) return fail("inotify instance is not fd 3");
    if (inotify_add_watch(3, argv[1], IN_CREATE) != 1) return fail("watch on the directory is not wd 1");
    if (inotify_add_watch(3, watched, IN_MODIFY) != 2) return fail("watch on the file is not wd 2");

    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    if (!(fcntl(3, F_GETFL) & O_NONBLOCK)) return fail("fd 3 lost O_NONBLOCK");
    if (!(fcntl(3, F_GETFD) & FD_CLOEXEC)) return fail("fd 3 lost close-on-exec");
    int made = open(created, O_WRONLY | O_CREAT, 0600);
    if (made < 0) return fail("create D/new");
    close(made);
    int file = open(watched, O_WRONLY | O_APPEND);
    if (file < 0 || write(file, "x", 1) != 1) return fail("append to D/watched");
    close(file);

    int saw_create = 0, saw_modify = 0;
    char buffer[4096] __attribute__((aligned(8)));
    for (int round = 0; round < 50 && !(saw_create && saw_modify); round++) {
        struct pollfd p = { .fd = 3, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0) continue;
        ssize_t n = read(3, buffer, sizeof buffer);
        for (ssize_t at = 0; at < n;) {
            struct inotify_event *event = (struct inotify_event *)(buffer + at);
            if (event->wd == 1 && (event->mask & IN_CREATE) && strcmp(event->name, "new") == 0) saw_create = 1;
            else if (event->wd == 2 && (event->mask & IN_MODIFY)) saw_modify = 1;
            else { printf("FAIL unexpected event wd %d mask 0x%x\n", event->wd, event->mask); return 1; }
            at += sizeof *event + event->len;
        }
    }
    if (!saw_create) return fail("no IN_CREATE on watch 1");
    if (!saw_modify) return fail("no IN_MODIFY on watch 2");
    printf("PASS\n");
    return 0;
}
