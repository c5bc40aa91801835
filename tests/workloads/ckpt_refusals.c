/* Workload for the checkpoint audit (docs/ARCHITECTURE.md "Kernel state: saved or refused"): each mode
 * sets up one piece of kernel state the image does not hold, which a checkpoint must refuse by name
 * before touching the process. Usage: ckpt_refusals MODE [PID]
 * Every mode also fills 64 KiB with a known pattern. Prints READY <pid>, waits for SIGUSR1, then checks
 * the pattern and that its object still works, prints PASS or FAIL <what>.
 *   io_uring aio userfaultfd pidfd fanotify perf bpf-map   an fd (and mapping) of that kind
 *   shm            a SysV shared memory segment attached (shmat)
 *   sem-undo       a SysV semaphore operation with SEM_UNDO (an undo list); the array is removed after PASS
 *   posix-timer    a POSIX timer (timer_create), disarmed
 *   flock          an flock(LOCK_EX) on a file (PATH given as second argument)
 *   mqueue         a POSIX message queue descriptor
 *   nsfd           a descriptor of /proc/self/ns/net
 *   seccomp-strict seccomp mode 1: waits in read(2) on a pipe instead of pause(2)
 *   unshare-uts    its own UTS namespace
 *   mlock          one locked page
 *   memfd-reopen   a memfd mapped shared and open twice (memfd_create, then /proc/self/fd/N O_RDONLY)
 *   deleted-linked a file mapped through a name since unlinked while another link remains (removed after PASS)
 *   subreaper      PR_SET_CHILD_SUBREAPER
 *   pdeathsig      PR_SET_PDEATHSIG(SIGTERM)
 *   thp-disable    PR_SET_THP_DISABLE
 *   ksm            PR_SET_MEMORY_MERGE
 *   mdwe           PR_SET_MDWE (memory-deny-write-execute)
 *   tsc            PR_SET_TSC(PR_TSC_SIGSEGV)
 *   timerslack     PR_SET_TIMERSLACK(1000 ns)
 *   affinity       sched_setaffinity to CPU 0 only
 *   ioprio         ioprio_set idle class
 *   sched-reset    SCHED_OTHER | SCHED_RESET_ON_FORK
 *   mempolicy      set_mempolicy(MPOL_BIND, node 0)
 *   oom            oom_score_adj 100
 *   coredump       coredump_filter 0x3f
 *   keyring        a thread keyring
 *   clone-vm       a process made with clone(CLONE_VM | CLONE_PARENT): it shares the memory and is
 *                  not a child (prints SHARER <pid>; the caller kills it)
 *   plain          nothing special (the target of "tracer")
 *   tracer PID     PTRACE_SEIZEs process PID and keeps it traced */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif
#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

static char other_link[96]; /* deleted-linked: the link left, removed after PASS */

#define PATTERN_SIZE (64 * 1024)
static uint8_t *pattern;
static int object_fd = -1;
static int wake_pipe[2] = { -1, -1 };
static int semaphore_array = -1;

static int file_fd(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return -1;
    return flock(fd, LOCK_EX) == 0 ? fd : -1;
}

static int sharer_main(void *arg) { (void)arg; for (;;) syscall(SYS_pause); return 0; }

static int setup(const char *mode, const char *arg)
{
    if (!strcmp(mode, "plain")) return 0;
    if (!strcmp(mode, "io_uring")) {
        struct io_uring_params p = { 0 };
        object_fd = syscall(SYS_io_uring_setup, 4, &p);
        if (object_fd < 0) return fail("io_uring_setup");
        return mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, object_fd, IORING_OFF_SQ_RING) == MAP_FAILED ? fail("mmap ring") : 0;
    }
    if (!strcmp(mode, "aio")) {
        aio_context_t context = 0;
        return syscall(SYS_io_setup, 8, &context) != 0 ? fail("io_setup") : 0;
    }
    if (!strcmp(mode, "userfaultfd")) {
        object_fd = syscall(SYS_userfaultfd, O_CLOEXEC);
        if (object_fd < 0) return fail("userfaultfd");
        struct uffdio_api api = { .api = UFFD_API };
        if (ioctl(object_fd, UFFDIO_API, &api) != 0) return fail("UFFDIO_API");
        void *range = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        struct uffdio_register reg = { .range = { (uintptr_t)range, 8192 }, .mode = UFFDIO_REGISTER_MODE_MISSING };
        return ioctl(object_fd, UFFDIO_REGISTER, &reg) != 0 ? fail("UFFDIO_REGISTER") : 0;
    }
    if (!strcmp(mode, "pidfd")) return (object_fd = syscall(SYS_pidfd_open, getpid(), 0)) < 0 ? fail("pidfd_open") : 0;
    if (!strcmp(mode, "fanotify")) return (object_fd = fanotify_init(0, 0)) < 0 ? fail("fanotify_init") : 0;
    if (!strcmp(mode, "perf")) {
        struct perf_event_attr attr = { .type = PERF_TYPE_SOFTWARE, .size = sizeof attr, .config = PERF_COUNT_SW_TASK_CLOCK };
        return (object_fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0)) < 0 ? fail("perf_event_open") : 0;
    }
    if (!strcmp(mode, "bpf-map")) {
        union bpf_attr attr = { .map_type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 1 };
        return (object_fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr)) < 0 ? fail("bpf map") : 0;
    }
    if (!strcmp(mode, "shm")) {
        int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
        if (id < 0) return fail("shmget");
        void *at = shmat(id, NULL, 0);
        shmctl(id, IPC_RMID, NULL); /* gone with the last detach */
        return at == (void *)-1 ? fail("shmat") : 0;
    }
    if (!strcmp(mode, "sem-undo")) {
        int id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
        struct sembuf up = { 0, 1, SEM_UNDO };
        semaphore_array = id;
        return id < 0 || semop(id, &up, 1) != 0 ? fail("semop") : 0;
    }
    if (!strcmp(mode, "posix-timer")) {
        timer_t timer;
        struct sigevent event = { .sigev_notify = SIGEV_NONE };
        return timer_create(CLOCK_MONOTONIC, &event, &timer) != 0 ? fail("timer_create") : 0;
    }
    if (!strcmp(mode, "flock")) return arg == NULL || (object_fd = file_fd(arg)) < 0 ? fail("flock") : 0;
    if (!strcmp(mode, "mqueue")) {
        char name[64];
        snprintf(name, sizeof name, "/ckpt-refusals-%d", getpid());
        object_fd = mq_open(name, O_CREAT | O_RDWR, 0600, NULL);
        mq_unlink(name);
        return object_fd < 0 ? fail("mq_open") : 0;
    }
    if (!strcmp(mode, "nsfd")) return (object_fd = open("/proc/self/ns/net", O_RDONLY)) < 0 ? fail("open ns") : 0;
    if (!strcmp(mode, "seccomp-strict")) return pipe(wake_pipe) != 0 ? fail("pipe") : 0; /* seccomp itself right before waiting */
    if (!strcmp(mode, "unshare-uts")) return unshare(CLONE_NEWUTS) != 0 ? fail("unshare") : 0;
    if (!strcmp(mode, "mlock")) return mlock(pattern, 4096) != 0 ? fail("mlock") : 0;
    if (!strcmp(mode, "memfd-reopen")) {
        int memfd = memfd_create("ckpt-reopened", 0);
        char self[64];
        snprintf(self, sizeof self, "/proc/self/fd/%d", memfd);
        if (memfd < 0 || ftruncate(memfd, 4096) != 0 || mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0) == MAP_FAILED) return fail("memfd");
        return (object_fd = open(self, O_RDONLY)) < 0 ? fail("reopen of the memfd") : 0;
    }
    if (!strcmp(mode, "deleted-linked")) {
        char name[64];
        snprintf(name, sizeof name, "/tmp/ckpt-refusals-%d", getpid());
        snprintf(other_link, sizeof other_link, "%s-link", name);
        int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || ftruncate(fd, 4096) != 0 || link(name, other_link) != 0) return fail("deleted-linked file");
        if (mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED || close(fd) != 0 || unlink(name) != 0) return fail("deleted-linked mapping");
        return 0;
    }
    if (!strcmp(mode, "subreaper")) return prctl(PR_SET_CHILD_SUBREAPER, 1) != 0 ? fail("subreaper") : 0;
    if (!strcmp(mode, "pdeathsig")) return prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 ? fail("pdeathsig") : 0;
    if (!strcmp(mode, "thp-disable")) return prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0 ? fail("thp") : 0;
    if (!strcmp(mode, "ksm")) return prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) != 0 ? fail("ksm") : 0;
    if (!strcmp(mode, "mdwe")) return prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0 ? fail("mdwe") : 0;
    if (!strcmp(mode, "tsc")) return prctl(PR_SET_TSC, PR_TSC_SIGSEGV) != 0 ? fail("tsc") : 0;
    if (!strcmp(mode, "timerslack")) return prctl(PR_SET_TIMERSLACK, 1000) != 0 ? fail("timerslack") : 0;
    if (!strcmp(mode, "affinity")) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        return sched_setaffinity(0, sizeof set, &set) != 0 ? fail("sched_setaffinity") : 0;
    }
    if (!strcmp(mode, "ioprio")) return syscall(SYS_ioprio_set, 1, 0, 3 << 13) != 0 ? fail("ioprio_set") : 0;
    if (!strcmp(mode, "sched-reset")) {
        struct sched_param param = { 0 };
        return sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, &param) != 0 ? fail("sched_setscheduler") : 0;
    }
    if (!strcmp(mode, "mempolicy")) {
        unsigned long nodes = 1;
        return syscall(SYS_set_mempolicy, 2 /* MPOL_BIND */, &nodes, 64) != 0 ? fail("set_mempolicy") : 0;
    }
    if (!strcmp(mode, "oom") || !strcmp(mode, "coredump")) {
        int oom = !strcmp(mode, "oom");
        int fd = open(oom ? "/proc/self/oom_score_adj" : "/proc/self/coredump_filter", O_WRONLY);
        const char *value = oom ? "100" : "0x3f";
        int ok = fd >= 0 && write(fd, value, strlen(value)) == (ssize_t)strlen(value);
        if (fd >= 0) close(fd);
        return ok ? 0 : fail(mode);
    }
    if (!strcmp(mode, "keyring")) return syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -1 /* thread */, 1) < 0 ? fail("keyctl") : 0;
    if (!strcmp(mode, "clone-vm")) {
        size_t size = 64 * 1024;
        char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        int sharer = clone(sharer_main, stack + size, CLONE_VM | CLONE_PARENT | SIGCHLD, NULL);
        if (sharer < 0) return fail("clone");
        printf("SHARER %d\n", sharer);
        return 0;
    }
    if (!strcmp(mode, "tracer") && arg) {
        pid_t traced = atoi(arg);
        return ptrace(PTRACE_SEIZE, traced, 0, 0) != 0 ? fail("PTRACE_SEIZE") : 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}

/* seccomp strict allows read, write, _exit and sigreturn: wait in read() on our own pipe. */
static void wait_strict(void)
{
    char byte, ready[32];
    int length = snprintf(ready, sizeof ready, "READY %d\n", getpid()); /* getpid is not allowed after */
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) != 0) { printf("FAIL seccomp\n"); exit(1); }
    if (write(1, ready, length) != length) syscall(SYS_exit, 1);
    while (!got_usr1) if (read(wake_pipe[0], &byte, 1) < 0 && errno != EINTR) break;
    for (int i = 0; i < PATTERN_SIZE; i++)
        if (pattern[i] != (uint8_t)(i * 13 + 7)) { if (write(1, "FAIL pattern\n", 13)) {} syscall(SYS_exit, 1); }
    if (write(1, "PASS\n", 5) != 5) syscall(SYS_exit, 1);
    syscall(SYS_exit, 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: %s MODE [ARG]\n", argv[0]); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    pattern = mmap(NULL, PATTERN_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < PATTERN_SIZE; i++) pattern[i] = (uint8_t)(i * 13 + 7);
    int result = setup(argv[1], argc > 2 ? argv[2] : NULL);
    if (result != 0) return result;
    if (!strcmp(argv[1], "seccomp-strict")) wait_strict();

    printf("READY %d\n", getpid());
    while (!got_usr1) pause();
    for (int i = 0; i < PATTERN_SIZE; i++)
        if (pattern[i] != (uint8_t)(i * 13 + 7)) { printf("FAIL pattern byte %d\n", i); return 1; }
    if (object_fd >= 0 && fcntl(object_fd, F_GETFD) < 0) return fail("object fd closed");
    printf("PASS\n");
    if (semaphore_array >= 0) semctl(semaphore_array, 0, IPC_RMID);
    if (other_link[0]) unlink(other_link);
    return 0;
}
