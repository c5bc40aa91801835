/* Checkpoint workload for pseudo-terminals (issue 12). Modes:
 *   pair (default)  the root opens a pair (posix_openpt; master fd 3), sets on it packet mode, the slave's
 *                   termios (no ECHO, VINTR ^G, 9600 baud) and window size 33x101 (7x9 pixels), forks a
 *                   session leader (setsid, TIOCSCTTY on the slave, slave on 0-2) that forks a reader in
 *                   a process group of its own made the terminal's foreground group (tcsetpgrp), then
 *                   locks the pair (TIOCSPTLCK) and exchanges one line with the reader. Prints READY,
 *                   waits for SIGUSR1, then checks the modes, lock, termios and window size through the masters,
 *                   sends "hello" and requires the reader's answer, which reports whether the reader still
 *                   has the terminal as controlling terminal (/proc/self/stat tty_nr is its stdin's
 *                   device, /dev/tty opens) and is in the foreground group; prints PASS or FAIL.
 *   lonely          a master whose slave nobody holds (refused at checkpoint).
 *   unread          the slave's output sits unread on the master (refused at checkpoint).
 *   outside LOG     a process on a terminal it was given (its 0-2, its controlling terminal): READY on LOG,
 *                   SIGUSR1, then it checks that stdin is still its controlling terminal and that it is in
 *                   the foreground group, writes "PROMPT" to the terminal, reads one line from it and
 *                   writes "PASS <line>" (or FAIL) on LOG. */
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
#include <termios.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

static FILE *out;

static int fail(const char *what)
{
    fprintf(out, "FAIL %s (errno %d)\n", what, errno);
    fflush(out);
    return 1;
}

static void wait_for_usr1(void)
{
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    fprintf(out, "READY %d\n", getpid());
    fflush(out);
    while (!got_usr1) pause();
}

/* tty_nr of /proc/self/stat (field 7) */
static unsigned long own_tty_nr(void)
{
    char text[1024];
    int fd = open("/proc/self/stat", O_RDONLY);
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return 0;
    text[n] = 0;
    char *p = strrchr(text, ')');
    unsigned long value = 0;
    if (p) sscanf(p + 2, "%*c %*d %*d %*d %lu", &value);
    return value;
}

/* 1 when stdin is this process's controlling terminal and it is in the terminal's foreground group */
static int on_own_terminal(int *foreground)
{
    struct stat st;
    if (fstat(0, &st) != 0) return 0;
    *foreground = tcgetpgrp(0) == getpgrp();
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY);
    if (tty < 0) return 0;
    close(tty);
    return own_tty_nr() == (unsigned long)st.st_rdev;
}

/* the reader: answers each line read from its terminal */
static void reader(void)
{
    char line[256];
    for (;;) {
        ssize_t n = read(0, line, sizeof line - 1);
        if (n <= 0) _exit(0);
        line[n] = 0;
        line[strcspn(line, "\n")] = 0;
        int foreground = 0, ctty = on_own_terminal(&foreground);
        struct winsize size;
        ioctl(0, TIOCGWINSZ, &size);
        dprintf(1, "echo:%s ctty=%d fg=%d rows=%d\n", line, ctty, foreground, size.ws_row);
    }
}

/* the session leader: the slave as controlling terminal, the reader as foreground group */
static void leader(int slave, int master)
{
    close(master);
    if (setsid() < 0) _exit(2);
    if (ioctl(slave, TIOCSCTTY, 0) != 0) _exit(3);
    dup2(slave, 0); dup2(slave, 1); dup2(slave, 2);
    if (slave > 2) close(slave);
    pid_t child = fork();
    if (child == 0) {
        setpgid(0, 0);
        while (tcgetpgrp(0) != getpid()) usleep(1000);
        reader();
    }
    setpgid(child, child);
    if (tcsetpgrp(0, child) != 0) _exit(4);
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    _exit(0);
}

/* reads the master (packet mode: a 0 byte before data) until a line starting with `prefix` is complete */
static int read_answer(int master, const char *prefix, char *answer, size_t size)
{
    size_t used = 0;
    answer[0] = 0;
    for (int rounds = 0; rounds < 200; rounds++) {
        struct pollfd p = { .fd = master, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0) continue;
        char chunk[512];
        ssize_t n = read(master, chunk, sizeof chunk);
        if (n <= 1 || chunk[0] != 0) continue; /* a control packet */
        if (used + n >= size) return -1;
        memcpy(answer + used, chunk + 1, n - 1);
        used += n - 1;
        answer[used] = 0;
        char *start = strstr(answer, prefix);
        if (start && strchr(start, '\n')) return 0;
    }
    return -1;
}

static int exchange(int master, const char *word, char *answer, size_t size)
{
    char line[64];
    snprintf(line, sizeof line, "%s\n", word);
    if (write(master, line, strlen(line)) != (ssize_t)strlen(line)) return -1;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "echo:%s ", word);
    return read_answer(master, prefix, answer, size);
}

static int open_pair(int *master, char *name, size_t size)
{
    *master = posix_openpt(O_RDWR | O_NOCTTY);
    if (*master != 3 || grantpt(*master) || unlockpt(*master) || ptsname_r(*master, name, size)) return -1;
    return 0;
}

static int pair_mode(void)
{
    int master, one = 1;
    char name[64], answer[1024];
    if (open_pair(&master, name, sizeof name)) return fail("posix_openpt");
    int slave = open(name, O_RDWR | O_NOCTTY);
    struct termios t;
    if (slave < 0 || tcgetattr(slave, &t)) return fail("open slave");
    t.c_lflag &= ~(ECHO | ECHOE | ECHOK | ECHONL);
    t.c_cc[VINTR] = 7;
    cfsetispeed(&t, B9600);
    cfsetospeed(&t, B9600);
    struct winsize size = { .ws_row = 33, .ws_col = 101, .ws_xpixel = 7, .ws_ypixel = 9 };
    if (tcsetattr(slave, TCSANOW, &t) || ioctl(master, TIOCSWINSZ, &size) || ioctl(master, TIOCPKT, &one)) return fail("terminal settings");
    if (fork() == 0) leader(slave, master);
    close(slave);
    if (exchange(master, "warm", answer, sizeof answer)) return fail("first exchange");
    /* a second pair, both ends here (fds 4, 5), locked once its slave is open (a locked pair's slave
     * cannot be opened again, /dev/tty included: the first pair stays unlocked) */
    int master2 = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (master2 != 4 || grantpt(master2) || unlockpt(master2) || ptsname_r(master2, name, sizeof name)) return fail("second pair");
    if (open(name, O_RDWR | O_NOCTTY) != 5 || ioctl(master2, TIOCSPTLCK, &one)) return fail("second slave, TIOCSPTLCK");
    wait_for_usr1();

    int value = 0;
    if (tcgetattr(master, &t) || (t.c_lflag & ECHO) || t.c_cc[VINTR] != 7 || cfgetospeed(&t) != B9600 || !(t.c_lflag & ICANON))
        return fail("termios changed");
    if (ioctl(master, TIOCGWINSZ, &size) || size.ws_row != 33 || size.ws_col != 101 || size.ws_xpixel != 7 || size.ws_ypixel != 9)
        return fail("window size changed");
    if (ioctl(master, TIOCGPKT, &value) || value != 1) return fail("packet mode lost");
    if (ioctl(master, TIOCGPTLCK, &value) || value != 0) return fail("first pair locked");
    if (ioctl(4, TIOCGPTLCK, &value) || value != 1) return fail("second pair's lock lost");
    if (!(fcntl(4, F_GETFL) & O_NONBLOCK) || (fcntl(5, F_GETFL) & O_NONBLOCK)) return fail("second pair's O_NONBLOCK");
    if (write(5, "x", 1) != 1 || read(4, answer, sizeof answer) != 1 || answer[0] != 'x') return fail("second pair does not talk");
    if (exchange(master, "hello", answer, sizeof answer)) return fail("no answer to hello");
    if (!strstr(answer, "echo:hello ctty=1 fg=1 rows=33")) {
        fprintf(out, "FAIL the reader answered: %s\n", answer);
        return 1;
    }
    fprintf(out, "PASS\n");
    fflush(out);
    return 0;
}

static int outside_mode(const char *log)
{
    out = fopen(log, "a");
    if (!out) return 1;
    wait_for_usr1();
    int foreground = 0;
    if (!on_own_terminal(&foreground)) return fail("stdin is not the controlling terminal");
    if (!foreground) return fail("not in the foreground group");
    dprintf(1, "PROMPT\n");
    char line[256];
    alarm(20);
    ssize_t n = read(0, line, sizeof line - 1);
    if (n <= 0) return fail("read from the terminal");
    line[n] = 0;
    line[strcspn(line, "\r\n")] = 0;
    fprintf(out, "PASS %s\n", line);
    fflush(out);
    return 0;
}

int main(int argc, char **argv)
{
    out = stdout;
    const char *mode = argc > 1 ? argv[1] : "pair";
    if (strcmp(mode, "outside") == 0 && argc > 2) return outside_mode(argv[2]);
    if (strcmp(mode, "pair") == 0) return pair_mode();
    int master;
    char name[64];
    if (open_pair(&master, name, sizeof name)) return fail("posix_openpt");
    if (strcmp(mode, "unread") == 0) {
        int slave = open(name, O_RDWR | O_NOCTTY);
        if (slave < 0 || write(slave, "pending\n", 8) != 8) return fail("slave write");
    }
    wait_for_usr1();
    fprintf(out, "PASS\n");
    fflush(out);
    return 0;
}
