#include "ttrpc_server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "log.h"

#define READ_CHUNK (64 * 1024)
#define WRITE_HIGH (16u << 20) /* stop reading a client that does not read its answers */
#define WRITE_LOW (4u << 20)

struct conn;

struct ttrpc_server {
    uv_loop_t *loop;
    uv_pipe_t listener;
    bool listening;
    bool closing;
    const struct ttrpc_method *methods;
    size_t n_methods;
    void *ctx;
    LIST_HEAD(, conn) conns;
    size_t n_conns;
    size_t handles; /* open uv handles; the server is freed when it drops to 0 while closing */
};

struct conn {
    uv_pipe_t pipe;
    struct ttrpc_server *srv;
    LIST_ENTRY(conn) link;       /* on srv->conns until closed */
    LIST_HEAD(, ttrpc_call) calls; /* not yet answered */
    uint8_t *buf;
    size_t len, cap;
    struct ttrpc_framer framer;
    uint32_t last_stream;
    size_t queued; /* response bytes handed to uv_write and not yet written */
    bool paused;
    bool closing;
};

struct ttrpc_call {
    uv_timer_t timer; /* first member: the close callback recovers the call from it */
    struct conn *conn;
    LIST_ENTRY(ttrpc_call) link; /* on conn->calls while conn is set */
    uint32_t stream_id;
    uint64_t deadline;
    bool has_timer;
    bool cancelled;
    ttrpc_cancel_fn cancel_fn;
    void *cancel_arg;
};

struct write_req {
    uv_write_t req;
    struct conn *conn;
    size_t len;
    uint8_t data[];
};

static void server_handle_closed(struct ttrpc_server *s)
{
    if (--s->handles == 0 && s->closing)
        free(s);
}

struct ttrpc_server *ttrpc_server_new(uv_loop_t *loop, const struct ttrpc_method *methods, size_t n, void *ctx)
{
    struct ttrpc_server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->loop = loop;
    s->methods = methods;
    s->n_methods = n;
    s->ctx = ctx;
    return s;
}

size_t ttrpc_server_connections(const struct ttrpc_server *s)
{
    return s->n_conns;
}

/* ---- calls ---------------------------------------------------------------------------- */

static void call_unlink(struct ttrpc_call *c)
{
    if (!c->conn)
        return;
    LIST_REMOVE(c, link);
    c->conn = NULL;
}

static void call_timer_closed(uv_handle_t *h)
{
    free(h); /* the timer is the call's first member */
}

static void call_free(struct ttrpc_call *c)
{
    call_unlink(c);
    if (c->has_timer)
        uv_close((uv_handle_t *)&c->timer, call_timer_closed);
    else
        free(c);
}

static void conn_write_done(uv_write_t *req, int status);
void ttrpc_call_cancel(struct ttrpc_call *c, int code);
static void conn_close(struct conn *cn);
static void conn_resume(struct conn *cn);

static void conn_send(struct conn *cn, const struct ttrpc_header *h, int32_t code, const char *msg, size_t msg_len,
                      const uint8_t *payload, size_t payload_len)
{
    size_t body = ttrpc_response_size(code, msg_len, payload_len);
    if (body > TTRPC_MESSAGE_MAX) {
        /* The Go server refuses to send such a frame and tells the client instead. */
        static const char too_big[] = "response exceeds maximum message size";
        conn_send(cn, h, TTRPC_RESOURCE_EXHAUSTED, too_big, sizeof(too_big) - 1, NULL, 0);
        return;
    }
    struct write_req *w = malloc(sizeof(*w) + TTRPC_HEADER_SIZE + body);
    if (!w) {
        log_error("ttrpc", "out of memory answering stream %u; closing connection", h->stream_id);
        conn_close(cn);
        return;
    }
    struct ttrpc_header rh = {(uint32_t)body, h->stream_id, TTRPC_RESPONSE, 0};
    ttrpc_header_encode(w->data, &rh);
    ttrpc_response_encode(w->data + TTRPC_HEADER_SIZE, code, msg, msg_len, payload, payload_len);
    w->conn = cn;
    w->len = TTRPC_HEADER_SIZE + body;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
    /* Most answers fit the socket buffer: written at once, they cost no write request and no
     * epoll change (libuv re-arms the watcher after every queued write). uv_try_write refuses
     * while earlier writes are queued, which keeps the order. */
    int n = uv_try_write((uv_stream_t *)&cn->pipe, &b, 1);
    if (n == (int)w->len) {
        free(w);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        free(w);
        conn_close(cn);
        return;
    }
    if (n > 0) {
        b = uv_buf_init((char *)w->data + n, (unsigned)(w->len - (size_t)n));
        w->len -= (size_t)n;
    }
    int rc = uv_write(&w->req, (uv_stream_t *)&cn->pipe, &b, 1, conn_write_done);
    if (rc) {
        free(w);
        conn_close(cn);
        return;
    }
    cn->queued += w->len;
    if (cn->queued > WRITE_HIGH && !cn->paused) {
        uv_read_stop((uv_stream_t *)&cn->pipe);
        cn->paused = true;
    }
}

static void call_answer(struct ttrpc_call *c, int32_t code, const char *msg, size_t msg_len, const uint8_t *payload,
                        size_t payload_len)
{
    /* Off its connection first: a failed write closes the connection, which cancels the calls
     * still on it, and this one is being answered (its cancel hook must not run). */
    struct conn *cn = c->conn;
    call_unlink(c);
    if (cn && !cn->closing) {
        struct ttrpc_header h = {0, c->stream_id, TTRPC_RESPONSE, 0};
        conn_send(cn, &h, code, msg, msg_len, payload, payload_len);
    }
    call_free(c);
}

void ttrpc_call_reply(struct ttrpc_call *c, const uint8_t *payload, size_t len)
{
    call_answer(c, TTRPC_OK, NULL, 0, payload, len);
}

void ttrpc_call_fail(struct ttrpc_call *c, int code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(msg))
        n = sizeof(msg) - 1;
    call_answer(c, code, msg, (size_t)n, NULL, 0);
}

void ttrpc_call_abandon(struct ttrpc_call *c)
{
    call_free(c);
}

uint64_t ttrpc_call_deadline(const struct ttrpc_call *c)
{
    return c->deadline;
}

void ttrpc_call_on_cancel(struct ttrpc_call *c, ttrpc_cancel_fn fn, void *arg)
{
    c->cancel_fn = fn;
    c->cancel_arg = arg;
}

void ttrpc_call_cancel(struct ttrpc_call *c, int code)
{
    if (c->cancelled)
        return;
    c->cancelled = true;
    if (c->has_timer)
        uv_timer_stop(&c->timer);
    if (c->cancel_fn)
        c->cancel_fn(c, code, c->cancel_arg);
}

static void call_deadline_fired(uv_timer_t *t)
{
    ttrpc_call_cancel((struct ttrpc_call *)t, TTRPC_DEADLINE_EXCEEDED);
}

/* ---- connections ---------------------------------------------------------------------- */

static void conn_closed(uv_handle_t *h)
{
    struct conn *cn = (struct conn *)h;
    struct ttrpc_server *s = cn->srv;
    free(cn->buf);
    free(cn);
    server_handle_closed(s);
}

static void conn_close(struct conn *cn)
{
    if (cn->closing)
        return;
    cn->closing = true;
    /* As in the Go server, a call's context ends with its connection: handlers are told,
     * still own their calls, and their answers go nowhere. */
    struct ttrpc_call *c;
    while ((c = LIST_FIRST(&cn->calls))) {
        call_unlink(c);
        ttrpc_call_cancel(c, TTRPC_CANCELED);
    }
    LIST_REMOVE(cn, link);
    cn->srv->n_conns--;
    uv_close((uv_handle_t *)&cn->pipe, conn_closed);
}

static void conn_write_done(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct conn *cn = w->conn;
    cn->queued -= w->len;
    free(w);
    if (status < 0) {
        if (status != UV_ECANCELED)
            conn_close(cn);
        return;
    }
    if (cn->paused && cn->queued < WRITE_LOW && !cn->closing) {
        cn->paused = false;
        conn_resume(cn);
    }
}

static const struct ttrpc_method *method_find(const struct ttrpc_server *s, const struct ttrpc_request *r,
                                              bool *service_known)
{
    *service_known = false;
    for (size_t i = 0; i < s->n_methods; i++) {
        if (!ttrpc_bytes_eq(r->service, s->methods[i].service))
            continue;
        *service_known = true;
        if (ttrpc_bytes_eq(r->method, s->methods[i].method))
            return &s->methods[i];
    }
    return NULL;
}

static void conn_fail_stream(struct conn *cn, uint32_t stream, int code, const char *msg)
{
    struct ttrpc_header h = {0, stream, TTRPC_RESPONSE, 0};
    conn_send(cn, &h, code, msg, strlen(msg), NULL, 0);
}

static void conn_dispatch(struct conn *cn, const struct ttrpc_header *h, const uint8_t *data)
{
    struct ttrpc_server *s = cn->srv;
    if (h->type != TTRPC_REQUEST)
        return; /* unknown types are ignored for forward compatibility, as the Go server does */
    if (!(h->stream_id & 1)) {
        conn_fail_stream(cn, h->stream_id, TTRPC_INVALID_ARGUMENT, "StreamID must be odd for client initiated streams");
        return;
    }
    if (h->stream_id <= cn->last_stream) {
        conn_fail_stream(cn, h->stream_id, TTRPC_INVALID_ARGUMENT, "StreamID cannot be re-used and must increment");
        return;
    }
    cn->last_stream = h->stream_id;

    struct ttrpc_request req;
    const char *why;
    char msg[256];
    if (ttrpc_request_decode(&req, data, h->length, &why)) {
        snprintf(msg, sizeof(msg), "unmarshal request error: %s", why);
        conn_fail_stream(cn, h->stream_id, TTRPC_INVALID_ARGUMENT, msg);
        return;
    }
    bool service_known;
    const struct ttrpc_method *m = method_find(s, &req, &service_known);
    if (!m) {
        const struct ttrpc_bytes *name = service_known ? &req.method : &req.service;
        snprintf(msg, sizeof(msg), "%s %.*s", service_known ? "method" : "service",
                 (int)(name->len > 200 ? 200 : name->len), (const char *)name->data);
        conn_fail_stream(cn, h->stream_id, TTRPC_UNIMPLEMENTED, msg);
        return;
    }

    struct ttrpc_call *c = calloc(1, sizeof(*c));
    if (!c) {
        conn_fail_stream(cn, h->stream_id, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    c->stream_id = h->stream_id;
    c->conn = cn;
    LIST_INSERT_HEAD(&cn->calls, c, link);
    if (req.timeout_nano > 0) {
        uint64_t ms = ((uint64_t)req.timeout_nano + 999999) / 1000000;
        c->deadline = uv_now(s->loop) + ms;
        if (uv_timer_init(s->loop, &c->timer) == 0) {
            c->has_timer = true;
            uv_timer_start(&c->timer, call_deadline_fired, ms, 0);
        }
    }
    m->handler(c, req.payload.data, req.payload.len, s->ctx);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)suggested;
    struct conn *cn = (struct conn *)h;
    size_t want = READ_CHUNK;
    if (cn->len >= TTRPC_HEADER_SIZE && !cn->framer.skip) {
        struct ttrpc_header hd;
        ttrpc_header_decode(&hd, cn->buf);
        if (hd.length <= TTRPC_MESSAGE_MAX && TTRPC_HEADER_SIZE + hd.length > cn->len + want)
            want = TTRPC_HEADER_SIZE + hd.length - cn->len;
    }
    if (cn->cap - cn->len < want) {
        size_t cap = cn->len + want;
        uint8_t *b = realloc(cn->buf, cap);
        if (!b) {
            *out = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
            return;
        }
        cn->buf = b;
        cn->cap = cap;
    }
    *out = uv_buf_init((char *)cn->buf + cn->len, (unsigned)(cn->cap - cn->len));
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    (void)b;
    struct conn *cn = (struct conn *)st;
    if (nread < 0) {
        conn_close(cn);
        return;
    }
    cn->len += (size_t)nread;
    size_t off = 0;
    while (!cn->closing) {
        struct ttrpc_header h;
        size_t used;
        enum ttrpc_frame_result r = ttrpc_framer_next(&cn->framer, cn->buf + off, cn->len - off, &h, &used);
        off += used;
        if (r == TTRPC_FRAME_MORE) {
            if (!used)
                break;
            continue;
        }
        if (r == TTRPC_FRAME_TOO_BIG) {
            char msg[128];
            snprintf(msg, sizeof(msg), "message length %u exceed maximum message size of %u", h.length,
                     TTRPC_MESSAGE_MAX);
            conn_fail_stream(cn, h.stream_id, TTRPC_RESOURCE_EXHAUSTED, msg);
            continue;
        }
        conn_dispatch(cn, &h, cn->buf + off - used + TTRPC_HEADER_SIZE);
    }
    if (cn->closing)
        return;
    if (off) {
        memmove(cn->buf, cn->buf + off, cn->len - off);
        cn->len -= off;
    }
    /* Give back the memory of a large frame once it is handled. */
    if (cn->len == 0 && cn->cap > 4 * READ_CHUNK) {
        free(cn->buf);
        cn->buf = NULL;
        cn->cap = 0;
    }
}

static void conn_resume(struct conn *cn)
{
    if (uv_read_start((uv_stream_t *)&cn->pipe, conn_alloc, conn_read))
        conn_close(cn);
}

static void server_accept(uv_stream_t *l, int status)
{
    struct ttrpc_server *s = l->data;
    if (status < 0 || s->closing)
        return;
    struct conn *cn = calloc(1, sizeof(*cn));
    if (!cn) {
        log_error("ttrpc", "out of memory accepting a connection");
        return;
    }
    cn->srv = s;
    if (uv_pipe_init(s->loop, &cn->pipe, 0)) {
        free(cn);
        return;
    }
    s->handles++;
    LIST_INSERT_HEAD(&s->conns, cn, link);
    s->n_conns++;
    if (uv_accept(l, (uv_stream_t *)&cn->pipe)) {
        conn_close(cn);
        return;
    }
    conn_resume(cn);
}

int ttrpc_server_serve_fd(struct ttrpc_server *s, int fd)
{
    int rc = uv_pipe_init(s->loop, &s->listener, 0);
    if (rc) {
        close(fd);
        return rc;
    }
    s->handles++;
    s->listening = true; /* the handle exists and must be closed */
    s->listener.data = s;
    rc = uv_pipe_open(&s->listener, fd);
    if (rc) {
        close(fd);
        return rc;
    }
    return uv_listen((uv_stream_t *)&s->listener, 1024, server_accept);
}

static void listener_closed(uv_handle_t *h)
{
    server_handle_closed(h->data);
}

void ttrpc_server_close(struct ttrpc_server *s)
{
    s->closing = true;
    struct conn *cn;
    while ((cn = LIST_FIRST(&s->conns)))
        conn_close(cn);
    if (s->handles == 0) {
        free(s);
        return;
    }
    if (s->listening)
        uv_close((uv_handle_t *)&s->listener, listener_closed);
}
