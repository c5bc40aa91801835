/* lazy_return IMAGE ROUNDS ENGINE...: interleaved A/B of `ENGINE restore --input IMAGE --lazy` (issue 15).
 * Each round runs every engine once, in an order rotated from round to round; each restore is timed
 * from fork to the command's exit ("returns": the process runs) and to its page server's exit ("all
 * pages in"), with the CPU time of the command itself (wait4's rusage: all its threads, not the page
 * server), which a loaded machine inflates far less than wall time. The restored process is then
 * killed and its pid waited free before the next restore. Prints medians and minimums per engine.
 * As root, on an image of a process that is not running (the restore needs its pid). This process is
 * a child subreaper, so the restored processes and page servers are reparented to it and reaped. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MaxEngines = 8, MaxRounds = 200 };

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *values, int n)
{
    double sorted[MaxRounds];
    memcpy(sorted, values, n * sizeof *values);
    qsort(sorted, n, sizeof *sorted, compare);
    return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

static double minimum(const double *values, int n)
{
    double m = values[0];
    for (int i = 1; i < n; i++) if (values[i] < m) m = values[i];
    return m;
}

static void reap(void)
{
    int status;
    while (waitpid(-1, &status, WNOHANG) > 0) {}
}

static void wait_gone(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", pid);
    for (int i = 0; i < 10000 && access(path, F_OK) == 0; i++) { reap(); usleep(500); }
}

int main(int argc, char **argv)
{
    if (argc < 4) { fprintf(stderr, "usage: lazy_return IMAGE ROUNDS ENGINE...\n"); return 2; }
    const char *image = argv[1];
    int rounds = atoi(argv[2]), engines = argc - 3;
    if (rounds < 1 || rounds > MaxRounds || engines > MaxEngines) { fprintf(stderr, "lazy_return: 1-%d rounds, up to %d engines\n", MaxRounds, MaxEngines); return 2; }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    static double returns[MaxEngines][MaxRounds], complete[MaxEngines][MaxRounds], cpu[MaxEngines][MaxRounds];
    for (int round = 0; round < rounds; round++)
        for (int k = 0; k < engines; k++) {
            int e = (round + k) % engines;
            int out[2];
            if (pipe(out) != 0) { perror("pipe"); return 1; }
            int progress = memfd_create("progress", 0);
            double start = now_ms();
            pid_t child = fork();
            if (child == 0) {
                /* only 0-2 and the progress channel (fd 9) reach the engine */
                int null = open("/dev/null", O_RDWR);
                dup2(null, 0);
                dup2(out[1], 1);
                dup2(progress, 9);
                closefrom(10);
                for (int fd = 3; fd < 9; fd++) close(fd);
                execl(argv[3 + e], "ckpt", "restore", "--input", image, "--lazy", "--progress-fd", "9", (char *)0);
                _exit(127);
            }
            close(out[1]);
            int status;
            struct rusage usage;
            wait4(child, &status, 0, &usage);
            double returned = now_ms();
            char line[64] = {0}, json[4096] = {0};
            if (read(out[0], line, sizeof line - 1) < 0) line[0] = 0;
            close(out[0]);
            if (pread(progress, json, sizeof json - 1, 0) < 0) json[0] = 0;
            close(progress);
            int restored = atoi(line);
            const char *server_field = strstr(json, "\"page_server_pid\":");
            int server = server_field ? atoi(server_field + strlen("\"page_server_pid\":")) : 0;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || restored <= 0 || server <= 0) {
                fprintf(stderr, "lazy_return: %s failed (status 0x%x, stdout '%s')\n", argv[3 + e], status, line);
                return 1;
            }
            wait_gone(server); /* the page server exits once every page is in */
            complete[e][round] = now_ms() - start;
            returns[e][round] = returned - start;
            cpu[e][round] = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3;
            kill(restored, SIGKILL);
            wait_gone(restored);
        }
    for (int e = 0; e < engines; e++)
        printf("%s: returns median %.1f ms (min %.1f); CPU of the command median %.1f ms (min %.1f); all pages in median %.1f ms\n",
               argv[3 + e], median(returns[e], rounds), minimum(returns[e], rounds), median(cpu[e], rounds),
               minimum(cpu[e], rounds), median(complete[e], rounds));
    return 0;
}
