/* Checkpoint workload for unix connections not yet accepted (issue 12). Arguments: an absolute socket
 * path, and optionally "data" (the first client sends bytes before READY: a checkpoint must refuse it).
 *   fd 3  stream listener on PATH, backlog 5; its accept queue holds, oldest first:
 *           fd 5 (a client bound to the abstract name "ckpt-pending-a-<pid>"),
 *           fd 6 (an unbound client),
 *           a client of the child process (bound to "ckpt-pending-child-<pid>")
 *   fd 4  seqpacket listener on the abstract name "ckpt-pending-seq-<pid>", backlog 2, whose queue holds fd 7
 * The child (which closes the root's sockets it inherited) connects after fds 5 and 6, says so through a
 * pipe closed before READY, prints "CHILD <pid>" and waits in recv for the server's "hi",
 * answers "ok" and exits 0. The root prints "READY <pid>" and waits for SIGUSR1; then it accepts on
 * fd 3 three times and checks the order (peer names, and SO_PEERCRED: the third is the child's), talks
 * both ways on each connection, accepts fd 7's connection on fd 4 and exchanges two messages (boundaries
 * kept), reaps the child (exit 0) and prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "unix_address.h"
#include "workload.h"

/* Accepts on LISTENER; the peer must be bound to the abstract NAME (NULL: unbound). */
static int accept_from(int listener, const char *name)
{
    struct sockaddr_un peer;
    socklen_t length = sizeof peer;
    int connection = accept(listener, (struct sockaddr *)&peer, &length);
    if (connection < 0) return -1;
    if (name == NULL ? length != offsetof(struct sockaddr_un, sun_path)
                     : length != offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name) || peer.sun_path[0] != 0 || memcmp(peer.sun_path + 1, name, strlen(name)) != 0)
    {
        errno = 0;
        return -2;
    }
    return connection;
}

static int exchange(int server, int client, const char *what)
{
    char buffer[16] = {0};
    if (send(server, "s2c", 3, 0) != 3 || recv(client, buffer, sizeof buffer, 0) != 3 || memcmp(buffer, "s2c", 3) != 0) return fail(what);
    if (send(client, "c2s!", 4, 0) != 4 || recv(server, buffer, sizeof buffer, 0) != 4 || memcmp(buffer, "c2s!", 4) != 0) return fail(what);
    return 0;
}

static int child_main(const char *path, const char *name, int connected)
{
    struct sockaddr_un a;
    int client = socket(AF_UNIX, SOCK_STREAM, 0);
    if (client < 0 || bind(client, (struct sockaddr *)&a, address(&a, name, 1)) || connect(client, (struct sockaddr *)&a, address(&a, path, 0)))
        return fail("child connect");
    printf("CHILD %d\n", getpid());
    if (write(connected, "c", 1) != 1) return fail("child: pipe");
    close(connected);
    char buffer[8] = {0};
    if (recv(client, buffer, sizeof buffer, 0) != 2 || memcmp(buffer, "hi", 2) != 0) return fail("child: no hi");
    if (send(client, "ok", 2, 0) != 2) return fail("child: ok");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) return fail("usage: ckpt_unix_pending PATH [data]");
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    char first[64], child_name[64], seq[64];
    snprintf(first, sizeof first, "ckpt-pending-a-%d", getpid());
    snprintf(child_name, sizeof child_name, "ckpt-pending-child-%d", getpid());
    snprintf(seq, sizeof seq, "ckpt-pending-seq-%d", getpid());
    struct sockaddr_un a;
    if (socket(AF_UNIX, SOCK_STREAM, 0) != 3 || bind(3, (struct sockaddr *)&a, address(&a, argv[1], 0)) || listen(3, 5))
        return fail("stream listener on fd 3");
    if (socket(AF_UNIX, SOCK_SEQPACKET, 0) != 4 || bind(4, (struct sockaddr *)&a, address(&a, seq, 1)) || listen(4, 2))
        return fail("seqpacket listener on fd 4");
    if (socket(AF_UNIX, SOCK_STREAM, 0) != 5 || bind(5, (struct sockaddr *)&a, address(&a, first, 1)) || connect(5, (struct sockaddr *)&a, address(&a, argv[1], 0)))
        return fail("client fd 5");
    if (socket(AF_UNIX, SOCK_STREAM, 0) != 6 || connect(6, (struct sockaddr *)&a, address(&a, argv[1], 0)))
        return fail("client fd 6");
    if (argc > 2 && strcmp(argv[2], "data") == 0 && send(5, "early", 5, 0) != 5) return fail("early data");
    if (socket(AF_UNIX, SOCK_SEQPACKET, 0) != 7 || connect(7, (struct sockaddr *)&a, address(&a, seq, 1)))
        return fail("seqpacket client fd 7");
    /* The child's connection comes third: it says so through a pipe, closed before READY. */
    int connected[2];
    if (pipe(connected)) return fail("pipe");
    pid_t child = fork();
    if (child == 0)
    {
        for (int fd = 3; fd <= 7; fd++) close(fd); /* none of the root's sockets is shared */
        close(connected[0]);
        int status = child_main(argv[1], child_name, connected[1]);
        return status;
    }
    close(connected[1]);
    char byte;
    if (read(connected[0], &byte, 1) != 1) return fail("the child did not connect");
    close(connected[0]);

    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    int one = accept_from(3, first);
    if (one < 0) return fail(one == -2 ? "first connection is not fd 5's" : "accept 1");
    int two = accept_from(3, NULL);
    if (two < 0) return fail(two == -2 ? "second connection is not fd 6's" : "accept 2");
    int three = accept_from(3, child_name);
    if (three < 0) return fail(three == -2 ? "third connection is not the child's" : "accept 3");
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(three, SOL_SOCKET, SO_PEERCRED, &credentials, &length) || credentials.pid != child)
        return fail("SO_PEERCRED of the third connection is not the child");
    if (exchange(one, 5, "fd 5's connection") || exchange(two, 6, "fd 6's connection")) return 1;
    if (send(three, "hi", 2, 0) != 2) return fail("hi");
    char buffer[8] = {0};
    if (recv(three, buffer, sizeof buffer, 0) != 2 || memcmp(buffer, "ok", 2) != 0) return fail("no ok from the child");
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail("child status");

    int packet = accept(4, NULL, NULL);
    if (packet < 0) return fail("accept on fd 4");
    if (send(7, "m1", 2, 0) != 2 || send(7, "msg2", 4, 0) != 4) return fail("seqpacket send");
    if (recv(packet, buffer, sizeof buffer, 0) != 2 || recv(packet, buffer, sizeof buffer, 0) != 4 || memcmp(buffer, "msg2", 4) != 0)
        return fail("seqpacket boundaries");
    printf("PASS\n");
    return 0;
}
