/* Trusted proxies and the headers they send (X-Forwarded-*, RFC 7239). */
#include "pyruvate/proxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

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

int proxy_trust_parse(const char *spec, struct proxy_trust *trust, char err[PYR_ERR_LEN])
{
    memset(trust, 0, sizeof(*trust));
    trust->enabled = 1;
    size_t total = strlen(spec), pos = 0;
    while (pos <= total) {
        const char *comma = memchr(spec + pos, ',', total - pos);
        size_t end = comma ? (size_t)(comma - spec) : total;
        size_t start = pos, len = end - pos;
        trim(spec, &start, &len);
        pos = end + 1;
        if (len == 0)
            continue;
        char entry[INET6_ADDRSTRLEN + 1];
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
        struct in6_addr *address = &trust->addresses[trust->count];
        struct in_addr v4;
        if (inet_pton(AF_INET, entry, &v4) == 1) {
            memset(address, 0, sizeof(*address));
            address->s6_addr[10] = 0xff;
            address->s6_addr[11] = 0xff;
            memcpy(&address->s6_addr[12], &v4, 4);
        } else if (inet_pton(AF_INET6, entry, address) != 1) {
            snprintf(err, PYR_ERR_LEN, "trusted_proxy: '%s' is not an IP address", entry);
            return -1;
        }
        trust->count++;
    }
    return 0;
}

int proxy_is_trusted(const struct proxy_trust *trust, const struct sockaddr_storage *peer)
{
    if (!trust->enabled)
        return 0;
    if (trust->any)
        return 1;
    struct in6_addr address;
    if (peer->ss_family == AF_UNIX)
        return trust->unix_peers;
    if (peer->ss_family == AF_INET) {
        memset(&address, 0, sizeof(address));
        address.s6_addr[10] = 0xff;
        address.s6_addr[11] = 0xff;
        memcpy(&address.s6_addr[12], &((const struct sockaddr_in *)peer)->sin_addr, 4);
    } else if (peer->ss_family == AF_INET6) {
        address = ((const struct sockaddr_in6 *)peer)->sin6_addr;
    } else {
        return 0;
    }
    for (unsigned i = 0; i < trust->count; i++)
        if (memcmp(&trust->addresses[i], &address, sizeof(address)) == 0)
            return 1;
    return 0;
}

void proxy_last_element(const char *value, size_t value_len, size_t *start, size_t *len)
{
    size_t begin = value_len;
    while (begin > 0 && value[begin - 1] != ',')
        begin--;
    *start = begin;
    *len = value_len - begin;
    trim(value, start, len);
}

int proxy_forwarded_param(const char *value, size_t value_len, const char *name, size_t *start,
                          size_t *len)
{
    size_t element, element_len;
    size_t name_len = strlen(name);
    proxy_last_element(value, value_len, &element, &element_len);
    size_t pos = element, end = element + element_len;
    while (pos < end) {
        /* One "name=value" pair, up to ';' (quoted values may hold ';'). */
        size_t pair = pos;
        int quoted = 0;
        while (pos < end && (quoted || value[pos] != ';')) {
            if (value[pos] == '"')
                quoted = !quoted;
            pos++;
        }
        size_t pair_start = pair, pair_len = pos - pair;
        pos++;
        trim(value, &pair_start, &pair_len);
        const char *equals = memchr(value + pair_start, '=', pair_len);
        if (equals == NULL)
            continue;
        size_t key_len = (size_t)(equals - (value + pair_start));
        if (key_len != name_len || strncasecmp(value + pair_start, name, name_len) != 0)
            continue;
        *start = (size_t)(equals - value) + 1;
        *len = pair_len - key_len - 1;
        if (*len >= 2 && value[*start] == '"' && value[*start + *len - 1] == '"') {
            (*start)++;
            *len -= 2;
        }
        return 1;
    }
    return 0;
}

void proxy_strip_port(const char *value, size_t *start, size_t *len)
{
    const char *s = value + *start;
    if (*len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', *len);
        if (close) {
            *len = (size_t)(close - s) - 1;
            (*start)++;
        }
        return;
    }
    /* IPv4 with a port has exactly one colon; bare IPv6 has several. */
    const char *colon = memchr(s, ':', *len);
    if (colon && memchr(colon + 1, ':', *len - (size_t)(colon - s) - 1) == NULL)
        *len = (size_t)(colon - s);
}
