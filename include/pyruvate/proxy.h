/* Trusted reverse proxies: which peers may tell us the client's address,
 * scheme and host, and reading those from X-Forwarded-* and RFC 7239
 * Forwarded header values. No Python here. */
#ifndef PYRUVATE_PROXY_H
#define PYRUVATE_PROXY_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

#include "pyruvate/common.h"

enum { PROXY_MAX_TRUSTED = 32 };

struct proxy_trust {
    int enabled;    /* a trusted_proxy option was given */
    int any;        /* "*": every peer is a proxy */
    int unix_peers; /* "unix": peers on Unix sockets */
    unsigned count;
    struct in6_addr addresses[PROXY_MAX_TRUSTED]; /* IPv4 as v4-mapped */
};

/* Parses a comma-separated list of IP addresses, "*" or "unix". Returns 0, or
 * -1 with a message in err naming the entry that is not an address. */
int proxy_trust_parse(const char *spec, struct proxy_trust *trust, char err[PYR_ERR_LEN]);

/* True if the peer address is one of the trusted proxies. */
int proxy_is_trusted(const struct proxy_trust *trust, const struct sockaddr_storage *peer);

/* The last (rightmost) element of a comma-separated list, trimmed: the one
 * our proxy added. Sets *start and *len within value. */
void proxy_last_element(const char *value, size_t value_len, size_t *start, size_t *len);

/* From the last element of an RFC 7239 Forwarded value, finds the
 * parameter name ("for", "proto", "host"), unquoted. Returns 1 and sets
 * *start and *len within value when present, else 0. */
int proxy_forwarded_param(const char *value, size_t value_len, const char *name, size_t *start,
                          size_t *len);

/* Strips what surrounds an address in X-Forwarded-For or Forwarded "for":
 * brackets of an IPv6 address and a port after it. Adjusts start/len. */
void proxy_strip_port(const char *value, size_t *start, size_t *len);

#endif
