#include "http.h"

#include "turn.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

TAILQ_HEAD(call_list, http_call);

struct http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct turn *turn; /* optional loop-turn budget (see poll_cb) */
    char *ca_file;
    unsigned max_active, active;
    long connect_timeout_ms;
    /* Every call is on exactly one list, in order of arrival. */
    struct call_list waiting;                /* queued for a slot */
    struct call_list running;                /* added to the multi handle */
    /* Calls libcurl would not take: answered from fail_timer, never from inside the
     * http_start or http_cancel that tried to start them (the caller may not expect it). */
    struct call_list failed;
    uv_timer_t fail_timer;
    size_t handles;                          /* open libuv handles (timer + polls) */
    bool in_dispatch, freeing;
};

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct http *h;
};

struct http_call {
    struct http *h;
    CURL *easy;
    struct curl_slist *hdrs;
    char *url, *method;
    uint8_t *body;
    size_t body_len;
    long timeout_ms;
    http_cb cb;
    void *arg;
    char *rbody;
    size_t rlen, rcap;
    bool too_big;
    /* Reply headers: "name\0value\0" pairs appended to hbuf, offsets in hoff; a few hundred
     * bytes per call instead of a fixed table, since a burst of pod starts makes many calls. */
    char *hbuf;
    size_t hlen, hcap;
    size_t hoff[HTTP_HEADERS_MAX][2];
    size_t n_headers;
    char errbuf[CURL_ERROR_SIZE];
    struct call_list *list; /* the one of h's lists c is on; NULL once taken off */
    TAILQ_ENTRY(http_call) link;
};

static void start_waiting(struct http *h);

/* Takes c off its list and appends it to to (NULL: to none). */
static void call_move(struct http_call *c, struct call_list *to)
{
    if (c->list)
        TAILQ_REMOVE(c->list, c, link);
    c->list = to;
    if (to)
        TAILQ_INSERT_TAIL(to, c, link);
}

/* The first call of l, taken off it. */
static struct http_call *call_take(struct call_list *l)
{
    struct http_call *c = TAILQ_FIRST(l);
    if (c)
        call_move(c, NULL);
    return c;
}

/* ---- handle bookkeeping --------------------------------------------------------------- */

static void http_release(struct http *h)
{
    if (h->handles || !h->freeing || h->in_dispatch)
        return;
    free(h->ca_file);
    free(h);
}

static void handle_closed(uv_handle_t *hd)
{
    struct http *h = hd->data;
    if (hd->type == UV_POLL)
        free(hd); /* struct sock_ctx starts with its poll handle */
    h->handles--;
    http_release(h);
}

/* ---- libcurl callbacks ---------------------------------------------------------------- */

static void check_done(struct http *h);

/* A burst of pod starts makes hundreds of replies and new transfers ready at once, each
 * worth a fraction of a millisecond of libcurl, TLS and callback work. Once this turn's
 * budget is spent (adaptor/turn.h) the rest waits for the next turn: sockets are
 * level-triggered and report again, the timer is re-armed. */
static void timer_fire(uv_timer_t *t);

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct sock_ctx *sc = (struct sock_ctx *)p;
    struct http *h = sc->h;
    int flags = 0, running;
    if (status >= 0 && h->turn && turn_spent(h->turn))
        return;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(h->multi, sc->fd, flags, &running);
    check_done(h);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct http *h = userp;
    struct sock_ctx *sc = socketp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            uv_poll_stop(&sc->poll);
            uv_close((uv_handle_t *)&sc->poll, handle_closed);
            curl_multi_assign(h->multi, s, NULL);
        }
        return 0;
    }
    if (!sc) {
        sc = calloc(1, sizeof(*sc));
        if (!sc)
            return -1;
        sc->fd = s;
        sc->h = h;
        if (uv_poll_init_socket(h->loop, &sc->poll, s)) {
            free(sc);
            return -1;
        }
        sc->poll.data = h;
        h->handles++;
        curl_multi_assign(h->multi, s, sc);
    }
    int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&sc->poll, ev, poll_cb);
    return 0;
}

static void timer_fire(uv_timer_t *t)
{
    struct http *h = t->data;
    int running;
    if (h->turn && turn_spent(h->turn)) { /* 1 ms: a 0 ms timer started in the timer phase runs again at once */
        uv_timer_start(&h->timer, timer_fire, 1, 0);
        return;
    }
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    struct http *h = userp;
    (void)m;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else /* never act from inside libcurl: a 0 ms timer runs on the next loop turn */
        uv_timer_start(&h->timer, timer_fire, (uint64_t)timeout_ms, 0);
    return 0;
}

static size_t body_cb(char *p, size_t size, size_t n, void *arg)
{
    struct http_call *c = arg;
    size_t len = size * n;
    if (c->rlen + len > HTTP_BODY_MAX) {
        c->too_big = true;
        return 0;
    }
    if (c->rlen + len + 1 > c->rcap) {
        size_t cap = c->rcap ? c->rcap : 4096;
        while (cap < c->rlen + len + 1)
            cap *= 2;
        char *b = realloc(c->rbody, cap);
        if (!b)
            return 0;
        c->rbody = b;
        c->rcap = cap;
    }
    memcpy(c->rbody + c->rlen, p, len);
    c->rlen += len;
    c->rbody[c->rlen] = '\0';
    return len;
}

static size_t header_cb(char *p, size_t size, size_t n, void *arg)
{
    struct http_call *c = arg;
    size_t len = size * n;
    if (len >= 5 && !memcmp(p, "HTTP/", 5)) {
        c->n_headers = 0; /* a new status line: an interim 1xx reply went before */
        c->hlen = 0;
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon || c->n_headers >= HTTP_HEADERS_MAX)
        return len;
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t vl = (size_t)(end - v);
    if (nl == 0 || nl >= HTTP_HEADER_NAME_MAX || vl >= HTTP_HEADER_VALUE_MAX)
        return len;
    if (c->hlen + nl + vl + 2 > c->hcap) {
        size_t cap = c->hcap ? c->hcap : 1024;
        while (cap < c->hlen + nl + vl + 2)
            cap *= 2;
        char *b = realloc(c->hbuf, cap);
        if (!b)
            return len; /* the header is dropped, the transfer goes on */
        c->hbuf = b;
        c->hcap = cap;
    }
    c->hoff[c->n_headers][0] = c->hlen;
    for (size_t i = 0; i < nl; i++)
        c->hbuf[c->hlen++] = (char)tolower((unsigned char)p[i]);
    c->hbuf[c->hlen++] = '\0';
    c->hoff[c->n_headers][1] = c->hlen;
    memcpy(c->hbuf + c->hlen, v, vl);
    c->hlen += vl;
    c->hbuf[c->hlen++] = '\0';
    c->n_headers++;
    return len;
}

/* ---- calls ---------------------------------------------------------------------------- */

static void call_free(struct http_call *c)
{
    if (c->easy)
        curl_easy_cleanup(c->easy);
    for (struct curl_slist *l = c->hdrs; l; l = l->next) /* Authorization: bearer tokens */
        memset(l->data, 0, strlen(l->data));
    curl_slist_free_all(c->hdrs);
    free(c->url);
    free(c->method);
    if (c->body) /* request bodies may hold secrets (token requests) */
        memset(c->body, 0, c->body_len);
    free(c->body);
    free(c->rbody);
    free(c->hbuf);
    free(c);
}

/* After callbacks ran (in_dispatch): a free they asked for happens now, else waiting calls
 * take the slots that freed up. */
static void dispatch_end(struct http *h)
{
    h->in_dispatch = false;
    if (h->freeing) {
        http_free(h);
        return;
    }
    start_waiting(h);
}

static void check_done(struct http *h)
{
    CURLMsg *m;
    int left;
    h->in_dispatch = true;
    while (!h->freeing && (m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct http_call *c = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        CURLcode rc = m->data.result;
        curl_multi_remove_handle(h->multi, m->easy_handle);
        call_move(c, NULL);
        h->active--;
        struct http_response r = {0};
        struct http_header hdrs[HTTP_HEADERS_MAX];
        for (size_t i = 0; i < c->n_headers; i++)
            hdrs[i] = (struct http_header){c->hbuf + c->hoff[i][0], c->hbuf + c->hoff[i][1]};
        r.headers = hdrs;
        r.n_headers = c->n_headers;
        r.body = c->rbody ? c->rbody : "";
        r.body_len = c->rlen;
        if (rc == CURLE_OK) {
            curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &r.status);
        } else {
            r.timed_out = rc == CURLE_OPERATION_TIMEDOUT;
            if (c->too_big)
                snprintf(c->errbuf, sizeof(c->errbuf), "response larger than %u bytes", HTTP_BODY_MAX);
            else if (!c->errbuf[0])
                snprintf(c->errbuf, sizeof(c->errbuf), "%s", curl_easy_strerror(rc));
            r.error = c->errbuf;
        }
        c->cb(c->arg, &r);
        call_free(c);
    }
    dispatch_end(h);
}

static int call_setup(struct http *h, struct http_call *c)
{
    CURL *e = c->easy = curl_easy_init();
    if (!e)
        return -1;
    int rc = 0;
    rc |= curl_easy_setopt(e, CURLOPT_URL, c->url);
    rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    rc |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    rc |= curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
    rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
    rc |= curl_easy_setopt(e, CURLOPT_NOPROXY, "169.254.169.254"); /* IMDS is never proxied */
    if (h->ca_file)
        rc |= curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
    if (!strcmp(c->method, "GET")) {
        rc |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
        if (c->body || !strcmp(c->method, "PUT") || !strcmp(c->method, "POST")) {
            rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body ? (char *)c->body : "");
            rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
        }
    }
    rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
    return rc ? -1 : 0;
}

static void fail_fire(uv_timer_t *t)
{
    struct http *h = t->data;
    h->in_dispatch = true;
    struct http_call *c;
    while (!h->freeing && (c = call_take(&h->failed))) {
        struct http_response r = {.error = "cannot start the HTTP transfer (libcurl setup)", .body = ""};
        c->cb(c->arg, &r);
        call_free(c);
    }
    dispatch_end(h);
}

static void start_waiting(struct http *h)
{
    struct http_call *c;
    while (h->active < h->max_active && (c = TAILQ_FIRST(&h->waiting))) {
        if (call_setup(h, c) || curl_multi_add_handle(h->multi, c->easy) != CURLM_OK) {
            call_move(c, &h->failed);
            uv_timer_start(&h->fail_timer, fail_fire, 0, 0);
            continue;
        }
        call_move(c, &h->running);
        h->active++;
    }
}

struct http_call *http_start(struct http *h, const struct http_request *req, http_cb cb, void *arg)
{
    struct http_call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->h = h;
    c->cb = cb;
    c->arg = arg;
    c->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 60000;
    if (!(c->url = strdup(req->url)) || !(c->method = strdup(req->method)))
        goto fail;
    if (req->body_len) {
        if (!(c->body = malloc(req->body_len)))
            goto fail;
        memcpy(c->body, req->body, req->body_len);
        c->body_len = req->body_len;
    }
    for (const char *const *hd = req->headers; hd && *hd; hd++) {
        struct curl_slist *l = curl_slist_append(c->hdrs, *hd);
        if (!l)
            goto fail;
        c->hdrs = l;
    }
    struct curl_slist *l = curl_slist_append(c->hdrs, "Expect:"); /* no 100-continue round trip */
    if (!l)
        goto fail;
    c->hdrs = l;
    call_move(c, &h->waiting);
    if (!h->in_dispatch)
        start_waiting(h);
    return c;
fail:
    call_free(c);
    return NULL;
}

void http_cancel(struct http_call *c)
{
    if (!c)
        return;
    struct http *h = c->h;
    if (c->list == &h->running) {
        curl_multi_remove_handle(h->multi, c->easy);
        call_move(c, NULL);
        h->active--;
        call_free(c);
        if (!h->in_dispatch)
            start_waiting(h);
        return;
    }
    /* Waiting, or failed and not yet answered; a call being answered is on no list, and its
     * dispatcher frees it after the callback. */
    if (c->list) {
        call_move(c, NULL);
        call_free(c);
    }
}

struct http *http_new(uv_loop_t *loop, const struct http_config *cfg, char *err, size_t errlen)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        snprintf(err, errlen, "libcurl initialisation failed");
        return NULL;
    }
    struct http *h = calloc(1, sizeof(*h));
    if (!h || !(h->multi = curl_multi_init())) {
        free(h);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->loop = loop;
    TAILQ_INIT(&h->waiting);
    TAILQ_INIT(&h->running);
    TAILQ_INIT(&h->failed);
    h->max_active = cfg->max_active ? cfg->max_active : 16;
    h->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 10000;
    if (cfg->ca_file && cfg->ca_file[0] && !(h->ca_file = strdup(cfg->ca_file))) {
        curl_multi_cleanup(h->multi);
        free(h);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    uv_timer_init(loop, &h->fail_timer);
    h->fail_timer.data = h;
    h->turn = cfg->turn;
    h->handles = 2;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    /* Keep a connection per concurrent call: libcurl's default cache shrinks with the number of
     * transfers, and every reconnect is a TLS handshake on the loop. */
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)h->max_active);
    return h;
}

void http_free(struct http *h)
{
    if (!h)
        return;
    bool first = !h->freeing;
    h->freeing = true;
    if (h->in_dispatch)
        return; /* check_done finishes the job */
    if (!first && !h->multi)
        return;
    struct http_call *c;
    while ((c = call_take(&h->waiting)) || (c = call_take(&h->failed)))
        call_free(c);
    while ((c = call_take(&h->running))) {
        curl_multi_remove_handle(h->multi, c->easy);
        call_free(c);
    }
    curl_multi_cleanup(h->multi); /* closes sockets: CURL_POLL_REMOVE closes their polls */
    h->multi = NULL;
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, handle_closed);
    uv_timer_stop(&h->fail_timer);
    uv_close((uv_handle_t *)&h->fail_timer, handle_closed);
}

const char *http_header_get(const struct http_response *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (!strcasecmp(r->headers[i].name, name))
            return r->headers[i].value;
    return NULL;
}

static int64_t parse_uint(const char *s)
{
    if (!s || !*s)
        return -1;
    int64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > INT64_MAX / 20)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

int64_t http_retry_after_ms(const struct http_response *r, int64_t now_unix)
{
    int64_t v = parse_uint(http_header_get(r, "retry-after-ms"));
    if (v >= 0)
        return v;
    if ((v = parse_uint(http_header_get(r, "x-ms-retry-after-ms"))) >= 0)
        return v;
    const char *ra = http_header_get(r, "retry-after");
    if (!ra)
        return -1;
    if ((v = parse_uint(ra)) >= 0)
        return v > INT64_MAX / 1000 ? INT64_MAX : v * 1000;
    time_t when = curl_getdate(ra, NULL);
    if (when < 0)
        return -1;
    if (when <= now_unix)
        return 0;
    int64_t delta = (int64_t)when - now_unix;
    return delta > INT64_MAX / 1000 ? INT64_MAX : delta * 1000; /* a far-future date must not overflow */
}
