/* Checkpoint workload: N threads (2..64, the main thread included) in different states at once,
 * each with its own state, each checking that state itself after a restore.
 *
 * Usage: ckpt_threads N [normal|wake] [SHORT_SLEEP_SECONDS (default 4)]
 *
 * Thread 0 is the main thread: it waits in sigsuspend() for SIGUSR1 (the only thread that does
 * not block SIGUSR1, so a process-directed SIGUSR1 reaches it and nothing else). Workers 1..N-1
 * wait in one of these states (see first_kinds/later_kinds for the order they are handed out):
 *   cond        pthread_cond_wait
 *   futex       raw FUTEX_WAIT, no timeout
 *   futexto     raw FUTEX_WAIT, relative timeout of 1000 s (restart block)
 *   futexabs    raw FUTEX_WAIT_BITSET, absolute CLOCK_MONOTONIC deadline 1000 s ahead
 *   sleeplong   nanosleep(1000 s) in a loop
 *   sleepshort  one clock_nanosleep(CLOCK_MONOTONIC) of SHORT_SLEEP_SECONDS: after the restore it
 *               must have slept at least its remaining time (see ticker)
 *   ticker      wakes every 10 ms and adds up the time the process was alive (gaps of 1 s or
 *               more, such as the time between checkpoint --kill and restore, are left out;
 *               shorter ones are a loaded machine's scheduling delays and count);
 *               sleepshort compares the alive time that passed during its sleep with what it asked
 *   pause       pause() in a loop
 *   sigsusp     sigsuspend() in a loop; its normal mask blocks SIGUSR2, the temporary one does not
 *   ppoll       ppoll(no fds, 1000 s, temporary mask = its mask + SIGWINCH) in a loop
 *   pausevec    raw pause() syscalls in an asm loop that keeps a per-thread pattern live in
 *               ymm0-15 (zmm0-31 with AVX-512F)
 *   spinvec     the same asm spinning in user space (at most one such thread: the machine has
 *               few cores)
 * There is no blocking read(): the engine does not restore pipes (a FIFO is a pipe too), sockets
 * or ttys yet, and a read of a regular file never blocks. futex, nanosleep, ppoll, pause and
 * sigsuspend give the blocked-in-a-syscall variety instead.
 *
 * Every thread (main included) has:
 *   - its own blocked mask: SIGUSR1, SHARED_SIG, its pending signal, and a per-thread pattern of
 *     16 real-time signals;
 *   - a thread-directed pending signal: two instances of SIGRTMIN+2+(i%8) queued to itself with
 *     values i*256+1 and i*256+2 (checked in /proc/thread-self/status SigPnd, then taken with
 *     sigtimedwait in order);
 *   - its own alternate signal stack (sigaltstack, 64 KiB), on which its handlers run (checked
 *     with a probe signal the thread sends itself);
 *   - a name (pthread_setname_np "tNN-kind"; the main thread keeps "ckpt_threads");
 *   - its tid, recorded with gettid() before READY.
 * The process also has one shared (process-directed) pending signal, SHARED_SIG = SIGRTMIN+26,
 * blocked everywhere, queued with value 0x5eed: ShdPnd is checked by every thread, main takes it
 * at the end.
 *
 * Prints "THREAD i tid kind name" per thread, "VECTORS ymm|zmm|none", then "READY <pid>" once
 * every thread is inside its system call (checked in /proc/self/task/TID/syscall), and waits.
 * normal mode: on SIGUSR1 the main thread checks its own state, then wakes every worker (sets
 *   its flag, futex/cond wake, SIGUSR2 every 10 ms until it has woken); each worker checks its
 *   own state; main joins them and prints PASS or "FAIL <what>" and exits.
 * wake mode: workers are only pause / sigsusp / sleeplong / pausevec / ppoll and nobody wakes
 *   them: each waits for its own SIGUSR2 (its handler sets the thread's flag). The test sends
 *   one SIGUSR2 to every worker tid (tgkill) and one SIGUSR1 to the process, the instant the
 *   restore returns; a signal lost in the restore leaves a thread asleep and main prints
 *   "FAIL ... never woke" after 10 s. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "workload.h"

enum kind { K_MAIN, K_COND, K_FUTEX, K_FUTEX_TIMEOUT, K_FUTEX_ABS, K_SLEEP_LONG, K_SLEEP_SHORT, K_TICKER,
            K_PAUSE, K_SIGSUSPEND, K_PPOLL, K_PAUSE_VEC, K_SPIN_VEC };
static const char *const kind_names[] = { "main", "cond", "futex", "futexto", "futexabs", "sleeplong", "sleepshort",
                                          "ticker", "pause", "sigsusp", "ppoll", "pausevec", "spinvec" };
/* The system call a thread of each kind waits in (-1: none, or not always the same). */
static const int kind_syscalls[] = { 130, 202, 202, 202, 202, 230, 230, -1, 34, 130, 271, 34, -1 };

/* Workers 1..12 get these (so that 8 threads already cover most states), later ones cycle
 * through the blocked kinds. */
static const enum kind first_kinds[] = { K_COND, K_PAUSE_VEC, K_SLEEP_SHORT, K_TICKER, K_FUTEX_TIMEOUT, K_PAUSE,
                                         K_SPIN_VEC, K_SLEEP_LONG, K_FUTEX, K_SIGSUSPEND, K_FUTEX_ABS, K_PPOLL };
static const enum kind later_kinds[] = { K_COND, K_FUTEX, K_FUTEX_TIMEOUT, K_FUTEX_ABS, K_SLEEP_LONG, K_PAUSE,
                                         K_SIGSUSPEND, K_PPOLL, K_PAUSE_VEC };
static const enum kind wake_kinds[] = { K_PAUSE, K_SIGSUSPEND, K_SLEEP_LONG, K_PAUSE_VEC, K_PPOLL };
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

#define MAX_THREADS 64
#define ALTSTACK_SIZE (64 * 1024)
#define VEC_BYTES (32 * 64)

struct worker {
    int index;
    enum kind kind;
    pthread_t thread;
    pid_t tid;
    int ready;          /* set just before the thread blocks */
    int go;             /* the futex word of the futex kinds; set by main or by the SIGUSR2 handler */
    int woke;           /* left its wait */
    int done;           /* checked its state */
    volatile sig_atomic_t kicked, probe_ran, probe_on_altstack;
    sigset_t mask;      /* its blocked mask outside sigsuspend/ppoll */
    int pending_sig;
    void *altstack;
    char name[16];
    char failure[200];
    uint8_t pattern[VEC_BYTES], seen[VEC_BYTES];
};

static struct worker workers[MAX_THREADS];
static int thread_count, wake_mode, short_seconds = 4, vector_mode; /* 0 none, 1 ymm, 2 zmm */
static int sig_probe, sig_shared;
static int short_sleep_done = 1, have_short_sleeper, have_ticker;
static long long alive_ns;          /* the ticker's sum of small gaps */
static long long ticker_largest_gap_ns;
static pthread_mutex_t cond_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static __thread struct worker *self;

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void nap_ms(int ms)
{
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

static void worker_fail(struct worker *w, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void worker_fail(struct worker *w, const char *format, ...)
{
    if (w->failure[0]) return; /* the first failure explains the rest */
    va_list args;
    va_start(args, format);
    vsnprintf(w->failure, sizeof w->failure, format, args);
    va_end(args);
}

static long futex(int *word, int op, int value, const struct timespec *timeout, int bitset)
{
    return syscall(SYS_futex, word, op, value, timeout, NULL, bitset);
}

static int load(int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void store(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/* ---- signal handlers (all on the alternate stack) ---- */

static void on_kick(int sig) /* SIGUSR2: wake this thread */
{
    (void)sig;
    if (!self) return;
    self->kicked = 1;
    store(&self->go, 1);
}

static void on_probe(int sig)
{
    (void)sig;
    if (!self) return;
    char here;
    uintptr_t at = (uintptr_t)&here, base = (uintptr_t)self->altstack;
    self->probe_on_altstack = at >= base && at < base + ALTSTACK_SIZE;
    self->probe_ran = 1;
}

/* ---- vector registers: the asm of ckpt_avx.c, per thread ---- */

/* rdi = 32 x 64 pattern bytes, rsi = where to store the registers, rdx = the go flag, ecx = spin,
 * r8 = the ready flag, set to 1 once the registers are loaded. No libc code runs between the load
 * and the store: whatever the registers hold at the end is what the restore put back. */
void hold_ymm(const uint8_t *pattern, uint8_t *out, int *go, int spin, int *ready);
void hold_zmm(const uint8_t *pattern, uint8_t *out, int *go, int spin, int *ready);

#define LOAD_Y(r) "vmovdqu " #r "*64(%rdi), %ymm" #r "\n"
#define STORE_Y(r) "vmovdqu %ymm" #r ", " #r "*64(%rsi)\n"
#define LOAD_Z(r) "vmovdqu64 " #r "*64(%rdi), %zmm" #r "\n"
#define STORE_Z(r) "vmovdqu64 %zmm" #r ", " #r "*64(%rsi)\n"
#define EACH16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define EACH32(M) EACH16(M) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)
#define SAY_READY "movl $1, (%r8)\n"
/* syscall clobbers rax, rcx and r11 only; a handler's own vector use is undone by sigreturn. */
#define WAIT_LOOP                          \
    "1: test %ecx, %ecx\n"                 \
    "   jnz 2f\n"                          \
    "   mov %ecx, %r8d\n"                  \
    "   mov $34, %eax\n" /* pause */       \
    "   syscall\n"                         \
    "   mov %r8d, %ecx\n"                  \
    "   jmp 3f\n"                          \
    "2: pause\n"                           \
    "3: cmpl $0, (%rdx)\n"                 \
    "   je 1b\n"

__asm__(".text\n"
        ".globl hold_ymm\n"
        "hold_ymm:\n" EACH16(LOAD_Y) SAY_READY WAIT_LOOP EACH16(STORE_Y) "vzeroupper\n ret\n"
        ".globl hold_zmm\n"
        "hold_zmm:\n" EACH32(LOAD_Z) SAY_READY WAIT_LOOP EACH32(STORE_Z) "vzeroupper\n ret\n");

static void hold_vectors(struct worker *w, int spin)
{
    for (int i = 0; i < VEC_BYTES; i++) w->pattern[i] = (uint8_t)(i * 7 + 1 + w->index * 29);
    if (vector_mode == 2) hold_zmm(w->pattern, w->seen, &w->go, spin, &w->ready);
    else if (vector_mode == 1) hold_ymm(w->pattern, w->seen, &w->go, spin, &w->ready);
    else { /* no AVX: the same waits without vectors */
        store(&w->ready, 1);
        while (!load(&w->go)) { if (spin) __builtin_ia32_pause(); else pause(); }
        return;
    }
    int registers = vector_mode == 2 ? 32 : 16, width = vector_mode == 2 ? 64 : 32;
    for (int r = 0; r < registers; r++)
        if (memcmp(w->pattern + r * 64, w->seen + r * 64, width) != 0) {
            worker_fail(w, "%s%d lost its value", vector_mode == 2 ? "zmm" : "ymm", r);
            return;
        }
}

/* ---- the waits ---- */

static void wait_futex(struct worker *w, int op, int timed)
{
    while (!load(&w->go)) {
        struct timespec timeout = { 1000, 0 };
        if (op == FUTEX_WAIT_BITSET_PRIVATE) {
            clock_gettime(CLOCK_MONOTONIC, &timeout);
            timeout.tv_sec += 1000;
        }
        long r = futex(&w->go, op, 0, timed ? &timeout : NULL, FUTEX_BITSET_MATCH_ANY);
        if (r == -1 && errno == ETIMEDOUT) worker_fail(w, "futex wait timed out (1000 s)");
        else if (r == -1 && errno != EAGAIN && errno != EINTR) worker_fail(w, "futex wait: %s", strerror(errno));
        if (r == -1 && errno != EAGAIN && errno != EINTR) return;
    }
}

static void wait_short_sleep(struct worker *w)
{
    long long t0 = now_ns(), a0 = __atomic_load_n(&alive_ns, __ATOMIC_ACQUIRE);
    struct timespec left = { short_seconds, 0 };
    store(&w->ready, 1);
    int r;
    while ((r = clock_nanosleep(CLOCK_MONOTONIC, 0, &left, &left)) == EINTR)
        ;
    long long t1 = now_ns(), a1 = __atomic_load_n(&alive_ns, __ATOMIC_ACQUIRE);
    store(&short_sleep_done, 1);
    if (r != 0) worker_fail(w, "clock_nanosleep: %s", strerror(r));
    long long asked = short_seconds * 1000000000LL;
    if (t1 - t0 < asked - 1000000) worker_fail(w, "short sleep of %d s ended after %.3f s", short_seconds, (t1 - t0) / 1e9);
    /* Alive time: the time left at the checkpoint must have been slept after the restore. The
     * ticker leaves out the frozen time around the checkpoint too, hence one second of slack. */
    if (have_ticker && a1 - a0 < asked - 1000000000LL)
        worker_fail(w, "short sleep of %d s: only %.3f s alive during it (wall %.3f s): the time left was not slept",
             short_seconds, (a1 - a0) / 1e9, (t1 - t0) / 1e9);
    printf("SHORT asked %d s, wall %.3f s, alive %.3f s, largest gap %.3f s\n", short_seconds, (t1 - t0) / 1e9,
           have_ticker ? (a1 - a0) / 1e9 : -1.0, __atomic_load_n(&ticker_largest_gap_ns, __ATOMIC_ACQUIRE) / 1e9);
    wait_futex(w, FUTEX_WAIT_PRIVATE, 0);
}

static void tick(struct worker *w)
{
    long long last = now_ns();
    store(&w->ready, 1);
    while (!load(&w->go) || !load(&short_sleep_done)) {
        struct timespec ten = { 0, 10000000L };
        clock_nanosleep(CLOCK_MONOTONIC, 0, &ten, NULL);
        long long now = now_ns(), gap = now - last;
        if (gap < 1000000000LL) __atomic_add_fetch(&alive_ns, gap, __ATOMIC_RELEASE);
        else if (gap > ticker_largest_gap_ns) __atomic_store_n(&ticker_largest_gap_ns, gap, __ATOMIC_RELEASE);
        last = now;
    }
}

static void wait_in_state(struct worker *w)
{
    switch (w->kind) {
    case K_COND:
        pthread_mutex_lock(&cond_mutex);
        store(&w->ready, 1);
        while (!load(&w->go)) pthread_cond_wait(&cond, &cond_mutex);
        pthread_mutex_unlock(&cond_mutex);
        break;
    case K_FUTEX: store(&w->ready, 1); wait_futex(w, FUTEX_WAIT_PRIVATE, 0); break;
    case K_FUTEX_TIMEOUT: store(&w->ready, 1); wait_futex(w, FUTEX_WAIT_PRIVATE, 1); break;
    case K_FUTEX_ABS: store(&w->ready, 1); wait_futex(w, FUTEX_WAIT_BITSET_PRIVATE, 1); break;
    case K_SLEEP_LONG:
        store(&w->ready, 1);
        while (!load(&w->go)) {
            struct timespec long_sleep = { 1000, 0 };
            if (nanosleep(&long_sleep, NULL) == 0) { worker_fail(w, "a 1000 s nanosleep ended"); break; }
        }
        break;
    case K_SLEEP_SHORT: wait_short_sleep(w); break;
    case K_TICKER: tick(w); break;
    case K_PAUSE:
        store(&w->ready, 1);
        while (!load(&w->go)) pause();
        break;
    case K_SIGSUSPEND: {
        sigset_t during = w->mask;
        sigdelset(&during, SIGUSR2);
        store(&w->ready, 1);
        while (!load(&w->go)) sigsuspend(&during);
        break;
    }
    case K_PPOLL: {
        sigset_t during = w->mask;
        sigaddset(&during, SIGWINCH);
        store(&w->ready, 1);
        while (!load(&w->go)) {
            struct timespec timeout = { 1000, 0 };
            if (ppoll(NULL, 0, &timeout, &during) == 0) { worker_fail(w, "ppoll timed out (1000 s)"); break; }
        }
        break;
    }
    case K_PAUSE_VEC: hold_vectors(w, 0); break;
    case K_SPIN_VEC: hold_vectors(w, 1); break;
    case K_MAIN: break;
    }
    store(&w->woke, 1);
}

/* ---- the state every thread sets up and checks ---- */

static void make_mask(struct worker *w)
{
    sigemptyset(&w->mask);
    sigaddset(&w->mask, SIGUSR1);
    sigaddset(&w->mask, sig_shared);
    sigaddset(&w->mask, w->pending_sig);
    uint32_t bits = (uint32_t)(w->index + 1) * 0x9E3779B1u;
    for (int k = 0; k < 16; k++)
        if ((bits >> (k + 7)) & 1) sigaddset(&w->mask, SIGRTMIN + 10 + k);
    if (w->kind == K_SIGSUSPEND) sigaddset(&w->mask, SIGUSR2); /* only sigsuspend lets it in */
}

static uint64_t bit(int sig) { return 1ULL << (sig - 1); }

static uint64_t mask_bits(const sigset_t *set)
{
    uint64_t bits = 0;
    for (int sig = 1; sig <= 64; sig++)
        if (sigismember(set, sig) == 1) bits |= bit(sig);
    return bits;
}

/* SigPnd, ShdPnd and SigBlk of /proc/thread-self/status. */
static int read_status(uint64_t *pending, uint64_t *shared, uint64_t *blocked)
{
    FILE *f = fopen("/proc/thread-self/status", "r");
    if (!f) return -1;
    char line[256];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long v;
        if (sscanf(line, "SigPnd: %llx", &v) == 1) { *pending = v; found++; }
        else if (sscanf(line, "ShdPnd: %llx", &v) == 1) { *shared = v; found++; }
        else if (sscanf(line, "SigBlk: %llx", &v) == 1) { *blocked = v; found++; }
    }
    fclose(f);
    return found == 3 ? 0 : -1;
}

static void set_up_own_state(struct worker *w)
{
    self = w;
    w->tid = my_tid();
    if (w->index > 0 && pthread_setname_np(pthread_self(), w->name) != 0) worker_fail(w, "pthread_setname_np");
    w->altstack = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    stack_t ss = { .ss_sp = w->altstack, .ss_size = ALTSTACK_SIZE, .ss_flags = 0 };
    if (w->altstack == MAP_FAILED || sigaltstack(&ss, NULL) != 0) worker_fail(w, "sigaltstack");
    pthread_sigmask(SIG_SETMASK, &w->mask, NULL);
    for (int n = 1; n <= 2; n++) {
        union sigval value = { .sival_int = w->index * 256 + n };
        if (pthread_sigqueue(pthread_self(), w->pending_sig, value) != 0) worker_fail(w, "pthread_sigqueue");
    }
}

static void check_own_state(struct worker *w)
{
    /* A late wake-up may be pending for a moment, and so may the test's SIGUSR1 (process-wide)
     * until the main thread takes it: a worker woken by its own SIGUSR2 can get here first. */
    const uint64_t ignore = bit(SIGUSR2) | bit(SIGUSR1);
    if (my_tid() != w->tid) worker_fail(w, "gettid() is %d, was %d", my_tid(), w->tid);
    if (self != w) worker_fail(w, "the thread pointer (TLS) changed");

    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    if (mask_bits(&now) != mask_bits(&w->mask))
        worker_fail(w, "blocked mask %016llx, expected %016llx", (unsigned long long)mask_bits(&now),
             (unsigned long long)mask_bits(&w->mask));

    uint64_t pending = 0, shared = 0, blocked = 0;
    if (read_status(&pending, &shared, &blocked) != 0) worker_fail(w, "cannot read /proc/thread-self/status");
    else {
        if ((pending & ~ignore) != bit(w->pending_sig))
            worker_fail(w, "thread-directed pending %016llx, expected %016llx (signal %d)", (unsigned long long)pending,
                 (unsigned long long)bit(w->pending_sig), w->pending_sig);
        if ((shared & ~ignore) != bit(sig_shared))
            worker_fail(w, "shared pending %016llx, expected %016llx", (unsigned long long)shared,
                 (unsigned long long)bit(sig_shared));
        if (blocked != mask_bits(&w->mask))
            worker_fail(w, "SigBlk %016llx, expected %016llx", (unsigned long long)blocked,
                 (unsigned long long)mask_bits(&w->mask));
    }

    /* The two queued instances, in order, with their values; then none. */
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, w->pending_sig);
    struct timespec zero = { 0, 0 };
    for (int n = 1; n <= 2; n++) {
        siginfo_t info;
        int sig = sigtimedwait(&only, &info, &zero);
        if (sig != w->pending_sig) { worker_fail(w, "pending signal %d instance %d missing", w->pending_sig, n); break; }
        if (info.si_code != SI_QUEUE || info.si_value.sival_int != w->index * 256 + n || info.si_pid != getpid())
            worker_fail(w, "pending signal %d instance %d: code %d value %d pid %d", sig, n, info.si_code,
                 info.si_value.sival_int, info.si_pid);
    }
    if (sigtimedwait(&only, NULL, &zero) != -1 || errno != EAGAIN) worker_fail(w, "signal %d pending a third time", w->pending_sig);

    stack_t ss;
    if (sigaltstack(NULL, &ss) != 0) worker_fail(w, "sigaltstack(NULL)");
    else if (ss.ss_sp != w->altstack || ss.ss_size != ALTSTACK_SIZE || ss.ss_flags != 0)
        worker_fail(w, "alternate stack %p size %zu flags %d, expected %p size %d flags 0", ss.ss_sp, ss.ss_size, ss.ss_flags,
             w->altstack, ALTSTACK_SIZE);
    w->probe_ran = 0;
    syscall(SYS_tgkill, getpid(), my_tid(), sig_probe);
    if (!w->probe_ran) worker_fail(w, "the probe signal's handler did not run");
    else if (!w->probe_on_altstack) worker_fail(w, "the probe signal's handler did not run on the alternate stack");

    char name[16] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    const char *expected = w->index == 0 ? "ckpt_threads" : w->name;
    if (strcmp(name, expected) != 0) worker_fail(w, "name '%s', expected '%s'", name, expected);

    if (wake_mode && w->index > 0 && !w->kicked) worker_fail(w, "woke without its SIGUSR2");
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    set_up_own_state(w);
    wait_in_state(w);
    check_own_state(w);
    store(&w->done, 1);
    return NULL;
}

/* /proc/self/task/TID/syscall's first field, -1 if running or unreadable. */
static int syscall_of(pid_t tid)
{
    char path[64], text[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int number = -1;
    if (fgets(text, sizeof text, f) && sscanf(text, "%d", &number) != 1) number = -1;
    fclose(f);
    return number;
}

static int all(int offset_of_flag, long long deadline)
{
    for (;;) {
        int missing = 0;
        for (int i = 1; i < thread_count; i++)
            if (!load((int *)((char *)&workers[i] + offset_of_flag))) missing = i;
        if (!missing) return 0;
        if (now_ns() > deadline) return missing;
        nap_ms(5);
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    thread_count = argc > 1 ? atoi(argv[1]) : 0;
    wake_mode = argc > 2 && !strcmp(argv[2], "wake");
    if (argc > 3) short_seconds = atoi(argv[3]);
    if (thread_count < 2 || thread_count > MAX_THREADS || short_seconds < 1 || (argc > 2 && !wake_mode && strcmp(argv[2], "normal"))) {
        fprintf(stderr, "usage: ckpt_threads N(2..64) [normal|wake] [short-sleep-seconds >= 1]\n");
        return 2;
    }
    sig_probe = SIGRTMIN + 1;
    sig_shared = SIGRTMIN + 26;
    if (sig_shared > SIGRTMAX) { printf("FAIL too few real-time signals\n"); return 1; }
    __builtin_cpu_init();
    vector_mode = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx") ? 1 : 0;

    struct sigaction sa = { .sa_flags = SA_ONSTACK };
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_kick;
    sigaction(SIGUSR2, &sa, NULL);
    sa.sa_handler = on_probe;
    sigaction(sig_probe, &sa, NULL);

    for (int i = 0; i < thread_count; i++) {
        struct worker *w = &workers[i];
        w->index = i;
        if (i == 0) w->kind = K_MAIN;
        else if (wake_mode) w->kind = wake_kinds[(i - 1) % COUNT(wake_kinds)];
        else if (i <= COUNT(first_kinds)) w->kind = first_kinds[i - 1];
        else w->kind = later_kinds[(i - 1 - COUNT(first_kinds)) % COUNT(later_kinds)];
        w->pending_sig = SIGRTMIN + 2 + i % 8;
        make_mask(w);
        snprintf(w->name, sizeof w->name, "t%02d-%s", i, kind_names[w->kind]);
        if (w->kind == K_SLEEP_SHORT) { have_short_sleeper = 1; short_sleep_done = 0; }
        if (w->kind == K_TICKER) have_ticker = 1;
    }
    struct worker *me = &workers[0];
    set_up_own_state(me); /* blocks SIGUSR1 and SHARED_SIG before any thread exists: they inherit it */

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    for (int i = 1; i < thread_count; i++)
        if (pthread_create(&workers[i].thread, &attr, worker_main, &workers[i]) != 0) {
            printf("FAIL pthread_create %d\n", i);
            return 1;
        }
    int missing = all(offsetof(struct worker, ready), now_ns() + 10000000000LL);
    if (missing) { printf("FAIL thread %d never got ready\n", missing); return 1; }
    /* READY only once every thread is inside its call (a checkpoint then finds them all there). */
    for (int i = 1; i < thread_count; i++) {
        int expected = kind_syscalls[workers[i].kind], seen = -1;
        for (int tries = 0; expected >= 0 && tries < 2000 && (seen = syscall_of(workers[i].tid)) != expected; tries++)
            nap_ms(5);
        if (expected >= 0 && seen != expected) {
            printf("FAIL thread %d (%s) is in syscall %d, not %d\n", i, workers[i].name, seen, expected);
            return 1;
        }
    }
    union sigval shared_value = { .sival_int = 0x5eed };
    sigqueue(getpid(), sig_shared, shared_value);
    for (int i = 0; i < thread_count; i++)
        printf("THREAD %d %d %s %s\n", i, workers[i].tid, kind_names[workers[i].kind], i ? workers[i].name : "ckpt_threads");
    printf("VECTORS %s\n", vector_mode == 2 ? "zmm" : vector_mode == 1 ? "ymm" : "none");
    printf("READY %d\n", getpid());

    sigset_t during = me->mask;
    sigdelset(&during, SIGUSR1);
    while (!got_usr1) sigsuspend(&during);
    check_own_state(me);

    long long deadline = now_ns() + (wake_mode ? 10 : short_seconds + 15) * 1000000000LL;
    if (!wake_mode) {
        for (int i = 1; i < thread_count; i++) store(&workers[i].go, 1);
        while (all(offsetof(struct worker, done), 0) && now_ns() < deadline) {
            pthread_mutex_lock(&cond_mutex);
            pthread_cond_broadcast(&cond);
            pthread_mutex_unlock(&cond_mutex);
            for (int i = 1; i < thread_count; i++)
                if (!load(&workers[i].woke)) {
                    futex(&workers[i].go, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, 0);
                    pthread_kill(workers[i].thread, SIGUSR2);
                }
            nap_ms(10);
        }
    }
    missing = all(offsetof(struct worker, done), deadline);
    if (missing) {
        struct worker *w = &workers[missing];
        printf("FAIL thread %d (tid %d, %s) never %s (in syscall %d)\n", missing, w->tid, w->name,
               load(&w->woke) ? "finished its check" : "woke", syscall_of(w->tid));
        return 1;
    }
    for (int i = 1; i < thread_count; i++) pthread_join(workers[i].thread, NULL);

    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig_shared);
    struct timespec zero = { 0, 0 };
    siginfo_t info;
    if (sigtimedwait(&only, &info, &zero) != sig_shared) worker_fail(me, "the shared pending signal %d is gone", sig_shared);
    else if (info.si_code != SI_QUEUE || info.si_value.sival_int != 0x5eed)
        worker_fail(me, "the shared pending signal: code %d value %#x", info.si_code, info.si_value.sival_int);

    for (int i = 0; i < thread_count; i++)
        if (workers[i].failure[0]) {
            printf("FAIL thread %d (tid %d, %s): %s\n", i, workers[i].tid, i ? workers[i].name : "main", workers[i].failure);
            return 1;
        }
    printf("PASS\n");
    return 0;
}
