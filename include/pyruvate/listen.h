/* Listening sockets: parsing an address and opening a nonblocking,
 * close-on-exec socket bound to it. */
#ifndef PYRUVATE_LISTEN_H
#define PYRUVATE_LISTEN_H

#include "pyruvate/common.h"

struct listener {
    int fd;
    int family;            /* AF_INET, AF_INET6 or AF_UNIX */
    char server_name[256]; /* SERVER_NAME for requests on this socket */
    char server_port[16];  /* SERVER_PORT, the bound port ("" for AF_UNIX) */
};

/* Splits "host:port" or "[v6]:port" into host and port. Returns 0, or -1
 * with a message in err when the address has no usable form. */
int listen_parse_address(const char *address, char *host, size_t host_size, char *port,
                         size_t port_size, char err[PYR_ERR_LEN]);

/* Binds and listens on a TCP address. Returns 0 with l->fd open, or -1 with
 * errno preserved and a message naming the address in err. */
int listen_open(struct listener *l, const char *address, int backlog, char err[PYR_ERR_LEN]);

/* Closes the listening socket. */
void listen_close(struct listener *l);

#endif
