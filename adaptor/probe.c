#include "probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "httpreq.h"
#include "kube.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"

#define PROBE_CONNS_MAX 64   /* scrapes and probes are few; more at once are refused */
#define PROBE_IDLE_MS 10000u /* a request head must arrive within this */
#define PROBE_LINGER_MS 1000u /* after the answer: the client's close, or this, ends it */

struct probe_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    bool lingering; /* answered and shut down for writing: what still comes is discarded */
    struct probe *pr;
    char head[HTTPREQ_HEAD_MAX];
    size_t len;
    char *resp;
    int closing; /* handles still to close */
    int head_only;
    bool waiting; /* a /startup waiting for the pod check */
    LIST_ENTRY(probe_conn) link; /* on pr->conns until closed */
};

struct probe {
    struct daemon *d;
    uv_tcp_t listener;
    int listener_open;
    LIST_HEAD(, probe_conn) conns;
    size_t n_conns;
    bool checking; /* a pod check for /startup is in flight */
};

static void conn_handle_closed(uv_handle_t *h)
{
    struct probe_conn *c = h->data;
    if (--c->closing)
        return;
    free(c->resp);
    free(c);
}

static void conn_close(struct probe_conn *c)
{
    if (c->closing)
        return;
    LIST_REMOVE(c, link);
    c->pr->n_conns--;
    c->closing = 2;
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

static void sandbox_count(struct sandbox *sb, void *arg)
{
    struct metrics_gauges *g = arg;
    if ((unsigned)sb->phase < sizeof(g->sandboxes) / sizeof(g->sandboxes[0]))
        g->sandboxes[sb->phase]++;
    if (sb->vni && (sb->phase == SANDBOX_STARTING || sb->phase == SANDBOX_RUNNING))
        g->tunnels++;
    if (sb->proxy && proxy_is_up(sb->proxy))
        g->agent_links++;
}

/* The /metrics body for the daemon's current state; malloc'd, NULL when out of memory. */
static char *metrics_text(struct daemon *d, size_t *len)
{
    struct metrics_gauges g = {.provider = d->pops->name, .version = CAA_VERSION, .commit = CAA_COMMIT};
    sandbox_store_foreach(&d->store, sandbox_count, &g);
    if (d->pops->api_counts && d->prov) {
        g.have_cloud = 1;
        d->pops->api_counts(d->prov, g.cloud_calls, &g.cloud_retries);
    }
    return metrics_render(&d->metrics, &g, len);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void idle_expired(uv_timer_t *t);

/* Closing with request bytes unread makes the kernel answer with a reset, which can destroy
 * the reply before the client reads it (a 431 for a too-big head, say): shut the write side
 * down, read to the client's end for a moment, then close. */
static void shut_down(uv_shutdown_t *r, int status)
{
    struct probe_conn *c = r->data;
    if (status < 0 || c->closing) {
        conn_close(c);
        return;
    }
    c->lingering = true;
    c->len = 0;
    uv_timer_start(&c->timer, idle_expired, PROBE_LINGER_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb))
        conn_close(c);
}

static void written(uv_write_t *w, int status)
{
    struct probe_conn *c = w->data;
    c->sreq.data = c;
    if (status < 0 || c->closing || uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, shut_down))
        conn_close(c);
}

static void respond(struct probe_conn *c, int code, const char *reason, const char *type, const char *body,
                    size_t body_len, int head_only)
{
    static const char fmt[] = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                              "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
    int hl = snprintf(NULL, 0, fmt, code, reason, type, body_len);
    size_t total = (size_t)hl + (head_only ? 0 : body_len);
    if (hl < 0 || !(c->resp = malloc(total + 1))) {
        conn_close(c);
        return;
    }
    snprintf(c->resp, (size_t)hl + 1, fmt, code, reason, type, body_len);
    if (!head_only && body_len)
        memcpy(c->resp + hl, body, body_len);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    uv_buf_t b = uv_buf_init(c->resp, (unsigned)total);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, written))
        conn_close(c);
}

/* A peer pod Ready since before our start is fine if its sandbox was recovered. */
static bool recovered_running(const struct sandbox *sb)
{
    return sb->recovered && sb->phase == SANDBOX_RUNNING;
}

static bool pod_recovered(const char *ns, const char *name, void *arg)
{
    const struct daemon *d = arg;
    return sandbox_store_find_pod(&d->store, ns, name, recovered_running) != NULL;
}

static void startup_answer(struct probe_conn *c, bool ok, const char *why)
{
    char body[1400];
    c->waiting = false;
    if (ok) {
        respond(c, 200, "OK", "text/plain", "ok\n", 3, c->head_only);
        return;
    }
    int n = snprintf(body, sizeof(body), "%s\n", why);
    respond(c, 500, "Internal Server Error", "text/plain", body, n < 0 ? 0 : (size_t)n >= sizeof(body) ? sizeof(body) - 1 : (size_t)n, c->head_only);
}

static void startup_checked(void *arg, int verdict, const char *why)
{
    struct probe *pr = arg;
    struct daemon *d = pr->d;
    pr->checking = false;
    if (verdict == 1 && !d->startup_ok) {
        d->startup_ok = true;
        log_info("probe", "startup: every peer pod on node %s is ready", d->cfg.node_name);
    } else if (verdict != 1) {
        log_info("probe", "startup: not yet: %s", why);
    }
    struct probe_conn *c = LIST_FIRST(&pr->conns), *next;
    for (; c; c = next) {
        next = LIST_NEXT(c, link); /* respond may close c */
        if (c->waiting)
            startup_answer(c, verdict == 1, why);
    }
}

/* /startup as the Go daemon's (spec 6.2): the socket serves and, until that has been seen
 * once, every peer pod on the node is Ready since this daemon started (or kept running
 * across the restart). */
static void startup(struct probe_conn *c)
{
    struct probe *pr = c->pr;
    struct daemon *d = pr->d;
    if (!d->kube || d->startup_ok) {
        startup_answer(c, true, NULL);
        return;
    }
    c->waiting = true;
    uv_read_stop((uv_stream_t *)&c->tcp); /* one request per connection */
    if (pr->checking)
        return;
    if (kube_startup_check(d->kube, d->cfg.runtimeclass_name, d->start_unix, pod_recovered, d, startup_checked, pr)) {
        startup_answer(c, false, "cannot list the pods of this node (out of memory or shutting down)");
        return;
    }
    pr->checking = true;
}

static int path_is(const struct httpreq *r, const char *p)
{
    return r->path_len == strlen(p) && !memcmp(r->path, p, r->path_len);
}

static void dispatch(struct probe_conn *c, const struct httpreq *r)
{
    struct daemon *d = c->pr->d;
    int head = r->method_len == 4 && !memcmp(r->method, "HEAD", 4);
    const char *why;
    if (!head && !(r->method_len == 3 && !memcmp(r->method, "GET", 3))) {
        static const char m[] = "only GET and HEAD\n";
        respond(c, 405, "Method Not Allowed", "text/plain", m, sizeof(m) - 1, 0);
        return;
    }
    /* Serving: the hypervisor socket is open and the daemon is not on its way out. */
    int serving = d->server && !d->shutting_down;
    if (path_is(r, "/healthz")) {
        respond(c, 200, "OK", "text/plain", "ok\n", 3, head); /* answering at all: the loop runs */
    } else if (path_is(r, "/readyz") || path_is(r, "/startup")) {
        c->head_only = head;
        if (!serving)
            respond(c, 503, "Service Unavailable", "text/plain", "shutting down\n", 14, head);
        else if (path_is(r, "/startup"))
            startup(c);
        else if (d->pops->unreachable && d->prov && (why = d->pops->unreachable(d->prov))) {
            char body[400];
            int n = snprintf(body, sizeof(body), "cloud API unreachable: %s\n", why);
            respond(c, 503, "Service Unavailable", "text/plain", body,
                    n < 0 ? 0 : (size_t)n >= sizeof(body) ? sizeof(body) - 1 : (size_t)n, head);
        } else
            respond(c, 200, "OK", "text/plain", "ok\n", 3, head);
    } else if (path_is(r, "/metrics")) {
        size_t len;
        char *text = metrics_text(d, &len);
        if (!text) {
            respond(c, 500, "Internal Server Error", "text/plain", "out of memory\n", 14, head);
            return;
        }
        respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, len, head);
        free(text);
    } else {
        static const char m[] = "not found; try /startup, /healthz, /readyz or /metrics\n";
        respond(c, 404, "Not Found", "text/plain", m, sizeof(m) - 1, head);
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct probe_conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->head + c->len, (unsigned)(sizeof(c->head) - c->len));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct probe_conn *c = s->data;
    (void)buf;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (c->lingering) {
        c->len = 0; /* discarded */
        return;
    }
    c->len += (size_t)n;
    struct httpreq r;
    size_t used;
    switch (httpreq_parse(c->head, c->len, &r, &used)) {
    case HTTPREQ_OK:
        dispatch(c, &r);
        return;
    case HTTPREQ_PARTIAL:
        if (c->len < sizeof(c->head))
            return;
        respond(c, 431, "Request Header Fields Too Large", "text/plain", "", 0, 0); /* full, no end of head */
        return;
    case HTTPREQ_TOO_LONG:
        respond(c, 431, "Request Header Fields Too Large", "text/plain", "", 0, 0);
        return;
    case HTTPREQ_BAD:
        respond(c, 400, "Bad Request", "text/plain", "", 0, 0);
        return;
    }
}

static void idle_expired(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct probe *pr = server->data;
    if (status < 0)
        return;
    struct probe_conn *c = calloc(1, sizeof(*c));
    if (!c || uv_tcp_init(pr->d->loop, &c->tcp)) {
        free(c);
        return; /* out of memory: the connection waits in the backlog */
    }
    c->pr = pr;
    c->tcp.data = c->timer.data = c;
    uv_timer_init(pr->d->loop, &c->timer);
    LIST_INSERT_HEAD(&pr->conns, c, link);
    pr->n_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) || pr->n_conns > PROBE_CONNS_MAX ||
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb)) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, idle_expired, PROBE_IDLE_MS, 0);
}

static void listener_closed(uv_handle_t *h)
{
    struct probe *pr = h->data;
    pr->listener_open = 0;
}

int probe_start(struct daemon *d, char *err, size_t errlen)
{
    struct probe *pr = calloc(1, sizeof(*pr));
    if (!pr) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pr->d = d;
    unsigned port = (unsigned)strtoul(d->cfg.probe_port, NULL, 10);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 64)) {
        snprintf(err, errlen, "PROBE_PORT: cannot listen on 127.0.0.1:%u: %s", port, strerror(errno));
        if (fd >= 0)
            close(fd);
        free(pr);
        return -1;
    }
    int rc = uv_tcp_init(d->loop, &pr->listener);
    if (!rc) {
        pr->listener_open = 1;
        pr->listener.data = pr;
        rc = uv_tcp_open(&pr->listener, fd);
        if (!rc)
            rc = uv_listen((uv_stream_t *)&pr->listener, 64, on_connection);
    } else {
        close(fd);
    }
    d->probe = pr;
    if (rc) {
        snprintf(err, errlen, "PROBE_PORT: serving 127.0.0.1:%u: %s", port, uv_strerror(rc));
        probe_stop(d);
        return -1;
    }
    return 0;
}

void probe_stop(struct daemon *d)
{
    struct probe *pr = d->probe;
    if (!pr)
        return;
    if (pr->listener_open == 1) {
        pr->listener_open = 2;
        uv_close((uv_handle_t *)&pr->listener, listener_closed);
    }
    struct probe_conn *c;
    while ((c = LIST_FIRST(&pr->conns)))
        conn_close(c);
}

void probe_free(struct daemon *d)
{
    probe_stop(d);
    free(d->probe);
    d->probe = NULL;
}
