/* Checkpoint workload: live vector registers. Loads ymm0-ymm15 (zmm0-zmm31 when the CPU has
 * AVX-512F) with a known pattern and keeps them only in the registers: the waiting is done by
 * asm that never leaves them, either in raw pause() system calls (default) or spinning in user
 * space ("spin"). No libc code runs between the load and the store, so whatever the registers
 * hold at the end is what the checkpoint saved and the restore put back.
 * Prints "VECTORS ymm|zmm" and READY, waits for SIGUSR1, compares, prints PASS or FAIL <what>.
 * Pattern: byte i of register r is (r * 64 + i) * 7 + 1 (mod 256); the tests compute it too.
 * Usage: ckpt_avx [pause|spin] */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "workload.h"

static volatile int got_usr1;

/* rdi = 32 x 64 pattern bytes, rsi = where to store the registers, rdx = &got_usr1, ecx = spin,
 * r8/r9 = the READY line, written with a raw write(2) once the registers are loaded (so a test
 * that saw READY checkpoints live registers, never the moment before they were loaded) */
void hold_ymm(const uint8_t *pattern, uint8_t *out, volatile int *flag, int spin, const char *ready, size_t ready_length);
void hold_zmm(const uint8_t *pattern, uint8_t *out, volatile int *flag, int spin, const char *ready, size_t ready_length);

#define LOAD_Y(r) "vmovdqu " #r "*64(%rdi), %ymm" #r "\n"
#define STORE_Y(r) "vmovdqu %ymm" #r ", " #r "*64(%rsi)\n"
#define LOAD_Z(r) "vmovdqu64 " #r "*64(%rdi), %zmm" #r "\n"
#define STORE_Z(r) "vmovdqu64 %zmm" #r ", " #r "*64(%rsi)\n"
#define EACH16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define EACH32(M) EACH16(M) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)

#define SAY_READY                                   \
    "push %rdi\n push %rsi\n push %rdx\n push %rcx\n" \
    "mov $1, %eax\n mov $1, %edi\n"                \
    "mov %r8, %rsi\n mov %r9, %rdx\n syscall\n"     \
    "pop %rcx\n pop %rdx\n pop %rsi\n pop %rdi\n"

/* The wait: syscall clobbers only rax, rcx and r11; a signal handler's own vector use is undone
 * by sigreturn, which restores the whole xstate the kernel saved in the signal frame. */
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

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int spin = argc > 1 && !strcmp(argv[1], "spin");
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx")) { printf("FAIL the CPU has no AVX\n"); return 1; }
    int zmm = __builtin_cpu_supports("avx512f");
    int registers = zmm ? 32 : 16, width = zmm ? 64 : 32;
    static uint8_t pattern[32 * 64], seen[32 * 64];
    for (int i = 0; i < 32 * 64; i++) pattern[i] = (uint8_t)(i * 7 + 1);
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    printf("VECTORS %s\n", zmm ? "zmm" : "ymm");
    char ready[32];
    int ready_length = snprintf(ready, sizeof ready, "READY %d\n", getpid());
    if (zmm) hold_zmm(pattern, seen, &got_usr1, spin, ready, (size_t)ready_length);
    else hold_ymm(pattern, seen, &got_usr1, spin, ready, (size_t)ready_length);
    for (int r = 0; r < registers; r++)
        if (memcmp(pattern + r * 64, seen + r * 64, width) != 0) { printf("FAIL %s%d\n", zmm ? "zmm" : "ymm", r); return 1; }
    printf("PASS\n");
    return 0;
}
