/* An IPv4 or IPv6 socket address from its text ("127.0.0.1", "::1") and a port; returns its length.
   Shared by the TCP workloads (ckpt_tcp_repair.c, ckpt_tcp_stream.c). */
#ifndef CKPT_INET_ADDRESS_H
#define CKPT_INET_ADDRESS_H
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static socklen_t address(const char *text, int port, struct sockaddr_storage *a)
{
    memset(a, 0, sizeof *a);
    if (strchr(text, ':')) {
        struct sockaddr_in6 *six = (struct sockaddr_in6 *)a;
        six->sin6_family = AF_INET6;
        six->sin6_port = htons(port);
        inet_pton(AF_INET6, text, &six->sin6_addr);
        return sizeof *six;
    }
    struct sockaddr_in *four = (struct sockaddr_in *)a;
    four->sin_family = AF_INET;
    four->sin_port = htons(port);
    inet_pton(AF_INET, text, &four->sin_addr);
    return sizeof *four;
}
#endif
