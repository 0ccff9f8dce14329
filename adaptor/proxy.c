/* proxy: the per-sandbox agent relay (see proxy.h). Frames are relayed, not messages: a
 * request is decoded only to learn its method and deadline (views into the frame, no copy),
 * and re-encoded only for CreateContainer or when it waited for a reconnection. */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ccedit.h"
#include "csivol.h"
#include "dvdir.h"
#include "log.h"
#include "tls.h"
#include "ttrpc.h"

#define LOG "proxy"
#define BACKOFF_MIN_MS 50 /* DECISIONS 3 / issue: from 50 ms, capped at 1 s (Go: 5 s) */
#define BACKOFF_MAX_MS 1000
#define ATTEMPT_MS 3000                /* one TCP connect + handshake */
#define QUEUE_MAX_CALLS 1024           /* calls waiting for the link */
#define QUEUE_MAX_BYTES (64u << 20)
#define READ_SPARE 65536
/* Responses at least this big are relayed cut-through: sent on to the shim as their bytes
 * arrive instead of after the whole frame. (Requests are not: with the shim, the relay and the
 * forwarder all busy at once on a small node, streaming them measured slower; BENCHMARKS.md.) */
#define CUT_MIN (256u << 10)

struct down;

struct call {
    struct proxy *px;
    uint32_t up_id, down_id;
    uint8_t flags;
    struct down *d; /* NULL once its connection went away */
    uint64_t deadline;
    bool timer_inited, queued;
    uv_timer_t timer;
    uint8_t *body; /* queued only: the request message */
    size_t body_len;
    struct call *hnext;
    LIST_ENTRY(call) dlink;  /* on d->calls while d is set */
    TAILQ_ENTRY(call) qlink; /* on px->queue while queued */
};

struct dwrite;

struct down {
    uv_pipe_t pipe; /* first */
    struct proxy *px;
    uint8_t *in;
    size_t in_len, in_cap;
    struct ttrpc_framer fr;
    uint32_t last_id;
    LIST_HEAD(, call) calls;
    bool closing, full, paused;
    bool ucut;       /* a response frame is being streamed to this connection */
    STAILQ_HEAD(, dwrite) deferred; /* our own answers, held until that frame ends */
    LIST_ENTRY(down) link;          /* on px->downs until closed */
};

struct proxy {
    uv_loop_t *loop;
    char *socket_path, *sandbox_id, *vm_name, *direct_volumes_dir;
    SSL_CTX *ctx;
    const struct tlsca *tls;
    uint16_t port;
    int64_t proxy_timeout_ms;
    bool ready_by_proxy_timeout; /* the readiness wait ends at PROXY_TIMEOUT, not at StartVM's deadline */
    bool gpus_annotated;
    struct metrics_relay *counts, no_counts;

    uv_pipe_t listener;
    uv_timer_t retry, attempt, ready_timer;
    size_t refs; /* open handles and calls with timers; freed at 0 after close */
    bool closing;

    LIST_HEAD(, down) downs;
    size_t full_downs;

    struct sockaddr_storage addr;
    char addr_text[INET6_ADDRSTRLEN + 8];
    struct tls_conn *up;
    bool up_connected, ever_up, up_full;
    uint32_t probe_id; /* the Health/Check that proves a new link, 0 when none is out */
    unsigned backoff_ms;
    char last_error[256];
    uint8_t *uin;
    size_t uin_len, uin_cap;
    struct ttrpc_framer ufr;
    uint32_t next_up_id;

    /* Cut-through state: one response frame streams to its shim connection at a time. */
    bool ucut_active;
    struct down *ucut_d;            /* where the response frame streams (NULL: discard) */
    size_t ucut_left;

    struct call **buckets;
    size_t nbuckets, ncalls;
    TAILQ_HEAD(, call) queue; /* calls waiting for the link, oldest first */
    size_t qcount, qbytes;

    proxy_ready_cb ready_cb;
    void *ready_arg;
};

static void up_lost(void *arg, const char *why);

/* ------------------------------------------------------------------ method table (spec 3.3) */

static const char *const agent_methods[] = {
    "CreateContainer", "StartContainer", "RemoveContainer", "ExecProcess", "SignalProcess", "WaitProcess",
    "UpdateContainer", "UpdateEphemeralMounts", "StatsContainer", "PauseContainer", "ResumeContainer",
    "RemoveStaleVirtiofsShareMounts", "GetDiagnosticData", "WriteStdin", "ReadStdout", "ReadStderr", "CloseStdin",
    "TtyWinResize", "UpdateInterface", "UpdateRoutes", "ListInterfaces", "ListRoutes", "AddARPNeighbors",
    "GetIPTables", "SetIPTables", "GetMetrics", "MemAgentMemcgSet", "MemAgentCompactSet", "CreateSandbox",
    "DestroySandbox", "OnlineCPUMem", "ReseedRandomDev", "GetGuestDetails", "MemHotplugByProbe", "SetGuestDateTime",
    "CopyFile", "GetOOMEvent", "AddSwap", "AddSwapPath", "GetVolumeStats", "ResizeVolume", "SetPolicy",
};
static const char *const health_methods[] = {"Check", "Version"};

static bool in_list(const char *const *list, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && memcmp(list[i], s, len) == 0)
            return true;
    return false;
}

bool proxy_method_known(const char *service, size_t slen, const char *method, size_t mlen, bool *service_known)
{
    if (slen == strlen("grpc.AgentService") && memcmp(service, "grpc.AgentService", slen) == 0) {
        *service_known = true;
        return in_list(agent_methods, sizeof(agent_methods) / sizeof(agent_methods[0]), method, mlen);
    }
    if (slen == strlen("grpc.Health") && memcmp(service, "grpc.Health", slen) == 0) {
        *service_known = true;
        return in_list(health_methods, 2, method, mlen);
    }
    *service_known = false;
    return false;
}

/* ------------------------------------------------------------------ lifetime */

static void proxy_unref(struct proxy *px)
{
    if (--px->refs || !px->closing)
        return;
    free(px->buckets);
    free(px->uin);
    free(px->socket_path);
    free(px->sandbox_id);
    free(px->vm_name);
    free(px->direct_volumes_dir);
    free(px);
}

static void handle_closed(uv_handle_t *h)
{
    proxy_unref(h->data);
}

/* ------------------------------------------------------------------ calls */

static size_t bucket_of(const struct proxy *px, uint32_t id)
{
    return (id * 2654435761u) & (px->nbuckets - 1);
}

static int hash_grow(struct proxy *px)
{
    size_t n = px->nbuckets ? px->nbuckets * 2 : 64;
    struct call **b = calloc(n, sizeof(*b));
    if (!b)
        return -1;
    for (size_t i = 0; i < px->nbuckets; i++)
        for (struct call *c = px->buckets[i], *next; c; c = next) {
            next = c->hnext;
            size_t k = (c->up_id * 2654435761u) & (n - 1);
            c->hnext = b[k];
            b[k] = c;
        }
    free(px->buckets);
    px->buckets = b;
    px->nbuckets = n;
    return 0;
}

static struct call *hash_take(struct proxy *px, uint32_t id)
{
    if (!px->nbuckets)
        return NULL;
    for (struct call **pp = &px->buckets[bucket_of(px, id)]; *pp; pp = &(*pp)->hnext)
        if ((*pp)->up_id == id) {
            struct call *c = *pp;
            *pp = c->hnext;
            c->hnext = NULL;
            px->ncalls--;
            return c;
        }
    return NULL;
}

static void call_closed(uv_handle_t *h)
{
    struct call *c = h->data;
    struct proxy *px = c->px;
    free(c);
    proxy_unref(px);
}

/* Unlinks from the downstream list and releases (the hash and the queue are the caller's). */
static void call_free(struct call *c)
{
    if (c->d)
        LIST_REMOVE(c, dlink);
    free(c->body);
    c->body = NULL;
    if (c->timer_inited) {
        uv_close((uv_handle_t *)&c->timer, call_closed);
        return;
    }
    free(c);
}

static void call_timer_fire(uv_timer_t *t);

static void call_arm(struct call *c, uint64_t at)
{
    struct proxy *px = c->px;
    if (!c->timer_inited) {
        uv_timer_init(px->loop, &c->timer);
        c->timer.data = c;
        c->timer_inited = true;
        px->refs++;
    }
    uint64_t now = uv_now(px->loop);
    uv_timer_start(&c->timer, call_timer_fire, at > now ? at - now : 0, 0);
}

/* ------------------------------------------------------------------ downstream writes */

struct dwrite {
    uv_write_t req;
    struct down *d;
    size_t len;
    STAILQ_ENTRY(dwrite) next; /* while deferred */
    uint8_t data[];
};

static void up_pause_update(struct proxy *px)
{
    if (!px->up || !px->up_connected)
        return;
    if (px->full_downs)
        tls_conn_pause(px->up);
    else
        tls_conn_resume(px->up);
}

static void dwrite_done(uv_write_t *r, int status)
{
    struct dwrite *w = (struct dwrite *)r;
    struct down *d = w->d;
    (void)status;
    free(w);
    if (d->full && uv_stream_get_write_queue_size((uv_stream_t *)&d->pipe) < TLS_CONN_QUEUE_LOW) {
        d->full = false;
        d->px->full_downs--;
        up_pause_update(d->px);
    }
}

static void dwrite_submit(struct down *d, struct dwrite *w)
{
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&d->pipe, &b, 1, dwrite_done)) {
        free(w);
        return;
    }
    if (!d->full && uv_stream_get_write_queue_size((uv_stream_t *)&d->pipe) > TLS_CONN_QUEUE_HIGH) {
        d->full = true;
        d->px->full_downs++;
        up_pause_update(d->px);
    }
}

/* A frame header (if hdr) and bytes for the shim. Whole frames of our own wait while a
 * response frame is streaming to this connection, so frames never interleave. */
static void down_send(struct down *d, const struct ttrpc_header *hdr, const uint8_t *body, size_t len, bool ours)
{
    if (d->closing)
        return;
    size_t hl = hdr ? TTRPC_HEADER_SIZE : 0;
    size_t done = 0;
    if (!(ours && d->ucut)) {
        /* Straight into the socket when nothing is queued before it (libuv refuses otherwise):
         * no copy, no write request, no epoll change for the common small answer. */
        uint8_t h[TTRPC_HEADER_SIZE];
        if (hdr)
            ttrpc_header_encode(h, hdr);
        uv_buf_t bufs[2] = {uv_buf_init((char *)h, (unsigned)hl), uv_buf_init((char *)body, (unsigned)len)};
        int n = uv_try_write((uv_stream_t *)&d->pipe, hdr ? bufs : bufs + 1, hdr ? 2 : 1);
        if (n > 0)
            done = (size_t)n;
        if (done == hl + len)
            return;
    }
    struct dwrite *w = malloc(sizeof(*w) + hl + len - done);
    if (!w)
        return; /* the caller's client times out; nothing sane to do without memory */
    uint8_t whole_hdr[TTRPC_HEADER_SIZE];
    if (hdr)
        ttrpc_header_encode(whole_hdr, hdr);
    /* The rest after what went out already: the header's tail, then the body's. */
    size_t o = 0;
    if (done < hl) {
        memcpy(w->data, whole_hdr + done, hl - done);
        o = hl - done;
        memcpy(w->data + o, body, len);
    } else {
        memcpy(w->data, body + (done - hl), len - (done - hl));
    }
    w->d = d;
    w->len = hl + len - done;
    if (ours && d->ucut) {
        STAILQ_INSERT_TAIL(&d->deferred, w, next);
        return;
    }
    dwrite_submit(d, w);
}

static void down_write(struct down *d, uint32_t stream, uint8_t type, uint8_t flags, const uint8_t *body, size_t len)
{
    struct ttrpc_header h = {.length = (uint32_t)len, .stream_id = stream, .type = type, .flags = flags};
    down_send(d, &h, body, len, false);
}

static void down_ucut_end(struct down *d)
{
    d->ucut = false;
    struct dwrite *w;
    while ((w = STAILQ_FIRST(&d->deferred))) {
        STAILQ_REMOVE_HEAD(&d->deferred, next);
        dwrite_submit(d, w);
    }
}

/* An error answer of our own on a downstream stream. */
static void down_fail(struct down *d, uint32_t stream, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void down_fail(struct down *d, uint32_t stream, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t ml = n < 0 ? 0 : (size_t)n >= sizeof(msg) ? sizeof(msg) - 1 : (size_t)n;
    uint8_t buf[600];
    size_t len = ttrpc_response_encode(buf, code, msg, ml, NULL, 0);
    struct ttrpc_header h = {.length = (uint32_t)len, .stream_id = stream, .type = TTRPC_RESPONSE};
    down_send(d, &h, buf, len, true);
}

/* ------------------------------------------------------------------ sending upstream */

static void downs_pause(struct proxy *px, bool pause);

/* body is borrowed, or lies in owner, a malloc'd block up_send takes over. */
static void up_send(struct proxy *px, struct call *c, const uint8_t *body, size_t len, void *owner)
{
    if (px->ncalls + 1 > px->nbuckets * 2 && hash_grow(px)) {
        free(owner);
        down_fail(c->d, c->down_id, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
        call_free(c);
        return;
    }
    c->up_id = px->next_up_id;
    px->next_up_id += 2;
    size_t k = bucket_of(px, c->up_id);
    c->hnext = px->buckets[k];
    px->buckets[k] = c;
    px->ncalls++;
    uint8_t hdr[TTRPC_HEADER_SIZE];
    struct ttrpc_header h = {.length = (uint32_t)len, .stream_id = c->up_id, .type = TTRPC_REQUEST, .flags = c->flags};
    ttrpc_header_encode(hdr, &h);
    uv_buf_t bufs[2] = {uv_buf_init((char *)hdr, sizeof(hdr)), uv_buf_init((char *)body, (unsigned)len)};
    int rc = tls_conn_writev_owned(px->up, bufs, 2, owner);
    if (rc == 1 && !px->up_full) {
        px->up_full = true;
        downs_pause(px, true);
    }
    /* rc < 0: the link is failing; on_lost answers this call with code 14. */
    if (c->deadline)
        call_arm(c, c->deadline);
}

/* Sends a queued call now that the link is up, with timeout_nano cut to what is left. */
static void queued_send(struct proxy *px, struct call *c)
{
    uint8_t *body = c->body;
    size_t len = c->body_len;
    c->body = NULL;
    c->queued = false;
    if (c->timer_inited)
        uv_timer_stop(&c->timer);
    struct ttrpc_request r;
    const char *why;
    uint8_t *re = NULL;
    if (c->deadline && ttrpc_request_decode(&r, body, len, &why) == 0) {
        uint64_t now = uv_now(px->loop);
        int64_t left = c->deadline > now ? (int64_t)(c->deadline - now) * 1000000 : 1;
        size_t n = ttrpc_request_size(&r, left);
        if ((re = malloc(n))) {
            ttrpc_request_encode(re, &r, left);
            free(body);
            body = re;
            len = n;
        }
    }
    up_send(px, c, body, len, body);
}

static void queue_remove(struct proxy *px, struct call *c)
{
    if (!c->queued)
        return;
    TAILQ_REMOVE(&px->queue, c, qlink);
    c->queued = false;
    px->qcount--;
    px->qbytes -= c->body_len;
}

static void queue_flush(struct proxy *px)
{
    struct call *c;
    while ((c = TAILQ_FIRST(&px->queue)) && px->up_connected && !px->closing) {
        queue_remove(px, c);
        queued_send(px, c);
    }
}

static void call_timer_fire(uv_timer_t *t)
{
    struct call *c = t->data;
    struct proxy *px = c->px;
    uint64_t now = uv_now(px->loop);
    if (c->queued) {
        queue_remove(px, c);
        if (c->d) {
            if (c->deadline && now >= c->deadline)
                down_fail(c->d, c->down_id, TTRPC_DEADLINE_EXCEEDED, "context deadline exceeded");
            else
                down_fail(c->d, c->down_id, TTRPC_UNAVAILABLE,
                          "the agent link to pod VM %s is down (%s); retry the call", px->vm_name, px->last_error);
        }
    } else {
        hash_take(px, c->up_id); /* a late answer is dropped */
        if (c->d)
            down_fail(c->d, c->down_id, TTRPC_DEADLINE_EXCEEDED, "context deadline exceeded");
    }
    call_free(c);
}

/* ------------------------------------------------------------------ CreateContainer (spec 3.4) */

static void call_dispatch(struct proxy *px, struct call *c, const uint8_t *body, size_t len, uint8_t *owner);

struct cc_job {
    uv_work_t w;
    struct proxy *px;
    struct call *c;
    bool gpus;
    char *dir;
    uint8_t *req; /* the Request message, then the edited one */
    size_t len;
};

struct mount_list {
    struct csivol_mount *v;
    size_t n, cap;
    bool oom;
};

static void mount_add(void *arg, const uint8_t *dst, size_t dl, const uint8_t *src, size_t sl)
{
    struct mount_list *l = arg;
    if (l->oom)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct csivol_mount *v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            l->oom = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    char *d = strndup(dst ? (const char *)dst : "", dl), *s = strndup(src ? (const char *)src : "", sl);
    if (!d || !s) {
        free(d);
        free(s);
        l->oom = true;
        return;
    }
    l->v[l->n].dst = d;
    l->v[l->n].src = s;
    l->n++;
}

/* Worker thread: the direct volumes kata published, then the annotation edits. */
static void cc_job_run(uv_work_t *w)
{
    struct cc_job *j = (struct cc_job *)w;
    struct ttrpc_request r;
    const char *why;
    if (ttrpc_request_decode(&r, j->req, j->len, &why))
        return; /* forwarded as it came: the agent answers it */
    struct mount_list ml = {0};
    struct csivol_volume *vols = NULL;
    size_t nv = 0;
    struct ccedit_annotation set[3];
    size_t nset = 0;
    char *tp = NULL, *cv = NULL, *existing = NULL, *uid = NULL;
    if (ccedit_mounts(r.payload.data, r.payload.len, mount_add, &ml) < 0 || ml.oom)
        goto out;
    dvdir_read(j->dir, &vols, &nv);
    existing = ccedit_annotation_get(r.payload.data, r.payload.len, CSIVOL_ANNOTATION_TARGET_PATH);
    uid = ccedit_annotation_get(r.payload.data, r.payload.len, CSIVOL_ANNOTATION_SANDBOX_UID);
    if (csivol_annotations(ml.v, ml.n, vols, nv, existing, uid, &tp, &cv))
        goto out;
    if (tp)
        set[nset++] = (struct ccedit_annotation){CSIVOL_ANNOTATION_TARGET_PATH, tp};
    if (j->gpus) /* GPU pods: the pod VM's agent injects every NVIDIA GPU through CDI */
        set[nset++] = (struct ccedit_annotation){CCEDIT_ANNOTATION_CDI, CCEDIT_CDI_ALL_GPUS};
    if (cv)
        set[nset++] = (struct ccedit_annotation){CSIVOL_ANNOTATION_CLOUD_VOLUMES, cv};
    uint8_t *payload;
    size_t plen;
    if (nset && ccedit_set_annotations(r.payload.data, r.payload.len, set, nset, &payload, &plen) == 0) {
        struct ttrpc_request e = r;
        e.payload.data = payload;
        e.payload.len = plen;
        size_t n = ttrpc_request_size(&e, r.timeout_nano);
        uint8_t *re = malloc(n);
        if (re) {
            ttrpc_request_encode(re, &e, r.timeout_nano);
            free(j->req);
            j->req = re;
            j->len = n;
        }
        free(payload);
    }
out:
    for (size_t i = 0; i < ml.n; i++) {
        free((char *)ml.v[i].dst);
        free((char *)ml.v[i].src);
    }
    free(ml.v);
    dvdir_free(vols, nv);
    free(existing);
    free(uid);
    free(tp);
    free(cv);
}

static void cc_job_done(uv_work_t *w, int status)
{
    struct cc_job *j = (struct cc_job *)w;
    struct proxy *px = j->px;
    (void)status;
    if (px->closing) {
        free(j->req);
        call_free(j->c);
    } else {
        call_dispatch(px, j->c, j->req, j->len, j->req);
    }
    free(j->dir);
    free(j);
    proxy_unref(px);
}

static int cc_job_start(struct proxy *px, struct call *c, const uint8_t *body, size_t len)
{
    struct cc_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->req = malloc(len ? len : 1)) || !(j->dir = strdup(px->direct_volumes_dir))) {
        if (j)
            free(j->req);
        free(j);
        return -1;
    }
    memcpy(j->req, body, len);
    j->len = len;
    j->px = px;
    j->c = c;
    j->gpus = px->gpus_annotated;
    px->refs++;
    if (uv_queue_work(px->loop, &j->w, cc_job_run, cc_job_done)) {
        px->refs--;
        free(j->req);
        free(j->dir);
        free(j);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ downstream reads */

/* body is borrowed from the connection's buffer, or lies in owner (a big request's buffer,
 * detached from the connection), which this takes over. */
static void down_request(struct down *d, const struct ttrpc_header *h, const uint8_t *body, size_t len,
                         uint8_t *owner)
{
    struct proxy *px = d->px;
    uint32_t id = h->stream_id;
    /* The Go ttrpc server's stream rules, which the shim's client follows. */
    if (id % 2 == 0) {
        free(owner);
        down_fail(d, id, TTRPC_INVALID_ARGUMENT, "StreamID must be odd for client initiated streams");
        return;
    }
    if (id <= d->last_id) {
        free(owner);
        down_fail(d, id, TTRPC_INVALID_ARGUMENT, "StreamID cannot be re-used and must increment");
        return;
    }
    d->last_id = id;
    struct ttrpc_request r;
    const char *why;
    if (ttrpc_request_decode(&r, body, len, &why)) {
        free(owner);
        down_fail(d, id, TTRPC_INVALID_ARGUMENT, "unmarshal request error: %s", why);
        return;
    }
    bool service_known;
    if (!proxy_method_known((const char *)r.service.data, r.service.len, (const char *)r.method.data, r.method.len,
                            &service_known)) {
        if (service_known)
            down_fail(d, id, TTRPC_UNIMPLEMENTED, "method %.*s", (int)r.method.len, (const char *)r.method.data);
        else
            down_fail(d, id, TTRPC_UNIMPLEMENTED, "service %.*s", (int)r.service.len, (const char *)r.service.data);
        free(owner); /* after the message: r points into it */
        return;
    }
    struct call *c = calloc(1, sizeof(*c));
    if (!c) {
        free(owner);
        down_fail(d, id, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    c->px = px;
    c->d = d;
    c->down_id = id;
    c->flags = h->flags;
    if (r.timeout_nano > 0)
        c->deadline = uv_now(px->loop) + (uint64_t)((r.timeout_nano + 999999) / 1000000);
    LIST_INSERT_HEAD(&d->calls, c, dlink);
    if (ttrpc_bytes_eq(r.method, "CreateContainer") && ttrpc_bytes_eq(r.service, "grpc.AgentService") &&
        cc_job_start(px, c, body, len) == 0) {
        free(owner); /* the job has its own copy */
        return;      /* edited in the thread pool (it reads the direct-volumes directory), then sent */
    }
    call_dispatch(px, c, body, len, owner);
}

/* Sends c, or queues it while the link is down. body is borrowed, or lies in owner, a
 * malloc'd block this takes over. */
static void call_dispatch(struct proxy *px, struct call *c, const uint8_t *body, size_t len, uint8_t *owner)
{
    struct down *d = c->d;
    uint32_t id = c->down_id;
    if (!d) { /* its shim connection went away meanwhile */
        free(owner);
        call_free(c);
        return;
    }
    if (px->up_connected) {
        up_send(px, c, body, len, owner);
        return;
    }
    /* The link is not up (yet, or again): wait for it, bounded. */
    if (px->qcount >= QUEUE_MAX_CALLS || px->qbytes + len > QUEUE_MAX_BYTES) {
        free(owner);
        down_fail(d, id, TTRPC_UNAVAILABLE, "the agent link to pod VM %s is down and %zu calls already wait for it",
                  px->vm_name, px->qcount);
        call_free(c);
        return;
    }
    if (owner && body == owner) {
        c->body = owner;
    } else if ((c->body = malloc(len ? len : 1))) {
        memcpy(c->body, body, len);
        free(owner);
    } else {
        free(owner);
        down_fail(d, id, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
        call_free(c);
        return;
    }
    c->body_len = len;
    c->queued = true;
    TAILQ_INSERT_TAIL(&px->queue, c, qlink);
    px->qcount++;
    px->qbytes += len;
    uint64_t limit = uv_now(px->loop) + (uint64_t)px->proxy_timeout_ms;
    call_arm(c, c->deadline && c->deadline < limit ? c->deadline : limit);
}

/* A big request leaves with the buffer it arrived in, which the write queue then holds
 * instead of a copy; the connection reads on into a fresh buffer of the same size, given
 * the bytes after the frame. Returns the old buffer, or NULL (nothing changed). */
static uint8_t *down_detach(struct down *d, size_t frame_end)
{
    uint8_t *fresh = malloc(d->in_cap);
    if (!fresh)
        return NULL;
    uint8_t *old = d->in;
    d->in_len -= frame_end;
    memcpy(fresh, old + frame_end, d->in_len);
    d->in = fresh;
    return old;
}

static void down_frames(struct down *d)
{
    size_t off = 0;
    while (!d->closing) {
        struct ttrpc_header h;
        size_t used = 0;
        enum ttrpc_frame_result fr = ttrpc_framer_next(&d->fr, d->in + off, d->in_len - off, &h, &used);
        if (fr == TTRPC_FRAME_MORE) {
            off += used;
            if (used == 0)
                break;
            continue;
        }
        off += used;
        if (fr == TTRPC_FRAME_TOO_BIG) {
            down_fail(d, h.stream_id, TTRPC_RESOURCE_EXHAUSTED, "message length %u exceed maximum message size of %u",
                      h.length, TTRPC_MESSAGE_MAX);
            continue;
        }
        if (h.type != TTRPC_REQUEST)
            continue;
        const uint8_t *body = d->in + off - used + TTRPC_HEADER_SIZE;
        uint8_t *owner = h.length >= CUT_MIN ? down_detach(d, off) : NULL;
        if (owner) {
            body = owner + off - used + TTRPC_HEADER_SIZE;
            off = 0;
        }
        down_request(d, &h, body, h.length, owner);
    }
    if (off) {
        memmove(d->in, d->in + off, d->in_len - off);
        d->in_len -= off;
    }
}

static void down_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct down *d = (struct down *)h;
    (void)hint;
    if (d->in_cap - d->in_len < READ_SPARE) {
        size_t cap = d->in_cap ? d->in_cap * 2 : 2 * READ_SPARE;
        while (cap - d->in_len < READ_SPARE)
            cap *= 2;
        uint8_t *p = realloc(d->in, cap);
        if (!p) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        d->in = p;
        d->in_cap = cap;
    }
    *buf = uv_buf_init((char *)d->in + d->in_len, (unsigned)(d->in_cap - d->in_len));
}

static void down_closed(uv_handle_t *h)
{
    struct down *d = (struct down *)h;
    struct proxy *px = d->px;
    free(d->in);
    free(d);
    proxy_unref(px);
}

static void down_close(struct down *d)
{
    if (d->closing)
        return;
    d->closing = true;
    struct proxy *px = d->px;
    if (px->ucut_d == d)
        px->ucut_d = NULL;
    struct dwrite *w;
    while ((w = STAILQ_FIRST(&d->deferred))) {
        STAILQ_REMOVE_HEAD(&d->deferred, next);
        free(w);
    }
    /* Its streams are abandoned; only its own. */
    struct call *c;
    while ((c = LIST_FIRST(&d->calls))) {
        LIST_REMOVE(c, dlink);
        c->d = NULL;
    }
    if (d->full) {
        d->full = false;
        px->full_downs--;
        up_pause_update(px);
    }
    LIST_REMOVE(d, link);
    uv_close((uv_handle_t *)&d->pipe, down_closed);
}

static void down_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct down *d = (struct down *)s;
    (void)buf;
    if (nread < 0) {
        down_close(d);
        return;
    }
    d->in_len += (size_t)nread;
    d->px->counts->bytes_to_vm += (uint64_t)nread;
    down_frames(d);
    /* A frame grows the buffer to at most 4 MiB plus a read; shrink back after a big one. */
    if (d->in_cap > (8u << 20) && d->in_len < READ_SPARE) {
        uint8_t *p = realloc(d->in, 2 * READ_SPARE);
        if (p) {
            d->in = p;
            d->in_cap = 2 * READ_SPARE;
        }
    }
}

static void downs_pause(struct proxy *px, bool pause)
{
    struct down *d;
    LIST_FOREACH(d, &px->downs, link) {
        if (pause && !d->paused) {
            uv_read_stop((uv_stream_t *)&d->pipe);
            d->paused = true;
        } else if (!pause && d->paused) {
            d->paused = false;
            uv_read_start((uv_stream_t *)&d->pipe, down_alloc, down_read);
        }
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct proxy *px = server->data;
    if (status < 0 || px->closing)
        return;
    struct down *d = calloc(1, sizeof(*d));
    if (!d)
        return;
    d->px = px;
    LIST_INIT(&d->calls);
    STAILQ_INIT(&d->deferred);
    uv_pipe_init(px->loop, &d->pipe, 0);
    px->refs++;
    if (uv_accept(server, (uv_stream_t *)&d->pipe)) {
        d->closing = true;
        uv_close((uv_handle_t *)&d->pipe, down_closed);
        return;
    }
    LIST_INSERT_HEAD(&px->downs, d, link);
    px->counts->connections++;
    if (px->up_full) {
        d->paused = true;
        return;
    }
    uv_read_start((uv_stream_t *)&d->pipe, down_alloc, down_read);
}

/* ------------------------------------------------------------------ upstream */

static void dial(struct proxy *px);

static void ready_report(struct proxy *px, int code, const char *msg)
{
    proxy_ready_cb cb = px->ready_cb;
    if (!cb)
        return;
    px->ready_cb = NULL;
    uv_timer_stop(&px->ready_timer);
    cb(px->ready_arg, code, msg);
}

static void link_proven(struct proxy *px);

/* A big response whose header is here: stream it to its shim connection as it arrives. */
static bool up_cut_start(struct proxy *px, const uint8_t *p, size_t avail)
{
    struct ttrpc_header h;
    ttrpc_header_decode(&h, p);
    if (h.type != TTRPC_RESPONSE || h.length < CUT_MIN || h.length > TTRPC_MESSAGE_MAX ||
        (px->probe_id && h.stream_id == px->probe_id))
        return false;
    size_t body = avail - TTRPC_HEADER_SIZE; /* < h.length, or the frame would be whole */
    struct call *c = hash_take(px, h.stream_id);
    struct down *d = c ? c->d : NULL;
    if (d && !d->closing) {
        struct ttrpc_header out = h;
        out.stream_id = c->down_id;
        down_send(d, &out, p + TTRPC_HEADER_SIZE, body, false);
        d->ucut = true;
    } else {
        d = NULL;
    }
    if (c)
        call_free(c);
    px->ucut_active = true;
    px->ucut_d = d;
    px->ucut_left = h.length - body;
    return true;
}

static void up_cut_feed(struct proxy *px, const uint8_t **p, size_t *n)
{
    size_t k = *n < px->ucut_left ? *n : px->ucut_left;
    if (px->ucut_d)
        down_send(px->ucut_d, NULL, *p, k, false);
    *p += k;
    *n -= k;
    px->ucut_left -= k;
    if (px->ucut_left == 0) {
        px->ucut_active = false;
        if (px->ucut_d)
            down_ucut_end(px->ucut_d);
        px->ucut_d = NULL;
    }
}

static void up_frames(struct proxy *px, const uint8_t *buf, size_t len, size_t *consumed)
{
    size_t off = 0;
    while (!px->closing && px->up) {
        struct ttrpc_header h;
        size_t used = 0;
        enum ttrpc_frame_result fr = ttrpc_framer_next(&px->ufr, buf + off, len - off, &h, &used);
        if (fr == TTRPC_FRAME_MORE) {
            off += used;
            if (used == 0) {
                if (len - off >= TTRPC_HEADER_SIZE && up_cut_start(px, buf + off, len - off))
                    off = len;
                break;
            }
            continue;
        }
        off += used;
        if (h.type != TTRPC_RESPONSE && fr != TTRPC_FRAME_TOO_BIG)
            continue;
        if (px->probe_id && h.stream_id == px->probe_id) {
            link_proven(px);
            continue;
        }
        struct call *c = hash_take(px, h.stream_id);
        if (!c)
            continue; /* timed out or abandoned */
        if (c->d) {
            if (fr == TTRPC_FRAME_TOO_BIG)
                down_fail(c->d, c->down_id, TTRPC_RESOURCE_EXHAUSTED,
                          "message length %u exceed maximum message size of %u", h.length, TTRPC_MESSAGE_MAX);
            else
                down_write(c->d, c->down_id, TTRPC_RESPONSE, h.flags, buf + off - used + TTRPC_HEADER_SIZE,
                           h.length);
        }
        call_free(c);
    }
    *consumed = off;
}

static void up_data(void *arg, const uint8_t *p, size_t n)
{
    struct proxy *px = arg;
    size_t used;
    px->counts->bytes_from_vm += n;
    if (px->ucut_active) {
        up_cut_feed(px, &p, &n);
        if (!n)
            return;
    }
    if (px->uin_len == 0) {
        /* Common case: whole frames in this chunk, relayed without a copy. */
        up_frames(px, p, n, &used);
        p += used;
        n -= used;
        if (!n)
            return;
    }
    if (px->uin_len + n > px->uin_cap) {
        size_t cap = px->uin_cap ? px->uin_cap : 2 * READ_SPARE;
        while (cap < px->uin_len + n)
            cap *= 2;
        uint8_t *b = realloc(px->uin, cap);
        if (!b) {
            log_error(LOG, "sandbox %s: out of memory reading from the pod VM", px->sandbox_id);
            return;
        }
        px->uin = b;
        px->uin_cap = cap;
    }
    memcpy(px->uin + px->uin_len, p, n);
    px->uin_len += n;
    up_frames(px, px->uin, px->uin_len, &used);
    if (used) {
        memmove(px->uin, px->uin + used, px->uin_len - used);
        px->uin_len -= used;
    }
}

static void attempt_expired(uv_timer_t *t);

static void retry_fire(uv_timer_t *t)
{
    dial(t->data);
}

static void retry_later(struct proxy *px)
{
    if (px->closing)
        return;
    uv_timer_start(&px->retry, retry_fire, px->backoff_ms, 0);
    px->backoff_ms = px->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : px->backoff_ms * 2;
}

static void down_close(struct down *d);

static void up_drop(struct proxy *px)
{
    if (px->ucut_active) {
        px->ucut_active = false;
        if (px->ucut_d) /* half a frame went out: that connection cannot be resynchronised */
            down_close(px->ucut_d);
        px->ucut_d = NULL;
    }
    if (px->up) {
        tls_conn_close(px->up);
        px->up = NULL;
    }
    px->up_connected = false;
    px->uin_len = 0;
    memset(&px->ufr, 0, sizeof(px->ufr));
    if (px->up_full) {
        px->up_full = false;
        downs_pause(px, false);
    }
}

/* Every call sent on the lost link fails with code 14 (DECISIONS 3). */
static void fail_in_flight(struct proxy *px, const char *why)
{
    for (size_t i = 0; i < px->nbuckets; i++) {
        struct call *c;
        while ((c = px->buckets[i])) {
            px->buckets[i] = c->hnext;
            c->hnext = NULL;
            px->ncalls--;
            if (c->d)
                down_fail(c->d, c->down_id, TTRPC_UNAVAILABLE, "the agent link to pod VM %s was lost: %s", px->vm_name,
                          why);
            call_free(c);
        }
    }
}

static void up_lost(void *arg, const char *why)
{
    struct proxy *px = arg;
    if (px->probe_id) {
        /* Refused during the first exchange (e.g. our certificate): a failed attempt. */
        px->probe_id = 0;
        uv_timer_stop(&px->attempt);
        snprintf(px->last_error, sizeof(px->last_error), "the pod VM's forwarder closed the link at once (%s)", why);
        log_debug(LOG, "sandbox %s: %s", px->sandbox_id, px->last_error);
        up_drop(px);
        retry_later(px);
        return;
    }
    char e[600];
    log_warn(LOG, "the agent link was lost; reconnecting sandbox=%s vm=%s addr=%s error=%s", px->sandbox_id,
             px->vm_name, px->addr_text, log_value(e, sizeof(e), why));
    snprintf(px->last_error, sizeof(px->last_error), "%s", why);
    up_drop(px);
    fail_in_flight(px, why);
    px->backoff_ms = BACKOFF_MIN_MS;
    retry_later(px);
}

static void up_drained(void *arg)
{
    struct proxy *px = arg;
    if (px->up_full) {
        px->up_full = false;
        downs_pause(px, false);
    }
}

static void up_on_connected(void *arg, const char *err)
{
    struct proxy *px = arg;
    uv_timer_stop(&px->attempt);
    if (err) {
        snprintf(px->last_error, sizeof(px->last_error), "%s", err);
        log_debug(LOG, "sandbox %s: connecting to %s: %s", px->sandbox_id, px->addr_text, err);
        up_drop(px);
        /* Refused: the VM answers but its forwarder is not listening yet, and a refusal costs
         * one round trip: keep asking at the base interval, so the link is up within ~50 ms
         * of the forwarder starting. Anything else backs off exponentially. */
        if (strcmp(err, uv_strerror(UV_ECONNREFUSED)) == 0)
            px->backoff_ms = BACKOFF_MIN_MS;
        retry_later(px);
        return;
    }
    /* Connected is not yet working: with TLS 1.3 a forwarder refuses our certificate only
     * after our side of the handshake is done. One Health/Check through the forwarder proves
     * the whole path (any answer counts) before calls flow and StartVM returns. */
    static const uint8_t probe[] = {0x0a, 0x0b, 'g', 'r', 'p', 'c', '.', 'H', 'e', 'a', 'l', 't', 'h',
                                    0x12, 0x05, 'C', 'h', 'e', 'c', 'k'};
    px->probe_id = px->next_up_id;
    px->next_up_id += 2;
    uint8_t hdr[TTRPC_HEADER_SIZE];
    struct ttrpc_header h = {.length = sizeof(probe), .stream_id = px->probe_id, .type = TTRPC_REQUEST};
    ttrpc_header_encode(hdr, &h);
    uv_buf_t bufs[2] = {uv_buf_init((char *)hdr, sizeof(hdr)), uv_buf_init((char *)probe, sizeof(probe))};
    if (tls_conn_writev(px->up, bufs, 2) < 0) {
        up_lost(px, "cannot write to the new connection");
        return;
    }
    uv_timer_start(&px->attempt, attempt_expired, ATTEMPT_MS, 0);
}

static void link_proven(struct proxy *px)
{
    uv_timer_stop(&px->attempt);
    px->probe_id = 0;
    px->up_connected = true;
    px->backoff_ms = BACKOFF_MIN_MS;
    log_info(LOG, "agent link %s sandbox=%s vm=%s addr=%s transport=%s", px->ever_up ? "up again" : "up",
             px->sandbox_id, px->vm_name, px->addr_text, px->ctx ? "mtls" : "tcp");
    px->ever_up = true;
    up_pause_update(px); /* a shim connection still full from before keeps the new link paused */
    queue_flush(px);
    ready_report(px, 0, NULL);
}

static void attempt_expired(uv_timer_t *t)
{
    struct proxy *px = t->data;
    px->probe_id = 0;
    snprintf(px->last_error, sizeof(px->last_error), "no answer within %d ms", ATTEMPT_MS);
    up_drop(px);
    retry_later(px);
}

static int ssl_prepare(void *parg, SSL *ssl, char *err, size_t errlen)
{
    struct proxy *px = parg;
    return tlsca_client_ssl_prepare(px->tls, ssl, px->vm_name, err, errlen);
}

static void dial(struct proxy *px)
{
    if (px->closing || px->up)
        return;
    static const struct tls_conn_cbs cbs = {up_on_connected, up_data, up_lost, up_drained};
    char err[256];
    /* A new ttrpc connection: its stream ids start again, so a long-lived sandbox's reconnect
     * also moves it away from the 32-bit wrap (nothing is in flight: calls wait for the link). */
    if (!px->ncalls)
        px->next_up_id = 1;
    px->up = tls_conn_dial(px->loop, (const struct sockaddr *)&px->addr, px->ctx, px->ctx ? ssl_prepare : NULL, px,
                           &cbs, px, err, sizeof(err));
    if (!px->up) {
        snprintf(px->last_error, sizeof(px->last_error), "%s", err);
        retry_later(px);
        return;
    }
    uv_timer_start(&px->attempt, attempt_expired, ATTEMPT_MS, 0);
}

static void ready_expired(uv_timer_t *t)
{
    struct proxy *px = t->data;
    char msg[768];
    char waited[64];
    if (px->ready_by_proxy_timeout)
        snprintf(waited, sizeof(waited), "PROXY_TIMEOUT (%lld ms)", (long long)px->proxy_timeout_ms);
    else
        snprintf(waited, sizeof(waited), "StartVM's deadline");
    snprintf(msg, sizeof(msg),
             "error connecting to agent: failed to establish agent proxy connection to %s: %s; no forwarder "
             "answered within %s: check that the pod VM boots and runs agent-protocol-forwarder on port %u, "
             "and that the network lets the worker reach it",
             px->addr_text, px->last_error[0] ? px->last_error : "no connection yet", waited, px->port);
    ready_report(px, TTRPC_DEADLINE_EXCEEDED, msg);
}

int proxy_connect(struct proxy *px, const char *ip, uint64_t deadline_ms, proxy_ready_cb cb, void *arg)
{
    struct sockaddr_in *a4 = (struct sockaddr_in *)&px->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&px->addr;
    memset(&px->addr, 0, sizeof(px->addr));
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(px->port);
        snprintf(px->addr_text, sizeof(px->addr_text), "%s:%u", ip, px->port);
    } else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(px->port);
        snprintf(px->addr_text, sizeof(px->addr_text), "[%s]:%u", ip, px->port);
    } else {
        return -1;
    }
    px->ready_cb = cb;
    px->ready_arg = arg;
    uint64_t limit = uv_now(px->loop) + (uint64_t)px->proxy_timeout_ms;
    px->ready_by_proxy_timeout = true;
    if (deadline_ms && deadline_ms < limit) {
        limit = deadline_ms;
        px->ready_by_proxy_timeout = false;
    }
    uint64_t now = uv_now(px->loop);
    uv_timer_start(&px->ready_timer, ready_expired, limit > now ? limit - now : 0, 0);
    px->backoff_ms = BACKOFF_MIN_MS;
    dial(px);
    return 0;
}

void proxy_cancel_ready(struct proxy *px, const char *msg)
{
    ready_report(px, TTRPC_CANCELED, msg);
}

bool proxy_is_up(const struct proxy *px)
{
    return px->up_connected;
}

/* ------------------------------------------------------------------ create and close */

struct proxy *proxy_new(const struct proxy_params *p, char *err, size_t errlen)
{
    struct proxy *px = calloc(1, sizeof(*px));
    if (!px || !(px->socket_path = strdup(p->socket_path)) || !(px->sandbox_id = strdup(p->sandbox_id)) ||
        !(px->vm_name = strdup(p->vm_name))) {
        if (px) {
            free(px->socket_path);
            free(px->sandbox_id);
            free(px);
        }
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    px->loop = p->loop;
    px->ctx = p->ctx;
    px->tls = p->tls;
    px->port = p->port;
    px->proxy_timeout_ms = p->proxy_timeout_ns / 1000000;
    px->gpus_annotated = p->gpus_annotated;
    px->counts = p->counts ? p->counts : &px->no_counts;
    if (!(px->direct_volumes_dir = strdup(p->direct_volumes_dir ? p->direct_volumes_dir : CSIVOL_DIRECT_VOLUMES_DIR))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    px->next_up_id = 1;
    LIST_INIT(&px->downs);
    TAILQ_INIT(&px->queue);
    uv_pipe_init(px->loop, &px->listener, 0);
    px->listener.data = px;
    uv_timer_init(px->loop, &px->retry);
    uv_timer_init(px->loop, &px->attempt);
    uv_timer_init(px->loop, &px->ready_timer);
    px->retry.data = px->attempt.data = px->ready_timer.data = px;
    px->refs = 4;
    int rc = uv_pipe_bind(&px->listener, px->socket_path);
    if (rc == UV_EADDRINUSE) { /* a socket file left by a daemon that did not close it (a crash) */
        if (unlink(px->socket_path) && errno != ENOENT) {
            snprintf(err, errlen, "removing a stale %s: %s", px->socket_path, strerror(errno));
            proxy_close(px);
            return NULL;
        }
        rc = uv_pipe_bind(&px->listener, px->socket_path);
    }
    if (!rc)
        rc = chmod(px->socket_path, 0600) ? uv_translate_sys_error(errno) : 0;
    if (!rc)
        rc = uv_listen((uv_stream_t *)&px->listener, 128, on_connection);
    if (rc) {
        snprintf(err, errlen, "listening on %s: %s", px->socket_path, uv_strerror(rc));
        proxy_close(px);
        return NULL;
    }
    return px;
fail:
    free(px->socket_path);
    free(px->sandbox_id);
    free(px->vm_name);
    free(px->direct_volumes_dir);
    free(px);
    return NULL;
}

void proxy_close(struct proxy *px)
{
    if (!px || px->closing)
        return;
    px->ready_cb = NULL;
    fail_in_flight(px, "the sandbox is being stopped");
    struct call *c;
    while ((c = TAILQ_FIRST(&px->queue))) {
        queue_remove(px, c);
        if (c->d)
            down_fail(c->d, c->down_id, TTRPC_UNAVAILABLE, "the sandbox is being stopped");
        call_free(c);
    }
    px->closing = true;
    up_drop(px);
    struct down *d;
    while ((d = LIST_FIRST(&px->downs)))
        down_close(d);
    uv_close((uv_handle_t *)&px->listener, handle_closed);
    uv_close((uv_handle_t *)&px->retry, handle_closed);
    uv_close((uv_handle_t *)&px->attempt, handle_closed);
    uv_close((uv_handle_t *)&px->ready_timer, handle_closed); /* libuv unlinks the bound socket file */
}
