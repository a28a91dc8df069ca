/* libFuzzer harness for src/proxy.c (`make fuzz-proxy`; see ci/fuzz-proxy.mk).
 * Input: byte 0 = trusted_proxy_count - 1 (low 3 bits), byte 1 = which of
 * Forwarded, X-Forwarded-For/-Proto/-Host are trusted (low 4 bits), then
 * the client's header lines, one per '\n', the first byte of each picking
 * the header. After them, each of the trusted proxies appends its own line
 * to every header, the outermost first, as nginx and HAProxy do. Whatever
 * the client sent, proxy_resolve must give the outermost proxy's values or
 * none at all, never a value of the client's; X-Forwarded-* can not be
 * spoiled, so when trusted they must give exactly the proxy's values. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pyruvate/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_LINES = 48 }; /* room for 16 client lines and 4 per proxy (at most 8) */

static const char *const names[] = {"Forwarded", "X-Forwarded-For", "X-Forwarded-Proto",
                                    "x-forwarded-host"};

struct fuzz_request {
    char base[8192];
    size_t used;
    struct request_header headers[MAX_LINES];
    struct request request;
};

static void add_line(struct fuzz_request *f, const char *name, const char *value, size_t len)
{
    size_t name_len = strlen(name);
    if (f->request.header_count == MAX_LINES || f->used + name_len + len > sizeof(f->base))
        return;
    struct request_header *h = &f->headers[f->request.header_count++];
    memcpy(f->base + f->used, name, name_len);
    h->name = (struct span){f->used, name_len};
    f->used += name_len;
    memcpy(f->base + f->used, value, len);
    h->value = (struct span){f->used, len};
    f->used += len;
}

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_proxy: %s\n", what);
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static struct fuzz_request f;
    memset(&f.headers, 0, sizeof(f.headers));
    f.used = 0;
    f.request = (struct request){.headers = f.headers};
    struct proxy_trust trust = {.enabled = 1, .any = 1};
    trust.hops = (data[0] & 7u) + 1;
    trust.headers = data[1] & 0xfu;
    const char *client = (const char *)data + 2, *end = (const char *)data + size;
    while (client < end && f.request.header_count < MAX_LINES - 4 * trust.hops) {
        const char *newline = memchr(client, '\n', (size_t)(end - client));
        const char *line_end = newline ? newline : end;
        if (line_end > client)
            add_line(&f, names[(unsigned char)client[0] % 4], client + 1,
                     (size_t)(line_end - client - 1));
        client = line_end + 1;
    }
    for (unsigned i = 1; i <= trust.hops; i++) {
        char value[96];
        int n = snprintf(value, sizeof(value), "for=192.0.2.%u;proto=https;host=p%u.example", i, i);
        add_line(&f, names[0], value, (size_t)n);
        n = snprintf(value, sizeof(value), "192.0.2.%u", i);
        add_line(&f, names[1], value, (size_t)n);
        add_line(&f, names[2], "https", 5);
        n = snprintf(value, sizeof(value), "p%u.example", i);
        add_line(&f, names[3], value, (size_t)n);
    }
    struct proxy_forwarded out;
    proxy_resolve(&trust, &f.request, f.base, &out);
    int host_is_proxys =
        out.host.len == 10 && memcmp(f.base + out.host.offset, "p1.example", 10) == 0;
    check(out.address[0] == '\0' || strcmp(out.address, "192.0.2.1") == 0, "address spoofed");
    check(out.port[0] == '\0', "port spoofed"); /* the proxies send none */
    check(out.host.len == 0 || host_is_proxys, "host spoofed");
    check(out.scheme != PROXY_SCHEME_HTTP, "scheme spoofed");
    if (trust.headers & PROXY_X_FORWARDED_FOR)
        check(strcmp(out.address, "192.0.2.1") == 0, "X-Forwarded-For lost");
    if (trust.headers & PROXY_X_FORWARDED_PROTO)
        check(out.scheme == PROXY_SCHEME_HTTPS, "X-Forwarded-Proto lost");
    if (trust.headers & PROXY_X_FORWARDED_HOST)
        check(host_is_proxys, "X-Forwarded-Host lost");
    if (!(trust.headers & (PROXY_FORWARDED | PROXY_X_FORWARDED_FOR)))
        check(out.address[0] == '\0', "address from an untrusted header");
    /* The validators agree with what they let through. */
    char again[INET6_ADDRSTRLEN], port[PROXY_PORT_LEN];
    if (out.address[0])
        check(proxy_parse_address(out.address, strlen(out.address), again, port) &&
                  strcmp(again, out.address) == 0,
              "address not canonical");
    if (out.host.len)
        check(proxy_valid_host(f.base + out.host.offset, out.host.len), "host invalid");
    /* The validators alone, on the raw client bytes. */
    size_t len = (size_t)(end - (const char *)data - 2);
    if (proxy_parse_address((const char *)data + 2, len, again, port))
        check(strlen(again) > 0, "empty address");
    proxy_valid_host((const char *)data + 2, len);
    return 0;
}
