/* Checkpoint workload for memfds and deleted files. Argument: a directory. Holds:
 *   fd 3  memfd "ckpt-sealed" (MFD_ALLOW_SEALING | MFD_CLOEXEC): "hello memfd" at 0 and "Z" at 1 MiB + 5
 *         (a hole between), position 7, seals F_SEAL_SHRINK | F_SEAL_GROW
 *   fd 4  memfd "plain" (no flags, so F_SEAL_SEAL): three pages of a pattern, position 0
 *   fd 5  DIR/gone, mode 0640, "deleted but open" then unlinked, opened O_RDWR | O_APPEND, position 3
 *         (after a restore an unlinked file of DIR again, named "#INODE (deleted)" as O_TMPFILE files are)
 * Prints READY, waits for SIGUSR1, then checks names, sizes, contents, seals, flags and positions
 * (the seals by trying what they forbid). Prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "workload.h"

static int link_is(int fd, const char *expected_suffix)
{
    char path[64], target[4096];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0) return 0;
    target[n] = 0;
    size_t length = strlen(expected_suffix);
    if ((size_t)n < length || strcmp(target + n - length, expected_suffix) != 0) {
        printf("fd %d links to %s\n", fd, target);
        return 0;
    }
    return 1;
}

static unsigned char pattern(int i) { return (unsigned char)(i * 7 + 3); }

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2) return fail("usage: ckpt_memfd DIR");
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    const long far = (1 << 20) + 5;

    if (memfd_create("ckpt-sealed", MFD_ALLOW_SEALING | MFD_CLOEXEC) != 3) return fail("memfd is not fd 3");
    if (pwrite(3, "hello memfd", 11, 0) != 11 || pwrite(3, "Z", 1, far) != 1) return fail("write fd 3");
    if (lseek(3, 7, SEEK_SET) != 7) return fail("lseek fd 3");
    if (fcntl(3, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) return fail("F_ADD_SEALS");

    if (memfd_create("plain", 0) != 4) return fail("memfd is not fd 4");
    static unsigned char pages[3 * 4096];
    for (int i = 0; i < (int)sizeof pages; i++) pages[i] = pattern(i);
    if (write(4, pages, sizeof pages) != sizeof pages || lseek(4, 0, SEEK_SET) != 0) return fail("write fd 4");

    char gone[4096];
    snprintf(gone, sizeof gone, "%s/gone", argv[1]);
    if (open(gone, O_RDWR | O_CREAT | O_APPEND, 0640) != 5) return fail("deleted file is not fd 5");
    if (fchmod(5, 0640) != 0 || write(5, "deleted but open", 16) != 16 || lseek(5, 3, SEEK_SET) != 3 || unlink(gone) != 0) return fail("fd 5 setup");

    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    struct stat st;
    char buffer[64];
    if (!link_is(3, "/memfd:ckpt-sealed (deleted)")) return fail("fd 3 is not memfd:ckpt-sealed");
    if (fstat(3, &st) != 0 || st.st_size != far + 1) return fail("fd 3 size");
    if (pread(3, buffer, 11, 0) != 11 || memcmp(buffer, "hello memfd", 11) != 0) return fail("fd 3 contents at 0");
    if (pread(3, buffer, 1, far) != 1 || buffer[0] != 'Z') return fail("fd 3 contents at 1 MiB + 5");
    if (pread(3, buffer, 1, 4096 * 10) != 1 || buffer[0] != 0) return fail("fd 3 hole is not zero");
    if (lseek(3, 0, SEEK_CUR) != 7) return fail("fd 3 position");
    if (fcntl(3, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW)) return fail("fd 3 seals");
    if (ftruncate(3, 10) != -1 || errno != EPERM) return fail("fd 3 shrank despite F_SEAL_SHRINK");
    if (!(fcntl(3, F_GETFD) & FD_CLOEXEC)) return fail("fd 3 lost close-on-exec");
    if (pwrite(3, "J", 1, 0) != 1) return fail("fd 3 is not writable");

    if (!link_is(4, "/memfd:plain (deleted)")) return fail("fd 4 is not memfd:plain");
    if (fcntl(4, F_GET_SEALS) != F_SEAL_SEAL) return fail("fd 4 seals are not F_SEAL_SEAL");
    static unsigned char back[3 * 4096];
    if (read(4, back, sizeof back) != sizeof back || memcmp(back, pages, sizeof pages) != 0) return fail("fd 4 contents");
    if (fcntl(4, F_GETFD) & FD_CLOEXEC) return fail("fd 4 is close-on-exec");

    /* A restored deleted file is an O_TMPFILE file of the same directory: the kernel names it "#INODE" */
    char gone_dir[4096];
    snprintf(gone_dir, sizeof gone_dir, "/proc/self/fd/5");
    ssize_t n = readlink(gone_dir, gone, sizeof gone - 1);
    size_t dir_length = strlen(argv[1]);
    if (n < 0) return fail("readlink fd 5");
    gone[n] = 0;
    if (strncmp(gone, argv[1], dir_length) != 0 || gone[dir_length] != '/' || !link_is(5, " (deleted)")) return fail("fd 5 is not a deleted file of DIR");
    if (fstat(5, &st) != 0 || st.st_nlink != 0 || (st.st_mode & 07777) != 0640 || st.st_size != 16) return fail("fd 5 stat");
    if (lseek(5, 0, SEEK_CUR) != 3) return fail("fd 5 position");
    if (!(fcntl(5, F_GETFL) & O_APPEND)) return fail("fd 5 lost O_APPEND");
    if (pread(5, buffer, 16, 0) != 16 || memcmp(buffer, "deleted but open", 16) != 0) return fail("fd 5 contents");
    struct stat dir;
    if (stat(argv[1], &dir) != 0 || dir.st_dev != st.st_dev) return fail("fd 5 is not on its directory's filesystem");
    printf("PASS\n");
    return 0;
}
