/* Trusted reverse proxies: which peers may tell us the client's address,
 * scheme and host, which of their headers to believe, and how many hops
 * of a forwarding chain they vouch for. Returns plain values; no Python. */
#ifndef PYRUVATE_PROXY_H
#define PYRUVATE_PROXY_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

#include "pyruvate/common.h"
#include "pyruvate/request.h"

enum { PROXY_MAX_TRUSTED = 32, PROXY_MAX_HOPS = 32, PROXY_PORT_LEN = 6 };

/* Forwarding headers as bits of proxy_trust.headers. The first four are
 * applied to the environ; the others (X-Forwarded-Port, X-Real-IP, ...)
 * only reach the app when named. proxy_headers_parse knows them all. */
enum {
    PROXY_FORWARDED = 1u << 0,
    PROXY_X_FORWARDED_FOR = 1u << 1,
    PROXY_X_FORWARDED_PROTO = 1u << 2,
    PROXY_X_FORWARDED_HOST = 1u << 3,
    PROXY_UNLISTED = 1u << 30, /* another X-Forwarded-*: never trusted */
};

/* trusted_proxy_headers when only trusted_proxy is given: the one header
 * every proxy appends to rather than passes on. */
#define PROXY_DEFAULT_HEADERS      PROXY_X_FORWARDED_FOR
#define PROXY_DEFAULT_HEADERS_TEXT "x-forwarded-for"

struct proxy_trust {
    int enabled;    /* a trusted_proxy option was given */
    int any;        /* "*": every peer is a proxy */
    int unix_peers; /* "unix": peers on Unix sockets */
    unsigned count;
    struct in6_addr addresses[PROXY_MAX_TRUSTED]; /* IPv4 as v4-mapped */
    unsigned char prefix_bits[PROXY_MAX_TRUSTED]; /* network prefix; 128 for one address */
    unsigned headers; /* PROXY_* bits: the headers the proxies set or strip */
    unsigned hops;    /* proxies in the chain; the client is this many entries from the right */
};

enum proxy_scheme { PROXY_SCHEME_NONE = 0, PROXY_SCHEME_HTTP, PROXY_SCHEME_HTTPS };

/* What the trusted headers of one request say; only validated values. */
struct proxy_forwarded {
    char address[INET6_ADDRSTRLEN]; /* the client's IP, canonical; "" when none */
    char port[PROXY_PORT_LEN];      /* the client's port if the proxy said; else "" */
    enum proxy_scheme scheme;
    struct span host; /* in the request buffer; len 0 when none */
};

/* Parses trusted_proxy: a comma-separated list of IP addresses, networks
 * ("10.0.0.0/8", "fd00::/8"), "*" or "unix". Sets headers and hops to their defaults. Returns 0, or
 * -1 with a message in err naming the entry that is not an address. */
int proxy_trust_parse(const char *spec, struct proxy_trust *trust, char err[PYR_ERR_LEN]);

/* Parses trusted_proxy_headers: header names separated by commas or
 * spaces, case-insensitive ("" trusts none). Returns 0 with the PROXY_*
 * bits in *headers, or -1 with a message in err. */
int proxy_headers_parse(const char *spec, unsigned *headers, char err[PYR_ERR_LEN]);

/* True if the peer is a trusted proxy: one of the addresses or networks,
 * any peer with "*", a Unix socket peer with "unix" (of which only the
 * family is read). */
int proxy_is_trusted(const struct proxy_trust *trust, const struct sockaddr *peer);

/* True if the app must not see the header `name`: a forwarding header
 * (Forwarded, X-Forwarded-*, X-Real-IP, ...) when trust is enabled and the
 * peer is not trusted or the header is not among trust->headers. */
int proxy_header_dropped(const struct proxy_trust *trust, int peer_trusted, const char *name,
                         size_t len);

/* Reads the trusted headers of a request from a trusted peer: from every
 * field line of a header combined, the entry trust->hops from the right.
 * Forwarded wins over X-Forwarded-* when both give a usable value. */
void proxy_resolve(const struct proxy_trust *trust, const struct request *r, const char *base,
                   struct proxy_forwarded *out);

/* Validators, exposed for the unit tests. Each returns 1 if valid. */

/* An IPv4 or IPv6 literal, optionally with a port ("1.2.3.4:80",
 * "[2001:db8::1]:80", bare "2001:db8::1"), written canonically to out and
 * the port to out_port ("" when none or obfuscated). Both untouched when
 * invalid. */
int proxy_parse_address(const char *s, size_t len, char out[INET6_ADDRSTRLEN],
                        char out_port[PROXY_PORT_LEN]);

/* RFC 9110 §7.2 Host: uri-host [ ":" port ]. */
int proxy_valid_host(const char *s, size_t len);

#endif
