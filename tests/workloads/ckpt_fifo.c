/* Checkpoint workload: a named pipe (FIFO) shared by a parent and its child, with bytes in flight.
 *
 * Usage: ckpt_fifo   (started as a session leader by the test harness)
 *
 * The root makes a FIFO in a new directory under /tmp and prints "FIFO <path>". It opens it read-write
 * (fd rw) and for reading, nonblocking (fd rd), writes "root-data\n" into it, and forks "writer", which
 * opens the FIFO for writing (its own open file description) and writes "hello-from-writer\n". Once the
 * 28 bytes are buffered the root prints "READY <pid>".
 * On SIGUSR1 the root checks: the path is still a FIFO and rd is that FIFO (same device and inode),
 * rd is O_RDONLY|O_NONBLOCK and rw O_RDWR, and rd reads exactly the 28 bytes, in order, then EAGAIN.
 * It then sends SIGUSR1 to the writer, which writes "after-restore\n" through its end and exits 0; the
 * root reads those 14 bytes through rd (the writer's end and the root's are one FIFO), reaps the writer,
 * removes the FIFO and prints PASS or FAIL.
 *
 * ckpt_fifo deleted: the same, but the FIFO is unlinked once the bytes are buffered (a FIFO with no name,
 * "PATH (deleted)" in /proc); after SIGUSR1 the root checks that rd and rw are still one FIFO with no link,
 * mode 0600 and the root's uid, and that its directory holds no name (the restore's temporary one gone).
 * ckpt_fifo deleted-dir: the directory is removed too (the restore makes the FIFO in a private directory),
 * and must still be gone. */
#include <dirent.h>
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

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

static const char before[] = "root-data\nhello-from-writer\n", after[] = "after-restore\n";

static void writer_main(const char *path)
{
    int wr = open(path, O_WRONLY);
    if (wr < 0 || write(wr, "hello-from-writer\n", 18) != 18) exit(failed("writer: open or write"));
    while (!got_usr1) nap();
    exit(write(wr, after, sizeof after - 1) == (ssize_t)(sizeof after - 1) ? 0 : failed("writer: write after the restore"));
}

/* entries of a directory other than . and .. (-1: cannot open it) */
static int entries(const char *directory)
{
    DIR *d = opendir(directory);
    if (!d) return -1;
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) count += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return count;
}

int main(int argc, char **argv)
{
    int deleted = argc > 1 && strncmp(argv[1], "deleted", 7) == 0, no_directory = argc > 1 && strcmp(argv[1], "deleted-dir") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction action = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &action, NULL);
    char directory[] = "/tmp/ckpt_fifo_XXXXXX", path[64];
    if (!mkdtemp(directory)) return failed("mkdtemp");
    snprintf(path, sizeof path, "%s/fifo", directory);
    if (mkfifo(path, 0600) != 0) return failed("mkfifo");
    int rw = open(path, O_RDWR), rd = open(path, O_RDONLY | O_NONBLOCK);
    if (rw < 0 || rd < 0 || write(rw, "root-data\n", 10) != 10) return failed("open or write");
    pid_t writer = fork();
    if (writer == 0) writer_main(path);
    int buffered = 0;
    for (int i = 0; i < 500 && buffered < 28; i++, nap()) ioctl(rd, FIONREAD, &buffered);
    if (buffered != 28) return failed("the writer's bytes did not arrive");
    if (deleted && (unlink(path) != 0 || (no_directory && rmdir(directory) != 0))) return failed("unlink of the FIFO");
    printf("FIFO %s\n", path);
    printf("WRITER %d\n", writer);
    printf("READY %d\n", getpid());
    while (!got_usr1) nap();

    int bad = 0;
    struct stat at_path, of_rd;
    if (deleted) {
        if (fstat(rd, &of_rd) != 0 || !S_ISFIFO(of_rd.st_mode) || of_rd.st_nlink != 0) bad |= failed("rd is not a FIFO without a name");
        if ((of_rd.st_mode & 07777) != 0600 || of_rd.st_uid != getuid()) bad |= failed("the deleted FIFO's mode or owner");
        if (fstat(rw, &at_path) != 0 || at_path.st_dev != of_rd.st_dev || at_path.st_ino != of_rd.st_ino) bad |= failed("rw and rd are not one FIFO");
        if (no_directory ? entries(directory) != -1 : entries(directory) != 0) bad |= failed("a name was left behind");
    } else {
        if (stat(path, &at_path) != 0 || !S_ISFIFO(at_path.st_mode)) bad |= failed("the path is no longer a FIFO");
        if (fstat(rd, &of_rd) != 0 || of_rd.st_dev != at_path.st_dev || of_rd.st_ino != at_path.st_ino) bad |= failed("rd is not the FIFO at the path");
    }
    if ((fcntl(rd, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != (O_RDONLY | O_NONBLOCK)) bad |= failed("rd's flags");
    if ((fcntl(rw, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != O_RDWR) bad |= failed("rw's flags");
    char got[128] = { 0 };
    ssize_t n = read(rd, got, sizeof got);
    if (n != 28 || memcmp(got, before, 28) != 0) { char line[200]; snprintf(line, sizeof line, "read %zd bytes '%.*s'", n, n > 0 ? (int)n : 0, got); bad |= failed(line); }
    if (read(rd, got, sizeof got) != -1 || errno != EAGAIN) bad |= failed("more bytes than the 28 buffered");
    kill(writer, SIGUSR1);
    struct pollfd ready = { .fd = rd, .events = POLLIN };
    if (poll(&ready, 1, 10000) != 1) bad |= failed("the writer's bytes after the restore did not arrive");
    memset(got, 0, sizeof got);
    n = read(rd, got, sizeof got);
    if (n != 14 || memcmp(got, after, 14) != 0) bad |= failed("the bytes written after the restore");
    int status;
    if (waitpid(writer, &status, 0) != writer || !WIFEXITED(status) || WEXITSTATUS(status) != 0) bad |= failed("the writer did not exit 0");
    unlink(path);
    rmdir(directory);
    puts(bad ? "FAIL" : "PASS");
    return bad;
}
