/* systemd socket activation and readiness notification, without libsystemd. */
#include "pyruvate/systemd.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int systemd_listen_count(void)
{
    /* The variables are meant for the process LISTEN_PID names only; a child
     * that inherited the environment must not take the sockets. */
    const char *pid = getenv("LISTEN_PID");
    const char *fds = getenv("LISTEN_FDS");
    if (pid == NULL || fds == NULL)
        return 0;
    char *end;
    long for_pid = strtol(pid, &end, 10);
    if (*end != '\0' || for_pid != (long)getpid())
        return 0;
    long count = strtol(fds, &end, 10);
    if (*end != '\0' || count < 0 || count > 64)
        return 0;
    return (int)count;
}

int systemd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0')
        return 0;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(address.sun_path)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(address.sun_path, path, len);
    if (path[0] == '@')
        address.sun_path[0] = '\0'; /* an abstract socket */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    socklen_t address_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    ssize_t sent =
        sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&address, address_len);
    int saved_errno = errno;
    close(fd);
    errno = saved_errno;
    return sent < 0 ? -1 : 1;
}
