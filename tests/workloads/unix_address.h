/* A unix socket address: a path, or with abstract set an abstract name (a leading NUL); returns its
   length. Shared by the unix socket workloads (ckpt_unix_listen.c, ckpt_unix_pending.c). */
#ifndef CKPT_UNIX_ADDRESS_H
#define CKPT_UNIX_ADDRESS_H
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

static socklen_t address(struct sockaddr_un *a, const char *name, int abstract)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    strncpy(a->sun_path + (abstract ? 1 : 0), name, sizeof a->sun_path - 2);
    return abstract ? offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name) : sizeof *a;
}
#endif
