namespace Ckpt.Engine.Linux;

/// <summary>
/// The x86-64 system call numbers the engine uses (arch/x86/entry/syscalls/syscall_64.tbl), in one
/// table for the injector, the restart-block code and direct calls alike.
/// </summary>
#pragma warning disable IDE1006 // named as in the kernel's unistd_64.h
public static class SyscallNumbers
{
    public const long SYS_write = 1;
    public const long SYS_close = 3;
    public const long SYS_fstat = 5;
    public const long SYS_poll = 7;
    public const long SYS_lseek = 8;
    public const long SYS_mmap = 9;
    public const long SYS_mprotect = 10;
    public const long SYS_munmap = 11;
    public const long SYS_brk = 12;
    public const long SYS_rt_sigaction = 13;
    public const long SYS_pread64 = 17;
    public const long SYS_mremap = 25;
    public const long SYS_madvise = 28;
    public const long SYS_nanosleep = 35;
    public const long SYS_socket = 41;
    public const long SYS_connect = 42;
    public const long SYS_sendto = 44;
    public const long SYS_shutdown = 48;
    public const long SYS_bind = 49;
    public const long SYS_listen = 50;
    public const long SYS_socketpair = 53;
    public const long SYS_setsockopt = 54;
    public const long SYS_getitimer = 36;
    public const long SYS_setitimer = 38;
    public const long SYS_fcntl = 72;
    public const long SYS_chdir = 80;
    public const long SYS_unlink = 87;
    public const long SYS_chmod = 90;
    public const long SYS_umask = 95;
    public const long SYS_setgroups = 116;
    public const long SYS_setresuid = 117;
    public const long SYS_setresgid = 119;
    public const long SYS_setfsuid = 122;
    public const long SYS_setfsgid = 123;
    public const long SYS_capset = 126;
    public const long SYS_rt_sigqueueinfo = 129;
    public const long SYS_sigaltstack = 131;
    public const long SYS_personality = 135;
    public const long SYS_getpriority = 140;
    public const long SYS_setpriority = 141;
    public const long SYS_sched_getparam = 143;
    public const long SYS_sched_setscheduler = 144;
    public const long SYS_sched_getscheduler = 145;
    public const long SYS_prctl = 157;
    public const long SYS_arch_prctl = 158;
    public const long SYS_gettid = 186;
    public const long SYS_futex = 202;
    public const long SYS_sched_getaffinity = 204;
    public const long SYS_set_tid_address = 218;
    public const long SYS_restart_syscall = 219;
    public const long SYS_clock_nanosleep = 230;
    public const long SYS_get_mempolicy = 239;
    public const long SYS_keyctl = 250;
    public const long SYS_ioprio_get = 252;
    public const long SYS_openat = 257;
    public const long SYS_ppoll = 271;
    public const long SYS_unshare = 272;
    public const long SYS_set_robust_list = 273;
    public const long SYS_get_robust_list = 274;
    public const long SYS_eventfd2 = 290;
    public const long SYS_dup3 = 292;
    public const long SYS_rt_tgsigqueueinfo = 297;
    public const long SYS_prlimit64 = 302;
    public const long SYS_kcmp = 312;
    public const long SYS_membarrier = 324;
    public const long SYS_userfaultfd = 323;
    public const long SYS_rseq = 334;
    public const long SYS_pidfd_open = 434;
    public const long SYS_pidfd_getfd = 438;
    public const long SYS_execve = 59;
    public const long SYS_exit_group = 231;
    public const long SYS_setpgid = 109;
    public const long SYS_setsid = 112;
    public const long SYS_clone3 = 435;
    public const long SYS_flock = 73;
    public const long SYS_ioctl = 16;
    public const long SYS_timer_create = 222;
    public const long SYS_timer_settime = 223;
    public const long SYS_timer_gettime = 224;
    public const long SYS_timer_getoverrun = 225;
    public const long SYS_timer_delete = 226;
    public const long SYS_inotify_add_watch = 254;
    public const long SYS_inotify_rm_watch = 255;
    public const long SYS_inotify_init1 = 294;
    public const long SYS_pwrite64 = 18;
    public const long SYS_ftruncate = 77;
    public const long SYS_fchmod = 91;
    public const long SYS_fchown = 93;
    public const long SYS_memfd_create = 319;
}
