/* Checkpoint workload for pseudo-terminals (issue 12). Modes:
 *   pair (default)  the root opens a pair (posix_openpt; master fd 3), sets on it packet mode, the slave's
 *                   termios (no ECHO, VINTR ^G, 9600 baud) and window size 33x101 (7x9 pixels), forks a
 *                   session leader (setsid, TIOCSCTTY on the slave, slave on 0-2) that forks a reader in
 *                   a process group of its own made the terminal's foreground group (tcsetpgrp), then
 *                   locks the pair (TIOCSPTLCK) and exchanges one line with the reader, then sends it
 *                   "queued" and leaves its answer unread on the master. Prints READY,
 *                   waits for SIGUSR1, then checks the modes, lock, termios and window size through the masters,
 *                   that the unread answer is still there, exactly, in one packet,
 *                   sends "hello" and requires the reader's answer, which reports whether the reader still
 *                   has the terminal as controlling terminal (/proc/self/stat tty_nr is its stdin's
 *                   device, /dev/tty opens) and is in the foreground group; prints PASS or FAIL.
 *   output          two pairs with unread output: the first (master fd 3, slave fd 4) with custom termios
 *                   (no ECHO, VINTR ^G, 2400 baud, OPOST|ONLCR kept) and window size 40x120, its slave
 *                   having written "first line\nsecond\tline\n" and 3000 bytes i % 251 (ONLCR makes each
 *                   \n \r\n on the master); the second (master fd 5, O_NONBLOCK, packet mode; slave fd 6)
 *                   "packet\n". READY, SIGUSR1, then checks the termios, window size and packet mode and
 *                   that each master reads exactly those bytes and no more, and that the pairs still talk.
 *   lonely          a master whose slave nobody holds (refused at checkpoint).
 *   backlog         the slave wrote until the pair's buffers were full (12 KiB: refused at checkpoint);
 *                   after SIGUSR1 the master still reads all of it.
 *   input           the master wrote "typed\n", the slave's reader has not read it (refused); after
 *                   SIGUSR1 the slave still reads it.
 *   stopped         the slave wrote "x\n", then its output was stopped (tcflow TCOOFF: refused); after
 *                   SIGUSR1 and TCOON the master reads "x\r\n".
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
#include "workload.h"

/* Where PASS and FAIL go: stdout, or a log file in the mode whose stdout is the terminal under test. */
static FILE *out;

/* fail() of workload.h, written to `out`. */
static int log_failure(const char *what)
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
    if (open_pair(&master, name, sizeof name)) return log_failure("posix_openpt");
    int slave = open(name, O_RDWR | O_NOCTTY);
    struct termios t;
    if (slave < 0 || tcgetattr(slave, &t)) return log_failure("open slave");
    t.c_lflag &= ~(ECHO | ECHOE | ECHOK | ECHONL);
    t.c_cc[VINTR] = 7;
    cfsetispeed(&t, B9600);
    cfsetospeed(&t, B9600);
    struct winsize size = { .ws_row = 33, .ws_col = 101, .ws_xpixel = 7, .ws_ypixel = 9 };
    if (tcsetattr(slave, TCSANOW, &t) || ioctl(master, TIOCSWINSZ, &size) || ioctl(master, TIOCPKT, &one)) return log_failure("terminal settings");
    if (fork() == 0) leader(slave, master);
    close(slave);
    if (exchange(master, "warm", answer, sizeof answer)) return log_failure("first exchange");
    /* a second pair, both ends here (fds 4, 5), locked once its slave is open (a locked pair's slave
     * cannot be opened again, /dev/tty included: the first pair stays unlocked) */
    int master2 = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (master2 != 4 || grantpt(master2) || unlockpt(master2) || ptsname_r(master2, name, sizeof name)) return log_failure("second pair");
    if (open(name, O_RDWR | O_NOCTTY) != 5 || ioctl(master2, TIOCSPTLCK, &one)) return log_failure("second slave, TIOCSPTLCK");
    /* the reader's answer to "queued" left unread on the master (ECHO is off: the answer only) */
    const char *queued = "echo:queued ctty=1 fg=1 rows=33\r\n";
    int unread = 0;
    if (write(master, "queued\n", 7) != 7) return log_failure("write of queued");
    for (int i = 0; i < 1000 && unread < (int)strlen(queued); i++) { usleep(10000); ioctl(master, FIONREAD, &unread); }
    if (unread != (int)strlen(queued)) return log_failure("the reader's answer to queued did not arrive");
    wait_for_usr1();

    int value = 0;
    if (tcgetattr(master, &t) || (t.c_lflag & ECHO) || t.c_cc[VINTR] != 7 || cfgetospeed(&t) != B9600 || !(t.c_lflag & ICANON))
        return log_failure("termios changed");
    if (ioctl(master, TIOCGWINSZ, &size) || size.ws_row != 33 || size.ws_col != 101 || size.ws_xpixel != 7 || size.ws_ypixel != 9)
        return log_failure("window size changed");
    if (ioctl(master, TIOCGPKT, &value) || value != 1) return log_failure("packet mode lost");
    if (ioctl(master, TIOCGPTLCK, &value) || value != 0) return log_failure("first pair locked");
    if (ioctl(4, TIOCGPTLCK, &value) || value != 1) return log_failure("second pair's lock lost");
    if (!(fcntl(4, F_GETFL) & O_NONBLOCK) || (fcntl(5, F_GETFL) & O_NONBLOCK)) return log_failure("second pair's O_NONBLOCK");
    if (write(5, "x", 1) != 1 || read(4, answer, sizeof answer) != 1 || answer[0] != 'x') return log_failure("second pair does not talk");
    if (ioctl(master, FIONREAD, &value) || value != (int)strlen(queued)) return log_failure("the unread answer's length changed");
    char first[128];
    if (read(master, first, sizeof first) != 1 + (ssize_t)strlen(queued) || first[0] != 0 || memcmp(first + 1, queued, strlen(queued)))
        return log_failure("the unread answer to queued changed");
    if (exchange(master, "hello", answer, sizeof answer)) return log_failure("no answer to hello");
    if (!strstr(answer, "echo:hello ctty=1 fg=1 rows=33")) {
        fprintf(out, "FAIL the reader answered: %s\n", answer);
        return 1;
    }
    fprintf(out, "PASS\n");
    fflush(out);
    return 0;
}

/* reads a master until nothing more comes within 200 ms */
static size_t drain(int master, char *buffer, size_t size)
{
    size_t used = 0;
    struct pollfd p = { .fd = master, .events = POLLIN };
    while (used < size && poll(&p, 1, 200) > 0 && (p.revents & POLLIN)) {
        ssize_t n = read(master, buffer + used, size - used);
        if (n <= 0) break;
        used += n;
    }
    return used;
}

/* what the master of the first pair must read: the slave's bytes with each \n made \r\n (ONLCR) */
static size_t expected_output(char *out_bytes, char *written, size_t *written_length)
{
    size_t w = 0, o = 0;
    const char *text = "first line\nsecond\tline\n";
    memcpy(written, text, strlen(text));
    w = strlen(text);
    for (int i = 0; i < 3000; i++) written[w++] = (char)(i % 251);
    for (size_t i = 0; i < w; i++) {
        if (written[i] == '\n') out_bytes[o++] = '\r';
        out_bytes[o++] = written[i];
    }
    *written_length = w;
    return o;
}

static int output_mode(void)
{
    static char written[4096], expected[8192], got[16384];
    size_t written_length, expected_length = expected_output(expected, written, &written_length);
    int master = posix_openpt(O_RDWR | O_NOCTTY), one = 1;
    char name[64];
    if (master != 3 || grantpt(master) || unlockpt(master) || ptsname_r(master, name, sizeof name)) return log_failure("first pair");
    if (open(name, O_RDWR | O_NOCTTY) != 4) return log_failure("first slave");
    struct termios t;
    if (tcgetattr(4, &t)) return log_failure("tcgetattr");
    t.c_lflag &= ~(ECHO | ECHOE | ECHOK | ECHONL);
    t.c_cc[VINTR] = 7;
    cfsetispeed(&t, B2400);
    cfsetospeed(&t, B2400);
    t.c_oflag |= OPOST | ONLCR;
    struct winsize size = { .ws_row = 40, .ws_col = 120 };
    if (tcsetattr(4, TCSANOW, &t) || ioctl(3, TIOCSWINSZ, &size)) return log_failure("first pair's settings");
    if (write(4, written, written_length) != (ssize_t)written_length) return log_failure("first slave's write");
    int master2 = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (master2 != 5 || grantpt(master2) || unlockpt(master2) || ptsname_r(master2, name, sizeof name)) return log_failure("second pair");
    if (open(name, O_RDWR | O_NOCTTY) != 6 || ioctl(5, TIOCPKT, &one)) return log_failure("second slave, TIOCPKT");
    if (write(6, "packet\n", 7) != 7) return log_failure("second slave's write");
    wait_for_usr1();

    int value = 0;
    if (tcgetattr(3, &t) || (t.c_lflag & ECHO) || t.c_cc[VINTR] != 7 || cfgetospeed(&t) != B2400 || (t.c_oflag & (OPOST | ONLCR)) != (OPOST | ONLCR))
        return log_failure("first pair's termios changed");
    if (ioctl(3, TIOCGWINSZ, &size) || size.ws_row != 40 || size.ws_col != 120) return log_failure("first pair's window size changed");
    if (ioctl(5, TIOCGPKT, &value) || value != 1) return log_failure("second pair's packet mode lost");
    if (ioctl(3, FIONREAD, &value) || value != (int)expected_length) {
        fprintf(out, "FAIL the first master has %d bytes unread, not %zu\n", value, expected_length);
        return 1;
    }
    size_t n = drain(3, got, sizeof got);
    if (n != expected_length || memcmp(got, expected, n) != 0) {
        fprintf(out, "FAIL the first master read %zu bytes, %zu expected%s\n", n, expected_length, n == expected_length ? " (different bytes)" : "");
        return 1;
    }
    n = drain(5, got, sizeof got);
    if (n != 9 || memcmp(got, "\0packet\r\n", 9) != 0) {
        fprintf(out, "FAIL the second master read %zu bytes: %.*s\n", n, (int)n, got);
        return 1;
    }
    if (write(4, "x\n", 2) != 2 || drain(3, got, sizeof got) != 3 || memcmp(got, "x\r\n", 3) != 0) return log_failure("first pair does not talk");
    fprintf(out, "PASS\n");
    fflush(out);
    return 0;
}

static int refused_mode(const char *mode)
{
    static char buffer[65536];
    int master, value = 0;
    char name[64];
    if (open_pair(&master, name, sizeof name)) return log_failure("posix_openpt");
    int slave = open(name, O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (slave < 0) return log_failure("open slave");
    ssize_t total = 0;
    if (strcmp(mode, "backlog") == 0) {
        memset(buffer, 'b', sizeof buffer);
        for (ssize_t n; (n = write(slave, buffer, sizeof buffer)) > 0;) total += n;
    } else if (strcmp(mode, "input") == 0) {
        if (write(master, "typed\n", 6) != 6) return log_failure("master write");
    } else if (strcmp(mode, "stopped") == 0) {
        if (write(slave, "x\n", 2) != 2 || tcflow(slave, TCOOFF) != 0) return log_failure("write, TCOOFF");
    }
    wait_for_usr1();
    if (strcmp(mode, "backlog") == 0 && drain(master, buffer, sizeof buffer) != (size_t)total) return log_failure("the backlog changed");
    if (strcmp(mode, "input") == 0 && (ioctl(slave, FIONREAD, &value) || value != 6 || read(slave, buffer, sizeof buffer) != 6)) return log_failure("the input changed");
    if (strcmp(mode, "stopped") == 0 && (tcflow(slave, TCOON) || drain(master, buffer, sizeof buffer) != 3 || memcmp(buffer, "x\r\n", 3))) return log_failure("the stopped output changed");
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
    if (!on_own_terminal(&foreground)) return log_failure("stdin is not the controlling terminal");
    if (!foreground) return log_failure("not in the foreground group");
    dprintf(1, "PROMPT\n");
    char line[256];
    alarm(20);
    ssize_t n = read(0, line, sizeof line - 1);
    if (n <= 0) return log_failure("read from the terminal");
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
    if (strcmp(mode, "output") == 0) return output_mode();
    if (strcmp(mode, "lonely") != 0) return refused_mode(mode);
    int master;
    char name[64];
    if (open_pair(&master, name, sizeof name)) return log_failure("posix_openpt");
    wait_for_usr1();
    fprintf(out, "PASS\n");
    fflush(out);
    return 0;
}
