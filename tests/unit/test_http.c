/* Unit tests for adaptor/http's and providers/azure/auth's callback rules, on a real libuv
 * loop with a plain-HTTP server on 127.0.0.1 that answers each request with the next canned
 * reply: a callback never runs from inside the call that started the request, and a token
 * answer goes exactly to those waiting for it, even when one of them forgets another. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "azure/auth.h"
#include "http.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {NULL};

/* ---- the server: one connection per request (Connection: close) ------------------------ */

struct server {
    uv_tcp_t tcp;
    const char *const *replies; /* bodies of JSON replies, in order; status in status[] */
    const int *status;
    size_t next, n;
    int port;
};

struct conn {
    uv_tcp_t tcp;
    struct server *s;
    char in[16384];
    size_t len;
    bool answered;
    uv_write_t wr;
    char out[2048];
};

static void conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void conn_written(uv_write_t *w, int status)
{
    (void)status;
    struct conn *c = w->data;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    struct conn *c = h->data;
    *b = uv_buf_init(c->in + c->len, (unsigned)(sizeof(c->in) - 1 - c->len));
}

/* Answers once the header and the Content-Length body are in. */
static void conn_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    struct conn *c = st->data;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)st))
            uv_close((uv_handle_t *)st, conn_closed);
        return;
    }
    c->len += (size_t)n;
    c->in[c->len] = '\0';
    char *end = strstr(c->in, "\r\n\r\n");
    if (!end || c->answered)
        return;
    const char *cl = strcasestr(c->in, "content-length:");
    size_t body = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
    if (c->len < (size_t)(end + 4 - c->in) + body)
        return;
    c->answered = true;
    struct server *s = c->s;
    size_t i = s->next < s->n ? s->next++ : s->n - 1;
    int len = snprintf(c->out, sizeof(c->out),
                       "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n%s",
                       s->status[i], strlen(s->replies[i]), s->replies[i]);
    uv_buf_t out = uv_buf_init(c->out, (unsigned)len);
    c->wr.data = c;
    uv_write(&c->wr, st, &out, 1, conn_written);
}

static void server_conn(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    struct conn *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->s = l->data;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
}

static void server_start(uv_loop_t *loop, struct server *s)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    assert_int_equal(uv_tcp_bind(&s->tcp, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->tcp, 16, server_conn), 0);
    uv_unref((uv_handle_t *)&s->tcp); /* the loop runs while the client has work */
    struct sockaddr_in got;
    int gl = sizeof(got);
    uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&got, &gl);
    s->port = ntohs(got.sin_port);
}

/* Bounds a test whose loop would never end: stops it after 10 s (unreferenced, it does not
 * keep the loop alive by itself). */
static void watchdog_fire(uv_timer_t *t)
{
    *(bool *)t->data = true;
    uv_stop(t->loop);
}

static void watchdog_start(uv_loop_t *loop, uv_timer_t *t, bool *fired)
{
    uv_timer_init(loop, t);
    t->data = fired;
    uv_timer_start(t, watchdog_fire, 10000, 0);
    uv_unref((uv_handle_t *)t);
}

/* ---- http: a transfer libcurl refuses is answered later, not from inside http_start ---- */

struct answer {
    int calls;
    bool returned; /* http_start had returned when the callback ran */
    long status;
    bool had_error;
};

static void http_answered(void *arg, const struct http_response *r)
{
    struct answer *a = arg;
    a->calls++;
    a->status = r->status;
    a->had_error = r->error != NULL;
}

static void answered_after_return(void *arg, const struct http_response *r)
{
    struct answer *a = arg;
    assert_true(a->returned); /* a synchronous callback would find this still false */
    http_answered(arg, r);
}

static void closed_noop(uv_handle_t *h)
{
    (void)h;
}

static void test_setup_failure_answers_later(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char err[256];
    struct http_config cfg = {.max_active = 2};
    struct http *h = http_new(&loop, &cfg, err, sizeof(err));
    assert_non_null(h);
    /* libcurl refuses URLs over its 8 MB input limit when the transfer is set up. */
    size_t n = 8100000;
    char *url = malloc(n + 1);
    assert_non_null(url);
    memcpy(url, "http://127.0.0.1:1/", 19);
    memset(url + 19, 'a', n - 19);
    url[n] = '\0';
    uv_timer_t wd;
    bool hung = false;
    watchdog_start(&loop, &wd, &hung);
    struct answer a = {0};
    struct http_request req = {.method = "GET", .url = url};
    struct http_call *c = http_start(h, &req, answered_after_return, &a);
    a.returned = true;
    assert_non_null(c);
    assert_int_equal(a.calls, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a.calls, 1);
    assert_true(a.had_error);
    assert_int_equal(a.status, 0);

    /* Cancelled before its answer came: no callback at all. */
    struct answer b = {.returned = true};
    c = http_start(h, &req, answered_after_return, &b);
    assert_non_null(c);
    http_cancel(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(b.calls, 0);
    assert_false(hung);
    free(url);
    http_free(h);
    uv_close((uv_handle_t *)&wd, closed_noop);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- auth: who gets a token answer ---------------------------------------------------- */

struct waiter {
    struct az_auth *auth;
    struct waiter *other; /* forgotten by this one's callback, if set */
    bool ask_again;       /* this one's callback asks for a token again */
    int calls, again_calls;
    bool got_token, again_got_token;
    char err[512];
};

static void again_cb(void *arg, const char *token, const char *err)
{
    struct waiter *w = arg;
    (void)err;
    w->again_calls++;
    w->again_got_token = token != NULL;
}

static void waiter_cb(void *arg, const char *token, const char *err)
{
    struct waiter *w = arg;
    w->calls++;
    w->got_token = token != NULL;
    snprintf(w->err, sizeof(w->err), "%s", err ? err : "");
    if (w->other)
        az_auth_forget(w->auth, w->other);
    if (w->ask_again)
        assert_int_equal(az_auth_get(w->auth, again_cb, w), 0);
}

static void test_auth_waiters(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    /* First refresh refused (the secret was revoked), the next one succeeds. */
    static const char *const replies[] = {
        "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client secret.\"}",
        "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"tok-2\"}",
    };
    static const int status[] = {401, 200};
    struct server s = {.replies = replies, .status = status, .n = 2};
    server_start(&loop, &s);
    char err[256], host[64];
    struct http_config hc = {0};
    struct http *h = http_new(&loop, &hc, err, sizeof(err));
    assert_non_null(h);
    snprintf(host, sizeof(host), "http://127.0.0.1:%d/", s.port);
    struct az_auth_config ac = {.authority_host = host, .tenant_id = "t1", .client_id = "c1",
                                .client_secret = "not-a-real-secret", .allow_http = true};
    struct az_auth *auth = az_auth_new(&loop, h, &ac, err, sizeof(err));
    assert_non_null(auth);

    /* Two callers share the refresh; the first answered forgets the second (a create that
     * fails ends its other calls), and asks again: the second never hears of this answer, the
     * new request gets the next fetch's token. */
    struct waiter w1 = {.auth = auth}, w2 = {.auth = auth};
    assert_int_equal(az_auth_get(auth, waiter_cb, &w1), 0);
    assert_int_equal(az_auth_get(auth, waiter_cb, &w2), 0);
    /* Waiters are woken newest first: w2 answers first and forgets w1. */
    w2.other = &w1;
    w2.ask_again = true;
    uv_timer_t wd;
    bool hung = false;
    watchdog_start(&loop, &wd, &hung);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(hung);
    assert_int_equal(w2.calls, 1);
    assert_false(w2.got_token);
    assert_non_null(strstr(w2.err, "invalid_client"));
    assert_null(strstr(w2.err, "not-a-real-secret"));
    assert_int_equal(w1.calls, 0); /* forgotten while the answer was being handed out */
    assert_int_equal(w2.again_calls, 1);
    assert_true(w2.again_got_token); /* the next fetch's answer, not the refusal */

    az_auth_free(auth);
    http_free(h);
    uv_close((uv_handle_t *)&wd, closed_noop);
    uv_close((uv_handle_t *)&s.tcp, closed_noop);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_setup_failure_answers_later),
        cmocka_unit_test(test_auth_waiters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
