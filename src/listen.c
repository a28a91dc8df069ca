/* Listening sockets: address parsing, bind and listen. */
#include "pyruvate/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int listen_parse_address(const char *address, char *host, size_t host_size, char *port,
                         size_t port_size, char err[PYR_ERR_LEN])
{
    const char *host_start = address, *host_end, *colon;
    if (address[0] == '[') {
        host_start = address + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL || host_end[1] != ':')
            goto bad;
        colon = host_end + 1;
    } else {
        colon = strrchr(address, ':');
        if (colon == NULL || memchr(address, ':', (size_t)(colon - address)) != NULL)
            goto bad;
        host_end = colon;
    }
    size_t host_len = (size_t)(host_end - host_start);
    const char *port_start = colon + 1;
    size_t port_len = strlen(port_start);
    if (host_len == 0 || host_len >= host_size || port_len == 0 || port_len >= port_size ||
        port_len > 5)
        goto bad;
    unsigned long port_number = 0;
    for (size_t i = 0; i < port_len; i++) {
        if (port_start[i] < '0' || port_start[i] > '9')
            goto bad;
        port_number = port_number * 10 + (unsigned long)(port_start[i] - '0');
    }
    if (port_number > 65535)
        goto bad;
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    memcpy(port, port_start, port_len + 1);
    return 0;
bad:
    snprintf(err, PYR_ERR_LEN, "cannot parse address '%s': expected host:port or [ipv6]:port",
             address);
    return -1;
}

static void describe_errno(char err[PYR_ERR_LEN], const char *what, const char *address, int error)
{
    char reason[128];
    /* GNU strerror_r returns the message, which may not be in our buffer. */
    const char *text = strerror_r(error, reason, sizeof(reason));
    snprintf(err, PYR_ERR_LEN, "%s %s: %s", what, address, text);
}

int listen_open(struct listener *l, const char *address, int backlog, char err[PYR_ERR_LEN])
{
    char host[256], port[16];
    struct addrinfo *found = NULL;
    int fd = -1, saved_errno;
    l->fd = -1;
    if (listen_parse_address(address, host, sizeof(host), port, sizeof(port), err) < 0) {
        errno = EINVAL;
        return -1;
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    int rc = getaddrinfo(host, port, &hints, &found);
    if (rc != 0) {
        snprintf(err, PYR_ERR_LEN, "cannot resolve %s: %s", address, gai_strerror(rc));
        errno = EINVAL;
        return -1;
    }
    fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (found->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (bind(fd, found->ai_addr, found->ai_addrlen) < 0)
        goto fail;
    if (listen(fd, backlog) < 0)
        goto fail;

    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) < 0)
        goto fail;
    unsigned bound_port = found->ai_family == AF_INET6
                              ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                              : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    l->fd = fd;
    l->family = found->ai_family;
    snprintf(l->server_name, sizeof(l->server_name), "%s", host);
    snprintf(l->server_port, sizeof(l->server_port), "%u", bound_port);
    freeaddrinfo(found);
    return 0;

fail:
    saved_errno = errno;
    describe_errno(err, "cannot listen on", address, saved_errno);
    if (fd >= 0)
        close(fd);
    freeaddrinfo(found);
    errno = saved_errno;
    return -1;
}

void listen_close(struct listener *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}
