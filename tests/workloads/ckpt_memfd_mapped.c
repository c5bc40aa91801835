/* Checkpoint workload for mapped memfds and deleted files (UnlinkedFileMappings). Argument: a directory.
 *   fd 3  memfd "ckpt-dual" (MFD_ALLOW_SEALING), 64 MiB and sparse: "dual N" at page 0 and at 40 MiB,
 *         mapped twice, MAP_SHARED read-write and MAP_SHARED read-execute (the .NET runtime's W^X
 *         double mapping), and a third time read-only through a read-only open of it since closed (so
 *         that view can never be made writable), then sealed F_SEAL_SHRINK | F_SEAL_GROW
 *   memfd "ckpt-only": two pages "only N", mapped MAP_SHARED read-write, its descriptor closed
 *   DIR/private: three pages of a pattern, mapped MAP_PRIVATE read-write, page 1 dirtied ("dirty
 *         private page"), then unlinked and its descriptor closed (a deleted file, mapped only)
 * Prints READY and a line "MAPS rw rx only private ro" with the addresses, waits for SIGUSR1, then checks
 * names, sizes, seals, contents, that the two views and fd 3 are one file (a write through each is
 * seen through the others) and that the private mapping kept its dirty page and not the file.
 * Prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "workload.h"

#define PAGE 4096
#define DUAL_SIZE (64L << 20)
#define FAR (40L << 20)

static unsigned char pattern(int i) { return (unsigned char)(i * 13 + 1); }

/* The maps line of ADDRESS: its name, and its inode through *inode. */
static int maps_name(void *address, char *name, size_t size, unsigned long *inode)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4352];
    int found = 0;
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long start, end, offset, ino;
        char perms[5], dev[16];
        int used = 0;
        if (sscanf(line, "%lx-%lx %4s %lx %15s %lu %n", &start, &end, perms, &offset, dev, &ino, &used) < 6) continue;
        if ((unsigned long)address < start || (unsigned long)address >= end) continue;
        line[strcspn(line, "\n")] = 0;
        snprintf(name, size, "%s", line + used);
        *inode = ino;
        found = 1;
        break;
    }
    if (maps) fclose(maps);
    return found;
}

static int name_is(void *address, const char *expected, unsigned long inode_expected)
{
    char name[4096];
    unsigned long inode = 0;
    if (!maps_name(address, name, sizeof name, &inode)) return 0;
    size_t length = strlen(expected);
    size_t have = strlen(name);
    if (have < length || strcmp(name + have - length, expected) != 0 || (inode_expected && inode != inode_expected)) {
        printf("mapping at %p is %s (inode %lu)\n", address, name, inode);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2) return fail("usage: ckpt_memfd_mapped DIR");
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);

    if (memfd_create("ckpt-dual", MFD_ALLOW_SEALING) != 3) return fail("memfd is not fd 3");
    if (ftruncate(3, DUAL_SIZE) != 0) return fail("ftruncate fd 3");
    char *rw = mmap(NULL, DUAL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0);
    char *rx = mmap(NULL, DUAL_SIZE, PROT_READ | PROT_EXEC, MAP_SHARED, 3, 0);
    if (rw == MAP_FAILED || rx == MAP_FAILED) return fail("mmap of fd 3");
    strcpy(rw, "dual 0");
    strcpy(rw + FAR, "dual far");
    int read_only = open("/proc/self/fd/3", O_RDONLY);
    char *ro = read_only < 0 ? MAP_FAILED : mmap(NULL, 4 * PAGE, PROT_READ, MAP_SHARED, read_only, 0);
    if (ro == MAP_FAILED || close(read_only) != 0) return fail("read-only view of fd 3");
    if (fcntl(3, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) return fail("F_ADD_SEALS");

    int only_fd = memfd_create("ckpt-only", 0);
    if (only_fd < 0 || ftruncate(only_fd, 2 * PAGE) != 0) return fail("memfd ckpt-only");
    char *only = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, only_fd, 0);
    if (only == MAP_FAILED) return fail("mmap of ckpt-only");
    close(only_fd);
    strcpy(only, "only 0");
    strcpy(only + PAGE, "only 1");

    char path[4096];
    snprintf(path, sizeof path, "%s/private", argv[1]);
    int file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    static unsigned char pages[3 * PAGE];
    for (int i = 0; i < (int)sizeof pages; i++) pages[i] = pattern(i);
    if (file < 0 || write(file, pages, sizeof pages) != sizeof pages) return fail("write DIR/private");
    unsigned char *private = mmap(NULL, sizeof pages, PROT_READ | PROT_WRITE, MAP_PRIVATE, file, 0);
    if (private == MAP_FAILED) return fail("mmap of DIR/private");
    strcpy((char *)private + PAGE, "dirty private page");
    if (unlink(path) != 0 || close(file) != 0) return fail("unlink DIR/private");

    printf("READY %d\n", getpid());
    printf("MAPS %lx %lx %lx %lx %lx\n", (unsigned long)rw, (unsigned long)rx, (unsigned long)only, (unsigned long)private, (unsigned long)ro);
    while (!got_usr1) pause();

    struct stat st;
    if (fstat(3, &st) != 0 || st.st_size != DUAL_SIZE) return fail("fd 3 size");
    if (st.st_blocks * 512 > 1 << 20) return fail("fd 3 is not sparse any more");
    if (fcntl(3, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW)) return fail("fd 3 seals");
    if (!name_is(rw, "/memfd:ckpt-dual (deleted)", st.st_ino) || !name_is(rx, "/memfd:ckpt-dual (deleted)", st.st_ino))
        return fail("the two views are not fd 3's memfd");
    if (strcmp(rw, "dual 0") != 0 || strcmp(rx + FAR, "dual far") != 0) return fail("memfd contents through the views");
    strcpy(rw + PAGE, "written through rw");
    if (strcmp(rx + PAGE, "written through rw") != 0) return fail("a write through the rw view is not seen through the rx view");
    char buffer[32] = { 0 };
    if (pread(3, buffer, 18, PAGE) != 18 || strcmp(buffer, "written through rw") != 0) return fail("a write through the rw view is not seen through fd 3");
    if (pwrite(3, "through fd", 11, 2 * PAGE) != 11 || strcmp(rx + 2 * PAGE, "through fd") != 0) return fail("a write through fd 3 is not seen through the rx view");
    if (mprotect(rx, PAGE, PROT_READ | PROT_WRITE) != 0) return fail("the rx view cannot be made writable as before");
    if (!name_is(ro, "/memfd:ckpt-dual (deleted)", st.st_ino) || strcmp(ro + PAGE, "written through rw") != 0) return fail("the read-only view");
    if (mprotect(ro, PAGE, PROT_READ | PROT_WRITE) != -1 || errno != EACCES) return fail("the read-only view can be made writable");
    if (ftruncate(3, PAGE) != -1 || errno != EPERM) return fail("fd 3 shrank despite F_SEAL_SHRINK");

    char self[64];
    for (int fd = 4; fd < 64; fd++) {
        snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
        char link[4096];
        ssize_t n = readlink(self, link, sizeof link - 1);
        if (n > 0) { link[n] = 0; if (strstr(link, "ckpt-only")) return fail("ckpt-only has a descriptor after the restore"); }
    }
    if (!name_is(only, "/memfd:ckpt-only (deleted)", 0)) return fail("ckpt-only is not mapped from its memfd");
    if (strcmp(only, "only 0") != 0 || strcmp(only + PAGE, "only 1") != 0) return fail("ckpt-only contents");

    if (!name_is(private, " (deleted)", 0)) return fail("the private mapping is not of a deleted file");
    if (strcmp((char *)private + PAGE, "dirty private page") != 0) return fail("the private mapping lost its dirty page");
    if (memcmp(private, pages, PAGE) != 0 || memcmp(private + 2 * PAGE, pages + 2 * PAGE, PAGE) != 0) return fail("the private mapping's clean pages");
    /* The file under it still has its own page 1: the dirty page was private. */
    char map_file[128];
    snprintf(map_file, sizeof map_file, "/proc/self/map_files/%lx-%lx", (unsigned long)private, (unsigned long)private + sizeof pages);
    int under = open(map_file, O_RDONLY);
    if (under >= 0) {
        unsigned char first[16];
        if (pread(under, first, sizeof first, PAGE) != sizeof first || memcmp(first, pages + PAGE, sizeof first) != 0) return fail("the deleted file's own page 1");
        close(under);
    }
    printf("PASS\n");
    return 0;
}
