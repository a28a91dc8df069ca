/* The two systemd protocols a service speaks: socket activation
 * (sd_listen_fds(3)) and readiness notification (sd_notify(3)). */
#ifndef PYRUVATE_SYSTEMD_H
#define PYRUVATE_SYSTEMD_H

/* The first descriptor systemd passes. */
#define SYSTEMD_FIRST_FD 3

/* How many listening sockets systemd passed to this process (LISTEN_PID and
 * LISTEN_FDS); 0 when none. */
int systemd_listen_count(void);

/* Sends state (e.g. "READY=1") to $NOTIFY_SOCKET. Returns 1 when sent, 0
 * when not running under a notify service, -1 with errno on failure. */
int systemd_notify(const char *state);

#endif
