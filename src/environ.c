/* The WSGI environ of one request (PEP 3333), built from the request's
 * spans in the connection buffer, and the per-worker caches that spare
 * building the same header keys and method names for every request. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyruvate/environ.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "pyruvate/input.h"
#include "pyruvate/proxy.h"
#include "pyruvate/server_state.h"
#include "pyruvate/worker_state.h"

static struct module_state *state_of(struct worker *w)
{
    return module_get_state(w->server->module);
}

PyObject *environ_template(struct server *server)
{
    struct module_state *st = module_get_state(server->module);
    PyObject *env = PyDict_New();
    PyObject *errors = PySys_GetObject("stderr"); /* borrowed */
    PyObject *name = PyUnicode_FromString(server->listeners[0].server_name);
    PyObject *port = PyUnicode_FromString(server->listeners[0].server_port);
    PyObject *scheme = PyUnicode_InternFromString(server->options.url_scheme);
    PyObject *prefix = PyUnicode_FromString(server->options.url_prefix);
    if (env == NULL || name == NULL || port == NULL || scheme == NULL || prefix == NULL)
        goto fail;
    if (PyDict_SetItem(env, st->str_wsgi_version, st->wsgi_version_value) < 0 ||
        PyDict_SetItem(env, st->str_wsgi_url_scheme, scheme) < 0 ||
        PyDict_SetItem(env, st->str_wsgi_errors, errors ? errors : Py_None) < 0 ||
        PyDict_SetItem(env, st->str_wsgi_multithread, Py_True) < 0 ||
        PyDict_SetItem(env, st->str_wsgi_multiprocess, Py_False) < 0 ||
        PyDict_SetItem(env, st->str_wsgi_run_once, Py_False) < 0 ||
        PyDict_SetItem(env, st->str_wsgi_input_terminated, Py_True) < 0 ||
        PyDict_SetItem(env, st->str_wsgi_file_wrapper, (PyObject *)st->file_wrapper_type) < 0 ||
        PyDict_SetItem(env, st->str_SCRIPT_NAME, prefix) < 0 ||
        PyDict_SetItem(env, st->str_SERVER_NAME, name) < 0 ||
        PyDict_SetItem(env, st->str_SERVER_PORT, port) < 0)
        goto fail;
    Py_DECREF(name);
    Py_DECREF(port);
    Py_DECREF(scheme);
    Py_DECREF(prefix);
    return env;
fail:
    Py_XDECREF(env);
    Py_XDECREF(name);
    Py_XDECREF(port);
    Py_XDECREF(scheme);
    Py_XDECREF(prefix);
    return NULL;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* PATH_INFO is the path with %XX escapes decoded to bytes, as latin-1
 * (PEP 3333 "Unicode Issues"). Malformed escapes stay as they are. */
static PyObject *decode_path(const char *path, size_t len)
{
    if (memchr(path, '%', len) == NULL)
        return PyUnicode_DecodeLatin1(path, (Py_ssize_t)len, NULL);
    char small[1024] = "";
    char *out = len <= sizeof(small) ? small : PyMem_Malloc(len);
    if (out == NULL)
        return PyErr_NoMemory();
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (path[i] == '%' && i + 2 < len && (hi = hex_value(path[i + 1])) >= 0 &&
            (lo = hex_value(path[i + 2])) >= 0) {
            out[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[n++] = path[i];
        }
    }
    PyObject *result = PyUnicode_DecodeLatin1(out, (Py_ssize_t)n, NULL);
    if (out != small)
        PyMem_Free(out);
    return result;
}

static int set_latin1(PyObject *env, PyObject *key, const char *value, size_t len)
{
    PyObject *v = PyUnicode_DecodeLatin1(value, (Py_ssize_t)len, NULL);
    if (v == NULL)
        return -1;
    int rc = PyDict_SetItem(env, key, v);
    Py_DECREF(v);
    return rc;
}

static int set_owned(PyObject *env, PyObject *key, PyObject *value)
{
    if (value == NULL)
        return -1;
    int rc = PyDict_SetItem(env, key, value);
    Py_DECREF(value);
    return rc;
}

/* Splits the request-target into PATH_INFO and QUERY_STRING. The
 * absolute-form (RFC 9112 §3.2.2) also names the host, which then
 * replaces the Host header. */
static int add_target(PyObject *env, struct module_state *st, const char *target, size_t len,
                      int *host_from_target)
{
    const char *path = target, *end = target + len;
    *host_from_target = 0;
    /* REQUEST_URI: the target as sent, as uWSGI and mod_wsgi offer it. */
    if (set_latin1(env, st->str_REQUEST_URI, target, len) < 0)
        return -1;
    if (len == 1 && target[0] == '*') {
        /* OPTIONS * asks about the server, not a path (RFC 9112 §3.2.4);
         * PATH_INFO stays empty, as PEP 3333 paths start with "/". */
        if (PyDict_SetItem(env, st->str_PATH_INFO, st->str_empty) < 0)
            return -1;
        return PyDict_SetItem(env, st->str_QUERY_STRING, st->str_empty);
    }
    if (len > 0 && target[0] != '/') {
        const char *scheme_end = memchr(target, ':', len);
        if (scheme_end && end - scheme_end >= 3 && scheme_end[1] == '/' && scheme_end[2] == '/') {
            const char *authority = scheme_end + 3;
            const char *authority_end = authority;
            while (authority_end < end && *authority_end != '/' && *authority_end != '?')
                authority_end++;
            if (set_latin1(env, st->str_HTTP_HOST, authority, (size_t)(authority_end - authority)) <
                0)
                return -1;
            *host_from_target = 1;
            path = authority_end;
        }
    }
    const char *query = memchr(path, '?', (size_t)(end - path));
    const char *path_end = query ? query : end;
    if (path == path_end) {
        /* An absolute-form target without a path asks for "/". */
        PyObject *root = path == target ? Py_NewRef(st->str_empty) : PyUnicode_FromString("/");
        if (set_owned(env, st->str_PATH_INFO, root) < 0)
            return -1;
    } else if (set_owned(env, st->str_PATH_INFO, decode_path(path, (size_t)(path_end - path))) <
               0) {
        return -1;
    }
    if (query)
        return set_latin1(env, st->str_QUERY_STRING, query + 1, (size_t)(end - query - 1));
    return PyDict_SetItem(env, st->str_QUERY_STRING, st->str_empty);
}

/* Turns a header name into its env key: CONTENT_TYPE, CONTENT_LENGTH or
 * HTTP_<NAME>. Returns NULL without an exception for names with an
 * underscore: dropping them keeps "X_Forwarded_For" from posing as
 * "X-Forwarded-For" once both are HTTP_X_FORWARDED_FOR. */
static PyObject *header_key(struct module_state *st, const char *name, size_t len)
{
    if (len == 12 && strncasecmp(name, "content-type", 12) == 0)
        return Py_NewRef(st->str_CONTENT_TYPE);
    if (len == 14 && strncasecmp(name, "content-length", 14) == 0)
        return Py_NewRef(st->str_CONTENT_LENGTH);
    if (memchr(name, '_', len))
        return NULL;
    PyObject *key = PyUnicode_New((Py_ssize_t)len + 5, 127);
    if (key == NULL)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(key);
    memcpy(out, "HTTP_", 5);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        out[5 + i] = c == '-' ? '_' : (c >= 'a' && c <= 'z' ? (Py_UCS1)(c - 32) : c);
    }
    PyUnicode_InternInPlace(&key);
    return key;
}

/* The environ key for a header name, from the worker's small cache of
 * names it has seen: the same few names arrive in nearly every request. */
static PyObject *cached_header_key(struct worker *w, const char *name, size_t len)
{
    if (len > ENVIRON_KEY_NAME_LEN)
        return header_key(state_of(w), name, len);
    uint32_t hash = 2166136261u;
    for (size_t i = 0; i < len; i++)
        hash = (hash ^ (unsigned char)name[i]) * 16777619u;
    struct environ_key *slot = &w->environ.keys[hash % ENVIRON_KEY_SLOTS];
    if (slot->key && slot->len == len && memcmp(slot->name, name, len) == 0)
        return Py_NewRef(slot->key);
    PyObject *key = header_key(state_of(w), name, len);
    if (key == NULL && PyErr_Occurred())
        return NULL;
    /* Names that get no key (underscores) are remembered as None. */
    Py_XSETREF(slot->key, Py_NewRef(key ? key : Py_None));
    memcpy(slot->name, name, len);
    slot->len = len;
    return key ? key : Py_NewRef(Py_None);
}

static int add_headers(PyObject *env, struct module_state *st, struct worker *w,
                       const struct conn *c, int skip_host)
{
    const struct request *r = c->request;
    const char *base = c->in.data;
    for (unsigned i = 0; i < r->header_count; i++) {
        const struct request_header *h = &r->headers[i];
        PyObject *key = cached_header_key(w, base + h->name.offset, h->name.len);
        if (key == Py_None) {
            Py_DECREF(key);
            continue;
        }
        if (key == NULL) {
            if (PyErr_Occurred())
                return -1;
            continue;
        }
        if (skip_host && key == st->str_HTTP_HOST) {
            Py_DECREF(key);
            continue;
        }
        PyObject *value =
            PyUnicode_DecodeLatin1(base + h->value.offset, (Py_ssize_t)h->value.len, NULL);
        PyObject *previous = value ? PyDict_GetItemWithError(env, key) : NULL;
        if (previous) {
            /* RFC 9110 §5.3: repeated fields combine into one list. */
            PyObject *joined = PyUnicode_FromFormat("%U, %U", previous, value);
            Py_SETREF(value, joined);
        }
        int rc = value && !PyErr_Occurred() ? PyDict_SetItem(env, key, value) : -1;
        Py_DECREF(key);
        Py_XDECREF(value);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* url_prefix: the application is mounted below it (PEP 3333 SCRIPT_NAME),
 * so a path inside the prefix loses it from PATH_INFO. */
static int strip_url_prefix(struct worker *w, PyObject *env)
{
    struct module_state *st = state_of(w);
    PyObject *path = PyDict_GetItemWithError(env, st->str_PATH_INFO); /* borrowed */
    if (path == NULL)
        return PyErr_Occurred() ? -1 : 0;
    const char *prefix = w->server->options.url_prefix;
    Py_ssize_t prefix_len = (Py_ssize_t)strlen(prefix);
    Py_ssize_t path_len;
    const char *text = module_latin1_data(path, &path_len);
    if (text == NULL || path_len < prefix_len || memcmp(text, prefix, (size_t)prefix_len) != 0 ||
        (path_len > prefix_len && text[prefix_len] != '/'))
        return 0;
    return set_owned(env, st->str_PATH_INFO,
                     PyUnicode_Substring(path, prefix_len, PyUnicode_GET_LENGTH(path)));
}

/* Removes key from env if it is there. */
static int delete_key(PyObject *env, PyObject *key)
{
    if (PyDict_DelItem(env, key) == 0)
        return 0;
    if (!PyErr_ExceptionMatches(PyExc_KeyError))
        return -1;
    PyErr_Clear();
    return 0;
}

/* With trusted_proxy set, the forwarding headers the operator did not name
 * (all of them from an untrusted peer) leave the environ, so neither we nor
 * the app believe a client's own claim; proxy.c decides which, and reads
 * the client's address, scheme and host from the trusted ones. */
static int apply_proxy_headers(struct worker *w, PyObject *env)
{
    struct module_state *st = state_of(w);
    const struct proxy_trust *trust = &w->server->options.trusted_proxies;
    const struct conn *c = w->conn;
    const char *base = c->in.data;
    int peer_trusted = proxy_is_trusted(trust, &c->peer.sa);
    for (unsigned i = 0; i < c->request->header_count; i++) {
        const struct span *name = &c->request->headers[i].name;
        if (!proxy_header_dropped(trust, peer_trusted, base + name->offset, name->len))
            continue;
        PyObject *key = cached_header_key(w, base + name->offset, name->len);
        if (key == NULL) {
            if (PyErr_Occurred())
                return -1;
            continue;
        }
        /* A repeated field was deleted with its first line already. */
        int rc = key == Py_None ? 0 : delete_key(env, key);
        Py_DECREF(key);
        if (rc < 0)
            return -1;
    }
    if (!peer_trusted)
        return 0;
    struct proxy_forwarded forwarded;
    proxy_resolve(trust, c->request, base, &forwarded);
    if (forwarded.address[0]) {
        /* The peer's port belongs to the proxy, not to the client. */
        if (set_owned(env, st->str_REMOTE_ADDR, PyUnicode_FromString(forwarded.address)) < 0 ||
            (forwarded.port[0]
                 ? set_owned(env, st->str_REMOTE_PORT, PyUnicode_FromString(forwarded.port))
                 : delete_key(env, st->str_REMOTE_PORT)) < 0)
            return -1;
    }
    if (forwarded.host.len &&
        set_latin1(env, st->str_HTTP_HOST, base + forwarded.host.offset, forwarded.host.len) < 0)
        return -1;
    if (forwarded.scheme != PROXY_SCHEME_NONE)
        return PyDict_SetItem(env, st->str_wsgi_url_scheme,
                              forwarded.scheme == PROXY_SCHEME_HTTPS ? st->str_https
                                                                     : st->str_http);
    return 0;
}

/* REQUEST_METHOD as a str. llhttp names methods with static strings, so
 * the pointer identifies the method: the worker keeps the str of the last
 * few it saw instead of building one per request. New reference. */
static PyObject *method_string(struct worker *w, const char *method)
{
    for (unsigned i = 0; i < ENVIRON_METHOD_SLOTS; i++)
        if (w->environ.methods[i].name == method)
            return Py_NewRef(w->environ.methods[i].str);
    PyObject *str = PyUnicode_InternFromString(method);
    if (str == NULL)
        return NULL;
    struct environ_method *slot = &w->environ.methods[w->environ.next_method_slot];
    w->environ.next_method_slot = (w->environ.next_method_slot + 1) % ENVIRON_METHOD_SLOTS;
    slot->name = method;
    Py_XSETREF(slot->str, Py_NewRef(str));
    return str;
}

PyObject *environ_build(struct worker *w, PyObject **input)
{
    struct module_state *st = state_of(w);
    struct conn *c = w->conn;
    const struct request *r = c->request;
    const char *base = c->in.data;
    char host[64], port[16];
    int host_from_target;

    *input = NULL;
    PyObject *env = PyDict_Copy(w->server->environ_template);
    if (env == NULL)
        return NULL;
    if (set_owned(env, st->str_REQUEST_METHOD, method_string(w, r->method)) < 0 ||
        PyDict_SetItem(env, st->str_SERVER_PROTOCOL,
                       r->http_minor == 0 ? st->str_HTTP_1_0 : st->str_HTTP_1_1) < 0 ||
        add_target(env, st, base + r->target.offset, r->target.len, &host_from_target) < 0 ||
        add_headers(env, st, w, c, host_from_target) < 0)
        goto fail;

    conn_peer_strings(c, host, sizeof(host), port, sizeof(port));
    if (set_owned(env, st->str_REMOTE_ADDR, PyUnicode_FromString(host)) < 0)
        goto fail;
    /* A Unix socket peer has no port: REMOTE_PORT is left out then. */
    if (port[0] && set_owned(env, st->str_REMOTE_PORT, PyUnicode_FromString(port)) < 0)
        goto fail;
    if (c->listener != &w->server->listeners[0] &&
        (set_owned(env, st->str_SERVER_NAME, PyUnicode_FromString(c->listener->server_name)) < 0 ||
         set_owned(env, st->str_SERVER_PORT, PyUnicode_FromString(c->listener->server_port)) < 0))
        goto fail;

    if (w->server->options.url_prefix[0] && strip_url_prefix(w, env) < 0)
        goto fail;
    if (w->server->options.trusted_proxies.enabled && apply_proxy_headers(w, env) < 0)
        goto fail;
    if (set_owned(env, st->str_queue_wait,
                  PyFloat_FromDouble((double)(c->taken_us - c->queued_us) / 1e6)) < 0)
        goto fail;

    /* The body is decoded already, so its length is known even when it
     * arrived chunked (then the environ carries the decoded length). */
    if (r->chunked || r->body.len > 0) {
        if (set_owned(env, st->str_CONTENT_LENGTH, PyUnicode_FromFormat("%zu", r->body.len)) < 0)
            goto fail;
    }
    *input = input_new(st, base + r->body.offset, (Py_ssize_t)r->body.len);
    if (*input == NULL || PyDict_SetItem(env, st->str_wsgi_input, *input) < 0)
        goto fail;
    return env;
fail:
    if (*input) {
        input_detach(*input);
        Py_CLEAR(*input);
    }
    Py_DECREF(env);
    return NULL;
}

void environ_cache_clear(struct environ_cache *cache)
{
    for (unsigned i = 0; i < ENVIRON_KEY_SLOTS; i++)
        Py_CLEAR(cache->keys[i].key);
    for (unsigned i = 0; i < ENVIRON_METHOD_SLOTS; i++)
        Py_CLEAR(cache->methods[i].str);
}
