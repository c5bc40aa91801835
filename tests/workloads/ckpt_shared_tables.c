/* Checkpoint workload: processes sharing a descriptor table (CLONE_FILES) or fs information (CLONE_FS:
 * cwd, root, umask) without sharing memory (issue 10).
 *
 * Usage: ckpt_shared_tables            the tree below
 *        ckpt_shared_tables unshared   root R clone(CLONE_FILES)s A, A clone(CLONE_FILES)s B, then A
 *                                      unshare(CLONE_FILES)s: R and B share a table, B's parent A does not
 *                                      (a restore cannot fork B sharing it: the checkpoint must refuse)
 *
 * The root R works in DIR = /tmp/ckpt-shared-tables-<R's pid> (cwd DIR/work, umask 027) and opens
 * DIR/before at fd 50 (writes 3 bytes). Children, each made by a raw clone (no new stack: fork-like):
 *   files     clone(CLONE_FILES)              shares R's descriptor table
 *   fs        clone(CLONE_FS)                 shares R's fs information
 *   both      clone(CLONE_FILES | CLONE_FS)   shares both with R
 *   middle    a plain fork, which clone(CLONE_FILES | CLONE_FS)s "sib1" and "sib2" and then
 *             unshare(CLONE_FILES | CLONE_FS)s: sib1 and sib2 share both, their parent shares nothing
 * It prints "PIDS <R> <files> <fs> <both> <middle> <sib1> <sib2>" and "READY <R>".
 * On SIGUSR1 to R, R signals its children (middle passes it on) and the pairs check, one after the other
 * (flag files in DIR/flags order the steps: a child starts when told, since R's children share R's table
 * and fs with each other too), that the sharing still works:
 *   table: the child sees fd 50 at offset 3; it opens DIR/opened-by-<pid> at fd 60, the partner sees that
 *          file at fd 60 (same inode) and closes it, the child sees fd 60 closed (EBADF);
 *   fs:    the child sees cwd DIR/work and umask 027; it chdir()s to DIR/<pid> and sets umask 077, the
 *          partner sees both and chdir()s back to DIR/work with umask 027, which the child sees.
 * R checks with files, fs, both in turn; sib1 checks with sib2. Each child exits 0 (or prints
 * "FAIL <role> <what>" and exits 1); middle reaps its two; R reaps its four, prints PASS or FAIL. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

static const char *role = "root";
static char dir[256];

static void path_of(char *out, const char *name) { snprintf(out, PATH_MAX, "%s/%s", dir, name); }

static void set_flag(const char *name, int pid)
{
    char path[PATH_MAX], flag[64];
    snprintf(flag, sizeof flag, "flags/%s-%d", name, pid);
    path_of(path, flag);
    close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
}

/* Waits up to 30 s for a flag (absolute paths: the cwd is what is being tested). */
static int wait_flag(const char *name, int pid)
{
    char path[PATH_MAX], flag[64];
    snprintf(flag, sizeof flag, "flags/%s-%d", name, pid);
    path_of(path, flag);
    for (int i = 0; i < 3000; i++)
    {
        if (access(path, F_OK) == 0) return 1;
        sleep_ms(10);
    }
    return 0;
}

static pid_t clone_sharing(unsigned long flags)
{
    return (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
}

static int cwd_is(const char *name)
{
    char expected[PATH_MAX], cwd[PATH_MAX];
    path_of(expected, name);
    return getcwd(cwd, sizeof cwd) != NULL && strcmp(cwd, expected) == 0;
}

static mode_t current_umask(void)
{
    mode_t mask = umask(0);
    umask(mask);
    return mask;
}

/* ---- the child's side of a check (the one that changes things first) ---- */

static int child_table_check(void)
{
    if (lseek(50, 0, SEEK_CUR) != 3) return fail_in(role, "fd 50 is not at offset 3");
    char name[64], path[PATH_MAX];
    snprintf(name, sizeof name, "opened-by-%d", getpid());
    path_of(path, name);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || dup2(fd, 60) != 60) return fail_in(role, "open of a file at fd 60");
    close(fd);
    set_flag("opened", getpid());
    if (!wait_flag("closed", getpid())) return fail_in(role, "the partner never closed fd 60");
    if (fcntl(60, F_GETFD) != -1 || errno != EBADF) return fail_in(role, "fd 60 closed by the partner is still open here: the table is not shared");
    return 0;
}

static int child_fs_check(void)
{
    if (!cwd_is("work")) return fail_in(role, "cwd is not DIR/work after the restore");
    if (current_umask() != 027) return fail_in(role, "umask is not 027 after the restore");
    char name[64];
    snprintf(name, sizeof name, "%d", getpid());
    if (chdir(dir) != 0 || chdir(name) != 0) return fail_in(role, "chdir to DIR/<pid>");
    umask(077);
    set_flag("moved", getpid());
    if (!wait_flag("moved-back", getpid())) return fail_in(role, "the partner never moved back");
    if (!cwd_is("work")) return fail_in(role, "the partner's chdir is not seen here: fs information not shared");
    if (current_umask() != 027) return fail_in(role, "the partner's umask is not seen here: fs information not shared");
    return 0;
}

/* ---- the partner's side ---- */

static int partner_table_check(int child)
{
    if (!wait_flag("opened", child)) return fail_in(role, "the child never opened fd 60");
    char name[64], path[PATH_MAX];
    snprintf(name, sizeof name, "opened-by-%d", child);
    path_of(path, name);
    struct stat by_fd, by_path;
    if (fstat(60, &by_fd) != 0 || stat(path, &by_path) != 0 || by_fd.st_ino != by_path.st_ino)
        return fail_in(role, "the file the child opened at fd 60 is not seen here: the table is not shared");
    if (close(60) != 0) return fail_in(role, "close of fd 60");
    set_flag("closed", child);
    return 0;
}

static int partner_fs_check(int child)
{
    if (!wait_flag("moved", child)) return fail_in(role, "the child never moved");
    char name[64];
    snprintf(name, sizeof name, "%d", child);
    if (!cwd_is(name)) return fail_in(role, "the child's chdir is not seen here: fs information not shared");
    if (current_umask() != 077) return fail_in(role, "the child's umask is not seen here: fs information not shared");
    char work[PATH_MAX];
    path_of(work, "work");
    if (chdir(work) != 0) return fail_in(role, "chdir back to DIR/work");
    umask(027);
    set_flag("moved-back", child);
    return 0;
}

static void wait_for_usr1(void)
{
    while (!got_usr1) pause();
}

/* A child: set up, wait for the signal, run its side of the checks (table and/or fs). */
static int run_child(const char *name, int table, int fs)
{
    role = name;
    char mine[64];
    snprintf(mine, sizeof mine, "%d", getpid());
    char path[PATH_MAX];
    path_of(path, mine);
    if (mkdir(path, 0700) != 0) return fail_in(role, "mkdir DIR/<pid>");
    wait_for_usr1();
    /* One pair at a time: R's children share R's table and fs with each other too. */
    if (!wait_flag("start", getpid())) return fail_in(role, "never told to start");
    if (table && child_table_check() != 0) return 1;
    if (fs && child_fs_check() != 0) return 1;
    return 0;
}

static int reap(pid_t pid, const char *what)
{
    int status;
    if (waitpid(pid, &status, 0) != pid) return fail_in(role, what);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { errno = 0; return fail_in(role, what); }
    return 0;
}

static int middle(void)
{
    role = "middle";
    pid_t sib1 = clone_sharing(CLONE_FILES | CLONE_FS);
    if (sib1 == 0) return run_child("sib1", 1, 1);
    pid_t sib2 = clone_sharing(CLONE_FILES | CLONE_FS);
    if (sib2 == 0)
    {
        role = "sib2";
        wait_for_usr1();
        if (partner_table_check(sib1) != 0 || partner_fs_check(sib1) != 0) return 1;
        return 0;
    }
    if (sib1 < 0 || sib2 < 0) return fail_in(role, "clone of the siblings");
    if (unshare(CLONE_FILES | CLONE_FS) != 0) return fail_in(role, "unshare");
    printf("SIBLINGS %d %d\n", sib1, sib2);
    fflush(stdout);
    set_flag("siblings", getpid());
    wait_for_usr1();
    kill(sib1, SIGUSR1);
    kill(sib2, SIGUSR1);
    set_flag("start", sib1);
    if (reap(sib1, "sib1 failed") != 0 || reap(sib2, "sib2 failed") != 0) return 1;
    return 0;
}

/* R shares its table with A; A's child B shares it too, and A leaves the table: refused by the checkpoint.
 * A sends B's pid through a pipe once it has left the table (both close their ends after). */
static int unshared_middle(void)
{
    int channel[2];
    if (pipe(channel) != 0) return fail_in(role, "pipe");
    pid_t a = clone_sharing(CLONE_FILES);
    if (a == 0)
    {
        role = "a";
        pid_t b = clone_sharing(CLONE_FILES);
        if (b == 0) { wait_for_usr1(); return 0; }
        if (b < 0 || unshare(CLONE_FILES) != 0) return fail_in(role, "clone of b or unshare");
        if (write(channel[1], &b, sizeof b) != sizeof b) return fail_in(role, "write");
        close(channel[0]);
        close(channel[1]);
        wait_for_usr1();
        kill(b, SIGUSR1);
        return reap(b, "b failed");
    }
    if (a < 0) return fail_in(role, "clone of a");
    pid_t b;
    if (read(channel[0], &b, sizeof b) != sizeof b) return fail_in(role, "read");
    close(channel[0]);
    close(channel[1]);
    printf("A %d\nB %d\nREADY %d\n", a, b, getpid());
    fflush(stdout);
    wait_for_usr1();
    kill(a, SIGUSR1);
    if (reap(a, "a failed") != 0) return 1;
    printf("PASS\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction action = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &action, NULL);
    if (argc > 1 && strcmp(argv[1], "unshared") == 0) return unshared_middle();

    snprintf(dir, sizeof dir, "/tmp/ckpt-shared-tables-%d", getpid());
    char path[PATH_MAX];
    if (mkdir(dir, 0700) != 0) return fail_in(role, "mkdir DIR");
    path_of(path, "flags");
    if (mkdir(path, 0700) != 0) return fail_in(role, "mkdir DIR/flags");
    path_of(path, "work");
    if (mkdir(path, 0700) != 0 || chdir(path) != 0) return fail_in(role, "mkdir/chdir DIR/work");
    umask(027);
    path_of(path, "before");
    int before = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (before < 0 || dup2(before, 50) != 50 || write(50, "abc", 3) != 3) return fail_in(role, "DIR/before at fd 50");
    close(before);

    pid_t files = clone_sharing(CLONE_FILES);
    if (files == 0) return run_child("files", 1, 0);
    pid_t fs = clone_sharing(CLONE_FS);
    if (fs == 0) return run_child("fs", 0, 1);
    pid_t both = clone_sharing(CLONE_FILES | CLONE_FS);
    if (both == 0) return run_child("both", 1, 1);
    pid_t mid = fork();
    if (mid == 0) return middle();
    if (files < 0 || fs < 0 || both < 0 || mid < 0) return fail_in(role, "clone");
    sleep_ms(300); /* the children make their directories */
    if (!wait_flag("siblings", mid)) return fail_in(role, "middle never made its siblings");
    printf("PIDS %d %d %d %d %d\nREADY %d\n", getpid(), files, fs, both, mid, getpid());
    fflush(stdout);

    wait_for_usr1();
    kill(files, SIGUSR1);
    kill(fs, SIGUSR1);
    kill(both, SIGUSR1);
    kill(mid, SIGUSR1);
    set_flag("start", files);
    if (partner_table_check(files) != 0) return 1;
    set_flag("start", fs);
    if (partner_fs_check(fs) != 0) return 1;
    set_flag("start", both);
    if (partner_table_check(both) != 0 || partner_fs_check(both) != 0) return 1;
    if (reap(files, "files failed") != 0 || reap(fs, "fs failed") != 0 || reap(both, "both failed") != 0 || reap(mid, "middle failed") != 0) return 1;
    if (lseek(50, 0, SEEK_CUR) != 3) return fail_in(role, "fd 50 is not at offset 3");
    printf("PASS\n");
    fflush(stdout);
    return 0;
}
