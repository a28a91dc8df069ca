/* Listening sockets: parsing an address and opening a nonblocking,
 * close-on-exec socket bound to it. */
#ifndef PYRUVATE_LISTEN_H
#define PYRUVATE_LISTEN_H

#include "pyruvate/common.h"

struct listener {
    int fd;
    int family;            /* AF_INET, AF_INET6 or AF_UNIX */
    char server_name[256]; /* SERVER_NAME: the host, or the path of a Unix socket */
    char server_port[16];  /* SERVER_PORT, the bound port ("" for AF_UNIX) */
    char unix_path[108];   /* socket file to remove on close; "" if none */
};

/* Splits "host:port" or "[v6]:port" into host and port. Returns 0, or -1
 * with a message in err when the address has no usable form. */
int listen_parse_address(const char *address, char *host, size_t host_size, char *port,
                         size_t port_size, char err[PYR_ERR_LEN]);

/* Binds and listens on a TCP address. Returns 0 with l->fd open, or -1 with
 * errno preserved and a message naming the address in err. */
int listen_open(struct listener *l, const char *address, int backlog, char err[PYR_ERR_LEN]);

/* Binds and listens on a Unix socket path. A stale socket file (nobody
 * accepts on it) is replaced; mode, unless 0, sets its permissions. The file
 * is removed again by listen_close. Returns 0, or -1 with errno and err. */
int listen_open_unix(struct listener *l, const char *path, unsigned mode, int backlog,
                     char err[PYR_ERR_LEN]);

/* Returns 0 when fd is a listening TCP or Unix stream socket, else -1 with
 * errno EINVAL and err. Leaves fd alone either way. */
int listen_check(int fd, char err[PYR_ERR_LEN]);

/* Serves on an already bound and listening socket (systemd activation, a
 * socket passed in). Takes ownership of fd on success only: on failure
 * (fd fails listen_check) it is neither changed nor closed. Returns 0, or
 * -1 with errno and err. */
int listen_adopt(struct listener *l, int fd, char err[PYR_ERR_LEN]);

/* Closes the listening socket (and removes a Unix socket file we made). */
void listen_close(struct listener *l);

#endif
