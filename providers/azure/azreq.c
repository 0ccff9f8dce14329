#include "azreq.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct azreq {
    struct http *http;
    uv_loop_t *loop;
    char *method, *url;
    char **headers; /* NULL-terminated copy */
    uint8_t *body;
    size_t body_len;
    long timeout_ms;
    unsigned max_retries, tries;
    uint64_t deadline;
    uint64_t *hold_until;
    uint32_t rng;
    struct http_call *call;
    uv_timer_t *timer; /* while waiting to retry */
    azreq_cb cb;
    void *arg;
};

bool azreq_retriable(const struct http_response *r)
{
    if (r->status == 0)
        return true; /* connection refused/reset, TLS, timeout */
    switch (r->status) {
    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
        return true;
    default:
        return false;
    }
}

uint64_t azreq_backoff_ms(unsigned try, double jitter)
{
    if (try > 16)
        try = 16;
    double ms = (double)((1u << try) - 1) * 800.0 * (0.8 + 0.5 * jitter);
    return ms > AZREQ_MAX_DELAY_MS ? AZREQ_MAX_DELAY_MS : (uint64_t)ms;
}

static void q_free(struct azreq *q)
{
    for (char **h = q->headers; h && *h; h++) {
        memset(*h, 0, strlen(*h)); /* Authorization headers */
        free(*h);
    }
    free(q->headers);
    if (q->body)
        memset(q->body, 0, q->body_len);
    free(q->body);
    free(q->method);
    free(q->url);
    free(q);
}

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

static int send_try(struct azreq *q);

static void finish(struct azreq *q, const struct http_response *r)
{
    q->cb(q->arg, r, q->tries);
    q_free(q);
}

static void retry_fire(uv_timer_t *t)
{
    struct azreq *q = t->data;
    uv_close((uv_handle_t *)t, timer_closed);
    q->timer = NULL;
    if (send_try(q)) {
        struct http_response r = {.error = "out of memory", .body = ""};
        finish(q, &r);
    }
}

static double jitter(struct azreq *q)
{
    q->rng ^= q->rng << 13;
    q->rng ^= q->rng >> 17;
    q->rng ^= q->rng << 5;
    return (double)(q->rng % 1000000u) / 1000000.0;
}

static void on_reply(void *arg, const struct http_response *r)
{
    struct azreq *q = arg;
    q->call = NULL;
    if (azreq_retriable(r) && q->tries < q->max_retries) {
        int64_t hint = http_retry_after_ms(r, (int64_t)time(NULL));
        uint64_t delay = hint >= 0 ? (uint64_t)hint : azreq_backoff_ms(q->tries + 1, jitter(q));
        uint64_t now = uv_now(q->loop);
        if (r->status == 429 && hint >= 0 && q->hold_until && hint <= AZREQ_MAX_DELAY_MS &&
            *q->hold_until < now + (uint64_t)hint)
            *q->hold_until = now + (uint64_t)hint;
        bool fits = hint <= AZREQ_MAX_DELAY_MS && (!q->deadline || now + delay < q->deadline);
        if (fits && (q->timer = malloc(sizeof(*q->timer)))) {
            q->tries++;
            uv_timer_init(q->loop, q->timer);
            q->timer->data = q;
            uv_timer_start(q->timer, retry_fire, delay, 0);
            return;
        }
    }
    finish(q, r);
}

static int send_try(struct azreq *q)
{
    uint64_t now = uv_now(q->loop);
    if (q->hold_until && *q->hold_until > now && (!q->deadline || *q->hold_until < q->deadline)) {
        if (!(q->timer = malloc(sizeof(*q->timer))))
            return -1;
        uv_timer_init(q->loop, q->timer);
        q->timer->data = q;
        uv_timer_start(q->timer, retry_fire, *q->hold_until - now, 0);
        return 0;
    }
    struct http_request req = {
        .method = q->method,
        .url = q->url,
        .headers = (const char *const *)q->headers,
        .body = q->body,
        .body_len = q->body_len,
        .timeout_ms = q->timeout_ms,
    };
    if (q->deadline) {
        long left = now >= q->deadline ? 1 : (long)(q->deadline - now);
        if (!req.timeout_ms || left < req.timeout_ms)
            req.timeout_ms = left;
    }
    q->call = http_start(q->http, &req, on_reply, q);
    return q->call ? 0 : -1;
}

struct azreq *azreq_start(const struct azreq_params *p, azreq_cb cb, void *arg)
{
    struct azreq *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->http = p->http;
    q->loop = p->loop;
    q->cb = cb;
    q->arg = arg;
    q->timeout_ms = p->req.timeout_ms;
    q->max_retries = p->no_retry ? 0 : p->max_retries ? p->max_retries : AZREQ_RETRIES;
    q->deadline = p->deadline;
    q->hold_until = p->hold_until;
    q->rng = p->seed ? p->seed : 0x9e3779b9u;
    size_t nh = 0;
    while (p->req.headers && p->req.headers[nh])
        nh++;
    if (!(q->method = strdup(p->req.method)) || !(q->url = strdup(p->req.url)) ||
        !(q->headers = calloc(nh + 1, sizeof(char *))))
        goto fail;
    for (size_t i = 0; i < nh; i++)
        if (!(q->headers[i] = strdup(p->req.headers[i])))
            goto fail;
    if (p->req.body_len) {
        if (!(q->body = malloc(p->req.body_len)))
            goto fail;
        memcpy(q->body, p->req.body, p->req.body_len);
        q->body_len = p->req.body_len;
    }
    if (send_try(q))
        goto fail;
    return q;
fail:
    q_free(q);
    return NULL;
}

void azreq_cancel(struct azreq *q)
{
    if (!q)
        return;
    if (q->call)
        http_cancel(q->call);
    if (q->timer) {
        uv_timer_stop(q->timer);
        uv_close((uv_handle_t *)q->timer, timer_closed);
    }
    q_free(q);
}
