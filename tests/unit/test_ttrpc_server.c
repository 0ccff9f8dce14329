/* ttrpc_server over a real socket: byte-by-byte writes, pipelined calls answered out of
 * order, deadlines reaching the handler, oversize frames, and connection-close cancels. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <time.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "pbwire.h"
#include "provider.h"
#include "ttrpc.h"
#include "ttrpc_server.h"

const struct provider_ops *const provider_table[] = {NULL};

struct fixture {
    uv_loop_t loop;
    uv_async_t stop;
    struct ttrpc_server *srv;
    char dir[64], path[128];
    int cancels;
    int last_cancel_code;
    struct ttrpc_call *held; /* a call the "hold" handler keeps open */
    uv_timer_t slow;
    struct ttrpc_call *slow_call;
    uv_async_t answer; /* the client thread asks the loop to answer the held call */
    sem_t answered;
};

static void echo(struct ttrpc_call *c, const uint8_t *p, size_t n, void *ctx)
{
    (void)ctx;
    ttrpc_call_reply(c, p, n);
}

static void slow_fire(uv_timer_t *t)
{
    struct fixture *f = t->data;
    static const uint8_t out[] = "slow";
    ttrpc_call_reply(f->slow_call, out, 4);
}

static void slow(struct ttrpc_call *c, const uint8_t *p, size_t n, void *ctx)
{
    (void)p;
    (void)n;
    struct fixture *f = ctx;
    f->slow_call = c;
    uv_timer_start(&f->slow, slow_fire, 100, 0);
}

static void hold_cancel(struct ttrpc_call *c, int code, void *arg)
{
    struct fixture *f = arg;
    f->cancels++;
    f->last_cancel_code = code;
    f->held = NULL;
    ttrpc_call_fail(c, code, "cancelled with %d", code);
}

static void hold(struct ttrpc_call *c, const uint8_t *p, size_t n, void *ctx)
{
    (void)p;
    (void)n;
    struct fixture *f = ctx;
    f->held = c;
    ttrpc_call_on_cancel(c, hold_cancel, f);
}

static const struct ttrpc_method methods[] = {
    {"test.T", "Echo", echo},
    {"test.T", "Slow", slow},
    {"test.T", "Hold", hold},
};

static void answer_cb(uv_async_t *a)
{
    struct fixture *f = a->data;
    if (f->held) {
        struct ttrpc_call *c = f->held;
        f->held = NULL;
        static const uint8_t out[] = "late";
        ttrpc_call_reply(c, out, 4);
    }
    sem_post(&f->answered);
}

static void stop_cb(uv_async_t *a)
{
    struct fixture *f = a->data;
    ttrpc_server_close(f->srv);
    uv_close((uv_handle_t *)&f->stop, NULL);
    uv_close((uv_handle_t *)&f->slow, NULL);
    uv_close((uv_handle_t *)&f->answer, NULL);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/ttrpc-srv-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/s.sock", f->dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_async_init(&f->loop, &f->stop, stop_cb);
    f->stop.data = f;
    uv_timer_init(&f->loop, &f->slow);
    f->slow.data = f;
    uv_async_init(&f->loop, &f->answer, answer_cb);
    f->answer.data = f;
    sem_init(&f->answered, 0, 0);
    f->srv = ttrpc_server_new(&f->loop, methods, 3, f);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, f->path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(ttrpc_server_serve_fd(f->srv, fd), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(uv_loop_close(&f->loop), 0);
    sem_destroy(&f->answered);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int client_connect(const struct fixture *f)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, f->path);
    struct timeval tv = {10, 0}; /* bounded: a hung server fails the test instead of hanging it */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
        return -1;
    return fd;
}

/* Encodes a request frame into out; returns its length. */
static size_t request_frame(uint8_t *out, uint32_t stream, const char *method, const char *payload, int64_t timeout)
{
    uint8_t body[512];
    size_t n = pbwire_len_field_write(body, 1, "test.T", 6);
    n += pbwire_len_field_write(body + n, 2, method, strlen(method));
    if (payload)
        n += pbwire_len_field_write(body + n, 3, payload, strlen(payload));
    if (timeout)
        n += pbwire_varint_field_write(body + n, 4, (uint64_t)timeout);
    struct ttrpc_header h = {(uint32_t)n, stream, TTRPC_REQUEST, 0};
    ttrpc_header_encode(out, &h);
    memcpy(out + TTRPC_HEADER_SIZE, body, n);
    return TTRPC_HEADER_SIZE + n;
}

static int read_full(int fd, uint8_t *buf, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = read(fd, buf + off, n - off);
        if (r <= 0)
            return -1;
        off += (size_t)r;
    }
    return 0;
}

struct reply {
    uint32_t stream;
    int32_t code;
    char payload[64];
};

static int read_reply(int fd, struct reply *r)
{
    uint8_t hdr[TTRPC_HEADER_SIZE], body[1024];
    if (read_full(fd, hdr, sizeof(hdr)))
        return -1;
    struct ttrpc_header h;
    ttrpc_header_decode(&h, hdr);
    if (h.type != TTRPC_RESPONSE || h.length > sizeof(body) || read_full(fd, body, h.length))
        return -1;
    struct ttrpc_response resp;
    const char *why;
    if (ttrpc_response_decode(&resp, body, h.length, &why))
        return -1;
    r->stream = h.stream_id;
    r->code = resp.code;
    snprintf(r->payload, sizeof(r->payload), "%.*s", (int)resp.payload.len, (const char *)resp.payload.data);
    return 0;
}

struct client_job {
    struct fixture *f;
    void (*run)(struct fixture *f, int fd);
    int failed;
};

static void *client_thread(void *arg)
{
    struct client_job *j = arg;
    int fd = client_connect(j->f);
    if (fd < 0)
        j->failed = 1;
    else {
        j->run(j->f, fd);
        close(fd);
    }
    uv_async_send(&j->f->stop);
    return NULL;
}

static void run_client(struct fixture *f, void (*fn)(struct fixture *, int))
{
    struct client_job j = {f, fn, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_thread, &j), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    assert_int_equal(j.failed, 0);
}

/* Failures inside the client thread are recorded and checked on the main thread. */
static int client_errors;
#define CHECK(cond)                                                                                               \
    do {                                                                                                          \
        if (!(cond)) {                                                                                            \
            fprintf(stderr, "client check failed: %s (line %d)\n", #cond, __LINE__);                             \
            client_errors++;                                                                                      \
        }                                                                                                         \
    } while (0)

static void bytewise(struct fixture *f, int fd)
{
    (void)f;
    uint8_t frame[256];
    size_t n = request_frame(frame, 1, "Echo", "hello", 0);
    for (size_t i = 0; i < n; i++)
        CHECK(write(fd, frame + i, 1) == 1);
    struct reply r;
    CHECK(read_reply(fd, &r) == 0);
    CHECK(r.stream == 1 && r.code == 0 && !strcmp(r.payload, "hello"));
}

static void test_bytewise_writes(void **state)
{
    client_errors = 0;
    run_client(*state, bytewise);
    assert_int_equal(client_errors, 0);
}

static void out_of_order(struct fixture *f, int fd)
{
    (void)f;
    uint8_t frames[512];
    size_t n = request_frame(frames, 1, "Slow", NULL, 0);
    n += request_frame(frames + n, 3, "Echo", "fast", 0);
    CHECK(write(fd, frames, n) == (ssize_t)n); /* both frames in one write */
    struct reply a, b;
    CHECK(read_reply(fd, &a) == 0);
    CHECK(read_reply(fd, &b) == 0);
    CHECK(a.stream == 3 && !strcmp(a.payload, "fast"));
    CHECK(b.stream == 1 && !strcmp(b.payload, "slow"));
}

static void test_pipelined_out_of_order(void **state)
{
    client_errors = 0;
    run_client(*state, out_of_order);
    assert_int_equal(client_errors, 0);
}

static void deadline(struct fixture *f, int fd)
{
    uint8_t frame[256];
    size_t n = request_frame(frame, 1, "Hold", NULL, 50 * 1000000LL);
    CHECK(write(fd, frame, n) == (ssize_t)n);
    struct reply r;
    CHECK(read_reply(fd, &r) == 0);
    CHECK(r.stream == 1 && r.code == TTRPC_DEADLINE_EXCEEDED);
    (void)f;
}

static void test_deadline_reaches_handler(void **state)
{
    struct fixture *f = *state;
    client_errors = 0;
    run_client(f, deadline);
    assert_int_equal(client_errors, 0);
    assert_int_equal(f->cancels, 1);
    assert_int_equal(f->last_cancel_code, TTRPC_DEADLINE_EXCEEDED);
}

static void oversize(struct fixture *f, int fd)
{
    (void)f;
    uint8_t hdr[TTRPC_HEADER_SIZE];
    uint32_t len = TTRPC_MESSAGE_MAX + 1;
    struct ttrpc_header h = {len, 1, TTRPC_REQUEST, 0};
    ttrpc_header_encode(hdr, &h);
    CHECK(write(fd, hdr, sizeof(hdr)) == sizeof(hdr));
    static uint8_t junk[65536];
    memset(junk, 0x55, sizeof(junk));
    for (uint32_t left = len; left;) {
        uint32_t k = left < sizeof(junk) ? left : (uint32_t)sizeof(junk);
        ssize_t w = write(fd, junk, k);
        CHECK(w > 0);
        if (w <= 0)
            return;
        left -= (uint32_t)w;
    }
    struct reply r;
    CHECK(read_reply(fd, &r) == 0);
    CHECK(r.stream == 1 && r.code == TTRPC_RESOURCE_EXHAUSTED);
    uint8_t frame[256];
    size_t n = request_frame(frame, 3, "Echo", "after", 0);
    CHECK(write(fd, frame, n) == (ssize_t)n);
    CHECK(read_reply(fd, &r) == 0);
    CHECK(r.stream == 3 && r.code == 0 && !strcmp(r.payload, "after"));
}

static void test_oversize_keeps_connection(void **state)
{
    client_errors = 0;
    run_client(*state, oversize);
    assert_int_equal(client_errors, 0);
}

static void hang_up(struct fixture *f, int fd)
{
    (void)f;
    uint8_t frame[256];
    size_t n = request_frame(frame, 1, "Hold", NULL, 0);
    CHECK(write(fd, frame, n) == (ssize_t)n);
    /* A round trip on the same connection proves the Hold call was dispatched first. */
    n = request_frame(frame, 3, "Echo", "x", 0);
    CHECK(write(fd, frame, n) == (ssize_t)n);
    struct reply r;
    CHECK(read_reply(fd, &r) == 0 && r.stream == 3);
}

static void test_close_cancels_calls(void **state)
{
    struct fixture *f = *state;
    client_errors = 0;
    run_client(f, hang_up);
    assert_int_equal(client_errors, 0);
    assert_int_equal(f->cancels, 1);
    assert_int_equal(f->last_cancel_code, TTRPC_CANCELED);
    assert_null(f->held);
}

/* The client stops reading (its socket refuses data: EPIPE) without hanging up, so the
 * server learns of it only when it answers the held call: the failed write closes the
 * connection, which cancels the calls on it, and the one being answered must not be one of
 * them (its cancel hook answered and freed it a second time). */
static void refuse_answers(struct fixture *f, int fd)
{
    uint8_t frame[256];
    size_t n = request_frame(frame, 1, "Hold", NULL, 0);
    CHECK(write(fd, frame, n) == (ssize_t)n);
    n = request_frame(frame, 3, "Echo", "x", 0);
    CHECK(write(fd, frame, n) == (ssize_t)n);
    struct reply r;
    CHECK(read_reply(fd, &r) == 0 && r.stream == 3);
    CHECK(shutdown(fd, SHUT_RD) == 0);
    uv_async_send(&f->answer);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    int rc;
    while ((rc = sem_timedwait(&f->answered, &until)) && errno == EINTR)
        ;
    CHECK(rc == 0);
}

static void test_answer_to_refusing_peer(void **state)
{
    struct fixture *f = *state;
    client_errors = 0;
    run_client(f, refuse_answers);
    assert_int_equal(client_errors, 0);
    assert_int_equal(f->cancels, 0); /* the answered call was not cancelled as well */
    assert_null(f->held);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the daemon: a refused write is an error, not a signal */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bytewise_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_reaches_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_keeps_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_to_refusing_peer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
