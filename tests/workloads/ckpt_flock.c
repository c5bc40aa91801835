/* Checkpoint workload for file locks. Argument: a directory, where it creates three files:
 *   fd 3  DIR/flock  flock(LOCK_EX)
 *   fd 4  DIR/posix  POSIX record locks: write lock on bytes 0..99, read lock from 200 to EOF
 *   fd 5  DIR/ofd    OFD read lock on bytes 10..19
 * Prints READY, waits for SIGUSR1, then forks a child (another process, with its own open files)
 * that must find every lock held by the parent and nothing more: flock LOCK_NB fails, F_GETLK
 * reports the parent's POSIX locks, F_OFD_GETLK the OFD lock. Prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>
#include "workload.h"

static int lock(int fd, int command, short type, off_t start, off_t length)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = length };
    return fcntl(fd, command, &fl);
}

/* What a lock request of type over start/length would meet: its type (F_UNLCK: free) and owner pid. */
static short probe(int fd, int command, short type, off_t start, off_t length, pid_t *owner)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = length };
    if (fcntl(fd, command, &fl) != 0) return -1;
    *owner = fl.l_pid;
    return fl.l_type;
}

static int check_from_another_process(const char *dir, pid_t parent)
{
    char path[4096];
    pid_t owner;
    snprintf(path, sizeof path, "%s/flock", dir);
    int f = open(path, O_RDONLY);
    if (f < 0) return fail("child: open flock file");
    if (flock(f, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK) return fail("child: flock LOCK_SH was not refused");

    snprintf(path, sizeof path, "%s/posix", dir);
    int p = open(path, O_RDWR);
    if (p < 0) return fail("child: open posix file");
    if (probe(p, F_GETLK, F_RDLCK, 50, 1, &owner) != F_WRLCK || owner != parent) return fail("child: the POSIX write lock on 0..99 is not the parent's");
    if (probe(p, F_GETLK, F_WRLCK, 100, 100, &owner) != F_UNLCK) return fail("child: bytes 100..199 are locked");
    if (probe(p, F_GETLK, F_WRLCK, 1 << 20, 1, &owner) != F_RDLCK || owner != parent) return fail("child: the POSIX read lock to EOF is not the parent's");
    if (probe(p, F_GETLK, F_RDLCK, 1 << 20, 1, &owner) != F_UNLCK) return fail("child: a read lock conflicts with the read lock to EOF");

    snprintf(path, sizeof path, "%s/ofd", dir);
    int o = open(path, O_RDWR);
    if (o < 0) return fail("child: open ofd file");
    owner = 0;
    if (probe(o, F_OFD_GETLK, F_WRLCK, 10, 10, &owner) != F_RDLCK) return fail("child: the OFD read lock on 10..19 is missing");
    owner = 0;
    if (probe(o, F_OFD_GETLK, F_WRLCK, 0, 10, &owner) != F_UNLCK) return fail("child: bytes 0..9 are locked");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2) return fail("usage: ckpt_flock DIR");
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    char path[4096];

    snprintf(path, sizeof path, "%s/flock", argv[1]);
    if (open(path, O_RDWR | O_CREAT | O_TRUNC, 0600) != 3) return fail("flock file is not fd 3");
    if (flock(3, LOCK_EX | LOCK_NB) != 0) return fail("flock");
    snprintf(path, sizeof path, "%s/posix", argv[1]);
    if (open(path, O_RDWR | O_CREAT | O_TRUNC, 0600) != 4) return fail("posix file is not fd 4");
    if (lock(4, F_SETLK, F_WRLCK, 0, 100) != 0 || lock(4, F_SETLK, F_RDLCK, 200, 0) != 0) return fail("F_SETLK");
    snprintf(path, sizeof path, "%s/ofd", argv[1]);
    if (open(path, O_RDWR | O_CREAT | O_TRUNC, 0600) != 5) return fail("ofd file is not fd 5");
    if (lock(5, F_OFD_SETLK, F_RDLCK, 10, 10) != 0) return fail("F_OFD_SETLK");

    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    pid_t parent = getpid(), child = fork();
    if (child < 0) return fail("fork");
    if (child == 0) _exit(check_from_another_process(argv[1], parent));
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail("the locks are not all held");
    printf("PASS\n");
    return 0;
}
