/* Benchmark target for process trees (issue 10): PROCESSES processes (the root and PROCESSES - 1
 * children), each with MIB MiB of private memory it has written. Prints "READY <pid>" once every
 * child has written its memory, then every process waits in pause().
 * With "cow", only the root writes its MIB MiB, before it forks: the children share those pages
 * with it copy-on-write (the question of issue 10: how big is the image of a forked process).
 * Usage: tree_target PROCESSES MIB [cow] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void dirty(size_t mib, int seed)
{
    size_t bytes = mib << 20;
    unsigned char *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (memory == MAP_FAILED) { perror("mmap"); exit(2); }
    for (size_t i = 0; i < bytes; i += 64) memory[i] = (unsigned char)(i / 4096 + seed + 1);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) { fprintf(stderr, "usage: %s PROCESSES MIB\n", argv[0]); return 2; }
    int processes = atoi(argv[1]);
    int cow = argc == 4 && strcmp(argv[3], "cow") == 0;
    size_t mib = (size_t)atol(argv[2]);
    int ready[2];
    if (processes < 1 || pipe(ready) != 0) return 2;
    if (cow) dirty(mib, 0);
    for (int i = 1; i < processes; i++)
    {
        if (fork() == 0)
        {
            if (!cow) dirty(mib, i);
            close(ready[0]);
            if (write(ready[1], "x", 1) != 1) _exit(2);
            close(ready[1]); /* the engine does not checkpoint pipes between processes yet */
            for (;;) pause();
        }
    }
    close(ready[1]);
    char byte;
    for (int i = 1; i < processes; i++)
        if (read(ready[0], &byte, 1) != 1) return 2;
    close(ready[0]);
    if (!cow) dirty(mib, 0);
    printf("READY %d\n", getpid());
    fflush(stdout);
    for (;;) pause();
}
