/* Checkpoint workload for listening unix sockets (issue 12). Argument: an absolute socket path.
 *   fd 3  stream socket listening on PATH, backlog 7, its file chmod 0600
 *   fd 4  seqpacket socket listening on the abstract name "\0ckpt-listen-<pid>", backlog 3
 *   fd 5  datagram socket bound to "PATH.dgram", whose file is then unlinked (bound, nameless on disk)
 * Prints "READY <pid>", waits for SIGUSR1, checks names, the file mode and that PATH.dgram is still
 * absent, prints LISTENING, then accepts one connection on fd 3 and one on fd 4, reads "ping" from
 * each and answers "pong"; prints PASS or FAIL <what>. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "unix_address.h"
#include "workload.h"

static int serve_one(int listener)
{
    int connection = accept(listener, NULL, NULL);
    if (connection < 0) return fail("accept");
    char buffer[8] = {0};
    if (recv(connection, buffer, 4, 0) != 4 || memcmp(buffer, "ping", 4) != 0) return fail("no ping");
    if (send(connection, "pong", 4, 0) != 4) return fail("pong");
    close(connection);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2) return fail("usage: ckpt_unix_listen PATH");
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);

    char abstract[64], dgram[256];
    snprintf(abstract, sizeof abstract, "ckpt-listen-%d", getpid());
    snprintf(dgram, sizeof dgram, "%s.dgram", argv[1]);
    struct sockaddr_un a;
    if (socket(AF_UNIX, SOCK_STREAM, 0) != 3 || bind(3, (struct sockaddr *)&a, address(&a, argv[1], 0)) || listen(3, 7) || chmod(argv[1], 0600))
        return fail("stream listener on fd 3");
    if (socket(AF_UNIX, SOCK_SEQPACKET, 0) != 4 || bind(4, (struct sockaddr *)&a, address(&a, abstract, 1)) || listen(4, 3))
        return fail("seqpacket listener on fd 4");
    if (socket(AF_UNIX, SOCK_DGRAM, 0) != 5 || bind(5, (struct sockaddr *)&a, address(&a, dgram, 0)) || unlink(dgram))
        return fail("datagram socket on fd 5");

    printf("READY %d\n", getpid());
    while (!got_usr1) pause();

    struct sockaddr_un name;
    socklen_t length = sizeof name;
    if (getsockname(3, (struct sockaddr *)&name, &length) || strcmp(name.sun_path, argv[1]) != 0) return fail("fd 3 name");
    length = sizeof name;
    if (getsockname(4, (struct sockaddr *)&name, &length) || name.sun_path[0] != 0 || strncmp(name.sun_path + 1, abstract, strlen(abstract)) != 0)
        return fail("fd 4 name");
    length = sizeof name;
    if (getsockname(5, (struct sockaddr *)&name, &length) || strcmp(name.sun_path, dgram) != 0) return fail("fd 5 name");
    struct stat st;
    if (stat(argv[1], &st) || !S_ISSOCK(st.st_mode) || (st.st_mode & 0777) != 0600) return fail("socket file mode is not 0600");
    if (stat(dgram, &st) == 0 || errno != ENOENT) return fail("the unlinked datagram socket file is back");
    int value = 0;
    length = sizeof value;
    if (getsockopt(4, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) || !value) return fail("fd 4 is not listening");

    printf("LISTENING\n");
    if (serve_one(3) || serve_one(4)) return 1;
    printf("PASS\n");
    return 0;
}
