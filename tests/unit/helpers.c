/* Test helpers shared by the suites; see helpers.h. */
#include "helpers.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

void guard_buf_init(struct guard_buf *g, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (len + page - 1) / page;
    size_t map_len = (data_pages + 1) * page;
    char *map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_msg(map != MAP_FAILED, "mmap: errno %d", errno);
    char *guard = map + data_pages * page;
    ck_assert_int_eq(mprotect(guard, page, PROT_NONE), 0);
    g->_map = map;
    g->_map_len = map_len;
    g->data = guard - len;
    g->len = len;
}

void guard_buf_init_copy(struct guard_buf *g, const void *bytes, size_t len)
{
    guard_buf_init(g, len);
    if (len)
        memcpy(g->data, bytes, len);
}

void guard_buf_free(struct guard_buf *g)
{
    if (g->_map != NULL)
        munmap(g->_map, g->_map_len);
    memset(g, 0, sizeof(*g));
}

enum request_state feed_request(struct request *r, struct guard_buf *g, const char *input,
                                size_t len, size_t first, size_t step, enum feed_mode mode)
{
    memset(g, 0, sizeof(*g));
    if (mode == FEED_IN_PLACE)
        guard_buf_init_copy(g, input, len);
    size_t have = 0;
    enum request_state state = REQUEST_INCOMPLETE;
    while (state == REQUEST_INCOMPLETE && have < len) {
        size_t next = have == 0 ? first : (step ? have + step : len);
        if (next > len || next == 0)
            next = len;
        if (mode == FEED_MOVING) {
            /* The parsed prefix comes from the old buffer, since chunked
             * bodies are compacted in place; the new bytes from the input. */
            struct guard_buf moved;
            guard_buf_init(&moved, next);
            if (have)
                memcpy(moved.data, g->data, have);
            memcpy(moved.data + have, input + have, next - have);
            guard_buf_free(g);
            *g = moved;
        }
        have = next;
        state = request_feed(r, g->data, have);
    }
    return state;
}

void make_socketpair(int fds[2])
{
    int rc = socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
    ck_assert_msg(rc == 0, "socketpair: errno %d", errno);
}

void set_blocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    ck_assert_int_ge(flags, 0);
    ck_assert_int_eq(fcntl(fd, F_SETFL, flags & ~O_NONBLOCK), 0);
}
