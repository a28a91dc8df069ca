/* Trusted proxies and the headers they send (X-Forwarded-*, RFC 7239):
 * which peers and headers to believe, and the validated values they give. */
#include "pyruvate/proxy.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

static int nth_entry(const struct request *r, const char *base, const char *name,
                     int quoted_strings, unsigned hops, struct span *entry);
static void forwarded_params(const char *base, struct span element, struct span params[]);
static int valid_port(const char *s, size_t len, int allow_obfuscated);

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char *s, size_t *start, size_t *len)
{
    while (*len > 0 && is_space(s[*start])) {
        (*start)++;
        (*len)--;
    }
    while (*len > 0 && is_space(s[*start + *len - 1]))
        (*len)--;
}

/* The bits of an IPv4 address within the v4-mapped IPv6 space. */
enum { MAPPED_PREFIX_BITS = 96 };

static void map_ipv4(const struct in_addr *v4, struct in6_addr *out)
{
    memset(out, 0, sizeof(*out));
    out->s6_addr[10] = 0xff;
    out->s6_addr[11] = 0xff;
    memcpy(&out->s6_addr[12], v4, 4);
}

/* "10.0.0.1", "10.0.0.0/8", "2001:db8::/32": the address (IPv4 as
 * v4-mapped) and the length of its network prefix. Returns 0 or -1. */
static int parse_network(char *entry, struct in6_addr *address, unsigned char *prefix_bits)
{
    unsigned bits = 128, max_bits = 128, offset = 0;
    char *slash = strchr(entry, '/');
    if (slash) {
        *slash = '\0';
        size_t digits = strspn(slash + 1, "0123456789");
        if (digits == 0 || digits > 3 || slash[1 + digits] != '\0')
            return -1;
        bits = 0;
        for (size_t i = 1; i <= digits; i++)
            bits = bits * 10 + (unsigned)(slash[i] - '0');
    }
    struct in_addr v4;
    if (inet_pton(AF_INET, entry, &v4) == 1) {
        map_ipv4(&v4, address);
        max_bits = 32;
        offset = MAPPED_PREFIX_BITS;
    } else if (inet_pton(AF_INET6, entry, address) != 1) {
        return -1;
    }
    if (slash == NULL)
        bits = max_bits;
    if (bits > max_bits)
        return -1;
    *prefix_bits = (unsigned char)(offset + bits);
    return 0;
}

/* True if the first `bits` bits of a and b agree. */
static int same_network(const struct in6_addr *a, const struct in6_addr *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a->s6_addr, b->s6_addr, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a->s6_addr[whole] & mask) == (b->s6_addr[whole] & mask);
}

int proxy_trust_parse(const char *spec, struct proxy_trust *trust, char err[PYR_ERR_LEN])
{
    memset(trust, 0, sizeof(*trust));
    trust->enabled = 1;
    trust->headers = PROXY_DEFAULT_HEADERS;
    trust->hops = 1;
    size_t total = strlen(spec), pos = 0;
    while (pos <= total) {
        const char *comma = memchr(spec + pos, ',', total - pos);
        size_t end = comma ? (size_t)(comma - spec) : total;
        size_t start = pos, len = end - pos;
        trim(spec, &start, &len);
        pos = end + 1;
        if (len == 0)
            continue;
        char entry[INET6_ADDRSTRLEN + 5]; /* room for "/128" */
        if (len >= sizeof(entry)) {
            snprintf(err, PYR_ERR_LEN, "trusted_proxy: '%.*s' is not an IP address", (int)len,
                     spec + start);
            return -1;
        }
        memcpy(entry, spec + start, len);
        entry[len] = '\0';
        if (strcmp(entry, "*") == 0) {
            trust->any = 1;
            continue;
        }
        if (strcasecmp(entry, "unix") == 0) {
            trust->unix_peers = 1;
            continue;
        }
        if (trust->count == PROXY_MAX_TRUSTED) {
            snprintf(err, PYR_ERR_LEN, "trusted_proxy: more than %d addresses", PROXY_MAX_TRUSTED);
            return -1;
        }
        if (parse_network(entry, &trust->addresses[trust->count],
                          &trust->prefix_bits[trust->count]) < 0) {
            snprintf(err, PYR_ERR_LEN,
                     "trusted_proxy: '%.*s' is not an IP address or network (such as "
                     "10.0.0.0/8)",
                     (int)len, spec + start);
            return -1;
        }
        trust->count++;
    }
    return 0;
}

int proxy_is_trusted(const struct proxy_trust *trust, const struct sockaddr *peer)
{
    if (!trust->enabled)
        return 0;
    if (trust->any)
        return 1;
    struct in6_addr address;
    if (peer->sa_family == AF_UNIX)
        return trust->unix_peers;
    if (peer->sa_family == AF_INET) {
        map_ipv4(&((const struct sockaddr_in *)peer)->sin_addr, &address);
    } else if (peer->sa_family == AF_INET6) {
        address = ((const struct sockaddr_in6 *)peer)->sin6_addr;
    } else {
        return 0;
    }
    for (unsigned i = 0; i < trust->count; i++)
        if (same_network(&trust->addresses[i], &address, trust->prefix_bits[i]))
            return 1;
    return 0;
}

/* The forwarding headers, in the order of their PROXY_* bits: the first
 * four are applied; the rest are what frameworks and middleware read for
 * the client's address or scheme, so a client must not be able to send
 * them past a proxy that does not set them. */
static const char *const forwarding_headers[] = {
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "x-forwarded-protocol",
    "x-forwarded-scheme",
    "x-real-ip",
    "x-scheme",
    "x-url-scheme",
    "front-end-https",
    "true-client-ip",
    "x-client-ip",
    "cf-connecting-ip",
    "x-cluster-client-ip",
    "x-forwarded",
    "forwarded-for",
    "client-ip",
    "fastly-client-ip",
    "x-original-forwarded-for",
    "x-host",
    "x-original-host",
};
_Static_assert(ARRAY_SIZE(forwarding_headers) < 30, "forwarding header bits overflow");

static const char forwarded_prefix[] = "x-forwarded-";

/* The PROXY_* bit of a header name; 0 for a header that forwards nothing. */
static unsigned header_kind(const char *name, size_t len)
{
    if (len == 0)
        return 0;
    char first = (char)(name[0] | 0x20);
    if (first != 'f' && first != 'x' && first != 't' && first != 'c')
        return 0;
    for (size_t i = 0; i < ARRAY_SIZE(forwarding_headers); i++)
        if (strlen(forwarding_headers[i]) == len &&
            strncasecmp(forwarding_headers[i], name, len) == 0)
            return 1u << i;
    size_t prefix_len = sizeof(forwarded_prefix) - 1;
    if (len > prefix_len && strncasecmp(name, forwarded_prefix, prefix_len) == 0)
        return PROXY_UNLISTED;
    return 0;
}

int proxy_headers_parse(const char *spec, unsigned *headers, char err[PYR_ERR_LEN])
{
    *headers = 0;
    const char *pos = spec;
    while (*pos) {
        pos += strspn(pos, ", \t");
        size_t len = strcspn(pos, ", \t");
        if (len == 0)
            break;
        unsigned kind = header_kind(pos, len);
        if (kind == 0 || kind == PROXY_UNLISTED) {
            int n = snprintf(
                err, PYR_ERR_LEN,
                "trusted_proxy_headers: '%.*s' is not a forwarding header; known:", (int)len, pos);
            for (size_t i = 0; i < ARRAY_SIZE(forwarding_headers) && n > 0 && n < PYR_ERR_LEN; i++)
                n += snprintf(err + n, PYR_ERR_LEN - (size_t)n, " %s", forwarding_headers[i]);
            return -1;
        }
        *headers |= kind;
        pos += len;
    }
    return 0;
}

int proxy_header_dropped(const struct proxy_trust *trust, int peer_trusted, const char *name,
                         size_t len)
{
    if (!trust->enabled)
        return 0;
    unsigned kind = header_kind(name, len);
    return kind != 0 && !(peer_trusted && (trust->headers & kind));
}

/* The entry `hops` from the right of all field lines of header `name`
 * combined into one list (RFC 9110 §5.3), empty entries skipped. With
 * quoted_strings (Forwarded), commas inside quotes do not split, and an
 * unterminated quote makes the whole field unusable: it would swallow
 * what the next proxy appended. Returns 1 and sets *entry (offsets in
 * base), or 0 when there are fewer entries than hops. */
static int nth_entry(const struct request *r, const char *base, const char *name,
                     int quoted_strings, unsigned hops, struct span *entry)
{
    struct span ring[PROXY_MAX_HOPS]; /* the last `hops` entries seen */
    unsigned seen = 0;
    size_t name_len = strlen(name);
    for (unsigned i = 0; i < r->header_count; i++) {
        const struct request_header *h = &r->headers[i];
        if (h->name.len != name_len || strncasecmp(base + h->name.offset, name, name_len) != 0)
            continue;
        const char *value = base + h->value.offset;
        size_t n = h->value.len;
        for (size_t pos = 0; pos <= n; pos++) {
            size_t start = pos;
            int in_quotes = 0;
            for (; pos < n && (in_quotes || value[pos] != ','); pos++) {
                if (!quoted_strings)
                    continue;
                if (in_quotes && value[pos] == '\\' && pos + 1 < n)
                    pos++;
                else if (value[pos] == '"')
                    in_quotes = !in_quotes;
            }
            if (in_quotes)
                return 0;
            size_t len = pos - start;
            trim(value, &start, &len);
            if (len == 0)
                continue;
            ring[seen % hops] = (struct span){h->value.offset + start, len};
            seen++;
        }
    }
    if (seen < hops)
        return 0;
    *entry = ring[(seen - hops) % hops];
    return 1;
}

enum { FORWARDED_FOR, FORWARDED_PROTO, FORWARDED_HOST, FORWARDED_PARAMS };
static const char *const forwarded_names[FORWARDED_PARAMS] = {"for", "proto", "host"};

/* The for/proto/host values of one Forwarded element (RFC 7239 §4),
 * without their quotes; len 0 when missing or given twice (§4: "MUST NOT
 * occur more than once"). */
static void forwarded_params(const char *base, struct span element, struct span params[])
{
    unsigned times[FORWARDED_PARAMS] = {0};
    const char *s = base + element.offset;
    size_t end = element.len;
    for (unsigned i = 0; i < FORWARDED_PARAMS; i++)
        params[i] = (struct span){0, 0};
    for (size_t pos = 0; pos < end; pos++) {
        size_t pair = pos;
        int in_quotes = 0;
        for (; pos < end && (in_quotes || s[pos] != ';'); pos++) {
            if (in_quotes && s[pos] == '\\' && pos + 1 < end)
                pos++;
            else if (s[pos] == '"')
                in_quotes = !in_quotes;
        }
        size_t pair_len = pos - pair;
        trim(s, &pair, &pair_len);
        const char *equals = memchr(s + pair, '=', pair_len);
        if (equals == NULL)
            continue;
        size_t key_len = (size_t)(equals - (s + pair));
        size_t value = pair + key_len + 1, value_len = pair_len - key_len - 1;
        if (value_len >= 2 && s[value] == '"' && s[value + value_len - 1] == '"') {
            value++;
            value_len -= 2;
        }
        for (unsigned i = 0; i < FORWARDED_PARAMS; i++) {
            if (strlen(forwarded_names[i]) != key_len ||
                strncasecmp(s + pair, forwarded_names[i], key_len) != 0)
                continue;
            if (++times[i] == 1)
                params[i] = (struct span){element.offset + value, value_len};
        }
    }
    for (unsigned i = 0; i < FORWARDED_PARAMS; i++)
        if (times[i] > 1)
            params[i] = (struct span){0, 0};
}

/* 0-65535 in decimal; or, in Forwarded, an obfuscated port "_x" (RFC 7239
 * §6.3). */
static int valid_port(const char *s, size_t len, int allow_obfuscated)
{
    if (allow_obfuscated && len > 1 && s[0] == '_') {
        for (size_t i = 1; i < len; i++)
            if (!(s[i] >= '0' && s[i] <= '9') && !((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z') &&
                s[i] != '.' && s[i] != '_' && s[i] != '-')
                return 0;
        return 1;
    }
    if (len == 0 || len > 5)
        return 0;
    unsigned long port = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        port = port * 10 + (unsigned long)(s[i] - '0');
    }
    return port <= 65535;
}

/* inet_pton on a span: family AF_INET or AF_INET6. */
static int parse_ip(int family, const char *s, size_t len, unsigned char binary[16])
{
    char text[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof(text) || memchr(s, '\0', len))
        return 0;
    memcpy(text, s, len);
    text[len] = '\0';
    return inet_pton(family, text, binary) == 1;
}

int proxy_parse_address(const char *s, size_t len, char out[INET6_ADDRSTRLEN],
                        char out_port[PROXY_PORT_LEN])
{
    const char *address = s, *port = NULL;
    size_t address_len = len, port_len = 0;
    int family = AF_INET;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return 0;
        family = AF_INET6;
        address = s + 1;
        address_len = (size_t)(close - address);
        size_t rest = len - (size_t)(close - s) - 1;
        if (rest > 0) {
            if (close[1] != ':')
                return 0;
            port = close + 2;
            port_len = rest - 1;
        }
    } else {
        /* IPv4 with a port has exactly one colon; bare IPv6 has several. */
        const char *colon = memchr(s, ':', len);
        if (colon && memchr(colon + 1, ':', len - (size_t)(colon - s) - 1) == NULL) {
            address_len = (size_t)(colon - s);
            port = colon + 1;
            port_len = len - address_len - 1;
        } else if (colon) {
            family = AF_INET6;
        }
    }
    unsigned char binary[16];
    char text[INET6_ADDRSTRLEN];
    if ((port && !valid_port(port, port_len, 1)) ||
        !parse_ip(family, address, address_len, binary) ||
        inet_ntop(family, binary, text, sizeof(text)) == NULL)
        return 0;
    memcpy(out, text, sizeof(text));
    /* An obfuscated port ("_x") is no port number. */
    size_t copied = port && port[0] != '_' ? port_len : 0;
    if (copied > 0)
        memcpy(out_port, port, copied);
    out_port[copied] = '\0';
    return 1;
}

/* RFC 3986 reg-name: unreserved / pct-encoded / sub-delims. */
static int reg_name_char(char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c != '\0' && strchr("-._~!$&'()*+,;=", c) != NULL);
}

static int hex_digit(char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

int proxy_valid_host(const char *s, size_t len)
{
    size_t host_len;
    unsigned char binary[16];
    if (len > 0 && s[0] == '[') {
        /* IP-literal; IPvFuture is not accepted. */
        const char *close = memchr(s, ']', len);
        if (close == NULL || !parse_ip(AF_INET6, s + 1, (size_t)(close - s) - 1, binary))
            return 0;
        host_len = (size_t)(close - s) + 1;
    } else {
        const char *colon = memchr(s, ':', len);
        host_len = colon ? (size_t)(colon - s) : len;
        for (size_t i = 0; i < host_len; i++) {
            if (s[i] == '%' && i + 2 < host_len && hex_digit(s[i + 1]) && hex_digit(s[i + 2]))
                i += 2;
            else if (!reg_name_char(s[i]))
                return 0;
        }
    }
    if (host_len == 0)
        return 0;
    if (host_len == len)
        return 1;
    return s[host_len] == ':' && valid_port(s + host_len + 1, len - host_len - 1, 0);
}

static enum proxy_scheme scheme_of(const char *s, size_t len)
{
    if (len == 5 && strncasecmp(s, "https", 5) == 0)
        return PROXY_SCHEME_HTTPS;
    if (len == 4 && strncasecmp(s, "http", 4) == 0)
        return PROXY_SCHEME_HTTP;
    return PROXY_SCHEME_NONE;
}

/* A value that fails validation is not used, and nothing further left in
 * the list is tried instead: those entries came from the client. RFC 7239
 * "unknown" and obfuscated identifiers ("_hidden") name no address, so
 * REMOTE_ADDR stays the peer's then. */
void proxy_resolve(const struct proxy_trust *trust, const struct request *r, const char *base,
                   struct proxy_forwarded *out)
{
    memset(out, 0, sizeof(*out));
    unsigned hops = trust->hops >= 1 && trust->hops <= PROXY_MAX_HOPS ? trust->hops : 1;
    struct span entry;
    if ((trust->headers & PROXY_FORWARDED) && nth_entry(r, base, "forwarded", 1, hops, &entry)) {
        struct span params[FORWARDED_PARAMS];
        forwarded_params(base, entry, params);
        const struct span *p = &params[FORWARDED_FOR];
        if (p->len)
            proxy_parse_address(base + p->offset, p->len, out->address, out->port);
        p = &params[FORWARDED_PROTO];
        out->scheme = scheme_of(base + p->offset, p->len);
        p = &params[FORWARDED_HOST];
        if (p->len && proxy_valid_host(base + p->offset, p->len))
            out->host = *p;
    }
    if (!out->address[0] && (trust->headers & PROXY_X_FORWARDED_FOR) &&
        nth_entry(r, base, "x-forwarded-for", 0, hops, &entry))
        proxy_parse_address(base + entry.offset, entry.len, out->address, out->port);
    if (out->scheme == PROXY_SCHEME_NONE && (trust->headers & PROXY_X_FORWARDED_PROTO) &&
        nth_entry(r, base, "x-forwarded-proto", 0, hops, &entry))
        out->scheme = scheme_of(base + entry.offset, entry.len);
    if (out->host.len == 0 && (trust->headers & PROXY_X_FORWARDED_HOST) &&
        nth_entry(r, base, "x-forwarded-host", 0, hops, &entry) &&
        proxy_valid_host(base + entry.offset, entry.len))
        out->host = entry;
}
