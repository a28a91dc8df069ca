/* Listening sockets: address parsing, bind and listen. */
#include "pyruvate/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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
    l->unix_path[0] = '\0';
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
    /* No TCP_DEFER_ACCEPT, although HTTP clients speak first: the kernel
     * keeps a connection whose first bytes are not in yet out of the
     * backlog, and the drain's close() then resets it, so a client that had
     * connected got no answer (1-15 per SIGTERM under a Connection: close
     * flood, measured). Without it such a client is in the backlog, which
     * the drain empties. It cost 3-8 % of Connection: close throughput. */

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

/* Fills server_name/server_port from the socket's own address. */
static int describe_bound_socket(struct listener *l, char err[PYR_ERR_LEN])
{
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    if (getsockname(l->fd, (struct sockaddr *)&bound, &bound_len) < 0) {
        describe_errno(err, "cannot inspect socket", "", errno);
        return -1;
    }
    l->family = bound.ss_family;
    if (bound.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&bound;
        inet_ntop(AF_INET, &in->sin_addr, l->server_name, sizeof(l->server_name));
        snprintf(l->server_port, sizeof(l->server_port), "%u", ntohs(in->sin_port));
    } else if (bound.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&bound;
        inet_ntop(AF_INET6, &in6->sin6_addr, l->server_name, sizeof(l->server_name));
        snprintf(l->server_port, sizeof(l->server_port), "%u", ntohs(in6->sin6_port));
    } else if (bound.ss_family == AF_UNIX) {
        struct sockaddr_un *un = (struct sockaddr_un *)&bound;
        size_t path_len =
            bound_len > offsetof(struct sockaddr_un, sun_path)
                ? strnlen(un->sun_path, bound_len - offsetof(struct sockaddr_un, sun_path))
                : 0;
        snprintf(l->server_name, sizeof(l->server_name), "%.*s", (int)path_len, un->sun_path);
        l->server_port[0] = '\0';
    } else {
        snprintf(err, PYR_ERR_LEN, "unsupported socket family %d", bound.ss_family);
        return -1;
    }
    return 0;
}

/* A socket file that refuses connections is left over from an earlier run
 * and is removed. Anything else stays: a file that is not a socket, a
 * socket that accepts (or whose backlog is full), and one we cannot probe
 * (EACCES: it may be another user's live socket). Returns 0 when the path
 * is free to bind, -1 with errno and err when it must not be touched. */
static int remove_stale_socket(const char *path, const struct sockaddr_un *address,
                               char err[PYR_ERR_LEN])
{
    struct stat info;
    if (lstat(path, &info) < 0 || !S_ISSOCK(info.st_mode))
        return 0; /* bind() reports what is in the way */
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0) {
        describe_errno(err, "cannot probe", path, errno);
        return -1;
    }
    int rc = connect(probe, (const struct sockaddr *)address, sizeof(*address));
    int error = rc == 0 ? 0 : errno;
    close(probe);
    if (error == ECONNREFUSED) {
        unlink(path);
        return 0;
    }
    if (error == 0 || error == EAGAIN) {
        snprintf(err, PYR_ERR_LEN, "cannot listen on %s: another server is using it", path);
        errno = EADDRINUSE;
        return -1;
    }
    char reason[128];
    snprintf(err, PYR_ERR_LEN, "cannot listen on %s: cannot tell whether the socket is in use (%s)",
             path, strerror_r(error, reason, sizeof(reason)));
    errno = EADDRINUSE;
    return -1;
}

int listen_open_unix(struct listener *l, const char *path, unsigned mode, int backlog,
                     char err[PYR_ERR_LEN])
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    int fd = -1, saved_errno;
    l->fd = -1;
    l->unix_path[0] = '\0';
    if (strlen(path) >= sizeof(address.sun_path) || strlen(path) >= sizeof(l->unix_path)) {
        snprintf(err, PYR_ERR_LEN, "unix socket path too long: %s", path);
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(address.sun_path, path, strlen(path) + 1);

    if (remove_stale_socket(path, &address, err) < 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    /* The file bind() creates takes the socket's mode (less the umask):
     * set it now rather than chmod() the path afterwards, which would
     * follow a symlink put there meanwhile. */
    if (mode && fchmod(fd, (mode_t)mode) < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0)
        goto fail;
    memcpy(l->unix_path, path, strlen(path) + 1);
    /* Bits the umask took away are added back, refusing a symlink. */
    if (mode && fchmodat(AT_FDCWD, path, (mode_t)mode, AT_SYMLINK_NOFOLLOW) < 0)
        goto fail;
    if (listen(fd, backlog) < 0)
        goto fail;
    l->fd = fd;
    l->family = AF_UNIX;
    snprintf(l->server_name, sizeof(l->server_name), "%s", path);
    l->server_port[0] = '\0';
    return 0;
fail:
    saved_errno = errno;
    describe_errno(err, "cannot listen on", path, saved_errno);
    if (fd >= 0)
        close(fd);
    if (l->unix_path[0])
        unlink(l->unix_path);
    l->unix_path[0] = '\0';
    errno = saved_errno;
    return -1;
}

int listen_check(int fd, char err[PYR_ERR_LEN])
{
    int accepting = 0, type = 0, domain = 0;
    socklen_t len = sizeof(accepting);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) < 0 || !accepting) {
        snprintf(err, PYR_ERR_LEN, "file descriptor %d is not a listening socket", fd);
        errno = EINVAL;
        return -1;
    }
    len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) {
        snprintf(err, PYR_ERR_LEN, "file descriptor %d is not a stream socket", fd);
        errno = EINVAL;
        return -1;
    }
    len = sizeof(domain);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 ||
        (domain != AF_INET && domain != AF_INET6 && domain != AF_UNIX)) {
        snprintf(err, PYR_ERR_LEN, "file descriptor %d is not a TCP or Unix socket", fd);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int listen_adopt(struct listener *l, int fd, char err[PYR_ERR_LEN])
{
    l->fd = -1;
    l->unix_path[0] = '\0';
    if (listen_check(fd, err) < 0)
        return -1;
    l->fd = fd;
    if (describe_bound_socket(l, err) < 0) {
        l->fd = -1;
        errno = EINVAL;
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return 0;
}

void listen_close(struct listener *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    if (l->unix_path[0])
        unlink(l->unix_path);
    l->unix_path[0] = '\0';
}
